//! Atomic replace by rename, and the temporary files it renames (`temp.rs` holds them):
//! `rename(tmp, labels)` replaces `labels` with the temporary file's bytes in one commit,
//! judged as a complete write of that file would be; a refused value makes `rename()` fail
//! with the errno and leaves the old value and the temporary file as they were. Every
//! other rename is refused: names are identities (containerd ids never change).

use std::ffi::OsStr;
use std::time::SystemTime;

use super::attr::{Attr, Kind};
use super::content::Loaded;
use super::errno::FsError;
use super::ino::Ino;
use super::temp::{Alias, TempFiles, TempRefusal};
use super::write::{WriteBuffer, WriteMode};
use super::{component, is_read_only, load_node, FsCore, Result};
use crate::store::{NodeId, NodeKind, StoreRead};

/// `RENAME_NOREPLACE` from renameat2(2).
const RENAME_NOREPLACE: u32 = 1;

impl From<TempRefusal> for FsError {
    fn from(refusal: TempRefusal) -> Self {
        FsError::Temp(refusal)
    }
}

/// Whether temporary files may be made in a directory of this kind.
pub(super) fn holds_temps(kind: NodeKind) -> bool {
    matches!(kind, NodeKind::Container | NodeKind::ImageDir | NodeKind::DigestDir)
}

