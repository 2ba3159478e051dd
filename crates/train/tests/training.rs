//! The training loop on a tiny synthetic dataset: it learns, it resumes exactly, it writes a
//! complete run folder, and it refuses bad configurations before doing any work.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use data::synthetic::{SyntheticSpec, write_split};
use data::{PairConfig, Protocol, ValidationConfig};
use model::io::load;
use model::{Arch, Init};
use train::config::{HardNegativeConfig, ValConfig};
use train::metrics::Record;
use train::optim::OptimizerConfig;
use train::schedule::Schedule;
use train::trainer::{Outcome, RunOptions, Summary};
use train::{TrainConfig, Trainer};

fn dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_split(
        dir.path(),
        "images_background",
        SyntheticSpec::new(4, 6, 20),
    )
    .unwrap();
    dir
}

fn tiny(data: &Path, out: &Path, name: &str) -> TrainConfig {
    let arch = Arch::conv4(16, 8);
    TrainConfig {
        name: name.into(),
        out_dir: out.to_path_buf(),
        dataset: data.to_path_buf(),
        device: "cpu".into(),
        pairs: PairConfig {
            side: 16,
            augment: None,
            same_alphabet_negatives: 0.0,
        },
        arch,
        init: Init::Default,
        seed: 3,
        batch: 16,
        epochs: 4,
        pairs_per_epoch: 16 * 50,
        objective: train::config::Objective::Pairs,
        optimizer: OptimizerConfig::Adamw {
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        schedule: Schedule::Constant,
        validation: ValidationConfig {
            alphabets: 1,
            ..Default::default()
        },
        val: ValConfig {
            every: 0,
            ways: 5,
            trials: 60,
            protocol: Protocol::WithinAlphabet,
            pairs: 32,
            seed: 1,
            turns: 1,
        },
        patience: 0,
        checkpoint_every: 40,
        log_every: 5,
        members: 1,
        ema: 0.0,
        dropout: 0.0,
        sam: 0.0,
        hard_negatives: Default::default(),
    }
}

/// Runs `config` for `steps` steps, checks it stopped there, then resumes its folder to the end
/// (the saved config wins over the default passed in) and returns the resumed run's summary.
fn stop_then_resume(config: TrainConfig, steps: u64) -> Summary {
    let dir = config.run_dir();
    let first = Trainer::run(
        config,
        &RunOptions {
            stop_after: Some(steps),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((first.outcome, first.steps), (Outcome::Interrupted, steps));
    Trainer::run(
        TrainConfig::default(),
        &RunOptions {
            resume: Some(dir),
            ..Default::default()
        },
    )
    .unwrap()
}

/// 5-way episodes with `queries` queries per class, half within one alphabet, cross-entropy
/// alone, two episodes a step and 100 an epoch.
fn five_way_episodes(queries: usize, rotations: bool) -> train::config::Objective {
    train::config::Objective::Episodes {
        ways: 5,
        queries,
        within_alphabet: 0.5,
        within_one_variant: false,
        rotations,
        eighth_turns: false,
        mirrors: false,
        two_drawers: false,
        overlays: 0.0,
        pair_weight: 0.0,
        symmetric: false,
        label_smoothing: 0.0,
        class_weight: 0.0,
        recon_weight: 0.0,
        local_block: 0,
        local_weight: 0.0,
        per_step: 2,
        per_epoch: 100,
    }
}

/// The background images and the trials a run of `config` validates on.
fn validation_trials(config: &TrainConfig) -> (data::ImageStore, Vec<data::trials::Trial>) {
    let store = train::trainer::load_background(config).unwrap();
    let partition = config.validation.partition(&store).unwrap();
    let v = &config.val;
    let val = partition.val.as_ref().unwrap();
    let trials =
        data::trials::sample_trials(&store, val, v.protocol, v.ways, v.trials, v.seed).unwrap();
    (store, trials)
}

fn weights(path: &Path) -> Vec<Vec<f32>> {
    net_weights(&load(path, &candle_core::Device::Cpu).unwrap().0)
}

fn net_weights(net: &model::SiameseNet) -> Vec<Vec<f32>> {
    values(net.vars())
}

/// The batch-norm running statistics saved in `path`.
fn buffers(path: &Path) -> Vec<Vec<f32>> {
    values(load(path, &candle_core::Device::Cpu).unwrap().0.buffers())
}

fn values(vars: &[candle_core::Var]) -> Vec<Vec<f32>> {
    vars.iter()
        .map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn losses(recs: &[Record]) -> Vec<f64> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Train { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect()
}

fn accuracies(recs: &[Record]) -> Vec<f64> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Val { accuracy, .. } => Some(*accuracy),
            _ => None,
        })
        .collect()
}

/// Mean of the first and of the last three values.
fn ends(v: &[f64]) -> (f64, f64) {
    (
        v[..3].iter().sum::<f64>() / 3.0,
        v[v.len() - 3..].iter().sum::<f64>() / 3.0,
    )
}

fn records(dir: &Path) -> Vec<Record> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Trains `plain` and then `variant` (200 steps each) and checks that the variant changed the
/// weights, still learns (loss down by a tenth, 5-way validation above 40% at some point) and
/// recorded itself in its run folder's config, whose text is returned.
fn learns_beside_plain(plain: TrainConfig, variant: TrainConfig) -> String {
    let file = |c: &TrainConfig| c.run_dir().join("last.safetensors");
    Trainer::run(plain.clone(), &RunOptions::default()).unwrap();
    let s = Trainer::run(variant.clone(), &RunOptions::default()).unwrap();
    assert_eq!(s.steps, 200);
    assert_ne!(weights(&file(&plain)), weights(&file(&variant)));
    let recs = records(&variant.run_dir());
    let (first, last) = ends(&losses(&recs));
    assert!(last < 0.9 * first, "loss {first} -> {last}");
    let best = accuracies(&recs).iter().cloned().fold(0.0, f64::max);
    assert!(best > 0.4, "{best}");
    std::fs::read_to_string(variant.run_dir().join("config.toml")).unwrap()
}

#[test]
fn a_tiny_model_learns_and_writes_a_complete_run() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = tiny(data.path(), out.path(), "learn");
    let summary = Trainer::run(cfg, &RunOptions::default()).unwrap();
    assert_eq!(summary.outcome, Outcome::Finished);
    assert_eq!(summary.steps, 200);
    let dir = out.path().join("learn");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "curves.png",
        "curves.svg",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let recs = records(&dir);
    let (losses, accs) = (losses(&recs), accuracies(&recs));
    assert_eq!(losses.len(), 40);
    assert_eq!(accs.len(), 4, "one validation per epoch");
    let (first, last) = ends(&losses);
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    // Above chance (1/5) on held-out alphabets.
    assert!(accs.iter().cloned().fold(0.0, f64::max) > 0.3, "{accs:?}");
    // The saved config reproduces the run.
    let saved =
        TrainConfig::from_toml(&std::fs::read_to_string(dir.join("config.toml")).unwrap()).unwrap();
    assert_eq!(saved, tiny(data.path(), out.path(), "learn"));
    // best.safetensors is a model file with the architecture inside.
    let (net, _) = load(&dir.join("best.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(net.arch(), &Arch::conv4(16, 8));
    // A second run with the same name refuses to overwrite it.
    let msg = Trainer::run(
        tiny(data.path(), out.path(), "learn"),
        &RunOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("--resume"), "{msg}");
}

/// With nothing held out there is nothing to select on: `best.safetensors` holds the final
/// weights and no validation is recorded.
#[test]
fn without_validation_the_final_weights_are_best() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        validation: ValidationConfig::none(),
        ..tiny(data.path(), out.path(), "all")
    };
    let summary = Trainer::run(cfg, &RunOptions::default()).unwrap();
    assert_eq!(summary.outcome, Outcome::Finished);
    assert_eq!(summary.best, None);
    let dir = out.path().join("all");
    assert!(accuracies(&records(&dir)).is_empty());
    assert_eq!(
        weights(&dir.join("best.safetensors")),
        weights(&dir.join("last.safetensors"))
    );
}

