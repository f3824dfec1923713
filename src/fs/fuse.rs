//! The fuser adapter: decodes kernel requests into `FsCore` calls and encodes the answers.
//! With `wait.rs`, the only files of the filesystem layer that name fuser types. Every handler runs under
//! `catch_unwind`, so a panic answers EIO (fuser replies EIO for a dropped reply) and the
//! worker thread lives on; every refusal is logged here as one line with path and errno.
//!
//! Requests that change something (writes, closes of written files, creates, removals)
//! may take long: a commit can unpack an image, a task start runs runc, `rm tasks/<id>`
//! waits for an exit. They are served on the worker pool (`workers.rs`) and answered from
//! there; lookups, attributes, listings and reads stay on the request threads, so the
//! mount keeps answering while the slow work runs. So do the opens for writing and the
//! flushes the core can answer without waiting for anything: each job is a thread
//! hand-off, which costs a small change more than its work.

use std::ffi::OsStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};

use super::attr::{Attr, Kind};
use super::errno::{errno_name, FsError};
use super::wait::{spawn_parked_reads, Retry, StreamRegistry, WaitRegistry};
use super::workers::Workers;
use super::error_log::{printable, Refusal};
use super::page_cache::OpenMode;
use super::{FsCore, Ownership, ReadOutcome, Times};
use crate::service::TimeSet;
use crate::service::Event;

/// Most threads serving slow requests at once; more wait in the queue.
const MAX_WORKERS: usize = 64;
/// Most slow requests waiting for a worker; beyond it they are served on request threads.
const MAX_QUEUED: usize = 1024;

/// The `fuser::Filesystem` over an `FsCore`.
pub struct FuseAdapter {
    core: Arc<FsCore>,
    waiters: Arc<WaitRegistry>,
    /// Parked reads and polls of `events`.
    streams: Arc<StreamRegistry>,
    workers: Workers,
    /// Whose filesystem `statfs` reports (the state directory).
    statfs_dir: Option<std::path::PathBuf>,
}

impl FuseAdapter {
    /// Wraps a core; parked `wait/<id>` reads are answered when the core reports exits,
    /// parked `events` reads when the store publishes an event.
    pub fn new(core: Arc<FsCore>) -> std::io::Result<Self> {
        let waiters = Arc::new(WaitRegistry::default());
        let registry = Arc::clone(&waiters);
        core.services().on_event(move |event| {
            if let Event::TaskExited { node, wait_text } = event {
                registry.wake(node.0, wait_text);
            }
        });
        let streams = Arc::new(StreamRegistry::default());
        let news = Arc::clone(&streams);
        core.services().store().on_publish(move |_| news.publish());
        let reader = Arc::clone(&core);
        spawn_parked_reads(Arc::clone(&waiters), Arc::clone(&streams), move |fh, size, uid, pid| {
            retry_stream_read(&reader, fh, size, Caller { uid, pid })
        })?;
        Ok(FuseAdapter { core, waiters, streams, workers: Workers::new(MAX_WORKERS, MAX_QUEUED), statfs_dir: None })
    }

    /// `statfs` (`df`) reports the filesystem holding `dir`.
    pub fn with_statfs_of(mut self, dir: &std::path::Path) -> Self {
        self.statfs_dir = Some(dir.to_path_buf());
        self
    }

    /// Logs a refusal or failure once and turns it into the reply's errno.
    fn refuse(&self, req: &Request, op: &str, path: impl FnOnce() -> String, err: &FsError) -> Errno {
        refuse(&self.core, Caller::of(req), op, path, err)
    }

