//! Plots as PNG and SVG: accuracy against N with confidence bars, training curves, and the
//! single-trial classification figure. The font is embedded so that plots render the same on
//! every machine, with or without system fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Legend corners of a [`Chart`].
pub use plotters::prelude::SeriesLabelPosition as Legend;

use crate::error::{EvalError, Result};

static FONT: Once = Once::new();

fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The embedded font is valid; a failure would only lose text, not the plot.
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> EvalError {
    EvalError::Plot(format!("{e:?}"))
}

/// Matplotlib's ten categorical colours: a sweep of the model and three baselines over two
/// protocols draws eight lines, which must not share a colour.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Renders with `draw` into a PNG at `path` (written atomically).
pub fn render_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
{
    ensure_font();
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf)
        .ok_or_else(|| EvalError::Plot("bitmap buffer has the wrong size".into()))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(plot_err)?;
    write_bytes(path, &bytes)
}

/// Renders with `draw` into an SVG at `path` (written atomically).
pub fn render_svg<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
{
    ensure_font();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    write_bytes(path, text.as_bytes())
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    }
    model::io::write_atomic(path, bytes).map_err(|e| EvalError::io(path, e))
}

/// One line of a chart; points are `(x, y, low, high)` (low = high = y for no bars).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub y_range: Option<Range<f64>>,
    /// Where the legend goes (lower left unless a chart's lines live there).
    pub legend: Legend,
}

fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad)..(hi + pad)
}

/// A line chart with optional error bars.
pub fn draw_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    let xs = padded_range(
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    let ys = chart.y_range.clone().unwrap_or_else(|| {
        padded_range(
            chart
                .series
                .iter()
                .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3])),
        )
    });
    let mut ctx = ChartBuilder::on(area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs, ys)
        .map_err(plot_err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.1)),
            color.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(s.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        // Markers only where they stay readable.
        if s.points.len() <= 60 {
            ctx.draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
            )
            .map_err(plot_err)?;
        }
        ctx.draw_series(
            s.points
                .iter()
                .filter(|p| p.3 > p.2)
                .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, color.stroke_width(1), 8)),
        )
        .map_err(plot_err)?;
    }
    if chart.series.len() > 1 || chart.series.iter().any(|s| !s.name.is_empty()) {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(chart.legend.clone())
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

/// A chart as PNG and/or SVG.
pub fn write_chart(chart: &Chart, png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let size = (900, 600);
    if let Some(p) = png {
        render_png(p, size, |a| draw_chart(a, chart))?;
    }
    if let Some(p) = svg {
        render_svg(p, size, |a| draw_chart(a, chart))?;
    }
    Ok(())
}

/// Training curves: loss (left) and validation accuracy (right) against the step.
pub fn write_training_curves(path: &Path, loss: &[Series], accuracy: &[Series]) -> Result<()> {
    render_png(path, (1400, 520), |root| {
        let (left, right) = root.split_horizontally(700);
        draw_chart(
            &left,
            &Chart {
                title: "Training loss",
                x_label: "step",
                y_label: "loss (train: objective, validation: pair BCE)",
                series: loss,
                y_range: None,
                legend: Legend::LowerLeft,
            },
        )?;
        draw_chart(
            &right,
            &Chart {
                title: "Validation one-shot accuracy",
                x_label: "step",
                y_label: "accuracy",
                series: accuracy,
                y_range: None,
                legend: Legend::LowerLeft,
            },
        )
    })
}

/// One panel of the classification figure.
pub struct Tile<'a> {
    pub pixels: &'a [f32],
    pub side: usize,
    pub caption: String,
    /// Border colour, if any (chosen / true candidate).
    pub border: Option<RGBColor>,
}

pub const CHOSEN: RGBColor = RGBColor(31, 119, 180);
pub const TRUTH: RGBColor = RGBColor(44, 160, 44);
pub const WRONG: RGBColor = RGBColor(214, 39, 40);