fn episodes_learn(name: &str, queries: usize, symmetric: bool, distance: model::Distance) {
    episodes_learn_with(
        name,
        queries,
        symmetric,
        distance,
        model::HeadSpec::default(),
    )
}

fn episodes_learn_with(
    name: &str,
    queries: usize,
    symmetric: bool,
    distance: model::Distance,
    head: model::HeadSpec,
) {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), name);
    cfg.arch.distance = distance;
    cfg.arch.head = head;
    cfg.objective = train::config::Objective::Episodes {
        ways: 5,
        queries,
        within_alphabet: 0.5,
        within_one_variant: false,
        rotations: false,
        eighth_turns: false,
        mirrors: false,
        two_drawers: false,
        overlays: 0.0,
        pair_weight: 0.5,
        symmetric,
        label_smoothing: 0.0,
        class_weight: 0.0,
        recon_weight: 0.0,
        local_block: 0,
        local_weight: 0.0,
        per_step: 2,
        per_epoch: 100,
    };
    let s = Trainer::run(cfg, &RunOptions::default()).unwrap();
    assert_eq!(s.steps, 200);
    let recs = records(&out.path().join(name));
    let (losses, accs) = (losses(&recs), accuracies(&recs));
    // 5-way cross-entropy starts near ln 5 (+ the pair term) and must fall.
    let (first, last) = ends(&losses);
    assert!(last < 0.7 * first, "{name}: loss {first} -> {last}");
    assert!(
        accs.iter().cloned().fold(0.0, f64::max) > 0.4,
        "{name}: {accs:?}"
    );
}

