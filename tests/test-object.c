/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of daemon/object.c: the text a state file and a Load reply hold
 * (object_render(), written straight from the Object) is byte for byte
 * json-c's rendering of object_to_json(), and frozen values keep their text;
 * state_write() keeps a reply's text within a message.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "object.h"
#include "protocol.h"
#include "state.h"
#include "tap.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Every string field with something JSON must escape, or nothing at all. */
static const char *const awkward[] = {
        NULL, "", "plain", "quote \" backslash \\ slash /", "\b\f\n\r\t", "\x01\x1f\x7f", "utf-8: é ✓",
};

static void fill(Object *o, size_t variant, ProgramInfo *progs, LinkInfo *links, MapInfo *maps) {
        const char *s = awkward[variant % ELEMENTSOF(awkward)];

        *o = (Object) {
                .id = 18446744073709551615ULL - variant, .name = (char *) s, .loaded_at_usec = 1764000000000000ULL,
                .owner = { .uid = 1000, .gid = 0, .pid = -1, .cgroup = (char *) s }, .pin_dir = (char *) s,
                .timings = { 1, 2, 3, 4, 5, 6, 7 },
        };
        snprintf(o->digest, sizeof(o->digest), "sha256:%064zx", variant);
        links[0] = (LinkInfo) { .id = 9, .type = (char *) "tracepoint", .target = (char *) s };
        links[1] = (LinkInfo) { .id = 0x80000001, .type = (char *) "tc", .target = (char *) "veth0 ingress",
                                .is_filter = true,
                                .filter = { .netns = 4026531840ULL, .ifindex = 7, .interface = "veth0", .handle = 3,
                                            .priority = 65535 } };
        progs[0] = (ProgramInfo) { .name = (char *) "handle_exec", .section = (char *) s, .type = (char *) "tracepoint",
                                   .id = 123, .tag = "d07f7ff541b0d355", .xlated_bytes = 240, .jited_bytes = 149,
                                   .verified_insns = 4294967295U, .links = links, .n_links = variant % 3 };
        progs[1] = (ProgramInfo) { .name = (char *) s, .type = (char *) "xdp" };
        maps[0] = (MapInfo) { .name = (char *) ".rodata", .type = (char *) "array", .id = 45, .key_size = 4,
                              .value_size = 8, .max_entries = 1 };
        o->programs = progs;
        o->n_programs = variant % 3;
        o->maps = maps;
        o->n_maps = variant % 2;
        if (variant % 2)
                o->source = (char *) s, o->source_digest = (char *) "sha256:00";
}

TEST(render_is_json_c_text) {
        json_object *relos = json_tokener_parse("[{\"program\":\"a\",\"insn\":12,\"kind\":\"field_byte_offset\","
                                                "\"type\":\"task_struct\",\"access\":\"real_parent.tgid\","
                                                "\"local\":-1,\"target\":2504,\"btf\":null,\"ok\":true}]");
        unsigned same = 0, n = 0;

        for (size_t v = 0; v < 4 * ELEMENTSOF(awkward); v++) {
                ProgramInfo progs[2];
                LinkInfo links[2];
                MapInfo maps[1];
                Object o;
                json_object *tree;
                const char *want;
                size_t want_len = 0, len = 0;
                char *got;

                fill(&o, v, progs, links, maps);
                /* Relocations: none, a tree, its frozen text. */
                o.relocations = v % 3 == 0 ? NULL : v % 3 == 1 ? json_object_get(relos) : json_freeze(json_object_get(relos));
                tree = object_to_json(&o);
                want = json_object_to_json_string_length(tree, FLAGS, &want_len);
                got = object_render(&o, &len);
                n++;
                if (got && len == want_len && memcmp(got, want, len) == 0)
                        same++;
                else
                        tap_diag("variant %zu:\n  json-c: %s\n  render: %s", v, want, got ?: "(null)");
                free(got);
                json_object_put(tree);
                json_object_put(o.relocations);
        }
        tap_is_int((int) same, (int) n, "object_render() is json-c's text of object_to_json() for %u objects", n);
        json_object_put(relos);
}

