//! N-way one-shot trials: a query image and N candidates (one drawing each of N characters),
//! exactly one of which shows the query's character.
//!
//! Protocol rules that peers got wrong and this sampler enforces: the query and the candidates
//! come from different drawers (Lake's two-drawer design: all candidates by one drawer, the
//! query by another), and the correct candidate sits at a uniformly random position.

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
    pub candidates: Vec<ImageId>,
    /// Index into `candidates` of the query's character.
    pub answer: usize,
}

/// Checks that `ways`-way trials can be drawn from `subset` under `protocol`.
pub fn check_ways(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
) -> Result<()> {
    if ways < 2 {
        return Err(DataError::Config(format!(
            "a one-shot trial needs at least 2 ways, got {ways}"
        )));
    }
    if subset.drawers.len() < 2 {
        return Err(DataError::Config(
            "trials need at least two drawers (query and support must differ)".into(),
        ));
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

/// Draws `count` trials, trial `t` from its own RNG stream so that any prefix of a longer
/// run is the same set of trials.
pub fn sample_trials(
    store: &ImageStore,
    subset: &Subset,
    protocol: Protocol,
    ways: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Trial>> {
    check_ways(store, subset, protocol, ways)?;
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
                let picked: Vec<&u8> = subset.drawers.choose_multiple(&mut rng, 2).collect();
                let (query_drawer, support_drawer) = (*picked[0], *picked[1]);
                let truth = rng.random_range(0..ways);
                let query = store.image_of(chars[truth], query_drawer);
                let support: Option<Vec<ImageId>> = chars
                    .iter()
                    .map(|&c| store.image_of(c, support_drawer))
                    .collect();
                if let (Some(query), Some(mut candidates)) = (query, support) {
                    let answer_id = candidates[truth];
                    candidates.shuffle(&mut rng);
                    let answer = candidates
                        .iter()
                        .position(|&c| c == answer_id)
                        .expect("answer is a candidate");
                    return Ok(Trial {
                        query,
                        candidates,
                        answer,
                    });
                }
            }
            Err(DataError::Config(
                "could not draw a trial: too many drawings are missing from the split".into(),
            ))
        })
        .collect()
}
