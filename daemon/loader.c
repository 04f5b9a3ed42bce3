/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "btf-targets.h"
#include "globals.h"
#include "loader.h"
#include "log.h"
#include "params.h"
#include "prog-batch.h"
#include "protocol.h"

#define CAPTURE_MAX (64u * 1024)

#ifndef EM_BPF
#define EM_BPF 247
#endif

/* libbpf's own words for the current load, to tell the caller why it failed. */
static __thread FILE *capture;
static __thread size_t captured;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
        if (capture && level != LIBBPF_DEBUG && captured < CAPTURE_MAX) {
                va_list aq;
                int n;

                va_copy(aq, ap);
                n = vfprintf(capture, fmt, aq);
                va_end(aq);
                if (n > 0)
                        captured += (size_t) n;
        }
        if (log_get_max_priority() >= LOG_DEBUG) {
                _cleanup_free_ char *s = NULL;

                if (vasprintf(&s, fmt, ap) >= 0)
                        log_debug("libbpf: %s", s);
        }
        return 0;
}

/*
 * libbpf starts every bpf_object__load() by loading a trivial program
 * ("r0 = 0; exit" as a socket filter) to see that loading works at all,
 * then closes it: ~40 us of kernel work per load, worth it for a process
 * that loads once, not for a daemon that has loaded before. During a load,
 * that exact program is answered with a copy of the fd of one loaded and
 * kept at the first such request: the caller gets the very program it asked
 * for. Any other program, or outside a load, is libbpf's own bpf_prog_load()
 * (libbpf calls it through its PLT, so this definition takes its place).
 */
static __thread bool probe_pending; /* set for the length of a load, until its probe is answered */
/* The program the kernel last refused during a load: libbpf closes every program of an object that fails,
 * so which one failed cannot be told from the object afterwards. */
static __thread char refused[256];
static int kept_probe = -1;
static unsigned probes_answered;

