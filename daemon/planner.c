/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CO-RE relocation as libbpf does it (relo_core.c and libbpf.c's candidate
 * search), on the object's ELF bytes: the same candidates, the same matching
 * rules, the same values, the same poisoning and the same failures. Every
 * matching candidate is then copied into a minimal BTF, trimmed to what
 * libbpf's checks look at: composites keep only the members relocations
 * reach (same offsets, bitfields and size), everything else is copied whole
 * (ints, enums, arrays, typedef/modifier/pointer chains), and a composite
 * reached only by reference is copied without members. Trimming only ever
 * removes members, and libbpf's matching needs members to be present, so a
 * candidate that did not match the full BTF cannot match the minimal one;
 * the two rules that look at member counts (a zero-length array is flexible
 * only as the last member, type_matches wants as many members as the local
 * type has) get extra members kept.
 *
 * The object is untrusted: every offset, length, index and type id read from
 * it is checked, and every walk of its type graph is bounded.
 */
#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "planner.h"

#define SPEC_MAX 64     /* libbpf's BPF_CORE_SPEC_MAX_LEN */
#define CHAIN_MAX 32    /* typedef/modifier/array chains: libbpf's resolve depth */
#define COMPAT_DEPTH 32 /* libbpf's recursion limits for type compatibility and matching */
#define BTF_EXT_MAGIC 0xeB9F
#define MIN_BTF_TYPES_MAX (1u << 20)

static const char *const kind_names[] = {
        [BPF_CORE_FIELD_BYTE_OFFSET] = "field_byte_offset",
        [BPF_CORE_FIELD_BYTE_SIZE] = "field_byte_size",
        [BPF_CORE_FIELD_EXISTS] = "field_exists",
        [BPF_CORE_FIELD_SIGNED] = "field_signed",
        [BPF_CORE_FIELD_LSHIFT_U64] = "field_lshift_u64",
        [BPF_CORE_FIELD_RSHIFT_U64] = "field_rshift_u64",
        [BPF_CORE_TYPE_ID_LOCAL] = "type_id_local",
        [BPF_CORE_TYPE_ID_TARGET] = "type_id_target",
        [BPF_CORE_TYPE_EXISTS] = "type_exists",
        [BPF_CORE_TYPE_SIZE] = "type_size",
        [BPF_CORE_ENUMVAL_EXISTS] = "enumval_exists",
        [BPF_CORE_ENUMVAL_VALUE] = "enumval_value",
        [BPF_CORE_TYPE_MATCHES] = "type_matches",
};

const char *core_kind_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(kind_names); i++)
                if (kind_names[i] && name && strcmp(kind_names[i], name) == 0)
                        return kind_names[i];
        return NULL;
}

static bool kind_is_field(unsigned k) {
        return k <= BPF_CORE_FIELD_RSHIFT_U64;
}

static bool kind_is_enumval(unsigned k) {
        return k == BPF_CORE_ENUMVAL_EXISTS || k == BPF_CORE_ENUMVAL_VALUE;
}

static bool kind_is_type(unsigned k) {
        return k < ELEMENTSOF(kind_names) && !kind_is_field(k) && !kind_is_enumval(k);
}

/* One step of an access path: a named member (name set) or an array index. */
typedef struct Accessor {
        uint32_t type_id; /* the composite holding the member, or the array's element type */
        uint32_t idx;
        const char *name;
} Accessor;

/* libbpf's bpf_core_spec: acc[] only has named members and indices, raw[] every step. */
typedef struct Spec {
        const struct btf *btf;
        uint32_t root_id;
        unsigned kind;
        Accessor acc[SPEC_MAX];
        unsigned len;
        uint32_t raw[SPEC_MAX];
        unsigned raw_len;
        uint32_t bit_offset;
} Spec;

/* libbpf's bpf_core_relo_res. */
typedef struct Result {
        uint64_t orig, new;
        uint32_t orig_sz, new_sz, orig_type, new_type;
        bool poison, validate, fail_memsz;
} Result;

/* Why a candidate did not match: the local accessor where it stopped. */
typedef struct Miss {
        unsigned at;
        const char *why;
} Miss;

/* A target type copied into the minimal BTF as type index + 1. */
typedef struct Node {
        const struct btf *btf; /* the BTF defining it: a split BTF's base for base ids */
        uint32_t id;
        bool *keep; /* composites: members kept, NULL while none */
        uint32_t n_kept;
} Node;

typedef struct MinBtf {
        Node *nodes;
        size_t n, cap, n_closed;
        uint32_t *slots; /* open addressing over nodes: index + 1, 0 when free */
        size_t n_slots;
        bool inexact; /* a type the BTF writer cannot express as libbpf reads it */
} MinBtf;

typedef struct CandList {
        CoreCandidate *c;
        size_t n;
        bool looked_up;
} CandList;

typedef struct Program {
        const char *name;
        size_t start, end; /* instruction indices within the section */
} Program;

typedef struct Section {
        const char *name;
        const uint8_t *data;
        size_t n_insns;
        Program *progs; /* sorted by start */
        size_t n_progs;
} Section;

typedef struct Planner {
        Elf *elf;
        Section *secs; /* by ELF section index; only executable ones have data */
        size_t n_secs;
        struct btf *local;
        CoreLookup lookup;
        void *userdata;
        CandList *cands; /* by local root type id: libbpf's candidate cache, pruned as it prunes */
        MinBtf min;
        CorePlan *plan;
        size_t cap_relocations;
        char *error;
} Planner;

_printf_(2, 3) static int bad(Planner *p, const char *fmt, ...) {
        va_list ap;

        if (!p->error) {
                va_start(ap, fmt);
                if (vasprintf(&p->error, fmt, ap) < 0)
                        p->error = NULL;
                va_end(ap);
        }
        return -EBADMSG;
}

_printf_(1, 2) static char *strf(const char *fmt, ...) {
        char *s;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

size_t core_essential_name_len(const char *name) {
        size_t n = strlen(name);

        if (n < 5)
                return n;
        /* The last "X___Y" with X and Y not underscores. */
        for (size_t i = n - 4; i-- > 0;)
                if (name[i] != '_' && name[i + 1] == '_' && name[i + 2] == '_' && name[i + 3] == '_' &&
                    name[i + 4] != '_')
                        return i + 1;
        return n;
}

static const char *name_of(const struct btf *btf, uint32_t off) {
        return btf__name_by_offset(btf, off) ?: "";
}

static bool essential_names_equal(const char *a, const char *b) {
        size_t la = core_essential_name_len(a), lb = core_essential_name_len(b);

        return la == lb && strncmp(a, b, la) == 0;
}

/* Skips modifiers and typedefs; NULL on a bad id or a loop. */
static const struct btf_type *skip_mods(const struct btf *btf, uint32_t id, uint32_t *ret_id) {
        const struct btf_type *t = btf__type_by_id(btf, id);

        for (unsigned depth = 0; t && (btf_is_mod(t) || btf_is_typedef(t)); depth++) {
                if (depth >= CHAIN_MAX)
                        return NULL;
                id = t->type;
                t = btf__type_by_id(btf, id);
        }
        if (ret_id)
                *ret_id = id;
        return t;
}

static bool kinds_compat(const struct btf_type *a, const struct btf_type *b) {
        return btf_kind(a) == btf_kind(b) || (btf_is_any_enum(a) && btf_is_any_enum(b));
}

/* ---- the minimal BTF ---- */

static size_t node_hash(const struct btf *btf, uint32_t id, size_t n_slots) {
        uint64_t h =
                (uint64_t) (uintptr_t) btf * 0x9e3779b97f4a7c15ull ^ (uint64_t) id * 0xff51afd7ed558ccdull;

        return (size_t) (h ^ h >> 29) & (n_slots - 1);
}

static int min_rehash(MinBtf *m) {
        size_t n_slots = m->n_slots ? m->n_slots * 2 : 256;
        uint32_t *slots = calloc(n_slots, sizeof(uint32_t));

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->n; i++) {
                size_t h = node_hash(m->nodes[i].btf, m->nodes[i].id, n_slots);

                while (slots[h])
                        h = (h + 1) & (n_slots - 1);
                slots[h] = (uint32_t) i + 1;
        }
        free(m->slots);
        m->slots = slots;
        m->n_slots = n_slots;
        return 0;
}

static const struct btf *defining_btf(const struct btf *btf, uint32_t id) {
        const struct btf *base;

        while ((base = btf__base_btf(btf)) && id < btf__type_cnt(base))
                btf = base;
        return btf;
}

/* The new id of (btf, id), 0 for void or a type not copied. */
static uint32_t min_id(const MinBtf *m, const struct btf *btf, uint32_t id) {
        if (id == 0 || m->n_slots == 0)
                return 0;
        btf = defining_btf(btf, id);
        for (size_t h = node_hash(btf, id, m->n_slots); m->slots[h]; h = (h + 1) & (m->n_slots - 1)) {
                const Node *n = &m->nodes[m->slots[h] - 1];

                if (n->btf == btf && n->id == id)
                        return m->slots[h];
        }
        return 0;
}

