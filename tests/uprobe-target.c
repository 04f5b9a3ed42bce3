/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The binary the attach tests probe: calls bpfcored_probe_me(i) for i in
 * 0..N-1 (N from argv[1], default 1) and exits 0 when the sum of its
 * returns is right.
 */
#include <stdlib.h>

int bpfcored_probe_me(int x);

__attribute__((noinline)) int bpfcored_probe_me(int x) {
        return 2 * x;
}

/* Called through a volatile pointer: the compiler can neither inline nor clone the probed function. */
static int (*volatile probe_me)(int) = bpfcored_probe_me;

int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 1, sum = 0;

        for (int i = 0; i < n; i++)
                sum += probe_me(i);
        return sum == n * (n - 1) ? EXIT_SUCCESS : EXIT_FAILURE;
}
