#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs inside the VM (busybox sh, from the initramfs run-vm-test.py builds): starts bpfcored, loads
# the test objects through bpfcorectl, attaches and triggers probes, loads and removes a module, and
# stores every command's output, stderr and exit status under /out (a 9p share of the host), where
# the host asserts them. Nothing here decides pass or fail: it only records what the kernel did.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
out=/out
objs=/objects
sock=/run/bpfcored/io.bpfcored
# bpfcorectl and bpfcored both take their socket from here.
export BPFCORED_SOCKET=$sock

# run NAME CMD...: records CMD's stdout, stderr and exit status as NAME.out, NAME.err, NAME.rc.
# A command that hangs is killed after 120 s (exit 143) so that the boot still ends with results.
run() {
	name=$1
	shift
	timeout 120 "$@" >"$out/$name.out" 2>"$out/$name.err"
	echo $? >"$out/$name.rc"
}

# The daemon's object id in a Load reply (the first "id" of the JSON).
object_id() { grep -m1 -o '"id":[0-9]*' "$out/$1.out" | cut -d: -f2; }

# A map's kernel id from `bpfcorectl show ID` (the table row whose NAME column is MAP).
map_id() { bpfcorectl show "$1" | awk -v m="$2" '$2 == m && $1 ~ /^[0-9]+$/ { print $1; exit }'; }

start_daemon() {
	# $1: a name for its log; the rest: extra options.
	log=$1
	shift
	mkdir -p /run/bpfcored /sys/fs/bpf/bpfcored
	bpfcored --socket $sock --foreground --config /dev/null --objects-dir /etc/bpfcored/objects.d \
		--btf-dir /etc/bpfcored/btf "$@" 2>"$out/$log.log" &
	daemon=$!
	i=0
	while [ ! -S $sock ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

stop_daemon() {
	kill "$daemon"
	wait "$daemon"
	rm -f $sock
}

uname -r >$out/uname
cat /proc/uptime >$out/uptime.start
# The kernel's own BTF, for the host's offset checks and its pre-flight Check.
cp /sys/kernel/btf/vmlinux $out/vmlinux.btf

start_daemon daemon
run status bpfcorectl --json status
run btf-list bpfcorectl --json btf list

# Every object once: load (attaching by SEC() where the section names a target), then unload.
# OBJECT:ATTACH, ATTACH "a" for --attach; "-" for load only (targets given explicitly below).
for spec in tp_core:a globals:a xdp_pass:- pinned:a many_core:a tp_btf:a attach_trace:a \
	attach_probe:- attach_fentry:a attach_net:- ringbuf:a; do
	o=${spec%%:*}
	if [ "${spec#*:}" = a ]; then
		run "load-$o" bpfcorectl --json load "$objs/$o.bpf.o" --attach
	else
		run "load-$o" bpfcorectl --json load "$objs/$o.bpf.o"
	fi
	id=$(object_id "load-$o")
	[ -n "$id" ] || continue
	case $o in
	xdp_pass)
		run "attach-$o-xdp" bpfcorectl --json attach "$id" xdp_count xdp lo skb
		;;
	attach_net)
		run "attach-$o-xdp" bpfcorectl --json attach "$id" xdp_icmp xdp lo skb
		# clsact's qdisc and cls_bpf are modules in Debian's kernels; the kernel would load them itself
		# through /sbin/modprobe, which this initramfs has only as /bin/modprobe.
		run tc-modprobe modprobe -a sch_ingress cls_bpf
		# tc as the kernel has it: a tcx link on 6.6 and later, a clsact filter before.
		run "attach-$o-tc" bpfcorectl --json attach "$id" tc_icmp tc lo ingress
		# Real traffic: each ping to 127.0.0.1 crosses lo's egress and ingress once.
		ip link set lo up
		counts=$(map_id "$id" attach_net_counts)
		run "tc-ping1" ping -c 3 -W 1 127.0.0.1
		run "tc-counts1" bpfcorectl --json map dump "$counts"
		# clsact asked for on any kernel (on lo's egress), then detached: the count goes back to one per ping.
		run tc-clsact bpfcorectl --json attach "$id" tc_icmp tc lo egress clsact
		run "tc-ping2" ping -c 3 -W 1 127.0.0.1
		run "tc-counts2" bpfcorectl --json map dump "$counts"
		run tc-filters bpftool -j net show dev lo
		run tc-detach bpfcorectl detach "$(grep -m1 -o '"id":[0-9]*' "$out/tc-clsact.out" | cut -d: -f2)"
		run tc-filters-after bpftool -j net show dev lo
		run "tc-ping3" ping -c 3 -W 1 127.0.0.1
		run "tc-counts3" bpfcorectl --json map dump "$counts"
		;;
	esac
	run "show-$o" bpfcorectl --json show "$id"
	# The differential test: the same object loaded by plain libbpf (bpftool, full kernel BTF) must
	# give the same xlated instructions as the daemon's load, program by program.
	# Raw instructions (the host compares bytes), all dumps in one bpftool process: each process costs
	# seconds under software emulation.
	echo "# $o loaded at $(cut -d' ' -f1 /proc/uptime)"
	run "libbpf-$o" bpftool prog loadall "$objs/$o.bpf.o" "/sys/fs/bpf/libbpf-$o"
	echo "# $o loaded by bpftool at $(cut -d' ' -f1 /proc/uptime)"
	bpfcorectl show "$id" | awk -v o="$o" -v out="$out" '
		/^PROG_ID/ { p = 1; next }
		p && NF == 0 { exit }
		p {
			print "prog dump xlated id " $1 " file " out "/xlated-" o "-" $2 ".daemon"
			print "prog dump xlated pinned /sys/fs/bpf/libbpf-" o "/" $2 " file " out "/xlated-" o "-" $2 ".libbpf"
		}' >"/tmp/dump-$o"
	run "xlated-$o" bpftool batch file "/tmp/dump-$o"
	rm -rf "/sys/fs/bpf/libbpf-$o"
	echo "# $o dumped at $(cut -d' ' -f1 /proc/uptime)"
	run "unload-$o" bpfcorectl unload "$id"
