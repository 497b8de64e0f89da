//! Selection with reproduction, and mutation.
//!
//! **`selection`** draws N parents (two per offspring when sexual) and writes
//! the offspring into the second genome buffer, which then becomes the
//! population. Schemes: `none` (happygene's behaviour: no reproduction),
//! `proportional` (Wright–Fisher: parents ∝ fitness, negative fitness counted
//! as 0, all-zero fitness as equal; Walker/Vose alias table in the scratch
//! arena), `tournament { k }` (best of k drawn with replacement), `truncation
//! { fraction }` (uniform among the best ⌈fraction·N⌉, ties by index).
//! Reproduction `asexual` copies parent 1; `sexual` takes each gene from
//! parent 2 with probability `crossover_rate` (happygene's
//! `SexualReproduction`).
//!
//! **`mutation`** `{ rate, magnitude }`: each gene independently, with
//! probability `rate`, gets + Normal(0, magnitude), then is clamped at 0. The
//! gaps between mutated genes are drawn instead of a uniform per gene:
//! gap = ⌊E/λ⌋ with E ~ Exp(1) and λ = −ln(1 − rate) is exactly
//! Geometric(rate), so the cost is O(mutations).
//!
//! Every draw comes from the stream of (seed, plugin, generation, individual).

use microcosm_engine::prelude::*;
use rand_distr::{Distribution, Exp1, StandardNormal};
use rayon::prelude::*;
use serde::Deserialize;

use super::{Fitness, GenerationStats, Genomes, ROWS};

/// A selection scheme.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scheme {
    /// No reproduction: the population carries over.
    None,
    /// Wright–Fisher: parents drawn ∝ fitness.
    Proportional,
    /// Best of k, drawn with replacement.
    Tournament {
        /// k ≥ 1.
        k: u32,
    },
    /// Uniform among the best fraction.
    Truncation {
        /// In (0, 1].
        fraction: f64,
    },
}

/// Reproduction.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reproduction {
    /// Offspring = parent 1.
    #[default]
    Asexual,
    /// Per-gene crossover of two parents.
    Sexual,
}

fn half() -> f64 {
    0.5
}

/// The `selection` plugin.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// The scheme.
    pub scheme: Scheme,
    /// Asexual or sexual.
    #[serde(default)]
    pub reproduction: Reproduction,
    /// Probability that a gene comes from parent 2 (sexual).
    #[serde(default = "half")]
    pub crossover_rate: f64,
}

impl PluginConfig for Selection {
    const NAME: &'static str = "selection";
    const SUMMARY: &'static str =
        "genes: selection and reproduction (none, proportional, tournament, truncation)";

    fn validate(&self) -> Result<(), Invalid> {
        match self.scheme {
            Scheme::Tournament { k: 0 } => {
                return Err(Invalid::new("scheme.k", "must be at least 1"));
            }
            Scheme::Truncation { fraction } if !(fraction > 0.0 && fraction <= 1.0) => {
                return Err(Invalid::new("scheme.fraction", "must be in (0, 1]"));
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.crossover_rate) {
            return Err(Invalid::new("crossover_rate", "must be in [0, 1]"));
        }
        Ok(())
    }
}

#[derive(Resource, Debug, Clone, Copy)]
struct SelectionParams(Selection);

const SELECT: StreamId = StreamId::named("genes/selection");

impl Plugin for Selection {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(SelectionParams(*self));
        if self.scheme != Scheme::None {
            b.add_systems(Phase::Evolve, reproduce);
        }
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["population", "fitness"]
    }
}

