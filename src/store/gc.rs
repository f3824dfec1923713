//! Garbage collection over the records, by containerd's rules: what is reachable from
//! a root stays, everything else is deleted in one transaction.
//!
//! ```text
//! roots:  image ──target──► blob ──children──► blob …      (index → manifests → config, layers)
//!         container ──snapshot key──► snapshot ──parent──► snapshot …
//!         any record ──containerd.io/gc.ref.content*──► blob
//!                    ──containerd.io/gc.ref.snapshot.<snapshotter>*──► snapshot
//!         blobs being written, records labelled containerd.io/gc.root, snapshots being
//!         unpacked (the caller's in-flight keys)
//! weak:   a blob's ingest lease keeps it (and what it reaches) until it expires or until
//!         an image or container comes to reach it, which ends the lease
//! ```
//!
//! Nothing is marked from the roots. The reference index (`refs.rs`) knows who references
//! each blob and snapshot, and which ones may have become garbage since the last
//! collection (a reference to them went, or they stopped keeping themselves). A
//! collection judges only those, each by walking up through what references it: a root
//! above it keeps it; with none, it and everything above it are unreachable and go, and
//! what they referenced is judged next. Reachability is the same as a full mark from the
//! roots (`gc_tests.rs` checks it against one), at the cost of what the delete frees.
//!
//! The caller removes the files of what was collected after the commit; a crash before
//! that leaves files without records, which the start-up sweep removes.

use std::collections::{BTreeSet, HashSet};

use super::nodes::NodeId;
use super::refs::{blob_holds_itself, snapshot_holds_itself, Holder, RefsRead, Upward, Via};
use super::{Result, StoreError, StoreRead, Writer};
use crate::model::{is_gc_root, label_refs, BlobState, LabelRef, Labels, Timestamp};

/// A blob or a snapshot, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A blob by digest.
    Blob(&'a str),
    /// A snapshot by key.
    Snapshot(&'a str),
}

/// One direct reference to a blob or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Referrer {
    /// An image (its target, or a label).
    Image(String),
    /// A container (its snapshot key, or a label).
    Container(String),
    /// A blob (it lists the target as a child, or a label).
    Blob(String),
    /// A snapshot (the target is its parent, or a label).
    Snapshot(String),
    /// The target's own `containerd.io/gc.root` label.
    Root,
    /// A blob's ingest lease, until this time.
    Lease(Timestamp),
}

impl std::fmt::Display for Referrer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Referrer::Image(name) => write!(f, "images/{name}"),
            Referrer::Container(id) => write!(f, "containers/{id}"),
            Referrer::Blob(digest) => write!(f, "content/{}", digest.replacen(':', "/", 1)),
            Referrer::Snapshot(key) => write!(f, "snapshots/{key}"),
            Referrer::Root => write!(f, "label containerd.io/gc.root"),
            Referrer::Lease(until) => write!(f, "ingest lease until {until}"),
        }
    }
}

/// What one collection deleted; the caller removes their files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Blob node ids and digests.
    pub blobs: Vec<(NodeId, String)>,
    /// Snapshot node ids and keys.
    pub snapshots: Vec<(NodeId, String)>,
    /// How many records the collection looked at: what was pending and what references
    /// it, not the size of the store.
    pub examined: usize,
}

impl Collected {
    /// Nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.snapshots.is_empty()
    }
}

/// A reference to a blob or snapshot, as roots and pins hold them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reference {
    /// A blob by digest.
    Blob(String),
    /// A snapshot by key.
    Snapshot(String),
}

/// What `containerd.io/gc.ref.*` labels reference.
pub fn label_references(labels: &Labels) -> impl Iterator<Item = Reference> + '_ {
    label_refs(labels).map(|r| match r {
        LabelRef::Content(digest) => Reference::Blob(digest.to_owned()),
        // One snapshotter serves a state directory, so keys are unique across snapshotters.
        LabelRef::Snapshot { key, .. } => Reference::Snapshot(key.to_owned()),
    })
}


/// At most this many pending targets are read per pass, so a large backlog (the first
/// collection after the migration) is not held in memory at once.
const PENDING_BATCH: usize = 512;

