//! Support-set adaptation: before a trial is scored, the head is tuned to the trial's own
//! candidates. Within one alphabet the dimensions of the embedding that tell characters apart
//! are not those that matter across alphabets, and a one-shot learner may use its support set
//! to find out which they are. Each candidate is distorted a few times (the training
//! augmentation's ranges), and each dimension's head weight is rescaled so that the
//! distorted copies pick their own candidate among the trial's candidates. Only the
//! candidates are used, never the query or other trials, so every trial is scored on its own.
//!
//! The weights are `w_d = w0_d * exp(a_d)`: a scale per dimension keeps the head's signs and
//! makes the penalty `l2 / 2 * |a|^2` independent of the embedding's scale.

use data::AffineConfig;
use model::Distance;
use model::net::dot;

/// Bound on each log-scale.
const MAX_LOG_SCALE: f32 = 8.0;

/// Settings of the adaptation (`eval --adapt STEPS`). The defaults, with 50 steps, were chosen
/// on the validation split (results/validation-screens.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptConfig {
    /// Distorted copies of each candidate.
    pub views: usize,
    /// Gradient steps on the log-scales.
    pub steps: usize,
    /// Step size.
    pub lr: f32,
    /// Penalty on the log-scales, pulling the head back to the trained one.
    pub l2: f32,
    /// Seed of the distortions (each image's copies depend only on it and the image).
    pub seed: u64,
    /// Fit in the pair views the query is scored in (paired turns, mirror images): each copy
    /// is compared with each candidate in every view and its logit is the mean over the
    /// views, as the query's is. Off: upright copies against upright candidates.
    pub in_views: bool,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            views: 8,
            steps: 0,
            lr: 1.0,
            l2: 0.01,
            seed: 0,
            in_views: false,
        }
    }
}

impl AdaptConfig {
    pub fn enabled(&self) -> bool {
        self.steps > 0 && self.views > 0
    }

    /// The distortions the copies are drawn from: Koch's ranges, every component applied
    /// (a copy left as it is would teach nothing).
    pub fn distortions() -> AffineConfig {
        AffineConfig {
            probability: 1.0,
            ..AffineConfig::koch()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "the adaptation step size must be > 0, not {}",
                self.lr
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(format!(
                "the adaptation penalty must be >= 0, not {}",
                self.l2
            ));
        }
        Ok(())
    }
}

/// The mean cross-entropy of the copies picking their own candidate, and its gradient with
/// respect to the log-scales `a` (the penalty is applied in the update, see `adapted_weights`).
///
/// `contrib[v][j]` holds `w0_d * dist(copy_v - candidate_j)_d` for every dimension `d`, and
/// `owner[v]` is the candidate copy `v` was made from.
fn loss_and_grad(contrib: &[Vec<Vec<f32>>], owner: &[usize], a: &[f32]) -> (f32, Vec<f32>) {
    let scale: Vec<f32> = a.iter().map(|x| x.exp()).collect();
    let mut grad = vec![0f32; a.len()];
    let mut loss = 0f32;
    for (rows, &own) in contrib.iter().zip(owner) {
        let logits: Vec<f32> = rows.iter().map(|g| dot(g, &scale)).collect();
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
        let total: f32 = exps.iter().sum();
        loss += top + total.ln() - logits[own];
        for (j, g) in rows.iter().enumerate() {
            let coef = exps[j] / total - if j == own { 1.0 } else { 0.0 };
            grad.iter_mut().zip(g).for_each(|(d, g)| *d += coef * g);
        }
    }
    let n = contrib.len().max(1) as f32;
    grad.iter_mut()
        .zip(&scale)
        .for_each(|(d, s)| *d = *d * s / n);
    (loss / n, grad)
}

/// The adapted head weights for one trial. `candidates[j]` is candidate j's embedding and
/// `copies[j]` the embeddings of its distorted copies; `w0` is the trained head and
/// `distance` what it weighs.
pub fn adapted_weights(
    w0: &[f32],
    distance: Distance,
    candidates: &[&[f32]],
    copies: &[Vec<&[f32]>],
    cfg: &AdaptConfig,
) -> Vec<f32> {
    if candidates.len() < 2 || copies.iter().all(|c| c.is_empty()) {
        return w0.to_vec();
    }
    let (contrib, owner) = contributions(w0, distance, candidates, copies);
    let mut a = vec![0f32; w0.len()];
    // A proximal step for the penalty: stable for any step size and penalty, where a plain
    // gradient step on it diverges once lr * l2 > 2. The clamp keeps exp() finite whatever
    // the step size; a factor of e^8 either way is far beyond any useful rescaling.
    let shrink = 1.0 / (1.0 + cfg.lr * cfg.l2);
    for _ in 0..cfg.steps {
        let (_, grad) = loss_and_grad(&contrib, &owner, &a);
        a.iter_mut().zip(&grad).for_each(|(x, g)| {
            *x = ((*x - cfg.lr * g) * shrink).clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE)
        });
    }
    w0.iter().zip(&a).map(|(w, x)| w * x.exp()).collect()
}

