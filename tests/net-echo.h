/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Real traffic for the network attach tests: ICMP echo on a raw socket, and a subnet for a veth pair. */
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
