#!/usr/bin/python3
"""Initial weights for the bundled toy model with two mechanisms planted by hand.

Induction heads form only after a long plateau when a small GPT-2 is trained from random
weights (on this 2-core machine the plateau outlasted an hour of training), so the toy
model starts from weights in which the circuit already exists, and training on the
corpus then keeps, sharpens and builds on it (IOI name movers, fact recall, the mood and
depth features are learned, not planted). The planted circuit is the textbook one:

  residual layout: dims [0, 24) position (12 sinusoid pairs), [24, 108) token identity,
                   [108, 192) "previous token" (written by layer 0)
  layer 0, heads 0-3: previous-token heads. Query = position p, key = position j rotated
                   one step forward, so q_p . k_j peaks at j = p - 1; the value is the
                   token part of x_j, written by W_O into the previous-token dims.
  layer 1, heads 0-3: induction heads. Query = the current token, key = the previous-token
                   dims (K-composition with layer 0), each head through its own random
                   projection; the value copies the attended token back into the token
                   dims with gain beta, so the tied unembedding predicts it.

Everything else (layers 2-3, the MLPs, the other heads) starts from GPT-2's usual random
initialisation. Usage:
  /usr/bin/python3 tools/toy/plant.py OUT_DIR [--seed S]   (writes an HF GPT-2 folder)
"""
import argparse
import math
import sys

import torch


def plant(m, seed=0, amp_pos=1.0, tok_norm=1.0, c_prev=3.0, c_ind=4.0, beta=3.0, n_prev=4, n_ind=4):
    cfg = m.config
    d, H, T, V = cfg.n_embd, cfg.n_head, cfg.n_positions, cfg.vocab_size
    dh = d // H
    g = torch.Generator().manual_seed(seed)
    P = 24
    NT = (d - P) // 2
    tok, prv = slice(P, P + NT), slice(P + NT, P + 2 * NT)
    pairs = P // 2
    om = torch.tensor([math.pi / 2 * (0.7 ** i) for i in range(pairs)])
    pos = torch.arange(T).float()[:, None]
    pe = torch.zeros(T, d)
    pe[:, 0:P:2] = torch.sin(om * pos)
    pe[:, 1:P:2] = torch.cos(om * pos)
    R = torch.zeros(P, P)  # pe_{j+1} = R pe_j
    for i in range(pairs):
        co, si = math.cos(om[i]), math.sin(om[i])
        R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[co, si], [-si, co]])
    E = torch.randn(V, NT, generator=g)
    E = E / E.norm(dim=1, keepdim=True) * tok_norm
    per = math.ceil(NT / n_prev)
    with torch.no_grad():
        wte = torch.zeros(V, d)
        wte[:, tok] = E
        m.transformer.wte.weight.copy_(wte)
        m.transformer.wpe.weight.copy_(pe * amp_pos / math.sqrt(pairs))
        sig = math.sqrt((tok_norm ** 2 + amp_pos ** 2) / d)  # LayerNorm's divisor at layer 0

        a0 = m.transformer.h[0].attn
        W, b, Wo = a0.c_attn.weight, a0.c_attn.bias, a0.c_proj.weight  # Conv1D: x @ W
        for h in range(n_prev):
            q, k, v = (slice(s * d + h * dh, s * d + (h + 1) * dh) for s in range(3))
            for sl in (q, k, v):
                W[:, sl] = 0
                b[sl] = 0
            W[0:P, h * dh:h * dh + P] = torch.eye(P) * c_prev
            W[0:P, d + h * dh:d + h * dh + P] = R.T * c_prev
            lo, hi = h * per, min(NT, (h + 1) * per)
            n = hi - lo
            W[P + lo:P + hi, 2 * d + h * dh:2 * d + h * dh + n] = torch.eye(n) * sig
            Wo[h * dh:(h + 1) * dh, :] = 0
            Wo[h * dh:h * dh + n, P + NT + lo:P + NT + hi] = torch.eye(n)

        a1 = m.transformer.h[1].attn
        W, b, Wo = a1.c_attn.weight, a1.c_attn.bias, a1.c_proj.weight
        Q = torch.linalg.qr(torch.randn(NT, NT, generator=g))[0]
        for h in range(n_ind):
            q, k, v = (slice(s * d + h * dh, s * d + (h + 1) * dh) for s in range(3))
            for sl in (q, k, v):
                W[:, sl] = 0
                b[sl] = 0
            A = torch.randn(NT, dh, generator=g) / math.sqrt(dh)
            W[tok, h * dh:(h + 1) * dh] = A * c_ind
            W[prv, d + h * dh:d + (h + 1) * dh] = A * c_ind
            lo, hi = h * per, min(NT, (h + 1) * per)
            n = hi - lo
            B = Q[:, lo:hi]
            W[tok, 2 * d + h * dh:2 * d + h * dh + n] = B
            Wo[h * dh:(h + 1) * dh, :] = 0
            Wo[h * dh:h * dh + n, tok] = B.T * beta


def main():
    from transformers import GPT2Config, GPT2LMHeadModel
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=2229)
    ap.add_argument("--ctx", type=int, default=128)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    cfg = GPT2Config(vocab_size=a.vocab, n_positions=a.ctx, n_ctx=a.ctx, n_embd=192, n_layer=4, n_head=8,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    m = GPT2LMHeadModel(cfg)
    plant(m, seed=a.seed)
    m.save_pretrained(a.out, safe_serialization=True)
    print(f"planted init written to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
