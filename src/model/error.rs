//! The model's one error type: why a value was refused.

use thiserror::Error;

/// A value a user wrote that the model refuses. Each variant becomes `EINVAL` at the
/// filesystem, except `TooLarge` (`EFBIG`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// A container identifier that breaks containerd's identifier rule.
    #[error("invalid identifier {id:?}: {reason}")]
    InvalidIdentifier {
        /// The refused identifier.
        id: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An image name (or one of its components) that cannot be used.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidImageName {
        /// The refused name or component.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A label line or key/value pair that breaks containerd's label rules.
    #[error("invalid label {key:?}: {reason}")]
    InvalidLabel {
        /// The key, or the whole line when no key could be read.
        key: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A target descriptor that is not a valid OCI descriptor.
    #[error("invalid descriptor: {reason}")]
    InvalidDescriptor {
        /// What is wrong with it.
        reason: String,
    },
    /// A digest (or content file name) that is not `algorithm:hex`.
    #[error("invalid digest: {reason}")]
    InvalidDigest {
        /// What is wrong with it.
        reason: String,
    },
    /// A target or spec document that is not JSON, and where it stops being JSON.
    #[error("invalid {what}: not JSON: {reason}")]
    NotJson {
        /// `descriptor` or `spec`.
        what: &'static str,
        /// The parser's reason.
        reason: String,
        /// Where.
        spot: super::SyntaxSpot,
    },
    /// A filter expression (the name of a `.filter/` query) that does not parse.
    #[error(transparent)]
    InvalidFilter(#[from] super::FilterError),
    /// An image document (index, manifest, config) that is not valid OCI.
    #[error("invalid image: {reason}")]
    InvalidImage {
        /// What is wrong with it.
        reason: String,
    },
    /// A runtime spec that is not usable.
    #[error("invalid spec: {reason}")]
    InvalidSpec {
        /// What is wrong with it.
        reason: String,
    },
    /// A one-line text field with a bad value.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's file name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A document over its size limit.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
}