/// What a collection found about one candidate.
enum Verdict {
    /// Something keeps it: a root reaches it, or it or a record above it keeps itself.
    Kept,
    /// Only a pin held from outside the records keeps it (an unpack, an open writer); it
    /// stays pending, to be judged again by the next collection.
    HeldFromOutside,
    /// Nothing keeps it, nor anything that references it: it and every record above it
    /// (all of them unreachable, for whatever reached them is among them) go.
    Garbage(Vec<(NodeId, Reference)>),
    /// No record has the name.
    Absent,
}

/// Who keeps `target` from being removed: `None` when nothing but a lease does.
pub(super) fn pinned_by(reader: &(impl StoreRead + ?Sized), target: Target<'_>) -> Result<Option<String>> {
    let start = target.reference();
    if let Reference::Snapshot(_) = &start {
        // A parent goes only after its children, whatever keeps them.
        for (holder, via) in reader.holders_of(&start)? {
            if let (Holder::Snapshot(child), Via::Own) = (holder, via) {
                if let Some(child) = reader.snapshot(child)? {
                    return Ok(Some(format!("snapshots/{}", child.key)));
                }
            }
        }
    }
    let mut held_by_itself = false;
    let walk = reader.walk_up(&start, &mut |reference| {
        held_by_itself |= match reference {
            Reference::Blob(digest) => reader
                .blob_by_digest(digest)?
                .is_some_and(|(_, b)| b.state == BlobState::Ingesting || is_gc_root(&b.labels)),
            Reference::Snapshot(key) => reader.snapshot_by_key(key)?.is_some_and(|(_, s)| is_gc_root(&s.labels)),
        };
        Ok(false)
    })?;
    if let Upward::Root(holder) = walk {
        return Ok(referrer_of(reader, holder)?.map(|r| r.to_string()));
    }
    Ok(held_by_itself.then(|| "a record labelled containerd.io/gc.root, or a writer".to_owned()))
}

