/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
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
/* The module BTF objects attach targets were found in, one fd each for the load (kernel BTF id, fd). */
static __thread uint32_t module_fd_ids[64];
static __thread int module_fds[64];
static __thread size_t n_module_fds;
/* Modules the cache has not met, their BTF read from the kernel during the load: once per load, as libbpf. */
typedef struct UnmetModule {
        uint32_t id;
        char name[64];
        struct btf *btf; /* NULL: no kernel BTF of a module */
} UnmetModule;
static __thread UnmetModule *unmet;
static __thread size_t n_unmet;
static __thread bool unmet_read;
/* A cached module's BTF id was gone during a load: the cache missed the module going (and coming back). */
static bool stale_seen;
static void unmet_modules_done(void);
/* The cached modules whose BTF libbpf may see during the load: those the object's ksyms, kfuncs, iter and
 * struct_ops targets are in (kernel BTF ids). Modules the cache has not met are never hidden. */
static __thread uint32_t shown_modules[16];
static __thread size_t n_shown_modules;
static __thread bool modules_filtered;
static unsigned served_from_cache, lookups_from_index, module_walks, modules_shown, unmet_module_searches;
static void *own_next_id;

/* The entry of the cache a candidate of its index comes from. */
static const BtfEntry *entry_of(const CoreCandidate *cand) {
        for (size_t j = 0; j < current->n_entries; j++)
                if (&current->entries[j]->target == cand->target)
                        return current->entries[j];
        return NULL;
}

/* The entry of an index candidate that is a type of exactly this name and kind, or NULL. */
static const BtfEntry *exactly(const CoreCandidate *cand, const char *name, int kind) {
        const struct btf_type *t = btf__type_by_id(cand->target->btf, cand->type_id);

        if (!t || btf_kind(t) != kind || strcmp(btf__name_by_offset(cand->target->btf, t->name_off) ?: "", name) != 0)
                return NULL;
        return entry_of(cand);
}

/* Shows libbpf the cached modules that have a type of exactly this name and kind. */
static void show_module_of(const char *name, int kind) {
        const CoreCandidate *cands;
        size_t n = 0;

        btf_cache_lookup(current, name, core_essential_name_len(name), &cands, &n);
        for (size_t i = 0; i < n; i++) {
                const BtfEntry *e = exactly(&cands[i], name, kind);
                bool known = false;

                if (!e || e->origin != BTF_ORIGIN_MODULE || e->kernel_id == 0)
                        continue;
                for (size_t j = 0; j < n_shown_modules; j++)
                        known = known || shown_modules[j] == e->kernel_id;
                if (known)
                        continue;
                if (n_shown_modules == ELEMENTSOF(shown_modules)) {
                        modules_filtered = false; /* so many: libbpf walks them all, as without the daemon */
                        return;
                }
                shown_modules[n_shown_modules++] = e->kernel_id;
                log_debug("%s is in %s (BTF object %u): libbpf may see that module's BTF.", name, e->name,
                          e->kernel_id);
        }
}

/* name without its ___flavor (as libbpf looks kfuncs and struct_ops types up), to show_module_of(). */
static void show_module_of_essential(const char *name, int kind) {
        char essential[256];

        if (name && (size_t) snprintf(essential, sizeof(essential), "%.*s", (int) core_essential_name_len(name),
                                      name) < sizeof(essential))
                show_module_of(essential, kind);
}

