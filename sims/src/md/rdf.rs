//! The radial distribution function g(r) (LAMMPS `compute rdf` + `fix ave/time`).
//!
//! Every `every` steps (not the setup pass) the `measure` phase counts the
//! pairs at each distance below `cutoff` into `bins` equal bins, with a cell
//! list of cells at least `cutoff` wide (27 neighbour cells per atom, each
//! pair counted once). Counts are integers, summed per fixed chunk of cells:
//! the histogram is exact and the same on any thread count. At the last step
//! `rdf.csv` gets `r,g` rows, the counts averaged over the samples and
//! normalised by the ideal-gas pair count of each shell:
//! g(r_k) = H_k / (S · N(N−1)/2 · V_k / V), V_k = 4π/3 (r_{k+1}³ − r_k³).
//! The histogram is state: checkpoints save it, so a resumed run averages
//! over the same samples.

use std::io::Write;

use microcosm_engine::neighbor::PeriodicBox;
use microcosm_engine::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

use super::{Position, SimBox};

/// The `rdf` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rdf {
    /// Largest distance (σ); at most half the shortest box edge.
    pub cutoff: f64,
    /// Bins between 0 and `cutoff`.
    #[serde(default = "default_bins")]
    pub bins: u32,
    /// Sample every this many steps.
    #[serde(default = "default_every")]
    pub every: u64,
}

fn default_bins() -> u32 {
    100
}
fn default_every() -> u64 {
    10
}

impl PluginConfig for Rdf {
    const NAME: &'static str = "rdf";
    const SUMMARY: &'static str = "MD radial distribution function g(r), averaged, to rdf.csv";

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.cutoff.is_finite() && self.cutoff > 0.0) {
            return Err(Invalid::new("cutoff", "must be a positive number"));
        }
        if !(1..=100_000).contains(&self.bins) {
            return Err(Invalid::new("bins", "must be between 1 and 100000"));
        }
        if self.every == 0 {
            return Err(Invalid::new("every", "must be at least 1"));
        }
        Ok(())
    }
}

/// The histogram and its settings (a resource).
#[derive(Resource, Debug)]
pub struct RdfState {
    /// Largest distance.
    pub cutoff: f64,
    /// Steps between samples.
    pub every: u64,
    /// Pair counts per bin, summed over the samples.
    pub counts: Vec<u64>,
    /// Samples taken.
    pub samples: u64,
    file: Option<FileId>,
}

impl RdfState {
    /// g(r) at the bin centres: `(r, g)` per bin.
    pub fn g(&self, atoms: usize, volume: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
        normalise(&self.counts, self.samples, self.cutoff, atoms, volume)
    }
}

/// g(r) from pair counts summed over `samples` frames of `atoms` atoms.
pub fn normalise(
    counts: &[u64],
    samples: u64,
    cutoff: f64,
    atoms: usize,
    volume: f64,
) -> impl Iterator<Item = (f64, f64)> + '_ {
    let dr = cutoff / counts.len() as f64;
    let pairs = atoms as f64 * (atoms as f64 - 1.0) / 2.0;
    counts.iter().enumerate().map(move |(k, &h)| {
        let (r0, r1) = (k as f64 * dr, (k + 1) as f64 * dr);
        let shell = 4.0 / 3.0 * std::f64::consts::PI * (r1.powi(3) - r0.powi(3));
        let ideal = samples as f64 * pairs * shell / volume;
        let g = if ideal > 0.0 { h as f64 / ideal } else { 0.0 };
        (0.5 * (r0 + r1), g)
    })
}

impl Footprint for RdfState {
    fn heap_bytes(&self) -> usize {
        self.counts.heap_bytes()
    }
}

/// State: the histogram and the sample count.
impl State for RdfState {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        e.u64(self.samples)?;
        e.slice(&self.counts)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        self.samples = d.u64()?;
        d.slice_into(&mut self.counts)
    }
}

