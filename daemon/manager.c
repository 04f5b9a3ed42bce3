/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/netlink.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "events.h"
#include "loader.h"
#include "log.h"
#include "manager.h"
#include "objects-d.h"
#include "policy.h"
#include "state.h"
#include "varlink.h"

int manager_new(const Options *o, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->listen_fd = -1;
        m->reserve_fd = -1;
        m->socket_path = strdup(o->socket_path);
        m->bpffs_root = strdup(o->bpffs_root);
        m->state_dir = strdup(o->state_dir);
        m->vmlinux_btf = strdup(o->vmlinux_btf);
        m->btf_dir = strdup(o->btf_dir);
        m->objects_dir = strdup(o->objects_dir);
        m->config = strdup(o->config);
        if (!m->socket_path || !m->bpffs_root || !m->state_dir || !m->vmlinux_btf || !m->btf_dir || !m->objects_dir ||
            !m->config)
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
        plans_done(&m->plans);
        sd_device_monitor_unref(m->module_monitor);
        sd_event_source_disable_unref(m->kernel_uevents);
        sd_event_source_disable_unref(m->btf_refresh);
        btf_cache_free(m->btf);
        free(m->vmlinux_btf);
        free(m->btf_dir);
        free(m->objects_dir);
        free(m->config);
        policy_free(m->policy);
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

void manager_notify_status(Manager *m) {
        (void) sd_notifyf(false, "STATUS=%zu objects, %zu programs loaded; BTF cache: %zu BTF, generation %llu",
                          m->registry->n_objects, registry_count_programs(m->registry), m->btf->n_entries,
                          (unsigned long long) m->btf->generation);
}

void manager_refresh_btf(Manager *m, const char *why) {
        int r = btf_cache_refresh(m->btf);

        if (r < 0) {
                log_warning_errno(r, "Refreshing the BTF cache (%s) failed: %m", why);
                return;
        }
        if (r > 0) {
                LogFields lf = {};

                plans_flush(&m->plans);
                log_field(&lf, "BPFCORED_BTF_GENERATION", "%llu", (unsigned long long) m->btf->generation);
                log_event(&lf, LOG_INFO, MESSAGE_ID_BTF_CHANGED, "BTF cache changed (%s): %zu BTF, generation %llu.",
                          why, m->btf->n_entries, (unsigned long long) m->btf->generation);
                json_object *e = event_new("btf_changed");
                json_object_object_add(e, "message", json_object_new_string(why));
                json_object_object_add(e, "generation", json_object_new_uint64(m->btf->generation));
                json_object_object_add(e, "btf", json_object_new_uint64(m->btf->n_entries));
                event_emit(m, e);
        }
}

static int on_btf_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        manager_refresh_btf(userdata, "module change");
        return 0;
}

/* The BTF cache looks again in usec from now, from the event loop. */
static void refresh_btf_in(Manager *m, uint64_t usec) {
        uint64_t now;

        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) >= 0)
                (void) sd_event_source_set_time(m->btf_refresh, now + usec);
        (void) sd_event_source_set_enabled(m->btf_refresh, SD_EVENT_ONESHOT);
}

void manager_refresh_btf_soon(Manager *m) {
        refresh_btf_in(m, 0);
}

static void module_changed(Manager *m) {
        /* The module's BTF appears in sysfs after its uevent: look now and once more shortly. */
        manager_refresh_btf(m, "module change");
        refresh_btf_in(m, 200 * 1000);
}

static int on_module_event(sd_device_monitor *monitor, sd_device *device, void *userdata) {
        module_changed(userdata);
        return 0;
}

/* A kernel uevent is "ACTION@DEVPATH" then NUL-separated KEY=VALUE pairs. */
static bool uevent_is_module(const char *buf, size_t len) {
        static const char key[] = "SUBSYSTEM=module"; /* with its NUL */

        for (size_t i = 0; i < len; i += strnlen(buf + i, len - i) + 1)
                if (len - i >= sizeof(key) && memcmp(buf + i, key, sizeof(key)) == 0)
                        return true;
        return false;
}

static int on_kernel_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bool module = false;

        for (;;) {
                char buf[8192];
                struct sockaddr_nl sa = {};
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Overrun: events were lost, one of them may have been a module's. */
                        if (errno == ENOBUFS) {
                                module = true;
                                continue;
                        }
                        break;
                }
                /* Only the kernel's own messages: anyone may send to this group from user space. */
                if (sa.nl_pid == 0 && uevent_is_module(buf, (size_t) n))
                        module = true;
        }
        if (module)
                module_changed(userdata);
        return 0;
}

/* udev rebroadcasts uevents once it has handled them, and sd-device monitors listen to those; where no
 * udev runs (an initramfs, a minimal VM) they would hear nothing, so listen to the kernel directly. */
static int watch_kernel_uevents(Manager *m) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 /* the kernel's group */ };
        int fd, r;

        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        r = sd_event_add_io(m->event, &m->kernel_uevents, fd, EPOLLIN, on_kernel_uevent, m);
        if (r < 0) {
                close(fd);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(m->kernel_uevents, true);
        return 0;
}

