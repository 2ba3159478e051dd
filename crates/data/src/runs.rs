//! Lake et al.'s one-shot runs: a folder of `runNN/` folders, each holding
//! `class_labels.txt` (lines `runNN/test/itemKK.png runNN/training/classMM.png`, paths relative
//! to the folder that holds the runs), `test/*.png` (queries) and `training/*.png` (the
//! candidates, one per character). Also writes new runs in the same layout.

use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::{IndexedRandom, SliceRandom};

use crate::error::{DataError, Result};
use crate::index::SplitIndex;

/// One run: every test item is a query against all of `candidates`.
#[derive(Clone, Debug)]
pub struct LakeRun {
    pub name: String,
    /// `training/*.png`, sorted by name.
    pub candidates: Vec<PathBuf>,
    /// (query image, index of its character's image in `candidates`).
    pub items: Vec<(PathBuf, usize)>,
}

fn list_pngs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads every `run*/` folder under `root`, sorted by name.
pub fn read_runs(root: &Path) -> Result<Vec<LakeRun>> {
    if !root.is_dir() {
        return Err(DataError::layout(
            root,
            "runs folder does not exist (write one with `cargo xtask make-runs`)",
        ));
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .map_err(|e| DataError::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("run"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(DataError::layout(root, "no run*/ folders found"));
    }
    dirs.iter().map(|d| read_run(root, d)).collect()
}

fn read_run(root: &Path, dir: &Path) -> Result<LakeRun> {
    let labels = dir.join("class_labels.txt");
    let text = fs::read_to_string(&labels).map_err(|e| DataError::io(&labels, e))?;
    let candidates = list_pngs(&dir.join("training"))?;
    if candidates.is_empty() {
        return Err(DataError::layout(dir.join("training"), "no candidate PNGs"));
    }
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |reason: String| DataError::Runs {
            path: labels.clone(),
            line: line_no,
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [query, answer] = fields[..] else {
            return Err(err(format!(
                "expected two paths (`runNN/test/itemKK.png runNN/training/classMM.png`), found {} fields",
                fields.len()
            )));
        };
        let query = root.join(query);
        let answer = root.join(answer);
        if !query.is_file() {
            return Err(err(format!(
                "query image {} does not exist",
                query.display()
            )));
        }
        let index = candidates
            .iter()
            .position(|c| c == &answer)
            .ok_or_else(|| {
                err(format!(
                    "{} is not one of the run's training images",
                    answer.display()
                ))
            })?;
        items.push((query, index));
    }
    if items.is_empty() {
        return Err(DataError::Runs {
            path: labels,
            line: 0,
            reason: "no trials listed".into(),
        });
    }
    Ok(LakeRun {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        candidates,
        items,
    })
}

/// Writes `count` runs of `ways` characters in Lake's design into `dest` (which must not
/// exist): each run takes `ways` characters of one alphabet and two distinct drawers, one
/// for the candidates (`training/classMM.png`) and one for the queries (`test/itemKK.png`),
/// with the items listed in random order. Alphabets are used in turn, so runs spread over the
/// split. Written to a temporary folder and renamed into place.
pub fn write_runs(
    index: &SplitIndex,
    dest: &Path,
    count: usize,
    ways: usize,
    seed: u64,
) -> Result<()> {
    if dest.exists() {
        return Err(DataError::layout(
            dest,
            "already exists; choose another folder or remove it",
        ));
    }
    if ways < 2 {
        return Err(DataError::Config(format!(
            "runs need at least 2 ways, got {ways}"
        )));
    }
    let mut eligible: Vec<usize> = (0..index.alphabets.len())
        .filter(|&a| index.alphabets[a].characters.len() >= ways)
        .collect();
    if eligible.is_empty() {
        let most = index
            .alphabets
            .iter()
            .map(|a| a.characters.len())
            .max()
            .unwrap_or(0);
        return Err(DataError::NotEnoughCharacters {
            ways,
            available: most,
            scope: " of one alphabet".into(),
        });
    }
    let mut rng = crate::rng_for(seed, 0x1a4e, 0, 0);
    eligible.shuffle(&mut rng);
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let tmp = tempdir_in(parent, dest)?;
    let written = write_runs_into(index, &tmp, &eligible, count, ways, &mut rng)
        .and_then(|()| fs::rename(&tmp, dest).map_err(|e| DataError::io(dest, e)));
    if written.is_err() {
        // Leave nothing half-written behind.
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

fn write_runs_into(
    index: &SplitIndex,
    tmp: &Path,
    eligible: &[usize],
    count: usize,
    ways: usize,
    rng: &mut crate::Rng,
) -> Result<()> {
    for r in 0..count {
        let alphabet = &index.alphabets[eligible[r % eligible.len()]];
        let run = format!("run{:02}", r + 1);
        let run_dir = tmp.join(&run);
        for sub in ["training", "test"] {
            let d = run_dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
        }
        // Drawers every chosen character has.
        let chars: Vec<_> = alphabet.characters.choose_multiple(rng, ways).collect();
        let common: Vec<u8> = (1..=crate::index::DRAWERS)
            .filter(|d| {
                chars
                    .iter()
                    .all(|c| c.drawings.iter().any(|x| x.drawer == *d))
            })
            .collect();
        if common.len() < 2 {
            return Err(DataError::layout(
                index.root.join(&alphabet.name),
                "characters do not share two drawers",
            ));
        }
        let drawers: Vec<&u8> = common.choose_multiple(rng, 2).collect();
        let (support, query) = (*drawers[0], *drawers[1]);
        let mut order: Vec<usize> = (0..ways).collect();
        order.shuffle(rng);
        let mut lines = String::new();
        for (item, &k) in order.iter().enumerate() {
            let c = chars[k];
            let file = |d: u8| {
                &c.drawings
                    .iter()
                    .find(|x| x.drawer == d)
                    .expect("common")
                    .path
            };
            let class = format!("training/class{:02}.png", k + 1);
            let test = format!("test/item{:02}.png", item + 1);
            copy(file(support), &run_dir.join(&class))?;
            copy(file(query), &run_dir.join(&test))?;
            lines.push_str(&format!("{run}/{test} {run}/{class}\n"));
        }
        let labels = run_dir.join("class_labels.txt");
        fs::write(&labels, lines).map_err(|e| DataError::io(&labels, e))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| DataError::io(from, e))
}

fn tempdir_in(parent: &Path, dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "runs".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    Ok(tmp)
}
