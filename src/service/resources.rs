//! The host-side resources the filesystem composes with the store: the blob files, the
//! snapshot directories, and the bookkeeping that keeps a collection from taking what an
//! unpack is still building.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::content::ContentStore;
use crate::snapshot::{Driver, Snapshotter};
use crate::store::Reference;

use super::{lock, Result};

/// Where and how blobs and snapshots are kept.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    /// `STATE_DIR/content`.
    pub content_dir: PathBuf,
    /// `STATE_DIR/snapshots`.
    pub snapshots_dir: PathBuf,
    /// `STATE_DIR/rootfs`: where a task's snapshot is mounted while it exists.
    pub rootfs_dir: PathBuf,
    /// The snapshotter, or `None` to use overlayfs where it mounts.
    pub driver: Option<Driver>,
    /// How long a blob nothing references is kept (containerd's ingest lease).
    pub lease: Duration,
    /// The state directory whose other namespaces' blobs are shared by digest, if any.
    pub shared_content: Option<PathBuf>,
}

impl ResourceConfig {
    /// The usual layout under one state directory.
    pub fn under(state_dir: &Path, driver: Option<Driver>, lease: Duration) -> ResourceConfig {
        ResourceConfig {
            content_dir: state_dir.join("content"),
            snapshots_dir: state_dir.join("snapshots"),
            rootfs_dir: state_dir.join("rootfs"),
            driver,
            lease,
            shared_content: None,
        }
    }

    /// Shares blobs by digest with the other namespaces of `state_root`.
    pub fn sharing_content_of(mut self, state_root: &Path) -> ResourceConfig {
        self.shared_content = Some(state_root.to_path_buf());
        self
    }
}

/// The open resources.
pub struct Resources {
    pub(super) content: ContentStore,
    pub(super) snapshots: Snapshotter,
    pub(super) rootfs_dir: PathBuf,
    pub(super) lease: Duration,
    /// References held from outside the records, with how many holders each has: snapshot
    /// keys being unpacked or prepared, and what open writers' files referenced at open.
    /// A collection holds this lock for its whole transaction, so a reference registered
    /// here before its record is committed (or while its record is being rewritten) is
    /// never collected.
    in_flight: Arc<Mutex<HashMap<Reference, usize>>>,
    /// Serializes every change to blob files with the record change it goes with (a
    /// writer's rename + commit, a delete's or collection's transaction + unlink), so a
    /// collection can never unlink the file a new writer of the same digest just placed.
    pub(super) blob_files: Mutex<()>,
    /// One lock per chain ID being unpacked, so an image's layers are unpacked once even
    /// when several containers of it start at the same moment.
    unpacking: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Resources {
    /// Opens the content store and the snapshotter.
    pub fn open(config: &ResourceConfig) -> Result<Resources> {
        let mut content = ContentStore::open(&config.content_dir)?;
        if let Some(state_root) = &config.shared_content {
            content = content.sharing_with(crate::content::Peers { state_root: state_root.clone() });
        }
        let snapshots = Snapshotter::open(&config.snapshots_dir, config.driver)?;
        // Private like the rest of the state directory: a mounted root filesystem holds
        // the image's setuid binaries.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&config.rootfs_dir)
            .map_err(|e| super::ServiceError::Host(format!("create {}: {e}", config.rootfs_dir.display())))?;
        Ok(Resources {
            content,
            snapshots,
            rootfs_dir: config.rootfs_dir.clone(),
            lease: config.lease,
            in_flight: Arc::default(),
            blob_files: Mutex::default(),
            unpacking: Mutex::default(),
        })
    }

    /// The snapshotter's name (`overlayfs` or `native`).
    pub fn snapshotter_name(&self) -> &'static str {
        self.snapshots.driver().name()
    }

    /// Protects snapshot `keys` from collection until the guard drops.
    pub(super) fn hold(&self, keys: &[String]) -> HeldRefs {
        self.hold_refs(keys.iter().map(|k| Reference::Snapshot(k.clone())).collect())
    }

    /// Protects `refs` from collection until the guard drops.
    pub(super) fn hold_refs(&self, refs: Vec<Reference>) -> HeldRefs {
        let mut held = lock(&self.in_flight);
        for r in &refs {
            *held.entry(r.clone()).or_insert(0) += 1;
        }
        HeldRefs { table: Arc::clone(&self.in_flight), refs }
    }

    /// Runs `collect` with the set of held references, holding the lock throughout.
    pub(super) fn with_in_flight<T>(&self, collect: impl FnOnce(&HashSet<Reference>) -> T) -> T {
        let held = lock(&self.in_flight);
        let refs: HashSet<Reference> = held.keys().cloned().collect();
        collect(&refs)
    }

    /// The lock that serializes unpacking of one chain ID.
    pub(super) fn unpack_lock(&self, chain_id: &str) -> Arc<Mutex<()>> {
        let mut locks = lock(&self.unpacking);
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(chain_id.to_owned()).or_default().clone()
    }

    /// Where task `id`'s root filesystem is mounted.
    pub(super) fn rootfs_of(&self, id: &str) -> PathBuf {
        self.rootfs_dir.join(id)
    }
}

/// References protected from collection; released on drop.
#[derive(Debug)]
pub struct HeldRefs {
    table: Arc<Mutex<HashMap<Reference, usize>>>,
    refs: Vec<Reference>,
}

impl Drop for HeldRefs {
    fn drop(&mut self) {
        let mut held = lock(&self.table);
        for r in &self.refs {
            if let Some(count) = held.get_mut(r) {
                *count -= 1;
                if *count == 0 {
                    held.remove(r);
                }
            }
        }
    }
}
