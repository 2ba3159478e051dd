//! A trained model on your own drawings: the library form of `classify --query` and `verify`.
//!
//! ```no_run
//! # fn main() -> eval::error::Result<()> {
//! use std::path::Path;
//! let device = model::Device::Cpu;
//! let matcher = eval::Matcher::open(Path::new("models/default.safetensors"), &device)?
//!     .with_turns(4)?; // the shipped model was trained with rotation classes
//! let query = matcher.load_image(Path::new("query.png"))?;
//! let candidates = ["a.png", "b.png", "c.png"]
//!     .iter()
//!     .map(|p| matcher.load_image(Path::new(p)))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let choice = matcher.classify(&query, &candidates)?;
//! println!("candidate {} (logits {:?})", choice.index, choice.logits);
//! # Ok(())
//! # }
//! ```
//!
//! Images are scored exactly as `eval` scores dataset trials (the same scorer, so the same
//! logits): a matcher is the way to get the published numbers' behaviour on files.

use std::path::Path;
use std::sync::Arc;

use data::store::StoreBuilder;
use data::{ImageId, ImageStore};
use model::SiameseNet;
use model::net::sigmoid;

use crate::error::{EvalError, Result};
use crate::scorer::{ModelScorer, Scorer};

/// A trained network and how each pair is looked at (paired turns, mirror images).
#[derive(Clone)]
pub struct Matcher {
    net: Arc<SiameseNet>,
    turns: usize,
    mirrored: bool,
    local: Option<crate::local::LocalMatch>,
}

/// What [`Matcher::classify`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The candidate with the highest logit (the first of them when several share it).
    pub index: usize,
    /// Whether another candidate had the same logit.
    pub tied: bool,
    /// Every candidate's logit, in the order given.
    pub logits: Vec<f32>,
}

impl Matcher {
    /// A model file or training checkpoint, scored upright; a model trained with rotation
    /// classes (like the shipped one) scores best with [`Matcher::with_turns`]`(4)`, and
    /// `train::checkpoint::paired_turns` reads which from the file.
    pub fn open(path: &Path, device: &model::Device) -> Result<Self> {
        Ok(Self::new(crate::session::load_model(path, device)?))
    }

    pub fn new(net: Arc<SiameseNet>) -> Self {
        Matcher {
            net,
            turns: 1,
            mirrored: false,
            local: None,
        }
    }

    /// Scores each pair `turns` times (1, 2, 4 or 8), both images turned alike by multiples of
    /// `360 / turns` degrees, and averages the logits.
    pub fn with_turns(mut self, turns: usize) -> Result<Self> {
        crate::scorer::check_turns(turns)?;
        self.turns = turns;
        Ok(self)
    }

    /// Also scores each (turned) pair with both images mirrored left-right.
    pub fn with_mirrored_pairs(mut self, mirrored: bool) -> Self {
        self.mirrored = mirrored;
        self
    }

    /// Adds a weighted local-descriptor match to each logit (`eval --local-weight`; for a
    /// model trained with one, `train::checkpoint::local_match` reads it from the file); `None`
    /// or a weight of 0 turns it off.
    pub fn with_local_match(mut self, local: Option<crate::local::LocalMatch>) -> Result<Self> {
        // Checked now, so that a bad block fails here rather than at the first pair.
        if let Some(l) = local.filter(|l| l.weight != 0.0) {
            crate::scorer::local_extent(self.net.arch(), l)?;
        }
        self.local = local;
        Ok(self)
    }

    /// The scorer `eval` would use, which does the work.
    pub(crate) fn scorer(&self) -> Result<ModelScorer> {
        ModelScorer::new(self.net.clone(), 64)?
            .with_turns(self.turns)?
            .with_mirrored_pairs(self.mirrored)
            .with_local_match(self.local)
    }

    /// How reports name this scorer (the network, and the views when not upright).
    pub fn name(&self) -> Result<String> {
        Ok(self.scorer()?.name())
    }

    pub fn model(&self) -> &Arc<SiameseNet> {
        &self.net
    }

