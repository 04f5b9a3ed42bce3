/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "btf-cache.h"
#include "btf-targets.h"
#include "log.h"
#include "macro.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* Eight bytes a step (names average some 20): hashing 100,000 names at start is most of the index build. */
static uint32_t hash_name(const char *s, size_t len) {
        uint64_t h = 0x9e3779b97f4a7c15u ^ len, w;

        for (; len >= 8; s += 8, len -= 8) {
                memcpy(&w, s, 8);
                h = (h ^ w) * 0xff51afd7ed558ccdu;
                h ^= h >> 32;
        }
        if (len > 0) {
                w = 0;
                memcpy(&w, s, len);
                h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
                h ^= h >> 29;
        }
        return (uint32_t) (h ^ (h >> 32));
}

/* core_essential_name_len() and hash_name() of it: only names with "___" can have a flavor. */
static size_t essential_name_hash(const char *s, uint32_t *ret_hash) {
        size_t len = strlen(s);

        for (const char *u = memchr(s, '_', len); u; u = memchr(u + 1, '_', (size_t) (s + len - u - 1)))
                if (u + 2 < s + len && u[1] == '_' && u[2] == '_') {
                        len = core_essential_name_len(s);
                        break;
                }
        *ret_hash = hash_name(s, len);
        return len;
}

static const char *cand_name(const CoreCandidate *c) {
        const struct btf_type *t = btf__type_by_id(c->target->btf, c->type_id);

        return btf__name_by_offset(c->target->btf, t->name_off) ?: "";
}

static int cmp_names(const char *a, size_t la, const char *b, size_t lb) {
        int r = memcmp(a, b, MIN(la, lb));

        return r ?: (la < lb ? -1 : la > lb ? 1 : 0);
}

/* What building the index looks at, gathered once. */
typedef struct Slot {
        uint32_t hash;
        uint32_t len;
        const char *name;
        CoreCandidate cand;
} Slot;

static bool slot_after(const Slot *a, const Slot *b) {
        return a->hash != b->hash ? a->hash > b->hash : cmp_names(a->name, a->len, b->name, b->len) > 0;
}

static bool indexable(const struct btf_type *t) {
        switch (btf_kind(t)) {
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64:
        case BTF_KIND_FWD:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_INT:
        case BTF_KIND_FLOAT:
        case BTF_KIND_FUNC:
        case BTF_KIND_VAR: /* typed ksyms, looked up by libbpf (btf-targets.c) */
                return t->name_off != 0;
        default:
                return false;
        }
}

void btf_index_done(BtfIndex *idx) {
        free(idx->cands);
        free(idx->buckets);
        *idx = (BtfIndex) {};
}

/* Slots of the types numbered [from, to) over all targets in order (not counting their base's). */
typedef struct SlotJob {
        const CoreTarget *const *targets;
        size_t n_targets;
        size_t from, to;
        Slot *slots;
        size_t k;
} SlotJob;

/* Below this, a thread costs more than it saves. */
#define SLOTS_PARALLEL_MIN 20000u

static void collect_slots(SlotJob *j) {
        size_t at = 0;

        for (size_t i = 0; i < j->n_targets && at < j->to; i++) {
                const struct btf *btf = j->targets[i]->btf;
                uint32_t first = btf__base_btf(btf) ? btf__type_cnt(btf__base_btf(btf)) : 1;
                uint32_t count = btf__type_cnt(btf) - first;

                for (uint32_t id = first; id < first + count; id++, at++) {
                        const struct btf_type *t;
                        const char *name;
                        uint32_t hash;
                        size_t len;

                        if (at < j->from)
                                continue;
                        if (at >= j->to)
                                break;
                        t = btf__type_by_id(btf, id);
                        if (!indexable(t))
                                continue;
                        name = btf__name_by_offset(btf, t->name_off);
                        if (!name || !*name)
                                continue;
                        len = essential_name_hash(name, &hash);
                        j->slots[j->k++] = (Slot) { .hash = hash, .len = (uint32_t) len, .name = name,
                                                    .cand = { .target = j->targets[i], .type_id = id } };
                }
        }
}

static void *collect_slots_thread(void *userdata) {
        collect_slots(userdata);
        return NULL;
}

