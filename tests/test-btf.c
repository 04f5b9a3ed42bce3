/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The BTF cache and the CO-RE planner through a real daemon: ListBTF,
 * DescribeType, relocation reports checked against kernel BTF, Check
 * against a registered external BTF, and the differential test: every test
 * object loaded through the daemon (minimal BTF) and through plain libbpf
 * (full kernel BTF) gives byte-identical xlated programs, map ids aside.
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "libbpf-log.h"
#include "macro.h"
#include "protocol.h"
#include "tap.h"

static TestDaemon d;
static uint32_t *progs_before;
static size_t n_progs_before;
static struct btf *vmlinux;

/* Byte offset of member name in struct sname of btf, -1 if none (top level, named members). */
static int64_t member_offset(const struct btf *btf, const char *sname, const char *name) {
        int id = btf__find_by_name_kind(btf, sname, BTF_KIND_STRUCT);
        const struct btf_type *t = id > 0 ? btf__type_by_id(btf, (uint32_t) id) : NULL;

        for (int i = 0; t && i < btf_vlen(t); i++)
                if (strcmp(btf__name_by_offset(btf, btf_members(t)[i].name_off), name) == 0)
                        return btf_member_bit_offset(t, (uint32_t) i) / 8;
        return -1;
}

static json_object *find_relocation(json_object *relos, const char *kind, const char *type, const char *access) {
        size_t n = relos ? json_object_array_length(relos) : 0;

        for (size_t i = 0; i < n; i++) {
                json_object *r = json_object_array_get_idx(relos, i);

                if (strcmp(json_str(r, "kind"), kind) == 0 && strcmp(json_str(r, "type"), type) == 0 &&
                    strcmp(json_str(r, "access"), access) == 0)
                        return r;
        }
        return NULL;
}

TEST(start) {
        if (geteuid() != 0)
                tap_skip_all("needs root (CAP_BPF, CAP_SYS_ADMIN) to load BPF programs");
        vmlinux = btf__load_vmlinux_btf();
        if (!vmlinux)
                tap_skip_all("this kernel has no /sys/kernel/btf/vmlinux");
        if (kernel_prog_ids(&progs_before, &n_progs_before) < 0)
                tap_skip_all("cannot enumerate BPF programs: no CAP_SYS_ADMIN here");
        if (!tap_is_int(daemon_start(&d), 0, "daemon starts")) {
                daemon_dump_log(&d);
                tap_bail("no daemon");
        }
}

TEST(list_btf) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *list, *v;
        struct stat st;

        tap_is_int(call(&d, "io.bpfcored.ListBTF", NULL, NULL, 0, &r), 0, "ListBTF answers");
        json_object_object_get_ex(r.parameters, "btf", &list);
        v = array_find_name(list, "vmlinux");
        tap_ok(v != NULL, "vmlinux is in the cache");
        tap_ok(json_int(v, "id") > 0, "with the kernel's BTF id");
        tap_is_int(json_int(v, "types"), btf__type_cnt(vmlinux) - 1, "with every type of kernel BTF");
        stat("/sys/kernel/btf/vmlinux", &st);
        tap_is_int(json_int(v, "bytes"), st.st_size, "its size is the sysfs file's");
        tap_is_str(json_str(v, "origin"), "kernel", "origin kernel");
}

TEST(describe_type) {
        _cleanup_reply_ BpfcoreReply r = {}, none = {}, e = {};
        json_object *p = json_tokener_parse("{\"name\":\"task_struct\",\"kind\":\"struct\"}"), *type, *members;

        call(&d, "io.bpfcored.DescribeType", p, NULL, 0, &r);
        json_object_put(p);
        json_object_object_get_ex(r.parameters, "type", &type);
        tap_is_str(json_str(type, "kind"), "struct", "task_struct is a struct");
        json_object_object_get_ex(type, "members", &members);
        tap_is_int(json_int(array_find_name(members, "pid"), "offset"), member_offset(vmlinux, "task_struct", "pid"),
                   "member pid at the kernel's offset");
        tap_ok(strstr(json_str(type, "c"), "pid_t pid;") != NULL, "C rendering declares pid_t pid;");

        p = json_tokener_parse("{\"name\":\"task_state_bpfcored_nonesuch\"}");
        call(&d, "io.bpfcored.DescribeType", p, NULL, 0, &none);
        json_object_put(p);
        tap_is_str(reply_error(&none), "InvalidParameter", "an unknown type is InvalidParameter");

        p = json_tokener_parse("{\"name\":\"bpf_map_type\",\"kind\":\"enum\"}");
        call(&d, "io.bpfcored.DescribeType", p, NULL, 0, &e);
        json_object_put(p);
        json_object_object_get_ex(e.parameters, "type", &type);
        json_object_object_get_ex(type, "enumerators", &members);
        tap_is_int(json_int(array_find_name(members, "BPF_MAP_TYPE_HASH"), "value"), BPF_MAP_TYPE_HASH,
                   "enum bpf_map_type has BPF_MAP_TYPE_HASH = 1");
}

