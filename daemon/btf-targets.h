/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel BTF during a load comes from the cache, never from a new parse:
 * SEC() handlers find the BTF ids of tp_btf, fentry, fexit, fmod_ret and lsm
 * targets in the cache's index, and libbpf's btf__load_vmlinux_btf(), which
 * libbpf calls for everything else it resolves itself (kfuncs, typed ksyms,
 * iter and struct_ops targets), is answered with the cached vmlinux BTF.
 */
#pragma once

#include "btf-cache.h"

/* Registers the handlers with libbpf, once per process. */
int btf_targets_setup(void);

/* How many times libbpf asked for kernel BTF during a load and got the cache's (btf__load_vmlinux_btf). */
unsigned btf_targets_served(void);
/* Name lookups libbpf made on the cached vmlinux that the cache's index answered. */
unsigned btf_targets_lookups(void);

/* Walks of the kernel's BTF objects libbpf made during loads (for a kfunc, ksym, iter or struct_ops target
 * not in vmlinux), and the cached module BTFs it was shown in them: only those holding what the objects look
 * for (bpf_btf_get_next_id). */
unsigned btf_targets_module_walks(void);
unsigned btf_targets_modules_shown(void);
/* Module BTFs read from the kernel during loads for attach targets: modules the cache had not met (once per load). */
unsigned btf_targets_unmet_searches(void);
/* Whether a load since the last call found a cached module's BTF id gone (the cache is to look again). */
bool btf_targets_take_stale(void);

/* The cache the handlers resolve against during the current load of obj (its ksyms, kfuncs, iter and
 * struct_ops targets decide which cached modules' BTF libbpf may see; with core_on_kernel, libbpf does CO-RE
 * on the kernel's BTF and may look in any module); NULL after it. */
struct bpf_object;
void btf_targets_begin(BtfCache *cache, const struct bpf_object *obj, bool core_on_kernel);
void btf_targets_end(void);

/* Frees a BTF of the cache (btf__free() leaves alone one that was handed to libbpf as vmlinux's). */
struct btf;
void btf_targets_free(struct btf *btf);

/* libbpf's own definition of a function the daemon defines in its place (looked up once into *cache);
 * NULL, with errno ENOSYS, if there is none. */
void *libbpf_own(void **cache, const char *symbol);
