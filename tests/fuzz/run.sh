#!/bin/bash
# Runs fuzz targets of a -Dfuzz=true build for SECONDS each, from their corpus
# and past crashes; new inputs go to a scratch directory, crashes to
# tests/fuzz/crashes/<target>/ (keep them: the replay tests re-run them).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# OBJECTS_DIR=build/tests/bpf adds the test BPF objects of a normal build as
# fuzz-object seeds (large: their DWARF slows the fuzzer down; the corpus has
# small stripped ones).
set -euo pipefail

if [ $# -lt 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
	exit 2
fi
build=$1 seconds=$2
shift 2
src=$(dirname "$(readlink -f "$0")")
objects=${OBJECTS_DIR:-}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz-varlink-framing fuzz-json fuzz-params fuzz-object fuzz-globals)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

rc=0
for t in "${targets[@]}"; do
	work=$(mktemp -d "/tmp/$t.XXXXXX")
	seeds=("$src/corpus/$t" "$src/crashes/$t")
	opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	      -artifact_prefix="$src/crashes/$t/")
	if [ "$t" = fuzz-object ]; then
		[ -z "$objects" ] || seeds+=("$objects")
	else
		opts+=(-dict="$src/json.dict")
	fi
	echo "== $t for ${seconds}s, new inputs in $work, log in $work.log"
	"$build/tests/fuzz/$t" "${opts[@]}" "$work" "${seeds[@]}" >"$work.log" 2>&1 || rc=1
	grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^stat::peak_rss_mb|ERROR:|SUMMARY:|artifact_prefix=.*Test unit written' \
		"$work.log" || true
done
exit $rc
