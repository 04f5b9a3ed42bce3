/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clsact.h"
#include "log.h"
#include "macro.h"
#include "params.h"

static bool inode_is(const char *path, uint64_t ino) {
        struct stat st;

        return stat(path, &st) == 0 && (uint64_t) st.st_ino == ino;
}

/*
 * A network namespace by its inode: ours, one some process lives in, or one `ip netns` keeps in
 * /run/netns. A namespace none of these hold is gone, and its interfaces (with their filters) went
 * with it. An inode number can come back for a new namespace: callers check the filter runs their
 * program before they believe it.
 */
static int netns_open_inode(uint64_t ino, int *ret_fd) {
        static const char *const dirs[] = { "/proc", "/run/netns" };
        char path[PATH_MAX];

        if (inode_is("/proc/thread-self/ns/net", ino)) {
                *ret_fd = -1;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                DIR *d = opendir(dirs[i]);
                struct dirent *de;

                while (d && (de = readdir(d))) {
                        int fd;

                        if (i == 0 && (de->d_name[0] < '1' || de->d_name[0] > '9'))
                                continue;
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), i == 0 ? "%s/%s/ns/net" : "%s/%s", dirs[i], de->d_name);
                        if (!inode_is(path, ino))
                                continue;
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd < 0)
                                continue; /* the process just ended: look further */
                        closedir(d);
                        *ret_fd = fd;
                        return 0;
                }
                if (d)
                        closedir(d);
        }
        return -ENOENT;
}

static void netns_returnp(int *own) {
        if (*own < 0)
                return;
        /* Carrying on in another namespace would make every later lookup of this thread lie. */
        if (setns(*own, CLONE_NEWNET) < 0) {
                log_error_errno(negative_errno(), "Cannot return to the daemon's network namespace: %m");
                abort();
        }
        *own = safe_close(*own);
}

/* Enters the filter's namespace (when it is not ours); *ret_own is what netns_returnp() goes back to. */
static int netns_enter_inode(uint64_t ino, int *ret_own) {
        _cleanup_close_ int theirs = -1, own = -1;
        int r;

        *ret_own = -1;
        r = netns_open_inode(ino, &theirs);
        if (r < 0 || theirs < 0)
                return r;
        own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own < 0)
                return negative_errno();
        if (setns(theirs, CLONE_NEWNET) < 0)
                return negative_errno();
        *ret_own = TAKE_FD(own);
        return 0;
}

int clsact_attach(int prog_fd, const TcFilter *t) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int) t->ifindex,
                    .attach_point = t->egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = t->handle, .priority = t->priority);
        int r;

        r = bpf_tc_hook_create(&hook);
        if (r < 0 && r != -EEXIST)
                return r;
        /* Direct action (libbpf always asks for it): the program's return value is the verdict. */
        return bpf_tc_attach(&hook, &opts);
}

/* The program id the filter runs in the current namespace; 0 when there is no such filter. */
static int query(const TcFilter *t, uint32_t *ret_prog_id) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int) t->ifindex,
                    .attach_point = t->egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t->handle, .priority = t->priority);
        int r;

        r = bpf_tc_query(&hook, &opts);
        /* No filter, no interface, or no clsact qdisc any more ("parent qdisc does not exist"). */
        if (r == -ENOENT || r == -ENODEV || r == -EINVAL) {
                *ret_prog_id = 0;
                return 0;
        }
        if (r < 0)
                return r;
        *ret_prog_id = opts.prog_id;
        return 0;
}

/* Enters the filter's namespace (*own: ours, to return to) and tells whether the filter is there and runs
 * prog_id: 1 yes, 0 no (or the namespace is gone). */
static int enter_and_match(const TcFilter *t, uint32_t prog_id, int *own) {
        uint32_t id = 0;
        int r;

        r = netns_enter_inode(t->netns, own);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = query(t, &id);
        if (r < 0)
                return r;
        /* 0 also for someone else's filter reusing the handle in a namespace that reused the inode. */
        return id != 0 && id == prog_id;
}

int clsact_check(const TcFilter *t, uint32_t prog_id) {
        _cleanup_(netns_returnp) int own = -1;

        return enter_and_match(t, prog_id, &own);
}

int clsact_detach(const TcFilter *t, uint32_t prog_id) {
        _cleanup_(netns_returnp) int own = -1;
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int) t->ifindex,
                    .attach_point = t->egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t->handle, .priority = t->priority);
        int r;

        r = enter_and_match(t, prog_id, &own);
        if (r <= 0)
                return r;
        r = bpf_tc_detach(&hook, &opts);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        return 1;
}

json_object *tc_filter_to_json(const TcFilter *t) {
        json_object *j = json_object_new_object();

        if (!j)
                return NULL;
        json_object_object_add(j, "interface", json_object_new_string(t->interface));
        json_object_object_add(j, "ifindex", json_object_new_int64(t->ifindex));
        json_object_object_add(j, "direction", json_object_new_string(t->egress ? "egress" : "ingress"));
        json_object_object_add(j, "handle", json_object_new_int64(t->handle));
        json_object_object_add(j, "priority", json_object_new_int64(t->priority));
        json_object_object_add(j, "netns", json_object_new_uint64(t->netns));
        return j;
}

static bool get_u64(json_object *j, const char *key, uint64_t max, uint64_t *ret) {
        json_object *v;

        return json_object_object_get_ex(j, key, &v) && json_get_uint64(v, ret) && *ret <= max;
}

int tc_filter_from_json(json_object *j, TcFilter *ret) {
        TcFilter t = {};
        uint64_t ifindex, handle, priority;
        json_object *v;
        const char *s;

        if (!j || !json_object_is_type(j, json_type_object) || !get_u64(j, "netns", UINT64_MAX, &t.netns) ||
            !get_u64(j, "ifindex", INT32_MAX, &ifindex) || !get_u64(j, "handle", UINT32_MAX, &handle) ||
            !get_u64(j, "priority", UINT16_MAX, &priority) || ifindex == 0 || handle == 0 || priority == 0)
                return -EBADMSG;
        if (!json_object_object_get_ex(j, "direction", &v) || !(s = json_object_get_string(v)) ||
            (strcmp(s, "ingress") != 0 && strcmp(s, "egress") != 0))
                return -EBADMSG;
        t.egress = strcmp(s, "egress") == 0;
        if (json_object_object_get_ex(j, "interface", &v) && (s = json_object_get_string(v)))
                snprintf(t.interface, sizeof(t.interface), "%s", s);
        t.ifindex = (uint32_t) ifindex;
        t.handle = (uint32_t) handle;
        t.priority = (uint32_t) priority;
        *ret = t;
        return 0;
}
