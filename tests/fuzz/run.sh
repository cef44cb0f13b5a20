#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for SECONDS.
# usage: tests/fuzz/run.sh [SECONDS]   (default 30; env: BUILD=dir, CC=clang, JOBS=2)
# Prints one line per target; exits non-zero if any target crashes or fails to build.
set -u
SECS=${1:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${BUILD:-$ROOT/build-fuzz}
CC=${CC:-clang}
JOBS=${JOBS:-2}
TARGETS="fuzz_safetensors fuzz_config fuzz_tokenizer_json"
mkdir -p "$B/obj"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c17 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $SAN -I$ROOT/core/include"
PKG="libcjson libpcre2-8"
if pkg-config --exists openblas; then PKG="$PKG openblas"; BLAS=""; else BLAS="-lopenblas"; fi
CFLAGS="$CFLAGS $(pkg-config --cflags $PKG)"
LIBS="$(pkg-config --libs $PKG) $BLAS -lm -lpthread"

# core sources, compiled once (fuzzer-no-link: coverage instrumentation without main)
printf '%s\n' "$ROOT"/core/src/*.c | nice xargs -P "$JOBS" -I{} sh -c \
    'o="$0/obj/$(basename "{}" .c).o"; [ "$o" -nt "{}" ] && [ "$o" -nt "$1/core/src/loupe_impl.h" ] || exec '"$CC"' '"$CFLAGS"' -fsanitize=fuzzer-no-link -c "{}" -o "$o"' "$B" "$ROOT" ||
    { echo "FAIL building core"; exit 1; }

status=0
for t in $TARGETS; do
    if ! nice $CC $CFLAGS -fsanitize=fuzzer "$HERE/$t.c" "$B"/obj/*.o $LIBS -o "$B/$t" 2>"$B/$t.build.log"; then
        echo "FAIL $t: build failed (see $B/$t.build.log)"
        status=1
        continue
    fi
    work="$B/corpus-$t"
    mkdir -p "$work" "$B/artifacts-$t"
    log="$B/$t.log"
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        nice "$B/$t" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$B/artifacts-$t/" "$work" "$HERE/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        echo "ok   $t: ${SECS}s, ${runs:-?} runs, ${eps:-?} exec/s, ${cov:-cov: ?}"
    else
        echo "FAIL $t: exit $rc after ${runs:-?} runs (log: $log; crash inputs in $B/artifacts-$t/)"
        grep -m3 -E 'ERROR|runtime error' "$log" | sed 's/^/     /'
        status=1
    fi
done
exit $status
