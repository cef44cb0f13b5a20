#!/usr/bin/python3
"""PyTorch eager reference for bench_methods (a): the logit lens over every layer and
position of a 128-token prompt on the same GPT-2-small-shaped model, computed the way a
TransformerLens notebook does it (every resid_pre cached by forward pre-hooks, the final
norm and W_U applied to the stacked residual streams, log-softmax, KL to the final
distribution, top-1), next to one plain forward pass with every position's logits.
Same token ids as bench_methods (seed 12345).

Usage: /usr/bin/python3 bench/torch_lens.py [--model-dir /tmp/loupe-gpt2-small]
           [--threads 2] [--reps 3] [--loupe build]   # --loupe: also run bench_methods
"""
import argparse
import json
import os
import statistics
import subprocess
import time

from torch_patching import lcg_ids  # bench_methods' token ids (same LCG)


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
    V, NL, T = model.config.vocab_size, model.config.n_layer, 128
    ids = torch.tensor([lcg_ids(T, V, 12345)])
    blocks, ln_f, W_U = model.transformer.h, model.transformer.ln_f, model.lm_head.weight

    def forward():
        with torch.no_grad():
            return model(ids).logits[0]

    def lens():
        cache = {}
        hs = [b.register_forward_pre_hook(lambda mod, args, L=L: cache.__setitem__(L, args[0]))
              for L, b in enumerate(blocks)]
        with torch.no_grad():
            final = model(ids).logits[0]                               # [T, V]
            resid = torch.stack([cache[L][0] for L in range(NL)])      # [NL, T, D]
            lg = ln_f(resid) @ W_U.T                                   # [NL, T, V]
            lp = torch.log_softmax(lg, -1)
            lpf = torch.log_softmax(final, -1)
            kl = (lpf.exp() * (lpf - lp)).sum(-1)                      # [NL, T]
            top1 = lg.argmax(-1)
        for h in hs:
            h.remove()
        return kl, top1

    def timed(fn):
        fn()  # warm-up
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    tf, tl = timed(forward), timed(lens)
    out = {"torch": torch.__version__, "threads": a.threads, "reps": a.reps, "tokens": T,
           "torch_forward_all_logits_s": round(tf, 4), "torch_lens_s": round(tl, 4),
           "torch_lens_over_forward": round(tl / tf, 3)}
    if a.loupe:
        r = subprocess.run([os.path.join(a.loupe, "bench", "bench_methods"), a.model_dir,
                            os.path.join(a.loupe, "plugins"), "--reps", str(a.reps)],
                           capture_output=True, text=True, check=True)
        lo = json.loads(r.stdout.strip().splitlines()[-1])
        out["loupe"] = lo
        out["torch_lens_over_loupe_lens"] = round(tl / lo["logit_lens_128_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
