//! Building blocks of the tower, dispatched per device: our fused CPU kernel on the CPU,
//! candle's ops (with a correct pooling gradient) elsewhere.

use std::sync::Arc;

use candle_core::Tensor;

use crate::arch::BlurFilter;
use crate::cpu::batch_norm::BnReluPoolOp;
use crate::cpu::blur_pool::BlurMaxPoolOp;
use crate::cpu::{ConvBlockOp, ConvGeometry};
use crate::error::Result;

/// conv (stride 1, `padding`) + bias + ReLU (+ 2x2 max-pool) of `x` `[N, Cin, S, S]`.
/// `input_grad`: whether a gradient for `x` is needed (false for the network input).
/// `train`: whether a backward pass will follow.
pub fn conv_block(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
    pool: bool,
    input_grad: bool,
    train: bool,
) -> Result<Tensor> {
    let (_, in_channels, side, _) = x.dims4()?;
    let (out_channels, _, kernel, _) = w.dims4()?;
    if x.device().is_cpu() {
        let geometry = ConvGeometry {
            in_channels,
            out_channels,
            side,
            kernel,
            padding,
            pool,
            relu: true,
        };
        let op = ConvBlockOp::new(geometry, input_grad, train);
        let x = x.contiguous()?;
        return Ok(x.apply_op3_arc(&w.contiguous()?, &b.contiguous()?, Arc::new(Box::new(op)))?);
    }
    reference_conv_block(x, w, b, padding, pool)
}

/// The same block from candle's generic ops; used on GPUs and as the reference in tests.
pub fn reference_conv_block(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
    pool: bool,
) -> Result<Tensor> {
    let z = x
        .conv2d(w, padding, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, (), 1, 1))?)?
        .relu()?;
    if pool { max_pool2(&z) } else { Ok(z) }
}

/// 2x2 max-pool (stride 2, floor) whose gradient is right on every device: each window's
/// gradient goes to its maximum, split evenly between tied maxima. candle's own
/// `max_pool2d` backward scales by the tie count / 4 and misaligns odd sizes.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    let x = x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?;
    let windows = x.reshape((n, c, ho, 2, wo, 2))?;
    let max = windows.max_keepdim(5)?.max_keepdim(3)?;
    let mask = windows.broadcast_eq(&max)?.to_dtype(x.dtype())?;
    let count = mask.sum_keepdim(5)?.sum_keepdim(3)?;
    let weights = mask.broadcast_div(&count)?.detach();
    // sum(x * w) over the window equals the max, and its gradient is w.
    Ok((windows * weights)?.sum(5)?.sum(3)?)
}

/// 2x2 max-pool (stride 2, ceil) of a map after a ReLU: an odd map's last row and column are
/// windows of their own. Padding with zeros is exact because a ReLU's output is never below
/// zero, and the padding's share of a tie at zero carries no gradient to the input.
pub fn max_pool2_ceil(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = x.pad_with_zeros(2, 0, h % 2)?.pad_with_zeros(3, 0, w % 2)?;
    max_pool2(&x)
}

/// Anti-aliased max-pool of `[N, C, S, S]` maps to `floor(S / 2)`: a dense 2x2 max, then the
/// filter's binomial blur sampled at stride 2 with reflect padding (Zhang 2019). `S` must be at
/// least [`BlurFilter::min_side`]. Our CPU kernel on the CPU, candle's ops elsewhere.
pub fn blur_max_pool(x: &Tensor, filter: BlurFilter) -> Result<Tensor> {
    if x.device().is_cpu() {
        return Ok(x.contiguous()?.apply_op1(BlurMaxPoolOp(filter))?);
    }
    reference_blur_max_pool(x, filter)
}

/// [`blur_max_pool`] from candle's generic ops; used on GPUs and as the reference in tests.
/// Tied maxima share their gradient (the CPU kernel gives it to the first).
pub fn reference_blur_max_pool(x: &Tensor, filter: BlurFilter) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let min = filter.min_side();
    if h != w || h < min {
        return Err(crate::ModelError::Arch(format!(
            "blur pool: needs a square map of at least {min}x{min}, got {h}x{w}"
        )));
    }
    let m = h - 1;
    let rows = x.narrow(2, 0, m)?.maximum(&x.narrow(2, 1, m)?)?;
    let dense = rows.narrow(3, 0, m)?.maximum(&rows.narrow(3, 1, m)?)?;
    let taps = filter.taps();
    blur_subsample(&blur_subsample(&dense, 3, taps)?, 2, taps)
}

