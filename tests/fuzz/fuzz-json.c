/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto/json-parse against json-c's strict tokener, on the same text (valid
 * UTF-8 only, as vl_parse() passes it). Checked: whatever json_parse_strict()
 * accepts, json-c accepts too, as the same tree written the same way; what it
 * refuses comes with a reason and an offset within the text.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "json-parse.h"
#include "varlink-io.h"

#define DEPTH 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_object *ours = NULL, *theirs, *msg = NULL;
        json_tokener *tok;
        const char *error = NULL;
        char *text, *reason = NULL;
        size_t at = SIZE_MAX;
        bool ok;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        text = malloc(size + 1);
        FUZZ_CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;

        /* Valid UTF-8 is what vl_parse() hands on: it refuses the rest with its own reason. */
        r = vl_parse(text, size, &msg, &reason);
        json_object_put(msg);
        FUZZ_CHECK(r == 0 || reason);
        ok = r == 0 || strncmp(reason, "invalid UTF-8", 13) != 0;
        free(reason);
        if (!ok) {
                free(text);
                return 0;
        }

        r = json_parse_strict(text, size, DEPTH, &ours, &error, &at);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0) {
                FUZZ_CHECK(error && at <= size);
                free(text);
                return 0;
        }
        tok = json_tokener_new_ex(DEPTH);
        FUZZ_CHECK(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        theirs = json_tokener_parse_ex(tok, text, (int) size + 1); /* the NUL ends a bare number */
        ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) >= size;
        json_tokener_free(tok);
        FUZZ_CHECK(ok);
        FUZZ_CHECK(json_object_equal(ours, theirs));
        FUZZ_CHECK(strcmp(json_object_to_json_string_ext(ours, JSON_C_TO_STRING_PLAIN),
                          json_object_to_json_string_ext(theirs, JSON_C_TO_STRING_PLAIN)) == 0);
        json_object_put(ours);
        json_object_put(theirs);
        free(text);
        return 0;
}
