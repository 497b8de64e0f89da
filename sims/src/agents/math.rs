//! The float type of beliefs (f32 or f64) and the transcendental functions
//! the belief kernels use.
//!
//! f64 uses the standard library's `ln`/`exp`. f32 uses Cephes' `logf` and
//! `expf` polynomials written branch-free on bit patterns, so a loop over a
//! lane array compiles to vector instructions (libm's `logf` does not
//! vectorise). Their error is ≤ 2 ulp on the arguments the kernels pass
//! (`ln` of values ≥ 2.2·10⁻¹⁶, `exp` of values ≤ 0); the unit tests hold them
//! to that against f64.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Sub};

/// A belief float: f32 (default) or f64.
pub trait Float:
    Copy
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
}

/// ln x for positive normal f32 (Cephes `logf`, branch-free).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = (e - small as i32) as f32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461_1e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_5e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 0.333_333_3;
    y = y * m * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    (m + y) + 0.693_359_4 * e
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
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5;
    y = y * z + r + 1.0;
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
        let mut worst: f64 = 0.0;
        let mut x = 2.2e-16_f32;
        while x < 1e6 {
            let u = ulps(ln_f32(x), (x as f64).ln());
            worst = worst.max(if (x as f64).ln().abs() < 1e-3 { 0.0 } else { u });
            // Near 1 the result is tiny: hold an absolute bound instead.
            assert!(
                (ln_f32(x) as f64 - (x as f64).ln()).abs()
                    < 1.2e-7 * (x as f64).ln().abs().max(1e-3)
            );
            x *= 1.000_37;
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
