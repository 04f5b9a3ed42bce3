/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "varlink.h"
#include "varlink-io.h"

/* Calls served per wake-up before others get their turn. */
#define CALLS_PER_DISPATCH 16
/* Past this, a message's buffers are given back to the system once it is served. */
#define BIG_MESSAGE (1024u * 1024)
/* Replies a client leaves unread beyond this get it disconnected. */
#define MAX_QUEUED_OUTPUT (2u * VL_MAX_MESSAGE)

struct Connection {
        Manager *manager;
        Connection *next, *prev;
        int fd;
        sd_event_source *io;
        sd_event_source *defer; /* more buffered calls to serve */
        Connection *slow_next;  /* in the manager's queue of slow calls: see hold_slow_call() */
        json_object *held;      /* that call, parsed, and its fds */
        int *held_fds;
        size_t held_n_fds;
        VlReader reader;
        VlWriter writer;
        Peer peer;
        bool closing; /* hang up once the queued replies are sent */
        bool subscribed; /* Subscribe: events go out as replies that continue */
        int failed;   /* a reply could not be queued: the connection is done for */
        /* A call whose replies go on (vl_reply_stream()): the next one is made once the last is sent. */
        VlStreamStep stream_step;
        void *stream_data;
        void (*stream_free)(void *data);
};

static void connection_stream_done(Connection *c) {
        if (c->stream_free)
                c->stream_free(c->stream_data);
        c->stream_step = NULL;
        c->stream_data = NULL;
        c->stream_free = NULL;
}

static void connection_free(Connection *c) {
        Manager *m;

        if (!c)
                return;
        m = c->manager;
        if (c->prev)
                c->prev->next = c->next;
        else if (m->connections == c)
                m->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_connections--;

        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->defer);
        connection_stream_done(c);
        if (c->held) {
                Connection **p = &m->slow_head;

                while (*p && *p != c)
                        p = &(*p)->slow_next;
                if (*p)
                        *p = c->slow_next;
                if (m->slow_tail == c) {
                        m->slow_tail = m->slow_head;
                        while (m->slow_tail && m->slow_tail->slow_next)
                                m->slow_tail = m->slow_tail->slow_next;
                }
        }
        json_object_put(c->held);
        close_many(c->held_fds, c->held_n_fds);
        free(c->held_fds);
        bool big = c->reader.alloc > BIG_MESSAGE || c->writer.queued > BIG_MESSAGE;
        vl_reader_done(&c->reader);
        vl_writer_done(&c->writer);
        free(c->peer.cgroup);
        safe_close(c->fd);
        free(c);
        if (big)
                (void) malloc_trim(0);
}

static int connection_fail(Connection *c, const char *error, const char *key, const char *value,
                           const char *key2, const char *value2);
static void connection_update_events(Connection *c);
static int on_connection_defer(sd_event_source *s, void *userdata);

/* {"error": error, "parameters": {key: value, key2: value2}}, key2 optional. */
static json_object *error_message(const char *error, const char *key, const char *value, const char *key2,
                                  const char *value2) {
        json_object *msg = json_object_new_object(), *p = json_object_new_object();

        json_object_object_add(p, key, json_object_new_string(value));
        if (key2)
                json_object_object_add(p, key2, json_object_new_string(value2));
        json_object_object_add(msg, "error", json_object_new_string(error));
        json_object_object_add(msg, "parameters", p);
        return msg;
}

static int queue_message(Connection *c, json_object *msg, int *fds, size_t n_fds) {
        int r = vl_writer_queue(&c->writer, msg, fds, n_fds);

        json_object_put(msg);
        if (r == -EMSGSIZE) {
                /* What went into it is freed: hand the memory back, not to the heap's slack. */
                (void) malloc_trim(0);
                /* The caller gets an answer it can read instead of a reply it would hang up on. */
                json_object *e;
                char text[160];

                snprintf(text, sizeof(text), "the reply would be larger than the %u bytes a message may have",
                         VL_MAX_MESSAGE);
                log_warning("A reply to pid %d was over %u bytes: sending TooLarge instead.", c->peer.cred.pid,
                            VL_MAX_MESSAGE);
                e = error_message(VL_ERROR_TOO_LARGE, "limit", "message_size", "message", text);
                r = vl_writer_queue(&c->writer, e, NULL, 0);
                json_object_put(e);
                /* The error ends the call: its handler stops there (a stream sends nothing after it). */
                if (r >= 0 && c->writer.queued <= MAX_QUEUED_OUTPUT)
                        return -EMSGSIZE;
        }
        if (r >= 0 && c->writer.queued > MAX_QUEUED_OUTPUT) {
                log_debug("Client pid %d does not read its replies: disconnecting.", c->peer.cred.pid);
                r = -ENOBUFS;
        }
        if (r < 0 && !c->failed)
                c->failed = r;
        return r;
}

