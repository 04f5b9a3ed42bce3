/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/attach.c against this kernel: test programs loaded in-process with
 * libbpf, attached by fd through attach_program() and triggered for real
 * (syscalls, a probed binary built by the suite, ping across a veth pair in
 * a network namespace of our own, UDP from a test cgroup); the counts are
 * read back from the programs' maps. Needs root and bpffs. Everything it
 * creates (pins, netns, veths, cgroup, directories, children) is removed at
 * exit, and the last test checks that nothing is left.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <ifaddrs.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>

#include "attach.h"
#include "globals.h"
#include "net-echo.h"
#include "protocol.h"
#include "tap.h"

#define PROBED_FUNCTION "bpfcored_probe_me"

extern char **environ;

/* Slots of the test programs' counter maps (tests/bpf/attach_*.bpf.c). */
enum { TRACE_TRACEPOINT, TRACE_RAW_TP, TRACE_TP_BTF };
enum {
        PROBE_KPROBE,
        PROBE_KRETPROBE,
        PROBE_UPROBE,
        PROBE_URETPROBE,
        PROBE_URETURN_SUM,
        PROBE_KPROBE_MULTI,
        PROBE_KRETPROBE_MULTI
};
enum { NET_XDP_ECHO, NET_XDP_REPLY, NET_TC_ECHO, NET_CGROUP_EGRESS };

static const char *objects_dir, *uprobe_target, *cgroup_root;
static char pin_dir[64], netns[32], netns_path[64], veth_host[IFNAMSIZ], veth_ns[IFNAMSIZ],
        cgroup_dir[PATH_MAX], ns_dir[64];
static char host_ip[INET_ADDRSTRLEN], ns_ip[INET_ADDRSTRLEN]; /* the two ends of a /30 */
static bool netns_made, have_ip;
static int fds_at_start = -1;
static struct bpf_object *probe_obj, *net_obj;
static int trace_map = -1, probe_map = -1, net_map = -1;

/* Everything made, for the checks that it is gone at the end. */
static uint32_t prog_ids[32], link_ids[64];
static size_t n_prog_ids, n_link_ids;
static pid_t children[8];

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                return -1;
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}


