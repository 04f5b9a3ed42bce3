/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "map-codec.h"
#include "params.h"

/* Deeper than any C type a map holds; bounds the recursion over kernel-supplied BTF. */
#define CODEC_MAX_DEPTH 32

struct MapCodec {
        struct btf *btf;        /* NULL: the map has no BTF */
        uint32_t key_type_id;   /* 0: the key is hex */
        uint32_t value_type_id; /* 0: the value is hex */
        uint32_t map_type;
        uint32_t max_entries;
        size_t key_size;
        size_t value_size;   /* one value, one CPU's for per-CPU maps */
        size_t value_stride; /* per-CPU maps: value_size rounded up to 8, as the kernel lays them out */
        unsigned n_values;   /* per-CPU maps: possible CPUs; otherwise 1 */
        bool per_cpu;
};

/* An integer of up to 128 bits. */
typedef struct Bits128 {
        uint64_t lo, hi;
} Bits128;

/* Where a member lies in its struct: a scalar by its bits, anything else by whole bytes. */
typedef struct Place {
        uint32_t type_id;
        const struct btf_type *t; /* resolved */
        size_t size;              /* of the resolved type */
        size_t bit_off;
        unsigned nbits; /* scalars (int, enum, pointer), bitfields included; 0 otherwise */
} Place;

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static bool is_per_cpu(uint32_t map_type) {
        return map_type == BPF_MAP_TYPE_PERCPU_HASH || map_type == BPF_MAP_TYPE_PERCPU_ARRAY ||
               map_type == BPF_MAP_TYPE_LRU_PERCPU_HASH || map_type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* The bit of its byte that BTF bit p (counted from the start of the value) is. */
static unsigned byte_bit(size_t p) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return 7 - p % 8; /* big-endian BTF counts from the most significant bit */
#else
        return p % 8;
#endif
}

/* The BTF bit holding bit i (0: the least significant) of an nbits-wide field at off. */
static size_t field_bit(size_t off, unsigned nbits, unsigned i) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return off + nbits - 1 - i;
#else
        return off + i;
#endif
}

static Bits128 get_bits(const uint8_t *data, size_t off, unsigned nbits) {
        Bits128 v = {};

        for (unsigned i = 0; i < nbits; i++) {
                size_t p = field_bit(off, nbits, i);

                if (!(data[p / 8] >> byte_bit(p) & 1))
                        continue;
                if (i < 64)
                        v.lo |= UINT64_C(1) << i;
                else
                        v.hi |= UINT64_C(1) << (i - 64);
        }
        return v;
}

static void put_bits(uint8_t *data, size_t off, unsigned nbits, Bits128 v) {
        for (unsigned i = 0; i < nbits; i++) {
                size_t p = field_bit(off, nbits, i);
                uint8_t mask = (uint8_t) (1u << byte_bit(p));
                bool set = (i < 64 ? v.lo >> i : v.hi >> (i - 64)) & 1;

                data[p / 8] = set ? data[p / 8] | mask : data[p / 8] & ~mask;
        }
}

static int64_t sign_extend(uint64_t v, unsigned nbits) {
        return nbits >= 64 ? (int64_t) v : (int64_t) (v << (64 - nbits)) >> (64 - nbits);
}

static bool is_scalar(const struct btf_type *t) {
        return btf_is_int(t) || btf_is_any_enum(t) || btf_is_ptr(t);
}

static bool scalar_signed(const struct btf_type *t) {
        if (btf_is_int(t))
                return btf_int_encoding(t) & BTF_INT_SIGNED;
        if (btf_is_any_enum(t))
                return btf_kflag(t);
        return false;
}

static bool is_bool(const struct btf_type *t) {
        return btf_is_int(t) && btf_int_encoding(t) & BTF_INT_BOOL;
}

/* The bits a scalar of size bytes occupies from its start; an int may carry an offset and width. */
static bool scalar_geometry(const struct btf_type *t, size_t size, size_t *ret_off, unsigned *ret_nbits) {
        size_t off = 0;
        unsigned nbits;

        if (btf_is_int(t)) {
                off = btf_int_offset(t);
                nbits = btf_int_bits(t);
        } else {
                if (size > 16)
                        return false;
                nbits = (unsigned) size * 8;
        }
        if (nbits == 0 || nbits > 128 || off + nbits > size * 8)
                return false;
        *ret_off = off;
        *ret_nbits = nbits;
        return true;
}

static bool member_place(const struct btf *btf, const struct btf_type *t, uint16_t i, Place *ret) {
        const struct btf_member *m = btf_members(t) + i;
        size_t bit_off = btf_member_bit_offset(t, i), own_off;
        unsigned bits = btf_member_bitfield_size(t, i), own_nbits;
        int id = btf__resolve_type(btf, m->type);
        const struct btf_type *mt = id >= 0 ? btf__type_by_id(btf, (uint32_t) id) : NULL;
        __s64 msize = btf__resolve_size(btf, m->type);

        if (!mt || msize < 0)
                return false;
        *ret = (Place) { .type_id = m->type, .t = mt, .size = (size_t) msize, .bit_off = bit_off };
        /* Scalars go by their bits: bitfields and ints with an offset of their own (older BTF) alike. */
        if (is_scalar(mt) && scalar_geometry(mt, (size_t) msize, &own_off, &own_nbits)) {
                ret->bit_off += bits ? 0 : own_off;
                ret->nbits = bits ?: own_nbits;
                return ret->nbits <= 128 && ret->bit_off + ret->nbits <= (uint64_t) t->size * 8;
        }
        return bits == 0 && bit_off % 8 == 0 && bit_off / 8 + (uint64_t) msize <= t->size;
}

