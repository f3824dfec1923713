//! The reference index (schema 7): who references each blob and snapshot, kept in the
//! same transaction as the records that hold the references, so that collection, the
//! `EBUSY` checks and `references` walk from a target to its holders by cursor instead of
//! loading every record.
//!
//! ```text
//! refs        target ‖ 0 ‖ holder tag ‖ holder node id ‖ via  → ()
//!             target = b'b' ‖ digest | b's' ‖ snapshot key; holder tag 1 image,
//!             2 container, 3 blob, 4 snapshot (roots sort first, so a walk up meets
//!             them first); via b'o' (its own field: target, snapshot, child, parent) or
//!             b'l' (a containerd.io/gc.ref.* label)
//! gc_pending  target → ()         what may have become garbage: a reference to it went,
//!                                 or it stopped holding itself (new, lease ended, label)
//! leases      u64 BE until ‖ u64 BE blob node id → ()    every ingest lease, by its end
//! ```
//!
//! Every write of an image, container, blob or snapshot record goes through the `put_*` and
//! `delete_*` methods here, which diff the references the record held before and after.
//! Only names that can be a record's (a valid digest, a valid snapshot key) are indexed: a
//! label naming anything else can never keep a record. Those names hold no NUL, so the
//! prefix `target ‖ 0` is unambiguous, and every key stays far below LMDB's 511 bytes.

use std::collections::{BTreeSet, HashSet};

use heed::RwTxn;

use super::gc::Reference;
use super::nodes::NodeId;
use super::{Dbs, Result, StoreRead, Writer};
use crate::model::{is_gc_root, validate_digest, validate_snapshot_key, Blob, BlobState, Container, Image, Labels};
use crate::model::{Snapshot, Timestamp};

/// A record that holds references, by kind and node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Holder {
    /// An image record (its directory's node).
    Image(NodeId),
    /// A container record.
    Container(NodeId),
    /// A blob record.
    Blob(NodeId),
    /// A snapshot record.
    Snapshot(NodeId),
}

impl Holder {
    /// Images and containers are collection roots: what they reference stays.
    pub(super) fn is_root(self) -> bool {
        matches!(self, Holder::Image(_) | Holder::Container(_))
    }

    fn tag(self) -> (u8, NodeId) {
        match self {
            Holder::Image(id) => (1, id),
            Holder::Container(id) => (2, id),
            Holder::Blob(id) => (3, id),
            Holder::Snapshot(id) => (4, id),
        }
    }

    fn from_tag(tag: u8, id: NodeId) -> Option<Holder> {
        Some(match tag {
            1 => Holder::Image(id),
            2 => Holder::Container(id),
            3 => Holder::Blob(id),
            4 => Holder::Snapshot(id),
            _ => return None,
        })
    }
}

/// How a record references a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Via {
    /// A field of its own: an image's target, a container's snapshot, a blob's child, a
    /// snapshot's parent.
    Own,
    /// A `containerd.io/gc.ref.*` label.
    Label,
}

/// The references one record holds.
pub(super) type Edges = BTreeSet<(Reference, Via)>;

fn indexable(reference: &Reference) -> bool {
    match reference {
        Reference::Blob(digest) => validate_digest(digest).is_ok(),
        Reference::Snapshot(key) => validate_snapshot_key(key).is_ok(),
    }
}

fn edges(own: impl IntoIterator<Item = Reference>, labels: &Labels) -> Edges {
    let own = own.into_iter().map(|r| (r, Via::Own));
    let labelled = super::gc::label_references(labels).map(|r| (r, Via::Label));
    own.chain(labelled).filter(|(r, _)| indexable(r)).collect()
}

/// What an image references: its target and its labels.
pub(super) fn image_edges(image: &Image) -> Edges {
    edges(image.target.iter().map(|t| Reference::Blob(t.digest.clone())), &image.labels)
}

/// What a container references: its snapshot key and its labels.
pub(super) fn container_edges(container: &Container) -> Edges {
    let snapshot = Some(&container.snapshot).filter(|k| !k.is_empty());
    edges(snapshot.map(|k| Reference::Snapshot(k.clone())), &container.labels)
}

/// What a blob references: the children its document lists and its labels.
pub(super) fn blob_edges(blob: &Blob) -> Edges {
    edges(blob.children.iter().map(|c| Reference::Blob(c.clone())), &blob.labels)
}