static void remember_child(pid_t pid) {
        for (size_t i = 0; i < ELEMENTSOF(children); i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
}

/* A child reaped already: its pid may name another process soon. */
static void forget_child(pid_t pid) {
        for (size_t i = 0; i < ELEMENTSOF(children); i++)
                if (children[i] == pid)
                        children[i] = 0;
}

/* Kills one of our children by its pid and reaps it. */
static void end_child(pid_t pid) {
        if (pid <= 0)
                return; /* never kill(0) or kill(-1) */
        forget_child(pid);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* A child that enters setup(), tells us through a pipe, and waits to be killed. */
/* child_in()'s setup for a child living in the test namespace. */
static void enter_test_netns(void) {
        enter_netns(netns_path);
}

static pid_t child_in(void (*setup)(void)) {
        int p[2];
        pid_t pid;
        char ok = 0;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
                close(p[0]);
                setup();
                ok = 1;
                if (write(p[1], &ok, 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(p[1]);
        if (pid > 0) {
                remember_child(pid);
                if (read(p[0], &ok, 1) != 1 || !ok) {
                        end_child(pid);
                        pid = -1;
                }
        }
        close(p[0]);
        return pid;
}

static void rm_pins(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char p[PATH_MAX];

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                if (de->d_type == DT_DIR)
                        rm_pins(p);
                else
                        unlink(p);
        }
        closedir(d);
        rmdir(dir);
}

/* Idempotent, and run at exit whatever happened: nothing of ours stays on the machine. */
static void cleanup(void) {
        for (size_t i = 0; i < ELEMENTSOF(children); i++)
                if (children[i] > 0)
                        end_child(children[i]);
        bpf_object__close(probe_obj);
        bpf_object__close(net_obj);
        probe_obj = net_obj = NULL;
        trace_map = safe_close(trace_map);
        probe_map = safe_close(probe_map);
        net_map = safe_close(net_map);
        if (pin_dir[0])
                rm_pins(pin_dir);
        if (netns_made) {
                char p[PATH_MAX];

                /* Deleting our end takes the peer with it now; the namespace itself goes when unused. */
                snprintf(p, sizeof(p), "/sys/class/net/%s", veth_host);
                if (access(p, F_OK) == 0)
                        RUN("ip", "link", "del", veth_host);
                RUN("ip", "netns", "del", netns);
                netns_made = false;
        }
        if (cgroup_dir[0])
                rmdir(cgroup_dir);
        if (ns_dir[0])
                rmdir(ns_dir);
}

static void record_programs(struct bpf_object *obj) {
        struct bpf_program *prog;

        bpf_object__for_each_program(prog, obj) {
                struct bpf_prog_info info = {};
                __u32 len = sizeof(info);

                if (bpf_program__fd(prog) >= 0 &&
                    bpf_prog_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0 &&
                    n_prog_ids < ELEMENTSOF(prog_ids))
                        prog_ids[n_prog_ids++] = info.id;
        }
}

/* Opens and loads tests/bpf/<name>.bpf.o with its globals set ({"var": value}); maps pinned by name go to
 * pin_dir. */
static int load_object(const char *name, const char *globals, struct bpf_object **ret) {
        LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
        struct bpf_object *obj;
        char path[PATH_MAX];
        int r;

        snprintf(path, sizeof(path), "%s/%s.bpf.o", objects_dir, name);
        obj = bpf_object__open_file(path, &opts);
        if (!obj)
                return -errno;
        if (globals) {
                json_object *g = json_tokener_parse(globals);
                Failure f = {};

                r = globals_apply(obj, g, &f);
                json_object_put(g);
                failure_done(&f);
                if (r < 0) {
                        bpf_object__close(obj);
                        return r;
                }
        }
        r = bpf_object__load(obj);
        if (r < 0) {
                bpf_object__close(obj);
                return r;
        }
        record_programs(obj);
        *ret = obj;
        return 0;
}

static uint32_t prog_id_of(int fd) {
        struct bpf_prog_info info = {};
        __u32 len = sizeof(info);

        return bpf_prog_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

static int prog_fd(struct bpf_object *obj, const char *name) {
        struct bpf_program *prog = obj ? bpf_object__find_program_by_name(obj, name) : NULL;

        return prog ? bpf_program__fd(prog) : -1;
}

static uint64_t counter(int map_fd, uint32_t slot) {
        uint64_t v = 0;

        bpf_map_lookup_elem(map_fd, &slot, &v);
        return v;
}

static const char *failure_field(const Failure *f, const char *key) {
        json_object *v;

        return f->parameters && json_object_object_get_ex(f->parameters, key, &v) ? json_object_get_string(v)
                                                                                  : "";
}

/* attach_program() with the spec as JSON text; remembers the link for the final check. */
static int attach(int fd, const char *type, const char *spec_json, pid_t caller, AttachResult *ret,
                  Failure *f) {
        json_object *spec = spec_json ? json_tokener_parse(spec_json) : NULL;
        AttachRequest req = { .type = type, .spec = spec, .caller_pid = caller };
        int r;

        r = attach_program(fd, &req, ret, f);
        json_object_put(spec);
        if (r >= 0 && !ret->is_filter && n_link_ids < ELEMENTSOF(link_ids))
                link_ids[n_link_ids++] = ret->link_id;
        return r;
}

/* What attach_program() announced before adding a clsact filter, and what the announcement answers. */
static TcFilter announced;
static int n_announced, announce_answer;

static int announce(const TcFilter *t, void *userdata) {
        announced = *t;
        n_announced++;
        return announce_answer;
}

/* A clsact filter with id (and handle) id, announced to announce(). */
static int attach_filter(int fd, const char *spec_json, pid_t caller, uint32_t id, AttachResult *ret, Failure *f) {
        json_object *spec = json_tokener_parse(spec_json);
        AttachRequest req = { .type = "tc", .spec = spec, .caller_pid = caller, .filter_id = id,
                              .before_filter = announce };
        int r;

        n_announced = 0;
        r = attach_program(fd, &req, ret, f);
        json_object_put(spec);
        return r;
}

/* An attach that must work; says why when it did not. */
#define tap_attached(r, f, ...)                                                                          \
        (tap_is_int((r), 0, __VA_ARGS__) ||                                                              \
         (tap_diag("%s: %s", (f)->error ?: "(no error set)", failure_field((f), "message")), false))

static void getpids(int n) {
        for (int i = 0; i < n; i++)
                syscall(SYS_getpid);
}

/* A closed link stops its program once the kernel has let go of it, which may be a moment later. */
static bool stops_counting(int map_fd, uint32_t slot, void (*trigger)(void)) {
        for (int i = 0; i < 200; i++) {
                uint64_t before = counter(map_fd, slot);

                trigger();
                if (counter(map_fd, slot) == before)
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

static void five_getpids(void) {
        getpids(5);
}

static void setup(void) {
        struct statfs sfs;
        char globals[128];
        int r;

        if (fds_at_start >= 0)
                return;
        if (geteuid() != 0)
                tap_skip_all("needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
        objects_dir = getenv("BPF_OBJECTS_DIR");
        uprobe_target = getenv("UPROBE_TARGET");
        if (!objects_dir || !uprobe_target)
                tap_skip_all("BPF_OBJECTS_DIR and UPROBE_TARGET are not set: run it through meson test");
        if (statfs("/sys/fs/bpf", &sfs) < 0 || sfs.f_type != BPF_FS_MAGIC)
                tap_skip_all("no bpffs at /sys/fs/bpf");
        if (statfs("/sys/fs/cgroup/unified", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
                cgroup_root = "/sys/fs/cgroup/unified";
        else if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
                cgroup_root = "/sys/fs/cgroup";
        have_ip = RUN("ip", "-V") == 0;

        fds_at_start = count_fds();
        atexit(cleanup);
        snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/bpfcored-attach-%d", (int) getpid());
        snprintf(netns, sizeof(netns), "bpfcored-t%d", (int) getpid());
        snprintf(netns_path, sizeof(netns_path), "/run/netns/%s", netns);
        snprintf(veth_host, sizeof(veth_host), "bpfct%dh", (int) getpid());
        snprintf(veth_ns, sizeof(veth_ns), "bpfct%dn", (int) getpid());
        snprintf(ns_dir, sizeof(ns_dir), "/tmp/bpfcored-attach-%d-ns", (int) getpid());
        if (cgroup_root)
                snprintf(cgroup_dir, sizeof(cgroup_dir), "%s/bpfcored-test-%d", cgroup_root, (int) getpid());
        if (mkdir(pin_dir, 0700) < 0)
                tap_bail("mkdir %s: %s", pin_dir, strerror(errno));

        /* The tracing object is pinned and closed, as the daemon finds its programs after a restart. */
        {
                struct bpf_object *obj = NULL;
                char trace_pins[PATH_MAX], map_pin[PATH_MAX];

                snprintf(globals, sizeof(globals), "{\"target_tgid\":%d,\"getpid_nr\":%ld}", (int) getpid(),
                         (long) SYS_getpid);
                r = load_object("attach_trace", globals, &obj);
                if (r < 0)
                        tap_bail("loading attach_trace.bpf.o: %s", strerror(-r));
                snprintf(trace_pins, sizeof(trace_pins), "%s/trace", pin_dir);
                r = bpf_object__pin_programs(obj, trace_pins);
                bpf_object__close(obj);
                if (r < 0)
                        tap_bail("pinning attach_trace's programs: %s", strerror(-r));
                snprintf(map_pin, sizeof(map_pin), "%s/attach_trace_counts", pin_dir);
                trace_map = bpf_obj_get(map_pin);
                if (trace_map < 0)
                        tap_bail("%s: %s", map_pin, strerror(errno));
        }
        snprintf(globals, sizeof(globals), "{\"target_tgid\":%d}", (int) getpid());
        r = load_object("attach_probe", globals, &probe_obj);
        if (r < 0)
                tap_bail("loading attach_probe.bpf.o: %s", strerror(-r));
        probe_map = bpf_map__fd(bpf_object__find_map_by_name(probe_obj, "attach_probe_counts"));
        r = load_object("attach_net", NULL, &net_obj);
        if (r < 0)
                tap_bail("loading attach_net.bpf.o: %s", strerror(-r));
        net_map = bpf_map__fd(bpf_object__find_map_by_name(net_obj, "attach_net_counts"));
}

/* A pinned program, opened again from its pin. */
static int trace_prog(const char *name) {
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/trace/%s", pin_dir, name);
        return bpf_obj_get(p);
}

TEST(sections) {
        static const struct {
                const char *section;
                int ret;
                const char *type;
                const char *spec;
        } cases[] = {
                { "tracepoint/syscalls/sys_enter_execve", 0, "tracepoint",
                  "{ \"tracepoint\": \"syscalls\\/sys_enter_execve\" }" },
                { "tp/sched/sched_process_exit", 0, "tracepoint",
                  "{ \"tracepoint\": \"sched\\/sched_process_exit\" }" },
                { "raw_tp/sys_enter", 0, "raw_tp", "{ \"tracepoint\": \"sys_enter\" }" },
                { "raw_tracepoint/sched_switch", 0, "raw_tp", "{ \"tracepoint\": \"sched_switch\" }" },
                { "raw_tp.w/bpf_test_finish", 0, "raw_tp", "{ \"tracepoint\": \"bpf_test_finish\" }" },
                { "tp_btf/sched_process_exec", 0, "tp_btf", "{ }" },
                { "fentry/do_unlinkat", 0, "fentry", "{ }" },
                { "fentry.s/do_unlinkat", 0, "fentry", "{ }" },
                { "fexit/do_unlinkat", 0, "fexit", "{ }" },
                { "fmod_ret/security_file_open", 0, "fmod_ret", "{ }" },
                { "lsm/file_open", 0, "lsm", "{ }" },
                { "lsm.s/bprm_check_security", 0, "lsm", "{ }" },
                { "kprobe/do_unlinkat", 0, "kprobe", "{ \"function\": \"do_unlinkat\" }" },
                { "kprobe/do_unlinkat+0x10", 0, "kprobe",
                  "{ \"function\": \"do_unlinkat\", \"offset\": 16 }" },
                { "kretprobe/do_unlinkat", 0, "kretprobe", "{ \"function\": \"do_unlinkat\" }" },
                { "kprobe.multi/do_unlinkat*", 0, "kprobe", "{ \"pattern\": \"do_unlinkat*\" }" },
                { "kretprobe.multi/vfs_*", 0, "kretprobe", "{ \"pattern\": \"vfs_*\" }" },
                { "uprobe//bin/bash:readline", 0, "uprobe",
                  "{ \"path\": \"\\/bin\\/bash\", \"symbol\": \"readline\" }" },
                { "uretprobe//usr/lib/libc.so.6:malloc", 0, "uretprobe",
                  "{ \"path\": \"\\/usr\\/lib\\/libc.so.6\", \"symbol\": \"malloc\" }" },
                { "uprobe.s//bin/bash:readline", 0, "uprobe",
                  "{ \"path\": \"\\/bin\\/bash\", \"symbol\": \"readline\" }" },
                { "xdp", -ENOTSUP },
                { "xdp.frags", -ENOTSUP },
                { "tc", -ENOTSUP },
                { "tcx/ingress", -ENOTSUP },
                { "cgroup_skb/egress", -ENOTSUP },
                { "cgroup/sock_create", -ENOTSUP },
                { "socket", -ENOTSUP },
                { "kprobe", -ENOTSUP },
                { "uprobe", -ENOTSUP },
                { "kprobe.multi", -ENOTSUP },
                { "ksyscall/execve", -ENOTSUP },
                { "usdt/libc.so.6:libc:setjmp", -ENOTSUP },
                { "uprobe/libc.so.6:malloc", -ENOTSUP },
                { "tracepoint/sys_enter_execve", -EINVAL },
                { "tp/", -EINVAL },
                { "tracepoint/syscalls/", -EINVAL },
                { "raw_tp/", -EINVAL },
                { "fentry/", -EINVAL },
                { "kprobe/do_unlinkat+zz", -EINVAL },
                { "kretprobe/do_unlinkat+8", -EINVAL },
                { "uprobe//bin/bash", -EINVAL },
                { "uprobe//bin/bash:", -EINVAL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *type = NULL;
                json_object *spec = NULL;
                int r = attach_spec_from_section(cases[i].section, &type, &spec);

                if (cases[i].ret < 0) {
                        tap_is_int(r, cases[i].ret, "section %s: %s", cases[i].section,
                                   cases[i].ret == -ENOTSUP ? "-ENOTSUP (needs a target)"
                                                            : "-EINVAL (malformed)");
                        continue;
                }
                if (!tap_is_int(r, 0, "section %s attaches as %s", cases[i].section, cases[i].type))
                        continue;
                tap_is_str(type, cases[i].type, "section %s: type", cases[i].section);
                tap_is_str(json_object_to_json_string(spec), cases[i].spec, "section %s: spec",
                           cases[i].section);
                json_object_put(spec);
        }
}

TEST(tracepoint) {
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        char pin[PATH_MAX];
        uint64_t before;
        uint32_t id;
        int fd, r;

        setup();
        fd = trace_prog("tp_getpid");
        if (!tap_ok(fd >= 0, "the tracepoint program opened from its pin"))
                return;
        r = attach(fd, "tracepoint", "{\"tracepoint\":\"syscalls/sys_enter_getpid\"}", getpid(), &a, &f);
        if (!tap_attached(r, &f, "attach tracepoint syscalls/sys_enter_getpid")) {
                failure_done(&f);
                close(fd);
                return;
        }
        tap_ok(a.link_fd >= 0 && a.link_id > 0, "a link fd and a kernel link id (%u)", a.link_id);
        tap_is_str(a.type, "tracepoint", "type");
        tap_is_str(a.target, "syscalls/sys_enter_getpid", "target");

        before = counter(trace_map, TRACE_TRACEPOINT);
        getpids(17);
        tap_is_int(counter(trace_map, TRACE_TRACEPOINT) - before, 17,
                   "the tracepoint program counted 17 getpid() calls");

        /* The daemon's model: a pinned link outlives its fd, and goes with its pin. */
        snprintf(pin, sizeof(pin), "%s/link-tracepoint", pin_dir);
        tap_is_int(bpf_obj_pin(a.link_fd, pin), 0, "the link pins");
        id = a.link_id;
        attach_result_done(&a);
        before = counter(trace_map, TRACE_TRACEPOINT);
        getpids(5);
        tap_is_int(counter(trace_map, TRACE_TRACEPOINT) - before, 5,
                   "a pinned link keeps counting after its fd closed");
        unlink(pin);
        tap_ok(stops_counting(trace_map, TRACE_TRACEPOINT, five_getpids),
               "removing the link's pin stops the count");
        r = bpf_link_get_fd_by_id(id);
        tap_ok(r < 0, "link %u is gone", id);
        safe_close(r);

        r = attach(fd, "tracepoint", "{\"tracepoint\":\"syscalls/sys_enter_getpid\"}", 0, &a, &f);
        tap_attached(r, &f, "attach again, caller_pid 0 (the daemon's own namespaces)");
        attach_result_done(&a);
        tap_ok(stops_counting(trace_map, TRACE_TRACEPOINT, five_getpids),
               "closing the link fd stops the count");
        failure_done(&f);
        close(fd);
}

TEST(raw_tp) {
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        uint64_t before;
        int fd, r;

        setup();
        fd = trace_prog("raw_sys_enter");
        r = attach(fd, "raw_tp", "{\"tracepoint\":\"sys_enter\"}", getpid(), &a, &f);
        if (tap_attached(r, &f, "attach raw_tp sys_enter")) {
                tap_is_str(a.target, "sys_enter", "target");
                before = counter(trace_map, TRACE_RAW_TP);
                getpids(11);
                tap_is_int(counter(trace_map, TRACE_RAW_TP) - before, 11,
                           "the raw_tp program counted 11 getpid() calls");
                attach_result_done(&a);
                tap_ok(stops_counting(trace_map, TRACE_RAW_TP, five_getpids),
                       "closing the link stops the count");
        }
        failure_done(&f);
        safe_close(fd);
}

TEST(tp_btf) {
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        uint64_t before;
        int fd, r;

        setup();
        fd = trace_prog("btf_sys_enter");
        r = attach(fd, "tp_btf", NULL, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach tp_btf (target from the program's BTF id)")) {
                tap_is_str(a.target, "sys_enter", "target named from kernel BTF");
                before = counter(trace_map, TRACE_TP_BTF);
                getpids(13);
                tap_is_int(counter(trace_map, TRACE_TP_BTF) - before, 13,
                           "the tp_btf program counted 13 getpid() calls");
                attach_result_done(&a);
                tap_ok(stops_counting(trace_map, TRACE_TP_BTF, five_getpids),
                       "closing the link stops the count");
        }
        failure_done(&f);
        safe_close(fd);
}

/* The probed function's file offset the other way round from attach.c: through the PT_LOAD that maps it. */
static int64_t offset_by_program_headers(const char *path, const char *symbol) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        Elf_Scn *scn = NULL;
        int64_t ret = -1;
        uint64_t value = 0;
        size_t n;
        Elf *elf;

        if (fd < 0)
                return -1;
        elf_version(EV_CURRENT);
        elf = elf_begin(fd, ELF_C_READ, NULL);
        while (elf && !value && (scn = elf_nextscn(elf, scn))) {
                GElf_Shdr sh;
                Elf_Data *data;

                if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !(data = elf_getdata(scn, NULL)))
                        continue;
                for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
                        GElf_Sym sym;
                        const char *name;

                        if (gelf_getsym(data, (int) i, &sym) &&
                            (name = elf_strptr(elf, sh.sh_link, sym.st_name)) && strcmp(name, symbol) == 0)
                                value = sym.st_value;
                }
        }
        if (elf && value && elf_getphdrnum(elf, &n) == 0)
                for (size_t i = 0; i < n; i++) {
                        GElf_Phdr ph;

                        if (gelf_getphdr(elf, (int) i, &ph) && ph.p_type == PT_LOAD && value >= ph.p_vaddr &&
                            value < ph.p_vaddr + ph.p_filesz)
                                ret = (int64_t) (value - ph.p_vaddr + ph.p_offset);
                }
        if (elf)
                elf_end(elf);
        close(fd);
        return ret;
}

static int run_target(int calls) {
        char n[16];

        snprintf(n, sizeof(n), "%d", calls);
        return RUN(uprobe_target, n);
}

static void bind_target_dir(void) {
        char dir[PATH_MAX];

        snprintf(dir, sizeof(dir), "%s", uprobe_target);
        /* Only this child's mount namespace sees the target's directory at ns_dir. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(dirname(dir), ns_dir, NULL, MS_BIND, NULL) < 0)
                _exit(1);
}

TEST(uprobe) {
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        int entry, ret;
        char spec[PATH_MAX + 128], want[PATH_MAX + 64], path_in_ns[PATH_MAX];
        uint64_t calls, returns, sum;
        int64_t offset;
        pid_t held, child;
        int release[2], status, r;

        setup();
        entry = prog_fd(probe_obj, "uprobe_hit");
        ret = prog_fd(probe_obj, "uretprobe_hit");

        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"symbol\":\"" PROBED_FUNCTION "\"}", uprobe_target);
        r = attach(entry, "uprobe", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach uprobe %s:" PROBED_FUNCTION, uprobe_target)) {
                snprintf(want, sizeof(want), "%s:" PROBED_FUNCTION, uprobe_target);
                tap_is_str(a.target, want, "target");
                calls = counter(probe_map, PROBE_UPROBE);
                tap_is_int(run_target(5), 0, "the target runs");
                tap_is_int(counter(probe_map, PROBE_UPROBE) - calls, 5,
                           "the uprobe by symbol counted 5 calls");
                attach_result_done(&a);
        }

        offset = offset_by_program_headers(uprobe_target, PROBED_FUNCTION);
        tap_ok(offset > 0, "the function's file offset from the program headers: 0x%llx",
               (unsigned long long) offset);
        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"offset\":%lld}", uprobe_target, (long long) offset);
        r = attach(entry, "uprobe", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach uprobe by offset 0x%llx", (unsigned long long) offset)) {
                snprintf(want, sizeof(want), "%s:0x%llx", uprobe_target, (unsigned long long) offset);
                tap_is_str(a.target, want, "target");
                calls = counter(probe_map, PROBE_UPROBE);
                run_target(3);
                tap_is_int(counter(probe_map, PROBE_UPROBE) - calls, 3,
                           "the uprobe by offset counted 3 calls");
                attach_result_done(&a);
        }

        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"symbol\":\"" PROBED_FUNCTION "\"}", uprobe_target);
        r = attach(ret, "uretprobe", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach uretprobe by symbol")) {
                returns = counter(probe_map, PROBE_URETPROBE);
                sum = counter(probe_map, PROBE_URETURN_SUM);
                run_target(4);
                tap_is_int(counter(probe_map, PROBE_URETPROBE) - returns, 4,
                           "the uretprobe counted 4 returns");
                tap_is_int(counter(probe_map, PROBE_URETURN_SUM) - sum, 0 + 2 + 4 + 6,
                           "and saw the values returned (0+2+4+6)");
                attach_result_done(&a);
        }

        /* pid: a child held before exec is probed; another run of the same binary is not. */
        if (pipe2(release, O_CLOEXEC) < 0)
                tap_bail("pipe: %s", strerror(errno));
        fflush(stdout);
        held = fork();
        if (held == 0) {
                char c;

                close(release[1]);
                if (read(release[0], &c, 1) != 1)
                        _exit(1);
                execl(uprobe_target, uprobe_target, "2", (char *) NULL);
                _exit(127);
        }
        close(release[0]);
        remember_child(held);
        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"symbol\":\"" PROBED_FUNCTION "\",\"pid\":%d}",
                 uprobe_target, (int) held);
        r = attach(entry, "uprobe", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach uprobe with pid %d", (int) held)) {
                calls = counter(probe_map, PROBE_UPROBE);
                run_target(3);
                tap_is_int(counter(probe_map, PROBE_UPROBE) - calls, 0,
                           "another process's calls are not counted");
                tap_is_int(write(release[1], "x", 1), 1, "the held child goes on to exec the target");
                waitpid(held, &status, 0);
                forget_child(held);
                tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the held child ran the target");
                tap_is_int(counter(probe_map, PROBE_UPROBE) - calls, 2, "its 2 calls are counted");
                attach_result_done(&a);
        } else
                end_child(held);
        close(release[1]);

        /* The caller's mount namespace: a path only a child of ours can see. */
        if (!tap_ok(mkdir(ns_dir, 0700) == 0, "an empty directory %s", ns_dir))
                goto finish;
        child = child_in(bind_target_dir);
        if (!tap_ok(child > 0, "a child with %s bind-mounted at %s in its own mount namespace",
                    uprobe_target, ns_dir))
                goto finish;
        snprintf(path_in_ns, sizeof(path_in_ns), "%s/%s", ns_dir, strrchr(uprobe_target, '/') + 1);
        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"symbol\":\"" PROBED_FUNCTION "\"}", path_in_ns);
        r = attach(entry, "uprobe", spec, child, &a, &f);
        if (tap_attached(r, &f, "attach uprobe %s as the child sees it", path_in_ns)) {
                calls = counter(probe_map, PROBE_UPROBE);
                run_target(2);
                tap_is_int(counter(probe_map, PROBE_UPROBE) - calls, 2,
                           "the probe is on the same file: 2 calls counted");
                attach_result_done(&a);
        }
        failure_done(&f);
        r = attach(entry, "uprobe", spec, getpid(), &a, &f);
        tap_ok(r < 0 && strstr(failure_field(&f, "message"), "no such file"),
               "in our own mount namespace the path does not exist: %s", failure_field(&f, "message"));
        end_child(child);
finish:
        failure_done(&f);
}

static void unlink_three(void) {
        char p[64];

        snprintf(p, sizeof(p), "/tmp/bpfcored-attach-%d-unlink", (int) getpid());
        for (int i = 0; i < 3; i++) {
                safe_close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
                unlink(p);
        }
}

TEST(kprobe) {
        bool have_kprobes = access("/sys/bus/event_source/devices/kprobe/type", F_OK) == 0;
        static const struct {
                const char *type, *program;
                int slot;
        } probes[] = {
                { "kprobe", "kprobe_hit", PROBE_KPROBE },
                { "kretprobe", "kretprobe_hit", PROBE_KRETPROBE },
        };

        setup();
        for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
                AttachResult a = ATTACH_RESULT_NULL;
                Failure f = {};
                uint64_t before;
                int r;

                r = attach(prog_fd(probe_obj, probes[i].program), probes[i].type,
                           "{\"function\":\"do_unlinkat\"}", getpid(), &a, &f);
                if (!have_kprobes) {
                        tap_ok(r < 0 && f.error && strcmp(f.error, VL_ERROR_ATTACH_FAILED) == 0 &&
                                       strstr(failure_field(&f, "message"),
                                              "kprobes are not available on this kernel"),
                               "%s on a kernel without kprobes: AttachFailed \"%s\"", probes[i].type,
                               failure_field(&f, "message"));
                        tap_skip("this kernel has no kprobes", "%s do_unlinkat counts real calls",
                                 probes[i].type);
                } else if (tap_attached(r, &f, "attach %s do_unlinkat", probes[i].type)) {
                        tap_is_str(a.target, "do_unlinkat", "target");
                        before = counter(probe_map, probes[i].slot);
                        unlink_three();
                        tap_is_int(counter(probe_map, probes[i].slot) - before, 3,
                                   "%s counted 3 unlink calls", probes[i].type);
                        attach_result_done(&a);
                }
                failure_done(&f);
        }
}

/* Multi-kprobes need fprobe (CONFIG_FPROBE): its registration function is in kallsyms when it is there. */
static bool have_fprobe(void) {
        char line[512];
        bool found = false;
        FILE *f = fopen("/proc/kallsyms", "re");

        while (f && !found && fgets(line, sizeof(line), f))
                found = strstr(line, " register_fprobe_ips\n") != NULL;
        if (f)
                fclose(f);
        return found;
}

TEST(kprobe_multi) {
        static const struct {
                const char *type, *program, *spec, *target;
                int slot;
        } probes[] = {
                { "kprobe", "kprobe_multi_hit", "{\"pattern\":\"do_unlinka*\"}", "do_unlinka* (", PROBE_KPROBE_MULTI },
                { "kretprobe", "kretprobe_multi_hit", "{\"functions\":[\"do_unlinkat\",\"do_rmdir\",\"do_unlinkat\"]}",
                  "do_rmdir and 1 more", PROBE_KRETPROBE_MULTI },
        };
        static const struct {
                const char *spec, *word;
        } patterns[] = {
                { "{\"pattern\":\"bpfcored_nope_*\"}", "no kernel function that can be probed matches" },
                { "{\"pattern\":\"*\"}", "matches more than 4096 functions" },
        };
        bool fprobe = have_fprobe();

        setup();
        for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
                AttachResult a = ATTACH_RESULT_NULL;
                Failure f = {};
                uint64_t before;
                int r;

                r = attach(prog_fd(probe_obj, probes[i].program), probes[i].type, probes[i].spec, getpid(), &a,
                           &f);
                if (!fprobe) {
                        tap_ok(r < 0 && f.error && strcmp(f.error, VL_ERROR_ATTACH_FAILED) == 0 &&
                                       strstr(failure_field(&f, "message"), "multi-kprobes are not available"),
                               "%s %s on a kernel without fprobe: AttachFailed \"%s\"", probes[i].type,
                               probes[i].spec, failure_field(&f, "message"));
                        tap_skip("this kernel has no fprobe (CONFIG_FPROBE)", "%s %s counts real calls",
                                 probes[i].type, probes[i].spec);
                } else if (tap_attached(r, &f, "attach %s %s", probes[i].type, probes[i].spec)) {
                        tap_ok(strncmp(a.target, probes[i].target, strlen(probes[i].target)) == 0,
                               "target %s", a.target);
                        before = counter(probe_map, probes[i].slot);
                        unlink_three();
                        tap_is_int(counter(probe_map, probes[i].slot) - before, 3, "%s counted 3 unlink calls",
                                   probes[i].type);
                        attach_result_done(&a);
                }
                failure_done(&f);
        }
        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                AttachResult a = ATTACH_RESULT_NULL;
                Failure f = {};
                int r;

                if (!fprobe) {
                        tap_skip("this kernel has no fprobe (CONFIG_FPROBE)", "pattern %s: AttachFailed \"%s\"",
                                 patterns[i].spec, patterns[i].word);
                        continue;
                }
                r = attach(prog_fd(probe_obj, "kprobe_multi_hit"), "kprobe", patterns[i].spec, getpid(), &a, &f);
                tap_ok(r < 0 && f.error && strcmp(f.error, VL_ERROR_ATTACH_FAILED) == 0 &&
                               strstr(failure_field(&f, "message"), patterns[i].word),
                       "pattern %s: AttachFailed \"%s\"", patterns[i].spec, failure_field(&f, "message"));
                failure_done(&f);
        }
}

TEST(fentry) {
        struct bpf_object *obj = NULL;
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        char globals[64];
        int fd, r;

        setup();
        /* The error path runs everywhere: a tracepoint program is no fentry program. */
        fd = trace_prog("tp_getpid");
        r = attach(fd, "fentry", NULL, getpid(), &a, &f);
        tap_ok(r < 0 && strcmp(failure_field(&f, "message"),
                               "program is tracepoint, not a fentry program") == 0,
               "fentry with a tracepoint program: %s", failure_field(&f, "message"));
        safe_close(fd);
        failure_done(&f);

        snprintf(globals, sizeof(globals), "{\"target_tgid\":%d}", (int) getpid());
        r = load_object("attach_fentry", globals, &obj);
        if (r < 0) {
                tap_diag("loading attach_fentry.bpf.o: %s", strerror(-r));
                tap_skip("this kernel refuses fentry", "attach fentry do_unlinkat and count real calls");
                return;
        }
        r = attach(prog_fd(obj, "fentry_unlinkat"), "fentry", NULL, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach fentry")) {
                struct bpf_map *bss = bpf_object__find_map_by_name(obj, ".bss");
                uint64_t hits = 0, before = 0;
                uint32_t zero = 0;

                tap_is_str(a.target, "do_unlinkat", "target named from kernel BTF");
                bpf_map_lookup_elem(bpf_map__fd(bss), &zero, &before);
                unlink_three();
                bpf_map_lookup_elem(bpf_map__fd(bss), &zero, &hits);
                tap_is_int(hits - before, 3, "fentry counted 3 unlink calls");
                attach_result_done(&a);
        }
        failure_done(&f);
        bpf_object__close(obj);
}


static bool netns_inode(ino_t *ret) {
        struct stat st;

        if (stat("/proc/thread-self/ns/net", &st) < 0)
                return false;
        *ret = st.st_ino;
        return true;
}

TEST(xdp_tc) {
        static const struct {
                const char *type, *spec_fmt, *target_fmt, *program;
                int slot;
        } cases[] = {
                { "xdp", "{\"interface\":\"%s\"}", "%s", "xdp_icmp", NET_XDP_ECHO },
                { "xdp", "{\"interface\":\"%s\",\"mode\":\"skb\"}", "%s (skb mode)", "xdp_icmp",
                  NET_XDP_ECHO },
                { "tc", "{\"interface\":\"%s\",\"direction\":\"ingress\"}", "%s ingress", "tc_icmp",
                  NET_TC_ECHO },
        };
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        char spec[128], want[64], host_prefix[INET_ADDRSTRLEN + 3], ns_prefix[INET_ADDRSTRLEN + 3];
        ino_t before_ns = 0, after_ns = 0;
        uint64_t before;
        pid_t child;
        int r;

        setup();
        if (!have_ip) {
                tap_skip("iproute2 (ip) is not installed", "XDP and tcx on a veth pair");
                return;
        }
        if (!pick_subnet(host_ip, ns_ip)) {
                tap_skip("every candidate test subnet is in use here", "XDP and tcx on a veth pair");
                return;
        }
        netns_made = RUN("ip", "netns", "add", netns) == 0;
        if (!tap_ok(netns_made, "network namespace %s", netns))
                return;
        r = RUN("ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_ns, "netns", netns);
        snprintf(host_prefix, sizeof(host_prefix), "%s/30", host_ip);
        snprintf(ns_prefix, sizeof(ns_prefix), "%s/30", ns_ip);
        r = r ?: RUN("ip", "addr", "add", host_prefix, "dev", veth_host);
        r = r ?: RUN("ip", "link", "set", veth_host, "up");
        r = r ?: RUN("ip", "-n", netns, "addr", "add", ns_prefix, "dev", veth_ns);
        r = r ?: RUN("ip", "-n", netns, "link", "set", veth_ns, "up");
        if (!tap_is_int(r, 0, "veth pair %s (here, %s) and %s (in %s, %s)", veth_host, host_prefix, veth_ns,
                        netns, ns_prefix))
                return;
        /* Carrier and ARP settle before anything is counted. */
        tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping across the pair");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(spec, sizeof(spec), cases[i].spec_fmt, veth_host);
                r = attach(prog_fd(net_obj, cases[i].program), cases[i].type, spec, getpid(), &a, &f);
                if (!tap_attached(r, &f, "attach %s %s", cases[i].type, spec))
                        continue;
                snprintf(want, sizeof(want), cases[i].target_fmt, veth_host);
                tap_is_str(a.target, want, "target");
                before = counter(net_map, cases[i].slot);
                tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping from the namespace");
                tap_is_int(counter(net_map, cases[i].slot) - before, 3, "%s on %s counted 3 echo requests",
                           cases[i].type, want);
                attach_result_done(&a);
        }

        /* clsact, asked for by mode (this kernel has tcx): a cls_bpf filter of ours, found by handle. */
        {
                uint32_t id = CLSACT_ID_MIN + (uint32_t) getpid(), tc_prog = prog_id_of(prog_fd(net_obj, "tc_icmp"));
                char handle[32];

                snprintf(spec, sizeof(spec),
                         "{\"interface\":\"%s\",\"direction\":\"ingress\",\"mode\":\"clsact\",\"priority\":7}",
                         veth_host);
                snprintf(handle, sizeof(handle), "handle 0x%x", id);
                announce_answer = -EIO;
                r = attach_filter(prog_fd(net_obj, "tc_icmp"), spec, getpid(), id, &a, &f);
                tap_ok(r < 0 && n_announced == 1 && !tc_shows(NULL, veth_host, "ingress", handle),
                       "a filter that cannot be recorded first is not added: %s", failure_field(&f, "message"));
                failure_done(&f);
                announce_answer = 0;
                r = attach_filter(prog_fd(net_obj, "tc_icmp"), spec, getpid(), id, &a, &f);
                if (tap_attached(r, &f, "attach tc %s", spec)) {
                        snprintf(want, sizeof(want), "%s ingress (clsact)", veth_host);
                        tap_is_str(a.target, want, "target");
                        tap_ok(a.is_filter && a.link_fd < 0 && a.link_id == id,
                               "no link: the filter's id is the one given (%u)", a.link_id);
                        tap_ok(n_announced == 1 && announced.handle == id && announced.priority == 7 &&
                                       announced.ifindex == if_nametoindex(veth_host) && !announced.egress &&
                                       netns_inode(&before_ns) && announced.netns == before_ns &&
                                       strcmp(announced.interface, veth_host) == 0,
                               "announced before it was added: ifindex %u, handle 0x%x, priority %u, netns %llu",
                               announced.ifindex, announced.handle, announced.priority,
                               (unsigned long long) announced.netns);
                        tap_ok(tc_shows(NULL, veth_host, "ingress", handle) &&
                                       tc_shows(NULL, veth_host, "ingress", "direct-action"),
                               "tc filter show lists it (%s, direct-action)", handle);
                        tap_is_int(clsact_check(&a.filter, tc_prog), 1, "clsact_check finds it running tc_icmp");
                        before = counter(net_map, NET_TC_ECHO);
                        tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping from the namespace");
                        tap_is_int(counter(net_map, NET_TC_ECHO) - before, 3, "the clsact filter counted 3 echo requests");
                        r = attach_filter(prog_fd(net_obj, "tc_icmp"), spec, getpid(), id, &a, &f);
                        tap_ok(r < 0 && strstr(failure_field(&f, "message"), "already"),
                               "the same handle and priority twice: %s", failure_field(&f, "message"));
                        failure_done(&f);
                        tap_is_int(clsact_detach(&a.filter, tc_prog + 1), 0, "not removed for another program");
                        tap_is_int(clsact_detach(&a.filter, tc_prog), 1, "clsact_detach removes it");
                        tap_ok(!tc_shows(NULL, veth_host, "ingress", handle), "tc filter show no longer lists it");
                        tap_is_int(clsact_check(&a.filter, tc_prog), 0, "clsact_check: gone");
                        before = counter(net_map, NET_TC_ECHO);
                        tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping from the namespace");
                        tap_is_int(counter(net_map, NET_TC_ECHO) - before, 0, "nothing counted after the detach");
                        tap_is_int(clsact_detach(&a.filter, tc_prog), 0, "detaching again: already gone");
                        attach_result_done(&a);
                }
                failure_done(&f);

                /* In the caller's namespace, found again from ours by its inode. */
                child = child_in(enter_test_netns);
                if (tap_ok(child > 0, "a child in %s", netns)) {
                        struct stat st;

                        snprintf(spec, sizeof(spec),
                                 "{\"interface\":\"%s\",\"direction\":\"egress\",\"mode\":\"clsact\"}", veth_ns);
                        r = attach_filter(prog_fd(net_obj, "tc_icmp"), spec, child, id + 1, &a, &f);
                        if (tap_attached(r, &f, "attach tc to %s egress as the child in %s sees it", veth_ns,
                                         netns)) {
                                tap_ok(stat(netns_path, &st) == 0 && a.filter.netns == (uint64_t) st.st_ino &&
                                               a.filter.egress && a.filter.priority == CLSACT_PRIORITY_DEFAULT,
                                       "recorded in %s's namespace (inode %llu), egress, priority 1", netns,
                                       (unsigned long long) a.filter.netns);
                                before = counter(net_map, NET_TC_ECHO);
                                tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping from the namespace");
                                tap_is_int(counter(net_map, NET_TC_ECHO) - before, 3,
                                           "the filter on %s egress counted 3 echo requests", veth_ns);
                                tap_is_int(clsact_detach(&a.filter, tc_prog), 1, "removed from our own namespace");
                                tap_ok(!tc_shows(netns, veth_ns, "egress", "tc_icmp"), "tc -n %s filter show: gone",
                                       netns);
                                attach_result_done(&a);
                        }
                        failure_done(&f);
                        end_child(child);
                }
        }

        /* The caller's network namespace: the other end exists only there. */
        child = child_in(enter_test_netns);
        if (!tap_ok(child > 0, "a child in %s", netns))
                goto finish;
        netns_inode(&before_ns);
        snprintf(spec, sizeof(spec), "{\"interface\":\"%s\"}", veth_ns);
        r = attach(prog_fd(net_obj, "xdp_icmp"), "xdp", spec, child, &a, &f);
        tap_ok(netns_inode(&after_ns) && after_ns == before_ns, "back in our own network namespace");
        if (tap_attached(r, &f, "attach xdp to %s as the child in %s sees it", veth_ns, netns)) {
                tap_is_str(a.target, veth_ns, "target");
                before = counter(net_map, NET_XDP_REPLY);
                tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping from the namespace");
                tap_is_int(counter(net_map, NET_XDP_REPLY) - before, 3,
                           "XDP on %s counted the 3 echo replies", veth_ns);
                attach_result_done(&a);
        }
        r = attach(prog_fd(net_obj, "xdp_icmp"), "xdp", spec, getpid(), &a, &f);
        tap_ok(r < 0 && strstr(failure_field(&f, "message"), veth_ns),
               "from our own namespace %s does not exist: %s", veth_ns, failure_field(&f, "message"));
        end_child(child);
finish:
        failure_done(&f);
}

TEST(cgroup) {
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        char spec[PATH_MAX + 64], want[PATH_MAX + 32];
        uint64_t before;
        pid_t child;
        int status, r;

        setup();
        if (!cgroup_root) {
                tap_skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup",
                         "cgroup_skb egress");
                return;
        }
        if (!tap_ok(mkdir(cgroup_dir, 0755) == 0, "cgroup %s", cgroup_dir))
                return;
        snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"attach_type\":\"cgroup_skb/egress\"}", cgroup_dir);
        r = attach(prog_fd(net_obj, "cgroup_egress"), "cgroup", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach cgroup_skb/egress to %s", cgroup_dir)) {
                snprintf(want, sizeof(want), "%s (cgroup_skb/egress)", cgroup_dir);
                tap_is_str(a.target, want, "target");
                before = counter(net_map, NET_CGROUP_EGRESS);
                fflush(stdout);
                child = fork();
                if (child == 0) {
                        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
                        char procs[PATH_MAX + 16], pid[16];
                        int fd, s;

                        /* Into the cgroup first: a socket belongs to the cgroup it was made in. */
                        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup_dir);
                        snprintf(pid, sizeof(pid), "%d", (int) getpid());
                        fd = open(procs, O_WRONLY | O_CLOEXEC);
                        if (fd < 0 || write(fd, pid, strlen(pid)) < 0)
                                _exit(1);
                        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                        for (int i = 0; i < 3; i++)
                                if (sendto(s, "bpfcored", 8, 0, (struct sockaddr *) &to, sizeof(to)) != 8)
                                        _exit(2);
                        _exit(0);
                }
                waitpid(child, &status, 0);
                tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                       "a child in the cgroup sent 3 UDP datagrams to 127.0.0.1");
                tap_is_int(counter(net_map, NET_CGROUP_EGRESS) - before, 3,
                           "the cgroup program counted 3 packets");
                attach_result_done(&a);
        }
        failure_done(&f);
        /* An exited task leaves its cgroup a moment after it is reaped. */
        for (int i = 0; i < 100 && rmdir(cgroup_dir) < 0 && errno == EBUSY; i++)
                usleep(10 * 1000);
        tap_ok(access(cgroup_dir, F_OK) < 0, "cgroup %s removed", cgroup_dir);
}

