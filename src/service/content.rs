//! Content: blobs named by digest, written through an ingest and stored once verified.
//!
//! A writer's bytes stream into an ingest file of the content store (never into memory);
//! when judged they are hashed against the digest and stored, or refused with nothing
//! kept. A blob that exists can be written again (`cp` over it): the bytes must match, and
//! nothing changes. Readers read the blob file directly.

use crate::content::{ContentError, Ingest};
use crate::model::oci::{sniff_children, MAX_DOCUMENT_BYTES};
use crate::model::{Blob, BlobState, Timestamp};
use crate::store::{schema, NodeId, StoreError, StoreRead};

use super::{lock, Result, ServiceError, Services};
use crate::store::Node;

/// A blob opened for writing.
#[derive(Debug)]
pub struct BlobWriter {
    /// `None` once judged (committed or refused).
    ingest: Option<Ingest>,
    /// Whether this writer created the blob's record (so a refusal removes it).
    fresh: bool,
}

/// When a writer is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// At a `close()`: an empty ingest waits (a shell's `>` closes once before writing).
    Flush,
    /// At the last release: always.
    Release,
}

impl Services {
    /// A new blob `hex` in digest directory `dir`: records it as ingesting and opens its
    /// writer.
    pub fn create_blob(&self, dir: NodeId, hex: &str) -> Result<(Node, Blob, BlobWriter)> {
        let res = self.resources()?;
        let (node, blob) = self.store.write(|w| w.begin_blob(dir, hex))?;
        match res.content.begin(&blob.digest) {
            Ok(ingest) => Ok((node, blob, BlobWriter { ingest: Some(ingest), fresh: true })),
            Err(e) => {
                self.store.write(|w| w.discard_blob(node.id))?;
                Err(e.into())
            }
        }
    }

    /// `open` of a blob for reading: its file.
    pub fn open_blob_for_reading(&self, blob: &Blob) -> Result<std::fs::File> {
        let res = self.resources()?;
        if blob.state == BlobState::Ingesting {
            return Err(StoreError::InUse { what: format!("blob {}", blob.digest), by: "its writer".into() }.into());
        }
        Ok(res.content.open_blob(&blob.digest)?)
    }

    /// `open` of a blob for writing: a new ingest that must match the blob's digest.
    pub fn open_blob_for_writing(&self, blob: &Blob) -> Result<BlobWriter> {
        let res = self.resources()?;
        if blob.state == BlobState::Ingesting {
            return Err(StoreError::InUse { what: format!("blob {}", blob.digest), by: "another writer".into() }.into());
        }
        Ok(BlobWriter { ingest: Some(res.content.begin(&blob.digest)?), fresh: false })
    }

    /// A blob whose name is not known yet (a temporary file in `content/<alg>/`, as rsync
    /// writes one before renaming it): its bytes stream into an ingest; `name_blob` gives
    /// it its digest.
    pub fn begin_unnamed_blob(&self, dir: NodeId) -> Result<BlobWriter> {
        let res = self.resources()?;
        let placeholder = match dir {
            schema::CONTENT_SHA256 => format!("sha256:{}", "0".repeat(64)),
            schema::CONTENT_SHA512 => format!("sha512:{}", "0".repeat(128)),
            _ => return Err(StoreError::NotPermitted("blobs go in content/sha256/ or content/sha512/".into()).into()),
        };
        Ok(BlobWriter { ingest: Some(res.content.begin(&placeholder)?), fresh: false })
    }

    /// Names an unnamed blob `hex` of digest directory `dir`: its bytes must hash to that
    /// name, and are then stored as any blob written under its name (one that is stored
    /// already must match, and stays as it was).
    pub fn name_blob(&self, dir: NodeId, hex: &str, mut writer: BlobWriter) -> Result<()> {
        let existing = {
            let reader = self.store.read()?;
            reader.lookup(dir, hex)?.map(|n| n.id)
        };
        let (node, digest) = match existing {
            Some(node) => (node, self.store.read()?.blob(node)?.ok_or_else(|| ServiceError::Gone(format!("blob {hex}")))?.digest),
            None => {
                let (node, blob) = self.store.write(|w| w.begin_blob(dir, hex))?;
                writer.fresh = true;
                (node.id, blob.digest)
            }
        };
        let ingest = writer.ingest.as_mut().ok_or(ServiceError::Judged)?;
        if let Err(e) = ingest.retarget(&digest) {
            if writer.fresh {
                self.store.write(|w| w.discard_blob(node))?;
            }
            return Err(e.into());
        }
        self.judge_blob(node, &mut writer, Judge::Release)
    }

