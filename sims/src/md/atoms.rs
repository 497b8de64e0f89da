//! Creating atoms: an fcc lattice or an extended XYZ file; initial velocities.

use std::collections::HashSet;

use glam::{DVec3, Vec3};
use microcosm_engine::neighbor::PeriodicBox;
use microcosm_engine::prelude::*;
use serde::Deserialize;

use super::{AtomType, Position, SimBox, Species, Velocity};

/// An fcc lattice of `cells` unit cells at reduced number density `density`
/// (LAMMPS `lattice fcc ρ*`: lattice constant (4/ρ*)^⅓, 4 atoms per cell).
/// Atoms are numbered cell by cell with y slowest, then x, and z fastest
/// (LAMMPS's `create_atoms` has x fastest), the order of the neighbour
/// list's columns (in boxes 24 columns wide or more the list takes them in
/// strips; each column's atoms are still consecutive rows); atom i is row i,
/// line i of each `traj.xyz` frame, and draws velocity stream i.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lattice {
    /// Reduced number density ρ* (atoms per σ³).
    pub density: f64,
    /// Unit cells along x, y, z.
    pub cells: [u32; 3],
}

/// An atom type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    /// Name (element name in XYZ files).
    pub name: String,
    /// Mass.
    #[serde(default = "one")]
    pub mass: f64,
    /// Fraction of the lattice sites of this type (lattices with several types).
    pub fraction: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// The `atoms` plugin: where the atoms come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Atoms {
    /// Build an fcc lattice...
    pub lattice: Option<Lattice>,
    /// ... or read an extended XYZ file (path relative to the scenario file).
    pub xyz: Option<String>,
    /// Atom types; default one type `A` of mass 1.
    #[serde(default)]
    pub types: Vec<TypeSpec>,
}

const SHUFFLE: StreamId = StreamId::named("md/atoms/types");

impl Atoms {
    fn species(&self) -> Species {
        if self.types.is_empty() {
            Species {
                names: vec!["A".into()],
                masses: vec![1.0],
            }
        } else {
            Species {
                names: self.types.iter().map(|t| t.name.clone()).collect(),
                masses: self.types.iter().map(|t| t.mass).collect(),
            }
        }
    }

    /// Box and atoms (position, type index), in creation order.
    fn create(&self, b: &Builder) -> Result<(PeriodicBox, Vec<(DVec3, u8)>), BuildError> {
        if let Some(l) = &self.lattice {
            let a = (4.0 / l.density).cbrt();
            let bx = PeriodicBox {
                len: l.cells.map(|c| c as f64 * a),
            };
            let basis = [
                [0.0, 0.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.5, 0.0, 0.5],
                [0.0, 0.5, 0.5],
            ];
            let mut atoms = Vec::with_capacity(4 * l.cells.iter().product::<u32>() as usize);
            // Column order: y slowest, then x, z, basis atom — the order of
            // the neighbour list's x-y columns (y-major) with z inside
            // (LAMMPS's create_atoms has x fastest). Rows then start close to cluster
            // order, so the per-step packing and the kicks' force gathers
            // walk memory nearly in sequence: 7% faster steps at 256,000
            // atoms, 2.5% at 32,000 (paired runs, same binary otherwise).
            for j in 0..l.cells[1] {
                for i in 0..l.cells[0] {
                    for k in 0..l.cells[2] {
                        for bs in basis {
                            let p =
                                DVec3::new(i as f64 + bs[0], j as f64 + bs[1], k as f64 + bs[2])
                                    * a;
                            atoms.push((p, 0u8));
                        }
                    }
                }
            }
            self.assign_lattice_types(&mut atoms, b.seed());
            Ok((bx, atoms))
        } else {
            let file = self.xyz.as_deref().unwrap_or_default();
            let path = b.resolve(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| b.key_error("xyz", format!("cannot read {}: {e}", path.display())))?;
            let xyz = parse_xyz(&text)
                .map_err(|e| b.key_error("xyz", format!("{}: {e}", path.display())))?;
            let species = self.species();
            let mut atoms = Vec::with_capacity(xyz.atoms.len());
            for (line, name, p) in xyz.atoms {
                let t = if self.types.is_empty() {
                    0
                } else {
                    species
                        .names
                        .iter()
                        .position(|n| *n == name)
                        .ok_or_else(|| {
                            b.key_error(
                                "types",
                                format!(
                                    "{}:{line}: element `{name}` is not among the types",
                                    path.display()
                                ),
                            )
                        })?
                };
                atoms.push((DVec3::from_array(xyz.bx.wrap(p)), t as u8));
            }
            Ok((xyz.bx, atoms))
        }
    }

