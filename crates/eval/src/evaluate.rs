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
    /// Each candidate's score (in a K-shot trial, its class score: `Scorer::class_scores`).
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

/// Each class's score: the mean of its members' scores, `label_of[i]` being the class of
/// `scores[i]` and `counts[c]` the number of members of class `c`. How scorers without
/// embeddings (the baselines) score a candidate that shows several drawings
/// (`Scorer::class_scores`).
pub fn mean_per_class(scores: &[f32], label_of: &[usize], counts: &[f32]) -> Vec<f32> {
    let mut means = vec![0f32; counts.len()];
    for (&label, &score) in label_of.iter().zip(scores) {
        means[label] += score;
    }
    means.iter_mut().zip(counts).for_each(|(m, n)| *m /= n);
    means
}

/// Scores every trial: each candidate against the query (see `Scorer::trial_scores`), a
/// K-shot trial's candidates by `Scorer::class_scores`.
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
            let scores = if t.shots > 1 {
                let label_of: Vec<usize> = (0..t.candidates.len()).map(|i| i / t.shots).collect();
                let counts = vec![t.shots as f32; t.ways()];
                scorer.class_scores(t.query, &t.candidates, &label_of, &counts)
            } else {
                scorer.trial_scores(t.query, &t.candidates)
            };
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

    #[test]
    fn class_scores_are_means_of_their_members() {
        let means = mean_per_class(
            &[1.0, 3.0, -2.0, 0.5, 4.0],
            &[0, 0, 1, 2, 2],
            &[2.0, 1.0, 2.0],
        );
        assert_eq!(means, vec![2.0, -2.0, 2.25]);
    }
}
