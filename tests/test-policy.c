/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may do what, through a real daemon: callers of other uids (forked
 * children that drop to them), a rule matched by cgroup, quotas, program
 * and attach types, ownership (another's object answers like a missing one),
 * the admin seeing all, configuration checks and reloads.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define UID_AGENT 4242
#define UID_STRANGER 4343
#define UID_CONTAINER 4444
#define UID_ADMIN 4646
#define GID_ADMIN 4545

static TestDaemon d;
static uint32_t *progs_before;
static size_t n_progs_before;
static char cgroup_dir[256];
static char cgroup_name[128];
static uint64_t root_object;

/* One call as another user: "ErrorName id count" comes back through a pipe. */
typedef struct AsUser {
        uid_t uid;
        gid_t extra_group; /* a supplementary group, 0 for none */
        bool in_cgroup;
        const char *method;
        const char *params;  /* JSON */
        const char *object;  /* test object passed as fd 0, or NULL */
} AsUser;

static char *run_as(const AsUser *a) {
        int fds[2];
        char buf[512] = "";
        pid_t pid;
        ssize_t n;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return strdup("pipe failed");
        pid = fork();
        if (pid == 0) {
                _cleanup_free_ char *path = a->object ? harness_object_path(a->object) : NULL;
                BpfcoreReply r = {};
                json_object *p = json_tokener_parse(a->params ?: "{}"), *objects = NULL;
                int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
                char out[512];

                close(fds[0]);
                if (a->in_cgroup) {
                        char procs[512], me[32];
                        int cfd;

                        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup_dir);
                        snprintf(me, sizeof(me), "%d", getpid());
                        cfd = open(procs, O_WRONLY | O_CLOEXEC);
                        if (cfd < 0 || write(cfd, me, strlen(me)) < 0)
                                _exit(3);
                        close(cfd);
                }
                if (setgroups(a->extra_group ? 1 : 0, &a->extra_group) < 0 || setgid(a->uid) < 0 || setuid(a->uid) < 0)
                        _exit(2);
                if (call(&d, a->method, p, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, &r) < 0) {
                        (void) !write(fds[1], "connect-failed", 14);
                        _exit(1);
                }
                json_object_object_get_ex(r.parameters, "objects", &objects);
                snprintf(out, sizeof(out), "%s %lld %zu %s", r.error ? reply_error(&r) : "ok",
                         (long long) object_int(&r, "id"), objects ? json_object_array_length(objects) : 0,
                         json_str(r.parameters, r.error && strstr(r.error, "Quota") ? "limit" : "reason"));
                (void) !write(fds[1], out, strlen(out));
                _exit(0);
        }
        close(fds[1]);
        n = read(fds[0], buf, sizeof(buf) - 1);
        close(fds[0]);
        waitpid(pid, NULL, 0);
        buf[n > 0 ? n : 0] = 0;
        return strdup(buf);
}

