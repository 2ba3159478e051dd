//! Scorers through the trial protocols on synthetic data: an oracle is always right, a random
//! scorer is right about 1/N of the time, baselines beat chance, reports and plots are written.

use std::collections::HashMap;

use data::synthetic::{SyntheticSpec, store, write_split};
use data::trials::sample_trials;
use data::{Framing, ImageId, ImageStore, Protocol, Subset};
use eval::baselines::{IdmConfig, IdmScorer, MhdScorer, PixelScorer};
use eval::{Report, Scorer, evaluate};

/// Knows every image's character.
#[derive(Default)]
struct Oracle(HashMap<ImageId, u32>);

impl Scorer for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }
    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> eval::error::Result<()> {
        for &id in ids {
            self.0.insert(id, store.character_of(id));
        }
        Ok(())
    }
    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        (self.0[&a] == self.0[&b]) as u8 as f32
    }
}

/// A pseudo-random score per pair.
struct Coin;

impl Scorer for Coin {
    fn name(&self) -> String {
        "coin".into()
    }
    fn prepare(&mut self, _: &ImageStore, _: &[ImageId]) -> eval::error::Result<()> {
        Ok(())
    }
    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        let h = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (h.wrapping_mul(0x1656_67B1_9E37_79F9) >> 40) as f32
    }
}

#[test]
fn oracle_is_perfect_and_coin_is_at_chance() {
    let s = store(SyntheticSpec::new(3, 8, 20), 8);
    let subset = Subset::all(&s);
    for protocol in [Protocol::Random, Protocol::WithinAlphabet] {
        let trials = sample_trials(&s, &subset, protocol, 5, 2000, 1).unwrap();
        let oracle = evaluate(&mut Oracle::default(), &s, &trials).unwrap();
        assert!(oracle.iter().all(|r| r.correct && !r.tied));
        let coin = evaluate(&mut Coin, &s, &trials).unwrap();
        let acc = coin.iter().filter(|r| r.correct).count() as f64 / 2000.0;
        assert!((0.16..0.24).contains(&acc), "{protocol}: {acc}");
    }
}

#[test]
fn baselines_beat_chance_on_synthetic_glyphs() {
    let s = store(SyntheticSpec::new(4, 10, 20), 105);
    let trials = sample_trials(&s, &Subset::all(&s), Protocol::Random, 10, 200, 2).unwrap();
    for mut scorer in [
        Box::new(MhdScorer::default()) as Box<dyn Scorer>,
        Box::new(PixelScorer::default()),
        Box::new(IdmScorer::new(IdmConfig::default())),
    ] {
        let r = evaluate(scorer.as_mut(), &s, &trials).unwrap();
        let acc = r.iter().filter(|r| r.correct).count() as f64 / r.len() as f64;
        assert!(acc > 0.3, "{}: {acc}", scorer.name());
    }
}

#[test]
fn report_groups_by_alphabet_and_serialises() {
    let s = store(SyntheticSpec::new(3, 6, 20), 8);
    let trials = sample_trials(&s, &Subset::all(&s), Protocol::WithinAlphabet, 4, 300, 5).unwrap();
    let results = evaluate(&mut Coin, &s, &trials).unwrap();
    let report = Report::new(
        "coin",
        "within-alphabet",
        4,
        "synthetic",
        Some(5),
        &s,
        &results,
    );
    assert_eq!(report.overall.total, 300);
    assert_eq!(report.per_alphabet.len(), 3);
    let sum: usize = report.per_alphabet.iter().map(|g| g.accuracy.total).sum();
    assert_eq!(sum, 300);
    let csv = report.to_csv();
    assert_eq!(csv.lines().count(), 1 + 1 + 3);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("coin,within-alphabet,4,1,synthetic,overall,")
    );
    let md = report.to_markdown();
    assert!(
        md.contains("| Synthetic_01 |") && md.contains("n=300"),
        "{md}"
    );
    let back: Report = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back.overall.correct, report.overall.correct);
    // Reports written before K-shot trials existed read as one-shot.
    let old = report.to_json().replace("\"shots\": 1,", "");
    assert_ne!(old, report.to_json());
    assert_eq!(serde_json::from_str::<Report>(&old).unwrap().shots, 1);
    assert!((back.overall.ci_low - report.overall.ci_low).abs() < 1e-12);
    assert_eq!(back.per_alphabet.len(), 3);
    // Sampled trials are independent: no run-level interval, and none in the JSON.
    assert!(back.across_runs.is_none() && !report.to_json().contains("across_runs"));
}

