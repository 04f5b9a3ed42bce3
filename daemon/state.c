/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "params.h"
#include "protocol.h"
#include "state.h"

#define STATE_FILE_MAX (16u * 1024 * 1024)

#define FILTERS_SUBDIR "filters"

/* The state directory is in memory (tmpfs, as /run is): fsync() does nothing there, so it is not called. */
static bool state_in_memory;

int state_setup(const char *state_dir) {
        struct statfs sfs;
        int r = mkdir_p(state_dir, 0700);

        if (r >= 0)
                state_in_memory = statfs(state_dir, &sfs) == 0 &&
                                  (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
        return r;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* A rename or unlink in dir made to survive a crash (nothing to do in memory). */
static void sync_dir(const char *dir) {
        _cleanup_close_ int dfd = -1;

        if (state_in_memory)
                return;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
}

/* dir/name written atomically: temp file, fsync, rename, fsync of the directory. */
static int write_text_atomic(const char *dir, const char *name, const char *text, size_t len) {
        char path[4096], tmp[4096];
        _cleanup_close_ int fd = -1;
        int r;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, len);
        if (r >= 0 && !state_in_memory && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        sync_dir(dir); /* the rename itself must survive a crash too */
        return 0;
}

static int write_json_atomic(const char *dir, const char *name, json_object *j) {
        const char *text;
        size_t len;

        text = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text)
                return -ENOMEM;
        return write_text_atomic(dir, name, text, len);
}

int state_write(const char *state_dir, const Object *o, json_object **ret_object, Failure *f) {
        char name[64];
        size_t len = 0;
        char *text;
        int r;

        snprintf(name, sizeof(name), "%llu.json", (unsigned long long) o->id);
        text = object_render(o, &len);
        if (!text)
                return -ENOMEM;
        /* For a reply: one no client could read must not be the answer to a load that stays. */
        if (ret_object && len > VL_MAX_MESSAGE - VL_REPLY_ENVELOPE) {
                free(text);
                return failure_too_large(f, -EMSGSIZE, "message_size",
                                         "the object's JSON (its programs, maps and relocation report) takes %zu "
                                         "bytes, over the %u a reply may have",
                                         len, VL_MAX_MESSAGE);
        }
        r = write_text_atomic(state_dir, name, text, len);
        if (r < 0) {
                free(text);
                return failure_system(f, r, "writing state file %s/%s", state_dir, name);
        }
        /* What was written is the object as a reply describes it: the caller may send the same text. */
        if (ret_object)
                *ret_object = json_frozen_take(json_type_object, text, len);
        else
                free(text);
        return 0;
}

int state_remove(const char *state_dir, uint64_t id) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%llu.json", state_dir, (unsigned long long) id);
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        sync_dir(state_dir);
        return 0;
}

int state_filter_record(const char *state_dir, uint32_t id, uint64_t object_id, uint32_t prog_id,
                        const TcFilter *t) {
        _cleanup_(json_object_putp) json_object *j = json_object_new_object();
        char dir[4096], name[32];
        json_object *filter = tc_filter_to_json(t);

        if (!j || !filter) {
                json_object_put(filter);
                return -ENOMEM;
        }
        json_object_object_add(j, "id", json_object_new_int64(id));
        json_object_object_add(j, "object", json_object_new_uint64(object_id));
        json_object_object_add(j, "program_id", json_object_new_int64(prog_id));
        json_object_object_add(j, "clsact", filter);
        /* Made when first needed and removed when empty: most daemons never have a clsact filter. */
        snprintf(dir, sizeof(dir), "%s/" FILTERS_SUBDIR, state_dir);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        snprintf(name, sizeof(name), "%u.json", id);
        return write_json_atomic(dir, name, j);
}

void state_filter_forget(const char *state_dir, uint32_t id) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/" FILTERS_SUBDIR "/%u.json", state_dir, id);
        if (unlink(path) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Cannot remove %s: %m", path);
        snprintf(path, sizeof(path), "%s/" FILTERS_SUBDIR, state_dir);
        (void) rmdir(path); /* when it was the last */
}

