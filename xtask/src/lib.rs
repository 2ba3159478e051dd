//! Project automation behind `cargo xtask`: fetching and installing the dataset, writing
//! Lake-style runs, sweeping N-way accuracy, redrawing plots, and benchmarks. Library code lives here so it
//! can be tested; `main.rs` only parses arguments.

pub mod bench;
pub mod checksum;
pub mod download;
pub mod extract;
pub mod replot;
pub mod sweep;

use std::path::PathBuf;

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Where `cargo xtask download` puts the dataset by default.
pub fn default_dataset_dir() -> PathBuf {
    project_root().join("data").join("omniglot")
}
