//! Neighbour search for points in a periodic orthorhombic box: a cluster-pair
//! list (GROMACS "nbnxm" style) with a Verlet skin, built in O(N).
//!
//! **Layout.** The box is cut into columns in x-y, each about the footprint of
//! one cluster; the points of a column are sorted by z and grouped into
//! clusters of [`CLUSTER`] consecutive points, the last one padded with dummy
//! slots. Clusters are numbered column by column: y-major, or in wide boxes
//! in strips of columns with folded rows, which keeps a j-cluster's data in
//! L2 between the i-clusters that reach it (`ColumnOrder`). Every point gets a *slot* (`slot_of[row]`), every slot a row or
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
//! can run in parallel without races, colour after colour. The partition
//! depends on the points only — never on the thread count — so every force is
//! summed in the same order with 1 or N threads.
//! [`TaskPartition::color_windows`] hands out one colour's disjoint slices
//! safely (`split_at_mut`); [`TaskPartition::run_tasks`] runs all the tasks
//! without a barrier between colours, each as soon as the tasks of lower
//! colours that write where it writes have finished (the same order of writes,
//! the same bits).
//!
//! **Small systems** have few tasks per colour (4,000 LJ atoms: ~2, as the
//! window is a third of the clusters), so 2 threads would mostly wait at the
//! 16 colour barriers. When there are fewer than 4 per colour
//! ([`ClusterPairList::spills`]), a pass runs as [`SPILL_TASKS`] tasks at
//! once instead: each writes its own clusters in place and the clusters
//! ahead of them that it reaches into its own spill buffer; afterwards each
//! cluster adds its spilled values in task order ([`SpillPlan`]). Fixed
//! tasks, fixed order: the same bits on any thread count (not the same bits
//! as the colour pass).
//!
//! **Pruning.** Kernels may re-partition each i-cluster's entries in place
//! ([`ClusterPairList::prune_chunks`]): the entries kept come first, the others
//! are flagged and follow; [`ClusterPairList::active_entries`] yields the kept
//! prefix, [`ClusterPairList::entries`] all of them. A build clears all flags.
//! [`ClusterPairList::task_chunks`] lends each force task its own i-clusters'
//! entries, so that a kernel can prune as it computes
//! ([`PruneChunk::toggle`]).
//!
//! Memory: 4 B per list entry (j-cluster index and shift packed in a `u32`),
//! 24 B per cluster of bounding box, 8 B per point of slot maps, and the
//! sort buffers; all grow in the first builds and are reused after.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::footprint::Footprint;
use rayon::prelude::*;

/// Points per cluster.
pub const CLUSTER: usize = 4;
/// Colours of the task partition (see the module docs).
pub const COLORS: usize = 16;
/// `row_of` value of a padding slot.
pub const NO_ROW: u32 = u32::MAX;
/// Bits of a list entry that hold the shift index (27 shifts).
const SHIFT_BITS: u32 = 5;
/// Bit of a list entry that marks it pruned (see [`PruneChunk::retain_first`]).
const PRUNED: u32 = 1 << 31;
/// Most clusters a list can index (the entry bits left by shift and flag).
const MAX_CLUSTERS: usize = 1 << (31 - SHIFT_BITS);

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
    /// Per cluster: min x, y, z, max x, y, z of its real points (the
    /// minima rounded down to a multiple of [`ClusterPairList::origin_quantum`]).
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
    // Reused search buffer: the columns near the current i-column.
    near: Vec<NearColumn>,
    // Side buffers of the parallel search (one per extra thread).
    side: Vec<Side>,
    /// Bounding-box distance checks made by all builds so far.
    pub bbox_checks: u64,
    /// Builds so far.
    pub builds: u64,
}

/// The list is state (a checkpoint saves it whole): which atoms share a
/// cluster and which entries the last prune kept decide the order of every
/// force sum until the next build.
impl crate::checkpoint::State for ClusterPairList {
    fn save(&self, e: &mut crate::checkpoint::Encoder) -> std::io::Result<()> {
        e.f64(self.r_list)?;
        e.bool(self.bx.is_some())?;
        e.pod(&self.bx.map_or([0.0; 3], |b| b.len))?;
        e.pod(&[self.ncol[0] as u64, self.ncol[1] as u64])?;
        e.pod(&self.col_len)?;
        e.slice(&self.col_start)?;
        e.slice(&self.slot_of)?;
        e.slice(&self.row_of)?;
        e.slice(&self.bbox)?;
        e.slice(&self.starts)?;
        e.slice(&self.entries)?;
        e.pod(&self.shifts)?;
        e.u64(self.window as u64)?;
        e.slice(&self.task_start)?;
        e.u64(self.bbox_checks)?;
        e.u64(self.builds)
    }

    fn load(
        &mut self,
        d: &mut crate::checkpoint::Decoder,
    ) -> Result<(), crate::checkpoint::Corrupt> {
        self.r_list = d.f64()?;
        let has_box = d.bool()?;
        let len: [f64; 3] = d.pod()?;
        self.bx = has_box.then_some(PeriodicBox { len });
        let ncol: [u64; 2] = d.pod()?;
        self.ncol = [ncol[0] as usize, ncol[1] as usize];
        self.col_len = d.pod()?;
        d.vec_into(&mut self.col_start)?;
        d.vec_into(&mut self.slot_of)?;
        d.vec_into(&mut self.row_of)?;
        d.vec_into(&mut self.bbox)?;
        d.vec_into(&mut self.starts)?;
        d.vec_into(&mut self.entries)?;
        self.shifts = d.pod()?;
        self.window = d.len(usize::MAX)?;
        d.vec_into(&mut self.task_start)?;
        self.bbox_checks = d.u64()?;
        self.builds = d.u64()?;
        let clusters = self.clusters();
        let bad = self.starts.len() < clusters + 1
            || self.row_of.len() < clusters * CLUSTER
            || self.starts.windows(2).any(|w| w[0] > w[1])
            || self
                .starts
                .last()
                .is_some_and(|&l| l as usize > self.entries.len())
            || self
                .entries
                .iter()
                .any(|&e| decode(e).cj as usize >= clusters)
            || self
                .slot_of
                .iter()
                .any(|&s| s as usize >= self.row_of.len());
        if bad {
            return Err(crate::checkpoint::Corrupt(
                "the neighbour list is inconsistent".into(),
            ));
        }
        Ok(())
    }
}

