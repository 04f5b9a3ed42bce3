/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto/json-parse: the same trees as json-c's strict tokener, and stricter where json-c is lax. */
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "json-parse.h"
#include "macro.h"
#include "tap.h"

#define DEPTH 64

/* json-c's strict tokener on the whole text (NUL-terminated): the value, or NULL with *ok false when it refuses. */
static json_object *json_c_parse(const char *text, size_t len, bool *ok) {
        json_tokener *tok = json_tokener_new_ex(DEPTH);
        json_object *o;

        if (!tok)
                tap_bail("out of memory");
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        /* With the NUL after it, so that json-c knows where a bare number ends. */
        o = json_tokener_parse_ex(tok, text, (int) len + 1);
        *ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) >= len;
        json_tokener_free(tok);
        if (!*ok) {
                json_object_put(o);
                o = NULL;
        }
        return o;
}

/* Both accept it, with equal trees (and equal types: json_object_equal() says 1 == 1.0). */
static bool same_as_json_c(const char *text, size_t len) {
        json_object *ours = NULL, *theirs;
        const char *error = NULL;
        size_t at = 0;
        bool ok, same;
        int r;

        r = json_parse_strict(text, len, DEPTH, &ours, &error, &at);
        theirs = json_c_parse(text, len, &ok);
        same = r == 0 && ok && json_object_equal(ours, theirs) &&
               strcmp(json_object_to_json_string_ext(ours, JSON_C_TO_STRING_PLAIN),
                      json_object_to_json_string_ext(theirs, JSON_C_TO_STRING_PLAIN)) == 0;
        if (!same)
                tap_diag("ours: %d (%s at %zu), json-c: %s", r, error ?: "-", at, ok ? "accepts" : "refuses");
        json_object_put(ours);
        json_object_put(theirs);
        return same;
}

