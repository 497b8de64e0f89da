//! Gene populations: expression and fitness models against hand-computed
//! values, happygene's memtest behaviour, mutation statistics, selection
//! against Wright–Fisher theory, adaptation, determinism, zero allocations.

mod common;

use microcosm::engine::alloc::CountingAlloc;

use microcosm::engine::Sim;
use microcosm::engine::rng::{Rng, StreamId};
use microcosm::sims::genes::evolve::mutate_row;
use microcosm::sims::genes::{Fitness, Genomes};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn sim(text: &str, threads: usize, dir: Option<std::path::PathBuf>) -> Sim {
    common::sim(text, &microcosm::sims::registry(), threads, dir)
}

/// A 3 × 4 population with every initial level 1.0; network / interaction
/// matrix: M[1,0] = 0.5, M[1,2] = −1, M[0,1] = 2, M[0,2] = 2 (target, source).
fn tiny(expression: &str, fitness: &str) -> Sim {
    let dir = common::temp_dir("genes-tiny");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("net.csv"),
        "source,target,weight\n0,1,0.5\n2,1,-1\n1,0,2\n2,0,2\n",
    )
    .unwrap();
    let net = dir.join("net.csv").display().to_string();
    let text = format!(
        "[run]\nsteps = 0\n[plugins.population]\nindividuals = 3\ngenes = 4\ninitial = {{ low = 1.0, high = 1.0 }}\n\
         [plugins.expression]\n{expression}\n[plugins.fitness]\n{}\n[plugins.gene_stats]\n",
        fitness.replace("NET", &net)
    )
    .replace("NET", &net);
    sim(&text, 1, None)
}

fn levels(sim: &Sim) -> Vec<f32> {
    sim.world().resource::<Genomes>().row(0).to_vec()
}

fn fitness(sim: &mut Sim) -> Vec<f64> {
    let w = sim.world_mut();
    w.query::<&Fitness>().iter(w).map(|f| f.0).collect()
}

#[test]
fn expression_models_match_hand_computed_levels() {
    let _g = common::serial();
    let p = "model = { kind = \"proportional\" }";
    for (expr, want) in [
        ("model = { kind = \"inherited\" }", [1.0f32, 1.0, 1.0, 1.0]),
        ("model = { kind = \"constant\", level = 0.7 }", [0.7; 4]),
        (
            "tf = 1.0\nmodel = { kind = \"linear\", slope = 2.0, intercept = -0.5 }",
            [1.5; 4],
        ),
        (
            "tf = 0.1\nmodel = { kind = \"linear\", slope = 2.0, intercept = -0.5 }",
            [0.0; 4],
        ),
        (
            "tf = 0.5\nmodel = { kind = \"hill\", v_max = 2.0, k = 0.5, n = 2.0 }",
            [1.0; 4],
        ),
        // t = A·1 = [4, −0.5, 0, 0]; additive: max(0, 0.1 + t).
        (
            "model = { kind = \"composite\", base = { kind = \"constant\", level = 0.1 }, regulation = { kind = \"additive\", weight = 1.0 } }\nnetwork = { file = \"NET\" }",
            [4.1, 0.0, 0.1, 0.1],
        ),
        // multiplicative, w = 0.5: 0.1·(1 + 0.5 t).
        (
            "model = { kind = \"composite\", base = { kind = \"constant\", level = 0.1 }, regulation = { kind = \"multiplicative\", weight = 0.5 } }\nnetwork = { file = \"NET\" }",
            [0.3, 0.075, 0.1, 0.1],
        ),
        // inherited base: b = E_old = 1: max(0, 1 + t).
        (
            "model = { kind = \"composite\", base = { kind = \"inherited\" }, regulation = { kind = \"additive\", weight = 1.0 } }\nnetwork = { file = \"NET\" }",
            [5.0, 0.5, 1.0, 1.0],
        ),
    ] {
        let s = tiny(expr, p);
        let got = levels(&s);
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{expr}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn fitness_models_match_hand_computed_values() {
    let _g = common::serial();
    // Levels e = [4.1, 0, 0.1, 0.1] from the additive composite above.
    let expr = "model = { kind = \"composite\", base = { kind = \"constant\", level = 0.1 }, regulation = { kind = \"additive\", weight = 1.0 } }\nnetwork = { file = \"NET\" }";
    let e = [4.1f64, 0.0, 0.1, 0.1];
    let mean = e.iter().sum::<f64>() / 4.0;
    let eme = e[0] * (2.0 * e[1] + 2.0 * e[2]) + e[1] * (0.5 * e[0] - e[2]);
    for (fit, want) in [
        ("model = { kind = \"proportional\" }", mean),
        ("model = { kind = \"threshold\", threshold = 1.07 }", 1.0),
        ("model = { kind = \"threshold\", threshold = 1.08 }", 0.0),
        (
            "model = { kind = \"multi_objective\", weights = [1, 2, 3, 4] }",
            (4.1 + 0.3 + 0.4) / 10.0,
        ),
        (
            "model = { kind = \"stabilizing\", theta = 0.1, sigma = 1.0 }",
            (-16.0f64 / 2.0).exp(),
        ),
        (
            "model = { kind = \"stabilizing\", theta = [4.1, 0.0, 0.1, 0.6], sigma = 0.5 }",
            (-0.25f64 / 0.5).exp(),
        ),
        (
            "model = { kind = \"epistatic\", interactions = { file = \"NET\" } }",
            mean + eme / 4.0,
        ),
    ] {
        let mut s = tiny(expr, fit);
        let f = fitness(&mut s);
        for x in &f {
            assert!(
                (x - want).abs() <= 2e-6 * want.abs().max(1.0),
                "{fit}: {x} vs {want}"
            );
        }
    }
}

#[test]
fn happygene_memtest_mean_fitness_stays_one_tenth() {
    let _g = common::serial();
    let dir = common::temp_dir("genes-memtest");
    let mut s = common::bundled(
        "genes/happygene-memtest",
        &["run.steps=20"],
        2,
        Some(dir.clone()),
    );
    s.run(|_, _| {});
    let r = s.finish().unwrap();
    assert_eq!(r.memory.steady_state.heap_allocations, 0);
    let bpg = r.memory.per_unit["bytes_per_gene"];
    assert!(bpg <= 9.0, "bytes per gene {bpg}");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "generation,mean_fitness,var_fitness,max_fitness,mean_expression,var_expression,mutations"
        )
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 21);
    for r in &rows {
        assert!(
            (r[1] - 0.1).abs() < 1e-6,
            "generation {}: mean fitness {}",
            r[0],
            r[1]
        );
    }
    // ~ N·G·rate = 50,000 mutations per generation (none in the setup pass).
    assert_eq!(rows[0][6], 0.0);
    for r in &rows[1..] {
        assert!(
            (r[6] - 50_000.0).abs() < 5.0 * (500_000.0f64 * 0.1 * 0.9).sqrt(),
            "{}",
            r[6]
        );
    }
}