/// A decoded list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
        pos: impl Fn(usize) -> [f64; 3] + Sync,
    ) {
        debug_assert!(2.0 * r_list <= bx.min_len() + 1e-12);
        self.r_list = r_list;
        self.bx = Some(bx);
        self.builds += 1;
        self.layout(bx, n, &pos);
        assert!(
            self.clusters() <= MAX_CLUSTERS,
            "too many clusters for the list"
        );
        self.bounding_boxes(&pos);
        self.search(bx);
        self.partition();
    }

    /// Columns and slots: counting sort by column into padded column
    /// segments of `row_of`, then a z sort inside each column. The column
    /// of each point, the z sorts and the bounding boxes run on the pool
    /// (each column's sort is independent: the same slots on any thread
    /// count); the counting itself is a cheap serial pass.
    fn layout(&mut self, bx: PeriodicBox, n: usize, pos: &(impl Fn(usize) -> [f64; 3] + Sync)) {
        let volume = bx.volume();
        let density = (n.max(1) as f64) / volume;
        // Column footprint ≈ one cube of CLUSTER points.
        let edge = (CLUSTER as f64 / density).cbrt();
        for d in 0..2 {
            self.ncol[d] = ((bx.len[d] / edge).floor() as usize).max(1);
            self.col_len[d] = bx.len[d] / self.ncol[d] as f64;
        }
        let ncols = self.ncol[0] * self.ncol[1];
        let (ncx, ncy, cl) = (self.ncol[0], self.ncol[1], self.col_len);
        let order = ColumnOrder::new(self.ncol);
        // Upper bounds, reserved once: every column pads at most one cluster.
        let max_clusters = n / CLUSTER + ncols;
        reserve_total(&mut self.col_start, ncols + 1);
        reserve_total(&mut self.cursor, ncols + 1);
        reserve_total(&mut self.row_of, max_clusters * CLUSTER);
        reserve_total(&mut self.slot_of, n);
        reserve_total(&mut self.bbox, max_clusters);
        reserve_total(&mut self.starts, max_clusters + 1);
        // Each point's column, kept in slot_of until the slots are known.
        self.slot_of.clear();
        self.slot_of.resize(n, 0);
        self.slot_of
            .par_chunks_mut(LAYOUT_CHUNK)
            .enumerate()
            .for_each(|(k, cols)| {
                for (i, c) in cols.iter_mut().enumerate() {
                    let p = pos(k * LAYOUT_CHUNK + i);
                    let cx = ((p[0] / cl[0]) as usize).min(ncx - 1);
                    let cy = ((p[1] / cl[1]) as usize).min(ncy - 1);
                    *c = order.id(cx, cy) as u32;
                }
            });
        // Points per column.
        self.cursor.clear();
        self.cursor.resize(ncols + 1, 0);
        for &c in &self.slot_of {
            self.cursor[c as usize] += 1;
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
        for (r, &c) in self.slot_of.iter().enumerate() {
            let k = &mut self.cursor[c as usize];
            self.row_of[*k as usize] = r as u32;
            *k += 1;
        }
        // z sorts, in up to SORT_GROUPS contiguous ranges of columns.
        let (col_start, cursor) = (&self.col_start, &self.cursor);
        let groups = ncols.min(SORT_GROUPS);
        let mut rest = &mut self.row_of[..];
        let mut base = 0;
        let mut ranges: [(&mut [u32], usize, usize, usize); SORT_GROUPS] =
            std::array::from_fn(|g| {
                let (c0, c1) = if g < groups {
                    (g * ncols / groups, (g + 1) * ncols / groups)
                } else {
                    (ncols, ncols)
                };
                let end = col_start[c1] as usize * CLUSTER;
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(end - base);
                rest = tail;
                let first = base;
                base = end;
                (head, first, c0, c1)
            });
        ranges.par_iter_mut().for_each(|(seg, first, c0, c1)| {
            for c in *c0..*c1 {
                let a = col_start[c] as usize * CLUSTER - *first;
                let b = cursor[c] as usize - *first; // end of the column's real points
                seg[a..b].sort_unstable_by(|&p, &q| {
                    pos(p as usize)[2]
                        .total_cmp(&pos(q as usize)[2])
                        .then(p.cmp(&q))
                });
            }
        });
        for (s, &r) in self.row_of.iter().enumerate() {
            if r != NO_ROW {
                self.slot_of[r as usize] = s as u32;
            }
        }
    }

    fn bounding_boxes(&mut self, pos: &(impl Fn(usize) -> [f64; 3] + Sync)) {
        let q = self.origin_quantum();
        let nc = self.clusters();
        let rows = &self.row_of;
        self.bbox.clear();
        self.bbox.resize(nc, [0.0; 6]);
        self.bbox
            .par_chunks_mut(LAYOUT_CHUNK / CLUSTER)
            .enumerate()
            .for_each(|(k, boxes)| {
                for (i, b) in boxes.iter_mut().enumerate() {
                    let c = k * (LAYOUT_CHUNK / CLUSTER) + i;
                    *b = [f32::MAX, f32::MAX, f32::MAX, f32::MIN, f32::MIN, f32::MIN];
                    for &r in &rows[c * CLUSTER..(c + 1) * CLUSTER] {
                        if r == NO_ROW {
                            continue;
                        }
                        let p = pos(r as usize);
                        for d in 0..3 {
                            // Round outwards so the f32 box contains the f64 point.
                            b[d] = b[d].min(next_down(p[d] as f32));
                            b[d + 3] = b[d + 3].max(next_up(p[d] as f32));
                        }
                    }
                    // Origins on the quantum's grid (exact: q is a power of two).
                    for x in &mut b[..3] {
                        *x = (*x / q).floor() * q;
                    }
                }
            });
    }

    fn search(&mut self, bx: PeriodicBox) {
        let mut k = 0;
        for sx in [-1.0, 0.0, 1.0] {
            for sy in [-1.0, 0.0, 1.0] {
                for sz in [-1.0, 0.0, 1.0] {
                    self.shifts[k] = [sx * bx.len[0], sy * bx.len[1], sz * bx.len[2]];
                    k += 1;
                }
            }
        }
        self.starts.clear();
        // Entries fluctuate from build to build: keep headroom so later
        // builds reuse the buffer (it grows only in the first builds).
        let want = self.entries.len() + self.entries.len() / HEADROOM;
        reserve_total(&mut self.entries, want);
        self.entries.clear();
        // Columns are searched in up to SEARCH_TASKS fixed, contiguous
        // ranges of at least SEARCH_COLUMNS columns, as many at a time as the
        // pool has threads: the first of each wave appends to the list
        // itself, the others to side buffers appended after it in order. The
        // list is the same on any thread count; the side buffers hold
        // (threads − 1) / tasks of it.
        let (mut entries, mut starts) = (
            std::mem::take(&mut self.entries),
            std::mem::take(&mut self.starts),
        );
        let mut near = std::mem::take(&mut self.near);
        let mut side = std::mem::take(&mut self.side);
        let ncols = self.ncol[0] * self.ncol[1];
        let tasks = (ncols / SEARCH_COLUMNS).clamp(1, SEARCH_TASKS);
        let threads = rayon::current_num_threads().clamp(1, tasks);
        if side.len() < threads - 1 {
            side.resize_with(threads - 1, Side::default);
        }
        let cols = |t: usize| t * ncols / tasks..(t + 1) * ncols / tasks;
        let (mut window, mut checks) = (0, 0u64);
        let mut t = 0;
        while t < tasks {
            let w = threads.min(tasks - t);
            let this = &*self;
            let ((w0, c0), (w1, c1)) = rayon::join(
                || this.search_columns(bx, cols(t), &mut entries, &mut starts, &mut near),
                || {
                    side[..w - 1]
                        .par_iter_mut()
                        .enumerate()
                        .map(|(k, sd)| {
                            sd.entries.clear();
                            sd.starts.clear();
                            this.search_columns(
                                bx,
                                cols(t + 1 + k),
                                &mut sd.entries,
                                &mut sd.starts,
                                &mut sd.near,
                            )
                        })
                        .reduce(|| (0, 0), |a, b| (a.0.max(b.0), a.1 + b.1))
                },
            );
            for sd in &side[..w - 1] {
                let base = entries.len() as u32;
                starts.extend(sd.starts.iter().map(|&x| x + base));
                entries.extend_from_slice(&sd.entries);
            }
            window = window.max(w0).max(w1);
            checks += c0 + c1;
            t += w;
        }
        self.entries = entries;
        self.starts = starts;
        self.near = near;
        self.side = side;
        self.window = window;
        self.starts.push(self.entries.len() as u32);
        self.bbox_checks += checks;
        // Keep the headroom; give back a capacity far above it (the first
        // build grows by doubling).
        let want = self.entries.len() + self.entries.len() / HEADROOM;
        if self.entries.capacity() > want + want / 4 {
            self.entries.shrink_to(want);
        }
        reserve_total(&mut self.entries, want);
    }

    /// Searches the i-columns `cols` (in order), appending each i-cluster's
    /// start (relative to `entries`) and entries; returns the largest
    /// forward distance of an entry and the bounding-box checks made.
    fn search_columns(
        &self,
        bx: PeriodicBox,
        cols: std::ops::Range<usize>,
        entries: &mut Vec<u32>,
        starts: &mut Vec<u32>,
        near: &mut Vec<NearColumn>,
    ) -> (usize, u64) {
        let nc = self.clusters();
        let shift_index =
            |sx: i32, sy: i32, sz: i32| ((sx + 1) * 9 + (sy + 1) * 3 + (sz + 1)) as u32;
        // Box tests run in f32 on an r_list widened by a margin far above the
        // rounding of f32 coordinates (|x| < 2L): the list may gain a few
        // entries, it never misses one.
        let lmax = bx.len.iter().copied().fold(0.0, f64::max);
        let margin = 1e-5 * (lmax + self.r_list);
        let rm = self.r_list + margin;
        let rs = rm as f32;
        let r2 = rs * rs;
        let len = bx.len.map(|l| l as f32);
        let reach = [
            (self.r_list / self.col_len[0]).ceil() as i64,
            (self.r_list / self.col_len[1]).ceil() as i64,
        ];
        let (ncx, ncy) = (self.ncol[0] as i64, self.ncol[1] as i64);
        let cl = self.col_len;
        let order = ColumnOrder::new(self.ncol);
        reserve_total(near, ((2 * reach[0] + 1) * (2 * reach[1] + 1)) as usize);
        let mut window = 0;
        let mut checks = 0u64;
        for col in cols {
            let (cx, cy) = order.xy(col);
            let (cx, cy) = (cx as i64, cy as i64);
            // The columns whose cells come within r_list of this one's, in
            // a fixed order (y, then x), with the image shift to apply.
            near.clear();
            let (ix0, iy0) = (cx as f64 * cl[0], cy as f64 * cl[1]);
            for dy in -reach[1]..=reach[1] {
                let (jy, sy) = wrap_col(cy + dy, ncy);
                for dx in -reach[0]..=reach[0] {
                    let (jx, sx) = wrap_col(cx + dx, ncx);
                    let jcol = order.id(jx as usize, jy as usize);
                    let x0 = jx as f64 * cl[0] + sx as f64 * bx.len[0];
                    let y0 = jy as f64 * cl[1] + sy as f64 * bx.len[1];
                    let gx = (x0 - (ix0 + cl[0])).max(ix0 - (x0 + cl[0])).max(0.0);
                    let gy = (y0 - (iy0 + cl[1])).max(iy0 - (y0 + cl[1])).max(0.0);
                    if gx * gx + gy * gy >= rm * rm {
                        continue;
                    }
                    let c0 = self.col_start[jcol];
                    near.push(NearColumn {
                        c0,
                        c1: self.col_start[jcol + 1],
                        cell: [
                            next_down(x0 as f32),
                            next_up((x0 + cl[0]) as f32),
                            next_down(y0 as f32),
                            next_up((y0 + cl[1]) as f32),
                        ],
                        shift: [sx as f32 * len[0], sy as f32 * len[1]],
                        image: shift_index(sx as i32, sy as i32, -1),
                        cur: [c0; 3],
                    });
                }
            }
            for ci in self.col_start[col]..self.col_start[col + 1] {
                starts.push(entries.len() as u32);
                let bi = self.bbox[ci as usize];
                if bi[0] > bi[3] {
                    continue; // an empty cluster cannot happen, but be safe
                }
                // The clusters ahead of ci in cyclic order (it lists pairs
                // with those; the ones behind list it): [ci, e1) and [0, e2).
                let (e1, e2) = ahead_of(ci, nc as u32);
                // Images in z (index, shift) matter only near the z faces.
                let mut zimages = [(0u32, 0.0f32); 3];
                let mut nz = 0;
                for (m, sz) in [(0u32, -1.0f32), (1, 0.0), (2, 1.0)] {
                    zimages[nz] = (m, sz * len[2]);
                    nz += usize::from(
                        m == 1 || (m == 0 && bi[2] - rs < 0.0) || (m == 2 && bi[5] + rs >= len[2]),
                    );
                }
                let zimages = &zimages[..nz];
                // Accepted entries of this i-cluster, flushed in batches
                // (so that accepting is branch-free).
                let mut out = Batch {
                    buf: [0; BATCH],
                    n: 0,
                };
                let mut last_d = 0;
                for nb in near.iter_mut() {
                    // The column's clusters ahead of ci: [a1, b1) and
                    // [c0, b2). Columns wholly behind hold no pair of its
                    // (they list it themselves).
                    let (a1, b1, b2) = (nb.c0.max(ci), nb.c1.min(e1), nb.c1.min(e2));
                    if a1 >= b1 && nb.c0 >= b2 {
                        continue;
                    }
                    // The column's cell must come within r_list of the
                    // i-cluster in x-y.
                    let gx = fmax(fmax(nb.cell[0] - bi[3], bi[0] - nb.cell[1]), 0.0);
                    let gy = fmax(fmax(nb.cell[2] - bi[4], bi[1] - nb.cell[3]), 0.0);
                    if gx * gx + gy * gy >= r2 {
                        continue;
                    }
                    for &(m, sz) in zimages {
                        // Clusters of a column are sorted by z: only those
                        // whose shifted z-range meets [lo, hi] can be close.
                        // Both bounds only grow along the i-column, so the
                        // first candidate is a cursor that only moves on.
                        let lo = bi[2] - rs - sz;
                        let mut c = nb.cur[m as usize];
                        while c < nb.c1 && self.bbox[c as usize][5] < lo {
                            c += 1;
                        }
                        nb.cur[m as usize] = c;
                        // The i-box in the j-column's image.
                        let ib = Shifted {
                            lo: [bi[0] - nb.shift[0], bi[1] - nb.shift[1], bi[2] - sz],
                            hi: [bi[3] - nb.shift[0], bi[4] - nb.shift[1], bi[5] - sz],
                            zmax: bi[5] + rs - sz,
                            r2,
                            image: nb.image + m,
                        };
                        // The ahead candidates in ascending order. The
                        // window is the largest cyclic distance of an
                        // entry: that of a sweep's last.
                        if nb.c0 < b2 {
                            let (k, last) = ib.sweep(&self.bbox, c, b2, entries, &mut out);
                            checks += k;
                            if last != NONE {
                                last_d = last_d.max(last as usize + nc - ci as usize);
                            }
                        }
                        let (k, last) = ib.sweep(&self.bbox, c.max(a1), b1, entries, &mut out);
                        checks += k;
                        if last != NONE {
                            last_d = last_d.max((last - ci) as usize);
                        }
                    }
                }
                window = window.max(last_d);
                entries.extend_from_slice(&out.buf[..out.n]);
            }
        }
        (window, checks)
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
    /// f32-exact origin for coordinates local to the cluster), a multiple of
    /// [`ClusterPairList::origin_quantum`].
    #[inline]
    pub fn cluster_origin(&self, c: usize) -> [f32; 3] {
        self.geometry().cluster_origin(c)
    }

    /// [`ClusterPairList::cluster_origin`] in lanes 0..3 of four (lane 3 holds
    /// an unspecified finite value): four lanes load and convert as one vector.
    #[inline]
    pub fn cluster_origin4(&self, c: usize) -> [f32; 4] {
        self.geometry().cluster_origin4(c)
    }

    /// The read-only geometry of the last build (cluster origins).
    #[inline]
    fn geometry(&self) -> Geometry<'_> {
        Geometry { bbox: &self.bbox }
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

    /// Entries of i-cluster `ci` (pruned ones included).
    #[inline]
    pub fn entries(&self, ci: usize) -> impl Iterator<Item = Entry> + '_ {
        self.entries[self.starts[ci] as usize..self.starts[ci + 1] as usize]
            .iter()
            .map(|&e| decode(e))
    }

    /// Entries of i-cluster `ci` that the last prune kept (all of them after
    /// a build), in their current order.
    #[inline]
    pub fn active_entries(&self, ci: usize) -> impl Iterator<Item = Entry> + '_ {
        self.entries[self.starts[ci] as usize..self.starts[ci + 1] as usize]
            .iter()
            .take_while(|&&e| e & PRUNED == 0)
            .map(|&e| decode(e))
    }

    /// Entries kept by the last prune (all after a build).
    pub fn active_len(&self) -> usize {
        (0..self.clusters())
            .map(|ci| self.active_entries(ci).count())
            .sum()
    }

    /// The i-clusters cut into chunks of `chunk` clusters, each with its
    /// entries to re-partition (see [`PruneChunk::retain_first`]), allocated
    /// in `bump`. Chunks are disjoint: they may be pruned in parallel.
    pub fn prune_chunks<'a, 'b>(
        &'a mut self,
        chunk: usize,
        bump: &'b bumpalo::Bump,
    ) -> bumpalo::collections::Vec<'b, PruneChunk<'a>> {
        let nc = self.clusters();
        let chunk = chunk.max(1);
        let bounds = (0..nc.div_ceil(chunk)).map(|k| k * chunk).chain([nc]);
        self.entry_chunks(bounds, bump)
    }

    /// The entries of each force task ([`ClusterPairList::tasks`], in
    /// order), with the task partition to run them with
    /// ([`TaskPartition::run_tasks`]): force tasks may then prune
    /// their own i-clusters' entries as they go.
    pub fn task_chunks<'a, 'b>(
        &'a mut self,
        bump: &'b bumpalo::Bump,
    ) -> (
        TaskPartition<'a>,
        bumpalo::collections::Vec<'b, PruneChunk<'a>>,
    ) {
        let nc = self.clusters();
        let bounds = self.task_start.iter().map(|&s| s as usize);
        let chunks = split(&mut self.entries, &self.starts, &self.bbox, bounds, bump);
        let part = TaskPartition {
            task_start: &self.task_start,
            nc,
        };
        (part, chunks)
    }

    /// The entries of the i-clusters between consecutive `bounds` (cluster
    /// indices from 0 to [`ClusterPairList::clusters`], increasing), one
    /// chunk each, allocated in `bump`.
    pub fn entry_chunks<'a, 'b>(
        &'a mut self,
        bounds: impl IntoIterator<Item = usize>,
        bump: &'b bumpalo::Bump,
    ) -> bumpalo::collections::Vec<'b, PruneChunk<'a>> {
        split(&mut self.entries, &self.starts, &self.bbox, bounds, bump)
    }

    /// Total entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grid of the cluster origins: the least power of two `q` with
    /// `L ≤ 2²¹·q` for the longest box edge `L` (0 before the first build).
    ///
    /// Origins of wrapped points lie within `[−q, L]`, so they, their
    /// differences and those plus a multiple of `q` up to `±L` are integers
    /// times `q` below 2²³ in size: exact in f32. A kernel adds an image
    /// shift as such a multiple plus a rest smaller than `q/2`
    /// ([`ClusterPairList::image_offsets`]): the offset between two
    /// clusters' frames then costs f32 additions and one rounding.
    pub fn origin_quantum(&self) -> f32 {
        self.bx.map_or(0.0, |b| {
            let l = b.len.iter().copied().fold(0.0, f64::max);
            2f64.powi(l.log2().ceil() as i32 - 21) as f32
        })
    }

    /// The image shifts ([`ClusterPairList::shifts`]) split for f32 kernels:
    /// see [`ImageOffsets`].
    pub fn image_offsets(&self) -> ImageOffsets {
        let q = self.origin_quantum() as f64;
        let mut out = ImageOffsets {
            whole: [[0.0; 4]; 32],
            rest: [[0.0; 4]; 32],
        };
        if q == 0.0 {
            return out;
        }
        for (s, sh) in self.shifts.iter().enumerate() {
            for (d, &x) in sh.iter().enumerate() {
                let m = (x / q).round() * q;
                out.whole[s][d] = m as f32;
                out.rest[s][d] = x - m;
            }
        }
        out
    }

    /// Largest forward distance, in clusters, from an i-cluster to its j-clusters.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Number of tasks (1, or a multiple of [`COLORS`]).
    pub fn tasks(&self) -> usize {
        self.task_start.len().saturating_sub(1)
    }

    /// Whether force passes should run as [`SPILL_TASKS`] spill tasks instead
    /// of colour tasks: when the colours have fewer than 4 tasks each (small
    /// systems: 4,000 LJ atoms have ~2), 2 threads wait at 16 colour
    /// barriers a pass. Depends on the list only.
    pub fn spills(&self) -> bool {
        self.tasks() < SPILL_BELOW * COLORS
    }

    /// The [`SPILL_TASKS`] spill tasks of a force pass ([`SpillPlan::windows`])
    /// and where they put each cluster's spilled values
    /// ([`SpillPlan::runs`]).
    /// Task `t` owns clusters `[t·nc/K, (t+1)·nc/K)` and reaches `window`
    /// clusters ahead of them (fewer if that wraps onto its own).
    pub fn spill_plan(&self) -> SpillPlan {
        let nc = self.clusters();
        let mut tasks = [(0, 0, 0, 0); SPILL_TASKS];
        let mut first = 0;
        for (t, x) in tasks.iter_mut().enumerate() {
            let (a, b) = (t * nc / SPILL_TASKS, (t + 1) * nc / SPILL_TASKS);
            let len = self.window.min(nc - (b - a));
            *x = (a, b, len, first);
            first += len;
        }
        SpillPlan { nc, tasks }
    }

    /// The task partition, for [`TaskPartition::run_tasks`] (with the
    /// tasks' entries: [`ClusterPairList::task_chunks`]).
    pub fn task_partition(&self) -> TaskPartition<'_> {
        TaskPartition {
            task_start: &self.task_start,
            nc: self.clusters(),
        }
    }
}

