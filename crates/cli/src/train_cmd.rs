//! `train`: flags over a preset or a config file, then the training loop with a progress bar
//! and Ctrl-C handling.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use data::{AffineConfig, Protocol};
use model::{Arch, Init};
use train::config::Objective;
use train::optim::OptimizerConfig;
use train::presets;
use train::schedule::Schedule;
use train::trainer::{Outcome, RunOptions};
use train::{TrainConfig, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Start from a named recipe: reference (default), koch, conv4, ...
    #[arg(long)]
    preset: Option<String>,
    /// Start from a config file (TOML, as saved in a run folder's config.toml).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (its config.toml wins).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Run name; the run folder is OUT_DIR/NAME.
    #[arg(long)]
    name: Option<String>,
    /// Folder holding run folders [default: runs].
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Folder with images_background/ [default: $OMNIGLOT_DIR or data/omniglot].
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long)]
    device: Option<String>,
    /// Architecture: koch (105x105 reference), conv4 (28x28), conv4-SIDE.
    #[arg(long)]
    arch: Option<String>,
    /// What the head weighs per embedding dimension: l1 (|a - b|, Koch et al.) or squared-l2
    /// ((a - b)^2).
    #[arg(long)]
    distance: Option<model::Distance>,
    /// Width of a ReLU layer in the head between the comparison and the logit (0: Koch's
    /// weighted sum of the distances).
    #[arg(long)]
    head_hidden: Option<usize>,
    /// The head also compares the products `a_i * b_i` of the two embeddings (true/false).
    #[arg(long)]
    head_products: Option<bool>,
    /// What the embedding passes through before the head: none, sigmoid, relu, or
    /// signed-sqrt (sign(x) (sqrt(|x| + 0.01) - 0.1), which compresses large activations).
    #[arg(long)]
    embedding_activation: Option<model::Activation>,
    /// How drawings are placed in the input: canvas (the whole 105 px canvas), ink-box (a
    /// square around the ink's bounding box, which it fills to 80%; the episodic presets'
    /// choice), ink-box-stroke (ink-box with every stroke thinned to its skeleton and redrawn
    /// 2.5 px wide, so that small and large drawings have one stroke width) or ink-box-moments
    /// (the square sized by the ink's standard deviation, 4.4 of them, instead of its extent,
    /// but never cutting ink off).
    #[arg(long)]
    framing: Option<data::Framing>,
    /// Initialisation: default, koch or kaiming.
    #[arg(long)]
    init: Option<Init>,
    /// Epochs to train: each is --pairs-per-epoch pairs, or --episodes-per-epoch episodes
    /// with the episodes objective.
    #[arg(long)]
    epochs: Option<u64>,
    /// Pairs per epoch (pairs objective).
    #[arg(long)]
    pairs_per_epoch: Option<u64>,
    /// Pairs per batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Training objective: pairs (BCE on same/different pairs) or episodes (N-way softmax).
    #[arg(long)]
    objective: Option<String>,
    /// Episodes: classes per episode.
    #[arg(long)]
    ways: Option<usize>,
    /// Episodes: query drawings per class.
    #[arg(long)]
    queries: Option<usize>,
    /// Episodes: probability that an episode is drawn within one alphabet.
    #[arg(long)]
    within_alphabet: Option<f32>,
    /// Episodes: treat 90-degree rotations of characters as new classes.
    #[arg(long)]
    rotations: Option<bool>,
    /// Episodes: with rotations, each 45-degree turn of a character is a class (8 per
    /// character, scored in 8 paired turns) instead of each 90-degree one.
    #[arg(long)]
    eighth_turns: Option<bool>,
    /// Episodes: treat mirror images of characters (and of their rotations) as new classes.
    #[arg(long)]
    mirrors: Option<bool>,
    /// Episodes: a within-alphabet episode shows every class in one turn, as a test trial
    /// does (an alphabet with fewer characters than --ways fills up from its other turns;
    /// default: turns mixed).
    #[arg(long)]
    within_one_variant: Option<bool>,
    /// Episodes: every support of an episode by one drawer and its queries by another, as in
    /// Lake's test runs (default: any drawers).
    #[arg(long)]
    two_drawers: Option<bool>,
    /// Episodes: probability that a class is virtual, each drawing's ink united with that of
    /// another character of its alphabet by the same drawer (default 0).
    #[arg(long, value_name = "F")]
    overlays: Option<f32>,
    /// Episodes: weight of the balanced pair BCE next to the N-way cross-entropy.
    #[arg(long)]
    pair_weight: Option<f64>,
    /// Episodes: also ask each support which query matches it (needs --queries 1).
    #[arg(long)]
    symmetric: Option<bool>,
    /// Episodes: label smoothing of the cross-entropy, in [0, 1).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Episodes: weight of a cross-entropy over every training class at once (a cosine
    /// classifier on the embedding, trained beside the episodes and not saved with the model;
    /// 0: off).
    #[arg(long, value_name = "W")]
    class_weight: Option<f64>,
    /// Episodes: weight of a linear decoder's cross-entropy against each input image's pixels,
    /// so that the embedding keeps enough to redraw the drawing (trained beside the episodes
    /// and not saved with the model; 0: off).
    #[arg(long, value_name = "W")]
    recon_weight: Option<f64>,
    /// Episodes: add W times the part-by-part similarity of the feature maps after
    /// --local-block conv blocks to every logit in training and validation (0: off); evaluate
    /// the model with the same `eval --local-block B --local-weight W`.
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    local_weight: Option<f64>,
    /// Episodes: the conv block whose feature maps --local-weight matches (1 = the first).
    #[arg(long, value_name = "B")]
    local_block: Option<usize>,
    /// Episodes per optimiser step.
    #[arg(long)]
    episodes_per_step: Option<usize>,
    /// Episodes per epoch.
    #[arg(long)]
    episodes_per_epoch: Option<u64>,
    /// Base learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// adamw or sgd (Koch's momentum SGD).
    #[arg(long)]
    optimizer: Option<String>,
    /// AdamW weight decay, or the L2 penalty for SGD.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// step, cosine, constant or epoch-decay.
    #[arg(long)]
    schedule: Option<String>,
    /// StepLR: steps between decays.
    #[arg(long)]
    step_every: Option<u64>,
    /// StepLR: decay factor.
    #[arg(long)]
    gamma: Option<f64>,
    /// Cosine: warm-up steps.
    #[arg(long)]
    warmup: Option<u64>,
    /// Augmentation: koch, reference or none.
    #[arg(long)]
    augment: Option<String>,
    /// Elastic distortion on top of the augmentation: control points move by up to PX native
    /// pixels (0: off).
    #[arg(long, value_name = "PX")]
    elastic: Option<f32>,
    /// Stroke-width jitter on top of the augmentation: stroke edges move out or in by up to
    /// PX pixels of the input (at most 1; 0: off).
    #[arg(long, value_name = "PX")]
    stroke_jitter: Option<f32>,
    /// Cutout on top of the augmentation: a square F of the input's side, centred anywhere,
    /// is blanked (0: off).
    #[arg(long, value_name = "F")]
    cutout: Option<f32>,
    /// Fraction of negative pairs drawn from one alphabet.
    #[arg(long)]
    same_alphabet_negatives: Option<f32>,
    /// Seed of initialisation, sampling and augmentation (the validation split and trials keep
    /// their own fixed seeds, so runs of several seeds are validated alike).
    #[arg(long)]
    seed: Option<u64>,
    /// Train this many networks (seeds SEED, SEED+1, ...) and merge them into one ensemble.
    #[arg(long)]
    members: Option<usize>,
    /// Held-out validation alphabets: a count, or comma-separated names (`stratified`: the 6
    /// alphabets of the hard validation split, see `data::split::STRATIFIED_VALIDATION`); 0 for
    /// none.
    #[arg(long)]
    val_alphabets: Option<String>,
    /// Alphabets left out of training and validation alike (comma-separated names; `none`
    /// clears the list): a data-scaling run on fewer alphabets, validated on the same ones.
    #[arg(long)]
    exclude_alphabets: Option<String>,
    /// Drawers used for training, e.g. 1-12 or all (validation uses the others).
    #[arg(long)]
    train_drawers: Option<String>,
    /// Candidates per validation trial (N-way).
    #[arg(long)]
    val_ways: Option<usize>,
    /// Validation trials per validation (fixed across the run).
    #[arg(long)]
    val_trials: Option<usize>,
    /// random or within-alphabet.
    #[arg(long)]
    val_protocol: Option<Protocol>,
    /// Validate every N steps (0: every epoch).
    #[arg(long)]
    val_every: Option<u64>,
    /// Also keep a running average of the weights with this decay (e.g. 0.998), written as
    /// `ema.safetensors` in the run folder (0: none).
    #[arg(long, value_name = "DECAY")]
    ema: Option<f64>,
    /// Dropout on the embedding in training: each value is zeroed with probability P and the
    /// rest scaled by 1 / (1 - P); evaluation always uses the whole embedding (0: none).
    #[arg(long, value_name = "P")]
    dropout: Option<f64>,
    /// Sharpness-aware minimisation: take each step's gradient with the weights moved this far
    /// along the first gradient (e.g. 0.05; 0: plain steps). Each step costs two passes.
    #[arg(long, value_name = "RHO")]
    sam: Option<f64>,
    /// Hard-negative episodes: this fraction of the episodes are an anchor class and classes
    /// the network currently scores as most like it (mined every --mining-every steps; 0: off).
    #[arg(long, value_name = "F")]
    hard_negatives: Option<f32>,
    /// Steps between refreshes of the hard-negative neighbour table.
    #[arg(long, value_name = "STEPS")]
    mining_every: Option<u64>,
    /// Score validation trials in N paired turns (1, 2, 4 or 8). From a preset the default is
    /// what `eval` uses for the trained model: 4 with rotation classes (8 with eighth turns),
    /// else 1.
    #[arg(long)]
    val_turns: Option<usize>,
    /// Stop after this many validations without improvement (0: never).
    #[arg(long)]
    patience: Option<u64>,
    /// Write `last.safetensors` every N steps (and always at the end).
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<u64>,
    /// Stop (with a checkpoint, resumable) after this many steps.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Print the resulting configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn build_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        TrainConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else {
        let name = a.preset.as_deref().unwrap_or("reference");
        presets::preset(name).with_context(|| {
            format!(
                "unknown preset `{name}` (available: {})",
                presets::NAMES.join(", ")
            )
        })?
    };
    if a.config.is_none() {
        c.dataset = crate::paths::dataset();
    }
    if let Some(v) = &a.name {
        c.name = v.clone()
    }
    if let Some(v) = &a.out_dir {
        c.out_dir = v.clone()
    }
    if let Some(v) = &a.dataset {
        c.dataset = v.clone()
    }
    if let Some(v) = &a.device {
        c.device = v.clone()
    }
    if let Some(v) = &a.arch {
        c.arch = Arch::preset(v)?;
        c.pairs.side = c.arch.input_side;
    }
    if let Some(v) = a.distance {
        c.arch.distance = v
    }
    if let Some(v) = a.head_hidden {
        c.arch.head.hidden = v
    }
    if let Some(v) = a.head_products {
        c.arch.head.products = v
    }
    if let Some(v) = a.embedding_activation {
        c.arch.embedding_activation = v
    }
    if let Some(v) = a.framing {
        c.arch.framing = v
    }
    if let Some(v) = a.init {
        c.init = v
    }
    if let Some(v) = a.epochs {
        c.epochs = v
    }
    if let Some(v) = a.pairs_per_epoch {
        c.pairs_per_epoch = v
    }
    if let Some(v) = a.batch {
        c.batch = v
    }
    if let Some(v) = a.seed {
        c.seed = v
    }
    if let Some(v) = a.members {
        c.members = v
    }
    if let Some(v) = &a.objective {
        c.objective = match v.as_str() {
            "pairs" => Objective::Pairs,
            "episodes" => match &c.objective {
                Objective::Episodes { .. } => c.objective.clone(),
                Objective::Pairs => Objective::episodes(500),
            },
            _ => bail!("unknown objective `{v}` (expected pairs or episodes)"),
        };
    }
    if let Objective::Episodes {
        ways,
        queries,
        within_alphabet,
        within_one_variant,
        rotations,
        eighth_turns,
        mirrors,
        two_drawers,
        overlays,
        pair_weight,
        symmetric,
        label_smoothing,
        class_weight,
        recon_weight,
        local_block,
        local_weight,
        per_step,
        per_epoch,
    } = &mut c.objective
    {
        if let Some(v) = a.ways {
            *ways = v
        }
        if let Some(v) = a.queries {
            *queries = v
        }
        if let Some(v) = a.within_alphabet {
            *within_alphabet = v
        }
        if let Some(v) = a.within_one_variant {
            *within_one_variant = v
        }
        if let Some(v) = a.rotations {
            *rotations = v
        }
        if let Some(v) = a.eighth_turns {
            *eighth_turns = v
        }
        if let Some(v) = a.mirrors {
            *mirrors = v
        }
        if let Some(v) = a.two_drawers {
            *two_drawers = v
        }
        if let Some(v) = a.overlays {
            *overlays = v
        }
        if let Some(v) = a.pair_weight {
            *pair_weight = v
        }
        if let Some(v) = a.symmetric {
            *symmetric = v
        }
        if let Some(v) = a.label_smoothing {
            *label_smoothing = v
        }
        if let Some(v) = a.class_weight {
            *class_weight = v
        }
        if let Some(v) = a.recon_weight {
            *recon_weight = v
        }
        if let Some(v) = a.local_block {
            *local_block = v
        }
        if let Some(v) = a.local_weight {
            *local_weight = v
        }
        if let Some(v) = a.episodes_per_step {
            *per_step = v
        }
        if let Some(v) = a.episodes_per_epoch {
            *per_epoch = v
        }
    } else if a.ways.is_some()
        || a.queries.is_some()
        || a.episodes_per_epoch.is_some()
        || a.class_weight.is_some()
        || a.recon_weight.is_some()
        || a.local_weight.is_some()
    {
        bail!(
            "--ways, --queries, --class-weight, --recon-weight, --local-weight and \
             --episodes-per-* apply to `--objective episodes`"
        );
    }
    if let Some(v) = &a.optimizer {
        let lr = c.optimizer.lr();
        c.optimizer = match v.as_str() {
            "adamw" => OptimizerConfig::default(),
            "sgd" => OptimizerConfig::koch_sgd(),
            _ => bail!("unknown optimizer `{v}` (expected adamw or sgd)"),
        };
        c.optimizer.set_lr(lr);
    }
    if let Some(v) = a.lr {
        c.optimizer.set_lr(v)
    }
    if let Some(v) = a.weight_decay {
        match &mut c.optimizer {
            OptimizerConfig::Adamw { weight_decay, .. } => *weight_decay = v,
            OptimizerConfig::Sgd { l2, .. } => *l2 = v,
        }
    }
    if let Some(v) = &a.schedule {
        c.schedule = match v.as_str() {
            "step" => Schedule::default(),
            "cosine" => Schedule::Cosine {
                warmup: 0,
                min_factor: 0.0,
            },
            "constant" => Schedule::Constant,
            "epoch-decay" => Schedule::EpochDecay { decay: 0.01 },
            _ => bail!("unknown schedule `{v}` (expected step, cosine, constant or epoch-decay)"),
        };
    }
    match &mut c.schedule {
        Schedule::Step { every, gamma } => {
            if let Some(v) = a.step_every {
                *every = v
            }
            if let Some(v) = a.gamma {
                *gamma = v
            }
        }
        Schedule::Cosine { warmup, .. } => {
            if let Some(v) = a.warmup {
                *warmup = v
            }
        }
        _ => {}
    }
    if let Some(v) = &a.augment {
        c.pairs.augment = match v.as_str() {
            "none" | "off" => None,
            name => Some(AffineConfig::preset(name).with_context(|| {
                format!("unknown augmentation `{name}` (expected koch, reference or none)")
            })?),
        };
    }
    // Options layered on the augmentation: setting one without an augmentation is an error
    // unless it is 0 (off).
    type Field = fn(&mut AffineConfig) -> &mut f32;
    let layered: [(&str, Option<f32>, Field); 3] = [
        ("--elastic", a.elastic, |aug| &mut aug.elastic_px),
        ("--stroke-jitter", a.stroke_jitter, |aug| &mut aug.stroke_px),
        ("--cutout", a.cutout, |aug| &mut aug.erase),
    ];
    for (flag, value, field) in layered {
        let Some(v) = value else { continue };
        match c.pairs.augment.as_mut() {
            Some(aug) => *field(aug) = v,
            None if v == 0.0 => {}
            None => bail!("{flag} needs an augmentation (--augment koch or reference)"),
        }
    }
    if let Some(v) = a.same_alphabet_negatives {
        c.pairs.same_alphabet_negatives = v
    }
    if let Some(v) = &a.val_alphabets {
        match v.trim().parse::<usize>() {
            Ok(n) => {
                c.validation.alphabets = n;
                c.validation.alphabet_names.clear();
            }
            Err(_) => {
                let names: Vec<&str> = v.split(',').collect();
                c.validation.alphabet_names = data::split::expand_alphabet_names(&names)
            }
        }
    }
    if let Some(v) = &a.exclude_alphabets {
        c.validation.exclude_alphabets = if v.trim().eq_ignore_ascii_case("none") {
            Vec::new()
        } else {
            let names: Vec<&str> = v.split(',').collect();
            data::split::expand_alphabet_names(&names)
        };
    }
    if let Some(v) = &a.train_drawers {
        c.validation.train_drawers = data::split::parse_drawers(v)?
    }
    if let Some(v) = a.val_ways {
        c.val.ways = v
    }
    if let Some(v) = a.val_trials {
        c.val.trials = v
    }
    if let Some(v) = a.val_protocol {
        c.val.protocol = v
    }
    if let Some(v) = a.val_every {
        c.val.every = v
    }
    match a.val_turns {
        Some(v) => c.val.turns = v,
        // A config file says what it means; a preset follows the objective the flags left.
        None if a.config.is_none() => c.val.turns = c.paired_turns(),
        None => {}
    }
    if let Some(v) = a.patience {
        c.patience = v
    }
    if let Some(v) = a.ema {
        c.ema = v
    }
    if let Some(v) = a.dropout {
        c.dropout = v
    }
    if let Some(v) = a.sam {
        c.sam = v
    }
    if let Some(v) = a.hard_negatives {
        c.hard_negatives.fraction = v;
    }
    if let Some(v) = a.mining_every {
        c.hard_negatives.every = v;
    }
    if let Some(v) = a.checkpoint_every {
        c.checkpoint_every = v
    }
    c.validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(c)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = if args.resume.is_some() {
        // The run's own config wins; only the device can change.
        let mut c = TrainConfig::default();
        if let Some(d) = &args.device {
            c.device = d.clone()
        }
        c
    } else {
        build_config(&args)?
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second Ctrl-C: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!(
                "Ctrl-C: finishing the current step and saving a checkpoint (Ctrl-C again to abort)"
            );
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let opts = RunOptions {
        resume: args.resume.clone(),
        stop,
        stop_after: args.stop_after,
        progress: !args.no_progress,
    };
    let params = config.arch.parameter_count()?;
    tracing::info!(arch = %config.arch.name, params, steps = config.total_steps(), "training");
    let ranks_only = !config.fits_pair_probabilities();
    let summary = Trainer::run(config, &opts)?;
    let dir = summary.run_dir.display();
    match summary.outcome {
        Outcome::Finished => println!("finished {} steps", summary.steps),
        Outcome::EarlyStopped => println!(
            "stopped early after {} steps (no validation improvement)",
            summary.steps
        ),
        Outcome::Interrupted => println!(
            "interrupted at step {}; continue with `--resume {dir}`",
            summary.steps
        ),
    }
    if summary.members > 1 && summary.outcome != Outcome::Interrupted {
        let acc = summary
            .best
            .map(|(_, a)| format!(", validation accuracy {:.1}%", 100.0 * a))
            .unwrap_or_default();
        println!(
            "merged {} members into {dir}/best.safetensors{acc}",
            summary.members
        );
    } else if let Some((step, acc)) = summary.best {
        println!(
            "best validation accuracy {:.1}% at step {step}: {dir}/best.safetensors",
            100.0 * acc
        );
    } else if summary.outcome != Outcome::Interrupted {
        println!("no validation split: the final weights are the model, {dir}/best.safetensors");
    }
    println!(
        "{:.0} s, {:.1} {}/s, {:.1}% of step time waiting for data; metrics in {dir}/metrics.jsonl, curves in {dir}/curves.png",
        summary.seconds,
        summary.items_per_s,
        summary.item_name,
        100.0 * summary.data_wait
    );
    if ranks_only && summary.outcome != Outcome::Interrupted {
        println!(
            "trained without a pair loss: N-way results need nothing more, but `verify`'s \
             probability does: `calibrate --checkpoint {dir}/best.safetensors --out FILE` \
             (on validation alphabets where there are some, e.g. --alphabets stratified)"
        );
    }
    Ok(())
}
