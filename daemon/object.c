/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/printbuf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "object.h"

void owner_done(Owner *o) {
        free(o->cgroup);
        o->cgroup = NULL;
}

Object *object_free(Object *o) {
        if (!o)
                return NULL;
        bpf_object__close(o->bpf);
        for (size_t i = 0; i < o->n_programs; i++) {
                for (size_t k = 0; k < o->programs[i].n_links; k++)
                        link_info_done(&o->programs[i].links[k]);
                free(o->programs[i].links);
                free(o->programs[i].name);
                free(o->programs[i].section);
                free(o->programs[i].type);
        }
        for (size_t i = 0; i < o->n_maps; i++) {
                free(o->maps[i].name);
                free(o->maps[i].type);
        }
        free(o->programs);
        free(o->maps);
        json_object_put(o->relocations);
        free(o->source);
        free(o->source_digest);
        owner_done(&o->owner);
        free(o->pin_dir);
        free(o->name);
        free(o);
        return NULL;
}

static void add_str(json_object *j, const char *key, const char *v) {
        json_object_object_add(j, key, json_object_new_string(v ?: ""));
}

static void add_int(json_object *j, const char *key, int64_t v) {
        json_object_object_add(j, key, json_object_new_int64(v));
}

json_object *object_to_json(const Object *o) {
        json_object *j, *owner, *progs, *maps, *timings;
        char when[64];
        struct tm tm;
        time_t t = (time_t) (o->loaded_at_usec / 1000000);

        j = json_object_new_object();
        if (!j)
                return NULL;
        add_int(j, "id", (int64_t) o->id);
        add_str(j, "name", o->name);
        add_str(j, "digest", o->digest);

        owner = json_object_new_object();
        add_int(owner, "uid", o->owner.uid);
        add_int(owner, "gid", o->owner.gid);
        add_int(owner, "pid", o->owner.pid);
        add_str(owner, "cgroup", o->owner.cgroup);
        json_object_object_add(j, "owner", owner);

        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        add_str(j, "loaded_at", when);

        progs = json_object_new_array();
        for (size_t i = 0; i < o->n_programs; i++) {
                const ProgramInfo *p = &o->programs[i];
                json_object *e = json_object_new_object();

                add_str(e, "name", p->name);
                add_str(e, "section", p->section);
                add_str(e, "type", p->type);
                add_int(e, "id", p->id);
                add_str(e, "tag", p->tag);
                add_int(e, "xlated_bytes", p->xlated_bytes);
                add_int(e, "jited_bytes", p->jited_bytes);
                add_int(e, "verified_insns", p->verified_insns);
                json_object *links = json_object_new_array();
                for (size_t k = 0; k < p->n_links; k++) {
                        json_object *l = json_object_new_object();

                        add_int(l, "id", p->links[k].id);
                        add_str(l, "type", p->links[k].type);
                        add_str(l, "target", p->links[k].target);
                        if (p->links[k].is_filter)
                                json_object_object_add(l, "clsact", tc_filter_to_json(&p->links[k].filter));
                        json_object_array_add(links, l);
                }
                json_object_object_add(e, "links", links);
                json_object_array_add(progs, e);
        }
        json_object_object_add(j, "programs", progs);

        maps = json_object_new_array();
        for (size_t i = 0; i < o->n_maps; i++) {
                const MapInfo *m = &o->maps[i];
                json_object *e = json_object_new_object();

                add_str(e, "name", m->name);
                add_str(e, "type", m->type);
                add_int(e, "id", m->id);
                add_int(e, "key_size", m->key_size);
                add_int(e, "value_size", m->value_size);
                add_int(e, "max_entries", m->max_entries);
                json_object_array_add(maps, e);
        }
        json_object_object_add(j, "maps", maps);

        json_object_object_add(j, "relocations",
                               o->relocations ? json_object_get(o->relocations) : json_object_new_array());

        timings = json_object_new_object();
        add_int(timings, "receive", (int64_t) o->timings.receive);
        add_int(timings, "plan", (int64_t) o->timings.plan);
        add_int(timings, "open", (int64_t) o->timings.open);
        add_int(timings, "load", (int64_t) o->timings.load);
        add_int(timings, "pin", (int64_t) o->timings.pin);
        add_int(timings, "attach", (int64_t) o->timings.attach);
        add_int(timings, "total", (int64_t) o->timings.total);
        json_object_object_add(j, "timings_us", timings);
        add_str(j, "pin_path", o->pin_dir);
        if (o->source) {
                add_str(j, "source", o->source);
                add_str(j, "source_digest", o->source_digest);
        }
        return j;
}

void link_info_done(LinkInfo *l) {
        free(l->type);
        free(l->target);
        *l = (LinkInfo) {};
}

ProgramInfo *object_find_program(Object *o, const char *name) {
        for (size_t i = 0; i < o->n_programs; i++)
                if (strcmp(o->programs[i].name, name) == 0)
                        return &o->programs[i];
        return NULL;
}

int program_add_link(ProgramInfo *p, LinkInfo *link) {
        LinkInfo *a = reallocarray(p->links, p->n_links + 1, sizeof(LinkInfo));

        if (!a)
                return -ENOMEM;
        p->links = a;
        p->links[p->n_links++] = *link;
        *link = (LinkInfo) {};
        return 0;
}

bool object_remove_link(Object *o, uint32_t id) {
        for (size_t i = 0; i < o->n_programs; i++) {
                ProgramInfo *p = &o->programs[i];

                for (size_t k = 0; k < p->n_links; k++) {
                        if (p->links[k].id != id)
                                continue;
                        link_info_done(&p->links[k]);
                        memmove(p->links + k, p->links + k + 1, (p->n_links - k - 1) * sizeof(LinkInfo));
                        p->n_links--;
                        return true;
                }
        }
        return false;
}

typedef struct FrozenText {
        size_t len;
        char text[];
} FrozenText;

static int frozen_serialize(json_object *jso, struct printbuf *pb, int level, int flags) {
        const FrozenText *t = json_object_get_userdata(jso);

        return printbuf_memappend(pb, t->text, (int) t->len);
}

static void frozen_free(json_object *jso, void *userdata) {
        free(userdata);
}

json_object *json_frozen_text(json_type type, const char *text, size_t len) {
        FrozenText *t = len < INT_MAX ? malloc(sizeof(FrozenText) + len + 1) : NULL;
        json_object *frozen = NULL;

        if (t)
                frozen = type == json_type_array ? json_object_new_array() : json_object_new_object();
        if (!frozen) {
                free(t);
                return NULL;
        }
        t->len = len;
        memcpy(t->text, text, len);
        t->text[len] = 0;
        json_object_set_serializer(frozen, frozen_serialize, t, frozen_free);
        return frozen;
}

json_object *json_freeze(json_object *tree) {
        json_object *frozen;
        const char *text;
        size_t len = 0;

        text = tree ? json_object_to_json_string_length(tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                        &len)
                    : NULL;
        frozen = text ? json_frozen_text(json_object_get_type(tree), text, len) : NULL;
        if (!frozen)
                return tree; /* the plain tree serializes the same, only slower */
        json_object_put(tree);
        return frozen;
}
