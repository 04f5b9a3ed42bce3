/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only crash points. With BPFCORED_TEST_CRASH_AT=STEP in its
 * environment the daemon SIGKILLs itself when it reaches STEP, so a test can
 * prove that a crash between two steps of Load, Attach, Detach or Unload
 * leaves, after a restart, all of the operation or none of it. Without the
 * variable (production) a crash point costs one comparison with NULL.
 *
 * Steps: load-after-load, load-after-pin, load-after-state,
 * attach-after-attach, attach-after-pin, attach-after-state,
 * detach-after-state, unload-after-state, unload-mid-unpin (after the first
 * pin of an object is removed, whoever removes it).
 */
#pragma once

#define BPFCORED_TEST_CRASH_ENV "BPFCORED_TEST_CRASH_AT"

void crash_point(const char *step);
