#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bpfcored under a real systemd. A minimal Debian 12 root (debootstrap, cached
# between runs) gets the build installed with `meson install --destdir`, is
# booted with `systemd-nspawn -b`, and the units are checked from outside
# through nsenter: what meson install put there (man pages, completion, the
# client library with pkg-config, the default configuration), socket
# activation, notify, journald fields and the catalog for every event kind,
# restart/stop/start keeping programs, the socket's group, reload, watchdog.
# Prints TAP; skips (1..0 # SKIP) only where debootstrap or nspawn cannot run.
#
#   run-nspawn-test.sh BUILD_DIR SOURCE_DIR
#
# BPFCORED_TEST_CACHE  where the root is cached (default /var/cache/bpfcored-test)
# DEBIAN_MIRROR        default http://deb.debian.org/debian
# BPFCORED_TEST_KEEP=1 leave the container running and its run directory in place
#
# Needs on the host: man (man-db, to render the installed pages), cc and pkg-config (to build an agent
# against the installed library: the root has no compiler).

set -u -o pipefail

build=$(realpath "${1:?usage: run-nspawn-test.sh BUILD_DIR SOURCE_DIR}")
src=$(realpath "${2:?usage: run-nspawn-test.sh BUILD_DIR SOURCE_DIR}")
cache=${BPFCORED_TEST_CACHE:-/var/cache/bpfcored-test}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$cache/rootfs
machine=bpfcored-test-$$
run=$cache/run.$$

# What the cached root is made of; a change here rebuilds it. procps: /bin/kill for ExecReload=;
# libasan8, libubsan1: what a gcc -Db_sanitize=address,undefined build links.
packages=(systemd dbus procps libjson-c5 libelf1 libssl3 libseccomp2 libasan8 libubsan1)
backports_packages=(libbpf1)
recipe="bookworm minbase ${packages[*]} backports:${backports_packages[*]} v1"

# Added to nspawn's default set, which already has CAP_SYS_PTRACE, CAP_KILL, CAP_SETUID, CAP_SETGID.
caps=CAP_BPF,CAP_PERFMON,CAP_SYS_ADMIN,CAP_NET_ADMIN,CAP_SYS_RESOURCE
objects=/var/lib/bpfcored-test
msgid_started=0844666ef24a4ae59e5f5c0b34f168f7
msgid_ready=3e303d5c9e2047a09a1d35155fccf999
msgid_loaded=01edef0129984433a273f7713c218776
msgid_load_failed=3e1d7a5feacb4b938576efb8ad31f546
msgid_attached=df0ac853eae547f88c90d07a7b46a05b
msgid_detached=3c808f8fc9264b91b9e2c2b26d985264
msgid_unloaded=5798b9aca29140e197d7b92925a955ee
msgid_recovery=5527eb69d4ee43f7b27dc276f901c4af
msgid_reloaded=14fbfe61b2e54c26bc1fcd2388ce4f1d
msgid_btf_added=e3f9b47b355d4f04ba3ca7f64ad7d8e1
msgid_btf_removed=9f371c5f5c5344c89b36a2aeac53b0fa
msgid_denied=7d1f0b3e58a94c6d9e2a4b8c0f6d2e15

n=0
failed=0
t0=$SECONDS
phase_t=$SECONDS

diag() { sed 's/^/# /'; }
note() { echo "# $*"; }

skip_all() {
        echo "1..0 # SKIP $*"
        exit 0
}

bail() {
        echo "Bail out! $*"
        exit 1
}

# check STATUS DESCRIPTION [DIAGNOSTICS]: "ok" when STATUS is 0; returns STATUS.
check() {
        local status=$1 desc=$2 detail=${3:-}
        n=$((n + 1))
        if [ "$status" -eq 0 ]; then
                echo "ok $n - $desc"
        else
                echo "not ok $n - $desc"
                failed=$((failed + 1))
                [ -n "$detail" ] && printf '%s\n' "$detail" | diag
        fi
        return "$status"
}

phase() {
        note "$(printf '%-28s %4ds' "$1" $((SECONDS - phase_t)))"
        phase_t=$SECONDS
}

# Runs a command inside the booted container as root.
inside() {
        nsenter -t "$leader" -a -r -w -- /usr/bin/env -i \
                PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= "$@"
}

# Runs a command inside as USER, with that user's groups and no capabilities.
inside_as() {
        local user=$1
        shift
        inside setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
}

prop() { inside systemctl show -P "$2" "$1"; }

# Reads JSON on stdin and prints the Python expression over it, `d`; prints nothing and fails when
# stdin is not JSON or lacks what the expression looks for.
json() {
        python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(eval(sys.argv[1]))
except (ValueError, LookupError, TypeError, StopIteration):
    sys.exit(1)' "$1"
}

# The journal entries (JSON, one a line) matching MATCHES…, waiting up to 5s for journald to have them.
journal() {
        local i out
        for i in $(seq 25); do
                out=$(inside journalctl -o json --no-pager "$@")
                [ -n "$out" ] && break
                sleep 0.2
        done
        printf '%s' "$out"
}

