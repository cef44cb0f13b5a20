#!/usr/bin/python3
"""Generate loupe's golden fixtures: tiny random-weight HF checkpoints + expected outputs.

Usage:  /usr/bin/python3 tests/golden/make_fixtures.py [--only NAME[,NAME...]] [--out DIR]

For every fixture this writes, into tests/golden/fixtures/<name>/:
  config.json, generation_config.json, model*.safetensors[, model.safetensors.index.json]
      -- real Hugging Face layout (save_pretrained, then post-processed for quirks)
  inputs.json                 {"ids": [...], "batch": [[16 ids], [9 ids], [13 ids]], "prompt": [5 ids]}
  logits.npy                  float32 [T, vocab] logits for inputs["ids"] (ids used as-is, no BOS)
  batch_logits.safetensors    float32 "b0","b1","b2": [len_i, vocab] logits of each batch row run alone
  greedy.json                 {"prompt": [...], "continuation": [20 greedy ids]}
  expected_cache.safetensors  float32 activations for inputs["ids"], TransformerLens hook names, no batch dim

Expected outputs are computed by transformers in float64 from the weights *as stored*
(i.e. after f16/bf16 rounding: the model is re-loaded from the fixture directory with
from_pretrained) and cast to float32.

The script also proves the fixtures are discriminative: for each fixture it recomputes the
logits with a deliberately wrong variant (erf vs tanh GELU, interleaved vs rotate-half RoPE,
wrong GQA head mapping, ...) and asserts that max|dlogit| / max|logit| exceeds 10x the C test
tolerance (1e-4).
"""
import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import transformers
from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM)
from transformers.activations import GELUActivation, NewGELUActivation
from transformers.models.gpt_neox import modeling_gpt_neox as neox_mod
from transformers.models.llama import modeling_llama as llama_mod

