//! The 12-6 Lennard-Jones pair potential with a cutoff (LAMMPS `lj/cut`), its
//! neighbour list, and the cluster-pair force kernel.
//!
//! E(r) = 4ε[(σ/r)¹² − (σ/r)⁶] for r < r_c (minus E(r_c) when `shift = true`).
//! Pair parameters: per type ε and σ mixed by Lorentz–Berthelot
//! (ε_ab = √(ε_a ε_b), σ_ab = (σ_a + σ_b)/2) unless the pair is given.
//!
//! **Kernel.** Positions are copied each step into cluster order (4 atoms per
//! cluster, x/y/z lanes), relative to a per-cluster origin so that f32 lanes
//! keep ~2⁻²⁴ relative precision of the *local* coordinate; each list entry
//! adds the offset of the two origins and the image shift, rounded once:
//! origins lie on a power-of-two grid, so their difference plus the shift's
//! multiple of the grid step is exact in f32, and the shift's rest is added
//! last (see [`ClusterPairList::origin_quantum`]). The
//! 4×4 interactions of a cluster pair are computed lane-parallel; forces are
//! accumulated per atom in the kernel's precision (`precision = "mixed"`: f32,
//! `"double"`: f64), energies and virials per cluster pair in f64. Newton's
//! third law halves the work; the list's coloured task partition (or, for
//! small systems, its spill tasks) makes the force sums independent of the
//! thread count. The lane loops are compiled per [`Simd`] variant and give
//! the same bits on each; the AVX-512 build runs untyped entries through
//! intrinsics, two at a time (`avx512`, the same operations in the same
//! order).
//!
//! **Dynamic pruning** (exact). After each build, and whenever some atom may
//! have moved δ/2 (δ = 0.75 × skin) since the last prune, each
//! i-cluster's entries are re-partitioned in place: those with a pair within
//! r_c + δ (+ a rounding slack) first, the kernel runs over that prefix only.
//! An entry left out has all pairs beyond r_c until the next prune, so it
//! would add exact zeros: forces are those of the whole list (bit for bit right
//! after a build, as kept entries keep their order). The prune right after a
//! build tests every entry in a pass of its own; later ones change ~1% of the
//! entries each way and are done by the force tasks on their own i-clusters:
//! the kernel tests each active entry with the distances it computes anyway,
//! then tests the pruned ones (computing any back within reach), and the
//! i-cluster's entries are re-partitioned right there — the same list, and
//! the same forces, as a separate prune before the force pass, for about
//! half its cost (`md/lj-liquid`: ~2.3 → ~1.3 ms a prune). Displacements are
//! measured against 16-bit positions stored at each build or prune; with
//! `check = true` the rebuild test adds up the bounds of the prune intervals.

// Lane loops index several arrays in lockstep: that is what vectorises.
#![expect(
    clippy::needless_range_loop,
    reason = "lane loops index several arrays in lockstep"
)]

use std::collections::BTreeMap;

use glam::DVec3;
use microcosm_engine::neighbor::{
    CLUSTER, COLORS, ClusterPairList, Entry, Geometry, ImageOffsets, Keep, NO_ROW, PeriodicBox,
    PruneChunk, SPILL_TASKS, SpillPlan, Writes,
};
use microcosm_engine::par;
use microcosm_engine::prelude::*;
use microcosm_engine::simd::{Job, Simd};
use rayon::prelude::*;
use serde::Deserialize;

use super::{AtomType, Position, SimBox, Species};

/// Per-type LJ parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeLj {
    /// ε.
    #[serde(default = "one")]
    pub epsilon: f64,
    /// σ.
    #[serde(default = "one")]
    pub sigma: f64,
}

/// Explicit parameters of one type pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairLj {
    /// The two type names.
    pub types: [String; 2],
    /// ε.
    pub epsilon: f64,
    /// σ.
    pub sigma: f64,
    /// Cutoff of this pair (default: the global cutoff).
    pub cutoff: Option<f64>,
}

/// Neighbour list rebuild policy (LAMMPS `neigh_modify every N check yes|no`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborPolicy {
    /// Consider a rebuild every this many steps.
    #[serde(default = "one_u64")]
    pub every: u64,
    /// Rebuild only if some atom moved more than skin/2 since the last build.
    #[serde(default = "yes")]
    pub check: bool,
}

impl Default for NeighborPolicy {
    fn default() -> Self {
        NeighborPolicy {
            every: 1,
            check: true,
        }
    }
}

/// Kernel precision.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 lanes and force accumulators, f64 energies (default).
    #[default]
    Mixed,
    /// f64 throughout.
    Double,
}

fn one() -> f64 {
    1.0
}
fn one_u64() -> u64 {
    1
}
fn yes() -> bool {
    true
}
fn default_skin() -> f64 {
    0.3
}

/// The `lj` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lj {
    /// Global cutoff r_c (absolute distance).
    pub cutoff: f64,
    /// Verlet skin.
    #[serde(default = "default_skin")]
    pub skin: f64,
    /// Per-type ε, σ by type name (default 1, 1).
    #[serde(default)]
    pub types: BTreeMap<String, TypeLj>,
    /// Explicit pairs (override mixing).
    #[serde(default)]
    pub pairs: Vec<PairLj>,
    /// Shift the energy to zero at the cutoff.
    #[serde(default)]
    pub shift: bool,
    /// Rebuild policy.
    #[serde(default)]
    pub neighbor: NeighborPolicy,
    /// Kernel precision.
    #[serde(default)]
    pub precision: Precision,
}

impl PluginConfig for Lj {
    const NAME: &'static str = "lj";
    const SUMMARY: &'static str =
        "MD Lennard-Jones 12-6 pair forces with a cluster-pair Verlet list";

    fn validate(&self) -> Result<(), Invalid> {
        let pos = |k: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Invalid::new(k, "must be a positive number"))
            }
        };
        pos("cutoff", self.cutoff)?;
        if !(self.skin.is_finite() && self.skin >= 0.0) {
            return Err(Invalid::new("skin", "must be a finite number ≥ 0"));
        }
        if self.neighbor.every == 0 {
            return Err(Invalid::new("neighbor.every", "must be at least 1"));
        }
        for (name, t) in &self.types {
            pos(&format!("types.{name}.epsilon"), t.epsilon)?;
            pos(&format!("types.{name}.sigma"), t.sigma)?;
        }
        for (i, p) in self.pairs.iter().enumerate() {
            pos(&format!("pairs[{i}].epsilon"), p.epsilon)?;
            pos(&format!("pairs[{i}].sigma"), p.sigma)?;
            if let Some(c) = p.cutoff {
                pos(&format!("pairs[{i}].cutoff"), c)?;
            }
        }
        Ok(())
    }
}

/// Per type-pair constants (LAMMPS `lj1..lj4`, `cutsq`, `offset`), row-major
/// `[ti * n + tj]`.
#[derive(Resource, Debug, Clone)]
pub struct LjTable {
    /// Types.
    pub n: usize,
    /// 48 ε σ¹².
    pub lj1: Vec<f64>,
    /// 24 ε σ⁶.
    pub lj2: Vec<f64>,
    /// 4 ε σ¹².
    pub lj3: Vec<f64>,
    /// 4 ε σ⁶.
    pub lj4: Vec<f64>,
    /// r_c².
    pub cutsq: Vec<f64>,
    /// E(r_c) when shifted, else 0.
    pub offset: Vec<f64>,
    /// Largest cutoff.
    pub max_cut: f64,
}

impl LjTable {
    /// Builds the table for the named species.
    pub fn new(cfg: &Lj, names: &[String]) -> Result<LjTable, (String, String)> {
        for name in cfg.types.keys() {
            if !names.contains(name) {
                return Err((
                    format!("types.{name}"),
                    "not a type of the `atoms` plugin".into(),
                ));
            }
        }
        let n = names.len();
        let mut t = LjTable {
            n,
            lj1: vec![0.0; n * n],
            lj2: vec![0.0; n * n],
            lj3: vec![0.0; n * n],
            lj4: vec![0.0; n * n],
            cutsq: vec![0.0; n * n],
            offset: vec![0.0; n * n],
            max_cut: 0.0,
        };
        let ty = |name: &String| {
            cfg.types.get(name).copied().unwrap_or(TypeLj {
                epsilon: 1.0,
                sigma: 1.0,
            })
        };
        let mut set = |a: usize, b: usize, eps: f64, sig: f64, rc: f64| {
            for (i, j) in [(a, b), (b, a)] {
                let k = i * n + j;
                t.lj1[k] = 48.0 * eps * sig.powi(12);
                t.lj2[k] = 24.0 * eps * sig.powi(6);
                t.lj3[k] = 4.0 * eps * sig.powi(12);
                t.lj4[k] = 4.0 * eps * sig.powi(6);
                t.cutsq[k] = rc * rc;
                t.offset[k] = if cfg.shift {
                    let r6 = (sig / rc).powi(6);
                    4.0 * eps * (r6 * r6 - r6)
                } else {
                    0.0
                };
            }
            t.max_cut = t.max_cut.max(rc);
        };
        for a in 0..n {
            for b in a..n {
                let (ta, tb) = (ty(&names[a]), ty(&names[b]));
                set(
                    a,
                    b,
                    (ta.epsilon * tb.epsilon).sqrt(),
                    0.5 * (ta.sigma + tb.sigma),
                    cfg.cutoff,
                );
            }
        }
        for (i, p) in cfg.pairs.iter().enumerate() {
            let find = |s: &String| {
                names.iter().position(|x| x == s).ok_or_else(|| {
                    (
                        format!("pairs[{i}].types"),
                        format!("`{s}` is not a type of the `atoms` plugin"),
                    )
                })
            };
            let (a, b) = (find(&p.types[0])?, find(&p.types[1])?);
            set(a, b, p.epsilon, p.sigma, p.cutoff.unwrap_or(cfg.cutoff));
        }
        Ok(t)
    }
}

