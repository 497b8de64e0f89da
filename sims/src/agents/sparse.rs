//! Sparse beliefs: each agent keeps its top-K states (index, probability).
//!
//! In this world a belief is nearly one-hot within a few steps, so a dense
//! S-vector is mostly floor values. The sparse update is the dense one
//! restricted to the states that can carry mass:
//!
//! * **prior** `B_u q` maps each kept state through the successor table
//!   (merging states that land on the same cell); support 0 stands for the
//!   uniform prior D;
//! * **infer** over the candidates (prior support ∪ row o of A) with the same
//!   floors as dense: a state outside the prior support has prior `max(0, ε)`
//!   (or 1/S under D); all other states share the normaliser as the exact
//!   update would (`(S − candidates)·ε·max(prior, ε)`), so kept values equal
//!   the dense ones before pruning;
//! * **prune**: keep the `top_k` largest with probability ≥ `prune` (always
//!   the largest), renormalise. The L1 distance to the unpruned posterior is
//!   at most twice the pruned mass;
//! * **plan** from the kept support exactly (`qo = A·qn` over the ≤ 5K
//!   observations it reaches); for a one-point belief at s the information
//!   gain is exactly 0 and `neg_efe_u = (AᵀC)(succ(s, u))`, a table lookup.

use microcosm_engine::simd::Job;
use rayon::prelude::*;

use super::decide::{Precision, decide};
use super::math::Float;
use super::world::{ACTIONS, Model};
use super::{Agent, Draws};

/// Largest `top_k`.
pub const K_MAX: usize = 8;

/// The model's tables in the kernel's float type (a resource).
#[derive(bevy_ecs::prelude::Resource, Debug, Clone)]
pub struct SparseTables<F> {
    /// S.
    pub states: usize,
    /// A[s, s].
    p_self: Vec<F>,
    /// A[o, s] for each free neighbour o of s.
    p_nb: Vec<F>,
    /// AᵀC − H[A] per state.
    g: Vec<F>,
    /// AᵀC per state.
    ac: Vec<F>,
    /// 1/S (the uniform prior).
    uniform: F,
    /// Pruning threshold.
    prune: F,
    /// Entries kept at most.
    top_k: usize,
}

impl<F: Float> SparseTables<F> {
    /// The tables of `m`.
    pub fn new(m: &Model, top_k: usize, prune: f64) -> Self {
        let s_n = m.states;
        SparseTables {
            states: s_n,
            p_self: (0..s_n).map(|s| F::from_f64(m.p_self(s))).collect(),
            p_nb: (0..s_n).map(|s| F::from_f64(m.p_nbr(s))).collect(),
            g: (0..s_n).map(|s| F::from_f64(m.ac[s] - m.h_a[s])).collect(),
            ac: m.ac.iter().map(|&x| F::from_f64(x)).collect(),
            uniform: F::from_f64(1.0 / s_n as f64),
            prune: F::from_f64(prune),
            top_k,
        }
    }
}

impl<F> microcosm_engine::Footprint for SparseTables<F> {
    fn heap_bytes(&self) -> usize {
        self.p_self.heap_bytes()
            + self.p_nb.heap_bytes()
            + self.g.heap_bytes()
            + self.ac.heap_bytes()
    }
}

/// Every agent's top-K belief (a resource; agent `i` is table row `i`, its
/// entries `i·K .. i·K + Agent::support`).
#[derive(bevy_ecs::prelude::Resource, Debug, Clone)]
pub struct SparseBeliefs<F> {
    /// Entries per agent (K).
    pub k: usize,
    /// States.
    pub idx: Vec<u32>,
    /// Probabilities.
    pub p: Vec<F>,
    /// Per-task entropy sums of the last step.
    partial: Vec<f64>,
}

/// State: the top-K entries (the entropy partials are this step's scratch).
impl<F: Float> microcosm_engine::checkpoint::State for SparseBeliefs<F> {
    fn save(&self, e: &mut microcosm_engine::checkpoint::Encoder) -> std::io::Result<()> {
        e.slice(&self.idx)?;
        e.slice(&self.p)
    }

    fn load(
        &mut self,
        d: &mut microcosm_engine::checkpoint::Decoder,
    ) -> Result<(), microcosm_engine::checkpoint::Corrupt> {
        d.slice_into(&mut self.idx)?;
        d.slice_into(&mut self.p)
    }
}

impl<F: Float> SparseBeliefs<F> {
    /// `agents` beliefs of K entries (all at D: support 0).
    pub fn new(agents: usize, k: usize) -> Self {
        SparseBeliefs {
            k,
            idx: vec![0; agents * k],
            p: vec![F::ZERO; agents * k],
            partial: vec![0.0; agents.div_ceil(TASK)],
        }
    }
}

