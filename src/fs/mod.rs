//! The filesystem layer: the file protocol over the services. Paths and inodes, open
//! handles and their write buffers, attributes, the errno mapping, kernel notifications.
//!
//! `FsCore` is driven directly by unit tests; only `fuse.rs` and `wait.rs` know fuser's
//! request and reply types. Reads (lookups, listings, file contents) read the store, one
//! short transaction per request; every change goes through `crate::service`, which owns
//! what it means.

pub mod attr;
mod content;
pub mod errno;
pub mod error_log;
mod events;
pub mod fuse;
mod handles;
pub mod notify;
pub mod page_cache;
mod queries;
mod rename;
pub mod ino;
pub mod inodes;
mod snapshots;
mod temp;
mod times;
mod views;
mod wait;
mod workers;
pub mod write;
mod xattr;

use std::ffi::OsStr;
use std::sync::Arc;

use attr::{Attr, Kind, FILE_MODE, READ_ONLY_FILE_MODE};
use content::{Loaded, Object};
use errno::FsError;
use handles::HandleTable;
use ino::{AttrFile, Ino, QueryIno, QueryRoot, RootFile, Stream, CONTAINER_FILES, IMAGE_FILES, SNAPSHOT_FILES};
use inodes::InodeTable;

use crate::model::MAX_COMPONENT_BYTES;
use crate::service::{Event, Services};
use crate::store::{schema, Node, NodeId, NodeKind, Store, StoreRead};

pub use handles::{Ownership, ReadOutcome};
pub use times::Times;

/// Result of filesystem operations.
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// readdir cookies: 1 and 2 are `.` and `..`, 3.. the attribute files in listing order,
/// and a child node's cookie is its id plus this base, so deleting entries never shifts
/// the cookies of the others and no per-handle state is needed.
const CHILD_COOKIE_BASE: u64 = 16;
const FIRST_FILE_COOKIE: u64 = 3;

/// The filesystem's state: the services, the inodes the kernel holds and the open files.
pub struct FsCore {
    services: Arc<Services>,
    inodes: Arc<InodeTable>,
    handles: HandleTable,
    /// What the kernel must be told of changes it did not make.
    notices: Arc<notify::Notices>,
    /// What the kernel's pages of cached files may hold.
    page_cache: page_cache::PageCache,
    /// Temporary files in object directories (for atomic replace by rename).
    temps: temp::TempFiles,
    /// The last refusals, for `error_log`.
    error_log: error_log::ErrorLog,
    /// The query directories the kernel holds (`.filter/<expr>/`, `.by-target/<digest>/`).
    queries: queries::Queries,
    /// What fields cleared by `rm` referenced, kept from collection for a grace period
    /// (tar, install and mv remove a file and create it again at once).
    cleared: std::sync::Mutex<std::collections::HashMap<(NodeId, AttrFile), (std::time::Instant, crate::service::HeldRefs)>>,
}

/// How long what an `rm` of a field referenced stays pinned, unless the field is written
/// again meanwhile (then the new writer holds it until it closes).
const CLEARED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A cleared field's pin: the field, and when it was cleared with what it referenced.
type ClearedPin = ((NodeId, AttrFile), (std::time::Instant, crate::service::HeldRefs));

/// How a child node is shown in a listing: its inode and kind.
type ChildView = fn(NodeId, NodeKind) -> (Ino, Kind);

/// What a directory inode is: a node, a task's `logs/<id>/`, or a query directory.
enum Dir {
    Node(Loaded),
    Logs(Loaded),
    Query(QueryIno),
}

impl FsCore {
    /// A filesystem over `services`. What the services change on their own (a task's
    /// exit, a collection) becomes kernel notices.
    pub fn new(services: Arc<Services>) -> Self {
        let notices = Arc::new(notify::Notices::default());
        let inodes = Arc::new(InodeTable::default());
        let sink = Arc::clone(&notices);
        let graves = Arc::clone(&inodes);
        // Weak: the services keep this listener, which must not keep them.
        let store_of = Arc::downgrade(&services);
        let removing: std::sync::Mutex<std::collections::HashMap<NodeId, Loaded>> = Default::default();
        services.on_event(move |event| match event {
            // A task deleted on exit: what the kernel still holds of it (a `tail -f` of its
            // log) answers from its tombstones, as after `rm tasks/<id>`. Read while the
            // record is there, buried once it is gone (a lookup in between would clear it).
            Event::TaskRemoving { node } => {
                let Some(services) = store_of.upgrade() else { return };
                if let Ok(last) = services.store().read().map_err(FsError::from).and_then(|r| load_node(&r, *node)) {
                    removing.lock().unwrap_or_else(|p| p.into_inner()).insert(*node, last);
                }
            }
            Event::TaskRemoved { node, id } => {
                if let Some(last) = removing.lock().unwrap_or_else(|p| p.into_inner()).remove(node) {
                    bury(&graves, &last);
                }
                sink.send(notify::Notice::removed(schema::TASKS, Ino::Node(*node), id));
                sink.send(notify::Notice::removed(schema::LOGS, Ino::LogDir(*node), id));
                sink.send(notify::Notice::removed(schema::WAIT, Ino::Wait(*node), id));
            }
            // `tasks/<id>` may be in the page cache (its status), and `logs/<id>/` shows the
            // record's times.
            Event::TaskExited { node, .. } => {
                // Waited for (events come on workers and the exit watcher, never on a
                // request thread): a `cat wait/<id>` answered after this must not be
                // followed by a read of the old status through a descriptor open before.
                sink.invalidate_and_wait(vec![Ino::Node(*node).number()]);
                sink.send(notify::Notice::Attributes(Ino::LogDir(*node).number()));
                sink.send(notify::Notice::Attributes(Ino::Wait(*node).number()));
            }
            Event::TaskChanged { node } => {
                sink.send(notify::Notice::Content(vec![Ino::Node(*node).number()]));
                sink.send(notify::Notice::Attributes(Ino::LogDir(*node).number()));
            }
            Event::Collected(collected) => {
                let mut dirs = std::collections::BTreeSet::new();
                for (id, digest) in &collected.blobs {
                    if let Some((dir, hex)) = digest_dir(digest) {
                        sink.send(notify::Notice::removed(dir, Ino::Node(*id), hex));
                        dirs.insert(dir);
                    }
                }
                for (id, key) in &collected.snapshots {
                    sink.send(notify::Notice::removed(schema::SNAPSHOTS, Ino::Node(*id), key));
                    dirs.insert(schema::SNAPSHOTS);
                }
                // Their directories' times changed, which the kernel caches for a while.
                for dir in dirs {
                    sink.send(notify::Notice::Attributes(Ino::Node(dir).number()));
                }
            }
        });
        FsCore {
            services,
            inodes,
            handles: HandleTable::default(),
            notices,
            page_cache: Default::default(),
            temps: Default::default(),
            queries: Default::default(),
            error_log: Default::default(),
            cleared: Default::default(),
        }
    }

