/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <bpf/bpf.h>

#include "crash-point.h"
#include "log.h"
#include "registry.h"

#define BPFFS_MOUNT "/sys/fs/bpf"

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static bool is_bpffs(const char *path) {
        struct statfs sfs;

        return statfs(path, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

static int ensure_bpffs(const char *root) {
        int r;

        /* A bare system (or a container) may not have bpffs mounted yet. */
        if (strncmp(root, BPFFS_MOUNT "/", strlen(BPFFS_MOUNT) + 1) == 0 && !is_bpffs(BPFFS_MOUNT)) {
                if (mount("bpf", BPFFS_MOUNT, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0)
                        return log_error_errno(-errno, "%s is not a bpf filesystem and mounting one failed: %m",
                                               BPFFS_MOUNT);
                log_info("Mounted a bpf filesystem on %s.", BPFFS_MOUNT);
        }
        r = mkdir_p(root, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create bpffs root %s: %m", root);
        if (!is_bpffs(root))
                return log_error_errno(-ENOTDIR, "%s is not on a bpf filesystem: pins need bpffs", root);
        return 0;
}

static bool parse_id(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!*s || *s == '0' || strspn(s, "0123456789") != strlen(s))
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

int registry_new(const char *root, Registry **ret) {
        Registry *reg;
        DIR *d;
        struct dirent *de;
        int r;

        r = ensure_bpffs(root);
        if (r < 0)
                return r;

        reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        reg->root = strdup(root);
        reg->next_id = 1;
        reg->next_filter_id = CLSACT_ID_MIN;
        if (!reg->root) {
                registry_free(reg);
                return -ENOMEM;
        }

        /* Ids continue after those still pinned from an earlier run. */
        d = opendir(root);
        if (!d) {
                r = -errno;
                registry_free(reg);
                return r;
        }
        while ((de = readdir(d))) {
                uint64_t id;

                if (parse_id(de->d_name, &id) && id >= reg->next_id)
                        reg->next_id = id + 1;
        }
        closedir(d);
        *ret = reg;
        return 0;
}

Registry *registry_free(Registry *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_objects; i++)
                object_free(r->objects[i]);
        free(r->objects);
        free(r->root);
        free(r);
        return NULL;
}

/* Links first when removing: a program is detached before it goes. */
static const char *const pin_subdirs[] = { "links", "programs", "maps" };

int registry_reserve(Registry *r, Object *o, Failure *f) {
        for (;;) {
                _cleanup_free_ char *dir = NULL;
                uint64_t id = r->next_id++;

                if (asprintf(&dir, "%s/%llu", r->root, (unsigned long long) id) < 0)
                        return -ENOMEM;
                if (mkdir(dir, 0700) < 0) {
                        if (errno == EEXIST)
                                continue; /* left by someone else: never reuse */
                        return failure_system(f, -errno, "creating pin directory %s", dir);
                }
                for (size_t i = 0; i < ELEMENTSOF(pin_subdirs); i++) {
                        _cleanup_free_ char *sub = NULL;

                        if (asprintf(&sub, "%s/%s", dir, pin_subdirs[i]) < 0 || mkdir(sub, 0700) < 0) {
                                int err = sub ? -errno : -ENOMEM;
                                o->pin_dir = TAKE_PTR(dir);
                                registry_unpin(o);
                                return failure_system(f, err, "creating pin directory");
                        }
                }
                o->id = id;
                o->pin_dir = TAKE_PTR(dir);
                return 0;
        }
}

/*
 * Removes a link's pin so that the link is gone when this returns: links
 * that can be detached are; for the others (perf links), dropping the pin
 * while holding an fd makes our close() the last reference, freed at once
 * rather than whenever the kernel frees the pin's inode.
 */
static int unpin_link_at(int dfd, const char *dir, const char *name) {
        char path[4096];
        _cleanup_close_ int fd = -1;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = bpf_obj_get(path);
        if (fd >= 0)
                (void) bpf_link_detach(fd);
        return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
}

void registry_unpin(Object *o) {
        _cleanup_close_ int dfd = -1;

        if (!o->pin_dir)
                return;
        dfd = open(o->pin_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0)
                return;
        /* Only what the daemon puts there: never a recursive delete of a path. */
        for (size_t i = 0; i < ELEMENTSOF(pin_subdirs); i++) {
                int sfd = openat(dfd, pin_subdirs[i], O_DIRECTORY | O_RDONLY | O_CLOEXEC);
                DIR *d;
                struct dirent *de;

                if (sfd < 0)
                        continue;
                d = fdopendir(sfd);
                if (!d) {
                        close(sfd);
                        continue;
                }
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        char sub[4096];

                        snprintf(sub, sizeof(sub), "%s/%s", o->pin_dir, pin_subdirs[i]);
                        if ((i == 0 ? unpin_link_at(sfd, sub, de->d_name) : unlinkat(sfd, de->d_name, 0)) < 0)
                                log_warning_errno(-errno, "Cannot remove pin %s/%s/%s: %m", o->pin_dir,
                                                  pin_subdirs[i], de->d_name);
                        else
                                crash_point("unload-mid-unpin");
                }
                closedir(d);
                if (unlinkat(dfd, pin_subdirs[i], AT_REMOVEDIR) < 0)
                        log_warning_errno(-errno, "Cannot remove %s/%s: %m", o->pin_dir, pin_subdirs[i]);
        }
        if (rmdir(o->pin_dir) < 0)
                log_warning_errno(-errno, "Cannot remove %s: %m", o->pin_dir);
}

int registry_pin(Object *o, Failure *f) {
        struct bpf_program *prog;
        struct bpf_map *map;
        size_t i = 0;

        bpf_object__for_each_program(prog, o->bpf) {
                _cleanup_free_ char *path = NULL;

                if (bpf_program__fd(prog) < 0)
                        continue;
                if (asprintf(&path, "%s/programs/%s", o->pin_dir, bpf_program__name(prog)) < 0)
                        return -ENOMEM;
                if (bpf_obj_pin(bpf_program__fd(prog), path) < 0)
                        return failure_system(f, -errno, "pinning program at %s", path);
        }
        bpf_object__for_each_map(map, o->bpf) {
                _cleanup_free_ char *path = NULL;

                if (bpf_map__fd(map) < 0)
                        continue;
                /* Maps declared pinned by name are already in maps/ (libbpf's pin_root_path). */
                if (bpf_map__is_pinned(map)) {
                        i++;
                        continue;
                }
                if (asprintf(&path, "%s/maps/%s", o->pin_dir, o->maps[i].name) < 0)
                        return -ENOMEM;
                i++;
                /* bpffs refuses names with dots: ".rodata" is pinned as "_rodata". */
                for (char *p = strrchr(path, '/'); *p; p++)
                        if (*p == '.')
                                *p = '_';
                if (bpf_obj_pin(bpf_map__fd(map), path) < 0)
                        return failure_system(f, -errno, "pinning map at %s", path);
        }
        return 0;
}

int registry_add(Registry *r, Object *o) {
        Object **a = reallocarray(r->objects, r->n_objects + 1, sizeof(Object *));

        if (!a)
                return -ENOMEM;
        r->objects = a;
        r->objects[r->n_objects++] = o;
        return 0;
}

Object *registry_get(Registry *r, uint64_t id) {
        for (size_t i = 0; i < r->n_objects; i++)
                if (r->objects[i]->id == id)
                        return r->objects[i];
        return NULL;
}

int registry_unload(Registry *r, uint64_t id) {
        for (size_t i = 0; i < r->n_objects; i++) {
                Object *o = r->objects[i];

                if (o->id != id)
                        continue;
                registry_unpin(o);
                object_free(o);
                memmove(r->objects + i, r->objects + i + 1, (r->n_objects - i - 1) * sizeof(Object *));
                r->n_objects--;
                return 0;
        }
        return -ENOENT;
}

size_t registry_count_programs(const Registry *r) {
        size_t n = 0;

        for (size_t i = 0; i < r->n_objects; i++)
                n += r->objects[i]->n_programs;
        return n;
}

size_t registry_count_maps(const Registry *r) {
        size_t n = 0;

        for (size_t i = 0; i < r->n_objects; i++)
                n += r->objects[i]->n_maps;
        return n;
}

int registry_pin_link(const Object *o, int link_fd, uint32_t link_id, Failure *f) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/links/%u", o->pin_dir, link_id) < 0)
                return -ENOMEM;
        if (bpf_obj_pin(link_fd, path) < 0)
                return failure_system(f, -errno, "pinning link at %s", path);
        return 0;
}

void registry_unpin_link(const Object *o, uint32_t link_id) {
        _cleanup_free_ char *dir = NULL;
        char name[16];
        int r;

        if (asprintf(&dir, "%s/links", o->pin_dir) < 0)
                return;
        _cleanup_close_ int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);

        if (dfd < 0)
                return;
        snprintf(name, sizeof(name), "%u", link_id);
        r = unpin_link_at(dfd, dir, name);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Cannot remove link pin %s/%s: %m", dir, name);
}

