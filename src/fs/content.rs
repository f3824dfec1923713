//! What each attribute file shows: the record rendered to bytes. The same rendering gives
//! `st_size`, so sizes always equal what `cat` returns.

use std::time::SystemTime;

use super::ino::{AttrFile, CONTAINER_FILES, IMAGE_FILES, SNAPSHOT_FILES};
use crate::model::{Blob, Container, ContainerField, Image, Snapshot, Task, Timestamp};
use crate::store::{Node, NodeKind, Result, StoreRead};

/// A directory node together with the record it shows.
#[derive(Debug, Clone)]
pub enum Object {
    /// An image directory; `None` while it is only a name prefix.
    Image(Option<Box<Image>>),
    /// A container.
    Container(Box<Container>),
    /// A task (the file `tasks/<id>`).
    Task(Box<Task>),
    /// A blob (the file `content/<alg>/<hex>`).
    Blob(Box<Blob>),
    /// A snapshot directory.
    Snapshot(Box<Snapshot>),
    /// A fixed directory (root, images/, containers/, tasks/, logs/, wait/).
    Fixed,
}

/// A node and its record, read in one transaction.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The node.
    pub node: Node,
    /// Its record.
    pub object: Object,
}

impl Loaded {
    /// Reads a node and its record.
    pub fn read(reader: &impl StoreRead, node: Node) -> Result<Loaded> {
        let object = match node.kind {
            NodeKind::ImageDir => Object::Image(reader.image(node.id)?.map(Box::new)),
            NodeKind::Container => match reader.container(node.id)? {
                Some(c) => Object::Container(Box::new(c)),
                None => {
                    return Err(crate::store::StoreError::Corrupt(format!("container node {} has no record", node.id.0)))
                }
            },
            NodeKind::Task => match reader.task(node.id)? {
                Some(t) => Object::Task(Box::new(t)),
                None => return Err(crate::store::StoreError::Corrupt(format!("task node {} has no record", node.id.0))),
            },
            NodeKind::Blob => match reader.blob(node.id)? {
                Some(b) => Object::Blob(Box::new(b)),
                None => return Err(crate::store::StoreError::Corrupt(format!("blob node {} has no record", node.id.0))),
            },
            NodeKind::Snapshot => match reader.snapshot(node.id)? {
                Some(s) => Object::Snapshot(Box::new(s)),
                None => {
                    return Err(crate::store::StoreError::Corrupt(format!("snapshot node {} has no record", node.id.0)))
                }
            },
            NodeKind::Root
            | NodeKind::ContentDir
            | NodeKind::DigestDir
            | NodeKind::SnapshotsDir
            | NodeKind::ImagesDir
            | NodeKind::ContainersDir
            | NodeKind::TasksDir
            | NodeKind::LogsDir
            | NodeKind::WaitDir => Object::Fixed,
        };
        Ok(Loaded { node, object })
    }

    /// The attribute files a directory of this kind can have, in listing order (see
    /// `FsCore::present` for which it has now).
    pub fn files(&self) -> &'static [AttrFile] {
        match &self.object {
            Object::Image(_) => &IMAGE_FILES,
            Object::Container(_) => &CONTAINER_FILES,
            Object::Snapshot(_) => &SNAPSHOT_FILES,
            Object::Task(_) | Object::Blob(_) | Object::Fixed => &[],
        }
    }

    /// Whether this kind of directory can have the attribute file `name`.
    pub fn file_named(&self, name: &str) -> Option<AttrFile> {
        self.files().iter().copied().find(|f| f.name() == name)
    }

    /// The content of one of its files from the record alone, or `None` when it has no
    /// such file now. A container's `spec` and `info.json`, kept beside the record, and
    /// the snapshot files that depend on more than the record (`mounts`, `usage`,
    /// `references`) are rendered by the filesystem, which has the store and snapshotter.
    pub fn render(&self, file: AttrFile) -> Option<Vec<u8>> {
        if !self.files().contains(&file) {
            return None;
        }
        let text = match &self.object {
            Object::Image(Some(image)) => match (file, &image.target) {
                (AttrFile::Target, Some(_)) => image.target_file(),
                (AttrFile::Labels, _) => image.labels.render(),
                (AttrFile::Info, Some(_)) => image.info_json(),
                _ => return None,
            },
            // `spec` and `info.json` need the spec, kept beside the record: see
            // `FsCore::file_content`.
            Object::Container(c) => match file {
                AttrFile::Image => one_line(c.field(ContainerField::Image)),
                AttrFile::Snapshotter => one_line(c.field(ContainerField::Snapshotter)),
                AttrFile::Snapshot => one_line(c.field(ContainerField::Snapshot)),
                AttrFile::Runtime => one_line(c.field(ContainerField::Runtime)),
                AttrFile::Labels => c.labels.render(),
                _ => return None,
            },
            Object::Snapshot(snapshot) => match file {
                AttrFile::SnapshotKind => one_line(snapshot.kind.name()),
                AttrFile::Parent => one_line(snapshot.parent.as_deref().unwrap_or("")),
                AttrFile::Snapshotter => one_line(&snapshot.snapshotter),
                AttrFile::Labels => snapshot.labels.render(),
                AttrFile::Info => snapshot.info_json(),
                _ => return None,
            },
            Object::Image(None) | Object::Task(_) | Object::Blob(_) | Object::Fixed => return None,
        };
        Some(text.into_bytes())
    }

    /// When the record was created and last changed (the node's times for plain dirs).
    pub fn record_times(&self) -> (Timestamp, Timestamp) {
        match &self.object {
            Object::Image(Some(i)) => (i.created_at, i.updated_at),
            Object::Container(c) => (c.created_at, c.updated_at),
            Object::Task(t) => (t.created_at, t.updated_at),
            Object::Blob(b) => (b.created_at, b.updated_at),
            Object::Snapshot(s) => (s.created_at, s.updated_at),
            Object::Image(None) | Object::Fixed => (self.node.created_at, self.node.updated_at),
        }
    }

    /// A directory's mtime: the later of its record's change and its entries' change.
    pub fn dir_times(&self) -> (SystemTime, SystemTime) {
        let (created, updated) = self.record_times();
        (created.to_system_time(), updated.max(self.node.updated_at).to_system_time())
    }

    /// The labels of the record, if it has any kind of record.
    pub fn labels(&self) -> Option<&crate::model::Labels> {
        match &self.object {
            Object::Image(Some(i)) => Some(&i.labels),
            Object::Container(c) => Some(&c.labels),
            Object::Blob(b) => Some(&b.labels),
            Object::Snapshot(s) => Some(&s.labels),
            Object::Image(None) | Object::Task(_) | Object::Fixed => None,
        }
    }

    /// The blob record, for a blob node.
    pub fn blob(&self) -> Option<&Blob> {
        match &self.object {
            Object::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// The snapshot record, for a snapshot node.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        match &self.object {
            Object::Snapshot(s) => Some(s),
            _ => None,
        }
    }

    /// The task record, for a task node.
    pub fn task(&self) -> Option<&Task> {
        match &self.object {
            Object::Task(t) => Some(t),
            _ => None,
        }
    }
}

fn one_line(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        format!("{value}\n")
    }
}
