//! Finding the image files a command was pointed at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The drawings (PNG or JPEG files) named or found under the folders named, sorted, each
/// once.
pub(crate) fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(images_under(p)?);
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

/// The drawings named, in the order named, each folder replaced by the drawings under it
/// (sorted): for lists whose order means something, such as `classify --candidates` with
/// `--truth`.
pub(crate) fn image_files_in_order(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(images_under(p)?);
        } else {
            // A missing file is reported by whoever reads it, with its reason.
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// The drawings under folder `dir`, sorted; an error if there are none.
fn images_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    collect_images(dir, &mut found)?;
    if found.is_empty() {
        bail!("no PNG or JPEG files under {}", dir.display());
    }
    found.sort();
    Ok(found)
}

pub(crate) fn collect_images(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_images(&path, files)?;
        } else if is_image(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// Whether a file's name says it is a drawing the commands read: `.png`, `.jpg` or `.jpeg`,
/// in any case.
pub(crate) fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["png", "jpg", "jpeg"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}
