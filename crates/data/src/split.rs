//! Honest experiment splits: a validation set carved out of the background split by alphabet
//! and/or drawer, so that model selection never looks at `images_evaluation`.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::index::DRAWERS;
use crate::store::{ImageId, ImageStore};

/// A set of characters of one store, restricted to some drawers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subset {
    /// Global character indices, sorted.
    pub characters: Vec<u32>,
    /// Allowed drawers (1-based), sorted.
    pub drawers: Vec<u8>,
}

impl Subset {
    /// Every character and drawer of the store.
    pub fn all(store: &ImageStore) -> Subset {
        let mut drawers: Vec<u8> = (0..store.len() as u32)
            .map(|id| store.drawer_of(id))
            .collect();
        drawers.sort_unstable();
        drawers.dedup();
        Subset {
            characters: (0..store.characters().len() as u32).collect(),
            drawers,
        }
    }

    pub fn allows_drawer(&self, drawer: u8) -> bool {
        self.drawers.binary_search(&drawer).is_ok()
    }

    /// The images of `character` drawn by allowed drawers.
    pub fn images_of(&self, store: &ImageStore, character: u32) -> Vec<ImageId> {
        store.characters()[character as usize]
            .images
            .iter()
            .copied()
            .filter(|&id| self.allows_drawer(store.drawer_of(id)))
            .collect()
    }

    /// Characters grouped by alphabet, in alphabet order; alphabets with none are left out.
    pub fn by_alphabet(&self, store: &ImageStore) -> Vec<(u32, Vec<u32>)> {
        let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
        for &c in &self.characters {
            let a = store.characters()[c as usize].alphabet;
            match groups.iter_mut().find(|(ga, _)| *ga == a) {
                Some((_, cs)) => cs.push(c),
                None => groups.push((a, vec![c])),
            }
        }
        groups.sort_by_key(|(a, _)| *a);
        groups
    }

    /// Every image in the subset.
    pub fn images(&self, store: &ImageStore) -> Vec<ImageId> {
        self.characters
            .iter()
            .flat_map(|&c| self.images_of(store, c))
            .collect()
    }
}

/// A validation split as hard as the test: the background alphabets (of those with at least
/// 20 characters, so that 20-way within-alphabet trials exist) at every fourth rank of
/// within-alphabet difficulty for the modified Hausdorff baseline (ranks 2, 6, ..., 22 of 26,
/// hardest first; 6,000 trials). Their mean MHD accuracy, 61.0%, matches the 61.25% Lake et
/// al. publish for MHD on the evaluation runs, so the split needs nothing from
/// `images_evaluation`. The 5 alphabets a seed picks at random average 69.9%; the shipped
/// recipe scored 91.2% within-alphabet on them, against 77-80% on the test.
pub const STRATIFIED_VALIDATION: [&str; 6] = [
    "Sanskrit",
    "Grantha",
    "Syriac_(Estrangelo)",
    "Armenian",
    "Japanese_(hiragana)",
    "Anglo-Saxon_Futhorc",
];

/// Alphabet names as a user gives them: `stratified` stands for [`STRATIFIED_VALIDATION`].
pub fn expand_alphabet_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.as_ref().trim())
        .filter(|n| !n.is_empty())
        .flat_map(|n| match n {
            "stratified" => STRATIFIED_VALIDATION.map(String::from).to_vec(),
            name => vec![name.to_string()],
        })
        .collect()
}

/// How to carve a validation split out of the background set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Number of alphabets held out for validation, picked with `seed` (ignored when
    /// `alphabet_names` is not empty).
    pub alphabets: usize,
    /// Alphabets held out for validation, by folder name.
    pub alphabet_names: Vec<String>,
    /// Alphabets left out of training and validation alike, by folder name: how a
    /// data-scaling run trains on fewer alphabets while validating on the same ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_alphabets: Vec<String>,
    /// Drawers whose drawings are used for training. Validation uses the others where there
    /// are any, otherwise all drawers of the held-out alphabets.
    pub train_drawers: Vec<u8>,
    pub seed: u64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            alphabets: 5,
            alphabet_names: Vec::new(),
            exclude_alphabets: Vec::new(),
            train_drawers: (1..=DRAWERS).collect(),
            seed: 0,
        }
    }
}

/// Training and (optional) validation subsets of one store.
#[derive(Clone, Debug)]
pub struct Partition {
    pub train: Subset,
    pub val: Option<Subset>,
    /// Names of the held-out alphabets.
    pub val_alphabets: Vec<String>,
}

