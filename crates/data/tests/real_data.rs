//! Tests on the real Omniglot images. They run when `OMNIGLOT_DIR` points at an extracted
//! dataset (the folder holding `images_background/` and `images_evaluation/`); CI sets it.

use data::{ImageStore, SplitIndex, SplitKind, Subset};

fn dataset() -> Option<std::path::PathBuf> {
    match std::env::var_os("OMNIGLOT_DIR") {
        Some(d) => Some(d.into()),
        None => {
            eprintln!("OMNIGLOT_DIR not set: skipping real-data test");
            None
        }
    }
}

#[test]
fn real_splits_are_complete_and_load() {
    let Some(root) = dataset() else { return };
    for kind in SplitKind::ALL {
        let index = SplitIndex::scan_split(&root, kind).unwrap();
        assert!(index.completeness_problems(kind).is_empty());
        let store = ImageStore::load(&index, 28).unwrap();
        let (_, characters) = kind.expected_counts();
        assert_eq!(store.len(), characters * 20);
        // The hard validation split names real background alphabets that can host 20-way
        // within-alphabet trials.
        if kind == SplitKind::Background {
            for name in data::split::STRATIFIED_VALIDATION {
                let alphabet = store.alphabets().iter().find(|a| a.name == name);
                let alphabet =
                    alphabet.unwrap_or_else(|| panic!("{name} is not in images_background"));
                assert!(alphabet.characters.len() >= 20, "{name}");
            }
        }
        // Every drawing has some ink and lots of background.
        for id in (0..store.len() as u32).step_by(97) {
            let ink: f32 = store.image_f32(id).iter().sum();
            assert!(
                ink > 5.0 && ink < 400.0,
                "{}: ink {ink}",
                store.describe(id)
            );
        }
        let trials = data::trials::sample_trials(
            &store,
            &Subset::all(&store),
            data::Protocol::WithinAlphabet,
            20,
            50,
            0,
        )
        .unwrap();
        assert_eq!(trials.len(), 50);
        // 20-way 10-shot within one alphabet: 11 of the 20 drawers in each trial, the query's
        // not among the candidates'.
        let trials = data::trials::sample_shot_trials(
            &store,
            &Subset::all(&store),
            data::Protocol::WithinAlphabet,
            20,
            10,
            50,
            0,
        )
        .unwrap();
        for t in &trials {
            assert_eq!((t.ways(), t.candidates.len()), (20, 200));
            let query_drawer = store.drawer_of(t.query);
            assert!(
                t.candidates
                    .iter()
                    .all(|&c| store.drawer_of(c) != query_drawer)
            );
        }
    }
}

/// A user's copy of an Omniglot file (`recognize`, `verify`, `classify --query`, `embed`) is
/// the drawing `eval` sees: binarised as is, its pen inside the range left alone.
#[test]
fn evaluation_files_load_as_user_images_exactly_as_the_store_reads_them() {
    let Some(root) = dataset() else { return };
    let index = SplitIndex::scan_split(&root, SplitKind::Evaluation).unwrap();
    for (_, _, drawing) in index.drawings().step_by(13) {
        let stored = data::image_io::read_omniglot_png(&drawing.path).unwrap();
        let user = data::image_io::load_user_image(
            &drawing.path,
            data::NATIVE_SIDE,
            data::framing::Framing::Canvas,
        )
        .unwrap();
        assert!(stored == user, "{}", drawing.path.display());
    }
}
