/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Events for Subscribe: the same facts the journal gets, as JSON. */
#pragma once

#include <json-c/json.h>

#include "manager.h"
#include "object.h"

/* {"kind": kind, "time": "2026-11-23T10:49:45.123456Z"} */
json_object *event_new(const char *kind);
/* Adds object_id, object_name and the owner's uid, pid and cgroup. */
void event_add_object(json_object *e, const Object *o);
/* Sends e to every subscriber and drops it. */
void event_emit(Manager *m, json_object *e);
