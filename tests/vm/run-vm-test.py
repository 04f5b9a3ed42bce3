#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Other kernels: Debian's own kernels booted under qemu (TCG) with the build inside.

    run-vm-test.py BUILD_DIR SOURCE_DIR

For each kernel (bookworm's 6.1, bookworm-backports' 6.12; `apt-get download`ed
once into the cache), builds an initramfs holding busybox, bpfcored,
bpfcorectl, bpftool, their shared libraries, the test objects built on this
host and the modules the guest needs, boots it once, and lets tests/vm/guest.sh
record what the kernel did into a 9p share. The host then asserts, as TAP:
every object loads, each relocation target is that kernel's own (read from its
BTF by tests/vm/btf.py, which shares no code with the daemon), kprobe/kretprobe
and fentry/fexit count real calls, module BTF comes and goes without a restart,
an external BTF stands in for a missing /sys/kernel/btf/vmlinux; and a private
daemon on this host, given each kernel's BTF as an external BTF, answers
`bpfcorectl check OBJ --btf debian-X` with the same targets the VM loaded with.
Prints the kernel x object matrix at the end. Skips (1..0 # SKIP) only where
qemu, a tool or the kernel packages are not to be had.

BPFCORED_TEST_CACHE  cache root (default /var/cache/bpfcored-test); kernels go under vm/
BPFCORED_VM_TIMEOUT  seconds one boot may take (default 300)
"""

import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btf  # noqa: E402

# (label, apt suite, version prefix of the linux-image-amd64 metapackage)
KERNELS = [('debian-6.1', 'bookworm', '6.1.'), ('debian-6.12', 'bookworm-backports', '6.12.')]
# Objects loaded on every kernel, in guest.sh's order; the links each should end with.
OBJECTS = {'tp_core': 2, 'globals': 1, 'xdp_pass': 1, 'pinned': 1, 'many_core': 48, 'tp_btf': 1,
           'attach_trace': 3, 'attach_probe': 0, 'attach_fentry': 2, 'attach_net': 2, 'ringbuf': 1}
MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'veth', 'sch_ingress', 'cls_bpf', 'nf_conntrack']
# Objects relocating or attaching against a module's BTF: veth (loaded by the test), 9pnet; calling a
# module's kfuncs: nf_conntrack (loaded by the test).
MODULE_OBJECTS = ['module_core', 'module_fentry', 'module_tp_btf', 'module_kfunc']

n = 0
failed = 0
# Per kernel: differential and pre-flight counts, for the matrix's footer.
summary = {}


def diag(text):
    for line in str(text).rstrip('\n').splitlines():
        print('# ' + line)
    sys.stdout.flush()


def check(ok, desc, detail=None, unsupported=None):
    """A TAP line; a failure the kernel explains (UNSUPPORTED: why) is a skip with that reason."""
    global n, failed
    if not ok and unsupported:
        skip(desc, unsupported)
        diag(detail or '')
        return False
    n += 1
    print(('ok %d - %s' if ok else 'not ok %d - %s') % (n, desc))
    if not ok:
        failed += 1
        if detail:
            diag(detail)
    sys.stdout.flush()
    return ok


def skip(desc, why):
    global n
    n += 1
    print('ok %d - %s # SKIP %s' % (n, desc, why))


def skip_all(why):
    print('1..0 # SKIP ' + why)
    sys.exit(0)


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw).stdout


# ---------------------------------------------------------------------------------------------------
# Kernels: resolved through apt, downloaded once, unpacked once.

def kernel_package(suite, prefix):
    """The linux-image-* package the suite's linux-image-amd64 depends on, or None."""
    try:
        madison = sh('apt-cache', 'madison', 'linux-image-amd64')
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in madison.splitlines():
        cols = [c.strip() for c in line.split('|')]
        if len(cols) < 3 or not cols[1].startswith(prefix) or not cols[2].split()[1].startswith(suite):
            continue
        # bookworm's kernel also comes from bookworm-security: take the first (newest) 6.1.
        try:
            deps = sh('apt-cache', 'depends', '--important', 'linux-image-amd64=' + cols[1])
        except subprocess.CalledProcessError:
            return None
        for d in deps.split():
            if d.startswith('linux-image-') and d != 'linux-image-amd64':
                return d
    return None


def fetch_kernel(cache, label, suite, prefix):
    """(unpacked tree, kernel release) for LABEL, downloading on the first run; (None, why) when
    it cannot be had. A tree already unpacked serves when apt cannot say what is newest."""
    pkg = kernel_package(suite, prefix)
    trees = sorted(glob.glob(os.path.join(cache, label + '.*', '.unpacked')), key=os.path.getmtime)
    if not pkg:
        if trees:
            return finish_tree(os.path.dirname(trees[-1]))
        return None, 'apt knows no %s* linux-image-amd64 in %s (apt-get update?)' % (prefix, suite)
    tree = os.path.join(cache, '%s.%s' % (label, pkg))
    if os.path.exists(os.path.join(tree, '.unpacked')):
        return finish_tree(tree)
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    r = subprocess.run(['apt-get', 'download', '-q', pkg], cwd=tree, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    debs = glob.glob(os.path.join(tree, '*.deb'))
    if r.returncode != 0 or not debs:
        shutil.rmtree(tree, ignore_errors=True)
        if trees:
            return finish_tree(os.path.dirname(trees[-1]))
        return None, 'apt-get download %s failed: %s' % (pkg, r.stdout.strip().splitlines()[-1:])
    # The kernel image and its modules are what is needed; the .deb goes once unpacked.
    try:
        sh('dpkg-deb', '-x', debs[0], tree)
        os.unlink(debs[0])
        release = os.listdir(os.path.join(tree, 'lib', 'modules'))[0]
        sh('depmod', '-b', tree, release)
    except (OSError, IndexError, subprocess.CalledProcessError) as e:
        shutil.rmtree(tree, ignore_errors=True)
        return None, 'unpacking %s failed: %s' % (os.path.basename(debs[0]), getattr(e, 'stderr', None) or e)
    open(os.path.join(tree, '.unpacked'), 'w').close()
    # Older unpacked kernels of this label are not needed any more.
    for old in trees:
        if os.path.dirname(old) != tree:
            shutil.rmtree(os.path.dirname(old), ignore_errors=True)
    return finish_tree(tree)


def kernel_config(tree, release):
    """{CONFIG_X: value} from the kernel package's /boot/config-RELEASE ({} when it has none)."""
    config = {}
    try:
        with open(os.path.join(tree, 'boot', 'config-' + release)) as f:
            for line in f:
                key, eq, value = line.strip().partition('=')
                if eq and key.startswith('CONFIG_'):
                    config[key] = value
    except OSError:
        pass
    return config


def finish_tree(tree):
    release = os.listdir(os.path.join(tree, 'lib', 'modules'))[0]
    return tree, release


# ---------------------------------------------------------------------------------------------------
# The initramfs: one common part, one per kernel for its modules; the kernel unpacks both.

def add_file(root, src, dst=None):
    dst = os.path.join(root, (dst or src).lstrip('/'))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(os.path.realpath(src), dst)


def shared_libraries(binaries):
    libs = set()
    for b in binaries:
        for line in sh('ldd', b).splitlines():
            parts = line.split()
            if '=>' in parts and len(parts) > parts.index('=>') + 1 and parts[parts.index('=>') + 1].startswith('/'):
                libs.add(parts[parts.index('=>') + 1])
            elif parts and parts[0].startswith('/'):
                libs.add(parts[0])  # the dynamic loader
    return sorted(libs)


def cpio(root, path):
    files = sh('find', '.', cwd=root)
    subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet', '-R', '0:0', '-O', path], cwd=root, input=files,
                   text=True, check=True)


def common_initramfs(work, build, src, busybox, bpftool):
    root = os.path.join(work, 'common')
    binaries = {os.path.join(build, 'daemon', 'bpfcored'): '/usr/sbin/bpfcored',
                os.path.join(build, 'client', 'bpfcorectl'): '/usr/bin/bpfcorectl',
                bpftool: '/usr/sbin/bpftool'}
    for b, dst in binaries.items():
        add_file(root, b, dst)
    for lib in shared_libraries(binaries):
        add_file(root, lib)
    add_file(root, busybox, '/bin/busybox')
    for applet in sh(busybox, '--list').split():
        if applet != 'busybox' and not os.path.exists(os.path.join(root, 'bin', applet)):
            os.symlink('busybox', os.path.join(root, 'bin', applet))
    for o in list(OBJECTS) + MODULE_OBJECTS:
        add_file(root, os.path.join(build, 'tests', 'bpf', o + '.bpf.o'), '/objects/%s.bpf.o' % o)
    add_file(root, os.path.join(src, 'tests', 'vm', 'guest.sh'), '/guest.sh')
    for d in ('proc', 'sys', 'dev', 'run', 'tmp', 'out', 'etc/bpfcored/btf', 'etc/bpfcored/objects.d'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    with open(os.path.join(root, 'etc', 'passwd'), 'w') as f:
        f.write('root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n')
    with open(os.path.join(root, 'etc', 'group'), 'w') as f:
        f.write('root:x:0:\nnogroup:x:65534:\n')
    with open(os.path.join(root, 'init'), 'w') as f:
        f.write('''#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
for m in %s; do modprobe $m 2>/dev/null; done
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out; then
        echo "VMTEST guest start $(cut -d' ' -f1 /proc/uptime)"
        sh /guest.sh >/out/guest.log 2>&1
        echo "VMTEST guest end $(cut -d' ' -f1 /proc/uptime)"
        umount /out
else
        echo "VMTEST no 9p share"
fi
poweroff -f
''' % ' '.join(MODULES[:3]))
    os.chmod(os.path.join(root, 'init'), 0o755)
    path = os.path.join(work, 'common.cpio')
    cpio(root, path)
    return path


def modules_initramfs(work, label, tree, release):
    root = os.path.join(work, 'modules-' + label)
    mods = set()
    for m in MODULES:
        out = subprocess.run(['modprobe', '-d', tree, '-S', release, '--show-depends', m],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            if line.startswith('insmod '):
                mods.add(line.split()[1])
    for m in mods:
        rel = os.path.relpath(m, tree)
        dst = os.path.join(root, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # busybox's modprobe reads plain .ko files: decompress what the package compressed.
        if m.endswith('.xz'):
            with open(dst[:-3], 'wb') as f:
                subprocess.run(['xz', '-dc', m], stdout=f, check=True)
        elif m.endswith('.zst'):
            with open(dst[:-4], 'wb') as f:
                subprocess.run(['zstd', '-dcq', m], stdout=f, check=True)
        else:
            shutil.copy(m, dst)
    moddir = os.path.join(tree, 'lib', 'modules', release)
    for f in ('modules.builtin', 'modules.builtin.modinfo', 'modules.order'):
        if os.path.exists(os.path.join(moddir, f)):
            add_file(root, os.path.join(moddir, f), os.path.join('lib', 'modules', release, f))
    sh('depmod', '-b', root, release)
    path = os.path.join(work, 'modules-%s.cpio' % label)
    cpio(root, path)
    return path, sorted(os.path.basename(m) for m in mods)


def boot(work, label, tree, release, initrds, timeout):
    """Boots the kernel once; returns (share directory, seconds, console text, exit status)."""
    share = os.path.join(work, 'out-' + label)
    os.makedirs(share)
    initrd = os.path.join(work, 'initrd-%s.cpio' % label)
    with open(initrd, 'wb') as out:
        for part in initrds:
            with open(part, 'rb') as f:
                shutil.copyfileobj(f, out)
    console = os.path.join(work, 'console-%s.log' % label)
    cmd = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '1024', '-smp', '1', '-no-reboot',
           '-display', 'none', '-monitor', 'none', '-serial', 'file:' + console,
           '-kernel', os.path.join(tree, 'boot', 'vmlinuz-' + release), '-initrd', initrd,
           '-append', 'console=ttyS0 panic=-1 quiet loglevel=4',
           '-virtfs', 'local,path=%s,mount_tag=out,security_model=none,id=out' % share]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        qemu_out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        qemu_out, _ = proc.communicate()
        rc = 'timeout after %ds' % timeout
    seconds = time.monotonic() - t0
    try:
        with open(console, errors='replace') as f:
            text = f.read()
    except OSError:
        text = ''
    return share, seconds, text + qemu_out, rc


# ---------------------------------------------------------------------------------------------------
# Reading what the guest recorded.

class Guest:
    def __init__(self, share):
        self.share = share

    def text(self, name, suffix='.out'):
        try:
            with open(os.path.join(self.share, name + suffix), errors='replace') as f:
                return f.read()
        except OSError:
            return None

    def rc(self, name):
        t = self.text(name, '.rc')
        return int(t) if t and t.strip().lstrip('-').isdigit() else None

    def json(self, name):
        t = self.text(name)
        try:
            return json.loads(t) if t else None
        except ValueError:
            return None

    def why(self, name):
        return 'exit %s: %s' % (self.rc(name), (self.text(name, '.err') or '').strip()[-2000:])


def kernel_before(g, version):
    release = (g.text('uname', '') or '0.0').split('-')[0].split('.')
    return tuple(int(x) for x in release[:2] if x.isdigit()) < version


def map_values(dump):
    """{key: value} of a `map dump --json` reply."""
    return {e['key']: e['value'] for e in (dump or {}).get('entries', [])}


def datasec(dump, var):
    """A variable's value in a dumped .bss/.data map (a datasec value)."""
    for e in (dump or {}).get('entries', []):
        v = e.get('value')
        if isinstance(v, dict) and var in v:
            return v[var]
        if isinstance(v, dict) and isinstance(v.get('.bss'), list):
            for item in v['.bss']:
                if isinstance(item, dict) and var in item:
                    return item[var]
    return None


def check_relocations(relos, kbtf):
    """Counts relocations whose target tests/vm/btf.py reads from the kernel's BTF too, and lists
    those that disagree."""
    checked, wrong = 0, []
    for r in relos:
        f = kbtf.field(r['type'], r['access']) if r.get('access') else None
        if r['kind'] == 'field_byte_offset':
            want = f[0] if f else None
        elif r['kind'] == 'field_byte_size':
            want = f[1] if f else None
        elif r['kind'] == 'field_exists':
            want = 1 if f else 0
        else:
            continue
        checked += 1
        if want != r.get('target'):
            wrong.append('%s %s %s.%s: daemon %s, BTF %s' % (r['program'], r['kind'], r['type'], r['access'],
                                                            r.get('target'), want))
    return checked, wrong


def relo_key(r):
    return (r.get('program'), r.get('insn'), r.get('kind'), r.get('type'), r.get('access'))


def xlated(path):
    """A program's xlated instructions (`bpftool prog dump xlated ... file`) with map ids zeroed:
    they differ between two loads. The kernel dumps a map reference as a ld_imm64 (opcode 0x18)
    whose src_reg is BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE and whose first imm is the map's id."""
    try:
        with open(path, 'rb') as f:
            insns = bytearray(f.read())
    except OSError:
        return None
    for i in range(0, len(insns) - 15, 8):
        if insns[i] == 0x18 and (insns[i + 1] >> 4) in (1, 2):
            insns[i + 4:i + 8] = b'\0\0\0\0'
    return bytes(insns)


def differential(label, g, o, obj):
    """The guest loaded O with bpftool too (plain libbpf, full kernel BTF): same xlated programs."""
    progs = [p['name'] for p in obj.get('programs', [])]
    if not check(g.rc('libbpf-' + o) == 0, '%s: %s loads through plain libbpf too (bpftool prog loadall)'
                 % (label, o), g.why('libbpf-' + o)):
        return
    if g.rc('xlated-' + o) != 0:
        diag(g.why('xlated-' + o))
    same, differ = 0, []
    for p in progs:
        a = xlated(os.path.join(g.share, 'xlated-%s-%s.daemon' % (o, p)))
        b = xlated(os.path.join(g.share, 'xlated-%s-%s.libbpf' % (o, p)))
        if a and b and a == b:
            same += 1
        else:
            differ.append('%s: daemon %s bytes, libbpf %s bytes%s' % (
                p, len(a) if a else a, len(b) if b else b,
                ', first difference at insn %d' % next(i // 8 for i in range(min(len(a), len(b)))
                                                       if a[i] != b[i]) if a and b and a[:len(b)] != b[:len(a)]
                else ''))
    d = summary.setdefault(label, {})
    d['same'] = d.get('same', 0) + same
    d['programs'] = d.get('programs', 0) + len(progs)
    check(progs and same == len(progs), '%s: %s: %d of %d programs have the same xlated instructions as '
          'plain libbpf\'s' % (label, o, same, len(progs)), '\n'.join(differ[:3]))


def test_kernel(label, g, kbtf, matrix):
    objs = {}
    for o, links in OBJECTS.items():
        load = g.json('load-' + o)
        row = matrix.setdefault(label, {}).setdefault(o, {'loads': 'no', 'relos': '-', 'attach': '-'})
        if not check(g.rc('load-' + o) == 0 and load, '%s: %s loads' % (label, o), g.why('load-' + o)):
            continue
        row['loads'] = 'yes'
        obj = load['object']
        objs[o] = obj
        relos = obj.get('relocations', [])
        checked, wrong = check_relocations(relos, kbtf)
        differ = sum(1 for r in relos if r.get('target') != r.get('local'))
        check(not wrong and checked == len(relos),
              '%s: %s: %d of %d relocation targets are this kernel\'s own (read from its BTF)'
              % (label, o, checked - len(wrong), len(relos)),
              '\n'.join(wrong[:20]) + ('\n%d relocations of kinds btf.py does not read' % (len(relos) - checked)
                                       if checked != len(relos) else ''))
        row['relos'] = '%d/%d' % (checked - len(wrong), len(relos)) + (', %d moved' % differ if differ else '')
        # Links: by SEC() at load, or attached explicitly (xdp, tc on lo).
        shown = g.json('show-' + o) or {}
        progs = shown.get('object', obj).get('programs', [])
        have = sum(len(p.get('links', [])) for p in progs)
        explicit = [a for a in ('xdp', 'tc') if g.rc('attach-%s-%s' % (o, a)) is not None]
        if links:
            why = '\n'.join(g.why('attach-%s-%s' % (o, a)) for a in explicit if g.rc('attach-%s-%s' % (o, a)))
            check(have == links, '%s: %s: %d of %d links attached' % (label, o, have, links), why or None)
            row['attach'] = '%d/%d' % (have, links)
        if o == 'attach_net':
            row['attach'] += test_tc(label, g)
        differential(label, g, o, obj)
        check(g.rc('unload-' + o) == 0, '%s: %s unloads' % (label, o), g.why('unload-' + o))
    return objs


def tc_echo(g, name):
    return map_values(g.json(name)).get(2)  # SLOT_TC_ECHO of tests/bpf/attach_net.bpf.c


def test_tc(label, g):
    """tc on lo counting pings: tcx on 6.6 and later, a clsact filter before; clsact asked for on any
    kernel, then detached. Returns the matrix's words for it."""
    tcx = not kernel_before(g, (6, 6))
    link = (g.json('attach-attach_net-tc') or {}).get('link', {})
    check(g.rc('attach-attach_net-tc') == 0 and ('clsact' in link) != tcx,
          '%s: tc attaches as %s (%s)' % (label, 'a tcx link' if tcx else 'a clsact filter: no tcx before 6.6',
                                           link.get('target')), g.why('attach-attach_net-tc') + json.dumps(link))
    c1, c2, c3 = tc_echo(g, 'tc-counts1'), tc_echo(g, 'tc-counts2'), tc_echo(g, 'tc-counts3')
    check(g.rc('tc-ping1') == 0 and c1 == 3, '%s: ... and counts 3 pings on lo (got %s)' % (label, c1),
          g.why('tc-ping1') + (g.text('tc-counts1') or ''))
    filt = (g.json('tc-clsact') or {}).get('link', {})
    check(g.rc('tc-clsact') == 0 and filt.get('clsact', {}).get('direction') == 'egress' and
          filt.get('id', 0) >= 0x80000000,
          '%s: tc ... clsact asked for: a filter with an id of the daemon\'s (%s)' % (label, filt.get('id')),
          g.why('tc-clsact'))
    prog = next((p.get('id') for p in ((g.json('load-attach_net') or {}).get('object') or {}).get('programs', [])
                 if p.get('name') == 'tc_icmp'), None)

    def clsact_egress(name):
        """Whether bpftool net show lists tc_icmp under lo's clsact egress."""
        shown = g.json(name) or [{}]
        return any(f.get('kind') == 'clsact/egress' and f.get('id') == prog
                   for f in (shown[0] if isinstance(shown, list) and shown else {}).get('tc', []))
    check(clsact_egress('tc-filters'), '%s: ... bpftool net show lists it under clsact/egress, running tc_icmp (%s)'
          % (label, prog), g.text('tc-filters'))
    two = c1 is not None and c2 is not None and c2 - c1 == 6
    check(g.rc('tc-ping2') == 0 and two, '%s: ... both count the next 3 pings (got %s)' %
          (label, c2 - c1 if c1 is not None and c2 is not None else None), g.text('tc-counts2'))
    gone = g.json('tc-filters-after') is not None and not clsact_egress('tc-filters-after')
    one = c2 is not None and c3 is not None and c3 - c2 == 3
    check(g.rc('tc-detach') == 0 and gone and one,
          '%s: ... detached: gone from bpftool net show, and only the first counts (%s)' %
          (label, c3 - c2 if c2 is not None and c3 is not None else None),
          g.why('tc-detach') + (g.text('tc-filters-after') or ''))
    return ', %s %s/3 hits' % ('tcx' if tcx else 'clsact', c1)


def test_probes(label, g, matrix):
    check(g.rc('probe-load') == 0, '%s: attach_probe loads with target_tgid' % label, g.why('probe-load'))
    counts = map_values(g.json('probe-counts'))
    for kind, slot in (('kprobe', 0), ('kretprobe', 1)):
        ok = g.rc('probe-attach-' + kind) == 0
        check(ok, '%s: %s attaches to do_unlinkat' % (label, kind), g.why('probe-attach-' + kind))
        hits = counts.get(slot)
        check(ok and hits == 3, '%s: %s counted 3 unlink calls of one process (got %s)' % (label, kind, hits),
              g.text('probe-counts'))
    # Multi-kprobes (fprobe, 5.18 on, where the kernel is built with it): a glob and a list, one link each.
    fprobe = g.config.get('CONFIG_FPROBE') == 'y'
    nofprobe = 'this kernel is built without fprobe (CONFIG_FPROBE is not set in its config)'
    for kind, slot, what in (('kprobe', 5, "'do_unlinka*'"), ('kretprobe', 6, 'do_unlinkat,do_rmdir')):
        name = 'probe-attach-%s-multi' % kind
        link = (g.json(name) or {}).get('link', {})
        if not fprobe:
            err = g.text(name, '.err') or ''
            check(g.rc(name) not in (None, 0) and 'AttachFailed' in err and 'multi-kprobes are not available' in err,
                  '%s: %s %s fails cleanly without fprobe: AttachFailed' % (label, kind, what), g.why(name))
            skip('%s: %s %s counts 3 unlink calls of one process' % (label, kind, what), nofprobe)
            continue
        ok = g.rc(name) == 0 and link.get('type') == kind
        check(ok, '%s: %s %s attaches as one multi-kprobe link (%s)' % (label, kind, what, link.get('target')),
              g.why(name))
        hits = counts.get(slot)
        check(ok and hits == 3, '%s: ... and counted 3 unlink calls of one process (got %s)' % (label, hits),
              g.text('probe-counts'))
    for name, word in (('probe-multi-nomatch', 'no kernel function that can be probed matches bpfcored_nope_*'),
                       ('probe-multi-notmulti', 'was the program loaded as kprobe.multi')):
        err = g.text(name, '.err') or ''
        word = word if fprobe else 'multi-kprobes are not available'
        check(g.rc(name) not in (None, 0) and 'AttachFailed' in err and word in err,
              '%s: %s: AttachFailed, "%s"' % (label, name, word), g.why(name))
    check(g.rc('fentry-load') == 0, '%s: attach_fentry loads and attaches fentry and fexit' % label,
          g.why('fentry-load'))
    bss = g.json('fentry-counts')
    for var in ('fentry_hits', 'fexit_hits'):
        hits = datasec(bss, var)
        check(hits == 3, '%s: %s counted 3 unlink calls of one process (got %s)' % (label, var.split('_')[0], hits),
              g.text('fentry-counts'))
    check(g.text('victim', '.rc') is not None and g.text('victim', '.rc').strip() == '0',
          '%s: the probed process removed its three files' % label)
    row = matrix[label]['attach_probe']
    kinds = ('kprobe', 'kretprobe') + (('kprobe-multi', 'kretprobe-multi') if fprobe else ())
    row['attach'] = '%d/%d, k/kret %s/%s, ' % (sum(g.rc('probe-attach-' + k) == 0 for k in kinds), len(kinds),
                                               counts.get(0), counts.get(1)) + \
        ('multi %s/%s' % (counts.get(5), counts.get(6)) if fprobe else 'no fprobe')
    matrix[label]['attach_fentry']['attach'] += ', %s/%s hits' % (datasec(bss, 'fentry_hits'),
                                                                  datasec(bss, 'fexit_hits'))


def test_module_tp_btf(label, g, row):
    load = g.json('modtp-load')
    row['module_tp_btf'] = {'loads': 'no', 'relos': '-', 'attach': '-'}
    if not check(g.rc('modtp-load') == 0 and load, '%s: tp_btf on 9p_client_req (9pnet\'s tracepoint) loads '
                 'and attaches' % label, g.why('modtp-load')):
        return
    links = sum(len(p.get('links', [])) for p in load['object']['programs'])
    hits = datasec(g.json('modtp-counts'), 'requests')
    check(links == 1 and isinstance(hits, int) and hits >= 4,
          '%s: ... and counts the 9p requests of writing and reading a file in the share (got %s)' % (label, hits),
          g.text('modtp-counts'))
    check(g.rc('modtp-unload') == 0, '%s: ... and unloads' % label, g.why('modtp-unload'))
    row['module_tp_btf'] = {'loads': 'yes', 'relos': '0/0', 'attach': '%d/1, %s hits' % (links, hits)}


def btf_names(reply):
    return [b.get('name') for b in (reply or {}).get('btf', [])]


def test_module(label, g, kbtf, row):
    before = g.json('module-check-before')
    check(g.rc('module-check-before') != 0 and before is None or (before and not before.get('ok')),
          '%s: module_core does not relocate before veth is loaded' % label,
          g.why('module-check-before') + (g.text('module-check-before') or ''))
    check(g.rc('module-modprobe') == 0, '%s: modprobe veth' % label, g.why('module-modprobe'))
    names = btf_names(g.json('module-btf-list'))
    check('veth' in names, '%s: ListBTF shows veth\'s BTF without a daemon restart' % label, 'btf list: %s' % names)
    load = g.json('module-load')
    if check(g.rc('module-load') == 0 and load, '%s: module_core loads against veth\'s types' % label,
             g.why('module-load')):
        relos = load['object'].get('relocations', [])
        try:
            vbtf = btf.load(os.path.join(g.share, 'veth.btf'), kbtf)
        except (OSError, ValueError) as e:
            vbtf = None
            diag('veth.btf: %s' % e)
        from_veth = all(r.get('btf') == 'veth' for r in relos)
        checked, wrong = check_relocations(relos, vbtf) if vbtf else (0, ['no veth BTF'])
        check(relos and from_veth and not wrong and checked == len(relos),
              '%s: module_core\'s %d relocations resolve in veth\'s BTF to its offsets' % (label, len(relos)),
              json.dumps(relos) + '\n' + '\n'.join(wrong))
        row['module_core'] = {'loads': 'yes', 'relos': '%d/%d in veth' % (checked - len(wrong), len(relos)),
                              'attach': '%d/1' % sum(len(p.get('links', [])) for p in load['object']['programs'])}
    else:
        row['module_core'] = {'loads': 'no', 'relos': '-', 'attach': '-'}
    row['module_fentry'] = {'loads': 'no', 'relos': '-', 'attach': '-'}
    load = g.json('modfentry-load')
    if check(g.rc('modfentry-load') == 0 and load, '%s: fentry and fexit (fexit/veth:veth_open) on veth_open '
             '(a module\'s function) '
             'load and attach' % label, g.why('modfentry-load')):
        links = sum(len(p.get('links', [])) for p in load['object']['programs'])
        check(links == 2, '%s: ... with 2 links (got %d)' % (label, links))
        check(g.rc('modfentry-ip-add') == 0 and g.rc('modfentry-ip-up') == 0,
              '%s: a veth pair made and set up' % label, g.why('modfentry-ip-add') + g.why('modfentry-ip-up'))
        bss = g.json('modfentry-counts')
        calls, ok = datasec(bss, 'open_calls'), datasec(bss, 'open_returns_ok')
        check(calls == 1 and ok == 1, '%s: fentry saw 1 veth_open call, fexit 1 successful return (got %s, %s)'
              % (label, calls, ok), g.text('modfentry-counts'))
        row['module_fentry'] = {'loads': 'yes', 'relos': '0/0', 'attach': '%d/2, %s/%s hits' % (links, calls, ok)}
        check(g.rc('modfentry-unload') == 0, '%s: ... and unloads' % label, g.why('modfentry-unload'))
    test_module_kfunc(label, g, row)
    check(g.rc('module-rmmod') == 0, '%s: modprobe -r veth' % label, g.why('module-rmmod'))
    names = btf_names(g.json('module-btf-list-after'))
    check('veth' not in names and 'vmlinux' in names, '%s: veth\'s BTF is dropped when the module goes' % label,
          'btf list: %s' % names)
    after = g.json('module-check-after')
    check(g.rc('module-check-after') != 0 and (after is None or not after.get('ok')),
          '%s: module_core does not relocate once veth is gone' % label,
          g.why('module-check-after') + (g.text('module-check-after') or ''))


def counters(reply):
    return (reply or {}).get('counters', {})


def test_module_kfunc(label, g, row):
    """nf_conntrack's kfuncs: libbpf walks the kernel's BTF objects for them and is shown only nf_conntrack's."""
    row['module_kfunc'] = {'loads': 'no', 'relos': '-', 'attach': '-'}
    check(g.rc('modkfunc-modprobe') == 0, '%s: modprobe nf_conntrack' % label, g.why('modkfunc-modprobe'))
    names = btf_names(g.json('modkfunc-btf-list'))
    modules = [n for n in names if n != 'vmlinux']
    check('nf_conntrack' in names, '%s: ListBTF shows nf_conntrack\'s BTF' % label, 'btf list: %s' % names)
    load = g.json('modkfunc-load')
    if not check(g.rc('modkfunc-load') == 0 and load, '%s: module_kfunc loads (bpf_xdp_ct_lookup and bpf_ct_release, '
                 'kfuncs of nf_conntrack)' % label, g.why('modkfunc-load')):
        return
    before, after = counters(g.json('modkfunc-before')), counters(g.json('modkfunc-status'))
    walks = after.get('module_btf_walks', 0) - before.get('module_btf_walks', 0)
    shown = after.get('module_btfs_shown', 0) - before.get('module_btfs_shown', 0)
    check(walks == 1 and shown == 1 and len(modules) > 1,
          '%s: libbpf walked the kernel\'s BTF objects once and met 1 module of the %d with BTF (nf_conntrack)'
          % (label, len(modules)), 'walks %d, shown %d, modules %s' % (walks, shown, modules))
    row['module_kfunc'] = {'loads': 'yes', 'relos': '0/0', 'attach': '-, %d of %d module BTFs' % (shown, len(modules))}
    check(g.rc('modkfunc-unload') == 0, '%s: ... and unloads' % label, g.why('modkfunc-unload'))


def test_no_sysfs_btf(label, g, tp_core):
    check(g.text('nobtf-ls', '') is not None and g.text('nobtf-ls', '').strip() == '',
          '%s: /sys/kernel/btf hidden (a kernel without BTF)' % label)
    load = g.json('nobtf-load')
    if check(g.rc('nobtf-load') == 0 and load, '%s: tp_core loads with --vmlinux-btf standing in' % label,
             g.why('nobtf-load') + '\n' + (g.text('daemon-nobtf', '.log') or '')[-2000:]):
        got = [(relo_key(r), r.get('target')) for r in load['object'].get('relocations', [])]
        want = [(relo_key(r), r.get('target')) for r in (tp_core or {}).get('relocations', [])]
        check(got == want and got, '%s: ... with the same relocation targets as with sysfs BTF' % label,
              'got %s\nwant %s' % (got, want))
        check(len(load['object']['programs']) == 2 and
              all(len(p.get('links', [])) == 1 for p in load['object']['programs']),
              '%s: ... and both its programs attached' % label)
    check(g.rc('nobtf-unload') == 0, '%s: ... and unloads' % label, g.why('nobtf-unload'))


def test_unmet_modules(label, g):
    """Modules the BTF cache has not met: libbpf meets them in its walk, the daemon searches them for attach
    targets."""
    names = btf_names(g.json('unmet-btf-list'))
    check(names == ['vmlinux'], '%s: a daemon whose /sys/kernel/btf shows only vmlinux caches only vmlinux' % label,
          'btf list: %s' % names)
    check(g.rc('unmet-modprobe') == 0, '%s: modprobe veth after it started' % label, g.why('unmet-modprobe'))
    load = g.json('unmet-kfunc-load')
    check(g.rc('unmet-kfunc-load') == 0 and load, '%s: module_kfunc loads: libbpf meets nf_conntrack\'s BTF, '
          'which the cache has not' % label, g.why('unmet-kfunc-load') + (g.text('daemon-unmet', '.log') or '')[-2000:])
    check(g.rc('unmet-kfunc-unload') == 0, '%s: ... and unloads' % label, g.why('unmet-kfunc-unload'))
    load = g.json('unmet-fentry-load')
    links = sum(len(p.get('links', [])) for p in load['object']['programs']) if load else 0
    check(g.rc('unmet-fentry-load') == 0 and links == 2, '%s: fentry and fexit on veth_open load and attach '
          '(2 links, got %d): veth\'s BTF searched from the kernel' % (label, links),
          g.why('unmet-fentry-load') + (g.text('daemon-unmet', '.log') or '')[-2000:])
    check(g.rc('unmet-fentry-unload') == 0, '%s: ... and unloads' % label, g.why('unmet-fentry-unload'))
    searches = counters(g.json('unmet-status')).get('unmet_module_searches', 0)
    modules = [n for n in btf_names(g.json('modkfunc-btf-list')) if n != 'vmlinux']
    check(searches == len(modules), '%s: the daemon read each of the %d module BTFs from the kernel once for the '
          'load\'s two programs (got %d)' % (label, len(modules), searches), g.text('unmet-status') or '')


# ---------------------------------------------------------------------------------------------------
# The pre-flight check on this host: each VM kernel's BTF registered as an external BTF.

class HostDaemon:
    def __init__(self, build, work, btf_dir):
        self.ctl = os.path.join(build, 'client', 'bpfcorectl')
        self.sock = os.path.join(work, 'host.sock')
        self.bpffs = '/sys/fs/bpf/bpfcored-vm-test-%d' % os.getpid()
        state = os.path.join(work, 'host-state')
        self.log = open(os.path.join(work, 'host-daemon.log'), 'w')
        self.proc = subprocess.Popen([os.path.join(build, 'daemon', 'bpfcored'), '--socket', self.sock,
                                      '--bpffs-root', self.bpffs, '--state-dir', state, '--btf-dir', btf_dir,
                                      '--objects-dir', os.path.join(work, 'objects.d'), '--config', '/dev/null',
                                      '--foreground'], stdout=self.log, stderr=self.log)
        for _ in range(100):
            if os.path.exists(self.sock) or self.proc.poll() is not None:
                break
            time.sleep(0.1)

    def check(self, obj, target):
        r = subprocess.run([self.ctl, '--socket', self.sock, '--json', 'check', obj, '--btf', target],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            return json.loads(r.stdout), r.stderr
        except ValueError:
            return None, r.stderr

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.bpffs, ignore_errors=True)
        if os.path.isdir(self.bpffs):
            os.rmdir(self.bpffs)


def test_preflight(build, work, booted):
    btf_dir = os.path.join(work, 'btf')
    os.makedirs(btf_dir)
    for label, (g, _objs) in booted.items():
        shutil.copy(os.path.join(g.share, 'vmlinux.btf'), os.path.join(btf_dir, label + '.btf'))
    daemon = HostDaemon(build, work, btf_dir)
    try:
        for label, (g, objs) in booted.items():
            for o, obj in objs.items():
                vm = [(relo_key(r), r.get('target')) for r in obj.get('relocations', [])]
                if not vm:
                    continue
                reply, err = daemon.check(os.path.join(build, 'tests', 'bpf', o + '.bpf.o'), label)
                host = [(relo_key(r), r.get('target')) for r in (reply or {}).get('relocations', [])]
                ok = bool(reply and reply.get('ok') and reply.get('btf') == label and host == vm)
                d = summary.setdefault(label, {})
                d['preflight'] = d.get('preflight', 0) + 1
                d['preflight_ok'] = d.get('preflight_ok', 0) + ok
                check(ok,
                      'check %s --btf %s on this host: the %d targets %s loaded with' % (o, label, len(vm), label),
                      err + '\n' + '\n'.join('%s: host %s, vm %s' % (a[0], a[1], b[1])
                                             for a, b in zip(host, vm) if a != b)[:3000])
            # A "no" is predicted too: module_core needs veth's BTF, which the kernel's vmlinux lacks.
            vm = g.json('module-check-before') or {}
            reply, err = daemon.check(os.path.join(build, 'tests', 'bpf', 'module_core.bpf.o'), label)
            failing = sorted(relo_key(r) for r in (reply or {}).get('relocations', []) if not r.get('ok'))
            check(reply is not None and reply.get('ok') is False and vm.get('ok') is False and failing and
                  failing == sorted(relo_key(r) for r in vm.get('relocations', []) if not r.get('ok')),
                  'check module_core --btf %s on this host fails on the relocations the VM failed before '
                  '`modprobe veth`' % label, '%s\nhost: %s\nvm: %s' % (err, reply, vm))
    finally:
        daemon.stop()


# ---------------------------------------------------------------------------------------------------

def print_matrix(matrix, kernels):
    """The kernel x object table, as the README shows it."""
    cell = '%-4s %-19s %-27s'
    print('#')
    print(('# ' + '%-14s' % '' + ''.join('  %-52s' % ('%s (%s)' % (l, kernels[l]['release'])) for l in matrix))
          .rstrip())
    print(('# ' + '%-14s' % 'object' + ''.join('  ' + cell % ('load', 'relocations', 'links') for _ in matrix))
          .rstrip())
    for o in list(OBJECTS) + MODULE_OBJECTS:
        row = '%-14s' % o
        for l in matrix:
            c = matrix[l].get(o) or {'loads': '-', 'relos': '-', 'attach': '-'}
            row += '  ' + cell % (c['loads'], c['relos'], c['attach'].strip())
        print('# ' + row.rstrip())
    print('#')
    print('# relocations: targets equal to what tests/vm/btf.py reads from that kernel\'s BTF / all, and how')
    print('# many differ from the build host\'s (%s) offsets; links: attached / expected, with real hits'
          % os.uname().release)
    print('# counted where the test triggers them (k/kret: kprobe/kretprobe, multi: the multi-kprobe pair,')
    print('# fentry/fexit; tcx or clsact: how tc attached, pings on lo counted).')
    for l, k in kernels.items():
        d = summary.get(l, {})
        print('# %s: differential, %d/%d programs byte-identical with plain libbpf\'s; pre-flight `check --btf %s`'
              % (l, d.get('same', 0), d.get('programs', 0), l))
        print('#   on this host: %d/%d objects with the targets the VM loaded with' % (d.get('preflight_ok', 0),
                                                                                     d.get('preflight', 0)))
        print('#   boot: init at %ss of kernel uptime, tests done at %ss, qemu start to power-off %.1fs'
              % (k['up'], k['done'], k['wall']))
    print('#')


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    build, src = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
    cache = os.path.join(os.environ.get('BPFCORED_TEST_CACHE', '/var/cache/bpfcored-test'), 'vm')
    timeout = int(os.environ.get('BPFCORED_VM_TIMEOUT', '300'))

    if os.geteuid() != 0:
        skip_all('needs root (the host-side daemon for the pre-flight check)')
    tools = {t: shutil.which(t, path='/usr/bin:/bin:/usr/sbin:/sbin')
             for t in ('qemu-system-x86_64', 'busybox', 'cpio', 'depmod', 'modprobe', 'xz', 'apt-get', 'bpftool')}
    missing = [t for t, p in tools.items() if not p]
    if missing:
        skip_all('missing %s (qemu-system-x86, busybox-static, cpio, kmod, xz-utils, bpftool: '
                 'bpfcored.sh installs them)' % ' '.join(missing))
    # The initramfs has no libc for busybox: it must be busybox-static's.
    if subprocess.run(['ldd', tools['busybox']], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        skip_all('%s is dynamically linked (install busybox-static)' % tools['busybox'])
    for o in list(OBJECTS) + MODULE_OBJECTS:
        if not os.path.exists(os.path.join(build, 'tests', 'bpf', o + '.bpf.o')):
            skip_all('the build has no tests/bpf/%s.bpf.o (test BPF objects not built)' % o)
    os.makedirs(cache, exist_ok=True)
    t_start = time.monotonic()

    # Runs share the cache; fetching a kernel takes it alone.
    lock = open(os.path.join(cache, 'lock'), 'w')
    fcntl.flock(lock, fcntl.LOCK_EX)
    kernels = []
    for label, suite, prefix in KERNELS:
        t0 = time.monotonic()
        tree, release = fetch_kernel(cache, label, suite, prefix)
        if not tree:
            diag('%s: %s' % (label, release))
            skip('%s: the kernel boots and runs the tests' % label, release)
            continue
        diag('%s: %s (%s), ready in %.1fs' % (label, release, os.path.basename(tree), time.monotonic() - t0))
        kernels.append((label, tree, release))
    fcntl.flock(lock, fcntl.LOCK_SH)
    if not kernels:
        print('1..%d' % n)
        return 0

    work = tempfile.mkdtemp(prefix='bpfcored-vm-')
    matrix, booted, timings = {}, {}, {}
    try:
        common = common_initramfs(work, build, src, tools['busybox'], tools['bpftool'])
        for label, tree, release in kernels:
            t0 = time.monotonic()
            mods, names = modules_initramfs(work, label, tree, release)
            diag('%s: initramfs modules %s (%.1fs)' % (label, ' '.join(names), time.monotonic() - t0))
            share, seconds, console, rc = boot(work, label, tree, release, [common, mods], timeout)
            g = Guest(share)
            g.config = kernel_config(tree, release)
            up = (g.text('uptime', '.end') or '').split()[:1]
            start = (g.text('uptime', '.start') or '').split()[:1]
            diag('%s: boot and tests %.1fs wall (guest up at %ss, tests done at %ss), qemu %s'
                 % (label, seconds, start[0] if start else '?', up[0] if up else '?', rc))
            timings[label] = {'release': release, 'wall': seconds, 'up': start[0] if start else '?',
                              'done': up[0] if up else '?'}
            if not check(g.text('done', '') is not None, '%s: the guest ran its tests to the end' % label,
                         console[-3000:] + '\n' + (g.text('guest', '.log') or '')[-3000:]):
                continue
            check((g.text('uname', '') or '').strip() == release, '%s: the guest runs %s' % (label, release),
                  g.text('uname', ''))
            check(release in (g.text('status') or '') and 'vmlinux' in btf_names(g.json('btf-list')),
                  '%s: bpfcored runs there: Status names the kernel, ListBTF has vmlinux' % label,
                  (g.text('status') or '') + (g.text('btf-list') or ''))
            kbtf = btf.load(os.path.join(share, 'vmlinux.btf'))
            objs = test_kernel(label, g, kbtf, matrix)
            test_probes(label, g, matrix)
            test_module_tp_btf(label, g, matrix[label])
            test_module(label, g, kbtf, matrix[label])
            test_no_sysfs_btf(label, g, objs.get('tp_core'))
            test_unmet_modules(label, g)
            progs = g.text('progs-left', '') or ''
            check(progs.strip() == '', '%s: nothing left loaded in the guest' % label, progs)
            booted[label] = (g, objs)
        if booted:
            test_preflight(build, work, booted)
        print_matrix(matrix, {l: k for l, k in timings.items() if l in matrix})
    finally:
        if os.environ.get('BPFCORED_TEST_KEEP'):
            diag('kept ' + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    diag('VM tier: %.1fs' % (time.monotonic() - t_start))
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
