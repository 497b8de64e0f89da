//! The model's update, written literally after pymdp's formulas in f64:
//! logs and softmaxes, dense vectors over all S states. The replay plugin
//! uses it, and the tests hold the fast kernels to it.
//!
//! * infer: `qs = softmax(log A[o, :] + log prior)`;
//! * plan: for each action u, `qn = B_u qs`, `qo = A qn`,
//!   `neg_efe_u = H[qo] − Σ_s qn(s)·H[A[:, s]] + qo·C`;
//!   `q_pi = softmax(γ·neg_efe + log E)`, E uniform;
//! * act: `u ~ softmax(α·log q_pi)`;
//! * predict: next prior = `B_u qs`;
//!
//! where `log x` is `log(max(x, 2.220446049250313e-16))` and
//! `H[p] = −Σ p·log p` (pymdp's `log_stable` and `stable_entropy`).

use super::world::{ACTIONS, EPS, Model};

/// pymdp's `log_stable`.
#[inline]
pub fn log_stable(x: f64) -> f64 {
    x.max(EPS).ln()
}

/// Softmax in place: `exp(x − max x) / Σ`.
pub fn softmax(x: &mut [f64]) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut z = 0.0;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        z += *v;
    }
    for v in x.iter_mut() {
        *v /= z;
    }
}

/// Entropy with the log floor: `−Σ p·log_stable(p)`.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter().map(|&x| x * log_stable(x)).sum::<f64>()
}

/// The uniform prior D.
pub fn uniform(m: &Model, out: &mut [f64]) {
    out.fill(1.0 / m.states as f64);
}

/// Posterior after observing `o`: `softmax(log A[o, :] + log prior)`.
pub fn infer(m: &Model, prior: &[f64], o: usize, post: &mut [f64]) {
    for (q, &p) in post.iter_mut().zip(prior) {
        *q = log_stable(0.0) + log_stable(p);
    }
    m.for_row(o, |s, a| post[s] = log_stable(a) + log_stable(prior[s]));
    softmax(post);
}

/// `B_u qs` into `out`.
pub fn predict(m: &Model, qs: &[f64], u: usize, out: &mut [f64]) {
    out.fill(0.0);
    for (s, &q) in qs.iter().enumerate() {
        out[m.succ[s][u] as usize] += q;
    }
}

/// Negative expected free energy of each one-step policy and q_pi.
/// `work` holds 2·S numbers.
pub fn plan(
    m: &Model,
    qs: &[f64],
    gamma: f64,
    work: &mut [f64],
) -> ([f64; ACTIONS], [f64; ACTIONS]) {
    let (qn, qo) = work.split_at_mut(m.states);
    let mut neg = [0.0; ACTIONS];
    for (u, g) in neg.iter_mut().enumerate() {
        predict(m, qs, u, qn);
        qo.fill(0.0);
        for (s, &q) in qn.iter().enumerate() {
            m.for_column(s, |o, a| qo[o] += a * q);
        }
        let h = entropy(qo);
        let amb: f64 = qn.iter().zip(&m.h_a).map(|(q, h)| q * h).sum();
        let util: f64 = qo.iter().zip(&m.c).map(|(q, c)| q * c).sum();
        *g = h - amb + util;
    }
    let ln_e = (1.0 / ACTIONS as f64).ln();
    let mut q_pi = neg.map(|g| gamma * g + ln_e);
    softmax(&mut q_pi);
    (neg, q_pi)
}

/// Action probabilities `softmax(α·log q_pi)`.
pub fn action_probs(q_pi: &[f64; ACTIONS], alpha: f64) -> [f64; ACTIONS] {
    let mut p = q_pi.map(|q| alpha * log_stable(q));
    softmax(&mut p);
    p
}

/// Inverse-CDF draw from `p` with a uniform `u` in [0, 1): the first action
/// whose cumulative probability exceeds `u` (the last if rounding leaves none).
pub fn sample<F: super::math::Float>(p: &[F; ACTIONS], u: F) -> usize {
    let mut c = F::ZERO;
    for (a, &x) in p.iter().enumerate() {
        c = c + x;
        if u < c {
            return a;
        }
    }
    ACTIONS - 1
}