#[test]
fn episodes_objective_learns() {
    episodes_learn("episodes", 2, false, model::Distance::L1);
}

#[test]
fn symmetric_episodes_objective_learns() {
    episodes_learn("symmetric", 1, true, model::Distance::L1);
}

#[test]
fn episodes_with_a_squared_l2_head_learn() {
    episodes_learn("squared-l2", 2, false, model::Distance::SquaredL2);
}

#[test]
fn episodes_with_a_hidden_layer_and_products_in_the_head_learn() {
    let head = model::HeadSpec {
        hidden: 16,
        products: true,
    };
    episodes_learn_with("mlp-head", 2, false, model::Distance::L1, head);
}

#[test]
fn resume_continues_exactly() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let straight = tiny(data.path(), out.path(), "straight");
    Trainer::run(straight, &RunOptions::default()).unwrap();

    // Stopped at 100 (checked by the helper), then resumed from its saved config.
    let second = stop_then_resume(tiny(data.path(), out.path(), "split"), 100);
    assert_eq!(second.outcome, Outcome::Finished);
    assert_eq!(second.steps, 200);
    assert_eq!(
        weights(&out.path().join("straight/last.safetensors")),
        weights(&out.path().join("split/last.safetensors")),
        "N + resume + N steps equal 2N steps"
    );
    // The metrics file holds each step once.
    let steps: Vec<u64> = records(&out.path().join("split"))
        .iter()
        .filter_map(|r| match r {
            Record::Train { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, (1..=40).map(|i| i * 5).collect::<Vec<u64>>());
}

#[test]
fn stop_flag_saves_a_checkpoint() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(true));
    let s = Trainer::run(
        tiny(data.path(), out.path(), "stopped"),
        &RunOptions {
            stop,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.outcome, Outcome::Interrupted);
    assert!(out.path().join("stopped/last.safetensors").is_file());
}

#[test]
fn divergence_stops_with_an_error_and_keeps_the_checkpoint() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), "diverge");
    cfg.optimizer = OptimizerConfig::Sgd {
        lr: 1e300,
        momentum: 0.0,
        momentum_start: 0.0,
        momentum_epochs: 0.0,
        l2: 0.0,
        layer_lr: vec![],
        layer_l2: vec![],
    };
    cfg.checkpoint_every = 1;
    let msg = Trainer::run(cfg, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("the loss became") && msg.contains("last.safetensors"),
        "{msg}"
    );
    assert!(
        load(
            &out.path().join("diverge/last.safetensors"),
            &candle_core::Device::Cpu
        )
        .is_ok()
    );
}

