#!/usr/bin/env python3
"""Train a GPT-2-style byte-level BPE tokenizer on the toy corpus.

Writes models/toy/{tokenizer.json, vocab.json, merges.txt, tokenizer_config.json,
special_tokens_map.json}. <|endoftext|> (id 0) is BOS/EOS/doc separator.
Deterministic given the corpus (HF tokenizers BPE training is deterministic).
"""
import argparse, json, os
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers

EOT = "<|endoftext|>"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(root, "models/toy/data/train.txt"))
    ap.add_argument("--out", default=os.path.join(root, "models/toy"))
    ap.add_argument("--vocab", type=int, default=3072)
    ap.add_argument("--ctx", type=int, default=128)
    args = ap.parse_args()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=2, show_progress=False)
    tok.train([args.corpus], trainer)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    tok.model.save(args.out)  # vocab.json + merges.txt (for slow GPT2Tokenizer)
    cfg = {"add_bos_token": True, "add_eos_token": False, "add_prefix_space": False,
           "bos_token": EOT, "eos_token": EOT, "unk_token": EOT, "pad_token": EOT,
           "model_max_length": args.ctx, "tokenizer_class": "GPT2Tokenizer",
           "clean_up_tokenization_spaces": False}
    json.dump(cfg, open(os.path.join(args.out, "tokenizer_config.json"), "w"), indent=2)
    json.dump({"bos_token": EOT, "eos_token": EOT, "unk_token": EOT, "pad_token": EOT},
              open(os.path.join(args.out, "special_tokens_map.json"), "w"), indent=2)

    # report which task words are single tokens with a leading space
    import sys
    sys.path.insert(0, here)
    import gen_corpus as G
    facts = json.load(open(os.path.join(os.path.dirname(args.corpus), "facts_table.json")))
    groups = {"names": G.NAMES, "run_words": G.RUN_WORDS, "places": G.PLACES, "objects": G.OBJECTS,
              "nest_words": G.NEST_WORDS, "capitals": [f["capital"] for f in facts],
              "languages": sorted({f["language"] for f in facts}),
              "mood": G.HAPPY_ADJ + G.SAD_ADJ + G.HAPPY_VERB + G.SAD_VERB}
    rep = {}
    for g, ws in groups.items():
        multi = [w for w in ws if len(tok.encode(" " + w).ids) != 1]
        rep[g] = {"n": len(ws), "multi_token": multi}
    print(json.dumps({"vocab_size": tok.get_vocab_size(), "eot_id": tok.token_to_id(EOT), "single_token_check": rep}, indent=1))


if __name__ == "__main__":
    main()