TEST(frozen_values) {
        const char text[] = "{\"a\":[1,2,{\"b\":\"\\u0001\"}]}";
        char *owned = strdup(text);
        json_object *copied = json_frozen_text(json_type_object, text, strlen(text));
        json_object *taken = json_frozen_take(json_type_object, owned, strlen(text));
        json_object *outer = json_object_new_object();

        tap_ok(copied && strcmp(json_object_to_json_string_ext(copied, FLAGS), text) == 0, "a frozen copy renders its text");
        tap_ok(taken && strcmp(json_object_to_json_string_ext(taken, FLAGS), text) == 0, "a frozen take renders its text");
        json_object_object_add(outer, "x", json_object_get(taken));
        tap_is_str(json_object_to_json_string_ext(outer, FLAGS), "{\"x\":{\"a\":[1,2,{\"b\":\"\\u0001\"}]}}",
                   "and so does a tree holding it");
        json_object_put(outer);
        json_object_put(copied);
        json_object_put(taken);
}

/*
 * A Load's reply is its state file's text: an object whose JSON is larger
 * than a reply may be is TooLarge before anything is written (the load then
 * undoes itself), while a state file without a reply (Attach, objects.d)
 * has no such limit.
 */
TEST(state_too_large_for_a_reply) {
        static const char entry[] = "{\"program\":\"p\",\"insn\":1,\"kind\":\"field_byte_offset\",\"type\":\"t\","
                                    "\"access\":\"a\",\"local\":0,\"target\":0,\"btf\":\"vmlinux\",\"ok\":true}";
        char dir[] = "/tmp/test-object-XXXXXX", path[128];
        size_t n = VL_MAX_MESSAGE / (sizeof(entry) - 1) + 1, len = 0;
        char *text = malloc(n * sizeof(entry) + 2);
        ProgramInfo progs[2];
        LinkInfo links[2];
        MapInfo maps[1];
        Object o;
        Failure f = {}, f2 = {};
        json_object *reply = NULL, *small = NULL;
        struct stat st;

        if (!text || !mkdtemp(dir))
                tap_bail("no memory or temporary directory");
        text[len++] = '[';
        for (size_t i = 0; i < n; i++) {
                if (i)
                        text[len++] = ',';
                memcpy(text + len, entry, sizeof(entry) - 1);
                len += sizeof(entry) - 1;
        }
        text[len++] = ']';
        fill(&o, 2, progs, links, maps);
        o.pin_dir = (char *) "/sys/fs/bpf/bpfcored/1";
        o.relocations = json_frozen_take(json_type_array, text, len);
        snprintf(path, sizeof(path), "%s/%llu.json", dir, (unsigned long long) o.id);

        tap_is_int(state_write(dir, &o, &reply, &f), -EMSGSIZE, "a %zu-relocation object for a reply: -EMSGSIZE", n);
        tap_is_str(f.error, VL_ERROR_TOO_LARGE, "as TooLarge");
        tap_ok(strstr(json_object_to_json_string(f.parameters), "message_size") != NULL, "limit message_size: %s",
               json_object_to_json_string(f.parameters));
        tap_ok(!reply && stat(path, &st) < 0, "no reply text, no state file");
        tap_is_int(state_write(dir, &o, NULL, &f2), 0, "the same state file without a reply is written");
        if (stat(path, &st) < 0)
                st.st_size = 0;
        tap_ok((size_t) st.st_size > VL_MAX_MESSAGE, "whole (%lld bytes)", (long long) st.st_size);
        unlink(path);
        json_object_put(o.relocations);

        o.relocations = NULL;
        tap_is_int(state_write(dir, &o, &small, &f2), 0, "a small object for a reply is written");
        tap_ok(small != NULL, "with its reply text");
        unlink(path);
        rmdir(dir);
        json_object_put(small);
        failure_done(&f);
        failure_done(&f2);
}

TAP_MAIN