/// Several drawings of one `side` in one square image (ink 1, paper 0), for a tile that
/// shows a K-shot candidate: a grid of ceil(sqrt(K)) columns in reading order, cells
/// separated by light grey lines. Returns the pixels and the new side.
pub fn mosaic(drawings: &[&[f32]], side: usize) -> (Vec<f32>, usize) {
    const GAP_INK: f32 = 0.25;
    let grid = (drawings.len() as f64).sqrt().ceil().max(1.0) as usize;
    let gap = (side / 20).max(1);
    let total = grid * side + (grid - 1) * gap;
    let mut out = vec![GAP_INK; total * total];
    for cell in 0..grid * grid {
        let (x0, y0) = ((cell % grid) * (side + gap), (cell / grid) * (side + gap));
        for y in 0..side {
            let row = &mut out[(y0 + y) * total + x0..][..side];
            match drawings.get(cell) {
                Some(d) => row.copy_from_slice(&d[y * side..][..side]),
                None => row.fill(0.0),
            }
        }
    }
    (out, total)
}

/// The query on the left, the candidates in a grid, each captioned; ink drawn dark.
pub fn write_classification(
    path: &Path,
    title: &str,
    query: &Tile,
    candidates: &[Tile],
) -> Result<()> {
    let cell = 130u32;
    let cols = (candidates.len() as u32).clamp(1, 5);
    let rows = (candidates.len() as u32).div_ceil(cols).max(1);
    // Wide enough for the title too (about 10 px a character at 18 px), so a long scorer
    // name above a few tiles is not cut off.
    let title_width = 20 + 10 * title.chars().count() as u32;
    let width = (cell * (cols + 1) + 60).max(title_width);
    let height = cell * rows + 90;
    render_png(path, (width, height), |root| {
        root.draw(&Text::new(title.to_string(), (10, 10), ("sans-serif", 18)))
            .map_err(plot_err)?;
        draw_tile(root, query, (10, 50), 105)?;
        for (i, t) in candidates.iter().enumerate() {
            let (c, r) = (i as u32 % cols, i as u32 / cols);
            draw_tile(
                root,
                t,
                ((cell * (c + 1) + 40) as i32, (50 + cell * r) as i32),
                105,
            )?;
        }
        Ok(())
    })
}

fn draw_tile<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &Tile,
    at: (i32, i32),
    size: u32,
) -> Result<()> {
    let scale = size as f32 / t.side as f32;
    for y in 0..size {
        for x in 0..size {
            let sx = ((x as f32 / scale) as usize).min(t.side - 1);
            let sy = ((y as f32 / scale) as usize).min(t.side - 1);
            let v = t.pixels[sy * t.side + sx].clamp(0.0, 1.0);
            let g = (255.0 * (1.0 - v)) as u8;
            root.draw_pixel((at.0 + x as i32, at.1 + y as i32), &RGBColor(g, g, g))
                .map_err(plot_err)?;
        }
    }
    let frame = t.border.unwrap_or(RGBColor(200, 200, 200));
    let width = if t.border.is_some() { 3 } else { 1 };
    root.draw(&Rectangle::new(
        [
            (at.0 - 2, at.1 - 2),
            (at.0 + size as i32 + 2, at.1 + size as i32 + 2),
        ],
        frame.stroke_width(width),
    ))
    .map_err(plot_err)?;
    root.draw(&Text::new(
        t.caption.clone(),
        (at.0, at.1 + size as i32 + 5),
        ("sans-serif", 13),
    ))
    .map_err(plot_err)?;
    Ok(())
}

/// A confusion matrix: `counts[t][p]` queries of true label `t` were given label `p`.
pub struct Confusion<'a> {
    pub title: &'a str,
    pub labels: &'a [String],
    pub counts: &'a [Vec<usize>],
}

/// Where a [`Confusion`] figure puts things, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfusionLayout {
    pub cell: u32,
    /// Left edge of the first column and top edge of the first row.
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    /// Whether the labels are written beside the rows and above the columns (up to
    /// [`NAMED_LABELS`] of them).
    pub named: bool,
}

/// The most labels a confusion figure names; beyond it, names would overlap.
pub const NAMED_LABELS: usize = 60;

