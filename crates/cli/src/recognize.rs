//! `recognize`: label drawings by the examples of a labelled support folder (the everyday use of
//! a one-shot model), and with `--labelled` measure how often the labels are right.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use eval::report::{Accuracy, csv_field};
use eval::{Gallery, Recognition};
use indicatif::{ProgressBar, ProgressStyle};

use crate::classify::ScorerArgs;

#[derive(clap::Args, Debug)]
pub struct RecognizeArgs {
    #[command(flatten)]
    scorer: ScorerArgs,
    /// The labelled examples: a folder whose subfolders are the labels, each holding one or
    /// more drawings of its label (PNG or JPEG files, searched recursively), and whose image
    /// files directly inside are labels of one example each (the file name without its
    /// extension).
    #[arg(long)]
    support: PathBuf,
    /// Drawings to label: PNG or JPEG files, or folders searched recursively for them.
    #[arg(required = true, num_args = 1..)]
    queries: Vec<PathBuf>,
    /// Each query sits in a folder named by its true label: also report the accuracy (95%
    /// Wilson interval), each label's, and the most frequent confusions.
    #[arg(long)]
    labelled: bool,
    /// With --labelled: also draw the confusion matrix (rows: true labels, columns: labels
    /// given) as P.png and P.svg.
    #[arg(long, value_name = "P", requires = "labelled")]
    plot: Option<PathBuf>,
    /// Leave a query unlabelled when its best label's score is below S (the CSV's `accepted`
    /// column says which), for drawings that may show none of the labels. For a calibrated
    /// model, like the shipped one, sigmoid(score) with one example per label is the model's
    /// probability that the two drawings show one character: S = 0 stands for 0.5.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    min_score: Option<f32>,
    /// Labels listed per query in the CSV, best first.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// CSV to write, one row per query in path order: the chosen label, its score (the logit
    /// against the mean embedding of the label's examples), its margin over the runner-up,
    /// whether it was tied, the truth (with --labelled) and the best `--top` labels with their
    /// scores.
    #[arg(long, default_value = "recognized.csv")]
    out: PathBuf,
}

pub fn run(a: RecognizeArgs) -> Result<()> {
    let (_, matcher) = a.scorer.file_matcher("recognize")?;
    let support = support_examples(&a.support)?;
    let queries = crate::files::image_files(&a.queries)?;
    let truths = if a.labelled {
        Some(true_labels(&queries, &support)?)
    } else {
        None
    };
    warn_about_queries_in_support(&queries, &support);

    let load = |p: &Path| {
        matcher
            .load_image(p)
            .with_context(|| format!("cannot use {}", p.display()))
    };
    // Labels enter the gallery in the support's (name) order, the order `truths` counts in.
    let mut gallery = Gallery::new();
    for (label, files) in &support {
        for file in files {
            gallery.add(label, load(file)?);
        }
    }
    let images = queries
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>>>()?;
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} queries [{elapsed_precise}<{eta_precise}]",
        )
        .expect("valid template"),
    );
    let found = matcher.recognize(&gallery, &images, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let labels = gallery.labels();
    let scorer = matcher.name()?;
    crate::write_file(
        &a.out,
        &csv(
            &queries,
            &found,
            labels,
            truths.as_deref(),
            a.min_score,
            a.top,
        ),
    )?;
    println!(
        "labelled {} among {} ({}) with {}: wrote {}",
        counted(queries.len(), "drawing"),
        counted(labels.len(), "label"),
        counted(gallery.examples(), "example"),
        scorer,
        a.out.display()
    );
    if let Some(min) = a.min_score {
        println!("{}", acceptance(&found, truths.as_deref(), min));
    }
    if let Some(truths) = &truths {
        print!("{}", summary(&found, labels, truths));
        if let Some(plot) = &a.plot {
            write_confusion(plot, &found, labels, truths, &scorer)?;
        }
    } else {
        let ties = found.iter().filter(|r| r.tied).count();
        if ties > 0 {
            println!("{ties} choices were ties (broken towards the label first by name)");
        }
    }
    Ok(())
}