/*
 * At start, vmlinux's slots are worked out from its raw bytes on a thread
 * while libbpf parses the same bytes (btf__new() copies and checks them
 * all): the two take about as long, so the index costs little more than
 * the parse. The walk follows the BTF format (a type's record length by
 * its kind) within the bounds of the file; anything it does not expect, or
 * a type count other than libbpf's, and the slots are made as for any BTF.
 */
typedef struct RawSlots {
        void *map;       /* the mapped file: slot names point into it until the index is built */
        size_t map_size;
        Slot *slots;     /* cand.target left unset: vmlinux's */
        size_t k;
        uint32_t n_types;
        int r;
} RawSlots;

static void raw_slots_done(RawSlots *raw) {
        if (raw->map)
                munmap(raw->map, raw->map_size);
        free(raw->slots);
        *raw = (RawSlots) {};
}

static size_t raw_type_extra(const struct btf_type *t) {
        uint16_t vlen = btf_vlen(t);

        switch (btf_kind(t)) {
        case BTF_KIND_INT:
        case BTF_KIND_VAR:
        case BTF_KIND_DECL_TAG:
                return 4;
        case BTF_KIND_PTR:
        case BTF_KIND_FWD:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_FUNC:
        case BTF_KIND_FLOAT:
        case BTF_KIND_TYPE_TAG:
                return 0;
        case BTF_KIND_ARRAY:
                return sizeof(struct btf_array);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                return (size_t) vlen * sizeof(struct btf_member);
        case BTF_KIND_ENUM:
                return (size_t) vlen * sizeof(struct btf_enum);
        case BTF_KIND_ENUM64:
                return (size_t) vlen * sizeof(struct btf_enum64);
        case BTF_KIND_FUNC_PROTO:
                return (size_t) vlen * sizeof(struct btf_param);
        case BTF_KIND_DATASEC:
                return (size_t) vlen * sizeof(struct btf_var_secinfo);
        default:
                return SIZE_MAX;
        }
}

static void *raw_slots_thread(void *userdata) {
        RawSlots *raw = userdata;
        const uint8_t *d = raw->map;
        const struct btf_header *h = raw->map;
        const char *strs;
        uint64_t types, types_end, strs_end;

        raw->r = -EINVAL;
        if (raw->map_size < sizeof(*h) || h->hdr_len < sizeof(*h) || h->hdr_len > raw->map_size)
                return NULL;
        types = (uint64_t) h->hdr_len + h->type_off;
        types_end = types + h->type_len;
        strs_end = (uint64_t) h->hdr_len + h->str_off + h->str_len;
        if (types_end > raw->map_size || strs_end > raw->map_size || h->str_len == 0 || d[strs_end - 1] != 0)
                return NULL;
        strs = (const char *) d + h->hdr_len + h->str_off;
        raw->slots = malloc((h->type_len / sizeof(struct btf_type) + 1) * sizeof(Slot));
        if (!raw->slots) {
                raw->r = -ENOMEM;
                return NULL;
        }
        for (uint64_t at = types; at < types_end;) {
                const struct btf_type *t = (const struct btf_type *) (d + at);
                size_t extra;

                if (types_end - at < sizeof(*t) || (extra = raw_type_extra(t)) == SIZE_MAX ||
                    extra > types_end - at - sizeof(*t) || t->name_off >= h->str_len)
                        return NULL;
                at += sizeof(*t) + extra;
                raw->n_types++;
                if (indexable(t) && strs[t->name_off]) {
                        Slot *sl = &raw->slots[raw->k++];

                        sl->name = strs + t->name_off;
                        sl->len = (uint32_t) essential_name_hash(sl->name, &sl->hash);
                        sl->cand = (CoreCandidate) { .type_id = raw->n_types };
                }
        }
        raw->r = 0;
        return NULL;
}

static int index_build(const CoreTarget *const *targets, size_t n_targets, const RawSlots *raw, BtfIndex *ret);

int btf_index_build(const CoreTarget *const *targets, size_t n_targets, BtfIndex *ret) {
        return index_build(targets, n_targets, NULL, ret);
}

