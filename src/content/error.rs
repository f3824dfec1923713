//! The content store's one error type.

use thiserror::Error;

/// Why a content operation failed. The filesystem maps each variant to one errno.
#[derive(Debug, Error)]
pub enum ContentError {
    /// The bytes written do not hash to the blob's name.
    #[error("content does not match its digest {expected} (it hashes to {actual})")]
    DigestMismatch {
        /// The digest the file is named by.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A document too large to read into memory.
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed for an index, manifest or config")]
    TooLarge {
        /// The blob.
        digest: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A host file operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ContentError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ContentError::Io { context: context.into(), source }
    }

    /// Whether the blob's file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Result of content operations.
pub type Result<T, E = ContentError> = std::result::Result<T, E>;
