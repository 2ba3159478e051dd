//! Training: optimizers with saveable state (fused in-place updates on the CPU), learning-rate
//! schedules, checkpoints that resume exactly, and the training loop with validation on a split
//! carved from the background set, early stopping, metrics and plots.
//!
//! Uses the model crate for the network, data for samplers, and eval for validation trials.
//! It never reads `images_evaluation`.

pub mod checkpoint;
pub mod class_head;
pub mod config;
pub mod dropout;
pub mod ema;
pub mod ensemble;
pub mod episode_loss;
pub mod error;
pub mod metrics;
pub mod mining;
pub mod optim;
pub mod pace;
pub mod presets;
pub mod recon_head;
pub mod sam;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::TrainError;
pub use trainer::{Outcome, Trainer};
