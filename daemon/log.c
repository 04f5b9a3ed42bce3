/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_priority = LOG_INFO;
static int stderr_is_journal = -1;

void log_setup(int prio) {
        max_priority = prio;
}

int log_get_max_priority(void) {
        return max_priority;
}

/* Under systemd, stderr is a journal stream: then the structured entry is enough. */
static bool stderr_goes_to_journal(void) {
        if (stderr_is_journal < 0) {
                const char *e = getenv("JOURNAL_STREAM");
                unsigned long long dev, ino;
                struct stat st;

                stderr_is_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
                                    fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
        }
        return stderr_is_journal;
}

static void emit(int priority, const char *message, char **fields, size_t n_fields) {
        static const char *const level[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
        struct iovec iov[LOG_FIELDS_MAX + 4];
        char prio[16], *msg_field = NULL;
        size_t n = 0;

        if (priority > max_priority)
                return;

        if (!stderr_goes_to_journal())
                fprintf(stderr, "bpfcored[%s]: %s\n", level[priority & 7], message);

        if (asprintf(&msg_field, "MESSAGE=%s", message) < 0)
                return;
        snprintf(prio, sizeof(prio), "PRIORITY=%d", priority);
        iov[n++] = (struct iovec) { msg_field, strlen(msg_field) };
        iov[n++] = (struct iovec) { prio, strlen(prio) };
        iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=bpfcored", strlen("SYSLOG_IDENTIFIER=bpfcored") };
        for (size_t i = 0; i < n_fields && n < ELEMENTSOF(iov); i++)
                if (fields[i])
                        iov[n++] = (struct iovec) { fields[i], strlen(fields[i]) };
        /* No journal (a container, a test): the stderr line is all there is. */
        (void) sd_journal_sendv(iov, (int) n);
        free(msg_field);
}

void log_msg(int priority, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        if (priority > max_priority)
                return;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s)
                emit(priority, s, NULL, 0);
}

int log_errno(int priority, int err, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        if (priority > max_priority)
                return err;
        errno = err < 0 ? -err : err;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s)
                emit(priority, s, NULL, 0);
        return err;
}

void log_field(LogFields *f, const char *key, const char *fmt, ...) {
        _cleanup_free_ char *v = NULL;
        va_list ap;

        if (f->n >= LOG_FIELDS_MAX)
                return;
        va_start(ap, fmt);
        if (vasprintf(&v, fmt, ap) < 0)
                v = NULL;
        va_end(ap);
        if (v && asprintf(&f->field[f->n], "%s=%s", key, v) >= 0)
                f->n++;
}

void log_fields_done(LogFields *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->field[i]);
        f->n = 0;
}

void log_event(LogFields *f, int priority, const char *message_id, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        log_field(f, "MESSAGE_ID", "%s", message_id);
        if (s)
                emit(priority, s, f->field, f->n);
        log_fields_done(f);
}
