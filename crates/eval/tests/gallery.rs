//! `Matcher::recognize`: each query's label is the one whose examples it matches best, each
//! label's score the mean of the query's logits against its examples (exactly the matcher's
//! pair logits), ties go to the earlier label, and queries come back in order however many
//! steps they take.

use std::sync::Arc;

use data::synthetic::glyph;
use eval::{Gallery, Matcher};
use model::{Arch, Device, Init, SiameseNet};

const SIDE: usize = 16;

fn matcher(turns: usize) -> Matcher {
    let net = SiameseNet::new(&Arch::conv4(SIDE, 4), Init::Default, 3, &Device::Cpu).unwrap();
    // An untrained head's logits differ by about 1e-4 between drawings; scaled up they differ
    // by tenths, so the comparisons at 1e-3 below can tell right from wrong.
    net.rescale_head(1000.0, -80.0).unwrap();
    Matcher::new(Arc::new(net)).with_turns(turns).unwrap()
}

/// Drawer `drawer` of synthetic character `character`, at the network's side, in steps of
/// 1/255 (the matcher holds images as bytes).
fn drawing(character: usize, drawer: u8) -> Vec<f32> {
    data::image_io::to_side(&glyph(5, 0, character, drawer), SIDE)
        .into_iter()
        .map(|v| (v * 255.0).round() / 255.0)
        .collect()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
    }
}

#[test]
fn one_example_per_label_scores_as_a_one_shot_trial() {
    for turns in [1, 4] {
        let matcher = matcher(turns);
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
fn several_examples_of_a_label_are_averaged_and_labels_keep_their_first_order() {
    let matcher = matcher(2);
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
    let logits = matcher
        .logits(
            &query,
            &[drawing(1, 1), drawing(0, 1), drawing(1, 3), drawing(0, 4)],
        )
        .unwrap();
    let found = matcher
        .recognize(&gallery, std::slice::from_ref(&query), |_| {})
        .unwrap();
    assert_close(
        &found[0].scores,
        &[(logits[0] + logits[2]) / 2.0, (logits[1] + logits[3]) / 2.0],
    );
    let mut one = Gallery::new();
    one.add("only", drawing(2, 1));
    let alone = matcher.recognize(&one, &[query], |_| {}).unwrap();
    assert_eq!((alone[0].best, alone[0].margin()), (0, None));
}

#[test]
fn a_tie_goes_to_the_earlier_label() {
    let matcher = matcher(1);
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
    let matcher = matcher(1);
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
    let matcher = matcher(1);
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
