/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The varlink framing as the daemon reads a connection (daemon/varlink.c,
 * connection_process): a stream written in pieces into one end of a
 * socketpair, some pieces carrying fds, read back through VlReader, every
 * complete message parsed by vl_parse().
 *
 * Input: byte 0 picks the message size limit and whether fds are sent,
 * byte 1 seeds the piece sizes, the rest is the stream. Checked: every
 * message is exactly the next stream bytes up to a NUL, no message carries
 * more than VL_MAX_FDS fds, and no fd is left open afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"
#include "varlink-io.h"

static int devnull = -1;

typedef struct Stream {
        const uint8_t *data;
        size_t size;
        size_t consumed; /* stream bytes handed out as messages, with their NULs */
        VlReader reader;
        int sock[2]; /* [0] the client's end, [1] the daemon's */
} Stream;

static unsigned open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        FUZZ_CHECK(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void take_message(Stream *s, char *text, size_t len, int *fds, size_t n_fds) {
        json_object *msg = NULL;
        char *reason = NULL;
        int r;

        FUZZ_CHECK(len <= s->reader.max_message);
        FUZZ_CHECK(s->consumed + len < s->size);
        FUZZ_CHECK(memcmp(text, s->data + s->consumed, len) == 0);
        FUZZ_CHECK(text[len] == 0 && s->data[s->consumed + len] == 0);
        s->consumed += len + 1;

        FUZZ_CHECK(n_fds <= VL_MAX_FDS);
        for (size_t i = 0; i < n_fds; i++)
                FUZZ_CHECK(fcntl(fds[i], F_GETFD) >= 0);
        close_many(fds, n_fds);

        r = vl_parse(text, len, &msg, &reason);
        if (r >= 0) {
                FUZZ_CHECK(json_object_is_type(msg, json_type_object));
                /* The daemon echoes parts of a bad call back: the parsed value must serialize. */
                FUZZ_CHECK(json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
                json_object_put(msg);
        } else
                FUZZ_CHECK((r == -EBADMSG && reason) || r == -ENOMEM);
        free(reason);
        free(text);
        free(fds);
}

/* Messages first, then one more read, until the socket is drained: 0, or <0 when the daemon would
 * drop the connection (EOF included). */
static int serve(Stream *s) {
        for (;;) {
                char *text;
                size_t len, n_fds;
                int *fds, r;

                r = vl_reader_next(&s->reader, &text, &len, &fds, &n_fds);
                if (r < 0)
                        return r;
                if (r > 0) {
                        take_message(s, text, len, fds, n_fds);
                        continue;
                }
                r = vl_reader_fill(&s->reader, s->sock[1]);
                if (r == -EAGAIN)
                        return 0;
                if (r == 0)
                        return -ECONNRESET;
                if (r < 0) {
                        FUZZ_CHECK(r == -EMSGSIZE || r == -ETOOMANYREFS || r == -ENOMEM);
                        return r;
                }
        }
}

static ssize_t send_piece(int sock, const uint8_t *p, size_t len, size_t n_fds) {
        union {
                struct cmsghdr hdr;
                char buf[CMSG_SPACE(sizeof(int) * (VL_MAX_FDS + 1))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) p, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                for (size_t i = 0; i < n_fds; i++)
                        memcpy(CMSG_DATA(c) + i * sizeof(int), &devnull, sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static uint32_t next_random(uint32_t *state) {
        /* xorshift32: the piece sizes are a function of the input alone. */
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        return *state;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(devnull >= 0);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t limits[] = { 1, 16, 4096, VL_MAX_MESSAGE };
        Stream s = { .data = data + 2, .size = size >= 2 ? size - 2 : 0, .sock = { -1, -1 } };
        bool with_fds;
        uint32_t rnd;
        unsigned fds_before;
        size_t sent = 0;
        int r = 0;

        if (size < 2 || size > FUZZ_INPUT_MAX)
                return -1;
        with_fds = data[0] & 4;
        rnd = 0x9e3779b9u ^ data[1] ^ (uint32_t) data[0] << 8;
        fds_before = open_fds();
        vl_reader_init(&s.reader, limits[data[0] & 3]);
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.sock) == 0);

        while (sent < s.size && r == 0) {
                uint32_t x = next_random(&rnd);
                /* Small pieces and large ones, so that messages and reads straddle. */
                size_t piece = x & 0x100 ? (x >> 9) % 65536 + 1 : (x >> 9) % 256 + 1;
                size_t n_fds = with_fds && (x & 0x7) == 0 ? (x >> 3) % (VL_MAX_FDS + 2) : 0;
                ssize_t n;

                n = send_piece(s.sock[0], s.data + sent, MIN(piece, s.size - sent), n_fds);
                if (n < 0) {
                        FUZZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
                        r = serve(&s);
                        continue;
                }
                sent += (size_t) n;
                r = serve(&s);
        }
        if (r == 0) {
                FUZZ_CHECK(shutdown(s.sock[0], SHUT_WR) == 0);
                r = serve(&s);
                FUZZ_CHECK(r < 0);
                /* At EOF all up to the last NUL was handed out, unless a limit ended the connection. */
                if (r == -ECONNRESET)
                        FUZZ_CHECK(s.size - s.consumed == s.reader.len &&
                                   !memchr(s.data + s.consumed, 0, s.size - s.consumed));
        }

        vl_reader_done(&s.reader);
        safe_close(s.sock[0]);
        safe_close(s.sock[1]);
        FUZZ_CHECK(open_fds() == fds_before);
        return 0;
}
