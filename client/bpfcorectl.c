/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bpfcorectl: the admin CLI of bpfcored. Each command is one varlink call;
 * people get tables, --json gets exactly the reply's parameters.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach-target.h"
#include "bpfcore-client.h"
#include "macro.h"
#include "protocol.h"

#define streq(a, b) (strcmp((a), (b)) == 0)

/* Usage errors are -EINVAL inside and exit 2, as with other getopt tools. */
#define EXIT_USAGE 2

struct cmd {
        const char *name;
        int (*func)(int argc, char **argv);
};

typedef struct Table {
        size_t n_columns;
        char **cells; /* row-major, the header row first */
        size_t n_cells;
        size_t n_allocated;
        int error; /* first failure of table_add(), returned by table_print() */
} Table;

static const char *arg_socket;
static bool arg_json;
static bool json_lines; /* monitor --json: one compact object a line, errors too */

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static const char *strdash(const char *s) {
        return s && *s ? s : "-";
}

/* "5.6 MiB": sizes for people; --json keeps the exact bytes. */
static const char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char units[] = "KMGTPE";
        double v = (double) bytes;
        size_t i = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return buf;
        }
        for (v /= 1024; v >= 1024 && i + 1 < sizeof(units) - 1; i++)
                v /= 1024;
        snprintf(buf, size, "%.1f %ciB", v, units[i]);
        return buf;
}

static int help(void) {
        printf("bpfcorectl [OPTIONS...] COMMAND ...\n"
               "\n"
               "Load and manage BPF programs through bpfcored.\n"
               "\n"
               "Commands:\n"
               "  load FILE [--name N] [--program P]... [--global VAR=VALUE]...\n"
               "       [--map NAME.max_entries=N]... [--map NAME.value_size=N]...\n"
               "       [--attach] [--btf FILE] [--target NAME]\n"
               "                      Load a BPF object (clang -target bpf -g); --btf adds\n"
               "                      a BTF file to the CO-RE target, --target relocates\n"
               "                      against a registered external BTF instead\n"
               "  check FILE [--btf NAME] [--btf-file FILE] [--program P]...\n"
               "       [--global VAR=VALUE]... [--map NAME.SETTING=N]...\n"
               "                      Plan an object's CO-RE relocations against the\n"
               "                      kernel's BTF (or registered BTF NAME) and load\n"
               "                      nothing; exit 1 when one of them fails\n"
               "  list                List loaded objects\n"
               "  show ID             Show an object: programs, links, maps, relocations\n"
               "  unload ID           Unload an object\n"
               "  attach ID PROGRAM TYPE TARGET... [--pid N]\n"
               "                      Attach a program of object ID; TYPE TARGET is one of\n"
               "                        tracepoint CAT/NAME     raw_tp NAME\n"
               "                        kprobe|kretprobe FUNC [OFFSET]\n"
               "                        kprobe|kretprobe GLOB|F,G,... (one multi-kprobe link)\n"
               "                        uprobe|uretprobe PATH SYMBOL|OFFSET [--pid N]\n"
               "                        xdp IFACE [skb|drv|hw]\n"
               "                        tc IFACE ingress|egress [tcx|clsact [prio=N]]\n"
               "                        cgroup PATH ATTACH_TYPE (e.g. cgroup_skb/egress)\n"
               "                        perf_event EVENT cpu=N|pid=N [freq=HZ|period=N]\n"
               "                        tp_btf|fentry|fexit|fmod_ret|lsm (no TARGET: fixed\n"
               "                        at load)\n"
               "  detach LINK         Detach a link\n"
               "  btf list            List the daemon's BTF cache: vmlinux, modules,\n"
               "                      registered external BTF\n"
               "  btf show TYPE [--kind KIND] [--btf NAME]\n"
               "                      Show a type from the BTF cache as C\n"
               "  map dump MAPID [--limit N]\n"
               "                      Show a map's entries, typed by its BTF\n"
               "  map lookup MAPID KEY\n"
               "                      Show the value at KEY; exit 1 when there is none\n"
               "  map update MAPID KEY VALUE [--flags any|noexist|exist]\n"
               "                      Set the value at KEY\n"
               "  map delete MAPID KEY\n"
               "                      Delete the entry at KEY; exit 1 when there is none\n"
               "  map fd MAPID        Receive the map's fd from the daemon (for its owner)\n"
               "  monitor             Print the daemon's events as they happen, until Ctrl-C\n"
               "  status              Show the daemon's status\n"
               "  help                Show this help\n"
               "\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --socket PATH    Daemon socket (now: %s)\n"
               "  -j --json           Print the reply's parameters as JSON\n"
               "\n"
               "A --global VALUE is an integer (decimal, 0x-hex, negative), true or false,\n"
               "hex:BYTES (raw bytes), str:TEXT (a string, whatever it looks like), or\n"
               "else a string. --btf-file FILE and --target NAME work for both load and\n"
               "check. An attach OFFSET is decimal or 0x-hex; a uprobe target that is\n"
               "not a number is a symbol. A map KEY or VALUE is JSON typed by the map's\n"
               "BTF (7, '\"bash\"', '{\"pid\":1}', '{\"hex\":\"0a00\"}'), or else a string;\n"
               "a negative number goes after \"--\" (map lookup 5 -- -1). MAPID is the\n"
               "kernel's map id (see show ID). Commands may be abbreviated to a unique prefix.\n",
               arg_socket ?: bpfcore_default_socket());
        return 0;
}

