/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The object intake, as the daemon takes a Load (daemon/methods.c,
 * intake_plan, and the parser worker): loader_check_elf(), then the CO-RE
 * planner (ELF, symbols, .BTF, .BTF.ext, access strings, candidates) against
 * a small fixed target BTF made here, a vmlinux and a module on it, with
 * the types the test objects relocate against in layouts of their own, so
 * the planner walks, matches and rejects candidates. Nothing is loaded.
 *
 * Checked: a refusal has a reason, every relocation has a known kind and
 * is either resolved or explained, and the minimal BTF handed to libbpf
 * parses back.
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gelf.h>
#include <linux/btf.h>
#include <string.h>

#include "fuzz.h"
#include "loader.h"
#include "planner.h"

typedef struct Targets {
        struct btf *vmlinux, *module;
        CoreTarget t[2];
        CoreCandidate *found;
        size_t n_found, n_alloc;
} Targets;

static Targets targets;

/* A linear scan, as tests/test-planner.c does: the target BTF has a few dozen types. */
static int lookup(void *userdata, const char *name, size_t len, const CoreCandidate **ret, size_t *ret_n) {
        Targets *ts = userdata;

        ts->n_found = 0;
        for (size_t k = 0; k < ELEMENTSOF(ts->t); k++) {
                const struct btf *btf = ts->t[k].btf, *base = btf__base_btf(btf);

                for (uint32_t id = base ? btf__type_cnt(base) : 1; id < btf__type_cnt(btf); id++) {
                        const char *n = btf__name_by_offset(btf, btf__type_by_id(btf, id)->name_off);

                        if (!n || core_essential_name_len(n) != len || strncmp(n, name, len) != 0)
                                continue;
                        if (ts->n_found == ts->n_alloc) {
                                size_t want = ts->n_alloc ? 2 * ts->n_alloc : 16;
                                CoreCandidate *f = reallocarray(ts->found, want, sizeof(CoreCandidate));

                                if (!f)
                                        return -ENOMEM;
                                ts->found = f;
                                ts->n_alloc = want;
                        }
                        ts->found[ts->n_found++] = (CoreCandidate) { &ts->t[k], id };
                }
        }
        *ret = ts->found;
        *ret_n = ts->n_found;
        return 0;
}

/* Members follow their struct: every type a member uses is made before the struct. */
static void field(struct btf *b, const char *name, int type, uint32_t bit_offset, uint32_t bits) {
        FUZZ_CHECK(type > 0 && btf__add_field(b, name, type, bit_offset, bits) == 0);
}

typedef struct Base {
        int i32, u16, u32, i64, u64, u64l, chr, chr16;
} Base;

/* task_struct and what tp_core.bpf.c and many_core.bpf.c read through it; numa_faults_locality missing. */
static void add_task_struct(struct btf *b, const Base *t) {
        int kuid, cred, mm, files, signal, ptask, pcred, pmm, pfiles, psignal;

        kuid = btf__add_struct(b, "kuid_t", 4);
        field(b, "val", t->u32, 0, 0);
        cred = btf__add_struct(b, "cred", 24);
        field(b, "usage", t->i64, 0, 0);
        field(b, "uid", kuid, 64, 0);
        field(b, "gid", kuid, 96, 0);
        mm = btf__add_struct(b, "mm_struct", 64);
        field(b, "hiwater_rss", t->u64l, 128, 0);
        field(b, "total_vm", t->u64l, 256, 0);
        files = btf__add_struct(b, "files_struct", 16);
        field(b, "count", t->i32, 0, 0);
        field(b, "next_fd", t->u32, 64, 0);
        signal = btf__add_struct(b, "signal_struct", 32);
        field(b, "nr_threads", t->i32, 96, 0);
        /* The pointer to task_struct is made ahead of it. */
        pcred = btf__add_ptr(b, cred);
        pmm = btf__add_ptr(b, mm);
        pfiles = btf__add_ptr(b, files);
        psignal = btf__add_ptr(b, signal);
        ptask = btf__add_ptr(b, (int) btf__type_cnt(b) + 1);
        btf__add_struct(b, "task_struct", 256);
        field(b, "flags", t->u32, 32, 0);
        field(b, "prio", t->i32, 64, 0);
        field(b, "pid", t->i32, 512, 0);
        field(b, "tgid", t->i32, 544, 0);
        field(b, "real_parent", ptask, 576, 0);
        field(b, "exit_code", t->i32, 640, 0);
        field(b, "start_time", t->u64, 704, 0);
        field(b, "cred", pcred, 768, 0);
        field(b, "mm", pmm, 832, 0);
        field(b, "files", pfiles, 896, 0);
        field(b, "signal", psignal, 960, 0);
        field(b, "comm", t->chr16, 1024, 0);
}

