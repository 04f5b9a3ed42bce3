/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Real traffic for the network attach tests: ICMP echo on a raw socket, a subnet for a veth pair, the
 * test namespace, and the commands (ip, tc) that set it up. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>

/* n ICMP echo requests to host_ip, each awaited for a second; how many were answered. */
int echo(const char *host_ip, int n);

/*
 * A /30 for a veth pair that this host does not use: no route but the default covers it, and no
 * address of ours lies in it. Fills the two ends; false when every candidate is taken.
 */
bool pick_subnet(char host_ip[INET_ADDRSTRLEN], char ns_ip[INET_ADDRSTRLEN]);

/* Runs a command with its stdout on our stderr (stdout is TAP); its exit status, or 128+signal. */
int run(const char *const argv[]);
#define RUN(...) run((const char *const[]) { __VA_ARGS__, NULL })

/* setns() into the network namespace at netns_path, or _exit(120): for forked children only. */
void enter_netns(const char *netns_path);

/* Three echo requests from inside the namespace at netns_path to host_ip; 0 when all were answered. */
int ping_from_netns(const char *netns_path, const char *host_ip);

/* `tc filter show dev IFACE DIRECTION` (in the namespace ns when not NULL) mentions needle. */
bool tc_shows(const char *ns, const char *iface, const char *direction, const char *needle);