static bool is_loading_probe(enum bpf_prog_type type, const char *name, const char *license,
                             const struct bpf_insn *insns, size_t insn_cnt, const struct bpf_prog_load_opts *opts) {
        static const struct bpf_insn probe[] = {
                { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
                { .code = BPF_JMP | BPF_EXIT },
        };

        return type == BPF_PROG_TYPE_SOCKET_FILTER && !name && license && strcmp(license, "GPL") == 0 &&
               insn_cnt == ELEMENTSOF(probe) && memcmp(insns, probe, sizeof(probe)) == 0 &&
               (!opts || (opts->prog_flags == 0 && opts->expected_attach_type == 0 && opts->prog_btf_fd == 0 &&
                          opts->attach_btf_id == 0 && opts->attach_prog_fd == 0 && opts->attach_btf_obj_fd == 0 &&
                          opts->log_level == 0 && opts->kern_version == 0 && opts->prog_ifindex == 0 &&
                          opts->func_info_cnt == 0 && opts->line_info_cnt == 0 && opts->fd_array == NULL &&
                          opts->token_fd == 0));
}

int bpf_prog_load(enum bpf_prog_type type, const char *name, const char *license, const struct bpf_insn *insns,
                  size_t insn_cnt, struct bpf_prog_load_opts *opts) {
        static void *own;
        /* Only a load's first such request is its probe: libbpf's feature probes load the same program once
         * per process, and one binds a map to what it gets. */
        bool probe = probe_pending && is_loading_probe(type, name, license, insns, insn_cnt, opts);
        __typeof__(&bpf_prog_load) f;
        int fd;

        if (probe)
                probe_pending = false;
        else if (prog_batch_take(type, name, license, insns, insn_cnt, opts, &fd))
                return fd;
        if (probe && kept_probe >= 0) {
                fd = fcntl(kept_probe, F_DUPFD_CLOEXEC, 3);
                if (fd >= 0) {
                        probes_answered++;
                        return fd;
                }
        }
        f = libbpf_own(&own, "bpf_prog_load");
        if (!f)
                return -ENOSYS;
        fd = f(type, name, license, insns, insn_cnt, opts);
        if (fd < 0 && !probe && name)
                snprintf(refused, sizeof(refused), "%s", name);
        if (probe && fd >= 0 && kept_probe < 0)
                kept_probe = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return fd;
}

/* A map bound to a program of a batch is bound once the program is loaded (prog-batch.h). */
int bpf_prog_bind_map(int prog_fd, int map_fd, const struct bpf_prog_bind_opts *opts) {
        static void *own;
        __typeof__(&bpf_prog_bind_map) f;
        int r;

        if (prog_batch_bind(prog_fd, map_fd, opts, &r))
                return r;
        f = libbpf_own(&own, "bpf_prog_bind_map");
        if (!f)
                return -ENOSYS;
        return f(prog_fd, map_fd, opts);
}

unsigned loader_probes_answered(void) {
        return probes_answered;
}

/*
 * Each load hands the kernel the object's BTF (bpf_btf_load()), which the
 * kernel checks type by type: tens of microseconds for an object built on
 * vmlinux.h. A BTF object in the kernel is immutable, so loads of the same
 * plan may share one: during a load, BTF byte for byte equal to what the
 * plan kept from an earlier load is answered with a copy of that fd; the
 * first load of a plan keeps what it loaded. Anything else is libbpf's own.
 */
static __thread KeptBtf *kept; /* the plan's, for the length of a load */
static unsigned btf_reused;

void kept_btf_done(KeptBtf *k) {
        free(k->data);
        safe_close(k->fd);
        *k = (KeptBtf) { .fd = -1 };
}

int bpf_btf_load(const void *data, size_t size, struct bpf_btf_load_opts *opts) {
        static void *own;
        __typeof__(&bpf_btf_load) f;
        bool plain = !opts || (opts->log_level == 0 && !opts->log_buf && opts->btf_flags == 0 && opts->token_fd == 0);
        int fd;

        if (kept && kept->fd >= 0 && plain && kept->size == size && memcmp(kept->data, data, size) == 0) {
                fd = fcntl(kept->fd, F_DUPFD_CLOEXEC, 3);
                if (fd >= 0) {
                        btf_reused++;
                        return fd;
                }
        }
        f = libbpf_own(&own, "bpf_btf_load");
        if (!f)
                return -ENOSYS;
        fd = f(data, size, opts);
        /* The object's BTF is the last a load makes (libbpf's feature probes, once per process, come before
         * it): keep the latest. Only equal bytes are ever reused, so keeping a probe's costs nothing. */
        if (kept && fd >= 0 && plain) {
                void *copy = malloc(size);
                int dup = copy ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;

                if (dup >= 0) {
                        kept_btf_done(kept);
                        memcpy(copy, data, size);
                        *kept = (KeptBtf) { .data = TAKE_PTR(copy), .size = size, .fd = dup };
                }
                free(copy);
        }
        return fd;
}

unsigned loader_btf_reused(void) {
        return btf_reused;
}

int loader_setup(void) {
        libbpf_set_print(libbpf_print);
        elf_version(EV_CURRENT);
        return btf_targets_setup();
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void digest_hex(const unsigned char md[32], char ret[static LOADER_DIGEST_MAX]) {
        memcpy(ret, "sha256:", 7);
        hexlify(ret + 7, md, 32);
}

int loader_digest(const void *data, size_t size, char ret[static LOADER_DIGEST_MAX]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;

        if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len != 32)
                return -EIO;
        digest_hex(md, ret);
        return 0;
}

/* Below this, a thread costs more than the hash. */
#define DIGEST_THREAD_MIN (128u * 1024)

static void *digest_thread(void *userdata) {
        DigestJob *j = userdata;

        j->r = loader_digest(j->data, j->size, j->digest);
        return NULL;
}

void loader_digest_start(DigestJob *j, const void *data, size_t size) {
        *j = (DigestJob) { .data = data, .size = size, .r = -EINPROGRESS };
        if (size >= DIGEST_THREAD_MIN && pthread_create(&j->thread, NULL, digest_thread, j) == 0)
                j->running = true;
        else
                j->r = loader_digest(data, size, j->digest);
}

void loader_digest_known(DigestJob *j, const void *data, size_t size, const char digest[LOADER_DIGEST_MAX]) {
        *j = (DigestJob) { .data = data, .size = size };
        memcpy(j->digest, digest, LOADER_DIGEST_MAX);
}

int loader_digest_wait(DigestJob *j) {
        if (j->running) {
                pthread_join(j->thread, NULL);
                j->running = false;
        }
        return j->data ? j->r : -EINVAL;
}

static const char *machine_name(unsigned m) {
        switch (m) {
        case EM_X86_64: return "x86-64";
        case EM_386: return "i386";
        case EM_AARCH64: return "AArch64";
        case EM_ARM: return "ARM";
        case EM_RISCV: return "RISC-V";
        case EM_PPC64: return "PowerPC64";
        case EM_S390: return "s390";
        default: return NULL;
        }
}

/* Adds data[off, off + len) to a plan key; the ranges were checked to lie within the object. */
static bool key_add(EVP_MD_CTX *key, const void *data, uint64_t off, uint64_t len) {
        return !key || EVP_DigestUpdate(key, (const char *) data + off, len);
}

/* What the rule below needs of a section header. */
typedef struct SectionRole {
        uint32_t type, link, info;
        uint64_t flags;
        const char *name; /* NULL when it has none (or the names cannot be read) */
} SectionRole;

/* Never code or anything loaded (the planner reads every executable section, whatever its name). */
static bool dwarf_by_name(const SectionRole *s) {
        return s->name && !(s->flags & (SHF_ALLOC | SHF_EXECINSTR)) &&
               ((s->type == SHT_PROGBITS && strncmp(s->name, ".debug_", 7) == 0) ||
                (s->type == SHT_REL && strncmp(s->name, ".rel.debug_", 11) == 0));
}

/*
 * The sections neither the planner nor libbpf read (skip[i]): DWARF, that is
 * PROGBITS named .debug_* and REL named .rel.debug_*, neither code nor
 * loaded, which libbpf ignores by name; unless anything may need them
 * whatever their name: the section names
 * (e_shstrndx), a section another one links to (a symbol table's strings, a
 * relocation's symbols), the target of a relocation section that is not
 * DWARF. Symbol tables, which libbpf finds by type, are never PROGBITS or REL.
 * The plan key and the sparse read both follow this, so the key covers every
 * byte read and libbpf gets no byte that was not read and checked.
 */
static int mark_skippable(const SectionRole *s, size_t n, size_t shstrndx, bool *skip) {
        _cleanup_free_ bool *needed = calloc(MAX(n, 1u), sizeof(bool));

        if (!needed)
                return -ENOMEM;
        for (size_t j = 1; j < n; j++) {
                if (s[j].link < n)
                        needed[s[j].link] = true;
                if ((s[j].type == SHT_REL || s[j].type == SHT_RELA) && !dwarf_by_name(&s[j]) && s[j].info < n)
                        needed[s[j].info] = true;
        }
        for (size_t i = 0; i < n; i++)
                skip[i] = i != 0 && i != shstrndx && !needed[i] && dwarf_by_name(&s[i]);
        return 0;
}

bool loader_file_unchanged(const struct stat *a, const struct stat *b) {
        return a->st_ino != 0 && a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads len bytes at off; fewer only at the end of the file. */
static ssize_t pread_full(int fd, char *buf, size_t len, uint64_t off) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, buf + done, len - done, (off_t) (off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

/* What loader_file_holds() reads at a time, into a buffer kept per thread. */
#define HOLDS_CHUNK (64u * 1024)

/* Below this, reading the whole object costs less than finding its sections. */
#define SPARSE_MIN (128u * 1024)
/* Ranges closer than this are read as one: a syscall costs more than a few KiB of copying. */
#define SPARSE_GAP (16u * 1024)

static int cmp_hole(const void *a, const void *b) {
        const ObjectHole *x = a, *y = b;

        return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * The byte ranges a sparse read needs, from the headers already in o->data:
 * 0 with *ret filled, or -EINVAL when the headers are not a plain 64-bit
 * little-endian ELF within the file (the whole file is read then, and
 * loader_check_elf() says what is wrong).
 */
static int needed_ranges(const ObjectBytes *o, ObjectHole **ret, size_t *ret_n) {
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *) o->data;
        _cleanup_free_ Elf64_Shdr *sh = malloc((size_t) eh->e_shnum * sizeof(Elf64_Shdr));
        _cleanup_free_ SectionRole *roles = calloc(eh->e_shnum, sizeof(SectionRole));
        _cleanup_free_ bool *skip = calloc(eh->e_shnum, sizeof(bool));
        _cleanup_free_ ObjectHole *r = calloc((size_t) eh->e_shnum + 2, sizeof(ObjectHole));
        const Elf64_Shdr *names;
        size_t n = 0;

        if (!sh || !roles || !skip || !r)
                return -ENOMEM;
        /* Copied out: e_shoff need not be aligned. */
        memcpy(sh, o->data + eh->e_shoff, (size_t) eh->e_shnum * sizeof(Elf64_Shdr));
        names = &sh[eh->e_shstrndx];
        for (size_t i = 0; i < eh->e_shnum; i++) {
                if (sh[i].sh_name >= names->sh_size)
                        return -EINVAL;
                if (sh[i].sh_type != SHT_NOBITS && (sh[i].sh_offset > o->size || sh[i].sh_size > o->size - sh[i].sh_offset))
                        return -EINVAL;
                roles[i] = (SectionRole) { .type = sh[i].sh_type, .link = sh[i].sh_link, .info = sh[i].sh_info,
                                           .flags = sh[i].sh_flags, .name = o->data + names->sh_offset + sh[i].sh_name };
        }
        if (mark_skippable(roles, eh->e_shnum, eh->e_shstrndx, skip) < 0)
                return -ENOMEM;
        r[n++] = (ObjectHole) { 0, sizeof(Elf64_Ehdr) };
        r[n++] = (ObjectHole) { eh->e_shoff, (uint64_t) eh->e_shnum * sizeof(Elf64_Shdr) };
        /* The names section is never skipped: holes never cover a byte read before. */
        for (size_t i = 1; i < eh->e_shnum; i++)
                if (sh[i].sh_type != SHT_NOBITS && sh[i].sh_size > 0 && !skip[i])
                        r[n++] = (ObjectHole) { sh[i].sh_offset, sh[i].sh_size };
        qsort(r, n, sizeof(*r), cmp_hole);
        *ret = TAKE_PTR(r);
        *ret_n = n;
        return 0;
}

/* Reads [off, off + len) into place; -EIO when the file ended before it (it shrank). */
static int read_range(int fd, ObjectBytes *o, uint64_t off, uint64_t len) {
        ssize_t n = pread_full(fd, o->data + off, len, off);

        if (n < 0)
                return (int) n;
        return (uint64_t) n == len ? 0 : -EIO;
}

/* Reads what of [off, end) is not in done[] (read already: never read a byte twice). */
static int read_new(int fd, ObjectBytes *o, uint64_t off, uint64_t end, const ObjectHole *done, size_t n_done) {
        while (off < end) {
                uint64_t stop = end;
                bool inside = false;
                int r;

                for (size_t i = 0; i < n_done; i++) {
                        if (off >= done[i].off && off < done[i].off + done[i].len) {
                                off = done[i].off + done[i].len;
                                inside = true;
                        } else if (done[i].off > off && done[i].off < stop)
                                stop = done[i].off;
                }
                if (inside)
                        continue;
                r = read_range(fd, o, off, stop - off);
                if (r < 0)
                        return r;
                off = stop;
        }
        return 0;
}

static bool overlap(const ObjectHole *a, const ObjectHole *b) {
        return a->off < b->off + b->len && b->off < a->off + a->len;
}

/* The headers, the section names, then every needed range, merged where close; holes are the rest. */
static int read_sparse(int fd, ObjectBytes *o) {
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *) o->data;
        _cleanup_free_ ObjectHole *want = NULL;
        Elf64_Shdr names;
        ObjectHole done[3];
        uint64_t at = 0;
        size_t n_want = 0;
        int r;

        r = read_range(fd, o, 0, sizeof(Elf64_Ehdr));
        if (r < 0)
                return r;
        if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
            eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 ||
            eh->e_shstrndx == SHN_UNDEF || eh->e_shstrndx >= eh->e_shnum || eh->e_shoff > o->size ||
            (uint64_t) eh->e_shnum * sizeof(Elf64_Shdr) > o->size - eh->e_shoff)
                return -EINVAL;
        done[0] = (ObjectHole) { 0, sizeof(Elf64_Ehdr) };
        done[1] = (ObjectHole) { eh->e_shoff, (uint64_t) eh->e_shnum * sizeof(Elf64_Shdr) };
        if (overlap(&done[0], &done[1]))
                return -EINVAL;
        r = read_range(fd, o, done[1].off, done[1].len);
        if (r < 0)
                return r;
        /* Copied out: e_shoff need not be aligned. */
        memcpy(&names, o->data + eh->e_shoff + (size_t) eh->e_shstrndx * sizeof(Elf64_Shdr), sizeof(names));
        /* Names as libelf reads them for the others (a plain string table), or the whole file is read. */
        if (names.sh_type != SHT_STRTAB || (names.sh_flags & SHF_COMPRESSED) || names.sh_offset > o->size ||
            names.sh_size > o->size - names.sh_offset || names.sh_size == 0)
                return -EINVAL;
        done[2] = (ObjectHole) { names.sh_offset, names.sh_size };
        /* Headers are never read twice: a file changing under us cannot change what was decided on. */
        if (overlap(&done[2], &done[0]) || overlap(&done[2], &done[1]))
                return -EINVAL;
        r = read_range(fd, o, done[2].off, done[2].len);
        if (r < 0)
                return r;
        if (o->data[names.sh_offset + names.sh_size - 1] != 0)
                return -EINVAL; /* names must end inside their section */
        r = needed_ranges(o, &want, &n_want);
        if (r < 0)
                return r;
        o->holes = calloc(n_want + 1, sizeof(ObjectHole));
        if (!o->holes)
                return -ENOMEM;
        for (size_t i = 0; i < n_want;) {
                uint64_t start = MAX(want[i].off, at), end = want[i].off + want[i].len;

                /* Take in the following ranges while the gap to them is small. */
                for (i++; i < n_want && want[i].off <= end + SPARSE_GAP; i++)
                        end = MAX(end, want[i].off + want[i].len);
                if (end <= at)
                        continue;
                if (start - at <= SPARSE_GAP)
                        start = at;
                else {
                        o->holes[o->n_holes++] = (ObjectHole) { at, start - at };
                        o->hole_bytes += start - at;
                }
                r = read_new(fd, o, start, end, done, ELEMENTSOF(done));
                if (r < 0)
                        return r;
                at = end;
        }
        if (at < o->size) {
                o->holes[o->n_holes++] = (ObjectHole) { at, o->size - at };
                o->hole_bytes += o->size - at;
        }
        return 0;
}

int loader_read_whole(int fd, size_t size, ObjectBytes *o) {
        ssize_t n;

        *o = (ObjectBytes) { .data = malloc(size + 1) };
        if (!o->data)
                return -ENOMEM;
        n = pread_full(fd, o->data, size, 0);
        if (n < 0)
                return (int) n;
        o->size = (size_t) n; /* shrank meanwhile: what we have is the object */
        o->data[o->size] = 0;
        return 0;
}

int loader_read(int fd, size_t size, ObjectBytes *o) {
        int r;

        if (size < SPARSE_MIN)
                return loader_read_whole(fd, size, o);
        *o = (ObjectBytes) { .size = size };
        o->data = mmap(NULL, size + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (o->data == MAP_FAILED) {
                o->data = NULL;
                return -ENOMEM;
        }
        o->mapped = size + 1;
        r = read_sparse(fd, o);
        if (r != -EINVAL && r != -EIO)
                return r;
        /* Not an ELF we can read in parts, or it shrank: all of it, as it is now. */
        loader_read_done(o);
        return loader_read_whole(fd, size, o);
}

int loader_read_holes(int fd, ObjectBytes *o) {
        for (size_t i = 0; i < o->n_holes; i++) {
                int r = read_range(fd, o, o->holes[i].off, o->holes[i].len);

                /* Shrunk meanwhile: the digest covers what there is (zeros past the end). */
                if (r < 0 && r != -EIO)
                        return r;
        }
        free(o->filled);
        o->filled = TAKE_PTR(o->holes);
        o->n_filled = o->n_holes;
        o->n_holes = 0;
        return 0;
}

void loader_forget_holes(ObjectBytes *o) {
        long page = sysconf(_SC_PAGESIZE);

        if (!o->mapped || o->n_filled == 0 || page <= 0)
                return;
        for (size_t i = 0; i < o->n_filled; i++) {
                uint64_t start = (o->filled[i].off + (uint64_t) page - 1) / (uint64_t) page * (uint64_t) page,
                         end = (o->filled[i].off + o->filled[i].len) / (uint64_t) page * (uint64_t) page;

                /* Whole pages only: an edge shared with a section that is read stays. */
                if (end > start)
                        (void) madvise(o->data + start, end - start, MADV_DONTNEED);
        }
        free(o->holes);
        o->holes = TAKE_PTR(o->filled);
        o->n_holes = o->n_filled;
        o->n_filled = 0;
}

int loader_file_holds(int fd, const ObjectBytes *o) {
        static __thread char *buf;
        const ObjectHole *skip = o->n_holes > 0 ? o->holes : o->filled;
        size_t n_skip = o->n_holes > 0 ? o->n_holes : o->n_filled;
        uint64_t off = 0;

        if (!buf && !(buf = malloc(HOLDS_CHUNK)))
                return -ENOMEM;
        /* The holes are sorted and apart: the bytes to compare lie between them. */
        for (size_t i = 0; i <= n_skip; i++) {
                uint64_t end = i < n_skip ? skip[i].off : o->size;

                while (off < end) {
                        size_t len = (size_t) MIN(end - off, (uint64_t) HOLDS_CHUNK);
                        ssize_t n = pread_full(fd, buf, len, off);

                        if (n < 0)
                                return (int) n;
                        if ((size_t) n != len || memcmp(buf, o->data + off, len) != 0)
                                return 0;
                        off += len;
                }
                if (i < n_skip)
                        off = skip[i].off + skip[i].len;
        }
        return 1;
}

void loader_read_done(ObjectBytes *o) {
        if (o->mapped)
                munmap(o->data, o->mapped);
        else
                free(o->data);
        free(o->holes);
        free(o->filled);
        *o = (ObjectBytes) {};
}

int loader_check_elf(const void *data, size_t size, char ret_plan_key[LOADER_DIGEST_MAX], Failure *f) {
        GElf_Shdr *shdrs = NULL;
        SectionRole *roles = NULL;
        bool *skip = NULL;
        EVP_MD_CTX *key = NULL;
        Elf *elf;
        GElf_Ehdr eh;
        Elf_Scn *scn = NULL;
        size_t shnum, shstrndx, n_exec = 0;
        bool have_names;
        int r = 0;

#define INVALID(...) failure_setf(f, -EINVAL, VL_ERROR_INVALID_OBJECT, "message", __VA_ARGS__)
        if (size == 0)
                return INVALID("the object is empty (0 bytes)");
        if (size < 4 || memcmp(data, ELFMAG, SELFMAG) != 0)
                return INVALID("not an ELF file (no ELF magic in the first bytes)");
        if (size < sizeof(Elf64_Ehdr))
                return INVALID("truncated ELF: %zu bytes, shorter than an ELF header", size);

        elf = elf_memory((char *) data, size);
        if (!elf)
                return INVALID("not a readable ELF file: %s", elf_errmsg(-1));
        if (!gelf_getehdr(elf, &eh)) {
                r = INVALID("broken ELF header: %s", elf_errmsg(-1));
                goto out;
        }
        if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
                r = INVALID("32-bit ELF: BPF objects are 64-bit");
                goto out;
        }
        if (eh.e_machine != EM_BPF) {
                const char *m = machine_name(eh.e_machine);
                r = m ? INVALID("ELF for %s, not BPF: compile with clang -target bpf", m)
                      : INVALID("ELF for machine %u, not BPF (%u): compile with clang -target bpf", eh.e_machine,
                                EM_BPF);
                goto out;
        }
        if (eh.e_type != ET_REL) {
                r = INVALID("ELF type %u, not a relocatable object (ET_REL) as clang -c produces", eh.e_type);
                goto out;
        }
        if (eh.e_shoff > size || elf_getshdrnum(elf, &shnum) < 0 ||
            (uint64_t) eh.e_shoff + (uint64_t) shnum * eh.e_shentsize > size) {
                r = INVALID("truncated ELF: the section header table lies past the end of the %zu-byte file", size);
                goto out;
        }
        have_names = elf_getshdrstrndx(elf, &shstrndx) >= 0;
        if (ret_plan_key) {
                key = EVP_MD_CTX_new();
                if (!key || !EVP_DigestInit_ex(key, EVP_sha256(), NULL) || !key_add(key, data, 0, sizeof(Elf64_Ehdr)) ||
                    !key_add(key, data, eh.e_shoff, (uint64_t) shnum * eh.e_shentsize)) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        shdrs = calloc(MAX(shnum, 1u), sizeof(GElf_Shdr));
        roles = calloc(MAX(shnum, 1u), sizeof(SectionRole));
        skip = calloc(MAX(shnum, 1u), sizeof(bool));
        if (!shdrs || !roles || !skip) {
                r = -ENOMEM;
                goto out;
        }
        while ((scn = elf_nextscn(elf, scn))) {
                size_t i = elf_ndxscn(scn);
                GElf_Shdr sh;

                if (!gelf_getshdr(scn, &sh) || i >= shnum) {
                        r = INVALID("broken section header: %s", elf_errmsg(-1));
                        goto out;
                }
                if (sh.sh_type != SHT_NOBITS && (sh.sh_offset > size || sh.sh_size > size - sh.sh_offset)) {
                        r = INVALID("truncated ELF: section %zu ends at byte %llu of a %zu-byte file", i,
                                    (unsigned long long) (sh.sh_offset + sh.sh_size), size);
                        goto out;
                }
                if (sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR) && sh.sh_size > 0)
                        n_exec++;
                shdrs[i] = sh;
                roles[i] = (SectionRole) { .type = sh.sh_type, .link = sh.sh_link, .info = sh.sh_info,
                                           .flags = sh.sh_flags,
                                           .name = have_names ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL };
        }
        /* Every section the planner or libbpf may read is in the key: what the sparse read skips is not. */
        if (key && mark_skippable(roles, shnum, have_names ? shstrndx : 0, skip) < 0) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 1; key && i < shnum; i++)
                if (shdrs[i].sh_type != SHT_NOBITS && !skip[i] &&
                    !key_add(key, data, shdrs[i].sh_offset, shdrs[i].sh_size)) {
                        r = -ENOMEM;
                        goto out;
                }
        if (n_exec == 0)
                r = INVALID("the object has no programs (no executable section)");
        if (r >= 0 && key) {
                unsigned char md[EVP_MAX_MD_SIZE];
                unsigned int len = 0;

                if (!EVP_DigestFinal_ex(key, md, &len) || len != 32)
                        r = -EIO;
                else
                        digest_hex(md, ret_plan_key);
        }
out:
        EVP_MD_CTX_free(key);
        free(shdrs);
        free(roles);
        free(skip);
        elf_end(elf);
        return r;
#undef INVALID
}

