/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A real bpfcored on a private socket and bpffs root, real loads into this
 * machine's kernel, driven through raw varlink and through bpfcorectl.
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "varlink-io.h"
#include "macro.h"
#include "tap.h"

static TestDaemon d;
static uint32_t *progs_before;
static size_t n_progs_before;

static json_object *params_new(const char *json) {
        return json_tokener_parse(json);
}

static bool pin_exists(uint64_t id, const char *what) {
        char path[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%llu/%s", d.bpffs_root, (unsigned long long) id, what);
        return stat(path, &st) == 0;
}

static size_t count_pin_dirs_of(const TestDaemon *t) {
        size_t n = 0;
        DIR *dir;
        struct dirent *de;

        dir = opendir(t->bpffs_root);
        if (!dir)
                return 0;
        while ((de = readdir(dir)))
                n += de->d_name[0] != '.';
        closedir(dir);
        return n;
}

static size_t count_pin_dirs(void) {
        return count_pin_dirs_of(&d);
}

static void unload(uint64_t id) {
        tap_is_str(unload_object(&d, id), "", "unload of object %llu succeeds", (unsigned long long) id);
}

TEST(start) {
        int r;

        if (geteuid() != 0)
                tap_skip_all("needs root (CAP_BPF, CAP_SYS_ADMIN) to load BPF programs");
        if (kernel_prog_ids(&progs_before, &n_progs_before) < 0)
                tap_skip_all("cannot enumerate BPF programs: no CAP_SYS_ADMIN here");
        r = daemon_start(&d);
        if (!tap_is_int(r, 0, "daemon starts and answers on %s", d.socket_path)) {
                daemon_dump_log(&d);
                tap_bail("no daemon");
        }
}

TEST(status) {
        _cleanup_reply_ BpfcoreReply r = {};
        struct utsname u;

        uname(&u);
        tap_is_int(call(&d, "io.bpfcored.Status", NULL, NULL, 0, &r), 0, "Status answers");
        tap_is_str(reply_error(&r), "", "Status is no error");
        tap_is_str(json_str(r.parameters, "kernel"), u.release, "Status reports the running kernel");
        tap_is_str(json_str(r.parameters, "bpffs_root"), d.bpffs_root, "Status reports the bpffs root");
        tap_ok(json_int(r.parameters, "uptime_us") >= 0, "Status reports uptime");
}

TEST(varlink_service) {
        _cleanup_reply_ BpfcoreReply info = {}, desc = {}, bad = {};
        _cleanup_free_ char *path = NULL, *text = NULL;
        json_object *p, *ifaces;
        size_t size;

        tap_is_int(call(&d, "org.varlink.service.GetInfo", NULL, NULL, 0, &info), 0, "GetInfo answers");
        tap_ok(json_object_object_get_ex(info.parameters, "interfaces", &ifaces) &&
                       strstr(json_object_to_json_string(ifaces), "io.bpfcored"),
               "GetInfo lists io.bpfcored");

        p = params_new("{\"interface\":\"io.bpfcored\"}");
        call(&d, "org.varlink.service.GetInterfaceDescription", p, NULL, 0, &desc);
        json_object_put(p);
        if (asprintf(&path, "%s/proto/io.bpfcored.varlink", harness_env("SOURCE_ROOT")) < 0)
                abort();
        tap_is_int(read_file(path, &text, &size), 0, "interface file readable");
        tap_is_str(json_str(desc.parameters, "description"), text,
                   "GetInterfaceDescription returns proto/io.bpfcored.varlink verbatim");

        p = params_new("{\"interface\":\"com.example.nothing\"}");
        call(&d, "org.varlink.service.GetInterfaceDescription", p, NULL, 0, &bad);
        json_object_put(p);
        tap_is_str(bad.error, "org.varlink.service.InterfaceNotFound", "unknown interface is InterfaceNotFound");
}

TEST(load_get_list_unload) {
        _cleanup_reply_ BpfcoreReply r = {}, g = {}, l = {}, again = {};
        json_object *progs, *maps, *exec, *exit_prog, *hash, *objects, *p;
        struct bpf_prog_info info = {};
        struct bpf_map_info minfo = {};
        __u32 len = sizeof(info);
        uint64_t id;
        char tag[17];
        int fd;

        tap_is_int(load_object(&d, "tp_core", NULL, &r), 0, "Load answers");
        if (!tap_is_str(reply_error(&r), "", "tp_core loads")) {
                tap_diag("%s", json_object_to_json_string(r.parameters));
                return;
        }
        id = (uint64_t) object_int(&r, "id");
        tap_ok(id > 0, "object has a daemon id");
        tap_is_str(json_object_get_string(object_get(&r, "name")), "tp_core", "name derived from the file name");
        tap_ok(strncmp(json_object_get_string(object_get(&r, "digest")), "sha256:", 7) == 0 &&
                       strlen(json_object_get_string(object_get(&r, "digest"))) == 71,
               "digest is sha256:<64 hex>");
        tap_is_int(json_int(object_get(&r, "owner"), "uid"), 0, "owner uid is the caller's (root)");
        tap_is_int(json_int(object_get(&r, "owner"), "pid"), getpid(), "owner pid is the caller's");

        progs = object_get(&r, "programs");
        maps = object_get(&r, "maps");
        tap_is_int(progs ? json_object_array_length(progs) : 0, 2, "both programs loaded");
        exec = array_find_name(progs, "handle_exec");
        exit_prog = array_find_name(progs, "handle_exit");
        tap_ok(exec && exit_prog, "programs handle_exec and handle_exit reported");
        tap_is_str(json_str(exec, "type"), "tracepoint", "program type");
        tap_is_str(json_str(exec, "section"), "tracepoint/syscalls/sys_enter_execve", "program section");
        tap_ok(json_object_object_get_ex(object_get(&r, "timings_us"), "total", NULL), "timings reported");
        tap_ok(json_int(object_get(&r, "timings_us"), "total") >= json_int(object_get(&r, "timings_us"), "load") &&
                       json_int(object_get(&r, "timings_us"), "load") > 0,
               "the total covers the load (%lld >= %lld us)", (long long) json_int(object_get(&r, "timings_us"), "total"),
               (long long) json_int(object_get(&r, "timings_us"), "load"));

        /* What the kernel says about the program the daemon named. */
        fd = bpf_prog_get_fd_by_id((uint32_t) json_int(exec, "id"));
        if (tap_ok(fd >= 0, "kernel has program id %lld", (long long) json_int(exec, "id"))) {
                bpf_prog_get_info_by_fd(fd, &info, &len);
                close(fd);
                for (int i = 0; i < 8; i++)
                        sprintf(tag + 2 * i, "%02x", info.tag[i]);
                tap_is_str(json_str(exec, "tag"), tag, "tag matches the kernel's");
                tap_is_int(json_int(exec, "xlated_bytes"), info.xlated_prog_len, "xlated size matches");
                tap_is_int(json_int(exec, "verified_insns"), info.verified_insns, "verified_insns matches");
                tap_is_int(info.type, BPF_PROG_TYPE_TRACEPOINT, "kernel program type is tracepoint");
        }
        hash = array_find_name(maps, "exec_count");
        fd = hash ? bpf_map_get_fd_by_id((uint32_t) json_int(hash, "id")) : -1;
        if (tap_ok(fd >= 0, "kernel has map exec_count by the reported id")) {
                len = sizeof(minfo);
                bpf_map_get_info_by_fd(fd, &minfo, &len);
                close(fd);
                tap_is_str(minfo.name, "exec_count", "kernel map name");
                tap_is_int(json_int(hash, "max_entries"), minfo.max_entries, "max_entries matches");
                tap_is_str(json_str(hash, "type"), "hash", "map type");
        }
        tap_ok(pin_exists(id, "programs/handle_exec"), "program pinned under the bpffs root");
        tap_ok(pin_exists(id, "maps/exec_count"), "map pinned under the bpffs root");

        p = json_object_new_object();
        json_object_object_add(p, "id", json_object_new_int64((int64_t) id));
        call(&d, "io.bpfcored.Get", p, NULL, 0, &g);
        tap_is_int(object_int(&g, "id"), (int64_t) id, "Get returns the object");
        tap_is_str(json_str(array_find_name(object_get(&g, "programs"), "handle_exec"), "tag"), json_str(exec, "tag"),
                   "Get reports the same program");

        call(&d, "io.bpfcored.List", NULL, NULL, 0, &l);
        tap_ok(json_object_object_get_ex(l.parameters, "objects", &objects) && json_object_array_length(objects) == 1,
               "List shows one object");

        unload(id);
        tap_ok(kernel_prog_gone((uint32_t) json_int(exec, "id")), "program gone from the kernel after Unload");
        tap_ok(!pin_exists(id, ""), "pin directory removed");
        call(&d, "io.bpfcored.Get", p, NULL, 0, &again);
        tap_is_str(reply_error(&again), "NoSuchObject", "Get after Unload is NoSuchObject");
        json_object_put(p);
}

/* sha256sum's answer for path, as "sha256:<hex>". */
static void file_sha256(const char *path, char ret[static 72]) {
        char cmd[600], hex[80] = "";
        FILE *f;

        snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
        f = popen(cmd, "r");
        if (!f || fscanf(f, "%64s", hex) != 1)
                hex[0] = 0;
        if (f)
                pclose(f);
        snprintf(ret, 72, "sha256:%s", hex);
}

/* The digest is the file's sha256, also when it is served from what the daemon remembers of the file. */
static void load_digest(const char *path, char ret[static 80]) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *p = json_object_new_object();
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        json_object_object_add(p, "fd", json_object_new_int(0));
        call(&d, "io.bpfcored.Load", p, &fd, 1, &r);
        json_object_put(p);
        close(fd);
        snprintf(ret, 80, "%s", object_get(&r, "digest") ? json_object_get_string(object_get(&r, "digest")) : "");
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));
}

TEST(digest) {
        _cleanup_free_ char *src = harness_object_path("tp_core");
        _cleanup_free_ char *data = NULL;
        char path[256], want[72], first[80], again[80], changed[80];
        size_t size = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/digest.bpf.o", d.tmpdir);
        read_file(src, &data, &size);
        f = fopen(path, "we");
        tap_ok(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "a copy of tp_core (%zu bytes)", size);
        file_sha256(path, want);
        load_digest(path, first);
        tap_is_str(first, want, "digest is the file's sha256");
        load_digest(path, again);
        tap_is_str(again, want, "the same file loaded again: the same digest");
        /* A byte past the section headers: nothing libbpf reads, a different file. */
        f = fopen(path, "ae");
        tap_ok(f && fputc(0, f) == 0 && fclose(f) == 0, "one byte appended");
        file_sha256(path, want);
        load_digest(path, changed);
        tap_is_str(changed, want, "the changed file's digest is its new sha256");
        tap_ok(strcmp(changed, first) != 0, "and differs from the first");
        /* A byte of DWARF changed in place (the daemon reads DWARF only for a file it has not hashed). */
        {
                const Elf64_Ehdr *eh = (const Elf64_Ehdr *) data;
                const Elf64_Shdr *sh = (const Elf64_Shdr *) (data + eh->e_shoff);
                uint64_t at = 0;
                char dwarf[80];
                int fd;

                for (size_t i = 1; i < eh->e_shnum && !at; i++)
                        if (strcmp(data + sh[eh->e_shstrndx].sh_offset + sh[i].sh_name, ".debug_str") == 0)
                                at = sh[i].sh_offset + sh[i].sh_size / 2;
                fd = open(path, O_WRONLY | O_CLOEXEC);
                tap_ok(at && fd >= 0 && pwrite(fd, "~", 1, (off_t) at) == 1, "a byte of .debug_str changed");
                if (fd >= 0)
                        close(fd);
                file_sha256(path, want);
                load_digest(path, dwarf);
                tap_is_str(dwarf, want, "the digest is the file's new sha256");
        }
        unlink(path);
}

