//! Lake's fixed runs: every test item of a run against all of the run's training images.

use std::path::Path;

use data::image_io::read_omniglot_png;
use data::runs::{LakeRun, read_runs};
use data::store::StoreBuilder;
use data::{Framing, ImageStore, Trial};

use crate::error::Result;
use crate::evaluate::{TrialResult, evaluate};
use crate::report::{Accuracy, Group, Report, RunInterval};
use crate::scorer::Scorer;

/// The runs' images in a store at `side`, framed by `framing` (one alphabet per run, one
/// character per candidate) and the trials they define.
pub fn runs_store(
    runs: &[LakeRun],
    side: usize,
    framing: Framing,
) -> Result<(ImageStore, Vec<Vec<Trial>>)> {
    let mut b = StoreBuilder::new(side).with_framing(framing);
    let mut all = Vec::new();
    let mut next_id = 0u32;
    for run in runs {
        let alphabet = b.alphabet(&run.name);
        let mut candidate_ids = Vec::new();
        let mut characters = Vec::new();
        for path in &run.candidates {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let c = b.character(alphabet, &name);
            b.push(
                c,
                1,
                &framing.apply(&read_omniglot_png(path)?, side),
                Some(path.clone()),
            );
            characters.push(c);
            candidate_ids.push(next_id);
            next_id += 1;
        }
        let mut trials = Vec::new();
        for (query, answer) in &run.items {
            b.push(
                characters[*answer],
                2,
                &framing.apply(&read_omniglot_png(query)?, side),
                Some(query.clone()),
            );
            trials.push(Trial::one_shot(next_id, candidate_ids.clone(), *answer));
            next_id += 1;
        }
        all.push(trials);
    }
    Ok((b.finish(), all))
}

/// Evaluates `scorer` on the runs under `root` (images at `side`, framed by `framing`),
/// reporting the per-run error.
pub fn evaluate_runs(
    scorer: &mut dyn Scorer,
    root: &Path,
    side: usize,
    framing: Framing,
) -> Result<(Report, Vec<TrialResult>, ImageStore)> {
    let runs = read_runs(root)?;
    let (store, trials) = runs_store(&runs, side, framing)?;
    let flat: Vec<Trial> = trials.iter().flatten().cloned().collect();
    let results = evaluate(scorer, &store, &flat)?;
    let mut per_run = Vec::new();
    let mut offset = 0;
    for (run, t) in runs.iter().zip(&trials) {
        per_run.push(Group {
            name: run.name.clone(),
            accuracy: Accuracy::of(&results[offset..offset + t.len()]),
        });
        offset += t.len();
    }
    let ways = trials
        .first()
        .and_then(|t| t.first())
        .map(|t| t.candidates.len())
        .unwrap_or(0);
    let mut report = Report::new(
        &scorer.name(),
        "runs",
        ways,
        &root.display().to_string(),
        None,
        &store,
        &results,
    );
    report.per_alphabet.clear();
    report.across_runs = Some(RunInterval::of(&per_run));
    report.per_run = per_run;
    Ok((report, results, store))
}
