#!/usr/bin/env python3
"""Write tests/tokenizer/gpt2_golden.json: token ids from the reference HF `tokenizers` library.

Usage: /usr/bin/python3 tests/tokenizer/gen_gpt2_golden.py [SHARED_DIR]
SHARED_DIR defaults to $LOUPE_SHARED, else ../shared next to the repository root.
"""
import json
import os
import sys

from tokenizers import Tokenizer, __version__ as tk_version

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_texts import TEXTS  # noqa: E402


def shared_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    return os.environ.get("LOUPE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))


def load(tok_path):
    """Tokenizer.from_file, but also for files with merges stored as ["a", "b"] pairs, which
    tokenizers < 0.20 cannot read: those are rewritten to the equivalent "a b" strings."""
    with open(tok_path, encoding="utf-8") as f:
        spec = json.load(f)
    merges = spec.get("model", {}).get("merges") or []
    if merges and isinstance(merges[0], list):
        spec["model"]["merges"] = [" ".join(m) for m in merges]
    return Tokenizer.from_str(json.dumps(spec))


def generate(tok_path, out_name, label, add_special):
    tok = load(tok_path)
    cases = []
    for t in TEXTS:
        ids = tok.encode(t, add_special_tokens=add_special).ids
        cases.append({
            "text": t,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    out = {
        "tokenizer": label,
        "generator": "HF tokenizers " + tk_version + ", add_special_tokens=" + str(add_special),
        "cases": cases,
    }
    path = os.path.join(HERE, out_name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print("wrote", path, len(cases), "cases")


if __name__ == "__main__":
    generate(os.path.join(shared_dir(), "tokenizers", "gpt2", "tokenizer.json"), "gpt2_golden.json",
             "tokenizers/gpt2/tokenizer.json", False)