/// Parses drawer lists such as `1-12`, `1,3,5-7` or `all`.
pub fn parse_drawers(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok((1..=DRAWERS).collect());
    }
    let bad = || {
        DataError::Config(format!(
            "invalid drawer list `{text}`: use numbers 1-{DRAWERS}, ranges like 1-12, commas, or `all`"
        ))
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u8 = lo.parse().map_err(|_| bad())?;
        let hi: u8 = hi.parse().map_err(|_| bad())?;
        if lo == 0 || hi > DRAWERS || lo > hi {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl ValidationConfig {
    /// No validation split: train on everything.
    pub fn none() -> Self {
        ValidationConfig {
            alphabets: 0,
            ..Default::default()
        }
    }

    pub fn partition(&self, store: &ImageStore) -> Result<Partition> {
        let mut train_drawers = self.train_drawers.clone();
        train_drawers.sort_unstable();
        train_drawers.dedup();
        if train_drawers.is_empty() || train_drawers.iter().any(|&d| d == 0 || d > DRAWERS) {
            return Err(DataError::Config(format!(
                "training drawers must be a non-empty set of numbers 1-{DRAWERS}"
            )));
        }
        let other_drawers: Vec<u8> = (1..=DRAWERS)
            .filter(|d| !train_drawers.contains(d))
            .collect();
        let names: Vec<&str> = store.alphabets().iter().map(|a| a.name.as_str()).collect();
        let index_of = |role: &str, n: &String| -> Result<u32> {
            names
                .iter()
                .position(|x| x == n)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    DataError::Config(format!(
                        "{role} alphabet `{n}` is not in this split (it has: {})",
                        names.join(", ")
                    ))
                })
        };
        let excluded: Vec<u32> = self
            .exclude_alphabets
            .iter()
            .map(|n| index_of("excluded", n))
            .collect::<Result<_>>()?;
        let held: Vec<u32> = if !self.alphabet_names.is_empty() {
            let held: Vec<u32> = self
                .alphabet_names
                .iter()
                .map(|n| index_of("validation", n))
                .collect::<Result<_>>()?;
            if let Some(&a) = held.iter().find(|a| excluded.contains(a)) {
                return Err(DataError::Config(format!(
                    "alphabet `{}` is both held out for validation and excluded",
                    names[a as usize]
                )));
            }
            held
        } else {
            // Excluded alphabets are removed before the shuffle, so that an empty exclusion
            // list draws exactly the split it always drew.
            let mut order: Vec<u32> = (0..names.len() as u32)
                .filter(|a| !excluded.contains(a))
                .collect();
            if self.alphabets >= order.len() {
                return Err(DataError::Config(format!(
                    "cannot hold out {} of {} alphabets for validation",
                    self.alphabets,
                    order.len()
                )));
            }
            order.shuffle(&mut crate::rng_for(self.seed, 0x5117, 0, 0));
            let mut held = order[..self.alphabets].to_vec();
            held.sort_unstable();
            held
        };
        let chars_of = |keep: &dyn Fn(u32) -> bool| -> Vec<u32> {
            (0..store.characters().len() as u32)
                .filter(|&c| keep(store.characters()[c as usize].alphabet))
                .collect()
        };
        let train = Subset {
            characters: chars_of(&|a| !held.contains(&a) && !excluded.contains(&a)),
            drawers: train_drawers.clone(),
        };
        let val = if !held.is_empty() {
            Some(Subset {
                characters: chars_of(&|a| held.contains(&a)),
                drawers: if other_drawers.len() >= 2 {
                    other_drawers
                } else {
                    (1..=DRAWERS).collect()
                },
            })
        } else if other_drawers.len() >= 2 {
            Some(Subset {
                characters: train.characters.clone(),
                drawers: other_drawers,
            })
        } else {
            None
        };
        if train.characters.len() < 2 {
            return Err(DataError::Config(
                "the training split needs at least two characters".into(),
            ));
        }
        Ok(Partition {
            train,
            val,
            val_alphabets: held
                .iter()
                .map(|&a| names[a as usize].to_string())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_expands_in_place_and_names_pass_through() {
        let names = expand_alphabet_names(&["Latin", " stratified ", "", "Korean"]);
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "Latin");
        assert_eq!(names[1..7], STRATIFIED_VALIDATION.map(String::from));
        assert_eq!(names[7], "Korean");
    }

    #[test]
    fn drawer_lists() {
        assert_eq!(parse_drawers("1-3,7").unwrap(), vec![1, 2, 3, 7]);
        assert_eq!(parse_drawers("all").unwrap().len(), 20);
        assert_eq!(parse_drawers(" 5 , 2 ").unwrap(), vec![2, 5]);
        for bad in ["0", "21", "3-1", "x", ""] {
            assert!(parse_drawers(bad).is_err(), "{bad}");
        }
    }
}
