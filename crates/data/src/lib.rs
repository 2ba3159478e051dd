//! Omniglot data: parsing the dataset layout, an in-memory image store, samplers for training
//! pairs and N-way one-shot trials, affine augmentation, and Lake's one-shot runs.
//!
//! This crate knows nothing of neural networks or candle: it hands out plain `f32` buffers
//! (`[B, 1, H, W]`, ink = 1.0, background = 0.0) and image ids. Models, training and evaluation
//! live in the crates above it.

pub mod augment;
pub mod episodes;
pub mod error;
pub mod framing;
pub mod image_io;
pub mod index;
pub mod neighbours;
pub mod pairs;
pub mod resample;
pub mod runs;
pub mod split;
pub mod store;
pub mod stroke;
pub mod synthetic;
pub mod trials;

pub use augment::{AffineConfig, AffineParams};
pub use error::DataError;
pub use framing::Framing;
pub use index::{Drawing, SplitIndex, SplitKind};
pub use pairs::{PairBatch, PairConfig, PairSampler};
pub use split::{Partition, Subset, ValidationConfig};
pub use store::{ImageId, ImageStore};
pub use trials::{Protocol, Trial};

/// Side length of the Omniglot PNGs.
pub const NATIVE_SIDE: usize = 105;

/// Seeded RNG used everywhere in the project: portable and with a documented stream, so a
/// seed gives the same samples on every machine.
pub type Rng = rand_chacha::ChaCha8Rng;

/// An RNG for item `(a, b)` of stream `domain` under `seed`, independent of thread
/// scheduling: samplers derive one per pair or trial so results do not depend on how rayon
/// splits the work, and a resumed run replays exactly the samples it would have drawn.
pub fn rng_for(seed: u64, domain: u32, a: u64, b: u64) -> Rng {
    use rand::SeedableRng;
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&domain.to_le_bytes());
    key[12..20].copy_from_slice(&a.to_le_bytes());
    key[20..28].copy_from_slice(&b.to_le_bytes());
    key[28..].copy_from_slice(b"omni");
    Rng::from_seed(key)
}