static int on_btf_dir_change(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        manager_refresh_btf(userdata, "external BTF directory changed");
        return 0;
}

/* A broken configuration on reload keeps the one in force: nothing loaded is dropped. */
static void manager_reload_policy(Manager *m) {
        _cleanup_free_ char *error = NULL;
        Policy *p = NULL;
        int r = policy_load(m->config, &p, &error);

        LogFields lf = {};

        log_field(&lf, "BPFCORED_CONFIG", "%s", m->config);
        if (r < 0) {
                log_field(&lf, "BPFCORED_ERROR", "%s", error ?: strerror(-r));
                log_event(&lf, LOG_ERR, MESSAGE_ID_CONFIG_REJECTED, "Configuration not reloaded, the previous one stays: %s",
                          error ?: strerror(-r));
                return;
        }
        policy_free(m->policy);
        m->policy = p;
        log_field(&lf, "BPFCORED_RULES", "%zu", p->n_rules);
        log_field(&lf, "BPFCORED_ADMIN_GROUP", "%s", p->admin_group);
        log_event(&lf, LOG_INFO, MESSAGE_ID_CONFIG_RELOADED, "Configuration reloaded from %s: %zu rules.", m->config,
                  p->n_rules);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(false, "RELOADING=1");
        manager_reload_policy(m);
        manager_refresh_btf(m, "SIGHUP");
        objects_d_sync(m);
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        return 0;
}

static int watch_btf(Manager *m) {
        int r;

        r = sd_event_add_time(m->event, &m->btf_refresh, CLOCK_MONOTONIC, UINT64_MAX, 0, on_btf_refresh_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->btf_refresh, SD_EVENT_OFF);

        /* /sys/kernel/btf cannot be watched with inotify: module uevents tell when to look. */
        if (access("/run/udev/control", F_OK) < 0) {
                r = watch_kernel_uevents(m);
                if (r >= 0)
                        log_debug("udev is not running: watching the kernel's module uevents.");
        } else {
                r = sd_device_monitor_new(&m->module_monitor);
                if (r >= 0)
                        r = sd_device_monitor_filter_add_match_subsystem_devtype(m->module_monitor, "module",
                                                                                 NULL);
                if (r >= 0)
                        r = sd_device_monitor_attach_event(m->module_monitor, m->event);
                if (r >= 0)
                        r = sd_device_monitor_start(m->module_monitor, on_module_event, m);
                if (r < 0)
                        m->module_monitor = sd_device_monitor_unref(m->module_monitor);
        }
        if (r < 0)
                log_warning_errno(
                        r, "Cannot watch module events, module BTF is read at start and on SIGHUP only: %m");

        r = sd_event_add_inotify(m->event, NULL, m->btf_dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR,
                                 on_btf_dir_change, m);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Cannot watch %s: %m", m->btf_dir);
        return 0;
}

/*
 * Services get a soft fd limit of 1024 (kept low for select() users), less
 * than the connections allowed plus the daemon's own fds. Nothing here uses
 * select(): take the hard limit, as systemd advises for such daemons.
 */
static void bump_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(-errno, "Cannot raise the open file limit to %llu: %m",
                                  (unsigned long long) rl.rlim_max);
}

int manager_startup(Manager *m) {
        struct timespec ts;
        sigset_t ss;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        m->started_usec = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;

        r = loader_setup();
        if (r < 0)
                return log_error_errno(r, "Cannot register libbpf program handlers: %m");

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(-errno, "Cannot block signals: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_reload_signal, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        /* Under WatchdogSec=, the loop itself pings: a stuck loop gets the service restarted. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot enable the watchdog: %m");
        /* A client that hangs up must not kill us mid-write. */
        signal(SIGPIPE, SIG_IGN);
        bump_nofile();

        r = btf_cache_new(m->vmlinux_btf, "/sys/kernel/btf", m->btf_dir, &m->btf);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the BTF cache: %m");
        plans_init(&m->plans, m->btf);
        log_info("BTF cache ready: %zu BTF, %zu indexed names, %llu us.", m->btf->n_entries, m->btf->kernel.n,
                 (unsigned long long) m->btf->startup_us);
        r = watch_btf(m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up BTF watches: %m");

        {
                _cleanup_free_ char *error = NULL;

                r = policy_load(m->config, &m->policy, &error);
                if (r < 0)
                        return log_error_errno(r, "Bad configuration: %s", error ?: strerror(-r));
        }

        r = state_setup(m->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot create the state directory %s: %m", m->state_dir);
        r = registry_new(m->bpffs_root, &m->registry);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the registry under %s: %m", m->bpffs_root);
        r = state_recover(m->state_dir, m->registry);
        if (r > 0) {
                LogFields lf = {};
                log_field(&lf, "BPFCORED_OBJECTS", "%d", r);
                log_event(&lf, LOG_INFO, MESSAGE_ID_RECOVERY, "Recovered %d loaded objects from %s.", r, m->state_dir);
        }

        objects_d_sync(m);

        r = varlink_listen(m);
        if (r < 0)
                return r;
        return 0;
}
