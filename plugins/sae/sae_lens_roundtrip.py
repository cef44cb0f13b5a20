#!/usr/bin/env python3
"""Interoperability with the sae_lens package (PyPI), both directions, every architecture:

  1. an SAE made and saved by sae_lens (SAE.save_model) loads in loupe (sae_tool) and
     encodes identically (max |diff| reported; tolerance 1e-5 relative);
  2. loupe re-saves it (sae_tool resave → cfg.json + sae_weights.safetensors in the 6.x
     layout) and sae_lens loads that (SAE.load_from_disk) with identical encodings;
  3. the older flat config (hook_point, activation_fn_str, activation_fn_kwargs.k, boolean
     normalize_activations) loads in both with identical encodings;
  4. an SAE trained by loupe (optional argument) loads in sae_lens.

Usage: sae_lens_roundtrip.py SAE_TOOL TMPDIR [LOUPE_TRAINED_SAE_DIR]
Exit 77 (skip) when sae_lens cannot be imported.

sae_lens 6.x imports training and dataset modules we do not use (datasets, pandas, plotly…);
where those are missing they are stubbed, and torch < 2.1 gets the two things sae_lens
expects of it (the LRScheduler name, load_state_dict(assign=True): parameters replaced by the
loaded tensors). The SAE classes, save_model and load_from_disk run unmodified."""
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
from unittest import mock

STUB = {"pandas", "datasets", "multiprocess", "plotly", "plotly_express", "babe", "nltk", "wandb", "pyarrow",
        "zstandard"}


class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in STUB:
            try:  # use the real module when it is installed
                if top == name and importlib.machinery.PathFinder.find_spec(name) is not None:
                    return None
            except Exception:
                pass
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = mock.MagicMock(name=spec.name)
        m.__path__ = []
        m.__spec__ = spec
        return m

    def exec_module(self, m):
        pass


