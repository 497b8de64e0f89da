//! The `gridworld` plugin: the map and the shared generative model
//! (A, B, C, D and the per-state entropies), one resource for all agents.
//!
//! Hidden states are the free cells in row-major order (for an open W×H grid
//! s = row·W + col, row 0 at the top). Observations are cells too (O = S):
//! `A[:, s]` puts `p_true` on s and spreads the rest evenly over the free
//! 4-neighbours of s (all of it on s when s has none). `B` is deterministic:
//! actions 0 stay, 1 up (row − 1), 2 down, 3 left (col − 1), 4 right; a move
//! into a wall or off the edge stays put. It is stored as a successor table
//! (S × 5), never as S×S×5. `C[o]` = `c_goal` on goal cells, 0 elsewhere;
//! `D` is uniform over the free cells.

use microcosm_engine::prelude::*;
use serde::Deserialize;

/// Actions: stay, up, down, left, right.
pub const ACTIONS: usize = 5;

/// The floor of every logarithm, as pymdp: log(x) is log(max(x, EPS)).
pub const EPS: f64 = 2.220446049250313e-16;

/// Not a state (a wall cell in `Model::state_of`).
pub const WALL: u32 = u32::MAX;

/// The `gridworld` plugin: an ASCII map or an open W×H grid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gridworld {
    /// Open grid `[W, H]`...
    pub size: Option<[u32; 2]>,
    /// ... or an ASCII map file (`#` wall, `.` free, `G` goal), relative to
    /// the scenario file.
    pub map: Option<String>,
    /// Goal states (indices of free cells), besides the map's `G` cells.
    #[serde(default)]
    pub goals: Vec<u32>,
    /// Probability of observing the true cell.
    #[serde(default = "default_p_true")]
    pub p_true: f64,
    /// Log-preference for observing a goal cell (C, used as-is).
    #[serde(default = "default_c_goal")]
    pub c_goal: f64,
    /// Agents a cell holds at most (0: unlimited).
    #[serde(default)]
    pub capacity: u32,
    /// Resources on goal cells: an agent there consumes one (energy + 1) and
    /// it regrows after this many steps. Absent: no resources.
    pub regrow: Option<u64>,
}

fn default_p_true() -> f64 {
    0.9
}

fn default_c_goal() -> f64 {
    4.0
}

/// Cells of a map: `true` = free.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Row-major, `true` for a free cell.
    pub free: Vec<bool>,
    /// Cells marked `G` (row-major cell indices).
    pub goal_cells: Vec<u32>,
}

impl Map {
    /// An open grid.
    pub fn open(width: u32, height: u32) -> Map {
        Map {
            width,
            height,
            free: vec![true; width as usize * height as usize],
            goal_cells: Vec::new(),
        }
    }

    /// Parses an ASCII map. Errors say `line L, column C: reason`.
    pub fn parse(text: &str) -> Result<Map, String> {
        let mut free = Vec::new();
        let mut goal_cells = Vec::new();
        let mut width: Option<usize> = None;
        let mut height = 0usize;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let n = line.chars().count();
            match width {
                None => width = Some(n),
                Some(w) if w != n => {
                    return Err(format!(
                        "line {}: {n} columns, but the first row has {w}",
                        i + 1
                    ));
                }
                _ => {}
            }
            for (j, c) in line.chars().enumerate() {
                match c {
                    '#' => free.push(false),
                    '.' => free.push(true),
                    'G' => {
                        goal_cells.push(free.len() as u32);
                        free.push(true);
                    }
                    _ => {
                        return Err(format!(
                            "line {}, column {}: `{c}` is not `#`, `.` or `G`",
                            i + 1,
                            j + 1
                        ));
                    }
                }
            }
            height += 1;
            if free.len() > u32::MAX as usize / 2 {
                return Err(format!("line {}: map too large", i + 1));
            }
        }
        let width = width.ok_or("the map has no rows")?;
        if !free.iter().any(|&f| f) {
            return Err("the map has no free cell".into());
        }
        Ok(Map {
            width: width as u32,
            height: height as u32,
            free,
            goal_cells,
        })
    }
}

