//! CPU kernels that replace candle's slow paths: convolution blocks through im2col and a
//! tuned GEMM, with bias, ReLU and max-pool fused, parallel over the images of a batch, and an
//! anti-aliased max-pool.

pub mod batch_norm;
pub mod blur_pool;
pub mod conv_block;
pub mod gemm;
pub mod im2col;

pub use conv_block::{ConvBlockOp, ConvGeometry};

use candle_core::{CpuStorage, Layout, Storage};

/// The `f32` values a contiguous CPU tensor holds; `op` names the kernel in the error.
pub(crate) fn host_slice<'a>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{op}: tensors must be contiguous"),
    }
}

/// [`host_slice`] of a tensor's storage, which must be on the CPU.
pub(crate) fn storage_slice<'a>(
    op: &str,
    s: &'a Storage,
    l: &Layout,
) -> candle_core::Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => host_slice(op, c, l),
        _ => candle_core::bail!("{op}: the CPU kernel got a tensor on another device"),
    }
}

/// Index (0..4) of the first maximum of a 2x2 pooling window, as PyTorch picks it.
pub(crate) fn first_max(window: [f32; 4]) -> usize {
    let mut best = 0;
    for k in 1..4 {
        if window[k] > window[best] {
            best = k;
        }
    }
    best
}
