//! The committed model (`models/default.safetensors`) is the one its card describes, and it
//! still scores what the README reports. The card check needs nothing but the repository; the
//! figures need the real evaluation images and run when `OMNIGLOT_DIR` points at an extracted
//! dataset (CI sets it).

use std::path::{Path, PathBuf};

use eval::session::{ScorerChoice, Session};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> PathBuf {
    repository().join("models/default.safetensors")
}

/// The hash the model card gives, as its one backquoted run of 64 hex digits.
fn hash_on_the_card() -> String {
    let card = std::fs::read_to_string(repository().join("models/README.md")).unwrap();
    let hashes: Vec<&str> = card
        .split('`')
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    assert_eq!(hashes.len(), 1, "models/README.md names {hashes:?}");
    hashes[0].to_string()
}

#[test]
fn the_shipped_model_is_the_one_its_card_describes() {
    let path = shipped();
    assert_eq!(
        eval::report::sha256_file(&path).unwrap(),
        hash_on_the_card(),
        "models/default.safetensors changed: update the card, its figures and this hash together"
    );
    let (net, _) = model::io::load(&path, &model::Device::Cpu).unwrap();
    let arch = net.arch();
    assert_eq!(arch.name, "conv4-40x64_96_128_256blur-bn");
    assert_eq!(arch.input_side, 40);
    assert!(arch.blocks.iter().all(|b| b.pool && b.pool_blur));
    assert_eq!(arch.parameter_count().unwrap(), 464_033);
    assert_eq!(
        arch.framing,
        data::Framing::InkBox {
            fill: 0.8,
            min_side: 35,
            stroke: None,
            spread: None
        }
    );
}

/// The README's first row: Lake-style runs from `cargo xtask make-runs` (20 runs, seed 0),
/// 365 of 400 upright and 368 with the four paired turns, exactly (two paired turns give 365,
/// so the count tells four from two); the model it replaced scored 366 and 370.
#[test]
fn the_shipped_model_scores_its_reported_lake_runs() {
    let Some(root) = std::env::var_os("OMNIGLOT_DIR").map(PathBuf::from) else {
        eprintln!("OMNIGLOT_DIR not set: skipping real-data test");
        return;
    };
    let index = data::SplitIndex::scan_split(&root, data::SplitKind::Evaluation).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    data::runs::write_runs(&index, &runs, 20, 20, 0).unwrap();
    let choice = ScorerChoice::Checkpoint(shipped());
    for (turns, reported) in [(1, 365), (4, 368)] {
        let mut session = Session::for_runs(&choice, &model::Device::Cpu)
            .and_then(|s| s.with_turns(turns))
            .unwrap();
        let (report, _) = session.runs(&runs).unwrap();
        assert_eq!(report.overall.total, 400);
        assert_eq!(
            report.overall.correct, reported,
            "{turns} turn(s): correct of 400, against the README's figure"
        );
    }
}
