//! Walks a split folder (`<split>/<Alphabet>/characterNN/<CCCC>_<DD>.png`) into alphabets,
//! characters and drawings, without decoding any image.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The two official splits, with the counts a complete copy must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SplitKind {
    Background,
    Evaluation,
}

impl SplitKind {
    pub const ALL: [SplitKind; 2] = [SplitKind::Background, SplitKind::Evaluation];

    pub fn dir_name(self) -> &'static str {
        match self {
            SplitKind::Background => "images_background",
            SplitKind::Evaluation => "images_evaluation",
        }
    }

    /// (alphabets, characters) in the official release.
    pub fn expected_counts(self) -> (usize, usize) {
        match self {
            SplitKind::Background => (30, 964),
            SplitKind::Evaluation => (20, 659),
        }
    }
}

/// Number of drawers (people) who drew every character.
pub const DRAWERS: u8 = 20;

#[derive(Clone, Debug)]
pub struct Drawing {
    /// 1-based drawer number parsed from the file name (`_DD`).
    pub drawer: u8,
    pub path: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Character {
    pub name: String,
    pub drawings: Vec<Drawing>,
}

#[derive(Clone, Debug)]
pub struct Alphabet {
    pub name: String,
    pub characters: Vec<Character>,
}

/// The file layout of one split, sorted by name so that indices are stable across machines.
#[derive(Clone, Debug)]
pub struct SplitIndex {
    pub root: PathBuf,
    pub alphabets: Vec<Alphabet>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| DataError::io(dir, e))?;
    // Hidden files (`.DS_Store`, editor droppings) are not part of the dataset.
    entries.retain(|e| !e.file_name().to_string_lossy().starts_with('.'));
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Parses `CCCC_DD.png` into the drawer number `DD`.
pub fn parse_drawer(path: &Path) -> Result<u8> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".png").ok_or_else(|| {
        DataError::layout(path, "unexpected file: expected a PNG named CCCC_DD.png")
    })?;
    let (code, drawer) = stem
        .split_once('_')
        .ok_or_else(|| DataError::layout(path, "file name is not of the form CCCC_DD.png"))?;
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DataError::layout(
            path,
            "file name is not of the form CCCC_DD.png",
        ));
    }
    match drawer.parse::<u8>() {
        Ok(d) if (1..=DRAWERS).contains(&d) && drawer.len() == 2 => Ok(d),
        _ => Err(DataError::layout(
            path,
            format!("drawer `{drawer}` is not a number from 01 to {DRAWERS}"),
        )),
    }
}

impl SplitIndex {
    /// Indexes `root` (a folder such as `data/omniglot/images_background`).
    pub fn scan(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(DataError::MissingDataset {
                path: root.to_path_buf(),
            });
        }
        let mut alphabets = Vec::new();
        for a in sorted_entries(root)? {
            let apath = a.path();
            if !apath.is_dir() {
                return Err(DataError::layout(
                    &apath,
                    "unexpected file: expected one folder per alphabet",
                ));
            }
            let mut characters = Vec::new();
            for c in sorted_entries(&apath)? {
                let cpath = c.path();
                if !cpath.is_dir() {
                    return Err(DataError::layout(
                        &cpath,
                        "unexpected file: expected one folder per character",
                    ));
                }
                let mut drawings = Vec::new();
                for f in sorted_entries(&cpath)? {
                    let path = f.path();
                    let drawer = parse_drawer(&path)?;
                    if drawings.iter().any(|d: &Drawing| d.drawer == drawer) {
                        return Err(DataError::layout(
                            &path,
                            format!("a second drawing by drawer {drawer:02}"),
                        ));
                    }
                    drawings.push(Drawing { drawer, path });
                }
                if drawings.is_empty() {
                    return Err(DataError::layout(
                        &cpath,
                        "character folder has no drawings",
                    ));
                }
                drawings.sort_by_key(|d| d.drawer);
                characters.push(Character {
                    name: c.file_name().to_string_lossy().into_owned(),
                    drawings,
                });
            }
            if characters.is_empty() {
                return Err(DataError::layout(
                    &apath,
                    "alphabet folder has no characters",
                ));
            }
            alphabets.push(Alphabet {
                name: a.file_name().to_string_lossy().into_owned(),
                characters,
            });
        }
        if alphabets.is_empty() {
            return Err(DataError::layout(root, "split folder holds no alphabets"));
        }
        Ok(SplitIndex {
            root: root.to_path_buf(),
            alphabets,
        })
    }

    /// Indexes `<dataset_root>/<split dir>`.
    pub fn scan_split(dataset_root: impl AsRef<Path>, kind: SplitKind) -> Result<Self> {
        Self::scan(dataset_root.as_ref().join(kind.dir_name()))
    }

    pub fn num_characters(&self) -> usize {
        self.alphabets.iter().map(|a| a.characters.len()).sum()
    }

    pub fn num_drawings(&self) -> usize {
        self.drawings().count()
    }

    /// Every drawing with its (alphabet, character) position, in index order.
    pub fn drawings(&self) -> impl Iterator<Item = (usize, usize, &Drawing)> {
        self.alphabets.iter().enumerate().flat_map(|(ai, a)| {
            a.characters
                .iter()
                .enumerate()
                .flat_map(move |(ci, c)| c.drawings.iter().map(move |d| (ai, ci, d)))
        })
    }

    /// Checks the split against the official release: alphabet and character counts and
    /// 20 drawers per character. Returns a list of problems, each naming a path; empty if whole.
    pub fn completeness_problems(&self, kind: SplitKind) -> Vec<String> {
        let mut problems = Vec::new();
        let (alphabets, characters) = kind.expected_counts();
        if self.alphabets.len() != alphabets {
            problems.push(format!(
                "{}: {} alphabets, expected {alphabets}",
                self.root.display(),
                self.alphabets.len()
            ));
        }
        if self.num_characters() != characters {
            problems.push(format!(
                "{}: {} characters, expected {characters}",
                self.root.display(),
                self.num_characters()
            ));
        }
        for a in &self.alphabets {
            for c in &a.characters {
                if c.drawings.len() != DRAWERS as usize {
                    let missing: Vec<String> = (1..=DRAWERS)
                        .filter(|d| !c.drawings.iter().any(|x| x.drawer == *d))
                        .map(|d| format!("{d:02}"))
                        .collect();
                    problems.push(format!(
                        "{}: {} drawings, expected {DRAWERS} (missing drawers {})",
                        self.root.join(&a.name).join(&c.name).display(),
                        c.drawings.len(),
                        missing.join(", ")
                    ));
                }
            }
        }
        problems
    }
}