done

# tp_btf on a module's tracepoint (9pnet's 9p_client_req), fired by writing to the 9p share.
run modtp-load bpfcorectl --json load $objs/module_tp_btf.bpf.o --attach
mt_id=$(object_id modtp-load)
for i in 1 2 3; do echo "$i" >$out/modtp-write; done
cat $out/modtp-write >/dev/null
run modtp-counts bpfcorectl --json map dump "$(map_id "$mt_id" .bss)"
[ -n "$mt_id" ] && run modtp-unload bpfcorectl unload "$mt_id"

# kprobe/kretprobe and fentry/fexit counting real calls: a process waits on a fifo, then becomes
# `rm` of three files (same pid: exec), so the programs filter on a tgid known before they load.
mkfifo /tmp/go
touch /tmp/u1 /tmp/u2 /tmp/u3
(read -r _ </tmp/go && exec rm /tmp/u1 /tmp/u2 /tmp/u3) &
victim=$!
echo "$victim" >$out/victim.pid
run probe-load bpfcorectl --json load $objs/attach_probe.bpf.o --global target_tgid="$victim"
pid_probe=$(object_id probe-load)
run probe-attach-kprobe bpfcorectl --json attach "$pid_probe" kprobe_hit kprobe do_unlinkat
run probe-attach-kretprobe bpfcorectl --json attach "$pid_probe" kretprobe_hit kretprobe do_unlinkat
# Multi-kprobes: one link for every function a glob matches, and one for a list (on a kernel built
# with fprobe; the host reads the kernel's config).
run probe-attach-kprobe-multi bpfcorectl --json attach "$pid_probe" kprobe_multi_hit kprobe 'do_unlinka*'
run probe-attach-kretprobe-multi bpfcorectl --json attach "$pid_probe" kretprobe_multi_hit kretprobe \
	do_unlinkat,do_rmdir
run probe-multi-nomatch bpfcorectl attach "$pid_probe" kprobe_multi_hit kprobe 'bpfcored_nope_*'
run probe-multi-notmulti bpfcorectl attach "$pid_probe" kprobe_hit kprobe 'do_unlinka*'
run fentry-load bpfcorectl --json load $objs/attach_fentry.bpf.o --global target_tgid="$victim" --attach
pid_fentry=$(object_id fentry-load)
echo go >/tmp/go
wait "$victim"
echo $? >$out/victim.rc
run probe-counts bpfcorectl --json map dump "$(map_id "$pid_probe" attach_probe_counts)"
run fentry-counts bpfcorectl --json map dump "$(map_id "$pid_fentry" .bss)"
run probe-unload bpfcorectl unload "$pid_probe"
run fentry-unload bpfcorectl unload "$pid_fentry"