/* struct task of tests/bpf/planner/fields.bpf.c, moved about, and a flavor that disagrees on pid. */
static void add_task(struct btf *b, const Base *t, const char *name, uint32_t pid_off) {
        int inner, anon_s, anon_u, tail, ptask;

        inner = btf__add_struct(b, "inner", 8);
        field(b, "x", t->i32, 0, 0);
        field(b, "y", t->u16, 32, 0);
        anon_s = btf__add_struct(b, NULL, 8);
        field(b, "a1", t->i32, 32, 0);
        field(b, "a2", t->i32, 0, 0);
        anon_u = btf__add_union(b, NULL, 8);
        field(b, "u1", t->i64, 0, 0);
        field(b, NULL, anon_s, 0, 0);
        tail = btf__add_array(b, t->i32, t->i32, 0);
        ptask = btf__add_ptr(b, (int) btf__type_cnt(b) + 1);
        btf__add_struct(b, name, 128);
        field(b, "pid", t->i32, pid_off, 0);
        field(b, "tgid", t->i64, 64, 0);
        field(b, "parent", ptask, 128, 0);
        field(b, "in", inner, 192, 0);
        field(b, "comm", t->chr16, 256, 0);
        field(b, NULL, anon_u, 384, 0);
        field(b, "flag1", t->u32, 448, 3);
        field(b, "flag2", t->u32, 451, 7);
        field(b, "big", t->u64, 512, 40);
        field(b, "count", t->u64l, 576, 0);
        field(b, "tail", tail, 640, 0);
}

/* What the other objects of tests/bpf/ and tests/bpf/planner/ name. */
static void add_others(struct btf *b, const Base *t) {
        int rec, prec, mode, pair, anon, loopy;

        rec = btf__add_struct(b, "rec", 24);
        field(b, "a", t->i32, 0, 0);
        field(b, "b", t->i64, 64, 0);
        field(b, "c", t->i32, 128, 0);
        btf__add_typedef(b, "rec_t", rec);
        prec = btf__add_ptr(b, rec);
        btf__add_union(b, "num", 8);
        field(b, "l", t->i64, 0, 0);
        mode = btf__add_enum(b, NULL, 4);
        btf__add_enum_value(b, "MM_Y", 1);
        btf__add_enum_value(b, "MM_X", 0);
        pair = btf__add_struct(b, "pair", 8);
        field(b, "y", t->i32, 0, 0);
        field(b, "x", t->i32, 32, 0);
        anon = btf__add_union(b, NULL, 4);
        field(b, "u", t->i32, 0, 0);
        btf__add_struct(b, "matchme", 40);
        field(b, "a", t->i32, 0, 0);
        field(b, "b", t->u16, 32, 0);
        field(b, "next", prec, 64, 0);
        field(b, "mode", mode, 128, 0);
        field(b, "pr", pair, 160, 0);
        field(b, NULL, anon, 224, 0);
        btf__add_enum(b, "state", 4);
        btf__add_enum_value(b, "ST_IDLE", 0);
        btf__add_enum_value(b, "ST_RUN", 3);
        btf__add_enum64(b, "big64", 8, true);
        btf__add_enum64_value(b, "BIG_HI", 0x300000000ull);
        btf__add_struct(b, "proc", 16);
        field(b, "pid", t->i32, 0, 0);
        field(b, "modern", t->i64, 64, 0);
        btf__add_struct(b, "dup", 8);
        field(b, "a", t->i32, 0, 0);
        field(b, "b", t->i32, 32, 0);
        btf__add_struct(b, "dup___2", 12);
        field(b, "a", t->i32, 0, 0);
        field(b, "b", t->i32, 64, 0);
        loopy = btf__add_typedef(b, "loopy_t", t->i32);
        btf__add_struct(b, "bad", 8);
        field(b, "via_typedef", loopy, 32, 0);
        btf__add_struct(b, "bpfcored_app_conf", 16);
        field(b, "version", t->i32, 0, 0);
        field(b, "limit", t->i64, 64, 0);
        btf__add_struct(b, "shared", 8);
        field(b, "s", t->i32, 32, 0);
        btf__add_struct(b, "xdp_md", 24);
        field(b, "data_end", t->u32, 0, 0);
        field(b, "data", t->u32, 32, 0);
        btf__add_struct(b, "pt_regs", 168);
        field(b, "si", t->u64l, 832, 0);
        field(b, "di", t->u64l, 896, 0);
}