TEST(relocation_report) {
        _cleanup_reply_ BpfcoreReply r = {}, s = {};
        json_object *relos = NULL, *pid, *tgid, *counters;

        load_object(&d, "tp_core", NULL, &r);
        if (!tap_is_str(reply_error(&r), "", "tp_core loads through the planner")) {
                tap_diag("%s", json_object_to_json_string(r.parameters));
                daemon_dump_log(&d);
                return;
        }
        relos = object_get(&r, "relocations");
        tap_ok(relos && json_object_array_length(relos) >= 3, "Load reports its CO-RE relocations");
        pid = find_relocation(relos, "field_byte_offset", "task_struct", "pid");
        tgid = find_relocation(relos, "field_byte_offset", "task_struct", "tgid");
        tap_ok(pid && json_object_get_boolean(json_object_object_get(pid, "ok")), "task_struct.pid resolved");
        tap_is_int(json_int(pid, "target"), member_offset(vmlinux, "task_struct", "pid"),
                   "its target is pid's offset in kernel BTF");
        tap_is_int(json_int(tgid, "target"), member_offset(vmlinux, "task_struct", "tgid"),
                   "tgid's target is tgid's offset in kernel BTF");
        tap_is_str(json_str(pid, "btf"), "vmlinux", "the target came from vmlinux");
        tap_is_str(json_str(pid, "program"), "handle_exec", "relocation names its program");
        tap_ok(find_relocation(relos, "field_byte_offset", "task_struct", "real_parent") != NULL,
               "the pointer chase real_parent is reported");

        call(&d, "io.bpfcored.Status", NULL, NULL, 0, &s);
        json_object_object_get_ex(s.parameters, "counters", &counters);
        tap_ok(json_int(counters, "planned_loads") >= 1, "Status counts the load as planned");
        tap_is_int(json_int(counters, "fallback_loads"), 0, "no fallback to the whole kernel BTF");
        if (object_int(&r, "id") > 0)
                (void) unload_object(&d, (uint64_t) object_int(&r, "id"));
}

static int check_object(const char *name, const char *btf, BpfcoreReply *ret) {
        _cleanup_free_ char *path = harness_object_path(name);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        json_object *p = json_object_new_object();
        int r;

        json_object_object_add(p, "fd", json_object_new_int(0));
        if (btf)
                json_object_object_add(p, "btf", json_object_new_string(btf));
        r = call(&d, "io.bpfcored.Check", p, &fd, 1, ret);
        json_object_put(p);
        return r;
}

/* A kernel that never was: task_struct with pid and tgid where no real kernel has them. */
static int write_fake_kernel(const char *path) {
        struct btf *b = btf__new_empty();
        const void *raw;
        uint32_t size;
        int s32, u64, ts, ptr, fd, r = 0;

        s32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
        u64 = btf__add_int(b, "long long unsigned int", 8, 0);
        /* Fields go to the type added last: the pointer comes first, to the struct's id-to-be. */
        ptr = btf__add_ptr(b, u64 + 2);
        ts = btf__add_struct(b, "task_struct", 4096);
        btf__add_field(b, "flags", u64, 0, 0);
        btf__add_field(b, "real_parent", ptr, 64 * 8, 0);
        btf__add_field(b, "pid", s32, 100 * 8, 0);
        btf__add_field(b, "tgid", s32, 200 * 8, 0);
        if (ts != u64 + 2 || ptr < 0)
                r = -EINVAL;
        raw = btf__raw_data(b, &size);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (r == 0 && (fd < 0 || write(fd, raw, size) != (ssize_t) size))
                r = -EIO;
        safe_close(fd);
        btf__free(b);
        return r;
}

