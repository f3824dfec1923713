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
//!         a root reaches it, which ends the lease
//! ```
//!
//! The caller removes the files of what was collected after the commit; a crash before
//! that leaves files without records, which the start-up sweep removes.

use std::collections::{HashMap, HashSet};

use super::nodes::NodeId;
use super::{Result, StoreError, StoreRead, Writer};
use crate::model::{is_gc_root, label_refs, Blob, BlobState, LabelRef, Labels, Snapshot, Timestamp};

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
}

impl Collected {
    /// Nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.snapshots.is_empty()
    }
}

/// Every record, loaded once for a mark phase.
struct Graph {
    blobs: HashMap<String, (NodeId, Blob)>,
    snapshots: HashMap<String, (NodeId, Snapshot)>,
    /// (who, what it pins) for images and containers.
    roots: Vec<(Referrer, Vec<Reference>)>,
}

/// A reference to a blob or snapshot, as roots and pins hold them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A blob by digest.
    Blob(String),
    /// A snapshot by key.
    Snapshot(String),
}

#[derive(Default)]
struct Marks {
    blobs: HashSet<String>,
    snapshots: HashSet<String>,
}

/// What `containerd.io/gc.ref.*` labels reference.
pub fn label_references(labels: &Labels) -> impl Iterator<Item = Reference> + '_ {
    label_refs(labels).map(|r| match r {
        LabelRef::Content(digest) => Reference::Blob(digest.to_owned()),
        // One snapshotter serves a state directory, so keys are unique across snapshotters.
        LabelRef::Snapshot { key, .. } => Reference::Snapshot(key.to_owned()),
    })
}

impl Graph {
    fn load(reader: &(impl StoreRead + ?Sized)) -> Result<Graph> {
        let dbs = reader.dbs();
        let txn = reader.ro();
        let mut blobs = HashMap::new();
        for item in dbs.blobs.iter(txn)? {
            let (id, blob) = item?;
            blobs.insert(blob.digest.clone(), (NodeId(id), blob));
        }
        let mut snapshots = HashMap::new();
        for item in dbs.snapshots.iter(txn)? {
            let (id, snapshot) = item?;
            snapshots.insert(snapshot.key.clone(), (NodeId(id), snapshot));
        }
        let mut roots = Vec::new();
        for item in dbs.images.iter(txn)? {
            let (_, image) = item?;
            let mut pins: Vec<Reference> = image.target.iter().map(|t| Reference::Blob(t.digest.clone())).collect();
            pins.extend(label_references(&image.labels));
            roots.push((Referrer::Image(image.name), pins));
        }
        for item in dbs.containers.iter(txn)? {
            let (_, container) = item?;
            let mut pins: Vec<Reference> = label_references(&container.labels).collect();
            if !container.snapshot.is_empty() {
                pins.push(Reference::Snapshot(container.snapshot.clone()));
            }
            roots.push((Referrer::Container(container.id), pins));
        }
        Ok(Graph { blobs, snapshots, roots })
    }

