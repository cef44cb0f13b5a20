#!/usr/bin/python3
"""loupe forward-pass benchmark driver: runs loupe's C benchmark and the PyTorch eager
reference on the same GPT-2-small-shaped random-weight model in one go and prints the
figures side by side, with ratios to the sgemm peak measured in the same run.

  /usr/bin/python3 bench/forward.py [--build build] [--model-dir /tmp/loupe-gpt2-small]
                                    [--tokens 128,512,1024] [--reps 5] [--threads 2] [--no-torch]

OPENBLAS_CORETYPE is removed from the environment of both so each picks its best kernels
(the core actually used is reported). Cold start is timed as `loupe logits --ids 1` wall
time, median of 5.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def env_clean(threads):
    e = dict(os.environ)
    e.pop("OPENBLAS_CORETYPE", None)
    e["OPENBLAS_NUM_THREADS"] = str(threads)
    e["OMP_NUM_THREADS"] = str(threads)
    e["LOUPE_THREADS"] = str(threads)
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model-dir", default="/tmp/loupe-gpt2-small")
    ap.add_argument("--tokens", default="128,512,1024")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    env = env_clean(a.threads)
    if not os.path.exists(os.path.join(a.model_dir, "model.safetensors")):
        print(f"making a GPT-2-small-shaped random model in {a.model_dir} ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(HERE, "torch_reference.py"), "--make-model", a.model_dir,
                        "--tokens", "1", "--reps", "1", "--json"], check=True, env=env, stdout=subprocess.DEVNULL)
    out = subprocess.run([os.path.join(a.build, "bench", "bench_forward"), a.model_dir, "--tokens", a.tokens,
                          "--reps", str(a.reps), "--threads", str(a.threads)],
                         check=True, env=env, capture_output=True, text=True).stdout
    lp = json.loads(out)
    cold = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([os.path.join(a.build, "loupe"), "logits", a.model_dir, "--ids", "1", "-o", os.path.join(tempfile.gettempdir(), "loupe-bench-cold.npy")],
                       check=True, env=env)
        cold.append(time.perf_counter() - t0)
    tr = None
    if not a.no_torch:
        r = subprocess.run([sys.executable, os.path.join(HERE, "torch_reference.py"), "--model-dir", a.model_dir,
                            "--tokens", a.tokens, "--reps", str(max(3, a.reps // 2)), "--threads", str(a.threads),
                            "--json"], env=env, capture_output=True, text=True)
        if r.returncode == 0:
            tr = json.loads(r.stdout)
        else:
            print("torch reference failed:\n" + r.stderr[-2000:], file=sys.stderr)
    weights_mb = os.path.getsize(os.path.join(a.model_dir, "model.safetensors")) / 2**20
    print(f"loupe forward benchmark — {lp['blas']}")
    print(f"model: GPT-2-small shape, {lp['n_params']/1e6:.1f}M params, weights file {weights_mb:.0f} MiB, "
          f"{a.threads} threads")
    if tr:
        print(f"torch {tr['torch_version']} eager, OpenBLAS core {tr['openblas_core']}")
    print(f"cold start (process start → first logits, 1 token): median {statistics.median(cold)*1e3:.0f} ms"
          f"  [target ≤ 300 ms]")
    tref = {r["tokens"]: r for r in (tr["results"] if tr else [])}
    for res in lp["results"]:
        T = res["tokens"]
        peak = max(res["sgemm_gflops"].values())
        runs = {r["mode"]: r for r in res["runs"]}
        print(f"\n{T} tokens — sgemm at these shapes: " +
              ", ".join(f"{k} {v:.0f}" for k, v in res["sgemm_gflops"].items()) + f" GFLOP/s (peak {peak:.0f})")
        print(f"  {'configuration':<22}{'loupe s':>9}{'tok/s':>9}{'GFLOP/s':>9}{'% peak':>8}"
              f"{'torch s':>9}{'speedup':>9}{'peak RSS':>10}{'torch RSS':>10}")
        logits_mb = T * 50257 * 4 / 2**20
        for mode, key, tkey, rkey, fl in [("all", "all logits", "all_logits_s", "peak_rss_mb_uncached", res["flops_all"]),
                                           ("last", "last logits", "last_logits_s", "peak_rss_mb_uncached", res["flops_last"]),
                                           ("cache_full", "full cache (+all)", "cached_s", "peak_rss_mb_cached", res["flops_all"]),
                                           ("cache_one", "one-hook cache (+all)", None, None, res["flops_all"])]:
            r = runs.get(mode)
            if not r:
                continue
            s = r["median_s"]
            g = fl / s / 1e9
            t = tref.get(T, {}).get(tkey) if tkey else None
            trss = tref.get(T, {}).get(rkey) if rkey else None
            print(f"  {key:<22}{s:>9.3f}{T/s:>9.0f}{g:>9.0f}{100*g/peak:>7.0f}%"
                  f"{(f'{t:.3f}' if t else '-'):>9}{(f'{t/s:.2f}x' if t else '-'):>9}"
                  f"{r['peak_rss_mb']:>9.0f}M{(f'{trss:.0f}M' if trss else '-'):>10}")
        a_ = runs.get("all")
        c_ = runs.get("cache_full")
        if a_ and c_:
            print(f"  full cache: {c_['cache_mb']:.0f} MiB cached; time {c_['median_s']/a_['median_s']:.2f}x uncached "
                  f"[target ≤ 1.1x]; RSS over uncached {c_['peak_rss_mb']-a_['peak_rss_mb']:.0f} MiB")
        if a_:
            lim = 1.15 * weights_mb + logits_mb
            print(f"  uncached peak RSS {a_['peak_rss_mb']:.0f} MiB vs 1.15 × weights + logits = {lim:.0f} MiB "
                  f"[{'ok' if a_['peak_rss_mb'] <= lim else 'OVER'}]")


if __name__ == "__main__":
    main()
