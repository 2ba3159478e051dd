//! N-way training episodes: one support drawing of each of N characters and `queries` other
//! drawings of each, so a loss can ask "which of the N is the query?" exactly as the one-shot
//! test does. Episodes can be drawn within one alphabet (the hard, Lake/Koch case), and
//! characters can be rotated by multiples of 90 degrees, mirrored, or united with another
//! character's ink to make new classes.

use rand::Rng as _;
use rand::seq::{IndexedRandom, SliceRandom};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{AffineConfig, AffineParams};
use crate::error::{DataError, Result};
use crate::neighbours::HardNegatives;
use crate::split::Subset;
use crate::store::{ImageId, ImageStore};

const STREAM_EPISODES: u32 = 0xe915;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodeConfig {
    pub ways: usize,
    /// Query drawings per character.
    pub queries: usize,
    /// Probability that an episode's characters all come from one alphabet.
    pub within_alphabet: f32,
    /// A within-alphabet episode takes every class in one variant (one turn, one side of the
    /// mirror), as a test trial shows its candidates: all upright, or with paired turns all
    /// turned alike. An alphabet with fewer characters than `ways` fills the rest with its
    /// characters in other variants. Off, a within-alphabet episode mixes its variants.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub within_one_variant: bool,
    /// Treat each 90-degree rotation of a character as a class of its own.
    pub rotations: bool,
    /// With `rotations`, each 45-degree turn is a class of its own (8 per character) instead
    /// of each 90-degree one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub eighth_turns: bool,
    /// Treat the mirror image (left-right) of a character, and of each of its rotations, as a
    /// class of its own.
    pub mirrors: bool,
    /// Lake's two-drawer design in training too: every support of an episode is by one drawer
    /// and every first query by another, as every test trial's candidates and query are (a
    /// character lacking either drawing falls back to drawings by any drawers).
    pub two_drawers: bool,
    /// Probability that a class of an episode is a virtual one: the union of the ink of its
    /// character and of a partner character from the same alphabet (each drawing overlaid
    /// with the partner's drawing by the same drawer), so that new classes are made that
    /// differ from real ones by whole extra strokes. 0 (the default) draws nothing extra.
    pub overlays: f32,
    pub augment: Option<AffineConfig>,
    pub side: usize,
}

/// How a class is made from a character: eighth turns (45 degrees each), then (optionally)
/// a mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub eighth_turns: u8,
    pub mirrored: bool,
}

impl Variant {
    /// Composes the variant with a sampled distortion. The mirror flips the character's own
    /// x axis (a negative x scale, applied before shear and rotation), so the distortion
    /// stays in the ranges it was sampled from.
    pub fn apply(self, p: &mut AffineParams) {
        p.rotation_deg += 45.0 * self.eighth_turns as f32;
        if self.mirrored {
            p.scale_x = -p.scale_x;
        }
    }
}

impl EpisodeConfig {
    /// Turned classes made from each character: 1, 4 (rotations) or 8 (eighth turns).
    pub fn turns(&self) -> usize {
        match (self.rotations, self.eighth_turns) {
            (false, _) => 1,
            (true, false) => 4,
            (true, true) => 8,
        }
    }

    /// Classes made from each character: the turns, times 2 with mirrors.
    pub fn variants(&self) -> usize {
        self.turns() * if self.mirrors { 2 } else { 1 }
    }

    /// Variant `k` (in `0..variants()`): the rotation is `k mod turns()` turns of
    /// `360 / turns()` degrees; with mirrors, the upper half of the indices are the mirror
    /// images.
    pub fn variant(&self, k: u8) -> Variant {
        let turns = self.turns() as u8;
        Variant {
            eighth_turns: (k % turns) * (8 / turns),
            mirrored: self.mirrors && k >= turns,
        }
    }
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        EpisodeConfig {
            ways: 20,
            queries: 2,
            within_alphabet: 0.5,
            within_one_variant: false,
            rotations: false,
            eighth_turns: false,
            mirrors: false,
            two_drawers: false,
            overlays: 0.0,
            augment: None,
            side: 28,
        }
    }
}

/// Images `[ways * (1 + queries), 1, side, side]`: the `ways` supports first (class `j` at
/// position `j`), then the queries; `labels[q]` is the class of query `q`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeBatch {
    pub side: usize,
    pub ways: usize,
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub ids: Vec<ImageId>,
    /// The drawing overlaid on each image (`EpisodeConfig::overlays`), in `ids` order.
    pub overlays: Vec<Option<ImageId>>,
    /// Every image's class among all of the sampler's classes (supports, then queries; see
    /// [`EpisodeSampler::class_count`]), for a loss over every training class at once; a
    /// virtual (overlay) class is numbered as its own character, so such a loss refuses them.
    pub classes: Vec<u32>,
}

/// One image of an episode: a drawing, the partner drawing overlaid on it (virtual classes),
/// its class's variant, its label in the episode and its class among the sampler's.
struct Pick {
    id: ImageId,
    overlay: Option<ImageId>,
    variant: u8,
    label: u32,
    class: u32,
}