static bool starts(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static void write_config(const char *text) {
        FILE *f = fopen(d.config, "we");

        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static void reload(void) {
        daemon_signal(&d, SIGHUP);
        /* The reload is done once a call after it is answered: calls are served in order. */
        BpfcoreReply r = {};
        usleep(50000);
        call(&d, "io.bpfcored.Status", NULL, NULL, 0, &r);
        bpfcore_reply_done(&r);
}

TEST(start) {
        char config[1024];

        if (geteuid() != 0)
                tap_skip_all("needs root to load BPF and to act as other users");
        kernel_prog_ids(&progs_before, &n_progs_before);
        if (!tap_is_int(daemon_start(&d), 0, "daemon starts")) {
                daemon_dump_log(&d);
                tap_bail("no daemon");
        }
        /* Other users reach the socket here; in production the socket unit's group decides. */
        chmod(d.socket_path, 0666);
        chmod(d.tmpdir, 0755);

        snprintf(cgroup_name, sizeof(cgroup_name), "bpfcored-policy-%d", getpid());
        snprintf(cgroup_dir, sizeof(cgroup_dir), "/sys/fs/cgroup/unified/%s", cgroup_name);
        if (mkdir(cgroup_dir, 0755) < 0) {
                snprintf(cgroup_dir, sizeof(cgroup_dir), "/sys/fs/cgroup/%s", cgroup_name);
                if (mkdir(cgroup_dir, 0755) < 0)
                        cgroup_dir[0] = 0;
        }
        snprintf(config, sizeof(config),
                 "[daemon]\n"
                 "admin-group = %d\n"
                 "\n"
                 "# agents may load tracepoints, two objects at most\n"
                 "[rule agents]\n"
                 "match-uid = %d\n"
                 "program-types = tracepoint\n"
                 "attach-types = tracepoint\n"
                 "max-objects = 2\n"
                 "max-programs = 3\n"
                 "allow-maps = no\n"
                 "\n"
                 "[rule container]\n"
                 "match-cgroup = /%s\n"
                 "max-objects = 1\n",
                 GID_ADMIN, UID_AGENT, cgroup_name);
        write_config(config);
        reload();
}

TEST(check_config) {
        _cleanup_free_ char *cmd = NULL, *bad = NULL;
        char path[256];
        int rc;

        if (asprintf(&cmd, "%s -n --config %s >/dev/null", harness_env("BPFCORED"), d.config) < 0)
                abort();
        rc = system(cmd);
        tap_is_int(WEXITSTATUS(rc), 0, "bpfcored -n says the test configuration is OK");
        snprintf(path, sizeof(path), "%s/bad.conf", d.tmpdir);
        FILE *f = fopen(path, "we");
        if (f) {
                fputs("[rule x]\nmatch-uid = 1\nmax-objects = many\n", f);
                fclose(f);
        }
        if (asprintf(&bad, "%s -n --config %s 2>&1 | grep -q 'bad.conf:3: max-objects takes a number'",
                     harness_env("BPFCORED"), path) < 0)
                abort();
        tap_is_int(WEXITSTATUS(system(bad)), 0, "and names the file and line of a mistake");
}

TEST(rules_and_quotas) {
        BpfcoreReply r = {};
        _cleanup_free_ char *a1 = NULL, *a2 = NULL, *a3 = NULL, *xdp = NULL, *maps = NULL, *list = NULL, *get = NULL,
                            *unl = NULL, *stranger = NULL, *slist = NULL;
        char params[128];

        load_object(&d, "pinned", NULL, &r);
        root_object = (uint64_t) object_int(&r, "id");
        bpfcore_reply_done(&r);
        tap_ok(root_object > 0, "root loads an object of its own");

        a1 = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Load", "{\"fd\":0}", "globals" });
        tap_ok(starts(a1, "ok"), "an agent allowed by its rule loads a tracepoint object (%s)", a1);
        xdp = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Load", "{\"fd\":0}", "xdp_pass" });
        tap_ok(starts(xdp, "PermissionDenied") && strstr(xdp, "xdp"), "but not an XDP one (%s)", xdp);
        maps = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Load",
                                  "{\"fd\":0,\"maps\":{\"settings\":{\"max_entries\":8}}}", "globals" });
        tap_ok(starts(maps, "PermissionDenied"), "nor override map sizes (%s)", maps);
        a2 = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Load", "{\"fd\":0}", "globals" });
        tap_ok(starts(a2, "ok"), "a second object is within max-objects = 2");
        a3 = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Load", "{\"fd\":0}", "globals" });
        tap_ok(starts(a3, "QuotaExceeded") && strstr(a3, "max-objects"), "a third is QuotaExceeded (%s)", a3);

        list = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.List", "{}", NULL });
        tap_ok(starts(list, "ok -1 2"), "the agent lists its own two objects only (%s)", list);
        snprintf(params, sizeof(params), "{\"id\":%llu}", (unsigned long long) root_object);
        get = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Get", params, NULL });
        tap_ok(starts(get, "NoSuchObject"), "root's object answers like a missing one (%s)", get);
        unl = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.Unload", params, NULL });
        tap_ok(starts(unl, "NoSuchObject"), "and cannot be unloaded by the agent (%s)", unl);

        stranger = run_as(&(AsUser) { UID_STRANGER, 0, false, "io.bpfcored.Load", "{\"fd\":0}", "globals" });
        tap_ok(starts(stranger, "PermissionDenied") && strstr(stranger, "matches no rule"),
               "a caller no rule matches is denied, with the reason (%s)", stranger);
        slist = run_as(&(AsUser) { UID_STRANGER, 0, false, "io.bpfcored.List", "{}", NULL });
        tap_ok(starts(slist, "ok -1 0"), "and sees nothing (%s)", slist);

        BpfcoreReply all = {};
        json_object *objects = NULL;
        call(&d, "io.bpfcored.List", NULL, NULL, 0, &all);
        json_object_object_get_ex(all.parameters, "objects", &objects);
        tap_is_int(objects ? json_object_array_length(objects) : 0, 3, "root, the admin, sees all three objects");
        bpfcore_reply_done(&all);

        _cleanup_free_ char *admin = run_as(&(AsUser) { UID_ADMIN, GID_ADMIN, false, "io.bpfcored.List", "{}", NULL });
        tap_ok(starts(admin, "ok -1 3"), "so does a member of the admin group (%s)", admin);
        _cleanup_free_ char *admin_get = run_as(&(AsUser) { UID_ADMIN, GID_ADMIN, false, "io.bpfcored.Get", params, NULL });
        tap_ok(starts(admin_get, "ok"), "and may get root's object (%s)", admin_get);
}

