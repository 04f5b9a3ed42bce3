/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile clients against a private daemon, while a bystander client keeps
 * calling Status on its own connection: every phase asserts the bystander
 * was answered during it. What test-integration covers already (a message
 * past the limit by 4 KiB, 17 fds, a client stalled or vanishing
 * mid-message, malformed JSON) is not repeated here.
 *
 * The daemon is started with the soft RLIMIT_NOFILE systemd gives services
 * (1024), so the connection limit (1024) meets the fd limit as it would in
 * production.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "protocol.h"
#include "tap.h"

#define IDLE_CONNECTIONS 1000

static TestDaemon d;
static unsigned max_connections; /* Status: limits.connections */
static uint32_t *progs_before;
static size_t n_progs_before;

/* The bystander: Status in a loop on one connection, from its own thread. */
static pthread_t bystander;
static atomic_bool bystander_stop;
static atomic_uint bystander_ok, bystander_failed;
static atomic_ullong bystander_max_us;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
}

static void *bystander_run(void *arg) {
        BpfcoreClient *c = NULL;

        if (bpfcore_connect(d.socket_path, &c) < 0) {
                bystander_failed++;
                return NULL;
        }
        while (!bystander_stop) {
                BpfcoreReply r = {};
                uint64_t t0 = now_usec(), dt;

                if (bpfcore_call(c, "io.bpfcored.Status", NULL, NULL, 0, &r) == 0 && !r.error &&
                    json_int(r.parameters, "uptime_us") >= 0)
                        bystander_ok++;
                else
                        bystander_failed++;
                dt = now_usec() - t0;
                if (dt > bystander_max_us)
                        bystander_max_us = dt;
                bpfcore_reply_done(&r);
                sleep_ms(2);
        }
        bpfcore_disconnect(c);
        return NULL;
}

/* True when the bystander got at least one more answer (within 10 s) and no failure since *mark. */
static bool bystander_served(unsigned *mark) {
        unsigned start = *mark;

        for (int i = 0; i < 1000 && bystander_ok <= start; i++)
                sleep_ms(10);
        *mark = bystander_ok;
        return bystander_ok > start && bystander_failed == 0;
}

static int raw_connect(void) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        strcpy(sa.sun_path, d.socket_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static bool write_all(int fd, const void *data, size_t size) {
        size_t done = 0;

        while (done < size) {
                ssize_t n = send(fd, (const char *) data + done, size - done, MSG_NOSIGNAL);
                if (n <= 0)
                        return false;
                done += (size_t) n;
        }
        return true;
}

/* One NUL-terminated reply (whole, up to max bytes); NULL on EOF or after timeout_ms of silence. */
static char *read_reply(int fd, int timeout_ms, bool *ret_eof) {
        char *buf = NULL;
        size_t len = 0, alloc = 0;

        *ret_eof = false;
        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                char chunk[1];
                ssize_t n;

                if (poll(&pfd, 1, timeout_ms) <= 0)
                        break;
                /* A byte at a time: what follows the NUL is the next reply's. */
                n = read(fd, chunk, 1);
                if (n <= 0) {
                        *ret_eof = true;
                        break;
                }
                if (len + 2 > alloc) {
                        alloc = alloc ? alloc * 2 : 4096;
                        buf = realloc(buf, alloc);
                }
                buf[len++] = chunk[0];
                buf[len] = 0;
                if (chunk[0] == 0)
                        return buf;
        }
        free(buf);
        return NULL;
}

static bool eof_follows(int fd) {
        bool eof;

        free(read_reply(fd, 5000, &eof));
        return eof;
}

static unsigned daemon_fds(void) {
        long n = harness_pid_fds(d.pid);

        return n < 0 ? 0 : (unsigned) n;
}

