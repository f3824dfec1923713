//! What the kernel may keep in its page cache, and when it may trust it.
//!
//! Files whose bytes are a pure function of committed state (an image's or a container's
//! attribute files, a committed blob) are opened without direct I/O, so a
//! re-read of an unchanged file never reaches the daemon. Two mechanisms keep that honest:
//!
//! - every change the daemon knows of invalidates the inodes it touched (`notify.rs`,
//!   `Notice::Content`), and a request that made the change answers only once the kernel
//!   was told (`FsCore::changed`);
//! - every open (the kernel always asks) compares a fingerprint of the content as it is now
//!   with the fingerprint of what reads last put in the kernel's pages. Only a match, or
//!   pages known to be empty, lets the kernel keep them (`FOPEN_KEEP_CACHE`); a mismatch
//!   means some change was not announced: that open reads direct, and the inode's pages
//!   are invalidated for the next one.
//!
//! Races: pages are filled by read requests, which the kernel sends after it has put the
//! (locked) pages in its cache. A fill renders the content as of now, and the fill, the
//! open's decision and the start of an invalidation are serialised per inode here
//! (`serve`), so a fill of content older than a change can only complete before the
//! invalidation of that change starts, which then waits for the page and drops it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use super::ino::AttrFile;
use crate::store::NodeKind;

const SHARDS: usize = 16;

/// Files above this size are not cached but read direct, from a snapshot taken at open:
/// a reader of a large document (a 4 MiB spec) reads it in many requests, and only the
/// snapshot keeps those requests consistent with each other when a change lands between
/// them. A cached file's requests each show the content as of that request.
pub const MAX_CACHED_BYTES: usize = 128 << 10;

/// What the kernel's pages of one inode may hold, as far as the daemon knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Content with this fingerprint (or nothing).
    Filled(u64),
    /// An invalidation is on its way: pages may still hold anything.
    Invalidating,
    /// Reads put content of more than one version in the pages (a change the daemon did
    /// not announce, or a fill while an invalidation ran): nothing is trusted until an
    /// invalidation that starts after this has been sent.
    Distrusted,
}

/// How an open of a cacheable file is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Reads bypass the page cache (streams, growing files, writers, large documents, and
    /// a cacheable file whose pages cannot be trusted right now).
    Direct,
    /// Reads go through the page cache, and the pages already there are kept.
    Cached,
    /// Reads reach the daemon (direct I/O), and each pass from offset 0 shows the content
    /// as of then: a task's status, which the daemon changes on its own (at its exit).
    /// Through the page cache, a poller's read could be cut at the size the kernel learnt
    /// just before the change, and show half a document.
    Live,
}

/// The table of what each inode's pages may hold; an inode absent holds no pages (never
/// filled, invalidated since, or forgotten by the kernel).
#[derive(Debug, Default)]
pub struct PageCache {
    shards: [Mutex<HashMap<u64, Served>>; SHARDS],
}

