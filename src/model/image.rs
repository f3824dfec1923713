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
    /// The `target` document as it was written, when that is not `target.render()`
    /// (absent in records written before it existed: they show the rendering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_text: Option<String>,
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
        Self { name, target, target_text: None, labels: Labels::new(), created_at: now, updated_at: now }
    }

    /// What the `target` file shows: the document as written, byte for byte.
    pub fn target_file(&self) -> String {
        self.target_text.clone().unwrap_or_else(|| self.target.render())
    }

    /// The read-only `info.json` document (the target as its parsed descriptor).
    pub fn info_json(&self) -> String {
        let shown = Image { target_text: None, ..self.clone() };
        let mut text = serde_json::to_string_pretty(&shown).expect("an image always serializes");
        text.push('\n');
        text
    }
}
