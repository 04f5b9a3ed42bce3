/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of daemon/globals.c: JSON values checked and encoded against hand-built BTF. */
#include <bpf/btf.h>
#include <string.h>

#include "globals.h"
#include "tap.h"

static struct btf *btf;
static int t_u8, t_s16, t_u32, t_s64, t_u64, t_bool, t_char, t_comm, t_enum, t_senum, t_enum64, t_double,
        t_struct, t_arr, t_ptr, t_typedef, t_const;

TEST(build_btf) {
        btf = btf__new_empty();
        t_u8 = btf__add_int(btf, "unsigned char", 1, 0);
        t_s16 = btf__add_int(btf, "short", 2, BTF_INT_SIGNED);
        t_u32 = btf__add_int(btf, "unsigned int", 4, 0);
        t_s64 = btf__add_int(btf, "long long", 8, BTF_INT_SIGNED);
        t_u64 = btf__add_int(btf, "unsigned long long", 8, 0);
        t_bool = btf__add_int(btf, "_Bool", 1, BTF_INT_BOOL);
        t_char = btf__add_int(btf, "char", 1, BTF_INT_SIGNED | BTF_INT_CHAR);
        t_comm = btf__add_array(btf, t_u32, t_char, 16);
        t_enum = btf__add_enum(btf, "mode", 4);
        btf__add_enum_value(btf, "MODE_A", 0);
        btf__add_enum_value(btf, "MODE_B", 7);
        t_senum = btf__add_enum(btf, "signed_mode", 4);
        btf__add_enum_value(btf, "NEG", -3);
        t_enum64 = btf__add_enum64(btf, "big", 8, false);
        btf__add_enum64_value(btf, "HUGE", 0xffffffff00000000ull);
        t_double = btf__add_float(btf, "double", 8);
        t_struct = btf__add_struct(btf, "pair", 16);
        btf__add_field(btf, "a", t_u32, 0, 0);
        btf__add_field(btf, "flags", t_u32, 32, 3);
        btf__add_field(btf, "b", t_u64, 64, 0);
        t_arr = btf__add_array(btf, t_u32, t_u32, 3);
        t_ptr = btf__add_ptr(btf, t_u32);
        t_typedef = btf__add_typedef(btf, "pid_t", t_u32);
        t_const = btf__add_const(btf, t_typedef);
        tap_ok(btf && t_const > 0, "hand-built BTF");
}

typedef struct Case {
        const char *name;
        int *type;
        size_t size;
        const char *json;
        const char *want_hex; /* NULL: must be refused */
        const char *error;    /* a word the refusal must contain */
} Case;

static const Case cases[] = {
        { "u8 max", &t_u8, 1, "255", "ff" },
        { "u8 overflow", &t_u8, 1, "256", NULL, "out of range" },
        { "u8 negative", &t_u8, 1, "-1", NULL, "out of range" },
        { "s16 min", &t_s16, 2, "-32768", "0080" },
        { "s16 underflow", &t_s16, 2, "-32769", NULL, "out of range" },
        { "u32", &t_u32, 4, "4242", "92100000" },
        { "u32 from a string", &t_u32, 4, "\"4242\"", NULL, "integer" },
        { "u32 from a bool", &t_u32, 4, "true", NULL, "boolean" },
        { "u32 from a double", &t_u32, 4, "1.5", NULL, "integer" },
        { "s64 negative", &t_s64, 8, "-2", "feffffffffffffff" },
        { "u64 above INT64_MAX", &t_u64, 8, "18446744073709551615", "ffffffffffffffff" },
        { "s64 above INT64_MAX", &t_s64, 8, "9223372036854775808", NULL, "out of range" },
        { "bool true", &t_bool, 1, "true", "01" },
        { "bool 0", &t_bool, 1, "0", "00" },
        { "bool 2", &t_bool, 1, "2", NULL, "out of range" },
        { "char array", &t_comm, 16, "\"bash\"", "62617368000000000000000000000000" },
        { "char array full", &t_comm, 16, "\"0123456789abcde\"", "3031323334353637383961626364650" "0" },
        { "char array overflow", &t_comm, 16, "\"0123456789abcdef\"", NULL, "NUL" },
        { "char array from int", &t_comm, 16, "5", NULL, "array" },
        { "enum by name", &t_enum, 4, "\"MODE_B\"", "07000000" },
        { "enum by value", &t_enum, 4, "7", "07000000" },
        { "enum unknown name", &t_enum, 4, "\"MODE_Z\"", NULL, "enumerator" },
        { "signed enum by name", &t_senum, 4, "\"NEG\"", "fdffffff" },
        { "enum64 by name", &t_enum64, 8, "\"HUGE\"", "00000000ffffffff" },
        { "double", &t_double, 8, "1.5", "000000000000f83f" },
        { "struct by members", &t_struct, 16, "{\"a\":1,\"b\":2}", "01000000000000000200000000000000" },
        { "struct unknown member", &t_struct, 16, "{\"c\":1}", NULL, "no member" },
        { "struct bitfield member", &t_struct, 16, "{\"flags\":1}", NULL, "bitfield" },
        { "array of u32", &t_arr, 12, "[1,2]", "010000000200000000000000" },
        { "array too long", &t_arr, 12, "[1,2,3,4]", NULL, "elements" },
        { "typedef'd const u32", &t_const, 4, "9", "09000000" },
        { "hex", &t_ptr, 8, "{\"hex\":\"0102030405060708\"}", "0102030405060708" },
        { "hex wrong size", &t_u32, 4, "{\"hex\":\"01\"}", NULL, "bytes" },
        { "hex bad digit", &t_u32, 4, "{\"hex\":\"0102030g\"}", NULL, "hex digit" },
        { "pointer from int", &t_ptr, 8, "1", NULL, "hex" },
};

static void to_hex(const uint8_t *b, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", b[i]);
}

TEST(encode) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const Case *c = &cases[i];
                json_object *v = json_tokener_parse(c->json);
                uint8_t buf[32];
                char hex[65] = "";
                char *msg = NULL;
                int r;

                memset(buf, 0xaa, sizeof(buf));
                r = globals_encode(btf, (uint32_t) *c->type, v, buf, c->size, &msg);
                if (c->want_hex) {
                        to_hex(buf, c->size, hex);
                        if (!tap_ok(r == 0 && strcmp(hex, c->want_hex) == 0, "%s encodes as %s", c->name,
                                    c->want_hex))
                                tap_diag("r=%d got %s (%s)", r, hex, msg ?: "");
                } else {
                        bool untouched = true;

                        for (size_t k = 0; k < c->size; k++)
                                untouched = untouched && buf[k] == 0xaa;
                        if (!tap_ok(r < 0 && msg && strstr(msg, c->error), "%s is refused (\"%s\")", c->name,
                                    c->error))
                                tap_diag("r=%d message: %s", r, msg ?: "(none)");
                        tap_ok(untouched, "%s leaves the variable untouched", c->name);
                }
                free(msg);
                json_object_put(v);
        }
        btf__free(btf);
}

TAP_MAIN