/// Kernel constants in the kernel's precision.
#[derive(Debug, Clone)]
struct Coeffs<F> {
    n: usize,
    lj1: Vec<F>,
    lj2: Vec<F>,
    lj3: Vec<F>,
    lj4: Vec<F>,
    cutsq: Vec<F>,
    offset: Vec<F>,
}

impl<F: Real> Coeffs<F> {
    fn new(t: &LjTable) -> Self {
        let c = |v: &Vec<f64>| v.iter().map(|&x| F::from_f64(x)).collect();
        Coeffs {
            n: t.n,
            lj1: c(&t.lj1),
            lj2: c(&t.lj2),
            lj3: c(&t.lj3),
            lj4: c(&t.lj4),
            cutsq: c(&t.cutsq),
            offset: c(&t.offset),
        }
    }
}

/// The neighbour list and its rebuild bookkeeping (a resource).
#[derive(Resource, Debug)]
pub struct Neighbors {
    /// The cluster-pair list.
    pub list: ClusterPairList,
    /// Skin.
    pub skin: f64,
    /// Largest pair cutoff.
    pub cutoff: f64,
    /// Rebuild policy.
    pub policy: NeighborPolicy,
    /// Positions at the last build or prune, row order, quantised to 16 bits
    /// per coordinate (see [`quantum`]; they are only compared against skin/2
    /// and the prune buffer).
    x_build: Vec<[u16; 3]>,
    /// Largest error of the quantised positions in `x_build`.
    x_err: f64,
    /// Upper bound on the largest displacement between the last build and
    /// the last prune (sum of the prune intervals' largest displacements).
    moved_before: f64,
    /// Prune buffer δ: entries none of whose pairs is within `cutoff + δ` are
    /// pruned, until some atom has moved δ/2 (0: no pruning).
    pub prune_buffer: f64,
    /// The list is to be pruned in this step's force pass.
    prune_due: bool,
    /// Step of the last build.
    pub last_build: u64,
    /// Builds so far.
    pub builds: u64,
    /// Prunes so far.
    pub prunes: u64,
}

/// Prune buffer δ as a fraction of the skin (see the module docs). In `md/lj-liquid` (skin 0.3)
/// δ = 0.225 keeps ~62% of the entries and prunes every ~4 steps; 0.4 to
/// 0.83 of the skin measured within a few percent of each other, 0.33 slower.
const PRUNE_FRACTION: f64 = 0.75;

/// Slack on the prune radius for the rounding of distances (the prune's and
/// the kernel's, in f32 at worst): an absolute part, and a part relative to
/// the longest box edge for the rounding of coordinates up to twice it.
const PRUNE_SLACK: f64 = 1e-3;
const PRUNE_SLACK_REL: f64 = 4e-6;

/// State: the list, its reference positions and the rebuild/prune bookkeeping.
impl State for Neighbors {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        self.list.save(e)?;
        e.slice(&self.x_build)?;
        e.f64(self.x_err)?;
        e.f64(self.moved_before)?;
        e.bool(self.prune_due)?;
        e.u64(self.last_build)?;
        e.u64(self.builds)?;
        e.u64(self.prunes)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        self.list.load(d)?;
        d.vec_into(&mut self.x_build)?;
        self.x_err = d.f64()?;
        self.moved_before = d.f64()?;
        self.prune_due = d.bool()?;
        self.last_build = d.u64()?;
        self.builds = d.u64()?;
        self.prunes = d.u64()?;
        Ok(())
    }
}

impl Footprint for Neighbors {
    fn heap_bytes(&self) -> usize {
        self.list.heap_bytes() + self.x_build.heap_bytes()
    }
}

/// Floating-point type of the kernel lanes.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// From f64 (rounded).
    fn from_f64(x: f64) -> Self;
    /// To f64 (exact).
    fn to_f64(self) -> f64;
}

/// `out[d][l] -= Σ_a f[d][a·C + l]`, summed by [`reduce_lanes`].
#[inline(always)]
fn sub_reduced<F: Real>(out: &mut Lanes<F>, f: &[[F; P]; 3]) {
    for d in 0..3 {
        for (o, x) in out[d].iter_mut().zip(reduce_lanes(&f[d])) {
            *o -= x;
        }
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// x/y/z lanes of one cluster.
pub type Lanes<F> = [[F; CLUSTER]; 3];

/// A precision's kernel pieces in AVX-512F intrinsics, where it has them
/// ([`avx512`]: f32): the j-sums and the entry loop.
///
/// The kernel's tasks are compiled once per [`Simd`] variant; the one for
/// [`Simd::Avx512`] (`V512` in [`task`], instantiated only by
/// [`Job::run_avx512`], which [`Simd::run`] calls only for `Simd::Avx512`,
/// which [`Simd::detect`] returns only after detecting AVX-512F) may call
/// these. That is what makes their `unsafe` calls sound.
trait Wide: Real {
    /// `out[d][l] -= Σ_a f[d][a·C + l]`: a j-cluster's forces from its
    /// cluster pair's, summed over the i-lanes as `reduce_lanes` orders
    /// the sum. With `V512` (code built for AVX-512F only: see
    /// `Job::run_avx512`) a type may use a shorter instruction sequence
    /// for the same sums.
    #[inline(always)]
    fn sub_pairs<const V512: bool>(out: &mut Lanes<Self>, f: &[[Self; P]; 3]) {
        sub_reduced(out, f);
    }

    /// Runs i-cluster `at.ci`'s active entries with the coefficients `c`
    /// (as the portable loop in [`task`] does, to the bit), or returns
    /// `None` to leave them to it. Some: the flip bits and the count.
    #[inline(always)]
    fn active512<W: Writes<Lanes<Self>>, const E: bool, const N: bool>(
        _at: &At<'_, '_, Self>,
        _c: &PairCoef<Self>,
        _entries: impl Iterator<Item = Entry>,
        _w: &mut W,
        _acc: (&mut [[Self; P]; 3], &mut [Self; P], &mut [Self; P]),
        _near_r2: Self,
    ) -> Option<(u64, usize)> {
        None
    }
}

impl Wide for f64 {}

impl Wide for f32 {
    #[inline(always)]
    #[cfg_attr(
        target_arch = "x86_64",
        expect(unsafe_code, reason = "calls the AVX-512F variant (see `Wide`)")
    )]
    fn sub_pairs<const V512: bool>(out: &mut Lanes<f32>, f: &[[f32; P]; 3]) {
        #[cfg(target_arch = "x86_64")]
        if V512 {
            // SAFETY: `V512` code runs only on CPUs with AVX-512F (see
            // `Wide`).
            unsafe { avx512::sub_pairs(out, f) };
            return;
        }
        sub_reduced(out, f);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    #[expect(unsafe_code, reason = "calls the AVX-512F variant (see `Wide`)")]
    fn active512<W: Writes<Lanes<f32>>, const E: bool, const N: bool>(
        at: &At<'_, '_, f32>,
        c: &PairCoef<f32>,
        entries: impl Iterator<Item = Entry>,
        w: &mut W,
        (f, e, v): (&mut [[f32; P]; 3], &mut [f32; P], &mut [f32; P]),
        near_r2: f32,
    ) -> Option<(u64, usize)> {
        let acc = avx512::Acc { f, e, v };
        // SAFETY: called only from `V512` code (see `Wide`): the CPU has
        // AVX-512F.
        Some(unsafe { avx512::active::<W, E, N>(at, c, entries, w, acc, near_r2) })
    }
}

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "AVX-512F intrinsics, reached only from code built for AVX-512F"
)]
mod avx512;

/// Cluster-ordered coordinates, types and forces in precision `F`.
#[derive(Debug, Default)]
pub struct Packed<F> {
    /// Per cluster: coordinates relative to the cluster's origin
    /// ([`ClusterPairList::cluster_origin`]).
    pub pos: Vec<Lanes<F>>,
    /// Per cluster: type of each lane (empty with a single type).
    pub types: Vec<[u8; CLUSTER]>,
    /// Per cluster: forces.
    pub force: Vec<Lanes<F>>,
    /// Spill buffers of small systems' force passes (see
    /// [`ClusterPairList::spills`]; empty otherwise).
    pub spill: Vec<Lanes<F>>,
    coeffs: Option<Coeffs<F>>,
}