/// The entries of the i-clusters between consecutive `bounds`, one chunk each.
fn split<'a, 'b>(
    mut rest: &'a mut [u32],
    starts: &'a [u32],
    bbox: &'a [[f32; 6]],
    bounds: impl IntoIterator<Item = usize>,
    bump: &'b bumpalo::Bump,
) -> bumpalo::collections::Vec<'b, PruneChunk<'a>> {
    let mut out = bumpalo::collections::Vec::new_in(bump);
    let mut bounds = bounds.into_iter();
    let mut c0 = bounds.next().unwrap_or(0);
    let mut base = starts.get(c0).map_or(0, |&s| s as usize);
    for c1 in bounds {
        let end = starts[c1] as usize;
        let (mine, r) = std::mem::take(&mut rest).split_at_mut(end - base);
        rest = r;
        out.push(PruneChunk {
            clusters: c0 as u32..c1 as u32,
            geometry: Geometry { bbox },
            starts,
            base,
            entries: mine,
        });
        (c0, base) = (c1, end);
    }
    out
}

/// The task partition of a list (see the module docs), borrowed apart from
/// its entries.
#[derive(Debug, Clone, Copy)]
pub struct TaskPartition<'a> {
    task_start: &'a [u32],
    nc: usize,
}

impl TaskPartition<'_> {
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
        let nt = self.task_start.len().saturating_sub(1);
        let mut out = bumpalo::collections::Vec::with_capacity_in(nt.div_ceil(COLORS), bump);
        if c >= nt {
            return out;
        }
        // Tasks c, c + C, ...: consecutive windows; the last one wraps into
        // [0, s_c), ahead of the first.
        let first = self.reach(c).0.start;
        let (head, mut rest) = data.split_at_mut(first * per_cluster);
        let mut wrap_end = 0;
        for t in (c..nt).step_by(COLORS) {
            let (main, wrap) = self.reach(t);
            let (m, r) = std::mem::take(&mut rest).split_at_mut(main.len() * per_cluster);
            rest = r;
            out.push(TaskWindow {
                clusters: self.task_start[t]..self.task_start[t + 1],
                base: main.start,
                main: m,
                wrap: &mut [],
                per_cluster,
            });
            wrap_end = wrap;
        }
        if let Some(last) = out.last_mut() {
            last.wrap = &mut head[..wrap_end * per_cluster];
        }
        out
    }
}

