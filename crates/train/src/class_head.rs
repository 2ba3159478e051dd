//! A classifier over every training class at once, trained beside the episodes (`train
//! --class-weight`). An episode compares 40 classes; this head makes each step also place the
//! embedding among all of them (a few thousand characters and turns), the auxiliary task that
//! helps metric learners generalise (Oreshkin et al. 2018, TADAM). It is a training aid only:
//! the saved model does not include it, and `eval` never sees it.

use candle_core::{D, DType, Device, Tensor, Var};

use crate::error::{Result, TrainError};

/// The checkpoint tensor that holds the class prototypes.
pub const TENSOR_NAME: &str = "aux.class_weights";

/// Cosine logits are multiplied by this. The softmax runs over thousands of classes, and a
/// cosine is at most 1: with a scale near 10 the target class could not reach even a
/// probability of 0.5 (Ranjan et al. 2017 derive the bound `ln((K - 1) p / (1 - p))`, 10.2 for
/// K = 3,000 and p = 0.9); 16 leaves room above it. Cosine rather than linear logits, so that
/// this head shapes the embedding's directions and leaves its scale to the L1 head.
pub const SCALE: f64 = 16.0;

/// The project's RNG stream for the prototypes' initial values.
const STREAM_CLASS_HEAD: u32 = 0xc1a5;

pub struct ClassHead {
    /// `[classes, dim]` prototypes, one row per class.
    weights: Var,
}

impl ClassHead {
    /// Small random prototypes, deterministic in `seed`.
    pub fn new(classes: usize, dim: usize, seed: u64, device: &Device) -> Result<Self> {
        if classes < 2 || dim == 0 {
            return Err(TrainError::Config(format!(
                "a class head needs at least 2 classes and a non-empty embedding, not {classes} x {dim}"
            )));
        }
        use rand::Rng;
        let mut rng = data::rng_for(seed, STREAM_CLASS_HEAD, 0, 0);
        // Uniform in [-1, 1): the cosine makes the scale irrelevant, only directions count.
        let values: Vec<f32> = (0..classes * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let t = Tensor::from_vec(values, (classes, dim), device)?;
        Ok(ClassHead {
            weights: Var::from_tensor(&t)?,
        })
    }

    /// The head saved in a checkpoint, which must have `classes` rows of `dim` values.
    pub fn from_tensor(t: &Tensor, classes: usize, dim: usize) -> Result<Self> {
        if t.dims() != [classes, dim] {
            return Err(TrainError::Config(format!(
                "the checkpoint's class head is {:?}, but this run has {classes} classes of {dim} values",
                t.dims()
            )));
        }
        Ok(ClassHead {
            weights: Var::from_tensor(&t.to_dtype(DType::F32)?)?,
        })
    }

    pub fn var(&self) -> &Var {
        &self.weights
    }

    pub fn state_tensor(&self) -> (String, Tensor) {
        (TENSOR_NAME.to_string(), self.weights.as_tensor().clone())
    }

    /// `[n, classes]` logits: `SCALE` times the cosine of each embedding with each prototype.
    pub fn logits(&self, embeddings: &Tensor) -> Result<Tensor> {
        let e = unit_rows(embeddings)?;
        let w = unit_rows(self.weights.as_tensor())?;
        Ok((e.matmul(&w.t()?)? * SCALE)?)
    }

    /// Mean cross-entropy of `embeddings` (`[n, dim]`) against their classes.
    pub fn loss(&self, embeddings: &Tensor, classes: &[u32]) -> Result<Tensor> {
        let n = embeddings.dim(0)?;
        let total = self.weights.dim(0)?;
        if classes.len() != n || classes.iter().any(|&c| c as usize >= total) {
            return Err(TrainError::Config(format!(
                "{n} embeddings with classes {classes:?} for a head of {total} classes"
            )));
        }
        let targets = Tensor::from_slice(classes, n, embeddings.device())?;
        Ok(candle_nn::loss::cross_entropy(
            &self.logits(embeddings)?,
            &targets,
        )?)
    }
}

/// Each row divided by its length (rows of zeros stay zero).
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(rows: &[f32], classes: usize, dim: usize) -> ClassHead {
        let t = Tensor::from_slice(rows, (classes, dim), &Device::Cpu).unwrap();
        ClassHead::from_tensor(&t, classes, dim).unwrap()
    }

    #[test]
    fn logits_are_scaled_cosines() {
        // Prototypes along x, along y, and at 45 degrees; one embedding (3, 0) of length 3.
        let h = head(&[2.0, 0.0, 0.0, 5.0, 1.0, 1.0], 3, 2);
        let e = Tensor::from_slice(&[3.0f32, 0.0], (1, 2), &Device::Cpu).unwrap();
        let got: Vec<f32> = h
            .logits(&e)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = [SCALE as f32, 0.0, SCALE as f32 / 2f32.sqrt()];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn loss_is_the_cross_entropy_of_the_scaled_cosines() {
        let h = head(&[1.0, 0.0, 0.0, 1.0], 2, 2);
        let e = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 2.0], (2, 2), &Device::Cpu).unwrap();
        let s = SCALE as f32;
        let c = 1.0 / 2f32.sqrt();
        let ce = |logits: [f32; 2], target: usize| {
            logits.iter().map(|x| x.exp()).sum::<f32>().ln() - logits[target]
        };
        // First embedding: at 45 degrees to both, class 0. Second: along y, class 0.
        let want = (ce([s * c, s * c], 0) + ce([0.0, s], 0)) / 2.0;
        let got: f32 = h.loss(&e, &[0, 0]).unwrap().to_scalar().unwrap();
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        assert!((want - (2f32.ln() + s) / 2.0).abs() < 1e-3);
    }

    #[test]
    fn bad_classes_and_shapes_are_errors() {
        let h = head(&[1.0, 0.0, 0.0, 1.0], 2, 2);
        let e = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(h.loss(&e, &[0, 2]).is_err(), "class out of range");
        assert!(h.loss(&e, &[0]).is_err(), "one class for two embeddings");
        let t = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
        let err = ClassHead::from_tensor(&t, 2, 2).err().unwrap().to_string();
        assert!(err.contains("2 classes of 2 values"), "{err}");
        assert!(ClassHead::new(1, 4, 0, &Device::Cpu).is_err());
    }

    #[test]
    fn training_the_head_alone_separates_two_classes() {
        let dev = Device::Cpu;
        let h = ClassHead::new(2, 2, 3, &dev).unwrap();
        let e = Tensor::from_slice(&[1.0f32, 0.2, 0.1, 1.0], (2, 2), &dev).unwrap();
        let start: f32 = h.loss(&e, &[1, 0]).unwrap().to_scalar().unwrap();
        for _ in 0..300 {
            let loss = h.loss(&e, &[1, 0]).unwrap();
            let g = loss.backward().unwrap();
            let grad = g.get(h.var().as_tensor()).unwrap();
            h.var()
                .set(&(h.var().as_tensor() - (grad * 0.2).unwrap()).unwrap())
                .unwrap();
        }
        let end: f32 = h.loss(&e, &[1, 0]).unwrap().to_scalar().unwrap();
        assert!(end < start / 20.0, "{start} -> {end}");
    }
}
