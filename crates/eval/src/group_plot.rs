//! A report's accuracy per alphabet (or per run) as a figure: each group's accuracy with its
//! 95% interval, best at the top, beside the overall accuracy and its interval, so that which
//! alphabets carry the errors, and whether they differ by more than their intervals, is seen
//! at a glance. Past [`NAMED_GROUPS`] groups (400 Lake-style runs, say) names would overlap,
//! and the figure becomes a histogram: how many groups scored each accuracy.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{EvalError, Result};
use crate::plot::{plot_err, render_png, render_svg};
use crate::report::{Group, Report};

/// The most groups drawn one row each.
pub const NAMED_GROUPS: usize = 60;

/// Histogram bins, in accuracy points.
pub const BIN_POINTS: f64 = 5.0;

const ROW: i32 = 22;
const TOP: i32 = 74;
const PLOT_WIDTH: i32 = 560;
const RIGHT: i32 = 170;
const AXIS: i32 = 46;
const LINE: RGBColor = RGBColor(31, 119, 180);
const BAND: RGBColor = RGBColor(198, 219, 239);
const GRID: RGBColor = RGBColor(225, 225, 225);
const WARNING: RGBColor = RGBColor(200, 30, 30);

/// The groups a report breaks its accuracy down by: alphabets, or Lake's runs (whose report
/// has no alphabets), and what one is called.
pub fn groups(report: &Report) -> (&[Group], &'static str) {
    if report.per_alphabet.is_empty() {
        (&report.per_run, "run")
    } else {
        (&report.per_alphabet, "alphabet")
    }
}