/* The socket filter programs the daemon holds fds of, and how many of them have maps bound. */
static void daemon_socket_filters(unsigned *ret_filters, unsigned *ret_bound) {
        char dir[64];
        DIR *fdinfo;
        struct dirent *de;

        snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int) d.pid);
        fdinfo = opendir(dir);
        while (fdinfo && (de = readdir(fdinfo))) {
                char path[320], line[128];
                unsigned type = 0, id = 0;
                FILE *f;

                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                f = fopen(path, "re");
                while (f && fgets(line, sizeof(line), f)) {
                        (void) sscanf(line, "prog_type: %u", &type);
                        (void) sscanf(line, "prog_id: %u", &id);
                }
                if (f)
                        fclose(f);
                if (type == BPF_PROG_TYPE_SOCKET_FILTER && id) {
                        struct bpf_prog_info info = {};
                        __u32 len = sizeof(info);
                        int fd = bpf_prog_get_fd_by_id(id);

                        (*ret_filters)++;
                        if (fd >= 0 && bpf_prog_get_info_by_fd(fd, &info, &len) == 0 && info.nr_map_ids > 0)
                                (*ret_bound)++;
                        if (fd >= 0)
                                close(fd);
                }
        }
        if (fdinfo)
                closedir(fdinfo);
}

static uint32_t program_btf_id(const BpfcoreReply *r) {
        json_object *progs = object_get(r, "programs");
        struct bpf_prog_info info = {};
        __u32 len = sizeof(info);
        int fd = progs ? bpf_prog_get_fd_by_id((uint32_t) json_int(json_object_array_get_idx(progs, 0), "id")) : -1;

        if (fd < 0)
                return 0;
        if (bpf_prog_get_info_by_fd(fd, &info, &len) < 0)
                info.btf_id = 0;
        close(fd);
        return info.btf_id;
}

/*
 * What libbpf does on every load that a daemon need not repeat: its probe
 * program (a trivial socket filter, loaded and closed to see that loading
 * works) is answered with one the daemon keeps, and the object's BTF, once
 * in the kernel, is shared by the next loads of the same plan.
 */
TEST(per_load_work_kept) {
        _cleanup_reply_ BpfcoreReply before = {}, after = {}, first = {};
        json_object *c0 = NULL, *c1 = NULL;
        uint32_t btf_id = 0;
        unsigned same_btf = 0;
        bool ok = true;

        /* A daemon's first load of an object with .rodata also runs libbpf's feature probes, one of which
         * loads the very program of the per-load probe and binds a map to it. */
        tap_ok(daemon_stop(&d) == 0 && daemon_start(&d) == 0, "a new daemon");
        {
                _cleanup_reply_ BpfcoreReply g = {};

                load_object(&d, "globals", NULL, &g);
                tap_is_str(reply_error(&g), "", "its first load (globals, with .rodata)");
                if (object_int(&g, "id") > 0)
                        unload((uint64_t) object_int(&g, "id"));
        }
        call(&d, "io.bpfcored.Status", NULL, NULL, 0, &before);
        json_object_object_get_ex(before.parameters, "counters", &c0);
        load_object(&d, "tp_core", NULL, &first);
        btf_id = program_btf_id(&first);
        for (int i = 0; i < 5; i++) {
                _cleanup_reply_ BpfcoreReply r = {};

                load_object(&d, "tp_core", NULL, &r);
                ok = ok && !r.error && object_int(&r, "id") > 0;
                same_btf += btf_id != 0 && program_btf_id(&r) == btf_id;
                if (object_int(&r, "id") > 0)
                        unload((uint64_t) object_int(&r, "id"));
        }
        if (object_int(&first, "id") > 0)
                unload((uint64_t) object_int(&first, "id"));
        tap_ok(ok, "tp_core loaded and unloaded 5 times beside a first load");
        tap_is_int(same_btf, 5, "each load's programs have the first load's BTF object (id %u)", btf_id);
        call(&d, "io.bpfcored.Status", NULL, NULL, 0, &after);
        json_object_object_get_ex(after.parameters, "counters", &c1);
        tap_ok(json_int(c1, "object_btf_reused") - json_int(c0, "object_btf_reused") >= 5,
               "Status counts the BTF reused (%lld)",
               (long long) (json_int(c1, "object_btf_reused") - json_int(c0, "object_btf_reused")));
        tap_ok(json_int(c1, "load_probes_skipped") - json_int(c0, "load_probes_skipped") >= 5,
               "libbpf's loading probe answered from the kept one (%lld times in 6 loads)",
               (long long) (json_int(c1, "load_probes_skipped") - json_int(c0, "load_probes_skipped")));
        {
                unsigned filters = 0, bound = 0;

                daemon_socket_filters(&filters, &bound);
                tap_is_int(filters, 1, "the daemon holds one kept probe program (a socket filter)");
                tap_is_int(bound, 0, "and no map was bound to it (libbpf's bind-map feature probe got its own)");
        }
}

TEST(program_subset) {
        _cleanup_reply_ BpfcoreReply r = {}, bad = {};
        json_object *progs;

        load_object(&d, "tp_core", params_new("{\"programs\":[\"handle_exec\"]}"), &r);
        progs = object_get(&r, "programs");
        tap_is_str(reply_error(&r), "", "subset loads");
        tap_is_int(progs ? json_object_array_length(progs) : 0, 1, "only one program loaded");
        tap_ok(array_find_name(progs, "handle_exec") && !array_find_name(progs, "handle_exit"),
               "it is handle_exec");
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));

        load_object(&d, "tp_core", params_new("{\"programs\":[\"no_such_prog\"]}"), &bad);
        tap_is_str(reply_error(&bad), "NoSuchProgram", "unknown program is NoSuchProgram");
        tap_is_str(json_str(bad.parameters, "program"), "no_such_prog", "error names the program");
}

/* The bytes of variable name in the loaded datasec map, read back from the kernel. */
static bool read_global(json_object *maps, const char *section, const char *name, void *ret, size_t size) {
        json_object *m = array_find_name(maps, section);
        struct bpf_map_info info = {};
        __u32 len = sizeof(info), key = 0;
        struct btf *btf = NULL;
        bool ok = false;
        int fd;

        fd = m ? bpf_map_get_fd_by_id((uint32_t) json_int(m, "id")) : -1;
        if (fd < 0)
                return false;
        if (bpf_map_get_info_by_fd(fd, &info, &len) == 0 && info.btf_id)
                btf = btf__load_from_kernel_by_id(info.btf_id);
        if (btf) {
                const struct btf_type *sec = btf__type_by_id(btf, info.btf_value_type_id);
                uint8_t *value = calloc(1, info.value_size);

                if (sec && btf_is_datasec(sec) && value && bpf_map_lookup_elem(fd, &key, value) == 0) {
                        const struct btf_var_secinfo *v = btf_var_secinfos(sec);

                        for (int i = 0; i < btf_vlen(sec); i++, v++) {
                                const struct btf_type *var = btf__type_by_id(btf, v->type);
                                if (strcmp(btf__name_by_offset(btf, var->name_off), name) == 0 && v->size == size) {
                                        memcpy(ret, value + v->offset, size);
                                        ok = true;
                                }
                        }
                }
                free(value);
                btf__free(btf);
        }
        close(fd);
        return ok;
}

TEST(globals) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *maps;
        uint32_t pid = 0;
        int64_t threshold = 0;
        uint8_t enabled = 0;
        uint32_t mode = 0;
        uint64_t data_counter = 0;
        char comm[16] = "x";

        load_object(&d, "globals",
                    params_new("{\"globals\":{\"target_pid\":4242,\"threshold\":-5,\"enabled\":true,"
                               "\"comm_filter\":\"bash\",\"mode\":\"COUNT_OVER_THRESHOLD\",\"data_counter\":99},"
                               "\"maps\":{\"settings\":{\"max_entries\":64}}}"),
                    &r);
        if (!tap_is_str(reply_error(&r), "", "globals object loads with globals and map settings")) {
                tap_diag("%s", json_object_to_json_string(r.parameters));
                return;
        }
        maps = object_get(&r, "maps");
        tap_ok(read_global(maps, ".rodata", "target_pid", &pid, sizeof(pid)) && pid == 4242,
               "u32 target_pid is 4242 in the kernel's .rodata");
        tap_ok(read_global(maps, ".rodata", "threshold", &threshold, sizeof(threshold)) && threshold == -5,
               "s64 threshold is -5");
        tap_ok(read_global(maps, ".rodata", "enabled", &enabled, sizeof(enabled)) && enabled == 1,
               "bool enabled is true");
        tap_ok(read_global(maps, ".rodata", "comm_filter", comm, sizeof(comm)) && strcmp(comm, "bash") == 0,
               "char[16] comm_filter is \"bash\"");
        tap_ok(read_global(maps, ".rodata", "mode", &mode, sizeof(mode)) && mode == 1,
               "enum mode set by enumerator name");
        tap_ok(read_global(maps, ".data", "data_counter", &data_counter, sizeof(data_counter)) &&
                       data_counter == 99,
               ".data variable set");
        tap_is_int(json_int(array_find_name(maps, "settings"), "max_entries"), 64, "map max_entries overridden");
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));
}

TEST(globals_and_maps_rejected) {
        static const struct {
                const char *params, *error, *parameter, *why;
        } cases[] = {
                { "{\"globals\":{\"target_pid\":-1}}", "InvalidParameter", "globals.target_pid", "negative into u32" },
                { "{\"globals\":{\"target_pid\":4294967296}}", "InvalidParameter", "globals.target_pid", "u32 overflow" },
                { "{\"globals\":{\"threshold\":\"many\"}}", "InvalidParameter", "globals.threshold", "string into s64" },
                { "{\"globals\":{\"comm_filter\":\"0123456789abcdef\"}}", "InvalidParameter", "globals.comm_filter",
                  "string without room for NUL" },
                { "{\"globals\":{\"mode\":\"COUNT_SOMETIMES\"}}", "InvalidParameter", "globals.mode", "unknown enumerator" },
                { "{\"globals\":{\"enabled\":2}}", "InvalidParameter", "globals.enabled", "2 into bool" },
                { "{\"globals\":{\"no_such_var\":1}}", "InvalidParameter", "globals.no_such_var", "unknown variable" },
                { "{\"globals\":{\"target_pid\":{\"hex\":\"0102\"}}}", "InvalidParameter", "globals.target_pid",
                  "hex of the wrong size" },
                { "{\"maps\":{\"nope\":{\"max_entries\":8}}}", "NoSuchMap", NULL, "unknown map" },
                { "{\"maps\":{\"settings\":{\"max_entries\":0}}}", "InvalidParameter", "maps", "zero max_entries" },
                { "{\"maps\":{\"settings\":{\"max_entries\":\"big\"}}}", "InvalidParameter", "maps", "mistyped max_entries" },
                { "{\"programs\":[]}", "InvalidParameter", "programs", "empty program list" },
                { "{\"programs\":\"count_getpid\"}", "InvalidParameter", "programs", "programs not an array" },
                { "{\"name\":\"../../etc\"}", "InvalidParameter", "name", "name with slashes" },
                { "{\"bogus\":1}", "InvalidParameter", "bogus", "unknown parameter" },
        };
        uint32_t *before, *after;
        size_t n_before, n_after, dirs = count_pin_dirs();

        kernel_prog_ids(&before, &n_before);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_reply_ BpfcoreReply r = {};

                load_object(&d, "globals", params_new(cases[i].params), &r);
                tap_is_str(reply_error(&r), cases[i].error, "%s is %s", cases[i].why, cases[i].error);
                if (cases[i].parameter)
                        tap_is_str(json_str(r.parameters, "parameter"), cases[i].parameter, "%s names %s",
                                   cases[i].why, cases[i].parameter);
        }
        kernel_prog_ids(&after, &n_after);
        tap_is_int(ids_added(before, n_before, after, n_after), 0, "failed loads leave no program behind");
        tap_is_int(count_pin_dirs(), dirs, "failed loads leave no pin directory behind");
        free(before);
        free(after);
}

