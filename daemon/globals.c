/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "globals.h"
#include "params.h"
#include "protocol.h"

#define ENCODE_MAX_DEPTH 16

_printf_(2, 3) static int fail_msg(char **ret_message, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return -EINVAL;
}

static bool is_hex(json_object *value) {
        return json_object_is_type(value, json_type_object) && json_object_object_get_ex(value, "hex", NULL);
}

/* Stores v (already range-checked) in size bytes, in host byte order as the kernel reads it. */
static void store_uint(void *dst, size_t size, uint64_t v) {
        switch (size) {
        case 1: *(uint8_t *) dst = (uint8_t) v; break;
        case 2: *(uint16_t *) dst = (uint16_t) v; break;
        case 4: *(uint32_t *) dst = (uint32_t) v; break;
        default: *(uint64_t *) dst = v; break;
        }
}

static int encode_integer(json_object *value, size_t size, bool is_signed, void *dst, char **ret_message) {
        int64_t s;
        uint64_t u;

        if (size != 1 && size != 2 && size != 4 && size != 8)
                return fail_msg(ret_message, "a %zu-byte integer needs {\"hex\": \"...\"}", size);
        if (is_signed) {
                int64_t min = size == 8 ? INT64_MIN : -(INT64_C(1) << (size * 8 - 1));
                int64_t max = size == 8 ? INT64_MAX : (INT64_C(1) << (size * 8 - 1)) - 1;

                if (!json_get_int64(value, &s) || s < min || s > max)
                        return fail_msg(ret_message, "value out of range for a signed %zu-bit integer (%lld..%lld)",
                                        size * 8, (long long) min, (long long) max);
                store_uint(dst, size, (uint64_t) s);
        } else {
                uint64_t max = size == 8 ? UINT64_MAX : (UINT64_C(1) << (size * 8)) - 1;

                if (!json_get_uint64(value, &u) || u > max)
                        return fail_msg(ret_message, "value out of range for an unsigned %zu-bit integer (0..%llu)",
                                        size * 8, (unsigned long long) max);
                store_uint(dst, size, u);
        }
        return 0;
}

static int encode_enum(const struct btf *btf, const struct btf_type *t, json_object *value, void *dst,
                       char **ret_message) {
        bool is_signed = btf_kflag(t);
        uint16_t n = btf_vlen(t);

        if (json_object_is_type(value, json_type_string)) {
                const char *want = json_object_get_string(value);

                for (uint16_t i = 0; i < n; i++) {
                        const char *name;
                        uint64_t v;

                        if (btf_is_enum(t)) {
                                const struct btf_enum *e = btf_enum(t) + i;
                                name = btf__name_by_offset(btf, e->name_off);
                                v = is_signed ? (uint64_t) (int64_t) e->val : (uint32_t) e->val;
                        } else {
                                const struct btf_enum64 *e = btf_enum64(t) + i;
                                name = btf__name_by_offset(btf, e->name_off);
                                v = btf_enum64_value(e);
                        }
                        if (name && strcmp(name, want) == 0) {
                                store_uint(dst, t->size, v);
                                return 0;
                        }
                }
                return fail_msg(ret_message, "'%s' is not an enumerator of enum %s", want,
                                btf__name_by_offset(btf, t->name_off) ?: "(anonymous)");
        }
        return encode_integer(value, t->size, is_signed, dst, ret_message);
}

static int encode(const struct btf *btf, uint32_t type_id, json_object *value, void *dst, size_t size,
                  unsigned depth, char **ret_message);