impl<F> Packed<F> {
    fn heap_bytes(&self) -> usize {
        self.pos.heap_bytes()
            + self.types.heap_bytes()
            + self.force.heap_bytes()
            + self.spill.heap_bytes()
    }
}

/// Forces in cluster order, in the kernel's precision (a resource).
#[derive(Resource, Debug)]
pub enum Forces {
    /// f32 kernel.
    Mixed(Packed<f32>),
    /// f64 kernel.
    Double(Packed<f64>),
}

impl Forces {
    /// The force on the atom in `slot`.
    #[inline]
    pub fn at(&self, slot: u32) -> DVec3 {
        let (c, l) = (slot as usize / CLUSTER, slot as usize % CLUSTER);
        match self {
            Forces::Mixed(p) => DVec3::new(
                p.force[c][0][l] as f64,
                p.force[c][1][l] as f64,
                p.force[c][2][l] as f64,
            ),
            Forces::Double(p) => DVec3::new(p.force[c][0][l], p.force[c][1][l], p.force[c][2][l]),
        }
    }

    /// Adds `f` to the atom in `slot` of cluster `c` lane `l` (for other force plugins).
    pub fn add_cluster(&mut self, c: usize, f: impl Fn(usize) -> Option<DVec3>) {
        match self {
            Forces::Mixed(p) => add_lanes(&mut p.force[c], f),
            Forces::Double(p) => add_lanes(&mut p.force[c], f),
        }
    }

    /// Clusters.
    pub fn clusters(&self) -> usize {
        match self {
            Forces::Mixed(p) => p.force.len(),
            Forces::Double(p) => p.force.len(),
        }
    }
}

fn add_lanes<F: Real>(lanes: &mut Lanes<F>, f: impl Fn(usize) -> Option<DVec3>) {
    for l in 0..CLUSTER {
        if let Some(v) = f(l) {
            for d in 0..3 {
                lanes[d][l] += F::from_f64(v[d]);
            }
        }
    }
}

/// State: the forces of the last step (the next step's first half-kick uses
/// them); the packed positions are repacked every step.
impl State for Forces {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        match self {
            Forces::Mixed(p) => e.slice(&p.force),
            Forces::Double(p) => e.slice(&p.force),
        }
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        match self {
            Forces::Mixed(p) => d.vec_into(&mut p.force),
            Forces::Double(p) => d.vec_into(&mut p.force),
        }
    }
}

impl Footprint for Forces {
    fn heap_bytes(&self) -> usize {
        match self {
            Forces::Mixed(p) => p.heap_bytes(),
            Forces::Double(p) => p.heap_bytes(),
        }
    }
}

/// Potential energy and virial of the last sampled step (a resource).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct LjEnergy {
    /// Total potential energy.
    pub pe: f64,
    /// Σ r·F over pairs.
    pub virial: f64,
    /// Step they belong to.
    pub step: u64,
}

impl Plugin for Lj {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let bx = SimBox::of(b)?;
        let names = b.world().resource::<Species>().names.clone();
        let table = LjTable::new(self, &names).map_err(|(k, r)| b.key_error(&k, r))?;
        let r_list = table.max_cut + self.skin;
        if 2.0 * r_list > bx.min_len() {
            return Err(b.key_error(
                "cutoff",
                format!(
                    "cutoff + skin = {r_list} must be at most half the shortest box edge ({})",
                    bx.min_len() / 2.0
                ),
            ));
        }
        let forces = match self.precision {
            Precision::Mixed => Forces::Mixed(Packed {
                coeffs: Some(Coeffs::new(&table)),
                ..Default::default()
            }),
            Precision::Double => Forces::Double(Packed {
                coeffs: Some(Coeffs::new(&table)),
                ..Default::default()
            }),
        };
        b.insert_resource_with_footprint(Neighbors {
            list: ClusterPairList::default(),
            skin: self.skin,
            cutoff: table.max_cut,
            policy: self.neighbor,
            x_build: Vec::new(),
            x_err: 0.0,
            moved_before: 0.0,
            prune_buffer: PRUNE_FRACTION * self.skin,
            prune_due: false,
            last_build: 0,
            builds: 0,
            prunes: 0,
        });
        b.insert_resource_with_footprint(forces);
        b.checkpoint_resource::<Neighbors>();
        b.checkpoint_resource::<Forces>();
        b.insert_resource(table);
        b.insert_resource(LjEnergy::default());
        b.add_systems(Phase::Spatial, update_neighbors);
        b.add_systems(Phase::Interact, compute_forces);
        Ok(())
    }

    fn estimate(&self, s: &Scenario, e: &mut Estimate) {
        // From the density: list entries ≈ half the j-clusters whose bounding
        // boxes come within r_list of an i-cluster's.
        let n = e.entities as f64;
        let Some(atoms) = s.plugins.iter().find(|p| p.0 == "atoms") else {
            return;
        };
        let density = atoms
            .1
            .get("lattice")
            .and_then(|l| l.get("density"))
            .and_then(|d| d.as_float().or(d.as_integer().map(|i| i as f64)))
            .unwrap_or(0.8442);
        let edge = (CLUSTER as f64 / density).cbrt();
        let reach = self.cutoff + self.skin + edge;
        let clusters = n / CLUSTER as f64 * 1.1;
        let entries = clusters
            * (4.0 / 3.0 * std::f64::consts::PI * reach.powi(3) * density / CLUSTER as f64)
            / 2.0;
        let lane = match self.precision {
            Precision::Mixed => 4.0,
            Precision::Double => 8.0,
        };
        e.bytes("neighbour list entries", (entries * 4.0) as u64);
        e.bytes(
            "neighbour list per atom/cluster (slots, bbox, sort, x_build)",
            (n * (4.0 + 4.0 + 4.0 + 4.0 + 12.0) + clusters * (24.0 + 4.0)) as u64,
        );
        e.bytes(
            "packed positions and forces",
            (clusters * (CLUSTER as f64 * 6.0 * lane + 24.0 + 4.0)) as u64,
        );
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms"]
    }
}

/// Rebuilds the list when due (spatial phase): always in the setup pass; then
/// every `every` steps, if `check` only when an atom may have moved more than
/// skin/2 since the last build. Between builds, schedules a prune of the list
/// whenever an atom may have moved δ/2 since the last one (after a build too).
pub fn update_neighbors(
    clock: Res<Clock>,
    mut neigh: ResMut<Neighbors>,
    bx: Res<SimBox>,
    scratch: Res<ScratchArenas>,
    mut q: Query<&mut Position>,
) {
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(mut pos) = iter.next() else { return };
    let pos = pos.bypass_change_detection();
    let neigh = &mut *neigh;
    let first = clock.is_setup() || neigh.builds == 0;
    let due = first || clock.step - neigh.last_build >= neigh.policy.every;
    let pruning = neigh.prune_buffer > 0.0;
    // An upper bound on every atom's displacement since the reference
    // positions (the last build or prune).
    let moved = if !first && (pruning || (due && neigh.policy.check)) {
        let (lo, q) = quantum(&bx.0);
        let xb = &neigh.x_build;
        let simd = Simd::detect();
        let max2 = par::map_reduce(
            &scratch,
            pos,
            ATOM_CHUNK,
            0.0f64,
            |start, c| {
                simd.run(Moved {
                    pos: c,
                    reference: &xb[start..start + c.len()],
                    lo,
                    q,
                })
            },
            f64::max,
        );
        max2.sqrt() + neigh.x_err
    } else {
        0.0
    };
    let rebuild =
        due && (first || !neigh.policy.check || neigh.moved_before + moved > 0.5 * neigh.skin);
    if rebuild {
        let bx = bx.0;
        pos.par_chunks_mut(ATOM_CHUNK).for_each(|c| {
            for p in c {
                p.0 = DVec3::from_array(bx.wrap(p.0.to_array()));
            }
        });
        let n = pos.len();
        let r_list = neigh.cutoff + neigh.skin;
        neigh.list.build(bx, r_list, n, |r| pos[r].0.to_array());
        set_reference(neigh, pos, &bx, &scratch);
        neigh.moved_before = 0.0;
        neigh.prune_due = pruning;
        neigh.last_build = clock.step;
        neigh.builds += 1;
    } else if pruning && moved >= 0.5 * neigh.prune_buffer {
        set_reference(neigh, pos, &bx.0, &scratch);
        neigh.moved_before += moved;
        neigh.prune_due = true;
    }
}

/// The largest squared displacement of some atoms from their quantised
/// reference positions (a [`Job`], so that it is built for the CPU's
/// vector instructions).
struct Moved<'a> {
    pos: &'a [Position],
    reference: &'a [[u16; 3]],
    lo: f64,
    q: f64,
}

