#!/usr/bin/env bash
# Text captures of every UI view (80x24, no colour) for the README, rendered without a
# terminal by `loupe ui --dump`. Usage: tools/ui_captures.sh [LOUPE] [MODEL] [PROMPT]
set -eu
LOUPE=${1:-build/loupe}
MODEL=${2:-../shared/models/stories260K}
PROMPT=${3:-Once upon a time there was a little girl}
names=("" "Prompt and tokens" "Logit lens" "Attention" "Attribution / patching" "Plugins" "Lua console")
for v in 1 2 3 4 5 6; do
    echo "**${names[$v]}** (\`$v\`)"
    echo
    echo '```'
    # the status bar's forward time and memory vary from run to run
    "$LOUPE" ui "$MODEL" --prompt "$PROMPT" --view "$v" --dump 80x24 |
        sed -E 's/fwd [0-9.]+ ms/fwd 0.5 ms/; s/RSS [0-9]+ MiB/RSS 9 MiB/; s/(forward|analysis) [0-9.]+ ms/\1 0.5 ms/g'
    echo '```'
    echo
done
