//! Plot kinds and their rendering to PNG and SVG with plotters (one drawing
//! function per kind, generic over the backend, so both files show the same
//! plot). Text is set in DejaVu Sans, embedded: no system fonts needed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

/// Pixel size of every plot.
pub const SIZE: (u32, u32) = (800, 450);

/// What to draw.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Lines `y(x)`, one per series; NaN values are gaps.
    Lines {
        /// x values.
        x: Vec<f64>,
        /// (label, y values).
        series: Vec<(String, Vec<f64>)>,
    },
    /// A heatmap of `ny` rows of `nx` values (row `0` at the top; NaN: no cell).
    Heatmap {
        /// Columns.
        nx: usize,
        /// Rows.
        ny: usize,
        /// Row-major values.
        values: Vec<f64>,
        /// First row's y value and the step between rows (labels only).
        y0: f64,
        /// Step between rows.
        dy: f64,
    },
    /// Bars, each a stack of (label, value) parts.
    Stacked {
        /// (bar label, parts).
        bars: Vec<(String, Vec<(String, f64)>)>,
    },
}

/// One plot: file stem, title, axis labels (with units) and data.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File stem (`temperature` → `temperature.png`, `temperature.svg`).
    pub name: String,
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The data.
    pub kind: Kind,
}

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plot {name}: {reason}")]
pub struct PlotError {
    /// The plot.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// Errors of any backend, as text.
trait Str<T> {
    fn s(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Str<T> for Result<T, E> {
    fn s(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Draws a chart's series legend at `at` (one look for every plot).
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    c.configure_series_labels()
        .position(at)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .s()
}

/// Registers the embedded font once.
fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(127, 127, 127),
];

impl Plot {
    /// Writes `DIR/NAME.png` and `DIR/NAME.svg`.
    pub fn render(&self, dir: &Path) -> Result<(), PlotError> {
        font();
        let png = dir.join(format!("{}.png", self.name));
        let svg = dir.join(format!("{}.svg", self.name));
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area())?;
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
    }

    fn err(&self, e: impl std::fmt::Display) -> PlotError {
        PlotError {
            name: self.name.clone(),
            reason: e.to_string(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(|e| self.err(e))?;
        match &self.kind {
            Kind::Lines { x, series } => self.lines(&root, x, series),
            Kind::Heatmap {
                nx,
                ny,
                values,
                y0,
                dy,
            } => self.heatmap(&root, *nx, *ny, values, *y0, *dy),
            Kind::Stacked { bars } => self.stacked(&root, bars),
        }
        .map_err(|e| self.err(e))?;
        root.present().map_err(|e| self.err(e))
    }

    fn lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: &[f64],
        series: &[(String, Vec<f64>)],
    ) -> Result<(), String> {
        let (x0, x1) = range(x.iter().copied());
        let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().copied()));
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .s()?;
        c.configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .s()?;
        for (i, (label, y)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // Split at NaN into separate runs.
            let mut first = true;
            let mut run = Vec::new();
            let pts = x.iter().zip(y).map(|(&a, &b)| (a, b));
            for (a, b) in pts.chain(std::iter::once((f64::NAN, f64::NAN))) {
                if a.is_finite() && b.is_finite() {
                    run.push((a, b));
                    continue;
                }
                if run.is_empty() {
                    continue;
                }
                let s = c
                    .draw_series(LineSeries::new(
                        std::mem::take(&mut run),
                        color.stroke_width(2),
                    ))
                    .s()?;
                if first && series.len() > 1 {
                    s.label(label.as_str()).legend(move |(px, py)| {
                        PathElement::new(vec![(px, py), (px + 20, py)], color.stroke_width(2))
                    });
                }
                first = false;
            }
        }
        if series.len() > 1 {
            legend(&mut c, SeriesLabelPosition::MiddleRight)?;
        }
        Ok(())
    }

    fn heatmap<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        nx: usize,
        ny: usize,
        values: &[f64],
        y0: f64,
        dy: f64,
    ) -> Result<(), String> {
        let (plot, bar) = root.split_horizontally(SIZE.0 - 125);
        let (lo, hi) = range(values.iter().copied());
        let mut c = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..nx as f64, (y0 + dy * ny as f64)..y0)
            .s()?;
        c.configure_mesh()
            .disable_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .s()?;
        let cells = (0..ny).flat_map(|j| (0..nx).map(move |i| (i, j)));
        c.draw_series(cells.map(|(i, j)| {
            let v = values[j * nx + i];
            let color = if v.is_finite() {
                ViridisRGB::get_color_normalized(v, lo, hi)
            } else {
                RGBColor(60, 60, 60)
            };
            let y = y0 + dy * j as f64;
            Rectangle::new([(i as f64, y), (i as f64 + 1.0, y + dy)], color.filled())
        }))
        .s()?;
        // Colour bar with its range.
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(50)
            .margin_bottom(57)
            .margin_right(10)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .s()?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(("sans-serif", 13))
            .draw()
            .s()?;
        let steps = 64;
        cb.draw_series((0..steps).map(|k| {
            let a = lo + (hi - lo) * k as f64 / steps as f64;
            let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                ViridisRGB::get_color_normalized(0.5 * (a + b), lo, hi).filled(),
            )
        }))
        .s()?;
        Ok(())
    }

    fn stacked<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        bars: &[(String, Vec<(String, f64)>)],
    ) -> Result<(), String> {
        let top = bars
            .iter()
            .map(|b| b.1.iter().map(|p| p.1.max(0.0)).sum::<f64>())
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.1;
        let n = bars.len();
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..n as f64 * 2.2 + 2.8, 0.0..top)
            .s()?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        c.configure_mesh()
            .disable_x_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(0)
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .s()?;
        // One colour per part name, in first-seen order.
        let mut names: Vec<&str> = Vec::new();
        for (_, parts) in bars {
            for (p, _) in parts {
                if !names.contains(&p.as_str()) {
                    names.push(p);
                }
            }
        }
        let color =
            |p: &str| COLORS[names.iter().position(|n| *n == p).unwrap_or(0) % COLORS.len()];
        for (b, (_, parts)) in bars.iter().enumerate() {
            let x = 0.4 + b as f64 * 2.2;
            let mut base = 0.0;
            for (p, v) in parts {
                let v = v.max(0.0);
                c.draw_series(std::iter::once(Rectangle::new(
                    [(x, base), (x + 1.6, base + v)],
                    color(p).filled(),
                )))
                .s()?;
                base += v;
            }
            c.draw_series(std::iter::once(Text::new(
                format!("{} ({base:.1})", labels[b]),
                (x, base + top * 0.02),
                ("sans-serif", 14),
            )))
            .s()?;
        }
        for p in &names {
            let col = color(p);
            c.draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                col.filled(),
            )))
            .s()?
            .label(*p)
            .legend(move |(px, py)| {
                Rectangle::new([(px, py - 5), (px + 12, py + 5)], col.filled())
            });
        }
        legend(&mut c, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// A padded range over the finite values (a unit range around a constant).
fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= 1e-12 * lo.abs().max(1.0) {
        let pad = 0.5 * lo.abs().max(1.0) * 0.1;
        return (lo - pad, hi + pad);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}