TEST(xdp) {
        _cleanup_reply_ BpfcoreReply r = {};

        load_object(&d, "xdp_pass", NULL, &r);
        tap_is_str(reply_error(&r), "", "XDP object loads");
        tap_is_str(json_str(array_find_name(object_get(&r, "programs"), "xdp_count"), "type"), "xdp", "type is xdp");
        tap_is_str(json_str(array_find_name(object_get(&r, "maps"), "xdp_stats"), "type"), "percpu_array",
                   "map type percpu_array");
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));
}

TEST(pin_by_name_stays_inside) {
        _cleanup_reply_ BpfcoreReply a = {}, b = {};
        struct stat st;
        uint64_t id_a, id_b;

        load_object(&d, "pinned", NULL, &a);
        load_object(&d, "pinned", NULL, &b);
        tap_is_str(reply_error(&a), "", "first object with a pinned-by-name map loads");
        tap_is_str(reply_error(&b), "", "second one loads too");
        id_a = (uint64_t) object_int(&a, "id");
        id_b = (uint64_t) object_int(&b, "id");
        tap_ok(pin_exists(id_a, "maps/shared_counts") && pin_exists(id_b, "maps/shared_counts"),
               "each object's map is pinned in its own directory");
        tap_ok(json_int(array_find_name(object_get(&a, "maps"), "shared_counts"), "id") !=
                       json_int(array_find_name(object_get(&b, "maps"), "shared_counts"), "id"),
               "the two tenants' maps of the same name are distinct");
        tap_ok(stat("/sys/fs/bpf/shared_counts", &st) < 0, "nothing written at libbpf's default /sys/fs/bpf/<name>");
        if (id_a > 0)
                unload(id_a);
        if (id_b > 0)
                unload(id_b);
}

static int64_t daemon_counter(const TestDaemon *t, const char *name) {
        _cleanup_reply_ BpfcoreReply st = {};
        json_object *c = NULL;

        call(t, "io.bpfcored.Status", NULL, NULL, 0, &st);
        json_object_object_get_ex(st.parameters, "counters", &c);
        return json_int(c, name);
}

static int64_t status_counter(const char *name) {
        return daemon_counter(&d, name);
}

/*
 * After a load, the daemon opens the object again with libbpf in idle time,
 * for the next load of the same plan. That next load must behave as if
 * opened then: its own globals, its own program subset, its own pin
 * directory; a load under another name opens its own.
 */
TEST(opened_ahead) {
        _cleanup_reply_ BpfcoreReply first = {}, second = {}, subset = {}, renamed = {}, own = {};
        uint32_t pid = 0;
        int64_t before;

        load_object(&d, "globals", params_new("{\"globals\":{\"target_pid\":1111}}"), &first);
        before = status_counter("opened_ahead");
        load_object(&d, "globals", params_new("{\"globals\":{\"target_pid\":2222}}"), &second);
        tap_is_str(reply_error(&second), "", "globals loads again");
        tap_is_int(status_counter("opened_ahead") - before, 1, "from the object opened ahead");
        tap_ok(read_global(object_get(&second, "maps"), ".rodata", "target_pid", &pid, sizeof(pid)) && pid == 2222,
               "with its own globals (target_pid 2222)");
        pid = 0;
        tap_ok(read_global(object_get(&first, "maps"), ".rodata", "target_pid", &pid, sizeof(pid)) && pid == 1111,
               "and the first load keeps its own (1111)");
        tap_ok(pin_exists((uint64_t) object_int(&second, "id"), "programs/count_getpid"),
               "its pins are in its own directory");

        load_object(&d, "tp_core", NULL, &subset);
        unload((uint64_t) object_int(&subset, "id"));
        bpfcore_reply_done(&subset);
        before = status_counter("opened_ahead");
        load_object(&d, "tp_core", params_new("{\"programs\":[\"handle_exec\"]}"), &subset);
        tap_is_int(status_counter("opened_ahead") - before, 1, "tp_core opened ahead too");
        tap_is_int(object_get(&subset, "programs") ? json_object_array_length(object_get(&subset, "programs")) : 0, 1,
                   "and a subset of its programs loads from it");

        before = status_counter("opened_ahead");
        load_object(&d, "tp_core", params_new("{\"name\":\"other-name\"}"), &renamed);
        tap_is_str(reply_error(&renamed), "", "a load under another name loads");
        tap_is_int(status_counter("opened_ahead") - before, 0, "opened for its own name, not from the one ahead");
        tap_is_str(json_object_get_string(object_get(&renamed, "name")), "other-name", "and has that name");
        before = status_counter("opened_ahead");
        load_object(&d, "tp_core", NULL, &own);
        tap_is_int(status_counter("opened_ahead") - before, 1, "the object opened ahead under tp_core's name stayed");
        {
                const BpfcoreReply *loaded[] = { &first, &second, &subset, &renamed, &own };

                for (size_t i = 0; i < ELEMENTSOF(loaded); i++)
                        if (object_int(loaded[i], "id") > 0)
                                unload((uint64_t) object_int(loaded[i], "id"));
        }
}

/* Load path's object with params (a JSON text, or NULL). */
static void load_path(const char *path, const char *params, BpfcoreReply *ret) {
        json_object *p = params ? json_tokener_parse(params) : json_object_new_object();
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        json_object_object_add(p, "fd", json_object_new_int(0));
        call(&d, "io.bpfcored.Load", p, &fd, 1, ret);
        json_object_put(p);
        close(fd);
}

/* The file offset of a global's initial value in an object's bytes, or 0. */
static uint64_t global_offset(const char *data, size_t size, const char *name) {
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *) data;
        const Elf64_Shdr *sh = (const Elf64_Shdr *) (data + eh->e_shoff);

        if (size < sizeof(*eh) || eh->e_shoff + (uint64_t) eh->e_shnum * sizeof(*sh) > size)
                return 0;
        for (size_t i = 1; i < eh->e_shnum; i++) {
                const Elf64_Sym *sym = (const Elf64_Sym *) (data + sh[i].sh_offset);
                const char *strtab = data + sh[sh[i].sh_link].sh_offset;

                if (sh[i].sh_type != SHT_SYMTAB)
                        continue;
                for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++)
                        if (strcmp(strtab + sym[k].st_name, name) == 0 && sym[k].st_shndx > 0 &&
                            sym[k].st_shndx < eh->e_shnum)
                                return sh[sym[k].st_shndx].sh_offset + sym[k].st_value;
        }
        return 0;
}

/*
 * A file loaded again, unchanged, is compared with the bytes its last load
 * read instead of being read, checked and hashed again: the load is the
 * same. A byte changed in place is seen, and that load is of the new bytes.
 */
TEST(known_file) {
        _cleanup_free_ char *src = harness_object_path("globals"), *data = NULL;
        _cleanup_reply_ BpfcoreReply first = {}, second = {}, renamed = {}, changed = {}, again = {};
        char path[256], want[72];
        uint32_t pid = 0, value = 4242;
        uint64_t at;
        size_t size = 0;
        int64_t before;
        FILE *f;
        int fd;

        snprintf(path, sizeof(path), "%s/known.bpf.o", d.tmpdir);
        read_file(src, &data, &size);
        f = fopen(path, "we");
        tap_ok(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "a copy of globals (%zu bytes)", size);
        file_sha256(path, want);

        before = status_counter("known_files");
        load_path(path, "{\"globals\":{\"target_pid\":1111}}", &first);
        tap_is_str(reply_error(&first), "", "the copy loads");
        tap_is_int(status_counter("known_files") - before, 0, "read, as a file not seen before");

        before = status_counter("known_files");
        load_path(path, "{\"globals\":{\"target_pid\":2222}}", &second);
        tap_is_str(reply_error(&second), "", "it loads again");
        tap_is_int(status_counter("known_files") - before, 1, "from the bytes of the first load, not read again");
        tap_is_str(json_object_get_string(object_get(&second, "digest")), want, "its digest is the file's sha256");
        tap_ok(read_global(object_get(&second, "maps"), ".rodata", "target_pid", &pid, sizeof(pid)) && pid == 2222,
               "with its own globals (target_pid 2222)");
        tap_ok(object_get(&second, "programs") && json_object_array_length(object_get(&second, "programs")) == 1,
               "and its program");

        before = status_counter("known_files");
        load_path(path, "{\"name\":\"known-renamed\"}", &renamed);
        tap_is_str(json_object_get_string(object_get(&renamed, "name")), "known-renamed",
                   "under another name it loads with that name");
        tap_is_int(status_counter("known_files") - before, 1, "from the same bytes");

        /* target_pid's initial value, changed in place: the file is the same, its bytes are not. */
        at = global_offset(data, size, "target_pid");
        fd = open(path, O_WRONLY | O_CLOEXEC);
        tap_ok(at && fd >= 0 && pwrite(fd, &value, sizeof(value), (off_t) at) == sizeof(value),
               "target_pid's initial value in the file set to %u", value);
        if (fd >= 0)
                close(fd);
        file_sha256(path, want);
        before = status_counter("known_files");
        load_path(path, NULL, &changed);
        tap_is_str(reply_error(&changed), "", "the changed file loads");
        tap_is_int(status_counter("known_files") - before, 0, "read again: it is not the bytes kept");
        pid = 0;
        tap_ok(read_global(object_get(&changed, "maps"), ".rodata", "target_pid", &pid, sizeof(pid)) && pid == value,
               "with the file's new initial value (%u)", pid);
        tap_is_str(json_object_get_string(object_get(&changed, "digest")), want, "and its new sha256");

        before = status_counter("known_files");
        load_path(path, NULL, &again);
        tap_is_int(status_counter("known_files") - before, 1, "the changed file, loaded again, is known in turn");
        pid = 0;
        tap_ok(read_global(object_get(&again, "maps"), ".rodata", "target_pid", &pid, sizeof(pid)) && pid == value,
               "with the same value (%u)", pid);
        {
                const BpfcoreReply *loaded[] = { &first, &second, &renamed, &changed, &again };

                for (size_t i = 0; i < ELEMENTSOF(loaded); i++)
                        if (object_int(loaded[i], "id") > 0)
                                unload((uint64_t) object_int(loaded[i], "id"));
        }
        unlink(path);
}

/* The same for an object read sparsely (over 128 KiB: its DWARF is read only to hash it, then given back). */
TEST(known_file_sparse) {
        _cleanup_free_ char *src = harness_object_path("tp_core"), *data = NULL;
        _cleanup_reply_ BpfcoreReply first = {}, second = {};
        char path[256], want[72];
        size_t size = 0;
        int64_t before;
        FILE *f;

        snprintf(path, sizeof(path), "%s/known-sparse.bpf.o", d.tmpdir);
        read_file(src, &data, &size);
        f = fopen(path, "we");
        tap_ok(f && fwrite(data, 1, size, f) == size && fclose(f) == 0 && size > 128 * 1024,
               "a copy of tp_core (%zu bytes)", size);
        file_sha256(path, want);
        load_path(path, NULL, &first);
        before = status_counter("known_files");
        load_path(path, NULL, &second);
        tap_is_str(reply_error(&second), "", "it loads twice");
        tap_is_int(status_counter("known_files") - before, 1, "the second time from the bytes kept");
        tap_is_str(json_object_get_string(object_get(&second, "digest")), want, "with the file's sha256");
        tap_is_str(json_object_to_json_string_ext(object_get(&second, "relocations"), JSON_C_TO_STRING_PLAIN),
                   json_object_to_json_string_ext(object_get(&first, "relocations"), JSON_C_TO_STRING_PLAIN),
                   "and the first load's relocations");
        tap_ok(object_get(&second, "programs") && json_object_array_length(object_get(&second, "programs")) == 2,
               "and both its programs");
        if (object_int(&first, "id") > 0)
                unload((uint64_t) object_int(&first, "id"));
        if (object_int(&second, "id") > 0)
                unload((uint64_t) object_int(&second, "id"));
        unlink(path);
}

