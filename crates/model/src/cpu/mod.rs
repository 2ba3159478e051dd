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

/// Index (0..4) of the first maximum of a 2x2 pooling window, as PyTorch picks it: the
/// earlier of each pair, then the earlier pair on a tie (three comparisons, no loop, since
/// pooling backward asks this of every window).
#[inline]
pub(crate) fn first_max(window: [f32; 4]) -> usize {
    let [a, b, c, d] = window;
    let (top, top_value) = if b > a { (1, b) } else { (0, a) };
    let (bottom, bottom_value) = if d > c { (3, d) } else { (2, c) };
    if bottom_value > top_value {
        bottom
    } else {
        top
    }
}

#[cfg(test)]
mod tests {
    use super::first_max;

    #[test]
    fn the_first_maximum_wins_every_tie() {
        // Every window over the values 0, 1, 2 (81 of them, ties of every kind) against the
        // definition: the lowest index whose value is the window's maximum.
        for code in 0..81 {
            let window = [0, 1, 2, 3].map(|k| ((code / 3usize.pow(k)) % 3) as f32);
            let max = window.iter().copied().fold(f32::MIN, f32::max);
            let expected = window.iter().position(|&v| v == max).unwrap();
            assert_eq!(first_max(window), expected, "{window:?}");
        }
    }
}