static bool btf_listed(const char *name) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *list = NULL;

        call(&d, "io.bpfcored.ListBTF", NULL, NULL, 0, &r);
        json_object_object_get_ex(r.parameters, "btf", &list);
        return array_find_name(list, name) != NULL;
}

static bool wait_listed(const char *name, bool want) {
        for (int i = 0; i < 200; i++) {
                if (btf_listed(name) == want)
                        return true;
                usleep(10000);
        }
        return false;
}

/* Raw BTF with the given types, written to path. */
static int write_btf(struct btf *b, const char *path) {
        uint32_t size;
        const void *raw = btf__raw_data(b, &size);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;

        if (!raw || fd < 0 || write(fd, raw, size) != (ssize_t) size)
                r = -EIO;
        safe_close(fd);
        btf__free(b);
        return r;
}

/* Two task_structs that disagree on where pid is: libbpf refuses such a target. */
static int write_ambiguous_kernel(const char *path) {
        struct btf *b = btf__new_empty();
        int s32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);

        for (int i = 0; i < 2; i++) {
                btf__add_struct(b, "task_struct", 4096);
                btf__add_field(b, "pid", s32, (uint32_t) (100 + 8 * i) * 8, 0);
                btf__add_field(b, "tgid", s32, 200 * 8, 0);
        }
        return write_btf(b, path);
}

TEST(check_against_external_btf) {
        _cleanup_reply_ BpfcoreReply host = {}, fake = {}, missing = {};
        char path[256];
        json_object *relos;

        tap_is_int(check_object("tp_core", NULL, &host), 0, "Check answers");
        tap_ok(json_object_get_boolean(json_object_object_get(host.parameters, "ok")), "tp_core checks OK on this kernel");

        snprintf(path, sizeof(path), "%s/fake-kernel.btf", d.btf_dir);
        tap_is_int(write_fake_kernel(path), 0, "external BTF written to the BTF directory");
        tap_ok(wait_listed("fake-kernel", true), "the daemon registers it without a restart");

        check_object("tp_core", "fake-kernel", &fake);
        json_object_object_get_ex(fake.parameters, "relocations", &relos);
        tap_is_int(json_int(find_relocation(relos, "field_byte_offset", "task_struct", "pid"), "target"), 100,
                   "against fake-kernel, pid relocates to offset 100");
        tap_is_int(json_int(find_relocation(relos, "field_byte_offset", "task_struct", "tgid"), "target"), 200,
                   "and tgid to 200");
        tap_is_str(json_str(find_relocation(relos, "field_byte_offset", "task_struct", "pid"), "btf"), "fake-kernel",
                   "the report names the external BTF");

        unlink(path);
        tap_ok(wait_listed("fake-kernel", false), "removing the file drops it from the cache");

        {
                _cleanup_reply_ BpfcoreReply amb = {};
                json_object *pid;

                snprintf(path, sizeof(path), "%s/ambiguous.btf", d.btf_dir);
                tap_is_int(write_ambiguous_kernel(path), 0, "a BTF with two disagreeing task_structs");
                tap_ok(wait_listed("ambiguous", true), "registered");
                check_object("tp_core", "ambiguous", &amb);
                tap_is_str(reply_error(&amb), "RelocationFailed", "Check against it is RelocationFailed");
                json_object_object_get_ex(amb.parameters, "relocations", &relos);
                pid = find_relocation(relos, "field_byte_offset", "task_struct", "pid");
                tap_ok(pid && strstr(json_str(pid, "error"), "ambigu"), "the pid relocation says the candidates disagree");
                unlink(path);
                wait_listed("ambiguous", false);
        }
        check_object("tp_core", "fake-kernel", &missing);
        tap_is_str(reply_error(&missing), "InvalidParameter", "Check against an unknown BTF is InvalidParameter");

        /* Long names that differ only at their end: each plan is its own BTF's, the plan cache keeps them
         * apart. */
        {
                _cleanup_reply_ BpfcoreReply a = {}, b = {};
                char name_a[128], name_b[128], long_path[512];

                memset(name_a, 'l', 120);
                memcpy(name_a + 120, "-a", 3);
                memcpy(name_b, name_a, 123);
                name_b[121] = 'b';
                snprintf(long_path, sizeof(long_path), "%s/%s.btf", d.btf_dir, name_a);
                tap_is_int(write_fake_kernel(long_path), 0, "external BTF with a 122-character name");
                tap_ok(wait_listed(name_a, true), "registered");
                check_object("tp_core", name_a, &a);
                tap_is_str(reply_error(&a), "", "Check against it answers");
                check_object("tp_core", name_b, &b);
                tap_is_str(
                        reply_error(&b), "InvalidParameter",
                        "Check against a name that differs in its last character only is InvalidParameter");
                unlink(long_path);
                wait_listed(name_a, false);
        }
}

