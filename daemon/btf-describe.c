/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <bpf/btf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "btf-describe.h"
#include "macro.h"

const char *btf_kind_name(const struct btf_type *t) {
        static const char *const names[] = {
                [BTF_KIND_UNKN] = "unknown", [BTF_KIND_INT] = "int",        [BTF_KIND_PTR] = "ptr",
                [BTF_KIND_ARRAY] = "array",  [BTF_KIND_STRUCT] = "struct",  [BTF_KIND_UNION] = "union",
                [BTF_KIND_ENUM] = "enum",    [BTF_KIND_FWD] = "fwd",        [BTF_KIND_TYPEDEF] = "typedef",
                [BTF_KIND_VOLATILE] = "volatile", [BTF_KIND_CONST] = "const", [BTF_KIND_RESTRICT] = "restrict",
                [BTF_KIND_FUNC] = "func",    [BTF_KIND_FUNC_PROTO] = "func_proto", [BTF_KIND_VAR] = "var",
                [BTF_KIND_DATASEC] = "datasec", [BTF_KIND_FLOAT] = "float", [BTF_KIND_DECL_TAG] = "decl_tag",
                [BTF_KIND_TYPE_TAG] = "type_tag", [BTF_KIND_ENUM64] = "enum64",
        };
        unsigned k = btf_kind(t);

        return k < ELEMENTSOF(names) && names[k] ? names[k] : "unknown";
}

static void dump_printf(void *ctx, const char *fmt, va_list args) {
        vfprintf(ctx, fmt, args);
}

/* "struct thread_info", or with a field name "unsigned int flags[4]": C as btf_dump spells it. */
static char *type_decl(struct btf_dump *d, FILE **f, char **buf, size_t *size, uint32_t id, const char *field) {
        LIBBPF_OPTS(btf_dump_emit_type_decl_opts, opts, .field_name = field ?: "");

        fflush(*f);
        rewind(*f);
        btf_dump__emit_type_decl(d, id, &opts);
        fflush(*f);
        return strndup(*buf, (size_t) ftell(*f));
}

