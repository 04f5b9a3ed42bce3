/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tc programs without tcx (kernels before 6.6, or when asked for): a cls_bpf
 * filter in direct-action mode under a clsact qdisc, through libbpf's
 * netlink calls. Such an attachment has no bpf link and nothing to pin: the
 * daemon gives it an id of its own, from CLSACT_ID_MIN up (the kernel numbers
 * its links from 1 to INT_MAX - 1, so the two ranges never meet), which is
 * also the filter's handle, and finds it again by network namespace (nsfs
 * inode), ifindex, direction, handle and priority.
 */
#pragma once

#include <json-c/json.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#define CLSACT_ID_MIN UINT32_C(0x80000000)
#define CLSACT_PRIORITY_DEFAULT 1

typedef struct TcFilter {
        uint64_t netns;           /* inode of the network namespace the interface lives in */
        uint32_t ifindex;         /* in that namespace */
        char interface[IFNAMSIZ]; /* its name when attached, for people */
        bool egress;
        uint32_t handle;   /* = the attachment's id */
        uint32_t priority; /* 1..65535 */
} TcFilter;

static inline bool link_id_is_filter(uint32_t id) {
        return id >= CLSACT_ID_MIN;
}

/*
 * In the calling thread's network namespace: adds the clsact qdisc when the interface has none (an
 * existing one is shared, and left in place on detach: other filters may hang off it), then the filter.
 * -EEXIST: a filter with that handle and priority is there already.
 */
int clsact_attach(int prog_fd, const TcFilter *t);
/* 1 when the filter is there and runs prog_id, 0 when it is gone (or its namespace is), <0 on errors. */
int clsact_check(const TcFilter *t, uint32_t prog_id);
/* Removes the filter if it runs prog_id: 1; 0 when it is gone already (or runs another program). */
int clsact_detach(const TcFilter *t, uint32_t prog_id);

/* {"interface", "ifindex", "direction", "handle", "priority", "netns"} */
json_object *tc_filter_to_json(const TcFilter *t);
int tc_filter_from_json(json_object *j, TcFilter *ret);