#[test]
fn lake_runs_are_evaluated_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let split = write_split(tmp.path(), "images_evaluation", SyntheticSpec::new(3, 6, 4)).unwrap();
    let index = data::SplitIndex::scan(&split).unwrap();
    let runs = tmp.path().join("runs");
    data::runs::write_runs(&index, &runs, 3, 6, 0).unwrap();
    let (report, results, store) =
        eval::runs::evaluate_runs(&mut MhdScorer::default(), &runs, 105, Framing::Canvas).unwrap();
    // The returned store holds the runs' images: each query is a drawing of its own run.
    assert_eq!(store.len(), 3 * 6 * 2);
    assert!(store.describe(results[0].trial.query).starts_with("run01/"));
    assert_eq!(results.len(), 18);
    assert_eq!(report.per_run.len(), 3);
    assert_eq!(report.per_run[0].name, "run01");
    assert_eq!(report.ways, 6);
    assert!(results.iter().all(|r| r.scores.len() == 6));
    // The run-level interval resamples the three runs' own (correct, total).
    let across = report
        .across_runs
        .clone()
        .expect("runs report a run-level interval");
    let groups: Vec<(usize, usize)> = report
        .per_run
        .iter()
        .map(|g| (g.accuracy.correct, g.accuracy.total))
        .collect();
    let (lo, hi) = eval::stats::bootstrap_over_groups(&groups, across.resamples);
    assert_eq!((across.runs, across.ci_low, across.ci_high), (3, lo, hi));
    let worst = report.per_run.iter().map(|g| g.accuracy.accuracy);
    assert!(across.ci_low >= worst.clone().fold(1.0, f64::min) - 1e-12);
    assert!(across.ci_high <= worst.fold(0.0, f64::max) + 1e-12);
    assert!(report.to_markdown().contains("Across runs: 95% interval ["));
    assert!(report.to_csv().contains(",\"overall, resampling runs\","));
    let back: Report = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back.across_runs, Some(across));
    // Oracle through the runs store: the query's character is its answer's.
    let (store, trials) =
        eval::runs::runs_store(&data::runs::read_runs(&runs).unwrap(), 28, Framing::Canvas)
            .unwrap();
    let flat: Vec<_> = trials.into_iter().flatten().collect();
    let oracle = evaluate(&mut Oracle::default(), &store, &flat).unwrap();
    assert!(oracle.iter().all(|r| r.correct));

    // Framed: every image of the runs store is its PNG framed the model's way.
    let runs_list = data::runs::read_runs(&runs).unwrap();
    let (framed, _) = eval::runs::runs_store(&runs_list, 28, Framing::ink_box()).unwrap();
    let query = &runs_list[0].items[0].0;
    let native = data::image_io::read_omniglot_png(query).unwrap();
    let id = (0..framed.len() as u32)
        .find(|&i| framed.path_of(i) == Some(query.as_path()))
        .unwrap();
    let want = Framing::ink_box().apply(&native, 28);
    let got = framed.image_f32(id);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 0.01));
    assert_ne!(got, store.image_f32(id), "framing changed the image");
    assert_eq!(framed.framing(), Framing::ink_box());
}

#[test]
fn a_model_refuses_images_framed_another_way() {
    let arch = model::Arch {
        framing: Framing::ink_box(),
        ..model::Arch::conv4(16, 4)
    };
    let net = std::sync::Arc::new(
        model::SiameseNet::new(&arch, model::Init::Default, 0, &model::Device::Cpu).unwrap(),
    );
    // Reports name the framing: two networks of one architecture name can differ in it.
    let name = eval::ModelScorer::new(net.clone(), 8).unwrap().name();
    assert!(
        name.contains("framed by ink-box (fill 0.8, at least 35 px)"),
        "{name}"
    );
    let canvas = store(SyntheticSpec::new(2, 4, 4), 16);
    let err = eval::session::Session::from_model(net, canvas, data::SplitKind::Background)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("frames its images as ink-box (fill 0.8"),
        "{err}"
    );
}

#[test]
fn plots_are_written_as_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let series = vec![eval::plot::Series::line(
        "model",
        vec![(3.0, 0.9, 0.85, 0.95), (20.0, 0.7, 0.6, 0.8)],
    )];
    let chart = eval::plot::Chart {
        title: "accuracy",
        x_label: "N",
        y_label: "accuracy",
        series: &series,
        y_range: Some(0.0..1.0),
        x_range: None,
        x_ticks: Some(&[3.0, 20.0]),
    };
    let png = tmp.path().join("a.png");
    let svg = tmp.path().join("a.svg");
    eval::plot::write_chart(&chart, Some(&png), Some(&svg)).unwrap();
    let img = image::open(&png).unwrap();
    // 900 x 600, and one legend row (20 px and a margin of 8) below.
    assert_eq!((img.width(), img.height()), (900, 628));
    // Something besides white was drawn.
    assert!(img.to_rgb8().pixels().any(|p| p.0 != [255, 255, 255]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("accuracy"));
}

#[test]
fn classification_sheets_are_wide_enough_for_their_title() {
    let tmp = tempfile::tempdir().unwrap();
    let pixels = vec![0.5f32; 16 * 16];
    let tile = |caption: &str| eval::plot::Tile {
        pixels: &pixels,
        side: 16,
        caption: caption.into(),
        border: None,
    };
    let (query, candidates) = (tile("query"), vec![tile("#0"), tile("#1")]);
    let width = |title: &str| {
        let png = tmp.path().join("c.png");
        eval::plot::write_classification(&png, title, &query, &candidates).unwrap();
        image::open(&png).unwrap().width()
    };
    // Two candidates fill 3 cells of 130 px and a margin; an 80-character title needs more.
    assert_eq!(width("short"), 450);
    assert_eq!(width(&"x".repeat(80)), 820);
}