impl Job for Moved<'_> {
    type Out = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let (lo, q) = (self.lo, self.q);
        self.pos
            .iter()
            .zip(self.reference)
            .map(|(p, &b)| (p.0 - dequantise(b, lo, q)).length_squared())
            // `f64::max` without its NaN rule (a NaN is skipped either way;
            // non-finite atoms are the kick's to report), so the loop
            // vectorises.
            .fold(0.0, |m, d| if d > m { d } else { m })
    }
}

/// Stores the quantised positions as the new reference, and their largest error.
fn set_reference(
    neigh: &mut Neighbors,
    pos: &[Position],
    bx: &PeriodicBox,
    scratch: &ScratchArenas,
) {
    let (lo, q) = quantum(bx);
    let n = pos.len();
    neigh.x_build.resize(n, [0; 3]);
    let xb = &mut neigh.x_build;
    neigh.x_err = scratch.with(|bump| {
        let err = bump.alloc_slice_fill_copy(n.div_ceil(ATOM_CHUNK), 0.0f64);
        let simd = Simd::detect();
        err.par_iter_mut()
            .zip(xb.par_chunks_mut(ATOM_CHUNK))
            .zip(pos.par_chunks(ATOM_CHUNK))
            .for_each(|((e, xs), ps)| {
                *e = simd.run(Quantise {
                    pos: ps,
                    out: xs,
                    lo,
                    q,
                })
            });
        err.iter().copied().fold(0.0, f64::max).sqrt()
    });
}

/// Quantises some positions into `out`; returns the largest squared error
/// (a [`Job`], so that it is built for the CPU's vector instructions).
struct Quantise<'a> {
    pos: &'a [Position],
    out: &'a mut [[u16; 3]],
    lo: f64,
    q: f64,
}

impl Job for Quantise<'_> {
    type Out = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let (lo, q) = (self.lo, self.q);
        let mut e = 0.0f64;
        for (x, p) in self.out.iter_mut().zip(self.pos) {
            // Nearest step (`as` saturates to 0..=65535; the error below
            // accounts for atoms out of range).
            let u = (p.0 - lo) / q + 0.5;
            *x = [u.x as u16, u.y as u16, u.z as u16];
            let d = (dequantise(*x, lo, q) - p.0).length_squared();
            e = if d > e { d } else { e };
        }
        e
    }
}

/// The position a quantised reference stands for (see [`quantum`]).
#[inline(always)]
fn dequantise(b: [u16; 3], lo: f64, q: f64) -> DVec3 {
    DVec3::new(b[0] as f64, b[1] as f64, b[2] as f64) * q + lo
}

/// Origin and resolution of the quantised reference positions: 16 bits over
/// [−L/4, 5L/4) of the longest edge L (atoms drift out of the box between builds).
fn quantum(bx: &PeriodicBox) -> (f64, f64) {
    let l = bx.len.iter().copied().fold(0.0, f64::max);
    (-0.25 * l, 1.5 * l / 65535.0)
}

/// Packs positions and computes forces (interact phase); energy and virial
/// too on sampled steps.
pub fn compute_forces(
    clock: Res<Clock>,
    mut neigh: ResMut<Neighbors>,
    mut forces: ResMut<Forces>,
    mut energy: ResMut<LjEnergy>,
    scratch: Res<ScratchArenas>,
    q: Query<(&Position, Option<&AtomType>)>,
) {
    let Ok(mut iter) = q.contiguous_iter() else {
        return;
    };
    let Some((pos, types)) = iter.next() else {
        return;
    };
    let sample = clock.is_sample_step();
    let simd = Simd::detect();
    let neigh = &mut *neigh;
    // Entries with no pair within cutoff + δ (+ slack for rounding) cannot
    // come within the cutoff before some atom has moved δ/2.
    // Right after a build every entry is active: one pass tests them all.
    // Later prunes are done by the force tasks (see `run`).
    let prune = neigh.prune_due.then(|| {
        let l = neigh
            .list
            .periodic_box()
            .map_or(0.0, |b| b.len.iter().copied().fold(0.0, f64::max));
        let r = neigh.cutoff + neigh.prune_buffer + PRUNE_SLACK + PRUNE_SLACK_REL * l;
        let whole = neigh.last_build == clock.step;
        Prune { r2: r * r, whole }
    });
    if neigh.prune_due {
        neigh.prune_due = false;
        neigh.prunes += 1;
    }
    let list = &mut neigh.list;
    let spill = list.spills();
    let (pe, vir) = match &mut *forces {
        Forces::Mixed(p) => run::<f32>(p, list, pos, types, &scratch, sample, prune, simd, spill),
        Forces::Double(p) => run::<f64>(p, list, pos, types, &scratch, sample, prune, simd, spill),
    };
    if sample {
        *energy = LjEnergy {
            pe,
            virial: vir,
            step: clock.step,
        };
    }
}

/// A prune of the list in this step's force pass.
#[derive(Debug, Clone, Copy)]
struct Prune {
    /// The squared prune radius.
    r2: f64,
    /// Test every entry before the force pass (right after a build), rather
    /// than the pruned ones before it and the active ones in it.
    whole: bool,
}

/// Packs, prunes the list when `prune` says so, and computes the forces: as
/// spill tasks when `spill` (small systems: [`ClusterPairList::spills`]),
/// else as colour tasks, in colour order where their windows overlap and
/// with no barrier between colours
/// ([`run_tasks`](microcosm_engine::neighbor::TaskPartition::run_tasks)).
///
/// A prune right after a build tests every entry before the force pass.
/// Later ones find few changes (~1% of the entries each way) and are done
/// by the force tasks, each on its own i-clusters' entries (the list lends
/// them out: [`ClusterPairList::task_chunks`]): the kernel marks the active
/// entries with no pair within the prune radius from the distances it
/// computes anyway, then tests the pruned ones (computing any that came
/// within reach), and the i-cluster's entries are re-partitioned right there
/// ([`PruneChunk::toggle`]). The list comes out the same as from a whole
/// prune, and the forces too: an entry about to be pruned adds exact zeros,
/// and one coming back is computed after the active ones, where a prune
/// would have put it.
#[allow(clippy::too_many_arguments)]
fn run<F: Wide>(
    p: &mut Packed<F>,
    list: &mut ClusterPairList,
    pos: &[Position],
    types: Option<&[AtomType]>,
    scratch: &ScratchArenas,
    energy: bool,
    prune: Option<Prune>,
    simd: Simd,
    spill: bool,
) -> (f64, f64) {
    pack(p, list, pos, types, !spill);
    let images = Images::<F>::new(&list.image_offsets());
    let r2 = prune.map_or(F::ZERO, |p| F::from_f64(p.r2));
    if let Some(Prune { whole: true, .. }) = prune {
        let (packed, images) = (&p.pos, &images);
        scratch.with(|bump| {
            let mut chunks = list.prune_chunks(PACK_CHUNK, bump);
            chunks.par_iter_mut().for_each(|c| {
                simd.run(PruneJob {
                    pos: packed,
                    chunk: c,
                    images,
                    r2,
                })
            });
        });
    }
    // A later prune: the force tasks test their entries as they go.
    let near = prune.is_some_and(|p| !p.whole).then_some(r2);
    let coeffs = p.coeffs.as_ref().expect("coefficients are set at build");
    let (packed, ty) = (&p.pos, &p.types);
    let typed = coeffs.n > 1;
    if spill {
        let plan = list.spill_plan();
        let room = SPILL_TASKS * list.max_clusters().min(list.window() * 5 / 4 + 64);
        let nc = list.clusters();
        return scratch.with(|bump| {
            let mut chunks = list.entry_chunks(plan.bounds(), bump);
            let ctx = Ctx {
                pos: packed,
                types: ty,
                coeffs,
                images: &images,
                typed,
                near,
            };
            let spill_buf = (&mut p.spill, room);
            let pass = SpillPass {
                plan: &plan,
                nc,
                chunks: &mut chunks,
                energy,
                simd,
            };
            spill_pass(&ctx, pass, &mut p.force, spill_buf, bump)
        });
    }
    let (mut pe, mut vir) = (0.0, 0.0);
    scratch.with(|bump| {
        let (part, chunks) = list.task_chunks(bump);
        let ctx = Ctx {
            pos: packed,
            types: ty,
            coeffs,
            images: &images,
            typed,
            near,
        };
        let mut tasks = bumpalo::collections::Vec::from_iter_in(
            chunks.into_iter().map(|c| (c, (0.0f64, 0.0f64))),
            bump,
        );
        part.run_tasks(&mut p.force, 1, &mut tasks, bump, |w, (c, o)| {
            *o = force_job(&ctx, w, c, energy, simd)
        });
        // Colour by colour, as the tasks used to run.
        for color in 0..COLORS.min(tasks.len()) {
            for (_, (e, v)) in tasks.iter().skip(color).step_by(COLORS) {
                pe += e;
                vir += v;
            }
        }
    });
    (pe, vir)
}

