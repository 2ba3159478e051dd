//! `eval`, `classify` and `verify`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use data::{Protocol, SplitKind};
use eval::Matcher;
use eval::adapt::AdaptConfig;
use eval::explain::{Occlusion, write_explanation};
use eval::plot::{CHOSEN, TRUTH, Tile, WRONG, write_classification};
use eval::session::{Baseline, ScorerChoice, Session};
use model::net::sigmoid;

#[derive(Args, Debug)]
pub struct ScorerArgs {
    /// Model or training checkpoint [default: models/default.safetensors]. `eval` takes
    /// several (comma-separated or repeated) and scores them as an ensemble.
    #[arg(long, value_delimiter = ',')]
    checkpoint: Vec<PathBuf>,
    /// A baseline that needs no training instead: mhd (modified Hausdorff), pixel, or idm
    /// (Keysers et al.'s image distortion model at 32 px with warp 4; idm:SIDE:WARP sets both).
    #[arg(long, conflicts_with = "checkpoint")]
    pub(crate) baseline: Option<Baseline>,
    /// How a baseline sees the drawings: canvas (the whole 105 px canvas), ink-box (a square
    /// around the ink's bounding box), ink-box-stroke (the same, each stroke redrawn with one
    /// pen) or ink-box-moments (the square sized by the ink's standard deviation). A model
    /// always uses the framing it was trained with. [default: ink-box for idm, canvas for the
    /// others]
    #[arg(long)]
    framing: Option<data::Framing>,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Paired turns: score each pair N times (1, 2, 4 or 8), both images turned by the same
    /// multiple of 360/N degrees, and average the model's logits (1: upright only).
    /// [default: 4 for models trained with rotation classes, like the shipped one (chosen on
    /// the validation split), 8 for models trained with eighth turns; 1 for others and for
    /// baselines]
    #[arg(long, value_name = "N")]
    turns: Option<usize>,
    /// Also score each (turned) pair with both images mirrored left-right (twice the work).
    #[arg(long)]
    pub(crate) mirror_pairs: bool,
}

impl ScorerArgs {
    fn choice(&self) -> Result<ScorerChoice> {
        if let Some(b) = self.baseline {
            let framing = self.framing.unwrap_or_else(|| b.default_framing());
            return Ok(ScorerChoice::Baseline(b, framing));
        }
        if self.framing.is_some() {
            bail!(
                "--framing is for baselines (--baseline mhd|pixel); a model frames images the way \
                 it was trained"
            );
        }
        if self.checkpoint.len() > 1 {
            return Ok(ScorerChoice::Ensemble(self.checkpoint.clone()));
        }
        Ok(ScorerChoice::Checkpoint(self.checkpoint_path()?))
    }

    /// The one checkpoint given, or the shipped model.
    pub(crate) fn checkpoint_path(&self) -> Result<PathBuf> {
        match self.checkpoint.as_slice() {
            [p] => Ok(p.clone()),
            [_, _, ..] => bail!("this command takes one --checkpoint (ensembles work with `eval`)"),
            [] => crate::paths::shipped_model(),
        }
    }

    /// `--turns`, or the paired turns that suit the model(s): an ensemble is turned only when
    /// every member was trained with rotation classes.
    pub(crate) fn turns(&self) -> Result<usize> {
        if let Some(n) = self.turns {
            return Ok(n);
        }
        let turns = train::checkpoint::default_turns(&self.choice()?)?;
        if turns > 1 {
            tracing::info!(
                turns,
                "the model was trained with rotation classes, so each pair is scored in {turns} \
                 paired turns (--turns 1 scores upright only)"
            );
        }
        Ok(turns)
    }

    pub(crate) fn device(&self) -> Result<model::Device> {
        Ok(model::parse_device(&self.device)?)
    }

    /// The one model a command on image files uses (never a baseline), looking at pairs as the
    /// flags (or the model's defaults) say, and the file it came from.
    pub(crate) fn file_matcher(&self, command: &str) -> Result<(PathBuf, Matcher)> {
        if self.baseline.is_some() {
            bail!("{command} needs a trained model (--checkpoint), not a baseline");
        }
        self.choice()?; // refuses options only baselines take
        let path = self.checkpoint_path()?;
        let matcher = matcher(&path, &self.device()?, self)?;
        Ok((path, matcher))
    }
}