TEST(accepts_as_json_c_does) {
        static const char *const texts[] = {
                "{}", "[]", "{\"a\":{}}", "{\"a\":[]}", "[[[]]]", " \t\r\n{ \"a\" : 1 , \"b\" : [ 1 , 2 ] }\n ",
                "0", "-0", "1", "-1", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                "18446744073709551615", "0.5", "-0.0e+1", "1E5", "1e-5", "12.25e2", "1e400",
                "100000000000000000000.5", "-100000000000000000000e0", /* doubles past 64 bits' integers */
                "true", "false", "null", "[true,false,null]", "{\"a\":null}",
                "\"\"", "\"plain\"", "\"caf\xc3\xa9 \xf0\x9d\x84\x9e\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                "\"\\u0041\\u00e9\\u20ac\"", "\"\\uD834\\uDD1E\"", "\"x\\u0000y\"",
                "\"\\ud800\"", "\"\\udc00x\"", "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"", /* unpaired: U+FFFD */
                "{\"a\":1,\"a\":2}", /* the later key wins */
                /* Keys of the daemon's messages (kept once), their prefixes and extensions, and a repeat */
                "{\"id\":1,\"i\":2,\"idx\":3,\"key\":4,\"key_size\":5,\"key_siz\":6,\"access\":7,\"xlated_bytes\":8,"
                "\"xlated_bytesz\":9,\"_\":10,\"zzz\":11,\"program\":{\"program\":[{\"id\":1}]},\"id\":12}",
                "{\"\":1}", "{\"k\\u00e9y\":\"v\"}", "{\"a\\\"b\":1}",
                "[\"a\\nb\", \"tab\\tand a long string with an escape at the end\\n\"]",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                tap_ok(same_as_json_c(texts[i], strlen(texts[i])), "%s: the same value as json-c's", texts[i]);
}

TEST(refuses_as_json_c_does) {
        static const char *const texts[] = {
                "", " ", "{", "}", "[", "{\"a\":}", "{\"a\":1", "{\"a\":1,}", "[1,]", "[,1]", "{,}", "{\"a\" 1}",
                "{a:1}", "[01]", "[.5]", "[+1]", "[-]", "[1e]", "[1e+]", "[tru]", "[nul]", "[nulll]",
                "[falsey]", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"unterminated",
                "{\"a\":1}x", "{\"a\":1}{\"b\":2}", "[1][2]", "[1 2]", "\x0c[1]",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                json_object *o = NULL, *theirs;
                const char *error = NULL;
                size_t at = SIZE_MAX;
                bool ok;
                int r = json_parse_strict(texts[i], strlen(texts[i]), DEPTH, &o, &error, &at);

                theirs = json_c_parse(texts[i], strlen(texts[i]), &ok);
                tap_ok(r == -EBADMSG && error && at <= strlen(texts[i]) && !ok,
                       "'%s' is refused by both (%s at byte %zu)", texts[i], error ?: "accepted", at);
                if (r == 0)
                        json_object_put(o);
                json_object_put(theirs);
        }
}

TEST(stricter_than_json_c) {
        static const struct {
                const char *text;
                const char *why;
        } texts[] = {
                { "[NaN]", "NaN" },
                { "[Infinity]", "Infinity" },
                { "[-Infinity]", "-Infinity" },
                { "[1.]", "a '.' without digits" },
                { "[-.5]", "a '.' without digits before it" },
                { "[-01]", "a leading zero after '-'" },
                { "[18446744073709551616]", "an integer json-c saturates to UINT64_MAX" },
                { "[-9223372036854775809]", "an integer json-c saturates to INT64_MIN" },
                { "[123456789012345678901234567890]", "a 30-digit integer" },
                { "{\"a\\u0000b\":1}", "a NUL in a key (json-c cuts the key to \"a\")" },
                { "{'a':1}", "a key in single quotes" },
                { "[\"a\tb\"]", "a tab in a string, not escaped" },
                { "[\"a\nb\"]", "a newline in a string, not escaped" },
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                json_object *o = NULL;
                const char *error = NULL;
                size_t at = 0;
                int r = json_parse_strict(texts[i].text, strlen(texts[i].text), DEPTH, &o, &error, &at);

                tap_is_int(r, -EBADMSG, "%s is refused: %s", texts[i].why, error ?: "accepted");
                if (r == 0)
                        json_object_put(o);
        }
}

/* As deep as json-c takes, and no deeper: empty containers and containers around a value. */
TEST(depth_as_json_c) {
        for (int depth = DEPTH - 2; depth <= DEPTH + 2; depth++)
                for (int inner = 0; inner < 2; inner++) {
                        _cleanup_free_ char *text = malloc((size_t) depth * 2 + 2);
                        json_object *o = NULL, *theirs;
                        const char *error = NULL;
                        bool ok;
                        char *p;
                        int r;

                        if (!text)
                                tap_bail("out of memory");
                        p = text;
                        for (int i = 0; i < depth; i++)
                                *p++ = '[';
                        if (inner)
                                *p++ = '1';
                        for (int i = 0; i < depth; i++)
                                *p++ = ']';
                        *p = 0;
                        r = json_parse_strict(text, strlen(text), DEPTH, &o, &error, NULL);
                        theirs = json_c_parse(text, strlen(text), &ok);
                        tap_ok((r == 0) == ok && (r == 0 || r == -EBADMSG),
                               "%d nested arrays%s: %s, as json-c", depth, inner ? " around a number" : "",
                               r == 0 ? "accepted" : error);
                        json_object_put(o);
                        json_object_put(theirs);
                }
}

/* A process may have set a locale that writes numbers with a ',' (an agent calling setlocale(LC_ALL, "")). */
TEST(numbers_whatever_the_locale) {
        char dir[] = "/tmp/test-json-parse-XXXXXX", cmd[256];
        json_object *o = NULL;
        double v = 0;

        if (!mkdtemp(dir))
                tap_bail("mkdtemp: %s", strerror(errno));
        snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
        if (system(cmd) != 0) {
                tap_skip("localedef cannot make de_DE.UTF-8 here (package locales)", "a number in a ',' locale");
                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                (void) system(cmd);
                return;
        }
        setenv("LOCPATH", dir, 1);
        tap_ok(setlocale(LC_NUMERIC, "de_DE.UTF-8") && strcmp(localeconv()->decimal_point, ",") == 0,
               "the process writes numbers with a ','");
        tap_is_int(json_parse_strict("1.5", 3, DEPTH, &o, NULL, NULL), 0, "1.5 parses");
        if (o)
                v = json_object_get_double(o);
        tap_ok(v == 1.5, "as 1.5 (%g)", v);
        json_object_put(o);
        setlocale(LC_NUMERIC, "C");
        unsetenv("LOCPATH");
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void) system(cmd);
}

