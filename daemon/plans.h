/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CO-RE plans per object against the BTF cache, with the minimal target
 * BTF ready in a memfd for libbpf's btf_custom_path. Plans are cached by
 * (plan key, cache generation, target): the plan key is the sha256 of the
 * bytes the planner and libbpf read (loader_check_elf()), DWARF aside.
 */
#pragma once

#include <json-c/json.h>
#include <sys/stat.h>

#include "btf-cache.h"
#include "failure.h"
#include "loader.h"
#include "planner.h"

#define PLANS_CACHE_MAX 64u
/* "sha256:<hex>/<generation>/<btf name>": a registered BTF's name is a file name (NAME_MAX). */
#define PLAN_KEY_MAX (7 + 64 + 1 + 20 + 1 + 255 + 1)

/* An object's bytes as a load read them, with the client's file they came from (st_ino 0: unknown). */
typedef struct KeptFile {
        ObjectBytes bytes;
        struct stat st;
        char digest[LOADER_DIGEST_MAX]; /* the whole file's sha256 */
} KeptFile;

void kept_file_done(KeptFile *k);

typedef struct Plan {
        char key[PLAN_KEY_MAX];
        CorePlan *core;
        int min_btf_fd;     /* memfd with min_btf's raw bytes, -1 when none */
        char min_btf_path[64];
        json_object *relocations; /* relocations[] of design.md, rendered once (plan_relocations_json) */
        struct stat file;         /* the last client file seen with this plan, and its sha256 */
        char file_digest[7 + 64 + 1];
        KeptBtf kernel_btf;       /* the object's BTF in the kernel, from the last load: loads share it */
        struct bpf_object *ready; /* opened ahead for the next load (loader_open_ahead()), or NULL */
        char *ready_name;         /* the object name it was opened with */
        KeptFile kept;            /* the bytes it was opened from, and their file, for the next load */
        bool in_cache;
        unsigned refs;
        uint64_t plan_us;
} Plan;

typedef struct Plans {
        BtfCache *cache;
        Plan *entries[PLANS_CACHE_MAX]; /* most recently used first */
        size_t n;
        uint64_t hits, misses, failures;
} Plans;

typedef struct PlanRequest {
        const char *plan_key; /* loader_check_elf()'s: objects that differ only in DWARF share a plan */
        const void *elf;
        size_t size;
        const char *btf_name;    /* a registered external BTF instead of the kernel's, or NULL */
        const void *user_btf;    /* extra BTF (raw, or ELF with .BTF) merged into the target, or NULL */
        size_t user_btf_size;
} PlanRequest;

void plans_init(Plans *p, BtfCache *cache);
void plans_done(Plans *p);
/* Drops cached plans (the cache's generation moved on). */
void plans_flush(Plans *p);

/* A plan for req: from the cache or made now. InvalidObject / InvalidParameter in f on failure. */
int plans_get(Plans *p, const PlanRequest *req, Plan **ret, Failure *f);
Plan *plan_unref(Plan *plan);
Plan *plan_ref(Plan *plan);
/* What libbpf relocates against (btf_custom_path): the minimal BTF, or NULL for the whole kernel BTF, when
 * there is none or a bpf_core_type_id_kernel() relocation needs the kernel's own ids. */
const char *plan_btf_custom_path(const Plan *plan);
/*
 * Keeps file (taken: emptied) for plan's next load, and obj opened ahead
 * from it (NULL: the plan's object opened ahead, if any, stays: the same
 * bytes but DWARF, maybe another name); only the few most recently used
 * plans keep them (memory).
 */
void plans_keep_ready(Plans *p, Plan *plan, struct bpf_object *obj, const char *name, KeptFile *file);
/* The plan's object opened ahead, if it was opened with this name (the caller owns it then). */
struct bpf_object *plan_take_ready(Plan *plan, const char *name);

/*
 * The whole file's sha256 costs as much as a load for a large -g object, and
 * agents load the same file again and again. A plan remembers the last file
 * it served (device, inode, size, mtime, ctime, read unchanged) with its
 * digest; the plan key itself, over every byte libbpf reads, is computed on
 * each load, so a hit can only be stale in DWARF, never in what is loaded.
 */
const char *plan_file_digest(const Plan *plan, const struct stat *st);
void plan_remember_file(Plan *plan, const struct stat *st, const char *digest);

/*
 * Agents load the same file again and again; reading it again, checking it
 * and hashing what libbpf reads costs more than a small object's load. The
 * plan for btf_name (NULL: the kernel's) whose kept file is st (the same
 * file, unchanged): the caller compares the bytes (loader_file_holds())
 * before it takes them with plan_take_file(). NULL when there is none.
 */
Plan *plans_find_file(Plans *p, const struct stat *st, const char *btf_name);
/* The kept file's bytes and digest, for a load of it (a reference to plan, counted as a cache hit). */
Plan *plans_take_file(Plans *p, Plan *plan, KeptFile *ret);

/* relocations[] of design.md: a new reference to the plan's, for serializing only (it has no elements to
 * read back). */
json_object *plan_relocations_json(const Plan *plan);
