//! `compare`: two scorers on the same trials, from the trials CSVs `eval --out` writes.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct CompareArgs {
    /// A's trials (`PREFIX.trials.csv` of `eval --out`).
    pub a: PathBuf,
    /// B's trials, on the same trials (the same --protocol, --ways, --shots, --trials, --seed
    /// and split, or the same runs).
    pub b: PathBuf,
    /// Also write OUT.md and OUT.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let read = |p: &PathBuf| {
        eval::compare::read_trials(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let comparison = eval::compare::compare(&read(&a.a)?, &read(&a.b)?)?;
    let (name_a, name_b) = (a.a.display().to_string(), a.b.display().to_string());
    let text = comparison.to_markdown(&name_a, &name_b);
    print!("{text}");
    if let Some(out) = &a.out {
        let at = |ext| eval::report::output_path(out, &["md", "json"], ext);
        // The trials files by hash, as eval's reports name model files: a comparison can be
        // traced to the files it read.
        let file = |p: &PathBuf| -> Result<serde_json::Value> {
            Ok(serde_json::json!({
                "path": p.display().to_string(),
                "sha256": eval::report::sha256_file(p)?,
            }))
        };
        let json = serde_json::json!({
            "a": file(&a.a)?,
            "b": file(&a.b)?,
            "command": std::env::args().skip(1).collect::<Vec<_>>(),
            "version": env!("CARGO_PKG_VERSION"),
            "comparison": comparison,
        });
        crate::write_file(&at("md"), &text)?;
        crate::write_file(&at("json"), &format!("{json:#}\n"))?;
    }
    Ok(())
}
