//! The `gene_stats` plugin: the generation's metrics row and, optionally,
//! per-gene mean levels every `genes_every` generations in `genes.csv`
//! (`generation,g0,g1,...`).

use std::io::Write;

use microcosm_engine::par;
use microcosm_engine::prelude::*;
use serde::Deserialize;

use super::{Fitness, GenerationStats, Genomes};

/// The `gene_stats` plugin.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GeneStats {
    /// Write per-gene means to genes.csv every this many generations (0: never).
    #[serde(default)]
    pub genes_every: u64,
}

#[derive(Resource, Debug, Clone, Copy)]
struct Columns {
    mean_fitness: usize,
    var_fitness: usize,
    max_fitness: usize,
    mean_expression: usize,
    var_expression: usize,
    mutations: usize,
}

#[derive(Resource, Debug)]
struct GenesCsv {
    file: Option<FileId>,
    every: u64,
    means: Vec<f64>,
}

impl Footprint for GenesCsv {
    fn heap_bytes(&self) -> usize {
        self.means.heap_bytes()
    }
}

impl PluginConfig for GeneStats {
    const NAME: &'static str = "gene_stats";
    const SUMMARY: &'static str =
        "genes: per-generation fitness/expression metrics, optional genes.csv";
}

impl Plugin for GeneStats {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let g = super::genes_per_individual(b)?;
        b.index_column("generation");
        let cols = Columns {
            mean_fitness: b.metric("mean_fitness"),
            var_fitness: b.metric("var_fitness"),
            max_fitness: b.metric("max_fitness"),
            mean_expression: b.metric("mean_expression"),
            var_expression: b.metric("var_expression"),
            mutations: b.metric("mutations"),
        };
        b.insert_resource(cols);
        b.add_systems(Phase::Measure, (check_levels, measure.run_if(sample_step)));
        if self.genes_every > 0 {
            let file = b.output_file("genes.csv")?;
            if let Some(id) = file {
                let mut files = b.world_mut().resource_mut::<OutputFiles>();
                files.write(id, |w| {
                    write!(w, "generation")?;
                    for i in 0..g {
                        write!(w, ",g{i}")?;
                    }
                    writeln!(w)
                });
            }
            b.insert_resource_with_footprint(GenesCsv {
                file,
                every: self.genes_every,
                means: vec![0.0; g],
            });
            b.add_systems(Phase::Output, write_genes);
        }
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["population"]
    }
}

fn measure(
    q: Query<&Fitness>,
    scratch: Res<ScratchArenas>,
    stats: Res<GenerationStats>,
    cols: Res<Columns>,
    mut m: ResMut<Metrics>,
) {
    let Ok(mut iter) = q.contiguous_iter() else {
        return;
    };
    let Some(fit) = iter.next() else { return };
    let n = fit.len().max(1) as f64;
    let (s, s2, mx) = par::map_reduce(
        &scratch,
        fit,
        par::CHUNK,
        (0.0, 0.0, f64::NEG_INFINITY),
        |_, c| {
            c.iter()
                .fold((0.0, 0.0, f64::NEG_INFINITY), |(s, s2, mx), f| {
                    (s + f.0, s2 + f.0 * f.0, mx.max(f.0))
                })
        },
        |a, b| (a.0 + b.0, a.1 + b.1, a.2.max(b.2)),
    );
    let mean = s / n;
    m.set(cols.mean_fitness, mean);
    m.set(cols.var_fitness, (s2 / n - mean * mean).max(0.0));
    m.set(cols.max_fitness, mx);
    m.set(cols.mean_expression, stats.mean_expression);
    m.set(cols.var_expression, stats.var_expression);
    m.set(cols.mutations, stats.mutations as f64);
}

/// Every generation: stops the run (exit 3) on a non-finite level.
fn check_levels(stats: Res<GenerationStats>, genomes: Res<Genomes>, mut health: ResMut<Health>) {
    // Levels are clamped at 0 where they are written (a NaN clamps to 0), so
    // what can go wrong is an infinite level (e.g. a multiplicative network
    // that overflows): it makes the mean of all levels non-finite; only then
    // look for the first one.
    if !stats.mean_expression.is_finite()
        && let Some(k) = genomes
            .cur
            .iter()
            .position(|x| !(*x >= 0.0 && x.is_finite()))
    {
        health.report(
            "individual",
            (k / genomes.g) as u64,
            format!(
                "gene {} has expression level {}",
                k % genomes.g,
                genomes.cur[k]
            ),
        );
    }
}

fn write_genes(
    genomes: Res<Genomes>,
    clock: Res<Clock>,
    mut csv: ResMut<GenesCsv>,
    mut files: ResMut<OutputFiles>,
) {
    let Some(id) = csv.file else { return };
    if !clock.step.is_multiple_of(csv.every) {
        return;
    }
    let g = genomes.g;
    csv.means.fill(0.0);
    for row in genomes.cur.chunks(g) {
        for (m, &x) in csv.means.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    let n = genomes.n as f64;
    let means = &csv.means;
    files.write(id, |w| {
        write!(w, "{}", clock.step)?;
        for m in means {
            write!(w, ",{}", m / n)?;
        }
        writeln!(w)
    });
}
