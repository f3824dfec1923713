//! The inodes the kernel holds: lookup counts, and the last attributes of objects deleted
//! while still referenced (tombstones), so `fstat` on an open file of a removed container
//! answers consistently until the kernel forgets it.
//!
//! Identity lives in the store, so this table holds only what the kernel references:
//! memory follows the kernel's dentry cache, not the database. Decrement and removal
//! happen under one shard lock, counts saturate, and the root is never forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use super::attr::Attr;
use super::ino::ROOT_INO;

const SHARDS: usize = 16;

/// One shard: the lookup count of each inode the kernel holds, and the tombstones of the
/// few of them whose object was deleted. Apart, because every container, file and blob the
/// kernel has in its dentry cache has a count (hundreds of thousands after `ls -l` of a
/// large store) and a tombstone is eight times the size of a count: one map of both cost
/// 1.4 KiB per container at 100,000 containers (issue 12's benchmark).
#[derive(Debug, Default)]
struct Shard {
    lookups: HashMap<u64, u64>,
    tombstones: HashMap<u64, Attr>,
}

/// Lookup counts per inode, sharded to keep lock contention low.
#[derive(Debug, Default)]
pub struct InodeTable {
    shards: [Mutex<Shard>; SHARDS],
}

impl InodeTable {
    fn shard(&self, ino: u64) -> std::sync::MutexGuard<'_, Shard> {
        // A poisoned shard only means another request panicked mid-update of a counter;
        // the map itself is still consistent, so keep serving.
        self.shards[(ino as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kernel received this inode in a reply (lookup, mkdir, create): one more reference.
    pub fn remember(&self, ino: u64) {
        if ino != ROOT_INO {
            let mut shard = self.shard(ino);
            let count = shard.lookups.entry(ino).or_default();
            *count = count.saturating_add(1);
            shard.tombstones.remove(&ino);
        }
    }

    /// The kernel dropped `count` references.
    pub fn forget(&self, ino: u64, count: u64) {
        if ino == ROOT_INO {
            return;
        }
        let mut shard = self.shard(ino);
        if let Some(lookups) = shard.lookups.get_mut(&ino) {
            *lookups = lookups.saturating_sub(count);
            if *lookups == 0 {
                shard.lookups.remove(&ino);
                shard.tombstones.remove(&ino);
            }
        }
    }

    /// Records the last attributes of a deleted inode, if the kernel still holds it.
    pub fn bury(&self, mut attr: Attr) {
        let mut shard = self.shard(attr.ino);
        if shard.lookups.contains_key(&attr.ino) {
            attr.nlink = 0;
            shard.tombstones.insert(attr.ino, attr);
        }
    }

    /// The tombstone of a deleted inode the kernel still holds.
    pub fn tombstone(&self, ino: u64) -> Option<Attr> {
        self.shard(ino).tombstones.get(&ino).copied()
    }

    /// Whether the kernel currently references `ino`.
    pub fn is_known(&self, ino: u64) -> bool {
        ino == ROOT_INO || self.shard(ino).lookups.contains_key(&ino)
    }

    /// How many inodes the kernel references (for tests and diagnostics).
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shards[i].lock().map(|s| s.lookups.len()).unwrap_or(0)).sum()
    }

    /// True when the kernel references no inode but the root.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::attr::{Attr, Kind};
    use std::time::UNIX_EPOCH;

    fn attr(ino: u64) -> Attr {
        Attr { ino, kind: Kind::File, size: 3, perm: 0o644, nlink: 1, crtime: UNIX_EPOCH, mtime: UNIX_EPOCH, atime: UNIX_EPOCH, ctime: UNIX_EPOCH, ttl: std::time::Duration::ZERO, entry_ttl: std::time::Duration::ZERO }
    }

    #[test]
    fn counts_saturate_and_root_is_immortal() {
        let table = InodeTable::default();
        table.remember(40);
        table.remember(40);
        table.forget(40, 1);
        assert!(table.is_known(40));
        table.forget(40, 5);
        assert!(!table.is_known(40));
        table.forget(40, 1); // unknown inode: ignored
        table.forget(ROOT_INO, 10);
        assert!(table.is_known(ROOT_INO));
        assert!(table.is_empty());
    }

    #[test]
    fn tombstones_live_until_forget() {
        let table = InodeTable::default();
        table.bury(attr(50)); // not held: nothing to keep
        assert_eq!(table.tombstone(50), None);
        table.remember(50);
        table.bury(attr(50));
        assert_eq!(table.tombstone(50).map(|a| a.nlink), Some(0));
        table.forget(50, 1);
        assert_eq!(table.tombstone(50), None);
    }
}
