#!/usr/bin/env python3
"""Evaluate the toy model (HF folder) on the held-out planted-mechanism sets.

Usage: /usr/bin/python3 tools/toy/eval_torch.py [--model models/toy] [--json out.json]

Every prompt is encoded without special tokens and prefixed with <|endoftext|> (the BOS,
as tokenizer_config.json's add_bos_token says). Prints per-head induction / previous-token
score tables and a JSON summary:
  ioi        top-1 accuracy (IO is argmax over the full vocab) and mean logit diff IO - S
  induction  top-1 accuracy on first vs second copy: TL-style [BOS]+R+R with R = 50 uniformly
             random token ids (eval/induction_tokens.jsonl), and held-out word runs
  heads      TL induction score (mean attention on diagonal offset 1-len(R)) and previous-token
             score (mean attention on diagonal offset -1) per (layer, head), on [BOS]+R+R
  facts      top-1 accuracy of the answer's first token
  probes     logistic-regression probe accuracy (held-out passages/sequences) per residual
             stream point, vs a current-token-embedding baseline; mood at '.' tokens after
             the first mood-coloured sentence, depth (0..4) at word tokens
"""
import argparse, json, os, sys
import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))


def rd(p):
    return [json.loads(l) for l in open(p)]


class Runner:
    def __init__(self, mdir, threads):
        torch.set_num_threads(threads)
        self.tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        self.model = GPT2LMHeadModel.from_pretrained(mdir, attn_implementation="eager").eval()
        self.bos = self.tok.token_to_id("<|endoftext|>")
        self.cfg = self.model.config
        self.resid = {}
        for i, blk in enumerate(self.model.transformer.h):
            blk.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def f(mod, inp, out):
            if self.capture:
                self.resid[i] = out[0].detach()
        return f

    def enc(self, text):
        e = self.tok.encode(text, add_special_tokens=False)
        return [self.bos] + e.ids, e

    @torch.no_grad()
    def forward(self, seqs, attn=False, resid=False, bs=64):
        """seqs: list of id lists. Yields (batch_index_offset, logits, attentions, resid dict)."""
        self.capture = resid
        for b in range(0, len(seqs), bs):
            chunk = seqs[b:b + bs]
            T = max(len(s) for s in chunk)
            x = torch.full((len(chunk), T), self.bos, dtype=torch.long)
            for i, s in enumerate(chunk):
                x[i, :len(s)] = torch.tensor(s)
            out = self.model(x, output_attentions=attn, output_hidden_states=resid)
            r = None
            if resid:
                r = {"embed": out.hidden_states[0]}
                for i in range(self.cfg.n_layer):
                    r[f"L{i}"] = self.resid[i]
            yield b, out.logits, (out.attentions if attn else None), r


def single(tok, s):
    ids = tok.encode(s, add_special_tokens=False).ids
    return ids[0], len(ids) == 1


def eval_ioi(R, data):
    seqs = [R.enc(d["prompt"])[0] for d in data]
    acc, ld, per = [], [], {}
    nonsingle = 0
    for b, logits, _, _ in R.forward(seqs):
        for i in range(logits.shape[0]):
            d = data[b + i]; s = seqs[b + i]
            lg = logits[i, len(s) - 1]
            io, ok1 = single(R.tok, d["io"]); sid, ok2 = single(R.tok, d["s"])
            nonsingle += (not ok1) + (not ok2)
            a = float(lg.argmax().item() == io); l = float(lg[io] - lg[sid])
            acc.append(a); ld.append(l)
            k = f"t{d['template']}_{d['order']}"
            per.setdefault(k, []).append(a)
    return {"n": len(data), "top1_acc": float(np.mean(acc)), "mean_logit_diff": float(np.mean(ld)),
            "median_logit_diff": float(np.median(ld)), "non_single_token_names": nonsingle,
            "acc_by_order": {o: float(np.mean([a for a, d in zip(acc, data) if d["order"] == o])) for o in ("ABBA", "BABA")},
            "acc_by_template": {t: float(np.mean([a for a, d in zip(acc, data) if d["template"] == t]))
                                for t in sorted({d["template"] for d in data})}}


def rand_token_set(V, bos, n=100, L=50, seed=4242):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        r = torch.randint(0, V, (L,), generator=g)
        r[r == bos] = (bos + 1) % V
        out.append(r.tolist())
    return out