#[test]
fn bad_configurations_fail_before_any_work() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny(data.path(), out.path(), "bad");
    cfg.batch = 0;
    let msg = Trainer::run(cfg, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("batch size"), "{msg}");
    assert!(!out.path().join("bad").exists());

    let mut cfg = tiny(data.path(), out.path(), "bad");
    cfg.optimizer.set_lr(-0.1);
    assert!(
        Trainer::run(cfg, &RunOptions::default())
            .unwrap_err()
            .to_string()
            .contains("learning rate")
    );

    let cfg = tiny(Path::new("/no/such/dataset"), out.path(), "bad");
    let msg = Trainer::run(cfg, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cargo xtask download"), "{msg}");
    assert!(!out.path().join("bad").exists());

    let mut cfg = tiny(data.path(), out.path(), "bad");
    cfg.val.ways = 50;
    let msg = Trainer::run(cfg, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("50-way"), "{msg}");

    let file = out.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cfg = tiny(data.path(), &file, "bad");
    let msg = Trainer::run(cfg, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot create the run folder"), "{msg}");
}

#[test]
fn ensembles_train_each_member_resume_and_merge() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        members: 2,
        epochs: 1,
        ..tiny(data.path(), out.path(), "ens")
    };
    let dir = out.path().join("ens");
    let first = Trainer::run(
        config.clone(),
        &RunOptions {
            stop_after: Some(20),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((first.outcome, first.steps), (Outcome::Interrupted, 20));
    assert!(!dir.join("member1").exists() && !dir.join("best.safetensors").exists());
    let msg = Trainer::run(config, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("--resume"), "{msg}");

    // Resuming continues member 0 from step 20, then trains member 1 from scratch.
    let resumed = RunOptions {
        resume: Some(dir.clone()),
        ..Default::default()
    };
    let done = Trainer::run(TrainConfig::default(), &resumed).unwrap();
    assert_eq!(
        (done.outcome, done.steps, done.members),
        (Outcome::Finished, 100, 2)
    );
    let acc = done.best.expect("the merged network is validated").1;
    assert!((0.0..=1.0).contains(&acc));
    let member = |i: usize| {
        let path = dir.join(format!("member{i}/best.safetensors"));
        train::checkpoint::load_checkpoint(&path, &candle_core::Device::Cpu).unwrap()
    };
    let (m0, m1) = (member(0), member(1));
    assert_eq!((m0.config.seed, m1.config.seed), (3, 4));
    assert_eq!((m0.state.step, m1.state.step), (50, 50));
    assert_ne!(
        weights(&dir.join("member0/best.safetensors")),
        weights(&dir.join("member1/best.safetensors"))
    );

    // best.safetensors is the two members merged, one network of two towers.
    let merged = dir.join("best.safetensors");
    let (net, _) = load(&merged, &candle_core::Device::Cpu).unwrap();
    assert_eq!(net.arch().towers, 2);
    let by_hand = model::ensemble::merge(&[m0.net, m1.net]).unwrap();
    let expected = net_weights(&by_hand);
    assert_eq!(weights(&merged), expected);

    // Resuming a finished ensemble trains nothing more.
    let again = Trainer::run(TrainConfig::default(), &resumed).unwrap();
    assert_eq!((again.outcome, again.steps), (Outcome::Finished, 100));
    assert_eq!(weights(&merged), expected);
}

#[test]
fn rotation_trained_checkpoints_suggest_their_paired_turns() {
    use train::checkpoint::{TrainState, paired_turns, save_checkpoint};
    use train::config::Objective;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(dir.path(), dir.path(), "turns");
    let net =
        model::SiameseNet::new(&cfg.arch, Init::Default, 0, &candle_core::Device::Cpu).unwrap();
    let turns_for = |objective: Objective, file: &str| {
        let path = dir.path().join(file);
        let cfg = TrainConfig {
            objective,
            ..cfg.clone()
        };
        save_checkpoint(&path, &net, None, &TrainState::default(), &cfg).unwrap();
        paired_turns(&path).unwrap()
    };
    assert_eq!(turns_for(Objective::Pairs, "pairs.safetensors"), 1);
    let episodes = Objective::episodes(10);
    assert_eq!(turns_for(episodes.clone(), "upright.safetensors"), 1);
    let turned = |with_rotations, with_mirrors, with_eighths| {
        let mut o = episodes.clone();
        if let Objective::Episodes {
            rotations,
            mirrors,
            eighth_turns,
            ..
        } = &mut o
        {
            (*rotations, *mirrors, *eighth_turns) = (with_rotations, with_mirrors, with_eighths);
        }
        o
    };
    let rotated = |with_mirrors| turned(true, with_mirrors, false);
    assert_eq!(turns_for(rotated(false), "rotated.safetensors"), 4);
    assert_eq!(turns_for(rotated(true), "mirrored.safetensors"), 4);
    assert_eq!(
        turns_for(turned(true, false, true), "eighths.safetensors"),
        8
    );
    // Eighth turns without rotations make no turned classes, so nothing to turn at test.
    assert_eq!(
        turns_for(turned(false, false, true), "no-turns.safetensors"),
        1
    );

    // A model file without a training config (not ours to judge) is scored upright.
    let bare = dir.path().join("bare.safetensors");
    model::io::save(&net, &bare, &model::io::Extras::default()).unwrap();
    assert_eq!(paired_turns(&bare).unwrap(), 1);
    // A damaged config is an error that names the file, not a silent guess.
    let mut extras = model::io::Extras::default();
    extras.metadata.insert("config".into(), "seed = [".into());
    let broken = dir.path().join("broken.safetensors");
    model::io::save(&net, &broken, &extras).unwrap();
    let err = paired_turns(&broken).unwrap_err().to_string();
    assert!(
        err.contains("broken.safetensors") && err.contains("bad config"),
        "{err}"
    );
    let err = paired_turns(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}

/// `val.turns` scores the validation trials as `eval --turns` does (the recorded accuracy is
/// the eval figure of the same weights), without touching training.
#[test]
fn validation_is_scored_in_the_configured_paired_turns() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let run = |turns: usize, name: &str| {
        let base = tiny(data.path(), out.path(), name);
        let cfg = TrainConfig {
            epochs: 1,
            val: ValConfig { turns, ..base.val },
            ..base
        };
        Trainer::run(cfg.clone(), &RunOptions::default()).unwrap();
        cfg
    };
    let upright = run(1, "upright");
    run(4, "turned");
    let last = |name: &str| out.path().join(name).join("last.safetensors");
    assert_eq!(weights(&last("upright")), weights(&last("turned")));

    let recorded = |name: &str| {
        let recs = records(&out.path().join(name));
        let vals: Vec<(f64, usize)> = recs
            .iter()
            .filter_map(|r| match r {
                Record::Val {
                    accuracy, turns, ..
                } => Some((*accuracy, *turns)),
                _ => None,
            })
            .collect();
        assert_eq!(vals.len(), 1, "{name}: one validation");
        vals[0]
    };
    let (store, trials) = validation_trials(&upright);
    let net = Arc::new(load(&last("turned"), &candle_core::Device::Cpu).unwrap().0);
    let eval_accuracy = |turns: usize| {
        let mut scorer = eval::ModelScorer::new(net.clone(), 64)
            .unwrap()
            .with_turns(turns)
            .unwrap();
        eval::Accuracy::of(&eval::evaluate(&mut scorer, &store, &trials).unwrap()).accuracy
    };
    let (a1, a4) = (eval_accuracy(1), eval_accuracy(4));
    assert_ne!(
        a1, a4,
        "the turned score must differ for this test to tell them apart"
    );
    assert_eq!(recorded("upright"), (a1, 1));
    assert_eq!(recorded("turned"), (a4, 4));
    // The run folder's config says how its curve was scored, so a resume scores alike.
    let saved = |name: &str| {
        let text = std::fs::read_to_string(out.path().join(name).join("config.toml")).unwrap();
        TrainConfig::from_toml(&text).unwrap().val.turns
    };
    assert_eq!((saved("upright"), saved("turned")), (1, 4));
}

/// Dropout changes the gradients, still learns, and draws the same masks across a resume.
#[test]
fn embedding_dropout_learns_changes_training_and_resumes_exactly() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, dropout: f64| TrainConfig {
        objective: five_way_episodes(2, false),
        dropout,
        ..tiny(data.path(), out.path(), name)
    };
    let file = |name: &str| out.path().join(name).join("last.safetensors");
    // The tiny net's embedding has 8 dimensions, so dropping 30% of them keeps the training
    // loss high; validation, which uses the whole embedding, shows what it learnt.
    let saved = learns_beside_plain(cfg("plain", 0.0), cfg("dropped", 0.3));
    assert!(saved.contains("dropout = 0.3"), "{saved}");
    // The masks are keyed by step, so an interrupted run drops what the straight one did.
    stop_then_resume(cfg("split", 0.3), 70);
    assert_eq!(weights(&file("split")), weights(&file("dropped")));

    // The pairs objective drops values of both sides' embeddings too.
    let pairs = |name: &str, dropout: f64| TrainConfig {
        epochs: 1,
        dropout,
        ..tiny(data.path(), out.path(), name)
    };
    Trainer::run(pairs("pairs-plain", 0.0), &RunOptions::default()).unwrap();
    Trainer::run(pairs("pairs-dropped", 0.3), &RunOptions::default()).unwrap();
    assert_ne!(
        weights(&file("pairs-plain")),
        weights(&file("pairs-dropped"))
    );

    let err = Trainer::run(cfg("bad", 1.0), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embedding dropout must be in [0, 1), not 1"),
        "{err}"
    );
}

