/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An example agent: no CAP_BPF, no kernel BTF of its own. It asks bpfcored
 * to load and attach an object, receives the fd of its ring buffer over
 * the socket (MapFd), and reads the events itself.
 *
 *   example-agent SOCKET OBJECT.bpf.o [EVENTS]
 *
 * Prints "received N events from tgid T" and exits 0 when it saw EVENTS
 * (default 5) events of its own getpid() calls within 5 seconds.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpfcore-client.h"

struct event {
        unsigned tgid, seq;
        char comm[16];
};

static int mine;
static unsigned self; /* not getpid() in the callback: that would make another event */

static int on_event(void *ctx, void *data, size_t size) {
        const struct event *e = data;

        if (size >= sizeof(*e) && e->tgid == self)
                mine++;
        return 0;
}

static int fail(const char *what, const BpfcoreReply *r, int err) {
        char *desc = r ? bpfcore_error_describe(r) : NULL;

        fprintf(stderr, "example-agent: %s: %s\n", what, desc ?: strerror(-err));
        free(desc);
        return 1;
}

int main(int argc, char **argv) {
        BpfcoreClient *c = NULL;
        BpfcoreReply load = {}, fd_reply = {}, unload = {};
        struct ring_buffer *rb = NULL;
        json_object *p, *obj, *maps, *m, *globals;
        struct stat ns;
        int want = argc > 3 ? atoi(argv[3]) : 5, fd, r, rc = 1;
        long long id = -1, map_id = -1;

        if (argc < 3) {
                fprintf(stderr, "usage: example-agent SOCKET OBJECT.bpf.o [EVENTS]\n");
                return 2;
        }
        r = bpfcore_connect(argv[1], &c);
        if (r < 0)
                return fail("connect", NULL, r);

        fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail(argv[2], NULL, -errno);
        /* Our pid namespace: in a container, getpid() is not the tgid the kernel knows us by. */
        if (stat("/proc/self/ns/pid", &ns) < 0)
                return fail("/proc/self/ns/pid", NULL, -errno);
        globals = json_object_new_object();
        json_object_object_add(globals, "pidns_dev", json_object_new_uint64((uint64_t) ns.st_dev));
        json_object_object_add(globals, "pidns_ino", json_object_new_uint64((uint64_t) ns.st_ino));
        p = json_object_new_object();
        json_object_object_add(p, "fd", json_object_new_int(0));
        json_object_object_add(p, "attach", json_object_new_boolean(true));
        json_object_object_add(p, "globals", globals);
        r = bpfcore_call(c, "io.bpfcored.Load", p, &fd, 1, &load);
        json_object_put(p);
        close(fd);
        if (r < 0 || load.error)
                return fail("Load", r < 0 ? NULL : &load, r);
        obj = json_object_object_get(load.parameters, "object");
        id = json_object_get_int64(json_object_object_get(obj, "id"));
        maps = json_object_object_get(obj, "maps");
        for (size_t i = 0; maps && i < json_object_array_length(maps); i++) {
                m = json_object_array_get_idx(maps, i);
                if (strcmp(json_object_get_string(json_object_object_get(m, "name")) ?: "", "events") == 0)
                        map_id = json_object_get_int64(json_object_object_get(m, "id"));
        }

        p = json_object_new_object();
        json_object_object_add(p, "map", json_object_new_int64(map_id));
        r = bpfcore_call(c, "io.bpfcored.MapFd", p, NULL, 0, &fd_reply);
        json_object_put(p);
        if (r < 0 || fd_reply.error || fd_reply.n_fds != 1) {
                rc = fail("MapFd", r < 0 ? NULL : &fd_reply, r);
                goto out;
        }

        self = (unsigned) getpid();
        rb = ring_buffer__new(fd_reply.fds[0], on_event, NULL, NULL);
        if (!rb) {
                rc = fail("ring_buffer__new", NULL, -errno);
                goto out;
        }
        for (int i = 0; i < 50 && mine < want; i++) {
                syscall(SYS_getpid);
                ring_buffer__poll(rb, 100);
        }
        printf("received %d events from tgid %u\n", mine, self);
        rc = mine >= want ? 0 : 1;
out:
        ring_buffer__free(rb);
        if (id > 0) {
                p = json_object_new_object();
                json_object_object_add(p, "id", json_object_new_int64(id));
                bpfcore_call(c, "io.bpfcored.Unload", p, NULL, 0, &unload);
                json_object_put(p);
        }
        bpfcore_reply_done(&load);
        bpfcore_reply_done(&fd_reply);
        bpfcore_reply_done(&unload);
        bpfcore_disconnect(c);
        return rc;
}
