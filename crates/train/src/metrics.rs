//! The metrics file (`metrics.jsonl`, one JSON object per line) and the curves plot.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// Mean over the last `log_every` steps.
    Train {
        step: u64,
        epoch: f64,
        loss: f64,
        lr: f64,
        pairs_per_s: f64,
        /// Fraction of the step time spent waiting for the next batch.
        data_wait: f64,
    },
    Val {
        step: u64,
        epoch: f64,
        loss: f64,
        accuracy: f64,
        ci_low: f64,
        ci_high: f64,
        trials: usize,
        /// Paired turns the trials were scored in (absent, and 1, before 2026-11-30).
        #[serde(default = "upright")]
        turns: usize,
    },
}

fn upright() -> usize {
    1
}

impl Record {
    pub fn step(&self) -> u64 {
        match self {
            Record::Train { step, .. } | Record::Val { step, .. } => *step,
        }
    }
}

pub struct Metrics {
    path: PathBuf,
    pub records: Vec<Record>,
}

impl Metrics {
    /// Opens `path`, keeping only records up to `keep_until` (a resumed run rewrites what came
    /// after its checkpoint).
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        let mut records = Vec::new();
        if let Some(until) = keep_until
            && let Ok(text) = std::fs::read_to_string(path)
        {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let r: Record = serde_json::from_str(line)
                    .map_err(|e| TrainError::file(path, format!("bad metrics line: {e}")))?;
                if r.step() <= until {
                    records.push(r);
                }
            }
        }
        let m = Metrics {
            path: path.to_path_buf(),
            records,
        };
        m.rewrite()?;
        Ok(m)
    }

    fn rewrite(&self) -> Result<()> {
        let mut text = String::new();
        for r in &self.records {
            text.push_str(&serde_json::to_string(r).expect("records serialize"));
            text.push('\n');
        }
        model::io::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| TrainError::file(&self.path, e))
    }

    pub fn push(&mut self, r: Record) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| TrainError::file(&self.path, e))?;
        writeln!(
            f,
            "{}",
            serde_json::to_string(&r).expect("records serialize")
        )
        .map_err(|e| TrainError::file(&self.path, e))?;
        self.records.push(r);
        Ok(())
    }

    /// Best validation accuracy so far, with its step.
    pub fn best_val(&self) -> Option<(u64, f64)> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Val { step, accuracy, .. } => Some((*step, *accuracy)),
                _ => None,
            })
            .fold(None, |best: Option<(u64, f64)>, (s, a)| match best {
                Some((_, b)) if b >= a => best,
                _ => Some((s, a)),
            })
    }

    /// Reads a metrics file without changing it (for re-plotting a finished run).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
        let mut records = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Record = serde_json::from_str(line)
                .map_err(|e| TrainError::file(path, format!("bad metrics line {}: {e}", n + 1)))?;
            records.push(r);
        }
        Ok(Metrics {
            path: path.to_path_buf(),
            records,
        })
    }

    /// Loss and validation accuracy against the step: a PNG at `path` and an SVG beside it.
    /// The training loss, logged as the mean of each few steps, is drawn faint behind its
    /// running mean, which is what shows the trend.
    pub fn plot(&self, path: &Path) -> Result<()> {
        use eval::plot::Series;
        let train: Vec<_> = self
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Train { step, loss, .. } => Some((*step as f64, *loss, *loss, *loss)),
                _ => None,
            })
            .collect();
        let (mut val_loss, mut val_acc, mut val_turns) = (Vec::new(), Vec::new(), 1);
        for r in &self.records {
            if let Record::Val {
                step,
                loss,
                accuracy,
                ci_low,
                ci_high,
                turns,
                ..
            } = r
            {
                val_loss.push((*step as f64, *loss, *loss, *loss));
                val_acc.push((*step as f64, *accuracy, *ci_low, *ci_high));
                val_turns = *turns;
            }
        }
        let window = smoothing_window(train.len());
        let mut loss = Vec::new();
        if window > 1 {
            let log_every = match train.as_slice() {
                [a, b, ..] => (b.0 - a.0).max(1.0),
                _ => 1.0,
            };
            let smooth = running_mean(&train, window);
            loss.push(Series::faint(train));
            loss.push(Series::line(
                format!(
                    "train (running mean of {} steps)",
                    window as f64 * log_every
                ),
                smooth,
            ));
        } else {
            loss.push(Series::line("train", train));
        }
        loss.push(Series::line("validation", val_loss));
        let acc = vec![Series::line(
            match val_turns {
                1 => "validation (95% CI)".into(),
                n => format!("validation, {n} paired turns (95% CI)"),
            },
            val_acc,
        )];
        eval::plot::write_training_curves(path, Some(&path.with_extension("svg")), &loss, &acc)?;
        Ok(())
    }
}

