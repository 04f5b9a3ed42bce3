/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of daemon/planner.c: small BPF objects (tests/bpf/planner/) relocated against hand-built target
 * BTF, each relocation checked against the value libbpf's rules give, then against libbpf itself (its debug
 * log, with the full target BTF and with the planner's minimal BTF as btf_custom_path), and malformed
 * objects made by patching compiled ones.
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <gelf.h>
#include <linux/btf.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "btf-cache.h"
#include "btf-targets.h"
#include "loader.h"
#include "macro.h"
#include "planner.h"
#include "libbpf-log.h"
#include "tap.h"

/* ---- targets and a linear-scan lookup ---- */

typedef struct Targets {
        struct btf *btf[2]; /* [1]: a module's split BTF on [0], or NULL */
        CoreTarget t[2];
        size_t n;
        CoreCandidate *found;
        size_t n_found;
} Targets;

static int lookup(void *userdata, const char *name, size_t len, const CoreCandidate **ret, size_t *ret_n) {
        Targets *ts = userdata;

        ts->n_found = 0;
        for (size_t k = 0; k < ts->n; k++) {
                const struct btf *btf = ts->t[k].btf, *base = btf__base_btf(btf);

                for (uint32_t id = base ? btf__type_cnt(base) : 1; id < btf__type_cnt(btf); id++) {
                        const char *n = btf__name_by_offset(btf, btf__type_by_id(btf, id)->name_off);
                        CoreCandidate *f;

                        if (!n || core_essential_name_len(n) != len || strncmp(n, name, len) != 0)
                                continue;
                        f = reallocarray(ts->found, ts->n_found + 1, sizeof(CoreCandidate));
                        if (!f)
                                return -ENOMEM;
                        ts->found = f;
                        ts->found[ts->n_found++] = (CoreCandidate) { &ts->t[k], id };
                }
        }
        *ret = ts->found;
        *ret_n = ts->n_found;
        return 0;
}

static struct btf *target_add(Targets *ts, const char *name, struct btf *btf, bool primary) {
        ts->btf[ts->n] = btf;
        ts->t[ts->n] = (CoreTarget) { .name = name, .btf = btf, .primary = primary };
        ts->n++;
        return btf;
}

static void targets_done(Targets *ts) {
        for (size_t k = ts->n; k > 0; k--)
                btf__free(ts->btf[k - 1]);
        free(ts->found);
        *ts = (Targets) {};
}

/* ---- target builders ---- */

typedef struct Base {
        int i32, u16, u32, i64, u64, u64l, chr;
} Base;

static Base add_base(struct btf *b) {
        Base t;

        t.i32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
        t.u16 = btf__add_int(b, "unsigned short", 2, 0);
        t.u32 = btf__add_int(b, "unsigned int", 4, 0);
        t.i64 = btf__add_int(b, "long", 8, BTF_INT_SIGNED);
        t.u64 = btf__add_int(b, "unsigned long long", 8, 0);
        t.u64l = btf__add_int(b, "unsigned long", 8, 0);
        t.chr = btf__add_int(b, "char", 1, BTF_INT_SIGNED);
        return t;
}

static int pick(const Base *bt, char c) {
        switch (c) {
        case 'l': return bt->i64;
        case 'u': return bt->u32;
        case 'U': return bt->u64l;
        default: return bt->i32;
        }
}

/* struct task of fields.bpf.c in a target's layout: bit offsets, -1 for a member the target lacks. */
typedef struct TaskLayout {
        const char *name;
        uint32_t size;
        int pid, tgid, parent, in, comm, anon, flag1, flag2, big, count, extra, tail;
        char tgid_type, flag2_type, count_type; /* 'i' int, 'l' long, 'u' unsigned int, 'U' unsigned long */
        bool parent_long, in_without_y, a2_first, extra_last;
        uint32_t comm_len, tail_len;
} TaskLayout;

/* The object's own layout. */
static const TaskLayout task_local = {
        "task", 64, 0, 32, 64, 128, 192, 320, 384, 387, 392, 448, -1, 480,
        'i', 'i', 'u', false, false, false, false, 16, 0,
};

static void add_task(struct btf *b, const Base *bt, const TaskLayout *l) {
        int inner, comm, anon_s, anon_u, tail, ptr;

        inner = btf__add_struct(b, "inner", 8);
        btf__add_field(b, "x", bt->i32, 0, 0);
        if (!l->in_without_y)
                btf__add_field(b, "y", bt->u16, 32, 0);
        comm = btf__add_array(b, bt->i32, bt->chr, l->comm_len);
        anon_s = btf__add_struct(b, NULL, 8);
        btf__add_field(b, "a1", bt->i32, l->a2_first ? 32 : 0, 0);
        btf__add_field(b, "a2", bt->i32, l->a2_first ? 0 : 32, 0);
        anon_u = btf__add_union(b, NULL, 8);
        btf__add_field(b, "u1", bt->i64, 0, 0);
        btf__add_field(b, NULL, anon_s, 0, 0);
        tail = btf__add_array(b, bt->i32, bt->i32, l->tail_len);
        ptr = btf__add_ptr(b, (int) btf__type_cnt(b) + 1); /* to the struct added next */
        btf__add_struct(b, l->name, l->size);
#define FIELD(member, type, bits)                                                  \
        if (l->member >= 0)                                                        \
                btf__add_field(b, #member, (type), (uint32_t) l->member, (bits))
        FIELD(pid, bt->i32, 0);
        FIELD(tgid, pick(bt, l->tgid_type), 0);
        FIELD(parent, l->parent_long ? bt->i64 : ptr, 0);
        FIELD(in, inner, 0);
        FIELD(comm, comm, 0);
        if (l->anon >= 0)
                btf__add_field(b, NULL, anon_u, (uint32_t) l->anon, 0);
        FIELD(flag1, bt->u32, 3);
        FIELD(flag2, pick(bt, l->flag2_type), 5);
        FIELD(big, bt->u64, 40);
        FIELD(count, pick(bt, l->count_type), 0);
        if (!l->extra_last)
                FIELD(extra, bt->i32, 0);
        FIELD(tail, tail, 0);
        if (l->extra_last)
                FIELD(extra, bt->i32, 0);
#undef FIELD
}

static struct btf *vmlinux(Targets *ts, Base *bt) {
        struct btf *b = target_add(ts, "vmlinux", btf__new_empty(), true);

        *bt = add_base(b);
        return b;
}

static void build_fields_same(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        add_task(b, &bt, &task_local);
}

/* Everything moved; tgid became long (signed: the load cannot be resized), count unsigned long (it can),
 * flag2 unsigned, comm longer, a2 first in its anonymous struct. */
static void build_fields_moved(Targets *ts) {
        static const TaskLayout l = {
                "task", 200, 800, 832, 896, 960, 1024, 1280, 1413, 1416, 1476, 1536, -1, 1600,
                'l', 'u', 'U', false, false, true, false, 32, 0,
        };
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        add_task(b, &bt, &l);
}

/* No count, no in.y, a fixed tail[2], parent no longer a pointer. */
static void build_fields_missing(Targets *ts) {
        TaskLayout l = task_local;
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        l.size = 72;
        l.count = -1;
        l.in_without_y = true;
        l.tail_len = 2;
        l.parent_long = true;
        add_task(b, &bt, &l);
}

/* Two candidates that disagree on pid. */
static void build_fields_ambiguous(Targets *ts) {
        TaskLayout l = task_local;
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        add_task(b, &bt, &task_local);
        l.name = "task___2";
        l.size = 128;
        l.pid = 800;
        add_task(b, &bt, &l);
}

/* Two candidates that agree on everything the object reads. */
static void build_fields_agree(Targets *ts) {
        TaskLayout l = task_local;
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        add_task(b, &bt, &task_local);
        l.name = "task___2";
        l.size = 72;
        l.extra = 512;
        add_task(b, &bt, &l);
}

/* A second candidate without parent: the first relocation (parent) drops it, so pid, where it differs,
 * is not ambiguous. */
static void build_fields_pruned(Targets *ts) {
        TaskLayout l = task_local;
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        add_task(b, &bt, &task_local);
        l.name = "task___2";
        l.size = 128;
        l.parent = -1;
        l.pid = 800;
        add_task(b, &bt, &l);
}

/* A zero-length tail followed by another member: not a flexible array, tail[2] is out of bounds. */
static void build_fields_zero_length(Targets *ts) {
        TaskLayout l = task_local;
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        l.size = 72;
        l.extra = 512;
        l.extra_last = true;
        add_task(b, &bt, &l);
}

static void build_types_present(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);
        int rec, mode, ptr, pair, anon;

        rec = btf__add_struct(b, "rec", 136);
        btf__add_field(b, "a", bt.i32, 0, 0);
        btf__add_field(b, "b", bt.i64, 64, 0);
        btf__add_field(b, "c", bt.i32, 1024, 0);
        btf__add_typedef(b, "rec_t", rec);
        btf__add_union(b, "num", 8);
        btf__add_field(b, "i", bt.i32, 0, 0);
        btf__add_field(b, "l", bt.i64, 0, 0);
        mode = btf__add_enum(b, NULL, 4);
        btf__add_enum_value(b, "MM_X", 0);
        btf__add_enum_value(b, "MM_Y", 1);
        btf__add_enum_value(b, "MM_Z", 2);
        ptr = btf__add_ptr(b, rec);
        pair = btf__add_struct(b, "pair", 12);
        btf__add_field(b, "y", bt.i32, 0, 0);
        btf__add_field(b, "x", bt.i32, 32, 0);
        btf__add_field(b, "z", bt.i32, 64, 0);
        anon = btf__add_union(b, NULL, 4);
        btf__add_field(b, "u2", bt.i32, 0, 0);
        btf__add_field(b, "u", bt.i32, 0, 0);
        btf__add_struct(b, "matchme", 48);
        btf__add_field(b, "a", bt.i32, 0, 0);
        btf__add_field(b, "b", bt.u16, 32, 0);
        btf__add_field(b, "next", ptr, 64, 0);
        btf__add_field(b, "mode", mode, 128, 0);
        btf__add_field(b, "extra", bt.i32, 160, 0);
        btf__add_field(b, "pr", pair, 192, 0);
        btf__add_field(b, NULL, anon, 288, 0);
        btf__add_enum(b, "state", 4);
        btf__add_enum_value(b, "ST_IDLE", 0);
        btf__add_enum_value(b, "ST_RUN", 5);
        btf__add_enum_value(b, "ST_GONE", 9);
        btf__add_enum64(b, "big64", 8, false);
        btf__add_enum64_value(b, "BIG_LO", 1);
        btf__add_enum64_value(b, "BIG_HI", 0x200000000ull);
}