/* Copies (btf, id) into the minimal BTF (what it refers to follows in min_close()). */
static int min_add(MinBtf *m, const struct btf *btf, uint32_t id) {
        size_t h;
        int r;

        if (id == 0 || min_id(m, btf, id) != 0)
                return 0;
        if (!btf__type_by_id(btf, id))
                return -EINVAL;
        if (m->n >= MIN_BTF_TYPES_MAX)
                return -E2BIG;
        if ((m->n + 1) * 2 > m->n_slots) {
                r = min_rehash(m);
                if (r < 0)
                        return r;
        }
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 64;
                Node *nodes = reallocarray(m->nodes, cap, sizeof(Node));

                if (!nodes)
                        return -ENOMEM;
                m->nodes = nodes;
                m->cap = cap;
        }
        btf = defining_btf(btf, id);
        for (h = node_hash(btf, id, m->n_slots); m->slots[h]; h = (h + 1) & (m->n_slots - 1))
                ;
        m->slots[h] = (uint32_t) m->n + 1;
        m->nodes[m->n++] = (Node) { .btf = btf, .id = id };
        return 0;
}

/* Adds what the copied types refer to, all but composites' members. */
static int min_close(MinBtf *m) {
        for (; m->n_closed < m->n; m->n_closed++) {
                const struct btf *btf = m->nodes[m->n_closed].btf;
                const struct btf_type *t = btf__type_by_id(btf, m->nodes[m->n_closed].id);
                int r = 0;

                switch (btf_kind(t)) {
                case BTF_KIND_PTR:
                case BTF_KIND_TYPEDEF:
                case BTF_KIND_VOLATILE:
                case BTF_KIND_CONST:
                case BTF_KIND_RESTRICT:
                case BTF_KIND_TYPE_TAG:
                        r = min_add(m, btf, t->type);
                        break;
                case BTF_KIND_ARRAY:
                        r = min_add(m, btf, btf_array(t)->type);
                        if (r >= 0)
                                r = min_add(m, btf, btf_array(t)->index_type);
                        break;
                case BTF_KIND_FUNC_PROTO:
                        r = min_add(m, btf, t->type);
                        for (uint16_t i = 0; r >= 0 && i < btf_vlen(t); i++)
                                r = min_add(m, btf, btf_params(t)[i].type);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static Node *min_node(MinBtf *m, const struct btf *btf, uint32_t id) {
        uint32_t new_id = min_id(m, btf, id);

        return new_id ? &m->nodes[new_id - 1] : NULL;
}

/* Keeps member idx of composite (btf, id) in its copy. */
static int min_keep_member(MinBtf *m, const struct btf *btf, uint32_t id, uint32_t idx) {
        const struct btf_type *t = btf__type_by_id(btf, id), *mt;
        const struct btf_member *mb;
        uint16_t vlen;
        Node *n;
        int r;

        if (!t || !btf_is_composite(t) || idx >= btf_vlen(t))
                return -EINVAL;
        vlen = btf_vlen(t);
        r = min_add(m, btf, id);
        if (r < 0)
                return r;
        n = min_node(m, btf, id);
        if (!n->keep) {
                n->keep = calloc(vlen, sizeof(bool));
                if (!n->keep)
                        return -ENOMEM;
        }
        if (n->keep[idx])
                return 0;
        n->keep[idx] = true;
        n->n_kept++;
        mb = btf_members(t) + idx;
        r = min_add(m, btf, mb->type);
        if (r < 0)
                return r;
        /* A zero-length array is flexible only as the last member (libbpf's is_flex_arr): keep it from
         * becoming the last one in the copy. */
        mt = skip_mods(btf, mb->type, NULL);
        if (mt && btf_is_array(mt) && btf_array(mt)->nelems == 0 && idx + 1u < vlen)
                return min_keep_member(m, btf, id, vlen - 1u);
        return 0;
}

/* Keeps members of composite (btf, id) in order until at least want are kept. */
static int min_keep_count(MinBtf *m, const struct btf *btf, uint32_t id, uint16_t want) {
        const struct btf_type *t = btf__type_by_id(btf, id);

        for (uint16_t i = 0; i < btf_vlen(t); i++) {
                Node *n = min_node(m, btf, id);
                int r;

                if (n && n->n_kept >= want)
                        break;
                if (n && n->keep && n->keep[i])
                        continue;
                r = min_keep_member(m, btf, id, i);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int emit_node(const MinBtf *m, const Node *n, struct btf *out, bool *inexact) {
        const struct btf *btf = n->btf;
        const struct btf_type *t = btf__type_by_id(btf, n->id);
        const char *name = name_of(btf, t->name_off);
        int r;

#define NEW(id) ((int) min_id(m, btf, (id)))
        switch (btf_kind(t)) {
        case BTF_KIND_INT:
        case BTF_KIND_FLOAT:
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64:
        case BTF_KIND_FWD:
                /* No type references: copied verbatim, int encodings and enumerators included. */
                return btf__add_type(out, btf, t);
        case BTF_KIND_PTR:
                return btf__add_ptr(out, NEW(t->type));
        case BTF_KIND_TYPEDEF:
                return btf__add_typedef(out, name, NEW(t->type));
        case BTF_KIND_VOLATILE:
                return btf__add_volatile(out, NEW(t->type));
        case BTF_KIND_CONST:
                return btf__add_const(out, NEW(t->type));
        case BTF_KIND_RESTRICT:
                return btf__add_restrict(out, NEW(t->type));
        case BTF_KIND_TYPE_TAG:
                return btf__add_type_tag(out, name, NEW(t->type));
        case BTF_KIND_ARRAY:
                return btf__add_array(out, NEW(btf_array(t)->index_type), NEW(btf_array(t)->type),
                                      btf_array(t)->nelems);
        case BTF_KIND_FUNC_PROTO:
                r = btf__add_func_proto(out, NEW(t->type));
                for (uint16_t i = 0; r > 0 && i < btf_vlen(t); i++) {
                        const struct btf_param *pa = btf_params(t) + i;
                        int q = btf__add_func_param(out, name_of(btf, pa->name_off), NEW(pa->type));

                        if (q < 0)
                                return q;
                }
                return r;
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                r = btf_is_struct(t) ? btf__add_struct(out, name, t->size)
                                     : btf__add_union(out, name, t->size);
                for (uint16_t i = 0; r > 0 && n->keep && i < btf_vlen(t); i++) {
                        const struct btf_member *mb = btf_members(t) + i;
                        uint32_t off = btf_member_bit_offset(t, i), bits = btf_member_bitfield_size(t, i);
                        int q;

                        if (!n->keep[i])
                                continue;
                        /* Old-style (kflag 0) members off a byte boundary cannot be written back. */
                        if (off % 8 != 0 && bits == 0) {
                                *inexact = true;
                                continue;
                        }
                        q = btf__add_field(out, name_of(btf, mb->name_off), NEW(mb->type), off, bits);
                        if (q < 0)
                                return q;
                }
                return r;
        default:
                return -EINVAL;
        }
#undef NEW
}

static int min_emit(MinBtf *m, struct btf **ret) {
        struct btf *out;
        int r;

        r = min_close(m);
        if (r < 0)
                return r;
        out = btf__new_empty();
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < m->n; i++) {
                r = emit_node(m, &m->nodes[i], out, &m->inexact);
                if (r >= 0 && (size_t) r != i + 1)
                        r = -EINVAL;
                if (r < 0) {
                        btf__free(out);
                        return r;
                }
        }
        *ret = out;
        return 0;
}

static void min_done(MinBtf *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->nodes[i].keep);
        free(m->nodes);
        free(m->slots);
}

/* ---- libbpf's matching rules ---- */

static bool is_flex_arr(const struct btf *btf, const Accessor *acc, const struct btf_array *a) {
        if (!acc->name || a->nelems > 0)
                return false;
        return acc->idx + 1u == btf_vlen(btf__type_by_id(btf, acc->type_id));
}

/* bpf_core_types_are_compat(): type-based relocations. */
static int types_are_compat(const struct btf *lb, uint32_t lid, const struct btf *tb, uint32_t tid,
                            int level) {
        const struct btf_type *lt = btf__type_by_id(lb, lid), *tt = btf__type_by_id(tb, tid);

        if (!lt || !tt)
                return -EINVAL;
        if (!kinds_compat(lt, tt))
                return 0;
        for (int depth = COMPAT_DEPTH; depth > 0; depth--) {
                lt = skip_mods(lb, lid, &lid);
                tt = skip_mods(tb, tid, &tid);
                if (!lt || !tt)
                        return -EINVAL;
                if (!kinds_compat(lt, tt))
                        return 0;
                switch (btf_kind(lt)) {
                case BTF_KIND_UNKN:
                case BTF_KIND_STRUCT:
                case BTF_KIND_UNION:
                case BTF_KIND_ENUM:
                case BTF_KIND_ENUM64:
                case BTF_KIND_FWD:
                        return 1;
                case BTF_KIND_INT:
                        /* Only the deprecated int encodings with an offset are incompatible. */
                        return btf_int_offset(lt) == 0 && btf_int_offset(tt) == 0;
                case BTF_KIND_PTR:
                        lid = lt->type;
                        tid = tt->type;
                        break;
                case BTF_KIND_ARRAY:
                        lid = btf_array(lt)->type;
                        tid = btf_array(tt)->type;
                        break;
                case BTF_KIND_FUNC_PROTO:
                        if (btf_vlen(lt) != btf_vlen(tt))
                                return 0;
                        for (uint16_t i = 0; i < btf_vlen(lt); i++) {
                                uint32_t l = 0, t = 0;
                                int r;

                                if (level <= 0)
                                        return -EINVAL;
                                skip_mods(lb, btf_params(lt)[i].type, &l);
                                skip_mods(tb, btf_params(tt)[i].type, &t);
                                r = types_are_compat(lb, l, tb, t, level - 1);
                                if (r <= 0)
                                        return r;
                        }
                        lid = lt->type;
                        tid = tt->type;
                        break;
                default:
                        return 0;
                }
        }
        return -EINVAL;
}

/* bpf_core_fields_are_compat(): a member's type against the candidate's. */
static int fields_are_compat(const struct btf *lb, uint32_t lid, const struct btf *tb, uint32_t tid) {
        for (int depth = COMPAT_DEPTH; depth > 0; depth--) {
                const struct btf_type *lt = skip_mods(lb, lid, &lid), *tt = skip_mods(tb, tid, &tid);
                const char *ln, *tn;

                if (!lt || !tt)
                        return -EINVAL;
                if (btf_is_composite(lt) && btf_is_composite(tt))
                        return 1;
                if (!kinds_compat(lt, tt))
                        return 0;
                switch (btf_kind(lt)) {
                case BTF_KIND_PTR:
                case BTF_KIND_FLOAT:
                        return 1;
                case BTF_KIND_FWD:
                case BTF_KIND_ENUM:
                case BTF_KIND_ENUM64:
                        /* Anonymous on either side, or the same essential name. */
                        ln = name_of(lb, lt->name_off);
                        tn = name_of(tb, tt->name_off);
                        return core_essential_name_len(ln) == 0 || core_essential_name_len(tn) == 0 ||
                               essential_names_equal(ln, tn);
                case BTF_KIND_INT:
                        return btf_int_offset(lt) == 0 && btf_int_offset(tt) == 0;
                case BTF_KIND_ARRAY:
                        lid = btf_array(lt)->type;
                        tid = btf_array(tt)->type;
                        break;
                default:
                        return 0;
                }
        }
        return -EINVAL;
}

/* bpf_core_names_match(). */
static bool names_match(const struct btf *lb, uint32_t loff, const struct btf *tb, uint32_t toff) {
        const char *l = name_of(lb, loff), *t = name_of(tb, toff);

        if (!*t)
                return !*l;
        return essential_names_equal(l, t);
}

static int enums_match(const struct btf *lb, const struct btf_type *lt, const struct btf *tb,
                       const struct btf_type *tt) {
        if (lt->size != tt->size || btf_vlen(lt) > btf_vlen(tt))
                return 0;
        /* Every local enumerator has a target one of the same name; values do not matter. */
        for (uint16_t i = 0; i < btf_vlen(lt); i++) {
                uint32_t loff = btf_is_enum(lt) ? btf_enum(lt)[i].name_off : btf_enum64(lt)[i].name_off;
                bool found = false;

                for (uint16_t j = 0; j < btf_vlen(tt) && !found; j++)
                        found = names_match(lb, loff, tb,
                                            btf_is_enum(tt) ? btf_enum(tt)[j].name_off
                                                            : btf_enum64(tt)[j].name_off);
                if (!found)
                        return 0;
        }
        return 1;
}

static int types_match(const struct btf *lb, uint32_t lid, const struct btf *tb, uint32_t tid,
                       bool behind_ptr, int level, MinBtf *mark);

static int composites_match(const struct btf *lb, const struct btf_type *lt, const struct btf *tb,
                            uint32_t tid, bool behind_ptr, int level, MinBtf *mark) {
        const struct btf_type *tt = btf__type_by_id(tb, tid);
        int r;

        if (btf_vlen(lt) > btf_vlen(tt))
                return 0;
        for (uint16_t i = 0; i < btf_vlen(lt); i++) {
                const struct btf_member *lm = btf_members(lt) + i;
                bool matched = false;

                for (uint16_t j = 0; j < btf_vlen(tt) && !matched; j++) {
                        const struct btf_member *tm = btf_members(tt) + j;

                        if (!names_match(lb, lm->name_off, tb, tm->name_off))
                                continue;
                        r = types_match(lb, lm->type, tb, tm->type, behind_ptr, level - 1, NULL);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                continue;
                        matched = true;
                        if (mark) {
                                r = min_keep_member(mark, tb, tid, j);
                                if (r >= 0)
                                        r = types_match(lb, lm->type, tb, tm->type, behind_ptr, level - 1,
                                                        mark);
                                if (r < 0)
                                        return r;
                        }
                }
                if (!matched)
                        return 0;
        }
        /* Two anonymous local members may match one target member: the copy still needs as many
         * members as the local type has. */
        if (mark) {
                r = min_keep_count(mark, tb, tid, btf_vlen(lt));
                if (r < 0)
                        return r;
        }
        return 1;
}

/* __bpf_core_types_match(). With mark set (only once it is known to match), keeps in the minimal BTF what
 * the match looked at. */
static int types_match(const struct btf *lb, uint32_t lid, const struct btf *tb, uint32_t tid,
                       bool behind_ptr, int level, MinBtf *mark) {
        int r;

        if (level <= 0)
                return -EINVAL;
        if (mark) {
                r = min_add(mark, tb, tid);
                if (r < 0)
                        return r;
        }
        for (int depth = COMPAT_DEPTH; depth > 0; depth--) {
                const struct btf_type *lt = skip_mods(lb, lid, &lid), *tt = skip_mods(tb, tid, &tid);
                unsigned lk, tk;

                if (!lt || !tt)
                        return -EINVAL;
                if (!names_match(lb, lt->name_off, tb, tt->name_off))
                        return 0;
                lk = btf_kind(lt);
                tk = btf_kind(tt);
                switch (lk) {
                case BTF_KIND_UNKN:
                        return lk == tk;
                case BTF_KIND_FWD:
                        if (behind_ptr && lk != tk)
                                /* kflag: 0 declares a struct, 1 a union */
                                return (tk == BTF_KIND_STRUCT && !btf_kflag(lt)) ||
                                       (tk == BTF_KIND_UNION && btf_kflag(lt));
                        return lk == tk && btf_kflag(lt) == btf_kflag(tt);
                case BTF_KIND_ENUM:
                case BTF_KIND_ENUM64:
                        return btf_is_any_enum(tt) && enums_match(lb, lt, tb, tt);
                case BTF_KIND_STRUCT:
                case BTF_KIND_UNION:
                        if (behind_ptr) {
                                if (lk == tk)
                                        return 1;
                                return tk == BTF_KIND_FWD && (lk == BTF_KIND_UNION) == btf_kflag(tt);
                        }
                        if (lk != tk)
                                return 0;
                        return composites_match(lb, lt, tb, tid, behind_ptr, level, mark);
                case BTF_KIND_INT:
                        return lk == tk && lt->size == tt->size &&
                               (btf_int_encoding(lt) & BTF_INT_SIGNED) ==
                                       (btf_int_encoding(tt) & BTF_INT_SIGNED);
                case BTF_KIND_PTR:
                        if (lk != tk)
                                return 0;
                        behind_ptr = true;
                        lid = lt->type;
                        tid = tt->type;
                        break;
                case BTF_KIND_ARRAY:
                        if (lk != tk || btf_array(lt)->nelems != btf_array(tt)->nelems)
                                return 0;
                        lid = btf_array(lt)->type;
                        tid = btf_array(tt)->type;
                        break;
                case BTF_KIND_FUNC_PROTO:
                        if (lk != tk || btf_vlen(lt) != btf_vlen(tt))
                                return 0;
                        for (uint16_t i = 0; i < btf_vlen(lt); i++) {
                                r = types_match(lb, btf_params(lt)[i].type, tb, btf_params(tt)[i].type,
                                                behind_ptr, level - 1, mark);
                                if (r <= 0)
                                        return r;
                        }
                        lid = lt->type;
                        tid = tt->type;
                        break;
                default:
                        return 0;
                }
        }
        return -EINVAL;
}

/* bpf_core_match_member(): finds the local accessor's member in composite tid, through anonymous members. */
static int match_member(const struct btf *lb, const Accessor *lacc, const struct btf *tb, uint32_t tid,
                        Spec *spec, uint32_t *next_id, const char **why) {
        const struct btf_type *tt = skip_mods(tb, tid, &tid), *lt = btf__type_by_id(lb, lacc->type_id);
        const struct btf_member *lm = btf_members(lt) + lacc->idx;

        if (!tt)
                return -EINVAL;
        if (!btf_is_composite(tt))
                return 0;
        for (uint16_t i = 0; i < btf_vlen(tt); i++) {
                const struct btf_member *m = btf_members(tt) + i;
                uint32_t bit_off = btf_member_bit_offset(tt, i);
                const char *name = name_of(tb, m->name_off);
                int r;

                if (spec->raw_len == SPEC_MAX)
                        return -E2BIG;
                /* Speculatively descend into this member. */
                spec->bit_offset += bit_off;
                spec->raw[spec->raw_len++] = i;
                if (!*name) {
                        r = match_member(lb, lacc, tb, m->type, spec, next_id, why);
                        if (r != 0)
                                return r;
                } else if (strcmp(lacc->name, name) == 0) {
                        spec->acc[spec->len++] = (Accessor) { tid, i, name };
                        *next_id = m->type;
                        r = fields_are_compat(lb, lm->type, tb, m->type);
                        if (r == 0) {
                                spec->len--;
                                *why = "field type differs";
                        }
                        return r;
                }
                spec->bit_offset -= bit_off;
                spec->raw_len--;
        }
        return 0;
}

/* bpf_core_spec_match(): 1 and the candidate's spec in targ if tid matches local, 0 if not. */
static int spec_match(const Spec *local, const struct btf *tb, uint32_t tid, Spec *targ, Miss *miss) {
        const Accessor *lacc = local->acc;
        int r;

        *targ = (Spec) { .btf = tb, .root_id = tid, .kind = local->kind };
        *miss = (Miss) {};

        if (kind_is_type(local->kind)) {
                r = local->kind == BPF_CORE_TYPE_MATCHES
                            ? types_match(local->btf, local->root_id, tb, tid, false, COMPAT_DEPTH, NULL)
                            : types_are_compat(local->btf, local->root_id, tb, tid, COMPAT_DEPTH);
                if (r == 0)
                        miss->why = local->kind == BPF_CORE_TYPE_MATCHES ? "type does not match"
                                                                         : "type differs";
                return r;
        }

        if (kind_is_enumval(local->kind)) {
                const struct btf_type *tt = skip_mods(tb, tid, &tid);

                if (!tt)
                        return -EINVAL;
                if (!btf_is_any_enum(tt)) {
                        miss->why = "not an enum";
                        return 0;
                }
                for (uint16_t i = 0; i < btf_vlen(tt); i++) {
                        const char *name = name_of(tb, btf_is_enum(tt) ? btf_enum(tt)[i].name_off
                                                                       : btf_enum64(tt)[i].name_off);

                        if (essential_names_equal(lacc->name, name)) {
                                targ->acc[targ->len++] = (Accessor) { tid, i, name };
                                targ->raw[targ->raw_len++] = i;
                                return 1;
                        }
                }
                miss->why = "enumerator missing";
                return 0;
        }

        for (unsigned i = 0; i < local->len; i++, lacc++) {
                const struct btf_type *tt = skip_mods(tb, tid, &tid);
                int64_t sz;

                if (!tt)
                        return -EINVAL;
                miss->at = i;
                if (lacc->name) {
                        r = match_member(local->btf, lacc, tb, tid, targ, &tid, &miss->why);
                        if (r <= 0) {
                                if (r == 0 && !miss->why)
                                        miss->why = "field missing";
                                return r;
                        }
                        continue;
                }
                /* The root accessor is already the element type: the root is accessed as root[idx]. */
                if (i > 0) {
                        const struct btf_array *a;

                        if (!btf_is_array(tt)) {
                                miss->why = "not an array";
                                return 0;
                        }
                        a = btf_array(tt);
                        if (!is_flex_arr(tb, &targ->acc[targ->len - 1], a) && lacc->idx >= a->nelems) {
                                miss->why = "index out of bounds";
                                return 0;
                        }
                        if (!skip_mods(tb, a->type, &tid))
                                return -EINVAL;
                }
                if (targ->raw_len == SPEC_MAX)
                        return -E2BIG;
                targ->acc[targ->len++] = (Accessor) { tid, lacc->idx, NULL };
                targ->raw[targ->raw_len++] = lacc->idx;
                sz = btf__resolve_size(tb, tid);
                if (sz < 0)
                        return (int) sz;
                targ->bit_offset += (uint32_t) ((uint64_t) lacc->idx * (uint64_t) sz * 8);
        }
        return 1;
}

/* bpf_core_calc_field_relo(): spec NULL means no match; -EUCLEAN asks for poisoning. */
static int calc_field(unsigned kind, const Spec *spec, uint64_t *val, uint32_t *field_sz, uint32_t *type_id,
                      bool *validate, const char **why) {
        const Accessor *acc;
        const struct btf_type *t, *mt;
        uint32_t byte_off, byte_sz, bit_off, bit_sz, field_type_id = 0;
        bool bitfield;
        int64_t sz;

        *field_sz = 0;
        if (kind == BPF_CORE_FIELD_EXISTS) {
                *val = spec ? 1 : 0;
                return 0;
        }
        if (!spec)
                return -EUCLEAN;

        acc = &spec->acc[spec->len - 1];
        t = btf__type_by_id(spec->btf, acc->type_id);
        if (!acc->name) {
                /* An array element (or the root itself). */
                if (kind != BPF_CORE_FIELD_BYTE_OFFSET && kind != BPF_CORE_FIELD_BYTE_SIZE) {
                        *why = "relocation kind does not apply to an array element";
                        return -EINVAL;
                }
                sz = btf__resolve_size(spec->btf, acc->type_id);
                if (sz < 0) {
                        *why = "type of unknown size";
                        return -EINVAL;
                }
                if (kind == BPF_CORE_FIELD_BYTE_OFFSET) {
                        *val = spec->bit_offset / 8;
                        *field_sz = (uint32_t) sz;
                        *type_id = acc->type_id;
                } else
                        *val = (uint64_t) sz;
                if (validate)
                        *validate = true;
                return 0;
        }

        mt = skip_mods(spec->btf, btf_members(t)[acc->idx].type, &field_type_id);
        if (!mt) {
                *why = "member type loops";
                return -EINVAL;
        }
        bit_off = spec->bit_offset;
        bit_sz = btf_member_bitfield_size(t, acc->idx);
        bitfield = bit_sz > 0;
        if (bitfield) {
                byte_sz = mt->size;
                if (byte_sz == 0) {
                        *why = "bitfield of a type without size";
                        return -EINVAL;
                }
                byte_off = bit_off / 8 / byte_sz * byte_sz;
                /* The smallest load that holds the whole bitfield. */
                while (bit_off + bit_sz - byte_off * 8 > byte_sz * 8) {
                        if (byte_sz >= 8) {
                                *why = "bitfield cannot be read with a 64-bit load";
                                return -E2BIG;
                        }
                        byte_sz *= 2;
                        byte_off = bit_off / 8 / byte_sz * byte_sz;
                }
        } else {
                sz = btf__resolve_size(spec->btf, field_type_id);
                if (sz < 0) {
                        *why = "field of unknown size";
                        return -EINVAL;
                }
                byte_sz = (uint32_t) sz;
                byte_off = bit_off / 8;
                bit_sz = byte_sz * 8;
        }

        /* Bitfield values are validated only where compiler and libbpf cannot disagree. */
        if (validate)
                *validate = !bitfield;

        switch (kind) {
        case BPF_CORE_FIELD_BYTE_OFFSET:
                *val = byte_off;
                if (!bitfield) {
                        *field_sz = byte_sz;
                        *type_id = field_type_id;
                }
                break;
        case BPF_CORE_FIELD_BYTE_SIZE:
                *val = byte_sz;
                break;
        case BPF_CORE_FIELD_SIGNED:
                *val = (btf_is_any_enum(mt) && btf_kflag(mt)) ||
                       (btf_is_int(mt) && (btf_int_encoding(mt) & BTF_INT_SIGNED));
                if (validate)
                        *validate = true;
                break;
        case BPF_CORE_FIELD_LSHIFT_U64:
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                *val = (uint32_t) (64 - (bit_off + bit_sz - byte_off * 8));
#else
                *val = (uint32_t) ((8 - byte_sz) * 8 + (bit_off - byte_off * 8));
#endif
                break;
        case BPF_CORE_FIELD_RSHIFT_U64:
                *val = (uint32_t) (64 - bit_sz);
                if (validate)
                        *validate = true;
                break;
        }
        return 0;
}

/* bpf_core_calc_type_relo(): no match gives 0, never poison. */
static int calc_type(unsigned kind, const Spec *spec, uint64_t *val, bool *validate, const char **why) {
        int64_t sz;

        if (validate)
                *validate = true;
        if (!spec) {
                *val = 0;
                return 0;
        }
        switch (kind) {
        case BPF_CORE_TYPE_ID_TARGET:
                *val = spec->root_id;
                /* Type ids move when objects are linked: never validated. */
                if (validate)
                        *validate = false;
                break;
        case BPF_CORE_TYPE_EXISTS:
        case BPF_CORE_TYPE_MATCHES:
                *val = 1;
                break;
        case BPF_CORE_TYPE_SIZE:
                sz = btf__resolve_size(spec->btf, spec->root_id);
                if (sz < 0) {
                        *why = "type of unknown size";
                        return -EINVAL;
                }
                *val = (uint64_t) sz;
                break;
        }
        return 0;
}

static int calc_enumval(unsigned kind, const Spec *spec, uint64_t *val) {
        const struct btf_type *t;

        if (kind == BPF_CORE_ENUMVAL_EXISTS) {
                *val = spec ? 1 : 0;
                return 0;
        }
        if (!spec)
                return -EUCLEAN;
        t = btf__type_by_id(spec->btf, spec->acc[0].type_id);
        /* A 32-bit enumerator is sign-extended whatever the enum's signedness, as libbpf does. */
        *val = btf_is_enum(t) ? (uint64_t) (int64_t) btf_enum(t)[spec->acc[0].idx].val
                              : btf_enum64_value(btf_enum64(t) + spec->acc[0].idx);
        return 0;
}

/* bpf_core_calc_relo(): the local and target values of one relocation; targ NULL if nothing matched. */
static int calc_relo(const Spec *local, const Spec *targ, Result *res, const char **why) {
        unsigned kind = local->kind;
        int r;

        *res = (Result) { .validate = true };
        if (kind_is_field(kind)) {
                r = calc_field(kind, local, &res->orig, &res->orig_sz, &res->orig_type, &res->validate, why);
                if (r == 0)
                        r = calc_field(kind, targ, &res->new, &res->new_sz, &res->new_type, NULL, why);
                if (r == 0 && res->orig_sz != res->new_sz) {
                        const struct btf_type *ot = btf__type_by_id(local->btf, res->orig_type),
                                              *nt = btf__type_by_id(targ->btf, res->new_type);

                        /* A load may change size only for pointers and unsigned integers (zero-extended). */
                        res->fail_memsz = !(btf_is_ptr(ot) && btf_is_ptr(nt)) &&
                                          !(btf_is_int(ot) && btf_is_int(nt) &&
                                            btf_int_encoding(ot) != BTF_INT_SIGNED &&
                                            btf_int_encoding(nt) != BTF_INT_SIGNED);
                }
        } else if (kind_is_type(kind)) {
                r = calc_type(kind, local, &res->orig, &res->validate, why);
                if (r == 0)
                        r = calc_type(kind, targ, &res->new, NULL, why);
        } else {
                r = calc_enumval(kind, local, &res->orig);
                if (r == 0)
                        r = calc_enumval(kind, targ, &res->new);
        }
        if (r == -EUCLEAN) {
                res->poison = true;
                r = 0;
        }
        return r;
}

static unsigned insn_bytes(uint8_t code) {
        switch (BPF_SIZE(code)) {
        case BPF_DW:
                return 8;
        case BPF_W:
                return 4;
        case BPF_H:
                return 2;
        default:
                return 1;
        }
}

/* bpf_core_patch_insn()'s checks: NULL if libbpf patches (or, setting res->poison, poisons) the instruction,
 * else why it fails the load. */
static const char *check_insn(const Section *sec, const Program *prog, size_t idx, Result *res) {
        struct bpf_insn insn[2];
        uint64_t imm;

        if (res->poison)
                return NULL;
        memcpy(&insn[0], sec->data + idx * sizeof(struct bpf_insn), sizeof(struct bpf_insn));
        switch (BPF_CLASS(insn[0].code)) {
        case BPF_ALU:
        case BPF_ALU64:
                if (BPF_SRC(insn[0].code) != BPF_K)
                        return "the instruction has a register operand, not an immediate";
                if (res->validate && (uint64_t) (int64_t) insn[0].imm != res->orig)
                        return "the instruction does not hold the value the object's BTF gives";
                return NULL;
        case BPF_LDX:
        case BPF_ST:
        case BPF_STX:
                if (res->validate && (uint64_t) (int64_t) insn[0].off != res->orig)
                        return "the instruction does not hold the offset the object's BTF gives";
                if (res->new > SHRT_MAX)
                        return "the offset does not fit the instruction";
                if (res->fail_memsz) {
                        res->poison = true;
                        return NULL;
                }
                if (res->new_sz != res->orig_sz) {
                        if (insn_bytes(insn[0].code) != res->orig_sz)
                                return "the instruction's access size is not the field's";
                        if (res->new_sz != 1 && res->new_sz != 2 && res->new_sz != 4 && res->new_sz != 8)
                                return "the target field's size is not a load size";
                }
                return NULL;
        case BPF_LD:
                if (idx + 1 >= prog->end)
                        return "truncated 64-bit immediate load";
                memcpy(&insn[1], sec->data + (idx + 1) * sizeof(struct bpf_insn), sizeof(struct bpf_insn));
                if (insn[0].code != (BPF_LD | BPF_IMM | BPF_DW) || insn[0].src_reg || insn[0].off ||
                    insn[1].code || insn[1].dst_reg || insn[1].src_reg || insn[1].off)
                        return "unexpected form of 64-bit immediate load";
                imm = (uint32_t) insn[0].imm | (uint64_t) (uint32_t) insn[1].imm << 32;
                if (res->validate && imm != res->orig)
                        return "the instruction does not hold the value the object's BTF gives";
                return NULL;
        default:
                return "instruction of a class CO-RE cannot patch";
        }
}

/* ---- the object ---- */

/* A typedef, modifier or array chain longer than libbpf ever walks is a loop (or an attack). */
static int check_local_chains(Planner *p) {
        uint32_t n = btf__type_cnt(p->local);

        for (uint32_t id = 1; id < n; id++) {
                const struct btf_type *t = btf__type_by_id(p->local, id);

                for (unsigned depth = 0; t && (btf_is_mod(t) || btf_is_typedef(t) || btf_is_array(t));
                     depth++) {
                        if (depth >= CHAIN_MAX)
                                return bad(p,
                                           "BTF type [%u] is in a loop (or a chain longer than %d) of "
                                           "typedefs, modifiers or arrays",
                                           id, CHAIN_MAX);
                        t = btf__type_by_id(p->local, btf_is_array(t) ? btf_array(t)->type : t->type);
                }
        }
        return 0;
}

static int program_cmp(const void *a, const void *b) {
        const Program *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

static int read_symbols(Planner *p, Elf_Scn *scn, const GElf_Shdr *sh) {
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t n;

        if (!d || sh->sh_entsize != sizeof(Elf64_Sym))
                return bad(p, "unreadable symbol table");
        n = d->d_size / sizeof(Elf64_Sym);
        for (size_t i = 0; i < n; i++) {
                GElf_Sym sym;
                Section *s;
                Program *progs;
                const char *name;

                if (!gelf_getsym(d, (int) i, &sym))
                        return bad(p, "unreadable symbol %zu", i);
                if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx >= p->n_secs ||
                    !p->secs[sym.st_shndx].data)
                        continue;
                s = &p->secs[sym.st_shndx];
                name = elf_strptr(p->elf, sh->sh_link, sym.st_name);
                if (!name)
                        return bad(p, "symbol %zu has no name", i);
                if (sym.st_value % sizeof(struct bpf_insn) || sym.st_size % sizeof(struct bpf_insn) ||
                    sym.st_value / sizeof(struct bpf_insn) > s->n_insns ||
                    sym.st_size / sizeof(struct bpf_insn) >
                            s->n_insns - sym.st_value / sizeof(struct bpf_insn))
                        return bad(p, "function %s lies outside its section %s", name, s->name);
                progs = reallocarray(s->progs, s->n_progs + 1, sizeof(Program));
                if (!progs)
                        return -ENOMEM;
                s->progs = progs;
                s->progs[s->n_progs++] = (Program) {
                        .name = name,
                        .start = sym.st_value / sizeof(struct bpf_insn),
                        .end = (sym.st_value + sym.st_size) / sizeof(struct bpf_insn),
                };
        }
        for (size_t i = 0; i < p->n_secs; i++)
                if (p->secs[i].n_progs > 1)
                        qsort(p->secs[i].progs, p->secs[i].n_progs, sizeof(Program), program_cmp);
        return 0;
}

/* Finds .BTF and .BTF.ext, the executable sections and their functions. */
static int read_object(Planner *p, const void *data, size_t size, Elf_Data **ret_btf, Elf_Data **ret_ext) {
        Elf_Scn *scn = NULL;
        size_t shstrndx, shnum;
        int r;

        /* libelf would convert another byte order in place, in the caller's buffer; BTF is native anyway. */
        if (size < EI_NIDENT || memcmp(data, ELFMAG, SELFMAG) != 0 ||
            ((const uint8_t *) data)[EI_DATA] !=
                    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
                return bad(p, "not an ELF file of this machine's byte order");
        elf_version(EV_CURRENT);
        p->elf = elf_memory((char *) data, size);
        if (!p->elf)
                return bad(p, "not a readable ELF file: %s", elf_errmsg(-1));
        if (elf_getshdrnum(p->elf, &shnum) < 0 || elf_getshdrstrndx(p->elf, &shstrndx) < 0)
                return bad(p, "unreadable ELF section table: %s", elf_errmsg(-1));
        p->secs = calloc(MAX(shnum, 1u), sizeof(Section));
        if (!p->secs)
                return -ENOMEM;
        p->n_secs = shnum;
        while ((scn = elf_nextscn(p->elf, scn))) {
                size_t idx = elf_ndxscn(scn);
                GElf_Shdr sh;
                Elf_Data *d;
                const char *name;

                if (!gelf_getshdr(scn, &sh) || idx >= shnum)
                        return bad(p, "unreadable ELF section header %zu", idx);
                name = elf_strptr(p->elf, shstrndx, sh.sh_name);
                if (!name)
                        return bad(p, "ELF section %zu has no name", idx);
                p->secs[idx].name = name;
                if (sh.sh_type == SHT_NOBITS || sh.sh_size == 0)
                        continue;
                if (sh.sh_offset > size || sh.sh_size > size - sh.sh_offset)
                        return bad(p, "ELF section %s lies outside the file", name);
                if (sh.sh_type == SHT_SYMTAB)
                        continue; /* read once all sections are known */
                if (strcmp(name, ".BTF") != 0 && strcmp(name, ".BTF.ext") != 0 &&
                    !(sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR)))
                        continue;
                d = elf_getdata(scn, NULL);
                if (!d || !d->d_buf || d->d_size != sh.sh_size)
                        return bad(p, "unreadable ELF section %s", name);
                if (strcmp(name, ".BTF") == 0)
                        *ret_btf = d;
                else if (strcmp(name, ".BTF.ext") == 0)
                        *ret_ext = d;
                else {
                        p->secs[idx].data = d->d_buf;
                        p->secs[idx].n_insns = d->d_size / sizeof(struct bpf_insn);
                }
        }
        while ((scn = elf_nextscn(p->elf, scn))) {
                GElf_Shdr sh;

                if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB && sh.sh_size > 0) {
                        r = read_symbols(p, scn, &sh);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static const Program *find_program(const Section *s, size_t idx) {
        size_t lo = 0, hi = s->n_progs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->progs[mid].end <= idx)
                        lo = mid + 1;
                else if (s->progs[mid].start > idx)
                        hi = mid;
                else
                        return &s->progs[mid];
        }
        return NULL;
}

static const Section *find_section(const Planner *p, const char *name) {
        for (size_t i = 0; i < p->n_secs; i++)
                if (p->secs[i].name && strcmp(p->secs[i].name, name) == 0)
                        return &p->secs[i];
        return NULL;
}

/* ---- .BTF.ext ---- */

static uint32_t read_u32(const uint8_t *d) {
        uint32_t v;

        memcpy(&v, d, sizeof(v));
        return v;
}

/* One of .BTF.ext's info sections: a record size, then blocks of {sec_name_off, num_info, records}. */
typedef struct ExtInfo {
        const char *what;
        const uint8_t *pos;
        size_t left;
        uint32_t rec_size;
} ExtInfo;

static int ext_info_init(Planner *p, ExtInfo *e, const char *what, const uint8_t *data, size_t size,
                         uint32_t hdr_len, uint32_t off, uint32_t len, uint32_t min_rec_size) {
        *e = (ExtInfo) { .what = what };
        if (len == 0)
                return 0;
        if (off % 4 != 0 || (uint64_t) hdr_len + off + len > size)
                return bad(p, ".BTF.ext %s (offset %u, %u bytes) lies outside the section (%zu bytes)", what,
                           off, len, size);
        if (len < sizeof(uint32_t))
                return bad(p, ".BTF.ext %s is too short for its record size", what);
        e->pos = data + hdr_len + off + sizeof(uint32_t);
        e->left = len - sizeof(uint32_t);
        e->rec_size = read_u32(data + hdr_len + off);
        if (e->rec_size < min_rec_size || e->rec_size % 4 != 0)
                return bad(p, ".BTF.ext %s record size %u, expected at least %u (and a multiple of 4)", what,
                           e->rec_size, min_rec_size);
        if (e->left == 0)
                return bad(p, ".BTF.ext %s has a record size but no records", what);
        return 0;
}

/* The next block: 1, 0 at the end, or -EBADMSG. */
static int ext_info_next(Planner *p, ExtInfo *e, uint32_t *ret_sec_name_off, uint32_t *ret_n,
                         const uint8_t **ret_records) {
        uint64_t total;
        uint32_t n;

        if (e->left == 0)
                return 0;
        if (e->left < 2 * sizeof(uint32_t))
                return bad(p, ".BTF.ext %s: truncated section header", e->what);
        n = read_u32(e->pos + sizeof(uint32_t));
        total = 2 * sizeof(uint32_t) + (uint64_t) n * e->rec_size;
        if (n == 0)
                return bad(p, ".BTF.ext %s: a section with no records", e->what);
        if (total > e->left)
                return bad(p, ".BTF.ext %s: %u records of %u bytes overrun the section", e->what, n,
                           e->rec_size);
        *ret_sec_name_off = read_u32(e->pos);
        *ret_n = n;
        *ret_records = e->pos + 2 * sizeof(uint32_t);
        e->pos += total;
        e->left -= total;
        return 1;
}

/* ---- planning ---- */

/* libbpf's candidate list for a local root type: same essential name, compatible kind, primary targets only
 * if there are any. */
static int candidates(Planner *p, uint32_t local_id, CandList **ret) {
        CandList *cl = &p->cands[local_id];
        const struct btf_type *lt = btf__type_by_id(p->local, local_id);
        const char *name = name_of(p->local, lt->name_off);
        const CoreCandidate *found;
        size_t n_found = 0, n = 0;
        bool primary = false;
        int r;

        *ret = cl;
        if (cl->looked_up)
                return 0;
        r = p->lookup(p->userdata, name, core_essential_name_len(name), &found, &n_found);
        if (r < 0)
                return r;
        cl->c = calloc(MAX(n_found, 1u), sizeof(CoreCandidate));
        if (!cl->c)
                return -ENOMEM;
        for (size_t i = 0; i < n_found; i++) {
                const struct btf_type *t = btf__type_by_id(found[i].target->btf, found[i].type_id);

                if (!t || !kinds_compat(t, lt) || t->name_off == 0 ||
                    !essential_names_equal(name, name_of(found[i].target->btf, t->name_off)))
                        continue;
                cl->c[n++] = found[i];
                primary = primary || found[i].target->primary;
        }
        for (size_t i = 0; i < n; i++)
                if (!primary || cl->c[i].target->primary)
                        cl->c[cl->n++] = cl->c[i];
        cl->looked_up = true;
        return 0;
}

/* libbpf's bpf_core_parse_spec() on the object's own BTF, where anything it would reject is malformed. */
static int parse_local_spec(Planner *p, const struct bpf_core_relo *rec, Spec *spec) {
        const char *s = btf__name_by_offset(p->local, rec->access_str_off);
        const struct btf_type *t;
        uint32_t id;
        uint64_t bit_off;
        int64_t sz;

        if (!s)
                return bad(p, "CO-RE access string offset %u lies outside the BTF strings",
                           rec->access_str_off);
        *spec = (Spec) { .btf = p->local, .root_id = rec->type_id, .kind = rec->kind };
        if (kind_is_type(rec->kind)) {
                if (strcmp(s, "0") != 0)
                        return bad(p, "CO-RE access string \"%s\" for a type relocation, expected \"0\"", s);
                return 0;
        }

        for (const char *c = s;;) {
                uint64_t v = 0;

                if (*c < '0' || *c > '9')
                        return bad(p, "CO-RE access string \"%s\" is not a list of indices", s);
                for (; *c >= '0' && *c <= '9'; c++) {
                        v = v * 10 + (uint64_t) (*c - '0');
                        if (v > INT32_MAX)
                                return bad(p, "CO-RE access string \"%s\" has an index out of range", s);
                }
                if (spec->raw_len == SPEC_MAX)
                        return bad(p, "CO-RE access string \"%s\" is longer than %d steps", s, SPEC_MAX);
                spec->raw[spec->raw_len++] = (uint32_t) v;
                if (*c == 0)
                        break;
                if (*c++ != ':')
                        return bad(p, "CO-RE access string \"%s\" is not a list of indices", s);
        }

        t = skip_mods(p->local, rec->type_id, &id);
        if (!t)
                return bad(p, "BTF type [%u] loops", rec->type_id);
        spec->acc[spec->len++] = (Accessor) { id, spec->raw[0], NULL };

        if (kind_is_enumval(rec->kind)) {
                if (!btf_is_any_enum(t) || spec->raw_len > 1 || spec->raw[0] >= btf_vlen(t))
                        return bad(p, "CO-RE access string \"%s\" names no enumerator of [%u]", s,
                                   rec->type_id);
                spec->acc[0].name = name_of(p->local, btf_is_enum(t) ? btf_enum(t)[spec->raw[0]].name_off
                                                                     : btf_enum64(t)[spec->raw[0]].name_off);
                return 0;
        }

        sz = btf__resolve_size(p->local, id);
        if (sz < 0)
                return bad(p, "CO-RE relocation against BTF type [%u] of unknown size", rec->type_id);
        bit_off = (uint64_t) spec->raw[0] * (uint64_t) sz * 8;
        for (unsigned i = 1; i < spec->raw_len; i++) {
                uint32_t idx = spec->raw[i];

                t = skip_mods(p->local, id, &id);
                if (!t)
                        return bad(p, "BTF type [%u] loops", id);
                if (btf_is_composite(t)) {
                        const struct btf_member *m;

                        if (idx >= btf_vlen(t))
                                return bad(p, "CO-RE access string \"%s\": [%u] has no member %u", s, id,
                                           idx);
                        bit_off += btf_member_bit_offset(t, idx);
                        m = btf_members(t) + idx;
                        if (m->name_off) {
                                const char *name = btf__name_by_offset(p->local, m->name_off);

                                if (!name || !*name)
                                        return bad(p, "BTF type [%u] member %u has an invalid name", id,
                                                   idx);
                                spec->acc[spec->len++] = (Accessor) { id, idx, name };
                        }
                        id = m->type;
                } else if (btf_is_array(t)) {
                        const struct btf_array *a = btf_array(t);
                        bool flex = is_flex_arr(p->local, &spec->acc[spec->len - 1], a);

                        if (!skip_mods(p->local, a->type, &id))
                                return bad(p, "BTF type [%u] loops", a->type);
                        if (!flex && idx >= a->nelems)
                                return bad(p, "CO-RE access string \"%s\": index %u beyond the array's %u",
                                           s, idx, a->nelems);
                        spec->acc[spec->len++] = (Accessor) { id, idx, NULL };
                        sz = btf__resolve_size(p->local, id);
                        if (sz < 0)
                                return bad(p, "CO-RE relocation through BTF type [%u] of unknown size", id);
                        bit_off += (uint64_t) idx * (uint64_t) sz * 8;
                } else
                        return bad(p, "CO-RE access string \"%s\" goes through [%u], not a struct or array",
                                   s, id);
                if (bit_off > UINT32_MAX)
                        return bad(p, "CO-RE access string \"%s\" reaches beyond 4 GiB bits", s);
        }
        if (bit_off > UINT32_MAX)
                return bad(p, "CO-RE access string \"%s\" reaches beyond 4 GiB bits", s);
        spec->bit_offset = (uint32_t) bit_off;
        return 0;
}

/* "real_parent.tgid", "[2].pid", "comm[3]": accessors up to and including upto. */
static char *format_access(const Spec *s, unsigned upto) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        if (kind_is_enumval(s->kind))
                fputs(s->acc[0].name, f);
        else if (kind_is_field(s->kind))
                for (unsigned i = 0; i < s->len && i <= upto; i++) {
                        if (s->acc[i].name)
                                fprintf(f, "%s%s", ftell(f) > 0 ? "." : "", s->acc[i].name);
                        else if (i > 0 || s->acc[i].idx > 0)
                                fprintf(f, "[%u]", s->acc[i].idx);
                }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Copies into the minimal BTF what libbpf looks at when it matches cand with local. */
static int mark_candidate(Planner *p, const Spec *local, const Spec *cand) {
        const struct btf *tb = cand->btf;
        uint32_t id = cand->root_id;
        int r;

        if (local->kind == BPF_CORE_TYPE_MATCHES)
                return types_match(local->btf, local->root_id, tb, id, false, COMPAT_DEPTH, &p->min);
        r = min_add(&p->min, tb, id);
        if (r < 0 || !kind_is_field(local->kind))
                return r;
        /* The members along the access path, anonymous ones included. */
        for (unsigned i = 1; i < cand->raw_len; i++) {
                const struct btf_type *t = skip_mods(tb, id, &id);

                if (!t)
                        return -EINVAL;
                if (btf_is_composite(t)) {
                        r = min_keep_member(&p->min, tb, id, cand->raw[i]);
                        if (r < 0)
                                return r;
                        id = btf_members(t)[cand->raw[i]].type;
                } else if (btf_is_array(t))
                        id = btf_array(t)->type;
                else
                        return -EINVAL;
        }
        return 0;
}

static CoreRelocation *new_relocation(Planner *p) {
        CorePlan *plan = p->plan;

        if (plan->n_relocations == p->cap_relocations) {
                size_t cap = p->cap_relocations ? p->cap_relocations * 2 : 16;
                CoreRelocation *a = reallocarray(plan->relocations, cap, sizeof(CoreRelocation));

                if (!a)
                        return NULL;
                plan->relocations = a;
                p->cap_relocations = cap;
        }
        plan->relocations[plan->n_relocations] = (CoreRelocation) {};
        return &plan->relocations[plan->n_relocations++];
}

/* bpf_core_calc_relo_insn() and bpf_core_patch_insn()'s verdict for one relocation. */
static int resolve(Planner *p, const Section *sec, const Program *prog, size_t idx, const Spec *local,
                   CoreRelocation *out) {
        Spec cand;
        Result res, cand_res;
        uint32_t targ_bit_offset = 0;
        CoreCandidate chosen = {};
        CandList *cl;
        Miss best = {}, miss;
        const char *why = NULL;
        const char *local_name = name_of(p->local, btf__type_by_id(p->local, local->root_id)->name_off);
        size_t j = 0, n_cands = 0;
        int r;

        if (local->kind == BPF_CORE_TYPE_ID_LOCAL) {
                /* No candidates: the object's own type id. */
                res = (Result) { .orig = local->root_id, .new = local->root_id };
                out->local = local->root_id;
                goto patch;
        }
        /* The local value, and the result if no candidate matches. */
        r = calc_relo(local, NULL, &res, &why);
        if (r < 0) {
                out->error = strdup(why);
                goto fail;
        }
        out->local = (int64_t) res.orig;
        if (!*local_name) {
                out->error = strdup("relocations against anonymous types are not supported");
                goto fail;
        }

        r = candidates(p, local->root_id, &cl);
        if (r < 0)
                return r;
        n_cands = cl->n;
        for (size_t i = 0; i < n_cands; i++) {
                const CoreCandidate *c = &cl->c[i];

                r = spec_match(local, c->target->btf, c->type_id, &cand, &miss);
                if (r < 0) {
                        out->error = strf("cannot match candidate [%u] in %s: broken type graph", c->type_id,
                                          c->target->name);
                        goto fail;
                }
                if (r == 0) {
                        if (!best.why || miss.at > best.at)
                                best = miss;
                        continue;
                }
                r = mark_candidate(p, local, &cand);
                if (r < 0)
                        return r;
                r = calc_relo(local, &cand, &cand_res, &why);
                if (r < 0) {
                        out->error = strf("%s (candidate [%u] in %s)", why, c->type_id, c->target->name);
                        goto fail;
                }
                if (j == 0) {
                        res = cand_res;
                        targ_bit_offset = cand.bit_offset;
                        chosen = *c;
                } else if (cand.bit_offset != targ_bit_offset || cand_res.poison != res.poison ||
                           cand_res.new != res.new) {
                        /* All matching candidates must agree, else libbpf refuses to guess. */
                        out->error =
                                strf("ambiguous: candidates disagree ([%u] in %s: %s %" PRIu64
                                     " at bit %u, [%u] in %s: %s %" PRIu64 " at bit %u)",
                                     chosen.type_id, chosen.target->name, res.poison ? "poison" : "value",
                                     res.new, targ_bit_offset, c->type_id, c->target->name,
                                     cand_res.poison ? "poison" : "value", cand_res.new, cand.bit_offset);
                        goto fail;
                }
                cl->c[j++] = *c;
        }
        /* Later relocations of this type only consider the candidates that matched. */
        if (j > 0)
                cl->n = j;

patch:
        why = check_insn(sec, prog, idx, &res);
        if (why) {
                out->error = strdup(why);
                goto fail;
        }
        if (res.poison) {
                out->poisoned = true;
                if (res.fail_memsz)
                        out->error =
                                strf("the field's size changes (%u to %u bytes) and it is neither a pointer "
                                     "nor unsigned: the load cannot be resized",
                                     res.orig_sz, res.new_sz);
                else if (n_cands == 0)
                        out->error = strf("no candidate type %s", local_name);
                else {
                        _cleanup_free_ char *path = format_access(local, best.at);

                        out->error = strf("%s: %s", best.why ?: "no match", path ?: "?");
                }
                return out->error ? 0 : -ENOMEM;
        }
        out->ok = true;
        out->target = (int64_t) res.new;
        if (chosen.target) {
                out->btf = strdup(chosen.target->name);
                if (!out->btf)
                        return -ENOMEM;
        }
        if (local->kind == BPF_CORE_TYPE_ID_TARGET && chosen.target)
                p->plan->needs_full_btf = true;
        return 0;

fail:
        p->plan->failed = true;
        return out->error ? 0 : -ENOMEM;
}

static int plan_record(Planner *p, const Section *sec, const struct bpf_core_relo *rec) {
        const struct btf_type *lt;
        const Program *prog;
        CoreRelocation *out;
        Spec local;
        size_t idx;
        int r;

        if (rec->insn_off % sizeof(struct bpf_insn))
                return bad(p, "CO-RE relocation at byte %u of %s, not an instruction boundary",
                           rec->insn_off, sec->name);
        idx = rec->insn_off / sizeof(struct bpf_insn);
        if (idx >= sec->n_insns)
                return bad(p, "CO-RE relocation at instruction %zu of %s, which has %zu", idx, sec->name,
                           sec->n_insns);
        prog = find_program(sec, idx);
        if (!prog)
                return 0; /* code of an eliminated weak function: libbpf skips it too */
        if (rec->kind >= ELEMENTSOF(kind_names))
                return bad(p, "unknown CO-RE relocation kind %u", rec->kind);
        if (rec->type_id == 0 || rec->type_id >= btf__type_cnt(p->local))
                return bad(p, "CO-RE relocation against type id %u, the object's BTF has 1..%u",
                           rec->type_id, btf__type_cnt(p->local) - 1);
        lt = btf__type_by_id(p->local, rec->type_id);
        if (!btf__name_by_offset(p->local, lt->name_off))
                return bad(p, "BTF type [%u] has an invalid name", rec->type_id);
        r = parse_local_spec(p, rec, &local);
        if (r < 0)
                return r;

        out = new_relocation(p);
        if (!out)
                return -ENOMEM;
        out->kind = kind_names[rec->kind];
        out->insn = (uint32_t) (idx - prog->start); /* as libbpf's log and `bpftool prog dump` count */
        out->program = strdup(prog->name);
        out->section = strdup(sec->name);
        out->type = strdup(name_of(p->local, lt->name_off));
        out->access = format_access(&local, UINT_MAX);
        if (!out->program || !out->section || !out->type || !out->access)
                return -ENOMEM;
        return resolve(p, sec, prog, idx, &local, out);
}

static int plan_relocations(Planner *p, const uint8_t *ext, size_t size) {
        uint32_t hdr_len, core_off = 0, core_len = 0, n_total = 0;
        uint16_t magic;
        static const struct {
                const char *what;
                size_t off_at;
                uint32_t min_rec;
        } infos[] = {
                { "func_info", 8, 8 },
                { "line_info", 16, 16 },
                { "core_relo", 24, sizeof(struct bpf_core_relo) },
        };
        ExtInfo e;
        uint32_t sec_name_off, n;
        const uint8_t *records;
        int r;

        if (size < 8)
                return bad(p, ".BTF.ext is %zu bytes, shorter than its header", size);
        memcpy(&magic, ext, sizeof(magic));
        if (magic != BTF_EXT_MAGIC)
                return bad(p, ".BTF.ext has a bad magic number (or the other byte order)");
        if (ext[2] != 1 || ext[3] != 0)
                return bad(p, ".BTF.ext version %u flags %u, expected version 1 without flags", ext[2],
                           ext[3]);
        hdr_len = read_u32(ext + 4);
        if (hdr_len < 24 || hdr_len > size)
                return bad(p, ".BTF.ext header of %u bytes in a section of %zu", hdr_len, size);

        /* libbpf drops all of .BTF.ext (CO-RE included) if any part is malformed: check every part. */
        for (size_t i = 0; i < ELEMENTSOF(infos); i++) {
                uint32_t off, len;

                if (hdr_len < infos[i].off_at + 8)
                        break;
                off = read_u32(ext + infos[i].off_at);
                len = read_u32(ext + infos[i].off_at + 4);
                r = ext_info_init(p, &e, infos[i].what, ext, size, hdr_len, off, len, infos[i].min_rec);
                if (r < 0)
                        return r;
                while ((r = ext_info_next(p, &e, &sec_name_off, &n, &records)) > 0)
                        if (i == 2) {
                                if (n > CORE_RELOCATIONS_MAX - n_total)
                                        return bad(p, "more than %u CO-RE relocations",
                                                   CORE_RELOCATIONS_MAX);
                                n_total += n;
                        }
                if (r < 0)
                        return r;
                if (i == 2) {
                        core_off = off;
                        core_len = len;
                }
        }
        if (core_len == 0)
                return 0;

        r = ext_info_init(p, &e, "core_relo", ext, size, hdr_len, core_off, core_len,
                          sizeof(struct bpf_core_relo));
        while (r >= 0 && (r = ext_info_next(p, &e, &sec_name_off, &n, &records)) > 0) {
                const char *sec_name = btf__name_by_offset(p->local, sec_name_off);
                const Section *sec;

                if (!sec_name || !*sec_name)
                        return bad(p, "CO-RE relocations for a section with an invalid name (offset %u)",
                                   sec_name_off);
                sec = find_section(p, sec_name);
                if (!sec)
                        return bad(p, "CO-RE relocations for section %s, which the object does not have",
                                   sec_name);
                for (uint32_t i = 0; i < n; i++) {
                        struct bpf_core_relo rec;

                        memcpy(&rec, records + (size_t) i * e.rec_size, sizeof(rec));
                        r = plan_record(p, sec, &rec);
                        if (r < 0)
                                return r;
                }
        }
        return r;
}

CorePlan *core_plan_free(CorePlan *plan) {
        if (!plan)
                return NULL;
        for (size_t i = 0; i < plan->n_relocations; i++) {
                CoreRelocation *r = &plan->relocations[i];

                free(r->program);
                free(r->section);
                free(r->type);
                free(r->access);
                free(r->btf);
                free(r->error);
        }
        free(plan->relocations);
        btf__free(plan->min_btf);
        free(plan);
        return NULL;
}

static void planner_done(Planner *p) {
        for (size_t i = 0; p->cands && i < btf__type_cnt(p->local); i++)
                free(p->cands[i].c);
        free(p->cands);
        min_done(&p->min);
        for (size_t i = 0; i < p->n_secs; i++)
                free(p->secs[i].progs);
        free(p->secs);
        btf__free(p->local);
        if (p->elf)
                elf_end(p->elf);
        core_plan_free(p->plan);
        free(p->error);
}

int core_plan(const void *elf, size_t size, CoreLookup lookup, void *userdata, CorePlan **ret,
              char **ret_error) {
        Planner p = { .lookup = lookup, .userdata = userdata };
        Elf_Data *btf = NULL, *ext = NULL;
        int r;

        p.plan = calloc(1, sizeof(CorePlan));
        if (!p.plan)
                return -ENOMEM;
        r = read_object(&p, elf, size, &btf, &ext);
        if (r < 0)
                goto finish;
        if (!ext)
                goto done; /* no .BTF.ext, no CO-RE */
        if (!btf) {
                r = bad(&p, "the object has .BTF.ext but no .BTF");
                goto finish;
        }
        p.local = btf__new(btf->d_buf, (uint32_t) MIN(btf->d_size, (size_t) UINT32_MAX));
        if (!p.local) {
                r = bad(&p, "the object's .BTF is invalid: %s", strerror(errno));
                goto finish;
        }
        r = check_local_chains(&p);
        if (r < 0)
                goto finish;
        p.cands = calloc(btf__type_cnt(p.local), sizeof(CandList));
        if (!p.cands) {
                r = -ENOMEM;
                goto finish;
        }
        r = plan_relocations(&p, ext->d_buf, ext->d_size);
        if (r < 0)
                goto finish;
        if (p.plan->n_relocations > 0) {
                r = min_emit(&p.min, &p.plan->min_btf);
                if (r < 0)
                        goto finish;
                /* libbpf could read min_btf differently: better the full BTF than a wrong load. */
                p.plan->needs_full_btf = p.plan->needs_full_btf || p.min.inexact;
        }
done:
        *ret = TAKE_PTR(p.plan);
        r = 0;
finish:
        if (r < 0 && ret_error)
                *ret_error = TAKE_PTR(p.error);
        planner_done(&p);
        return r;
}
