#!/bin/bash
# The README's two commands:
#   ./bpfcored.sh run    install dependencies, build, run bpfcored in the foreground
#   ./bpfcored.sh test   install dependencies, build from scratch, run the whole test suite,
#                        then the unit and integration suites again built with ASan+UBSan
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}

install_deps() {
	local need=0
	if [ ! -f /etc/apt/sources.list.d/bookworm-backports.list ] &&
	   ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo 'deb http://deb.debian.org/debian bookworm-backports main' \
			>/etc/apt/sources.list.d/bookworm-backports.list
		need=1
	fi
	# qemu-system-x86, busybox-static, kmod, cpio, xz-utils: the VM tier (tests/vm/).
	# locales: a ',' locale for tests/test-json-parse.c (localedef).
	local pkgs=(build-essential pkg-config meson ninja-build clang-19 llvm-19
		libelf-dev zlib1g-dev libsystemd-dev libjson-c-dev libssl-dev libseccomp-dev iproute2 libclang-rt-19-dev
		man-db qemu-system-x86 busybox-static kmod cpio xz-utils valgrind debootstrap systemd-container locales)
	local bpo=(libbpf-dev bpftool)
	local missing=()
	for p in "${pkgs[@]}" "${bpo[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	# libbpf must be >= 1.4 (backports); bookworm's own 1.1 is too old.
	if dpkg --compare-versions "$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || echo 0)" lt 1:1.4; then
		missing+=(libbpf-dev)
	fi
	if [ ${#missing[@]} -gt 0 ] || [ $need = 1 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${pkgs[@]}"
		apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo[@]}"
	fi
}

build() {
	if [ "${1:-}" = fresh ]; then
		rm -rf "$BUILD"
	fi
	[ -d "$BUILD" ] || meson setup "$BUILD" --werror
	ninja -C "$BUILD"
}

# The same tree with ASan+UBSan, for the unit and integration suites.
build_sanitized() {
	rm -rf "$BUILD_ASAN"
	meson setup "$BUILD_ASAN" --werror -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C "$BUILD_ASAN"
}

ensure_bpffs() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

case "${1:-}" in
run)
	shift
	install_deps
	build
	ensure_bpffs
	exec "$BUILD/daemon/bpfcored" --foreground "$@"
	;;
test)
	shift
	install_deps
	build fresh
	ensure_bpffs
	rc=0
	logs=("$BUILD/meson-logs/testlog.json")
	# Naming tests (./bpfcored.sh test hostile) runs just those, without the sanitizer pass.
	if [ $# -eq 0 ]; then
		build_sanitized
	fi
	meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?
	if [ $# -eq 0 ]; then
		# Any sanitizer report ends the process that made it (the daemon's included): a failed check.
		ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
			meson test -C "$BUILD_ASAN" --print-errorlogs --num-processes 1 \
			--suite unit --suite integration || rc=$?
		logs+=("$BUILD_ASAN/meson-logs/testlog.json")
	fi
	python3 tests/summary.py "${logs[@]}" || rc=1
	exit $rc
	;;
*)
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac
