//! `embed`: a trained network's embeddings of image files, as CSV, for nearest-neighbour
//! search, clustering or plots outside this project.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use eval::Matcher;

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// PNG files, or folders searched (recursively) for them.
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
    let files = png_files(&a.paths)?;
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
        csv.push_str(&quote(&path.display().to_string()));
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

/// The PNG files named or found under the folders named, sorted, each once.
fn png_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = files.len();
            collect_pngs(p, &mut files)?;
            if files.len() == before {
                bail!("no .png files under {}", p.display());
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            bail!("{} is neither a file nor a folder", p.display());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_pngs(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_pngs(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
