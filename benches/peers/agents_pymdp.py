"""pymdp 1.0.x (JAX) peer for the multi-agent active-inference gridworld
(issue #5): one `pymdp.agent.Agent` with batch_size = N and the same A, B, C,
D as benches/peers/agents_numpy.py (which builds them), float64
(jax_enable_x64), policy_len 1, gamma 1, alpha 1, stochastic action
selection, exact single-factor inference.

Per step: agent.infer_states -> agent.infer_policies -> agent.sample_action ->
agent.update_empirical_prior, jitted as one function of (agent, obs, prior,
key); the environment step (sample o ~ A[:, s_true], move s_true) is numpy, so
each step moves the actions to the host and the observations back. A warm-up
step (JIT compile) runs before the clock starts.

    pip install inferactively-pymdp==1.0.4 jax numpy
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 XLA_FLAGS=--xla_cpu_multi_thread_eigen=false \
        taskset -c 1 python3 benches/peers/agents_pymdp.py --agents 1000 --steps 100
    python3 benches/peers/agents_pymdp.py --check          # pymdp vs the numpy port
    python3 benches/peers/agents_pymdp.py --bytes 100 1000  # RSS slope

Note: Agent.__init__ broadcasts A (S x S) and B (S x S x 5) to a leading batch
axis, and JAX arrays are materialised, so each agent carries its own copy of
A and B (480 kB at S = 100 in float64).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import jax

jax.config.update("jax_enable_x64", True)  # before pymdp is imported (MINVAL, dtypes)
import jax.numpy as jnp
import jax.random as jr

import pymdp
from pymdp.agent import Agent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agents_numpy as an  # noqa: E402  (model builder, numpy reference)


def make_agent(m, n):
    return Agent(
        A=[jnp.asarray(m["A"])], B=[jnp.asarray(m["B"])],
        C=[jnp.asarray(m["C"])], D=[jnp.asarray(m["D"])],
        policy_len=1, gamma=1.0, alpha=1.0,
        action_selection="stochastic", sampling_mode="full",
        inference_algo="exact", batch_size=n,
    )


@jax.jit
def agent_step(agent, obs, prior, key):
    qs = agent.infer_states([obs], prior)
    q_pi, neg_efe = agent.infer_policies(qs)
    keys = jr.split(key, agent.batch_size + 1)
    action = agent.sample_action(q_pi, rng_key=keys[1:])
    next_prior = agent.update_empirical_prior(action, qs)
    return action, next_prior, keys[0], qs, q_pi, neg_efe


class Env:
    """The true positions and the observation draw, in numpy."""

    def __init__(self, m, n, seed):
        ag = an.Agents(m, 1)
        self.cdf, self.supp, self.succ = ag.obs_cdf, ag.obs_supp, m["succ"]
        self.s = np.zeros(n, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def observe(self):
        r = self.rng.random(self.s.size)
        return self.supp[self.s, (self.cdf[self.s, :-1] < r[:, None]).sum(1)]

    def move(self, action):
        self.s = self.succ[self.s, action]


def run(n, steps, seed):
    m = an.build_model()
    agent = make_agent(m, n)
    env = Env(m, n, seed)
    key = jr.PRNGKey(seed)
    prior = agent.D
    # warm-up step: compiles agent_step
    action, prior, key, *_ = agent_step(agent, jnp.asarray(env.observe()), prior, key)
    env.move(np.asarray(action)[:, 0])
    jax.block_until_ready(prior)
    t0 = time.perf_counter()
    for _ in range(steps):
        action, prior, key, *_ = agent_step(agent, jnp.asarray(env.observe()), prior, key)
        env.move(np.asarray(action)[:, 0])
    jax.block_until_ready(prior)
    dt = time.perf_counter() - t0
    return n * steps / dt, dt, float((env.s == 77).mean())


def check(n=16, steps=20, seed=0):
    """Same inputs through pymdp and the numpy port: compare qs, neg_efe,
    q_pi and the next prior at every step (pymdp's actions drive both)."""
    m = an.build_model()
    agent = make_agent(m, n)
    ref = an.Agents(m, n)
    env = Env(m, n, seed)
    key = jr.PRNGKey(seed)
    prior = agent.D
    print(f"pymdp MINVAL = {pymdp.maths.MINVAL!r}, numpy EPS = {an.EPS!r}; "
          f"A dtype in agent: {agent.A[0].dtype}, A shape {agent.A[0].shape}, B shape {agent.B[0].shape}")
    worst = dict(qs=0.0, neg_efe=0.0, q_pi=0.0, prior=0.0)
    counts = np.zeros(an.U)
    for _ in range(steps):
        obs = env.observe()
        p_np = np.asarray(prior[0])
        action, prior, key, qs, q_pi, neg_efe = agent_step(agent, jnp.asarray(obs), prior, key)
        u = np.asarray(action)[:, 0]
        counts += np.bincount(u, minlength=an.U)
        qs_np = ref.infer(obs, p_np, np.empty((n, m["S"])))
        ne_np = ref.plan(qs_np, np.empty((n, an.U * m["S"])), np.empty((n, an.U * m["S"])))
        qp_np = ref.policy_posterior(ne_np.copy())
        pr_np = np.stack([m["B"][:, :, u[i]] @ qs_np[i] for i in range(n)])
        worst["qs"] = max(worst["qs"], np.abs(np.asarray(qs[0])[:, -1] - qs_np).max())
        worst["neg_efe"] = max(worst["neg_efe"], np.abs(np.asarray(neg_efe) - ne_np).max())
        worst["q_pi"] = max(worst["q_pi"], np.abs(np.asarray(q_pi) - qp_np).max())
        worst["prior"] = max(worst["prior"], np.abs(np.asarray(prior[0]) - pr_np).max())
        env.move(u)
    print(f"{n} agents x {steps} steps, max |pymdp - numpy port|: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"action counts (stay, up, down, left, right): {counts.astype(int).tolist()}")
    ok = max(worst.values()) < 1e-12
    print("check", "OK" if ok else "FAILED")
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", "-n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--bytes", type=int, nargs=2, metavar=("N1", "N2"),
                    help="bytes/agent as the peak-RSS slope between two N")
    args = ap.parse_args()
    if args.check:
        sys.exit(0 if check() else 1)
    if args.bytes:
        here = os.path.abspath(__file__)
        _, slope = an.rss_slope(lambda n: [here, "-n", str(n), "--steps", "5", "--repeats", "1"],
                                *args.bytes)
        print(f"pymdp bytes_per_agent={slope:.1f} (peak-RSS slope N={args.bytes[0]}..{args.bytes[1]})")
        sys.exit(0)
    rates = []
    for i in range(args.repeats):
        rate, dt, at_goal = run(args.agents, args.steps, args.seed + i)
        rates.append(rate)
        print(f"pymdp N={args.agents} steps={args.steps} run {i}: {dt:.3f} s, "
              f"agent_steps_per_s={rate:.4g}, fraction at goal={at_goal:.3f}")
    print(f"pymdp N={args.agents} median agent_steps_per_s={statistics.median(rates):.4g}")
    print(f"peak_rss_bytes={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")
