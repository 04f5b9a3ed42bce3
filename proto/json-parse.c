/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-parse.h"
#include "macro.h"

typedef struct Parser {
        const char *p, *end, *start;
        unsigned depth, max_depth;
        const char *error;
        const char *error_at;
        char *scratch; /* a string with escapes, unescaped */
        size_t scratch_alloc;
} Parser;

static void putp(json_object **j) {
        json_object_put(*j);
}

static int bad(Parser *ps, const char *at, const char *error) {
        ps->error = error;
        ps->error_at = at;
        return -EBADMSG;
}

static void skip_space(Parser *ps) {
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
                ps->p++;
}

static bool at(const Parser *ps, char c) {
        return ps->p < ps->end && *ps->p == c;
}

static int scratch_add(Parser *ps, size_t used, const char *s, size_t n) {
        if (used + n + 1 > ps->scratch_alloc) {
                size_t want = MAX(2 * (used + n + 1), (size_t) 256);
                char *b = realloc(ps->scratch, want);

                if (!b)
                        return -ENOMEM;
                ps->scratch = b;
                ps->scratch_alloc = want;
        }
        memcpy(ps->scratch + used, s, n);
        ps->scratch[used + n] = 0;
        return 0;
}

static int hex4(const char *s, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                char c = s[i];

                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

static size_t utf8_put(uint32_t cp, char out[static 4]) {
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xc0 | cp >> 6);
                out[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xe0 | cp >> 12);
                out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | cp >> 18);
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

/* One escape after its backslash (at *s): appended to the scratch string; *s moves past it. */
static int unescape(Parser *ps, const char **s, size_t *used) {
        const char *q = *s;
        char out[4];
        size_t n = 1;
        uint32_t cp, low;

        if (q >= ps->end)
                return bad(ps, q, "unterminated string");
        switch (*q) {
        case '"': case '\\': case '/':
                out[0] = *q;
                break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u':
                if (ps->end - q < 5 || hex4(q + 1, &cp) < 0)
                        return bad(ps, q, "a \\u escape needs four hex digits");
                q += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && ps->end - q >= 7 && q[1] == '\\' && q[2] == 'u' &&
                    hex4(q + 3, &low) == 0 && low >= 0xdc00 && low <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                        q += 6;
                } else if (cp >= 0xd800 && cp <= 0xdfff)
                        cp = 0xfffd; /* an unpaired surrogate */
                n = utf8_put(cp, out);
                break;
        default:
                return bad(ps, q, "an unknown escape in a string");
        }
        *s = q + 1;
        if (scratch_add(ps, *used, out, n) < 0)
                return -ENOMEM;
        *used += n;
        return 0;
}

/*
 * A string, its opening quote consumed. Without escapes it is handed out in
 * place (not NUL-terminated), else from the scratch buffer.
 */
static int string(Parser *ps, const char **ret, size_t *ret_len) {
        const char *s = ps->p, *start = s;
        size_t used = 0;
        bool escaped = false;

        for (;;) {
                const char *q = s;
                int r;

                while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char) *q >= 0x20)
                        q++;
                if (q >= ps->end)
                        return bad(ps, start - 1, "unterminated string");
                if ((unsigned char) *q < 0x20)
                        return bad(ps, q, "a control character in a string");
                if (*q == '\\' && !escaped) {
                        escaped = true;
                        used = 0;
                }
                if (escaped) {
                        if (scratch_add(ps, used, s, (size_t) (q - s)) < 0)
                                return -ENOMEM;
                        used += (size_t) (q - s);
                }
                if (*q == '"') {
                        ps->p = q + 1;
                        *ret = escaped ? ps->scratch : start;
                        *ret_len = escaped ? used : (size_t) (q - start);
                        return 0;
                }
                s = q + 1;
                r = unescape(ps, &s, &used);
                if (r < 0)
                        return r;
        }
}

/* Numbers are read in the C locale whatever the process's own is (an agent may have set one with a ','). */
static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void c_numeric_init(void) {
        c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
}

static bool digit(char c) {
        return c >= '0' && c <= '9';
}

