//! One evaluation setup (a scorer and a split loaded at the right size), reused across many
//! protocols and N: the Siamese scorer embeds each image once for the whole session.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use data::trials::{sample_shot_trials, sample_trials};
use data::{Framing, ImageStore, Protocol, SplitIndex, SplitKind, Subset};
use model::{Device, SiameseNet};

use crate::adapt::AdaptConfig;
use crate::baselines::{IdmConfig, IdmScorer, MhdScorer, PixelScorer};
use crate::calibration::ScoredPair;
use crate::error::{EvalError, Result};
use crate::evaluate::{TrialResult, evaluate};
use crate::hubness::HubnessCorrected;
use crate::report::Report;
use crate::scorer::{EnsembleScorer, ModelScorer, Scorer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Lake's modified Hausdorff distance.
    Mhd,
    /// Nearest neighbour on pixels.
    Pixel,
    /// Keysers et al.'s image distortion model.
    Idm(IdmConfig),
}

impl Baseline {
    /// How the baseline sees drawings unless told otherwise: Lake's modified Hausdorff
    /// distance and the pixel baseline the whole canvas, as published; the distortion model
    /// a square around the ink, since it only forgives moves of a few pixels (on the
    /// validation split's seed-99 trials: 80% within-alphabet so, at most 56% on the canvas).
    pub fn default_framing(self) -> Framing {
        match self {
            Baseline::Mhd | Baseline::Pixel => Framing::Canvas,
            Baseline::Idm(_) => Framing::ink_box(),
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mhd" => Ok(Baseline::Mhd),
            "pixel" => Ok(Baseline::Pixel),
            "idm" => Ok(Baseline::Idm(IdmConfig::default())),
            _ => match s.strip_prefix("idm:").map(|rest| rest.split_once(':')) {
                Some(Some((side, warp))) => {
                    let side: usize = side
                        .parse()
                        .map_err(|_| format!("`{s}`: side `{side}` is not a whole number"))?;
                    let warp: usize = warp
                        .parse()
                        .map_err(|_| format!("`{s}`: warp `{warp}` is not a whole number"))?;
                    if !(4..=105).contains(&side) || warp >= side {
                        return Err(format!(
                            "`{s}`: the side must be 4-105 and the warp below it"
                        ));
                    }
                    Ok(Baseline::Idm(IdmConfig { side, warp }))
                }
                _ => Err(format!(
                    "unknown baseline `{s}` (expected mhd, pixel, idm or idm:SIDE:WARP)"
                )),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub enum ScorerChoice {
    Checkpoint(PathBuf),
    /// Several checkpoints scored as one (mean head logit); they must share an input size.
    Ensemble(Vec<PathBuf>),
    /// A baseline, on drawings framed as given (a model always uses its own framing).
    Baseline(Baseline, Framing),
}

impl ScorerChoice {
    /// The model files scored, in the order given (none for a baseline).
    pub fn model_files(&self) -> &[PathBuf] {
        match self {
            ScorerChoice::Checkpoint(p) => std::slice::from_ref(p),
            ScorerChoice::Ensemble(paths) => paths,
            ScorerChoice::Baseline(..) => &[],
        }
    }
}

/// Loads a model or training checkpoint.
pub fn load_model(path: &Path, device: &Device) -> Result<Arc<SiameseNet>> {
    let (net, _) = model::io::load(path, device)?;
    Ok(Arc::new(net))
}

enum Kind {
    Model(Arc<SiameseNet>),
    Ensemble(Vec<Arc<SiameseNet>>),
    Baseline(Baseline, Framing),
}

impl Kind {
    fn scorer(&self, tta: bool, pairs: PairViews, adapt: AdaptConfig) -> Result<Box<dyn Scorer>> {
        let model_scorer = |net: &Arc<SiameseNet>| -> Result<ModelScorer> {
            let s = ModelScorer::new(net.clone(), 256)?
                .with_adaptation(adapt)?
                .with_support_statistics(pairs.support_stats)
                .with_turns(pairs.turns)?
                .with_mirrored_pairs(pairs.mirrored)
                .with_local_match(pairs.local)?;
            Ok(if tta {
                s.with_views(crate::scorer::shift_views())
            } else {
                s
            })
        };
        Ok(match self {
            Kind::Model(net) => Box::new(model_scorer(net)?),
            Kind::Ensemble(nets) => Box::new(EnsembleScorer::new(
                nets.iter().map(model_scorer).collect::<Result<_>>()?,
            )?),
            Kind::Baseline(Baseline::Mhd, _) => Box::new(MhdScorer::default()),
            Kind::Baseline(Baseline::Pixel, _) => Box::new(PixelScorer::default()),
            Kind::Baseline(Baseline::Idm(c), _) => Box::new(IdmScorer::new(*c)),
        })
    }

    /// Image side the scorer works at: the model's input, or the native 105 for baselines.
    fn side(&self) -> usize {
        match self {
            Kind::Model(net) => net.arch().input_side,
            Kind::Ensemble(nets) => nets.first().map_or(0, |n| n.arch().input_side),
            Kind::Baseline(..) => data::NATIVE_SIDE,
        }
    }

    /// How the scorer's images are framed: the model's own choice, or the baseline's.
    fn framing(&self) -> Framing {
        match self {
            Kind::Model(net) => net.arch().framing,
            Kind::Ensemble(nets) => nets.first().map_or(Framing::Canvas, |n| n.arch().framing),
            Kind::Baseline(_, f) => *f,
        }
    }

    fn load(choice: &ScorerChoice, device: &Device) -> Result<Self> {
        Ok(match choice {
            ScorerChoice::Checkpoint(p) => Kind::Model(load_model(p, device)?),
            ScorerChoice::Ensemble(paths) => {
                let nets = paths
                    .iter()
                    .map(|p| load_model(p, device))
                    .collect::<Result<Vec<_>>>()?;
                check_sides(paths, &nets)?;
                Kind::Ensemble(nets)
            }
            ScorerChoice::Baseline(b, f) => Kind::Baseline(*b, *f),
        })
    }
}

/// Members must share one input size: they are fed from one image store.
fn check_sides(paths: &[PathBuf], nets: &[Arc<SiameseNet>]) -> Result<()> {
    let Some(first) = nets.first() else {
        return Err(EvalError::Invalid(
            "an ensemble needs at least one checkpoint".into(),
        ));
    };
    let side = first.arch().input_side;
    for (p, n) in paths.iter().zip(nets) {
        if n.arch().input_side != side {
            return Err(EvalError::Invalid(format!(
                "ensemble members must share an input size: {} takes {}x{}, {} takes {}x{}",
                p.display(),
                n.arch().input_side,
                n.arch().input_side,
                paths[0].display(),
                side,
                side
            )));
        }
        if n.arch().framing != first.arch().framing {
            return Err(EvalError::Invalid(format!(
                "ensemble members must frame images alike: {} uses {}, {} uses {}",
                p.display(),
                n.arch().framing,
                paths[0].display(),
                first.arch().framing
            )));
        }
    }
    Ok(())
}

/// How many ways each pair of the model is looked at (`eval --turns`, `--mirror-pairs`).
#[derive(Clone, Copy, Debug)]
struct PairViews {
    turns: usize,
    mirrored: bool,
    /// Batch norm with each trial's candidate statistics (`ModelScorer::with_support_statistics`).
    support_stats: bool,
    /// Local-descriptor matching added to the logits (`ModelScorer::with_local_match`).
    local: Option<crate::local::LocalMatch>,
}

impl Default for PairViews {
    fn default() -> Self {
        PairViews {
            turns: 1,
            mirrored: false,
            support_stats: false,
            local: None,
        }
    }
}

pub struct Session {
    kind: Kind,
    tta: bool,
    /// Paired turns (and mirror images) of the model's pairs.
    pairs: PairViews,
    /// Hubness correction strength (0: off).
    hubness: f32,
    /// Support-set adaptation of the model's head (off unless its steps are > 0).
    adapt: AdaptConfig,
    /// Characters trials are drawn from (all of the split unless restricted).
    subset: Subset,
    scorer: Box<dyn Scorer>,
    pub store: ImageStore,
    pub split: SplitKind,
}

impl Session {
    /// Loads the scorer and the split (`dataset/images_*`) at the scorer's image size.
    pub fn open(
        choice: &ScorerChoice,
        dataset: &Path,
        split: SplitKind,
        device: &Device,
    ) -> Result<Self> {
        let kind = Kind::load(choice, device)?;
        let index = SplitIndex::scan_split(dataset, split)?;
        let store = ImageStore::load_framed(&index, kind.side(), kind.framing())?;
        Self::with_store(kind, store, split)
    }

    /// A session over an existing store (tests, training).
    pub fn from_model(net: Arc<SiameseNet>, store: ImageStore, split: SplitKind) -> Result<Self> {
        Self::with_store(Kind::Model(net), store, split)
    }

    /// A session with no split loaded, for Lake's runs (which carry their own images).
    pub fn for_runs(choice: &ScorerChoice, device: &Device) -> Result<Self> {
        let kind = Kind::load(choice, device)?;
        let empty = data::store::StoreBuilder::new(kind.side())
            .with_framing(kind.framing())
            .finish();
        Self::with_store(kind, empty, SplitKind::Evaluation)
    }

    /// A baseline session over an existing store.
    pub fn from_baseline(b: Baseline, store: ImageStore, split: SplitKind) -> Result<Self> {
        let framing = store.framing();
        Self::with_store(Kind::Baseline(b, framing), store, split)
    }

    fn with_store(kind: Kind, store: ImageStore, split: SplitKind) -> Result<Self> {
        if store.side() != kind.side() {
            return Err(EvalError::Invalid(format!(
                "the scorer takes {0}x{0} images, the store holds {1}x{1}",
                kind.side(),
                store.side()
            )));
        }
        if store.framing() != kind.framing() {
            return Err(EvalError::Invalid(format!(
                "the model frames its images as {}, the store holds them as {}",
                kind.framing(),
                store.framing()
            )));
        }
        Ok(Session {
            scorer: kind.scorer(false, PairViews::default(), AdaptConfig::default())?,
            kind,
            tta: false,
            pairs: PairViews::default(),
            hubness: 0.0,
            adapt: AdaptConfig::default(),
            subset: Subset::all(&store),
            store,
            split,
        })
    }

    /// Averages model embeddings over a few shifted views (no effect on baselines).
    pub fn with_tta(mut self, tta: bool) -> Result<Self> {
        self.tta = tta;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Scores each pair of the model `turns` times (1, 2, 4 or 8), both images turned alike, and
    /// averages the logits (no effect on baselines).
    pub fn with_turns(mut self, turns: usize) -> Result<Self> {
        self.pairs.turns = turns;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Also scores each (turned) pair of the model with both images mirrored left-right.
    pub fn with_mirrored_pairs(mut self, mirrored: bool) -> Result<Self> {
        self.pairs.mirrored = mirrored;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Normalises the model's batch-norm layers, for each trial, with the statistics of its
    /// candidates instead of the running ones (no effect on baselines).
    pub fn with_support_statistics(mut self, on: bool) -> Result<Self> {
        self.pairs.support_stats = on;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Adds a weighted local-descriptor match to the model's logits (no effect on baselines).
    pub fn with_local_match(mut self, local: Option<crate::local::LocalMatch>) -> Result<Self> {
        self.pairs.local = local;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Lowers each candidate's score by `beta` times its similarity to its nearest fellow
    /// candidates (`hubness::HubnessCorrected`); 0 turns it off.
    pub fn with_hubness(mut self, beta: f32) -> Result<Self> {
        if !beta.is_finite() || beta < 0.0 {
            return Err(EvalError::Invalid(format!(
                "the hubness correction must be a number >= 0, not {beta}"
            )));
        }
        self.hubness = beta;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    /// Tunes the model's head to each trial's candidates before scoring it
    /// (`adapt::AdaptConfig`; no effect on baselines).
    pub fn with_adaptation(mut self, adapt: AdaptConfig) -> Result<Self> {
        adapt.validate().map_err(EvalError::Invalid)?;
        self.adapt = adapt;
        self.scorer = self.build_scorer()?;
        Ok(self)
    }

    fn build_scorer(&self) -> Result<Box<dyn Scorer>> {
        let scorer = self.kind.scorer(self.tta, self.pairs, self.adapt)?;
        Ok(if self.hubness > 0.0 {
            Box::new(HubnessCorrected::new(scorer, self.hubness))
        } else {
            scorer
        })
    }

    /// Draws trials only from these alphabets (e.g. the validation alphabets of the
    /// background split).
    pub fn restrict_to_alphabets(&mut self, names: &[String]) -> Result<()> {
        let mut chosen = Vec::new();
        for name in names {
            let a = self
                .store
                .alphabets()
                .iter()
                .find(|a| &a.name == name)
                .ok_or_else(|| {
                    EvalError::Invalid(format!(
                        "alphabet `{name}` is not in {}",
                        self.split.dir_name()
                    ))
                })?;
            chosen.extend(a.characters.iter().copied());
        }
        chosen.sort_unstable();
        self.subset = Subset {
            characters: chosen,
            ..Subset::all(&self.store)
        };
        Ok(())
    }

    pub fn scorer_name(&self) -> String {
        self.scorer.name()
    }

    pub fn side(&self) -> usize {
        self.kind.side()
    }

    /// The network, when the scorer is one.
    pub fn model(&self) -> Option<&Arc<SiameseNet>> {
        match &self.kind {
            Kind::Model(n) => Some(n),
            Kind::Ensemble(_) | Kind::Baseline(..) => None,
        }
    }

    /// Scores `trials` one-shot trials drawn from the split.
    pub fn sampled(
        &mut self,
        protocol: Protocol,
        ways: usize,
        trials: usize,
        seed: u64,
    ) -> Result<(Report, Vec<TrialResult>)> {
        self.sampled_shots(protocol, ways, 1, trials, seed)
    }

    /// Scores `trials` trials drawn from the split with `shots` drawings per candidate, each
    /// candidate scored as one class of `shots` members (`Scorer::class_scores`: a network
    /// against the drawings' mean embedding, a baseline by the mean of their scores).
    pub fn sampled_shots(
        &mut self,
        protocol: Protocol,
        ways: usize,
        shots: usize,
        trials: usize,
        seed: u64,
    ) -> Result<(Report, Vec<TrialResult>)> {
        if shots > 1 && (self.hubness > 0.0 || self.adapt.enabled()) {
            // Both treat a trial's candidates as distinct characters: a candidate's other
            // drawings would count as rivals.
            return Err(EvalError::Invalid(
                "the hubness correction and support-set adaptation work on one-shot trials \
                 only; leave them off with several shots"
                    .into(),
            ));
        }
        if trials == 0 {
            // An empty report would read as 0% with an interval, which nobody asked for.
            return Err(EvalError::Invalid(
                "no trials to score: ask for at least 1".into(),
            ));
        }
        let t = Instant::now();
        let drawn = sample_shot_trials(
            &self.store,
            &self.subset,
            protocol,
            ways,
            shots,
            trials,
            seed,
        )?;
        let results = evaluate(self.scorer.as_mut(), &self.store, &drawn)?;
        let mut report = Report::new(
            &self.scorer.name(),
            &protocol.to_string(),
            ways,
            self.split.dir_name(),
            Some(seed),
            &self.store,
            &results,
        );
        report.seconds = t.elapsed().as_secs_f64();
        Ok((report, results))
    }

    /// Same/different pairs for calibration, each scored like a trial's candidate: `trials`
    /// 2-way trials drawn under `protocol` give a same pair (the query against its character,
    /// drawn by another drawer) and a different one each.
    pub fn scored_pairs(
        &mut self,
        protocol: Protocol,
        trials: usize,
        seed: u64,
    ) -> Result<Vec<ScoredPair>> {
        let drawn = sample_trials(&self.store, &self.subset, protocol, 2, trials, seed)?;
        let results = evaluate(self.scorer.as_mut(), &self.store, &drawn)?;
        Ok(results
            .iter()
            .flat_map(|r| {
                r.scores.iter().enumerate().map(|(i, &logit)| ScoredPair {
                    logit,
                    same: i == r.trial.answer,
                })
            })
            .collect())
    }

    /// Scores Lake-style runs read from `dir`; afterwards [`Session::store`] holds the runs'
    /// images, which the results' ids refer to.
    pub fn runs(&mut self, dir: &Path) -> Result<(Report, Vec<TrialResult>)> {
        let t = Instant::now();
        let mut scorer = self.build_scorer()?;
        let (mut report, results, store) = crate::runs::evaluate_runs(
            scorer.as_mut(),
            dir,
            self.kind.side(),
            self.kind.framing(),
        )?;
        report.seconds = t.elapsed().as_secs_f64();
        self.store = store;
        Ok((report, results))
    }
}