void btf_targets_begin(BtfCache *cache, const struct bpf_object *obj, bool core_on_kernel) {
        struct bpf_object *o = (struct bpf_object *) obj;
        const struct btf *btf = obj ? bpf_object__btf(obj) : NULL;
        __s32 sec = btf ? btf__find_by_name_kind(btf, ".ksyms", BTF_KIND_DATASEC) : -ENOENT;
        struct bpf_program *prog;
        struct bpf_map *map;

        btf_targets_end(); /* nothing of an earlier load carries over */
        current = cache;
        n_shown_modules = 0;
        /* CO-RE against the kernel's own BTF: libbpf looks for candidates in every module vmlinux lacks. */
        modules_filtered = cache && btf_cache_vmlinux(cache) && !core_on_kernel;
        /*
         * The object's kfuncs and typed ksyms, as libbpf's open left them: a kfunc is a FUNC it made global
         * (and took out of .ksyms); a typed ksym is a VAR in .ksyms. A program's own global function is
         * looked up too: a module having one of that name is only one BTF more for libbpf to parse.
         */
        for (__u32 id = 1; btf && id < btf__type_cnt(btf) && modules_filtered; id++) {
                const struct btf_type *t = btf__type_by_id(btf, id);
                const char *name = btf__name_by_offset(btf, t->name_off);

                if (btf_is_func(t) && btf_vlen(t) == BTF_FUNC_GLOBAL && name &&
                    !bpf_object__find_program_by_name(o, name))
                        show_module_of_essential(name, BTF_KIND_FUNC);
        }
        if (sec > 0) {
                const struct btf_type *t = btf__type_by_id(btf, (__u32) sec);
                const struct btf_var_secinfo *v = btf_var_secinfos(t);

                for (unsigned i = 0; i < btf_vlen(t) && modules_filtered; i++) {
                        const struct btf_type *var = btf__type_by_id(btf, v[i].type);

                        /* libbpf 1.4 looks a typed ksym up by its full name (a kfunc by its essential one). */
                        if (var && btf_is_var(var) && btf__name_by_offset(btf, var->name_off))
                                show_module_of(btf__name_by_offset(btf, var->name_off), BTF_KIND_VAR);
                }
        }
        if (!obj)
                return;
        /* iter/NAME: libbpf looks for the FUNC bpf_iter_NAME in vmlinux, then in modules. */
        bpf_object__for_each_program(prog, o) {
                const char *s = bpf_program__section_name(prog);
                const char *target = strncmp(s, "iter/", 5) == 0 ? s + 5 : strncmp(s, "iter.s/", 7) == 0 ? s + 7 : NULL;
                char name[256];

                if (target && modules_filtered && (size_t) snprintf(name, sizeof(name), "bpf_iter_%s", target) < sizeof(name))
                        show_module_of(name, BTF_KIND_FUNC);
        }
        /* A struct_ops map: libbpf looks for the STRUCT of its value type's name, then in modules. */
        bpf_object__for_each_map(map, o) {
                const struct btf_type *t = btf && bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS ?
                                                   btf__type_by_id(btf, bpf_map__btf_value_type_id(map)) : NULL;

                if (t && modules_filtered)
                        show_module_of_essential(btf__name_by_offset(btf, t->name_off), BTF_KIND_STRUCT);
        }
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
        unmet_modules_done();
        current = NULL;
}

/* An fd of the kernel's BTF object id for the load in progress: one per object, kept until its end. */
static int module_fd(uint32_t id) {
        int fd;

        for (size_t i = 0; i < n_module_fds; i++)
                if (module_fd_ids[i] == id)
                        return module_fds[i];
        if (n_module_fds == ELEMENTSOF(module_fds))
                return -E2BIG;
        fd = bpf_btf_get_fd_by_id(id);
        if (fd < 0)
                return -errno;
        module_fd_ids[n_module_fds] = id;
        module_fds[n_module_fds++] = fd;
        return fd;
}

/* A type of exactly this name and kind among a split BTF's own types (not its base's). */
static __s32 find_own(const struct btf *btf, const char *name, int kind) {
        const struct btf *base = btf__base_btf(btf);

        for (__u32 id = base ? btf__type_cnt(base) : 1; id < btf__type_cnt(btf); id++) {
                const struct btf_type *t = btf__type_by_id(btf, id);

                if (btf_kind(t) == kind && strcmp(btf__name_by_offset(btf, t->name_off) ?: "", name) == 0)
                        return (__s32) id;
        }
        return -ENOENT;
}

