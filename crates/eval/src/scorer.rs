//! Scorers: anything that says how alike two images of a store are. Higher is more alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use data::{AffineParams, ImageId, ImageStore, Trial};
use model::SiameseNet;
use model::net::HostHead as Head;
use rayon::prelude::*;

use crate::adapt::{AdaptConfig, adapted_weights};
use crate::error::Result;
use crate::local::{self, LocalMatch};

/// Random stream of the adaptation's distorted copies (see `data::rng_for`).
const STREAM_ADAPT_COPIES: u32 = 0xada9;

pub trait Scorer: Send + Sync {
    /// A short name for reports (`siamese`, `mhd`, `pixel`).
    fn name(&self) -> String;

    /// Called once with every image the trials will compare, so a scorer can precompute
    /// (embed each distinct image once, extract point sets).
    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()>;

    /// Called once with every trial before any is scored: `prepare` with their images, unless
    /// a scorer's scores depend on a trial's whole candidate set and are computed here.
    fn prepare_trials(&mut self, store: &ImageStore, trials: &[Trial]) -> Result<()> {
        self.prepare(store, &trial_images(trials))
    }

    /// Similarity of two prepared images; higher means more likely the same character.
    fn similarity(&self, a: ImageId, b: ImageId) -> f32;

    /// Every candidate's score against the query of one trial; higher is the better match.
    fn trial_scores(&self, query: ImageId, candidates: &[ImageId]) -> Vec<f32> {
        candidates
            .iter()
            .map(|&c| self.similarity(query, c))
            .collect()
    }

    /// Each class's score against the query when classes show several drawings (K-shot
    /// trials, `Matcher::recognize`'s labels), `classes` holding each class's members. By
    /// default the mean of the members' scores, all scored as one trial; a network scores the
    /// query against the members' mean embedding instead (`ModelScorer`).
    fn class_scores(&self, query: ImageId, classes: &[&[ImageId]]) -> Vec<f32> {
        mean_of_members(self, query, classes)
    }
}

/// Each class's score as the mean of its members' scores, all scored as one trial: the
/// default [`Scorer::class_scores`], and a network's when its scores need the whole set.
fn mean_of_members<S: Scorer + ?Sized>(
    scorer: &S,
    query: ImageId,
    classes: &[&[ImageId]],
) -> Vec<f32> {
    let scores = scorer.trial_scores(query, &classes.concat());
    crate::evaluate::mean_per_class(&scores, classes)
}

/// Paired turns come in quarter or eighth turns: 1, 2, 4 or 8 views.
pub(crate) fn check_turns(turns: usize) -> Result<()> {
    if [1, 2, 4, 8].contains(&turns) {
        Ok(())
    } else {
        Err(crate::EvalError::Invalid(format!(
            "paired turns must be 1, 2, 4 or 8, not {turns}"
        )))
    }
}

