/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

const char *harness_env(const char *name) {
        const char *v = getenv(name);

        if (!v || !*v)
                tap_bail("%s is not set: run this test through meson test", name);
        return v;
}

char *harness_object_path(const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s.bpf.o", harness_env("BPF_OBJECTS_DIR"), name) < 0)
                abort();
        return p;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
}

/*
 * The daemons this process started and has not cleaned up: a test ended by
 * a signal (meson's timeout, a sanitizer's abort) still removes their pins,
 * state and sockets, so nothing stays loaded after it.
 */
static TestDaemon *live[16];

static void on_fatal_signal(int sig) {
        /* Not async-signal-safe (directory walks), but the process ends here either way. */
        for (size_t i = 0; i < ELEMENTSOF(live); i++)
                if (live[i])
                        daemon_cleanup(live[i]);
        signal(sig, SIG_DFL);
        raise(sig);
}

static void track(TestDaemon *d) {
        static bool handlers;
        size_t free_slot = ELEMENTSOF(live);

        for (size_t i = 0; i < ELEMENTSOF(live); i++) {
                if (live[i] == d)
                        return;
                if (!live[i] && free_slot == ELEMENTSOF(live))
                        free_slot = i;
        }
        if (free_slot < ELEMENTSOF(live))
                live[free_slot] = d;
        if (!handlers) {
                /* Not SIGSEGV: the sanitizers' own handler reports it first. */
                static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGABRT };

                for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                        signal(sigs[i], on_fatal_signal);
                handlers = true;
        }
}

static void untrack(TestDaemon *d) {
        for (size_t i = 0; i < ELEMENTSOF(live); i++)
                if (live[i] == d)
                        live[i] = NULL;
}

int daemon_start(TestDaemon *d) {
        BpfcoreClient *c = NULL;

        track(d);
        if (!d->tmpdir[0]) {
                strcpy(d->tmpdir, "/tmp/bpfcored-test-XXXXXX");
                if (!mkdtemp(d->tmpdir))
                        return -errno;
                snprintf(d->socket_path, sizeof(d->socket_path), "%s/io.bpfcored", d->tmpdir);
                /* As in production (/run is tmpfs there), a benchmark can keep state on tmpfs. */
                if (getenv("BPFCORED_TEST_STATE_ROOT"))
                        snprintf(d->state_dir, sizeof(d->state_dir), "%s/bpfcored-state-%s",
                                 getenv("BPFCORED_TEST_STATE_ROOT"), d->tmpdir + 5);
                else
                        snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->tmpdir);
                snprintf(d->log_path, sizeof(d->log_path), "%s/daemon.log", d->tmpdir);
                snprintf(d->btf_dir, sizeof(d->btf_dir), "%s/btf", d->tmpdir);
                snprintf(d->objects_dir, sizeof(d->objects_dir), "%s/objects.d", d->tmpdir);
                snprintf(d->config, sizeof(d->config), "%s/bpfcored.conf", d->tmpdir);
                if (mkdir(d->btf_dir, 0755) < 0 || mkdir(d->objects_dir, 0755) < 0)
                        return -errno;
                /* Our own bpffs directory, named for the temp dir, so parallel runs never meet. */
                snprintf(d->bpffs_root, sizeof(d->bpffs_root), "/sys/fs/bpf/bpfcored-%s", d->tmpdir + 5);
        }

        d->pid = fork();
        if (d->pid < 0)
                return -errno;
        if (d->pid == 0) {
                int fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                const char *args[] = { harness_env("BPFCORED"), "--socket", d->socket_path, "--bpffs-root",
                                       d->bpffs_root, "--state-dir", d->state_dir, "--btf-dir", d->btf_dir,
                                       "--objects-dir", d->objects_dir, "--config", d->config };
                const char *argv[64];
                size_t n = 0;

                if (d->vmlinux_btf[0]) {
                        char empty[160];

                        snprintf(empty, sizeof(empty), "%s/empty", d->tmpdir);
                        fd = open(empty, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd < 0 || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                            mount(empty, "/sys/kernel/btf/vmlinux", NULL, MS_BIND, NULL) < 0) {
                                perror("hiding /sys/kernel/btf/vmlinux");
                                _exit(126);
                        }
                }
                for (size_t i = 0; d->wrapper && d->wrapper[i] && n < 32; i++)
                        argv[n++] = d->wrapper[i];
                for (size_t i = 0; i < ELEMENTSOF(args); i++)
                        argv[n++] = args[i];
                if (d->vmlinux_btf[0]) {
                        argv[n++] = "--vmlinux-btf";
                        argv[n++] = d->vmlinux_btf;
                }
                for (size_t i = 0; d->options && d->options[i] && n < ELEMENTSOF(argv) - 1; i++)
                        argv[n++] = d->options[i];
                argv[n] = NULL;
                execvp(argv[0], (char **) argv);
                _exit(127);
        }
        /* Under a wrapper (valgrind) start-up takes many times longer. */
        for (int i = 0; i < (d->wrapper ? 12000 : 500); i++) {
                int status;

                if (bpfcore_connect(d->socket_path, &c) >= 0) {
                        bpfcore_disconnect(c);
                        return 0;
                }
                if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                        d->pid = 0;
                        return -ECHILD;
                }
                sleep_ms(10);
        }
        return -ETIMEDOUT;
}

