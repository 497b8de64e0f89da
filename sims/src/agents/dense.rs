//! Dense beliefs: every agent keeps q(s) over all S states.
//!
//! **Layout.** Beliefs are stored in blocks of `L` agents (64 for f32, 32
//! for f64: four 64-byte vectors), state-major inside a block:
//! `q[(block·S + s)·L + lane]`. Every operation of the update is then the
//! same for all lanes at one state index, so the kernel is straight vector
//! code with no gathers or horizontal sums, and each lane's sums run over s
//! in a fixed order: the result does not depend on how blocks are spread
//! over threads, nor on `L` (a lane's arithmetic is the same at any width).
//! Four vectors per state rather than one measured 1.4× faster on one core
//! (1.46 M vs 1.05–1.15 M agent-steps/s at S = 100): the per-state index
//! and weight loads are shared by more lanes and the four independent
//! logarithm chains hide each other's latency; 128 lanes gained < 5% more.
//!
//! **Exact algebra, fewer transcendentals.** With λ = `max(A[o, s], ε)` and
//! π = `max(prior(s), ε)`, `softmax(log λ + log π)` equals `λπ / Σ λπ`, which
//! the kernel computes directly (no log or exp per state; the two differ by
//! rounding only). In the plan, `−Σ_s qn(s)·H[A[:, s]] + qo·C` equals
//! `Σ_s qs(s)·G_u(s)` with `G_u(s) = (AᵀC − H[A])(succ(s, u))` precomputed,
//! so the one S-long term per action that needs logarithms is `H[qo_u]`.
//! `qo_u = A·qn_u` is a 5-point stencil over rows of A.
//!
//! **Work skipped, same bits.** Where no lane of a block can see
//! observation o (every `qo ≤ ε`), `ln max(qo, ε)` is `ln ε` in every lane,
//! so the logarithms are not taken (likewise for the entropy's `ln q`). And
//! away from walls and edges a move is a translation under which A looks
//! the same, so `(A B_u q)(o)` is the very same chain of operations as
//! `(A q)(o′)` for a neighbour o′: its term `qo·ln qo` reuses the values
//! computed for action 0 at o′ ([`DenseTables::reused`]: half of the
//! (o, u ≥ 1) pairs on the 10 × 10 grid, 7/8 on 40 × 40). Measured on one
//! core, medians of alternated runs: gridworld (1,000 agents, 200 steps, 7
//! runs) 2.53 → 3.06 M agent-steps/s, 100,000 agents (20 steps, 5 runs)
//! 2.91 → 3.12 M.

use microcosm_engine::simd::Job;
use rayon::prelude::*;

use super::decide::{Precision, decide};
use super::math::Float;
use super::world::{ACTIONS, Model};
use super::{Agent, Draws};

/// The model's tables in the kernel's float type (a resource).
#[derive(bevy_ecs::prelude::Resource, Debug, Clone)]
pub struct DenseTables<F> {
    /// S.
    pub states: usize,
    /// Row o of A: states s with A[o, s] > 0 possible (padded with o).
    row_idx: Vec<[u32; 5]>,
    /// A[o, s] of those entries (padding: 0).
    row_w: Vec<[F; 5]>,
    /// max(A[o, s], ε) of those entries.
    row_lik: Vec<[F; 5]>,
    /// Entries used in each row.
    row_len: Vec<u8>,
    /// G_u(s) = AC(succ(s, u)) − H_A(succ(s, u)).
    g: Vec<[F; ACTIONS]>,
    /// B as a gather: `into[s][u]` is the other state that action `u` moves
    /// into `s` ([`NONE`] if none; moves are to a neighbour, so there is at
    /// most one), and bit `u` of `stays[s]` says whether `u` leaves `s` where
    /// it is. So (B_u q)(s) = [stays] q(s) + q(into), a sum of at most two
    /// terms: the same bits in any order.
    into: Vec<[u32; ACTIONS]>,
    stays: Vec<u8>,
    /// Skip the logarithms of an observation no lane of a block can see,
    /// or of a state no lane believes in (the same bits either way: off
    /// only to test that).
    skip_invisible: bool,
    /// `reuse[o][u]` (u ≥ 1): a state o′ such that `(A B_u q)(o)` is, for
    /// every q, the very same sequence of fused multiply-adds as
    /// `(A q)(o′)` — same weights, same sources, same order — so its
    /// entropy term is the one already computed for action 0 at o′
    /// ([`NONE`]: compute it). True away from walls and edges, where moving
    /// is a translation and A looks the same at o and o′ (see
    /// [`DenseTables::new`]).
    reuse: Vec<[u32; ACTIONS]>,
}

