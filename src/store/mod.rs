//! The LMDB store: every durable record of ctrfs, kept with heed.
//!
//! No FUSE type appears here; the filesystem asks in terms of node ids, names and model
//! records. Every change is one write transaction, validated before it writes and committed
//! (and synced: no `NO_SYNC`) before the caller acknowledges anything.
//!
//! # Schema (version 7)
//!
//! ```text
//! env (STATE_DIR/db/, or STATE_DIR/namespaces/<name>/db/: one environment per namespace)
//! ├── meta        Str                      → bytes
//! │   ├── "schema_version"                 → u32 BE          layout version (6)
//! │   ├── "namespace"                      → UTF-8           the namespace its objects live in
//! │   └── "next_node_id"                   → u64 BE          never reused; starts at 16
//! ├── nodes       u64 BE node id           → JSON Node       {parent, name, kind, created_at, updated_at,
//! │                                                          times: {field or "." → {atime, mtime, ctime}}}
//! │                                                          (times set with utimensat; absent when none)
//! │                                                          1 root, 2 images/, 3 containers/, 4 tasks/,
//! │                                                          5 logs/, 6 wait/, 7 content/, 8 content/sha256/,
//! │                                                          9 content/sha512/, 10 snapshots/
//! ├── dirents     u64 BE parent ‖ name     → u64 BE child    lookup: one point read per component
//! ├── children    u64 BE parent ‖ u64 BE child → kind u8 ‖ name
//! │                                                          readdir: creation order, cookie = child id
//! ├── images      u64 BE node id           → JSON Image      image directories with a target or labels;
//! │                                                          {name, target|null, target_text?, labels, ...}
//! ├── containers  u64 BE node id           → JSON Container  {id, image, snapshotter, snapshot, runtime, labels}
//! ├── specs       u64 BE node id           → bytes           a container's runtime spec exactly as written
//! │                                                          (a validated JSON object); absent when unset
//! ├── tasks       u64 BE node id           → JSON Task       node under tasks/, named by its container id
//! ├── blobs       u64 BE node id           → JSON Blob       node under content/<alg>/, named by the hex digest;
//! │                                                          {digest, size, state, children, labels, lease_until}
//! ├── snapshots   u64 BE node id           → JSON Snapshot   node under snapshots/, named by the key;
//! │                                                          {key, kind, parent key, snapshotter, labels, usage}
//! ├── events      u64 BE sequence number   → JSON line       the journal: {timestamp, namespace, topic, event};
//! │                                                          the last N kept (10,000 by default), from 1 up,
//! │                                                          written by the transaction of the change it tells
//! ├── refs        target ‖ 0 ‖ holder tag ‖ u64 BE holder ‖ via → ()
//! │                                                          who references each blob (b‖digest) and snapshot
//! │                                                          (s‖key): holder 1 image, 2 container, 3 blob,
//! │                                                          4 snapshot; via o (own field) or l (gc.ref label)
//! ├── gc_pending  target                   → ()              what the next collection judges
//! └── leases      u64 BE until ‖ u64 BE blob node id → ()    every ingest lease, by its end
//! ```
//!
//! `refs`, `gc_pending` and `leases` are an index of the records (`refs.rs`), changed by
//! the same transaction as the record; every image, container, blob and snapshot record
//! is written through it.
//!
//! An image name `a/b/c` is the chain of `ImageDir` nodes `images/ → a → b → c`; prefix
//! directories are nodes without an `images` record. `nodes`, `dirents` and `children`
//! always change together, in the same transaction as the record they index. A container
//! with a task is in use: the task node `tasks/<id>` is found by a point read. A blob is
//! found by digest and a snapshot by key with one `dirents` read each. The bytes of a blob
//! live in `STATE_DIR/content/blobs/<alg>/<hex>` and a snapshot's files in
//! `STATE_DIR/snapshots/<node id>/`: a file or directory without a record is debris of a
//! crash, removed at start-up.
//!
//! The spec lives apart from its container record so that a `stat` of any container file
//! decodes no spec, and the spec's own size is the length of its value (no rendering).
//!
//! Migrations: 1 → 2 adds `blobs`, `snapshots` and the fixed nodes 7–10; 2 → 3 moves each
//! container's spec out of its record into `specs`, as the pretty JSON it was shown as;
//! 3 → 4 changes no data: it marks records that may have no image target, a target's
//! text as written, and times set with utimensat, which older binaries cannot read;
//! 4 → 5 adds the `events` journal, created empty (an older binary would commit changes
//! without their events); 5 → 6 records the namespace, `default` (the state directory's
//! own store was the only one; its objects are that namespace's where they are); 6 → 7
//! builds the reference index from the records and makes every blob and snapshot pending,
//! so the first collection judges the whole store once.