int daemon_signal(const TestDaemon *d, int sig) {
        if (d->pid <= 0)
                return -ESRCH;
        return kill(d->pid, sig) < 0 ? -errno : 0;
}

int daemon_stop(TestDaemon *d) {
        int status = 0;

        if (d->pid <= 0)
                return 0;
        kill(d->pid, SIGTERM);
        if (waitpid(d->pid, &status, 0) < 0)
                return -errno;
        d->pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void remove_tree(const char *path) {
        DIR *dir = opendir(path);
        struct dirent *de;

        if (dir) {
                while ((de = readdir(dir))) {
                        char sub[1024];
                        struct stat st;

                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                                remove_tree(sub);
                        else
                                unlink(sub);
                }
                closedir(dir);
        }
        rmdir(path);
}

void daemon_cleanup(TestDaemon *d) {
        untrack(d);
        daemon_stop(d);
        if (d->bpffs_root[0])
                remove_tree(d->bpffs_root);
        if (d->state_dir[0])
                remove_tree(d->state_dir);
        if (d->tmpdir[0])
                remove_tree(d->tmpdir);
}

void daemon_dump_log(const TestDaemon *d) {
        _cleanup_free_ char *log = NULL;
        size_t size;

        if (read_file(d->log_path, &log, &size) >= 0)
                tap_diag("daemon log:\n%s", log);
}

int call(const TestDaemon *d, const char *method, json_object *params, const int *fds, size_t n_fds,
         BpfcoreReply *ret) {
        BpfcoreClient *c = NULL;
        int r;

        r = bpfcore_connect(d->socket_path, &c);
        if (r < 0)
                return r;
        r = bpfcore_call(c, method, params, fds, n_fds, ret);
        bpfcore_disconnect(c);
        return r;
}

int load_object(const TestDaemon *d, const char *name, json_object *extra, BpfcoreReply *ret) {
        _cleanup_free_ char *path = harness_object_path(name);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        json_object *params = extra ?: json_object_new_object();
        int r;

        if (fd < 0) {
                json_object_put(params);
                return -errno;
        }
        json_object_object_add(params, "fd", json_object_new_int(0));
        r = call(d, "io.bpfcored.Load", params, &fd, 1, ret);
        json_object_put(params);
        return r;
}

const char *reply_error(const BpfcoreReply *r) {
        const char *dot;

        if (!r->error)
                return "";
        dot = strrchr(r->error, '.');
        return dot ? dot + 1 : r->error;
}

const char *unload_object(const TestDaemon *d, uint64_t id) {
        static char error[128];
        BpfcoreReply r = {};
        json_object *p = json_object_new_object();

        json_object_object_add(p, "id", json_object_new_int64((int64_t) id));
        snprintf(error, sizeof(error), "%s",
                 call(d, "io.bpfcored.Unload", p, NULL, 0, &r) < 0 ? "no reply" : reply_error(&r));
        json_object_put(p);
        bpfcore_reply_done(&r);
        return error;
}

json_object *object_get(const BpfcoreReply *r, const char *key) {
        json_object *o, *v;

        if (!r->parameters || !json_object_object_get_ex(r->parameters, "object", &o) ||
            !json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}

int64_t object_int(const BpfcoreReply *r, const char *key) {
        json_object *v = object_get(r, key);

        return v ? json_object_get_int64(v) : -1;
}

json_object *array_find_name(json_object *array, const char *name) {
        size_t n = array ? json_object_array_length(array) : 0;

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(array, i);

                if (strcmp(json_str(e, "name"), name) == 0)
                        return e;
        }
        return NULL;
}

int64_t json_int(json_object *o, const char *key) {
        json_object *v;

        return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

const char *json_str(json_object *o, const char *key) {
        json_object *v;

        return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static char *drain(int fd) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        char chunk[4096];
        ssize_t n;

        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
                fwrite(chunk, 1, (size_t) n, f);
        fclose(f);
        return buf;
}

int run_ctl(const TestDaemon *d, char **ret_out, char **ret_err, const char *arg, ...) {
        const char *argv[64] = { "bpfcorectl", "--socket", d->socket_path };
        size_t n = 3;
        int out[2], err[2], status;
        char *o, *e;
        va_list ap;
        pid_t pid;

        va_start(ap, arg);
        for (const char *a = arg; a && n < ELEMENTSOF(argv) - 1; a = va_arg(ap, const char *))
                argv[n++] = a;
        va_end(ap);
        argv[n] = NULL;

        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                dup2(out[1], STDOUT_FILENO);
                dup2(err[1], STDERR_FILENO);
                execv(harness_env("BPFCORECTL"), (char **) argv);
                _exit(127);
        }
        close(out[1]);
        close(err[1]);
        /* stderr is small (a message); read stdout first, then it. */
        o = drain(out[0]);
        e = drain(err[0]);
        close(out[0]);
        close(err[0]);
        waitpid(pid, &status, 0);
        if (ret_out)
                *ret_out = o;
        else
                free(o);
        if (ret_err)
                *ret_err = e;
        else
                free(e);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int memfd_with(const char *name, const void *data, size_t size) {
        int fd = memfd_create(name, MFD_CLOEXEC);
        size_t done = 0;

        if (fd < 0)
                return -errno;
        while (done < size) {
                ssize_t n = write(fd, (const char *) data + done, size - done);
                if (n <= 0) {
                        close(fd);
                        return -EIO;
                }
                done += (size_t) n;
        }
        return fd;
}

int read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        char chunk[65536];
        ssize_t n;

        if (fd < 0)
                return -errno;
        f = open_memstream(&buf, &size);
        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
                fwrite(chunk, 1, (size_t) n, f);
        fclose(f);
        *ret = buf;
        *ret_size = size;
        return 0;
}

bool kernel_prog_exists(uint32_t id) {
        int fd = bpf_prog_get_fd_by_id(id);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

bool kernel_prog_gone(uint32_t id) {
        for (int i = 0; i < 300; i++) {
                if (!kernel_prog_exists(id))
                        return true;
                sleep_ms(10);
        }
        return false;
}

int kernel_prog_ids(uint32_t **ret, size_t *ret_n) {
        uint32_t id = 0, *ids = NULL;
        size_t n = 0;

        while (bpf_prog_get_next_id(id, &id) == 0) {
                uint32_t *a = realloc(ids, (n + 1) * sizeof(uint32_t));
                if (!a) {
                        free(ids);
                        return -ENOMEM;
                }
                ids = a;
                ids[n++] = id;
        }
        *ret = ids;
        *ret_n = n;
        return 0;
}

size_t ids_added(const uint32_t *before, size_t n_before, const uint32_t *after, size_t n_after) {
        size_t added = 0;

        for (size_t i = 0; i < n_after; i++) {
                bool found = false;

                for (size_t j = 0; j < n_before && !found; j++)
                        found = before[j] == after[i];
                if (!found) {
                        tap_diag("program id %u is still loaded", after[i]);
                        added++;
                }
        }
        return added;
}

size_t kernel_programs_left(const uint32_t *before, size_t n_before) {
        uint32_t *after = NULL;
        size_t n_after = 0, left;

        /* Programs go after their last reference, asynchronously: give each new one time to go. */
        kernel_prog_ids(&after, &n_after);
        for (size_t i = 0; i < n_after; i++) {
                bool old = false;

                for (size_t j = 0; j < n_before && !old; j++)
                        old = before[j] == after[i];
                if (!old)
                        kernel_prog_gone(after[i]);
        }
        free(after);
        kernel_prog_ids(&after, &n_after);
        left = ids_added(before, n_before, after, n_after);
        free(after);
        return left;
}

long harness_pid_fds(pid_t pid) {
        char path[32];
        long n = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", pid);
        dir = opendir(path);
        if (!dir)
                return -1;
        for (struct dirent *de; (de = readdir(dir));)
                n += de->d_name[0] != '.';
        closedir(dir);
        return n;
}

long harness_pid_rss_kib(pid_t pid) {
        _cleanup_free_ char *status = NULL;
        char path[32];
        size_t size;
        const char *p;

        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        if (read_file(path, &status, &size) < 0 || !(p = strstr(status, "VmRSS:")))
                return -1;
        return strtol(p + 6, NULL, 10);
}
