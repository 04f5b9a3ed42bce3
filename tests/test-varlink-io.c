/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto/varlink-io: framing, fd passing, limits and JSON intake over a socketpair. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "tap.h"
#include "varlink-io.h"

#define NUL_STR(s) (s), sizeof(s) /* a literal with its frame NUL */

static void socket_pair(int sv[2]) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                tap_bail("socketpair: %s", strerror(errno));
}

static void close_pair(int sv[2]) {
        sv[0] = safe_close(sv[0]);
        sv[1] = safe_close(sv[1]);
}

/* sendmsg without vl_send's checks, so tests can send what a hostile peer would. */
static ssize_t send_raw(int sock, const void *p, size_t len, const int *fds, size_t n_fds) {
        size_t space = CMSG_SPACE(sizeof(int) * n_fds);
        _cleanup_free_ char *control = n_fds > 0 ? calloc(1, space) : NULL;
        struct iovec iov = { .iov_base = (void *) p, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *c;

                if (!control)
                        return -ENOMEM;
                mh.msg_control = control;
                mh.msg_controllen = space;
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? negative_errno() : (ssize_t) len;
}

/* Reads until the socket is empty: 0, or the first error other than EAGAIN. */
static int fill_all(VlReader *r, int sock) {
        for (;;) {
                int n = vl_reader_fill(r, sock);

                if (n == -EAGAIN)
                        return 0;
                if (n <= 0)
                        return n;
        }
}

typedef struct Message {
        char *text;
        size_t len;
        int *fds;
        size_t n_fds;
} Message;

static void message_done(Message *m) {
        free(m->text);
        close_many(m->fds, m->n_fds);
        free(m->fds);
        *m = (Message) {};
}

static int next_message(VlReader *r, Message *m) {
        return vl_reader_next(r, &m->text, &m->len, &m->fds, &m->n_fds);
}

static int memfd_with(const char *content) {
        int fd = memfd_create("test-varlink-io", MFD_CLOEXEC);

        if (fd < 0)
                tap_bail("memfd_create: %s", strerror(errno));
        if (write(fd, content, strlen(content)) != (ssize_t) strlen(content))
                tap_bail("write to memfd: %s", strerror(errno));
        return fd;
}

/* What a memfd made by memfd_with() holds: tells which fd arrived. */
static const char *fd_content(int fd) {
        static char buf[64];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

        buf[n > 0 ? n : 0] = 0;
        return buf;
}

static int count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                tap_bail("/proc/self/fd: %s", strerror(errno));
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

TEST(several_messages_in_one_write) {
        static const char wire[] = "{\"a\":1}\0{\"b\":[2,3]}\0{}";
        const char *want[] = { "{\"a\":1}", "{\"b\":[2,3]}", "{}" };
        _cleanup_(vl_reader_done) VlReader r;
        int sv[2];

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        tap_is_int(send_raw(sv[0], wire, sizeof(wire), NULL, 0), sizeof(wire), "three messages in one write");
        tap_is_int(vl_reader_fill(&r, sv[1]), sizeof(wire), "one read takes them all");
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                Message m = {};

                tap_is_int(next_message(&r, &m), 1, "message %zu is complete", i);
                tap_is_str(m.text, want[i], "message %zu has its own text", i);
                tap_is_int(m.len, strlen(want[i]), "message %zu length excludes the NUL", i);
                message_done(&m);
        }
        {
                Message m = {};

                tap_is_int(next_message(&r, &m), 0, "nothing after the last NUL");
                tap_ok(!vl_reader_partial(&r), "no partial message left");
        }
        tap_is_int(vl_reader_fill(&r, sv[1]), -EAGAIN, "empty socket reads as -EAGAIN");
        close_pair(sv);
}

