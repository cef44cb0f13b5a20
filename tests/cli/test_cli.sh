#!/usr/bin/env bash
# End-to-end tests of the loupe CLI: exit codes, error lines, output files.
# usage: test_cli.sh PATH/TO/loupe PATH/TO/tests/golden/fixtures
set -u
LOUPE=${1:?usage: test_cli.sh LOUPE FIXTURES}
FIX=${2:?usage: test_cli.sh LOUPE FIXTURES}
M=$FIX/gpt2
pass=0
fail=0
T=$(mktemp -d "${TMPDIR:-/tmp}/loupe-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
export NO_COLOR=1
unset LOUPE_MODELS_PATH
export HF_HUB_CACHE=$T/hub   # never look in the user's real cache
mkdir -p "$HF_HUB_CACHE"

ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
expect() { # expect COND_STATUS DESCRIPTION
    if [ "$1" -eq 0 ]; then ok "$2"; else bad "$2"; fi
}

PY=
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; elif command -v python3 >/dev/null 2>&1; then PY=$(command -v python3); fi
HAVE_NUMPY=0
if [ -n "$PY" ] && "$PY" -c 'import numpy' >/dev/null 2>&1; then HAVE_NUMPY=1; fi

# run CMD...: sets rc, out (stdout file), err (stderr file)
run() {
    "$LOUPE" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

# an error run: exit 2, exactly one stderr line starting with "loupe: error:", containing $1
expect_error() {
    local what=$1 needle=$2
    shift 2
    run "$@"
    local n
    n=$(wc -l <"$T/err")
    if [ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && head -c 13 "$T/err" | grep -q '^loupe: error:' &&
        grep -qF -- "$needle" "$T/err"; then
        ok "$what -> exit 2: $(cat "$T/err")"
    else
        bad "$what -> want exit 2 and one 'loupe: error:' line naming '$needle'; got exit $rc, $n lines:"
        sed 's/^/     /' "$T/err" | head -5
    fi
}

# --help for every subcommand
for c in info tokenize generate logits cache hooks; do
    run "$c" --help
    expect $(([ "$rc" -eq 0 ] && [ -s "$T/out" ]) && echo 0 || echo 1) "$c --help exits 0 with usage on stdout"
done
run --help
expect $(([ "$rc" -eq 0 ] && grep -q usage "$T/out") && echo 0 || echo 1) "loupe --help exits 0"
run --version
expect $rc "loupe --version exits 0"

# usage errors
expect_error "unknown command" "frobnicate" frobnicate
expect_error "unknown option" "--frob" info "$M" --frob
expect_error "option missing its value" "-o" logits "$M" --ids 1,2 -o
expect_error "--ids and --text together" "--ids" logits "$M" --ids 1 --text hi -o "$T/x.npy"
expect_error "--ids not numbers" "--ids" logits "$M" --ids 1,x,3 -o "$T/x.npy"

# info --json
run info "$M" --json
expect $rc "info --json exits 0"
if [ -n "$PY" ]; then
    "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["n_layers"]==2, d' <"$T/out" 2>"$T/pyerr"
    expect $? "info --json parses as JSON with n_layers == 2"
else
    echo "skip info --json parse (no python3)"
fi
grep -q '"n_layers"' "$T/out"
expect $? "info --json has n_layers"
NL=$(sed -n 's/.*"n_layers":[[:space:]]*\([0-9]*\).*/\1/p' "$T/out" | head -1)
VOCAB=$(sed -n 's/.*"d_vocab":[[:space:]]*\([0-9]*\).*/\1/p' "$T/out" | head -1)
[ -n "$NL" ] || NL=2
[ -n "$VOCAB" ] || VOCAB=160

# logits -> .npy of shape (3, vocab)
run logits "$M" --ids 1,2,3 -o "$T/x.npy"
expect $(([ "$rc" -eq 0 ] && [ -s "$T/x.npy" ]) && echo 0 || echo 1) "logits --ids 1,2,3 -o x.npy writes a file"
head -c 6 "$T/x.npy" | grep -q 'NUMPY'
expect $? "x.npy starts with the .npy magic"
if [ "$HAVE_NUMPY" = 1 ]; then
    "$PY" -c "import numpy as np,sys; a=np.load(sys.argv[1]); assert a.shape==(3,$VOCAB) and a.dtype==np.float32 and np.isfinite(a).all(), (a.shape,a.dtype)" "$T/x.npy"
    expect $? "x.npy loads in numpy with shape (3, $VOCAB), finite f32"
else
    # no numpy: check the header text instead
    head -c 128 "$T/x.npy" | grep -q "(3, $VOCAB)"
    expect $? "x.npy header says shape (3, $VOCAB)"
fi

# cache with a glob -> exactly n_layers tensors
run cache "$M" --ids 1,2,3 --names 'blocks.*.hook_resid_post' -o "$T/c.safetensors"
expect $rc "cache --names 'blocks.*.hook_resid_post' exits 0"
if [ -n "$PY" ]; then
    "$PY" - "$T/c.safetensors" "$NL" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
names = sorted(k for k in h if k != "__metadata__")
want = ["blocks.%d.hook_resid_post" % i for i in range(int(sys.argv[2]))]
assert names == sorted(want), names
EOF
    expect $? "c.safetensors holds exactly the $NL hook_resid_post tensors"
else
    c=$(grep -ao 'hook_resid_post' "$T/c.safetensors" | wc -l)
    expect $([ "$c" -eq "$NL" ] && echo 0 || echo 1) "c.safetensors names hook_resid_post $NL times"
fi

# corrupt model folder: one stderr line naming the file
mkdir -p "$T/corrupt"
cp "$M"/config.json "$T/corrupt/"
head -c 3000 "$M/model.safetensors" >"$T/corrupt/model.safetensors"
expect_error "truncated model.safetensors" "model.safetensors" info "$T/corrupt"
mkdir -p "$T/badcfg"
cp "$M"/model.safetensors "$T/badcfg/"
echo '{"model_type": "gpt2", ' >"$T/badcfg/config.json"
expect_error "malformed config.json" "config.json" logits "$T/badcfg" --ids 1 -o "$T/y.npy"
echo '{"model_type": "bert"}' >"$T/badcfg/config.json"
expect_error "unsupported model_type" "bert" info "$T/badcfg"

# nonexistent models
expect_error "nonexistent folder" "$T/nope" info "$T/nope"
expect_error "nonexistent hub id lists where it looked" "$HF_HUB_CACHE/models--org--nope" info org/nope

# bad token ids
expect_error "--ids 99999 out of range" "99999" logits "$M" --ids 99999 -o "$T/z.npy"
expect_error "--ids -1" "-1" logits "$M" --ids 1,-1 -o "$T/z.npy"
[ ! -e "$T/z.npy" ]
expect $? "no output file left behind after an error"

# tokenize on a model without a tokenizer
expect_error "tokenize without tokenizer" "tokenizer" tokenize "$M" "hello"

# hooks and generate smoke
run hooks "$M"
expect $(([ "$rc" -eq 0 ] && grep -q 'blocks.1.hook_resid_post' "$T/out") && echo 0 || echo 1) "hooks lists blocks.1.hook_resid_post"

# NO_COLOR: no escape codes anywhere (errors included)
ESC=$(printf '\033')
NO_COLOR=1 "$LOUPE" info "$M" >"$T/o1" 2>&1
NO_COLOR=1 "$LOUPE" info "$T/nope" >>"$T/o1" 2>&1
NO_COLOR=1 "$LOUPE" hooks "$M" >>"$T/o1" 2>&1
! grep -q "$ESC" "$T/o1"
expect $? "NO_COLOR=1 output has no escape codes"
if command -v script >/dev/null 2>&1; then
    # on a terminal too
    NO_COLOR=1 script -qec "'$LOUPE' info '$T/nope'" /dev/null >"$T/o2" 2>&1 </dev/null
    ! grep -q "$ESC\[" "$T/o2"
    expect $? "NO_COLOR=1 on a terminal has no escape codes"
fi

# writing to a device or FIFO goes straight into it: the atomic temp-file + rename must never
# replace /dev/null (or a named pipe) with a regular file
mkfifo "$T/fifo" && { cat "$T/fifo" >"$T/fifo.out" & }
"$LOUPE" logits "$FIX/gpt2" --ids 1,2 -o "$T/fifo" 2>/dev/null
[ -p "$T/fifo" ]
expect $? "logits -o FIFO writes into the FIFO and leaves it a FIFO"
wait
[ -s "$T/fifo.out" ]
expect $? "the FIFO reader got the .npy bytes"
"$LOUPE" logits "$FIX/gpt2" --ids 1,2 -o /dev/null
[ -c /dev/null ]
expect $? "logits -o /dev/null leaves /dev/null a character device"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