/// `calibrate` scores pairs with the head alone (its fit is folded into the head); a model
/// trained with local matching scores lower that way, which the user should hear.
pub(crate) fn warn_if_trained_with_local_matching(choice: &ScorerChoice) -> Result<()> {
    if let Some(eval::local::LocalMatch { block, weight }) =
        train::checkpoint::default_local_match(choice)?
    {
        tracing::warn!(
            "the model was trained with local matching, which this command does not apply: \
             it is scored with its head alone (`eval --local-block {block} --local-weight \
             {weight}` scores it as trained)"
        );
    }
    Ok(())
}

pub(crate) fn parse_split(s: &str) -> Result<SplitKind, String> {
    match s {
        "evaluation" | "images_evaluation" => Ok(SplitKind::Evaluation),
        "background" | "images_background" => Ok(SplitKind::Background),
        _ => Err(format!(
            "unknown split `{s}` (expected evaluation or background)"
        )),
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    scorer: ScorerArgs,
    /// random, within-alphabet, or runs (Lake's layout, see --runs-dir).
    #[arg(long, default_value = "within-alphabet")]
    protocol: String,
    /// Candidates per trial (N-way).
    #[arg(long, default_value_t = 20)]
    ways: usize,
    /// Drawings per candidate (K of N-way K-shot): each candidate's K drawings are by K
    /// drawers other than the query's, and a model scores the query against their mean
    /// embedding (a baseline, the mean of their scores). Not with --protocol runs (Lake's runs
    /// are one-shot), --hubness or --adapt.
    #[arg(long, default_value_t = 1)]
    shots: usize,
    /// Trials to sample (--protocol runs scores every trial of the runs instead).
    #[arg(long, default_value_t = 400)]
    trials: usize,
    /// Seed of the sampled trials: the same seed draws the same trials for every model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Split to draw trials from.
    #[arg(long, default_value = "evaluation", value_parser = parse_split)]
    split: SplitKind,
    /// Runs folder for --protocol runs (written by `cargo xtask make-runs`).
    #[arg(long, default_value = "data/runs")]
    runs_dir: PathBuf,
    /// Folder with the splits [default: $OMNIGLOT_DIR or data/omniglot].
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Also write OUT.json, OUT.csv and OUT.md (the JSON and Markdown naming the command and the
    /// model files by their SHA-256), OUT.trials.csv with one row per trial (query,
    /// candidates, scores, choice, margin) for finding the errors, and OUT.png and OUT.svg:
    /// the accuracy per alphabet (per run for --protocol runs; past 60 runs, how many runs
    /// scored each accuracy) with 95% intervals, beside the overall figure.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only these alphabets (comma-separated), e.g. the validation alphabets with
    /// `--split background`; `stratified` stands for the 6 alphabets of the hard validation split.
    #[arg(long, value_delimiter = ',')]
    alphabets: Vec<String>,
    /// Test-time augmentation: average each embedding over the image and four 2-pixel shifts.
    #[arg(long)]
    tta: bool,
    /// Hubness correction: lower each candidate's score by BETA times its mean similarity to
    /// its 3 nearest fellow candidates (0: off; 0.25 was chosen on the validation split).
    #[arg(long, value_name = "BETA", default_value_t = 0.0)]
    hubness: f32,
    /// Support-set adaptation: before scoring a trial, take STEPS gradient steps that rescale
    /// the head's weights so that distorted copies of each candidate pick their own candidate
    /// (0: off). Uses the trial's candidates only.
    #[arg(long, value_name = "STEPS", default_value_t = 0)]
    adapt: usize,
    /// Adaptation: distorted copies per candidate.
    #[arg(long, default_value_t = AdaptConfig::default().views)]
    adapt_views: usize,
    /// Adaptation: step size on the log-scales of the head's weights.
    #[arg(long, default_value_t = AdaptConfig::default().lr)]
    adapt_lr: f32,
    /// Adaptation: penalty on the log-scales, pulling back to the trained head.
    #[arg(long, default_value_t = AdaptConfig::default().l2)]
    adapt_l2: f32,
    /// Adaptation: fit with each copy compared with each candidate in the same paired turns
    /// (and mirror images) as the query, not upright only.
    #[arg(long)]
    adapt_in_views: bool,
    /// Normalise the network's batch-norm layers, for each trial, with the statistics of its
    /// candidates (in every paired turn) instead of the running statistics of training; each
    /// trial is then embedded on its own. Not with --tta or --adapt.
    #[arg(long, conflicts_with_all = ["tta", "adapt"])]
    support_stats: bool,
    /// Local matching: add W times the mean best cosine similarity between the two drawings'
    /// positions on the feature maps after --local-block conv blocks (each position matched to
    /// the most similar one of the other drawing) to the model's logit (0: off).
    /// Default: the term a model trained with `train --local-weight` was trained with, off
    /// otherwise.
    #[arg(
        long,
        value_name = "W",
        allow_negative_numbers = true,
        conflicts_with = "support_stats"
    )]
    local_weight: Option<f32>,
    /// Local matching: the conv block whose output maps are matched (1 = the first; default:
    /// the trained term's block, else 3).
    #[arg(long, value_name = "BLOCK")]
    local_block: Option<usize>,
}

