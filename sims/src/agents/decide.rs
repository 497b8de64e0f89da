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

/// Softmax over the action axis of `x` (per lane), in place.
#[inline(always)]
fn softmax_lanes<F: Float, const L: usize>(x: &mut [[F; L]; ACTIONS]) {
    let mut m = x[0];
    for row in &x[1..] {
        for l in 0..L {
            m[l] = m[l].max(row[l]);
        }
    }
    let mut z = [F::ZERO; L];
    for row in x.iter_mut() {
        for l in 0..L {
            row[l] = (row[l] - m[l]).exp();
            z[l] = z[l] + row[l];
        }
    }
    for row in x.iter_mut() {
        for l in 0..L {
            row[l] = row[l] / z[l];
        }
    }
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
    let mut q_pi = [[F::ZERO; L]; ACTIONS];
    for (q, g) in q_pi.iter_mut().zip(neg) {
        for l in 0..L {
            q[l] = p.gamma * g[l] + p.ln_e;
        }
    }
    softmax_lanes(&mut q_pi);
    let mut pa = [[F::ZERO; L]; ACTIONS];
    for (a, q) in pa.iter_mut().zip(&q_pi) {
        for l in 0..L {
            a[l] = p.alpha * q[l].max(F::EPS).ln();
        }
    }
    softmax_lanes(&mut pa);
    for l in 0..L {
        let probs = std::array::from_fn(|u| pa[u][l]);
        act[l] = sample(&probs, uniforms[l]) as u8;
    }
    q_pi
}
