//! `Matcher`, the library form of `classify --query` and `verify`: its logits are the head on
//! the network's embeddings (averaged over paired turns), files are framed as the network was
//! trained, choices break ties to the first candidate, and bad input gets clear errors; and
//! `Matcher::recognize`, which labels queries by a gallery of labelled examples.

use std::path::Path;
use std::sync::Arc;

use data::Framing;
use data::synthetic::glyph;
use eval::{Gallery, Matcher};
use model::{Arch, Device, Init, SiameseNet};

const SIDE: usize = 16;

fn net(framing: Framing) -> Arc<SiameseNet> {
    let arch = Arch {
        framing,
        ..Arch::conv4(SIDE, 4)
    };
    let net = SiameseNet::new(&arch, Init::Default, 3, &Device::Cpu).unwrap();
    // An untrained head's logits differ by about 1e-4 between drawings; scaled up, they
    // differ by tenths, so comparisons at 1e-3 below can tell right from wrong.
    net.rescale_head(1000.0, -80.0).unwrap();
    Arc::new(net)
}

/// Drawer `drawer` of synthetic character `character`, at the network's side, in steps of
/// 1/255 (the matcher, like `eval`, holds images as bytes).
fn drawing(character: usize, drawer: u8) -> Vec<f32> {
    data::image_io::to_side(&glyph(5, 0, character, drawer), SIDE)
        .into_iter()
        .map(|v| (v * 255.0).round() / 255.0)
        .collect()
}

/// Two drawers of three characters.
fn drawings() -> Vec<Vec<f32>> {
    (0..3)
        .flat_map(|c| (1..=2).map(move |d| drawing(c, d)))
        .collect()
}

/// The head's logit of each pair, from embeddings computed here.
fn head_logits(net: &SiameseNet, query: &[f32], candidates: &[Vec<f32>]) -> Vec<f32> {
    let head = net.head_host().unwrap();
    let dim = net.arch().embedding_dim().unwrap();
    let mut pixels = query.to_vec();
    candidates.iter().for_each(|c| pixels.extend_from_slice(c));
    let e = net.embed_images(&pixels, 8).unwrap();
    (1..=candidates.len())
        .map(|i| head.logit(&e[..dim], &e[i * dim..(i + 1) * dim]))
        .collect()
}

/// The image turned by a quarter turn, by index arithmetic.
fn quarter_turn(pixels: &[f32]) -> Vec<f32> {
    (0..SIDE * SIDE)
        .map(|p| pixels[(p % SIDE) * SIDE + SIDE - 1 - p / SIDE])
        .collect()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
    }
}

#[test]
fn upright_logits_are_the_head_on_the_embeddings() {
    let net = net(Framing::Canvas);
    let images = drawings();
    let matcher = Matcher::new(net.clone());
    assert_eq!((matcher.turns(), matcher.input_side()), (1, SIDE));
    let logits = matcher.logits(&images[0], &images[1..]).unwrap();
    assert_close(&logits, &head_logits(&net, &images[0], &images[1..]));
    // Not all alike, or the comparison above would prove little.
    assert!(
        logits.iter().any(|&l| (l - logits[0]).abs() > 0.05),
        "{logits:?}"
    );
    assert!(matcher.logits(&images[0], &[]).unwrap().is_empty());
}

#[test]
fn paired_turns_average_the_logits_of_both_images_turned_alike() {
    let net = net(Framing::Canvas);
    let images = drawings();
    let matcher = Matcher::new(net.clone()).with_turns(4).unwrap();
    let mut expected = vec![0.0; images.len() - 1];
    let mut turned = images.clone();
    for _ in 0..4 {
        for (e, l) in expected
            .iter_mut()
            .zip(head_logits(&net, &turned[0], &turned[1..]))
        {
            *e += l / 4.0;
        }
        turned = turned.iter().map(|i| quarter_turn(i)).collect();
    }
    let logits = matcher.logits(&images[0], &images[1..]).unwrap();
    assert_close(&logits, &expected);
    let upright = Matcher::new(net).logits(&images[0], &images[1..]).unwrap();
    assert!(
        logits
            .iter()
            .zip(&upright)
            .any(|(a, b)| (a - b).abs() > 0.01),
        "{logits:?} vs {upright:?}"
    );
    assert!(matcher.name().unwrap().contains("4 paired turns"));
}

