//! Indexing, loading and validating split folders, on generated Omniglot-layout trees.

use std::fs;

use data::synthetic::{SyntheticSpec, write_split};
use data::{DataError, ImageStore, SplitIndex, SplitKind};

fn tree(spec: SyntheticSpec) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let split = write_split(dir.path(), "images_background", spec).unwrap();
    (dir, split)
}

#[test]
fn scan_finds_alphabets_characters_and_drawers() {
    let (_tmp, split) = tree(SyntheticSpec::new(3, 4, 5));
    let index = SplitIndex::scan(&split).unwrap();
    assert_eq!(index.alphabets.len(), 3);
    assert_eq!(index.num_characters(), 12);
    assert_eq!(index.num_drawings(), 60);
    let c = &index.alphabets[1].characters[2];
    assert_eq!(c.name, "character03");
    let drawers: Vec<u8> = c.drawings.iter().map(|d| d.drawer).collect();
    assert_eq!(drawers, vec![1, 2, 3, 4, 5]);
    // Character codes run across the split: alphabet 2, character 3 is the 7th.
    assert!(c.drawings[0].path.ends_with("0007_01.png"));
}

#[test]
fn completeness_reports_counts_and_missing_drawers() {
    let (_tmp, split) = tree(SyntheticSpec::new(2, 2, 20));
    fs::remove_file(split.join("Synthetic_02/character01/0003_07.png")).unwrap();
    let index = SplitIndex::scan(&split).unwrap();
    let problems = index.completeness_problems(SplitKind::Background);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("2 alphabets, expected 30"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("4 characters, expected 964"))
    );
    let missing = problems
        .iter()
        .find(|p| p.contains("Synthetic_02/character01"))
        .expect("missing drawer reported");
    assert!(missing.contains("19 drawings") && missing.contains("missing drawers 07"));
}

#[test]
fn missing_dataset_names_the_download_command() {
    let err = SplitIndex::scan("/definitely/not/here").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::MissingDataset { .. }));
    assert!(msg.contains("cargo xtask download"), "{msg}");
}

#[test]
fn unexpected_files_are_named() {
    let (_tmp, split) = tree(SyntheticSpec::new(1, 2, 3));
    let stray = split.join("Synthetic_01/character01/notes.txt");
    fs::write(&stray, "hello").unwrap();
    let msg = SplitIndex::scan(&split).unwrap_err().to_string();
    assert!(
        msg.contains("notes.txt") && msg.contains("expected a PNG"),
        "{msg}"
    );
    fs::remove_file(&stray).unwrap();

    let bad_drawer = split.join("Synthetic_01/character01/0001_33.png");
    fs::write(&bad_drawer, "x").unwrap();
    let msg = SplitIndex::scan(&split).unwrap_err().to_string();
    assert!(
        msg.contains("0001_33.png") && msg.contains("drawer"),
        "{msg}"
    );
    fs::remove_file(&bad_drawer).unwrap();

    fs::create_dir(split.join("Synthetic_01/character09")).unwrap();
    let msg = SplitIndex::scan(&split).unwrap_err().to_string();
    assert!(
        msg.contains("character09") && msg.contains("no drawings"),
        "{msg}"
    );
}

#[test]
fn hidden_files_are_ignored() {
    let (_tmp, split) = tree(SyntheticSpec::new(1, 2, 3));
    fs::write(split.join(".DS_Store"), "junk").unwrap();
    fs::write(split.join("Synthetic_01/character01/.DS_Store"), "junk").unwrap();
    assert_eq!(SplitIndex::scan(&split).unwrap().num_drawings(), 6);
}

