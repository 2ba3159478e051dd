//! The full description of a training run, saved as TOML in the run folder and accepted back
//! with `--config`.

use std::path::PathBuf;

use data::episodes::EpisodeConfig;
use data::{PairConfig, Protocol, ValidationConfig};
use model::{Arch, Init};
use serde::{Deserialize, Serialize};

use crate::optim::OptimizerConfig;
use crate::schedule::Schedule;

/// How the model is validated during training (on the validation split only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValConfig {
    /// Validate every this many steps; 0 means at the end of each epoch.
    pub every: u64,
    pub ways: usize,
    pub trials: usize,
    pub protocol: Protocol,
    /// Fixed pairs (no augmentation) for the validation loss.
    pub pairs: usize,
    /// Seed of the validation trials and pairs (fixed across the run).
    pub seed: u64,
    /// Paired turns the validation trials are scored in (1, 2, 4 or 8), as `eval --turns`. A
    /// config without the key (every run before 2026-11-30) validated upright, so the
    /// default is 1; presets and the CLI set what `eval` uses by default for the model
    /// ([`TrainConfig::paired_turns`]), so that the curve and `best.safetensors` follow the
    /// score users get.
    pub turns: usize,
}

impl Default for ValConfig {
    fn default() -> Self {
        ValConfig {
            every: 0,
            ways: 20,
            trials: 200,
            protocol: Protocol::WithinAlphabet,
            pairs: 256,
            seed: 1234,
            turns: 1,
        }
    }
}

/// What each training step optimises.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Objective {
    /// Binary cross-entropy on balanced same/different pairs (Koch et al., the reference).
    #[default]
    Pairs,
    /// N-way episodes: the head's logits of each query against the N supports, trained with
    /// softmax cross-entropy (the one-shot task itself), plus `pair_weight` times a balanced
    /// BCE on every query-support pair so that `sigmoid(logit)` stays a same/different
    /// probability.
    Episodes {
        ways: usize,
        queries: usize,
        /// Probability that an episode is drawn within one alphabet.
        within_alphabet: f32,
        /// A within-alphabet episode shows every class in one turn (as a test trial does);
        /// see `EpisodeConfig::within_one_variant`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        within_one_variant: bool,
        /// Each 90-degree rotation of a character is a class of its own.
        rotations: bool,
        /// With `rotations`, each 45-degree turn is a class of its own instead (8 per
        /// character), and the model is scored in 8 paired turns.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        eighth_turns: bool,
        /// The mirror image of a character (and of each rotation) is a class of its own.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mirrors: bool,
        /// All supports of an episode by one drawer, its queries by another (Lake's design).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        two_drawers: bool,
        /// Probability that a class of an episode is virtual: each drawing's ink united with a
        /// partner character's (same alphabet, same drawer); see `EpisodeConfig::overlays`.
        #[serde(default, skip_serializing_if = "is_zero")]
        overlays: f32,
        pair_weight: f64,
        /// Also score each support against the queries (cross-entropy over the columns of the
        /// logits), averaged with the queries' cross-entropy; needs `queries = 1`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        symmetric: bool,
        /// Label smoothing of the cross-entropy, in [0, 1).
        #[serde(default, skip_serializing_if = "is_zero")]
        label_smoothing: f64,
        /// Weight of a cross-entropy over every training class at once (a cosine classifier
        /// on the embedding, see `class_head`), added to the episode loss; 0: off.
        #[serde(default, skip_serializing_if = "is_zero")]
        class_weight: f64,
        /// Weight of a linear decoder's cross-entropy against each input image's pixels
        /// (see `recon_head`), added to the episode loss; 0: off.
        #[serde(default, skip_serializing_if = "is_zero")]
        recon_weight: f64,
        /// Adds `local_weight` times the part-by-part similarity of the feature maps after
        /// conv block `local_block` (`model::local`) to every logit of an episode, so that
        /// training shapes those maps for it; evaluate with `eval --local-block B
        /// --local-weight W` alike. 0: off.
        #[serde(default, skip_serializing_if = "is_zero")]
        local_block: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        local_weight: f64,
        /// Episodes per optimiser step.
        per_step: usize,
        /// Episodes per epoch.
        per_epoch: u64,
    },
}

