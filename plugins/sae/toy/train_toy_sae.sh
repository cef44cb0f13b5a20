#!/bin/sh
# Train the bundled toy model's SAE (plugins/sae/toy/README.md):
# a TopK SAE (d_sae 1536 = 8 x d_model, k 24) on blocks.2.hook_resid_pre, from 1M tokens of the
# toy corpus, then evaluate it on the held-out eval sets and find latents for the planted
# variables. Run from the repository root after building (ninja -C build); ~3-5 minutes on 2 cores.
#   LOUPE=build/loupe  WORK=build/sae_toy  OUT=plugins/sae/toy/resid2_topk24
set -eu
LOUPE=${LOUPE:-build/loupe}
WORK=${WORK:-build/sae_toy}
OUT=${OUT:-plugins/sae/toy/resid2_topk24}
PY=${PY:-/usr/bin/python3}
CORPUS=models/toy/data/train.txt
EVAL=models/toy/eval
[ -f "$EVAL/mood.jsonl" ] || EVAL=models/toy/data/eval
HOOK=blocks.2.hook_resid_pre
if [ ! -f "$CORPUS" ]; then   # git-ignored; regenerated deterministically (~3 s)
    "$PY" tools/toy/gen_corpus.py
fi
mkdir -p "$WORK"
# 1. activation store: 1M tokens, contexts of 128 starting with <|endoftext|>
"$LOUPE" call sae.harvest toy corpus="$CORPUS" docs=lines hook=$HOOK out="$WORK/store" \
    context_size=128 prepend_bos=1 max_tokens=1000000 shard_tokens=65536 batch=16
# 2. train (resumes from $OUT/checkpoint if interrupted)
"$LOUPE" call sae.train toy store="$WORK/store" out="$OUT" arch=topk d_sae=1536 k=24 batch=4096 \
    steps=1500 lr=0.001 dead_tokens=500000 log_every=250 checkpoint_every=500 seed=42
rm -rf "$OUT/checkpoint"   # 14 MB of optimiser state: not committed
# which toy weights this SAE belongs to (the test skips when models/toy has changed)
sha256sum models/toy/model.safetensors | cut -d' ' -f1 > "$OUT/model.sha256"
# 3. evaluate on held-out text (the eval sets are not in the training corpus)
for set in mood nesting; do
    "$LOUPE" call sae.evaluate toy sae="$OUT" corpus="$EVAL/$set.jsonl" contexts=64
done
# 4. latents for the planted variables
"$LOUPE" call sae.auroc toy sae="$OUT" data="$EVAL/mood.jsonl" mode=passage reduce=mean prepend_bos=1
"$LOUPE" call sae.auroc toy sae="$OUT" data="$EVAL/nesting.jsonl" mode=words value_field=depth threshold=0 prepend_bos=1