/// The groups top to bottom: highest accuracy first, ties by name.
pub fn ranked(groups: &[Group]) -> Vec<&Group> {
    let mut out: Vec<&Group> = groups.iter().collect();
    out.sort_by(|a, b| {
        b.accuracy
            .accuracy
            .total_cmp(&a.accuracy.accuracy)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// How many groups scored each accuracy, in bins of [`BIN_POINTS`] points: `(centre in
/// points, count)` for the bins from 0 to 100 points, each accuracy in the bin of the nearest
/// centre (so the 20-trial runs' 95%, 90%, ... each have a bin of their own).
pub fn histogram(groups: &[Group]) -> Vec<(f64, usize)> {
    let bins = (100.0 / BIN_POINTS).round() as usize + 1;
    let mut counts = vec![0usize; bins];
    for g in groups {
        let points = 100.0 * g.accuracy.accuracy.clamp(0.0, 1.0);
        counts[((points / BIN_POINTS).round() as usize).min(bins - 1)] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * BIN_POINTS, c))
        .collect()
}

/// The left end of the accuracy axis, in points: a multiple of 5 below every interval.
fn axis_start(groups: &[&Group], overall_low: f64) -> f64 {
    let lowest = groups
        .iter()
        .map(|g| g.accuracy.ci_low)
        .fold(overall_low, f64::min);
    ((100.0 * lowest - 1.0) / 5.0).floor().max(0.0) * 5.0
}

fn names_width(groups: &[&Group]) -> i32 {
    let longest = groups
        .iter()
        .map(|g| shown_name(&g.name).chars().count())
        .max()
        .unwrap_or(0) as i32;
    20 + 7 * longest
}

/// A group's name as drawn: cut with an ellipsis past 34 characters.
fn shown_name(name: &str) -> String {
    const LONGEST: usize = 34;
    if name.chars().count() <= LONGEST {
        name.to_string()
    } else {
        name.chars().take(LONGEST - 1).chain(['…']).collect()
    }
}

/// The figure's heading: what was scored, where and how.
pub fn title(report: &Report) -> String {
    format!(
        "{} on {} ({}, {})",
        report.scorer,
        report.split,
        report.ways_and_shots(),
        report.protocol
    )
}

/// A report's first warning up to its first colon, for a line under the caption: the whole
/// warning is in the report.
fn warning_line(report: &Report) -> Option<String> {
    let w = report.warnings.first()?;
    let head = w.split(':').next().unwrap_or(w);
    Some(format!("Warning (the report says more): {head}"))
}

/// Writes the figure of `report`'s groups as PNG and/or SVG.
pub fn write_group_accuracies(
    report: &Report,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> Result<()> {
    let (all, kind) = groups(report);
    let title = title(report);
    if all.is_empty() {
        return Err(EvalError::Invalid(
            "the report has no trials to break down".into(),
        ));
    }
    // Wide enough for the heading lines too (about 8 px a character at 17 px, 6 at 12 px).
    let text_width = [
        8 * title.chars().count(),
        6 * caption(report, kind).chars().count(),
        6 * warning_line(report).map_or(0, |w| w.chars().count()),
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as i32
        + 20;
    let size = if all.len() <= NAMED_GROUPS {
        let rows = ranked(all);
        let width = names_width(&rows) + PLOT_WIDTH + RIGHT;
        let height = TOP + ROW * rows.len() as i32 + AXIS + 10;
        (width.max(text_width) as u32, height as u32)
    } else {
        (900.max(text_width) as u32, 600)
    };
    if let Some(p) = png {
        render_png(p, size, |a| draw_figure(a, report, &title, kind))?;
    }
    if let Some(p) = svg {
        render_svg(p, size, |a| draw_figure(a, report, &title, kind))?;
    }
    Ok(())
}

/// The heading lines above the plot (title, caption, warning), then the plot below `TOP`.
fn draw_figure<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
    title: &str,
    kind: &str,
) -> Result<()> {
    area.draw(&Text::new(title.to_string(), (10, 8), ("sans-serif", 17)))
        .map_err(plot_err)?;
    area.draw(&Text::new(
        caption(report, kind),
        (10, 34),
        ("sans-serif", 12),
    ))
    .map_err(plot_err)?;
    if let Some(w) = warning_line(report) {
        let style = TextStyle::from(("sans-serif", 12).into_font()).color(&WARNING);
        area.draw(&Text::new(w, (10, 52), style))
            .map_err(plot_err)?;
    }
    let (all, _) = groups(report);
    if all.len() <= NAMED_GROUPS {
        draw_rows(area, report, all)
    } else {
        draw_histogram(area, report, all, kind)
    }
}

fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The line under the heading: what the marks mean.
fn caption(report: &Report, kind: &str) -> String {
    let (all, _) = groups(report);
    let (low, high) = band(report);
    let o = &report.overall;
    let marks = if all.len() <= NAMED_GROUPS {
        format!("accuracy per {kind}, best first; bars: 95% Wilson intervals")
    } else {
        format!(
            "{kind}s by accuracy ({} of them, bins of {BIN_POINTS:.0} points)",
            all.len()
        )
    };
    let interval = if report.across_runs.is_some() {
        "resampling whole runs"
    } else {
        "Wilson"
    };
    format!(
        "{marks}; line and band: all {} trials, {} [{}, {}] (95%, {interval})",
        o.total,
        percent(o.accuracy),
        percent(low),
        percent(high)
    )
}

/// The overall 95% interval drawn as the band: for Lake's runs the one from resampling whole
/// runs, which the report prefers to the Wilson interval (a run's trials are not independent).
fn band(report: &Report) -> (f64, f64) {
    match &report.across_runs {
        Some(r) => (r.ci_low, r.ci_high),
        None => (report.overall.ci_low, report.overall.ci_high),
    }
}

fn draw_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
    all: &[Group],
) -> Result<()> {
    let rows = ranked(all);
    let overall = &report.overall;
    let left = names_width(&rows);
    let (low, high) = band(report);
    let start = axis_start(&rows, low);
    let x = |v: f64| left + ((100.0 * v - start) / (100.0 - start) * PLOT_WIDTH as f64) as i32;
    let bottom = TOP + ROW * rows.len() as i32;

    // Grid and axis: a tick every 5 points (10 when the axis is long).
    let step = if 100.0 - start > 50.0 { 10.0 } else { 5.0 };
    let mut tick = start;
    while tick <= 100.0 + 1e-9 {
        let px = x(tick / 100.0);
        area.draw(&PathElement::new(
            vec![(px, TOP - 6), (px, bottom)],
            GRID.stroke_width(1),
        ))
        .map_err(plot_err)?;
        let style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(format!("{tick:.0}"), (px, bottom + 6), style))
            .map_err(plot_err)?;
        tick += step;
    }
    let style =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(
        "accuracy (%)",
        (left + PLOT_WIDTH / 2, bottom + 24),
        style,
    ))
    .map_err(plot_err)?;

    // The overall interval as a band behind the rows, its accuracy as a line.
    area.draw(&Rectangle::new(
        [(x(low), TOP - 6), (x(high), bottom)],
        BAND.filled(),
    ))
    .map_err(plot_err)?;
    area.draw(&PathElement::new(
        vec![
            (x(overall.accuracy), TOP - 6),
            (x(overall.accuracy), bottom),
        ],
        LINE.stroke_width(2),
    ))
    .map_err(plot_err)?;

    for (i, g) in rows.iter().enumerate() {
        let y = TOP + ROW * i as i32 + ROW / 2;
        let a = &g.accuracy;
        let name = shown_name(&g.name);
        let label = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        area.draw(&Text::new(name, (left - 10, y), label))
            .map_err(plot_err)?;
        area.draw(&PathElement::new(
            vec![(x(a.ci_low), y), (x(a.ci_high), y)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
        for end in [a.ci_low, a.ci_high] {
            area.draw(&PathElement::new(
                vec![(x(end), y - 4), (x(end), y + 4)],
                BLACK.stroke_width(1),
            ))
            .map_err(plot_err)?;
        }
        area.draw(&Circle::new((x(a.accuracy), y), 4, BLACK.filled()))
            .map_err(plot_err)?;
        let value =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(
            format!("{} ({}/{})", percent(a.accuracy), a.correct, a.total),
            (left + PLOT_WIDTH + 18, y),
            value,
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

fn draw_histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &Report,
    all: &[Group],
    kind: &str,
) -> Result<()> {
    let bins = histogram(all);
    let overall = &report.overall;
    let (low, high) = band(report);
    let lowest = all.iter().map(|g| g.accuracy.accuracy).fold(low, f64::min);
    let start =
        ((100.0 * lowest / BIN_POINTS).round() - 1.0).max(0.0) * BIN_POINTS - BIN_POINTS / 2.0;
    let top = bins.iter().map(|b| b.1).max().unwrap_or(1) as f64 * 1.1;
    let (_, lower) = area.split_vertically(TOP as u32);
    let mut chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(start..100.0 + BIN_POINTS / 2.0, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("accuracy (%)")
        .y_desc(format!("{kind}s"))
        .y_labels((top as usize).clamp(2, 10))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(100.0 * low, 0.0), (100.0 * high, top)],
            BAND.mix(0.8).filled(),
        )))
        .map_err(plot_err)?;
    chart
        .draw_series(bins.iter().filter(|b| b.1 > 0).map(|&(centre, count)| {
            let half = 0.42 * BIN_POINTS;
            Rectangle::new(
                [(centre - half, 0.0), (centre + half, count as f64)],
                RGBColor(90, 90, 90).filled(),
            )
        }))
        .map_err(plot_err)?;
    let mid = 100.0 * overall.accuracy;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(mid, 0.0), (mid, top)],
            LINE.stroke_width(2),
        )))
        .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Accuracy, RunInterval};

    fn report(per_alphabet: Vec<Group>, per_run: Vec<Group>, warnings: Vec<String>) -> Report {
        let (correct, total) = per_alphabet
            .iter()
            .chain(&per_run)
            .fold((0, 0), |(c, t), g| {
                (c + g.accuracy.correct, t + g.accuracy.total)
            });
        let across_runs = (!per_run.is_empty()).then(|| RunInterval::of(&per_run));
        Report {
            scorer: "siamese (tiny)".into(),
            protocol: if per_run.is_empty() {
                "within-alphabet"
            } else {
                "runs"
            }
            .into(),
            ways: 20,
            shots: 1,
            split: "images_evaluation".into(),
            seed: Some(0),
            overall: Accuracy::from_counts(correct, total, 0),
            per_alphabet,
            per_run,
            across_runs,
            seconds: 0.0,
            warnings,
            provenance: None,
        }
    }

    #[test]
    fn the_figure_names_every_group_and_states_the_overall_figure() {
        let dir = tempfile::tempdir().unwrap();
        let r = report(
            vec![group("Bengali", 17, 20), group("Syriac_(Serto)", 19, 20)],
            vec![],
            vec!["the model was trained on 2 of the 2 alphabets: that is memory".into()],
        );
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        write_group_accuracies(&r, Some(&png), Some(&svg)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for needle in [
            "siamese (tiny) on images_evaluation (20-way, within-alphabet)",
            "accuracy per alphabet, best first",
            "all 40 trials, 90.0% [",
            "(95%, Wilson)",
            "Bengali",
            "Syriac_(Serto)",
            "85.0% (17/20)",
            "95.0% (19/20)",
            "Warning (the report says more): the model was trained on 2 of the 2 alphabets",
        ] {
            assert!(text.contains(needle), "{needle} missing from the SVG");
        }
        // The colon ends what the figure repeats of the warning.
        assert!(!text.contains("that is memory"));
        // The best group is drawn above the other.
        assert!(text.find("Syriac_(Serto)").unwrap() < text.find("Bengali").unwrap());
        let img = image::open(&png).unwrap();
        assert!(
            img.width() >= 700 && img.height() > 100,
            "{}x{}",
            img.width(),
            img.height()
        );
    }

    #[test]
    fn past_sixty_runs_the_figure_counts_runs_by_accuracy() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<Group> = (0..61)
            .map(|i| group(&format!("run{i:02}"), 15 + i % 6, 20))
            .collect();
        let r = report(vec![], runs, vec![]);
        let svg = dir.path().join("runs.svg");
        write_group_accuracies(&r, None, Some(&svg)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("runs by accuracy (61 of them, bins of 5 points)"));
        assert!(text.contains("(95%, resampling whole runs)"));
        assert!(!text.contains("run07"), "past 60 runs no run is named");
        assert!(!dir.path().join("runs.png").exists());
        // Sixty runs are still named one by one.
        let r = report(vec![], r.per_run[..60].to_vec(), vec![]);
        write_group_accuracies(&r, None, Some(&svg)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("accuracy per run, best first") && text.contains("run07"));
    }

    #[test]
    fn a_report_without_trials_is_refused() {
        let r = report(vec![], vec![], vec![]);
        let err = write_group_accuracies(&r, None, None).unwrap_err();
        assert!(err.to_string().contains("no trials"), "{err}");
    }

    fn group(name: &str, correct: usize, total: usize) -> Group {
        Group {
            name: name.into(),
            accuracy: Accuracy::from_counts(correct, total, 0),
        }
    }

    #[test]
    fn rows_run_from_the_best_group_down_with_ties_by_name() {
        let gs = [
            group("Bengali", 18, 20),
            group("Atlantean", 20, 20),
            group("Angelic", 18, 20),
            group("Oriya", 11, 20),
        ];
        let names: Vec<&str> = ranked(&gs).iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["Atlantean", "Angelic", "Bengali", "Oriya"]);
    }

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        let long = "Blackfoot_(Canadian_Aboriginal_Syllabics)";
        assert_eq!(shown_name(long), "Blackfoot_(Canadian_Aboriginal_Sy…");
        assert_eq!(shown_name(long).chars().count(), 34);
        assert_eq!(
            shown_name("Old_Church_Slavonic_(Cyrillic)"),
            "Old_Church_Slavonic_(Cyrillic)"
        );
    }

    #[test]
    fn each_accuracy_falls_in_the_bin_of_its_nearest_centre() {
        // 20-trial runs: 20/20, 19/20 twice, 17/20; and a 41/50 (82%) that rounds to 80.
        let gs = [
            group("run01", 20, 20),
            group("run02", 19, 20),
            group("run03", 19, 20),
            group("run04", 17, 20),
            group("run05", 41, 50),
        ];
        let bins = histogram(&gs);
        assert_eq!(bins.len(), 21);
        assert_eq!(bins[0], (0.0, 0));
        let count = |centre: f64| bins.iter().find(|b| b.0 == centre).unwrap().1;
        assert_eq!(count(100.0), 1);
        assert_eq!(count(95.0), 2);
        assert_eq!(count(85.0), 1);
        assert_eq!(count(80.0), 1);
        assert_eq!(bins.iter().map(|b| b.1).sum::<usize>(), gs.len());
    }

    #[test]
    fn the_axis_starts_at_a_multiple_of_five_below_every_interval() {
        let gs = [group("a", 19, 20), group("b", 15, 20)];
        let rows: Vec<&Group> = gs.iter().collect();
        let low = gs[1].accuracy.ci_low; // 53.1% for 15 of 20
        assert!((0.53..0.54).contains(&low), "{low}");
        assert_eq!(axis_start(&rows, 0.9), 50.0);
        // Never below 0.
        let none = [group("c", 0, 20)];
        assert_eq!(axis_start(&none.iter().collect::<Vec<_>>(), 0.5), 0.0);
    }
}