int vl_reply(Call *call, json_object *parameters, int *fds, size_t n_fds) {
        json_object *msg;

        call->replied = true;
        if (call->oneway) {
                json_object_put(parameters);
                close_many(fds, n_fds);
                return 0;
        }
        msg = json_object_new_object();
        if (!msg) {
                json_object_put(parameters);
                close_many(fds, n_fds);
                return -ENOMEM;
        }
        json_object_object_add(msg, "parameters", parameters ?: json_object_new_object());
        return queue_message(call->connection, msg, fds, n_fds);
}

int vl_reply_continues(Call *call, json_object *parameters) {
        json_object *msg;
        int r;

        if (call->oneway || !call->more) {
                json_object_put(parameters);
                return 0;
        }
        msg = json_object_new_object();
        if (!msg) {
                json_object_put(parameters);
                return -ENOMEM;
        }
        json_object_object_add(msg, "parameters", parameters ?: json_object_new_object());
        json_object_object_add(msg, "continues", json_object_new_boolean(true));
        r = queue_message(call->connection, msg, NULL, 0);
        if (r == -EMSGSIZE)
                call->replied = true; /* TooLarge went out instead: the call has had its answer */
        return r;
}

int vl_stream_reply(Call *call, json_object *parameters, bool last) {
        int r;

        if (last) {
                (void) vl_reply(call, parameters, NULL, 0);
                return 0;
        }
        r = vl_reply_continues(call, parameters);
        return r == -EMSGSIZE ? 0 : r < 0 ? r : 1; /* TooLarge went out instead: the call is over */
}

int vl_reply_stream(Call *call, VlStreamStep step, void *data, void (*free_data)(void *data)) {
        Connection *c = call->connection;

        if (call->oneway || !call->more || c->stream_step) {
                if (free_data)
                        free_data(data);
                call->replied = call->oneway; /* else the caller gets the error */
                return call->oneway ? 0 : -EINVAL;
        }
        call->replied = true;
        c->stream_step = step;
        c->stream_data = data;
        c->stream_free = free_data;
        return 0;
}

/* Events queued but unread past this drop the subscriber: it never blocks the daemon. */
#define SUBSCRIBER_QUEUE_MAX (1u * 1024 * 1024)

int vl_subscribe(Call *call) {
        if (!call->more || call->oneway) {
                call->replied = true;
                return vl_error(call, VL_ERROR_EXPECTED_MORE, NULL);
        }
        call->connection->subscribed = true;
        call->replied = true;
        /* A first event at once: the client knows events from here on reach it. */
        json_object *params = json_object_new_object(), *event = json_object_new_object();
        json_object_object_add(event, "kind", json_object_new_string("subscribed"));
        json_object_object_add(params, "event", event);
        return vl_reply_continues(call, params);
}

void varlink_broadcast(Manager *m, json_object *event) {
        for (Connection *c = m->connections, *next; c; c = next) {
                json_object *msg, *params;

                next = c->next;
                if (!c->subscribed || c->closing)
                        continue;
                if (c->writer.queued > SUBSCRIBER_QUEUE_MAX) {
                        log_warning("Subscriber pid %d does not read its events: dropping it.", c->peer.cred.pid);
                        connection_fail(c, VL_ERROR_TOO_LARGE, "limit", "subscriber_queue", "message",
                                        "events were not read: the subscription is dropped");
                } else {
                        params = json_object_new_object();
                        json_object_object_add(params, "event", json_object_get(event));
                        msg = json_object_new_object();
                        json_object_object_add(msg, "parameters", params);
                        json_object_object_add(msg, "continues", json_object_new_boolean(true));
                        if (queue_message(c, msg, NULL, 0) < 0)
                                c->closing = true;
                }
                connection_update_events(c);
        }
}

int vl_error(Call *call, const char *error, json_object *parameters) {
        json_object *msg;

        call->replied = true;
        if (call->oneway) {
                json_object_put(parameters);
                return 0;
        }
        msg = json_object_new_object();
        if (!msg) {
                json_object_put(parameters);
                return -ENOMEM;
        }
        json_object_object_add(msg, "error", json_object_new_string(error));
        json_object_object_add(msg, "parameters", parameters ?: json_object_new_object());
        return queue_message(call->connection, msg, NULL, 0);
}