/// The direct referrers of `target`: one cursor over its entries in the index, and a
/// point read per referrer for its name.
pub(super) fn referrers(reader: &(impl StoreRead + ?Sized), target: Target<'_>) -> Result<Vec<Referrer>> {
    let mut found = BTreeSet::new();
    for (holder, _) in reader.holders_of(&target.reference())? {
        if let Some(referrer) = referrer_of(reader, holder)? {
            found.insert(referrer);
        }
    }
    match target {
        Target::Blob(d) => {
            if let Some((_, blob)) = reader.blob_by_digest(d)? {
                if is_gc_root(&blob.labels) {
                    found.insert(Referrer::Root);
                }
                if let Some(until) = blob.lease_until.filter(|u| *u > Timestamp::now()) {
                    found.insert(Referrer::Lease(until));
                }
            }
        }
        Target::Snapshot(k) => {
            if reader.snapshot_by_key(k)?.is_some_and(|(_, s)| is_gc_root(&s.labels)) {
                found.insert(Referrer::Root);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// A holder as the `references` views name it (`None`: its record is gone).
fn referrer_of(reader: &(impl StoreRead + ?Sized), holder: Holder) -> Result<Option<Referrer>> {
    Ok(match holder {
        Holder::Image(id) => reader.image(id)?.map(|i| Referrer::Image(i.name)),
        Holder::Container(id) => reader.container(id)?.map(|c| Referrer::Container(c.id)),
        Holder::Blob(id) => reader.blob(id)?.map(|b| Referrer::Blob(b.digest)),
        Holder::Snapshot(id) => reader.snapshot(id)?.map(|s| Referrer::Snapshot(s.key)),
    })
}

impl Target<'_> {
    fn reference(self) -> Reference {
        match self {
            Target::Blob(d) => Reference::Blob(d.to_owned()),
            Target::Snapshot(k) => Reference::Snapshot(k.to_owned()),
        }
    }
}

impl Writer<'_> {
    /// One collection: first every ingest lease that has ended is cleared, then each
    /// pending target (what lost a reference, or stopped keeping itself, since the last
    /// collection) is judged by walking up through what references it, and what nothing
    /// keeps is deleted, which may make what it referenced pending in turn. `in_flight`
    /// are held from outside the records: snapshots being unpacked (not yet referenced)
    /// and what open writers' files referenced when they were opened.
    ///
    /// The work is the pending targets and what references them, not the store: a delete
    /// costs what it can free.
    pub fn collect_garbage(&mut self, in_flight: &HashSet<Reference>, now: Timestamp) -> Result<Collected> {
        for id in self.leases_ended_by(now)? {
            if let Some(mut blob) = self.blob(id)? {
                blob.lease_until = None;
                self.put_blob_record(id, &blob)?;
            }
        }
        let mut collected = Collected::default();
        let mut deferred = HashSet::new();
        loop {
            let batch = self.pending_targets(&deferred, PENDING_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for candidate in batch {
                match self.verdict(&candidate, in_flight, now, &mut collected.examined)? {
                    Verdict::HeldFromOutside => {
                        deferred.insert(candidate);
                        continue;
                    }
                    Verdict::Garbage(records) => {
                        for (id, reference) in records {
                            self.remove_collected(id, reference, &mut collected)?;
                        }
                    }
                    Verdict::Kept | Verdict::Absent => {}
                }
                self.unmark_pending(&candidate)?;
            }
        }
        collected.blobs.sort();
        collected.snapshots.sort();
        Ok(collected)
    }

    /// Judges one candidate by walking up from it until something keeps it or nothing
    /// is left above it.
    fn verdict(
        &self,
        candidate: &Reference,
        in_flight: &HashSet<Reference>,
        now: Timestamp,
        examined: &mut usize,
    ) -> Result<Verdict> {
        let mut records = Vec::new();
        let mut stopped_by = None;
        let walk = self.walk_up(candidate, &mut |reference| {
            *examined += 1;
            if in_flight.contains(reference) {
                stopped_by = Some(Verdict::HeldFromOutside);
                return Ok(true);
            }
            let found = match reference {
                Reference::Blob(digest) => self.blob_by_digest(digest)?.map(|(id, b)| (id, blob_holds_itself(&b, Some(now)))),
                Reference::Snapshot(key) => self.snapshot_by_key(key)?.map(|(id, s)| (id, snapshot_holds_itself(&s))),
            };
            match found {
                None if records.is_empty() => {
                    stopped_by = Some(Verdict::Absent);
                    Ok(true)
                }
                None => Ok(false),
                Some((_, true)) => {
                    stopped_by = Some(Verdict::Kept);
                    Ok(true)
                }
                Some((id, false)) => {
                    records.push((id, reference.clone()));
                    Ok(false)
                }
            }
        })?;
        Ok(match walk {
            Upward::Root(_) => Verdict::Kept,
            Upward::Stopped => stopped_by.unwrap_or(Verdict::Kept),
            Upward::Exhausted => Verdict::Garbage(records),
        })
    }

    fn remove_collected(&mut self, id: NodeId, reference: Reference, collected: &mut Collected) -> Result<()> {
        let node = self.node(id)?.ok_or_else(|| StoreError::Corrupt(format!("{reference:?} has no node")))?;
        self.unmark_pending(&reference)?;
        match reference {
            Reference::Blob(digest) => {
                self.remove_blob(&node)?;
                collected.blobs.push((id, digest));
            }
            Reference::Snapshot(key) => {
                self.remove_snapshot(&node)?;
                collected.snapshots.push((id, key));
            }
        }
        Ok(())
    }

    /// Ends the ingest lease of every blob `start` reaches (a root just came to reach it).
    /// Walks only what `start` reaches, by point reads: a target write costs the size of
    /// its image, not of the store.
    pub fn end_leases_from(&mut self, start: &Reference) -> Result<()> {
        let mut seen: HashSet<Reference> = HashSet::new();
        let mut work = vec![start.clone()];
        while let Some(reference) = work.pop() {
            if !seen.insert(reference.clone()) {
                continue;
            }
            match &reference {
                Reference::Blob(digest) => {
                    let Some((id, blob)) = self.blob_by_digest(digest)? else { continue };
                    work.extend(blob.children.iter().map(|c| Reference::Blob(c.clone())));
                    work.extend(label_references(&blob.labels));
                    if blob.lease_until.is_some() {
                        let mut blob = blob;
                        blob.lease_until = None;
                        self.put_blob_record(id, &blob)?;
                    }
                }
                Reference::Snapshot(key) => {
                    let Some((_, snapshot)) = self.snapshot_by_key(key)? else { continue };
                    work.extend(snapshot.parent.iter().map(|p| Reference::Snapshot(p.clone())));
                    work.extend(label_references(&snapshot.labels));
                }
            }
        }
        Ok(())
    }
}
