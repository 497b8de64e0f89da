//! Lennard-Jones MD: golden values, agreement with brute force, conservation,
//! determinism across thread counts, zero steady-state allocations.

mod common;

use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::neighbor::PeriodicBox;
use microcosm::sims::md::lj::{Forces, LjEnergy, LjTable, Neighbors};
use microcosm::sims::md::thermo::ThermoState;
use microcosm::sims::md::{AtomType, Position, SimBox, Velocity};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// LAMMPS in.lj at step 0 (perfect fcc lattice, T exactly 3.0).
#[test]
fn lj_liquid_step_0_matches_lammps() {
    let _g = common::serial();
    for precision in ["mixed", "double"] {
        let set = [
            &format!("plugins.lj.precision=\"{precision}\"")[..],
            "run.steps=0",
        ];
        let sim = common::bundled("md/lj-liquid", &set, 2, None);
        let t = *sim.world().resource::<ThermoState>();
        assert_eq!(t.step, 0);
        assert!(rel(t.temp, 3.0) < 1e-9, "{precision}: temp {}", t.temp);
        assert!(rel(t.pe, -6.7733681) < 1e-6, "{precision}: pe {}", t.pe);
        assert!(
            rel(t.press, -3.7027964) < 1e-6,
            "{precision}: press {}",
            t.press
        );
    }
}

/// Forces, energy and virial from the list against a brute-force O(N²)
/// minimum-image sum in f64, on random small periodic systems.
#[test]
fn forces_match_brute_force() {
    let _g = common::serial();
    for (precision, tol) in [("double", 1e-10), ("mixed", 2e-5)] {
        for (seed, typed) in [(1u64, false), (2, true), (3, true)] {
            let types = if typed {
                "types = [{ name = \"A\", fraction = 0.7 }, { name = \"B\", mass = 2.0, fraction = 0.3 }]\n"
            } else {
                ""
            };
            let pairs = if typed {
                "pairs = [{ types = [\"A\", \"B\"], epsilon = 1.5, sigma = 0.8, cutoff = 2.0 }]\n\
                 types.B = { epsilon = 0.5, sigma = 0.88 }\n"
            } else {
                ""
            };
            let text = format!(
                "[run]\nsteps = 30\nseed = {seed}\nsample_every = 1\n\
                 [plugins.atoms]\nlattice = {{ density = 0.9, cells = [5, 6, 7] }}\n{types}\
                 [plugins.velocity]\ntemperature = 2.0\n\
                 [plugins.lj]\ncutoff = 2.5\nskin = 0.3\nshift = {typed}\nprecision = \"{precision}\"\n{pairs}\
                 [plugins.nve]\ndt = 0.004\n[plugins.thermo]\n"
            );
            let mut sim = common::sim(&text, &microcosm::sims::registry(), 2, None);
            sim.run(|_, _| {}); // 30 steps: a disordered configuration
            let world = sim.world_mut();
            let bx = world.resource::<SimBox>().0;
            let table = world.resource::<LjTable>().clone();
            let e = *world.resource::<LjEnergy>();
            let mut q = world.query::<(&Position, Option<&AtomType>)>();
            let atoms: Vec<_> = q
                .iter(world)
                .map(|(p, t)| (p.0.to_array(), t.map_or(0, |t| t.0 as usize)))
                .collect();
            let (bf, bpe, bvir) = brute_force(&atoms, bx, &table);
            // The forces in the buffer are those of the last step's positions.
            let neigh = world.resource::<Neighbors>();
            let forces = world.resource::<Forces>();
            let fscale = bf
                .iter()
                .map(|f| f.iter().map(|x| x * x).sum::<f64>().sqrt())
                .fold(0.0, f64::max);
            for (r, fb) in bf.iter().enumerate() {
                let f = forces.at(neigh.list.slot_of[r]);
                for d in 0..3 {
                    let err = (f[d] - fb[d]).abs() / fscale;
                    assert!(
                        err < tol,
                        "{precision} seed {seed}: atom {r} f{d} {} vs {} (err {err:e})",
                        f[d],
                        fb[d]
                    );
                }
            }
            assert!(rel(e.pe, bpe) < tol, "{precision}: pe {} vs {bpe}", e.pe);
            assert!(
                rel(e.virial, bvir) < tol * 10.0,
                "{precision}: virial {} vs {bvir}",
                e.virial
            );
        }
    }
}

