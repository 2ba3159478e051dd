//! Evaluation: N-way one-shot trials (random, within-alphabet, and Lake's fixed runs), scorers
//! (a trained Siamese network and two training-free baselines), hubness correction, accuracy
//! with confidence intervals, reports and plots, paired comparisons of two scorers on the same
//! trials; and a trained model on the user's own files (`Matcher` for trials and pairs, with
//! occlusion maps of where a pair's score comes from, `Gallery` for labelling drawings by
//! labelled examples).
//!
//! Depends on the model crate's public API only (embed images, score embeddings) and on the
//! data crate for images and trials; it knows nothing of training.

pub mod adapt;
pub mod baselines;
pub mod calibration;
pub mod compare;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod gallery;
pub mod group_plot;
pub mod hubness;
pub mod local;
pub mod matcher;
pub mod plot;
pub mod report;
pub mod runs;
pub mod scorer;
pub mod session;
pub mod stats;

pub use error::EvalError;
pub use evaluate::{TrialResult, evaluate};
pub use gallery::{Gallery, Recognition};
pub use matcher::{Choice, Matcher};
pub use report::{Accuracy, Report};
pub use scorer::{EnsembleScorer, ModelScorer, Scorer};