/* The BTF of every module the cache has not met, read once per load (in the order of their ids). */
static int read_unmet_modules(void) {
        __typeof__(&bpf_btf_get_next_id) next = libbpf_own(&own_next_id, "bpf_btf_get_next_id");
        const BtfEntry *v = btf_cache_vmlinux(current);
        __u32 id = 0;

        if (unmet_read)
                return 0;
        while (next && v && next(id, &id) == 0) {
                UnmetModule *a, m = { .id = id };
                bool kernel = false;

                if (btf_cache_accounts_for(current, id) || btf_object_info(id, m.name, &kernel) < 0 || !kernel ||
                    strcmp(m.name, "vmlinux") == 0)
                        continue;
                a = reallocarray(unmet, n_unmet + 1, sizeof(UnmetModule));
                if (!a) {
                        unmet_modules_done();
                        return -ENOMEM;
                }
                unmet = a;
                unmet_module_searches++;
                m.btf = btf__load_from_kernel_by_id_split(id, v->btf);
                if (!m.btf)
                        log_debug("Cannot read the BTF of module %s (BTF object %u): %m", m.name, id);
                unmet[n_unmet++] = m;
        }
        unmet_read = true;
        return 0;
}

static void unmet_modules_done(void) {
        for (size_t i = 0; i < n_unmet; i++)
                btf__free(unmet[i].btf);
        free(unmet);
        unmet = NULL;
        n_unmet = 0;
        unmet_read = false;
}

/*
 * A target in a module the cache has not met (loaded since its last look, or
 * its BTF would not parse there): looked for as libbpf would, in each such
 * module's BTF from the kernel, parsed on top of the cached vmlinux.
 */
static int find_in_unmet_module(const char *module, const char *name, int kind, uint32_t below_id, int *ret_fd,
                                __s32 *ret_id) {
        int r = read_unmet_modules();

        if (r < 0)
                return r;
        for (size_t i = 0; i < n_unmet && unmet[i].id < below_id; i++) {
                __s32 type_id;
                int fd;

                if (!unmet[i].btf || (module && strcmp(unmet[i].name, module) != 0))
                        continue;
                type_id = find_own(unmet[i].btf, name, kind);
                if (type_id < 0)
                        continue;
                fd = module_fd(unmet[i].id);
                if (fd == -ENOENT)
                        continue; /* gone since */
                if (fd < 0)
                        return fd;
                log_debug("%s is in %s (BTF object %u), a module the BTF cache has not met.", name, unmet[i].name,
                          unmet[i].id);
                *ret_fd = fd;
                *ret_id = type_id;
                return 0;
        }
        return -ESRCH;
}

/* Whether the cache knows of kernel BTF below this id that it has no entry for (its BTF would not parse). */
static bool unmet_below(uint32_t id) {
        for (size_t i = 0; i < current->n_unmet_ids; i++)
                if (current->unmet_ids[i] < id)
                        return true;
        return false;
}