#[test]
fn files_are_framed_as_the_network_was_trained() {
    let dir = tempfile::tempdir().unwrap();
    let native = glyph(5, 1, 2, 7);
    let path = dir.path().join("drawing.png");
    std::fs::write(&path, data::image_io::encode_png(&native, 105)).unwrap();
    for framing in [Framing::Canvas, Framing::ink_box()] {
        let matcher = Matcher::new(net(framing));
        assert_eq!(
            matcher.load_image(&path).unwrap(),
            framing.apply(&native, SIDE),
            "{framing:?}"
        );
    }
    // The two framings give different inputs, so the check above tells them apart.
    assert_ne!(
        Framing::Canvas.apply(&native, SIDE),
        Framing::ink_box().apply(&native, SIDE)
    );
}

#[test]
fn the_choice_is_the_highest_logit_and_ties_go_to_the_first() {
    let matcher = Matcher::new(net(Framing::Canvas));
    let images = drawings();
    let candidates = images[1..].to_vec();
    let choice = matcher.classify(&images[0], &candidates).unwrap();
    let best = choice
        .logits
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(choice.logits[choice.index], best);
    assert!(choice.logits[..choice.index].iter().all(|&l| l < best));
    assert!(!choice.tied);
    // The same drawing twice, behind a worse one, ties and goes to the first of the two.
    let winner = candidates[choice.index].clone();
    let worst = (0..candidates.len())
        .min_by(|&a, &b| choice.logits[a].total_cmp(&choice.logits[b]))
        .unwrap();
    let tie = matcher
        .classify(
            &images[0],
            &[candidates[worst].clone(), winner.clone(), winner],
        )
        .unwrap();
    assert_eq!((tie.index, tie.tied), (1, true));
    assert_eq!(tie.logits[1], tie.logits[2]);
}