/* No rec (a forward declaration only), num a struct, matchme.b an int, no ST_GONE, no big64. */
static void build_types_absent(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);
        int fwd, mode, ptr;

        fwd = btf__add_fwd(b, "rec", BTF_FWD_STRUCT);
        btf__add_struct(b, "num", 8);
        btf__add_field(b, "i", bt.i32, 0, 0);
        mode = btf__add_enum(b, NULL, 4);
        btf__add_enum_value(b, "MM_X", 0);
        btf__add_enum_value(b, "MM_Y", 1);
        ptr = btf__add_ptr(b, fwd);
        btf__add_struct(b, "matchme", 24);
        btf__add_field(b, "a", bt.i32, 0, 0);
        btf__add_field(b, "b", bt.i32, 32, 0);
        btf__add_field(b, "next", ptr, 64, 0);
        btf__add_field(b, "mode", mode, 128, 0);
        btf__add_enum(b, "state", 4);
        btf__add_enum_value(b, "ST_IDLE", 0);
        btf__add_enum_value(b, "ST_RUN", 1);
}

static void add_dup(struct btf *b, const Base *bt, const char *name, uint32_t b_off) {
        btf__add_struct(b, name, 16);
        btf__add_field(b, "a", bt->i32, 0, 0);
        btf__add_field(b, "b", bt->i32, b_off, 0);
}

static void build_flavors_new(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        btf__add_struct(b, "proc", 24);
        btf__add_field(b, "pid", bt.i32, 0, 0);
        btf__add_field(b, "modern", bt.i64, 128, 0);
        add_dup(b, &bt, "dup", 64);
        add_dup(b, &bt, "dup___2", 64);
}

static void build_flavors_old(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        btf__add_struct(b, "proc", 8);
        btf__add_field(b, "pid", bt.i32, 0, 0);
        btf__add_field(b, "legacy", bt.i32, 32, 0);
        add_dup(b, &bt, "dup", 32);
        add_dup(b, &bt, "dup___x", 96);
}

/* modstruct only in a module; shared in vmlinux and in the module (vmlinux wins). */
static void build_split(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt), *m;

        btf__add_struct(b, "shared", 8);
        btf__add_field(b, "pad", bt.i32, 0, 0);
        btf__add_field(b, "s", bt.i32, 32, 0);
        m = target_add(ts, "mod", btf__new_empty_split(b), false);
        btf__add_struct(m, "modstruct", 16);
        btf__add_field(m, "m1", bt.i32, 0, 0);
        btf__add_field(m, "gap", bt.i32, 32, 0);
        btf__add_field(m, "m2", bt.i32, 96, 0);
        btf__add_struct(m, "shared", 12);
        btf__add_field(m, "s", bt.i32, 64, 0);
}

static void build_bad(Targets *ts) {
        Base bt;
        struct btf *b = vmlinux(ts, &bt);

        btf__add_struct(b, "bad", 8);
        btf__add_field(b, "via_typedef", bt.i32, 0, 0);
        btf__add_field(b, "access_string_scratch_area_for_the_tests", bt.i32, 32, 0);
}

/* ---- scenarios ---- */

typedef enum State {
        OK = LIBBPF_PATCHED,
        POISONED = LIBBPF_POISONED,
        FAILED = LIBBPF_FAILED,
} State;

static const char *const state_names[] = { "ok", "poisoned", "failed" };

#define LOCAL_ID INT64_MIN        /* the object's id of the type */
#define TARGET_ID (INT64_MIN + 1) /* the target's id of the type */

typedef struct Expect {
        const char *kind, *type, *access;
        int64_t local, target;
        State state;
        const char *btf;   /* the target the value came from, NULL for none */
        const char *error; /* a part of the error, for POISONED and FAILED */
} Expect;

typedef struct Scenario {
        const char *name;
        const char *object;
        void (*build)(Targets *ts);
        size_t n_relocations;
        bool failed, needs_full_btf;
        Expect expect[24];
} Scenario;

#define V "vmlinux"
#define OFF "field_byte_offset"
#define SIZE "field_byte_size"
#define EXISTS "field_exists"
#define SIGNED "field_signed"
#define LSHIFT "field_lshift_u64"
#define RSHIFT "field_rshift_u64"
#define SAME_AS_LOCAL(kind, access, value) { kind, "task", access, value, value, OK, V }

static const Scenario scenarios[] = {
        { "fields, same layout", "fields", build_fields_same, 23, false, false, {
                SAME_AS_LOCAL(OFF, "parent", 8),
                SAME_AS_LOCAL(OFF, "flag1", 48),
                SAME_AS_LOCAL(OFF, "count", 56),
                SAME_AS_LOCAL(OFF, "pid", 0),
                SAME_AS_LOCAL(OFF, "tgid", 4),
                SAME_AS_LOCAL(SIZE, "flag1", 4),
                SAME_AS_LOCAL(LSHIFT, "flag1", 61),
                SAME_AS_LOCAL(SIGNED, "flag1", 0),
                SAME_AS_LOCAL(RSHIFT, "flag1", 61),
                SAME_AS_LOCAL(OFF, "big", 48),
                SAME_AS_LOCAL(SIZE, "big", 8),
                SAME_AS_LOCAL(LSHIFT, "big", 16),
                SAME_AS_LOCAL(RSHIFT, "big", 24),
                SAME_AS_LOCAL(SIGNED, "flag2", 1),
                SAME_AS_LOCAL(EXISTS, "in.y", 1),
                SAME_AS_LOCAL(OFF, "a2", 44),
                SAME_AS_LOCAL(OFF, "comm[3]", 27),
                SAME_AS_LOCAL(SIZE, "comm", 16),
                SAME_AS_LOCAL(OFF, "tail[2]", 68),
        } },
        { "fields, moved", "fields", build_fields_moved, 23, false, false, {
                { OFF, "task", "parent", 8, 112, OK, V },
                { OFF, "task", "pid", 0, 100, OK, V },
                { OFF, "task", "tgid", 4, 0, POISONED, NULL, "neither a pointer nor unsigned" },
                { OFF, "task", "count", 56, 192, OK, V },
                { OFF, "task", "flag1", 48, 176, OK, V },
                { SIZE, "task", "flag1", 4, 4, OK, V },
                { LSHIFT, "task", "flag1", 61, 56, OK, V },
                { RSHIFT, "task", "flag1", 61, 61, OK, V },
                { SIGNED, "task", "flag2", 1, 0, OK, V },
                { OFF, "task", "big", 48, 184, OK, V },
                { SIZE, "task", "big", 8, 8, OK, V },
                { LSHIFT, "task", "big", 16, 20, OK, V },
                { RSHIFT, "task", "big", 24, 24, OK, V },
                { OFF, "task", "a2", 44, 160, OK, V },
                { OFF, "task", "comm[3]", 27, 131, OK, V },
                { SIZE, "task", "comm", 16, 32, OK, V },
                { OFF, "task", "tail[2]", 68, 208, OK, V },
                { EXISTS, "task", "in.y", 1, 1, OK, V },
        } },
        { "fields, missing", "fields", build_fields_missing, 23, false, false, {
                { OFF, "task", "count", 56, 0, POISONED, NULL, "field missing: count" },
                { OFF, "task", "parent", 8, 0, POISONED, NULL, "field type differs: parent" },
                { OFF, "task", "tail[2]", 68, 0, POISONED, NULL, "index out of bounds: tail[2]" },
                { EXISTS, "task", "in.y", 1, 0, OK, NULL },
                { OFF, "task", "pid", 0, 0, OK, V },
                { OFF, "task", "a2", 44, 44, OK, V },
        } },
        { "fields, candidates disagree", "fields", build_fields_ambiguous, 23, true, false, {
                { OFF, "task", "parent", 8, 8, OK, V },
                { OFF, "task", "pid", 0, 0, FAILED, NULL, "ambiguous" },
        } },
        { "fields, candidates agree", "fields", build_fields_agree, 23, false, false, {
                SAME_AS_LOCAL(OFF, "pid", 0),
                SAME_AS_LOCAL(OFF, "count", 56),
                SAME_AS_LOCAL(OFF, "tail[2]", 68),
        } },
        { "fields, a candidate dropped earlier", "fields", build_fields_pruned, 23, false, false, {
                SAME_AS_LOCAL(OFF, "parent", 8),
                SAME_AS_LOCAL(OFF, "pid", 0),
        } },
        { "fields, zero-length array not last", "fields", build_fields_zero_length, 23, false, false, {
                { OFF, "task", "tail[2]", 68, 0, POISONED, NULL, "index out of bounds: tail[2]" },
                SAME_AS_LOCAL(EXISTS, "tail", 1),
                SAME_AS_LOCAL(OFF, "count", 56),
        } },
        { "types, present", "types", build_types_present, 11, false, true, {
                { "type_exists", "rec", "", 1, 1, OK, V },
                { "type_size", "rec", "", 16, 136, OK, V },
                { "type_exists", "absent", "", 1, 0, OK, NULL },
                { "type_size", "rec_t", "", 16, 136, OK, V },
                { "type_exists", "num", "", 1, 1, OK, V },
                { "type_id_local", "rec", "", LOCAL_ID, LOCAL_ID, OK, NULL },
                { "type_id_target", "rec", "", LOCAL_ID, TARGET_ID, OK, V },
                { "type_matches", "matchme", "", 1, 1, OK, V },
                { "enumval_exists", "state", "ST_GONE", 1, 1, OK, V },
                { "enumval_value", "state", "ST_RUN", 1, 5, OK, V },
                { "enumval_value", "big64", "BIG_HI", 0x100000000ll, 0x200000000ll, OK, V },
        } },
        { "types, absent", "types", build_types_absent, 11, false, false, {
                { "type_exists", "rec", "", 1, 0, OK, NULL },
                { "type_size", "rec", "", 16, 0, OK, NULL },
                { "type_size", "rec_t", "", 16, 0, OK, NULL },
                { "type_exists", "num", "", 1, 0, OK, NULL },
                { "type_id_target", "rec", "", LOCAL_ID, 0, OK, NULL },
                { "type_matches", "matchme", "", 1, 0, OK, NULL },
                { "enumval_exists", "state", "ST_GONE", 1, 0, OK, NULL },
                { "enumval_value", "state", "ST_RUN", 1, 1, OK, V },
                { "enumval_value", "big64", "BIG_HI", 1ll << 32, 0, POISONED, NULL, "no candidate type" },
        } },
        { "flavors, new kernel", "flavors", build_flavors_new, 5, false, false, {
                { EXISTS, "proc___new", "modern", 1, 1, OK, V },
                { OFF, "proc___new", "modern", 8, 16, OK, V },
                { OFF, "proc___old", "legacy", 4, 0, POISONED, NULL, "field missing: legacy" },
                { OFF, "dup", "b", 4, 8, OK, V },
                { OFF, "dup", "a", 0, 0, OK, V },
        } },
        { "flavors, old kernel", "flavors", build_flavors_old, 5, true, false, {
                { EXISTS, "proc___new", "modern", 1, 0, OK, NULL },
                { OFF, "proc___new", "modern", 8, 0, POISONED, NULL, "field missing: modern" },
                { OFF, "proc___old", "legacy", 4, 4, OK, V },
                { OFF, "dup", "b", 4, 0, FAILED, NULL, "ambiguous" },
        } },
        { "module BTF", "split", build_split, 2, false, false, {
                { OFF, "modstruct", "m2", 4, 12, OK, "mod" },
                { OFF, "shared", "s", 0, 4, OK, V },
        } },
};

