/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "attach-target.h"
#include "loader.h"
#include "log.h"
#include "methods.h"
#include "objects-d.h"
#include "protocol.h"
#include "state.h"

#define CONF_MAX (64u * 1024)

_printf_(3, 4) static int fail_line(char **ret_error, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (asprintf(ret_error, "line %u: %s", line, s ?: "invalid") < 0)
                *ret_error = NULL;
        return -EINVAL;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/* The value forms of bpfcorectl's --global. */
static json_object *global_value(const char *v) {
        char *end;

        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
                return json_object_new_boolean(v[0] == 't');
        if (strncmp(v, "hex:", 4) == 0) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "hex", json_object_new_string(v + 4));
                return o;
        }
        if (strncmp(v, "str:", 4) == 0)
                return json_object_new_string(v + 4);
        if (*v) {
                errno = 0;
                long long n = strtoll(v, &end, 0);
                if (!*end && !errno)
                        return json_object_new_int64(n);
                unsigned long long u = strtoull(v, &end, 0);
                if (!*end && !errno && *v != '-')
                        return json_object_new_uint64(u);
        }
        return json_object_new_string(v);
}

static json_object *child(json_object *parent, const char *key) {
        json_object *c;

        if (!json_object_object_get_ex(parent, key, &c)) {
                c = json_object_new_object();
                json_object_object_add(parent, key, c);
        }
        return c;
}

/* attach.PROGRAM = TYPE TARGET...: the words of `bpfcorectl attach ID PROGRAM TYPE TARGET...`. */
static int parse_attachment(const char *program, char *value, unsigned line, json_object *attachments,
                            char **ret_error) {
        _cleanup_free_ char *error = NULL;
        char *words[8], *save = NULL;
        const char *type = NULL;
        json_object *target = NULL, *a;
        int n = 0, r;

        for (char *w = strtok_r(value, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == (int) ELEMENTSOF(words))
                        return fail_line(ret_error, line, "attach.%s: too many words", program);
                words[n++] = w;
        }
        if (n == 0)
                return fail_line(ret_error, line, "attach.%s takes TYPE TARGET...", program);
        for (size_t i = 0; i < json_object_array_length(attachments); i++)
                if (strcmp(json_object_get_string(json_object_object_get(json_object_array_get_idx(attachments, i),
                                                                         "program")),
                           program) == 0)
                        return fail_line(ret_error, line, "attach.%s is given twice", program);
        /* No cwd: the daemon's is not the admin's, so paths must be absolute. */
        r = attach_target_parse(words[0], words + 1, n - 1, 0, NULL, &type, &target, &error);
        if (r == -EINVAL)
                return fail_line(ret_error, line, "attach.%s: %s", program, error ?: "invalid target");
        if (r < 0)
                return r;
        a = json_object_new_object();
        json_object_object_add(a, "program", json_object_new_string(program));
        json_object_object_add(a, type, target);
        json_object_array_add(attachments, a);
        return 0;
}

int objects_d_parse(const char *text, json_object **ret_params, json_object **ret_attachments, char **ret_file,
                    char **ret_error) {
        _cleanup_free_ char *copy = strdup(text), *file = NULL;
        json_object *params = json_object_new_object(), *attachments = json_object_new_array();
        unsigned line = 0;
        char *save = NULL;
        int r = 0;

        if (!copy || !params || !attachments) {
                json_object_put(params);
                json_object_put(attachments);
                return -ENOMEM;
        }
        for (char *l = strtok_r(copy, "\n", &save); l && r >= 0; l = strtok_r(NULL, "\n", &save)) {
                char *eq, *key, *value;

                line++;
                l = strip(l);
                if (!*l || *l == '#')
                        continue;
                eq = strchr(l, '=');
                if (!eq) {
                        r = fail_line(ret_error, line, "expected KEY = VALUE");
                        break;
                }
                *eq = 0;
                key = strip(l);
                value = strip(eq + 1);
                if (strcmp(key, "file") == 0) {
                        if (value[0] != '/')
                                r = fail_line(ret_error, line, "file must be an absolute path");
                        else if (!(file = strdup(value)))
                                r = -ENOMEM;
                } else if (strcmp(key, "programs") == 0) {
                        json_object *a = json_object_new_array();
                        char *save2 = NULL;

                        for (char *w = strtok_r(value, " \t,", &save2); w; w = strtok_r(NULL, " \t,", &save2))
                                json_object_array_add(a, json_object_new_string(w));
                        json_object_object_add(params, "programs", a);
                } else if (strncmp(key, "global.", 7) == 0 && key[7]) {
                        json_object_object_add(child(params, "globals"), key + 7, global_value(value));
                } else if (strncmp(key, "map.", 4) == 0) {
                        char *dot = strrchr(key + 4, '.');
                        char *end;
                        unsigned long n;

                        if (!dot || dot == key + 4 ||
                            (strcmp(dot + 1, "max_entries") != 0 && strcmp(dot + 1, "value_size") != 0)) {
                                r = fail_line(ret_error, line, "map settings are map.NAME.max_entries or map.NAME.value_size");
                                break;
                        }
                        errno = 0;
                        n = strtoul(value, &end, 0);
                        if (!*value || *end || errno || n > UINT32_MAX) {
                                r = fail_line(ret_error, line, "%s takes a number", key);
                                break;
                        }
                        *dot = 0;
                        json_object_object_add(child(child(params, "maps"), key + 4), dot + 1, json_object_new_int64((int64_t) n));
                } else if (strncmp(key, "attach.", 7) == 0 && key[7]) {
                        r = parse_attachment(key + 7, value, line, attachments, ret_error);
                } else if (strcmp(key, "attach") == 0) {
                        if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
                                r = fail_line(ret_error, line, "attach is yes or no");
                        else
                                json_object_object_add(params, "attach", json_object_new_boolean(value[0] == 'y'));
                } else
                        r = fail_line(ret_error, line, "unknown key '%s'", key);
        }
        if (r >= 0 && !file)
                r = fail_line(ret_error, line, "no 'file = /path/to/object.bpf.o'");
        if (r < 0) {
                json_object_put(params);
                json_object_put(attachments);
                return r;
        }
        *ret_params = params;
        *ret_attachments = attachments;
        *ret_file = TAKE_PTR(file);
        return 0;
}