impl Plugin for Rdf {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let bx = SimBox::of(b)?;
        if 2.0 * self.cutoff > bx.min_len() {
            return Err(b.key_error(
                "cutoff",
                format!(
                    "{} is more than half the shortest box edge ({})",
                    self.cutoff,
                    bx.min_len() / 2.0
                ),
            ));
        }
        let file = b.output_file("rdf.csv")?;
        b.insert_resource_with_footprint(RdfState {
            cutoff: self.cutoff,
            every: self.every,
            counts: vec![0; self.bins as usize],
            samples: 0,
            file,
        });
        b.checkpoint_resource::<RdfState>();
        // The first sample (step `every`) sizes the scratch it needs.
        b.min_warmup(self.every);
        b.add_systems(Phase::Measure, sample.run_if(stepping));
        b.add_systems(Phase::Output, write);
        Ok(())
    }

    fn estimate(&self, _s: &Scenario, e: &mut Estimate) {
        e.bytes("rdf histogram", self.bins as u64 * 8);
        // Scratch of a sample: wrapped positions, cell and order per atom.
        e.bytes("rdf cell list (scratch, 32 B/atom)", e.entities * 32);
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms"]
    }
}

fn sample(
    clock: Res<Clock>,
    mut st: ResMut<RdfState>,
    bx: Res<SimBox>,
    scratch: Res<ScratchArenas>,
    mut q: Query<&Position>,
) {
    if !clock.step.is_multiple_of(st.every) {
        return;
    }
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(pos) = iter.next() else { return };
    let st = &mut *st;
    histogram(
        &scratch,
        &bx.0,
        st.cutoff,
        pos.len(),
        |i| pos[i].0.to_array(),
        &mut st.counts,
    );
    st.samples += 1;
}

/// Cells per task: fixed, so the work split never depends on the threads.
const CELLS: usize = 16;

