//! Neighbour search for points in a periodic orthorhombic box: a cluster-pair
//! list (GROMACS "nbnxm" style) with a Verlet skin, built in O(N).
//!
//! **Layout.** The box is cut into columns in x-y, each about the footprint of
//! one cluster; the points of a column are sorted by z and grouped into
//! clusters of [`CLUSTER`] consecutive points, the last one padded with dummy
//! slots. Every point gets a *slot* (`slot_of[row]`), every slot a row or
//! [`NO_ROW`] (`row_of[slot]`). Kernels work on copies of the coordinates in
//! slot order, so a cluster's points are contiguous.
//!
//! **List.** For every i-cluster, the j-clusters whose bounding box lies within
//! `r_list = cutoff + skin` of its own, each with the periodic image shift to
//! apply to the j coordinates. Each cluster pair is stored once (Newton's third
//! law): from the cluster for which the other lies *ahead* in cyclic cluster
//! order, at most [`ClusterPairList::window`] clusters ahead. A cluster's pairs
//! with itself (and its images) are stored too; kernels take only points
//! `j > i` inside those.
//!
//! **Deterministic parallel force accumulation.** An i-cluster writes forces
//! only to clusters in `[ci, ci + window]` (cyclic). The i-clusters are cut into
//! tasks of at least `window / (COLORS - 1) + 1` clusters, a multiple of
//! [`COLORS`] of them; tasks of one colour then write disjoint ranges, so they
//! run in parallel without races, colour after colour. The partition depends on
//! the points only — never on the thread count — so every force is summed in
//! the same order with 1 or N threads. [`ClusterPairList::color_windows`] hands
//! out the disjoint slices safely (`split_at_mut`).
//!
//! Memory: 4 B per list entry (j-cluster index and shift packed in a `u32`),
//! 24 B per cluster of bounding box, 8 B per point of slot maps, and the
//! sort buffers; all grow in the first builds and are reused after.

use crate::footprint::Footprint;

/// Points per cluster.
pub const CLUSTER: usize = 4;
/// Colours of the task partition (see the module docs).
pub const COLORS: usize = 16;
/// `row_of` value of a padding slot.
pub const NO_ROW: u32 = u32::MAX;
/// Bits of a list entry that hold the shift index (27 shifts).
const SHIFT_BITS: u32 = 5;

/// A periodic orthorhombic box `[0, L)` in each dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodicBox {
    /// Edge lengths.
    pub len: [f64; 3],
}

impl PeriodicBox {
    /// Wraps a point into `[0, L)`.
    #[inline]
    pub fn wrap(&self, p: [f64; 3]) -> [f64; 3] {
        let mut q = p;
        for d in 0..3 {
            q[d] = p[d].rem_euclid(self.len[d]);
            if q[d] >= self.len[d] {
                q[d] = 0.0; // rem_euclid can round up to L
            }
        }
        q
    }

    /// Minimum-image displacement `a - b`.
    #[inline]
    pub fn min_image(&self, a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
        let mut d = [0.0; 3];
        for k in 0..3 {
            let l = self.len[k];
            let x = a[k] - b[k];
            d[k] = x - l * (x / l).round();
        }
        d
    }

    /// Volume.
    pub fn volume(&self) -> f64 {
        self.len.iter().product()
    }