def eval_induction(R, tokset, words):
    L = len(tokset[0])
    seqs = [[R.bos] + r + r for r in tokset]
    H, NL = R.cfg.n_head, R.cfg.n_layer
    ind = torch.zeros(NL, H); prev = torch.zeros(NL, H)
    c1, c2 = [], []
    for b, logits, attns, _ in R.forward(seqs, attn=True):
        pred = logits.argmax(-1)  # [B, T]
        x = torch.tensor(seqs[b:b + logits.shape[0]])
        # position p predicts token p+1. first copy tokens at 1..L, second at L+1..2L
        c1.append((pred[:, 1:L] == x[:, 2:L + 1]).float().mean().item())
        c2.append((pred[:, L + 1:2 * L] == x[:, L + 2:2 * L + 1]).float().mean().item())
        for l, a in enumerate(attns):  # [B, H, T, T]
            ind[l] += a.diagonal(offset=1 - L, dim1=-2, dim2=-1).mean(-1).sum(0)
            prev[l] += a.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).sum(0)
    ind /= len(seqs); prev /= len(seqs)
    # word runs: "r r", words are single tokens; accuracy by copy (skip the first token of each copy)
    w1, w2 = [], []
    wseqs, spans = [], []
    for d in words:
        ids, e = R.enc(d["text"])
        s2 = e.char_to_token(d["second_char"]) + 1
        wseqs.append(ids); spans.append(s2)
    for b, logits, _, _ in R.forward(wseqs):
        pred = logits.argmax(-1)
        for i in range(logits.shape[0]):
            ids = wseqs[b + i]; s2 = spans[b + i]; x = torch.tensor(ids)
            w1.append((pred[i, 1:s2 - 1] == x[2:s2]).float().mean().item())
            w2.append((pred[i, s2:len(ids) - 1] == x[s2 + 1:]).float().mean().item())
    return ({"random_tokens": {"n": len(seqs), "len_R": L, "acc_first_copy": float(np.mean(c1)),
                               "acc_second_copy": float(np.mean(c2)), "chance": 1.0 / R.cfg.vocab_size},
             "word_runs": {"n": len(words), "acc_first_copy": float(np.mean(w1)), "acc_second_copy": float(np.mean(w2))}},
            ind, prev)


def eval_facts(R, data):
    seqs = [R.enc(d["prompt"])[0] for d in data]
    acc = []
    for b, logits, _, _ in R.forward(seqs):
        for i in range(logits.shape[0]):
            d = data[b + i]
            ans = R.tok.encode(d["answer"], add_special_tokens=False).ids[0]
            acc.append(float(logits[i, len(seqs[b + i]) - 1].argmax().item() == ans))
    return {"n": len(data), "top1_acc": float(np.mean(acc)),
            "by_relation": {r: float(np.mean([a for a, d in zip(acc, data) if d["relation"] == r]))
                            for r in sorted({d["relation"] for d in data})}}


def collect(R, texts, pos_lists):
    """Returns {site: [N_i x d] list per text}, token ids at positions."""
    seqs, tpos = [], []
    for t, cs in zip(texts, pos_lists):
        ids, e = R.enc(t)
        seqs.append(ids); tpos.append([e.char_to_token(c) + 1 for c in cs])
    feats, toks = {}, []
    for b, _, _, r in R.forward(seqs, resid=True):
        for i in range(len(seqs[b:b + 64])):
            p = tpos[b + i]
            for k, v in r.items():
                feats.setdefault(k, []).append(v[i, p].numpy())
            toks.append([seqs[b + i][j] for j in p])
    return feats, toks


def probe(X_tr, y_tr, X_te, y_te):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(X_tr)
    clf = LogisticRegression(max_iter=3000, C=0.5).fit(sc.transform(X_tr), y_tr)
    return float(clf.score(sc.transform(X_te), y_te))