impl EvalArgs {
    /// `--local-weight` and `--local-block`, or the term a single model was trained with; the
    /// scorer turns a weight of 0 off.
    fn local_match(&self, choice: &ScorerChoice) -> Result<Option<eval::local::LocalMatch>> {
        let trained = train::checkpoint::default_local_match(choice)?;
        let block = self.local_block.or(trained.map(|t| t.block)).unwrap_or(3);
        let weight = match (self.local_weight, trained) {
            (Some(w), _) => w,
            (None, Some(t)) => {
                tracing::info!(
                    block,
                    weight = t.weight,
                    "the model was trained with local matching, so it is scored with it \
                     (--local-weight 0 scores with the head alone)"
                );
                t.weight
            }
            (None, None) => 0.0,
        };
        Ok(Some(eval::local::LocalMatch { block, weight }))
    }

    fn adaptation(&self) -> AdaptConfig {
        AdaptConfig {
            views: self.adapt_views,
            steps: self.adapt,
            lr: self.adapt_lr,
            l2: self.adapt_l2,
            in_views: self.adapt_in_views,
            ..AdaptConfig::default()
        }
    }
}

/// What `eval --out PREFIX` writes, so that `--out x.json` means the prefix `x`.
const OUT_EXTENSIONS: &[&str] = &["json", "csv", "md", "png", "svg"];

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.adapt_in_views && a.adapt == 0 {
        bail!(
            "--adapt-in-views changes how the support-set adaptation is fitted, which is off; \
             turn it on with --adapt STEPS (50 was chosen on the validation split)"
        );
    }
    let choice = a.scorer.choice()?;
    let device = a.scorer.device()?;
    let dataset = a.dataset.clone().unwrap_or_else(crate::paths::dataset);
    // The same scoring options whether trials are sampled or read from Lake's runs.
    let local = a.local_match(&choice)?;
    let configure = |session: Session| -> Result<Session> {
        Ok(session
            .with_tta(a.tta)?
            .with_turns(a.scorer.turns()?)?
            .with_mirrored_pairs(a.scorer.mirror_pairs)?
            .with_hubness(a.hubness)?
            .with_adaptation(a.adaptation())?
            .with_support_statistics(a.support_stats)?
            .with_local_match(local)?)
    };
    let (report, results, trials) = if a.protocol == "runs" {
        if a.shots != 1 {
            bail!(
                "Lake's runs are one-shot: --shots {} needs --protocol random or within-alphabet",
                a.shots
            );
        }
        let mut session = configure(Session::for_runs(&choice, &device)?)?;
        let (report, results) = session.runs(&a.runs_dir)?;
        (report, results, session.store)
    } else {
        let protocol: Protocol = a.protocol.parse().map_err(anyhow::Error::msg)?;
        let mut session = configure(Session::open(&choice, &dataset, a.split, &device)?)?;
        let scored = restrict_to_alphabets(&mut session, &a.alphabets)?;
        let (mut report, results) =
            session.sampled_shots(protocol, a.ways, a.shots, a.trials, a.seed)?;
        let seen = train::checkpoint::seen_alphabets(&choice, &session.store, a.split, &scored);
        report.warnings.extend(seen.map(|s| s.to_string()));
        (report, results, session.store)
    };
    print!("{}", report.to_markdown());
    println!("({:.1} s)", report.seconds);
    if let Some(out) = &a.out {
        let mut report = report;
        report.provenance = Some(eval::report::Provenance::new(
            std::env::args().collect(),
            choice.model_files(),
        )?);
        for (ext, text) in [
            ("json", report.to_json()),
            ("csv", report.to_csv()),
            ("md", report.to_markdown()),
            ("trials.csv", eval::report::trials_csv(&trials, &results)),
        ] {
            let path = eval::report::output_path(out, OUT_EXTENSIONS, ext);
            crate::write_file(&path, &text)?;
        }
        let figure = |ext| eval::report::output_path(out, OUT_EXTENSIONS, ext);
        eval::group_plot::write_group_accuracies(
            &report,
            Some(&figure("png")),
            Some(&figure("svg")),
        )?;
    }
    Ok(())
}

