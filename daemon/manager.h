/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager owns the event loop, the listening socket, the connections and the registry. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-device.h>
#include <systemd/sd-event.h>

#include "btf-cache.h"
#include "plans.h"
#include "registry.h"

typedef struct Connection Connection;

#define MANAGER_MAX_CONNECTIONS 1024u

typedef struct Counters {
        uint64_t loads;
        uint64_t load_failures;
        uint64_t verifier_rejections;
        uint64_t unloads;
        uint64_t connections_accepted;
        uint64_t connections_refused;
        uint64_t calls;
        uint64_t protocol_errors;
        uint64_t checks;
        uint64_t planned;   /* loads whose CO-RE target was the planner's minimal BTF */
        uint64_t fallbacks; /* loads relocated against the whole cached kernel BTF, not a minimal one */
        uint64_t opened_ahead; /* loads that found their object opened by libbpf ahead, after an earlier load */
        uint64_t known_files;  /* loads of a file the last load of its plan read: compared, not read again */
        uint64_t denied;
} Counters;

typedef struct Options {
        const char *socket_path;
        const char *bpffs_root;
        const char *state_dir;
        const char *vmlinux_btf; /* kernel BTF, or an external file standing in for it */
        const char *btf_dir;     /* registered external BTF: NAME.btf */
        const char *objects_dir; /* objects loaded at boot: NAME.conf */
        const char *config;      /* policy: /etc/bpfcored/bpfcored.conf */
} Options;

typedef struct Manager {
        sd_event *event;
        char *socket_path;
        int listen_fd;
        bool unlink_socket; /* we bound it (not socket-activated) */
        sd_event_source *listen_source;
        int reserve_fd;                /* given up to accept and refuse a client when out of fds */
        sd_event_source *accept_retry; /* accepting paused: out of fds even so */

        Connection *connections;
        size_t n_connections;
        Connection *slow_head, *slow_tail; /* slow calls waiting for their turn (varlink.c) */
        sd_event_source *slow_turn;
        unsigned quick_calls_while_held;

        Registry *registry;
        BtfCache *btf;
        Plans plans;
        sd_device_monitor *module_monitor;
        sd_event_source *kernel_uevents; /* without udev: the kernel's own module uevents */
        sd_event_source *btf_refresh; /* module BTF shows up just after the module's uevent */
        char *bpffs_root;
        char *state_dir;
        char *vmlinux_btf;
        char *btf_dir;
        char *objects_dir;
        char *config;
        struct Policy *policy;

        uint64_t started_usec; /* CLOCK_MONOTONIC */
        Counters counters;
} Manager;

int manager_new(const Options *o, Manager **ret);
Manager *manager_free(Manager *m);
int manager_startup(Manager *m);
/* STATUS= for systemd: objects and programs loaded, BTF cache contents. */
void manager_notify_status(Manager *m);
/* Re-reads module and external BTF; drops cached plans when anything changed. */
void manager_refresh_btf(Manager *m, const char *why);
/* The same from the event loop, once the call in progress is answered. */
void manager_refresh_btf_soon(Manager *m);

static inline void manager_freep(Manager **m) {
        manager_free(*m);
}