/* libbpf's captured warnings, trimmed to what a person needs to read. */
static json_object *captured_message(const char *prefix, int err, const char *text) {
        _cleanup_free_ char *s = NULL;
        size_t len = text ? strlen(text) : 0;

        while (len > 0 && text[len - 1] == '\n')
                len--;
        if (asprintf(&s, "%s: %s%s%.*s", prefix, strerror(-err), len ? "\nlibbpf: " : "", (int) len,
                     text ?: "") < 0)
                return NULL;
        return json_object_new_string(s);
}

static int fail_captured(Failure *f, int err, const char *error, const char *prefix, const char *text) {
        json_object *p = json_object_new_object();

        json_object_object_add(p, "message", captured_message(prefix, err, text));
        return failure_set(f, err, error, p);
}

static int select_programs(struct bpf_object *obj, json_object *programs, Failure *f) {
        struct bpf_program *prog;
        size_t n = programs ? json_object_array_length(programs) : 0;

        if (!programs)
                return 0;
        if (n == 0)
                return failure_invalid_parameter(f, -EINVAL, "programs", "the list of programs to load is empty");
        for (size_t i = 0; i < n; i++) {
                const char *name = json_object_get_string(json_object_array_get_idx(programs, i));

                if (!bpf_object__find_program_by_name(obj, name))
                        return failure_setf(f, -ENOENT, VL_ERROR_NO_SUCH_PROGRAM, "program", "%s", name);
        }
        bpf_object__for_each_program(prog, obj) {
                bool wanted = false;

                for (size_t i = 0; i < n && !wanted; i++)
                        wanted = strcmp(bpf_program__name(prog),
                                        json_object_get_string(json_object_array_get_idx(programs, i))) == 0;
                bpf_program__set_autoload(prog, wanted);
        }
        return 0;
}

