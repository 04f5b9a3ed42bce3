/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small client library for bpfcored's varlink socket: connect, call a
 * method with parameters and fds, read the reply. Blocking; one call at a
 * time per connection. Container agents written in C can link it.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct BpfcoreClient BpfcoreClient;

typedef struct BpfcoreReply {
        json_object *parameters; /* always an object, possibly empty */
        char *error;             /* varlink error name, NULL on success */
        int *fds;                /* fds that came with the reply */
        size_t n_fds;
        bool continues;          /* more replies follow (calls with "more") */
} BpfcoreReply;

/* $BPFCORED_SOCKET, else /run/bpfcored/io.bpfcored. */
const char *bpfcore_default_socket(void);

int bpfcore_connect(const char *path, BpfcoreClient **ret);
BpfcoreClient *bpfcore_disconnect(BpfcoreClient *c);
int bpfcore_client_fd(const BpfcoreClient *c);

/*
 * Calls method ("io.bpfcored.Load") with params (borrowed; NULL for none)
 * and fds (borrowed; sent as SCM_RIGHTS, referenced by index). Returns 0
 * when a reply arrived (which may be an error reply: see ret->error),
 * -errno when the connection failed.
 */
int bpfcore_call(BpfcoreClient *c, const char *method, json_object *params,
                 const int *fds, size_t n_fds, BpfcoreReply *ret);

/* Like bpfcore_call with "more": true; read the rest with bpfcore_next_reply. */
int bpfcore_call_more(BpfcoreClient *c, const char *method, json_object *params, BpfcoreReply *ret);
int bpfcore_next_reply(BpfcoreClient *c, BpfcoreReply *ret);

void bpfcore_reply_done(BpfcoreReply *r);

/* A one-line human description of an error reply ("NoSuchObject: id 7"). */
char *bpfcore_error_describe(const BpfcoreReply *r);

static inline void bpfcore_disconnectp(BpfcoreClient **c) {
        bpfcore_disconnect(*c);
}