/* The application's own struct, as its BTF (from a -g build) would describe it. */
static int write_app_btf(const char *path) {
        struct btf *b = btf__new_empty();
        int s32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
        int s64 = btf__add_int(b, "long", 8, BTF_INT_SIGNED);

        btf__add_struct(b, "bpfcored_app_conf", 32);
        btf__add_field(b, "version", s32, 0, 0);
        btf__add_field(b, "flags", s64, 64, 0);
        btf__add_field(b, "limit", s64, 128, 0);
        return write_btf(b, path);
}

TEST(user_btf) {
        _cleanup_reply_ BpfcoreReply without = {}, with = {}, loaded = {}, bad = {};
        _cleanup_free_ char *obj_path = harness_object_path("user_core");
        char btf_path[256];
        json_object *p, *relos, *limit;
        int fds[2];

        snprintf(btf_path, sizeof(btf_path), "%s/app.btf", d.tmpdir);
        tap_is_int(write_app_btf(btf_path), 0, "an application's BTF");

        fds[0] = open(obj_path, O_RDONLY | O_CLOEXEC);
        fds[1] = open(btf_path, O_RDONLY | O_CLOEXEC);
        p = json_tokener_parse("{\"fd\":0}");
        call(&d, "io.bpfcored.Check", p, fds, 1, &without);
        json_object_object_get_ex(without.parameters, "relocations", &relos);
        limit = find_relocation(relos, "field_byte_offset", "bpfcored_app_conf", "limit");
        tap_ok(limit && !json_object_get_boolean(json_object_object_get(limit, "ok")),
               "without the application's BTF, its struct has no candidate");

        json_object_object_add(p, "btf_fd", json_object_new_int(1));
        call(&d, "io.bpfcored.Check", p, fds, 2, &with);
        json_object_object_get_ex(with.parameters, "relocations", &relos);
        limit = find_relocation(relos, "field_byte_offset", "bpfcored_app_conf", "limit");
        tap_is_int(json_int(limit, "target"), 16, "with it (btf_fd), limit relocates to the application's offset 16");
        tap_is_str(json_str(limit, "btf"), "user", "the report names the user BTF");

        call(&d, "io.bpfcored.Load", p, fds, 2, &loaded);
        tap_is_str(reply_error(&loaded), "", "the uprobe object loads with the merged target");
        if (object_int(&loaded, "id") > 0)
                (void) unload_object(&d, (uint64_t) object_int(&loaded, "id"));

        close(fds[1]);
        fds[1] = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
        call(&d, "io.bpfcored.Check", p, fds, 2, &bad);
        tap_is_str(reply_error(&bad), "InvalidParameter", "a btf_fd that is not BTF is InvalidParameter");
        tap_is_str(json_str(bad.parameters, "parameter"), "btf_fd", "naming btf_fd");
        json_object_put(p);
        close(fds[0]);
        close(fds[1]);
}