#[test]
fn confusion_matrices_shade_each_cell_by_its_share_of_the_row() {
    use eval::plot::{Confusion, shade, write_confusion};
    use plotters::style::RGBColor;
    let tmp = tempfile::tempdir().unwrap();
    let labels: Vec<String> = ["alpha", "beta", "gamma"].map(String::from).to_vec();
    // alpha: 4 of 4 right; beta: 1 right, 3 taken for gamma; gamma: no queries.
    let counts = vec![vec![4, 0, 0], vec![0, 1, 3], vec![0, 0, 0]];
    let c = Confusion {
        title: "t",
        labels: &labels,
        counts: &counts,
    };
    let (png, svg) = (tmp.path().join("c.png"), tmp.path().join("c.svg"));
    write_confusion(&c, Some(&png), Some(&svg)).unwrap();
    let l = c.layout();
    assert!(l.named);
    assert_eq!(l.cell, 28);
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (l.width, l.height));
    // A cell's colour, read a few pixels inside its top-left corner (clear of its count).
    let at = |row: u32, col: u32| {
        img.get_pixel(l.left + col * l.cell + 3, l.top + row * l.cell + 3)
            .0
    };
    let colour = |f: f64| {
        let RGBColor(r, g, b) = shade(f);
        [r, g, b]
    };
    assert_eq!(at(0, 0), colour(1.0));
    assert_eq!(at(0, 1), colour(0.0));
    assert_eq!(at(1, 1), colour(0.25));
    assert_eq!(at(1, 2), colour(0.75));
    assert_eq!(at(2, 2), colour(0.0));
    assert_eq!(colour(0.0), [255, 255, 255]);
    assert_ne!(colour(0.25), colour(0.75));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("alpha") && text.contains("gamma"), "{text}");

    // Too many labels to name: cells shrink to 6 px and the names go.
    let many: Vec<String> = (0..200).map(|i| format!("l{i}")).collect();
    let zeros = vec![vec![0; 200]; 200];
    let big = Confusion {
        title: "t",
        labels: &many,
        counts: &zeros,
    };
    assert_eq!((big.layout().cell, big.layout().named), (6, false));
    let ragged = vec![vec![1, 0], vec![0]];
    let err = write_confusion(
        &Confusion {
            title: "t",
            labels: &labels[..2],
            counts: &ragged,
        },
        Some(&png),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("2 labels needs 2 rows of 2 counts"), "{err}");
}

/// An untrained four-block network on 16x16 images.
fn tiny_net(seed: u64) -> std::sync::Arc<model::SiameseNet> {
    std::sync::Arc::new(
        model::SiameseNet::new(
            &model::Arch::conv4(16, 4),
            model::Init::Default,
            seed,
            &model::Device::Cpu,
        )
        .unwrap(),
    )
}

#[test]
fn test_time_views_average_embeddings() {
    let s = store(SyntheticSpec::new(2, 4, 4), 16);
    let net = tiny_net(0);
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let mut plain = eval::ModelScorer::new(net.clone(), 8).unwrap();
    let mut same = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_views(vec![data::AffineParams::identity(); 3]);
    let mut shifted = eval::ModelScorer::new(net, 8)
        .unwrap()
        .with_views(eval::scorer::shift_views());
    for scorer in [&mut plain, &mut same, &mut shifted] {
        scorer.prepare(&s, &ids).unwrap();
    }
    // Three identical views average to the plain embedding; shifted views change it.
    for (a, b) in [(0, 5), (3, 9)] {
        assert!((plain.similarity(a, b) - same.similarity(a, b)).abs() < 1e-4);
    }
    assert!(
        (0..s.len() as u32 - 1)
            .any(|i| (plain.similarity(i, i + 1) - shifted.similarity(i, i + 1)).abs() > 1e-4)
    );
    assert!(shifted.name().contains("5 views"));
}

/// The image mirrored left-right, by index arithmetic.
fn mirror(pixels: &[f32], side: usize) -> Vec<f32> {
    (0..side * side)
        .map(|p| pixels[p / side * side + side - 1 - p % side])
        .collect()
}

/// The image turned by a quarter turn, by index arithmetic.
fn quarter_turn(pixels: &[f32], side: usize) -> Vec<f32> {
    (0..side * side)
        .map(|p| pixels[(p % side) * side + side - 1 - p / side])
        .collect()
}

