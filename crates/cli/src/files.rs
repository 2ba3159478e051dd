//! Finding the image files a command was pointed at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The PNG files named or found under the folders named, sorted, each once.
pub(crate) fn png_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
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

pub(crate) fn collect_pngs(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
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
