//! Nodes: the directory tree every object hangs in. Ids are allocated from a counter in
//! `meta` inside the creating transaction and never reused, so an id names one object for
//! ever (the filesystem derives stable inode numbers from it).

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use super::schema::{self, child_key, child_of_key, dirent_key};
use super::{read_u32, Dbs, Result, StoreError, StoreRead, Writer};
use crate::model::{FileTimes, SetTimes, Timestamp, NODE_ITSELF};

/// A persistent node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// The mount's root.
    Root,
    /// `images/`.
    ImagesDir,
    /// `containers/`.
    ContainersDir,
    /// `tasks/`.
    TasksDir,
    /// A directory under `images/`: an image when it has a target, else a name prefix.
    ImageDir,
    /// A container directory.
    Container,
    /// `logs/`.
    LogsDir,
    /// `wait/`.
    WaitDir,
    /// A task: the file `tasks/<id>` (and its views `logs/<id>/`, `wait/<id>`).
    Task,
    /// `content/`.
    ContentDir,
    /// `content/<algorithm>/`.
    DigestDir,
    /// A blob: the file `content/<algorithm>/<hex>`.
    Blob,
    /// `snapshots/`.
    SnapshotsDir,
    /// A snapshot directory `snapshots/<key>/`.
    Snapshot,
}

impl NodeKind {
    fn code(self) -> u8 {
        match self {
            NodeKind::Root => 0,
            NodeKind::ImagesDir => 1,
            NodeKind::ContainersDir => 2,
            NodeKind::TasksDir => 3,
            NodeKind::ImageDir => 4,
            NodeKind::Container => 5,
            NodeKind::LogsDir => 6,
            NodeKind::WaitDir => 7,
            NodeKind::Task => 8,
            NodeKind::ContentDir => 9,
            NodeKind::DigestDir => 10,
            NodeKind::Blob => 11,
            NodeKind::SnapshotsDir => 12,
            NodeKind::Snapshot => 13,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => NodeKind::Root,
            1 => NodeKind::ImagesDir,
            2 => NodeKind::ContainersDir,
            3 => NodeKind::TasksDir,
            4 => NodeKind::ImageDir,
            5 => NodeKind::Container,
            6 => NodeKind::LogsDir,
            7 => NodeKind::WaitDir,
            8 => NodeKind::Task,
            9 => NodeKind::ContentDir,
            10 => NodeKind::DigestDir,
            11 => NodeKind::Blob,
            12 => NodeKind::SnapshotsDir,
            13 => NodeKind::Snapshot,
            _ => return None,
        })
    }
}

/// The stored part of a node (its id is the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    parent: NodeId,
    name: String,
    kind: NodeKind,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// Times set with `utimensat` on the node or its files; absent in records written
    /// before they existed, so no migration is needed.
    #[serde(default, skip_serializing_if = "FileTimes::is_empty")]
    times: FileTimes,
}

/// A node as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// Its parent directory (the root is its own parent).
    pub parent: NodeId,
    /// Its name in the parent.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it or its list of entries last changed.
    pub updated_at: Timestamp,
    /// Times set on it or its files, shown until the value they were set on changes.
    pub times: FileTimes,
}

impl Node {
    fn from_record(id: NodeId, r: NodeRecord) -> Self {
        Node {
            id,
            parent: r.parent,
            name: r.name,
            kind: r.kind,
            created_at: r.created_at,
            updated_at: r.updated_at,
            times: r.times,
        }
    }

    fn record(&self) -> NodeRecord {
        NodeRecord {
            parent: self.parent,
            name: self.name.clone(),
            kind: self.kind,
            created_at: self.created_at,
            updated_at: self.updated_at,
            times: self.times.clone(),
        }
    }
}

/// Writes the fixed nodes of a new database and its schema version.
pub(super) fn initialize(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    let now = Timestamp::now();
    let root = Node {
        id: schema::ROOT,
        parent: schema::ROOT,
        name: String::new(),
        kind: NodeKind::Root,
        created_at: now,
        updated_at: now,
        times: FileTimes::new(),
    };
    dbs.nodes.put(wtxn, &root.id.0, &root.record())?;
    for (id, name, kind) in [
        (schema::IMAGES, "images", NodeKind::ImagesDir),
        (schema::CONTAINERS, "containers", NodeKind::ContainersDir),
        (schema::TASKS, "tasks", NodeKind::TasksDir),
        (schema::LOGS, "logs", NodeKind::LogsDir),
        (schema::WAIT, "wait", NodeKind::WaitDir),
    ] {
        let node = Node { id, parent: schema::ROOT, name: name.into(), kind, created_at: now, updated_at: now, times: FileTimes::new() };
        link(dbs, wtxn, &node)?;
    }
    link_v2_fixed_nodes(dbs, wtxn, now)?;
    dbs.meta.put(wtxn, schema::META_SCHEMA_VERSION, &schema::SCHEMA_VERSION.to_be_bytes())?;
    dbs.meta.put(wtxn, schema::META_NEXT_NODE_ID, &schema::FIRST_DYNAMIC_NODE.0.to_be_bytes())?;
    debug_assert_eq!(read_u32(dbs, wtxn, schema::META_SCHEMA_VERSION)?, Some(schema::SCHEMA_VERSION));
    Ok(())
}

