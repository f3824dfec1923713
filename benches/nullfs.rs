//! The benchmark's floor: a FUSE filesystem that does nothing but answer, served by the
//! same fuser version and settings as ctrfs (request threads, direct I/O), so that the
//! client's operations on it cost the kernel round trips alone. It remembers which
//! container directories exist (so listings and lookups answer as ctrfs's would) and
//! nothing else: every file reads as 200 bytes, every write succeeds.
//!
//! `nullfs MOUNTPOINT`: serves until unmounted. Run by scripts/bench.sh; not a test.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request,
    Session, WriteFlags,
};

const ROOT: u64 = 1;
const CONTAINERS: u64 = 2;
const FILE_SIZE: u64 = 200;
const TTL: Duration = Duration::from_secs(1);
const FILES: [&str; 3] = ["spec", "labels", "info.json"];

/// Container name → directory inode, and back (listings go in inode order, the cookie
/// being the inode); a file of directory `d` is `d + 1 + slot`.
#[derive(Default)]
struct NullFs {
    dirs: Mutex<Dirs>,
}

#[derive(Default)]
struct Dirs {
    by_name: std::collections::HashMap<String, u64>,
    by_ino: BTreeMap<u64, String>,
    next: u64,
}

fn attr(ino: u64, dir: bool) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: if dir { 0 } else { FILE_SIZE },
        blocks: 1,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: if dir { FileType::Directory } else { FileType::RegularFile },
        perm: if dir { 0o755 } else { 0o644 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn is_dir(ino: u64) -> bool {
    ino == ROOT || ino == CONTAINERS || ino % 4 == 0
}

impl NullFs {
    fn child(&self, parent: u64, name: &OsStr) -> Option<(u64, bool)> {
        let name = name.to_str()?;
        match parent {
            ROOT if name == "containers" => Some((CONTAINERS, true)),
            CONTAINERS => self.dirs.lock().unwrap().by_name.get(name).map(|ino| (*ino, true)),
            dir if dir % 4 == 0 => FILES.iter().position(|f| *f == name).map(|slot| (dir + 1 + slot as u64, false)),
            _ => None,
        }
    }
}

impl Filesystem for NullFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent.0, name) {
            Some((ino, dir)) => reply.entry(&TTL, &attr(ino, dir), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.attr(&Duration::ZERO, &attr(ino.0, is_dir(ino.0)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.attr(&Duration::ZERO, &attr(ino.0, is_dir(ino.0)));
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        if parent.0 != CONTAINERS {
            return reply.error(Errno::EPERM);
        }
        let mut dirs = self.dirs.lock().unwrap();
        dirs.next += 1;
        let ino = (dirs.next + 1) * 4;
        let name = name.to_string_lossy().into_owned();
        dirs.by_name.insert(name.clone(), ino);
        dirs.by_ino.insert(ino, name);
        reply.entry(&TTL, &attr(ino, true), Generation(0));
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut dirs = self.dirs.lock().unwrap();
        if let Some(ino) = dirs.by_name.remove(&*name.to_string_lossy()) {
            dirs.by_ino.remove(&ino);
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let bytes = [b'x'; FILE_SIZE as usize];
        let start = (offset as usize).min(bytes.len());
        let end = (start + size as usize).min(bytes.len());
        reply.data(&bytes[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino.0 != CONTAINERS {
            return reply.ok();
        }
        // Cookies are directory inodes, so a listing resumes without state, as ctrfs's do.
        for (dir, name) in self.dirs.lock().unwrap().by_ino.range(offset + 1..) {
            if reply.add(INodeNo(*dir), *dir, FileType::Directory, name) {
                break;
            }
        }
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.child(parent.0, name) {
            Some((ino, false)) => {
                reply.created(&TTL, &attr(ino, false), Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            _ => reply.error(Errno::EPERM),
        }
    }
}

fn main() {
    // `cargo test --all-targets` runs benchmarks without arguments, `cargo bench` with
    // `--bench`: nothing to measure then.
    if std::env::args().nth(1).is_none_or(|a| a.starts_with("--")) {
        eprintln!("usage: nullfs MOUNTPOINT (run by scripts/bench.sh)");
        return;
    }
    let mountpoint = std::env::args().nth(1).expect("usage: nullfs MOUNTPOINT");
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("nullfs".into()), MountOption::DefaultPermissions];
    config.n_threads = Some(4);
    config.clone_fd = true;
    let session = Session::new(NullFs::default(), &mountpoint, &config).expect("mount");
    println!("mounted");
    session.run().expect("serve");
}
