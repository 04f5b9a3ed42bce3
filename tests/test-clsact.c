/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tc through clsact (the path of kernels without tcx, asked for by mode on
 * this one) through a real daemon: a veth pair with one end in a network
 * namespace of our own, ping across it counted by cls_bpf filters the daemon
 * adds (one from our namespace, one from a client inside the other), Detach
 * and Unload removing them (`tc filter show`), SIGKILL and a restart keeping
 * them, a filter removed behind the daemon's back dropped at the restart, and
 * SIGKILL between adding a filter and recording it, inside a Detach and
 * inside an Unload, each finished or undone by the restart.
 */
#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"
#include "net-echo.h"
#include "tap.h"

#define FILTER_ID_MIN UINT64_C(0x80000000)
#define SLOT_TC_ECHO 2 /* tests/bpf/attach_net.bpf.c */

extern char **environ;

static TestDaemon d;
static char netns[32], netns_path[64], veth_host[IFNAMSIZ], veth_ns[IFNAMSIZ];
static char host_ip[INET_ADDRSTRLEN], ns_ip[INET_ADDRSTRLEN];
static bool netns_made, ready, net_ok;
static uint64_t object_id;
static uint32_t tc_prog_id;
static int counts_fd = -1;
static int64_t host_link, ns_link;
static uint32_t our_progs[8];
static size_t n_our_progs;



static uint64_t echo_count(void) {
        uint32_t slot = SLOT_TC_ECHO;
        uint64_t v = 0;

        bpf_map_lookup_elem(counts_fd, &slot, &v);
        return v;
}

/* How many of 3 pings the filters counted (each filter counts each request once). */
static int64_t counted(void) {
        uint64_t before = echo_count();

        if (ping_from_netns(netns_path, host_ip) != 0)
                return -1;
        return (int64_t) (echo_count() - before);
}

static bool handle_shown(const char *ns, const char *iface, const char *direction, int64_t id) {
        char needle[32];

        snprintf(needle, sizeof(needle), "handle 0x%llx", (unsigned long long) id);
        return tc_shows(ns, iface, direction, needle);
}

/* The tc_icmp program's links as listed: the number, and the one whose target starts with iface. */
static int64_t listed(const char *iface, json_object **ret_link) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *p = json_object_new_object(), *links;
        int64_t n;

        json_object_object_add(p, "id", json_object_new_int64((int64_t) object_id));
        call(&d, "io.bpfcored.Get", p, NULL, 0, &r);
        json_object_put(p);
        if (r.error)
                return -1;
        links = json_object_object_get(array_find_name(object_get(&r, "programs"), "tc_icmp"), "links");
        n = links ? (int64_t) json_object_array_length(links) : 0;
        for (int64_t i = 0; ret_link && i < n; i++) {
                json_object *l = json_object_array_get_idx(links, (size_t) i);

                if (strncmp(json_str(l, "target"), iface, strlen(iface)) == 0)
                        *ret_link = json_object_get(l);
        }
        return n;
}