    /// A metadata-only filesystem over a store (no blobs, snapshots or tasks).
    pub fn over_store(store: Arc<Store>) -> Self {
        Self::new(Arc::new(Services::new(store)))
    }

    /// The services this filesystem serves.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    fn store(&self) -> &Store {
        self.services.store()
    }

    /// The last refusals (`error_log`).
    pub fn error_log(&self) -> &error_log::ErrorLog {
        &self.error_log
    }

    /// The queue of notices for the kernel (the daemon subscribes its notifier thread).
    pub fn notices(&self) -> &notify::Notices {
        &self.notices
    }

    /// What the kernel's pages of cached files may hold (the inode notifier updates it).
    pub fn page_cache(&self) -> &page_cache::PageCache {
        &self.page_cache
    }

    /// This request changed `node`'s record: every inode of it the kernel holds (its
    /// directory or file, its attribute files, a task's views) loses its cached pages and
    /// attributes before the request answers, so nothing read or stat'ed after the answer
    /// is stale (`info.json` and the directory's mtime change with `labels`, `labels`
    /// with a `setfattr` on the directory).
    pub(super) fn changed(&self, node: NodeId) {
        let known = ino::inodes_of(node).filter(|ino| self.inodes.is_known(*ino)).collect();
        self.notices.invalidate_and_wait(known);
    }

    /// The notice of a removal the kernel must know of, if it knows the directory.
    fn removal(&self, parent: NodeId, child: Ino, name: &str) -> Option<notify::Notice> {
        self.inodes.is_known(Ino::Node(parent).number()).then(|| notify::Notice::removed(parent, child, name))
    }

    /// The inodes the kernel currently references.
    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    /// `lookup`: a name in a directory. Counts one kernel reference on success.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = component(name)?;
        let reader = self.store().read()?;
        let attr = match self.directory(&reader, parent)? {
            // Counted by the query table itself, under its lock.
            Dir::Query(QueryIno::Root(root)) => return self.query_dir_lookup(&reader, root, name),
            Dir::Query(query) => self.link_lookup(&reader, query, name)?,
            Dir::Node(dir) if QueryRoot::named(dir.node.id, name).is_some() => {
                let root = QueryRoot::named(dir.node.id, name).ok_or(FsError::NotFound)?;
                self.query_root_attr(&reader, root)?
            }
            Dir::Logs(task) => {
                let stream = [Stream::Stdout, Stream::Stderr].into_iter().find(|s| s.name() == name);
                self.log_attr(&task, stream.ok_or(FsError::NotFound)?)?
            }
            Dir::Node(dir) => match (dir.node.kind, dir.file_named(name)) {
                (_, Some(file)) if self.present(&reader, &dir, file)? => self.file_attr(&reader, &dir, file)?,
                // A file being created: the kernel asks for its attributes before the first write.
                (_, Some(file)) if self.handles.is_writing(dir.node.id, file) => empty_file_attr(&dir, file),
                (_, Some(_)) => return Err(FsError::NotFound),
                (NodeKind::LogsDir, None) => log_dir_attr(&task_named(&reader, name)?),
                (NodeKind::Root, None) if is_root_file(&dir, name) => {
                    self.root_file_attr(&dir, RootFile::named(name).expect("checked"))
                }
                (NodeKind::WaitDir, None) => wait_attr(&task_named(&reader, name)?),
                (kind, None) => match self.temps.lookup(dir.node.id, name) {
                    Some(temp) if rename::holds_temps(kind) => self.temp_attr(temp)?,
                    _ => {
                        let child = reader.lookup(dir.node.id, name)?.ok_or(FsError::NotFound)?;
                        node_attr(&Loaded::read(&reader, child)?)
                    }
                },
            },
        };
        self.inodes.remember(attr.ino);
        Ok(attr)
    }

    /// `forget`: the kernel dropped `count` references to `ino`.
    pub fn forget(&self, ino: u64, count: u64) {
        self.inodes.forget(ino, count);
        if !self.inodes.is_known(ino) {
            // Its pages went with the kernel's inode.
            self.page_cache.forget(ino);
        }
        if rename::is_temp(ino) && !self.inodes.is_known(ino) {
            self.temps.forget(ino);
        }
        self.forget_query(ino);
    }

    /// `getattr`. A deleted object the kernel still holds answers with its tombstone.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        if rename::is_temp(ino) {
            return self.temp_attr(ino);
        }
        self.getattr_in(&self.store().read()?, ino)
    }

    /// `getattr` of a node's or a query's inode through an open read transaction.
    fn getattr_in(&self, reader: &impl StoreRead, ino: u64) -> Result<Attr> {
        if let Some(query) = QueryIno::decode(ino) {
            return self.query_getattr(reader, query);
        }
        let decoded = Ino::decode(ino).ok_or(FsError::NotFound)?;
        let found = match reader.node(decoded.node())? {
            None => None,
            Some(node) => {
                let loaded = Loaded::read(reader, node)?;
                match decoded {
                    Ino::Node(_) => Some(node_attr(&loaded)),
                    Ino::File(_, file) if self.present(reader, &loaded, file)? => self.file_attr(reader, &loaded, file).ok(),
                    Ino::File(node, file) if self.handles.is_writing(node, file) => Some(empty_file_attr(&loaded, file)),
                    // Removed by an unlink: the tombstone (nlink 0) for descriptors still open.
                    Ino::File(..) if self.inodes.tombstone(ino).is_some() => None,
                    // Gone while the kernel still has the name cached (a refused create, a
                    // value cleared by a write): empty until it forgets the name, so that an
                    // open creating it again through the cached name works.
                    Ino::File(_, file) if loaded.files().contains(&file) && self.inodes.is_known(ino) => {
                        Some(empty_file_attr(&loaded, file))
                    }
                    Ino::File(..) => None,
                    Ino::LogDir(_) => loaded.task().map(|_| log_dir_attr(&loaded)),
                    Ino::Log(_, stream) => self.log_attr(&loaded, stream).ok(),
                    Ino::Wait(_) => loaded.task().map(|_| wait_attr(&loaded)),
                    Ino::RootFile(file) => Some(self.root_file_attr(&loaded, file)),
                }
            }
        };
        found.or_else(|| self.inodes.tombstone(ino)).or_else(|| self.handles.pending_attr(ino)).ok_or(FsError::NotFound)
    }

    /// `readdir`: entries after `offset`, handed to `add(ino, cookie, kind, name)` until it
    /// returns `true` (buffer full). Streams children from the store.
    pub fn readdir(&self, ino: u64, offset: u64, add: &mut dyn FnMut(u64, u64, Kind, &str) -> bool) -> Result<()> {
        self.readdir_in(&self.store().read()?, ino, offset, add)
    }

    /// `readdir` through `reader`, so `readdirplus` lists and describes from one view.
    fn readdir_in(
        &self,
        reader: &crate::store::Reader<'_>,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(u64, u64, Kind, &str) -> bool,
    ) -> Result<()> {
        let dir = match self.directory(reader, ino)? {
            Dir::Query(query) => return self.query_readdir(reader, query, offset, add),
            Dir::Logs(task) => {
                let entries = [
                    (ino, Kind::Dir, "."),
                    (Ino::Node(schema::LOGS).number(), Kind::Dir, ".."),
                    (Ino::Log(task.node.id, Stream::Stdout).number(), Kind::File, "stdout"),
                    (Ino::Log(task.node.id, Stream::Stderr).number(), Kind::File, "stderr"),
                ];
                for (cookie, (child, kind, name)) in (1..).zip(entries) {
                    if cookie > offset && add(child, cookie, kind, name) {
                        break;
                    }
                }
                return Ok(());
            }
            Dir::Node(dir) => dir,
        };
        let parent_ino = Ino::Node(dir.node.parent).number();
        if offset < 1 && add(ino, 1, Kind::Dir, ".") {
            return Ok(());
        }
        if offset < 2 && add(parent_ino, 2, Kind::Dir, "..") {
            return Ok(());
        }
        for (cookie, file) in (FIRST_FILE_COOKIE..).zip(dir.files()) {
            // Absent files are not listed, nor derived ones (reachable by name only: a
            // backup tool copies only what it can restore).
            if cookie <= offset || !is_listed(dir.node.kind, *file) || !self.present(reader, &dir, *file)? {
                continue;
            }
            if add(Ino::File(dir.node.id, *file).number(), cookie, Kind::File, file.name()) {
                return Ok(());
            }
        }
        // logs/ lists the tasks, each as its own view. wait/ lists nothing: its files block,
        // so a recursive walk (grep -r, find, tar, rsync) must not find them; each is
        // reachable by name (`cat wait/<id>`), as tasks/ lists the ids.
        let (source, view): (NodeId, ChildView) = match dir.node.kind {
            NodeKind::LogsDir => (schema::TASKS, |id, _| (Ino::LogDir(id), Kind::Dir)),
            NodeKind::WaitDir => return Ok(()),
            _ => (dir.node.id, |id, kind| (Ino::Node(id), node_kind(kind))),
        };
        let after = offset.saturating_sub(CHILD_COOKIE_BASE);
        reader.for_each_child(source, after, &mut |child, kind, name| {
            let (child_ino, child_kind) = view(child, kind);
            !add(child_ino.number(), child.0 + CHILD_COOKIE_BASE, child_kind, name)
        })?;
        Ok(())
    }

    /// `readdirplus`: the entries of `readdir`, each with its attributes, handed to
    /// `add(attr, cookie, name)` until it returns `true` (buffer full). The kernel counts
    /// every entry it is given but `.` and `..` as a lookup, so each one added is
    /// remembered here as a lookup would be; an entry that vanished between the listing
    /// and its attributes is left out.
    pub fn readdirplus(&self, ino: u64, offset: u64, add: &mut dyn FnMut(&Attr, u64, &str) -> bool) -> Result<()> {
        // One read transaction for the listing and every entry's attributes: an entry
        // committed in between would be listed without attributes.
        let reader = self.store().read()?;
        // Remembered once the listing is whole: a listing that fails part way is answered
        // with an error, and the kernel then links none of the entries it was given.
        let mut given = Vec::new();
        self.readdir_in(&reader, ino, offset, &mut |child, cookie, kind, name| {
            let itself = name == "." || name == "..";
            let attr = match self.getattr_in(&reader, child) {
                Ok(attr) => attr,
                // The kernel takes nothing from these two but the name and the number.
                Err(_) if itself => Attr::dir(Ino::Node(schema::ROOT), std::time::UNIX_EPOCH, std::time::UNIX_EPOCH, false),
                Err(FsError::NotFound) => return false,
                Err(e) => {
                    log::warn!("readdirplus: {name} left out: {e}");
                    return false;
                }
            };
            let attr = Attr { ino: child, kind, ..attr };
            let full = add(&attr, cookie, name);
            if !full && !itself {
                given.push(child);
            }
            full
        })?;
        for child in given {
            self.inodes.remember(child);
        }
        Ok(())
    }

    /// `mkdir`: an image directory under `images/`, or a container under `containers/`.
    pub fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = component(name)?;
        let dir = self.changeable_directory(&self.store().read()?, parent)?;
        if QueryRoot::named(dir.node.id, name).is_some() {
            return Err(FsError::Exists(name.to_owned()));
        }
        let loaded = match dir.node.kind {
            NodeKind::ImagesDir | NodeKind::ImageDir => {
                let node = self.services.create_image_dir(dir.node.id, name)?;
                Loaded { node, object: Object::Image(None) }
            }
            NodeKind::ContainersDir => {
                let (node, container) = self.services.create_container(name)?;
                Loaded { node, object: Object::Container(Box::new(container)) }
            }
            NodeKind::Root => return Err(FsError::NotPermitted("the top level is fixed".into())),
            NodeKind::TasksDir => {
                return Err(FsError::NotPermitted("tasks are files: start one with touch tasks/<container-id>".into()))
            }
            NodeKind::LogsDir | NodeKind::WaitDir => {
                return Err(FsError::NotPermitted("logs/ and wait/ follow tasks/; they cannot be changed".into()))
            }
            NodeKind::Container | NodeKind::Task => {
                return Err(FsError::NotPermitted("a container directory holds only its attribute files".into()))
            }
            NodeKind::ContentDir | NodeKind::DigestDir | NodeKind::Blob => {
                return Err(FsError::NotPermitted("content/ holds blobs: write content/sha256/<hex>".into()))
            }
            NodeKind::SnapshotsDir | NodeKind::Snapshot => {
                return Err(FsError::NotPermitted(
                    "snapshots are made from images: write a container's snapshot key".into(),
                ))
            }
        };
        let attr = dir_attr(&loaded);
        self.inodes.remember(attr.ino);
        Ok(attr)
    }

    /// `rmdir`: deletes an image directory or a container.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = component(name)?;
        let reader = self.store().read()?;
        let dir = self.changeable_directory(&reader, parent)?;
        if dir.file_named(name).is_some() || is_root_file(&dir, name) {
            return Err(FsError::NotDir);
        }
        if QueryRoot::named(dir.node.id, name).is_some() {
            return Err(query_is_read_only());
        }
        if dir.node.kind == NodeKind::LogsDir {
            task_named(&reader, name)?;
            return Err(FsError::NotPermitted("logs go with their task: rm tasks/<id>".into()));
        }
        let existing = reader.lookup(dir.node.id, name)?.ok_or(FsError::NotFound)?;
        let last = Loaded::read(&reader, existing)?;
        drop(reader);
        match dir.node.kind {
            NodeKind::ImagesDir | NodeKind::ImageDir | NodeKind::ContainersDir | NodeKind::SnapshotsDir => {}
            NodeKind::TasksDir | NodeKind::DigestDir => return Err(FsError::NotDir),
            NodeKind::Root
            | NodeKind::LogsDir
            | NodeKind::WaitDir
            | NodeKind::Container
            | NodeKind::Task
            | NodeKind::ContentDir
            | NodeKind::Blob
            | NodeKind::Snapshot => return Err(FsError::NotPermitted(format!("{name} cannot be removed"))),
        }
        // Deleting the object ends the grace of its cleared fields (`rm -r` clears them
        // first): what they referenced goes with it, unless the delete is refused.
        let grace = self.take_cleared_pins_of(last.node.id);
        let deleted = match dir.node.kind {
            NodeKind::ContainersDir => self.services.delete_container(name).map(drop),
            NodeKind::SnapshotsDir => self.services.delete_snapshot(name).map(drop),
            _ => self.services.delete_image_dir(dir.node.id, name).map(drop),
        };
        if let Err(error) = deleted {
            // An entry a writer put back meanwhile is replaced: dropped outside the lock.
            let replaced: Vec<_> = {
                let mut cleared = handles::lock(&self.cleared);
                grace.into_iter().filter_map(|(key, pins)| cleared.insert(key, pins)).collect()
            };
            drop(replaced);
            return Err(error.into());
        }
        if !grace.is_empty() {
            drop(grace);
            self.services.collect_after_delete();
        }
        // (The services collected what the delete left unreferenced.)
        for ino in self.temps.remove_dir(last.node.id) {
            if !self.inodes.is_known(ino) {
                self.temps.forget(ino);
            }
        }
        self.bury(&last);
        // The kernel may hold its files' pages and attributes (tombstones now).
        self.changed(last.node.id);
        Ok(())
    }

    /// `unlink`: `rm tasks/<id>` deletes the task. Attribute files are part of their
    /// object and cannot be removed alone; accepting the call (and changing nothing) lets
    /// `rm -r DIR` reach the `rmdir`.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = component(name)?;
        let reader = self.store().read()?;
        let dir = match self.directory(&reader, parent)? {
            Dir::Logs(_) => return Err(FsError::NotPermitted("logs go with their task: rm tasks/<id>".into())),
            Dir::Node(dir) => dir,
            Dir::Query(_) => return Err(query_is_read_only()),
        };
        if QueryRoot::named(dir.node.id, name).is_some() {
            return Err(query_is_read_only());
        }
        if let Some(file) = dir.file_named(name) {
            return self.remove_attribute_file(&reader, &dir, file);
        }
        if is_root_file(&dir, name) {
            return Err(FsError::NotPermitted(format!("{name} is made by the daemon; it cannot be removed")));
        }
        if rename::holds_temps(dir.node.kind) && self.temps.remove(dir.node.id, name).is_some() {
            return Ok(());
        }
        match dir.node.kind {
            NodeKind::TasksDir => {
                let task = task_named(&reader, name)?;
                drop(reader);
                self.services.delete_task(task.node.id)?;
                self.bury(&task);
                // tasks/<id> is the kernel's own removal; its views went with it, and the
                // kernel must have forgotten them before `rm` returns.
                for (dir, view) in [(schema::LOGS, Ino::LogDir(task.node.id)), (schema::WAIT, Ino::Wait(task.node.id))] {
                    if let Some(notice) = self.removal(dir, view, name) {
                        self.notices.send_and_wait(notice);
                    }
                }
                Ok(())
            }
            NodeKind::WaitDir => {
                task_named(&reader, name)?;
                Err(FsError::NotPermitted("wait files go with their task: rm tasks/<id>".into()))
            }
            NodeKind::DigestDir => {
                let blob = reader.lookup(dir.node.id, name)?.ok_or(FsError::NotFound)?;
                let last = Loaded::read(&reader, blob)?;
                drop(reader);
                self.services.delete_blob(dir.node.id, name)?;
                self.bury(&last);
                Ok(())
            }
            _ => match reader.lookup(dir.node.id, name)? {
                Some(_) => Err(FsError::IsDir),
                None => Err(FsError::NotFound),
            },
        }
    }

    /// `rm` of an attribute file clears its value, so it is gone until written again (and
    /// `rm` then create, as tar and install do, ends with the new value). Derived files
    /// cannot be removed. Clearing `target` leaves the image's labels, without an image.
    fn remove_attribute_file(&self, reader: &impl StoreRead, dir: &Loaded, file: AttrFile) -> Result<()> {
        if !self.present(reader, dir, file)? {
            return Err(FsError::NotFound);
        }
        if is_read_only(dir.node.kind, file) {
            return Err(FsError::NotPermitted(format!("{} is derived from its directory's record; rmdir the directory", file.name())));
        }
        if dir.node.kind == NodeKind::Container && reader.lookup(schema::TASKS, &dir.node.name)?.is_some() {
            // As rmdir: a refused `rm -r` of a running container must not have emptied it.
            return Err(crate::store::StoreError::InUse {
                what: format!("container {}'s fields", dir.node.name),
                by: format!("task {}", dir.node.name),
            }
            .into());
        }
        let edit = match file {
            AttrFile::Target => crate::service::Edit::ClearTarget,
            _ => write::empty_value(file)?,
        };
        // What the value referenced stays for a while: a tool that removes the file to
        // create it again (tar, install, mv) must not lose a container's root filesystem
        // or an image's content in between.
        if let Some(pins) = self.pin_references(dir, file) {
            let replaced = handles::lock(&self.cleared).insert((dir.node.id, file), (std::time::Instant::now(), pins));
            drop(replaced);
        }
        self.expire_cleared_pins();
        let last = dir.clone();
        self.services.apply(edit, dir.node.id, dir.node.kind)?;
        self.inodes.bury(static_file_attr(&last, file).unwrap_or_else(|_| empty_file_attr(&last, file)));
        // The kernel drops the name it unlinked; others may have gone with it (info.json).
        self.forget_vanished(dir.node.id);
        self.changed(dir.node.id);
        Ok(())
    }

    /// Drops the pins of fields cleared longer ago than the grace period, and collects
    /// what only they kept.
    pub(super) fn expire_cleared_pins(&self) {
        // Pins are dropped outside the lock: a drop waits for the pin table, which a
        // collection holds for its whole transaction, and request threads take this lock.
        let expired = self.take_cleared(|_, (at, _)| at.elapsed() >= CLEARED_GRACE);
        if !expired.is_empty() {
            drop(expired);
            self.services.collect_after_delete();
        }
    }

    /// The pins of every cleared field of `node`, taken out of their grace.
    fn take_cleared_pins_of(&self, node: NodeId) -> Vec<ClearedPin> {
        self.take_cleared(|(owner, _), _| *owner == node)
    }

    /// Takes the cleared fields' pins that `pick` chooses out of their table, for the caller
    /// to drop or keep outside its lock.
    fn take_cleared(&self, pick: impl Fn(&(NodeId, AttrFile), &(std::time::Instant, crate::service::HeldRefs)) -> bool) -> Vec<ClearedPin> {
        let mut cleared = handles::lock(&self.cleared);
        let keys: Vec<_> = cleared.iter().filter(|(key, entry)| pick(key, entry)).map(|(key, _)| *key).collect();
        keys.into_iter().filter_map(|key| cleared.remove_entry(&key)).collect()
    }

    /// Whether a field cleared by `rm` a moment ago still has its pin.
    pub(super) fn has_cleared_pin(&self, node: NodeId, file: AttrFile) -> bool {
        handles::lock(&self.cleared).contains_key(&(node, file))
    }

    /// The pin of a field cleared by `rm` a moment ago, for the writer creating it again.
    pub(super) fn take_cleared_pin(&self, node: NodeId, file: AttrFile) -> Option<crate::service::HeldRefs> {
        handles::lock(&self.cleared).remove(&(node, file)).map(|(_, pins)| pins)
    }

    /// The path of an inode below the mount point, for log lines.
    pub fn path_of(&self, ino: u64) -> String {
        let unknown = || format!("inode {ino}");
        if rename::is_temp(ino) {
            return match self.temp_path(ino) {
                Some((dir, name)) => format!("{}/{name}", self.path_of(Ino::Node(dir).number())),
                None => unknown(),
            };
        }
        if let Some(query) = QueryIno::decode(ino) {
            return self.query_path(query).unwrap_or_else(unknown);
        }
        let Some(decoded) = Ino::decode(ino) else { return unknown() };
        let Ok(reader) = self.store().read() else { return unknown() };
        let mut parts = Vec::new();
        let mut current = decoded.node();
        match decoded {
            Ino::Node(_) => {}
            Ino::File(_, file) => parts.push(file.name().to_owned()),
            Ino::Log(_, stream) => parts.push(stream.name().to_owned()),
            Ino::LogDir(_) | Ino::Wait(_) => {}
            Ino::RootFile(file) => return file.name().to_owned(),
        }
        if let Ino::LogDir(id) | Ino::Log(id, _) | Ino::Wait(id) = decoded {
            let Ok(Some(task)) = reader.node(id) else { return unknown() };
            parts.push(task.name);
            current = if matches!(decoded, Ino::Wait(_)) { schema::WAIT } else { schema::LOGS };
        }
        while current != schema::ROOT {
            match reader.node(current) {
                Ok(Some(node)) => {
                    parts.push(node.name);
                    current = node.parent;
                }
                _ => return unknown(),
            }
        }
        parts.reverse();
        parts.join("/")
    }

    /// The path of `name` in directory `parent`, for log lines.
    pub fn child_path(&self, parent: u64, name: &OsStr) -> String {
        let dir = self.path_of(parent);
        let name = name.to_string_lossy();
        if dir.is_empty() {
            name.into_owned()
        } else {
            format!("{dir}/{name}")
        }
    }

    /// A directory inode and its record.
    fn directory(&self, reader: &impl StoreRead, ino: u64) -> Result<Dir> {
        match QueryIno::decode(ino) {
            Some(QueryIno::Link(_)) => return Err(FsError::NotDir),
            Some(query) => return Ok(Dir::Query(query)),
            None => {}
        }
        match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::Node(id) => {
                let loaded = Loaded::read(reader, reader.node(id)?.ok_or(FsError::NotFound)?)?;
                match loaded.node.kind {
                    NodeKind::Task | NodeKind::Blob => Err(FsError::NotDir),
                    _ => Ok(Dir::Node(loaded)),
                }
            }
            Ino::LogDir(id) => {
                let loaded = Loaded::read(reader, reader.node(id)?.ok_or(FsError::NotFound)?)?;
                Ok(Dir::Logs(loaded))
            }
            Ino::File(..) | Ino::Log(..) | Ino::Wait(_) | Ino::RootFile(_) => Err(FsError::NotDir),
        }
    }

    /// A directory whose entries can be created, removed or renamed: a node's. The query
    /// roots in `images/` and `containers/` are refused by name.
    fn changeable_directory(&self, reader: &impl StoreRead, ino: u64) -> Result<Loaded> {
        match self.directory(reader, ino)? {
            Dir::Node(dir) => Ok(dir),
            Dir::Logs(_) => Err(FsError::NotPermitted("logs/<id>/ holds only stdout and stderr".into())),
            Dir::Query(_) => Err(query_is_read_only()),
        }
    }

    /// Keeps the last attributes of a deleted object for the inodes the kernel still holds.
    fn bury(&self, last: &Loaded) {
        bury(&self.inodes, last);
    }
}

