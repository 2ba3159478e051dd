//! `sweep-ways` on a synthetic evaluation split: every scorer, protocol and N is reported, and
//! the table, CSV, JSON and plots are written.

use data::synthetic::{SyntheticSpec, write_split};
use data::{Protocol, SplitKind};
use eval::session::{Baseline, ScorerChoice};
use model::{Arch, Init, SiameseNet};

/// A temporary dataset holding a synthetic `images_evaluation` of `alphabets` alphabets of
/// `characters` characters, 20 drawers each.
fn evaluation_split(alphabets: usize, characters: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec::new(alphabets, characters, 20);
    write_split(tmp.path(), "images_evaluation", spec).unwrap();
    tmp
}

/// Options for `scorers` on the synthetic split in `dataset`, writing to `out_dir`: 10
/// random 2-way one-shot trials, each model in the turns that suit it, nothing else on.
fn options(
    scorers: Vec<ScorerChoice>,
    dataset: &std::path::Path,
    out_dir: std::path::PathBuf,
) -> xtask::sweep::SweepOptions {
    xtask::sweep::SweepOptions {
        scorers,
        ways: vec![2],
        shots: 1,
        protocols: vec![Protocol::Random],
        trials: 10,
        seed: 1,
        dataset: dataset.to_path_buf(),
        split: SplitKind::Evaluation,
        out_dir,
        device: candle_core::Device::Cpu,
        tta: false,
        turns: None,
        mirror_pairs: false,
        hubness: 0.0,
        adapt: 0,
    }
}