impl TaskPartition<'_> {
    /// The clusters task `t` may write: `main` from its first cluster up to
    /// the next task of its colour (the end for the last one), and clusters
    /// `0..wrap` (the last task of a colour wraps to the first's start).
    fn reach(&self, t: usize) -> (std::ops::Range<usize>, usize) {
        let nt = self.task_start.len() - 1;
        let s = |k: usize| self.task_start[k] as usize;
        let next = t + COLORS;
        if next < nt {
            (s(t)..s(next), 0)
        } else if nt < COLORS {
            (s(t)..self.nc, 0)
        } else {
            (s(t)..self.nc, s(next - nt))
        }
    }

    /// Runs every task once on the current pool, with no barrier between
    /// colours: `f(window, item)` with task `t`'s window of `data` (the one
    /// [`TaskPartition::color_windows`] gives it: its clusters and up to the
    /// next task of its colour, cyclically) and `items[t]` (one per task).
    ///
    /// Two tasks' windows overlap only if they are fewer than [`COLORS`]
    /// tasks apart (cyclically), and then their colours differ. Task `t` of
    /// colour `c > 0` starts once tasks `t − 1` and `t + COLORS − 1` (the
    /// nearest two of colour `c − 1`, behind and ahead) have finished. If
    /// `u = t + d` with `0 < d < COLORS`, the chain `u, u − 1, …, t` (when
    /// `c(t) < c(u)`) or `t, t + COLORS − 1, t + COLORS − 2, …, u` (when
    /// `c(u) < c(t)`) steps down one colour at a time along such dependencies,
    /// so the task of the lower colour finishes before the other starts.
    /// Tasks whose windows overlap therefore never run at once, and every
    /// value gets the same writes in the same order as colour by colour
    /// (the same bits on any thread count). What changes is the waiting: a
    /// thread that finishes its share of a colour starts on tasks of the
    /// next colour whose neighbours are done, instead of waiting at a
    /// barrier for the slowest task of the colour (256,000 LJ atoms have 4
    /// tasks per colour, of 2.0–3.2 M entries per 100 steps each).
    ///
    /// Allocates only in `bump` (the scheduler's counters: 8 B a task).
    #[allow(
        unsafe_code,
        reason = "windows of overlapping tasks are ordered by `Flow`"
    )]
    pub fn run_tasks<T: Send, I: Send>(
        &self,
        data: &mut [T],
        per_cluster: usize,
        items: &mut [I],
        bump: &bumpalo::Bump,
        f: impl Fn(&mut TaskWindow<'_, T>, &mut I) + Sync,
    ) {
        let nt = self.task_start.len().saturating_sub(1);
        assert_eq!(items.len(), nt, "one item per task");
        assert!(
            data.len() >= self.nc * per_cluster,
            "data covers the clusters"
        );
        if nt == 0 {
            return;
        }
        let flow = Flow::new(nt, bump);
        let shared = Shared {
            data: data.as_mut_ptr(),
            items: items.as_mut_ptr(),
        };
        let workers = rayon::current_num_threads().clamp(1, nt);
        (0..workers).into_par_iter().with_max_len(1).for_each(|_| {
            let _fail = FailOnUnwind(&flow.failed);
            while let Some(t) = flow.next() {
                let shared = &shared;
                // SAFETY: `flow` hands out each task once, so `items[t]` has
                // one user; task `t` is claimed only after every task whose
                // window overlaps its own and that comes first in colour
                // order has finished (`Flow::done`, the dependency chains
                // above), and the others wait for `t` in turn, so no two
                // running tasks' windows overlap. The windows lie inside
                // `data` (`nc * per_cluster` values, asserted above), and
                // `data` and `items` are borrowed mutably for this call.
                let (mut w, item) = unsafe { self.claimed(t, shared, per_cluster) };
                f(&mut w, item);
                flow.done(t);
            }
        });
    }

    /// Task `t`'s window of `shared.data` and its item.
    ///
    /// # Safety
    ///
    /// No other live reference may reach the window or the item (see
    /// [`TaskPartition::run_tasks`]).
    #[allow(
        unsafe_code,
        reason = "windows of overlapping tasks are ordered by `Flow`"
    )]
    unsafe fn claimed<'s, T, I>(
        &self,
        t: usize,
        shared: &Shared<T, I>,
        per_cluster: usize,
    ) -> (TaskWindow<'s, T>, &'s mut I) {
        let (main, wrap) = self.reach(t);
        let base = main.start;
        // SAFETY: [0, wrap) and `main` lie within the clusters (wrap ≤ base:
        // the last task of a colour wraps to its first), and the caller
        // guarantees exclusive access.
        unsafe {
            let main = std::slice::from_raw_parts_mut(
                shared.data.add(base * per_cluster),
                main.len() * per_cluster,
            );
            let wrap = std::slice::from_raw_parts_mut(shared.data, wrap * per_cluster);
            let w = TaskWindow {
                clusters: self.task_start[t]..self.task_start[t + 1],
                base,
                main,
                wrap,
                per_cluster,
            };
            (w, &mut *shared.items.add(t))
        }
    }
}

/// The data and items [`TaskPartition::run_tasks`] hands out, shared by its
/// workers.
struct Shared<T, I> {
    data: *mut T,
    items: *mut I,
}

// SAFETY: the pointers are only dereferenced through
// `TaskPartition::claimed`, whose callers give each task exclusive access
// to its window and item; the values themselves are `Send`.
#[allow(unsafe_code, reason = "see TaskPartition::run_tasks")]
unsafe impl<T: Send, I: Send> Sync for Shared<T, I> {}

/// The dependency counts and ready queue of [`TaskPartition::run_tasks`].
struct Flow<'a> {
    /// Per task, its dependencies not yet finished.
    pending: &'a [AtomicU32],
    /// Ready tasks (plus one) in the order they became ready; 0 while a
    /// claimed slot is still being filled.
    queue: &'a [AtomicU32],
    /// The next queue slot to claim.
    head: AtomicUsize,
    /// The next queue slot to fill.
    tail: AtomicUsize,
    /// A task panicked: the others stop claiming (and waiting).
    failed: AtomicBool,
}

impl<'a> Flow<'a> {
    fn new(nt: usize, bump: &'a bumpalo::Bump) -> Self {
        let pending = bump.alloc_slice_fill_with(nt, |t| {
            AtomicU32::new(flow_neighbors(t, nt, false).count() as u32)
        });
        let queue = bump.alloc_slice_fill_with(nt, |_| AtomicU32::new(0));
        let flow = Flow {
            pending,
            queue,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        };
        for t in (0..nt).step_by(COLORS) {
            flow.push(t);
        }
        flow
    }

    fn push(&self, t: usize) {
        let k = self.tail.fetch_add(1, Ordering::AcqRel);
        self.queue[k].store(t as u32 + 1, Ordering::Release);
    }

    /// Claims the next ready task, waiting while none is ready but some are
    /// still to come; `None` once every task is claimed. A waiting worker
    /// spins, and now and then yields its core (with more threads than
    /// cores, the task it waits for may need it).
    fn next(&self) -> Option<usize> {
        let nt = self.queue.len();
        let mut spins = 0u32;
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return None;
            }
            let h = self.head.load(Ordering::Acquire);
            if h >= nt {
                return None;
            }
            if h < self.tail.load(Ordering::Acquire)
                && self
                    .head
                    .compare_exchange_weak(h, h + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                loop {
                    let v = self.queue[h].load(Ordering::Acquire);
                    if v != 0 {
                        return Some(v as usize - 1);
                    }
                    std::hint::spin_loop();
                }
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Task `t` has finished: its dependents whose dependencies are all
    /// done become ready.
    fn done(&self, t: usize) {
        let nt = self.queue.len();
        for u in flow_neighbors(t, nt, true) {
            if self.pending[u].fetch_sub(1, Ordering::AcqRel) == 1 {
                self.push(u);
            }
        }
    }
}

/// The tasks task `t` waits for (`after == false`: tasks `t − 1` and
/// `t + COLORS − 1` of the previous colour, none for colour 0) or that wait
/// for it (`after`: `t + 1` and `t − COLORS + 1` of the next colour), cyclic
/// over `nt` tasks (a multiple of [`COLORS`], or a single task, which has
/// none); the same task once if both name it (one task per colour).
fn flow_neighbors(t: usize, nt: usize, after: bool) -> impl Iterator<Item = usize> {
    let c = t % COLORS;
    let (a, b, edge) = if after {
        ((t + 1) % nt, (t + nt - (COLORS - 1)) % nt, c == COLORS - 1)
    } else {
        ((t + nt - 1) % nt, (t + COLORS - 1) % nt, c == 0)
    };
    let none = edge || nt < COLORS;
    let (a, b) = if none {
        (None, None)
    } else {
        (Some(a), (b != a).then_some(b))
    };
    a.into_iter().chain(b)
}

/// Sets the flag if dropped while unwinding (a task panicked).
struct FailOnUnwind<'a>(&'a AtomicBool);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
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
    /// The value of cluster `c` (which must lie in this window) when the
    /// window holds one value per cluster.
    #[inline]
    pub fn one(&mut self, c: usize) -> &mut T {
        debug_assert_eq!(self.per_cluster, 1);
        if c >= self.base {
            &mut self.main[c - self.base]
        } else {
            &mut self.wrap[c]
        }
    }

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