TOL = 1e-4            # C test tolerance: max|dlogit| <= TOL * max|logit|
MARGIN = 10.0         # wrong variants must exceed MARGIN * TOL
N_GREEDY = 20
HERE = os.path.dirname(os.path.abspath(__file__))

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
torch.set_num_threads(1)
# The reference runs in float64. Some HF code paths (e.g. GPT-NeoX's causal mask) build
# tensors with the *default* dtype and fill them with finfo(model dtype).min, so the default
# must be float64 too. Models are still constructed/initialised in float32 (build_model).
torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------------------
# Exact float64 RMSNorm (HF upcasts to float32 internally, which is a no-op in f32 but
# would cap a float64 reference at f32 accuracy).
def _rmsnorm_forward_exact(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


llama_mod.LlamaRMSNorm.forward = _rmsnorm_forward_exact


# --------------------------------------------------------------------------------------
# Fixture specifications
SPECS = {
    "gpt2": dict(arch="gpt2", seed=1001, quirks=False, cfg=dict(
        vocab_size=160, n_positions=64, n_embd=64, n_layer=2, n_head=4,
        activation_function="gelu_new", initializer_range=0.35)),
    "gpt2_quirks": dict(arch="gpt2", seed=1002, quirks=True, cfg=dict(
        vocab_size=160, n_positions=64, n_embd=64, n_layer=2, n_head=4,
        activation_function="gelu_new", initializer_range=0.35)),
    "llama": dict(arch="llama", seed=2001, dtype=None, cfg=dict(
        vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rope_theta=50000.0, rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
        initializer_range=0.35, bos_token_id=1, eos_token_id=2)),
    "llama_tied_bf16": dict(arch="llama", seed=2002, dtype=torch.bfloat16, cfg=dict(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        rope_theta=10000.0, rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=True,
        initializer_range=0.35, bos_token_id=1, eos_token_id=2)),
    "neox": dict(arch="neox", seed=3001, pythia_buffers=True, cfg=dict(
        vocab_size=176, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, rotary_pct=0.25,
        rotary_emb_base=10000, use_parallel_residual=True, hidden_act="gelu",
        tie_word_embeddings=False, initializer_range=0.35, layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=0)),
    "neox_seq": dict(arch="neox", seed=3002, pythia_buffers=False, cfg=dict(
        vocab_size=144, hidden_size=48, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, rotary_pct=0.5,
        rotary_emb_base=10000, use_parallel_residual=False, hidden_act="gelu",
        tie_word_embeddings=False, initializer_range=0.35, layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=0)),
}


def build_model(spec):
    torch.manual_seed(spec["seed"])
    arch, cfg = spec["arch"], dict(spec["cfg"])
    if arch == "gpt2":
        v = cfg["vocab_size"]
        config = GPT2Config(bos_token_id=v - 1, eos_token_id=v - 1, **cfg)
        cls = GPT2LMHeadModel
    elif arch == "llama":
        config = LlamaConfig(**cfg)
        cls = LlamaForCausalLM
    else:
        config = GPTNeoXConfig(**cfg)
        cls = GPTNeoXForCausalLM
    config._attn_implementation = "eager"
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        model = cls(config).eval()
    finally:
        torch.set_default_dtype(prev)
    # Randomise what HF initialises to constants: norm weights and all biases.
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = any(k in name for k in ("ln_", "layernorm", "layer_norm", "norm."))
            if name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif is_norm and p.dim() == 1:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
        # GELU fixtures: erf- and tanh-GELU differ by at most ~4e-4 (at |x|~2.7), i.e. ~1e-4
        # relative for a typical pre-activation spread -- too close to the 1e-4 test tolerance.
        # Push most MLP neurons into the negative tail (bias ~ -2.5, narrower input weights),
        # where the difference is a few % of the output, and scale the output projection up
        # so those neurons matter. This makes the GELU variant visible at ~40x the tolerance.
        if arch in ("gpt2", "neox"):
            blocks = model.transformer.h if arch == "gpt2" else model.gpt_neox.layers
            for b in blocks:
                fc, out = ((b.mlp.c_fc, b.mlp.c_proj) if arch == "gpt2"
                           else (b.mlp.dense_h_to_4h, b.mlp.dense_4h_to_h))
                fc.weight.mul_(0.4)
                fc.bias.copy_(-2.5 + 0.5 * torch.randn(fc.bias.shape, generator=g))
                out.weight.mul_(10.0)
    return model


# --------------------------------------------------------------------------------------
# Writing + quirk post-processing
def _save_st(tensors, path):
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def write_checkpoint(name, spec, model, outdir):
    model.save_pretrained(outdir, safe_serialization=True)
    st_path = os.path.join(outdir, "model.safetensors")
    sd = load_file(st_path)
    cfg_path = os.path.join(outdir, "config.json")
    cfg = json.load(open(cfg_path))
    # Real checkpoints are loaded with attn_implementation chosen at load time.
    cfg.pop("_attn_implementation_autoset", None)
    n_pos = spec["cfg"].get("n_positions", spec["cfg"].get("max_position_embeddings"))

    if spec["arch"] == "gpt2" and spec.get("quirks"):
        # Original hub gpt2 layout: no "transformer." prefix, mask buffers present,
        # float16 weights, sharded into 2 files with an index.
        new = {}
        for k, v in sd.items():
            assert k.startswith("transformer."), k
            new[k[len("transformer."):]] = v.to(torch.float16)
        tril = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.float32)).view(1, 1, n_pos, n_pos)
        for L in range(spec["cfg"]["n_layer"]):
            new[f"h.{L}.attn.bias"] = tril.clone()
            new[f"h.{L}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float32)
        os.remove(st_path)
        keys = sorted(new)
        total = sum(new[k].numel() * new[k].element_size() for k in keys)
        shards, cur, acc = [[], []], 0, 0
        for k in keys:
            if cur == 0 and acc >= total / 2:
                cur = 1
            shards[cur].append(k)
            acc += new[k].numel() * new[k].element_size()
        assert shards[0] and shards[1]
        weight_map = {}
        for i, ks in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-00002.safetensors"
            _save_st({k: new[k] for k in ks}, os.path.join(outdir, fn))
            weight_map.update({k: fn for k in ks})
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
        cfg["torch_dtype"] = "float16"
    elif spec["arch"] == "llama" and spec.get("dtype") is not None:
        _save_st({k: v.to(spec["dtype"]) for k, v in sd.items()}, st_path)
        cfg["torch_dtype"] = str(spec["dtype"]).replace("torch.", "")
    elif spec["arch"] == "neox" and spec.get("pythia_buffers"):
        tril = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool)).view(1, 1, n_pos, n_pos)
        head = spec["cfg"]["hidden_size"] // spec["cfg"]["num_attention_heads"]
        rot = int(head * spec["cfg"]["rotary_pct"])
        base = spec["cfg"]["rotary_emb_base"]
        inv_freq = 1.0 / (base ** (torch.arange(0, rot, 2).float() / rot))
        for L in range(spec["cfg"]["num_hidden_layers"]):
            p = f"gpt_neox.layers.{L}.attention."
            sd[p + "bias"] = tril.clone()
            sd[p + "masked_bias"] = torch.tensor(-1e9, dtype=torch.float32)
            sd[p + "rotary_emb.inv_freq"] = inv_freq.clone()
        _save_st(sd, st_path)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def load_reference(spec, outdir):
    cls = {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "neox": GPTNeoXForCausalLM}[spec["arch"]]
    m = cls.from_pretrained(outdir, torch_dtype=torch.float64, attn_implementation="eager")
    return m.eval()


