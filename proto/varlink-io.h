/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * varlink framing: NUL-terminated JSON messages on a SOCK_STREAM Unix
 * socket, with file descriptors passed as SCM_RIGHTS on the sendmsg that
 * carries a message. Shared by the daemon (non-blocking) and the client.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

typedef struct VlFdGroup VlFdGroup;

/* Accumulates bytes and fds from a socket and cuts them into messages. */
typedef struct VlReader {
        char *buf;
        size_t len;       /* bytes held in buf */
        size_t alloc;
        uint64_t base;    /* stream offset of buf[0] */
        size_t max_message;
        VlFdGroup *fds;   /* fds in arrival order, with their stream offset */
        size_t n_fd_groups;
        size_t n_fds;     /* fds held across all groups */
        size_t peeked;    /* bytes of the message vl_reader_peek() handed out, frame NUL included */
} VlReader;

void vl_reader_init(VlReader *r, size_t max_message);
void vl_reader_done(VlReader *r);

/*
 * One recvmsg(). Returns bytes read (> 0), 0 on EOF, -EAGAIN when nothing
 * is there, -EMSGSIZE when a message exceeds max_message, -ETOOMANYREFS
 * when more than VL_MAX_FDS fds arrive for one message, other -errno.
 */
int vl_reader_fill(VlReader *r, int sock);

/*
 * The next complete message, if any: returns 1 and hands out the text
 * (NUL-terminated, without the frame's NUL counted in ret_len) and the fds
 * that came with it; 0 when no complete message is buffered.
 */
int vl_reader_next(VlReader *r, char **ret_text, size_t *ret_len, int **ret_fds, size_t *ret_n_fds);
/*
 * The same with the text left in the reader's buffer, valid until
 * vl_reader_consume() (which must come before the next fill): a big reply
 * is parsed where it was read, not copied first.
 */
int vl_reader_peek(VlReader *r, const char **ret_text, size_t *ret_len, int **ret_fds, size_t *ret_n_fds);
void vl_reader_consume(VlReader *r);

/* True when bytes of an incomplete message are buffered. */
bool vl_reader_partial(const VlReader *r);
/* Gives back the buffer beyond what it holds (after a big message). */
void vl_reader_shrink(VlReader *r);

/* Parses one message: a JSON object, nesting capped. -EBADMSG with a reason. */
int vl_parse(const char *text, size_t len, json_object **ret, char **ret_reason);

/* Queued output of a non-blocking writer. */
typedef struct VlChunk VlChunk;
typedef struct VlWriter {
        VlChunk *head, *tail;
        size_t queued;    /* bytes queued */
} VlWriter;

void vl_writer_done(VlWriter *w);
/* Queues json + NUL; takes ownership of fds (closed after sending). -EMSGSIZE (nothing queued, fds closed)
 * for a message over VL_MAX_MESSAGE, which no reader would take. */
int vl_writer_queue(VlWriter *w, json_object *msg, int *fds, size_t n_fds);
/* Sends what it can: 1 when all is sent, 0 on EAGAIN, -errno on failure. */
int vl_writer_flush(VlWriter *w, int sock);
static inline bool vl_writer_empty(const VlWriter *w) {
        return !w->head;
}

/* Blocking send of one message with fds (the client's side). */
int vl_send(int sock, json_object *msg, const int *fds, size_t n_fds);