/* ---- helpers ---- */

typedef struct TestObject {
        char *path;
        uint8_t *data;
        size_t size;
} TestObject;

static const char *objects_dir(void) {
        return getenv("PLANNER_OBJECTS_DIR");
}

static bool object_read(const char *name, TestObject *ret) {
        FILE *f;
        long size;

        *ret = (TestObject) {};
        if (asprintf(&ret->path, "%s/planner-%s.bpf.o", objects_dir(), name) < 0)
                return false;
        f = fopen(ret->path, "re");
        if (!f)
                return false;
        if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
                ret->data = malloc((size_t) size);
                if (ret->data && fread(ret->data, 1, (size_t) size, f) == (size_t) size)
                        ret->size = (size_t) size;
        }
        fclose(f);
        return ret->size > 0;
}

static void object_done(TestObject *o) {
        free(o->path);
        free(o->data);
}

static const CoreRelocation *find_relocation(const CorePlan *plan, const char *kind, const char *type,
                                             const char *access) {
        for (size_t i = 0; i < plan->n_relocations; i++) {
                const CoreRelocation *r = &plan->relocations[i];

                if (strcmp(r->kind, kind) == 0 && strcmp(r->type, type) == 0 &&
                    strcmp(r->access, access) == 0)
                        return r;
        }
        return NULL;
}

static State state_of(const CoreRelocation *r) {
        return r->ok ? OK : r->poisoned ? POISONED : FAILED;
}

static int64_t resolve_id(int64_t v, const struct btf *local, const struct btf *target, const char *type) {
        const struct btf *btf = v == LOCAL_ID ? local : v == TARGET_ID ? target : NULL;

        return btf ? btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT) : v;
}

static void check_expect(const Scenario *sc, const CorePlan *plan, const struct btf *local,
                         const struct btf *target, const Expect *e) {
        const CoreRelocation *r = find_relocation(plan, e->kind, e->type, e->access);
        int64_t want_local = resolve_id(e->local, local, target, e->type);
        int64_t want_target = resolve_id(e->target, local, target, e->type);
        bool pass;

        if (!tap_ok(r, "%s: %s %s %s is reported", sc->name, e->kind, e->type, e->access))
                return;
        pass = state_of(r) == e->state && r->local == want_local &&
               (e->state != OK || r->target == want_target);
        if (e->state == OK)
                pass = pass && !r->error &&
                       (e->btf && r->btf ? strcmp(e->btf, r->btf) == 0 : e->btf == r->btf);
        else
                pass = pass && r->error && strstr(r->error, e->error) && !r->btf;
        if (!tap_ok(pass, "%s: %s %s %s: %s, %" PRId64 " -> %" PRId64, sc->name, e->kind, e->type, e->access,
                    state_names[e->state], want_local, want_target))
                tap_diag("got %s, %" PRId64 " -> %" PRId64 " btf=%s error=%s", state_names[state_of(r)],
                         r->local, r->target, r->btf ?: "(none)", r->error ?: "(none)");
}

/* Index of relocation i among its section's records: libbpf's "relo #N". */
static int relo_index(const CorePlan *plan, size_t i) {
        int n = 0;

        for (size_t k = 0; k < i; k++)
                n += strcmp(plan->relocations[k].section, plan->relocations[i].section) == 0;
        return n;
}

/* ---- libbpf's own verdicts, from its debug log ---- */

/* Opens and loads obj with btf as libbpf's CO-RE target and collects what it did to each relocation.
 * Returns false if libbpf never got to CO-RE relocation (no bpf() here). */
static bool libbpf_relocate(const TestObject *obj, const struct btf *btf, LibbpfRelo **ret, size_t *ret_n) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *log = NULL;
        char path[64];
        size_t log_size = 0;
        const void *raw;
        uint32_t raw_size = 0;
        struct bpf_object *o;
        libbpf_print_fn_t old;
        bool reached;

        *ret = NULL;
        *ret_n = 0;
        raw = btf__raw_data(btf, &raw_size);
        fd = memfd_create("planner-target-btf", MFD_CLOEXEC);
        if (!raw || fd < 0 || write(fd, raw, raw_size) != (ssize_t) raw_size)
                return false;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

        old = libbpf_log_begin(&log, &log_size);
        {
                LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "planner_test",
                            .btf_custom_path = path);

                o = bpf_object__open_mem(obj->data, obj->size, &opts);
                if (o)
                        bpf_object__load(o); /* the verifier may well refuse: CO-RE patching comes first */
                bpf_object__close(o);
        }
        libbpf_log_end(old);

        reached = log && strstr(log, "CO-RE relocations");
        if (reached)
                *ret_n = libbpf_log_relocations(log, ret);
        return reached;
}

/* Each of libbpf's verdicts is the plan's (libbpf stops at the first failure: later ones have none). */
static void compare_with_libbpf(const char *name, const char *side, const CorePlan *plan, const LibbpfRelo *o,
                                size_t n, bool skip_type_ids) {
        size_t matched = 0, mismatched = 0;

        for (size_t i = 0; i < plan->n_relocations; i++) {
                const CoreRelocation *r = &plan->relocations[i];
                int idx = relo_index(plan, i);

                for (size_t k = 0; k < n; k++) {
                        State libbpf = (State) o[k].verdict;
                        bool same;

                        if (strcmp(o[k].prog, r->program) != 0 || o[k].relo != idx)
                                continue;
                        matched++;
                        same = libbpf == state_of(r) &&
                               (libbpf != OK || o[k].value == (uint64_t) r->target ||
                                (skip_type_ids && strcmp(r->kind, "type_id_target") == 0));
                        if (!same) {
                                mismatched++;
                                tap_diag("%s relo #%d (%s %s %s): libbpf %s %" PRIu64 ", plan %s %" PRId64,
                                         r->program, idx, r->kind, r->type, r->access,
                                         state_names[libbpf], o[k].value, state_names[state_of(r)],
                                         r->target);
                        }
                }
        }
        tap_ok(matched == n && mismatched == 0 && n > 0,
               "%s: libbpf with %s BTF patches what the plan says (%zu relocations)", name, side, n);
}

/* ---- tests ---- */