fn brute_force(
    atoms: &[([f64; 3], usize)],
    bx: PeriodicBox,
    t: &LjTable,
) -> (Vec<[f64; 3]>, f64, f64) {
    let mut f = vec![[0.0; 3]; atoms.len()];
    let (mut pe, mut vir) = (0.0, 0.0);
    for i in 0..atoms.len() {
        for j in i + 1..atoms.len() {
            let k = atoms[i].1 * t.n + atoms[j].1;
            let d = bx.min_image(atoms[i].0, atoms[j].0);
            let r2: f64 = d.iter().map(|x| x * x).sum();
            if r2 < t.cutsq[k] {
                let r2inv = 1.0 / r2;
                let r6 = r2inv * r2inv * r2inv;
                let fp = r6 * (t.lj1[k] * r6 - t.lj2[k]) * r2inv;
                for c in 0..3 {
                    f[i][c] += d[c] * fp;
                    f[j][c] -= d[c] * fp;
                }
                pe += r6 * (t.lj3[k] * r6 - t.lj4[k]) - t.offset[k];
                vir += fp * r2;
            }
        }
    }
    (f, pe, vir)
}

/// `lj-small`: NVE energy drift per atom per τ, and total momentum.
#[test]
fn lj_small_conserves_energy_and_momentum() {
    let _g = common::serial();
    let dir = common::temp_dir("lj-small");
    let mut sim = common::bundled("md/lj-small", &[], 2, Some(dir.clone()));
    sim.run(|_, _| {});
    let world = sim.world_mut();
    let mut q = world.query::<&Velocity>();
    let p = q.iter(world).fold([0.0f64; 3], |a, v| {
        [
            a[0] + v.0.x as f64,
            a[1] + v.0.y as f64,
            a[2] + v.0.z as f64,
        ]
    });
    let builds = world.resource::<Neighbors>().builds;
    let r = sim.finish().unwrap();
    assert_eq!(r.memory.steady_state.heap_allocations, 0);
    // Momentum: zero at start, conserved to round-off (f32 velocities, 4000 atoms).
    for c in p {
        assert!(c.abs() < 1e-3, "total momentum {p:?}");
    }
    // Drift: least-squares slope of etotal over time, after the lattice melts (t ≥ 5τ).
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (v[1], v[5])
        })
        .filter(|r| r.0 >= 5.0)
        .collect();
    let n = rows.len() as f64;
    let (sx, sy) = rows.iter().fold((0.0, 0.0), |a, r| (a.0 + r.0, a.1 + r.1));
    let (mx, my) = (sx / n, sy / n);
    let slope = rows.iter().map(|r| (r.0 - mx) * (r.1 - my)).sum::<f64>()
        / rows.iter().map(|r| (r.0 - mx).powi(2)).sum::<f64>();
    eprintln!(
        "lj-small: drift {slope:e} ε/atom/τ over {} τ, {builds} list builds",
        rows.last().unwrap().0 - rows[0].0
    );
    assert!(slope.abs() < 1e-5, "energy drift {slope:e} per atom per τ");
    assert!(
        builds > 100 && builds < 10_000 / 3,
        "checked rebuilds: {builds}"
    );
}

/// Same scenario and seed: identical metrics and final state with 1 and 2 threads.
#[test]
fn md_is_bitwise_identical_across_thread_counts() {
    let _g = common::serial();
    for name in ["md/lj-liquid", "md/kob-andersen"] {
        let mut outs = Vec::new();
        for threads in [1, 2] {
            let dir = common::temp_dir(&format!("md-det-{}-{threads}", name.replace('/', "-")));
            // Past the scenarios' warm-up (20 and 50 steps), with list
            // rebuilds in steady state.
            let mut sim = common::bundled(
                name,
                &["run.steps=120", "run.sample_every=10"],
                threads,
                Some(dir.clone()),
            );
            sim.run(|_, _| {});
            let world = sim.world_mut();
            let mut q = world.query::<(&Position, &Velocity)>();
            let state: Vec<u64> = q
                .iter(world)
                .flat_map(|(p, v)| {
                    p.0.to_array()
                        .map(f64::to_bits)
                        .into_iter()
                        .chain(v.0.to_array().map(|x| x.to_bits() as u64))
                })
                .collect();
            let r = sim.finish().unwrap();
            assert_eq!(
                r.memory.steady_state.heap_allocations, 0,
                "{name}, {threads} threads"
            );
            let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
            outs.push((csv, state));
        }
        assert_eq!(outs[0].0, outs[1].0, "{name}: metrics.csv differs");
        assert!(outs[0].1 == outs[1].1, "{name}: final state differs");
    }
}
