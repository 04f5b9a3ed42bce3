# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small reader of raw BTF (the format of /sys/kernel/btf/*), written from the
kernel's Documentation/bpf/btf.rst so the VM tier checks the daemon's
relocation targets against an implementation that shares no code with it or
with libbpf. It knows members, their offsets and sizes: enough to say where a
field is and whether it exists.
"""

import struct

BTF_MAGIC = 0xEB9F

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, \
    DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(1, 20)

# Bytes that follow the 12-byte common header, by kind: fixed, and per vlen entry.
EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8), FUNC_PROTO: (0, 8),
         VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0), ENUM64: (0, 12)}


class Btf:
    def __init__(self, data, base=None):
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from('<HBBIIIII', data, 0)
        if magic != BTF_MAGIC:
            raise ValueError('not BTF (magic %#x)' % magic)
        self.base = base
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        # Split BTF numbers its types and strings after its base's.
        self.first_id = len(base.types) if base else 1
        self.str_base = len(base.strings) if base else 0
        self.types = list(base.types) if base else [None]
        self.by_name = dict(base.by_name) if base else {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_type = struct.unpack_from('<III', data, pos)
            kind, vlen, kflag = (info >> 24) & 0x1f, info & 0xffff, info >> 31
            fixed, per = EXTRA.get(kind, (0, 0))
            members = []
            if kind in (STRUCT, UNION):
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from('<III', data, pos + 12 + 12 * i)
                    bits = m_off >> 24 if kflag else 0
                    members.append((self.name(m_name), m_type, m_off & 0xffffff if kflag else m_off, bits))
            array = struct.unpack_from('<III', data, pos + 12) if kind == ARRAY else None
            t = {'kind': kind, 'name': self.name(name_off), 'size_type': size_type, 'members': members,
                 'array': array}
            if t['name'] and kind in (STRUCT, UNION):
                self.by_name.setdefault((t['name'], kind), []).append(len(self.types))
            self.types.append(t)
            pos += 12 + fixed + per * vlen

    def name(self, off):
        if off < self.str_base:
            return self.base.name(off)
        off -= self.str_base
        return self.strings[off:self.strings.index(b'\0', off)].decode()

    def resolve(self, tid):
        """Skips typedefs and qualifiers."""
        while self.types[tid]['kind'] in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG):
            tid = self.types[tid]['size_type']
        return tid

    def size(self, tid):
        t = self.types[self.resolve(tid)]
        if t['kind'] == PTR:
            return 8
        if t['kind'] == ARRAY:
            elem, _index, nelems = t['array']
            return self.size(elem) * nelems
        return t['size_type']

    def find_member(self, tid, name):
        """(bit offset, member type id, bitfield size) of NAME in the struct/union TID, looking
        through anonymous members as C does; None when there is none."""
        for m_name, m_type, m_off, bits in self.types[tid]['members']:
            if m_name == name:
                return m_off, m_type, bits
            inner = self.resolve(m_type)
            if not m_name and self.types[inner]['kind'] in (STRUCT, UNION):
                found = self.find_member(inner, name)
                if found:
                    return m_off + found[0], found[1], found[2]
        return None

    def field(self, type_name, access):
        """(byte offset as libbpf reports it for field_byte_offset, size) of ACCESS ("a.b", "a[2].b")
        in struct or union TYPE_NAME (a ___flavor suffix ignored, as CO-RE does); None when the
        field does not exist."""
        if '___' in type_name:
            type_name = type_name[:type_name.rindex('___')]
        for kind in (STRUCT, UNION):
            for tid in self.by_name.get((type_name, kind), []):
                r = self._field(tid, access)
                if r:
                    return r
        return None

    def _field(self, tid, access):
        bit_off, cur, bits = 0, tid, 0
        for part in access.replace('[', '.[').split('.'):
            if not part:
                continue
            t = self.types[self.resolve(cur)]
            if part.startswith('['):
                if t['kind'] != ARRAY:
                    return None
                elem = t['array'][0]
                bit_off += int(part[1:-1]) * self.size(elem) * 8
                cur, bits = elem, 0
                continue
            if t['kind'] not in (STRUCT, UNION):
                return None
            found = self.find_member(self.resolve(cur), part)
            if not found:
                return None
            off, cur, bits = found
            bit_off += off
        size = self.size(cur)
        if not bits:
            return bit_off // 8, size
        # A bitfield: libbpf reports the offset of the smallest aligned load holding it.
        byte_sz = size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bits - byte_off * 8 > byte_sz * 8:
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
        return byte_off, byte_sz


def load(path, base=None):
    with open(path, 'rb') as f:
        return Btf(f.read(), base)