TEST(essential_names) {
        static const struct {
                const char *name;
                size_t len;
        } names[] = {
                { "task_struct", 11 }, { "task___v2", 4 }, { "a___b___c", 5 }, { "___x", 4 },
                { "a____b", 6 },       { "x___", 4 },      { "foo___1", 3 },   { "", 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                tap_is_int(core_essential_name_len(names[i].name), names[i].len, "essential name of \"%s\"",
                           names[i].name);
}

TEST(relocations) {
        for (size_t s = 0; s < ELEMENTSOF(scenarios); s++) {
                const Scenario *sc = &scenarios[s];
                _cleanup_(core_plan_freep) CorePlan *plan = NULL, *again = NULL;
                _cleanup_free_ char *error = NULL;
                Targets ts = {}, min = {};
                struct btf *local;
                const void *raw;
                uint32_t raw_size = 0;
                TestObject obj;
                int r;

                if (!object_read(sc->object, &obj))
                        tap_bail("cannot read %s", obj.path);
                local = btf__parse(obj.path, NULL);
                sc->build(&ts);
                r = core_plan(obj.data, obj.size, lookup, &ts, &plan, &error);
                if (!tap_ok(r == 0 && plan, "%s: planned", sc->name)) {
                        tap_diag("r=%d %s", r, error ?: "");
                        goto next;
                }
                tap_is_int(plan->n_relocations, sc->n_relocations, "%s: relocations", sc->name);
                tap_is_int(plan->failed, sc->failed, "%s: failed", sc->name);
                tap_is_int(plan->needs_full_btf, sc->needs_full_btf, "%s: needs the full BTF", sc->name);
                for (const Expect *e = sc->expect; e->kind; e++)
                        check_expect(sc, plan, local, ts.btf[0], e);

                /* The minimal BTF alone gives the same verdicts and values (type ids aside). */
                if (!tap_ok(plan->min_btf, "%s: has a minimal BTF", sc->name))
                        goto next;
                raw = btf__raw_data(plan->min_btf, &raw_size);
                target_add(&min, "min", raw ? btf__new(raw, raw_size) : NULL, true);
                if (!tap_ok(min.btf[0], "%s: the minimal BTF is valid BTF (%u types)", sc->name,
                            btf__type_cnt(plan->min_btf) - 1))
                        goto next;
                r = core_plan(obj.data, obj.size, lookup, &min, &again, NULL);
                if (tap_ok(r == 0 && again->n_relocations == plan->n_relocations &&
                                   again->failed == plan->failed,
                           "%s: planned against the minimal BTF", sc->name)) {
                        size_t differ = 0;

                        for (size_t i = 0; i < plan->n_relocations; i++) {
                                const CoreRelocation *a = &plan->relocations[i], *b = &again->relocations[i];

                                if (state_of(a) != state_of(b) ||
                                    (a->target != b->target && strcmp(a->kind, "type_id_target") != 0)) {
                                        differ++;
                                        tap_diag("%s %s %s: %s %" PRId64 " vs %s %" PRId64, a->kind, a->type,
                                                 a->access, state_names[state_of(a)], a->target,
                                                 state_names[state_of(b)], b->target);
                                }
                        }
                        tap_is_int(differ, 0, "%s: same values from the minimal BTF", sc->name);
                }
        next:
                targets_done(&min);
                targets_done(&ts);
                btf__free(local);
                object_done(&obj);
        }
}

TEST(minimal_btf_contents) {
        _cleanup_(core_plan_freep) CorePlan *plan = NULL;
        Targets ts = {};
        TestObject obj;
        const struct btf *m;
        int id;

        if (!object_read("split", &obj))
                tap_bail("cannot read %s", obj.path);
        build_split(&ts);
        tap_is_int(core_plan(obj.data, obj.size, lookup, &ts, &plan, NULL), 0, "split: planned");
        m = plan->min_btf;
        /* vmlinux's shared and the module's modstruct, their int, nothing of the module's shared. */
        tap_is_int(btf__type_cnt(m) - 1, 3, "split: 3 types in the minimal BTF");
        id = btf__find_by_name_kind(m, "shared", BTF_KIND_STRUCT);
        tap_ok(id > 0 && btf__type_by_id(m, id)->size == 8, "split: shared is vmlinux's (8 bytes)");
        id = btf__find_by_name_kind(m, "modstruct", BTF_KIND_STRUCT);
        tap_ok(id > 0 && btf_vlen(btf__type_by_id(m, id)) == 1 && btf__type_by_id(m, id)->size == 16,
               "split: modstruct keeps only m2, and its size");
        tap_is_int(btf_member_bit_offset(btf__type_by_id(m, id), 0), 96, "split: m2 keeps its offset");
        core_plan_free(TAKE_PTR(plan));
        targets_done(&ts);
        object_done(&obj);

        if (!object_read("fields", &obj))
                tap_bail("cannot read %s", obj.path);
        build_fields_agree(&ts);
        tap_is_int(core_plan(obj.data, obj.size, lookup, &ts, &plan, NULL), 0, "fields: planned");
        m = plan->min_btf;
        tap_ok(btf__find_by_name_kind(m, "task", BTF_KIND_STRUCT) > 0 &&
                       btf__find_by_name_kind(m, "task___2", BTF_KIND_STRUCT) > 0,
               "fields: both agreeing candidates are in the minimal BTF");
        id = btf__find_by_name_kind(m, "task", BTF_KIND_STRUCT);
        /* pid tgid parent in comm (anon) flag1 flag2 big count tail: all but the target's extra member */
        tap_is_int(btf_vlen(btf__type_by_id(m, id)), 11, "fields: task keeps the 11 members read");
        id = btf__find_by_name_kind(m, "task___2", BTF_KIND_STRUCT);
        tap_is_int(id > 0 ? btf_vlen(btf__type_by_id(m, id)) : -1, 11,
                   "fields: task___2 too, without its extra member");
        core_plan_free(TAKE_PTR(plan));
        targets_done(&ts);
        object_done(&obj);
}

TEST(libbpf_agrees) {
        for (size_t s = 0; s < ELEMENTSOF(scenarios); s++) {
                const Scenario *sc = &scenarios[s];
                _cleanup_(core_plan_freep) CorePlan *plan = NULL;
                _cleanup_free_ LibbpfRelo *full = NULL, *min = NULL;
                size_t n_full = 0, n_min = 0;
                Targets ts = {};
                TestObject obj;

                if (!object_read(sc->object, &obj))
                        tap_bail("cannot read %s", obj.path);
                sc->build(&ts);
                if (core_plan(obj.data, obj.size, lookup, &ts, &plan, NULL) < 0) {
                        tap_ok(false, "%s: planned", sc->name);
                        goto next;
                }
                /* libbpf takes one target BTF: a module's split BTF cannot stand in for the full set. */
                if (ts.n > 1)
                        tap_skip("libbpf has no module BTF here", "%s: libbpf with the full BTF", sc->name);
                else if (!libbpf_relocate(&obj, ts.btf[0], &full, &n_full)) {
                        tap_skip("libbpf did not get to CO-RE relocation (no bpf() here?)",
                                 "%s: libbpf with the full BTF", sc->name);
                        goto next;
                } else
                        compare_with_libbpf(sc->name, "the full", plan, full, n_full, false);
                if (!libbpf_relocate(&obj, plan->min_btf, &min, &n_min))
                        tap_skip("libbpf did not get to CO-RE relocation (no bpf() here?)",
                                 "%s: libbpf with the minimal BTF", sc->name);
                else
                        /* libbpf patches the minimal BTF's type ids: hence needs_full_btf. */
                        compare_with_libbpf(sc->name, "the minimal", plan, min, n_min, true);
        next:
                targets_done(&ts);
                object_done(&obj);
        }
}

/* ---- malformed objects ---- */

typedef struct Layout {
        uint8_t *btf, *strs, *ext, *core, *rec0, *insn0, *loopy;
        uint32_t str_len, ext_size, scratch, n_types, loopy_id;
} Layout;

static void put_u32(uint8_t *p, uint32_t v) {
        memcpy(p, &v, sizeof(v));
}

static uint32_t get_u32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return v;
}

/* Where things are in the compiled bad.bpf.o, to patch them. */
static bool layout(uint8_t *data, size_t size, Layout *l) {
        Elf *elf = elf_memory((char *) data, size);
        Elf_Scn *scn = NULL;
        size_t shstrndx;
        struct btf_header h;
        struct btf *btf = NULL;
        uint32_t loopy_name = UINT32_MAX;

        *l = (Layout) {};
        if (!elf || elf_getshdrstrndx(elf, &shstrndx) < 0)
                return false;
        while ((scn = elf_nextscn(elf, scn))) {
                GElf_Shdr sh;
                const char *name;

                if (!gelf_getshdr(scn, &sh) || !(name = elf_strptr(elf, shstrndx, sh.sh_name)))
                        continue;
                if (strcmp(name, ".BTF") == 0) {
                        l->btf = data + sh.sh_offset;
                        btf = btf__new(l->btf, (uint32_t) sh.sh_size);
                } else if (strcmp(name, ".BTF.ext") == 0) {
                        l->ext = data + sh.sh_offset;
                        l->ext_size = (uint32_t) sh.sh_size;
                } else if (strcmp(name, "socket") == 0)
                        l->insn0 = data + sh.sh_offset;
        }
        elf_end(elf);
        if (!l->btf || !l->ext || !l->insn0 || !btf)
                goto fail;
        memcpy(&h, l->btf, sizeof(h));
        l->strs = l->btf + h.hdr_len + h.str_off;
        l->str_len = h.str_len;
        for (uint32_t off = 0; off < h.str_len; off += (uint32_t) strlen((char *) l->strs + off) + 1) {
                if (strcmp((char *) l->strs + off, "access_string_scratch_area_for_the_tests") == 0)
                        l->scratch = off;
                if (strcmp((char *) l->strs + off, "loopy_t") == 0)
                        loopy_name = off;
        }
        l->n_types = btf__type_cnt(btf);
        l->loopy_id = (uint32_t) btf__find_by_name_kind(btf, "loopy_t", BTF_KIND_TYPEDEF);
        /* The typedef's struct btf_type: its name and kind are unique in the type section. */
        for (uint8_t *t = l->btf + h.hdr_len + h.type_off, *end = t + h.type_len; t + 12 <= end; t += 4)
                if (get_u32(t) == loopy_name && get_u32(t + 4) >> 24 == BTF_KIND_TYPEDEF)
                        l->loopy = t;
        l->core = l->ext + get_u32(l->ext + 4) + get_u32(l->ext + 24);
        l->rec0 = l->core + 12;
        btf__free(btf);
        return l->scratch && l->loopy && l->loopy_id > 0;
fail:
        btf__free(btf);
        return false;
}

static void set_access(const Layout *l, const char *s) {
        memset(l->strs + l->scratch, 0, strlen("access_string_scratch_area_for_the_tests"));
        memcpy(l->strs + l->scratch, s, strlen(s));
        put_u32(l->rec0 + 8, l->scratch);
}

static void bad_core_off(const Layout *l) { put_u32(l->ext + 24, l->ext_size); }
static void bad_rec_size(const Layout *l) { put_u32(l->core, 8); }
static void bad_num_info(const Layout *l) { put_u32(l->core + 8, 0x10000000); }
static void bad_access_negative(const Layout *l) { set_access(l, "0:-1"); }
static void bad_access_huge(const Layout *l) { set_access(l, "0:99999999999"); }
static void bad_access_name(const Layout *l) { set_access(l, "x"); }
static void bad_access_member(const Layout *l) { set_access(l, "0:7"); }
static void bad_access_trailing(const Layout *l) { set_access(l, "0:1:"); }
static void bad_access_off(const Layout *l) { put_u32(l->rec0 + 8, l->str_len + 1000); }
static void bad_type_zero(const Layout *l) { put_u32(l->rec0 + 4, 0); }
static void bad_type_range(const Layout *l) { put_u32(l->rec0 + 4, l->n_types); }
static void bad_kind(const Layout *l) { put_u32(l->rec0 + 12, 99); }
static void bad_insn_off(const Layout *l) { put_u32(l->rec0, 3); }
static void bad_insn_range(const Layout *l) { put_u32(l->rec0, 1u << 20); }
static void bad_sec_name(const Layout *l) { put_u32(l->core + 4, l->str_len + 5); }
static void bad_magic(const Layout *l) { l->ext[0] ^= 0xff; }
static void bad_typedef_loop(const Layout *l) { put_u32(l->loopy + 8, l->loopy_id); }
static void bad_type_access(const Layout *l) { put_u32(l->rec0 + 12, 8); /* type_exists wants "0" */ }

TEST(malformed) {
        static const struct {
                const char *name;
                void (*patch)(const Layout *l);
                const char *error;
        } cases[] = {
                { "core_relo_off past the section", bad_core_off, "lies outside" },
                { "record size below struct bpf_core_relo", bad_rec_size, "record size 8" },
                { "num_info overflowing the section", bad_num_info, "overrun" },
                { "access string 0:-1", bad_access_negative, "not a list of indices" },
                { "access string 0:99999999999", bad_access_huge, "out of range" },
                { "access string x", bad_access_name, "not a list of indices" },
                { "access string 0:1:", bad_access_trailing, "not a list of indices" },
                { "access string beyond the members", bad_access_member, "has no member 7" },
                { "access string offset outside the strings", bad_access_off, "outside the BTF strings" },
                { "type id 0", bad_type_zero, "type id 0" },
                { "type id past the last type", bad_type_range, "the object's BTF has" },
                { "unknown relocation kind", bad_kind, "unknown CO-RE relocation kind 99" },
                { "type relocation with a field access", bad_type_access, "expected \"0\"" },
                { "insn_off inside an instruction", bad_insn_off, "not an instruction boundary" },
                { "insn_off past the section", bad_insn_range, "which has" },
                { "section name offset outside the strings", bad_sec_name, "invalid name" },
                { ".BTF.ext magic", bad_magic, "magic" },
                { "typedef referring to itself", bad_typedef_loop, "loop" },
        };
        TestObject obj;

        if (!object_read("bad", &obj))
                tap_bail("cannot read %s", obj.path);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(core_plan_freep) CorePlan *plan = NULL;
                _cleanup_free_ char *error = NULL;
                _cleanup_free_ uint8_t *copy = malloc(obj.size);
                Targets ts = {};
                Layout l;
                int r;

                memcpy(copy, obj.data, obj.size);
                if (!tap_ok(layout(copy, obj.size, &l), "%s: found what to patch", cases[i].name))
                        continue;
                cases[i].patch(&l);
                build_fields_same(&ts);
                r = core_plan(copy, obj.size, lookup, &ts, &plan, &error);
                if (!tap_ok(r == -EBADMSG && !plan && error && strstr(error, cases[i].error),
                            "%s: refused (%s)", cases[i].name, cases[i].error))
                        tap_diag("r=%d error=%s", r, error ?: "(none)");
                targets_done(&ts);
        }

        /* Every truncation of the object: refused or planned, never a crash. */
        for (size_t size = 0; size < obj.size; size += 7) {
                _cleanup_(core_plan_freep) CorePlan *plan = NULL;
                _cleanup_free_ char *error = NULL;
                _cleanup_free_ uint8_t *copy = malloc(MAX(size, 1u));
                Targets ts = {};
                int r;

                memcpy(copy, obj.data, size);
                build_fields_same(&ts);
                r = core_plan(copy, size, lookup, &ts, &plan, &error);
                targets_done(&ts);
                if (r != -EBADMSG && r != 0) {
                        tap_ok(false, "truncated to %zu bytes: %d", size, r);
                        break;
                }
        }
        tap_ok(true, "every truncation of bad.bpf.o is refused or planned");
        object_done(&obj);
}