/* raw: vmlinux's slots (targets[0]) worked out at start, or NULL. */
static int index_build(const CoreTarget *const *targets, size_t n_targets, const RawSlots *raw, BtfIndex *ret) {
        _cleanup_free_ Slot *slots = NULL;
        _cleanup_free_ uint32_t *order = NULL, *fill = NULL;
        BtfIndex idx = {};
        SlotJob jobs[2] = {};
        pthread_t helper;
        bool helped = false;
        size_t n = 0, k = 0;

        for (size_t i = 0; i < n_targets; i++) {
                const struct btf *btf = targets[i]->btf;
                /* Split BTF numbers its own types after its base's. */
                uint32_t first = btf__base_btf(btf) ? btf__type_cnt(btf__base_btf(btf)) : 1;
                n += btf__type_cnt(btf) - first;
        }
        slots = malloc(MAX(n, 1u) * sizeof(Slot));
        if (!slots)
                return -ENOMEM;
        if (raw && raw->r == 0 && n_targets > 0 && !btf__base_btf(targets[0]->btf) &&
            raw->n_types == btf__type_cnt(targets[0]->btf) - 1) {
                /* vmlinux's are made; the rest (modules) follow them. */
                for (size_t i = 0; i < raw->k; i++) {
                        slots[i] = raw->slots[i];
                        slots[i].cand.target = targets[0];
                }
                jobs[0] = (SlotJob) { .targets = targets, .n_targets = n_targets, .from = raw->n_types, .to = n,
                                      .slots = slots + raw->k };
                collect_slots(&jobs[0]);
                k = raw->k + jobs[0].k;
        } else {
                /* Two halves of the types, the second on a thread (start-up has both cores to itself), each into
                 * its own part of slots; the second's then follow the first's, in the types' order. */
                jobs[0] = (SlotJob) { .targets = targets, .n_targets = n_targets, .from = 0, .to = n / 2,
                                      .slots = slots };
                jobs[1] = (SlotJob) { .targets = targets, .n_targets = n_targets, .from = n / 2, .to = n,
                                      .slots = slots + n / 2 };
                if (n >= SLOTS_PARALLEL_MIN)
                        helped = pthread_create(&helper, NULL, collect_slots_thread, &jobs[1]) == 0;
                collect_slots(&jobs[0]);
                if (helped)
                        pthread_join(helper, NULL);
                else
                        collect_slots(&jobs[1]);
                k = jobs[0].k;
                memmove(slots + k, jobs[1].slots, jobs[1].k * sizeof(Slot));
                k += jobs[1].k;
        }

        idx.n_buckets = 1;
        while (idx.n_buckets < k)
                idx.n_buckets <<= 1;
        idx.buckets = calloc(idx.n_buckets + 1, sizeof(uint32_t));
        idx.cands = malloc(MAX(k, 1u) * sizeof(CoreCandidate));
        order = malloc(MAX(k, 1u) * sizeof(uint32_t));
        fill = malloc(idx.n_buckets * sizeof(uint32_t));
        if (!idx.buckets || !idx.cands || !order || !fill) {
                btf_index_done(&idx);
                return -ENOMEM;
        }
        /* Counting sort by bucket keeps insertion order: vmlinux before modules, then type id. Slot numbers
         * are what moves (4 bytes, not a 32-byte slot: the scatter is most of the build). */
        for (size_t i = 0; i < k; i++)
                idx.buckets[(slots[i].hash & (idx.n_buckets - 1)) + 1]++;
        for (size_t b = 0; b < idx.n_buckets; b++)
                idx.buckets[b + 1] += idx.buckets[b];
        memcpy(fill, idx.buckets, idx.n_buckets * sizeof(uint32_t));
        for (size_t i = 0; i < k; i++)
                order[fill[slots[i].hash & (idx.n_buckets - 1)]++] = (uint32_t) i;
        /* Group equal names within a bucket (buckets hold one or two entries on average), by full hash
         * first: names are compared only when hashes are equal, that is almost only when they are. */
        for (size_t b = 0; b < idx.n_buckets; b++)
                for (uint32_t i = idx.buckets[b] + 1; i < idx.buckets[b + 1]; i++) {
                        uint32_t s = order[i], j = i;

                        while (j > idx.buckets[b] && slot_after(&slots[order[j - 1]], &slots[s])) {
                                order[j] = order[j - 1];
                                j--;
                        }
                        order[j] = s;
                }
        for (size_t i = 0; i < k; i++)
                idx.cands[i] = slots[order[i]].cand;
        idx.n = k;
        *ret = idx;
        return 0;
}