/// Every image `trials` show, each once, in order.
pub fn trial_images(trials: &[Trial]) -> Vec<ImageId> {
    let mut ids: Vec<ImageId> = trials
        .iter()
        .flat_map(|t| std::iter::once(t.query).chain(t.candidates.iter().copied()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A trial's identity for cached scores: its query and candidates in order.
type TrialKey = (ImageId, Vec<ImageId>);

/// A trained Siamese network. Each distinct image is embedded once, in batches on the
/// network's device; pairs are then scored from the cached embeddings with the (cheap) head.
pub struct ModelScorer {
    net: Arc<SiameseNet>,
    /// Test-time views: each image's embedding is the mean over these distortions (empty:
    /// the image as it is).
    views: Vec<AffineParams>,
    /// Paired turns: each pair is scored this many times, both images turned by the same
    /// multiple of `360 / turns` degrees, and the head's logits are averaged (1: off).
    turns: usize,
    /// Each turned pair is also scored with both images mirrored left-right.
    mirrored: bool,
    batch: usize,
    dim: usize,
    head: Head,
    slots: HashMap<ImageId, usize>,
    /// `pair_views()` embeddings per slot, the upright one first.
    embeddings: Vec<f32>,
    /// Support-set adaptation (off unless `adapt.steps > 0`).
    adapt: AdaptConfig,
    /// `adapt.views` distorted copies per slot, when adapting, each in `copy_views()` views.
    copies: Vec<f32>,
    /// Adapted heads by candidate set: Lake's runs score 20 queries against one set.
    adapted: Mutex<HashMap<Vec<ImageId>, Arc<Head>>>,
    /// Batch norm with each trial's support statistics (`with_support_statistics`).
    support_stats: bool,
    /// Scores of each prepared trial under support statistics.
    trial_scores: HashMap<TrialKey, Vec<f32>>,
    /// Local-descriptor matching added to the head's logit (`crate::local`), if any.
    local: Option<LocalMatch>,
    /// Channels of the matched map and values per image and pair view (`positions * channels`).
    local_channels: usize,
    local_len: usize,
    /// Unit descriptors per slot and pair view, laid out like `embeddings`.
    descriptors: Vec<f32>,
}

/// The channels and values per image of the maps `local` matches on, checking that `arch`
/// has its block and that its weight is finite.
pub(crate) fn local_extent(arch: &model::Arch, local: LocalMatch) -> Result<(usize, usize)> {
    let shapes = arch.block_shapes()?;
    if local.block == 0 || local.block > shapes.len() || !local.weight.is_finite() {
        return Err(crate::EvalError::Invalid(format!(
            "local matching needs a block from 1 to {} and a finite weight, not block {} and \
             weight {}",
            shapes.len(),
            local.block,
            local.weight
        )));
    }
    let side = shapes[local.block - 1].out_side;
    let channels = arch.blocks[local.block - 1].channels;
    Ok((channels, side * side * channels))
}

impl ModelScorer {
    pub fn new(net: Arc<SiameseNet>, batch: usize) -> Result<Self> {
        Ok(ModelScorer {
            batch: batch.max(1),
            dim: net.arch().embedding_dim()?,
            head: net.head_host()?,
            net,
            views: Vec::new(),
            turns: 1,
            mirrored: false,
            slots: HashMap::new(),
            embeddings: Vec::new(),
            adapt: AdaptConfig::default(),
            copies: Vec::new(),
            adapted: Mutex::new(HashMap::new()),
            support_stats: false,
            trial_scores: HashMap::new(),
            local: None,
            local_channels: 0,
            local_len: 0,
            descriptors: Vec::new(),
        })
    }

    /// Adds `weight` times the local-descriptor similarity on the maps after `block` conv
    /// blocks to every logit, in each pair view (`crate::local`); a weight of 0 turns it off.
    pub fn with_local_match(mut self, local: Option<LocalMatch>) -> Result<Self> {
        let local = local.filter(|l| l.weight != 0.0);
        if let Some(l) = local {
            (self.local_channels, self.local_len) = local_extent(self.net.arch(), l)?;
        }
        self.local = local;
        Ok(self)
    }

    /// Normalises every batch-norm layer, for each trial, with the statistics of its
    /// candidates (in every pair view) instead of the running statistics of training: each
    /// training episode was normalised by its own statistics, and a within-alphabet trial's
    /// candidates are such a set. The query is normalised alike but does not move the
    /// statistics. Each trial is then embedded on its own (candidates x pair views + pair
    /// views images), instead of each image once.
    pub fn with_support_statistics(mut self, on: bool) -> Self {
        self.support_stats = on;
        self
    }

    /// Adapts the head to each trial's candidates before scoring it (`adapt::AdaptConfig`).
    /// Only Koch's head has one weight per dimension to rescale.
    pub fn with_adaptation(mut self, adapt: AdaptConfig) -> Result<Self> {
        if adapt.steps > 0 && !self.head.is_linear() {
            return Err(crate::EvalError::Invalid(
                "support-set adaptation rescales one head weight per embedding dimension; this \
                 network's head has a hidden layer or compares products"
                    .into(),
            ));
        }
        self.adapt = adapt;
        Ok(self)
    }

    /// Averages each embedding over `views` (test-time augmentation).
    pub fn with_views(mut self, views: Vec<AffineParams>) -> Self {
        self.views = views;
        self
    }

    /// Scores each pair `turns` times (1, 2, 4 or 8), both images turned by the same multiple of
    /// `360 / turns` degrees, and averages the head's logits: for networks trained with
    /// rotation classes, to which a turned pair is as familiar as an upright one. With
    /// `with_adaptation`, the adapted head scores every view; it is fitted on upright copies
    /// unless `AdaptConfig::in_views` asks for the same views as the query's.
    pub fn with_turns(mut self, turns: usize) -> Result<Self> {
        check_turns(turns)?;
        self.turns = turns;
        Ok(self)
    }

    /// Also scores each (turned) pair with both images mirrored left-right, doubling the
    /// logits averaged.
    pub fn with_mirrored_pairs(mut self, mirrored: bool) -> Self {
        self.mirrored = mirrored;
        self
    }

    /// Ways each pair is looked at: the turns, and their mirror images when mirrored.
    fn pair_views(&self) -> usize {
        self.turns * if self.mirrored { 2 } else { 1 }
    }

    /// Pair view `k`: `k mod turns` turns of `360 / turns` degrees, mirrored (before the turn)
    /// from `turns` on.
    fn pair_view(&self, k: usize, base: &AffineParams) -> AffineParams {
        let degrees = 360.0 * (k % self.turns) as f32 / self.turns as f32;
        AffineParams {
            rotation_deg: base.rotation_deg + degrees,
            scale_x: if k >= self.turns {
                -base.scale_x
            } else {
                base.scale_x
            },
            ..*base
        }
    }

    fn embedding(&self, id: ImageId) -> &[f32] {
        self.embedding_in_view(id, 0)
    }

    /// Image `id`'s embeddings in the views the adaptation fits in (`copy_views()`), one after
    /// another: the upright one first, so without fitting in views it is the upright one.
    fn embedding_for_fit(&self, id: ImageId) -> &[f32] {
        let at = self.slots[&id] * self.pair_views() * self.dim;
        &self.embeddings[at..at + self.copy_views() * self.dim]
    }

    /// Views each adaptation copy is embedded in: the pair views when fitting in them.
    fn copy_views(&self) -> usize {
        if self.adapt.in_views {
            self.pair_views()
        } else {
            1
        }
    }

    /// The embedding of image `id` in pair view `k`.
    fn embedding_in_view(&self, id: ImageId, k: usize) -> &[f32] {
        let at = (self.slots[&id] * self.pair_views() + k) * self.dim;
        &self.embeddings[at..at + self.dim]
    }

    fn copies_of(&self, id: ImageId) -> Vec<&[f32]> {
        let one = self.copy_views() * self.dim;
        let per = self.adapt.views * one;
        let slot = self.slots[&id];
        self.copies[slot * per..(slot + 1) * per]
            .chunks(one)
            .collect()
    }

    /// The adapted head (weights and the trained bias) for one candidate set, computed once
    /// per set.
    fn adapted_head(&self, candidates: &[ImageId]) -> Arc<Head> {
        let key = candidates.to_vec();
        if let Some(w) = self.adapted.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return w;
        }
        let embeddings: Vec<&[f32]> = candidates
            .iter()
            .map(|&c| self.embedding_for_fit(c))
            .collect();
        let copies: Vec<Vec<&[f32]>> = candidates.iter().map(|&c| self.copies_of(c)).collect();
        let w = Arc::new(Head {
            weights: adapted_weights(
                &self.head.weights,
                self.head.distance,
                &embeddings,
                &copies,
                &self.adapt,
            ),
            ..self.head.clone()
        });
        if let Ok(mut m) = self.adapted.lock() {
            m.insert(key, w.clone());
        }
        w
    }

    /// Embeds `ids` in pair view `k`, averaged over the test-time views if there are any.
    fn embed_view(&self, store: &ImageStore, ids: &[ImageId], k: usize) -> Result<Vec<f32>> {
        if self.views.is_empty() {
            let images = self.images_in_view(store, ids, k);
            return Ok(self.net.embed_images(&images, self.batch)?);
        }
        let mut sum = vec![0f32; ids.len() * self.dim];
        for view in &self.views {
            let turned = self.pair_view(k, view);
            let e = self.embed_warped(store, ids, |_| turned)?;
            sum.iter_mut().zip(e).for_each(|(a, b)| *a += b);
        }
        let n = self.views.len() as f32;
        sum.iter_mut().for_each(|v| *v /= n);
        Ok(sum)
    }

    /// Images `ids` in pair view `k` (no test-time view), as one batch of network inputs.
    fn images_in_view(&self, store: &ImageStore, ids: &[ImageId], k: usize) -> Vec<f32> {
        let n = store.side() * store.side();
        let mut images = vec![0f32; ids.len() * n];
        images
            .par_chunks_mut(n)
            .zip(ids.par_iter())
            .for_each(|(out, &id)| self.write_in_view(store, id, k, out));
        images
    }

    /// Image `id` in pair view `k` (no test-time view), as the network's input.
    fn write_in_view(&self, store: &ImageStore, id: ImageId, k: usize, out: &mut [f32]) {
        if k == 0 {
            store.write_f32(id, out);
        } else {
            let side = store.side();
            let view = self.pair_view(k, &AffineParams::identity());
            view.warp_u8(store.pixels(id), side, out, side);
        }
    }

    /// Embeds `ids` (store images), each warped by its own transform from `warp`.
    fn embed_warped(
        &self,
        store: &ImageStore,
        ids: &[ImageId],
        warp: impl Fn(ImageId) -> AffineParams + Sync,
    ) -> Result<Vec<f32>> {
        let side = store.side();
        let n = side * side;
        let mut images = vec![0f32; ids.len() * n];
        images
            .par_chunks_mut(n)
            .zip(ids.par_iter())
            .for_each(|(out, &id)| warp(id).warp_u8(store.pixels(id), side, out, side));
        Ok(self.net.embed_images(&images, self.batch)?)
    }

    /// `head`'s logit for the pair, averaged over the pair views, plus the weighted local
    /// match if there is one.
    fn logit(&self, head: &Head, a: ImageId, b: ImageId) -> f32 {
        let n = self.pair_views();
        let local = self
            .local
            .map_or(0.0, |l| l.weight * self.local_similarity(a, b));
        if n == 1 {
            return head.logit(self.embedding(a), self.embedding(b)) + local;
        }
        let sum: f32 = (0..n)
            .map(|k| head.logit(self.embedding_in_view(a, k), self.embedding_in_view(b, k)))
            .sum();
        sum / n as f32 + local
    }

    /// Local-descriptor similarity of two prepared images, averaged over the pair views.
    fn local_similarity(&self, a: ImageId, b: ImageId) -> f32 {
        let n = self.pair_views();
        let at = |id: ImageId, k: usize| {
            let start = (self.slots[&id] * n + k) * self.local_len;
            &self.descriptors[start..start + self.local_len]
        };
        let sum: f32 = (0..n)
            .map(|k| local::similarity(at(a, k), at(b, k), self.local_channels))
            .sum();
        sum / n as f32
    }

    /// Unit local descriptors of `ids` in pair view `k` (no test-time views).
    fn describe_view(
        &self,
        store: &ImageStore,
        ids: &[ImageId],
        k: usize,
        block: usize,
    ) -> Result<Vec<f32>> {
        let images = self.images_in_view(store, ids, k);
        let (maps, shape) = self.net.feature_maps(&images, block, self.batch)?;
        let per = shape.iter().product::<usize>();
        Ok(maps
            .par_chunks(per.max(1))
            .flat_map_iter(|m| local::descriptors(m, shape))
            .collect())
    }

    /// One trial's scores with batch norm in each layer using the statistics of its
    /// candidates: candidates (each in every pair view), then the query's views, as one batch.
    fn support_scores(&self, store: &ImageStore, trial: &Trial) -> Result<Vec<f32>> {
        let views = self.pair_views();
        let n = store.side() * store.side();
        let order: Vec<(ImageId, usize)> = trial
            .candidates
            .iter()
            .chain(std::iter::once(&trial.query))
            .flat_map(|&id| (0..views).map(move |k| (id, k)))
            .collect();
        let mut images = vec![0f32; order.len() * n];
        for (out, &(id, k)) in images.chunks_mut(n).zip(&order) {
            self.write_in_view(store, id, k, out);
        }
        let support = trial.candidates.len() * views;
        let e = self.net.embed_images_with_support_stats(&images, support)?;
        let at = |row: usize| &e[row * self.dim..(row + 1) * self.dim];
        Ok((0..trial.candidates.len())
            .map(|c| {
                let sum: f32 = (0..views)
                    .map(|k| self.head.logit(at(support + k), at(c * views + k)))
                    .sum();
                sum / views as f32
            })
            .collect())
    }

    /// Number of distinct images embedded so far.
    pub fn embedded(&self) -> usize {
        self.slots.len()
    }
}

impl ModelScorer {
    /// Each class's logit from its prototype: the query against the mean of the class's
    /// embeddings in each pair view, averaged over the views (Prototypical Networks' rule;
    /// on held-out alphabets it beat the mean of the members' logits at 2, 3 and 5 drawings
    /// on each of three networks, `results/recognize/README.md`). A local match, which has no
    /// embedding to average, adds the mean of the members' terms.
    fn prototype_scores(&self, query: ImageId, classes: &[&[ImageId]]) -> Vec<f32> {
        let views = self.pair_views();
        let mut prototype = vec![0f32; self.dim];
        let mut scores = Vec::with_capacity(classes.len());
        for &ids in classes {
            let n = ids.len() as f32;
            let mut sum = 0f32;
            for k in 0..views {
                let q = self.embedding_in_view(query, k);
                sum += match ids {
                    // One member is its own prototype: exactly the pair's logit.
                    [one] => self.head.logit(q, self.embedding_in_view(*one, k)),
                    _ => {
                        prototype.fill(0.0);
                        for &id in ids {
                            prototype
                                .iter_mut()
                                .zip(self.embedding_in_view(id, k))
                                .for_each(|(p, e)| *p += e / n);
                        }
                        self.head.logit(q, &prototype)
                    }
                };
            }
            let local = self.local.map_or(0.0, |l| {
                let total: f32 = ids.iter().map(|&id| self.local_similarity(query, id)).sum();
                l.weight * total / n
            });
            scores.push(sum / views as f32 + local);
        }
        scores
    }
}

impl Scorer for ModelScorer {
    fn name(&self) -> String {
        let tta = if self.views.is_empty() {
            String::new()
        } else {
            format!(", {} views", self.views.len())
        };
        let adapt = if self.adapt.enabled() {
            let a = &self.adapt;
            format!(
                ", adapted{}: {} steps, {} copies, lr {}, l2 {}",
                if a.in_views { " in the pair views" } else { "" },
                a.steps,
                a.views,
                a.lr,
                a.l2
            )
        } else {
            String::new()
        };
        let turns = match (self.turns, self.mirrored) {
            (1, false) => String::new(),
            (n, false) => format!(", {n} paired turns"),
            (n, true) => format!(", {n} paired turns and their mirror images"),
        };
        let stats = if self.support_stats {
            ", support-set batch-norm statistics"
        } else {
            ""
        };
        let local = self.local.map_or(String::new(), |l| {
            format!(", local match on block {} x {}", l.block, l.weight)
        });
        // Two networks of one name can differ in framing; reports must tell them apart.
        let arch = self.net.arch();
        let framing = if arch.framing.is_canvas() {
            String::new()
        } else {
            format!(", framed by {}", arch.framing)
        };
        format!(
            "siamese ({}{framing}{tta}{turns}{adapt}{stats}{local})",
            arch.name
        )
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        let side = self.net.arch().input_side;
        if store.side() != side {
            return Err(crate::EvalError::Invalid(format!(
                "the model takes {side}x{side} images but the store holds {}x{}",
                store.side(),
                store.side()
            )));
        }
        let mut fresh: Vec<ImageId> = ids
            .iter()
            .copied()
            .filter(|id| !self.slots.contains_key(id))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        if fresh.is_empty() {
            return Ok(());
        }
        let emb = image_major(self.pair_views(), self.dim, |k| {
            self.embed_view(store, &fresh, k)
        })?;
        if self.adapt.enabled() {
            // Copy v of every image in view k, one batch of images per (v, k). A copy's
            // distortion depends only on v, so its views are one drawing looked at alike.
            let distortions = AdaptConfig::distortions();
            let views = self.copy_views();
            let copies = image_major(self.adapt.views * views, self.dim, |m| {
                let (v, k) = (m / views, m % views);
                self.embed_warped(store, &fresh, |id| {
                    let mut rng =
                        data::rng_for(self.adapt.seed, STREAM_ADAPT_COPIES, id.into(), v as u64);
                    let copy = distortions.sample(&mut rng);
                    if self.adapt.in_views {
                        self.pair_view(k, &copy)
                    } else {
                        copy
                    }
                })
            })?;
            self.copies.extend(copies);
        }
        if let Some(l) = self.local {
            let d = image_major(self.pair_views(), self.local_len, |k| {
                self.describe_view(store, &fresh, k, l.block)
            })?;
            self.descriptors.extend(d);
        }
        let base = self.slots.len();
        for (i, id) in fresh.iter().enumerate() {
            self.slots.insert(*id, base + i);
        }
        self.embeddings.extend(emb);
        Ok(())
    }

    fn prepare_trials(&mut self, store: &ImageStore, trials: &[Trial]) -> Result<()> {
        self.prepare(store, &trial_images(trials))?;
        if !self.support_stats {
            return Ok(());
        }
        if self.adapt.enabled() || !self.views.is_empty() || self.local.is_some() {
            return Err(crate::EvalError::Invalid(
                "support-set statistics do not combine with test-time views, the \
                 support-set adaptation or local matching"
                    .into(),
            ));
        }
        let fresh: Vec<(TrialKey, &Trial)> = trials
            .iter()
            .map(|t| ((t.query, t.candidates.clone()), t))
            .filter(|(key, _)| !self.trial_scores.contains_key(key))
            .collect();
        let scores = fresh
            .par_iter()
            .map(|(_, t)| self.support_scores(store, t))
            .collect::<Result<Vec<_>>>()?;
        for ((key, _), s) in fresh.into_iter().zip(scores) {
            self.trial_scores.insert(key, s);
        }
        Ok(())
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        self.logit(&self.head, a, b)
    }

    fn trial_scores(&self, query: ImageId, candidates: &[ImageId]) -> Vec<f32> {
        if self.support_stats {
            // `prepare_trials` scored every trial; one it did not see is scored as a pair
            // scorer would, which only a caller skipping it can reach.
            if let Some(s) = self.trial_scores.get(&(query, candidates.to_vec())) {
                return s.clone();
            }
            tracing::warn!("a trial was not prepared: scored with the running statistics");
        }
        let adapted = self.adapt.enabled().then(|| self.adapted_head(candidates));
        let head = adapted.as_deref().unwrap_or(&self.head);
        candidates
            .iter()
            .map(|&c| self.logit(head, query, c))
            .collect()
    }

    fn class_scores(&self, query: ImageId, classes: &[&[ImageId]]) -> Vec<f32> {
        if self.support_stats || self.adapt.enabled() {
            // Their scores are fitted to a trial's candidate set as a whole: no embedding of
            // a drawing stands on its own to average.
            return mean_of_members(self, query, classes);
        }
        self.prototype_scores(query, classes)
    }
}

/// Embeddings of the same images in `views` ways (`embed(k)`: all images, way `k`), laid out
/// image-major like the scorer's slots: image i's `views` rows are contiguous.
fn image_major(
    views: usize,
    dim: usize,
    embed: impl Fn(usize) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    if views == 1 {
        return embed(0);
    }
    let mut out = Vec::new();
    for k in 0..views {
        let e = embed(k)?;
        if out.is_empty() {
            out = vec![0f32; e.len() * views];
        }
        for (i, row) in e.chunks(dim).enumerate() {
            let at = (i * views + k) * dim;
            out[at..at + dim].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// Several networks voting: a pair's score is the mean of the members' head logits. Each
/// member embeds (and augments at test time) on its own.
pub struct EnsembleScorer {
    members: Vec<ModelScorer>,
}

impl EnsembleScorer {
    pub fn new(members: Vec<ModelScorer>) -> Result<Self> {
        if members.is_empty() {
            return Err(crate::EvalError::Invalid(
                "an ensemble needs at least one model".into(),
            ));
        }
        Ok(EnsembleScorer { members })
    }
}

impl Scorer for EnsembleScorer {
    fn name(&self) -> String {
        let names: Vec<String> = self.members.iter().map(|m| m.name()).collect();
        format!("ensemble of {}: {}", names.len(), names.join(" + "))
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.prepare(store, ids))
    }

    fn prepare_trials(&mut self, store: &ImageStore, trials: &[Trial]) -> Result<()> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.prepare_trials(store, trials))
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        let sum: f32 = self.members.iter().map(|m| m.similarity(a, b)).sum();
        sum / self.members.len() as f32
    }

    /// The mean of the members' trial scores, so that each member adapts on its own.
    fn trial_scores(&self, query: ImageId, candidates: &[ImageId]) -> Vec<f32> {
        self.mean_over_members(candidates.len(), |m| m.trial_scores(query, candidates))
    }

    /// The mean of the members' class scores, each member with its own prototypes.
    fn class_scores(&self, query: ImageId, classes: &[&[ImageId]]) -> Vec<f32> {
        self.mean_over_members(classes.len(), |m| m.class_scores(query, classes))
    }
}

impl EnsembleScorer {
    /// The members' `len` scores (`score(member)`), averaged score by score.
    fn mean_over_members(&self, len: usize, score: impl Fn(&ModelScorer) -> Vec<f32>) -> Vec<f32> {
        let mut sum = vec![0f32; len];
        for m in &self.members {
            sum.iter_mut().zip(score(m)).for_each(|(s, x)| *s += x);
        }
        let n = self.members.len() as f32;
        sum.into_iter().map(|s| s / n).collect()
    }
}

/// The test-time views behind `--tta`: the image itself and four shifts of 2 native pixels
/// (inside the range the training distortions cover).
pub fn shift_views() -> Vec<AffineParams> {
    let shift = |x: f32, y: f32| AffineParams {
        translate_x: x,
        translate_y: y,
        ..AffineParams::identity()
    };
    vec![
        AffineParams::identity(),
        shift(2.0, 0.0),
        shift(-2.0, 0.0),
        shift(0.0, 2.0),
        shift(0.0, -2.0),
    ]
}
