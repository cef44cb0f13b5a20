#!/bin/sh
# Build and run the tokenizer unit test without meson (the lead owns the top-level build).
# Usage: tests/unit/build_tok.sh [SHARED_DIR]   (env: CC, OPT, NO_RUN=1 to only build)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT_DIR:-$root/build-tok}
mkdir -p "$out"
cc=${CC:-gcc}
opt=${OPT:--O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer}
# shellcheck disable=SC2086
$cc -std=c17 -Wall -Wextra -Wpedantic $opt \
    -I"$root/core/include" -DLOUPE_TOK_GOLDEN_DIR="\"$root/tests/tokenizer\"" \
    -DLOUPE_TOK_CORPUS_DIR="\"$root/tests/fuzz/corpus/tokenizer_json\"" \
    "$root/tests/unit/test_tokenizer.c" "$root"/core/src/tok_*.c "$root/core/src/tokenizer.c" \
    "$root/core/src/error.c" \
    -lpcre2-8 -lcjson -o "$out/test_tokenizer"
[ "${NO_RUN:-0}" = 1 ] && exit 0
exec "$out/test_tokenizer" "${1:-${LOUPE_SHARED:-$root/../shared}}"
