/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "failure.h"
#include "manager.h"

/*
 * Loads the object file at path as a Load with params (taken as the call's
 * parameters, without fd) would, owned by the daemon itself and marked as
 * coming from source (an objects.d file) with source_digest.
 */
int methods_load_file(Manager *m, const char *name, const char *path, json_object *params, const char *source,
                      const char *source_digest, Failure *f);
