//! Two scorers on the same trials: which trials each got right, and whether the difference is
//! more than chance. Two accuracies on one set of trials are not independent samples (most
//! trials are easy for both), so comparing their intervals overstates the doubt; what decides
//! is the trials on which they disagree. Reads the `PREFIX.trials.csv` files of `eval --out`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::report::Accuracy;
use crate::stats::{BOOTSTRAP_RESAMPLES, Z95, bootstrap_mean_over_groups};

/// One trial of a trials CSV: what was asked and whether the scorer got it right.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialOutcome {
    pub query: String,
    pub candidates: String,
    pub answer: usize,
    pub correct: bool,
}

impl TrialOutcome {
    /// The group the trial belongs to: the query's first path segment (its alphabet, or its
    /// run for Lake's runs).
    pub fn group(&self) -> &str {
        self.query.split('/').next().unwrap_or(&self.query)
    }
}

/// Splits CSV text into records (RFC 4180: fields quoted when they hold a comma, a quote or a
/// line break, quotes doubled inside).
fn records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    out
}

/// Reads a trials CSV written by `eval --out`.
pub fn read_trials(path: &Path) -> Result<Vec<TrialOutcome>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let bad = |line: usize, what: String| {
        EvalError::Invalid(format!(
            "{}: line {line}: {what} (expected a trials CSV written by `eval --out`)",
            path.display()
        ))
    };
    let mut rows = records(&text).into_iter();
    let header = rows
        .next()
        .ok_or_else(|| bad(1, "the file is empty".into()))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(1, format!("no `{name}` column")))
    };
    let (query, candidates) = (column("query")?, column("candidates")?);
    let (answer, correct) = (column("answer")?, column("correct")?);
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let line = i + 2;
        let field = |at: usize| {
            row.get(at)
                .ok_or_else(|| bad(line, format!("{} fields, too few", row.len())))
        };
        let answer = field(answer)?
            .parse::<usize>()
            .map_err(|e| bad(line, format!("answer: {e}")))?;
        let correct = match field(correct)?.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(bad(
                    line,
                    format!("correct is `{other}`, not true or false"),
                ));
            }
        };
        out.push(TrialOutcome {
            query: field(query)?.clone(),
            candidates: field(candidates)?.clone(),
            answer,
            correct,
        });
    }
    if out.is_empty() {
        return Err(bad(2, "no trials".into()));
    }
    Ok(out)
}

/// The most groups the Markdown lists one row each (the 20 test alphabets, 20 runs).
pub const GROUP_ROWS: usize = 60;

/// The comparison of scorer A and scorer B on the same trials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub a: Accuracy,
    pub b: Accuracy,
    /// Trials only A got right, and only B.
    pub only_a: usize,
    pub only_b: usize,
    /// B's accuracy minus A's, as a fraction.
    pub difference: f64,
    /// Its 95% interval: from the paired trials (Wald), or from resampling whole groups when
    /// the trials come in runs that share alphabet and drawers.
    pub ci_low: f64,
    pub ci_high: f64,
    /// How the interval was made.
    pub interval: String,
    /// Two-sided exact McNemar test: the chance of a split of the disagreements at least this
    /// uneven if A and B were equally good (binomial, p = 1/2).
    pub p_value: f64,
    /// Per group (alphabet or run), by name.
    pub per_group: Vec<GroupCounts>,
}

/// One group's trials and disagreements.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupCounts {
    pub name: String,
    pub trials: usize,
    pub only_a: usize,
    pub only_b: usize,
}