pub struct EpisodeSampler<'a> {
    store: &'a ImageStore,
    config: EpisodeConfig,
    seed: u64,
    /// Characters with their allowed images (at least two each).
    characters: Vec<Vec<ImageId>>,
    /// Positions in `characters` per alphabet.
    alphabets: Vec<Vec<usize>>,
    /// Positions in `alphabets` of those with enough classes for a within-alphabet episode.
    episode_alphabets: Vec<usize>,
    /// Each character's position in `alphabets` (overlay partners come from there).
    alphabet_of: Vec<usize>,
    /// Every drawer with a drawing in `characters`, ascending.
    drawers: Vec<u8>,
}

impl<'a> EpisodeSampler<'a> {
    pub fn new(
        store: &'a ImageStore,
        subset: &Subset,
        config: EpisodeConfig,
        seed: u64,
    ) -> Result<Self> {
        if config.ways < 2 || config.queries == 0 || config.side == 0 {
            return Err(DataError::Config(
                "episodes need at least 2 ways, 1 query and a positive side".into(),
            ));
        }
        if !(0.0..=1.0).contains(&config.within_alphabet) {
            return Err(DataError::Config(
                "within-alphabet episode fraction must be in [0, 1]".into(),
            ));
        }
        if let Some(a) = &config.augment {
            a.validate().map_err(DataError::Config)?;
        }
        if !(0.0..=1.0).contains(&config.overlays) {
            return Err(DataError::Config(format!(
                "the overlay class fraction must be in [0, 1], not {}",
                config.overlays
            )));
        }
        let mut characters = Vec::new();
        let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
        for &c in &subset.characters {
            let imgs = subset.images_of(store, c);
            if imgs.len() < 2 {
                continue;
            }
            let a = store.characters()[c as usize].alphabet;
            match groups.iter_mut().find(|(x, _)| *x == a) {
                Some((_, v)) => v.push(characters.len()),
                None => groups.push((a, vec![characters.len()])),
            }
            characters.push(imgs);
        }
        let variants = config.variants();
        let classes = characters.len() * variants;
        if classes < config.ways {
            return Err(DataError::NotEnoughCharacters {
                ways: config.ways,
                available: classes,
                scope: " for episodes".into(),
            });
        }
        let alphabets: Vec<Vec<usize>> = groups.into_iter().map(|(_, v)| v).collect();
        let mut alphabet_of = vec![0; characters.len()];
        for (a, members) in alphabets.iter().enumerate() {
            for &m in members {
                alphabet_of[m] = a;
            }
        }
        let episode_alphabets = (0..alphabets.len())
            .filter(|&a| alphabets[a].len() * variants >= config.ways)
            .collect();
        let mut drawers: Vec<u8> = characters
            .iter()
            .flatten()
            .map(|&id| store.drawer_of(id))
            .collect();
        drawers.sort_unstable();
        drawers.dedup();
        Ok(EpisodeSampler {
            store,
            config,
            seed,
            characters,
            alphabets,
            episode_alphabets,
            alphabet_of,
            drawers,
        })
    }

    pub fn config(&self) -> &EpisodeConfig {
        &self.config
    }

    /// Classes the sampler draws from: each character times its variants (turns, mirrors).
    /// [`EpisodeBatch::classes`] numbers them `character * variants + variant`, in the order of
    /// the subset's characters.
    pub fn class_count(&self) -> usize {
        self.characters.len() * self.config.variants()
    }

    pub fn images_per_episode(&self) -> usize {
        self.config.ways * (1 + self.config.queries)
    }

    /// Checks that `hard` fits this sampler: a neighbour row per class, enough neighbours to
    /// fill an episode, a fraction in [0, 1].
    pub fn check_hard_negatives(&self, hard: &HardNegatives) -> Result<()> {
        let n = &hard.neighbours;
        if !(0.0..=1.0).contains(&hard.fraction) {
            return Err(DataError::Config(format!(
                "the hard-negative episode fraction must be in [0, 1], not {}",
                hard.fraction
            )));
        }
        if n.classes() != self.class_count() {
            return Err(DataError::Config(format!(
                "the neighbour table has {} classes; the sampler has {}",
                n.classes(),
                self.class_count()
            )));
        }
        if n.k() + 1 < self.config.ways {
            return Err(DataError::Config(format!(
                "{}-way episodes need at least {} neighbours per class, not {}",
                self.config.ways,
                self.config.ways - 1,
                n.k()
            )));
        }
        Ok(())
    }

    /// `per_class` drawings of every class, in class order (each character's first drawings,
    /// turned and mirrored as the class is, never distorted): what a model embeds to find each
    /// class's neighbours. `class_count() * per_class` images of `side x side` values.
    pub fn class_images(&self, per_class: usize) -> Vec<f32> {
        let cfg = &self.config;
        let n = cfg.side * cfg.side;
        let jobs: Vec<(ImageId, u8)> = self
            .characters
            .iter()
            .flat_map(|imgs| {
                (0..cfg.variants() as u8)
                    .flat_map(move |v| (0..per_class).map(move |i| (imgs[i % imgs.len()], v)))
            })
            .collect();
        let mut out = vec![0.0; jobs.len() * n];
        out.par_chunks_mut(n)
            .zip(jobs.par_iter())
            .for_each(|(out, &(id, variant))| {
                let mut p = AffineParams::identity();
                cfg.variant(variant).apply(&mut p);
                self.render(id, &p, out);
            });
        out
    }

