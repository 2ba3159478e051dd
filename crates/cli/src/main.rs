//! `omniglot-siamese`: train, evaluate and use Siamese networks for one-shot Omniglot
//! recognition. Thin glue over the library crates: argument parsing, logging, progress and
//! Ctrl-C handling live here; everything else is in `data`, `model`, `train` and `eval`.

mod calibrate;
mod classify;
mod compare;
mod embed;
mod export;
mod files;
mod paths;
mod recognize;
mod train_cmd;

use anyhow::{Context, Result};

// Training allocates and frees large buffers every step; mimalloc keeps them mapped instead of
// returning them to the OS (page faults and TLB shootdowns cost ~10% with the system allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "omniglot-siamese",
    version,
    about = "Siamese networks for one-shot Omniglot recognition"
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
    /// Train a network (the PyTorch reference recipe unless told otherwise).
    Train(Box<train_cmd::TrainArgs>),
    /// Measure N-way one-shot accuracy of a checkpoint or a baseline.
    Eval(classify::EvalArgs),
    /// Classify one query among candidates and draw the result as a PNG.
    Classify(classify::ClassifyArgs),
    /// Probability that two images show the same character.
    Verify(classify::VerifyArgs),
    /// How far verify's probabilities can be trusted on same/different pairs of a split, and
    /// (with --out) a model file Platt-scaled so that they can; rankings are unchanged.
    Calibrate(calibrate::CalibrateArgs),
    /// Label drawings by the most alike examples of a labelled support folder (and with
    /// --labelled, measure how often the labels are right).
    Recognize(recognize::RecognizeArgs),
    /// Compare two scorers on the same trials (the trials CSVs of `eval --out`): each one's
    /// accuracy, B - A with its 95% interval, the trials they disagree on and McNemar's test.
    Compare(compare::CompareArgs),
    /// Write a network's embeddings of image files (or folders of them) as CSV.
    Embed(embed::EmbedArgs),
    /// Write a checkpoint's network without its optimizer state (a model file to ship), or
    /// merge several checkpoints into one ensemble network.
    Export(export::ExportArgs),
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,train=info,cli=info",
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
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Train(args) => train_cmd::run(*args),
        Command::Eval(args) => classify::eval(args),
        Command::Classify(args) => classify::classify(args),
        Command::Compare(args) => compare::run(args),
        Command::Verify(args) => classify::verify(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Recognize(args) => recognize::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Export(args) => export::run(args),
    }
}

/// Ends the program quietly when its output pipe closes (`eval | head -n 1`), as `ls` does.
/// Rust ignores SIGPIPE, so `println!` would panic on the closed pipe instead.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; restoring a
    // signal's default disposition has no other effect on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Writes `text` to `path`, creating folders, with the path in any error.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    eval::report::write_text(path, text).with_context(|| format!("cannot write {}", path.display()))
}
