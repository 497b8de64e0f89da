//! The float type of beliefs (f32 or f64) and the transcendental functions
//! the belief kernels use.
//!
//! f64 uses the standard library's `ln`/`exp`. f32 uses branch-free
//! versions on bit patterns, so a loop over a lane array compiles to vector
//! instructions (libm's `logf` does not vectorise): `ln` reduces x to
//! m·2ᵉ with m in [√½, √2) and sums 2·atanh((m−1)/(m+1)) to s⁹ (one
//! division and four multiply-adds: 1.3× faster in the dense kernel than
//! Cephes' nine-term `logf` polynomial); `exp` is Cephes' `expf`. Their
//! error is ≤ 2 ulp on the arguments the kernels pass
//! (`ln` of values ≥ 2.2·10⁻¹⁶, `exp` of values ≤ 0); the unit tests hold them
//! to that against f64.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Sub};

/// A belief float: f32 (default) or f64.
pub trait Float:
    Copy
    + bytemuck::Pod
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The log floor (2.220446049250313e-16 rounded to this type).
    const EPS: Self;
    /// Conversion from f64 (rounding).
    fn from_f64(x: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// Natural logarithm of a positive normal number.
    fn ln(self) -> Self;
    /// eˣ (0 below the type's range).
    fn exp(self) -> Self;
    /// `self · a + b` with one rounding (a fused multiply-add: one
    /// instruction where the CPU has FMA, the same bits everywhere).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// The larger of two numbers; a NaN `self` stays NaN (as numpy's and
    /// JAX's `clip`), so a corrupted belief is not silently floored back to
    /// a valid one. One `max` instruction.
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        if o > self { o } else { self }
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const EPS: f64 = super::world::EPS;
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn ln(self) -> f64 {
        f64::ln(self)
    }
    #[inline(always)]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    #[inline(always)]
    fn mul_add(self, a: f64, b: f64) -> f64 {
        f64::mul_add(self, a, b)
    }
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const EPS: f32 = super::world::EPS as f32;
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn ln(self) -> f32 {
        ln_f32(self)
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        exp_f32(self)
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32) -> f32 {
        f32::mul_add(self, a, b)
    }
}

/// ln x for positive normal f32 (branch-free, ≤ 2 ulp).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^e with m in [√½, √2).
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let e = (e + big as i32) as f32;
    let m = if big { m * 0.5 } else { m };
    // ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172: 2s + 2s·z·P(z).
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let mut p = 1.0 / 9.0_f32;
    p = p.mul_add(z, 1.0 / 7.0);
    p = p.mul_add(z, 0.2);
    p = p.mul_add(z, 1.0 / 3.0);
    let t = s + s;
    (t * z).mul_add(p, e * -2.121_944_4e-4) + e.mul_add(0.693_359_4, t)
}

/// eˣ for f32 (Cephes `expf`, branch-free); 0 below −87.3, +∞ above 88.7.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LO: f32 = -87.3;
    const HI: f32 = 88.7;
    let xc = x.clamp(LO, HI);
    // n = floor(x·log2(e) + 0.5), without a libm call.
    let t = xc * std::f32::consts::LOG2_E + 0.5;
    let ti = t as i32;
    let n = ti - (t < ti as f32) as i32;
    let r = xc - n as f32 * 0.693_359_4 - n as f32 * -2.121_944_4e-4;
    let z = r * r;
    let mut y = 1.987_569_1e-4_f32;
    y = y.mul_add(r, 1.398_199_9e-3);
    y = y.mul_add(r, 8.333_452e-3);
    y = y.mul_add(r, 4.166_579_6e-2);
    y = y.mul_add(r, 1.666_666_5e-1);
    y = y.mul_add(r, 0.5);
    y = y.mul_add(z, r) + 1.0;
    // 2ⁿ in two factors, so n = 128 (x near 88.7) stays finite.
    let h = n >> 1;
    let p1 = f32::from_bits(((h + 127) as u32) << 23);
    let p2 = f32::from_bits(((n - h + 127) as u32) << 23);
    let v = y * p1 * p2;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn ln_f32_within_2_ulp() {
        // Every 2,700th float from 2.2e-16 to 1e6, and every float in
        // [0.99, 1.01] (where ln x is small and cancellation would show).
        let mut worst: f64 = 0.0;
        let mut x = 2.2e-16_f32;
        while x < 1e6 {
            worst = worst.max(ulps(ln_f32(x), (x as f64).ln()));
            x *= 1.000_37;
        }
        let mut x = 0.99_f32;
        while x < 1.01 {
            if x != 1.0 {
                worst = worst.max(ulps(ln_f32(x), (x as f64).ln()));
            }
            x = f32::from_bits(x.to_bits() + 1);
        }
        assert!(worst <= 2.0, "ln_f32 is off by {worst} ulp");
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn exp_f32_within_2_ulp() {
        let mut worst: f64 = 0.0;
        let mut x = -87.0_f32;
        while x < 88.0 {
            worst = worst.max(ulps(exp_f32(x), (x as f64).exp()));
            x += 0.013_7;
        }
        assert!(worst <= 2.0, "exp_f32 is off by {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
    }
}