TEST(instruction_checks) {
        _cleanup_(core_plan_freep) CorePlan *plan = NULL;
        Targets ts = {};
        TestObject obj;
        Layout l;

        if (!object_read("bad", &obj))
                tap_bail("cannot read %s", obj.path);
        /* The first relocation's load (via_typedef, offset 0) made to read offset 2: libbpf fails. */
        if (tap_ok(layout(obj.data, obj.size, &l), "instruction: found what to patch")) {
                put_u32(l.insn0 + get_u32(l.rec0), get_u32(l.insn0 + get_u32(l.rec0)) | 2u << 16);
                build_bad(&ts);
                tap_is_int(core_plan(obj.data, obj.size, lookup, &ts, &plan, NULL), 0,
                           "instruction: planned");
                if (!tap_ok(plan && plan->failed && !plan->relocations[0].ok && plan->relocations[0].error &&
                                    strstr(plan->relocations[0].error, "does not hold"),
                            "instruction: a load not at the object's offset fails the plan") &&
                    plan)
                        tap_diag("failed=%d ok=%d insn=%u error=%s", plan->failed, plan->relocations[0].ok,
                                 plan->relocations[0].insn, plan->relocations[0].error ?: "(none)");
                targets_done(&ts);
        }
        object_done(&obj);
}

TEST(no_core) {
        _cleanup_(core_plan_freep) CorePlan *plan = NULL;
        Targets ts = {};
        TestObject obj;
        Layout l;

        if (!object_read("bad", &obj))
                tap_bail("cannot read %s", obj.path);
        if (tap_ok(layout(obj.data, obj.size, &l), "no CO-RE: found what to patch")) {
                put_u32(l.ext + 28, 0); /* core_relo_len */
                tap_is_int(core_plan(obj.data, obj.size, lookup, &ts, &plan, NULL), 0, "no CO-RE: planned");
                tap_ok(plan && plan->n_relocations == 0 && !plan->min_btf && !plan->failed,
                       "no CO-RE: no relocations, no minimal BTF");
        }
        object_done(&obj);
}

static int failing_lookup(void *userdata, const char *name, size_t len, const CoreCandidate **ret,
                          size_t *ret_n) {
        return -ENOMEM;
}

TEST(lookup_error) {
        _cleanup_(core_plan_freep) CorePlan *plan = NULL;
        TestObject obj;

        if (!object_read("bad", &obj))
                tap_bail("cannot read %s", obj.path);
        tap_is_int(core_plan(obj.data, obj.size, failing_lookup, NULL, &plan, NULL), -ENOMEM,
                   "a lookup's error is core_plan()'s");
        tap_ok(!plan, "and no plan");
        object_done(&obj);
}

/* The daemon's BTF cache of this kernel (its modules aside), or NULL when there is none: skipped. */
static BtfCache *kernel_cache(const char *test) {
        BtfCache *cache = NULL;

        if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
                tap_skip("this kernel has no /sys/kernel/btf/vmlinux", "%s", test);
                return NULL;
        }
        if (!tap_is_int(btf_cache_new("/sys/kernel/btf/vmlinux", "/nonexistent", NULL, &cache), 0,
                        "BTF cache of this kernel"))
                return NULL;
        return cache;
}

/* What libbpf's own btf__find_by_name_kind() answers: the first id of that name and kind, walking all types. */
static int32_t linear_find(const struct btf *btf, const char *name, uint32_t kind) {
        if (kind == BTF_KIND_UNKN || strcmp(name, "void") == 0)
                return 0;
        for (uint32_t id = 1; id < btf__type_cnt(btf); id++) {
                const struct btf_type *t = btf__type_by_id(btf, id);

                if (btf_kind(t) == kind && strcmp(btf__name_by_offset(btf, t->name_off) ?: "", name) == 0)
                        return (int32_t) id;
        }
        return -ENOENT;
}