/* The program's xlated instructions with map ids zeroed (they differ between two loads). */
static int xlated(uint32_t prog_id, struct bpf_insn **ret, size_t *ret_n) {
        struct bpf_prog_info info = {};
        __u32 len = sizeof(info);
        struct bpf_insn *insns;
        int fd, r;

        fd = bpf_prog_get_fd_by_id(prog_id);
        if (fd < 0)
                return -errno;
        r = bpf_prog_get_info_by_fd(fd, &info, &len);
        if (r < 0) {
                close(fd);
                return r;
        }
        insns = calloc(1, info.xlated_prog_len ?: 1);
        *ret_n = info.xlated_prog_len / sizeof(struct bpf_insn);
        info = (struct bpf_prog_info) { .xlated_prog_len = (__u32) (*ret_n * sizeof(struct bpf_insn)),
                                        .xlated_prog_insns = (uintptr_t) insns };
        len = sizeof(info);
        r = bpf_prog_get_info_by_fd(fd, &info, &len);
        close(fd);
        if (r < 0) {
                free(insns);
                return r;
        }
        for (size_t i = 0; i + 1 < *ret_n; i++)
                if (insns[i].code == (BPF_LD | BPF_IMM | BPF_DW)) {
                        if (insns[i].src_reg == BPF_PSEUDO_MAP_FD || insns[i].src_reg == BPF_PSEUDO_MAP_VALUE ||
                            insns[i].src_reg == BPF_PSEUDO_MAP_IDX || insns[i].src_reg == BPF_PSEUDO_MAP_IDX_VALUE)
                                insns[i].imm = 0;
                        i++;
                }
        *ret = insns;
        return 0;
}

static uint32_t prog_map_count(uint32_t prog_id) {
        struct bpf_prog_info info = {};
        __u32 len = sizeof(info);
        int fd = bpf_prog_get_fd_by_id(prog_id);

        if (fd < 0)
                return UINT32_MAX;
        if (bpf_prog_get_info_by_fd(fd, &info, &len) < 0)
                info.nr_map_ids = UINT32_MAX;
        close(fd);
        return info.nr_map_ids;
}

/*
 * The daemon's report of a load next to libbpf's debug log of the same
 * object: one report entry for each relocation libbpf handled, the value it
 * patched for each the report calls resolved, a poisoned instruction for
 * each it calls poisoned. Matched by program and instruction.
 */
static void report_as_libbpf_patched(const char *name, BpfcoreReply *r, const char *log) {
        json_object *relos = object_get(r, "relocations");
        size_t n = relos ? json_object_array_length(relos) : 0, differ = 0;
        _cleanup_free_ LibbpfRelo *patched = NULL;
        size_t n_patched = libbpf_log_relocations(log, &patched);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(relos, i), *v;
                const char *prog = json_str(e, "program") ?: "";
                long long insn = json_int(e, "insn");
                bool poisoned = json_object_object_get_ex(e, "poisoned", &v) && json_object_get_boolean(v);
                bool ok = json_object_get_boolean(json_object_object_get(e, "ok"));
                const LibbpfRelo *p = NULL;

                for (size_t k = 0; k < n_patched && !p; k++)
                        if (patched[k].insn == insn && strcmp(patched[k].prog, prog) == 0)
                                p = &patched[k];
                /* libbpf logs values as u64: a negative enumerator is 2^64 - x there, as in the report */
                if (p && (p->verdict == LIBBPF_POISONED ? poisoned
                                                        : p->verdict == LIBBPF_PATCHED && ok && !poisoned &&
                                                                  p->value == (uint64_t) json_int(e, "target")))
                        continue;
                differ++;
                tap_diag("%s: %s insn %lld (%s %s): libbpf %s", name, prog, insn, json_str(e, "kind") ?: "",
                         json_str(e, "access") ?: "", p ? "did otherwise" : "did not patch it");
        }
        tap_ok(differ == 0 && n == n_patched,
               "%s: the report's %zu relocations are the %zu libbpf patched or poisoned, with its values", name, n,
               n_patched);
}