    /// What a blob or snapshot record itself references.
    fn edges(&self, reference: &Reference) -> Vec<Reference> {
        match reference {
            Reference::Blob(digest) => match self.blobs.get(digest) {
                Some((_, blob)) => blob
                    .children
                    .iter()
                    .map(|c| Reference::Blob(c.clone()))
                    .chain(label_references(&blob.labels))
                    .collect(),
                None => Vec::new(),
            },
            Reference::Snapshot(key) => match self.snapshots.get(key) {
                Some((_, snapshot)) => {
                    snapshot.parent.iter().map(|p| Reference::Snapshot(p.clone())).chain(label_references(&snapshot.labels)).collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// Marks everything reachable from `start` into `marks`.
    fn mark(&self, start: impl IntoIterator<Item = Reference>, marks: &mut Marks) {
        let mut work: Vec<Reference> = start.into_iter().collect();
        while let Some(reference) = work.pop() {
            let fresh = match &reference {
                Reference::Blob(d) => marks.blobs.insert(d.clone()),
                Reference::Snapshot(k) => marks.snapshots.insert(k.clone()),
            };
            if fresh {
                work.extend(self.edges(&reference));
            }
        }
    }

    /// The strong roots: images, containers, blobs being written, gc.root labels and the
    /// caller's in-flight snapshots.
    fn strong_roots<'a>(&'a self, in_flight: &'a HashSet<Reference>) -> impl Iterator<Item = Reference> + 'a {
        let records = self.roots.iter().flat_map(|(_, pins)| pins.iter().cloned());
        let blobs = self
            .blobs
            .values()
            .filter(|(_, b)| b.state == BlobState::Ingesting || is_gc_root(&b.labels))
            .map(|(_, b)| Reference::Blob(b.digest.clone()));
        let snapshots =
            self.snapshots.values().filter(|(_, s)| is_gc_root(&s.labels)).map(|(_, s)| Reference::Snapshot(s.key.clone()));
        records.chain(blobs).chain(snapshots).chain(in_flight.iter().cloned())
    }

    fn leased(&self, now: Timestamp) -> impl Iterator<Item = Reference> + '_ {
        self.blobs
            .values()
            .filter(move |(_, b)| b.lease_until.is_some_and(|until| until > now))
            .map(|(_, b)| Reference::Blob(b.digest.clone()))
    }
}

/// Who keeps `target` from being removed: `None` when nothing but a lease does.
pub(super) fn pinned_by(reader: &(impl StoreRead + ?Sized), target: Target<'_>) -> Result<Option<String>> {
    let graph = Graph::load(reader)?;
    if let Target::Snapshot(key) = target {
        // A parent goes only after its children, whatever keeps them.
        if let Some((_, child)) = graph.snapshots.values().find(|(_, s)| s.parent.as_deref() == Some(key)) {
            return Ok(Some(format!("snapshots/{}", child.key)));
        }
    }
    let mut marks = Marks::default();
    graph.mark(graph.strong_roots(&HashSet::new()), &mut marks);
    if !reached(&marks, target) {
        return Ok(None);
    }
    // Pinned: name the record that does it (one walk per root, only on this refusal path).
    for (who, pins) in &graph.roots {
        let mut marks = Marks::default();
        graph.mark(pins.iter().cloned(), &mut marks);
        if reached(&marks, target) {
            return Ok(Some(who.to_string()));
        }
    }
    Ok(Some("a record labelled containerd.io/gc.root, or a writer".to_owned()))
}

fn reached(marks: &Marks, target: Target<'_>) -> bool {
    match target {
        Target::Blob(digest) => marks.blobs.contains(digest),
        Target::Snapshot(key) => marks.snapshots.contains(key),
    }
}

/// The direct referrers of `target`.
pub(super) fn referrers(reader: &(impl StoreRead + ?Sized), target: Target<'_>) -> Result<Vec<Referrer>> {
    let graph = Graph::load(reader)?;
    let wanted = match target {
        Target::Blob(d) => Reference::Blob(d.to_owned()),
        Target::Snapshot(k) => Reference::Snapshot(k.to_owned()),
    };
    let mut found: Vec<Referrer> =
        graph.roots.iter().filter(|(_, pins)| pins.contains(&wanted)).map(|(who, _)| who.clone()).collect();
    for (_, blob) in graph.blobs.values() {
        if graph.edges(&Reference::Blob(blob.digest.clone())).contains(&wanted) {
            found.push(Referrer::Blob(blob.digest.clone()));
        }
    }
    for (_, snapshot) in graph.snapshots.values() {
        if graph.edges(&Reference::Snapshot(snapshot.key.clone())).contains(&wanted) {
            found.push(Referrer::Snapshot(snapshot.key.clone()));
        }
    }
    match target {
        Target::Blob(d) => {
            if let Some((_, blob)) = graph.blobs.get(d) {
                if is_gc_root(&blob.labels) {
                    found.push(Referrer::Root);
                }
                if let Some(until) = blob.lease_until.filter(|u| *u > Timestamp::now()) {
                    found.push(Referrer::Lease(until));
                }
            }
        }
        Target::Snapshot(k) => {
            if graph.snapshots.get(k).is_some_and(|(_, s)| is_gc_root(&s.labels)) {
                found.push(Referrer::Root);
            }
        }
    }
    found.sort();
    Ok(found)
}

impl Writer<'_> {
    /// One collection: ends the lease of every blob a root reaches, then deletes every
    /// committed blob and every snapshot nothing reaches. `in_flight` are held from outside
    /// the records: snapshots being unpacked (not yet referenced) and what open writers'
    /// files referenced when they were opened.
    pub fn collect_garbage(&mut self, in_flight: &HashSet<Reference>, now: Timestamp) -> Result<Collected> {
        let graph = Graph::load(self)?;
        let mut marks = Marks::default();
        graph.mark(graph.strong_roots(in_flight), &mut marks);
        self.end_leases(&graph, &marks)?;
        graph.mark(graph.leased(now), &mut marks);
        let mut collected = Collected::default();
        for (digest, (id, blob)) in &graph.blobs {
            if blob.state == BlobState::Committed && !marks.blobs.contains(digest) {
                let node = self.node(*id)?.ok_or_else(|| StoreError::Corrupt(format!("blob {digest} has no node")))?;
                self.remove_blob(&node)?;
                collected.blobs.push((*id, digest.clone()));
            }
        }
        for (key, (id, _)) in &graph.snapshots {
            if !marks.snapshots.contains(key) {
                let node = self.node(*id)?.ok_or_else(|| StoreError::Corrupt(format!("snapshot {key} has no node")))?;
                self.remove_snapshot(&node)?;
                collected.snapshots.push((*id, key.clone()));
            }
        }
        collected.blobs.sort();
        collected.snapshots.sort();
        Ok(collected)
    }

    /// Ends the ingest lease of every blob `digest` reaches (its image was just written).
    /// Walks only what `digest` reaches, by point reads: a target write costs the size of
    /// its image, not of the store.
    pub fn end_leases_from(&mut self, digest: &str) -> Result<()> {
        let mut seen: HashSet<Reference> = HashSet::new();
        let mut work = vec![Reference::Blob(digest.to_owned())];
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
                        self.dbs.blobs.put(&mut self.txn, &id.0, &blob)?;
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

    /// Clears the lease of every marked blob that has one.
    fn end_leases(&mut self, graph: &Graph, marks: &Marks) -> Result<()> {
        for digest in &marks.blobs {
            if let Some((id, blob)) = graph.blobs.get(digest).filter(|(_, b)| b.lease_until.is_some()) {
                let mut blob = blob.clone();
                blob.lease_until = None;
                self.dbs.blobs.put(&mut self.txn, &id.0, &blob)?;
            }
        }
        Ok(())
    }
}
