//! Open files: a snapshot for readers (a consistent document across read calls), a write
//! buffer for writers, committed at the write() that completes a value (or at flush,
//! fsync or release for a value left incomplete).
//!
//! While a handle is open for writing, what its file referenced at open (an image's
//! target blob, a container's snapshot, `gc.ref` labels) stays pinned against collection:
//! the emptiness after `O_TRUNC` or half an edit is never what a collection acts on, and a
//! refused value can be put back with everything it referenced.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::attr::{Attr, FILE_MODE};

use super::errno::FsError;
use super::ino::{AttrFile, Ino, RootFile};
use super::content::{Loaded, Object};
use crate::service::{BlobWriter, Edit, HeldRefs, Judge};
use super::write::{empty_value, WriteBuffer, WriteMode};
use crate::store::{label_references, Reference};
use super::page_cache::{fingerprint, is_cached_file, OpenMode, MAX_CACHED_BYTES};
use super::{component, is_read_only, load_node, node_attr, FsCore, Result, Times};
use crate::model::Timestamp;
use crate::store::{NodeId, NodeKind, StoreRead};

/// One open file.
#[derive(Debug)]
pub struct Handle {
    node: NodeId,
    kind: NodeKind,
    state: HandleState,
}

/// Whether an open or a release may wait for what another request holds (see
/// `open_without_waiting`, `release_without_waiting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Allowed,
    Refused,
}

#[derive(Debug)]
enum HandleState {
    /// Generated content as it was at open: one consistent document across reads.
    Snapshot(Vec<u8>),
    /// An attribute file opened for writing.
    Write(Box<AttrWriter>),
    /// `tasks/<id>` opened for writing: each write is a control word. `fresh` while the
    /// handle that started the task has not written yet (its first `start` is that start).
    Control { snapshot: Vec<u8>, fresh: bool },
    /// `tasks/<id>` created by `>` or `>>` (`O_TRUNC` or `O_APPEND`): no task yet. The
    /// first write decides (`start` starts it, any other word is refused and leaves none);
    /// closed without a write, it starts the task as `touch` would.
    Pending(Box<PendingTask>),
    /// A task's log, read straight from the host file.
    Log(std::fs::File),
    /// `wait/<id>`: reads block until the task stopped.
    Wait,
    /// `events`: this handle's place in the stream.
    Events(super::events::Cursor),
    /// A task's status, read direct: the document as of the last read at offset 0, so each
    /// pass from the start shows the status as of then (a descriptor held across the exit
    /// reads the exit) and the reads of one pass are of one document.
    Status(Vec<u8>),
    /// A stored blob, read straight from its file.
    BlobRead(std::fs::File),
    /// A blob being written.
    BlobWrite(Box<BlobWriter>),
    /// A temporary file (by inode number), read and written in memory.
    Temp(u64),
    /// A cacheable file read through the kernel's page cache (`page_cache.rs`).
    Cached(Box<CachedRead>),
}

impl HandleState {
    /// Whether a release of this handle commits, judges, collects and starts nothing (see
    /// `release`).
    fn release_commits_nothing(&self) -> bool {
        match self {
            HandleState::Pending(_) => false,
            HandleState::Write(writer) => writer.pins.is_none() && self.flush_commits_nothing(),
            other => other.flush_commits_nothing(),
        }
    }

    /// Whether a flush of this handle commits nothing and judges nothing (see `commit`).
    fn flush_commits_nothing(&self) -> bool {
        match self {
            HandleState::BlobWrite(_) => false,
            HandleState::Write(writer) => !writer.has_pending(),
            _ => true,
        }
    }
}

/// What a handle read through the page cache reads.
#[derive(Debug)]
pub(super) enum CachedRead {
    /// An attribute file or a task's status, rendered from the record at each read: a fill
    /// must never put content older than a change already announced into the pages. Once
    /// the record is gone, the content at open.
    Rendered { ino: u64, at_open: Vec<u8> },
    /// A committed blob: its bytes never change (a blob stored again is a new node).
    Blob { ino: u64, file: std::fs::File, fingerprint: u64 },
}

impl CachedRead {
    fn ino(&self) -> u64 {
        match self {
            CachedRead::Rendered { ino, .. } | CachedRead::Blob { ino, .. } => *ino,
        }
    }
}

/// What a cacheable open found.
enum CacheSource {
    Rendered(Vec<u8>),
    Blob(std::fs::File, u64),
}

/// An attribute file open for writing.
#[derive(Debug)]
pub(super) struct AttrWriter {
    buffer: WriteBuffer,
    /// Why a commit through this handle was refused (errno, reason): later writes and
    /// closes get the same answer and nothing more is committed.
    refused: Option<(i32, String)>,
    /// What the file referenced at open, kept from collection until the handle closes.
    pins: Option<HeldRefs>,
}

impl AttrWriter {
    fn new(buffer: WriteBuffer, pins: Option<HeldRefs>) -> Self {
        AttrWriter { buffer, refused: None, pins }
    }

    /// Whether a flush has something to commit or judge: bytes not yet committed, on a
    /// handle not refused.
    fn has_pending(&self) -> bool {
        self.refused.is_none() && self.buffer.is_dirty() && !self.buffer.failed()
    }

    fn file(&self) -> AttrFile {
        self.buffer.file()
    }
}

/// A task created by a truncating or appending open, not started yet.
#[derive(Debug)]
pub(super) struct PendingTask {
    /// The task's (and its container's) id.
    id: String,
    /// Why its first write was refused: nothing is started at close then.
    refused: Option<(i32, String)>,
}

/// Inode numbers of pending tasks (`tasks/<id>` created, nothing started): far above any
/// node id the store hands out, so they decode to nodes that do not exist and answer
/// `ENOENT` everywhere but `getattr`, which asks the handle (`HandleTable::pending_attr`).
const PENDING_NODE_BASE: u64 = 1 << 57;

/// How many files may be open on the mount at once.
pub const MAX_OPEN_FILES: usize = 4096;

/// How many bytes of documents open files may hold together: a reader holds the document
/// it opened, a writer the value at open plus as much as it may write (the file's limit).
/// This, not the count, bounds the daemon's memory: 1 GiB is 1,000 label writers or 250
/// spec writers at once.
pub const MAX_HELD_BYTES: usize = 1 << 30;

/// What a read gives: bytes now, or a wait for a task's exit (the adapter parks the
/// request instead of blocking a worker thread).
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The bytes read.
    Data(Vec<u8>),
    /// Nothing yet: answer when the task node stops.
    WaitForExit(NodeId),
    /// At the end of the `events` stream: answer when an event is published (or now, with
    /// nothing, for a reader that does not wait).
    WaitForEvent,
}

/// The open files, by handle number.
#[derive(Debug, Default)]
pub struct HandleTable {
    next: AtomicU64,
    open: Mutex<OpenFiles>,
    /// What each writing handle writes, kept outside the handles' own locks: a handle can
    /// stay locked for as long as its commit takes (a whole image unpacked at the close of
    /// `snapshot`), and questions about writers must not wait for that.
    writers: Mutex<HashMap<u64, Writes>>,
    /// Writing handles whose descriptor has been closed (flushed) at least once: the
    /// kernel releases them later, on its own time, and a close is over for the caller.
    closed: Mutex<std::collections::HashSet<u64>>,
}

