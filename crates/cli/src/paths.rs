//! Default locations, resolved against the working folder first and the project folder second,
//! so commands work from the project root and from anywhere inside it.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

fn project_root() -> PathBuf {
    // crates/cli -> project root
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn resolve(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    let there = project_root().join(relative);
    if there.exists() { there } else { here }
}

/// `$OMNIGLOT_DIR`, else `data/omniglot`.
pub fn dataset() -> PathBuf {
    std::env::var_os("OMNIGLOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| resolve("data/omniglot"))
}

/// The shipped model, used when no checkpoint is given.
pub const DEFAULT_MODEL: &str = "models/default.safetensors";

pub fn default_model() -> PathBuf {
    resolve(DEFAULT_MODEL)
}

/// The shipped model, for a command given no checkpoint; an error that says what to do when
/// it is missing.
pub fn shipped_model() -> Result<PathBuf> {
    let p = default_model();
    if !p.is_file() {
        bail!(
            "no --checkpoint given and the shipped model {DEFAULT_MODEL} is missing; train one \
             with `cargo run --release -p cli -- train` and pass --checkpoint \
             runs/NAME/best.safetensors"
        );
    }
    Ok(p)
}
