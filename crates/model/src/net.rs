//! The Siamese network: one tower (or several side by side) for both images of a pair,
//! `|e1 - e2|`, a linear head (Koch's; optionally the products `e1 * e2` beside it and a
//! hidden ReLU layer).

use candle_core::{Device, Tensor, Var};

use crate::arch::{Arch, Distance};
use crate::error::{ModelError, Result};
use crate::init::{Init, Initializer, LayerKind};
use crate::layers::{
    BatchNorm, activate, blur_max_pool, channel_gates, conv_block, conv_bn_block, linear,
    max_pool2_ceil,
};

/// What a parameter is, for initialisation and per-layer optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    ConvWeight,
    DenseWeight,
    Bias,
    BnScale,
    BnShift,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// Layer index: conv blocks first, then the dense layer (if any), then the head.
    pub layer: usize,
    pub kind: ParamKind,
}

/// Every trainable parameter, in the order `vars()` returns them.
pub fn parameters(arch: &Arch) -> Result<Vec<ParamInfo>> {
    let shapes = arch.block_shapes()?;
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, layer: usize, kind: ParamKind| {
        out.push(ParamInfo {
            name,
            shape,
            layer,
            kind,
        })
    };
    let mut layer = 0;
    for t in 0..arch.towers {
        let pre = tower_prefix(arch, t);
        for (i, (b, s)) in arch.blocks.iter().zip(&shapes).enumerate() {
            push(
                format!("{pre}conv{}.weight", i + 1),
                vec![b.channels, s.in_channels, b.kernel, b.kernel],
                i,
                ParamKind::ConvWeight,
            );
            push(
                format!("{pre}conv{}.bias", i + 1),
                vec![b.channels],
                i,
                ParamKind::Bias,
            );
            if b.batch_norm {
                push(
                    format!("{pre}conv{}.bn_weight", i + 1),
                    vec![b.channels],
                    i,
                    ParamKind::BnScale,
                );
                push(
                    format!("{pre}conv{}.bn_bias", i + 1),
                    vec![b.channels],
                    i,
                    ParamKind::BnShift,
                );
            }
            let h = b.se_hidden();
            if h > 0 {
                let c = b.channels;
                for (name, weight, bias) in [("se1", vec![h, c], h), ("se2", vec![c, h], c)] {
                    push(
                        format!("{pre}conv{}.{name}.weight", i + 1),
                        weight,
                        i,
                        ParamKind::DenseWeight,
                    );
                    push(
                        format!("{pre}conv{}.{name}.bias", i + 1),
                        vec![bias],
                        i,
                        ParamKind::Bias,
                    );
                }
            }
        }
        layer = arch.blocks.len();
        if arch.embedding > 0 {
            push(
                format!("{pre}fc.weight"),
                vec![arch.embedding, arch.features()?],
                layer,
                ParamKind::DenseWeight,
            );
            push(
                format!("{pre}fc.bias"),
                vec![arch.embedding],
                layer,
                ParamKind::Bias,
            );
            layer += 1;
        }
    }
    let mut inputs = arch.head.inputs(arch.embedding_dim()?);
    if arch.head.hidden > 0 {
        let hidden = arch.head.hidden;
        push(
            "head.hidden.weight".into(),
            vec![hidden, inputs],
            layer,
            ParamKind::DenseWeight,
        );
        push(
            "head.hidden.bias".into(),
            vec![hidden],
            layer,
            ParamKind::Bias,
        );
        layer += 1;
        inputs = hidden;
    }
    push(
        "head.weight".into(),
        vec![1, inputs],
        layer,
        ParamKind::DenseWeight,
    );
    push("head.bias".into(), vec![1], layer, ParamKind::Bias);
    Ok(out)
}

/// Parameters of tower `t` are named `tower{t}.conv1.weight` and so on when there are several;
/// a plain network keeps the plain names.
pub(crate) fn tower_prefix(arch: &Arch, t: usize) -> String {
    if arch.towers > 1 {
        format!("tower{t}.")
    } else {
        String::new()
    }
}

/// Names of the parameters, in the order `vars()` returns them.
pub fn parameter_names(arch: &Arch) -> Vec<String> {
    parameters(arch)
        .map(|p| p.into_iter().map(|p| p.name).collect())
        .unwrap_or_default()
}

