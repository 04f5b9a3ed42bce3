/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

static void rule_done(PolicyRule *r) {
        free(r->name);
        free(r->uids);
        free(r->gids);
        for (size_t i = 0; i < r->n_cgroups; i++)
                free(r->cgroups[i]);
        free(r->cgroups);
        for (size_t i = 0; i < r->n_program_types; i++)
                free(r->program_types[i]);
        free(r->program_types);
        for (size_t i = 0; i < r->n_attach_types; i++)
                free(r->attach_types[i]);
        free(r->attach_types);
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        free(p->admin_group);
        free(p);
        return NULL;
}

_printf_(4, 5) static int fail(char **ret_error, const char *path, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (asprintf(ret_error, "%s:%u: %s", path, line, s ?: "invalid") < 0)
                *ret_error = NULL;
        return -EINVAL;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strcspn(s, "#");
        *e = 0;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                *--e = 0;
        return s;
}

static int add_word(char ***list, size_t *n, const char *w) {
        char **a = reallocarray(*list, *n + 1, sizeof(char *));

        if (!a)
                return -ENOMEM;
        *list = a;
        a[*n] = strdup(w);
        if (!a[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

static int parse_id(const char *w, bool group, uint32_t *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(w, &end, 10);
        if (!*end && !errno && v < UINT32_MAX) {
                *ret = (uint32_t) v;
                return 0;
        }
        if (group) {
                struct group *g = getgrnam(w);
                if (!g)
                        return -ENOENT;
                *ret = g->gr_gid;
        } else {
                struct passwd *pw = getpwnam(w);
                if (!pw)
                        return -ENOENT;
                *ret = pw->pw_uid;
        }
        return 0;
}

static int parse_size(const char *w, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(w, &end, 10);
        if (errno || end == w)
                return -EINVAL;
        switch (*end) {
        case 'K': v <<= 10; end++; break;
        case 'M': v <<= 20; end++; break;
        case 'G': v <<= 30; end++; break;
        default: break;
        }
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_bool(const char *w, bool *ret) {
        if (strcmp(w, "yes") == 0 || strcmp(w, "true") == 0)
                *ret = true;
        else if (strcmp(w, "no") == 0 || strcmp(w, "false") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int rule_set(PolicyRule *r, const char *key, char *value, const char *path, unsigned line, char **ret_error) {
        char *save = NULL;

        if (strcmp(key, "match-uid") == 0 || strcmp(key, "match-gid") == 0) {
                bool group = key[6] == 'g';

                for (char *w = strtok_r(value, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                        uint32_t id;
                        uint32_t **list = group ? (uint32_t **) &r->gids : (uint32_t **) &r->uids;
                        size_t *n = group ? &r->n_gids : &r->n_uids;
                        uint32_t *a;

                        if (parse_id(w, group, &id) < 0)
                                return fail(ret_error, path, line, "no such %s '%s'", group ? "group" : "user", w);
                        a = reallocarray(*list, *n + 1, sizeof(uint32_t));
                        if (!a)
                                return -ENOMEM;
                        *list = a;
                        a[(*n)++] = id;
                }
                return 0;
        }
        if (strcmp(key, "match-cgroup") == 0 || strcmp(key, "program-types") == 0 || strcmp(key, "attach-types") == 0) {
                char ***list = key[0] == 'm' ? &r->cgroups : key[0] == 'p' ? &r->program_types : &r->attach_types;
                size_t *n = key[0] == 'm' ? &r->n_cgroups : key[0] == 'p' ? &r->n_program_types : &r->n_attach_types;

                for (char *w = strtok_r(value, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                        if (key[0] == 'm' && w[0] != '/')
                                return fail(ret_error, path, line, "a cgroup is a path starting with /");
                        if (add_word(list, n, w) < 0)
                                return -ENOMEM;
                }
                return 0;
        }
        if (strncmp(key, "max-", 4) == 0) {
                uint64_t *v = strcmp(key, "max-objects") == 0    ? &r->max_objects
                              : strcmp(key, "max-programs") == 0 ? &r->max_programs
                              : strcmp(key, "max-map-bytes") == 0 ? &r->max_map_bytes
                                                                  : NULL;
                if (!v)
                        return fail(ret_error, path, line, "unknown key '%s'", key);
                if (parse_size(value, v) < 0)
                        return fail(ret_error, path, line, "%s takes a number (K, M, G suffixes)", key);
                return 0;
        }
        if (strcmp(key, "allow-globals") == 0 || strcmp(key, "allow-maps") == 0) {
                if (parse_bool(value, key[6] == 'g' ? &r->allow_globals : &r->allow_maps) < 0)
                        return fail(ret_error, path, line, "%s is yes or no", key);
                return 0;
        }
        return fail(ret_error, path, line, "unknown key '%s'", key);
}

int policy_load(const char *path, Policy **ret, char **ret_error) {
        _cleanup_free_ char *line = NULL;
        Policy *p;
        PolicyRule *rule = NULL;
        bool in_daemon = false;
        unsigned n = 0;
        size_t len = 0;
        FILE *f;
        int r = 0;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->admin_group = strdup("bpfcore-admin");
        if (!p->admin_group) {
                policy_free(p);
                return -ENOMEM;
        }
        f = fopen(path, "re");
        if (!f && errno != ENOENT) {
                r = -errno;
                policy_free(p);
                return r;
        }
        while (f && getline(&line, &len, f) > 0 && r >= 0) {
                char *l = strip(line), *eq;

                n++;
                if (!*l)
                        continue;
                if (*l == '[') {
                        char *end = strchr(l, ']');

                        if (!end || end[1]) {
                                r = fail(ret_error, path, n, "a section header is [daemon] or [rule NAME]");
                                break;
                        }
                        *end = 0;
                        in_daemon = strcmp(l + 1, "daemon") == 0;
                        rule = NULL;
                        if (in_daemon)
                                continue;
                        if (strncmp(l + 1, "rule ", 5) != 0 || !*strip(l + 6)) {
                                r = fail(ret_error, path, n, "unknown section [%s]", l + 1);
                                break;
                        }
                        PolicyRule *a = reallocarray(p->rules, p->n_rules + 1, sizeof(PolicyRule));
                        if (!a) {
                                r = -ENOMEM;
                                break;
                        }
                        p->rules = a;
                        rule = &p->rules[p->n_rules++];
                        *rule = (PolicyRule) { .max_objects = POLICY_UNLIMITED, .max_programs = POLICY_UNLIMITED,
                                               .max_map_bytes = POLICY_UNLIMITED, .allow_globals = true,
                                               .allow_maps = true, .name = strdup(strip(l + 6)) };
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        r = fail(ret_error, path, n, "expected KEY = VALUE");
                        break;
                }
                *eq = 0;
                char *key = strip(l), *value = strip(eq + 1);
                if (in_daemon) {
                        if (strcmp(key, "admin-group") != 0) {
                                r = fail(ret_error, path, n, "unknown key '%s' in [daemon]", key);
                                break;
                        }
                        free(p->admin_group);
                        p->admin_group = strdup(value);
                        if (!p->admin_group)
                                r = -ENOMEM;
                } else if (rule)
                        r = rule_set(rule, key, value, path, n, ret_error);
                else
                        r = fail(ret_error, path, n, "'%s' outside a section", key);
        }
        if (f)
                fclose(f);
        for (size_t i = 0; r >= 0 && i < p->n_rules; i++)
                if (p->rules[i].n_uids + p->rules[i].n_gids + p->rules[i].n_cgroups == 0)
                        r = fail(ret_error, path, n, "rule '%s' matches nobody: give match-uid, match-gid or match-cgroup",
                                 p->rules[i].name ?: "");
        if (r >= 0) {
                uint32_t gid;

                /* A name or a number; the group may not exist yet (sysusers): then only root is admin. */
                p->have_admin_group = parse_id(p->admin_group, true, &gid) >= 0;
                p->admin_gid = p->have_admin_group ? gid : 0;
        }
        if (r < 0) {
                policy_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

/* Supplementary groups of the caller, from /proc/<pid>/status. */
static bool in_group(pid_t pid, gid_t primary, gid_t gid) {
        _cleanup_free_ char *line = NULL;
        char path[64];
        size_t len = 0;
        bool found = primary == gid;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        f = found ? NULL : fopen(path, "re");
        while (f && getline(&line, &len, f) > 0)
                if (strncmp(line, "Groups:", 7) == 0) {
                        char *save = NULL;
                        for (char *w = strtok_r(line + 7, " \t\n", &save); w && !found; w = strtok_r(NULL, " \t\n", &save))
                                found = (gid_t) strtoul(w, NULL, 10) == gid;
                        break;
                }
        if (f)
                fclose(f);
        return found;
}

bool policy_is_admin(const Policy *p, const Peer *peer) {
        if (peer->cred.uid == 0)
                return true;
        return p->have_admin_group && in_group(peer->cred.pid, peer->cred.gid, p->admin_gid);
}

const PolicyRule *policy_rule(const Policy *p, const Peer *peer) {
        for (size_t i = 0; i < p->n_rules; i++) {
                const PolicyRule *r = &p->rules[i];

                for (size_t k = 0; k < r->n_uids; k++)
                        if (r->uids[k] == peer->cred.uid)
                                return r;
                for (size_t k = 0; k < r->n_gids; k++)
                        if (in_group(peer->cred.pid, peer->cred.gid, r->gids[k]))
                                return r;
                for (size_t k = 0; k < r->n_cgroups && peer->cgroup; k++) {
                        size_t len = strlen(r->cgroups[k]);
                        if (strncmp(peer->cgroup, r->cgroups[k], len) == 0 &&
                            (peer->cgroup[len] == 0 || peer->cgroup[len] == '/' || r->cgroups[k][len - 1] == '/'))
                                return r;
                }
        }
        return NULL;
}

bool policy_allows(char *const *list, size_t n, const char *what) {
        if (!list)
                return true;
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], what) == 0)
                        return true;
        return false;
}