impl FsCore {
    /// Whether `file` of `loaded` exists now: a field exists while it has a value, so that
    /// tools that remove a file and create it again (tar, install, cp into a directory it
    /// made) find it gone in between; a container's `info.json` always exists, an image's
    /// once it is an image, a snapshot's files always.
    fn present(&self, reader: &impl StoreRead, loaded: &Loaded, file: AttrFile) -> Result<bool> {
        Ok(match (&loaded.object, file) {
            (Object::Image(Some(image)), AttrFile::Target | AttrFile::Info) => image.is_image(),
            (Object::Image(Some(image)), AttrFile::Labels) => !image.labels.is_empty(),
            (Object::Container(_), AttrFile::Spec) => reader.with_spec(loaded.node.id, |_| ())?.is_some(),
            (Object::Container(c), AttrFile::Labels) => !c.labels.is_empty(),
            (Object::Container(_), AttrFile::Info) => true,
            (Object::Container(c), other) => match field_of(other) {
                Some(field) => !c.field(field).is_empty(),
                None => false,
            },
            (Object::Snapshot(_), _) => true,
            _ => false,
        })
    }
}

impl FsCore {
    /// Files of `node` the kernel knows that have no value now (cleared, refused, an image
    /// without its target): the kernel is told to forget their names, so the next lookup
    /// finds nothing. (Until it has, an open that creates the file again through the
    /// cached name works: `getattr` answers such a file as empty.)
    pub(super) fn forget_vanished(&self, node: NodeId) {
        self.forget_vanished_also(node, None);
    }