impl<F: Float> DenseTables<F> {
    /// The tables of `m`.
    pub fn new(m: &Model) -> Self {
        let s_n = m.states;
        let mut t = DenseTables {
            states: s_n,
            row_idx: Vec::with_capacity(s_n),
            row_w: Vec::with_capacity(s_n),
            row_lik: Vec::with_capacity(s_n),
            row_len: Vec::with_capacity(s_n),
            g: Vec::with_capacity(s_n),
            into: vec![[NONE; ACTIONS]; s_n],
            stays: vec![0; s_n],
            skip_invisible: true,
            reuse: vec![[NONE; ACTIONS]; s_n],
        };
        for (s, succ) in m.succ.iter().enumerate() {
            for (u, &to) in succ.iter().enumerate() {
                if to as usize == s {
                    t.stays[s] |= 1 << u;
                } else {
                    debug_assert_eq!(t.into[to as usize][u], NONE, "two states move into one");
                    t.into[to as usize][u] = s as u32;
                }
            }
        }
        for o in 0..s_n {
            let (mut idx, mut w, mut lik) = ([o as u32; 5], [F::ZERO; 5], [F::EPS; 5]);
            let mut k = 0;
            m.for_row(o, |s, a| {
                idx[k] = s as u32;
                w[k] = F::from_f64(a);
                lik[k] = F::from_f64(a.max(super::world::EPS));
                k += 1;
            });
            t.row_idx.push(idx);
            t.row_w.push(w);
            t.row_lik.push(lik);
            t.row_len.push(k as u8);
            t.g.push(m.succ[o].map(|x| F::from_f64(m.ac[x as usize] - m.h_a[x as usize])));
        }
        t.reuse = t.reuse_table();
        t
    }

    /// `reuse` (see the field). The kernel computes `(A src)(o)` as
    /// `w₄·x₄ + (w₃·x₃ + (… + w₀·x₀))` over row o's entries, where `src` is
    /// q for action 0 and `B_u q` otherwise, with
    /// `(B_u q)(s) = [stays]·q(s) + q(into)`. An entry whose weight is 0 or
    /// whose source is the zero vector adds exactly 0 (q ≥ 0); an entry of
    /// `B_u q` with one term is exactly that q entry (`1·x + 0`, `0·x + y`).
    /// So two rows with the same list of (weight, q index) after dropping
    /// the zero entries give the same bits; a row with a two-term entry is
    /// never reused.
    fn reuse_table(&self) -> Vec<[u32; ACTIONS]> {
        let s_n = self.states;
        // One entry: (weight bits, q index).
        let expr = |o: usize, u: usize| -> Option<Vec<(u64, u32)>> {
            let mut e = Vec::with_capacity(5);
            for k in 0..self.row_len[o] as usize {
                let w = self.row_w[o][k];
                let s = self.row_idx[o][k] as usize;
                if w == F::ZERO {
                    continue;
                }
                let src = if u == 0 {
                    Some(s as u32)
                } else {
                    let (stays, into) = (self.stays[s] >> u & 1 == 1, self.into[s][u]);
                    match (stays, into != NONE) {
                        (true, true) => return None,
                        (true, false) => Some(s as u32),
                        (false, true) => Some(into),
                        (false, false) => None,
                    }
                };
                if let Some(src) = src {
                    e.push((w.to_f64().to_bits(), src));
                }
            }
            Some(e)
        };
        let plain: std::collections::HashMap<Vec<(u64, u32)>, u32> = (0..s_n)
            .rev()
            .filter_map(|o| expr(o, 0).map(|e| (e, o as u32)))
            .collect();
        (0..s_n)
            .map(|o| {
                std::array::from_fn(|u| match u {
                    0 => NONE,
                    _ => expr(o, u)
                        .and_then(|e| plain.get(&e).copied())
                        .unwrap_or(NONE),
                })
            })
            .collect()
    }