    /// Exact counts per type by fraction, placed by a seeded shuffle.
    fn assign_lattice_types(&self, atoms: &mut [(DVec3, u8)], seed: u64) {
        if self.types.len() < 2 {
            return;
        }
        let n = atoms.len();
        let mut kinds = Vec::with_capacity(n);
        let mut acc = 0.0;
        for (t, spec) in self.types.iter().enumerate() {
            let upto = if t + 1 == self.types.len() {
                n
            } else {
                acc += spec.fraction.unwrap_or(0.0);
                (acc * n as f64).round() as usize
            };
            while kinds.len() < upto {
                kinds.push(t as u8);
            }
        }
        // Fisher-Yates with one counter-based draw per position.
        for i in (1..n).rev() {
            let j = Rng::new(seed, SHUFFLE, 0, i as u64).below(i as u64 + 1) as usize;
            kinds.swap(i, j);
        }
        for (a, k) in atoms.iter_mut().zip(kinds) {
            a.1 = k;
        }
    }

    fn count(&self, s: &Scenario) -> u64 {
        if let Some(l) = &self.lattice {
            4 * l.cells.iter().map(|&c| c as u64).product::<u64>()
        } else {
            let path = s.resolve(self.xyz.as_deref().unwrap_or_default());
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
                .unwrap_or(0)
        }
    }
}

impl PluginConfig for Atoms {
    const NAME: &'static str = "atoms";
    const SUMMARY: &'static str = "MD atoms from an fcc lattice or an extended XYZ file";

    fn validate(&self) -> Result<(), Invalid> {
        match (&self.lattice, &self.xyz) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "xyz",
                    "give either `lattice` or `xyz`, not both",
                ));
            }
            (None, None) => {
                return Err(Invalid::new("lattice", "missing: give `lattice` or `xyz`"));
            }
            _ => {}
        }
        if let Some(l) = &self.lattice {
            if !(l.density.is_finite() && l.density > 0.0) {
                return Err(Invalid::new("lattice.density", "must be a positive number"));
            }
            if l.cells.contains(&0) {
                return Err(Invalid::new(
                    "lattice.cells",
                    "every count must be at least 1",
                ));
            }
        }
        if self.types.len() > 255 {
            return Err(Invalid::new("types", "at most 255 types"));
        }
        let mut names = HashSet::new();
        for (i, t) in self.types.iter().enumerate() {
            if !names.insert(&t.name) {
                return Err(Invalid::new(
                    format!("types[{i}].name"),
                    "duplicate type name",
                ));
            }
            if !(t.mass.is_finite() && t.mass > 0.0) {
                return Err(Invalid::new(
                    format!("types[{i}].mass"),
                    "must be a positive number",
                ));
            }
        }
        if self.lattice.is_some() && self.types.len() > 1 {
            let mut sum = 0.0;
            for (i, t) in self.types.iter().enumerate() {
                match t.fraction {
                    Some(f) if (0.0..=1.0).contains(&f) => sum += f,
                    _ => {
                        return Err(Invalid::new(
                            format!("types[{i}].fraction"),
                            "each type of a lattice needs a fraction in [0, 1]",
                        ));
                    }
                }
            }
            if (sum - 1.0).abs() > 1e-9 {
                return Err(Invalid::new(
                    "types",
                    format!("fractions sum to {sum}, not 1"),
                ));
            }
        }
        Ok(())
    }
}

