//! Binary cross-entropy on logits, in the numerically stable form
//! `max(z, 0) - z * y + log(1 + exp(-|z|))`.

use candle_core::Tensor;

use crate::error::Result;

/// Per-element BCE of `logits` against `labels` (same shapes).
fn bce_elements(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((logits.relu()? - (logits * labels)?)? + softplus)?)
}

/// Mean BCE of `logits` against `labels` (0 or 1), both `[N]`.
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(bce_elements(logits, labels)?.mean_all()?)
}

/// Weighted sum (not mean) of per-element BCE: `sum(weight * bce(logits, labels))`.
pub fn bce_with_logits_weighted(
    logits: &Tensor,
    labels: &Tensor,
    weight: &Tensor,
) -> Result<Tensor> {
    Ok((bce_elements(logits, labels)? * weight)?.sum_all()?)
}

/// The same on the host, for checking.
pub fn bce_with_logits_host(logits: &[f32], labels: &[f32]) -> f32 {
    let total: f32 = logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln())
        .sum();
    total / logits.len().max(1) as f32
}
