/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Map keys and values as JSON, typed by the map's BTF: what MapDump,
 * MapLookup and MapUpdate speak. The forms follow the "formatted" part of
 * `bpftool map dump -j`:
 *
 *   integers      numbers, signed or unsigned by their BTF encoding;
 *                 16-byte integers as a "0x…" string of their bits
 *   bool          true / false
 *   char[N]       a string when the bytes up to the first NUL are printable
 *                 (a NUL is needed; bytes after it are not shown), otherwise
 *                 an array of numbers
 *   arrays        arrays, nested arrays nested
 *   struct/union  objects of member names
 *   enums         the enumerator's name, a number when none matches
 *   pointers      numbers
 *   floats        numbers (4 and 8 bytes)
 *   .bss/.data/.rodata values (DATASEC)  an object of variable names
 *   per-CPU maps  the value is an array, one value per possible CPU
 *   anything the codec cannot type (no BTF, a broken or unsupported type)
 *                 {"hex": "0a000000"}: the bytes in memory order, two
 *                 lowercase digits each, no separators
 *
 * Deliberate differences from bpftool: bitfields are numbers (bpftool:
 * "0x…" strings of their bits); members of anonymous structs and unions
 * are inlined into the enclosing object (bpftool nests them under "");
 * per-CPU values are a plain array (bpftool: [{"cpu": i, "value": …}]);
 * DATASEC values are one object (bpftool: {".bss": [{"var": …}, …]});
 * floats decode (bpftool prints "(unsupported-kind"); an enum value with
 * no enumerator is signed or unsigned by the enum's BTF (bpftool: always
 * signed); keys and values without BTF are {"hex": …} (bpftool: an array
 * of "0x0a" strings, and no "formatted").
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

/* How to read one map's keys and values. */
typedef struct MapCodec MapCodec;

/*
 * From the map's info and the BTF the kernel holds for it. Maps without
 * BTF (or a key or value without a BTF type) decode as hex.
 */
int map_codec_new(int map_fd, MapCodec **ret);
MapCodec *map_codec_free(MapCodec *c);
static inline void map_codec_freep(MapCodec **c) {
        map_codec_free(*c);
}

/* key is map_codec_key_size() bytes, value map_codec_value_size(). NULL only when out of memory. */
json_object *map_codec_key_to_json(const MapCodec *c, const void *key);
json_object *map_codec_value_to_json(const MapCodec *c, const void *value);

/*
 * Encodes j (the forms above; {"hex": "…"} of the exact size for any type;
 * "0x…" strings for any integer) into key/value. Members, elements and
 * variables j leaves out keep what the buffer holds: zero it for a new
 * entry, or fill it by a lookup to change part of one. A char array given
 * a string is NUL-padded. Members of a union (or overlapping members) given
 * together must agree. Per-CPU values take an array with exactly one value
 * per possible CPU. On a mismatch: -EINVAL, the buffer untouched, and a
 * message naming the place, "value.inner.comm: string of 20 bytes too long
 * for char[16]".
 */
int map_codec_key_from_json(const MapCodec *c, json_object *j, void *key, char **ret_message);
int map_codec_value_from_json(const MapCodec *c, json_object *j, void *value, char **ret_message);

size_t map_codec_key_size(const MapCodec *c);
/* The whole lookup/update buffer: per-CPU maps hold possible CPUs × value size rounded up to 8. */
size_t map_codec_value_size(const MapCodec *c);

/* Where a walk of a map's entries is (map_codec_dump_step()), to go on with it later. */
typedef struct MapDumpCursor {
        uint8_t *key, *next_key, *value;
        uint32_t visited; /* array index, or keys walked */
        size_t n;         /* entries passed to fn */
        /* hash maps: a walk in batches, from a bucket token */
        uint8_t *batch_keys, *batch_values;
        size_t batch_cap;
        uint64_t batch_in, batch_out;
        bool batch_started, batch_end, no_batches;
} MapDumpCursor;
void map_dump_cursor_done(MapDumpCursor *cur);
/*
 * Walks the map's entries from cur, calling fn for each, up to limit in all (0: no limit), with the key
 * and value borrowed (json_object_get() to keep them); a negative return from fn stops the walk and is
 * returned. A step passes step entries (0: to the end; more when a hash map's bucket holds more, as
 * buckets are not split; limit is exact). Arrays are walked by index, hash maps bucket by bucket
 * (BPF_MAP_LOOKUP_BATCH: a key deleted meanwhile does not send the walk back to the start), other maps
 * by bpf_map_get_next_key() (as hash maps on kernels without batch lookups): entries deleted meanwhile
 * are skipped, and such a walk never visits more keys than max_entries (it restarts when its current
 * key is deleted). Returns 1 when the step ended with entries possibly left, 0 at the end (or at limit);
 * -EOPNOTSUPP for maps without keys (queues, stacks, ring buffers). cur->n counts the entries passed.
 */
int map_codec_dump_step(const MapCodec *c, int map_fd, MapDumpCursor *cur, size_t limit, size_t step,
                        int (*fn)(json_object *key, json_object *value, void *userdata), void *userdata);
