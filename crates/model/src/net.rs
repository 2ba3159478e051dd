//! The Siamese network: one tower for both images of a pair, `|e1 - e2|`, a linear head.

use candle_core::{Device, Tensor, Var};

use crate::arch::Arch;
use crate::error::{ModelError, Result};
use crate::init::{Init, Initializer, LayerKind};
use crate::layers::{activate, conv_block, linear};

/// Names of the parameters, in the order `vars()` returns them.
pub fn parameter_names(arch: &Arch) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..arch.blocks.len() {
        names.push(format!("conv{}.weight", i + 1));
        names.push(format!("conv{}.bias", i + 1));
    }
    if arch.embedding > 0 {
        names.push("fc.weight".into());
        names.push("fc.bias".into());
    }
    names.push("head.weight".into());
    names.push("head.bias".into());
    names
}

/// Expected shape of every parameter, in `parameter_names` order.
pub fn parameter_shapes(arch: &Arch) -> Result<Vec<Vec<usize>>> {
    let shapes = arch.block_shapes()?;
    let mut out = Vec::new();
    for (b, s) in arch.blocks.iter().zip(&shapes) {
        out.push(vec![b.channels, s.in_channels, b.kernel, b.kernel]);
        out.push(vec![b.channels]);
    }
    if arch.embedding > 0 {
        out.push(vec![arch.embedding, arch.features()?]);
        out.push(vec![arch.embedding]);
    }
    out.push(vec![1, arch.embedding_dim()?]);
    out.push(vec![1]);
    Ok(out)
}

pub struct SiameseNet {
    arch: Arch,
    device: Device,
    vars: Vec<Var>,
}

impl SiameseNet {
    /// A freshly initialised network; the same seed gives the same weights on every device.
    pub fn new(arch: &Arch, init: Init, seed: u64, device: &Device) -> Result<Self> {
        arch.validate()?;
        let mut rng = Initializer::new(init, seed);
        let shapes = parameter_shapes(arch)?;
        let mut vars = Vec::new();
        for pair in shapes.chunks(2) {
            let (wshape, bshape) = (&pair[0], &pair[1]);
            let kind = if wshape.len() == 4 {
                LayerKind::Conv
            } else {
                LayerKind::Dense
            };
            let fan_in: usize = wshape[1..].iter().product();
            let (w, b) = rng.layer(kind, wshape.iter().product(), bshape[0], fan_in);
            vars.push(Var::from_tensor(&Tensor::from_vec(
                w,
                wshape.as_slice(),
                device,
            )?)?);
            vars.push(Var::from_tensor(&Tensor::from_vec(
                b,
                bshape.as_slice(),
                device,
            )?)?);
        }
        Ok(SiameseNet {
            arch: arch.clone(),
            device: device.clone(),
            vars,
        })
    }

