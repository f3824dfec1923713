//! The files of `snapshots/<key>/` that need more than the record: `mounts` (from the
//! snapshotter), `usage` (measured on disk for an active snapshot) and `references` (from
//! the whole graph of records). Everything else renders from the record in `content.rs`.

use super::content::Loaded;
use super::errno::FsError;
use super::ino::AttrFile;
use super::{FsCore, Result};
use crate::model::SnapshotKind;
use crate::store::{StoreRead, Target};

impl FsCore {
    /// The bytes of `file` in directory `loaded`: the record's rendering, or for the
    /// snapshot files above, what the snapshotter and the graph say now.
    pub(super) fn file_content(&self, reader: &impl StoreRead, loaded: &Loaded, file: AttrFile) -> Result<Vec<u8>> {
        if let Some(bytes) = loaded.render(file) {
            return Ok(bytes);
        }
        let snapshot = loaded.snapshot().ok_or(FsError::NotFound)?;
        let text = match file {
            AttrFile::Mounts => {
                let mounts = self.snapshot_mounts(reader, loaded.node.id, snapshot)?;
                let mut text = serde_json::to_string_pretty(&mounts).expect("mounts serialize");
                text.push('\n');
                text
            }
            AttrFile::Usage => {
                let usage = match (snapshot.kind, snapshot.usage) {
                    (SnapshotKind::Committed, Some(usage)) => usage,
                    _ => self.resources.as_deref().ok_or(FsError::NoResources)?.snapshots.usage(loaded.node.id.0)?,
                };
                format!("{}\n", serde_json::to_string(&usage).expect("usage serializes"))
            }
            AttrFile::References => {
                reader.referrers(Target::Snapshot(&snapshot.key))?.iter().map(|r| format!("{r}\n")).collect()
            }
            _ => return Err(FsError::NotFound),
        };
        Ok(text.into_bytes())
    }
}
