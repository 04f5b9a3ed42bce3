/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "json-parse.h"
#include "macro.h"
#include "protocol.h"
#include "varlink-io.h"

#define VL_READ_CHUNK (64u * 1024)

struct VlFdGroup {
        uint64_t offset; /* stream offset of the first byte that came with them */
        int fds[VL_MAX_FDS];
        size_t n;
};

struct VlChunk {
        VlChunk *next;
        char *data;
        size_t len, sent;
        int fds[VL_MAX_FDS];
        size_t n_fds;
};

void vl_reader_init(VlReader *r, size_t max_message) {
        *r = (VlReader) { .max_message = max_message };
}

void vl_reader_done(VlReader *r) {
        for (size_t i = 0; i < r->n_fd_groups; i++)
                close_many(r->fds[i].fds, r->fds[i].n);
        free(r->fds);
        free(r->buf);
        *r = (VlReader) {};
}

void vl_reader_shrink(VlReader *r) {
        size_t want = MAX(r->len, (size_t) VL_READ_CHUNK);
        char *p;

        if (r->alloc <= want)
                return;
        p = realloc(r->buf, want + 1);
        if (!p)
                return;
        r->buf = p;
        r->alloc = want;
}

bool vl_reader_partial(const VlReader *r) {
        return r->len > 0;
}

static int reader_add_fds(VlReader *r, uint64_t offset, const int *fds, size_t n) {
        VlFdGroup *g;

        if (n == 0)
                return 0;
        if (n > VL_MAX_FDS || r->n_fds + n > VL_MAX_FDS) {
                close_many((int *) fds, n);
                return -ETOOMANYREFS;
        }
        g = reallocarray(r->fds, r->n_fd_groups + 1, sizeof(VlFdGroup));
        if (!g) {
                close_many((int *) fds, n);
                return -ENOMEM;
        }
        r->fds = g;
        g = &r->fds[r->n_fd_groups++];
        g->offset = offset;
        g->n = n;
        memcpy(g->fds, fds, n * sizeof(int));
        r->n_fds += n;
        return 0;
}

int vl_reader_fill(VlReader *r, int sock) {
        union {
                struct cmsghdr hdr;
                char buf[CMSG_SPACE(sizeof(int) * VL_MAX_FDS)];
        } control;
        struct msghdr mh = {};
        struct iovec iov;
        ssize_t n;
        int ret = 0;

        if (r->peeked > 0)
                return -EBUSY; /* the text handed out must stay where it is */
        /* Room for one more read, but never more than one message's worth. */
        if (r->len >= r->max_message + 1)
                return -EMSGSIZE;
        if (r->alloc - r->len < VL_READ_CHUNK) {
                size_t want = MIN(r->len + VL_READ_CHUNK, (size_t) r->max_message + 1);
                char *p;

                if (want > r->alloc) {
                        p = realloc(r->buf, want + 1);
                        if (!p)
                                return -ENOMEM;
                        r->buf = p;
                        r->alloc = want;
                }
        }

        iov = (struct iovec) { .iov_base = r->buf + r->len, .iov_len = r->alloc - r->len };
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = &control;
        mh.msg_controllen = sizeof(control);

        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t nfd;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                /* The kernel ends a read with the chunk that carried fds: they belong
                 * to the message holding the last byte read. */
                if (ret == 0 && n > 0)
                        ret = reader_add_fds(r, r->base + r->len + (uint64_t) n - 1, (int *) CMSG_DATA(c), nfd);
                else
                        close_many((int *) CMSG_DATA(c), nfd);
        }
        if (mh.msg_flags & MSG_CTRUNC)
                ret = ret ?: -ETOOMANYREFS;
        if (ret < 0)
                return ret;

        r->len += (size_t) n;
        if (n > 0 && !memchr(r->buf, 0, r->len) && r->len > r->max_message)
                return -EMSGSIZE;
        return (int) MIN(n, (ssize_t) INT32_MAX);
}