static int number(Parser *ps, json_object **ret) {
        const char *s = ps->p, *q = s;
        bool negative = false, integer = true, overflow = false;
        uint64_t v = 0;

        if (q < ps->end && *q == '-') {
                negative = true;
                q++;
        }
        if (q >= ps->end || !digit(*q))
                return bad(ps, s, "not a JSON value");
        if (*q == '0') {
                q++;
                if (q < ps->end && digit(*q))
                        return bad(ps, s, "a number with a leading zero");
        } else
                for (; q < ps->end && digit(*q); q++) {
                        unsigned d = (unsigned) (*q - '0');

                        /* Too big for an integer; a fraction or exponent may yet make it a double. */
                        overflow = overflow || v > (UINT64_MAX - d) / 10;
                        v = v * 10 + d;
                }
        if (q < ps->end && *q == '.') {
                integer = false;
                if (++q >= ps->end || !digit(*q))
                        return bad(ps, s, "a number with no digit after its '.'");
                while (q < ps->end && digit(*q))
                        q++;
        }
        if (q < ps->end && (*q == 'e' || *q == 'E')) {
                integer = false;
                q++;
                if (q < ps->end && (*q == '+' || *q == '-'))
                        q++;
                if (q >= ps->end || !digit(*q))
                        return bad(ps, s, "a number with no digit in its exponent");
                while (q < ps->end && digit(*q))
                        q++;
        }
        ps->p = q;

        if (integer && overflow)
                return bad(ps, s, "an integer beyond 64 bits");
        if (integer && negative) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return bad(ps, s, "an integer beyond 64 bits");
                *ret = json_object_new_int64(v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v);
        } else if (integer)
                *ret = v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t) v);
        else {
                _cleanup_free_ char *text = strndup(s, (size_t) (q - s));

                if (!text)
                        return -ENOMEM;
                (void) pthread_once(&c_numeric_once, c_numeric_init);
                if (!c_numeric)
                        return -ENOMEM;
                /* json-c keeps the text, so it is written back as it came. */
                *ret = json_object_new_double_s(strtod_l(text, NULL, c_numeric), text);
        }
        return *ret ? 0 : -ENOMEM;
}

static int value(Parser *ps, json_object **ret);

/* At a container's start: whether it closes at once (close consumed). */
static bool closes_empty(Parser *ps, char close) {
        skip_space(ps);
        if (!at(ps, close))
                return false;
        ps->p++;
        return true;
}

/* After a member or an element: 1 at ',' (another follows), 0 at close (consumed), or -EBADMSG. */
static int after_item(Parser *ps, char close, const char *error) {
        skip_space(ps);
        if (at(ps, ',')) {
                ps->p++;
                return 1;
        }
        if (!at(ps, close))
                return bad(ps, ps->p, error);
        ps->p++;
        return 0;
}

/*
 * The keys of the daemon's messages, kept once: any other key is a strdup()
 * of its own in every object that has it, and a relocation report of 900
 * entries has 9,000 of them. By length, for known_key().
 */
static const char *const known_keys[15][14] = {
        [2] = { "fd", "id", "ok" },
        [3] = { "btf", "gid", "key", "map", "pid", "pin", "tag", "uid" },
        [4] = { "insn", "kind", "link", "load", "maps", "more", "name", "open", "plan", "type" },
        [5] = { "error", "links", "local", "owner", "total", "value" },
        [6] = { "access", "attach", "btf_fd", "cgroup", "clsact", "digest", "method", "module", "object", "offset",
                "reason", "source", "target" },
        [7] = { "entries", "globals", "message", "objects", "program", "receive", "section" },
        [8] = { "counters", "key_size", "pin_path", "poisoned", "priority", "programs" },
        [9] = { "continues", "direction", "functions", "interface", "loaded_at", "parameter" },
        [10] = { "parameters", "timings_us", "value_size" },
        [11] = { "attach_type", "jited_bytes", "max_entries", "relocations" },
        [12] = { "xlated_bytes" },
        [13] = { "source_digest" },
        [14] = { "verified_insns" },
};

static const char *known_key(const char *k, size_t len) {
        if (len >= ELEMENTSOF(known_keys))
                return NULL;
        for (const char *const *e = known_keys[len]; *e; e++)
                if ((*e)[0] == k[0] && memcmp(*e, k, len) == 0)
                        return *e;
        return NULL;
}

