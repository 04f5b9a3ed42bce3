/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attaching a loaded program to where it runs, one bpf link per attachment.
 * Works from the program's fd alone (the live fd, or bpf_obj_get() of its
 * pin after a restart), never from libbpf's struct bpf_program. Targets the
 * caller names (binaries, cgroup directories, interfaces) are looked up in
 * the caller's mount and network namespaces.
 *
 * Types and their specs (JSON objects, every field checked):
 *   tracepoint             {"tracepoint": "syscalls/sys_enter_execve"}      perf link on the tracepoint
 *   raw_tp                 {"tracepoint": "sys_enter"}                      raw tracepoint link
 *   tp_btf, fentry, fexit, {}: the target is the program's attach BTF id, fixed at load
 *   fmod_ret, lsm
 *   kprobe, kretprobe      {"function": "do_unlinkat", "offset"?: N}        perf link, kprobe PMU
 *   uprobe, uretprobe      {"path": "/usr/bin/x", "symbol": "f" | "offset": N, "pid"?: N}
 *                          perf link, uprobe PMU; offset is a file offset; the symbol is looked up in
 *                          .symtab, then .dynsym; pid limits the probe to one process (only for a
 *                          caller in the daemon's pid namespace: pids are not translated)
 *   xdp                    {"interface": "veth0", "mode"?: "skb" | "drv" | "hw"}  (default: the
 *                          kernel picks)
 *   tc                     {"interface": "veth0", "direction": "ingress" | "egress",
 *                          "mode"?: "tcx" | "clsact", "priority"?: 1..65535}
 *                          a tcx link where the kernel has tcx (6.6 on), else (or with mode clsact) a
 *                          cls_bpf filter in direct-action mode under a clsact qdisc (clsact.h), at
 *                          priority 1 unless given; such a filter has no link: its id is the daemon's
 *   cgroup                 {"path": "/sys/fs/cgroup/x", "attach_type": "cgroup_skb/egress"}
 *                          attach_type is libbpf's SEC() name of a cgroup attach type
 *                          (cgroup_skb/ingress, cgroup/sock_create, cgroup/connect4, sockops, ...)
 *   perf_event             {"event": "cpu-clock", "cpu": N | "pid": N, "frequency"?: HZ | "period"?: N}
 *                          perf link on a sampling event (perf's names: cpu-clock, task-clock,
 *                          page-faults, context-switches, cycles, instructions, ...); one CPU or
 *                          one process (pid: only from the daemon's pid namespace); 99 Hz by default
 */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

#include "clsact.h"
#include "failure.h"

typedef struct AttachRequest {
        const char *type;  /* "tracepoint", "raw_tp", "tp_btf", "fentry", "fexit", "fmod_ret", "lsm",
                              "kprobe", "kretprobe", "uprobe", "uretprobe", "xdp", "tc", "cgroup",
                              "perf_event" */
        json_object *spec; /* type-specific target, see above (borrowed; NULL stands for {}) */
        pid_t caller_pid;  /* paths (uprobe binary, cgroup directory) are resolved in this process's
                              mount namespace through /proc/<pid>/root; interfaces in its network
                              namespace (entered for the attach only when it differs from ours).
                              0: the daemon's own. */
        uint32_t filter_id;  /* a clsact tc filter's id and handle (>= CLSACT_ID_MIN); 0: none allowed */
        /* Called, when set, with where a clsact filter is about to go, in time to write that down: a
           crash right after the filter is added must not leave it unknown. Failing aborts the attach. */
        int (*before_filter)(const TcFilter *t, void *userdata);
        void *userdata;
} AttachRequest;

typedef struct AttachResult {
        int link_fd;      /* owned: take it with TAKE_FD() to keep the link; -1 for a clsact filter */
        uint32_t link_id; /* kernel link id, or the clsact filter's id (req->filter_id) */
        bool is_filter;   /* a clsact tc filter: nothing to pin, filter says where it is */
        TcFilter filter;
        char *type;       /* e.g. "tracepoint" */
        char *target;     /* human-readable target: "syscalls/sys_enter_execve", "veth0 ingress",
                             "/bin/bash:readline", ... */
} AttachResult;

#define ATTACH_RESULT_NULL { .link_fd = -1 }

/* Closes link_fd (unless taken) and frees the strings; leaves r as ATTACH_RESULT_NULL. */
void attach_result_done(AttachResult *r);

/*
 * Attaches prog_fd as req says and fills *ret (untouched on failure). Failures fill f:
 * io.bpfcored.AttachFailed {message} with the kernel's reason (no such function, tracepoint, interface or
 * cgroup; not supported by this kernel; the program's type does not fit the request),
 * io.bpfcored.InvalidParameter {parameter, message} for a malformed spec, io.bpfcored.SystemError when
 * prog_fd is not a program. Nothing is left behind on failure: no perf event, no link, and the calling
 * thread is back in its own network namespace.
 */
int attach_program(int prog_fd, const AttachRequest *req, AttachResult *ret, Failure *f);

/*
 * What a SEC() name implies, for auto-attach, as libbpf's auto-attach reads it:
 * "tracepoint/syscalls/sys_enter_execve" and "tp/..." → "tracepoint" {"tracepoint": "syscalls/..."};
 * "raw_tp/x", "raw_tracepoint/x" (and .w) → "raw_tp" {"tracepoint": "x"}; "tp_btf/x", "fentry/x",
 * "fexit/x", "fmod_ret/x", "lsm/x" (and their .s forms) → that type, {}; "kprobe/func[+off]",
 * "kretprobe/func" → {"function", "offset"?}; "uprobe/path:func", "uretprobe/path:func" (absolute path)
 * → {"path", "symbol"}. *ret_type is static; *ret_spec is the caller's.
 * -ENOTSUP: the name does not say where to attach (xdp, tc, cgroup_skb/..., socket, a bare "kprobe", a
 * library found by search path, ...). -EINVAL: a malformed name of an attachable kind ("tp/no_category").
 */
int attach_spec_from_section(const char *section, const char **ret_type, json_object **ret_spec);