/* The count once hang-ups of earlier phases are processed: the same for 200 ms. */
static unsigned daemon_fds_quiet(void) {
        unsigned n = daemon_fds(), same = 0;

        for (int i = 0; i < 200 && same < 4; i++) {
                unsigned now;

                sleep_ms(50);
                now = daemon_fds();
                same = now == n ? same + 1 : 0;
                n = now;
        }
        return n;
}

/* The daemon's fd count settles once it has seen the hang-ups: wait for it to reach want. */
static unsigned daemon_fds_settle(unsigned want) {
        unsigned n = daemon_fds();

        for (int i = 0; i < 300 && n > want; i++) {
                sleep_ms(10);
                n = daemon_fds();
        }
        return n;
}

TEST(start) {
        struct rlimit rl, service = {.rlim_cur = 1024};
        int r;

        kernel_prog_ids(&progs_before, &n_progs_before);
        /* The daemon gets systemd's default soft limit; this test needs more than 1024 itself. */
        getrlimit(RLIMIT_NOFILE, &rl);
        service.rlim_max = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &service);
        r = daemon_start(&d);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (!tap_is_int(r, 0, "private daemon started"))
                tap_bail("no daemon");
        tap_ok(rl.rlim_cur >= IDLE_CONNECTIONS + 100,
               "this test may open %d connections (RLIMIT_NOFILE %llu)", IDLE_CONNECTIONS + 100,
               (unsigned long long) rl.rlim_cur);
        {
                _cleanup_(bpfcore_reply_done) BpfcoreReply s = {};

                if (call(&d, "io.bpfcored.Status", NULL, NULL, 0, &s) == 0)
                        max_connections = (unsigned) json_int(json_object_object_get(s.parameters, "limits"),
                                                              "connections");
                tap_ok(max_connections > IDLE_CONNECTIONS, "Status names the connection limit (%u)",
                       max_connections);
        }
        tap_is_int(pthread_create(&bystander, NULL, bystander_run, NULL), 0, "bystander client started");
        sleep_ms(50);
        tap_ok(bystander_ok > 0 && bystander_failed == 0, "bystander is served");
}

TEST(half_message_then_stall) {
        static const char half[] = "{\"method\":\"io.bpfcored.Status\",\"param";
        unsigned mark = bystander_ok;
        int fds[8];

        /* Several stalled clients at once, each holding a partial message. */
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = raw_connect();
                write_all(fds[i], half, strlen(half));
        }
        sleep_ms(200);
        tap_ok(bystander_served(&mark), "8 clients stalled mid-message: the bystander is served");
        /* The rest of the message arrives late: the call is still answered. */
        {
                static const char rest[] = "eters\":{}}";
                bool eof;
                _cleanup_free_ char *reply = NULL;

                write_all(fds[0], rest, sizeof(rest));
                reply = read_reply(fds[0], 5000, &eof);
                tap_ok(reply && strstr(reply, "uptime_us"), "a message completed after a stall is answered");
        }
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}