/* SystemError {message, errno} for a handler's (or a stream step's) negative errno r. */
static int vl_error_system(Call *call, int r) {
        json_object *p = json_object_new_object();

        json_object_object_add(p, "message", json_object_new_string(strerror(-r)));
        json_object_object_add(p, "errno", json_object_new_int(-r));
        return vl_error(call, VL_ERROR_SYSTEM, p);
}

/* An error not tied to a call (the message could not be read): reply, then hang up. */
static int connection_fail(Connection *c, const char *error, const char *key, const char *value,
                           const char *key2, const char *value2) {
        c->manager->counters.protocol_errors++;
        c->closing = true;
        return queue_message(c, error_message(error, key, value, key2, value2), NULL, 0);
}

static const Method *find_method(const char *name) {
        for (const Method *m = bpfcored_methods; m->name; m++)
                if (strcmp(m->name, name) == 0)
                        return m;
        return NULL;
}

static bool interface_known(const char *method) {
        const char *dot = strrchr(method, '.');
        size_t len = dot ? (size_t) (dot - method) : 0;

        return (len == strlen(BPFCORED_INTERFACE) && strncmp(method, BPFCORED_INTERFACE, len) == 0) ||
               (len == strlen(VL_SERVICE_INTERFACE) && strncmp(method, VL_SERVICE_INTERFACE, len) == 0);
}

/* The message as a call: NULL after an error reply (the connection then closes). */
static json_object *parse_call(Connection *c, const char *text, size_t len) {
        _cleanup_free_ char *reason = NULL;
        json_object *msg = NULL, *v;

        c->manager->counters.calls++;
        if (vl_parse(text, len, &msg, &reason) < 0) {
                (void) connection_fail(c, VL_ERROR_INVALID_PARAMETER, "parameter", "(message)", "message",
                                       reason ?: "malformed message");
                return NULL;
        }
        if (!json_object_object_get_ex(msg, "method", &v) || !json_object_is_type(v, json_type_string)) {
                json_object_put(msg);
                (void) connection_fail(c, VL_ERROR_INVALID_PARAMETER, "parameter", "method", "message",
                                       "a call needs a \"method\" string");
                return NULL;
        }
        return msg;
}

static bool call_is_slow(json_object *msg) {
        const Method *m = find_method(json_object_get_string(json_object_object_get(msg, "method")));

        return m && m->slow;
}

typedef struct AfterReply {
        void (*fn)(Manager *m, void *userdata);
        void *userdata;
} AfterReply;

/* Serves one parsed call (msg is taken); *ret_after is what to do once the reply is sent. */
static int dispatch(Connection *c, json_object *msg, int *fds, size_t n_fds, AfterReply *ret_after) {
        json_object *v, *params = NULL;
        const Method *method;
        Call call = {
                .manager = c->manager,
                .connection = c,
                .peer = &c->peer,
                .fds = fds,
                .n_fds = n_fds,
        };
        int r;

        json_object_object_get_ex(msg, "method", &v);
        call.method = json_object_get_string(v);
        if (json_object_object_get_ex(msg, "more", &v))
                call.more = json_object_get_boolean(v);
        if (json_object_object_get_ex(msg, "oneway", &v))
                call.oneway = json_object_get_boolean(v);
        if (json_object_object_get_ex(msg, "parameters", &v) && !json_object_is_type(v, json_type_null))
                params = json_object_get(v);
        else
                params = json_object_new_object();
        call.parameters = params;

        log_debug("Call %s from pid %d (%zu fds).", call.method, c->peer.cred.pid, n_fds);
        method = find_method(call.method);
        if (!method) {
                json_object *p = json_object_new_object();

                if (interface_known(call.method)) {
                        json_object_object_add(p, "method", json_object_new_string(call.method));
                        r = vl_error(&call, VL_ERROR_METHOD_NOT_FOUND, p);
                } else {
                        const char *dot = strrchr(call.method, '.');
                        json_object_object_add(p, "interface",
                                               json_object_new_string_len(call.method,
                                                                          dot ? (int) (dot - call.method) : 0));
                        r = vl_error(&call, VL_ERROR_INTERFACE_NOT_FOUND, p);
                }
        } else if (!json_object_is_type(params, json_type_object)) {
                json_object *p = json_object_new_object();

                json_object_object_add(p, "parameter", json_object_new_string("parameters"));
                r = vl_error(&call, VL_ERROR_VARLINK_INVALID_PARAMETER, p);
        } else {
                r = method->handler(&call);
                if (r < 0 && !call.replied)
                        (void) vl_error_system(&call, r);
        }
        json_object_put(params);
        json_object_put(msg);
        *ret_after = (AfterReply) { call.after_reply, call.after_reply_data };
        /* A handler's error is the caller's answer; only a reply we could not queue ends the connection. */
        return c->failed;
}

