/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "btf-targets.h"
#include "log.h"
#include "macro.h"

#ifndef BPF_F_SLEEPABLE
#define BPF_F_SLEEPABLE (1U << 4)
#endif

typedef struct TargetKind {
        const char *sec;          /* SEC() prefix */
        enum bpf_prog_type prog_type;
        enum bpf_attach_type attach_type;
        const char *name_prefix;  /* the BTF name is prefix + what follows the SEC() prefix */
        int btf_kind;
        bool sleepable;
} TargetKind;

static const TargetKind kinds[] = {
        { "tp_btf/", BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, "btf_trace_", BTF_KIND_TYPEDEF },
        { "fentry/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "", BTF_KIND_FUNC },
        { "fentry.s/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "", BTF_KIND_FUNC, true },
        { "fexit/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, "", BTF_KIND_FUNC },
        { "fexit.s/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, "", BTF_KIND_FUNC, true },
        { "fmod_ret/", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, "", BTF_KIND_FUNC },
        { "fmod_ret.s/", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, "", BTF_KIND_FUNC, true },
        { "lsm/", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "bpf_lsm_", BTF_KIND_FUNC },
        { "lsm.s/", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "bpf_lsm_", BTF_KIND_FUNC, true },
};

/* The load in progress (the daemon loads one object at a time per thread). */
static __thread BtfCache *current;
static __thread int module_fds[8];
static __thread size_t n_module_fds;
static unsigned served_from_cache, lookups_from_index;

void btf_targets_begin(BtfCache *cache) {
        current = cache;
        n_module_fds = 0;
}

void *libbpf_own(void **cache, const char *symbol) {
        if (!*cache)
                *cache = dlsym(RTLD_NEXT, symbol);
        if (!*cache)
                errno = ENOSYS;
        return *cache;
}

void btf_targets_end(void) {
        close_many(module_fds, n_module_fds);
        n_module_fds = 0;
        current = NULL;
}

static int prepare_load(struct bpf_program *prog, struct bpf_prog_load_opts *opts, long cookie) {
        const TargetKind *k = &kinds[cookie];
        const char *sec = bpf_program__section_name(prog), *target = sec + strlen(k->sec);
        const CoreCandidate *cands;
        char name[256];
        size_t n = 0;

        if (!current)
                return -ENOENT;
        /* "fentry/do_unlinkat" or, for a module, "fentry/nf_conntrack:nf_confirm": the name is after any ':'. */
        if (strchr(target, ':'))
                target = strchr(target, ':') + 1;
        if ((size_t) snprintf(name, sizeof(name), "%s%s", k->name_prefix, target) >= sizeof(name))
                return -ENAMETOOLONG;
        btf_cache_lookup(current, name, strlen(name), &cands, &n);
        for (size_t i = 0; i < n; i++) {
                const struct btf_type *t = btf__type_by_id(cands[i].target->btf, cands[i].type_id);
                const BtfEntry *e = NULL;

                if (btf_kind(t) != k->btf_kind ||
                    strcmp(btf__name_by_offset(cands[i].target->btf, t->name_off) ?: "", name) != 0)
                        continue;
                for (size_t j = 0; j < current->n_entries && !e; j++)
                        if (&current->entries[j]->target == cands[i].target)
                                e = current->entries[j];
                if (!e)
                        continue;
                if (e->origin == BTF_ORIGIN_MODULE) {
                        int fd;

                        if (n_module_fds >= ELEMENTSOF(module_fds) || e->kernel_id == 0)
                                return -E2BIG;
                        fd = bpf_btf_get_fd_by_id(e->kernel_id);
                        if (fd < 0)
                                return -errno;
                        module_fds[n_module_fds++] = fd;
                        opts->attach_btf_obj_fd = (__u32) fd;
                } else
                        opts->attach_btf_obj_fd = 0;
                opts->attach_btf_id = cands[i].type_id;
                if (k->sleepable)
                        opts->prog_flags |= BPF_F_SLEEPABLE;
                log_debug("%s: attach target %s is BTF id %u in %s.", bpf_program__name(prog), name,
                          cands[i].type_id, e->name);
                return 0;
        }
        log_debug("%s: no attach target %s in the BTF cache.", bpf_program__name(prog), name);
        return -ESRCH;
}

/*
 * libbpf reads kernel BTF through this public function of its own for what
 * the planner and the handlers above do not cover: typed ksyms, kfuncs, lsm,
 * iter and struct_ops targets, type_id_kernel relocations. libbpf calls it
 * through its PLT, so this definition in the daemon takes its place: during
 * a load it hands out the cached vmlinux BTF (an empty split BTF on top of
 * it: same type ids, and libbpf may free it), so no load parses kernel BTF.
 * Outside a load it is libbpf's own.
 */
struct btf *btf__load_vmlinux_btf(void) {
        static void *own;
        const BtfEntry *e = current ? btf_cache_vmlinux(current) : NULL;
        __typeof__(&btf__load_vmlinux_btf) f;

        if (e) {
                served_from_cache++;
                return btf__new_empty_split(e->btf);
        }
        f = libbpf_own(&own, "btf__load_vmlinux_btf");
        return f ? f() : NULL;
}

/* Whether btf is the cached vmlinux, or the empty split BTF on it that the function above handed out. */
static bool is_cached_vmlinux(const struct btf *btf, const struct btf *vmlinux) {
        return btf == vmlinux || (btf__base_btf(btf) == vmlinux && btf__type_cnt(btf) == btf__type_cnt(vmlinux));
}

static bool kind_indexed(uint32_t kind) {
        return kind != BTF_KIND_UNKN && kind != BTF_KIND_PTR && kind != BTF_KIND_ARRAY &&
               kind != BTF_KIND_VOLATILE && kind != BTF_KIND_CONST && kind != BTF_KIND_RESTRICT &&
               kind != BTF_KIND_FUNC_PROTO && kind != BTF_KIND_DATASEC && kind != BTF_KIND_DECL_TAG &&
               kind != BTF_KIND_TYPE_TAG;
}

/*
 * libbpf finds kfuncs, typed ksyms and attach targets by name with this
 * public function, a linear walk with strcmp over vmlinux's 150,000 types
 * (~0.7 ms each here). During a load, on the cached vmlinux, the cache's
 * index answers instead, with what the walk would find: the lowest type id
 * of that exact name and kind. Anything else is libbpf's own.
 */
__s32 btf__find_by_name_kind(const struct btf *btf, const char *type_name, __u32 kind) {
        static void *own;
        const BtfEntry *e = current && btf && type_name ? btf_cache_vmlinux(current) : NULL;
        __typeof__(&btf__find_by_name_kind) f;

        if (e && kind_indexed(kind) && strcmp(type_name, "void") != 0 && is_cached_vmlinux(btf, e->btf)) {
                const CoreCandidate *cands;
                uint32_t found = 0;
                size_t n = 0;

                btf_cache_lookup(current, type_name, core_essential_name_len(type_name), &cands, &n);
                for (size_t i = 0; i < n; i++) {
                        const struct btf_type *t;

                        if (cands[i].target != &e->target || (found && cands[i].type_id >= found))
                                continue;
                        t = btf__type_by_id(e->btf, cands[i].type_id);
                        if (btf_kind(t) == kind && strcmp(btf__name_by_offset(e->btf, t->name_off) ?: "", type_name) == 0)
                                found = cands[i].type_id;
                }
                lookups_from_index++;
                if (found)
                        return (__s32) found;
                errno = ENOENT;
                return -ENOENT;
        }
        f = libbpf_own(&own, "btf__find_by_name_kind");
        return f ? f(btf, type_name, kind) : -ENOSYS;
}

unsigned btf_targets_served(void) {
        return served_from_cache;
}

unsigned btf_targets_lookups(void) {
        return lookups_from_index;
}

int btf_targets_setup(void) {
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                LIBBPF_OPTS(libbpf_prog_handler_opts, opts, .cookie = (long) i, .prog_prepare_load_fn = prepare_load);
                int r = libbpf_register_prog_handler(kinds[i].sec, kinds[i].prog_type, kinds[i].attach_type, &opts);

                if (r < 0)
                        return r;
        }
        return 0;
}
