//! `embed`: a trained network's embeddings of image files, as CSV, for nearest-neighbour
//! search, clustering or plots outside this project.

use std::path::PathBuf;

use anyhow::{Context, Result};
use eval::Matcher;

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Drawings (PNG or JPEG files), or folders searched (recursively) for them.
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Model or training checkpoint [default: models/default.safetensors].
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// CSV to write: a header `path,e0,...`, then one row per image, in path order.
    #[arg(long, default_value = "embeddings.csv")]
    pub out: PathBuf,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    let files = crate::files::image_files(&a.paths)?;
    let checkpoint = match &a.checkpoint {
        Some(p) => p.clone(),
        None => crate::paths::shipped_model()?,
    };
    let matcher = Matcher::open(&checkpoint, &model::parse_device(&a.device)?)?;
    let images = files
        .iter()
        .map(|p| {
            matcher
                .load_image(p)
                .with_context(|| format!("cannot use {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let embedded = matcher.embed(&images)?;
    let dim = embedded.first().map_or(0, Vec::len);
    let mut csv = String::from("path");
    (0..dim).for_each(|i| csv.push_str(&format!(",e{i}")));
    csv.push('\n');
    for (path, e) in files.iter().zip(&embedded) {
        csv.push_str(&eval::report::csv_field(&path.display().to_string()));
        e.iter().for_each(|v| csv.push_str(&format!(",{v}")));
        csv.push('\n');
    }
    crate::write_file(&a.out, &csv)?;
    // What the numbers are for: distances between them mean what the head makes of them.
    println!(
        "wrote {} embeddings of {dim} values to {} (upright; the model's head compares two: \
         `eval::Matcher` in Rust)",
        files.len(),
        a.out.display()
    );
    Ok(())
}
