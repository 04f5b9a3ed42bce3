/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A daemon killed (SIGKILL) at every step of Load, Attach, Detach and Unload
 * (daemon/crash-point.h: BPFCORED_TEST_CRASH_AT), then restarted: after the
 * restart the operation happened whole or not at all. Whole: the object (or
 * link) is listed, pinned, has its state file and is in the kernel. Nothing:
 * none of that, and no program or link of it is left in the kernel.
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

static TestDaemon d;
/* Our objects' name: libbpf prefixes their .rodata/.data/.bss maps with it (7 characters at most), which is
 * how programs of this test are told from other tests' loading the same object meanwhile. */
static char object_name[8];

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
}

/* Entries of a directory, "." and ".." aside (0 when it does not exist). */
static size_t dir_entries(const char *fmt, ...) _printf_(1, 2);
static size_t dir_entries(const char *fmt, ...) {
        char path[512];
        size_t n = 0;
        va_list ap;
        DIR *dir;
        struct dirent *de;

        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        dir = opendir(path);
        if (!dir)
                return 0;
        while ((de = readdir(dir)))
                n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(dir);
        return n;
}

static bool path_exists(const char *fmt, ...) _printf_(1, 2);
static bool path_exists(const char *fmt, ...) {
        char path[512];
        struct stat st;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        return stat(path, &st) == 0;
}

/* Kernel links of program prog_id; waits up to 3 s for freed ones to go (perf links go late). */
static size_t kernel_links_of(uint32_t prog_id, bool wait_gone) {
        size_t n = 0;

        for (int tries = 0; tries < 300; tries++) {
                uint32_t id = 0;

                n = 0;
                while (bpf_link_get_next_id(id, &id) == 0) {
                        struct bpf_link_info info = {};
                        uint32_t len = sizeof(info);
                        int fd = bpf_link_get_fd_by_id(id);

                        if (fd < 0)
                                continue;
                        if (bpf_link_get_info_by_fd(fd, &info, &len) == 0 && info.prog_id == prog_id)
                                n++;
                        close(fd);
                }
                if (n == 0 || !wait_gone)
                        break;
                sleep_ms(10);
        }
        return n;
}

/* Whether one of prog's maps carries our object name. */
static bool program_is_ours(uint32_t prog_id) {
        uint32_t map_ids[16];
        struct bpf_prog_info info = { .nr_map_ids = ELEMENTSOF(map_ids), .map_ids = (uintptr_t) map_ids };
        uint32_t len = sizeof(info);
        bool ours = false;
        int fd = bpf_prog_get_fd_by_id(prog_id);

        if (fd < 0)
                return false;
        if (bpf_prog_get_info_by_fd(fd, &info, &len) == 0)
                for (uint32_t i = 0; i < MIN(info.nr_map_ids, (uint32_t) ELEMENTSOF(map_ids)) && !ours; i++) {
                        struct bpf_map_info m = {};
                        uint32_t mlen = sizeof(m);
                        int mfd = bpf_map_get_fd_by_id(map_ids[i]);

                        if (mfd < 0)
                                continue;
                        ours = bpf_map_get_info_by_fd(mfd, &m, &mlen) == 0 &&
                               strncmp(m.name, object_name, strlen(object_name)) == 0;
                        close(mfd);
                }
        close(fd);
        return ours;
}

/* Programs of this test's objects in the kernel; waits up to 3 s for freed ones to go. */
static size_t our_programs_left(void) {
        size_t n = 0;

        for (int tries = 0; tries < 300; tries++) {
                uint32_t id = 0;

                n = 0;
                while (bpf_prog_get_next_id(id, &id) == 0)
                        n += program_is_ours(id);
                if (n == 0)
                        break;
                sleep_ms(10);
        }
        return n;
}

static json_object *list_objects(BpfcoreReply *r) {
        bpfcore_reply_done(r);
        *r = (BpfcoreReply) {};
        if (call(&d, "io.bpfcored.List", NULL, NULL, 0, r) < 0 || r->error)
                return NULL;
        return json_object_object_get(r->parameters, "objects");
}