uint32_t registry_new_filter_id(Registry *r) {
        for (;;) {
                uint32_t id = r->next_filter_id;

                r->next_filter_id = id == UINT32_MAX ? CLSACT_ID_MIN : id + 1;
                if (!registry_find_link(r, id, NULL))
                        return id;
        }
}

Object *registry_find_link(Registry *r, uint32_t link_id, ProgramInfo **ret_program) {
        for (size_t i = 0; i < r->n_objects; i++)
                for (size_t k = 0; k < r->objects[i]->n_programs; k++) {
                        ProgramInfo *p = &r->objects[i]->programs[k];

                        for (size_t l = 0; l < p->n_links; l++)
                                if (p->links[l].id == link_id) {
                                        if (ret_program)
                                                *ret_program = p;
                                        return r->objects[i];
                                }
                }
        return NULL;
}

int registry_program_fd(const Object *o, const char *name) {
        _cleanup_free_ char *path = NULL;
        struct bpf_program *prog;
        int fd;

        /* A live object has the fd; a recovered one is reached through its pin. */
        if (o->bpf && (prog = bpf_object__find_program_by_name(o->bpf, name)) && bpf_program__fd(prog) >= 0) {
                fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? -errno : fd;
        }
        if (asprintf(&path, "%s/programs/%s", o->pin_dir, name) < 0)
                return -ENOMEM;
        fd = bpf_obj_get(path);
        return fd < 0 ? -errno : fd;
}