/// One force task with the CPU's widest vectors over its i-clusters'
/// entries `chunk`; energy and virial when `energy`; pruning them as it goes
/// when `ctx.near` is set.
#[inline(always)]
fn force_job<F: Wide, W: Writes<Lanes<F>>>(
    ctx: &Ctx<'_, F>,
    w: &mut W,
    chunk: &mut PruneChunk<'_>,
    energy: bool,
    simd: Simd,
) -> (f64, f64) {
    match (energy, ctx.near.is_some()) {
        (true, false) => simd.run(ForceJob::<F, W, true, false> { ctx, w, chunk }),
        (false, false) => simd.run(ForceJob::<F, W, false, false> { ctx, w, chunk }),
        (true, true) => simd.run(ForceJob::<F, W, true, true> { ctx, w, chunk }),
        (false, true) => simd.run(ForceJob::<F, W, false, true> { ctx, w, chunk }),
    }
}

/// What a spill pass runs: the plan, the number of clusters, the tasks'
/// entries, and the kernel variant.
struct SpillPass<'a, 'b> {
    plan: &'a SpillPlan,
    nc: usize,
    chunks: &'a mut [PruneChunk<'b>],
    energy: bool,
    simd: Simd,
}

/// The force pass of a small system as [`SPILL_TASKS`] tasks at once (their
/// entries: `chunks`), each writing the clusters ahead of its own into its
/// spill buffer; then each cluster adds its spilled forces in task order
/// (as contiguous runs: [`SpillPlan::runs`]). Each task first zeroes what it
/// adds to, its own clusters' forces and its spill buffer, so no pass over
/// them runs before (it would cost a parallel region, and the lines would
/// be written by one core and then by another). The spill buffers are
/// sized once to `room` (a quarter of headroom on the list's reach), so
/// later builds do not allocate.
fn spill_pass<F: Wide>(
    ctx: &Ctx<'_, F>,
    pass: SpillPass<'_, '_>,
    force: &mut [Lanes<F>],
    (spill, room): (&mut Vec<Lanes<F>>, usize),
    bump: &bumpalo::Bump,
) -> (f64, f64) {
    let SpillPass {
        plan,
        nc,
        chunks,
        energy,
        simd,
    } = pass;
    let need = plan.len();
    if spill.capacity() < need {
        spill.reserve_exact(room.max(need) - spill.len());
    }
    if spill.len() < need {
        spill.resize(need, [[F::ZERO; CLUSTER]; 3]);
    }
    let (pe, vir) = {
        let mut wins = plan.windows(force, spill, bump);
        debug_assert_eq!(wins.len(), chunks.len(), "one chunk per task");
        let out = bump.alloc_slice_fill_copy(wins.len(), (0.0f64, 0.0f64));
        wins.par_iter_mut()
            .zip(chunks.par_iter_mut())
            .zip(out.par_iter_mut())
            .with_max_len(1)
            .for_each(|((w, c), o)| {
                w.fill([[F::ZERO; CLUSTER]; 3]);
                *o = force_job(ctx, w, c, energy, simd)
            });
        out.iter()
            .fold((0.0, 0.0), |(pe, vir), &(e, v)| (pe + e, vir + v))
    };
    let spill = &spill[..need];
    force[..nc]
        .par_chunks_mut(PACK_CHUNK)
        .enumerate()
        .for_each(|(k, fs)| {
            let c0 = k * PACK_CHUNK;
            for (c, at, len) in plan.runs(c0, c0 + fs.len()) {
                for (f, s) in fs[c - c0..c - c0 + len]
                    .iter_mut()
                    .zip(&spill[at..at + len])
                {
                    for d in 0..3 {
                        for l in 0..CLUSTER {
                            f[d][l] += s[d][l];
                        }
                    }
                }
            }
        });
    (pe, vir)
}

/// Copies positions into cluster order (relative to each cluster's origin;
/// dummy lanes far away), and zeroes the forces when `zero` (the colour
/// pass; spill tasks zero their own clusters' forces, on their own
/// thread, as they start). Buffers are sized once to the most clusters a
/// layout can need, so later rebuilds never reallocate.
fn pack<F: Real>(
    p: &mut Packed<F>,
    list: &ClusterPairList,
    pos: &[Position],
    types: Option<&[AtomType]>,
    zero: bool,
) {
    let nc = list.clusters();
    let cap = list.max_clusters();
    if p.pos.capacity() < cap {
        p.pos.reserve_exact(cap - p.pos.len());
        p.force.reserve_exact(cap - p.force.len());
        if types.is_some() {
            p.types.reserve_exact(cap - p.types.len());
        }
    }
    p.pos.resize(nc, [[F::ZERO; CLUSTER]; 3]);
    p.force.resize(nc, [[F::ZERO; CLUSTER]; 3]);
    if types.is_some() {
        p.types.resize(nc, [0; CLUSTER]);
    }
    let rows = &list.row_of;
    p.pos
        .par_chunks_mut(PACK_CHUNK)
        .zip(p.force.par_chunks_mut(PACK_CHUNK))
        .enumerate()
        .for_each(|(k, (xs, fs))| {
            for (i, (x, f)) in xs.iter_mut().zip(fs).enumerate() {
                let c = k * PACK_CHUNK + i;
                let o = list.cluster_origin(c);
                for (l, &r) in rows[c * CLUSTER..(c + 1) * CLUSTER].iter().enumerate() {
                    if r == NO_ROW {
                        // Far from everything and from each other.
                        let far = F::from_f64(1e5 * (1.0 + (c * CLUSTER + l) as f64));
                        for d in x.iter_mut() {
                            d[l] = far;
                        }
                    } else {
                        let q = pos[r as usize].0;
                        for d in 0..3 {
                            x[d][l] = F::from_f64(q[d] - o[d] as f64);
                        }
                    }
                }
                if zero {
                    *f = [[F::ZERO; CLUSTER]; 3];
                }
            }
        });
    if let Some(ts) = types {
        p.types
            .par_chunks_mut(PACK_CHUNK)
            .enumerate()
            .for_each(|(k, tc)| {
                for (i, t) in tc.iter_mut().enumerate() {
                    let c = k * PACK_CHUNK + i;
                    for (l, &r) in rows[c * CLUSTER..(c + 1) * CLUSTER].iter().enumerate() {
                        t[l] = if r == NO_ROW { 0 } else { ts[r as usize].0 };
                    }
                }
            });
    }
}

/// Clusters per rayon task when packing.
const PACK_CHUNK: usize = 256;

/// Atoms per rayon task in the displacement check and the reference
/// positions (a maximum: exact for any chunking), small enough that 2
/// threads share them at 4,000 atoms.
const ATOM_CHUNK: usize = 1024;

struct Ctx<'a, F> {
    pos: &'a [Lanes<F>],
    types: &'a [[u8; CLUSTER]],
    coeffs: &'a Coeffs<F>,
    images: &'a Images<F>,
    typed: bool,
    /// The squared prune radius, when the tasks prune their entries.
    near: Option<F>,
}

/// Pairs of a cluster pair: `k = a·CLUSTER + l` for i-lane `a`, j-lane `l`.
const P: usize = CLUSTER * CLUSTER;

/// In a cluster's pair with itself, each pair is taken once: `l > a`.
const UPPER: [bool; P] = {
    let mut m = [false; P];
    let mut k = 0;
    while k < P {
        m[k] = k % CLUSTER > k / CLUSTER;
        k += 1;
    }
    m
};

/// Per-pair coefficients of one cluster pair.
#[derive(Clone, Copy)]
struct PairCoef<F> {
    lj1: [F; P],
    lj2: [F; P],
    lj3: [F; P],
    lj4: [F; P],
    cutsq: [F; P],
    offset: [F; P],
}

impl<F: Real> PairCoef<F> {
    fn uniform(c: &Coeffs<F>) -> Self {
        PairCoef {
            lj1: [c.lj1[0]; P],
            lj2: [c.lj2[0]; P],
            lj3: [c.lj3[0]; P],
            lj4: [c.lj4[0]; P],
            cutsq: [c.cutsq[0]; P],
            offset: [c.offset[0]; P],
        }
    }

    #[inline(always)]
    fn gather(&mut self, c: &Coeffs<F>, ti: &[u8; CLUSTER], tj: &[u8; CLUSTER]) {
        for k in 0..P {
            let t = ti[k / CLUSTER] as usize * c.n + tj[k % CLUSTER] as usize;
            self.lj1[k] = c.lj1[t];
            self.lj2[k] = c.lj2[t];
            self.lj3[k] = c.lj3[t];
            self.lj4[k] = c.lj4[t];
            self.cutsq[k] = c.cutsq[t];
            self.offset[k] = c.offset[t];
        }
    }
}

/// The forces of one task; energy and virial when `E`; prunes its entries
/// when `N`.
struct ForceJob<'a, 'b, 'c, F, W, const E: bool, const N: bool> {
    ctx: &'a Ctx<'b, F>,
    w: &'a mut W,
    chunk: &'a mut PruneChunk<'c>,
}