    /// Shortest edge.
    pub fn min_len(&self) -> f64 {
        self.len.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// The cluster-pair list and the slot layout it refers to.
#[derive(Debug, Default)]
pub struct ClusterPairList {
    r_list: f64,
    bx: Option<PeriodicBox>,
    ncol: [usize; 2],
    col_len: [f64; 2],
    /// First cluster of each column (`ncols + 1` entries).
    col_start: Vec<u32>,
    /// Row → slot.
    pub slot_of: Vec<u32>,
    /// Slot → row, or [`NO_ROW`] for padding.
    pub row_of: Vec<u32>,
    /// Per cluster: min x, y, z, max x, y, z of its real points.
    bbox: Vec<[f32; 6]>,
    /// Per i-cluster, its entries are `entries[starts[ci]..starts[ci + 1]]`.
    starts: Vec<u32>,
    /// `(cj << 5) | shift`.
    entries: Vec<u32>,
    shifts: [[f64; 3]; 27],
    window: usize,
    /// Task boundaries in clusters: task `t` is `task_start[t]..task_start[t+1]`.
    task_start: Vec<u32>,
    // Reused counting-sort buffer.
    cursor: Vec<u32>,
    /// Bounding-box distance checks made by all builds so far.
    pub bbox_checks: u64,
    /// Builds so far.
    pub builds: u64,
}

/// A decoded list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The j-cluster.
    pub cj: u32,
    /// Index into [`ClusterPairList::shifts`].
    pub shift: u8,
}

impl ClusterPairList {
    /// Builds the list for `n` points whose wrapped positions are
    /// `pos(row)` (rows `0..n`), with `r_list = cutoff + skin`.
    ///
    /// `r_list` must not exceed half the shortest box edge (callers validate).
    pub fn build(
        &mut self,
        bx: PeriodicBox,
        r_list: f64,
        n: usize,
        pos: impl Fn(usize) -> [f64; 3],
    ) {
        debug_assert!(2.0 * r_list <= bx.min_len() + 1e-12);
        self.r_list = r_list;
        self.bx = Some(bx);
        self.builds += 1;
        self.layout(bx, n, &pos);
        self.bounding_boxes(&pos);
        self.search(bx);
        self.partition();
    }

    /// Columns and slots: counting sort by column into padded column
    /// segments of `row_of`, then a z sort inside each column.
    fn layout(&mut self, bx: PeriodicBox, n: usize, pos: &impl Fn(usize) -> [f64; 3]) {
        let volume = bx.volume();
        let density = (n.max(1) as f64) / volume;
        // Column footprint ≈ one cube of CLUSTER points.
        let edge = (CLUSTER as f64 / density).cbrt();
        for d in 0..2 {
            self.ncol[d] = ((bx.len[d] / edge).floor() as usize).max(1);
            self.col_len[d] = bx.len[d] / self.ncol[d] as f64;
        }
        let ncols = self.ncol[0] * self.ncol[1];
        let (ncx, cl) = (self.ncol[0], self.col_len);
        let col = |r: usize| {
            let p = pos(r);
            let cx = ((p[0] / cl[0]) as usize).min(ncx - 1);
            let cy = ((p[1] / cl[1]) as usize).min(self.ncol[1] - 1);
            cy * ncx + cx
        };
        // Upper bounds, reserved once: every column pads at most one cluster.
        let max_clusters = n / CLUSTER + ncols;
        reserve_total(&mut self.col_start, ncols + 1);
        reserve_total(&mut self.cursor, ncols + 1);
        reserve_total(&mut self.row_of, max_clusters * CLUSTER);
        reserve_total(&mut self.slot_of, n);
        reserve_total(&mut self.bbox, max_clusters);
        reserve_total(&mut self.starts, max_clusters + 1);
        // Points per column.
        self.cursor.clear();
        self.cursor.resize(ncols + 1, 0);
        for r in 0..n {
            self.cursor[col(r)] += 1;
        }
        // First cluster of each column; cursor becomes the next free slot.
        self.col_start.clear();
        self.col_start.push(0);
        let mut clusters = 0u32;
        for c in 0..ncols {
            let k = self.cursor[c];
            self.cursor[c] = clusters * CLUSTER as u32;
            clusters += k.div_ceil(CLUSTER as u32);
            self.col_start.push(clusters);
        }
        self.row_of.clear();
        self.row_of.resize(clusters as usize * CLUSTER, NO_ROW);
        for r in 0..n {
            let k = &mut self.cursor[col(r)];
            self.row_of[*k as usize] = r as u32;
            *k += 1;
        }
        self.slot_of.clear();
        self.slot_of.resize(n, 0);
        for c in 0..ncols {
            let a = self.col_start[c] as usize * CLUSTER;
            let b = self.cursor[c] as usize; // end of the column's real points
            self.row_of[a..b].sort_unstable_by(|&p, &q| {
                pos(p as usize)[2]
                    .total_cmp(&pos(q as usize)[2])
                    .then(p.cmp(&q))
            });
            for s in a..b {
                self.slot_of[self.row_of[s] as usize] = s as u32;
            }
        }
    }

