//! Blob records: begin (the writer created the file), commit (its bytes matched the
//! digest), discard, delete. Each call validates first, then writes, inside the caller's
//! one transaction. The bytes themselves are the content store's, not ours.

use super::nodes::{Node, NodeId, NodeKind};
use super::refs::RefsRead;
use super::{gc, schema, Result, StoreError, StoreRead, Writer};
use crate::model::{digest_of_file_name, Blob, BlobState, Timestamp};

impl Writer<'_> {
    /// A writer created `content/<alg>/<hex>`: records an ingesting blob. Refuses a name
    /// that is not a digest and a blob that exists.
    pub fn begin_blob(&mut self, dir: NodeId, hex: &str) -> Result<(Node, Blob)> {
        let algorithm = self.digest_dir_name(dir)?;
        let digest = digest_of_file_name(&algorithm, hex)?;
        let now = Timestamp::now();
        let node = self.insert_node(dir, hex, NodeKind::Blob, now)?;
        let blob = Blob::ingesting(digest, now);
        self.put_blob_record(node.id, &blob)?;
        Ok((node, blob))
    }

    /// The bytes of an ingesting blob matched its digest and are in place.
    pub fn commit_blob(
        &mut self,
        node: NodeId,
        size: u64,
        children: Vec<String>,
        lease_until: Option<Timestamp>,
    ) -> Result<Blob> {
        let mut blob = self.blob(node)?.ok_or_else(|| not_found(node))?;
        if blob.state != BlobState::Ingesting {
            return Err(StoreError::AlreadyExists { kind: "blob", key: blob.digest });
        }
        blob.state = BlobState::Committed;
        blob.size = size;
        blob.children = children;
        blob.lease_until = lease_until;
        blob.updated_at = Timestamp::now();
        // Written after the image that reaches it: referenced already, so no lease (and
        // the index ends the leases of the children it lists, which that image reaches).
        if self.root_reaching(&super::Reference::Blob(blob.digest.clone()))?.is_some() {
            blob.lease_until = None;
        }
        self.put_blob_record(node, &blob)?;
        Ok(blob)
    }

    /// Drops an ingesting blob whose writer failed or went away. A committed blob is left
    /// alone (another writer may have committed the same digest).
    pub fn discard_blob(&mut self, node: NodeId) -> Result<Option<Node>> {
        match (self.node(node)?, self.blob(node)?) {
            (Some(n), Some(blob)) if blob.state == BlobState::Ingesting => {
                self.remove_blob(&n)?;
                Ok(Some(n))
            }
            _ => Ok(None),
        }
    }

    /// The digest of blob `hex` in digest directory `dir`, if there is one.
    pub fn blob_digest_at(&self, dir: NodeId, hex: &str) -> Result<String> {
        let node = self
            .lookup(dir, hex)?
            .filter(|n| n.kind == NodeKind::Blob)
            .ok_or_else(|| StoreError::NotFound { kind: "blob", key: hex.into() })?;
        Ok(self.blob(node.id)?.ok_or_else(|| not_found(node.id))?.digest)
    }

    /// `rm content/<alg>/<hex>`: deletes a blob nothing pins.
    pub fn delete_blob(&mut self, dir: NodeId, hex: &str) -> Result<(Node, Blob)> {
        let node = self
            .lookup(dir, hex)?
            .filter(|n| n.kind == NodeKind::Blob)
            .ok_or_else(|| StoreError::NotFound { kind: "blob", key: hex.into() })?;
        let blob = self.blob(node.id)?.ok_or_else(|| not_found(node.id))?;
        if blob.state == BlobState::Ingesting {
            return Err(StoreError::InUse { what: format!("blob {}", blob.digest), by: "its writer".into() });
        }
        if let Some(by) = gc::pinned_by(self, gc::Target::Blob(&blob.digest))? {
            return Err(StoreError::InUse { what: format!("blob {}", blob.digest), by });
        }
        self.remove_blob(&node)?;
        Ok((node, blob))
    }

    /// Applies `change` to a committed blob's labels.
    pub(super) fn update_blob_labels(
        &mut self,
        node: NodeId,
        change: impl FnOnce(&mut crate::model::Labels) -> Result<(), crate::model::ValidationError>,
    ) -> Result<crate::model::Labels> {
        let mut blob = self.blob(node)?.ok_or_else(|| not_found(node))?;
        if blob.state != BlobState::Committed {
            return Err(StoreError::InUse { what: format!("blob {}", blob.digest), by: "its writer".into() });
        }
        let before = blob.labels.clone();
        change(&mut blob.labels)?;
        if blob.labels == before {
            return Ok(blob.labels);
        }
        // (A time set on the blob stays: its bytes, what the time is about, never change.)
        blob.updated_at = Timestamp::now();
        self.put_blob_record(node, &blob)?;
        Ok(blob.labels)
    }

    /// Removes a blob's node and record.
    pub(super) fn remove_blob(&mut self, node: &Node) -> Result<()> {
        if let Some(blob) = self.blob(node.id)?.filter(|b| b.state == BlobState::Committed) {
            self.publish(crate::model::event::Published::ContentDelete { digest: blob.digest });
        }
        self.remove_node(node, Timestamp::now())?;
        self.delete_blob_record(node.id)?;
        Ok(())
    }

    fn digest_dir_name(&self, dir: NodeId) -> Result<String> {
        match self.node(dir)? {
            Some(node) if node.kind == NodeKind::DigestDir => Ok(node.name),
            Some(node) => Err(StoreError::NotPermitted(format!("{} holds no blobs: use content/sha256/", node.name))),
            None => Err(not_found(dir)),
        }
    }
}

/// The blob called `digest`, found through its directory entry.
pub(super) fn by_digest(reader: &(impl StoreRead + ?Sized), digest: &str) -> Result<Option<(NodeId, Blob)>> {
    let Some((algorithm, hex)) = digest.split_once(':') else { return Ok(None) };
    let dir = match algorithm {
        "sha256" => schema::CONTENT_SHA256,
        "sha512" => schema::CONTENT_SHA512,
        _ => return Ok(None),
    };
    let Some(node) = reader.lookup(dir, hex)? else { return Ok(None) };
    Ok(reader.blob(node.id)?.map(|blob| (node.id, blob)))
}

fn not_found(node: NodeId) -> StoreError {
    StoreError::NotFound { kind: "blob", key: format!("node {}", node.0) }
}
