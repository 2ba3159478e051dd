//! Balanced same/different pairs for training a Siamese network, deterministic in
//! `(seed, batch index)` so that a resumed run sees exactly the batches it would have seen.

use rand::Rng as _;
use rand::seq::IndexedRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{AffineConfig, AffineParams};
use crate::error::{DataError, Result};
use crate::split::Subset;
use crate::store::{ImageId, ImageStore};

const STREAM_PAIRS: u32 = 0x9a12;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairConfig {
    /// Fraction of negative pairs whose two characters come from the same alphabet (harder
    /// negatives); the rest pick two characters uniformly.
    pub same_alphabet_negatives: f32,
    /// Random affine distortion applied to each image independently (`None`: off; a missing
    /// key in a config file means off, so configs round-trip).
    pub augment: Option<AffineConfig>,
    /// Side length of the images handed to the model.
    pub side: usize,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            same_alphabet_negatives: 0.0,
            augment: None,
            side: 105,
        }
    }
}

/// A batch of pairs ready for the model: `left` and `right` are `[B, 1, side, side]`
/// row-major, `labels[i]` is 1.0 for the same character and 0.0 otherwise.
#[derive(Clone, Debug, Default)]
pub struct PairBatch {
    pub side: usize,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    pub labels: Vec<f32>,
    pub left_ids: Vec<ImageId>,
    pub right_ids: Vec<ImageId>,
}

impl PairBatch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

pub struct PairSampler<'a> {
    store: &'a ImageStore,
    config: PairConfig,
    seed: u64,
    /// Characters with their allowed images (each has at least two).
    characters: Vec<(u32, Vec<ImageId>)>,
    /// Positions in `characters`, grouped by alphabet; only groups of two or more.
    alphabets: Vec<Vec<usize>>,
}

impl<'a> PairSampler<'a> {
    pub fn new(
        store: &'a ImageStore,
        subset: &Subset,
        config: PairConfig,
        seed: u64,
    ) -> Result<Self> {
        if config.side == 0 {
            return Err(DataError::Config("pair image side must be positive".into()));
        }
        if !(0.0..=1.0).contains(&config.same_alphabet_negatives) {
            return Err(DataError::Config(
                "same-alphabet negative fraction must be in [0, 1]".into(),
            ));
        }
        if let Some(aug) = &config.augment {
            aug.validate().map_err(DataError::Config)?;
        }
        let characters: Vec<(u32, Vec<ImageId>)> = subset
            .characters
            .iter()
            .map(|&c| (c, subset.images_of(store, c)))
            .filter(|(_, imgs)| imgs.len() >= 2)
            .collect();
        if characters.len() < 2 {
            return Err(DataError::Config(
                "pair sampling needs at least two characters with two drawings each".into(),
            ));
        }
        let mut alphabets: Vec<(u32, Vec<usize>)> = Vec::new();
        for (pos, (c, _)) in characters.iter().enumerate() {
            let a = store.characters()[*c as usize].alphabet;
            match alphabets.iter_mut().find(|(x, _)| *x == a) {
                Some((_, v)) => v.push(pos),
                None => alphabets.push((a, vec![pos])),
            }
        }
        let alphabets = alphabets
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v.len() >= 2)
            .collect();
        Ok(PairSampler {
            store,
            config,
            seed,
            characters,
            alphabets,
        })
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    /// The pair of image ids and the label of pair `i` of batch `index`.
    fn pick(&self, rng: &mut crate::Rng, positive: bool) -> (ImageId, ImageId) {
        if positive {
            let (_, imgs) = self.characters.choose(rng).expect("non-empty");
            let i = rng.random_range(0..imgs.len());
            let mut j = rng.random_range(0..imgs.len() - 1);
            if j >= i {
                j += 1;
            }
            return (imgs[i], imgs[j]);
        }
        let same_alphabet = !self.alphabets.is_empty()
            && rng.random_bool(self.config.same_alphabet_negatives as f64);
        let (a, b) = if same_alphabet {
            let group = self.alphabets.choose(rng).expect("non-empty");
            let picked: Vec<&usize> = group.choose_multiple(rng, 2).collect();
            (*picked[0], *picked[1])
        } else {
            let n = self.characters.len();
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            (a, b)
        };
        let left = *self.characters[a].1.choose(rng).expect("non-empty");
        let right = *self.characters[b].1.choose(rng).expect("non-empty");
        (left, right)
    }

    fn render(&self, rng: &mut crate::Rng, id: ImageId, out: &mut [f32]) {
        let params = match &self.config.augment {
            Some(aug) => aug.sample(rng),
            None => AffineParams::identity(),
        };
        if params == AffineParams::identity() && self.store.side() == self.config.side {
            self.store.write_f32(id, out);
        } else {
            params.warp_u8(
                self.store.pixels(id),
                self.store.side(),
                out,
                self.config.side,
            );
        }
    }

    /// Fills `batch` with batch number `index` of `size` pairs (half of them positive),
    /// reusing its buffers.
    pub fn fill(&self, index: u64, size: usize, batch: &mut PairBatch) {
        let n = self.config.side * self.config.side;
        batch.side = self.config.side;
        batch.left.resize(size * n, 0.0);
        batch.right.resize(size * n, 0.0);
        batch.labels.resize(size, 0.0);
        batch.left_ids.resize(size, 0);
        batch.right_ids.resize(size, 0);
        batch
            .left
            .par_chunks_mut(n)
            .zip(batch.right.par_chunks_mut(n))
            .zip(batch.labels.par_iter_mut())
            .zip(
                batch
                    .left_ids
                    .par_iter_mut()
                    .zip(batch.right_ids.par_iter_mut()),
            )
            .enumerate()
            .for_each(|(i, (((l, r), label), (lid, rid)))| {
                let mut rng = crate::rng_for(self.seed, STREAM_PAIRS, index, i as u64);
                let positive = i % 2 == 0;
                let (a, b) = self.pick(&mut rng, positive);
                self.render(&mut rng, a, l);
                self.render(&mut rng, b, r);
                *label = if positive { 1.0 } else { 0.0 };
                *lid = a;
                *rid = b;
            });
    }

    pub fn batch(&self, index: u64, size: usize) -> PairBatch {
        let mut batch = PairBatch::default();
        self.fill(index, size, &mut batch);
        batch
    }
}