/// The open handles, with the bytes of documents they may hold.
#[derive(Debug, Default)]
struct OpenFiles {
    handles: HashMap<u64, (Arc<Mutex<Handle>>, usize)>,
    held: usize,
}

/// What a writing handle writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// An attribute file of a node.
    File(NodeId, AttrFile),
    /// A blob.
    Blob(NodeId),
    /// Control words to a task.
    Task(NodeId),
}

impl Handle {
    /// The document bytes this handle may come to hold.
    fn charge(&self) -> usize {
        match &self.state {
            HandleState::Snapshot(content) | HandleState::Status(content) | HandleState::Control { snapshot: content, .. } => {
                content.len()
            }
            HandleState::Cached(cached) => match cached.as_ref() {
                CachedRead::Rendered { at_open, .. } => at_open.len(),
                CachedRead::Blob { .. } => 0,
            },
            HandleState::Write(writer) => writer.buffer.visible().len() + super::write::size_limit(writer.file()),
            HandleState::Log(_)
            | HandleState::Wait
            | HandleState::Events(_)
            | HandleState::BlobRead(_)
            | HandleState::BlobWrite(_)
            | HandleState::Pending(_) => 0,
            // Counted against the temporary files' own bound.
            HandleState::Temp(_) => 0,
        }
    }
}

impl HandleTable {
    fn insert(&self, handle: Handle) -> Result<u64> {
        let charge = handle.charge();
        let mut open = lock(&self.open);
        if open.handles.len() >= MAX_OPEN_FILES {
            return Err(FsError::TooManyOpenFiles(MAX_OPEN_FILES));
        }
        if open.held.saturating_add(charge) > MAX_HELD_BYTES {
            return Err(FsError::TooMuchHeld(MAX_HELD_BYTES >> 20));
        }
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let writes = match &handle.state {
            HandleState::Write(writer) => Some(Writes::File(handle.node, writer.file())),
            HandleState::BlobWrite(_) => Some(Writes::Blob(handle.node)),
            HandleState::Control { .. } | HandleState::Pending(_) => Some(Writes::Task(handle.node)),
            _ => None,
        };
        if let Some(writes) = writes {
            lock(&self.writers).insert(fh, writes);
        }
        open.held += charge;
        open.handles.insert(fh, (Arc::new(Mutex::new(handle)), charge));
        Ok(fh)
    }

    fn get(&self, fh: u64) -> Result<Arc<Mutex<Handle>>> {
        lock(&self.open).handles.get(&fh).map(|(h, _)| Arc::clone(h)).ok_or(FsError::BadHandle)
    }

    /// Whether a descriptor not yet closed is writing `file` of `node`: a `target` being
    /// created has no record yet, but the kernel asks for its attributes before the first
    /// write, and `install` sets the mode through the descriptor before closing it. Once
    /// closed, the writer is over for the caller, though the kernel releases it later.
    pub fn is_writing(&self, node: NodeId, file: AttrFile) -> bool {
        let closed = lock(&self.closed);
        lock(&self.writers).iter().any(|(fh, w)| *w == Writes::File(node, file) && !closed.contains(fh))
    }

    /// Marks the close of a descriptor of `fh`.
    fn mark_closed(&self, fh: u64) {
        if lock(&self.writers).contains_key(&fh) {
            lock(&self.closed).insert(fh);
        }
    }

    /// Whether a read of `events` handle `fh` would return something now; `None` for a
    /// handle of any other file (always ready).
    pub(super) fn events_ready(&self, fh: u64, store: &crate::store::Store) -> Result<Option<bool>> {
        // A writer's handle is locked through its commit (an unpack, a wait behind a
        // collection): asked of the table of writers, never of the handle.
        if lock(&self.writers).contains_key(&fh) {
            return Ok(None);
        }
        let handle = self.get(fh)?;
        let handle = lock(&handle);
        match &handle.state {
            HandleState::Events(cursor) => Ok(Some(cursor.has_unread(store)?)),
            _ => Ok(None),
        }
    }

    /// Whether some handle is writing the blob `node`.
    fn has_blob_writer(&self, node: NodeId) -> bool {
        lock(&self.writers).values().any(|w| *w == Writes::Blob(node))
    }

    /// The attributes of a pending task's inode while its handle is open: an empty file.
    pub(super) fn pending_attr(&self, ino: u64) -> Option<Attr> {
        let fh = Ino::decode(ino)?.node().0.checked_sub(PENDING_NODE_BASE)?;
        let handle = self.get(fh).ok()?;
        let handle = lock(&handle);
        matches!(handle.state, HandleState::Pending(_)).then(|| {
            let now = std::time::SystemTime::now();
            Attr::file(Ino::Node(NodeId(PENDING_NODE_BASE + fh)), 0, FILE_MODE, now, now)
        })
    }

    fn remove(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        lock(&self.writers).remove(&fh);
        lock(&self.closed).remove(&fh);
        let mut open = lock(&self.open);
        let (handle, charge) = open.handles.remove(&fh)?;
        open.held -= charge;
        Some(handle)
    }
}

pub(super) use crate::service::lock;

/// The owner and mode a `setattr` asks for (each `None` when not asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// New permission bits (and file type bits, ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
}

impl Ownership {
    fn is_empty(&self) -> bool {
        self.mode.is_none() && self.uid.is_none() && self.gid.is_none()
    }

    /// Whether it asks for what the file has: everything is owned by root.
    fn matches(&self, attr: &Attr) -> bool {
        self.mode.is_none_or(|m| m & 0o7777 == u32::from(attr.perm))
            && self.uid.is_none_or(|u| u == 0)
            && self.gid.is_none_or(|g| g == 0)
    }
}

/// Whether a refusal at close says only that the value is not finished (more bytes may
/// still come through another descriptor of the same open file).
fn is_incomplete_refusal(e: &FsError) -> bool {
    matches!(e, FsError::Invalid(_))
}

/// Which close a commit answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// A `close()` of one descriptor (more may follow).
    Flush,
    /// An `fsync()`.
    Sync,
    /// The last reference went away.
    Release,
}

fn mode_for(flags: i32) -> WriteMode {
    if flags & libc::O_TRUNC != 0 {
        WriteMode::Replace
    } else if flags & libc::O_APPEND != 0 {
        WriteMode::Append
    } else {
        WriteMode::Positional
    }
}

fn slice(bytes: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = (offset as usize).min(bytes.len());
    let end = start.saturating_add(size as usize).min(bytes.len());
    bytes[start..end].to_vec()
}

