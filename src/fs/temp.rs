//! Temporary files in object directories: what `sed -i`, `perl -pi`, Python's
//! `mkstemp` + `os.replace`, rsync and Ansible write before they rename the result onto the
//! file they edit. Any name in a container or image directory that is not an attribute
//! file's can be created, written, read, truncated, chmod'ed and removed like a plain
//! file; renaming it onto an attribute file replaces that value atomically, judged as a
//! complete write would be (see `FsCore::rename`).
//!
//! They live in memory only (bounded in size, per directory and in total) and vanish at
//! unmount or with their directory; they are reachable by name but not listed. Their
//! inode numbers lie in a range node inodes never reach, and are never reused
//! while the daemon runs. After a rename the kernel knows the attribute file by the
//! temporary's inode until it forgets it, so the entry stays as an alias of that file.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::ino::AttrFile;
use crate::service::{lock, BlobWriter};
use crate::store::NodeId;

/// Temporary files' inode numbers are `TEMP_INO_BIT | serial`, in [2^61, 2^62): above
/// every node's (node ids stay far below 2^56) and below the placeholders of tasks being
/// created (`handles.rs`, from 2^62).
const TEMP_INO_BIT: u64 = 1 << 61;
/// The largest temporary file (the largest attribute value, a spec).
pub const MAX_TEMP_BYTES: usize = crate::model::MAX_SPEC_BYTES;
/// Temporary files one directory may hold at once.
pub const MAX_TEMPS_PER_DIR: usize = 16;
/// Bytes all temporary files may hold together.
pub const MAX_TEMP_TOTAL: usize = 64 << 20;

/// Why a temporary file operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempRefusal {
    /// The name is taken.
    Exists,
    /// The directory holds as many as it may.
    TooMany,
    /// Past the largest size a temporary file may have.
    TooLarge,
    /// All temporary files together hold as much as they may.
    Full,
    /// No such temporary file.
    Gone,
    /// It was renamed onto a file: its descriptor writes nowhere.
    Renamed,
}

/// A temporary file's state without its bytes.
#[derive(Debug, Clone)]
pub struct TempMeta {
    /// The object directory it is in.
    pub dir: NodeId,
    /// Its name; `None` once removed or renamed.
    pub name: Option<String>,
    /// How many bytes it holds in memory.
    pub len: usize,
    /// Its permission bits.
    pub perm: u16,
    /// When it was created.
    pub created: SystemTime,
    /// When it was last written (or as set).
    pub mtime: SystemTime,
    /// What it was renamed onto.
    pub renamed_onto: Option<Alias>,
    /// Whether `mtime` was set.
    pub mtime_set: bool,
    /// Whether its bytes go to a blob ingest.
    pub is_blob: bool,
}

/// What a renamed temporary file's inode stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    /// An attribute file of its directory.
    File(AttrFile),
    /// A blob (a node of its digest directory).
    Node(NodeId),
}

/// One temporary file.
#[derive(Debug, Clone)]
pub struct Temp {
    /// The object directory it is in.
    pub dir: NodeId,
    /// Its name; `None` once renamed onto an attribute file.
    pub name: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Its permission bits (as created or chmod'ed).
    pub perm: u16,
    /// When it was created.
    pub created: SystemTime,
    /// When it was last written (or as set).
    pub mtime: SystemTime,
    /// What it was renamed onto: the inode is that file's alias now.
    pub renamed_onto: Option<Alias>,
    /// Whether its bytes go to a blob ingest (in `content/<alg>/`) instead of memory.
    pub is_blob: bool,
    /// Whether `mtime` was set (utimensat) rather than follows the writes: a rename
    /// carries it to the file it replaces (rsync sets times before it renames).
    pub mtime_set: bool,
    /// Descriptors open on it: one without any may be evicted when its directory is full.
    pub opens: usize,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    files: HashMap<u64, Temp>,
    names: HashMap<(NodeId, String), u64>,
    bytes: usize,
    /// The ingests of temporary files in digest directories (their bytes are on disk).
    blobs: HashMap<u64, BlobWriter>,
}

impl Inner {
    /// Makes room in `dir`: the oldest temporary file no descriptor holds open (a tool's
    /// leftover after a refused rename, or after it was killed) loses its name and bytes.
    fn evict_one(&mut self, dir: NodeId) -> bool {
        let oldest = self
            .files
            .iter()
            .filter(|(_, t)| t.dir == dir && t.name.is_some() && t.opens == 0 && t.renamed_onto.is_none())
            .min_by_key(|(_, t)| t.mtime)
            .map(|(ino, _)| *ino);
        let Some(ino) = oldest else { return false };
        if let Some(temp) = self.files.get_mut(&ino) {
            if let Some(name) = temp.name.take() {
                self.names.remove(&(dir, name));
            }
            self.bytes -= temp.data.len();
            temp.data = Vec::new();
        }
        self.blobs.remove(&ino);
        true
    }
}

/// Every temporary file, by inode number.
#[derive(Debug, Default)]
pub struct TempFiles {
    inner: Mutex<Inner>,
}

impl TempFiles {
    /// Whether `ino` is a temporary file's inode number.
    pub fn is_temp(ino: u64) -> bool {
        ino >> 61 == 1
    }

