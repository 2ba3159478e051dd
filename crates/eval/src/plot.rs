//! Plots as PNG and SVG: accuracy against N with confidence bars, training curves, and the
//! single-trial classification figure. The font is embedded so that plots render the same on
//! every machine, with or without system fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// How a [`Series`] is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Look {
    /// A coloured line with markers and error bars, named in the legend. The palette's colours
    /// go to these in order, so adding a faint or guide series never recolours the others.
    #[default]
    Line,
    /// A pale line in the colour of the next `Line` series, without markers or a legend entry:
    /// the raw values behind a smoothed line (a training loss logged every few steps).
    Faint,
    /// A dashed grey reference line (chance, perfect calibration), named in the legend.
    Guide,
}

/// One line of a chart; points are `(x, y, low, high)` (low = high = y for no bars).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64, f64)>,
    pub look: Look,
}

impl Series {
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64, f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            look: Look::Line,
        }
    }

    pub fn faint(points: Vec<(f64, f64, f64, f64)>) -> Self {
        Series {
            name: String::new(),
            points,
            look: Look::Faint,
        }
    }

    pub fn guide(name: impl Into<String>, points: Vec<(f64, f64, f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            look: Look::Guide,
        }
    }
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub y_range: Option<Range<f64>>,
    /// The x axis's range (the data's, padded, otherwise): panels that share an axis pass one.
    pub x_range: Option<Range<f64>>,
    /// The x values to label, such as the N of a sweep (round numbers otherwise).
    pub x_ticks: Option<&'a [f64]>,
}

const GUIDE: RGBColor = RGBColor(110, 110, 110);
const LEGEND_FONT: u32 = 14;
const LEGEND_ROW: u32 = 20;
const LEGEND_SWATCH: i32 = 22;

/// Each series' colour: `Line` series take the palette in order, a `Faint` one the colour
/// the next `Line` takes, a `Guide` grey.
fn colours(series: &[Series]) -> Vec<RGBColor> {
    let mut lines = 0;
    series
        .iter()
        .map(|s| match s.look {
            Look::Guide => GUIDE,
            Look::Line | Look::Faint => {
                let c = PALETTE[lines % PALETTE.len()];
                lines += usize::from(s.look == Look::Line);
                c
            }
        })
        .collect()
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
    // A single value (one validation so far) gets a range around it that ticks can label.
    let pad = if hi - lo > 1e-9 * hi.abs().max(1.0) {
        (hi - lo) * 0.05
    } else {
        (0.05 * lo.abs()).max(0.5)
    };
    (lo - pad)..(hi + pad)
}

