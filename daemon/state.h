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
int state_write(const char *state_dir, const Object *o, Failure *f);
int state_remove(const char *state_dir, uint64_t id);
/* Recovers whole objects into the registry, cleans up half ones; returns how many came back. */
int state_recover(const char *state_dir, Registry *reg);