/// Draws parents and writes offspring into the second buffer, then swaps.
fn reproduce(
    q: Query<&Fitness>,
    mut genomes: ResMut<Genomes>,
    params: Res<SelectionParams>,
    scratch: Res<ScratchArenas>,
    clock: Res<Clock>,
) {
    let Ok(mut iter) = q.contiguous_iter() else {
        return;
    };
    let Some(fit) = iter.next() else { return };
    let p = params.0;
    let (seed, generation) = (clock.seed, clock.step);
    let g = genomes.g;
    let n = fit.len();
    let genomes = &mut *genomes;
    let (cur, next) = (&genomes.cur, &mut genomes.next);
    scratch.with(|bump| {
        // Per-scheme tables, in the arena.
        let mut table: &mut [AliasSlot] = &mut [];
        let mut ranked: &mut [u32] = &mut [];
        match p.scheme {
            Scheme::Proportional => {
                // One allocation (16 B per individual): one arena chunk.
                table = bump.alloc_slice_fill_copy(n, AliasSlot::default());
                build_alias(fit, table);
            }
            Scheme::Truncation { .. } => {
                ranked = bump.alloc_slice_fill_iter(0..n as u32);
                ranked.sort_unstable_by(|&a, &b| {
                    fit[b as usize]
                        .0
                        .total_cmp(&fit[a as usize].0)
                        .then(a.cmp(&b))
                });
            }
            _ => {}
        }
        let (table, ranked) = (&*table, &*ranked);
        let top = match p.scheme {
            Scheme::Truncation { fraction } => ((fraction * n as f64).ceil() as usize).clamp(1, n),
            _ => n,
        };
        let pick = |r: &mut Rng| -> usize {
            match p.scheme {
                Scheme::Proportional => {
                    let i = r.below(n as u64) as usize;
                    if r.uniform() < table[i].prob {
                        i
                    } else {
                        table[i].alias as usize
                    }
                }
                Scheme::Tournament { k } => {
                    let mut best = r.below(n as u64) as usize;
                    for _ in 1..k {
                        let c = r.below(n as u64) as usize;
                        if fit[c].0 > fit[best].0 {
                            best = c;
                        }
                    }
                    best
                }
                Scheme::Truncation { .. } => ranked[r.below(top as u64) as usize] as usize,
                Scheme::None => 0,
            }
        };
        let threshold = (p.crossover_rate * 4_294_967_296.0) as u64;
        next.par_chunks_mut(ROWS * g)
            .enumerate()
            .for_each(|(c, out)| {
                for (k, child) in out.chunks_mut(g).enumerate() {
                    let o = c * ROWS + k;
                    let mut r = Rng::new(seed, SELECT, generation, o as u64);
                    let p1 = pick(&mut r);
                    let a = &cur[p1 * g..(p1 + 1) * g];
                    if p.reproduction == Reproduction::Asexual {
                        child.copy_from_slice(a);
                        continue;
                    }
                    let p2 = pick(&mut r);
                    let b = &cur[p2 * g..(p2 + 1) * g];
                    crossover(child, a, b, threshold, &mut r);
                }
            });
    });
    std::mem::swap(&mut genomes.cur, &mut genomes.next);
}

/// Gene `i` from `b` when 32 random bits fall below `threshold` (= rate·2³²);
/// at rate ½ exactly, one random bit per gene.
#[inline]
fn crossover(child: &mut [f32], a: &[f32], b: &[f32], threshold: u64, r: &mut Rng) {
    if threshold == 1 << 31 {
        // One bit per gene; selects as bit masks on the f32 bit patterns, in
        // blocks of 16 so they vectorise.
        for ((c64, a64), b64) in child.chunks_mut(64).zip(a.chunks(64)).zip(b.chunks(64)) {
            let bits = r.next_u64();
            for (k, ((c, a), b)) in c64
                .chunks_mut(16)
                .zip(a64.chunks(16))
                .zip(b64.chunks(16))
                .enumerate()
            {
                let word = (bits >> (16 * k)) as u32;
                if let (Ok(c16), Ok(a16), Ok(b16)) = (
                    <&mut [f32; 16]>::try_from(&mut *c),
                    <&[f32; 16]>::try_from(a),
                    <&[f32; 16]>::try_from(b),
                ) {
                    select16(c16, a16, b16, word);
                } else {
                    for j in 0..c.len() {
                        c[j] = if word & BIT[j] != 0 { b[j] } else { a[j] };
                    }
                }
            }
        }
        return;
    }
    for ((c2, a2), b2) in child.chunks_mut(2).zip(a.chunks(2)).zip(b.chunks(2)) {
        let u = r.next_u64();
        for (j, c) in c2.iter_mut().enumerate() {
            let bits = (u >> (32 * j)) & 0xFFFF_FFFF;
            *c = if bits < threshold { b2[j] } else { a2[j] };
        }
    }
}

/// Lane `j` from `b` where bit `j` of `word` is set, else from `a`.
#[inline(always)]
fn select16(c: &mut [f32; 16], a: &[f32; 16], b: &[f32; 16], word: u32) {
    for j in 0..16 {
        let m = if word & BIT[j] != 0 { u32::MAX } else { 0 };
        c[j] = f32::from_bits((a[j].to_bits() & !m) | (b[j].to_bits() & m));
    }
}

/// `BIT[j] = 1 << j`: per-lane masks (a per-lane variable shift does not
/// vectorise on baseline x86-64).
const BIT: [u32; 16] = {
    let mut b = [0u32; 16];
    let mut j = 0;
    while j < 16 {
        b[j] = 1 << j;
        j += 1;
    }
    b
};

