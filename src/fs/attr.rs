//! File attributes and the caching policy the kernel is told.
//!
//! Sizes are exact (the content is rendered to measure it), so `stat` never lies. Files
//! whose content changes without a change the daemon announces are opened with direct
//! I/O and their attributes are never cached; the others (`page_cache.rs`) are cached,
//! and every change the daemon makes to them invalidates them.

use std::time::{Duration, SystemTime};

use super::ino::Ino;
use crate::model::SetTimes;

/// How long the kernel may trust a name → inode mapping. Names change only through this
/// mount (which updates the kernel's dentries itself), so a short positive TTL is safe.
pub const ENTRY_TTL: Duration = Duration::from_secs(1);
/// How long the kernel may trust a fixed directory's attributes (root, images/,
/// containers/...): they change only when entries are added or removed through this mount,
/// and the kernel drops a directory's cached attributes itself on every such change.
pub const FIXED_DIR_ATTR_TTL: Duration = Duration::from_secs(1);
/// Attributes of everything else that changes are not cached by default: logs grow, a
/// snapshot's usage is measured, a task's status changes under the runtime.
pub const OBJECT_ATTR_TTL: Duration = Duration::ZERO;
/// Attributes of image and container directories and of their record's files: their
/// times and sizes change through other inodes (a write to `labels` moves the container
/// directory's mtime and `info.json`'s size, a label set as an xattr changes `labels`),
/// but only by requests on that object, each of which invalidates every inode of it the
/// kernel holds before it answers (`FsCore::changed`). The TTL only bounds what a change
/// the daemon failed to announce could leave stale.
pub const CACHED_ATTR_TTL: Duration = Duration::from_secs(1);

/// Permission bits of a writable file.
pub const FILE_MODE: u16 = 0o644;
/// Permission bits of a read-only file.
pub const READ_ONLY_FILE_MODE: u16 = 0o444;
/// Permission bits of a file only its owner (root) may read.
pub const OWNER_READ_ONLY_MODE: u16 = 0o400;
/// Permission bits of a directory.
pub const DIR_MODE: u16 = 0o755;
/// Permission bits of a symbolic link (never checked; what `ls -l` shows).
pub const LINK_MODE: u16 = 0o777;

/// Directory, regular file or symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (only in query directories, to the object that matched).
    Symlink,
}

/// Query results change with every commit to any object, which this mount does not
/// announce per query: names in and below query directories are never cached.
pub const QUERY_ENTRY_TTL: Duration = Duration::ZERO;

/// The attributes of one inode, in this layer's own terms (the adapter converts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Directory or file.
    pub kind: Kind,
    /// Exact size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits.
    pub perm: u16,
    /// Link count; 0 once the object was deleted while the kernel still holds it.
    pub nlink: u32,
    /// Creation time of the record.
    pub crtime: SystemTime,
    /// Last change of the content, or the time set on the file.
    pub mtime: SystemTime,
    /// Last access: the time set on the file, else `mtime` (reads are not recorded).
    pub atime: SystemTime,
    /// Last change of the content or of the times.
    pub ctime: SystemTime,
    /// How long the kernel may cache these attributes.
    pub ttl: Duration,
    /// How long the kernel may trust the name that led to this inode.
    pub entry_ttl: Duration,
}

impl Attr {
    /// A directory's attributes; `fixed` for the directories that are not objects.
    pub fn dir(ino: Ino, crtime: SystemTime, mtime: SystemTime, fixed: bool) -> Self {
        let ttl = if fixed { FIXED_DIR_ATTR_TTL } else { OBJECT_ATTR_TTL };
        Attr { ino: ino.number(), kind: Kind::Dir, size: 0, perm: DIR_MODE, nlink: 2, crtime, mtime, atime: mtime, ctime: mtime, ttl, entry_ttl: ENTRY_TTL }
    }

    /// A file's attributes.
    pub fn file(ino: Ino, size: usize, perm: u16, crtime: SystemTime, mtime: SystemTime) -> Self {
        let (atime, ctime) = (mtime, mtime);
        Attr { ino: ino.number(), kind: Kind::File, size: size as u64, perm, nlink: 1, crtime, mtime, atime, ctime, ttl: OBJECT_ATTR_TTL, entry_ttl: ENTRY_TTL }
    }

    /// A query directory's attributes (never cached, nor the name that led to it).
    pub fn query_dir(ino: u64, crtime: SystemTime, mtime: SystemTime) -> Self {
        let entry_ttl = QUERY_ENTRY_TTL;
        Attr { ino, kind: Kind::Dir, size: 0, perm: DIR_MODE, nlink: 2, crtime, mtime, atime: mtime, ctime: mtime, ttl: OBJECT_ATTR_TTL, entry_ttl }
    }

    /// A symbolic link's attributes: its size is the length of the path it holds.
    pub fn symlink(ino: u64, target_len: usize, crtime: SystemTime, mtime: SystemTime) -> Self {
        let (atime, ctime, size) = (mtime, mtime, target_len as u64);
        let (ttl, entry_ttl) = (OBJECT_ATTR_TTL, QUERY_ENTRY_TTL);
        Attr { ino, kind: Kind::Symlink, size, perm: LINK_MODE, nlink: 1, crtime, mtime, atime, ctime, ttl, entry_ttl }
    }

    /// These attributes, cached for `CACHED_ATTR_TTL`.
    pub fn cached(mut self) -> Self {
        self.ttl = CACHED_ATTR_TTL;
        self
    }

    /// These attributes with the times set on the file with `utimensat`, if any: they
    /// replace its atime and mtime, and its ctime is the later of its change and the setting.
    pub fn with_set_times(mut self, set: Option<&SetTimes>) -> Self {
        if let Some(set) = set {
            self.ctime = self.mtime.max(set.ctime.to_system_time());
            self.atime = set.atime.to_system_time();
            self.mtime = set.mtime.to_system_time();
        }
        self
    }
}