mod blobs;
mod commit;
mod containers;
mod error;
mod events;
mod gc;
#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod gc_model_tests;
mod tasks;
mod images;
mod labels;
mod migrate;
mod nodes;
mod refs;
pub mod schema;
mod snapshots;
#[cfg(test)]
pub(crate) mod testing;

use std::path::Path;

use heed::types::{Bytes, SerdeJson, Str, Unit, U64};
use heed::{byteorder::BigEndian, Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::model::event::Published;
use crate::model::{Blob, Container, Image, Snapshot, Task};

pub use error::{Result, StoreError};
pub use events::{JournalBounds, DEFAULT_KEPT as DEFAULT_EVENTS_KEPT};
pub use gc::{label_references, Collected, Reference, Referrer, Target};
pub use images::resolve_image_dir;
pub use nodes::{Node, NodeId, NodeKind};

/// Every blob and snapshot record with its node id.
pub type RecordIds = (Vec<(NodeId, Blob)>, Vec<(NodeId, Snapshot)>);

type NodeDb = Database<U64<BigEndian>, SerdeJson<nodes::NodeRecord>>;

/// The typed databases of one environment (opaque outside the store).
pub struct Dbs {
    /// Schema version and id counter.
    meta: Database<Str, Bytes>,
    /// Node id → node record.
    nodes: NodeDb,
    /// Parent ‖ name → child id.
    dirents: Database<Bytes, U64<BigEndian>>,
    /// Parent ‖ child id → kind ‖ name.
    children: Database<Bytes, Bytes>,
    /// Image node id → image record.
    images: Database<U64<BigEndian>, SerdeJson<Image>>,
    /// Container node id → container record.
    containers: Database<U64<BigEndian>, SerdeJson<Container>>,
    /// Task node id → task record.
    tasks: Database<U64<BigEndian>, SerdeJson<Task>>,
    /// Blob node id → blob record.
    blobs: Database<U64<BigEndian>, SerdeJson<Blob>>,
    /// Snapshot node id → snapshot record.
    snapshots: Database<U64<BigEndian>, SerdeJson<Snapshot>>,
    /// Container node id → spec bytes.
    specs: Database<U64<BigEndian>, Bytes>,
    /// Event sequence number → published event (schema 5).
    events: Database<U64<BigEndian>, Bytes>,
    /// Target ‖ holder → (): who references each blob and snapshot (schema 7).
    refs: Database<Bytes, Unit>,
    /// Targets the next collection judges (schema 7).
    gc_pending: Database<Bytes, Unit>,
    /// Lease end ‖ blob node id → () (schema 7).
    leases: Database<Bytes, Unit>,
}

/// Settings of an open store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How many published events the journal keeps (at least 1).
    pub events_kept: u64,
    /// The namespace the store holds: recorded by a new store, checked by an existing one.
    pub namespace: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { events_kept: events::DEFAULT_KEPT, namespace: crate::model::DEFAULT_NAMESPACE.to_owned() }
    }
}

type PublishListener = Box<dyn Fn(u64) + Send + Sync>;

/// An open store.
pub struct Store {
    env: Env<WithoutTls>,
    dbs: Dbs,
    /// The environment's directory, to tell a full filesystem from a failing one.
    dir: std::path::PathBuf,
    /// The journal's window.
    events_kept: u64,
    /// The namespace its objects live in.
    namespace: String,
    /// Told the last sequence number after each commit that published events.
    published: std::sync::Mutex<Vec<PublishListener>>,
    /// Changes waiting for the next shared commit.
    combiner: commit::Combiner,
}

/// Free space below which a commit's `EIO` is taken for a full filesystem: LMDB reports
/// a short `pwrite` (what a filesystem that ran out mid-write returns) as `EIO`, so
/// after such a failure the filesystem is, to within this much, full.
const FULL_SLACK_BYTES: u64 = 1 << 20;

/// Sizing of the environment.
const MAP_SIZE: usize = 64 << 30; // virtual address space only; the file grows as needed
const MAX_READERS: u32 = 1024; // FUSE workers + background threads, with a wide margin
const MAX_DBS: u32 = 16;