static int object(Parser *ps, json_object **ret) {
        _cleanup_(putp) json_object *o = json_object_new_object();
        char small[128];
        int r;

        if (!o)
                return -ENOMEM;
        for (bool more = !closes_empty(ps, '}'); more;) {
                _cleanup_free_ char *big = NULL;
                json_object *v = NULL;
                const char *k, *known;
                char *key;
                size_t len;

                skip_space(ps);
                if (!at(ps, '"'))
                        return bad(ps, ps->p, "expected a key in quotes");
                ps->p++;
                r = string(ps, &k, &len);
                if (r < 0)
                        return r;
                if (memchr(k, 0, len))
                        return bad(ps, ps->p, "a NUL in a key");
                known = known_key(k, len);
                key = known ? NULL : len < sizeof(small) ? small : (big = malloc(len + 1));
                if (!known && !key)
                        return -ENOMEM;
                if (key) {
                        memcpy(key, k, len);
                        key[len] = 0;
                }

                skip_space(ps);
                if (!at(ps, ':'))
                        return bad(ps, ps->p, "expected ':' after a key");
                ps->p++;
                r = value(ps, &v);
                if (r < 0)
                        return r;
                if (json_object_object_add_ex(o, known ?: key, v, known ? JSON_C_OBJECT_ADD_CONSTANT_KEY : 0) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                r = after_item(ps, '}', "expected ',' or '}' in an object");
                if (r < 0)
                        return r;
                more = r > 0;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int array(Parser *ps, json_object **ret) {
        _cleanup_(putp) json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (bool more = !closes_empty(ps, ']'); more;) {
                json_object *v = NULL;

                r = value(ps, &v);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                r = after_item(ps, ']', "expected ',' or ']' in an array");
                if (r < 0)
                        return r;
                more = r > 0;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

static int literal(Parser *ps, const char *word, json_object *v, json_object **ret) {
        size_t n = strlen(word);

        if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
                json_object_put(v);
                return bad(ps, ps->p, "not a JSON value");
        }
        ps->p += n;
        *ret = v;
        return 0;
}

static int value(Parser *ps, json_object **ret) {
        const char *s;
        size_t len;
        int r;

        skip_space(ps);
        if (ps->p >= ps->end)
                return bad(ps, ps->p, "unexpected end of text");
        /* A value inside max_depth - 1 containers is the deepest there may be (json-c counts so). */
        if (ps->depth >= ps->max_depth)
                return bad(ps, ps->p, "nested too deep");
        switch (*ps->p) {
        case '{':
        case '[':
                ps->depth++;
                r = *ps->p++ == '{' ? object(ps, ret) : array(ps, ret);
                ps->depth--;
                return r;
        case '"': {
                const char *start = ps->p;

                ps->p++;
                r = string(ps, &s, &len);
                if (r < 0)
                        return r;
                if (len > INT32_MAX)
                        return bad(ps, start, "a string too long");
                *ret = json_object_new_string_len(s, (int) len);
                return *ret ? 0 : -ENOMEM;
        }
        case 't':
        case 'f': {
                bool t = *ps->p == 't';
                json_object *b = json_object_new_boolean(t);

                if (!b)
                        return -ENOMEM;
                return literal(ps, t ? "true" : "false", b, ret);
        }
        case 'n':
                return literal(ps, "null", NULL, ret);
        default:
                return number(ps, ret);
        }
}

int json_parse_strict(const char *text, size_t len, unsigned max_depth, json_object **ret,
                      const char **ret_error, size_t *ret_offset) {
        Parser ps = { .p = text, .start = text, .end = text + len, .max_depth = max_depth };
        json_object *v = NULL;
        int r;

        r = value(&ps, &v);
        if (r >= 0) {
                skip_space(&ps);
                if (ps.p != ps.end) {
                        json_object_put(v);
                        r = bad(&ps, ps.p, "trailing bytes after the JSON value");
                }
        }
        free(ps.scratch);
        if (r == -EBADMSG) {
                if (ret_error)
                        *ret_error = ps.error;
                if (ret_offset)
                        *ret_offset = (size_t) (ps.error_at - text);
        }
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}