TEST(message_split_in_single_bytes) {
        static const char wire[] = "{\"method\":\"io.bpfcored.Status\",\"parameters\":{}}";
        _cleanup_(vl_reader_done) VlReader r;
        bool early = false, partial = true;
        Message m = {};
        int sv[2];

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        for (size_t i = 0; i < sizeof(wire); i++) {
                int k;

                if (send_raw(sv[0], wire + i, 1, NULL, 0) != 1 || vl_reader_fill(&r, sv[1]) != 1)
                        tap_bail("byte %zu did not go through", i);
                k = next_message(&r, &m);
                if (i + 1 < sizeof(wire)) {
                        early = early || k != 0;
                        partial = partial && vl_reader_partial(&r);
                }
        }
        tap_ok(!early, "no message before the NUL arrives");
        tap_ok(partial, "the reader reports a partial message until then");
        tap_is_str(m.text, wire, "the message is whole after %zu one-byte writes", sizeof(wire));
        tap_ok(!vl_reader_partial(&r), "nothing left over");
        message_done(&m);
        close_pair(sv);
}

TEST(fds_travel_with_their_message) {
        _cleanup_(vl_reader_done) VlReader r;
        Message a = {}, b = {};
        int sv[2], fd;

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        fd = memfd_with("A");
        tap_is_int(send_raw(sv[0], NUL_STR("{\"n\":\"A\"}"), &fd, 1), sizeof("{\"n\":\"A\"}"), "A sent with an fd");
        fd = safe_close(fd);
        tap_is_int(send_raw(sv[0], NUL_STR("{\"n\":\"B\"}"), NULL, 0), sizeof("{\"n\":\"B\"}"), "B sent without");
        tap_is_int(fill_all(&r, sv[1]), 0, "both read");

        tap_is_int(next_message(&r, &a), 1, "A is complete");
        tap_is_str(a.text, "{\"n\":\"A\"}", "A comes first");
        if (tap_is_int(a.n_fds, 1, "A carries one fd"))
                tap_is_str(fd_content(a.fds[0]), "A", "it is the fd sent with A");
        tap_is_int(next_message(&r, &b), 1, "B is complete");
        tap_is_int(b.n_fds, 0, "B carries none");
        message_done(&a);
        message_done(&b);
        close_pair(sv);
}

/* The kernel may return B's fds from a read that starts in A's bytes. */
TEST(fds_not_given_to_earlier_message) {
        _cleanup_(vl_reader_done) VlReader r;
        Message a = {}, b = {};
        int sv[2], fd;

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        tap_is_int(send_raw(sv[0], NUL_STR("{\"n\":\"A\"}"), NULL, 0), sizeof("{\"n\":\"A\"}"), "A sent without fds");
        fd = memfd_with("B");
        tap_is_int(send_raw(sv[0], NUL_STR("{\"n\":\"B\"}"), &fd, 1), sizeof("{\"n\":\"B\"}"), "B sent with an fd");
        fd = safe_close(fd);
        tap_is_int(fill_all(&r, sv[1]), 0, "both read");

        tap_is_int(next_message(&r, &a), 1, "A is complete");
        tap_is_int(a.n_fds, 0, "A carries no fd");
        tap_is_int(next_message(&r, &b), 1, "B is complete");
        if (tap_is_int(b.n_fds, 1, "B carries one fd"))
                tap_is_str(fd_content(b.fds[0]), "B", "it is the fd sent with B");
        message_done(&a);
        message_done(&b);
        close_pair(sv);
}

TEST(fds_of_two_messages_stay_apart) {
        _cleanup_(vl_reader_done) VlReader r;
        Message a = {}, b = {};
        int sv[2], fds[3];

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        fds[0] = memfd_with("A0");
        fds[1] = memfd_with("A1");
        fds[2] = memfd_with("B0");
        tap_ok(send_raw(sv[0], NUL_STR("{\"n\":\"A\"}"), fds, 2) > 0, "A sent with two fds");
        tap_ok(send_raw(sv[0], NUL_STR("{\"n\":\"B\"}"), fds + 2, 1) > 0, "B sent with one");
        close_many(fds, ELEMENTSOF(fds));
        tap_is_int(fill_all(&r, sv[1]), 0, "both read");

        tap_is_int(next_message(&r, &a), 1, "A is complete");
        if (tap_is_int(a.n_fds, 2, "A carries two fds")) {
                tap_is_str(fd_content(a.fds[0]), "A0", "A's first fd");
                tap_is_str(fd_content(a.fds[1]), "A1", "A's second fd, in order");
        }
        tap_is_int(next_message(&r, &b), 1, "B is complete");
        if (tap_is_int(b.n_fds, 1, "B carries one fd"))
                tap_is_str(fd_content(b.fds[0]), "B0", "B's own fd");
        message_done(&a);
        message_done(&b);
        close_pair(sv);
}