#[test]
fn hard_negative_episodes_learn_are_saved_and_resume_exactly() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, fraction: f32| TrainConfig {
        objective: five_way_episodes(1, true),
        // 200 steps; the table is mined at steps 30, 60, ..., 180.
        hard_negatives: HardNegativeConfig {
            fraction,
            every: 30,
            neighbours: 8,
            drawings: 2,
        },
        ..tiny(data.path(), out.path(), name)
    };
    let file = |name: &str| out.path().join(name).join("last.safetensors");
    let saved = learns_beside_plain(cfg("plain", 0.0), cfg("hard", 0.6));
    assert!(
        saved.contains("[hard_negatives]\nfraction = 0.6"),
        "{saved}"
    );
    let plain = std::fs::read_to_string(out.path().join("plain/config.toml")).unwrap();
    assert!(
        !plain.contains("hard_negatives"),
        "off is not written: {plain}"
    );

    // The checkpoint holds the table: 3 training alphabets x 6 characters x 4 turns = 72
    // classes, 8 neighbours each, every one another class.
    let (_, extras) = load(&file("hard"), &candle_core::Device::Cpu).unwrap();
    let table = &extras.tensors[train::mining::TENSOR_NAME];
    assert_eq!(table.dims(), [72, 8]);
    let rows = table.to_vec2::<u32>().unwrap();
    for (c, row) in rows.iter().enumerate() {
        assert!(
            row.iter().all(|&d| (d as usize) < 72 && d as usize != c),
            "{row:?}"
        );
    }

    // Stopped between refreshes (the saved table is in use) and at a refresh (mined again from
    // the same weights), a resumed run samples what the straight one did.
    stop_then_resume(cfg("split-70", 0.6), 70);
    assert_eq!(weights(&file("split-70")), weights(&file("hard")));
    stop_then_resume(cfg("split-60", 0.6), 60);
    assert_eq!(weights(&file("split-60")), weights(&file("hard")));

    let pairs = TrainConfig {
        hard_negatives: HardNegativeConfig {
            fraction: 0.5,
            ..Default::default()
        },
        ..tiny(data.path(), out.path(), "pairs")
    };
    let err = Trainer::run(pairs, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("mined for episodes, not pairs"), "{err}");
    let mut few = cfg("few", 0.5);
    few.hard_negatives.neighbours = 3;
    let err = Trainer::run(few, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at least 4 neighbours for 5-way episodes"),
        "{err}"
    );
}

