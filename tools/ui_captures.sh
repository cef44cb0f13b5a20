#!/usr/bin/env bash
# Text captures of every UI view (80x24, no colour) for the README, rendered without a
# terminal by `loupe ui --dump`. Usage: tools/ui_captures.sh [LOUPE] [MODEL] [PROMPT]
# The features view (7) is captured on the bundled toy model with its SAE
# (plugins/sae/toy/resid2_topk24) and a small activation store harvested into a temporary
# folder from the held-out mood passages, showing the mood latent's dashboard.
set -eu
LOUPE=${1:-build/loupe}
MODEL=${2:-../shared/models/stories260K}
PROMPT=${3:-Once upon a time there was a little girl}
SRC=$(cd "$(dirname "$0")/.." && pwd)
names=("" "Prompt and tokens" "Logit lens" "Attention" "Attribution / patching" "Plugins" "Lua console")
# the status bar's forward time and memory vary from run to run
steady() { sed -E 's/fwd [0-9.]+ ms/fwd 0.5 ms/; s/RSS [0-9]+ MiB/RSS 9 MiB/; s/(forward|analysis) [0-9.]+ ms/\1 0.5 ms/g; s/dashboard in [0-9]+ ms/dashboard in 50 ms/'; }
for v in 1 2 3 4 5 6; do
    echo "**${names[$v]}** (\`$v\`)"
    echo
    echo '```'
    "$LOUPE" ui "$MODEL" --prompt "$PROMPT" --view "$v" --dump 80x24 | steady
    echo '```'
    echo
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$LOUPE" call sae.harvest "$SRC/models/toy" corpus="$SRC/models/toy/data/eval/mood.jsonl" \
    hook=blocks.2.hook_resid_pre out="$TMP/store" context_size=128 prepend_bos=1 max_tokens=16384 >/dev/null
echo "**SAE features** (\`7\`; toy model, \`--sae plugins/sae/toy/resid2_topk24 --store STORE --feature 363\`,"
echo "prompt \"Mia happily smiled. She laughed. She\")"
echo
echo '```'
(cd "$SRC" && "$LOUPE" ui toy --prompt "Mia happily smiled. She laughed. She" --sae plugins/sae/toy/resid2_topk24 \
    --store "$TMP/store" --feature 363 --dump 80x24) | steady
echo '```'