/* Starts the daemon with the crash point armed at step. */
static bool start_armed(const char *step) {
        int r;

        setenv("BPFCORED_TEST_CRASH_AT", step, 1);
        r = daemon_start(&d);
        unsetenv("BPFCORED_TEST_CRASH_AT");
        return tap_is_int(r, 0, "[%s] daemon starts with the crash point armed", step);
}

/* After the call that should reach the crash point: the daemon must be dead by SIGKILL. */
static bool killed_at(const char *step) {
        int status = 0;
        pid_t p = 0;

        for (int i = 0; i < 500 && p == 0; i++) {
                p = waitpid(d.pid, &status, WNOHANG);
                if (p == 0)
                        sleep_ms(10);
        }
        if (p == 0) {
                daemon_stop(&d);
                tap_ok(false, "[%s] the daemon killed itself there", step);
                return false;
        }
        d.pid = 0;
        return tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "[%s] the daemon killed itself there (SIGKILL)",
                      step);
}

static bool restart(const char *step) {
        if (tap_is_int(daemon_start(&d), 0, "[%s] the daemon starts again", step))
                return true;
        daemon_dump_log(&d);
        return false;
}

static int load(const char *extra_json, BpfcoreReply *r) {
        json_object *p = extra_json ? json_tokener_parse(extra_json) : json_object_new_object();

        json_object_object_add(p, "name", json_object_new_string(object_name));
        return load_object(&d, "globals", p, r);
}

static void unload(uint64_t id) {
        tap_is_str(unload_object(&d, id), "", "unload of object %llu succeeds", (unsigned long long) id);
}

/* Nothing of any object: not listed, no pins, no state file, no program of this test in the kernel. */
static void assert_nothing(const char *step) {
        _cleanup_reply_ BpfcoreReply l = {};
        json_object *objects = list_objects(&l);

        tap_is_int(objects ? (int64_t) json_object_array_length(objects) : -1, 0, "[%s] nothing is listed", step);
        tap_is_int(dir_entries("%s", d.bpffs_root), 0, "[%s] no pins are left under the bpffs root", step);
        tap_is_int(dir_entries("%s", d.state_dir), 0, "[%s] no state file is left", step);
        tap_is_int(our_programs_left(), 0, "[%s] no program of it is left in the kernel", step);
}

/* The one object listed is whole: pinned, with its state file, its program in the kernel. Returns its id. */
static uint64_t assert_whole(const char *step, uint32_t *ret_prog) {
        _cleanup_reply_ BpfcoreReply l = {};
        json_object *objects = list_objects(&l), *o, *prog;
        uint64_t id;
        uint32_t prog_id;

        if (!tap_is_int(objects ? (int64_t) json_object_array_length(objects) : -1, 1,
                        "[%s] the object is listed", step))
                return 0;
        o = json_object_array_get_idx(objects, 0);
        id = (uint64_t) json_int(o, "id");
        prog = array_find_name(json_object_object_get(o, "programs"), "count_getpid");
        prog_id = (uint32_t) json_int(prog, "id");
        tap_ok(kernel_prog_exists(prog_id), "[%s] its program %u is in the kernel", step, prog_id);
        /* What tells leftovers of this test from other tests' programs must see this one. */
        tap_ok(program_is_ours(prog_id), "[%s] and is known as this test's by its maps' names (%s.*)", step,
               object_name);
        tap_ok(path_exists("%s/%llu/programs/count_getpid", d.bpffs_root, (unsigned long long) id),
               "[%s] its program is pinned", step);
        tap_ok(path_exists("%s/%llu.json", d.state_dir, (unsigned long long) id), "[%s] its state file is there",
               step);
        if (ret_prog)
                *ret_prog = prog_id;
        return id;
}

