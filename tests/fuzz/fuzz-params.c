/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Method parameters: a message parsed by vl_parse() as the daemon gets it
 * from the framing (NUL-terminated), its "parameters" (or, for shorter
 * seeds, the message itself) decoded by params_decode() against Load's table
 * (daemon/methods.c) and against one using the parsers Load does not.
 * Checked: a refusal names a parameter, an accepted string has no NUL and
 * stays within bounds, an accepted array holds only strings.
 */
#include <string.h>

#include "fuzz.h"
#include "methods.h"
#include "params.h"
#include "varlink-io.h"

/* What the other methods add: 64-bit ids, any JSON value for the handler to check. */
typedef struct OtherParameters {
        uint64_t id;
        json_object *value;
        json_object *names;
        bool more;
} OtherParameters;

static const ParamField other_table[] = {
        { "id", json_type_int, param_uint64, offsetof(OtherParameters, id), true },
        { "value", json_type_null, param_json, offsetof(OtherParameters, value) },
        { "names", json_type_array, param_strv, offsetof(OtherParameters, names) },
        { "more", json_type_boolean, param_bool, offsetof(OtherParameters, more) },
        {}
};

static void check_string(const char *s) {
        if (s)
                FUZZ_CHECK(strlen(s) <= 4096);
}

static void check_strv(json_object *a) {
        if (!a)
                return;
        FUZZ_CHECK(json_object_is_type(a, json_type_array));
        for (size_t i = 0; i < json_object_array_length(a); i++)
                FUZZ_CHECK(json_object_is_type(json_object_array_get_idx(a, i), json_type_string));
}

static void check_failure(Failure *f) {
        json_object *p = NULL;

        FUZZ_CHECK(f->error && f->parameters);
        FUZZ_CHECK(json_object_object_get_ex(f->parameters, "parameter", &p));
        /* The reply carries it: it must serialize. */
        FUZZ_CHECK(json_object_to_json_string_ext(f->parameters, JSON_C_TO_STRING_PLAIN));
        failure_done(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_object_putp) json_object *msg = NULL;
        _cleanup_free_ char *text = NULL, *reason = NULL;
        LoadParameters load = {};
        OtherParameters other = {};
        Failure f = {};
        json_object *params;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return -1;
        /* As vl_reader_next() hands a message out: its bytes and a NUL. */
        text = malloc(size + 1);
        FUZZ_CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;

        r = vl_parse(text, size, &msg, &reason);
        if (r < 0) {
                FUZZ_CHECK((r == -EBADMSG && reason) || r == -ENOMEM);
                return 0;
        }
        /* As daemon/varlink.c's dispatch() picks them. */
        if (!json_object_object_get_ex(msg, "parameters", &params) ||
            json_object_is_type(params, json_type_null))
                params = msg;

        r = params_decode(params, load_table, &load, &f);
        if (r < 0)
                check_failure(&f);
        else {
                FUZZ_CHECK(!f.error);
                check_string(load.name);
                check_string(load.btf);
                check_strv(load.programs);
                FUZZ_CHECK(!load.globals || json_object_is_type(load.globals, json_type_object));
                FUZZ_CHECK(!load.maps || json_object_is_type(load.maps, json_type_object));
        }

        r = params_decode(params, other_table, &other, &f);
        if (r < 0)
                check_failure(&f);
        else
                check_strv(other.names);
        return 0;
}
