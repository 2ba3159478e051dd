//! Where the pen constants of `image_io::load_user_image` come from: the pen width
//! (`stroke::pen_width`) of every STEP-th drawing of a split (default 25), how many fall
//! outside the range that loader leaves alone (2.5-10 px), and the width the same drawings
//! measure once thinned to their skeletons and redrawn with a round pen of each radius
//! (thresholded at one half, as user images are).
//!
//! `cargo run --release -p data --example pen_width -- data/omniglot/images_background [STEP]`
use std::path::{Path, PathBuf};

use data::stroke::{pen_width, redraw, skeleton};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: pen_width IMAGES_BACKGROUND_DIR")?;
    let step: usize = match std::env::args().nth(2) {
        Some(s) => s.parse()?,
        None => 25,
    };
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    let side = data::NATIVE_SIDE;
    let drawings: Vec<Vec<bool>> = files
        .iter()
        .step_by(step.max(1))
        .map(|f| -> Result<Vec<bool>, Error> {
            let ink = data::image_io::read_omniglot_png(f)?;
            Ok(ink.iter().map(|&v| v > 0.5).collect())
        })
        .collect::<Result<_, _>>()?;
    let report = |name: &str, mut widths: Vec<f32>| {
        widths.sort_by(f32::total_cmp);
        let q = |p: f64| widths[((widths.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name}: min {:.2}, 5% {:.2}, median {:.2}, 95% {:.2}, max {:.2} ({} drawings)",
            q(0.0),
            q(0.05),
            q(0.5),
            q(0.95),
            q(1.0),
            widths.len()
        );
    };
    let drawn: Vec<f32> = drawings
        .iter()
        .filter_map(|d| pen_width(d, side, side))
        .collect();
    let outside = drawn
        .iter()
        .filter(|&&w| !(2.5..=10.0).contains(&w))
        .count();
    println!("outside 2.5-10 px: {outside} of {}", drawn.len());
    report("as drawn", drawn);
    for radius in [1.5f32, 1.75, 2.0, 2.25, 2.5] {
        let widths = drawings
            .iter()
            .filter_map(|d| {
                let pen = redraw(&skeleton(d, side), side, radius);
                let ink: Vec<bool> = pen.iter().map(|&v| v >= 0.5).collect();
                pen_width(&ink, side, side)
            })
            .collect();
        report(&format!("redrawn, radius {radius}"), widths);
    }
    Ok(())
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "png") {
            files.push(path);
        }
    }
    Ok(())
}
