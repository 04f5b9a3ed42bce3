/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Object intake and loading: checks the ELF before anything trusts it,
 * opens it with libbpf from memory, applies the caller's program, global
 * and map settings, loads it and captures the verifier's log per program.
 * A failure leaves nothing behind.
 */
#pragma once

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "btf-cache.h"
#include "failure.h"
#include "object.h"

/* Cap on the verifier log kept per program (the kernel keeps the tail). */
#define LOADER_LOG_MAX (1u * 1024 * 1024)

/* What a non-admin caller's rule still allows, checked after open and before any kernel work. */
typedef struct LoadLimits {
        uint64_t programs_left;
        uint64_t map_bytes_left;
        char *const *program_types; /* NULL: any */
        size_t n_program_types;
} LoadLimits;

/* An object's own BTF as loaded into the kernel, kept to be used again by the next load of the same bytes. */
typedef struct KeptBtf {
        void *data;
        size_t size;
        int fd; /* -1: none yet */
} KeptBtf;

void kept_btf_done(KeptBtf *k);

typedef struct LoadSettings {
        const char *name;      /* object name, already validated */
        json_object *programs; /* array of names, or NULL for all */
        json_object *globals;  /* {var: value}, or NULL */
        json_object *maps;     /* {map: {max_entries, value_size}}, or NULL */
        const char *maps_pin_dir; /* where maps declared pinned by name go */
        const char *btf_custom_path; /* CO-RE target (the planner's minimal BTF), or NULL for kernel BTF */
        bool core_on_kernel;         /* CO-RE relocations, done by libbpf on the kernel's BTF (no btf_custom_path) */
        BtfCache *btf_cache;         /* resolves BTF-named attach targets (tp_btf, fentry, lsm) */
        const LoadLimits *limits;    /* NULL for admins */
        KeptBtf *kept_btf;           /* the plan's, or NULL */
        struct bpf_object *opened;   /* opened ahead for this load (loader_open_ahead()), or NULL; the loader's */
} LoadSettings;

/*
 * libbpf's open of an object (parsing its ELF, BTF, programs, relocations)
 * done ahead, in idle time after a load, for the next load of the same
 * plan: the same bytes, so the same opened object. name is the object name
 * the next load must have; pinned-by-name maps get their directory at load.
 */
struct bpf_object *loader_open_ahead(const void *data, size_t size, const char *name, const char *btf_custom_path);

/* libbpf's logging, libelf, and the cache-backed SEC() handlers. */
int loader_setup(void);
/* libbpf's "can BPF be loaded at all" probe programs answered with the one kept (bpf_prog_load() above). */
unsigned loader_probes_answered(void);
/* Loads whose object BTF was the kernel object kept from an earlier load (bpf_btf_load() in loader.c). */
unsigned loader_btf_reused(void);

/* "sha256:" and 64 hex digits, NUL-terminated. */
#define LOADER_DIGEST_MAX (7 + 64 + 1)

/* Is this a BPF ELF object whose sections lie within it? InvalidObject otherwise. On success, ret_plan_key
 * (if given) is the sha256 of every byte the planner and libbpf read: the ELF and section headers and every
 * section but DWARF (.debug_*, .rel.debug_*), which is most of a -g object. */
int loader_check_elf(const void *data, size_t size, char ret_plan_key[LOADER_DIGEST_MAX], Failure *f);

/*
 * An object read from a caller's file. Large objects are read sparsely: the
 * ELF and section headers and every section but DWARF (what the planner,
 * the plan key and libbpf read); the rest (DWARF, padding) stays zero in
 * data and is listed in holes, read only when the whole file's digest is
 * needed. Bytes once read are never read again (the file may change
 * meanwhile: what was checked is what libbpf gets).
 */
typedef struct ObjectHole {
        uint64_t off, len;
} ObjectHole;

typedef struct ObjectBytes {
        char *data;    /* size bytes and a NUL */
        size_t size;
        size_t mapped; /* data is mmap()ed with this length, else malloc()ed */
        ObjectHole *holes;
        size_t n_holes;
        uint64_t hole_bytes;
        ObjectHole *filled; /* the holes once loader_read_holes() read them: DWARF, which nothing loads */
        size_t n_filled;
} ObjectBytes;

/* Whether two stats are of the same file, unchanged (a known inode: st_ino 0 is "unknown"). */
bool loader_file_unchanged(const struct stat *a, const struct stat *b);

/* Reads size bytes of fd (fewer if it shrinks meanwhile: o->size says). -errno from pread. */
int loader_read(int fd, size_t size, ObjectBytes *o);
/* The same, all of it. */
int loader_read_whole(int fd, size_t size, ObjectBytes *o);
/* Reads what loader_read() left out, so that data is the whole file. */
int loader_read_holes(int fd, ObjectBytes *o);
/* Once the whole file is hashed: gives back the memory of what loader_read_holes() read, in whole pages (zeros
 * again: holes again). */
void loader_forget_holes(ObjectBytes *o);
void loader_read_done(ObjectBytes *o);
/*
 * Whether fd holds o's bytes now, all but its holes (read or not: DWARF):
 * 1 when every one is the same, 0 when one differs or the file is shorter,
 * -errno when it cannot be read. Cheaper than reading and checking the
 * object again (no page of it is allocated, nothing is hashed).
 */
int loader_file_holds(int fd, const ObjectBytes *o);

/* Loads into the kernel; fills o->bpf, programs, maps and timings.open/load. */
int loader_load(const void *data, size_t size, const LoadSettings *s, Object *o, Failure *f);

/* sha256:<hex> of data. */
int loader_digest(const void *data, size_t size, char ret[static LOADER_DIGEST_MAX]);

/* The object's digest, computed on a thread of its own while the load goes on: hashing a large object
 * costs as much as loading it. Small objects are hashed at once. */
typedef struct DigestJob {
        const void *data;
        size_t size;
        pthread_t thread;
        bool running;
        int r;
        char digest[LOADER_DIGEST_MAX];
} DigestJob;

/* data must stay until loader_digest_wait(). */
void loader_digest_start(DigestJob *j, const void *data, size_t size);
/* A job whose digest is already known (the same file was hashed before). */
void loader_digest_known(DigestJob *j, const void *data, size_t size, const char digest[LOADER_DIGEST_MAX]);
/* Waits for the digest (j->digest); 0, or negative errno. Any number of times, and on a job never started. */
int loader_digest_wait(DigestJob *j);