int btf_index_lookup(const BtfIndex *idx, const char *essential_name, size_t len, const CoreCandidate **ret,
                     size_t *ret_n) {
        size_t b, end;

        *ret = NULL;
        *ret_n = 0;
        if (idx->n == 0)
                return 0;
        b = hash_name(essential_name, len) & (idx->n_buckets - 1);
        end = idx->buckets[b + 1];
        for (size_t i = idx->buckets[b]; i < end; i++) {
                const char *n = cand_name(&idx->cands[i]);
                size_t count = 1;

                if (cmp_names(n, core_essential_name_len(n), essential_name, len) != 0)
                        continue;
                while (i + count < end) {
                        const char *m = cand_name(&idx->cands[i + count]);
                        if (cmp_names(m, core_essential_name_len(m), essential_name, len) != 0)
                                break;
                        count++;
                }
                *ret = &idx->cands[i];
                *ret_n = count;
                return 0;
        }
        return 0;
}

int btf_cache_lookup(void *userdata, const char *essential_name, size_t len, const CoreCandidate **ret,
                     size_t *ret_n) {
        const BtfCache *c = userdata;

        return btf_index_lookup(&c->kernel, essential_name, len, ret, ret_n);
}

static BtfEntry *entry_free(BtfEntry *e) {
        if (!e)
                return NULL;
        if (e->index) {
                btf_index_done(e->index);
                free(e->index);
        }
        btf_targets_free(e->btf);
        free(e->name);
        free(e);
        return NULL;
}

/*
 * Kernel BTF in sysfs comes 4 KiB per read(2) (kernfs), some 1,350 calls for
 * vmlinux; kernels that let it be mapped (MAP_PRIVATE) hand it over at once.
 * Only sysfs is mapped: it cannot be truncated under us, a regular file could.
 */
/* raw (vmlinux at start, or NULL): its slots are worked out while libbpf parses, and it keeps the mapping. */
static struct btf *parse_btf_file(const char *path, const struct btf *base, RawSlots *raw) {
        const uint16_t magic = 0xeB9F;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct statfs sfs;
        struct stat st;
        struct btf *btf = NULL;
        pthread_t walker;
        bool walking = false;
        void *m;

        if (fd >= 0 && fstatfs(fd, &sfs) == 0 && sfs.f_type == SYSFS_MAGIC && fstat(fd, &st) == 0 &&
            st.st_size >= 2 && (uint64_t) st.st_size <= UINT32_MAX) {
                m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
                if (m != MAP_FAILED) {
                        if (memcmp(m, &magic, sizeof(magic)) == 0) {
                                if (raw && !base) {
                                        *raw = (RawSlots) { .map = m, .map_size = (size_t) st.st_size, .r = -EINVAL };
                                        walking = pthread_create(&walker, NULL, raw_slots_thread, raw) == 0;
                                        if (!walking)
                                                *raw = (RawSlots) {};
                                }
                                btf = base ? btf__new_split(m, (uint32_t) st.st_size, (struct btf *) base)
                                           : btf__new(m, (uint32_t) st.st_size);
                        }
                        if (walking)
                                pthread_join(walker, NULL);
                        if (walking && btf)
                                return btf; /* raw keeps the mapping */
                        if (walking)
                                raw_slots_done(raw);
                        else
                                munmap(m, (size_t) st.st_size);
                        if (btf)
                                return btf;
                }
        }
        return base ? btf__parse_split(path, (struct btf *) base) : btf__parse(path, NULL);
}

static int entry_new(const char *name, BtfOrigin origin, const char *path, const struct btf *base, RawSlots *raw,
                     BtfEntry **ret) {
        BtfEntry *e;
        uint64_t t0 = now_usec();
        uint32_t size = 0;
        int r;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->name = strdup(name);
        if (!e->name) {
                entry_free(e);
                return -ENOMEM;
        }
        e->origin = origin;
        e->btf = parse_btf_file(path, base, raw);
        if (!e->btf) {
                r = negative_errno();
                entry_free(e);
                return r;
        }
        e->parse_us = now_usec() - t0;
        btf__raw_data(e->btf, &size);
        e->bytes = size;
        e->target = (CoreTarget) { .name = e->name, .btf = e->btf, .primary = origin != BTF_ORIGIN_MODULE };
        if (origin == BTF_ORIGIN_EXTERNAL) {
                const CoreTarget *t = &e->target;

                e->index = calloc(1, sizeof(BtfIndex));
                r = e->index ? btf_index_build(&t, 1, e->index) : -ENOMEM;
                if (r < 0) {
                        entry_free(e);
                        return r;
                }
        }
        *ret = e;
        return 0;
}

