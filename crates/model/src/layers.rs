//! Building blocks of the tower, dispatched per device: our fused CPU kernel on the CPU,
//! candle's ops (with a correct pooling gradient) elsewhere.

use std::sync::Arc;

use candle_core::Tensor;

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

/// Applies an embedding activation.
pub fn activate(x: &Tensor, act: crate::Activation) -> Result<Tensor> {
    Ok(match act {
        crate::Activation::None => x.clone(),
        crate::Activation::Sigmoid => candle_nn::ops::sigmoid(x)?,
        crate::Activation::Relu => x.relu()?,
    })
}

/// `x @ w^T + b` for `x` `[N, In]`, `w` `[Out, In]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
}
