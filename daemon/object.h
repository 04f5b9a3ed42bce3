/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A loaded object as the daemon knows it, and its JSON (design.md). */
#pragma once

#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "clsact.h"

typedef struct Owner {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        char *cgroup;
} Owner;

typedef struct LinkInfo {
        uint32_t id;    /* kernel link id; the pin is links/<id>. A tc filter's: the daemon's (clsact.h) */
        char *type;     /* "tracepoint", "xdp", ... */
        char *target;   /* "syscalls/sys_enter_execve", "veth0 ingress", ... */
        bool is_filter; /* a clsact tc filter, no bpf link: filter says where it is */
        TcFilter filter;
} LinkInfo;

typedef struct ProgramInfo {
        char *name;
        char *section;
        char *type;
        uint32_t id;
        char tag[17];
        uint32_t xlated_bytes, jited_bytes, verified_insns;
        LinkInfo *links;
        size_t n_links;
} ProgramInfo;

typedef struct MapInfo {
        char *name;
        char *type;
        uint32_t id;
        uint32_t key_size, value_size, max_entries;
} MapInfo;

/* Microseconds spent in each step of a Load. */
typedef struct Timings {
        uint64_t receive, plan, open, load, pin, attach, total;
} Timings;

typedef struct Object {
        uint64_t id;
        char *name;
        char digest[7 + 64 + 1]; /* "sha256:" + hex */
        Owner owner;
        uint64_t loaded_at_usec; /* CLOCK_REALTIME */
        char *pin_dir;
        struct bpf_object *bpf; /* holds the fds while the daemon runs */
        ProgramInfo *programs;
        size_t n_programs;
        MapInfo *maps;
        size_t n_maps;
        Timings timings;
        json_object *relocations; /* relocations[] of the plan it was loaded with */
        char *source;        /* objects.d file it came from, NULL for clients' objects */
        char *source_digest; /* sha256 of that file when it was loaded */
} Object;

Object *object_free(Object *o);
static inline void object_freep(Object **o) {
        object_free(*o);
}
void owner_done(Owner *o);

json_object *object_to_json(const Object *o);
/* object_to_json()'s text (PLAIN | NOSLASHESCAPE), rendered straight from o: what a state file and a Load
 * reply hold. Its length in *ret_len; NULL when out of memory. */
char *object_render(const Object *o, size_t *ret_len);

/*
 * A JSON value that serializes to text rendered once: a report of hundreds
 * of relocations is thousands of JSON objects, and every Load reply, state
 * file and Get would walk them again. The value holds no elements (nothing
 * in the daemon reads them back) and is shared by reference; its text is
 * json-c's PLAIN | NOSLASHESCAPE rendering, the flags the daemon writes with.
 * json_freeze() takes tree (and returns it as it is if out of memory).
 */
json_object *json_freeze(json_object *tree);
json_object *json_frozen_text(json_type type, const char *text, size_t len);
/* The same, taking text (a malloc'd string of len bytes), even on failure. */
json_object *json_frozen_take(json_type type, char *text, size_t len);

/* The object's JSON for a reply: object_render()'s text, frozen; its length in *ret_len (0 if it could only
 * build the tree). */
json_object *object_to_frozen(const Object *o, size_t *ret_len);

ProgramInfo *object_find_program(Object *o, const char *name);
/* Adds a link (its strings taken) to a program. */
int program_add_link(ProgramInfo *p, LinkInfo *link);
/* Removes link id from o; returns whether it was there. */
bool object_remove_link(Object *o, uint32_t id);
void link_info_done(LinkInfo *l);
