//! `checkpoint::seen_alphabets`: which scored alphabets a model was trained on, read from the
//! validation partition saved in its file, so that `eval` can flag figures that measure memory.

use std::path::{Path, PathBuf};

use data::store::StoreBuilder;
use data::{ImageStore, SplitKind, ValidationConfig};
use eval::session::{Baseline, ScorerChoice};
use model::{Arch, Init, SiameseNet};
use train::TrainConfig;
use train::checkpoint::{SeenAlphabets, TrainState, save_checkpoint, seen_alphabets};

/// Alphabets A, B and C of two characters by two drawers each.
fn store() -> ImageStore {
    let mut b = StoreBuilder::new(4);
    for alphabet in ["A", "B", "C"] {
        let a = b.alphabet(alphabet);
        for character in ["one", "two"] {
            let c = b.character(a, character);
            for drawer in [1, 2] {
                b.push(c, drawer, &[0.0; 16], None);
            }
        }
    }
    b.finish()
}

/// A model file whose training held out `held_out` (by name; none: trained on all).
fn model(dir: &Path, name: &str, held_out: &[&str]) -> PathBuf {
    let arch = Arch::conv4(16, 4);
    let net = SiameseNet::new(&arch, Init::Default, 0, &candle_core::Device::Cpu).unwrap();
    let config = TrainConfig {
        arch,
        validation: ValidationConfig {
            alphabets: 0,
            alphabet_names: held_out.iter().map(|s| s.to_string()).collect(),
            ..ValidationConfig::default()
        },
        ..TrainConfig::default()
    };
    let path = dir.join(name);
    save_checkpoint(&path, &net, None, &TrainState::default(), &config).unwrap();
    path
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_alphabets_a_model_trained_on_are_named_with_the_ones_it_held_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let all = names(&["A", "B", "C"]);
    let held_b = ScorerChoice::Checkpoint(model(dir.path(), "b.safetensors", &["B"]));

    let seen = seen_alphabets(&held_b, &store, SplitKind::Background, &all);
    assert_eq!(
        seen,
        Some(SeenAlphabets {
            seen: names(&["A", "C"]),
            scored: 3,
            held_out: names(&["B"]),
        })
    );
    let text = seen.unwrap().to_string();
    assert!(
        text.starts_with("the model was trained on 2 of the 3 alphabets scored here (A, C)"),
        "{text}"
    );
    assert!(text.ends_with("--alphabets B"), "{text}");

    // Only the held-out alphabet, the evaluation split or a baseline: nothing seen.
    let only_b = names(&["B"]);
    assert_eq!(
        seen_alphabets(&held_b, &store, SplitKind::Background, &only_b),
        None
    );
    assert_eq!(
        seen_alphabets(&held_b, &store, SplitKind::Evaluation, &all),
        None
    );
    let mhd = ScorerChoice::Baseline(Baseline::Mhd, data::Framing::Canvas);
    assert_eq!(
        seen_alphabets(&mhd, &store, SplitKind::Background, &all),
        None
    );

    // A model refit on everything says so.
    let refit = ScorerChoice::Checkpoint(model(dir.path(), "all.safetensors", &[]));
    let seen = seen_alphabets(&refit, &store, SplitKind::Background, &only_b).unwrap();
    assert_eq!((seen.seen, seen.held_out), (names(&["B"]), vec![]));
}

#[test]
fn an_ensemble_holds_out_only_what_every_member_held_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let all = names(&["A", "B", "C"]);
    let members = vec![
        model(dir.path(), "b.safetensors", &["B"]),
        model(dir.path(), "bc.safetensors", &["B", "C"]),
    ];
    let seen = seen_alphabets(
        &ScorerChoice::Ensemble(members),
        &store,
        SplitKind::Background,
        &all,
    )
    .unwrap();
    // The first member trained on C, so only B is unseen by both.
    assert_eq!(seen.seen, names(&["A", "C"]));
    assert_eq!(seen.held_out, names(&["B"]));
}

#[test]
fn a_file_without_a_readable_training_config_or_from_other_data_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let all = names(&["A", "B", "C"]);
    let bare = dir.path().join("bare.safetensors");
    let net = SiameseNet::new(
        &Arch::conv4(16, 4),
        Init::Default,
        0,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    model::io::save(&net, &bare, &Default::default()).unwrap();
    let choice = ScorerChoice::Checkpoint(bare);
    assert_eq!(
        seen_alphabets(&choice, &store, SplitKind::Background, &all),
        None
    );
    // A config that no longer parses says nothing either, and stops nothing.
    let garbled = dir.path().join("garbled.safetensors");
    let mut extras = model::io::Extras::default();
    extras
        .metadata
        .insert("config".into(), "epochs = [not toml".into());
    model::io::save(&net, &garbled, &extras).unwrap();
    assert_eq!(
        seen_alphabets(
            &ScorerChoice::Checkpoint(garbled),
            &store,
            SplitKind::Background,
            &all
        ),
        None
    );
    // Held out an alphabet this store does not have: trained on other data.
    let other = ScorerChoice::Checkpoint(model(dir.path(), "z.safetensors", &["Z"]));
    assert_eq!(
        seen_alphabets(&other, &store, SplitKind::Background, &all),
        None
    );
}