TEST(idle_connections_and_the_limit) {
        static const char status[] = "{\"method\":\"io.bpfcored.Status\"}";
        int *idle = calloc(IDLE_CONNECTIONS + 64, sizeof(int));
        unsigned mark = bystander_ok, opened = 0, accepted = 0, refused = 0, other = 0, fds_before;
        int64_t connections = -1;
        bool clear_error = true;

        fds_before = daemon_fds_quiet();
        for (int i = 0; i < IDLE_CONNECTIONS; i++) {
                idle[i] = raw_connect();
                if (idle[i] >= 0)
                        opened++;
        }
        tap_is_int(opened, IDLE_CONNECTIONS, "%d idle connections opened", IDLE_CONNECTIONS);
        /* The daemon accepts them as they come; the bystander goes on meanwhile. */
        for (int i = 0; i < 500; i++) {
                _cleanup_(bpfcore_reply_done) BpfcoreReply r = {};

                if (call(&d, "io.bpfcored.Status", NULL, NULL, 0, &r) == 0 && !r.error)
                        connections = json_int(r.parameters, "connections");
                if (connections >= IDLE_CONNECTIONS + 2)
                        break;
                sleep_ms(10);
        }
        tap_ok(connections >= IDLE_CONNECTIONS + 2, "Status counts them (%lld connections)",
               (long long) connections);
        tap_ok(bystander_served(&mark), "the bystander is served with %d idle connections open",
               IDLE_CONNECTIONS);

        /* Past the limit: each new connection either works or is refused with a clear error. */
        for (int i = IDLE_CONNECTIONS; i < IDLE_CONNECTIONS + 64; i++) {
                _cleanup_free_ char *reply = NULL;
                bool eof;

                idle[i] = raw_connect();
                if (idle[i] < 0) {
                        other++;
                        continue;
                }
                write_all(idle[i], status, sizeof(status));
                reply = read_reply(idle[i], 5000, &eof);
                if (reply && strstr(reply, "uptime_us"))
                        accepted++;
                else if (reply && strstr(reply, VL_ERROR_QUOTA_EXCEEDED) && strstr(reply, "connections")) {
                        refused++;
                        clear_error = clear_error && eof_follows(idle[i]);
                } else {
                        if (other++ == 0)
                                tap_diag("connection %d: %s%s", i, reply ?: "(no reply)",
                                         eof ? " (EOF)" : "");
                }
        }
        /* 1000 idle + the bystander + this test's accepted ones fill the 1024 places exactly. */
        tap_is_int(IDLE_CONNECTIONS + 1 + accepted, max_connections,
                   "connections are accepted up to the limit of %u (%u more accepted)", max_connections,
                   accepted);
        tap_ok(refused > 0 && clear_error,
               "past it, %u are refused with QuotaExceeded {limit: connections}, then closed", refused);
        tap_is_int(other, 0, "no connection got anything else (no hang, no reset)");
        tap_ok(bystander_served(&mark), "the bystander is served at the limit");

        for (int i = 0; i < IDLE_CONNECTIONS + 64; i++)
                if (idle[i] > 0)
                        close(idle[i]);
        free(idle);
        tap_is_int(daemon_fds_settle(fds_before), fds_before,
                   "the daemon's fds are back to %u once they hang up", fds_before);
        {
                _cleanup_(bpfcore_reply_done) BpfcoreReply r = {};
                tap_ok(call(&d, "io.bpfcored.Status", NULL, NULL, 0, &r) == 0 && !r.error,
                       "a new connection is accepted again");
        }
}

/* 16 fds (the most allowed) with every call, in a loop; the fds of Load's object among them. */
TEST(sixteen_fds_per_message) {
        _cleanup_free_ char *path = harness_object_path("tp_core");
        unsigned fds_before, mark = bystander_ok, ok = 0, loads = 0;
        int fds[VL_MAX_FDS], c = raw_connect();
        _cleanup_(bpfcore_reply_done) BpfcoreReply warm = {};

        /* A first Check fills the plan cache (which keeps the plan's minimal BTF open). */
        {
                _cleanup_close_ int ofd = open(path, O_RDONLY | O_CLOEXEC);
                json_object *p = json_object_new_object();

                json_object_object_add(p, "fd", json_object_new_int(0));
                call(&d, "io.bpfcored.Check", p, &ofd, 1, &warm);
                json_object_put(p);
        }
        fds_before = daemon_fds_quiet();

        for (unsigned i = 0; i < VL_MAX_FDS; i++)
                fds[i] = i == 0 ? open(path, O_RDONLY | O_CLOEXEC) : open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (int round = 0; round < 400; round++) {
                /* Mostly Status (the fds are unused), every 40th a Load whose object is fd 0. */
                bool load = round % 40 == 0;
                const char *msg = load ? "{\"method\":\"io.bpfcored.Check\",\"parameters\":{\"fd\":0}}"
                                       : "{\"method\":\"io.bpfcored.Status\"}";
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(fds))];
                } control = {};
                struct iovec iov = {.iov_base = (void *) msg, .iov_len = strlen(msg) + 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = &control,
                                    .msg_controllen = sizeof(control)};
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                _cleanup_free_ char *reply = NULL;
                bool eof;

                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(fds));
                memcpy(CMSG_DATA(cm), fds, sizeof(fds));
                /* Check reads the object from its start: pread, so the offset needs no rewinding. */
                if (sendmsg(c, &mh, MSG_NOSIGNAL) < 0)
                        break;
                reply = read_reply(c, 5000, &eof);
                if (reply && !strstr(reply, "\"error\"") &&
                    (load ? strstr(reply, "relocations") != NULL : true))
                        ok++;
                loads += load;
        }
        tap_is_int(ok, 400, "400 calls with 16 fds each answered (%u of them Check of fd 0)", loads);
        close(c);
        for (unsigned i = 0; i < VL_MAX_FDS; i++)
                close(fds[i]);
        {
                unsigned after = daemon_fds_settle(fds_before);
                tap_ok(after <= fds_before, "the daemon holds none of the 6,400 fds (%u fds, %u before)",
                       after, fds_before);
        }
        tap_ok(bystander_served(&mark), "the bystander is served");
}

