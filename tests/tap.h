/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A header-only TAP producer for the C tests (meson: protocol 'tap').
 *
 *   TEST(framing_split) {
 *           tap_is_int(vl_reader_next(...), 1, "first message is complete");
 *           if (!tap_ok(fd >= 0, "got an fd"))
 *                   return;             // later checks would only repeat it
 *   }
 *   TAP_MAIN
 *
 * Tests run in the order they appear in the file; `./test NAME…` runs only
 * those. Each check prints "ok N - desc" or "not ok N - desc" (with the
 * source line and got/expected as "# " diagnostics) and returns whether it
 * passed. The plan ("1..N") is printed at the end, so a test that crashes
 * midway is reported by meson as an error, not as a short success.
 */
#pragma once

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAP_MAX_TESTS 256

typedef struct TapTest {
        const char *name;
        void (*func)(void);
        int line;
} TapTest;

typedef struct TapState {
        unsigned n;        /* checks so far */
        unsigned failed;
        unsigned skipped;
        TapTest tests[TAP_MAX_TESTS];
        size_t n_tests;
        bool too_many;     /* more TEST()s than TAP_MAX_TESTS */
} TapState;

/* One state per test program: the header is included by a single .c file. */
static TapState tap_state;

/* Registers a test from a constructor; run in source order by tap_run(). */
#define TEST(name)                                                              \
        static void test_##name(void);                                          \
        __attribute__((constructor)) static void tap_register_##name(void) {   \
                if (tap_state.n_tests >= TAP_MAX_TESTS) {                       \
                        tap_state.too_many = true;                              \
                        return;                                                 \
                }                                                               \
                tap_state.tests[tap_state.n_tests++] =                          \
                        (TapTest) { #name, test_##name, __LINE__ };             \
        }                                                                       \
        static void test_##name(void)

#define TAP_MAIN                                        \
        int main(int argc, char **argv) {               \
                return tap_run(argc, argv);             \
        }

__attribute__((format(printf, 1, 0))) static inline void tap_vdiag(const char *fmt, va_list ap) {
        char *text = NULL;
        size_t len;

        if (vasprintf(&text, fmt, ap) < 0) {
                fputs("# (out of memory)\n", stdout);
                return;
        }
        len = strlen(text);
        if (len > 0 && text[len - 1] == '\n')
                text[len - 1] = 0;
        /* Every line of a diagnostic is a TAP comment. */
        for (char *line = text, *nl; line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                printf("# %s\n", line);
        }
        free(text);
        fflush(stdout);
}

/* "# "-prefixed diagnostic lines; never affect the result. */
__attribute__((format(printf, 1, 2))) static inline void tap_diag(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        tap_vdiag(fmt, ap);
        va_end(ap);
}

/* A description may not start a directive or a new line of TAP. */
static inline void tap_print_desc(const char *desc) {
        for (const char *p = desc; *p; p++)
                putchar(*p == '#' || *p == '\n' ? '_' : *p);
}

__attribute__((format(printf, 4, 0))) static inline bool tap_vresult(const char *file, int line, bool pass,
                                                                     const char *fmt, va_list ap) {
        char *desc = NULL;

        if (vasprintf(&desc, fmt, ap) < 0)
                desc = NULL;
        tap_state.n++;
        printf("%sok %u - ", pass ? "" : "not ", tap_state.n);
        tap_print_desc(desc ?: "(out of memory)");
        putchar('\n');
        free(desc);
        if (!pass) {
                tap_state.failed++;
                printf("#   at %s:%d\n", file, line);
        }
        fflush(stdout);
        return pass;
}

__attribute__((format(printf, 4, 5))) static inline bool tap_ok_at(const char *file, int line, bool pass,
                                                                   const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        tap_vresult(file, line, pass, fmt, ap);
        va_end(ap);
        return pass;
}

__attribute__((format(printf, 5, 6))) static inline bool tap_is_int_at(const char *file, int line, intmax_t got,
                                                                       intmax_t want, const char *fmt, ...) {
        bool pass = got == want;
        va_list ap;

        va_start(ap, fmt);
        tap_vresult(file, line, pass, fmt, ap);
        va_end(ap);
        if (!pass)
                tap_diag("  got: %" PRIdMAX "\n  expected: %" PRIdMAX, got, want);
        return pass;
}

