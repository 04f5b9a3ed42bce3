/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/libbpf.h>
#include <errno.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "object.h"
#include "plans.h"
#include "worker.h"
#include "protocol.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static json_object *relocations_frozen(const Plan *plan);

void plans_init(Plans *p, BtfCache *cache) {
        *p = (Plans) { .cache = cache };
}

static void drop_ready(Plan *plan) {
        bpf_object__close(plan->ready);
        plan->ready = NULL;
        free(plan->ready_name);
        plan->ready_name = NULL;
}

void kept_file_done(KeptFile *k) {
        loader_read_done(&k->bytes);
        *k = (KeptFile) {};
}

static Plan *plan_free(Plan *plan) {
        if (!plan)
                return NULL;
        core_plan_free(plan->core);
        json_object_put(plan->relocations);
        safe_close(plan->min_btf_fd);
        kept_btf_done(&plan->kernel_btf);
        drop_ready(plan);
        kept_file_done(&plan->kept);
        free(plan);
        return NULL;
}

const char *plan_btf_custom_path(const Plan *plan) {
        return plan->min_btf_path[0] && !plan->core->needs_full_btf ? plan->min_btf_path : NULL;
}

Plan *plan_ref(Plan *plan) {
        if (plan)
                plan->refs++;
        return plan;
}

/* Objects opened ahead cost memory (a large object's programs, BTF and relocations): the plans used last. */
#define PLANS_READY_MAX 4u

void plans_keep_ready(Plans *p, Plan *plan, struct bpf_object *obj, const char *name, KeptFile *file) {
        size_t kept = 0;

        kept_file_done(&plan->kept);
        if (plan->in_cache) {
                plan->kept = *file;
                *file = (KeptFile) {};
        } else
                kept_file_done(file);
        if (obj) {
                drop_ready(plan);
                plan->ready_name = plan->in_cache ? strdup(name) : NULL;
                if (plan->ready_name)
                        plan->ready = obj;
                else
                        bpf_object__close(obj);
        }
        for (size_t i = 0; i < p->n; i++)
                if ((p->entries[i]->ready || p->entries[i]->kept.bytes.data) && ++kept > PLANS_READY_MAX) {
                        drop_ready(p->entries[i]);
                        kept_file_done(&p->entries[i]->kept);
                }
}

/* The BTF a cached plan was made for: the last part of its key ("" for the kernel's). */
static const char *plan_btf_name(const Plan *plan) {
        const char *s = strchr(plan->key, '/');

        s = s ? strchr(s + 1, '/') : NULL;
        return s ? s + 1 : NULL;
}

Plan *plans_find_file(Plans *p, const struct stat *st, const char *btf_name) {
        for (size_t i = 0; i < p->n; i++) {
                Plan *plan = p->entries[i];
                const char *name = plan_btf_name(plan);

                if (plan->kept.bytes.data && loader_file_unchanged(st, &plan->kept.st) && name &&
                    strcmp(name, btf_name ?: "") == 0)
                        return plan;
        }
        return NULL;
}

Plan *plans_take_file(Plans *p, Plan *plan, KeptFile *ret) {
        for (size_t i = 0; i < p->n; i++)
                if (p->entries[i] == plan) {
                        memmove(p->entries + 1, p->entries, i * sizeof(Plan *));
                        p->entries[0] = plan;
                        break;
                }
        p->hits++;
        *ret = plan->kept;
        plan->kept = (KeptFile) {};
        return plan_ref(plan);
}

struct bpf_object *plan_take_ready(Plan *plan, const char *name) {
        struct bpf_object *obj;

        if (!plan->ready || strcmp(plan->ready_name, name) != 0)
                return NULL;
        obj = TAKE_PTR(plan->ready);
        drop_ready(plan);
        return obj;
}

Plan *plan_unref(Plan *plan) {
        if (plan && --plan->refs == 0)
                plan_free(plan);
        return NULL;
}

void plans_flush(Plans *p) {
        for (size_t i = 0; i < p->n; i++) {
                p->entries[i]->in_cache = false;
                plan_unref(p->entries[i]);
        }
        p->n = 0;
}

void plans_done(Plans *p) {
        plans_flush(p);
}

/* The user's BTF: raw BTF, or the .BTF section of an ELF file (a user-space binary built with -g). */
static struct btf *parse_user_btf(const void *data, size_t size, char **ret_error) {
        const uint16_t magic = 0xeB9F;
        struct btf *btf = NULL;
        Elf *elf;
        Elf_Scn *scn = NULL;
        size_t shstrndx;