/* A call padded to exactly n bytes of JSON. */
static char *padded_call(size_t n) {
        static const char head[] = "{\"method\":\"io.bpfcored.Status\",\"parameters\":{},\"pad\":\"";
        char *m = malloc(n + 1);

        memset(m, 'x', n);
        memcpy(m, head, strlen(head));
        memcpy(m + n - 2, "\"}", 2);
        m[n] = 0;
        return m;
}

/* Sends one message, stopping early if the daemon answers and hangs up; returns the reply. */
static char *send_big(int fd, const char *msg, size_t size, bool *ret_eof) {
        size_t sent = 0;

        while (sent < size) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT | POLLIN};
                ssize_t n;

                if (poll(&pfd, 1, 5000) <= 0 || (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
                        break;
                n = send(fd, msg + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN)
                        continue;
                if (n <= 0)
                        break;
                sent += (size_t) n;
        }
        return read_reply(fd, 10000, ret_eof);
}

TEST(size_limit) {
        _cleanup_free_ char *at = padded_call(VL_MAX_MESSAGE), *past = padded_call(VL_MAX_MESSAGE + 1);
        _cleanup_free_ char *r1 = NULL, *r2 = NULL, *r3 = NULL;
        unsigned mark = bystander_ok, fds_before = daemon_fds_quiet();
        long rss_before = harness_pid_rss_kib(d.pid), rss_after;
        bool eof;
        int fd = raw_connect();

        /* Exactly 16 MiB of JSON and its NUL: read whole and answered; the connection stays. */
        r1 = send_big(fd, at, VL_MAX_MESSAGE + 1, &eof);
        tap_ok(r1 && !strstr(r1, "TooLarge"), "a message of exactly %u bytes is read whole and answered",
               VL_MAX_MESSAGE);
        if (r1 && strstr(r1, "TooLarge"))
                tap_diag("%.300s", r1);
        write_all(fd, "{\"method\":\"io.bpfcored.Status\"}", 32);
        r2 = read_reply(fd, 5000, &eof);
        tap_ok(r2 && strstr(r2, "uptime_us"), "and the connection serves the next call");
        close(fd);

        fd = raw_connect();
        r3 = send_big(fd, past, VL_MAX_MESSAGE + 2, &eof);
        tap_ok(r3 && strstr(r3, VL_ERROR_TOO_LARGE) && strstr(r3, "message_size"),
               "one byte more is TooLarge {limit: message_size}");
        tap_ok(eof || eof_follows(fd), "and the connection is closed");
        close(fd);
        tap_ok(bystander_served(&mark), "the bystander is served meanwhile");
        /* Memory for them is not kept per message: more of them leave RSS where the first left it. */
        daemon_fds_settle(fds_before);
        rss_after = harness_pid_rss_kib(d.pid);
        for (int i = 0; i < 3; i++) {
                _cleanup_free_ char *again = NULL;

                fd = raw_connect();
                again = send_big(fd, at, VL_MAX_MESSAGE + 1, &eof);
                close(fd);
                fd = raw_connect();
                free(send_big(fd, past, VL_MAX_MESSAGE + 2, &eof));
                close(fd);
                daemon_fds_settle(fds_before);
        }
        if (getenv("BPFCORED_SANITIZED"))
                tap_skip("sanitizer build: its quarantine holds freed memory",
                         "RSS does not grow with more of them");
        else {
                /* The daemon closes a connection's fd before it hands the memory back (malloc_trim):
                 * give it up to 3 s to get there. */
                long rss = harness_pid_rss_kib(d.pid);

                for (int i = 0; i < 60 && rss >= rss_after + 4 * 1024; i++) {
                        usleep(50 * 1000);
                        rss = harness_pid_rss_kib(d.pid);
                }
                tap_ok(rss < rss_after + 4 * 1024,
                       "RSS does not grow with more of them (%ld KiB before, %ld after the first two, %ld "
                       "after 8)",
                       rss_before, rss_after, rss);
        }
}

