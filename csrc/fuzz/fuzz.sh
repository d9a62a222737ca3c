#!/bin/sh
# Builds the libFuzzer harnesses (clang) and runs one, by hand, on the corpus kept in the
# repository, which it grows with the inputs that reach new code:
#
#   csrc/fuzz/fuzz.sh hub|client|ring [SECONDS (default 600)] [libFuzzer options...]
#
# tests/test_fuzz.py runs each for a bounded time (on a copy of the corpus).
set -eu
name=${1:?usage: fuzz.sh hub|client|ring [SECONDS] [libFuzzer options]}
seconds=${2:-600}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
build=${TANSIV_FUZZ_BUILD:-$here/../../build-fuzz}
cmake -S "$here/.." -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DTANSIV_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" --target "fuzz_$name" -j"$(nproc)" > /dev/null
mkdir -p "$here/corpus/$name"
exec "$build/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 "$@" \
     "$here/corpus/$name"