/* A message handed out in place: its fds as with vl_reader_next(), no read until it is consumed. */
TEST(peek_in_place) {
        _cleanup_(vl_reader_done) VlReader r;
        const char *text = NULL;
        int sv[2], fd, *fds = NULL;
        size_t len = 0, n_fds = 0;
        Message b = {};

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        fd = memfd_with("A0");
        tap_ok(send_raw(sv[0], NUL_STR("{\"n\":\"A\"}"), &fd, 1) > 0, "A sent with an fd");
        safe_close(fd);
        tap_ok(send_raw(sv[0], NUL_STR("{\"n\":\"B\"}"), NULL, 0) > 0, "B sent");
        tap_is_int(fill_all(&r, sv[1]), 0, "both read");

        tap_is_int(vl_reader_peek(&r, &text, &len, &fds, &n_fds), 1, "A is complete");
        tap_ok(text == r.buf, "A's text is the reader's buffer, not a copy");
        tap_is_str(text, "{\"n\":\"A\"}", "A's text, NUL-terminated");
        tap_is_int(len, 9, "its length");
        if (tap_is_int(n_fds, 1, "A carries its fd"))
                tap_is_str(fd_content(fds[0]), "A0", "A's fd");
        tap_is_int(vl_reader_fill(&r, sv[1]), -EBUSY, "no read while A is handed out");
        tap_is_int(vl_reader_peek(&r, &text, &len, &fds, &n_fds), -EBUSY, "nor a second peek");
        close_many(fds, n_fds);
        free(fds);
        vl_reader_consume(&r);
        tap_is_int(next_message(&r, &b), 1, "after consuming A, B is next");
        tap_is_str(b.text, "{\"n\":\"B\"}", "B's text");
        tap_is_int(b.n_fds, 0, "B carries no fd");
        tap_is_int(vl_reader_peek(&r, &text, &len, &fds, &n_fds), 0, "nothing more");
        message_done(&b);
        close_pair(sv);
}

TEST(message_size_limit) {
        enum { MAX = 64 };
        char wire[MAX + 2];
        int sv[2];

        /* Exactly max_message bytes of JSON (plus the NUL) is allowed. */
        {
                _cleanup_(vl_reader_done) VlReader r;
                Message m = {};

                socket_pair(sv);
                vl_reader_init(&r, MAX);
                memset(wire, ' ', MAX);
                memcpy(wire, "{}", 2);
                wire[MAX] = 0;
                send_raw(sv[0], wire, MAX + 1, NULL, 0);
                tap_is_int(vl_reader_fill(&r, sv[1]), MAX + 1, "a message of max_message bytes is read");
                tap_is_int(next_message(&r, &m), 1, "and is complete");
                tap_is_int(m.len, MAX, "with all its bytes");
                message_done(&m);
                close_pair(sv);
        }
        /* One byte more, terminated or not, is refused. */
        for (int terminated = 0; terminated <= 1; terminated++) {
                _cleanup_(vl_reader_done) VlReader r;

                socket_pair(sv);
                vl_reader_init(&r, MAX);
                memset(wire, ' ', sizeof(wire));
                memcpy(wire, "{}", 2);
                wire[MAX + 1] = terminated ? 0 : ' ';
                send_raw(sv[0], wire, sizeof(wire), NULL, 0);
                tap_is_int(fill_all(&r, sv[1]), -EMSGSIZE, "max_message + 1 bytes (%s) give -EMSGSIZE",
                           terminated ? "NUL-terminated" : "no NUL yet");
                close_pair(sv);
        }
        /* A stream that never sends a NUL cannot grow the buffer past the limit. */
        {
                _cleanup_(vl_reader_done) VlReader r;
                char junk[4096];

                socket_pair(sv);
                vl_reader_init(&r, MAX);
                memset(junk, 'x', sizeof(junk));
                send_raw(sv[0], junk, sizeof(junk), NULL, 0);
                tap_is_int(fill_all(&r, sv[1]), -EMSGSIZE, "endless message gives -EMSGSIZE");
                tap_ok(r.alloc <= MAX + 1, "buffer stayed within max_message + 1 (%zu)", r.alloc);
                close_pair(sv);
        }
}

