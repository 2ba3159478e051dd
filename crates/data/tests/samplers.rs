//! Pair and trial samplers: invariants, balance and reproducibility.

use std::collections::HashSet;

use data::synthetic::{SyntheticSpec, store};
use data::trials::{sample_shot_trials, sample_trials};
use data::{AffineConfig, PairConfig, PairSampler, Protocol, Subset, ValidationConfig};

#[test]
fn validation_split_holds_out_alphabets_and_drawers() {
    let s = store(SyntheticSpec::new(6, 4, 20), 16);
    let cfg = ValidationConfig {
        alphabets: 2,
        train_drawers: (1..=12).collect(),
        ..Default::default()
    };
    let p = cfg.partition(&s).unwrap();
    let val = p.val.clone().unwrap();
    assert_eq!(p.train.characters.len(), 16);
    assert_eq!(val.characters.len(), 8);
    assert_eq!(p.val_alphabets.len(), 2);
    let train_alphabets: HashSet<u32> = p
        .train
        .characters
        .iter()
        .map(|&c| s.characters()[c as usize].alphabet)
        .collect();
    for &c in &val.characters {
        assert!(!train_alphabets.contains(&s.characters()[c as usize].alphabet));
        assert!(
            p.val_alphabets
                .contains(&s.alphabets()[s.characters()[c as usize].alphabet as usize].name)
        );
    }
    assert_eq!(val.drawers, (13..=20).collect::<Vec<u8>>());
    assert!(p.train.images(&s).iter().all(|&id| s.drawer_of(id) <= 12));
    // Same seed, same split; named alphabets override the count.
    assert_eq!(cfg.partition(&s).unwrap().val_alphabets, p.val_alphabets);
    let named = ValidationConfig {
        alphabet_names: vec!["Synthetic_03".into()],
        ..cfg.clone()
    };
    assert_eq!(
        named.partition(&s).unwrap().val_alphabets,
        vec!["Synthetic_03"]
    );
    let unknown = ValidationConfig {
        alphabet_names: vec!["Klingon".into()],
        ..cfg
    };
    let msg = unknown.partition(&s).unwrap_err().to_string();
    assert!(
        msg.contains("Klingon") && msg.contains("Synthetic_01"),
        "{msg}"
    );
}

#[test]
fn excluded_alphabets_leave_training_and_keep_validation() {
    let s = store(SyntheticSpec::new(6, 4, 20), 16);
    let alphabet_of = |c: u32| {
        s.alphabets()[s.characters()[c as usize].alphabet as usize]
            .name
            .clone()
    };
    let named = ValidationConfig {
        alphabet_names: vec!["Synthetic_03".into()],
        ..Default::default()
    };
    let full = named.partition(&s).unwrap();
    let fewer = ValidationConfig {
        exclude_alphabets: vec!["Synthetic_01".into(), "Synthetic_05".into()],
        ..named.clone()
    }
    .partition(&s)
    .unwrap();
    // Two of the five training alphabets gone; validation untouched.
    assert_eq!(full.train.characters.len(), 20);
    assert_eq!(fewer.train.characters.len(), 12);
    assert_eq!(
        fewer.val.as_ref().unwrap().characters,
        full.val.unwrap().characters
    );
    assert_eq!(fewer.val_alphabets, vec!["Synthetic_03"]);
    for &c in &fewer.train.characters {
        let name = alphabet_of(c);
        assert!(
            !["Synthetic_01", "Synthetic_03", "Synthetic_05"].contains(&name.as_str()),
            "{name}"
        );
    }

    // Held out by count: excluded alphabets are never drawn for validation, and an empty
    // exclusion list draws the split it drew before the option existed (checked against the
    // code before it).
    let counted = ValidationConfig {
        alphabets: 2,
        exclude_alphabets: vec!["Synthetic_02".into(), "Synthetic_04".into()],
        ..Default::default()
    };
    for seed in 0..8 {
        let p = ValidationConfig {
            seed,
            ..counted.clone()
        }
        .partition(&s)
        .unwrap();
        assert_eq!(p.val_alphabets.len(), 2);
        assert!(
            p.val_alphabets
                .iter()
                .all(|n| n != "Synthetic_02" && n != "Synthetic_04")
        );
        assert_eq!(p.train.characters.len(), 8);
    }
    let plain = ValidationConfig {
        alphabets: 2,
        ..Default::default()
    };
    assert_eq!(
        plain.partition(&s).unwrap().val_alphabets,
        vec!["Synthetic_01", "Synthetic_02"]
    );

    // Bad lists name the problem.
    let msg = ValidationConfig {
        exclude_alphabets: vec!["Klingon".into()],
        ..named.clone()
    }
    .partition(&s)
    .unwrap_err()
    .to_string();
    assert!(msg.contains("excluded alphabet `Klingon`"), "{msg}");
    let msg = ValidationConfig {
        exclude_alphabets: vec!["Synthetic_03".into()],
        ..named
    }
    .partition(&s)
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("`Synthetic_03` is both held out for validation and excluded"),
        "{msg}"
    );
    let msg = ValidationConfig {
        alphabets: 2,
        exclude_alphabets: (1..=4).map(|i| format!("Synthetic_{i:02}")).collect(),
        ..Default::default()
    }
    .partition(&s)
    .unwrap_err()
    .to_string();
    assert!(msg.contains("cannot hold out 2 of 2 alphabets"), "{msg}");
}