/* The length of the first complete message, its fds taken out of the reader; 0 if there is none. */
static int take_message(VlReader *r, size_t *ret_len, int **ret_fds, size_t *ret_n_fds) {
        _cleanup_free_ int *fds = NULL;
        size_t n_fds = 0, used_groups = 0, len;
        uint64_t end_offset;
        char *end;

        end = r->len > 0 ? memchr(r->buf, 0, r->len) : NULL;
        if (!end)
                return 0;
        len = (size_t) (end - r->buf);
        if (len > r->max_message)
                return -EMSGSIZE;
        end_offset = r->base + len;

        /* Fds that arrived with any byte of this message belong to it. */
        for (; used_groups < r->n_fd_groups; used_groups++)
                if (r->fds[used_groups].offset > end_offset)
                        break;
        for (size_t i = 0; i < used_groups; i++)
                n_fds += r->fds[i].n;
        if (n_fds > 0) {
                fds = malloc(n_fds * sizeof(int));
                if (!fds)
                        return -ENOMEM;
                n_fds = 0;
                for (size_t i = 0; i < used_groups; i++) {
                        memcpy(fds + n_fds, r->fds[i].fds, r->fds[i].n * sizeof(int));
                        n_fds += r->fds[i].n;
                }
        }
        if (r->n_fd_groups > used_groups)
                memmove(r->fds, r->fds + used_groups, (r->n_fd_groups - used_groups) * sizeof(VlFdGroup));
        r->n_fd_groups -= used_groups;
        r->n_fds -= n_fds;

        *ret_len = len;
        *ret_n_fds = n_fds;
        *ret_fds = TAKE_PTR(fds);
        return 1;
}

int vl_reader_next(VlReader *r, char **ret_text, size_t *ret_len, int **ret_fds, size_t *ret_n_fds) {
        const char *view;
        char *text;
        int k;

        k = vl_reader_peek(r, &view, ret_len, ret_fds, ret_n_fds);
        if (k <= 0)
                return k;
        text = malloc(*ret_len + 1);
        if (text)
                memcpy(text, view, *ret_len + 1);
        vl_reader_consume(r);
        if (!text) {
                /* The connection ends: its message goes, and the fds with it. */
                close_many(*ret_fds, *ret_n_fds);
                free(*ret_fds);
                *ret_fds = NULL;
                return -ENOMEM;
        }
        *ret_text = text;
        return 1;
}

int vl_reader_peek(VlReader *r, const char **ret_text, size_t *ret_len, int **ret_fds, size_t *ret_n_fds) {
        size_t len;
        int k;

        if (r->peeked > 0)
                return -EBUSY;
        k = take_message(r, &len, ret_fds, ret_n_fds);
        if (k <= 0)
                return k;
        r->peeked = len + 1;
        *ret_text = r->buf;
        *ret_len = len;
        return 1;
}

void vl_reader_consume(VlReader *r) {
        memmove(r->buf, r->buf + r->peeked, r->len - r->peeked);
        r->len -= r->peeked;
        r->base += r->peeked;
        r->peeked = 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
 * json-c checks only the byte pattern. Returns the offset of the first bad byte, or len. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len) {
        size_t i = 0;

        while (i < len) {
                unsigned char c = s[i];
                uint32_t cp, min;
                size_t n;

                /* Mostly ASCII: eight bytes a step while none has its high bit set. */
                if (c < 0x80 && len - i >= 8) {
                        uint64_t w;

                        memcpy(&w, s + i, sizeof(w));
                        if (!(w & UINT64_C(0x8080808080808080))) {
                                i += 8;
                                continue;
                        }
                }
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0)
                        n = 1, cp = c & 0x1f, min = 0x80;
                else if ((c & 0xf0) == 0xe0)
                        n = 2, cp = c & 0x0f, min = 0x800;
                else if ((c & 0xf8) == 0xf0)
                        n = 3, cp = c & 0x07, min = 0x10000;
                else
                        return i;
                if (len - i <= n)
                        return i;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return i;
                i += n + 1;
        }
        return len;
}