static bool members_fit(const struct btf *btf, const struct btf_type *t) {
        Place p;

        for (uint16_t i = 0; i < btf_vlen(t); i++)
                if (!member_place(btf, t, i, &p))
                        return false;
        return true;
}

static const char *member_name(const struct btf *btf, const struct btf_type *t, uint16_t i) {
        return btf__name_by_offset(btf, btf_members(t)[i].name_off) ?: "";
}

/* An anonymous struct or union, whose members C (and this codec) reach as the parent's own. */
static bool inlined(const char *name, const Place *p) {
        return !*name && p->nbits == 0 && btf_is_composite(p->t);
}

/* Finds member name in t and in its anonymous members; the place is relative to t's start. */
static bool find_member(const struct btf *btf, const struct btf_type *t, const char *name, unsigned depth,
                        Place *ret) {
        for (uint16_t i = 0; i < btf_vlen(t); i++) {
                const char *n = member_name(btf, t, i);
                Place p;

                if (!member_place(btf, t, i, &p))
                        continue;
                if (streq(n, name)) {
                        *ret = p;
                        return true;
                }
                if (inlined(n, &p) && depth < CODEC_MAX_DEPTH && members_fit(btf, p.t) &&
                    find_member(btf, p.t, name, depth + 1, ret)) {
                        ret->bit_off += p.bit_off;
                        return true;
                }
        }
        return false;
}

static const struct btf_var_secinfo *find_var(const struct btf *btf, const struct btf_type *sec,
                                              const char *name) {
        const struct btf_var_secinfo *vsi = btf_var_secinfos(sec);

        for (uint16_t i = 0; i < btf_vlen(sec); i++, vsi++) {
                const struct btf_type *var = btf__type_by_id(btf, vsi->type);

                if (var && btf_is_var(var) && streq(btf__name_by_offset(btf, var->name_off) ?: "", name))
                        return vsi;
        }
        return NULL;
}

/* Like bpftool: an array of a 1-byte int named "char", qualifiers skipped but not typedefs. */
static bool is_char_array(const struct btf *btf, const struct btf_array *a) {
        const struct btf_type *e = btf__type_by_id(btf, a->type);

        for (unsigned i = 0; e && btf_is_mod(e) && i < CODEC_MAX_DEPTH; i++)
                e = btf__type_by_id(btf, e->type);
        return e && btf_is_int(e) && e->size == 1 &&
               (btf_int_encoding(e) & BTF_INT_CHAR ||
                streq(btf__name_by_offset(btf, e->name_off) ?: "", "char"));
}

/* Printable up to a NUL that lies within n bytes. */
static bool is_printable_string(const uint8_t *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (s[i] == 0)
                        return true;
                if (s[i] < 0x20 || s[i] >= 0x7f)
                        return false;
        }
        return false;
}

