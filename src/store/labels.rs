//! Labels of any labelled record (image, container, blob or snapshot), for callers that hold a node and
//! not its kind's record type: the `labels` file and the `user.*` extended attributes.

use super::nodes::{NodeId, NodeKind};
use super::{Result, StoreError, StoreRead, Writer};
use crate::model::{Labels, ValidationError};

impl Writer<'_> {
    /// Applies `change` to the labels of the image or container `node`, stamping the
    /// record's `updated_at`; returns the new labels.
    pub fn update_labels(
        &mut self,
        node: NodeId,
        change: impl FnOnce(&mut Labels) -> Result<(), ValidationError>,
    ) -> Result<Labels> {
        // Every label change of every record passes here, so the bounds on the whole set
        // are checked once, on the set the change produced.
        let change = |l: &mut Labels| -> Result<(), ValidationError> {
            change(l)?;
            l.validate_set()
        };
        let kind = self.node(node)?.map(|n| n.kind);
        match kind {
            Some(NodeKind::ImageDir) => self.update_image_labels(node, change).map(|i| i.labels),
            Some(NodeKind::Container) => self.update_container(node, |c| change(&mut c.labels)).map(|c| c.labels),
            Some(NodeKind::Snapshot) => self.update_snapshot(node, |s| change(&mut s.labels)).map(|s| s.labels),
            Some(NodeKind::Blob) => self.update_blob_labels(node, change),
            Some(other) => Err(StoreError::NotPermitted(format!("a {other:?} has no labels"))),
            None => Err(StoreError::NotFound { kind: "record", key: format!("node {}", node.0) }),
        }
    }
}

/// The labels of any labelled record; `None` for a node without a labelled record.
pub(super) fn labels_of(reader: &(impl StoreRead + ?Sized), id: NodeId) -> Result<Option<Labels>> {
    Ok(match reader.node(id)?.map(|n| n.kind) {
        Some(NodeKind::ImageDir) => reader.image(id)?.map(|i| i.labels),
        Some(NodeKind::Container) => reader.container(id)?.map(|c| c.labels),
        Some(NodeKind::Snapshot) => reader.snapshot(id)?.map(|s| s.labels),
        Some(NodeKind::Blob) => reader.blob(id)?.map(|b| b.labels),
        _ => None,
    })
}
