//! The snapshot layer's one error type.

use thiserror::Error;

/// Why a snapshot operation failed. The filesystem maps each variant to one errno.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The layer or image content is not something we can apply (bad path, bad tar,
    /// digest mismatch, unsupported compression...).
    #[error("invalid layer: {0}")]
    Invalid(String),
    /// A host file operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SnapshotError::Io { context: context.into(), source }
    }
}

/// Result of a snapshot operation.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;