#[test]
fn the_same_probability_is_the_sigmoid_of_the_logit_either_way_round() {
    let matcher = Matcher::new(net(Framing::Canvas)).with_turns(2).unwrap();
    let images = drawings();
    let p = matcher.same_probability(&images[0], &images[3]).unwrap();
    let logit = matcher.logits(&images[0], &images[3..4]).unwrap()[0];
    assert!((p - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-6);
    let back = matcher.same_probability(&images[3], &images[0]).unwrap();
    assert!((p - back).abs() < 1e-6, "{p} vs {back}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let matcher = Matcher::new(net(Framing::Canvas));
    let images = drawings();
    let message = |e: eval::EvalError| e.to_string();

    let short = vec![0.0; 100];
    let err = message(
        matcher
            .logits(&images[0], &[images[1].clone(), short.clone()])
            .unwrap_err(),
    );
    assert!(
        err.contains("candidate 1 has 100 values; this network takes 16x16 = 256"),
        "{err}"
    );
    let err = message(matcher.logits(&short, &images[1..]).unwrap_err());
    assert!(err.starts_with("the query has 100 values"), "{err}");

    let err = message(matcher.classify(&images[0], &[]).unwrap_err());
    assert!(err.contains("at least one candidate"), "{err}");

    let err = message(matcher.clone().with_turns(3).err().unwrap());
    assert!(
        err.contains("paired turns must be 1, 2, 4 or 8, not 3"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.png");
    let err = matcher.load_image(&missing).unwrap_err();
    // The OS's reason is in the message once, not also a cause that chains print again.
    assert!(std::error::Error::source(&err).is_none());
    let err = message(err);
    assert!(
        err.starts_with("cannot read ") && err.contains("missing.png: "),
        "{err}"
    );
    assert!(err.len() > err.find("missing.png: ").unwrap() + 14, "{err}");
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let err = message(matcher.load_image(&corrupt).unwrap_err());
    assert!(err.contains("corrupt.png"), "{err}");

    let err = message(
        Matcher::open(Path::new("no/such/model.safetensors"), &Device::Cpu)
            .err()
            .unwrap(),
    );
    assert!(err.contains("no/such/model.safetensors"), "{err}");
}

#[test]
fn embeddings_are_what_the_head_compares() {
    let net = net(Framing::Canvas);
    let images = drawings();
    let matcher = Matcher::new(net.clone()).with_turns(4).unwrap();
    let embedded = matcher.embed(&images).unwrap();
    let dim = net.arch().embedding_dim().unwrap();
    assert_eq!(embedded.len(), images.len());
    assert!(embedded.iter().all(|e| e.len() == dim));
    // Upright whatever the matcher's turns: the head on two embeddings is the upright logit.
    let head = net.head_host().unwrap();
    let from_embeddings: Vec<f32> = embedded[1..]
        .iter()
        .map(|e| head.logit(&embedded[0], e))
        .collect();
    let upright = Matcher::new(net).logits(&images[0], &images[1..]).unwrap();
    assert_close(&from_embeddings, &upright);
    assert!(matcher.embed(&[]).unwrap().is_empty());
    let err = matcher
        .embed(&[images[0].clone(), vec![1.0; 3]])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("image 1 has 3 values"), "{err}");
}

#[test]
fn a_local_match_adds_its_weighted_similarity_to_each_logit() {
    use eval::local::{LocalMatch, descriptors, similarity};
    let net = net(Framing::Canvas);
    let images = drawings();
    let local = LocalMatch {
        block: 2,
        weight: 3.0,
    };
    let matcher = Matcher::new(net.clone())
        .with_local_match(Some(local))
        .unwrap();
    let logits = matcher.logits(&images[0], &images[1..]).unwrap();
    let (maps, shape) = net.feature_maps(&images.concat(), 2, 8).unwrap();
    let len = shape.iter().product::<usize>();
    let unit = |k: usize| descriptors(&maps[k * len..(k + 1) * len], shape);
    let expected: Vec<f32> = head_logits(&net, &images[0], &images[1..])
        .iter()
        .enumerate()
        .map(|(j, h)| h + 3.0 * similarity(&unit(0), &unit(j + 1), shape[0]))
        .collect();
    assert_close(&logits, &expected);
    assert!(
        matcher
            .name()
            .unwrap()
            .contains("local match on block 2 x 3")
    );
    let bad = LocalMatch {
        block: 9,
        weight: 1.0,
    };
    let err = Matcher::new(net).with_local_match(Some(bad)).err().unwrap();
    assert!(err.to_string().contains("not block 9"), "{err}");
}

// `Matcher::recognize`: each query's label is the one whose examples it matches best, each
// label's score the query's logit against the mean of its examples' embeddings in each pair
// view (with one example, exactly the matcher's pair logit), ties go to the earlier label,
// and queries come back in order however many steps they take.

#[test]
fn one_example_per_label_scores_as_a_one_shot_trial() {
    for turns in [1, 4] {
        let matcher = Matcher::new(net(Framing::Canvas))
            .with_turns(turns)
            .unwrap();
        let mut gallery = Gallery::new();
        let examples: Vec<Vec<f32>> = (0..4).map(|c| drawing(c, 1)).collect();
        for (c, e) in examples.iter().enumerate() {
            gallery.add(&format!("char{c}"), e.clone());
        }
        let queries: Vec<Vec<f32>> = (0..4).map(|c| drawing(c, 2)).collect();
        let found = matcher.recognize(&gallery, &queries, |_| {}).unwrap();
        assert_eq!(found.len(), 4);
        for (q, r) in queries.iter().zip(&found) {
            let choice = matcher.classify(q, &examples).unwrap();
            assert_close(&r.scores, &choice.logits);
            assert_eq!((r.best, r.tied), (choice.index, choice.tied));
            let ranking = r.ranking();
            assert_eq!(ranking[0], r.best);
            assert!(ranking.windows(2).all(|w| r.scores[w[0]] >= r.scores[w[1]]));
            let margin = r.margin().unwrap();
            assert!((margin - (r.scores[ranking[0]] - r.scores[ranking[1]])).abs() < 1e-6);
            assert!(margin >= 0.0);
        }
        // Not every query lands on one label, or the comparisons above would prove little.
        assert!(
            found.iter().any(|r| r.best != found[0].best),
            "{:?}",
            found.iter().map(|r| r.best).collect::<Vec<_>>()
        );
    }
}

#[test]
fn several_examples_of_a_label_make_a_prototype_and_labels_keep_their_first_order() {
    let matcher = Matcher::new(net(Framing::Canvas)).with_turns(2).unwrap();
    let mut gallery = Gallery::new();
    // "b" is added first, then "a" twice around another "b".
    gallery.add("b", drawing(1, 1));
    gallery.add("a", drawing(0, 1));
    gallery.add("b", drawing(1, 3));
    gallery.add("a", drawing(0, 4));
    assert_eq!(gallery.labels(), ["b", "a"]);
    assert_eq!(
        (gallery.examples(), gallery.shots(0), gallery.shots(1)),
        (4, 2, 2)
    );
    let query = drawing(0, 2);
    let found = matcher
        .recognize(&gallery, std::slice::from_ref(&query), |_| {})
        .unwrap();
    // By hand: the two paired turns are the drawing and its half turn (the pixels in reverse
    // order); in each, the query against the mean of the label's two embeddings.
    let head = matcher.model().head_host().unwrap();
    let in_turn = |image: &[f32], turn: usize| -> Vec<f32> {
        let mut turned = image.to_vec();
        if turn == 1 {
            turned.reverse();
        }
        matcher.embed(&[turned]).unwrap().remove(0)
    };
    let prototype_logit = |a: &[f32], b: &[f32]| {
        let sum: f32 = (0..2)
            .map(|turn| {
                let (ea, eb) = (in_turn(a, turn), in_turn(b, turn));
                let mean: Vec<f32> = ea.iter().zip(&eb).map(|(x, y)| (x + y) / 2.0).collect();
                head.logit(&in_turn(&query, turn), &mean)
            })
            .sum();
        sum / 2.0
    };
    let want = [
        prototype_logit(&drawing(1, 1), &drawing(1, 3)),
        prototype_logit(&drawing(0, 1), &drawing(0, 4)),
    ];
    assert_close(&found[0].scores, &want);
    // Not the mean of the logits, which the test would otherwise not tell apart.
    let logits = matcher
        .logits(
            &query,
            &[drawing(1, 1), drawing(0, 1), drawing(1, 3), drawing(0, 4)],
        )
        .unwrap();
    let mean_logit = (logits[0] + logits[2]) / 2.0;
    assert!((mean_logit - want[0]).abs() > 5e-3, "{mean_logit} {want:?}");
    let mut one = Gallery::new();
    one.add("only", drawing(2, 1));
    let alone = matcher.recognize(&one, &[query], |_| {}).unwrap();
    assert_eq!((alone[0].best, alone[0].margin()), (0, None));
}

#[test]
fn a_tie_goes_to_the_earlier_label() {
    let matcher = Matcher::new(net(Framing::Canvas));
    let mut gallery = Gallery::new();
    // The drawings the untrained network finds most and least like the query: the most alike
    // goes in twice, behind the least alike, so the top score is shared by labels 1 and 2.
    let query = drawing(3, 1);
    let others: Vec<Vec<f32>> = (0..3).map(|c| drawing(c, 5)).collect();
    let logits = matcher.logits(&query, &others).unwrap();
    let order = |a: &usize, b: &usize| logits[*a].total_cmp(&logits[*b]);
    let (most, least) = ((0..3).max_by(order).unwrap(), (0..3).min_by(order).unwrap());
    assert!(logits[least] < logits[most], "{logits:?}");
    gallery.add("worse", others[least].clone());
    gallery.add("first", others[most].clone());
    gallery.add("second", others[most].clone());
    let found = matcher.recognize(&gallery, &[query], |_| {}).unwrap();
    let r = &found[0];
    assert_eq!(r.scores[1], r.scores[2]);
    assert!(r.scores[0] < r.scores[1], "{:?}", r.scores);
    assert_eq!((r.best, r.tied, r.ranking()), (1, true, vec![1, 2, 0]));
    assert_eq!(r.margin(), Some(0.0));
}

#[test]
fn queries_come_back_in_order_across_steps_with_progress() {
    let matcher = Matcher::new(net(Framing::Canvas));
    let mut gallery = Gallery::new();
    (0..3).for_each(|c| gallery.add(&c.to_string(), drawing(c, 1)));
    // More queries than one step embeds, each character's drawers in turn.
    let queries: Vec<Vec<f32>> = (0..300)
        .map(|i| drawing(i % 3, 2 + (i % 17) as u8))
        .collect();
    let mut steps = Vec::new();
    let found = matcher
        .recognize(&gallery, &queries, |done| steps.push(done))
        .unwrap();
    assert_eq!(steps, [256, 300]);
    for i in [0, 1, 2, 255, 256, 299] {
        let alone = matcher
            .recognize(&gallery, std::slice::from_ref(&queries[i]), |_| {})
            .unwrap();
        assert_close(&found[i].scores, &alone[0].scores);
    }
    assert!(matcher.recognize(&gallery, &[], |_| {}).unwrap().is_empty());
}

#[test]
fn bad_galleries_and_images_are_refused_with_a_reason() {
    let matcher = Matcher::new(net(Framing::Canvas));
    let err = matcher
        .recognize(&Gallery::new(), &[drawing(0, 1)], |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("the gallery has no examples"), "{err}");
    let mut gallery = Gallery::new();
    gallery.add("ok", drawing(0, 1));
    gallery.add("small", vec![0.0; 100]);
    let err = matcher
        .recognize(&gallery, &[drawing(0, 2)], |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gallery example 1 (label small) has 100 values; this network takes 16x16"),
        "{err}"
    );
    gallery = Gallery::new();
    gallery.add("ok", drawing(0, 1));
    let err = matcher
        .recognize(&gallery, &[drawing(0, 2), vec![1.0; 5]], |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("query 1 has 5 values"), "{err}");
}

/// `verify --explain`: each pixel's heat is the logit lost when the patches over it are
/// blanked, paper gets none, and the pair's own logit is the matcher's.
#[test]
fn occlusion_maps_are_the_logit_lost_by_blanking_ink() {
    use eval::explain::Occlusion;
    let matcher = Matcher::new(net(Framing::Canvas)).with_turns(4).unwrap();
    let (a, b) = (drawing(0, 1), drawing(0, 2));
    let occlusion = Occlusion {
        patch: 4,
        stride: 4,
    };
    let e = matcher.explain_pair(&a, &b, occlusion).unwrap();
    assert_eq!(e.side, SIDE);
    assert_eq!(
        e.logit,
        matcher.logits(&a, std::slice::from_ref(&b)).unwrap()[0]
    );
    // Patches of 4 every 4 on a 16 px side do not overlap: each inked pixel's heat is the
    // logit lost by blanking its own patch, which is scored here by hand.
    let blank = |image: &[f32], y0: usize, x0: usize| {
        let mut copy = image.to_vec();
        for y in y0..y0 + 4 {
            copy[y * SIDE + x0..y * SIDE + x0 + 4].fill(0.0);
        }
        copy
    };
    let base_a = matcher.logits(&b, std::slice::from_ref(&a)).unwrap()[0];
    let mut checked = 0;
    for p in 0..SIDE * SIDE {
        if a[p] == 0.0 {
            assert_eq!(e.heat_a[p], 0.0, "paper at {p} has heat");
            continue;
        }
        let (y0, x0) = (p / SIDE / 4 * 4, p % SIDE / 4 * 4);
        let lost = base_a - matcher.logits(&b, &[blank(&a, y0, x0)]).unwrap()[0];
        assert!(
            (e.heat_a[p] - lost).abs() < 1e-4,
            "{} vs {lost}",
            e.heat_a[p]
        );
        checked += 1;
    }
    assert!(checked > 10, "the drawing has ink");
    assert!(e.scale() > 0.0, "blanking ink changed nothing");
    assert!(b.iter().zip(&e.heat_b).all(|(v, h)| *v > 0.0 || *h == 0.0));
    // A patch that does not fit, or no stride, is refused by name.
    for bad in [
        Occlusion {
            patch: 0,
            stride: 1,
        },
        Occlusion {
            patch: SIDE + 1,
            stride: 1,
        },
        Occlusion {
            patch: 4,
            stride: 0,
        },
    ] {
        let err = matcher.explain_pair(&a, &b, bad).unwrap_err().to_string();
        assert!(err.contains("occlusion patch must be 1-16 pixels"), "{err}");
    }
}
