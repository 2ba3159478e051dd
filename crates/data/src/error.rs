use std::path::PathBuf;

/// Everything that can go wrong reading or sampling Omniglot data. Variants carry the path
/// involved so a user can find the offending file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "dataset folder {path} does not exist; fetch the data with `cargo xtask download` \
         (or `cargo xtask download --from DIR` for a local mirror)"
    )]
    MissingDataset { path: PathBuf },
    // The OS's reason is in the message, so it is not also a `source`: error chains
    // (anyhow's "Caused by") would print it twice.
    #[error("cannot read {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error(
        "{path}: no ink found: a drawing needs dark strokes on a light background (or light \
         strokes on a dark one)"
    )]
    NoInk { path: PathBuf },
    #[error("{path}: image is {width}x{height}, expected {expected}x{expected}")]
    WrongSize {
        path: PathBuf,
        width: u32,
        height: u32,
        expected: u32,
    },
    #[error("{path}: line {line}: {reason}")]
    Runs {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{ways}-way trials need {ways} characters{scope}, but only {available} are available")]
    NotEnoughCharacters {
        ways: usize,
        available: usize,
        scope: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            reason: source,
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Layout {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
