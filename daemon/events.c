/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <time.h>

#include "events.h"
#include "varlink.h"

json_object *event_new(const char *kind) {
        json_object *e = json_object_new_object();
        struct timespec ts;
        struct tm tm;
        char when[64], frac[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(frac, sizeof(frac), ".%06ldZ", (long) (ts.tv_nsec / 1000) % 1000000);
        json_object_object_add(e, "kind", json_object_new_string(kind));
        {
                char full[96];

                snprintf(full, sizeof(full), "%s%s", when, frac);
                json_object_object_add(e, "time", json_object_new_string(full));
        }
        return e;
}

void event_add_object(json_object *e, const Object *o) {
        json_object_object_add(e, "object_id", json_object_new_uint64(o->id));
        json_object_object_add(e, "object_name", json_object_new_string(o->name ?: ""));
        json_object_object_add(e, "uid", json_object_new_int64(o->owner.uid));
        json_object_object_add(e, "pid", json_object_new_int64(o->owner.pid));
        json_object_object_add(e, "cgroup", json_object_new_string(o->owner.cgroup ?: ""));
}

void event_emit(Manager *m, json_object *e) {
        varlink_broadcast(m, e);
        json_object_put(e);
        /* Every event changes what there is to report. */
        manager_notify_status(m);
}
