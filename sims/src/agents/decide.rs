//! Policy posterior and action choice for a block of agents at once:
//! `q_pi = softmax(γ·neg_efe + log E)`, `u ~ softmax(α·log q_pi)`, lane by
//! lane over `L` agents so the exponentials and logarithms vectorise.

use super::math::Float;
use super::reference::sample;
use super::world::ACTIONS;

/// γ, α and log E in the kernel's float type.
#[derive(Debug, Clone, Copy)]
pub struct Precision<F> {
    /// Policy precision γ.
    pub gamma: F,
    /// Action precision α.
    pub alpha: F,
    /// log E(u) = log(1/5).
    pub ln_e: F,
}

impl<F: Float> Precision<F> {
    /// From the scenario's γ and α.
    pub fn new(gamma: f64, alpha: f64) -> Self {
        Precision {
            gamma: F::from_f64(gamma),
            alpha: F::from_f64(alpha),
            ln_e: F::from_f64((1.0 / ACTIONS as f64).ln()),
        }
    }
}

/// Softmax over the action axis of `x` (per lane). Lane arrays are built by
/// value (`from_fn`) so the loops compile to vector instructions.
#[inline(always)]
fn softmax_lanes<F: Float, const L: usize>(x: &[[F; L]; ACTIONS]) -> [[F; L]; ACTIONS] {
    let mut m = x[0];
    for row in &x[1..] {
        m = std::array::from_fn(|l| m[l].max(row[l]));
    }
    let e: [[F; L]; ACTIONS] = std::array::from_fn(|u| {
        let r = x[u];
        std::array::from_fn(|l| (r[l] - m[l]).exp())
    });
    let mut z = [F::ZERO; L];
    for r in &e {
        z = std::array::from_fn(|l| z[l] + r[l]);
    }
    std::array::from_fn(|u| {
        let r = e[u];
        std::array::from_fn(|l| r[l] / z[l])
    })
}

/// From `neg_efe[u][lane]`, the policy posterior (returned) and the actions
/// drawn with the uniforms `u[lane]` (written to `act`).
#[inline(always)]
pub fn decide<F: Float, const L: usize>(
    neg: &[[F; L]; ACTIONS],
    p: &Precision<F>,
    uniforms: &[F; L],
    act: &mut [u8; L],
) -> [[F; L]; ACTIONS] {
    let x: [[F; L]; ACTIONS] = std::array::from_fn(|u| {
        let g = neg[u];
        std::array::from_fn(|l| p.gamma * g[l] + p.ln_e)
    });
    let q_pi = softmax_lanes(&x);
    let pa = if p.alpha == F::ONE {
        // softmax(log max(q, ε)) = max(q, ε) / Σ max(q, ε): the same numbers
        // up to rounding, without 10 transcendentals per agent.
        let c: [[F; L]; ACTIONS] = std::array::from_fn(|u| {
            let q = q_pi[u];
            std::array::from_fn(|l| q[l].max(F::EPS))
        });
        let mut z = [F::ZERO; L];
        for r in &c {
            z = std::array::from_fn(|l| z[l] + r[l]);
        }
        std::array::from_fn(|u| {
            let r = c[u];
            std::array::from_fn(|l| r[l] / z[l])
        })
    } else {
        let y: [[F; L]; ACTIONS] = std::array::from_fn(|u| {
            let q = q_pi[u];
            std::array::from_fn(|l| p.alpha * q[l].max(F::EPS).ln())
        });
        softmax_lanes(&y)
    };
    for l in 0..L {
        let probs = std::array::from_fn(|u| pa[u][l]);
        act[l] = sample(&probs, uniforms[l]) as u8;
    }
    q_pi
}