/// The fixed directories schema 2 added: `content/{sha256,sha512}/` and `snapshots/`.
pub(super) fn link_v2_fixed_nodes(dbs: &Dbs, wtxn: &mut RwTxn, now: Timestamp) -> Result<()> {
    for (id, parent, name, kind) in [
        (schema::CONTENT, schema::ROOT, "content", NodeKind::ContentDir),
        (schema::CONTENT_SHA256, schema::CONTENT, "sha256", NodeKind::DigestDir),
        (schema::CONTENT_SHA512, schema::CONTENT, "sha512", NodeKind::DigestDir),
        (schema::SNAPSHOTS, schema::ROOT, "snapshots", NodeKind::SnapshotsDir),
    ] {
        let node = Node { id, parent, name: name.into(), kind, created_at: now, updated_at: now, times: FileTimes::new() };
        link(dbs, wtxn, &node)?;
    }
    Ok(())
}

/// Puts a node and both directory indexes.
fn link(dbs: &Dbs, wtxn: &mut RwTxn, node: &Node) -> Result<()> {
    dbs.nodes.put(wtxn, &node.id.0, &node.record())?;
    dbs.dirents.put(wtxn, &dirent_key(node.parent, &node.name), &node.id.0)?;
    let mut entry = Vec::with_capacity(1 + node.name.len());
    entry.push(node.kind.code());
    entry.extend_from_slice(node.name.as_bytes());
    dbs.children.put(wtxn, &child_key(node.parent, node.id), &entry)?;
    Ok(())
}

pub(super) fn node(dbs: &Dbs, txn: &RoTxn, id: NodeId) -> Result<Option<Node>> {
    Ok(dbs.nodes.get(txn, &id.0)?.map(|r| Node::from_record(id, r)))
}

pub(super) fn lookup(dbs: &Dbs, txn: &RoTxn, parent: NodeId, name: &str) -> Result<Option<Node>> {
    match dbs.dirents.get(txn, &dirent_key(parent, name))? {
        None => Ok(None),
        Some(child) => {
            let found = node(dbs, txn, NodeId(child))?;
            found.map(Some).ok_or_else(|| StoreError::Corrupt(format!("dirent {name:?} points at missing node {child}")))
        }
    }
}

pub(super) fn for_each_child(
    dbs: &Dbs,
    txn: &RoTxn,
    parent: NodeId,
    after: u64,
    visit: &mut dyn FnMut(NodeId, NodeKind, &str) -> bool,
) -> Result<()> {
    let Some(first) = after.checked_add(1) else { return Ok(()) };
    let lower = child_key(parent, NodeId(first));
    let upper = child_key(parent, NodeId(u64::MAX));
    let range = (std::ops::Bound::Included(&lower[..]), std::ops::Bound::Included(&upper[..]));
    for item in dbs.children.range(txn, &range)? {
        let (key, entry) = item?;
        let corrupt = || StoreError::Corrupt(format!("children entry under node {}", parent.0));
        let child = child_of_key(key).ok_or_else(corrupt)?;
        let (&code, name) = entry.split_first().ok_or_else(corrupt)?;
        let kind = NodeKind::from_code(code).ok_or_else(corrupt)?;
        let name = std::str::from_utf8(name).map_err(|_| corrupt())?;
        if !visit(child, kind, name) {
            break;
        }
    }
    Ok(())
}

