/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Objects loaded at boot, one file each: <dir>/NAME.conf names the object
 * file and the settings a Load would carry. Loaded once (an object from an
 * unchanged file is kept across restarts) and kept in sync on SIGHUP: a
 * changed file reloads its object, a removed one unloads it. A broken entry
 * is logged and skipped; the rest load.
 *
 *   # /etc/bpfcored/objects.d/execsnoop.conf
 *   file = /usr/lib/bpfcored/execsnoop.bpf.o
 *   programs = handle_exec handle_exit       (optional: default all)
 *   global.target_pid = 42                   (number, true/false, hex:0a0b, str:TEXT, or text)
 *   map.events.max_entries = 4096            (max_entries or value_size)
 *   attach = yes                             (attach every program by its SEC())
 *   attach.handle_exec = tracepoint sched/sched_process_exec
 *                                            (one program, as `bpfcorectl attach ID PROGRAM TYPE TARGET...`
 *                                             takes it; paths absolute; one line per program)
 */
#pragma once

#include "manager.h"

/*
 * Parses one file into Load parameters, the explicit attachments (an array of
 * {"program": P, TYPE: target} as Attach takes them) and the object path.
 * -EINVAL with "line N: ..." in *ret_error.
 */
int objects_d_parse(const char *text, json_object **ret_params, json_object **ret_attachments, char **ret_file,
                    char **ret_error);

/* Loads what is new or changed, unloads what is gone. */
void objects_d_sync(Manager *m);