static void print_json(json_object *o) {
        puts(json_object_to_json_string_ext(o, (json_lines ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY) |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* In --json mode stdout stays valid JSON when a command fails, too. */
static void print_json_error(const char *name, json_object *parameters) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return;
        json_object_object_add(o, "error", json_object_new_string(name));
        json_object_object_add(o, "parameters", json_object_get(parameters));
        print_json(o);
}

/* A failure of bpfcorectl itself, named in JSON by its errno ("ENOENT"). */
static int log_errorv(int r, const char *fmt, va_list ap) {
        _cleanup_(json_object_putp) json_object *parameters = NULL;
        _cleanup_free_ char *message = NULL;

        errno = -r; /* for %m */
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        fprintf(stderr, "bpfcorectl: %s\n", message ?: "out of memory");

        if (arg_json) {
                parameters = json_object_new_object();
                if (parameters && message)
                        json_object_object_add(parameters, "message", json_object_new_string(message));
                print_json_error(strerrorname_np(-r) ?: "EIO", parameters);
        }
        return r;
}

_printf_(2, 3) static int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = log_errorv(r, fmt, ap);
        va_end(ap);
        return r;
}

static int log_oom(void) {
        return log_error_errno(-ENOMEM, "out of memory");
}

_printf_(1, 2) static int usage_error(const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_errorv(-EINVAL, fmt, ap);
        va_end(ap);
        fputs("Usage: bpfcorectl [--socket PATH] [--json] COMMAND ...\n"
              "Try 'bpfcorectl --help' for more information.\n",
              stderr);
        return r;
}

/* Called for what getopt_long() returned '?' or ':' for ("+:…" keeps it quiet). */
static int option_error(int c, char **argv) {
        const char *arg = argv[optind - 1];

        if (c == ':')
                return usage_error("option '%s' requires an argument", arg);
        /* optopt names a bad short option; a long one (or "--attach=x") is the argument itself. */
        if (optopt > 0 && optopt < 0x80 && !startswith(arg, "--"))
                return usage_error("invalid option '-%c'", optopt);
        return usage_error("invalid option '%s'", arg);
}

/* Adds value (owned; NULL after a failed allocation) to o under key. */
static int json_add(json_object *o, const char *key, json_object *value) {
        if (!value || json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

/* parent[key], created empty on first use: repeated options fill one container. */
static int json_child(json_object *parent, const char *key, json_type type, json_object **ret) {
        json_object *v;
        int r;

        if (!json_object_object_get_ex(parent, key, &v)) {
                v = type == json_type_array ? json_object_new_array() : json_object_new_object();
                r = json_add(parent, key, v);
                if (r < 0)
                        return r;
        }
        *ret = v;
        return 0;
}

/* Replies are read leniently: a missing or mistyped key reads as empty or 0. */
static json_object *json_get(json_object *o, const char *key, json_type type) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
                return NULL;
        return v;
}

static const char *json_get_str(json_object *o, const char *key) {
        json_object *v = json_get(o, key, json_type_string);

        return v ? json_object_get_string(v) : "";
}

static int64_t json_get_int(json_object *o, const char *key) {
        json_object *v = json_get(o, key, json_type_int);

        return v ? json_object_get_int64(v) : 0;
}

static size_t json_array_length(json_object *a) {
        return a ? json_object_array_length(a) : 0;
}

/* A scalar as a person reads it: strings without quotes. */
static const char *json_text(json_object *v) {
        if (json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

static void table_freep(Table **t) {
        table_free(*t);
}

_printf_(2, 3) static void table_add(Table *t, const char *fmt, ...) {
        va_list ap;
        char *cell;
        int r;

        if (t->error < 0)
                return;
        if (t->n_cells == t->n_allocated) {
                size_t n = MAX(t->n_allocated * 2, (size_t) 16);
                char **cells = reallocarray(t->cells, n, sizeof(char *));

                if (!cells) {
                        t->error = -ENOMEM;
                        return;
                }
                t->cells = cells;
                t->n_allocated = n;
        }
        va_start(ap, fmt);
        r = vasprintf(&cell, fmt, ap);
        va_end(ap);
        if (r < 0) {
                t->error = -ENOMEM;
                return;
        }
        t->cells[t->n_cells++] = cell;
}

/* The column names follow ret, NULL-terminated. */
__attribute__((sentinel)) static int table_new(Table **ret, ...) {
        _cleanup_(table_freep) Table *t = NULL;
        const char *name;
        va_list ap;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        va_start(ap, ret);
        while ((name = va_arg(ap, const char *))) {
                table_add(t, "%s", name);
                t->n_columns++;
        }
        va_end(ap);
        if (t->error < 0)
                return t->error;
        *ret = TAKE_PTR(t);
        return 0;
}

static bool table_is_empty(const Table *t) {
        return t->n_cells <= t->n_columns;
}

/* Columns as wide as their widest cell; the last one unpadded. */
static int table_print(const Table *t) {
        _cleanup_free_ size_t *width = NULL;

        if (t->error < 0)
                return t->error;
        width = calloc(t->n_columns, sizeof(*width));
        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t column = i % t->n_columns;

                if (column == t->n_columns - 1)
                        printf("%s\n", t->cells[i]);
                else
                        printf("%-*s  ", (int) width[column], t->cells[i]);
        }
        return 0;
}

/* A table after a blank line, or nothing when it has no rows. */
static int table_print_section(const Table *t) {
        if (t->error < 0)
                return t->error;
        if (table_is_empty(t))
                return 0;
        putchar('\n');
        return table_print(t);
}

/* Cells of o's fields in order: a number as it is, text or "-" when empty or missing. */
static void table_add_fields(Table *t, json_object *o, const char *const keys[]) {
        for (size_t i = 0; keys[i]; i++) {
                json_object *v = json_get(o, keys[i], json_type_int);

                if (v)
                        table_add(t, "%" PRId64, json_object_get_int64(v));
                else
                        table_add(t, "%s", strdash(json_get_str(o, keys[i])));
        }
}

static int print_programs(json_object *programs) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, "PROG_ID", "NAME", "TYPE", "SECTION", "TAG", "XLATED", "JITED", "INSNS", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_length(programs); i++)
                table_add_fields(t, json_object_array_get_idx(programs, i),
                                 (const char *const[]) { "id", "name", "type", "section", "tag", "xlated_bytes",
                                                         "jited_bytes", "verified_insns", NULL });
        return table_print_section(t);
}

/* Links hang off their programs; shown only once something is attached. */
static int print_links(json_object *programs) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, "LINK_ID", "PROGRAM", "TYPE", "TARGET", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_length(programs); i++) {
                json_object *p = json_object_array_get_idx(programs, i);
                json_object *links = json_get(p, "links", json_type_array);

                for (size_t j = 0; j < json_array_length(links); j++) {
                        json_object *l = json_object_array_get_idx(links, j);

                        table_add_fields(t, l, (const char *const[]) { "id", NULL });
                        table_add_fields(t, p, (const char *const[]) { "name", NULL });
                        table_add_fields(t, l, (const char *const[]) { "type", "target", NULL });
                }
        }
        return table_print_section(t);
}

static int print_maps(json_object *maps) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, "MAP_ID", "NAME", "TYPE", "KEY", "VALUE", "MAX_ENTRIES", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_length(maps); i++)
                table_add_fields(t, json_object_array_get_idx(maps, i),
                                 (const char *const[]) { "id", "name", "type", "key_size", "value_size", "max_entries",
                                                         NULL });
        return table_print_section(t);
}

/* Relocations as planned: a failed one says why, a poisoned one fails only if the verifier reaches it. */
static int print_relocations(json_object *relocations) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, "PROGRAM", "INSN", "KIND", "TYPE", "ACCESS", "LOCAL", "TARGET", "BTF", "STATUS", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_length(relocations); i++) {
                json_object *rel = json_object_array_get_idx(relocations, i);
                json_object *ok = json_get(rel, "ok", json_type_boolean);
                json_object *poisoned = json_get(rel, "poisoned", json_type_boolean);
                const char *error = json_get_str(rel, "error");

                table_add_fields(t, rel, (const char *const[]) { "program", "insn", "kind", "type", "access", "local",
                                                                 "target", "btf", NULL });
                if (ok && json_object_get_boolean(ok))
                        table_add(t, "ok");
                else
                        table_add(t, "%s%s%s",
                                  poisoned && json_object_get_boolean(poisoned) ? "poisoned" : "failed",
                                  *error ? ": " : "", error);
        }
        return table_print_section(t);
}

/* The daemon may time more steps than today's: print whichever it sends. */
static void print_timings(json_object *timings) {
        const char *sep = "\ntimings:";

        if (!timings || json_object_object_length(timings) == 0)
                return;
        json_object_object_foreach(timings, key, val) {
                printf("%s %s %s µs", sep, key, json_text(val));
                sep = ",";
        }
        putchar('\n');
}

static int print_object(json_object *o) {
        json_object *owner = json_get(o, "owner", json_type_object);
        json_object *programs = json_get(o, "programs", json_type_array);
        int r;

        printf("object %" PRId64 " \"%s\" %s owner uid %" PRId64 " pid %" PRId64 " loaded %s\n",
               json_get_int(o, "id"),
               json_get_str(o, "name"),
               strdash(json_get_str(o, "digest")),
               json_get_int(owner, "uid"),
               json_get_int(owner, "pid"),
               strdash(json_get_str(o, "loaded_at")));

        r = print_programs(programs);
        if (r < 0)
                return r;
        r = print_links(programs);
        if (r < 0)
                return r;
        r = print_maps(json_get(o, "maps", json_type_array));
        if (r < 0)
                return r;
        r = print_relocations(json_get(o, "relocations", json_type_array));
        if (r < 0)
                return r;
        print_timings(json_get(o, "timings_us", json_type_object));
        return 0;
}

