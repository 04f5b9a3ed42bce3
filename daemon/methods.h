/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "failure.h"
#include "manager.h"
#include "params.h"

/* The parameters of Load and Check, and their decoding table. */
typedef struct LoadParameters {
        uint32_t fd;
        const char *name;
        json_object *programs;
        json_object *globals;
        json_object *maps;
        bool attach;
        OptionalU32 btf_fd;
        const char *btf;
        json_object *attachments; /* objects.d's attach.PROGRAM lines: [{"program": P, TYPE: target}] */
} LoadParameters;

extern const ParamField load_table[];

/*
 * Loads an object file's bytes (data: size bytes and room for a NUL,
 * malloc()ed, taken; digest: their sha256, "sha256:..." as loader_digest()
 * gives) as a Load with params (taken as the call's parameters, without
 * fd) would, owned by the daemon itself and marked as coming from source
 * (an objects.d file) with source_digest; attachments (borrowed; NULL for
 * none) are made as part of the load, all or nothing.
 */
int methods_load_file(Manager *m, const char *name, void *data, size_t size, const char *digest,
                      json_object *params, json_object *attachments, const char *source, const char *source_digest,
                      Failure *f);