/// Adds to `counts` the pairs of `n` points (`pos(i)`) at each distance
/// below `cutoff` (bin width `cutoff / counts.len()`), each pair once, with
/// minimum-image distances in `bx`. Temporaries come from `scratch`.
pub fn histogram(
    scratch: &ScratchArenas,
    bx: &PeriodicBox,
    cutoff: f64,
    n: usize,
    pos: impl Fn(usize) -> [f64; 3] + Sync,
    counts: &mut [u64],
) {
    let bins = counts.len();
    // Cells at least `cutoff` wide; fewer than 3 along an edge: one cell
    // there (so no neighbour cell is visited twice).
    let nc: [usize; 3] = std::array::from_fn(|d| {
        let k = (bx.len[d] / cutoff).floor() as usize;
        if k >= 3 { k } else { 1 }
    });
    let cells = nc[0] * nc[1] * nc[2];
    let (rc2, inv_dr) = (cutoff * cutoff, bins as f64 / cutoff);
    scratch.with(|bump| {
        // Counting sort of the points into cells.
        let wrapped = bump.alloc_slice_fill_with(n, |i| bx.wrap(pos(i)));
        let cell_of = bump.alloc_slice_fill_with(n, |i| {
            let c: [usize; 3] = std::array::from_fn(|d| {
                ((wrapped[i][d] / bx.len[d] * nc[d] as f64) as usize).min(nc[d] - 1)
            });
            ((c[0] * nc[1] + c[1]) * nc[2] + c[2]) as u32
        });
        let start = bump.alloc_slice_fill_copy(cells + 1, 0u32);
        for &c in cell_of.iter() {
            start[c as usize + 1] += 1;
        }
        for c in 0..cells {
            start[c + 1] += start[c];
        }
        let fill = bump.alloc_slice_copy(&start[..cells]);
        let order = bump.alloc_slice_fill_copy(n, 0u32);
        for (i, &c) in cell_of.iter().enumerate() {
            let c = c as usize;
            order[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        let (start, order, wrapped) = (&*start, &*order, &*wrapped);
        let tasks = cells.div_ceil(CELLS);
        let hist = bump.alloc_slice_fill_copy(tasks * bins, 0u64);
        hist.par_chunks_mut(bins).enumerate().for_each(|(t, h)| {
            for c in t * CELLS..((t + 1) * CELLS).min(cells) {
                let ci = [c / (nc[1] * nc[2]), (c / nc[2]) % nc[1], c % nc[2]];
                for dx in neighbours(nc[0]) {
                    for dy in neighbours(nc[1]) {
                        for dz in neighbours(nc[2]) {
                            let o = [
                                (ci[0] + nc[0]).wrapping_add_signed(dx) % nc[0],
                                (ci[1] + nc[1]).wrapping_add_signed(dy) % nc[1],
                                (ci[2] + nc[2]).wrapping_add_signed(dz) % nc[2],
                            ];
                            let c2 = (o[0] * nc[1] + o[1]) * nc[2] + o[2];
                            if c2 < c {
                                continue;
                            }
                            let (a0, a1) = (start[c] as usize, start[c + 1] as usize);
                            let (b0, b1) = (start[c2] as usize, start[c2 + 1] as usize);
                            for a in a0..a1 {
                                let pi = wrapped[order[a] as usize];
                                let from = if c2 == c { a + 1 } else { b0 };
                                for &j in &order[from..b1] {
                                    let d = bx.min_image(pi, wrapped[j as usize]);
                                    let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                                    if r2 < rc2 {
                                        let k = ((r2.sqrt() * inv_dr) as usize).min(bins - 1);
                                        h[k] += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
        for h in hist.chunks(bins) {
            for (c, x) in counts.iter_mut().zip(h) {
                *c += x;
            }
        }
    });
}

/// Neighbour cell offsets along an edge of `n` cells (just 0 when there is one cell).
fn neighbours(n: usize) -> std::ops::RangeInclusive<isize> {
    if n == 1 { 0..=0 } else { -1..=1 }
}

fn write(
    clock: Res<Clock>,
    st: Res<RdfState>,
    bx: Res<SimBox>,
    q: Query<(), With<Position>>,
    mut files: ResMut<OutputFiles>,
) {
    let Some(id) = st.file else { return };
    if clock.step != clock.last_step {
        return;
    }
    let n = q.iter().len();
    files.write(id, |w| {
        writeln!(w, "r,g")?;
        for (r, g) in st.g(n, bx.0.volume()) {
            writeln!(w, "{r},{g}")?;
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use microcosm_engine::rng::{Rng, StreamId};

    fn brute(bx: &PeriodicBox, p: &[[f64; 3]], cutoff: f64, bins: usize) -> Vec<u64> {
        let mut h = vec![0; bins];
        for i in 0..p.len() {
            for j in i + 1..p.len() {
                let d = bx.min_image(p[i], p[j]);
                let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                if r < cutoff {
                    h[((r * bins as f64 / cutoff) as usize).min(bins - 1)] += 1;
                }
            }
        }
        h
    }

    fn random(n: usize, bx: &PeriodicBox, seed: u64) -> Vec<[f64; 3]> {
        (0..n)
            .map(|i| {
                let mut r = Rng::new(seed, StreamId::named("test"), 0, i as u64);
                // Some points outside the box: the histogram wraps them.
                std::array::from_fn(|d| r.range(-0.5 * bx.len[d], 1.5 * bx.len[d]))
            })
            .collect()
    }

    #[test]
    fn cell_list_counts_equal_brute_force() {
        let scratch = ScratchArenas::new(2);
        for (len, cutoff) in [([10.0, 7.0, 12.5], 2.5), ([5.0, 5.0, 9.0], 2.4)] {
            let bx = PeriodicBox { len };
            let p = random(700, &bx, 3);
            let mut h = vec![0; 37];
            histogram(&scratch, &bx, cutoff, p.len(), |i| p[i], &mut h);
            assert_eq!(h, brute(&bx, &p, cutoff, 37), "box {len:?}");
            assert!(h.iter().sum::<u64>() > 1000);
        }
    }

    #[test]
    fn an_ideal_gas_has_g_equal_to_one() {
        // 20 frames of 4,000 uniform random points: ~2.4·10⁵ pairs per bin
        // beyond r = 1, so g = 1 within a few 0.1%; 4σ bounds.
        let scratch = ScratchArenas::new(1);
        let bx = PeriodicBox { len: [16.0; 3] };
        let (n, frames, bins, cutoff) = (4000, 20, 20, 4.0);
        let mut h = vec![0; bins];
        for f in 0..frames {
            let p = random(n, &bx, 100 + f);
            histogram(&scratch, &bx, cutoff, n, |i| p[i], &mut h);
        }
        let g: Vec<_> = normalise(&h, frames, cutoff, n, bx.volume()).collect();
        for (k, &(r, g)) in g.iter().enumerate() {
            let sigma = 1.0 / (h[k] as f64).sqrt();
            assert!((g - 1.0).abs() < 4.0 * sigma, "g({r}) = {g}, σ = {sigma}");
        }
    }
}