    /// The temporary file `name` of `dir`.
    pub fn lookup(&self, dir: NodeId, name: &str) -> Option<u64> {
        lock(&self.inner).names.get(&(dir, name.to_owned())).copied()
    }

    /// A new empty temporary file.
    pub fn create(&self, dir: NodeId, name: &str, perm: u16) -> Result<u64, TempRefusal> {
        let mut inner = lock(&self.inner);
        if inner.names.contains_key(&(dir, name.to_owned())) {
            return Err(TempRefusal::Exists);
        }
        if inner.names.keys().filter(|(d, _)| *d == dir).count() >= MAX_TEMPS_PER_DIR && !inner.evict_one(dir) {
            return Err(TempRefusal::TooMany);
        }
        inner.next += 1;
        let ino = TEMP_INO_BIT | inner.next;
        let now = SystemTime::now();
        let temp =
            Temp { dir, name: Some(name.to_owned()), data: Vec::new(), perm, created: now, mtime: now, renamed_onto: None, mtime_set: false, is_blob: false, opens: 0 };
        inner.files.insert(ino, temp);
        inner.names.insert((dir, name.to_owned()), ino);
        Ok(ino)
    }

    /// A new temporary file whose bytes go to `writer`, a blob ingest.
    pub fn create_blob(&self, dir: NodeId, name: &str, writer: BlobWriter) -> Result<u64, TempRefusal> {
        let ino = self.create(dir, name, 0o600)?;
        let mut inner = lock(&self.inner);
        if let Some(temp) = inner.files.get_mut(&ino) {
            temp.is_blob = true;
        }
        inner.blobs.insert(ino, writer);
        Ok(ino)
    }

    /// Runs `f` on a blob temporary file's ingest (under the table's lock: bytes go to a
    /// file in the page cache, so this is short).
    pub fn with_blob<T>(&self, ino: u64, f: impl FnOnce(&mut BlobWriter) -> T) -> Result<T, TempRefusal> {
        lock(&self.inner).blobs.get_mut(&ino).map(f).ok_or(TempRefusal::Gone)
    }

    /// Takes a blob temporary file's ingest away (to name it).
    pub fn take_blob(&self, ino: u64) -> Option<BlobWriter> {
        lock(&self.inner).blobs.remove(&ino)
    }

    /// A descriptor was opened on the temporary file.
    pub fn opened(&self, ino: u64) {
        if let Some(temp) = lock(&self.inner).files.get_mut(&ino) {
            temp.opens += 1;
        }
    }

    /// A descriptor on the temporary file was released.
    pub fn released(&self, ino: u64) {
        if let Some(temp) = lock(&self.inner).files.get_mut(&ino) {
            temp.opens = temp.opens.saturating_sub(1);
        }
    }