/// Restricts `session` to the `--alphabets` asked for (names or group names such as
/// `stratified`; none: every alphabet of the split) and returns the alphabets it scores, for
/// `checkpoint::seen_alphabets`.
pub(crate) fn restrict_to_alphabets(
    session: &mut Session,
    requested: &[String],
) -> Result<Vec<String>> {
    let names = data::split::expand_alphabet_names(requested);
    if names.is_empty() {
        return Ok(session
            .store
            .alphabets()
            .iter()
            .map(|x| x.name.clone())
            .collect());
    }
    session.restrict_to_alphabets(&names)?;
    Ok(names)
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("files").args(["query", "candidates"]).multiple(true)))]
pub struct ClassifyArgs {
    #[command(flatten)]
    scorer: ScorerArgs,
    /// A query image file (with --candidates) instead of a sampled trial.
    #[arg(long, requires = "candidates")]
    query: Option<PathBuf>,
    /// Candidate image files, in order (a folder stands for the PNG and JPEG files under it,
    /// sorted by path).
    #[arg(long, num_args = 1.., requires = "query")]
    candidates: Vec<PathBuf>,
    /// For files: the index (0-based) of the correct candidate, if known.
    #[arg(long)]
    truth: Option<usize>,
    /// For a sampled trial: random or within-alphabet.
    #[arg(long, default_value = "within-alphabet")]
    protocol: Protocol,
    /// For a sampled trial: candidates (N-way).
    #[arg(long, default_value_t = 20)]
    ways: usize,
    /// For a sampled trial: drawings per candidate (see `eval --shots`), drawn as a grid in
    /// the candidate's tile; a candidate's logit is the query's against the drawings' mean
    /// embedding, and its p(same) that logit's sigmoid.
    #[arg(long, default_value_t = 1)]
    shots: usize,
    /// Which sampled trial (its seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// For a sampled trial: the split it is drawn from.
    #[arg(long, default_value = "evaluation", value_parser = parse_split)]
    split: SplitKind,
    /// Folder with the splits [default: $OMNIGLOT_DIR or data/omniglot].
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "classify.png")]
    out: PathBuf,
}

pub fn classify(a: ClassifyArgs) -> Result<()> {
    let choice = a.scorer.choice()?;
    let device = a.scorer.device()?;
    if let Some(query) = &a.query {
        if a.shots != 1 {
            bail!(
                "--shots is for sampled trials; to match your files against several examples \
                 of each candidate use `recognize --support DIR`"
            );
        }
        return classify_files(&a, &choice, &device, query);
    }
    let dataset = a.dataset.clone().unwrap_or_else(crate::paths::dataset);
    let mut session = Session::open(&choice, &dataset, a.split, &device)?
        .with_turns(a.scorer.turns()?)?
        .with_mirrored_pairs(a.scorer.mirror_pairs)?
        .with_local_match(train::checkpoint::default_local_match(&choice)?)?;
    let (trial_report, results) = session.sampled_shots(a.protocol, a.ways, a.shots, 1, a.seed)?;
    let r = &results[0];
    let store = &session.store;
    let side = store.side();
    let mut images = TrialImages {
        query: store.image_f32(r.trial.query),
        query_side: side,
        candidates: Vec::with_capacity(r.trial.ways()),
        candidate_side: side,
    };
    let mut names = Vec::with_capacity(r.trial.ways());
    for drawings in r.trial.supports() {
        // A K-shot candidate's drawings share its tile.
        let pixels: Vec<Vec<f32>> = drawings.iter().map(|&c| store.image_f32(c)).collect();
        let views: Vec<&[f32]> = pixels.iter().map(Vec::as_slice).collect();
        let (tile, tile_side) = eval::plot::mosaic(&views, side);
        images.candidates.push(tile);
        images.candidate_side = tile_side;
        names.push(describe_drawings(store, drawings));
    }
    let title = format!(
        "{} | {} {} | query {} | {}",
        session.scorer_name(),
        trial_report.ways_and_shots(),
        a.protocol,
        store.describe(r.trial.query),
        if r.correct { "correct" } else { "wrong" }
    );
    report(
        &a.out,
        &title,
        &images,
        &names,
        &r.scores,
        Some(r.trial.answer),
    )?;
    // As `eval` says of a whole sample: a trial on characters the model trained on shows
    // memory, not one-shot recognition.
    let mut alphabets: Vec<String> = Vec::new();
    for &id in std::iter::once(&r.trial.query).chain(&r.trial.candidates) {
        let name = &store.alphabets()[store.alphabet_of(id) as usize].name;
        if !alphabets.contains(name) {
            alphabets.push(name.clone());
        }
    }
    if let Some(seen) = train::checkpoint::seen_alphabets(&choice, store, a.split, &alphabets) {
        println!(
            "Warning: the model was trained on {} of this trial's {} alphabets ({}), so it has \
             seen these characters before: the trial shows memory, not one-shot recognition.",
            seen.seen.len(),
            alphabets.len(),
            seen.seen.join(", ")
        );
    }
    Ok(())
}