    /// Classes (character position, variant) of episode `index`; see [`EpisodeConfig::variant`].
    fn classes(&self, rng: &mut crate::Rng, hard: Option<&HardNegatives>) -> Vec<(usize, u8)> {
        let ways = self.config.ways;
        let variants = self.config.variants();
        // Drawn only with a table, so that episodes without one stay what they always were.
        if let Some(h) = hard
            && rng.random_bool(h.fraction as f64)
        {
            let anchor = rng.random_range(0..self.class_count());
            let near = h.neighbours.of(anchor);
            return std::iter::once(anchor)
                .chain(
                    rand::seq::index::sample(rng, near.len(), ways - 1)
                        .into_iter()
                        .map(|i| near[i] as usize),
                )
                .map(|class| (class / variants, (class % variants) as u8))
                .collect();
        }
        let pool: Vec<usize> = if !self.episode_alphabets.is_empty()
            && rng.random_bool(self.config.within_alphabet as f64)
        {
            let &a = self.episode_alphabets.choose(rng).expect("non-empty");
            if self.config.within_one_variant {
                return one_variant_first(&self.alphabets[a], variants, ways, rng);
            }
            self.alphabets[a].clone()
        } else {
            (0..self.characters.len()).collect()
        };
        // Sample distinct (character, variant) classes.
        let total = pool.len() * variants;
        rand::seq::index::sample(rng, total, ways)
            .into_iter()
            .map(|k| (pool[k / variants], (k % variants) as u8))
            .collect()
    }

    /// For each class, the partner character whose ink is overlaid on it (`None`: a real
    /// class), each drawn with probability `overlays` from the class's alphabet. Two virtual
    /// classes of one turn never have the same pair of characters, which would make them one
    /// class under two labels.
    fn partners(&self, classes: &[(usize, u8)], rng: &mut crate::Rng) -> Vec<Option<usize>> {
        let mut partners: Vec<Option<usize>> = Vec::with_capacity(classes.len());
        for &(c, variant) in classes {
            let mut partner = None;
            if rng.random_bool(self.config.overlays as f64) {
                let mates = &self.alphabets[self.alphabet_of[c]];
                let clashes = |p: usize| {
                    p == c
                        || classes
                            .iter()
                            .zip(&partners)
                            .any(|(&(ci, vi), &pi)| vi == variant && ci == p && pi == Some(c))
                };
                // A few tries suffice: a clash rules out at most two of an alphabet's characters.
                for _ in 0..8 {
                    let &p = mates.choose(rng).expect("a character's alphabet holds it");
                    if !clashes(p) {
                        partner = Some(p);
                        break;
                    }
                }
            }
            partners.push(partner);
        }
        partners
    }

    /// The drawing of character `c` by `drawer`, or else any of its drawings.
    fn drawing_by(&self, c: usize, drawer: u8, rng: &mut crate::Rng) -> ImageId {
        let imgs = &self.characters[c];
        match imgs.iter().find(|&&i| self.store.drawer_of(i) == drawer) {
            Some(&id) => id,
            None => *imgs
                .choose(rng)
                .expect("characters keep at least two drawings"),
        }
    }

    /// Fills `batch` with episode `index` (deterministic in the seed and the index).
    pub fn fill(&self, index: u64, batch: &mut EpisodeBatch) {
        self.fill_with(index, batch, None);
    }

    /// [`EpisodeSampler::fill`], with `hard` making a fraction of the episodes of an anchor
    /// class and its neighbours (deterministic in the seed, the index and the table; check the
    /// table with [`EpisodeSampler::check_hard_negatives`]).
    pub fn fill_with(&self, index: u64, batch: &mut EpisodeBatch, hard: Option<&HardNegatives>) {
        let cfg = &self.config;
        let mut rng = crate::rng_for(self.seed, STREAM_EPISODES, index, 0);
        let classes = self.classes(&mut rng, hard);
        // Drawn only when asked for, so episodes without it stay what they always were.
        let drawers = (cfg.two_drawers && self.drawers.len() >= 2).then(|| {
            let pair: Vec<u8> = self.drawers.choose_multiple(&mut rng, 2).copied().collect();
            (pair[0], pair[1])
        });
        // Drawn only when asked for, so episodes without overlays stay what they always were.
        let partners = if cfg.overlays > 0.0 {
            self.partners(&classes, &mut rng)
        } else {
            vec![None; classes.len()]
        };
        // For each class: a support and `queries` other drawings, each with its overlay.
        let mut picks: Vec<Pick> = Vec::with_capacity(self.images_per_episode());
        let mut queries = Vec::new();
        let variants = cfg.variants();
        for (label, (&(c, variant), &partner)) in classes.iter().zip(&partners).enumerate() {
            let class = (c * variants + variant as usize) as u32;
            let imgs = &self.characters[c];
            let mut chosen: Vec<ImageId> = imgs
                .choose_multiple(&mut rng, (1 + cfg.queries).min(imgs.len()))
                .copied()
                .collect();
            chosen.shuffle(&mut rng);
            if let Some((support_drawer, query_drawer)) = drawers {
                self.pin(&mut chosen, imgs, 0, support_drawer);
                self.pin(&mut chosen, imgs, 1, query_drawer);
            }
            let mut pick = |id: ImageId| Pick {
                id,
                overlay: partner.map(|p| self.drawing_by(p, self.store.drawer_of(id), &mut rng)),
                variant,
                label: label as u32,
                class,
            };
            picks.push(pick(chosen[0]));
            for q in 0..cfg.queries {
                // With fewer drawings than queries, repeat (augmentation makes them differ).
                queries.push(pick(chosen[1 + q % (chosen.len() - 1)]));
            }
        }
        picks.extend(queries);
        let n = cfg.side * cfg.side;
        batch.side = cfg.side;
        batch.ways = cfg.ways;
        batch.images.resize(picks.len() * n, 0.0);
        batch.labels = picks[cfg.ways..].iter().map(|p| p.label).collect();
        batch.ids = picks.iter().map(|p| p.id).collect();
        batch.overlays = picks.iter().map(|p| p.overlay).collect();
        batch.classes = picks.iter().map(|p| p.class).collect();
        batch
            .images
            .par_chunks_mut(n)
            .zip(picks.par_iter())
            .enumerate()
            .for_each(|(i, (out, pick))| {
                let mut rng = crate::rng_for(self.seed, STREAM_EPISODES, index, 1 + i as u64);
                let mut p = match &cfg.augment {
                    Some(a) => a.sample(&mut rng),
                    None => AffineParams::identity(),
                };
                cfg.variant(pick.variant).apply(&mut p);
                self.render(pick.id, &p, out);
                if let Some(extra) = pick.overlay {
                    // One distortion for both: the union is one drawing.
                    let mut ink = vec![0.0; n];
                    self.render(extra, &p, &mut ink);
                    out.iter_mut().zip(ink).for_each(|(o, e)| *o = o.max(e));
                }
            });
    }