static int prepare_load(struct bpf_program *prog, struct bpf_prog_load_opts *opts, long cookie) {
        const TargetKind *k = &kinds[cookie];
        const char *sec = bpf_program__section_name(prog), *target = sec + strlen(k->sec);
        _cleanup_free_ char *module = NULL;
        const CoreCandidate *cands;
        char name[256];
        size_t n = 0;
        __s32 type_id;
        int fd = 0, r;

        if (!current)
                return -ENOENT;
        /* "fentry/do_unlinkat" or, in one module, "fentry/nf_conntrack:nf_confirm". */
        if (strchr(target, ':')) {
                module = strndup(target, strchr(target, ':') - target);
                if (!module)
                        return -ENOMEM;
                target = strchr(target, ':') + 1;
        }
        if ((size_t) snprintf(name, sizeof(name), "%s%s", k->name_prefix, target) >= sizeof(name))
                return -ENAMETOOLONG;
        /*
         * As libbpf looks: vmlinux first, then every module in the order of
         * their ids, those the cache has met (by its index) and those it has
         * not (read from the kernel) alike. A cached module whose id is gone
         * is passed over: it may be back under a new id.
         */
        btf_cache_lookup(current, name, core_essential_name_len(name), &cands, &n);
        for (uint32_t after = 0;;) {
                const CoreCandidate *found = NULL;
                const BtfEntry *found_in = NULL;

                for (size_t i = 0; i < n; i++) {
                        const BtfEntry *e = exactly(&cands[i], name, k->btf_kind);

                        if (!e || (module && strcmp(e->name, module) != 0))
                                continue;
                        if (e->origin == BTF_ORIGIN_VMLINUX && after == 0) {
                                found = &cands[i];
                                found_in = e;
                                break;
                        }
                        if (e->origin == BTF_ORIGIN_MODULE && e->kernel_id > after &&
                            (!found_in || e->kernel_id < found_in->kernel_id)) {
                                found = &cands[i];
                                found_in = e;
                        }
                }
                if (found_in && found_in->origin == BTF_ORIGIN_VMLINUX) {
                        fd = 0;
                        type_id = (__s32) found->type_id;
                        break;
                }
                if (!found_in) {
                        r = find_in_unmet_module(module, name, k->btf_kind, UINT32_MAX, &fd, &type_id);
                        if (r < 0) {
                                log_debug("%s: no attach target %s in the kernel's BTF: %s",
                                          bpf_program__name(prog), name, strerror(-r));
                                return r;
                        }
                        break;
                }
                if (unmet_below(found_in->kernel_id) &&
                    find_in_unmet_module(module, name, k->btf_kind, found_in->kernel_id, &fd, &type_id) == 0)
                        break;
                fd = module_fd(found_in->kernel_id);
                if (fd >= 0) {
                        type_id = (__s32) found->type_id;
                        log_debug("%s: attach target %s is BTF id %d in %s.", bpf_program__name(prog), name,
                                  type_id, found_in->name);
                        break;
                }
                if (fd != -ENOENT)
                        return fd;
                stale_seen = true;
                after = found_in->kernel_id;
        }
        opts->attach_btf_obj_fd = (__u32) fd;
        opts->attach_btf_id = (__u32) type_id;
        if (k->sleepable)
                opts->prog_flags |= BPF_F_SLEEPABLE;
        return 0;
}

/*
 * libbpf frees the vmlinux BTF it loaded at the end of each load, and the
 * cache's is handed to it as is: not a split BTF on top of it, which libbpf
 * 1.4 cannot take as the base of a module's BTF (it counts only the split
 * BTF's own strings). So btf__free(), which libbpf calls through its PLT,
 * leaves the cache's BTF alone; the cache frees it with btf_targets_free().
 */
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct btf *kept_btfs[8];

static bool kept_find(const struct btf *btf, size_t *ret) {
        for (size_t i = 0; i < ELEMENTSOF(kept_btfs); i++)
                if (kept_btfs[i] == btf) {
                        *ret = i;
                        return true;
                }
        return false;
}

static bool keep(const struct btf *btf) {
        size_t i;
        bool ok;

        pthread_mutex_lock(&kept_lock);
        ok = kept_find(btf, &i) || kept_find(NULL, &i);
        if (ok)
                kept_btfs[i] = btf;
        pthread_mutex_unlock(&kept_lock);
        return ok;
}

void btf__free(struct btf *btf) {
        static void *own;
        __typeof__(&btf__free) f;
        size_t i;
        bool kept;

        if (!btf)
                return;
        pthread_mutex_lock(&kept_lock);
        kept = kept_find(btf, &i);
        pthread_mutex_unlock(&kept_lock);
        if (kept)
                return;
        f = libbpf_own(&own, "btf__free");
        if (f)
                f(btf);
}

void btf_targets_free(struct btf *btf) {
        size_t i;

        if (!btf)
                return;
        pthread_mutex_lock(&kept_lock);
        if (kept_find(btf, &i))
                kept_btfs[i] = NULL;
        pthread_mutex_unlock(&kept_lock);
        btf__free(btf);
}

