/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The BTF cache: the kernel's BTF (vmlinux and every module's split BTF)
 * and registered external BTF files, each parsed once with libbpf, plus an
 * index from essential name (name without "___flavor") to every
 * (btf, type id) carrying it, which is what CO-RE candidate search needs.
 */
#pragma once

#include <bpf/btf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planner.h"

typedef enum BtfOrigin {
        BTF_ORIGIN_VMLINUX,  /* the kernel's own (or the file standing in for it) */
        BTF_ORIGIN_MODULE,   /* split BTF of a loaded module */
        BTF_ORIGIN_EXTERNAL, /* a registered file (/etc/bpfcored/btf/NAME.btf) */
} BtfOrigin;

typedef struct BtfEntry {
        char *name;
        BtfOrigin origin;
        uint32_t kernel_id; /* the kernel's BTF object id, 0 for files */
        /* The file it was read from (a module's in sysfs, an external one), as stat() saw it: one put in its
         * place (a module loaded again, a file replaced or rewritten) is read again. */
        uint64_t file_dev, file_ino, file_size, file_mtime_ns;
        struct btf *btf;
        size_t bytes;       /* raw size */
        uint64_t parse_us;
        CoreTarget target;  /* how the planner sees it */
        struct BtfIndex *index; /* externals: their own index, for plans against them alone */
} BtfEntry;

/* A hash table built in one pass (counting sort by bucket): each bucket's
 * entries are grouped by essential name, so a lookup answers with one run. */
typedef struct BtfIndex {
        CoreCandidate *cands;
        uint32_t *buckets; /* n_buckets + 1 offsets into cands */
        size_t n_buckets;
        size_t n;
} BtfIndex;

typedef struct BtfCache {
        char *vmlinux_path; /* /sys/kernel/btf/vmlinux, or an external stand-in */
        char *sysfs_dir;    /* /sys/kernel/btf: modules */
        char *external_dir; /* /etc/bpfcored/btf */
        BtfEntry **entries;
        size_t n_entries;
        BtfIndex kernel;    /* vmlinux + modules */
        uint64_t generation;
        uint64_t startup_us;
        /* The kernel's BTF objects as the last walk of them met them: ids up to walked_id are vmlinux's, a cached
         * module's, no kernel BTF at all, or one of unmet_ids (kernel BTF the cache has no entry for). */
        uint32_t walked_id;
        uint32_t *unmet_ids;
        size_t n_unmet_ids;
        bool indexed_while_parsing; /* vmlinux's index entries were worked out while libbpf parsed it */
} BtfCache;

int btf_cache_new(const char *vmlinux_path, const char *sysfs_dir, const char *external_dir, BtfCache **ret);
BtfCache *btf_cache_free(BtfCache *c);

/* Re-reads module BTF and the external directory: adds what is new, drops what is gone.
 * Returns > 0 when something changed (the generation moves on). */
int btf_cache_refresh(BtfCache *c);

BtfEntry *btf_cache_find(const BtfCache *c, const char *name);
BtfEntry *btf_cache_vmlinux(const BtfCache *c);

/* The kernel's BTF object id: its name (64 bytes) and whether it is kernel BTF (vmlinux's or a module's);
 * -ENOENT if it is gone. */
int btf_object_info(uint32_t id, char *name, bool *ret_kernel);

/* Whether the kernel's BTF object id is accounted for by the cache: vmlinux's, a cached module's, or no kernel
 * BTF at all. False for a module the cache has not met (loaded after its last look, or its BTF would not
 * parse). Ids are not reused until the kernel's 31-bit id space wraps. */
bool btf_cache_accounts_for(const BtfCache *c, uint32_t id);
/* Takes in id, the kernel's next BTF object after those the cache accounts for (every id between was looked
 * at): kernel BTF of a module it has no entry for, or no kernel BTF at all (or gone). */
int btf_cache_account(BtfCache *c, uint32_t id, bool kernel_btf);

/* CoreLookup over the kernel's BTF (vmlinux first, then modules). userdata: the BtfCache. */
int btf_cache_lookup(void *userdata, const char *essential_name, size_t len, const CoreCandidate **ret,
                     size_t *ret_n);

/* Builds an index over targets (for an external BTF or user BTF plan). */
int btf_index_build(const CoreTarget *const *targets, size_t n_targets, BtfIndex *ret);
void btf_index_done(BtfIndex *idx);
int btf_index_lookup(const BtfIndex *idx, const char *essential_name, size_t len, const CoreCandidate **ret,
                     size_t *ret_n);

/* Bytes held by parsed BTF and the index. */
size_t btf_cache_memory(const BtfCache *c);