/// Two-sided exact McNemar p-value for `only_a` and `only_b` disagreements.
pub fn mcnemar_exact(only_a: usize, only_b: usize) -> f64 {
    let m = only_a + only_b;
    if m == 0 {
        return 1.0;
    }
    let k = only_a.min(only_b);
    // P(X <= k) for X ~ Binomial(m, 1/2), summed in logs so that thousands of trials do not
    // underflow: ln C(m, i) grows by ln((m - i + 1) / i).
    let (mut log_c, mut tail) = (0.0f64, 0.0f64);
    let half = -(m as f64) * std::f64::consts::LN_2;
    for i in 0..=k {
        if i > 0 {
            log_c += ((m - i + 1) as f64 / i as f64).ln();
        }
        tail += (log_c + half).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Compares A's and B's outcomes on the same trials; an error names the first trial that
/// differs, since a comparison of different trials would mean nothing.
pub fn compare(a: &[TrialOutcome], b: &[TrialOutcome]) -> Result<Comparison> {
    if a.len() != b.len() {
        return Err(EvalError::Invalid(format!(
            "the files hold {} and {} trials: compare reports of the same trials (the same \
             --protocol, --ways, --shots, --trials, --seed and split, or the same runs)",
            a.len(),
            b.len()
        )));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if (&x.query, &x.candidates, x.answer) != (&y.query, &y.candidates, y.answer) {
            return Err(EvalError::Invalid(format!(
                "trial {i} differs (query {} against {}): compare reports of the same trials \
                 (the same --protocol, --ways, --shots, --trials, --seed and split, or the same \
                 runs)",
                x.query, y.query
            )));
        }
    }
    let n = a.len();
    let count = |f: &dyn Fn(&TrialOutcome, &TrialOutcome) -> bool| {
        a.iter().zip(b).filter(|(x, y)| f(x, y)).count()
    };
    let only_a = count(&|x, y| x.correct && !y.correct);
    let only_b = count(&|x, y| !x.correct && y.correct);
    let correct_a = count(&|x, _| x.correct);
    let correct_b = count(&|_, y| y.correct);
    let difference = (only_b as f64 - only_a as f64) / n as f64;

    let mut groups: BTreeMap<&str, GroupCounts> = BTreeMap::new();
    for (x, y) in a.iter().zip(b) {
        let g = groups.entry(x.group()).or_insert_with(|| GroupCounts {
            name: x.group().to_string(),
            trials: 0,
            only_a: 0,
            only_b: 0,
        });
        g.trials += 1;
        g.only_a += (x.correct && !y.correct) as usize;
        g.only_b += (!x.correct && y.correct) as usize;
    }
    let per_group: Vec<GroupCounts> = groups.into_values().collect();

    let in_runs = per_group.iter().all(|g| is_run(&g.name));
    let (ci_low, ci_high, interval) = if in_runs {
        let groups: Vec<(f64, usize)> = per_group
            .iter()
            .map(|g| (g.only_b as f64 - g.only_a as f64, g.trials))
            .collect();
        let (lo, hi) = bootstrap_mean_over_groups(&groups, BOOTSTRAP_RESAMPLES);
        (
            lo,
            hi,
            format!("resampling the {} runs whole", per_group.len()),
        )
    } else {
        // The paired difference's standard error from the disagreements alone.
        let (b_, c_) = (only_a as f64, only_b as f64);
        let se = ((b_ + c_) - (c_ - b_).powi(2) / n as f64).max(0.0).sqrt() / n as f64;
        (
            difference - Z95 * se,
            difference + Z95 * se,
            "paired trials (Wald)".to_string(),
        )
    };
    Ok(Comparison {
        a: Accuracy::from_counts(correct_a, n, 0),
        b: Accuracy::from_counts(correct_b, n, 0),
        only_a,
        only_b,
        difference,
        ci_low,
        ci_high,
        interval,
        p_value: mcnemar_exact(only_a, only_b),
        per_group,
    })
}

/// `run` followed by digits: a Lake-style run's folder.
fn is_run(name: &str) -> bool {
    name.strip_prefix("run")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Comparison {
    pub fn to_markdown(&self, name_a: &str, name_b: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} trials, the same in both files.\n", self.a.total);
        let _ = writeln!(s, "| | accuracy | 95% CI | correct |\n|---|---|---|---|");
        for (tag, name, acc) in [("A", name_a, &self.a), ("B", name_b, &self.b)] {
            let _ = writeln!(
                s,
                "| {tag}: {name} | {:.2}% | {:.1}-{:.1}% | {} |",
                100.0 * acc.accuracy,
                100.0 * acc.ci_low,
                100.0 * acc.ci_high,
                acc.correct
            );
        }
        let _ = writeln!(
            s,
            "\nB - A: {:+.2} points, 95% interval [{:+.2}, {:+.2}] ({}).\n\
             They disagree on {} trials: only A right on {}, only B right on {}; exact McNemar \
             test, two-sided {}.",
            100.0 * self.difference,
            100.0 * self.ci_low,
            100.0 * self.ci_high,
            self.interval,
            self.only_a + self.only_b,
            self.only_a,
            self.only_b,
            format_p(self.p_value)
        );
        if self.interval.starts_with("resampling") {
            let _ = writeln!(
                s,
                "A run's trials share an alphabet and a pair of drawers, so the p-value, which \
                 treats the trials as independent, is too small; prefer the interval."
            );
        }
        if self.per_group.len() > GROUP_ROWS {
            let _ = writeln!(
                s,
                "\n{} groups: their counts are in the JSON (`compare --out`).",
                self.per_group.len()
            );
            return s;
        }
        let _ = writeln!(
            s,
            "\n| group | trials | only A right | only B right |\n|---|---|---|---|"
        );
        for g in &self.per_group {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                g.name, g.trials, g.only_a, g.only_b
            );
        }
        s
    }
}

/// `p = 0.039`, with two or three significant digits, or `p < 0.0001`.
pub fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".into()
    } else if p < 0.01 {
        format!("p = {p:.4}")
    } else if p < 0.1 {
        format!("p = {p:.3}")
    } else {
        format!("p = {p:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "trial,query,query_file,answer,predicted,correct,tied,answer_score,\
                          predicted_score,margin,candidates,scores\n";

    fn outcome(query: &str, correct: bool) -> TrialOutcome {
        TrialOutcome {
            query: query.into(),
            candidates: "x;y".into(),
            answer: 0,
            correct,
        }
    }

    /// `n` trials of `group`: `both` right in both, then `only_a`, then `only_b`, the rest
    /// wrong in both.
    fn pair(
        group: &str,
        n: usize,
        both: usize,
        only_a: usize,
        only_b: usize,
    ) -> (Vec<TrialOutcome>, Vec<TrialOutcome>) {
        (0..n)
            .map(|i| {
                let q = format!("{group}/character{i:02}/drawer02");
                let (a, b) = if i < both {
                    (true, true)
                } else if i < both + only_a {
                    (true, false)
                } else if i < both + only_a + only_b {
                    (false, true)
                } else {
                    (false, false)
                };
                (outcome(&q, a), outcome(&q, b))
            })
            .unzip()
    }

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // 10 against 2 disagreements: P(X <= 2) for Binomial(12, 1/2) = (1 + 12 + 66) / 4096.
        let p = mcnemar_exact(10, 2);
        assert!((p - 2.0 * 79.0 / 4096.0).abs() < 1e-12, "{p}");
        assert_eq!(
            mcnemar_exact(2, 10),
            p,
            "two-sided: the order does not matter"
        );
        assert!((mcnemar_exact(0, 10) - 2.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        // Thousands of disagreements neither underflow nor overflow: the normal
        // approximation gives z = 200 / sqrt(2000) = 4.47, p ~ 7.7e-6.
        let p = mcnemar_exact(900, 1100);
        assert!((5e-6..1.2e-5).contains(&p), "{p}");
        assert_eq!(mcnemar_exact(1000, 1000), 1.0);
    }

    #[test]
    fn sampled_trials_get_the_paired_wald_interval() {
        // 100 trials: 80 right in both, 10 only A, 2 only B. B - A = -8 points; the standard
        // error is sqrt(12 - 64 / 100) / 100 = 0.033705, so +- 6.606 points.
        let (a, b) = pair("Greek", 100, 80, 10, 2);
        let c = compare(&a, &b).unwrap();
        assert_eq!((c.a.correct, c.b.correct), (90, 82));
        assert_eq!((c.only_a, c.only_b), (10, 2));
        assert!((c.difference + 0.08).abs() < 1e-12);
        assert!((c.ci_low + 0.146_06).abs() < 1e-4, "{}", c.ci_low);
        assert!((c.ci_high + 0.013_94).abs() < 1e-4, "{}", c.ci_high);
        assert_eq!(c.interval, "paired trials (Wald)");
        assert!((c.p_value - 0.038_574).abs() < 1e-5);
        assert_eq!(
            c.per_group,
            [GroupCounts {
                name: "Greek".into(),
                trials: 100,
                only_a: 10,
                only_b: 2
            }]
        );
        let md = c.to_markdown("old.trials.csv", "new.trials.csv");
        assert!(md.contains("| A: old.trials.csv | 90.00% |"), "{md}");
        assert!(md.contains("| B: new.trials.csv | 82.00% |"), "{md}");
        assert!(
            md.contains("B - A: -8.00 points, 95% interval [-14.61, -1.39]"),
            "{md}"
        );
        assert!(md.contains("only A right on 10, only B right on 2"), "{md}");
        assert!(md.contains("two-sided p = 0.039."), "{md}");
        assert!(md.contains("| Greek | 100 | 10 | 2 |"), "{md}");
        assert_eq!(format_p(3e-5), "p < 0.0001");
        assert_eq!(format_p(0.0021), "p = 0.0021");
        assert_eq!(format_p(0.5), "p = 0.50");
    }

    #[test]
    fn runs_are_resampled_whole() {
        // Two runs: B gains 4 trials in one and none in the other, +4 of 40 (+10 points).
        // Resampling the two runs draws +0, +4 or +8 of 40: an interval of [0, +20] points.
        let (mut a, mut b) = pair("run01", 20, 10, 0, 4);
        let (a2, b2) = pair("run02", 20, 15, 0, 0);
        a.extend(a2);
        b.extend(b2);
        let c = compare(&a, &b).unwrap();
        assert!((c.difference - 0.1).abs() < 1e-12);
        assert_eq!(c.interval, "resampling the 2 runs whole");
        assert_eq!((c.ci_low, c.ci_high), (0.0, 0.2));
        let md = c.to_markdown("a", "b");
        assert!(md.contains("prefer the interval"), "{md}");
        assert!(md.contains("| run01 | 20 | 0 | 4 |"), "{md}");
        // One group that is not a run, and the paired interval is back.
        let (a3, b3) = pair("Greek", 20, 10, 1, 1);
        a.extend(a3);
        b.extend(b3);
        assert_eq!(compare(&a, &b).unwrap().interval, "paired trials (Wald)");
    }

    #[test]
    fn different_trials_are_refused_by_index() {
        let (a, mut b) = pair("Greek", 5, 3, 1, 0);
        b[3].query = "Greek/character09/drawer05".into();
        let err = compare(&a, &b).unwrap_err().to_string();
        assert!(err.contains("trial 3 differs"), "{err}");
        assert!(err.contains("the same --protocol"), "{err}");
        b.pop();
        let err = compare(&a, &b).unwrap_err().to_string();
        assert!(err.contains("5 and 4 trials"), "{err}");
    }

    #[test]
    fn a_trials_csv_is_read_with_its_quoted_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trials.csv");
        let text = format!(
            "{HEADER}0,Greek/alpha/drawer02,\"q,1.png\",0,1,false,false,0.5,2.0,-1.5,\
             Greek/alpha/drawer01;Greek/beta/drawer01,0.5;2.0\n\
             1,\"Odd \"\"name\"\"/beta/drawer02\",q2.png,1,1,true,false,0.25,0.25,1.25,\
             \"a,b;c\",-1.0;0.25\r\n"
        );
        std::fs::write(&path, text).unwrap();
        let t = read_trials(&path).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].query, "Greek/alpha/drawer02");
        assert_eq!(t[0].candidates, "Greek/alpha/drawer01;Greek/beta/drawer01");
        assert_eq!((t[0].answer, t[0].correct), (0, false));
        assert_eq!(t[1].query, "Odd \"name\"/beta/drawer02");
        assert_eq!(t[1].group(), "Odd \"name\"");
        assert_eq!((t[1].candidates.as_str(), t[1].correct), ("a,b;c", true));
    }

    #[test]
    fn a_file_that_is_no_trials_csv_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, "alphabet,accuracy\nGreek,0.5\n").unwrap();
        let err = read_trials(&path).unwrap_err().to_string();
        assert!(
            err.contains("report.csv: line 1: no `query` column")
                && err.contains("written by `eval --out`"),
            "{err}"
        );
        std::fs::write(
            &path,
            format!("{HEADER}0,G/a/d,f,0,0,yes,false,1,1,1,x,1\n"),
        )
        .unwrap();
        let err = read_trials(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: correct is `yes`"), "{err}");
        std::fs::write(&path, format!("{HEADER}0,G/a/d\n")).unwrap();
        let err = read_trials(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: 2 fields, too few"), "{err}");
        std::fs::write(&path, HEADER).unwrap();
        let err = read_trials(&path).unwrap_err().to_string();
        assert!(err.contains("no trials"), "{err}");
        let err = read_trials(&dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.csv"), "{err}");
    }
}