/*
 * During a load, libbpf's name lookups on the cached vmlinux (kfuncs, typed
 * ksyms) are answered from the cache's index (daemon/btf-targets.c): the
 * answers must be the linear walk's, for every kind, for names that are
 * missing, flavored or of another kind.
 */
TEST(kernel_name_lookups) {
        static const uint32_t kinds[] = { BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_ENUM64,
                                          BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_INT, BTF_KIND_FLOAT,
                                          BTF_KIND_FUNC, BTF_KIND_VAR };
        BtfCache *cache = NULL;
        struct btf *served, *other;
        size_t asked = 0, wrong = 0, found = 0;
        unsigned before;

        cache = kernel_cache("kernel name lookups");
        if (!cache)
                return;
        btf_targets_begin(cache, NULL, false);
        served = btf__load_vmlinux_btf();
        before = btf_targets_lookups();
        tap_ok(served && served == btf_cache_vmlinux(cache)->btf, "vmlinux served from the cache, as it is");
        for (uint32_t id = 1; served && id < btf__type_cnt(served); id += 211) {
                const struct btf_type *t = btf__type_by_id(served, id);
                const char *name = btf__name_by_offset(served, t->name_off);
                char flavored[512];

                if (!name || !name[0])
                        continue;
                snprintf(flavored, sizeof(flavored), "%s___v2", name);
                /* The type's own kind, and a kind it may not have; the flavored name never exists. */
                for (size_t k = 0; k < 3; k++) {
                        uint32_t kind = k == 0 ? btf_kind(t) : kinds[(id + k) % ELEMENTSOF(kinds)];
                        const char *n = k == 2 ? flavored : name;
                        int32_t got = btf__find_by_name_kind(served, n, kind), want = linear_find(served, n, kind);

                        asked++;
                        found += got > 0;
                        if (got != want && wrong++ < 5)
                                tap_diag("%s (kind %u): index %d, linear walk %d", n, kind, got, want);
                }
        }
        tap_is_int(wrong, 0, "%zu lookups (%zu found) agree with the linear walk", asked, found);
        tap_is_int(btf__find_by_name_kind(served, "no_such_type_anywhere", BTF_KIND_STRUCT), -ENOENT,
                   "a missing name is -ENOENT");
        tap_is_int(btf__find_by_name_kind(served, "void", BTF_KIND_TYPEDEF), 0, "void is 0");
        tap_ok(btf_targets_lookups() - before >= asked - asked / 3, "the index answered them (%u)",
               btf_targets_lookups() - before);

        /* Any other BTF, or outside a load: libbpf's own search. */
        other = btf__new_empty();
        btf__add_int(other, "task_struct", 4, 0);
        before = btf_targets_lookups();
        tap_is_int(btf__find_by_name_kind(other, "task_struct", BTF_KIND_INT), 1, "another BTF is searched by libbpf");
        btf_targets_end();
        tap_ok(btf__find_by_name_kind(served, "task_struct", BTF_KIND_STRUCT) > 0, "outside a load too");
        tap_is_int(btf_targets_lookups() - before, 0, "neither through the index");
        btf__free(other);
        btf__free(served); /* what libbpf does at the end of each load: the cache's BTF stays */
        tap_ok(btf__find_by_name_kind(btf_cache_vmlinux(cache)->btf, "task_struct", BTF_KIND_STRUCT) > 0,
               "the cache's vmlinux BTF outlives libbpf's btf__free() of it");
        btf_cache_free(cache);
}

/*
 * libbpf walks the kernel's BTF objects (bpf_btf_get_next_id) to find a
 * kfunc or ksym that is not in vmlinux, parsing every module's BTF; during a
 * load it is shown only the modules the object's ksyms are in. ksyms' are
 * all in vmlinux: the walk meets no module. Outside a load: the kernel's.
 */
/* A BTF object of the kernel's that is no kernel BTF (what a loaded program's BTF is): its id, fd in *fd. */
static uint32_t kernel_btf_object(int *fd) {
        struct btf *b = btf__new_empty();
        struct bpf_btf_info info = {};
        __u32 len = sizeof(info);

        *fd = -1;
        if (!b || btf__add_int(b, "int", 4, BTF_INT_SIGNED) < 0 || btf__load_into_kernel(b) < 0) {
                btf__free(b);
                return 0;
        }
        *fd = dup(btf__fd(b));
        btf__free(b);
        if (*fd < 0 || bpf_btf_get_info_by_fd(*fd, &info, &len) < 0)
                return 0;
        return info.id;
}

/* A module's split BTF in dir/name, holding a type of this name and kind (FUNC, VAR or STRUCT). */
static bool write_module(const char *dir, const char *name, const struct btf *base, const char *type, int kind) {
        struct btf *b = btf__new_empty_split((struct btf *) base);
        __s32 int_id = btf__find_by_name_kind(base, "int", BTF_KIND_INT), id = -1;
        char path[4096];
        const void *raw;
        __u32 size;
        FILE *f;
        bool ok;

        if (!b)
                return false;
        if (kind == BTF_KIND_FUNC) {
                id = btf__add_func_proto(b, int_id);
                id = id < 0 ? id : btf__add_func(b, type, BTF_FUNC_GLOBAL, id);
        } else if (kind == BTF_KIND_VAR)
                id = btf__add_var(b, type, BTF_VAR_GLOBAL_ALLOCATED, int_id);
        else if (kind == BTF_KIND_STRUCT) {
                id = btf__add_struct(b, type, 4);
                id = id < 0 ? id : btf__add_field(b, "value", int_id, 0, 0);
        }
        raw = id < 0 ? NULL : btf__raw_data(b, &size);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = raw ? fopen(path, "we") : NULL;
        ok = f && fwrite(raw, 1, size, f) == size;
        if (f)
                ok = fclose(f) == 0 && ok;
        btf__free(b);
        return ok;
}

/* The BTF objects a walk with the daemon's bpf_btf_get_next_id() meets, as flags for the ids asked about. */
static void walk_meets(const uint32_t *ids, size_t n, bool *met) {
        __u32 id = 0;

        memset(met, 0, n * sizeof(bool));
        while (bpf_btf_get_next_id(id, &id) == 0)
                for (size_t i = 0; i < n; i++)
                        met[i] = met[i] || ids[i] == id;
}

/*
 * libbpf walks the kernel's BTF objects for what is not in vmlinux and parses
 * every module's BTF it meets. The cache's modules here are split BTF files
 * made by the test, each standing for a module whose kernel BTF object is one
 * the test loaded before the cache was made; one more loaded after it stands
 * for a module the cache has not met.
 */
TEST(module_walk_shows_modules_looked_for) {
        static const struct {
                const char *module, *type;
                int kind;
        } modules[] = {
                { "mod_kfunc", "bpfcored_test_kfunc", BTF_KIND_FUNC },
                { "mod_ksym", "bpfcored_test_ksym", BTF_KIND_VAR },
                { "mod_iter", "bpf_iter_bpfcored_test", BTF_KIND_FUNC },
                { "mod_ops", "bpfcored_test_ops", BTF_KIND_STRUCT },
                { "mod_other", "bpfcored_unrelated", BTF_KIND_FUNC },
        };
        enum { N = ELEMENTSOF(modules) };
        char dir[] = "/tmp/test-planner-modules.XXXXXX", path[4096];
        _cleanup_free_ char *targets = NULL, *ksyms = NULL;
        uint32_t ids[N + 3];          /* the modules', vmlinux's, two made since the cache's walk */
        int fds[N + 2];
        bool met[N + 3], ok = true;
        __u32 next = 0;
        struct bpf_object *obj = NULL, *plain = NULL;
        struct btf *base = NULL;
        BtfCache *cache = NULL;
        unsigned walks, shown;

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = -1;
        if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
                tap_skip("this kernel has no /sys/kernel/btf/vmlinux", "module walk");
                return;
        }
        base = btf__parse("/sys/kernel/btf/vmlinux", NULL);
        if (!tap_ok(base && mkdtemp(dir), "vmlinux parsed, module directory %s", dir))
                goto finish;
        for (size_t i = 0; i < N; i++) {
                ids[i] = kernel_btf_object(&fds[i]);
                ok = ok && ids[i] > 0 && write_module(dir, modules[i].module, base, modules[i].type, modules[i].kind);
        }
        if (!tap_ok(ok, "%d module BTFs written, %d kernel BTF objects loaded for them", N, N) ||
            !tap_is_int(btf_cache_new("/sys/kernel/btf/vmlinux", dir, NULL, &cache), 0, "cache with those modules") ||
            !tap_is_int((int) cache->n_entries, N + 1, "vmlinux and %d modules cached", N))
                goto finish;
        for (size_t i = 0; i < N; i++)
                btf_cache_find(cache, modules[i].module)->kernel_id = ids[i];
        ids[N] = btf_cache_vmlinux(cache)->kernel_id;
        ids[N + 1] = kernel_btf_object(&fds[N]);
        tap_ok(ids[N] > 0 && ids[N + 1] > cache->walked_id, "vmlinux is BTF object %u; one loaded since is %u",
               ids[N], ids[N + 1]);
        tap_ok(btf_cache_accounts_for(cache, ids[0]) && btf_cache_accounts_for(cache, ids[N]) &&
               !btf_cache_accounts_for(cache, ids[N + 1]), "the cache accounts for what it walked, not what came after");

        if (asprintf(&targets, "%s/planner-targets.bpf.o", objects_dir()) < 0 ||
            asprintf(&ksyms, "%s/bpf/ksyms.bpf.o", objects_dir()) < 0)
                tap_bail("out of memory");
        obj = bpf_object__open_file(targets, NULL);
        plain = bpf_object__open_file(ksyms, NULL);
        if (!tap_ok(obj && plain, "planner-targets.bpf.o and ksyms.bpf.o open"))
                goto finish;

        walks = btf_targets_module_walks();
        shown = btf_targets_modules_shown();
        btf_targets_begin(cache, obj, false);
        walk_meets(ids, N + 3, met);
        for (size_t i = 0; i < N - 1; i++)
                tap_ok(met[i], "the walk meets %s, which has %s", modules[i].module, modules[i].type);
        tap_ok(!met[N - 1], "... not mod_other, which has nothing the object looks for");
        tap_ok(!met[N], "... not vmlinux (libbpf skips it)");
        tap_ok(!met[N + 1] && btf_cache_accounts_for(cache, ids[N + 1]),
               "... nor a BTF object made since the cache's walk that is no kernel BTF: looked at once, taken in");
        tap_is_int(btf_targets_module_walks() - walks, 1, "one walk counted");
        tap_is_int(btf_targets_modules_shown() - shown, N - 1, "%d cached modules shown", N - 1);
        /* A walk that does not start from the first id cannot tell what lies between: it passes what is new. */
        ids[N + 2] = kernel_btf_object(&fds[N + 1]);
        tap_ok(bpf_btf_get_next_id(ids[N + 2] - 1, &next) == 0 && next == ids[N + 2] &&
                       !btf_cache_accounts_for(cache, ids[N + 2]),
               "a walk from the middle meets the newer BTF object %u and leaves it to libbpf", ids[N + 2]);
        btf_targets_end();

        btf_targets_begin(cache, obj, true);
        walk_meets(ids, N + 3, met);
        tap_ok(met[N - 1] && met[N], "with CO-RE on the kernel's BTF, the walk meets every BTF object");
        btf_targets_end();

        btf_targets_begin(cache, plain, false);
        walk_meets(ids, N + 3, met);
        ok = true;
        for (size_t i = 0; i < N; i++)
                ok = ok && !met[i];
        tap_ok(ok && !met[N + 1] && !met[N + 2] && btf_cache_accounts_for(cache, ids[N + 2]),
               "for ksyms.bpf.o (ksyms of vmlinux), no cached module, nor the newer objects (the second taken in)");
        btf_targets_end();

        walk_meets(ids, N + 3, met);
        tap_ok(met[0] && met[N - 1] && met[N], "outside a load it is the kernel's walk");
