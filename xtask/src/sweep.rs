//! `cargo xtask sweep-ways`: accuracy against N for a checkpoint and the baselines, random and
//! within-alphabet, as a Markdown table, CSV, JSON and a plot with 95% intervals.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use data::{Protocol, SplitKind};
use eval::Report;
use eval::adapt::AdaptConfig;
use eval::plot::{Chart, Series, write_chart};
use eval::report::Provenance;
use eval::session::{Baseline, ScorerChoice, Session};
use model::Device;

pub struct SweepOptions {
    pub scorers: Vec<ScorerChoice>,
    pub ways: Vec<usize>,
    /// Drawings per candidate (1: one-shot).
    pub shots: usize,
    pub protocols: Vec<Protocol>,
    pub trials: usize,
    pub seed: u64,
    pub dataset: PathBuf,
    pub split: SplitKind,
    pub out_dir: PathBuf,
    pub device: Device,
    /// Test-time augmentation for the model (see `eval --tta`).
    pub tta: bool,
    /// Paired turns for the model (see `eval --turns`); `None`: the turns that suit each
    /// model (`train::checkpoint::paired_turns`).
    pub turns: Option<usize>,
    /// Mirrored pairs for the model (see `eval --mirror-pairs`).
    pub mirror_pairs: bool,
    /// Hubness correction for the model (see `eval --hubness`; 0: off).
    pub hubness: f32,
    /// Support-set adaptation steps for the model (see `eval --adapt`; 0: off).
    pub adapt: usize,
}

fn label(choice: &ScorerChoice) -> String {
    match choice {
        ScorerChoice::Checkpoint(p) => format!(
            "siamese ({})",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        ScorerChoice::Ensemble(paths) => format!("siamese ensemble of {}", paths.len()),
        ScorerChoice::Baseline(Baseline::Mhd, _) => "modified Hausdorff".into(),
        ScorerChoice::Baseline(Baseline::Pixel, _) => "pixel NN".into(),
        ScorerChoice::Baseline(Baseline::Idm(_), _) => "image distortion model".into(),
    }
}

pub fn run(opts: &SweepOptions) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    for choice in &opts.scorers {
        let model = !matches!(choice, ScorerChoice::Baseline(..));
        let hubness = if model { opts.hubness } else { 0.0 };
        let adapt = AdaptConfig {
            steps: if model { opts.adapt } else { 0 },
            ..AdaptConfig::default()
        };
        let turns = match opts.turns {
            Some(n) => n,
            None => train::checkpoint::default_turns(choice)?,
        };
        // A model trained with local matching is scored with it, as `eval` does by default.
        let local = train::checkpoint::default_local_match(choice)?;
        let mut session = Session::open(choice, &opts.dataset, opts.split, &opts.device)
            .and_then(|s| s.with_tta(opts.tta))
            .and_then(|s| s.with_local_match(local))
            .and_then(|s| s.with_turns(turns))
            .and_then(|s| s.with_mirrored_pairs(opts.mirror_pairs))
            .and_then(|s| s.with_hubness(hubness))
            .and_then(|s| s.with_adaptation(adapt))
            .with_context(|| format!("cannot set up {}", label(choice)))?;
        // Hashed once per scorer, not once per report: every report scores the same files.
        let provenance = Provenance::new(std::env::args().collect(), choice.model_files())?;
        for &protocol in &opts.protocols {
            for &ways in &opts.ways {
                let (mut report, _) =
                    session.sampled_shots(protocol, ways, opts.shots, opts.trials, opts.seed)?;
                report.scorer = label(choice);
                report.provenance = Some(provenance.clone());
                if opts.tta && model {
                    report.scorer.push_str(" + TTA");
                }
                if turns > 1 && model {
                    report.scorer.push_str(&format!(" + {turns} paired turns"));
                }
                if opts.mirror_pairs && model {
                    report.scorer.push_str(" + mirrored pairs");
                }
                if let Some(l) = local {
                    let (block, weight) = (l.block, l.weight);
                    report
                        .scorer
                        .push_str(&format!(" + local match on block {block} x {weight}"));
                }
                if hubness > 0.0 {
                    report.scorer.push_str(&format!(" + hubness {hubness}"));
                }
                if adapt.enabled() {
                    report
                        .scorer
                        .push_str(&format!(" + adapted ({} steps)", adapt.steps));
                }
                eprintln!(
                    "{} {protocol} {}: {} ({:.1} s)",
                    report.scorer,
                    report.ways_and_shots(),
                    report.overall.display(),
                    report.seconds
                );
                reports.push(report);
            }
        }
    }
    write_outputs(&reports, &opts.out_dir)?;
    Ok(reports)
}

