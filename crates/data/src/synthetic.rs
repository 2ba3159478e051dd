//! Procedurally drawn Omniglot look-alikes for tests and examples: every character is a few
//! strokes (alphabets share one stroke, so within-alphabet trials are harder), and every
//! drawer jitters the strokes a little. Written to disk in the official layout or built
//! straight into an [`ImageStore`].

use std::fs;
use std::path::{Path, PathBuf};

use rand::Rng as _;

use crate::NATIVE_SIDE;
use crate::image_io::{encode_png, to_side};
use crate::store::{ImageStore, StoreBuilder};

/// Shape of a synthetic split.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticSpec {
    pub alphabets: usize,
    pub characters: usize,
    pub drawers: u8,
    pub seed: u64,
}

impl SyntheticSpec {
    pub fn new(alphabets: usize, characters: usize, drawers: u8) -> Self {
        SyntheticSpec {
            alphabets,
            characters,
            drawers,
            seed: 0,
        }
    }
}

type Stroke = [(f32, f32); 3];

fn random_stroke(rng: &mut crate::Rng) -> Stroke {
    let mut p = || (rng.random_range(18.0..87.0), rng.random_range(18.0..87.0));
    [p(), p(), p()]
}

fn strokes(seed: u64, alphabet: usize, character: usize) -> Vec<Stroke> {
    let mut style = crate::rng_for(seed, 0x5e7, alphabet as u64, u64::MAX);
    let mut own = crate::rng_for(seed, 0x5e7, alphabet as u64, character as u64);
    vec![
        random_stroke(&mut style),
        random_stroke(&mut own),
        random_stroke(&mut own),
    ]
}

fn distance_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// The 105x105 binary drawing (ink = 1.0) of `character` of `alphabet` by `drawer`.
pub fn glyph(seed: u64, alphabet: usize, character: usize, drawer: u8) -> Vec<f32> {
    let mut jitter = crate::rng_for(
        seed,
        0xd4a,
        (alphabet * 10_000 + character) as u64,
        drawer as u64,
    );
    let shift = (
        jitter.random_range(-3.0..3.0),
        jitter.random_range(-3.0..3.0),
    );
    let segments: Vec<((f32, f32), (f32, f32))> = strokes(seed, alphabet, character)
        .iter()
        .flat_map(|s| {
            let pts: Vec<(f32, f32)> = s
                .iter()
                .map(|&(x, y)| {
                    (
                        x + shift.0 + jitter.random_range(-3.0..3.0),
                        y + shift.1 + jitter.random_range(-3.0..3.0),
                    )
                })
                .collect();
            vec![(pts[0], pts[1]), (pts[1], pts[2])]
        })
        .collect();
    let mut out = vec![0.0; NATIVE_SIDE * NATIVE_SIDE];
    for y in 0..NATIVE_SIDE {
        for x in 0..NATIVE_SIDE {
            let p = (x as f32 + 0.5, y as f32 + 0.5);
            if segments
                .iter()
                .any(|&(a, b)| distance_to_segment(p, a, b) <= 1.8)
            {
                out[y * NATIVE_SIDE + x] = 1.0;
            }
        }
    }
    out
}

/// Folder name of synthetic alphabet `a`.
pub fn alphabet_name(a: usize) -> String {
    format!("Synthetic_{:02}", a + 1)
}

/// Writes a split in the official layout under `root/split_dir` and returns that folder.
/// Character codes `CCCC` are numbered across the split as in the real data.
pub fn write_split(root: &Path, split_dir: &str, spec: SyntheticSpec) -> std::io::Result<PathBuf> {
    let dir = root.join(split_dir);
    let mut code = 1;
    for a in 0..spec.alphabets {
        for c in 0..spec.characters {
            let cdir = dir
                .join(alphabet_name(a))
                .join(format!("character{:02}", c + 1));
            fs::create_dir_all(&cdir)?;
            for d in 1..=spec.drawers {
                let png = encode_png(&glyph(spec.seed, a, c, d), NATIVE_SIDE);
                fs::write(cdir.join(format!("{code:04}_{d:02}.png")), png)?;
            }
            code += 1;
        }
    }
    Ok(dir)
}

/// Builds a synthetic split straight into memory at `side x side`.
pub fn store(spec: SyntheticSpec, side: usize) -> ImageStore {
    let mut b = StoreBuilder::new(side);
    for a in 0..spec.alphabets {
        let alphabet = b.alphabet(&alphabet_name(a));
        for c in 0..spec.characters {
            let character = b.character(alphabet, &format!("character{:02}", c + 1));
            for d in 1..=spec.drawers {
                b.push(
                    character,
                    d,
                    &to_side(&glyph(spec.seed, a, c, d), side),
                    None,
                );
            }
        }
    }
    b.finish()
}
