//! The content store's bytes: one file per blob, named by its digest, under
//! `STATE_DIR/content/blobs/<alg>/<hex>`.
//!
//! A blob is written to a private ingest file, hashed as it arrives, and only renamed into
//! place once its digest matched and its bytes are synced, so a blob file always holds
//! exactly the bytes its name promises, whatever crashes. No LMDB and no FUSE type here:
//! the store records which blobs exist, the filesystem drives writers and readers.

mod error;
mod ingest;

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use error::{ContentError, Result};
pub use ingest::Ingest;

use crate::model::DIGEST_ALGORITHMS;

/// The blob files of one state directory.
#[derive(Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating when absent) the content directory `root`, and drops every ingest
    /// file a previous run left: none of them was acknowledged.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let store = ContentStore { root: root.to_owned() };
        for algorithm in DIGEST_ALGORITHMS {
            let dir = store.root.join("blobs").join(algorithm);
            private_dir(&dir)?;
        }
        let ingest = store.ingest_dir();
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(|e| ContentError::io(format!("clear {}", ingest.display()), e))?;
        }
        private_dir(&ingest)?;
        Ok(store)
    }

    /// Where the blob `digest` lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("unknown", digest));
        self.root.join("blobs").join(algorithm).join(hex)
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| ContentError::io(format!("open blob {digest}"), e))
    }

    /// Reads a small blob (an index, manifest or config) whole, refusing one larger than
    /// `limit` bytes.
    pub fn read_small(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let file = self.open_blob(digest)?;
        let size = file.metadata().map_err(|e| ContentError::io(format!("stat blob {digest}"), e))?.len();
        if size > limit {
            return Err(ContentError::TooLarge { digest: digest.to_owned(), size, limit });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit), &mut bytes)
            .map_err(|e| ContentError::io(format!("read blob {digest}"), e))?;
        Ok(bytes)
    }

    /// Starts writing the blob `digest`.
    pub fn begin(&self, digest: &str) -> Result<Ingest> {
        Ingest::create(&self.ingest_dir(), digest)
    }

    /// Moves an ingest that [`Ingest::verify`] accepted into place.
    pub fn place(&self, ingest: Ingest) -> Result<()> {
        let destination = self.path(ingest.digest());
        ingest.place(&destination)
    }

    /// Removes a blob file; one already gone is not an error.
    pub fn remove(&self, digest: &str) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ContentError::io(format!("remove blob {digest}"), e))
            }
            _ => Ok(()),
        }
    }

    /// Removes every blob file whose digest is not in `keep` (debris of a crash between a
    /// collection's commit and its file removal); returns the digests removed.
    pub fn sweep(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for algorithm in DIGEST_ALGORITHMS {
            let dir = self.root.join("blobs").join(algorithm);
            let entries = fs::read_dir(&dir).map_err(|e| ContentError::io(format!("list {}", dir.display()), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ContentError::io(format!("list {}", dir.display()), e))?;
                let digest = format!("{algorithm}:{}", entry.file_name().to_string_lossy());
                if !keep.contains(&digest) {
                    self.remove(&digest)?;
                    removed.push(digest);
                }
            }
        }
        Ok(removed)
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }
}

/// Creates `dir` and missing parents with mode 0700: blobs are the state directory's,
/// readable through the mount only.
fn private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ContentError::io(format!("create {}", dir.display()), e))
}

#[cfg(test)]
mod tests;
