//! Checkpoints: the network, the optimizer's buffers, the step and the config in one
//! safetensors file, written atomically. A checkpoint is also a model file (`eval` reads it).

use std::path::Path;

use candle_core::Device;
use model::SiameseNet;
use model::io::{Extras, load, save};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

/// Where the loop stands. Batches are a pure function of (seed, step), so the step is the
/// whole sampler state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    pub best_accuracy: Option<f64>,
    pub best_step: Option<u64>,
    /// Validations since the best one (for early stopping).
    pub stale_validations: u64,
    /// CPU threads the latest stretch of training ran on: the conv layers' weight gradients
    /// are summed per thread's share of the batch, so a resume on another count is not bit
    /// for bit the unbroken run. `None` on a GPU and in checkpoints from before 2026-12-07.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl TrainState {
    /// Records the threads this stretch of training runs on (`None` off the CPU) and warns when
    /// a resumed run had trained on another count.
    pub fn start_on(&mut self, device: &Device) {
        let now = device.is_cpu().then(rayon::current_num_threads);
        if let (Some(before), Some(now)) = (self.threads, now)
            && before != now
        {
            let on = if before == 1 { "thread" } else { "threads" };
            tracing::warn!(
                "this run trained on {before} CPU {on} and goes on with {now}: it continues, but \
                 the conv layers' weight gradients are now summed in another order, so not bit \
                 for bit as an unbroken run would (RAYON_NUM_THREADS={before} keeps it exact)"
            );
        }
        self.threads = now;
    }
}

pub fn save_checkpoint(
    path: &Path,
    net: &SiameseNet,
    optimizer: Option<&Optimizer>,
    state: &TrainState,
    config: &TrainConfig,
) -> Result<()> {
    let tensors = match optimizer {
        Some(opt) => opt.state_tensors()?,
        None => Vec::new(),
    };
    save_checkpoint_with(path, net, tensors, state, config)
}

/// [`save_checkpoint`] with any training state as named tensors (the optimizer's, the weight
/// average's).
pub fn save_checkpoint_with(
    path: &Path,
    net: &SiameseNet,
    tensors: Vec<(String, candle_core::Tensor)>,
    state: &TrainState,
    config: &TrainConfig,
) -> Result<()> {
    let mut extras = Extras::default();
    extras.tensors.extend(tensors);
    extras.metadata.insert(
        "train_state".into(),
        serde_json::to_string(state).expect("state serializes"),
    );
    extras.metadata.insert("config".into(), config.to_toml());
    save(net, path, &extras)?;
    Ok(())
}

/// The paired turns that suit the model in `path` ([`TrainConfig::paired_turns`]), read from
/// the training config in its metadata; 1 for a file without one.
pub fn paired_turns(path: &Path) -> Result<usize> {
    let config = saved_config(path, "pass --turns to choose the views yourself")?;
    Ok(config.map_or(1, |c| c.paired_turns()))
}

/// The part-by-part match the model in `path` was trained with
/// ([`crate::config::Objective::local_match`]), read from the training config in its
/// metadata; `None` for a model trained without one or a file without a config.
pub fn local_match(path: &Path) -> Result<Option<eval::local::LocalMatch>> {
    let config = saved_config(path, "pass --local-weight to choose the term yourself")?;
    Ok(config.and_then(|c| c.objective.local_match()))
}

/// The training config saved in the metadata of the model file `path`, if any; `remedy` ends
/// the message when it does not parse.
fn saved_config(path: &Path, remedy: &str) -> Result<Option<TrainConfig>> {
    let metadata = model::io::read_metadata(path)?;
    metadata
        .get("config")
        .map(|text| {
            TrainConfig::from_toml(text)
                .map_err(|e| TrainError::file(path, format!("bad config: {e} ({remedy})")))
        })
        .transpose()
}

/// The paired turns that suit every model in `paths` scored as one ensemble: turned only when
/// each member was trained with rotation classes.
pub fn paired_turns_of(paths: &[impl AsRef<Path>]) -> Result<usize> {
    let mut turns = usize::MAX;
    for path in paths {
        turns = turns.min(paired_turns(path.as_ref())?);
    }
    Ok(if turns == usize::MAX { 1 } else { turns })
}

/// The paired turns `eval` uses for `choice` when none are asked for: what suits the model or
/// ensemble; baselines are scored upright.
pub fn default_turns(choice: &eval::session::ScorerChoice) -> Result<usize> {
    use eval::session::ScorerChoice;
    match choice {
        ScorerChoice::Checkpoint(path) => paired_turns(path),
        ScorerChoice::Ensemble(paths) => paired_turns_of(paths),
        ScorerChoice::Baseline(..) => Ok(1),
    }
}

