/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash-point.h"
#include "log.h"

void crash_point(const char *step) {
        static const char *crash_at;
        static bool read;

        if (!read) {
                crash_at = getenv(BPFCORED_TEST_CRASH_ENV);
                read = true;
        }
        if (!crash_at || strcmp(crash_at, step) != 0)
                return;
        /* SIGKILL, not abort(): no handler, no atexit, no flush; what a power cut or the OOM killer does. */
        log_warning("%s=%s: killing myself.", BPFCORED_TEST_CRASH_ENV, step);
        (void) kill(getpid(), SIGKILL);
}