impl Objective {
    /// What one training item is, for rates such as "2.2 episodes/s".
    pub fn item_name(&self) -> &'static str {
        match self {
            Objective::Pairs => "pairs",
            Objective::Episodes { .. } => "episodes",
        }
    }

    /// Weight of the loss over every training class (episodes only; 0: off).
    pub fn class_weight(&self) -> f64 {
        match self {
            Objective::Episodes { class_weight, .. } => *class_weight,
            Objective::Pairs => 0.0,
        }
    }

    /// Weight of the reconstruction loss (episodes only; 0: off).
    pub fn recon_weight(&self) -> f64 {
        match self {
            Objective::Episodes { recon_weight, .. } => *recon_weight,
            Objective::Pairs => 0.0,
        }
    }

    /// The block and weight of the part-by-part similarity added to the episode logits
    /// (`None`: off).
    pub fn local_term(&self) -> Option<(usize, f64)> {
        match self {
            Objective::Episodes {
                local_block,
                local_weight,
                ..
            } if *local_block > 0 && *local_weight != 0.0 => Some((*local_block, *local_weight)),
            _ => None,
        }
    }

    /// [`Objective::local_term`] as the measure `eval` adds to its scores, so that a model
    /// trained with the term is validated and evaluated with it.
    pub fn local_match(&self) -> Option<eval::local::LocalMatch> {
        self.local_term()
            .map(|(block, weight)| eval::local::LocalMatch {
                block,
                weight: weight as f32,
            })
    }

    /// 20-way episodes with 2 queries per class, half within one alphabet, pair weight 0.5,
    /// one episode per step.
    pub fn episodes(per_epoch: u64) -> Self {
        Objective::Episodes {
            ways: 20,
            queries: 2,
            within_alphabet: 0.5,
            within_one_variant: false,
            rotations: false,
            eighth_turns: false,
            mirrors: false,
            two_drawers: false,
            overlays: 0.0,
            pair_weight: 0.5,
            symmetric: false,
            label_smoothing: 0.0,
            class_weight: 0.0,
            recon_weight: 0.0,
            local_block: 0,
            local_weight: 0.0,
            per_step: 1,
            per_epoch,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name: the run folder is `out_dir/name`.
    pub name: String,
    pub out_dir: PathBuf,
    /// Folder holding `images_background/` (from `cargo xtask download`).
    pub dataset: PathBuf,
    /// `auto`, `cpu`, `cuda[:N]` or `metal`.
    pub device: String,
    pub arch: Arch,
    pub init: Init,
    pub seed: u64,
    /// Pairs per batch.
    pub batch: usize,
    pub epochs: u64,
    pub pairs_per_epoch: u64,
    pub objective: Objective,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Pair sampling for the pairs objective; its augmentation and side apply to episodes too.
    pub pairs: PairConfig,
    pub validation: ValidationConfig,
    pub val: ValConfig,
    /// Stop after this many validations without a better accuracy; 0 never stops early.
    pub patience: u64,
    /// Write `last.safetensors` every this many steps (and always at the end).
    pub checkpoint_every: u64,
    /// Log a metrics line every this many steps.
    pub log_every: u64,
    /// Networks to train (seeds `seed`, `seed + 1`, ...) and merge into one ensemble.
    #[serde(skip_serializing_if = "is_one")]
    pub members: usize,
    /// Decay of a running average of the weights, written as `ema.safetensors` beside the
    /// run's other files (0: none; see [`crate::ema`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub ema: f64,
    /// Dropout on the embedding in training: each value of each image's embedding is zeroed
    /// with this probability and the rest scaled by `1 / (1 - p)`, so that the head cannot
    /// lean on a few dimensions (0: none; see [`crate::dropout`]). Inference always uses the
    /// whole embedding, so the saved model does not record it.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropout: f64,
    /// Sharpness-aware minimisation: each step's gradient is taken with the weights moved by
    /// this distance along the first gradient (0: plain steps; see [`crate::sam`]). It doubles
    /// the cost of a step.
    #[serde(skip_serializing_if = "is_zero")]
    pub sam: f64,
    /// Episodes of model-mined hard negatives (off unless `fraction > 0`; episodes only).
    #[serde(skip_serializing_if = "HardNegativeConfig::is_off")]
    pub hard_negatives: HardNegativeConfig,
}

/// Hard-negative episodes: every `every` steps the network being trained embeds `drawings`
/// drawings of each training class and its head scores every pair of class means; from then
/// on a `fraction` of the episodes are an anchor class and `ways - 1` classes drawn from its
/// `neighbours` highest-scoring others (see `data::neighbours`). Before the first refresh, and
/// with `fraction` 0, episodes are the plain ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardNegativeConfig {
    pub fraction: f32,
    pub every: u64,
    pub neighbours: usize,
    pub drawings: usize,
}

