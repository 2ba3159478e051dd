//! Lake's runs layout: writing runs from a split and reading them back.

use std::fs;

use data::SplitIndex;
use data::runs::{read_runs, write_runs};
use data::synthetic::{SyntheticSpec, write_split};

#[test]
fn written_runs_read_back_with_correct_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let split = write_split(tmp.path(), "images_evaluation", SyntheticSpec::new(3, 6, 4)).unwrap();
    let index = SplitIndex::scan(&split).unwrap();
    let dest = tmp.path().join("runs");
    write_runs(&index, &dest, 4, 5, 11).unwrap();
    let runs = read_runs(&dest).unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0].name, "run01");
    for run in &runs {
        assert_eq!(run.candidates.len(), 5);
        assert_eq!(run.items.len(), 5);
        for (query, answer) in &run.items {
            // The copied files are the original drawings: same character code, other drawer.
            let q = fs::read(query).unwrap();
            let a = fs::read(&run.candidates[*answer]).unwrap();
            let code = |bytes: &[u8]| {
                index
                    .drawings()
                    .find(|(_, _, d)| fs::read(&d.path).unwrap() == bytes)
                    .map(|(a, c, d)| (a, c, d.drawer))
                    .unwrap()
            };
            let (qa, qc, qd) = code(&q);
            let (aa, ac, ad) = code(&a);
            assert_eq!((qa, qc), (aa, ac));
            assert_ne!(qd, ad);
        }
    }
    // Refuses to overwrite.
    assert!(write_runs(&index, &dest, 1, 5, 0).is_err());
}

#[test]
fn malformed_class_labels_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let split = write_split(tmp.path(), "images_evaluation", SyntheticSpec::new(1, 3, 2)).unwrap();
    let index = SplitIndex::scan(&split).unwrap();
    let dest = tmp.path().join("runs");
    write_runs(&index, &dest, 1, 3, 0).unwrap();
    let labels = dest.join("run01/class_labels.txt");
    let text = fs::read_to_string(&labels).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = "run01/test/item02.png".into();
    fs::write(&labels, lines.join("\n")).unwrap();
    let msg = read_runs(&dest).unwrap_err().to_string();
    assert!(
        msg.contains("class_labels.txt: line 2") && msg.contains("two paths"),
        "{msg}"
    );

    lines[1] = "run01/test/item02.png run01/training/class99.png".into();
    fs::write(&labels, lines.join("\n")).unwrap();
    let msg = read_runs(&dest).unwrap_err().to_string();
    assert!(
        msg.contains("line 2") && msg.contains("class99.png"),
        "{msg}"
    );
}

#[test]
fn not_enough_characters_for_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let split = write_split(tmp.path(), "images_evaluation", SyntheticSpec::new(2, 3, 2)).unwrap();
    let index = SplitIndex::scan(&split).unwrap();
    let dest = tmp.path().join("runs");
    let msg = write_runs(&index, &dest, 1, 20, 0).unwrap_err().to_string();
    assert!(msg.contains("20-way") && msg.contains("only 3"), "{msg}");
    assert!(!dest.exists());
}
