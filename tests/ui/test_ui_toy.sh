#!/usr/bin/env bash
# The terminal UI on the bundled toy model (models/toy, with its MODEL_CARD.md), driven
# through tmux like test_ui_tmux.sh: the IOI prompt's prediction, the logit lens, the
# model card's induction head drawing its stripe on a repeated random sequence, and plain
# `loupe` opening on the toy model. Skips (77) without models/toy, tmux or python3.
#   test_ui_toy.sh LOUPE
# LOUPE_TOY_DIR, LOUPE_TOY_INDUCTION_HEAD=L.H override the model and the head.
set -u
LOUPE=${1:?usage: test_ui_toy.sh LOUPE}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${LOUPE_SRC:-$HERE/../..}
TOY=${LOUPE_TOY_DIR:-$SRC/models/toy}
command -v tmux >/dev/null || { echo "SKIP: tmux is not installed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed (heatmap parsing)"; exit 77; }
[ -f "$TOY/config.json" ] || { echo "SKIP: $TOY is absent (the bundled toy model has not landed on this branch)"; exit 77; }
SOCK=loupe-toy-$$
T="tmux -L $SOCK"
TMP=$(mktemp -d)
trap '$T kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
$T new-session -d -s keep -x 80 -y 24 "sleep 600"
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1"; echo "----- screen -----"; $T capture-pane -p -t ui 2>/dev/null; echo "------------------"; }
screen() { $T capture-pane -p -t ui; }
wait_for() {
    local i
    for ((i = 0; i < ${2:-10} * 10; i++)); do
        screen | grep -qE -- "$1" && return 0
        sleep 0.1
    done
    return 1
}
check() { if wait_for "$2" "${3:-10}"; then ok "$1"; else bad "$1 (wanted /$2/)"; fi; }
start() { # start COLSxROWS [loupe args...]
    local w=${1%x*} h=${1#*x}
    shift
    $T kill-session -t ui 2>/dev/null
    $T new-session -d -s ui -x "$w" -y "$h" \
        "env TERM=xterm NO_COLOR=1 XDG_STATE_HOME='$TMP' '$LOUPE' $*; echo EXIT=\$?; sleep 60"
    $T set-option -t ui -g status off >/dev/null 2>&1
    wait_for 'Prompt' 20 || bad "UI did not start ($*)"
}

# the model card's induction head: "L1H2", "layer 1 head 2" or "1.2" on a line about induction
HEAD=${LOUPE_TOY_INDUCTION_HEAD:-}
if [ -z "$HEAD" ] && [ -f "$TOY/MODEL_CARD.md" ]; then
    HEAD=$(python3 - "$TOY/MODEL_CARD.md" <<'PY'
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if "induction" not in line.lower():
        continue
    for pat in (r"\bL(\d+)\s*H(\d+)\b", r"\blayer\s*(\d+)\s*,?\s*head\s*(\d+)", r"\bhead\s*(\d+)\.(\d+)\b", r"\b(\d+)\.(\d+)\b"):
        g = re.search(pat, line, re.I)
        if g:
            print(f"{g.group(1)}.{g.group(2)}")
            sys.exit(0)
PY
)
fi

echo "# IOI: the prediction panel and the logit lens"
IOI="When John and Mary went to the store, John gave a drink to"
start 80x24 ui "'$TOY'"
$T send-keys -t ui -l "$IOI"
check "toy: IOI prompt predicts ·Mary as top-1" '^│ ?1 ·Mary +[0-9.]+%' 20
$T send-keys -t ui Escape 2
check "toy: logit lens, the last layer's top token at the last position is ·Mary" '^│out .*·Mary *│$' 20
$T send-keys -t ui q
check "toy: q quits" 'EXIT=0'

echo "# induction: the model card's head on a repeated random sequence"
if ! "$LOUPE" run "$HERE/toy_prompts.lua" "$TOY" 15 >"$TMP/prompt" 2>"$TMP/err"; then
    bad "toy: making the repeated prompt: $(cat "$TMP/err")"
elif [ -z "$HEAD" ]; then
    bad "toy: no induction head found in $TOY/MODEL_CARD.md (set LOUPE_TOY_INDUCTION_HEAD=L.H)"
else
    TEXT=$(sed -n 's/^text\t//p' "$TMP/prompt")
    R=$(sed -n 's/^period //p' "$TMP/prompt") B=$(sed -n 's/^bos //p' "$TMP/prompt")
    L=${HEAD%.*} H=${HEAD#*.}
    echo "# head $L.$H (model card), period $R, bos $B"
    start 200x60 ui "'$TOY'"
    $T send-keys -t ui -l "$TEXT"
    $T send-keys -t ui Escape 3
    for ((i = 0; i < L; i++)); do $T send-keys -t ui ']'; done
    for ((i = 0; i < H; i++)); do $T send-keys -t ui '}'; done
    check "toy: attention view on layer $L head $H" "Attention: layer $L head $H "
    sleep 0.3
    screen >"$TMP/attn"
    # rows: tabs, box top, 4 rows of key labels, then query 0, 1, ...; key k at column 9 + 2k
    if python3 - "$TMP/attn" "$R" "$B" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
R, B = int(sys.argv[2]), int(sys.argv[3])
shades = " .:-=+*#%@"
good = total = 0
for q in range(B + R, B + 2 * R):
    row = lines[6 + q]
    cells = [row[9 + 2 * k] if 9 + 2 * k < len(row) else " " for k in range(q + 1)]
    lev = [shades.index(c) if c in shades else 0 for c in cells]
    k = q - R + 1  # the token after the previous occurrence of the current one
    total += 1
    if lev[k] == max(lev) and lev[k] >= shades.index("+"):
        good += 1
    print(f"query {q}: stripe key {k} '{cells[k]}', darkest '{shades[max(lev)]}'")
print(f"{good}/{total} rows have the darkest cell on the stripe")
sys.exit(0 if good >= total - 1 else 1)
PY
    then ok "toy: the induction head's darkest cells lie on the offset diagonal (key = query - $R + 1)"
    else bad "toy: no induction stripe for head $L.$H"; fi
    $T send-keys -t ui q
fi

echo "# plain 'loupe' opens on the toy model"
if [ -n "${LOUPE_TOY_DIR:-}" ]; then
    echo "skip: LOUPE_TOY_DIR overrides the bundled model"
else
    start 80x24
    check "toy: plain loupe opens on the bundled toy model" '^ toy .*params'
    $T send-keys -t ui F10
    check "toy: F10 quits" 'EXIT=0'
fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
