//! Hubness correction: some candidates ("hubs") look like many characters of their alphabet
//! and draw wrong matches. Each candidate's score is lowered by how much it resembles its
//! nearest fellow candidates, in the spirit of CSLS (Conneau et al. 2018). It uses the
//! candidates of the trial only (the support set a one-shot learner is given), never the
//! other queries, so every trial is still scored on its own.

use data::{ImageId, ImageStore};

use crate::error::Result;
use crate::scorer::Scorer;

/// Fellow candidates a candidate's hubness is averaged over.
pub const NEIGHBOURS: usize = 3;

/// `scores[i] - beta * mean of the k largest similarities of candidate i to the other
/// candidates` (k = `neighbours`, or fewer when the trial has fewer other candidates).
/// `among(i, j)` is the similarity of candidates i and j.
pub fn corrected(
    scores: &[f32],
    among: impl Fn(usize, usize) -> f32,
    beta: f32,
    neighbours: usize,
) -> Vec<f32> {
    (0..scores.len())
        .map(|i| {
            let mut others: Vec<f32> = (0..scores.len())
                .filter(|&j| j != i)
                .map(|j| among(i, j))
                .collect();
            others.sort_by(|a, b| b.total_cmp(a));
            others.truncate(neighbours);
            if others.is_empty() {
                return scores[i];
            }
            scores[i] - beta * others.iter().sum::<f32>() / others.len() as f32
        })
        .collect()
}

/// A scorer whose trial scores are hubness-corrected; pairwise similarity is unchanged.
pub struct HubnessCorrected {
    inner: Box<dyn Scorer>,
    beta: f32,
}

impl HubnessCorrected {
    pub fn new(inner: Box<dyn Scorer>, beta: f32) -> Self {
        HubnessCorrected { inner, beta }
    }
}

impl Scorer for HubnessCorrected {
    fn name(&self) -> String {
        format!("{}, hubness {}", self.inner.name(), self.beta)
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        self.inner.prepare(store, ids)
    }

    fn prepare_trials(&mut self, store: &ImageStore, trials: &[data::Trial]) -> Result<()> {
        self.inner.prepare_trials(store, trials)
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        self.inner.similarity(a, b)
    }

    fn trial_scores(&self, query: ImageId, candidates: &[ImageId]) -> Vec<f32> {
        let scores = self.inner.trial_scores(query, candidates);
        let among = |i: usize, j: usize| self.inner.similarity(candidates[i], candidates[j]);
        corrected(&scores, among, self.beta, NEIGHBOURS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_loses_to_a_distinct_candidate() {
        // Candidate 0 resembles every other candidate (similarity 4), candidate 1 only
        // candidate 0; the query scores them 5.0 and 4.5.
        let sims = [
            [0.0, 4.0, 4.0, 4.0],
            [4.0, 0.0, 0.0, 0.0],
            [4.0, 0.0, 0.0, 1.0],
            [4.0, 0.0, 1.0, 0.0],
        ];
        let scores = [5.0, 4.5, 1.0, 0.5];
        let out = corrected(&scores, |i, j| sims[i][j], 0.5, 2);
        // 0: top two of (4, 4, 4) = 4 -> 5 - 2 = 3. 1: top two of (4, 0, 0) = 2 -> 4.5 - 1 = 3.5.
        // 2: top two of (4, 0, 1) = 2.5 -> 1 - 1.25. 3: top two of (4, 0, 1) = 2.5 -> 0.5 - 1.25.
        assert_eq!(out, vec![3.0, 3.5, -0.25, -0.75]);
        assert_eq!(crate::evaluate::choose(&scores).0, 0);
        assert_eq!(crate::evaluate::choose(&out).0, 1);
    }

    #[test]
    fn zero_beta_and_lone_candidates_leave_scores_alone() {
        let scores = [0.3, -1.0, 2.0];
        assert_eq!(corrected(&scores, |_, _| 7.0, 0.0, 3), scores.to_vec());
        assert_eq!(corrected(&[1.5], |_, _| 7.0, 1.0, 3), vec![1.5]);
        // Fewer other candidates than neighbours: the mean is over those there are.
        assert_eq!(corrected(&[1.0, 1.0], |_, _| 2.0, 1.0, 3), vec![-1.0, -1.0]);
    }
}
