/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/printbuf.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clsact.h"
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

#define FROZEN_MAGIC 0x66726f7aU

typedef struct FrozenText {
        uint32_t magic;
        size_t len;
        char *text;   /* text_inline, or a string of its own */
        char text_inline[];
} FrozenText;

static int frozen_serialize(json_object *jso, struct printbuf *pb, int level, int flags) {
        const FrozenText *t = json_object_get_userdata(jso);

        return printbuf_memappend(pb, t->text, (int) t->len);
}

static void frozen_free(json_object *jso, void *userdata) {
        FrozenText *t = userdata;

        if (t->text != t->text_inline)
                free(t->text);
        free(t);
}

static json_object *frozen_new(json_type type, FrozenText *t) {
        json_object *frozen = type == json_type_array ? json_object_new_array() : json_object_new_object();

        if (frozen)
                json_object_set_serializer(frozen, frozen_serialize, t, frozen_free);
        return frozen;
}

json_object *json_frozen_text(json_type type, const char *text, size_t len) {
        FrozenText *t = len < INT_MAX ? malloc(sizeof(FrozenText) + len + 1) : NULL;
        json_object *frozen;

        if (!t)
                return NULL;
        *t = (FrozenText) { .magic = FROZEN_MAGIC, .len = len, .text = t->text_inline };
        memcpy(t->text_inline, text, len);
        t->text_inline[len] = 0;
        frozen = frozen_new(type, t);
        if (!frozen)
                free(t);
        return frozen;
}

json_object *json_frozen_take(json_type type, char *text, size_t len) {
        FrozenText *t = len < INT_MAX ? malloc(sizeof(FrozenText)) : NULL;
        json_object *frozen;

        if (!t) {
                free(text);
                return NULL;
        }
        *t = (FrozenText) { .magic = FROZEN_MAGIC, .len = len, .text = text };
        frozen = frozen_new(type, t);
        if (!frozen)
                frozen_free(NULL, t);
        return frozen;
}

json_object *object_to_frozen(const Object *o, size_t *ret_len) {
        size_t len = 0;
        char *text = object_render(o, &len);
        json_object *j = text ? json_frozen_take(json_type_object, text, len) : NULL;

        if (!j) { /* out of memory: the tree serializes the same */
                j = object_to_json(o);
                len = 0;
        }
        if (ret_len)
                *ret_len = len;
        return j;
}