/// Where a force task writes one value per cluster: a colour task's
/// [`TaskWindow`] or a spill task's [`SpillWindow`].
pub trait Writes<T> {
    /// The task's i-clusters.
    fn clusters(&self) -> std::ops::Range<u32>;
    /// The value of cluster `c`, which must lie within the task's reach
    /// (its clusters and up to [`ClusterPairList::window`] ahead).
    fn one(&mut self, c: usize) -> &mut T;
}

impl<T> Writes<T> for TaskWindow<'_, T> {
    #[inline(always)]
    fn clusters(&self) -> std::ops::Range<u32> {
        self.clusters.clone()
    }
    #[inline(always)]
    fn one(&mut self, c: usize) -> &mut T {
        TaskWindow::one(self, c)
    }
}

/// Tasks of the spill partition: with fewer than this many tasks per colour,
/// the colours leave 2 threads little to share (see
/// [`ClusterPairList::spills`]).
const SPILL_BELOW: usize = 4;

/// Tasks of the spill partition (fixed: never depends on the thread count).
pub const SPILL_TASKS: usize = 4;

/// A spill task (see [`SpillPlan::windows`]): its own clusters'
/// values in place, the values of the clusters ahead of them that it reaches
/// in its spill buffer.
#[derive(Debug)]
pub struct SpillWindow<'a, T> {
    /// The task's i-clusters.
    pub clusters: std::ops::Range<u32>,
    base: usize,
    nc: usize,
    own: &'a mut [T],
    spill: &'a mut [T],
}

impl<T: Copy> SpillWindow<'_, T> {
    /// Sets every value the task writes (its own clusters' and its spill
    /// buffer's) to `v`: the task zeroes what it will add to, on its own thread.
    pub fn fill(&mut self, v: T) {
        self.own.fill(v);
        self.spill.fill(v);
    }
}

impl<T> Writes<T> for SpillWindow<'_, T> {
    #[inline(always)]
    fn clusters(&self) -> std::ops::Range<u32> {
        self.clusters.clone()
    }
    #[inline(always)]
    fn one(&mut self, c: usize) -> &mut T {
        let off = if c >= self.base {
            c - self.base
        } else {
            c + self.nc - self.base
        };
        if off < self.own.len() {
            &mut self.own[off]
        } else {
            &mut self.spill[off - self.own.len()]
        }
    }
}

/// The spill tasks' clusters and reach (see [`ClusterPairList::spill_plan`]).
#[derive(Debug, Clone, Copy)]
pub struct SpillPlan {
    nc: usize,
    /// Per task: first cluster, end cluster, spill length, spill offset.
    tasks: [(usize, usize, usize, usize); SPILL_TASKS],
}

impl SpillPlan {
    /// The tasks' first clusters, then the number of clusters (for
    /// [`ClusterPairList::entry_chunks`]).
    pub fn bounds(&self) -> [usize; SPILL_TASKS + 1] {
        let mut b = [self.nc; SPILL_TASKS + 1];
        for (x, t) in b.iter_mut().zip(&self.tasks) {
            *x = t.0;
        }
        b
    }

    /// Values the spill buffers hold.
    pub fn len(&self) -> usize {
        self.tasks.iter().map(|t| t.2).sum()
    }

    /// Whether nothing spills (a list without clusters).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spill tasks, which may all run at once: task `t` owns clusters
    /// `[t·nc/K, (t+1)·nc/K)` of `data` (one value per cluster) and writes
    /// the clusters ahead of them it reaches into its part of `spill` (at
    /// least [`SpillPlan::len`] values; a task can zero its part and its own
    /// clusters with [`SpillWindow::fill`]); afterwards [`SpillPlan::runs`]
    /// says where each cluster's spilled values are, to add them in task
    /// order.
    pub fn windows<'a, 'b, T>(
        &self,
        data: &'a mut [T],
        spill: &'a mut [T],
        bump: &'b bumpalo::Bump,
    ) -> bumpalo::collections::Vec<'b, SpillWindow<'a, T>> {
        let nc = self.nc;
        let mut out = bumpalo::collections::Vec::with_capacity_in(SPILL_TASKS, bump);
        let (mut data, mut spill) = (&mut data[..nc], spill);
        for (a, b, len, _) in self.tasks {
            let (own, d) = std::mem::take(&mut data).split_at_mut(b - a);
            let (sp, r) = std::mem::take(&mut spill).split_at_mut(len);
            (data, spill) = (d, r);
            out.push(SpillWindow {
                clusters: a as u32..b as u32,
                base: a,
                nc,
                own,
                spill: sp,
            });
        }
        out
    }

    /// Where the spilled values of clusters `c0..c1` are, as runs
    /// `(cluster, at, len)`: clusters `cluster..cluster + len` have theirs
    /// at `at..at + len` of the spill buffer. The runs come in task order,
    /// so adding them in this order adds each cluster's spills in task
    /// order; a task's reach (clusters `b..b + len`, cyclic) gives at most
    /// two runs.
    pub fn runs(&self, c0: usize, c1: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let nc = self.nc;
        self.tasks.iter().flat_map(move |&(_, b, len, first)| {
            // The reach as two linear pieces: from b % nc up to the end of
            // the clusters, then from cluster 0 on.
            let start = b % nc.max(1);
            let head = len.min(nc - start);
            [(start, first, head), (0, first + head, len - head)]
                .into_iter()
                .filter_map(move |(c, at, n)| {
                    let (lo, hi) = (c.max(c0), (c + n).min(c1));
                    (lo < hi).then(|| (lo, at + lo - c, hi - lo))
                })
        })
    }
}

/// The test of [`PruneChunk::retain_first`] (a trait rather than a closure so
/// that kernels can force it inline, into code built for their CPU features).
pub trait Keep {
    /// Whether to keep `e`.
    fn keep(&mut self, e: Entry) -> bool;
}

/// The image shifts of a list split in two, in four lanes (the last 0) for
/// each of 32 shift indices (those past 26 all 0): `whole` a multiple of
/// [`ClusterPairList::origin_quantum`] (exact in f32), `rest` the shift
/// minus it (smaller than half the quantum). For cluster origins `oi`, `oj`
/// (f32), `(oj + (whole − oi)) + rest` is exact up to its last addition.
#[derive(Debug, Clone, Copy)]
pub struct ImageOffsets {
    /// The shift rounded to the origins' grid.
    pub whole: [[f32; 4]; 32],
    /// The shift minus `whole`.
    pub rest: [[f64; 4]; 32],
}

/// Cluster origins of a list, borrowed apart from its entries (image
/// shifts: [`ClusterPairList::image_offsets`], taken before borrowing).
#[derive(Debug, Clone, Copy)]
pub struct Geometry<'a> {
    bbox: &'a [[f32; 6]],
}

impl<'a> Geometry<'a> {
    /// As [`ClusterPairList::cluster_origin`].
    #[inline]
    pub fn cluster_origin(&self, c: usize) -> [f32; 3] {
        let b = &self.bbox[c];
        [b[0], b[1], b[2]]
    }

    /// As [`ClusterPairList::cluster_origin4`].
    #[inline]
    pub fn cluster_origin4(&self, c: usize) -> [f32; 4] {
        let b = &self.bbox[c];
        [b[0], b[1], b[2], b[3]]
    }
}

/// Some i-clusters of a list, with their entries to prune.
#[derive(Debug)]
pub struct PruneChunk<'a> {
    /// The chunk's i-clusters.
    pub clusters: std::ops::Range<u32>,
    /// Origins and shifts.
    pub geometry: Geometry<'a>,
    starts: &'a [u32],
    base: usize,
    entries: &'a mut [u32],
}

impl PruneChunk<'_> {
    /// Re-partitions i-cluster `ci`'s entries (all of them, pruned or not):
    /// those `keep` keeps first, the others after, flagged as pruned, each
    /// group in its current relative order. Deterministic: the result
    /// depends on the current order and `keep` only. Returns how many were
    /// kept.
    #[inline(always)]
    pub fn retain_first(&mut self, ci: usize, keep: &mut impl Keep) -> usize {
        partition(self.entries_of(ci), &mut ByEntry(keep))
    }

    /// I-cluster `ci`'s active entries, in order.
    #[inline]
    pub fn active(&self, ci: usize) -> impl Iterator<Item = Entry> + '_ {
        self.entries_ref(ci)
            .iter()
            .take_while(|&&e| e & PRUNED == 0)
            .map(|&e| decode(e))
    }

    /// How many entries i-cluster `ci` has.
    #[inline]
    pub fn count(&self, ci: usize) -> usize {
        self.range(ci).len()
    }

    /// All of i-cluster `ci`'s entries (the active ones first), in order.
    #[inline]
    pub fn all(&self, ci: usize) -> impl Iterator<Item = Entry> + '_ {
        self.entries_ref(ci).iter().map(|&e| decode(e))
    }

    /// Toggles the entries of i-cluster `ci` whose bit is set in `mask`
    /// (entry `k` in [`PruneChunk::all`]'s order: bit `k`), given that its
    /// first `active` entries are the active ones: an active one is pruned,
    /// a pruned one becomes active. Then the active entries come first,
    /// each group in its current relative order (those that were active
    /// before those that were not): the same as
    /// [`PruneChunk::retain_first`] keeping the entries that end up active.
    /// For i-clusters of at most 64 entries.
    #[inline]
    pub fn toggle(&mut self, ci: usize, active: usize, mask: u64) {
        let es = self.entries_of(ci);
        debug_assert!(es.len() <= 64 && active <= es.len());
        debug_assert!(es.get(active).is_none_or(|&e| e & PRUNED != 0));
        if mask == 0 {
            return;
        }
        // Entries before the first toggled one (or the first pruned one)
        // stay in place.
        let s = (mask.trailing_zeros() as usize).min(active);
        let (a, m) = (active - s, mask >> s);
        partition(&mut es[s..], &mut ByIndex(|i| (i < a) != (m >> i & 1 != 0)));
    }

    /// Where i-cluster `ci`'s entries are in the chunk's slice.
    #[inline(always)]
    fn range(&self, ci: usize) -> std::ops::Range<usize> {
        self.starts[ci] as usize - self.base..self.starts[ci + 1] as usize - self.base
    }

    /// Entries of i-cluster `ci`, by reference.
    #[inline(always)]
    fn entries_ref(&self, ci: usize) -> &[u32] {
        &self.entries[self.range(ci)]
    }

    /// I-cluster `ci`'s entries.
    #[inline(always)]
    fn entries_of(&mut self, ci: usize) -> &mut [u32] {
        let r = self.range(ci);
        &mut self.entries[r]
    }
}