impl<F: Wide, W: Writes<Lanes<F>>, const E: bool, const N: bool> Job
    for ForceJob<'_, '_, '_, F, W, E, N>
{
    type Out = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        task::<F, W, E, N, false>(self.ctx, self.w, self.chunk)
    }
    #[inline(always)]
    fn run_avx512(self) -> (f64, f64) {
        task::<F, W, E, N, true>(self.ctx, self.w, self.chunk)
    }
}

/// Prunes a chunk of i-clusters: keeps the entries with a pair closer than
/// √r2 (in kernel precision, as the kernel computes distances).
struct PruneJob<'a, 'b, F> {
    pos: &'a [Lanes<F>],
    chunk: &'a mut PruneChunk<'b>,
    images: &'a Images<F>,
    r2: F,
}

impl<F: Real> Job for PruneJob<'_, '_, F> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let PruneJob {
            pos,
            chunk,
            images,
            r2,
        } = self;
        let g = chunk.geometry;
        for ci in chunk.clusters.clone() {
            let ci = ci as usize;
            let oi = lanes(g.cluster_origin4(ci));
            let xi = broadcast_i(&pos[ci]);
            let mut near = Near {
                g,
                images,
                pos,
                ci,
                oi,
                xi,
                r2,
            };
            chunk.retain_first(ci, &mut near);
        }
    }
}

/// Keeps the entries of i-cluster `ci` with a pair closer than √r2.
struct Near<'a, F> {
    g: Geometry<'a>,
    images: &'a Images<F>,
    pos: &'a [Lanes<F>],
    ci: usize,
    oi: [F; 4],
    xi: [[F; P]; 3],
    r2: F,
}

impl<F: Real> Keep for Near<'_, F> {
    #[inline(always)]
    fn keep(&mut self, e: Entry) -> bool {
        let cj = e.cj as usize;
        let off = offset(&self.oi, self.g.cluster_origin4(cj), self.images, e.shift);
        any_within(&self.xi, &self.pos[cj], off, cj == self.ci, self.r2)
    }
}

/// x_i broadcast over the j-lanes: `xi[d][a·C + l] = x_i[d][a]`.
#[inline(always)]
fn broadcast_i<F: Real>(x: &Lanes<F>) -> [[F; P]; 3] {
    let mut xi = [[F::ZERO; P]; 3];
    for d in 0..3 {
        for k in 0..P {
            xi[d][k] = x[d][k / CLUSTER];
        }
    }
    xi
}

/// The image shifts for the kernel, in its precision: a multiple of the
/// origins' grid and the rest ([`ImageOffsets`]), four lanes each for all
/// 32 shift indices (an entry's 5-bit shift index then needs no bounds
/// check).
struct Images<F> {
    whole: [[F; 4]; 32],
    rest: [[F; 4]; 32],
}

impl<F: Real> Images<F> {
    fn new(o: &ImageOffsets) -> Self {
        Images {
            whole: o.whole.map(lanes),
            rest: o.rest.map(|v| v.map(F::from_f64)),
        }
    }
}

/// f32 lanes in precision `F` (exact).
#[inline(always)]
fn lanes<F: Real>(x: [f32; 4]) -> [F; 4] {
    x.map(|v| F::from_f64(v as f64))
}

/// What to add to x_j's local coordinates to put them in i's frame:
/// origin_j + shift − origin_i, as `(oj + (whole − oi)) + rest` in four
/// lanes (the last unused; `oj` from [`ClusterPairList::cluster_origin4`]).
/// The origins and `whole` are multiples of the list's origin quantum, so
/// only the last addition rounds: the offset is the shift's exact value
/// rounded once (up to the rounding of `rest`, below 2⁻²⁴ of half the
/// quantum), as in f64, without f64 arithmetic per entry.
#[inline(always)]
fn offset<F: Real>(oi: &[F; 4], oj: [f32; 4], img: &Images<F>, shift: u8) -> [F; 3] {
    let s = shift as usize & 31;
    let oj = lanes::<F>(oj);
    // whole − oi does not wait for oj's load; all but the last sum is exact.
    let v: [F; 4] = std::array::from_fn(|d| (oj[d] + (img.whole[s][d] - oi[d])) + img.rest[s][d]);
    [v[0], v[1], v[2]]
}

/// x_j + offset, repeated for each i-lane: `xj[d][a·C + l] = x_j[d][l] + off[d]`.
#[inline(always)]
fn broadcast_j<F: Real>(xj: &Lanes<F>, off: [F; 3]) -> [[F; P]; 3] {
    std::array::from_fn(|d| {
        let x: [F; CLUSTER] = std::array::from_fn(|l| xj[d][l] + off[d]);
        std::array::from_fn(|k| x[k % CLUSTER])
    })
}

/// Whether some pair of the cluster pair (taken once inside a cluster) is
/// closer than √r2, with distances computed as in [`pair_block`] (up to the
/// rounding of `off`).
#[inline(always)]
fn any_within<F: Real>(xi: &[[F; P]; 3], xj: &Lanes<F>, off: [F; 3], same: bool, r2: F) -> bool {
    let xjb = broadcast_j(xj, off);
    let mut any = false;
    for k in 0..P {
        let dx = xi[0][k] - xjb[0][k];
        let dy = xi[1][k] - xjb[1][k];
        let dz = xi[2][k] - xjb[2][k];
        let d2 = dx * dx + dy * dy + dz * dz;
        any |= (d2 < r2) & (!same | UPPER[k]);
    }
    any
}

/// One task: its i-clusters in order, each against its list entries in order.
///
/// When `N` (a prune after the first since the build), each i-cluster's
/// entries are pruned right after: the active ones the kernel finds with no
/// pair within the prune radius, the pruned ones it tests after them (and
/// computes, should one have come within reach); see [`run`]. `V512`: built
/// for AVX-512F ([`Wide::sub_pairs`]).
#[inline(always)]
fn task<F: Wide, W: Writes<Lanes<F>>, const E: bool, const N: bool, const V512: bool>(
    ctx: &Ctx<'_, F>,
    w: &mut W,
    chunk: &mut PruneChunk<'_>,
) -> (f64, f64) {
    let (mut pe, mut vir) = (0.0, 0.0);
    let mut coef = PairCoef::uniform(ctx.coeffs);
    let g = chunk.geometry;
    let r2 = ctx.near.unwrap_or(F::ZERO);
    for ci in w.clusters() {
        let ci = ci as usize;
        let oi = lanes(g.cluster_origin4(ci));
        let xi = broadcast_i(&ctx.pos[ci]);
        let mut fi = [[F::ZERO; P]; 3];
        let (mut e_acc, mut v_acc) = ([F::ZERO; P], [F::ZERO; P]);
        let at = At {
            ctx,
            g,
            oi: &oi,
            xi: &xi,
            ci,
        };
        // Bit k: entry k changes sides (for lists of at most 64 entries).
        let mut flip = 0u64;
        let mut active = 0;
        // AVX-512 builds run untyped entries in intrinsics (the same bits).
        let wide = if V512 && !ctx.typed {
            let acc = (&mut fi, &mut e_acc, &mut v_acc);
            F::active512::<W, E, N>(&at, &coef, chunk.active(ci), w, acc, r2)
        } else {
            None
        };
        if let Some(done) = wide {
            (flip, active) = done;
        } else {
            for (k, e) in chunk.active(ci).enumerate() {
                if ctx.typed {
                    coef.gather(ctx.coeffs, &ctx.types[ci], &ctx.types[e.cj as usize]);
                }
                let (cj, fj, near) =
                    at.entry::<E, N>(e, &coef, &mut fi, &mut e_acc, &mut v_acc, r2);
                F::sub_pairs::<V512>(w.one(cj), &fj);
                if N && !near {
                    flip |= 1 << (k % 64);
                }
                active = k + 1;
            }
        }
        if N {
            // The pruned entries: those within reach again are computed
            // now (after the active ones, as a prune would order them).
            for (k, e) in chunk.all(ci).enumerate().skip(active) {
                let cj = e.cj as usize;
                let off = offset(&oi, g.cluster_origin4(cj), ctx.images, e.shift);
                if any_within(&xi, &ctx.pos[cj], off, cj == ci, r2) {
                    if ctx.typed {
                        coef.gather(ctx.coeffs, &ctx.types[ci], &ctx.types[cj]);
                    }
                    let (cj, fj, _) =
                        at.entry::<E, false>(e, &coef, &mut fi, &mut e_acc, &mut v_acc, r2);
                    F::sub_pairs::<V512>(w.one(cj), &fj);
                    flip |= 1 << (k % 64);
                }
            }
            if chunk.count(ci) <= 64 {
                chunk.toggle(ci, active, flip);
            } else {
                // Long lists: test again (the same distances, the same result).
                let mut near = Near {
                    g,
                    images: ctx.images,
                    pos: ctx.pos,
                    ci,
                    oi,
                    xi,
                    r2,
                };
                chunk.retain_first(ci, &mut near);
            }
        }
        // Opaque to the optimiser: it would otherwise re-lay the per-pair
        // accumulators of the entry loop after this reduction's pattern.
        let fi = std::hint::black_box(fi);
        let out = w.one(ci);
        for d in 0..3 {
            for (a, o) in out[d].iter_mut().enumerate() {
                let mut s = F::ZERO;
                for f in &fi[d][a * CLUSTER..(a + 1) * CLUSTER] {
                    s += *f;
                }
                *o += s;
            }
        }
        if E {
            pe += e_acc.iter().map(|x| x.to_f64()).sum::<f64>();
            vir += v_acc.iter().map(|x| x.to_f64()).sum::<f64>();
        }
    }
    (pe, vir)
}