TEST(text_is_not_read_past_its_length) {
        /* A prefix of a longer buffer: what lies beyond len must not be seen. */
        static const char buf[] = "{\"a\":12345}";
        json_object *o = NULL;

        tap_is_int(json_parse_strict(buf, 5, DEPTH, &o, NULL, NULL), -EBADMSG, "'{\"a\":' alone is cut short");
        tap_is_int(json_parse_strict("[1234]", 4, DEPTH, &o, NULL, NULL), -EBADMSG, "'[123' alone is cut short");
        tap_is_int(json_parse_strict("123", 2, DEPTH, &o, NULL, NULL), 0, "'12' of '123' is a number");
        tap_is_int(o ? json_object_get_int64(o) : -1, 12, "and it is 12");
        json_object_put(o);
        o = NULL;
        tap_is_int(json_parse_strict("\"abc\"", 4, DEPTH, &o, NULL, NULL), -EBADMSG, "a string cut before its quote");
        tap_is_int(json_parse_strict("\"\\u00e9\"", 6, DEPTH, &o, NULL, NULL), -EBADMSG,
                   "a \\u escape cut short");
}

/* A random tree of every kind of value, with strings that need escapes. */
static json_object *random_tree(unsigned *seed, int depth) {
        static const char *const words[] = { "a", "program", "caf\xc3\xa9", "q\"uote", "back\\slash", "tab\t",
                                             "nl\n", "\x01", "\xf0\x9d\x84\x9e", "", "/slash" };
        int kind = depth > 4 ? rand_r(seed) % 5 : rand_r(seed) % 7;

        switch (kind) {
        case 0:
                return json_object_new_int64((int64_t) rand_r(seed) * (rand_r(seed) % 2 ? -1 : 1) * 1000003LL);
        case 1:
                return json_object_new_string(words[(size_t) rand_r(seed) % ELEMENTSOF(words)]);
        case 2:
                return json_object_new_boolean(rand_r(seed) % 2);
        case 3:
                return NULL;
        case 4:
                return json_object_new_uint64(UINT64_MAX - (uint64_t) rand_r(seed));
        case 5: {
                json_object *a = json_object_new_array();

                for (int i = rand_r(seed) % 6; i > 0; i--)
                        json_object_array_add(a, random_tree(seed, depth + 1));
                return a;
        }
        default: {
                json_object *o = json_object_new_object();
                char key[32];

                for (int i = rand_r(seed) % 6; i > 0; i--) {
                        snprintf(key, sizeof(key), "%s%d", words[(size_t) rand_r(seed) % ELEMENTSOF(words)], i);
                        json_object_object_add(o, key, random_tree(seed, depth + 1));
                }
                return o;
        }
        }
}

TEST(random_trees_round_trip) {
        unsigned seed = 1, same = 0, n = 2000;

        for (unsigned i = 0; i < n; i++) {
                json_object *tree = random_tree(&seed, 0);
                int flags = i % 2 ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY;
                const char *text = json_object_to_json_string_ext(tree, flags);

                same += same_as_json_c(text, strlen(text));
                json_object_put(tree);
        }
        tap_is_int(same, n, "%u random trees, written by json-c, read back as json-c reads them", n);
}

TAP_MAIN
