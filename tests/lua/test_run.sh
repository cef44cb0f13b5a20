#!/bin/bash
# 'loupe run': exit codes, tracebacks, arguments, -e and stdin scripts.
# usage: test_run.sh LOUPE_EXE
LOUPE=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0 ok=0
check() { if eval "$2"; then echo "ok   $1"; ok=$((ok+1)); else echo "FAIL $1"; fail=$((fail+1)); fi; }
export NO_COLOR=1

"$LOUPE" run -e 'assert(loupe and require("loupe") == loupe)' ; check "-e runs with the loupe module (global and require)" '[ $? -eq 0 ]'
"$LOUPE" run -e 'io.write(select("#", ...), arg[1], arg[2])' x y > "$T/out"; check "-e gets arguments" '[ "$(cat $T/out)" = 2xy ]'
printf 'local a = 1\nlocal function f()\n  error("kaboom")\nend\nf()\n' > "$T/err.lua"
"$LOUPE" run "$T/err.lua" 2> "$T/stderr"; rc=$?
check "a runtime error exits 1" '[ $rc -eq 1 ]'
check "the error names file:line" 'grep -q "err.lua:3: kaboom" "$T/stderr"'
check "a traceback follows" 'grep -q "stack traceback" "$T/stderr" && grep -q "err.lua:5" "$T/stderr"'
"$LOUPE" run "$T/missing.lua" 2> "$T/stderr"; rc=$?
check "a missing script exits 2" '[ $rc -eq 2 ]'
check "and is named" 'grep -q "missing.lua" "$T/stderr"'
printf 'local x = = 1\n' > "$T/syntax.lua"
"$LOUPE" run "$T/syntax.lua" 2> "$T/stderr"; rc=$?
check "a syntax error exits 2 with file:line" '[ $rc -eq 2 ] && grep -q "syntax.lua:1" "$T/stderr"'
printf 'print(arg[0], ...)\n' > "$T/args.lua"
"$LOUPE" run "$T/args.lua" 1 two > "$T/out"; check "script arguments" 'grep -q "args.lua.*1.*two" "$T/out"'
echo 'print(6*7)' | "$LOUPE" run - > "$T/out"; check "script from stdin" '[ "$(cat $T/out)" = 42 ]'
"$LOUPE" run -e 'os.exit(3)'; check "os.exit status passes through" '[ $? -eq 3 ]'
"$LOUPE" run 2> /dev/null; check "no script: usage error 2" '[ $? -eq 2 ]'
"$LOUPE" run --help | grep -q "loupe run SCRIPT.lua"; check "--help" '[ $? -eq 0 ]'
"$LOUPE" run -e 'error({})' 2> "$T/stderr"; check "a non-string error object is reported" '[ $? -eq 1 ] && grep -q "table value" "$T/stderr"'
echo "$ok passed, $fail failed"
[ $fail -eq 0 ]
