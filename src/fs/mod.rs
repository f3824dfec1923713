//! The filesystem layer: maps inodes, names and file handles onto the store.
//!
//! `FsCore` holds the semantics and is driven directly by unit tests; only `fuse.rs`
//! knows fuser's request and reply types. No LMDB type appears here: the store is reached
//! through its record-level API, one short transaction per request.

pub mod attr;
mod content;
pub mod errno;
pub mod fuse;
mod handles;
pub mod ino;
pub mod inodes;
pub mod write;
mod xattr;

use std::ffi::OsStr;
use std::sync::Arc;

use attr::{Attr, Kind, FILE_MODE, READ_ONLY_FILE_MODE};
use content::{Loaded, Object};
use errno::FsError;
use handles::HandleTable;
use ino::{AttrFile, Ino, CONTAINER_FILES, IMAGE_FILES};
use inodes::InodeTable;

use crate::model::MAX_COMPONENT_BYTES;
use crate::store::{schema, Node, NodeId, NodeKind, Store, StoreRead};

/// Result of filesystem operations.
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// readdir cookies: 1 and 2 are `.` and `..`, 3.. the attribute files in listing order,
/// and a child node's cookie is its id plus this base, so deleting entries never shifts
/// the cookies of the others and no per-handle state is needed.
const CHILD_COOKIE_BASE: u64 = 16;
const FIRST_FILE_COOKIE: u64 = 3;

/// The filesystem's state: the store, the inodes the kernel holds and the open files.
pub struct FsCore {
    store: Arc<Store>,
    inodes: InodeTable,
    handles: HandleTable,
}

impl FsCore {
    /// A filesystem over an open store.
    pub fn new(store: Arc<Store>) -> Self {
        FsCore { store, inodes: InodeTable::default(), handles: HandleTable::default() }
    }

