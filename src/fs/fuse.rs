//! The fuser adapter: decodes kernel requests into `FsCore` calls and encodes the answers.
//! With `wait.rs`, the only files of the filesystem layer that name fuser types. Every handler runs under
//! `catch_unwind`, so a panic answers EIO (fuser replies EIO for a dropped reply) and the
//! worker thread lives on; every refusal is logged here as one line with path and errno.

use std::ffi::OsStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::attr::{Attr, Kind, ENTRY_TTL};
use super::errno::{errno_name, FsError};
use super::wait::WaitRegistry;
use super::{FsCore, Ownership, ReadOutcome, TaskEvent};

/// The `fuser::Filesystem` over an `FsCore`.
pub struct FuseAdapter {
    core: Arc<FsCore>,
    waiters: Arc<WaitRegistry>,
}

impl FuseAdapter {
    /// Wraps a core; parked `wait/<id>` reads are answered when the core reports exits.
    pub fn new(core: Arc<FsCore>) -> std::io::Result<Self> {
        let waiters = Arc::new(WaitRegistry::default());
        let registry = Arc::clone(&waiters);
        core.on_task_event(move |event| {
            if let TaskEvent::Exited { node, wait_text, .. } = event {
                registry.wake(node.0, wait_text);
            }
        });
        waiters.spawn_reaper()?;
        Ok(FuseAdapter { core, waiters })
    }

    /// Logs a refusal or failure once and turns it into the reply's errno.
    fn refuse(&self, op: &str, path: impl FnOnce() -> String, err: &FsError) -> Errno {
        let errno = err.errno();
        if err.is_internal() {
            log::error!("{op} {}: {} ({err})", path(), errno_name(errno));
        } else if is_routine(op, errno) || matches!(err, FsError::Unsettled(_)) {
            log::debug!("{op} {}: {} ({err})", path(), errno_name(errno));
        } else {
            log::info!("{op} {}: {} ({err})", path(), errno_name(errno));
        }
        Errno::from_i32(errno)
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
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.mtime,
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

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
    }
}

fn reply_entry(reply: ReplyEntry, attr: &Attr) {
    reply.entry_with_ttls(&attr.ttl, &ENTRY_TTL, &file_attr(attr), Generation(0));
}

/// Every file is opened for direct I/O: content is generated, so the kernel must neither
/// cache pages nor size reads from a possibly stale `st_size`.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_DIRECT_IO;

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // `>` must arrive as O_TRUNC on open, not as a separate truncate that would first
        // commit an empty value. Kernels without it still work through setattr(size=0).
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC) {
            log::warn!("kernel lacks {missing:?}; truncation arrives as setattr");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || match self.core.lookup(parent.0, name) {
            Ok(attr) => reply_entry(reply, &attr),
            Err(e) => reply.error(self.refuse("lookup", || self.core.child_path(parent.0, name), &e)),
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        guarded("forget", || self.core.forget(ino.0, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || match self.core.getattr(ino.0) {
            Ok(attr) => reply.attr(&attr.ttl, &file_attr(&attr)),
            Err(e) => reply.error(self.refuse("getattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        guarded("setattr", || {
            let ownership = Ownership { mode, uid, gid };
            match self.core.setattr(ino.0, size, fh.map(|f| f.0), ownership) {
                Ok(attr) => reply.attr(&attr.ttl, &file_attr(&attr)),
                Err(e) => reply.error(self.refuse("setattr", || self.core.path_of(ino.0), &e)),
            }
        });
    }

    fn mknod(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, _rdev: u32, reply: ReplyEntry) {
        guarded("mknod", || {
            let e = FsError::NotPermitted("special files cannot be made here".into());
            reply.error(self.refuse("mknod", || self.core.child_path(parent.0, name), &e));
        });
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        guarded("mkdir", || match self.core.mkdir(parent.0, name) {
            Ok(attr) => reply_entry(reply, &attr),
            Err(e) => reply.error(self.refuse("mkdir", || self.core.child_path(parent.0, name), &e)),
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("unlink", || match self.core.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("unlink", || self.core.child_path(parent.0, name), &e)),
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("rmdir", || match self.core.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("rmdir", || self.core.child_path(parent.0, name), &e)),
        });
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, _target: &std::path::Path, reply: ReplyEntry) {
        guarded("symlink", || {
            let e = FsError::NotPermitted("symbolic links cannot be made here".into());
            reply.error(self.refuse("symlink", || self.core.child_path(parent.0, link_name), &e));
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        guarded("rename", || {
            let e = FsError::NotPermitted("names are identities (containerd ids cannot change); rename is refused".into());
            reply.error(self.refuse("rename", || self.core.child_path(parent.0, name), &e));
        });
    }

    fn link(&self, _req: &Request, ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        guarded("link", || {
            let e = FsError::NotPermitted("hard links cannot be made here".into());
            reply.error(self.refuse("link", || self.core.path_of(ino.0), &e));
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        guarded("open", || match self.core.open(ino.0, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(self.refuse("open", || self.core.path_of(ino.0), &e)),
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        guarded("read", || match self.core.read(fh.0, offset, size) {
            Ok(ReadOutcome::Data(bytes)) => reply.data(&bytes),
            Ok(ReadOutcome::WaitForExit(node)) => {
                let core = &self.core;
                self.waiters.park(node.0, reply, req.pid(), offset, size, || core.wait_text_of(node).ok().flatten());
            }
            Err(e) => reply.error(self.refuse("read", || self.core.path_of(ino.0), &e)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        guarded("write", || match self.core.write(fh.0, offset, data) {
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(self.refuse("write", || self.core.path_of(ino.0), &e)),
        });
    }

    fn flush(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        guarded("flush", || match self.core.flush(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("close", || self.core.path_of(ino.0), &e)),
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        guarded("release", || match self.core.release(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("release", || self.core.path_of(ino.0), &e)),
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Every commit is already synced by LMDB before it is acknowledged.
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guarded("opendir", || match self.core.getattr(ino.0) {
            Ok(attr) if attr.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(self.refuse("opendir", || self.core.path_of(ino.0), &e)),
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        guarded("readdir", || {
            let result = self.core.readdir(ino.0, offset, &mut |child, cookie, kind, name| {
                reply.add(INodeNo(child), cookie, file_type(kind), name)
            });
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(self.refuse("readdir", || self.core.path_of(ino.0), &e)),
            }
        });
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        guarded("setxattr", || match self.core.setxattr(ino.0, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("setxattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        guarded("getxattr", || match self.core.getxattr(ino.0, name) {
            Ok(value) => reply_xattr(reply, size, &value),
            Err(e) => reply.error(self.refuse("getxattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        guarded("listxattr", || match self.core.listxattr(ino.0) {
            Ok(list) => reply_xattr(reply, size, &list),
            Err(e) => reply.error(self.refuse("listxattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("removexattr", || match self.core.removexattr(ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.refuse("removexattr", || self.core.path_of(ino.0), &e)),
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        guarded("create", || match self.core.create(parent.0, name, flags) {
            Ok((attr, fh)) => reply.created(&attr.ttl, &file_attr(&attr), Generation(0), FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(self.refuse("create", || self.core.child_path(parent.0, name), &e)),
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