#[test]
fn drawer_only_validation_reuses_characters() {
    let s = store(SyntheticSpec::new(2, 3, 20), 8);
    let cfg = ValidationConfig {
        alphabets: 0,
        train_drawers: (1..=16).collect(),
        ..Default::default()
    };
    let p = cfg.partition(&s).unwrap();
    let val = p.val.unwrap();
    assert_eq!(val.characters, p.train.characters);
    assert_eq!(val.drawers, vec![17, 18, 19, 20]);
    assert!(
        ValidationConfig::none()
            .partition(&s)
            .unwrap()
            .val
            .is_none()
    );
}

#[test]
fn pairs_are_balanced_correct_and_reproducible() {
    let s = store(SyntheticSpec::new(3, 5, 6), 20);
    let subset = Subset::all(&s);
    let cfg = PairConfig {
        side: 20,
        augment: None,
        same_alphabet_negatives: 0.0,
    };
    let sampler = PairSampler::new(&s, &subset, cfg, 42).unwrap();
    let b = sampler.batch(3, 64);
    assert_eq!(b.left.len(), 64 * 400);
    assert_eq!(b.right.len(), 64 * 400);
    assert_eq!(b.labels.iter().filter(|&&l| l == 1.0).count(), 32);
    for i in 0..64 {
        let (l, r) = (b.left_ids[i], b.right_ids[i]);
        let same = s.character_of(l) == s.character_of(r);
        assert_eq!(same, b.labels[i] == 1.0);
        assert_ne!(l, r, "a positive pair uses two different drawings");
        assert_eq!(&b.left[i * 400..(i + 1) * 400], &s.image_f32(l)[..]);
    }
    let again = sampler.batch(3, 64);
    assert_eq!(again.left_ids, b.left_ids);
    assert_eq!(again.left, b.left);
    let other = sampler.batch(4, 64);
    assert_ne!(other.left_ids, b.left_ids);
}

#[test]
fn same_alphabet_negatives_fraction_is_respected() {
    let s = store(SyntheticSpec::new(10, 4, 4), 8);
    let subset = Subset::all(&s);
    let frac = |p: f32| {
        let cfg = PairConfig {
            side: 8,
            augment: None,
            same_alphabet_negatives: p,
        };
        let sampler = PairSampler::new(&s, &subset, cfg, 1).unwrap();
        let b = sampler.batch(0, 2000);
        let negatives: Vec<usize> = (0..2000).filter(|&i| b.labels[i] == 0.0).collect();
        negatives
            .iter()
            .filter(|&&i| s.alphabet_of(b.left_ids[i]) == s.alphabet_of(b.right_ids[i]))
            .count() as f64
            / negatives.len() as f64
    };
    assert_eq!(frac(1.0), 1.0);
    // Uniform negatives land in the same alphabet about 3/39 of the time.
    let uniform = frac(0.0);
    assert!(uniform < 0.15, "{uniform}");
    let half = frac(0.5);
    assert!((0.45..0.62).contains(&half), "{half}");
}