impl<F> microcosm_engine::Footprint for SparseBeliefs<F> {
    fn heap_bytes(&self) -> usize {
        self.idx.heap_bytes() + self.p.heap_bytes() + self.partial.heap_bytes()
    }
}

/// Agents per parallel task.
pub const TASK: usize = 64;

/// A small set of (state, value) pairs with merging adds.
struct Bag<F, const N: usize> {
    s: [u32; N],
    v: [F; N],
    n: usize,
}

impl<F: Float, const N: usize> Bag<F, N> {
    #[inline(always)]
    fn new() -> Self {
        Bag {
            s: [0; N],
            v: [F::ZERO; N],
            n: 0,
        }
    }

    #[inline(always)]
    fn find(&self, s: u32) -> Option<usize> {
        self.s[..self.n].iter().position(|&x| x == s)
    }

    #[inline(always)]
    fn add(&mut self, s: u32, v: F) {
        match self.find(s) {
            Some(i) => self.v[i] = self.v[i] + v,
            None => {
                self.s[self.n] = s;
                self.v[self.n] = v;
                self.n += 1;
            }
        }
    }
}

/// One agent's prior, inference, pruning and plan after observing `o`:
/// `idx`/`p` (its K entries, `a.support` in use) become the pruned posterior;
/// returns neg_efe, the posterior entropy and the entries now in use.
#[inline(always)]
pub fn update<F: Float>(
    t: &SparseTables<F>,
    m: &Model,
    a: &Agent,
    o: u32,
    idx: &mut [u32],
    p: &mut [F],
) -> ([F; ACTIONS], F, u8) {
    let eps = F::EPS;
    let support = a.support as usize;
    // Prior.
    let mut prior: Bag<F, K_MAX> = Bag::new();
    for i in 0..support {
        prior.add(m.succ[idx[i] as usize][a.action as usize], p[i]);
    }
    let outside = if support == 0 { t.uniform } else { F::ZERO }.max(eps);
    // Candidates: the prior's states at the likelihood floor, then row o.
    let mut cand: Bag<F, { K_MAX + 5 }> = Bag::new();
    for i in 0..prior.n {
        cand.s[i] = prior.s[i];
        cand.v[i] = prior.v[i].max(eps) * eps;
    }
    cand.n = prior.n;
    let ou = o as usize;
    let mut row = |s: u32, a: F| {
        let lik = a.max(eps);
        match cand.find(s) {
            Some(i) => cand.v[i] = prior.v[i].max(eps) * lik,
            None => {
                cand.s[cand.n] = s;
                cand.v[cand.n] = outside * lik;
                cand.n += 1;
            }
        }
    };
    row(o, t.p_self[ou]);
    for &s in &m.nbrs[ou][..m.deg[ou] as usize] {
        row(s, t.p_nb[s as usize]);
    }
    let mut z = F::from_f64((t.states - cand.n) as f64) * (outside * eps);
    for &v in &cand.v[..cand.n] {
        z = z + v;
    }
    // Prune: the largest first (ties: lower state), keep ≤ K at ≥ threshold.
    let n = cand.n;
    let mut order = [0u8; K_MAX + 5];
    for (i, x) in order.iter_mut().enumerate().take(n) {
        *x = i as u8;
    }
    let key = |i: u8| (cand.v[i as usize], cand.s[i as usize]);
    for i in 1..n {
        let mut j = i;
        while j > 0 && {
            let (a, b) = (key(order[j - 1]), key(order[j]));
            a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
        } {
            order.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut kept = 0;
    let mut sum = F::ZERO;
    for &i in &order[..n] {
        let post = cand.v[i as usize] / z;
        if kept == t.top_k || (kept > 0 && post < t.prune) {
            break;
        }
        idx[kept] = cand.s[i as usize];
        p[kept] = post;
        sum = sum + post;
        kept += 1;
    }
    let mut h = F::ZERO;
    if kept == 1 {
        // p/p = 1 and 1·ln 1 = 0 exactly: the general loop's result, without
        // the logarithm (a NaN or 0/0 stays NaN, and so does the entropy).
        p[0] = p[0] / sum;
        h = F::ZERO * p[0];
    } else {
        for x in &mut p[..kept] {
            *x = *x / sum;
            h = h - *x * x.max(eps).ln();
        }
    }
    // Plan.
    let mut neg = [F::ZERO; ACTIONS];
    if kept == 1 {
        let s = idx[0] as usize;
        for (u, g) in neg.iter_mut().enumerate() {
            *g = t.ac[m.succ[s][u] as usize];
        }
    } else {
        for (u, g) in neg.iter_mut().enumerate() {
            let mut qn: Bag<F, K_MAX> = Bag::new();
            for i in 0..kept {
                qn.add(m.succ[idx[i] as usize][u], p[i]);
            }
            let mut qo: Bag<F, { 5 * K_MAX }> = Bag::new();
            let mut d = F::ZERO;
            for i in 0..qn.n {
                let (s, q) = (qn.s[i] as usize, qn.v[i]);
                d = d + q * t.g[s];
                qo.add(s as u32, q * t.p_self[s]);
                let pn = q * t.p_nb[s];
                for &x in &m.nbrs[s][..m.deg[s] as usize] {
                    qo.add(x, pn);
                }
            }
            let mut hq = F::ZERO;
            for &x in &qo.v[..qo.n] {
                hq = hq + x * x.max(eps).ln();
            }
            *g = d - hq;
        }
    }
    (neg, h, kept as u8)
}

/// One task: consecutive agents, in blocks of `L` for the action choice.
pub struct Task<'a, F: Float, const L: usize> {
    /// Tables.
    pub t: &'a SparseTables<F>,
    /// The model.
    pub m: &'a Model,
    /// γ, α.
    pub p: Precision<F>,
    /// Random draws of this step.
    pub draws: Draws,
    /// Index of the task's first agent.
    pub first: usize,
    /// K.
    pub k: usize,
    /// The task's belief states and probabilities.
    pub idx: &'a mut [u32],
    /// ...
    pub prob: &'a mut [F],
    /// The task's agents.
    pub agents: &'a mut [Agent],
}

impl<F: Float, const L: usize> Job for Task<'_, F, L> {
    type Out = f64;

    #[inline(always)]
    fn run(self) -> f64 {
        let k = self.k;
        let mut h_sum = 0.0;
        for (b, ((agents, idx), prob)) in self
            .agents
            .chunks_mut(L)
            .zip(self.idx.chunks_mut(L * k))
            .zip(self.prob.chunks_mut(L * k))
            .enumerate()
        {
            let first = self.first + b * L;
            let mut neg = [[F::ZERO; L]; ACTIONS];
            let mut ua = [F::ZERO; L];
            let mut obs = [0u32; L];
            for (l, ((a, idx), prob)) in agents
                .iter_mut()
                .zip(idx.chunks_mut(k))
                .zip(prob.chunks_mut(k))
                .enumerate()
            {
                let (uo, uu) = self.draws.uniforms((first + l) as u64);
                let o = self.m.sample_obs(a.pos as usize, uo);
                let (g, h, kept) = update(self.t, self.m, a, o, idx, prob);
                for u in 0..ACTIONS {
                    neg[u][l] = g[u];
                }
                ua[l] = F::from_f64(uu);
                obs[l] = o;
                a.support = kept;
                h_sum += h.to_f64();
            }
            let mut act = [0u8; L];
            decide(&neg, &self.p, &ua, &mut act);
            for (l, a) in agents.iter_mut().enumerate() {
                a.obs = obs[l];
                a.action = act[l];
            }
        }
        h_sum
    }
}

