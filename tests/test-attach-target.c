/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of proto/attach-target.c: TYPE TARGET... words as bpfcorectl
 * attach and objects.d's attach.PROGRAM lines give them, into the value of
 * the Attach parameter TYPE, or refused with a message naming what is wrong.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attach-target.h"
#include "macro.h"
#include "tap.h"

typedef struct Case {
        const char *type;
        const char *words[5]; /* NULL-terminated */
        int64_t pid;
        const char *cwd;
        const char *want;  /* the target as plain JSON; NULL: refused */
        const char *error; /* what the refusal must say */
} Case;

static const Case cases[] = {
        {"tracepoint", {"sched/sched_switch"}, 0, NULL, "\"sched\\/sched_switch\"", NULL},
        {"tracepoint", {"nocategory"}, 0, NULL, NULL, "tracepoint takes CAT/NAME, got 'nocategory'"},
        {"raw_tp", {"sched_switch"}, 0, NULL, "{\"tracepoint\":\"sched_switch\"}", NULL},
        {"fentry", {NULL}, 0, NULL, "{}", NULL},
        {"fentry", {"do_unlinkat"}, 0, NULL, NULL, "fentry takes no TARGET"},
        {"kprobe", {"do_unlinkat", "0x10"}, 0, NULL, "{\"function\":\"do_unlinkat\",\"offset\":16}", NULL},
        {"kprobe", {"do_unlinkat", "ten"}, 0, NULL, NULL, "kprobe: invalid offset 'ten'"},
        {"kprobe",
         {"do_unlinkat", "0x8000000000000000"},
         0,
         NULL,
         NULL,
         "kprobe: 0x8000000000000000 is out of range"},
        {"uprobe",
         {"/usr/bin/app", "main"},
         42,
         NULL,
         "{\"path\":\"\\/usr\\/bin\\/app\",\"symbol\":\"main\",\"pid\":42}",
         NULL},
        {"uprobe", {"./app", "4096"}, 0, "/srv", "{\"path\":\"\\/srv\\/app\",\"offset\":4096}", NULL},
        {"uprobe", {"app", "main"}, 0, NULL, NULL, "path must be an absolute path, not 'app'"},
        {"tracepoint", {"sched/sched_switch"}, 42, NULL, NULL, "--pid applies to uprobe and uretprobe only"},
        {"xdp", {"eth0", "drv"}, 0, NULL, "{\"interface\":\"eth0\",\"mode\":\"drv\"}", NULL},
        {"xdp", {"eth0", "dr"}, 0, NULL, NULL, "xdp: invalid mode 'dr'"},
        {"tc", {"eth0", "up"}, 0, NULL, NULL, "tc: invalid direction 'up'"},
        {"tc", {"eth0", "ingress", "clsact"}, 0, NULL,
         "{\"interface\":\"eth0\",\"direction\":\"ingress\",\"mode\":\"clsact\"}", NULL},
        {"tc", {"eth0", "egress", "clsact", "prio=5"}, 0, NULL,
         "{\"interface\":\"eth0\",\"direction\":\"egress\",\"mode\":\"clsact\",\"priority\":5}", NULL},
        {"tc", {"eth0", "egress", "qdisc"}, 0, NULL, NULL, "tc: invalid mode 'qdisc' (tcx or clsact)"},
        {"tc", {"eth0", "egress", "clsact", "5"}, 0, NULL, NULL, "tc: '5' is not prio=N"},
        {"kprobe", {"do_unlinka*"}, 0, NULL, "{\"pattern\":\"do_unlinka*\"}", NULL},
        {"kretprobe", {"do_unlinkat,do_rmdir"}, 0, NULL, "{\"functions\":[\"do_unlinkat\",\"do_rmdir\"]}", NULL},
        {"kprobe", {"do_unlinkat,,do_rmdir"}, 0, NULL, NULL, "kprobe: empty function name in 'do_unlinkat,,do_rmdir'"},
        {"kprobe", {"do_unlinkat,"}, 0, NULL, NULL, "kprobe: empty function name"},
        {"kprobe", {"do_*", "8"}, 0, NULL, NULL, "kprobe: a pattern or a list of functions takes no offset"},
        {"cgroup",
         {"/sys/fs/cgroup", "cgroup_skb/egress"},
         0,
         NULL,
         "{\"path\":\"\\/sys\\/fs\\/cgroup\",\"attach_type\":\"cgroup_skb\\/egress\"}",
         NULL},
        {"perf_event",
         {"cpu-clock", "cpu=0", "freq=99"},
         0,
         NULL,
         "{\"event\":\"cpu-clock\",\"cpu\":0,\"frequency\":99}",
         NULL},
        {"perf_event",
         {"cpu-clock", "pid=1", "period=0x100"},
         0,
         NULL,
         "{\"event\":\"cpu-clock\",\"pid\":1,\"period\":256}",
         NULL},
        {"perf_event", {"cpu-clock", "core=0"}, 0, NULL, NULL, "not 'core=0'"},
        {"perf_event", {"cpu-clock", "cpu=zero"}, 0, NULL, NULL, "perf_event: 'cpu=zero' is not a number"},
        {"perf_event",
         {"cpu-clock", "cpu=0", "freq=99999999999999999999"},
         0,
         NULL,
         NULL,
         "perf_event: 99999999999999999999 is out of range"},
        {"perf_event", {"cpu-clock", "cpu=0", "cpu=1"}, 0, NULL, NULL, "perf_event: cpu is given twice"},
        {"kprobe", {""}, 0, NULL, NULL, "not an empty argument"},
        {"bogus", {NULL}, 0, NULL, NULL, "unknown TYPE 'bogus' (tracepoint, raw_tp,"},
};

