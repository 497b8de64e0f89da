//! # microcosm-report
//!
//! Turns a run directory into plots and a one-page `report.html`, from the
//! run's own output files only (`summary.json`, `memory.json`,
//! `metrics.csv`, and when present `rdf.csv`, `genes.csv`,
//! `occupancy.csv`), so it works on any finished, stopped or resumed run and
//! on runs of older versions with the same columns.
//!
//! Plots go to `DIR/plots/NAME.png` and `NAME.svg`; the page links them
//! beside it and needs no network. Which plots:
//!
//! * metrics.csv columns the bundled sims write, grouped with units (MD
//!   temperature, energies, pressure vs time; genes fitness and expression
//!   variance vs generation; agents at-goal fraction, belief entropy,
//!   blocked moves vs step), and any other column on its own;
//! * g(r) from rdf.csv; per-gene mean expression over generations from
//!   genes.csv; agent occupancy on the map at the last step from
//!   occupancy.csv;
//! * memory for every run: bytes per entity by component, entity
//!   bookkeeping, resource and scratch (stacked, beside the estimate), live
//!   heap and RSS vs step, seconds per phase.

pub mod plot;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plot::{Kind, Plot};
use serde_json::Value;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// A file is not what a run writes.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A plot failed to render.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// A CSV table of numbers with a header row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (values that do not parse are NaN).
    pub rows: Vec<Vec<f64>>,
}

impl Table {
    /// Parses CSV text: a header row, then rows of numbers.
    pub fn parse(text: &str) -> Option<Table> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let columns: Vec<String> = lines
            .next()?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        let rows = lines
            .map(|l| {
                let mut r: Vec<f64> = l
                    .split(',')
                    .map(|v| v.trim().parse().unwrap_or(f64::NAN))
                    .collect();
                r.resize(columns.len(), f64::NAN);
                r
            })
            .collect();
        Some(Table { columns, rows })
    }

    /// A column's values.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }
}

/// A run directory's files.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// summary.json.
    pub summary: Value,
    /// memory.json.
    pub memory: Value,
    /// metrics.csv.
    pub metrics: Option<Table>,
    /// rdf.csv.
    pub rdf: Option<Table>,
    /// genes.csv.
    pub genes: Option<Table>,
    /// occupancy.csv.
    pub occupancy: Option<Table>,
}

impl Run {
    /// Reads a run directory (summary.json and memory.json are required).
    pub fn read(dir: &Path) -> Result<Run, ReportError> {
        let json = |name: &str| -> Result<Value, ReportError> {
            let p = dir.join(name);
            let path = p.display().to_string();
            let text = std::fs::read_to_string(&p).map_err(|err| ReportError::Io {
                path: path.clone(),
                err,
            })?;
            serde_json::from_str(&text).map_err(|e| ReportError::Format {
                path,
                reason: format!("not JSON: {e}"),
            })
        };
        let csv = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| Table::parse(&t))
                .filter(|t| !t.rows.is_empty())
        };
        Ok(Run {
            dir: dir.to_path_buf(),
            summary: json("summary.json")?,
            memory: json("memory.json")?,
            metrics: csv("metrics.csv"),
            rdf: csv("rdf.csv"),
            genes: csv("genes.csv"),
            occupancy: csv("occupancy.csv"),
        })
    }

    /// The plots this run's files support, in page order.
    pub fn plots(&self) -> Vec<Plot> {
        let mut out = Vec::new();
        if let Some(m) = &self.metrics {
            out.extend(metric_plots(m));
        }
        if let Some(t) = &self.rdf
            && let (Some(r), Some(g)) = (t.column("r"), t.column("g"))
        {
            out.push(lines(
                "rdf",
                "Radial distribution function",
                "r (σ)",
                "g(r)",
                r,
                vec![("g(r)".into(), g)],
            ));
        }
        if let Some(t) = &self.genes {
            out.extend(genes_heatmap(t));
        }
        if let Some(t) = &self.occupancy {
            out.extend(occupancy_heatmap(t));
        }
        out.extend(memory_plots(&self.memory));
        out
    }
}

fn lines(
    name: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: Vec<f64>,
    series: Vec<(String, Vec<f64>)>,
) -> Plot {
    Plot {
        name: name.into(),
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        kind: Kind::Lines { x, series },
    }
}