/// The shared generative model (a resource; never copied per agent).
#[derive(Resource, Debug, Clone)]
pub struct Model {
    /// Map columns.
    pub width: u32,
    /// Map rows.
    pub height: u32,
    /// Hidden states (free cells).
    pub states: usize,
    /// Cell → state, or [`WALL`].
    pub state_of: Vec<u32>,
    /// State → row-major cell index.
    pub cell_of: Vec<u32>,
    /// B as a successor table: `succ[s][u]`.
    pub succ: Vec<[u32; ACTIONS]>,
    /// Free 4-neighbours of each state (first `deg[s]` valid).
    pub nbrs: Vec<[u32; 4]>,
    /// Number of free 4-neighbours.
    pub deg: Vec<u8>,
    /// `p_true` of the scenario.
    pub p_true: f64,
    /// C: log-preference of each observation.
    pub c: Vec<f64>,
    /// Goal states, ascending.
    pub goals: Vec<u32>,
    /// Whether each state is a goal.
    pub is_goal: Vec<bool>,
    /// `H[A[:, s]] = −Σ_o A[o,s] log max(A[o,s], EPS)`.
    pub h_a: Vec<f64>,
    /// `Σ_o A[o,s] C[o]`: the utility of being in s.
    pub ac: Vec<f64>,
}

impl Model {
    /// Builds the model of `map` with extra goal states.
    pub fn new(map: &Map, goals: &[u32], p_true: f64, c_goal: f64) -> Result<Model, String> {
        let (w, h) = (map.width as usize, map.height as usize);
        let mut state_of = vec![WALL; w * h];
        let mut cell_of = Vec::new();
        for (cell, &f) in map.free.iter().enumerate() {
            if f {
                state_of[cell] = cell_of.len() as u32;
                cell_of.push(cell as u32);
            }
        }
        let states = cell_of.len();
        let at = |row: isize, col: isize| -> Option<u32> {
            if row < 0 || col < 0 || row >= h as isize || col >= w as isize {
                return None;
            }
            let s = state_of[row as usize * w + col as usize];
            (s != WALL).then_some(s)
        };
        let mut succ = Vec::with_capacity(states);
        let mut nbrs = Vec::with_capacity(states);
        let mut deg = Vec::with_capacity(states);
        for (s, &cell) in cell_of.iter().enumerate() {
            let (row, col) = ((cell as usize / w) as isize, (cell as usize % w) as isize);
            let moves = [
                (row, col),
                (row - 1, col),
                (row + 1, col),
                (row, col - 1),
                (row, col + 1),
            ];
            let mut t = [s as u32; ACTIONS];
            let mut nb = [s as u32; 4];
            let mut d = 0;
            for (u, &(r, c)) in moves.iter().enumerate().skip(1) {
                if let Some(x) = at(r, c) {
                    t[u] = x;
                    nb[d] = x;
                    d += 1;
                }
            }
            succ.push(t);
            nbrs.push(nb);
            deg.push(d as u8);
        }
        let mut is_goal = vec![false; states];
        for &cell in &map.goal_cells {
            is_goal[state_of[cell as usize] as usize] = true;
        }
        for &g in goals {
            if g as usize >= states {
                return Err(format!(
                    "goal state {g} is not a free cell (there are {states})"
                ));
            }
            is_goal[g as usize] = true;
        }
        let goals: Vec<u32> = (0..states as u32)
            .filter(|&s| is_goal[s as usize])
            .collect();
        let c: Vec<f64> = is_goal
            .iter()
            .map(|&g| if g { c_goal } else { 0.0 })
            .collect();
        let mut m = Model {
            width: map.width,
            height: map.height,
            states,
            state_of,
            cell_of,
            succ,
            nbrs,
            deg,
            p_true,
            c,
            goals,
            is_goal,
            h_a: Vec::new(),
            ac: Vec::new(),
        };
        let (mut h_a, mut ac) = (Vec::with_capacity(states), Vec::with_capacity(states));
        for s in 0..states {
            let (mut hs, mut us) = (0.0, 0.0);
            m.for_column(s, |o, p| {
                hs -= p * p.max(EPS).ln();
                us += p * m.c[o];
            });
            h_a.push(hs);
            ac.push(us);
        }
        m.h_a = h_a;
        m.ac = ac;
        Ok(m)
    }

    /// A[s, s]: the probability of observing the true cell.
    pub fn p_self(&self, s: usize) -> f64 {
        if self.deg[s] == 0 { 1.0 } else { self.p_true }
    }