    /// `forget_vanished`, where the kernel may also know field `renamed` under another
    /// inode: a temporary file renamed onto it.
    pub(super) fn forget_vanished_also(&self, node: NodeId, renamed: Option<AttrFile>) {
        let Ok(reader) = self.store().read() else { return };
        let Ok(loaded) = load_node(&reader, node) else { return };
        let parent = Ino::Node(node).number();
        for file in loaded.files() {
            let known = self.inodes.is_known(Ino::File(node, *file).number()) || renamed == Some(*file);
            if known && !self.handles.is_writing(node, *file) && matches!(self.present(&reader, &loaded, *file), Ok(false)) {
                self.notices.send(notify::Notice::Forget { parent, name: file.name().to_owned() });
            }
        }
    }
}

/// The refusal of any change in or of a query directory.
fn query_is_read_only() -> FsError {
    FsError::NotPermitted("query directories (.filter, .by-target) are read-only views; change the objects themselves".into())
}

/// Keeps the last attributes of deleted object `last` in `inodes`, for the inodes the
/// kernel still holds.
fn bury(inodes: &InodeTable, last: &Loaded) {
    inodes.bury(node_attr(last));
    if last.node.kind == NodeKind::Task {
        inodes.bury(log_dir_attr(last));
        inodes.bury(wait_attr(last));
        for stream in [Stream::Stdout, Stream::Stderr] {
            let (created, updated) = last.dir_times();
            inodes.bury(Attr::file(Ino::Log(last.node.id, stream), 0, READ_ONLY_FILE_MODE, created, updated));
        }
        return;
    }
    let files: &[AttrFile] = match last.node.kind {
        NodeKind::Container => &CONTAINER_FILES,
        NodeKind::Snapshot => &SNAPSHOT_FILES,
        NodeKind::Blob => &[],
        _ => &IMAGE_FILES,
    };
    for file in files {
        let attr = static_file_attr(last, *file).unwrap_or_else(|_| {
            let (created, updated) = last.dir_times();
            Attr::file(Ino::File(last.node.id, *file), 0, file_mode(last.node.kind, *file), created, updated)
        });
        inodes.bury(attr);
    }
}