static int check_limits(struct bpf_object *obj, const LoadLimits *l, Failure *f) {
        struct bpf_program *prog;
        struct bpf_map *map;
        uint64_t programs = 0, bytes = 0;
        int cpus = libbpf_num_possible_cpus();

        if (!l)
                return 0;
        bpf_object__for_each_program(prog, obj) {
                const char *type = libbpf_bpf_prog_type_str(bpf_program__type(prog)) ?: "unknown";

                if (!bpf_program__autoload(prog))
                        continue;
                programs++;
                bool allowed = !l->program_types;
                for (size_t i = 0; i < l->n_program_types && !allowed; i++)
                        allowed = strcmp(l->program_types[i], type) == 0;
                if (!allowed)
                        return failure_setf(f, -EPERM, VL_ERROR_PERMISSION_DENIED, "reason",
                                            "program %s is of type %s, which your rule does not allow",
                                            bpf_program__name(prog), type);
        }
        bpf_object__for_each_map(map, obj) {
                uint64_t entry = (uint64_t) bpf_map__key_size(map) + bpf_map__value_size(map);
                enum bpf_map_type t = bpf_map__type(map);

                if (!bpf_map__autocreate(map))
                        continue;
                if (t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_LRU_PERCPU_HASH)
                        entry = bpf_map__key_size(map) + (uint64_t) bpf_map__value_size(map) * (uint64_t) MAX(cpus, 1);
                bytes += entry * MAX(bpf_map__max_entries(map), 1u);
        }
        if (programs > l->programs_left)
                return failure_setf(f, -EDQUOT, VL_ERROR_QUOTA_EXCEEDED, "limit",
                                    "max-programs: %llu more allowed, the object has %llu",
                                    (unsigned long long) l->programs_left, (unsigned long long) programs);
        if (bytes > l->map_bytes_left)
                return failure_setf(f, -EDQUOT, VL_ERROR_QUOTA_EXCEEDED, "limit",
                                    "max-map-bytes: %llu more bytes allowed, the object's maps take %llu",
                                    (unsigned long long) l->map_bytes_left, (unsigned long long) bytes);
        return 0;
}

