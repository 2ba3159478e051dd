//! A linear decoder from the embedding back to the input image, trained beside the episodes
//! (`train --recon-weight`). The episode loss rewards whatever separates the training
//! characters and nothing more, so detail that no training pair needed (a single short stroke)
//! may be discarded; the validation errors turn on such strokes. Asking the embedding to hold
//! enough to redraw the whole input keeps that detail available to the L1 head. Linear, so
//! that the embedding itself must carry the picture rather than a deep decoder. A training aid
//! only: the saved model does not include it, and `eval` never sees it.

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Result, TrainError};

/// The checkpoint tensors that hold the decoder's weights and biases.
pub const WEIGHTS_NAME: &str = "aux.recon_weights";
pub const BIAS_NAME: &str = "aux.recon_bias";

pub struct ReconHead {
    /// `[dim, pixels]`.
    weights: Var,
    /// `[pixels]`.
    bias: Var,
}

impl ReconHead {
    /// The decoder blind to the embedding: weights zero, each pixel's bias the logit of its
    /// mean ink `mean_ink` (the best such decoder). From there the loss only falls by reading
    /// the embedding; a bias starting at 0 (probability 0.5 for every pixel of a sparse drawing)
    /// would take an adaptive optimizer thousands of steps to walk down, and random weights
    /// would meanwhile push noise into the network.
    pub fn new(dim: usize, mean_ink: &[f32], device: &Device) -> Result<Self> {
        let pixels = mean_ink.len();
        if dim == 0 || pixels == 0 {
            return Err(TrainError::Config(format!(
                "a reconstruction head needs a non-empty embedding and image, not {dim} -> {pixels}"
            )));
        }
        let bias: Vec<f32> = mean_ink
            .iter()
            .map(|&m| {
                let m = if m.is_finite() {
                    m.clamp(1e-4, 1.0 - 1e-4)
                } else {
                    0.5
                };
                (m / (1.0 - m)).ln()
            })
            .collect();
        Ok(ReconHead {
            weights: Var::from_tensor(&Tensor::zeros((dim, pixels), DType::F32, device)?)?,
            bias: Var::from_tensor(&Tensor::from_vec(bias, pixels, device)?)?,
        })
    }

    /// Each pixel's mean over `images` (`pixels` values each; zeros if none). Takes the
    /// images one at a time, so that the training set's mean needs no copy of it all.
    pub fn mean_ink<I>(images: I, pixels: usize) -> Vec<f32>
    where
        I: IntoIterator,
        I::Item: AsRef<[f32]>,
    {
        let mut mean = vec![0f32; pixels];
        let mut n = 0usize;
        for image in images {
            for (m, v) in mean.iter_mut().zip(image.as_ref()) {
                *m += v;
            }
            n += 1;
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f32);
        mean
    }

    /// The head saved in a checkpoint, which must map `dim` values to `pixels`.
    pub fn from_tensors(
        weights: &Tensor,
        bias: &Tensor,
        dim: usize,
        pixels: usize,
    ) -> Result<Self> {
        if weights.dims() != [dim, pixels] || bias.dims() != [pixels] {
            return Err(TrainError::Config(format!(
                "the checkpoint's reconstruction head is {:?} and {:?}, but this run maps {dim} \
                 values to {pixels} pixels",
                weights.dims(),
                bias.dims()
            )));
        }
        Ok(ReconHead {
            weights: Var::from_tensor(&weights.to_dtype(DType::F32)?)?,
            bias: Var::from_tensor(&bias.to_dtype(DType::F32)?)?,
        })
    }

    /// The head saved in `tensors` (a checkpoint's extras).
    pub fn from_extras(
        tensors: &std::collections::HashMap<String, Tensor>,
        dim: usize,
        pixels: usize,
        device: &Device,
    ) -> Result<Self> {
        let get = |name: &str| {
            tensors.get(name).ok_or_else(|| {
                TrainError::Config(format!(
                    "the checkpoint has no `{name}` to resume the reconstruction head from"
                ))
            })
        };
        Self::from_tensors(
            &get(WEIGHTS_NAME)?.to_device(device)?,
            &get(BIAS_NAME)?.to_device(device)?,
            dim,
            pixels,
        )
    }

    /// The trained variables, weights first.
    pub fn vars(&self) -> [&Var; 2] {
        [&self.weights, &self.bias]
    }

    pub fn state_tensors(&self) -> [(String, Tensor); 2] {
        [
            (WEIGHTS_NAME.to_string(), self.weights.as_tensor().clone()),
            (BIAS_NAME.to_string(), self.bias.as_tensor().clone()),
        ]
    }

    /// `[n, pixels]` logits of each pixel's ink.
    pub fn logits(&self, embeddings: &Tensor) -> Result<Tensor> {
        Ok(embeddings
            .matmul(self.weights.as_tensor())?
            .broadcast_add(self.bias.as_tensor())?)
    }