finish:
        bpf_object__close(obj);
        bpf_object__close(plain);
        btf_cache_free(cache);
        btf__free(base);
        close_many(fds, ELEMENTSOF(fds));
        for (size_t i = 0; i < N; i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, modules[i].module);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

/* Whether the cache's index has a FUNC of exactly this name. */
static bool cache_has_func(BtfCache *cache, const char *name) {
        const CoreCandidate *cands;
        size_t n = 0;

        btf_cache_lookup(cache, name, strlen(name), &cands, &n);
        for (size_t i = 0; i < n; i++) {
                const struct btf_type *t = btf__type_by_id(cands[i].target->btf, cands[i].type_id);

                if (btf_is_func(t) && strcmp(btf__name_by_offset(cands[i].target->btf, t->name_off), name) == 0)
                        return true;
        }
        return false;
}

/* A module loaded again while the daemon heard nothing (its sysfs file is another one), or a BTF file rewritten:
 * read again. */
TEST(module_file_replaced) {
        char dir[] = "/tmp/test-planner-replaced.XXXXXX", path[4096] = "", tmp[4096] = "";
        struct btf *base = NULL;
        BtfCache *cache = NULL;
        uint64_t generation;

        if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
                tap_skip("this kernel has no /sys/kernel/btf/vmlinux", "module file replaced");
                return;
        }
        base = btf__parse("/sys/kernel/btf/vmlinux", NULL);
        if (!tap_ok(base && mkdtemp(dir), "vmlinux parsed, module directory"))
                goto finish;
        snprintf(path, sizeof(path), "%s/mod_a", dir);
        snprintf(tmp, sizeof(tmp), "%s/.next", dir);
        if (!tap_ok(write_module(dir, "mod_a", base, "bpfcored_first", BTF_KIND_FUNC), "module mod_a with bpfcored_first") ||
            !tap_is_int(btf_cache_new("/sys/kernel/btf/vmlinux", dir, NULL, &cache), 0, "cache with it"))
                goto finish;
        generation = cache->generation;
        tap_ok(cache_has_func(cache, "bpfcored_first"), "the cache has bpfcored_first");
        tap_is_int(btf_cache_refresh(cache), 0, "looking again changes nothing");
        tap_ok(write_module(dir, ".next", base, "bpfcored_second", BTF_KIND_FUNC) && rename(tmp, path) == 0,
               "mod_a replaced by another file (another inode), with bpfcored_second");
        tap_is_int(btf_cache_refresh(cache), 1, "looking again reads it again");
        tap_ok(!cache_has_func(cache, "bpfcored_first") && cache_has_func(cache, "bpfcored_second") &&
                       cache->generation > generation,
               "the cache has bpfcored_second, no more bpfcored_first, and a new generation");
        tap_ok(write_module(dir, "mod_a", base, "bpfcored_third", BTF_KIND_FUNC), "mod_a rewritten in place");
        tap_is_int(btf_cache_refresh(cache), 1, "looking again reads it again");
        tap_ok(!cache_has_func(cache, "bpfcored_second") && cache_has_func(cache, "bpfcored_third"),
               "the cache has bpfcored_third instead");
finish:
        btf_cache_free(cache);
        btf__free(base);
        (void) unlink(path);
        (void) unlink(tmp);
        (void) rmdir(dir);
}

static void patch_shoff_past_end(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size) {
        e->e_shoff = size - 8;
}

static void patch_section_past_end(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size) {
        s[1].sh_offset = size - 4;
        s[1].sh_size = 64;
        s[1].sh_type = SHT_PROGBITS;
}

static void patch_names_overlap(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size) {
        /* The names section made to start inside the section header table. */
        s[e->e_shstrndx].sh_offset = e->e_shoff + 8;
        s[e->e_shstrndx].sh_size = 16;
}

static void patch_names_not_strtab(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size) {
        s[e->e_shstrndx].sh_type = SHT_PROGBITS;
}

static void patch_not_elf(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size) {
        memset(d, 'x', 16);
}

/*
 * At start the daemon works out vmlinux's index entries from the raw sysfs
 * bytes while libbpf parses them (daemon/btf-cache.c): the index must be
 * exactly the one built from libbpf's parsed BTF.
 */
TEST(index_from_raw_bytes) {
        BtfCache *cache = NULL;
        const CoreTarget *t;
        BtfIndex again = {};
        bool same;

        cache = kernel_cache("index from raw bytes");
        if (!cache)
                return;
        tap_ok(cache->indexed_while_parsing, "its index was worked out from the raw bytes while libbpf parsed");
        t = &btf_cache_vmlinux(cache)->target;
        tap_is_int(btf_index_build(&t, 1, &again), 0, "vmlinux indexed again from libbpf's parse");
        same = again.n == cache->kernel.n && again.n_buckets == cache->kernel.n_buckets &&
               memcmp(again.buckets, cache->kernel.buckets, (again.n_buckets + 1) * sizeof(uint32_t)) == 0;
        for (size_t i = 0; same && i < again.n; i++)
                same = again.cands[i].target == cache->kernel.cands[i].target &&
                       again.cands[i].type_id == cache->kernel.cands[i].type_id;
        tap_ok(same, "the start-up index (%zu names) is the same, entry for entry", cache->kernel.n);
        btf_index_done(&again);
        btf_cache_free(cache);
}

/* A memfd holding data: what a client passes. */
static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("object", MFD_CLOEXEC);

        if (fd >= 0 && write(fd, data, size) != (ssize_t) size) {
                close(fd);
                return -1;
        }
        return fd;
}

static bool section_is_dwarf(const uint8_t *data, const Elf64_Shdr *sh, const Elf64_Shdr *names) {
        const char *n = (const char *) data + names->sh_offset + sh->sh_name;

        return strncmp(n, ".debug_", 7) == 0 || strncmp(n, ".rel.debug_", 11) == 0;
}

/*
 * Large objects are read sparsely (daemon/loader.c): every byte the plan key
 * and libbpf read is the file's, DWARF is left out until the digest needs it,
 * and then the buffer is the whole file. Headers that do not describe a plain
 * ELF within the file make it read whole, so the ELF check says what is wrong.
 */
