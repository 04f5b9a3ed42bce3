/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Faults around a private daemon: bpffs not mounted, the state directory
 * read-only or full, a memlock limit of zero, and SIGKILL at random points
 * of a load/attach/unload loop followed by a restart (registry, pins, state
 * files and kernel agree every time). The test runs in its own mount
 * namespace, so the mounts it makes (and unmakes) are nobody else's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

static TestDaemon d;
static uint32_t *progs_before;
static size_t n_progs_before;

static void sleep_ms(unsigned ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
}

static bool is_fs(const char *path, long magic) {
        struct statfs sf;

        return statfs(path, &sf) == 0 && sf.f_type == magic;
}

/* Entries of dir other than dot files (or all, with dots). */
static size_t count_entries(const char *dir, bool dots) {
        DIR *dh = opendir(dir);
        size_t n = 0;

        if (!dh)
                return 0;
        for (struct dirent *de; (de = readdir(dh));)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
                    (dots || de->d_name[0] != '.'))
                        n++;
        closedir(dh);
        return n;
}

static size_t list_count(void) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *objects;

        if (call(&d, "io.bpfcored.List", NULL, NULL, 0, &r) < 0 || r.error ||
            !json_object_object_get_ex(r.parameters, "objects", &objects))
                return (size_t) -1;
        return json_object_array_length(objects);
}

static void unload(int64_t id) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *p = json_object_new_object();

        json_object_object_add(p, "id", json_object_new_int64(id));
        call(&d, "io.bpfcored.Unload", p, NULL, 0, &r);
        json_object_put(p);
}

TEST(private_mounts) {
        kernel_prog_ids(&progs_before, &n_progs_before);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                tap_skip_all("no private mount namespace here");
        tap_ok(true, "in a private mount namespace");
}

TEST(bpffs_not_mounted) {
        _cleanup_reply_ BpfcoreReply r = {};
        _cleanup_free_ char *log = NULL;
        char saved[128];
        size_t size;

        /* Unmounted in this namespace only: the daemon must mount it itself. */
        while (is_fs("/sys/fs/bpf", BPF_FS_MAGIC) && umount2("/sys/fs/bpf", MNT_DETACH) == 0)
                ;
        tap_ok(!is_fs("/sys/fs/bpf", BPF_FS_MAGIC), "/sys/fs/bpf is not a bpf filesystem");
        if (!tap_is_int(daemon_start(&d), 0, "the daemon starts anyway"))
                return;
        tap_ok(is_fs("/sys/fs/bpf", BPF_FS_MAGIC), "having mounted bpffs on /sys/fs/bpf");
        load_object(&d, "globals", NULL, &r);
        tap_is_str(reply_error(&r), "", "and loads work, pinned there");
        unload(object_int(&r, "id"));
        tap_is_int(daemon_stop(&d), 0, "daemon stopped");

        /* A root elsewhere, on a filesystem that is not bpffs: refused at start, with the reason. */
        memcpy(saved, d.bpffs_root, sizeof(saved));
        snprintf(d.bpffs_root, sizeof(d.bpffs_root), "%s/not-bpffs", d.tmpdir);
        tap_is_int(daemon_start(&d), -ECHILD, "a --bpffs-root on tmpfs: the daemon exits");
        read_file(d.log_path, &log, &size);
        tap_ok(log && strstr(log, "is not on a bpf filesystem"), "saying it is not on a bpf filesystem");
        rmdir(d.bpffs_root);
        memcpy(d.bpffs_root, saved, sizeof(saved));
        tap_is_int(daemon_start(&d), 0, "daemon restarted for the next checks");
}

/* A failed load left nothing: no object, no pin directory, no state or temp file. */
static void nothing_half_written(const char *what, size_t state_files_allowed) {
        tap_is_int(list_count(), 0, "%s: nothing is registered", what);
        tap_is_int(count_entries(d.bpffs_root, true), 0, "%s: no pin directory is left", what);
        tap_is_int(count_entries(d.state_dir, true), state_files_allowed,
                   "%s: no state or temp file is left", what);
}

