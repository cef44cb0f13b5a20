#!/usr/bin/env bash
# The terminal UI on the bundled toy model (models/toy, with its MODEL_CARD.md), driven
# through tmux like test_ui_tmux.sh: the IOI prompt's prediction, the logit lens, the
# model card's induction head drawing its stripe on a repeated random sequence, the
# features view with the toy SAE (plugins/sae/toy: its mood latent on a happy prompt, the
# latent's dashboard with a store harvested here), and plain `loupe` opening on the toy
# model. Skips (77) without models/toy, tmux or python3.
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
. "$(dirname "$0")/tmux_lib.sh"
start() { # start COLSxROWS [loupe args...]
    local w=${1%x*} h=${1#*x}
    shift
    $T kill-session -t ui 2>/dev/null
    $T new-session -d -s ui -x "$w" -y "$h" \
        "env ${START_ENV:-TERM=xterm NO_COLOR=1} XDG_STATE_HOME='$TMP' '$LOUPE' $*; echo EXIT=\$?; sleep 60"
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

echo "# SAE features: the toy SAE's mood latent (plugins/sae/toy/README.md)"
SAE=$SRC/plugins/sae/toy/resid2_topk24 MOOD=363
want_sha=$(cat "$SAE/model.sha256" 2>/dev/null) have_sha=$(sha256sum "$TOY/model.safetensors" 2>/dev/null | cut -d' ' -f1)
if [ ! -f "$SAE/cfg.json" ]; then
    echo "skip: no toy SAE in $SAE"
elif [ -n "$want_sha" ] && [ -n "$have_sha" ] && [ "$want_sha" != "$have_sha" ]; then
    echo "skip: $TOY is not the model the toy SAE was trained on"
elif ! "$LOUPE" call sae.harvest "$TOY" corpus="$TOY/data/eval/mood.jsonl" hook=blocks.2.hook_resid_pre \
        out="$TMP/store" context_size=128 prepend_bos=1 max_tokens=16384 >"$TMP/harvest" 2>&1; then
    bad "features: harvesting a store: $(tail -3 "$TMP/harvest")"
else
    ok "features: a store of 16384 tokens of held-out mood passages"
    HAPPY="Mia happily smiled. She laughed. She"
    start 80x24 ui "'$TOY'" --sae "'$SAE'" --prompt "'$HAPPY'"
    check "features: --sae opens the features view at the last token" 'Features at 8 ·She'
    check "features: the mood latent $MOOD is among the happy prompt's active features" "^│[ >] +$MOOD[ *] +[0-9.]+ #" 20
    for _ in $(seq 1 24); do screen | grep -qE "^│> +$MOOD " && break; $T send-keys -t ui Down; sleep 0.1; done
    check "features: ↓ moves the cursor to it" "^│> +$MOOD "
    $T send-keys -t ui Enter
    check "features: Enter opens its dashboard" "Feature $MOOD · blocks.2.hook_resid_pre" 20
    check "features: without a store, the logit effects only" 'No activation store'
    n=$(screen | grep -cE '│·(smiled|laughed|grinned|sang|danced|beamed|giggled|cheered) +\+[0-9]')
    if [ "$n" -ge 3 ]; then ok "features: $n happy verbs among the promoted tokens"; else bad "features: $n happy verbs promoted"; fi
    $T send-keys -t ui a C-u
    $T send-keys -t ui -l "$TMP/store"
    $T send-keys -t ui Enter
    check "features: with the store (a), the density" 'density [0-9.]+% of 16384 tokens' 20
    check "features: ... and the top-activating contexts" 'Top-activating contexts'
    $T send-keys -t ui '?'
    check "features: the help overlay lists the view's keys" 'choose the SAE folder / the activation store'
    $T send-keys -t ui '?'
    $T resize-window -t ui -x 200 -y 60
    check "features: 200x60 shows the quartile samples" 'Samples by activation quartile' 20
    sleep 0.3
    screen >"$TMP/feat"
    if python3 - "$TMP/feat" <<'PY'
import re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
happy = set("happily gladly eagerly warmly brightly cheerfully smiled laughed grinned sang danced beamed giggled "
            "cheered bright cheerful sunny warm lovely joyful glad merry golden radiant sweet pleasant".split())
sad = set("sadly slowly wearily quietly heavily bitterly sighed wept frowned sobbed moaned sulked groaned mourned "
          "gloomy dreary grey cold bleak dismal somber dull heavy lonely bitter hollow".split())
top = next(i for i, l in enumerate(lines) if "Top-activating contexts" in l)
col = lines[top].index("Top-activating contexts")
rows = n_happy = n_sad = 0
for l in lines[top + 1:]:
    part = l[col:]
    if "Samples by activation" in part or not part.strip() or part.startswith("─"):
        break
    if "·" not in part:
        continue  # a shade row
    words = re.findall(r"·([a-z]+)", part)
    rows += 1
    n_happy += any(w in happy for w in words)
    n_sad += sum(w in sad for w in words)
print(f"{rows} top contexts, {n_happy} with happy words, {n_sad} sad words")
sys.exit(0 if rows >= 8 and n_happy >= rows - 1 and n_sad <= 2 else 1)
PY
    then ok "features: the top contexts come from happy passages"
    else bad "features: the top contexts are not from happy passages"; fi
    if grep -qE '@@@' "$TMP/feat"; then ok "features: per-token activations shaded with characters (NO_COLOR)"; else bad "features: no shade rows"; fi
    $T resize-window -t ui -x 80 -y 24
    check "features: back at 80x24" "Feature $MOOD · blocks"
    if [ "$(screen | wc -L)" -le 80 ]; then ok "features: no line wider than 80 after the resize"; else bad "features: lines wider than 80"; fi
    $T send-keys -t ui s C-u
    $T send-keys -t ui -l /nonexistent/sae
    $T send-keys -t ui Enter
    check "features: a bad SAE path in the status bar" '│ sae.encode: /nonexistent/sae' 20
    $T send-keys -t ui 1
    check "features: the UI stays up (prompt view)" 'Next token after position 8'
    $T send-keys -t ui q
    check "features: q quits" 'EXIT=0'
    # colour: the dashboard opened from the command line, activations as token backgrounds
    START_ENV="TERM=xterm-256color" start 200x60 ui "'$TOY'" --sae "'$SAE'" --store "'$TMP/store'" --feature $MOOD \
        --prompt "'$HAPPY'"
    check "features: --feature opens the dashboard (256 colours)" 'Top-activating contexts' 20
    if screen | grep -qE '@@@'; then bad "features: shade rows in colour"; else ok "features: no shade rows in colour"; fi
    $T send-keys -t ui q
    check "features: q quits (colour)" 'EXIT=0'
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