/// What a writer of `file` of `loaded` pins: what the value references now.
fn pinned_by_writer(loaded: &Loaded, file: AttrFile) -> Vec<Reference> {
    let mut refs = Vec::new();
    match (&loaded.object, file) {
        (Object::Image(Some(image)), AttrFile::Target) => {
            refs.extend(image.target.iter().map(|t| Reference::Blob(t.digest.clone())))
        }
        (Object::Container(c), AttrFile::Snapshot) if !c.snapshot.is_empty() => {
            refs.push(Reference::Snapshot(c.snapshot.clone()))
        }
        (_, AttrFile::Labels) => {
            refs.extend(loaded.labels().into_iter().flat_map(label_references));
            // The record itself, which its own `containerd.io/gc.root` label may keep.
            match &loaded.object {
                Object::Snapshot(snapshot) => refs.push(Reference::Snapshot(snapshot.key.clone())),
                Object::Blob(blob) => refs.push(Reference::Blob(blob.digest.clone())),
                _ => {}
            }
        }
        _ => {}
    }
    refs
}

fn is_write(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
}

/// Whether an open of `ino` with `flags` may go through the page cache, before looking at
/// the record: read-only, no truncation, and an inode that can be an attribute file of an
/// object, a task or a blob. Writers are always direct: each `write()` must reach the
/// daemon, and a write through the page cache would hold the page locks an invalidation
/// waits for.
fn may_be_cached(ino: u64, flags: i32) -> bool {
    if is_write(flags) || flags & libc::O_TRUNC != 0 || super::rename::is_temp(ino) || super::ino::QueryIno::decode(ino).is_some() {
        return false;
    }
    match Ino::decode(ino) {
        Some(Ino::File(_, file)) => is_cached_file(NodeKind::Container, file) || is_cached_file(NodeKind::ImageDir, file),
        Some(Ino::Node(_)) => true,
        _ => false,
    }
}