typedef struct ErrorCase {
        const char *what;
        const char *program; /* trace pin name, or a program of probe_obj/net_obj */
        const char *type;
        const char *spec;    /* JSON; one %s is replaced by subject */
        const char *const *subject;
        const char *error;
        const char *parameter; /* InvalidParameter's parameter */
        const char *word;      /* in the message */
} ErrorCase;

/* Spins on CPU 0 until slot of the perf counter map moved, for up to 3 s of wall time. */
static bool samples_arrive(int map_fd, uint32_t slot) {
        cpu_set_t one, all;
        uint64_t before = counter(map_fd, slot);
        bool moved = false;
        struct timespec t0, t;

        CPU_ZERO(&one);
        CPU_SET(0, &one);
        sched_getaffinity(0, sizeof(all), &all);
        sched_setaffinity(0, sizeof(one), &one);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
                for (volatile unsigned i = 0; i < 1000000; i++)
                        ;
                moved = counter(map_fd, slot) > before;
                clock_gettime(CLOCK_MONOTONIC, &t);
        } while (!moved && t.tv_sec - t0.tv_sec < 3);
        sched_setaffinity(0, sizeof(all), &all);
        return moved;
}

static int perf_map = -1;

static void burn_cpu0(void) {
        samples_arrive(perf_map, 0);
}

