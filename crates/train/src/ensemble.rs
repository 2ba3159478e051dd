//! Ensembles (`members = K`): K networks trained one after another from seeds `seed`,
//! `seed + 1`, ..., each a run of its own in `RUN/memberI/`, then merged into one network
//! (`RUN/best.safetensors`) whose score is the mean of theirs. Resuming `RUN` skips the members
//! that finished and continues the one that was interrupted.

use std::time::Instant;

use candle_core::Device;
use data::trials::sample_trials;

use crate::checkpoint::{TrainState, load_checkpoint, save_checkpoint};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::trainer::{Outcome, RunOptions, Summary, Trainer, load_background};

/// The run of member `i`: its own folder and seed, otherwise the ensemble's recipe.
pub fn member_config(config: &TrainConfig, i: usize) -> TrainConfig {
    TrainConfig {
        name: format!("member{i}"),
        out_dir: config.run_dir(),
        seed: config.seed + i as u64,
        members: 1,
        ..config.clone()
    }
}

/// The ensemble config saved in `dir`, when `dir` is an ensemble's run folder.
pub fn saved_config(dir: &std::path::Path) -> Result<Option<TrainConfig>> {
    let path = dir.join("config.toml");
    if dir.join("last.safetensors").exists() || !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainError::file(&path, format!("cannot read: {e}")))?;
    let config = TrainConfig::from_toml(&text).map_err(|e| TrainError::file(&path, e))?;
    Ok((config.members > 1).then_some(config))
}

/// Whether a member's checkpoint is the end of its run (all steps, or stopped early).
fn finished(state: &TrainState, config: &TrainConfig) -> bool {
    state.step >= config.total_steps()
        || (config.patience > 0 && state.stale_validations >= config.patience)
}

/// Trains (or resumes) every member, then writes the merged network. `opts.resume`, when
/// set, is the ensemble's folder; `opts.stop_after` applies to each member's steps.
pub fn run(config: TrainConfig, opts: &RunOptions) -> Result<Summary> {
    config.validate().map_err(TrainError::Config)?;
    let run_dir = config.run_dir();
    let config_path = run_dir.join("config.toml");
    if opts.resume.is_none() && config_path.exists() {
        return Err(TrainError::Config(format!(
            "{} already holds a run: continue it with `--resume {}` or pick another `--name`",
            run_dir.display(),
            run_dir.display()
        )));
    }
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| TrainError::file(&run_dir, format!("cannot create the run folder: {e}")))?;
    model::io::write_atomic(&config_path, config.to_toml().as_bytes())
        .map_err(|e| TrainError::file(&config_path, format!("cannot write: {e}")))?;

    let started = Instant::now();
    let (mut steps, mut items, mut waited) = (0u64, 0.0f64, 0.0f64);
    for i in 0..config.members {
        let member = member_config(&config, i);
        let dir = member.run_dir();
        let last = dir.join("last.safetensors");
        let resume = if last.exists() {
            let probe = load_checkpoint(&last, &Device::Cpu)?;
            if finished(&probe.state, &member) {
                tracing::info!(
                    member = i,
                    steps = probe.state.step,
                    "member already trained"
                );
                steps += probe.state.step;
                continue;
            }
            Some(dir)
        } else {
            None
        };
        tracing::info!(
            member = i,
            of = config.members,
            seed = member.seed,
            "training member"
        );
        let opts = RunOptions {
            resume,
            ..opts.clone()
        };
        let s = Trainer::run(member, &opts)?;
        steps += s.steps;
        items += s.items_per_s * s.seconds;
        waited += s.data_wait * s.seconds;
        if s.outcome == Outcome::Interrupted {
            return Ok(Summary {
                outcome: Outcome::Interrupted,
                run_dir,
                steps,
                best: None,
                seconds: started.elapsed().as_secs_f64(),
                items_per_s: 0.0,
                item_name: config.objective.item_name(),
                data_wait: 0.0,
                members: config.members,
            });
        }
    }

    let nets = (0..config.members)
        .map(|i| {
            let path = member_config(&config, i).run_dir().join("best.safetensors");
            Ok(load_checkpoint(&path, &Device::Cpu)?.net)
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = std::sync::Arc::new(model::ensemble::merge(&nets)?);
    let accuracy = validate(&config, &merged)?;
    let state = TrainState {
        step: steps,
        best_accuracy: accuracy,
        ..TrainState::default()
    };
    save_checkpoint(
        &run_dir.join("best.safetensors"),
        &merged,
        None,
        &state,
        &config,
    )?;
    if let Some(acc) = accuracy {
        tracing::info!(accuracy = 100.0 * acc, "ensemble validation");
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        outcome: Outcome::Finished,
        run_dir,
        steps,
        best: accuracy.map(|a| (steps, a)),
        seconds,
        items_per_s: items / seconds.max(1e-9),
        item_name: config.objective.item_name(),
        data_wait: waited / seconds.max(1e-9),
        members: config.members,
    })
}

/// The merged network's accuracy on the members' validation trials (`None` without a
/// validation split).
fn validate(config: &TrainConfig, net: &std::sync::Arc<model::SiameseNet>) -> Result<Option<f64>> {
    let store = load_background(config)?;
    let partition = config.validation.partition(&store)?;
    let Some(val) = &partition.val else {
        return Ok(None);
    };
    let v = &config.val;
    let trials = sample_trials(&store, val, v.protocol, v.ways, v.trials, v.seed)?;
    let mut scorer = crate::trainer::validation_scorer(net, config)?;
    let results = eval::evaluate(&mut scorer, &store, &trials)?;
    Ok(Some(eval::Accuracy::of(&results).accuracy))
}
