//! The image record: a name mapped to a target descriptor, plus labels (containerd's
//! `images.Image`).

use serde::{Deserialize, Serialize};

use super::{Descriptor, Labels, Timestamp};

/// An image. Exists once a valid target has been written into its directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Required, immutable: the full name, components joined by `/` (the directory path
    /// under `images/`).
    pub name: String,
    /// Required, mutable (`target`): the descriptor the name points at.
    pub target: Descriptor,
    /// Optional, mutable (`labels`, `user.*` xattrs).
    pub labels: Labels,
    /// Set once when the record is created.
    pub created_at: Timestamp,
    /// Set on every committed change.
    pub updated_at: Timestamp,
}

impl Image {
    /// A new image record created now.
    pub fn new(name: String, target: Descriptor, now: Timestamp) -> Self {
        Self { name, target, labels: Labels::new(), created_at: now, updated_at: now }
    }

    /// The read-only `info.json` document.
    pub fn info_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("an image always serializes");
        text.push('\n');
        text
    }
}