TEST(state_dir_read_only) {
        _cleanup_reply_ BpfcoreReply r = {}, ok = {};

        if (!tap_ok(mount("tmpfs", d.state_dir, "tmpfs", 0, "size=1m,mode=0700") == 0,
                    "a tmpfs on the state dir"))
                return;
        tap_ok(mount(NULL, d.state_dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0, "made read-only");
        load_object(&d, "globals", json_tokener_parse("{\"attach\":true}"), &r);
        if (!tap_is_str(reply_error(&r), "SystemError", "Load is refused"))
                tap_diag("%s", json_object_to_json_string(r.parameters));
        tap_ok(strstr(json_str(r.parameters, "message"), "state file") &&
                       strstr(json_str(r.parameters, "message"), "Read-only"),
               "saying the state file cannot be written: %s", json_str(r.parameters, "message"));
        nothing_half_written("read-only", 0);

        mount(NULL, d.state_dir, NULL, MS_REMOUNT, NULL);
        load_object(&d, "globals", NULL, &ok);
        tap_is_str(reply_error(&ok), "", "once writable again, loads work");
        unload(object_int(&ok, "id"));
        umount2(d.state_dir, MNT_DETACH);
}

TEST(state_dir_full) {
        _cleanup_reply_ BpfcoreReply r = {}, ok = {};
        char filler[256], block[4096] = {};
        int fd;

        if (!tap_ok(mount("tmpfs", d.state_dir, "tmpfs", 0, "size=64k,mode=0700") == 0,
                    "a 64 KiB tmpfs on the state dir"))
                return;
        snprintf(filler, sizeof(filler), "%s/.filler", d.state_dir);
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        while (write(fd, block, sizeof(block)) > 0)
                ;
        tap_is_int(errno, ENOSPC, "filled up");
        close(fd);
        load_object(&d, "globals", json_tokener_parse("{\"attach\":true}"), &r);
        if (!tap_is_str(reply_error(&r), "SystemError", "Load is refused"))
                tap_diag("%s", json_object_to_json_string(r.parameters));
        tap_ok(strstr(json_str(r.parameters, "message"), "state file") &&
                       strstr(json_str(r.parameters, "message"), "No space"),
               "saying the state file cannot be written: %s", json_str(r.parameters, "message"));
        nothing_half_written("full", 1);

        unlink(filler);
        load_object(&d, "globals", NULL, &ok);
        tap_is_str(reply_error(&ok), "", "with room again, loads work");
        unload(object_int(&ok, "id"));
        umount2(d.state_dir, MNT_DETACH);
        tap_is_int(daemon_stop(&d), 0, "daemon stopped");
}

TEST(memlock_zero) {
        static const char *const no_memlock[] = {"prlimit", "--memlock=0:0", "--", NULL};
        _cleanup_reply_ BpfcoreReply r = {};
        const char *err;

        d.wrapper = no_memlock;
        if (!tap_is_int(daemon_start(&d), 0, "a daemon with RLIMIT_MEMLOCK 0 (soft and hard)"))
                return;
        load_object(&d, "globals", NULL, &r);
        err = reply_error(&r);
        /* Since 5.11 the kernel charges BPF memory to the memory cgroup, not to RLIMIT_MEMLOCK. */
        if (!*err)
                tap_ok(true, "loads work: this kernel charges BPF memory to the memory cgroup, not the "
                             "memlock limit");
        else
                tap_ok(strstr(json_str(r.parameters, "message"), "RLIMIT_MEMLOCK") != NULL,
                       "the error names RLIMIT_MEMLOCK: %s", json_str(r.parameters, "message"));
        unload(object_int(&r, "id"));
        daemon_stop(&d);
        d.wrapper = NULL;
}

/* Registry, pins, state files and kernel agree: returns the disagreements (with diagnostics). */
static unsigned agree(void) {
        _cleanup_reply_ BpfcoreReply l = {};
        json_object *objects;
        unsigned bad = 0;
        size_t n;

        if (call(&d, "io.bpfcored.List", NULL, NULL, 0, &l) < 0 || l.error ||
            !json_object_object_get_ex(l.parameters, "objects", &objects))
                return 1;
        n = json_object_array_length(objects);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(objects, i),
                            *progs = json_object_object_get(o, "programs");
                char path[512];
                struct stat st;

                snprintf(path, sizeof(path), "%s/%lld", d.bpffs_root, (long long) json_int(o, "id"));
                if (stat(path, &st) < 0 && bad++ < 5)
                        tap_diag("object %lld listed without its pins", (long long) json_int(o, "id"));
                snprintf(path, sizeof(path), "%s/%lld.json", d.state_dir, (long long) json_int(o, "id"));
                if (stat(path, &st) < 0 && bad++ < 5)
                        tap_diag("object %lld listed without its state file", (long long) json_int(o, "id"));
                for (size_t k = 0; progs && k < json_object_array_length(progs); k++)
                        if (!kernel_prog_exists(
                                    (uint32_t) json_int(json_object_array_get_idx(progs, k), "id")) &&
                            bad++ < 5)
                                tap_diag("object %lld lists a program the kernel does not have",
                                         (long long) json_int(o, "id"));
        }
        /* Nothing beyond what is listed: pin directories, state files (temp files included). */
        if (count_entries(d.bpffs_root, true) != n && bad++ < 5)
                tap_diag("%zu pin directories for %zu objects", count_entries(d.bpffs_root, true), n);
        if (count_entries(d.state_dir, true) != n && bad++ < 5)
                tap_diag("%zu state files for %zu objects", count_entries(d.state_dir, true), n);
        return bad;
}