static int add_entry(BtfCache *c, BtfEntry *e) {
        BtfEntry **a = reallocarray(c->entries, c->n_entries + 1, sizeof(BtfEntry *));

        if (!a) {
                entry_free(e);
                return -ENOMEM;
        }
        c->entries = a;
        c->entries[c->n_entries++] = e;
        return 0;
}

BtfEntry *btf_cache_find(const BtfCache *c, const char *name) {
        for (size_t i = 0; i < c->n_entries; i++)
                if (strcmp(c->entries[i]->name, name) == 0)
                        return c->entries[i];
        return NULL;
}

BtfEntry *btf_cache_vmlinux(const BtfCache *c) {
        for (size_t i = 0; i < c->n_entries; i++)
                if (c->entries[i]->origin == BTF_ORIGIN_VMLINUX)
                        return c->entries[i];
        return NULL;
}

int btf_object_info(uint32_t id, char *name, bool *ret_kernel) {
        struct bpf_btf_info info = { .name = (uintptr_t) name, .name_len = 64 };
        __u32 len = sizeof(info);
        _cleanup_close_ int fd = bpf_btf_get_fd_by_id(id);

        name[0] = 0;
        if (fd < 0 || bpf_btf_get_info_by_fd(fd, &info, &len) < 0)
                return -errno;
        *ret_kernel = info.kernel_btf;
        return 0;
}

static int append_id(uint32_t **ids, size_t *n, uint32_t id) {
        uint32_t *a = reallocarray(*ids, *n + 1, sizeof(uint32_t));

        if (!a)
                return -ENOMEM;
        *ids = a;
        (*ids)[(*n)++] = id;
        return 0;
}

/* The kernel's ids for its BTF objects, by name ("vmlinux", module names), and those of its kernel BTF the
 * cache has no entry for (or could not look at): taken together once the walk is through. */
static int assign_kernel_ids(BtfCache *c) {
        _cleanup_free_ uint32_t *unmet = NULL;
        size_t n_unmet = 0;
        uint32_t id = 0, walked = c->walked_id;

        while (bpf_btf_get_next_id(id, &id) == 0) {
                char name[64];
                bool kernel = false, met = false;
                int r = btf_object_info(id, name, &kernel);

                walked = MAX(walked, id);
                if (r == -ENOENT)
                        continue; /* gone since */
                if (r >= 0) {
                        met = !kernel;
                        for (size_t i = 0; i < c->n_entries && kernel; i++)
                                if (c->entries[i]->origin != BTF_ORIGIN_EXTERNAL &&
                                    strcmp(c->entries[i]->name, name) == 0) {
                                        c->entries[i]->kernel_id = id;
                                        met = true;
                                }
                }
                if (!met && append_id(&unmet, &n_unmet, id) < 0)
                        return -ENOMEM;
        }
        free(c->unmet_ids);
        c->unmet_ids = TAKE_PTR(unmet);
        c->n_unmet_ids = n_unmet;
        c->walked_id = walked;
        return 0;
}

int btf_cache_account(BtfCache *c, uint32_t id, bool kernel_btf) {
        if (id <= c->walked_id)
                return 0;
        if (kernel_btf && append_id(&c->unmet_ids, &c->n_unmet_ids, id) < 0)
                return -ENOMEM;
        c->walked_id = id;
        return 0;
}

bool btf_cache_accounts_for(const BtfCache *c, uint32_t id) {
        if (id > c->walked_id)
                return false;
        for (size_t i = 0; i < c->n_unmet_ids; i++)
                if (c->unmet_ids[i] == id)
                        return false;
        return true;
}