/// The container field a one-line file shows.
fn field_of(file: AttrFile) -> Option<crate::model::ContainerField> {
    use crate::model::ContainerField;
    match file {
        AttrFile::Image => Some(ContainerField::Image),
        AttrFile::Snapshotter => Some(ContainerField::Snapshotter),
        AttrFile::Snapshot => Some(ContainerField::Snapshot),
        AttrFile::Runtime => Some(ContainerField::Runtime),
        _ => None,
    }
}

/// Whether a directory listing shows `file` (when present): derived files are reachable by
/// name only.
fn is_listed(kind: NodeKind, file: AttrFile) -> bool {
    !(file == AttrFile::Info && matches!(kind, NodeKind::Container | NodeKind::ImageDir))
}

/// The attributes of an attribute file being created: empty, writable.
fn empty_file_attr(loaded: &Loaded, file: AttrFile) -> Attr {
    let (created, updated) = loaded.dir_times();
    Attr::file(Ino::File(loaded.node.id, file), 0, FILE_MODE, created, updated)
}

/// A node's own attributes: a directory, the task file or a blob.
fn node_attr(loaded: &Loaded) -> Attr {
    let (created, updated) = loaded.record_times();
    let (created, updated) = (created.to_system_time(), updated.to_system_time());
    let set = loaded.node.times.get(crate::model::NODE_ITSELF);
    if let Some(task) = loaded.task() {
        return Attr::file(Ino::Node(loaded.node.id), task.status_json().len(), FILE_MODE, created, updated).with_set_times(set);
    }
    if let Some(blob) = loaded.blob() {
        // A committed blob never changes; one being written shows as writable.
        let mode = if blob.state == crate::model::BlobState::Committed { READ_ONLY_FILE_MODE } else { FILE_MODE };
        return Attr::file(Ino::Node(loaded.node.id), blob.size as usize, mode, created, updated).with_set_times(set);
    }
    dir_attr(loaded)
}

