//! Host file operations shared by layer application and tree copying. None follows a
//! final symlink, and every error names the path it failed on (as a person reads it,
//! also when the call went through a held directory, see `at.rs`).

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::{Result, SnapshotError};

/// Wraps an I/O error as "<doing> <path>: <error>".
pub(crate) fn io_error(doing: &str, path: &Path, e: io::Error) -> SnapshotError {
    SnapshotError::io(format!("{doing} {}", super::at::shown(path).display()), e)
}

/// `lstat`, with `None` for a path that does not exist.
pub(crate) fn lstat(path: &Path) -> Result<Option<Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("inspecting", path, e)),
    }
}

/// Creates directory `path`; its mode is set later, once it is owned right.
pub(crate) fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| io_error("creating directory", path, e))
}

/// Sets the owner of `path` itself, not of a symlink's target.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| io_error("changing owner of", path, e))
}

/// Sets the permission bits (setuid, setgid and sticky included). Call it after
/// [`lchown`]: a change of owner clears setuid and setgid. A symlink found at `path`
/// (swapped in since it was made) is refused, not followed.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<()> {
    let mode = Mode::from_bits_truncate((mode & 0o7777) as libc::mode_t);
    nix::sys::stat::fchmodat(AT_FDCWD, path, mode, FchmodatFlags::NoFollowSymlink)
        .map_err(|e| io_error("changing mode of", path, e.into()))
}

/// Access and modification times of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) atime: TimeSpec,
    pub(crate) mtime: TimeSpec,
}

impl Times {
    /// The times an inode has now.
    pub(crate) fn of(meta: &Metadata) -> Times {
        Times {
            atime: TimeSpec::new(meta.atime(), meta.atime_nsec()),
            mtime: TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        }
    }

    /// Both times set to `mtime`, as tar entries carry only that one.
    pub(crate) fn both(mtime: TimeSpec) -> Times {
        Times { atime: mtime, mtime }
    }
}

/// Sets the times of `path` itself, symlinks included.
pub(crate) fn set_times(path: &Path, times: Times) -> Result<()> {
    nix::sys::stat::utimensat(AT_FDCWD, path, &times.atime, &times.mtime, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_error("setting times of", path, e.into()))
}

/// Makes a device node or FIFO; `kind` is one of `SFlag::S_IFCHR`, `S_IFBLK`, `S_IFIFO`.
pub(crate) fn mknod(path: &Path, kind: SFlag, rdev: u64) -> Result<()> {
    nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(0o600), rdev)
        .map_err(|e| io_error("creating node", path, e.into()))
}

/// The `mknod` kind of a device or FIFO, `None` for anything else.
pub(crate) fn node_kind(meta: &Metadata) -> Option<SFlag> {
    let format = SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
    [SFlag::S_IFCHR, SFlag::S_IFBLK, SFlag::S_IFIFO].into_iter().find(|k| *k == format)
}