    pub fn turns(&self) -> usize {
        self.turns
    }

    /// The side of the images the network takes (`input_side x input_side` ink values).
    pub fn input_side(&self) -> usize {
        self.net.arch().input_side
    }

    /// Reads an image file of any size and format and prepares it as the network was trained:
    /// dark ink on a light background (inverted when the background is dark), binarised,
    /// framed as the network's training framed drawings, and resampled to its input side.
    pub fn load_image(&self, path: &Path) -> Result<Vec<f32>> {
        let arch = self.net.arch();
        Ok(data::image_io::load_user_image(
            path,
            arch.input_side,
            arch.framing,
        )?)
    }

    /// The head's logit of `query` against each candidate: higher is more alike. Images are
    /// `input_side x input_side` ink values (1 = ink), as [`Matcher::load_image`] returns;
    /// like `eval`'s dataset images they are held as bytes, so values between 0 and 1 count
    /// to the nearest 1/255.
    pub fn logits(&self, query: &[f32], candidates: &[Vec<f32>]) -> Result<Vec<f32>> {
        let images: Vec<&[f32]> = std::iter::once(query)
            .chain(candidates.iter().map(Vec::as_slice))
            .collect();
        let store = self.store(&images, |i| match i {
            0 => "the query".to_string(),
            i => format!("candidate {}", i - 1),
        })?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // The dataset scorer, so that every view option applies exactly as in `eval`.
        let ids: Vec<ImageId> = (0..store.len() as ImageId).collect();
        let mut scorer = self.scorer()?;
        scorer.prepare(&store, &ids)?;
        Ok(scorer.trial_scores(ids[0], &ids[1..]))
    }

    /// Each image's embedding, upright (images as for [`Matcher::logits`]). The head compares
    /// two of them: `model().head_host()?.logit(a, b)` is their upright logit.
    pub fn embed(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        let store = self.store(&slices, |i| format!("image {i}"))?;
        let dim = self.net.arch().embedding_dim()?;
        let mut pixels = Vec::with_capacity(store.len() * store.side() * store.side());
        for id in 0..store.len() as ImageId {
            pixels.extend(store.image_f32(id));
        }
        let flat = self.net.embed_images(&pixels, 64)?;
        Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
    }

    /// `images` as a store of their own, held as bytes as `eval` holds dataset images, after
    /// checking each is the network's size (`name` says which one is not).
    pub(crate) fn store(
        &self,
        images: &[&[f32]],
        name: impl Fn(usize) -> String,
    ) -> Result<ImageStore> {
        let side = self.input_side();
        let mut b = StoreBuilder::new(side);
        let alphabet = b.alphabet("files");
        for (i, image) in images.iter().enumerate() {
            if image.len() != side * side {
                return Err(EvalError::Invalid(format!(
                    "{} has {} values; this network takes {side}x{side} = {} (load files \
                     with Matcher::load_image)",
                    name(i),
                    image.len(),
                    side * side
                )));
            }
            let c = b.character(alphabet, &format!("image{i}"));
            b.push(c, 1, image, None);
        }
        Ok(b.finish())
    }

    /// Which candidate shows the query's character: the highest logit, ties to the first.
    pub fn classify(&self, query: &[f32], candidates: &[Vec<f32>]) -> Result<Choice> {
        if candidates.is_empty() {
            return Err(EvalError::Invalid(
                "classify needs at least one candidate".into(),
            ));
        }
        let logits = self.logits(query, candidates)?;
        let (index, tied) = crate::evaluate::choose(&logits);
        Ok(Choice {
            index,
            tied,
            logits,
        })
    }

    /// `sigmoid` of the pair's logit: the probability that `a` and `b` show one character,
    /// as far as the model's head is calibrated (`calibrate` says how far, and fits it).
    pub fn same_probability(&self, a: &[f32], b: &[f32]) -> Result<f32> {
        let logits = self.logits(a, std::slice::from_ref(&b.to_vec()))?;
        Ok(sigmoid(logits[0]))
    }
}