    /// Pairs (o, u ≥ 1) whose observation entropy term is reused from
    /// action 0 (of S·(U − 1)).
    pub fn reused(&self) -> usize {
        self.reuse
            .iter()
            .map(|r| r[1..].iter().filter(|&&x| x != NONE).count())
            .sum()
    }
}

impl<F> microcosm_engine::Footprint for DenseTables<F> {
    fn heap_bytes(&self) -> usize {
        self.row_idx.heap_bytes()
            + self.row_w.heap_bytes()
            + self.row_lik.heap_bytes()
            + self.row_len.heap_bytes()
            + self.g.heap_bytes()
            + self.into.heap_bytes()
            + self.stays.heap_bytes()
            + self.reuse.heap_bytes()
    }
}

/// No state (see `DenseTables::into`).
const NONE: u32 = u32::MAX;

/// Every agent's posterior over S states, in blocks of `L` lanes (a resource;
/// agent `i` is table row `i`).
#[derive(bevy_ecs::prelude::Resource, Debug, Clone)]
pub struct DenseBeliefs<F> {
    /// Agents.
    pub agents: usize,
    /// States S.
    pub states: usize,
    /// Lanes per block.
    pub lanes: usize,
    /// `q[(block·S + s)·lanes + lane]`.
    pub q: Vec<F>,
    /// Per-task entropy sums of the last step (folded in task order).
    partial: Vec<f64>,
}

impl<F: Float> DenseBeliefs<F> {
    /// All agents at the uniform prior D.
    pub fn uniform(agents: usize, states: usize, lanes: usize) -> Self {
        let blocks = agents.div_ceil(lanes);
        DenseBeliefs {
            agents,
            states,
            lanes,
            q: vec![F::from_f64(1.0 / states as f64); blocks * states * lanes],
            partial: vec![0.0; blocks.div_ceil(BLOCKS)],
        }
    }

    /// Agent `i`'s belief in state `s`.
    pub fn get(&self, i: usize, s: usize) -> F {
        let (b, l) = (i / self.lanes, i % self.lanes);
        self.q[(b * self.states + s) * self.lanes + l]
    }
}

/// State: the posteriors (the entropy partials are this step's scratch).
impl<F: Float> microcosm_engine::checkpoint::State for DenseBeliefs<F> {
    fn save(&self, e: &mut microcosm_engine::checkpoint::Encoder) -> std::io::Result<()> {
        e.slice(&self.q)
    }

    fn load(
        &mut self,
        d: &mut microcosm_engine::checkpoint::Decoder,
    ) -> Result<(), microcosm_engine::checkpoint::Corrupt> {
        d.slice_into(&mut self.q)
    }
}

impl<F> microcosm_engine::Footprint for DenseBeliefs<F> {
    fn heap_bytes(&self) -> usize {
        self.q.heap_bytes() + self.partial.heap_bytes()
    }
}

/// Lane vectors per state of a task's work space: the prior (then A q for
/// action 0), B_u q, and the logarithms for action 0.
pub const WORK: usize = 3;

/// Blocks of agents per parallel task (fixed: task boundaries never depend
/// on the thread count).
pub const BLOCKS: usize = 1;

/// One task: consecutive blocks of agents.
pub struct Task<'a, F: Float, const L: usize> {
    /// Tables.
    pub t: &'a DenseTables<F>,
    /// The model (observation sampling).
    pub m: &'a Model,
    /// γ, α.
    pub p: Precision<F>,
    /// Random draws of this step.
    pub draws: Draws,
    /// Index of the task's first agent.
    pub first: usize,
    /// The task's beliefs (whole blocks).
    pub q: &'a mut [[F; L]],
    /// The task's agents.
    pub agents: &'a mut [Agent],
    /// Work space: [`WORK`]·S lane vectors.
    pub work: &'a mut [[F; L]],
    /// Whether to sum the posterior entropies.
    pub entropy: bool,
}