    /// A close step (`flush`, `release`; `op` names it, and the refusal's log line): answered
    /// on this thread when `now` can do it without waiting for anything, else by `waiting`
    /// on a worker.
    #[allow(clippy::too_many_arguments)]
    fn close_step(
        &self,
        req: &Request,
        (op, logged): (&'static str, &'static str),
        ino: INodeNo,
        fh: FileHandle,
        reply: ReplyEmpty,
        now: fn(&FsCore, u64) -> Option<Result<(), FsError>>,
        waiting: fn(&FsCore, u64) -> Result<(), FsError>,
    ) {
        let caller = Caller::of(req);
        let answer = move |core: &FsCore, reply: ReplyEmpty, done: Result<(), FsError>| match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, logged, || core.path_of(ino.0), &e)),
        };
        guarded(op, || match now(&self.core, fh.0) {
            Some(done) => answer(&self.core, reply, done),
            None => self.offload(op, move |core| answer(core, reply, waiting(core, fh.0))),
        });
    }

    /// Serves a request that may take long on a worker, with its own panic guard.
    fn offload(&self, op: &'static str, job: impl FnOnce(&FsCore) + Send + 'static) {
        let core = Arc::clone(&self.core);
        self.workers.run(op, move || job(&core));
    }
}

/// Who made a request, for `error_log`.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    pid: u32,
}

impl Caller {
    fn of(req: &Request) -> Self {
        Caller { uid: req.uid(), pid: req.pid() }
    }
}

/// Logs a refusal or failure once, keeps it in `error_log` (unless it is routine or
/// repeats one already told), and turns it into the reply's errno.
fn refuse(core: &FsCore, caller: Caller, op: &str, path: impl FnOnce() -> String, err: &FsError) -> Errno {
    let errno = err.errno();
    let quiet = !err.is_internal()
        && (is_routine(op, errno) || err.is_unsettled() || err.is_repeated() || err.is_foreign_xattr());
    if quiet {
        // A shell probing for names refuses itself all the time: no path walk for that.
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("{op} {}: {} ({err})", printable(&path()), errno_name(errno));
        }
        return Errno::from_i32(errno);
    }
    let path = path();
    let (shown, reason) = (printable(&path), printable(&err.to_string()).into_owned());
    if err.is_internal() {
        log::error!("{op} {shown}: {} ({reason})", errno_name(errno));
    } else {
        log::info!("{op} {shown}: {} ({reason})", errno_name(errno));
    }
    core.error_log().record(Refusal { uid: caller.uid, pid: caller.pid, op, path: &path, errno, err });
    Errno::from_i32(errno)
}

/// A parked read of `events` tried again.
fn retry_stream_read(core: &FsCore, fh: u64, size: u32, caller: Caller) -> Retry {
    match core.read(fh, 0, size) {
        Ok(ReadOutcome::Data(bytes)) => Retry::Data(bytes),
        Ok(ReadOutcome::WaitForEvent) => Retry::Wait,
        Ok(ReadOutcome::WaitForExit(_)) => Retry::Failed(Errno::EBADF),
        Err(e) => Retry::Failed(refuse(core, caller, "read", || "events".into(), &e)),
    }
}

/// Answers that tools provoke all the time and that are not anyone's mistake: a shell
/// probing for a name, `ls` asking for SELinux labels.
fn is_routine(op: &str, errno: i32) -> bool {
    matches!((op, errno), ("lookup", libc::ENOENT) | ("getxattr", libc::ENODATA) | ("removexattr", libc::ENODATA))
}