static void expect_invalid_object(const char *what, const void *data, size_t size, const char *needle) {
        _cleanup_reply_ BpfcoreReply r = {};
        json_object *p = json_object_new_object();
        int fd = memfd_with(what, data, size);

        json_object_object_add(p, "fd", json_object_new_int(0));
        call(&d, "io.bpfcored.Load", p, &fd, 1, &r);
        json_object_put(p);
        close(fd);
        tap_is_str(reply_error(&r), "InvalidObject", "%s is InvalidObject", what);
        if (!tap_ok(strstr(json_str(r.parameters, "message"), needle), "%s: message says \"%s\"", what, needle))
                tap_diag("message: %s", json_str(r.parameters, "message"));
}

TEST(invalid_objects) {
        _cleanup_free_ char *path = harness_object_path("tp_core"), *elf = NULL, *self = NULL;
        char random[4096];
        size_t size, self_size;
        uint32_t *before, *after;
        size_t n_before, n_after, dirs = count_pin_dirs();

        kernel_prog_ids(&before, &n_before);
        srand(42);
        for (size_t i = 0; i < sizeof(random); i++)
                random[i] = (char) rand();
        read_file(path, &elf, &size);
        read_file("/proc/self/exe", &self, &self_size);

        expect_invalid_object("empty file", "", 0, "empty");
        expect_invalid_object("random bytes", random, sizeof(random), "not an ELF");
        expect_invalid_object("truncated ELF", elf, size / 2, "truncated");
        expect_invalid_object("header only", elf, 70, "truncated");
        expect_invalid_object("x86-64 executable", self, self_size, "x86-64");

        kernel_prog_ids(&after, &n_after);
        tap_is_int(ids_added(before, n_before, after, n_after), 0, "invalid objects leave no program behind");
        tap_is_int(count_pin_dirs(), dirs, "invalid objects leave no pin directory behind");
        free(before);
        free(after);
}

TEST(verifier_rejection) {
        _cleanup_reply_ BpfcoreReply r = {};
        size_t dirs = count_pin_dirs();

        load_object(&d, "reject", NULL, &r);
        tap_is_str(reply_error(&r), "VerifierRejected", "reject.bpf.o is VerifierRejected");
        tap_is_str(json_str(r.parameters, "program"), "bad_access", "error names the program");
        if (!tap_ok(strstr(json_str(r.parameters, "log"), "invalid mem access"),
                    "log carries the verifier's own words"))
                tap_diag("log: %.2000s", json_str(r.parameters, "log"));
        tap_ok(strstr(json_str(r.parameters, "log"), "processed") != NULL, "log is the whole log, to its last line");
        tap_is_int(count_pin_dirs(), dirs, "rejection leaves no pin directory");
        /* The log buffer is kept for the next load: a load failing before any verifier log has none. */
        {
                _cleanup_reply_ BpfcoreReply m = {};

                load_object(&d, "globals", params_new("{\"maps\":{\"settings\":{\"max_entries\":4294967295}}}"), &m);
                tap_ok(m.error && strcmp(reply_error(&m), "VerifierRejected") != 0 && !json_str(m.parameters, "log")[0],
                       "a later load failing at map creation carries no verifier log (%s)", reply_error(&m));
        }
}

static bool prog_uses_map(uint32_t prog_id, uint32_t map_id) {
        uint32_t ids[64] = {};
        struct bpf_prog_info info = { .nr_map_ids = ELEMENTSOF(ids), .map_ids = (uintptr_t) ids };
        __u32 len = sizeof(info);
        int fd = bpf_prog_get_fd_by_id(prog_id);
        bool found = false;

        if (fd < 0)
                return false;
        if (bpf_prog_get_info_by_fd(fd, &info, &len) == 0)
                for (uint32_t i = 0; i < MIN(info.nr_map_ids, (uint32_t) ELEMENTSOF(ids)); i++)
                        found = found || ids[i] == map_id;
        close(fd);
        return found;
}

/* Programs in the kernel with one of these names (each shorter than the kernel's 16 bytes). */
static size_t kernel_progs_named(const char *const *names) {
        uint32_t id = 0;
        size_t n = 0;

        while (bpf_prog_get_next_id(id, &id) == 0) {
                struct bpf_prog_info info = {};
                __u32 len = sizeof(info);
                int fd = bpf_prog_get_fd_by_id(id);

                if (fd < 0)
                        continue;
                if (bpf_prog_get_info_by_fd(fd, &info, &len) < 0)
                        info.name[0] = '\0';
                close(fd);
                /* Unless it goes now: programs go after their last reference, asynchronously. */
                for (size_t i = 0; names[i]; i++)
                        n += strcmp(info.name, names[i]) == 0 && !kernel_prog_gone(id);
        }
        return n;
}

static uint64_t map_u64(uint32_t map_id, uint32_t key) {
        uint64_t v = 0;
        int fd = bpf_map_get_fd_by_id(map_id);

        if (fd >= 0)
                (void) bpf_map_lookup_elem(fd, &key, &v);
        safe_close(fd);
        return v;
}

/*
 * The daemon verifies an object's programs side by side, and puts each in
 * the place libbpf holds for it: what libbpf does after (a program array it
 * fills, .rodata bound to every program) finds the programs; a rejection
 * still names the program the verifier refused, with its log.
 */
TEST(side_by_side) {
        static const char *const reject_late[] = { "good_first", "bad_second", "good_third", "good_fourth", NULL };
        /* Two threads whatever the CPUs of the machine running the test. */
        static const char *const two_threads[] = { "--verifier-threads", "2", NULL };
        _cleanup_reply_ BpfcoreReply rejected = {}, tail = {};
        TestDaemon pair = { .options = two_threads };
        _cleanup_free_ char *globals = NULL;
        uint32_t one, two, stages, rodata, reached;
        uint64_t n0, n1;

        if (!tap_is_int(daemon_start(&pair), 0, "a daemon with --verifier-threads 2 starts"))
                return;
        load_object(&pair, "reject_late", NULL, &rejected);
        tap_is_str(reply_error(&rejected), "VerifierRejected", "reject_late.bpf.o is VerifierRejected");
        tap_is_str(json_str(rejected.parameters, "program"), "bad_second", "naming its second program of four");
        tap_ok(strstr(json_str(rejected.parameters, "log"), "invalid mem access"), "with that program's log");
        tap_is_int(daemon_counter(&pair, "batch_failures"), 1, "the batch failed, and the load was done again");
        tap_is_int(count_pin_dirs_of(&pair), 0, "the rejection leaves no pin directory");
        tap_is_int(kernel_progs_named(reject_late), 0, "nor any of its programs in the kernel");

        /* Its programs count this process's getpid() calls only. */
        if (asprintf(&globals, "{\"attach\":true,\"globals\":{\"only_tgid\":%d}}", (int) getpid()) < 0)
                return;
        load_object(&pair, "tailcalls", params_new(globals), &tail);
        if (!tap_is_str(reply_error(&tail), "", "tailcalls.bpf.o loads and attaches")) {
                daemon_cleanup(&pair);
                return;
        }
        tap_is_int(daemon_counter(&pair, "batched_loads"), 1, "its programs were verified side by side");
        tap_is_int(daemon_counter(&pair, "batched_programs"), 3, "all three");
        tap_is_int(daemon_counter(&pair, "verifier_helpers"), 1, "with one helper thread beside the loading one");
        one = (uint32_t) json_int(array_find_name(object_get(&tail, "programs"), "stage_one"), "id");
        two = (uint32_t) json_int(array_find_name(object_get(&tail, "programs"), "stage_two"), "id");
        stages = (uint32_t) json_int(array_find_name(object_get(&tail, "maps"), "stages"), "id");
        rodata = (uint32_t) json_int(array_find_name(object_get(&tail, "maps"), ".rodata"), "id");
        reached = (uint32_t) json_int(array_find_name(object_get(&tail, "maps"), "reached"), "id");
        /* A prog array's lookup from user space gives the program's id. */
        tap_ok(map_u64(stages, 0) == one && map_u64(stages, 1) == two,
               "the program array libbpf filled holds stage_one and stage_two");
        tap_ok(prog_uses_map(one, rodata) && prog_uses_map(two, rodata),
               ".rodata is bound to the programs that do not use it, as libbpf binds it");
        /* A getpid() runs all three: stage_one and stage_two count once each, dispatch tail-calls into
         * stage_one, which counts again. */
        syscall(SYS_getpid);
        n0 = map_u64(reached, 0);
        n1 = map_u64(reached, 1);
        tap_ok(n1 == 1 && n0 == 2, "the tail call reaches stage_one (%llu and %llu runs)", (unsigned long long) n0,
               (unsigned long long) n1);
        tap_is_str(unload_object(&pair, (uint64_t) object_int(&tail, "id")), "", "tailcalls unloads");
        daemon_stop(&pair);
        daemon_cleanup(&pair);
}

/* With --verifier-threads 1, the programs are verified one after the other. */
TEST(verifier_threads) {
        static const char *const one_thread[] = { "--verifier-threads", "1", NULL };
        _cleanup_reply_ BpfcoreReply r = {};
        _cleanup_free_ char *cmd = NULL;
        TestDaemon solo = { .options = one_thread };
        int status;

        if (!tap_is_int(daemon_start(&solo), 0, "a daemon with --verifier-threads 1 starts"))
                return;
        load_object(&solo, "tailcalls", NULL, &r);
        tap_is_str(reply_error(&r), "", "tailcalls.bpf.o loads there");
        tap_is_int(daemon_counter(&solo, "batched_loads"), 0, "without a batch");
        if (object_int(&r, "id") > 0)
                tap_is_str(unload_object(&solo, (uint64_t) object_int(&r, "id")), "", "and unloads");
        daemon_stop(&solo);
        daemon_cleanup(&solo);

        /* With -n, a daemon that took 0 would only check a configuration and exit 0. */
        if (asprintf(&cmd, "'%s' --verifier-threads 0 -n --config /dev/null 2>/dev/null", harness_env("BPFCORED")) < 0)
                return;
        status = system(cmd);
        tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 2, "--verifier-threads 0 is a usage error");
}

TEST(bad_fds) {
        _cleanup_reply_ BpfcoreReply none = {}, missing = {}, dir = {}, big = {}, wronly = {};
        json_object *p = params_new("{\"fd\":0}");
        int dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int bigfd = memfd_create("big", MFD_CLOEXEC);
        int wfd = open("/dev/null", O_WRONLY | O_CLOEXEC);

        call(&d, "io.bpfcored.Load", p, NULL, 0, &none);
        tap_is_str(reply_error(&none), "InvalidParameter", "fd index without an fd is InvalidParameter");
        tap_is_str(json_str(none.parameters, "parameter"), "fd", "names parameter fd");

        call(&d, "io.bpfcored.Load", NULL, NULL, 0, &missing);
        tap_is_str(missing.error, "org.varlink.service.InvalidParameter", "missing fd parameter is varlink's InvalidParameter");
        tap_is_str(json_str(missing.parameters, "parameter"), "fd", "names parameter fd");

        call(&d, "io.bpfcored.Load", p, &dfd, 1, &dir);
        tap_is_str(reply_error(&dir), "InvalidParameter", "a directory fd is InvalidParameter");
        tap_ok(strstr(json_str(dir.parameters, "message"), "directory"), "message says directory");

        tap_ok(ftruncate(bigfd, 65 * 1024 * 1024) == 0, "65 MiB sparse memfd");
        call(&d, "io.bpfcored.Load", p, &bigfd, 1, &big);
        tap_is_str(reply_error(&big), "TooLarge", "an object over 64 MiB is TooLarge");

        call(&d, "io.bpfcored.Load", p, &wfd, 1, &wronly);
        tap_is_str(reply_error(&wronly), "InvalidParameter", "a non-regular (device) fd is InvalidParameter");

        json_object_put(p);
        close(dfd);
        close(bigfd);
        close(wfd);
}

