#!/usr/bin/env python3
"""SAE training throughput: loupe's trainer (build/bench/bench_sae) against a PyTorch eager
implementation of the same SAE and optimiser, same shapes and batch, in the same run.

Both: W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec; x - b_dec, pre = x·W_enc + b_enc;
  relu: f = relu(pre), loss = Σ_d (x̂ - x)² (mean over the batch) + l1 · Σ_i f_i |W_dec,i|
  topk: f = the k largest of pre (relu'd), scattered; the same MSE; decoder rows renormalised
        to unit norm after each step and the gradient's parallel component removed first;
        the auxiliary dead-latent loss when latents are dead (none in these short runs);
Adam (torch.optim.Adam, default betas/eps) on all four tensors. PyTorch uses its OpenMP /
OpenBLAS threads (set to --threads); loupe uses OpenBLAS with the same count and its own
pthreads for the sparse kernels.

loupe's ReLU is first trained a few steps at a small batch so the L1 penalty brings it to a
realistic L0 (the L0 during the timed steps is printed); PyTorch's dense implementation costs
the same at any sparsity, so it is timed from initialisation.

Usage: /usr/bin/python3 bench/bench_sae.py [--bench build/bench/bench_sae] [--threads 2]
       [--steps 3] [--configs relu:24576,topk:24576,relu:6144,topk:6144] [--json OUT.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time


def torch_bench(torch, arch, d_in, d_sae, batch, k, steps, l1, lr):
    torch.manual_seed(0)
    W_dec = torch.randn(d_sae, d_in)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * (1.0 if arch == "topk" else 0.1)
    W_enc = W_dec.t().contiguous().requires_grad_(True)
    W_dec = W_dec.requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d_in, requires_grad=True)
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=lr)
    xs = [torch.randn(batch, d_in) for _ in range(2)]
    dead_after = 1_000_000
    last_fired = torch.zeros(d_sae, dtype=torch.long)
    seen = 0

    def step(x):
        nonlocal seen
        opt.zero_grad(set_to_none=True)
        pre = (x - b_dec) @ W_enc + b_enc
        if arch == "topk":
            vals, idx = pre.topk(k, dim=-1)
            f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        else:
            f = pre.relu()
        xh = f @ W_dec + b_dec
        loss = (xh - x).pow(2).sum(-1).mean()
        if arch == "relu":
            loss = loss + l1 * (f * W_dec.norm(dim=1)).sum(-1).mean()
        else:
            with torch.no_grad():  # dead at the start of the step, as loupe counts it
                dead = (seen - last_fired) >= dead_after
                fired = (f > 0).any(0)
                seen += x.shape[0]
                last_fired[fired] = seen
            if dead.any():
                k_aux = min(d_in // 2, int(dead.sum()), d_sae - k)
                resid = (x - xh).detach()
                aux_pre = pre.masked_fill(~dead, float("-inf"))
                av, ai = aux_pre.topk(k_aux, dim=-1)
                fa = torch.zeros_like(pre).scatter(-1, ai, av.relu())
                loss = loss + (1 / 32) * min(dead.sum().item() / (d_in // 2), 1.0) * (fa @ W_dec - resid).pow(2).sum(-1).mean()
        loss.backward()
        if arch == "topk":
            with torch.no_grad():
                W_dec.grad -= (W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec
        opt.step()
        if arch == "topk":
            with torch.no_grad():
                W_dec.div_(W_dec.norm(dim=1, keepdim=True))
        return loss.item()

    step(xs[0])  # warm-up (allocations)
    t0 = time.perf_counter()
    for s in range(steps):
        step(xs[(s + 1) % 2])
    el = time.perf_counter() - t0
    return {"impl": "pytorch", "arch": arch, "d_in": d_in, "d_sae": d_sae, "batch": batch, "k": k, "steps": steps,
            "s_per_step": el / steps, "tokens_per_s": steps * batch / el}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build", "bench", "bench_sae"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--d-in", type=int, default=768)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--l1", type=float, default=5.0)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warm", type=int, default=60, help="loupe ReLU warm-up steps (at --warm-batch)")
    ap.add_argument("--warm-batch", type=int, default=512)
    ap.add_argument("--configs", default="relu:24576,topk:24576,relu:6144,topk:6144")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    os.environ.pop("OPENBLAS_CORETYPE", None)
    import torch
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {a.threads} threads; load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for cfg in a.configs.split(","):
        arch, d_sae = cfg.split(":")
        d_sae = int(d_sae)
        cmd = [a.bench, "--arch", arch, "--d-in", str(a.d_in), "--d-sae", str(d_sae), "--batch", str(a.batch),
               "--k", str(a.k), "--steps", str(a.steps), "--threads", str(a.threads), "--l1", str(a.l1),
               "--lr", str(a.lr), "--warm", str(a.warm), "--warm-batch", str(a.warm_batch)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        lo = json.loads(r.stdout.strip().splitlines()[-1])
        pt = torch_bench(torch, arch, a.d_in, d_sae, a.batch, a.k, a.steps, a.l1, a.lr)
        ratio = lo["tokens_per_s"] / pt["tokens_per_s"]
        rows.append({"loupe": lo, "pytorch": pt, "speedup": ratio})
        print(f"{arch:5s} d_sae {d_sae:6d} batch {a.batch}: loupe {lo['tokens_per_s']:8.0f} tok/s "
              f"({lo['s_per_step']:.3f} s/step, L0 {lo['l0']:.1f})  pytorch {pt['tokens_per_s']:8.0f} tok/s "
              f"({pt['s_per_step']:.3f} s/step)  speedup {ratio:.2f}x   load {os.getloadavg()[0]:.2f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
