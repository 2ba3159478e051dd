//! Running trials through a scorer.

use data::{ImageId, ImageStore, Trial};
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

/// Each class's score: the mean of its members' scores, `scores` holding the members of
/// `classes` one class after another. How scorers without embeddings (the baselines) score a
/// candidate that shows several drawings (`Scorer::class_scores`).
pub fn mean_per_class(scores: &[f32], classes: &[&[ImageId]]) -> Vec<f32> {
    let mut rest = scores;
    classes
        .iter()
        .map(|members| {
            let (own, next) = rest.split_at(members.len());
            rest = next;
            own.iter().sum::<f32>() / own.len() as f32
        })
        .collect()
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
                let classes: Vec<&[ImageId]> = t.supports().collect();
                scorer.class_scores(t.query, &classes)
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
        let means = mean_per_class(&[1.0, 3.0, -2.0, 0.5, 4.0], &[&[7, 8], &[9], &[3, 4]]);
        assert_eq!(means, vec![2.0, -2.0, 2.25]);
    }
}