static int raw_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, d.socket_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Reads one NUL-terminated reply (or until EOF); returns it, NULL on timeout. */
static char *raw_reply(int fd, bool *ret_eof) {
        char *buf = NULL;
        size_t len = 0;

        *ret_eof = false;
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                char c;

                if (poll(&pfd, 1, 5000) <= 0)
                        break;
                if (read(fd, &c, 1) != 1) {
                        *ret_eof = true;
                        break;
                }
                buf = realloc(buf, len + 2);
                buf[len++] = c;
                buf[len] = 0;
                if (c == 0)
                        return buf;
        }
        return buf;
}

static bool raw_eof(int fd) {
        bool eof;
        free(raw_reply(fd, &eof));
        return eof;
}

static bool status_works(void) {
        _cleanup_reply_ BpfcoreReply r = {};

        return call(&d, "io.bpfcored.Status", NULL, NULL, 0, &r) == 0 && !r.error;
}

TEST(protocol_errors) {
        static const char unknown_method[] = "{\"method\":\"io.bpfcored.Explode\"}";
        static const char no_method[] = "{\"parameters\":{}}";
        static const char malformed[] = "{\"method\": io.bpfcored.Status";
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        bool eof;
        int fd;

        fd = raw_connect();
        write(fd, unknown_method, sizeof(unknown_method));
        a = raw_reply(fd, &eof);
        tap_ok(a && strstr(a, "org.varlink.service.MethodNotFound"), "unknown method is MethodNotFound");
        write(fd, no_method, sizeof(no_method));
        b = raw_reply(fd, &eof);
        tap_ok(b && strstr(b, "InvalidParameter") && strstr(b, "method"), "a call without method is InvalidParameter");
        close(fd);

        fd = raw_connect();
        write(fd, malformed, sizeof(malformed));
        c = raw_reply(fd, &eof);
        tap_ok(c && strstr(c, "InvalidParameter") && strstr(c, "not valid JSON"), "malformed JSON gets an error reply");
        tap_ok(raw_eof(fd), "and the connection is closed");
        close(fd);
        tap_ok(status_works(), "daemon still serves others");
}

TEST(oversized_message) {
        size_t size = 16 * 1024 * 1024 + 4096;
        char *big = malloc(size);
        char *reply = NULL;
        size_t sent = 0;
        bool eof = false;
        int fd = raw_connect();

        memset(big, ' ', size);
        memcpy(big, "{\"method\":\"io.bpfcored.Status\",\"parameters\":{},\"pad\":\"", 53);
        /* The daemon answers and hangs up once the limit passes; stop writing then. */
        fcntl(fd, F_SETFL, O_NONBLOCK);
        while (sent < size) {
                struct pollfd pfd = { .fd = fd, .events = POLLOUT | POLLIN };
                ssize_t n;

                if (poll(&pfd, 1, 5000) <= 0 || (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
                        break;
                n = write(fd, big + sent, size - sent);
                if (n <= 0)
                        break;
                sent += (size_t) n;
        }
        fcntl(fd, F_SETFL, 0);
        reply = raw_reply(fd, &eof);
        tap_ok(reply && strstr(reply, "io.bpfcored.TooLarge"), "a message over 16 MiB is TooLarge");
        tap_ok(raw_eof(fd), "and the connection is closed");
        close(fd);
        free(reply);
        free(big);
        tap_ok(status_works(), "daemon still serves others");
}

TEST(too_many_fds) {
        static const char msg[] = "{\"method\":\"io.bpfcored.Status\"}";
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 17)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = sizeof(msg) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        int fds[17], fd = raw_connect();
        char *reply;
        bool eof;

        for (int i = 0; i < 17; i++)
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        tap_ok(sendmsg(fd, &mh, 0) > 0, "sent a call with 17 fds");
        reply = raw_reply(fd, &eof);
        tap_ok(reply && strstr(reply, "io.bpfcored.TooLarge") && strstr(reply, "fds"), "17 fds is TooLarge");
        free(reply);
        close(fd);
        for (int i = 0; i < 17; i++)
                close(fds[i]);
        tap_ok(status_works(), "daemon still serves others");
}

TEST(stalled_and_vanishing_clients) {
        static const char half[] = "{\"method\":\"io.bpfcored.Sta";
        int stalled = raw_connect(), vanishing = raw_connect();

        write(stalled, half, strlen(half));
        tap_ok(status_works(), "a client stalled mid-message does not delay another");
        write(vanishing, half, strlen(half));
        close(vanishing);
        tap_ok(status_works(), "a client that disconnects mid-message costs nothing");
        close(stalled);
        tap_ok(status_works(), "daemon still serves after both");
}

TEST(bpfcorectl) {
        _cleanup_free_ char *path = harness_object_path("globals");
        _cleanup_free_ char *out = NULL, *err = NULL, *jout = NULL, *lout = NULL, *sout = NULL, *eout = NULL,
                            *eerr = NULL, *stout = NULL, *uout = NULL;
        json_object *j = NULL, *o;
        char id[32];
        int rc;

        rc = run_ctl(&d, &out, &err, "load", path, "--name", "ctl-test", "--program", "count_getpid", "--global",
                     "target_pid=77", "--global", "comm_filter=str:123", "--map", "settings.max_entries=16", NULL);
        tap_is_int(rc, 0, "bpfcorectl load exits 0");
        tap_ok(out && strstr(out, "count_getpid") && strstr(out, "settings"), "prints a table of programs and maps");
        if (rc != 0)
                tap_diag("stderr: %s", err);
        free(out);
        out = NULL;

        rc = run_ctl(&d, &jout, NULL, "--json", "list", NULL);
        tap_is_int(rc, 0, "bpfcorectl --json list exits 0");
        j = json_tokener_parse(jout ?: "");
        tap_ok(j && json_object_object_get_ex(j, "objects", &o) && json_object_array_length(o) == 1,
               "--json list prints the reply's parameters");
        o = j && json_object_object_get_ex(j, "objects", &o) ? json_object_array_get_idx(o, 0) : NULL;
        tap_is_str(json_str(o, "name"), "ctl-test", "--name applied");
        tap_is_int(json_int(array_find_name(json_object_object_get(o, "maps"), "settings"), "max_entries"), 16,
                   "--map applied");
        snprintf(id, sizeof(id), "%lld", (long long) json_int(o, "id"));

        rc = run_ctl(&d, &lout, NULL, "list", NULL);
        tap_ok(rc == 0 && lout && strstr(lout, "ctl-test"), "bpfcorectl list shows it");
        rc = run_ctl(&d, &sout, NULL, "show", id, NULL);
        tap_ok(rc == 0 && sout && strstr(sout, "count_getpid"), "bpfcorectl show ID shows its programs");
        rc = run_ctl(&d, &stout, NULL, "status", NULL);
        tap_ok(rc == 0 && stout && strstr(stout, "0.1.0"), "bpfcorectl status shows the version");

        rc = run_ctl(&d, &eout, &eerr, "show", "999999", NULL);
        tap_ok(rc != 0, "show of an unknown id exits non-zero");
        tap_ok(eerr && strstr(eerr, "NoSuchObject"), "and names the error on stderr");

        rc = run_ctl(&d, &uout, NULL, "unload", id, NULL);
        tap_is_int(rc, 0, "bpfcorectl unload exits 0");
        json_object_put(j);
}

TEST(bpfcorectl_errors) {
        _cleanup_free_ char *path = harness_object_path("reject"), *err = NULL, *jout = NULL, *gerr = NULL;
        _cleanup_free_ char *gpath = harness_object_path("globals");
        json_object *j;
        int rc;

        rc = run_ctl(&d, NULL, &err, "load", path, NULL);
        tap_ok(rc != 0, "loading a rejected object exits non-zero");
        tap_ok(err && strstr(err, "VerifierRejected") && strstr(err, "invalid mem access"),
               "stderr has the error name and the verifier log");

        rc = run_ctl(&d, &jout, NULL, "--json", "load", path, NULL);
        j = json_tokener_parse(jout ?: "");
        tap_ok(rc != 0 && j && strcmp(json_str(j, "error"), "io.bpfcored.VerifierRejected") == 0,
               "--json prints the error as JSON on stdout");
        json_object_put(j);

        rc = run_ctl(&d, NULL, &gerr, "load", gpath, "--global", "target_pid=-3", NULL);
        tap_ok(rc != 0 && gerr && strstr(gerr, "globals.target_pid"), "a bad --global is refused, naming it");
}

static json_object *list_objects(BpfcoreReply *r) {
        json_object *objects = NULL;

        call(&d, "io.bpfcored.List", NULL, NULL, 0, r);
        json_object_object_get_ex(r->parameters, "objects", &objects);
        return objects;
}

static json_object *find_id(json_object *objects, int64_t id) {
        for (size_t i = 0; objects && i < json_object_array_length(objects); i++)
                if (json_int(json_object_array_get_idx(objects, i), "id") == id)
                        return json_object_array_get_idx(objects, i);
        return NULL;
}

TEST(survives_client_and_daemon) {
        _cleanup_reply_ BpfcoreReply r = {}, after = {}, l = {};
        json_object *back;
        uint32_t prog;
        uint64_t id;
        int rc;

        load_object(&d, "tp_core", NULL, &r);
        prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "handle_exec"), "id");
        id = (uint64_t) object_int(&r, "id");
        tap_ok(prog > 0 && kernel_prog_exists(prog), "program loaded; its client has disconnected");

        rc = daemon_stop(&d);
        tap_is_int(rc, 0, "daemon exits 0 on SIGTERM");
        tap_ok(kernel_prog_exists(prog), "program stays loaded while the daemon is down");
        tap_ok(pin_exists(id, "programs/handle_exec"), "its pin stays");

        tap_is_int(daemon_start(&d), 0, "daemon starts again");
        tap_ok(kernel_prog_exists(prog), "program still loaded after the restart");
        back = find_id(list_objects(&l), (int64_t) id);
        tap_ok(back != NULL, "List shows the object again, with the same id");
        tap_is_int(json_int(array_find_name(json_object_object_get(back, "programs"), "handle_exec"), "id"), prog,
                   "with the same kernel program id");
        tap_is_int(json_int(json_object_object_get(back, "owner"), "uid"), 0, "and its owner");
        tap_is_str(json_str(back, "loaded_at"), json_object_get_string(object_get(&r, "loaded_at")),
                   "and when it was loaded, as the Load reply said");
        tap_ok(strncmp(json_str(back, "loaded_at") ?: "", "1970", 4) != 0, "(not the epoch: %s)",
               json_str(back, "loaded_at") ?: "none");
        load_object(&d, "xdp_pass", NULL, &after);
        tap_ok(object_int(&after, "id") > (int64_t) id, "ids continue after those recovered");
        if (object_int(&after, "id") > 0)
                unload((uint64_t) object_int(&after, "id"));
        unload(id);
        tap_ok(kernel_prog_gone(prog), "Unload of a recovered object removes its program from the kernel");
        tap_ok(!pin_exists(id, ""), "and its pins");
}