# --------------------------------------------------------------------------------------
# Reference computations
def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), use_cache=False).logits[0]


def parts(model, arch):
    if arch == "gpt2":
        t = model.transformer
        return [dict(block=b, ln1=b.ln_1, o=b.attn.c_proj, down=b.mlp.c_proj, mlp=b.mlp)
                for b in t.h], t.ln_f
    if arch == "llama":
        t = model.model
        return [dict(block=b, ln1=b.input_layernorm, o=b.self_attn.o_proj, down=b.mlp.down_proj,
                     mlp=b.mlp) for b in t.layers], t.norm
    t = model.gpt_neox
    return [dict(block=b, ln1=b.input_layernorm, o=b.attention.dense, down=b.mlp.dense_4h_to_h,
                 mlp=b.mlp) for b in t.layers], t.final_layer_norm


def run_cache(model, arch, ids):
    """Forward pass on ids capturing TransformerLens-named activations (batch dim dropped)."""
    cfg = model.config
    H = cfg.num_attention_heads
    D = cfg.hidden_size
    Dh = D // H
    T = len(ids)
    cache, handles = {}, []

    def first(x):
        return x[0] if isinstance(x, tuple) else x

    def save(name, t):
        assert t.shape[0] == 1, (name, t.shape)
        cache[name] = t[0].detach().clone()

    layers, ln_f = parts(model, arch)
    for L, p in enumerate(layers):
        pre = f"blocks.{L}."

        def pre_hook(mod, args, pre=pre):
            assert len(args) >= 1, "block called without positional hidden_states"
            save(pre + "hook_resid_pre", args[0])

        handles.append(p["block"].register_forward_pre_hook(pre_hook))
        handles.append(p["block"].register_forward_hook(
            lambda m, a, o, pre=pre: save(pre + "hook_resid_post", first(o))))
        handles.append(p["ln1"].register_forward_hook(
            lambda m, a, o, pre=pre: save(pre + "ln1.hook_normalized", o)))
        handles.append(p["o"].register_forward_hook(
            lambda m, a, o, pre=pre: (save(pre + "attn.hook_z", a[0].reshape(1, T, H, Dh)),
                                      save(pre + "hook_attn_out", o)) and None))
        handles.append(p["down"].register_forward_hook(
            lambda m, a, o, pre=pre: save(pre + "mlp.hook_post", a[0])))
        handles.append(p["mlp"].register_forward_hook(
            lambda m, a, o, pre=pre: save(pre + "hook_mlp_out", o)))
    handles.append(ln_f.register_forward_hook(lambda m, a, o: save("ln_final.hook_normalized", o)))

    rot_calls = []
    orig_apply = llama_mod.apply_rotary_pos_emb
    if arch == "llama":
        def rec_apply(*a, **k):
            q, kk = orig_apply(*a, **k)
            rot_calls.append((q, kk))
            return q, kk
        llama_mod.apply_rotary_pos_emb = rec_apply
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True, use_cache=False)
    finally:
        llama_mod.apply_rotary_pos_emb = orig_apply
        for h in handles:
            h.remove()
    for L, a in enumerate(out.attentions):
        save(f"blocks.{L}.attn.hook_pattern", a)
    if arch == "llama":
        assert len(rot_calls) == cfg.num_hidden_layers
        for L, (q, k) in enumerate(rot_calls):
            save(f"blocks.{L}.attn.hook_rot_q", q.transpose(1, 2))  # [1,T,H,Dh]
            save(f"blocks.{L}.attn.hook_rot_k", k.transpose(1, 2))  # [1,T,Hkv,Dh]
    # Internal consistency checks.
    nl = cfg.num_hidden_layers
    for L in range(nl):
        p = f"blocks.{L}."
        if L + 1 < nl:
            assert torch.equal(cache[p + "hook_resid_post"], cache[f"blocks.{L + 1}.hook_resid_pre"])
        s = cache[p + "hook_resid_pre"] + cache[p + "hook_attn_out"] + cache[p + "hook_mlp_out"]
        assert torch.allclose(s, cache[p + "hook_resid_post"], rtol=1e-9, atol=1e-9), p
        assert cache[p + "attn.hook_pattern"].shape == (H, T, T)
    return out.logits[0], cache


