/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration test harness: a private bpfcored on its own socket, bpffs
 * root and state directory; calls over raw varlink; bpfcorectl runs; and
 * looks into the kernel to check what the daemon says.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpfcore-client.h"

typedef struct TestDaemon {
        char tmpdir[64];
        char socket_path[128];
        char state_dir[128];
        char bpffs_root[128];
        char log_path[128];
        char btf_dir[128];      /* --btf-dir: <tmpdir>/btf, created empty */
        char objects_dir[128];  /* --objects-dir: <tmpdir>/objects.d, created empty */
        char config[128];       /* --config: <tmpdir>/bpfcored.conf, absent until a test writes it */
        char vmlinux_btf[128];  /* set: the daemon runs in a mount namespace where /sys/kernel/btf/vmlinux is an
                                 * empty file (so libbpf cannot read kernel BTF), with --vmlinux-btf this copy */
        const char *const *wrapper; /* optional command the daemon runs under ("valgrind", …, NULL) */
        const char *const *options; /* optional further options for the daemon (…, NULL) */
        pid_t pid;
} TestDaemon;

/* Paths from the environment meson sets: BPFCORED, BPFCORECTL, BPF_OBJECTS_DIR, SOURCE_ROOT. */
const char *harness_env(const char *name);
/* $BPF_OBJECTS_DIR/<name>.bpf.o */
char *harness_object_path(const char *name);

/* Creates the directories (once) and starts the daemon; waits until it answers. */
int daemon_start(TestDaemon *d);
/* SIGTERM to the pid we started, and wait. */
int daemon_stop(TestDaemon *d);
/* kill(2) of the daemon this test started, by its pid: -ESRCH when none runs (never a kill(0) of our own
 * process group). */
int daemon_signal(const TestDaemon *d, int sig);
/* Stops the daemon, removes its pins, socket and directories. */
void daemon_cleanup(TestDaemon *d);
/* Prints the daemon's log as TAP diagnostics (after a failure). */
void daemon_dump_log(const TestDaemon *d);

/* One call on a fresh connection; fds are borrowed. Returns 0 when a reply came. */
int call(const TestDaemon *d, const char *method, json_object *params, const int *fds, size_t n_fds,
         BpfcoreReply *ret);
/* Load of a test object by name with optional extra parameters (taken). */
int load_object(const TestDaemon *d, const char *name, json_object *extra, BpfcoreReply *ret);
/* The error name without its interface ("NoSuchObject"), or "" on success. */
const char *reply_error(const BpfcoreReply *r);
/* A reply freed when it goes out of scope. */
#define _cleanup_reply_ _cleanup_(bpfcore_reply_done)
/* Unload of object id: "" on success, else the error name as reply_error() gives it, or "no reply". The
 * text lasts until the next call. */
const char *unload_object(const TestDaemon *d, uint64_t id);
/* reply->parameters.object.<key> as an int64, -1 if missing. */
int64_t object_int(const BpfcoreReply *r, const char *key);
json_object *object_get(const BpfcoreReply *r, const char *key);
/* The element of an array of objects whose "name" is name. */
json_object *array_find_name(json_object *array, const char *name);
int64_t json_int(json_object *o, const char *key);
const char *json_str(json_object *o, const char *key);

/* Runs bpfcorectl --socket <d's> args...; captures stdout and stderr; returns the exit status. */
int run_ctl(const TestDaemon *d, char **ret_out, char **ret_err, const char *arg, ...) __attribute__((sentinel));

/* A memfd holding data, named name. */
int memfd_with(const char *name, const void *data, size_t size);
int read_file(const char *path, char **ret, size_t *ret_size);

/* Kernel views. */
bool kernel_prog_exists(uint32_t id);
/* Waits (up to 3 s) for a program to be freed: it goes after its last reference, asynchronously. */
bool kernel_prog_gone(uint32_t id);
int kernel_prog_ids(uint32_t **ret, size_t *ret_n);
/* Programs loaded now that were not in before, after waiting for freed ones to go (0: all clean). */
size_t kernel_programs_left(const uint32_t *before, size_t n_before);
/* Program ids in after that were not in before. */
size_t ids_added(const uint32_t *before, size_t n_before, const uint32_t *after, size_t n_after);

/* Entries of /proc/PID/fd: the process's open fds; -1 when it cannot be read. */
long harness_pid_fds(pid_t pid);
/* Its resident memory in KiB (VmRSS), -1 if unknown. */
long harness_pid_rss_kib(pid_t pid);