#[test]
fn paired_turns_average_the_logits_of_both_images_turned_alike() {
    let s = store(SyntheticSpec::new(2, 4, 4), 16);
    let net = tiny_net(0);
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let mut plain = eval::ModelScorer::new(net.clone(), 8).unwrap();
    let mut one = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_turns(1)
        .unwrap();
    let mut half = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_turns(2)
        .unwrap();
    let mut four = eval::ModelScorer::new(net.clone(), 3)
        .unwrap()
        .with_turns(4)
        .unwrap();
    let mut eight = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_turns(4)
        .unwrap()
        .with_mirrored_pairs(true);
    for scorer in [&mut plain, &mut one, &mut half, &mut four, &mut eight] {
        scorer.prepare(&s, &ids).unwrap();
    }
    let head = net.head_host().unwrap();
    let logit = |x: &[f32], y: &[f32]| -> f32 {
        let mut both = x.to_vec();
        both.extend(y);
        let e = net.embed_images(&both, 2).unwrap();
        let (ea, eb) = e.split_at(e.len() / 2);
        head.logit(ea, eb)
    };
    // Expected: the logits of the pair turned by hand 0..4 quarter turns (the set of turns
    // is the same whichever way the scorer turns), and mirrored, averaged.
    let expected_views = |a: ImageId, b: ImageId, turns: usize, mirrored: bool| -> f32 {
        let (mut x, mut y) = (s.image_f32(a), s.image_f32(b));
        let mut logits = Vec::new();
        for k in 0..4 {
            if k % (4 / turns) == 0 {
                logits.push(logit(&x, &y));
                if mirrored {
                    logits.push(logit(&mirror(&x, 16), &mirror(&y, 16)));
                }
            }
            x = quarter_turn(&x, 16);
            y = quarter_turn(&y, 16);
        }
        logits.iter().sum::<f32>() / logits.len() as f32
    };
    let expected = |a, b, turns| expected_views(a, b, turns, false);
    let mut differs = false;
    for (a, b) in [(0, 5), (3, 9), (2, 3), (7, 12)] {
        assert_eq!(one.similarity(a, b), plain.similarity(a, b));
        let got = four.similarity(a, b);
        let want = expected(a, b, 4);
        assert!(
            (got - want).abs() < 1e-4,
            "4 turns ({a}, {b}): {got} vs {want}"
        );
        let got = half.similarity(a, b);
        let want = expected(a, b, 2);
        assert!(
            (got - want).abs() < 1e-4,
            "2 turns ({a}, {b}): {got} vs {want}"
        );
        let got = eight.similarity(a, b);
        let want = expected_views(a, b, 4, true);
        assert!(
            (got - want).abs() < 1e-4,
            "8 views ({a}, {b}): {got} vs {want}"
        );
        differs |= (four.similarity(a, b) - plain.similarity(a, b)).abs() > 1e-4;
        assert_eq!(four.trial_scores(a, &[b, a])[0], four.similarity(a, b));
    }
    assert!(differs, "turning changed no score");
    // Eighth turns: the four quarter-turned pairs and the four turned a further 45 degrees.
    let mut eighths = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_turns(8)
        .unwrap();
    eighths.prepare(&s, &ids).unwrap();
    let turned = |id: ImageId, degrees: f32| {
        let mut out = vec![0f32; 16 * 16];
        data::AffineParams {
            rotation_deg: degrees,
            ..data::AffineParams::identity()
        }
        .warp_u8(s.pixels(id), 16, &mut out, 16);
        out
    };
    let mut eighth_differs = false;
    for (a, b) in [(0, 5), (3, 9), (2, 3), (7, 12)] {
        let odd: f32 = [45.0, 135.0, 225.0, 315.0]
            .iter()
            .map(|&d| logit(&turned(a, d), &turned(b, d)))
            .sum::<f32>()
            / 4.0;
        let want = (expected(a, b, 4) + odd) / 2.0;
        let got = eighths.similarity(a, b);
        assert!(
            (got - want).abs() < 1e-4,
            "8 turns ({a}, {b}): {got} vs {want}"
        );
        eighth_differs |= (got - four.similarity(a, b)).abs() > 1e-6;
    }
    assert!(eighth_differs, "45-degree turns changed no score");
    assert!(four.name().contains("4 paired turns"), "{}", four.name());
    assert!(
        eight.name().contains("and their mirror images"),
        "{}",
        eight.name()
    );
    let err = eval::ModelScorer::new(net, 8)
        .unwrap()
        .with_turns(3)
        .err()
        .unwrap();
    assert!(err.to_string().contains("1, 2, 4 or 8"), "{err}");
}

#[test]
fn sessions_can_be_restricted_to_alphabets() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "images_background", SyntheticSpec::new(3, 6, 4)).unwrap();
    let choice =
        eval::session::ScorerChoice::Baseline(eval::session::Baseline::Pixel, Framing::Canvas);
    let mut session = eval::session::Session::open(
        &choice,
        tmp.path(),
        data::SplitKind::Background,
        &model::Device::Cpu,
    )
    .unwrap();
    session
        .restrict_to_alphabets(&["Synthetic_02".to_string()])
        .unwrap();
    let (report, results) = session.sampled(Protocol::Random, 5, 40, 0).unwrap();
    assert_eq!(report.per_alphabet.len(), 1);
    assert_eq!(report.per_alphabet[0].name, "Synthetic_02");
    assert!(
        results
            .iter()
            .all(|r| session.store.alphabet_of(r.trial.query) == 1)
    );
    let msg = session
        .restrict_to_alphabets(&["Klingon".to_string()])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Klingon"), "{msg}");
    let msg = session
        .sampled(Protocol::Random, 5, 0, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no trials to score"), "{msg}");
}

#[test]
fn ensembles_score_the_mean_of_their_members_logits() {
    let s = store(SyntheticSpec::new(2, 4, 4), 16);
    let (a, b) = (tiny_net(0), tiny_net(1));
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let mut one = eval::ModelScorer::new(a.clone(), 8).unwrap();
    let mut two = eval::ModelScorer::new(b.clone(), 8).unwrap();
    let mut both = eval::EnsembleScorer::new(vec![
        eval::ModelScorer::new(a.clone(), 8).unwrap(),
        eval::ModelScorer::new(b, 8).unwrap(),
    ])
    .unwrap();
    let mut alone = eval::EnsembleScorer::new(vec![eval::ModelScorer::new(a, 8).unwrap()]).unwrap();
    for scorer in [&mut one as &mut dyn Scorer, &mut two, &mut both, &mut alone] {
        scorer.prepare(&s, &ids).unwrap();
    }
    for (i, j) in [(0, 5), (3, 9), (7, 7), (12, 2)] {
        let mean = (one.similarity(i, j) + two.similarity(i, j)) / 2.0;
        assert!((both.similarity(i, j) - mean).abs() < 1e-5, "{i} {j}");
        assert_eq!(alone.similarity(i, j), one.similarity(i, j));
    }
    // Different seeds give different members, so the test above compared distinct scores.
    assert!((one.similarity(0, 5) - two.similarity(0, 5)).abs() > 1e-6);
    assert!(both.name().starts_with("ensemble of 2"), "{}", both.name());
    assert!(eval::EnsembleScorer::new(Vec::new()).is_err());
}