fn guarded(op: &'static str, body: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        log::error!("{op}: internal panic; answered EIO");
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.crtime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time_set(time: TimeOrNow) -> TimeSet {
    match time {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(crate::model::Timestamp::from(t)),
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

fn reply_entry(reply: ReplyEntry, attr: &Attr) {
    reply.entry_with_ttls(&attr.ttl, &attr.entry_ttl, &file_attr(attr), Generation(0));
}

/// Files are opened for direct I/O unless the core says the kernel may cache them: content
/// that streams, grows or is written must reach the daemon at every read and write.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_DIRECT_IO;
/// A cacheable file opened for reading: the pages already in the cache are kept (the core
/// checked they hold this content), and a `close()` does not ask the daemon (a reader
/// commits nothing).
const CACHED_OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

fn open_flags(mode: OpenMode) -> FopenFlags {
    match mode {
        OpenMode::Direct | OpenMode::Live => OPEN_FLAGS,
        OpenMode::Cached => CACHED_OPEN_FLAGS,
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // `>` must arrive as O_TRUNC on open, not as a separate truncate that would first
        // commit an empty value. Kernels without it still work through setattr(size=0).
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC) {
            log::warn!("kernel lacks {missing:?}; truncation arrives as setattr");
        }
        // Listings with each entry's attributes, so `ls -l` needs no lookup per entry. AUTO:
        // the kernel asks for them only while the lister also stats (after the first
        // batch), so `ls -f` and walks that only read names pay nothing for them.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO) {
            log::warn!("kernel lacks {missing:?}; listings carry no attributes");
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || match self.core.lookup(parent.0, name) {
            Ok(attr) => reply_entry(reply, &attr),
            Err(e) => reply.error(self.refuse(req, "lookup", || self.core.child_path(parent.0, name), &e)),
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        guarded("forget", || self.core.forget(ino.0, nlookup));
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || match self.core.getattr(ino.0) {
            Ok(attr) => reply.attr(&attr.ttl, &file_attr(&attr)),
            Err(e) => reply.error(self.refuse(req, "getattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let caller = Caller::of(req);
        let ownership = Ownership { mode, uid, gid };
        let fh = fh.map(|f| f.0);
        let times = Times { atime: atime.map(time_set), mtime: mtime.map(time_set) };
        let job = move |core: &FsCore| match core.setattr(ino.0, size, fh, ownership, times) {
            Ok(attr) => reply.attr(&attr.ttl, &file_attr(&attr)),
            Err(e) => reply.error(refuse(core, caller, "setattr", || core.path_of(ino.0), &e)),
        };
        // A size or times commit (a synced transaction): off the request threads.
        if size.is_some() || !times.is_empty() {
            self.offload("setattr", job);
        } else {
            guarded("setattr", || job(&self.core));
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, _rdev: u32, reply: ReplyEntry) {
        guarded("mknod", || {
            let e = FsError::NotPermitted("special files cannot be made here".into());
            reply.error(self.refuse(req, "mknod", || self.core.child_path(parent.0, name), &e));
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let caller = Caller::of(req);
        let name = name.to_owned();
        self.offload("mkdir", move |core| match core.mkdir(parent.0, &name) {
            Ok(attr) => reply_entry(reply, &attr),
            Err(e) => reply.error(refuse(core, caller, "mkdir", || core.child_path(parent.0, &name), &e)),
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        let name = name.to_owned();
        self.offload("unlink", move |core| match core.unlink(parent.0, &name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "unlink", || core.child_path(parent.0, &name), &e)),
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        let name = name.to_owned();
        self.offload("rmdir", move |core| match core.rmdir(parent.0, &name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "rmdir", || core.child_path(parent.0, &name), &e)),
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        guarded("readlink", || match self.core.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(self.refuse(req, "readlink", || self.core.path_of(ino.0), &e)),
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, _target: &std::path::Path, reply: ReplyEntry) {
        guarded("symlink", || {
            let e = FsError::NotPermitted("symbolic links cannot be made here".into());
            reply.error(self.refuse(req, "symlink", || self.core.child_path(parent.0, link_name), &e));
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let caller = Caller::of(req);
        let (name, newname) = (name.to_owned(), newname.to_owned());
        // A rename onto an attribute file commits it (and a snapshot key may unpack).
        self.offload("rename", move |core| match core.rename(parent.0, &name, newparent.0, &newname, flags.bits()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "rename", || core.child_path(parent.0, &name), &e)),
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        guarded("link", || {
            let e = FsError::NotPermitted("hard links cannot be made here".into());
            reply.error(self.refuse(req, "link", || self.core.path_of(ino.0), &e));
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let caller = Caller::of(req);
        let job = move |core: &FsCore, reply: ReplyOpen| {
            core.open_and_answer(ino.0, flags.0, |opened| match opened {
                Ok((fh, mode)) => reply.opened(FileHandle(fh), open_flags(mode)),
                Err(e) => reply.error(refuse(core, caller, "open", || core.path_of(ino.0), &e)),
            })
        };
        // Opening for writing may take the pin table's lock, which a collection holds for
        // its whole transaction, or create a blob's ingest file: only then on a worker.
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return guarded("open", || match self.core.open_without_waiting(ino.0, flags.0) {
                Some(Ok(fh)) => reply.opened(FileHandle(fh), OPEN_FLAGS),
                Some(Err(e)) => reply.error(self.refuse(req, "open", || self.core.path_of(ino.0), &e)),
                None => self.offload("open", move |core| job(core, reply)),
            });
        }
        // `usage` measures a tree.
        if self.core.open_may_block(ino.0) {
            self.offload("open", move |core| job(core, reply));
        } else {
            guarded("open", || job(&self.core, reply));
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let caller = Caller::of(req);
        if self.core.is_writing(fh.0) {
            self.core.direct_read_of(ino.0);
            // A handle open for writing may be locked by its own long commit (an unpack).
            self.offload("read", move |core| match core.read(fh.0, offset, size) {
                Ok(ReadOutcome::Data(bytes)) => reply.data(&bytes),
                Ok(ReadOutcome::WaitForExit(_)) => reply.error(Errno::EBADF),
                Ok(ReadOutcome::WaitForEvent) => reply.data(&[]),
                Err(e) => reply.error(refuse(core, caller, "read", || core.path_of(ino.0), &e)),
            });
            return;
        }
        if self.core.reads_through_cache(fh.0) {
            // Answered under that inode's page-cache lock (see fs/page_cache.rs).
            guarded("read", || {
                let unanswered = self.core.read_cached(fh.0, offset, size, reply, |reply, read| match read {
                    Ok(bytes) => reply.data(&bytes),
                    Err(e) => reply.error(refuse(&self.core, caller, "read", || self.core.path_of(ino.0), &e)),
                });
                if let Some(reply) = unanswered {
                    reply.error(Errno::EBADF);
                }
            });
            return;
        }
        self.core.direct_read_of(ino.0);
        guarded("read", || match self.core.read(fh.0, offset, size) {
            Ok(ReadOutcome::Data(bytes)) => reply.data(&bytes),
            Ok(ReadOutcome::WaitForExit(node)) => {
                let core = &self.core;
                if let Err(reply) = self.waiters.park(node.0, reply, req.pid(), offset, size, || core.wait_text_of(node).ok().flatten()) {
                    let full = FsError::TooManyWaiters(super::wait::MAX_PARKED_READS);
                    reply.error(self.refuse(req, "read", || self.core.path_of(ino.0), &full));
                }
            }
            // The flags are the file's now (fcntl may have changed them since the open).
            Ok(ReadOutcome::WaitForEvent) if flags.0 & libc::O_NONBLOCK != 0 => reply.data(&[]),
            Ok(ReadOutcome::WaitForEvent) => {
                let core = &self.core;
                let caller = Caller::of(req);
                let retry = || retry_stream_read(core, fh.0, size, caller);
                if let Err(reply) = self.streams.park(fh.0, size, (caller.uid, caller.pid), reply, retry) {
                    let full = FsError::TooManyWaiters(super::wait::MAX_PARKED_READS);
                    reply.error(self.refuse(req, "read", || self.core.path_of(ino.0), &full));
                }
            }
            Err(e) => reply.error(self.refuse(req, "read", || self.core.path_of(ino.0), &e)),
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let caller = Caller::of(req);
        let job = move |core: &FsCore, data: &[u8]| match core.write(fh.0, offset, data) {
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(refuse(core, caller, "write", || core.path_of(ino.0), &e)),
        };
        if self.core.may_block(fh.0) {
            let data = data.to_vec();
            self.offload("write", move |core| job(core, &data));
        } else {
            // Blob bytes go straight to their ingest file: no commit, nothing to wait for.
            guarded("write", || job(&self.core, data));
        }
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // A flush that commits what the last write left, or finds another request holding
        // the handle, goes to a worker.
        self.close_step(req, ("flush", "close"), ino, fh, reply, FsCore::flush_without_waiting, FsCore::flush);
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A release that commits, ends pins (a collection may follow) or starts a task goes
        // to a worker.
        self.close_step(req, ("release", "release"), ino, fh, reply, FsCore::release_without_waiting, FsCore::release);
    }

    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        // Commits what the handle holds; every commit is synced by LMDB before it returns.
        self.offload("fsync", move |core| match core.fsync(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "fsync", || core.path_of(ino.0), &e)),
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guarded("opendir", || match self.core.getattr(ino.0) {
            Ok(attr) if attr.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(self.refuse(req, "opendir", || self.core.path_of(ino.0), &e)),
        });
    }

    fn readdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        guarded("readdir", || {
            let result = self.core.readdir(ino.0, offset, &mut |child, cookie, kind, name| {
                reply.add(INodeNo(child), cookie, file_type(kind), name)
            });
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(self.refuse(req, "readdir", || self.core.path_of(ino.0), &e)),
            }
        });
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        guarded("readdirplus", || {
            let result = self.core.readdirplus(ino.0, offset, &mut |attr, cookie, name| {
                // One TTL for the name and the attributes: the shorter of the two.
                let ttl = attr.ttl.min(attr.entry_ttl);
                reply.add(INodeNo(attr.ino), cookie, name, &ttl, &file_attr(attr), Generation(0))
            });
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(self.refuse(req, "readdirplus", || self.core.path_of(ino.0), &e)),
            }
        });
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // What the mount holds lives in the state directory: `df` shows its filesystem.
        guarded("statfs", || match self.statfs_dir.as_deref().map(nix::sys::statvfs::statvfs) {
            Some(Ok(s)) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                u32::try_from(s.block_size()).unwrap_or(4096),
                255,
                u32::try_from(s.fragment_size()).unwrap_or(4096),
            ),
            Some(Err(e)) => {
                log::warn!("statfs of the state directory: {e}");
                reply.error(Errno::from_i32(e as i32));
            }
            None => reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096),
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let caller = Caller::of(req);
        let (name, value) = (name.to_owned(), value.to_vec());
        self.offload("setxattr", move |core| match core.setxattr(ino.0, &name, &value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "setxattr", || core.path_of(ino.0), &e)),
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        guarded("getxattr", || match self.core.getxattr(ino.0, name) {
            Ok(value) => reply_xattr(reply, size, &value),
            Err(e) => reply.error(self.refuse(req, "getxattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        guarded("listxattr", || match self.core.listxattr(ino.0) {
            Ok(list) => reply_xattr(reply, size, &list),
            Err(e) => reply.error(self.refuse(req, "listxattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        let name = name.to_owned();
        self.offload("removexattr", move |core| match core.removexattr(ino.0, &name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(core, caller, "removexattr", || core.path_of(ino.0), &e)),
        });
    }

    fn poll(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        notifier: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        // Ready for what the file allows; the kernel keeps only what the caller asked.
        let readable = PollEvents::POLLIN | PollEvents::POLLRDNORM;
        guarded("poll", || match self.core.stream_ready(fh.0) {
            // Any other file never makes a read or write wait.
            Ok(None) => reply.poll(readable | PollEvents::POLLOUT | PollEvents::POLLWRNORM),
            Ok(Some(true)) => reply.poll(readable),
            Ok(Some(false)) if !flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY) => reply.poll(PollEvents::empty()),
            Ok(Some(false)) => {
                let ready = || matches!(self.core.stream_ready(fh.0), Ok(Some(true)));
                let now = self.streams.watch(fh.0, notifier, ready);
                reply.poll(if now { readable } else { PollEvents::empty() });
            }
            Err(e) => reply.error(self.refuse(req, "poll", || self.core.path_of(ino.0), &e)),
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let caller = Caller::of(req);
        let name = name.to_owned();
        self.offload("create", move |core| match core.create(parent.0, &name, flags) {
            Ok((attr, fh)) => reply.created(&attr.ttl, &file_attr(&attr), Generation(0), FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(refuse(core, caller, "create", || core.child_path(parent.0, &name), &e)),
        });
    }
}

/// The xattr size protocol: size 0 asks for the length; a short buffer is ERANGE.
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