TEST(cgroup_rule) {
        _cleanup_free_ char *c1 = NULL, *c2 = NULL;

        if (!cgroup_dir[0]) {
                tap_skip("no writable cgroup2 hierarchy here", "a caller in a matching cgroup gets the rule's limits");
                return;
        }
        c1 = run_as(&(AsUser) { UID_CONTAINER, 0, true, "io.bpfcored.Load", "{\"fd\":0}", "xdp_pass" });
        tap_ok(starts(c1, "ok"), "a caller in the rule's cgroup may load (%s)", c1);
        c2 = run_as(&(AsUser) { UID_CONTAINER, 0, true, "io.bpfcored.Load", "{\"fd\":0}", "xdp_pass" });
        tap_ok(starts(c2, "QuotaExceeded"), "within that rule's max-objects = 1 (%s)", c2);
}

TEST(reload_keeps_going) {
        _cleanup_free_ char *list = NULL;

        write_config("[rule broken\n");
        reload();
        list = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.List", "{}", NULL });
        tap_ok(starts(list, "ok -1 2"), "a broken configuration on SIGHUP keeps the previous one (%s)", list);
}

TEST(ringbuf_agent) {
        _cleanup_free_ char *object = harness_object_path("ringbuf"), *others = NULL;
        BpfcoreReply r = {}, list = {};
        json_object *objects = NULL;
        char map[64];
        int status = -1, fds[2];
        pid_t pid;

        /* Make room under the agent's max-objects: root (admin) unloads its objects. */
        call(&d, "io.bpfcored.List", NULL, NULL, 0, &list);
        json_object_object_get_ex(list.parameters, "objects", &objects);
        for (size_t i = 0; objects && i < json_object_array_length(objects); i++) {
                json_object *o = json_object_array_get_idx(objects, i), *p;
                BpfcoreReply u = {};

                if (json_int(json_object_object_get(o, "owner"), "uid") != UID_AGENT)
                        continue;
                p = json_object_new_object();
                json_object_object_add(p, "id", json_object_new_int64(json_int(o, "id")));
                call(&d, "io.bpfcored.Unload", p, NULL, 0, &u);
                json_object_put(p);
                bpfcore_reply_done(&u);
        }
        bpfcore_reply_done(&list);

        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        pid = fork();
        if (pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                dup2(fds[1], STDERR_FILENO);
                if (setgroups(0, NULL) < 0 || setgid(UID_AGENT) < 0 || setuid(UID_AGENT) < 0)
                        _exit(2);
                execl(harness_env("EXAMPLE_AGENT"), "example-agent", d.socket_path, object, "5", NULL);
                _exit(127);
        }
        close(fds[1]);
        {
                char out[512] = "";
                ssize_t n = read(fds[0], out, sizeof(out) - 1);

                out[n > 0 ? n : 0] = 0;
                waitpid(pid, &status, 0);
                tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                       "an unprivileged agent (uid %d) loads, gets its ring buffer fd and reads its own events", UID_AGENT);
                tap_diag("%s", out);
        }
        close(fds[0]);

        /* Another owner's map: root's pinned object. */
        load_object(&d, "ringbuf", NULL, &r);
        snprintf(map, sizeof(map), "{\"map\":%lld}",
                 (long long) json_int(array_find_name(object_get(&r, "maps"), "events"), "id"));
        others = run_as(&(AsUser) { UID_AGENT, 0, false, "io.bpfcored.MapFd", map, NULL });
        tap_ok(starts(others, "NoSuchMap"), "it cannot get the fd of another owner's map (%s)", others);
        bpfcore_reply_done(&r);
}

TEST(cleanup) {
        BpfcoreReply r = {};
        json_object *objects = NULL;

        call(&d, "io.bpfcored.List", NULL, NULL, 0, &r);
        json_object_object_get_ex(r.parameters, "objects", &objects);
        for (size_t i = 0; objects && i < json_object_array_length(objects); i++) {
                BpfcoreReply u = {};
                json_object *p = json_object_new_object();

                json_object_object_add(p, "id", json_object_new_int64(json_int(json_object_array_get_idx(objects, i), "id")));
                call(&d, "io.bpfcored.Unload", p, NULL, 0, &u);
                json_object_put(p);
                bpfcore_reply_done(&u);
        }
        bpfcore_reply_done(&r);
        daemon_cleanup(&d);
        if (cgroup_dir[0])
                rmdir(cgroup_dir);
        tap_is_int(kernel_programs_left(progs_before, n_progs_before), 0, "nothing this test loaded is left");
        free(progs_before);
}

TAP_MAIN