static void expect_rejected(const char *what, const char *msg, size_t size, const char *needle) {
        _cleanup_free_ char *reply = NULL;
        unsigned mark = bystander_ok;
        bool eof;
        int fd = raw_connect();

        reply = send_big(fd, msg, size, &eof);
        if (!tap_ok(reply && strstr(reply, VL_ERROR_INVALID_PARAMETER) && strstr(reply, needle),
                    "%s: InvalidParameter saying \"%s\"", what, needle))
                tap_diag("reply: %.300s", reply ?: "(none)");
        tap_ok(eof || eof_follows(fd), "%s: the connection is closed", what);
        close(fd);
        tap_ok(bystander_served(&mark), "%s: the bystander is served", what);
}

TEST(nested_json) {
        size_t depth = 1000000;
        _cleanup_free_ char *deep = malloc(2 * depth + 64);
        size_t n;

        /* {"method":"io.bpfcored.Status","parameters":{"x":[[[[...]]]]}} a million deep. */
        n = (size_t) sprintf(deep, "{\"method\":\"io.bpfcored.Status\",\"parameters\":{\"x\":");
        memset(deep + n, '[', depth);
        memset(deep + n + depth, ']', depth);
        n += 2 * depth;
        n += (size_t) sprintf(deep + n, "}}");
        expect_rejected("JSON nested a million deep", deep, n + 1, "JSON");

        /* Just past the daemon's depth limit. */
        n = (size_t) sprintf(deep, "{\"method\":\"io.bpfcored.Status\",\"parameters\":{\"x\":");
        for (int i = 0; i < VL_MAX_JSON_DEPTH; i++)
                n += (size_t) sprintf(deep + n, "{\"a\":");
        n += (size_t) sprintf(deep + n, "1");
        for (int i = 0; i < VL_MAX_JSON_DEPTH; i++)
                deep[n++] = '}';
        n += (size_t) sprintf(deep + n, "}}");
        expect_rejected("objects nested past the depth limit", deep, n + 1, "JSON");
}

TEST(invalid_utf8) {
        static const char overlong[] =
                "{\"method\":\"io.bpfcored.Status\",\"parameters\":{},\"x\":\"\xc0\xaf\"}";
        static const char cut[] = "{\"method\":\"io.bpfcored.Status\",\"parameters\":{},\"x\":\"\xe2\x82\"}";
        static const char surrogate[] = "{\"method\":\"io.bpfcored.Sta\xed\xa0\x80tus\"}";

        expect_rejected("an overlong UTF-8 sequence", overlong, sizeof(overlong), "UTF-8");
        expect_rejected("a truncated UTF-8 sequence", cut, sizeof(cut), "UTF-8");
        expect_rejected("a UTF-16 surrogate in UTF-8", surrogate, sizeof(surrogate), "UTF-8");
}