typedef struct MapSettings {
        OptionalU32 max_entries, value_size;
} MapSettings;

static int apply_maps(struct bpf_object *obj, json_object *maps, Failure *f) {
        static const ParamField table[] = {
                { "max_entries", json_type_int, param_optional_uint32, offsetof(MapSettings, max_entries) },
                { "value_size", json_type_int, param_optional_uint32, offsetof(MapSettings, value_size) },
                {}
        };

        if (!maps)
                return 0;
        json_object_object_foreach(maps, name, settings) {
                MapSettings s = {};
                struct bpf_map *map;
                int r;

                map = bpf_object__find_map_by_name(obj, name);
                if (!map)
                        return failure_setf(f, -ENOENT, VL_ERROR_NO_SUCH_MAP, "map", "%s", name);
                if (!json_object_is_type(settings, json_type_object))
                        return failure_invalid_parameter(f, -EINVAL, "maps", "maps.%s must be an object", name);
                r = params_decode(settings, table, &s, f);
                if (r < 0) {
                        json_object *p;
                        const char *which = "maps";
                        if (json_object_object_get_ex(f->parameters, "parameter", &p))
                                which = json_object_get_string(p);
                        return failure_invalid_parameter(f, r, "maps", "maps.%s.%s: invalid", name, which);
                }
                if ((s.max_entries.set && s.max_entries.value == 0) || (s.value_size.set && s.value_size.value == 0))
                        return failure_invalid_parameter(f, -EINVAL, "maps", "maps.%s: sizes must be at least 1", name);
                if (s.max_entries.set) {
                        r = bpf_map__set_max_entries(map, s.max_entries.value);
                        if (r < 0)
                                return failure_invalid_parameter(f, r, "maps", "maps.%s.max_entries: %s", name,
                                                                 strerror(-r));
                }
                if (s.value_size.set) {
                        r = bpf_map__set_value_size(map, s.value_size.value);
                        if (r < 0)
                                return failure_invalid_parameter(f, r, "maps", "maps.%s.value_size: %s", name,
                                                                 strerror(-r));
                }
        }
        return 0;
}