impl<F: Float, const L: usize> Job for Task<'_, F, L> {
    type Out = f64;

    #[inline(always)]
    fn run(self) -> f64 {
        let s_n = self.t.states;
        let mut h = 0.0;
        for (b, (q, agents)) in self
            .q
            .chunks_mut(s_n)
            .zip(self.agents.chunks_mut(L))
            .enumerate()
        {
            h += block::<F, L>(
                self.t,
                self.m,
                &self.p,
                self.draws,
                self.first + b * L,
                q,
                agents,
                self.work,
                self.entropy,
            );
        }
        h
    }
}

/// Observe, infer, plan and act for one block of `L` agents (fewer in the
/// last block: the spare lanes compute on a dummy agent and are not written
/// back). Returns the sum of the real lanes' posterior entropies (0 unless
/// `entropy`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<F: Float, const L: usize>(
    t: &DenseTables<F>,
    m: &Model,
    p: &Precision<F>,
    draws: Draws,
    first: usize,
    q: &mut [[F; L]],
    agents: &mut [Agent],
    work: &mut [[F; L]],
    entropy: bool,
) -> f64 {
    let n = agents.len();
    // Observe, and the action uniforms.
    let mut obs = [0u32; L];
    let mut prev = [0u8; L];
    let mut ua = [F::ZERO; L];
    for (l, a) in agents.iter().enumerate() {
        let (uo, uu) = draws.uniforms((first + l) as u64);
        obs[l] = m.sample_obs(a.pos as usize, uo);
        prev[l] = a.action;
        ua[l] = F::from_f64(uu);
    }
    let (neg, h) = update::<F, L>(t, q, work, &prev, &obs, entropy);
    let h_sum: f64 = h[..n].iter().map(|x| x.to_f64()).sum();
    // Act.
    let mut act = [0u8; L];
    decide(&neg, p, &ua, &mut act);
    for (l, a) in agents.iter_mut().enumerate() {
        a.obs = obs[l];
        a.action = act[l];
    }
    h_sum
}

/// Steps all agents, tasks of [`BLOCKS`] blocks in parallel, and
/// returns the sum of posterior entropies, folded in task order.
#[allow(clippy::too_many_arguments)]
pub fn step<F: Float, const L: usize>(
    scratch: &microcosm_engine::prelude::ScratchArenas,
    simd: microcosm_engine::simd::Simd,
    t: &DenseTables<F>,
    m: &Model,
    p: Precision<F>,
    draws: Draws,
    beliefs: &mut DenseBeliefs<F>,
    agents: &mut [Agent],
    entropy: bool,
) -> f64 {
    let s_n = t.states;
    let DenseBeliefs { q, partial, .. } = beliefs;
    let (q, _) = q.as_chunks_mut::<L>();
    scratch.reserve_per_task(WORK * s_n * std::mem::size_of::<[F; L]>());
    partial
        .par_iter_mut()
        .zip(q.par_chunks_mut(s_n * BLOCKS))
        .zip(agents.par_chunks_mut(L * BLOCKS))
        .enumerate()
        // Split down to single tasks, so an idle worker can steal one at the
        // end (rayon would otherwise run runs of 4 tasks without splitting:
        // at 1,000 agents, 2-thread steps were ~5% slower).
        .with_max_len(1)
        .for_each(|(i, ((out, q), agents))| {
            scratch.with(|bump| {
                let work = bump.alloc_slice_fill_copy(WORK * s_n, [F::ZERO; L]);
                *out = simd.run(Task::<F, L> {
                    t,
                    m,
                    p,
                    draws,
                    first: i * L * BLOCKS,
                    q,
                    agents,
                    work,
                    entropy,
                });
            })
        });
    partial.iter().sum()
}

