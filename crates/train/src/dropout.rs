//! Inverted dropout on the embeddings of a training step. The masks are drawn on the host from
//! a stream of their own, keyed by the run's seed and the step, so a run is repeatable and a
//! resumed run drops exactly the values the uninterrupted one would have.

use candle_core::{Device, Tensor};
use rand::Rng as _;

use crate::error::Result;

/// The dropout masks' stream ("drop"), apart from the samplers' and the initialisation's.
const STREAM_DROPOUT: u32 = 0xd209;

/// The mask of step `step`: `n * d` values, each `0` with probability `p` and `1 / (1 - p)`
/// otherwise, so that the masked embedding has the unmasked one's expectation.
pub fn mask(n: usize, d: usize, p: f64, seed: u64, step: u64) -> Vec<f32> {
    let mut rng = data::rng_for(seed, STREAM_DROPOUT, step, 0);
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..n * d)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect()
}

/// `embeddings` (`[N, D]`) with step `step`'s mask applied; unchanged when `p` is 0.
pub fn apply(embeddings: Tensor, p: f64, seed: u64, step: u64, device: &Device) -> Result<Tensor> {
    if p == 0.0 {
        return Ok(embeddings);
    }
    let (n, d) = embeddings.dims2()?;
    let m = Tensor::from_vec(mask(n, d, p, seed, step), (n, d), device)?;
    Ok(embeddings.mul(&m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_drop_about_p_and_scale_the_rest_to_keep_the_mean() {
        let m = mask(100, 1000, 0.2, 5, 17);
        let zeros = m.iter().filter(|&&v| v == 0.0).count();
        // 100,000 Bernoulli(0.2) draws: sd 126, so 19,500..20,500 is a 4-sd band.
        assert!((19_500..=20_500).contains(&zeros), "{zeros} zeros");
        assert!(
            m.iter().all(|&v| v == 0.0 || v == 1.25),
            "kept values are 1 / 0.8"
        );
        let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn a_mask_is_a_function_of_seed_and_step() {
        assert_eq!(mask(8, 64, 0.5, 1, 2), mask(8, 64, 0.5, 1, 2));
        assert_ne!(mask(8, 64, 0.5, 1, 2), mask(8, 64, 0.5, 1, 3));
        assert_ne!(mask(8, 64, 0.5, 1, 2), mask(8, 64, 0.5, 2, 2));
    }

    #[test]
    fn apply_multiplies_by_the_mask_and_zero_p_is_the_identity() {
        let dev = Device::Cpu;
        let values: Vec<f32> = (0..24).map(|i| i as f32 - 7.5).collect();
        let e = Tensor::from_vec(values.clone(), (4, 6), &dev).unwrap();
        let same = apply(e.clone(), 0.0, 9, 4, &dev).unwrap();
        assert_eq!(
            same.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            values
        );
        let dropped = apply(e, 0.5, 9, 4, &dev).unwrap();
        let got = dropped.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = values
            .iter()
            .zip(mask(4, 6, 0.5, 9, 4))
            .map(|(v, m)| v * m)
            .collect();
        assert_eq!(got, want);
        assert!(got.contains(&0.0) && got.iter().any(|&v| v != 0.0));
    }
}
