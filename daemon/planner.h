/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CO-RE planner: resolves every CO-RE relocation of a BPF object the way
 * libbpf does (relo_core.c: candidates by essential name, access strings,
 * field/type/enum relocation kinds, ambiguity), against BTF the caller keeps
 * parsed, and builds a minimal target BTF holding only what those
 * relocations touch. libbpf, given that BTF as btf_custom_path, patches the
 * same instructions as it would against the full target BTF.
 */
#pragma once

#include <bpf/btf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One BTF the planner may relocate against: vmlinux, a module (split BTF on vmlinux), user-supplied,
 * external. */
typedef struct CoreTarget {
        const char *name; /* "vmlinux", "nf_conntrack", "user", ... reported as relocations[].btf */
        const struct btf *btf;
        bool primary; /* vmlinux and user BTF: searched first; modules only when no primary candidate
                       * (libbpf's rule) */
} CoreTarget;

typedef struct CoreCandidate {
        const CoreTarget *target;
        uint32_t type_id; /* in target->btf's numbering (split BTF: after its base's ids) */
} CoreCandidate;

/* Candidate lookup by essential name (core_essential_name_len() bytes of the name), any kind: the planner
 * filters kinds and re-checks names, so a superset is fine, a missing candidate is not. Returns the
 * candidates in search order (primary targets first); *ret needs to stay valid only until the next call.
 * The cache implements this with an index; tests can implement it with a linear scan. */
typedef int (*CoreLookup)(void *userdata, const char *essential_name, size_t len, const CoreCandidate **ret,
                          size_t *ret_n);

typedef struct CoreRelocation {
        char *program;    /* the function symbol containing the instruction */
        char *section;    /* ELF section name of the program */
        uint32_t insn;    /* instruction index within the program (its first instruction is 0) */
        const char *kind; /* "field_byte_offset", "field_byte_size", "field_exists", "field_signed",
                           * "field_lshift_u64", "field_rshift_u64", "type_id_local", "type_id_target",
                           * "type_exists", "type_size", "enumval_exists", "enumval_value", "type_matches" */
        char *type;       /* local root type name as the object spells it, e.g. "task_struct", "task___v2" */
        char *access;     /* member names: "real_parent.tgid", "[2].pid", "comm[3]"; anonymous members are
                           * walked but not printed; the enumerator for enum kinds; "" for type kinds */
        int64_t local;    /* the value libbpf computes from the object's own BTF (what the instruction
                           * holds, but for bitfield offsets, sizes and left shifts, which libbpf ignores) */
        int64_t target;   /* the value libbpf patches in (u64 values above INT64_MAX wrap); 0 unless ok */
        char *btf;        /* target the first matching candidate came from, NULL if none matched */
        bool ok;          /* libbpf patches a value: resolved, or an *_exists/type_size/type_id_target
                           * relocation that found nothing and patches 0 */
        bool poisoned;    /* libbpf replaces the instruction by an invalid call instead of failing (no
                           * match for an offset/size/enum value, or an unsafe load size change): the
                           * load fails only if the verifier finds the instruction reachable */
        char *error;      /* why not ok: "no candidate type task_struct", "field missing: real_parent.foo",
                           * "ambiguous: candidates disagree (...)", ... */
} CoreRelocation;

typedef struct CorePlan {
        CoreRelocation *relocations; /* in .BTF.ext order, as libbpf processes them */
        size_t n_relocations;
        struct btf *min_btf; /* standalone BTF (no base) with only the touched types; NULL when the object
                              * has no CO-RE relocations */
        bool failed;         /* a relocation libbpf would fail the load on (ambiguity, unpatchable insn) */
        bool needs_full_btf; /* min_btf would not reproduce libbpf's result: a type_id_target relocation
                              * resolved (libbpf would patch min_btf's type id, not the kernel's), or a
                              * type the BTF writer cannot copy; load against the full BTF instead */
} CorePlan;

/* An object with more CO-RE relocation records is refused (-EBADMSG). */
#define CORE_RELOCATIONS_MAX (1u << 17)

/* Parses .BTF, .BTF.ext and the symbol table of the BPF ELF object in memory (already checked to be a BPF
 * ELF by loader_check_elf), resolves every CO-RE relocation through lookup, builds min_btf.
 * Malformed input (a .BTF.ext header or record out of bounds, a bad access string, a type id out of range,
 * a type loop, ...) → -EBADMSG with *ret_error naming the problem; -ENOMEM, or the lookup's error.
 * A relocation libbpf would fail on is not an error here: it sets CorePlan.failed. */
int core_plan(const void *elf, size_t size, CoreLookup lookup, void *userdata, CorePlan **ret,
              char **ret_error);
CorePlan *core_plan_free(CorePlan *p);
static inline void core_plan_freep(CorePlan **p) {
        core_plan_free(*p);
}

/* libbpf's essential name: name up to its last "___flavor" suffix ("X___Y", X and Y not '_'). The index
 * behind a CoreLookup must group names by this. */
size_t core_essential_name_len(const char *name);

/* The planner's own (static) spelling of a relocation kind name, NULL if it is none. */
const char *core_kind_name(const char *name);
