/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "params.h"
#include "protocol.h"

#define PARAM_STRING_MAX 4096

static const char *type_name(json_type t) {
        switch (t) {
        case json_type_boolean:
                return "a boolean";
        case json_type_int:
                return "an integer";
        case json_type_double:
                return "a number";
        case json_type_string:
                return "a string";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        default:
                return "null";
        }
}

static int invalid(Failure *f, const char *name, const char *message) {
        json_object *p = json_object_new_object();

        json_object_object_add(p, "parameter", json_object_new_string(name));
        json_object_object_add(p, "message", json_object_new_string(message));
        return failure_set(f, -EINVAL, VL_ERROR_VARLINK_INVALID_PARAMETER, p);
}

int params_decode(json_object *params, const ParamField table[], void *base, Failure *f) {
        char msg[256];

        if (params && !json_object_is_type(params, json_type_object))
                return invalid(f, "parameters", "parameters must be an object");

        if (params) {
                json_object_object_foreach(params, key, val) {
                        const ParamField *field = NULL;

                        for (const ParamField *t = table; t->name; t++)
                                if (strcmp(t->name, key) == 0) {
                                        field = t;
                                        break;
                                }
                        if (!field) {
                                snprintf(msg, sizeof(msg), "unknown parameter '%.64s'", key);
                                return invalid(f, key, msg);
                        }
                        /* null stands for "not given", as varlink's optional fields do. */
                        if (json_object_is_type(val, json_type_null))
                                continue;
                        /* json_type_null in a table: any JSON value, for the handler to check. */
                        if (field->type != json_type_null && !json_object_is_type(val, field->type)) {
                                snprintf(msg, sizeof(msg), "'%s' must be %s, not %s", key,
                                         type_name(field->type), type_name(json_object_get_type(val)));
                                return invalid(f, key, msg);
                        }
                        if (field->parse) {
                                _cleanup_free_ char *m = NULL;

                                if (field->parse(field, val, (char *) base + field->offset, &m) < 0)
                                        return invalid(f, key, m ?: "invalid value");
                        }
                }
        }

        for (const ParamField *t = table; t->name; t++) {
                json_object *v;

                if (!t->mandatory)
                        continue;
                if (!params || !json_object_object_get_ex(params, t->name, &v) ||
                    json_object_is_type(v, json_type_null)) {
                        snprintf(msg, sizeof(msg), "missing parameter '%s'", t->name);
                        return invalid(f, t->name, msg);
                }
        }
        return 0;
}

bool json_get_int64(json_object *v, int64_t *ret) {
        if (!json_object_is_type(v, json_type_int))
                return false;
        /* json-c keeps numbers above INT64_MAX as uint64. */
        if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > (uint64_t) INT64_MAX)
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

bool json_get_uint64(json_object *v, uint64_t *ret) {
        if (!json_object_is_type(v, json_type_int))
                return false;
        if (json_object_get_int64(v) < 0)
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

static int uint_in_range(const ParamField *field, json_object *v, uint64_t max, uint64_t *ret, char **ret_message) {
        uint64_t u;

        if (!json_get_uint64(v, &u) || u > max) {
                if (asprintf(ret_message, "'%s' must be an integer from 0 to %llu", field->name,
                             (unsigned long long) max) < 0)
                        *ret_message = NULL;
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

int param_uint32(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        uint64_t u;
        int r = uint_in_range(field, v, UINT32_MAX, &u, ret_message);

        if (r >= 0)
                *(uint32_t *) dst = (uint32_t) u;
        return r;
}

int param_optional_uint32(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        OptionalU32 *o = dst;
        int r = param_uint32(field, v, &o->value, ret_message);

        if (r >= 0)
                o->set = true;
        return r;
}

int param_uint64(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        return uint_in_range(field, v, UINT64_MAX, dst, ret_message);
}

int param_bool(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        *(bool *) dst = json_object_get_boolean(v);
        return 0;
}

int param_string(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        const char *s = json_object_get_string(v);
        size_t len = (size_t) json_object_get_string_len(v);

        /* Strings end up in paths, logs and libbpf: no NULs, no control bytes, bounded. */
        if (len > PARAM_STRING_MAX || strlen(s) != len) {
                *ret_message = strdup("string too long or contains NUL bytes");
                return -EINVAL;
        }
        *(const char **) dst = s;
        return 0;
}

int param_json(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        *(json_object **) dst = v;
        return 0;
}

int param_strv(const ParamField *field, json_object *v, void *dst, char **ret_message) {
        size_t n = json_object_array_length(v);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                if (!json_object_is_type(e, json_type_string)) {
                        if (asprintf(ret_message, "'%s' must be an array of strings", field->name) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                }
        }
        *(json_object **) dst = v;
        return 0;
}

int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int json_hex_decode(json_object *value, void *dst, size_t size, char **ret_message) {
        json_object *h;
        const char *s;
        size_t len;
        int r;

        if (json_object_object_length(value) != 1 || !json_object_object_get_ex(value, "hex", &h) ||
            !json_object_is_type(h, json_type_string)) {
                *ret_message = strdup("an object with \"hex\" must be {\"hex\": \"...\"} alone");
                return -EINVAL;
        }
        s = json_object_get_string(h);
        len = (size_t) json_object_get_string_len(h);
        if (len != size * 2) {
                r = asprintf(ret_message, "hex value has %zu bytes, %zu needed", len / 2, size);
                if (r < 0)
                        *ret_message = NULL;
                return -EINVAL;
        }
        for (size_t i = 0; i < size; i++)
                if (hex_digit(s[2 * i]) < 0 || hex_digit(s[2 * i + 1]) < 0) {
                        if (asprintf(ret_message, "invalid hex digit at position %zu", 2 * i) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                }
        for (size_t i = 0; i < size; i++)
                ((uint8_t *) dst)[i] = (uint8_t) (hex_digit(s[2 * i]) << 4 | hex_digit(s[2 * i + 1]));
        return 0;
}