/* Internal maps (.rodata, .bss) are named by their section, as the source names them. */
static const char *map_display_name(const struct bpf_object *obj, const struct bpf_map *map) {
        if (bpf_map__is_internal(map)) {
                const struct btf *btf = bpf_object__btf(obj);
                const struct btf_type *t = btf ? btf__type_by_id(btf, bpf_map__btf_value_type_id(map)) : NULL;
                const char *n = t ? btf__name_by_offset(btf, t->name_off) : NULL;

                if (n && *n)
                        return n;
        }
        return bpf_map__name(map);
}

static int collect_info(struct bpf_object *obj, Object *o) {
        struct bpf_program *prog;
        struct bpf_map *map;
        size_t n = 0;

        bpf_object__for_each_program(prog, obj)
                n += bpf_program__autoload(prog);
        o->programs = calloc(n ?: 1, sizeof(ProgramInfo));
        if (!o->programs)
                return -ENOMEM;
        bpf_object__for_each_program(prog, obj) {
                struct bpf_prog_info info = {};
                __u32 len = sizeof(info);
                ProgramInfo *p;
                int r;

                if (!bpf_program__autoload(prog))
                        continue;
                r = bpf_prog_get_info_by_fd(bpf_program__fd(prog), &info, &len);
                if (r < 0)
                        return r;
                p = &o->programs[o->n_programs++];
                p->name = strdup(bpf_program__name(prog));
                p->section = strdup(bpf_program__section_name(prog));
                p->type = strdup(libbpf_bpf_prog_type_str(bpf_program__type(prog)) ?: "unknown");
                if (!p->name || !p->section || !p->type)
                        return -ENOMEM;
                p->id = info.id;
                hexlify(p->tag, info.tag, sizeof(info.tag));
                p->xlated_bytes = info.xlated_prog_len;
                p->jited_bytes = info.jited_prog_len;
                p->verified_insns = info.verified_insns;
        }

        n = 0;
        bpf_object__for_each_map(map, obj)
                n += bpf_map__autocreate(map);
        o->maps = calloc(n ?: 1, sizeof(MapInfo));
        if (!o->maps)
                return -ENOMEM;
        bpf_object__for_each_map(map, obj) {
                struct bpf_map_info info = {};
                __u32 len = sizeof(info);
                MapInfo *m;
                int r;

                if (bpf_map__fd(map) < 0)
                        continue;
                r = bpf_map_get_info_by_fd(bpf_map__fd(map), &info, &len);
                if (r < 0)
                        return r;
                m = &o->maps[o->n_maps++];
                m->name = strdup(map_display_name(obj, map));
                m->type = strdup(libbpf_bpf_map_type_str(info.type) ?: "unknown");
                if (!m->name || !m->type)
                        return -ENOMEM;
                m->id = info.id;
                m->key_size = info.key_size;
                m->value_size = info.value_size;
                m->max_entries = info.max_entries;
        }
        return 0;
}