static int rebuild_index(BtfCache *c, const RawSlots *raw) {
        _cleanup_free_ const CoreTarget **targets = NULL;
        size_t n = 0;
        BtfIndex idx;
        int r;

        targets = calloc(MAX(c->n_entries, 1u), sizeof(CoreTarget *));
        if (!targets)
                return -ENOMEM;
        /* vmlinux first: libbpf prefers its candidates over modules'. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < c->n_entries; i++)
                        if ((pass == 0) == (c->entries[i]->origin == BTF_ORIGIN_VMLINUX))
                                if (c->entries[i]->origin != BTF_ORIGIN_EXTERNAL)
                                        targets[n++] = &c->entries[i]->target;
        r = index_build(targets, n, raw, &idx);
        if (r < 0)
                return r;
        btf_index_done(&c->kernel);
        c->kernel = idx;
        return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);

        return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* One journal entry per BTF that comes or goes: monitoring sees which module or file it was. */
static void log_btf_change(const BtfEntry *e, const char *message_id, const char *what) {
        bool module = e->origin == BTF_ORIGIN_MODULE;
        LogFields lf = {};

        log_field(&lf, "BPFCORED_BTF_NAME", "%s", e->name);
        log_field(&lf, "BPFCORED_BTF_ORIGIN", "%s", module ? "module" : "external");
        log_field(&lf, "BPFCORED_BTF_BYTES", "%zu", e->bytes);
        log_event(&lf, LOG_INFO, message_id, "%s BTF %s %s (%zu bytes).", module ? "Module" : "External", e->name,
                  what, e->bytes);
}

static uint64_t mtime_ns(const struct stat *st) {
        return (uint64_t) st->st_mtim.tv_sec * 1000000000ULL + (uint64_t) st->st_mtim.tv_nsec;
}

static void remember_file(BtfEntry *e, const struct stat *st) {
        e->file_dev = (uint64_t) st->st_dev;
        e->file_ino = (uint64_t) st->st_ino;
        e->file_size = (uint64_t) st->st_size;
        e->file_mtime_ns = mtime_ns(st);
}

static bool same_file(const BtfEntry *e, const struct stat *st) {
        return e->file_dev == (uint64_t) st->st_dev && e->file_ino == (uint64_t) st->st_ino &&
               e->file_size == (uint64_t) st->st_size && e->file_mtime_ns == mtime_ns(st);
}

/* Module BTF in sysfs and *.btf files in the external directory, as they are now. */
static int scan(BtfCache *c, bool *changed) {
        BtfEntry *vmlinux = btf_cache_vmlinux(c);
        DIR *d;
        struct dirent *de;

        /* Drop what is gone. */
        for (size_t i = 0; i < c->n_entries;) {
                BtfEntry *e = c->entries[i];
                char path[4096];
                struct stat st;

                if (e->origin == BTF_ORIGIN_MODULE)
                        snprintf(path, sizeof(path), "%s/%s", c->sysfs_dir, e->name);
                else if (e->origin == BTF_ORIGIN_EXTERNAL)
                        snprintf(path, sizeof(path), "%s/%s.btf", c->external_dir, e->name);
                if (e->origin == BTF_ORIGIN_VMLINUX || (stat(path, &st) == 0 && same_file(e, &st))) {
                        i++;
                        continue;
                }
                log_btf_change(e, MESSAGE_ID_BTF_REMOVED, "is gone or replaced; dropped from the cache");
                entry_free(e);
                memmove(c->entries + i, c->entries + i + 1, (c->n_entries - i - 1) * sizeof(BtfEntry *));
                c->n_entries--;
                *changed = true;
        }

        d = vmlinux ? opendir(c->sysfs_dir) : NULL;
        while (d && (de = readdir(d))) {
                char path[4096];
                struct stat st;
                BtfEntry *e;
                int r;

                if (de->d_name[0] == '.' || strcmp(de->d_name, "vmlinux") == 0 || btf_cache_find(c, de->d_name))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", c->sysfs_dir, de->d_name);
                if (stat(path, &st) < 0)
                        continue; /* gone since */
                r = entry_new(de->d_name, BTF_ORIGIN_MODULE, path, vmlinux->btf, NULL, &e);
                if (r < 0) {
                        log_warning_errno(r, "Cannot parse module BTF %s: %m", path);
                        continue;
                }
                remember_file(e, &st);
                r = add_entry(c, e);
                if (r < 0) {
                        closedir(d);
                        return r;
                }
                log_btf_change(e, MESSAGE_ID_BTF_ADDED, "added");
                *changed = true;
        }
        if (d)
                closedir(d);

        d = c->external_dir ? opendir(c->external_dir) : NULL;
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *name = NULL;
                char path[4096];
                struct stat st;
                BtfEntry *e;
                int r;

                if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".btf"))
                        continue;
                name = strndup(de->d_name, strlen(de->d_name) - 4);
                if (!name || btf_cache_find(c, name))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", c->external_dir, de->d_name);
                if (stat(path, &st) < 0)
                        continue;
                r = entry_new(name, BTF_ORIGIN_EXTERNAL, path, NULL, NULL, &e);
                if (r < 0) {
                        log_warning_errno(r, "Cannot parse external BTF %s: %m", path);
                        continue;
                }
                remember_file(e, &st);
                r = add_entry(c, e);
                if (r < 0) {
                        closedir(d);
                        return r;
                }
                log_btf_change(e, MESSAGE_ID_BTF_ADDED, "registered");
                *changed = true;
        }
        if (d)
                closedir(d);
        return 0;
}

