use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Eval(#[from] eval::EvalError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "the loss became {value} at step {step}; stopped without applying that step. The last \
         good checkpoint is {checkpoint}"
    )]
    Diverged {
        step: u64,
        value: f32,
        checkpoint: String,
    },
}

impl TrainError {
    pub fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        TrainError::File {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