/* perf_event: sampling on one CPU, and for one process; each link stops the program when it goes. */
TEST(perf_event) {
        static const struct {
                const char *spec;
                const char *error;
                const char *says; /* in the message */
        } errors[] = {
                { "{\"event\":\"no-such-event\",\"cpu\":0}", "InvalidParameter", "unknown event" },
                { "{\"event\":\"cpu-clock\"}", "InvalidParameter", "either cpu" },
                { "{\"event\":\"cpu-clock\",\"cpu\":0,\"pid\":1}", "InvalidParameter", "either cpu" },
                { "{\"event\":\"cpu-clock\",\"cpu\":0,\"frequency\":99,\"period\":5}", "InvalidParameter",
                  "not both" },
                { "{\"event\":\"cpu-clock\",\"cpu\":0,\"frequency\":0}", "InvalidParameter", "positive" },
                { "{\"event\":\"cpu-clock\",\"cpu\":4000}", "AttachFailed", "no CPU 4000" },
                { "{\"event\":\"cpu-clock\",\"pid\":2147483647}", "AttachFailed", "no process" },
        };
        _cleanup_free_ char *globals = NULL;
        struct bpf_object *obj = NULL;
        AttachResult a = ATTACH_RESULT_NULL;
        Failure f = {};
        char spec[128];
        int fd, r;

        setup();
        if (asprintf(&globals, "{\"target_tgid\":%d}", getpid()) < 0)
                abort();
        if (!tap_is_int(load_object("attach_perf", globals, &obj), 0, "attach_perf.bpf.o loads"))
                return;
        fd = prog_fd(obj, "on_sample");
        perf_map = bpf_object__find_map_fd_by_name(obj, "attach_perf_counts");

        r = attach(fd, "perf_event", "{\"event\":\"cpu-clock\",\"cpu\":0,\"frequency\":1000}", getpid(), &a, &f);
        if (tap_attached(r, &f, "attach perf_event cpu-clock on CPU 0 at 1000 Hz")) {
                tap_is_str(a.target, "cpu-clock cpu 0 at 1000 Hz", "target");
                tap_ok(samples_arrive(perf_map, 0), "the program runs on CPU 0's samples while it is busy");
                attach_result_done(&a);
                tap_ok(stops_counting(perf_map, 0, burn_cpu0), "closing the link stops the sampling");
        }
        failure_done(&f);

        snprintf(spec, sizeof(spec), "{\"event\":\"task-clock\",\"pid\":%d,\"period\":100000}", getpid());
        r = attach(fd, "perf_event", spec, getpid(), &a, &f);
        if (tap_attached(r, &f, "attach perf_event task-clock of this process, every 100 us of its CPU time")) {
                snprintf(spec, sizeof(spec), "task-clock pid %d every 100000", getpid());
                tap_is_str(a.target, spec, "target");
                tap_ok(samples_arrive(perf_map, 1), "the program runs on this process's samples");
                attach_result_done(&a);
        }
        failure_done(&f);

        /* No hardware PMU (a VM): a clean AttachFailed; with one, a link like any other. */
        r = attach(fd, "perf_event", "{\"event\":\"cycles\",\"cpu\":0}", getpid(), &a, &f);
        tap_ok(r == 0 || (strcmp(f.error ?: "", VL_ERROR_ATTACH_FAILED) == 0 &&
                          strstr(failure_field(&f, "message"), "this machine has no cycles event")),
               "cycles: %s", r == 0 ? "attached (this machine has a PMU)" : failure_field(&f, "message"));
        attach_result_done(&a);
        failure_done(&f);

        for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
                r = attach(fd, "perf_event", errors[i].spec, getpid(), &a, &f);
                tap_ok(r < 0 && strstr(f.error ?: "", errors[i].error) &&
                               strstr(failure_field(&f, "message"), errors[i].says),
                       "perf_event %s: %s (%s)", errors[i].spec, errors[i].error, failure_field(&f, "message"));
                attach_result_done(&a);
                failure_done(&f);
        }

        fd = trace_prog("tp_getpid");
        r = attach(fd, "perf_event", "{\"event\":\"cpu-clock\",\"cpu\":0}", getpid(), &a, &f);
        tap_ok(r < 0 && strstr(failure_field(&f, "message"), "not a perf_event program"),
               "a tracepoint program cannot sample: %s", failure_field(&f, "message"));
        attach_result_done(&a);
        failure_done(&f);
        safe_close(fd);
        bpf_object__close(obj);
}

