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

    /// Loss and validation accuracy against the step, as a PNG.
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
        let loss = vec![
            Series {
                name: "train".into(),
                points: train,
            },
            Series {
                name: "validation".into(),
                points: val_loss,
            },
        ];
        let acc = vec![Series {
            name: match val_turns {
                1 => "validation (95% CI)".into(),
                n => format!("validation, {n} paired turns (95% CI)"),
            },
            points: val_acc,
        }];
        eval::plot::write_training_curves(path, &loss, &acc)?;
        Ok(())
    }
}