/*
 * One verifier log buffer shared by every program: libbpf loads programs in
 * order and stops at the first failure, retrying that one with logging on,
 * so the buffer ends up holding the failing program's log. Mapped once per
 * thread and kept: untouched pages cost nothing on the (usual) successful
 * load, which writes none; after a load that wrote a log, its pages are
 * handed back, and read as zeros again.
 */
typedef struct LogBuffer {
        char *buf;
} LogBuffer;

static __thread char *log_kept;

static char *log_buffer_get(void) {
        if (!log_kept) {
                log_kept = mmap(NULL, LOADER_LOG_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (log_kept == MAP_FAILED)
                        log_kept = NULL;
        }
        return log_kept;
}

static void log_buffer_done(LogBuffer *l) {
        if (l->buf && l->buf[0])
                (void) madvise(l->buf, LOADER_LOG_MAX, MADV_DONTNEED);
        l->buf = NULL;
}

/* The program the verifier refused, with its log. */
static int verifier_failure(struct bpf_object *obj, const LogBuffer *log, int err, Failure *f) {
        struct bpf_program *prog = refused[0] ? bpf_object__find_program_by_name(obj, refused) : NULL;
        json_object *p;
        char msg[256];

        if (!log->buf || !log->buf[0] || !prog)
                return 0;
        p = json_object_new_object();
        json_object_object_add(p, "program", json_object_new_string(bpf_program__name(prog)));
        json_object_object_add(p, "log",
                               json_object_new_string_len(log->buf, (int) strnlen(log->buf, LOADER_LOG_MAX)));
        snprintf(msg, sizeof(msg), "the kernel's verifier rejected program %s: %s", bpf_program__name(prog),
                 strerror(-err));
        json_object_object_add(p, "message", json_object_new_string(msg));
        return failure_set(f, err, VL_ERROR_VERIFIER_REJECTED, p);
}

struct bpf_object *loader_open_ahead(const void *data, size_t size, const char *name, const char *btf_custom_path) {
        LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .btf_custom_path = btf_custom_path,
                    .bpf_token_path = "");

        return bpf_object__open_mem(data, size, &opts);
}

