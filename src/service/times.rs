//! Times set with `utimensat` (`touch -d`, `rsync -t`, `cp -p`, `tar -x`, `os.utime`): kept
//! with the node, per file, and shown by `stat` until the value they were set on changes
//! (the store clears them in the transaction that changes the value).

use super::{Result, Services};
use crate::model::{SetTimes, Timestamp};
use crate::store::NodeId;

/// One time asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// `UTIME_NOW` (`touch` without a date).
    Now,
    /// A given time.
    At(Timestamp),
}

impl TimeSet {
    fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        }
    }
}

impl Services {
    /// Sets the access and modification times shown for `field` of `node` (a field name,
    /// which is its file's name, or `model::NODE_ITSELF` for the node's own directory or
    /// file). Setting times changes no value: no `updated_at`, no event.
    pub fn set_times(&self, node: NodeId, field: &str, atime: TimeSet, mtime: TimeSet) -> Result<()> {
        let now = Timestamp::now();
        let times = SetTimes { atime: atime.resolve(now), mtime: mtime.resolve(now), ctime: now };
        self.store.write(|w| w.set_times(node, field, times))?;
        Ok(())
    }
}