impl Store {
    /// Opens (creating when absent) the environment in `dir`, checks the schema version and
    /// migrates an older layout. A newer layout is refused with `SchemaTooNew`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// `open` with settings; a journal longer than the window is trimmed to it.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self> {
        let events_kept = options.events_kept.max(1);
        std::fs::create_dir_all(dir)?;
        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options.map_size(MAP_SIZE).max_readers(MAX_READERS).max_dbs(MAX_DBS);
        // SAFETY: heed's conditions for `open`: the environment is opened once per process
        // (the daemon holds an exclusive lock on its state directory, and tests use one
        // temporary directory per store), it lives on a local filesystem, and no transaction
        // outlives a request, so the map is never remapped under a live reader.
        let env = unsafe { env_options.open(dir) }.map_err(StoreError::from)?;
        let mut wtxn = env.write_txn()?;
        let dbs = Dbs {
            meta: env.create_database(&mut wtxn, Some(schema::DB_META))?,
            nodes: env.create_database(&mut wtxn, Some(schema::DB_NODES))?,
            dirents: env.create_database(&mut wtxn, Some(schema::DB_DIRENTS))?,
            children: env.create_database(&mut wtxn, Some(schema::DB_CHILDREN))?,
            images: env.create_database(&mut wtxn, Some(schema::DB_IMAGES))?,
            containers: env.create_database(&mut wtxn, Some(schema::DB_CONTAINERS))?,
            tasks: env.create_database(&mut wtxn, Some(schema::DB_TASKS))?,
            blobs: env.create_database(&mut wtxn, Some(schema::DB_BLOBS))?,
            snapshots: env.create_database(&mut wtxn, Some(schema::DB_SNAPSHOTS))?,
            specs: env.create_database(&mut wtxn, Some(schema::DB_SPECS))?,
            events: env.create_database(&mut wtxn, Some(schema::DB_EVENTS))?,
            refs: env.create_database(&mut wtxn, Some(schema::DB_REFS))?,
            gc_pending: env.create_database(&mut wtxn, Some(schema::DB_GC_PENDING))?,
            leases: env.create_database(&mut wtxn, Some(schema::DB_LEASES))?,
        };
        match read_u32(&dbs, &wtxn, schema::META_SCHEMA_VERSION)? {
            None => {
                nodes::initialize(&dbs, &mut wtxn)?;
                dbs.meta.put(&mut wtxn, schema::META_NAMESPACE, options.namespace.as_bytes())?;
            }
            Some(found) => migrate::migrate(&dbs, &mut wtxn, found)?,
        }
        let held = dbs.meta.get(&wtxn, schema::META_NAMESPACE)?.map(|b| String::from_utf8_lossy(b).into_owned());
        if held.as_deref() != Some(options.namespace.as_str()) {
            return Err(StoreError::OtherNamespace { holds: held.unwrap_or_default(), asked: options.namespace });
        }
        events::trim(&dbs, &mut wtxn, events_kept)?;
        wtxn.commit()?;
        let namespace = options.namespace;
        let (published, combiner) = Default::default();
        Ok(Store { env, dbs, dir: dir.to_path_buf(), events_kept, namespace, published, combiner })
    }

    /// The namespace its objects live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A consistent read view; keep it for one request only.
    pub fn read(&self) -> Result<Reader<'_>> {
        Ok(Reader { dbs: &self.dbs, txn: self.env.read_txn()? })
    }

    /// Runs `change` in a write transaction of its own and commits it (durably) when it
    /// returns `Ok`; on `Err` (or a panic) nothing of it is written. This is the only
    /// write path. Concurrent writers share commits (`commit.rs`): each change is a nested
    /// transaction of one shared transaction, synced once for all, and none returns
    /// before that commit has.
    ///
    /// The events the change published go into the journal in the same transaction, just
    /// before the commit; the listeners of [`Store::on_publish`] hear of them after it.
    pub fn write<T: Send, E: From<StoreError> + Send>(
        &self,
        change: impl FnOnce(&mut Writer<'_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut change = Some(change);
        let mut out: Option<Result<T, E>> = None;
        let mut run = |w: &mut Writer<'_>| -> bool {
            let Some(change) = change.take() else { return false };
            let result = change(w);
            let ok = result.is_ok();
            out = Some(result);
            ok
        };
        match self.submit(&mut run) {
            commit::Outcome::Panicked(payload) => std::panic::resume_unwind(payload),
            commit::Outcome::CommitFailed(failure) => match out {
                Some(Err(own)) => Err(own),
                _ => Err(E::from(failure.error())),
            },
            commit::Outcome::Done | commit::Outcome::Queued => {
                out.unwrap_or_else(|| Err(E::from(StoreError::Corrupt("a change was never run".into()))))
            }
        }
    }

    /// Registers `listener`, called with the last sequence number after every commit that
    /// published events, on the committing thread: it must only hand the news on.
    pub fn on_publish(&self, listener: impl Fn(u64) + Send + Sync + 'static) {
        self.published.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(listener));
    }

    /// A failed commit's error. LMDB gives `EIO` for a short write, which on a full
    /// filesystem is what its last page write gets; that is the caller's `ENOSPC`, a
    /// condition that deleting something cures, not an internal fault.
    fn commit_error(&self, e: heed::Error) -> StoreError {
        let short_write = matches!(&e, heed::Error::Io(io) if io.raw_os_error() == Some(libc::EIO));
        if short_write {
            if let Ok(st) = nix::sys::statvfs::statvfs(&self.dir) {
                let free = st.blocks_available().saturating_mul(st.fragment_size());
                if free < FULL_SLACK_BYTES {
                    return StoreError::NoSpace(std::io::Error::from_raw_os_error(libc::ENOSPC));
                }
            }
        }
        StoreError::from(e)
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u32> {
        let rtxn = self.env.read_txn()?;
        read_u32(&self.dbs, &rtxn, schema::META_SCHEMA_VERSION)?
            .ok_or_else(|| StoreError::Corrupt("no schema version".into()))
    }
}

