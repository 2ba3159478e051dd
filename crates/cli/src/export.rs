//! `export`: turn a training checkpoint into a model file for shipping: the network (and its
//! batch-norm buffers) with the architecture, config and training state in the metadata, but
//! without the optimizer's buffers, which are two thirds of a checkpoint's size. Several
//! checkpoints are merged into one network that scores as their ensemble.

use std::path::PathBuf;

use anyhow::{Context, Result};
use model::Device;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Training checkpoint or model file (e.g. runs/full/last.safetensors); several of one
    /// architecture are merged into one network whose score is the mean of theirs.
    #[arg(required = true, num_args = 1..)]
    pub checkpoints: Vec<PathBuf>,
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
    let mut nets = Vec::new();
    let mut dropped = 0;
    let mut metadata = None;
    for path in &args.checkpoints {
        let (net, extras) = model::io::load(path, &Device::Cpu)?;
        dropped += extras.tensors.len();
        // The first member's training config and state describe the recipe.
        metadata.get_or_insert(extras.metadata);
        nets.push(net);
    }
    let mut metadata = metadata.unwrap_or_default();
    let net = if nets.len() == 1 {
        nets.remove(0)
    } else {
        let names: Vec<String> = args
            .checkpoints
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        metadata.insert("ensemble_of".into(), names.join(", "));
        model::ensemble::merge(&nets)
            .with_context(|| format!("cannot merge {}", names.join(", ")))?
    };
    save_model(&net, &args.out, metadata)?;
    println!(
        "wrote {} ({}{}, {} parameters; dropped {dropped} optimizer tensors)",
        args.out.display(),
        net.arch().name,
        match net.arch().towers {
            1 => String::new(),
            k => format!(" x {k} towers"),
        },
        net.vars().iter().map(|v| v.elem_count()).sum::<usize>()
    );
    Ok(())
}

/// Writes `net` as a model file: its weights and `metadata`, no optimizer state; the folder is
/// created if needed and the file replaced atomically.
pub(crate) fn save_model(
    net: &model::SiameseNet,
    out: &std::path::Path,
    metadata: std::collections::HashMap<String, String>,
) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let kept = model::io::Extras {
        tensors: Default::default(),
        metadata,
    };
    model::io::save(net, out, &kept)?;
    Ok(())
}