#[test]
fn ensemble_members_must_share_an_input_size() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "images_background", SyntheticSpec::new(2, 4, 4)).unwrap();
    let save = |side: usize, name: &str| {
        let net = model::SiameseNet::new(
            &model::Arch::conv4(side, 4),
            model::Init::Default,
            0,
            &model::Device::Cpu,
        )
        .unwrap();
        let path = tmp.path().join(name);
        model::io::save(&net, &path, &Default::default()).unwrap();
        path
    };
    let (small, big) = (save(16, "small.safetensors"), save(20, "big.safetensors"));
    let open = |paths: Vec<std::path::PathBuf>| {
        eval::session::Session::open(
            &eval::session::ScorerChoice::Ensemble(paths),
            tmp.path(),
            data::SplitKind::Background,
            &model::Device::Cpu,
        )
    };
    let mut session = open(vec![small.clone(), small.clone()]).unwrap();
    assert_eq!(session.side(), 16);
    let (report, _) = session.sampled(Protocol::Random, 4, 10, 0).unwrap();
    assert!(
        report.scorer.starts_with("ensemble of 2"),
        "{}",
        report.scorer
    );
    let msg = open(vec![small, big]).err().unwrap().to_string();
    assert!(
        msg.contains("big.safetensors takes 20x20")
            && msg.contains("small.safetensors takes 16x16"),
        "{msg}"
    );
}

#[test]
fn adaptation_in_the_pair_views() {
    let s = store(SyntheticSpec::new(2, 5, 4), 16);
    let net = tiny_net(0);
    let upright = eval::adapt::AdaptConfig {
        // Large steps and no penalty, so that the untrained tiny net's fits move visibly.
        views: 3,
        steps: 50,
        lr: 10.0,
        l2: 0.0,
        seed: 0,
        in_views: false,
    };
    let in_views = eval::adapt::AdaptConfig {
        in_views: true,
        ..upright
    };
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let scorer = |adapt, turns, batch| {
        eval::ModelScorer::new(net.clone(), batch)
            .unwrap()
            .with_turns(turns)
            .unwrap()
            .with_adaptation(adapt)
            .unwrap()
    };
    let (q, cands) = (0u32, vec![4u32, 9, 13, 17]);

    // Without turns there is one view, so fitting "in the views" is the upright fit.
    let mut a = scorer(upright, 1, 8);
    let mut b = scorer(in_views, 1, 8);
    a.prepare(&s, &ids).unwrap();
    b.prepare(&s, &ids).unwrap();
    assert_eq!(a.trial_scores(q, &cands), b.trial_scores(q, &cands));

    // With four turns the copies are turned too, which changes the fit; the result still
    // depends only on the seed and the images, not on how they were prepared.
    let mut a = scorer(upright, 4, 8);
    let mut b = scorer(in_views, 4, 8);
    let mut halves = scorer(in_views, 4, 3);
    a.prepare(&s, &ids).unwrap();
    b.prepare(&s, &ids).unwrap();
    let (lo, hi) = ids.split_at(ids.len() / 2);
    halves.prepare(&s, hi).unwrap();
    halves.prepare(&s, lo).unwrap();
    let (sa, sb) = (a.trial_scores(q, &cands), b.trial_scores(q, &cands));
    assert!(sb.iter().all(|x| x.is_finite()));
    assert!(
        sa.iter().zip(&sb).any(|(x, y)| (x - y).abs() > 1e-6),
        "{sa:?} {sb:?}"
    );
    assert_eq!(halves.trial_scores(q, &cands), sb);
    assert!(
        b.name().contains("adapted in the pair views"),
        "{}",
        b.name()
    );
}

/// A short support-set adaptation: three distorted copies per candidate, five steps.
fn five_step_adaptation() -> eval::adapt::AdaptConfig {
    eval::adapt::AdaptConfig {
        views: 3,
        steps: 5,
        lr: 1.0,
        l2: 0.1,
        seed: 0,
        in_views: false,
    }
}

#[test]
fn adaptation_needs_a_head_with_one_weight_per_dimension() {
    let arch = model::Arch {
        head: model::HeadSpec {
            hidden: 3,
            products: false,
        },
        ..model::Arch::conv4(16, 4)
    };
    let net = std::sync::Arc::new(
        model::SiameseNet::new(&arch, model::Init::Default, 0, &model::Device::Cpu).unwrap(),
    );
    let adapt = five_step_adaptation();
    let err = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_adaptation(adapt)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hidden layer"), "{err}");
    // Off is fine, and the network scores trials like any other.
    let s = store(SyntheticSpec::new(2, 5, 4), 16);
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let mut off = eval::ModelScorer::new(net, 8)
        .unwrap()
        .with_adaptation(eval::adapt::AdaptConfig { steps: 0, ..adapt })
        .unwrap();
    off.prepare(&s, &ids).unwrap();
    assert!(
        off.trial_scores(0, &[4, 9, 13])
            .iter()
            .all(|x| x.is_finite())
    );
}