    fn bounding_boxes(&mut self, pos: &impl Fn(usize) -> [f64; 3]) {
        let nc = self.clusters();
        self.bbox.clear();
        self.bbox.resize(
            nc,
            [f32::MAX, f32::MAX, f32::MAX, f32::MIN, f32::MIN, f32::MIN],
        );
        for (s, &r) in self.row_of.iter().enumerate() {
            if r == NO_ROW {
                continue;
            }
            let p = pos(r as usize);
            let b = &mut self.bbox[s / CLUSTER];
            for d in 0..3 {
                // Round outwards so the f32 box contains the f64 point.
                b[d] = b[d].min(next_down(p[d] as f32));
                b[d + 3] = b[d + 3].max(next_up(p[d] as f32));
            }
        }
    }

    fn search(&mut self, bx: PeriodicBox) {
        let nc = self.clusters();
        let mut k = 0;
        for sx in [-1.0, 0.0, 1.0] {
            for sy in [-1.0, 0.0, 1.0] {
                for sz in [-1.0, 0.0, 1.0] {
                    self.shifts[k] = [sx * bx.len[0], sy * bx.len[1], sz * bx.len[2]];
                    k += 1;
                }
            }
        }
        let shift_index =
            |sx: i32, sy: i32, sz: i32| ((sx + 1) * 9 + (sy + 1) * 3 + (sz + 1)) as u32;
        let r2 = self.r_list * self.r_list;
        let reach = [
            (self.r_list / self.col_len[0]).ceil() as i64,
            (self.r_list / self.col_len[1]).ceil() as i64,
        ];
        let (ncx, ncy) = (self.ncol[0] as i64, self.ncol[1] as i64);
        self.starts.clear();
        // Entries fluctuate from build to build: keep 15% headroom so later
        // builds reuse the buffer (it grows only in the first builds).
        let want = self.entries.len() + self.entries.len() / 7;
        reserve_total(&mut self.entries, want);
        self.entries.clear();
        self.window = 0;
        let mut checks = 0u64;
        for cy in 0..ncy {
            for cx in 0..ncx {
                let col = (cy * ncx + cx) as usize;
                for ci in self.col_start[col]..self.col_start[col + 1] {
                    self.starts.push(self.entries.len() as u32);
                    let bi = self.bbox[ci as usize];
                    if bi[0] > bi[3] {
                        continue; // an empty cluster cannot happen, but be safe
                    }
                    for dy in -reach[1]..=reach[1] {
                        let (jy, sy) = wrap_col(cy + dy, ncy);
                        for dx in -reach[0]..=reach[0] {
                            let (jx, sx) = wrap_col(cx + dx, ncx);
                            let jcol = (jy * ncx + jx) as usize;
                            // The column's cell, shifted into i's image, must come
                            // within r_list of the i-cluster in x-y.
                            let cell = [
                                jx as f64 * self.col_len[0] + sx as f64 * bx.len[0],
                                jy as f64 * self.col_len[1] + sy as f64 * bx.len[1],
                            ];
                            let gx = (cell[0] - bi[3] as f64)
                                .max(bi[0] as f64 - (cell[0] + self.col_len[0]))
                                .max(0.0);
                            let gy = (cell[1] - bi[4] as f64)
                                .max(bi[1] as f64 - (cell[1] + self.col_len[1]))
                                .max(0.0);
                            if gx * gx + gy * gy >= r2 {
                                continue;
                            }
                            let (c0, c1) = (
                                self.col_start[jcol] as usize,
                                self.col_start[jcol + 1] as usize,
                            );
                            let column = &self.bbox[c0..c1];
                            for sz in -1i64..=1 {
                                // Images in z matter only near the z faces.
                                if (sz == 1 && (bi[5] as f64) + self.r_list < bx.len[2])
                                    || (sz == -1 && (bi[2] as f64) - self.r_list >= 0.0)
                                {
                                    continue;
                                }
                                let s = [
                                    sx as f64 * bx.len[0],
                                    sy as f64 * bx.len[1],
                                    sz as f64 * bx.len[2],
                                ];
                                // Clusters of a column are sorted by z: only those
                                // whose shifted z-range meets [lo, hi] can be close.
                                let lo = bi[2] as f64 - self.r_list - s[2];
                                let hi = bi[5] as f64 + self.r_list - s[2];
                                let first = column.partition_point(|b| (b[5] as f64) < lo);
                                for (k, bj) in column[first..].iter().enumerate() {
                                    if bj[2] as f64 > hi {
                                        break;
                                    }
                                    let cj = (c0 + first + k) as u32;
                                    let d = if cj >= ci {
                                        (cj - ci) as usize
                                    } else {
                                        (cj as usize + nc) - ci as usize
                                    };
                                    // d == 0 is the cluster with itself (any image; kernels
                                    // take j > i inside it).
                                    if !(d == 0 || d < nc - d || (d == nc - d && ci < cj)) {
                                        continue;
                                    }
                                    checks += 1;
                                    if bbox_dist2(&bi, bj, s) < r2 {
                                        self.entries.push(
                                            (cj << SHIFT_BITS)
                                                | shift_index(sx as i32, sy as i32, sz as i32),
                                        );
                                        self.window = self.window.max(d);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        self.starts.push(self.entries.len() as u32);
        self.bbox_checks += checks;
        // Keep 15% headroom; give back a capacity far above it (the first
        // build grows by doubling).
        let want = self.entries.len() + self.entries.len() / 7;
        if self.entries.capacity() > want + want / 4 {
            self.entries.shrink_to(want);
        }
        reserve_total(&mut self.entries, want);
    }

    fn partition(&mut self) {
        let nc = self.clusters();
        self.task_start.clear();
        let min_size = self.window / (COLORS - 1) + 1;
        let tasks = (nc / min_size) / COLORS * COLORS;
        if tasks < COLORS {
            self.task_start.extend([0, nc as u32]);
            return;
        }
        for t in 0..=tasks {
            self.task_start.push((t * nc / tasks) as u32);
        }
    }

    /// The lower corner of cluster `c`'s bounding box at the last build (an
    /// f32-exact origin for coordinates local to the cluster).
    #[inline]
    pub fn cluster_origin(&self, c: usize) -> [f32; 3] {
        let b = &self.bbox[c];
        [b[0], b[1], b[2]]
    }

    /// Most clusters any layout of the last build's points can need (every
    /// column pads at most one): size per-cluster buffers to this once.
    pub fn max_clusters(&self) -> usize {
        self.slot_of.len() / CLUSTER + self.ncol[0] * self.ncol[1]
    }

    /// Clusters.
    pub fn clusters(&self) -> usize {
        self.col_start.last().copied().unwrap_or(0) as usize
    }

    /// Slots (clusters × [`CLUSTER`]).
    pub fn slots(&self) -> usize {
        self.row_of.len()
    }

    /// `cutoff + skin` of the last build.
    pub fn r_list(&self) -> f64 {
        self.r_list
    }

    /// The box of the last build.
    pub fn periodic_box(&self) -> Option<PeriodicBox> {
        self.bx
    }

    /// The 27 image shifts (index 13 is no shift).
    pub fn shifts(&self) -> &[[f64; 3]; 27] {
        &self.shifts
    }

    /// Entries of i-cluster `ci`.
    #[inline]
    pub fn entries(&self, ci: usize) -> impl Iterator<Item = Entry> + '_ {
        self.entries[self.starts[ci] as usize..self.starts[ci + 1] as usize]
            .iter()
            .map(|&e| Entry {
                cj: e >> SHIFT_BITS,
                shift: (e & ((1 << SHIFT_BITS) - 1)) as u8,
            })
    }

    /// Total entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Largest forward distance, in clusters, from an i-cluster to its j-clusters.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Number of tasks (1, or a multiple of [`COLORS`]).
    pub fn tasks(&self) -> usize {
        self.task_start.len().saturating_sub(1)
    }

    /// For colour `c`, the tasks of that colour with the clusters they may
    /// write, as disjoint mutable windows of `data` (which holds `per_cluster`
    /// values per cluster), allocated in `bump`. Tasks of one colour may run
    /// in parallel.
    pub fn color_windows<'a, 'b, T>(
        &self,
        c: usize,
        data: &'a mut [T],
        per_cluster: usize,
        bump: &'b bumpalo::Bump,
    ) -> bumpalo::collections::Vec<'b, TaskWindow<'a, T>> {
        let nt = self.tasks();
        let mut out = bumpalo::collections::Vec::with_capacity_in(nt.div_ceil(COLORS), bump);
        if nt == 1 {
            if c == 0 {
                out.push(TaskWindow {
                    clusters: 0..self.clusters() as u32,
                    base: 0,
                    main: data,
                    wrap: &mut [],
                    per_cluster,
                });
            }
            return out;
        }
        // Tasks c, c + C, ...: task t owns clusters [s_t, s_{t+C}) (wrapping for the last).
        let starts = &self.task_start;
        let first = starts[c] as usize * per_cluster;
        let (head, mut rest) = data.split_at_mut(first);
        let mut base = starts[c] as usize;
        let mut t = c;
        while t < nt {
            let next = t + COLORS;
            let (main, wrap): (&mut [T], &mut [T]) = if next < nt {
                let len = (starts[next] as usize - base) * per_cluster;
                let (m, r) = rest.split_at_mut(len);
                rest = r;
                (m, &mut [])
            } else {
                (std::mem::take(&mut rest), &mut [])
            };
            out.push(TaskWindow {
                clusters: starts[t]..starts[t + 1],
                base,
                main,
                wrap,
                per_cluster,
            });
            base = if next < nt {
                starts[next] as usize
            } else {
                base
            };
            t = next;
        }
        // The last task of the colour wraps into [0, s_c).
        if let Some(last) = out.last_mut() {
            last.wrap = head;
        }
        out
    }
}

/// A task's clusters and the slots it may write: `main` covers clusters
/// `base..` up to its end, `wrap` covers clusters `0..` (cyclic wrap).
#[derive(Debug)]
pub struct TaskWindow<'a, T> {
    /// The task's i-clusters.
    pub clusters: std::ops::Range<u32>,
    base: usize,
    main: &'a mut [T],
    wrap: &'a mut [T],
    per_cluster: usize,
}

impl<T> TaskWindow<'_, T> {
    /// The values of cluster `c` (which must lie in this window).
    #[inline]
    pub fn cluster(&mut self, c: usize) -> &mut [T] {
        let pc = self.per_cluster;
        if c >= self.base {
            let o = (c - self.base) * pc;
            &mut self.main[o..o + pc]
        } else {
            &mut self.wrap[c * pc..c * pc + pc]
        }
    }
}

impl Footprint for ClusterPairList {
    fn heap_bytes(&self) -> usize {
        self.col_start.heap_bytes()
            + self.slot_of.heap_bytes()
            + self.row_of.heap_bytes()
            + self.bbox.heap_bytes()
            + self.starts.heap_bytes()
            + self.entries.heap_bytes()
            + self.task_start.heap_bytes()
            + self.cursor.heap_bytes()
    }
}

/// Makes `v` able to hold `total` elements, allocating exactly that (not a
/// doubled capacity) when it cannot already.
fn reserve_total<T>(v: &mut Vec<T>, total: usize) {
    if v.capacity() < total {
        v.reserve_exact(total.saturating_sub(v.len()));
    }
}

fn wrap_col(c: i64, n: i64) -> (i64, i64) {
    if c < 0 {
        (c + n, -1)
    } else if c >= n {
        (c - n, 1)
    } else {
        (c, 0)
    }
}

fn next_down(x: f32) -> f32 {
    x.next_down()
}

fn next_up(x: f32) -> f32 {
    x.next_up()
}

/// Squared distance between two boxes, the second shifted by `s`.
#[inline]
fn bbox_dist2(a: &[f32; 6], b: &[f32; 6], s: [f64; 3]) -> f64 {
    let mut d2 = 0.0;
    for k in 0..3 {
        let gap = (b[k] as f64 + s[k] - a[k + 3] as f64)
            .max(a[k] as f64 - (b[k + 3] as f64 + s[k]))
            .max(0.0);
        d2 += gap * gap;
    }
    d2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, StreamId};

    fn random_points(n: usize, bx: PeriodicBox, seed: u64) -> Vec<[f64; 3]> {
        (0..n)
            .map(|i| {
                let mut r = Rng::new(seed, StreamId::named("test"), 0, i as u64);
                [
                    r.uniform() * bx.len[0],
                    r.uniform() * bx.len[1],
                    r.uniform() * bx.len[2],
                ]
            })
            .collect()
    }

    /// Every pair of points closer than r_list is covered by exactly one list
    /// entry (with the right image), and the list's pairs within r_list are
    /// exactly the brute-force ones.
    #[test]
    fn list_covers_every_close_pair_exactly_once() {
        for (n, len, rl) in [
            (500, [8.0, 9.0, 10.0], 2.8),
            (300, [5.6, 5.6, 5.6], 2.8),
            (2000, [13.0, 7.0, 11.5], 3.3),
            (64, [6.0, 6.0, 6.0], 3.0),
        ] {
            let bx = PeriodicBox { len };
            let pts = random_points(n, bx, n as u64);
            let mut list = ClusterPairList::default();
            list.build(bx, rl, n, |r| pts[r]);
            // Slots are a bijection onto rows.
            let mut seen = vec![false; n];
            for (s, &r) in list.row_of.iter().enumerate() {
                if r != NO_ROW {
                    assert!(!seen[r as usize]);
                    seen[r as usize] = true;
                    assert_eq!(list.slot_of[r as usize] as usize, s);
                }
            }
            assert!(seen.iter().all(|&x| x));
            let mut from_list = std::collections::HashMap::new();
            for ci in 0..list.clusters() {
                for e in list.entries(ci) {
                    let cj = e.cj as usize;
                    assert!((cj + list.clusters() - ci) % list.clusters() <= list.window());
                    let sh = list.shifts()[e.shift as usize];
                    for a in 0..CLUSTER {
                        for b in 0..CLUSTER {
                            if cj == ci && b <= a {
                                continue;
                            }
                            let (ri, rj) =
                                (list.row_of[ci * CLUSTER + a], list.row_of[cj * CLUSTER + b]);
                            if ri == NO_ROW || rj == NO_ROW {
                                continue;
                            }
                            let (pi, pj) = (pts[ri as usize], pts[rj as usize]);
                            let d2: f64 = (0..3).map(|k| (pi[k] - pj[k] - sh[k]).powi(2)).sum();
                            if d2 < rl * rl {
                                let key = (ri.min(rj), ri.max(rj));
                                *from_list.entry(key).or_insert(0) += 1;
                            }
                        }
                    }
                }
            }
            let mut brute = 0;
            for i in 0..n {
                for j in i + 1..n {
                    let d = bx.min_image(pts[i], pts[j]);
                    if d.iter().map(|x| x * x).sum::<f64>() < rl * rl {
                        brute += 1;
                        let c = from_list.get(&(i as u32, j as u32)).copied().unwrap_or(0);
                        assert_eq!(c, 1, "pair {i},{j} covered {c} times (n={n})");
                    }
                }
            }
            assert_eq!(from_list.len(), brute);
        }
    }

    #[test]
    fn color_windows_are_disjoint_and_cover_each_tasks_reach() {
        let bx = PeriodicBox {
            len: [20.0, 20.0, 20.0],
        };
        let n = 6000;
        let pts = random_points(n, bx, 1);
        let mut list = ClusterPairList::default();
        list.build(bx, 2.8, n, |r| pts[r]);
        assert!(list.tasks() >= 2 * COLORS, "tasks {}", list.tasks());
        let bump = bumpalo::Bump::new();
        let mut covered = vec![0u8; list.clusters()];
        for c in 0..COLORS {
            let mut data = vec![0u32; list.slots()];
            let mut wins = list.color_windows(c, &mut data, CLUSTER, &bump);
            for w in wins.iter_mut() {
                for ci in w.clusters.clone() {
                    covered[ci as usize] += 1;
                    w.cluster(ci as usize)[0] += 1;
                    for e in list.entries(ci as usize) {
                        w.cluster(e.cj as usize)[1] += 1;
                    }
                }
            }
        }
        assert!(
            covered.iter().all(|&c| c == 1),
            "every i-cluster in exactly one task"
        );
    }

    #[test]
    fn build_work_grows_linearly() {
        let count = |cells: f64| {
            let len = cells * 1.6796;
            let bx = PeriodicBox { len: [len; 3] };
            let n = (0.8442 * len * len * len) as usize;
            let pts = random_points(n, bx, 7);
            let mut list = ClusterPairList::default();
            list.build(bx, 2.8, n, |r| pts[r]);
            (n, list.bbox_checks)
        };
        let (n1, c1) = count(10.0);
        let (n8, c8) = count(20.0);
        let ratio = (c8 as f64 / n8 as f64) / (c1 as f64 / n1 as f64);
        assert!(
            (0.9..1.1).contains(&ratio),
            "checks per point grew by {ratio}"
        );
    }
}
