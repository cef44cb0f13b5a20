#!/usr/bin/env python3
"""Write tests/tokenizer/seeds_golden.json: HF `tokenizers` ids for the small tokenizer.json files in
tests/fuzz/corpus/fuzz_tokenizer_json (Split/Digits/ByteLevel sequences, Metaspace, byte fallback).  Needs no
shared data, so the unit test checks these always.

Usage: /usr/bin/python3 tests/tokenizer/gen_seed_golden.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_gpt2_golden import load  # noqa: E402
from golden_texts import TEXTS  # noqa: E402
from tokenizers import __version__ as tk_version  # noqa: E402

SEEDS = ["byte_level_pairs", "byte_level_split_sequence", "metaspace", "sentencepiece_bytefallback"]
EXTRA = ["abc ab  ab 12345 x1y22", "a<s>b </s> c", "ab ab ab", " leading", "The 2024 THE'S it's"]

if __name__ == "__main__":
    corpus = os.path.join(HERE, "..", "fuzz", "corpus", "fuzz_tokenizer_json")
    out = {"generator": "HF tokenizers " + tk_version + ", add_special_tokens=True", "tokenizers": {}}
    for name in SEEDS:
        tok = load(os.path.join(corpus, name + ".json"))
        cases = []
        for t in TEXTS[:-1] + EXTRA:
            ids = tok.encode(t).ids
            cases.append({"text": t, "ids": ids,
                          "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        out["tokenizers"][name] = cases
    path = os.path.join(HERE, "seeds_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print("wrote", path)
