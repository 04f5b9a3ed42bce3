/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Load's "globals" ({"var": value, ...}) encoded by globals_encode() against
 * a fixed hand-built BTF: each member names a variable of a type below. The
 * variable is a buffer of exactly the type's size, so the sanitizers see a
 * write past it. Checked: a refusal has a message and leaves the variable
 * untouched, as globals_apply() relies on.
 */
#include <bpf/btf.h>
#include <linux/btf.h>
#include <string.h>

#include "fuzz.h"
#include "globals.h"
#include "params.h"
#include "varlink-io.h"

typedef struct Variable {
        const char *name;
        int type;
} Variable;

static struct btf *btf;
static Variable vars[24];
static size_t n_vars;

/* Members follow their struct: every type a member uses is made before the struct. */
static void field(struct btf *b, const char *name, int type, uint32_t bit_offset, uint32_t bits) {
        FUZZ_CHECK(type > 0 && btf__add_field(b, name, type, bit_offset, bits) == 0);
}

static void var(const char *name, int type) {
        FUZZ_CHECK(type > 0 && n_vars < ELEMENTSOF(vars));
        vars[n_vars++] = (Variable) { name, type };
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        int u8, s16, u32, s64, u64, b, chr, comm, mode, neg, e64, dbl, pair, arr, ptr, pid, cpid, nest, grid,
                flex, fwd, un, vol, pairs, items;

        btf = btf__new_empty();
        FUZZ_CHECK(btf);
        u8 = btf__add_int(btf, "unsigned char", 1, 0);
        s16 = btf__add_int(btf, "short", 2, BTF_INT_SIGNED);
        u32 = btf__add_int(btf, "unsigned int", 4, 0);
        s64 = btf__add_int(btf, "long long", 8, BTF_INT_SIGNED);
        u64 = btf__add_int(btf, "unsigned long long", 8, 0);
        b = btf__add_int(btf, "_Bool", 1, BTF_INT_BOOL);
        chr = btf__add_int(btf, "char", 1, BTF_INT_SIGNED | BTF_INT_CHAR);
        comm = btf__add_array(btf, u32, chr, 16);
        mode = btf__add_enum(btf, "mode", 4);
        btf__add_enum_value(btf, "MODE_A", 0);
        btf__add_enum_value(btf, "MODE_B", 7);
        neg = btf__add_enum(btf, "signed_mode", 1);
        btf__add_enum_value(btf, "NEG", -3);
        e64 = btf__add_enum64(btf, "big", 8, false);
        btf__add_enum64_value(btf, "HUGE", 0xffffffff00000000ull);
        dbl = btf__add_float(btf, "double", 8);
        pair = btf__add_struct(btf, "pair", 16);
        field(btf, "a", u32, 0, 0);
        field(btf, "flags", u32, 32, 3);
        field(btf, "b", u64, 64, 0);
        arr = btf__add_array(btf, u32, u32, 3);
        ptr = btf__add_ptr(btf, u32);
        pid = btf__add_typedef(btf, "pid_t", u32);
        cpid = btf__add_const(btf, pid);
        vol = btf__add_volatile(btf, s16);
        grid = btf__add_array(btf, u32, btf__add_array(btf, u32, u8, 3), 2);
        un = btf__add_union(btf, "num", 8);
        field(btf, "i", u32, 0, 0);
        field(btf, "l", s64, 0, 0);
        pairs = btf__add_array(btf, u32, pair, 2);
        nest = btf__add_struct(btf, "config", 72);
        field(btf, "name", comm, 0, 0);
        field(btf, "pairs", pairs, 128, 0);
        field(btf, "mode", mode, 384, 0);
        field(btf, "on", b, 416, 0);
        field(btf, "grid", grid, 424, 0);
        field(btf, "num", un, 512, 0);
        items = btf__add_array(btf, u32, u32, 0);
        flex = btf__add_struct(btf, "flex", 4);
        field(btf, "n", u32, 0, 0);
        field(btf, "items", items, 32, 0);
        fwd = btf__add_fwd(btf, "opaque", BTF_FWD_STRUCT);

        var("u8", u8);
        var("s16", s16);
        var("u32", u32);
        var("s64", s64);
        var("u64", u64);
        var("bool", b);
        var("comm", comm);
        var("mode", mode);
        var("neg", neg);
        var("big", e64);
        var("double", dbl);
        var("pair", pair);
        var("arr", arr);
        var("ptr", ptr);
        var("pid", cpid);
        var("vol", vol);
        var("grid", grid);
        var("num", un);
        var("config", nest);
        var("flex", flex);
        var("opaque", fwd);
        return 0;
}

static void encode_one(const Variable *v, json_object *value) {
        _cleanup_free_ uint8_t *dst = NULL, *before = NULL;
        _cleanup_free_ char *message = NULL;
        int64_t sz = btf__resolve_size(btf, (uint32_t) v->type);
        size_t size = sz > 0 ? (size_t) sz : 0;
        int r;

        dst = malloc(size ?: 1);
        before = malloc(size ?: 1);
        FUZZ_CHECK(dst && before);
        memset(dst, 0xa5, size);
        memcpy(before, dst, size);

        r = globals_encode(btf, (uint32_t) v->type, value, dst, size, &message);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || message);
                FUZZ_CHECK(memcmp(dst, before, size) == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_object_putp) json_object *globals = NULL;
        _cleanup_free_ char *text = NULL, *reason = NULL;

        if (size > FUZZ_INPUT_MAX)
                return -1;
        text = malloc(size + 1);
        FUZZ_CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;
        /* The value arrives inside a message: vl_parse() has capped its nesting. */
        if (vl_parse(text, size, &globals, &reason) < 0)
                return 0;
        json_object_object_foreach(globals, name, value) {
                for (size_t i = 0; i < n_vars; i++)
                        if (strcmp(vars[i].name, name) == 0)
                                encode_one(&vars[i], value);
        }
        return 0;
}