        if (size >= 2 && memcmp(data, &magic, 2) == 0) {
                btf = btf__new(data, (uint32_t) MIN(size, (size_t) UINT32_MAX));
                if (!btf)
                        *ret_error = strdup("the extra BTF is not valid raw BTF");
                return btf;
        }
        elf = elf_memory((char *) data, size);
        if (!elf || elf_getshdrstrndx(elf, &shstrndx) < 0) {
                if (elf)
                        elf_end(elf);
                *ret_error = strdup("the extra BTF is neither raw BTF nor an ELF file");
                return NULL;
        }
        while ((scn = elf_nextscn(elf, scn))) {
                GElf_Shdr sh;
                const char *name;
                Elf_Data *d;

                if (!gelf_getshdr(scn, &sh) || !(name = elf_strptr(elf, shstrndx, sh.sh_name)) ||
                    strcmp(name, ".BTF") != 0)
                        continue;
                if (sh.sh_type == SHT_NOBITS || sh.sh_offset > size || sh.sh_size > size - sh.sh_offset)
                        break;
                d = elf_getdata(scn, NULL);
                if (d && d->d_buf && d->d_size > 0)
                        btf = btf__new(d->d_buf, (uint32_t) d->d_size);
                break;
        }
        elf_end(elf);
        if (!btf)
                *ret_error = strdup("the extra BTF file has no valid .BTF section (build it with -g)");
        return btf;
}

/* Lookup over a primary set (the kernel's or an external BTF) plus the user's BTF. */
typedef struct MergedLookup {
        CoreLookup base;
        void *base_data;
        BtfIndex user;
        CoreCandidate **arena; /* merged results, freed after planning */
        size_t n_arena;
} MergedLookup;

static int merged_lookup(void *userdata, const char *name, size_t len, const CoreCandidate **ret, size_t *ret_n) {
        MergedLookup *m = userdata;
        const CoreCandidate *a, *b;
        size_t na, nb;
        CoreCandidate *merged, **arena;
        int r;

        r = m->base(m->base_data, name, len, &a, &na);
        if (r < 0)
                return r;
        btf_index_lookup(&m->user, name, len, &b, &nb);
        if (nb == 0) {
                *ret = a;
                *ret_n = na;
                return 0;
        }
        merged = malloc((na + nb) * sizeof(CoreCandidate));
        arena = reallocarray(m->arena, m->n_arena + 1, sizeof(CoreCandidate *));
        if (!merged || !arena) {
                free(merged);
                return -ENOMEM;
        }
        m->arena = arena;
        m->arena[m->n_arena++] = merged;
        /* The user's types are primary, like vmlinux: ahead of any module's. */
        size_t n = 0;
        for (size_t i = 0; i < na; i++)
                if (a[i].target->primary)
                        merged[n++] = a[i];
        for (size_t i = 0; i < nb; i++)
                merged[n++] = b[i];
        for (size_t i = 0; i < na; i++)
                if (!a[i].target->primary)
                        merged[n++] = a[i];
        *ret = merged;
        *ret_n = n;
        return 0;
}

static int index_lookup(void *userdata, const char *name, size_t len, const CoreCandidate **ret, size_t *ret_n) {
        return btf_index_lookup(userdata, name, len, ret, ret_n);
}

static int make_plan(Plans *p, const PlanRequest *req, Plan **ret, Failure *f) {
        _cleanup_free_ char *error = NULL;
        MergedLookup m = {};
        struct btf *user = NULL;
        CoreTarget user_target;
        const CoreTarget *targets[1];
        Plan *plan;
        uint64_t t0 = now_usec();
        int r;

        if (req->btf_name) {
                BtfEntry *e = btf_cache_find(p->cache, req->btf_name);

                if (!e || e->origin != BTF_ORIGIN_EXTERNAL)
                        return failure_invalid_parameter(f, -ENOENT, "btf",
                                                         "no registered external BTF named '%s' (see ListBTF)",
                                                         req->btf_name);
                m.base = index_lookup;
                m.base_data = e->index;
        } else {
                m.base = btf_cache_lookup;
                m.base_data = p->cache;
        }
        if (req->user_btf) {
                user = parse_user_btf(req->user_btf, req->user_btf_size, &error);
                if (!user)
                        return failure_invalid_parameter(f, -EINVAL, "btf_fd", "%s", error ?: "invalid BTF");
                user_target = (CoreTarget) { .name = "user", .btf = user, .primary = true };
                targets[0] = &user_target;
                r = btf_index_build(targets, 1, &m.user);
                if (r < 0) {
                        btf__free(user);
                        return r;
                }
        }

        plan = calloc(1, sizeof(*plan));
        if (!plan) {
                r = -ENOMEM;
                goto finish;
        }
        plan->refs = 1;
        plan->min_btf_fd = -1;
        plan->kernel_btf.fd = -1;
        /* The client's ELF is parsed in a confined worker, never here. */
        r = worker_core_plan(req->elf, req->size, merged_lookup, &m, &plan->core, &error);
        if (r < 0) {
                plan_free(plan);
                r = r == -ENOMEM ? r
                                 : failure_setf(f, r, VL_ERROR_INVALID_OBJECT, "message", "%s",
                                                error ?: "the object's CO-RE information is malformed");
                goto finish;
        }
        if (plan->core->min_btf) {
                const void *raw;
                uint32_t raw_size = 0;
                size_t done = 0;

                raw = btf__raw_data(plan->core->min_btf, &raw_size);
                plan->min_btf_fd = memfd_create("bpfcored-min-btf", MFD_CLOEXEC);
                if (!raw || plan->min_btf_fd < 0) {
                        r = plan->min_btf_fd < 0 ? -errno : -ENOMEM;
                        plan_free(plan);
                        goto finish;
                }
                while (done < raw_size) {
                        ssize_t n = write(plan->min_btf_fd, (const char *) raw + done, raw_size - done);
                        if (n <= 0) {
                                r = n < 0 ? -errno : -EIO;
                                plan_free(plan);
                                goto finish;
                        }
                        done += (size_t) n;
                }
                snprintf(plan->min_btf_path, sizeof(plan->min_btf_path), "/proc/self/fd/%d", plan->min_btf_fd);
        }
        plan->relocations = relocations_frozen(plan);
        if (!plan->relocations) {
                r = -ENOMEM;
                plan_free(plan);
                goto finish;
        }
        plan->plan_us = now_usec() - t0;
        *ret = plan;
        r = 0;
finish:
        for (size_t i = 0; i < m.n_arena; i++)
                free(m.arena[i]);
        free(m.arena);
        btf_index_done(&m.user);
        /* The plan keeps only names and values: the user's BTF is not needed past planning. */
        btf__free(user);
        return r;
}

