//! Safe, atomic extraction of a split zip: every entry is checked to stay inside the
//! destination, the split is extracted into a temporary folder beside it and validated, and
//! only then renamed into place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use data::SplitKind;
use rayon::prelude::*;

/// What a freshly extracted split must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The official release: 30/20 alphabets, 964/659 characters, 20 drawers each.
    Official,
    /// Any well-formed split (tests, subsets).
    WellFormed,
}

/// Unpacks `zip_path` into `dest/<split dir>`, replacing an existing copy only after the new
/// one validated. Returns the installed folder.
pub fn install_split(
    zip_path: &Path,
    kind: SplitKind,
    dest: &Path,
    expect: Expect,
) -> Result<PathBuf> {
    fs::create_dir_all(dest)
        .with_context(|| format!("cannot create destination folder {}", dest.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}-extract-", kind.dir_name()))
        .tempdir_in(dest)
        .with_context(|| format!("cannot write to destination folder {}", dest.display()))?;
    unzip(zip_path, tmp.path())?;
    let extracted = tmp.path().join(kind.dir_name());
    if !extracted.is_dir() {
        bail!(
            "{}: the archive has no top-level folder {}/",
            zip_path.display(),
            kind.dir_name()
        );
    }
    let problems = split_problems(&extracted, kind, expect);
    if !problems.is_empty() {
        bail!(
            "{}: the extracted split is not valid:\n  {}",
            zip_path.display(),
            problems.join("\n  ")
        );
    }
    let final_dir = dest.join(kind.dir_name());
    if final_dir.exists() {
        // Move the old copy aside first so a crash leaves either the old or the new split.
        let old = tmp.path().join(".previous");
        fs::rename(&final_dir, &old)
            .with_context(|| format!("cannot move aside {}", final_dir.display()))?;
    }
    fs::rename(&extracted, &final_dir)
        .with_context(|| format!("cannot move the extracted split to {}", final_dir.display()))?;
    Ok(final_dir)
}

/// Extracts every entry of the zip into `into`, refusing entries that would land outside it
/// (absolute paths, `..`) and symbolic links.
pub fn unzip(zip_path: &Path, into: &Path) -> Result<()> {
    let file =
        fs::File::open(zip_path).with_context(|| format!("cannot open {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| {
        format!(
            "{} is not a readable zip archive (truncated or corrupt download?)",
            zip_path.display()
        )
    })?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .with_context(|| format!("{}: cannot read entry {i}", zip_path.display()))?;
        let name = entry.name().to_string();
        let Some(rel) = entry.enclosed_name() else {
            bail!(
                "{}: refusing entry `{name}`: its path would leave the destination folder",
                zip_path.display()
            );
        };
        if entry.is_symlink() {
            bail!(
                "{}: refusing entry `{name}`: symbolic links are not allowed",
                zip_path.display()
            );
        }
        let out = into.join(rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut f =
            fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
        io::copy(&mut entry, &mut f).with_context(|| {
            format!(
                "{}: entry `{name}` is corrupt or truncated",
                zip_path.display()
            )
        })?;
    }
    Ok(())
}

/// Everything wrong with an extracted split: layout, counts, and PNGs that do not decode at
/// 105x105. Each problem names a path.
pub fn split_problems(dir: &Path, kind: SplitKind, expect: Expect) -> Vec<String> {
    let index = match data::SplitIndex::scan(dir) {
        Ok(i) => i,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    if expect == Expect::Official {
        problems.extend(index.completeness_problems(kind));
    }
    let drawings: Vec<_> = index.drawings().map(|(_, _, d)| d.path.clone()).collect();
    let mut bad: Vec<String> = drawings
        .par_iter()
        .filter_map(|p| {
            data::image_io::read_omniglot_png(p)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    bad.sort();
    problems.extend(bad);
    problems
}