static json_object *hex_json(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = malloc(size * 2 + 1);
        json_object *o, *h;

        if (!s)
                return NULL;
        hexlify(s, data, size);
        o = json_object_new_object();
        h = json_object_new_string(s);
        if (!o || !h || json_object_object_add(o, "hex", h) < 0) {
                json_object_put(h);
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* Like bpftool prints 128-bit integers: "0x" and the bits, no leading zeros. */
static json_object *wide_json(Bits128 v) {
        char s[2 + 32 + 1];

        if (v.hi)
                snprintf(s, sizeof(s), "0x%" PRIx64 "%016" PRIx64, v.hi, v.lo);
        else
                snprintf(s, sizeof(s), "0x%" PRIx64, v.lo);
        return json_object_new_string(s);
}

static uint64_t enumerator_value(const struct btf_type *t, uint16_t i) {
        if (btf_is_enum(t)) {
                int32_t v = btf_enum(t)[i].val;

                return btf_kflag(t) ? (uint64_t) (int64_t) v : (uint32_t) v;
        }
        return btf_enum64_value(btf_enum64(t) + i);
}

static const char *enumerator_name(const struct btf *btf, const struct btf_type *t, uint16_t i) {
        uint32_t name_off = btf_is_enum(t) ? btf_enum(t)[i].name_off : btf_enum64(t)[i].name_off;

        return btf__name_by_offset(btf, name_off) ?: "";
}

/* An int, enum or pointer of nbits at bit off of data. */
static json_object *decode_scalar(const struct btf *btf, const struct btf_type *t, const uint8_t *data,
                                  size_t off, unsigned nbits) {
        Bits128 v = get_bits(data, off, nbits);
        uint64_t u;

        if (is_bool(t))
                return json_object_new_boolean(v.lo || v.hi);
        if (nbits > 64)
                return wide_json(v);
        u = scalar_signed(t) ? (uint64_t) sign_extend(v.lo, nbits) : v.lo;
        if (btf_is_any_enum(t))
                for (uint16_t i = 0; i < btf_vlen(t); i++)
                        if (enumerator_value(t, i) == u)
                                return json_object_new_string(enumerator_name(btf, t, i));
        return scalar_signed(t) ? json_object_new_int64((int64_t) u) : json_object_new_uint64(u);
}

static json_object *decode(const struct btf *btf, uint32_t type_id, const uint8_t *data, size_t size,
                           unsigned depth);

/* Adds one decoded value, taking it; false when out of memory. */
static bool add_member(json_object *obj, const char *name, json_object *v) {
        if (!v)
                return false;
        if (json_object_object_add(obj, name, v) < 0) {
                json_object_put(v);
                return false;
        }
        return true;
}

static bool add_element(json_object *arr, json_object *v) {
        if (!v)
                return false;
        if (json_object_array_add(arr, v) < 0) {
                json_object_put(v);
                return false;
        }
        return true;
}

/* Adds t's members to obj, anonymous ones' inlined; -ENOMEM, or -EINVAL when the BTF does not fit. */
static int decode_members(const struct btf *btf, const struct btf_type *t, const uint8_t *data,
                          unsigned depth, json_object *obj) {
        if (depth > CODEC_MAX_DEPTH || !members_fit(btf, t))
                return -EINVAL;

        for (uint16_t i = 0; i < btf_vlen(t); i++) {
                const char *name = member_name(btf, t, i);
                Place p;
                int r;

                member_place(btf, t, i, &p);
                if (inlined(name, &p)) {
                        r = decode_members(btf, p.t, data + p.bit_off / 8, depth + 1, obj);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!*name) /* an unnamed bitfield is padding */
                        continue;
                if (!add_member(obj, name,
                                p.nbits ? decode_scalar(btf, p.t, data, p.bit_off, p.nbits)
                                        : decode(btf, p.type_id, data + p.bit_off / 8, p.size, depth + 1)))
                        return -ENOMEM;
        }
        return 0;
}

static json_object *decode_composite(const struct btf *btf, const struct btf_type *t, const uint8_t *data,
                                     unsigned depth) {
        json_object *obj = json_object_new_object();
        int r;

        if (!obj)
                return NULL;
        r = decode_members(btf, t, data, depth, obj);
        if (r < 0) {
                json_object_put(obj);
                return r == -ENOMEM ? NULL : hex_json(data, t->size);
        }
        return obj;
}

static json_object *decode_array(const struct btf *btf, const struct btf_type *t, const uint8_t *data,
                                 size_t size, unsigned depth) {
        const struct btf_array *a = btf_array(t);
        __s64 elem_size = btf__resolve_size(btf, a->type);
        json_object *arr;

        if (is_char_array(btf, a) && is_printable_string(data, a->nelems))
                return json_object_new_string((const char *) data);
        if (elem_size < 0)
                return hex_json(data, size);
        arr = json_object_new_array();
        if (!arr)
                return NULL;
        /* Elements of no bytes show nothing, and their count has no bound. */
        for (uint32_t i = 0; elem_size > 0 && i < a->nelems; i++)
                if (!add_element(arr, decode(btf, a->type, data + i * (size_t) elem_size, (size_t) elem_size,
                                             depth + 1))) {
                        json_object_put(arr);
                        return NULL;
                }
        return arr;
}

static json_object *decode_datasec(const struct btf *btf, const struct btf_type *t, const uint8_t *data,
                                   size_t size, unsigned depth) {
        const struct btf_var_secinfo *vsi = btf_var_secinfos(t);
        json_object *obj = json_object_new_object();

        if (!obj)
                return NULL;
        for (uint16_t i = 0; i < btf_vlen(t); i++, vsi++) {
                const struct btf_type *var = btf__type_by_id(btf, vsi->type);

                if (!var || !btf_is_var(var))
                        continue;
                if ((uint64_t) vsi->offset + vsi->size > size) {
                        json_object_put(obj);
                        return hex_json(data, size);
                }
                if (!add_member(obj, btf__name_by_offset(btf, var->name_off) ?: "",
                                decode(btf, var->type, data + vsi->offset, vsi->size, depth + 1))) {
                        json_object_put(obj);
                        return NULL;
                }
        }
        return obj;
}

static json_object *decode_float(const struct btf_type *t, const uint8_t *data) {
        double d;

        if (t->size == 4) {
                float f;

                memcpy(&f, data, sizeof(f));
                d = f;
        } else if (t->size == 8)
                memcpy(&d, data, sizeof(d));
        else
                return hex_json(data, t->size);
        /* JSON has no NaN or infinity. */
        return isfinite(d) ? json_object_new_double(d) : hex_json(data, t->size);
}

/* The value of type_id at data, which holds size bytes; what cannot be typed shows as hex. */
static json_object *decode(const struct btf *btf, uint32_t type_id, const uint8_t *data, size_t size,
                           unsigned depth) {
        const struct btf_type *t;
        __s64 tsize;
        size_t off;
        unsigned nbits;
        int id;

        if (type_id == 0)
                return hex_json(data, size);
        id = btf__resolve_type(btf, type_id);
        t = id >= 0 ? btf__type_by_id(btf, (uint32_t) id) : NULL;
        tsize = btf__resolve_size(btf, type_id);
        if (!t || tsize < 0 || (uint64_t) tsize > size || depth > CODEC_MAX_DEPTH)
                return hex_json(data, size);

        switch (btf_kind(t)) {
        case BTF_KIND_INT:
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64:
        case BTF_KIND_PTR:
                if (scalar_geometry(t, (size_t) tsize, &off, &nbits))
                        return decode_scalar(btf, t, data, off, nbits);
                break;
        case BTF_KIND_FLOAT:
                return decode_float(t, data);
        case BTF_KIND_ARRAY:
                return decode_array(btf, t, data, (size_t) tsize, depth);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                return decode_composite(btf, t, data, depth);
        case BTF_KIND_DATASEC:
                return decode_datasec(btf, t, data, (size_t) tsize, depth);
        }
        return hex_json(data, (size_t) tsize);
}

/* Encoding: the path to the JSON value at hand, for messages. */
typedef struct PathPart {
        const char *name; /* NULL: an index */
        size_t index;
} PathPart;

typedef struct Encoder {
        const struct btf *btf;
        const char *root; /* "key" or "value" */
        PathPart path[CODEC_MAX_DEPTH];
        unsigned depth;
        char **ret_message;
} Encoder;

/* "value.inner.ports[2]: <what>", -EINVAL. */
_printf_(2, 3) static int fail(Encoder *e, const char *fmt, ...) {
        _cleanup_free_ char *where = NULL, *what = NULL;
        size_t where_size = 0;
        FILE *f;
        va_list ap;

        if (!e->ret_message)
                return -EINVAL;
        *e->ret_message = NULL;
        f = open_memstream(&where, &where_size);
        if (!f)
                return -EINVAL;
        fputs(e->root, f);
        for (unsigned i = 0; i < e->depth; i++)
                if (e->path[i].name)
                        fprintf(f, ".%s", e->path[i].name);
                else
                        fprintf(f, "[%zu]", e->path[i].index);
        if (fclose(f) != 0)
                return -EINVAL;
        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        if (!what || asprintf(e->ret_message, "%s: %s", where, what) < 0)
                *e->ret_message = NULL;
        return -EINVAL;
}

static bool push(Encoder *e, const char *name, size_t index) {
        if (e->depth >= ELEMENTSOF(e->path))
                return false;
        e->path[e->depth++] = (PathPart) { name, index };
        return true;
}

static bool is_hex(json_object *j) {
        return json_object_is_type(j, json_type_object) && json_object_object_get_ex(j, "hex", NULL);
}

static int encode_hex(Encoder *e, json_object *j, uint8_t *dst, size_t size) {
        _cleanup_free_ char *msg = NULL;

        if (json_hex_decode(j, dst, size, &msg) < 0)
                return fail(e, "%s", msg ?: "invalid hex value");
        return 0;
}

/* "0x…", as bpftool prints 128-bit integers and bitfields. */
static bool parse_hex_number(const char *s, Bits128 *ret) {
        Bits128 v = {};
        size_t n = 0;

        if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2])
                return false;
        for (s += 2; *s == '0'; s++)
                ;
        for (; *s; s++, n++) {
                int d = hex_digit(*s);

                if (d < 0 || n >= 32)
                        return false;
                v.hi = v.hi << 4 | v.lo >> 60;
                v.lo = v.lo << 4 | (uint64_t) d;
        }
        *ret = v;
        return true;
}

