//! How to score a candidate shown by K drawings, compared on held-out alphabets: the mean of
//! the query's logits against each drawing (the rule `eval --shots` and `recognize` use)
//! against the logit of the query against the drawings' mean embedding (a prototype, as in
//! Prototypical Networks), both in paired turns and upright.
//!
//! `cargo run --release -p eval --example kshot_rules -- CHECKPOINT ALPHABET_DIR...`
//!
//! Each alphabet folder (`images_background/<Alphabet>`; give validation alphabets, never
//! `images_evaluation`) becomes one labelling task: every character a label, its drawings by
//! drawers 01-K the examples and those by drawers 06-20 the queries, as in
//! `results/recognize/validation-kshot.sh`. Turns here rotate the framed input by quarter
//! turns, as `eval`'s paired turns do for a model trained with rotation classes.
use std::path::{Path, PathBuf};

type Error = Box<dyn std::error::Error>;

/// One character's drawings: `drawings[d]` by drawer `d + 1`, as framed input images.
struct Character {
    drawings: Vec<Option<Vec<f32>>>,
}

fn main() -> Result<(), Error> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [checkpoint, alphabets @ ..] = args.as_slice() else {
        return Err("usage: kshot_rules CHECKPOINT ALPHABET_DIR...".into());
    };
    let matcher = eval::Matcher::open(checkpoint, &model::Device::Cpu)?;
    let head = matcher.model().head_host()?;
    let side = matcher.input_side();
    let shots = [1usize, 2, 3, 5];
    // [views][rule][shots]: correct counts.
    let mut correct = [[[0usize; 4]; 2]; 2];
    let mut queries = 0usize;
    for dir in alphabets {
        let characters = read_alphabet(&matcher, dir)?;
        // Every drawing embedded in each quarter turn: [turn][character][drawer].
        let mut embedded = Vec::new();
        for turn in 0..4 {
            let mut per_char = Vec::new();
            for c in &characters {
                let images: Vec<Vec<f32>> = c
                    .drawings
                    .iter()
                    .flatten()
                    .map(|d| rotate(d, side, turn))
                    .collect();
                let mut e = matcher.embed(&images)?.into_iter();
                per_char.push(
                    c.drawings
                        .iter()
                        .map(|d| d.as_ref().and_then(|_| e.next()))
                        .collect::<Vec<_>>(),
                );
            }
            embedded.push(per_char);
        }
        // Each label's prototype for each number of shots, in each turn: [turn][label][shots].
        let prototypes: Vec<Vec<Vec<Vec<f32>>>> = embedded
            .iter()
            .map(|per_char| {
                per_char
                    .iter()
                    .map(|drawers| shots.iter().map(|&k| mean(&drawers[..k])).collect())
                    .collect()
            })
            .collect();
        for (truth, c) in characters.iter().enumerate() {
            for q in 5..20 {
                if c.drawings[q].is_none() {
                    continue;
                }
                queries += 1;
                for (v, turns) in [1usize, 4].into_iter().enumerate() {
                    for (s, &k) in shots.iter().enumerate() {
                        let mut best = [(f32::NEG_INFINITY, usize::MAX); 2];
                        for label in 0..characters.len() {
                            let (mut mean_logit, mut proto) = (0f32, 0f32);
                            for turn in 0..turns {
                                let query = embedded[turn][truth][q].as_ref().ok_or("query")?;
                                let logits: Vec<f32> = embedded[turn][label][..k]
                                    .iter()
                                    .flatten()
                                    .map(|e| head.logit(query, e))
                                    .collect();
                                mean_logit += logits.iter().sum::<f32>() / logits.len() as f32;
                                proto += head.logit(query, &prototypes[turn][label][s]);
                            }
                            for (rule, score) in [mean_logit, proto].into_iter().enumerate() {
                                if score > best[rule].0 {
                                    best[rule] = (score, label);
                                }
                            }
                        }
                        for rule in 0..2 {
                            correct[v][rule][s] += (best[rule].1 == truth) as usize;
                        }
                    }
                }
            }
        }
        eprintln!("{}: {} characters", dir.display(), characters.len());
    }
    println!("{queries} queries");
    println!("| views | rule | 1 shot | 2 shots | 3 shots | 5 shots |\n|---|---|---|---|---|---|");
    for (v, views) in ["upright", "4 paired turns"].iter().enumerate() {
        for (rule, name) in ["mean logit", "prototype"].iter().enumerate() {
            let cells: Vec<String> = correct[v][rule]
                .iter()
                .map(|&n| format!("{:.2}% ({n})", 100.0 * n as f64 / queries as f64))
                .collect();
            println!("| {views} | {name} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}

/// The mean of the embeddings present.
fn mean(embeddings: &[Option<Vec<f32>>]) -> Vec<f32> {
    let present: Vec<&Vec<f32>> = embeddings.iter().flatten().collect();
    let mut out = vec![0f32; present.first().map_or(0, |e| e.len())];
    for e in &present {
        out.iter_mut()
            .zip(e.iter())
            .for_each(|(m, x)| *m += x / present.len() as f32);
    }
    out
}

/// An alphabet folder's characters, each drawing framed as the network's input (`None` for a
/// drawer with no file).
fn read_alphabet(matcher: &eval::Matcher, dir: &Path) -> Result<Vec<Character>, Error> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    folders.retain(|p| p.is_dir());
    folders.sort();
    let mut characters = Vec::new();
    for folder in folders {
        let mut drawings = vec![None; 20];
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let drawer: usize = stem.rsplit('_').next().unwrap_or_default().parse()?;
            if (1..=20).contains(&drawer) {
                drawings[drawer - 1] = Some(matcher.load_image(&path)?);
            }
        }
        characters.push(Character { drawings });
    }
    Ok(characters)
}

/// `image` (`side x side`, row-major) turned by `quarters` quarter turns counter-clockwise.
fn rotate(image: &[f32], side: usize, quarters: usize) -> Vec<f32> {
    let mut out = image.to_vec();
    for _ in 0..quarters % 4 {
        let src = out.clone();
        for y in 0..side {
            for x in 0..side {
                // (x, y) takes the pixel that a counter-clockwise turn brings there.
                out[y * side + x] = src[x * side + (side - 1 - y)];
            }
        }
    }
    out
}