static size_t json_max_key_length(json_object *o) {
        size_t width = 0;

        json_object_object_foreach(o, key, val)
                width = MAX(width, strlen(key));
        return width;
}

/* "key: value" with values aligned; nested objects (counters, limits) indented below their key. */
static void print_fields(json_object *o, int indent) {
        size_t width = json_max_key_length(o);

        json_object_object_foreach(o, key, val) {
                if (json_object_is_type(val, json_type_object)) {
                        printf("%*s%s:\n", indent, "", key);
                        print_fields(val, indent + 2);
                } else
                        printf("%*s%s:%*s %s\n", indent, "", key, (int) (width - strlen(key)), "",
                               json_text(val));
        }
}

static const char *socket_path(void) {
        return arg_socket ?: bpfcore_default_socket();
}

static int connect_daemon(BpfcoreClient **ret) {
        const char *path = socket_path();
        int r;

        r = bpfcore_connect(path, ret);
        if (r < 0)
                return log_error_errno(r, "cannot connect to %s: %m", path);
        return 0;
}

/* An error reply is told on stderr (and stdout with --json) and freed: -EREMOTEIO. 0 otherwise. */
static int reply_check(BpfcoreReply *reply) {
        _cleanup_free_ char *description = NULL;

        if (!reply->error)
                return 0;
        description = bpfcore_error_describe(reply);
        fprintf(stderr, "bpfcorectl: %s\n", description ?: reply->error);
        if (arg_json)
                print_json_error(reply->error, reply->parameters);
        bpfcore_reply_done(reply);
        return -EREMOTEIO;
}

static json_object *params_or_empty(json_object *params, json_object **empty) {
        /* varlink allows leaving parameters out, but every server takes {}. */
        return params ?: (*empty = json_object_new_object());
}

/*
 * One call on a fresh connection. Failures are reported here: a connection
 * that fails, or an error reply (-EREMOTEIO: the daemon said no).
 */
static int call(const char *method, json_object *params, const int *fds, size_t n_fds, BpfcoreReply *ret) {
        _cleanup_(bpfcore_disconnectp) BpfcoreClient *c = NULL;
        _cleanup_(json_object_putp) json_object *empty = NULL;
        int r;

        r = connect_daemon(&c);
        if (r < 0)
                return r;
        params = params_or_empty(params, &empty);
        if (!params)
                return log_oom();
        r = bpfcore_call(c, method, params, fds, n_fds, ret);
        if (r < 0)
                return log_error_errno(r, "%s on %s failed: %m", method, socket_path());
        return reply_check(ret);
}

/* A call with "more" on a fresh connection: the first reply; read on with next_reply(). */
static int call_more(const char *method, json_object *params, BpfcoreClient **ret_client, BpfcoreReply *ret) {
        _cleanup_(bpfcore_disconnectp) BpfcoreClient *c = NULL;
        _cleanup_(json_object_putp) json_object *empty = NULL;
        int r;

        r = connect_daemon(&c);
        if (r < 0)
                return r;
        params = params_or_empty(params, &empty);
        if (!params)
                return log_oom();
        r = bpfcore_call_more(c, method, params, ret);
        if (r < 0)
                return log_error_errno(r, "%s on %s failed: %m", method, socket_path());
        r = reply_check(ret);
        if (r < 0)
                return r;
        *ret_client = TAKE_PTR(c);
        return 0;
}

static int next_reply(BpfcoreClient *c, const char *method, BpfcoreReply *ret) {
        int r;

        r = bpfcore_next_reply(c, ret);
        if (r == -ECONNRESET)
                return log_error_errno(r, "%s on %s: the daemon closed the connection", method, socket_path());
        if (r < 0)
                return log_error_errno(r, "%s on %s failed: %m", method, socket_path());
        return reply_check(ret);
}

/* For commands without options: checks that n positional arguments follow, at argv[optind]. */
static int parse_no_options(int argc, char **argv, int n) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        optind = 0; /* a full restart of getopt after the global options */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if (c == 'h')
                        return help();
                return option_error(c, argv);
        }
        if (argc - optind < n)
                return usage_error("%s: missing argument", argv[0]);
        if (argc - optind > n)
                return usage_error("%s: unexpected argument '%s'", argv[0], argv[optind + n]);
        return 1;
}

/* "true"/"false", "hex:…", "str:…", an integer, else a string: see help(). */
static int parse_global_value(const char *name, const char *s, json_object **ret) {
        bool negative = s[0] == '-';
        json_object *v = NULL;
        const char *p;
        uint64_t u;
        int r;

        if (streq(s, "true") || streq(s, "false"))
                v = json_object_new_boolean(s[0] == 't');
        else if ((p = startswith(s, "hex:"))) {
                if (strspn(p, "0123456789abcdefABCDEF") != strlen(p) || strlen(p) % 2 != 0)
                        return usage_error("--global %s: 'hex:' takes pairs of hex digits, got '%s'",
                                           name, p);
                v = json_object_new_object();
                if (v && json_add(v, "hex", json_object_new_string(p)) < 0) {
                        json_object_put(v);
                        v = NULL;
                }
        } else if ((p = startswith(s, "str:")))
                v = json_object_new_string(p);
        else if ((r = parse_u64(s + negative, &u)) == -ERANGE ||
                 (r == 0 && negative && u > (uint64_t) INT64_MAX + 1))
                return usage_error("--global %s: %s is out of range", name, s);
        else if (r < 0)
                v = json_object_new_string(s);
        else if (negative)
                v = json_object_new_int64(u == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) u);
        else if (u > INT64_MAX)
                v = json_object_new_uint64(u);
        else
                v = json_object_new_int64((int64_t) u);

        if (!v)
                return log_oom();
        *ret = v;
        return 0;
}

static int parse_global(json_object *params, const char *arg) {
        _cleanup_free_ char *name = NULL;
        json_object *globals, *value = NULL;
        const char *eq = strchr(arg, '=');
        int r;

        if (!eq || eq == arg)
                return usage_error("--global takes VAR=VALUE, got '%s'", arg);
        name = strndup(arg, eq - arg);
        if (!name)
                return log_oom();
        r = parse_global_value(name, eq + 1, &value);
        if (r < 0)
                return r;
        if (json_child(params, "globals", json_type_object, &globals) < 0 ||
            json_add(globals, name, value) < 0)
                return log_oom();
        return 0;
}

static int parse_map_setting(json_object *params, const char *arg) {
        _cleanup_free_ char *name = NULL;
        json_object *maps, *map;
        const char *eq = strchr(arg, '=');
        char *setting;
        uint64_t v;

        if (!eq)
                return usage_error("--map takes NAME.max_entries=N or NAME.value_size=N, got '%s'", arg);
        name = strndup(arg, eq - arg);
        if (!name)
                return log_oom();
        /* Map names may hold dots themselves (".data.counters"): the setting is after the last. */
        setting = strrchr(name, '.');
        if (!setting || setting == name)
                return usage_error("--map takes NAME.max_entries=N or NAME.value_size=N, got '%s'", arg);
        *setting++ = '\0';
        if (!streq(setting, "max_entries") && !streq(setting, "value_size"))
                return usage_error("--map %s: unknown setting '%s' (max_entries or value_size)", name,
                                   setting);
        if (parse_u64(eq + 1, &v) < 0 || v > UINT32_MAX)
                return usage_error("--map %s.%s: invalid size '%s'", name, setting, eq + 1);

        if (json_child(params, "maps", json_type_object, &maps) < 0 ||
            json_child(maps, name, json_type_object, &map) < 0 ||
            json_add(map, setting, json_object_new_int64((int64_t) v)) < 0)
                return log_oom();
        return 0;
}