/* The writer keeps to the reader's limit: a message no reader would take is refused before it is queued. */
TEST(writer_size_limit) {
        for (size_t extra = 0; extra <= 1; extra++) {
                VlWriter w = {};
                json_object *msg = json_object_new_object();
                /* {"s":"…"} is 8 bytes around the string */
                size_t n = VL_MAX_MESSAGE - 8 + extra;
                char *big = malloc(n);
                int fd = memfd_with("x"), before = count_open_fds();

                memset(big, 'a', n);
                json_object_object_add(msg, "s", json_object_new_string_len(big, (int) n));
                tap_is_int(vl_writer_queue(&w, msg, &fd, 1), extra ? -EMSGSIZE : 0,
                           "a message of VL_MAX_MESSAGE%s bytes is %s", extra ? " + 1" : "",
                           extra ? "refused (-EMSGSIZE)" : "queued");
                tap_ok(vl_writer_empty(&w) == !!extra, "%s", extra ? "nothing is queued" : "it waits to be sent");
                if (extra)
                        tap_is_int(count_open_fds(), before - 1, "and its fd is closed");
                json_object_put(msg);
                free(big);
                vl_writer_done(&w);
        }
}

TEST(too_many_fds) {
        int fds[VL_MAX_FDS + 1], before, sv[2], r_fill;

        before = count_open_fds();
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = memfd_with("x");

        {
                json_object *msg = json_object_new_object();

                socket_pair(sv);
                tap_is_int(vl_send(sv[0], msg, fds, ELEMENTSOF(fds)), -ETOOMANYREFS, "vl_send refuses %zu fds",
                           ELEMENTSOF(fds));
                tap_ok(fcntl(fds[0], F_GETFD) >= 0, "and leaves them to the caller");
                tap_is_int(recv(sv[1], &(char) { 0 }, 1, MSG_DONTWAIT), -1, "nothing was sent");
                json_object_put(msg);
                close_pair(sv);
        }

        /* Received: all of them are closed, none leaks into the process. */
        {
                _cleanup_(vl_reader_done) VlReader r;

                socket_pair(sv);
                vl_reader_init(&r, VL_MAX_MESSAGE);
                tap_ok(send_raw(sv[0], NUL_STR("{}"), fds, ELEMENTSOF(fds)) > 0, "peer sends %zu fds",
                       ELEMENTSOF(fds));
                r_fill = fill_all(&r, sv[1]);
                tap_ok(r_fill < 0, "reading them fails (%s)", strerror(-r_fill));
                tap_is_int(r_fill, -ETOOMANYREFS, "with -ETOOMANYREFS");
                close_pair(sv);
        }
        close_many(fds, ELEMENTSOF(fds));
        tap_is_int(count_open_fds(), before, "every received fd was closed");

        /* Queued: the writer owns them and closes them. */
        {
                VlWriter w = {};
                json_object *msg = json_object_new_object();

                for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                        fds[i] = memfd_with("x");
                tap_is_int(vl_writer_queue(&w, msg, fds, ELEMENTSOF(fds)), -ETOOMANYREFS,
                           "vl_writer_queue refuses %zu fds", ELEMENTSOF(fds));
                tap_ok(vl_writer_empty(&w), "nothing is queued");
                tap_is_int(count_open_fds(), before, "and the fds it was given are closed");
                json_object_put(msg);
                vl_writer_done(&w);
        }
}

TEST(fds_limit_counts_one_message) {
        _cleanup_(vl_reader_done) VlReader r;
        int fds[VL_MAX_FDS], sv[2];
        Message m = {};
        bool ok = true;

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = memfd_with("x");
        /* Two messages with the maximum each, each consumed before the next is read. */
        for (int round = 0; round < 2; round++) {
                ok = ok && send_raw(sv[0], NUL_STR("{}"), fds, ELEMENTSOF(fds)) > 0;
                ok = ok && fill_all(&r, sv[1]) == 0;
                ok = ok && next_message(&r, &m) == 1 && m.n_fds == VL_MAX_FDS;
                message_done(&m);
        }
        tap_ok(ok, "%u fds per message are accepted, message after message", VL_MAX_FDS);
        close_many(fds, ELEMENTSOF(fds));
        close_pair(sv);
}

