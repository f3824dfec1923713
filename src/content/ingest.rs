//! One blob being written: a private file, hashed while bytes arrive in order (and once
//! more at the end if they did not), committed by an fsync and a rename.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256, Sha512};

use super::{ContentError, Result};

static NEXT_INGEST: AtomicU64 = AtomicU64::new(1);

/// The two digest algorithms OCI registers.
#[derive(Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn for_digest(digest: &str) -> Hasher {
        if digest.starts_with("sha512:") {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// A blob being written. Dropping it without committing removes its file.
pub struct Ingest {
    file: File,
    path: PathBuf,
    digest: String,
    hasher: Hasher,
    /// Bytes hashed so far, all in order from offset 0.
    hashed: u64,
    /// False once a write landed anywhere but at `hashed`: the end rehashes the file.
    in_order: bool,
    len: u64,
    committed: bool,
}

impl Ingest {
    pub(super) fn create(dir: &Path, digest: &str) -> Result<Ingest> {
        let name = format!("{}-{}-{}", std::process::id(), NEXT_INGEST.fetch_add(1, Ordering::Relaxed), digest.replace(':', "-"));
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ContentError::io(format!("create {}", path.display()), e))?;
        Ok(Ingest {
            file,
            path,
            digest: digest.to_owned(),
            hasher: Hasher::for_digest(digest),
            hashed: 0,
            in_order: true,
            len: 0,
            committed: false,
        })
    }

    /// The digest this blob must match.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Makes the blob one that must match `digest` instead: bytes written under a name not
    /// known yet (a temporary file) are named when renamed. The algorithm must stay the
    /// same, since the bytes were hashed with it as they came.
    pub fn retarget(&mut self, digest: &str) -> Result<()> {
        let algorithm = |d: &str| d.split_once(':').map(|(a, _)| a.to_owned());
        if algorithm(digest) != algorithm(&self.digest) {
            return Err(ContentError::DigestMismatch { expected: digest.to_owned(), actual: self.digest.clone() });
        }
        self.digest = digest.to_owned();
        Ok(())
    }

    /// Bytes written so far (the file's size).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` at `offset`, as `pwrite` would.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file.write_all_at(data, offset).map_err(|e| ContentError::io(format!("write {}", self.path.display()), e))?;
        if self.in_order && offset == self.hashed {
            self.hasher.update(data);
            self.hashed += data.len() as u64;
        } else {
            self.in_order = false;
        }
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    /// Truncates (or extends) the file, as `ftruncate` would.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| ContentError::io(format!("truncate {}", self.path.display()), e))?;
        if len < self.hashed || len > self.len {
            self.in_order = len == 0;
            if len == 0 {
                self.hasher = Hasher::for_digest(&self.digest);
                self.hashed = 0;
            }
        }
        self.len = len;
        Ok(())
    }

    /// Checks the bytes against the digest and, when they match, syncs them to disk and
    /// returns the size. A mismatch leaves the ingest as it was: more bytes may still come
    /// (several processes writing one descriptor in turn).
    pub fn verify(&mut self) -> Result<u64> {
        let actual = self.final_digest()?;
        if actual != self.digest {
            return Err(ContentError::DigestMismatch { expected: self.digest.clone(), actual });
        }
        self.file.sync_all().map_err(|e| ContentError::io(format!("sync {}", self.path.display()), e))?;
        Ok(self.len)
    }

    /// Renames a verified ingest to `destination` and syncs the directory.
    pub(super) fn place(mut self, destination: &Path) -> Result<()> {
        std::fs::rename(&self.path, destination)
            .map_err(|e| ContentError::io(format!("rename into {}", destination.display()), e))?;
        self.committed = true;
        if let Some(dir) = destination.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ContentError::io(format!("sync {}", dir.display()), e))?;
        }
        Ok(())
    }

    fn final_digest(&self) -> Result<String> {
        if self.in_order && self.hashed == self.len {
            // A copy: writes may still follow a verification that failed.
            return Ok(self.hasher.clone().finish());
        }
        let mut hasher = Hasher::for_digest(&self.digest);
        let mut buffer = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        while offset < self.len {
            let n = self
                .file
                .read_at(&mut buffer, offset)
                .map_err(|e| ContentError::io(format!("read {}", self.path.display()), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            offset += n as u64;
        }
        Ok(hasher.finish())
    }
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ingest({}, {} bytes)", self.digest, self.len)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