/// The part-by-part match `choice` is scored with unless told otherwise: a single model's
/// trained term ([`local_match`]); none for ensembles and baselines.
pub fn default_local_match(
    choice: &eval::session::ScorerChoice,
) -> Result<Option<eval::local::LocalMatch>> {
    match choice {
        eval::session::ScorerChoice::Checkpoint(path) => local_match(path),
        _ => Ok(None),
    }
}

/// Alphabets that an evaluation scores and that the model being scored was trained on: its
/// figure there measures memory of characters it has seen, not one-shot learning.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenAlphabets {
    /// The scored alphabets the model was trained on, in the store's order.
    pub seen: Vec<String>,
    /// How many alphabets the evaluation scores.
    pub scored: usize,
    /// The alphabets the model held out for validation (none for a model refit on all).
    pub held_out: Vec<String>,
}

impl std::fmt::Display for SeenAlphabets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&str> = self.seen.iter().take(4).map(String::as_str).collect();
        let more = self.seen.len().saturating_sub(shown.len());
        write!(
            f,
            "the model was trained on {} of the {} alphabets scored here ({}{}), so on those \
             trials it has seen the characters before: that is memory, not one-shot \
             recognition. Score images_evaluation",
            self.seen.len(),
            self.scored,
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )?;
        if self.held_out.is_empty() {
            write!(f, " (this model held no alphabet out)")
        } else {
            write!(
                f,
                ", or only the alphabets it held out: --alphabets {}",
                self.held_out.join(",")
            )
        }
    }
}

/// Which of the `scored` alphabets of `store` (a split read like the training split) the
/// model or ensemble in `choice` was trained on, by the validation partition saved in each
/// file's training config. `None` when nothing was seen, for `images_evaluation` (training
/// never reads it), for baselines, and for files whose config is missing or unreadable or
/// whose partition does not fit `store` (a model trained on other data): nothing can be said,
/// and saying nothing must not stop the evaluation it annotates.
pub fn seen_alphabets(
    choice: &eval::session::ScorerChoice,
    store: &data::ImageStore,
    split: data::SplitKind,
    scored: &[String],
) -> Option<SeenAlphabets> {
    if split == data::SplitKind::Evaluation {
        return None;
    }
    let mut trained = vec![false; store.alphabets().len()];
    let mut held_out: Vec<String> = Vec::new();
    for path in choice.model_files() {
        let Ok(Some(config)) = saved_config(path, "") else {
            return None;
        };
        let partition = config.validation.partition(store).ok()?;
        for &c in &partition.train.characters {
            trained[store.characters()[c as usize].alphabet as usize] = true;
        }
        for name in partition.val_alphabets {
            if !held_out.contains(&name) {
                held_out.push(name);
            }
        }
    }
    // An alphabet one member trained on is not held out from the ensemble.
    held_out.retain(|name| {
        let a = store.alphabets().iter().position(|a| &a.name == name);
        a.is_some_and(|a| !trained[a])
    });
    let seen: Vec<String> = store
        .alphabets()
        .iter()
        .zip(&trained)
        .filter(|(a, t)| **t && scored.contains(&a.name))
        .map(|(a, _)| a.name.clone())
        .collect();
    (!seen.is_empty()).then_some(SeenAlphabets {
        seen,
        scored: scored.len(),
        held_out,
    })
}

pub struct Loaded {
    pub net: SiameseNet,
    pub extras: Extras,
    pub state: TrainState,
    pub config: TrainConfig,
}

pub fn load_checkpoint(path: &Path, device: &Device) -> Result<Loaded> {
    let (net, extras) = load(path, device)?;
    let state: TrainState = extras
        .metadata
        .get("train_state")
        .ok_or_else(|| TrainError::file(path, "not a training checkpoint (no train_state)"))
        .and_then(|s| {
            serde_json::from_str(s)
                .map_err(|e| TrainError::file(path, format!("bad train_state: {e}")))
        })?;
    let config = extras
        .metadata
        .get("config")
        .ok_or_else(|| TrainError::file(path, "not a training checkpoint (no config)"))
        .and_then(|s| {
            TrainConfig::from_toml(s)
                .map_err(|e| TrainError::file(path, format!("bad config: {e}")))
        })?;
    Ok(Loaded {
        net,
        extras,
        state,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_before_the_thread_count_read_without_one_and_new_ones_round_trip() {
        // The shipped model's record, written before threads were kept.
        let old: TrainState = serde_json::from_str(
            r#"{"step":12000,"best_accuracy":null,"best_step":null,"stale_validations":0}"#,
        )
        .unwrap();
        let expected = TrainState {
            step: 12000,
            ..Default::default()
        };
        assert_eq!(old, expected);
        assert!(!serde_json::to_string(&old).unwrap().contains("threads"));
        let mut state = old;
        state.start_on(&Device::Cpu);
        assert_eq!(state.threads, Some(rayon::current_num_threads()));
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<TrainState>(&json).unwrap(), state);
    }
}