/// What a snapshot references: its parent and its labels.
pub(super) fn snapshot_edges(snapshot: &Snapshot) -> Edges {
    edges(snapshot.parent.iter().map(|p| Reference::Snapshot(p.clone())), &snapshot.labels)
}

/// Whether a blob keeps itself, whoever references it: being written, labelled
/// `containerd.io/gc.root`, or under an ingest lease (at `now`; `None`: any lease).
pub(super) fn blob_holds_itself(blob: &Blob, now: Option<Timestamp>) -> bool {
    let leased = blob.lease_until.is_some_and(|until| now.is_none_or(|now| until > now));
    blob.state == BlobState::Ingesting || is_gc_root(&blob.labels) || leased
}

/// Whether a snapshot keeps itself: labelled `containerd.io/gc.root`.
pub(super) fn snapshot_holds_itself(snapshot: &Snapshot) -> bool {
    is_gc_root(&snapshot.labels)
}

/// `refs`/`gc_pending` key of a target.
pub(super) fn target_key(reference: &Reference) -> Vec<u8> {
    let (tag, name) = match reference {
        Reference::Blob(digest) => (b'b', digest.as_str()),
        Reference::Snapshot(key) => (b's', key.as_str()),
    };
    let mut key = Vec::with_capacity(1 + name.len() + 11);
    key.push(tag);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The target a `gc_pending` key names.
pub(super) fn target_of_key(key: &[u8]) -> Option<Reference> {
    let (tag, name) = key.split_first()?;
    let name = String::from_utf8(name.to_vec()).ok()?;
    match tag {
        b'b' => Some(Reference::Blob(name)),
        b's' => Some(Reference::Snapshot(name)),
        _ => None,
    }
}

fn referrers_prefix(target: &Reference) -> Vec<u8> {
    let mut prefix = target_key(target);
    prefix.push(0);
    prefix
}

fn edge_key(target: &Reference, holder: Holder, via: Via) -> Vec<u8> {
    let mut key = referrers_prefix(target);
    let (tag, id) = holder.tag();
    key.push(tag);
    key.extend_from_slice(&id.0.to_be_bytes());
    key.push(match via {
        Via::Own => b'o',
        Via::Label => b'l',
    });
    key
}

/// The holder and the way of an edge key, read from its end (the target's name is known).
fn holder_of_key(key: &[u8]) -> Option<(Holder, Via)> {
    let tail = key.get(key.len().checked_sub(10)?..)?;
    let id = NodeId(u64::from_be_bytes(tail[1..9].try_into().ok()?));
    let via = match tail[9] {
        b'o' => Via::Own,
        b'l' => Via::Label,
        _ => return None,
    };
    Some((Holder::from_tag(tail[0], id)?, via))
}

fn lease_key(until: Timestamp, blob: NodeId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&until.as_nanos().to_be_bytes());
    key[8..].copy_from_slice(&blob.0.to_be_bytes());
    key
}

/// Writes `edges` of `holder` into an index that does not hold them yet (migration).
pub(super) fn insert_edges(dbs: &Dbs, txn: &mut RwTxn, holder: Holder, edges: &Edges) -> Result<()> {
    for (target, via) in edges {
        dbs.refs.put(txn, &edge_key(target, holder, *via), &())?;
    }
    Ok(())
}

/// Records a lease in the lease index (migration).
pub(super) fn insert_lease(dbs: &Dbs, txn: &mut RwTxn, blob: NodeId, until: Timestamp) -> Result<()> {
    dbs.leases.put(txn, &lease_key(until, blob), &())?;
    Ok(())
}

/// Marks `target` for the next collection (migration).
pub(super) fn insert_pending(dbs: &Dbs, txn: &mut RwTxn, target: &Reference) -> Result<()> {
    dbs.gc_pending.put(txn, &target_key(target), &())?;
    Ok(())
}

/// The holders of one target, read lazily from the index in key order (roots first).
pub(super) struct Holders<'t>(heed::RoPrefix<'t, heed::types::Bytes, heed::types::Unit>);

impl Iterator for Holders<'_> {
    type Item = Result<(Holder, Via)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.0.next()?;
        Some(item.map_err(super::StoreError::from).and_then(|(key, ())| {
            holder_of_key(key).ok_or_else(|| super::StoreError::Corrupt(format!("reference key {key:?}")))
        }))
    }
}