/// Steps all agents, tasks of [`TASK`] agents in parallel; returns the sum
/// of posterior entropies, folded in task order.
#[allow(clippy::too_many_arguments)]
pub fn step<F: Float, const L: usize>(
    simd: microcosm_engine::simd::Simd,
    t: &SparseTables<F>,
    m: &Model,
    p: Precision<F>,
    draws: Draws,
    beliefs: &mut SparseBeliefs<F>,
    agents: &mut [Agent],
) -> f64 {
    let k = beliefs.k;
    let SparseBeliefs {
        idx,
        p: prob,
        partial,
        ..
    } = beliefs;
    partial
        .par_iter_mut()
        .zip(idx.par_chunks_mut(TASK * k))
        .zip(prob.par_chunks_mut(TASK * k))
        .zip(agents.par_chunks_mut(TASK))
        .enumerate()
        // Split down to single tasks, so an idle worker can steal one at the
        // end (rayon would otherwise run runs of 4 tasks without splitting:
        // at 1,000 agents, 2-thread steps were ~5% slower).
        .with_max_len(1)
        .for_each(|(i, (((out, idx), prob), agents))| {
            *out = simd.run(Task::<F, L> {
                t,
                m,
                p,
                draws,
                first: i * TASK,
                k,
                idx,
                prob,
                agents,
            });
        });
    partial.iter().sum()
}