#[test]
fn augmentation_changes_images_and_resizes() {
    let s = store(SyntheticSpec::new(2, 3, 4), 105);
    let subset = Subset::all(&s);
    let cfg = PairConfig {
        side: 35,
        augment: Some(AffineConfig::koch()),
        same_alphabet_negatives: 0.0,
    };
    let sampler = PairSampler::new(&s, &subset, cfg, 9).unwrap();
    let b = sampler.batch(0, 8);
    assert_eq!(b.left.len(), 8 * 35 * 35);
    assert!(b.left.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(b.left.iter().sum::<f32>() > 0.0);
}

/// Checks every protocol rule on `trials` of `ways` candidates of `shots` drawings each, and
/// counts how often the answer sits at each position.
fn follows_the_protocol(
    s: &data::ImageStore,
    protocol: Protocol,
    trials: &[data::Trial],
    ways: usize,
    shots: usize,
) -> Vec<usize> {
    let mut positions = vec![0usize; ways];
    for t in trials {
        assert_eq!((t.shots, t.ways()), (shots, ways));
        assert_eq!(t.candidates.len(), ways * shots);
        let supports: Vec<&[u32]> = t.supports().collect();
        let chars: HashSet<u32> = supports.iter().map(|d| s.character_of(d[0])).collect();
        assert_eq!(chars.len(), ways, "distinct characters");
        let drawers: Vec<u8> = supports[0].iter().map(|&c| s.drawer_of(c)).collect();
        assert_eq!(drawers.iter().collect::<HashSet<_>>().len(), shots);
        assert!(!drawers.contains(&s.drawer_of(t.query)), "query by another");
        for d in &supports {
            let c = s.character_of(d[0]);
            assert!(d.iter().all(|&i| s.character_of(i) == c), "one character");
            let by: Vec<u8> = d.iter().map(|&i| s.drawer_of(i)).collect();
            assert_eq!(by, drawers, "the same drawers for every candidate");
        }
        assert_eq!(
            s.character_of(supports[t.answer][0]),
            s.character_of(t.query)
        );
        if protocol == Protocol::WithinAlphabet {
            let alphabets: HashSet<u32> = t.candidates.iter().map(|&c| s.alphabet_of(c)).collect();
            assert_eq!(alphabets.len(), 1);
        }
        positions[t.answer] += 1;
    }
    positions
}

#[test]
fn trials_follow_the_protocol() {
    let s = store(SyntheticSpec::new(4, 6, 20), 8);
    let subset = Subset::all(&s);
    for protocol in [Protocol::Random, Protocol::WithinAlphabet] {
        let trials = sample_trials(&s, &subset, protocol, 5, 2000, 3).unwrap();
        // The answer's position is uniform: each slot within 20% of 400.
        let positions = follows_the_protocol(&s, protocol, &trials, 5, 1);
        for p in &positions {
            assert!((320..480).contains(p), "{protocol}: {positions:?}");
        }
        // Reproducible, and a prefix of a longer run is the same trials.
        let again = sample_trials(&s, &subset, protocol, 5, 100, 3).unwrap();
        assert_eq!(&trials[..100], &again[..]);
    }
}

#[test]
fn splits_with_few_drawers_still_give_trials() {
    // Only 3 drawers: both drawers of every trial must be among them.
    let s = store(SyntheticSpec::new(2, 5, 3), 8);
    let subset = Subset::all(&s);
    assert_eq!(subset.drawers, vec![1, 2, 3]);
    let trials = sample_trials(&s, &subset, Protocol::WithinAlphabet, 5, 50, 0).unwrap();
    assert!(
        trials
            .iter()
            .all(|t| s.drawer_of(t.query) != s.drawer_of(t.candidates[0]))
    );
}

#[test]
fn too_many_ways_is_a_clear_error() {
    let s = store(SyntheticSpec::new(3, 4, 4), 8);
    let subset = Subset::all(&s);
    let msg = sample_trials(&s, &subset, Protocol::Random, 20, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("20-way") && msg.contains("only 12"), "{msg}");
    let msg = sample_trials(&s, &subset, Protocol::WithinAlphabet, 5, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("of one alphabet") && msg.contains("only 4"),
        "{msg}"
    );
}

#[test]
fn k_shot_trials_show_each_candidate_by_the_same_other_drawers() {
    let s = store(SyntheticSpec::new(4, 6, 20), 8);
    let subset = Subset::all(&s);
    for protocol in [Protocol::Random, Protocol::WithinAlphabet] {
        let trials = sample_shot_trials(&s, &subset, protocol, 5, 3, 1000, 3).unwrap();
        let positions = follows_the_protocol(&s, protocol, &trials, 5, 3);
        for p in &positions {
            assert!((150..250).contains(p), "{protocol}: {positions:?}");
        }
        // One shot is exactly the one-shot sampler.
        assert_eq!(
            sample_shot_trials(&s, &subset, protocol, 5, 1, 50, 3).unwrap(),
            sample_trials(&s, &subset, protocol, 5, 50, 3).unwrap()
        );
    }
}

#[test]
fn k_shot_trials_need_enough_drawers() {
    let s = store(SyntheticSpec::new(2, 5, 3), 8);
    let subset = Subset::all(&s);
    assert!(sample_shot_trials(&s, &subset, Protocol::Random, 5, 2, 10, 0).is_ok());
    let msg = sample_shot_trials(&s, &subset, Protocol::Random, 5, 3, 10, 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("3-shot trials need at least 4 drawers") && msg.contains("has 3"),
        "{msg}"
    );
    let msg = sample_shot_trials(&s, &subset, Protocol::Random, 5, 0, 10, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("at least 1 shot"), "{msg}");
}