fn node_kind(kind: NodeKind) -> Kind {
    if matches!(kind, NodeKind::Task | NodeKind::Blob) {
        Kind::File
    } else {
        Kind::Dir
    }
}

/// `logs/<id>/`.
fn log_dir_attr(task: &Loaded) -> Attr {
    let (created, updated) = task.dir_times();
    Attr::dir(Ino::LogDir(task.node.id), created, updated, false)
}

/// `wait/<id>`: empty until the task stopped, then its exit status.
fn wait_attr(task: &Loaded) -> Attr {
    let (created, updated) = task.dir_times();
    let size = task.task().and_then(|t| t.wait_text()).map_or(0, |t| t.len());
    Attr::file(Ino::Wait(task.node.id), size, READ_ONLY_FILE_MODE, created, updated)
}

/// Whether `name` in directory `dir` is one of the files at the mount's top.
fn is_root_file(dir: &Loaded, name: &str) -> bool {
    dir.node.kind == NodeKind::Root && RootFile::named(name).is_some()
}

impl FsCore {
    /// A file at the mount's top, read-only. `events` is a stream, so its size is 0 (a
    /// reader reads until the stream says it is at its end, as from a pipe); `error_log`
    /// has the size of the refusals kept now.
    fn root_file_attr(&self, root: &Loaded, file: RootFile) -> Attr {
        let (created, updated) = root.dir_times();
        // error_log shows who was refused what, and documents never stored: root's only,
        // as tracefs keeps its own (other users' requests are refused by the kernel, so
        // none of theirs is in it).
        let (size, mode) = match file {
            RootFile::Events => (0, READ_ONLY_FILE_MODE),
            RootFile::ErrorLog => (self.error_log.len(), attr::OWNER_READ_ONLY_MODE),
        };
        Attr::file(Ino::RootFile(file), size, mode, created, updated)
    }
}

