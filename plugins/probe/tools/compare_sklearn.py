#!/usr/bin/python3
"""Known-answer check of probe's fitting against scikit-learn (python3-sklearn).

Two modes:

  compare_sklearn.py --make-fixture plugins/probe/tests/golden_sklearn.json
      Generate small seeded synthetic datasets (binary and 3-class logistic, ridge, a
      planted linear concept for LEACE), fit scikit-learn on them (StandardScaler on the
      training rows, then LogisticRegression(C, lbfgs) / Ridge(alpha)) and write features,
      split and scikit-learn's results as JSON. test_probe_numerics.c checks the C fit
      against it, so CI needs no Python.

  compare_sklearn.py --loupe build/loupe --model MODEL --dataset FILE --hook HOOK [--c C]
      Run `loupe call probe.train ... export=F` on a real model, refit scikit-learn on the
      exported features with the same split, and compare test accuracy (within 1 point)
      and the coefficients (cosine >= 0.99). Exit status 1 on disagreement.
"""
import argparse, json, os, struct, subprocess, sys, tempfile

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler


def fit_logistic(X, y, tr, te, C):
    sc = StandardScaler().fit(X[tr])
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=20000, tol=1e-10)
    clf.fit(sc.transform(X[tr]), y[tr])
    acc = float((clf.predict(sc.transform(X[te])) == y[te]).mean())
    return clf.coef_, clf.intercept_, acc


def fit_ridge(X, y, tr, te, lam):
    sc = StandardScaler().fit(X[tr])
    r = Ridge(alpha=lam).fit(sc.transform(X[tr]), y[tr])
    p = r.predict(sc.transform(X[te]))
    r2 = 1 - ((p - y[te]) ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum()
    return r.coef_[None, :], np.array([r.intercept_]), float(r2)


def synth(rng, n, d, k, sep):
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    y = rng.integers(0, k, size=n)
    mu = rng.normal(size=(k, d)) * sep
    X = rng.normal(size=(n, d)) @ A + mu[y] + rng.normal(size=d) * 3  # offset: normalisation matters
    X *= rng.uniform(0.2, 5, size=d)  # uneven scales
    return X.astype(np.float32), y


def short(a):
    """values as short decimal strings parsed back: a compact fixture, exact for float32"""
    return [float(f"{v:.7g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def make_fixture(out):
    rng = np.random.default_rng(1234)
    sets = []
    for name, n, d, k, sep, C in [("binary", 500, 24, 2, 0.12, 1.0), ("binary_c01", 500, 24, 2, 0.12, 0.1),
                                  ("multiclass", 600, 16, 3, 0.18, 1.0)]:
        X, y = synth(rng, n, d, k, sep)
        X = X.astype(np.float64).round(3).astype(np.float32)
        te = np.arange(n) % 5 == 0
        tr = ~te
        coef, b, acc = fit_logistic(X.astype(np.float64), y, tr, te, C)
        sets.append(dict(name=name, kind="logistic", C=C, n=n, d=d, n_classes=k, X=short(X),
                         y=y.tolist(), test=te.astype(int).tolist(), coef=short(coef),
                         intercept=short(b), test_score=acc))
    # ridge: continuous target = planted linear function + noise
    n, d = 400, 20
    X, _ = synth(rng, n, d, 2, 0.0)
    X = X.astype(np.float64).round(3).astype(np.float32)
    w = rng.normal(size=d)
    t = ((X - X.mean(0)) / X.std(0)) @ w + rng.normal(size=n) * 2
    te = np.arange(n) % 5 == 0
    coef, b, r2 = fit_ridge(X.astype(np.float64), t, ~te, te, 10.0)
    sets.append(dict(name="ridge", kind="ridge", C=10.0, n=n, d=d, n_classes=0, X=short(X),
                     y=t.round(6).tolist(), test=te.astype(int).tolist(), coef=short(coef),
                     intercept=short(b), test_score=r2))
    # LEACE: a planted linear concept that a probe decodes well before erasure
    n, d = 1200, 16
    X, y = synth(rng, n, d, 2, 0.3)
    X = X.astype(np.float64).round(3).astype(np.float32)
    te = np.arange(n) % 4 == 0
    _, _, acc = fit_logistic(X.astype(np.float64), y, ~te, te, 1.0)
    sets.append(dict(name="leace", kind="leace", C=1.0, n=n, d=d, n_classes=2, X=short(X),
                     y=y.tolist(), test=te.astype(int).tolist(), coef=[], intercept=[], test_score=acc,
                     chance=float(max((y[te] == c).mean() for c in range(2)))))
    with open(out, "w") as f:
        json.dump({"generator": "plugins/probe/tools/compare_sklearn.py --make-fixture",
                   "sklearn": __import__("sklearn").__version__, "sets": sets}, f, separators=(",", ":"))
    for s in sets:
        print(f"{s['name']:12s} n={s['n']} d={s['d']} sklearn test score {s['test_score']:.4f}")


def read_safetensors(path):
    with open(path, "rb") as f:
        L = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(L))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return out


def compare_loupe(a):
    with tempfile.TemporaryDirectory() as tmp:
        ex = os.path.join(tmp, "feat.safetensors")
        cmd = [a.loupe, "call", "probe.train", a.model, f"dataset={a.dataset}", f"hook={a.hook}", f"c={a.c}",
               f"export={ex}", f"seed={a.seed}", "--json"] + [f"label={a.label}"] + ([f"expand={a.expand}"] if a.expand else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"loupe failed: {r.stderr}")
        res = json.loads(r.stdout)
        t = read_safetensors(ex)
    X, y, te = t["X"].astype(np.float64), t["y"].astype(int), t["test"] > 0.5
    coef, _, acc = fit_logistic(X, y, ~te, te, a.c)
    results = res["results"]

    def get(name):
        e = results[name]
        return e["value"] if "value" in e else e["data"]

    w = np.array(get("weight"), dtype=np.float64).reshape(coef.shape)
    lacc = float(get("best"))
    cos = [float(np.dot(w[i], coef[i]) / np.linalg.norm(w[i]) / np.linalg.norm(coef[i])) for i in range(len(coef))]
    print(f"test accuracy: loupe {lacc:.4f}  sklearn {acc:.4f}  (|diff| {abs(lacc - acc) * 100:.2f} points)")
    print(f"coefficient cosine: {' '.join(f'{c:.5f}' for c in cos)}")
    ok = abs(lacc - acc) <= 0.01 and min(cos) >= 0.99
    print("agree" if ok else "DISAGREE")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-fixture")
    p.add_argument("--loupe")
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--hook", default="blocks.0.hook_resid_post")
    p.add_argument("--label", default="label")
    p.add_argument("--expand", default="")
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.make_fixture:
        make_fixture(a.make_fixture)
        return 0
    if a.loupe:
        return compare_loupe(a)
    p.error("give --make-fixture or --loupe")


if __name__ == "__main__":
    sys.exit(main())