/// Re-partitions `es`: the entries `keep(i, e)` keeps (`i`: the index in
/// `es`) first, unflagged, the others after, flagged as pruned. Returns how
/// many were kept. Deterministic: depends on the order and `keep` only;
/// each group keeps its relative order when `es` has at most 256 entries.
#[inline(always)]
fn partition(es: &mut [u32], keep: &mut impl KeepAt) -> usize {
    // The set-aside buffer is sized to the slice (lists have ~30-60
    // entries per i-cluster; zeroing 1 KiB each time would cost more).
    if es.len() <= 64 {
        partition_in::<64>(es, keep)
    } else {
        partition_in::<256>(es, keep)
    }
}

/// The test of [`partition`]: whether to keep the `i`-th entry, `e`. A
/// trait with always-inlined methods rather than a closure, so that a
/// kernel's [`Keep`] is inlined into code built for its CPU features.
trait KeepAt {
    fn keep_at(&mut self, i: usize, e: Entry) -> bool;
}

/// A [`Keep`] test, by entry.
struct ByEntry<'a, K>(&'a mut K);

impl<K: Keep> KeepAt for ByEntry<'_, K> {
    #[inline(always)]
    fn keep_at(&mut self, _: usize, e: Entry) -> bool {
        self.0.keep(e)
    }
}

/// A test by index in the slice.
struct ByIndex<F>(F);

impl<F: FnMut(usize) -> bool> KeepAt for ByIndex<F> {
    #[inline(always)]
    fn keep_at(&mut self, i: usize, _: Entry) -> bool {
        (self.0)(i)
    }
}

/// [`partition`] with a set-aside buffer of `N` entries.
#[inline(always)]
fn partition_in<const N: usize>(es: &mut [u32], keep: &mut impl KeepAt) -> usize {
    let mut rest = [0u32; N];
    if es.len() <= N {
        // Branch-free: kept entries are compacted in place (the write
        // index never passes the read index), the others set aside.
        let (mut w, mut r) = (0, 0);
        for i in 0..es.len() {
            let e = es[i] & !PRUNED;
            let k = keep.keep_at(i, decode(e));
            es[w] = e;
            rest[r] = e | PRUNED;
            w += k as usize;
            r += !k as usize;
        }
        es[w..].copy_from_slice(&rest[..r]);
        return w;
    }
    // Long lists: an in-place Lomuto partition (the flagged group's order
    // is then not kept, which is equally deterministic).
    let mut w = 0;
    for i in 0..es.len() {
        let e = es[i] & !PRUNED;
        let k = keep.keep_at(i, decode(e));
        // Branch-free Lomuto step: es[w..i] are flagged; a kept entry
        // swaps with the first of them (with itself when w == i).
        let t = if w == i { e | PRUNED } else { es[w] };
        es[i] = if k { t } else { e | PRUNED };
        es[w] = if k { e } else { t };
        w += k as usize;
    }
    w
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
            + self.near.heap_bytes()
            + self.side.capacity() * size_of::<Side>()
            + self
                .side
                .iter()
                .map(|sd| sd.entries.heap_bytes() + sd.starts.heap_bytes() + sd.near.heap_bytes())
                .sum::<usize>()
    }
}

/// Spare list capacity kept after a build, as a fraction 1/HEADROOM of its
/// entries (6.25%). In a liquid the entry count of successive builds varies
/// by well under 1% once the start-up transient (a lattice melting) is over;
/// 15% cost 7 B/atom at ρ* = 0.8442 for nothing.
const HEADROOM: usize = 16;

/// Makes `v` able to hold `total` elements, allocating exactly that (not a
/// doubled capacity) when it cannot already.
fn reserve_total<T>(v: &mut Vec<T>, total: usize) {
    if v.capacity() < total {
        v.reserve_exact(total.saturating_sub(v.len()));
    }
}

#[inline]
fn decode(e: u32) -> Entry {
    let e = e & !PRUNED;
    Entry {
        cj: e >> SHIFT_BITS,
        shift: (e & ((1 << SHIFT_BITS) - 1)) as u8,
    }
}

/// The order of the columns (and so of the clusters). Boxes narrower than
/// 3 strips ([`STRIP`] columns in x): y-major (rows in y, x inside a row).
/// Wider ones: strips of [`STRIP`] columns in x (the last one narrower),
/// one after the other, each y-major with its rows folded (0, n−1, 1, n−2,
/// …, so that rows next to each other across the periodic boundary are
/// close in the order too). Sweeping a strip, an i-cluster's j-clusters lie
/// in a few rows of the strip and the edge of the next, so they stay in L2
/// (256,000 LJ atoms: 40 columns a row, whose 3-row reach does not), while
/// the list's window stays about one strip.
#[derive(Debug, Clone, Copy)]
struct ColumnOrder {
    ncol: [usize; 2],
    strip: usize,
    fold: bool,
}

/// Columns per strip in x (see [`ColumnOrder`]).
const STRIP: usize = 8;

impl ColumnOrder {
    fn new(ncol: [usize; 2]) -> Self {
        let fold = ncol[0] >= 3 * STRIP;
        let strip = if fold { STRIP } else { ncol[0].max(1) };
        ColumnOrder { ncol, strip, fold }
    }

    /// The id of column (cx, cy).
    #[inline]
    fn id(&self, cx: usize, cy: usize) -> usize {
        let ny = self.ncol[1];
        let x0 = cx / self.strip * self.strip;
        let w = self.strip.min(self.ncol[0] - x0);
        let row = match self.fold {
            false => cy,
            true if cy < ny.div_ceil(2) => 2 * cy,
            true => 2 * (ny - 1 - cy) + 1,
        };
        x0 * ny + row * w + (cx - x0)
    }