    /// How many bytes a writer holds.
    pub fn blob_writer_len(&self, writer: &BlobWriter) -> u64 {
        writer.ingest.as_ref().map_or(0, Ingest::len)
    }

    /// `write` to a blob.
    pub fn write_blob(&self, writer: &mut BlobWriter, offset: u64, data: &[u8]) -> Result<usize> {
        let ingest = writer.ingest.as_mut().ok_or(ServiceError::Judged)?;
        ingest.write_at(offset, data)?;
        Ok(data.len())
    }

    /// `ftruncate` of a blob being written.
    pub fn truncate_blob(&self, writer: &mut BlobWriter, size: u64) -> Result<u64> {
        let ingest = writer.ingest.as_mut().ok_or(ServiceError::Judged)?;
        ingest.set_len(size)?;
        Ok(size)
    }

    /// Judges a writer: the bytes match the digest and are stored, or nothing is kept.
    /// A mismatch at a `close()` is answered `EINVAL` but the bytes are kept until the last
    /// release, since another descriptor of the same open file may still write the rest
    /// (`{ cat a; cat b; } > blob`); only the release's verdict is final.
    pub fn judge_blob(&self, node: NodeId, writer: &mut BlobWriter, when: Judge) -> Result<()> {
        let res = self.resources()?;
        let Some(ingest) = writer.ingest.as_mut() else { return Ok(()) };
        if when == Judge::Flush && ingest.is_empty() {
            return Ok(());
        }
        let size = match ingest.verify() {
            Ok(size) => size,
            Err(e @ ContentError::DigestMismatch { .. }) if when == Judge::Flush => {
                return Err(ServiceError::Unsettled(Box::new(e.into())));
            }
            Err(e) => {
                writer.ingest = None;
                if writer.fresh {
                    self.store.write(|w| w.discard_blob(node))?;
                }
                return Err(e.into());
            }
        };
        let ingest = writer.ingest.take().expect("checked above");
        let digest = ingest.digest().to_owned();
        if !writer.fresh {
            // The same bytes as the stored blob: nothing to change (dropping the ingest
            // removes its file), unless the blob was removed meanwhile.
            return match self.store.read()?.blob(node)? {
                Some(blob) if blob.state == BlobState::Committed => Ok(()),
                _ => Err(ServiceError::Gone(format!("blob {digest}"))),
            };
        }
        let _files = lock(&res.blob_files);
        let stored = res.content.place(ingest).map_err(ServiceError::from).and_then(|()| {
            crate::fault::point(crate::fault::points::BLOB_PLACED);
            let children = if size <= MAX_DOCUMENT_BYTES {
                res.content.read_small(&digest, MAX_DOCUMENT_BYTES).map(|b| sniff_children(&b)).unwrap_or_default()
            } else {
                Vec::new()
            };
            let lease_nanos = u64::try_from(res.lease.as_nanos()).unwrap_or(u64::MAX);
            let lease_until = Timestamp::from_nanos(Timestamp::now().as_nanos().saturating_add(lease_nanos));
            self.store.write(|w| w.commit_blob(node, size, children, Some(lease_until))).map_err(ServiceError::from)
        });
        if let Err(e) = stored {
            // Neither a file without a record nor a record stuck "ingesting".
            if let Err(cleanup) = res.content.remove(&digest).map_err(ServiceError::from).and_then(|()| {
                self.store.write(|w| w.discard_blob(node)).map(drop).map_err(ServiceError::from)
            }) {
                log::error!("blob {digest}: not stored ({e}) and not cleaned up until start-up: {cleanup}");
            }
            return Err(e);
        }
        log::info!("blob {digest} stored ({size} bytes)");
        Ok(())
    }

    /// Deletes blob `hex` of digest directory `dir` (refused while anything references
    /// it), then collects what it alone kept.
    pub fn delete_blob(&self, dir: NodeId, hex: &str) -> Result<()> {
        let res = self.resources()?;
        {
            // Lock order as in a collection: the blob files, then the held references.
            let _files = lock(&res.blob_files);
            let (_, blob) = res.with_in_flight(|held| {
                self.store.write(|w| -> Result<_> {
                    let digest = w.blob_digest_at(dir, hex)?;
                    if held.contains(&crate::store::Reference::Blob(digest.clone())) {
                        let by = "a file open for writing that references it".into();
                        return Err(StoreError::InUse { what: format!("blob {digest}"), by }.into());
                    }
                    Ok(w.delete_blob(dir, hex)?)
                })
            })?;
            res.content.remove(&blob.digest)?;
            log::info!("blob {} deleted", blob.digest);
        }
        self.collect_after_delete();
        Ok(())
    }
}