/// metrics.csv columns of the bundled sims, grouped, with units.
const GROUPS: &[(&str, &str, &[&str], &str)] = &[
    ("temperature", "Temperature", &["temp"], "T (ε/k_B)"),
    (
        "energy",
        "Energy per atom",
        &["pe", "ke", "etotal"],
        "energy per atom (ε)",
    ),
    ("pressure", "Pressure", &["press"], "P (ε/σ³)"),
    (
        "fitness",
        "Fitness",
        &["mean_fitness", "max_fitness"],
        "fitness",
    ),
    (
        "expression_variance",
        "Expression variance",
        &["var_expression"],
        "variance of expression levels",
    ),
    (
        "at_goal",
        "Agents at a goal",
        &["at_goal_fraction"],
        "fraction of agents",
    ),
    (
        "entropy",
        "Mean belief entropy",
        &["mean_entropy"],
        "entropy (nats)",
    ),
    (
        "blocked",
        "Blocked moves",
        &["moves_blocked"],
        "moves blocked per step",
    ),
    (
        "fitness_variance",
        "Fitness variance",
        &["var_fitness"],
        "variance of fitness",
    ),
    (
        "mean_expression",
        "Mean expression",
        &["mean_expression"],
        "expression level",
    ),
    (
        "mutations",
        "Mutations",
        &["mutations"],
        "mutations per generation",
    ),
    (
        "resources",
        "Resources eaten",
        &["mean_energy"],
        "resources eaten per agent",
    ),
    ("msd", "Mean-square displacement", &["msd"], "MSD (length²)"),
];

fn metric_plots(m: &Table) -> Vec<Plot> {
    let index = m.columns.first().cloned().unwrap_or_else(|| "step".into());
    let (x, x_label) = match m.column("time") {
        Some(t) => (t, "time (τ)".to_string()),
        None => (m.column(&index).unwrap_or_default(), index.clone()),
    };
    let mut used: Vec<&str> = vec![index.as_str(), "time"];
    let mut out = Vec::new();
    for (name, title, cols, unit) in GROUPS {
        let series: Vec<(String, Vec<f64>)> = cols
            .iter()
            .filter_map(|c| Some((c.to_string(), m.column(c)?)))
            .collect();
        if series.is_empty() {
            continue;
        }
        used.extend(cols.iter());
        out.push(lines(name, title, &x_label, unit, x.clone(), series));
    }
    for c in &m.columns {
        if used.contains(&c.as_str()) {
            continue;
        }
        let y = m.column(c).unwrap_or_default();
        out.push(lines(
            &format!("metric_{c}"),
            c,
            &x_label,
            c,
            x.clone(),
            vec![(c.clone(), y)],
        ));
    }
    out
}

fn genes_heatmap(t: &Table) -> Option<Plot> {
    let genes = t.columns.len().checked_sub(1).filter(|&g| g > 0)?;
    let gens = t.column(&t.columns[0])?;
    let values: Vec<f64> = t.rows.iter().flat_map(|r| r[1..].iter().copied()).collect();
    let dy = if gens.len() > 1 {
        gens[1] - gens[0]
    } else {
        1.0
    };
    Some(Plot {
        name: "genes_heatmap".into(),
        title: "Mean expression per gene".into(),
        x_label: "gene".into(),
        y_label: "generation".into(),
        kind: Kind::Heatmap {
            nx: genes,
            ny: t.rows.len(),
            values,
            y0: gens[0],
            dy,
        },
    })
}

