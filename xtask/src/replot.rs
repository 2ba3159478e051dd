//! Redrawing plots from the files a run or a sweep left, without training or scoring again:
//! after a change to the plots, or for a run made by an older version.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Redraws what `path` holds the data of and returns the plots written: a sweep's folder
/// (`sweep.json`) gets `sweep.png` and `.svg`; a run's folder (`metrics.jsonl`) or a metrics
/// file (`NAME-metrics.jsonl` or `metrics.jsonl`) gets the training curves beside it
/// (`NAME-curves.png` or `curves.png`, and `.svg`); the JSON of `calibrate --plot P` gets
/// `P.png` and `P.svg`.
pub fn replot(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        if path.join("sweep.json").is_file() {
            crate::sweep::replot(path)?;
            return Ok(vec![path.join("sweep.png"), path.join("sweep.svg")]);
        }
        if path.join("metrics.jsonl").is_file() {
            return curves(&path.join("metrics.jsonl"));
        }
        bail!(
            "{} holds neither sweep.json (a sweep's folder) nor metrics.jsonl (a run's folder)",
            path.display()
        );
    }
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "json") {
            return reliability(path);
        }
        return curves(path);
    }
    bail!("{} does not exist", path.display())
}

fn curves(metrics: &Path) -> Result<Vec<PathBuf>> {
    let png = curves_path(metrics)?;
    let m = train::metrics::Metrics::load(metrics)?;
    m.plot(&png)
        .with_context(|| format!("cannot plot {}", metrics.display()))?;
    Ok(vec![png.clone(), png.with_extension("svg")])
}

fn reliability(json: &Path) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    let data: eval::calibration::DiagramData = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the JSON of `calibrate --plot` (with `before` and `after`)",
            json.display()
        )
    })?;
    let (png, svg) = (json.with_extension("png"), json.with_extension("svg"));
    data.write(Some(&png), Some(&svg))?;
    Ok(vec![png, svg])
}

/// `DIR/metrics.jsonl` → `DIR/curves.png`, `DIR/NAME-metrics.jsonl` → `DIR/NAME-curves.png`.
pub fn curves_path(metrics: &Path) -> Result<PathBuf> {
    let name = metrics
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(stem) = name.strip_suffix("metrics.jsonl") else {
        bail!(
            "{} is not a metrics file (expected a name ending in metrics.jsonl)",
            metrics.display()
        );
    };
    Ok(metrics.with_file_name(format!("{stem}curves.png")))
}