/*
 * load and check: the same arguments, into the same parameters. --btf is a
 * BTF file for load and a registered BTF's name for check; --btf-file FILE
 * and --target NAME say the same for both. 1 when a call is to be made.
 */
static int parse_object_argv(int argc, char **argv, bool check, json_object **ret_params,
                             const char **ret_path, const char **ret_btf_path) {
        enum { ARG_NAME = 0x100, ARG_PROGRAM, ARG_GLOBAL, ARG_MAP, ARG_ATTACH, ARG_BTF, ARG_BTF_FILE, ARG_TARGET };
        static const struct option options[] = {
                { "help",     no_argument,       NULL, 'h'          },
                { "name",     required_argument, NULL, ARG_NAME     },
                { "program",  required_argument, NULL, ARG_PROGRAM  },
                { "global",   required_argument, NULL, ARG_GLOBAL   },
                { "map",      required_argument, NULL, ARG_MAP      },
                { "attach",   no_argument,       NULL, ARG_ATTACH   },
                { "btf",      required_argument, NULL, ARG_BTF      },
                { "btf-file", required_argument, NULL, ARG_BTF_FILE },
                { "target",   required_argument, NULL, ARG_TARGET   },
                {}
        };
        _cleanup_(json_object_putp) json_object *params = NULL;
        const char *verb = check ? "check" : "load", *btf_path = NULL;
        json_object *programs;
        int c, r;

        params = json_object_new_object();
        if (!params || json_add(params, "fd", json_object_new_int(0)) < 0)
                return log_oom();

        optind = 0; /* a full restart of getopt, now permuting: FILE may come first */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help();
                case ARG_NAME:
                        if (json_add(params, "name", json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                case ARG_PROGRAM:
                        if (json_child(params, "programs", json_type_array, &programs) < 0 ||
                            json_object_array_add(programs, json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                case ARG_GLOBAL:
                        r = parse_global(params, optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_MAP:
                        r = parse_map_setting(params, optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_ATTACH:
                        if (json_add(params, "attach", json_object_new_boolean(true)) < 0)
                                return log_oom();
                        break;
                case ARG_BTF:
                case ARG_BTF_FILE:
                case ARG_TARGET:
                        if (c == ARG_BTF_FILE || (c == ARG_BTF && !check))
                                btf_path = optarg;
                        else if (!*optarg)
                                return usage_error("%s: BTF name must not be empty", verb);
                        else if (json_add(params, "btf", json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        if (optind >= argc)
                return usage_error("%s: missing FILE", verb);
        if (optind + 1 < argc)
                return usage_error("%s: unexpected argument '%s'", verb, argv[optind + 1]);

        *ret_params = TAKE_PTR(params);
        *ret_path = argv[optind];
        *ret_btf_path = btf_path;
        return 1;
}

/* The daemon never opens a path for a client: the object travels as fd 0, extra BTF as fd 1. */
static int call_with_object(const char *method, json_object *params, const char *path, const char *btf_path,
                            BpfcoreReply *ret) {
        _cleanup_close_ int fd = -1, btf_fd = -1;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot open %s: %m", path);
        if (btf_path) {
                btf_fd = open(btf_path, O_RDONLY | O_CLOEXEC);
                if (btf_fd < 0)
                        return log_error_errno(negative_errno(), "cannot open %s: %m", btf_path);
                if (json_add(params, "btf_fd", json_object_new_int(1)) < 0)
                        return log_oom();
        }

        const int fds[] = { fd, btf_fd };
        return call(method, params, fds, btf_fd >= 0 ? 2 : 1, ret);
}

static int do_load(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL;
        const char *path = NULL, *btf_path = NULL;
        int r;

        r = parse_object_argv(argc, argv, false, &params, &path, &btf_path);
        if (r <= 0)
                return r;
        r = call_with_object(VL_METHOD("Load"), params, path, btf_path, &reply);
        if (r < 0)
                return r;
        if (arg_json) {
                print_json(reply.parameters);
                return 0;
        }
        r = print_object(json_get(reply.parameters, "object", json_type_object));
        return r < 0 ? log_oom() : 0;
}

/* Exit 1 when a relocation fails: "would this object work on that kernel?" has a shell answer. */
static int do_check(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL;
        const char *path = NULL, *btf_path = NULL, *btf;
        json_object *relocations, *ok;
        size_t n, n_failed = 0;
        bool all_ok;
        int r;

        r = parse_object_argv(argc, argv, true, &params, &path, &btf_path);
        if (r <= 0)
                return r;
        r = call_with_object(VL_METHOD("Check"), params, path, btf_path, &reply);
        if (r < 0)
                return r;

        relocations = json_get(reply.parameters, "relocations", json_type_array);
        n = json_array_length(relocations);
        for (size_t i = 0; i < n; i++) {
                json_object *rel_ok = json_get(json_object_array_get_idx(relocations, i), "ok", json_type_boolean);

                if (!rel_ok || !json_object_get_boolean(rel_ok))
                        n_failed++;
        }
        /* The daemon's verdict counts; a reply without one is judged by its relocations. */
        ok = json_get(reply.parameters, "ok", json_type_boolean);
        all_ok = ok ? json_object_get_boolean(ok) : n_failed == 0;
        btf = strdash(json_get_str(reply.parameters, "btf"));

        if (arg_json) {
                print_json(reply.parameters);
                if (!all_ok)
                        fprintf(stderr, "bpfcorectl: %zu of %zu relocations fail against BTF %s\n", n_failed, n, btf);
        } else {
                if (all_ok)
                        printf("OK: all %zu relocations resolve against BTF %s\n", n, btf);
                else
                        printf("NOT OK: %zu of %zu relocations fail against BTF %s\n", n_failed, n, btf);
                r = print_relocations(relocations);
                if (r < 0)
                        return log_oom();
                if (json_get(reply.parameters, "plan_us", json_type_int))
                        printf("\nplanned in %" PRId64 " µs\n", json_get_int(reply.parameters, "plan_us"));
        }
        return all_ok ? 0 : -ECANCELED; /* exit 1; already said */
}

static int do_list(int argc, char **argv) {
        _cleanup_(bpfcore_disconnectp) BpfcoreClient *c = NULL;
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_(json_object_putp) json_object *objects = NULL;
        int r;

        r = parse_no_options(argc, argv, 0);
        if (r <= 0)
                return r;
        objects = json_object_new_array();
        if (!objects)
                return log_oom();
        /* Many objects with large relocation reports come in batches: one message could not hold them. */
        r = call_more(VL_METHOD("List"), NULL, &c, &reply);
        for (;;) {
                json_object *batch;

                if (r < 0)
                        return r;
                batch = json_get(reply.parameters, "objects", json_type_array);
                for (size_t i = 0; i < json_array_length(batch); i++)
                        if (json_object_array_add(objects, json_object_get(json_object_array_get_idx(batch, i))) < 0)
                                return log_oom();
                if (!reply.continues)
                        break;
                bpfcore_reply_done(&reply);
                r = next_reply(c, VL_METHOD("List"), &reply);
        }
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o || json_add(o, "objects", TAKE_PTR(objects)) < 0)
                        return log_oom();
                print_json(o);
                return 0;
        }

        if (json_array_length(objects) == 0) {
                puts("No objects.");
                return 0;
        }
        r = table_new(&t, "ID", "NAME", "PROGRAMS", "MAPS", "OWNER_UID", "LOADED_AT", NULL);
        if (r < 0)
                return log_oom();
        for (size_t i = 0; i < json_array_length(objects); i++) {
                json_object *o = json_object_array_get_idx(objects, i);

                table_add(t, "%" PRId64, json_get_int(o, "id"));
                table_add(t, "%s", strdash(json_get_str(o, "name")));
                table_add(t, "%zu", json_array_length(json_get(o, "programs", json_type_array)));
                table_add(t, "%zu", json_array_length(json_get(o, "maps", json_type_array)));
                table_add(t, "%" PRId64, json_get_int(json_get(o, "owner", json_type_object), "uid"));
                table_add(t, "%s", strdash(json_get_str(o, "loaded_at")));
        }
        r = table_print(t);
        return r < 0 ? log_oom() : 0;
}

/* An object or link id: what the daemon's int takes. */
static int parse_id(const char *verb, const char *what, const char *s, uint64_t *ret) {
        if (parse_u64(s, ret) < 0 || *ret > INT64_MAX)
                return usage_error("%s: invalid %s id '%s'", verb, what, s);
        return 0;
}

/*
 * show ID, unload ID, detach LINK: one id argument, sent as key, one call;
 * what names the id for errors. 1 when the call succeeded.
 */
static int call_by_id(const char *method, const char *key, const char *what, int argc, char **argv,
                      uint64_t *ret_id, BpfcoreReply *ret) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        uint64_t id = 0;
        int r;

        r = parse_no_options(argc, argv, 1);
        if (r <= 0)
                return r;
        r = parse_id(argv[0], what, argv[optind], &id);
        if (r < 0)
                return r;

        params = json_object_new_object();
        if (!params || json_add(params, key, json_object_new_int64((int64_t) id)) < 0)
                return log_oom();
        r = call(method, params, NULL, 0, ret);
        if (r < 0)
                return r;
        *ret_id = id;
        return 1;
}

static int do_show(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        uint64_t id = 0;
        int r;

        r = call_by_id(VL_METHOD("Get"), "id", "object", argc, argv, &id, &reply);
        if (r <= 0)
                return r;
        if (arg_json) {
                print_json(reply.parameters);
                return 0;
        }
        r = print_object(json_get(reply.parameters, "object", json_type_object));
        return r < 0 ? log_oom() : 0;
}

static int do_unload(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        uint64_t id = 0;
        int r;

        r = call_by_id(VL_METHOD("Unload"), "id", "object", argc, argv, &id, &reply);
        if (r <= 0)
                return r;
        if (arg_json)
                print_json(reply.parameters);
        else
                printf("Unloaded object %" PRIu64 ".\n", id);
        return 0;
}

/* 1 with *ret_params ({id, program, TYPE: target}) and *ret_id when a call is to be made. */
static int parse_attach_argv(int argc, char **argv, json_object **ret_params, uint64_t *ret_id,
                             const char **ret_type) {
        enum { ARG_PID = 0x100 };
        static const struct option options[] = {
                { "help", no_argument,       NULL, 'h'     },
                { "pid",  required_argument, NULL, ARG_PID },
                {}
        };
        _cleanup_(json_object_putp) json_object *params = NULL;
        _cleanup_free_ char *cwd = NULL, *error = NULL;
        json_object *target = NULL;
        const char *type = NULL;
        uint64_t id, pid = 0;
        int c, r;

        optind = 0; /* a full restart of getopt, permuting: --pid may come anywhere */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help();
                case ARG_PID:
                        if (parse_u64(optarg, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                                return usage_error("attach: invalid pid '%s'", optarg);
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        if (argc - optind < 3)
                return usage_error("attach: missing %s (attach ID PROGRAM TYPE TARGET...)",
                                   argc - optind == 0 ? "ID" : argc - optind == 1 ? "PROGRAM" : "TYPE");
        r = parse_id("attach", "object", argv[optind], &id);
        if (r < 0)
                return r;
        if (!*argv[optind + 1])
                return usage_error("attach: PROGRAM must not be empty");
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return log_error_errno(negative_errno(), "cannot get the current directory: %m");
        r = attach_target_parse(argv[optind + 2], argv + optind + 3, argc - optind - 3, (int64_t) pid, cwd, &type,
                                &target, &error);
        if (r == -EINVAL)
                return usage_error("attach: %s", error ?: "invalid target");
        if (r < 0)
                return log_oom();
        params = json_object_new_object();
        if (!params || json_add(params, type, target) < 0 ||
            json_add(params, "id", json_object_new_int64((int64_t) id)) < 0 ||
            json_add(params, "program", json_object_new_string(argv[optind + 1])) < 0)
                return log_oom();

        *ret_params = TAKE_PTR(params);
        *ret_id = id;
        *ret_type = type;
        return 1;
}

static int do_attach(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL;
        const char *t = NULL, *program, *type, *target;
        json_object *link, *object;
        uint64_t id = 0;
        int r;

        r = parse_attach_argv(argc, argv, &params, &id, &t);
        if (r <= 0)
                return r;
        r = call(VL_METHOD("Attach"), params, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (arg_json) {
                print_json(reply.parameters);
                return 0;
        }

        /* What the daemon says it did; what we asked for where it says nothing. */
        link = json_get(reply.parameters, "link", json_type_object);
        object = json_get(link, "object", json_type_int);
        program = json_get_str(link, "program");
        type = json_get_str(link, "type");
        target = json_get_str(link, "target");
        printf("Attached program %s of object %" PRId64 ": link %" PRId64 " (%s%s%s).\n",
               *program ? program : json_object_get_string(json_get(params, "program", json_type_string)),
               object ? json_object_get_int64(object) : (int64_t) id,
               json_get_int(link, "id"),
               *type ? type : t, *target ? " " : "", target);
        return 0;
}

static int do_detach(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        uint64_t id = 0;
        int r;

        r = call_by_id(VL_METHOD("Detach"), "link", "link", argc, argv, &id, &reply);
        if (r <= 0)
                return r;
        if (arg_json)
                print_json(reply.parameters);
        else
                printf("Detached link %" PRIu64 ".\n", id);
        return 0;
}

static int do_status(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        int r;

        r = parse_no_options(argc, argv, 0);
        if (r <= 0)
                return r;
        r = call(VL_METHOD("Status"), NULL, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (arg_json)
                print_json(reply.parameters);
        else
                print_fields(reply.parameters, 0);
        return 0;
}

static int do_btf_list(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(table_freep) Table *t = NULL;
        json_object *list;
        int r;

        r = parse_no_options(argc, argv, 0);
        if (r <= 0)
                return r;
        r = call(VL_METHOD("ListBTF"), NULL, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (arg_json) {
                print_json(reply.parameters);
                return 0;
        }

        list = json_get(reply.parameters, "btf", json_type_array);
        r = table_new(&t, "NAME", "ORIGIN", "ID", "TYPES", "BYTES", "SIZE", "PARSE_US", "BASE", NULL);
        if (r < 0)
                return log_oom();
        for (size_t i = 0; i < json_array_length(list); i++) {
                json_object *b = json_object_array_get_idx(list, i);
                int64_t id = json_get_int(b, "id"), bytes = json_get_int(b, "bytes");
                char size[32];

                table_add(t, "%s", strdash(json_get_str(b, "name")));
                table_add(t, "%s", strdash(json_get_str(b, "origin")));
                /* External BTF has no kernel id. */
                if (id > 0)
                        table_add(t, "%" PRId64, id);
                else
                        table_add(t, "-");
                table_add(t, "%" PRId64, json_get_int(b, "types"));
                table_add(t, "%" PRId64, bytes);
                table_add(t, "%s", format_bytes(size, sizeof(size), (uint64_t) MAX(bytes, (int64_t) 0)));
                table_add(t, "%" PRId64, json_get_int(b, "parse_us"));
                table_add(t, "%s", strdash(json_get_str(b, "base")));
        }
        if (table_is_empty(t))
                puts("No BTF.");
        else {
                r = table_print(t);
                if (r < 0)
                        return log_oom();
        }
        printf("\ngeneration %" PRId64 "\n", json_get_int(reply.parameters, "generation"));
        return 0;
}

static int do_btf_show(int argc, char **argv) {
        enum { ARG_KIND = 0x100, ARG_BTF };
        static const struct option options[] = {
                { "help", no_argument,       NULL, 'h'      },
                { "kind", required_argument, NULL, ARG_KIND },
                { "btf",  required_argument, NULL, ARG_BTF  },
                {}
        };
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL;
        json_object *type;
        const char *c_text;
        int64_t matches;
        int c, r;

        params = json_object_new_object();
        if (!params)
                return log_oom();

        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help();
                case ARG_KIND:
                        if (json_add(params, "kind", json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                case ARG_BTF:
                        if (json_add(params, "btf", json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        if (optind >= argc)
                return usage_error("btf show: missing TYPE");
        if (optind + 1 < argc)
                return usage_error("btf show: unexpected argument '%s'", argv[optind + 1]);
        if (!*argv[optind])
                return usage_error("btf show: TYPE must not be empty");
        if (json_add(params, "name", json_object_new_string(argv[optind])) < 0)
                return log_oom();

        r = call(VL_METHOD("DescribeType"), params, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (arg_json) {
                print_json(reply.parameters);
                return 0;
        }

        type = json_get(reply.parameters, "type", json_type_object);
        c_text = json_get_str(type, "c");
        if (*c_text) {
                fputs(c_text, stdout);
                if (c_text[strlen(c_text) - 1] != '\n')
                        putchar('\n');
        } else /* no C rendering: the JSON is the next best thing */
                print_json(type);

        matches = json_get_int(reply.parameters, "matches");
        printf("(from BTF %s, id %" PRId64, strdash(json_get_str(type, "btf")), json_get_int(type, "id"));
        if (matches > 1)
                printf("; %" PRId64 " other match%s", matches - 1, matches - 1 == 1 ? "" : "es");
        puts(")");
        return 0;
}

/* o[key] whatever its type; NULL (JSON null) when missing. */
static json_object *json_member(json_object *o, const char *key) {
        json_object *v = NULL;

        json_object_object_get_ex(o, key, &v);
        return v;
}

/* Compact JSON, as one would type it back. */
static const char *json_compact(json_object *v) {
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/*
 * A KEY or VALUE argument: JSON text (7, "bash", {"pid":1}, {"hex":"0a00"}),
 * else the text itself as a string, so that plain words need no quotes.
 */
static int parse_json_arg(const char *what, const char *s, json_object **ret) {
        json_tokener *tok;
        json_object *v;
        enum json_tokener_error e;
        size_t skip = strspn(s, " \t\n");

        tok = json_tokener_new();
        if (!tok)
                return log_oom();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        v = json_tokener_parse_ex(tok, s, (int) MIN(strlen(s) + 1, (size_t) INT32_MAX)); /* the NUL ends a number */
        e = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (e == json_tokener_success) {
                *ret = v; /* NULL for null, which the daemon refuses by name */
                return 0;
        }
        /* Broken JSON is a typo, not a string that happens to start with a brace. */
        if (strchr("{[\"", s[skip]) && s[skip])
                return usage_error("%s is not valid JSON (%s): '%s'", what, json_tokener_error_desc(e), s);
        *ret = json_object_new_string(s);
        return *ret ? 0 : log_oom();
}

static int parse_map_id(const char *verb, const char *s, uint64_t *ret) {
        if (parse_u64(s, ret) < 0 || *ret > UINT32_MAX)
                return usage_error("%s: invalid map id '%s'", verb, s);
        return 0;
}

/*
 * map dump|lookup|update|delete: MAPID, then KEY and VALUE as the verb
 * takes them, into {map, key, value, limit, flags}. 1 when a call is to be made.
 */
static int parse_map_argv(int argc, char **argv, json_object **ret_params) {
        enum { ARG_LIMIT = 0x100, ARG_FLAGS };
        static const struct option options[] = {
                { "help",  no_argument,       NULL, 'h'       },
                { "limit", required_argument, NULL, ARG_LIMIT },
                { "flags", required_argument, NULL, ARG_FLAGS },
                {}
        };
        static const char *const arg_names[] = { "MAPID", "KEY", "VALUE" };
        _cleanup_(json_object_putp) json_object *params = NULL;
        _cleanup_free_ char *verb = NULL;
        const char *cmd = argv[0];
        int c, n, r;
        uint64_t v;

        if (asprintf(&verb, "map %s", cmd) < 0)
                return log_oom();
        n = streq(cmd, "dump") ? 1 : streq(cmd, "update") ? 3 : 2;
        params = json_object_new_object();
        if (!params)
                return log_oom();

        optind = 0; /* permuting: options may follow the arguments; a negative KEY goes after "--" */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help();
                case ARG_LIMIT:
                        if (!streq(cmd, "dump"))
                                return usage_error("%s: --limit applies to map dump only", verb);
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > INT64_MAX)
                                return usage_error("%s: invalid limit '%s'", verb, optarg);
                        if (json_add(params, "limit", json_object_new_int64((int64_t) v)) < 0)
                                return log_oom();
                        break;
                case ARG_FLAGS:
                        if (!streq(cmd, "update"))
                                return usage_error("%s: --flags applies to map update only", verb);
                        if (!streq(optarg, "any") && !streq(optarg, "noexist") && !streq(optarg, "exist"))
                                return usage_error("%s: invalid flags '%s' (any, noexist or exist)", verb, optarg);
                        if (json_add(params, "flags", json_object_new_string(optarg)) < 0)
                                return log_oom();
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        if (argc - optind < n)
                return usage_error("%s: missing %s", verb, arg_names[argc - optind]);
        if (argc - optind > n)
                return usage_error("%s: unexpected argument '%s'", verb, argv[optind + n]);

        r = parse_map_id(verb, argv[optind], &v);
        if (r < 0)
                return r;
        if (json_add(params, "map", json_object_new_int64((int64_t) v)) < 0)
                return log_oom();
        for (int i = 1; i < n; i++) {
                json_object *j = NULL;

                r = parse_json_arg(arg_names[i], argv[optind + i], &j);
                if (r < 0)
                        return r;
                /* json-c takes a NULL value as JSON null. */
                if (json_object_object_add(params, i == 1 ? "key" : "value", j) < 0) {
                        json_object_put(j);
                        return log_oom();
                }
        }
        *ret_params = TAKE_PTR(params);
        return 1;
}

typedef enum DumpStyle {
        DUMP_UNDECIDED,
        DUMP_TABLE,  /* KEY VALUE, when both are scalars */
        DUMP_BLOCKS, /* key: {...} / value: {...} per entry */
} DumpStyle;

typedef struct MapDump {
        DumpStyle style;
        size_t key_width; /* grows from batch to batch, never shrinks */
        uint64_t n;       /* entries received */
        json_object *all; /* --json: every entry, for one object at the end */
} MapDump;

/* Fits a table cell: numbers, strings, raw bytes ({"hex": "..."}). */
static bool json_is_scalar(json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_array:
                return false;
        case json_type_object:
                return json_object_object_length(v) == 1 && json_get(v, "hex", json_type_string);
        default:
                return true;
        }
}

/* Strings bare, as people read them; anything else (and "") as JSON. */
static char *cell_text(json_object *v) {
        if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
                return strdup(json_object_get_string(v));
        return strdup(json_compact(v));
}

static void json_pretty_fputs(json_object *v, FILE *f) {
        fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), f);
}

static int map_dump_table(MapDump *d, json_object *entries) {
        size_t n = json_array_length(entries);
        _cleanup_free_ char **cells = NULL;
        int r = 0;

        cells = calloc(2 * n + 1, sizeof(char *));
        if (!cells)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(entries, i);
                json_object *key = json_member(e, "key"), *value = json_member(e, "value");

                cells[2 * i] = cell_text(key);
                cells[2 * i + 1] = cell_text(value);
                if (!cells[2 * i] || !cells[2 * i + 1]) {
                        r = -ENOMEM;
                        break;
                }
                d->key_width = MAX(d->key_width, strlen(cells[2 * i]));
        }
        if (r == 0) {
                if (d->n == 0)
                        printf("%-*s  %s\n", (int) d->key_width, "KEY", "VALUE");
                for (size_t i = 0; i < n; i++)
                        printf("%-*s  %s\n", (int) d->key_width, cells[2 * i], cells[2 * i + 1]);
        }
        for (size_t i = 0; i < 2 * n; i++)
                free(cells[i]);
        return r;
}

static void map_dump_blocks(MapDump *d, json_object *entries) {
        for (size_t i = 0; i < json_array_length(entries); i++) {
                json_object *e = json_object_array_get_idx(entries, i);
                json_object *key = json_member(e, "key"), *value = json_member(e, "value");

                if (d->n + i > 0)
                        putchar('\n');
                printf("key: %s\nvalue: ", json_compact(key));
                json_pretty_fputs(value, stdout);
                putchar('\n');
        }
}

/* One reply's entries: printed at once for people, kept for --json. */
static int map_dump_add(MapDump *d, json_object *entries) {
        size_t n = json_array_length(entries);
        int r;

        if (arg_json) {
                for (size_t i = 0; i < n; i++)
                        if (json_object_array_add(d->all, json_object_get(json_object_array_get_idx(entries, i))) < 0)
                                return -ENOMEM;
                d->n += n;
                return 0;
        }
        if (n == 0)
                return 0;

        /* One map, one type: the first entries decide. A later {"hex"} of an unprintable string still fits a cell. */
        if (d->style == DUMP_UNDECIDED) {
                d->style = DUMP_TABLE;
                d->key_width = strlen("KEY");
                for (size_t i = 0; i < n && d->style == DUMP_TABLE; i++) {
                        json_object *e = json_object_array_get_idx(entries, i);

                        if (!json_is_scalar(json_member(e, "key")) || !json_is_scalar(json_member(e, "value")))
                                d->style = DUMP_BLOCKS;
                }
        }
        if (d->style == DUMP_TABLE) {
                r = map_dump_table(d, entries);
                if (r < 0)
                        return r;
        } else
                map_dump_blocks(d, entries);
        d->n += n;
        fflush(stdout); /* as it comes, also into a pipe */
        return 0;
}

static int do_map_dump(int argc, char **argv) {
        _cleanup_(bpfcore_disconnectp) BpfcoreClient *c = NULL;
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL, *all = NULL;
        json_object *count;
        MapDump d = {};
        int64_t n;
        int r;

        r = parse_map_argv(argc, argv, &params);
        if (r <= 0)
                return r;
        if (arg_json) {
                d.all = all = json_object_new_array();
                if (!all)
                        return log_oom();
        }

        /* Large maps stream: entries come in batches, each printed as it arrives. */
        r = call_more(VL_METHOD("MapDump"), params, &c, &reply);
        for (;;) {
                if (r < 0)
                        return r;
                r = map_dump_add(&d, json_get(reply.parameters, "entries", json_type_array));
                if (r < 0)
                        return log_oom();
                if (!reply.continues)
                        break;
                bpfcore_reply_done(&reply);
                r = next_reply(c, VL_METHOD("MapDump"), &reply);
        }

        /* The last reply counts; one without a count is counted here. */
        count = json_get(reply.parameters, "count", json_type_int);
        n = count ? json_object_get_int64(count) : (int64_t) d.n;
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o || json_add(o, "entries", TAKE_PTR(all)) < 0 ||
                    json_add(o, "count", json_object_new_int64(n)) < 0)
                        return log_oom();
                /* Whatever else the daemon says about the dump, as it said it. */
                json_object_object_foreach(reply.parameters, key, val)
                        if (!streq(key, "entries") && !streq(key, "count") &&
                            json_add(o, key, json_object_get(val)) < 0)
                                return log_oom();
                print_json(o);
                return 0;
        }
        if (d.n > 0)
                putchar('\n');
        printf("%" PRId64 " entr%s\n", n, n == 1 ? "y" : "ies");
        return 0;
}

/* A map verb's arguments, then its call: 1 with reply filled, <= 0 when done (usage error, failed call). */
static int map_call(int argc, char **argv, const char *method, BpfcoreReply *reply) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        int r;

        r = parse_map_argv(argc, argv, &params);
        if (r <= 0)
                return r;
        r = call(method, params, NULL, 0, reply);
        return r < 0 ? r : 1;
}

/* Exit 1 when the key is not there: "is it in the map?" has a shell answer. */
static int do_map_lookup(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        json_object *found;
        int r;

        r = map_call(argc, argv, VL_METHOD("MapLookup"), &reply);
        if (r <= 0)
                return r;
        found = json_get(reply.parameters, "found", json_type_boolean);
        if (arg_json)
                print_json(reply.parameters);
        else if (found && json_object_get_boolean(found)) {
                print_json(json_member(reply.parameters, "value"));
        } else
                puts("not found");
        return found && json_object_get_boolean(found) ? 0 : -ENOENT; /* exit 1; already said */
}

static int do_map_update(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        int r;

        r = map_call(argc, argv, VL_METHOD("MapUpdate"), &reply);
        if (r <= 0)
                return r;
        if (arg_json)
                print_json(reply.parameters);
        else
                puts("updated");
        return 0;
}

static int do_map_delete(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        json_object *found;
        int r;

        r = map_call(argc, argv, VL_METHOD("MapDelete"), &reply);
        if (r <= 0)
                return r;
        found = json_get(reply.parameters, "found", json_type_boolean);
        if (arg_json)
                print_json(reply.parameters);
        else
                puts(found && json_object_get_boolean(found) ? "deleted" : "not found");
        return found && json_object_get_boolean(found) ? 0 : -ENOENT; /* exit 1 */
}

/* enum bpf_map_type, as bpftool names them. */
static const char *const map_type_names[] = {
        "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
        "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
        "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
        "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
        "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf",
        "cgrp_storage",
};

/* What the kernel says the fd is: "type ringbuf, key_size 0, ..." from /proc/self/fdinfo. */
static int describe_map_fd(int fd, char **ret) {
        static const char *const fields[] = { "map_type", "key_size", "value_size", "max_entries" };
        _cleanup_free_ char *line = NULL, *s = NULL;
        char path[64];
        size_t size = 0, len;
        bool is_map = false;
        FILE *f, *out;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        out = open_memstream(&s, &len);
        if (!out) {
                fclose(f);
                return -ENOMEM;
        }
        for (size_t k = 0; k < ELEMENTSOF(fields); k++) {
                rewind(f);
                while (getline(&line, &size, f) > 0) {
                        const char *v = startswith(line, fields[k]);
                        unsigned long n;

                        if (!v || *v != ':')
                                continue;
                        n = strtoul(v + 1, NULL, 10);
                        is_map = true;
                        if (streq(fields[k], "map_type") && n < ELEMENTSOF(map_type_names))
                                fprintf(out, "%stype %s", ftell(out) > 0 ? ", " : "", map_type_names[n]);
                        else
                                fprintf(out, "%s%s %lu", ftell(out) > 0 ? ", " : "", fields[k], n);
                        break;
                }
        }
        fclose(f);
        if (fclose(out) != 0)
                return -ENOMEM;
        if (!is_map)
                return -EBADF;
        *ret = TAKE_PTR(s);
        return 0;
}

/* For scripts and agents: the daemon hands over the map's fd; it closes when we exit. */
static int do_map_fd(int argc, char **argv) {
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        _cleanup_(json_object_putp) json_object *params = NULL;
        _cleanup_free_ char *what = NULL;
        uint64_t id;
        int64_t index;
        int r;

        r = parse_no_options(argc, argv, 1);
        if (r <= 0)
                return r;
        r = parse_map_id("map fd", argv[optind], &id);
        if (r < 0)
                return r;
        params = json_object_new_object();
        if (!params || json_add(params, "map", json_object_new_int64((int64_t) id)) < 0)
                return log_oom();
        r = call(VL_METHOD("MapFd"), params, NULL, 0, &reply);
        if (r < 0)
                return r;

        index = json_get_int(reply.parameters, "fd");
        if (index < 0 || (uint64_t) index >= reply.n_fds)
                return log_error_errno(-EBADMSG, "MapFd: the reply names fd %" PRId64 " but carries %zu",
                                       index, reply.n_fds);
        r = describe_map_fd(reply.fds[index], &what);
        if (r == -EBADF)
                return log_error_errno(r, "MapFd: fd %d received is not a bpf map", reply.fds[index]);
        if (arg_json)
                print_json(reply.parameters);
        else
                printf("bpf map fd %d received (map %" PRIu64 "%s%s)\n", reply.fds[index], id,
                       what ? ": " : "", what ?: "");
        return 0;
}

/* The journal's fields, in this order; any others after them. */
static const char *const event_fields[] = {
        "object_id", "object_name", "program", "link_id", "link_type", "link_target",
        "uid", "pid", "error", "message",
};

static bool is_event_field(const char *key) {
        if (streq(key, "time") || streq(key, "kind"))
                return true;
        for (size_t i = 0; i < ELEMENTSOF(event_fields); i++)
                if (streq(event_fields[i], key))
                        return true;
        return false;
}

/* " key=value"; strings bare unless blanks, quotes or '=' would make the line ambiguous. Empty ones say nothing. */
static void print_event_field(const char *key, json_object *v) {
        const char *s;

        if (!v)
                return;
        if (json_object_is_type(v, json_type_string)) {
                s = json_object_get_string(v);
                if (!*s)
                        return;
                for (const char *p = s; *p; p++)
                        if ((unsigned char) *p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f) {
                                printf(" %s=%s", key, json_compact(v));
                                return;
                        }
                printf(" %s=%s", key, s);
        } else
                printf(" %s=%s", key, json_compact(v));
}

static void print_event(json_object *event) {
        const char *time = json_get_str(event, "time");

        printf("%s %s", strdash(time), strdash(json_get_str(event, "kind")));
        for (size_t i = 0; i < ELEMENTSOF(event_fields); i++) {
                print_event_field(event_fields[i], json_member(event, event_fields[i]));
        }
        json_object_object_foreach(event, key, val)
                if (!is_event_field(key))
                        print_event_field(key, val);
        putchar('\n');
}

static void on_stop_signal(int sig) {
        _exit(EXIT_SUCCESS); /* every event printed so far is flushed already */
}

/* Events as they happen, until Ctrl-C (exit 0) or the daemon hangs up (exit 1). */
static int do_monitor(int argc, char **argv) {
        struct sigaction sa = { .sa_handler = on_stop_signal };
        _cleanup_(bpfcore_disconnectp) BpfcoreClient *c = NULL;
        _cleanup_(bpfcore_reply_done) BpfcoreReply reply = {};
        int r;

        r = parse_no_options(argc, argv, 0);
        if (r <= 0)
                return r;
        json_lines = arg_json;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
                return log_error_errno(negative_errno(), "cannot handle SIGINT: %m");

        r = call_more(VL_METHOD("Subscribe"), NULL, &c, &reply);
        for (;;) {
                json_object *event;

                if (r < 0)
                        return r;
                event = json_get(reply.parameters, "event", json_type_object);
                if (event && arg_json)
                        print_json(event); /* JSON lines, "subscribed" first: from here on, nothing is missed */
                else if (event && !streq(json_get_str(event, "kind"), "subscribed"))
                        print_event(event);
                fflush(stdout);
                if (!reply.continues)
                        return 0;
                bpfcore_reply_done(&reply);
                r = next_reply(c, VL_METHOD("Subscribe"), &reply);
        }
}

static int do_help(int argc, char **argv) {
        return help();
}

/* argv[0] names the command: in full, or by a prefix that only one command has. */
static int cmd_select(const struct cmd *table, size_t n, int argc, char **argv) {
        const struct cmd *found = NULL;
        size_t len = strlen(argv[0]), n_found = 0;

        for (const struct cmd *c = table; len > 0 && c < table + n; c++) {
                if (strncmp(c->name, argv[0], len) != 0)
                        continue;
                found = c;
                if (c->name[len] == '\0') {
                        n_found = 1;
                        break;
                }
                n_found++;
        }
        if (n_found == 0)
                return usage_error("unknown command '%s'", argv[0]);
        if (n_found > 1)
                return usage_error("ambiguous command '%s'", argv[0]);
        return found->func(argc, argv);
}

/* Second-level commands, bpftool style: "btf list", "btf show TYPE". */
static const struct cmd btf_cmds[] = {
        { "list", do_btf_list },
        { "show", do_btf_show },
        { "help", do_help     },
};

static int do_btf(int argc, char **argv) {
        if (argc < 2)
                return usage_error("btf: missing command (list, show)");
        if (streq(argv[1], "-h") || streq(argv[1], "--help"))
                return help();
        return cmd_select(btf_cmds, ELEMENTSOF(btf_cmds), argc - 1, argv + 1);
}

static const struct cmd map_cmds[] = {
        { "dump",   do_map_dump   },
        { "lookup", do_map_lookup },
        { "update", do_map_update },
        { "delete", do_map_delete },
        { "fd",     do_map_fd     },
        { "help",   do_help       },
};

static int do_map(int argc, char **argv) {
        if (argc < 2)
                return usage_error("map: missing command (dump, lookup, update, delete, fd)");
        if (streq(argv[1], "-h") || streq(argv[1], "--help"))
                return help();
        return cmd_select(map_cmds, ELEMENTSOF(map_cmds), argc - 1, argv + 1);
}

static const struct cmd cmds[] = {
        { "load",    do_load    },
        { "check",   do_check   },
        { "list",    do_list    },
        { "show",    do_show    },
        { "unload",  do_unload  },
        { "attach",  do_attach  },
        { "detach",  do_detach  },
        { "btf",     do_btf     },
        { "map",     do_map     },
        { "monitor", do_monitor },
        { "status",  do_status  },
        { "help",    do_help    },
};

/* 1 when a command follows at argv[optind], 0 when done (--help), < 0 on error. */
static int parse_argv(int argc, char **argv) {
        enum { ARG_VERSION = 0x100, ARG_SOCKET };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "socket",  required_argument, NULL, ARG_SOCKET  },
                { "json",    no_argument,       NULL, 'j'         },
                {}
        };
        int c;

        /* "+": stop at the command, whose options are its own. */
        while ((c = getopt_long(argc, argv, "+:hj", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help();
                case ARG_VERSION:
                        puts(BPFCORED_VERSION);
                        return 0;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                default:
                        return option_error(c, argv);
                }
        }
        if (optind >= argc)
                return usage_error("missing command");
        return 1;
}

int main(int argc, char **argv) {
        int r;

        r = parse_argv(argc, argv);
        if (r > 0)
                r = cmd_select(cmds, ELEMENTSOF(cmds), argc - optind, argv + optind);
        if (r == -EINVAL)
                return EXIT_USAGE;
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
