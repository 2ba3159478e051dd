//! Accuracy summaries: overall with a Wilson 95% interval, per alphabet, per run; as JSON,
//! CSV and Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use data::ImageStore;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::evaluate::TrialResult;
use crate::stats::{BOOTSTRAP_RESAMPLES, Z95, bootstrap_over_groups, wilson};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Trials whose top score was shared (broken towards the lowest index).
    pub ties: usize,
}

impl Accuracy {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a TrialResult>) -> Accuracy {
        let (mut correct, mut total, mut ties) = (0, 0, 0);
        for r in results {
            total += 1;
            correct += r.correct as usize;
            ties += r.tied as usize;
        }
        Accuracy::from_counts(correct, total, ties)
    }

    /// `correct` of `total` choices, `ties` of them on a shared top score, with the 95%
    /// Wilson interval.
    pub fn from_counts(correct: usize, total: usize, ties: usize) -> Accuracy {
        let (ci_low, ci_high) = wilson(correct, total, Z95);
        Accuracy {
            correct,
            total,
            accuracy: if total > 0 {
                correct as f64 / total as f64
            } else {
                0.0
            },
            ci_low,
            ci_high,
            ties,
        }
    }

    /// `92.3% [89.1, 94.6] (n=400)`
    pub fn display(&self) -> String {
        format!(
            "{:.1}% [{:.1}, {:.1}] (n={})",
            100.0 * self.accuracy,
            100.0 * self.ci_low,
            100.0 * self.ci_high,
            self.total
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub accuracy: Accuracy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scorer: String,
    /// `random`, `within-alphabet` or `runs`.
    pub protocol: String,
    pub ways: usize,
    /// Drawings per candidate (1: one-shot).
    #[serde(default = "one_shot")]
    pub shots: usize,
    pub split: String,
    pub seed: Option<u64>,
    pub overall: Accuracy,
    pub per_alphabet: Vec<Group>,
    pub per_run: Vec<Group>,
    /// Lake's runs only: the overall accuracy's interval from resampling whole runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across_runs: Option<RunInterval>,
    pub seconds: f64,
    /// Why the figure may not mean what it seems to (trials on alphabets the model was
    /// trained on, say); printed under the headline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What made the figures: the command and the model files' hashes (set by whoever
    /// writes the report out; `None` in a report built from results alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Where a report's figures come from. The scorer's description names an architecture, which
/// every checkpoint of a recipe shares, so the model files are named with their SHA-256: a
/// figure can be traced to the weights behind it, and a file changed since is noticed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The command line, as given.
    pub command: Vec<String>,
    /// The version of this project that ran it.
    pub version: String,
    /// The model files scored (none for a baseline), in the order given.
    pub models: Vec<ModelFile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
}

impl Provenance {
    /// Hashes `models`; an unreadable file is an error naming it. The program is named by its
    /// file name and paths under the working folder relative to it, so that a report committed
    /// with a project does not carry one machine's folders.
    pub fn new(mut command: Vec<String>, models: &[PathBuf]) -> Result<Provenance> {
        if let Some(program) = command.first_mut()
            && let Some(name) = Path::new(program.as_str()).file_name()
        {
            *program = name.to_string_lossy().into_owned();
        }
        let here = std::env::current_dir().ok();
        let models = models
            .iter()
            .map(|p| {
                let shown = here.as_deref().and_then(|h| p.strip_prefix(h).ok());
                Ok(ModelFile {
                    path: shown.unwrap_or(p).display().to_string(),
                    sha256: sha256_file(p)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Provenance {
            command,
            version: env!("CARGO_PKG_VERSION").into(),
            models,
        })
    }
}

/// The SHA-256 of a file's bytes, in lowercase hex (what `sha256sum` prints).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| EvalError::io(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A 95% interval for the overall accuracy that treats each run, not each trial, as the
/// independent unit (`stats::bootstrap_over_groups`): a run's queries share an alphabet,
/// characters and a pair of drawers, so the per-trial Wilson interval is too narrow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInterval {
    pub runs: usize,
    pub resamples: usize,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl RunInterval {
    pub fn of(per_run: &[Group]) -> RunInterval {
        let groups: Vec<(usize, usize)> = per_run
            .iter()
            .map(|g| (g.accuracy.correct, g.accuracy.total))
            .collect();
        let (ci_low, ci_high) = bootstrap_over_groups(&groups, BOOTSTRAP_RESAMPLES);
        RunInterval {
            runs: per_run.len(),
            resamples: BOOTSTRAP_RESAMPLES,
            ci_low,
            ci_high,
        }
    }
}

fn one_shot() -> usize {
    1
}

impl Report {
    /// Summarises `results`, grouping by the query's alphabet in `store`; the shots are the
    /// trials'.
    pub fn new(
        scorer: &str,
        protocol: &str,
        ways: usize,
        split: &str,
        seed: Option<u64>,
        store: &ImageStore,
        results: &[TrialResult],
    ) -> Report {
        let per_alphabet = store
            .alphabets()
            .iter()
            .enumerate()
            .filter_map(|(a, info)| {
                let rs: Vec<&TrialResult> = results
                    .iter()
                    .filter(|r| store.alphabet_of(r.trial.query) == a as u32)
                    .collect();
                (!rs.is_empty()).then(|| Group {
                    name: info.name.clone(),
                    accuracy: Accuracy::of(rs),
                })
            })
            .collect();
        Report {
            scorer: scorer.into(),
            protocol: protocol.into(),
            ways,
            shots: results.first().map_or(1, |r| r.trial.shots),
            split: split.into(),
            seed,
            overall: Accuracy::of(results),
            per_alphabet,
            per_run: Vec::new(),
            across_runs: None,
            warnings: Vec::new(),
            provenance: None,
            seconds: 0.0,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// `20-way`, or `20-way 5-shot` when candidates show several drawings.
    pub fn ways_and_shots(&self) -> String {
        if self.shots > 1 {
            format!("{}-way {}-shot", self.ways, self.shots)
        } else {
            format!("{}-way", self.ways)
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} on {} ({}, {}): {} correct of {}, accuracy {}{}",
            self.scorer,
            self.split,
            self.ways_and_shots(),
            self.protocol,
            self.overall.correct,
            self.overall.total,
            self.overall.display(),
            if self.overall.ties > 0 {
                format!(
                    ", {} ties broken towards the first candidate",
                    self.overall.ties
                )
            } else {
                String::new()
            }
        );
        for w in &self.warnings {
            let _ = writeln!(s, "\nWarning: {w}.");
        }
        if let Some(r) = &self.across_runs {
            let _ = writeln!(
                s,
                "\nAcross runs: 95% interval [{:.1}, {:.1}] from resampling the {} runs whole \
                 ({} bootstrap resamples). Prefer it to the interval above, which treats the \
                 trials as independent although a run's queries share one alphabet and one \
                 pair of drawers.",
                100.0 * r.ci_low,
                100.0 * r.ci_high,
                r.runs,
                r.resamples
            );
        }
        for (title, groups) in [("alphabet", &self.per_alphabet), ("run", &self.per_run)] {
            if groups.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "\n| {title} | accuracy | 95% CI | error | trials |\n|---|---|---|---|---|"
            );
            for g in groups {
                let a = &g.accuracy;
                let _ = writeln!(
                    s,
                    "| {} | {:.1}% | {:.1}-{:.1}% | {:.1}% | {} |",
                    g.name,
                    100.0 * a.accuracy,
                    100.0 * a.ci_low,
                    100.0 * a.ci_high,
                    100.0 * (1.0 - a.accuracy),
                    a.total
                );
            }
        }
        if let Some(p) = &self.provenance {
            let _ = writeln!(
                s,
                "\nMade by `{}` (version {}).",
                p.command.join(" "),
                p.version
            );
            for m in &p.models {
                let _ = writeln!(s, "Model `{}`, SHA-256 `{}`.", m.path, m.sha256);
            }
        }
        s
    }

    /// One CSV row per group, the first row being the overall figure.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "scorer,protocol,ways,shots,split,group,correct,total,accuracy,ci_low,ci_high,ties\n",
        );
        let mut row = |group: &str, a: &Accuracy| {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{}",
                csv_field(&self.scorer),
                self.protocol,
                self.ways,
                self.shots,
                csv_field(&self.split),
                csv_field(group),
                a.correct,
                a.total,
                a.accuracy,
                a.ci_low,
                a.ci_high,
                a.ties
            );
        };
        row("overall", &self.overall);
        if let Some(r) = &self.across_runs {
            let a = Accuracy {
                ci_low: r.ci_low,
                ci_high: r.ci_high,
                ..self.overall.clone()
            };
            row("overall, resampling runs", &a);
        }
        for g in self.per_alphabet.iter().chain(&self.per_run) {
            row(&g.name, &g.accuracy);
        }
        s
    }
}

/// One CSV row per trial, for finding and comparing errors: the query and candidates as
/// `alphabet/character/drawerNN` (for runs, `runNN/<candidate file>/drawer01` for a
/// candidate and `drawer02` for a query; a K-shot candidate's drawings joined by `+`) and
/// the query's file, the correct and the chosen
/// candidate's index and score, and the margin (the correct candidate's score minus the best
/// other one: negative when the trial was missed, 0 for a tie at the top).
pub fn trials_csv(store: &ImageStore, results: &[TrialResult]) -> String {
    let mut s = String::from(
        "trial,query,query_file,answer,predicted,correct,tied,answer_score,predicted_score,\
         margin,candidates,scores\n",
    );
    for (i, r) in results.iter().enumerate() {
        let t = &r.trial;
        let best_other = r
            .scores
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != t.answer)
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        let names: Vec<String> = t
            .supports()
            .map(|drawings| {
                let names: Vec<String> = drawings.iter().map(|&c| store.describe(c)).collect();
                names.join("+")
            })
            .collect();
        let scores: Vec<String> = r.scores.iter().map(|v| format!("{v:.5}")).collect();
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{},{},{:.5},{:.5},{:.5},{},{}",
            csv_field(&store.describe(t.query)),
            csv_field(
                &store
                    .path_of(t.query)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            t.answer,
            r.predicted,
            r.correct,
            r.tied,
            r.scores[t.answer],
            r.scores[r.predicted],
            r.scores[t.answer] - best_other,
            csv_field(&names.join(";")),
            scores.join(";"),
        );
    }
    s
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The file that the output `ext` of a command given `prefix` goes to: `PREFIX.EXT`. A dot in
/// the prefix is part of its name (`--out runs/lr0.5` writes `runs/lr0.5.json`, where
/// `Path::with_extension` would write `runs/lr0.json` and let `lr0.5` and `lr0.7` overwrite
/// each other), except that an extension among `own`, the command's own outputs, is dropped
/// first, so that `--plot conf.png` writes `conf.png` and `conf.svg`.
pub fn output_path(prefix: &Path, own: &[&str], ext: &str) -> PathBuf {
    let Some(name) = prefix.file_name() else {
        return prefix.with_extension(ext);
    };
    let stem = match prefix.extension().and_then(|e| e.to_str()) {
        Some(e) if own.iter().any(|o| o.eq_ignore_ascii_case(e)) => {
            prefix.file_stem().unwrap_or(name)
        }
        _ => name,
    };
    let mut file = stem.to_owned();
    file.push(".");
    file.push(ext);
    prefix.with_file_name(file)
}

/// Writes text to a file atomically, creating its folder.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    }
    model::io::write_atomic(path, text.as_bytes()).map_err(|e| EvalError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::Trial;
    use data::store::StoreBuilder;

    /// A store of Greek alpha (character 0) and beta (1) with blank drawings: `drawings` are
    /// (character, drawer, file) in id order.
    fn greek(drawings: &[(usize, u8, Option<&str>)]) -> ImageStore {
        let mut b = StoreBuilder::new(2);
        let alphabet = b.alphabet("Greek");
        let characters = [
            b.character(alphabet, "alpha"),
            b.character(alphabet, "beta"),
        ];
        for &(character, drawer, file) in drawings {
            b.push(
                characters[character],
                drawer,
                &[0.0; 4],
                file.map(Into::into),
            );
        }
        b.finish()
    }

    #[test]
    fn trials_csv_names_each_trial_and_its_margin() {
        let store = greek(&[(0, 1, None), (1, 1, None), (0, 2, Some("q,1.png"))]);
        let result = |candidates: Vec<u32>, answer: usize, scores: Vec<f32>| {
            let (predicted, tied) = crate::evaluate::choose(&scores);
            TrialResult {
                trial: Trial::one_shot(2, candidates, answer),
                predicted,
                correct: predicted == answer,
                tied,
                scores,
            }
        };
        let missed = result(vec![0, 1], 0, vec![0.5, 2.0]);
        let hit = result(vec![1, 0], 1, vec![-1.0, 0.25]);
        let csv = trials_csv(&store, &[missed, hit]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "trial,query,query_file,answer,predicted,correct,tied,answer_score,\
                 predicted_score,margin,candidates,scores",
                "0,Greek/alpha/drawer02,\"q,1.png\",0,1,false,false,0.50000,2.00000,-1.50000,\
                 Greek/alpha/drawer01;Greek/beta/drawer01,0.50000;2.00000",
                "1,Greek/alpha/drawer02,\"q,1.png\",1,1,true,false,0.25000,0.25000,1.25000,\
                 Greek/beta/drawer01;Greek/alpha/drawer01,-1.00000;0.25000",
            ]
        );
    }

    #[test]
    fn trials_csv_joins_a_candidates_drawings() {
        let store = greek(&[
            (0, 1, None),
            (1, 1, None),
            (0, 3, None),
            (1, 3, None),
            (0, 2, None),
        ]);
        let trial = Trial {
            query: 4,
            candidates: vec![1, 3, 0, 2],
            answer: 1,
            shots: 2,
        };
        assert_eq!(trial.ways(), 2);
        let result = TrialResult {
            trial,
            predicted: 1,
            correct: true,
            tied: false,
            scores: vec![-0.5, 1.5],
        };
        let csv = trials_csv(&store, &[result]);
        assert_eq!(
            csv.lines().nth(1),
            Some(
                "0,Greek/alpha/drawer02,,1,1,true,false,1.50000,1.50000,2.00000,\
                 Greek/beta/drawer01+Greek/beta/drawer03;Greek/alpha/drawer01+Greek/alpha/drawer03,\
                 -0.50000;1.50000"
            )
        );
    }

    #[test]
    fn output_paths_keep_dots_in_the_prefix() {
        let own = ["json", "csv", "md"];
        let at = |prefix: &str, ext: &str| output_path(Path::new(prefix), &own, ext);
        assert_eq!(at("runs/lr0.5", "json"), Path::new("runs/lr0.5.json"));
        assert_eq!(
            at("runs/lr0.5", "trials.csv"),
            Path::new("runs/lr0.5.trials.csv")
        );
        assert_eq!(at("out/eval", "md"), Path::new("out/eval.md"));
        // An output's own extension on the prefix is not doubled.
        assert_eq!(at("out/eval.json", "csv"), Path::new("out/eval.csv"));
        assert_eq!(at("out/eval.JSON", "json"), Path::new("out/eval.json"));
        // Two prefixes that differ after a dot name two files.
        assert_ne!(at("fill0.7-seed99", "csv"), at("fill0.9-seed99", "csv"));
        // A trailing separator names the folder's own file, as `with_extension` did.
        assert_eq!(at("out/report/", "md"), Path::new("out/report.md"));
    }

    #[test]
    fn provenance_names_each_model_file_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.safetensors");
        std::fs::write(&file, b"abc").unwrap();
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let command = vec!["target/release/omniglot-siamese".to_string(), "eval".into()];
        let p = Provenance::new(command.clone(), std::slice::from_ref(&file)).unwrap();
        assert_eq!(p.command, ["omniglot-siamese", "eval"]);
        assert_eq!(p.models.len(), 1);
        assert_eq!(p.models[0].sha256, abc);
        assert_eq!(p.models[0].path, file.display().to_string());

        let store = greek(&[(0, 1, None), (1, 2, None)]);
        let mut report = Report::new("siamese", "random", 2, "test", Some(3), &store, &[]);
        assert!(
            !report.to_json().contains("provenance"),
            "absent unless set"
        );
        report.provenance = Some(p.clone());
        let back: Report = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(back.provenance, Some(p));
        let md = report.to_markdown();
        assert!(md.contains(&format!("SHA-256 `{abc}`")), "{md}");
        assert!(md.contains("Made by `omniglot-siamese eval`"), "{md}");

        // A file under the working folder is named relative to it.
        let manifest = std::env::current_dir().unwrap().join("Cargo.toml");
        let p = Provenance::new(command.clone(), &[manifest]).unwrap();
        assert_eq!(p.models[0].path, "Cargo.toml");

        let missing = dir.path().join("gone.safetensors");
        let err = Provenance::new(command, &[missing])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone.safetensors"), "{err}");
    }
}
