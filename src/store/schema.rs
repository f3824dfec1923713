//! Database names, fixed node ids, key encodings and the schema version.

use super::NodeId;

/// The layout version written in `meta`. Bump it, redraw the tree in `store/mod.rs` and add
/// a step to `migrate.rs` whenever the layout changes.
pub const SCHEMA_VERSION: u32 = 7;

/// `meta` key holding the schema version (u32, big-endian).
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// `meta` key holding the namespace the store's objects live in (UTF-8; schema 6).
pub const META_NAMESPACE: &str = "namespace";
/// `meta` key holding the next node id to hand out (u64, big-endian).
pub const META_NEXT_NODE_ID: &str = "next_node_id";

/// Database names.
pub const DB_META: &str = "meta";
/// Node records.
pub const DB_NODES: &str = "nodes";
/// Name → child lookup index.
pub const DB_DIRENTS: &str = "dirents";
/// Ordered children index for readdir.
pub const DB_CHILDREN: &str = "children";
/// Image records.
pub const DB_IMAGES: &str = "images";
/// Container records.
pub const DB_CONTAINERS: &str = "containers";
/// Task records.
pub const DB_TASKS: &str = "tasks";
/// Blob records (schema 2).
pub const DB_BLOBS: &str = "blobs";
/// Snapshot records (schema 2).
pub const DB_SNAPSHOTS: &str = "snapshots";
/// Container runtime specs, the bytes as written (schema 3).
pub const DB_SPECS: &str = "specs";
/// Published events by sequence number (schema 5).
pub const DB_EVENTS: &str = "events";
/// Who references each blob and snapshot (schema 7).
pub const DB_REFS: &str = "refs";
/// What the next collection judges (schema 7).
pub const DB_GC_PENDING: &str = "gc_pending";
/// Ingest leases by their end (schema 7).
pub const DB_LEASES: &str = "leases";

/// The root directory.
pub const ROOT: NodeId = NodeId(1);
/// `images/`.
pub const IMAGES: NodeId = NodeId(2);
/// `containers/`.
pub const CONTAINERS: NodeId = NodeId(3);
/// `tasks/`.
pub const TASKS: NodeId = NodeId(4);
/// `logs/` (one directory per task, mirroring `tasks/`).
pub const LOGS: NodeId = NodeId(5);
/// `wait/` (one file per task, mirroring `tasks/`).
pub const WAIT: NodeId = NodeId(6);
/// `content/` (schema 2).
pub const CONTENT: NodeId = NodeId(7);
/// `content/sha256/` (schema 2).
pub const CONTENT_SHA256: NodeId = NodeId(8);
/// `content/sha512/` (schema 2).
pub const CONTENT_SHA512: NodeId = NodeId(9);
/// `snapshots/` (schema 2).
pub const SNAPSHOTS: NodeId = NodeId(10);
/// The first id handed to a created object; everything below is reserved.
pub const FIRST_DYNAMIC_NODE: NodeId = NodeId(16);

/// `dirents` key: parent id (big-endian) followed by the entry's name.
pub fn dirent_key(parent: NodeId, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&parent.0.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// `children` key: parent id then child id, both big-endian, so a cursor over one parent
/// walks its children in creation order.
pub fn child_key(parent: NodeId, child: NodeId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&parent.0.to_be_bytes());
    key[8..].copy_from_slice(&child.0.to_be_bytes());
    key
}

/// Splits a `children` key back into the child id.
pub fn child_of_key(key: &[u8]) -> Option<NodeId> {
    let bytes: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    Some(NodeId(u64::from_be_bytes(bytes)))
}
