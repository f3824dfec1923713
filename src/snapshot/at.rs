//! Directories held by descriptor, so that walking, measuring, removing or unpacking a
//! tree never resolves a path a planted (or concurrently swapped-in) symlink could
//! redirect outside it.
//!
//! A directory is opened from its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`;
//! an entry in it is then named `/proc/self/fd/<dir>/<name>`: one component below a
//! directory already held, passed to calls that do not follow a final symlink (`lstat`,
//! `l*xattr`, `unlink`, `mkdir`, `mknod`, `O_NOFOLLOW` opens, `AT_SYMLINK_NOFOLLOW`). The
//! kernel resolves the descriptor link to the very directory held, wherever it was moved.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::ops::io_error;
use super::Result;

const FD_DIR: &str = "/proc/self/fd";

/// An open directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens directory `path`, refusing a final symlink (`ELOOP`) or a non-directory
    /// (`ENOTDIR`). Earlier components of `path` are trusted: they are ours.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir { fd: file.into() })
    }

    /// Opens the subdirectory `name` (one component, or `..`), never through a symlink.
    pub(crate) fn child(&self, name: &OsStr) -> io::Result<Dir> {
        if name.as_bytes().contains(&b'/') || name.is_empty() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        Dir::open(&self.entry(name))
    }

    /// Another descriptor of the same directory.
    pub(crate) fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir { fd: self.fd.try_clone()? })
    }

    /// The path that names entry `name` of this directory for calls that do not follow
    /// a final symlink. Valid while `self` is open.
    pub(crate) fn entry(&self, name: &OsStr) -> PathBuf {
        let mut path = PathBuf::from(format!("{FD_DIR}/{}", self.fd.as_raw_fd()));
        path.push(name);
        path
    }

    /// The directory itself (`<fd>/.`), for calls that take a path.
    pub(crate) fn itself(&self) -> PathBuf {
        self.entry(OsStr::new("."))
    }

    /// Device and inode number: what a directory reached again by `..` must match.
    pub(crate) fn id(&self) -> io::Result<(u64, u64)> {
        let meta = fs::metadata(self.itself())?;
        Ok((meta.dev(), meta.ino()))
    }

    /// The entries, with whether each is a directory (its own type: a symlink is not).
    pub(crate) fn entries(&self) -> io::Result<Vec<(OsString, bool)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(self.itself())? {
            let entry = entry?;
            entries.push((entry.file_name(), entry.file_type()?.is_dir()));
        }
        Ok(entries)
    }
}

/// A path as a person should read it: `/proc/self/fd/<n>/rest` becomes the directory's
/// current path followed by `rest`. Anything else is returned as it is.
pub(crate) fn shown(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix(FD_DIR) else { return path.to_path_buf() };
    let mut parts = rest.components();
    let Some(fd) = parts.next() else { return path.to_path_buf() };
    match fs::read_link(Path::new(FD_DIR).join(fd)) {
        Ok(dir) => {
            let rest = parts.as_path();
            if rest == Path::new(".") || rest.as_os_str().is_empty() {
                dir
            } else {
                dir.join(rest)
            }
        }
        Err(_) => path.to_path_buf(),
    }
}

/// What a depth-first walk does at each directory.
pub(crate) trait Visit {
    /// Called on entering directory `dir`; returns the names of the subdirectories to
    /// walk into.
    fn enter(&mut self, dir: &Dir) -> Result<Vec<OsString>>;

    /// Called once everything below `dir` was walked. `parent` holds it as `name`; it is
    /// `None` for the walk's root.
    fn leave(&mut self, parent: Option<&Dir>, name: &OsStr, dir: Dir) -> Result<()>;
}

/// One directory on the walk's path from the root: its identity, its name in its parent
/// and the subdirectories still to walk.
struct Level {
    id: (u64, u64),
    name: OsString,
    pending: Vec<OsString>,
}

/// Walks the tree of directory `root` depth first, holding one directory descriptor at a
/// time however deep the tree is: a subdirectory is opened from its parent without
/// following a symlink, and the way back up is `..`, checked to be the directory the walk
/// came from. A subdirectory that is no longer one when it is reached (removed, or
/// swapped for a symlink) is skipped; a tree moved under the walk is an error.
pub(crate) fn walk(root: Dir, visit: &mut impl Visit) -> Result<()> {
    let id = |dir: &Dir| dir.id().map_err(|e| io_error("inspecting", &dir.itself(), e));
    let pending = visit.enter(&root)?;
    let mut levels = vec![Level { id: id(&root)?, name: OsString::new(), pending }];
    let mut current = root;
    while let Some(level) = levels.last_mut() {
        if let Some(name) = level.pending.pop() {
            match current.child(&name) {
                Ok(child) => {
                    let pending = visit.enter(&child)?;
                    levels.push(Level { id: id(&child)?, name, pending });
                    current = child;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => {}
                Err(e) => return Err(io_error("opening", &current.entry(&name), e)),
            }
            continue;
        }
        let Some(done) = levels.pop() else { break };
        let Some(parent_level) = levels.last() else {
            return visit.leave(None, &done.name, current);
        };
        let parent = current.child(OsStr::new("..")).map_err(|e| io_error("opening", &current.entry(OsStr::new("..")), e))?;
        if id(&parent)? != parent_level.id {
            let moved = io::Error::other("moved during the walk");
            return Err(io_error("walking back up from", &current.itself(), moved));
        }
        visit.leave(Some(&parent), &done.name, current)?;
        current = parent;
    }
    Ok(())
}