static void differential(const char *name) {
        _cleanup_reply_ BpfcoreReply r = {};
        _cleanup_free_ char *path = harness_object_path(name);
        char pin_root[256];
        struct bpf_object *obj;
        struct bpf_program *prog;
        size_t compared = 0, equal = 0, same_maps = 0;

        load_object(&d, name, NULL, &r);
        if (!tap_is_str(reply_error(&r), "", "%s loads through the daemon", name)) {
                tap_diag("%s", json_object_to_json_string(r.parameters));
                return;
        }
        /* Plain libbpf with full kernel BTF; pinned-by-name maps kept inside our own bpffs root. */
        snprintf(pin_root, sizeof(pin_root), "%s/libbpf-%s", d.bpffs_root, name);
        mkdir(pin_root, 0700);
        LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root);
        _cleanup_free_ char *log = NULL;
        size_t log_size = 0;
        libbpf_print_fn_t old;
        int loaded;

        old = libbpf_log_begin(&log, &log_size);
        obj = bpf_object__open_file(path, &opts);
        loaded = obj ? bpf_object__load(obj) : -errno;
        libbpf_log_end(old);
        if (!tap_ok(obj && loaded == 0, "%s loads through plain libbpf", name)) {
                bpf_object__close(obj);
                rmdir(pin_root);
                (void) unload_object(&d, (uint64_t) object_int(&r, "id"));
                return;
        }
        report_as_libbpf_patched(name, &r, log ?: "");
        bpf_object__for_each_program(prog, obj) {
                json_object *mine = array_find_name(object_get(&r, "programs"), bpf_program__name(prog));
                struct bpf_prog_info info = {};
                __u32 len = sizeof(info);
                struct bpf_insn *a = NULL, *b = NULL;
                size_t na = 0, nb = 0;

                if (bpf_prog_get_info_by_fd(bpf_program__fd(prog), &info, &len) < 0 || !mine)
                        continue;
                compared++;
                if (xlated((uint32_t) json_int(mine, "id"), &a, &na) == 0 && xlated(info.id, &b, &nb) == 0 &&
                    na == nb && memcmp(a, b, na * sizeof(*a)) == 0)
                        equal++;
                else
                        tap_diag("%s: program %s differs (%zu vs %zu insns)", name, bpf_program__name(prog), na, nb);
                /* Bound maps included (libbpf binds .rodata to every program). */
                if (prog_map_count((uint32_t) json_int(mine, "id")) == info.nr_map_ids)
                        same_maps++;
                else
                        tap_diag("%s: program %s uses other maps than libbpf's", name, bpf_program__name(prog));
                free(a);
                free(b);
        }
        tap_ok(compared > 0 && compared == equal, "%s: all %zu programs byte-identical xlated with plain libbpf", name,
               compared);
        tap_ok(same_maps == compared, "%s: each using as many maps as libbpf's", name);
        bpf_object__unpin_maps(obj, NULL);
        bpf_object__close(obj);
        rmdir(pin_root);
        if (object_int(&r, "id") > 0)
                (void) unload_object(&d, (uint64_t) object_int(&r, "id"));
}

TEST(differential) {
        static const char *const objects[] = { "tp_core", "globals", "xdp_pass", "pinned", "many_core", "netmon",
                                               "secmon", "tp_btf", "ksyms", "module_kfunc", "tailcalls" };

        for (size_t i = 0; i < ELEMENTSOF(objects); i++)
                differential(objects[i]);
}

TEST(no_fallbacks) {
        _cleanup_reply_ BpfcoreReply s = {};
        json_object *counters = NULL;

        /* tp_btf and ksyms included: attach targets and kfuncs came from the cache. */
        call(&d, "io.bpfcored.Status", NULL, NULL, 0, &s);
        json_object_object_get_ex(s.parameters, "counters", &counters);
        tap_is_int(json_int(counters, "fallback_loads"), 0, "no load fell back to the whole kernel BTF");
        tap_ok(json_int(counters, "plan_cache_hits") >= 1, "plans were served from the plan cache");
}

/*
 * No load reads kernel BTF: a daemon whose /sys/kernel/btf/vmlinux is an empty file (its cache comes from a
 * copy) loads every object, tp_btf included. A libbpf that parsed kernel BTF itself would fail here.
 */