impl Plugin for Atoms {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let (bx, atoms) = self.create(b)?;
        if atoms.is_empty() {
            return Err(b.error("no atoms"));
        }
        let species = self.species();
        let typed = species.names.len() > 1;
        b.insert_resource(SimBox(bx));
        b.insert_resource(species);
        // Types are constant: positions and velocities are the atoms' state.
        b.checkpoint_component::<Position>();
        b.checkpoint_component::<Velocity>();
        b.checkpoint_constant::<AtomType>();
        if typed {
            b.spawn_batch(
                atoms
                    .into_iter()
                    .map(|(p, t)| (Position(p), Velocity(Vec3::ZERO), AtomType(t))),
            );
        } else {
            b.spawn_batch(
                atoms
                    .into_iter()
                    .map(|(p, _)| (Position(p), Velocity(Vec3::ZERO))),
            );
        }
        Ok(())
    }

    fn estimate(&self, s: &Scenario, e: &mut Estimate) {
        let mut sizes = vec![size_of::<Position>(), size_of::<Velocity>()];
        if self.types.len() > 1 {
            sizes.push(size_of::<AtomType>());
        }
        e.entities("atoms", self.count(s), &sizes);
    }
}

/// A parsed extended XYZ file.
#[derive(Debug, Clone)]
pub struct Xyz {
    /// The box, from `Lattice="..."` (orthorhombic).
    pub bx: PeriodicBox,
    /// (line number, element, position).
    pub atoms: Vec<(usize, String, [f64; 3])>,
}

/// Parses an extended XYZ file: atom count, a comment line with
/// `Lattice="Lx 0 0 0 Ly 0 0 0 Lz"`, then `element x y z [...]` lines.
/// Errors name the line.
pub fn parse_xyz(text: &str) -> Result<Xyz, String> {
    let mut lines = text.lines().enumerate();
    let (_, first) = lines.next().ok_or("empty file")?;
    let n: usize = first
        .trim()
        .parse()
        .map_err(|_| format!("line 1: expected the atom count, found `{}`", first.trim()))?;
    let (_, comment) = lines.next().ok_or("line 2: missing comment line")?;
    let lat = comment
        .split("Lattice=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("line 2: missing Lattice=\"...\" (the box)")?;
    let v: Vec<f64> = lat
        .split_whitespace()
        .map(|x| x.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| "line 2: Lattice must hold 9 numbers".to_string())?;
    if v.len() != 9 {
        return Err("line 2: Lattice must hold 9 numbers".into());
    }
    if [v[1], v[2], v[3], v[5], v[6], v[7]]
        .iter()
        .any(|&x| x != 0.0)
    {
        return Err("line 2: only orthorhombic boxes (diagonal Lattice) are supported".into());
    }
    let len = [v[0], v[4], v[8]];
    if len.iter().any(|&l| !(l.is_finite() && l > 0.0)) {
        return Err("line 2: box edges must be positive".into());
    }
    let mut atoms = Vec::with_capacity(n.min(1 << 24));
    for (i, line) in lines {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if atoms.len() == n {
            return Err(format!("line {lineno}: more atom lines than the count {n}"));
        }
        let mut f = line.split_whitespace();
        let name = f.next().unwrap_or_default().to_string();
        let mut p = [0.0; 3];
        for (d, x) in p.iter_mut().enumerate() {
            *x = f
                .next()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    format!(
                        "line {lineno}: coordinate {} is missing or not a number",
                        d + 1
                    )
                })?;
        }
        atoms.push((lineno, name, p));
    }
    if atoms.len() != n {
        return Err(format!("expected {n} atoms, found {}", atoms.len()));
    }
    Ok(Xyz {
        bx: PeriodicBox { len },
        atoms,
    })
}

/// The `velocity` plugin: LAMMPS `velocity all create T seed` — uniform random
/// components scaled by 1/√m, total momentum zeroed, then scaled so the
/// temperature (3N − 3 degrees of freedom) is exactly `temperature`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityCreate {
    /// Target temperature.
    pub temperature: f64,
    /// Seed (default: the run's seed).
    pub seed: Option<u64>,
}

