//! The force kernel's entry loop for one set of coefficients in f32, written
//! in AVX-512F intrinsics: one cluster pair (4 × 4 atoms) per register, two
//! entries at a time.
//!
//! It computes what the portable loop ([`super::pair_block`] and
//! [`super::Wide::sub_pairs`]) computes, operation for operation (no FMA, the
//! same order of every sum), so the forces, energies and prune decisions are
//! bit for bit the same on every [`Simd`](microcosm_engine::simd::Simd)
//! variant (`simd_variants_are_bitwise_identical` checks it). What it adds is
//! the order of the instructions: the compiler lays the portable loop out one
//! entry after the other, and an entry is a ~60-cycle chain (distances, a
//! division, the force, the j-sums) that the core cannot overlap with the next
//! one before its scheduler fills. Here two entries' chains are interleaved
//! in the source, so each waits while the other computes.
//!
//! Every function here is `#[target_feature(enable = "avx512f")]`; they are
//! called only from code that `Simd::Avx512` runs (see [`super::Wide`]).

use std::arch::x86_64::*;

use microcosm_engine::neighbor::{CLUSTER, Entry, Writes};

use super::{At, Lanes, P, PairCoef, UPPER};

/// [`UPPER`] as a lane mask.
const UPPER_MASK: __mmask16 = {
    let mut m = 0u16;
    let mut k = 0;
    while k < P {
        if UPPER[k] {
            m |= 1 << k;
        }
        k += 1;
    }
    m
};

/// The coefficients and constants of the kernel, in registers.
struct Consts {
    one: __m512,
    cutsq: __m512,
    lj1: __m512,
    lj2: __m512,
    lj3: __m512,
    lj4: __m512,
    offset: __m512,
    near_r2: __m512,
}

/// One entry's cluster pair: per-pair forces, energies and virials (when
/// `E`), whether a pair is within the prune radius (when `N`).
struct Pair {
    cj: usize,
    f: [__m512; 3],
    e: __m512,
    v: __m512,
    near: bool,
}

/// Loads 16 floats.
#[target_feature(enable = "avx512f")]
#[inline]
fn load16(x: &[f32; P]) -> __m512 {
    // SAFETY: reads the 16 floats of `x`.
    unsafe { _mm512_loadu_ps(x.as_ptr()) }
}

/// Loads 4 floats.
#[target_feature(enable = "avx512f")]
#[inline]
fn load4(x: &[f32; CLUSTER]) -> __m128 {
    // SAFETY: reads the 4 floats of `x`.
    unsafe { _mm_loadu_ps(x.as_ptr()) }
}

/// Stores 16 floats.
#[target_feature(enable = "avx512f")]
#[inline]
fn store16(x: &mut [f32; P], v: __m512) {
    // SAFETY: writes the 16 floats of `x`.
    unsafe { _mm512_storeu_ps(x.as_mut_ptr(), v) }
}

/// [`super::pair_block`] for one entry, with [`super::offset`] and
/// [`super::broadcast_j`] (the same operations in the same order).
#[target_feature(enable = "avx512f")]
#[inline]
fn pair<const E: bool, const N: bool>(
    at: &At<'_, '_, f32>,
    oi: __m128,
    xi: &[__m512; 3],
    k: &Consts,
    e: Entry,
) -> Pair {
    let cj = e.cj as usize;
    let s = e.shift as usize & 31;
    let img = at.ctx.images;
    // (oj + (whole − oi)) + rest, lanes 0..3.
    let oj = at.g.cluster_origin4(cj);
    // SAFETY: reads the 4 floats of `oj`.
    let oj = unsafe { _mm_loadu_ps(oj.as_ptr()) };
    let off = _mm_add_ps(
        _mm_add_ps(oj, _mm_sub_ps(load4(&img.whole[s]), oi)),
        load4(&img.rest[s]),
    );
    // x_j + offset, repeated for each i-lane; then x_i − that.
    let xj = &at.ctx.pos[cj];
    let bx = _mm512_add_ps(
        _mm512_broadcast_f32x4(load4(&xj[0])),
        _mm512_broadcastss_ps(off),
    );
    let by = _mm512_add_ps(
        _mm512_broadcast_f32x4(load4(&xj[1])),
        _mm512_broadcastss_ps(_mm_shuffle_ps::<0x55>(off, off)),
    );
    let bz = _mm512_add_ps(
        _mm512_broadcast_f32x4(load4(&xj[2])),
        _mm512_broadcastss_ps(_mm_shuffle_ps::<0xaa>(off, off)),
    );
    let dx = _mm512_sub_ps(xi[0], bx);
    let dy = _mm512_sub_ps(xi[1], by);
    let dz = _mm512_sub_ps(xi[2], bz);
    let r2 = _mm512_add_ps(
        _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy)),
        _mm512_mul_ps(dz, dz),
    );
    let allowed = if cj == at.ci { UPPER_MASK } else { 0xffff };
    let inside = _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(allowed, r2, k.cutsq);
    let near = N && _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(allowed, r2, k.near_r2) != 0;
    let r2s = _mm512_mask_blend_ps(inside, k.one, r2);
    let ri = _mm512_div_ps(k.one, r2s);
    let r6 = _mm512_mul_ps(_mm512_mul_ps(ri, ri), ri);
    let f = _mm512_mul_ps(
        _mm512_mul_ps(r6, _mm512_sub_ps(_mm512_mul_ps(k.lj1, r6), k.lj2)),
        ri,
    );
    let fp = _mm512_maskz_mov_ps(inside, f);
    let (mut en, mut vir) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    if E {
        let u = _mm512_sub_ps(
            _mm512_mul_ps(r6, _mm512_sub_ps(_mm512_mul_ps(k.lj3, r6), k.lj4)),
            k.offset,
        );
        en = _mm512_maskz_mov_ps(inside, u);
        vir = _mm512_mul_ps(fp, r2);
    }
    Pair {
        cj,
        f: [
            _mm512_mul_ps(dx, fp),
            _mm512_mul_ps(dy, fp),
            _mm512_mul_ps(dz, fp),
        ],
        e: en,
        v: vir,
        near,
    }
}