    /// Mean binary cross-entropy, over images and pixels, of the decoded `embeddings`
    /// (`[n, dim]`) against `images` (`[n, ...]` with `pixels` values each, in [0, 1]).
    pub fn loss(&self, embeddings: &Tensor, images: &Tensor) -> Result<Tensor> {
        let n = embeddings.dim(0)?;
        let pixels = self.bias.dim(0)?;
        if images.dim(0)? != n || images.elem_count() != n * pixels {
            return Err(TrainError::Config(format!(
                "{n} embeddings against images of shape {:?} for a head of {pixels} pixels",
                images.dims()
            )));
        }
        let targets = images.reshape((n, pixels))?.clamp(0f32, 1f32)?;
        Ok(model::loss::bce_with_logits(
            &self.logits(embeddings)?,
            &targets,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn logits_are_the_affine_map_of_the_embedding() {
        // Two embedding values to three pixels: [[1, 0, 2], [0, -1, 1]] and biases [0.5, 0, -1].
        let h = ReconHead::from_tensors(
            &t(&[1.0, 0.0, 2.0, 0.0, -1.0, 1.0], &[2, 3]),
            &t(&[0.5, 0.0, -1.0], &[3]),
            2,
            3,
        )
        .unwrap();
        let got: Vec<f32> = h
            .logits(&t(&[3.0, 2.0], &[1, 2]))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // (3 * 1 + 0.5, 3 * 0 - 2 + 0, 3 * 2 + 2 - 1)
        assert_eq!(got, vec![3.5, -2.0, 7.0]);
    }

    #[test]
    fn loss_is_the_mean_pixel_cross_entropy() {
        let h = ReconHead::from_tensors(
            &t(&[1.0, -1.0, 0.0, 0.0], &[2, 2]),
            &t(&[0.0, 0.0], &[2]),
            2,
            2,
        )
        .unwrap();
        // Image 1: embedding (2, 0) decodes to logits (2, -2) against pixels (1, 0).
        // Image 2: embedding (0, 0) decodes to (0, 0) against (1, 1).
        let e = t(&[2.0, 0.0, 0.0, 0.0], &[2, 2]);
        let images = t(&[1.0, 0.0, 1.0, 1.0], &[2, 1, 1, 2]);
        let got: f32 = h.loss(&e, &images).unwrap().to_scalar().unwrap();
        let softplus = |z: f32| (1.0 + z.exp()).ln();
        // BCE with logit z and label y is softplus(z) - z * y.
        let want = (softplus(-2.0) + softplus(-2.0) + 2.0 * 2f32.ln()) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let h = ReconHead::new(2, &[0.5; 4], &dev).unwrap();
        let e = Tensor::zeros((2, 2), DType::F32, &dev).unwrap();
        let three = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        assert!(
            h.loss(&e, &three).is_err(),
            "three images for two embeddings"
        );
        let small = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        assert!(
            h.loss(&e, &small).is_err(),
            "three pixels for a head of four"
        );
        let err = ReconHead::from_tensors(&three, &t(&[0.0; 4], &[4]), 2, 4)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("maps 2 values to 4 pixels"), "{err}");
        assert!(ReconHead::new(0, &[0.5; 4], &dev).is_err());
        assert!(ReconHead::new(2, &[], &dev).is_err());
        let missing = ReconHead::from_extras(&Default::default(), 2, 4, &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("aux.recon_weights"), "{missing}");
    }

    #[test]
    fn a_new_head_decodes_every_embedding_to_the_mean_image() {
        // Two images of three pixels: the mean ink is (0.5, 0.25, 0), the last clamped.
        let mean = ReconHead::mean_ink([1.0, 0.5, 0.0, 0.0, 0.0, 0.0].chunks(3), 3);
        assert_eq!(mean, vec![0.5, 0.25, 0.0]);
        assert_eq!(ReconHead::mean_ink([[0f32; 3]; 0], 3), vec![0.0; 3]);
        let h = ReconHead::new(2, &mean, &Device::Cpu).unwrap();
        let e = t(&[3.0, -1.0, 0.0, 7.0], &[2, 2]);
        let p: Vec<f32> = candle_nn::ops::sigmoid(&h.logits(&e).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (row, got) in p.chunks(3).enumerate() {
            assert!((got[0] - 0.5).abs() < 1e-6, "row {row}: {got:?}");
            assert!((got[1] - 0.25).abs() < 1e-6, "row {row}: {got:?}");
            assert!((got[2] - 1e-4).abs() < 1e-6, "row {row}: {got:?}");
        }
        let w = h.vars()[0].as_tensor().abs().unwrap();
        assert_eq!(w.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn training_the_head_alone_redraws_two_images() {
        let dev = Device::Cpu;
        let h = ReconHead::new(2, &[0.5; 3], &dev).unwrap();
        let e = t(&[1.0, 0.0, 0.0, 1.0], &[2, 2]);
        let images = t(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], &[2, 3]);
        let start: f32 = h.loss(&e, &images).unwrap().to_scalar().unwrap();
        for _ in 0..500 {
            let g = h.loss(&e, &images).unwrap().backward().unwrap();
            for v in h.vars() {
                let grad = g.get(v.as_tensor()).unwrap();
                v.set(&(v.as_tensor() - (grad * 2.0).unwrap()).unwrap())
                    .unwrap();
            }
        }
        let end: f32 = h.loss(&e, &images).unwrap().to_scalar().unwrap();
        assert!(end < start / 10.0, "{start} -> {end}");
    }
}