    /// The column (cx, cy) of an id.
    #[inline]
    fn xy(&self, id: usize) -> (usize, usize) {
        let ny = self.ncol[1];
        let x0 = id / (self.strip * ny) * self.strip;
        let w = self.strip.min(self.ncol[0] - x0);
        let rem = id - x0 * ny;
        let row = rem / w;
        let cy = match self.fold {
            false => row,
            true if row.is_multiple_of(2) => row / 2,
            true => ny - 1 - row / 2,
        };
        (x0 + rem % w, cy)
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

/// The larger of two finite values (one `maxss`; `f32::max` also orders
/// NaNs, which costs a compare and a blend more).
#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// The clusters ahead of `ci` among `nc` in cyclic order, whose pairs with
/// `ci` its own entries hold, as two linear ranges `[ci, e1)` and `[0, e2)`
/// (`e2 == 0` when the range does not wrap). Ahead means a cyclic distance
/// d = (cj − ci) mod nc below nc − d; at d = nc − d (even `nc`), the one
/// with the larger index is ahead of the other.
#[inline(always)]
fn ahead_of(ci: u32, nc: u32) -> (u32, u32) {
    let len = (nc - 1) / 2 + 1 + u32::from(nc.is_multiple_of(2) && ci < nc / 2);
    let end = ci + len;
    (end.min(nc), end.saturating_sub(nc))
}

/// Entries an i-cluster's search buffers before appending them.
const BATCH: usize = 64;

/// No cluster.
const NONE: u32 = u32::MAX;

/// An i-cluster's accepted entries, flushed to the list in batches.
struct Batch {
    buf: [u32; BATCH],
    n: usize,
}

/// An i-cluster's bounding box in a j-column's image (the column's shift
/// subtracted), with what a sweep of that column needs.
struct Shifted {
    lo: [f32; 3],
    hi: [f32; 3],
    /// The highest z-minimum a j-box may have to come within reach.
    zmax: f32,
    r2: f32,
    /// The entry's shift index.
    image: u32,
}

impl Shifted {
    /// Tests the j-clusters `from..to` of a column (sorted by z) in order
    /// until one starts above [`Shifted::zmax`], appending those within
    /// reach to `out`. Returns the clusters tested and the last one taken
    /// ([`NONE`] if none).
    #[inline(always)]
    fn sweep(
        &self,
        bbox: &[[f32; 6]],
        from: u32,
        to: u32,
        entries: &mut Vec<u32>,
        out: &mut Batch,
    ) -> (u64, u32) {
        let (mut n, mut last, mut cj) = (out.n, NONE, from);
        while cj < to {
            let bj = &bbox[cj as usize];
            if bj[2] > self.zmax {
                break;
            }
            let mut d2 = 0.0;
            for k in 0..3 {
                let gap = fmax(fmax(bj[k] - self.hi[k], self.lo[k] - bj[k + 3]), 0.0);
                d2 += gap * gap;
            }
            let accept = d2 < self.r2;
            out.buf[n % BATCH] = (cj << SHIFT_BITS) | self.image; // n < BATCH
            n += usize::from(accept);
            last = if accept { cj } else { last };
            if n == BATCH {
                entries.extend_from_slice(&out.buf);
                n = 0;
            }
            cj += 1;
        }
        out.n = n;
        (u64::from(cj - from), last)
    }
}

/// Output of one search task that is appended after the wave's first.
#[derive(Debug, Default)]
struct Side {
    entries: Vec<u32>,
    starts: Vec<u32>,
    near: Vec<NearColumn>,
}

/// Points per task of the layout's parallel passes (column of each point,
/// bounding boxes).
const LAYOUT_CHUNK: usize = 4096;

/// Column ranges the z sorts of a layout are split into (fixed: the sorts
/// are per column, so the slots never depend on it).
const SORT_GROUPS: usize = 64;

/// Column ranges the list search is split into, at most (a number fixed by
/// the layout, so the work split never depends on the thread count).
const SEARCH_TASKS: usize = 64;

/// Fewest columns per search range. Each wave of ranges is a fork and join:
/// 4,000 LJ atoms have 100 columns, and 1-column ranges made their search
/// slower on 2 threads than on 1 (32 waves of ~10 µs of work each).
const SEARCH_COLUMNS: usize = 16;

/// A column near the i-column being searched.
#[derive(Debug, Clone, Copy)]
struct NearColumn {
    /// Its clusters.
    c0: u32,
    c1: u32,
    /// Its cell in x-y, in the i-column's image (rounded outwards): x0, x1, y0, y1.
    cell: [f32; 4],
    /// The image shift in x and y, and the shift index of its z image −1
    /// (z images 0, 1 and 2 add 0, 1 and 2).
    shift: [f32; 2],
    image: u32,
    /// Per z image (−1, 0, 1): the first cluster that may still reach the
    /// current i-cluster.
    cur: [u32; 3],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, StreamId};

    /// A cubic box of edge `len`, `n` random points in it and their list
    /// (r_list = 2.8).
    fn random_list(n: usize, len: f64, seed: u64) -> (PeriodicBox, Vec<[f64; 3]>, ClusterPairList) {
        let bx = PeriodicBox { len: [len; 3] };
        let pts = random_points(n, bx, seed);
        let mut list = ClusterPairList::default();
        list.build(bx, 2.8, n, |r| pts[r]);
        (bx, pts, list)
    }

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
        let mut folded = 0;
        for (n, len, rl) in [
            (500, [8.0, 9.0, 10.0], 2.8),
            (300, [5.6, 5.6, 5.6], 2.8),
            (2000, [13.0, 7.0, 11.5], 3.3),
            (64, [6.0, 6.0, 6.0], 3.0),
            // One column: its clusters ahead of ci wrap around the end.
            (40, [5.6, 5.6, 20.0], 2.8),
            // Wide boxes: strips of columns, rows folded (ColumnOrder).
            (3800, [45.0, 9.0, 10.0], 2.8),
            (2600, [42.0, 12.0, 6.0], 2.8),
        ] {
            let bx = PeriodicBox { len };
            let pts = random_points(n, bx, n as u64);
            let mut list = ClusterPairList::default();
            list.build(bx, rl, n, |r| pts[r]);
            folded += ColumnOrder::new(list.ncol).fold as usize;
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
            let mut window = 0;
            for ci in 0..list.clusters() {
                for e in list.entries(ci) {
                    let cj = e.cj as usize;
                    window = window.max((cj + list.clusters() - ci) % list.clusters());
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
            assert_eq!(list.window(), window, "the window is the farthest entry");
        }
        assert_eq!(folded, 2, "the wide boxes use strips");
    }

    /// `ahead_of` gives the clusters ahead of ci by the definition (cyclic
    /// distance d below nc − d, the larger index at d = nc − d).
    #[test]
    fn ahead_of_is_the_half_ahead() {
        for nc in 1..40u32 {
            for ci in 0..nc {
                let (e1, e2) = ahead_of(ci, nc);
                for cj in 0..nc {
                    let d = (cj + nc - ci) % nc;
                    let ahead = d == 0 || d < nc - d || (d == nc - d && ci < cj);
                    let got = (ci..e1).contains(&cj) || (0..e2).contains(&cj);
                    assert_eq!(got, ahead, "nc {nc} ci {ci} cj {cj}");
                }
            }
        }
    }

    /// Column ids and columns correspond one to one, with strips or without
    /// (widths not a multiple of the strip, odd and even rows, one row).
    #[test]
    fn column_order_is_a_bijection() {
        for ncol in [
            [5, 7],
            [24, 1],
            [24, 2],
            [27, 5],
            [40, 40],
            [43, 8],
            [30, 9],
        ] {
            let o = ColumnOrder::new(ncol);
            assert_eq!(o.fold, ncol[0] >= 3 * STRIP);
            let mut seen = vec![false; ncol[0] * ncol[1]];
            for cy in 0..ncol[1] {
                for cx in 0..ncol[0] {
                    let id = o.id(cx, cy);
                    assert!(!seen[id], "{ncol:?}: ({cx}, {cy}) -> {id} twice");
                    seen[id] = true;
                    assert_eq!(o.xy(id), (cx, cy));
                }
            }
        }
    }

    /// In a wide box (256,000 atoms on an fcc lattice at ρ = 0.8442) the
    /// strips keep the window to about one strip: the colour partition
    /// keeps 4 or more tasks per colour (no spill pass).
    #[test]
    fn strips_keep_the_window_short() {
        let (a, cells) = (1.6796, 40);
        let len = cells as f64 * a;
        let bx = PeriodicBox { len: [len; 3] };
        let basis = [
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0],
            [0.5, 0.0, 0.5],
            [0.0, 0.5, 0.5],
        ];
        let mut pts = Vec::new();
        for i in 0..cells {
            for j in 0..cells {
                for k in 0..cells {
                    for b in basis {
                        let c = [i as f64 + b[0], j as f64 + b[1], k as f64 + b[2]];
                        pts.push(c.map(|x| x * a));
                    }
                }
            }
        }
        let mut list = ClusterPairList::default();
        list.build(bx, 2.8, pts.len(), |r| pts[r]);
        assert!(ColumnOrder::new(list.ncol).fold);
        let strip = STRIP * list.ncol[1] * list.clusters() / (list.ncol[0] * list.ncol[1]);
        assert!(
            list.window() < strip * 3 / 2,
            "window {} > 1.5 strips ({strip} clusters)",
            list.window()
        );
        assert!(!list.spills(), "{} tasks", list.tasks());
    }

    #[test]
    fn color_windows_are_disjoint_and_cover_each_tasks_reach() {
        let (_, _, list) = random_list(6000, 20.0, 1);
        assert!(list.tasks() >= 2 * COLORS, "tasks {}", list.tasks());
        let bump = bumpalo::Bump::new();
        let mut covered = vec![0u8; list.clusters()];
        for c in 0..COLORS {
            let mut data = vec![0u32; list.slots()];
            let mut wins = list
                .task_partition()
                .color_windows(c, &mut data, CLUSTER, &bump);
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

    /// Every task's writes (to its own clusters and its entries'
    /// j-clusters), each folded into the value it lands on in an
    /// order-sensitive way.
    fn task_writes(list: &ClusterPairList, w: &mut TaskWindow<'_, u64>, t: usize) {
        let fold = |v: &mut u64, x: u64| *v = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ x;
        for ci in w.clusters.clone() {
            fold(w.one(ci as usize), t as u64 + 1);
            for e in list.entries(ci as usize) {
                fold(w.one(e.cj as usize), ((t as u64) << 32) | ci as u64);
            }
        }
    }

    /// `run_tasks` on 1 to 4 threads, 20 times each, for a list of one task
    /// and lists of several per colour: no two tasks that
    /// write the same cluster run at once (checked with a busy flag per
    /// cluster, held for the whole task), and every cluster gets the same
    /// writes in the same order as colour by colour through the safe
    /// `color_windows` (an order-sensitive fold of every write).
    #[test]
    fn run_tasks_never_overlaps_windows_and_keeps_the_colour_order() {
        use std::sync::atomic::AtomicBool;
        // One task, one per colour, 3 per colour, more.
        for (n, len, tasks) in [
            (40, 5.7, 1..2),
            (400, 9.0, 16..17),
            (6000, 20.0, 48..49),
            (24000, 31.0, 49..999),
        ] {
            let (_, _, list) = random_list(n, len, 3);
            let nt = list.tasks();
            assert!(tasks.contains(&nt), "tasks {nt}");
            let part = list.task_partition();
            let bump = bumpalo::Bump::new();
            let mut serial = vec![0u64; list.clusters()];
            for c in 0..COLORS {
                let mut wins = part.color_windows(c, &mut serial, 1, &bump);
                for (k, w) in wins.iter_mut().enumerate() {
                    task_writes(&list, w, c + k * COLORS);
                }
            }
            // Every cluster a task writes.
            let reach: Vec<Vec<usize>> = (0..nt)
                .map(|t| {
                    let (a, b) = (list.task_start[t], list.task_start[t + 1]);
                    let mut r: Vec<usize> = (a..b)
                        .flat_map(|ci| {
                            std::iter::once(ci as usize)
                                .chain(list.entries(ci as usize).map(|e| e.cj as usize))
                        })
                        .collect();
                    r.sort_unstable();
                    r.dedup();
                    r
                })
                .collect();
            let busy: Vec<AtomicBool> = (0..list.clusters())
                .map(|_| AtomicBool::new(false))
                .collect();
            for threads in 1..=4 {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                for rep in 0..20u64 {
                    let mut data = vec![0u64; list.clusters()];
                    let mut items: Vec<usize> = (0..nt).collect();
                    pool.install(|| {
                        let bump = bumpalo::Bump::new();
                        part.run_tasks(&mut data, 1, &mut items, &bump, |w, &mut t| {
                            for &c in &reach[t] {
                                assert!(
                                    !busy[c].swap(true, Ordering::AcqRel),
                                    "cluster {c} in two running tasks"
                                );
                            }
                            // Tasks of uneven lengths (0–150 µs, varying
                            // with the round), so that the order in which
                            // they become ready varies too.
                            let mut r = Rng::new(rep, StreamId::named("delay"), 0, t as u64);
                            let wait = std::time::Duration::from_micros(50 * (r.next_u64() % 4));
                            let t0 = std::time::Instant::now();
                            while t0.elapsed() < wait {
                                std::hint::spin_loop();
                            }
                            task_writes(&list, w, t);
                            for &c in &reach[t] {
                                busy[c].store(false, Ordering::Release);
                            }
                        });
                    });
                    assert!(data == serial, "{threads} threads: not the colour order");
                }
            }
        }
    }

    /// A task that panics stops the others and the panic reaches the caller
    /// (no worker is left waiting for a task that will not finish).
    #[test]
    fn a_panicking_task_stops_run_tasks() {
        let (_, _, list) = random_list(6000, 20.0, 3);
        let nt = list.tasks();
        let part = list.task_partition();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut data = vec![0u64; list.clusters()];
        let mut items: Vec<usize> = (0..nt).collect();
        let ran = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                let bump = bumpalo::Bump::new();
                part.run_tasks(&mut data, 1, &mut items, &bump, |_, &mut t| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    assert_ne!(t, COLORS + 1, "task {t} fails");
                });
            })
        }));
        assert!(r.is_err(), "the panic reaches the caller");
        assert!(ran.load(Ordering::Relaxed) < nt, "the others stopped");
    }

    /// Spill tasks: every write within a task's reach lands in its own
    /// clusters or in its spill buffer, and the plan finds every spilled
    /// value exactly once, in task order; summed, each cluster gets every
    /// write the list implies.
    #[test]
    fn spill_windows_cover_each_tasks_reach_and_the_plan_finds_every_spill() {
        let (_, _, list) = random_list(1500, 12.0, 5);
        assert!(list.spills());
        let nc = list.clusters();
        let mut expect = vec![0u32; nc];
        for ci in 0..nc {
            expect[ci] += 1;
            for e in list.entries(ci) {
                expect[e.cj as usize] += 1;
            }
        }
        let mut data = vec![0u32; nc];
        let plan = list.spill_plan();
        let mut spill = vec![0u32; plan.len()];
        let bump = bumpalo::Bump::new();
        let mut wins = plan.windows(&mut data, &mut spill, &bump);
        assert_eq!(wins.len(), SPILL_TASKS);
        for w in wins.iter_mut() {
            for ci in w.clusters.clone() {
                *Writes::one(w, ci as usize) += 1;
                for e in list.entries(ci as usize) {
                    *Writes::one(w, e.cj as usize) += 1;
                }
            }
        }
        drop(wins);
        // Any cut of the clusters into chunks finds the same spills.
        for chunk in [1, 7, 256, nc] {
            let mut sum = data.clone();
            let mut seen = vec![0u32; spill.len()];
            let mut last = vec![None; nc];
            for c0 in (0..nc).step_by(chunk) {
                for (c, at, len) in plan.runs(c0, (c0 + chunk).min(nc)) {
                    for i in 0..len {
                        assert!((c0..c0 + chunk).contains(&(c + i)), "inside the chunk");
                        assert!(last[c + i] < Some(at + i), "task order");
                        last[c + i] = Some(at + i);
                        sum[c + i] += spill[at + i];
                        seen[at + i] += 1;
                    }
                }
            }
            assert_eq!(sum, expect, "chunk {chunk}");
            assert!(
                seen.iter().all(|&k| k == 1),
                "each spill slot is one cluster's"
            );
        }
    }

    /// Pruning partitions each cluster's entries: kept first, flagged after,
    /// both in their previous relative order; a build clears the flags.
    #[test]
    fn prune_keeps_order_and_entries() {
        let n = 1500;
        let (bx, pts, mut list) = random_list(n, 12.0, 3);
        let before: Vec<Vec<Entry>> = (0..list.clusters())
            .map(|c| list.entries(c).collect())
            .collect();
        struct Odd;
        impl Keep for Odd {
            fn keep(&mut self, e: Entry) -> bool {
                (e.cj + e.shift as u32) % 2 == 1
            }
        }
        let bump = bumpalo::Bump::new();
        for _ in 0..2 {
            for mut chunk in list.prune_chunks(7, &bump) {
                for ci in chunk.clusters.clone() {
                    chunk.retain_first(ci as usize, &mut Odd);
                }
            }
        }
        for (c, old) in before.iter().enumerate() {
            let (kept, dropped): (Vec<Entry>, Vec<Entry>) =
                old.iter().partition(|e| (e.cj + e.shift as u32) % 2 == 1);
            let active: Vec<Entry> = list.active_entries(c).collect();
            assert_eq!(active, kept);
            let all: Vec<Entry> = list.entries(c).collect();
            assert_eq!(all[..kept.len()], kept[..]);
            assert_eq!(all[kept.len()..], dropped[..]);
        }
        list.build(bx, 2.8, n, |r| pts[r]);
        assert_eq!(list.active_len(), list.len());
    }

    /// Toggling entries by mask leaves each i-cluster's entries as a whole
    /// prune keeping the entries that end up active does (the same order,
    /// the same flags), for random masks over lists pruned before.
    #[test]
    fn toggle_equals_retain_first() {
        let n = 1500;
        let (_, _, mut list) = random_list(n, 12.0, 5);
        // A first prune, keeping entries by a hash.
        struct Hash(u32);
        impl Keep for Hash {
            fn keep(&mut self, e: Entry) -> bool {
                !(e.cj.wrapping_mul(2654435761) ^ e.shift as u32 ^ self.0).is_multiple_of(3)
            }
        }
        let bump = bumpalo::Bump::new();
        for mut chunk in list.prune_chunks(64, &bump) {
            for ci in chunk.clusters.clone() {
                chunk.retain_first(ci as usize, &mut Hash(0));
            }
        }
        let mut other = ClusterPairList {
            entries: list.entries.clone(),
            starts: list.starts.clone(),
            bbox: list.bbox.clone(),
            col_start: list.col_start.clone(),
            ..Default::default()
        };
        let (mut toggled, mut kept_same) = (0, 0);
        for round in 1..4u32 {
            // `list`: toggle a random mask; `other`: retain what ends up active.
            let mut want = Vec::new();
            for mut chunk in list.prune_chunks(64, &bump) {
                for ci in chunk.clusters.clone() {
                    let ci = ci as usize;
                    let all: Vec<Entry> = chunk.all(ci).collect();
                    let active = chunk.active(ci).count();
                    let mut mask = 0u64;
                    // (`toggle` takes lists of at most 64 entries.)
                    for (k, e) in all.iter().enumerate().take_while(|_| all.len() <= 64) {
                        let h = (e.cj ^ round.wrapping_mul(40503) ^ k as u32) % 7;
                        let flip = h == 0 && !ci.is_multiple_of(4);
                        mask |= (flip as u64) << k;
                    }
                    toggled += mask.count_ones();
                    kept_same += (mask == 0) as u32;
                    let ends_active: Vec<bool> = (0..all.len())
                        .map(|k| (k < active) != (mask.checked_shr(k as u32).unwrap_or(0) & 1 != 0))
                        .collect();
                    if all.len() <= 64 {
                        chunk.toggle(ci, active, mask);
                    }
                    want.push((ci, all, ends_active));
                }
            }
            for mut chunk in other.prune_chunks(64, &bump) {
                for ci in chunk.clusters.clone() {
                    let (c, all, ends_active) = &want[ci as usize];
                    assert_eq!(*c, ci as usize);
                    struct By<'a>(&'a [Entry], &'a [bool]);
                    impl Keep for By<'_> {
                        fn keep(&mut self, e: Entry) -> bool {
                            self.1[self.0.iter().position(|&x| x == e).unwrap()]
                        }
                    }
                    chunk.retain_first(ci as usize, &mut By(all, ends_active));
                }
            }
            assert_eq!(list.entries, other.entries, "round {round}");
        }
        assert!(toggled > 1000 && kept_same > 300, "{toggled} {kept_same}");
    }

    /// The task chunks hold each task's i-clusters and their entries, in
    /// task order (one chunk for a single task), for the colour and the
    /// spill partitions.
    #[test]
    fn task_chunks_follow_the_tasks() {
        for (n, len) in [(6000, 20.0), (400, 9.0)] {
            let (_, _, mut list) = random_list(n, len, 2);
            let want: Vec<Vec<Entry>> = (0..list.clusters())
                .map(|c| list.entries(c).collect())
                .collect();
            let tasks: Vec<(u32, u32)> = if list.tasks() > 1 {
                list.task_start.windows(2).map(|w| (w[0], w[1])).collect()
            } else {
                vec![(0, list.clusters() as u32)]
            };
            let plan = list.spill_plan();
            let bump = bumpalo::Bump::new();
            {
                let (_, chunks) = list.task_chunks(&bump);
                assert_eq!(chunks.len(), tasks.len());
                for (chunk, &(a, b)) in chunks.iter().zip(&tasks) {
                    assert_eq!(chunk.clusters, a..b);
                    for ci in a..b {
                        let got: Vec<Entry> = chunk.all(ci as usize).collect();
                        assert_eq!(got, want[ci as usize]);
                    }
                }
            }
            let b = plan.bounds();
            let chunks = list.entry_chunks(b, &bump);
            assert_eq!(chunks.len(), SPILL_TASKS);
            for (t, chunk) in chunks.iter().enumerate() {
                assert_eq!(chunk.clusters, b[t] as u32..b[t + 1] as u32);
                for ci in chunk.clusters.clone() {
                    assert_eq!(chunk.count(ci as usize), want[ci as usize].len());
                }
            }
        }
    }

    /// The layout's passes run on the pool and the search in waves of as
    /// many column ranges as the pool has threads: the slots, the boxes and
    /// the list are the same, entry for entry, on 1, 2 or 3 threads, and
    /// rebuilding in place (buffers reused) gives them again.
    #[test]
    fn the_list_does_not_depend_on_the_thread_count() {
        let bx = PeriodicBox {
            len: [14.0, 11.0, 12.5],
        };
        let pts = random_points(3000, bx, 9);
        let build = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                // The layout (slots, boxes) and the entries.
                let state = |l: &ClusterPairList| {
                    (
                        (l.row_of.clone(), l.slot_of.clone(), l.bbox.clone()),
                        (l.entries.clone(), l.starts.clone(), l.window),
                    )
                };
                let mut list = ClusterPairList::default();
                list.build(bx, 2.8, pts.len(), |r| pts[r]);
                let first = state(&list);
                list.build(bx, 2.8, pts.len(), |r| pts[r]);
                assert_eq!(first, state(&list));
                (first, list.bbox_checks)
            })
        };
        let one = build(1);
        assert!(one.0.1.0.len() > 10_000);
        assert_eq!(build(2), one);
        assert_eq!(build(3), one);
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
