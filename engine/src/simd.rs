//! Runtime choice of vector instructions for hot kernels.
//!
//! A kernel written as plain loops over fixed-size lane arrays (no FMA
//! contraction, no reassociation) is compiled once per [`Simd`] variant by
//! implementing [`Job`] and calling [`Simd::run`]: the same code inlined into
//! functions with `#[target_feature(enable = ...)]`, chosen at run time by
//! [`Simd::detect`]. Every variant computes the same bits; wider ones are
//! faster. (The MD force kernel and the agents' belief kernel use it.)

/// The widest vector instructions this CPU has, for the kernel. Every
/// variant runs the same scalar-semantics code (no FMA contraction, no
/// reassociation), so all give bitwise-identical forces; wider ones are faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// The build's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2.
    Avx2,
    /// AVX-512F (16 f32 lanes: one cluster pair per instruction).
    Avx512,
}

impl Simd {
    /// Detects the CPU's best variant.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }

    /// Every variant this CPU can run, baseline first (for tests that
    /// check the variants agree bit for bit).
    pub fn available() -> Vec<Simd> {
        let mut v = vec![Simd::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Simd::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Simd::Avx512);
            }
        }
        v
    }

    /// Runs `job` with this variant's instructions.
    #[expect(
        unsafe_code,
        reason = "calling a #[target_feature] function needs the feature; `detect` checked it"
    )]
    pub fn run<J: Job>(self, job: J) -> J::Out {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Avx512` is only produced by `detect` and
            // `available` after `is_x86_feature_detected!("avx512f")`.
            Simd::Avx512 => unsafe { run_avx512(job) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for "avx2" and "fma".
            Simd::Avx2 => unsafe { run_avx2(job) },
            _ => job.run(),
        }
    }
}

/// Kernel work, compiled once per [`Simd`] variant: `run` is inlined into a
/// function with the variant's target features.
pub trait Job {
    /// What the work returns.
    type Out;
    /// Does the work (implementations should be `#[inline(always)]`, so
    /// the body is compiled with the caller's target features).
    fn run(self) -> Self::Out;

    /// The same work, compiled for [`Simd::Avx512`]: `run` unless the job
    /// has a variant of its own (which may use AVX-512F intrinsics, since
    /// it only ever runs on a CPU that has them). It must compute the same
    /// bits as `run`.
    #[inline(always)]
    fn run_avx512(self) -> Self::Out
    where
        Self: Sized,
    {
        self.run()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<J: Job>(job: J) -> J::Out {
    job.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_avx512<J: Job>(job: J) -> J::Out {
    job.run_avx512()
}