#[test]
fn corrupt_and_wrong_size_pngs_are_named_on_load() {
    let (_tmp, split) = tree(SyntheticSpec::new(1, 2, 3));
    let victim = split.join("Synthetic_01/character02/0002_02.png");
    fs::write(&victim, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let index = SplitIndex::scan(&split).unwrap();
    let msg = ImageStore::load(&index, 28).unwrap_err().to_string();
    assert!(
        msg.contains("0002_02.png") && msg.contains("decode"),
        "{msg}"
    );

    let small = data::image_io::encode_png(&vec![0.0; 50 * 50], 50);
    fs::write(&victim, small).unwrap();
    let msg = ImageStore::load(&index, 28).unwrap_err().to_string();
    assert!(
        msg.contains("0002_02.png") && msg.contains("50x50, expected 105x105"),
        "{msg}"
    );
}

#[test]
fn load_decodes_ink_and_keeps_metadata() {
    let spec = SyntheticSpec::new(2, 3, 4);
    let (_tmp, split) = tree(spec);
    let index = SplitIndex::scan(&split).unwrap();
    let store = ImageStore::load(&index, 105).unwrap();
    assert_eq!(store.len(), 24);
    assert_eq!(store.side(), 105);
    let id = store.image_of(4, 3).unwrap(); // alphabet 2, character 2, drawer 3
    assert_eq!(store.drawer_of(id), 3);
    assert_eq!(store.alphabet_of(id), 1);
    assert_eq!(store.describe(id), "Synthetic_02/character02/drawer03");
    let expected = data::synthetic::glyph(0, 1, 1, 3);
    assert_eq!(store.image_f32(id), expected);
    assert!(store.path_of(id).unwrap().ends_with("0005_03.png"));

    // At 28x28 the ink is area-averaged, so total ink scales with the area.
    let small = ImageStore::load(&index, 28).unwrap();
    let ink105: f32 = expected.iter().sum();
    let ink28: f32 = small.image_f32(id).iter().sum();
    let ratio = ink28 / ink105;
    let area = (28.0 * 28.0) / (105.0 * 105.0);
    assert!((ratio / area - 1.0).abs() < 0.02, "{ratio} vs {area}");
}

#[test]
fn framed_load_frames_every_drawing_and_remembers_how() {
    let spec = SyntheticSpec::new(2, 3, 4);
    let (_tmp, split) = tree(spec);
    let index = SplitIndex::scan(&split).unwrap();
    let framing = data::Framing::ink_box();
    let store = ImageStore::load_framed(&index, 40, framing).unwrap();
    assert_eq!(store.framing(), framing);
    assert_eq!(
        ImageStore::load(&index, 40).unwrap().framing(),
        data::Framing::Canvas
    );
    let id = store.image_of(4, 3).unwrap();
    let native = data::synthetic::glyph(0, 1, 1, 3);
    let expected = framing.apply(&native, 40);
    for (got, want) in store.image_f32(id).iter().zip(&expected) {
        // The store keeps one byte per pixel.
        assert!((got - want).abs() <= 0.5 / 255.0 + 1e-6, "{got} vs {want}");
    }
    // The ink's box spans its share of the window, now 40 px wide.
    let longer_of = |img: &[f32], side| {
        let (x0, y0, x1, y1) = data::framing::ink_extent(img, side).unwrap();
        (x1 - x0 + 1).max(y1 - y0 + 1) as f32
    };
    let (_, _, window) = framing.window(&native);
    let want = longer_of(&native, 105) * 40.0 / window as f32;
    let got = longer_of(&expected, 40);
    assert!((got - want).abs() <= 2.0, "{got} vs {want}");

    let bad = data::Framing::InkBox {
        fill: 1.5,
        min_side: 10,
        stroke: None,
        spread: None,
    };
    let msg = ImageStore::load_framed(&index, 40, bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("fill"), "{msg}");
}

#[test]
fn in_memory_store_matches_store_loaded_from_disk() {
    let spec = SyntheticSpec::new(2, 2, 3);
    let (_tmp, split) = tree(spec);
    let from_disk = ImageStore::load(&SplitIndex::scan(&split).unwrap(), 32).unwrap();
    let in_memory = data::synthetic::store(spec, 32);
    assert_eq!(from_disk.len(), in_memory.len());
    for id in 0..from_disk.len() as u32 {
        assert_eq!(from_disk.pixels(id), in_memory.pixels(id));
    }
}