int vl_parse(const char *text, size_t len, json_object **ret, char **ret_reason) {
        json_object *o = NULL;
        const char *error = NULL;
        size_t consumed = 0;
        char *reason = NULL;
        int r;

        if (len > INT32_MAX)
                return -EMSGSIZE;
        consumed = utf8_valid_prefix((const unsigned char *) text, len);
        if (consumed != len) {
                if (asprintf(&reason, "invalid UTF-8 at byte %zu", consumed) < 0)
                        reason = NULL;
                *ret_reason = reason;
                return -EBADMSG;
        }
        r = json_parse_strict(text, len, VL_MAX_JSON_DEPTH, &o, &error, &consumed);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (asprintf(&reason, "not valid JSON: %s at byte %zu", error, consumed) < 0)
                        reason = NULL;
                *ret_reason = reason;
                return -EBADMSG;
        }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                *ret_reason = strdup("a message must be a JSON object");
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

static void chunk_free(VlChunk *c) {
        if (!c)
                return;
        close_many(c->fds, c->n_fds);
        free(c->data);
        free(c);
}

void vl_writer_done(VlWriter *w) {
        while (w->head) {
                VlChunk *c = w->head;
                w->head = c->next;
                chunk_free(c);
        }
        *w = (VlWriter) {};
}

int vl_writer_queue(VlWriter *w, json_object *msg, int *fds, size_t n_fds) {
        const char *s;
        size_t len;
        VlChunk *c;

        if (n_fds > VL_MAX_FDS) {
                close_many(fds, n_fds);
                return -ETOOMANYREFS;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close_many(fds, n_fds);
                return -ENOMEM;
        }
        if (n_fds > 0) /* fds may be NULL: memcpy() from NULL is undefined even for 0 bytes */
                memcpy(c->fds, fds, n_fds * sizeof(int));
        c->n_fds = n_fds;

        s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (s && len > VL_MAX_MESSAGE) {
                chunk_free(c); /* the other side's reader would refuse it, and hang up */
                return -EMSGSIZE;
        }
        c->data = s ? malloc(len + 1) : NULL;
        if (!c->data) {
                chunk_free(c);
                return -ENOMEM;
        }
        memcpy(c->data, s, len);
        c->data[len] = 0;
        c->len = len + 1;

        if (w->tail)
                w->tail->next = c;
        else
                w->head = c;
        w->tail = c;
        w->queued += c->len;
        return 0;
}

static ssize_t send_with_fds(int sock, const char *p, size_t len, const int *fds, size_t n_fds, int flags) {
        union {
                struct cmsghdr hdr;
                char buf[CMSG_SPACE(sizeof(int) * VL_MAX_FDS)];
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
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        return sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
}

int vl_writer_flush(VlWriter *w, int sock) {
        while (w->head) {
                VlChunk *c = w->head;
                ssize_t n;

                n = send_with_fds(sock, c->data + c->sent, c->len - c->sent,
                                  c->sent == 0 ? c->fds : NULL, c->sent == 0 ? c->n_fds : 0,
                                  MSG_DONTWAIT);
                if (n < 0)
                        return errno == EWOULDBLOCK ? 0 : -errno;
                if (c->sent == 0) /* the fds went with the first byte */
                        close_many(c->fds, c->n_fds), c->n_fds = 0;
                c->sent += (size_t) n;
                w->queued -= (size_t) n;
                if (c->sent < c->len)
                        continue;
                w->head = c->next;
                if (!w->head)
                        w->tail = NULL;
                chunk_free(c);
        }
        return 1;
}

int vl_send(int sock, json_object *msg, const int *fds, size_t n_fds) {
        const char *s;
        size_t len, sent = 0;

        if (n_fds > VL_MAX_FDS)
                return -ETOOMANYREFS;
        s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                return -ENOMEM;
        len++; /* the frame's NUL */
        while (sent < len) {
                ssize_t n = send_with_fds(sock, s + sent, len - sent, sent == 0 ? fds : NULL,
                                          sent == 0 ? n_fds : 0, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                sent += (size_t) n;
        }
        return 0;
}
