#!/usr/bin/env python3
"""sae.evaluate against an independent PyTorch computation: the same contexts (JSONL texts
tokenized without BOS, joined by BOS, cut into context_size-1 tokens with BOS prepended),
a Hugging Face GPT-2 run with the SAE's reconstruction / zeros / the mean spliced into the
residual stream at blocks.L.hook_resid_pre (a forward pre-hook on block L), next-token CE
over every position but the last. Prints both and exits 1 if CE values differ by > 2e-3.

Usage: eval_check.py LOUPE MODEL_DIR SAE_DIR DATA.jsonl [CONTEXTS]"""
import json
import os
import subprocess
import sys


def main():
    loupe, model_dir, sae_dir, data = sys.argv[1:5]
    nctx = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    if not os.path.exists(data):  # models/toy/eval/X or models/toy/data/eval/X
        alt = data.replace(os.sep + "eval" + os.sep, os.sep + "data" + os.sep + "eval" + os.sep)
        data = alt if os.path.exists(alt) else data
    for p in (os.path.join(model_dir, "config.json"), os.path.join(sae_dir, "cfg.json"), data):
        if not os.path.exists(p):
            print(f"SKIP: {p} is not here")
            return 77
    fp = os.path.join(sae_dir, "model.sha256")
    if os.path.exists(fp):
        import hashlib
        with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
            have = hashlib.sha256(f.read()).hexdigest()
        if open(fp).read().split()[0] != have:
            print("SKIP: the model has changed since the SAE was trained (re-run plugins/sae/toy/train_toy_sae.sh)")
            return 77
    try:
        import numpy as np
        import torch
        from safetensors.numpy import load_file
        from transformers import AutoTokenizer, GPT2LMHeadModel
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: {e}")
        return 77
    cfg = json.load(open(os.path.join(sae_dir, "cfg.json")))
    hook = cfg["metadata"]["hook_name"]
    assert hook.startswith("blocks.") and hook.endswith(".hook_resid_pre"), "resid_pre SAEs only"
    L = int(hook.split(".")[1])
    T = cfg["metadata"].get("context_size") or 128
    w = {k: torch.tensor(v) for k, v in load_file(os.path.join(sae_dir, "sae_weights.safetensors")).items()}
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    bos = model.config.bos_token_id
    stream = []
    for line in open(data):
        if len(stream) >= (nctx + 1) * T:
            break
        t = json.loads(line).get("text")
        if not t:
            continue
        if stream:
            stream.append(bos)
        stream += tok(t, add_special_tokens=False)["input_ids"]
    body = T - 1
    n = min(len(stream) // body, nctx)
    ids = torch.tensor([[bos] + stream[c * body:(c + 1) * body] for c in range(n)])

    def encode(x):
        xc = x - w["b_dec"] if cfg.get("apply_b_dec_to_input", True) else x
        pre = xc @ w["W_enc"] + w["b_enc"]
        if cfg["architecture"] == "topk":
            v, i = pre.topk(cfg["k"], dim=-1)
            return torch.zeros_like(pre).scatter(-1, i, v.relu())
        if cfg["architecture"] == "jumprelu":
            return pre * (pre > w["threshold"]) * (pre > 0)
        return pre.relu()

    state = {"mode": "clean", "mean": None, "acts": []}

    def pre_hook(mod, args):
        x = args[0]
        if state["mode"] == "clean":
            state["acts"].append(x.detach().clone())
            return None
        if state["mode"] == "sae":
            return (encode(x) @ w["W_dec"] + w["b_dec"],) + args[1:]
        if state["mode"] == "zero":
            return (torch.zeros_like(x),) + args[1:]
        return (state["mean"].expand_as(x).clone(),) + args[1:]

    model.transformer.h[L].register_forward_pre_hook(pre_hook)
    res = {}
    with torch.no_grad():
        for mode in ("clean", "sae", "zero", "mean"):
            state["mode"] = mode
            if mode == "mean":
                acts = torch.cat(state["acts"]).reshape(-1, model.config.n_embd)
                state["mean"] = acts.mean(0)
            tot, cnt = 0.0, 0
            for b in range(0, n, 8):
                x = ids[b:b + 8]
                lg = model(x).logits.double()
                lp = lg[:, :-1].log_softmax(-1)
                tot += -lp.gather(-1, x[:, 1:, None]).sum().item()
                cnt += x.shape[0] * (T - 1)
            res[mode] = tot / cnt
    res["recovered_zero"] = (res["zero"] - res["sae"]) / (res["zero"] - res["clean"])
    res["recovered_mean"] = (res["mean"] - res["sae"]) / (res["mean"] - res["clean"])
    r = subprocess.run([loupe, "call", "sae.evaluate", model_dir, f"sae={sae_dir}", f"corpus={data}",
                        f"contexts={n}", "--json"], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        return 1
    j = json.loads(r.stdout)
    lo = {k: v.get("value") for k, v in j["results"].items()}
    bad = 0
    print(f"# {n} contexts of {T}, {hook}")
    for k, lk in (("clean", "ce_clean"), ("sae", "ce_sae"), ("zero", "ce_zero"), ("mean", "ce_mean"),
                  ("recovered_zero", "ce_recovered_zero"), ("recovered_mean", "ce_recovered_mean")):
        d = abs(res[k] - lo[lk])
        ok = d <= 2e-3
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {lk:18s} pytorch {res[k]:.5f}  loupe {lo[lk]:.5f}  |diff| {d:.1e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
