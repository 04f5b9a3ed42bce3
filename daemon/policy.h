/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may do what. Root and members of the admin group see and manage
 * everything; other callers are allowed by the first rule that matches
 * their uid, gid or cgroup, within its limits; callers no rule matches
 * are denied. /etc/bpfcored/bpfcored.conf:
 *
 *   [daemon]
 *   admin-group = bpfcore-admin
 *
 *   [rule agents]                        one section per rule, first match wins
 *   match-uid = 1000 1001                any of: match-uid, match-gid (names or numbers),
 *   match-cgroup = /system.slice/agent   match-cgroup (a prefix of the caller's cgroup path)
 *   program-types = tracepoint uprobe    allowed program types (default: all)
 *   attach-types = tracepoint uprobe     allowed attach types (default: all)
 *   max-objects = 10                     quotas (default: unlimited)
 *   max-programs = 50
 *   max-map-bytes = 16M                  K, M, G suffixes
 *   allow-globals = yes                  may set globals / override map sizes (default yes)
 *   allow-maps = yes
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "varlink.h"

#define POLICY_UNLIMITED UINT64_MAX

typedef struct PolicyRule {
        char *name;
        uid_t *uids;
        size_t n_uids;
        gid_t *gids;
        size_t n_gids;
        char **cgroups;
        size_t n_cgroups;
        char **program_types; /* NULL: all */
        size_t n_program_types;
        char **attach_types;  /* NULL: all */
        size_t n_attach_types;
        uint64_t max_objects, max_programs, max_map_bytes;
        bool allow_globals, allow_maps;
} PolicyRule;

typedef struct Policy {
        gid_t admin_gid;
        bool have_admin_group;
        char *admin_group;
        PolicyRule *rules;
        size_t n_rules;
} Policy;

/* Reads path; a missing file is the default policy (root and the admin group only). -EINVAL with "FILE:LINE: why". */
int policy_load(const char *path, Policy **ret, char **ret_error);
Policy *policy_free(Policy *p);

bool policy_is_admin(const Policy *p, const Peer *peer);
/* The rule that lets peer load, NULL when none (admins need none). */
const PolicyRule *policy_rule(const Policy *p, const Peer *peer);
bool policy_allows(char *const *list, size_t n, const char *what);
