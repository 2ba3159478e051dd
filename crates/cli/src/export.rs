//! `export`: turn a training checkpoint into a model file for shipping: the network (and its
//! batch-norm buffers) with the architecture, config and training state in the metadata, but
//! without the optimizer's buffers, which are two thirds of a checkpoint's size.

use std::path::PathBuf;

use anyhow::{Context, Result};
use model::Device;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Training checkpoint or model file (e.g. runs/full/last.safetensors).
    pub checkpoint: PathBuf,
    /// Model file to write (e.g. models/default.safetensors).
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        anyhow::bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let (net, extras) = model::io::load(&args.checkpoint, &Device::Cpu)?;
    let dropped = extras.tensors.len();
    let kept = model::io::Extras {
        tensors: Default::default(),
        metadata: extras.metadata,
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    model::io::save(&net, &args.out, &kept)?;
    println!(
        "wrote {} ({}, {} parameters; dropped {dropped} optimizer tensors)",
        args.out.display(),
        net.arch().name,
        net.vars().iter().map(|v| v.elem_count()).sum::<usize>()
    );
    Ok(())
}