fn classify_files(
    a: &ClassifyArgs,
    choice: &ScorerChoice,
    device: &model::Device,
    query: &Path,
) -> Result<()> {
    let ScorerChoice::Checkpoint(path) = choice else {
        bail!(
            "classifying image files needs a model (--checkpoint); baselines work on sampled trials"
        );
    };
    let candidate_files = crate::files::image_files_in_order(&a.candidates)?;
    if let Some(t) = a.truth.filter(|&t| t >= candidate_files.len()) {
        bail!(
            "--truth {t} is not a candidate index (0-{})",
            candidate_files.len() - 1
        );
    }
    let matcher = matcher(path, device, &a.scorer)?;
    let load = |p: &Path| {
        matcher
            .load_image(p)
            .with_context(|| format!("cannot use {}", p.display()))
    };
    let q = load(query)?;
    let cands: Vec<Vec<f32>> = candidate_files
        .iter()
        .map(|p| load(p))
        .collect::<Result<_>>()?;
    let scores = matcher.logits(&q, &cands)?;
    let name = matcher.name()?;
    let side = matcher.input_side();
    let names: Vec<String> = candidate_files
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    // The file name, not the path: the title must fit above a few tiles.
    let shown = query
        .file_name()
        .unwrap_or(query.as_os_str())
        .to_string_lossy();
    let title = format!("{name} | query {shown}");
    let images = TrialImages {
        query: q,
        query_side: side,
        candidates: cands,
        candidate_side: side,
    };
    report(&a.out, &title, &images, &names, &scores, a.truth)
}

/// `Alphabet/character/drawer05`, or for several drawings of one character
/// `Alphabet/character/drawers 05+12+17`.
fn describe_drawings(store: &data::ImageStore, drawings: &[data::ImageId]) -> String {
    let first = store.describe(drawings[0]);
    if drawings.len() == 1 {
        return first;
    }
    let character = first.rsplit_once('/').map_or(first.as_str(), |(c, _)| c);
    let drawers: Vec<String> = drawings
        .iter()
        .map(|&d| format!("{:02}", store.drawer_of(d)))
        .collect();
    format!("{character}/drawers {}", drawers.join("+"))
}

/// The pictures of one trial: the query and a square image per candidate.
struct TrialImages {
    query: Vec<f32>,
    query_side: usize,
    candidates: Vec<Vec<f32>>,
    candidate_side: usize,
}