/// `ema` leaves training alone, writes the averaged network beside it, and averages across a
/// resume exactly as without one.
#[test]
fn weight_average_resumes_exactly_and_leaves_training_alone() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, ema: f64| TrainConfig {
        epochs: 2,
        ema,
        ..tiny(data.path(), out.path(), name)
    };
    let file = |name: &str, f: &str| out.path().join(name).join(f);
    Trainer::run(cfg("plain", 0.0), &RunOptions::default()).unwrap();
    Trainer::run(cfg("straight", 0.9), &RunOptions::default()).unwrap();
    assert!(!file("plain", "ema.safetensors").exists());
    assert_eq!(
        weights(&file("plain", "last.safetensors")),
        weights(&file("straight", "last.safetensors")),
        "the average does not change training"
    );
    let (last, averaged) = (
        weights(&file("straight", "last.safetensors")),
        weights(&file("straight", "ema.safetensors")),
    );
    assert_ne!(last, averaged);
    // The saved config says how it was made, and is read back.
    let saved = std::fs::read_to_string(file("straight", "config.toml")).unwrap();
    assert!(saved.contains("ema = 0.9"), "{saved}");

    stop_then_resume(cfg("split", 0.9), 50);
    assert_eq!(weights(&file("split", "ema.safetensors")), averaged);

    // A decay near 0 tracks the last weights: the average is updated on every step.
    Trainer::run(cfg("tracking", 1e-9), &RunOptions::default()).unwrap();
    for (a, b) in weights(&file("tracking", "ema.safetensors"))
        .iter()
        .flatten()
        .zip(last.iter().flatten())
    {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    let err = Trainer::run(cfg("bad", 1.0), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weight-average decay must be in [0, 1)"),
        "{err}"
    );
}

#[test]
fn a_class_head_trains_beside_episodes_resumes_exactly_and_stays_out_of_the_model() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, class_weight: f64| {
        let mut c = tiny(data.path(), out.path(), name);
        c.epochs = 2;
        c.checkpoint_every = 10;
        c.objective = train::config::Objective::Episodes {
            ways: 5,
            queries: 1,
            within_alphabet: 0.5,
            within_one_variant: false,
            rotations: true,
            eighth_turns: false,
            mirrors: false,
            two_drawers: false,
            overlays: 0.0,
            pair_weight: 0.0,
            symmetric: false,
            label_smoothing: 0.0,
            class_weight,
            recon_weight: 0.0,
            local_block: 0,
            local_weight: 0.0,
            per_step: 1,
            per_epoch: 25,
        };
        c
    };
    let file = |name: &str, f: &str| out.path().join(name).join(f);
    let head_of = |path: &Path| {
        let (_, extras) = load(path, &candle_core::Device::Cpu).unwrap();
        extras.tensors.get("aux.class_weights").cloned()
    };
    Trainer::run(cfg("plain", 0.0), &RunOptions::default()).unwrap();
    Trainer::run(cfg("straight", 1.0), &RunOptions::default()).unwrap();
    assert_ne!(
        weights(&file("plain", "last.safetensors")),
        weights(&file("straight", "last.safetensors")),
        "the class loss changes training"
    );
    assert!(head_of(&file("plain", "last.safetensors")).is_none());
    // 3 training alphabets (one is held out for validation) of 6 characters, 4 turns each.
    let head = head_of(&file("straight", "last.safetensors")).expect("the head is checkpointed");
    let dim = Arch::conv4(16, 8).embedding_dim().unwrap();
    assert_eq!(head.dims(), [3 * 6 * 4, dim]);
    assert!(head_of(&file("straight", "best.safetensors")).is_none());
    let saved = std::fs::read_to_string(file("straight", "config.toml")).unwrap();
    assert!(saved.contains("class_weight = 1.0"), "{saved}");

    stop_then_resume(cfg("split", 1.0), 20);
    assert_eq!(
        weights(&file("split", "last.safetensors")),
        weights(&file("straight", "last.safetensors")),
        "N + resume + N steps equal 2N steps, the head's prototypes and buffers included"
    );
    let resumed = head_of(&file("split", "last.safetensors")).unwrap();
    assert_eq!(
        resumed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        head.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );

    let err = Trainer::run(cfg("bad", -1.0), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("class_weight must be a number >= 0"), "{err}");
}