TEST(eof) {
        _cleanup_(vl_reader_done) VlReader r;
        Message m = {};
        int sv[2];

        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        send_raw(sv[0], "{\"cut\":", 7, NULL, 0);
        sv[0] = safe_close(sv[0]);
        tap_is_int(fill_all(&r, sv[1]), 0, "EOF after half a message");
        tap_is_int(vl_reader_fill(&r, sv[1]), 0, "reads as 0");
        tap_is_int(next_message(&r, &m), 0, "no message comes out of it");
        tap_ok(vl_reader_partial(&r), "the reader says a message was cut short");
        close_pair(sv);
}

TEST(parse_accepts) {
        static const char text[] = "{\"method\":\"io.bpfcored.Load\",\"parameters\":{\"name\":\"caf\xc3\xa9\",\"fd\":0}}";
        json_object *o = NULL, *params, *name;
        char *reason = NULL;

        tap_is_int(vl_parse(text, strlen(text), &o, &reason), 0, "a call parses");
        tap_ok(json_object_object_get_ex(o, "parameters", &params) &&
                       json_object_object_get_ex(params, "name", &name),
               "its parameters are there");
        tap_is_str(o ? json_object_get_string(name) : NULL, "caf\xc3\xa9", "UTF-8 text comes through");
        json_object_put(o);
        free(reason);
}

