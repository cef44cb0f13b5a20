#!/usr/bin/env python3
"""Train loupe's bundled toy GPT-2 model on the synthetic corpus (CPU, seeded).

Data: the corpus (one doc per line, each preceded by <|endoftext|>) is tokenized into one
stream; every training row is a 128-token window starting at a document boundary (so
position 0 is always <|endoftext|>, like the BOS the tokenizer config adds). A fraction of
rows (--rand-frac) are instead [EOT] + R + R + R... with R a run of uniformly random
token ids from the whole vocab (len 8..60); loss on the first copy is masked. These make
the induction heads general (TransformerLens-style induction score uses random tokens).

Schedule: linear warmup then cosine decay on progress = max(step/steps, elapsed/budget),
so the run always ends within --minutes wall time. Logs to models/toy/training_log.txt,
checkpoints to models/toy/ckpt/ (ignored by git), final HF folder to models/toy/.
"""
import argparse, json, math, os, random, time
import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))


def load_stream(corpus, tok, cache):
    if os.path.exists(cache) and os.path.getmtime(cache) > max(os.path.getmtime(corpus),
                                                                 os.path.getmtime(os.path.join(os.path.dirname(cache), "..", "tokenizer.json"))):
        return np.load(cache)
    lines = open(corpus).read().split("\n")
    lines = [l for l in lines if l]
    eot = tok.token_to_id("<|endoftext|>")
    out = []
    for i in range(0, len(lines), 20000):
        for e in tok.encode_batch(lines[i:i + 20000], add_special_tokens=False):
            out.append(eot)
            out.extend(e.ids)
    out.append(eot)
    arr = np.array(out, dtype=np.uint16)
    np.save(cache, arr)
    return arr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(root, "models/toy"))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d", type=int, default=192)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=55.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--rand-frac", type=float, default=0.12)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log", default=None)
    ap.add_argument("--init", default=None, help="continue from this HF folder instead of random init")
    ap.add_argument("--log-mode", default="w", help="'a' to append to an existing training log")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed); np.random.seed(args.seed); torch.manual_seed(args.seed)
    tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    V = tok.get_vocab_size()
    eot = tok.token_to_id("<|endoftext|>")
    stream = load_stream(os.path.join(args.out, "data/train.txt"), tok, os.path.join(args.out, "data/train_ids.npy"))
    starts = np.nonzero(stream == eot)[0]
    starts = starts[starts + args.ctx + 1 <= len(stream)]
    stream_t = torch.from_numpy(stream.astype(np.int64))

    cfg = GPT2Config(vocab_size=V, n_positions=args.ctx, n_ctx=args.ctx, n_embd=args.d, n_layer=args.layers,
                     n_head=args.heads, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True)
    model = GPT2LMHeadModel.from_pretrained(args.init) if args.init else GPT2LMHeadModel(cfg)
    nparams = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    logf = open(args.log or os.path.join(args.out, "training_log.txt"), args.log_mode)

    def log(s):
        print(s, flush=True); logf.write(s + "\n"); logf.flush()

    log(json.dumps({"args": vars(args), "params": nparams, "vocab": V, "stream_tokens": int(len(stream)),
                    "docs": int(len(starts)), "torch": torch.__version__}))
    gen = torch.Generator().manual_seed(args.seed)
    T = args.ctx

    def batch():
        n_rand = int(round(args.batch * args.rand_frac))
        n_text = args.batch - n_rand
        idx = torch.from_numpy(starts[torch.randint(len(starts), (n_text,), generator=gen).numpy()])
        rows = torch.stack([stream_t[i:i + T + 1] for i in idx.tolist()])
        x, y = rows[:, :-1].clone(), rows[:, 1:].clone()
        if n_rand:
            xr = torch.empty(n_rand, T + 1, dtype=torch.long)
            yr_mask = torch.zeros(n_rand, T, dtype=torch.bool)
            for r in range(n_rand):
                L = int(torch.randint(8, 61, (1,), generator=gen))
                R = torch.randint(1, V, (L,), generator=gen)
                seq = torch.cat([torch.tensor([eot]), R.repeat(T // L + 2)])[:T + 1]
                xr[r] = seq
                yr_mask[r, :L - 1] = True  # targets inside first copy are unpredictable
            yr = xr[:, 1:].clone(); yr[yr_mask] = -100
            x = torch.cat([x, xr[:, :-1]]); y = torch.cat([y, yr])
        return x, y

    model.train()
    t0 = time.time(); last_ck = t0; step = 0; ema = None; rema = None; tokens = 0
    budget = args.minutes * 60
    while True:
        el = time.time() - t0
        prog = max(step / args.steps, el / budget)
        if prog >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch()
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1; tokens += x.numel()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        n_rand = int(round(args.batch * args.rand_frac))
        if n_rand:  # loss on the random-token repeat rows alone (chance ~ ln V): tracks induction
            with torch.no_grad():
                rl = torch.nn.functional.cross_entropy(logits[-n_rand:].reshape(-1, V), y[-n_rand:].reshape(-1), ignore_index=-100).item()
            rema = rl if rema is None else 0.9 * rema + 0.1 * rl
        if step % 50 == 0 or step == 1:
            el = time.time() - t0
            log(f"step {step} tokens {tokens} loss {loss.item():.4f} ema {ema:.4f} rand_rows_ema {rema if rema is not None else float('nan'):.3f} lr {lr:.2e} elapsed {el:.0f}s tok/s {tokens / el:.0f}")
        if time.time() - last_ck > args.ckpt_minutes * 60:
            last_ck = time.time()
            model.save_pretrained(os.path.join(args.out, "ckpt"), safe_serialization=True)
            log(f"checkpoint step {step} -> ckpt/")
    el = time.time() - t0
    log(f"done steps {step} tokens {tokens} elapsed {el:.0f}s tok/s {tokens / el:.0f} final_ema_loss {ema:.4f}")
    model.save_pretrained(args.out, safe_serialization=True)
    log("saved " + args.out)


if __name__ == "__main__":
    main()
