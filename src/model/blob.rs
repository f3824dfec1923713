//! The blob record: one piece of content-addressed data (a layer, config, manifest or
//! index) as the content store knows it. The bytes live in files; this is their metadata.

use serde::{Deserialize, Serialize};

use super::{Labels, Timestamp, ValidationError};

/// Where a blob is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobState {
    /// Created by a writer that has not closed it yet; not readable.
    Ingesting,
    /// Verified against its digest and stored.
    Committed,
}

/// A blob's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blob {
    /// `algorithm:hex`; the file name is the hex part.
    pub digest: String,
    /// Size in bytes (0 while ingesting).
    pub size: u64,
    /// Ingesting or committed.
    pub state: BlobState,
    /// The digests this blob's bytes reference (an index's manifests, a manifest's config
    /// and layers), read once when the blob is committed.
    #[serde(default)]
    pub children: Vec<String>,
    /// containerd-style labels (`user.*` xattrs), e.g. `containerd.io/gc.ref.*`.
    #[serde(default)]
    pub labels: Labels,
    /// A blob nothing references yet is kept until then (containerd's ingest lease), so a
    /// layout copied file by file survives a collection before its image is written.
    #[serde(default)]
    pub lease_until: Option<Timestamp>,
    /// Set once when the record is created.
    pub created_at: Timestamp,
    /// Set on every committed change.
    pub updated_at: Timestamp,
}

impl Blob {
    /// A new record for a writer that has just created the file.
    pub fn ingesting(digest: String, now: Timestamp) -> Blob {
        Blob {
            digest,
            size: 0,
            state: BlobState::Ingesting,
            children: Vec::new(),
            labels: Labels::new(),
            lease_until: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The read-only `user.*`-free summary some tools want (`getfattr` shows labels).
    pub fn info_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a blob always serializes");
        text.push('\n');
        text
    }
}

/// The content directory names: one per digest algorithm.
pub const DIGEST_ALGORITHMS: [&str; 2] = ["sha256", "sha512"];

/// Checks that `hex` is a valid file name under `content/<algorithm>/` and returns the
/// digest it names.
pub fn digest_of_file_name(algorithm: &str, hex: &str) -> Result<String, ValidationError> {
    let expected = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(ValidationError::InvalidDigest { reason: format!("{algorithm} is not a digest algorithm") }),
    };
    if hex.len() != expected || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ValidationError::InvalidDigest {
            reason: format!("{hex:?} is not {expected} lowercase hex digits (the blob's {algorithm} digest)"),
        });
    }
    Ok(format!("{algorithm}:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_must_be_whole_lowercase_digests() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_of_file_name("sha256", &hex).unwrap(), format!("sha256:{hex}"));
        assert!(digest_of_file_name("sha512", &"0".repeat(128)).is_ok());
        for bad in ["", "AB", &"ab".repeat(31), &"zz".repeat(32), &format!("{hex}0")] {
            assert!(digest_of_file_name("sha256", bad).is_err(), "{bad}");
        }
        assert!(digest_of_file_name("md5", &hex).is_err());
    }
}