/// The task called `name` under `tasks/`.
fn task_named(reader: &impl StoreRead, name: &str) -> Result<Loaded> {
    let node = reader.lookup(schema::TASKS, name)?.ok_or(FsError::NotFound)?;
    Ok(Loaded::read(reader, node)?)
}

fn dir_attr(loaded: &Loaded) -> Attr {
    let (created, updated) = loaded.dir_times();
    let attr = Attr::dir(Ino::Node(loaded.node.id), created, updated, matches!(loaded.object, Object::Fixed))
        .with_set_times(loaded.node.times.get(crate::model::NODE_ITSELF));
    // Their times change only with their records, through requests that invalidate them.
    match loaded.object {
        Object::Image(_) | Object::Container(_) => attr.cached(),
        _ => attr,
    }
}

impl FsCore {
    /// An attribute file's attributes; its size is that of its content now. A container's
    /// `spec` and `info.json` are sized from the spec's stored length, without reading it.
    fn file_attr(&self, reader: &impl StoreRead, loaded: &Loaded, file: AttrFile) -> Result<Attr> {
        let size = match (&loaded.object, file) {
            (Object::Container(_), AttrFile::Spec) => reader.with_spec(loaded.node.id, <[u8]>::len)?.unwrap_or(0),
            (Object::Container(c), AttrFile::Info) => {
                let spec_len = reader.with_spec(loaded.node.id, |s| crate::model::trim_json_whitespace(s).len())?;
                c.info_json_len(spec_len)
            }
            _ => self.file_content(reader, loaded, file)?.len(),
        };
        Ok(attr_for_content(loaded, file, size))
    }
}