def greedy(model, prompt, n=N_GREEDY):
    """Manual full-recompute greedy loop; returns continuation and the smallest
    relative top-1/top-2 gap seen (to reject near-ties)."""
    seq, gaps = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1]
            top = torch.topk(lg, 2).values
            gaps.append(float((top[0] - top[1]) / lg.abs().max()))
            seq.append(int(lg.argmax()))
    return seq[len(prompt):], min(gaps)


def greedy_generate(model, prompt, n=N_GREEDY):
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                             pad_token_id=0, num_beams=1)
    return out[0, len(prompt):].tolist()


# --------------------------------------------------------------------------------------
# Deliberately wrong variants
def _rotate_every_two(x):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def _interleave_cs(c):
    h = c.shape[-1] // 2
    return c[..., :h].repeat_interleave(2, dim=-1)


def _llama_apply_interleaved(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
    cos = _interleave_cs(cos).unsqueeze(unsqueeze_dim)
    sin = _interleave_cs(sin).unsqueeze(unsqueeze_dim)
    return q * cos + _rotate_every_two(q) * sin, k * cos + _rotate_every_two(k) * sin


def _neox_apply_interleaved(q, k, cos, sin, position_ids, unsqueeze_dim=1):
    cos = _interleave_cs(cos[position_ids]).unsqueeze(unsqueeze_dim)
    sin = _interleave_cs(sin[position_ids]).unsqueeze(unsqueeze_dim)
    return q * cos + _rotate_every_two(q) * sin, k * cos + _rotate_every_two(k) * sin


def _repeat_kv_tiled(x, n_rep):
    # wrong GQA mapping: query head h -> kv head (h % n_kv) instead of h // n_rep
    return x if n_rep == 1 else x.repeat(1, n_rep, 1, 1)


def wrong_variants(arch, model):
    """Yield (label, callable(ids)->logits) for deliberately wrong implementations."""
    cfg = model.config

    def swap_act(new_act):
        m = copy.deepcopy(model)
        blocks = m.transformer.h if arch == "gpt2" else m.gpt_neox.layers
        for b in blocks:
            b.mlp.act = new_act()
        return lambda ids: logits_of(m, ids)

    def patched(mod, attr, fn):
        def run(ids):
            orig = getattr(mod, attr)
            setattr(mod, attr, fn)
            try:
                return logits_of(model, ids)
            finally:
                setattr(mod, attr, orig)
        return run

    if arch == "gpt2":
        yield "erf-GELU instead of tanh-GELU (gelu_new)", swap_act(GELUActivation)
    elif arch == "neox":
        yield "tanh-GELU instead of erf-GELU", swap_act(NewGELUActivation)
        yield "interleaved RoPE instead of rotate-half", patched(neox_mod, "apply_rotary_pos_emb",
                                                                 _neox_apply_interleaved)
        m2 = copy.deepcopy(model)
        for b in m2.gpt_neox.layers:
            b.use_parallel_residual = not b.use_parallel_residual
        yield ("sequential residual instead of parallel" if cfg.use_parallel_residual
               else "parallel residual instead of sequential"), lambda ids: logits_of(m2, ids)
        m3 = copy.deepcopy(model)
        head = cfg.hidden_size // cfg.num_attention_heads
        for b in m3.gpt_neox.layers:
            b.attention.rotary_ndims = head
            b.attention.rotary_emb = neox_mod.GPTNeoXRotaryEmbedding(
                head, cfg.max_position_embeddings, base=cfg.rotary_emb_base).double()
        yield "full rotary instead of rotary_pct", lambda ids: logits_of(m3, ids)
    elif arch == "llama":
        yield "interleaved RoPE instead of rotate-half", patched(llama_mod, "apply_rotary_pos_emb",
                                                                 _llama_apply_interleaved)
        yield "GQA kv head h % n_kv instead of h // group", patched(llama_mod, "repeat_kv",
                                                                      _repeat_kv_tiled)
        m4 = copy.deepcopy(model)
        for b in m4.model.layers:
            b.mlp.act_fn = torch.nn.GELU()
        yield "GELU instead of SiLU", lambda ids: logits_of(m4, ids)


def rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


# --------------------------------------------------------------------------------------
def make_fixture(name, spec, root):
    outdir = os.path.join(root, name)
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    arch = spec["arch"]
    model = build_model(spec)
    write_checkpoint(name, spec, model, outdir)

    ref = load_reference(spec, outdir)
    # The stored weights must load without anything missing (buffers may be "unexpected").
    V = ref.config.vocab_size

    rng = np.random.default_rng(spec["seed"])
    ids = rng.integers(0, V, size=14).tolist()
    batch = [rng.integers(0, V, size=n).tolist() for n in (16, 9, 13)]

    # Prompt: pick the first candidate whose greedy continuation has no near-ties.
    for attempt in range(50):
        prompt = rng.integers(0, V, size=5).tolist()
        cont, gap = greedy(ref, prompt)
        if gap > MARGIN * TOL:
            break
    else:
        raise RuntimeError(f"{name}: no prompt without near-tie greedy steps")
    gen = greedy_generate(ref, prompt)
    assert gen == cont, (name, gen, cont)

    logits, cache = run_cache(ref, arch, ids)
    plain = logits_of(ref, ids)
    assert rel_diff(plain, logits) < 1e-12

    # float32 model loaded the ordinary way must agree with the float64 reference.
    cls = type(ref)
    m32 = cls.from_pretrained(outdir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    r32 = rel_diff(logits_of(m32, ids).double(), logits)
    assert r32 < TOL / 10, (name, "f32 vs f64", r32)

    margins = []
    for label, fn in wrong_variants(arch, ref):
        r = rel_diff(fn(ids), logits)
        margins.append((label, r))
        assert r > MARGIN * TOL, f"{name}: wrong variant '{label}' only differs by {r:.3g}"

    with open(os.path.join(outdir, "inputs.json"), "w") as f:
        json.dump({"ids": ids, "batch": batch, "prompt": prompt}, f)
        f.write("\n")
    np.save(os.path.join(outdir, "logits.npy"), logits.float().numpy())
    bl = {f"b{i}": logits_of(ref, b).float() for i, b in enumerate(batch)}
    _save_st(bl, os.path.join(outdir, "batch_logits.safetensors"))
    with open(os.path.join(outdir, "greedy.json"), "w") as f:
        json.dump({"prompt": prompt, "continuation": cont}, f)
        f.write("\n")
    _save_st({k: v.float() for k, v in sorted(cache.items())},
             os.path.join(outdir, "expected_cache.safetensors"))

    size = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print(f"[{name}] {size / 1024:.0f} KiB  max|logit|={float(logits.abs().max()):.3g}  "
          f"f32-vs-f64 rel={r32:.2e}  greedy min gap={gap:.2e}")
    for label, r in margins:
        print(f"    wrong variant: {label:45s} rel diff {r:.3e}  = {r / TOL:8.1f} x tol")
    return size, margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    args = ap.parse_args()
    names = [n for n in SPECS if not args.only or n in args.only.split(",")]
    print(f"torch {torch.__version__}  transformers {transformers.__version__}  numpy {np.__version__}")
    total = 0
    for n in names:
        s, _ = make_fixture(n, SPECS[n], args.out)
        total += s
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
