//! The snapshot record: a root-filesystem layer stack as containerd's snapshotters know it.
//! A committed snapshot is an unpacked image layer (named by its chain ID) and read-only;
//! an active one is a container's writable root filesystem on top of a committed parent.

use serde::{Deserialize, Serialize};

use super::{Labels, Timestamp, ValidationError};

/// Committed (read-only, a parent) or active (writable, a container's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Read-only; may be a parent.
    Committed,
    /// Writable; may be mounted.
    Active,
}

impl SnapshotKind {
    /// The word the `kind` file shows.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotKind::Committed => "committed",
            SnapshotKind::Active => "active",
        }
    }
}

/// Disk usage of one snapshot's own directory (not its parents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated.
    pub size: u64,
    /// Inodes used.
    pub inodes: u64,
}

/// A snapshot's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its key: a chain ID for committed layers, the container's key for active ones.
    pub key: String,
    /// Committed or active.
    pub kind: SnapshotKind,
    /// The key of the snapshot below it, if any.
    pub parent: Option<String>,
    /// The snapshotter that made it (`overlayfs` or `native`).
    pub snapshotter: String,
    /// containerd-style labels.
    #[serde(default)]
    pub labels: Labels,
    /// Usage measured when it was committed (active ones are measured when read).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Set once when the record is created.
    pub created_at: Timestamp,
    /// Set on every committed change.
    pub updated_at: Timestamp,
}

impl Snapshot {
    /// A new snapshot record without labels, made at `now`.
    pub fn new(key: &str, kind: SnapshotKind, parent: Option<String>, snapshotter: &str, usage: Option<Usage>, now: Timestamp) -> Snapshot {
        Snapshot {
            key: key.to_owned(),
            kind,
            parent,
            snapshotter: snapshotter.to_owned(),
            labels: Labels::new(),
            usage,
            created_at: now,
            updated_at: now,
        }
    }

    /// The read-only `info.json` document.
    pub fn info_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a snapshot always serializes");
        text.push('\n');
        text
    }
}

/// One mount of a snapshot, in containerd's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Source device or directory.
    pub source: String,
    /// Mount options.
    pub options: Vec<String>,
}

/// Checks a snapshot key: it names a directory under `snapshots/`, so it must be one path
/// component.
pub fn validate_snapshot_key(key: &str) -> Result<(), ValidationError> {
    let refuse = |reason: &str| Err(ValidationError::InvalidField { field: "snapshot", reason: reason.into() });
    if key.is_empty() || key == "." || key == ".." {
        return refuse("a snapshot key must be a name");
    }
    if key.len() > super::MAX_COMPONENT_BYTES {
        return refuse("a snapshot key is longer than 255 bytes");
    }
    if key.contains('/') || key.chars().any(char::is_control) {
        return refuse("a snapshot key must not hold '/' or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_single_components() {
        for good in ["web", "sha256:abc", "web-rootfs.1"] {
            assert!(validate_snapshot_key(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a\nb", &"k".repeat(256)] {
            assert!(validate_snapshot_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mounts_serialize_as_containerd_does() {
        let mount = Mount { kind: "overlay".into(), source: "overlay".into(), options: vec!["lowerdir=/a".into()] };
        assert_eq!(
            serde_json::to_string(&mount).unwrap(),
            r#"{"type":"overlay","source":"overlay","options":["lowerdir=/a"]}"#
        );
    }
}