mod sealed {
    /// What a transaction gives the read methods; private so no other layer sees heed types.
    pub trait Access {
        /// The databases.
        fn dbs(&self) -> &super::Dbs;
        /// The transaction to read through.
        fn ro(&self) -> &super::RoTxn<'_>;
    }
}
use sealed::Access;

/// Read access shared by read and write transactions.
pub trait StoreRead: Access {
    /// The node with this id.
    fn node(&self, id: NodeId) -> Result<Option<Node>> {
        nodes::node(self.dbs(), self.ro(), id)
    }

    /// The child of `parent` called `name`.
    fn lookup(&self, parent: NodeId, name: &str) -> Result<Option<Node>> {
        nodes::lookup(self.dbs(), self.ro(), parent, name)
    }

    /// Calls `visit(child_id, kind, name)` for the children of `parent` with ids greater
    /// than `after`, in id order, until it returns `false`. Streams from a cursor.
    fn for_each_child(
        &self,
        parent: NodeId,
        after: u64,
        visit: &mut dyn FnMut(NodeId, NodeKind, &str) -> bool,
    ) -> Result<()> {
        nodes::for_each_child(self.dbs(), self.ro(), parent, after, visit)
    }

    /// Whether `parent` has any child.
    fn has_children(&self, parent: NodeId) -> Result<bool> {
        let mut any = false;
        self.for_each_child(parent, 0, &mut |_, _, _| {
            any = true;
            false
        })?;
        Ok(any)
    }

    /// The image record of an image directory, if it has a target.
    fn image(&self, id: NodeId) -> Result<Option<Image>> {
        Ok(self.dbs().images.get(self.ro(), &id.0)?)
    }

    /// The container record of a container node.
    fn container(&self, id: NodeId) -> Result<Option<Container>> {
        Ok(self.dbs().containers.get(self.ro(), &id.0)?)
    }

    /// Calls `visit(node, container)` for the containers whose node ids are greater than
    /// `after`, in id order, until it returns `false`: one pass over the records, streamed
    /// from a cursor (filtered views match as they go).
    fn for_each_container(&self, after: u64, visit: &mut dyn FnMut(NodeId, &Container) -> bool) -> Result<()> {
        records_after(&self.dbs().containers, self.ro(), after, visit)
    }

    /// Calls `visit(node, image)` for the image records (images, and directories holding
    /// labels before their target) whose node ids are greater than `after`, in id order,
    /// until it returns `false`. Streams from a cursor.
    fn for_each_image(&self, after: u64, visit: &mut dyn FnMut(NodeId, &Image) -> bool) -> Result<()> {
        records_after(&self.dbs().images, self.ro(), after, visit)
    }

    /// The labels of any labelled record (image with a target, container, blob, snapshot).
    fn labels_of(&self, id: NodeId) -> Result<Option<crate::model::Labels>> {
        labels::labels_of(self, id)
    }

    /// A container's spec bytes, copied (for an open or a task start).
    fn spec(&self, id: NodeId) -> Result<Option<Vec<u8>>> {
        Ok(self.dbs().specs.get(self.ro(), &id.0)?.map(<[u8]>::to_vec))
    }

