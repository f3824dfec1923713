//! Collection: the store decides what goes in one transaction, then the files of what
//! went are removed. Runs right after every delete that can free something (what
//! referenced nothing frees nothing), and at start-up, where it also finishes what a
//! crash left: ingests never closed, files whose records are gone, rootfs mounts of
//! deleted tasks.

use std::collections::HashSet;

use super::{lock, Event, Result, ServiceError, Services};
use crate::model::{BlobState, Timestamp};
use crate::store::{schema, Collected, StoreRead};

impl Services {
    /// One collection. Files that cannot be removed now are logged; the start-up sweep
    /// removes them later, since their records are already gone.
    pub fn collect_garbage(&self) -> Result<Collected> {
        let Some(res) = &self.resources else { return Ok(Collected::default()) };
        let collected = {
            // Blob files go under the same lock as their records (see Resources::blob_files);
            // snapshot directories, which can take long, after it is released.
            let _files = lock(&res.blob_files);
            let collected =
                res.with_in_flight(|keys| self.store.write(|w| w.collect_garbage(keys, Timestamp::now())))?;
            if !collected.is_empty() {
                crate::fault::point(crate::fault::points::COLLECTED_RECORDS);
            }
            for (_, digest) in &collected.blobs {
                log::info!("collected blob {digest}");
                if let Err(e) = res.content.remove(digest) {
                    log::error!("blob {digest}: record collected, file left for the next start-up: {e}");
                }
            }
            collected
        };
        for (id, key) in &collected.snapshots {
            log::info!("collected snapshot {key}");
            if let Err(e) = res.snapshots.remove(id.0) {
                log::error!("snapshot {key}: record collected, files left for the next start-up: {e}");
            }
        }
        if !collected.is_empty() {
            self.emit(Event::Collected(collected.clone()));
        }
        Ok(collected)
    }

    /// Collects after a delete; a failure is logged, not returned, since the delete itself
    /// was committed and the next collection retries.
    pub fn collect_after_delete(&self) {
        if let Err(e) = self.collect_garbage() {
            log::error!("collection after a delete failed (retried at the next one): {e}");
        }
    }

    /// Start-up recovery of blobs and snapshots; see the module comment.
    pub fn recover_resources(&self) -> Result<()> {
        let Some(res) = &self.resources else { return Ok(()) };
        let (blobs, _) = self.store.read()?.record_ids()?;
        for (id, blob) in blobs.iter().filter(|(_, b)| b.state == BlobState::Ingesting) {
            log::info!("blob {}: its writer never closed it before the daemon stopped; dropped", blob.digest);
            self.store.write(|w| w.discard_blob(*id))?;
        }
        self.unmount_orphan_rootfs()?;
        self.collect_garbage()?;
        let (blobs, snapshots) = self.store.read()?.record_ids()?;
        let keep: HashSet<String> = blobs.into_iter().map(|(_, b)| b.digest).collect();
        for digest in res.content.sweep(&keep)? {
            log::info!("removed blob file {digest}: it had no record (a collection was interrupted)");
        }
        let ids: HashSet<u64> = snapshots.iter().map(|(id, _)| id.0).collect();
        for id in res.snapshots.ids_on_disk()? {
            if !ids.contains(&id) {
                // A directory that cannot go now (something mounted inside it?) must not keep
                // the filesystem from mounting: it is retried at the next start-up.
                match res.snapshots.remove(id) {
                    Ok(()) => log::info!(
                        "removed snapshot directory {id}: it had no record (an unpack or collection was interrupted)"
                    ),
                    Err(e) => log::error!("snapshot directory {id} has no record but could not be removed: {e}"),
                }
            }
        }
        Ok(())
    }

    /// A rootfs mount point whose task record is gone (deleted while the daemon was down,
    /// or the daemon died between the two) is unmounted and removed.
    fn unmount_orphan_rootfs(&self) -> Result<()> {
        let Some(res) = &self.resources else { return Ok(()) };
        let entries = std::fs::read_dir(&res.rootfs_dir)
            .map_err(|e| ServiceError::Host(format!("list {}: {e}", res.rootfs_dir.display())))?;
        let reader = self.store.read()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if reader.lookup(schema::TASKS, &name)?.is_none() {
                log::info!("task {name}: unmounting the root filesystem of a task that no longer exists");
                self.release_rootfs(&name);
            }
        }
        Ok(())
    }
}