static void report(const char *path, const char *what) {
        LogFields lf = {};

        log_field(&lf, "BPFCORED_OBJECTS_D_FILE", "%s", path);
        log_event(&lf, LOG_ERR, MESSAGE_ID_LOAD_FAILED, "objects.d entry %s skipped: %s", path, what);
}

static int unload_object(Manager *m, uint64_t id) {
        int r = state_remove(m->state_dir, id);

        if (r < 0)
                return r;
        m->counters.unloads++;
        if (registry_get(m->registry, id))
                state_detach_filters(m->state_dir, registry_get(m->registry, id));
        return registry_unload(m->registry, id);
}

/* The object that came from path, if any. */
static Object *from_source(Manager *m, const char *path) {
        for (size_t i = 0; i < m->registry->n_objects; i++)
                if (m->registry->objects[i]->source && strcmp(m->registry->objects[i]->source, path) == 0)
                        return m->registry->objects[i];
        return NULL;
}

static void sync_one(Manager *m, const char *dir, const char *entry) {
        _cleanup_free_ char *text = NULL, *name = NULL, *file = NULL, *error = NULL, *key = NULL, *data = NULL;
        char path[4096], digest[7 + 64 + 1], object_digest[7 + 64 + 1] = "";
        size_t size = 0;
        json_object *params = NULL, *attachments = NULL;
        Failure f = {};
        Object *old;
        FILE *fp;
        size_t n;
        int r;

        snprintf(path, sizeof(path), "%s/%s", dir, entry);
        fp = fopen(path, "re");
        text = calloc(1, CONF_MAX + 1);
        n = fp && text ? fread(text, 1, CONF_MAX + 1, fp) : 0;
        if (fp)
                fclose(fp);
        if (!text || n == 0 || n > CONF_MAX) {
                report(path, n > CONF_MAX ? "larger than 64 KiB" : "cannot be read");
                return;
        }
        name = strndup(entry, strlen(entry) - 5); /* without ".conf" */
        r = objects_d_parse(text, &params, &attachments, &file, &error);
        if (r < 0) {
                report(path, error ?: "cannot be parsed");
                return;
        }
        /* What identifies this entry: its text and the object file's bytes (read once: they are what loads). */
        {
                FILE *of = fopen(file, "re");
                struct stat st;

                /* Sized by the file, capped like any object. */
                if (of && fstat(fileno(of), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size <= VL_MAX_OBJECT) {
                        data = malloc((size_t) st.st_size + 1);
                        size = data ? fread(data, 1, (size_t) st.st_size, of) : 0;
                }
                if (of)
                        fclose(of);
                if (data && size > 0)
                        (void) loader_digest(data, size, object_digest);
        }
        /* All of the text: a change on any line, or in the object file, reloads the entry. */
        if (asprintf(&key, "%s%s", text, object_digest) < 0)
                key = NULL;
        if (!key || loader_digest(key, strlen(key), digest) < 0) {
                json_object_put(params);
                json_object_put(attachments);
                report(path, "cannot be hashed");
                return;
        }

        old = from_source(m, path);
        if (old && old->source_digest && strcmp(old->source_digest, digest) == 0) {
                json_object_put(params);
                json_object_put(attachments);
                return; /* unchanged: loaded once */
        }
        if (old) {
                log_info("objects.d entry %s changed: reloading object %llu.", path, (unsigned long long) old->id);
                (void) unload_object(m, old->id);
        }
        if (!data || size == 0) {
                char why[4200];

                snprintf(why, sizeof(why), "its object file %s cannot be read (or is empty, or over %u bytes)", file,
                         VL_MAX_OBJECT);
                json_object_put(params);
                json_object_put(attachments);
                report(path, why);
                return;
        }
        r = methods_load_file(m, name, TAKE_PTR(data), size, object_digest, params, attachments, path, digest, &f);
        json_object_put(params);
        json_object_put(attachments);
        if (r < 0) {
                json_object *msg = NULL;
                _cleanup_free_ char *why = NULL;

                if (f.parameters)
                        json_object_object_get_ex(f.parameters, "message", &msg);
                if (asprintf(&why, "%s%s%s", f.error ?: strerror(-r), msg ? ": " : "", msg ? json_object_get_string(msg) : "") < 0)
                        why = NULL;
                report(path, why ?: "load failed");
                failure_done(&f);
                return;
        }
        log_info("objects.d entry %s loaded.", path);
}

void objects_d_sync(Manager *m) {
        DIR *d = opendir(m->objects_dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name);

                if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
                        continue;
                sync_one(m, m->objects_dir, de->d_name);
        }
        if (d)
                closedir(d);

        /* Entries whose file is gone take their objects with them. */
        for (size_t i = 0; i < m->registry->n_objects;) {
                Object *o = m->registry->objects[i];

                if (o->source && strncmp(o->source, m->objects_dir, strlen(m->objects_dir)) == 0 &&
                    access(o->source, F_OK) < 0) {
                        log_info("objects.d entry %s removed: unloading object %llu.", o->source,
                                 (unsigned long long) o->id);
                        if (unload_object(m, o->id) >= 0)
                                continue;
                }
                i++;
        }
}