#[test]
fn support_adaptation_is_per_trial_and_reproducible() {
    let s = store(SyntheticSpec::new(2, 5, 4), 16);
    let net = tiny_net(0);
    let adapt = five_step_adaptation();
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let mut plain = eval::ModelScorer::new(net.clone(), 8).unwrap();
    let mut off = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_adaptation(eval::adapt::AdaptConfig { steps: 0, ..adapt })
        .unwrap();
    let mut adapted = eval::ModelScorer::new(net.clone(), 8)
        .unwrap()
        .with_adaptation(adapt)
        .unwrap();
    for scorer in [&mut plain, &mut off, &mut adapted] {
        scorer.prepare(&s, &ids).unwrap();
    }
    // Prepared in two halves, in another order: each image's copies depend only on the seed
    // and the image, so the scores are the same.
    let mut halves = eval::ModelScorer::new(net.clone(), 3)
        .unwrap()
        .with_adaptation(adapt)
        .unwrap();
    let (lo, hi) = ids.split_at(ids.len() / 2);
    halves.prepare(&s, hi).unwrap();
    halves.prepare(&s, lo).unwrap();

    let trials = [
        (0u32, vec![4u32, 9, 13, 17]),
        (1, vec![4, 9, 13, 17]),
        (2, vec![5, 8]),
    ];
    let mut changed = false;
    for (q, cands) in &trials {
        let base = plain.trial_scores(*q, cands);
        assert_eq!(off.trial_scores(*q, cands), base);
        let got = adapted.trial_scores(*q, cands);
        assert_eq!(got.len(), cands.len());
        assert!(got.iter().all(|x| x.is_finite()));
        assert_eq!(halves.trial_scores(*q, cands), got);
        changed |= got.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-6);
    }
    assert!(changed, "adaptation left every score as it was");
    // Pairwise similarity (used by the hubness correction) stays the trained head's.
    assert_eq!(adapted.similarity(0, 4), plain.similarity(0, 4));
    assert!(
        adapted.name().contains("adapted: 5 steps"),
        "{}",
        adapted.name()
    );

    // An ensemble of one adapting member scores trials as that member does.
    let mut alone = eval::EnsembleScorer::new(vec![
        eval::ModelScorer::new(net, 8)
            .unwrap()
            .with_adaptation(adapt)
            .unwrap(),
    ])
    .unwrap();
    alone.prepare(&s, &ids).unwrap();
    let (q, cands) = &trials[0];
    assert_eq!(
        alone.trial_scores(*q, cands),
        adapted.trial_scores(*q, cands)
    );
}

#[test]
fn support_statistics_score_each_trial_with_its_candidates_statistics() {
    let s = store(SyntheticSpec::new(2, 5, 4), 16);
    let net = std::sync::Arc::new(
        model::SiameseNet::new(
            &model::Arch::preset("conv4-16x4-bn").unwrap(),
            model::Init::Default,
            3,
            &model::Device::Cpu,
        )
        .unwrap(),
    );
    let head = net.head_host().unwrap();
    let trials = vec![
        data::Trial::one_shot(0, vec![4, 9, 13, 17], 0),
        data::Trial::one_shot(0, vec![9, 2, 17], 1),
    ];
    // By hand: candidates in every turn, then the query's turns, as one batch whose first
    // rows give the statistics; logits of equally turned pairs averaged.
    let expected = |t: &data::Trial, turns: usize| -> Vec<f32> {
        let turned = |id: ImageId| -> Vec<Vec<f32>> {
            let mut x = s.image_f32(id);
            let mut out = Vec::new();
            for k in 0..4 {
                if k % (4 / turns) == 0 {
                    out.push(x.clone());
                }
                x = quarter_turn(&x, 16);
            }
            out
        };
        let mut batch: Vec<f32> = t
            .candidates
            .iter()
            .flat_map(|&c| turned(c).concat())
            .collect();
        batch.extend(turned(t.query).concat());
        let support = t.candidates.len() * turns;
        let e = net
            .embed_images_with_support_stats(&batch, support)
            .unwrap();
        let dim = net.arch().embedding_dim().unwrap();
        let row = |r: usize| &e[r * dim..(r + 1) * dim];
        (0..t.candidates.len())
            .map(|c| {
                (0..turns)
                    .map(|k| head.logit(row(support + k), row(c * turns + k)))
                    .sum::<f32>()
                    / turns as f32
            })
            .collect()
    };
    for turns in [1, 4] {
        let mut scorer = eval::ModelScorer::new(net.clone(), 8)
            .unwrap()
            .with_turns(turns)
            .unwrap()
            .with_support_statistics(true);
        let mut running = eval::ModelScorer::new(net.clone(), 8)
            .unwrap()
            .with_turns(turns)
            .unwrap();
        let results = evaluate(&mut scorer, &s, &trials).unwrap();
        let plain = evaluate(&mut running, &s, &trials).unwrap();
        for (r, p) in results.iter().zip(&plain) {
            let want = expected(&r.trial, turns);
            assert!(
                r.scores
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| (a - b).abs() < 1e-3),
                "{turns} turns: {:?} vs {want:?}",
                r.scores
            );
            assert!(
                r.scores
                    .iter()
                    .zip(&p.scores)
                    .any(|(a, b)| (a - b).abs() > 1e-3),
                "support statistics changed nothing"
            );
        }
        // The same candidate against the same query scores differently in another trial: the
        // statistics are the trial's.
        assert!((results[0].scores[1] - results[1].scores[0]).abs() > 1e-5);
    }
    // It does not combine with the support-set adaptation.
    let mut both = eval::ModelScorer::new(net, 8)
        .unwrap()
        .with_support_statistics(true)
        .with_adaptation(eval::adapt::AdaptConfig {
            steps: 5,
            ..Default::default()
        })
        .unwrap();
    let err = evaluate(&mut both, &s, &trials).unwrap_err();
    assert!(err.to_string().contains("do not combine"), "{err}");
}