/// Pending velocity creation (removed once done).
#[derive(Resource, Debug, Clone, Copy)]
struct VelocityPending {
    temperature: f64,
    seed: u64,
}

const VELOCITY: StreamId = StreamId::named("md/velocity");

impl PluginConfig for VelocityCreate {
    const NAME: &'static str = "velocity";
    const SUMMARY: &'static str = "MD initial velocities at an exact temperature";

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Invalid::new("temperature", "must be a finite number ≥ 0"));
        }
        Ok(())
    }
}

impl Plugin for VelocityCreate {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(VelocityPending {
            temperature: self.temperature,
            seed: self.seed.unwrap_or(b.seed()),
        });
        b.add_systems(
            Phase::Begin,
            create_velocities.run_if(|c: Res<Clock>| c.is_setup()),
        );
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms"]
    }
}

/// Sets the initial velocities (setup pass only; sequential sums, so exact
/// and independent of threads).
fn create_velocities(
    mut q: Query<(&mut Velocity, Option<&AtomType>)>,
    pending: Res<VelocityPending>,
    species: Res<Species>,
) {
    let VelocityPending { temperature, seed } = *pending;
    let mass = |t: Option<&AtomType>| species.masses[t.map_or(0, |t| t.0 as usize)];
    let mut raw: Vec<(DVec3, f64)> = q
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            let mut r = Rng::new(seed, VELOCITY, 0, i as u64);
            let m = mass(t);
            let v = DVec3::new(r.uniform() - 0.5, r.uniform() - 0.5, r.uniform() - 0.5) / m.sqrt();
            (v, m)
        })
        .collect();
    let n = raw.len();
    let (p, mtot) = raw
        .iter()
        .fold((DVec3::ZERO, 0.0), |(p, mt), (v, m)| (p + *v * *m, mt + m));
    let vcm = p / mtot;
    for (v, _) in &mut raw {
        *v -= vcm;
    }
    let ke2: f64 = raw.iter().map(|(v, m)| m * v.length_squared()).sum();
    let dof = (3 * n).saturating_sub(3).max(1) as f64;
    let t_now = ke2 / dof;
    let scale = if t_now > 0.0 {
        (temperature / t_now).sqrt()
    } else {
        0.0
    };
    for ((v, _), (r, _)) in q.iter_mut().zip(raw) {
        v.into_inner().0 = (r * scale).as_vec3();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xyz_parses_and_errors_name_the_line() {
        let ok = "2\nLattice=\"4 0 0 0 5 0 0 0 6\" Properties=species:S:1:pos:R:3\nA 1 2 3\nB 0.5 0.5 7.5\n";
        let x = parse_xyz(ok).unwrap();
        assert_eq!(x.bx.len, [4.0, 5.0, 6.0]);
        assert_eq!(x.atoms[1], (4, "B".to_string(), [0.5, 0.5, 7.5]));
        for (bad, msg) in [
            ("", "empty file"),
            ("x\n", "line 1"),
            ("1\nno box\n", "Lattice"),
            (
                "1\nLattice=\"4 0 0 0 5 0 0 1 6\"\nA 1 2 3\n",
                "orthorhombic",
            ),
            (
                "1\nLattice=\"4 0 0 0 5 0 0 0 6\"\nA 1 two 3\n",
                "line 3: coordinate 2",
            ),
            (
                "2\nLattice=\"4 0 0 0 5 0 0 0 6\"\nA 1 2 3\n",
                "expected 2 atoms, found 1",
            ),
            (
                "1\nLattice=\"4 0 0 0 5 0 0 0 6\"\nA 1 2 3\nA 1 2 3\n",
                "line 4: more atom lines",
            ),
            ("1\nLattice=\"-4 0 0 0 5 0 0 0 6\"\nA 1 2 3\n", "positive"),
        ] {
            let e = parse_xyz(bad).unwrap_err();
            assert!(e.contains(msg), "{bad:?}: {e}");
        }
    }
}