/// Where a walk up from a target ended.
pub(super) enum Upward {
    /// At an image or container above it.
    Root(Holder),
    /// Where the visitor asked to stop.
    Stopped,
    /// Nothing is left above: every record above the start was visited.
    Exhausted,
}

/// Read side of the index.
pub(super) trait RefsRead: StoreRead {
    /// Who references `target`, and how: one cursor over its prefix.
    fn holders(&self, target: &Reference) -> Result<Holders<'_>> {
        Ok(Holders(self.dbs().refs.prefix_iter(self.ro(), &referrers_prefix(target))?))
    }

    /// [`RefsRead::holders`], all of them.
    fn holders_of(&self, target: &Reference) -> Result<Vec<(Holder, Via)>> {
        self.holders(target)?.collect()
    }

    /// The blob or snapshot a holder is, as a target name (`None` for images and
    /// containers, and for a record that is gone).
    fn holder_as_target(&self, holder: Holder) -> Result<Option<Reference>> {
        Ok(match holder {
            Holder::Blob(id) => self.blob(id)?.map(|b| Reference::Blob(b.digest)),
            Holder::Snapshot(id) => self.snapshot(id)?.map(|s| Reference::Snapshot(s.key)),
            Holder::Image(_) | Holder::Container(_) => None,
        })
    }

    /// Walks up from `start` through what references it, depth first, reading each
    /// holder list lazily: a walk that meets a root stops on the first path to one, and
    /// one that meets none has visited every record above `start` and nothing else.
    /// `visit` sees `start` and each blob or snapshot above it once, and stops the walk
    /// by returning `true`.
    fn walk_up(&self, start: &Reference, visit: &mut dyn FnMut(&Reference) -> Result<bool>) -> Result<Upward> {
        if visit(start)? {
            return Ok(Upward::Stopped);
        }
        let mut seen: HashSet<Reference> = HashSet::from([start.clone()]);
        let mut stack = vec![self.holders(start)?];
        while let Some(top) = stack.last_mut() {
            let Some(item) = top.next() else {
                stack.pop();
                continue;
            };
            let (holder, _) = item?;
            if holder.is_root() {
                return Ok(Upward::Root(holder));
            }
            let Some(next) = self.holder_as_target(holder)? else { continue };
            if seen.insert(next.clone()) {
                if visit(&next)? {
                    return Ok(Upward::Stopped);
                }
                stack.push(self.holders(&next)?);
            }
        }
        Ok(Upward::Exhausted)
    }

    /// An image or container above `start`, if any. Costs what references `start`,
    /// transitively, up to the first root, not the size of the store.
    fn root_reaching(&self, start: &Reference) -> Result<Option<Holder>> {
        Ok(match self.walk_up(start, &mut |_| Ok(false))? {
            Upward::Root(holder) => Some(holder),
            Upward::Stopped | Upward::Exhausted => None,
        })
    }

    /// Every ingest lease that ended at or before `now`: (blob node, end).
    fn leases_ended_by(&self, now: Timestamp) -> Result<Vec<NodeId>> {
        let mut ended = Vec::new();
        for item in self.dbs().leases.iter(self.ro())? {
            let (key, ()) = item?;
            let until = u64::from_be_bytes(key[..8].try_into().map_err(|_| corrupt_lease(key))?);
            if until > now.as_nanos() {
                break;
            }
            ended.push(NodeId(u64::from_be_bytes(key[8..16].try_into().map_err(|_| corrupt_lease(key))?)));
        }
        Ok(ended)
    }
}

impl<R: StoreRead + ?Sized> RefsRead for R {}

fn corrupt_lease(key: &[u8]) -> super::StoreError {
    super::StoreError::Corrupt(format!("lease key {key:?}"))
}

