/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "manager.h"
#include "policy.h"
#include "prog-batch.h"
#include "protocol.h"

static void help(void) {
        printf("Usage: bpfcored [OPTIONS]\n"
               "Loads BPF programs for clients over varlink, relocated against the kernel's BTF.\n\n"
               "  -s, --socket PATH      listen on PATH (default $%s or %s)\n"
               "      --bpffs-root DIR   pin objects under DIR (default /sys/fs/bpf/bpfcored)\n"
               "      --state-dir DIR    keep state files in DIR (default /run/bpfcored/state)\n"
               "      --vmlinux-btf FILE kernel BTF (default /sys/kernel/btf/vmlinux; an external\n"
               "                         BTF file stands in on kernels built without BTF)\n"
               "      --btf-dir DIR      external BTF registered by name: DIR/NAME.btf\n"
               "                         (default /etc/bpfcored/btf)\n"
               "      --objects-dir DIR  objects loaded at start and on SIGHUP: DIR/NAME.conf\n"
               "                         (default /etc/bpfcored/objects.d)\n"
               "      --config FILE      who may do what (default /etc/bpfcored/bpfcored.conf)\n"
               "      --verifier-threads N\n"
               "                         verify up to N programs of an object at once (default: one\n"
               "                         per CPU the daemon may run on; 1: one after the other)\n"
               "  -n, --check-config     check the configuration, say \"configuration OK\" or what is wrong\n"
               "  -d, --foreground       stay in the foreground (the only mode; for compatibility)\n"
               "  -v, --verbose          log debug messages (libbpf's too)\n"
               "  -h, --help             show this help\n"
               "      --version          show the version\n",
               BPFCORED_SOCKET_ENV, BPFCORED_DEFAULT_SOCKET);
}

static bool check_config;

static int parse_argv(int argc, char *argv[], Options *o) {
        enum { ARG_BPFFS_ROOT = 0x100, ARG_STATE_DIR, ARG_VMLINUX_BTF, ARG_BTF_DIR, ARG_OBJECTS_DIR, ARG_CONFIG, ARG_VERIFIER_THREADS,
               ARG_VERSION };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "bpffs-root", required_argument, NULL, ARG_BPFFS_ROOT },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "vmlinux-btf", required_argument, NULL, ARG_VMLINUX_BTF },
                { "btf-dir", required_argument, NULL, ARG_BTF_DIR },
                { "objects-dir", required_argument, NULL, ARG_OBJECTS_DIR },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "verifier-threads", required_argument, NULL, ARG_VERIFIER_THREADS },
                { "check-config", no_argument, NULL, 'n' },
                { "foreground", no_argument, NULL, 'd' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "s:dvhn", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        o->socket_path = optarg;
                        break;
                case ARG_BPFFS_ROOT:
                        o->bpffs_root = optarg;
                        break;
                case ARG_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case ARG_VMLINUX_BTF:
                        o->vmlinux_btf = optarg;
                        break;
                case ARG_BTF_DIR:
                        o->btf_dir = optarg;
                        break;
                case ARG_OBJECTS_DIR:
                        o->objects_dir = optarg;
                        break;
                case ARG_CONFIG:
                        o->config = optarg;
                        break;
                case ARG_VERIFIER_THREADS: {
                        char *end;
                        unsigned long n;

                        errno = 0;
                        n = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || n < 1 || n > PROG_BATCH_THREADS_MAX) {
                                fprintf(stderr, "bpfcored: --verifier-threads wants a number from 1 to %u\n",
                                        PROG_BATCH_THREADS_MAX);
                                return -EINVAL;
                        }
                        prog_batch_set_threads((unsigned) n);
                        break;
                }
                case 'n':
                        check_config = true;
                        break;
                case 'd':
                        break;
                case 'v':
                        log_setup(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("bpfcored %s\n", BPFCORED_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "bpfcored: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (o->bpffs_root[0] != '/' || o->state_dir[0] != '/' || o->socket_path[0] != '/') {
                fprintf(stderr, "bpfcored: paths must be absolute\n");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        const char *env = getenv(BPFCORED_SOCKET_ENV);
        Options o = {
                .socket_path = env && *env ? env : BPFCORED_DEFAULT_SOCKET,
                .bpffs_root = "/sys/fs/bpf/bpfcored",
                .state_dir = "/run/bpfcored/state",
                .vmlinux_btf = "/sys/kernel/btf/vmlinux",
                .btf_dir = "/etc/bpfcored/btf",
                .objects_dir = "/etc/bpfcored/objects.d",
                .config = "/etc/bpfcored/bpfcored.conf",
        };
        int r;

        r = parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        if (check_config) {
                _cleanup_free_ char *error = NULL;
                Policy *p = NULL;

                r = policy_load(o.config, &p, &error);
                if (r < 0) {
                        fprintf(stderr, "%s\n", error ?: strerror(-r));
                        return 1;
                }
                printf("configuration OK: %s, %zu rules, admin group %s%s\n", o.config, p->n_rules, p->admin_group,
                       p->have_admin_group ? "" : " (no such group: only root is admin)");
                policy_free(p);
                return 0;
        }

        LogFields lf = {};
        log_field(&lf, "BPFCORED_VERSION", "%s", BPFCORED_VERSION);
        log_event(&lf, LOG_INFO, MESSAGE_ID_STARTED, "bpfcored %s starting.", BPFCORED_VERSION);

        r = manager_new(&o, &m);
        if (r < 0) {
                log_error_errno(r, "Cannot set up: %m");
                return 1;
        }
        r = manager_startup(m);
        if (r < 0)
                return 1;

        log_field(&lf, "BPFCORED_SOCKET", "%s", m->socket_path);
        log_field(&lf, "BPFCORED_OBJECTS", "%zu", m->registry->n_objects);
        log_field(&lf, "BPFCORED_BTF_GENERATION", "%llu", (unsigned long long) m->btf->generation);
        log_event(&lf, LOG_INFO, MESSAGE_ID_READY, "bpfcored %s ready: listening on %s, pinning under %s, %zu objects.",
                  BPFCORED_VERSION, m->socket_path, m->bpffs_root, m->registry->n_objects);
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);

        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        log_event(&lf, LOG_INFO, MESSAGE_ID_STOPPED, "bpfcored stopped.");
        return 0;
}