/// An i-cluster of a task, to run its entries against.
struct At<'a, 'b, F> {
    ctx: &'a Ctx<'b, F>,
    g: Geometry<'a>,
    oi: &'a [F; 4],
    xi: &'a [[F; P]; 3],
    ci: usize,
}

impl<F: Real> At<'_, '_, F> {
    /// One entry: adds to the i-accumulators, returns the j-cluster, the
    /// per-pair forces, and (when `N`) whether a pair is closer than √`r2`.
    #[inline(always)]
    fn entry<const E: bool, const N: bool>(
        &self,
        e: Entry,
        coef: &PairCoef<F>,
        fi: &mut [[F; P]; 3],
        e_acc: &mut [F; P],
        v_acc: &mut [F; P],
        r2: F,
    ) -> (usize, [[F; P]; 3], bool) {
        let cj = e.cj as usize;
        let off = offset(
            self.oi,
            self.g.cluster_origin4(cj),
            self.ctx.images,
            e.shift,
        );
        let (fj, near) = pair_block::<F, E, N>(
            self.xi,
            &self.ctx.pos[cj],
            off,
            coef,
            cj == self.ci,
            fi,
            e_acc,
            v_acc,
            r2,
        );
        (cj, fj, near)
    }
}

/// The 16 interactions of one cluster pair, as flat branch-free lane loops
/// (the compiler vectorises them). Adds to the i-forces `fi` (per pair, summed
/// per i-atom by the caller) and returns the per-pair forces (for the
/// j-cluster: [`Wide::sub_pairs`] sums them per j-atom), and when `N` whether
/// a pair (taken once inside a cluster) is closer than √`near_r2`, with the
/// distances of [`any_within`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pair_block<F: Real, const E: bool, const N: bool>(
    xi: &[[F; P]; 3],
    xj: &Lanes<F>,
    off: [F; 3],
    c: &PairCoef<F>,
    same: bool,
    fi: &mut [[F; P]; 3],
    e_acc: &mut [F; P],
    v_acc: &mut [F; P],
    near_r2: F,
) -> ([[F; P]; 3], bool) {
    let xjb = broadcast_j(xj, off);
    let allowed = if same { &UPPER } else { &[true; P] };
    let (mut fx, mut fy, mut fz) = ([F::ZERO; P], [F::ZERO; P], [F::ZERO; P]);
    let mut near = false;
    for k in 0..P {
        let dx = xi[0][k] - xjb[0][k];
        let dy = xi[1][k] - xjb[1][k];
        let dz = xi[2][k] - xjb[2][k];
        let r2 = dx * dx + dy * dy + dz * dz;
        let inside = (r2 < c.cutsq[k]) & allowed[k];
        if N {
            near |= (r2 < near_r2) & allowed[k];
        }
        let r2s = if inside { r2 } else { F::ONE };
        let ri = F::ONE / r2s;
        let r6 = ri * ri * ri;
        let f = r6 * (c.lj1[k] * r6 - c.lj2[k]) * ri;
        let fp = if inside { f } else { F::ZERO };
        if E {
            let en = r6 * (c.lj3[k] * r6 - c.lj4[k]) - c.offset[k];
            e_acc[k] += if inside { en } else { F::ZERO };
            v_acc[k] += fp * r2;
        }
        fx[k] = dx * fp;
        fy[k] = dy * fp;
        fz[k] = dz * fp;
    }
    for k in 0..P {
        fi[0][k] += fx[k];
        fi[1][k] += fy[k];
        fi[2][k] += fz[k];
    }
    ([fx, fy, fz], near)
}