# "ID:PROG_ID,PROG_ID;…" of everything bpfcorectl list shows, by id: what must survive restarts.
loaded_ids() {
        inside bpfcorectl --json list | json '";".join("%d:%s" % (o["id"], ",".join(str(p["id"]) for p in o["programs"]))
                for o in sorted(d["objects"], key=lambda o: o["id"]))'
}

wait_active() {
        local i
        for i in $(seq 100); do
                [ "$(prop "$1" ActiveState)" = active ] && return 0
                sleep 0.2
        done
        return 1
}

# ---------------------------------------------------------------------------
# Preflight: what must hold for debootstrap and nspawn to work here at all.

[ "$(id -u)" -eq 0 ] || skip_all "needs root (debootstrap, mounts, systemd-nspawn)"
grep -qw bpf /proc/filesystems || skip_all "the kernel has no bpf filesystem"
[ -r /sys/kernel/btf/vmlinux ] || skip_all "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
for f in bpf/tp_core.bpf.o bpf/attach_net.bpf.o bpf/attach_probe.bpf.o bpf/ringbuf.bpf.o uprobe-target; do
        [ -f "$build/tests/$f" ] || skip_all "the build has no $build/tests/$f (test BPF objects not built)"
done
command -v python3 >/dev/null || skip_all "python3 is needed to read JSON replies"
note "build $build, source $src"

mkdir -p "$cache" || skip_all "cannot create $cache"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
        note "installing ${missing[*]}"
        # A fresh machine may have no package lists yet.
        if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
               { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; }; } \
                        >"$cache/apt-host.log" 2>&1; then
                tail -5 "$cache/apt-host.log" | diag
                skip_all "apt-get install ${missing[*]} failed (see $cache/apt-host.log)"
        fi
fi
phase "host tools"

# ---------------------------------------------------------------------------
# The cached root: built once, rebuilt when the recipe changed or it is broken.

rootfs_ok() {
        local v
        [ -x "$rootfs/usr/lib/systemd/systemd" ] || return 1
        [ "$(cat "$rootfs/.bpfcored-test-recipe" 2>/dev/null)" = "$recipe" ] || return 1
        # shellcheck disable=SC2016 # dpkg-query's own ${…}
        v=$(chroot "$rootfs" dpkg-query -W -f='${db:Status-Status}\n' "${packages[@]}" "${backports_packages[@]}" \
                2>/dev/null) || return 1
        ! grep -qvx installed <<<"$v" || return 1
        # shellcheck disable=SC2016
        v=$(chroot "$rootfs" dpkg-query -W -f='${Version}' libbpf1) || return 1
        dpkg --compare-versions "$v" ge 1:1.4
}

# Runs share the root (flock -s); building it takes it alone (flock -x), and whoever waited for that
# looks again: another run may have built it meanwhile.
exec 9>"$cache/lock"
flock -s 9
if rootfs_ok || { flock -x 9 && rootfs_ok; }; then
        note "reusing the cached root $rootfs"
