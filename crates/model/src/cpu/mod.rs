//! CPU kernels that replace candle's slow paths: convolution blocks through im2col and a
//! tuned GEMM, with bias, ReLU and max-pool fused, parallel over the images of a batch, and an
//! anti-aliased max-pool.

pub mod batch_norm;
pub mod blur_pool;
pub mod conv_block;
pub mod gemm;
pub mod im2col;

pub use conv_block::{ConvBlockOp, ConvGeometry};