TEST(parse_rejects) {
        static const struct {
                const char *what;
                const char *text;
        } bad[] = {
                { "invalid JSON", "{\"a\":}" },
                { "a truncated object", "{\"a\":1" },
                { "an empty message", "" },
                { "a single-quoted string", "{\"a\":'b'}" },
                { "a trailing comma", "{\"a\":1,}" },
                { "an array", "[1,2]" },
                { "a number", "42" },
                { "a string", "\"method\"" },
                { "null", "null" },
                { "trailing bytes", "{\"a\":1} x" },
                { "two objects", "{\"a\":1}{\"b\":2}" },
                { "invalid UTF-8", "{\"a\":\"\xff\"}" },
                { "an overlong UTF-8 sequence", "{\"a\":\"\xc0\xaf\"}" },
                { "a UTF-8 encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}" },
                { "UTF-8 beyond U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}" },
                { "a truncated UTF-8 sequence", "{\"a\":\"\xe2\x82\"}" },
                { "invalid UTF-8 in a key", "{\"\xfe\":1}" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_object *o = NULL;
                char *reason = NULL;
                int r = vl_parse(bad[i].text, strlen(bad[i].text), &o, &reason);

                tap_is_int(r, -EBADMSG, "%s is rejected", bad[i].what);
                if (r == -EBADMSG)
                        tap_ok(reason && *reason, "with a reason (%s)", reason ?: "none");
                else
                        json_object_put(o);
                free(reason);
        }
}

static char *nested(int depth) {
        char *s = malloc((size_t) depth * 6 + 2), *p = s;

        if (!s)
                tap_bail("out of memory");
        for (int i = 0; i < depth; i++)
                p = stpcpy(p, "{\"a\":");
        *p++ = '1';
        for (int i = 0; i < depth; i++)
                *p++ = '}';
        *p = 0;
        return s;
}

TEST(parse_depth) {
        /* The exact boundary is json-c's to count; either side of it is ours. */
        const int depths[] = { VL_MAX_JSON_DEPTH - 1, VL_MAX_JSON_DEPTH + 1, 10000 };

        for (size_t i = 0; i < ELEMENTSOF(depths); i++) {
                _cleanup_free_ char *text = nested(depths[i]);
                bool want_ok = depths[i] < VL_MAX_JSON_DEPTH;
                json_object *o = NULL;
                char *reason = NULL;
                int r = vl_parse(text, strlen(text), &o, &reason);

                if (want_ok)
                        tap_is_int(r, 0, "%d nested objects are accepted", depths[i]);
                else
                        tap_is_int(r, -EBADMSG, "%d nested objects are rejected (%s)", depths[i],
                                   reason ?: "no reason");
                if (r == 0)
                        json_object_put(o);
                free(reason);
        }
}

static json_object *numbered(int seq, size_t pad) {
        json_object *o = json_object_new_object();
        char *filler = malloc(pad + 1);

        if (!o || !filler)
                tap_bail("out of memory");
        memset(filler, 'p', pad);
        filler[pad] = 0;
        json_object_object_add(o, "seq", json_object_new_int(seq));
        json_object_object_add(o, "pad", json_object_new_string(filler));
        free(filler);
        return o;
}

/* Whether `sent` bytes of the queue end inside a message rather than between two. */
static bool mid_message(const size_t *lengths, size_t n, size_t sent) {
        for (size_t i = 0, at = 0; i < n && at <= sent; at += lengths[i++])
                if (at == sent)
                        return false;
        return true;
}

/*
 * Messages larger than the socket buffer go out in pieces, each flush
 * sending the tail of one message (no fds) and the head of the next (with
 * its fd): the fds must still reach the reader with the right message.
 */
TEST(writer_across_full_buffer) {
        enum { N = 16, PAD = 20000 };
        _cleanup_(vl_reader_done) VlReader r;
        int sv[2], before, sndbuf = 4096, received = 0, rounds = 0, flush, blocked = 0, split = 0;
        bool in_order = true, fds_match = true;
        size_t lengths[N], total = 0;
        VlWriter w = {};

        before = count_open_fds();
        socket_pair(sv);
        vl_reader_init(&r, VL_MAX_MESSAGE);
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
                tap_bail("SO_SNDBUF: %s", strerror(errno));

        for (int i = 0; i < N; i++) {
                json_object *msg = numbered(i, PAD);
                char content[16];
                int fd;

                lengths[i] = strlen(json_object_to_json_string_ext(
                                     msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) + 1;
                total += lengths[i];
                snprintf(content, sizeof(content), "fd %d", i);
                fd = memfd_with(content);
                if (vl_writer_queue(&w, msg, &fd, 1) < 0)
                        tap_bail("vl_writer_queue failed");
                json_object_put(msg);
        }
        tap_is_int(w.queued, total, "%d messages queued, each framed with a NUL", N);

        flush = vl_writer_flush(&w, sv[0]);
        tap_is_int(flush, 0, "the first flush stops at a full socket buffer");
        tap_ok(!vl_writer_empty(&w) && w.queued > 0, "and keeps the rest queued (%zu bytes)", w.queued);

        /* Drain on the other side, flush again, until all has come through. */
        while (received < N && rounds++ < 10000) {
                Message m = {};
                int k;

                if (fill_all(&r, sv[1]) < 0)
                        break;
                while ((k = next_message(&r, &m)) == 1) {
                        json_object *o = NULL, *seq;
                        char *reason = NULL;
                        char want[16];

                        if (vl_parse(m.text, m.len, &o, &reason) < 0 ||
                            !json_object_object_get_ex(o, "seq", &seq) || json_object_get_int(seq) != received)
                                in_order = false;
                        snprintf(want, sizeof(want), "fd %d", received);
                        if (m.n_fds != 1 || strcmp(fd_content(m.fds[0]), want) != 0) {
                                if (fds_match)
                                        tap_diag("message %d came with %zu fds%s%s", received, m.n_fds,
                                                 m.n_fds > 0 ? ", the first holding " : "",
                                                 m.n_fds > 0 ? fd_content(m.fds[0]) : "");
                                fds_match = false;
                        }
                        json_object_put(o);
                        free(reason);
                        message_done(&m);
                        received++;
                }
                if (k < 0)
                        break;
                flush = vl_writer_flush(&w, sv[0]);
                if (flush < 0)
                        break;
                if (flush == 0) {
                        blocked++;
                        split += mid_message(lengths, N, total - w.queued);
                }
        }
        tap_is_int(received, N, "every message arrives");
        tap_ok(in_order, "in order and intact");
        tap_ok(blocked > 0 && split > 0, "the writer waited %d times, %d of them mid-message", blocked, split);
        tap_ok(fds_match, "each message came with exactly its own fd");
        tap_ok(vl_writer_empty(&w) && w.queued == 0, "the writer is empty at the end");
        vl_writer_done(&w);
        close_pair(sv);
        vl_reader_done(&r);
        tap_is_int(count_open_fds(), before, "the writer closed every fd it sent");
}

TAP_MAIN
