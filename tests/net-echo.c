/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <netinet/ip_icmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "macro.h"
#include "net-echo.h"

static uint16_t inet_checksum(const void *data, size_t len) {
        const uint16_t *p = data;
        uint32_t sum = 0;

        for (; len > 1; len -= 2)
                sum += *p++;
        if (len)
                sum += *(const uint8_t *) p;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

int echo(const char *host_ip, int n) {
        struct sockaddr_in to = { .sin_family = AF_INET };
        struct timeval tv = { .tv_sec = 1 };
        uint16_t id = htons((uint16_t) getpid());
        int s, answered = 0;

        s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
        if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            inet_pton(AF_INET, host_ip, &to.sin_addr) != 1)
                return -1;
        for (int seq = 1; seq <= n; seq++) {
                struct icmphdr req = { .type = ICMP_ECHO,
                                       .un.echo = { .id = id, .sequence = htons((uint16_t) seq) } };

                req.checksum = inet_checksum(&req, sizeof(req));
                if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *) &to, sizeof(to)) != sizeof(req))
                        break;
                /* A raw socket sees all ICMP of the namespace: wait for our own reply. */
                for (;;) {
                        uint8_t buf[256];
                        ssize_t len = recv(s, buf, sizeof(buf), 0);
                        size_t ihl;
                        const struct icmphdr *reply;

                        if (len < 0)
                                break;
                        ihl = (size_t) (buf[0] & 0xf) * 4;
                        if ((size_t) len < ihl + sizeof(*reply))
                                continue;
                        reply = (const struct icmphdr *) (buf + ihl);
                        if (reply->type == ICMP_ECHOREPLY && reply->un.echo.id == id &&
                            reply->un.echo.sequence == req.un.echo.sequence) {
                                answered++;
                                break;
                        }
                }
        }
        close(s);
        return answered;
}

/* Does a/mask_a overlap b/mask_b (network order)? */
static bool overlaps(uint32_t a, uint32_t mask_a, uint32_t b, uint32_t mask_b) {
        uint32_t m = mask_a & mask_b;

        return (a & m) == (b & m);
}

/*
 * A /30 for the veth pair that this host does not use: no route but the default covers it, and no
 * address of ours lies in it. Reserved test ranges first (RFC 2544, then the TEST-NETs); some hosts
 * use one of those for their own network, and our connected route would shadow theirs.
 */
bool pick_subnet(char host_ip[INET_ADDRSTRLEN], char ns_ip[INET_ADDRSTRLEN]) {
        static const char *const candidates[] = {
                "198.18.251.0", "198.19.251.0", "198.51.100.252", "203.0.113.252", "192.0.2.252",
        };
        const uint32_t mask = htonl(0xfffffffc);

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                struct ifaddrs *ifa = NULL;
                struct in_addr net, a;
                bool used = false;
                char line[256];
                FILE *routes;

                inet_pton(AF_INET, candidates[i], &net);
                routes = fopen("/proc/net/route", "re");
                while (routes && fgets(line, sizeof(line), routes)) {
                        unsigned dest, route_mask;

                        if (sscanf(line, "%*s %x %*x %*x %*d %*d %*d %x", &dest, &route_mask) == 2 &&
                            route_mask != 0 && overlaps(dest, route_mask, net.s_addr, mask))
                                used = true;
                }
                if (routes)
                        fclose(routes);
                if (getifaddrs(&ifa) == 0) {
                        for (struct ifaddrs *p = ifa; p; p = p->ifa_next)
                                if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
                                    overlaps(((struct sockaddr_in *) p->ifa_addr)->sin_addr.s_addr,
                                             0xffffffff, net.s_addr, mask))
                                        used = true;
                        freeifaddrs(ifa);
                }
                if (used)
                        continue;
                a.s_addr = htonl(ntohl(net.s_addr) + 1);
                inet_ntop(AF_INET, &a, host_ip, INET_ADDRSTRLEN);
                a.s_addr = htonl(ntohl(net.s_addr) + 2);
                inet_ntop(AF_INET, &a, ns_ip, INET_ADDRSTRLEN);
                return true;
        }
        return false;
}


int run(const char *const argv[]) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status, r;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
        r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void enter_netns(const char *netns_path) {
        int fd = open(netns_path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                _exit(120);
        close(fd);
}

int ping_from_netns(const char *netns_path, const char *host_ip) {
        pid_t pid;
        int status;

        fflush(stdout);
        pid = fork();
        if (pid == 0) {
                enter_netns(netns_path);
                _exit(echo(host_ip, 3) == 3 ? 0 : 1);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool tc_shows(const char *ns, const char *iface, const char *direction, const char *needle) {
        char cmd[256], line[512];
        bool found = false;
        FILE *p;

        snprintf(cmd, sizeof(cmd), "tc %s%s filter show dev %s %s 2>/dev/null", ns ? "-n " : "", ns ?: "",
                 iface, direction);
        p = popen(cmd, "re");
        while (p && fgets(line, sizeof(line), p))
                if (strstr(line, needle))
                        found = true;
        if (p)
                pclose(p);
        return found;
}
