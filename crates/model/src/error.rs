use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("invalid architecture: {0}")]
    Arch(String),
    #[error("{0}")]
    Device(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("images have {got} values, expected a multiple of {side}x{side}")]
    ImageSize { got: usize, side: usize },
}

impl ModelError {
    pub(crate) fn file(path: &std::path::Path, reason: impl Into<String>) -> Self {
        ModelError::File {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