/* bpfcorectl attach ... perf_event EVENT cpu=N freq=HZ through the daemon; the link survives a restart. */
TEST(perf_event) {
        _cleanup_free_ char *err = NULL, *aout = NULL,
                            *aerr = NULL, *bout = NULL, *berr = NULL, *sout = NULL;
        _cleanup_reply_ BpfcoreReply r = {}, l = {};
        json_object *links;
        char id[32];

        load_object(&d, "attach_perf", NULL, &r);
        if (!tap_is_str(reply_error(&r), "", "attach_perf.bpf.o loads"))
                return;
        snprintf(id, sizeof(id), "%lld", (long long) object_int(&r, "id"));
        tap_is_int(run_ctl(&d, &aout, &aerr, "attach", id, "on_sample", "perf_event", "cpu-clock", "cpu=0", "freq=99",
                           NULL),
                   0, "bpfcorectl attach ID on_sample perf_event cpu-clock cpu=0 freq=99");
        tap_ok(aout && strstr(aout, "(perf_event cpu-clock cpu 0 at 99 Hz)"), "says what it attached: %s",
               aout ?: aerr);
        tap_is_int(run_ctl(&d, &bout, &berr, "attach", id, "on_sample", "perf_event", "cpu-clock", "core=0", NULL), 2,
                   "a word it does not know is a usage error");
        tap_ok(berr && strstr(berr, "perf_event takes EVENT cpu=N|pid=N [freq=HZ|period=N], not 'core=0'"),
               "naming the word: %s", berr ?: "");

        daemon_signal(&d, SIGKILL);
        waitpid(d.pid, NULL, 0);
        d.pid = 0;
        tap_is_int(daemon_start(&d), 0, "daemon restarts after SIGKILL");
        links = json_object_object_get(array_find_name(json_object_object_get(find_id(list_objects(&l),
                                                                                      object_int(&r, "id")),
                                                                              "programs"),
                                                       "on_sample"),
                                       "links");
        tap_is_str(json_str(json_object_array_get_idx(links, 0), "target"), "cpu-clock cpu 0 at 99 Hz",
                   "the perf_event link is recovered with its target");
        tap_is_int(run_ctl(&d, &sout, &err, "unload", id, NULL), 0, "and unloaded");
}

TEST(sigkill_and_half_created) {
        _cleanup_reply_ BpfcoreReply r = {}, l = {};
        char path[512];
        struct stat st;
        uint32_t prog;
        uint64_t id;
        int status;

        load_object(&d, "globals", NULL, &r);
        id = (uint64_t) object_int(&r, "id");
        prog = (uint32_t) json_int(array_find_name(object_get(&r, "programs"), "count_getpid"), "id");
        daemon_signal(&d, SIGKILL);
        waitpid(d.pid, &status, 0);
        d.pid = 0;

        /* What a crash inside a load leaves: pins and no state file. */
        snprintf(path, sizeof(path), "%s/999999", d.bpffs_root);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/999999/programs", d.bpffs_root);
        mkdir(path, 0700);
        /* And a state file whose pins are gone. */
        snprintf(path, sizeof(path), "%s/888888.json", d.state_dir);
        FILE *f = fopen(path, "we");
        if (f) {
                fputs("{\"id\":888888,\"name\":\"ghost\",\"digest\":\"sha256:00\",\"programs\":[{\"name\":\"x\",\"id\":1}],\"maps\":[]}", f);
                fclose(f);
        }

        tap_is_int(daemon_start(&d), 0, "daemon starts after SIGKILL");
        tap_ok(find_id(list_objects(&l), (int64_t) id) != NULL, "the object loaded before the SIGKILL is back");
        tap_ok(kernel_prog_exists(prog), "and its program never stopped");
        snprintf(path, sizeof(path), "%s/999999", d.bpffs_root);
        tap_ok(stat(path, &st) < 0, "pins without a state file were removed");
        snprintf(path, sizeof(path), "%s/888888.json", d.state_dir);
        tap_ok(stat(path, &st) < 0, "a state file without its pins was removed");
        tap_ok(find_id(json_object_object_get(l.parameters, "objects"), 888888) == NULL, "and is not listed");
        unload(id);
}

static uint64_t getpid_count(json_object *maps) {
        json_object *m = array_find_name(maps, "settings");
        uint64_t v = 0;
        uint32_t key = 0;
        int fd = m ? bpf_map_get_fd_by_id((uint32_t) json_int(m, "id")) : -1;

        if (fd >= 0) {
                bpf_map_lookup_elem(fd, &key, &v);
                close(fd);
        }
        return v;
}

static void call_getpid(int n) {
        for (int i = 0; i < n; i++)
                syscall(SYS_getpid);
}

static int attach_call(const char *json, BpfcoreReply *r) {
        json_object *p = json_tokener_parse(json);
        int rc = call(&d, "io.bpfcored.Attach", p, NULL, 0, r);

        json_object_put(p);
        return rc;
}

TEST(attach_detach) {
        _cleanup_reply_ BpfcoreReply r = {}, g = {}, det = {}, again = {}, bad_tp = {}, kp = {}, noprog = {},
                                     nolink = {}, l = {};
        _cleanup_free_ char *params = NULL;
        json_object *links, *maps, *p, *back;
        uint64_t id, before, after;
        int64_t link_id;
        char json[256];

        if (asprintf(&params, "{\"attach\":true,\"globals\":{\"enabled\":true,\"target_pid\":%d}}", getpid()) < 0)
                abort();
        load_object(&d, "globals", json_tokener_parse(params), &r);
        if (!tap_is_str(reply_error(&r), "", "Load with attach:true succeeds")) {
                tap_diag("%s", json_object_to_json_string(r.parameters));
                return;
        }
        id = (uint64_t) object_int(&r, "id");
        maps = object_get(&r, "maps");
        links = json_object_object_get(array_find_name(object_get(&r, "programs"), "count_getpid"), "links");
        tap_is_int(links ? json_object_array_length(links) : 0, 1, "the program is attached by its SEC() name");
        tap_is_str(json_str(json_object_array_get_idx(links, 0), "type"), "tracepoint", "as a tracepoint link");
        link_id = json_int(json_object_array_get_idx(links, 0), "id");
        snprintf(json, sizeof(json), "links/%lld", (long long) link_id);
        tap_ok(pin_exists(id, json), "the link is pinned beside its object");

        before = getpid_count(maps);
        call_getpid(5);
        after = getpid_count(maps);
        tap_ok(after >= before + 5, "the program runs: getpid() counted (%llu -> %llu)", (unsigned long long) before,
               (unsigned long long) after);

        /* Survives SIGKILL of the daemon, still counting while it is down. */
        daemon_signal(&d, SIGKILL);
        waitpid(d.pid, NULL, 0);
        d.pid = 0;
        before = getpid_count(maps);
        call_getpid(3);
        tap_ok(getpid_count(maps) >= before + 3, "counting goes on while the daemon is down");
        tap_is_int(daemon_start(&d), 0, "daemon restarts");
        back = find_id(list_objects(&l), (int64_t) id);
        links = json_object_object_get(array_find_name(json_object_object_get(back, "programs"), "count_getpid"), "links");
        tap_is_int(links ? json_int(json_object_array_get_idx(links, 0), "id") : -1, link_id,
                   "after the restart the object lists the same link");

        p = json_object_new_object();
        json_object_object_add(p, "link", json_object_new_int64(link_id));
        call(&d, "io.bpfcored.Detach", p, NULL, 0, &det);
        json_object_put(p);
        tap_is_str(reply_error(&det), "", "Detach succeeds");
        before = getpid_count(maps);
        call_getpid(5);
        tap_is_int(getpid_count(maps), before, "after Detach nothing is counted");
        tap_ok(!pin_exists(id, json), "the link pin is gone");

        snprintf(json, sizeof(json), "{\"id\":%llu,\"program\":\"count_getpid\",\"tracepoint\":\"syscalls/sys_enter_getpid\"}",
                 (unsigned long long) id);
        attach_call(json, &again);
        tap_is_str(reply_error(&again), "", "explicit Attach to a tracepoint succeeds");
        tap_ok(json_int(json_object_object_get(again.parameters, "link"), "id") > 0, "and names the new link");
        before = getpid_count(maps);
        call_getpid(4);
        tap_ok(getpid_count(maps) >= before + 4, "counting again");

        snprintf(json, sizeof(json), "{\"id\":%llu,\"program\":\"count_getpid\",\"tracepoint\":\"syscalls/no_such_tracepoint\"}",
                 (unsigned long long) id);
        attach_call(json, &bad_tp);
        tap_is_str(reply_error(&bad_tp), "AttachFailed", "a missing tracepoint is AttachFailed");
        tap_ok(strstr(json_str(bad_tp.parameters, "message"), "no_such_tracepoint") != NULL, "naming it");

        snprintf(json, sizeof(json), "{\"id\":%llu,\"program\":\"count_getpid\",\"kprobe\":{\"function\":\"do_unlinkat\"}}",
                 (unsigned long long) id);
        attach_call(json, &kp);
        tap_is_str(reply_error(&kp), "AttachFailed", "a kprobe request for a tracepoint program is AttachFailed");

        snprintf(json, sizeof(json), "{\"id\":%llu,\"program\":\"nope\",\"tracepoint\":\"syscalls/sys_enter_getpid\"}",
                 (unsigned long long) id);
        attach_call(json, &noprog);
        tap_is_str(reply_error(&noprog), "NoSuchProgram", "an unknown program is NoSuchProgram");

        p = json_tokener_parse("{\"link\":4000000000}");
        call(&d, "io.bpfcored.Detach", p, NULL, 0, &nolink);
        json_object_put(p);
        tap_is_str(reply_error(&nolink), "NoSuchObject", "Detach of an unknown link is NoSuchObject");

        unload(id);
        tap_ok(kernel_prog_gone((uint32_t) json_int(array_find_name(object_get(&r, "programs"), "count_getpid"), "id")),
               "Unload detaches and removes the program from the kernel");
        p = json_object_new_object();
        json_object_object_add(p, "id", json_object_new_int64((int64_t) id));
        call(&d, "io.bpfcored.Get", p, NULL, 0, &g);
        json_object_put(p);
        tap_is_str(reply_error(&g), "NoSuchObject", "and the object");
}

static int map_call(const char *method, const char *json, BpfcoreReply *r) {
        json_object *p = json_tokener_parse(json);
        int rc = call(&d, method, p, NULL, 0, r);

        json_object_put(p);
        return rc;
}

