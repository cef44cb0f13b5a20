#!/usr/bin/env python3
"""Write tests/tokenizer/stories_golden.json (stories260K, BOS added as its config says).

Usage: /usr/bin/python3 tests/tokenizer/gen_stories_golden.py [SHARED_DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_gpt2_golden import generate, shared_dir  # noqa: E402

if __name__ == "__main__":
    generate(os.path.join(shared_dir(), "models", "stories260K", "tokenizer.json"), "stories_golden.json",
             "models/stories260K/tokenizer.json", True)