def run_probes(R, items, texts, pos_lists, labels_per_item, name):
    feats, toks = collect(R, texts, pos_lists)
    n = len(texts); ntr = int(0.7 * n)
    def stack(lst, a, b):
        return np.concatenate(lst[a:b])
    y = [np.array(l) for l in labels_per_item]
    ytr, yte = np.concatenate(y[:ntr]), np.concatenate(y[ntr:])
    res = {}
    for k in feats:
        res[k] = probe(stack(feats[k], 0, ntr), ytr, stack(feats[k], ntr, n), yte)
    # baseline: token embedding (W_E row) of the current token only
    WE = R.model.transformer.wte.weight.detach().numpy()
    tt = [WE[np.array(t)] for t in toks]
    base = probe(stack(tt, 0, ntr), ytr, stack(tt, ntr, n), yte)
    maj = float(np.max(np.bincount(yte)) / len(yte))
    layer_keys = [k for k in res if k.startswith("L")]
    best = max(layer_keys, key=lambda k: res[k])
    return {"n_train_positions": int(len(ytr)), "n_test_positions": int(len(yte)),
            "acc_by_site": res, "best_site": best, "best_acc": res[best],
            "baseline_current_token_embedding": base, "majority_class": maj,
            "site_names": {"embed": "hook_embed+hook_pos_embed (= blocks.0.hook_resid_pre)",
                           **{f"L{i}": f"blocks.{i}.hook_resid_post" for i in range(R.cfg.n_layer)}}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "models/toy"))
    ap.add_argument("--eval-dir", default=os.path.join(root, "models/toy/data/eval"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smaller probe sets")
    args = ap.parse_args()
    R = Runner(args.model, args.threads)
    E = args.eval_dir
    V = R.cfg.vocab_size
    tok_path = os.path.join(E, "induction_tokens.jsonl")
    if not os.path.exists(tok_path):
        with open(tok_path, "w") as f:
            for r in rand_token_set(V, R.bos):
                f.write(json.dumps({"ids": [R.bos] + r + r, "len_R": len(r), "note": "[BOS]+R+R, R uniform random token ids, seed 4242"}) + "\n")
    tokset = [d["ids"][1:1 + d["len_R"]] for d in rd(tok_path)]
    summary = {"model": os.path.relpath(args.model, root), "params": sum(p.numel() for p in R.model.parameters())}
    summary["ioi"] = eval_ioi(R, rd(os.path.join(E, "ioi.jsonl")))
    ind, ih, ph = eval_induction(R, tokset, rd(os.path.join(E, "induction.jsonl")))
    summary["induction"] = ind
    summary["facts"] = eval_facts(R, rd(os.path.join(E, "facts.jsonl")))
    NL, H = ih.shape
    print("Induction score (rows = layer, cols = head):")
    for l in range(NL):
        print(f"  L{l} " + " ".join(f"{v:5.2f}" for v in ih[l].tolist()))
    print("Previous-token score (rows = layer, cols = head):")
    for l in range(NL):
        print(f"  L{l} " + " ".join(f"{v:5.2f}" for v in ph[l].tolist()))
    def top(m, k=3):
        v, i = m.flatten().topk(k)
        return [{"layer": int(j) // H, "head": int(j) % H, "score": round(float(s), 4)} for s, j in zip(v, i)]
    summary["heads"] = {"top_induction": top(ih), "top_prev_token": top(ph),
                        "induction_scores": [[round(float(v), 4) for v in r] for r in ih],
                        "prev_token_scores": [[round(float(v), 4) for v in r] for r in ph]}
    mood = rd(os.path.join(E, "mood.jsonl")); nest = rd(os.path.join(E, "nesting.jsonl"))
    if args.quick:
        mood, nest = mood[:300], nest[:300]
    summary["probe_mood"] = run_probes(R, mood, [d["text"] for d in mood], [d["probe_chars"] for d in mood],
                                       [[d["label"]] * len(d["probe_chars"]) for d in mood], "mood")
    # also: final '.' only
    fm = run_probes(R, mood, [d["text"] for d in mood], [[d["final_char"]] for d in mood],
                    [[d["label"]] for d in mood], "mood_final")
    summary["probe_mood"]["final_period_only"] = {"acc_by_site": fm["acc_by_site"], "best_site": fm["best_site"],
                                                  "baseline_current_token_embedding": fm["baseline_current_token_embedding"]}
    summary["probe_depth"] = run_probes(R, nest, [d["text"] for d in nest], [[w["char"] for w in d["words"]] for d in nest],
                                        [[w["depth"] for w in d["words"]] for d in nest], "depth")
    s = summary
    summary["targets"] = {
        "ioi_acc>=0.90": s["ioi"]["top1_acc"] >= 0.90,
        "ioi_logit_diff>=2": s["ioi"]["mean_logit_diff"] >= 2.0,
        "induction_second_copy>=0.80": s["induction"]["random_tokens"]["acc_second_copy"] >= 0.80 and s["induction"]["word_runs"]["acc_second_copy"] >= 0.80,
        "induction_head>=0.5": s["heads"]["top_induction"][0]["score"] >= 0.5,
        "prev_token_head>=0.5": s["heads"]["top_prev_token"][0]["score"] >= 0.5,
        "facts>=0.90": s["facts"]["top1_acc"] >= 0.90,
        "mood_probe>=0.95": s["probe_mood"]["best_acc"] >= 0.95,
        "depth_probe>=0.90": s["probe_depth"]["best_acc"] >= 0.90,
    }
    print(f"Mood probe by site: {s['probe_mood']['acc_by_site']} (best {s['probe_mood']['best_site']}); baseline {s['probe_mood']['baseline_current_token_embedding']:.3f}")
    print(f"Depth probe by site: {s['probe_depth']['acc_by_site']} (best {s['probe_depth']['best_site']}); baseline {s['probe_depth']['baseline_current_token_embedding']:.3f}")
    js = json.dumps(summary, indent=1)
    print(js)
    if args.json:
        open(args.json, "w").write(js + "\n")


if __name__ == "__main__":
    main()