    /// A temporary file's state without its bytes (cheap: for attributes and checks).
    pub fn meta(&self, ino: u64) -> Option<TempMeta> {
        lock(&self.inner).files.get(&ino).map(|t| TempMeta {
            dir: t.dir,
            name: t.name.clone(),
            len: t.data.len(),
            perm: t.perm,
            created: t.created,
            mtime: t.mtime,
            renamed_onto: t.renamed_onto,
            mtime_set: t.mtime_set,
            is_blob: t.is_blob,
        })
    }

    /// A copy of the temporary file's state, bytes included (for a rename).
    pub fn get(&self, ino: u64) -> Option<Temp> {
        lock(&self.inner).files.get(&ino).cloned()
    }

    /// Up to `size` bytes from `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, TempRefusal> {
        let inner = lock(&self.inner);
        let temp = inner.files.get(&ino).ok_or(TempRefusal::Gone)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(temp.data.len());
        let end = start.saturating_add(size as usize).min(temp.data.len());
        Ok(temp.data[start..end].to_vec())
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<usize, TempRefusal> {
        let end = usize::try_from(offset).ok().and_then(|o| o.checked_add(data.len())).filter(|e| *e <= MAX_TEMP_BYTES);
        let end = end.ok_or(TempRefusal::TooLarge)?;
        self.resize_with(ino, end.max(self.len(ino)?), |bytes| bytes[end - data.len()..end].copy_from_slice(data))?;
        Ok(data.len())
    }

    /// Truncates or extends, as `ftruncate` does.
    pub fn truncate(&self, ino: u64, size: u64) -> Result<(), TempRefusal> {
        let size = usize::try_from(size).ok().filter(|s| *s <= MAX_TEMP_BYTES).ok_or(TempRefusal::TooLarge)?;
        self.resize_with(ino, size, |_| {})
    }

    fn len(&self, ino: u64) -> Result<usize, TempRefusal> {
        lock(&self.inner).files.get(&ino).map(|t| t.data.len()).ok_or(TempRefusal::Gone)
    }

    fn resize_with(&self, ino: u64, size: usize, edit: impl FnOnce(&mut [u8])) -> Result<(), TempRefusal> {
        let mut inner = lock(&self.inner);
        let Inner { files, bytes, .. } = &mut *inner;
        let temp = files.get_mut(&ino).ok_or(TempRefusal::Gone)?;
        let total = *bytes - temp.data.len() + size;
        if total > MAX_TEMP_TOTAL {
            return Err(TempRefusal::Full);
        }
        temp.data.resize(size, 0);
        edit(&mut temp.data);
        temp.mtime = SystemTime::now();
        *bytes = total;
        Ok(())
    }

    /// Sets the permission bits.
    pub fn set_perm(&self, ino: u64, perm: u16) -> Result<(), TempRefusal> {
        lock(&self.inner).files.get_mut(&ino).map(|t| t.perm = perm).ok_or(TempRefusal::Gone)
    }

    /// Sets the modification time.
    pub fn set_mtime(&self, ino: u64, mtime: SystemTime) -> Result<(), TempRefusal> {
        lock(&self.inner)
            .files
            .get_mut(&ino)
            .map(|t| {
                t.mtime = mtime;
                t.mtime_set = true;
            })
            .ok_or(TempRefusal::Gone)
    }

    /// `rm`: the name goes; the inode stays while the kernel may still use it (an open
    /// file), until it is forgotten.
    pub fn remove(&self, dir: NodeId, name: &str) -> Option<u64> {
        let mut inner = lock(&self.inner);
        let ino = inner.names.remove(&(dir, name.to_owned()))?;
        if let Some(temp) = inner.files.get_mut(&ino) {
            temp.name = None;
        }
        Some(ino)
    }

    /// Renames a temporary file within its directory, replacing a temporary file of the
    /// new name.
    pub fn rename(&self, dir: NodeId, from: &str, to: &str) -> Result<(), TempRefusal> {
        let mut inner = lock(&self.inner);
        let ino = inner.names.remove(&(dir, from.to_owned())).ok_or(TempRefusal::Gone)?;
        if let Some(replaced) = inner.names.insert((dir, to.to_owned()), ino) {
            if let Some(old) = inner.files.get_mut(&replaced) {
                old.name = None;
            }
        }
        if let Some(temp) = inner.files.get_mut(&ino) {
            temp.name = Some(to.to_owned());
        }
        Ok(())
    }