    /// A[o, s] for a neighbour o of s.
    pub fn p_nbr(&self, s: usize) -> f64 {
        if self.deg[s] == 0 {
            0.0
        } else {
            (1.0 - self.p_true) / self.deg[s] as f64
        }
    }

    /// Calls `f(o, A[o, s])` for the nonzero entries of column s.
    pub fn for_column(&self, s: usize, mut f: impl FnMut(usize, f64)) {
        f(s, self.p_self(s));
        let p = self.p_nbr(s);
        for &o in &self.nbrs[s][..self.deg[s] as usize] {
            f(o as usize, p);
        }
    }

    /// Calls `f(s, A[o, s])` for the entries of row o that can be nonzero
    /// (o itself and its neighbours: the 4-neighbourhood is symmetric).
    pub fn for_row(&self, o: usize, mut f: impl FnMut(usize, f64)) {
        f(o, self.p_self(o));
        for &s in &self.nbrs[o][..self.deg[o] as usize] {
            f(s as usize, self.p_nbr(s as usize));
        }
    }

    /// A[o, s] (dense lookup, for tests and references).
    pub fn a(&self, o: usize, s: usize) -> f64 {
        let mut v = 0.0;
        self.for_column(s, |oo, p| {
            if oo == o {
                v = p;
            }
        });
        v
    }

    /// Samples o ~ A[:, s] from a uniform `u` in [0, 1).
    #[inline]
    pub fn sample_obs(&self, s: usize, u: f64) -> u32 {
        let p = self.p_self(s);
        if u < p {
            return s as u32;
        }
        let d = self.deg[s] as usize;
        let k = (((u - p) / self.p_nbr(s)) as usize).min(d - 1);
        self.nbrs[s][k]
    }

    /// Row-major cell (row, col) of state s.
    pub fn row_col(&self, s: usize) -> (u32, u32) {
        let c = self.cell_of[s];
        (c / self.width, c % self.width)
    }

    /// Heap bytes of the tables.
    fn bytes(&self) -> usize {
        self.state_of.heap_bytes()
            + self.cell_of.heap_bytes()
            + self.succ.heap_bytes()
            + self.nbrs.heap_bytes()
            + self.deg.heap_bytes()
            + self.c.heap_bytes()
            + self.goals.heap_bytes()
            + self.is_goal.heap_bytes()
            + self.h_a.heap_bytes()
            + self.ac.heap_bytes()
    }
}

impl Footprint for Model {
    fn heap_bytes(&self) -> usize {
        self.bytes()
    }
}

/// The world's environment rules (a resource).
#[derive(Resource, Debug, Clone, Copy)]
pub struct Rules {
    /// Agents per cell at most (0: unlimited).
    pub capacity: u32,
    /// Resource regrowth delay (None: no resources).
    pub regrow: Option<u64>,
}

impl Gridworld {
    fn load_map(&self, dir: impl Fn(&str) -> std::path::PathBuf) -> Result<Map, (String, String)> {
        match (&self.size, &self.map) {
            (Some([w, h]), None) => Ok(Map::open(*w, *h)),
            (None, Some(p)) => {
                let path = dir(p);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ("map".to_string(), format!("{}: {e}", path.display())))?;
                Map::parse(&text)
                    .map_err(|e| ("map".to_string(), format!("{}: {e}", path.display())))
            }
            _ => Err(("size".into(), "give exactly one of `size` or `map`".into())),
        }
    }
}

/// Free cells of the scenario's `gridworld` (for estimates), if it can tell.
pub fn states_in(s: &Scenario) -> Option<u64> {
    let t = s.plugins.iter().find(|p| p.0 == Gridworld::NAME)?;
    let g: Gridworld = toml::Value::Table(t.1.clone()).try_into().ok()?;
    let map = g.load_map(|p| s.resolve(p)).ok()?;
    Some(map.free.iter().filter(|&&f| f).count() as u64)
}

impl PluginConfig for Gridworld {
    const NAME: &'static str = "gridworld";
    const SUMMARY: &'static str = "agents: grid world and the shared generative model (A, B, C, D)";