/* bpfcorectl --json attach OBJECT tc_icmp tc IFACE DIR clsact, run inside ns when set; the link id. */
static int64_t ctl_attach(bool in_ns, const char *iface, const char *direction, char **ret_err) {
        char id[32], *out = NULL;
        int64_t link = -1;
        json_object *j;
        int pipefd[2], status;
        pid_t pid;

        snprintf(id, sizeof(id), "%llu", (unsigned long long) object_id);
        if (!in_ns) {
                if (run_ctl(&d, &out, ret_err, "--json", "attach", id, "tc_icmp", "tc", iface, direction,
                            "clsact", NULL) != 0) {
                        free(out);
                        return -1;
                }
        } else {
                /* A client in the other namespace: the daemon looks the interface up where the caller is. */
                char buf[4096];
                size_t n = 0;
                ssize_t k;

                if (pipe2(pipefd, O_CLOEXEC) < 0)
                        return -1;
                fflush(stdout);
                pid = fork();
                if (pid == 0) {
                        enter_netns(netns_path);
                        dup2(pipefd[1], STDOUT_FILENO);
                        execl(harness_env("BPFCORECTL"), "bpfcorectl", "--socket", d.socket_path, "--json",
                              "attach", id, "tc_icmp", "tc", iface, direction, "clsact", NULL);
                        _exit(127);
                }
                close(pipefd[1]);
                while (pid > 0 && n < sizeof(buf) - 1 &&
                       (k = read(pipefd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
                        n += (size_t) k;
                buf[n] = 0;
                close(pipefd[0]);
                if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
                    WEXITSTATUS(status) != 0)
                        return -1;
                out = strdup(buf);
        }
        j = out ? json_tokener_parse(out) : NULL;
        free(out);
        if (j)
                link = json_int(json_object_object_get(j, "link"), "id");
        json_object_put(j);
        return link;
}

static void kill_daemon(void) {
        int status;

        daemon_signal(&d, SIGKILL);
        waitpid(d.pid, &status, 0);
        d.pid = 0;
}

static bool restart(const char *why) {
        if (tap_is_int(daemon_start(&d), 0, "daemon starts again after SIGKILL (%s)", why))
                return true;
        daemon_dump_log(&d);
        return false;
}

static bool log_has(const char *needle) {
        _cleanup_free_ char *log = NULL;
        size_t size;

        return read_file(d.log_path, &log, &size) >= 0 && strstr(log, needle);
}

static bool record_exists(int64_t id) {
        char path[256];

        snprintf(path, sizeof(path), "%s/filters/%lld.json", d.state_dir, (long long) id);
        return access(path, F_OK) == 0;
}

TEST(start) {
        char prefix[INET_ADDRSTRLEN + 3];
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *prog, *maps;
        int rc;

        if (geteuid() != 0)
                tap_skip_all("needs root (CAP_BPF, CAP_NET_ADMIN) to load BPF programs and make interfaces");
        if (RUN("ip", "-V") != 0 || RUN("tc", "-V") != 0)
                tap_skip_all("iproute2 (ip, tc) is not installed");
        if (!pick_subnet(host_ip, ns_ip))
                tap_skip_all("every candidate test subnet is in use here");
        snprintf(netns, sizeof(netns), "bpfcored-c%d", (int) getpid());
        snprintf(netns_path, sizeof(netns_path), "/run/netns/%s", netns);
        snprintf(veth_host, sizeof(veth_host), "bpfcc%dh", (int) getpid());
        snprintf(veth_ns, sizeof(veth_ns), "bpfcc%dn", (int) getpid());

        netns_made = RUN("ip", "netns", "add", netns) == 0;
        if (!tap_ok(netns_made, "network namespace %s", netns))
                return;
        rc = RUN("ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_ns, "netns", netns);
        snprintf(prefix, sizeof(prefix), "%s/30", host_ip);
        rc = rc ?: RUN("ip", "addr", "add", prefix, "dev", veth_host);
        rc = rc ?: RUN("ip", "link", "set", veth_host, "up");
        snprintf(prefix, sizeof(prefix), "%s/30", ns_ip);
        rc = rc ?: RUN("ip", "-n", netns, "addr", "add", prefix, "dev", veth_ns);
        rc = rc ?: RUN("ip", "-n", netns, "link", "set", veth_ns, "up");
        if (!tap_is_int(rc, 0, "veth pair %s (here, %s) and %s (in %s, %s)", veth_host, host_ip, veth_ns,
                        netns, ns_ip))
                return;
        tap_is_int(ping_from_netns(netns_path, host_ip), 0, "ping across the pair");

        if (!tap_is_int(daemon_start(&d), 0, "daemon starts")) {
                daemon_dump_log(&d);
                return;
        }
        load_object(&d, "attach_net", NULL, &r);
        if (!tap_is_str(reply_error(&r), "", "attach_net loads"))
                return;
        object_id = (uint64_t) object_int(&r, "id");
        for (size_t i = 0;
             i < json_object_array_length(object_get(&r, "programs")) && i < ELEMENTSOF(our_progs); i++)
                our_progs[n_our_progs++] =
                        (uint32_t) json_int(json_object_array_get_idx(object_get(&r, "programs"), i), "id");
        prog = array_find_name(object_get(&r, "programs"), "tc_icmp");
        tc_prog_id = (uint32_t) json_int(prog, "id");
        maps = object_get(&r, "maps");
        counts_fd =
                bpf_map_get_fd_by_id((uint32_t) json_int(array_find_name(maps, "attach_net_counts"), "id"));
        ready = net_ok = tap_ok(counts_fd >= 0 && tc_prog_id > 0, "its counters and tc_icmp (program %u)",
                                tc_prog_id);
}

TEST(attach_counts) {
        _cleanup_free_ char *err = NULL;
        json_object *l = NULL, *c;

        if (!ready)
                return;
        tap_is_int(counted(), 0, "nothing counts before an attach");
        host_link = ctl_attach(false, veth_host, "ingress", &err);
        if (!tap_ok(host_link >= (int64_t) FILTER_ID_MIN,
                    "bpfcorectl attach ... tc %s ingress clsact: id %lld", veth_host,
                    (long long) host_link)) {
                tap_diag("%s", err ?: "");
                daemon_dump_log(&d);
                ready = false;
                return;
        }
        tap_ok(handle_shown(NULL, veth_host, "ingress", host_link) &&
                       tc_shows(NULL, veth_host, "ingress", "direct-action"),
               "tc filter show dev %s ingress: handle 0x%llx, direct-action", veth_host,
               (long long) host_link);
        tap_ok(record_exists(host_link), "recorded under the state directory's filters/");
        tap_is_int(listed(veth_host, &l), 1, "listed as a link of tc_icmp");
        c = json_object_object_get(l, "clsact");
        tap_ok(l && json_int(l, "id") == host_link && strcmp(json_str(l, "type"), "tc") == 0 && c &&
                       json_int(c, "handle") == host_link && json_int(c, "priority") == 1 &&
                       json_int(c, "ifindex") == (int64_t) if_nametoindex(veth_host) &&
                       strcmp(json_str(c, "direction"), "ingress") == 0,
               "links[]: %s", l ? json_object_to_json_string(l) : "(none)");
        json_object_put(l);
        tap_is_int(counted(), 3, "ping: the filter on %s ingress counted 3 echo requests", veth_host);

        /* From a client inside the other namespace: its interface, its namespace. */
        ns_link = ctl_attach(true, veth_ns, "egress", NULL);
        if (!tap_ok(ns_link > host_link, "attach from inside %s to %s egress: id %lld", netns, veth_ns,
                    (long long) ns_link))
                return;
        tap_ok(handle_shown(netns, veth_ns, "egress", ns_link),
               "tc -n %s filter show dev %s egress lists it", netns, veth_ns);
        tap_is_int(counted(), 6, "ping: both filters count each echo request");
}

TEST(sigkill_keeps_them) {
        if (!ready)
                return;
        kill_daemon();
        tap_is_int(counted(), 6, "with the daemon killed (SIGKILL), both filters count on");
        if (!restart("filters attached"))
                return;
        tap_is_int(listed(veth_host, NULL), 2, "both filters listed after the restart");
        tap_ok(handle_shown(NULL, veth_host, "ingress", host_link) &&
                       handle_shown(netns, veth_ns, "egress", ns_link),
               "both still in the kernel");
        tap_is_int(counted(), 6, "and counting");
}

TEST(removed_behind_our_back) {
        char handle[32];

        if (!ready)
                return;
        snprintf(handle, sizeof(handle), "0x%llx", (long long) ns_link);
        tap_is_int(RUN("tc", "-n", netns, "filter", "del", "dev", veth_ns, "egress", "pref", "1", "handle",
                       handle, "bpf"),
                   0, "tc -n %s filter del dev %s egress pref 1 handle %s bpf", netns, veth_ns, handle);
        kill_daemon();
        if (!restart("a filter gone"))
                return;
        tap_is_int(listed(veth_host, NULL), 1, "the gone filter is no longer listed, the other is");
        tap_ok(log_has("dropped tc filter"), "the daemon says it dropped it");
        tap_ok(!record_exists(ns_link), "and its record is gone");
        tap_is_int(counted(), 3, "the other still counts");
}

TEST(crash_between_filter_and_state) {
        _cleanup_free_ char *err = NULL;
        char id[32];
        int status;

        if (!ready)
                return;
        daemon_stop(&d);
        setenv("BPFCORED_TEST_CRASH_AT", "attach-after-attach", 1);
        tap_is_int(daemon_start(&d), 0, "daemon starts with the crash point attach-after-attach armed");
        unsetenv("BPFCORED_TEST_CRASH_AT");
        snprintf(id, sizeof(id), "%llu", (unsigned long long) object_id);
        run_ctl(&d, NULL, &err, "attach", id, "tc_icmp", "tc", veth_host, "egress", "clsact", NULL);
        waitpid(d.pid, &status, 0);
        d.pid = 0;
        tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && tc_shows(NULL, veth_host, "egress", "tc_icmp"),
               "the daemon died there, the filter added");
        if (!tap_is_int(daemon_start(&d), 0, "daemon starts again"))
                return;
        tap_is_int(listed(veth_host, NULL), 1, "the half-made attachment is not listed");
        tap_ok(!tc_shows(NULL, veth_host, "egress", "tc_icmp"), "and its filter is gone from %s egress",
               veth_host);
        tap_ok(log_has("that no state file lists"), "the daemon says it removed it");
}

/* Starts the daemon with a crash point armed. */
static bool start_armed(const char *step) {
        int r;

        setenv("BPFCORED_TEST_CRASH_AT", step, 1);
        r = daemon_start(&d);
        unsetenv("BPFCORED_TEST_CRASH_AT");
        return tap_is_int(r, 0, "daemon starts with the crash point %s armed", step);
}

static bool died_by_sigkill(void) {
        int status = 0;

        waitpid(d.pid, &status, 0);
        d.pid = 0;
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* A Detach killed after the state file no longer lists the filter, before the filter is removed. */
TEST(crash_in_detach) {
        _cleanup_free_ char *err = NULL;
        char id[32];
        int64_t link;

        if (!ready)
                return;
        link = ctl_attach(false, veth_host, "egress", &err);
        if (!tap_ok(link >= (int64_t) FILTER_ID_MIN, "attach tc %s egress clsact: id %lld", veth_host,
                    (long long) link))
                return;
        daemon_stop(&d);
        if (!start_armed("detach-after-state"))
                return;
        snprintf(id, sizeof(id), "%lld", (long long) link);
        run_ctl(&d, NULL, NULL, "detach", id, NULL);
        tap_ok(died_by_sigkill() && handle_shown(NULL, veth_host, "egress", link),
               "the daemon died there, the filter still in the kernel");
        if (!restart("inside a Detach"))
                return;
        tap_is_int(listed(veth_host, NULL), 1, "only the first filter is listed");
        tap_ok(!handle_shown(NULL, veth_host, "egress", link), "the detached one is gone from %s egress", veth_host);
        tap_ok(!record_exists(link), "and so is its record");
}

TEST(detach_and_unload) {
        _cleanup_free_ char *err = NULL;
        _cleanup_reply_ BpfcoreReply r = {};
        char id[32];
        json_object *p;

        if (!ready)
                return;
        snprintf(id, sizeof(id), "%lld", (long long) host_link);
        tap_is_int(run_ctl(&d, NULL, &err, "detach", id, NULL), 0, "bpfcorectl detach %s", id);
        tap_ok(!handle_shown(NULL, veth_host, "ingress", host_link), "tc filter show: gone");
        tap_ok(!record_exists(host_link), "its record is gone");
        tap_is_int(listed(veth_host, NULL), 0, "no link listed");
        tap_is_int(counted(), 0, "ping: nothing counts");

        ns_link = ctl_attach(true, veth_ns, "ingress", NULL);
        tap_ok(ns_link > host_link, "attach again from inside %s, to %s ingress", netns, veth_ns);
        p = json_object_new_object();
        json_object_object_add(p, "id", json_object_new_int64((int64_t) object_id));
        call(&d, "io.bpfcored.Unload", p, NULL, 0, &r);
        json_object_put(p);
        tap_is_str(reply_error(&r), "", "unload");
        tap_ok(!tc_shows(netns, veth_ns, "ingress", "tc_icmp"), "the unload removed the filter in %s",
               netns);
        tap_ok(kernel_prog_gone(tc_prog_id), "tc_icmp (program %u) is gone from the kernel", tc_prog_id);
        tap_ok(access(d.state_dir, F_OK) == 0 && !record_exists(ns_link), "no record left");
        ready = false;
}

static bool daemon_ready(void) {
        return net_ok && d.pid > 0;
}

/* An Unload killed after the state file is gone, before the filter is: the restart finishes it. */
TEST(crash_in_unload) {
        _cleanup_reply_ BpfcoreReply r = {}, u = {};
        json_object *p;
        uint32_t prog;
        int64_t link;

        if (!daemon_ready())
                return;
        load_object(&d, "attach_net", NULL, &r);
        if (!tap_is_str(reply_error(&r), "", "attach_net loads again"))
                return;
        object_id = (uint64_t) object_int(&r, "id");
        for (size_t i = 0; i < json_object_array_length(object_get(&r, "programs")) && n_our_progs < ELEMENTSOF(our_progs);
             i++)
                our_progs[n_our_progs++] =
                        (uint32_t) json_int(json_object_array_get_idx(object_get(&r, "programs"), i), "id");
        prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "tc_icmp"), "id");
        link = ctl_attach(true, veth_ns, "egress", NULL);
        if (!tap_ok(link >= (int64_t) FILTER_ID_MIN, "attach from inside %s to %s egress: id %lld", netns, veth_ns,
                    (long long) link))
                return;
        daemon_stop(&d);
        if (!start_armed("unload-after-state"))
                return;
        p = json_object_new_object();
        json_object_object_add(p, "id", json_object_new_int64((int64_t) object_id));
        call(&d, "io.bpfcored.Unload", p, NULL, 0, &u);
        json_object_put(p);
        tap_ok(died_by_sigkill() && tc_shows(netns, veth_ns, "egress", "tc_icmp"),
               "the daemon died inside the Unload, the filter still in the kernel");
        if (!restart("inside an Unload"))
                return;
        tap_is_int(listed(veth_host, NULL), -1, "the object is not listed");
        tap_ok(!tc_shows(netns, veth_ns, "egress", "tc_icmp"), "its filter in %s is gone", netns);
        tap_ok(kernel_prog_gone(prog), "tc_icmp (program %u) is gone from the kernel", prog);
        tap_ok(!record_exists(link), "no record left");
}

TEST(cleanup) {
        char p[64];

        safe_close(counts_fd);
        daemon_cleanup(&d);
        if (netns_made) {
                snprintf(p, sizeof(p), "/sys/class/net/%s", veth_host);
                if (access(p, F_OK) == 0)
                        RUN("ip", "link", "del", veth_host);
                RUN("ip", "netns", "del", netns);
        }
        /* Ours by id: other tests on this machine load and unload meanwhile. */
        for (size_t i = 0; i < n_our_progs; i++)
                tap_ok(kernel_prog_gone(our_progs[i]), "program %u of attach_net is gone from the kernel",
                       our_progs[i]);
}

TAP_MAIN