/// Up to `size` bytes of `file` from `offset` (fewer only at its end).
fn read_file_at(file: &std::fs::File, offset: u64, size: u32, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut filled = 0;
    while filled < buf.len() {
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[filled..], offset + filled as u64)
            .map_err(|e| FsError::Host(format!("reading {what}: {e}")))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

impl FsCore {
    /// `open` of a file: an attribute file, a task, a task's log or its wait file.
    pub fn open(&self, ino: u64, flags: i32) -> Result<u64> {
        self.open_as(ino, flags, Waiting::Allowed).map(|fh| fh.expect("an open that may wait always opens"))
    }

    /// `open`, when it needs nothing it could wait for: no pin of what the file references
    /// (a collection holds the pin table for its whole transaction) and no ingest file of a
    /// blob. `None` when it would need one of those: the caller opens on a worker instead.
    /// So a writer of labels or a spec, the common case, is opened on the request thread
    /// without a hand-off to the pool.
    pub fn open_without_waiting(&self, ino: u64, flags: i32) -> Option<Result<u64>> {
        self.open_as(ino, flags, Waiting::Refused).transpose()
    }

    /// `open`; `Ok(None)` when it would have to wait and `waiting` refuses that.
    fn open_as(&self, ino: u64, flags: i32, waiting: Waiting) -> Result<Option<u64>> {
        if super::rename::is_temp(ino) {
            if let Some(alias) = self.temp_alias(ino) {
                return self.open_as(alias, flags, waiting);
            }
            if flags & libc::O_TRUNC != 0 {
                if waiting == Waiting::Refused {
                    // A blob's temporary file truncates its ingest file: disk work.
                    return Ok(None);
                }
                self.truncate_temp(ino, 0)?;
            }
            let dir = self.temp_dir(ino)?;
            let fh = self.handles.insert(Handle { node: dir.node.id, kind: dir.node.kind, state: HandleState::Temp(ino) })?;
            self.temps.opened(ino);
            return Ok(Some(fh));
        }
        let decoded = Ino::decode(ino).ok_or(FsError::NotFound)?;
        let writing = is_write(flags);
        let reader = self.store().read()?;
        let loaded = load_node(&reader, decoded.node())?;
        let state = match decoded {
            Ino::Node(_) if loaded.blob().is_some() => {
                let blob = loaded.blob().expect("checked");
                if writing && waiting == Waiting::Refused {
                    // Creating its ingest file is disk work.
                    return Ok(None);
                } else if writing {
                    HandleState::BlobWrite(Box::new(self.services.open_blob_for_writing(blob)?))
                } else {
                    HandleState::BlobRead(self.services.open_blob_for_reading(blob)?)
                }
            }
            Ino::Node(_) => {
                let task = loaded.task().ok_or(FsError::IsDir)?;
                let snapshot = task.status_json().into_bytes();
                if writing {
                    HandleState::Control { snapshot, fresh: false }
                } else {
                    HandleState::Snapshot(snapshot)
                }
            }
            Ino::File(node, file) => {
                if writing && is_read_only(loaded.node.kind, file) {
                    return Err(FsError::ReadOnly(file.name()));
                }
                if file == AttrFile::Usage {
                    // A reader gets the figure as of now, and so does the next stat.
                    self.services.measure_usage(node)?;
                    let reader = self.store().read()?;
                    let loaded = load_node(&reader, node)?;
                    let content = self.file_content(&reader, &loaded, file)?;
                    return self.handles.insert(Handle { node, kind: loaded.node.kind, state: HandleState::Snapshot(content) }).map(Some);
                }
                let content = match self.present(&reader, &loaded, file)? {
                    true => self.file_content(&reader, &loaded, file)?,
                    // Gone since the kernel looked it up: a writer creates it again.
                    false if writing => Vec::new(),
                    false => return Err(FsError::NotFound),
                };
                if writing {
                    let refs = pinned_by_writer(&loaded, file);
                    // A pin (taken now, or the cleared field's, which a failed open would
                    // drop) may wait for the pin table.
                    if waiting == Waiting::Refused && (!refs.is_empty() || self.has_cleared_pin(node, file)) {
                        return Ok(None);
                    }
                    let pins = self.services.pin(refs).or_else(|| self.take_cleared_pin(node, file));
                    HandleState::Write(Box::new(AttrWriter::new(WriteBuffer::new(file, mode_for(flags), content).appending(flags & libc::O_APPEND != 0), pins)))
                } else {
                    HandleState::Snapshot(content)
                }
            }
            Ino::LogDir(_) => return Err(FsError::IsDir),
            Ino::Log(..) | Ino::Wait(_) if writing => return Err(FsError::ReadOnly("a task view")),
            Ino::Log(node, stream) => HandleState::Log(self.open_log(node, stream)?),
            Ino::Wait(_) => HandleState::Wait,
            Ino::RootFile(file) if writing => return Err(FsError::ReadOnly(file.name())),
            Ino::RootFile(RootFile::Events) => HandleState::Events(super::events::Cursor::at_oldest(self.store())?),
            // The refusals as they are now: one consistent picture across reads.
            Ino::RootFile(RootFile::ErrorLog) => HandleState::Snapshot(self.error_log().contents()),
        };
        self.handles.insert(Handle { node: loaded.node.id, kind: loaded.node.kind, state }).map(Some)
    }

    /// `open`, answered through `answer` (the adapter's reply) with the handle and how the
    /// kernel may cache the file. A cacheable file's open compares its content now with what
    /// the kernel's pages may hold and answers under that inode's page-cache lock, so no
    /// read fills the pages between the decision and the answer (`page_cache.rs`).
    pub fn open_and_answer(&self, ino: u64, flags: i32, answer: impl FnOnce(Result<(u64, OpenMode)>)) {
        if !may_be_cached(ino, flags) {
            return answer(self.open(ino, flags).map(|fh| (fh, OpenMode::Direct)));
        }
        let mut distrusted = false;
        self.page_cache.serve(ino, |slot| {
            let opened = self.open_cacheable(ino, flags, slot);
            distrusted = matches!(opened, Ok((_, _, true)));
            answer(opened.map(|(fh, mode, _)| (fh, mode)))
        });
        if distrusted {
            // Some change was not announced: this open reads direct, and the pages go so the
            // next one can use the cache again.
            log::debug!("{}: cached pages differ from the content; invalidating", self.path_of(ino));
            self.notices.send(super::notify::Notice::Content(vec![ino]));
        }
    }

    /// A read-only open of a file that may be cached: the handle, its mode, and whether the
    /// pages were found to hold other content.
    fn open_cacheable(&self, ino: u64, flags: i32, slot: &super::page_cache::Slot<'_>) -> Result<(u64, OpenMode, bool)> {
        let decoded = Ino::decode(ino).ok_or(FsError::NotFound)?;
        let reader = self.store().read()?;
        let loaded = load_node(&reader, decoded.node())?;
        let source = match decoded {
            Ino::File(_, file) if is_cached_file(loaded.node.kind, file) => {
                if !self.present(&reader, &loaded, file)? {
                    return Err(FsError::NotFound);
                }
                CacheSource::Rendered(self.file_content(&reader, &loaded, file)?)
            }
            Ino::Node(_) if loaded.task().is_some() => {
                let at_open = loaded.task().expect("checked").status_json().into_bytes();
                let fh = self.handles.insert(Handle { node: loaded.node.id, kind: loaded.node.kind, state: HandleState::Status(at_open) })?;
                return Ok((fh, OpenMode::Live, false));
            }
            Ino::Node(_) if loaded.blob().is_some_and(|b| b.state == crate::model::BlobState::Committed) => {
                let blob = loaded.blob().expect("checked");
                CacheSource::Blob(self.services.open_blob_for_reading(blob)?, fingerprint(blob.digest.as_bytes()))
            }
            _ => {
                drop(reader);
                return self.open(ino, flags).map(|fh| (fh, OpenMode::Direct, false));
            }
        };
        let (fp, too_big) = match &source {
            CacheSource::Rendered(content) => (fingerprint(content), content.len() > MAX_CACHED_BYTES),
            CacheSource::Blob(_, fp) => (*fp, false),
        };
        let mode = if too_big { OpenMode::Direct } else { slot.open_mode(fp) };
        let state = match (mode, source) {
            (OpenMode::Cached, CacheSource::Rendered(at_open)) => HandleState::Cached(Box::new(CachedRead::Rendered { ino, at_open })),
            (OpenMode::Cached, CacheSource::Blob(file, fingerprint)) => {
                HandleState::Cached(Box::new(CachedRead::Blob { ino, file, fingerprint }))
            }
            (OpenMode::Direct | OpenMode::Live, CacheSource::Rendered(content)) => HandleState::Snapshot(content),
            (OpenMode::Direct | OpenMode::Live, CacheSource::Blob(file, _)) => HandleState::BlobRead(file),
        };
        let fh = self.handles.insert(Handle { node: loaded.node.id, kind: loaded.node.kind, state })?;
        Ok((fh, mode, mode == OpenMode::Direct && !too_big))
    }

    /// A read of cacheable inode `ino` through a descriptor that reads direct is about to
    /// be answered: what it may put in the pages is distrusted and invalidated (see
    /// `page_cache::Slot::distrust`). Only queues the invalidation, so a request thread may
    /// call it.
    pub fn direct_read_of(&self, ino: u64) {
        // A large document is read in many requests: one invalidation covers them all.
        if may_be_cached(ino, libc::O_RDONLY) && self.page_cache.serve(ino, |slot| slot.distrust()) {
            self.notices.send(super::notify::Notice::Content(vec![ino]));
        }
    }

    /// Whether reads of `fh` go through the page cache (`read_cached` answers them).
    pub fn reads_through_cache(&self, fh: u64) -> bool {
        // A writer's handle may be locked by its commit: never asked of the handle.
        if lock(&self.handles.writers).contains_key(&fh) {
            return false;
        }
        self.handles.get(fh).is_ok_and(|handle| matches!(lock(&handle).state, HandleState::Cached(_)))
    }

    /// `read` through a handle read via the page cache, answered by `answer(reply, ..)`
    /// under the inode's page-cache lock; `reply` comes back unused for any other handle.
    pub fn read_cached<R>(&self, fh: u64, offset: u64, size: u32, reply: R, answer: impl FnOnce(R, Result<Vec<u8>>)) -> Option<R> {
        let Ok(handle) = self.handles.get(fh) else { return Some(reply) };
        let handle = lock(&handle);
        let HandleState::Cached(cached) = &handle.state else { return Some(reply) };
        self.read_through_cache(cached, offset, size, |read| answer(reply, read));
        None
    }

    /// One fill of the pages: the content as of now, recorded as what the pages hold, and
    /// the reply sent (by `answer`) before the inode's page-cache lock is let go, so an
    /// invalidation that starts after this fill was recorded also drops what it put there.
    fn read_through_cache(&self, cached: &CachedRead, offset: u64, size: u32, answer: impl FnOnce(Result<Vec<u8>>)) {
        let ino = cached.ino();
        let consistent = self.page_cache.serve(ino, |slot| {
            let (read, consistent) = match cached {
                CachedRead::Rendered { ino, at_open } => {
                    let now = self.render_now(*ino).unwrap_or_else(|_| at_open.clone());
                    let consistent = slot.filled(fingerprint(&now));
                    (Ok(slice(&now, offset, size)), consistent)
                }
                CachedRead::Blob { file, fingerprint, .. } => {
                    let consistent = slot.filled(*fingerprint);
                    (read_file_at(file, offset, size, "a blob"), consistent)
                }
            };
            answer(read);
            consistent
        });
        if !consistent {
            self.notices.send(super::notify::Notice::Content(vec![ino]));
        }
    }

    /// A cacheable file's content as of now: empty once its field has no value.
    fn render_now(&self, ino: u64) -> Result<Vec<u8>> {
        let reader = self.store().read()?;
        match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::File(node, file) => {
                let loaded = load_node(&reader, node)?;
                match self.present(&reader, &loaded, file)? {
                    true => self.file_content(&reader, &loaded, file),
                    false => Ok(Vec::new()),
                }
            }
            Ino::Node(node) => Ok(load_node(&reader, node)?.task().ok_or(FsError::NotFound)?.status_json().into_bytes()),
            _ => Err(FsError::NotFound),
        }
    }

    /// `create`: the kernel found no such name. A task starts this way; an image's
    /// `target` comes into being this way (the record is made when it is committed).
    pub fn create(&self, parent: u64, name: &OsStr, flags: i32) -> Result<(Attr, u64)> {
        let name = component(name)?;
        let dir = self.changeable_directory(&self.store().read()?, parent)?;
        if let Some(file) = dir.file_named(name) {
            return self.create_attribute_file(&dir, file, flags);
        }
        match dir.node.kind {
            // A name that is no digest is a temporary file, to be renamed onto one (rsync).
            NodeKind::DigestDir if crate::model::digest_of_file_name(&dir.node.name, name).is_err() => {
                self.create_open_temp(&dir, name, flags)
            }
            NodeKind::DigestDir => {
                // A create that races another (or follows a stale negative dentry) for a blob
                // that is stored by now rewrites it, as an open of the existing file would.
                let existing = {
                    let reader = self.store().read()?;
                    reader.lookup(dir.node.id, name)?.map(|node| load_node(&reader, node.id)).transpose()?
                };
                let (blob, writer) = match existing {
                    Some(loaded) => {
                        let writer = self.services.open_blob_for_writing(loaded.blob().ok_or(FsError::NotFound)?)?;
                        (loaded, writer)
                    }
                    None => {
                        let (node, blob, writer) = self.services.create_blob(dir.node.id, name)?;
                        (Loaded { node, object: Object::Blob(Box::new(blob)) }, writer)
                    }
                };
                let attr = node_attr(&blob);
                let state = HandleState::BlobWrite(Box::new(writer));
                let fh = self.handles.insert(Handle { node: blob.node.id, kind: NodeKind::Blob, state })?;
                self.inodes.remember(attr.ino);
                Ok((attr, fh))
            }
            NodeKind::ContentDir => {
                Err(FsError::NotPermitted("blobs go in content/sha256/ or content/sha512/".into()))
            }
            NodeKind::SnapshotsDir | NodeKind::Snapshot => {
                Err(FsError::NotPermitted("snapshots are read-only views".into()))
            }
            NodeKind::Blob => Err(FsError::NotDir),
            NodeKind::TasksDir if flags & (libc::O_TRUNC | libc::O_APPEND) != 0 => {
                // `echo WORD > tasks/<id>`: the word decides, so nothing starts yet.
                self.services.check_task_start(name)?;
                let state = HandleState::Pending(Box::new(PendingTask { id: name.to_owned(), refused: None }));
                let fh = self.handles.insert(Handle { node: dir.node.id, kind: NodeKind::TasksDir, state })?;
                let now = Timestamp::now().to_system_time();
                let attr = Attr::file(Ino::Node(NodeId(PENDING_NODE_BASE + fh)), 0, FILE_MODE, now, now);
                self.inodes.remember(attr.ino);
                Ok((attr, fh))
            }
            NodeKind::TasksDir => {
                let (node, task) = self.services.start_task(name)?;
                let snapshot = task.status_json().into_bytes();
                let task = Loaded { node, object: Object::Task(Box::new(task)) };
                let attr = node_attr(&task);
                let state = HandleState::Control { snapshot, fresh: true };
                let fh = self.handles.insert(Handle { node: task.node.id, kind: NodeKind::Task, state })?;
                self.inodes.remember(attr.ino);
                Ok((attr, fh))
            }
            // Any other name is a temporary file, to be renamed onto an attribute file.
            NodeKind::ImageDir | NodeKind::Container => {
                self.create_open_temp(&dir, name, flags)
            }
            NodeKind::Task => Err(FsError::NotDir),
            NodeKind::LogsDir | NodeKind::WaitDir => {
                Err(FsError::NotPermitted("logs/ and wait/ follow tasks/; start a task in tasks/".into()))
            }
            NodeKind::Root | NodeKind::ImagesDir | NodeKind::ContainersDir => {
                Err(FsError::NotPermitted("make images and containers with mkdir".into()))
            }
        }
    }

    /// `create` of a temporary file in `dir`, opened by the caller's descriptor.
    fn create_open_temp(&self, dir: &Loaded, name: &str, flags: i32) -> Result<(Attr, u64)> {
        let ino = self.create_temp(dir, name, flags)?;
        let fh = self.handles.insert(Handle { node: dir.node.id, kind: dir.node.kind, state: HandleState::Temp(ino) })?;
        self.temps.opened(ino);
        let attr = self.temp_attr(ino)?;
        self.inodes.remember(attr.ino);
        Ok((attr, fh))
    }

    /// `create` of an attribute file: one without a value comes into being (its value is
    /// committed by the usual write rules; `O_EXCL` succeeds, as tar, install and cp into a
    /// new directory need); one that has a value is opened, or `EEXIST` with `O_EXCL`.
    fn create_attribute_file(&self, dir: &Loaded, file: AttrFile, flags: i32) -> Result<(Attr, u64)> {
        let ino = Ino::File(dir.node.id, file).number();
        if self.present(&self.store().read()?, dir, file)? {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::Exists(file.name().into()));
            }
            let fh = self.open(ino, flags)?;
            let attr = self.getattr(ino)?;
            self.inodes.remember(attr.ino);
            return Ok((attr, fh));
        }
        if is_read_only(dir.node.kind, file) {
            return Err(FsError::ReadOnly(file.name()));
        }
        // `>>` appends to nothing yet, so each value is judged, and committed, at the
        // write() that completes it, as after `>`; to labels it merges its lines, so labels
        // set meanwhile (by `setxattr`, another `>>`) are kept. Without either flag the new
        // file is edited in place and judged at close.
        let mode = mode_for(flags);
        // A field `rm`ed a moment ago and created again: its writer holds what it referenced.
        let pins = self.take_cleared_pin(dir.node.id, file);
        let buffer = WriteBuffer::new(file, mode, Vec::new()).appending(flags & libc::O_APPEND != 0);
        let state = HandleState::Write(Box::new(AttrWriter::new(buffer, pins)));
        let fh = self.handles.insert(Handle { node: dir.node.id, kind: dir.node.kind, state })?;
        let now = Timestamp::now().to_system_time();
        let attr = Attr::file(Ino::File(dir.node.id, file), 0, FILE_MODE, now, now);
        self.inodes.remember(attr.ino);
        Ok((attr, fh))
    }

    /// `read` through an open handle.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<ReadOutcome> {
        let handle = self.handles.get(fh)?;
        let mut handle = lock(&handle);
        if let HandleState::Events(cursor) = &mut handle.state {
            // A stream: the handle's cursor, not the kernel's offset, says where it is.
            let bytes = cursor.read(self.store(), size as usize)?;
            return Ok(if bytes.is_empty() { ReadOutcome::WaitForEvent } else { ReadOutcome::Data(bytes) });
        }
        let node = handle.node;
        if let HandleState::Status(shown) = &mut handle.state {
            if offset == 0 {
                let reader = self.store().read()?;
                // Once the task is removed, the last status shown (as for other documents).
                if let Some(task) = load_node(&reader, node).ok().as_ref().and_then(Loaded::task) {
                    *shown = task.status_json().into_bytes();
                }
            }
            return Ok(ReadOutcome::Data(slice(shown, offset, size)));
        }
        // Borrowed where possible: a large document is read in many calls, and copying the
        // whole of it for each would make reading it quadratic.
        let bytes: std::borrow::Cow<'_, [u8]> = match &handle.state {
            HandleState::Snapshot(content) | HandleState::Control { snapshot: content, .. } => content.as_slice().into(),
            HandleState::Pending(_) => Vec::new().into(),
            HandleState::Write(writer) => writer.buffer.visible(),
            HandleState::Log(file) => {
                let mut buf = vec![0u8; size as usize];
                let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, offset)
                    .map_err(|e| FsError::Host(format!("reading a task log: {e}")))?;
                buf.truncate(n);
                return Ok(ReadOutcome::Data(buf));
            }
            HandleState::Temp(ino) => return Ok(ReadOutcome::Data(self.temps.read(*ino, offset, size)?)),
            HandleState::BlobRead(file) => return Ok(ReadOutcome::Data(read_file_at(file, offset, size, "a blob")?)),
            HandleState::BlobWrite(_) => return Err(FsError::BadHandle),
            HandleState::Cached(cached) => {
                let mut read = Err(FsError::BadHandle);
                self.read_through_cache(cached, offset, size, |r| read = r);
                return read.map(ReadOutcome::Data);
            }
            // Read from its cursor, or its document, above.
            HandleState::Events(_) | HandleState::Status(_) => Vec::new().into(),
            HandleState::Wait => match self.services.wait_text(handle.node)? {
                Some(text) => text.into_bytes().into(),
                None => return Ok(ReadOutcome::WaitForExit(handle.node)),
            },
        };
        Ok(ReadOutcome::Data(slice(&bytes, offset, size)))
    }

    /// `write` through an open handle. Attribute files are buffered and judged; the write
    /// that completes a valid value commits it before it returns, and a refusal is this
    /// write's error (putting back the value from before the open if part of it was
    /// committed). A task's control word acts at once, so its refusal reaches the writer.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<usize> {
        let handle = self.handles.get(fh)?;
        let mut handle = lock(&handle);
        let (node, kind) = (handle.node, handle.kind);
        match &mut handle.state {
            HandleState::Write(writer) => {
                if let Some((errno, reason)) = &writer.refused {
                    return Err(FsError::Refused { errno: *errno, reason: reason.clone() });
                }
                let committed = match writer.buffer.write(offset, data) {
                    Ok(None) => return Ok(data.len()),
                    Ok(Some(edit)) => self.apply_edit(edit.clone(), node, kind).map(|()| edit),
                    Err(invalid) => Err(invalid.into()),
                };
                match committed {
                    Ok(edit) => {
                        writer.buffer.mark_committed(edit);
                        Ok(data.len())
                    }
                    Err(e) => Err(self.refuse_writer(node, kind, writer, e)),
                }
            }
            HandleState::Control { fresh, .. } => {
                let fresh = std::mem::take(fresh);
                // Release the handle's lock: a control word can take as long as runc does.
                drop(handle);
                let done = if fresh {
                    self.services.control_task_after_start(node, data)
                } else {
                    self.services.control_task(node, data)
                };
                // A refused word may have changed the record too (a failed start).
                self.changed(node);
                done?;
                Ok(data.len())
            }
            HandleState::Pending(pending) => {
                if let Some((errno, reason)) = &pending.refused {
                    return Err(FsError::Refused { errno: *errno, reason: reason.clone() });
                }
                // The handle stays locked while the task starts: its close waits for that.
                let id = pending.id.clone();
                match self.services.start_task_for_write(&id, data) {
                    Ok((task, status)) => {
                        handle.node = task.id;
                        handle.kind = NodeKind::Task;
                        handle.state = HandleState::Control { snapshot: status.status_json().into_bytes(), fresh: false };
                        drop(handle);
                        self.forget_pending(&id);
                        let done = self.services.control_task_after_start(task.id, data);
                        // The task's status changed with the start, word or not.
                        self.changed(task.id);
                        done?;
                        Ok(data.len())
                    }
                    Err(e) => {
                        let e = FsError::from(e);
                        pending.refused = Some((e.errno(), e.to_string()));
                        drop(handle);
                        self.forget_pending(&id);
                        Err(e)
                    }
                }
            }
            HandleState::BlobWrite(writer) => Ok(self.services.write_blob(writer, offset, data)?),
            HandleState::Temp(ino) => self.write_temp(*ino, offset, data),
            HandleState::Snapshot(_)
            | HandleState::Status(_)
            | HandleState::Log(_)
            | HandleState::Wait
            | HandleState::Events(_)
            | HandleState::BlobRead(_)
            | HandleState::Cached(_) => {
                Err(FsError::BadHandle)
            }
        }
    }

    /// `flush` (every `close()` of a descriptor): commits what is still uncommitted, in one
    /// transaction. Usually nothing is: the write that completed the value committed it.
    ///
    /// A shell's `>` opens the file, moves the descriptor and closes the original before
    /// the command writes, so a flush may see a bare truncation that bytes will follow.
    /// An empty value that is valid is committed (as a truncating open does to any file);
    /// what the file referenced stays pinned while the handle is open, and a refused write
    /// afterwards puts the value from before back. A value that is invalid or incomplete
    /// here is answered with its errno but judged again, and logged, at release: another
    /// descriptor of the same open file may still write the rest.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let handle = self.handles.get(fh)?;
        self.handles.mark_closed(fh);
        let mut handle = lock(&handle);
        self.commit(&mut handle, Commit::Flush)
    }

    /// `flush`, when it commits nothing (every byte written was committed at its `write()`,
    /// or the handle was refused) and nobody holds the handle: answered on the request
    /// thread. `None` otherwise: the caller flushes on a worker, which may wait.
    pub fn flush_without_waiting(&self, fh: u64) -> Option<Result<()>> {
        let handle = match self.handles.get(fh) {
            Ok(handle) => handle,
            Err(e) => return Some(Err(e)),
        };
        let mut handle = match handle.try_lock() {
            Ok(handle) => handle,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if !handle.state.flush_commits_nothing() {
            return None;
        }
        self.handles.mark_closed(fh);
        Some(self.commit(&mut handle, Commit::Flush))
    }

    /// `fsync`: commits whatever the handle holds, as a flush does. Every commit is
    /// synced by LMDB before it is acknowledged, so nothing more is needed for durability.
    pub fn fsync(&self, fh: u64) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let mut handle = lock(&handle);
        self.commit(&mut handle, Commit::Sync)
    }

    /// `release`, when it needs nothing it could wait for: the handle's bytes were all
    /// committed, it pins nothing (whose end could make a collection), no field's cleared
    /// pins wait for their grace to end, and it starts no task. `None` otherwise: the
    /// caller releases on a worker.
    pub fn release_without_waiting(&self, fh: u64) -> Option<Result<()>> {
        let handle = match self.handles.get(fh) {
            Ok(handle) => handle,
            Err(e) => return Some(Err(e)),
        };
        let quick = match handle.try_lock() {
            Ok(handle) => handle.state.release_commits_nothing(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().state.release_commits_nothing(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        if !quick || !lock(&self.cleared).is_empty() {
            return None;
        }
        Some(self.release_as(fh, Waiting::Refused))
    }

    /// `release`: the last reference to the handle is gone. Anything still uncommitted
    /// (bytes written through mmap, a refused bare truncation) is committed or refused now,
    /// finally. Then the handle's pins go, and a collection takes what they alone kept.
    pub fn release(&self, fh: u64) -> Result<()> {
        self.release_as(fh, Waiting::Allowed)
    }

    /// `release`; with `Waiting::Refused` it leaves the expiry of cleared pins (which may
    /// collect) to the next release that may wait.
    fn release_as(&self, fh: u64, waiting: Waiting) -> Result<()> {
        let Some(handle) = self.handles.remove(fh) else { return Err(FsError::BadHandle) };
        let mut handle = lock(&handle);
        if let HandleState::Pending(pending) = &handle.state {
            // Closed without a write (`: > tasks/<id>`): started as `touch` would.
            let id = pending.id.clone();
            let start = if pending.refused.is_none() { self.services.start_task(&id).map(drop) } else { Ok(()) };
            drop(handle);
            self.forget_pending(&id);
            return Ok(start?);
        }
        let result = self.commit(&mut handle, Commit::Release);
        let collect = match &mut handle.state {
            HandleState::Write(writer) => writer.pins.take().is_some() && writer.buffer.has_committed(),
            _ => false,
        };
        let written = match &handle.state {
            HandleState::Write(writer) => Some(writer.file()),
            _ => None,
        };
        if let HandleState::Temp(ino) = handle.state {
            self.temps.released(ino);
        }
        let (node, kind) = (handle.node, handle.kind);
        drop(handle);
        if written.is_some() && kind != NodeKind::Snapshot {
            self.forget_vanished(node);
        }
        if waiting == Waiting::Allowed {
            self.expire_cleared_pins();
        }
        if collect {
            self.services.collect_after_delete();
        }
        result
    }

    fn commit(&self, handle: &mut Handle, when: Commit) -> Result<()> {
        let (node, kind) = (handle.node, handle.kind);
        if let HandleState::BlobWrite(writer) = &mut handle.state {
            let judge = if when == Commit::Release { Judge::Release } else { Judge::Flush };
            return Ok(self.services.judge_blob(node, writer, judge)?);
        }
        let HandleState::Write(writer) = &mut handle.state else { return Ok(()) };
        if let Some((errno, reason)) = &writer.refused {
            // Already answered at the write that was refused.
            return match when {
                Commit::Release => Ok(()),
                Commit::Flush | Commit::Sync => Err(FsError::Refused { errno: *errno, reason: reason.clone() }),
            };
        }
        if !writer.has_pending() {
            return Ok(());
        }
        let bare_truncation = writer.buffer.is_bare_truncation();
        let committed = match writer.buffer.pending_edit() {
            Ok(edit) => self.apply_edit(edit.clone(), node, kind).map(|()| edit),
            Err(invalid) => Err(invalid.into()),
        };
        match committed {
            Ok(edit) => {
                writer.buffer.mark_committed(edit);
                Ok(())
            }
            // Not final before release: bytes may follow (a truncation, or a document whose
            // rest another descriptor of the same open file writes).
            Err(e) if when != Commit::Release && (bare_truncation || is_incomplete_refusal(&e)) => {
                Err(FsError::Unsettled(Box::new(e)))
            }
            Err(e) => Err(self.refuse_writer(node, kind, writer, e)),
        }
    }

    /// A writer's value was refused: puts back the value from before the open when part
    /// of this handle's value was committed, so a refusal leaves nothing changed, and
    /// marks the handle refused. Returns the error to answer.
    fn refuse_writer(&self, node: NodeId, kind: NodeKind, writer: &mut AttrWriter, e: FsError) -> FsError {
        // Only while the stored value is still what this handle committed: a value another
        // writer committed since is theirs, acknowledged, and stays.
        if writer.buffer.needs_restore() {
            let put_back = match (writer.buffer.last_committed(), writer.buffer.restore_edit()) {
                (Some(ours), Ok(back)) => {
                    let cleared = matches!(back, Edit::ClearTarget);
                    self.services.put_back(node, kind, ours, back).map(|done| (done, cleared)).map_err(FsError::from)
                }
                (None, _) => Ok((false, false)),
                (_, Err(e)) => Err(FsError::from(e)),
            };
            match put_back {
                Ok((false, _)) => log::info!("{}: changed by another writer since; not put back", writer.file().name()),
                // The image is a name prefix again: the kernel must forget its `target`
                // before this write's refusal reaches the writer.
                Ok((true, true)) => {
                    self.forget_vanished(node);
                    let parent = Ino::Node(node).number();
                    if self.inodes.is_known(parent) {
                        let name = AttrFile::Target.name().to_owned();
                        self.notices.send_and_wait(super::notify::Notice::Forget { parent, name });
                    }
                }
                Ok((true, false)) => self.forget_vanished(node),
                Err(restore) => {
                    log::error!("{}: could not put back the value from before a refused write: {restore}", writer.file().name())
                }
            }
        }
        if writer.buffer.needs_restore() {
            // Put back or not, the handle's own commits changed what the kernel may hold.
            self.changed(node);
        }
        writer.refused = Some((e.errno(), e.to_string()));
        writer.buffer.abandon();
        e
    }

    /// A pending task's name was decided (started or refused): the kernel must forget the
    /// placeholder inode the create gave it before the deciding call returns, so the next
    /// `cat tasks/<id>` finds the task, or nothing. Never from a create (it holds `tasks/`).
    fn forget_pending(&self, id: &str) {
        let parent = Ino::Node(crate::store::schema::TASKS).number();
        self.notices.send_and_wait(super::notify::Notice::Forget { parent, name: id.to_owned() });
    }

    /// What `file` of `loaded` references now, pinned while a handle writes it.
    pub(super) fn pin_references(&self, loaded: &Loaded, file: AttrFile) -> Option<HeldRefs> {
        self.services.pin(pinned_by_writer(loaded, file))
    }

    /// Commits one judged edit through the services.
    fn apply_edit(&self, edit: Edit, node: NodeId, kind: NodeKind) -> Result<()> {
        self.services.apply(edit, node, kind)?;
        self.forget_vanished(node);
        self.changed(node);
        Ok(())
    }

    /// `setattr`. Size 0 without a handle (`truncate -s 0`) commits the empty value at
    /// once; through a handle it edits the buffer. Times are set after the size (see
    /// `fs/times.rs`); ownership and modes are fixed.
    pub fn setattr(&self, ino: u64, size: Option<u64>, fh: Option<u64>, ownership: Ownership, times: Times) -> Result<Attr> {
        if super::rename::is_temp(ino) {
            if let Some(alias) = self.temp_alias(ino) {
                // Renamed onto a field: the kernel knows the field by this inode for now.
                // Through the descriptor, if any: it was opened on the field (a truncation
                // through it edits what it holds; without it, it would commit at once).
                let mut attr = self.setattr(alias, size, fh, ownership, times)?;
                attr.ino = ino;
                // A change invalidates the field's own inode number, not this one.
                attr.ttl = super::attr::OBJECT_ATTR_TTL;
                return Ok(attr);
            }
            let root = ownership.uid.is_none_or(|u| u == 0) && ownership.gid.is_none_or(|g| g == 0);
            return self.setattr_temp(ino, size, ownership.mode, root, times.mtime());
        }
        if super::ino::QueryIno::decode(ino).is_some() {
            return Err(super::query_is_read_only());
        }
        let attr = self.resize(ino, size, fh, ownership)?;
        if times.is_empty() {
            return Ok(attr);
        }
        self.set_times(ino, times)
    }

    /// `setattr` of the size and ownership.
    fn resize(&self, ino: u64, size: Option<u64>, fh: Option<u64>, ownership: Ownership) -> Result<Attr> {
        if !ownership.is_empty() {
            // Setting what is already there is allowed: `std::fs::copy` and `cp -p` set the
            // source's mode on the copy, and the copy of a 0644 file is still 0644.
            // A blob takes any mode and keeps its own (stored blobs are 0444): copy tools
            // (`std::fs::copy`, `shutil.copy`) set the source's mode, some after the close.
            let current = self.getattr(ino)?;
            let is_blob = matches!(Ino::decode(ino), Some(Ino::Node(node)) if self.handles.has_blob_writer(node)
                || load_node(&self.store().read()?, node).is_ok_and(|l| l.blob().is_some()));
            let root_owned = ownership.uid.is_none_or(|u| u == 0) && ownership.gid.is_none_or(|g| g == 0);
            // A file being written through this descriptor takes any mode for the while
            // (install makes it 0600 before writing, then sets the final mode): its own
            // mode comes back when the value is committed.
            // (fchmod carries no file handle: ask whether any descriptor writes this file.)
            let through_writer = match Ino::decode(ino) {
                Some(Ino::File(node, file)) => self.handles.is_writing(node, file),
                _ => false,
            };
            if !(ownership.matches(&current) || (is_blob || through_writer) && root_owned) {
                return Err(FsError::NotPermitted("owners and permissions in ctrfs are fixed".into()));
            }
        }
        let Some(size) = size else { return self.getattr(ino) };
        let (node, file) = match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::File(node, file) => (node, file),
            Ino::Node(node) if load_node(&self.store().read()?, node)?.blob().is_some() => {
                return self.truncate_blob_node(ino, node, size, fh);
            }
            // `echo TERM > tasks/<id>` may truncate first; a task has nothing to truncate.
            Ino::Node(node) if load_node(&self.store().read()?, node)?.task().is_some() => return self.getattr(ino),
            Ino::Node(_) | Ino::LogDir(_) => return Err(FsError::IsDir),
            Ino::Log(..) | Ino::Wait(_) => return Err(FsError::ReadOnly("a task view")),
            Ino::RootFile(file) => return Err(FsError::ReadOnly(file.name())),
        };
        let kind = load_node(&self.store().read()?, node)?.node.kind;
        if is_read_only(kind, file) {
            return Err(FsError::ReadOnly(file.name()));
        }
        if let Some(handle) = fh.map(|fh| self.handles.get(fh)).transpose()? {
            let mut handle = lock(&handle);
            if let HandleState::Write(writer) = &mut handle.state {
                if let Some((errno, reason)) = &writer.refused {
                    // A refused open file commits nothing more: a truncation that answered
                    // success would be acknowledged and never happen.
                    return Err(FsError::Refused { errno: *errno, reason: reason.clone() });
                }
                if size == 0 {
                    // `truncate -s 0 target`: refuse at the call itself when empty is invalid.
                    empty_value(file)?;
                }
                writer.buffer.truncate(size)?;
                let mut attr = self.getattr(ino)?;
                attr.size = writer.buffer.visible().len() as u64;
                // What this writer holds, not what is committed: never cached, or a reader
                // would be told that size until the TTL ran out.
                attr.ttl = super::attr::OBJECT_ATTR_TTL;
                return Ok(attr);
            }
        }
        if size != 0 {
            let limit = super::write::size_limit(file) as u64;
            if size > limit {
                return Err(crate::model::ValidationError::TooLarge { what: file.name(), limit: limit as usize }.into());
            }
            return Err(FsError::InvalidRequest("attribute files can only be truncated to size 0".into()));
        }
        self.apply_edit(empty_value(file)?, node, kind)?;
        // The field is gone now; the call still answers the file as it was left: empty.
        self.getattr(ino).or_else(|_| Ok(super::empty_file_attr(&load_node(&self.store().read()?, node)?, file)))
    }

    /// Truncation of a blob: through its writer it edits what is being written (`cp`
    /// over a blob truncates first); a stored blob never changes, but a truncation that
    /// comes with a writer's open is what `O_TRUNC` looks like, so it is accepted when
    /// this inode has a writer, and refused otherwise.
    fn truncate_blob_node(&self, ino: u64, node: NodeId, size: u64, fh: Option<u64>) -> Result<Attr> {
        if let Some(handle) = fh.map(|fh| self.handles.get(fh)).transpose()? {
            if let HandleState::BlobWrite(writer) = &mut lock(&handle).state {
                let size = self.services.truncate_blob(writer, size)?;
                let mut attr = self.getattr(ino)?;
                attr.size = size;
                return Ok(attr);
            }
        }
        if self.handles.has_blob_writer(node) {
            return self.getattr(ino);
        }
        Err(FsError::NotPermitted("a stored blob is immutable; rm it, or write it again whole".into()))
    }

    /// Whether a write through `fh` may take long (it may commit, and a commit may unpack
    /// an image or run a task verb): attribute files and tasks. Blob bytes only go to
    /// their ingest file.
    /// (Asked of the table of writers, never of the handle itself, whose lock a long
    /// commit may hold.)
    pub fn may_block(&self, fh: u64) -> bool {
        matches!(lock(&self.handles.writers).get(&fh), Some(Writes::File(..) | Writes::Task(_)))
    }

    /// `poll` of a stream: whether a read of `events` handle `fh` would return something
    /// now; `None` for any other file, which never makes a read wait.
    pub fn stream_ready(&self, fh: u64) -> Result<Option<bool>> {
        self.handles.events_ready(fh, self.store())
    }

    /// Whether `fh` was opened for writing (its close may commit).
    pub fn is_writing(&self, fh: u64) -> bool {
        lock(&self.handles.writers).contains_key(&fh)
    }

    /// Whether `fh` is an open handle (for tests).
    #[cfg(test)]
    pub(crate) fn is_open(&self, fh: u64) -> bool {
        self.handles.get(fh).is_ok()
    }

    /// The file content as a reader sees it now (tests and diagnostics).
    pub fn content(&self, ino: u64) -> Result<Vec<u8>> {
        let Some(Ino::File(node, file)) = Ino::decode(ino) else { return Err(FsError::IsDir) };
        let reader = self.store().read()?;
        let loaded = load_node(&reader, node)?;
        self.file_content(&reader, &loaded, file)
    }
}