/// One entry of the alias table: acceptance probability, alias, and the
/// link of the construction's work lists.
#[derive(Debug, Clone, Copy, Default)]
struct AliasSlot {
    prob: f64,
    alias: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

/// Walker/Vose alias table for weights ∝ max(fitness, 0) (uniform if all 0),
/// built in place: the "small" and "large" work lists are linked through
/// `next`, so the table is one slice.
fn build_alias(fit: &[Fitness], t: &mut [AliasSlot]) {
    let n = fit.len();
    let total: f64 = fit.iter().map(|f| f.0.max(0.0)).sum();
    let (mut small, mut large) = (NIL, NIL);
    for (i, f) in fit.iter().enumerate().rev() {
        let prob = if total > 0.0 && total.is_finite() {
            f.0.max(0.0) * n as f64 / total
        } else {
            1.0
        };
        let list = if prob < 1.0 { &mut small } else { &mut large };
        t[i] = AliasSlot {
            prob,
            alias: i as u32,
            next: *list,
        };
        *list = i as u32;
    }
    while small != NIL && large != NIL {
        let s = small as usize;
        small = t[s].next;
        let l = large as usize;
        t[s].alias = l as u32;
        t[l].prob -= 1.0 - t[s].prob;
        if t[l].prob < 1.0 {
            large = t[l].next;
            t[l].next = small;
            small = l as u32;
        }
    }
    for head in [small, large] {
        let mut i = head;
        while i != NIL {
            t[i as usize].prob = 1.0;
            i = t[i as usize].next;
        }
    }
}

/// The `mutation` plugin.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    /// Probability that a gene mutates in a generation.
    pub rate: f64,
    /// Standard deviation of a mutation.
    pub magnitude: f64,
}

#[derive(Resource, Debug, Clone, Copy)]
struct MutationParams(Mutation);

const MUTATE: StreamId = StreamId::named("genes/mutation");

impl PluginConfig for Mutation {
    const NAME: &'static str = "mutation";
    const SUMMARY: &'static str = "genes: point mutations at geometric gaps";

    fn validate(&self) -> Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(Invalid::new("rate", "must be in [0, 1]"));
        }
        if !(self.magnitude.is_finite() && self.magnitude >= 0.0) {
            return Err(Invalid::new("magnitude", "must be a finite number ≥ 0"));
        }
        Ok(())
    }
}

impl Plugin for Mutation {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(MutationParams(*self));
        b.add_systems(Phase::Evolve, mutate);
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["population"]
    }
}

/// Mutates every row at geometric gaps; counts mutations (fixed-order sum).
fn mutate(
    mut genomes: ResMut<Genomes>,
    params: Res<MutationParams>,
    scratch: Res<ScratchArenas>,
    clock: Res<Clock>,
    mut stats: ResMut<GenerationStats>,
) {
    let m = params.0;
    let g = genomes.g;
    let (seed, generation) = (clock.seed, clock.step);
    let lambda = -(-m.rate).ln_1p();
    let total = scratch.with(|bump| {
        let chunks = genomes.n.div_ceil(ROWS);
        let counts = bump.alloc_slice_fill_copy(chunks, 0u64);
        genomes
            .cur
            .par_chunks_mut(ROWS * g)
            .zip(counts.par_iter_mut())
            .enumerate()
            .for_each(|(c, (rows, count))| {
                for (k, row) in rows.chunks_mut(g).enumerate() {
                    let mut r = Rng::new(seed, MUTATE, generation, (c * ROWS + k) as u64);
                    *count += mutate_row(row, lambda, m.magnitude, &mut r);
                }
            });
        counts.iter().sum::<u64>()
    });
    stats.mutations = total;
}

/// Mutates one row: positions at gaps ⌊E/λ⌋ (λ = −ln(1 − rate); λ = ∞ means
/// every gene, λ = 0 none). Returns the number of mutations.
#[inline]
pub fn mutate_row(row: &mut [f32], lambda: f64, magnitude: f64, r: &mut Rng) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    // 1/λ (0 when every gene mutates).
    let inv = if lambda.is_infinite() {
        0.0
    } else {
        1.0 / lambda
    };
    let mut count = 0;
    let mut i = gap(inv, r);
    while i < row.len() {
        let z: f64 = StandardNormal.sample(r);
        row[i] = (row[i] + (magnitude * z) as f32).max(0.0);
        count += 1;
        i += 1 + gap(inv, r);
    }
    count
}

/// ⌊E/λ⌋, E ~ Exp(1): Geometric(1 − e^(−λ)) failures before a success.
#[inline]
fn gap(inv_lambda: f64, r: &mut Rng) -> usize {
    let e: f64 = Exp1.sample(r);
    // e/λ ≥ 0: truncation is the floor; `as` saturates at u32::MAX (no row
    // is that long).
    (e * inv_lambda) as u32 as usize
}
