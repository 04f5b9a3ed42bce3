/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "loader.h"
#include "log.h"
#include "manager.h"
#include "varlink.h"

int manager_new(const Options *o, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->listen_fd = -1;
        m->socket_path = strdup(o->socket_path);
        m->bpffs_root = strdup(o->bpffs_root);
        m->state_dir = strdup(o->state_dir);
        if (!m->socket_path || !m->bpffs_root || !m->state_dir)
                return -ENOMEM;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        varlink_stop(m);
        registry_free(m->registry);
        sd_event_unref(m->event);
        free(m->socket_path);
        free(m->bpffs_root);
        free(m->state_dir);
        free(m);
        return NULL;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received %s: exiting; loaded programs stay loaded.", strsignal((int) si->ssi_signo));
        return sd_event_exit(m->event, 0);
}

int manager_startup(Manager *m) {
        struct timespec ts;
        sigset_t ss;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        m->started_usec = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;

        loader_setup();

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(-errno, "Cannot block signals: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        /* A client that hangs up must not kill us mid-write. */
        signal(SIGPIPE, SIG_IGN);

        r = registry_new(m->bpffs_root, &m->registry);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the registry under %s: %m", m->bpffs_root);

        r = varlink_listen(m);
        if (r < 0)
                return r;
        return 0;
}