fn occupancy_heatmap(t: &Table) -> Option<Plot> {
    let (xs, ys, n) = (t.column("x")?, t.column("y")?, t.column("agents")?);
    let ok = |v: &f64| v.is_finite() && *v >= 0.0 && *v < 1e6;
    if !xs.iter().chain(&ys).all(ok) {
        return None;
    }
    let w = xs.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
    let h = ys.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
    let mut values = vec![f64::NAN; w * h];
    for ((x, y), c) in xs.iter().zip(&ys).zip(&n) {
        values[*y as usize * w + *x as usize] = *c;
    }
    Some(Plot {
        name: "occupancy".into(),
        title: "Agents per cell at the last step (grey: wall)".into(),
        x_label: "x (cell)".into(),
        y_label: "y (cell)".into(),
        kind: Kind::Heatmap {
            nx: w,
            ny: h,
            values,
            y0: 0.0,
            dy: 1.0,
        },
    })
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The attributable bytes of memory.json, by part: each component (its
/// capacity), entity bookkeeping, each resource, scratch high water.
pub fn memory_rows(m: &Value) -> Vec<(String, f64)> {
    let name = |v: &Value| v["name"].as_str().unwrap_or("?").to_string();
    let mut rows: Vec<(String, f64)> = Vec::new();
    for c in m["components"].as_array().into_iter().flatten() {
        let b = c["capacity_bytes"].as_f64().or(c["bytes"].as_f64());
        rows.push((format!("component {}", name(c)), b.unwrap_or(0.0)));
    }
    rows.push((
        "entity bookkeeping".into(),
        num(&m["entity_bookkeeping"]["bytes"]),
    ));
    for r in m["resources"].as_array().into_iter().flatten() {
        rows.push((format!("resource {}", name(r)), num(&r["bytes"])));
    }
    rows.push(("scratch".into(), num(&m["scratch"]["high_water_bytes"])));
    rows.retain(|r| r.1.is_finite());
    rows
}

/// [`memory_rows`] per entity, without empty parts, parts under 1% of the
/// total folded into "other".
pub fn memory_parts(m: &Value) -> Vec<(String, f64)> {
    let n = num(&m["entities"]).max(1.0);
    let mut parts: Vec<(String, f64)> = memory_rows(m)
        .into_iter()
        .map(|(k, b)| (k, b / n))
        .filter(|p| p.1 > 0.0)
        .collect();
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let small: f64 = parts
        .iter()
        .filter(|p| p.1 < 0.01 * total)
        .map(|p| p.1)
        .sum();
    parts.retain(|p| p.1 >= 0.01 * total);
    if small > 0.0 {
        parts.push(("other".into(), small));
    }
    parts
}

fn memory_plots(m: &Value) -> Vec<Plot> {
    let mut out = vec![Plot {
        name: "memory_breakdown".into(),
        title: "Where the bytes go".into(),
        x_label: String::new(),
        y_label: "bytes per entity".into(),
        kind: Kind::Stacked {
            bars: vec![
                ("measured".into(), memory_parts(m)),
                (
                    "estimate".into(),
                    vec![("estimate".into(), num(&m["estimate"]["bytes_per_entity"]))],
                ),
            ],
        },
    }];
    let samples = m["samples"].as_array().cloned().unwrap_or_default();
    if !samples.is_empty() {
        let step: Vec<f64> = samples.iter().map(|s| num(&s["step"])).collect();
        let mb = |k: &str| samples.iter().map(|s| num(&s[k]) / 1e6).collect::<Vec<_>>();
        out.push(lines(
            "memory_vs_step",
            "Live heap and RSS",
            "step",
            "MB",
            step,
            vec![
                ("live heap".into(), mb("live_bytes")),
                ("RSS".into(), mb("rss_bytes")),
            ],
        ));
    }
    let phases = m["phases"].as_array().cloned().unwrap_or_default();
    if !phases.is_empty() {
        out.push(Plot {
            name: "phase_seconds".into(),
            title: "Time per phase".into(),
            x_label: String::new(),
            y_label: "seconds".into(),
            kind: Kind::Stacked {
                bars: phases
                    .iter()
                    .map(|p| {
                        let name = p["phase"].as_str().unwrap_or("?").to_string();
                        (name.clone(), vec![(name, num(&p["seconds"]))])
                    })
                    .collect(),
            },
        });
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders every plot into `DIR/plots/` and writes `DIR/report.html`
/// (through a temporary file and a rename); returns the page's path.
pub fn write(dir: &Path) -> Result<PathBuf, ReportError> {
    let run = Run::read(dir)?;
    let plots_dir = dir.join("plots");
    let io = |p: &Path, err| ReportError::Io {
        path: p.display().to_string(),
        err,
    };
    std::fs::create_dir_all(&plots_dir).map_err(|e| io(&plots_dir, e))?;
    let plots = run.plots();
    for p in &plots {
        p.render(&plots_dir)?;
    }
    let html = page(&run, &plots);
    let part = dir.join("report.html.part");
    let fin = dir.join("report.html");
    std::fs::write(&part, html).map_err(|e| io(&part, e))?;
    std::fs::rename(&part, &fin).map_err(|e| io(&fin, e))?;
    Ok(fin)
}

fn page(run: &Run, plots: &[Plot]) -> String {
    let s = &run.summary;
    let m = &run.memory;
    let mut h = String::new();
    let title = format!("microcosm — {}", s["scenario"].as_str().unwrap_or("run"));
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\n\
         body{{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1680px;color:#222}}\n\
         h1{{font-size:24px;margin:0 0 4px}} h2{{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}}\n\
         table{{border-collapse:collapse;font-size:14px}} td,th{{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}}\n\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}\n\
         .grid{{display:flex;flex-wrap:wrap;gap:12px}} figure{{margin:0;width:800px}} img{{width:800px;height:450px;border:1px solid #ddd}}\n\
         figcaption{{font-size:12px;color:#666}} .cols{{display:flex;gap:40px;flex-wrap:wrap}}\n\
         </style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let stop = s["stop"]["kind"].as_str().unwrap_or("?");
    let fmt = |v: &Value, p: usize| v.as_f64().map_or("–".into(), |x| format!("{x:.p$}"));
    let rows: Vec<(&str, String)> = vec![
        ("scenario", s["scenario"].as_str().unwrap_or("?").into()),
        (
            "plugins",
            s["plugins"].as_array().map_or(String::new(), |a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        ),
        ("entities", fmt(&s["entities"], 0)),
        ("steps", fmt(&s["steps"], 0)),
        ("threads", fmt(&s["threads"], 0)),
        ("seed", fmt(&s["seed"], 0)),
        (
            "wall time (loop)",
            format!("{} s", fmt(&s["loop_seconds"], 3)),
        ),
        ("setup", format!("{} s", fmt(&s["setup_seconds"], 3))),
        (
            "entity-steps/s",
            s["entity_steps_per_second"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.3e}")),
        ),
        ("bytes per entity", fmt(&m["bytes_per_entity"], 1)),
        (
            "steady-state heap allocations",
            fmt(&m["steady_state"]["heap_allocations"], 0),
        ),
        (
            "ended",
            match s["resumed_from"].as_u64() {
                Some(k) => format!("{stop} (resumed from step {k})"),
                None => stop.to_string(),
            },
        ),
    ];
    h.push_str("<div class=\"cols\"><div><h2>Summary</h2><table>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table></div>\n<div><h2>Memory</h2><table>\n<tr><th>what</th><th>bytes</th><th>B/entity</th></tr>\n");
    let n = num(&m["entities"]).max(1.0);
    for (k, b) in &memory_rows(m) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.1}</td></tr>",
            esc(k),
            b,
            b / n
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>total attributable</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        fmt(&m["attributable_bytes"], 0),
        fmt(&m["bytes_per_entity"], 1)
    );
    let mb = |v: &Value| {
        v.as_f64()
            .map_or("–".into(), |x| format!("{:.1} MB", x / 1e6))
    };
    let _ = writeln!(
        h,
        "</table><p style=\"font-size:13px\">estimate {} ({} B/entity); heap live {}, peak {}; RSS start {}, peak {}, end {}</p></div></div>",
        mb(&m["estimate"]["bytes"]),
        fmt(&m["estimate"]["bytes_per_entity"], 1),
        mb(&m["heap"]["live_bytes"]),
        mb(&m["heap"]["peak_bytes"]),
        mb(&m["rss"]["start_bytes"]),
        mb(&m["rss"]["peak_bytes"]),
        mb(&m["rss"]["end_bytes"]),
    );
    h.push_str("<h2>Plots</h2>\n<div class=\"grid\">\n");
    for p in plots {
        let _ = writeln!(
            h,
            "<figure><img src=\"plots/{0}.png\" alt=\"{1}\"><figcaption>{1} — <a href=\"plots/{0}.svg\">SVG</a></figcaption></figure>",
            esc(&p.name),
            esc(&p.title)
        );
    }
    h.push_str("</div>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_columns_are_grouped_and_others_get_a_plot_each() {
        let t = Table::parse(
            "step,time,temp,pe,ke,etotal,speed\n0,0,3,-6,4,-2,1\n10,0.05,2,-5,3,-2,nan\n",
        )
        .unwrap();
        assert!(t.column("speed").unwrap()[1].is_nan());
        let names: Vec<String> = metric_plots(&t).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["temperature", "energy", "metric_speed"]);
        let p = &metric_plots(&t)[1];
        assert_eq!(p.x_label, "time (τ)");
        let Kind::Lines { x, series } = &p.kind else {
            panic!("energy is a line plot")
        };
        assert_eq!(x, &[0.0, 0.05]);
        assert_eq!(
            series.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["pe", "ke", "etotal"]
        );
    }

    #[test]
    fn small_memory_parts_fold_into_other() {
        let m: Value = serde_json::from_str(
            r#"{"entities": 10, "components": [{"name": "A", "capacity_bytes": 1000}],
                "entity_bookkeeping": {"bytes": 500}, "resources": [{"name": "tiny", "bytes": 5}],
                "scratch": {"high_water_bytes": 0}}"#,
        )
        .unwrap();
        assert_eq!(
            memory_parts(&m),
            vec![
                ("component A".to_string(), 100.0),
                ("entity bookkeeping".to_string(), 50.0),
                ("other".to_string(), 0.5)
            ]
        );
    }
}
