//! Recognition against a labelled gallery: the everyday use of a one-shot model. A user has one
//! (or a few) drawings of each symbol they care about and many new drawings to label; each new
//! drawing gets the label whose examples the model finds most alike.
//!
//! ```no_run
//! # fn main() -> eval::error::Result<()> {
//! use std::path::Path;
//! let matcher = eval::Matcher::open(Path::new("models/default.safetensors"), &model::Device::Cpu)?
//!     .with_turns(4)?;
//! let mut gallery = eval::Gallery::new();
//! gallery.add("alpha", matcher.load_image(Path::new("alpha.png"))?);
//! gallery.add("beta", matcher.load_image(Path::new("beta.png"))?);
//! let query = matcher.load_image(Path::new("new.png"))?;
//! let found = matcher.recognize(&gallery, &[query], |_| {})?;
//! println!("{}", gallery.labels()[found[0].best]);
//! # Ok(())
//! # }
//! ```

use rayon::prelude::*;

use data::ImageId;

use crate::error::{EvalError, Result};
use crate::matcher::Matcher;
use crate::scorer::Scorer;

/// Labelled example images, each at the network's input side (as [`Matcher::load_image`]
/// returns them). Labels keep the order in which they were first added; that order breaks ties.
#[derive(Clone, Debug, Default)]
pub struct Gallery {
    labels: Vec<String>,
    label_of: Vec<usize>,
    images: Vec<Vec<f32>>,
}

impl Gallery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an example of `label`; a label not seen before goes after the others.
    pub fn add(&mut self, label: &str, image: Vec<f32>) {
        let index = match self.labels.iter().position(|l| l == label) {
            Some(i) => i,
            None => {
                self.labels.push(label.to_string());
                self.labels.len() - 1
            }
        };
        self.label_of.push(index);
        self.images.push(image);
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of examples, all labels together.
    pub fn examples(&self) -> usize {
        self.images.len()
    }

    /// Number of examples of the label at `index`.
    pub fn shots(&self, index: usize) -> usize {
        self.label_of.iter().filter(|&&l| l == index).count()
    }
}

/// What [`Matcher::recognize`] found for one query.
#[derive(Clone, Debug, PartialEq)]
pub struct Recognition {
    /// Each label's score, in gallery order: the query's logit against the mean of the
    /// label's example embeddings in each pair view (`Scorer::class_scores`; with one example
    /// per label, its logit, as in a one-shot trial).
    pub scores: Vec<f32>,
    /// The label with the highest score (the first of them in gallery order when several
    /// share it).
    pub best: usize,
    /// Whether another label had the same score.
    pub tied: bool,
}

impl Recognition {
    /// Label indices from the highest score to the lowest, ties in gallery order.
    pub fn ranking(&self) -> Vec<usize> {
        let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        let mut order: Vec<usize> = (0..self.scores.len()).collect();
        order.sort_by(|&i, &j| {
            key(self.scores[j])
                .total_cmp(&key(self.scores[i]))
                .then(i.cmp(&j))
        });
        order
    }

    /// How far the best label's score lies above the runner-up's (`None` with one label).
    pub fn margin(&self) -> Option<f32> {
        match self.ranking()[..] {
            [first, second, ..] => Some(self.scores[first] - self.scores[second]),
            _ => None,
        }
    }
}

/// Queries embedded per step: small enough for steady progress, large enough for full batches.
const CHUNK: usize = 256;

impl Matcher {
    /// Each query's label among the gallery's, scored as [`Matcher::logits`] scores pairs
    /// (same turns, mirror images and local match). The gallery is embedded once; `progress`
    /// hears how many queries are done after each step. Every query's embeddings are held
    /// until the call returns (16 KiB a query for the shipped model in 4 turns), so label
    /// millions of drawings in several calls.
    pub fn recognize(
        &self,
        gallery: &Gallery,
        queries: &[Vec<f32>],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Recognition>> {
        if gallery.examples() == 0 {
            return Err(EvalError::Invalid("the gallery has no examples".into()));
        }
        let g = gallery.examples();
        let images: Vec<&[f32]> = gallery
            .images
            .iter()
            .chain(queries)
            .map(Vec::as_slice)
            .collect();
        let store = self.store(&images, |i| {
            if i < g {
                format!(
                    "gallery example {i} (label {})",
                    gallery.labels[gallery.label_of[i]]
                )
            } else {
                format!("query {}", i - g)
            }
        })?;
        let mut scorer = self.scorer()?;
        let examples: Vec<ImageId> = (0..g as ImageId).collect();
        scorer.prepare(&store, &examples)?;
        // Each label's examples, gathered once for every query.
        let mut members: Vec<Vec<ImageId>> = vec![Vec::new(); gallery.labels.len()];
        for (&id, &label) in examples.iter().zip(&gallery.label_of) {
            members[label].push(id);
        }
        let classes: Vec<&[ImageId]> = members.iter().map(Vec::as_slice).collect();
        let mut found = Vec::with_capacity(queries.len());
        let ids: Vec<ImageId> = (g as ImageId..store.len() as ImageId).collect();
        for chunk in ids.chunks(CHUNK) {
            scorer.prepare(&store, chunk)?;
            let scorer: &dyn Scorer = &scorer;
            found.par_extend(chunk.par_iter().map(|&q| {
                let scores = scorer.class_scores(q, &classes);
                let (best, tied) = crate::evaluate::choose(&scores);
                Recognition { scores, best, tied }
            }));
            progress(found.len());
        }
        Ok(found)
    }
}
