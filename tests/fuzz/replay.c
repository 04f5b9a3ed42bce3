/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs a fuzz target over inputs without libFuzzer, for the normal build:
 * every file named, and every file of every directory named (sorted, dot
 * files skipped), one TAP line each. A crash or a sanitizer report ends the
 * run before its line and before the plan, so meson reports it as failed.
 *
 *   fuzz-object corpus/fuzz-object crashes/fuzz-object build/tests/bpf/tp_core.bpf.o
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

static unsigned n_tests, n_failed;

/* The last two components of path ("corpus/fuzz-object", "bpf/tp_core.bpf.o"), for the TAP lines. */
static const char *short_name(const char *path) {
        const char *p = path + strlen(path);
        unsigned slashes = 0;

        for (; p > path; p--)
                if (p[-1] == '/' && ++slashes == 2)
                        break;
        return p;
}

static int read_all(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t done = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        /* Exactly the input's size, so that the sanitizers see a read past its end. */
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!buf)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + done, (size_t) st.st_size - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO; /* shrank while read */
                done += (size_t) n;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = done;
        return 0;
}

static void replay_file(const char *path, const char *name) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r = read_all(path, &data, &size);

        n_tests++;
        if (r < 0) {
                n_failed++;
                printf("not ok %u - %s\n# cannot read %s: %s\n", n_tests, name, path, strerror(-r));
                return;
        }
        LLVMFuzzerTestOneInput(data, size);
        printf("ok %u - %s (%zu bytes)\n", n_tests, name, size);
        fflush(stdout);
}

static int skip_dot(const struct dirent *de) {
        return de->d_name[0] != '.';
}

static void replay_dir(const char *dir) {
        struct dirent **list = NULL;
        int n = scandir(dir, &list, skip_dot, alphasort);

        if (n < 0) {
                n_tests++, n_failed++;
                printf("not ok %u - %s\n# cannot list %s: %s\n", n_tests, short_name(dir), dir,
                       strerror(errno));
                return;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *name = NULL;
                struct stat st;

                if (asprintf(&path, "%s/%s", dir, list[i]->d_name) < 0 ||
                    asprintf(&name, "%s/%s", short_name(dir), list[i]->d_name) < 0)
                        abort();
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                        replay_file(path, name);
                free(list[i]);
        }
        free(list);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) /* "dir/" names its files "dir/file" too */
                for (size_t n = strlen(argv[i]); n > 1 && argv[i][n - 1] == '/'; n--)
                        argv[i][n - 1] = 0;
        LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                        replay_dir(argv[i]);
                else
                        replay_file(argv[i], short_name(argv[i]));
        }
        printf("1..%u\n", n_tests);
        if (n_failed > 0)
                printf("# %u of %u failed\n", n_failed, n_tests);
        return n_failed > 0;
}