else
        note "building the root in $rootfs (debootstrap --variant=minbase bookworm)"
        rm -rf "$rootfs.new" "$rootfs"
        if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
                        bookworm "$rootfs.new" "$mirror" >"$cache/debootstrap.log" 2>&1; then
                err=$(grep '^E:' "$cache/debootstrap.log" | tail -1)
                rm -rf "$rootfs.new"
                # A package that does not exist is this script's fault; anything else is the network's.
                [[ "$err" == *"Couldn't find these debs"* ]] && bail "debootstrap: $err"
                skip_all "debootstrap of bookworm from $mirror failed here: ${err:-see $cache/debootstrap.log}"
        fi
        # The build links libbpf 1.4 from bookworm-backports.
        echo "deb $mirror bookworm-backports main" >"$rootfs.new/etc/apt/sources.list.d/bookworm-backports.list"
        if ! { chroot "$rootfs.new" apt-get update -q &&
               chroot "$rootfs.new" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                        --no-install-recommends -t bookworm-backports "${backports_packages[@]}"; } \
                        >"$cache/backports.log" 2>&1; then
                err=$(grep '^E:' "$cache/backports.log" | tail -1)
                rm -rf "$rootfs.new"
                [[ "$err" == *"Unable to locate package"* ]] && bail "bookworm-backports: $err"
                skip_all "installing ${backports_packages[*]} from bookworm-backports failed here: ${err:-see $cache/backports.log}"
        fi
        chroot "$rootfs.new" apt-get clean
        rm -rf "$rootfs.new"/var/lib/apt/lists/*
        echo "$recipe" >"$rootfs.new/.bpfcored-test-recipe"
        mv "$rootfs.new" "$rootfs"
        rootfs_ok || bail "the freshly built root in $rootfs does not pass its own check"
fi
# Shared from here on: other runs may use the root too, none may rebuild it under this one.
flock -s 9
phase "root (debootstrap/cache)"

# ---------------------------------------------------------------------------
# This run's copy, the build installed into it, a private bpffs, cgroups.

leader=
nspawn_pid=
overlay=false
bpffs_mounted=false
cgroup_dirs=()

cleanup() {
        local i
        if [ -n "${BPFCORED_TEST_KEEP:-}" ] && [ -n "$leader" ]; then
                note "kept: container leader $leader (nsenter -t $leader -a), run directory $run"
                touch "$run/keep"
                return
        fi
        if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
                # Unload whatever is still loaded, then power off.
                for i in $(inside bpfcorectl --json list 2>/dev/null | json '" ".join(str(o["id"]) for o in d["objects"])'); do
                        inside bpfcorectl unload "$i" >/dev/null 2>&1
                done
                inside systemctl poweroff --no-block >/dev/null 2>&1
        fi
        if [ -n "$nspawn_pid" ]; then
                # Without a leader to ask, SIGTERM makes nspawn power the container off.
                [ -z "$leader" ] && kill -TERM "$nspawn_pid" 2>/dev/null
                for i in $(seq 60); do
                        kill -0 "$nspawn_pid" 2>/dev/null || break
                        sleep 0.5
                done
                if kill -0 "$nspawn_pid" 2>/dev/null; then
                        note "the container did not power off in 30s: killing it"
                        # Its init first: that takes every process of the container's PID namespace along.
                        pgrep -P "$nspawn_pid" | xargs -r kill -KILL
                        kill -KILL "$nspawn_pid" 2>/dev/null
                fi
                wait "$nspawn_pid" 2>/dev/null
        fi
        if $bpffs_mounted; then
                rm -rf "${run:?}"/bpffs/* 2>/dev/null
                umount "$run/bpffs"
        fi
        $overlay && umount "$run/root"
        for i in "${cgroup_dirs[@]}"; do
                find "$i" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        rmdir "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
        rm -rf --one-file-system "$run"
}
trap cleanup EXIT

# Leftovers of runs that died without cleaning up (not those kept on purpose).
for stale in "$cache"/run.*; do
        if [ ! -d "$stale" ] || [ -e "$stale/keep" ] || kill -0 "${stale##*.}" 2>/dev/null; then
                continue
        fi
        umount "$stale/bpffs" "$stale/root" 2>/dev/null
        rm -rf --one-file-system "$stale"
done

mkdir -p "$run"/{upper,work,root,bpffs}
if mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$run/upper,workdir=$run/work" "$run/root" 2>/dev/null; then
        overlay=true
else
        note "no overlayfs here: copying the root"
        cp -a --reflink=auto "$rootfs/." "$run/root/" || bail "cannot copy $rootfs"
fi

# meson test has built everything already; by hand, build first.
if ! out=$(meson install -C "$build" --destdir "$run/root" --no-rebuild --quiet 2>&1); then
        printf '%s\n' "$out" | tail -20 | diag
        bail "meson install --destdir failed"
fi
opts=$(meson introspect "$build" --buildoptions) || bail "meson introspect failed"
option() { json "next(o['value'] for o in d if o['name'] == '$1')" <<<"$opts"; }
prefix=$(option prefix)
bindir=$prefix/$(option bindir)
sbindir=$prefix/$(option sbindir)
libdir=$prefix/$(option libdir)
mandir=$prefix/$(option mandir)
datadir=$prefix/$(option datadir)
sanitize=$(option b_sanitize)
# meson install runs no ldconfig for a --destdir: the client library must be found by agents.
chroot "$run/root" ldconfig || bail "ldconfig in the copy failed"

# A library the root lacks would only show as a daemon that does not start.
out=$(chroot "$run/root" ldd "$sbindir/bpfcored" "$bindir/bpfcorectl" 2>&1)
if grep -q 'not found' <<<"$out"; then
        grep 'not found' <<<"$out" | diag
        bail "the root lacks libraries the build links: add their packages to packages= in $0"
fi

# Enabled as a package would: the socket only, so that the first connection starts the service.
mkdir -p "$run/root/etc/systemd/system/sockets.target.wants"
ln -sf "$prefix/lib/systemd/system/bpfcored.socket" "$run/root/etc/systemd/system/sockets.target.wants/"
if [ "$sanitize" != none ]; then
        # LeakSanitizer stops the world with ptrace(), which the unit's system call filter refuses,
        # and would fail every exit; leaks are the other tests' business.
        note "sanitizer build ($sanitize): bpfcored.service runs with ASAN_OPTIONS=detect_leaks=0"
        mkdir -p "$run/root/etc/systemd/system/bpfcored.service.d"
        printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' \
                >"$run/root/etc/systemd/system/bpfcored.service.d/sanitizer.conf"
fi
mkdir -p "$run/root$objects"
cp "$build"/tests/bpf/{tp_core,attach_net,attach_probe,ringbuf}.bpf.o "$build/tests/uprobe-target" "$run/root$objects/" ||
        bail "cannot copy the test objects"
echo "$machine" >"$run/root/etc/hostname"

# Pins go to a bpffs instance of our own: nothing of the test lands in the host's /sys/fs/bpf, and
# unmounting it at the end frees whatever is left.
mount -t bpf bpf "$run/bpffs" || bail "cannot mount a bpf filesystem on $run/bpffs"
bpffs_mounted=true

# Without systemd as PID 1 on the host, nspawn cannot get a scope from it: it runs in cgroups of our
# own (--keep-unit), one per hierarchy the container's systemd needs.
nspawn_cgroup=()
if [ ! -d /run/systemd/system ]; then
        while IFS=: read -r _ ctrl path; do
                case "$ctrl" in
                "") base=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts) ;;
                name=systemd) base=/sys/fs/cgroup/systemd ;;
                *) continue ;;
                esac
                if [ -n "$base" ] && [ -d "$base$path" ] && mkdir -p "$base${path%/}/$machine"; then
                        cgroup_dirs+=("$base${path%/}/$machine")
                fi
        done </proc/self/cgroup
        nspawn_cgroup=(--keep-unit)
fi

# Becomes systemd-nspawn in our cgroups, with the arguments given; NSPAWN_TIMEOUT=S limits it.
# Only in a subshell ($(…) or &): it execs.
nspawn() {
        local d
        for d in "${cgroup_dirs[@]}"; do
                echo "$BASHPID" >"$d/cgroup.procs" || exit 125
        done
        # bpf and perf_event_open are outside nspawn's default system call filter.
        exec ${NSPAWN_TIMEOUT:+timeout "$NSPAWN_TIMEOUT"} systemd-nspawn -q -D "$run/root" -M "$machine" \
                --register=no "${nspawn_cgroup[@]}" --private-network --capability="$caps" \
                --system-call-filter='bpf perf_event_open' --bind="$run/bpffs:/sys/fs/bpf" \
                --link-journal=no --resolv-conf=off --timezone=off "$@"
}

if ! out=$(NSPAWN_TIMEOUT=60 nspawn --console=pipe /bin/true 2>&1); then
        printf '%s\n' "$out" | diag
        skip_all "systemd-nspawn cannot run a container here: $(grep -v '^Attempted to remove' <<<"$out" | tail -1)"
fi
phase "install into the copy"

# ---------------------------------------------------------------------------
# Boot.

nspawn -b --console=read-only </dev/null >"$run/nspawn.log" 2>&1 &
nspawn_pid=$!
for i in $(seq 300); do
        leader=$(pgrep -P "$nspawn_pid" -x systemd | head -1)
        [ -n "$leader" ] && break
        kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.2
done
if [ -z "$leader" ]; then
        check 1 "the container boots" "$(tail -20 "$run/nspawn.log")"
        bail "systemd-nspawn -b did not start systemd"
fi
# Until systemd's own socket is there, systemctl cannot even ask.
for i in $(seq 300); do
        [ -S "/proc/$leader/root/run/systemd/private" ] && break
        sleep 0.2
done
state=$(timeout 120 nsenter -t "$leader" -a -r -w systemctl is-system-running --wait 2>&1)
[[ "$state" = running || "$state" = degraded ]]
check $? "the container boots (system state: $state)" "$(tail -20 "$run/nspawn.log")" ||
        bail "the container did not finish booting"
[ "$state" = degraded ] && inside systemctl --failed --no-legend | diag
phase "boot"

# ---------------------------------------------------------------------------
# The units as installed.

out=$(inside systemd-analyze verify --man=no bpfcored.socket bpfcored.service 2>&1)
st=$?
[ $st -eq 0 ] && [ -z "$out" ]
check $? "systemd-analyze verify is clean for bpfcored.socket and bpfcored.service" "exit $st: $out"

inside systemd-analyze security --no-pager bpfcored.service 2>&1 | grep -E '^→|✗' | diag

out=$(inside sh -c 'getent group bpfcore bpfcore-admin &&
        stat -c "%A %U:%G %n" /etc/bpfcored/btf /etc/bpfcored/objects.d /run/bpfcored' 2>&1)
check $? "sysusers.d made groups bpfcore and bpfcore-admin, tmpfiles.d the directories" "$out"

# ---------------------------------------------------------------------------
# What meson install put there for admins and agent authors.

out=$(inside sh -c 'ls -l /etc/bpfcored/bpfcored.conf && bpfcored -n' 2>&1)
[[ "$out" == *"configuration OK: /etc/bpfcored/bpfcored.conf"* ]]
check $? "the default configuration is installed in /etc/bpfcored and bpfcored -n finds it OK" "$out"

# The minimal root has no man-db: the installed pages are rendered with the host's.
for page in man8/bpfcored.8 man8/bpfcorectl.8 man5/bpfcored.conf.5; do
        f=$run/root$mandir/$page
        name=$(basename "$page")
        warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
        text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$f" 2>/dev/null)
        [ -f "$f" ] && [ -z "$warnings" ] && [[ "$text" == *NAME*"${name%.*}"*SYNOPSIS*DESCRIPTION* ]]
        check $? "man -l renders the installed $mandir/$page without warnings ($(wc -l <<<"$text") lines)" \
                "exists: $([ -f "$f" ] && echo yes || echo no); warnings: $warnings"
done

completion=$datadir/bash-completion/completions/bpfcorectl
# shellcheck disable=SC2016 # expanded inside
out=$(inside bash -c 'source "$1" && complete -p bpfcorectl && COMP_WORDS=(bpfcorectl un) COMP_CWORD=1 &&
        _bpfcorectl && echo "${COMPREPLY[*]}"' _ "$completion" 2>&1)
[ "$out" = "complete -F _bpfcorectl bpfcorectl
unload" ]
check $? "sourcing the installed $completion defines the completion (bpfcorectl un<TAB> gives unload)" "$out"

# An agent in C builds against the installed library with pkg-config (on the host: the root has no
# compiler), then runs inside against the real daemon, further down.
pc_env=(env PKG_CONFIG_SYSROOT_DIR="$run/root" PKG_CONFIG_PATH="$run/root$libdir/pkgconfig")
pc_flags=$("${pc_env[@]}" pkg-config --cflags --libs bpfcore-client 2>&1)
st=$?
[ $st -eq 0 ] && [[ "$pc_flags" == *-lbpfcore-client* ]] && [ -f "$run/root$prefix/include/bpfcore-client.h" ]
check $? "pkg-config --cflags --libs bpfcore-client works on the installed tree: ${pc_flags//$run\/root/}" "exit $st: $pc_flags"
# shellcheck disable=SC2086 # flags are words
out=$(cc -o "$run/root$objects/example-agent" "$src/tests/example-agent.c" $pc_flags $(pkg-config --libs libbpf) 2>&1)
check $? "tests/example-agent.c compiles and links against it" "$out"

out=$(inside stat -c '%A %U:%G' /run/bpfcored/io.bpfcored 2>&1)
socket=$(prop bpfcored.socket SubState)
service=$(prop bpfcored.service ActiveState)
[ "$socket" = listening ] && [ "$service" = inactive ] && [ "$out" = "srw-rw---- root:bpfcore" ]
check $? "bpfcored.socket listens on /run/bpfcored/io.bpfcored (0660 root:bpfcore), bpfcored.service is not running" \
        "socket $socket, service $service, $out"

# ---------------------------------------------------------------------------
# Socket activation and READY.

ta=$SECONDS
out=$(inside bpfcorectl status 2>&1)
st=$?
service=$(prop bpfcored.service ActiveState)/$(prop bpfcored.service SubState)
status_text=$(prop bpfcored.service StatusText)
[ $st -eq 0 ] && [ "$service" = active/running ] && [ -n "$status_text" ]
check $? "the first bpfcorectl status starts bpfcored.service, which reports READY (StatusText: $status_text)" \
        "bpfcorectl: $out
service: $service
$(inside journalctl -u bpfcored.service --no-pager -n 20 -o cat)" || bail "bpfcored does not start under systemd"
note "socket activation to answer: $((SECONDS - ta))s"
pid1=$(prop bpfcored.service MainPID)
[ -n "$(journal _PID="$pid1" MESSAGE_ID=$msgid_started)" ] && [ -n "$(journal _PID="$pid1" MESSAGE_ID=$msgid_ready)" ]
check $? "the start and READY are in the journal (MESSAGE_ID=$msgid_started, $msgid_ready)"

# ---------------------------------------------------------------------------
# A load, in the journal with its fields; attaching from inside the sandbox.

out=$(inside bpfcorectl --json load $objects/tp_core.bpf.o 2>&1)
obj=$(json 'd["object"]["id"]' <<<"$out")
check $? "bpfcorectl load tp_core.bpf.o loads object ${obj:-?}" "$out"
progs=$(json '" ".join(str(p["id"]) for p in d["object"]["programs"])' <<<"$out")
if [ "$(inside nproc 2>/dev/null || echo 1)" -ge 2 ]; then
        batched=$(inside bpfcorectl --json status 2>&1 |
                json '"%d %d" % (d["counters"]["batched_programs"], d["counters"]["verifier_helpers"])')
        [ "${batched%% *}" -ge 2 ] && [ "${batched##* }" -ge 1 ]
        check $? "its two programs were verified side by side, with helper threads under the service's sandbox (batched programs, helpers: ${batched:-?})"
else
        n=$((n + 1))
        echo "ok $n # SKIP one CPU here: programs are verified one after the other"
fi

entry=$(journal MESSAGE_ID=$msgid_loaded BPFCORED_OBJECT_ID="$obj" | head -1)
fields=$(json '" ".join(sorted(k for k in d if k.startswith("BPFCORED_"))) + " unit=" + d.get("_SYSTEMD_UNIT", "")' \
        <<<"$entry")
[[ "$fields" == *BPFCORED_CLIENT_UID* && "$fields" == *BPFCORED_OBJECT_NAME* &&
   "$fields" == *BPFCORED_PROG_IDS* && "$fields" == *unit=bpfcored.service ]]
check $? "the load is in journalctl -o json: MESSAGE_ID=$msgid_loaded BPFCORED_OBJECT_ID=$obj" "fields: $fields
$entry"
jprogs=$(json 'd["BPFCORED_PROG_IDS"]' <<<"$entry")
[ -n "$progs" ] && [ "$jprogs" = "$progs" ]
check $? "its BPFCORED_PROG_IDS ($jprogs) are the loaded programs' ids ($progs)"
usec=$(json 'd["BPFCORED_LOAD_USEC"]' <<<"$entry")
[ "${usec:-0}" -gt 0 ] && [ "$usec" = "$(json 'd["object"]["timings_us"]["total"]' <<<"$out")" ]
check $? "and its BPFCORED_LOAD_USEC ($usec) is the load's total time in the reply" "$entry"

inside journalctl --update-catalog >/dev/null 2>&1
out=$(inside journalctl --list-catalog $msgid_loaded 2>&1)
[[ "$out" == *"$msgid_loaded"*loaded* ]]
check $? "the message catalog is installed: journalctl --list-catalog knows $msgid_loaded" "$out"

out=$(inside bpfcorectl --json attach "$obj" handle_exec tracepoint syscalls/sys_enter_execve 2>&1)
link=$(json 'd["link"]["id"]' <<<"$out")
check $? "the sandboxed daemon attaches a tracepoint (perf_event_open, tracefs): link ${link:-?}" "$out"
[ -n "$(journal MESSAGE_ID=$msgid_attached BPFCORED_LINK_ID="$link")" ]
check $? "the attach is in the journal with MESSAGE_ID=$msgid_attached"

out=$(inside bpfcorectl --json load /etc/hostname 2>&1)
st=$?
[ $st -ne 0 ] && [[ "$out" == *InvalidObject* ]] &&
        [ -n "$(journal MESSAGE_ID=$msgid_load_failed BPFCORED_ERROR=io.bpfcored.InvalidObject)" ]
check $? "a failed load (not an ELF file) is in the journal with MESSAGE_ID=$msgid_load_failed" "exit $st: $out"

out=$(inside "$objects/example-agent" /run/bpfcored/io.bpfcored "$objects/ringbuf.bpf.o" 2>&1)
st=$?
lib=$(inside ldd "$objects/example-agent" | grep -o 'libbpfcore-client[^ ]* => [^ ]*')
[ $st -eq 0 ] && [[ "$out" == received* ]] && [[ "$lib" == *"$libdir"* ]]
check $? "the agent built with pkg-config runs inside with the installed library: $out" "exit $st: $out; $lib"

# shellcheck disable=SC2016
out=$(inside bash -c 'source "$1" && COMP_WORDS=(bpfcorectl show "") COMP_CWORD=2 && _bpfcorectl &&
        echo "${COMPREPLY[*]}"' _ "$completion" 2>&1)
ids=$(inside bpfcorectl --json list | json '" ".join(str(o["id"]) for o in d["objects"])')
[ -n "$ids" ] && [ "$out" = "$ids" ]
check $? "bpfcorectl show <TAB> completes the loaded object ids ($out) from bpfcorectl --json list" \
        "completion: $out; loaded: $ids"

out=$(inside bpfcorectl --json load $objects/attach_probe.bpf.o 2>&1)
pobj=$(json 'd["object"]["id"]' <<<"$out")
out=$(inside bpfcorectl attach "$pobj" uprobe_hit uprobe $objects/uprobe-target bpfcored_probe_me 2>&1)
check $? "it attaches a uprobe to a binary opened through the caller's root (openat2, CAP_SYS_PTRACE)" "$out"

# tc through clsact (a kernel without tcx would take this path): netlink to the kernel's tc, which
# wants CAP_NET_ADMIN; the filter is seen from the container's network namespace and goes with the object.
out=$(inside bpfcorectl --json load $objects/attach_net.bpf.o 2>&1)
nobj=$(json 'd["object"]["id"]' <<<"$out")
out=$(inside bpfcorectl --json attach "$nobj" tc_icmp tc lo ingress clsact 2>&1)
flink=$(json 'd["link"]["id"]' <<<"$out")
[ -n "$flink" ] && [ "$flink" -ge 2147483648 ] && nsenter -t "$leader" -n tc filter show dev lo ingress | grep -q tc_icmp
check $? "the sandboxed daemon adds a clsact tc filter (netlink, CAP_NET_ADMIN): id ${flink:-?}" "$out"
out=$(inside bpfcorectl unload "$nobj" 2>&1) && ! nsenter -t "$leader" -n tc filter show dev lo ingress | grep -q tc_icmp
check $? "and the unload removes the filter" "$out"

out=$(inside bpfcorectl detach "$link" 2>&1) && [ -n "$(journal MESSAGE_ID=$msgid_detached BPFCORED_LINK_ID="$link")" ]
check $? "a detach is in the journal with MESSAGE_ID=$msgid_detached" "$out"
out=$(inside bpfcorectl --json attach "$obj" handle_exec tracepoint syscalls/sys_enter_execve 2>&1)
link=$(json 'd["link"]["id"]' <<<"$out")
check $? "and attaching again gives link ${link:-?}" "$out"

# External BTF dropped into /etc/bpfcored/btf comes and goes while the daemon runs (inotify).
inside cp /sys/kernel/btf/vmlinux /etc/bpfcored/btf/bpfcored-test.btf
added=$(journal MESSAGE_ID=$msgid_btf_added BPFCORED_BTF_NAME=bpfcored-test)
inside rm /etc/bpfcored/btf/bpfcored-test.btf
removed=$(journal MESSAGE_ID=$msgid_btf_removed BPFCORED_BTF_NAME=bpfcored-test)
[ -n "$added" ] && [ -n "$removed" ]
check $? "BTF added to and removed from /etc/bpfcored/btf is in the journal (MESSAGE_ID=$msgid_btf_added, $msgid_btf_removed)" \
        "added: ${added:0:200}; removed: ${removed:0:200}"

before=$(loaded_ids)
note "loaded: $before (object:programs)"
phase "activation, load, journal"

# ---------------------------------------------------------------------------
# Restart, stop, start: programs stay, with their ids.

inside systemctl restart bpfcored.service
wait_active bpfcored.service
pid2=$(prop bpfcored.service MainPID)
after=$(loaded_ids)
[ "$pid2" != "$pid1" ] && [ -n "$before" ] && [ "$after" = "$before" ]
check $? "systemctl restart bpfcored keeps the loaded programs and their ids" \
        "pid $pid1 -> $pid2; before: $before; after: $after"
[ -n "$(journal _PID="$pid2" MESSAGE_ID=$msgid_recovery)" ]
check $? "the restarted daemon logs the recovery (MESSAGE_ID=$msgid_recovery)"

# (systemctl warns that the socket can still start it: that is the point.)
inside systemctl stop bpfcored.service 2>&1 | diag
pins=$(find "$run/bpffs/bpfcored/$obj/programs" -mindepth 1 -printf '%f ' 2>/dev/null)
in_kernel=0
how=""
if command -v bpftool >/dev/null; then
        for p in $progs; do
                bpftool prog show id "$p" >/dev/null 2>&1 || in_kernel=1
        done
        how=", in the kernel (bpftool prog show id)"
fi
service=$(prop bpfcored.service ActiveState)
socket=$(prop bpfcored.socket SubState)
[ "$service" = inactive ] && [ "$socket" = listening ] && [ -n "$pins" ] && [ $in_kernel -eq 0 ]
check $? "systemctl stop bpfcored leaves the programs loaded: pinned ($pins)$how; the socket still listens" \
        "service $service, socket $socket, pins: $pins"

inside systemctl start bpfcored.service
after=$(loaded_ids)
[ "$(prop bpfcored.service ActiveState)" = active ] && [ -n "$before" ] && [ "$after" = "$before" ]
check $? "systemctl start bpfcored recovers them with the same ids" "before: $before; after: $after"
phase "restart, stop, start"

# ---------------------------------------------------------------------------
# The socket's group; reload.

inside useradd --no-create-home --shell /usr/sbin/nologin --groups bpfcore bpfcore-member
inside useradd --no-create-home --shell /usr/sbin/nologin bpfcore-outsider
out=$(inside_as bpfcore-member bpfcorectl status 2>&1)
check $? "a member of group bpfcore (not root) can use the socket: bpfcorectl status" "$out"
out=$(inside_as bpfcore-outsider bpfcorectl status 2>&1)
st=$?
[ $st -ne 0 ] && [[ "$out" == *"Permission denied"* ]]
check $? "a user outside group bpfcore cannot connect (EACCES): ${out:0:120}" "exit $st: $out"

# Before the reload no rule lets the member load; after it one does.
out=$(inside_as bpfcore-member bpfcorectl load $objects/tp_core.bpf.o 2>&1)
st=$?
[ $st -ne 0 ] && [[ "$out" == *PermissionDenied* ]] &&
        [ -n "$(journal MESSAGE_ID=$msgid_denied BPFCORED_CLIENT_UID="$(inside id -u bpfcore-member)")" ]
check $? "without a rule the member's load is denied, and logged (MESSAGE_ID=$msgid_denied)" "exit $st: $out"

inside sh -c 'printf "[rule members]\nmatch-gid = bpfcore\nmax-objects = 2\n" >/etc/bpfcored/bpfcored.conf'
pid3=$(prop bpfcored.service MainPID)
inside systemctl reload bpfcored.service
st=$?
after=$(loaded_ids)
pid=$(prop bpfcored.service MainPID)
[ $st -eq 0 ] && [ "$(prop bpfcored.service ActiveState)" = active ] && [ "$pid" = "$pid3" ] && [ -n "$before" ] &&
        [ "$after" = "$before" ]
check $? "systemctl reload (SIGHUP: RELOADING=1, READY=1) keeps the daemon and everything loaded" \
        "exit $st, pid $pid3 -> $pid, before: $before; after: $after"
entry=$(journal _PID="$pid" MESSAGE_ID=$msgid_reloaded | head -1)
[ "$(json 'd["BPFCORED_RULES"]' <<<"$entry")" = 1 ]
check $? "the reload is in the journal with MESSAGE_ID=$msgid_reloaded and BPFCORED_RULES=1" "$entry"
out=$(inside_as bpfcore-member bpfcorectl --json load $objects/attach_net.bpf.o 2>&1)
mobj=$(json 'd["object"]["id"]' <<<"$out")
check $? "after the reload the new rule is in force: the member loads object ${mobj:-?}" "$out"
# shellcheck disable=SC2016 # awk's own $
cg=$(inside awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)/bpfcored-test
inside mkdir -p "$cg"
out=$(inside_as bpfcore-member bpfcorectl attach "$mobj" cgroup_egress cgroup "$cg" cgroup_skb/egress 2>&1)
check $? "the member attaches to a cgroup it names, opened as it sees it (another uid: CAP_SYS_PTRACE)" "$out"
out=$(inside_as bpfcore-member bpfcorectl unload "$mobj" 2>&1)
check $? "the member unloads its object" "$out"
inside rmdir "$cg"
phase "group, reload"

# ---------------------------------------------------------------------------
# Watchdog: a loop that stops running (SIGSTOP) gets the service restarted.

inside sh -c 'mkdir -p /run/systemd/system/bpfcored.service.d &&
        printf "[Service]\nWatchdogSec=3s\nLimitCORE=0\n" >/run/systemd/system/bpfcored.service.d/test-watchdog.conf'
inside systemctl daemon-reload
inside systemctl restart bpfcored.service
wait_active bpfcored.service
pid4=$(prop bpfcored.service MainPID)
restarts=$(prop bpfcored.service NRestarts)
sleep 4 # longer than WatchdogSec: a daemon that did not ping would be gone
pid=$(prop bpfcored.service MainPID)
[ "$pid" = "$pid4" ]
check $? "with WatchdogSec=3s the daemon keeps pinging (pid $pid4 still runs after 4s)" "pid $pid4 -> $pid
$(inside journalctl -u bpfcored.service --no-pager -n 10 -o cat)"
inside kill -STOP "$pid4"
for i in $(seq 100); do
        pid5=$(prop bpfcored.service MainPID)
        [ "$pid5" != "$pid4" ] && [ "$pid5" != 0 ] && [ "$(prop bpfcored.service ActiveState)" = active ] && break
        sleep 0.2
done
after=$(loaded_ids)
log=$(inside journalctl -u bpfcored.service --no-pager -o cat _PID=1 | grep -i watchdog | tail -2)
[ "$pid5" != "$pid4" ] && [ "$(prop bpfcored.service NRestarts)" -gt "$restarts" ] && [ -n "$log" ] &&
        [ -n "$before" ] && [ "$after" = "$before" ]
check $? "a stalled event loop misses the watchdog and systemd restarts the service (pid $pid4 -> $pid5), programs kept" \
        "NRestarts $restarts -> $(prop bpfcored.service NRestarts); log: $log; before: $before; after: $after"
inside rm -rf /run/systemd/system/bpfcored.service.d
inside systemctl daemon-reload
phase "watchdog"

# ---------------------------------------------------------------------------
# Unload, power off, nothing left behind.

out=$(inside bpfcorectl unload "$obj" 2>&1 && inside bpfcorectl unload "$pobj" 2>&1) && [ -z "$(loaded_ids)" ]
check $? "bpfcorectl unload $obj $pobj leaves nothing loaded" "$out"
[ -n "$(journal MESSAGE_ID=$msgid_unloaded BPFCORED_OBJECT_ID="$obj")" ]
check $? "the unload is in the journal with MESSAGE_ID=$msgid_unloaded"

# Every kind of event issue 7 lists, each with its own MESSAGE_ID, and the catalog explains each.
missing=""
for kind in started ready loaded load_failed attached detached unloaded recovery reloaded btf_added btf_removed denied; do
        var=msgid_$kind
        [ -n "$(inside journalctl -o cat --no-pager MESSAGE_ID="${!var}" | head -1)" ] || missing="$missing $kind"
        inside journalctl --list-catalog "${!var}" | grep -q "${!var}" || missing="$missing $kind(catalog)"
done
[ -z "$missing" ]
check $? "the journal has an entry, and the catalog a text, for each event kind: start, ready, load, load failed, attach, detach, unload, recovery, config reload, BTF added/removed, permission denied" \
        "missing:$missing"

# Every program a load of this run made, from the journal, to look for in the kernel afterwards.
all_progs=$(inside journalctl -o json --no-pager MESSAGE_ID=$msgid_loaded |
        python3 -c 'import json, sys; print(" ".join(json.loads(l)["BPFCORED_PROG_IDS"] for l in sys.stdin))')
cleanup
trap - EXIT
leader=
left=""
if command -v bpftool >/dev/null; then
        for p in $all_progs; do
                bpftool prog show id "$p" >/dev/null 2>&1 && left="$left $p"
        done
fi
[ -z "$left" ] && [ ! -e "$run" ] && ! grep -q " $run" /proc/self/mounts
check $? "after power-off none of the test's programs ($all_progs) is left, nor the run's copy and mounts" \
        "still loaded:$left"
phase "cleanup"
note "total: $((SECONDS - t0))s"

echo "1..$n"
[ $failed -eq 0 ]