/// The j-lane sums of a cluster pair's values, over the i-lanes as a tree:
/// (a0 + a2) + (a1 + a3) (halves, then quarters: two vector adds).
#[inline(always)]
fn reduce_lanes<F: Real>(v: &[F; P]) -> [F; CLUSTER] {
    let mut h = [F::ZERO; P / 2];
    for k in 0..P / 2 {
        h[k] = v[k] + v[k + P / 2];
    }
    let mut q = [F::ZERO; CLUSTER];
    for l in 0..CLUSTER {
        q[l] = h[l] + h[l + CLUSTER];
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use microcosm_engine::neighbor::PeriodicBox;

    /// `n` random atoms in a 9×10×11 box, every `every_b`-th of type B, and
    /// the A–B table of the Kob–Andersen-like mixture.
    fn fixture(
        n: u64,
        seed: u64,
        every_b: u64,
    ) -> (PeriodicBox, u64, Vec<Position>, Vec<AtomType>, LjTable) {
        let bx = PeriodicBox {
            len: [9.0, 10.0, 11.0],
        };
        let pos = (0..n)
            .map(|i| {
                let mut r = Rng::new(seed, StreamId::named("test"), 0, i);
                Position(DVec3::new(
                    r.uniform() * 9.0,
                    r.uniform() * 10.0,
                    r.uniform() * 11.0,
                ))
            })
            .collect();
        let types = (0..n).map(|i| AtomType((i % every_b == 0) as u8)).collect();
        let cfg: Lj = toml::from_str(
            "cutoff = 2.5\nshift = true\npairs = [{ types = [\"A\", \"B\"], epsilon = 1.5, sigma = 0.8, cutoff = 2.0 }]",
        )
        .unwrap();
        let table = LjTable::new(&cfg, &["A".into(), "B".into()]).unwrap();
        (bx, n, pos, types, table)
    }

    /// Every SIMD variant gives the same forces, energy, virial and list,
    /// bit for bit: typed and untyped (the AVX-512 build runs untyped
    /// entries in intrinsics), with and without energy, with no prune, a
    /// whole prune and a prune in the force tasks, in the colour and the
    /// spill pass.
    #[test]
    fn simd_variants_are_bitwise_identical() {
        let (bx, n, pos, types, typed) = fixture(800, 5, 3);
        let one: Lj = toml::from_str("cutoff = 2.5").unwrap();
        let untyped = LjTable::new(&one, &["A".into()]).unwrap();
        let zeros = vec![AtomType(0); n as usize];
        let scratch = ScratchArenas::new(1);
        let r2 = 2.65 * 2.65;
        let prunes = [
            None,
            Some(Prune { r2, whole: true }),
            Some(Prune { r2, whole: false }),
        ];
        let mut cases = 0;
        for (types, table) in [(&types, &typed), (&zeros, &untyped)] {
            for (energy, prune, spill) in variant_cases(&prunes) {
                let mut results = Vec::new();
                for simd in Simd::available() {
                    let mut list = ClusterPairList::default();
                    list.build(bx, 2.8, n as usize, |r| pos[r].0.to_array());
                    let data = (&pos[..], &types[..], table);
                    let (pe, vir, bits) =
                        pass_with(&mut list, data, &scratch, prune, simd, spill, energy);
                    let kept: Vec<Entry> = (0..list.clusters())
                        .flat_map(|c| list.active_entries(c).collect::<Vec<_>>())
                        .collect();
                    results.push((simd, pe.to_bits(), vir.to_bits(), bits, kept));
                }
                assert!(!energy || f64::from_bits(results[0].1) != 0.0);
                for r in &results[1..] {
                    let base = &results[0];
                    assert_eq!(r.1, base.1, "{:?} energy differs from baseline", r.0);
                    assert_eq!(r.2, base.2, "{:?} virial differs from baseline", r.0);
                    assert!(r.3 == base.3, "{:?} forces differ from baseline", r.0);
                    assert!(r.4 == base.4, "{:?} list differs from baseline", r.0);
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 24);
    }

    /// (energy, prune, spill) for every energy flag, prune and pass.
    fn variant_cases(prunes: &[Option<Prune>; 3]) -> Vec<(bool, Option<Prune>, bool)> {
        let mut v = Vec::new();
        for energy in [true, false] {
            for &prune in prunes {
                for spill in [false, true] {
                    v.push((energy, prune, spill));
                }
            }
        }
        v
    }

    /// Pruning right after a build drops only entries whose pairs are all out
    /// of the cutoff and keeps the others' order: the same bits as unpruned.
    #[test]
    fn pruning_is_exact() {
        let (bx, n, pos, types, table) = fixture(900, 9, 4);
        let scratch = ScratchArenas::new(1);
        let simd = Simd::detect();
        let mut out = Vec::new();
        for prune in [None, Some(2.6f64 * 2.6)] {
            let mut list = ClusterPairList::default();
            list.build(bx, 2.8, n as usize, |r| pos[r].0.to_array());
            let spill = list.spills();
            let (pe, vir, bits) = pass(
                &mut list,
                (&pos, &types, &table),
                &scratch,
                prune,
                simd,
                spill,
            );
            out.push((
                pe.to_bits(),
                vir.to_bits(),
                bits,
                list.active_len(),
                list.len(),
            ));
        }
        let (a, b) = (&out[0], &out[1]);
        assert_eq!(a.3, a.4, "a build keeps every entry");
        assert!(b.3 < b.4 * 9 / 10, "pruned {} of {}", b.4 - b.3, b.4);
        assert_eq!((a.0, a.1), (b.0, b.1), "energy and virial");
        assert!(a.2 == b.2, "forces differ");
    }

    /// The spill pass of small systems and the colour pass compute the same
    /// forces and energy up to the order of the f32 sums (and the spill
    /// pass's own bits do not depend on the pool).
    #[test]
    fn spill_and_colour_passes_agree() {
        let (bx, n, pos, types, table) = fixture(900, 7, 5);
        let mut list = ClusterPairList::default();
        list.build(bx, 2.8, n as usize, |r| pos[r].0.to_array());
        assert!(list.spills(), "a small system spills");
        let simd = Simd::detect();
        let mut out = Vec::new();
        for (spill, threads) in [(false, 1), (true, 1), (true, 2)] {
            let scratch = ScratchArenas::new(threads);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            out.push(pool.install(|| {
                pass(
                    &mut list,
                    (&pos, &types, &table),
                    &scratch,
                    None,
                    simd,
                    spill,
                )
            }));
        }
        let (colour, spill, spill2) = (&out[0], &out[1], &out[2]);
        assert!(colour.0 != 0.0);
        assert!(
            (colour.0 - spill.0).abs() <= 1e-9 * colour.0.abs(),
            "energy"
        );
        assert!(
            (colour.1 - spill.1).abs() <= 1e-9 * colour.1.abs(),
            "virial"
        );
        assert!(spill.2 == spill2.2, "spill forces depend on threads");
        assert_eq!(spill.0.to_bits(), spill2.0.to_bits());
        let mut worst = 0.0f32;
        let mut scale = 0.0f32;
        for (&a, &b) in colour.2.iter().zip(&spill.2) {
            let (a, b) = (f32::from_bits(a), f32::from_bits(b));
            worst = worst.max((a - b).abs());
            scale = scale.max(a.abs());
        }
        assert!(
            worst <= 1e-5 * scale,
            "forces differ by {worst} (largest {scale})"
        );
    }

    /// One f32 force pass with energy over `list` (packing, pruning when
    /// `prune` is the squared radius, as a whole prune): energy, virial and
    /// the force bits.
    fn pass(
        list: &mut ClusterPairList,
        data: (&[Position], &[AtomType], &LjTable),
        scratch: &ScratchArenas,
        prune: Option<f64>,
        simd: Simd,
        spill: bool,
    ) -> (f64, f64, Vec<u32>) {
        let prune = prune.map(|r2| Prune { r2, whole: true });
        pass_with(list, data, scratch, prune, simd, spill, true)
    }

    /// [`pass`] with any prune, with or without energy.
    fn pass_with(
        list: &mut ClusterPairList,
        (pos, types, table): (&[Position], &[AtomType], &LjTable),
        scratch: &ScratchArenas,
        prune: Option<Prune>,
        simd: Simd,
        spill: bool,
        energy: bool,
    ) -> (f64, f64, Vec<u32>) {
        let mut p = Packed::<f32> {
            coeffs: Some(Coeffs::new(table)),
            ..Default::default()
        };
        let (pe, vir) = run(
            &mut p,
            list,
            pos,
            Some(types),
            scratch,
            energy,
            prune,
            simd,
            spill,
        );
        let bits = p
            .force
            .iter()
            .flatten()
            .flatten()
            .map(|f| f.to_bits())
            .collect();
        (pe, vir, bits)
    }

    /// A later prune done by the force tasks (the kernel tests the active
    /// entries with the distances it computes; the pruned ones are tested
    /// after them) leaves the list exactly as a whole prune does, entry for
    /// entry, and gives the same forces, energy and virial bit for bit: in
    /// the colour and the spill pass, with and without energy, for i-clusters
    /// of at most 64 entries and of more (re-tested whole).
    #[test]
    fn pruning_in_the_force_pass_matches_a_whole_prune() {
        let (bx, n, pos, types, table) = fixture(900, 13, 4);
        // Every atom moved up to 0.15 in each coordinate.
        let moved: Vec<Position> = (0..n)
            .map(|i| {
                let mut r = Rng::new(5, StreamId::named("move"), 0, i);
                let d = DVec3::new(r.uniform(), r.uniform(), r.uniform()) - 0.5;
                Position(pos[i as usize].0 + 0.3 * d)
            })
            .collect();
        let scratch = ScratchArenas::new(1);
        let simd = Simd::detect();
        let active = |list: &ClusterPairList| -> std::collections::BTreeSet<(usize, Entry)> {
            (0..list.clusters())
                .flat_map(|c| list.active_entries(c).map(move |e| (c, e)))
                .collect()
        };
        let mut long = false;
        for (r_list, r_prune) in [(2.8, 2.65f64), (4.4, 4.1)] {
            let r2 = r_prune * r_prune;
            for spill in [false, true] {
                for energy in [true, false] {
                    let prune_twice = |whole: bool| {
                        let mut list = ClusterPairList::default();
                        list.build(bx, r_list, n as usize, |r| pos[r].0.to_array());
                        let first = Some(Prune { r2, whole: true });
                        let data = (&pos[..], &types[..], &table);
                        pass_with(&mut list, data, &scratch, first, simd, spill, energy);
                        let before = active(&list);
                        let data = (&moved[..], &types[..], &table);
                        let later = Some(Prune { r2, whole });
                        let (pe, vir, bits) =
                            pass_with(&mut list, data, &scratch, later, simd, spill, energy);
                        let entries: Vec<Vec<Entry>> = (0..list.clusters())
                            .map(|c| list.entries(c).collect())
                            .collect();
                        let after = active(&list);
                        let most = entries.iter().map(Vec::len).max().unwrap_or(0);
                        (
                            (pe.to_bits(), vir.to_bits(), bits, entries),
                            before,
                            after,
                            most,
                        )
                    };
                    let (whole, before, after, most) = prune_twice(true);
                    let (tasks, ..) = prune_twice(false);
                    assert!(whole.0 == tasks.0 && whole.1 == tasks.1, "energy, virial");
                    assert!(whole.2 == tasks.2, "forces differ");
                    assert!(whole.3 == tasks.3, "lists differ");
                    // Entries changed sides both ways.
                    assert!(before.difference(&after).count() > 50);
                    assert!(after.difference(&before).count() > 50);
                    long |= most > 64;
                }
            }
        }
        assert!(long, "no i-cluster had more than 64 entries");
    }

    /// Each entry's offset (f32 sums on the origins' grid, one rounding) is
    /// the offset computed in f64 and rounded once, up to one f32 step, in
    /// small and large boxes; the origins lie on the grid.
    #[test]
    fn entry_offsets_round_once() {
        for (len, n) in [([9.1, 10.3, 11.7], 800usize), ([3000.3, 7.77, 6.31], 3000)] {
            let bx = PeriodicBox { len };
            let pos: Vec<[f64; 3]> = (0..n as u64)
                .map(|i| {
                    let mut r = Rng::new(11, StreamId::named("test"), 0, i);
                    std::array::from_fn(|d| r.uniform() * len[d])
                })
                .collect();
            let mut list = ClusterPairList::default();
            list.build(bx, 2.8, n, |r| pos[r]);
            let q = list.origin_quantum();
            let longest = len.iter().copied().fold(0.0, f64::max);
            assert_eq!(q, 2f32.powi((longest.log2().ceil() as i32) - 21));
            let img = Images::<f32>::new(&list.image_offsets());
            let (mut entries, mut exact) = (0, 0);
            for ci in 0..list.clusters() {
                let oi = list.cluster_origin4(ci);
                for d in 0..3 {
                    assert_eq!((oi[d] / q).fract(), 0.0, "origin off the grid");
                }
                for e in list.entries(ci) {
                    let oj = list.cluster_origin4(e.cj as usize);
                    let got = offset(&oi, oj, &img, e.shift);
                    let sh = list.shifts()[e.shift as usize];
                    for d in 0..3 {
                        let want = (oj[d] as f64 + sh[d] - oi[d] as f64) as f32;
                        let step = f32::EPSILON * want.abs().max(f32::MIN_POSITIVE);
                        assert!((got[d] - want).abs() <= step, "{} vs {want}", got[d]);
                        exact += (got[d] == want) as usize;
                    }
                    entries += 1;
                }
            }
            assert!(entries > n, "{entries} entries");
            // Different only where the f64 path's own rounding decides a tie.
            assert!(
                exact * 1000 >= entries * 3 * 999,
                "{exact} of {}",
                entries * 3
            );
        }
    }
}