/// The odd-length filter `taps` along `dim`, reflect-padded by half its length, sampled at every
/// other position.
fn blur_subsample(x: &Tensor, dim: usize, taps: &[f32]) -> Result<Tensor> {
    let m = x.dim(dim)?;
    let (o, pad) = (m.div_ceil(2), taps.len() / 2);
    // Reflect padding: positions -pad..-1 read cells pad..1, positions m..m+pad-1 read m-2 down.
    let before: Vec<Tensor> = (1..=pad)
        .rev()
        .map(|k| x.narrow(dim, k, 1))
        .collect::<candle_core::Result<_>>()?;
    let after: Vec<Tensor> = (1..=pad)
        .map(|k| x.narrow(dim, m - 1 - k, 1))
        .collect::<candle_core::Result<_>>()?;
    let parts: Vec<&Tensor> = before
        .iter()
        .chain(std::iter::once(x))
        .chain(&after)
        .collect();
    let padded = Tensor::cat(&parts, dim)?;
    let tap = |offset: usize, weight: f32| -> Result<Tensor> {
        let at: Vec<u32> = (0..o).map(|i| (2 * i + offset) as u32).collect();
        let at = Tensor::from_vec(at, o, x.device())?;
        Ok((padded.index_select(&at, dim)? * f64::from(weight))?)
    };
    let mut sum = tap(0, taps[0])?;
    for (offset, &weight) in taps.iter().enumerate().skip(1) {
        sum = (sum + tap(offset, weight)?)?;
    }
    Ok(sum)
}

/// Batch-norm parameters and running statistics of one block.
pub struct BatchNorm<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    /// In inference, normalise the whole batch with the statistics of its first `k` images
    /// instead of the running ones (a one-shot trial's support set, the way each training
    /// episode was normalised by its own statistics).
    pub stats_from_first: Option<usize>,
}

impl BatchNorm<'_> {
    /// The (mean, biased variance) an inference pass normalises `z` `[N, C, H, W]` with.
    fn inference_stats(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        match self.stats_from_first {
            Some(k) => {
                let n = z.dim(0)?;
                if k == 0 || k > n {
                    return Err(crate::ModelError::Arch(format!(
                        "batch-norm statistics from the first {k} of {n} images"
                    )));
                }
                // On the host: candle's reduction over dims (0, 2, 3) is many times slower than
                // the convolution that produced `z`.
                let (c, plane) = (z.dim(1)?, z.dim(2)? * z.dim(3)?);
                let head = z.narrow(0, 0, k)?.flatten_all()?.to_vec1::<f32>()?;
                let mut sums = vec![(0f64, 0f64); c];
                for (i, map) in head.chunks(plane).enumerate() {
                    let (s, q) = map.iter().fold((0f64, 0f64), |(s, q), &v| {
                        (s + f64::from(v), q + f64::from(v) * f64::from(v))
                    });
                    sums[i % c].0 += s;
                    sums[i % c].1 += q;
                }
                let count = (k * plane) as f64;
                let mean: Vec<f32> = sums.iter().map(|m| (m.0 / count) as f32).collect();
                let var: Vec<f32> = sums
                    .iter()
                    .map(|m| (m.1 / count - (m.0 / count).powi(2)).max(0.0) as f32)
                    .collect();
                Ok((
                    Tensor::from_vec(mean, c, z.device())?,
                    Tensor::from_vec(var, c, z.device())?,
                ))
            }
            None => Ok((self.running_mean.clone(), self.running_var.clone())),
        }
    }
}