    fn validate(&self) -> Result<(), Invalid> {
        if let Some([w, h]) = self.size {
            if w == 0 || h == 0 {
                return Err(Invalid::new("size", "needs W ≥ 1 and H ≥ 1"));
            }
            if w as u64 * h as u64 > 1 << 31 {
                return Err(Invalid::new("size", "W × H is over 2³¹ cells"));
            }
        }
        if !(self.p_true > 0.0 && self.p_true <= 1.0) {
            return Err(Invalid::new("p_true", "must be in (0, 1]"));
        }
        if !self.c_goal.is_finite() {
            return Err(Invalid::new("c_goal", "must be finite"));
        }
        if self.regrow == Some(0) {
            return Err(Invalid::new("regrow", "must be at least 1 step"));
        }
        Ok(())
    }
}

impl Plugin for Gridworld {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let map = self
            .load_map(|p| b.resolve(p))
            .map_err(|(k, r)| b.key_error(&k, r))?;
        let model = Model::new(&map, &self.goals, self.p_true, self.c_goal)
            .map_err(|r| b.key_error("goals", r))?;
        b.insert_resource(Rules {
            capacity: self.capacity,
            regrow: self.regrow,
        });
        b.insert_resource_with_footprint(model);
        Ok(())
    }

    fn estimate(&self, s: &Scenario, e: &mut Estimate) {
        if let Some(n) = states_in(s) {
            e.bytes("model tables: ~80 B per state", 80 * n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_line_and_column() {
        assert_eq!(
            Map::parse("..#\n.x.\n").unwrap_err(),
            "line 2, column 2: `x` is not `#`, `.` or `G`"
        );
        assert!(
            Map::parse("...\n..\n")
                .unwrap_err()
                .starts_with("line 2: 2 columns")
        );
        assert_eq!(Map::parse("\n\n").unwrap_err(), "the map has no rows");
        assert_eq!(
            Map::parse("##\n##").unwrap_err(),
            "the map has no free cell"
        );
    }

    #[test]
    fn columns_of_a_and_b_are_distributions() {
        let map = Map::parse("..#.G\n.#...\n.....\n").unwrap();
        let m = Model::new(&map, &[0], 0.8, 2.0).unwrap();
        assert_eq!(m.goals.len(), 2);
        for s in 0..m.states {
            let mut sum = 0.0;
            m.for_column(s, |_, p| sum += p);
            assert!((sum - 1.0).abs() < 1e-15, "A[:, {s}] sums to {sum}");
            // Rows by `for_row` are the transpose of columns.
            m.for_row(s, |t, p| assert_eq!(p, m.a(s, t)));
            // B: each u maps s to exactly one state, a neighbour or s itself.
            for &t in &m.succ[s] {
                assert!(t as usize == s || m.nbrs[s].contains(&t));
            }
        }
        // Up from the top row, or into a wall, stays put.
        assert_eq!(m.succ[0][1], 0);
        assert_eq!(m.succ[1][4], 1); // (0,1) → (0,2) is a wall
        assert_eq!(m.succ[0][2], m.state_of[5]); // down to (1,0)
    }

    #[test]
    fn open_grid_states_are_row_major() {
        let m = Model::new(&Map::open(10, 10), &[77], 0.9, 4.0).unwrap();
        assert_eq!(m.states, 100);
        assert_eq!(m.row_col(77), (7, 7));
        assert_eq!(m.succ[77], [77, 67, 87, 76, 78]);
        assert_eq!(m.deg[0], 2);
        assert!((m.a(1, 0) - 0.05).abs() < 1e-16);
        assert_eq!(m.c[77], 4.0);
        // The ambiguity term matches a direct sum over the dense column.
        for s in 0..100 {
            let direct: f64 = (0..100)
                .map(|o| m.a(o, s))
                .map(|p| -p * p.max(EPS).ln())
                .sum();
            assert!((direct - m.h_a[s]).abs() < 1e-15);
        }
    }

    #[test]
    fn observation_sampling_follows_a() {
        let m = Model::new(&Map::open(3, 3), &[], 0.6, 0.0).unwrap();
        // Centre state 4 has 4 neighbours of 0.1 each: uniform u splits evenly.
        let mut counts = [0u32; 9];
        let n = 10_000;
        for i in 0..n {
            let u = (i as f64 + 0.5) / n as f64;
            counts[m.sample_obs(4, u) as usize] += 1;
        }
        assert_eq!(counts[4], 6000);
        for o in [1, 3, 5, 7] {
            assert_eq!(counts[o], 1000);
        }
    }
}
