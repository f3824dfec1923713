//! The image record: a name mapped to a target descriptor, plus labels (containerd's
//! `images.Image`).

use serde::{Deserialize, Serialize};

use super::{Descriptor, Labels, Timestamp};

/// An image's record. It is an image once a valid target has been written into its
/// directory; before that it may hold labels written first (a restore that copies an
/// image's files in any order), and nothing refers to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Required, immutable: the full name, components joined by `/` (the directory path
    /// under `images/`).
    pub name: String,
    /// The descriptor the name points at (`target`); `None` while labels came first.
    pub target: Option<Descriptor>,
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
        Self { name, target: Some(target), target_text: None, labels: Labels::new(), created_at: now, updated_at: now }
    }

    /// A record holding labels for an image whose target has not been written yet.
    pub fn pending(name: String, now: Timestamp) -> Self {
        Self { name, target: None, target_text: None, labels: Labels::new(), created_at: now, updated_at: now }
    }

    /// Whether it references anything collection could free once it is gone: a target or
    /// a `containerd.io/gc.ref.*` label.
    pub fn references_anything(&self) -> bool {
        self.target.is_some() || super::label_refs(&self.labels).next().is_some()
    }

    /// Whether it has a target (only then is it an image).
    pub fn is_image(&self) -> bool {
        self.target.is_some()
    }

    /// What the `target` file shows: the document as written, byte for byte.
    pub fn target_file(&self) -> String {
        self.target_text.clone().or_else(|| self.target.as_ref().map(Descriptor::render)).unwrap_or_default()
    }

    /// The read-only `info.json` document (the target as its parsed descriptor).
    pub fn info_json(&self) -> String {
        let shown = Image { target_text: None, ..self.clone() };
        let mut text = serde_json::to_string_pretty(&shown).expect("an image always serializes");
        text.push('\n');
        text
    }
}
