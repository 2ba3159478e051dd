#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error("{0}")]
    Plot(String),
    // The reason is in the message, not a `source` as well (it would print twice).
    #[error("{path}: {reason}")]
    Io {
        path: std::path::PathBuf,
        reason: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl EvalError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            reason: source,
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
