//! Reports: every plot renders from small real runs of each bundled sim as a
//! valid PNG and SVG of the documented size; report.html links them all; the
//! g(r) of the `md/lj-liquid` liquid has its first peak near 1.1 σ and tends
//! to 1; a run directory of an older version (fewer memory.json fields)
//! still gets a report.

mod common;

use std::path::Path;

use microcosm::report::plot::SIZE;

fn run(name: &str, set: &[&str], test: &str) -> std::path::PathBuf {
    let dir = common::temp_dir(&format!("report-{test}"));
    let mut sim = common::bundled(name, set, 2, Some(dir.clone()));
    sim.run(|_, _| {});
    sim.finish().unwrap();
    dir
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(
        &bytes[bytes.len() - 8..bytes.len() - 4],
        b"IEND",
        "complete PNG"
    );
    (be(16), be(20))
}

fn check_plots(dir: &Path, expected: &[&str]) {
    let page = microcosm::report::write(dir).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    let plots = dir.join("plots");
    for name in expected {
        let png = std::fs::read(plots.join(format!("{name}.png"))).unwrap();
        assert_eq!(png_size(&png), SIZE, "{name}.png");
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg");
        assert!(
            svg.contains(&format!("width=\"{}\" height=\"{}\"", SIZE.0, SIZE.1)),
            "{name}.svg size"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{name}.svg complete");
        assert!(svg.contains("<text"), "{name}.svg has its labels as text");
        assert!(
            html.contains(&format!("src=\"plots/{name}.png\"")),
            "{name} on the page"
        );
    }
    assert_eq!(
        html.matches("<img ").count(),
        expected.len(),
        "exactly the expected plots"
    );
    assert!(html.ends_with("</html>\n"));
}

const MEMORY: [&str; 3] = ["memory_breakdown", "memory_vs_step", "phase_seconds"];

#[test]
fn md_plots_and_the_rdf_of_a_lennard_jones_liquid() {
    // md/lj-liquid (LAMMPS in.lj: fcc ρ* = 0.8442 melted at T = 3.0) with
    // the rdf plugin added; samples from step 100, after the lattice melts.
    let dir = run(
        "md/lj-liquid",
        &[
            "run.steps=300",
            "run.sample_every=25",
            "plugins.rdf.cutoff=4.0",
            "plugins.rdf.every=100",
        ],
        "md",
    );
    let mut expected = vec!["temperature", "energy", "pressure", "rdf"];
    expected.extend(MEMORY);
    check_plots(&dir, &expected);

    let rdf =
        microcosm::report::Table::parse(&std::fs::read_to_string(dir.join("rdf.csv")).unwrap())
            .unwrap();
    let (r, g) = (rdf.column("r").unwrap(), rdf.column("g").unwrap());
    assert_eq!(r.len(), 100);
    let peak = (0..g.len()).max_by(|&a, &b| g[a].total_cmp(&g[b])).unwrap();
    assert!((r[peak] - 1.1).abs() <= 0.06, "first peak at {} σ", r[peak]);
    assert!(g[peak] > 2.0, "a liquid's first peak: {}", g[peak]);
    for (r, g) in r.iter().zip(&g) {
        if *r < 0.8 {
            assert_eq!(*g, 0.0, "no pairs closer than 0.8 σ (r = {r})");
        }
    }
    let tail: Vec<f64> = r
        .iter()
        .zip(&g)
        .filter(|(r, _)| **r > 3.5)
        .map(|(_, g)| *g)
        .collect();
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!((mean - 1.0).abs() < 0.05, "g → 1 at large r: {mean}");
}

#[test]
fn genes_plots_with_the_expression_heatmap() {
    let dir = run(
        "genes/phase2",
        &[
            "plugins.population.individuals=200",
            "run.steps=30",
            "plugins.gene_stats.genes_every=5",
        ],
        "genes",
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().next().unwrap(),
        "generation,mean_fitness,var_fitness,max_fitness,mean_expression,var_expression,mutations"
    );
    let mut expected = vec![
        "fitness",
        "expression_variance",
        "fitness_variance",
        "mean_expression",
        "mutations",
        "genes_heatmap",
    ];
    expected.extend(MEMORY);
    check_plots(&dir, &expected);
}

#[test]
fn agents_plots_with_the_occupancy_map() {
    let dir = run("agents/gridworld", &["run.steps=20"], "agents");
    let mut expected = vec!["at_goal", "entropy", "blocked", "resources", "occupancy"];
    expected.extend(MEMORY);
    check_plots(&dir, &expected);
    // The occupancy map counts every agent once.
    let occ = microcosm::report::Table::parse(
        &std::fs::read_to_string(dir.join("occupancy.csv")).unwrap(),
    )
    .unwrap();
    let total: f64 = occ.column("agents").unwrap().iter().sum();
    assert_eq!(total, 1000.0);
    assert_eq!(
        occ.rows.len(),
        100,
        "one row per free cell of the 10×10 grid"
    );
}

#[test]
fn a_run_of_an_older_version_still_gets_a_report() {
    let dir = run(
        "demo/brownian",
        &["plugins.brownian.particles=2000", "run.steps=10"],
        "old",
    );
    // An older memory.json: no samples, no phases, no estimate.
    let p = dir.join("memory.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    for k in ["samples", "phases", "estimate"] {
        m.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
    check_plots(&dir, &["msd", "memory_breakdown"]);
}
