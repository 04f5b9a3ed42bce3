/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every fuzz target defines: libFuzzer's entry points. The same target
 * links either with libFuzzer (-Dfuzz=true, clang) or with replay.c, which
 * runs it over files (the default build, where CI replays every input).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Larger inputs are ignored: the parsers' own limits are far above what a fuzzer can explore. */
#define FUZZ_INPUT_MAX (1u * 1024 * 1024)

/* Optional: once, before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: abort() so that libFuzzer keeps the input and replay fails. */
#define FUZZ_CHECK(cond)                                                                                    \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);            \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)
