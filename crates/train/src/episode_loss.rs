//! The loss of one N-way episode, given the head's logits of every query against every
//! support.

use candle_core::{Device, Tensor};

use crate::error::{Result, TrainError};

/// What an episode's loss is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeLoss {
    /// Weight of the balanced same/different BCE over all query-support pairs, which keeps
    /// `sigmoid(logit)` a probability.
    pub pair_weight: f64,
    /// Also ask each support which query is its match (cross-entropy over the columns), and
    /// average the two directions. One query per class only: then the logits are square and
    /// each column has exactly one positive.
    pub symmetric: bool,
    /// Label smoothing of the cross-entropy: the target puts `1 - e` on the match and spreads
    /// `e` evenly over all candidates (PyTorch's convention), which bounds how far apart an
    /// episode's logits are pushed.
    pub label_smoothing: f64,
}

impl EpisodeLoss {
    /// `logits` is `[queries, ways]`; `labels[i]` is the support index of query `i`.
    pub fn compute(&self, logits: &Tensor, labels: &[u32], device: &Device) -> Result<Tensor> {
        let (q, ways) = logits.dims2()?;
        if labels.len() != q || labels.iter().any(|&l| l as usize >= ways) {
            return Err(TrainError::Config(format!(
                "an episode of {q} queries and {ways} supports has labels {labels:?}"
            )));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::Config(format!(
                "label smoothing must be in [0, 1), not {}",
                self.label_smoothing
            )));
        }
        let targets = Tensor::from_slice(labels, q, device)?;
        let mut loss = self.cross_entropy(logits, &targets)?;
        if self.symmetric {
            let mut query_of = vec![u32::MAX; ways];
            for (i, &label) in labels.iter().enumerate() {
                query_of[label as usize] = i as u32;
            }
            if q != ways || query_of.contains(&u32::MAX) {
                return Err(TrainError::Config(
                    "a symmetric episode loss needs exactly one query per class".into(),
                ));
            }
            let columns = Tensor::from_vec(query_of, ways, device)?;
            let reverse = self.cross_entropy(&logits.t()?.contiguous()?, &columns)?;
            loss = ((loss + reverse)? * 0.5)?;
        }
        if self.pair_weight > 0.0 {
            // Positives and negatives weigh half each.
            let mut target = vec![0f32; q * ways];
            let mut weight = vec![0.5 / (q * (ways - 1)) as f32; q * ways];
            for (i, &label) in labels.iter().enumerate() {
                target[i * ways + label as usize] = 1.0;
                weight[i * ways + label as usize] = 0.5 / q as f32;
            }
            let target = Tensor::from_vec(target, (q, ways), device)?;
            let weight = Tensor::from_vec(weight, (q, ways), device)?;
            let bce = model::loss::bce_with_logits_weighted(logits, &target, &weight)?;
            loss = (loss + (bce * self.pair_weight)?)?;
        }
        Ok(loss)
    }

    /// Mean cross-entropy of the rows of `logits` against `targets`, label-smoothed.
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let e = self.label_smoothing;
        if e == 0.0 {
            return Ok(candle_nn::loss::cross_entropy(logits, targets)?);
        }
        let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
        let hard = candle_nn::loss::nll(&log_p, targets)?;
        let uniform = log_p.mean_all()?.neg()?;
        Ok(((hard * (1.0 - e))? + (uniform * e)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(loss: &EpisodeLoss, logits: &[f32], shape: (usize, usize), labels: &[u32]) -> f32 {
        let dev = Device::Cpu;
        let t = Tensor::from_slice(logits, shape, &dev).unwrap();
        loss.compute(&t, labels, &dev)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn ln_sum_exp(xs: &[f32]) -> f32 {
        xs.iter().map(|x| x.exp()).sum::<f32>().ln()
    }

    fn loss(pair_weight: f64, symmetric: bool) -> EpisodeLoss {
        EpisodeLoss {
            pair_weight,
            symmetric,
            label_smoothing: 0.0,
        }
    }

    /// The row (query) cross-entropy of [`LOGITS`], by hand.
    fn rows() -> f32 {
        ((ln_sum_exp(&[0.0, 2.0]) - 2.0) + (ln_sum_exp(&[1.0, -1.0]) - 1.0)) / 2.0
    }

    // Query 0 belongs to support 1, query 1 to support 0.
    const LOGITS: [f32; 4] = [0.0, 2.0, 1.0, -1.0];
    const LABELS: [u32; 2] = [1, 0];

    #[test]
    fn rows_only_is_the_cross_entropy_of_each_query() {
        let plain = loss(0.0, false);
        let got = value(&plain, &LOGITS, (2, 2), &LABELS);
        assert!((got - rows()).abs() < 1e-6, "{got} vs {}", rows());
    }

    #[test]
    fn symmetric_averages_rows_and_columns() {
        let sym = loss(0.0, true);
        // Columns: support 0 sees queries (0.0, 1.0) and matches query 1; support 1 sees
        // (2.0, -1.0) and matches query 0.
        let rows = rows();
        let cols = ((ln_sum_exp(&[0.0, 1.0]) - 1.0) + (ln_sum_exp(&[2.0, -1.0]) - 2.0)) / 2.0;
        let got = value(&sym, &LOGITS, (2, 2), &LABELS);
        assert!((got - (rows + cols) / 2.0).abs() < 1e-6);
        // The columns here are harder than the rows, so the loss differs from rows only.
        assert!((cols - rows).abs() > 0.05);
    }

    #[test]
    fn pair_term_weighs_positives_and_negatives_half_each() {
        let pairs = loss(2.0, false);
        let bce = |z: f32, y: f32| z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln();
        let rows = rows();
        let positives = (bce(2.0, 1.0) + bce(1.0, 1.0)) / 2.0;
        let negatives = (bce(0.0, 0.0) + bce(-1.0, 0.0)) / 2.0;
        let expected = rows + 2.0 * (0.5 * positives + 0.5 * negatives);
        let got = value(&pairs, &LOGITS, (2, 2), &LABELS);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }

    #[test]
    fn label_smoothing_mixes_the_match_with_every_candidate() {
        let e = 0.2f32;
        let smooth = EpisodeLoss {
            label_smoothing: e as f64,
            ..loss(0.0, false)
        };
        // Per row: (1 - e) * (lse - z_match) + e * mean over candidates of (lse - z_j).
        let row = |z: [f32; 2], y: usize| {
            let lse = ln_sum_exp(&z);
            (1.0 - e) * (lse - z[y]) + e * ((lse - z[0]) + (lse - z[1])) / 2.0
        };
        let expected = (row([0.0, 2.0], 1) + row([1.0, -1.0], 0)) / 2.0;
        let got = value(&smooth, &LOGITS, (2, 2), &LABELS);
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        assert!(
            got > rows() + 0.05,
            "smoothing must cost confident right answers"
        );
        // Both directions are smoothed when the loss is symmetric.
        let both = EpisodeLoss {
            label_smoothing: e as f64,
            ..loss(0.0, true)
        };
        let col = (row([0.0, 1.0], 1) + row([2.0, -1.0], 0)) / 2.0;
        let got = value(&both, &LOGITS, (2, 2), &LABELS);
        assert!((got - (expected + col) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn label_smoothing_outside_its_range_is_an_error() {
        let dev = Device::Cpu;
        let t = Tensor::from_slice(&LOGITS, (2, 2), &dev).unwrap();
        for bad in [1.0, -0.1, f64::NAN] {
            let l = EpisodeLoss {
                label_smoothing: bad,
                ..loss(0.0, false)
            };
            let err = l.compute(&t, &LABELS, &dev).unwrap_err().to_string();
            assert!(err.contains("label smoothing"), "{err}");
        }
    }

    #[test]
    fn symmetric_refuses_more_than_one_query_per_class() {
        let sym = loss(0.0, true);
        let dev = Device::Cpu;
        let t = Tensor::from_slice(&[0f32; 6], (3, 2), &dev).unwrap();
        let err = sym.compute(&t, &[0, 1, 1], &dev).unwrap_err().to_string();
        assert!(err.contains("one query per class"), "{err}");
        let err = sym.compute(&t, &[0, 2, 1], &dev).unwrap_err().to_string();
        assert!(err.contains("labels"), "{err}");
    }
}
