//! A task's views: `logs/<id>/stdout|stderr` (the host log files, read as they grow) and
//! `wait/<id>` (its exit status once it stopped; reads before that are parked by the
//! adapter, never answered from a worker that waits).

use super::attr::{Attr, READ_ONLY_FILE_MODE};
use super::content::{Loaded, Object};
use super::errno::FsError;
use super::ino::{Ino, Stream};
use super::{load_node, FsCore, Result};
use crate::store::NodeId;

impl FsCore {
    /// Attributes of `logs/<id>/stdout|stderr`: the log file's own size and mtime.
    pub(super) fn log_attr(&self, task: &Loaded, stream: Stream) -> Result<Attr> {
        let path = log_path(task, stream)?;
        let (created, updated) = task.dir_times();
        let (size, mtime) = match std::fs::metadata(&path) {
            Ok(m) => (m.len() as usize, m.modified().unwrap_or(updated)),
            Err(_) => (0, updated),
        };
        Ok(Attr::file(Ino::Log(task.node.id, stream), size, READ_ONLY_FILE_MODE, created, mtime))
    }

    /// Opens a task's log for reading.
    pub(super) fn open_log(&self, node: NodeId, stream: Stream) -> Result<std::fs::File> {
        let task = load_node(&self.store().read()?, node)?;
        let path = log_path(&task, stream)?;
        std::fs::File::open(&path).map_err(|e| FsError::Host(format!("{}: {e}", path.display())))
    }

    /// What `wait/<id>` shows: `None` while the task has not stopped; a task deleted
    /// meanwhile answers `unknown` (for the adapter's parked reads).
    pub fn wait_text_of(&self, node: NodeId) -> Result<Option<String>> {
        Ok(self.services.wait_text(node)?)
    }
}

fn log_path(task: &Loaded, stream: Stream) -> Result<std::path::PathBuf> {
    let Object::Task(t) = &task.object else { return Err(FsError::NotFound) };
    Ok(match stream {
        Stream::Stdout => t.stdout.clone().into(),
        Stream::Stderr => t.stderr.clone().into(),
    })
}