/// `sweep.md`, `sweep.csv`, `sweep.json`, `sweep.png`, `sweep.svg` in `dir`.
pub fn write_outputs(reports: &[Report], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let shots = reports.first().map_or(1, |r| r.shots);
    let mut md = String::new();
    if shots > 1 {
        md.push_str(&format!(
            "{shots}-shot trials: each candidate shows {shots} drawings, by {shots} drawers \
             other than the query's; a model scores the query against their mean embedding, a \
             baseline the mean of their scores.\n\n"
        ));
    }
    md.push_str(
        "| scorer | protocol | N | accuracy | 95% CI | trials |\n|---|---|---|---|---|---|\n",
    );
    let mut csv = String::new();
    for (i, r) in reports.iter().enumerate() {
        let a = &r.overall;
        md.push_str(&format!(
            "| {} | {} | {} | {:.1}% | {:.1}-{:.1}% | {} |\n",
            r.scorer,
            r.protocol,
            r.ways,
            100.0 * a.accuracy,
            100.0 * a.ci_low,
            100.0 * a.ci_high,
            a.total
        ));
        let body = r.to_csv();
        let mut lines = body.lines();
        let header = lines.next().unwrap_or_default();
        if i == 0 {
            csv.push_str(header);
            csv.push('\n');
        }
        // The overall row only: per-alphabet rows live in the JSON.
        if let Some(first) = lines.next() {
            csv.push_str(first);
            csv.push('\n');
        }
    }
    // Which weights and which command made the table: each model file once, by its hash.
    let mut models: Vec<&eval::report::ModelFile> = Vec::new();
    for p in reports.iter().filter_map(|r| r.provenance.as_ref()) {
        for m in &p.models {
            if !models.contains(&m) {
                models.push(m);
            }
        }
    }
    if let Some(p) = reports.iter().find_map(|r| r.provenance.as_ref()) {
        md.push_str(&format!(
            "\nMade by `{}` (version {}).\n",
            p.command.join(" "),
            p.version
        ));
    }
    for m in models {
        md.push_str(&format!("Model `{}`, SHA-256 `{}`.\n", m.path, m.sha256));
    }
    eval::report::write_text(&dir.join("sweep.md"), &md)?;
    eval::report::write_text(&dir.join("sweep.csv"), &csv)?;
    eval::report::write_text(
        &dir.join("sweep.json"),
        &serde_json::to_string_pretty(reports)?,
    )?;
    write_plot(reports, dir)?;
    println!("{md}");
    println!("wrote {}/sweep.{{md,csv,json,png,svg}}", dir.display());
    Ok(())
}

/// The sweep's plot, `sweep.png` and `sweep.svg` in `dir`: one line per scorer and protocol
/// against N, with 95% bars and the chance line.
pub fn write_plot(reports: &[Report], dir: &Path) -> Result<()> {
    let shots = reports.first().map_or(1, |r| r.shots);
    let mut series: Vec<Series> = Vec::new();
    for r in reports {
        let name = format!("{} - {}", r.scorer, r.protocol);
        let a = &r.overall;
        let point = (r.ways as f64, a.accuracy, a.ci_low, a.ci_high);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(Series::line(name, vec![point])),
        }
    }
    let mut ways: Vec<f64> = reports.iter().map(|r| r.ways as f64).collect();
    ways.sort_by(f64::total_cmp);
    ways.dedup();
    // Chance, 1/N, between the swept N: where a scorer that learnt nothing would be.
    let chance = match (ways.first(), ways.last()) {
        (Some(&lo), Some(&hi)) => (0..=200)
            .map(|k| {
                let n = lo + (hi - lo) * k as f64 / 200.0;
                (n, 1.0 / n, 1.0 / n, 1.0 / n)
            })
            .collect(),
        _ => Vec::new(),
    };
    series.push(Series::guide("chance (1/N)", chance));
    let title = format!(
        "{} accuracy on images_evaluation (95% Wilson intervals)",
        if shots > 1 {
            format!("{shots}-shot")
        } else {
            "One-shot".into()
        }
    );
    let chart = Chart {
        title: &title,
        x_label: "N (ways)",
        y_label: "accuracy",
        series: &series,
        y_range: Some(0.0..1.0),
        x_range: None,
        x_ticks: Some(&ways),
    };
    write_chart(
        &chart,
        Some(&dir.join("sweep.png")),
        Some(&dir.join("sweep.svg")),
    )?;
    Ok(())
}

/// Redraws a sweep's plot from its `sweep.json` (no scoring).
pub fn replot(dir: &Path) -> Result<()> {
    let path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let reports: Vec<Report> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sweep's JSON", path.display()))?;
    anyhow::ensure!(!reports.is_empty(), "{} holds no results", path.display());
    write_plot(&reports, dir)
}