    /// The temporary file became attribute file `file` of its directory: its name and
    /// bytes go, its inode stays as that file's alias.
    pub fn renamed_onto(&self, ino: u64, alias: Alias) {
        let mut inner = lock(&self.inner);
        inner.blobs.remove(&ino);
        let Inner { files, names, bytes, .. } = &mut *inner;
        if let Some(temp) = files.get_mut(&ino) {
            if let Some(name) = temp.name.take() {
                names.remove(&(temp.dir, name));
            }
            *bytes -= temp.data.len();
            temp.data = Vec::new();
            temp.renamed_onto = Some(alias);
        }
    }

    /// The kernel forgot the inode: a temporary file without a name goes for good.
    pub fn forget(&self, ino: u64) {
        let mut inner = lock(&self.inner);
        if inner.files.get(&ino).is_some_and(|t| t.name.is_none()) {
            if let Some(temp) = inner.files.remove(&ino) {
                inner.bytes -= temp.data.len();
            }
            // An unnamed blob ingest goes too (dropping it removes its file).
            inner.blobs.remove(&ino);
        }
    }

    /// The directory went: its temporary files' names go with it. Returns their inode
    /// numbers: those the kernel no longer knows are to be forgotten now (no forget will
    /// ever come for them).
    pub fn remove_dir(&self, dir: NodeId) -> Vec<u64> {
        let mut inner = lock(&self.inner);
        let gone: Vec<(NodeId, String)> = inner.names.keys().filter(|(d, _)| *d == dir).cloned().collect();
        let mut inos = Vec::new();
        for key in gone {
            if let Some(ino) = inner.names.remove(&key) {
                if let Some(temp) = inner.files.get_mut(&ino) {
                    temp.name = None;
                }
                inos.push(ino);
            }
        }
        inos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_file_is_written_renamed_and_forgotten_within_its_bounds() {
        let temps = TempFiles::default();
        let dir = NodeId(40);
        let ino = temps.create(dir, "sedX1", 0o600).unwrap();
        assert!(TempFiles::is_temp(ino));
        assert_eq!(temps.create(dir, "sedX1", 0o600), Err(TempRefusal::Exists));
        temps.write(ino, 0, b"a=1\n").unwrap();
        temps.write(ino, 4, b"b=2\n").unwrap();
        assert_eq!(temps.read(ino, 0, 100).unwrap(), b"a=1\nb=2\n");
        assert_eq!(temps.write(ino, MAX_TEMP_BYTES as u64, b"x"), Err(TempRefusal::TooLarge));
        assert_eq!(temps.write(ino, u64::MAX, b"x"), Err(TempRefusal::TooLarge));
        temps.rename(dir, "sedX1", "sedX2").unwrap();
        assert_eq!(temps.lookup(dir, "sedX2"), Some(ino));
        temps.renamed_onto(ino, Alias::File(AttrFile::Labels));
        assert_eq!(temps.lookup(dir, "sedX2"), None);
        assert_eq!(temps.get(ino).unwrap().renamed_onto, Some(Alias::File(AttrFile::Labels)), "an alias until forgotten");
        temps.forget(ino);
        assert!(temps.get(ino).is_none());
        let held: Vec<u64> = (0..MAX_TEMPS_PER_DIR).map(|i| temps.create(dir, &format!("t{i}"), 0o600).unwrap()).collect();
        for ino in &held {
            temps.opened(*ino);
        }
        assert_eq!(temps.create(dir, "one-more", 0o600), Err(TempRefusal::TooMany), "all held open");
        temps.released(held[0]);
        assert!(temps.create(dir, "one-more", 0o600).is_ok(), "a leftover no descriptor holds makes room");
        assert_eq!(temps.lookup(dir, "t0"), None);
        temps.remove_dir(dir);
        assert!(temps.create(dir, "t0", 0o600).is_ok(), "the names went with the directory");
    }
}
