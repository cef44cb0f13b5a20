#!/usr/bin/env python3
"""The trainer's arithmetic against PyTorch autograd + torch.optim.Adam: from the same
weights and batch, a few steps of loupe's sparse trainer (sae_tool train) and of the plain
dense PyTorch formulation (the one bench/bench_sae.py times) must give the same parameters.

  relu: loss = mean_b |x̂ − x|² + l1 · mean_b Σ_i f_i |W_dec,i|
  topk: the same MSE (k largest, relu'd), decoder-gradient projection, unit decoder rows,
        and the auxiliary loss for latents dead at the start of a step (dead_tokens = B, so
        latents that did not fire in step 1 are dead in step 2).

Usage: train_check.py SAE_TOOL TMPDIR        (exit 77 when torch/safetensors are missing)"""
import json
import os
import subprocess
import sys


def _ste(torch):
    """SAELens' JumpReLU and Step with their straight-through threshold gradients."""

    def rect(u):
        return ((u > -0.5) & (u < 0.5)).to(u.dtype)

    class JumpReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bw = bw
            return x * (x > th)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            return (x > th) * g, (-(th / ctx.bw) * rect((x - th) / ctx.bw) * g).sum(0), None

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bw = bw
            return (x > th).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            return torch.zeros_like(x), (-(1.0 / ctx.bw) * rect((x - th) / ctx.bw) * g).sum(0), None

    return JumpReLU, Step


def main():
    tool, tmp = sys.argv[1], sys.argv[2]
    try:
        import numpy as np
        import torch
        from safetensors.numpy import load_file, save_file
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: {e}")
        return 77
    torch.manual_seed(0)
    JumpReLU, Step = _ste(torch)
    D, B, steps, lr = 16, 64, 4, 1e-2
    fails = 0
    # standard with many active latents takes the dense path, with few (bias -0.8, d_sae 256)
    # the sparse one; topk is always sparse
    # jumprelu: a wide bandwidth (0.3) so that many entries carry the threshold's gradient
    bw = 0.3
    for arch, S, k, l1, aux, bias in (("standard", 48, 0, 0.5, 0.0, -0.1), ("standard", 256, 0, 0.5, 0.0, -0.8),
                                      ("topk", 48, 5, 0.0, 0.5, -0.1), ("jumprelu", 48, 0, 0.2, 0.0, -0.1),
                                      ("jumprelu", 256, 0, 0.2, 0.0, -0.8), ("jumprelu", 512, 0, 0.2, 0.0, -2.2)):
        rng = np.random.default_rng(1)
        W_dec = rng.normal(size=(S, D)).astype(np.float32)
        W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
        if arch == "standard":
            W_dec *= 0.3
        W_enc = (W_dec.T * 1.3).astype(np.float32).copy()
        b_enc = (rng.normal(size=S) * 0.1 + bias).astype(np.float32)
        b_dec = (rng.normal(size=D) * 0.1).astype(np.float32)
        x = (rng.normal(size=(B, D)) * (rng.random((B, D)) < 0.4)).astype(np.float32)
        d0 = os.path.join(tmp, f"check_{arch}_{S}_init")
        os.makedirs(d0, exist_ok=True)
        thr = (rng.random(S) * 0.3 + 0.05).astype(np.float32)
        tensors = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
        if arch == "jumprelu":
            tensors["threshold"] = thr
        save_file(tensors, os.path.join(d0, "sae_weights.safetensors"))
        cfg = {"d_in": D, "d_sae": S, "architecture": arch, "apply_b_dec_to_input": True,
               "normalize_activations": "none", "metadata": {"hook_name": "x"}}
        if k:
            cfg["k"] = k
        with open(os.path.join(d0, "cfg.json"), "w") as f:
            json.dump(cfg, f)
        np.save(os.path.join(tmp, "check_x.npy"), x)
        d1 = os.path.join(tmp, f"check_{arch}_{S}_out")
        r = subprocess.run([tool, "train", d0, os.path.join(tmp, "check_x.npy"), str(steps), str(lr), str(l1),
                            str(aux), str(B), d1, str(bw)], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr)
            return 1
        l0 = [float(line.split(" l0 ")[1]) for line in r.stdout.splitlines() if " l0 " in line]
        got = load_file(os.path.join(d1, "sae_weights.safetensors"))

        P = {n: torch.tensor(v, requires_grad=True) for n, v in
             (("W_enc", W_enc), ("W_dec", W_dec), ("b_enc", b_enc), ("b_dec", b_dec))}
        if arch == "jumprelu":
            P["log_threshold"] = torch.tensor(np.log(thr), requires_grad=True)
        opt = torch.optim.Adam(list(P.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        X = torch.tensor(x)
        last_fired = torch.zeros(S, dtype=torch.long)
        seen = 0
        for _ in range(steps):
            opt.zero_grad()
            dead = (seen - last_fired) >= B
            pre = (X - P["b_dec"]) @ P["W_enc"] + P["b_enc"]
            if arch == "topk":
                v, i = pre.topk(k, dim=-1)
                f = torch.zeros_like(pre).scatter(-1, i, v.relu())
            elif arch == "jumprelu":
                th = P["log_threshold"].exp()
                f = JumpReLU.apply(pre, th, bw)
            else:
                f = pre.relu()
            xh = f @ P["W_dec"] + P["b_dec"]
            loss = (xh - X).pow(2).sum(-1).mean()
            if arch == "standard":
                loss = loss + l1 * (f * P["W_dec"].norm(dim=1)).sum(-1).mean()
            if arch == "jumprelu":
                loss = loss + l1 * Step.apply(pre, th, bw).sum(-1).mean()
            n_dead = int(dead.sum())
            if arch == "topk" and n_dead > 0 and aux > 0:
                k_aux = min(D // 2, n_dead, S - k)
                scale = min(n_dead / (D // 2), 1.0)
                va, ia = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
                fa = torch.zeros_like(pre).scatter(-1, ia, va.relu())
                resid = (X - xh).detach()
                loss = loss + aux * scale * (fa @ P["W_dec"] - resid).pow(2).sum(-1).mean()
            loss.backward()
            with torch.no_grad():
                fired = (f > 0).any(0)
                seen += B
                last_fired[fired] = seen
                if arch == "topk":
                    g = P["W_dec"].grad
                    g -= (g * P["W_dec"]).sum(1, keepdim=True) * P["W_dec"]
            opt.step()
            if arch == "topk":
                with torch.no_grad():
                    P["W_dec"].div_(P["W_dec"].norm(dim=1, keepdim=True))
        worst = 0.0
        if arch == "jumprelu":
            got["log_threshold"] = np.log(got["threshold"])
        for n, t in P.items():
            ref = t.detach().numpy()
            d = float(np.abs(got[n] - ref).max() / (np.abs(ref).max() + 1e-12))
            worst = max(worst, d)
        moved = float(np.abs(got["W_enc"] - W_enc).max())
        ok = worst < 1e-4 and moved > 1e-3
        fails += not ok
        path = "sparse" if arch == "topk" or max(l0) < 0.03 * S else "dense"  # (jumprelu: + near-θ entries)
        print(("ok   " if ok else "FAIL ") + f"[{arch}, d_sae {S}, {path} path, L0 {min(l0):.1f}..{max(l0):.1f}] {steps} "
              f"Adam steps of loupe's trainer match PyTorch autograd (max rel diff {worst:.2g}; weights moved "
              f"{moved:.3f})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