    /// Looks at a container's spec bytes in place, without copying or decoding them.
    fn with_spec<T>(&self, id: NodeId, look: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        Ok(self.dbs().specs.get(self.ro(), &id.0)?.map(look))
    }

    /// The task record of a task node.
    fn task(&self, id: NodeId) -> Result<Option<Task>> {
        Ok(self.dbs().tasks.get(self.ro(), &id.0)?)
    }

    /// The blob record of a blob node.
    fn blob(&self, id: NodeId) -> Result<Option<Blob>> {
        Ok(self.dbs().blobs.get(self.ro(), &id.0)?)
    }

    /// The blob with this digest (`algorithm:hex`), if it has a record.
    fn blob_by_digest(&self, digest: &str) -> Result<Option<(NodeId, Blob)>> {
        blobs::by_digest(self, digest)
    }

    /// The snapshot record of a snapshot node.
    fn snapshot(&self, id: NodeId) -> Result<Option<Snapshot>> {
        Ok(self.dbs().snapshots.get(self.ro(), &id.0)?)
    }

    /// The snapshot with this key.
    fn snapshot_by_key(&self, key: &str) -> Result<Option<(NodeId, Snapshot)>> {
        snapshots::by_key(self, key)
    }

    /// Every snapshot and every blob node id, for the start-up sweep of files without
    /// records.
    fn record_ids(&self) -> Result<RecordIds> {
        let blobs = self.dbs().blobs.iter(self.ro())?.map(|r| r.map(|(id, b)| (NodeId(id), b))).collect::<Result<_, _>>()?;
        let snaps =
            self.dbs().snapshots.iter(self.ro())?.map(|r| r.map(|(id, s)| (NodeId(id), s))).collect::<Result<_, _>>()?;
        Ok((blobs, snaps))
    }

    /// What references the blob `digest` or the snapshot `key` (for the `references`
    /// views and for refusing removals).
    fn referrers(&self, target: gc::Target<'_>) -> Result<Vec<Referrer>> {
        gc::referrers(self, target)
    }

    /// The journal's oldest kept event and the next sequence number.
    fn journal_bounds(&self) -> Result<JournalBounds> {
        events::bounds(self)
    }

    /// Calls `visit(seq, record)` for the kept events from sequence number `from` on, in
    /// order, until it returns `false`; each record is one JSON object.
    fn for_each_event_from(&self, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<()> {
        events::for_each_from(self, from, visit)
    }

    /// Every task, in creation order (for reconciliation at start-up).
    fn tasks(&self) -> Result<Vec<(NodeId, Task)>> {
        let mut ids = Vec::new();
        self.for_each_child(schema::TASKS, 0, &mut |id, _, _| {
            ids.push(id);
            true
        })?;
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            let task = self.task(id)?.ok_or_else(|| StoreError::Corrupt(format!("task node {} has no record", id.0)))?;
            tasks.push((id, task));
        }
        Ok(tasks)
    }
}

/// A read transaction.
pub struct Reader<'s> {
    dbs: &'s Dbs,
    txn: RoTxn<'s, WithoutTls>,
}

impl StoreRead for Reader<'_> {}
impl Access for Reader<'_> {
    fn dbs(&self) -> &Dbs {
        self.dbs
    }
    fn ro(&self) -> &RoTxn<'_> {
        &self.txn
    }
}

/// A write transaction, handed to the closure of [`Store::write`].
pub struct Writer<'s> {
    dbs: &'s Dbs,
    txn: RwTxn<'s>,
    /// Events this transaction publishes, journalled with it at commit.
    pending: Vec<Published>,
}

impl Writer<'_> {
    /// Publishes `event` with this transaction: journalled if, and only if, it commits.
    pub fn publish(&mut self, event: Published) {
        self.pending.push(event);
    }
}

impl StoreRead for Writer<'_> {}
impl Access for Writer<'_> {
    fn dbs(&self) -> &Dbs {
        self.dbs
    }
    fn ro(&self) -> &RoTxn<'_> {
        &self.txn
    }
}

/// Streams the records of `db` keyed above `after` to `visit` until it returns `false`.
fn records_after<T: serde::de::DeserializeOwned + 'static>(
    db: &Database<U64<BigEndian>, SerdeJson<T>>,
    txn: &RoTxn,
    after: u64,
    visit: &mut dyn FnMut(NodeId, &T) -> bool,
) -> Result<()> {
    let Some(first) = after.checked_add(1) else { return Ok(()) };
    for item in db.range(txn, &(first..))? {
        let (id, record) = item?;
        if !visit(NodeId(id), &record) {
            break;
        }
    }
    Ok(())
}