static void connection_update_events(Connection *c) {
        uint32_t events = 0;

        if (!vl_writer_empty(&c->writer))
                events |= EPOLLOUT;
        if (!c->closing && !c->held && !c->stream_step && vl_writer_empty(&c->writer))
                events |= EPOLLIN;
        /* With nothing to wait for, the source stays armed for hang-ups only. */
        sd_event_source_set_io_events(c->io, events);
}

/*
 * Calls that do kernel work (Load, Attach, …) take milliseconds each, and
 * tens of them when a tracepoint link is released (an RCU grace period). Each
 * waits for a low-priority turn instead: every quick call that is ready
 * (Status, List, Get, map reads) is served first, so with many clients
 * loading a Status waits for one slow call at most, not for all of them.
 */
static void hold_slow_call(Connection *c, json_object *msg, int *fds, size_t n_fds) {
        Manager *m = c->manager;

        c->held = msg;
        c->held_fds = fds;
        c->held_n_fds = n_fds;
        /* One queue, first come first served: sd-event keeps re-enabled defer sources in their old
         * place, so a source per connection would let the first ones served starve the others. */
        c->slow_next = NULL;
        if (m->slow_tail)
                m->slow_tail->slow_next = c;
        else
                m->slow_head = c;
        m->slow_tail = c;
        (void) sd_event_source_set_enabled(m->slow_turn, SD_EVENT_ON);
}

/* Quick calls served while slow ones wait, before the next slow one gets an equal turn. */
#define QUICK_CALLS_BEFORE_SLOW 256u

/* A stream of quick calls must not starve the slow ones. */
static void quick_call_served(Manager *m) {
        if (!m->slow_head || ++m->quick_calls_while_held < QUICK_CALLS_BEFORE_SLOW)
                return;
        (void) sd_event_source_set_priority(m->slow_turn, SD_EVENT_PRIORITY_NORMAL);
}

/* One step of the connection's stream: a Call for the same caller, as its handler had it. */
static int stream_next(Connection *c) {
        Call call = {
                .manager = c->manager,
                .connection = c,
                .peer = &c->peer,
                .more = true,
        };
        int r;

        r = c->stream_step(&call, c->stream_data);
        if (r > 0)
                return 0;
        connection_stream_done(c);
        if (r < 0 && !call.replied)
                (void) vl_error_system(&call, r);
        return c->failed;
}