/* The text of a frozen value, without a copy; NULL for any other value. */
static const char *frozen_peek(json_object *j, size_t *ret_len) {
        const FrozenText *t = j ? json_object_get_userdata(j) : NULL;

        if (!t || t->magic != FROZEN_MAGIC)
                return NULL;
        *ret_len = t->len;
        return t->text;
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

/* Text being rendered: a string that grows; failed once out of memory. */
typedef struct Text {
        char *s;
        size_t len, cap;
        bool failed;
} Text;

static void text_add(Text *t, const char *s, size_t n) {
        if (t->failed || n == 0)
                return;
        if (t->len + n + 1 > t->cap) {
                size_t cap = MAX(t->cap * 2, t->len + n + 1);
                char *p = cap < INT_MAX ? realloc(t->s, MAX(cap, (size_t) 1024)) : NULL;

                if (!p) {
                        t->failed = true;
                        return;
                }
                t->s = p;
                t->cap = MAX(cap, (size_t) 1024);
        }
        memcpy(t->s + t->len, s, n);
        t->len += n;
        t->s[t->len] = 0;
}

#define text_lit(t, s) text_add(t, s, sizeof(s) - 1)

/* A JSON string escaped as json-c escapes it without slash escapes (NULL as ""). */
static void text_str(Text *t, const char *s) {
        size_t start = 0, i;

        if (!s)
                s = "";
        text_lit(t, "\"");
        for (i = 0; s[i]; i++) {
                unsigned char c = (unsigned char) s[i];
                char esc[8];

                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                text_add(t, s + start, i - start);
                start = i + 1;
                switch (c) {
                case '\b': text_lit(t, "\\b"); break;
                case '\n': text_lit(t, "\\n"); break;
                case '\r': text_lit(t, "\\r"); break;
                case '\t': text_lit(t, "\\t"); break;
                case '\f': text_lit(t, "\\f"); break;
                case '"': text_lit(t, "\\\""); break;
                case '\\': text_lit(t, "\\\\"); break;
                default:
                        snprintf(esc, sizeof(esc), "\\u%04x", c);
                        text_add(t, esc, 6);
                }
        }
        text_add(t, s + start, i - start);
        text_lit(t, "\"");
}

static void text_int(Text *t, int64_t v) {
        char buf[24], *p = buf + sizeof(buf);
        uint64_t u = v < 0 ? -(uint64_t) v : (uint64_t) v;

        do
                *--p = (char) ('0' + u % 10);
        while (u /= 10);
        if (v < 0)
                *--p = '-';
        text_add(t, p, (size_t) (buf + sizeof(buf) - p));
}

/* ,"key": (first: no comma) then the value */
static void text_key(Text *t, const char *key, bool first) {
        if (!first)
                text_lit(t, ",");
        text_str(t, key);
        text_lit(t, ":");
}

static void text_key_str(Text *t, const char *key, const char *v, bool first) {
        text_key(t, key, first);
        text_str(t, v);
}

static void text_key_int(Text *t, const char *key, int64_t v, bool first) {
        text_key(t, key, first);
        text_int(t, v);
}

/* Any JSON value, as json-c renders it with the daemon's flags (frozen ones as they are). */
static void text_json(Text *t, json_object *j) {
        const char *s;
        size_t len = 0;

        s = frozen_peek(j, &len) ?: json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN |
                                                                                  JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                t->failed = true;
        else
                text_add(t, s, len);
}

char *object_render(const Object *o, size_t *ret_len) {
        Text t = {};
        char when[64];
        struct tm tm;
        time_t now = (time_t) (o->loaded_at_usec / 1000000);
        size_t relocations_len = 0;

        /* Room for the usual object in one allocation: a program's entry is ~250 bytes, a map's ~100. */
        if (!frozen_peek(o->relocations, &relocations_len))
                relocations_len = 0;
        t.cap = 1024 + relocations_len + o->n_programs * 320 + o->n_maps * 128;
        t.s = malloc(t.cap);
        if (!t.s)
                return NULL;

        text_lit(&t, "{");
        text_key_int(&t, "id", (int64_t) o->id, true);
        text_key_str(&t, "name", o->name, false);
        text_key_str(&t, "digest", o->digest, false);
        text_key(&t, "owner", false);
        text_lit(&t, "{");
        text_key_int(&t, "uid", o->owner.uid, true);
        text_key_int(&t, "gid", o->owner.gid, false);
        text_key_int(&t, "pid", o->owner.pid, false);
        text_key_str(&t, "cgroup", o->owner.cgroup, false);
        text_lit(&t, "}");
        gmtime_r(&now, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        text_key_str(&t, "loaded_at", when, false);

        text_key(&t, "programs", false);
        text_lit(&t, "[");
        for (size_t i = 0; i < o->n_programs; i++) {
                const ProgramInfo *p = &o->programs[i];

                text_add(&t, ",", i == 0 ? 0 : 1);
                text_lit(&t, "{");
                text_key_str(&t, "name", p->name, true);
                text_key_str(&t, "section", p->section, false);
                text_key_str(&t, "type", p->type, false);
                text_key_int(&t, "id", p->id, false);
                text_key_str(&t, "tag", p->tag, false);
                text_key_int(&t, "xlated_bytes", p->xlated_bytes, false);
                text_key_int(&t, "jited_bytes", p->jited_bytes, false);
                text_key_int(&t, "verified_insns", p->verified_insns, false);
                text_key(&t, "links", false);
                text_lit(&t, "[");
                for (size_t k = 0; k < p->n_links; k++) {
                        const LinkInfo *l = &p->links[k];

                        text_add(&t, ",", k == 0 ? 0 : 1);
                        text_lit(&t, "{");
                        text_key_int(&t, "id", l->id, true);
                        text_key_str(&t, "type", l->type, false);
                        text_key_str(&t, "target", l->target, false);
                        if (l->is_filter) {
                                json_object *filter = tc_filter_to_json(&l->filter);

                                text_key(&t, "clsact", false);
                                text_json(&t, filter);
                                json_object_put(filter);
                        }
                        text_lit(&t, "}");
                }
                text_lit(&t, "]}");
        }
        text_lit(&t, "]");

        text_key(&t, "maps", false);
        text_lit(&t, "[");
        for (size_t i = 0; i < o->n_maps; i++) {
                const MapInfo *m = &o->maps[i];

                text_add(&t, ",", i == 0 ? 0 : 1);
                text_lit(&t, "{");
                text_key_str(&t, "name", m->name, true);
                text_key_str(&t, "type", m->type, false);
                text_key_int(&t, "id", m->id, false);
                text_key_int(&t, "key_size", m->key_size, false);
                text_key_int(&t, "value_size", m->value_size, false);
                text_key_int(&t, "max_entries", m->max_entries, false);
                text_lit(&t, "}");
        }
        text_lit(&t, "]");

        text_key(&t, "relocations", false);
        if (o->relocations)
                text_json(&t, o->relocations);
        else
                text_lit(&t, "[]");

        text_key(&t, "timings_us", false);
        text_lit(&t, "{");
        text_key_int(&t, "receive", (int64_t) o->timings.receive, true);
        text_key_int(&t, "plan", (int64_t) o->timings.plan, false);
        text_key_int(&t, "open", (int64_t) o->timings.open, false);
        text_key_int(&t, "load", (int64_t) o->timings.load, false);
        text_key_int(&t, "pin", (int64_t) o->timings.pin, false);
        text_key_int(&t, "attach", (int64_t) o->timings.attach, false);
        text_key_int(&t, "total", (int64_t) o->timings.total, false);
        text_lit(&t, "}");
        text_key_str(&t, "pin_path", o->pin_dir, false);
        if (o->source) {
                text_key_str(&t, "source", o->source, false);
                text_key_str(&t, "source_digest", o->source_digest, false);
        }
        text_lit(&t, "}");
        if (t.failed) {
                free(t.s);
                return NULL;
        }
        *ret_len = t.len;
        return t.s;
}