fn read_u32(dbs: &Dbs, txn: &RoTxn, key: &str) -> Result<Option<u32>> {
    match dbs.meta.get(txn, key)? {
        None => Ok(None),
        Some(bytes) => {
            let array: [u8; 4] =
                bytes.try_into().map_err(|_| StoreError::Corrupt(format!("meta {key} is not a u32")))?;
            Ok(Some(u32::from_be_bytes(array)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{dump, temp_store};
    use super::*;
    use crate::model::{ContainerField, Descriptor, ValidationError};

    fn descriptor(fill: char) -> Descriptor {
        Descriptor::from_json(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{}", fill.to_string().repeat(64)),
            "size": 10
        }))
        .unwrap()
    }

    #[test]
    fn fresh_store_has_the_fixed_tree() {
        let (_dir, store) = temp_store();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert_eq!(
            dump(&store),
            "node 1 parent=1 name=\"\" kind=Root\n\
             node 2 parent=1 name=\"images\" kind=ImagesDir\n\
             node 3 parent=1 name=\"containers\" kind=ContainersDir\n\
             node 4 parent=1 name=\"tasks\" kind=TasksDir\n\
             node 5 parent=1 name=\"logs\" kind=LogsDir\n\
             node 6 parent=1 name=\"wait\" kind=WaitDir\n\
             node 7 parent=1 name=\"content\" kind=ContentDir\n\
             node 8 parent=7 name=\"sha256\" kind=DigestDir\n\
             node 9 parent=7 name=\"sha512\" kind=DigestDir\n\
             node 10 parent=1 name=\"snapshots\" kind=SnapshotsDir\n"
        );
    }

    #[test]
    fn a_schema_1_database_is_migrated_to_2_and_keeps_its_records() {
        let (dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(|_| ())).unwrap();
        let expected = dump(&store);
        // Turn it back into what schema 1 wrote: no content/ or snapshots/ nodes, version 1.
        store
            .write(|w| -> Result<()> {
                for id in [schema::CONTENT_SHA256, schema::CONTENT_SHA512, schema::CONTENT, schema::SNAPSHOTS] {
                    let node = w.node(id)?.unwrap();
                    w.dbs.nodes.delete(&mut w.txn, &id.0)?;
                    w.dbs.dirents.delete(&mut w.txn, &schema::dirent_key(node.parent, &node.name))?;
                    w.dbs.children.delete(&mut w.txn, &schema::child_key(node.parent, id))?;
                }
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &1u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        assert!(!dump(&store).contains("content"));
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert_eq!(dump(&store), expected);
    }

    #[test]
    fn a_schema_2_spec_moves_out_of_its_container_record_as_the_text_it_showed() {
        let (dir, store) = temp_store();
        let (web, _) = store.write(|w| w.create_container("web")).unwrap();
        let (bare, _) = store.write(|w| w.create_container("bare")).unwrap();
        let spec = serde_json::json!({"ociVersion": "1.2.0", "process": {"args": ["sh"]}});
        // What schema 2 wrote: the spec inside the record, no `specs` entry.
        store
            .write(|w| -> Result<()> {
                let raw = w.dbs.containers.remap_data_type::<Bytes>();
                for (node, value) in [(web.id, spec.clone()), (bare.id, serde_json::Value::Null)] {
                    let mut record = serde_json::to_value(w.container(node)?.unwrap()).unwrap();
                    record["spec"] = value;
                    raw.put(&mut w.txn, &node.0, &serde_json::to_vec(&record).unwrap())?;
                }
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &2u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        let reader = store.read().unwrap();
        let shown = format!("{}\n", serde_json::to_string_pretty(&spec).unwrap());
        assert_eq!(reader.spec(web.id).unwrap().as_deref(), Some(shown.as_bytes()));
        assert_eq!(reader.spec(bare.id).unwrap(), None);
        let raw = reader.dbs().containers.remap_data_type::<Bytes>();
        let record: serde_json::Value = serde_json::from_slice(raw.get(reader.ro(), &web.id.0).unwrap().unwrap()).unwrap();
        assert!(record.get("spec").is_none(), "{record}");
        assert_eq!(reader.container(web.id).unwrap().unwrap().id, "web");
    }

    #[test]
    fn a_schema_4_database_gets_an_empty_journal_that_the_next_change_starts() {
        let (dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(|_| ())).unwrap();
        let expected = dump(&store);
        // What schema 4 wrote: no journal, version 4.
        store
            .write(|w| -> Result<()> {
                w.dbs.events.clear(&mut w.txn)?;
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &4u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert_eq!(dump(&store), expected);
        assert_eq!(store.read().unwrap().journal_bounds().unwrap(), JournalBounds { oldest: 1, next: 1 });
        store.write(|w| w.delete_container("web").map(drop)).unwrap();
        assert_eq!(store.read().unwrap().journal_bounds().unwrap(), JournalBounds { oldest: 1, next: 2 });
    }

    #[test]
    fn a_schema_6_store_gets_its_reference_index_and_its_first_collection_judges_everything() {
        let (dir, store) = temp_store();
        let hex = |fill: char| fill.to_string().repeat(64);
        let later = crate::model::Timestamp::from_nanos(crate::model::Timestamp::now().as_nanos() + 3_600_000_000_000);
        store
            .write(|w| -> Result<()> {
                // a: the image's target, listing b; c: leased; d: referenced by nothing;
                // e: leased, named by the label of container web.
                for (fill, children, lease) in [('a', vec![format!("sha256:{}", hex('b'))], None), ('b', vec![], None), ('c', vec![], Some(later)), ('d', vec![], None), ('e', vec![], Some(later))] {
                    let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(fill))?;
                    w.commit_blob(node.id, 10, children, lease)?;
                }
                let dir = w.create_image_dir(schema::IMAGES, "app")?;
                w.put_image_target(dir.id, descriptor('a'), None)?;
                let (web, _) = w.create_container("web")?;
                w.update_labels(web.id, |l| l.set("containerd.io/gc.ref.content", &format!("sha256:{}", hex('e'))))?;
                Ok(())
            })
            .unwrap();
        // What schema 6 had: no index, no pending list, no lease list, and e's lease still
        // running (only a target write, or the next collection, ended leases then).
        store
            .write(|w| -> Result<()> {
                let (id, mut e) = w.blob_by_digest(&format!("sha256:{}", hex('e')))?.unwrap();
                e.lease_until = Some(later);
                w.dbs.blobs.put(&mut w.txn, &id.0, &e)?;
                w.dbs.refs.clear(&mut w.txn)?;
                w.dbs.gc_pending.clear(&mut w.txn)?;
                w.dbs.leases.clear(&mut w.txn)?;
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &6u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        assert!(refs::check_index(&store.read().unwrap()).is_err(), "the index is gone");
        let expected = dump(&store);
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert_eq!(dump(&store), expected, "the records are as they were");
        refs::check_index(&store.read().unwrap()).unwrap();
        let collected = store.write(|w| w.collect_garbage(&Default::default(), crate::model::Timestamp::now())).unwrap();
        let digests: Vec<&str> = collected.blobs.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(digests, vec![format!("sha256:{}", hex('d'))], "only what nothing keeps");
        // e's lease ended with the migration, as schema 6's collection would have ended it.
        store.write(|w| w.delete_container("web")).unwrap();
        let collected = store.write(|w| w.collect_garbage(&Default::default(), crate::model::Timestamp::now())).unwrap();
        let digests: Vec<&str> = collected.blobs.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(digests, vec![format!("sha256:{}", hex('e'))], "the container's label was all that kept e");
        assert_eq!(store.read().unwrap().referrers(Target::Blob(&format!("sha256:{}", hex('b')))).unwrap(), vec![Referrer::Blob(format!("sha256:{}", hex('a')))]);
    }

    #[test]
    fn a_schema_5_store_holds_the_default_namespace_and_refuses_to_be_another() {
        let (dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(|_| ())).unwrap();
        let expected = dump(&store);
        // What schema 5 wrote: no namespace.
        store
            .write(|w| -> Result<()> {
                w.dbs.meta.delete(&mut w.txn, schema::META_NAMESPACE)?;
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &5u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let db = dir.path().join("db");
        let other = StoreOptions { namespace: "build".into(), ..Default::default() };
        let refused = Store::open_with(&db, other.clone()).err().expect("a schema 5 store is default's");
        assert!(matches!(&refused, StoreError::OtherNamespace { holds, asked } if holds == "default" && asked == "build"), "{refused}");
        let store = Store::open(&db).unwrap();
        assert_eq!((store.schema_version().unwrap(), store.namespace()), (schema::SCHEMA_VERSION, "default"));
        assert_eq!(dump(&store), expected, "the objects stay where they are, default's");
        drop(store);
        // A new store records the namespace it was made for.
        let fresh = dir.path().join("build-db");
        drop(Store::open_with(&fresh, other.clone()).unwrap());
        assert_eq!(Store::open_with(&fresh, other).unwrap().namespace(), "build");
        assert!(matches!(Store::open(&fresh).err(), Some(StoreError::OtherNamespace { .. })));
    }

    #[test]
    fn images_are_chains_of_directories_with_a_record_at_the_leaf() {
        let (_dir, store) = temp_store();
        let leaf = store
            .write(|w| -> Result<_> {
                let a = w.create_image_dir(schema::IMAGES, "docker.io")?;
                let b = w.create_image_dir(a.id, "busybox:1.36")?;
                w.put_image_target(b.id, descriptor('a'), None)?;
                w.update_image(b.id, |i| i.labels.set("env", "prod"))?;
                Ok(b)
            })
            .unwrap();
        let reader = store.read().unwrap();
        let image = reader.image(leaf.id).unwrap().unwrap();
        assert_eq!(image.name, "docker.io/busybox:1.36");
        assert_eq!(resolve_image_dir(&reader, "docker.io/busybox:1.36").unwrap().unwrap().id, leaf.id);
        assert!(resolve_image_dir(&reader, "docker.io/nope").unwrap().is_none());
        drop(reader);
        let refused = store.write(|w| w.delete_image_dir(schema::IMAGES, "docker.io"));
        assert!(matches!(refused, Err(StoreError::NotEmpty { .. })));
        store.write(|w| w.delete_image_dir(leaf.parent, "busybox:1.36")).unwrap();
        store.write(|w| w.delete_image_dir(schema::IMAGES, "docker.io")).unwrap();
        assert!(!dump(&store).contains("image "), "{}", dump(&store));
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let (_dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(|_| ())).unwrap();
        let before = dump(&store);
        let err = store.write(|w| {
            let node = w.lookup(schema::CONTAINERS, "web")?.unwrap();
            w.update_container(node.id, |c| c.labels.set("a", "1"))?;
            w.update_container(node.id, |c| c.set_field(ContainerField::Runtime, "two\nlines"))
        });
        assert!(matches!(err, Err(StoreError::Invalid(ValidationError::InvalidField { .. }))));
        assert_eq!(dump(&store), before);
        let dup = store.write(|w| w.create_container("web"));
        assert!(matches!(dup, Err(StoreError::AlreadyExists { .. })));
        let bad = store.write(|w| w.create_container("-bad"));
        assert!(matches!(bad, Err(StoreError::Invalid(ValidationError::InvalidIdentifier { .. }))));
        assert_eq!(dump(&store), before);
    }

    #[test]
    fn node_ids_are_never_reused_and_children_stream_after_a_cookie() {
        let (_dir, store) = temp_store();
        let ids: Vec<u64> = (0..5)
            .map(|i| store.write(|w| w.create_container(&format!("c{i}"))).unwrap().0.id.0)
            .collect();
        assert_eq!(ids, vec![16, 17, 18, 19, 20]);
        store.write(|w| w.delete_container("c4")).unwrap();
        let again = store.write(|w| w.create_container("c4")).unwrap().0.id.0;
        assert_eq!(again, 21);
        store.write(|w| w.delete_container("c1")).unwrap();
        let reader = store.read().unwrap();
        let mut seen = Vec::new();
        reader
            .for_each_child(schema::CONTAINERS, 17, &mut |id, _, name| {
                seen.push((id.0, name.to_owned()));
                true
            })
            .unwrap();
        assert_eq!(seen, vec![(18, "c2".into()), (19, "c3".into()), (21, "c4".into())]);
    }

    #[test]
    fn reopening_keeps_everything_and_a_newer_schema_is_refused() {
        let (dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(|_| ())).unwrap();
        let before = dump(&store);
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(dump(&store), before);
        store
            .write(|w| -> Result<()> {
                w.dbs.meta.put(&mut w.txn, schema::META_SCHEMA_VERSION, &99u32.to_be_bytes())?;
                Ok(())
            })
            .unwrap();
        drop(store);
        match Store::open(&dir.path().join("db")) {
            Err(StoreError::SchemaTooNew { found: 99, supported }) => assert_eq!(supported, schema::SCHEMA_VERSION),
            Err(other) => panic!("expected SchemaTooNew, got {other}"),
            Ok(_) => panic!("expected SchemaTooNew, got an open store"),
        }
    }
}