/// `out[d][l] -= Σ_a f[d][a·C + l]`, summed as [`super::reduce_lanes`] does
/// ((a0 + a2) + (a1 + a3)): eight shuffles and adds for the three
/// components, and one masked read-modify-write of the 12 values.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn sub_reduced(out: &mut Lanes<f32>, f: [__m512; 3]) {
    let [x, y, z] = f;
    // Quarters are i-lanes: [x0, x1, y0, y1] + [x2, x3, y2, y3].
    let h = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(x, y),
        _mm512_shuffle_f32x4::<0xee>(x, y),
    );
    // [z0, z1] + [z2, z3].
    let zh = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(z)));
    let hz = _mm512_castps256_ps512(_mm256_add_ps(_mm512_castps512_ps256(z), zh));
    // [x0+x2, y0+y2, z0+z2, ·] + [x1+x3, y1+y3, z1+z3, ·].
    let r = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x08>(h, hz),
        _mm512_shuffle_f32x4::<0x5d>(h, hz),
    );
    let o = out.as_mut_ptr().cast::<f32>();
    // SAFETY: `Lanes<f32>` is `[[f32; 4]; 3]`, 12 contiguous floats; the
    // mask 0x0fff reads and writes exactly those.
    unsafe {
        let v = _mm512_maskz_loadu_ps(0x0fff, o);
        _mm512_mask_storeu_ps(o, 0x0fff, _mm512_sub_ps(v, r));
    }
}

/// [`super::Wide::sub_pairs`] from per-pair arrays.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn sub_pairs(out: &mut Lanes<f32>, f: &[[f32; P]; 3]) {
    sub_reduced(out, [load16(&f[0]), load16(&f[1]), load16(&f[2])]);
}

/// The per-pair accumulators of an i-cluster.
pub(super) struct Acc<'a> {
    pub f: &'a mut [[f32; P]; 3],
    pub e: &'a mut [f32; P],
    pub v: &'a mut [f32; P],
}

/// Adds an entry's pairs to the i-cluster's accumulators and subtracts
/// them from its j-cluster.
#[target_feature(enable = "avx512f")]
#[inline]
fn add<W: Writes<Lanes<f32>>, const E: bool>(
    p: &Pair,
    f: &mut [__m512; 3],
    en: &mut __m512,
    vir: &mut __m512,
    w: &mut W,
) {
    for d in 0..3 {
        f[d] = _mm512_add_ps(f[d], p.f[d]);
    }
    if E {
        *en = _mm512_add_ps(*en, p.e);
        *vir = _mm512_add_ps(*vir, p.v);
    }
    sub_reduced(w.one(p.cj), p.f);
}

/// The active entries of i-cluster `at.ci` (one set of coefficients `c`):
/// adds each to `acc` and subtracts it from its j-cluster in `w`, in entry
/// order. Returns the bits of the entries with no pair within √`near_r2`
/// (when `N`; bit k % 64 for entry k) and the number of entries.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn active<W: Writes<Lanes<f32>>, const E: bool, const N: bool>(
    at: &At<'_, '_, f32>,
    c: &PairCoef<f32>,
    entries: impl Iterator<Item = Entry>,
    w: &mut W,
    acc: Acc<'_>,
    near_r2: f32,
) -> (u64, usize) {
    let k = Consts {
        one: _mm512_set1_ps(1.0),
        cutsq: load16(&c.cutsq),
        lj1: load16(&c.lj1),
        lj2: load16(&c.lj2),
        lj3: load16(&c.lj3),
        lj4: load16(&c.lj4),
        offset: load16(&c.offset),
        near_r2: _mm512_set1_ps(near_r2),
    };
    // SAFETY: reads the 4 floats of `at.oi`.
    let oi = unsafe { _mm_loadu_ps(at.oi.as_ptr()) };
    let xi = [load16(&at.xi[0]), load16(&at.xi[1]), load16(&at.xi[2])];
    let mut f = [load16(&acc.f[0]), load16(&acc.f[1]), load16(&acc.f[2])];
    let (mut en, mut vir) = (load16(acc.e), load16(acc.v));
    let (mut flip, mut count) = (0u64, 0);
    let mut entries = entries.enumerate();
    while let Some((ka, a)) = entries.next() {
        let pa = pair::<E, N>(at, oi, &xi, &k, a);
        if N && !pa.near {
            flip |= 1 << (ka % 64);
        }
        count = ka + 1;
        let Some((kb, b)) = entries.next() else {
            add::<W, E>(&pa, &mut f, &mut en, &mut vir, w);
            break;
        };
        let pb = pair::<E, N>(at, oi, &xi, &k, b);
        if N && !pb.near {
            flip |= 1 << (kb % 64);
        }
        count = kb + 1;
        add::<W, E>(&pa, &mut f, &mut en, &mut vir, w);
        add::<W, E>(&pb, &mut f, &mut en, &mut vir, w);
    }
    for d in 0..3 {
        store16(&mut acc.f[d], f[d]);
    }
    store16(acc.e, en);
    store16(acc.v, vir);
    (flip, count)
}
