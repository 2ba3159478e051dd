//! Running trials through a scorer.

use data::{ImageStore, Trial};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::scorer::Scorer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: Trial,
    /// Index of the chosen candidate: the highest score, the lowest index among ties.
    pub predicted: usize,
    pub correct: bool,
    /// Whether more than one candidate shared the highest score.
    pub tied: bool,
    pub scores: Vec<f32>,
}

/// The index of the highest score; NaN counts as lowest; ties go to the lowest index.
/// Returns (index, whether the top score was shared).
pub fn choose(scores: &[f32]) -> (usize, bool) {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate().skip(1) {
        if key(s) > key(scores[best]) {
            best = i;
        }
    }
    let top = key(scores[best]);
    let tied = scores.iter().filter(|&&s| key(s) == top).count() > 1;
    (best, tied)
}

/// Scores every trial: each candidate against the query (see `Scorer::trial_scores`).
pub fn evaluate(
    scorer: &mut dyn Scorer,
    store: &ImageStore,
    trials: &[Trial],
) -> Result<Vec<TrialResult>> {
    scorer.prepare_trials(store, trials)?;
    let scorer: &dyn Scorer = scorer;
    Ok(trials
        .par_iter()
        .map(|t| {
            let scores = scorer.trial_scores(t.query, &t.candidates);
            let (predicted, tied) = choose(&scores);
            TrialResult {
                trial: t.clone(),
                predicted,
                correct: predicted == t.answer,
                tied,
                scores,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_nans_are_deterministic() {
        assert_eq!(choose(&[0.1, 0.5, 0.2]), (1, false));
        assert_eq!(choose(&[0.5, 0.5, 0.2]), (0, true));
        assert_eq!(choose(&[f32::NAN, 0.5, 0.5]), (1, true));
        assert_eq!(choose(&[f32::NAN, -1.0]), (1, false));
    }
}
