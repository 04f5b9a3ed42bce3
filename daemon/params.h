/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Method parameters decoded by a static table into a struct, as systemd's
 * varlink dispatch tables do: name, JSON type, parser, offset, mandatory.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "failure.h"

typedef struct ParamField ParamField;
/* Stores v at dst; on a bad value returns -EINVAL with a message in *ret_message. */
typedef int (*ParamParser)(const ParamField *field, json_object *v, void *dst, char **ret_message);

struct ParamField {
        const char *name;
        json_type type; /* json_type_null: any type */
        ParamParser parse;
        size_t offset;
        bool mandatory;
};

/*
 * Decodes params (an object, or NULL for none) by the table (ending with a
 * field whose name is NULL) into the struct at base. Unknown, mistyped or
 * missing parameters fill f with org.varlink.service.InvalidParameter.
 * Strings and JSON values are borrowed from params.
 */
static inline void json_object_putp(json_object **j) {
        json_object_put(*j);
}

int params_decode(json_object *params, const ParamField table[], void *base, Failure *f);

int param_uint32(const ParamField *field, json_object *v, void *dst, char **ret_message);
int param_uint64(const ParamField *field, json_object *v, void *dst, char **ret_message);
int param_bool(const ParamField *field, json_object *v, void *dst, char **ret_message);
int param_string(const ParamField *field, json_object *v, void *dst, char **ret_message);
int param_json(const ParamField *field, json_object *v, void *dst, char **ret_message);
int param_strv(const ParamField *field, json_object *v, void *dst, char **ret_message);

/* 0-15 for a hex digit, -1 otherwise. */
int hex_digit(char c);
/* {"hex": "0a0b…"} of exactly size bytes into dst (untouched on failure); -EINVAL with a message. */
int json_hex_decode(json_object *value, void *dst, size_t size, char **ret_message);

/* An integer of the wire: exact (no doubles), as int64 or uint64. */
bool json_get_int64(json_object *v, int64_t *ret);
bool json_get_uint64(json_object *v, uint64_t *ret);

/* A present optional integer parameter is distinguished from one left out. */
typedef struct OptionalU32 {
        uint32_t value;
        bool set;
} OptionalU32;
int param_optional_uint32(const ParamField *field, json_object *v, void *dst, char **ret_message);