    /// Drawing `id` through `p` at the episode side (copied when `p` changes nothing).
    fn render(&self, id: ImageId, p: &AffineParams, out: &mut [f32]) {
        let side = self.config.side;
        if *p == AffineParams::identity() && self.store.side() == side {
            self.store.write_f32(id, out);
        } else {
            p.warp_u8(self.store.pixels(id), self.store.side(), out, side);
        }
    }

    /// Puts `drawer`'s drawing among `imgs` at `chosen[pos]`, keeping `chosen` free of
    /// repeats; leaves `chosen` as it is when there is no such drawing. It searches `imgs`,
    /// the subset's drawings, not the store (`ImageStore::image_of`), so that drawers held out
    /// by `--train-drawers` stay out.
    fn pin(&self, chosen: &mut [ImageId], imgs: &[ImageId], pos: usize, drawer: u8) {
        let Some(&id) = imgs.iter().find(|&&i| self.store.drawer_of(i) == drawer) else {
            return;
        };
        if pos >= chosen.len() {
            return;
        }
        match chosen.iter().position(|&c| c == id) {
            Some(j) => chosen.swap(j, pos),
            None => chosen[pos] = id,
        }
    }

    pub fn episode(&self, index: u64) -> EpisodeBatch {
        self.episode_with(index, None)
    }

    pub fn episode_with(&self, index: u64, hard: Option<&HardNegatives>) -> EpisodeBatch {
        let mut b = EpisodeBatch::default();
        self.fill_with(index, &mut b, hard);
        b
    }
}

