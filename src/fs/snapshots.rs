//! The files of `snapshots/<key>/` that need more than the record: `mounts` (from the
//! snapshotter), `usage` and `references` (from the whole graph of records). Everything
//! else renders from the record in `content.rs`.
//!
//! `usage` shows the figure recorded with the snapshot: measured at unpack for a committed
//! layer, and for an active snapshot when it is prepared, when its task is removed, and
//! whenever `usage` is opened for reading (on a worker: a large tree takes a while). A
//! `stat` never walks the tree.

use super::content::{Loaded, Object};
use super::errno::FsError;
use super::ino::AttrFile;
use super::{FsCore, Result};
use crate::model::Usage;
use crate::store::{StoreRead, Target};

impl FsCore {
    /// The bytes of `file` in directory `loaded`: the record's rendering, or for the
    /// snapshot files above, what the snapshotter and the graph say now.
    pub(super) fn file_content(&self, reader: &impl StoreRead, loaded: &Loaded, file: AttrFile) -> Result<Vec<u8>> {
        if let Some(bytes) = loaded.render(file) {
            return Ok(bytes);
        }
        if let Object::Container(c) = &loaded.object {
            return match file {
                AttrFile::Spec => Ok(reader.spec(loaded.node.id)?.unwrap_or_default()),
                AttrFile::Info => Ok(reader.with_spec(loaded.node.id, |s| c.info_json(Some(s)))?
                    .unwrap_or_else(|| c.info_json(None))
                    .into_bytes()),
                _ => Err(FsError::NotFound),
            };
        }
        let snapshot = loaded.snapshot().ok_or(FsError::NotFound)?;
        let text = match file {
            AttrFile::Mounts => {
                let mounts = self.services.snapshot_mounts(reader, loaded.node.id, snapshot)?;
                let mut text = serde_json::to_string_pretty(&mounts).expect("mounts serialize");
                text.push('\n');
                text
            }
            AttrFile::Usage => {
                let usage = match snapshot.usage {
                    Some(usage) => usage,
                    // Recorded by releases before usage was recorded for active snapshots.
                    None => self.services.measure_usage(loaded.node.id)?,
                };
                render_usage(usage)
            }
            AttrFile::References => {
                reader.referrers(Target::Snapshot(&snapshot.key))?.iter().map(|r| format!("{r}\n")).collect()
            }
            _ => return Err(FsError::NotFound),
        };
        Ok(text.into_bytes())
    }
}

fn render_usage(usage: Usage) -> String {
    format!("{}\n", serde_json::to_string(&usage).expect("usage serializes"))
}

impl FsCore {
    /// Whether opening `ino` does slow work: `usage` of a snapshot measures its tree.
    pub fn open_may_block(&self, ino: u64) -> bool {
        matches!(super::ino::Ino::decode(ino), Some(super::ino::Ino::File(_, AttrFile::Usage)))
    }
}