static int encode_array(const struct btf *btf, const struct btf_type *t, json_object *value, void *dst,
                        size_t size, unsigned depth, char **ret_message) {
        const struct btf_array *a = btf_array(t);
        const struct btf_type *elem = btf__type_by_id(btf, a->type);
        __s64 elem_size = btf__resolve_size(btf, a->type);

        if (elem_size <= 0 || (uint64_t) elem_size * a->nelems != size)
                return fail_msg(ret_message, "array of unknown size");

        elem = btf__type_by_id(btf, btf__resolve_type(btf, a->type));
        if (json_object_is_type(value, json_type_string)) {
                size_t len = (size_t) json_object_get_string_len(value);

                if (!elem || !btf_is_int(elem) || elem_size != 1)
                        return fail_msg(ret_message, "a string can only be stored in a char array");
                if (len >= a->nelems)
                        return fail_msg(ret_message, "string of %zu bytes does not fit char[%u] with its NUL", len,
                                        a->nelems);
                memset(dst, 0, size);
                memcpy(dst, json_object_get_string(value), len);
                return 0;
        }
        if (json_object_is_type(value, json_type_array)) {
                size_t n = json_object_array_length(value);

                if (n > a->nelems)
                        return fail_msg(ret_message, "%zu elements given, the array has %u", n, a->nelems);
                memset(dst, 0, size);
                for (size_t i = 0; i < n; i++) {
                        int r = encode(btf, a->type, json_object_array_get_idx(value, i),
                                       (uint8_t *) dst + i * (size_t) elem_size, (size_t) elem_size, depth + 1,
                                       ret_message);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        return fail_msg(ret_message, "an array takes a JSON array (or a string for char arrays)");
}

static int encode_struct(const struct btf *btf, const struct btf_type *t, json_object *value, void *dst,
                         size_t size, unsigned depth, char **ret_message) {
        const struct btf_member *m = btf_members(t);
        uint16_t n = btf_vlen(t);

        if (btf_is_union(t))
                return fail_msg(ret_message, "a union needs {\"hex\": \"...\"}");

        memset(dst, 0, size);
        json_object_object_foreach(value, key, v) {
                uint16_t i;

                for (i = 0; i < n; i++)
                        if (strcmp(btf__name_by_offset(btf, m[i].name_off) ?: "", key) == 0)
                                break;
                if (i == n)
                        return fail_msg(ret_message, "struct %s has no member '%s'",
                                        btf__name_by_offset(btf, t->name_off) ?: "(anonymous)", key);

                uint32_t bit_off = btf_member_bit_offset(t, i);
                __s64 msize = btf__resolve_size(btf, m[i].type);
                if (btf_member_bitfield_size(t, i) || bit_off % 8 || msize < 0 ||
                    bit_off / 8 + (uint64_t) msize > size)
                        return fail_msg(ret_message, "member '%s' is a bitfield: use {\"hex\": \"...\"}", key);
                int r = encode(btf, m[i].type, v, (uint8_t *) dst + bit_off / 8, (size_t) msize, depth + 1,
                               ret_message);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int encode(const struct btf *btf, uint32_t type_id, json_object *value, void *dst, size_t size,
                  unsigned depth, char **ret_message) {
        const struct btf_type *t;
        int id;

        if (depth > ENCODE_MAX_DEPTH)
                return fail_msg(ret_message, "value nested too deeply");
        if (is_hex(value))
                return json_hex_decode(value, dst, size, ret_message);

        id = btf__resolve_type(btf, type_id);
        t = id >= 0 ? btf__type_by_id(btf, (uint32_t) id) : NULL;
        if (!t)
                return fail_msg(ret_message, "variable has a broken BTF type");

        if (btf_is_int(t)) {
                uint8_t enc = btf_int_encoding(t);

                if (enc & BTF_INT_BOOL) {
                        if (json_object_is_type(value, json_type_boolean)) {
                                store_uint(dst, t->size, json_object_get_boolean(value));
                                return 0;
                        }
                        if (!json_object_is_type(value, json_type_int) || json_object_get_int64(value) < 0 ||
                            json_object_get_int64(value) > 1)
                                return fail_msg(ret_message, "value out of range for a bool: true, false, 0 or 1");
                        store_uint(dst, t->size, (uint64_t) json_object_get_int64(value));
                        return 0;
                }
                if (json_object_is_type(value, json_type_boolean))
                        return fail_msg(ret_message, "a boolean cannot be stored in a non-bool integer");
                if (!json_object_is_type(value, json_type_int))
                        return fail_msg(ret_message, "an integer variable takes an integer");
                return encode_integer(value, t->size, enc & BTF_INT_SIGNED, dst, ret_message);
        }
        if (btf_is_any_enum(t))
                return encode_enum(btf, t, value, dst, ret_message);
        if (btf_is_float(t)) {
                if (!json_object_is_type(value, json_type_double) && !json_object_is_type(value, json_type_int))
                        return fail_msg(ret_message, "a floating-point variable takes a number");
                if (t->size == 4)
                        *(float *) dst = (float) json_object_get_double(value);
                else if (t->size == 8)
                        *(double *) dst = json_object_get_double(value);
                else
                        return fail_msg(ret_message, "a %u-byte float needs {\"hex\": \"...\"}", t->size);
                return 0;
        }
        if (btf_is_array(t))
                return encode_array(btf, t, value, dst, size, depth, ret_message);
        if (btf_is_composite(t) && json_object_is_type(value, json_type_object))
                return encode_struct(btf, t, value, dst, size, depth, ret_message);
        return fail_msg(ret_message, "this type takes {\"hex\": \"...\"} of %zu bytes", size);
}

int globals_encode(const struct btf *btf, uint32_t type_id, json_object *value, void *dst, size_t size,
                   char **ret_message) {
        _cleanup_free_ void *tmp = malloc(size ?: 1);
        int r;

        if (!tmp)
                return -ENOMEM;
        /* Encode into a copy so a half-written value never reaches the object. */
        memcpy(tmp, dst, size);
        r = encode(btf, type_id, value, tmp, size, 0, ret_message);
        if (r >= 0)
                memcpy(dst, tmp, size);
        return r;
}

static bool settable_section(const char *name) {
        return strncmp(name, ".rodata", 7) == 0 || strncmp(name, ".data", 5) == 0 || strncmp(name, ".bss", 4) == 0;
}

/* The variable's place: the internal map holding it, its offset, size and type. */
static struct bpf_map *find_variable(struct bpf_object *obj, const struct btf *btf, const char *name,
                                     const struct btf_var_secinfo **ret_vsi) {
        struct bpf_map *map;

        bpf_object__for_each_map(map, obj) {
                const struct btf_type *sec;
                const struct btf_var_secinfo *vsi;

                if (!bpf_map__is_internal(map))
                        continue;
                sec = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
                if (!sec || !btf_is_datasec(sec) || !settable_section(btf__name_by_offset(btf, sec->name_off) ?: ""))
                        continue;
                vsi = btf_var_secinfos(sec);
                for (uint16_t i = 0; i < btf_vlen(sec); i++, vsi++) {
                        const struct btf_type *var = btf__type_by_id(btf, vsi->type);

                        if (!var || !btf_is_var(var) || btf_var(var)->linkage == BTF_VAR_STATIC)
                                continue;
                        if (strcmp(btf__name_by_offset(btf, var->name_off) ?: "", name) == 0) {
                                *ret_vsi = vsi;
                                return map;
                        }
                }
        }
        return NULL;
}

int globals_apply(struct bpf_object *obj, json_object *globals, Failure *f) {
        const struct btf *btf = bpf_object__btf(obj);

        if (!globals || json_object_object_length(globals) == 0)
                return 0;
        if (!btf)
                return failure_setf(f, -EINVAL, VL_ERROR_INVALID_OBJECT, "message",
                                    "the object has no BTF, so its global variables cannot be set by name");

        json_object_object_foreach(globals, key, value) {
                _cleanup_free_ char *param = NULL, *message = NULL;
                const struct btf_var_secinfo *vsi;
                const struct btf_type *var;
                struct bpf_map *map;
                size_t image_size;
                void *image;
                int r;

                if (asprintf(&param, "globals.%s", key) < 0)
                        return -ENOMEM;
                map = find_variable(obj, btf, key, &vsi);
                if (!map)
                        return failure_invalid_parameter(f, -ENOENT, param,
                                                         "no global variable '%s' in .rodata, .data or .bss", key);
                image = bpf_map__initial_value(map, &image_size);
                if (!image || (uint64_t) vsi->offset + vsi->size > image_size)
                        return failure_setf(f, -EINVAL, VL_ERROR_INVALID_OBJECT, "message",
                                            "variable %s lies outside its section", key);
                var = btf__type_by_id(btf, vsi->type);
                r = globals_encode(btf, var->type, value, (uint8_t *) image + vsi->offset, vsi->size, &message);
                if (r < 0)
                        return failure_invalid_parameter(f, r, param, "%s", message ?: strerror(-r));
        }
        return 0;
}
