/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Global variables set by name before load, as a libbpf skeleton's user
 * space would: the JSON value is checked against the variable's BTF type
 * (size, signedness, enum names, char arrays) and written into the
 * initial image of .rodata/.data/.bss.
 */
#pragma once

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "failure.h"

/*
 * Encodes value as an object of BTF type type_id into dst (size bytes, the
 * type's size). Accepted: integers (range-checked), booleans, enumerator
 * names, strings for char arrays, arrays, objects for structs, and
 * {"hex": "..."} with exactly size bytes for any type. -EINVAL with a
 * message on mismatch.
 */
int globals_encode(const struct btf *btf, uint32_t type_id, json_object *value, void *dst, size_t size,
                   char **ret_message);

/* Applies {"var": value, ...} to an opened, not yet loaded object. */
int globals_apply(struct bpf_object *obj, json_object *globals, Failure *f);