#[test]
fn a_reconstruction_head_learns_to_redraw_resumes_exactly_and_stays_out_of_the_model() {
    use candle_core::{Device, Tensor};
    use train::recon_head::ReconHead;
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, recon_weight: f64| {
        let mut c = tiny(data.path(), out.path(), name);
        c.epochs = 2;
        c.checkpoint_every = 10;
        // Batch norm and a 4x4 last map, so that the embedding holds where the ink is.
        c.arch = Arch::convnet_widths(16, &[8, 16], true);
        c.objective = five_way_episodes(1, true);
        if let train::config::Objective::Episodes {
            recon_weight: w,
            per_step,
            per_epoch,
            ..
        } = &mut c.objective
        {
            (*w, *per_step, *per_epoch) = (recon_weight, 1, 100);
        }
        c
    };
    let file = |name: &str, f: &str| out.path().join(name).join(f);
    let head_of = |path: &Path| {
        let (net, extras) = load(path, &Device::Cpu).unwrap();
        let dim = net.arch().embedding_dim().unwrap();
        let head = ReconHead::from_extras(&extras.tensors, dim, 16 * 16, &Device::Cpu);
        (net, head)
    };
    Trainer::run(cfg("plain", 0.0), &RunOptions::default()).unwrap();
    Trainer::run(cfg("straight", 1.0), &RunOptions::default()).unwrap();
    assert_ne!(
        weights(&file("plain", "last.safetensors")),
        weights(&file("straight", "last.safetensors")),
        "the reconstruction loss changes training"
    );
    assert!(head_of(&file("plain", "last.safetensors")).1.is_err());
    assert!(head_of(&file("straight", "best.safetensors")).1.is_err());
    let saved = std::fs::read_to_string(file("straight", "config.toml")).unwrap();
    assert!(saved.contains("recon_weight = 1.0"), "{saved}");

    // The trained decoder redraws training drawings from their embeddings better than the
    // best decoder blind to the embedding (each pixel's mean ink as its bias), where it started.
    let (net, head) = head_of(&file("straight", "last.safetensors"));
    let head = head.expect("the head is checkpointed");
    let store = train::trainer::load_background(&cfg("straight", 1.0)).unwrap();
    let ids: Vec<u32> = (0..store.len() as u32).step_by(7).collect();
    let images = store.batch_f32(&ids);
    let blind_mean = ReconHead::mean_ink(images.chunks(256), 256);
    let x = Tensor::from_vec(images, (ids.len(), 1, 16, 16), &Device::Cpu).unwrap();
    let e = net.embed_inference(&x).unwrap();
    let dim = net.arch().embedding_dim().unwrap();
    let blind = ReconHead::new(dim, &blind_mean, &Device::Cpu).unwrap();
    let loss = |h: &ReconHead| -> f32 { h.loss(&e, &x).unwrap().to_scalar().unwrap() };
    let (trained, mean_image) = (loss(&head), loss(&blind));
    assert!(
        trained < 0.85 * mean_image,
        "trained {trained} against the mean image's {mean_image}"
    );

    stop_then_resume(cfg("split", 1.0), 80);
    assert_eq!(
        weights(&file("split", "last.safetensors")),
        weights(&file("straight", "last.safetensors")),
        "N + resume + N steps equal 2N steps, the decoder and its buffers included"
    );
    let resumed = head_of(&file("split", "last.safetensors")).1.unwrap();
    for (a, b) in resumed.vars().iter().zip(head.vars()) {
        assert_eq!(
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            b.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }

    let err = Trainer::run(cfg("bad", -1.0), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("recon_weight must be a number >= 0"), "{err}");
}

/// The same runs on the compiled-in accelerator (`cargo test -p train --features cuda
/// accelerator`): there the layers are candle's generic ops and the optimizer works in tensor
/// ops, where the CPU runs fused kernels. Both start from the same weights and batches, so
/// the first logged losses agree to rounding, and the accelerator's run learns as well.
#[cfg(any(feature = "cuda", feature = "metal"))]
#[test]
fn runs_on_the_accelerator_follow_the_cpu() {
    let accelerator = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "metal"
    };
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    for episodes in [false, true] {
        let cfg = |device: &str| {
            let name = format!("{}-{device}", if episodes { "episodes" } else { "pairs" });
            let mut c = tiny(data.path(), out.path(), &name);
            c.device = device.into();
            if episodes {
                c.arch = Arch::convnet(4, 16, 8, true);
                c.objective = train::config::Objective::Episodes {
                    ways: 5,
                    queries: 2,
                    within_alphabet: 0.5,
                    within_one_variant: false,
                    rotations: true,
                    mirrors: false,
                    two_drawers: false,
                    overlays: 0.0,
                    pair_weight: 0.0,
                    symmetric: false,
                    label_smoothing: 0.1,
                    class_weight: 0.0,
                    recon_weight: 0.0,
                    local_block: 0,
                    local_weight: 0.0,
                    per_step: 2,
                    per_epoch: 100,
                };
            }
            (name, c)
        };
        let mut runs = Vec::new();
        for device in ["cpu", accelerator] {
            let (name, c) = cfg(device);
            assert_eq!(Trainer::run(c, &RunOptions::default()).unwrap().steps, 200);
            runs.push(records(&out.path().join(name)));
        }
        let (cpu, acc) = (losses(&runs[0]), losses(&runs[1]));
        let best = accuracies(&runs[1]).iter().cloned().fold(0.0, f64::max);
        let (first, last) = ends(&acc);
        eprintln!(
            "episodes {episodes}: first logged loss {} ({accelerator}) vs {} (cpu); \
             {accelerator} loss {first:.3} -> {last:.3}, best validation {best}",
            acc[0], cpu[0]
        );
        assert!(
            (acc[0] - cpu[0]).abs() < 5e-3 * cpu[0],
            "{} vs {}",
            acc[0],
            cpu[0]
        );
        assert!(last < 0.8 * first, "loss {first} -> {last}");
        assert!(best > 0.35, "best 5-way validation accuracy {best}");
    }
}

