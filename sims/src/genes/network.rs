//! Sparse G×G matrices: the regulatory network (A[target, source] = w) and
//! epistatic interaction matrices. Read from CSV (`source,target,weight`) or
//! generated from a density and a weight range with the run's seed.

use microcosm_engine::Footprint;
use microcosm_engine::prelude::*;
use serde::Deserialize;

/// Where a matrix comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// A CSV file `source,target,weight` (path relative to the scenario).
    pub file: Option<String>,
    /// Or: each off-diagonal entry present with this probability...
    pub density: Option<f64>,
    /// ... with a weight uniform in [low, high).
    #[serde(default)]
    pub low: f64,
    /// Upper weight bound.
    #[serde(default)]
    pub high: f64,
}

impl MatrixSpec {
    /// Checks the spec (keys relative to `prefix`).
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        match (&self.file, self.density) {
            (Some(_), Some(_)) => Err(Invalid::new(
                format!("{prefix}.density"),
                "give `file` or `density`, not both",
            )),
            (None, None) => Err(Invalid::new(prefix, "give `file` or `density`")),
            (None, Some(d)) if !(0.0..=1.0).contains(&d) => Err(Invalid::new(
                format!("{prefix}.density"),
                "must be in [0, 1]",
            )),
            (None, Some(_))
                if !(self.low.is_finite() && self.high.is_finite() && self.low <= self.high) =>
            {
                Err(Invalid::new(
                    format!("{prefix}.low"),
                    "needs finite low ≤ high",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Loads or generates the matrix for `g` genes.
    pub fn load(
        &self,
        g: usize,
        b: &Builder,
        key: &str,
        stream: StreamId,
    ) -> Result<Sparse, BuildError> {
        if let Some(f) = &self.file {
            let path = b.resolve(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| b.key_error(key, format!("cannot read {}: {e}", path.display())))?;
            Sparse::from_csv(&text, g)
                .map_err(|e| b.key_error(key, format!("{}: {e}", path.display())))
        } else {
            Ok(Sparse::random(
                g,
                self.density.unwrap_or(0.0),
                self.low,
                self.high,
                b.seed(),
                stream,
            ))
        }
    }
}

/// A sparse square matrix in compressed rows: row `i` holds
/// `(cols[k], vals[k])` for `k` in `starts[i]..starts[i + 1]`, columns ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    /// Rows (= columns).
    pub n: usize,
    /// Row starts (n + 1).
    pub starts: Vec<u32>,
    /// Column of each entry.
    pub cols: Vec<u32>,
    /// Value of each entry.
    pub vals: Vec<f32>,
}

impl Footprint for Sparse {
    fn heap_bytes(&self) -> usize {
        self.starts.heap_bytes() + self.cols.heap_bytes() + self.vals.heap_bytes()
    }
}

impl Sparse {
    /// From triplets (row, col, value); duplicates are an error.
    pub fn from_triplets(n: usize, mut t: Vec<(u32, u32, f32)>) -> Result<Sparse, String> {
        t.sort_by_key(|&(r, c, _)| (r, c));
        if let Some(w) = t.windows(2).find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1)) {
            return Err(format!(
                "entry (target {}, source {}) given twice",
                w[0].0, w[0].1
            ));
        }
        let mut starts = vec![0u32; n + 1];
        for &(r, _, _) in &t {
            starts[r as usize + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        Ok(Sparse {
            n,
            starts,
            cols: t.iter().map(|x| x.1).collect(),
            vals: t.iter().map(|x| x.2).collect(),
        })
    }

    /// Parses `source,target,weight` lines (a header line is allowed; `#`
    /// comments and blank lines are skipped). No self-loops, finite weights,
    /// indices below `n`. Errors name the line.
    pub fn from_csv(text: &str, n: usize) -> Result<Sparse, String> {
        let mut t = Vec::new();
        for r in crate::csv::records(text, &["source", "target", "weight"], false) {
            let (lineno, f) = r?;
            let idx = |s: &str, what: &str| {
                s.parse::<u32>()
                    .ok()
                    .filter(|&v| (v as usize) < n)
                    .ok_or_else(|| {
                        format!("line {lineno}: {what} `{s}` is not a gene index below {n}")
                    })
            };
            let (src, tgt) = (idx(f[0], "source")?, idx(f[1], "target")?);
            let w: f64 = f[2]
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite())
                .ok_or_else(|| {
                    format!("line {lineno}: weight `{}` is not a finite number", f[2])
                })?;
            if src == tgt {
                return Err(format!("line {lineno}: self-loop on gene {src}"));
            }
            t.push((tgt, src, w as f32));
        }
        Sparse::from_triplets(n, t)
    }

    /// Each off-diagonal entry present with probability `density`, weight
    /// uniform in [low, high); positions by geometric gaps over the n×n
    /// row-major index (one stream per row).
    pub fn random(
        n: usize,
        density: f64,
        low: f64,
        high: f64,
        seed: u64,
        stream: StreamId,
    ) -> Sparse {
        let mut t = Vec::new();
        if density > 0.0 {
            for r in 0..n {
                let mut g = Rng::new(seed, stream, 0, r as u64);
                let mut c = g.geometric(density) as usize;
                while c < n {
                    if c != r {
                        t.push((r as u32, c as u32, g.range(low, high) as f32));
                    }
                    c += 1 + g.geometric(density) as usize;
                }
            }
        }
        Sparse::from_triplets(n, t).unwrap_or_default()
    }

    /// Nonzeros.
    pub fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// `out = A·x`.
    #[inline]
    pub fn mul(&self, x: &[f32], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
            let mut s = 0.0f32;
            for k in a..b {
                s += self.vals[k] * x[self.cols[k] as usize];
            }
            *o = s;
        }
    }

    /// `out = A·x` for `L` vectors at once, stored gene-major
    /// (`x[j·L + l]` is gene `j` of vector `l`). Each lane does exactly the
    /// operations of [`Sparse::mul`], in the same order.
    #[inline]
    pub fn mul_lanes<const L: usize>(&self, x: &[f32], out: &mut [f32]) {
        for (i, o) in out.chunks_exact_mut(L).enumerate() {
            let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
            let mut acc = [0.0f32; L];
            for k in a..b {
                let w = self.vals[k];
                let c = self.cols[k] as usize * L;
                let xs = &x[c..c + L];
                for l in 0..L {
                    acc[l] += w * xs[l];
                }
            }
            o.copy_from_slice(&acc);
        }
    }

    /// `xᵀ·A·x`.
    pub fn quad(&self, x: &[f32]) -> f64 {
        let mut s = 0.0f64;
        for i in 0..self.n {
            let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
            let mut r = 0.0f64;
            for k in a..b {
                r += self.vals[k] as f64 * x[self.cols[k] as usize] as f64;
            }
            s += x[i] as f64 * r;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parses_multiplies_and_reports_bad_lines() {
        let a = Sparse::from_csv("source,target,weight\n0,1,0.5\n2,1,-1\n1,0,2\n", 3).unwrap();
        let mut out = [0.0; 3];
        a.mul(&[1.0, 2.0, 3.0], &mut out);
        // row 0: 2·x1 = 4; row 1: 0.5·x0 − 1·x2 = −2.5; row 2: 0.
        assert_eq!(out, [4.0, -2.5, 0.0]);
        assert_eq!(a.quad(&[1.0, 2.0, 3.0]), 1.0 * 4.0 + 2.0 * -2.5);
        for (bad, msg) in [
            ("0,0,1\n", "line 1: self-loop"),
            ("0,5,1\n", "target `5`"),
            ("0,1,x\n", "weight `x`"),
            ("0,1\n", "line 1: expected"),
            ("0,1,1\n0,1,2\n", "given twice"),
            ("h\n0,1,inf\n", "line 2: weight"),
        ] {
            let e = Sparse::from_csv(bad, 3).unwrap_err();
            assert!(e.contains(msg), "{bad:?}: {e}");
        }
    }

    #[test]
    fn lane_product_equals_scalar_product_bitwise() {
        let a = Sparse::random(37, 0.2, -0.5, 0.5, 3, StreamId::named("t"));
        let xs: Vec<Vec<f32>> = (0..8)
            .map(|l| {
                (0..37)
                    .map(|j| ((j * 7 + l * 3) % 11) as f32 * 0.173)
                    .collect()
            })
            .collect();
        let mut tile = vec![0.0; 37 * 8];
        for (l, x) in xs.iter().enumerate() {
            for (j, &v) in x.iter().enumerate() {
                tile[j * 8 + l] = v;
            }
        }
        let mut out = vec![0.0; 37 * 8];
        a.mul_lanes::<8>(&tile, &mut out);
        for (l, x) in xs.iter().enumerate() {
            let mut s = vec![0.0; 37];
            a.mul(x, &mut s);
            for i in 0..37 {
                assert_eq!(s[i].to_bits(), out[i * 8 + l].to_bits());
            }
        }
    }

    #[test]
    fn random_matrix_has_the_density_and_no_self_loops() {
        let a = Sparse::random(200, 0.05, -0.5, 0.5, 1, StreamId::named("t"));
        let expect = 0.05 * 200.0 * 199.0;
        let sd = (200.0 * 199.0 * 0.05 * 0.95f64).sqrt();
        assert!(
            (a.nnz() as f64 - expect).abs() < 5.0 * sd,
            "nnz {}",
            a.nnz()
        );
        for i in 0..200 {
            for k in a.starts[i]..a.starts[i + 1] {
                assert_ne!(a.cols[k as usize] as usize, i);
                assert!((-0.5..0.5).contains(&a.vals[k as usize]));
            }
        }
    }
}
