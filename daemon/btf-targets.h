/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Programs that attach to BTF-named kernel targets (tp_btf, fentry, fexit,
 * fmod_ret, lsm) need the target's BTF id at load. libbpf would parse
 * kernel BTF to find it; these SEC() handlers find it in the BTF cache.
 */
#pragma once

#include "btf-cache.h"

/* Registers the handlers with libbpf, once per process. */
int btf_targets_setup(void);

/* How many times libbpf asked for kernel BTF during a load and got the cache's (btf__load_vmlinux_btf). */
unsigned btf_targets_served(void);

/* The cache the handlers resolve against during the current load; NULL after it. */
void btf_targets_begin(BtfCache *cache);
void btf_targets_end(void);
