/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * State files: one per object, <state dir>/<id>.json, written atomically
 * (temp file, fsync, rename, fsync of the directory) once the object is
 * pinned and before the client hears of it; removed first on unload. At
 * start, state files and pins are reconciled: an object whose file and pins
 * are whole comes back with its id and owner; pins without a file, or a
 * file without its pins, are what a crash left half-done and are removed.
 */
#pragma once

#include "failure.h"
#include "registry.h"

int state_setup(const char *state_dir);
/* <state dir>/<id>.json, atomically. ret_object (if given): the same JSON, for a reply (json_frozen_text()):
 * then an object too large for one (over VL_MAX_MESSAGE - VL_REPLY_ENVELOPE) is TooLarge, and nothing is written. */
int state_write(const char *state_dir, const Object *o, json_object **ret_object, Failure *f);
int state_remove(const char *state_dir, uint64_t id);
/*
 * Records of clsact tc filters (clsact.h), <state dir>/filters/<id>.json: written before the filter is
 * added and removed once it is gone, as a link's pin would be. At start, a filter that no state file
 * lists (a crash inside an Attach, Detach, Load or Unload) is removed, and a listed one that is no
 * longer there is dropped from its object, each with a journal entry.
 */
int state_filter_record(const char *state_dir, uint32_t id, uint64_t object_id, uint32_t prog_id,
                        const TcFilter *t);
void state_filter_forget(const char *state_dir, uint32_t id);
/* Removes every clsact filter of o from the kernel, then its record (Unload, a Load that failed). */
void state_detach_filters(const char *state_dir, const Object *o);
/* Recovers whole objects into the registry, cleans up half ones; returns how many came back. */
int state_recover(const char *state_dir, Registry *reg);
