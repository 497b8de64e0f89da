"""A careful vectorised numpy port of the multi-agent active-inference
gridworld (issue #5), the peer for the `agents` sim. float64, one core
(BLAS pinned to one thread), batched over agents.

Model (pymdp conventions, one hidden-state factor, one modality): W x H open
grid, S = W*H states, s = row*W + col. A[o, s] = p_true on o = s, the rest
spread evenly over s's in-grid 4-neighbours; B deterministic moves
(0 stay, 1 up, 2 down, 3 left, 4 right; off-edge stays); C = c_goal on the
goal cell; D = 1/S. Per agent and step: o ~ A[:, s_true]; qs = softmax(log A[o]
+ log prior); one-step policies, neg_efe_u = H[A B_u qs] - (B_u qs).H[A] +
(A B_u qs).C; q_pi = softmax(gamma neg_efe + log E); u ~ softmax(alpha log
q_pi); prior <- B_u qs; s_true <- succ(s_true, u). log(x) = log(max(x, eps)).

Layout: beliefs are one N x S float64 matrix (the empirical prior; the
posterior lives only inside a chunk). Agents are processed in chunks of
--chunk agents so the temporaries stay in cache. Per chunk:
  * infer: qs = max(A, eps)[o] * max(prior, eps), normalised. This is
    softmax(log A[o] + log prior) without the logs and exps (same value up
    to rounding; --logspace runs the literal softmax form).
  * plan: all five predicted outcome distributions in one GEMM,
    qo = qs @ K with K[s, u*S + o] = A[o, succ(s, u)] (S x 5S, dense); the
    ambiguity and utility terms are linear in qs, so they are one more small
    product, qs @ M with M[s, u] = (C.A - H[A])[succ(s, u)]; only H[qo] needs
    the full qo (5S logs per agent).
  * act: inverse-CDF draw from softmax(alpha log q_pi).
  * next prior B_u qs: deterministic B as a predecessor table (each cell has
    at most kmax = 2 predecessors under a move), two flat gathers.

    pip install numpy
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 taskset -c 1 \
        python3 benches/peers/agents_numpy.py --agents 1000 --steps 100
    python3 benches/peers/agents_numpy.py --check          # hand/reference checks
    python3 benches/peers/agents_numpy.py --bytes 10000 100000   # RSS slope

Prints agent-steps/s = N * steps / loop seconds (setup excluded), one line per
repeat and the median.
"""
import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # 2.220446049250313e-16, as pymdp's MINVAL
U = 5
MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # stay, up, down, left, right


def build_model(w=10, h=10, p_true=0.9, goal=77, c_goal=4.0, C=None):
    """Dense A (S x S), dense B (S x S x U), C, D and the successor table."""
    s_n = w * h
    succ = np.empty((s_n, U), dtype=np.int64)
    for s in range(s_n):
        r, c = divmod(s, w)
        for u, (dr, dc) in enumerate(MOVES):
            rr, cc = r + dr, c + dc
            succ[s, u] = rr * w + cc if (0 <= rr < h and 0 <= cc < w) else s
    A = np.zeros((s_n, s_n))
    for s in range(s_n):
        nbrs = sorted({int(succ[s, u]) for u in range(1, U)} - {s})
        if not nbrs:
            A[s, s] = 1.0
        else:
            A[s, s] = p_true
            A[nbrs, s] = (1.0 - p_true) / len(nbrs)
    B = np.zeros((s_n, s_n, U))
    for u in range(U):
        B[succ[:, u], np.arange(s_n), u] = 1.0
    if C is None:
        C = np.zeros(s_n)
        C[goal] = c_goal
    D = np.full(s_n, 1.0 / s_n)
    return dict(W=w, H=h, S=s_n, A=A, B=B, C=np.asarray(C, float), D=D, succ=succ)


def entropy(p):
    """H[p] = -sum p log(max(p, eps)) along the last axis."""
    return -(p * np.log(np.maximum(p, EPS))).sum(-1)


