#!/usr/bin/env bash
# The whole test suite: an AddressSanitizer + UndefinedBehaviorSanitizer build, every
# meson test suite, and a short fuzz smoke run. Ends with "N passed, N failed".
#   tools/test.sh [--no-fuzz] [FUZZ_SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
fuzz=1 secs=10
for a in "$@"; do
  case "$a" in
    --no-fuzz) fuzz=0 ;;
    [0-9]*) secs=$a ;;
  esac
done
dir=build-asan
if [ ! -d "$dir" ]; then
  CC=${CC:-gcc} meson setup "$dir" --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || {
    echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$dir"; then
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C "$dir" --print-errorlogs --num-processes 2 2>&1 | tee "$dir/test-output.txt"
log="$dir/meson-logs/testlog.json"
passed=0 failed=0 skipped=0
if [ -f "$log" ]; then
  read -r passed failed skipped < <(python3 - "$log" <<'PY' 2>/dev/null || echo "0 1 0"
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
else
  failed=1
fi
if [ "$fuzz" = 1 ] && [ -x tests/fuzz/run.sh ]; then
  if tests/fuzz/run.sh "$secs"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