static void bpf_object_closep(struct bpf_object **obj) {
        bpf_object__close(*obj);
}

/* The object, opened (or taken as opened ahead) and set up as the load asks: ready for bpf_object__load(). */
static int open_object(const void *data, size_t size, const LoadSettings *s, struct bpf_object *opened,
                       char *const *text, LogBuffer *log, struct bpf_object **ret, Failure *f) {
        _cleanup_(bpf_object_closep) struct bpf_object *obj = opened;
        struct bpf_program *prog;
        int r;

        if (obj) {
                struct bpf_map *map;

                /* Opened without a pin root: maps pinned by name go to this object's directory. */
                bpf_object__for_each_map(map, obj) {
                        _cleanup_free_ char *path = NULL;

                        if (!bpf_map__pin_path(map))
                                continue;
                        if (asprintf(&path, "%s/%s", s->maps_pin_dir, bpf_map__name(map)) < 0)
                                return -ENOMEM;
                        r = bpf_map__set_pin_path(map, path);
                        if (r < 0)
                                return r;
                }
        } else {
                /* bpf_token_path "": the daemon has its capabilities, no BPF token is looked for (bpffs open +
                 * probe). */
                LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = s->name, .pin_root_path = s->maps_pin_dir,
                            .btf_custom_path = s->btf_custom_path, .bpf_token_path = "");

                obj = bpf_object__open_mem(data, size, &opts);
                if (!obj) {
                        r = negative_errno();
                        fflush(capture);
                        return fail_captured(f, r, VL_ERROR_INVALID_OBJECT, "libbpf cannot open the object", *text);
                }
        }

        r = select_programs(obj, s->programs, f);
        if (r < 0)
                return r;
        r = apply_maps(obj, s->maps, f);
        if (r < 0)
                return r;
        r = globals_apply(obj, s->globals, f);
        if (r < 0)
                return r;
        r = check_limits(obj, s->limits, f);
        if (r < 0)
                return r;

        if (!log->buf) {
                log->buf = log_buffer_get();
                if (!log->buf)
                        return -ENOMEM;
        }
        log->buf[0] = '\0';
        bpf_object__for_each_program(prog, obj)
                if (bpf_program__autoload(prog))
                        bpf_program__set_log_buf(prog, log->buf, LOADER_LOG_MAX - 1);
        *ret = TAKE_PTR(obj);
        return 0;
}

/* libbpf's bpf_object__load(), with kernel BTF from the cache and programs verified side by side, if
 * batch. */
static int load_object(struct bpf_object *obj, const LoadSettings *s, bool batch, bool *ret_again) {
        int r;

        btf_targets_begin(s->btf_cache, obj, s->core_on_kernel);
        refused[0] = '\0';
        probe_pending = true;
        kept = s->kept_btf;
        if (batch)
                prog_batch_begin(obj);
        r = bpf_object__load(obj);
        *ret_again = prog_batch_end(r);
        kept = NULL;
        probe_pending = false;
        btf_targets_end();
        return r;
}

/* libbpf's words from here on, into a new *text (what an earlier capture held is dropped). */
static int capture_begin(char **text, size_t *size) {
        if (capture)
                fclose(capture);
        free(*text);
        *text = NULL;
        captured = 0;
        capture = open_memstream(text, size);
        return capture ? 0 : -ENOMEM;
}

int loader_load(const void *data, size_t size, const LoadSettings *s, Object *o, Failure *f) {
        _cleanup_free_ char *text = NULL;
        LogBuffer log = {};
        struct bpf_object *obj = NULL;
        size_t text_size = 0;
        uint64_t t0 = now_usec(), t1;
        bool again;
        int r;

        if (capture_begin(&text, &text_size) < 0) {
                bpf_object__close(s->opened);
                return -ENOMEM;
        }

        r = open_object(data, size, s, s->opened, &text, &log, &obj, f);
        if (r < 0)
                goto finish;
        t1 = now_usec();
        o->timings.open = t1 - t0;
        r = load_object(obj, s, true, &again);
        if (again) {
                /* Failed in a batch: once more one program at a time, for libbpf's own account of it. */
                bpf_object__close(obj);
                obj = NULL;
                r = capture_begin(&text, &text_size);
                if (r < 0)
                        goto finish;
                r = open_object(data, size, s, NULL, &text, &log, &obj, f);
                if (r < 0)
                        goto finish;
                r = load_object(obj, s, false, &again);
        }
        o->timings.load = now_usec() - t1;
        if (r < 0) {
                fflush(capture);
                r = verifier_failure(obj, &log, r, f) ?: fail_captured(f, r, VL_ERROR_INVALID_OBJECT,
                                                                      "the object failed to load", text);
                goto finish;
        }

        r = collect_info(obj, o);
        if (r < 0) {
                r = failure_system(f, r, "reading program and map info");
                goto finish;
        }
        o->bpf = TAKE_PTR(obj);
        r = 0;
finish:
        /* The log buffer is libbpf's until the object is closed or loaded. */
        bpf_object__close(obj);
        log_buffer_done(&log);
        if (capture)
                fclose(capture);
        capture = NULL;
        return r;
}