# Module BTF, live: veth's BTF is not there, then it is (no restart), then it is gone again.
run module-check-before bpfcorectl --json check $objs/module_core.bpf.o
run module-modprobe modprobe veth
sleep 1
run module-btf-list bpfcorectl --json btf list
run module-load bpfcorectl --json load $objs/module_core.bpf.o --attach
mod_id=$(object_id module-load)
[ -n "$mod_id" ] && run module-unload bpfcorectl unload "$mod_id"
# fentry/fexit on a module's function (the target is in veth's BTF), counting a veth going up.
run modfentry-load bpfcorectl --json load $objs/module_fentry.bpf.o --attach
mf_id=$(object_id modfentry-load)
run modfentry-ip-add ip link add name vt0 type veth
run modfentry-ip-up ip link set vt0 up
run modfentry-ip-del ip link del vt0
run modfentry-counts bpfcorectl --json map dump "$(map_id "$mf_id" .bss)"
[ -n "$mf_id" ] && run modfentry-unload bpfcorectl unload "$mf_id"
# A module's kfuncs (nf_conntrack's): libbpf walks the kernel's BTF objects for them, shown only nf_conntrack's.
run modkfunc-before bpfcorectl --json status
# libcrc32c, which nf_conntrack needs, wants a crc32c first (a softdep busybox's modprobe does not follow).
run modkfunc-modprobe modprobe -a crc32c_generic nf_conntrack
sleep 1
run modkfunc-btf-list bpfcorectl --json btf list
run modkfunc-load bpfcorectl --json load $objs/module_kfunc.bpf.o
mk_id=$(object_id modkfunc-load)
run modkfunc-status bpfcorectl --json status
[ -n "$mk_id" ] && run modkfunc-unload bpfcorectl unload "$mk_id"
cp /sys/kernel/btf/veth $out/veth.btf 2>/dev/null
run module-rmmod modprobe -r veth
sleep 1
run module-btf-list-after bpfcorectl --json btf list
run module-check-after bpfcorectl --json check $objs/module_core.bpf.o
stop_daemon

# A kernel without /sys/kernel/btf/vmlinux: hide the directory, let --vmlinux-btf stand in.
mkdir -p /tmp/btf-copy
cp /sys/kernel/btf/vmlinux /tmp/btf-copy/vmlinux.btf
mount -t tmpfs none /sys/kernel/btf
ls /sys/kernel/btf >$out/nobtf-ls
start_daemon daemon-nobtf --vmlinux-btf /tmp/btf-copy/vmlinux.btf
run nobtf-load bpfcorectl --json load $objs/tp_core.bpf.o --attach
id=$(object_id nobtf-load)
[ -n "$id" ] && run nobtf-unload bpfcorectl unload "$id"
stop_daemon
umount /sys/kernel/btf

# Modules the BTF cache has not met (as when it missed their uevent): /sys/kernel/btf shows the daemon only
# vmlinux, nf_conntrack is loaded and veth comes after. libbpf still finds their kfuncs and attach targets.
mount -t tmpfs none /sys/kernel/btf
cp /tmp/btf-copy/vmlinux.btf /sys/kernel/btf/vmlinux
start_daemon daemon-unmet
run unmet-btf-list bpfcorectl --json btf list
run unmet-modprobe modprobe veth
run unmet-kfunc-load bpfcorectl --json load $objs/module_kfunc.bpf.o
id=$(object_id unmet-kfunc-load)
[ -n "$id" ] && run unmet-kfunc-unload bpfcorectl unload "$id"
run unmet-fentry-load bpfcorectl --json load $objs/module_fentry.bpf.o --attach
id=$(object_id unmet-fentry-load)
[ -n "$id" ] && run unmet-fentry-unload bpfcorectl unload "$id"
run unmet-status bpfcorectl --json status
stop_daemon
umount /sys/kernel/btf
modprobe -r veth

bpftool prog show >$out/progs-left 2>&1
cat /proc/uptime >$out/uptime.end
echo finished >$out/done