/* Replies that do not fit the socket buffer: GetInterfaceDescription pipelined many times. */
static void pipeline(int fd, unsigned n) {
        static const char call_msg[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                                       "\"parameters\":{\"interface\":\"io.bpfcored\"}}";

        for (unsigned i = 0; i < n; i++) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};

                if (poll(&pfd, 1, 200) <= 0 ||
                    send(fd, call_msg, sizeof(call_msg), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0)
                        break;
        }
}

TEST(disconnect_mid_reply) {
        unsigned fds_before = daemon_fds_quiet(), mark = bystander_ok;
        char buf[1000];

        for (int i = 0; i < 20; i++) {
                int fd = raw_connect();

                pipeline(fd, 200);
                /* Read a little of the first reply, then go. */
                (void) !read(fd, buf, sizeof(buf));
                close(fd);
        }
        tap_ok(bystander_served(&mark),
               "20 clients that hang up in the middle of their replies: bystander served");
        tap_is_int(daemon_fds_settle(fds_before), fds_before,
                   "and their connections are gone from the daemon");
        tap_ok(daemon_signal(&d, 0) == 0, "the daemon is alive (no SIGPIPE)");
}

TEST(never_reads_replies) {
        unsigned fds_before = daemon_fds_quiet(), mark = bystander_ok;
        long rss_before = harness_pid_rss_kib(d.pid), rss_during;
        int fds[4];

        /* They write until their own socket buffers fill; the daemon stops reading them meanwhile. */
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = raw_connect();
                pipeline(fds[i], 5000);
        }
        sleep_ms(300);
        rss_during = harness_pid_rss_kib(d.pid);
        tap_ok(bystander_served(&mark), "4 clients that never read their replies: the bystander is served");
        /* What a silent client can make the daemon hold is bounded by its reply queue. */
        if (getenv("BPFCORED_SANITIZED"))
                tap_skip("sanitizer build: its quarantine holds freed memory", "daemon RSS stays bounded");
        else
                tap_ok(rss_during < rss_before + 4 * 2 * (long) (VL_MAX_MESSAGE / 1024),
                       "daemon RSS stays bounded (%ld -> %ld KiB)", rss_before, rss_during);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        tap_is_int(daemon_fds_settle(fds_before), fds_before, "their connections are dropped when they go");
}

/* A client that pipelines quick calls without end, reading its replies as fast as it can. */
static atomic_bool flood_stop;
static atomic_uint flood_replies;

static void *flood_writer(void *arg) {
        static const char status[] = "{\"method\":\"io.bpfcored.Status\"}";
        int fd = *(int *) arg;

        while (!flood_stop && write_all(fd, status, sizeof(status)))
                ;
        return NULL;
}

static void *flood_reader(void *arg) {
        int fd = *(int *) arg;
        char buf[65536];
        ssize_t n;

        while (!flood_stop && (n = read(fd, buf, sizeof(buf))) > 0)
                for (ssize_t i = 0; i < n; i++)
                        flood_replies += buf[i] == 0;
        return NULL;
}