TEST(sparse_read) {
        static const char *const names[] = { "tp_core", "many_core" };

        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                _cleanup_free_ char *path = NULL;
                char key_sparse[LOADER_DIGEST_MAX] = "", key_whole[LOADER_DIGEST_MAX] = "";
                const Elf64_Ehdr *eh;
                const Elf64_Shdr *sh;
                ObjectBytes o = {};
                TestObject whole = {};
                size_t differ = 0, dwarf = 0;
                Failure f = {};
                FILE *in;
                int fd;

                if (asprintf(&path, "%s/bpf/%s.bpf.o", objects_dir(), names[k]) < 0)
                        tap_bail("out of memory");
                in = fopen(path, "re");
                if (!in) {
                        tap_ok(false, "%s is built", path);
                        continue;
                }
                whole.data = malloc(4 << 20);
                whole.size = fread(whole.data, 1, 4 << 20, in);
                fclose(in);
                eh = (const Elf64_Ehdr *) whole.data;
                sh = (const Elf64_Shdr *) (whole.data + eh->e_shoff);
                fd = memfd_with(whole.data, whole.size);
                tap_is_int(loader_read(fd, whole.size, &o), 0, "%s (%zu bytes) read", names[k], whole.size);
                tap_ok(o.n_holes > 0 && o.hole_bytes > whole.size / 2, "sparsely: %llu bytes in %zu holes left out",
                       (unsigned long long) o.hole_bytes, o.n_holes);
                for (size_t i = 1; i < eh->e_shnum; i++) {
                        if (sh[i].sh_type == SHT_NOBITS)
                                continue;
                        if (section_is_dwarf(whole.data, &sh[i], &sh[eh->e_shstrndx]))
                                dwarf += sh[i].sh_size;
                        else
                                differ += memcmp(o.data + sh[i].sh_offset, whole.data + sh[i].sh_offset,
                                                 sh[i].sh_size) != 0;
                }
                tap_is_int(differ, 0, "every non-DWARF section is the file's (DWARF: %zu bytes)", dwarf);
                tap_ok(o.hole_bytes <= dwarf + whole.size / 16, "what is left out is DWARF (and small gaps)");
                tap_is_int(loader_check_elf(o.data, o.size, key_sparse, &f), 0, "the ELF check passes");
                tap_is_int(loader_check_elf(whole.data, whole.size, key_whole, &f), 0, "on the whole file too");
                tap_is_str(key_sparse, key_whole, "the plan key is the whole file's");
                tap_is_int(loader_read_holes(fd, &o), 0, "the rest read");
                tap_ok(o.n_holes == 0 && o.size == whole.size && memcmp(o.data, whole.data, whole.size) == 0,
                       "then the buffer is the whole file");

                /* What a later load compares instead of reading: every byte but DWARF. */
                {
                        size_t btf = 0, debug = 0;
                        char byte;

                        for (size_t i = 1; i < eh->e_shnum; i++) {
                                const char *name = (const char *) whole.data + sh[eh->e_shstrndx].sh_offset + sh[i].sh_name;

                                if (strcmp(name, ".BTF") == 0)
                                        btf = sh[i].sh_offset + sh[i].sh_size / 2;
                                else if (strcmp(name, ".debug_str") == 0)
                                        debug = sh[i].sh_offset + sh[i].sh_size / 2;
                        }
                        tap_is_int(loader_file_holds(fd, &o), 1, "the file holds the bytes read");
                        {
                                uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
                                size_t n = o.n_filled, zero_pages = 0, pages = 0;
                                _cleanup_free_ char *zero_page = calloc(1, page);

                                loader_forget_holes(&o);
                                for (size_t h = 0; zero_page && h < o.n_holes; h++)
                                        for (uint64_t p = (o.holes[h].off + page - 1) / page * page;
                                             p + page <= o.holes[h].off + o.holes[h].len; p += page) {
                                                pages++;
                                                zero_pages += memcmp(o.data + p, zero_page, page) == 0;
                                        }
                                tap_ok(n > 0 && o.n_holes == n && o.n_filled == 0 && pages > 0 && zero_pages == pages,
                                       "DWARF forgotten once hashed: %zu of its pages given back", zero_pages);
                        }
                        tap_is_int(loader_file_holds(fd, &o), 1, "and the file still holds the rest");
                        byte = (char) (whole.data[debug] ^ 0x5a);
                        tap_ok(debug && pwrite(fd, &byte, 1, (off_t) debug) == 1 && loader_file_holds(fd, &o) == 1,
                               "a byte of .debug_str changed: still (DWARF is not compared)");
                        byte = (char) (whole.data[btf] ^ 0x5a);
                        tap_ok(btf && pwrite(fd, &byte, 1, (off_t) btf) == 1 && loader_file_holds(fd, &o) == 0,
                               "a byte of .BTF changed: no more");
                        tap_ok(pwrite(fd, whole.data + btf, 1, (off_t) btf) == 1 && loader_file_holds(fd, &o) == 1,
                               "changed back: again");
                        tap_ok(ftruncate(fd, (off_t) whole.size - 1) == 0 && loader_file_holds(fd, &o) == 0,
                               "one byte shorter: no more");
                }
                loader_read_done(&o);
                failure_done(&f);

                /* Headers that lie: each is read whole, and the check names the problem. */
                {
                        uint8_t *bad = malloc(whole.size);
                        Elf64_Ehdr *beh = (Elf64_Ehdr *) bad;
                        Elf64_Shdr *bsh;
                        const struct {
                                const char *what;
                                void (*patch)(uint8_t *d, Elf64_Ehdr *e, Elf64_Shdr *s, size_t size);
                                bool invalid; /* some are valid ELF for libelf, only not read in parts */
                        } cases[] = {
                                { "section headers past the end", patch_shoff_past_end, true },
                                { "a section past the end", patch_section_past_end, true },
                                { "names overlapping the section headers", patch_names_overlap, false },
                                { "not ELF", patch_not_elf, true },
                                { "section names not a string table", patch_names_not_strtab, false },
                        };

                        for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
                                int bfd;

                                memcpy(bad, whole.data, whole.size);
                                bsh = (Elf64_Shdr *) (bad + beh->e_shoff);
                                cases[c].patch(bad, beh, bsh, whole.size);
                                bfd = memfd_with(bad, whole.size);
                                tap_ok(loader_read(bfd, whole.size, &o) == 0 && o.n_holes == 0 &&
                                               memcmp(o.data, bad, whole.size) == 0,
                                       "%s: %s is read whole", names[k], cases[c].what);
                                if (cases[c].invalid)
                                        tap_ok(loader_check_elf(o.data, o.size, NULL, &f) < 0 && f.error,
                                               "and the check refuses it");
                                loader_read_done(&o);
                                failure_done(&f);
                                close(bfd);
                        }
                        free(bad);
                }
                /* Tables libbpf finds by type or index, named like DWARF: still read, still in the plan key. */
                {
                        uint8_t *renamed = malloc(whole.size);
                        Elf64_Ehdr *reh = (Elf64_Ehdr *) renamed;
                        Elf64_Shdr *rsh;
                        size_t symtab = 0, debug = 0, code = 0;
                        const char *as[] = { "the symbol table", "the section names", "a program's code" };

                        for (size_t i = 1; i < eh->e_shnum; i++) {
                                if (sh[i].sh_type == SHT_SYMTAB)
                                        symtab = i;
                                if (sh[i].sh_type == SHT_PROGBITS && section_is_dwarf(whole.data, &sh[i], &sh[eh->e_shstrndx]))
                                        debug = i;
                                if (sh[i].sh_type == SHT_PROGBITS && (sh[i].sh_flags & SHF_EXECINSTR) && sh[i].sh_size > 0)
                                        code = i;
                        }
                        for (size_t c = 0; c < ELEMENTSOF(as); c++) {
                                char key_a[LOADER_DIGEST_MAX] = "", key_b[LOADER_DIGEST_MAX] = "";
                                size_t t = c == 0 ? symtab : c == 1 ? eh->e_shstrndx : code, holes_over = 0;
                                uint8_t *flipped;
                                int rfd;

                                if (!symtab || !debug || !code) {
                                        tap_ok(false, "%s has a symbol table, code and DWARF", names[k]);
                                        break;
                                }
                                memcpy(renamed, whole.data, whole.size);
                                rsh = (Elf64_Shdr *) (renamed + reh->e_shoff);
                                rsh[t].sh_name = rsh[debug].sh_name;
                                /* Code: with no relocation section pointing at it either (kept for being code). */
                                for (size_t i = 1; t == code && i < reh->e_shnum; i++)
                                        if (rsh[i].sh_type == SHT_REL && rsh[i].sh_info == t)
                                                rsh[i].sh_info = 0;
                                rfd = memfd_with(renamed, whole.size);
                                tap_is_int(loader_read(rfd, whole.size, &o), 0, "%s: %s named like DWARF is read",
                                           names[k], as[c]);
                                for (size_t h = 0; h < o.n_holes; h++)
                                        holes_over += o.holes[h].off < rsh[t].sh_offset + rsh[t].sh_size &&
                                                      rsh[t].sh_offset < o.holes[h].off + o.holes[h].len;
                                tap_ok(holes_over == 0 && memcmp(o.data + rsh[t].sh_offset, renamed + rsh[t].sh_offset,
                                                                 rsh[t].sh_size) == 0,
                                       "no hole covers it, its bytes are the file's");
                                tap_is_int(loader_check_elf(o.data, o.size, key_a, &f), 0, "the ELF check passes");
                                loader_read_done(&o);
                                close(rfd);
                                /* A byte of it changed: another plan. */
                                flipped = malloc(whole.size);
                                memcpy(flipped, renamed, whole.size);
                                flipped[rsh[t].sh_offset + rsh[t].sh_size - 2] ^= 0x5a;
                                loader_check_elf(flipped, whole.size, key_b, &f);
                                tap_ok(key_a[0] && strcmp(key_a, key_b) != 0, "and in the plan key (a byte of it changed: "
                                                                             "another key)");
                                free(flipped);
                                failure_done(&f);
                        }
                        free(renamed);
                }
                close(fd);
                free(whole.data);
        }
}

static int run(int argc, char **argv) {
        _cleanup_free_ char *probe = NULL;

        if (!objects_dir() || asprintf(&probe, "%s/planner-fields.bpf.o", objects_dir()) < 0 ||
            access(probe, R_OK) < 0)
                tap_skip_all("the test BPF objects were not built (clang-19, bpftool, kernel BTF)");
        elf_version(EV_CURRENT);
        return tap_run(argc, argv);
}

int main(int argc, char **argv) {
        return run(argc, argv);
}