/// Prior, inference, entropy and plan for one block of `L` agents, given
/// each lane's previous action and new observation: `q` (the block's last
/// posterior, S lane vectors) becomes the new posterior; returns neg_efe per
/// action and lane, and each lane's posterior entropy (0 unless `entropy`).
/// `work` holds [`WORK`]·S lane vectors; `t` gives B (as a gather,
/// `into`/`stays`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn update<F: Float, const L: usize>(
    t: &DenseTables<F>,
    q: &mut [[F; L]],
    work: &mut [[F; L]],
    prev: &[u8; L],
    obs: &[u32; L],
    entropy: bool,
) -> ([[F; L]; ACTIONS], [F; L]) {
    let s_n = t.states;
    assert!(
        work.len() >= WORK * s_n,
        "work space: {WORK}·S lane vectors"
    );
    let (prior, rest) = work.split_at_mut(s_n);
    let (qn, ln0) = rest.split_at_mut(s_n);
    let zero = [F::ZERO; L];
    // Prior = B_{last action} q: per state, the lanes whose action keeps
    // them there, plus per action the lanes it moves in from a neighbour.
    let mut present = [false; ACTIONS];
    for &u in prev {
        present[u as usize] = true;
    }
    if present[1..].iter().any(|&x| x) {
        let mask: [[F; L]; ACTIONS] = std::array::from_fn(|u| {
            std::array::from_fn(|l| {
                if prev[l] as usize == u {
                    F::ONE
                } else {
                    F::ZERO
                }
            })
        });
        for (s, (to, (into, &stays))) in prior
            .iter_mut()
            .zip(t.into.iter().zip(&t.stays))
            .enumerate()
        {
            let mut keep = [F::ZERO; L];
            for (u, mu) in mask.iter().enumerate() {
                if stays >> u & 1 == 1 {
                    keep = std::array::from_fn(|l| keep[l] + mu[l]);
                }
            }
            let x = &q[s];
            let mut acc: [F; L] = std::array::from_fn(|l| keep[l] * x[l]);
            for u in 1..ACTIONS {
                let n = into[u];
                let y = if n == NONE { &zero } else { &q[n as usize] };
                acc = std::array::from_fn(|l| mask[u][l].mul_add(y[l], acc[l]));
            }
            *to = acc;
        }
    } else {
        prior.copy_from_slice(q);
    }
    // Infer: q = λπ / Σ λπ.
    let eps = F::EPS;
    for (qs, pr) in q.iter_mut().zip(prior.iter()) {
        for l in 0..L {
            qs[l] = pr[l].max(eps) * eps;
        }
    }
    for l in 0..L {
        let o = obs[l] as usize;
        for k in 0..t.row_len[o] as usize {
            let s = t.row_idx[o][k] as usize;
            q[s][l] = prior[s][l].max(eps) * t.row_lik[o][k];
        }
    }
    let mut z = [F::ZERO; L];
    for qs in q.iter() {
        for l in 0..L {
            z[l] = z[l] + qs[l];
        }
    }
    for qs in q.iter_mut() {
        for l in 0..L {
            qs[l] = qs[l] / z[l];
        }
    }
    let ln_eps = eps.ln();
    let mut ent = [F::ZERO; L];
    if entropy {
        for qs in q.iter() {
            let lq = ln_floored(qs, eps, ln_eps, t.skip_invisible);
            for l in 0..L {
                ent[l] = (F::ZERO - qs[l]).mul_add(lq[l], ent[l]);
            }
        }
    }
    // Plan: neg_efe_u = H[A qn_u] + Σ_s q(s) G_u(s). The prior is spent:
    // its space keeps A q (action 0) for the rows that other actions reuse.
    let qo0 = prior;
    let mut neg = [[F::ZERO; L]; ACTIONS];
    for (u, negu) in neg.iter_mut().enumerate() {
        let src: &[[F; L]] = if u == 0 {
            q
        } else {
            for (s, (to, into)) in qn.iter_mut().zip(&t.into).enumerate() {
                let stays = F::from_f64((t.stays[s] >> u & 1) as f64);
                let n = into[u];
                let (x, y) = (&q[s], if n == NONE { &zero } else { &q[n as usize] });
                *to = std::array::from_fn(|l| stays.mul_add(x[l], y[l]));
            }
            qn
        };
        let mut h = [F::ZERO; L];
        let mut d = [F::ZERO; L];
        for (o, qs_o) in q.iter().enumerate() {
            let g = t.g[o][u];
            for l in 0..L {
                d[l] = qs_o[l].mul_add(g, d[l]);
            }
            let r = t.reuse[o][u];
            if r != NONE {
                let (qo, lq) = (&qo0[r as usize], &ln0[r as usize]);
                for l in 0..L {
                    h[l] = qo[l].mul_add(lq[l], h[l]);
                }
                continue;
            }
            let (idx, w) = (&t.row_idx[o], &t.row_w[o]);
            let (x0, x1, x2, x3, x4) = (
                &src[idx[0] as usize],
                &src[idx[1] as usize],
                &src[idx[2] as usize],
                &src[idx[3] as usize],
                &src[idx[4] as usize],
            );
            let qo: [F; L] = std::array::from_fn(|l| {
                w[4].mul_add(
                    x4[l],
                    w[3].mul_add(
                        x3[l],
                        w[2].mul_add(x2[l], w[1].mul_add(x1[l], w[0] * x0[l])),
                    ),
                )
            });
            // Most o, once beliefs are sharp, are seen by no lane.
            let lq = ln_floored(&qo, eps, ln_eps, t.skip_invisible);
            for l in 0..L {
                h[l] = qo[l].mul_add(lq[l], h[l]);
            }
            if u == 0 {
                qo0[o] = qo;
                ln0[o] = lq;
            }
        }
        for l in 0..L {
            negu[l] = d[l] - h[l];
        }
    }
    (neg, ent)
}