__attribute__((format(printf, 5, 6))) static inline bool tap_is_str_at(const char *file, int line, const char *got,
                                                                       const char *want, const char *fmt, ...) {
        bool pass = got && want ? strcmp(got, want) == 0 : got == want;
        va_list ap;

        va_start(ap, fmt);
        tap_vresult(file, line, pass, fmt, ap);
        va_end(ap);
        if (!pass) {
                tap_diag("  got: %s%s%s", got ? "\"" : "", got ?: "NULL", got ? "\"" : "");
                tap_diag("  expected: %s%s%s", want ? "\"" : "", want ?: "NULL", want ? "\"" : "");
        }
        return pass;
}

/* Checks; each returns whether it passed. */
#define tap_ok(cond, ...) tap_ok_at(__FILE__, __LINE__, !!(cond), __VA_ARGS__)
#define tap_is_int(got, want, ...) \
        tap_is_int_at(__FILE__, __LINE__, (intmax_t) (got), (intmax_t) (want), __VA_ARGS__)
#define tap_is_str(got, want, ...) tap_is_str_at(__FILE__, __LINE__, (got), (want), __VA_ARGS__)

/* A check that cannot run here: "ok N - desc # SKIP reason". */
__attribute__((format(printf, 2, 3))) static inline void tap_skip(const char *reason, const char *fmt, ...) {
        char *desc = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&desc, fmt, ap) < 0)
                desc = NULL;
        va_end(ap);
        tap_state.n++;
        tap_state.skipped++;
        printf("ok %u - ", tap_state.n);
        tap_print_desc(desc ?: "(out of memory)");
        printf(" # SKIP ");
        tap_print_desc(reason);
        putchar('\n');
        free(desc);
        fflush(stdout);
}

/* The whole program cannot run here (no root, no bpffs…): meson shows SKIP. */
static inline __attribute__((noreturn)) void tap_skip_all(const char *reason) {
        if (tap_state.n > 0) {
                /* Too late for "1..0": account for it as a skipped check. */
                tap_skip(reason, "remaining tests");
                printf("1..%u\n", tap_state.n);
                fflush(stdout);
                exit(tap_state.failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        printf("1..0 # SKIP ");
        tap_print_desc(reason);
        putchar('\n');
        fflush(stdout);
        exit(EXIT_SUCCESS);
}

/* Setup failed in a way that makes the remaining checks meaningless. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void tap_bail(const char *fmt, ...) {
        va_list ap;

        fputs("Bail out! ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        exit(EXIT_FAILURE);
}

/* Prints the plan; the exit code: 0 when nothing failed. */
static inline int tap_done(void) {
        if (tap_state.too_many)
                tap_ok_at(__FILE__, __LINE__, false, "at most %d TEST()s per program", TAP_MAX_TESTS);
        printf("1..%u\n", tap_state.n);
        if (tap_state.failed > 0)
                printf("# %u of %u failed\n", tap_state.failed, tap_state.n);
        fflush(stdout);
        return tap_state.failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static inline int tap_test_cmp(const void *a, const void *b) {
        return ((const TapTest *) a)->line - ((const TapTest *) b)->line;
}

/* Runs every TEST() (or those named in argv) in source order, then tap_done(). */
static inline int tap_run(int argc, char **argv) {
        qsort(tap_state.tests, tap_state.n_tests, sizeof(TapTest), tap_test_cmp);
        for (int i = 1; i < argc; i++) {
                bool found = false;

                for (size_t t = 0; t < tap_state.n_tests; t++)
                        found = found || strcmp(tap_state.tests[t].name, argv[i]) == 0;
                if (!found)
                        tap_ok_at(__FILE__, __LINE__, false, "no test named %s", argv[i]);
        }
        for (size_t t = 0; t < tap_state.n_tests; t++) {
                const TapTest *test = &tap_state.tests[t];
                bool wanted = argc <= 1;

                for (int i = 1; i < argc && !wanted; i++)
                        wanted = strcmp(test->name, argv[i]) == 0;
                if (!wanted)
                        continue;
                tap_diag("%s", test->name);
                test->func();
        }
        return tap_done();
}