/* Serves what can be served now; returns <0 when the connection is done for. */
static int connection_process(Connection *c) {
        unsigned calls = 0;
        int r;

        for (;;) {
                if (!vl_writer_empty(&c->writer)) {
                        r = vl_writer_flush(&c->writer, c->fd);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break; /* socket full: wait for EPOLLOUT */
                }
                if (c->closing)
                        return -ECONNRESET;
                if (c->held)
                        break; /* calls are answered in order: nothing more until the slow one is done */

                _cleanup_free_ char *text = NULL;
                _cleanup_free_ int *fds = NULL;
                size_t len, n_fds;

                if (calls >= CALLS_PER_DISPATCH) {
                        /* Let other clients in; come back for the rest. A new source each time: sd-event
                         * orders a defer source by when it was created, so a reused one would always come
                         * before other clients' I/O and new connections, and a busy client starve them. */
                        c->defer = sd_event_source_disable_unref(c->defer);
                        r = sd_event_add_defer(c->manager->event, &c->defer, on_connection_defer, c);
                        if (r < 0)
                                return r;
                        break;
                }
                if (c->stream_step) {
                        /* The next of a call's replies, now that the last one is sent: what is queued for a
                         * client stays about one reply, however long the stream. */
                        calls++;
                        r = stream_next(c);
                        if (r < 0)
                                return r;
                        quick_call_served(c->manager); /* a long stream must not keep slow calls waiting */
                        continue;
                }
                r = vl_reader_next(&c->reader, &text, &len, &fds, &n_fds);
                if (r < 0)
                        return r;
                if (r > 0) {
                        json_object *msg;

                        calls++;
                        msg = parse_call(c, text, len);
                        if (!msg) {
                                if (c->failed)
                                        return c->failed;
                                continue;
                        }
                        if (call_is_slow(msg)) {
                                hold_slow_call(c, msg, TAKE_PTR(fds), n_fds);
                                break;
                        }
                        AfterReply after = {};

                        r = dispatch(c, msg, fds, n_fds, &after);
                        close_many(fds, n_fds);
                        if (after.fn)
                                after.fn(c->manager, after.userdata);
                        quick_call_served(c->manager);
                        if (len > BIG_MESSAGE) {
                                /* Its copy and parse are freed: hand the memory back, not to the heap's slack. */
                                free(TAKE_PTR(text));
                                vl_reader_shrink(&c->reader);
                                (void) malloc_trim(0);
                        }
                        if (r < 0)
                                return r;
                        continue;
                }

                r = vl_reader_fill(&c->reader, c->fd);
                if (r == -EAGAIN || r == -EINTR)
                        break;
                if (r == -EMSGSIZE) {
                        char msg[128];
                        snprintf(msg, sizeof(msg), "a message may have at most %u bytes", VL_MAX_MESSAGE);
                        r = connection_fail(c, VL_ERROR_TOO_LARGE, "limit", "message_size", "message", msg);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (r == -ETOOMANYREFS) {
                        char msg[128];
                        snprintf(msg, sizeof(msg), "a message may carry at most %u file descriptors", VL_MAX_FDS);
                        r = connection_fail(c, VL_ERROR_TOO_LARGE, "limit", "fds", "message", msg);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;
                if (r == 0) {
                        if (vl_reader_partial(&c->reader))
                                log_debug("Client pid %d hung up in the middle of a message.", c->peer.cred.pid);
                        return -ECONNRESET;
                }
        }
        connection_update_events(c);
        return 0;
}

static int on_connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;

        /* Hung up while its slow call waits: a hang-up stays readable and would starve that call's
         * lower-priority turn. Serve the call first (it may be oneway), then notice. */
        if (c->held && (revents & (EPOLLHUP | EPOLLERR))) {
                (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
                return 0;
        }
        if (connection_process(c) < 0)
                connection_free(c);
        return 0;
}

static int on_slow_turn(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        Connection *c = m->slow_head;
        AfterReply after = {};
        _cleanup_free_ int *fds = NULL;
        size_t n_fds;
        int r;

        m->quick_calls_while_held = 0;
        (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IDLE);
        if (!c) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        m->slow_head = c->slow_next;
        if (!m->slow_head) {
                m->slow_tail = NULL;
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        c->slow_next = NULL;
        fds = TAKE_PTR(c->held_fds);
        n_fds = c->held_n_fds;
        c->held_n_fds = 0;
        r = dispatch(c, TAKE_PTR(c->held), fds, n_fds, &after);
        close_many(fds, n_fds);
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_ON);
        if (r < 0 || connection_process(c) < 0) /* sends the reply */
                connection_free(c);
        if (after.fn)
                after.fn(m, after.userdata);
        return 0;
}

static int on_connection_defer(sd_event_source *s, void *userdata) {
        return on_connection_io(s, -1, 0, userdata);
}

static char *peer_cgroup(pid_t pid) {
        _cleanup_free_ char *line = NULL;
        char path[64];
        size_t n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        /* The unified hierarchy's line is "0::/path". */
        while (getline(&line, &n, f) > 0)
                if (strncmp(line, "0::", 3) == 0) {
                        fclose(f);
                        line[strcspn(line, "\n")] = 0;
                        return strdup(line + 3);
                }
        fclose(f);
        return NULL;
}

static void refuse(Manager *m, int fd, const char *limit) {
        char msg[160];
        int n;

        m->counters.connections_refused++;
        n = snprintf(msg, sizeof(msg), "{\"error\":\"" VL_ERROR_QUOTA_EXCEEDED "\",\"parameters\":{\"limit\":\"%s\"}}",
                     limit);
        /* Best effort: the socket is new, so its buffer has room. */
        (void) !send(fd, msg, (size_t) n + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
}

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
        return 0;
}

/*
 * Out of fds: the pending client would stay readable on the listening socket
 * and spin the loop. The reserve fd makes room to accept it and say why; if
 * even that fails, stop accepting for a moment.
 */
static void accept_out_of_fds(Manager *m, int fd) {
        int cfd = -1;

        if (m->reserve_fd >= 0) {
                m->reserve_fd = safe_close(m->reserve_fd);
                cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd >= 0) {
                        log_warning("Refusing a connection: out of file descriptors (%zu connections open).",
                                    m->n_connections);
                        refuse(m, cfd, "open_files");
                }
                m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (cfd >= 0)
                        return;
        }
        log_warning("Out of file descriptors with %zu connections open: not accepting for 100 ms.", m->n_connections);
        (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_OFF);
        if (!m->accept_retry)
                (void) sd_event_add_time_relative(m->event, &m->accept_retry, CLOCK_MONOTONIC, 100 * 1000, 0,
                                                  on_accept_retry, m);
        else {
                (void) sd_event_source_set_time_relative(m->accept_retry, 100 * 1000);
                (void) sd_event_source_set_enabled(m->accept_retry, SD_EVENT_ONESHOT);
        }
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        socklen_t len;
        Connection *c;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE) {
                        accept_out_of_fds(m, fd);
                        return 0;
                }
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "accept() failed: %m");
                return 0;
        }
        if (m->n_connections >= MANAGER_MAX_CONNECTIONS) {
                log_warning("Refusing a connection: %u connections are open already.", MANAGER_MAX_CONNECTIONS);
                refuse(m, cfd, "connections");
                return 0;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return 0;
        }
        c->manager = m;
        c->fd = cfd;
        vl_reader_init(&c->reader, VL_MAX_MESSAGE);
        len = sizeof(c->peer.cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->peer.cred, &len) < 0)
                c->peer.cred = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        c->peer.cgroup = peer_cgroup(c->peer.cred.pid);

        c->next = m->connections;
        if (m->connections)
                m->connections->prev = c;
        m->connections = c;
        m->n_connections++;
        m->counters.connections_accepted++;

        r = sd_event_add_io(m->event, &c->io, cfd, EPOLLIN, on_connection_io, c);

        if (r < 0) {
                log_warning_errno(r, "Cannot watch a new connection: %m");
                connection_free(c);
                return 0;
        }
        log_debug("Connection from pid %d uid %u.", c->peer.cred.pid, c->peer.cred.uid);
        return 0;
}