def _shim_torch(torch):
    """torch < 2.1: the LRScheduler name and load_state_dict(assign=True) that sae_lens uses."""
    if not hasattr(torch.optim.lr_scheduler, "LRScheduler"):
        torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler._LRScheduler
    import inspect
    orig = torch.nn.Module.load_state_dict
    if "assign" in inspect.signature(orig).parameters:
        return

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if not assign:
            return orig(self, state_dict, strict)
        own = dict(self.named_parameters())
        if strict and set(own) != set(state_dict):
            raise RuntimeError(f"state dict keys {sorted(state_dict)} != parameters {sorted(own)}")
        for k, v in state_dict.items():
            mod, leaf = self, k
            if "." in k:
                path, leaf = k.rsplit(".", 1)
                mod = self.get_submodule(path)
            old = getattr(mod, leaf, None)
            setattr(mod, leaf, torch.nn.Parameter(v, requires_grad=getattr(old, "requires_grad", True)))
        return None

    torch.nn.Module.load_state_dict = load_state_dict


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    tool, tmp = sys.argv[1], sys.argv[2]
    trained = sys.argv[3] if len(sys.argv) > 3 else None
    sys.meta_path.insert(0, _Stub())
    try:
        import numpy as np
        import torch
        _shim_torch(torch)
        import sae_lens
        from sae_lens import (SAE, GatedSAE, GatedSAEConfig, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE,
                              StandardSAEConfig, TopKSAE, TopKSAEConfig)
        from sae_lens.saes.sae import SAEMetadata
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: sae_lens not importable here ({type(e).__name__}: {e})")
        return 77
    print(f"# sae_lens {sae_lens.__version__}, torch {torch.__version__}")
    torch.manual_seed(0)
    fails = 0

    def check(cond, msg):
        nonlocal fails
        print(("ok   " if cond else "FAIL ") + msg)
        fails += not cond

    def loupe_encode(path, x):
        xin, out = os.path.join(tmp, "x.npy"), os.path.join(tmp, "f.npy")
        np.save(xin, x.astype(np.float32))
        r = subprocess.run([tool, "encode", path, xin, out], capture_output=True, text=True)
        if r.returncode:
            print("# sae_tool:", r.stderr.strip())
            return None
        return np.load(out)

    def compare(a, b):
        if a is None or b is None or a.shape != b.shape:
            return float("inf"), 0
        return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)), int((b != 0).sum())

    d_in, d_sae, n = 48, 192, 64
    md = dict(hook_name="blocks.3.hook_resid_pre", model_name="toy", prepend_bos=True, context_size=128)
    cases = {
        "standard": (StandardSAE, StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(**md))),
        "topk": (TopKSAE, TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=12, metadata=SAEMetadata(**md))),
        "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False,
                                                    metadata=SAEMetadata(**md))),
        "gated": (GatedSAE, GatedSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(**md))),
    }
    x = torch.randn(n, d_in) * 2
    for name, (cls, cfg) in cases.items():
        sae = cls(cfg)
        with torch.no_grad():  # non-trivial biases so every term matters
            for pn, p in sae.named_parameters():
                if pn == "threshold":
                    p.copy_(torch.rand_like(p) * 0.5)
                elif pn.startswith("b_") or pn == "r_mag":
                    p.copy_(torch.randn_like(p) * 0.3)
        d1 = os.path.join(tmp, f"from_saelens_{name}")
        sae.save_model(d1)
        with torch.no_grad():
            ref = sae.encode(x).numpy()
        err, nz = compare(loupe_encode(d1, x.numpy()), ref)
        check(err < 1e-5 and nz > 0, f"[{name}] saved by sae_lens, encoded by loupe: max rel diff {err:.2g} "
                                     f"({nz} active)")
        d2 = os.path.join(tmp, f"from_loupe_{name}")
        r = subprocess.run([tool, "resave", d1, d2], capture_output=True, text=True)
        check(r.returncode == 0, f"[{name}] loupe re-saves it ({r.stderr.strip() or 'ok'})")
        try:
            back = SAE.load_from_disk(d2)
            with torch.no_grad():
                f2 = back.encode(x).numpy()
            err2, _ = compare(f2, ref)
            check(type(back).__name__ == type(sae).__name__ and err2 == 0.0,
                  f"[{name}] saved by loupe, loaded by sae_lens as {type(back).__name__}: identical encodings "
                  f"(max rel diff {err2:.2g})")
        except Exception as e:  # noqa: BLE001
            check(False, f"[{name}] sae_lens loads loupe's folder: {type(e).__name__}: {e}")

    # the older flat config
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=7, metadata=SAEMetadata(**md)))
    d3 = os.path.join(tmp, "old_flat_topk")
    sae.save_model(d3)
    old = {"d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu", "model_name": "toy",
           "hook_point": "blocks.3.hook_resid_pre", "hook_point_layer": 3, "hook_point_head_index": None,
           "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 7}, "apply_b_dec_to_input": True,
           "finetuning_scaling_factor": False, "context_size": 128, "prepend_bos": True,
           "normalize_activations": False, "sae_lens_training_version": "3.0.0"}
    with open(os.path.join(d3, "cfg.json"), "w") as f:
        json.dump(old, f)
    try:
        back = SAE.load_from_disk(d3)
        with torch.no_grad():
            ref = back.encode(x).numpy()
        err, nz = compare(loupe_encode(d3, x.numpy()), ref)
        check(err < 1e-5 and nz == n * 7, f"[flat config] topk k=7 from activation_fn_kwargs: loupe matches sae_lens "
                                          f"(max rel diff {err:.2g})")
    except Exception as e:  # noqa: BLE001
        check(False, f"[flat config] {type(e).__name__}: {e}")

    # Gemma Scope params.npz (JumpReLU, no b_dec subtraction), stored and deflated
    rng = np.random.default_rng(0)
    p = {"W_enc": rng.normal(size=(d_in, d_sae)).astype(np.float32) * 0.3,
         "W_dec": rng.normal(size=(d_sae, d_in)).astype(np.float32) * 0.3,
         "b_enc": rng.normal(size=(d_sae,)).astype(np.float32) * 0.3,
         "b_dec": rng.normal(size=(d_in,)).astype(np.float32) * 0.3,
         "threshold": rng.uniform(0, 0.5, size=(d_sae,)).astype(np.float32)}
    xn = x.numpy()
    pre = xn @ p["W_enc"] + p["b_enc"]
    ref = np.where(pre > p["threshold"], np.maximum(pre, 0), 0).astype(np.float32)
    for kind, save in (("stored", np.savez), ("deflated", np.savez_compressed)):
        d4 = os.path.join(tmp, f"gemmascope_{kind}")
        os.makedirs(d4, exist_ok=True)
        save(os.path.join(d4, "params.npz"), **p)
        err, nz = compare(loupe_encode(d4, xn), ref)
        check(err < 1e-5 and nz > 0, f"[gemma scope params.npz, {kind}] loupe's JumpReLU encoding matches "
                                     f"(max rel diff {err:.2g}, {nz} active)")

    if trained:
        try:
            back = SAE.load_from_disk(trained)
            xt = torch.randn(n, back.cfg.d_in)
            with torch.no_grad():
                ref = back.encode(xt).numpy()
            err, nz = compare(loupe_encode(trained, xt.numpy()), ref)
            check(err < 1e-5, f"[trained by loupe] {trained}: sae_lens loads it as {type(back).__name__}, encodings "
                              f"match (max rel diff {err:.2g}, {nz} active)")
        except Exception as e:  # noqa: BLE001
            check(False, f"[trained by loupe] {type(e).__name__}: {e}")
    print(f"{'FAILED' if fails else 'all passed'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