/// An attribute file's attributes from the record alone (for tombstones).
fn static_file_attr(loaded: &Loaded, file: AttrFile) -> Result<Attr> {
    let content = loaded.render(file).ok_or(FsError::NotFound)?;
    Ok(attr_for_content(loaded, file, content.len()))
}

fn attr_for_content(loaded: &Loaded, file: AttrFile, size: usize) -> Attr {
    let (created, updated) = loaded.record_times();
    let mode = file_mode(loaded.node.kind, file);
    let attr = Attr::file(Ino::File(loaded.node.id, file), size, mode, created.to_system_time(), updated.to_system_time())
        .with_set_times(loaded.node.times.get(file.name()));
    if page_cache::is_cached_file(loaded.node.kind, file) {
        attr.cached()
    } else {
        attr
    }
}

/// Whether a file of a node of `kind` can be written.
fn is_read_only(kind: NodeKind, file: AttrFile) -> bool {
    match file {
        AttrFile::Info
        | AttrFile::SnapshotKind
        | AttrFile::Parent
        | AttrFile::Mounts
        | AttrFile::Usage
        | AttrFile::References => true,
        AttrFile::Snapshotter => kind == NodeKind::Snapshot,
        _ => false,
    }
}

fn file_mode(kind: NodeKind, file: AttrFile) -> u16 {
    if is_read_only(kind, file) {
        READ_ONLY_FILE_MODE
    } else {
        FILE_MODE
    }
}

/// A name from the kernel as a component this tree can hold.
fn component(name: &OsStr) -> Result<&str> {
    let name = name.to_str().ok_or(FsError::BadName)?;
    if name.len() > MAX_COMPONENT_BYTES {
        return Err(FsError::NameTooLong);
    }
    Ok(name)
}

/// Node helper for handles and xattrs: the loaded directory behind an inode.
fn load_node(reader: &impl StoreRead, id: NodeId) -> Result<Loaded> {
    let node: Node = reader.node(id)?.ok_or(FsError::NotFound)?;
    Ok(Loaded::read(reader, node)?)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod blob_tests;

#[cfg(test)]
mod events_tests;

#[cfg(test)]
mod cache_tests;

/// The `content/<alg>/` directory of a digest, and its file name there.
fn digest_dir(digest: &str) -> Option<(NodeId, &str)> {
    match digest.split_once(':')? {
        ("sha256", hex) => Some((schema::CONTENT_SHA256, hex)),
        ("sha512", hex) => Some((schema::CONTENT_SHA512, hex)),
        _ => None,
    }
}