void state_detach_filters(const char *state_dir, const Object *o) {
        for (size_t i = 0; i < o->n_programs; i++)
                for (size_t k = 0; k < o->programs[i].n_links; k++) {
                        const LinkInfo *l = &o->programs[i].links[k];
                        int r;

                        if (!l->is_filter)
                                continue;
                        r = clsact_detach(&l->filter, o->programs[i].id);
                        /* Kept on failure: the next start tries again, as nothing lists it any more. */
                        if (r < 0)
                                log_warning_errno(r, "Cannot remove tc filter %u (%s): %m", l->id, l->target);
                        else
                                state_filter_forget(state_dir, l->id);
                }
}

static char *dup_str(json_object *o, const char *key) {
        json_object *v;

        return strdup(json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                              ? json_object_get_string(v)
                              : "");
}

static int64_t get_int(json_object *o, const char *key) {
        json_object *v;
        int64_t i = 0;

        if (json_object_object_get_ex(o, key, &v))
                json_get_int64(v, &i);
        return i;
}

typedef enum PinKind { PIN_PROGRAM, PIN_MAP, PIN_LINK } PinKind;

static bool pin_ok(const char *dir, const char *sub, const char *name, uint32_t want_id, PinKind kind) {
        char path[4096];
        int fd;
        bool ok;

        snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
        for (char *p = strrchr(path, '/'); *p; p++)
                if (*p == '.')
                        *p = '_';
        fd = bpf_obj_get(path);
        if (fd < 0)
                return false;
        if (kind == PIN_PROGRAM) {
                struct bpf_prog_info info = {};
                __u32 len = sizeof(info);
                ok = bpf_prog_get_info_by_fd(fd, &info, &len) == 0 && info.id == want_id;
        } else if (kind == PIN_MAP) {
                struct bpf_map_info info = {};
                __u32 len = sizeof(info);
                ok = bpf_map_get_info_by_fd(fd, &info, &len) == 0 && info.id == want_id;
        } else {
                struct bpf_link_info info = {};
                __u32 len = sizeof(info);
                ok = bpf_link_get_info_by_fd(fd, &info, &len) == 0 && info.id == want_id;
        }
        close(fd);
        return ok;
}

static void log_filter_dropped(uint64_t object_id, const LinkInfo *l, const char *why) {
        LogFields lf = {};

        log_field(&lf, "BPFCORED_OBJECT_ID", "%llu", (unsigned long long) object_id);
        log_field(&lf, "BPFCORED_LINK_ID", "%u", l->id);
        log_field(&lf, "BPFCORED_LINK_TARGET", "%s", l->target ?: "");
        log_event(&lf, LOG_WARNING, MESSAGE_ID_RECOVERY, "Object %llu: dropped tc filter %u (%s): %s.",
                  (unsigned long long) object_id, l->id, l->target ?: "", why);
}

/*
 * A recorded clsact filter that is still there, running the program, stays; one that is gone (its
 * interface, qdisc or namespace went, or someone removed it) is dropped from the object alone.
 */
static bool filter_still_there(uint64_t object_id, const ProgramInfo *p, LinkInfo *l, json_object *e) {
        json_object *c = json_object_object_get(e, "clsact");
        int r;

        l->is_filter = true;
        if (tc_filter_from_json(c, &l->filter) < 0 || !link_id_is_filter(l->id) || l->filter.handle != l->id) {
                log_filter_dropped(object_id, l, "its record in the state file is unreadable");
                return false;
        }
        r = clsact_check(&l->filter, p->id);
        if (r < 0) {
                /* Unknown is not gone: keep it, so that Detach and Unload still remove it. */
                log_warning_errno(r, "Object %llu: cannot check tc filter %u (%s), kept: %m",
                                  (unsigned long long) object_id, l->id, l->target);
                return true;
        }
        if (r == 0)
                log_filter_dropped(object_id, l, "it no longer runs the program (removed, or its interface, "
                                                 "clsact qdisc or network namespace is gone)");
        return r > 0;
}

