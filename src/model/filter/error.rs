//! The filter module's one error type: an expression that cannot be read, and where.

use std::fmt;

/// Why an expression (or an escaped path component) was refused, with the byte offset of
/// the offending spot in the text as the user typed it, so a caret can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// The text as typed: the path component, `%2F` escapes and all.
    pub input: String,
    /// The expression after percent-decoding (equal to `input` when there was nothing to
    /// decode, or when the decoding itself failed).
    pub decoded: String,
    /// Byte offset into `input`; `input.len()` when the expression ended too early.
    pub position: usize,
    /// What was wrong, in containerd's parser's words where it has them.
    pub message: String,
}

impl FilterError {
    /// Where the fault is in the text as typed, for a caret under it (`error_log`).
    pub fn spot(&self) -> crate::model::SyntaxSpot {
        crate::model::SyntaxSpot::at_offset(self.input.as_bytes(), self.position)
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter {:?}: {} at position {}", self.input, self.message, self.position)?;
        if self.decoded != self.input {
            write!(f, " (decoded: {:?})", self.decoded)?;
        }
        Ok(())
    }
}

impl std::error::Error for FilterError {}
