#!/bin/sh
# Build the tokenizer.json fuzz target with libFuzzer and run it for SECONDS (default 30).
# New inputs go to a scratch corpus ($OUT_DIR/corpus); the committed seeds are only read.
# Usage: tests/fuzz/build_fuzz.sh [SECONDS]   (SECONDS=0: build only)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT_DIR:-$root/build-fuzz}
mkdir -p "$out/corpus"
clang -std=c17 -g -O1 -Wall -Wextra -Wpedantic -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$root/core/include" \
    "$root/tests/fuzz/fuzz_tokenizer_json.c" "$root"/core/src/tok_*.c "$root/core/src/tokenizer.c" \
    "$root/core/src/error.c" -lpcre2-8 -lcjson -o "$out/fuzz_tokenizer_json"
secs=${1:-30}
[ "$secs" = 0 ] && exit 0
exec "$out/fuzz_tokenizer_json" -max_total_time="$secs" -rss_limit_mb=1024 -max_len=8192 \
    "$out/corpus" "$root/tests/fuzz/corpus/tokenizer_json"