json_object *btf_describe_type(const struct btf *btf, uint32_t id, const char *btf_name) {
        const struct btf_type *t = btf__type_by_id(btf, id);
        _cleanup_free_ char *buf = NULL, *cbuf = NULL, *decl = NULL;
        json_object *j, *list;
        struct btf_dump *d;
        size_t size = 0, csize = 0;
        FILE *f, *c;
        const char *name;

        if (!t)
                return NULL;
        f = open_memstream(&buf, &size);
        c = open_memstream(&cbuf, &csize);
        if (!f || !c) {
                if (f)
                        fclose(f);
                if (c)
                        fclose(c);
                return NULL;
        }
        d = btf_dump__new(btf, dump_printf, f, NULL);
        if (!d) {
                fclose(f);
                fclose(c);
                return NULL;
        }

        name = btf__name_by_offset(btf, t->name_off) ?: "";
        j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(name));
        json_object_object_add(j, "kind", json_object_new_string(btf_kind_name(t)));
        json_object_object_add(j, "id", json_object_new_int64(id));
        json_object_object_add(j, "btf", json_object_new_string(btf_name));

        if (btf_is_composite(t)) {
                const struct btf_member *m = btf_members(t);

                json_object_object_add(j, "size", json_object_new_int64(t->size));
                fprintf(c, "%s %s {\n", btf_is_struct(t) ? "struct" : "union", name);
                list = json_object_new_array();
                for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
                        const char *mname = btf__name_by_offset(btf, m->name_off) ?: "";
                        uint32_t bit_off = btf_member_bit_offset(t, i), bits = btf_member_bitfield_size(t, i);
                        __s64 msize = btf__resolve_size(btf, m->type);
                        json_object *e = json_object_new_object();
                        _cleanup_free_ char *mtype = type_decl(d, &f, &buf, &size, m->type, NULL);
                        _cleanup_free_ char *mdecl = type_decl(d, &f, &buf, &size, m->type, mname);

                        json_object_object_add(e, "name", json_object_new_string(mname));
                        json_object_object_add(e, "type", json_object_new_string(mtype ?: ""));
                        json_object_object_add(e, "type_id", json_object_new_int64(m->type));
                        json_object_object_add(e, "offset", json_object_new_int64(bit_off / 8));
                        json_object_object_add(e, "bit_offset", json_object_new_int64(bit_off));
                        json_object_object_add(e, "size", json_object_new_int64(msize));
                        if (bits)
                                json_object_object_add(e, "bitfield_size", json_object_new_int64(bits));
                        json_object_array_add(list, e);
                        if (bits)
                                fprintf(c, "\t%s: %u; /* bit %u */\n", mdecl ?: "", bits, bit_off);
                        else
                                fprintf(c, "\t%s; /* %u %lld */\n", mdecl ?: "", bit_off / 8, (long long) msize);
                }
                json_object_object_add(j, "members", list);
                fprintf(c, "};\n");
        } else if (btf_is_any_enum(t)) {
                bool is_signed = btf_kflag(t);

                json_object_object_add(j, "size", json_object_new_int64(t->size));
                fprintf(c, "enum %s {\n", name);
                list = json_object_new_array();
                for (uint16_t i = 0; i < btf_vlen(t); i++) {
                        json_object *e = json_object_new_object();
                        const char *ename;
                        long long v;

                        if (btf_is_enum(t)) {
                                ename = btf__name_by_offset(btf, btf_enum(t)[i].name_off);
                                v = is_signed ? btf_enum(t)[i].val : (long long) (uint32_t) btf_enum(t)[i].val;
                        } else {
                                ename = btf__name_by_offset(btf, btf_enum64(t)[i].name_off);
                                v = (long long) btf_enum64_value(&btf_enum64(t)[i]);
                        }
                        json_object_object_add(e, "name", json_object_new_string(ename ?: ""));
                        json_object_object_add(e, "value", json_object_new_int64(v));
                        json_object_array_add(list, e);
                        fprintf(c, "\t%s = %lld,\n", ename ?: "", v);
                }
                json_object_object_add(j, "enumerators", list);
                fprintf(c, "};\n");
        } else if (btf_is_typedef(t)) {
                _cleanup_free_ char *target = type_decl(d, &f, &buf, &size, t->type, NULL);
                _cleanup_free_ char *full = type_decl(d, &f, &buf, &size, t->type, name);

                json_object_object_add(j, "type", json_object_new_string(target ?: ""));
                json_object_object_add(j, "size", json_object_new_int64(btf__resolve_size(btf, id)));
                fprintf(c, "typedef %s;\n", full ?: "");
        } else if (btf_is_int(t)) {
                json_object_object_add(j, "size", json_object_new_int64(t->size));
                json_object_object_add(j, "signed", json_object_new_boolean(btf_int_encoding(t) & BTF_INT_SIGNED));
                json_object_object_add(j, "bits", json_object_new_int64(btf_int_bits(t)));
                fprintf(c, "%s; /* %u bytes */\n", name, t->size);
        } else if (btf_is_var(t)) {
                /* A kernel variable (what a typed ksym refers to): its type, its declaration. */
                _cleanup_free_ char *target = type_decl(d, &f, &buf, &size, t->type, NULL);

                decl = type_decl(d, &f, &buf, &size, t->type, name);
                json_object_object_add(j, "type", json_object_new_string(target ?: ""));
                json_object_object_add(j, "size", json_object_new_int64(btf__resolve_size(btf, t->type)));
                fprintf(c, "extern %s;\n", decl ?: "");
        } else {
                /* A function is its prototype with its name; anything else its declaration. */
                decl = btf_is_func(t) ? type_decl(d, &f, &buf, &size, t->type, name)
                                      : type_decl(d, &f, &buf, &size, id, NULL);
                fprintf(c, "%s;\n", decl ?: "");
        }

        btf_dump__free(d);
        fclose(f);
        fclose(c);
        json_object_object_add(j, "c", json_object_new_string(cbuf ?: ""));
        return j;
}