#[test]
fn mutation_statistics_match_theory_and_gaps_match_per_gene_draws() {
    let _g = common::serial();
    let (rate, mag, g, rows) = (0.1f64, 0.05f64, 50usize, 40_000usize);
    let lambda = -(-rate).ln_1p();
    let (mut changed, mut total, mut abs_sum) = (0u64, 0u64, 0.0f64);
    let mut per_pos = vec![0u64; g];
    let mut counts = Vec::with_capacity(rows);
    for i in 0..rows {
        let mut row = vec![10.0f32; g];
        let mut r = Rng::new(3, StreamId::named("test"), 0, i as u64);
        let c = mutate_row(&mut row, lambda, mag, &mut r);
        counts.push(c as f64);
        total += c;
        for (p, &x) in row.iter().enumerate() {
            if x != 10.0 {
                changed += 1;
                per_pos[p] += 1;
                abs_sum += (x as f64 - 10.0).abs();
            }
        }
    }
    // A change below half an f32 ulp at 10 (|Δ| < 5e-7) leaves the level as it was.
    assert!(
        changed <= total && total - changed < total / 10_000,
        "{changed} of {total} changed"
    );
    let n = (rows * g) as f64;
    let frac = total as f64 / n;
    assert!(
        (frac - rate).abs() < 5.0 * (rate * (1.0 - rate) / n).sqrt(),
        "mutated fraction {frac}"
    );
    // Mean |Δ| = magnitude·√(2/π); sd of |Z| is √(1 − 2/π).
    let mean_abs = abs_sum / changed as f64;
    let expect = mag * (2.0 / std::f64::consts::PI).sqrt();
    let sd = mag * (1.0 - 2.0 / std::f64::consts::PI).sqrt() / (changed as f64).sqrt();
    assert!(
        (mean_abs - expect).abs() < 5.0 * sd,
        "mean |Δ| {mean_abs} vs {expect}"
    );
    // Gap sampling gives Binomial(G, rate) counts per row, like per-gene draws,
    // uniformly over positions.
    let mean_c = counts.iter().sum::<f64>() / rows as f64;
    let var_c = counts.iter().map(|c| (c - mean_c).powi(2)).sum::<f64>() / rows as f64;
    let (bm, bv) = (g as f64 * rate, g as f64 * rate * (1.0 - rate));
    assert!(
        (mean_c - bm).abs() < 5.0 * (bv / rows as f64).sqrt(),
        "count mean {mean_c} vs {bm}"
    );
    assert!(
        (var_c - bv).abs() < 5.0 * bv * (2.0 / rows as f64).sqrt(),
        "count variance {var_c} vs {bv}"
    );
    let per_gene: Vec<f64> = {
        let mut r = Rng::new(4, StreamId::named("per-gene"), 0, 0);
        (0..rows)
            .map(|_| (0..g).filter(|_| r.uniform() < rate).count() as f64)
            .collect()
    };
    let mean_p = per_gene.iter().sum::<f64>() / rows as f64;
    assert!(
        (mean_p - mean_c).abs() < 5.0 * (2.0 * bv / rows as f64).sqrt(),
        "gap {mean_c} vs per-gene {mean_p}"
    );
    let e = total as f64 / g as f64;
    for &c in &per_pos {
        assert!(
            (c as f64 - e).abs() < 5.0 * e.sqrt(),
            "position count {c} vs {e}"
        );
    }
}

