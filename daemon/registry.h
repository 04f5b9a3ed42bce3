/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The registry: every loaded object, by the daemon's id, pinned under
 * <bpffs root>/<id>/ (programs/, maps/) so it outlives the daemon.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "failure.h"
#include "object.h"

typedef struct Registry {
        char *root;
        Object **objects; /* ordered by id */
        size_t n_objects;
        uint64_t next_id;
        uint32_t next_filter_id; /* clsact filters' ids, from CLSACT_ID_MIN */
} Registry;

/* mkdir -p, the last component with mode. */
int mkdir_p(const char *path, mode_t mode);

/* Makes sure root exists on a bpf filesystem (mounting /sys/fs/bpf if needed). */
int registry_new(const char *root, Registry **ret);
/* Forgets objects without unpinning them: what is loaded stays loaded. */
Registry *registry_free(Registry *r);

/* Gives o a fresh id and an empty pin directory (o->pin_dir). */
int registry_reserve(Registry *r, Object *o, Failure *f);
/* Pins o's programs and maps into its directory. */
int registry_pin(Object *o, Failure *f);
/* Removes o's pins and directory: the kernel frees what nothing else holds. */
void registry_unpin(Object *o);

int registry_add(Registry *r, Object *o);
Object *registry_get(Registry *r, uint64_t id);
/* Unpins, closes and forgets the object. */
int registry_unload(Registry *r, uint64_t id);

/* Link pins: <dir>/links/<kernel link id>. */
int registry_pin_link(const Object *o, int link_fd, uint32_t link_id, Failure *f);
void registry_unpin_link(const Object *o, uint32_t link_id);
/* An id for a new clsact filter that no listed attachment has. */
uint32_t registry_new_filter_id(Registry *r);
Object *registry_find_link(Registry *r, uint32_t link_id, ProgramInfo **ret_program);
/* A new fd of program name of o (the caller closes it). */
int registry_program_fd(const Object *o, const char *name);

size_t registry_count_programs(const Registry *r);
size_t registry_count_maps(const Registry *r);