TEST(words) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = &cases[i];
                char *words[4] = {};
                const char *type = NULL;
                json_object *target = NULL;
                char *error = NULL;
                int n = 0, r;

                for (; n < 4 && c->words[n]; n++)
                        words[n] = strdup(c->words[n]);
                r = attach_target_parse(c->type, words, n, c->pid, c->cwd, &type, &target, &error);
                if (c->want) {
                        tap_is_int(r, 0, "%s %s: parsed", c->type, c->words[0] ?: "");
                        tap_is_str(target ? json_object_to_json_string_ext(target, JSON_C_TO_STRING_PLAIN)
                                          : "",
                                   c->want, "%s %s: the target", c->type, c->words[0] ?: "");
                        tap_is_str(type ?: "", c->type, "%s: named by its static name", c->type);
                } else {
                        tap_is_int(r, -EINVAL, "%s %s: refused", c->type, c->words[0] ?: "");
                        tap_ok(error && strstr(error, c->error), "%s %s: says '%s' (%s)", c->type,
                               c->words[0] ?: "", c->error, error ?: "nothing");
                        tap_ok(!target, "%s %s: no target handed out", c->type, c->words[0] ?: "");
                }
                json_object_put(target);
                free(error);
                for (int k = 0; k < n; k++)
                        free(words[k]);
        }
}

TEST(numbers) {
        uint64_t v = 7;

        tap_is_int(parse_u64("0x10", &v), 0, "0x10 is a number");
        tap_is_int((int64_t) v, 16, "of value 16");
        tap_is_int(parse_u64("18446744073709551615", &v), 0, "UINT64_MAX is a number");
        tap_is_int(parse_u64("18446744073709551616", &v), -ERANGE, "UINT64_MAX + 1 is out of range");
        tap_is_int(parse_u64("-1", &v), -EINVAL, "no sign");
        tap_is_int(parse_u64(" 1", &v), -EINVAL, "no blanks");
        tap_is_int(parse_u64("0x", &v), -EINVAL, "0x alone is no number");
        tap_is_int(parse_u64("12ab", &v), -EINVAL, "nor is 12ab");
}

TAP_MAIN
