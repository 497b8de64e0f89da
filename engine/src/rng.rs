//! Counter-based random streams keyed by `(seed, stream, step, entity)`.
//!
//! A draw never depends on which thread makes it or on what other entities
//! drew before: the generator for entity `i` at step `t` of stream `s` is a
//! pure function of the key. That is what makes results identical with 1 or N
//! threads. The generator is SplitMix64 (Steele, Lea & Flood 2014) started at
//! a state derived from the key with the same 64-bit finaliser; each further
//! draw adds the golden-ratio increment and finalises again, so the n-th draw
//! is `mix(key_state + n·γ)` — counter-based in the Random123 sense.

/// Golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 / Stafford "Mix13" finaliser: a bijection on u64 with full avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream identifier: each system that draws random numbers uses its own,
/// so adding a system never shifts another system's draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub u64);

impl StreamId {
    /// A stream id from a stable name (FNV-1a of the bytes), usable in `const`.
    pub const fn named(name: &str) -> StreamId {
        let bytes = name.as_bytes();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
            i += 1;
        }
        StreamId(h)
    }
}

/// The generator for one `(seed, stream, step, entity)` key. Cheap to create
/// (four multiplies and finalisers); create one per entity per step.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The generator for a key.
    #[inline]
    pub fn new(seed: u64, stream: StreamId, step: u64, entity: u64) -> Rng {
        let mut h = mix64(seed ^ 0x6A09_E667_F3BC_C908);
        h = mix64(h ^ stream.0.wrapping_mul(0xD1B5_4A32_D192_ED03));
        h = mix64(h ^ step.wrapping_mul(0xAEF1_7502_108E_F2D9));
        h = mix64(h ^ entity.wrapping_mul(0xDB4F_0B91_75AE_2165));
        Rng { state: h }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    #[inline]
    pub fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire 2019). `n > 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let t = n.wrapping_neg() % n;
            while (m as u64) < t {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }

    /// Standard normal deviate (Marsaglia polar method; one of each pair is used,
    /// so the draw count per call does not depend on history).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    /// Number of failures before the first success of Bernoulli(p) trials,
    /// `p` in (0, 1]: the gap to the next event when events occur
    /// independently with probability `p` (by inversion).
    #[inline]
    pub fn geometric(&mut self, p: f64) -> u64 {
        if p >= 1.0 {
            return 0;
        }
        let g = (self.uniform_open0().ln() / (-p).ln_1p()).floor();
        if g >= u64::MAX as f64 {
            u64::MAX
        } else {
            g as u64
        }
    }
}

/// [`Rng`] is a `rand_core` generator, so `rand_distr`'s samplers (ziggurat
/// normal and exponential, ...) draw from the counter-based streams.
impl rand_core::TryRng for Rng {
    type Error = core::convert::Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next_u64() >> 32) as u32)
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let b = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: StreamId = StreamId::named("test");

    #[test]
    fn same_key_same_draws_different_key_different_draws() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, S, 3, 11).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut keys = std::collections::HashSet::new();
        for seed in 0..4 {
            for step in 0..4 {
                for e in 0..4 {
                    keys.insert(Rng::new(seed, S, step, e).next_u64());
                }
            }
        }
        assert_eq!(keys.len(), 64, "every key gives a distinct first draw");
        assert_ne!(StreamId::named("a"), StreamId::named("b"));
    }

    #[test]
    fn uniform_mean_and_variance_within_5_sigma() {
        let n = 200_000;
        let mut r = Rng::new(1, S, 0, 0);
        let xs: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let se = (1.0f64 / 12.0 / n as f64).sqrt();
        assert!((mean - 0.5).abs() < 5.0 * se, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "var {var}");
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn normal_moments_within_5_sigma() {
        let n = 200_000;
        let mut r = Rng::new(2, S, 0, 0);
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
        // Var of the sample variance of N(0,1) is 2/n.
        assert!(
            (var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
            "var {var}"
        );
    }

    #[test]
    fn below_is_unbiased_and_in_range() {
        let mut r = Rng::new(3, S, 0, 0);
        let mut counts = [0u32; 7];
        let n = 70_000;
        for _ in 0..n {
            counts[r.below(7) as usize] += 1;
        }
        let expect = n as f64 / 7.0;
        let sd = (n as f64 * (1.0 / 7.0) * (6.0 / 7.0)).sqrt();
        for c in counts {
            assert!((c as f64 - expect).abs() < 5.0 * sd, "{counts:?}");
        }
    }

    #[test]
    fn geometric_mean_matches_theory() {
        let p = 0.1;
        let n = 100_000;
        let mut r = Rng::new(4, S, 0, 0);
        let mean = (0..n).map(|_| r.geometric(p) as f64).sum::<f64>() / n as f64;
        let expect = (1.0 - p) / p;
        let sd = ((1.0 - p) / (p * p) / n as f64).sqrt();
        assert!((mean - expect).abs() < 5.0 * sd, "mean {mean} vs {expect}");
        assert_eq!(r.geometric(1.0), 0);
    }
}