static void build_targets(Targets *ts) {
        struct btf *b = btf__new_empty(), *m;
        Base t;

        FUZZ_CHECK(b);
        t.i32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
        t.u16 = btf__add_int(b, "unsigned short", 2, 0);
        t.u32 = btf__add_int(b, "unsigned int", 4, 0);
        t.i64 = btf__add_int(b, "long", 8, BTF_INT_SIGNED);
        t.u64 = btf__add_int(b, "unsigned long long", 8, 0);
        t.u64l = btf__add_int(b, "unsigned long", 8, 0);
        t.chr = btf__add_int(b, "char", 1, BTF_INT_SIGNED);
        t.chr16 = btf__add_array(b, t.i32, t.chr, 16);
        add_task_struct(b, &t);
        add_task(b, &t, "task", 0);
        add_task(b, &t, "task___2", 32);
        add_others(b, &t);

        /* A module: a type only it has, and one vmlinux has too (vmlinux wins). */
        m = btf__new_empty_split(b);
        FUZZ_CHECK(m);
        btf__add_struct(m, "modstruct", 12);
        field(m, "m1", t.i32, 0, 0);
        field(m, "m2", t.i32, 64, 0);
        btf__add_struct(m, "shared", 4);
        field(m, "s", t.i32, 0, 0);

        ts->vmlinux = b;
        ts->module = m;
        ts->t[0] = (CoreTarget) { .name = "vmlinux", .btf = b, .primary = true };
        ts->t[1] = (CoreTarget) { .name = "mod", .btf = m, .primary = false };
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap) {
        return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* libbpf complains about every malformed .BTF it is given. */
        libbpf_set_print(quiet);
        elf_version(EV_CURRENT);
        build_targets(&targets);
        return 0;
}

static void check_plan(const CorePlan *plan) {
        for (size_t i = 0; i < plan->n_relocations; i++) {
                const CoreRelocation *r = &plan->relocations[i];

                FUZZ_CHECK(r->kind && core_kind_name(r->kind) == r->kind);
                FUZZ_CHECK(r->ok || r->error);
        }
        if (plan->min_btf) {
                uint32_t size = 0;
                const void *raw = btf__raw_data(plan->min_btf, &size);
                struct btf *back;

                /* The worker sends these bytes, the daemon writes them for libbpf's btf_custom_path. */
                FUZZ_CHECK(raw && size > 0);
                back = btf__new(raw, size);
                FUZZ_CHECK(back);
                FUZZ_CHECK(btf__type_cnt(back) == btf__type_cnt(plan->min_btf));
                btf__free(back);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *elf = NULL;
        _cleanup_free_ char *error = NULL;
        CorePlan *plan = NULL;
        Failure f = {};
        int r;

        if (size > FUZZ_INPUT_MAX)
                return -1;
        /* A buffer of exactly the object's size, as the daemon reads it from the client's fd. */
        elf = malloc(size ?: 1);
        FUZZ_CHECK(elf);
        memcpy(elf, data, size);

        char plan_key[LOADER_DIGEST_MAX];

        r = loader_check_elf(elf, size, plan_key, &f);
        if (r < 0) {
                FUZZ_CHECK(f.error);
                failure_done(&f);
                return 0;
        }
        FUZZ_CHECK(!f.error);

        r = core_plan(elf, size, lookup, &targets, &plan, &error);
        if (r < 0) {
                FUZZ_CHECK(!plan);
                FUZZ_CHECK(r != -EBADMSG || error);
                return 0;
        }
        FUZZ_CHECK(plan);
        check_plan(plan);
        core_plan_free(plan);
        return 0;
}