impl Writer<'_> {
    /// Hands out the next node id (in this transaction, so it is never handed out twice).
    fn allocate_node_id(&mut self) -> Result<NodeId> {
        let next = match self.dbs.meta.get(&self.txn, schema::META_NEXT_NODE_ID)? {
            Some(bytes) => u64::from_be_bytes(
                bytes.try_into().map_err(|_| StoreError::Corrupt("next_node_id is not a u64".into()))?,
            ),
            None => return Err(StoreError::Corrupt("no next_node_id".into())),
        };
        self.dbs.meta.put(&mut self.txn, schema::META_NEXT_NODE_ID, &(next + 1).to_be_bytes())?;
        Ok(NodeId(next))
    }

    /// Hands out a node id for an object whose host files must exist before its record
    /// (a snapshot's directory is named by its id). An id reserved and never used is
    /// simply skipped.
    pub fn reserve_node_id(&mut self) -> Result<NodeId> {
        self.allocate_node_id()
    }

    /// Creates `parent/name`, refusing a taken name, and touches the parent.
    pub(super) fn insert_node(&mut self, parent: NodeId, name: &str, kind: NodeKind, now: Timestamp) -> Result<Node> {
        let id = self.allocate_node_id()?;
        self.insert_node_with_id(id, parent, name, kind, now)
    }

    /// Creates `parent/name` under an id from [`Writer::reserve_node_id`].
    pub(super) fn insert_node_with_id(
        &mut self,
        id: NodeId,
        parent: NodeId,
        name: &str,
        kind: NodeKind,
        now: Timestamp,
    ) -> Result<Node> {
        if self.lookup(parent, name)?.is_some() {
            return Err(StoreError::AlreadyExists { kind: kind_label(kind), key: name.into() });
        }
        if self.node(id)?.is_some() {
            return Err(StoreError::Corrupt(format!("node id {} is taken", id.0)));
        }
        let node = Node { id, parent, name: name.into(), kind, created_at: now, updated_at: now, times: FileTimes::new() };
        link(self.dbs, &mut self.txn, &node)?;
        self.touch_node(parent, now)?;
        Ok(node)
    }

    /// Removes a node that has no children from both indexes, and touches its parent.
    pub(super) fn remove_node(&mut self, node: &Node, now: Timestamp) -> Result<()> {
        if self.has_children(node.id)? {
            return Err(StoreError::NotEmpty { what: node.name.clone() });
        }
        self.dbs.nodes.delete(&mut self.txn, &node.id.0)?;
        self.dbs.dirents.delete(&mut self.txn, &dirent_key(node.parent, &node.name))?;
        self.dbs.children.delete(&mut self.txn, &child_key(node.parent, node.id))?;
        self.touch_node(node.parent, now)
    }

    /// Sets a node's `updated_at` (its directory's mtime).
    pub(super) fn touch_node(&mut self, id: NodeId, now: Timestamp) -> Result<()> {
        let mut record = self
            .dbs
            .nodes
            .get(&self.txn, &id.0)?
            .ok_or_else(|| StoreError::Corrupt(format!("touching missing node {}", id.0)))?;
        record.updated_at = now;
        // A change of its entries is a change of the directory: a time set on it is over.
        record.times.remove(NODE_ITSELF);
        self.dbs.nodes.put(&mut self.txn, &id.0, &record)?;
        Ok(())
    }

    /// Sets the times shown for `key` of node `id` (a field name, or [`NODE_ITSELF`]).
    pub fn set_times(&mut self, id: NodeId, key: &str, times: SetTimes) -> Result<()> {
        let mut record = self
            .dbs
            .nodes
            .get(&self.txn, &id.0)?
            .ok_or_else(|| StoreError::NotFound { kind: "node", key: format!("node {}", id.0) })?;
        record.times.insert(key.to_owned(), times);
        self.dbs.nodes.put(&mut self.txn, &id.0, &record)?;
        Ok(())
    }

    /// The values of `fields` of node `id` changed: the times set on them, and on the
    /// node itself (a directory changes with any of its files), are over. Writes only when
    /// some were set.
    pub(super) fn clear_times(&mut self, id: NodeId, fields: &[&str]) -> Result<()> {
        let Some(mut record) = self.dbs.nodes.get(&self.txn, &id.0)? else { return Ok(()) };
        let before = record.times.len();
        record.times.retain(|key, _| key != NODE_ITSELF && !fields.contains(&key.as_str()));
        if record.times.len() != before {
            self.dbs.nodes.put(&mut self.txn, &id.0, &record)?;
        }
        Ok(())
    }
}

/// The word used for a node kind in messages.
pub(super) fn kind_label(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::ImageDir | NodeKind::ImagesDir => "image",
        NodeKind::Container | NodeKind::ContainersDir => "container",
        NodeKind::TasksDir | NodeKind::Task | NodeKind::LogsDir | NodeKind::WaitDir => "task",
        NodeKind::ContentDir | NodeKind::DigestDir | NodeKind::Blob => "blob",
        NodeKind::SnapshotsDir | NodeKind::Snapshot => "snapshot",
        NodeKind::Root => "directory",
    }
}