static const char *nowhere = "/sys/fs/cgroup/unified/bpfcored-nope";

static const ErrorCase error_cases[] = {
        { "nonexistent tracepoint", "tp_getpid", "tracepoint",
          "{\"tracepoint\":\"syscalls/sys_enter_bpfcored_nope\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "no such tracepoint: syscalls/sys_enter_bpfcored_nope" },
        { "nonexistent raw tracepoint", "raw_sys_enter", "raw_tp", "{\"tracepoint\":\"bpfcored_nope\"}",
          NULL, VL_ERROR_ATTACH_FAILED, NULL, "no such tracepoint: bpfcored_nope" },
        { "nonexistent interface (xdp)", "xdp_icmp", "xdp", "{\"interface\":\"bpfcored-nope\"}", NULL,
          VL_ERROR_ATTACH_FAILED, NULL, "no such interface: bpfcored-nope" },
        { "nonexistent interface (tc)", "tc_icmp", "tc",
          "{\"interface\":\"bpfcored-nope\",\"direction\":\"egress\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "no such interface: bpfcored-nope" },
        { "nonexistent cgroup", "cgroup_egress", "cgroup",
          "{\"path\":\"%s\",\"attach_type\":\"cgroup_skb/egress\"}", &nowhere, VL_ERROR_ATTACH_FAILED, NULL,
          "no such cgroup: /sys/fs/cgroup/unified/bpfcored-nope" },
        { "not a cgroup", "cgroup_egress", "cgroup",
          "{\"path\":\"/tmp\",\"attach_type\":\"cgroup_skb/egress\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "/tmp is not a cgroup2 directory" },
        { "nonexistent uprobe symbol", "uprobe_hit", "uprobe",
          "{\"path\":\"%s\",\"symbol\":\"bpfcored_nope\"}", &uprobe_target, VL_ERROR_ATTACH_FAILED, NULL,
          "no function bpfcored_nope in" },
        { "nonexistent uprobe binary", "uprobe_hit", "uprobe",
          "{\"path\":\"/bpfcored/nope\",\"symbol\":\"main\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "no such file: /bpfcored/nope" },
        { "uprobe on a file that is not ELF", "uprobe_hit", "uprobe",
          "{\"path\":\"/etc/passwd\",\"symbol\":\"main\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "/etc/passwd is not an ELF file" },
        { "uprobe on a directory", "uprobe_hit", "uprobe", "{\"path\":\"/tmp\",\"offset\":0}", NULL,
          VL_ERROR_ATTACH_FAILED, NULL, "/tmp is not a regular file" },
        { "xdp program as a tracepoint", "xdp_icmp", "tracepoint",
          "{\"tracepoint\":\"syscalls/sys_enter_getpid\"}", NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "program is xdp, not a tracepoint program" },
        { "tracepoint program as xdp", "tp_getpid", "xdp", "{\"interface\":\"lo\"}", NULL,
          VL_ERROR_ATTACH_FAILED, NULL, "program is tracepoint, not a xdp program" },
        { "tp_btf program as fentry", "btf_sys_enter", "fentry", NULL, NULL, VL_ERROR_ATTACH_FAILED, NULL,
          "program is a tp_btf program (tracepoint sys_enter), not a fentry program" },
        { "cgroup_skb program for sock_create", "cgroup_egress", "cgroup",
          "{\"path\":\"%s\",\"attach_type\":\"cgroup/sock_create\"}", &nowhere, VL_ERROR_ATTACH_FAILED, NULL,
          "program is cgroup_skb, not a cgroup_sock program" },
        { "unknown type", "tp_getpid", "kprobe_multi", "{}", NULL, VL_ERROR_INVALID_PARAMETER, "type",
          "unknown attach type 'kprobe_multi'" },
        { "tracepoint missing", "tp_getpid", "tracepoint", "{}", NULL, VL_ERROR_INVALID_PARAMETER,
          "tracepoint.tracepoint", "missing" },
        { "tracepoint without category", "tp_getpid", "tracepoint", "{\"tracepoint\":\"sys_enter_getpid\"}",
          NULL, VL_ERROR_INVALID_PARAMETER, "tracepoint.tracepoint", "category/name" },
        { "tracepoint climbing out", "tp_getpid", "tracepoint", "{\"tracepoint\":\"../../../etc/passwd\"}",
          NULL, VL_ERROR_INVALID_PARAMETER, "tracepoint.tracepoint", "category/name" },
        { "NUL in a name", "tp_getpid", "tracepoint",
          "{\"tracepoint\":\"syscalls/sys_enter_getpid\\u0000x\"}", NULL, VL_ERROR_INVALID_PARAMETER,
          "tracepoint.tracepoint", "NUL" },
        { "unknown field", "tp_getpid", "tracepoint",
          "{\"tracepoint\":\"syscalls/sys_enter_getpid\",\"cpu\":1}", NULL, VL_ERROR_INVALID_PARAMETER,
          "tracepoint.cpu", "unknown parameter" },
        { "spec not an object", "tp_getpid", "tracepoint", "[1]", NULL, VL_ERROR_INVALID_PARAMETER,
          "tracepoint", "must be an object" },
        { "raw_tp name with a slash", "raw_sys_enter", "raw_tp", "{\"tracepoint\":\"raw/sys_enter\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "raw_tp.tracepoint", "not a raw tracepoint name" },
        { "'..' in a uprobe path", "uprobe_hit", "uprobe",
          "{\"path\":\"/usr/../bin/true\",\"symbol\":\"main\"}", NULL, VL_ERROR_INVALID_PARAMETER,
          "uprobe.path", "'..'" },
        { "relative uprobe path", "uprobe_hit", "uprobe", "{\"path\":\"bin/true\",\"symbol\":\"main\"}",
          NULL, VL_ERROR_INVALID_PARAMETER, "uprobe.path", "absolute" },
        { "uprobe with symbol and offset", "uprobe_hit", "uprobe",
          "{\"path\":\"/bin/true\",\"symbol\":\"main\",\"offset\":1}", NULL, VL_ERROR_INVALID_PARAMETER,
          "uprobe.offset", "either symbol" },
        { "uprobe with neither", "uprobe_hit", "uprobe", "{\"path\":\"/bin/true\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "uprobe.symbol", "either symbol" },
        { "uprobe pid 0", "uprobe_hit", "uprobe", "{\"path\":\"/bin/true\",\"offset\":0,\"pid\":0}", NULL,
          VL_ERROR_INVALID_PARAMETER, "uprobe.pid", "not a process id" },
        { "negative offset", "uprobe_hit", "uprobe", "{\"path\":\"/bin/true\",\"offset\":-1}", NULL,
          VL_ERROR_INVALID_PARAMETER, "uprobe.offset", "integer" },
        { "kretprobe with an offset", "kretprobe_hit", "kretprobe",
          "{\"function\":\"do_unlinkat\",\"offset\":4}", NULL, VL_ERROR_INVALID_PARAMETER,
          "kretprobe.offset", "entry" },
        { "kprobe function with a space", "kprobe_hit", "kprobe", "{\"function\":\"do unlinkat\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "kprobe.function", "not a kernel function name" },
        { "kprobe without a function", "kprobe_hit", "kprobe", "{}", NULL, VL_ERROR_INVALID_PARAMETER,
          "kprobe.function", "give function, pattern or functions" },
        { "kprobe pattern and function", "kprobe_multi_hit", "kprobe",
          "{\"function\":\"do_unlinkat\",\"pattern\":\"do_*\"}", NULL, VL_ERROR_INVALID_PARAMETER,
          "kprobe.function", "one of function" },
        { "kprobe pattern with a slash", "kprobe_multi_hit", "kprobe", "{\"pattern\":\"../do_*\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "kprobe.pattern", "not a glob" },
        { "kprobe empty function list", "kprobe_multi_hit", "kprobe", "{\"functions\":[]}", NULL,
          VL_ERROR_INVALID_PARAMETER, "kprobe.functions", "1 to 4096" },
        { "kprobe function list with a number", "kprobe_multi_hit", "kprobe", "{\"functions\":[\"a\",7]}", NULL,
          VL_ERROR_INVALID_PARAMETER, "kprobe.functions", "array of strings" },
        { "interface name too long", "xdp_icmp", "xdp", "{\"interface\":\"bpfcored-much-too-long\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "xdp.interface", "not an interface name" },
        { "interface with a slash", "xdp_icmp", "xdp", "{\"interface\":\"../lo\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "xdp.interface", "not an interface name" },
        { "xdp mode", "xdp_icmp", "xdp", "{\"interface\":\"lo\",\"mode\":\"turbo\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "xdp.mode", "skb, drv or hw" },
        { "tc direction", "tc_icmp", "tc", "{\"interface\":\"lo\",\"direction\":\"sideways\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "tc.direction", "ingress or egress" },
        { "tc without direction", "tc_icmp", "tc", "{\"interface\":\"lo\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "tc.direction", "missing" },
        { "tc mode", "tc_icmp", "tc", "{\"interface\":\"lo\",\"direction\":\"ingress\",\"mode\":\"qdisc\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "tc.mode", "tcx or clsact" },
        { "tc priority out of range", "tc_icmp", "tc",
          "{\"interface\":\"lo\",\"direction\":\"ingress\",\"mode\":\"clsact\",\"priority\":65536}", NULL,
          VL_ERROR_INVALID_PARAMETER, "tc.priority", "1 to 65535" },
        { "tc priority for tcx", "tc_icmp", "tc",
          "{\"interface\":\"lo\",\"direction\":\"ingress\",\"mode\":\"tcx\",\"priority\":3}", NULL,
          VL_ERROR_INVALID_PARAMETER, "tc.priority", "clsact" },
        { "tc clsact without an id to give it", "tc_icmp", "tc",
          "{\"interface\":\"lo\",\"direction\":\"ingress\",\"mode\":\"clsact\"}", NULL,
          VL_ERROR_ATTACH_FAILED, NULL, "needs an id" },
        { "cgroup attach type that is not one", "cgroup_egress", "cgroup",
          "{\"path\":\"%s\",\"attach_type\":\"xdp\"}", &nowhere, VL_ERROR_INVALID_PARAMETER,
          "cgroup.attach_type", "not a cgroup attach type" },
        { "cgroup attach type without a direction", "cgroup_egress", "cgroup",
          "{\"path\":\"%s\",\"attach_type\":\"cgroup/skb\"}", &nowhere, VL_ERROR_INVALID_PARAMETER,
          "cgroup.attach_type", "not a cgroup attach type" },
        { "'..' in a cgroup path", "cgroup_egress", "cgroup",
          "{\"path\":\"/sys/fs/cgroup/..\",\"attach_type\":\"cgroup_skb/egress\"}", NULL,
          VL_ERROR_INVALID_PARAMETER, "cgroup.path", "'..'" },
};

static int error_case_prog(const char *name) {
        int fd = prog_fd(probe_obj, name);

        if (fd < 0)
                fd = prog_fd(net_obj, name);
        /* Our own duplicate, so every case closes what it used. */
        return fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : trace_prog(name);
}

TEST(errors) {
        ino_t before_ns = 0, after_ns = 0;
        int fds_before;

        setup();
        netns_inode(&before_ns);
        fds_before = count_fds();
        for (size_t i = 0; i < ELEMENTSOF(error_cases); i++) {
                const ErrorCase *c = &error_cases[i];
                AttachResult a = ATTACH_RESULT_NULL;
                Failure f = {};
                char spec[PATH_MAX + 128];
                int fd = error_case_prog(c->program), r;

                if (c->spec)
                        snprintf(spec, sizeof(spec), c->spec, c->subject ? *c->subject : "");
                r = attach(fd, c->type, c->spec ? spec : NULL, getpid(), &a, &f);
                if (!tap_ok(r < 0 && f.error && strcmp(f.error, c->error) == 0 &&
                                    (!c->parameter ||
                                     strcmp(failure_field(&f, "parameter"), c->parameter) == 0) &&
                                    strstr(failure_field(&f, "message"), c->word),
                            "%s: %s%s%s \"%s\"", c->what, strrchr(c->error, '.') + 1,
                            c->parameter ? " " : "", c->parameter ?: "", failure_field(&f, "message")))
                        tap_diag("expected %s %s with \"%s\"", c->error, c->parameter ?: "", c->word);
                if (a.link_fd >= 0)
                        tap_ok(false, "%s: the result is untouched on failure", c->what);
                failure_done(&f);
                close(fd);
        }

        {
                AttachResult a = ATTACH_RESULT_NULL;
                Failure f = {};
                pid_t gone;
                char spec[PATH_MAX + 64];
                int r;

                /* A caller that went away: its namespaces are out of reach. */
                fflush(stdout);
                gone = fork();
                if (gone == 0)
                        _exit(0);
                waitpid(gone, NULL, 0);
                snprintf(spec, sizeof(spec), "{\"path\":\"%s\",\"symbol\":\"" PROBED_FUNCTION "\"}",
                         uprobe_target);
                r = attach(prog_fd(probe_obj, "uprobe_hit"), "uprobe", spec, gone, &a, &f);
                tap_ok(r < 0 && strstr(failure_field(&f, "message"), "caller's mount namespace"),
                       "a caller that exited: %s", failure_field(&f, "message"));
                failure_done(&f);
                r = attach(prog_fd(net_obj, "xdp_icmp"), "xdp", "{\"interface\":\"lo\"}", gone, &a, &f);
                tap_ok(r < 0 && strstr(failure_field(&f, "message"), "caller's network namespace"),
                       "a caller that exited: %s", failure_field(&f, "message"));
                failure_done(&f);
        }

        tap_is_int(count_fds(), fds_before, "no fd left behind by the failures");
        tap_ok(netns_inode(&after_ns) && after_ns == before_ns, "still in our own network namespace");
}

/* Programs and links are freed a moment after their last reference (RCU, deferred work). */
static bool gone(int (*get_fd_by_id)(__u32), uint32_t id) {
        for (int i = 0; i < 300; i++) {
                int fd = get_fd_by_id(id);

                if (fd < 0 && errno == ENOENT)
                        return true;
                safe_close(fd);
                usleep(10 * 1000);
        }
        return false;
}

TEST(nothing_left) {
        size_t left = 0;
        char p[PATH_MAX];

        setup();
        cleanup();
        for (size_t i = 0; i < n_link_ids; i++)
                if (!gone(bpf_link_get_fd_by_id, link_ids[i])) {
                        tap_diag("link %u is still there", link_ids[i]);
                        left++;
                }
        tap_is_int(left, 0, "none of the %zu links made is left", n_link_ids);
        left = 0;
        for (size_t i = 0; i < n_prog_ids; i++)
                if (!gone(bpf_prog_get_fd_by_id, prog_ids[i])) {
                        tap_diag("program %u is still there", prog_ids[i]);
                        left++;
                }
        tap_is_int(left, 0, "none of the %zu programs loaded is left", n_prog_ids);
        tap_ok(access(pin_dir, F_OK) < 0, "no pins left under %s", pin_dir);
        tap_ok(access(netns_path, F_OK) < 0, "no network namespace %s left", netns);
        snprintf(p, sizeof(p), "/sys/class/net/%s", veth_host);
        tap_ok(access(p, F_OK) < 0, "no interface %s left", veth_host);
        tap_ok(!cgroup_root || access(cgroup_dir, F_OK) < 0, "no cgroup %s left", cgroup_dir);
        tap_ok(access(ns_dir, F_OK) < 0, "no directory %s left", ns_dir);
        tap_is_int(count_fds(), fds_at_start, "as many fds open as at the start");
}

TAP_MAIN