/* A JSON integer (or an enumerator's value) that must fit nbits of the given signedness. */
static int integer_bits(Encoder *e, bool negative, uint64_t u, bool is_signed, unsigned nbits,
                        Bits128 *ret) {
        if (is_signed && nbits < 64) {
                int64_t min = -(INT64_C(1) << (nbits - 1)), max = -(min + 1);

                if ((negative && (int64_t) u < min) || (!negative && u > (uint64_t) max))
                        return fail(e, "out of range for a signed %u-bit integer (%" PRId64 "..%" PRId64 ")",
                                    nbits, min, max);
        } else if (is_signed && nbits == 64) {
                if (!negative && u > (uint64_t) INT64_MAX)
                        return fail(e, "out of range for a signed 64-bit integer");
        } else if (negative || (nbits < 64 && u >> nbits))
                return fail(e, "out of range for an unsigned %u-bit integer (0..%" PRIu64 ")", nbits,
                            nbits < 64 ? (UINT64_C(1) << nbits) - 1 : UINT64_MAX);
        /* Sign-extended into the high half for integers wider than 64 bits. */
        *ret = (Bits128) { u, negative ? UINT64_MAX : 0 };
        return 0;
}

static int encode_scalar(Encoder *e, const struct btf_type *t, json_object *j, uint8_t *dst, size_t off,
                         unsigned nbits) {
        bool is_signed = scalar_signed(t);
        Bits128 v;
        int64_t s;
        uint64_t u;
        int r;

        if (is_bool(t)) {
                if (json_object_is_type(j, json_type_boolean))
                        v = (Bits128) { json_object_get_boolean(j) };
                else if (json_get_uint64(j, &u) && u <= 1)
                        v = (Bits128) { u };
                else
                        return fail(e, "a bool takes true, false, 0 or 1");
        } else if (json_object_is_type(j, json_type_string) && btf_is_any_enum(t) &&
                   strncmp(json_object_get_string(j), "0x", 2) != 0) {
                const char *want = json_object_get_string(j);
                uint16_t i;

                for (i = 0; i < btf_vlen(t); i++)
                        if (streq(enumerator_name(e->btf, t, i), want))
                                break;
                if (i == btf_vlen(t))
                        return fail(e, "'%s' is not an enumerator of enum %s", want,
                                    btf__name_by_offset(e->btf, t->name_off) ?: "(anonymous)");
                u = enumerator_value(t, i);
                r = integer_bits(e, is_signed && (int64_t) u < 0, u, is_signed, nbits, &v);
                if (r < 0)
                        return r;
        } else if (json_object_is_type(j, json_type_string)) {
                if (!parse_hex_number(json_object_get_string(j), &v))
                        return fail(e, "expected an integer or a \"0x…\" string of its bits, got \"%s\"",
                                    json_object_get_string(j));
                if (nbits < 128 && (nbits < 64 ? v.hi || v.lo >> nbits : v.hi >> (nbits - 64)))
                        return fail(e, "%s has more than %u bits", json_object_get_string(j), nbits);
        } else if (json_get_int64(j, &s)) {
                r = integer_bits(e, s < 0, (uint64_t) s, is_signed, nbits, &v);
                if (r < 0)
                        return r;
        } else if (json_get_uint64(j, &u)) {
                r = integer_bits(e, false, u, is_signed, nbits, &v);
                if (r < 0)
                        return r;
        } else
                return fail(e, "expected %san integer or a \"0x…\" string, got %s",
                            btf_is_any_enum(t) ? "an enumerator, " : "",
                            json_type_to_name(json_object_get_type(j)));
        put_bits(dst, off, nbits, v);
        return 0;
}

