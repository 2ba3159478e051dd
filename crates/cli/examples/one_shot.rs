//! A trained model from Rust: which of the candidate drawings shows the query's character.
//!
//! `cargo run --release -p cli --example one_shot -- QUERY.png CANDIDATE.png [CANDIDATE.png ...]`
//!
//! Uses the shipped model (`models/default.safetensors`, or `$OMNIGLOT_SIAMESE_MODEL`) on the
//! CPU, scored the way `eval` scores it: in the paired turns the model was trained for.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [query, candidates @ ..] = files.as_slice() else {
        bail!("usage: one_shot QUERY.png CANDIDATE.png [CANDIDATE.png ...]");
    };
    if candidates.is_empty() {
        bail!("give at least one candidate after the query");
    }
    let model = std::env::var_os("OMNIGLOT_SIAMESE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.safetensors")
        });
    let turns = train::checkpoint::paired_turns(&model)?;
    let matcher = eval::Matcher::open(&model, &model::Device::Cpu)?.with_turns(turns)?;
    let load = |p: &PathBuf| {
        matcher
            .load_image(p)
            .with_context(|| format!("cannot use {}", p.display()))
    };
    let query_image = load(query)?;
    let candidate_images = candidates.iter().map(load).collect::<Result<Vec<_>>>()?;
    let choice = matcher.classify(&query_image, &candidate_images)?;
    for (i, (path, logit)) in candidates.iter().zip(&choice.logits).enumerate() {
        let mark = if i == choice.index { "  <- chosen" } else { "" };
        println!("{logit:>8.3}  {}{mark}", path.display());
    }
    if choice.tied {
        println!("(tied with another candidate: the first was chosen)");
    }
    Ok(())
}
