#!/usr/bin/python3
"""PyTorch eager reference for bench_methods (b): resid_pre activation patching over every
(layer, position) of a 20-token prompt on the same GPT-2-small-shaped model, with forward
pre-hooks on each block (the TransformerLens way: one clean run caching every resid_pre, the
corrupted run, then one patched corrupted run per cell). Same token ids as bench_methods.

Usage: /usr/bin/python3 bench/torch_patching.py [--model-dir /tmp/loupe-gpt2-small]
           [--threads 2] [--reps 3] [--loupe build]   # --loupe: also run bench_methods, one JSON
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def lcg_ids(n, vocab, seed):
    s, out = seed, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((s >> 8) % vocab)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="/tmp/loupe-gpt2-small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loupe", default=None, help="build dir: also run bench_methods and print both")
    a = ap.parse_args()
    os.environ.pop("OPENBLAS_CORETYPE", None)
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    model = GPT2LMHeadModel.from_pretrained(a.model_dir, torch_dtype=torch.float32).eval()
    V, NL, TP = model.config.vocab_size, model.config.n_layer, 20
    clean = lcg_ids(TP, V, 777)
    corr = list(clean)
    corr[TP // 2] = (clean[TP // 2] + 1) % V
    ans, wrong = clean[TP // 2], corr[TP // 2]
    blocks = model.transformer.h
    clean_t, corr_t = torch.tensor([clean]), torch.tensor([corr])

    def metric(ids):
        lg = model(ids).logits[0, -1]
        return float(lg[ans] - lg[wrong])

    def sweep():
        cache = {}
        hs = [b.register_forward_pre_hook(lambda mod, args, L=L: cache.__setitem__(L, args[0].clone()))
              for L, b in enumerate(blocks)]
        mc = metric(clean_t)
        for h in hs:
            h.remove()
        mr = metric(corr_t)
        out = [[0.0] * TP for _ in range(NL)]
        for L in range(NL):
            for p in range(TP):
                def patch(mod, args, L=L, p=p):
                    x = args[0].clone()
                    x[:, p] = cache[L][:, p]
                    return (x,) + tuple(args[1:])
                h = blocks[L].register_forward_pre_hook(patch)
                out[L][p] = (metric(corr_t) - mr) / (mc - mr)
                h.remove()
        return out

    with torch.inference_mode():
        metric(clean_t)  # warm-up
        metric(corr_t)
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            res = sweep()
            times.append(time.perf_counter() - t0)
    runs = NL * TP + 2
    total = statistics.median(times)
    r = {"torch": torch.__version__, "threads": a.threads, "reps": a.reps, "cells": NL * TP, "runs": runs,
         "total_s": round(total, 4), "per_run_ms": round(total / runs * 1e3, 3),
         "last_layer_last_pos_normalized": round(res[NL - 1][TP - 1], 6)}
    if a.loupe:
        exe = os.path.join(a.loupe, "bench", "bench_methods")
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        out = subprocess.run([exe, a.model_dir, os.path.join(a.loupe, "plugins"), "--reps", str(a.reps),
                              "--threads", str(a.threads)], capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit("bench_methods failed: " + out.stderr)
        lo = json.loads(out.stdout)
        r = {"loupe": lo, "torch_patching_20_tokens": r,
             "patching_speedup_vs_torch": round(total / lo["patching_20_tokens"]["total_s"], 2)}
    print(json.dumps(r))


if __name__ == "__main__":
    main()