    /// Builds a network from named tensors (as saved), checking every name and shape.
    pub fn from_tensors(
        arch: &Arch,
        tensors: &std::collections::HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        arch.validate()?;
        let mut vars = Vec::new();
        for (name, shape) in parameter_names(arch).iter().zip(parameter_shapes(arch)?) {
            let t = tensors
                .get(name)
                .ok_or_else(|| ModelError::Arch(format!("missing parameter `{name}`")))?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::Arch(format!(
                    "parameter `{name}` has shape {:?}, the architecture needs {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(candle_core::DType::F32)?.to_device(device)?;
            vars.push(Var::from_tensor(&t)?);
        }
        Ok(SiameseNet {
            arch: arch.clone(),
            device: device.clone(),
            vars,
        })
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trainable parameters, in `parameter_names` order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    pub fn named_vars(&self) -> Vec<(String, Var)> {
        parameter_names(&self.arch)
            .into_iter()
            .zip(self.vars.iter().cloned())
            .collect()
    }

    fn param(&self, i: usize, train: bool) -> Tensor {
        let t = self.vars[i].as_tensor();
        if train { t.clone() } else { t.detach() }
    }

    fn tower(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let side = self.arch.input_side;
        let (n, c, h, w) = images.dims4()?;
        if c != 1 || h != side || w != side {
            return Err(ModelError::Arch(format!(
                "expected images of shape [N, 1, {side}, {side}], got [{n}, {c}, {h}, {w}]"
            )));
        }
        let mut x = images.clone();
        for (i, b) in self.arch.blocks.iter().enumerate() {
            let (w, bias) = (self.param(2 * i, train), self.param(2 * i + 1, train));
            x = conv_block(&x, &w, &bias, b.padding, b.pool, i > 0, train)?;
        }
        let mut x = x.flatten_from(1)?;
        let mut next = 2 * self.arch.blocks.len();
        if self.arch.embedding > 0 {
            x = linear(&x, &self.param(next, train), &self.param(next + 1, train))?;
            next += 2;
        }
        debug_assert_eq!(next + 2, self.vars.len());
        activate(&x, self.arch.embedding_activation)
    }

    /// Embeddings `[N, D]` of images `[N, 1, S, S]`, tracking gradients.
    pub fn embed(&self, images: &Tensor) -> Result<Tensor> {
        self.tower(images, true)
    }

    /// Embeddings without building a backward graph.
    pub fn embed_inference(&self, images: &Tensor) -> Result<Tensor> {
        self.tower(images, false)
    }

    /// Logits `[N]` that each pair of embeddings shows the same character:
    /// `head(|e1 - e2|)`. Apply a sigmoid for probabilities.
    pub fn head_logits(&self, e1: &Tensor, e2: &Tensor) -> Result<Tensor> {
        let n = self.vars.len();
        let d = (e1 - e2)?.abs()?;
        Ok(linear(
            &d,
            self.vars[n - 2].as_tensor(),
            self.vars[n - 1].as_tensor(),
        )?
        .squeeze(1)?)
    }

    /// Logits `[Q, N]` of every query embedding (`[Q, D]`) against every candidate embedding
    /// (`[N, D]`): entry `(i, j)` is `head(|q_i - c_j|)`.
    pub fn pairwise_logits(&self, queries: &Tensor, candidates: &Tensor) -> Result<Tensor> {
        let n = self.vars.len();
        let (q, d) = queries.dims2()?;
        let (c, _) = candidates.dims2()?;
        let diff = queries
            .unsqueeze(1)?
            .broadcast_sub(&candidates.unsqueeze(0)?)?
            .abs()?;
        let w = self.vars[n - 2].as_tensor();
        let logits = diff.reshape((q * c, d))?.matmul(&w.t()?)?.reshape((q, c))?;
        Ok(logits.broadcast_add(self.vars[n - 1].as_tensor())?)
    }

    /// Logits `[N]` for pairs of images `[N, 1, S, S]`. Both sides go through the tower as one
    /// batch of `2N` images.
    pub fn forward_pairs(&self, left: &Tensor, right: &Tensor) -> Result<Tensor> {
        let n = left.dim(0)?;
        let both = Tensor::cat(&[left, right], 0)?;
        let e = self.embed(&both)?;
        self.head_logits(&e.narrow(0, 0, n)?, &e.narrow(0, n, n)?)
    }

    /// Embeds `count` images given as `f32` ink values (`count * S * S`), `batch` at a time,
    /// returning `count * D` values.
    pub fn embed_images(&self, images: &[f32], batch: usize) -> Result<Vec<f32>> {
        let side = self.arch.input_side;
        let per = side * side;
        if !images.len().is_multiple_of(per) {
            return Err(ModelError::ImageSize {
                got: images.len(),
                side,
            });
        }
        let mut out = Vec::with_capacity(images.len() / per * self.arch.embedding_dim()?);
        for chunk in images.chunks(per * batch.max(1)) {
            let t = Tensor::from_slice(chunk, (chunk.len() / per, 1, side, side), &self.device)?;
            let e = self.embed_inference(&t)?;
            out.extend(e.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// The head's weights and bias on the host, to score cached embeddings cheaply:
    /// `logit = bias + sum_i w_i |a_i - b_i|`.
    pub fn head_host(&self) -> Result<(Vec<f32>, f32)> {
        let n = self.vars.len();
        let w = self.vars[n - 2]
            .as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = self.vars[n - 1]
            .as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()?[0];
        Ok((w, b))
    }
}

/// `bias + sum_i w_i |a_i - b_i|` on the host.
pub fn head_logit(head: &(Vec<f32>, f32), a: &[f32], b: &[f32]) -> f32 {
    head.1
        + head
            .0
            .iter()
            .zip(a.iter().zip(b))
            .map(|(w, (x, y))| w * (x - y).abs())
            .sum::<f32>()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
