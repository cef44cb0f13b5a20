#!/usr/bin/python3
"""PyTorch eager (Hugging Face transformers) reference timings for loupe's benchmark.

Usage:
  /usr/bin/python3 bench/torch_reference.py --model-dir DIR [--make-model DIR]
        [--tokens 128,512,1024] [--threads 2] [--reps 3] [--json]

--make-model DIR  first create a GPT-2-small-shaped random-weight model
                  (GPT2LMHeadModel(GPT2Config()), seed 0; f32 config.json + model.safetensors)
                  in DIR unless it is already there; --model-dir defaults to it.

For each token count T (random ids, fixed seed) and each configuration, a fresh subprocess
loads the model, sets the thread count, warms up once, then reports the median of --reps
timed runs under torch.inference_mode():
  all_logits_s   model(ids).logits, logits for every position
  last_logits_s  model.transformer(ids) then lm_head on the last hidden state only
  cached_s       all logits + TransformerLens-style cache: forward hooks on every submodule
                 that corresponds to a TL hook point .clone() the activation into a dict,
                 attention probabilities via output_attentions=True
Memory: each worker resets its peak-RSS counter (VmHWM, via /proc/self/clear_refs) after the
model is loaded, so peak_rss_mb_* is the process peak during that configuration's runs
(model weights included) and *_extra_mb is that peak minus the RSS right after loading.
Falls back to ru_maxrss (then including load-time peaks) if the reset is not permitted.

The environment's OPENBLAS_CORETYPE (which forces a kernel family, e.g. Haswell) is reported
as "openblas_coretype_env"; "openblas_core" is what the loaded libopenblas actually uses.
"""
import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VOCAB = 50257
SEED = 0


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Helpers usable in workers
def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(reset_ok):
    if reset_ok:
        v = rss_kib("VmHWM")
        if v is not None:
            return v / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def openblas_libs():
    """Paths of mapped shared objects that export openblas_get_corename."""
    paths = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[-1] and "blas" in parts[-1].lower():
                if parts[-1] not in paths:
                    paths.append(parts[-1])
    found = []
    for p in sorted(paths, key=lambda p: "openblas" not in os.path.basename(p).lower()):
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename  # noqa: B018 (raises AttributeError if absent)
            found.append((p, lib))
        except (OSError, AttributeError):
            pass
    return found


def openblas_info(threads=None):
    libs = openblas_libs()
    if not libs:
        return {"openblas_core": "unknown", "openblas_lib": None}
    path, lib = libs[0]
    info = {"openblas_lib": path}
    lib.openblas_get_corename.restype = ctypes.c_char_p
    info["openblas_core"] = lib.openblas_get_corename().decode()
    if hasattr(lib, "openblas_get_config"):
        lib.openblas_get_config.restype = ctypes.c_char_p
        info["openblas_config"] = lib.openblas_get_config().decode().strip()
    if threads is not None and hasattr(lib, "openblas_set_num_threads"):
        lib.openblas_set_num_threads(ctypes.c_int(threads))
    if hasattr(lib, "openblas_get_num_threads"):
        lib.openblas_get_num_threads.restype = ctypes.c_int
        info["openblas_num_threads"] = lib.openblas_get_num_threads()
    return info


# ----------------------------------------------------------------------------------------
def make_model(d):
    if os.path.exists(os.path.join(d, "config.json")) and (
            os.path.exists(os.path.join(d, "model.safetensors"))):
        log(f"[torch_reference] model already present in {d}")
        return
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    log(f"[torch_reference] creating GPT-2-small-shaped random model in {d} ...")
    torch.manual_seed(SEED)
    cfg = GPT2Config()  # 12 layers, d_model 768, 12 heads, vocab 50257, n_positions 1024
    model = GPT2LMHeadModel(cfg).eval()
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    log("[torch_reference] done")


def install_tl_hooks(model, cache):
    """Forward hooks cloning activations at TransformerLens hook points (GPT-2)."""
    t = model.transformer
    handles = []

    def out_hook(name):
        def h(mod, args, out):
            cache[name] = (out[0] if isinstance(out, tuple) else out).clone()
        return h

    def in_hook(name):
        def h(mod, args, out):
            cache[name] = args[0].clone()
        return h

    def pre_hook(name):
        def h(mod, args):
            cache[name] = args[0].clone()
        return h

    handles.append(t.wte.register_forward_hook(out_hook("hook_embed")))
    handles.append(t.wpe.register_forward_hook(out_hook("hook_pos_embed")))
    for L, b in enumerate(t.h):
        p = f"blocks.{L}."
        handles += [
            b.register_forward_pre_hook(pre_hook(p + "hook_resid_pre")),
            b.ln_1.register_forward_hook(out_hook(p + "ln1.hook_normalized")),
            b.attn.c_attn.register_forward_hook(out_hook(p + "attn.hook_qkv")),   # hook_q/k/v
            b.attn.c_proj.register_forward_hook(in_hook(p + "attn.hook_z")),
            b.attn.register_forward_hook(out_hook(p + "hook_attn_out")),
            b.ln_2.register_forward_hook(out_hook(p + "ln2.hook_normalized")),
            b.mlp.c_fc.register_forward_hook(out_hook(p + "mlp.hook_pre")),
            b.mlp.act.register_forward_hook(out_hook(p + "mlp.hook_post")),
            b.mlp.register_forward_hook(out_hook(p + "hook_mlp_out")),
            b.register_forward_hook(out_hook(p + "hook_resid_post")),
        ]
    handles.append(t.ln_f.register_forward_hook(out_hook("ln_final.hook_normalized")))
    return handles