fn report(
    out: &Path,
    title: &str,
    images: &TrialImages,
    names: &[String],
    scores: &[f32],
    truth: Option<usize>,
) -> Result<()> {
    let (chosen, tied) = eval::evaluate::choose(scores);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    println!("| rank | candidate | logit | p(same) | |\n|---|---|---|---|---|");
    for (rank, &i) in order.iter().enumerate() {
        let mark = match (i == chosen, Some(i) == truth) {
            (true, true) => "chosen, correct",
            (true, false) => "chosen",
            (false, true) => "true answer",
            _ => "",
        };
        println!(
            "| {} | {} | {:.3} | {:.3} | {mark} |",
            rank + 1,
            names[i],
            scores[i],
            sigmoid(scores[i])
        );
    }
    if tied {
        println!("(the top score is tied; the first candidate among the tied ones was chosen)");
    }
    let tiles: Vec<Tile> = images
        .candidates
        .iter()
        .enumerate()
        .map(|(i, p)| Tile {
            pixels: p,
            side: images.candidate_side,
            caption: format!("#{i} p={:.2}", sigmoid(scores[i])),
            border: match (i == chosen, Some(i) == truth) {
                (true, true) | (false, true) => Some(TRUTH),
                (true, false) if truth.is_some() => Some(WRONG),
                (true, false) => Some(CHOSEN),
                _ => None,
            },
        })
        .collect();
    let q = Tile {
        pixels: &images.query,
        side: images.query_side,
        caption: "query".into(),
        border: None,
    };
    write_classification(out, title, &q, &tiles)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} (green: true answer, red: a wrong choice, blue: choice when the truth is unknown)",
        out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    scorer: ScorerArgs,
    /// First image (any size and format; resized and binarised like the training data).
    a: PathBuf,
    /// Second image.
    b: PathBuf,
    /// Also draw where the score comes from, as a PNG: each patch of ink blanked in turn and
    /// the pair scored again (occlusion); red ink lowers the score when blanked (evidence of
    /// one character), blue raises it.
    #[arg(long, value_name = "PNG")]
    explain: Option<PathBuf>,
}

pub fn verify(a: VerifyArgs) -> Result<()> {
    let (path, matcher) = a.scorer.file_matcher("verify")?;
    let first = matcher
        .load_image(&a.a)
        .with_context(|| format!("cannot use {}", a.a.display()))?;
    let second = matcher
        .load_image(&a.b)
        .with_context(|| format!("cannot use {}", a.b.display()))?;
    let views = (matcher.turns(), a.scorer.mirror_pairs);
    let logit = matcher.logits(&first, std::slice::from_ref(&second))?[0];
    let p = sigmoid(logit);
    let turns = match views {
        (1, false) => String::new(),
        (n, false) => format!(", mean of {n} paired turns"),
        (n, true) => format!(", mean of {n} paired turns and their mirror images"),
    };
    println!(
        "p(same character) = {p:.4} (logit {logit:.3}{turns}): {}",
        if p >= 0.5 { "same" } else { "different" }
    );
    if let Some(note) = calibration_note(&path)? {
        println!("{note}");
    }
    if let Some(out) = &a.explain {
        let occlusion = Occlusion::for_side(matcher.input_side());
        let e = matcher.explain_pair(&first, &second, occlusion)?;
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        write_explanation(
            out,
            &format!(
                "p(same character) = {p:.3}, logit {:.2}{turns}; patch {} px of {}",
                e.logit, occlusion.patch, e.side
            ),
            (&name(&a.a), &first),
            (&name(&a.b), &second),
            &e,
        )
        .with_context(|| format!("cannot write {}", out.display()))?;
        println!(
            "wrote {} (largest change of the logit from blanking one patch: {:.2})",
            out.display(),
            e.scale()
        );
    }
    Ok(())
}

/// The model in `path`, looking at pairs as the flags (or the model's defaults) say.
fn matcher(path: &Path, device: &model::Device, scorer: &ScorerArgs) -> Result<Matcher> {
    let local = train::checkpoint::local_match(path)?;
    Ok(Matcher::open(path, device)?
        .with_turns(scorer.turns()?)?
        .with_mirrored_pairs(scorer.mirror_pairs)
        .with_local_match(local)?)
}

/// What `verify`'s probability rests on: the model's calibration, or a warning when training
/// never fitted `sigmoid(logit)` to same/different labels and nobody calibrated it since.
fn calibration_note(path: &Path) -> Result<Option<String>> {
    let metadata = model::io::read_metadata(path)?;
    let record = eval::calibration::Record::from_metadata(&metadata)
        .with_context(|| format!("in {}", path.display()))?;
    if let Some(record) = record {
        return Ok(Some(format!("({})", record.describe())));
    }
    let uncalibrated = metadata
        .get("config")
        .and_then(|text| train::TrainConfig::from_toml(text).ok())
        .is_some_and(|config| !config.fits_pair_probabilities());
    Ok(uncalibrated.then(|| {
        "warning: this model was trained to rank candidates only (no pair loss), so its \
         probability is not calibrated and 0.5 need not separate same from different; \
         `calibrate --out` writes a calibrated copy"
            .to_string()
    }))
}