/// `ln max(x, ε)` per lane. Where every lane is at or under ε (no lane
/// sees that observation, or believes in that state) that is `ln ε` in
/// every lane: with `skip`, the same bits without the logarithms.
#[inline(always)]
fn ln_floored<F: Float, const L: usize>(x: &[F; L], eps: F, ln_eps: F, skip: bool) -> [F; L] {
    if skip && x.iter().all(|&v| v <= eps) {
        [ln_eps; L]
    } else {
        std::array::from_fn(|l| x[l].max(eps).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::world::{Map, Model};
    use microcosm_engine::simd::{Job, Simd};

    struct Update<'a, F: Float, const L: usize> {
        t: &'a DenseTables<F>,
        q: Vec<[F; L]>,
        prev: [u8; L],
        obs: [u32; L],
    }

    type Out<F, const L: usize> = (Vec<[F; L]>, [[F; L]; ACTIONS], [F; L]);

    impl<F: Float, const L: usize> Job for Update<'_, F, L> {
        type Out = Out<F, L>;
        #[inline(always)]
        fn run(mut self) -> Self::Out {
            let mut work = vec![[F::ZERO; L]; WORK * self.t.states];
            let (neg, ent) =
                update::<F, L>(self.t, &mut self.q, &mut work, &self.prev, &self.obs, true);
            (self.q, neg, ent)
        }
    }

    /// The kernel compiled for each instruction set (fused multiply-adds in
    /// hardware, or in software on the baseline) gives the same bits.
    fn variants_agree<F: Float, const L: usize>() {
        let map = Map::parse("......\n.#..#.\n..G...\n.#....\n").unwrap();
        let m = Model::new(&map, &[], 0.85, 3.0).unwrap();
        let t = DenseTables::<F>::new(&m);
        let s_n = m.states;
        // Some agents sure, some unsure, some uniform.
        let q: Vec<[F; L]> = (0..s_n)
            .map(|s| {
                std::array::from_fn(|l| {
                    let w = ((s * 7 + l * 13) % 11) as f64 + if s == l % s_n { 40.0 } else { 0.1 };
                    F::from_f64(if l % 5 == 0 {
                        1.0 / s_n as f64
                    } else {
                        w / (60.0 * s_n as f64)
                    })
                })
            })
            .collect();
        let prev = std::array::from_fn(|l| (l % ACTIONS) as u8);
        let obs = std::array::from_fn(|l| ((l * 3) % s_n) as u32);
        let runs: Vec<Out<F, L>> = Simd::available()
            .into_iter()
            .map(|simd| {
                simd.run(Update {
                    t: &t,
                    q: q.clone(),
                    prev,
                    obs,
                })
            })
            .collect();
        let bits = |o: &Out<F, L>| -> Vec<f64> {
            o.0.iter()
                .flatten()
                .chain(o.1.iter().flatten())
                .chain(o.2.iter())
                .map(|x| x.to_f64())
                .collect()
        };
        for r in &runs[1..] {
            let (a, b) = (bits(&runs[0]), bits(r));
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        assert!(bits(&runs[0]).iter().all(|x| x.is_finite()));
    }

    /// The update with its shortcuts (skipped logarithms, reused rows)
    /// and without them give the same bits.
    fn shortcuts_change_nothing<F: Float, const L: usize>(m: &Model, q: &[[F; L]], obs: [u32; L]) {
        let t = DenseTables::<F>::new(m);
        let s_n = m.states;
        let prev = std::array::from_fn(|l| (l % ACTIONS) as u8);
        let run = |shortcuts: bool| {
            let (mut q, mut work) = (q.to_vec(), vec![[F::ZERO; L]; WORK * s_n]);
            let t = DenseTables {
                skip_invisible: shortcuts,
                reuse: if shortcuts {
                    t.reuse.clone()
                } else {
                    vec![[NONE; ACTIONS]; s_n]
                },
                ..t.clone()
            };
            let out = update::<F, L>(&t, &mut q, &mut work, &prev, &obs, true);
            let mut v: Vec<u64> = q.iter().flatten().map(|x| x.to_f64().to_bits()).collect();
            v.extend(
                out.0
                    .iter()
                    .flatten()
                    .chain(&out.1)
                    .map(|x| x.to_f64().to_bits()),
            );
            v
        };
        assert_eq!(run(true), run(false));
    }

    /// Sharp beliefs (every agent sure of one of a few states), where most
    /// observations are invisible to every lane, and spread beliefs on a
    /// map with walls.
    fn shortcuts<F: Float, const L: usize>() {
        let m = Model::new(&Map::open(8, 8), &[], 0.9, 4.0).unwrap();
        let tiny = F::from_f64(1e-30);
        let q: Vec<[F; L]> = (0..m.states)
            .map(|s| std::array::from_fn(|l| if s == (l % 3) * 2 { F::ONE } else { tiny }))
            .collect();
        shortcuts_change_nothing::<F, L>(&m, &q, std::array::from_fn(|l| ((l % 3) * 2) as u32));
        let map = Map::parse("......\n.#..#.\n..G...\n.#....\n").unwrap();
        let m = Model::new(&map, &[], 0.85, 3.0).unwrap();
        let q: Vec<[F; L]> = (0..m.states)
            .map(|s| {
                std::array::from_fn(|l| {
                    F::from_f64(((s * 7 + l * 13) % 11) as f64 / (5.0 * m.states as f64))
                })
            })
            .collect();
        shortcuts_change_nothing::<F, L>(
            &m,
            &q,
            std::array::from_fn(|l| ((l * 3) % m.states) as u32),
        );
    }

    #[test]
    fn skipped_logarithms_and_reused_rows_change_no_bit() {
        shortcuts::<f32, 64>();
        shortcuts::<f64, 32>();
    }

    /// On an open n × n grid a move is a translation: for "up", entry t of
    /// row o reads `(B_up q)(t) = q(t + n)`, so row o matches row o + n
    /// when each neighbour t of o has the degree of t + n (A's weight is
    /// (1 − p)/deg). For o in row r that asks rows r − 1 ..= r + 2 to be
    /// interior (1 ..= n − 2): r in 2 ..= n − 4, n − 5 rows of n cells, and
    /// the same count for each of the four moves. Nothing else matches (a
    /// row at the edge has a two-term or a missing entry, or a weight
    /// (1 − p)/3 where its image has (1 − p)/4).
    #[test]
    fn reused_rows_are_the_interior_translations() {
        for n in [5u32, 6, 10, 17] {
            let m = Model::new(&Map::open(n, n), &[], 0.9, 4.0).unwrap();
            let t = DenseTables::<f32>::new(&m);
            let n = n as usize;
            assert_eq!(t.reused(), 4 * (n - 5) * n, "{n} × {n}");
            for o in 0..n * n {
                let (r, c) = (o / n, o % n);
                let up = t.reuse[o][1];
                assert_eq!(up != NONE, (2..=n - 4).contains(&r), "up at ({r}, {c})");
                if up != NONE {
                    assert_eq!(up as usize, o + n);
                }
            }
        }
    }

    #[test]
    fn simd_variants_are_bitwise_identical() {
        variants_agree::<f32, 64>();
        variants_agree::<f64, 32>();
    }
}
