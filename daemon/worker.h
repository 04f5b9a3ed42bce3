/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The untrusted part of a load, confined: a client's ELF is parsed and
 * CO-RE-planned in a child process that holds no capabilities, runs as an
 * unprivileged user with no_new_privs and a seccomp filter that allows
 * little more than memory management and writing its answer, under memory
 * and CPU limits. A crash or a hang costs only that request; the plan
 * comes back over a socketpair in a small, size-checked message.
 */
#pragma once

#include <stdbool.h>

#include "planner.h"

/* Same contract as core_plan(); a worker that crashes, hangs or runs out of
 * memory gives -EBADMSG with "object parser crashed (signal N)" / "timed out". */
int worker_core_plan(const void *elf, size_t size, CoreLookup lookup, void *userdata, CorePlan **ret,
                     char **ret_error);

/* Test-only fault point: with BPFCORED_TEST_WORKER_FAULT=crash|hang the worker misbehaves on purpose. */