/// Running statistics of the batch-norm blocks (not trained; saved with the weights):
/// `(name, block index, channels)`.
pub fn buffer_names(arch: &Arch) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for t in 0..arch.towers {
        let pre = tower_prefix(arch, t);
        for (i, b) in arch.blocks.iter().enumerate().filter(|(_, b)| b.batch_norm) {
            out.push((format!("{pre}conv{}.running_mean", i + 1), i, b.channels));
            out.push((format!("{pre}conv{}.running_var", i + 1), i, b.channels));
        }
    }
    out
}

/// Momentum of the running batch-norm statistics (PyTorch's default).
const BN_MOMENTUM: f64 = 0.1;

pub struct SiameseNet {
    arch: Arch,
    device: Device,
    params: Vec<ParamInfo>,
    vars: Vec<Var>,
    /// Running mean and variance of each batch-norm block, in `buffer_names` order.
    buffers: Vec<Var>,
}

impl SiameseNet {
    /// A freshly initialised network; the same seed gives the same weights on every device.
    pub fn new(arch: &Arch, init: Init, seed: u64, device: &Device) -> Result<Self> {
        arch.validate()?;
        let mut rng = Initializer::new(init, seed);
        let params = parameters(arch)?;
        let mut values: Vec<Vec<f32>> = Vec::new();
        for (i, p) in params.iter().enumerate() {
            match p.kind {
                ParamKind::ConvWeight | ParamKind::DenseWeight => {
                    let kind = if p.kind == ParamKind::ConvWeight {
                        LayerKind::Conv
                    } else {
                        LayerKind::Dense
                    };
                    let fan_in: usize = p.shape[1..].iter().product();
                    let bias_len = params[i + 1].shape[0];
                    let (w, b) = rng.layer(kind, p.shape.iter().product(), bias_len, fan_in);
                    values.push(w);
                    values.push(b);
                }
                ParamKind::Bias => {}
                ParamKind::BnScale => values.push(vec![1.0; p.shape[0]]),
                ParamKind::BnShift => values.push(vec![0.0; p.shape[0]]),
            }
        }
        let vars = params
            .iter()
            .zip(values)
            .map(|(p, v)| {
                Ok(Var::from_tensor(&Tensor::from_vec(
                    v,
                    p.shape.as_slice(),
                    device,
                )?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let buffers = buffer_names(arch)
            .iter()
            .map(|(name, _, c)| {
                let fill: f32 = if name.ends_with("running_var") {
                    1.0
                } else {
                    0.0
                };
                Ok(Var::from_tensor(&Tensor::full(fill, *c, device)?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SiameseNet {
            arch: arch.clone(),
            device: device.clone(),
            params,
            vars,
            buffers,
        })
    }

    /// Builds a network from named tensors (as saved), checking every name and shape.
    pub fn from_tensors(
        arch: &Arch,
        tensors: &std::collections::HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        arch.validate()?;
        let fetch = |name: &str, shape: &[usize]| -> Result<Var> {
            let t = tensors
                .get(name)
                .ok_or_else(|| ModelError::Arch(format!("missing parameter `{name}`")))?;
            if t.dims() != shape {
                return Err(ModelError::Arch(format!(
                    "parameter `{name}` has shape {:?}, the architecture needs {shape:?}",
                    t.dims()
                )));
            }
            Ok(Var::from_tensor(
                &t.to_dtype(candle_core::DType::F32)?.to_device(device)?,
            )?)
        };
        let params = parameters(arch)?;
        let vars = params
            .iter()
            .map(|p| fetch(&p.name, &p.shape))
            .collect::<Result<Vec<_>>>()?;
        let buffers = buffer_names(arch)
            .iter()
            .map(|(n, _, c)| fetch(n, &[*c]))
            .collect::<Result<Vec<_>>>()?;
        Ok(SiameseNet {
            arch: arch.clone(),
            device: device.clone(),
            params,
            vars,
            buffers,
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
        self.params
            .iter()
            .map(|p| p.name.clone())
            .zip(self.vars.iter().cloned())
            .collect()
    }

    /// Running batch-norm statistics, in the order of [`SiameseNet::named_buffers`].
    pub fn buffers(&self) -> &[Var] {
        &self.buffers
    }

    /// Running batch-norm statistics by name (saved with the weights, not trained).
    pub fn named_buffers(&self) -> Vec<(String, Var)> {
        buffer_names(&self.arch)
            .into_iter()
            .map(|(n, _, _)| n)
            .zip(self.buffers.iter().cloned())
            .collect()
    }

    /// Layer index of each parameter, for per-layer optimiser settings.
    pub fn parameter_layers(&self) -> Vec<usize> {
        self.params.iter().map(|p| p.layer).collect()
    }

    fn param(&self, i: usize, train: bool) -> Tensor {
        let t = self.vars[i].as_tensor();
        if train { t.clone() } else { t.detach() }
    }

    /// Every tower's embedding of `images`, concatenated.
    fn towers(
        &self,
        images: &Tensor,
        train: bool,
        stats_from_first: Option<usize>,
    ) -> Result<Tensor> {
        self.check_images(images)?;
        let (mut next, mut buffer) = (0, 0);
        let mut out = Vec::with_capacity(self.arch.towers);
        for _ in 0..self.arch.towers {
            out.push(self.tower(images, train, stats_from_first, &mut next, &mut buffer)?);
        }
        debug_assert_eq!(next + self.head_param_count(), self.vars.len());
        if out.len() == 1 {
            Ok(out.remove(0))
        } else {
            Ok(Tensor::cat(&out, 1)?)
        }
    }

    /// Checks that `images` is `[N, 1, S, S]` for the network's input side `S`.
    fn check_images(&self, images: &Tensor) -> Result<()> {
        let side = self.arch.input_side;
        let (n, c, h, w) = images.dims4()?;
        if c != 1 || h != side || w != side {
            return Err(ModelError::Arch(format!(
                "expected images of shape [N, 1, {side}, {side}], got [{n}, {c}, {h}, {w}]"
            )));
        }
        Ok(())
    }

    /// One tower, reading its parameters from `next` and its batch-norm buffers from `buffer`
    /// onwards (both advanced past them).
    fn tower(
        &self,
        images: &Tensor,
        train: bool,
        stats_from_first: Option<usize>,
        next: &mut usize,
        buffer: &mut usize,
    ) -> Result<Tensor> {
        let blocks = self.arch.blocks.len();
        let x = self.blocks(images, 0..blocks, train, stats_from_first, next, buffer)?;
        self.embedding_of(&x, train, next)
    }

    /// The embedding of a tower's last feature maps: flattened, through the embedding layer
    /// (whose parameters start at `next`, advanced past them) if there is one, activated.
    fn embedding_of(&self, maps: &Tensor, train: bool, next: &mut usize) -> Result<Tensor> {
        let mut x = maps.flatten_from(1)?;
        if self.arch.embedding > 0 {
            x = linear(&x, &self.param(*next, train), &self.param(*next + 1, train))?;
            *next += 2;
        }
        activate(&x, self.arch.embedding_activation)
    }

    /// The feature maps `[N, C, H, W]` after conv blocks `range` (0-based) of the tower whose
    /// parameters for the first block of `range` start at `next` (advanced past those blocks,
    /// as `buffer` is), given the maps `input` that enter that block.
    fn blocks(
        &self,
        input: &Tensor,
        range: std::ops::Range<usize>,
        train: bool,
        stats_from_first: Option<usize>,
        next: &mut usize,
        buffer: &mut usize,
    ) -> Result<Tensor> {
        let mut x = input.clone();
        let (skip, take) = (range.start, range.len());
        for (i, b) in self.arch.blocks.iter().enumerate().skip(skip).take(take) {
            let (w, bias) = (self.param(*next, train), self.param(*next + 1, train));
            *next += 2;
            // The fused ops pool by floor, which is ceil on an even map; a ceil pool of an odd
            // map, and a blur pool, run after them on the unpooled map.
            let conv_side = x.dim(2)? + 2 * b.padding + 1 - b.kernel;
            let ceil_after = b.pool && b.pool_ceil && conv_side % 2 == 1;
            let blur_after = b.pool && b.pool_blur;
            let fused_pool = b.pool && !ceil_after && !blur_after;
            if b.batch_norm {
                let (gamma, beta) = (self.param(*next, train), self.param(*next + 1, train));
                *next += 2;
                let running = (&self.buffers[*buffer], &self.buffers[*buffer + 1]);
                *buffer += 2;
                let norm = BatchNorm {
                    gamma: &gamma,
                    beta: &beta,
                    running_mean: running.0.as_tensor(),
                    running_var: running.1.as_tensor(),
                    stats_from_first,
                };
                let (y, stats) =
                    conv_bn_block(&x, &w, &bias, b.padding, fused_pool, i > 0, train, &norm)?;
                if let Some((mean, var)) = stats {
                    // Running statistics follow the batches seen in training, as in PyTorch.
                    let m = BN_MOMENTUM;
                    running
                        .0
                        .set(&((running.0.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
                    running
                        .1
                        .set(&((running.1.as_tensor() * (1.0 - m))? + (var * m)?)?)?;
                }
                x = y;
            } else {
                x = conv_block(&x, &w, &bias, b.padding, fused_pool, i > 0, train)?;
            }
            if ceil_after {
                x = max_pool2_ceil(&x)?;
            }
            if blur_after {
                x = blur_max_pool(&x, b.blur_filter)?;
            }
            if b.se_hidden() > 0 {
                let p: [Tensor; 4] = std::array::from_fn(|k| self.param(*next + k, train));
                *next += 4;
                x = channel_gates(&x, p.each_ref())?;
            }
        }
        Ok(x)
    }

    /// The first tower's feature maps after its first `count` conv blocks, for images given
    /// as `f32` ink values, `batch` at a time, without a backward graph:
    /// `(values, [C, H, W])`, image-major and channel-major within an image. Local
    /// descriptors for matching parts of drawings rather than whole embeddings.
    pub fn feature_maps(
        &self,
        images: &[f32],
        count: usize,
        batch: usize,
    ) -> Result<(Vec<f32>, [usize; 3])> {
        if count == 0 || count > self.arch.blocks.len() {
            return Err(ModelError::Arch(format!(
                "feature maps after block {count} of a network with {} blocks",
                self.arch.blocks.len()
            )));
        }
        let (side, per) = self.image_len(images)?;
        let mut out = Vec::new();
        let mut shape = [0; 3];
        for chunk in images.chunks(per * batch.max(1)) {
            let t = Tensor::from_slice(chunk, (chunk.len() / per, 1, side, side), &self.device)?;
            let (mut next, mut buffer) = (0, 0);
            let x = self.blocks(&t, 0..count, false, None, &mut next, &mut buffer)?;
            let (_, c, h, w) = x.dims4()?;
            shape = [c, h, w];
            out.extend(x.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok((out, shape))
    }

    /// Embeddings `[N, D]` of images `[N, 1, S, S]`, tracking gradients.
    pub fn embed(&self, images: &Tensor) -> Result<Tensor> {
        self.towers(images, true, None)
    }

    /// Embeddings `[N, D]` of images `[N, 1, S, S]`, tracking gradients, with the feature
    /// maps `[N, C, H, W]` after the first `block` conv blocks that they were computed from
    /// (one pass): for a training loss that also matches drawings part by part. Networks of
    /// one tower only.
    pub fn embed_with_maps(&self, images: &Tensor, block: usize) -> Result<(Tensor, Tensor)> {
        let blocks = self.arch.blocks.len();
        if self.arch.towers != 1 || block == 0 || block > blocks {
            return Err(ModelError::Arch(format!(
                "feature maps after block {block} of a network with {} tower(s) of {blocks} \
                 blocks (one tower needed)",
                self.arch.towers
            )));
        }
        self.check_images(images)?;
        let (mut next, mut buffer) = (0, 0);
        let maps = self.blocks(images, 0..block, true, None, &mut next, &mut buffer)?;
        let last = self.blocks(&maps, block..blocks, true, None, &mut next, &mut buffer)?;
        let e = self.embedding_of(&last, true, &mut next)?;
        Ok((e, maps))
    }

    /// Embeddings without building a backward graph.
    pub fn embed_inference(&self, images: &Tensor) -> Result<Tensor> {
        self.towers(images, false, None)
    }

    /// Embeddings without a backward graph, every batch-norm layer normalising the whole batch
    /// with the statistics of its first `support` images instead of the running ones: a
    /// one-shot trial's candidates first, then its queries. Training normalises each episode by
    /// its own statistics, and a trial's candidates are such a set; the queries do not move the
    /// statistics, so no query sees another. Networks without batch norm ignore it.
    pub fn embed_with_support_stats(&self, images: &Tensor, support: usize) -> Result<Tensor> {
        self.towers(images, false, Some(support))
    }

    /// `|d|` or `d^2`, elementwise, as the architecture's head distance says.
    fn distance(&self, diff: Tensor) -> Result<Tensor> {
        Ok(match self.arch.distance {
            Distance::L1 => diff.abs()?,
            Distance::SquaredL2 => diff.sqr()?,
        })
    }

    /// Parameters of the head: its output layer's weight and bias, and the hidden layer's.
    fn head_param_count(&self) -> usize {
        if self.arch.head.hidden > 0 { 4 } else { 2 }
    }

    /// What the head reads of two embeddings (broadcast against each other, `D` values last):
    /// `dist(a - b)` per dimension, then `a * b` when the head compares products too.
    fn head_inputs(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let d = self.distance(a.broadcast_sub(b)?)?;
        if !self.arch.head.products {
            return Ok(d);
        }
        Ok(Tensor::cat(&[&d, &a.broadcast_mul(b)?], d.rank() - 1)?)
    }

    /// The head's logits `[N]` for its inputs `[N, F]`.
    fn head_on(&self, inputs: &Tensor) -> Result<Tensor> {
        let n = self.vars.len();
        let mut x = inputs.clone();
        if self.arch.head.hidden > 0 {
            x = linear(
                &x,
                self.vars[n - 4].as_tensor(),
                self.vars[n - 3].as_tensor(),
            )?
            .relu()?;
        }
        Ok(linear(
            &x,
            self.vars[n - 2].as_tensor(),
            self.vars[n - 1].as_tensor(),
        )?
        .squeeze(1)?)
    }

    /// Logits `[N]` that each pair of embeddings shows the same character:
    /// `head(dist(e1, e2))`, `dist` being `|e1 - e2|` or `(e1 - e2)^2` per dimension (the
    /// architecture's `distance`), with the products `e1 * e2` beside it if the head compares
    /// them. Apply a sigmoid for probabilities.
    pub fn head_logits(&self, e1: &Tensor, e2: &Tensor) -> Result<Tensor> {
        self.head_on(&self.head_inputs(e1, e2)?)
    }

    /// Logits `[Q, N]` of every query embedding (`[Q, D]`) against every candidate embedding
    /// (`[N, D]`): entry `(i, j)` is the head's logit for `(q_i, c_j)`.
    pub fn pairwise_logits(&self, queries: &Tensor, candidates: &Tensor) -> Result<Tensor> {
        let q = queries.dim(0)?;
        let c = candidates.dim(0)?;
        let inputs = self.head_inputs(&queries.unsqueeze(1)?, &candidates.unsqueeze(0)?)?;
        let f = inputs.dim(2)?;
        Ok(self
            .head_on(&inputs.reshape((q * c, f))?)?
            .reshape((q, c))?)
    }

    /// Logits `[N]` for pairs of images `[N, 1, S, S]`. Both sides go through the tower as one
    /// batch of `2N` images.
    pub fn forward_pairs(&self, left: &Tensor, right: &Tensor) -> Result<Tensor> {
        let n = left.dim(0)?;
        let both = Tensor::cat(&[left, right], 0)?;
        let e = self.embed(&both)?;
        self.head_logits(&e.narrow(0, 0, n)?, &e.narrow(0, n, n)?)
    }

    /// (side, values per image) of the network's input, checking that `images` holds whole
    /// images.
    fn image_len(&self, images: &[f32]) -> Result<(usize, usize)> {
        let side = self.arch.input_side;
        if !images.len().is_multiple_of(side * side) {
            return Err(ModelError::ImageSize {
                got: images.len(),
                side,
            });
        }
        Ok((side, side * side))
    }

    /// Embeds `count` images given as `f32` ink values (`count * S * S`), `batch` at a time,
    /// returning `count * D` values.
    pub fn embed_images(&self, images: &[f32], batch: usize) -> Result<Vec<f32>> {
        let (side, per) = self.image_len(images)?;
        let mut out = Vec::with_capacity(images.len() / per * self.arch.embedding_dim()?);
        for chunk in images.chunks(per * batch.max(1)) {
            let t = Tensor::from_slice(chunk, (chunk.len() / per, 1, side, side), &self.device)?;
            let e = self.embed_inference(&t)?;
            out.extend(e.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// `embed_with_support_stats` for images given as `f32` ink values, as one batch.
    pub fn embed_images_with_support_stats(
        &self,
        images: &[f32],
        support: usize,
    ) -> Result<Vec<f32>> {
        let (side, per) = self.image_len(images)?;
        let t = Tensor::from_slice(images, (images.len() / per, 1, side, side), &self.device)?;
        let e = self.embed_with_support_stats(&t, support)?;
        Ok(e.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Rewrites the head so that every logit becomes `scale * logit + offset`: a Platt
    /// calibration folded into the weights, so every scorer (paired turns, ensembles of such
    /// networks) reads calibrated logits without knowing of it. A positive `scale` keeps every
    /// ranking, hence every N-way answer.
    pub fn rescale_head(&self, scale: f32, offset: f32) -> Result<()> {
        if !(scale.is_finite() && scale > 0.0 && offset.is_finite()) {
            return Err(ModelError::Arch(format!(
                "a head rescaling needs a finite scale > 0 and a finite offset, not {scale} and {offset}"
            )));
        }
        let (w, b) = self.head_vars();
        w.set(&(w.as_tensor() * scale as f64)?)?;
        b.set(&((b.as_tensor() * scale as f64)? + offset as f64)?)?;
        Ok(())
    }

    /// The head's weight and bias: the last two parameters (`parameter_names` order).
    fn head_vars(&self) -> (&Var, &Var) {
        let n = self.vars.len();
        (&self.vars[n - 2], &self.vars[n - 1])
    }

    /// The head on the host, to score cached embeddings cheaply.
    pub fn head_host(&self) -> Result<HostHead> {
        let host = |v: &Var| -> Result<Vec<f32>> { Ok(v.as_tensor().flatten_all()?.to_vec1()?) };
        let (w, b) = self.head_vars();
        let hidden = if self.arch.head.hidden > 0 {
            let n = self.vars.len();
            Some(HiddenLayer {
                weights: host(&self.vars[n - 4])?,
                biases: host(&self.vars[n - 3])?,
            })
        } else {
            None
        };
        Ok(HostHead {
            weights: host(w)?,
            bias: host(b)?[0],
            distance: self.arch.distance,
            products: self.arch.head.products,
            hidden,
        })
    }
}

/// A network's head on the host: the weights and bias of its output layer, the distance it
/// compares by, and what else it reads (products, a hidden layer).
#[derive(Clone, Debug, PartialEq)]
pub struct HostHead {
    /// The output layer's weights: one per dimension of the comparison for Koch's head, one
    /// per hidden unit otherwise.
    pub weights: Vec<f32>,
    pub bias: f32,
    pub distance: Distance,
    /// The comparison also holds `a_i * b_i` after the distances.
    pub products: bool,
    pub hidden: Option<HiddenLayer>,
}

/// A ReLU layer between the comparison and the head's output.
#[derive(Clone, Debug, PartialEq)]
pub struct HiddenLayer {
    /// `[units, inputs]`, row-major.
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
}

impl HostHead {
    /// Koch's head: a weighted sum of the distances alone, whose weights are per dimension.
    pub fn is_linear(&self) -> bool {
        !self.products && self.hidden.is_none()
    }

    /// The network's logit for two cached embeddings: `bias + sum_i w_i dist(a_i - b_i)`
    /// for Koch's head.
    pub fn logit(&self, a: &[f32], b: &[f32]) -> f32 {
        if self.is_linear() {
            // One loop per distance: this runs for every pair scored, and a match per
            // dimension would be decided again each time.
            let pairs = self.weights.iter().zip(a.iter().zip(b));
            let sum: f32 = match self.distance {
                Distance::L1 => pairs.map(|(w, (x, y))| w * (x - y).abs()).sum(),
                Distance::SquaredL2 => pairs.map(|(w, (x, y))| w * (x - y) * (x - y)).sum(),
            };
            return self.bias + sum;
        }
        let mut inputs: Vec<f32> = a
            .iter()
            .zip(b)
            .map(|(x, y)| self.distance.of(x - y))
            .collect();
        if self.products {
            inputs.extend(a.iter().zip(b).map(|(x, y)| x * y));
        }
        let out = match &self.hidden {
            None => dot(&self.weights, &inputs),
            Some(h) => h
                .weights
                .chunks_exact(inputs.len())
                .zip(&h.biases)
                .zip(&self.weights)
                .map(|((row, b), w)| w * (b + dot(row, &inputs)).max(0.0))
                .sum(),
        };
        self.bias + out
    }
}

/// `sum_i a_i b_i` in eight independent lanes, which the compiler can keep in one SIMD
/// register (a single running sum has to be added in order and is several times slower).
/// Host-side scoring runs it for every pair and trial.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