/// How many logged points the training loss's running mean spans: about a fiftieth of the run,
/// so that its trend reads the same for short and long runs.
pub fn smoothing_window(points: usize) -> usize {
    (points / 50).max(1)
}

/// The mean of each point's last `window` values (fewer at the start); bars collapse to the mean.
pub fn running_mean(points: &[(f64, f64, f64, f64)], window: usize) -> Vec<(f64, f64, f64, f64)> {
    let window = window.max(1);
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            sum += p.1;
            if i >= window {
                sum -= points[i - window].1;
            }
            let mean = sum / (i + 1).min(window) as f64;
            (p.0, mean, mean, mean)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: f64, y: f64) -> (f64, f64, f64, f64) {
        (step, y, y, y)
    }

    #[test]
    fn the_running_mean_averages_the_last_window_points() {
        let points = [at(10.0, 4.0), at(20.0, 2.0), at(30.0, 6.0), at(40.0, 0.0)];
        let smooth = running_mean(&points, 2);
        // (4), (4+2)/2, (2+6)/2, (6+0)/2, at the same steps.
        assert_eq!(
            smooth,
            vec![at(10.0, 4.0), at(20.0, 3.0), at(30.0, 4.0), at(40.0, 3.0)]
        );
        assert_eq!(running_mean(&points, 1), points.to_vec());
        assert_eq!(running_mean(&points, 0), points.to_vec());
        assert_eq!(smoothing_window(1_200), 24);
        assert_eq!(smoothing_window(30), 1);
    }

    #[test]
    fn a_bad_metrics_line_names_the_file_and_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"kind\":\"train\",\"step\":10,\"epoch\":0.1,\"loss\":1.0,\"lr\":0.1,\
             \"pairs_per_s\":1.0,\"data_wait\":0.0}\n\nnot json\n",
        )
        .unwrap();
        let err = Metrics::load(&path).err().expect("a bad line").to_string();
        assert!(err.contains("metrics.jsonl"), "{err}");
        assert!(err.contains("bad metrics line 3"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(Metrics::load(&path).unwrap().records.is_empty());
        let missing = Metrics::load(&tmp.path().join("none.jsonl")).err().unwrap();
        assert!(missing.to_string().contains("none.jsonl"), "{missing}");
    }

    #[test]
    fn loading_leaves_the_file_as_it_was_and_plots_png_and_svg() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        let mut m = Metrics::open(&path, None).unwrap();
        for step in 1..=120u64 {
            m.push(Record::Train {
                step: 10 * step,
                // Values JSON writes and reads back exactly.
                epoch: step as f64 / 128.0,
                loss: 1.0 + (step % 8) as f64 / 8.0,
                lr: 0.1,
                pairs_per_s: 1.0,
                data_wait: 0.0,
            })
            .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let loaded = Metrics::load(&path).unwrap();
        assert_eq!(loaded.records, m.records);
        loaded.plot(&tmp.path().join("curves.png")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let svg = std::fs::read_to_string(tmp.path().join("curves.svg")).unwrap();
        // 120 logs of 10 steps: a running mean over 2 logs, 20 steps.
        assert!(
            svg.contains("train (running mean of 20 steps)"),
            "no legend entry"
        );
        assert!(svg.contains("held nothing out"));
        assert!(tmp.path().join("curves.png").is_file());
    }
}
