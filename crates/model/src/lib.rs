//! The Siamese network: a convolutional tower shared by both images of a pair, an embedding,
//! and a head scoring `|e1 - e2|` (optionally also `e1 * e2`, optionally through a hidden
//! layer). Built on candle, with CPU kernels of our own for the convolution blocks (im2col +
//! GEMM, fused bias/ReLU/max-pool with remembered argmax) since candle's CPU convolution
//! backward is slow and its max-pool gradient is wrong. On CUDA and Metal the blocks use
//! candle's own ops and a pooling whose gradient is correct.
//!
//! This crate knows nothing of Omniglot files, samplers or training loops: it takes images as
//! tensors (or `f32` slices) and returns embeddings, logits and gradients. From `data` it
//! takes only the `Framing` type, saved with the architecture so that every caller frames
//! images the way the network was trained.

pub mod arch;
pub mod cpu;
pub mod device;
pub mod ensemble;
pub mod error;
pub mod init;
pub mod io;
pub mod layers;
pub mod local;
pub mod loss;
pub mod net;

pub use arch::{Activation, Arch, BlurFilter, ConvSpec, Distance, HeadSpec};
pub use device::parse_device;
pub use error::ModelError;
pub use init::Init;
pub use net::SiameseNet;

pub use candle_core::{DType, Device, Tensor, Var};