#[test]
fn calibration_pairs_are_balanced_and_scored_like_trials() {
    let s = store(SyntheticSpec::new(3, 6, 4), 16);
    let net = tiny_net(3);
    let mut session =
        eval::session::Session::from_model(net.clone(), s, data::SplitKind::Background).unwrap();
    let pairs = session
        .scored_pairs(Protocol::WithinAlphabet, 30, 5)
        .unwrap();
    assert_eq!(pairs.len(), 60);
    assert_eq!(pairs.iter().filter(|p| p.same).count(), 30);
    // The same trials through `sampled` give the same logits, in the same order.
    let (_, results) = session.sampled(Protocol::WithinAlphabet, 2, 30, 5).unwrap();
    let logits: Vec<f32> = results.iter().flat_map(|r| r.scores.clone()).collect();
    let same: Vec<bool> = results
        .iter()
        .flat_map(|r| (0..2).map(move |i| i == r.trial.answer))
        .collect();
    assert_eq!(pairs.iter().map(|p| p.logit).collect::<Vec<_>>(), logits);
    assert_eq!(pairs.iter().map(|p| p.same).collect::<Vec<_>>(), same);
    // A logit is the network's: query against a candidate, both embedded by the model.
    let r = &results[0];
    let store = &session.store;
    let embed = |id: ImageId| net.embed_images(&store.image_f32(id), 1).unwrap();
    let head = net.head_host().unwrap();
    let by_hand = head.logit(&embed(r.trial.query), &embed(r.trial.candidates[1]));
    assert!(
        (by_hand - r.scores[1]).abs() < 1e-4,
        "{by_hand} vs {}",
        r.scores[1]
    );
}

#[test]
fn local_matching_adds_the_weighted_part_match_of_each_paired_turn() {
    let s = store(SyntheticSpec::new(2, 4, 4), 16);
    let net = tiny_net(3);
    let ids: Vec<ImageId> = (0..s.len() as u32).collect();
    let local = |weight: f32, block: usize| {
        eval::ModelScorer::new(net.clone(), 8)
            .unwrap()
            .with_turns(2)
            .unwrap()
            .with_local_match(Some(eval::local::LocalMatch { block, weight }))
    };
    let mut plain = local(0.0, 2).unwrap();
    let mut matched = local(5.0, 2).unwrap();
    for scorer in [&mut plain, &mut matched] {
        scorer.prepare(&s, &ids).unwrap();
    }
    assert!(matched.name().contains("local match on block 2 x 5"));
    assert!(!plain.name().contains("local"), "weight 0 is off");
    // Block 2 of conv4(16, 4): 4 x 4 positions of 4 channels, upright and half turned.
    let describe = |pixels: &[f32]| {
        let (maps, shape) = net.feature_maps(pixels, 2, 1).unwrap();
        assert_eq!(shape, [4, 4, 4]);
        eval::local::descriptors(&maps, shape)
    };
    let half_turn = |p: &[f32]| quarter_turn(&quarter_turn(p, 16), 16);
    for (a, b) in [(0, 5), (3, 9), (7, 12)] {
        let (x, y) = (s.image_f32(a), s.image_f32(b));
        let upright = eval::local::similarity(&describe(&x), &describe(&y), 4);
        let turned =
            eval::local::similarity(&describe(&half_turn(&x)), &describe(&half_turn(&y)), 4);
        let want = plain.similarity(a, b) + 5.0 * 0.5 * (upright + turned);
        let got = matched.similarity(a, b);
        assert!((got - want).abs() < 1e-4, "({a}, {b}): {got} vs {want}");
        assert!((0.0..=1.0 + 1e-6).contains(&upright), "{upright}");
    }
    for block in [0, 5] {
        let err = local(1.0, block).err().unwrap().to_string();
        assert!(err.contains("a block from 1 to 4"), "{err}");
    }
}