/* The loop that gets killed under: load (attached), load, unload the first, forever. */
_noreturn_ static void churn(void) {
        for (;;) {
                BpfcoreReply a = {}, b = {};

                load_object(&d, "globals", json_tokener_parse("{\"attach\":true}"), &a);
                load_object(&d, "globals", NULL, &b);
                if (!a.error)
                        unload(object_int(&a, "id"));
                if (!b.error)
                        unload(object_int(&b, "id"));
                bpfcore_reply_done(&a);
                bpfcore_reply_done(&b);
        }
}

TEST(sigkill_at_random_points) {
        unsigned rounds = getenv("FAULTS_ROUNDS") ? (unsigned) atoi(getenv("FAULTS_ROUNDS")) : 25,
                 disagreed = 0, recovered = 0;

        srand((unsigned) getpid());
        for (unsigned i = 0; i < rounds; i++) {
                pid_t child;
                unsigned bad;

                if (daemon_start(&d) < 0) {
                        tap_ok(false, "round %u: daemon starts", i);
                        daemon_dump_log(&d);
                        return;
                }
                if (i > 0)
                        recovered += list_count() > 0;
                bad = agree();
                if (bad && disagreed++ < 3)
                        tap_diag("round %u: %u disagreements after the restart", i, bad);
                child = fork();
                if (child == 0)
                        churn();
                sleep_ms(5 + (unsigned) rand() % 150);
                daemon_signal(&d, SIGKILL);
                waitpid(d.pid, NULL, 0);
                d.pid = 0;
                if (child > 0) {
                        kill(child, SIGKILL);
                        waitpid(child, NULL, 0);
                }
        }
        tap_is_int(daemon_start(&d), 0, "the daemon starts after the last SIGKILL");
        tap_is_int(disagreed + (agree() > 0), 0,
                   "after each of %u SIGKILLs mid-loop, List, pins, state files and kernel agree", rounds);
        tap_diag("%u of %u restarts recovered objects that were whole when killed", recovered, rounds);
        {
                _cleanup_reply_ BpfcoreReply l = {};
                json_object *objects;

                if (call(&d, "io.bpfcored.List", NULL, NULL, 0, &l) == 0 &&
                    json_object_object_get_ex(l.parameters, "objects", &objects))
                        for (size_t k = 0; k < json_object_array_length(objects); k++)
                                unload(json_int(json_object_array_get_idx(objects, k), "id"));
        }
        tap_is_int(list_count(), 0, "everything recovered unloads");
}

TEST(cleanup) {
        daemon_cleanup(&d);
        tap_is_int(kernel_programs_left(progs_before, n_progs_before), 0,
                   "nothing this test loaded is left");
        free(progs_before);
}

TAP_MAIN
