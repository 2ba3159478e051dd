use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use data::Protocol;
use data::SplitKind;
use eval::session::ScorerChoice;
use xtask::download::{self, OFFICIAL_URL_BASE, Options, Source};
use xtask::extract::Expect;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project automation for omniglot-siamese"
)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch, verify and extract the Omniglot images into data/omniglot.
    Download {
        /// Take the zips from this folder instead of the network (verified against its
        /// SHA256SUMS when present, else the official md5).
        #[arg(long, env = "OMNIGLOT_MIRROR")]
        from: Option<PathBuf>,
        /// Where the splits are extracted [default: <project>/data/omniglot].
        #[arg(long, env = "OMNIGLOT_DIR")]
        dest: Option<PathBuf>,
        /// Reinstall even if the splits are already there.
        #[arg(long)]
        force: bool,
        /// Base URL of the official zips.
        #[arg(long, default_value = OFFICIAL_URL_BASE, hide = true)]
        url_base: String,
    },
    /// Write Lake-style one-shot runs (20-way, within one alphabet, two drawers) from
    /// images_evaluation.
    MakeRuns {
        /// Where to write the runs (must not exist) [default: <project>/data/runs].
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Runs to write (each `ways` trials: one query per character).
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Characters per run, all of one alphabet (N-way).
        #[arg(long, default_value_t = 20)]
        ways: usize,
        /// Seed of the alphabets, characters and drawers picked.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Folder with the splits [default: $OMNIGLOT_DIR or <project>/data/omniglot].
        #[arg(long, env = "OMNIGLOT_DIR")]
        dataset: Option<PathBuf>,
    },
    /// Accuracy against N (3, 5, 10, 20) for a checkpoint and the baselines, random and
    /// within-alphabet: table, CSV, JSON and a plot.
    SweepWays {
        /// Model to sweep [default: the shipped models/default.safetensors, else train one].
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Train this preset first and sweep the result.
        #[arg(long)]
        train: Option<String>,
        /// Comma-separated N.
        #[arg(long, value_delimiter = ',', default_value = "3,5,10,20")]
        ways: Vec<usize>,
        /// Drawings per candidate (see `eval --shots`): K-shot instead of one-shot trials.
        #[arg(long, default_value_t = 1)]
        shots: usize,
        /// Trial protocols (comma-separated): random, within-alphabet.
        #[arg(long, value_delimiter = ',', default_value = "random,within-alphabet")]
        protocols: Vec<Protocol>,
        /// Baselines to include (comma-separated: mhd, pixel, idm; `none` for none), each
        /// framed as `eval --baseline` frames it by default.
        #[arg(long, value_delimiter = ',', default_value = "mhd,pixel,idm")]
        baselines: Vec<String>,
        /// Trials per point (N and protocol).
        #[arg(long, default_value_t = 400)]
        trials: usize,
        /// Seed of the sampled trials (the same for the model and the baselines).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Folder with the splits [default: $OMNIGLOT_DIR or <project>/data/omniglot].
        #[arg(long, env = "OMNIGLOT_DIR")]
        dataset: Option<PathBuf>,
        /// Where the results go.
        #[arg(long, default_value = "results/sweep")]
        out_dir: PathBuf,
        /// auto, cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Test-time augmentation for the model (see `eval --tta`).
        #[arg(long)]
        tta: bool,
        /// Paired turns for the model (see `eval --turns`) [default: 4 for models trained with
        /// rotation classes, like the shipped one; 1 otherwise].
        #[arg(long, value_name = "N")]
        turns: Option<usize>,
        /// Mirrored pairs for the model (see `eval --mirror-pairs`).
        #[arg(long)]
        mirror_pairs: bool,
        /// Hubness correction for the model (see `eval --hubness`; 0: off).
        #[arg(long, value_name = "BETA", default_value_t = 0.0)]
        hubness: f32,
        /// Support-set adaptation for the model (see `eval --adapt`; 0: off).
        #[arg(long, value_name = "STEPS", default_value_t = 0)]
        adapt: usize,
    },
    /// Redraw plots from what a run or a sweep left (no training or scoring): a sweep's
    /// folder (sweep.json), a run's folder (metrics.jsonl), a metrics file, or the JSON of
    /// `calibrate --plot`.
    Replot {
        /// Folders or files, e.g. results/sweep runs/NAME models/validation-metrics.jsonl
        /// results/calibration/shipped-evaluation.json.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Training and embedding throughput and peak memory of both architectures.
    Bench {
        /// Architectures to measure (comma-separated): koch-105, conv4-28.
        #[arg(long, value_delimiter = ',', default_value = "koch-105,conv4-28")]
        models: Vec<String>,
        /// Pairs per batch (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "32,128")]
        batches: Vec<usize>,
        /// Untimed steps before the timed ones.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed steps (the figure is their median).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Also write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One benchmark configuration (used by `bench`, one process each).
    #[command(hide = true)]
    BenchOne {
        model: String,
        batch: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,xtask=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Download {
            from,
            dest,
            force,
            url_base,
        } => {
            let source = match from {
                Some(dir) => Source::Mirror(dir),
                None => Source::Http { base: url_base },
            };
            let opts = Options {
                source,
                dest: dest.unwrap_or_else(xtask::default_dataset_dir),
                force,
                expect: Expect::Official,
                splits: SplitKind::ALL.to_vec(),
                attempts: 4,
            };
            for summary in download::run(&opts)? {
                println!("{summary}");
            }
        }
        Command::MakeRuns {
            dest,
            count,
            ways,
            seed,
            dataset,
        } => {
            let dataset = dataset.unwrap_or_else(xtask::default_dataset_dir);
            let dest = dest.unwrap_or_else(|| xtask::project_root().join("data").join("runs"));
            let index = data::SplitIndex::scan_split(&dataset, SplitKind::Evaluation)?;
            data::runs::write_runs(&index, &dest, count, ways, seed)?;
            println!("wrote {count} runs of {ways} ways to {}", dest.display());
        }
        Command::SweepWays {
            checkpoint,
            train,
            ways,
            shots,
            protocols,
            baselines,
            trials,
            seed,
            dataset,
            out_dir,
            device,
            tta,
            turns,
            mirror_pairs,
            hubness,
            adapt,
        } => {
            let dataset = dataset.unwrap_or_else(xtask::default_dataset_dir);
            let checkpoint = match (checkpoint, train) {
                (Some(c), None) => c,
                (None, Some(preset)) => train_preset(&preset, &dataset)?,
                (Some(_), Some(_)) => anyhow::bail!("give --checkpoint or --train, not both"),
                (None, None) => {
                    let shipped = xtask::project_root()
                        .join("models")
                        .join("default.safetensors");
                    if shipped.is_file() {
                        shipped
                    } else {
                        eprintln!(
                            "no checkpoint given and no shipped model: training preset `{}` first",
                            SHIPPED_PRESET
                        );
                        train_preset(SHIPPED_PRESET, &dataset)?
                    }
                }
            };
            let mut scorers = vec![ScorerChoice::Checkpoint(checkpoint)];
            for b in baselines.iter().filter(|b| b.as_str() != "none") {
                let b: eval::session::Baseline = b.parse().map_err(anyhow::Error::msg)?;
                scorers.push(ScorerChoice::Baseline(b, b.default_framing()));
            }
            let opts = xtask::sweep::SweepOptions {
                scorers,
                ways,
                shots,
                protocols,
                trials,
                seed,
                dataset,
                split: SplitKind::Evaluation,
                out_dir,
                device: model::parse_device(&device)?,
                tta,
                turns,
                mirror_pairs,
                hubness,
                adapt,
            };
            xtask::sweep::run(&opts)?;
        }
        Command::Replot { paths } => {
            for path in &paths {
                for written in xtask::replot::replot(path)? {
                    println!("wrote {}", written.display());
                }
            }
        }
        Command::Bench {
            models,
            batches,
            warmup,
            reps,
            json,
        } => {
            let rows = xtask::bench::run_all(&models, &batches, warmup, reps)?;
            println!("{}", xtask::bench::table(&rows));
            let text = serde_json::to_string_pretty(&rows)?;
            println!("{text}");
            if let Some(path) = json {
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::BenchOne {
            model,
            batch,
            warmup,
            reps,
        } => {
            let row = xtask::bench::measure(&model, batch, warmup, reps)?;
            println!("{}", serde_json::to_string(&row)?);
        }
    }
    Ok(())
}

/// The preset of the shipped model.
const SHIPPED_PRESET: &str = train::presets::SHIPPED;

fn train_preset(preset: &str, dataset: &std::path::Path) -> Result<PathBuf> {
    let mut config = train::presets::preset(preset).with_context(|| {
        format!(
            "unknown preset `{preset}` (available: {})",
            train::presets::NAMES.join(", ")
        )
    })?;
    config.dataset = dataset.to_path_buf();
    config.out_dir = xtask::project_root().join("runs");
    config.name = format!("sweep-{preset}");
    let resume = config
        .run_dir()
        .join("last.safetensors")
        .is_file()
        .then(|| config.run_dir());
    let opts = train::trainer::RunOptions {
        resume,
        progress: true,
        ..Default::default()
    };
    let summary = train::Trainer::run(config, &opts)?;
    Ok(summary.run_dir.join("best.safetensors"))
}