int plans_get(Plans *p, const PlanRequest *req, Plan **ret, Failure *f) {
        char key[PLAN_KEY_MAX];
        Plan *plan = NULL;
        int k, r;
        bool cached;

        k = snprintf(key, sizeof(key), "%s/%llu/%s", req->plan_key,
                     (unsigned long long) p->cache->generation, req->btf_name ?: "");
        /* A key cut short could name another BTF's plan: such a request (no registered BTF has so long a
         * name) is planned, and fails, uncached. */
        cached = !req->user_btf && k > 0 && (size_t) k < sizeof(key);
        if (cached)
                for (size_t i = 0; i < p->n; i++)
                        if (strcmp(p->entries[i]->key, key) == 0) {
                                plan = p->entries[i];
                                memmove(p->entries + 1, p->entries, i * sizeof(Plan *));
                                p->entries[0] = plan;
                                plan->refs++;
                                p->hits++;
                                *ret = plan;
                                return 0;
                        }

        p->misses++;
        r = make_plan(p, req, &plan, f);
        if (r < 0) {
                p->failures++;
                return r;
        }
        strcpy(plan->key, key);
        if (cached) {
                if (p->n == PLANS_CACHE_MAX) {
                        p->entries[--p->n]->in_cache = false;
                        plan_unref(p->entries[p->n]);
                }
                memmove(p->entries + 1, p->entries, p->n * sizeof(Plan *));
                p->entries[0] = plan;
                p->n++;
                plan->refs++;
                plan->in_cache = true;
        }
        *ret = plan;
        return 0;
}

static json_object *relocations_tree(const Plan *plan) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; plan && plan->core && i < plan->core->n_relocations; i++) {
                const CoreRelocation *r = &plan->core->relocations[i];
                json_object *e = json_object_new_object();

                json_object_object_add(e, "program", json_object_new_string(r->program ?: ""));
                json_object_object_add(e, "insn", json_object_new_int64(r->insn));
                json_object_object_add(e, "kind", json_object_new_string(r->kind ?: ""));
                json_object_object_add(e, "type", json_object_new_string(r->type ?: ""));
                json_object_object_add(e, "access", json_object_new_string(r->access ?: ""));
                json_object_object_add(e, "local", json_object_new_int64(r->local));
                if (r->ok)
                        json_object_object_add(e, "target", json_object_new_int64(r->target));
                if (r->btf)
                        json_object_object_add(e, "btf", json_object_new_string(r->btf));
                json_object_object_add(e, "ok", json_object_new_boolean(r->ok));
                if (r->poisoned)
                        json_object_object_add(e, "poisoned", json_object_new_boolean(true));
                if (r->error)
                        json_object_object_add(e, "error", json_object_new_string(r->error));
                json_object_array_add(a, e);
        }
        return a;
}

/* A plan's relocations[] as text made once per plan (json_freeze()). */
static json_object *relocations_frozen(const Plan *plan) {
        return json_freeze(relocations_tree(plan));
}

const char *plan_file_digest(const Plan *plan, const struct stat *st) {
        return plan && st && loader_file_unchanged(st, &plan->file) ? plan->file_digest : NULL;
}

void plan_remember_file(Plan *plan, const struct stat *st, const char *digest) {
        if (!plan || !st || st->st_ino == 0 || strlen(digest) >= sizeof(plan->file_digest))
                return;
        plan->file = *st;
        strcpy(plan->file_digest, digest);
}

json_object *plan_relocations_json(const Plan *plan) {
        return plan && plan->relocations ? json_object_get(plan->relocations) : json_object_new_array();
}