static int links_from_state(json_object *prog, const char *pin_dir, uint64_t object_id, ProgramInfo *p,
                            bool *dropped) {
        json_object *links;

        if (!json_object_object_get_ex(prog, "links", &links) || !json_object_is_type(links, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(links); i++) {
                json_object *e = json_object_array_get_idx(links, i);
                LinkInfo l = { .id = (uint32_t) get_int(e, "id"), .type = dup_str(e, "type"), .target = dup_str(e, "target") };
                char name[16];
                int r;

                if (!l.type || !l.target) {
                        link_info_done(&l);
                        return -ENOMEM;
                }
                if (json_object_object_get_ex(e, "clsact", NULL)) {
                        if (!filter_still_there(object_id, p, &l, e)) {
                                link_info_done(&l);
                                *dropped = true;
                                continue;
                        }
                } else {
                        snprintf(name, sizeof(name), "%u", l.id);
                        if (!pin_ok(pin_dir, "links", name, l.id, PIN_LINK)) {
                                link_info_done(&l);
                                return -ENOENT;
                        }
                }
                r = program_add_link(p, &l);
                if (r < 0) {
                        link_info_done(&l);
                        return r;
                }
        }
        return 0;
}

/* An Object from its state file, if its pins are all there and still name the same kernel objects. */
static int object_from_state(json_object *j, const char *root, Object **ret, bool *ret_dropped) {
        _cleanup_(object_freep) Object *o = NULL;
        json_object *progs, *maps, *owner, *relos, *timings;
        const char *digest;
        struct tm tm = {};
        int r;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->id = (uint64_t) get_int(j, "id");
        o->name = dup_str(j, "name");
        digest = json_object_get_string(json_object_object_get(j, "digest"));
        if (o->id == 0 || !o->name || !digest || strlen(digest) >= sizeof(o->digest))
                return -EBADMSG;
        strcpy(o->digest, digest);
        if (asprintf(&o->pin_dir, "%s/%llu", root, (unsigned long long) o->id) < 0)
                return -ENOMEM;
        if (json_object_object_get_ex(j, "owner", &owner)) {
                o->owner.uid = (uid_t) get_int(owner, "uid");
                o->owner.gid = (gid_t) get_int(owner, "gid");
                o->owner.pid = (pid_t) get_int(owner, "pid");
                o->owner.cgroup = dup_str(owner, "cgroup");
        }
        if (strptime(json_object_get_string(json_object_object_get(j, "loaded_at")) ?: "", "%Y-%m-%dT%H:%M:%SZ", &tm))
                o->loaded_at_usec = (uint64_t) timegm(&tm) * 1000000;
        if (json_object_object_get_ex(j, "source", &owner)) {
                o->source = dup_str(j, "source");
                o->source_digest = dup_str(j, "source_digest");
        }
        if (json_object_object_get_ex(j, "relocations", &relos))
                o->relocations = json_object_get(relos);
        if (json_object_object_get_ex(j, "timings_us", &timings)) {
                o->timings.receive = (uint64_t) get_int(timings, "receive");
                o->timings.plan = (uint64_t) get_int(timings, "plan");
                o->timings.open = (uint64_t) get_int(timings, "open");
                o->timings.load = (uint64_t) get_int(timings, "load");
                o->timings.pin = (uint64_t) get_int(timings, "pin");
                o->timings.attach = (uint64_t) get_int(timings, "attach");
                o->timings.total = (uint64_t) get_int(timings, "total");
        }

        if (!json_object_object_get_ex(j, "programs", &progs) || !json_object_is_type(progs, json_type_array) ||
            !json_object_object_get_ex(j, "maps", &maps) || !json_object_is_type(maps, json_type_array))
                return -EBADMSG;
        o->programs = calloc(json_object_array_length(progs) + 1, sizeof(ProgramInfo));
        o->maps = calloc(json_object_array_length(maps) + 1, sizeof(MapInfo));
        if (!o->programs || !o->maps)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(progs); i++) {
                json_object *e = json_object_array_get_idx(progs, i);
                ProgramInfo *p = &o->programs[o->n_programs++];
                const char *tag = json_object_get_string(json_object_object_get(e, "tag")) ?: "";

                p->name = dup_str(e, "name");
                p->section = dup_str(e, "section");
                p->type = dup_str(e, "type");
                p->id = (uint32_t) get_int(e, "id");
                snprintf(p->tag, sizeof(p->tag), "%s", tag);
                p->xlated_bytes = (uint32_t) get_int(e, "xlated_bytes");
                p->jited_bytes = (uint32_t) get_int(e, "jited_bytes");
                p->verified_insns = (uint32_t) get_int(e, "verified_insns");
                if (!p->name || !p->section || !p->type)
                        return -ENOMEM;
                if (!pin_ok(o->pin_dir, "programs", p->name, p->id, PIN_PROGRAM))
                        return -ENOENT;
                r = links_from_state(e, o->pin_dir, o->id, p, ret_dropped);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < json_object_array_length(maps); i++) {
                json_object *e = json_object_array_get_idx(maps, i);
                MapInfo *m = &o->maps[o->n_maps++];

                m->name = dup_str(e, "name");
                m->type = dup_str(e, "type");
                m->id = (uint32_t) get_int(e, "id");
                m->key_size = (uint32_t) get_int(e, "key_size");
                m->value_size = (uint32_t) get_int(e, "value_size");
                m->max_entries = (uint32_t) get_int(e, "max_entries");
                if (!m->name || !m->type)
                        return -ENOMEM;
                if (!pin_ok(o->pin_dir, "maps", m->name, m->id, PIN_MAP))
                        return -ENOENT;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* A link pinned but not yet recorded (a crash inside Attach), or recorded gone (inside Detach): detach it. */
static void drop_unlisted_links(const Object *o) {
        char path[4096];
        DIR *d;
        struct dirent *de;

        snprintf(path, sizeof(path), "%s/links", o->pin_dir);
        d = opendir(path);
        while (d && (de = readdir(d))) {
                bool listed = false;
                char *end;
                unsigned long id;

                if (de->d_name[0] == '.')
                        continue;
                id = strtoul(de->d_name, &end, 10);
                for (size_t i = 0; i < o->n_programs && !listed; i++)
                        for (size_t k = 0; k < o->programs[i].n_links && !listed; k++)
                                listed = *end == 0 && o->programs[i].links[k].id == id;
                if (!listed && unlinkat(dirfd(d), de->d_name, 0) == 0)
                        log_warning("Object %llu: removed link pin %s that its state file does not list.",
                                    (unsigned long long) o->id, de->d_name);
        }
        if (d)
                closedir(d);
}

static bool parse_id(const char *s, const char *suffix, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (*s < '1' || *s > '9')
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || strcmp(end, suffix) != 0)
                return false;
        *ret = v;
        return true;
}

static void log_removed(uint64_t id, const char *why) {
        LogFields lf = {};

        log_field(&lf, "BPFCORED_OBJECT_ID", "%llu", (unsigned long long) id);
        log_event(&lf, LOG_WARNING, MESSAGE_ID_RECOVERY, "Removed half-created object %llu: %s.",
                  (unsigned long long) id, why);
}

/*
 * Filter records against the recovered objects: a listed filter keeps its record; an unlisted one is
 * what a crash inside an Attach, Detach, Load or Unload left, and is removed from the kernel.
 */
static void sweep_filter_records(const char *state_dir, Registry *reg) {
        char path[4096];
        DIR *d;
        struct dirent *de;

        /* Ids continue after those still attached. */
        for (size_t i = 0; i < reg->n_objects; i++)
                for (size_t k = 0; k < reg->objects[i]->n_programs; k++)
                        for (size_t l = 0; l < reg->objects[i]->programs[k].n_links; l++) {
                                uint32_t id = reg->objects[i]->programs[k].links[l].id;

                                if (link_id_is_filter(id) && id >= reg->next_filter_id && id < UINT32_MAX)
                                        reg->next_filter_id = id + 1;
                        }

        snprintf(path, sizeof(path), "%s/" FILTERS_SUBDIR, state_dir);
        d = opendir(path);
        while (d && (de = readdir(d))) {
                json_object *j = NULL;
                TcFilter t = {};
                uint64_t id;
                int64_t prog_id = 0, object_id = 0;
                int r;

                if (de->d_name[0] == '.' && strstr(de->d_name, ".json.tmp")) {
                        (void) unlinkat(dirfd(d), de->d_name, 0);
                        continue;
                }
                if (!parse_id(de->d_name, ".json", &id) || id < CLSACT_ID_MIN || id > UINT32_MAX)
                        continue;
                if (registry_find_link(reg, (uint32_t) id, NULL))
                        continue;
                snprintf(path, sizeof(path), "%s/" FILTERS_SUBDIR "/%s", state_dir, de->d_name);
                j = json_object_from_file(path);
                r = j && tc_filter_from_json(json_object_object_get(j, "clsact"), &t) >= 0 ? 0 : -EBADMSG;
                if (r >= 0) {
                        prog_id = get_int(j, "program_id");
                        object_id = get_int(j, "object");
                        r = clsact_detach(&t, (uint32_t) prog_id);
                }
                json_object_put(j);
                if (r < 0 && r != -EBADMSG) {
                        log_warning_errno(r, "Cannot remove the tc filter of %s, kept for the next start: %m", path);
                        continue;
                }
                if (r == -EBADMSG)
                        log_warning("Removed %s: not a record of a tc filter.", path);
                (void) unlinkat(dirfd(d), de->d_name, 0);
                if (r > 0) {
                        LogFields lf = {};

                        log_field(&lf, "BPFCORED_OBJECT_ID", "%lld", (long long) object_id);
                        log_field(&lf, "BPFCORED_LINK_ID", "%llu", (unsigned long long) id);
                        log_event(&lf, LOG_WARNING, MESSAGE_ID_RECOVERY,
                                  "Removed tc filter %llu (%s %s, clsact) of object %lld that no state file lists.",
                                  (unsigned long long) id, t.interface, t.egress ? "egress" : "ingress",
                                  (long long) object_id);
                }
        }
        if (d)
                closedir(d);
        snprintf(path, sizeof(path), "%s/" FILTERS_SUBDIR, state_dir);
        (void) rmdir(path); /* when nothing is left in it */
}

int state_recover(const char *state_dir, Registry *reg) {
        DIR *d;
        struct dirent *de;
        int recovered = 0;

        /* State files first: whole objects come back, the rest is removed. */
        d = opendir(state_dir);
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *text = NULL;
                char path[4096];
                Object *o = NULL;
                json_object *j;
                uint64_t id;
                bool dropped = false;
                int r;

                if (de->d_name[0] == '.' && strstr(de->d_name, ".json.tmp")) {
                        (void) unlinkat(dirfd(d), de->d_name, 0); /* a write cut short */
                        continue;
                }
                if (!parse_id(de->d_name, ".json", &id))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", state_dir, de->d_name);
                j = json_object_from_file(path);
                r = j ? object_from_state(j, reg->root, &o, &dropped) : -EBADMSG;
                json_object_put(j);
                if (r >= 0 && o->id != id)
                        r = -EBADMSG;
                if (r < 0) {
                        Object tmp = { .id = id };

                        if (asprintf(&tmp.pin_dir, "%s/%llu", reg->root, (unsigned long long) id) >= 0)
                                registry_unpin(&tmp);
                        free(tmp.pin_dir);
                        (void) unlink(path);
                        object_free(o);
                        log_removed(id, r == -ENOENT ? "its pins are incomplete" : "its state file is unreadable");
                        continue;
                }
                drop_unlisted_links(o);
                if (dropped) {
                        Failure f = {};

                        /* The file says what is attached: a dropped filter must not come back next time. */
                        if (state_write(state_dir, o, NULL, &f) < 0)
                                log_warning("Object %llu: cannot rewrite its state file.", (unsigned long long) id);
                        failure_done(&f);
                }
                if (registry_add(reg, o) < 0) {
                        object_free(o);
                        continue;
                }
                if (id >= reg->next_id)
                        reg->next_id = id + 1;
                recovered++;
        }
        if (d)
                closedir(d);

        /* Pin directories no state file speaks for: a load that never finished. */
        d = opendir(reg->root);
        while (d && (de = readdir(d))) {
                uint64_t id;

                if (!parse_id(de->d_name, "", &id) || registry_get(reg, id))
                        continue;
                Object tmp = { .id = id };
                if (asprintf(&tmp.pin_dir, "%s/%llu", reg->root, (unsigned long long) id) < 0)
                        continue;
                registry_unpin(&tmp);
                free(tmp.pin_dir);
                log_removed(id, "it has pins but no state file");
        }
        if (d)
                closedir(d);
        sweep_filter_records(state_dir, reg);
        return recovered;
}