/* The program's links as listed, -1 when the object is not listed. */
static int64_t listed_links(uint64_t id, int64_t *ret_link) {
        _cleanup_reply_ BpfcoreReply l = {};
        json_object *objects = list_objects(&l), *links;

        for (size_t i = 0; objects && i < json_object_array_length(objects); i++) {
                json_object *o = json_object_array_get_idx(objects, i);

                if ((uint64_t) json_int(o, "id") != id)
                        continue;
                links = json_object_object_get(array_find_name(json_object_object_get(o, "programs"),
                                                               "count_getpid"),
                                               "links");
                if (ret_link)
                        *ret_link = links && json_object_array_length(links) > 0
                                            ? json_int(json_object_array_get_idx(links, 0), "id")
                                            : -1;
                return links ? (int64_t) json_object_array_length(links) : 0;
        }
        return -1;
}

static int attach(uint64_t id, BpfcoreReply *r) {
        json_object *p = json_object_new_object();
        int rc;

        json_object_object_add(p, "id", json_object_new_int64((int64_t) id));
        json_object_object_add(p, "program", json_object_new_string("count_getpid"));
        json_object_object_add(p, "tracepoint", json_object_new_string("syscalls/sys_enter_getpid"));
        rc = call(&d, "io.bpfcored.Attach", p, NULL, 0, r);
        json_object_put(p);
        return rc;
}

TEST(start) {
        if (geteuid() != 0)
                tap_skip_all("needs root (CAP_BPF, CAP_SYS_ADMIN) to load BPF programs");
        if (bpf_prog_get_next_id(0, &(uint32_t) { 0 }) < 0 && errno == EPERM)
                tap_skip_all("cannot enumerate BPF programs: no CAP_SYS_ADMIN here");
        snprintf(object_name, sizeof(object_name), "c%06u", (unsigned) getpid() % 1000000u);
        if (!tap_is_int(daemon_start(&d), 0, "daemon starts")) {
                daemon_dump_log(&d);
                tap_bail("no daemon");
        }
        daemon_stop(&d);
}

/* A Load killed at each of its steps: nothing before the state file, the whole object after it. */
TEST(load) {
        static const struct {
                const char *step;
                const char *params;
                bool whole;
        } cases[] = {
                { "load-after-load", NULL, false },
                { "load-after-pin", NULL, false },
                { "load-after-state", NULL, true },
                /* With attach:true, a link made and pinned but the state file not yet written. */
                { "attach-after-pin", "{\"attach\":true}", false },
                { "load-after-pin", "{\"attach\":true}", false },
                { "load-after-state", "{\"attach\":true}", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_reply_ BpfcoreReply r = {};
                _cleanup_free_ char *label = NULL;
                uint32_t prog = 0;
                uint64_t id;

                if (asprintf(&label, "Load%s at %s", cases[i].params ? " with attach" : "", cases[i].step) < 0)
                        abort();
                if (!start_armed(cases[i].step))
                        return;
                tap_ok(load(cases[i].params, &r) < 0, "[%s] the connection drops: no reply", label);
                if (!killed_at(label) || !restart(label))
                        return;
                if (!cases[i].whole) {
                        assert_nothing(label);
                        daemon_stop(&d);
                        continue;
                }
                id = assert_whole(label, &prog);
                if (cases[i].params) {
                        tap_is_int(listed_links(id, NULL), 1, "[%s] with its link", label);
                        tap_is_int((int64_t) kernel_links_of(prog, false), 1, "[%s] which is in the kernel", label);
                }
                if (id)
                        unload(id);
                assert_nothing(label);
                daemon_stop(&d);
        }
}

/* An Attach killed at each of its steps: no link before the state file lists it, the link after. */
TEST(attach) {
        static const struct {
                const char *step;
                bool whole;
        } cases[] = {
                { "attach-after-attach", false },
                { "attach-after-pin", false },
                { "attach-after-state", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_reply_ BpfcoreReply r = {}, a = {};
                const char *step = cases[i].step;
                uint32_t prog;
                uint64_t id;
                int64_t link = -1;

                if (!start_armed(step))
                        return;
                load(NULL, &r);
                if (!tap_is_str(reply_error(&r), "", "[%s] the object loads", step))
                        return;
                id = (uint64_t) object_int(&r, "id");
                prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "count_getpid"), "id");
                attach(id, &a);
                if (!killed_at(step) || !restart(step))
                        return;
                tap_is_int(listed_links(id, &link), cases[i].whole ? 1 : 0, "[%s] the object is back with %s",
                           step, cases[i].whole ? "its link" : "no link");
                tap_is_int((int64_t) dir_entries("%s/%llu/links", d.bpffs_root, (unsigned long long) id),
                           cases[i].whole ? 1 : 0, "[%s] link pins: %d", step, cases[i].whole ? 1 : 0);
                tap_is_int((int64_t) kernel_links_of(prog, !cases[i].whole), cases[i].whole ? 1 : 0,
                           "[%s] links of the program in the kernel: %d", step, cases[i].whole ? 1 : 0);
                unload(id);
                tap_is_int((int64_t) kernel_links_of(prog, true), 0, "[%s] Unload then leaves no link", step);
                assert_nothing(step);
                daemon_stop(&d);
        }
}