#[test]
fn wright_fisher_offspring_frequency_matches_theory() {
    let _g = common::serial();
    let (n, p, s) = (20_000usize, 0.3f64, 0.5f64);
    let text = format!(
        "[run]\nsteps = 1\nseed = 5\n[plugins.population]\nindividuals = {n}\ngenes = 4\ninitial = {{ low = 1.0, high = 1.0 }}\n\
         [plugins.expression]\nmodel = {{ kind = \"inherited\" }}\n[plugins.fitness]\nmodel = {{ kind = \"proportional\" }}\n\
         [plugins.selection]\nscheme = {{ kind = \"proportional\" }}\n[plugins.gene_stats]\n"
    );
    let mut sim = sim(&text, 2, None);
    // Genotype B (fitness 1 + s) for the first p·N individuals.
    let nb = (p * n as f64) as usize;
    {
        let mut pop = sim.world_mut().resource_mut::<Genomes>();
        let g = pop.g;
        pop.cur[..nb * g].fill((1.0 + s) as f32);
    }
    sim.step();
    let pop = sim.world().resource::<Genomes>();
    let count = (0..n).filter(|&i| pop.row(i)[0] > 1.2).count() as f64;
    let expect = p * (1.0 + s) / (1.0 + p * s);
    let sd = (expect * (1.0 - expect) / n as f64).sqrt();
    let got = count / n as f64;
    assert!(
        (got - expect).abs() < 5.0 * sd,
        "offspring frequency {got} vs {expect} ± {sd}"
    );
}

fn mean_fitness_rows(dir: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn adaptation_raises_mean_fitness_and_no_selection_does_not() {
    let _g = common::serial();
    let run = |set: &[&str], name: &str| {
        let dir = common::temp_dir(name);
        let mut s = common::bundled("genes/adaptation", set, 2, Some(dir.clone()));
        s.run(|_, _| {});
        s.finish().unwrap();
        mean_fitness_rows(&dir)
    };
    let with = run(&["run.steps=150"], "adapt-with");
    let without = run(
        &["run.steps=150", "plugins.selection.scheme.kind=\"none\""],
        "adapt-without",
    );
    let (f0, f1) = (with[0], *with.last().unwrap());
    assert!(f1 > 1e3 * f0 && f1 > 1e-3, "with selection: {f0} → {f1}");
    let (g0, g1) = (without[0], *without.last().unwrap());
    assert_eq!(g0, f0, "same start");
    assert!(g1 < 10.0 * g0, "without selection: {g0} → {g1}");
}

#[test]
fn genes_are_bitwise_identical_across_threads_and_allocate_nothing() {
    let _g = common::serial();
    for name in ["genes/phase2", "genes/adaptation"] {
        let mut outs = Vec::new();
        for threads in [1, 2] {
            let dir = common::temp_dir(&format!("genes-det-{}-{threads}", name.replace('/', "-")));
            let mut s = common::bundled(
                name,
                &["run.steps=30", "run.sample_every=1"],
                threads,
                Some(dir.clone()),
            );
            s.run(|_, _| {});
            let bits: Vec<u32> = s
                .world()
                .resource::<Genomes>()
                .cur
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let r = s.finish().unwrap();
            assert_eq!(
                r.memory.steady_state.heap_allocations,
                0,
                "{name} {threads} threads: {:?}",
                r.memory
                    .phases
                    .iter()
                    .map(|p| (p.phase.clone(), p.allocations, p.bytes))
                    .collect::<Vec<_>>()
            );
            outs.push((
                std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
                bits,
            ));
        }
        assert_eq!(outs[0].0, outs[1].0, "{name}: metrics differ");
        assert!(outs[0].1 == outs[1].1, "{name}: genomes differ");
    }
}