/// conv + bias, batch norm, ReLU (+ 2x2 max-pool). In training the batch's statistics
/// normalise and are returned (mean, unbiased variance) for the running averages; otherwise
/// the running statistics are used.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_block(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
    pool: bool,
    input_grad: bool,
    train: bool,
    bn: &BatchNorm,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let (_, in_channels, side, _) = x.dims4()?;
    let (out_channels, _, kernel, _) = w.dims4()?;
    if x.device().is_cpu() {
        let geometry = ConvGeometry {
            in_channels,
            out_channels,
            side,
            kernel,
            padding,
            pool: false,
            relu: false,
        };
        let conv = ConvBlockOp::new(geometry, input_grad, train);
        let z = x.contiguous()?.apply_op3_arc(
            &w.contiguous()?,
            &b.contiguous()?,
            Arc::new(Box::new(conv)),
        )?;
        let running = if train {
            None
        } else {
            let (mean, var) = bn.inference_stats(&z)?;
            Some((mean.to_vec1::<f32>()?, var.to_vec1::<f32>()?))
        };
        let op = BnReluPoolOp::new(out_channels, geometry.conv_side(), pool, running);
        let stats = op.stats.clone();
        let y = z.apply_op3_arc(
            &bn.gamma.contiguous()?,
            &bn.beta.contiguous()?,
            Arc::new(Box::new(op)),
        )?;
        let stats = match stats.lock().expect("stats lock").take() {
            Some((m, v)) => Some((
                Tensor::from_vec(m, out_channels, x.device())?,
                Tensor::from_vec(v, out_channels, x.device())?,
            )),
            None => None,
        };
        return Ok((y, stats));
    }
    reference_conv_bn_block(x, w, b, padding, pool, train, bn)
}

/// The same from candle's generic ops; used on GPUs and as the reference in tests.
pub fn reference_conv_bn_block(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
    pool: bool,
    train: bool,
    bn: &BatchNorm,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let z = x
        .conv2d(w, padding, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    let c = z.dim(1)?;
    let (mean, var, stats) = if train {
        let mean = z.mean_keepdim((0, 2, 3))?;
        let centred = z.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
        let count = (z.elem_count() / c) as f64;
        let unbiased = (var.detach() * (count / (count - 1.0).max(1.0)))?.flatten_all()?;
        let stats = Some((mean.detach().flatten_all()?, unbiased));
        (mean, var, stats)
    } else {
        let (mean, var) = bn.inference_stats(&z)?;
        (
            mean.reshape((1, c, 1, 1))?,
            var.reshape((1, c, 1, 1))?,
            None,
        )
    };
    let xhat = z
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + crate::cpu::batch_norm::EPS as f64)?.sqrt()?)?;
    let y = xhat
        .broadcast_mul(&bn.gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&bn.beta.reshape((1, c, 1, 1))?)?
        .relu()?;
    let y = if pool { max_pool2(&y)? } else { y };
    Ok((y, stats))
}

/// Applies an embedding activation.
pub fn activate(x: &Tensor, act: crate::Activation) -> Result<Tensor> {
    Ok(match act {
        crate::Activation::None => x.clone(),
        crate::Activation::Sigmoid => candle_nn::ops::sigmoid(x)?,
        crate::Activation::Relu => x.relu()?,
        crate::Activation::SignedSqrt => {
            // sqrt(|x| + e) - sqrt(e) = |x| / (sqrt(|x| + e) + sqrt(e)), so the sign is x's.
            let root_eps = crate::arch::SIGNED_SQRT_EPS.sqrt();
            let denominator = ((x.abs()? + crate::arch::SIGNED_SQRT_EPS)?.sqrt()? + root_eps)?;
            (x / denominator)?
        }
    })
}

/// Squeeze-and-excitation (Hu et al. 2018): each map of `x` `[N, C, H, W]` scaled by
/// `sigmoid(W2 relu(W1 m + b1) + b2)`, where `m` `[N, C]` is every map's mean and the
/// parameters are `[W1 [h, C], b1 [h], W2 [C, h], b2 [C]]`.
pub fn channel_gates(x: &Tensor, p: [&Tensor; 4]) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    let squeezed = x.mean((2, 3))?;
    let hidden = linear(&squeezed, p[0], p[1])?.relu()?;
    let gates = candle_nn::ops::sigmoid(&linear(&hidden, p[2], p[3])?)?;
    Ok(x.broadcast_mul(&gates.reshape((n, c, 1, 1))?)?)
}

/// `x @ w^T + b` for `x` `[N, In]`, `w` `[Out, In]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
}