TEST(maps) {
        _cleanup_reply_ BpfcoreReply r = {}, up = {}, look = {}, dump = {}, bad = {}, none = {}, fdr = {}, del = {},
                                     miss = {};
        BpfcoreClient *c = NULL;
        json_object *entries;
        int64_t map_id;
        char json[256];
        size_t replies = 0, streamed = 0;

        load_object(&d, "globals", json_tokener_parse("{\"maps\":{\"settings\":{\"max_entries\":1000}}}"), &r);
        map_id = json_int(array_find_name(object_get(&r, "maps"), "settings"), "id");
        tap_ok(map_id > 0, "an object with a 1000-entry array");

        snprintf(json, sizeof(json), "{\"map\":%lld,\"key\":7,\"value\":42}", (long long) map_id);
        map_call("io.bpfcored.MapUpdate", json, &up);
        tap_is_str(reply_error(&up), "", "MapUpdate key 7 = 42");
        snprintf(json, sizeof(json), "{\"map\":%lld,\"key\":7}", (long long) map_id);
        map_call("io.bpfcored.MapLookup", json, &look);
        tap_is_int(json_int(look.parameters, "value"), 42, "MapLookup reads 42 back, typed by BTF as a number");

        snprintf(json, sizeof(json), "{\"map\":%lld,\"key\":7,\"value\":\"many\"}", (long long) map_id);
        map_call("io.bpfcored.MapUpdate", json, &bad);
        tap_is_str(reply_error(&bad), "InvalidParameter", "a mistyped value is InvalidParameter");
        tap_is_str(json_str(bad.parameters, "parameter"), "value", "naming the value");

        snprintf(json, sizeof(json), "{\"map\":%lld,\"limit\":10}", (long long) map_id);
        map_call("io.bpfcored.MapDump", json, &dump);
        json_object_object_get_ex(dump.parameters, "entries", &entries);
        tap_is_int(entries ? json_object_array_length(entries) : 0, 10, "MapDump honours limit");
        tap_is_int(entries ? json_int(json_object_array_get_idx(entries, 7), "value") : -1, 42, "entry 7 holds 42");

        /* Streamed: batches with "continues", the last without. */
        if (bpfcore_connect(d.socket_path, &c) >= 0) {
                json_object *p = json_object_new_object();
                BpfcoreReply part = {};

                json_object_object_add(p, "map", json_object_new_int64(map_id));
                for (int rc = bpfcore_call_more(c, "io.bpfcored.MapDump", p, &part); rc >= 0;
                     rc = bpfcore_next_reply(c, &part)) {
                        json_object *e = NULL;
                        bool more = part.continues;

                        replies++;
                        if (json_object_object_get_ex(part.parameters, "entries", &e))
                                streamed += json_object_array_length(e);
                        bpfcore_reply_done(&part);
                        if (!more)
                                break;
                }
                json_object_put(p);
                bpfcore_disconnect(c);
        }
        tap_is_int(streamed, 1000, "a streamed MapDump delivers all 1000 entries");
        tap_ok(replies >= 4, "in several replies (%zu)", replies);

        snprintf(json, sizeof(json), "{\"map\":%lld}", (long long) map_id);
        {
                json_object *p = json_tokener_parse(json);
                call(&d, "io.bpfcored.MapFd", p, NULL, 0, &fdr);
                json_object_put(p);
        }
        if (tap_is_int(fdr.n_fds, 1, "MapFd hands over one fd")) {
                struct bpf_map_info info = {};
                __u32 len = sizeof(info);
                uint32_t key = 7;
                uint64_t v = 0;

                tap_ok(bpf_map_get_info_by_fd(fdr.fds[0], &info, &len) == 0 && info.id == (uint32_t) map_id,
                       "it is the map's fd");
                tap_ok(bpf_map_lookup_elem(fdr.fds[0], &key, &v) == 0 && v == 42, "usable by the client itself");
        }

        {
                _cleanup_free_ char *out = NULL, *jout = NULL, *lout = NULL;
                char id[32];
                json_object *j;

                snprintf(id, sizeof(id), "%lld", (long long) map_id);
                tap_is_int(run_ctl(&d, &out, NULL, "map", "dump", id, "--limit", "10", NULL), 0, "bpfcorectl map dump");
                tap_ok(out && strstr(out, "10 entries") && strstr(out, "42"), "prints a table with the counted entries");
                run_ctl(&d, &jout, NULL, "--json", "map", "dump", id, NULL);
                j = json_tokener_parse(jout ?: "");
                tap_is_int(json_int(j, "count"), 1000, "--json map dump collects the whole streamed dump");
                json_object_put(j);
                tap_is_int(run_ctl(&d, &lout, NULL, "map", "lookup", id, "7", NULL), 0, "bpfcorectl map lookup");
                tap_ok(lout && strstr(lout, "42"), "prints the value");
        }

        snprintf(json, sizeof(json), "{\"map\":%lld,\"key\":7}", (long long) map_id);
        map_call("io.bpfcored.MapDelete", json, &del);
        tap_is_str(reply_error(&del), "", "MapDelete answers (arrays cannot delete: found false)");
        map_call("io.bpfcored.MapDump", "{\"map\":4000000000}", &none);
        tap_is_str(reply_error(&none), "NoSuchMap", "an unknown map is NoSuchMap");
        snprintf(json, sizeof(json), "{\"map\":%lld,\"key\":5000}", (long long) map_id);
        map_call("io.bpfcored.MapLookup", json, &miss);
        tap_ok(!json_object_get_boolean(json_object_object_get(miss.parameters, "found")), "a missing key is found: false");
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));
}

/*
 * A map whose JSON is far more than a message (100,000 entries of 256 bytes,
 * each value {"hex": …}: ~54 MB): without "more" MapDump is TooLarge and the
 * connection goes on; with "more" it comes whole, a batch at a time.
 */
TEST(map_dump_large) {
        _cleanup_reply_ BpfcoreReply r = {}, whole = {}, after = {};
        BpfcoreClient *c = NULL;
        json_object *p;
        int64_t map_id, count = -1, id;
        size_t replies = 0, streamed = 0;

        load_object(&d, "globals",
                    json_tokener_parse("{\"maps\":{\"settings\":{\"max_entries\":100000,\"value_size\":256}}}"), &r);
        id = object_int(&r, "id");
        map_id = json_int(array_find_name(object_get(&r, "maps"), "settings"), "id");
        if (!tap_ok(map_id > 0, "an object with a 100,000-entry array of 256-byte values"))
                goto done;
        if (!tap_ok(bpfcore_connect(d.socket_path, &c) >= 0, "connected"))
                goto done;

        p = json_object_new_object();
        json_object_object_add(p, "map", json_object_new_int64(map_id));
        bpfcore_call(c, "io.bpfcored.MapDump", p, NULL, 0, &whole);
        tap_is_str(reply_error(&whole), "TooLarge", "MapDump of all of it in one reply is TooLarge");
        /* Built a batch at a time and stopped at 16 MiB: it never held the map's ~54 MB of JSON trees (it
         * did, ~330 MB of them, before). */
        if (getenv("BPFCORED_SANITIZED"))
                tap_skip("sanitizer build: its quarantine holds freed memory", "the daemon stays small");
        else
                tap_ok(harness_pid_rss_kib(d.pid) < 96 * 1024, "the daemon stays small (%ld KiB)",
                       harness_pid_rss_kib(d.pid));
        tap_is_int(bpfcore_call(c, "io.bpfcored.Status", NULL, NULL, 0, &after), 0, "and the connection goes on");
        tap_ok(after.parameters && !after.error, "answering the next call");

        bpfcore_reply_done(&whole);
        for (int rc = bpfcore_call_more(c, "io.bpfcored.MapDump", p, &whole); rc >= 0 && !whole.error;
             rc = bpfcore_next_reply(c, &whole)) {
                json_object *e = NULL;
                bool more = whole.continues;

                replies++;
                if (json_object_object_get_ex(whole.parameters, "entries", &e))
                        streamed += json_object_array_length(e);
                if (!more) {
                        count = json_int(whole.parameters, "count");
                        break;
                }
                bpfcore_reply_done(&whole);
        }
        tap_is_int(streamed, 100000, "with \"more\" all 100,000 entries come");
        tap_is_int(count, 100000, "the last reply counts them");
        tap_ok(replies >= 390, "in %zu replies", replies);

        /* Unloaded after the first batch: the stream ends with NoSuchMap, and lets go of the map. */
        bpfcore_reply_done(&whole);
        streamed = 0;
        for (int rc = bpfcore_call_more(c, "io.bpfcored.MapDump", p, &whole); rc >= 0 && !whole.error;
             rc = bpfcore_next_reply(c, &whole)) {
                json_object *e = NULL;
                bool more = whole.continues;

                if (json_object_object_get_ex(whole.parameters, "entries", &e))
                        streamed += json_object_array_length(e);
                bpfcore_reply_done(&whole);
                if (!more)
                        break;
                if (id > 0 && streamed <= 256) {
                        tap_is_str(unload_object(&d, (uint64_t) id), "", "unloaded after the first batch");
                        id = 0;
                }
        }
        tap_is_str(reply_error(&whole), "NoSuchMap", "the stream then ends with NoSuchMap");
        tap_ok(streamed < 100000, "after %zu entries", streamed);
        json_object_put(p);
done:
        bpfcore_disconnect(c);
        if (id > 0)
                unload((uint64_t) id);
}

/*
 * A client reading a long stream as fast as it comes (a MapDump of a
 * million entries with "more") must not keep a slow call (Load) waiting
 * until the stream ends: stream replies count as quick calls, and after
 * 256 of them the slow call gets its turn.
 */
TEST(slow_call_behind_stream) {
        _cleanup_reply_ BpfcoreReply r = {}, loaded = {};
        int64_t map_id;
        int progress[2] = { -1, -1 };
        pid_t reader = -1;
        char c = 0;

        load_object(&d, "globals", json_tokener_parse("{\"maps\":{\"settings\":{\"max_entries\":1000000}}}"), &r);
        map_id = json_int(array_find_name(object_get(&r, "maps"), "settings"), "id");
        if (!tap_ok(map_id > 0 && pipe2(progress, O_CLOEXEC) == 0, "an object with a 1,000,000-entry map"))
                goto done;
        fflush(stdout);
        reader = fork();
        if (reader == 0) {
                BpfcoreClient *client = NULL;
                BpfcoreReply part = {};
                json_object *p = json_object_new_object();
                size_t replies = 0;

                json_object_object_add(p, "map", json_object_new_int64(map_id));
                json_object_object_add(p, "limit", json_object_new_int64(1000000));
                if (bpfcore_connect(d.socket_path, &client) < 0)
                        _exit(1);
                for (int rc = bpfcore_call_more(client, "io.bpfcored.MapDump", p, &part); rc >= 0 && !part.error;
                     rc = bpfcore_next_reply(client, &part)) {
                        bool more = part.continues;

                        bpfcore_reply_done(&part);
                        if (++replies == 1 && write(progress[1], "S", 1) != 1)
                                _exit(1);
                        if (!more)
                                break;
                }
                _exit(write(progress[1], "D", 1) == 1 ? 0 : 1);
        }
        close(progress[1]);
        progress[1] = -1;
        if (!tap_ok(reader > 0 && read(progress[0], &c, 1) == 1 && c == 'S', "a client reading a dump as fast as it comes"))
                goto done;
        /* Starved, the Load would come back only once the dump (3,907 replies) is over. */
        load_object(&d, "tp_core", NULL, &loaded);
        tap_is_str(reply_error(&loaded), "", "a Load meanwhile is served");
        tap_ok(poll(&(struct pollfd) { .fd = progress[0], .events = POLLIN }, 1, 0) == 0,
               "while the dump is still going");
        if (object_int(&loaded, "id") > 0)
                unload((uint64_t) object_int(&loaded, "id"));
        tap_ok(read(progress[0], &c, 1) == 1 && c == 'D', "and the dump then ends");
done:
        if (reader > 0) {
                /* SIGKILL: the harness's cleanup on SIGTERM, inherited by the child, would stop the daemon. */
                kill(reader, SIGKILL);
                waitpid(reader, NULL, 0);
        }
        safe_close(progress[0]);
        safe_close(progress[1]);
        if (object_int(&r, "id") > 0)
                unload((uint64_t) object_int(&r, "id"));
}

static const char *next_event(BpfcoreClient *c, BpfcoreReply *r) {
        json_object *e = NULL;

        bpfcore_reply_done(r);
        if (bpfcore_next_reply(c, r) < 0 || !json_object_object_get_ex(r->parameters, "event", &e))
                return "";
        return json_str(e, "kind");
}

TEST(subscribe) {
        _cleanup_reply_ BpfcoreReply first = {}, ev = {}, r = {}, det = {}, nomore = {};
        BpfcoreClient *c = NULL, *silent = NULL;
        json_object *links, *p, *e = NULL;
        int64_t link_id;
        uint64_t id;
        bool all_ok = true;

        call(&d, "io.bpfcored.Subscribe", NULL, NULL, 0, &nomore);
        tap_is_str(nomore.error, "org.varlink.service.ExpectedMore", "Subscribe without more is ExpectedMore");

        if (!tap_ok(bpfcore_connect(d.socket_path, &c) >= 0 && bpfcore_connect(d.socket_path, &silent) >= 0,
                    "two subscribers connect"))
                return;
        tap_is_int(bpfcore_call_more(c, "io.bpfcored.Subscribe", NULL, &first), 0, "Subscribe answers");
        json_object_object_get_ex(first.parameters, "event", &e);
        tap_is_str(json_str(e, "kind"), "subscribed", "with a first event at once");
        tap_ok(first.continues, "and continues");
        /* The second subscribes and then never reads. */
        {
                json_object *msg = json_tokener_parse("{\"method\":\"io.bpfcored.Subscribe\",\"more\":true}");
                tap_ok(vl_send(bpfcore_client_fd(silent), msg, NULL, 0) == 0, "a subscriber that never reads");
                json_object_put(msg);
        }

        load_object(&d, "globals", json_tokener_parse("{\"attach\":true}"), &r);
        id = (uint64_t) object_int(&r, "id");
        links = json_object_object_get(array_find_name(object_get(&r, "programs"), "count_getpid"), "links");
        link_id = json_int(json_object_array_get_idx(links, 0), "id");
        p = json_object_new_object();
        json_object_object_add(p, "link", json_object_new_int64(link_id));
        call(&d, "io.bpfcored.Detach", p, NULL, 0, &det);
        json_object_put(p);
        unload(id);
        /* Loads go on while the silent subscriber's events pile up. */
        for (int i = 0; i < 10 && all_ok; i++) {
                _cleanup_reply_ BpfcoreReply x = {};
                load_object(&d, "xdp_pass", NULL, &x);
                all_ok = !x.error;
                if (object_int(&x, "id") > 0)
                        unload((uint64_t) object_int(&x, "id"));
        }
        tap_ok(all_ok, "a subscriber that never reads does not stall loads");

        tap_is_str(next_event(c, &ev), "attached", "events in order: attached (inside the load)");
        tap_is_int(json_int(json_object_object_get(ev.parameters, "event"), "link_id"), link_id, "with the link id");
        tap_is_str(next_event(c, &ev), "loaded", "loaded");
        tap_is_int(json_int(json_object_object_get(ev.parameters, "event"), "object_id"), (int64_t) id,
                   "with the object id");
        tap_is_str(next_event(c, &ev), "detached", "detached");
        tap_is_str(next_event(c, &ev), "unloaded", "unloaded");
        bpfcore_disconnect(c);
        bpfcore_disconnect(silent);
}