/// `ways` distinct classes of the characters `pool`: as many as it holds in one variant drawn
/// at random (characters in random order), the rest from its other variants. The one-variant
/// classes come first; order carries nothing, since every query is scored against every
/// support alike.
fn one_variant_first(
    pool: &[usize],
    variants: usize,
    ways: usize,
    rng: &mut crate::Rng,
) -> Vec<(usize, u8)> {
    let variant = rng.random_range(0..variants) as u8;
    let take = ways.min(pool.len());
    let mut classes: Vec<(usize, u8)> = rand::seq::index::sample(rng, pool.len(), take)
        .into_iter()
        .map(|i| (pool[i], variant))
        .collect();
    if take < ways {
        let others = variants - 1;
        let rest = rand::seq::index::sample(rng, pool.len() * others, ways - take);
        classes.extend(rest.into_iter().map(|k| {
            let v = (k % others) as u8;
            (pool[k / others], if v >= variant { v + 1 } else { v })
        }));
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbours::Neighbours;
    use crate::synthetic::{SyntheticSpec, store};
    use std::collections::HashSet;

    #[test]
    fn episodes_have_one_support_per_class_and_labelled_queries() {
        let s = store(SyntheticSpec::new(3, 8, 6), 12);
        let cfg = EpisodeConfig {
            ways: 5,
            queries: 2,
            within_alphabet: 1.0,
            side: 12,
            ..Default::default()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), cfg, 4).unwrap();
        for index in 0..50 {
            let e = sampler.episode(index);
            assert_eq!(e.images.len(), 15 * 144);
            assert_eq!(e.labels.len(), 10);
            let supports: Vec<u32> = e.ids[..5].iter().map(|&id| s.character_of(id)).collect();
            assert_eq!(
                supports.iter().collect::<HashSet<_>>().len(),
                5,
                "distinct classes"
            );
            let alphabets: HashSet<u32> = e.ids.iter().map(|&id| s.alphabet_of(id)).collect();
            assert_eq!(alphabets.len(), 1, "within one alphabet");
            for (q, &label) in e.labels.iter().enumerate() {
                let id = e.ids[5 + q];
                assert_eq!(s.character_of(id), supports[label as usize]);
                assert_ne!(
                    id, e.ids[label as usize],
                    "query and support are different drawings"
                );
            }
        }
        let again = sampler.episode(7);
        assert_eq!(again.ids, sampler.episode(7).ids);
        assert_eq!(again.images, sampler.episode(7).images);
    }

    #[test]
    fn within_one_variant_episodes_show_every_class_turned_alike() {
        // 3 alphabets x 8 characters x 4 turns. Six ways fit in one turn of an alphabet; ten
        // take all 8 characters in one turn and 2 more classes in other turns.
        let s = store(SyntheticSpec::new(3, 8, 6), 12);
        let config = |ways, one| EpisodeConfig {
            ways,
            queries: 1,
            within_alphabet: 1.0,
            within_one_variant: one,
            rotations: true,
            side: 12,
            ..Default::default()
        };
        let variants_of = |e: &EpisodeBatch, ways: usize| -> Vec<u32> {
            e.classes[..ways].iter().map(|c| c % 4).collect()
        };
        let six = EpisodeSampler::new(&s, &Subset::all(&s), config(6, true), 3).unwrap();
        let mut turns_seen = HashSet::new();
        for index in 0..40 {
            let e = six.episode(index);
            let v = variants_of(&e, 6);
            assert!(v.iter().all(|&t| t == v[0]), "one turn: {v:?}");
            turns_seen.insert(v[0]);
            let characters: HashSet<u32> =
                e.ids[..6].iter().map(|&id| s.character_of(id)).collect();
            assert_eq!(characters.len(), 6, "distinct characters");
            let alphabets: HashSet<u32> = e.ids.iter().map(|&id| s.alphabet_of(id)).collect();
            assert_eq!(alphabets.len(), 1);
        }
        assert_eq!(turns_seen.len(), 4, "the turn is drawn per episode");

        let ten = EpisodeSampler::new(&s, &Subset::all(&s), config(10, true), 3).unwrap();
        for index in 0..40 {
            let e = ten.episode(index);
            assert_eq!(e.classes[..10].iter().collect::<HashSet<_>>().len(), 10);
            let v = variants_of(&e, 10);
            let most = (0..4).map(|t| v.iter().filter(|&&x| x == t).count()).max();
            assert_eq!(
                most,
                Some(8),
                "the alphabet's 8 characters in one turn: {v:?}"
            );
        }

        // Off, a within-alphabet episode mixes its turns.
        let mixed = EpisodeSampler::new(&s, &Subset::all(&s), config(6, false), 3).unwrap();
        let mixes = (0..40)
            .filter(|&i| {
                let v = variants_of(&mixed.episode(i), 6);
                v.iter().any(|&t| t != v[0])
            })
            .count();
        assert!(mixes > 30, "{mixes} of 40 mixed");
    }

    #[test]
    fn every_image_carries_its_class_among_all_the_samplers_classes() {
        let s = store(SyntheticSpec::new(3, 8, 6), 12);
        let cfg = EpisodeConfig {
            ways: 6,
            queries: 2,
            within_alphabet: 0.5,
            rotations: true,
            side: 12,
            ..Default::default()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), cfg, 9).unwrap();
        assert_eq!(sampler.class_count(), 3 * 8 * 4);
        let mut character_of_class = std::collections::HashMap::new();
        let mut seen = HashSet::new();
        for index in 0..60 {
            let e = sampler.episode(index);
            assert_eq!(e.classes.len(), e.ids.len());
            let supports = &e.classes[..6];
            assert_eq!(supports.iter().collect::<HashSet<_>>().len(), 6);
            for (q, &label) in e.labels.iter().enumerate() {
                assert_eq!(e.classes[6 + q], supports[label as usize], "query {q}");
            }
            for (&class, &id) in e.classes.iter().zip(&e.ids) {
                assert!((class as usize) < sampler.class_count());
                // One character per class, and the four turns of a character share it.
                let c = *character_of_class
                    .entry(class)
                    .or_insert(s.character_of(id));
                assert_eq!(c, s.character_of(id), "class {class}");
                assert_eq!(
                    *character_of_class.entry(class / 4 * 4).or_insert(c),
                    c,
                    "turns of one character"
                );
                seen.insert(class);
            }
        }
        // Every turn is used, so the classes are not the characters renumbered.
        assert_eq!(
            (0..4).filter(|t| seen.iter().any(|c| c % 4 == *t)).count(),
            4
        );
    }

    #[test]
    fn two_drawer_episodes_take_supports_from_one_drawer_and_queries_from_another() {
        let s = store(SyntheticSpec::new(2, 8, 6), 12);
        let cfg = EpisodeConfig {
            ways: 5,
            queries: 2,
            within_alphabet: 0.5,
            side: 12,
            ..Default::default()
        };
        let drawers_of = |e: &EpisodeBatch, ids: &mut dyn Iterator<Item = usize>| -> HashSet<u8> {
            ids.map(|i| s.drawer_of(e.ids[i])).collect()
        };
        let mixed = EpisodeSampler::new(&s, &Subset::all(&s), cfg.clone(), 3).unwrap();
        let mixed_support_drawers: usize = (0..20)
            .map(|i| drawers_of(&mixed.episode(i), &mut (0..5)).len())
            .max()
            .unwrap();
        assert!(mixed_support_drawers > 1, "by default supports mix drawers");

        let two = EpisodeConfig {
            two_drawers: true,
            ..cfg
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), two, 3).unwrap();
        let mut pairs = HashSet::new();
        for index in 0..40 {
            let e = sampler.episode(index);
            let support = drawers_of(&e, &mut (0..5));
            // Queries are stored class by class: `queries` of class 0, then of class 1, ...
            let first = drawers_of(&e, &mut (0..5).map(|c| 5 + 2 * c));
            let second = drawers_of(&e, &mut (0..5).map(|c| 5 + 2 * c + 1));
            assert_eq!(support.len(), 1, "episode {index}: supports by one drawer");
            assert_eq!(
                first.len(),
                1,
                "episode {index}: first queries by one drawer"
            );
            assert!(support.is_disjoint(&first));
            assert!(second.is_disjoint(&support) && second.is_disjoint(&first));
            for (q, &label) in e.labels.iter().enumerate() {
                assert_eq!(
                    s.character_of(e.ids[5 + q]),
                    s.character_of(e.ids[label as usize])
                );
            }
            pairs.insert((
                *support.iter().next().unwrap(),
                *first.iter().next().unwrap(),
            ));
        }
        assert!(pairs.len() > 10, "the two drawers change between episodes");
    }

    #[test]
    fn overlay_classes_are_unions_of_two_characters_of_one_alphabet_by_one_drawer() {
        // Two alphabets of 6 characters; drawer 6 has no drawing of character 0 of each, so
        // that a partner sometimes lacks the drawer.
        let full = store(SyntheticSpec::new(2, 6, 6), 12);
        let mut b = crate::store::StoreBuilder::new(12);
        for (a, alphabet) in full.alphabets().iter().enumerate() {
            let new_alphabet = b.alphabet(&alphabet.name);
            for &c in &alphabet.characters {
                let character = b.character(new_alphabet, &full.characters()[c as usize].name);
                for &id in &full.characters()[c as usize].images {
                    if full.drawer_of(id) == 6 && c % 6 == 0 {
                        continue;
                    }
                    let mut ink = vec![0.0; 144];
                    full.write_f32(id, &mut ink);
                    b.push(character, full.drawer_of(id), &ink, None);
                }
            }
            assert_eq!(a as u32, new_alphabet);
        }
        let s = b.finish();
        let subset = Subset::all(&s);
        let cfg = EpisodeConfig {
            ways: 5,
            queries: 2,
            within_alphabet: 0.5,
            rotations: true,
            side: 12,
            ..Default::default()
        };
        let plain = EpisodeSampler::new(&s, &subset, cfg.clone(), 5).unwrap();
        let half = EpisodeConfig {
            overlays: 0.5,
            ..cfg.clone()
        };
        let sampler = EpisodeSampler::new(&s, &subset, half, 5).unwrap();
        let (mut virtual_classes, mut classes, mut other_drawer) = (0, 0, 0);
        for index in 0..200 {
            let e = sampler.episode(index);
            assert_eq!(e.overlays.len(), e.ids.len());
            let mut unions = HashSet::new();
            for class in 0..5 {
                // The support and the class's queries, as in `episodes_have_...` above.
                let members: Vec<usize> = std::iter::once(class)
                    .chain((0..2).map(|q| 5 + 2 * class + q))
                    .collect();
                let partner = e.overlays[class].map(|p| s.character_of(p));
                classes += 1;
                for &i in &members {
                    let (id, over) = (e.ids[i], e.overlays[i]);
                    assert_eq!(
                        over.map(|p| s.character_of(p)),
                        partner,
                        "one partner a class"
                    );
                    let mut expected = vec![0.0; 144];
                    s.write_f32(id, &mut expected);
                    if let Some(p) = over {
                        assert_ne!(s.character_of(p), s.character_of(id));
                        assert_eq!(s.alphabet_of(p), s.alphabet_of(id));
                        if s.drawer_of(p) != s.drawer_of(id) {
                            assert_eq!(s.drawer_of(id), 6, "another drawer only if needed");
                            other_drawer += 1;
                        }
                        let mut ink = vec![0.0; 144];
                        s.write_f32(p, &mut ink);
                        expected
                            .iter_mut()
                            .zip(ink)
                            .for_each(|(a, b)| *a = a.max(b));
                    }
                    if e.classes[i].is_multiple_of(4) {
                        // Upright classes: the union of the two drawings, pixel for pixel.
                        assert_eq!(&e.images[i * 144..(i + 1) * 144], &expected[..]);
                    }
                }
                if let Some(p) = partner {
                    virtual_classes += 1;
                    let c = s.character_of(e.ids[class]);
                    let turn = e.classes[class] % 4;
                    assert!(
                        unions.insert((c.min(p), c.max(p), turn)),
                        "episode {index}: two labels for one union"
                    );
                }
            }
        }
        let share = virtual_classes as f64 / classes as f64;
        assert!((0.42..0.58).contains(&share), "{share}");
        assert!(other_drawer > 0, "the missing drawing was replaced");
        // Without overlays nothing is drawn extra: the plain sampler's episodes are unchanged.
        let zero = EpisodeSampler::new(&s, &subset, cfg.clone(), 5).unwrap();
        for index in 0..20 {
            let (a, b) = (plain.episode(index), zero.episode(index));
            assert_eq!(a, b);
            assert!(a.overlays.iter().all(Option::is_none));
        }
        for bad in [-0.1, 1.5, f32::NAN] {
            let cfg = EpisodeConfig {
                overlays: bad,
                ..cfg.clone()
            };
            let err = EpisodeSampler::new(&s, &subset, cfg, 0).err().unwrap();
            assert!(err.to_string().contains("overlay class fraction"), "{err}");
        }
    }

    #[test]
    fn rotations_make_more_classes() {
        let s = store(SyntheticSpec::new(1, 3, 4), 12);
        let plain = EpisodeConfig {
            ways: 5,
            queries: 1,
            within_alphabet: 0.0,
            side: 12,
            ..Default::default()
        };
        assert!(EpisodeSampler::new(&s, &Subset::all(&s), plain.clone(), 0).is_err());
        let rotated = EpisodeConfig {
            rotations: true,
            ..plain.clone()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), rotated, 0).unwrap();
        let e = sampler.episode(0);
        assert_eq!(e.labels.len(), 5);
        // Mirrors alone double the 3 characters to 6 classes; both make 24.
        let mirrored = EpisodeConfig {
            mirrors: true,
            ..plain.clone()
        };
        assert!(EpisodeSampler::new(&s, &Subset::all(&s), mirrored, 0).is_ok());
        let too_many = EpisodeConfig {
            ways: 7,
            mirrors: true,
            ..plain.clone()
        };
        assert!(EpisodeSampler::new(&s, &Subset::all(&s), too_many, 0).is_err());
        let both = EpisodeConfig {
            ways: 24,
            rotations: true,
            mirrors: true,
            ..plain
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), both, 0).unwrap();
        assert_eq!(sampler.episode(3).labels.len(), 24);
    }

    #[test]
    fn variants_enumerate_turns_then_mirrors() {
        let cfg = |rotations, mirrors| EpisodeConfig {
            rotations,
            mirrors,
            ..Default::default()
        };
        let v = |quarter_turns: u8, mirrored| Variant {
            eighth_turns: 2 * quarter_turns,
            mirrored,
        };
        assert_eq!(cfg(false, false).variants(), 1);
        assert_eq!(cfg(true, false).variants(), 4);
        assert_eq!(cfg(false, true).variants(), 2);
        assert_eq!(cfg(true, true).variants(), 8);
        // Rotations alone keep their old numbering, so earlier runs reproduce.
        assert_eq!(cfg(true, false).variant(3), v(3, false));
        assert_eq!(cfg(false, true).variant(1), v(0, true));
        assert_eq!(cfg(true, true).variant(2), v(2, false));
        assert_eq!(cfg(true, true).variant(6), v(2, true));
        let eighths = |mirrors| EpisodeConfig {
            eighth_turns: true,
            ..cfg(true, mirrors)
        };
        assert_eq!(eighths(false).variants(), 8);
        assert_eq!(eighths(true).variants(), 16);
        let e = |eighth_turns, mirrored| Variant {
            eighth_turns,
            mirrored,
        };
        assert_eq!(eighths(false).variant(3), e(3, false));
        assert_eq!(eighths(true).variant(7), e(7, false));
        assert_eq!(eighths(true).variant(9), e(1, true));
        // Eighth turns need rotations: alone they make no classes.
        let alone = EpisodeConfig {
            eighth_turns: true,
            ..cfg(false, false)
        };
        assert_eq!(alone.variants(), 1);
        let mut p = AffineParams::identity();
        e(3, false).apply(&mut p);
        assert_eq!(p.rotation_deg, 135.0);
    }

    #[test]
    fn a_mirrored_class_is_the_left_right_flip_of_its_drawings() {
        // One character per alphabet and two ways: every episode holds a character and its
        // mirror image, so both variants show up among the supports.
        let s = store(SyntheticSpec::new(1, 1, 4), 12);
        let cfg = EpisodeConfig {
            ways: 2,
            queries: 1,
            within_alphabet: 0.0,
            mirrors: true,
            side: 12,
            ..Default::default()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), cfg, 9).unwrap();
        let n = 144;
        let mut plain = vec![0f32; n];
        for index in 0..6 {
            let e = sampler.episode(index);
            let mut flips = 0;
            for (i, &id) in e.ids.iter().enumerate() {
                s.write_f32(id, &mut plain);
                let got = &e.images[i * n..(i + 1) * n];
                let flipped: Vec<f32> = (0..n).map(|p| plain[p / 12 * 12 + 11 - p % 12]).collect();
                assert!(plain != flipped, "the synthetic drawing is not symmetric");
                if got == flipped.as_slice() {
                    flips += 1;
                } else {
                    assert_eq!(got, plain.as_slice(), "image {i} of episode {index}");
                }
            }
            // The mirrored class's support and query, and nothing else.
            assert_eq!(flips, 2, "episode {index}");
        }
    }

    #[test]
    fn hard_episodes_are_an_anchor_and_its_neighbours() {
        // 3 alphabets x 8 characters x 4 turns: 96 classes.
        let s = store(SyntheticSpec::new(3, 8, 6), 12);
        let cfg = EpisodeConfig {
            ways: 5,
            queries: 1,
            within_alphabet: 0.5,
            rotations: true,
            side: 12,
            ..Default::default()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), cfg, 4).unwrap();
        let classes = sampler.class_count();
        assert_eq!(classes, 96);
        // Class c's neighbours are c+1 .. c+6 (mod 96), so a hard episode is one run of 7.
        let neighbours = std::sync::Arc::new(
            Neighbours::from_scores(classes, 6, |c, d| -(((d + classes - c) % classes) as f32))
                .unwrap(),
        );
        assert_eq!(neighbours.of(95), [0, 1, 2, 3, 4, 5]);
        let all = HardNegatives {
            fraction: 1.0,
            neighbours: neighbours.clone(),
        };
        sampler.check_hard_negatives(&all).unwrap();
        for index in 0..40 {
            let e = sampler.episode_with(index, Some(&all));
            let supports = &e.classes[..5];
            let anchor = supports[0] as usize;
            assert!(
                supports[1..]
                    .iter()
                    .all(|&c| neighbours.of(anchor).contains(&c)),
                "episode {index}: {supports:?}"
            );
            assert_eq!(e, sampler.episode_with(index, Some(&all)), "deterministic");
            // Queries are still other drawings of their support's class.
            for (q, &label) in e.labels.iter().enumerate() {
                assert_eq!(e.classes[5 + q], supports[label as usize]);
                assert_ne!(e.ids[5 + q], e.ids[label as usize]);
            }
        }
        // Without a table, or at fraction 0, episodes are exactly what they were.
        let none = HardNegatives {
            fraction: 0.0,
            neighbours: neighbours.clone(),
        };
        let half = HardNegatives {
            fraction: 0.5,
            neighbours: neighbours.clone(),
        };
        let mut hard = 0;
        for index in 0..40 {
            let plain = sampler.episode(index);
            assert_eq!(sampler.episode_with(index, None), plain);
            let mixed = sampler.episode_with(index, Some(&half));
            let anchor = mixed.classes[0] as usize;
            if mixed.classes[1..5]
                .iter()
                .all(|&c| neighbours.of(anchor).contains(&c))
            {
                hard += 1;
            }
            // Fraction 0 still draws the coin, so it is its own stream; it never goes hard.
            let zero = sampler.episode_with(index, Some(&none));
            let anchor = zero.classes[0] as usize;
            assert!(
                !zero.classes[1..5]
                    .iter()
                    .all(|&c| neighbours.of(anchor).contains(&c))
            );
        }
        assert!(
            (10..=30).contains(&hard),
            "{hard} of 40 hard at fraction 0.5"
        );

        // Tables that do not fit are refused.
        let small = HardNegatives {
            fraction: 1.0,
            neighbours: std::sync::Arc::new(
                Neighbours::from_scores(classes, 3, |_, _| 0.0).unwrap(),
            ),
        };
        let err = sampler
            .check_hard_negatives(&small)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at least 4 neighbours per class, not 3"),
            "{err}"
        );
        let other = HardNegatives {
            fraction: 1.0,
            neighbours: std::sync::Arc::new(Neighbours::from_scores(50, 6, |_, _| 0.0).unwrap()),
        };
        let err = sampler
            .check_hard_negatives(&other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("has 50 classes; the sampler has 96"), "{err}");
        let err = sampler
            .check_hard_negatives(&HardNegatives {
                fraction: 1.5,
                neighbours,
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be in [0, 1], not 1.5"), "{err}");
    }

    #[test]
    fn class_images_are_each_classs_first_drawings_turned_as_the_class_is() {
        let s = store(SyntheticSpec::new(2, 3, 4), 12);
        let cfg = EpisodeConfig {
            ways: 4,
            queries: 1,
            rotations: true,
            side: 12,
            ..Default::default()
        };
        let sampler = EpisodeSampler::new(&s, &Subset::all(&s), cfg, 0).unwrap();
        let n = 144;
        let images = sampler.class_images(2);
        assert_eq!(images.len(), sampler.class_count() * 2 * n);
        let turn = |img: &[f32]| -> Vec<f32> {
            let mut p = AffineParams::identity();
            p.rotation_deg = 90.0;
            let bytes: Vec<u8> = img.iter().map(|&v| (v * 255.0).round() as u8).collect();
            let mut out = vec![0.0; n];
            p.warp_u8(&bytes, 12, &mut out, 12);
            out
        };
        // Class 4k is character k upright, 4k+1 a quarter turn; two drawings each.
        let image = |class: usize, i: usize| &images[(class * 2 + i) * n..(class * 2 + i + 1) * n];
        let first = s.image_f32(0);
        let second = s.image_f32(1);
        assert_eq!(image(0, 0), first.as_slice());
        assert_eq!(image(0, 1), second.as_slice());
        assert_eq!(image(1, 0), turn(&first).as_slice());
        assert_ne!(image(0, 0), image(1, 0));
        assert_ne!(image(0, 0), image(4, 0), "the next character");
        // The same drawings each time: a function of the sampler alone.
        assert_eq!(images, sampler.class_images(2));
    }
}