/* A Detach killed after its state file no longer lists the link: the link is gone after the restart. */
TEST(detach) {
        _cleanup_reply_ BpfcoreReply r = {}, a = {}, det = {};
        const char *step = "detach-after-state";
        json_object *p;
        uint32_t prog;
        uint64_t id;
        int64_t link;

        if (!start_armed(step))
                return;
        load(NULL, &r);
        id = (uint64_t) object_int(&r, "id");
        prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "count_getpid"), "id");
        attach(id, &a);
        link = json_int(json_object_object_get(a.parameters, "link"), "id");
        if (!tap_ok(link > 0, "[%s] attached: link %lld", step, (long long) link))
                return;
        p = json_object_new_object();
        json_object_object_add(p, "link", json_object_new_int64(link));
        call(&d, "io.bpfcored.Detach", p, NULL, 0, &det);
        json_object_put(p);
        if (!killed_at(step) || !restart(step))
                return;
        tap_is_int(listed_links(id, NULL), 0, "[%s] the object is back without the link", step);
        tap_is_int((int64_t) dir_entries("%s/%llu/links", d.bpffs_root, (unsigned long long) id), 0,
                   "[%s] its pin is gone", step);
        tap_is_int((int64_t) kernel_links_of(prog, true), 0, "[%s] and the kernel has no link of the program",
                   step);
        tap_ok(kernel_prog_exists(prog), "[%s] the program stays loaded", step);
        unload(id);
        assert_nothing(step);
        daemon_stop(&d);
}

/* An Unload killed after its state file is gone, and halfway through the pins: nothing is left. */
TEST(unload) {
        static const char *const steps[] = { "unload-after-state", "unload-mid-unpin" };

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                _cleanup_reply_ BpfcoreReply r = {}, a = {}, u = {};
                uint32_t prog;
                json_object *p;
                uint64_t id;

                if (!start_armed(steps[i]))
                        return;
                load("{\"attach\":true}", &r);
                if (!tap_is_str(reply_error(&r), "", "[%s] the object loads and attaches", steps[i]))
                        return;
                id = (uint64_t) object_int(&r, "id");
                prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "count_getpid"), "id");
                p = json_object_new_object();
                json_object_object_add(p, "id", json_object_new_int64((int64_t) id));
                call(&d, "io.bpfcored.Unload", p, NULL, 0, &u);
                json_object_put(p);
                if (!killed_at(steps[i]) || !restart(steps[i]))
                        return;
                assert_nothing(steps[i]);
                tap_is_int((int64_t) kernel_links_of(prog, true), 0, "[%s] and no link of its program", steps[i]);
                daemon_stop(&d);
        }
}

TEST(cleanup) {
        daemon_cleanup(&d);
        /* Ours only: other tests may load the same object meanwhile (README: tests run side by side). */
        tap_is_int(our_programs_left(), 0, "nothing this test loaded is left in the kernel");
}

TAP_MAIN
