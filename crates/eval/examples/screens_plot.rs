//! The recipe screens of issue 6 as one picture: for each change screened at full scale, how
//! many more of 6,000 within-alphabet validation trials it got right than the reference, with
//! paired turns (bars; the figure the adoption rule decides on) and upright (dots), against
//! the bar of +60 a change needed.
//!
//!     cargo run --release -p eval --example screens_plot -- results/screens.csv results/screens
//!
//! writes `results/screens.png` and `results/screens.svg`.

use std::path::Path;

use eval::plot::{render_png, render_svg};
use plotters::coord::Shift;
use plotters::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The bar a change's two-seed mean with turns had to reach over the reference.
const BAR: f64 = 60.0;

struct Row {
    change: String,
    with_turns: f64,
    upright: f64,
}

fn read(path: &Path) -> Res<Vec<Row>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("{}: no column {name}", path.display()))
    };
    let (c, t, u) = (col("change")?, col("with_turns")?, col("upright")?);
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let field = |k: usize| {
            f.get(k)
                .ok_or(format!("{}: line {} is short", path.display(), i + 2))
        };
        rows.push(Row {
            change: field(c)?.to_string(),
            with_turns: field(t)?.parse()?,
            upright: field(u)?.parse()?,
        });
    }
    rows.sort_by(|a, b| b.with_turns.total_cmp(&a.with_turns));
    Ok(rows)
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Row],
) -> eval::error::Result<()> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| eval::EvalError::Plot(format!("{e:?}"));
    let n = rows.len();
    let lo = rows
        .iter()
        .flat_map(|r| [r.with_turns, r.upright])
        .fold(-10.0f64, f64::min);
    let hi = rows
        .iter()
        .flat_map(|r| [r.with_turns, r.upright])
        .fold(BAR, f64::max);
    // Row k from the top sits in segment n - 1 - k, its label centred on it.
    let seg = |k: usize| (n - 1 - k) as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Recipe changes screened at full scale: correct trials of 6,000 vs the reference",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d((lo - 10.0)..(hi + 10.0), (0..n as i32 - 1).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => rows
                .get(n.wrapping_sub(*i as usize + 1))
                .map(|r| r.change.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:+.0}"))
        .x_desc("change in correct within-alphabet validation trials (of 6,000)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    let blue = RGBColor(31, 119, 180);
    chart
        .draw_series(rows.iter().enumerate().map(|(k, r)| {
            let (a, b) = (0f64.min(r.with_turns), 0f64.max(r.with_turns));
            let mut bar = Rectangle::new(
                [
                    (a, SegmentValue::Exact(seg(k))),
                    (b, SegmentValue::Exact(seg(k) + 1)),
                ],
                blue.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(e)?
        .label("with paired turns (the rule's figure)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], blue.filled()));
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(rows.iter().enumerate().map(|(k, r)| {
            Circle::new(
                (r.upright, SegmentValue::CenterOf(seg(k))),
                4,
                orange.filled(),
            )
        }))
        .map_err(e)?
        .label("upright")
        .legend(move |(x, y)| Circle::new((x + 6, y), 4, orange.filled()));
    for (x, colour, name) in [(0.0, BLACK, "the reference"), (BAR, RED, "the bar (+60)")] {
        chart
            .draw_series(LineSeries::new(
                [
                    (x, SegmentValue::Exact(0)),
                    (x, SegmentValue::Exact(n as i32)),
                ],
                colour.stroke_width(2),
            ))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, prefix] = args.as_slice() else {
        return Err("usage: screens_plot SCREENS.csv OUT_PREFIX".into());
    };
    let rows = read(Path::new(csv))?;
    let size = (1100, 120 + 26 * rows.len() as u32);
    let own = ["png", "svg"];
    let png = eval::report::output_path(Path::new(prefix), &own, "png");
    let svg = eval::report::output_path(Path::new(prefix), &own, "svg");
    render_png(&png, size, |a| draw(a, &rows))?;
    render_svg(&svg, size, |a| draw(a, &rows))?;
    println!("wrote {} and {}", png.display(), svg.display());
    Ok(())
}