static int encode_float(Encoder *e, const struct btf_type *t, json_object *j, uint8_t *dst) {
        if (!json_object_is_type(j, json_type_double) && !json_object_is_type(j, json_type_int))
                return fail(e, "expected a number, got %s", json_type_to_name(json_object_get_type(j)));
        if (t->size == 4) {
                float f = (float) json_object_get_double(j);

                memcpy(dst, &f, sizeof(f));
        } else if (t->size == 8) {
                double d = json_object_get_double(j);

                memcpy(dst, &d, sizeof(d));
        } else
                return fail(e, "a %u-byte float takes {\"hex\": \"...\"}", t->size);
        return 0;
}

static int encode(Encoder *e, uint32_t type_id, json_object *j, uint8_t *dst, size_t size);

/* Encodes j at a named member or an index, one level down. */
static int encode_at(Encoder *e, const char *name, size_t index, uint32_t type_id, json_object *j,
                     uint8_t *dst, size_t size) {
        int r;

        if (!push(e, name, index))
                return fail(e, "nested too deeply");
        r = encode(e, type_id, j, dst, size);
        e->depth--;
        return r;
}

static int encode_array(Encoder *e, const struct btf_type *t, json_object *j, uint8_t *dst) {
        const struct btf_array *a = btf_array(t);
        __s64 elem_size = btf__resolve_size(e->btf, a->type);
        int id = btf__resolve_type(e->btf, a->type);
        const struct btf_type *elem = id >= 0 ? btf__type_by_id(e->btf, (uint32_t) id) : NULL;

        if (!elem || elem_size < 0)
                return fail(e, "the array's BTF type is broken");

        if (json_object_is_type(j, json_type_string)) {
                const char *s = json_object_get_string(j);
                size_t len = (size_t) json_object_get_string_len(j);

                if (!btf_is_int(elem) || elem_size != 1)
                        return fail(e, "a string can only be stored in a char array");
                if (len >= a->nelems)
                        return fail(e, "string of %zu bytes too long for %s[%u]", len,
                                    btf__name_by_offset(e->btf, elem->name_off) ?: "char", a->nelems);
                if (memchr(s, 0, len))
                        return fail(e, "string contains a NUL byte");
                memset(dst, 0, a->nelems);
                memcpy(dst, s, len);
                return 0;
        }
        if (json_object_is_type(j, json_type_array)) {
                size_t n = json_object_array_length(j);

                if (n > a->nelems)
                        return fail(e, "%zu elements given, the array has %u", n, a->nelems);
                for (size_t i = 0; i < n; i++) {
                        int r = encode_at(e, NULL, i, a->type, json_object_array_get_idx(j, i),
                                          dst + i * (size_t) elem_size, (size_t) elem_size);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        return fail(e, "expected an array (or a string for a char array), got %s",
                    json_type_to_name(json_object_get_type(j)));
}

/* Takes bits [off, off + n) of src into dst; bits another member already wrote must not change. */
static bool merge_bits(uint8_t *dst, const uint8_t *src, uint8_t *written, size_t off, size_t n) {
        for (size_t p = off; p < off + n; p++) {
                uint8_t bit = (uint8_t) (1u << byte_bit(p));
                size_t b = p / 8;

                if (written[b] & bit && (dst[b] ^ src[b]) & bit)
                        return false;
                dst[b] = (uint8_t) ((dst[b] & ~bit) | (src[b] & bit));
                written[b] |= bit;
        }
        return true;
}

static int encode_composite(Encoder *e, const struct btf_type *t, json_object *j, uint8_t *dst) {
        _cleanup_free_ uint8_t *scratch = NULL, *written = NULL;
        const char *kind = btf_is_union(t) ? "union" : "struct";
        const char *tname = btf__name_by_offset(e->btf, t->name_off) ?: "";

        if (!json_object_is_type(j, json_type_object))
                return fail(e, "expected an object of %s %s's members, got %s", kind,
                            *tname ? tname : "(anonymous)", json_type_to_name(json_object_get_type(j)));
        if (!members_fit(e->btf, t))
                return fail(e, "the %s's BTF type is broken: use {\"hex\": \"...\"}", kind);

        /* Members given are encoded on a scratch copy, then merged: union members must agree. */
        scratch = malloc(t->size ?: 1);
        written = calloc(t->size ?: 1, 1);
        if (!scratch || !written)
                return -ENOMEM;

        json_object_object_foreach(j, key, v) {
                size_t lo, hi;
                Place p;
                int r;

                if (!find_member(e->btf, t, key, 0, &p))
                        return fail(e, "%s %s has no member '%s'", kind, *tname ? tname : "(anonymous)",
                                    key);
                lo = p.bit_off / 8;
                hi = (p.bit_off + (p.nbits ?: p.size * 8) + 7) / 8;
                memcpy(scratch + lo, dst + lo, hi - lo);
                if (!push(e, key, 0))
                        return fail(e, "nested too deeply");
                r = p.nbits ? encode_scalar(e, p.t, v, scratch, p.bit_off, p.nbits)
                            : encode(e, p.type_id, v, scratch + lo, p.size);
                if (r >= 0 && !merge_bits(dst, scratch, written, p.bit_off, p.nbits ?: p.size * 8))
                        r = fail(e, "disagrees with another member given for the same bytes");
                e->depth--;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int encode_datasec(Encoder *e, const struct btf_type *t, json_object *j, uint8_t *dst, size_t size) {
        const char *sec = btf__name_by_offset(e->btf, t->name_off) ?: "";

        if (!json_object_is_type(j, json_type_object))
                return fail(e, "expected an object of %s's variables, got %s", sec,
                            json_type_to_name(json_object_get_type(j)));
        json_object_object_foreach(j, key, v) {
                const struct btf_var_secinfo *vsi = find_var(e->btf, t, key);
                int r;

                if (!vsi)
                        return fail(e, "%s has no variable '%s'", sec, key);
                if ((uint64_t) vsi->offset + vsi->size > size)
                        return fail(e, "variable '%s' lies outside %s", key, sec);
                r = encode_at(e, key, 0, btf__type_by_id(e->btf, vsi->type)->type, v, dst + vsi->offset,
                              vsi->size);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Members named "hex" win over the {"hex": …} form. */
static bool has_hex_member(const struct btf *btf, const struct btf_type *t) {
        Place p;

        if (btf_is_composite(t))
                return members_fit(btf, t) && find_member(btf, t, "hex", 0, &p);
        return btf_is_datasec(t) && find_var(btf, t, "hex");
}

/* j as type_id into dst, which holds size bytes. */
static int encode(Encoder *e, uint32_t type_id, json_object *j, uint8_t *dst, size_t size) {
        const struct btf_type *t;
        __s64 tsize;
        size_t off;
        unsigned nbits;
        int id;

        if (type_id == 0) {
                if (!is_hex(j))
                        return fail(e, "no BTF type here: expected {\"hex\": \"...\"} of %zu bytes", size);
                return encode_hex(e, j, dst, size);
        }
        id = btf__resolve_type(e->btf, type_id);
        t = id >= 0 ? btf__type_by_id(e->btf, (uint32_t) id) : NULL;
        tsize = btf__resolve_size(e->btf, type_id);
        if (!t || tsize < 0 || (uint64_t) tsize > size) {
                /* The decoder shows such bytes as hex; take them back the same way. */
                if (!is_hex(j))
                        return fail(e, "the BTF type is broken: expected {\"hex\": \"...\"} of %zu bytes",
                                    size);
                return encode_hex(e, j, dst, size);
        }
        if (is_hex(j) && !has_hex_member(e->btf, t))
                return encode_hex(e, j, dst, (size_t) tsize);

        switch (btf_kind(t)) {
        case BTF_KIND_INT:
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64:
        case BTF_KIND_PTR:
                if (scalar_geometry(t, (size_t) tsize, &off, &nbits))
                        return encode_scalar(e, t, j, dst, off, nbits);
                break;
        case BTF_KIND_FLOAT:
                return encode_float(e, t, j, dst);
        case BTF_KIND_ARRAY:
                return encode_array(e, t, j, dst);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                return encode_composite(e, t, j, dst);
        case BTF_KIND_DATASEC:
                return encode_datasec(e, t, j, dst, (size_t) tsize);
        }
        return fail(e, "this type takes {\"hex\": \"...\"} of %zu bytes", (size_t) tsize);
}

/* The kernel checked, when the map was made, that the type's size is the key's or value's; if the BTF
 * says otherwise now, that part is not trusted and reads as hex. */
static uint32_t checked_type(const struct btf *btf, uint32_t type_id, uint32_t size) {
        return type_id != 0 && btf__resolve_size(btf, type_id) == (__s64) size ? type_id : 0;
}

int map_codec_new(int map_fd, MapCodec **ret) {
        _cleanup_(map_codec_freep) MapCodec *c = NULL;
        struct bpf_map_info info = {};
        uint32_t len = sizeof(info);
        int r;

        r = bpf_map_get_info_by_fd(map_fd, &info, &len);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->map_type = info.type;
        c->max_entries = info.max_entries;
        c->key_size = info.key_size;
        c->value_size = info.value_size;
        c->per_cpu = is_per_cpu(info.type);
        if (c->per_cpu) {
                r = libbpf_num_possible_cpus();
                if (r < 0)
                        return r;
                c->n_values = (unsigned) r;
                c->value_stride = (info.value_size + 7) / 8 * 8;
        } else {
                c->n_values = 1;
                c->value_stride = info.value_size;
        }

        /* struct_ops values are typed by vmlinux BTF (btf_vmlinux_value_type_id): they read as hex. */
        if (info.btf_id != 0 && (info.btf_key_type_id != 0 || info.btf_value_type_id != 0)) {
                c->btf = btf__load_from_kernel_by_id(info.btf_id);
                if (!c->btf)
                        return negative_errno();
                c->key_type_id = checked_type(c->btf, info.btf_key_type_id, info.key_size);
                c->value_type_id = checked_type(c->btf, info.btf_value_type_id, info.value_size);
        }

        *ret = TAKE_PTR(c);
        return 0;
}

MapCodec *map_codec_free(MapCodec *c) {
        if (!c)
                return NULL;
        btf__free(c->btf);
        free(c);
        return NULL;
}

size_t map_codec_key_size(const MapCodec *c) {
        return c->key_size;
}

size_t map_codec_value_size(const MapCodec *c) {
        return c->n_values * c->value_stride;
}

json_object *map_codec_key_to_json(const MapCodec *c, const void *key) {
        return decode(c->btf, c->key_type_id, key, c->key_size, 0);
}

json_object *map_codec_value_to_json(const MapCodec *c, const void *value) {
        json_object *arr;

        if (!c->per_cpu)
                return decode(c->btf, c->value_type_id, value, c->value_size, 0);
        arr = json_object_new_array_ext((int) c->n_values);
        if (!arr)
                return NULL;
        for (unsigned i = 0; i < c->n_values; i++)
                if (!add_element(arr,
                                 decode(c->btf, c->value_type_id,
                                        (const uint8_t *) value + i * c->value_stride, c->value_size, 0))) {
                        json_object_put(arr);
                        return NULL;
                }
        return arr;
}

int map_codec_key_from_json(const MapCodec *c, json_object *j, void *key, char **ret_message) {
        Encoder e = { .btf = c->btf, .root = "key", .ret_message = ret_message };
        _cleanup_free_ uint8_t *tmp = malloc(c->key_size ?: 1);
        int r;

        if (!tmp)
                return -ENOMEM;
        /* Encode into a copy so a half-written key never reaches the caller. */
        memcpy(tmp, key, c->key_size);
        r = encode(&e, c->key_type_id, j, tmp, c->key_size);
        if (r < 0)
                return r;
        memcpy(key, tmp, c->key_size);
        return 0;
}

static int encode_per_cpu(const MapCodec *c, Encoder *e, json_object *j, uint8_t *dst) {
        size_t n;

        if (!json_object_is_type(j, json_type_array))
                return fail(e, "a per-CPU map takes an array of values, one per possible CPU, got %s",
                            json_type_to_name(json_object_get_type(j)));
        n = json_object_array_length(j);
        if (n != c->n_values)
                return fail(e, "%zu values given, the map has one per possible CPU (%u)", n, c->n_values);
        for (size_t i = 0; i < n; i++) {
                int r = encode_at(e, NULL, i, c->value_type_id, json_object_array_get_idx(j, i),
                                  dst + i * c->value_stride, c->value_size);
                if (r < 0)
                        return r;
        }
        return 0;
}

int map_codec_value_from_json(const MapCodec *c, json_object *j, void *value, char **ret_message) {
        Encoder e = { .btf = c->btf, .root = "value", .ret_message = ret_message };
        size_t size = map_codec_value_size(c);
        _cleanup_free_ uint8_t *tmp = malloc(size ?: 1);
        int r;

        if (!tmp)
                return -ENOMEM;
        memcpy(tmp, value, size);
        r = c->per_cpu ? encode_per_cpu(c, &e, j, tmp) : encode(&e, c->value_type_id, j, tmp, c->value_size);
        if (r < 0)
                return r;
        memcpy(value, tmp, size);
        return 0;
}

/* 1 when fn saw the entry, or fn's negative return. */
static int emit_entry(const MapCodec *c, const void *key, const void *value,
                      int (*fn)(json_object *key, json_object *value, void *userdata), void *userdata) {
        json_object *k, *v;
        int r;

        k = map_codec_key_to_json(c, key);
        v = map_codec_value_to_json(c, value);
        r = k && v ? fn(k, v, userdata) : -ENOMEM;
        json_object_put(k);
        json_object_put(v);
        return r < 0 ? r : 1;
}

/* 1 when fn saw the entry, 0 when it was gone, or fn's negative return. */
static int dump_entry(const MapCodec *c, int map_fd, const void *key, void *value,
                      int (*fn)(json_object *key, json_object *value, void *userdata), void *userdata) {
        int r = bpf_map_lookup_elem(map_fd, key, value);

        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : emit_entry(c, key, value, fn, userdata);
}

/* Hash maps are walked bucket by bucket (BPF_MAP_LOOKUP_BATCH): a key deleted between two steps does not
 * send the walk back to the start, as bpf_map_get_next_key() from a missing key does. */
static bool walks_in_batches(const MapCodec *c) {
        return c->map_type == BPF_MAP_TYPE_HASH || c->map_type == BPF_MAP_TYPE_LRU_HASH ||
               c->map_type == BPF_MAP_TYPE_PERCPU_HASH || c->map_type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

#define DUMP_BATCH 64u
/* The kernel's own "not supported" (524), which some bpf commands let out to user space. */
#define ENOTSUPP 524

/* One step of a batched walk: 1 more may follow, 0 at the end or limit, -EOPNOTSUPP when the kernel has no
 * batch lookup for this map (nothing passed to fn yet), <0 on errors. */
static int dump_step_batches(const MapCodec *c, int map_fd, MapDumpCursor *cur, size_t limit, size_t until,
                             int (*fn)(json_object *key, json_object *value, void *userdata), void *userdata) {
        size_t vsize = map_codec_value_size(c) ?: 1;

        while (!cur->batch_end && (limit == 0 || cur->n < limit)) {
                size_t want = MIN((size_t) DUMP_BATCH, limit ? limit - cur->n : SIZE_MAX);
                __u32 count;
                int r;

                if (cur->n >= until)
                        return 1;
                want = MIN(want, until - cur->n);
                for (;;) {
                        if (want > cur->batch_cap) {
                                uint8_t *k = realloc(cur->batch_keys, want * c->key_size),
                                        *v = k ? realloc(cur->batch_values, want * vsize) : NULL;

                                if (k)
                                        cur->batch_keys = k;
                                if (v)
                                        cur->batch_values = v;
                                if (!k || !v)
                                        return -ENOMEM;
                                cur->batch_cap = want;
                        }
                        count = (__u32) want;
                        r = bpf_map_lookup_batch(map_fd, cur->batch_started ? &cur->batch_in : NULL, &cur->batch_out,
                                                 cur->batch_keys, cur->batch_values, &count, NULL);
                        /* A bucket larger than the batch: ask for more at once. */
                        if (r == -ENOSPC && want < UINT32_MAX / 2) {
                                want *= 2;
                                continue;
                        }
                        break;
                }
                if (r == -ENOENT)
                        cur->batch_end = true;
                else if (r < 0)
                        return cur->batch_started || cur->n > 0 || (r != -EINVAL && r != -EOPNOTSUPP && r != -ENOTSUPP)
                                       ? r
                                       : -EOPNOTSUPP;
                cur->batch_started = true;
                cur->batch_in = cur->batch_out;
                for (__u32 i = 0; i < count && (limit == 0 || cur->n < limit); i++) {
                        r = emit_entry(c, cur->batch_keys + (size_t) i * c->key_size,
                                       cur->batch_values + (size_t) i * vsize, fn, userdata);
                        if (r < 0)
                                return r;
                        cur->n++;
                }
        }
        return 0;
}

void map_dump_cursor_done(MapDumpCursor *cur) {
        free(cur->key);
        free(cur->next_key);
        free(cur->value);
        free(cur->batch_keys);
        free(cur->batch_values);
        *cur = (MapDumpCursor) {};
}

int map_codec_dump_step(const MapCodec *c, int map_fd, MapDumpCursor *cur, size_t limit, size_t step,
                        int (*fn)(json_object *key, json_object *value, void *userdata), void *userdata) {
        size_t until = step == 0 ? SIZE_MAX : cur->n + step;
        int r;

        if (c->key_size == 0)
                return -EOPNOTSUPP;
        if (!cur->value) {
                cur->key = malloc(c->key_size);
                cur->next_key = malloc(c->key_size);
                cur->value = malloc(map_codec_value_size(c) ?: 1);
                if (!cur->key || !cur->next_key || !cur->value)
                        return -ENOMEM;
        }

        if (c->map_type == BPF_MAP_TYPE_ARRAY || c->map_type == BPF_MAP_TYPE_PERCPU_ARRAY) {
                for (; cur->visited < c->max_entries && (limit == 0 || cur->n < limit); cur->visited++) {
                        if (cur->n >= until)
                                return 1;
                        r = dump_entry(c, map_fd, &cur->visited, cur->value, fn, userdata);
                        if (r < 0)
                                return r;
                        cur->n += (size_t) r;
                }
                return 0;
        }

        if (walks_in_batches(c) && !cur->no_batches) {
                r = dump_step_batches(c, map_fd, cur, limit, until, fn, userdata);
                if (r != -EOPNOTSUPP)
                        return r;
                cur->no_batches = true; /* an older kernel: key by key */
        }
        for (; limit == 0 || cur->n < limit; cur->visited++) {
                if (c->max_entries > 0 && cur->visited >= c->max_entries)
                        break;
                if (cur->n >= until)
                        return 1;
                r = bpf_map_get_next_key(map_fd, cur->visited > 0 ? cur->key : NULL, cur->next_key);
                if (r == -ENOENT)
                        break;
                if (r < 0)
                        return r;
                memcpy(cur->key, cur->next_key, c->key_size);
                r = dump_entry(c, map_fd, cur->key, cur->value, fn, userdata);
                if (r < 0)
                        return r;
                cur->n += (size_t) r;
        }
        return 0;
}