/// `w0_d * dist(copy - candidate)_d` for every copy and candidate, and each copy's candidate.
/// Embeddings may hold several views, one after another (`w0.len()` values each, the same
/// views in the same order for every image); a contribution is then the mean over the views.
fn contributions(
    w0: &[f32],
    distance: Distance,
    candidates: &[&[f32]],
    copies: &[Vec<&[f32]>],
) -> (Vec<Vec<Vec<f32>>>, Vec<usize>) {
    let dim = w0.len().max(1);
    let mut contrib = Vec::new();
    let mut owner = Vec::new();
    for (i, own) in copies.iter().enumerate() {
        for copy in own {
            contrib.push(
                candidates
                    .iter()
                    .map(|c| {
                        debug_assert_eq!(copy.len(), c.len());
                        let views = (copy.len() / dim).max(1) as f32;
                        let mut g = vec![0f32; w0.len()];
                        for (x, y) in copy.chunks_exact(dim).zip(c.chunks_exact(dim)) {
                            g.iter_mut()
                                .zip(w0.iter().zip(x.iter().zip(y)))
                                .for_each(|(g, (w, (x, y)))| *g += w * distance.of(x - y));
                        }
                        g.iter_mut().for_each(|g| *g /= views);
                        g
                    })
                    .collect(),
            );
            owner.push(i);
        }
    }
    (contrib, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapted_l1(
        w0: &[f32],
        candidates: &[&[f32]],
        copies: &[Vec<&[f32]>],
        cfg: &AdaptConfig,
    ) -> Vec<f32> {
        adapted_weights(w0, Distance::L1, candidates, copies, cfg)
    }

    fn contributions_l1(
        w0: &[f32],
        candidates: &[&[f32]],
        copies: &[Vec<&[f32]>],
    ) -> (Vec<Vec<Vec<f32>>>, Vec<usize>) {
        contributions(w0, Distance::L1, candidates, copies)
    }

    #[test]
    fn dot_products_of_any_length() {
        for n in [0, 3, 8, 19] {
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 / 2.0).collect();
            let want: f32 = (0..n).map(|i| i as f32 * (1.0 - i as f32 / 2.0)).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-3, "{n}");
        }
    }

    #[test]
    fn one_step_matches_the_hand_computed_gradient() {
        // Two candidates in 2 dimensions, one copy each, head w0 = (-1, -1).
        // Copy of 0 = (0.5, 0): contributions to candidate 0 (0,0): (-0.5, 0); to 1 (0,1): (-0.5, -1).
        // Copy of 1 = (0, 1): to 0: (0, -1); to 1: (0, 0).
        let w0 = [-1.0, -1.0];
        let (c0, c1) = ([0.0f32, 0.0], [0.0f32, 1.0]);
        let (v0, v1) = ([0.5f32, 0.0], [0.0f32, 1.0]);
        let cands: Vec<&[f32]> = vec![&c0, &c1];
        let copies: Vec<Vec<&[f32]>> = vec![vec![&v0], vec![&v1]];
        let (contrib, owner) = contributions_l1(&w0, &cands, &copies);
        let (loss, grad) = loss_and_grad(&contrib, &owner, &[0.0, 0.0]);
        // Copy 0: logits (-0.5, -1.5), p = (s, 1-s) with s = sigmoid(1); its loss ln(1 + e^-1).
        // Copy 1: logits (-1, 0), the same loss. Gradient of copy 0: (p - onehot(0)) . g =
        // (s-1)(-0.5, 0) + (1-s)(-0.5, -1) = (0, -(1-s)); of copy 1: (1-s)(0,-1) + (s-1)(0,0)
        // = (0, -(1-s)). Mean: (0, -(1-s)).
        let s = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((loss - (1.0 + (-1.0f32).exp()).ln()).abs() < 1e-6);
        assert!(grad[0].abs() < 1e-6);
        assert!((grad[1] + (1.0 - s)).abs() < 1e-6);

        // One step of size 1 raises the second dimension's scale to exp(1 - s); with a
        // penalty l2 the proximal step divides the log-scale by 1 + l2.
        let cfg = AdaptConfig {
            views: 1,
            steps: 1,
            lr: 1.0,
            l2: 0.0,
            seed: 0,
            in_views: false,
        };
        let w = adapted_l1(&w0, &cands, &copies, &cfg);
        assert!((w[0] + 1.0).abs() < 1e-6);
        assert!((w[1] + (1.0 - s).exp()).abs() < 1e-5);
        let w = adapted_l1(&w0, &cands, &copies, &AdaptConfig { l2: 1.0, ..cfg });
        assert!((w[1] + ((1.0 - s) / 2.0).exp()).abs() < 1e-5);
    }

    #[test]
    fn contributions_average_over_the_views() {
        // Two views of 2 dimensions each, head w0 = (-1, -2). Candidate (0,0 | 1,1), copy
        // (1,0 | 1,3): |diff| is (1,0) in view 0 and (0,2) in view 1, mean (0.5, 1), times w0.
        let w0 = [-1.0, -2.0];
        let cand = [0.0f32, 0.0, 1.0, 1.0];
        let copy = [1.0f32, 0.0, 1.0, 3.0];
        let (contrib, owner) = contributions_l1(&w0, &[&cand], &[vec![&copy]]);
        assert_eq!(owner, vec![0]);
        assert_eq!(contrib, vec![vec![vec![-0.5, -2.0]]]);
        // One view: the plain contribution.
        let (one, _) = contributions_l1(&w0, &[&cand[..2]], &[vec![&copy[..2]]]);
        assert_eq!(one, vec![vec![vec![-1.0, 0.0]]]);
        // Squared differences: (1,0) and (0,4), mean (0.5, 2), times w0.
        let (sq, _) = contributions(&w0, Distance::SquaredL2, &[&cand], &[vec![&copy]]);
        assert_eq!(sq, vec![vec![vec![-0.5, -4.0]]]);
    }

    #[test]
    fn the_penalty_pulls_back_and_the_loss_falls() {
        let w0 = [-1.0, -1.0, -1.0];
        // Dimension 0 separates the candidates and is stable under distortion; dimension 1
        // jitters with distortion; dimension 2 is constant.
        let cands = [[0.0f32, 0.0, 1.0], [1.0, 0.0, 1.0], [2.0, 0.0, 1.0]];
        let copies_owned: Vec<Vec<[f32; 3]>> = (0..3)
            .map(|i| vec![[i as f32 + 0.1, 1.0, 1.0], [i as f32 - 0.1, -1.0, 1.0]])
            .collect();
        let cand_refs: Vec<&[f32]> = cands.iter().map(|c| c.as_slice()).collect();
        let copies: Vec<Vec<&[f32]>> = copies_owned
            .iter()
            .map(|v| v.iter().map(|c| c.as_slice()).collect())
            .collect();
        let cfg = AdaptConfig {
            views: 2,
            steps: 50,
            lr: 0.5,
            l2: 0.0,
            seed: 0,
            in_views: false,
        };
        let w = adapted_l1(&w0, &cand_refs, &copies, &cfg);
        // The separating dimension gains weight; the jittering one is not touched, since its
        // contribution is the same for every candidate of a copy; the constant one neither.
        assert!(w[0] < -1.5, "{w:?}");
        assert!((w[1] + 1.0).abs() < 1e-6, "{w:?}");
        assert!((w[2] + 1.0).abs() < 1e-6, "{w:?}");
        let (contrib, owner) = contributions_l1(&w0, &cand_refs, &copies);
        let a: Vec<f32> = w.iter().zip(&w0).map(|(w, w0)| (w / w0).ln()).collect();
        let before = loss_and_grad(&contrib, &owner, &[0.0; 3]).0;
        let after = loss_and_grad(&contrib, &owner, &a).0;
        assert!(after < before, "{before} -> {after}");

        // A strong penalty keeps the head close to the trained one, and a huge step size
        // neither diverges nor leaves the clamp.
        let held = adapted_l1(&w0, &cand_refs, &copies, &AdaptConfig { l2: 100.0, ..cfg });
        assert!((held[0] + 1.0).abs() < 0.05, "{held:?}");
        let wild = adapted_l1(&w0, &cand_refs, &copies, &AdaptConfig { lr: 1e6, ..cfg });
        assert!(
            wild.iter()
                .all(|w| w.is_finite() && w.abs() <= MAX_LOG_SCALE.exp() + 1e-3),
            "{wild:?}"
        );
    }

    #[test]
    fn nothing_to_learn_leaves_the_head_alone() {
        let w0 = [-0.5, 2.0];
        let c = [1.0f32, 1.0];
        let cfg = AdaptConfig {
            steps: 10,
            ..AdaptConfig::default()
        };
        // One candidate, or no copies: the trained head.
        assert_eq!(adapted_l1(&w0, &[&c], &[vec![&c]], &cfg), w0.to_vec());
        assert_eq!(
            adapted_l1(&w0, &[&c, &c], &[vec![], vec![]], &cfg),
            w0.to_vec()
        );
        assert!(AdaptConfig { lr: 0.0, ..cfg }.validate().is_err());
        assert!(AdaptConfig { l2: -1.0, ..cfg }.validate().is_err());
        assert!(cfg.validate().is_ok());
    }
}