/* Slow calls wait behind quick ones, but streams of quick calls must not starve them. */
TEST(quick_flood_does_not_starve_slow_calls) {
        _cleanup_free_ char *path = harness_object_path("tp_core");
        _cleanup_close_ int ofd = open(path, O_RDONLY | O_CLOEXEC);
        pthread_t w[4], r[4];
        int fds[4];
        unsigned checks = 0;
        uint64_t slowest = 0;

        for (int i = 0; i < 4; i++) {
                fds[i] = raw_connect();
                pthread_create(&w[i], NULL, flood_writer, &fds[i]);
                pthread_create(&r[i], NULL, flood_reader, &fds[i]);
        }
        sleep_ms(100);
        for (int i = 0; i < 5; i++) {
                _cleanup_(bpfcore_reply_done) BpfcoreReply c = {};
                json_object *p = json_object_new_object();
                uint64_t t0 = now_usec();

                json_object_object_add(p, "fd", json_object_new_int(0));
                if (call(&d, "io.bpfcored.Check", p, &ofd, 1, &c) == 0 && !c.error)
                        checks++;
                slowest = MAX(slowest, now_usec() - t0);
                json_object_put(p);
        }
        tap_is_int(checks, 5, "5 Check calls answered while 4 clients flood Status (slowest %.1f ms)",
                   (double) slowest / 1e3);
        flood_stop = true;
        for (int i = 0; i < 4; i++) {
                shutdown(fds[i], SHUT_RDWR);
                pthread_join(w[i], NULL);
                pthread_join(r[i], NULL);
                close(fds[i]);
        }
        tap_ok(flood_replies > 1000, "the floods were being served meanwhile (%u replies)",
               (unsigned) flood_replies);
}

/* A daemon whose hard fd limit is below its connection limit: refuses clearly, never spins or hangs. */
TEST(out_of_fds) {
        static const char status[] = "{\"method\":\"io.bpfcored.Status\"}";
        static const char *const low_nofile[] = {"prlimit", "--nofile=64:64", "--", NULL};
        TestDaemon small = {.wrapper = low_nofile};
        int fds[100], r;
        unsigned accepted = 0, refused = 0, other = 0;

        r = daemon_start(&small);
        if (!tap_is_int(r, 0, "a daemon with RLIMIT_NOFILE 64 (soft and hard) started")) {
                daemon_cleanup(&small);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                _cleanup_free_ char *reply = NULL;
                bool eof;

                fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                strcpy(sa.sun_path, small.socket_path);
                if (connect(fds[i], (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        if (other++ == 0)
                                tap_diag("connection %zu: connect: %s", i, strerror(errno));
                        continue;
                }
                write_all(fds[i], status, sizeof(status));
                reply = read_reply(fds[i], 5000, &eof);
                if (reply && strstr(reply, "uptime_us"))
                        accepted++;
                else if (reply && strstr(reply, VL_ERROR_QUOTA_EXCEEDED) && strstr(reply, "open_files"))
                        refused++;
                else if (other++ == 0)
                        tap_diag("connection %zu: %s", i, reply ?: "(no reply within 5 s)");
        }
        tap_ok(accepted > 30, "connections are served while fds last (%u)", accepted);
        tap_ok(refused > 0, "then refused with QuotaExceeded {limit: open_files} (%u)", refused);
        tap_is_int(other, 0, "none hangs or gets anything else");
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        sleep_ms(200);
        {
                BpfcoreClient *c = NULL;
                BpfcoreReply s = {};

                tap_ok(bpfcore_connect(small.socket_path, &c) >= 0 &&
                               bpfcore_call(c, "io.bpfcored.Status", NULL, NULL, 0, &s) == 0 && !s.error,
                       "once they go, new connections are served again");
                bpfcore_reply_done(&s);
                bpfcore_disconnect(c);
        }
        tap_is_int(daemon_stop(&small), 0, "that daemon exits cleanly");
        daemon_cleanup(&small);
}

TEST(cleanup) {
        bystander_stop = true;
        pthread_join(bystander, NULL);
        tap_is_int(bystander_failed, 0, "the bystander's %u Status calls all succeeded (slowest %llu us)",
                   (unsigned) bystander_ok, (unsigned long long) bystander_max_us);
        tap_is_int(daemon_stop(&d), 0, "daemon exits cleanly on SIGTERM");
        daemon_cleanup(&d);
        tap_is_int(kernel_programs_left(progs_before, n_progs_before), 0, "nothing is left loaded");
        free(progs_before);
}

TAP_MAIN
