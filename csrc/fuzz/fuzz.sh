#!/bin/sh
# Builds the libFuzzer harnesses (clang) and runs one by hand, from the corpus kept in the
# repository; then merges into that corpus the inputs that reached new code (-merge=1 keeps
# it small):
#
#   csrc/fuzz/fuzz.sh hub|client|ring|relay|guest [SECONDS (default 600)] [libFuzzer options...]
#
# tests/test_fuzz.py runs each for a bounded time (on a copy of the corpus).
set -eu
name=${1:?usage: fuzz.sh hub|client|ring|relay|guest [SECONDS] [libFuzzer options]}
seconds=${2:-600}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
build=${TANSIV_FUZZ_BUILD:-$here/../../build-fuzz}
cmake -S "$here/.." -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DTANSIV_FUZZ=ON > /dev/null
cmake --build "$build" --target "fuzz_$name" -j"$(nproc)" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/corpus/$name"/* "$work/"
TANSIV_LOG_LEVEL=off "$build/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$PWD/" "$@" "$work"
TANSIV_LOG_LEVEL=off "$build/fuzz_$name" -merge=1 "$here/corpus/$name" "$work" 2>&1 | tail -1
