//! The `omniglot-siamese` binary end to end on a synthetic dataset: train a tiny model, then
//! evaluate, classify, verify and recognize with it, and check that bad input gets clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use data::synthetic::{SyntheticSpec, write_split};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_omniglot-siamese"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the binary runs");
    if !out.status.success() {
        panic!(
            "command failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The configuration `train ARGS --print-config` prints.
fn train_config(args: &[&str]) -> String {
    let out = run(bin().arg("train").args(args).arg("--print-config"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's report without its elapsed-time line (`(0.2 s)`), which varies with load.
fn untimed(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !(l.starts_with('(') && l.ends_with(" s)")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the binary runs");
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    dataset: PathBuf,
    model: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let dataset = root.join("omniglot");
    write_split(&dataset, "images_background", SyntheticSpec::new(4, 6, 20)).unwrap();
    write_split(
        &dataset,
        "images_evaluation",
        SyntheticSpec {
            seed: 7,
            ..SyntheticSpec::new(2, 6, 20)
        },
    )
    .unwrap();
    let trained = run(bin()
        .env_remove("RUST_LOG")
        .args([
            "train",
            "--preset",
            "conv4",
            "--arch",
            "conv4-16x8",
            "--epochs",
            "1",
            "--pairs-per-epoch",
            "320",
            "--batch",
            "16",
        ])
        .args([
            "--val-alphabets",
            "1",
            "--val-ways",
            "5",
            "--val-trials",
            "20",
            "--no-progress",
            "--name",
            "tiny",
        ])
        .arg("--out-dir")
        .arg(root.join("runs"))
        .arg("--dataset")
        .arg(&dataset));
    let model = root.join("runs/tiny/best.safetensors");
    assert!(model.is_file());
    // 20 steps logged every 10: at the first log the run says, once, how long the rest takes.
    let log = String::from_utf8_lossy(&trained.stderr);
    assert_eq!(log.matches("steps left take about").count(), 1, "{log}");
    assert!(log.contains("the 10 steps left take about"), "{log}");
    Fixture {
        _dir: dir,
        root,
        dataset,
        model,
    }
}

/// The fixture's network saved as if trained on episodes (`edit` changes their settings), so
/// that commands which read the training config see another recipe.
fn as_episodes(
    f: &Fixture,
    name: &str,
    edit: impl FnOnce(&mut train::config::Objective),
) -> PathBuf {
    let loaded = train::checkpoint::load_checkpoint(&f.model, &model::Device::Cpu).unwrap();
    let mut config = loaded.config.clone();
    config.objective = train::config::Objective::episodes(10);
    edit(&mut config.objective);
    let path = f.root.join(name);
    train::checkpoint::save_checkpoint(&path, &loaded.net, None, &loaded.state, &config).unwrap();
    path
}

fn png(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap();
    (img.width(), img.height())
}

#[test]
fn train_eval_classify_verify() {
    let f = fixture();
    let out = run(bin()
        .args([
            "eval",
            "--protocol",
            "random",
            "--ways",
            "5",
            "--trials",
            "50",
            "--device",
            "cpu",
        ])
        .arg("--checkpoint")
        .arg(&f.model)
        .arg("--dataset")
        .arg(&f.dataset)
        .arg("--out")
        .arg(f.root.join("report/eval-lr0.5")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("5-way, random") && text.contains("n=50"),
        "{text}"
    );
    // The dot is part of the prefix: nothing is cut at it (`eval-lr0.json`).
    for ext in ["json", "csv", "md", "png", "svg"] {
        assert!(f.root.join(format!("report/eval-lr0.5.{ext}")).is_file());
    }
    let written: Vec<_> = std::fs::read_dir(f.root.join("report")).unwrap().collect();
    assert_eq!(written.len(), 6, "{written:?}");
    // The figure: every alphabet of the report by name, and the overall figure.
    let figure = std::fs::read_to_string(f.root.join("report/eval-lr0.5.svg")).unwrap();
    let md = std::fs::read_to_string(f.root.join("report/eval-lr0.5.md")).unwrap();
    let alphabets: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| alphabet |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
    assert!(!alphabets.is_empty(), "{md}");
    for a in &alphabets {
        assert!(figure.contains(a), "{a} is not in the figure");
    }
    assert!(figure.contains("line and band: all 50 trials"), "{figure}");
    // The report names the model file it scored by its hash, and the command.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("report/eval-lr0.5.json")).unwrap(),
    )
    .unwrap();
    let models = &json["provenance"]["models"];
    assert_eq!(models[0]["path"], f.model.display().to_string());
    assert_eq!(
        models[0]["sha256"],
        eval::report::sha256_file(&f.model).unwrap()
    );
    assert_eq!(json["provenance"]["command"][1], "eval");
    // One row per trial, its correct flags adding up to the report's count.
    let trials = std::fs::read_to_string(f.root.join("report/eval-lr0.5.trials.csv")).unwrap();
    let rows: Vec<&str> = trials.lines().skip(1).collect();
    assert_eq!(rows.len(), 50, "{trials}");
    let hits = rows
        .iter()
        .filter(|r| r.split(',').nth(5) == Some("true"))
        .count();
    assert!(
        text.contains(&format!(": {hits} correct of 50")),
        "{hits}: {text}"
    );

    // `compare`: the pixel baseline against the model on the same 50 trials, its counts
    // checked against the two trials files read here.
    let pixel_eval = |seed: &str, out: &str| {
        run(bin()
            .args([
                "eval",
                "--baseline",
                "pixel",
                "--protocol",
                "random",
                "--ways",
                "5",
            ])
            .args(["--trials", "50", "--seed", seed])
            .arg("--dataset")
            .arg(&f.dataset)
            .arg("--out")
            .arg(f.root.join(out)))
    };
    pixel_eval("0", "report/pixel");
    let correct = |file: &str| -> Vec<bool> {
        std::fs::read_to_string(f.root.join(file))
            .unwrap()
            .lines()
            .skip(1)
            .map(|r| r.split(',').nth(5) == Some("true"))
            .collect()
    };
    let (pixel, net) = (
        correct("report/pixel.trials.csv"),
        correct("report/eval-lr0.5.trials.csv"),
    );
    let only = |x: &[bool], y: &[bool]| x.iter().zip(y).filter(|(a, b)| **a && !**b).count();
    let (only_a, only_b) = (only(&pixel, &net), only(&net, &pixel));
    let out = run(bin()
        .arg("compare")
        .arg(f.root.join("report/pixel.trials.csv"))
        .arg(f.root.join("report/eval-lr0.5.trials.csv"))
        .arg("--out")
        .arg(f.root.join("report/compare")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("50 trials, the same in both files."),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "only A right on {only_a}, only B right on {only_b};"
        )),
        "{only_a} {only_b}: {text}"
    );
    let points = 100.0 * (only_b as f64 - only_a as f64) / 50.0;
    assert!(
        text.contains(&format!("B - A: {points:+.2} points")),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.root.join("report/compare.json")).unwrap())
            .unwrap();
    assert_eq!(json["comparison"]["b"]["correct"], hits);
    assert_eq!(
        json["a"]["sha256"],
        eval::report::sha256_file(&f.root.join("report/pixel.trials.csv")).unwrap()
    );
    assert!(f.root.join("report/compare.md").is_file());
    // Trials of another seed are not the same trials.
    pixel_eval("1", "report/pixel-seed1");
    let err = fails(
        bin()
            .arg("compare")
            .arg(f.root.join("report/pixel-seed1.trials.csv"))
            .arg(f.root.join("report/eval-lr0.5.trials.csv")),
    );
    assert!(
        err.contains("differs") && err.contains("the same --protocol"),
        "{err}"
    );

    // K-shot trials: each candidate's three drawings named in its column of the trials CSV,
    // one score per candidate.
    let out = run(bin()
        .args(["eval", "--ways", "4", "--shots", "3", "--trials", "20"])
        .arg("--checkpoint")
        .arg(&f.model)
        .arg("--dataset")
        .arg(&f.dataset)
        .arg("--out")
        .arg(f.root.join("report/shots")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(4-way 3-shot, within-alphabet)") && text.contains("n=20"),
        "{text}"
    );
    let trials = std::fs::read_to_string(f.root.join("report/shots.trials.csv")).unwrap();
    let row: Vec<&str> = trials.lines().nth(1).unwrap().split(',').collect();
    let (candidates, scores) = (row[10], row[11]);
    assert_eq!(scores.split(';').count(), 4, "{trials}");
    assert!(
        candidates
            .split(';')
            .all(|c| c.split('+').count() == 3 && c.contains("/drawer")),
        "{trials}"
    );
    let report = std::fs::read_to_string(f.root.join("report/shots.json")).unwrap();
    assert!(report.contains("\"shots\": 3"), "{report}");
    assert!(!report.contains("warnings"), "{report}");

    // Trials on the alphabets the model trained on are flagged, in the printout and the
    // report, with the way out: the one alphabet the fixture held out.
    let background = |alphabets: &[&str]| {
        let out = run(bin()
            .args([
                "eval",
                "--split",
                "background",
                "--ways",
                "3",
                "--trials",
                "10",
            ])
            .args(alphabets)
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset)
            .arg("--out")
            .arg(f.root.join("report/background")));
        let json = std::fs::read_to_string(f.root.join("report/background.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), json)
    };
    let (text, json) = background(&[]);
    let warning = "the model was trained on 3 of the 4 alphabets scored here";
    assert!(text.contains(&format!("\nWarning: {warning}")), "{text}");
    let figure = std::fs::read_to_string(f.root.join("report/background.svg")).unwrap();
    assert!(
        figure.contains(warning),
        "the figure carries the warning too"
    );
    assert!(
        json["warnings"][0].as_str().unwrap().contains(warning),
        "{json}"
    );
    let after = text.split("--alphabets ").nth(1).unwrap();
    let held_out = after.split(['.', '\n']).next().unwrap().to_string();
    let (text, json) = background(&["--alphabets", &held_out]);
    assert!(!text.contains("Warning"), "{held_out}: {text}");
    assert!(json.get("warnings").is_none(), "{json}");
    // `calibrate` notes it too, under its first line, and not on the held-out alphabet (the
    // tiny model's head is replaced by a plain distance, which ranks well enough to fit).
    let distance = with_head(&f, -1.0, "seen-distance.safetensors");
    let calibrate = |extra: &[&str]| {
        let out = run(bin()
            .args(["calibrate", "--trials", "50", "--checkpoint"])
            .arg(&distance)
            .arg("--dataset")
            .arg(&f.dataset)
            .args(extra));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = calibrate(&[]);
    assert_eq!(
        text.lines()
            .nth(1)
            .map(|l| l.starts_with(&format!("Note: {warning}"))),
        Some(true),
        "{text}"
    );
    assert!(text.contains("calibrate without --out"), "{text}");
    let text = calibrate(&["--alphabets", &held_out]);
    assert!(!text.contains("Note:"), "{held_out}: {text}");
    // `classify` says the same of one trial, exactly when its alphabet is not the held-out one.
    let mut warned = [false, false];
    for seed in 0..6 {
        let out = run(bin()
            .args(["classify", "--split", "background", "--ways", "3"])
            .args(["--seed", &seed.to_string()])
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset)
            .arg("--out")
            .arg(f.root.join("report/background-trial.png")));
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().find(|l| l.contains("/drawer")).unwrap();
        let alphabet = first
            .split(" | ")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let held = alphabet == held_out;
        assert_eq!(
            !held,
            text.contains("Warning: the model was trained on 1 of this trial's 1 alphabets"),
            "{held_out}: {text}"
        );
        warned[held as usize] = true;
    }
    assert_eq!(warned, [true, true], "both cases drawn");
    for (extra, says) in [
        (
            &["--shots", "2", "--protocol", "runs"][..],
            "Lake's runs are one-shot",
        ),
        (
            &["--shots", "2", "--hubness", "0.25"][..],
            "one-shot trials only",
        ),
        (&["--shots", "20"][..], "need at least 21 drawers"),
    ] {
        let err = fails(
            bin()
                .args(["eval", "--ways", "4"])
                .args(extra)
                .arg("--checkpoint")
                .arg(&f.model)
                .arg("--dataset")
                .arg(&f.dataset),
        );
        assert!(err.contains(says), "{extra:?}: {err}");
    }

    // Support-set statistics: each trial embedded on its own; this network has no batch
    // norm, so every score is the one pair scoring gives.
    let eval_tiny = |extra: &[&str]| {
        let out = run(bin()
            .args(["eval", "--ways", "5", "--trials", "30", "--turns", "2"])
            .args(extra)
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (plain, support) = (eval_tiny(&[]), eval_tiny(&["--support-stats"]));
    assert!(
        support.contains("support-set batch-norm statistics"),
        "{support}"
    );
    let correct = |t: &str| {
        t.split(" correct of ")
            .next()
            .map(|s| s.rsplit(' ').next().unwrap_or("").to_string())
    };
    assert_eq!(correct(&plain), correct(&support), "{plain}\n{support}");
    let err = fails(
        bin()
            .args(["eval", "--support-stats", "--tta", "--checkpoint"])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("--tta"), "{err}");

    // Local matching is named in the report; a block the network lacks is a clear error.
    let local = eval_tiny(&["--local-weight", "2", "--local-block", "2"]);
    assert!(local.contains("local match on block 2 x 2"), "{local}");
    let err = fails(
        bin()
            .args([
                "eval",
                "--local-weight",
                "2",
                "--local-block",
                "9",
                "--checkpoint",
            ])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("a block from 1 to"), "{err}");

    let out = run(bin()
        .args(["eval", "--baseline", "mhd", "--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    assert!(String::from_utf8_lossy(&out.stdout).contains("modified Hausdorff"));
    let out = run(bin()
        .args(["eval", "--baseline", "idm:16:2", "--framing", "ink-box"])
        .args(["--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("image distortion model (16 px, warp 2)") && stdout.contains("n=20"),
        "{stdout}"
    );
    // Unframed, the distortion model sees the ink's box, as it was chosen on validation.
    let unframed = run(bin()
        .args(["eval", "--baseline", "idm", "--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    let framed = run(bin()
        .args(["eval", "--baseline", "idm", "--framing", "ink-box"])
        .args(["--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    assert_eq!(untimed(&unframed.stdout), untimed(&framed.stdout));
    assert!(untimed(&framed.stdout).contains("| Synthetic_01 |"));
    assert!(String::from_utf8_lossy(&framed.stdout).contains("(32 px, warp 4)"));
    for (spec, says) in [
        ("idm:16", "expected mhd, pixel, idm or idm:SIDE:WARP"),
        ("idm:16:x", "warp `x` is not a whole number"),
        ("idm:16:16", "the side must be 4-105 and the warp below it"),
    ] {
        let err = fails(bin().args(["eval", "--baseline", spec]));
        assert!(err.contains(says), "{spec}: {err}");
    }

    let sampled = f.root.join("classify.png");
    run(bin()
        .args(["classify", "--ways", "5", "--seed", "3"])
        .arg("--checkpoint")
        .arg(&f.model)
        .arg("--dataset")
        .arg(&f.dataset)
        .arg("--out")
        .arg(&sampled));
    let (w, h) = png(&sampled);
    assert!(w > 500 && h > 200, "{w}x{h}");
    // A 3-shot trial: each candidate's three drawings share its tile, so the figure keeps its
    // layout, and the table names the three.
    let three = f.root.join("classify-3shot.png");
    let out = run(bin()
        .args(["classify", "--ways", "5", "--shots", "3", "--seed", "3"])
        .arg("--checkpoint")
        .arg(&f.model)
        .arg("--dataset")
        .arg(&f.dataset)
        .arg("--out")
        .arg(&three));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("/drawer")).collect();
    assert_eq!(rows.len(), 5, "{text}");
    assert!(rows.iter().all(|r| r.matches('+').count() == 2), "{text}");
    assert_eq!(png(&three).1, h);
    let err = fails(
        bin()
            .args(["classify", "--shots", "2", "--checkpoint"])
            .arg(&f.model)
            .arg("--query")
            .arg(&three)
            .arg("--candidates")
            .arg(&sampled),
    );
    assert!(err.contains("recognize --support"), "{err}");

    let files: Vec<PathBuf> = [
        "character01/0001_01.png",
        "character01/0001_02.png",
        "character02/0002_01.png",
    ]
    .iter()
    .map(|p| f.dataset.join("images_evaluation/Synthetic_01").join(p))
    .collect();
    // `classify` on files: the query, then the candidates as given.
    let classify = |candidates: &[&std::path::Path]| {
        let mut cmd = bin();
        cmd.arg("classify")
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--query")
            .arg(&files[0])
            .arg("--candidates")
            .args(candidates);
        cmd
    };
    let chosen = f.root.join("files.png");
    let out = run(classify(&[&files[1], &files[2]])
        .args(["--truth", "0", "--out"])
        .arg(&chosen));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("true answer")
            || String::from_utf8_lossy(&out.stdout).contains("chosen, correct")
    );
    assert!(chosen.is_file());
    // A folder among the candidates stands for its drawings, sorted, in its place in the list;
    // --truth counts them.
    let folder = f.dataset.join("images_evaluation/Synthetic_01/character02");
    let in_folder = std::fs::read_dir(&folder).unwrap().count();
    let out = run(classify(&[&files[1], &folder])
        .args(["--truth", "0", "--out"])
        .arg(f.root.join("folder.png")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| 0001_02.png |"), "{text}");
    for drawer in 1..=in_folder {
        let name = format!("| 0002_{drawer:02}.png |");
        assert!(text.contains(&name), "{name} missing:\n{text}");
    }
    let err = fails(classify(&[&folder]).args(["--truth", &in_folder.to_string()]));
    assert!(
        err.contains(&format!(
            "--truth {in_folder} is not a candidate index (0-{})",
            in_folder - 1
        )),
        "{err}"
    );

    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg(&files[0])
        .arg(&files[1]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("p(same character) = "), "{text}");
    // `--explain` prints the same verdict and draws where it comes from.
    let explained = f.root.join("why.png");
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg(&files[0])
        .arg(&files[1])
        .arg("--explain")
        .arg(&explained));
    let with_map = String::from_utf8_lossy(&out.stdout);
    assert!(with_map.starts_with(text.as_ref()), "{with_map}");
    assert!(
        with_map.contains("largest change of the logit"),
        "{with_map}"
    );
    let img = image::open(&explained).unwrap();
    assert_eq!((img.width(), img.height()), (650, 430));
    // Paired turns score the same two files four ways and average the logits.
    let turned = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&f.model)
        .args(["--turns", "4"])
        .arg(&files[0])
        .arg(&files[1]));
    let turned = String::from_utf8_lossy(&turned.stdout);
    assert!(turned.starts_with("p(same character) = "), "{turned}");
    assert!(turned.contains("mean of 4 paired turns"), "{turned}");
    let err = fails(
        bin()
            .arg("verify")
            .arg("--checkpoint")
            .arg(&f.model)
            .args(["--turns", "3"])
            .arg(&files[0])
            .arg(&files[1]),
    );
    assert!(err.contains("1, 2, 4 or 8"), "{err}");
    assert!(
        !text.contains("paired turns"),
        "pairs-trained: upright only: {text}"
    );

    // A model trained with rotation classes is scored in four paired turns unless told
    // otherwise, by `verify` and by `eval` alike.
    let rotated = as_episodes(&f, "rotated.safetensors", |objective| {
        if let train::config::Objective::Episodes { rotations, .. } = objective {
            *rotations = true;
        }
    });
    let verify_rotated = |turns: &[&str]| {
        let out = run(bin()
            .arg("verify")
            .arg("--checkpoint")
            .arg(&rotated)
            .args(turns)
            .arg(&files[0])
            .arg(&files[1]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(verify_rotated(&[]), turned);
    assert_eq!(verify_rotated(&["--turns", "1"]), text);
    let out = run(bin()
        .args([
            "eval",
            "--protocol",
            "random",
            "--ways",
            "3",
            "--trials",
            "10",
        ])
        .arg("--checkpoint")
        .arg(&rotated)
        .arg("--dataset")
        .arg(&f.dataset));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("4 paired turns"), "{report}");

    // A model trained with local matching is scored with its term by `eval` (unless told
    // otherwise) and by `verify`; `calibrate`, which folds its fit into the head, warns.
    let local = as_episodes(&f, "local.safetensors", |objective| {
        if let train::config::Objective::Episodes {
            local_block,
            local_weight,
            ..
        } = objective
        {
            (*local_block, *local_weight) = (2, 5.0);
        }
    });
    let eval_local = |extra: &[&str]| {
        let out = run(bin()
            .args(["eval", "--protocol", "random", "--ways", "3"])
            .args(["--trials", "10", "--turns", "1"])
            .args(extra)
            .arg("--checkpoint")
            .arg(&local)
            .arg("--dataset")
            .arg(&f.dataset));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let trained = eval_local(&[]);
    assert!(trained.contains("local match on block 2 x 5)"), "{trained}");
    let head_alone = eval_local(&["--local-weight", "0"]);
    assert!(!head_alone.contains("local match"), "{head_alone}");
    let logit_of = |checkpoint: &Path| {
        let out = run(bin()
            .arg("verify")
            .arg("--checkpoint")
            .arg(checkpoint)
            .arg(&files[0])
            .arg(&files[1]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let logit = text
            .split("(logit ")
            .nth(1)
            .and_then(|t| t.split([',', ')']).next())
            .and_then(|t| t.parse::<f32>().ok());
        (
            logit,
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The same network saved as trained without the term: the cosines of ReLU maps are
    // positive, so the term raises the logit.
    let plain = as_episodes(&f, "plain-episodes.safetensors", |_| {});
    let (with, text, err) = logit_of(&local);
    let (without, plain_text, _) = logit_of(&plain);
    assert!(
        with.zip(without).is_some_and(|(w, p)| w > p),
        "{text}\n{plain_text}"
    );
    assert!(!err.contains("head alone"), "{err}");
    // Whether this untrained network can be calibrated at all does not matter here: the
    // warning comes first.
    let out = bin()
        .args(["calibrate", "--trials", "10", "--checkpoint"])
        .arg(&local)
        .arg("--dataset")
        .arg(&f.dataset)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scored with its head alone (`eval --local-block 2 --local-weight 5`"),
        "{err}"
    );

    // Export drops the optimizer state; the exported file scores exactly like the checkpoint.
    let last = f.root.join("runs/tiny/last.safetensors");
    let exported = f.root.join("models/tiny.safetensors");
    let out = run(bin().arg("export").arg(&last).arg(&exported));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("optimizer tensors"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&exported) * 2 < size(&last),
        "{} vs {}",
        size(&exported),
        size(&last)
    );
    let verify_with = |model: &Path| {
        let out = run(bin()
            .arg("verify")
            .arg("--checkpoint")
            .arg(model)
            .arg(&files[0])
            .arg(&files[2]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(verify_with(&last), verify_with(&exported));
    let err = fails(bin().arg("export").arg(&last).arg(&exported));
    assert!(err.contains("--force"), "{err}");
    run(bin().arg("export").arg(&last).arg(&exported).arg("--force"));

    // Several checkpoints are scored as an ensemble by `eval`; commands that use one
    // network's embedding say they take one.
    let pair = format!("{},{}", f.model.display(), last.display());
    let eval_with = |checkpoint: &str| {
        let out = run(bin()
            .args(["eval", "--protocol", "within-alphabet", "--ways", "5"])
            .args(["--trials", "40", "--checkpoint", checkpoint])
            .arg("--dataset")
            .arg(&f.dataset));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = eval_with(&pair);
    assert!(
        text.contains("ensemble of 2") && text.contains("n=40"),
        "{text}"
    );
    let err = fails(
        bin()
            .args(["verify", "--checkpoint", &pair])
            .arg(&files[0])
            .arg(&files[1]),
    );
    assert!(err.contains("takes one --checkpoint"), "{err}");

    // Export merges several checkpoints into one network that scores as their ensemble.
    let merged = f.root.join("models/pair.safetensors");
    let out = run(bin().arg("export").arg(&f.model).arg(&last).arg(&merged));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("x 2 towers"), "{text}");
    let correct = |text: String| {
        text.split_once(" correct of ")
            .map(|(head, _)| head.rsplit(' ').next().unwrap_or("").to_string())
            .unwrap_or(text)
    };
    assert_eq!(
        correct(eval_with(&merged.display().to_string())),
        correct(eval_with(&pair))
    );
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&merged)
        .arg(&files[0])
        .arg(&files[2]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("p(same character) = "));

    // Lake runs made from the evaluation split, evaluated through the CLI.
    let runs = f.root.join("runs-lake");
    let index = data::SplitIndex::scan_split(&f.dataset, data::SplitKind::Evaluation).unwrap();
    data::runs::write_runs(&index, &runs, 2, 5, 0).unwrap();
    let eval_runs = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.args(["eval", "--protocol", "runs"])
            .args(extra)
            .arg("--runs-dir")
            .arg(&runs)
            .arg("--checkpoint")
            .arg(&f.model);
        cmd
    };
    let out = run(&mut eval_runs(&[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| run01 |") && text.contains("| run02 |"),
        "{text}"
    );
    let out = run(&mut eval_runs(&["--hubness", "0.25"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hubness 0.25") && text.contains("| run02 |"),
        "{text}"
    );
    let err = fails(&mut eval_runs(&["--hubness=-0.5"]));
    assert!(
        err.contains("hubness correction must be a number >= 0"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let f = fixture();
    let err = fails(
        bin()
            .args(["eval", "--ways", "50"])
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("50-way") && err.contains("only 6"), "{err}");

    let err = fails(
        bin()
            .args(["eval", "--checkpoint", "/no/such/model.safetensors"])
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("/no/such/model.safetensors"), "{err}");

    let junk = f.root.join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let err = fails(
        bin()
            .arg("eval")
            .arg("--checkpoint")
            .arg(&junk)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(
        err.contains("junk.safetensors") && err.contains("not a model file"),
        "{err}"
    );

    let err = fails(
        bin()
            .args(["eval", "--adapt-in-views", "--checkpoint"])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("--adapt STEPS"), "{err}");

    let err = fails(bin().args(["eval", "--baseline", "mhd", "--dataset", "/no/dataset"]));
    assert!(err.contains("cargo xtask download"), "{err}");

    let err = fails(
        bin()
            .args(["train", "--batch", "0", "--no-progress"])
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("batch size"), "{err}");

    let err = fails(
        bin()
            .args(["train", "--lr", "-1", "--no-progress"])
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("learning rate"), "{err}");

    let err = fails(
        bin()
            .args([
                "train",
                "--no-progress",
                "--dataset",
                "/no/dataset",
                "--out-dir",
            ])
            .arg(f.root.join("r")),
    );
    assert!(err.contains("cargo xtask download"), "{err}");

    let err = fails(bin().args([
        "train",
        "--augment",
        "none",
        "--elastic",
        "2",
        "--print-config",
    ]));
    assert!(err.contains("--elastic needs an augmentation"), "{err}");
    // Each flag reaches the printed config on top of a preset.
    for (flag, value, line) in [
        ("--elastic", "1.5", "elastic_px = 1.5"),
        ("--symmetric", "true", "symmetric = true"),
        ("--label-smoothing", "0.2", "label_smoothing = 0.2"),
        ("--distance", "squared-l2", "distance = \"squared-l2\""),
        ("--head-hidden", "256", "hidden = 256"),
        ("--head-products", "true", "products = true"),
        (
            "--embedding-activation",
            "signed-sqrt",
            "embedding_activation = \"signed-sqrt\"",
        ),
        ("--two-drawers", "true", "two_drawers = true"),
        ("--within-one-variant", "true", "within_one_variant = true"),
        ("--overlays", "0.25", "overlays = 0.25"),
        ("--stroke-jitter", "0.5", "stroke_px = 0.5"),
        ("--cutout", "0.3", "erase = 0.3"),
        ("--class-weight", "0.5", "class_weight = 0.5"),
        ("--recon-weight", "0.5", "recon_weight = 0.5"),
        ("--dropout", "0.2", "dropout = 0.2"),
    ] {
        let config = train_config(&["--preset", "quick", flag, value]);
        assert!(config.contains(line), "{flag}: {config}");
    }
    let plain = train_config(&["--preset", "quick"]);
    // The episodic presets smooth their labels; the L1 head is the default, left unwritten.
    assert!(
        plain.contains("label_smoothing = 0.1")
            && !plain.contains("distance")
            && !plain.contains("two_drawers")
            && !plain.contains("within_one_variant")
            && !plain.contains("overlays")
            && !plain.contains("stroke_px")
            && !plain.contains("erase")
            && !plain.contains("class_weight")
            && !plain.contains("recon_weight")
            && !plain.contains("dropout")
            && !plain.contains("[arch.head]"),
        "{plain}"
    );
    for (flags, error) in [
        (
            &["--symmetric", "true", "--queries", "2"][..],
            "exactly one query per class",
        ),
        (
            &["--label-smoothing", "1"],
            "label_smoothing must be in [0, 1)",
        ),
        (&["--distance", "l3"], "expected l1 or squared-l2"),
        (
            &["--embedding-activation", "sqrt"],
            "expected none, sigmoid, relu or signed-sqrt",
        ),
        (
            &["--stroke-jitter", "2"],
            "stroke-width jitter must be in [0, 1]",
        ),
        (
            &["--cutout", "1.5"],
            "cutout square's side must be in [0, 1]",
        ),
        (
            &["--class-weight=-1"],
            "class_weight must be a number >= 0, not -1",
        ),
        (
            &["--recon-weight=-1"],
            "recon_weight must be a number >= 0, not -1",
        ),
        (
            &["--overlays", "1.5"],
            "overlays must be in [0, 1], not 1.5",
        ),
        (
            &["--overlays", "0.2", "--class-weight", "1"],
            "overlay classes and class_weight > 0 cannot be combined",
        ),
        (
            &["--eighth-turns", "true", "--rotations", "false"],
            "eighth_turns turns the rotation classes: it needs rotations",
        ),
        (
            &["--dropout", "1"],
            "the embedding dropout must be in [0, 1), not 1",
        ),
        (
            &["--objective", "pairs", "--class-weight", "1"],
            "--recon-weight, --local-weight and --episodes-per-* apply to `--objective episodes`",
        ),
        (
            &["--local-weight", "10", "--local-block", "5"],
            "local matching needs a finite local_weight and a local_block from 1 to 4, not block 5 \
             with weight 10",
        ),
        (
            &["--local-weight", "10"],
            "local matching needs a finite local_weight and a local_block from 1 to 4, not block 0 \
             with weight 10",
        ),
    ] {
        let err = fails(
            bin()
                .args(["train", "--preset", "quick"])
                .args(flags)
                .arg("--print-config"),
        );
        assert!(err.contains(error), "{flags:?}: {err}");
    }
    let config = train_config(&["--val-alphabets", "stratified"]);
    for name in data::split::STRATIFIED_VALIDATION {
        assert!(config.contains(&format!("\"{name}\"")), "{name}: {config}");
    }
    // A count replaces the presets' named split (how the older screens are reproduced).
    let config = train_config(&["--preset", "quick", "--val-alphabets", "5"]);
    assert!(
        config.contains("alphabets = 5\nalphabet_names = []"),
        "{config}"
    );

    // Excluded alphabets reach the config (and its file) only when there are any, so every
    // config written before the option existed reads and prints as it did.
    let config = train_config(&["--exclude-alphabets", "Latin, Korean"]);
    assert!(
        config.contains("exclude_alphabets = [\n    \"Latin\",\n    \"Korean\",\n]"),
        "{config}"
    );
    for cleared in [vec![], vec!["--exclude-alphabets", "none"]] {
        let config = train_config(&cleared);
        assert!(
            !config.contains("exclude_alphabets"),
            "{cleared:?}: {config}"
        );
    }

    // Validation is scored as `eval` would score the trained model by default, unless told.
    let val_turns = |args: &[&str]| {
        let config = train_config(args);
        let val = config.split("[val]").nth(1).unwrap_or_default().to_owned();
        let line = val
            .lines()
            .find(|l| l.starts_with("turns = "))
            .map(str::to_owned);
        (line, config)
    };
    assert_eq!(
        val_turns(&["--preset", "quick"]).0.as_deref(),
        Some("turns = 4")
    );
    let (line, quick) = val_turns(&["--preset", "quick", "--rotations", "false"]);
    assert_eq!(line.as_deref(), Some("turns = 1"));
    assert_eq!(
        val_turns(&["--preset", "reference"]).0.as_deref(),
        Some("turns = 1")
    );
    let (line, eighths) = val_turns(&["--preset", "quick", "--eighth-turns", "true"]);
    assert_eq!(line.as_deref(), Some("turns = 8"));
    assert!(eighths.contains("eighth_turns = true"), "{eighths}");
    let local = train_config(&[
        "--preset",
        "quick",
        "--local-block",
        "3",
        "--local-weight",
        "10",
    ]);
    assert!(
        local.contains("local_block = 3\nlocal_weight = 10.0\n"),
        "{local}"
    );
    assert!(!quick.contains("local_"), "{quick}");
    let (line, _) = val_turns(&["--preset", "quick", "--val-turns", "2"]);
    assert_eq!(line.as_deref(), Some("turns = 2"));
    let err = fails(bin().args(["train", "--val-turns", "3", "--print-config"]));
    assert!(
        err.contains("paired turns must be 1, 2, 4 or 8, not 3"),
        "{err}"
    );
    // A config written before the option (no `turns` key) keeps validating upright, even
    // with rotation classes: a file says what it means.
    let old = f.root.join("old-config.toml");
    let old_text: String = val_turns(&["--preset", "quick"])
        .1
        .lines()
        .filter(|l| !l.starts_with("turns = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(old_text.contains("rotations = true"), "{old_text}");
    std::fs::write(&old, old_text).unwrap();
    let (line, _) = val_turns(&["--config", old.to_str().unwrap()]);
    assert_eq!(line.as_deref(), Some("turns = 1"));
    assert!(quick.contains("rotations = false"), "{quick}");

    let broken = f.root.join("broken.png");
    std::fs::write(&broken, b"\x89PNG garbage").unwrap();
    let err = fails(
        bin()
            .arg("verify")
            .arg("--checkpoint")
            .arg(&f.model)
            .arg(&broken)
            .arg(&broken),
    );
    assert!(err.contains("broken.png"), "{err}");

    let err = fails(
        bin()
            .args(["train", "--device", "cuda", "--no-progress"])
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(
        err.contains("--features cuda") || err.contains("CUDA"),
        "{err}"
    );
}

/// `--val-alphabets 0` (how `--preset final` trains): no validation, and the run says where the
/// model is (the trainer's own tests check that those are the final weights).
#[test]
fn training_without_validation_says_where_the_model_is() {
    let f = fixture();
    let out = run(bin()
        .args(["train", "--preset", "conv4", "--arch", "conv4-16x8"])
        .args(["--epochs", "1", "--pairs-per-epoch", "64", "--batch", "16"])
        .args(["--val-alphabets", "0", "--no-progress", "--name", "all"])
        .arg("--out-dir")
        .arg(f.root.join("runs"))
        .arg("--dataset")
        .arg(&f.dataset));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("finished 4 steps"), "{text}");
    assert!(text.contains("no validation split"), "{text}");
    assert!(!text.contains("best validation accuracy"), "{text}");
    assert!(text.contains(" pairs/s,"), "{text}");

    // An episodic run counts its rate in episodes, not pairs.
    let out = run(bin()
        .args(["train", "--preset", "quick", "--arch", "conv4-16x8"])
        .args(["--epochs", "1", "--episodes-per-epoch", "2", "--ways", "3"])
        .args([
            "--pair-weight",
            "0.5",
            "--val-alphabets",
            "0",
            "--no-progress",
            "--name",
            "episodic",
        ])
        .arg("--out-dir")
        .arg(f.root.join("runs"))
        .arg("--dataset")
        .arg(&f.dataset));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("finished 2 steps"), "{text}");
    assert!(text.contains(" episodes/s,"), "{text}");
    assert!(!text.contains("calibrate"), "a pair loss: no hint: {text}");
    // Cross-entropy alone: told that verify needs a calibration first.
    let out = run(bin()
        .args(["train", "--preset", "quick", "--arch", "conv4-16x8"])
        .args(["--epochs", "1", "--episodes-per-epoch", "1", "--ways", "3"])
        .args([
            "--pair-weight",
            "0",
            "--val-alphabets",
            "0",
            "--no-progress",
        ])
        .args(["--name", "ranking"])
        .arg("--out-dir")
        .arg(f.root.join("runs"))
        .arg("--dataset")
        .arg(&f.dataset));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("trained without a pair loss")
            && text.contains("runs/ranking/best.safetensors --out"),
        "{text}"
    );

    // `--members 2`: two networks, merged into one ensemble network that the commands use.
    let out = run(bin()
        .args(["train", "--preset", "conv4", "--arch", "conv4-16x8"])
        .args(["--epochs", "1", "--pairs-per-epoch", "64", "--batch", "16"])
        .args([
            "--val-alphabets",
            "1",
            "--val-ways",
            "5",
            "--val-trials",
            "20",
        ])
        .args(["--members", "2", "--no-progress", "--name", "pair"])
        .arg("--out-dir")
        .arg(f.root.join("runs"))
        .arg("--dataset")
        .arg(&f.dataset));
    let text = String::from_utf8_lossy(&out.stdout);
    let merged = f.root.join("runs/pair/best.safetensors");
    assert!(
        text.contains(&format!("merged 2 members into {}", merged.display()))
            && text.contains("validation accuracy"),
        "{text}"
    );
    let out = run(bin()
        .args(["eval", "--ways", "5", "--trials", "20", "--checkpoint"])
        .arg(&merged)
        .arg("--dataset")
        .arg(&f.dataset));
    assert!(String::from_utf8_lossy(&out.stdout).contains("n=20"));
}

#[test]
fn a_resume_on_another_thread_count_is_told_it_is_not_bit_for_bit() {
    let f = fixture();
    let dir = f.root.join("runs/threads");
    // Steps 1-2 on one thread, 3 on one again, 4 on two.
    let train = |threads: &str, stop: Option<&str>, args: &[&str]| {
        let mut cmd = bin();
        cmd.env("RAYON_NUM_THREADS", threads)
            .env_remove("RUST_LOG")
            .arg("train")
            .args(args)
            .arg("--no-progress");
        if let Some(step) = stop {
            cmd.args(["--stop-after", step]);
        }
        let out = run(&mut cmd);
        let state =
            train::checkpoint::load_checkpoint(&dir.join("last.safetensors"), &model::Device::Cpu)
                .unwrap()
                .state;
        (String::from_utf8_lossy(&out.stderr).into_owned(), state)
    };
    let resume = ["--resume", dir.to_str().unwrap()];
    let out_dir = f.root.join("runs");
    let first = [
        ["--preset", "conv4", "--arch", "conv4-16x8"].as_slice(),
        &["--epochs", "1", "--pairs-per-epoch", "64", "--batch", "16"],
        &["--val-alphabets", "0", "--name", "threads"],
        &["--out-dir", out_dir.to_str().unwrap()],
        &["--dataset", f.dataset.to_str().unwrap()],
    ]
    .concat();
    let (log, state) = train("1", Some("2"), &first);
    assert_eq!((state.step, state.threads), (2, Some(1)), "{log}");
    let (log, state) = train("1", Some("3"), &resume);
    assert_eq!((state.step, state.threads), (3, Some(1)), "{log}");
    assert!(!log.contains("CPU thread"), "{log}");
    let (log, state) = train("2", None, &resume);
    assert_eq!((state.step, state.threads), (4, Some(2)), "{log}");
    assert!(
        log.contains("this run trained on 1 CPU thread and goes on with 2:")
            && log.contains("RAYON_NUM_THREADS=1 keeps it exact"),
        "{log}"
    );
}

/// The numbers of the line `Platt scaling: p = sigmoid(A * logit +/- B) ...` as (A, B).
fn platt_line(text: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find(|l| l.starts_with("Platt scaling: p = sigmoid("))
        .unwrap_or_else(|| panic!("no Platt line in {text}"));
    let inner = &line["Platt scaling: p = sigmoid(".len()..line.find(')').unwrap()];
    let words: Vec<&str> = inner.split_whitespace().collect();
    let scale: f64 = words[0].parse().unwrap();
    let offset: f64 = words[4].parse().unwrap();
    (scale, if words[3] == "-" { -offset } else { offset })
}

/// The cells of the table row that starts with `| name |`.
fn row<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row {name} in {text}"));
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The fixture's model with its head replaced by `sign` on every weight and a zero bias:
/// with -1 the logit is minus the L1 distance of the embeddings, which ranks a character's
/// drawings above other characters even when the short training has not.
fn with_head(f: &Fixture, sign: f32, name: &str) -> PathBuf {
    use candle_core::Tensor;
    let (net, extras) = model::io::load(&f.model, &model::Device::Cpu).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> = net
        .named_vars()
        .into_iter()
        .chain(net.named_buffers())
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let dims = tensors["head.weight"].dims().to_vec();
    let weight = Tensor::full(sign, dims.as_slice(), &model::Device::Cpu).unwrap();
    tensors.insert("head.weight".into(), weight);
    tensors.insert(
        "head.bias".into(),
        Tensor::zeros(1, candle_core::DType::F32, &model::Device::Cpu).unwrap(),
    );
    let net = model::SiameseNet::from_tensors(net.arch(), &tensors, &model::Device::Cpu).unwrap();
    let path = f.root.join(name);
    let kept = model::io::Extras {
        tensors: Default::default(),
        metadata: extras.metadata,
    };
    model::io::save(&net, &path, &kept).unwrap();
    path
}

#[test]
fn calibrate_measures_fits_and_writes_a_calibrated_model() {
    let f = fixture();
    let distance = with_head(&f, -1.0, "distance.safetensors");
    let calibrate = |checkpoint: &Path, extra: &[&str]| {
        let mut cmd = bin();
        cmd.args(["calibrate", "--trials", "50", "--seed", "2"])
            .arg("--checkpoint")
            .arg(checkpoint)
            .arg("--dataset")
            .arg(&f.dataset)
            .args(extra);
        String::from_utf8_lossy(&run(&mut cmd).stdout).into_owned()
    };
    let calibrated = f.root.join("calibrated.safetensors");
    // Named by one of its outputs, the plot's prefix loses that extension: reliability.svg, .json.
    let plot = f.root.join("plots/reliability.png");
    let mut extra = vec!["--out".to_string(), calibrated.display().to_string()];
    extra.extend(["--plot".to_string(), plot.display().to_string()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let first = calibrate(&distance, &extra);
    // Two protocols x 50 two-way trials x (one same, one different pair).
    assert!(
        first.starts_with(
            "200 pairs (100 same) of images_background, within-alphabet + random, 1 turn\n"
        ),
        "{first}"
    );
    let (scale, offset) = platt_line(&first);
    assert!(scale > 0.0, "{first}");
    for ext in ["png", "svg", "json"] {
        assert!(plot.with_extension(ext).is_file(), "{ext}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plot.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(json["before"]["pairs"], 200);
    assert_eq!(
        json["sha256"],
        eval::report::sha256_file(&distance).unwrap()
    );

    // The calibration is folded into the head and recorded in the metadata.
    let metadata = model::io::read_metadata(&calibrated).unwrap();
    let record = eval::calibration::Record::from_json(&metadata["calibration"]).unwrap();
    assert_eq!((record.pairs, record.turns, record.seed), (200, 1, 2));
    assert!(
        (record.platt.scale - scale).abs() < 1e-4 && (record.platt.offset - offset).abs() < 1e-4
    );
    let (plain, _) = model::io::load(&distance, &model::Device::Cpu).unwrap();
    let (folded, extras) = model::io::load(&calibrated, &model::Device::Cpu).unwrap();
    assert!(extras.tensors.is_empty(), "the optimizer state is dropped");
    assert!(
        extras.metadata.contains_key("config"),
        "the training config is kept"
    );
    let (h0, h1) = (plain.head_host().unwrap(), folded.head_host().unwrap());
    let (s, o) = (record.platt.scale as f32, record.platt.offset as f32);
    assert!(
        (h1.bias - (s * h0.bias + o)).abs() < 1e-5,
        "{} vs {}",
        h1.bias,
        h0.bias
    );
    for (w1, w0) in h1.weights.iter().zip(&h0.weights) {
        assert!((w1 - s * w0).abs() < 1e-5);
    }

    // Measured again on the same pairs, the calibrated model's own probabilities are the ones
    // the fit promised, and a second fit has nothing left to change.
    let again = calibrate(&calibrated, &[]);
    assert!(
        again.contains("the model is already calibrated on 200 pairs"),
        "{again}"
    );
    assert_eq!(
        row(&again, "as the model gives them")[1..],
        row(&first, "Platt-scaled")[1..],
        "{first}\n{again}"
    );
    let (scale, offset) = platt_line(&again);
    assert!((scale - 1.0).abs() < 2e-3 && offset.abs() < 2e-3, "{again}");

    // verify says what its probability rests on.
    let dir = f.dataset.join("images_evaluation/Synthetic_01");
    let (a, b) = (
        dir.join("character01/0001_01.png"),
        dir.join("character02/0002_01.png"),
    );
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&calibrated)
        .arg(&a)
        .arg(&b));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().nth(1)
            == Some(
                "(calibrated on 200 pairs of images_background (within-alphabet + random), 1 turn)"
            ),
        "{text}"
    );
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg(&a)
        .arg(&b));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "pairs-trained: no note"
    );
    // A model trained by cross-entropy alone gets a warning until it is calibrated.
    let ranking = as_episodes(&f, "ranking.safetensors", |objective| {
        if let train::config::Objective::Episodes { pair_weight, .. } = objective {
            *pair_weight = 0.0;
        }
    });
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&ranking)
        .arg(&a)
        .arg(&b));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: this model was trained to rank candidates only"),
        "{text}"
    );

    // Refusals: fitting on the test split, overwriting, baselines.
    let err = fails(
        bin()
            .args(["calibrate", "--split", "evaluation", "--checkpoint"])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset)
            .arg("--out")
            .arg(f.root.join("never.safetensors")),
    );
    assert!(
        err.contains("refusing to fit a calibration on images_evaluation"),
        "{err}"
    );
    assert!(!f.root.join("never.safetensors").exists());
    let err = fails(
        bin()
            .args(["calibrate", "--checkpoint"])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset)
            .arg("--out")
            .arg(&calibrated),
    );
    assert!(err.contains("exists; pass --force"), "{err}");
    // A head that ranks other characters first cannot be calibrated.
    let reversed = with_head(&f, 1.0, "reversed.safetensors");
    let err = fails(
        bin()
            .args(["calibrate", "--trials", "50", "--checkpoint"])
            .arg(&reversed)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(
        err.contains("do not rank same pairs above different ones"),
        "{err}"
    );
    let err = fails(
        bin()
            .args(["calibrate", "--baseline", "mhd"])
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("needs a trained model"), "{err}");
}

#[test]
fn ink_box_framing_travels_with_the_model() {
    let f = fixture();
    run(bin()
        .args(["train", "--preset", "conv4", "--arch", "conv4-16x8"])
        .args([
            "--framing",
            "ink-box",
            "--epochs",
            "1",
            "--pairs-per-epoch",
            "64",
        ])
        .args(["--batch", "16", "--val-alphabets", "1", "--val-ways", "5"])
        .args(["--val-trials", "20", "--no-progress", "--name", "boxed"])
        .arg("--out-dir")
        .arg(f.root.join("runs"))
        .arg("--dataset")
        .arg(&f.dataset));
    let config = std::fs::read_to_string(f.root.join("runs/boxed/config.toml")).unwrap();
    assert!(config.contains("[arch.framing]") && config.contains("kind = \"ink-box\""));
    let boxed = f.root.join("runs/boxed/best.safetensors");
    let out = run(bin()
        .args(["eval", "--ways", "5", "--trials", "20", "--checkpoint"])
        .arg(&boxed)
        .arg("--dataset")
        .arg(&f.dataset));
    assert!(String::from_utf8_lossy(&out.stdout).contains("n=20"));
    // Lake's runs carry their own images, framed the model's way too.
    let runs = f.root.join("runs-lake");
    let index = data::SplitIndex::scan_split(&f.dataset, data::SplitKind::Evaluation).unwrap();
    data::runs::write_runs(&index, &runs, 2, 5, 0).unwrap();
    let out = run(bin()
        .args(["eval", "--protocol", "runs", "--runs-dir"])
        .arg(&runs)
        .arg("--checkpoint")
        .arg(&boxed));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| run02 |"));
    // And so are a user's own files.
    let file = |p: &str| f.dataset.join("images_evaluation/Synthetic_01").join(p);
    let out = run(bin()
        .arg("verify")
        .arg("--checkpoint")
        .arg(&boxed)
        .arg(file("character01/0001_01.png"))
        .arg(file("character01/0001_02.png")));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("p(same character) = "));
    let err = fails(
        bin()
            .args(["verify", "--framing", "ink-box", "--checkpoint"])
            .arg(&boxed)
            .arg(file("character01/0001_01.png"))
            .arg(file("character01/0001_02.png")),
    );
    assert!(err.contains("--framing is for baselines"), "{err}");

    // One store feeds an ensemble's members, so they must frame alike.
    let mut both = f.model.clone().into_os_string();
    both.push(",");
    both.push(&boxed);
    let err = fails(
        bin()
            .args(["eval", "--ways", "5", "--trials", "20", "--checkpoint"])
            .arg(&both)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("must frame images alike"), "{err}");

    // A model frames as it was trained; only a baseline takes --framing.
    let err = fails(
        bin()
            .args(["eval", "--framing", "ink-box", "--checkpoint"])
            .arg(&f.model)
            .arg("--dataset")
            .arg(&f.dataset),
    );
    assert!(err.contains("--baseline"), "{err}");
    let out = run(bin()
        .args(["eval", "--baseline", "pixel", "--framing", "ink-box"])
        .args(["--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    assert!(String::from_utf8_lossy(&out.stdout).contains("n=20"));

    // Strokes redrawn with one pen: a framing of its own, in configs and for baselines.
    let config = train_config(&["--preset", "full", "--framing", "ink-box-stroke"]);
    assert!(
        config.contains("kind = \"ink-box\"") && config.contains("stroke = 2.5"),
        "{config}"
    );
    let out = run(bin()
        .args(["eval", "--baseline", "mhd", "--framing", "ink-box-stroke"])
        .args(["--ways", "5", "--trials", "20"])
        .arg("--dataset")
        .arg(&f.dataset));
    assert!(String::from_utf8_lossy(&out.stdout).contains("n=20"));
    let config = train_config(&["--preset", "full", "--framing", "ink-box-moments"]);
    assert!(
        config.contains("fill = 1.0") && config.contains("spread = 4.4"),
        "{config}"
    );
    let err = fails(bin().args(["train", "--framing", "ink", "--print-config"]));
    assert!(
        err.contains("canvas, ink-box, ink-box-stroke or ink-box-moments"),
        "{err}"
    );
}

#[test]
fn embeddings_of_files_and_folders_are_written_as_csv() {
    let f = fixture();
    let alphabet = f.dataset.join("images_evaluation/Synthetic_01");
    let out = f.root.join("emb/embeddings.csv");
    let stdout = run(bin()
        .arg("embed")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg(alphabet.join("character02"))
        .arg(alphabet.join("character01/0001_03.png"))
        .arg(alphabet.join("character02/0002_01.png"))
        .arg("--out")
        .arg(&out));
    assert!(
        String::from_utf8_lossy(&stdout.stdout).starts_with("wrote 21 embeddings of "),
        "{}",
        String::from_utf8_lossy(&stdout.stdout)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let dim = rows[0].len() - 1;
    assert_eq!(rows[0][..3], ["path", "e0", "e1"]);
    // 20 drawings of character02 and one of character01 (named twice, listed once), sorted.
    assert_eq!(rows.len(), 1 + 21);
    assert!(
        rows[1][0].ends_with("character01/0001_03.png"),
        "{}",
        rows[1][0]
    );
    assert!(
        rows[2][0].ends_with("character02/0002_01.png"),
        "{}",
        rows[2][0]
    );
    let values =
        |row: &[&str]| -> Vec<f32> { row[1..].iter().map(|v| v.parse().unwrap()).collect() };
    assert!(rows[1..].iter().all(|r| r.len() == dim + 1));
    // The network's own embedding of a file, as `eval::Matcher` computes it.
    let matcher = eval::Matcher::open(&f.model, &model::Device::Cpu).unwrap();
    let image = matcher
        .load_image(&alphabet.join("character02/0002_01.png"))
        .unwrap();
    let expected = matcher.embed(&[image]).unwrap().remove(0);
    assert_eq!(values(&rows[2]), expected);
    assert_ne!(values(&rows[1]), values(&rows[2]));

    // Folders are searched for JPEG drawings too, and other files are passed over; a JPEG of a
    // drawing, four times the size, is embedded as the drawing itself.
    let photos = f.root.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let drawing = image::open(alphabet.join("character02/0002_01.png"))
        .unwrap()
        .to_luma8();
    image::imageops::resize(&drawing, 420, 420, image::imageops::FilterType::Nearest)
        .save(photos.join("scan.JPG"))
        .unwrap();
    std::fs::write(photos.join("notes.txt"), "not a drawing").unwrap();
    let out = f.root.join("emb/photos.csv");
    run(bin()
        .arg("embed")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg(&photos)
        .arg("--out")
        .arg(&out));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[1][0].ends_with("scan.JPG"), "{}", rows[1][0]);
    let (scan, drawn) = (values(&rows[1]), &expected);
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let gap: Vec<f32> = scan.iter().zip(drawn).map(|(a, b)| a - b).collect();
    assert!(
        norm(&gap) < 0.2 * norm(drawn),
        "{} of {}",
        norm(&gap),
        norm(drawn)
    );
    // A page without ink is refused by name.
    let blank = photos.join("blank.png");
    image::GrayImage::from_pixel(50, 40, image::Luma([255]))
        .save(&blank)
        .unwrap();
    let embed_fails = |path: &Path| {
        fails(
            bin()
                .arg("embed")
                .arg("--checkpoint")
                .arg(&f.model)
                .arg(path),
        )
    };
    let err = embed_fails(&blank);
    assert!(err.contains("blank.png: no ink found"), "{err}");

    let err = embed_fails(&f.root.join("nowhere"));
    assert!(
        err.contains("nowhere is neither a file nor a folder"),
        "{err}"
    );
    let empty = f.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = embed_fails(&empty);
    assert!(err.contains("no PNG or JPEG files under"), "{err}");
}

/// Copies drawing `drawer` of `character` (in the evaluation split's first alphabet) to `to`.
fn copy_drawing(f: &Fixture, character: usize, drawer: u8, to: &Path) {
    let from = f
        .dataset
        .join("images_evaluation/Synthetic_01")
        .join(format!("character{character:02}"))
        .join(format!("{character:04}_{drawer:02}.png"));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(&from, to).unwrap();
}

#[test]
fn recognize_labels_drawings_by_a_support_folder() {
    let f = fixture();
    let support = f.root.join("support");
    // Three labels of two examples each (folders), one of a single example (a file).
    for c in 1..=3 {
        for d in [1, 2] {
            copy_drawing(&f, c, d, &support.join(format!("c{c}/{d}.png")));
        }
    }
    copy_drawing(&f, 4, 1, &support.join("solo.png"));
    std::fs::write(support.join("notes.txt"), "not an image").unwrap();
    let queries = f.root.join("queries");
    for c in 1..=3 {
        for d in 3..=6 {
            copy_drawing(&f, c, d, &queries.join(format!("c{c}/{d:02}.png")));
        }
    }
    let out = f.root.join("out/recognized.csv");
    let recognize = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.arg("recognize")
            .arg("--checkpoint")
            .arg(&f.model)
            .arg("--support")
            .arg(&support)
            .arg(&queries)
            .arg("--out")
            .arg(&out)
            .args(extra);
        cmd
    };
    let plot = f.root.join("out/confusion.v2");
    let stdout = run(recognize(&["--labelled", "--top", "2"])
        .arg("--plot")
        .arg(&plot));
    let stdout = String::from_utf8_lossy(&stdout.stdout).into_owned();
    // Four labels of 28 px cells, the layout the plot module promises.
    let (width, height) = png(&f.root.join("out/confusion.v2.png"));
    assert!(width > 4 * 28 && height > 4 * 28, "{width}x{height}");
    assert!(f.root.join("out/confusion.v2.svg").is_file());
    assert!(stdout.contains("confusion.v2.png and "), "{stdout}");
    assert!(
        stdout.starts_with("labelled 12 drawings among 4 labels (7 examples) with siamese"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "query",
            "predicted",
            "score",
            "margin",
            "tied",
            "truth",
            "correct",
            "label_1",
            "score_1",
            "label_2",
            "score_2"
        ]
    );
    assert_eq!(rows.len(), 1 + 12);

    // Every score is the mean of the model's logits against the label's examples, as
    // `eval::Matcher` computes them; labels are in name order.
    let matcher = eval::Matcher::open(&f.model, &model::Device::Cpu).unwrap();
    let load = |p: PathBuf| matcher.load_image(&p).unwrap();
    let labels = ["c1", "c2", "c3", "solo"];
    let mut gallery = eval::Gallery::new();
    for label in &labels[..3] {
        for d in [1, 2] {
            gallery.add(label, load(support.join(format!("{label}/{d}.png"))));
        }
    }
    gallery.add("solo", load(support.join("solo.png")));
    let mut right = 0;
    for (i, row) in rows[1..].iter().enumerate() {
        let (c, d) = (1 + i / 4, 3 + i % 4);
        assert!(row[0].ends_with(&format!("c{c}/{d:02}.png")), "{row:?}");
        let query = load(queries.join(format!("c{c}/{d:02}.png")));
        let expected = matcher.recognize(&gallery, &[query], |_| {}).unwrap();
        let r = &expected[0];
        let ranking = r.ranking();
        assert_eq!(row[1], labels[r.best], "{row:?}");
        let score: f32 = row[2].parse().unwrap();
        assert!((score - r.scores[r.best]).abs() < 1e-4, "{row:?} {r:?}");
        let margin: f32 = row[3].parse().unwrap();
        assert!((margin - r.margin().unwrap()).abs() < 1e-4, "{row:?}");
        assert_eq!(row[4], r.tied.to_string());
        assert_eq!(row[5], format!("c{c}"));
        assert_eq!(row[6], (row[1] == row[5]).to_string());
        right += (row[1] == row[5]) as usize;
        assert_eq!(
            (row[7], row[9]),
            (labels[ranking[0]], labels[ranking[1]]),
            "{row:?}"
        );
        let second: f32 = row[10].parse().unwrap();
        assert!((second - r.scores[ranking[1]]).abs() < 1e-4, "{row:?}");
    }
    let accuracy = format!("accuracy {:.1}% [", 100.0 * right as f64 / 12.0);
    assert!(stdout.contains(&accuracy), "{accuracy} in {stdout}");
    assert!(
        stdout.contains(&format!("({right} of 12 right")),
        "{stdout}"
    );
    // One table row per label with queries; `solo` has none.
    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| c")).collect();
    assert_eq!(table.len(), 3, "{stdout}");
    assert!(!stdout.contains("| solo |"), "{stdout}");
    let per_label: usize = table
        .iter()
        .map(|l| {
            l.split('|')
                .nth(3)
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(per_label, right);

    let err = fails(recognize(&["--plot", "p"]).env("RUST_BACKTRACE", "0"));
    assert!(err.contains("--labelled"), "{err}");

    // Unlabelled: the same choices, no truth columns, top capped at the number of labels.
    run(&mut recognize(&["--top", "9"]));
    let unlabelled = std::fs::read_to_string(&out).unwrap();
    let header = unlabelled.lines().next().unwrap();
    assert_eq!(
        header,
        "query,predicted,score,margin,tied,label_1,score_1,label_2,score_2,label_3,score_3,\
         label_4,score_4"
    );
    let chosen = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(chosen(&unlabelled), chosen(&text));

    // A threshold between the best scores leaves the queries below it unlabelled.
    let mut best: Vec<f32> = rows[1..].iter().map(|r| r[2].parse().unwrap()).collect();
    best.sort_by(f32::total_cmp);
    let min = (best[5] + best[6]) / 2.0;
    let stdout = run(&mut recognize(&[
        "--labelled",
        "--min-score",
        &min.to_string(),
    ]));
    let stdout = String::from_utf8_lossy(&stdout.stdout).into_owned();
    let thresholded = std::fs::read_to_string(&out).unwrap();
    let rows_t: Vec<Vec<&str>> = thresholded
        .lines()
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(
        rows_t[0][..8],
        [
            "query",
            "predicted",
            "score",
            "margin",
            "tied",
            "accepted",
            "truth",
            "correct"
        ]
    );
    let (mut given, mut given_right) = (0, 0);
    for row in &rows_t[1..] {
        let score: f32 = row[2].parse().unwrap();
        assert_eq!(row[5], (score >= min).to_string(), "{row:?} at {min}");
        if score >= min {
            given += 1;
            given_right += (row[7] == "true") as usize;
        }
    }
    assert_eq!(given, 6, "{best:?} at {min}");
    assert!(
        stdout.contains("6 of 12 queries scored at least"),
        "{stdout}"
    );
    assert!(stdout.contains("6 were left unlabelled"), "{stdout}");
    let precision = format!(
        "of those labelled, {:.1}% [",
        100.0 * given_right as f64 / 6.0
    );
    assert!(stdout.contains(&precision), "{precision} in {stdout}");

    // A query that is also an example is named in a warning.
    let out2 = run(bin()
        .arg("recognize")
        .arg("--checkpoint")
        .arg(&f.model)
        .arg("--support")
        .arg(&support)
        .arg(support.join("solo.png"))
        .arg("--out")
        .arg(&out));
    let err = String::from_utf8_lossy(&out2.stderr);
    assert!(
        err.contains("1 of the 1 queries are support examples themselves"),
        "{err}"
    );
}

#[test]
fn recognize_refuses_bad_support_folders_and_labels() {
    let f = fixture();
    let dir = f.root.join("bad");
    let query = dir.join("queries/c1/q.png");
    copy_drawing(&f, 1, 5, &query);
    let attempt = |support: &Path, extra: &[&str]| {
        fails(
            bin()
                .env("RUST_BACKTRACE", "0")
                .arg("recognize")
                .arg("--checkpoint")
                .arg(&f.model)
                .arg("--support")
                .arg(support)
                .arg(&query)
                .args(extra),
        )
    };
    let err = attempt(&dir.join("nowhere"), &[]);
    assert!(err.contains("nowhere is not a folder"), "{err}");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = attempt(&empty, &[]);
    assert!(err.contains("no labels in"), "{err}");

    let hollow = dir.join("hollow");
    std::fs::create_dir_all(hollow.join("c1")).unwrap();
    let err = attempt(&hollow, &[]);
    assert!(err.contains("support label `c1`"), "{err}");
    assert!(err.contains("holds no PNG or JPEG files"), "{err}");

    let twice = dir.join("twice");
    copy_drawing(&f, 1, 1, &twice.join("c1/1.png"));
    copy_drawing(&f, 1, 2, &twice.join("c1.png"));
    let err = attempt(&twice, &[]);
    assert!(err.contains("label `c1` appears twice"), "{err}");

    let other = dir.join("other");
    copy_drawing(&f, 2, 1, &other.join("c2/1.png"));
    let err = attempt(&other, &["--labelled"]);
    assert!(
        err.contains("1 of 1 queries are in folders that are not labels of the support set"),
        "{err}"
    );
    assert!(err.contains("(in `c1`)"), "{err}");

    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(corrupt.join("c1")).unwrap();
    std::fs::write(corrupt.join("c1/broken.png"), b"not a png").unwrap();
    let err = attempt(&corrupt, &[]);
    assert!(err.contains("cannot use"), "{err}");
    assert!(err.contains("broken.png"), "{err}");

    let err = fails(
        bin()
            .env("RUST_BACKTRACE", "0")
            .args(["recognize", "--baseline", "mhd", "--support"])
            .arg(&other)
            .arg(&query),
    );
    assert!(err.contains("recognize needs a trained model"), "{err}");
}

/// `eval | head -n 1`: when the reader of its output goes away, the program ends as `ls`
/// does, by SIGPIPE, without a panic about printing.
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_the_program_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "images_evaluation", SyntheticSpec::new(2, 6, 4)).unwrap();
    let mut child = bin()
        .args([
            "eval",
            "--baseline",
            "pixel",
            "--ways",
            "5",
            "--trials",
            "20",
        ])
        .arg("--dataset")
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the program has loaded the dataset, let alone printed its report.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // 13 is SIGPIPE on every unix.
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
}