impl FsCore {
    /// `rename`: a temporary file onto an attribute file of its own directory (or onto
    /// another temporary name there).
    pub fn rename(&self, parent: u64, name: &OsStr, new_parent: u64, new_name: &OsStr, flags: u32) -> Result<()> {
        let (name, new_name) = (component(name)?, component(new_name)?);
        if flags & !RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE, RENAME_WHITEOUT: nothing here can be swapped or whited out.
            return Err(FsError::InvalidRequest("rename flags other than RENAME_NOREPLACE are not supported".into()));
        }
        let reader = self.store().read()?;
        let dir = self.changeable_directory(&reader, parent)?;
        let Some(ino) = self.temps.lookup(dir.node.id, name) else {
            return Err(FsError::NotPermitted(
                "names are identities (containerd ids cannot change); only a temporary file can be renamed, onto an attribute file of its directory".into(),
            ));
        };
        if new_parent != parent {
            // mv and rename(1) then copy and remove, which works.
            return Err(FsError::CrossDirectory);
        }
        if dir.node.kind == NodeKind::DigestDir {
            drop(reader);
            return self.rename_onto_blob(&dir, ino, name, new_name);
        }
        let Some(file) = dir.file_named(new_name) else {
            return Ok(self.temps.rename(dir.node.id, name, new_name)?);
        };
        if is_read_only(dir.node.kind, file) {
            return Err(FsError::ReadOnly(file.name()));
        }
        if flags & RENAME_NOREPLACE != 0 && self.present(&reader, &dir, file)? {
            return Err(FsError::Exists(new_name.into()));
        }
        drop(reader);
        let temp = self.temps.get(ino).ok_or(TempRefusal::Gone)?;
        let data = temp.data;
        // Exactly what `cat tmp > file` would commit, in one transaction: the old value
        // stays until the new one is whole and valid, so nothing is pinned meanwhile.
        let mut buffer = WriteBuffer::new(file, WriteMode::Replace, Vec::new());
        let judged = match buffer.write(0, &data) {
            Ok(Some(edit)) => Ok(edit),
            Ok(None) => buffer.pending_edit().map_err(FsError::from),
            Err(e) => Err(e.into()),
        };
        // A refusal leaves the temporary file, as rename(2) does (a tool may remove it or
        // try again); one left behind is evicted when its directory needs the room.
        judged.and_then(|edit| Ok(self.services.apply(edit, dir.node.id, dir.node.kind)?))?;
        if temp.mtime_set {
            let at = crate::service::TimeSet::At(crate::model::Timestamp::from(temp.mtime));
            if let Err(e) = self.services.set_times(dir.node.id, file.name(), at, at) {
                // The value was committed: what the kernel cached of it goes all the same.
                self.changed(dir.node.id);
                return Err(e.into());
            }
        }
        self.temps.renamed_onto(ino, Alias::File(file));
        // Renaming an empty file onto a field clears it; the kernel holds the name under
        // the temporary file's inode now.
        self.forget_vanished_also(dir.node.id, Some(file));
        // The replaced file's inode is not the name's any more, and what the kernel cached
        // of the object (info.json, the directory's mtime) changed with it.
        self.changed(dir.node.id);
        log::debug!("{}: replaced by rename of {name}", file.name());
        Ok(())
    }

    /// A temporary file in `content/<alg>/` renamed onto a blob name: its bytes must hash
    /// to the name (`EINVAL` otherwise, and the temporary file stays).
    fn rename_onto_blob(&self, dir: &Loaded, ino: u64, name: &str, hex: &str) -> Result<()> {
        if crate::model::digest_of_file_name(&dir.node.name, hex).is_err() {
            // Another temporary name.
            return Ok(self.temps.rename(dir.node.id, name, hex)?);
        }
        let temp = self.temps.meta(ino).ok_or(TempRefusal::Gone)?;
        let writer = self.temps.take_blob(ino).ok_or(TempRefusal::Gone)?;
        // A refused naming consumes the ingest (its bytes can never be that blob), and the
        // temporary file goes with it: nobody could find it to remove it.
        if let Err(e) = self.services.name_blob(dir.node.id, hex, writer) {
            self.temps.remove(dir.node.id, name);
            return Err(e.into());
        }
        let node = self.store().read()?.lookup(dir.node.id, hex)?.ok_or(FsError::NotFound)?;
        if temp.mtime_set {
            let at = crate::service::TimeSet::At(crate::model::Timestamp::from(temp.mtime));
            self.services.set_times(node.id, crate::model::NODE_ITSELF, at, at)?;
        }
        self.temps.renamed_onto(ino, Alias::Node(node.id));
        Ok(())
    }

    /// A temporary file's attributes; one renamed onto an attribute file answers as that
    /// file, under the inode number the kernel knows it by.
    pub(super) fn temp_attr(&self, ino: u64) -> Result<Attr> {
        let temp = self.temps.meta(ino).ok_or(FsError::NotFound)?;
        if let Some(alias) = self.temp_alias(ino) {
            let mut attr = match (self.getattr(alias), Ino::decode(alias)) {
                // An empty file renamed onto a field cleared it, but the kernel still has
                // the name cached under this inode: an empty file until it forgets it, so
                // that `echo x > FILE` right after the rename opens it and writes.
                (Err(FsError::NotFound), Some(Ino::File(node, file))) => {
                    super::empty_file_attr(&load_node(&self.store().read()?, node)?, file)
                }
                (attr, _) => attr?,
            };
            attr.ino = ino;
            // A change invalidates the field's own inode number, not this one: never cached.
            attr.ttl = super::attr::OBJECT_ATTR_TTL;
            return Ok(attr);
        }
        let size = match temp.is_blob {
            true => self.temps.with_blob(ino, |w| self.services.blob_writer_len(w)).unwrap_or(0),
            false => temp.len as u64,
        };
        let nlink = u32::from(temp.name.is_some());
        let ttl = std::time::Duration::ZERO;
        Ok(Attr {
            ino,
            kind: Kind::File,
            size,
            perm: temp.perm,
            nlink,
            crtime: temp.created,
            atime: temp.mtime,
            mtime: temp.mtime,
            ctime: temp.mtime,
            ttl,
            entry_ttl: super::attr::ENTRY_TTL,
        })
    }

    /// The attribute file a renamed temporary file's inode stands for, if it is one.
    pub(super) fn temp_alias(&self, ino: u64) -> Option<u64> {
        let temp = self.temps.meta(ino)?;
        temp.renamed_onto.map(|alias| match alias {
            Alias::File(file) => Ino::File(temp.dir, file).number(),
            Alias::Node(node) => Ino::Node(node).number(),
        })
    }

    /// `create` of a name that is no attribute file in an object directory.
    pub(super) fn create_temp(&self, dir: &Loaded, name: &str, flags: i32) -> Result<u64> {
        if let Some(ino) = self.temps.lookup(dir.node.id, name) {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::Exists(name.into()));
            }
            if flags & libc::O_TRUNC != 0 {
                self.truncate_temp(ino, 0)?;
            }
            return Ok(ino);
        }
        if dir.node.kind == NodeKind::DigestDir {
            let writer = self.services.begin_unnamed_blob(dir.node.id)?;
            return Ok(self.temps.create_blob(dir.node.id, name, writer)?);
        }
        Ok(self.temps.create(dir.node.id, name, 0o600)?)
    }

    /// Truncates a temporary file: its bytes in memory, or its blob's ingest.
    pub(super) fn truncate_temp(&self, ino: u64, size: u64) -> Result<()> {
        match self.temps.meta(ino).is_some_and(|t| t.is_blob) {
            true => drop(self.temps.with_blob(ino, |w| self.services.truncate_blob(w, size))??),
            false => self.temps.truncate(ino, size)?,
        }
        Ok(())
    }

    /// A write to a temporary file: into memory, or a blob's ingest.
    pub(super) fn write_temp(&self, ino: u64, offset: u64, data: &[u8]) -> Result<usize> {
        let temp = self.temps.meta(ino).ok_or(TempRefusal::Gone)?;
        if temp.renamed_onto.is_some() {
            // Bytes written after the rename through a descriptor of the temporary file
            // would land nowhere: refused, as a file replaced under its writer is.
            return Err(TempRefusal::Renamed.into());
        }
        if temp.is_blob {
            return Ok(self.temps.with_blob(ino, |w| self.services.write_blob(w, offset, data))??);
        }
        Ok(self.temps.write(ino, offset, data)?)
    }

    /// `setattr` of a temporary file: a size, a mode (any), owners (root's), times. (One
    /// renamed onto a field is that field: see `FsCore::setattr`.)
    pub(super) fn setattr_temp(&self, ino: u64, size: Option<u64>, perm: Option<u32>, owner_is_root: bool, mtime: Option<SystemTime>) -> Result<Attr> {
        if !owner_is_root {
            return Err(FsError::NotPermitted("owners in ctrfs are fixed (root)".into()));
        }
        if let Some(size) = size {
            self.truncate_temp(ino, size)?;
        }
        if let Some(perm) = perm {
            self.temps.set_perm(ino, (perm & 0o7777) as u16)?;
        }
        if let Some(mtime) = mtime {
            self.temps.set_mtime(ino, mtime)?;
        }
        self.temp_attr(ino)
    }

    /// The directory node a temporary file is in (for log lines).
    pub(super) fn temp_path(&self, ino: u64) -> Option<(NodeId, String)> {
        let temp = self.temps.meta(ino)?;
        Some((temp.dir, temp.name.unwrap_or_else(|| "(removed temporary file)".into())))
    }

    /// The loaded directory of a temporary file.
    pub(super) fn temp_dir(&self, ino: u64) -> Result<Loaded> {
        let temp = self.temps.meta(ino).ok_or(FsError::NotFound)?;
        load_node(&self.store().read()?, temp.dir)
    }
}

/// Whether `ino` is a temporary file's.
pub(super) fn is_temp(ino: u64) -> bool {
    TempFiles::is_temp(ino)
}