static int bind_socket(Manager *m) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *dir = NULL;
        char *slash;

        if (strlen(m->socket_path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "Socket path too long: %s", m->socket_path);
        strcpy(sa.sun_path, m->socket_path);

        dir = strdup(m->socket_path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(-errno, "Cannot create %s: %m", dir);
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(-errno, "socket() failed: %m");

        /* A socket file left by a dead daemon is replaced; a live one is not. */
        {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return log_error_errno(-EADDRINUSE, "Another daemon is listening on %s.", m->socket_path);
        }
        (void) unlink(m->socket_path);

        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(-errno, "Cannot bind %s: %m", m->socket_path);
        if (chmod(m->socket_path, 0660) < 0)
                return log_error_errno(-errno, "Cannot chmod %s: %m", m->socket_path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(-errno, "listen() failed: %m");
        m->unlink_socket = true;
        return TAKE_FD(fd);
}

int varlink_listen(Manager *m) {
        int n, fd, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Cannot read passed sockets: %m");
        if (n > 1)
                return log_error_errno(-EINVAL, "Expected one passed socket, got %d.", n);
        if (n == 1) {
                fd = SD_LISTEN_FDS_START;
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                        return log_error_errno(-EINVAL, "The passed socket is not a listening Unix stream socket.");
                r = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                if (r < 0)
                        return log_error_errno(-errno, "fcntl() failed: %m");
                log_debug("Using the socket passed by the service manager.");
        } else {
                fd = bind_socket(m);
                if (fd < 0)
                        return fd;
        }
        m->listen_fd = fd;
        m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        r = sd_event_add_defer(m->event, &m->slow_turn, on_slow_turn, m);
        if (r >= 0)
                r = sd_event_source_set_priority(m->slow_turn, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->slow_turn, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the queue of slow calls: %m");

        r = sd_event_add_io(m->event, &m->listen_source, fd, EPOLLIN, on_accept, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the listening socket: %m");
        return 0;
}

void varlink_stop(Manager *m) {
        while (m->connections)
                connection_free(m->connections);
        m->listen_source = sd_event_source_disable_unref(m->listen_source);
        m->accept_retry = sd_event_source_disable_unref(m->accept_retry);
        m->slow_turn = sd_event_source_disable_unref(m->slow_turn);
        m->reserve_fd = safe_close(m->reserve_fd);
        if (m->listen_fd >= 0 && m->unlink_socket)
                (void) unlink(m->socket_path);
        m->listen_fd = safe_close(m->listen_fd);
}
