//! `utimensat` on the tree: the times `stat` shows for a file or directory, kept by the
//! services with the node until the value they were set on changes.

use super::attr::Attr;
use super::errno::FsError;
use super::ino::Ino;
use super::{is_read_only, load_node, FsCore, Result};
use crate::model::{Timestamp, NODE_ITSELF};
use crate::service::TimeSet;

/// The times a `setattr` asks for; `None` leaves that one as `stat` shows it
/// (`UTIME_OMIT`, or `touch -m`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// The access time.
    pub atime: Option<TimeSet>,
    /// The modification time.
    pub mtime: Option<TimeSet>,
}

impl Times {
    /// Whether no time is asked for.
    pub fn is_empty(&self) -> bool {
        self.atime.is_none() && self.mtime.is_none()
    }

    /// The modification time asked for, as a time (`UTIME_NOW` is now).
    pub fn mtime(&self) -> Option<std::time::SystemTime> {
        self.mtime.map(|set| match set {
            TimeSet::Now => std::time::SystemTime::now(),
            TimeSet::At(at) => at.to_system_time(),
        })
    }
}

impl FsCore {
    /// Sets the times of `ino`: an attribute file that can be written (read-only files and
    /// task views refuse, `EACCES`, as they refuse writes), an object or fixed directory,
    /// a blob or a task file. Who may do it the kernel has checked (`default_permissions`).
    pub(super) fn set_times(&self, ino: u64, times: Times) -> Result<Attr> {
        let (node, key) = match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::File(node, file) => {
                let loaded = load_node(&self.store().read()?, node)?;
                if !loaded.files().contains(&file) {
                    return Err(FsError::NotFound);
                }
                if is_read_only(loaded.node.kind, file) {
                    return Err(FsError::ReadOnly(file.name()));
                }
                (node, file.name())
            }
            Ino::Node(node) => (node, NODE_ITSELF),
            Ino::LogDir(_) | Ino::Log(..) | Ino::Wait(_) => return Err(FsError::ReadOnly("a task view")),
            Ino::RootFile(file) => return Err(FsError::ReadOnly(file.name())),
        };
        let shown = self.getattr(ino)?;
        let atime = times.atime.unwrap_or(TimeSet::At(Timestamp::from(shown.atime)));
        let mtime = times.mtime.unwrap_or(TimeSet::At(Timestamp::from(shown.mtime)));
        self.services.set_times(node, key, atime, mtime)?;
        self.changed(node);
        self.getattr(ino)
    }
}