impl PageCache {
    fn shard(&self, ino: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Served>> {
        // Every update under these locks is a single insertion or removal.
        self.shards[(ino as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `body` with the inode's entry locked: a fill or an open decision and its reply
    /// to the kernel happen inside, so no invalidation starts between them. `body` must not
    /// wait for anything but the kernel's acceptance of the reply.
    pub fn serve<R>(&self, ino: u64, body: impl FnOnce(&mut Slot<'_>) -> R) -> R {
        let mut shard = self.shard(ino);
        let mut slot = Slot { ino, map: &mut shard };
        body(&mut slot)
    }

    /// An invalidation of `ino` is about to be sent: nothing the pages hold is trusted until
    /// it was.
    pub fn invalidating(&self, ino: u64) {
        self.shard(ino).insert(ino, Served::Invalidating);
    }

    /// The invalidation of `ino` was sent: its pages are empty, unless a fill came since
    /// (which marked them distrusted and asked for another invalidation).
    pub fn invalidated(&self, ino: u64) {
        let mut shard = self.shard(ino);
        if shard.get(&ino) == Some(&Served::Invalidating) {
            shard.remove(&ino);
        }
    }

    /// The kernel forgot the inode, and its pages with it.
    pub fn forget(&self, ino: u64) {
        self.shard(ino).remove(&ino);
    }

    /// What the pages of `ino` may hold (for tests and diagnostics).
    pub fn served(&self, ino: u64) -> Option<Served> {
        self.shard(ino).get(&ino).copied()
    }
}

/// One inode's entry, locked.
pub struct Slot<'a> {
    ino: u64,
    map: &'a mut HashMap<u64, Served>,
}

impl Slot<'_> {
    /// How an open whose content has `fingerprint` now may use the cache: kept when the
    /// pages hold that content or nothing; direct when they may hold something else.
    pub fn open_mode(&self, fingerprint: u64) -> OpenMode {
        match self.map.get(&self.ino) {
            None => OpenMode::Cached,
            Some(Served::Filled(held)) if *held == fingerprint => OpenMode::Cached,
            Some(_) => OpenMode::Direct,
        }
    }

    /// A read through a descriptor that reads direct is about to be answered. `read(2)` on
    /// such a descriptor bypasses the pages, but `sendfile`, `splice` and `mmap` fill them
    /// from its answers (a writer's uncommitted bytes, an old snapshot): nothing the pages
    /// hold is trusted until an invalidation that starts after this was sent.
    /// False when the pages were distrusted already: the invalidation asked for then has
    /// not started, and covers this read too.
    #[must_use]
    pub fn distrust(&mut self) -> bool {
        self.map.insert(self.ino, Served::Distrusted) != Some(Served::Distrusted)
    }

    /// A read is about to put content with `fingerprint` in the pages. False when the
    /// pages may now hold more than one version: the caller must have them invalidated.
    #[must_use]
    pub fn filled(&mut self, fingerprint: u64) -> bool {
        let consistent = match self.map.get(&self.ino) {
            None => true,
            Some(Served::Filled(held)) => *held == fingerprint,
            Some(Served::Invalidating | Served::Distrusted) => false,
        };
        self.map.insert(self.ino, if consistent { Served::Filled(fingerprint) } else { Served::Distrusted });
        consistent
    }
}

/// A fingerprint of a file's bytes: equal content, equal fingerprint; different content
/// differs but for a 64-bit hash collision.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.len().hash(&mut hasher);
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Whether `file` of a node of `kind` may be cached by the kernel: its bytes depend only on
/// that node's record (and a container's spec), which changes only through requests on
/// that node, each of which invalidates it. Not cached: snapshots' files (their records
/// change under background work: usage measured, references from the whole graph, mounts
/// from the snapshotter), and everything that streams or grows.
pub fn is_cached_file(kind: NodeKind, file: AttrFile) -> bool {
    matches!(kind, NodeKind::ImageDir | NodeKind::Container)
        && matches!(
            file,
            AttrFile::Target
                | AttrFile::Labels
                | AttrFile::Info
                | AttrFile::Spec
                | AttrFile::Image
                | AttrFile::Snapshotter
                | AttrFile::Snapshot
                | AttrFile::Runtime
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inode_never_filled_may_be_cached() {
        let cache = PageCache::default();
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"a"))), OpenMode::Cached);
    }

    #[test]
    fn pages_of_other_content_are_not_trusted() {
        let cache = PageCache::default();
        assert!(cache.serve(40, |slot| slot.filled(fingerprint(b"old"))));
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"old"))), OpenMode::Cached);
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"new"))), OpenMode::Direct);
        // Another inode is unaffected.
        assert_eq!(cache.serve(41, |slot| slot.open_mode(fingerprint(b"new"))), OpenMode::Cached);
    }

    #[test]
    fn nothing_is_trusted_while_an_invalidation_is_on_its_way() {
        let cache = PageCache::default();
        assert!(cache.serve(40, |slot| slot.filled(fingerprint(b"old"))));
        cache.invalidating(40);
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"old"))), OpenMode::Direct);
        cache.invalidated(40);
        assert_eq!(cache.served(40), None);
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"new"))), OpenMode::Cached);
    }

    #[test]
    fn a_fill_during_an_invalidation_needs_another() {
        let cache = PageCache::default();
        cache.invalidating(40);
        assert!(!cache.serve(40, |slot| slot.filled(fingerprint(b"new"))), "the caller must ask for an invalidation");
        cache.invalidated(40);
        assert_eq!(cache.served(40), Some(Served::Distrusted));
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"new"))), OpenMode::Direct);
        // The invalidation it asked for clears it.
        cache.invalidating(40);
        cache.invalidated(40);
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"new"))), OpenMode::Cached);
    }

    #[test]
    fn fills_of_two_versions_are_distrusted() {
        let cache = PageCache::default();
        assert!(cache.serve(40, |slot| slot.filled(fingerprint(b"v1"))));
        assert!(cache.serve(40, |slot| slot.filled(fingerprint(b"v1"))));
        assert!(!cache.serve(40, |slot| slot.filled(fingerprint(b"v2"))));
        assert_eq!(cache.serve(40, |slot| slot.open_mode(fingerprint(b"v2"))), OpenMode::Direct);
    }

    #[test]
    fn fingerprints_tell_contents_apart() {
        assert_eq!(fingerprint(b"app=web\n"), fingerprint(b"app=web\n"));
        assert_ne!(fingerprint(b"app=web\n"), fingerprint(b"app=db\n"));
        assert_ne!(fingerprint(b""), fingerprint(b"\0"));
    }

    #[test]
    fn only_record_derived_files_of_images_and_containers_are_cached() {
        assert!(is_cached_file(NodeKind::Container, AttrFile::Info));
        assert!(is_cached_file(NodeKind::ImageDir, AttrFile::Target));
        assert!(!is_cached_file(NodeKind::Snapshot, AttrFile::Info));
        assert!(!is_cached_file(NodeKind::Snapshot, AttrFile::Usage));
        assert!(!is_cached_file(NodeKind::Snapshot, AttrFile::References));
    }
}