TEST(kernel_btf_never_read) {
        static const char *const objects[] = { "tp_core", "globals", "xdp_pass", "pinned", "many_core", "netmon",
                                               "secmon", "tp_btf", "ksyms", "module_kfunc", "tailcalls" };
        _cleanup_reply_ BpfcoreReply status = {};
        json_object *counters = NULL;
        TestDaemon h = {};
        _cleanup_free_ char *raw = NULL;
        size_t size = 0;
        int fd;

        if (daemon_start(&h) < 0 || daemon_stop(&h) != 0) {
                tap_ok(false, "a second daemon starts");
                daemon_cleanup(&h);
                return;
        }
        snprintf(h.vmlinux_btf, sizeof(h.vmlinux_btf), "%s/vmlinux.btf", h.tmpdir);
        fd = read_file("/sys/kernel/btf/vmlinux", &raw, &size) < 0
                     ? -1
                     : open(h.vmlinux_btf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        tap_ok(fd >= 0 && write(fd, raw, size) == (ssize_t) size, "kernel BTF copied (%zu bytes)", size);
        if (fd >= 0)
                close(fd);
        if (!tap_is_int(daemon_start(&h), 0, "daemon starts with /sys/kernel/btf/vmlinux hidden")) {
                daemon_dump_log(&h);
                daemon_cleanup(&h);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(objects); i++) {
                _cleanup_reply_ BpfcoreReply r = {};

                load_object(&h, objects[i], NULL, &r);
                if (!tap_is_str(reply_error(&r), "", "%s loads without kernel BTF readable", objects[i]))
                        tap_diag("%s", r.parameters ? json_object_to_json_string(r.parameters) : "no reply");
                (void) unload_object(&h, (uint64_t) object_int(&r, "id"));
        }
        /* ksyms' kfuncs: libbpf asked for kernel BTF and was handed the cache's. */
        call(&h, "io.bpfcored.Status", NULL, NULL, 0, &status);
        json_object_object_get_ex(status.parameters, "counters", &counters);
        tap_ok(json_int(counters, "kernel_btf_served") >= 1, "libbpf got kernel BTF from the cache (%lld times)",
               (long long) json_int(counters, "kernel_btf_served"));
        /* and found its four kfuncs in the cache's index, not by walking vmlinux's types */
        tap_ok(json_int(counters, "kernel_btf_lookups") >= 4, "libbpf's kfunc lookups answered by the index (%lld)",
               (long long) json_int(counters, "kernel_btf_lookups"));
        daemon_cleanup(&h);
}

TEST(many_relocations) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *relos;
        size_t n, ok = 0;

        check_object("many_core", NULL, &r);
        json_object_object_get_ex(r.parameters, "relocations", &relos);
        n = relos ? json_object_array_length(relos) : 0;
        for (size_t i = 0; i < n; i++)
                ok += json_object_get_boolean(json_object_object_get(json_object_array_get_idx(relos, i), "ok"));
        tap_ok(n >= 300, "many_core has hundreds of relocations (%zu)", n);
        tap_is_int(ok, n, "all of them resolve on this kernel");
}

/*
 * secmon's object JSON is ~310 KB (1941 relocations): a few dozen of them
 * are more than one message may carry. List without "more" says so
 * (TooLarge); with "more" they come in batches of ~1 MiB, each made once
 * the last is sent, from the ids the List found (an object unloaded
 * meanwhile is left out); and `bpfcorectl list` shows them all.
 */
