/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbpf's debug log of a load, captured and read back: what libbpf itself
 * did to each CO-RE relocation, to hold the planner's report against.
 */
#pragma once

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum LibbpfVerdict {
        LIBBPF_PATCHED,
        LIBBPF_POISONED,
        LIBBPF_FAILED,
} LibbpfVerdict;

/* One relocation as libbpf logged it: "prog 'P': relo #N: …". */
typedef struct LibbpfRelo {
        char prog[64];
        int relo;          /* libbpf's relo #, within the program's section */
        long long insn;    /* the instruction patched; a poisoned ldimm64's first half */
        uint64_t value;    /* the value patched in (libbpf logs it as u64) */
        LibbpfVerdict verdict;
} LibbpfRelo;

static FILE *libbpf_log_stream;

static int libbpf_log_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
        return libbpf_log_stream ? vfprintf(libbpf_log_stream, fmt, ap) : 0;
}

/* From here libbpf's whole log goes to *buf (until libbpf_log_end()); returns the print function to restore. */
static inline libbpf_print_fn_t libbpf_log_begin(char **buf, size_t *size) {
        libbpf_log_stream = open_memstream(buf, size);
        return libbpf_set_print(libbpf_log_print);
}

static inline void libbpf_log_end(libbpf_print_fn_t old) {
        libbpf_set_print(old);
        if (libbpf_log_stream)
                fclose(libbpf_log_stream);
        libbpf_log_stream = NULL;
}

/*
 * One entry per program and relo # in log: the value patched (a load's
 * mem_sz line aside), poisoned (libbpf logs both halves of an ldimm64: the
 * first is kept), or failed (a failure outweighs the rest). *ret is
 * malloc'd; returns how many.
 */
static inline size_t libbpf_log_relocations(const char *log, LibbpfRelo **ret) {
        LibbpfRelo *v = NULL;
        size_t n = 0;

        for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                const char *p = strstr(line, "prog '"), *eol = strchr(line, '\n');
                LibbpfRelo e = {};
                unsigned long long value = 0;
                char word[16];
                size_t k;

                if (!p || (eol && p > eol))
                        continue;
                if (sscanf(p, "prog '%63[^']': relo #%d: patched insn #%lld (%*[^)]) %15s %*u -> %llu", e.prog,
                           &e.relo, &e.insn, word, &value) == 5) {
                        if (strcmp(word, "mem_sz") == 0)
                                continue; /* the load's size, beside the offset patched in its own line */
                        e.value = value;
                } else if (sscanf(p, "prog '%63[^']': relo #%d: substituting insn #%lld", e.prog, &e.relo, &e.insn) == 3)
                        e.verdict = LIBBPF_POISONED;
                else if (sscanf(p, "prog '%63[^']': relo #%d: failed to %15s", e.prog, &e.relo, word) == 3)
                        e.verdict = LIBBPF_FAILED;
                else
                        continue;
                for (k = 0; k < n; k++)
                        if (v[k].relo == e.relo && strcmp(v[k].prog, e.prog) == 0)
                                break;
                if (k == n) {
                        LibbpfRelo *bigger = realloc(v, (n + 1) * sizeof(*v));

                        if (!bigger)
                                break;
                        v = bigger;
                        v[n++] = e;
                } else if (e.verdict == LIBBPF_FAILED)
                        v[k].verdict = LIBBPF_FAILED;
                else if (e.verdict == LIBBPF_POISONED && e.insn < v[k].insn)
                        v[k].insn = e.insn;
        }
        *ret = v;
        return n;
}