impl Writer<'_> {
    /// Writes an image record and its references.
    pub(super) fn put_image_record(&mut self, id: NodeId, image: &Image) -> Result<()> {
        let before = self.image(id)?.map(|i| image_edges(&i)).unwrap_or_default();
        self.dbs.images.put(&mut self.txn, &id.0, image)?;
        self.reindex(Holder::Image(id), None, &before, &image_edges(image))
    }

    /// Deletes an image record and its references.
    pub(super) fn delete_image_record(&mut self, id: NodeId) -> Result<()> {
        let before = self.image(id)?.map(|i| image_edges(&i)).unwrap_or_default();
        self.dbs.images.delete(&mut self.txn, &id.0)?;
        self.reindex(Holder::Image(id), None, &before, &Edges::new())
    }

    /// Writes a container record and its references.
    pub(super) fn put_container_record(&mut self, id: NodeId, container: &Container) -> Result<()> {
        let before = self.container(id)?.map(|c| container_edges(&c)).unwrap_or_default();
        self.dbs.containers.put(&mut self.txn, &id.0, container)?;
        self.reindex(Holder::Container(id), None, &before, &container_edges(container))
    }

    /// Deletes a container record and its references.
    pub(super) fn delete_container_record(&mut self, id: NodeId) -> Result<()> {
        let before = self.container(id)?.map(|c| container_edges(&c)).unwrap_or_default();
        self.dbs.containers.delete(&mut self.txn, &id.0)?;
        self.reindex(Holder::Container(id), None, &before, &Edges::new())
    }

    /// Writes a blob record, its references and its lease. A blob that stops keeping
    /// itself (its writer finished, its lease or `gc.root` label went) may be garbage now.
    pub(super) fn put_blob_record(&mut self, id: NodeId, blob: &Blob) -> Result<()> {
        let before = self.blob(id)?;
        self.dbs.blobs.put(&mut self.txn, &id.0, blob)?;
        let this = Reference::Blob(blob.digest.clone());
        self.relist_lease(id, before.as_ref().and_then(|b| b.lease_until), blob.lease_until)?;
        if !blob_holds_itself(blob, None) && before.as_ref().is_none_or(|b| blob_holds_itself(b, None)) {
            self.mark_pending(&this)?;
        }
        // Last: ending leases may write this very record again.
        let old_edges = before.as_ref().map(blob_edges).unwrap_or_default();
        self.reindex(Holder::Blob(id), Some(&this), &old_edges, &blob_edges(blob))
    }

    /// Deletes a blob record, its references and its lease.
    pub(super) fn delete_blob_record(&mut self, id: NodeId) -> Result<()> {
        let Some(before) = self.blob(id)? else { return Ok(()) };
        self.dbs.blobs.delete(&mut self.txn, &id.0)?;
        self.reindex(Holder::Blob(id), None, &blob_edges(&before), &Edges::new())?;
        self.relist_lease(id, before.lease_until, None)
    }

    /// Writes a snapshot record and its references; one that stops keeping itself (new,
    /// or its `gc.root` label went) may be garbage now.
    pub(super) fn put_snapshot_record(&mut self, id: NodeId, snapshot: &Snapshot) -> Result<()> {
        let before = self.snapshot(id)?;
        self.dbs.snapshots.put(&mut self.txn, &id.0, snapshot)?;
        let this = Reference::Snapshot(snapshot.key.clone());
        if !snapshot_holds_itself(snapshot) && before.as_ref().is_none_or(snapshot_holds_itself) {
            self.mark_pending(&this)?;
        }
        let old_edges = before.as_ref().map(snapshot_edges).unwrap_or_default();
        self.reindex(Holder::Snapshot(id), Some(&this), &old_edges, &snapshot_edges(snapshot))
    }

    /// Deletes a snapshot record and its references.
    pub(super) fn delete_snapshot_record(&mut self, id: NodeId) -> Result<()> {
        let before = self.snapshot(id)?.map(|s| snapshot_edges(&s)).unwrap_or_default();
        self.dbs.snapshots.delete(&mut self.txn, &id.0)?;
        self.reindex(Holder::Snapshot(id), None, &before, &Edges::new())
    }

    /// Marks `target` for the next collection.
    pub(super) fn mark_pending(&mut self, target: &Reference) -> Result<()> {
        if indexable(target) {
            self.dbs.gc_pending.put(&mut self.txn, &target_key(target), &())?;
        }
        Ok(())
    }

    /// Takes `target` off the next collection's list.
    pub(super) fn unmark_pending(&mut self, target: &Reference) -> Result<()> {
        self.dbs.gc_pending.delete(&mut self.txn, &target_key(target))?;
        Ok(())
    }

    /// Up to `limit` pending targets, skipping `skip`, in key order.
    pub(super) fn pending_targets(&self, skip: &HashSet<Reference>, limit: usize) -> Result<Vec<Reference>> {
        let mut found = Vec::new();
        for item in self.dbs.gc_pending.iter(&self.txn)? {
            let (key, ()) = item?;
            let target = target_of_key(key).ok_or_else(|| super::StoreError::Corrupt(format!("pending key {key:?}")))?;
            if !skip.contains(&target) {
                found.push(target);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Applies the difference between the references `holder` held and holds now. A
    /// target that lost a reference may be garbage; one that a root came to reach loses
    /// its ingest lease (and what it reaches theirs), as containerd's pull does when the
    /// image is written. `this` is the holder as a target, for a blob or snapshot.
    fn reindex(&mut self, holder: Holder, this: Option<&Reference>, before: &Edges, after: &Edges) -> Result<()> {
        for (target, via) in before.difference(after) {
            self.dbs.refs.delete(&mut self.txn, &edge_key(target, holder, *via))?;
            self.mark_pending(target)?;
        }
        let added: Vec<Reference> = after.difference(before).map(|(target, _)| target.clone()).collect();
        for (target, via) in after.difference(before) {
            self.dbs.refs.put(&mut self.txn, &edge_key(target, holder, *via), &())?;
        }
        if added.is_empty() {
            return Ok(());
        }
        let reached = holder.is_root() || match this {
            Some(this) => self.root_reaching(this)?.is_some(),
            None => false,
        };
        if reached {
            for target in &added {
                self.end_leases_from(target)?;
            }
        }
        Ok(())
    }

    fn relist_lease(&mut self, id: NodeId, before: Option<Timestamp>, after: Option<Timestamp>) -> Result<()> {
        if before == after {
            return Ok(());
        }
        if let Some(until) = before {
            self.dbs.leases.delete(&mut self.txn, &lease_key(until, id))?;
        }
        if let Some(until) = after {
            self.dbs.leases.put(&mut self.txn, &lease_key(until, id), &())?;
        }
        Ok(())
    }
}

/// The index as the records say it should be, against what it holds: `Err` names the
/// first difference. For tests, after every change they make.
#[cfg(test)]
pub(super) fn check_index(reader: &(impl StoreRead + ?Sized)) -> std::result::Result<(), String> {
    let (dbs, txn) = (reader.dbs(), reader.ro());
    let mut expected = BTreeSet::new();
    let mut add = |holder: Holder, edges: Edges| {
        for (target, via) in edges {
            expected.insert(edge_key(&target, holder, via));
        }
    };
    for item in dbs.images.iter(txn).unwrap() {
        let (id, image) = item.unwrap();
        add(Holder::Image(NodeId(id)), image_edges(&image));
    }
    for item in dbs.containers.iter(txn).unwrap() {
        let (id, container) = item.unwrap();
        add(Holder::Container(NodeId(id)), container_edges(&container));
    }
    let mut leases = BTreeSet::new();
    for item in dbs.blobs.iter(txn).unwrap() {
        let (id, blob) = item.unwrap();
        add(Holder::Blob(NodeId(id)), blob_edges(&blob));
        if let Some(until) = blob.lease_until {
            leases.insert(lease_key(until, NodeId(id)).to_vec());
        }
    }
    for item in dbs.snapshots.iter(txn).unwrap() {
        let (id, snapshot) = item.unwrap();
        add(Holder::Snapshot(NodeId(id)), snapshot_edges(&snapshot));
    }
    let held: BTreeSet<Vec<u8>> = dbs.refs.iter(txn).unwrap().map(|i| i.unwrap().0.to_vec()).collect();
    if let Some(missing) = expected.difference(&held).next() {
        return Err(format!("the index lacks {:?}", String::from_utf8_lossy(missing)));
    }
    if let Some(extra) = held.difference(&expected).next() {
        return Err(format!("the index holds {:?}, which no record makes", String::from_utf8_lossy(extra)));
    }
    let listed: BTreeSet<Vec<u8>> = dbs.leases.iter(txn).unwrap().map(|i| i.unwrap().0.to_vec()).collect();
    if listed != leases {
        return Err(format!("leases listed {listed:?}, records say {leases:?}"));
    }
    Ok(())
}