static void write_conf(const char *name, const char *text) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", d.objects_dir, name);
        f = fopen(path, "we");
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static json_object *find_name(json_object *objects, const char *name) {
        return array_find_name(objects, name);
}

/* Polls List until the object named name is there (or gone) with max_entries of its map "settings". */
static int64_t wait_object(const char *name, int64_t not_id, bool want) {
        for (int i = 0; i < 300; i++) {
                _cleanup_reply_ BpfcoreReply l = {};
                json_object *o = find_name(list_objects(&l), name);

                if (want && o && json_int(o, "id") != not_id)
                        return json_int(o, "id");
                if (!want && !o)
                        return 0;
                usleep(10000);
        }
        return -1;
}

TEST(objects_d) {
        _cleanup_free_ char *path = harness_object_path("globals"), *conf = NULL, *log = NULL;
        _cleanup_reply_ BpfcoreReply l = {}, l2 = {}, l3 = {};
        json_object *good;
        char unlink_path[512];
        size_t size;
        int64_t id, id2;

        tap_is_int(daemon_stop(&d), 0, "daemon stopped to add objects.d entries");
        if (asprintf(&conf, "# a counter, loaded at boot\nfile = %s\nprograms = count_getpid\n"
                            "global.target_pid = 7\nglobal.enabled = true\nmap.settings.max_entries = 32\n", path) < 0)
                abort();
        write_conf("good.conf", conf);
        write_conf("broken.conf", "file = /nonexistent/object.bpf.o\n");
        write_conf("typo.conf", "flie = /x\n");
        tap_is_int(daemon_start(&d), 0, "daemon starts with two broken entries and a good one");

        good = find_name(list_objects(&l), "good");
        tap_ok(good != NULL, "the good entry is loaded at start");
        tap_is_int(json_int(array_find_name(json_object_object_get(good, "maps"), "settings"), "max_entries"), 32,
                   "with its map setting");
        tap_ok(strstr(json_str(good, "source"), "good.conf") != NULL, "and says where it came from");
        {
                char want[80];

                file_sha256(path, want);
                tap_is_str(json_str(good, "digest"), want, "its digest is the object file's sha256 (read once)");
        }
        tap_ok(find_name(json_object_object_get(l.parameters, "objects"), "broken") == NULL, "the broken one is not");
        read_file(d.log_path, &log, &size);
        tap_ok(log && strstr(log, "broken.conf skipped"), "the broken entry is reported");
        tap_ok(log && strstr(log, "typo.conf skipped: line 1: unknown key 'flie'"), "a typo is reported with its line");
        id = json_int(good, "id");

        tap_is_int(daemon_stop(&d), 0, "daemon stopped");
        tap_is_int(daemon_start(&d), 0, "and started again");
        tap_is_int(json_int(find_name(list_objects(&l2), "good"), "id"), id, "an unchanged entry is loaded once: same id");

        free(conf);
        if (asprintf(&conf, "file = %s\nmap.settings.max_entries = 64\n", path) < 0)
                abort();
        write_conf("good.conf", conf);
        daemon_signal(&d, SIGHUP);
        id2 = wait_object("good", id, true);
        tap_ok(id2 > id, "SIGHUP reloads a changed entry under a new id");
        tap_is_int(json_int(array_find_name(json_object_object_get(find_name(list_objects(&l3), "good"), "maps"),
                                            "settings"), "max_entries"), 64, "with the new setting");

        snprintf(unlink_path, sizeof(unlink_path), "%s/good.conf", d.objects_dir);
        unlink(unlink_path);
        snprintf(unlink_path, sizeof(unlink_path), "%s/broken.conf", d.objects_dir);
        unlink(unlink_path);
        snprintf(unlink_path, sizeof(unlink_path), "%s/typo.conf", d.objects_dir);
        unlink(unlink_path);
        daemon_signal(&d, SIGHUP);
        tap_is_int(wait_object("good", 0, false), 0, "SIGHUP after removing the entry unloads its object");
}

/* objects.d's attach.PROGRAM lines: the target syntax of bpfcorectl attach, made as part of the load. */
TEST(objects_d_attach) {
        _cleanup_free_ char *path = harness_object_path("globals"), *conf = NULL, *bad = NULL, *log = NULL;
        _cleanup_reply_ BpfcoreReply l = {}, l2 = {};
        json_object *o, *links, *objects;
        const char *skipped[] = { "badtarget.conf", "relative.conf", "noprog.conf", "notracepoint.conf" };
        /* Longer than 160 bytes: what follows it must count too when the daemon tells whether the entry
         * changed. */
        static const char comment[] =
                "# A counter of getpid() calls, attached at start by the line below; the test "
                "changes only that line and expects SIGHUP to reload the entry, though the "
                "first 200 bytes of the file stay the same.\n";
        char unlink_path[512];
        uint64_t before;
        int64_t id;
        size_t size;

        tap_is_int(daemon_stop(&d), 0, "daemon stopped to add objects.d entries with attachments");
        if (asprintf(&conf,
                     "%sfile = %s\nglobal.enabled = true\nglobal.target_pid = %d\n"
                     "attach.count_getpid = tracepoint syscalls/sys_enter_getpid\n",
                     comment, path, getpid()) < 0)
                abort();
        write_conf("attached.conf", conf);
        write_conf("badtarget.conf", "file = /x.bpf.o\nattach.count_getpid = tracepoint nocategory\n");
        write_conf("relative.conf", "file = /x.bpf.o\nattach.count_getpid = cgroup sys/fs/cgroup cgroup_skb/egress\n");
        if (asprintf(&bad, "file = %s\nattach.no_such_program = tracepoint syscalls/sys_enter_getpid\n", path) < 0)
                abort();
        write_conf("noprog.conf", bad);
        free(bad);
        if (asprintf(&bad, "file = %s\nattach.count_getpid = tracepoint syscalls/sys_enter_no_such_call\n", path) < 0)
                abort();
        write_conf("notracepoint.conf", bad);
        tap_is_int(daemon_start(&d), 0, "daemon starts");

        objects = list_objects(&l);
        o = find_name(objects, "attached");
        links = json_object_object_get(array_find_name(json_object_object_get(o, "programs"), "count_getpid"), "links");
        tap_is_int(links ? (int64_t) json_object_array_length(links) : -1, 1,
                   "attach.count_getpid = tracepoint ...: the program is attached at start");
        tap_is_str(json_str(json_object_array_get_idx(links, 0), "target"), "syscalls/sys_enter_getpid",
                   "to the tracepoint the line names");
        before = getpid_count(json_object_object_get(o, "maps"));
        call_getpid(4);
        tap_ok(getpid_count(json_object_object_get(o, "maps")) >= before + 4, "and it counts getpid() calls");
        tap_is_int(json_object_array_length(objects), 1, "no other entry is loaded: each broken one is skipped whole");

        read_file(d.log_path, &log, &size);
        tap_ok(log && strstr(log, "badtarget.conf skipped: line 2: attach.count_getpid: tracepoint takes CAT/NAME"),
               "a malformed target is reported with its line");
        tap_ok(log && strstr(log, "relative.conf skipped: line 2: attach.count_getpid: path must be an absolute path"),
               "a relative path is refused");
        tap_ok(log && strstr(log, "noprog.conf skipped: io.bpfcored.NoSuchProgram"), "an unknown program is reported");
        tap_ok(log && strstr(log, "notracepoint.conf skipped: io.bpfcored.AttachFailed"),
               "a failed attachment is reported, and its object not kept");
        if (!log || !strstr(log, "notracepoint.conf skipped"))
                daemon_dump_log(&d);

        for (size_t i = 0; i < ELEMENTSOF(skipped); i++) {
                snprintf(unlink_path, sizeof(unlink_path), "%s/%s", d.objects_dir, skipped[i]);
                unlink(unlink_path);
        }

        /* Only the attach line changes, past the first 200 bytes: SIGHUP reloads the entry with the new
         * target. */
        id = json_int(o, "id");
        free(conf);
        if (asprintf(&conf,
                     "%sfile = %s\nglobal.enabled = true\nglobal.target_pid = %d\n"
                     "attach.count_getpid = tracepoint syscalls/sys_enter_getppid\n",
                     comment, path, getpid()) < 0)
                abort();
        write_conf("attached.conf", conf);
        daemon_signal(&d, SIGHUP);
        tap_ok(wait_object("attached", id, true) > id, "SIGHUP reloads an entry whose attach line changed");
        links = json_object_object_get(
                array_find_name(json_object_object_get(find_name(list_objects(&l2), "attached"), "programs"),
                                "count_getpid"),
                "links");
        tap_is_str(json_str(json_object_array_get_idx(links, 0), "target"), "syscalls/sys_enter_getppid",
                   "attached to the tracepoint the changed line names");

        /* attach = yes makes a link, then the attach line fails: subscribers hear of the failed load only,
         * not of a link that went with it. */
        {
                _cleanup_reply_ BpfcoreReply first = {}, ev = {};
                struct timeval tv = {.tv_sec = 10};
                BpfcoreClient *c = NULL;
                const char *kind = "";
                int attached = 0;

                free(conf);
                if (asprintf(&conf,
                             "file = %s\nattach = yes\n"
                             "attach.count_getpid = tracepoint syscalls/sys_enter_no_such_call\n",
                             path) < 0)
                        abort();
                if (tap_ok(bpfcore_connect(d.socket_path, &c) >= 0 &&
                                   bpfcore_call_more(c, "io.bpfcored.Subscribe", NULL, &first) == 0,
                           "a subscriber")) {
                        (void) setsockopt(bpfcore_client_fd(c), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                        write_conf("partial.conf", conf);
                        daemon_signal(&d, SIGHUP);
                        for (int i = 0; i < 10 && strcmp(kind, "load_failed") != 0; i++) {
                                kind = next_event(c, &ev);
                                if (!*kind)
                                        break;
                                attached += strcmp(kind, "attached") == 0;
                        }
                        tap_is_str(kind, "load_failed",
                                   "an entry whose second attachment fails is a failed load");
                        tap_is_int(attached, 0, "and no attached event came for the link that went with it");
                }
                bpfcore_disconnect(c);
                snprintf(unlink_path, sizeof(unlink_path), "%s/partial.conf", d.objects_dir);
                unlink(unlink_path);
        }

        snprintf(unlink_path, sizeof(unlink_path), "%s/attached.conf", d.objects_dir);
        unlink(unlink_path);
        daemon_signal(&d, SIGHUP);
        tap_is_int(wait_object("attached", 0, false), 0, "SIGHUP after removing the entry unloads it, link and all");
}

TEST(cleanup) {
        daemon_cleanup(&d);
        tap_is_int(kernel_programs_left(progs_before, n_progs_before), 0,
                   "nothing this test loaded is left in the kernel");
        free(progs_before);
}

TAP_MAIN