def worker(args):
    threads = args.threads
    import torch
    from transformers import GPT2LMHeadModel
    import transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    info = openblas_info(threads)

    model = GPT2LMHeadModel.from_pretrained(args.model_dir, torch_dtype=torch.float32,
                                            attn_implementation="eager").eval()
    T = args.worker_tokens
    g = torch.Generator().manual_seed(SEED + T)
    ids = torch.randint(0, model.config.vocab_size, (1, T), generator=g)
    gc.collect()
    rss_load = rss_kib("VmRSS") / 1024.0

    def bench(fn):
        fn()  # warm-up
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts), ts

    res = {"tokens": T, "rss_after_load_mb": round(rss_load, 1)}
    with torch.inference_mode():
        if args.worker_mode == "uncached":
            def last():
                h = model.transformer(ids, use_cache=False).last_hidden_state
                return model.lm_head(h[:, -1, :])

            def all_():
                return model(ids, use_cache=False).logits

            ok = reset_peak_rss()
            res["last_logits_s"], res["last_logits_runs_s"] = bench(last)
            res["peak_rss_mb_last_logits"] = round(peak_rss_mb(ok), 1)
            gc.collect()
            ok = reset_peak_rss()
            res["all_logits_s"], res["all_logits_runs_s"] = bench(all_)
            res["peak_rss_mb_uncached"] = round(peak_rss_mb(ok), 1)
        else:
            state = {"cache": {}}

            def cached():
                state["cache"] = {}  # drop the previous cache before the next run
                cache = state["cache"]
                handles = install_tl_hooks(model, cache)
                try:
                    out = model(ids, use_cache=False, output_attentions=True)
                finally:
                    for h in handles:
                        h.remove()
                for L, a in enumerate(out.attentions):
                    cache[f"blocks.{L}.attn.hook_pattern"] = a.clone()
                return out.logits

            ok = reset_peak_rss()
            res["cached_s"], res["cached_runs_s"] = bench(cached)
            res["peak_rss_mb_cached"] = round(peak_rss_mb(ok), 1)
            c = state["cache"]
            res["cache_entries"] = len(c)
            res["cache_mb"] = round(sum(v.numel() * v.element_size() for v in c.values()) / 2**20, 1)
    res["peak_rss_reset_ok"] = ok
    res.update(info)
    res["torch_version"] = torch.__version__
    res["transformers_version"] = transformers.__version__
    print(json.dumps(res))


def run_worker(args, T, mode):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(args.threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--worker-tokens", str(T),
           "--model-dir", args.model_dir, "--threads", str(args.threads), "--reps", str(args.reps)]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(p.stderr)
        raise SystemExit(f"worker {mode} T={T} failed (rc={p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir")
    ap.add_argument("--make-model", metavar="DIR")
    ap.add_argument("--tokens", default="128,512,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--worker", choices=["uncached", "cached"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-tokens", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.worker_mode = args.worker
        return worker(args)

    if args.make_model:
        make_model(args.make_model)
        args.model_dir = args.model_dir or args.make_model
    if not args.model_dir:
        ap.error("--model-dir (or --make-model) is required")
    tokens = [int(x) for x in args.tokens.split(",") if x]

    out = {"model_dir": os.path.abspath(args.model_dir),
           "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
           "threads": args.threads, "reps": args.reps, "attn_implementation": "eager",
           "results": []}
    for T in tokens:
        log(f"[torch_reference] T={T} uncached ...")
        u = run_worker(args, T, "uncached")
        log(f"[torch_reference] T={T} cached ...")
        c = run_worker(args, T, "cached")
        for k in ("torch_version", "transformers_version", "openblas_core", "openblas_lib",
                  "openblas_config", "openblas_num_threads"):
            if k in u:
                out.setdefault(k, u[k])
        r = {"tokens": T,
             "all_logits_s": round(u["all_logits_s"], 4),
             "last_logits_s": round(u["last_logits_s"], 4),
             "cached_s": round(c["cached_s"], 4),
             "peak_rss_mb_uncached": u["peak_rss_mb_uncached"],
             "peak_rss_mb_cached": c["peak_rss_mb_cached"],
             "peak_rss_mb_last_logits": u["peak_rss_mb_last_logits"],
             "rss_after_load_mb": u["rss_after_load_mb"],
             "uncached_extra_mb": round(u["peak_rss_mb_uncached"] - u["rss_after_load_mb"], 1),
             "cached_extra_mb": round(c["peak_rss_mb_cached"] - c["rss_after_load_mb"], 1),
             "cache_entries": c["cache_entries"], "cache_mb": c["cache_mb"],
             "peak_rss_reset_ok": bool(u["peak_rss_reset_ok"] and c["peak_rss_reset_ok"])}
        out["results"].append(r)
    # Fixed key order: the documented fields first.
    head = ["torch_version", "openblas_core", "threads", "results"]
    out = {**{k: out[k] for k in head if k in out}, **{k: v for k, v in out.items() if k not in head}}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"torch {out.get('torch_version')}  openblas core {out.get('openblas_core')}  "
              f"threads {out['threads']}  OPENBLAS_CORETYPE={out['openblas_coretype_env']}")
        print(f"{'T':>6} {'all_logits':>11} {'last_logits':>12} {'cached':>9} {'rss_unc':>9} {'rss_cache':>10}")
        for r in out["results"]:
            print(f"{r['tokens']:>6} {r['all_logits_s']:>10.3f}s {r['last_logits_s']:>11.3f}s "
                  f"{r['cached_s']:>8.3f}s {r['peak_rss_mb_uncached']:>7.0f}MB {r['peak_rss_mb_cached']:>8.0f}MB")


if __name__ == "__main__":
    main()