def neg_efe_reference(m, qs):
    """The formula, literally, with dense B: for one belief vector qs."""
    A, B, C = m["A"], m["B"], m["C"]
    hA = entropy(A.T)  # H[A[:, s]] per state
    out = np.empty(U)
    for u in range(U):
        qn = B[:, :, u] @ qs
        qo = A @ qn
        out[u] = entropy(qo) - qn @ hA + qo @ C
    return out


class Agents:
    """N agents' state plus the precomputed tables; step() advances all."""

    def __init__(self, m, n, seed=0, chunk=512, gamma=1.0, alpha=1.0,
                 logspace=False):
        S = m["S"]
        A, C, succ = m["A"], m["C"], m["succ"]
        self.S, self.n, self.chunk = S, n, min(chunk, n)
        self.gamma, self.alpha, self.logspace = gamma, alpha, logspace
        self.succ = succ
        self.Aclip = np.maximum(A, EPS)          # rows gathered by observation
        self.logA = np.log(self.Aclip)
        hA = entropy(A.T)
        self.K = np.ascontiguousarray(A.T[succ].reshape(S, U * S))
        self.M = np.ascontiguousarray((C @ A - hA)[succ])          # S x U
        self.logE = np.log(np.full(U, 1.0 / U))
        # observation sampling: support and CDF of each column of A
        kA = int((A > 0).sum(0).max())
        self.obs_supp = np.empty((S, kA), dtype=np.int64)
        self.obs_cdf = np.ones((S, kA))
        for s in range(S):
            nz = np.flatnonzero(A[:, s])
            self.obs_supp[s, :] = nz[-1]
            self.obs_supp[s, :nz.size] = nz
            self.obs_cdf[s, :nz.size] = np.cumsum(A[nz, s])
        # predecessor table for B_u qs: prior'[s'] = sum_k qs_pad[pred[u, s', k]]
        preds = [[[] for _ in range(S)] for _ in range(U)]
        for s in range(S):
            for u in range(U):
                preds[u][succ[s, u]].append(s)
        kmax = max(len(p) for pu in preds for p in pu)
        self.pred = np.full((kmax, U, S), S, dtype=np.int64)       # S = zero pad
        for u in range(U):
            for sp in range(S):
                for k, s in enumerate(preds[u][sp]):
                    self.pred[k, u, sp] = s
        # state: empirical prior (N x S) and true cell; all start at cell 0 with D
        self.prior = np.tile(m["D"], (n, 1))
        self.s_true = np.zeros(n, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        # per-chunk scratch
        c = self.chunk
        self.qsp = np.zeros((c, S + 1))                            # posterior + zero pad
        self.qo = np.empty((c, U * S))
        self.lg = np.empty((c, U * S))
        self.rowbase = (np.arange(c) * (S + 1))[:, None]
        self.tmp = np.empty((c, S))
        self.idx = np.empty((c, S), dtype=np.int64)

    def infer(self, o, prior, out, tmp=None):
        tmp = np.empty(prior.shape) if tmp is None else tmp
        np.maximum(prior, EPS, out=out)
        if self.logspace:
            np.log(out, out=out)
            out += np.take(self.logA, o, axis=0, out=tmp)
            out -= out.max(1, keepdims=True)
            np.exp(out, out=out)
        else:
            out *= np.take(self.Aclip, o, axis=0, out=tmp)
        out /= out.sum(1, keepdims=True)
        return out

    def plan(self, qs, qo, lg):
        n, S = qs.shape
        np.matmul(qs, self.K, out=qo)                 # A B_u qs for all u
        np.maximum(qo, EPS, out=lg)
        np.log(lg, out=lg)
        h = np.einsum("ij,ij->i", qo.reshape(n * U, S), lg.reshape(n * U, S))
        neg_efe = qs @ self.M
        neg_efe -= h.reshape(n, U)
        return neg_efe

    def policy_posterior(self, neg_efe):
        z = self.gamma * neg_efe + self.logE
        z -= z.max(1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(1, keepdims=True)
        return z

    def sample_action(self, q_pi, r):
        z = self.alpha * np.log(np.maximum(q_pi, EPS))
        z -= z.max(1, keepdims=True)
        np.exp(z, out=z)
        np.cumsum(z, axis=1, out=z)
        z /= z[:, -1:]
        return (z[:, :-1] < r[:, None]).sum(1)

    def step(self):
        S, rng = self.S, self.rng
        for a in range(0, self.n, self.chunk):
            b = min(a + self.chunk, self.n)
            n = b - a
            st = self.s_true[a:b]
            prior = self.prior[a:b]
            # observe
            r = rng.random(n)
            k = (self.obs_cdf[st, :-1] < r[:, None]).sum(1)
            o = self.obs_supp[st, k]
            # infer
            qsp = self.qsp[:n]
            tmp, idx = self.tmp[:n], self.idx[:n]
            qs = self.infer(o, prior, qsp[:, :S], tmp)
            # plan, act
            neg_efe = self.plan(qs, self.qo[:n], self.lg[:n])
            q_pi = self.policy_posterior(neg_efe)
            u = self.sample_action(q_pi, rng.random(n))
            # next prior B_u qs, true move
            # (preallocated index/scratch buffers: fresh 100s-of-kB temporaries
            # cost page faults every chunk)
            flat = self.qsp.ravel()
            for kk in range(self.pred.shape[0]):
                np.take(self.pred[kk], u, axis=0, out=idx)
                idx += self.rowbase[:n]
                if kk == 0:
                    np.take(flat, idx, out=prior, mode="clip")
                else:
                    prior += np.take(flat, idx, out=tmp, mode="clip")
            self.s_true[a:b] = self.succ[st, u]


def check():
    """Hand computation on a 1 x 2 grid, then vectorised vs literal formula."""
    ok = True
    m = build_model(w=2, h=1, p_true=0.9, C=[4.0, 0.0])
    print("1x2 grid A =", m["A"].tolist())
    ag = Agents(m, 1)
    qs = ag.infer(np.array([0]), np.array([[0.5, 0.5]]), np.empty((1, 2)))
    print("posterior after o=0 from uniform:", qs[0].tolist())
    ok &= np.allclose(qs[0], [0.9, 0.1], rtol=0, atol=1e-15)
    # by hand: qn per action from [0.9, 0.1]: stay/up/down keep it, left
    # gathers all in cell 0, right all in cell 1; A is symmetric 0.9/0.1, so
    # H[A[:, s]] = H(0.9, 0.1) for both cells.
    def H2(p):
        return -sum(x * math.log(max(x, EPS)) for x in p)
    h01 = H2([0.9, 0.1])
    qo_keep = [0.9 * 0.9 + 0.1 * 0.1, 0.1 * 0.9 + 0.9 * 0.1]   # [0.82, 0.18]
    hand = [H2(qo_keep) - h01 + 4.0 * qo_keep[0]] * 3 + [
        H2([0.9, 0.1]) - h01 + 4.0 * 0.9,                     # left: qo = [0.9, 0.1]
        H2([0.1, 0.9]) - h01 + 4.0 * 0.1,                     # right: qo = [0.1, 0.9]
    ]
    vec = ag.plan(qs, np.empty((1, U * 2)), np.empty((1, U * 2)))[0]
    ref = neg_efe_reference(m, qs[0])
    for name, a, b, c in zip(("stay", "up", "down", "left", "right"), vec, ref, hand):
        print(f"  neg_efe[{name:5s}] vectorised={a:.15f} formula={b:.15f} hand={c:.15f}")
    ok &= np.allclose(vec, hand, rtol=0, atol=1e-14) and np.allclose(ref, hand, rtol=0, atol=1e-14)
    print(f"  (H(0.82,0.18) = {H2(qo_keep):.15f}, H(0.9,0.1) = {h01:.15f})")
    # 10 x 10: vectorised plan / prior vs the literal formula on random beliefs
    m = build_model()
    rng = np.random.default_rng(1)
    n = 64
    ag = Agents(m, n, seed=3)
    qs = rng.dirichlet(np.full(m["S"], 0.3), n)
    vec = ag.plan(qs, np.empty((n, U * m["S"])), np.empty((n, U * m["S"])))
    ref = np.array([neg_efe_reference(m, q) for q in qs])
    err_efe = np.abs(vec - ref).max()
    u = rng.integers(0, U, n)
    ag.qsp[:n, :m["S"]] = qs
    flat = ag.qsp.ravel()
    pr = sum(np.take(flat, ag.rowbase[:n] + ag.pred[k, u]) for k in range(ag.pred.shape[0]))
    err_prior = max(np.abs(pr[i] - m["B"][:, :, u[i]] @ qs[i]).max() for i in range(n))
    o = rng.integers(0, m["S"], n)
    prior = rng.dirichlet(np.ones(m["S"]), n)
    a1 = ag.infer(o, prior, np.empty((n, m["S"])))
    ag.logspace = True
    a2 = ag.infer(o, prior, np.empty((n, m["S"])))
    lit = np.log(np.maximum(m["A"][o], EPS)) + np.log(np.maximum(prior, EPS))
    lit = np.exp(lit - lit.max(1, keepdims=True))
    lit /= lit.sum(1, keepdims=True)
    err_inf = max(np.abs(a1 - lit).max(), np.abs(a2 - lit).max())
    print(f"10x10, 64 random beliefs: max|neg_efe vec - formula| = {err_efe:.2e}, "
          f"max|prior gather - B_u qs| = {err_prior:.2e}, max|infer - softmax| = {err_inf:.2e}")
    ok &= err_efe < 1e-12 and err_prior < 1e-15 and err_inf < 1e-13
    # observation sampling frequencies for one interior cell
    ag = Agents(m, 200000, seed=5, chunk=200000)
    st = np.full(200000, 44)
    r = ag.rng.random(st.size)
    obs = ag.obs_supp[st, (ag.obs_cdf[st, :-1] < r[:, None]).sum(1)]
    freq = np.bincount(obs, minlength=m["S"]) / st.size
    err_obs = np.abs(freq - m["A"][:, 44]).max()
    print(f"observation sampling at cell 44: max|freq - A[:,44]| = {err_obs:.4f} (200k draws)")
    ok &= err_obs < 0.005
    print("check", "OK" if ok else "FAILED")
    return ok


def run(n, steps, seed, chunk, logspace):
    m = build_model()
    ag = Agents(m, n, seed=seed, chunk=chunk, logspace=logspace)
    t0 = time.perf_counter()
    for _ in range(steps):
        ag.step()
    dt = time.perf_counter() - t0
    at_goal = float((ag.s_true == 77).mean())
    return n * steps / dt, dt, at_goal


def rss_slope(argv_for, n1, n2):
    """Peak RSS (ru_maxrss of a fresh child process) at two N; the slope."""
    out = []
    for n in (n1, n2):
        res = subprocess.run([sys.executable] + argv_for(n), capture_output=True,
                             text=True, check=True)
        rss = int([l for l in res.stdout.splitlines() if l.startswith("peak_rss_bytes=")][-1].split("=")[1])
        out.append(rss)
        print(f"  N={n}: peak_rss_bytes={rss}")
    return out, (out[1] - out[0]) / (n2 - n1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", "-n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--logspace", action="store_true",
                    help="literal softmax(log A[o] + log prior) inference")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--bytes", type=int, nargs=2, metavar=("N1", "N2"),
                    help="bytes/agent as the peak-RSS slope between two N")
    args = ap.parse_args()
    if args.check:
        sys.exit(0 if check() else 1)
    if args.bytes:
        here = os.path.abspath(__file__)
        _, slope = rss_slope(lambda n: [here, "-n", str(n), "--steps", "5", "--repeats", "1",
                                        "--chunk", str(args.chunk)], *args.bytes)
        print(f"numpy bytes_per_agent={slope:.1f} (peak-RSS slope N={args.bytes[0]}..{args.bytes[1]})")
        sys.exit(0)
    rates = []
    for i in range(args.repeats):
        rate, dt, at_goal = run(args.agents, args.steps, args.seed + i, args.chunk, args.logspace)
        rates.append(rate)
        print(f"numpy N={args.agents} steps={args.steps} run {i}: {dt:.3f} s, "
              f"agent_steps_per_s={rate:.4g}, fraction at goal={at_goal:.3f}")
    print(f"numpy N={args.agents} median agent_steps_per_s={statistics.median(rates):.4g}"
          f"{' (logspace)' if args.logspace else ''}")
    print(f"peak_rss_bytes={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")
