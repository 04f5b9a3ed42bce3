/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging: structured entries to journald (sd_journal_sendv), and a plain
 * line on stderr unless stderr already is the journal.
 */
#pragma once

#include <stddef.h>
#include <syslog.h>

#include "macro.h"

/* MESSAGE_IDs, one per kind of event. */
#define MESSAGE_ID_STARTED "0844666ef24a4ae59e5f5c0b34f168f7"
#define MESSAGE_ID_STOPPED "39b7016d3b38490d982e7e1d076973fe"
#define MESSAGE_ID_LOADED "01edef0129984433a273f7713c218776"
#define MESSAGE_ID_LOAD_FAILED "3e1d7a5feacb4b938576efb8ad31f546"
#define MESSAGE_ID_UNLOADED "5798b9aca29140e197d7b92925a955ee"
#define MESSAGE_ID_BTF_CHANGED "47c438b8514a4285a0807e1b81983cd2"
#define MESSAGE_ID_FALLBACK "0bb1e049042c48e98a963d9da189ec54"
#define MESSAGE_ID_RECOVERY "5527eb69d4ee43f7b27dc276f901c4af"
#define MESSAGE_ID_ATTACHED "df0ac853eae547f88c90d07a7b46a05b"
#define MESSAGE_ID_DETACHED "3c808f8fc9264b91b9e2c2b26d985264"
#define MESSAGE_ID_DENIED "7d1f0b3e58a94c6d9e2a4b8c0f6d2e15"
#define MESSAGE_ID_READY "3e303d5c9e2047a09a1d35155fccf999"
#define MESSAGE_ID_CONFIG_RELOADED "14fbfe61b2e54c26bc1fcd2388ce4f1d"
#define MESSAGE_ID_CONFIG_REJECTED "fe4fcbe630014385ad401d6b5d504737"
#define MESSAGE_ID_BTF_ADDED "e3f9b47b355d4f04ba3ca7f64ad7d8e1"
#define MESSAGE_ID_BTF_REMOVED "9f371c5f5c5344c89b36a2aeac53b0fa"

void log_setup(int max_priority);
int log_get_max_priority(void);

_printf_(2, 3) void log_msg(int priority, const char *fmt, ...);
/* Logs and returns err (a negative errno); %m in fmt prints strerror(-err). */
_printf_(3, 4) int log_errno(int priority, int err, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_error_errno(err, ...) log_errno(LOG_ERR, err, __VA_ARGS__)
#define log_warning_errno(err, ...) log_errno(LOG_WARNING, err, __VA_ARGS__)
#define log_debug_errno(err, ...) log_errno(LOG_DEBUG, err, __VA_ARGS__)

/* Structured fields of one journal entry, "KEY=value" each. */
#define LOG_FIELDS_MAX 24
typedef struct LogFields {
        char *field[LOG_FIELDS_MAX];
        size_t n;
} LogFields;

_printf_(3, 4) void log_field(LogFields *f, const char *key, const char *fmt, ...);
void log_fields_done(LogFields *f);
/* Sends MESSAGE, PRIORITY, MESSAGE_ID and the fields; frees the fields. */
_printf_(4, 5) void log_event(LogFields *f, int priority, const char *message_id, const char *fmt, ...);