/// Scored by a scorer without embeddings, a K-shot candidate scores the mean of its drawings'
/// scores, and the choice follows it.
#[test]
fn k_shot_candidates_score_the_mean_of_their_drawings() {
    let s = store(SyntheticSpec::new(3, 6, 20), 8);
    let subset = Subset::all(&s);
    let trials =
        data::trials::sample_shot_trials(&s, &subset, Protocol::Random, 4, 3, 60, 2).unwrap();
    let mut coin = Coin;
    let results = evaluate(&mut coin, &s, &trials).unwrap();
    let mut misses = 0;
    for r in &results {
        assert_eq!(r.scores.len(), 4);
        for (score, drawings) in r.scores.iter().zip(r.trial.supports()) {
            let mean = drawings
                .iter()
                .map(|&d| Coin.similarity(r.trial.query, d))
                .sum::<f32>()
                / 3.0;
            assert!((score - mean).abs() <= 1e-6 * mean.abs(), "{score} {mean}");
        }
        assert_eq!(r.predicted, eval::evaluate::choose(&r.scores).0);
        misses += !r.correct as usize;
    }
    assert!(misses > 0, "a coin misses some 4-way trials");
    // The oracle is right on every K-shot trial, and the report says how many shots.
    let results = evaluate(&mut Oracle::default(), &s, &trials).unwrap();
    assert!(results.iter().all(|r| r.correct && !r.tied));
    let report = Report::new("oracle", "random", 4, "synthetic", Some(2), &s, &results);
    assert_eq!(report.shots, 3);
    assert!(
        report
            .to_markdown()
            .starts_with("oracle on synthetic (4-way 3-shot, random): 60 correct of 60"),
        "{}",
        report.to_markdown()
    );
    assert!(
        report
            .to_csv()
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("oracle,random,4,3,")
    );
}

#[test]
fn k_shot_sessions_refuse_one_shot_corrections() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "images_background", SyntheticSpec::new(2, 6, 6)).unwrap();
    let choice =
        eval::session::ScorerChoice::Baseline(eval::session::Baseline::Pixel, Framing::Canvas);
    let open = || {
        eval::session::Session::open(
            &choice,
            tmp.path(),
            data::SplitKind::Background,
            &model::Device::Cpu,
        )
        .unwrap()
    };
    let (report, results) = open()
        .sampled_shots(Protocol::WithinAlphabet, 5, 2, 12, 0)
        .unwrap();
    assert_eq!((report.shots, report.overall.total), (2, 12));
    assert!(results.iter().all(|r| r.trial.candidates.len() == 10));
    let msg = open()
        .with_hubness(0.25)
        .unwrap()
        .sampled_shots(Protocol::Random, 5, 2, 12, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("one-shot trials only"), "{msg}");
}

/// Scored by a network, a K-shot candidate scores the query against the mean of its drawings'
/// embeddings (its prototype); an ensemble scores the mean of its members' prototype logits.
#[test]
fn a_networks_k_shot_candidate_scores_its_prototype() {
    let s = store(SyntheticSpec::new(2, 5, 6), 16);
    let trials =
        data::trials::sample_shot_trials(&s, &Subset::all(&s), Protocol::Random, 3, 2, 12, 1)
            .unwrap();
    let (a, b) = (tiny_net(0), tiny_net(1));
    // Untrained heads' logits differ by about 1e-4 between drawings; scaled up, by tenths.
    for net in [&a, &b] {
        net.rescale_head(1000.0, -80.0).unwrap();
    }
    let prototype_scores = |net: &std::sync::Arc<model::SiameseNet>| {
        let head = net.head_host().unwrap();
        let embed = |id: ImageId| net.embed_images(&s.image_f32(id), 1).unwrap();
        trials
            .iter()
            .map(|t| {
                let query = embed(t.query);
                t.supports()
                    .map(|d| {
                        let (x, y) = (embed(d[0]), embed(d[1]));
                        let mean: Vec<f32> = x.iter().zip(&y).map(|(x, y)| (x + y) / 2.0).collect();
                        head.logit(&query, &mean)
                    })
                    .collect::<Vec<f32>>()
            })
            .collect::<Vec<_>>()
    };
    let (want_a, want_b) = (prototype_scores(&a), prototype_scores(&b));
    let mut one = eval::ModelScorer::new(a.clone(), 8).unwrap();
    let mut both = eval::EnsembleScorer::new(vec![
        eval::ModelScorer::new(a, 8).unwrap(),
        eval::ModelScorer::new(b, 8).unwrap(),
    ])
    .unwrap();
    let alone = evaluate(&mut one, &s, &trials).unwrap();
    let pair = evaluate(&mut both, &s, &trials).unwrap();
    let mut unlike_mean_logit = 0f32;
    for (i, (r, e)) in alone.iter().zip(&pair).enumerate() {
        for (c, d) in r.trial.supports().enumerate() {
            let mean = (want_a[i][c] + want_b[i][c]) / 2.0;
            assert!(
                (r.scores[c] - want_a[i][c]).abs() < 1e-3,
                "{:?} {:?}",
                r.scores,
                want_a[i]
            );
            assert!((e.scores[c] - mean).abs() < 1e-3, "{:?}", e.scores);
            let mean_logit =
                (one.similarity(r.trial.query, d[0]) + one.similarity(r.trial.query, d[1])) / 2.0;
            unlike_mean_logit = unlike_mean_logit.max((mean_logit - r.scores[c]).abs());
        }
        assert_eq!(r.predicted, eval::evaluate::choose(&r.scores).0);
    }
    // The other rule would fail the comparisons above.
    assert!(unlike_mean_logit > 1e-2, "{unlike_mean_logit}");
}
