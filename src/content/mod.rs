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
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use error::{ContentError, Result};
pub use ingest::Ingest;

use crate::model::DIGEST_ALGORITHMS;

/// The blob files of one state directory.
#[derive(Debug)]
pub struct ContentStore {
    root: PathBuf,
    /// The content directories of the other namespaces of the same state directory, found
    /// when a blob is placed (namespaces come and go): content is shared by digest.
    peers: Option<Peers>,
}

/// Where the other namespaces' content lives: `STATE/content` and
/// `STATE/namespaces/*/content`, but for this store's own.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The state directory.
    pub state_root: PathBuf,
}

impl Peers {
    fn content_dirs(&self, own: &Path) -> Vec<PathBuf> {
        let mut dirs = vec![self.state_root.join("content")];
        if let Ok(entries) = fs::read_dir(self.state_root.join(crate::state_dir::NAMESPACES_DIR)) {
            dirs.extend(entries.flatten().map(|e| e.path().join("content")));
        }
        dirs.retain(|d| d != own);
        dirs
    }
}

impl ContentStore {
    /// Opens (creating when absent) the content directory `root`, and drops every ingest
    /// file a previous run left: none of them was acknowledged.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let store = ContentStore { root: root.to_owned(), peers: None };
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

    /// Shares placed blobs with the other namespaces under `peers`.
    pub fn sharing_with(mut self, peers: Peers) -> ContentStore {
        self.peers = Some(peers);
        self
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

    /// Moves an ingest that [`Ingest::verify`] accepted into place. When another
    /// namespace of the state directory has the same blob, the file then becomes a hard
    /// link to that one: both were verified against the digest, so the bytes are the same,
    /// and they are stored once (containerd shares content by digest across namespaces).
    pub fn place(&self, ingest: Ingest) -> Result<()> {
        let digest = ingest.digest().to_owned();
        let destination = self.path(&digest);
        ingest.place(&destination)?;
        if let Some(peers) = &self.peers {
            // Only disk space is at stake: a failure keeps this namespace's own copy.
            if let Err(e) = self.share(peers, &digest, &destination) {
                log::debug!("blob {digest}: not shared with another namespace's copy: {e}");
            }
        }
        Ok(())
    }

    /// Replaces the placed blob at `placed` by a link to another namespace's copy, if one
    /// exists. The copy is opened without following links and checked to be a regular
    /// file of the same size before the link is made from that open descriptor, so a
    /// name swapped meanwhile is never what gets linked.
    fn share(&self, peers: &Peers, digest: &str, placed: &Path) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let ours = fs::metadata(placed)?;
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("unknown", digest));
        for dir in peers.content_dirs(&self.root) {
            let candidate = dir.join("blobs").join(algorithm).join(hex);
            let Ok(file) = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&candidate) else {
                continue;
            };
            let theirs = file.metadata()?;
            if !theirs.is_file() || theirs.len() != ours.len() || (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
                continue;
            }
            if theirs.dev() != ours.dev() {
                continue;
            }
            let link = self.ingest_dir().join(format!("share-{}-{hex}", std::process::id()));
            let _ = fs::remove_file(&link);
            let link_c = std::ffi::CString::new(link.as_os_str().as_bytes())?;
            // SAFETY: linkat on a descriptor this function owns and a NUL-terminated path;
            // AT_EMPTY_PATH links the open file itself (root has CAP_DAC_READ_SEARCH).
            let rc = unsafe {
                libc::linkat(file.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, link_c.as_ptr(), libc::AT_EMPTY_PATH)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Err(e) = fs::rename(&link, placed) {
                let _ = fs::remove_file(&link);
                return Err(e);
            }
            if let Some(parent) = placed.parent() {
                File::open(parent)?.sync_all()?;
            }
            return Ok(());
        }
        Ok(())
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
