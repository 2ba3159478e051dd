//! `calibrate`: how far `verify`'s probabilities can be trusted, measured on same/different
//! pairs of a split, and (with `--out`) a model file whose head is Platt-scaled so that they
//! can. The ranking of candidates, hence every N-way result, is unchanged.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use data::{Protocol, SplitKind};
use eval::calibration::{
    AS_GIVEN, METADATA_KEY, Platt, Record, Reliability, SCALED, write_reliability_diagram,
};
use eval::session::{ScorerChoice, Session};
use model::Device;

use crate::classify::{ScorerArgs, parse_split};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    scorer: ScorerArgs,
    /// Split the pairs come from. Calibrate on images the model was not selected on: the
    /// validation alphabets (`--split background --alphabets stratified`) for a screen model;
    /// never fit on images_evaluation, the test split (measure there without --out).
    #[arg(long, default_value = "background", value_parser = parse_split)]
    split: SplitKind,
    /// Only these alphabets (comma-separated); `stratified` stands for the 6 validation
    /// alphabets of the hard validation split.
    #[arg(long, value_delimiter = ',')]
    alphabets: Vec<String>,
    /// Protocols the pairs are drawn under (comma-separated): each 2-way trial gives its query
    /// against a same character by another drawer and against a different character, of the
    /// same alphabet (within-alphabet) or of any (random).
    #[arg(long, value_delimiter = ',', default_value = "within-alphabet,random")]
    protocols: Vec<Protocol>,
    /// 2-way trials per protocol (two pairs each).
    #[arg(long, default_value_t = 2000)]
    trials: usize,
    /// Seed of the sampled pairs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Probability bins of the reliability table and diagram.
    #[arg(long, default_value_t = 10)]
    bins: usize,
    /// Folder with the splits [default: $OMNIGLOT_DIR or data/omniglot].
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Write the reliability diagram as PLOT.png and PLOT.svg and the figures as PLOT.json.
    #[arg(long, value_name = "PLOT")]
    plot: Option<PathBuf>,
    /// Write a model file with the fitted calibration folded into its head (and recorded in
    /// its metadata, which `verify` reports); the optimizer state of a checkpoint is dropped.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(a: CalibrateArgs) -> Result<()> {
    if a.scorer.baseline.is_some() {
        bail!("calibrate needs a trained model (--checkpoint), not a baseline");
    }
    if a.protocols.is_empty() {
        bail!("--protocols needs at least one of within-alphabet and random");
    }
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    if let Some(out) = &a.out {
        if a.split == SplitKind::Evaluation {
            bail!(
                "refusing to fit a calibration on images_evaluation, the test split: fit it on \
                 --split background (the validation alphabets of a screen model) and measure it \
                 on images_evaluation without --out"
            );
        }
        if out.exists() && !a.force {
            bail!("{} exists; pass --force to replace it", out.display());
        }
    }
    let path = a.scorer.checkpoint_path()?;
    let existing = Record::from_metadata(&model::io::read_metadata(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    crate::classify::warn_if_trained_with_local_matching(&ScorerChoice::Checkpoint(path.clone()))?;
    let device = a.scorer.device()?;
    let turns = a.scorer.turns()?;
    let dataset = a.dataset.clone().unwrap_or_else(crate::paths::dataset);
    let mut session = Session::open(
        &ScorerChoice::Checkpoint(path.clone()),
        &dataset,
        a.split,
        &device,
    )?
    .with_turns(turns)?
    .with_mirrored_pairs(a.scorer.mirror_pairs)?;
    let scored = crate::classify::restrict_to_alphabets(&mut session, &a.alphabets)?;
    // The record keeps the alphabets asked for: none means the whole split.
    let alphabets = if a.alphabets.is_empty() {
        Vec::new()
    } else {
        scored.clone()
    };
    let seen = train::checkpoint::seen_alphabets(
        &ScorerChoice::Checkpoint(path.clone()),
        &session.store,
        a.split,
        &scored,
    );
    let mut pairs = Vec::new();
    for &protocol in &a.protocols {
        pairs.extend(
            session
                .scored_pairs(protocol, a.trials, a.seed)
                .with_context(|| format!("cannot draw {protocol} pairs"))?,
        );
    }
    let platt = Platt::fit(&pairs)?;
    let before = Reliability::measure(&pairs, Platt::IDENTITY, a.bins);
    let after = Reliability::measure(&pairs, platt, a.bins);
    let protocols: Vec<String> = a.protocols.iter().map(|p| p.to_string()).collect();
    let scope = if alphabets.is_empty() {
        a.split.dir_name().to_string()
    } else {
        format!("{} alphabets of {}", alphabets.len(), a.split.dir_name())
    };
    println!(
        "{} pairs ({} same) of {scope}, {}, {turns} turn{}",
        before.pairs,
        before.same,
        protocols.join(" + "),
        if turns == 1 { "" } else { "s" }
    );
    // As `eval` warns of a sample: pairs of characters the model trained on are easier than
    // new ones, so the figures flatter it and a fit on them may be overconfident elsewhere.
    if let Some(seen) = &seen {
        println!(
            "Note: {seen}. Seen characters can flatter these figures and the fit: check the \
             fit on images_evaluation (calibrate without --out)."
        );
    }
    if let Some(record) = &existing {
        println!("the model is already {}", record.describe());
    }
    println!("| probabilities | verdict accuracy (p >= 0.5) | log loss | Brier | ECE |");
    println!("|---|---|---|---|---|");
    for (name, r) in [(AS_GIVEN, &before), (SCALED, &after)] {
        println!(
            "| {name} | {:.2}% | {:.4} | {:.4} | {:.4} |",
            100.0 * r.accuracy,
            r.log_loss,
            r.brier,
            r.ece
        );
    }
    println!(
        "Platt scaling: p = sigmoid({:.4} * logit {} {:.4}) (fitted on these pairs; rankings unchanged)",
        platt.scale,
        if platt.offset < 0.0 { "-" } else { "+" },
        platt.offset.abs()
    );
    println!("\n| predicted p | pairs | mean predicted | observed same |");
    println!("|---|---|---|---|");
    for b in before.bins.iter().filter(|b| b.pairs > 0) {
        println!(
            "| {:.1}-{:.1} | {} | {:.3} | {:.3} |",
            b.low,
            b.high,
            b.pairs,
            b.mean_probability,
            b.observed()
        );
    }
    if let Some(plot) = &a.plot {
        let own = ["png", "svg", "json"];
        let at = |ext| eval::report::output_path(plot, &own, ext);
        let (png, svg) = (at("png"), at("svg"));
        let title = format!("Reliability on {scope}");
        write_reliability_diagram(
            &title,
            &[(AS_GIVEN, &before), (SCALED, &after)],
            Some(&png),
            Some(&svg),
        )?;
        let json = serde_json::json!({
            "title": title,
            "checkpoint": path.display().to_string(),
            "sha256": eval::report::sha256_file(&path)?,
            "platt": platt,
            "before": before,
            "after": after,
        });
        crate::write_file(&at("json"), &format!("{json:#}\n"))?;
        println!("wrote {}, {} and .json", png.display(), svg.display());
    }
    if let Some(out) = &a.out {
        let record = Record {
            // The whole rescaling relative to the trained head.
            platt: existing.map_or(platt, |r| r.platt.then(platt)),
            split: a.split.dir_name().to_string(),
            alphabets,
            protocols,
            pairs: before.pairs,
            seed: a.seed,
            turns,
            mirror_pairs: a.scorer.mirror_pairs,
        };
        write_calibrated(&path, out, platt, &record)?;
        println!("wrote {} ({})", out.display(), record.describe());
    }
    Ok(())
}

fn write_calibrated(
    from: &std::path::Path,
    out: &std::path::Path,
    platt: Platt,
    record: &Record,
) -> Result<()> {
    let (net, extras) = model::io::load(from, &Device::Cpu)?;
    net.rescale_head(platt.scale as f32, platt.offset as f32)
        .with_context(|| format!("cannot calibrate {}", from.display()))?;
    let mut metadata = extras.metadata;
    metadata.insert(METADATA_KEY.into(), record.to_json());
    crate::export::save_model(&net, out, metadata)
}
