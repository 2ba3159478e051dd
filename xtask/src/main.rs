use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use data::SplitKind;
use xtask::download::{self, OFFICIAL_URL_BASE, Options, Source};
use xtask::extract::Expect;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project automation for omniglot-siamese")]
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
    }
    Ok(())
}