    /// The inodes the kernel currently references.
    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    /// `lookup`: a name in a directory. Counts one kernel reference on success.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = component(name)?;
        let reader = self.store.read()?;
        let dir = self.directory(&reader, parent)?;
        let attr = match dir.file_named(name) {
            Some(file) => file_attr(&dir, file)?,
            None => {
                let child = reader.lookup(dir.node.id, name)?.ok_or(FsError::NotFound)?;
                dir_attr(&Loaded::read(&reader, child)?)
            }
        };
        self.inodes.remember(attr.ino);
        Ok(attr)
    }

    /// `forget`: the kernel dropped `count` references to `ino`.
    pub fn forget(&self, ino: u64, count: u64) {
        self.inodes.forget(ino, count);
    }

    /// `getattr`. A deleted object the kernel still holds answers with its tombstone.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let decoded = Ino::decode(ino).ok_or(FsError::NotFound)?;
        let reader = self.store.read()?;
        let found = match reader.node(decoded.node())? {
            None => None,
            Some(node) => {
                let loaded = Loaded::read(&reader, node)?;
                match decoded {
                    Ino::Dir(_) => Some(dir_attr(&loaded)),
                    Ino::File(node, AttrFile::Target)
                        if matches!(loaded.object, Object::Image(None)) && self.handles.is_writing(node, AttrFile::Target) =>
                    {
                        let (created, updated) = loaded.dir_times();
                        Some(Attr::file(decoded, 0, FILE_MODE, created, updated))
                    }
                    Ino::File(_, file) => file_attr(&loaded, file).ok(),
                }
            }
        };
        found.or_else(|| self.inodes.tombstone(ino)).ok_or(FsError::NotFound)
    }

    /// `readdir`: entries after `offset`, handed to `add(ino, cookie, kind, name)` until it
    /// returns `true` (buffer full). Streams children from the store.
    pub fn readdir(&self, ino: u64, offset: u64, add: &mut dyn FnMut(u64, u64, Kind, &str) -> bool) -> Result<()> {
        let reader = self.store.read()?;
        let dir = self.directory(&reader, ino)?;
        let parent_ino = Ino::Dir(dir.node.parent).number();
        if offset < 1 && add(ino, 1, Kind::Dir, ".") {
            return Ok(());
        }
        if offset < 2 && add(parent_ino, 2, Kind::Dir, "..") {
            return Ok(());
        }
        for (cookie, file) in (FIRST_FILE_COOKIE..).zip(dir.files()) {
            if cookie > offset && add(Ino::File(dir.node.id, *file).number(), cookie, Kind::File, file.name()) {
                return Ok(());
            }
        }
        let after = offset.saturating_sub(CHILD_COOKIE_BASE);
        reader.for_each_child(dir.node.id, after, &mut |child, _kind, name| {
            !add(Ino::Dir(child).number(), child.0 + CHILD_COOKIE_BASE, Kind::Dir, name)
        })?;
        Ok(())
    }

    /// `mkdir`: an image directory under `images/`, or a container under `containers/`.
    pub fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = component(name)?;
        let dir = self.directory(&self.store.read()?, parent)?;
        let loaded = match dir.node.kind {
            NodeKind::ImagesDir | NodeKind::ImageDir => {
                let node = self.store.write(|w| w.create_image_dir(dir.node.id, name))?;
                Loaded { node, object: Object::Image(None) }
            }
            NodeKind::ContainersDir => {
                let (node, container) = self.store.write(|w| w.create_container(name))?;
                Loaded { node, object: Object::Container(Box::new(container)) }
            }
            NodeKind::Root => return Err(FsError::NotPermitted("the top level holds only images, containers and tasks".into())),
            NodeKind::TasksDir => return Err(FsError::NotPermitted("tasks are files, not directories".into())),
            NodeKind::Container => {
                return Err(FsError::NotPermitted("a container directory holds only its attribute files".into()))
            }
        };
        let attr = dir_attr(&loaded);
        self.inodes.remember(attr.ino);
        Ok(attr)
    }

    /// `rmdir`: deletes an image directory or a container.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = component(name)?;
        let reader = self.store.read()?;
        let dir = self.directory(&reader, parent)?;
        if dir.file_named(name).is_some() {
            return Err(FsError::NotDir);
        }
        let existing = reader.lookup(dir.node.id, name)?.ok_or(FsError::NotFound)?;
        let last = Loaded::read(&reader, existing)?;
        drop(reader);
        match dir.node.kind {
            NodeKind::ImagesDir | NodeKind::ImageDir => self.store.write(|w| w.delete_image_dir(dir.node.id, name))?,
            NodeKind::ContainersDir => self.store.write(|w| w.delete_container(name))?,
            NodeKind::Root | NodeKind::TasksDir | NodeKind::Container => {
                return Err(FsError::NotPermitted(format!("{name} cannot be removed")))
            }
        };
        self.bury(&last);
        Ok(())
    }

    /// `unlink`: attribute files are part of their object and cannot be removed alone;
    /// accepting the call (and changing nothing) lets `rm -r DIR` reach the `rmdir`.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = component(name)?;
        let reader = self.store.read()?;
        let dir = self.directory(&reader, parent)?;
        if dir.file_named(name).is_some() {
            log::debug!("unlink of attribute file {name} ignored: it goes with its directory");
            return Ok(());
        }
        match reader.lookup(dir.node.id, name)? {
            Some(_) => Err(FsError::IsDir),
            None => Err(FsError::NotFound),
        }
    }

    /// The path of an inode below the mount point, for log lines.
    pub fn path_of(&self, ino: u64) -> String {
        let Some(decoded) = Ino::decode(ino) else { return format!("inode {ino}") };
        let Ok(reader) = self.store.read() else { return format!("inode {ino}") };
        let mut parts = Vec::new();
        if let Ino::File(_, file) = decoded {
            parts.push(file.name().to_owned());
        }
        let mut current = decoded.node();
        while current != schema::ROOT {
            match reader.node(current) {
                Ok(Some(node)) => {
                    parts.push(node.name);
                    current = node.parent;
                }
                _ => return format!("inode {ino}"),
            }
        }
        parts.reverse();
        parts.join("/")
    }

    /// The path of `name` in directory `parent`, for log lines.
    pub fn child_path(&self, parent: u64, name: &OsStr) -> String {
        let dir = self.path_of(parent);
        let name = name.to_string_lossy();
        if dir.is_empty() {
            name.into_owned()
        } else {
            format!("{dir}/{name}")
        }
    }

    /// A directory inode and its record.
    fn directory(&self, reader: &impl StoreRead, ino: u64) -> Result<Loaded> {
        match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::Dir(id) => Ok(Loaded::read(reader, reader.node(id)?.ok_or(FsError::NotFound)?)?),
            Ino::File(..) => Err(FsError::NotDir),
        }
    }

    /// Keeps the last attributes of a deleted object for the inodes the kernel still holds.
    fn bury(&self, last: &Loaded) {
        self.inodes.bury(dir_attr(last));
        let files: &[AttrFile] = match last.node.kind {
            NodeKind::Container => &CONTAINER_FILES,
            _ => &IMAGE_FILES,
        };
        for file in files {
            let attr = file_attr(last, *file).unwrap_or_else(|_| {
                let (created, updated) = last.dir_times();
                Attr::file(Ino::File(last.node.id, *file), 0, file_mode(*file), created, updated)
            });
            self.inodes.bury(attr);
        }
    }
}

fn dir_attr(loaded: &Loaded) -> Attr {
    let (created, updated) = loaded.dir_times();
    Attr::dir(Ino::Dir(loaded.node.id), created, updated, matches!(loaded.object, Object::Fixed))
}

fn file_attr(loaded: &Loaded, file: AttrFile) -> Result<Attr> {
    let content = loaded.render(file).ok_or(FsError::NotFound)?;
    let (created, updated) = loaded.record_times();
    Ok(Attr::file(
        Ino::File(loaded.node.id, file),
        content.len(),
        file_mode(file),
        created.to_system_time(),
        updated.to_system_time(),
    ))
}

fn file_mode(file: AttrFile) -> u16 {
    if file == AttrFile::Info {
        READ_ONLY_FILE_MODE
    } else {
        FILE_MODE
    }
}

/// A name from the kernel as a component this tree can hold.
fn component(name: &OsStr) -> Result<&str> {
    let name = name.to_str().ok_or(FsError::BadName)?;
    if name.len() > MAX_COMPONENT_BYTES {
        return Err(FsError::NameTooLong);
    }
    Ok(name)
}

/// Node helper for handles and xattrs: the loaded directory behind an inode.
fn load_node(reader: &impl StoreRead, id: NodeId) -> Result<Loaded> {
    let node: Node = reader.node(id)?.ok_or(FsError::NotFound)?;
    Ok(Loaded::read(reader, node)?)
}

#[cfg(test)]
mod tests;
