#!/usr/bin/python3
"""Second stage of the toy model's training: continue from a checkpoint with two planted
training signals, so the mechanisms the model card promises are there in the time this
machine has:

  * IOI answers count more: the loss on a name that follows " to" (every IOI template ends
    with " ... to", the answer is the indirect object) is weighted by --ioi-weight;
  * one layer-0 head (--prev-head L.H) gets an auxiliary loss, the negative log of its
    attention to the previous position, weighted by --prev-weight, which makes it a clean
    previous-token head (TransformerLens score) for the induction heads to build on.

Everything else is the same objective as train.py (next-token cross-entropy on the corpus
stream plus repeated random-token rows). Usage:
  /usr/bin/python3 tools/toy/finetune.py --init DIR --out DIR [--minutes M] [--seed S]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=os.path.join(root, "models/toy/data"))
    ap.add_argument("--tokenizer", default=os.path.join(root, "models/toy/tokenizer.json"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--rand-frac", type=float, default=0.15)
    ap.add_argument("--ioi-weight", type=float, default=6.0)
    ap.add_argument("--prev-head", default="0.2")
    ap.add_argument("--prev-weight", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    tok = Tokenizer.from_file(a.tokenizer)
    V = tok.get_vocab_size()
    eot = tok.token_to_id("<|endoftext|>")
    to_id = tok.token_to_id("Ġto")
    import re
    src = open(os.path.join(here, "gen_corpus.py")).read()
    names = re.search(r'NAMES = """(.*?)"""', src, re.S).group(1).split()
    name_ids = torch.tensor(sorted({tok.token_to_id("Ġ" + n) for n in names if tok.token_to_id("Ġ" + n) is not None}))
    is_name = torch.zeros(V, dtype=torch.bool)
    is_name[name_ids] = True
    stream = np.load(os.path.join(a.data, "train_ids.npy")).astype(np.int64)
    starts = np.nonzero(stream == eot)[0]
    model = GPT2LMHeadModel.from_pretrained(a.init, attn_implementation="eager")
    T = model.config.n_positions
    starts = starts[starts + T + 1 <= len(stream)]
    st = torch.from_numpy(stream)
    pl, ph = (int(x) for x in a.prev_head.split("."))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98), eps=1e-8)
    logf = open(os.path.join(a.out, "finetune_log.txt"), "w")

    def log(s):
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    log(json.dumps({"args": vars(a), "n_name_tokens": int(len(name_ids)), "torch": torch.__version__}))
    gen = torch.Generator().manual_seed(a.seed)

    def batch():
        n_rand = int(round(a.batch * a.rand_frac))
        n_text = a.batch - n_rand
        idx = starts[torch.randint(len(starts), (n_text,), generator=gen).numpy()]
        rows = torch.stack([st[i:i + T + 1] for i in idx.tolist()])
        x, y = rows[:, :-1].clone(), rows[:, 1:].clone()
        xr = torch.empty(n_rand, T + 1, dtype=torch.long)
        mask = torch.zeros(n_rand, T, dtype=torch.bool)
        for r in range(n_rand):
            L = int(torch.randint(8, 61, (1,), generator=gen))
            R = torch.randint(1, V, (L,), generator=gen)
            xr[r] = torch.cat([torch.tensor([eot]), R.repeat(T // L + 2)])[:T + 1]
            mask[r, :L - 1] = True
        yr = xr[:, 1:].clone()
        yr[mask] = -100
        return torch.cat([x, xr[:, :-1]]), torch.cat([y, yr])

    model.train()
    t0 = time.time()
    last = t0
    step = 0
    ema = None
    while True:
        prog = max(step / a.steps, (time.time() - t0) / (a.minutes * 60))
        if prog >= 1:
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch()
        out = model(x, output_attentions=True)
        ce = torch.nn.functional.cross_entropy(out.logits.reshape(-1, V), y.reshape(-1), ignore_index=-100,
                                               reduction="none").view_as(y)
        w = torch.ones_like(ce)
        ioi = (x == to_id) & is_name[y.clamp(min=0)]
        w[ioi] = a.ioi_weight
        w[y == -100] = 0
        loss_ce = (ce * w).sum() / w.sum()
        att = out.attentions[pl][:, ph]  # [B, T, T]
        prev = att.diagonal(offset=-1, dim1=1, dim2=2)  # [B, T-1]
        loss_prev = -(prev + 1e-6).log().mean()
        loss = loss_ce + a.prev_weight * loss_prev
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss_ce.item() if ema is None else 0.95 * ema + 0.05 * loss_ce.item()
        if step % 25 == 0 or step == 1:
            ioi_ce = (ce[ioi].mean().item() if ioi.any() else float("nan"))
            log(f"step {step} ce_ema {ema:.4f} ioi_ce {ioi_ce:.3f} prev_attn {prev.mean().item():.3f} "
                f"lr {lr:.2e} elapsed {time.time() - t0:.0f}s")
        if time.time() - last > a.ckpt_minutes * 60:
            last = time.time()
            model.save_pretrained(os.path.join(a.out, "ckpt"), safe_serialization=True)
            log(f"checkpoint step {step}")
    model.save_pretrained(a.out, safe_serialization=True)
    log(f"done steps {step} elapsed {time.time() - t0:.0f}s; saved {a.out}")


if __name__ == "__main__":
    main()