/*
 * libbpf reads kernel BTF through this public function of its own for what
 * the planner and the handlers above do not cover: typed ksyms, kfuncs, lsm,
 * iter and struct_ops targets, type_id_kernel relocations. libbpf calls it
 * through its PLT, so this definition in the daemon takes its place: during
 * a load it hands out the cached vmlinux BTF itself (its btf__free() is a
 * no-op, above), so no load parses kernel BTF.
 * Outside a load it is libbpf's own.
 */
struct btf *btf__load_vmlinux_btf(void) {
        static void *own;
        const BtfEntry *e = current ? btf_cache_vmlinux(current) : NULL;
        __typeof__(&btf__load_vmlinux_btf) f;

        if (e && keep(e->btf)) {
                served_from_cache++;
                return e->btf;
        }
        f = libbpf_own(&own, "btf__load_vmlinux_btf");
        return f ? f() : NULL;
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

        if (e && kind_indexed(kind) && strcmp(type_name, "void") != 0 && btf == e->btf) {
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

/*
 * libbpf finds a kfunc, typed ksym, iter or struct_ops target that is not in
 * vmlinux by walking every BTF object of the kernel (bpf_btf_get_next_id(),
 * through its PLT), opening each and parsing each module's BTF it meets: on
 * a distribution kernel, a hundred modules for one kfunc, and every loaded
 * program's BTF opened on the way. During a load the walk skips the BTF
 * objects the cache accounts for but the modules holding what the object
 * looks for (btf_targets_begin()): vmlinux's, the other cached modules', and
 * those that are no kernel BTF. What is newer than the cache's last walk is
 * looked at here once and taken into the cache: no kernel BTF, skipped from
 * then on; a module's the cache has not met, shown to libbpf now and in
 * every later walk. So libbpf finds what it would have found. Outside a
 * load, with more modules than kept above, or for CO-RE on the kernel's
 * BTF, it is libbpf's own walk.
 */
/* 1 if the kernel's BTF object id is kernel BTF (vmlinux's or a module's), 0 if not or gone, < 0 if unknown. */
static int is_kernel_btf(uint32_t id) {
        char name[64];
        bool kernel = false;
        int r = btf_object_info(id, name, &kernel);

        return r == -ENOENT ? 0 : r < 0 ? r : kernel;
}

int bpf_btf_get_next_id(__u32 start_id, __u32 *next_id) {
        __typeof__(&bpf_btf_get_next_id) f = libbpf_own(&own_next_id, "bpf_btf_get_next_id");
        /* Where this walk is, if it has gone through every id from the first: what it meets past the cache's
         * last walk can then be taken in, so that the next walk skips it. */
        static __thread __u32 walk_at;
        static __thread bool walk_whole;
        __u32 id = start_id;
        int r;

        if (!f)
                return -ENOSYS;
        if (!current || !modules_filtered)
                return f(start_id, next_id);
        if (start_id == 0)
                module_walks++;
        walk_whole = start_id == 0 || (walk_whole && start_id == walk_at);
        for (;;) {
                bool shown = false;
                int k;

                r = f(id, &id);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_shown_modules; i++)
                        shown = shown || shown_modules[i] == id;
                if (shown) {
                        modules_shown++;
                        break;
                }
                if (btf_cache_accounts_for(current, id))
                        continue;
                /* Newer than the cache's last walk: looked at once, here, rather than by libbpf in every load. */
                k = walk_whole && id > current->walked_id ? is_kernel_btf(id) : -EAGAIN;
                if (k >= 0 && btf_cache_account(current, id, k > 0) < 0)
                        k = -ENOMEM;
                if (k == 0)
                        continue;
                if (k < 0)
                        walk_whole = false;
                break; /* a module's BTF the cache has not met: libbpf's to see */
        }
        walk_at = id;
        *next_id = id;
        return 0;
}

unsigned btf_targets_module_walks(void) {
        return module_walks;
}

unsigned btf_targets_modules_shown(void) {
        return modules_shown;
}

bool btf_targets_take_stale(void) {
        bool stale = stale_seen;

        stale_seen = false;
        return stale;
}

unsigned btf_targets_unmet_searches(void) {
        return unmet_module_searches;
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