#[test]
fn sweep_writes_every_output() {
    let tmp = evaluation_split(2, 6);
    let model = tmp.path().join("m.safetensors");
    let net = SiameseNet::new(
        &Arch::conv4(16, 4),
        Init::Default,
        0,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    model::io::save(&net, &model, &Default::default()).unwrap();
    let out = tmp.path().join("sweep");
    let scorers = vec![
        ScorerChoice::Checkpoint(model),
        ScorerChoice::Baseline(Baseline::Pixel, data::Framing::Canvas),
    ];
    let opts = xtask::sweep::SweepOptions {
        ways: vec![2, 5],
        protocols: vec![Protocol::Random, Protocol::WithinAlphabet],
        trials: 30,
        turns: Some(2),
        mirror_pairs: true,
        hubness: 0.25,
        adapt: 3,
        ..options(scorers, tmp.path(), out.clone())
    };
    let reports = xtask::sweep::run(&opts).unwrap();
    assert_eq!(reports.len(), 2 * 2 * 2);
    assert!(reports.iter().all(|r| r.overall.total == 30));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    // The table, then a blank line, the command and the one model file by its hash.
    assert_eq!(md.lines().count(), 2 + 8 + 3, "{md}");
    let hash = eval::report::sha256_file(&tmp.path().join("m.safetensors")).unwrap();
    assert!(md.ends_with(&format!("SHA-256 `{hash}`.\n")), "{md}");
    assert!(md.contains("| pixel NN | within-alphabet | 5 |"), "{md}");
    // The paired turns, the hubness correction and the adaptation are the model's; the
    // baseline is scored as it always was.
    assert!(
        md.contains(
            "| siamese (m.safetensors) + 2 paired turns + mirrored pairs + hubness 0.25 + adapted (3 steps) | random | 2 |"
        ),
        "{md}"
    );
    assert!(md.contains("| pixel NN | random | 2 |"), "{md}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 8);
    assert!(out.join("sweep.png").is_file() && out.join("sweep.svg").is_file());
    // The plot labels the swept N and draws chance; `replot` redraws it from the JSON alone.
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.contains("chance (1/N)"), "no chance line in the legend");
    assert!(
        svg.contains(">\n2\n<") && svg.contains(">\n5\n<") && !svg.contains(">\n3\n<"),
        "ticks at the swept N only"
    );
    std::fs::remove_file(out.join("sweep.png")).unwrap();
    std::fs::remove_file(out.join("sweep.svg")).unwrap();
    let written = xtask::replot::replot(&out).unwrap();
    assert_eq!(written, vec![out.join("sweep.png"), out.join("sweep.svg")]);
    assert_eq!(std::fs::read_to_string(out.join("sweep.svg")).unwrap(), svg);
    assert!(out.join("sweep.png").is_file());
}

#[test]
fn replot_names_what_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let err = xtask::replot::replot(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("neither sweep.json") && err.contains("metrics.jsonl"),
        "{err}"
    );
    let err = xtask::replot::replot(&tmp.path().join("gone"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone does not exist"), "{err}");
    let other = tmp.path().join("notes.txt");
    std::fs::write(&other, "x").unwrap();
    let err = xtask::replot::replot(&other).unwrap_err().to_string();
    assert!(err.contains("not a metrics file"), "{err}");
    let json = tmp.path().join("x.json");
    std::fs::write(&json, "{}").unwrap();
    let err = format!("{:#}", xtask::replot::replot(&json).unwrap_err());
    assert!(err.contains("not the JSON of `calibrate --plot`"), "{err}");
    std::fs::write(tmp.path().join("sweep.json"), "[]").unwrap();
    let err = xtask::replot::replot(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("holds no results"), "{err}");
    assert_eq!(
        xtask::replot::curves_path(std::path::Path::new("m/validation-metrics.jsonl")).unwrap(),
        std::path::PathBuf::from("m/validation-curves.png")
    );
    assert_eq!(
        xtask::replot::curves_path(std::path::Path::new("runs/a/metrics.jsonl")).unwrap(),
        std::path::PathBuf::from("runs/a/curves.png")
    );
}

/// Without `--turns`, each model gets the turns that suit it: four for a checkpoint trained
/// with rotation classes, upright for one without (and for an ensemble that mixes them).
#[test]
fn sweep_turns_rotation_trained_models_by_default() {
    let tmp = evaluation_split(1, 5);
    let arch = Arch::conv4(16, 4);
    let net = SiameseNet::new(&arch, Init::Default, 0, &candle_core::Device::Cpu).unwrap();
    let mut cfg = train::TrainConfig {
        arch,
        objective: train::config::Objective::episodes(10),
        ..Default::default()
    };
    let upright = tmp.path().join("upright.safetensors");
    let state = train::checkpoint::TrainState::default();
    train::checkpoint::save_checkpoint(&upright, &net, None, &state, &cfg).unwrap();
    if let train::config::Objective::Episodes { rotations, .. } = &mut cfg.objective {
        *rotations = true;
    }
    let rotated = tmp.path().join("rotated.safetensors");
    train::checkpoint::save_checkpoint(&rotated, &net, None, &state, &cfg).unwrap();
    // One trained with local matching as well is scored with its term.
    if let train::config::Objective::Episodes {
        local_block,
        local_weight,
        ..
    } = &mut cfg.objective
    {
        (*local_block, *local_weight) = (2, 5.0);
    }
    let local = tmp.path().join("local.safetensors");
    train::checkpoint::save_checkpoint(&local, &net, None, &state, &cfg).unwrap();
    let scorers = vec![
        ScorerChoice::Checkpoint(rotated.clone()),
        ScorerChoice::Checkpoint(upright.clone()),
        ScorerChoice::Ensemble(vec![rotated, upright]),
        ScorerChoice::Checkpoint(local),
    ];
    let opts = options(scorers, tmp.path(), tmp.path().join("sweep"));
    let names: Vec<String> = xtask::sweep::run(&opts)
        .unwrap()
        .into_iter()
        .map(|r| r.scorer)
        .collect();
    assert_eq!(
        names,
        [
            "siamese (rotated.safetensors) + 4 paired turns",
            "siamese (upright.safetensors)",
            "siamese ensemble of 2",
            "siamese (local.safetensors) + 4 paired turns + local match on block 2 x 5",
        ]
    );
}

/// `--shots 3`: every report is 3-shot, and the outputs say so.
#[test]
fn sweep_with_shots_reports_k_shot_trials() {
    let tmp = evaluation_split(2, 6);
    let out = tmp.path().join("sweep");
    let pixel = ScorerChoice::Baseline(Baseline::Pixel, data::Framing::Canvas);
    let opts = xtask::sweep::SweepOptions {
        ways: vec![2, 5],
        shots: 3,
        protocols: vec![Protocol::WithinAlphabet],
        trials: 20,
        ..options(vec![pixel], tmp.path(), out.clone())
    };
    let reports = xtask::sweep::run(&opts).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .iter()
            .all(|r| r.shots == 3 && r.overall.total == 20)
    );
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(
        md.starts_with("3-shot trials: each candidate shows 3 drawings"),
        "{md}"
    );
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("scorer,protocol,ways,shots,"), "{csv}");
    assert!(
        rows[1].starts_with("pixel NN,within-alphabet,2,3,"),
        "{csv}"
    );
    assert!(
        rows[2].starts_with("pixel NN,within-alphabet,5,3,"),
        "{csv}"
    );
}
