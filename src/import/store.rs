//! The destination side: blobs into `content/<alg>/<hex>` and descriptors into
//! `images/<name>/target`, by plain file operations on the mount.
//!
//! The mount judges a blob's digest when its file is closed, so every file written here is
//! closed explicitly and the close's result is checked (dropping a `File` discards it).
//! Each blob is also hashed while it streams through, which names a corrupt blob the same
//! way on any destination and keeps a bad blob out of a directory that does not check.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde_json::Value;

use super::layout::{BlobId, Entry};
use super::progress::Progress;
use super::ImportError;

/// Size of the one buffer every blob streams through.
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// Manifests and indexes larger than this are not read back for counting.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Writes blobs into a mount's content store and counts what it did.
pub struct Copier {
    content: PathBuf,
    buffer: Vec<u8>,
    /// Progress shown to the user.
    pub progress: Progress,
    /// Blobs written.
    pub copied: usize,
    /// Blobs found already stored and left alone.
    pub skipped: usize,
    /// Bytes written.
    pub bytes_copied: u64,
}

impl Copier {
    /// A copier into `<mountpoint>/content`.
    pub fn new(mountpoint: &Path, progress: Progress) -> Self {
        Self {
            content: mountpoint.join("content"),
            buffer: vec![0; COPY_BUFFER_BYTES],
            progress,
            copied: 0,
            skipped: 0,
            bytes_copied: 0,
        }
    }

    /// Stores one blob of `size` bytes read from `source`; `origin` names the source in
    /// errors. A blob whose file already exists with that size is skipped: the mount only
    /// ever holds verified content.
    pub fn store(&mut self, blob: &BlobId, size: u64, source: &mut dyn Read, origin: &Path) -> Result<(), ImportError> {
        let target = self.content.join(blob.relative_path());
        if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == size) {
            self.skipped += 1;
            self.progress.add_bytes(size);
            self.progress.add_blob();
            return Ok(());
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&target)
            .map_err(|e| ImportError::io("cannot create", &target, e))?;
        self.fill_and_close(file, blob, source, origin, &target)?;
        self.copied += 1;
        self.progress.add_blob();
        Ok(())
    }

    fn fill_and_close(
        &mut self,
        mut file: File,
        blob: &BlobId,
        source: &mut dyn Read,
        origin: &Path,
        target: &Path,
    ) -> Result<(), ImportError> {
        let digest = match self.pump(source, &mut file, blob, origin, target) {
            Ok(digest) => digest,
            Err(e) => {
                discard(file, target);
                return Err(e);
            }
        };
        if digest != blob.hex {
            discard(file, target);
            return Err(ImportError::DigestMismatch(blob.to_string()));
        }
        match close_checked(file) {
            Ok(()) => Ok(()),
            // The mount's own verdict on the digest.
            Err(Errno::EINVAL) => Err(ImportError::DigestMismatch(blob.to_string())),
            Err(errno) => Err(ImportError::io("cannot write", target, errno.into())),
        }
    }

    /// Copies `source` into `file` through the buffer, hashing on the way; returns the hex
    /// digest of what was copied.
    fn pump(
        &mut self,
        source: &mut dyn Read,
        file: &mut File,
        blob: &BlobId,
        origin: &Path,
        target: &Path,
    ) -> Result<String, ImportError> {
        let mut hasher = blob.algorithm.hasher();
        loop {
            let n = match source.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImportError::io("cannot read", origin, e)),
            };
            let chunk = &self.buffer[..n];
            hasher.update(chunk);
            file.write_all(chunk).map_err(|e| ImportError::io("cannot write", target, e))?;
            self.bytes_copied += n as u64;
            self.progress.add_bytes(n as u64);
        }
        Ok(hasher.finish_hex())
    }

    /// Reads a stored manifest or index back from the mount, for counting an image's blobs.
    pub fn read_json(&self, blob: &BlobId, size: u64) -> Option<Value> {
        if size > MAX_MANIFEST_BYTES {
            return None;
        }
        let bytes = fs::read(self.content.join(blob.relative_path())).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Closes a failed blob's file and removes whatever it holds. On the mount the close
/// already refuses the partial content; on a plain directory the removal keeps it out.
fn discard(file: File, target: &Path) {
    let _ = close_checked(file);
    let _ = fs::remove_file(target);
}

/// Closes `file` and reports what close() said, which std's drop would throw away.
fn close_checked(file: File) -> Result<(), Errno> {
    nix::unistd::close(file)
}

/// Creates `images/<name>/` with every missing component and writes the entry, as
/// index.json gives it, to `target` in one write.
pub fn write_target(mountpoint: &Path, entry: &Entry) -> Result<(), ImportError> {
    let dir = mountpoint.join("images").join(&entry.name);
    fs::create_dir_all(&dir).map_err(|e| ImportError::io("cannot create", &dir, e))?;
    let path = dir.join("target");
    let mut document = serde_json::to_vec(&entry.raw).expect("a JSON value always serializes");
    document.push(b'\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| ImportError::io("cannot create", &path, e))?;
    if let Err(e) = file.write_all(&document) {
        let _ = close_checked(file);
        return Err(ImportError::io("cannot write", &path, e));
    }
    close_checked(file).map_err(|errno| ImportError::io("cannot write", &path, errno.into()))
}