TEST(list_in_batches) {
        enum { MAX = 96 };
        _cleanup_reply_ BpfcoreReply first = {}, whole = {};
        _cleanup_free_ char *out = NULL;
        BpfcoreClient *c = NULL;
        json_object *obj;
        uint64_t ids[MAX] = {};
        size_t n, size, loaded = 0, replies = 0, mine = 0, gone_listed = 0, lines = 0;

        /* As many as take 16 MiB and three more, from the size of one. */
        load_object(&d, "secmon", NULL, &first);
        obj = first.error ? NULL : json_object_object_get(first.parameters, "object");
        size = obj ? strlen(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN)) : 0;
        n = size > 0 ? VL_MAX_MESSAGE / size + 3 : 0;
        if (!tap_ok(n > 3 && n <= MAX, "secmon's JSON takes %zu bytes: %zu of them are over 16 MiB", size, n))
                goto done;
        ids[loaded++] = (uint64_t) object_int(&first, "id");
        while (loaded < n) {
                _cleanup_reply_ BpfcoreReply r = {};

                if (load_object(&d, "secmon", NULL, &r) < 0 || r.error)
                        break;
                ids[loaded++] = (uint64_t) object_int(&r, "id");
        }
        if (!tap_is_int(loaded, n, "%zu secmon objects loaded", n))
                goto done;

        call(&d, "io.bpfcored.List", NULL, NULL, 0, &whole);
        tap_is_str(reply_error(&whole), "TooLarge", "List without \"more\" is TooLarge");
        tap_ok(strstr(json_str(whole.parameters, "message") ?: "", "\"more\""), "and says to ask with \"more\": %s",
               json_str(whole.parameters, "message") ?: "");

        if (tap_ok(bpfcore_connect(d.socket_path, &c) >= 0, "connected")) {
                BpfcoreReply part = {};

                for (int rc = bpfcore_call_more(c, "io.bpfcored.List", NULL, &part); rc >= 0 && !part.error;
                     rc = bpfcore_next_reply(c, &part)) {
                        json_object *objects = NULL;
                        bool more = part.continues;

                        replies++;
                        if (json_object_object_get_ex(part.parameters, "objects", &objects))
                                for (size_t i = 0; i < json_object_array_length(objects); i++) {
                                        uint64_t id = (uint64_t) json_int(json_object_array_get_idx(objects, i), "id");

                                        for (size_t k = 0; k + 1 < n; k++)
                                                mine += ids[k] == id;
                                        gone_listed += ids[n - 1] == id;
                                }
                        bpfcore_reply_done(&part);
                        /* The last object is batches away: unloaded now, it is not in the list. */
                        if (replies == 1)
                                tap_is_str(unload_object(&d, ids[n - 1]), "", "the last one unloaded after the first batch");
                        if (!more)
                                break;
                }
                bpfcore_reply_done(&part);
                bpfcore_disconnect(c);
        }
        tap_is_int(mine, n - 1, "List with \"more\" has each of the others once");
        tap_is_int(gone_listed, 0, "and not the one unloaded meanwhile");
        /* ~17 MB in replies of a little over 1 MiB each */
        tap_ok(replies >= 8, "in %zu replies", replies);

        tap_is_int(run_ctl(&d, &out, NULL, "list", NULL), 0, "bpfcorectl list succeeds");
        for (const char *p = out; p && *p; p++)
                lines += *p == '\n';
        tap_ok(lines >= n, "and shows all %zu (%zu lines)", n - 1, lines);
done:
        for (size_t i = 0; i < loaded; i++)
                (void) unload_object(&d, ids[i]); /* the one unloaded already: NoSuchObject */
        if (loaded == 0 && object_int(&first, "id") > 0)
                (void) unload_object(&d, (uint64_t) object_int(&first, "id"));
}

TEST(parser_worker_confined) {
        _cleanup_reply_ BpfcoreReply crashed = {}, status = {}, fine = {};

        /* A parser that crashes on an object takes only that request down. */
        tap_is_int(daemon_stop(&d), 0, "daemon stopped");
        setenv("BPFCORED_TEST_WORKER_FAULT", "crash", 1);
        tap_is_int(daemon_start(&d), 0, "daemon started with a worker that crashes");
        unsetenv("BPFCORED_TEST_WORKER_FAULT");
        check_object("xdp_pass", NULL, &crashed);
        tap_is_str(reply_error(&crashed), "InvalidObject", "the request is InvalidObject");
        tap_ok(strstr(json_str(crashed.parameters, "message"), "object parser crashed (signal") != NULL,
               "saying the object parser crashed (%s)", json_str(crashed.parameters, "message"));
        tap_is_int(call(&d, "io.bpfcored.Status", NULL, NULL, 0, &status), 0, "the daemon carries on");
        tap_is_int(daemon_stop(&d), 0, "daemon stopped");
        tap_is_int(daemon_start(&d), 0, "and started with a sound worker");
        check_object("xdp_pass", NULL, &fine);
        tap_ok(json_object_get_boolean(json_object_object_get(fine.parameters, "ok")), "objects plan again");
}

TEST(cleanup) {
        daemon_cleanup(&d);
        tap_is_int(kernel_programs_left(progs_before, n_progs_before), 0,
                   "nothing this test loaded is left in the kernel");
        free(progs_before);
        btf__free(vmlinux);
}

TAP_MAIN