/// The support folder's labels, by name, each with its example files (sorted).
fn support_examples(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    if !dir.is_dir() {
        bail!("--support {} is not a folder", dir.display());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut labels = BTreeMap::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Hidden entries are the file system's or a tool's (.git, .DS_Store), not labels.
        if name.starts_with('.') {
            continue;
        }
        let (label, files) = if path.is_dir() {
            let mut files = Vec::new();
            crate::files::collect_images(&path, &mut files)?;
            if files.is_empty() {
                bail!(
                    "support label `{name}` ({}) holds no PNG or JPEG files",
                    path.display()
                );
            }
            files.sort();
            (name, files)
        } else if crate::files::is_image(&path) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, vec![path])
        } else {
            continue;
        };
        if labels.insert(label.clone(), files).is_some() {
            bail!(
                "label `{label}` appears twice in {}: as a folder and as an image file",
                dir.display()
            );
        }
    }
    if labels.is_empty() {
        bail!(
            "no labels in {}: give it a subfolder of drawings (PNG or JPEG) per label, or an \
             image file per label",
            dir.display()
        );
    }
    Ok(labels)
}

/// Each query's label (its folder's name) as an index into the support's labels.
fn true_labels(
    queries: &[PathBuf],
    support: &BTreeMap<String, Vec<PathBuf>>,
) -> Result<Vec<usize>> {
    let index: BTreeMap<&str, usize> = support
        .keys()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let folder = |q: &Path| {
        q.parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut unknown = Vec::new();
    let mut truths = Vec::with_capacity(queries.len());
    for q in queries {
        match index.get(folder(q).as_str()) {
            Some(&i) => truths.push(i),
            None => unknown.push(q),
        }
    }
    if let Some(first) = unknown.first() {
        bail!(
            "with --labelled each query's folder names its label, but {} of {} queries are in \
             folders that are not labels of the support set, {} the first (in `{}`)",
            unknown.len(),
            queries.len(),
            first.display(),
            folder(first)
        );
    }
    Ok(truths)
}

/// A query that is also one of the examples matches itself, which says nothing of the model.
fn warn_about_queries_in_support(queries: &[PathBuf], support: &BTreeMap<String, Vec<PathBuf>>) {
    let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let examples: HashSet<PathBuf> = support.values().flatten().map(canonical).collect();
    let shared = queries
        .iter()
        .filter(|q| examples.contains(&canonical(q)))
        .count();
    if shared > 0 {
        tracing::warn!(
            "{shared} of the {} queries are support examples themselves, so they are compared \
             with their own copy",
            queries.len()
        );
    }
}

fn csv(
    queries: &[PathBuf],
    found: &[Recognition],
    labels: &[String],
    truths: Option<&[usize]>,
    min_score: Option<f32>,
    top: usize,
) -> String {
    let top = top.min(labels.len());
    let mut s = String::from("query,predicted,score,margin,tied");
    if min_score.is_some() {
        s.push_str(",accepted");
    }
    if truths.is_some() {
        s.push_str(",truth,correct");
    }
    (1..=top).for_each(|k| s.push_str(&format!(",label_{k},score_{k}")));
    s.push('\n');
    for (i, (q, r)) in queries.iter().zip(found).enumerate() {
        let margin = r.margin().map_or(String::new(), |m| format!("{m:.5}"));
        s.push_str(&format!(
            "{},{},{:.5},{margin},{}",
            csv_field(&q.display().to_string()),
            csv_field(&labels[r.best]),
            r.scores[r.best],
            r.tied
        ));
        if let Some(min) = min_score {
            s.push_str(&format!(",{}", accepted(r, min)));
        }
        if let Some(t) = truths {
            s.push_str(&format!(",{},{}", csv_field(&labels[t[i]]), r.best == t[i]));
        }
        for &l in &r.ranking()[..top] {
            s.push_str(&format!(",{},{:.5}", csv_field(&labels[l]), r.scores[l]));
        }
        s.push('\n');
    }
    s
}

/// Whether a query's best label scored high enough to be given.
fn accepted(r: &Recognition, min_score: f32) -> bool {
    r.scores[r.best] >= min_score
}

/// How many queries `--min-score` let through, and with the truth how many of those are right.
fn acceptance(found: &[Recognition], truths: Option<&[usize]>, min_score: f32) -> String {
    let given: Vec<usize> = (0..found.len())
        .filter(|&i| accepted(&found[i], min_score))
        .collect();
    let mut s = format!(
        "{} of {} queries scored at least {min_score} and were labelled; {} were left unlabelled",
        given.len(),
        found.len(),
        found.len() - given.len()
    );
    if let Some(t) = truths {
        let right = given.iter().filter(|&&i| found[i].best == t[i]).count();
        let ties = given.iter().filter(|&&i| found[i].tied).count();
        s.push_str(&format!(
            "; of those labelled, {} right",
            Accuracy::from_counts(right, given.len(), ties).display()
        ));
    }
    s
}

/// Accuracy over all queries, then by label with what each was most often taken for, in
/// Markdown.
fn summary(found: &[Recognition], labels: &[String], truths: &[usize]) -> String {
    let correct = found
        .iter()
        .zip(truths)
        .filter(|(r, t)| r.best == **t)
        .count();
    let ties = found.iter().filter(|r| r.tied).count();
    let all = Accuracy::from_counts(correct, found.len(), ties);
    let mut s = format!(
        "accuracy {} ({correct} of {} right",
        all.display(),
        all.total
    );
    if ties > 0 {
        s.push_str(&format!(
            "; {ties} ties, broken towards the label first by name"
        ));
    }
    s.push_str(")\n\n| label | queries | right | accuracy | most often taken for |\n|---|---|---|---|---|\n");
    for (l, label) in labels.iter().enumerate() {
        let mine: Vec<&Recognition> = found
            .iter()
            .zip(truths)
            .filter(|(_, t)| **t == l)
            .map(|(r, _)| r)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let right = mine.iter().filter(|r| r.best == l).count();
        let mut wrong: BTreeMap<usize, usize> = BTreeMap::new();
        mine.iter()
            .filter(|r| r.best != l)
            .for_each(|r| *wrong.entry(r.best).or_default() += 1);
        // The most frequent confusion; among equals, the label first by name.
        let taken_for = wrong
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(String::new(), |(&w, n)| format!("{} ({n})", labels[w]));
        s.push_str(&format!(
            "| {label} | {} | {right} | {:.1}% | {taken_for} |\n",
            mine.len(),
            100.0 * right as f64 / mine.len() as f64
        ));
    }
    s
}

fn write_confusion(
    plot: &Path,
    found: &[Recognition],
    labels: &[String],
    truths: &[usize],
    scorer: &str,
) -> Result<()> {
    let mut counts = vec![vec![0usize; labels.len()]; labels.len()];
    for (r, &t) in found.iter().zip(truths) {
        counts[t][r.best] += 1;
    }
    let right: usize = (0..labels.len()).map(|l| counts[l][l]).sum();
    let title = format!(
        "{} of {} queries right ({:.1}%): {scorer}",
        right,
        found.len(),
        100.0 * right as f64 / found.len().max(1) as f64
    );
    let own = ["png", "svg"];
    let png = eval::report::output_path(plot, &own, "png");
    let svg = eval::report::output_path(plot, &own, "svg");
    eval::plot::write_confusion(
        &eval::plot::Confusion {
            title: &title,
            labels,
            counts: &counts,
        },
        Some(&png),
        Some(&svg),
    )
    .with_context(|| format!("cannot write {}", png.display()))?;
    println!("wrote {} and {}", png.display(), svg.display());
    Ok(())
}

/// `1 drawing`, `2 drawings`: the summary line reads right for a single query or label.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn counts_read_in_the_singular_for_one() {
        assert_eq!(counted(1, "drawing"), "1 drawing");
        assert_eq!(counted(0, "label"), "0 labels");
        assert_eq!(counted(12, "example"), "12 examples");
    }
}
