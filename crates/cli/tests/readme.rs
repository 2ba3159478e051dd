//! The README's code stays true: its `rust` block is the body of `examples/readme_api.rs`,
//! which `cargo test` compiles.

use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of the README's one ```` ```rust ```` block.
fn readme_block(readme: &str) -> Vec<String> {
    let mut blocks = readme.split("```rust\n").skip(1);
    let block = blocks.next().expect("the README has a rust block");
    assert!(blocks.next().is_none(), "one rust block in the README");
    let end = block.find("```").expect("the rust block is closed");
    block[..end].lines().map(str::to_owned).collect()
}

/// The example's lines between its markers, less the function body's indent.
fn example_block(example: &str) -> Vec<String> {
    const BEGIN: &str = "// README begins\n";
    let start = example.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = example.find("    // README ends").expect("end marker");
    example[start..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l).to_owned())
        .collect()
}

#[test]
fn the_readme_rust_block_is_the_compiled_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = readme_block(&read(&root.join("README.md")));
    let example = example_block(&read(&root.join("crates/cli/examples/readme_api.rs")));
    assert!(readme.len() > 10, "{readme:?}");
    assert_eq!(
        readme, example,
        "README.md's rust block and examples/readme_api.rs differ"
    );
}

#[test]
fn a_changed_line_is_caught() {
    let readme = "text\n```rust\nlet a = 1;\nlet b = 2;\n```\nmore\n";
    let example = "fn main() {\n    // README begins\n    let a = 1;\n    let b = 3;\n    // README ends\n}\n";
    assert_ne!(readme_block(readme), example_block(example));
    let same = example.replace("b = 3", "b = 2");
    assert_eq!(readme_block(readme), example_block(&same));
}
