"""A careful vectorised numpy port of microcosm's gene scenarios, the peer
for benches/genes.rs. One core (BLAS threads pinned to 1). Prints
gene-updates per second (N·G·generations / loop seconds) and the peak RSS.

    pip install numpy && OPENBLAS_NUM_THREADS=1 python3 benches/peers/genes_numpy.py
"""
import os
import resource
import sys
import time

import numpy as np


def memtest(mutation, gens=100, n=5000, g=100, seed=42):
    """happygene memtest: linear(1, 0.1) at tf = 0, proportional fitness,
    point(0.1, 0.05), no reproduction."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(0.5, 2.0, (n, g))
    t0 = time.perf_counter()
    for _ in range(gens):
        e.fill(max(0.0, 1.0 * 0.0 + 0.1))          # expression
        fit = e.mean(axis=1)                        # fitness
        stats = (fit.mean(), fit.var(), fit.max(), e.mean(), e.var())
        if mutation == "dense":                     # one uniform per gene
            mask = rng.random((n, g)) < 0.1
            e += mask * rng.normal(0.0, 0.05, (n, g))
        else:                                       # geometric gaps, O(mutations)
            k = int(n * g * 0.1 * 1.2) + 64
            idx = np.cumsum(rng.geometric(0.1, k)) - 1
            idx = idx[idx < n * g]
            flat = e.reshape(-1)
            flat[idx] += rng.normal(0.0, 0.05, idx.size)
        np.maximum(e, 0.0, out=e)
    return n * g * gens / (time.perf_counter() - t0), stats


def phase2(gens=50, n=10000, g=100, seed=7):
    """phase2: composite(hill(1, .5, 2), additive(1)) at tf = 0.7 on a random
    network (density 0.05, U(-.5, .5)), stabilizing selection (θ = 0.8,
    σ = 2), Wright–Fisher sexual reproduction (uniform crossover), point(0.1, 0.05)."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((g, g)) < 0.05, rng.uniform(-0.5, 0.5, (g, g)), 0.0)
    np.fill_diagonal(a, 0.0)
    at = np.ascontiguousarray(a.T)
    e = rng.uniform(0.0, 1.0, (n, g))
    tf = 0.7
    base = tf ** 2 / (0.5 ** 2 + tf ** 2)
    t0 = time.perf_counter()
    for _ in range(gens):
        e = np.maximum(0.0, base + e @ at)          # expression through the network
        fit = np.exp(-((e - 0.8) ** 2).sum(axis=1) / (2 * 2.0 ** 2))
        p = fit / fit.sum()
        p1 = rng.choice(n, n, p=p)                  # Wright–Fisher parents
        p2 = rng.choice(n, n, p=p)
        cross = rng.random((n, g)) < 0.5
        e = np.where(cross, e[p2], e[p1])
        k = int(n * g * 0.1 * 1.2) + 64             # sparse mutation
        idx = np.cumsum(rng.geometric(0.1, k)) - 1
        idx = idx[idx < n * g]
        flat = e.reshape(-1)
        flat[idx] += rng.normal(0.0, 0.05, idx.size)
        np.maximum(e, 0.0, out=e)
    return n * g * gens / (time.perf_counter() - t0), fit.mean()


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    best = lambda f, *a: max(f(*a)[0] for _ in range(3))
    print(f"numpy memtest dense  gene_updates_per_s={best(memtest, 'dense'):.4g}")
    print(f"numpy memtest sparse gene_updates_per_s={best(memtest, 'sparse'):.4g}")
    print(f"numpy phase2         gene_updates_per_s={best(phase2):.4g}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"numpy peak_rss_bytes={rss}")
    sys.exit(0)