/// Sharpness-aware steps learn, differ from plain ones, resume exactly, and leave the batch-norm
/// running statistics one update per step: with a radius too small to move an f32 weight the
/// run is the plain one, bit for bit, buffers included.
#[test]
fn sharpness_aware_steps_learn_resume_exactly_and_update_statistics_once() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, sam: f64| {
        let mut c = TrainConfig {
            objective: five_way_episodes(2, false),
            sam,
            ..tiny(data.path(), out.path(), name)
        };
        for b in &mut c.arch.blocks {
            b.batch_norm = true;
        }
        c
    };
    let file = |name: &str| out.path().join(name).join("last.safetensors");
    let saved = learns_beside_plain(cfg("plain", 0.0), cfg("sam", 0.05));
    assert!(saved.contains("sam = 0.05"), "{saved}");

    stop_then_resume(cfg("split", 0.05), 70);
    assert_eq!(weights(&file("split")), weights(&file("sam")));
    assert_eq!(buffers(&file("split")), buffers(&file("sam")));

    // 1e-60 is 0 in f32, so the second pass sees the first pass's weights; a second update of
    // the running statistics would show in the buffers.
    Trainer::run(cfg("vanishing", 1e-60), &RunOptions::default()).unwrap();
    assert_eq!(weights(&file("vanishing")), weights(&file("plain")));
    assert_eq!(buffers(&file("vanishing")), buffers(&file("plain")));
    assert_ne!(buffers(&file("plain")), buffers(&file("sam")));

    for bad in [-0.1, f64::NAN] {
        let err = Trainer::run(cfg("bad", bad), &RunOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sharpness-aware radius must be a finite number >= 0"),
            "{err}"
        );
    }
}

/// The part-by-part term changes training, still learns, is recorded in the run's config,
/// and validation scores the model with it exactly as `eval --local-block --local-weight`.
#[test]
fn local_matching_in_episodes_learns_and_validates_as_eval_scores_it() {
    let data = dataset();
    let out = tempfile::tempdir().unwrap();
    let cfg = |name: &str, local_block: usize, local_weight: f64| {
        let mut objective = five_way_episodes(2, false);
        if let train::config::Objective::Episodes {
            local_block: b,
            local_weight: w,
            ..
        } = &mut objective
        {
            (*b, *w) = (local_block, local_weight);
        }
        TrainConfig {
            objective,
            ..tiny(data.path(), out.path(), name)
        }
    };
    let local = cfg("local", 2, 5.0);
    let saved = learns_beside_plain(cfg("plain", 0, 0.0), local.clone());
    assert!(
        saved.contains("local_block = 2\nlocal_weight = 5.0"),
        "{saved}"
    );

    let (store, trials) = validation_trials(&local);
    let file = local.run_dir().join("last.safetensors");
    let net = Arc::new(load(&file, &candle_core::Device::Cpu).unwrap().0);
    let accuracy = |weight: f32| {
        let mut scorer = eval::ModelScorer::new(net.clone(), 64)
            .unwrap()
            .with_local_match(Some(eval::local::LocalMatch { block: 2, weight }))
            .unwrap();
        eval::Accuracy::of(&eval::evaluate(&mut scorer, &store, &trials).unwrap()).accuracy
    };
    let (with, without) = (accuracy(5.0), accuracy(0.0));
    assert_ne!(with, without, "the term must count for this test to tell");
    let last_val = records(&local.run_dir())
        .iter()
        .rev()
        .filter_map(|r| match r {
            Record::Val { accuracy, .. } => Some(*accuracy),
            _ => None,
        })
        .next()
        .unwrap();
    assert_eq!(last_val, with);
}
