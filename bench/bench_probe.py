#!/usr/bin/python3
"""Probe benchmarks (bench/README.md), C and scikit-learn in the same run.

1. Fitting one L2 logistic probe on 10k x 768 features (a planted linear concept in
   correlated Gaussian features, seeded): scikit-learn's LogisticRegression(lbfgs, same C)
   on StandardScaler'd features vs bench_probe fit (probe's numerics: standardisation +
   L-BFGS on OpenBLAS sgemm). Best of 3 each. Both solutions are scored on the same
   objective in float64 (0.5 ||w||^2 + C sum log-loss), with train accuracy and the cosine
   between the two weight vectors, so the speed is compared at equal quality.
2. A layer sweep (probe.sweep: activation gathering + one probe per block + the embedding
   baseline) over every layer of the bundled toy model with >= 10k examples
   (nesting.jsonl's words), when models/toy is there.

Usage: ninja -C build && /usr/bin/python3 bench/bench_probe.py [--n 10000] [--d 768] [--c 1.0]
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def objective(w, b, Z, y, C):
    z = Z @ w + b
    loss = np.logaddexp(0, z) - y * z
    return 0.5 * w @ w + C * loss.sum()


def bench_fit(a, build):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    n, d = a.n, a.d
    A = rng.normal(size=(d, d)).astype(np.float32) / np.sqrt(d)
    y = rng.integers(0, 2, size=n)
    mu = rng.normal(size=d).astype(np.float32) * 0.03
    X = (rng.normal(size=(n, d)).astype(np.float32) @ A + np.outer(y, mu) + 1.0).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        xp, yp, wp = (os.path.join(tmp, f) for f in ("X.f32", "y.i32", "w.f32"))
        X.tofile(xp)
        y.astype(np.int32).tofile(yp)
        r = subprocess.run([os.path.join(build, "bench", "bench_probe"), "fit", xp, yp, str(n), str(d), str(a.c), wp],
                           capture_output=True, text=True, check=True)
        c_res = json.loads(r.stdout)
        wb = np.fromfile(wp, dtype=np.float32)
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        sc = StandardScaler().fit(X)
        Z = sc.transform(X)
        clf = LogisticRegression(C=a.c, solver="lbfgs", max_iter=1000).fit(Z, y)
        best = min(best, time.perf_counter() - t0)
    Z = StandardScaler().fit(X.astype(np.float64)).transform(X.astype(np.float64))
    w_c, b_c = wb[:d].astype(np.float64), float(wb[d])
    w_s, b_s = clf.coef_[0], float(clf.intercept_[0])
    f_c, f_s = objective(w_c, b_c, Z, y, a.c), objective(w_s, b_s, Z, y, a.c)
    cos = float(w_c @ w_s / np.linalg.norm(w_c) / np.linalg.norm(w_s))
    acc_s = float((clf.predict(Z) == y).mean())
    print(f"logistic probe, {n} x {d} features, C={a.c} (best of 3)")
    print(f"  {'':14s} {'seconds':>8s} {'iters':>6s} {'train acc':>9s} {'objective':>12s}")
    print(f"  {'loupe probe':14s} {c_res['seconds']:8.3f} {c_res['iterations']:6d} {c_res['train_accuracy']:9.4f} {f_c:12.4f}")
    print(f"  {'scikit-learn':14s} {best:8.3f} {int(clf.n_iter_[0]):6d} {acc_s:9.4f} {f_s:12.4f}")
    print(f"  speed-up {best / c_res['seconds']:.2f}x; weight cosine {cos:.6f}; objective difference "
          f"{(f_c - f_s) / abs(f_s) * 100:+.4f}%")
    return dict(loupe_s=c_res["seconds"], sklearn_s=best, cosine=cos, objective_loupe=f_c, objective_sklearn=f_s)


def bench_sweep(build):
    toy = os.path.join(ROOT, "models", "toy")
    ev = next((p for p in (os.path.join(toy, "eval"), os.path.join(toy, "data", "eval"))
               if os.path.exists(os.path.join(p, "nesting.jsonl"))), None)
    if not os.path.exists(os.path.join(toy, "config.json")) or not ev:
        print("layer sweep: models/toy not there, skipped")
        return None
    n = sum(len(json.loads(l)["words"]) for l in open(os.path.join(ev, "nesting.jsonl")))
    plugin = os.path.join(build, "plugins", "probe", "probe.so")
    r = subprocess.run([os.path.join(build, "bench", "bench_probe"), "sweep", plugin, toy,
                        os.path.join(ev, "nesting.jsonl"), "expand=words", "label=depth"],
                       capture_output=True, text=True, check=True)
    res = json.loads(r.stdout)
    print(f"layer sweep on the toy model: {n} examples (nesting words, depth 0..4), {res['layers']} layers + "
          f"hook_embed baseline: {res['seconds']:.2f} s")
    print(f"  accuracy by layer {res['accuracy']}, majority {res['baseline_majority']:.3f}, "
          f"embedding {res['baseline_embed']:.3f}")
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = p.parse_args()
    os.environ.pop("OPENBLAS_CORETYPE", None)
    print(f"load average {os.getloadavg()[0]:.2f}")
    bench_fit(a, a.build)
    bench_sweep(a.build)


if __name__ == "__main__":
    main()