static int refresh(BtfCache *c, const RawSlots *raw) {
        bool changed = false;
        int r;

        r = scan(c, &changed);
        if (r < 0)
                return r;
        if (!changed)
                return 0;
        r = assign_kernel_ids(c);
        if (r >= 0)
                r = rebuild_index(c, raw);
        if (r < 0)
                return r;
        c->generation++;
        return 1;
}

int btf_cache_refresh(BtfCache *c) {
        return refresh(c, NULL);
}

int btf_cache_new(const char *vmlinux_path, const char *sysfs_dir, const char *external_dir, BtfCache **ret) {
        _cleanup_(raw_slots_done) RawSlots raw = {};
        BtfCache *c;
        BtfEntry *e;
        uint64_t t0 = now_usec();
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->vmlinux_path = strdup(vmlinux_path);
        c->sysfs_dir = strdup(sysfs_dir);
        c->external_dir = external_dir ? strdup(external_dir) : NULL;
        if (!c->vmlinux_path || !c->sysfs_dir || (external_dir && !c->external_dir)) {
                btf_cache_free(c);
                return -ENOMEM;
        }

        r = entry_new("vmlinux", BTF_ORIGIN_VMLINUX, vmlinux_path, NULL, &raw, &e);
        if (r < 0) {
                log_warning_errno(r, "Cannot parse kernel BTF %s: %m; CO-RE loads fall back to libbpf.",
                                  vmlinux_path);
        } else {
                r = add_entry(c, e);
                if (r < 0) {
                        btf_cache_free(c);
                        return r;
                }
        }
        r = refresh(c, &raw);
        if (r < 0) {
                btf_cache_free(c);
                return r;
        }
        if (r == 0) {
                r = assign_kernel_ids(c);
                if (r >= 0)
                        r = rebuild_index(c, &raw);
                if (r < 0) {
                        btf_cache_free(c);
                        return r;
                }
        }
        e = btf_cache_vmlinux(c);
        c->indexed_while_parsing = e && raw.r == 0 && raw.n_types == btf__type_cnt(e->btf) - 1;
        c->generation = 1;
        c->startup_us = now_usec() - t0;
        *ret = c;
        return 0;
}

BtfCache *btf_cache_free(BtfCache *c) {
        BtfEntry *vmlinux;

        if (!c)
                return NULL;
        vmlinux = btf_cache_vmlinux(c);
        /* Modules are split on vmlinux: free them before their base. */
        for (size_t i = c->n_entries; i > 0; i--)
                if (c->entries[i - 1] != vmlinux)
                        entry_free(c->entries[i - 1]);
        entry_free(vmlinux);
        free(c->entries);
        free(c->unmet_ids);
        btf_index_done(&c->kernel);
        free(c->vmlinux_path);
        free(c->sysfs_dir);
        free(c->external_dir);
        free(c);
        return NULL;
}

size_t btf_cache_memory(const BtfCache *c) {
        /* libbpf keeps the raw data plus a 4-byte offset per type. */
        size_t n = c->kernel.n * sizeof(CoreCandidate) + (c->kernel.n_buckets + 1) * sizeof(uint32_t);

        for (size_t i = 0; i < c->n_entries; i++)
                n += c->entries[i]->bytes + btf__type_cnt(c->entries[i]->btf) * sizeof(uint32_t);
        return n;
}
