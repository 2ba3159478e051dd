//! Part-by-part similarity of feature maps as a differentiable tensor op: each position's
//! descriptor (unit length over the channels) is matched to the most similar position of the
//! other drawing, the best cosines are averaged, and the two directions are averaged (the
//! image-to-image form of DN4's measure, Li et al. 2019). The head compares embeddings
//! position by position; this lets a stroke match wherever it lies, so a training loss can
//! shape the features for it. `eval::local` computes the same measure on host slices.

use candle_core::{D, Tensor};

use crate::error::{ModelError, Result};

/// Keeps the gradient of a descriptor's length finite where every channel is zero.
const NORM_EPS: f64 = 1e-12;

/// Similarities `[Q, N]` of every query map (`queries`, `[Q, C, H, W]`) with every candidate
/// map (`candidates`, `[N, C, H', W']`): entry `(i, j)` is the mean over `q_i`'s positions of
/// the best cosine with any position of `c_j`, averaged with the same from `c_j` to `q_i`.
pub fn pairwise_similarity(queries: &Tensor, candidates: &Tensor) -> Result<Tensor> {
    let (q, c, h, w) = queries.dims4()?;
    let (n, c2, h2, w2) = candidates.dims4()?;
    if c != c2 {
        return Err(ModelError::Arch(format!(
            "local matching of maps with {c} and {c2} channels"
        )));
    }
    let (pq, pc) = (h * w, h2 * w2);
    let a = unit_descriptors(queries, q, c, pq)?;
    let b = unit_descriptors(candidates, n, c, pc)?;
    // Cosines of every query position with every candidate position: [Q, Pq, N, Pc].
    let cos = a.matmul(&b.t()?)?.reshape((q, pq, n, pc))?;
    let query_side = cos.max(3)?.mean(1)?;
    let candidate_side = cos.max(1)?.mean(2)?;
    Ok(((query_side + candidate_side)? * 0.5)?)
}

/// `[N * P, C]`: each position of each `[C, H, W]` map as a unit vector over the channels.
fn unit_descriptors(maps: &Tensor, n: usize, c: usize, p: usize) -> Result<Tensor> {
    let x = maps.reshape((n, c, p))?.transpose(1, 2)?;
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + NORM_EPS)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?.reshape((n * p, c))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn maps(values: &[f32], n: usize, c: usize, h: usize, w: usize) -> Tensor {
        Tensor::from_slice(values, (n, c, h, w), &Device::Cpu).unwrap()
    }

    #[test]
    fn parts_match_wherever_they_lie() {
        // Two channels over a 1 x 2 map, channel-major: a has parts (1, 0) and (0, 1).
        let a = maps(&[1.0, 0.0, 0.0, 1.0], 1, 2, 1, 2);
        // The same parts swapped; one part twice; a 60-degree turn of that part twice.
        let s3 = 0.75f32.sqrt();
        let cands = maps(
            &[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.5, s3, s3],
            3,
            2,
            1,
            2,
        );
        let s = pairwise_similarity(&a, &cands)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // 1 both ways; (1 + 0) / 2 from a and 1 from the other side; (0.5 + s3) / 2 from a and
        // s3 from the other side.
        let want = [1.0, 0.75, 0.5 * ((0.5 + s3) / 2.0 + s3)];
        for (got, want) in s[0].iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{:?} against {want:?}", s[0]);
        }
    }

    #[test]
    fn scale_does_not_matter_and_zero_positions_match_nothing() {
        // Position 1 of the query is all zero: it adds 0 to its side's mean.
        let a = maps(&[3.0, 0.0, 4.0, 0.0], 1, 2, 1, 2);
        let b = maps(&[0.6, 0.6, 0.8, 0.8], 1, 2, 1, 2);
        let s = pairwise_similarity(&a, &b)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((s[0][0] - 0.75).abs() < 1e-5, "{s:?}");
    }

    #[test]
    fn gradients_are_finite_at_zero_positions() {
        // Query position 0 is all zero, as a ReLU map's background can be.
        let q = Var::from_tensor(&maps(&[0.0, 1.0, 0.0, 0.0], 1, 2, 1, 2)).unwrap();
        let c = Var::from_tensor(&maps(&[1.0, 0.0, 0.0, 1.0], 1, 2, 1, 2)).unwrap();
        let s = pairwise_similarity(q.as_tensor(), c.as_tensor()).unwrap();
        let grads = s.sum_all().unwrap().backward().unwrap();
        for v in [&q, &c] {
            let g = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap();
            let g = g.to_vec1::<f32>().unwrap();
            assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
        }
    }

    #[test]
    fn gradients_agree_with_finite_differences() {
        // Distinct positive values, so that every best match is unique and stays so under a
        // small nudge.
        let (q, n, c, side) = (2, 3, 3, 2);
        let len = |k: usize| k * c * side * side;
        let value = |i: usize, salt: f32| 0.1 + ((i as f32 * 0.618 + salt).sin() * 0.5 + 0.5);
        let qv: Vec<f32> = (0..len(q)).map(|i| value(i, 0.3)).collect();
        let cv: Vec<f32> = (0..len(n)).map(|i| value(i, 1.7)).collect();
        // A weighted sum of the similarities, so that every entry counts differently.
        let weights: Vec<f32> = (0..q * n).map(|i| 1.0 + i as f32).collect();
        let objective = |qv: &[f32], cv: &[f32]| -> f32 {
            let s = pairwise_similarity(&maps(qv, q, c, side, side), &maps(cv, n, c, side, side))
                .unwrap();
            let s = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            s.iter().zip(&weights).map(|(a, b)| a * b).sum()
        };
        let var = Var::from_tensor(&maps(&qv, q, c, side, side)).unwrap();
        let cand = maps(&cv, n, c, side, side);
        let w = Tensor::from_slice(&weights, (q, n), &Device::Cpu).unwrap();
        let s = pairwise_similarity(var.as_tensor(), &cand).unwrap();
        let grads = (s * w).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        let g = g.to_vec1::<f32>().unwrap();
        assert!(g.iter().any(|x| x.abs() > 1e-2), "no gradient: {g:?}");
        let h = 1e-3;
        for k in [0, 5, 11, len(q) - 1] {
            let (mut up, mut down) = (qv.clone(), qv.clone());
            up[k] += h;
            down[k] -= h;
            let numeric = (objective(&up, &cv) - objective(&down, &cv)) / (2.0 * h);
            assert!(
                (numeric - g[k]).abs() < 2e-2,
                "entry {k}: {numeric} against {}",
                g[k]
            );
        }
    }
}
