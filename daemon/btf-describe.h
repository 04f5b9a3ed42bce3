/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A BTF type as JSON (members with offsets, sizes, bitfields; enumerators) and as C. */
#pragma once

#include <bpf/btf.h>
#include <json-c/json.h>

json_object *btf_describe_type(const struct btf *btf, uint32_t id, const char *btf_name);
const char *btf_kind_name(const struct btf_type *t);