impl Default for HardNegativeConfig {
    fn default() -> Self {
        HardNegativeConfig {
            fraction: 0.0,
            every: 1000,
            neighbours: 80,
            drawings: 2,
        }
    }
}

impl HardNegativeConfig {
    pub fn is_off(&self) -> bool {
        self.fraction == 0.0
    }

    /// Whether the neighbour table is refreshed before step `step`.
    pub fn refresh_at(&self, step: u64) -> bool {
        !self.is_off() && step > 0 && step.is_multiple_of(self.every)
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

impl Default for TrainConfig {
    /// The PyTorch reference recipe: Koch's network at 105x105, AdamW (lr 6e-4), StepLR (500
    /// steps, gamma 0.9), 128 pairs a batch, random rotations of up to 15 degrees.
    fn default() -> Self {
        let arch = Arch::koch();
        TrainConfig {
            name: "reference".into(),
            out_dir: "runs".into(),
            dataset: "data/omniglot".into(),
            device: "auto".into(),
            pairs: PairConfig {
                side: arch.input_side,
                augment: Some(data::AffineConfig::reference()),
                same_alphabet_negatives: 0.0,
            },
            arch,
            init: Init::Default,
            seed: 0,
            batch: 128,
            epochs: 30,
            pairs_per_epoch: 64_000,
            objective: Objective::Pairs,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::default(),
            validation: ValidationConfig::default(),
            val: ValConfig::default(),
            patience: 0,
            checkpoint_every: 500,
            log_every: 10,
            members: 1,
            ema: 0.0,
            dropout: 0.0,
            sam: 0.0,
            hard_negatives: HardNegativeConfig::default(),
        }
    }
}

impl TrainConfig {
    /// What the episode sampler draws, for an episodes objective (the distortions and the
    /// image side are the pairs' ones).
    pub fn episode_config(&self) -> Option<EpisodeConfig> {
        match &self.objective {
            Objective::Pairs => None,
            Objective::Episodes {
                ways,
                queries,
                within_alphabet,
                within_one_variant,
                rotations,
                eighth_turns,
                mirrors,
                two_drawers,
                overlays,
                ..
            } => Some(EpisodeConfig {
                ways: *ways,
                queries: *queries,
                within_alphabet: *within_alphabet,
                within_one_variant: *within_one_variant,
                rotations: *rotations,
                eighth_turns: *eighth_turns,
                mirrors: *mirrors,
                two_drawers: *two_drawers,
                overlays: *overlays,
                augment: self.pairs.augment.clone(),
                side: self.pairs.side,
            }),
        }
    }

    /// The paired turns (`eval --turns`) that suit a model trained with this config: 4 when
    /// each quarter turn of a character was a class of its own (the network has learnt to
    /// compare turned pairs, so scoring all four is a free ensemble; chosen on the validation
    /// split), 8 when each eighth turn was, 1 otherwise.
    pub fn paired_turns(&self) -> usize {
        self.episode_config().map_or(1, |e| e.turns())
    }

    /// Whether training fitted `sigmoid(logit)` to same/different labels (a pair loss), so
    /// that 0.5 is a meaningful verdict without calibration. Cross-entropy alone only ranks.
    pub fn fits_pair_probabilities(&self) -> bool {
        match self.objective {
            Objective::Pairs => true,
            Objective::Episodes { pair_weight, .. } => pair_weight > 0.0,
        }
    }

    pub fn steps_per_epoch(&self) -> u64 {
        match &self.objective {
            Objective::Pairs => self
                .pairs_per_epoch
                .div_ceil(self.batch.max(1) as u64)
                .max(1),
            Objective::Episodes {
                per_step,
                per_epoch,
                ..
            } => per_epoch.div_ceil((*per_step).max(1) as u64).max(1),
        }
    }

    pub fn total_steps(&self) -> u64 {
        self.epochs * self.steps_per_epoch()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.out_dir.join(&self.name)
    }

    /// Every check that can fail before any work starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.contains(['/', '\\'])
            || self.name == "."
            || self.name == ".."
        {
            return Err(format!(
                "run name `{}` must be a plain folder name",
                self.name
            ));
        }
        if self.batch == 0 {
            return Err("batch size must be at least 1".into());
        }
        if self.epochs == 0 || self.pairs_per_epoch == 0 {
            return Err("epochs and pairs per epoch must be at least 1".into());
        }
        self.arch.validate().map_err(|e| e.to_string())?;
        if self.pairs.side != self.arch.input_side {
            return Err(format!(
                "pair images are {0}x{0} but the architecture takes {1}x{1}",
                self.pairs.side, self.arch.input_side
            ));
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if let Some(a) = &self.pairs.augment {
            a.validate()?;
        }
        if !(0.0..=1.0).contains(&self.pairs.same_alphabet_negatives) {
            return Err("same-alphabet negative fraction must be in [0, 1]".into());
        }
        if let Objective::Episodes {
            ways,
            queries,
            within_alphabet,
            rotations,
            eighth_turns,
            overlays,
            pair_weight,
            symmetric,
            label_smoothing,
            class_weight,
            recon_weight,
            local_block,
            local_weight,
            per_step,
            per_epoch,
            ..
        } = &self.objective
        {
            if *local_weight != 0.0
                && (!local_weight.is_finite()
                    || *local_block == 0
                    || *local_block > self.arch.blocks.len())
            {
                return Err(format!(
                    "local matching needs a finite local_weight and a local_block from 1 to {}, \
                     not block {local_block} with weight {local_weight}",
                    self.arch.blocks.len()
                ));
            }
            if *local_weight != 0.0 && self.arch.towers != 1 {
                return Err("local matching needs a network of one tower".into());
            }
            if *eighth_turns && !*rotations {
                return Err("eighth_turns turns the rotation classes: it needs rotations".into());
            }
            if *ways < 2 || *queries == 0 || *per_step == 0 || *per_epoch == 0 {
                return Err(
                    "episodes need ways >= 2, queries >= 1, per_step >= 1 and per_epoch >= 1"
                        .into(),
                );
            }
            if !(0.0..=1.0).contains(within_alphabet) || !crate::optim::non_negative(*pair_weight) {
                return Err("within_alphabet must be in [0, 1] and pair_weight >= 0".into());
            }
            if *symmetric && *queries != 1 {
                return Err("a symmetric episode loss needs exactly one query per class".into());
            }
            if !(0.0..1.0).contains(label_smoothing) {
                return Err(format!(
                    "label_smoothing must be in [0, 1), not {label_smoothing}"
                ));
            }
            if !crate::optim::non_negative(*class_weight) {
                return Err(format!(
                    "class_weight must be a number >= 0, not {class_weight}"
                ));
            }
            if !crate::optim::non_negative(*recon_weight) {
                return Err(format!(
                    "recon_weight must be a number >= 0, not {recon_weight}"
                ));
            }
            if !(0.0..=1.0).contains(overlays) {
                return Err(format!("overlays must be in [0, 1], not {overlays}"));
            }
            if *overlays > 0.0 && *class_weight > 0.0 {
                // Virtual classes have no row in the classifier over every training class.
                return Err("overlay classes and class_weight > 0 cannot be combined".into());
            }
        }
        if self.val.ways < 2 || self.val.trials == 0 {
            return Err("validation needs at least 2 ways and 1 trial".into());
        }
        if ![1, 2, 4, 8].contains(&self.val.turns) {
            return Err(format!(
                "validation paired turns must be 1, 2, 4 or 8, not {}",
                self.val.turns
            ));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return Err(format!(
                "the weight-average decay must be in [0, 1), not {}",
                self.ema
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "the embedding dropout must be in [0, 1), not {}",
                self.dropout
            ));
        }
        if !(self.sam >= 0.0 && self.sam.is_finite()) {
            return Err(format!(
                "the sharpness-aware radius must be a finite number >= 0, not {}",
                self.sam
            ));
        }
        let hard = &self.hard_negatives;
        if !(0.0..=1.0).contains(&hard.fraction) {
            return Err(format!(
                "the hard-negative episode fraction must be in [0, 1], not {}",
                hard.fraction
            ));
        }
        if !hard.is_off() {
            let Objective::Episodes { ways, .. } = self.objective else {
                return Err("hard negatives are mined for episodes, not pairs".into());
            };
            if hard.every == 0 || hard.drawings == 0 || hard.neighbours + 1 < ways {
                return Err(format!(
                    "hard negatives need a refresh interval and drawings per class of at least \
                     1, and at least {} neighbours for {ways}-way episodes (got every {}, \
                     drawings {}, neighbours {})",
                    ways.saturating_sub(1),
                    hard.every,
                    hard.drawings,
                    hard.neighbours
                ));
            }
        }
        if self.members == 0 {
            return Err("an ensemble needs at least 1 member".into());
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return Err("checkpoint and log intervals must be at least 1 step".into());
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs serialize")
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_through_toml() {
        for name in crate::presets::NAMES {
            let cfg = crate::presets::preset(name).unwrap();
            cfg.validate().unwrap();
            assert_eq!(
                TrainConfig::from_toml(&cfg.to_toml()).unwrap(),
                cfg,
                "{name}"
            );
        }
        let off = TrainConfig {
            pairs: data::PairConfig {
                augment: None,
                ..TrainConfig::default().pairs
            },
            ..TrainConfig::default()
        };
        assert_eq!(TrainConfig::from_toml(&off.to_toml()).unwrap(), off);
    }

    #[test]
    fn mirrors_reach_the_sampler_and_older_configs_read_as_without() {
        let mut cfg = crate::presets::preset("quick").unwrap();
        let before = cfg.to_toml();
        assert!(!before.contains("mirrors"), "off is not written: {before}");
        let sampler = cfg.episode_config().unwrap();
        assert_eq!((sampler.rotations, sampler.mirrors), (true, false));
        assert_eq!(sampler.side, cfg.pairs.side);
        if let Objective::Episodes { mirrors, .. } = &mut cfg.objective {
            *mirrors = true;
        }
        let text = cfg.to_toml();
        assert!(text.contains("mirrors = true"), "{text}");
        let back = TrainConfig::from_toml(&text).unwrap();
        assert_eq!(back.episode_config().unwrap().variants(), 8);
        assert_eq!(
            TrainConfig::from_toml(&before)
                .unwrap()
                .episode_config()
                .unwrap()
                .variants(),
            4
        );
        assert!(TrainConfig::default().episode_config().is_none());
    }

    #[test]
    fn eighth_turns_reach_the_sampler_and_the_paired_turns() {
        let mut cfg = crate::presets::preset("full").unwrap();
        assert!(
            !cfg.to_toml().contains("eighth_turns"),
            "off is not written"
        );
        assert_eq!(cfg.episode_config().unwrap().variants(), 4);
        if let Objective::Episodes { eighth_turns, .. } = &mut cfg.objective {
            *eighth_turns = true;
        }
        cfg.val.turns = cfg.paired_turns();
        assert_eq!(cfg.val.turns, 8);
        cfg.validate().unwrap();
        let back = TrainConfig::from_toml(&cfg.to_toml()).unwrap();
        assert_eq!(back.episode_config().unwrap().variants(), 8);
        assert_eq!(back, cfg);
        cfg.val.turns = 3;
        let err = cfg.validate().unwrap_err();
        assert!(err.contains("1, 2, 4 or 8, not 3"), "{err}");
        cfg.val.turns = 8;
        if let Objective::Episodes { rotations, .. } = &mut cfg.objective {
            *rotations = false;
        }
        let err = cfg.validate().unwrap_err();
        assert!(err.contains("needs rotations"), "{err}");
    }

    #[test]
    fn overlays_reach_the_sampler() {
        let mut cfg = crate::presets::preset("full").unwrap();
        assert_eq!(cfg.episode_config().unwrap().overlays, 0.0);
        if let Objective::Episodes { overlays, .. } = &mut cfg.objective {
            *overlays = 0.25;
        }
        let back = TrainConfig::from_toml(&cfg.to_toml()).unwrap();
        assert_eq!(back.episode_config().unwrap().overlays, 0.25);
        assert_eq!(back, cfg);
    }

    #[test]
    fn only_a_pair_loss_fits_pair_probabilities() {
        assert!(TrainConfig::default().fits_pair_probabilities());
        // The episodic presets train cross-entropy alone: no pair probabilities.
        let mut cfg = crate::presets::preset("quick").unwrap();
        assert!(!cfg.fits_pair_probabilities());
        if let Objective::Episodes { pair_weight, .. } = &mut cfg.objective {
            *pair_weight = 0.5;
        }
        assert!(cfg.fits_pair_probabilities());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = TrainConfig::from_toml("batchsize = 3").unwrap_err();
        assert!(err.contains("batchsize"), "{err}");
    }
}