/// A numeric axis ticked at given values only (plotters' own picks round numbers, which puts
/// the labels of a 3/5/10/20-way sweep at 4, 6, 8, ...).
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Tick values for `range`: `ticks` when given and inside it, else about `count` round numbers
/// (steps of 1, 2 or 5 times a power of ten).
fn tick_values(range: &Range<f64>, ticks: Option<&[f64]>, count: usize) -> Vec<f64> {
    if let Some(t) = ticks {
        let inside: Vec<f64> = t.iter().copied().filter(|v| range.contains(v)).collect();
        if !inside.is_empty() {
            return inside;
        }
    }
    let span = range.end - range.start;
    if !(span.is_finite() && span > 0.0) {
        return vec![range.start];
    }
    let raw = span / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (range.start / step).ceil() as i64;
    let last = (range.end / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: whole numbers without a decimal point, others with as few decimals as they
/// need (at most four).
fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        return format!("{:.0}", v.round());
    }
    let text = format!("{v:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The legend's entries: every named series with points, except the faint ones.
fn legend_entries(series: &[Series]) -> Vec<usize> {
    series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.look != Look::Faint && !s.name.is_empty() && !s.points.is_empty())
        .map(|(i, _)| i)
        .collect()
}

/// Where each legend entry goes below the plot, as (row, x offset), for a strip `width` pixels
/// wide: a grid of columns as wide as the widest entry, filled row by row, so the legend
/// never covers a line and its entries line up.
fn legend_layout(widths: &[u32], width: u32) -> Vec<(u32, u32)> {
    let column = widths.iter().copied().max().unwrap_or(1).max(1);
    let columns = (width / column).max(1) as usize;
    (0..widths.len())
        .map(|i| ((i / columns) as u32, (i % columns) as u32 * column))
        .collect()
}

/// The legend strip below a chart `width` pixels wide: which series it names, where each
/// entry goes, and its height (0 when no series is named).
struct LegendPlan {
    entries: Vec<usize>,
    layout: Vec<(u32, u32)>,
    strip: u32,
}

fn legend_plan(series: &[Series], width: u32) -> LegendPlan {
    ensure_font();
    let font = ("sans-serif", LEGEND_FONT).into_font();
    let entries = legend_entries(series);
    let widths: Vec<u32> = entries
        .iter()
        .map(|&i| {
            let name = &series[i].name;
            let (w, _) = font
                .box_size(name)
                .unwrap_or((8 * name.chars().count() as u32, LEGEND_FONT));
            LEGEND_SWATCH as u32 + 6 + w + 24
        })
        .collect();
    let layout = legend_layout(&widths, width.saturating_sub(80));
    let rows = layout.last().map_or(0, |(r, _)| r + 1);
    let strip = if entries.is_empty() {
        0
    } else {
        rows * LEGEND_ROW + 8
    };
    LegendPlan {
        entries,
        layout,
        strip,
    }
}

/// A line chart with optional error bars, its legend in a strip below the plot.
pub fn draw_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    let colour = colours(chart.series);
    let font: TextStyle = ("sans-serif", LEGEND_FONT).into_font().into();
    let (width, height) = area.dim_in_pixel();
    let LegendPlan {
        entries,
        layout,
        strip,
    } = legend_plan(chart.series, width);
    let (plot_area, legend_area) = area.split_vertically(height.saturating_sub(strip));

    let xs = chart.x_range.clone().unwrap_or_else(|| {
        padded_range(
            chart
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        )
    });
    let ys = chart.y_range.clone().unwrap_or_else(|| {
        padded_range(
            chart
                .series
                .iter()
                .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3])),
        )
    });
    let x_ticks = tick_values(&xs, chart.x_ticks, 10);
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            TickedAxis {
                inner: xs.into(),
                ticks: x_ticks,
            },
            ys,
        )
        .map_err(plot_err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    for (s, &color) in chart.series.iter().zip(&colour) {
        let line = s.points.iter().map(|p| (p.0, p.1));
        match s.look {
            Look::Faint => {
                ctx.draw_series(LineSeries::new(line, color.mix(0.3).stroke_width(1)))
                    .map_err(plot_err)?;
                continue;
            }
            Look::Guide => {
                ctx.draw_series(DashedLineSeries::new(line, 8, 5, GUIDE.stroke_width(2)))
                    .map_err(plot_err)?;
                continue;
            }
            Look::Line => {
                ctx.draw_series(LineSeries::new(line, color.stroke_width(2)))
                    .map_err(plot_err)?;
            }
        }
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
    if strip > 0 {
        for (&i, &(row, x)) in entries.iter().zip(&layout) {
            let (x, y) = (
                70 + x as i32,
                (row * LEGEND_ROW + LEGEND_ROW / 2) as i32 + 2,
            );
            let swatch = vec![(x, y), (x + LEGEND_SWATCH, y)];
            match chart.series[i].look {
                Look::Guide => legend_area
                    .draw(&PathElement::new(
                        vec![(x, y), (x + 8, y)],
                        GUIDE.stroke_width(2),
                    ))
                    .and_then(|_| {
                        legend_area.draw(&PathElement::new(
                            vec![(x + 13, y), (x + LEGEND_SWATCH, y)],
                            GUIDE.stroke_width(2),
                        ))
                    }),
                _ => legend_area.draw(&PathElement::new(swatch, colour[i].stroke_width(2))),
            }
            .map_err(plot_err)?;
            legend_area
                .draw(&Text::new(
                    chart.series[i].name.clone(),
                    (x + LEGEND_SWATCH + 6, y),
                    font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// A chart as PNG and/or SVG: 900 x 600 pixels, taller by the legend's strip so that a long
/// legend does not squeeze the plot.
pub fn write_chart(chart: &Chart, png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let size = (900, 600 + legend_plan(chart.series, 900).strip);
    if let Some(p) = png {
        render_png(p, size, |a| draw_chart(a, chart))?;
    }
    if let Some(p) = svg {
        render_svg(p, size, |a| draw_chart(a, chart))?;
    }
    Ok(())
}

/// Training curves: loss (left) and validation accuracy (right) against the step, as a PNG
/// and, when `svg` is given, an SVG. A run that held nothing out gets a note in place of an
/// empty accuracy panel.
pub fn write_training_curves(
    png: &Path,
    svg: Option<&Path>,
    loss: &[Series],
    accuracy: &[Series],
) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        loss: &[Series],
        accuracy: &[Series],
    ) -> Result<()> {
        let (left, right) = root.split_horizontally(700);
        // Both panels on one step axis, so that a validation lines up with the loss there.
        let steps = padded_range(
            loss.iter()
                .chain(accuracy)
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        draw_chart(
            &left,
            &Chart {
                title: "Training loss",
                x_label: "step",
                y_label: "loss (train: objective, validation: pair BCE)",
                series: loss,
                y_range: None,
                x_range: Some(steps.clone()),
                x_ticks: None,
            },
        )?;
        if accuracy.iter().all(|s| s.points.is_empty()) {
            let (w, h) = right.dim_in_pixel();
            let style = ("sans-serif", 16)
                .into_font()
                .color(&GUIDE)
                .pos(Pos::new(HPos::Center, VPos::Center));
            for (k, line) in [
                "No validation accuracy: this run held nothing out",
                "(a refit on every training alphabet, or --val-alphabets 0).",
            ]
            .iter()
            .enumerate()
            {
                right
                    .draw(&Text::new(
                        line.to_string(),
                        ((w / 2) as i32, (h / 2) as i32 - 12 + 24 * k as i32),
                        style.clone(),
                    ))
                    .map_err(plot_err)?;
            }
            return Ok(());
        }
        draw_chart(
            &right,
            &Chart {
                title: "Validation one-shot accuracy",
                x_label: "step",
                y_label: "accuracy",
                series: accuracy,
                y_range: None,
                x_range: Some(steps),
                x_ticks: None,
            },
        )
    }
    let size = (1400, 540);
    render_png(png, size, |root| draw(root, loss, accuracy))?;
    if let Some(svg) = svg {
        render_svg(svg, size, |root| draw(root, loss, accuracy))?;
    }
    Ok(())
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
    use super::*;

    #[test]
    fn ticks_are_the_given_values_inside_the_range_or_round_numbers() {
        // A sweep's N, padded range 2.15..20.85.
        assert_eq!(
            tick_values(&(2.15..20.85), Some(&[3.0, 5.0, 10.0, 20.0, 40.0]), 10),
            vec![3.0, 5.0, 10.0, 20.0]
        );
        // Training steps: 12,000 / 10 = 1,200, so steps of 2,000.
        assert_eq!(
            tick_values(&(-600.0..12_600.0), None, 10),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10_000.0, 12_000.0]
        );
        // Given ticks all outside fall back to round numbers: 1.1 / 10 = 0.11, steps of 0.2.
        let t = tick_values(&(-0.05..1.05), Some(&[7.0]), 10);
        assert_eq!(t.len(), 6);
        for (got, want) in t.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{t:?}");
        }
        assert_eq!(tick_values(&(5.0..5.0), None, 10), vec![5.0]);
    }

    #[test]
    fn a_single_value_gets_a_range_with_distinct_ticks() {
        // One validation at step 1,000: 950..1,050, ticked every 10 steps.
        let r = padded_range([1000.0].into_iter());
        assert_eq!(r, 950.0..1050.0);
        let labels: Vec<String> = tick_values(&r, None, 10)
            .into_iter()
            .map(tick_label)
            .collect();
        assert_eq!(labels.first().map(String::as_str), Some("950"));
        assert_eq!(labels.last().map(String::as_str), Some("1050"));
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct, labels);
        assert_eq!(padded_range([0.0, 0.0].into_iter()), -0.5..0.5);
        assert_eq!(padded_range([2.0, 4.0].into_iter()), 1.9..4.1);
        assert_eq!(padded_range(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn tick_labels_drop_needless_decimals() {
        assert_eq!(tick_label(3.0), "3");
        assert_eq!(tick_label(12_000.0), "12000");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
        assert_eq!(tick_label(-1.5), "-1.5");
    }

    #[test]
    fn legend_entries_fill_a_grid_of_equal_columns() {
        // Widest entry 300 px: two columns in 700 px, filled row by row.
        assert_eq!(
            legend_layout(&[100, 300, 250, 80, 120], 700),
            vec![(0, 0), (0, 300), (1, 0), (1, 300), (2, 0)]
        );
        // An entry wider than the strip still gets a column of its own.
        assert_eq!(legend_layout(&[900, 10], 500), vec![(0, 0), (1, 0)]);
        assert!(legend_layout(&[], 500).is_empty());
    }

    #[test]
    fn lines_keep_their_colours_and_faint_series_borrow_the_next_line() {
        let p = vec![(0.0, 1.0, 1.0, 1.0)];
        let series = [
            Series::guide("chance", p.clone()),
            Series::faint(p.clone()),
            Series::line("train", p.clone()),
            Series::line("validation", p.clone()),
            Series::faint(p.clone()),
        ];
        let c = colours(&series);
        assert_eq!(c[0], GUIDE);
        assert_eq!(c[1], PALETTE[0]);
        assert_eq!(c[2], PALETTE[0]);
        assert_eq!(c[3], PALETTE[1]);
        // A faint series with no line after it takes the next unused colour.
        assert_eq!(c[4], PALETTE[2]);
        // Faint and empty series stay out of the legend.
        let mut with_empty = series.to_vec();
        with_empty.push(Series::line("nothing yet", Vec::new()));
        assert_eq!(legend_entries(&with_empty), vec![0, 2, 3]);
    }

    fn count_colour(img: &image::RgbImage, rows: std::ops::Range<u32>, c: RGBColor) -> usize {
        rows.flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 == [c.0, c.1, c.2])
            .count()
    }

    #[test]
    fn the_legend_sits_below_the_plot() {
        let tmp = tempfile::tempdir().unwrap();
        let series = [
            Series::line("a", vec![(3.0, 0.1, 0.1, 0.1), (20.0, 0.1, 0.1, 0.1)]),
            Series::line("b", vec![(3.0, 0.9, 0.9, 0.9), (20.0, 0.9, 0.9, 0.9)]),
        ];
        let png = tmp.path().join("c.png");
        let chart = Chart {
            title: "t",
            x_label: "N",
            y_label: "accuracy",
            series: &series,
            y_range: Some(0.0..1.0),
            x_range: None,
            x_ticks: Some(&[3.0, 20.0]),
        };
        write_chart(&chart, Some(&png), None).unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        // One legend row (20 px + 8) at the bottom holds both swatches; the plot above holds
        // both lines, and the legend row none of the plot.
        let strip = img.height() - 28..img.height();
        assert!(count_colour(&img, strip.clone(), PALETTE[0]) >= 20);
        assert!(count_colour(&img, strip, PALETTE[1]) >= 20);
        assert!(count_colour(&img, 0..img.height() - 28, PALETTE[0]) > 300);
        assert!(count_colour(&img, 0..img.height() - 28, PALETTE[1]) > 300);
    }

    #[test]
    fn curves_without_validation_say_so_instead_of_an_empty_panel() {
        let tmp = tempfile::tempdir().unwrap();
        let loss = [Series::line(
            "train",
            vec![(10.0, 2.0, 2.0, 2.0), (20.0, 1.0, 1.0, 1.0)],
        )];
        let png = tmp.path().join("curves.png");
        let svg = tmp.path().join("curves.svg");
        write_training_curves(
            &png,
            Some(&svg),
            &loss,
            &[Series::line("validation", vec![])],
        )
        .unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        let right = image::imageops::crop_imm(&img, 700, 0, 700, img.height()).to_image();
        // No chart on the right (no axes in black, no line), but the note in grey.
        assert_eq!(count_colour(&right, 0..right.height(), PALETTE[0]), 0);
        assert!(right.pixels().all(|p| p.0 != [0, 0, 0]));
        assert!(right.pixels().any(|p| p.0 != [255, 255, 255]));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("held nothing out"), "{}", &text[..200]);
    }

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
