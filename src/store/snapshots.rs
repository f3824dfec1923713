//! Snapshot records: create (after the snapshotter made the directory), update, delete.
//! Each call validates first, then writes, inside the caller's one transaction.

use super::nodes::{Node, NodeId, NodeKind};
use super::{gc, schema, Result, StoreError, StoreRead, Writer};
use crate::model::event::Published;
use crate::model::{validate_snapshot_key, Snapshot, SnapshotKind, Timestamp, ValidationError};

impl Writer<'_> {
    /// Records a snapshot under `snapshots/<key>` with the id its directory was made
    /// under. Its parent must exist and be committed.
    pub fn create_snapshot(&mut self, id: NodeId, snapshot: &Snapshot) -> Result<Node> {
        validate_snapshot_key(&snapshot.key)?;
        if let Some(parent) = &snapshot.parent {
            match self.snapshot_by_key(parent)? {
                Some((_, p)) if p.kind == SnapshotKind::Committed => {}
                Some(_) => return Err(StoreError::NotPermitted(format!("parent snapshot {parent} is not committed"))),
                None => return Err(StoreError::NotFound { kind: "snapshot", key: parent.clone() }),
            }
        }
        let node = self.insert_node_with_id(id, schema::SNAPSHOTS, &snapshot.key, NodeKind::Snapshot, snapshot.created_at)?;
        self.put_snapshot_record(node.id, snapshot)?;
        // A layer is unpacked into its directory, then recorded committed: containerd's
        // prepare and commit happen in the one step, told as its commit.
        let (key, snapshotter) = (snapshot.key.clone(), snapshot.snapshotter.clone());
        self.publish(match snapshot.kind {
            SnapshotKind::Active => Published::SnapshotPrepare { key, parent: snapshot.parent.clone().unwrap_or_default(), snapshotter },
            SnapshotKind::Committed => Published::SnapshotCommit { name: key.clone(), key, snapshotter },
        });
        Ok(node)
    }

    /// Applies `change` to a snapshot and stamps `updated_at`; a change that leaves it as
    /// it was writes nothing.
    pub fn update_snapshot(
        &mut self,
        node: NodeId,
        change: impl FnOnce(&mut Snapshot) -> Result<(), ValidationError>,
    ) -> Result<Snapshot> {
        let before = self
            .snapshot(node)?
            .ok_or_else(|| StoreError::NotFound { kind: "snapshot", key: format!("node {}", node.0) })?;
        let mut snapshot = before.clone();
        change(&mut snapshot)?;
        if snapshot == before {
            return Ok(snapshot);
        }
        let labels_changed = snapshot.labels != before.labels;
        snapshot.updated_at = Timestamp::now();
        self.put_snapshot_record(node, &snapshot)?;
        self.clear_times(node, if labels_changed { &["labels"] } else { &[] })?;
        Ok(snapshot)
    }

    /// `rmdir snapshots/<key>`: deletes a snapshot nothing pins.
    pub fn delete_snapshot(&mut self, key: &str) -> Result<(Node, Snapshot)> {
        let (id, snapshot) =
            self.snapshot_by_key(key)?.ok_or_else(|| StoreError::NotFound { kind: "snapshot", key: key.into() })?;
        if let Some(by) = gc::pinned_by(self, gc::Target::Snapshot(key))? {
            return Err(StoreError::InUse { what: format!("snapshot {key}"), by });
        }
        let node = self.node(id)?.ok_or_else(|| StoreError::Corrupt(format!("snapshot {key} has no node")))?;
        self.remove_snapshot(&node)?;
        Ok((node, snapshot))
    }

    /// Removes a snapshot's node and record.
    pub(super) fn remove_snapshot(&mut self, node: &Node) -> Result<()> {
        if let Some(snapshot) = self.snapshot(node.id)? {
            self.publish(Published::SnapshotRemove { key: snapshot.key, snapshotter: snapshot.snapshotter });
        }
        self.remove_node(node, Timestamp::now())?;
        self.delete_snapshot_record(node.id)?;
        Ok(())
    }
}

/// The snapshot called `key`.
pub(super) fn by_key(reader: &(impl StoreRead + ?Sized), key: &str) -> Result<Option<(NodeId, Snapshot)>> {
    let Some(node) = reader.lookup(schema::SNAPSHOTS, key)? else { return Ok(None) };
    Ok(reader.snapshot(node.id)?.map(|s| (node.id, s)))
}