/// A row's fraction as a colour: white at 0, dark blue at 1.
pub fn shade(fraction: f64) -> RGBColor {
    let f = fraction.clamp(0.0, 1.0);
    let mix = |full: f64| (255.0 - f * (255.0 - full)).round() as u8;
    RGBColor(mix(8.0), mix(48.0), mix(107.0))
}

impl Confusion<'_> {
    pub fn layout(&self) -> ConfusionLayout {
        let n = self.labels.len().max(1) as u32;
        let cell = (720 / n).clamp(6, 28);
        let named = self.labels.len() <= NAMED_LABELS;
        // About 7 px a character at 12 px, names cut at 24 characters.
        let names = if named {
            let longest = self
                .labels
                .iter()
                .map(|l| l.chars().count().min(24))
                .max()
                .unwrap_or(0) as u32;
            16 + 7 * longest
        } else {
            10
        };
        let title_width = 20 + 9 * self.title.chars().count() as u32;
        let (left, top) = (names, 60 + names);
        ConfusionLayout {
            cell,
            left,
            top,
            width: (left + n * cell + 20).max(title_width),
            height: top + n * cell + 20,
            named,
        }
    }
}

fn draw_confusion<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &Confusion) -> Result<()> {
    let l = c.layout();
    area.draw(&Text::new(c.title.to_string(), (10, 8), ("sans-serif", 16)))
        .map_err(plot_err)?;
    area.draw(&Text::new(
        "rows: true label; columns: label given; shade: fraction of the row",
        (10, 32),
        ("sans-serif", 12),
    ))
    .map_err(plot_err)?;
    let cell = l.cell as i32;
    let (left, top) = (l.left as i32, l.top as i32);
    for (t, row) in c.counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let fraction = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            area.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                shade(fraction).filled(),
            ))
            .map_err(plot_err)?;
            if count > 0 && cell >= 20 {
                let ink = if fraction > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from(("sans-serif", 11).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    style,
                ))
                .map_err(plot_err)?;
            }
        }
    }
    let n = c.labels.len() as i32;
    area.draw(&Rectangle::new(
        [(left, top), (left + n * cell, top + n * cell)],
        RGBColor(160, 160, 160).stroke_width(1),
    ))
    .map_err(plot_err)?;
    if l.named {
        for (i, label) in c.labels.iter().enumerate() {
            let name: String = label.chars().take(24).collect();
            let middle = i as i32 * cell + cell / 2;
            let row = TextStyle::from(("sans-serif", 12).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center));
            area.draw(&Text::new(name.clone(), (left - 6, top + middle), row))
                .map_err(plot_err)?;
            let column = TextStyle::from(
                ("sans-serif", 12)
                    .into_font()
                    .transform(FontTransform::Rotate270),
            )
            .pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(name, (left + middle, top - 6), column))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// A confusion matrix as PNG and/or SVG.
pub fn write_confusion(c: &Confusion, png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let n = c.labels.len();
    if c.counts.len() != n || c.counts.iter().any(|row| row.len() != n) {
        return Err(EvalError::Invalid(format!(
            "a confusion matrix of {n} labels needs {n} rows of {n} counts"
        )));
    }
    let l = c.layout();
    let size = (l.width, l.height);
    if let Some(p) = png {
        render_png(p, size, |a| draw_confusion(a, c))?;
    }
    if let Some(p) = svg {
        render_svg(p, size, |a| draw_confusion(a, c))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mosaic;

    #[test]
    fn a_mosaic_lays_drawings_out_in_reading_order() {
        // Three 2 x 2 drawings: a 2 x 2 grid with 1-pixel grey lines and one blank cell.
        let (a, b, c) = (
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        );
        let (pixels, side) = mosaic(&[&a, &b, &c], 2);
        assert_eq!(side, 5);
        let g = 0.25;
        #[rustfmt::skip]
        let want = [
            1.0, 0.0, g, 0.0, 1.0,
            0.0, 0.0, g, 0.0, 0.0,
            g,   g,   g, g,   g,
            0.0, 0.0, g, 0.0, 0.0,
            0.0, 1.0, g, 0.0, 0.0,
        ];
        assert_eq!(pixels, want);
        // One drawing is itself.
        assert_eq!(mosaic(&[&a], 2), (a.to_vec(), 2));
    }
}
