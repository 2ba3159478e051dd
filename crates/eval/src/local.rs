//! Local-descriptor matching: two drawings compared part by part on an intermediate feature
//! map, each position of one matched to its most similar position of the other (the
//! image-to-image form of DN4's image-to-class measure, Li et al. 2019). The head compares
//! whole embeddings position by position; this measure lets a stroke match wherever it lies,
//! and is added to the head's logit with a weight.

/// Which feature map to match on and how much the match counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalMatch {
    /// Maps after this many conv blocks (1 = after the first).
    pub block: usize,
    /// Logit units per unit of mean best cosine similarity (0: off).
    pub weight: f32,
}

/// Positions of a `[C, H, W]` map as `H * W` unit vectors of `C` values (position-major);
/// an all-zero position stays zero and so matches nothing.
pub fn descriptors(map: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    let p = h * w;
    let mut out = vec![0f32; p * c];
    for (pos, d) in out.chunks_mut(c).enumerate() {
        for (ch, v) in d.iter_mut().enumerate() {
            *v = map[ch * p + pos];
        }
        let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 1e-12 {
            d.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// Mean over `a`'s positions of the best cosine similarity to any of `b`'s, averaged with
/// the same from `b` to `a`, so that the measure is symmetric like the head's distance.
pub fn similarity(a: &[f32], b: &[f32], channels: usize) -> f32 {
    0.5 * (best_matches(a, b, channels) + best_matches(b, a, channels))
}

fn best_matches(a: &[f32], b: &[f32], channels: usize) -> f32 {
    let positions = a.len() / channels;
    let total: f32 = a
        .chunks(channels)
        .map(|x| {
            b.chunks(channels)
                .map(|y| x.iter().zip(y).map(|(u, v)| u * v).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum();
    total / positions as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_unit_vectors_per_position() {
        // Two channels over a 1 x 2 map: position 0 is (3, 4), position 1 is (0, 0).
        let map = [3.0, 0.0, 4.0, 0.0];
        assert_eq!(descriptors(&map, [2, 1, 2]), vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn parts_match_wherever_they_lie() {
        // The same two parts in swapped places match perfectly.
        let a = [1.0, 0.0, 0.0, 1.0];
        let b = [0.0, 1.0, 1.0, 0.0];
        assert!((similarity(&a, &b, 2) - 1.0).abs() < 1e-6);
        // a's parts against one part of b: 1 and 0 from a's side (mean 0.5), 1 from b's
        // side for each of its (identical) positions.
        let c = [1.0, 0.0, 1.0, 0.0];
        assert!((similarity(&a, &c, 2) - 0.75).abs() < 1e-6);
        assert!((similarity(&c, &a, 2) - 0.75).abs() < 1e-6);
        // A 60-degree difference everywhere.
        let d = [0.5, 0.75f32.sqrt(), 0.5, 0.75f32.sqrt()];
        assert!((similarity(&c, &d, 2) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn the_training_loss_measures_what_eval_measures() {
        use model::{Device, Tensor};
        // Two queries and three candidates of 3 x 2 x 2 maps, some positions all zero.
        let (c, h, w) = (3, 2, 2);
        let len = c * h * w;
        let mut values: Vec<f32> = (0..5 * len)
            .map(|i| ((i as f32 * 0.731).sin() * 0.5 + 0.5).max(0.0))
            .collect();
        values[len..len + 3].iter_mut().for_each(|v| *v = 0.0);
        let maps = |from: usize, n: usize| {
            Tensor::from_slice(
                &values[from * len..(from + n) * len],
                (n, c, h, w),
                &Device::Cpu,
            )
            .unwrap()
        };
        let tensor = model::local::pairwise_similarity(&maps(0, 2), &maps(2, 3))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let unit = |k: usize| descriptors(&values[k * len..(k + 1) * len], [c, h, w]);
        for (i, row) in tensor.iter().enumerate() {
            for (j, got) in row.iter().enumerate() {
                let want = similarity(&unit(i), &unit(2 + j), c);
                assert!(
                    (got - want).abs() < 1e-5,
                    "({i}, {j}): {got} against {want}"
                );
            }
        }
    }
}
