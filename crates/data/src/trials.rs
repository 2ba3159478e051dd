//! N-way one-shot trials: a query image and N candidates (one drawing each of N characters),
//! exactly one of which shows the query's character; and N-way K-shot trials, where each of
//! the N characters shows K drawings.
//!
//! Protocol rules that peers got wrong and this sampler enforces: the query and the candidates
//! come from different drawers (Lake's two-drawer design: all candidates by one drawer, the
//! query by another; with K shots, each character's K drawings by the same K drawers, none of
//! them the query's), and the correct candidate sits at a uniformly random position.

use rand::Rng as _;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::split::Subset;
use crate::store::{ImageId, ImageStore};

const STREAM_TRIALS: u32 = 0x7a1a;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// N characters drawn uniformly from the whole split (the PyTorch reference's test).
    Random,
    /// N characters of one alphabet (Koch et al. / Lake et al.); harder.
    WithinAlphabet,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Random => "random",
            Protocol::WithinAlphabet => "within-alphabet",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(Protocol::Random),
            "within-alphabet" | "within" => Ok(Protocol::WithinAlphabet),
            _ => Err(format!(
                "unknown protocol `{s}` (expected random or within-alphabet)"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub query: ImageId,
    /// The candidates' drawings, character by character: `shots` drawings each, so that
    /// `candidates[c * shots..(c + 1) * shots]` show candidate `c` (see [`Trial::supports`]).
    pub candidates: Vec<ImageId>,
    /// Index of the query's character among the candidates (into `candidates` itself when
    /// one-shot).
    pub answer: usize,
    /// Drawings per candidate: 1 in a one-shot trial.
    #[serde(default = "one_shot", skip_serializing_if = "is_one_shot")]
    pub shots: usize,
}

fn one_shot() -> usize {
    1
}

fn is_one_shot(shots: &usize) -> bool {
    *shots == 1
}

impl Trial {
    /// A trial with one drawing per candidate.
    pub fn one_shot(query: ImageId, candidates: Vec<ImageId>, answer: usize) -> Trial {
        Trial {
            query,
            candidates,
            answer,
            shots: 1,
        }
    }

    /// The number of candidate characters (N of N-way).
    pub fn ways(&self) -> usize {
        self.candidates.len() / self.shots.max(1)
    }

    /// The drawings of each candidate character, in candidate order.
    pub fn supports(&self) -> std::slice::Chunks<'_, ImageId> {
        self.candidates.chunks(self.shots.max(1))
    }
}

/// Checks that `ways`-way one-shot trials can be drawn from `subset` under `protocol`.
pub fn check_ways(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
) -> Result<()> {
    check_ways_and_shots(store, subset, protocol, ways, 1)
}

/// Checks that `ways`-way `shots`-shot trials can be drawn from `subset` under `protocol`.
pub fn check_ways_and_shots(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
    shots: usize,
) -> Result<()> {
    if ways < 2 {
        return Err(DataError::Config(format!(
            "a trial needs at least 2 ways (candidate characters), got {ways}"
        )));
    }
    if shots == 0 {
        return Err(DataError::Config(
            "a trial needs at least 1 shot (drawing per candidate)".into(),
        ));
    }
    if subset.drawers.len() < shots + 1 {
        return Err(DataError::Config(if shots == 1 {
            "trials need at least two drawers (query and support must differ)".into()
        } else {
            format!(
                "{shots}-shot trials need at least {} drawers (the query's and {shots} others \
                 for the supports), the split has {}",
                shots + 1,
                subset.drawers.len()
            )
        }));
    }
    let (available, scope) = match protocol {
        Protocol::Random => (subset.characters.len(), String::new()),
        Protocol::WithinAlphabet => (
            subset
                .by_alphabet(store)
                .iter()
                .map(|(_, cs)| cs.len())
                .max()
                .unwrap_or(0),
            " of one alphabet".to_string(),
        ),
    };
    if available < ways {
        return Err(DataError::NotEnoughCharacters {
            ways,
            available,
            scope,
        });
    }
    Ok(())
}

/// Draws `count` one-shot trials, trial `t` from its own RNG stream so that any prefix of a
/// longer run is the same set of trials.
pub fn sample_trials(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Trial>> {
    sample_shot_trials(store, subset, protocol, ways, 1, count, seed)
}

/// Draws `count` trials of `shots` drawings per candidate, each by one of `shots` drawers
/// other than the query's (the same drawers for every candidate of a trial). One shot gives
/// exactly the trials of [`sample_trials`].
pub fn sample_shot_trials(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
    shots: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Trial>> {
    check_ways_and_shots(store, subset, protocol, ways, shots)?;
    let groups: Vec<Vec<u32>> = match protocol {
        Protocol::Random => vec![subset.characters.clone()],
        Protocol::WithinAlphabet => subset
            .by_alphabet(store)
            .into_iter()
            .map(|(_, cs)| cs)
            .filter(|cs| cs.len() >= ways)
            .collect(),
    };
    (0..count)
        .map(|t| {
            let mut rng = crate::rng_for(seed, STREAM_TRIALS, t as u64, 0);
            for _attempt in 0..100 {
                let group = groups.choose(&mut rng).expect("checked non-empty");
                let chars: Vec<u32> = group.choose_multiple(&mut rng, ways).copied().collect();
                let picked: Vec<u8> = subset
                    .drawers
                    .choose_multiple(&mut rng, shots + 1)
                    .copied()
                    .collect();
                let (query_drawer, support_drawers) = (picked[0], &picked[1..]);
                let truth = rng.random_range(0..ways);
                let query = store.image_of(chars[truth], query_drawer);
                let support: Option<Vec<Vec<ImageId>>> = chars
                    .iter()
                    .map(|&c| {
                        support_drawers
                            .iter()
                            .map(|&d| store.image_of(c, d))
                            .collect()
                    })
                    .collect();
                if let (Some(query), Some(mut classes)) = (query, support) {
                    let answer_char = chars[truth];
                    // Shuffling the classes draws what shuffling one-shot candidates drew.
                    classes.shuffle(&mut rng);
                    let answer = classes
                        .iter()
                        .position(|c| store.character_of(c[0]) == answer_char)
                        .expect("answer is a candidate");
                    return Ok(Trial {
                        query,
                        candidates: classes.concat(),
                        answer,
                        shots,
                    });
                }
            }
            Err(DataError::Config(
                "could not draw a trial: too many drawings are missing from the split".into(),
            ))
        })
        .collect()
}
