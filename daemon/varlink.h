/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The varlink server: accepts connections, reads NUL-framed calls with
 * their fds, dispatches them to the method table, queues replies. Every
 * socket is non-blocking; a client is read from only when its previous
 * replies are sent, so a slow or silent client holds only itself up.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "manager.h"

/* Who is calling: the peer's credentials when it connected. */
typedef struct Peer {
        struct ucred cred;
        char *cgroup;
} Peer;

typedef struct Call {
        Manager *manager;
        Connection *connection;
        const Peer *peer;
        const char *method;
        json_object *parameters; /* an object, never NULL */
        int *fds;                /* handlers take an fd by setting its slot to -1 */
        size_t n_fds;
        bool more, oneway;
        bool replied;
        /* Run once the reply is on its way (what the caller need not wait for: journal entries, events). */
        void (*after_reply)(Manager *m, void *userdata);
        void *after_reply_data;
} Call;

typedef int (*MethodHandler)(Call *call);

typedef struct Method {
        const char *name; /* full name, "io.bpfcored.Load" */
        MethodHandler handler;
        bool slow; /* kernel work: waits behind the quick calls that are ready */
} Method;

/* The method table, defined by methods.c. */
extern const Method bpfcored_methods[];

int varlink_listen(Manager *m);
void varlink_stop(Manager *m);

/* Replies: parameters (taken; NULL for none) and fds (taken). */
int vl_reply(Call *call, json_object *parameters, int *fds, size_t n_fds);
int vl_error(Call *call, const char *error, json_object *parameters);
/* Makes the call's connection a subscriber (the call needs "more"). */
int vl_subscribe(Call *call);
/* Sends event to every subscriber. */
void varlink_broadcast(Manager *m, json_object *event);

/* One of several replies to a call with "more": true; the last one is vl_reply(). -EMSGSIZE when it was too
 * large for a message: TooLarge went out instead, and the call is over. */
int vl_reply_continues(Call *call, json_object *parameters);

/*
 * Replies that go on for as long as step says (a call with "more"): step is called with a Call for the same
 * caller each time the previous reply has been sent, queues one reply and returns 1 to be called again, or
 * 0 once it has queued the last (vl_reply()) or an error, <0 to end with a SystemError. The connection
 * reads no other call meanwhile. free_data(data) once the stream ends or the connection goes. Without
 * "more" (or with a stream already going): -EINVAL, data freed.
 */
typedef int (*VlStreamStep)(Call *call, void *data);
int vl_reply_stream(Call *call, VlStreamStep step, void *data, void (*free_data)(void *data));
/* A step's reply (parameters taken), the last one or not: what the step returns. */
int vl_stream_reply(Call *call, json_object *parameters, bool last);
