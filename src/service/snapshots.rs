//! Snapshots: a container's root filesystem from its image, the mounts of a task's root
//! filesystem, and snapshot removal and measurement.
//!
//! Resolve the image's target to this platform's manifest, unpack each layer not yet
//! unpacked into a committed snapshot named by its chain ID (once, shared by every
//! container of every image with the same lower layers), prepare the container's active
//! snapshot on top, and mount it while the container's task exists. No store transaction
//! is held while layers are unpacked: records are written one short transaction per layer,
//! and the keys are held in flight so a collection cannot take them half-way.

use std::io::{BufReader, Read, Seek};
use std::path::PathBuf;

use super::resources::Resources;
use super::{lock, Result, ServiceError, Services};
use crate::model::oci::{chain_ids, Document, ImageConfig, Platform, MAX_DOCUMENT_BYTES};
use crate::model::{
    Container, ContainerField, Descriptor, Snapshot, SnapshotKind, Timestamp, LABEL_REF_SNAPSHOT,
};
use crate::snapshot::{mount_all, unmount, Compression, SnapshotError};
use crate::store::{resolve_image_dir, NodeId, StoreError, StoreRead};

/// An image resolved down to what unpacking needs.
struct ResolvedImage {
    name: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    chain: Vec<String>,
}

/// Nested indexes deeper than this are refused (a loop of indexes would never end).
const MAX_INDEX_DEPTH: usize = 4;

impl Services {
    /// The container's `snapshot` field is being set to `key`: prepares the snapshot from
    /// the container's image (when it has one) and records the field in the same
    /// transaction as the snapshot. Without an image only the field is recorded; the task's
    /// start prepares it once the image is known.
    pub(super) fn set_snapshot_key(&self, node: NodeId, key: &str) -> Result<()> {
        let container = self.container_record(node)?;
        // Task starts take the same gate: a root filesystem never changes under a start.
        let _gate = self.gate.enter(&container.id)?;
        check_key_change(&self.store.read()?, &container, key)?;
        let record_key = || {
            self.store.write(|w| -> Result<(), ServiceError> {
                check_key_change(w, &container, key)?;
                w.update_container(node, |c| c.set_field(ContainerField::Snapshot, key))?;
                Ok(())
            })
        };
        if key.is_empty() || container.image.is_empty() || self.resources.is_none() {
            record_key()?;
        } else {
            match self.prepare_active(node, &container, key) {
                // The image, or some of its blobs, are not here yet (a restore copying files
                // in its own order): the key is kept, and the task's start prepares it, or
                // refuses with the same errno then.
                Err(e @ (ServiceError::NoImage { .. } | ServiceError::MissingBlob { .. })) => {
                    log::info!("container {}: snapshot key {key} kept; prepared when its task starts ({e})", container.id);
                    record_key()?;
                }
                other => other?,
            }
        }
        if key != container.snapshot && !container.snapshot.is_empty() {
            self.collect_after_delete();
        }
        Ok(())
    }

    /// Makes sure active snapshot `key` exists for `container` (unpacking its image as
    /// needed) and that the container names it.
    fn prepare_active(&self, node: NodeId, container: &Container, key: &str) -> Result<()> {
        let res = self.resources()?;
        check_key_change(&self.store.read()?, container, key)?;
        let image = self.resolve_image(res, container)?;
        let mut held_keys = image.chain.clone();
        held_keys.push(key.to_owned());
        let _held = res.hold(&held_keys);
        let parents = self.unpack_layers(res, &image)?;
        let snapshotter = res.snapshotter_name();
        if self.store.read()?.snapshot_by_key(key)?.is_some() {
            // Adopted: an active snapshot no other container names.
            self.store.write(|w| -> Result<(), ServiceError> {
                check_key_change(w, container, key)?;
                w.update_container(node, |c| c.set_field(ContainerField::Snapshot, key))?;
                Ok(())
            })?;
            return Ok(());
        }
        let id = self.store.write(|w| w.reserve_node_id())?;
        res.snapshots.prepare_active(id.0, &ids(&parents))?;
        let usage = res.snapshots.usage(id.0)?;
        crate::fault::point(crate::fault::points::ACTIVE_PREPARED);
        let now = Timestamp::now();
        let snapshot = Snapshot::new(key, SnapshotKind::Active, image.chain.last().cloned(), snapshotter, Some(usage), now);
        let recorded = self.store.write(|w| -> Result<(), ServiceError> {
            check_key_change(w, container, key)?;
            w.create_snapshot(id, &snapshot)?;
            w.update_container(node, |c| c.set_field(ContainerField::Snapshot, key))?;
            Ok(())
        });
        if let Err(e) = recorded {
            if let Err(cleanup) = res.snapshots.remove(id.0) {
                log::error!("snapshot {key}: not recorded ({e}), and its directory stays until start-up: {cleanup}");
            }
            return Err(e);
        }
        log::info!("container {}: active snapshot {key} prepared on image {}", container.id, image.name);
        Ok(())
    }

    /// Walks the container's image down to one manifest for this platform and checks that
    /// every blob it needs is present.
    fn resolve_image(&self, res: &Resources, container: &Container) -> Result<ResolvedImage> {
        let name = container.image.clone();
        let no_image = || ServiceError::NoImage { container: container.id.clone(), image: name.clone() };
        let target = {
            let reader = self.store.read()?;
            let dir = resolve_image_dir(&reader, &name)?.ok_or_else(no_image)?;
            reader.image(dir.id)?.and_then(|i| i.target).ok_or_else(no_image)?
        };
        let missing = |digest: &str, what: String| ServiceError::MissingBlob { digest: digest.to_owned(), what, image: name.clone() };
        let read_document = |d: &Descriptor, what: &str| -> Result<Vec<u8>> {
            res.content.read_small(&d.digest, MAX_DOCUMENT_BYTES).map_err(|e| match e {
                e if e.is_not_found() => missing(&d.digest, what.to_owned()),
                e => e.into(),
            })
        };
        let mut descriptor = target;
        for _ in 0..=MAX_INDEX_DEPTH {
            let bytes = read_document(&descriptor, "manifest")?;
            match Document::parse(&descriptor.media_type, &bytes)? {
                Document::Index { manifests } => {
                    let platform = Platform::host();
                    descriptor = platform.choose(&manifests).cloned().ok_or_else(|| {
                        crate::model::ValidationError::InvalidImage {
                            reason: format!("image {name}: the index has no manifest for {platform}"),
                        }
                    })?;
                }
                Document::Manifest { config, layers } => {
                    let config_bytes = read_document(&config, "config")?;
                    let diff_ids = ImageConfig::parse(&config_bytes)?.diff_ids;
                    if diff_ids.len() != layers.len() {
                        return Err(crate::model::ValidationError::InvalidImage {
                            reason: format!("image {name}: {} layers but {} diff_ids in the config", layers.len(), diff_ids.len()),
                        }
                        .into());
                    }
                    for (i, layer) in layers.iter().enumerate() {
                        if !res.content.path(&layer.digest).exists() {
                            return Err(missing(&layer.digest, format!("layer {i}")));
                        }
                    }
                    let chain = chain_ids(&diff_ids);
                    return Ok(ResolvedImage { name, config, layers, diff_ids, chain });
                }
            }
        }
        Err(crate::model::ValidationError::InvalidImage { reason: format!("image {name}: indexes nested too deep") }.into())
    }

    /// Unpacks the layers not yet unpacked; returns the chain's snapshot ids, top first,
    /// and labels the config blob so the image pins the chain.
    fn unpack_layers(&self, res: &Resources, image: &ResolvedImage) -> Result<Vec<NodeId>> {
        let mut chain_nodes: Vec<NodeId> = Vec::with_capacity(image.chain.len());
        for (index, key) in image.chain.iter().enumerate() {
            let unpack_lock = res.unpack_lock(key);
            let _unpacking = lock(&unpack_lock);
            if let Some((id, existing)) = self.store.read()?.snapshot_by_key(key)? {
                if existing.kind != SnapshotKind::Committed {
                    return Err(StoreError::AlreadyExists { kind: "active snapshot", key: key.clone() }.into());
                }
                chain_nodes.push(id);
                continue;
            }
            let parents: Vec<NodeId> = chain_nodes.iter().rev().copied().collect();
            let id = self.unpack_layer(res, image, index, &parents)?;
            chain_nodes.push(id);
        }
        if let Some(top) = image.chain.last() {
            let label = format!("{LABEL_REF_SNAPSHOT}{}", res.snapshotter_name());
            self.store.write(|w| -> Result<(), ServiceError> {
                if let Some((blob, record)) = w.blob_by_digest(&image.config.digest)? {
                    if record.labels.get(&label) != Some(top.as_str()) {
                        w.update_labels(blob, |l| l.set(&label, top))?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(chain_nodes.into_iter().rev().collect())
    }

    fn unpack_layer(&self, res: &Resources, image: &ResolvedImage, index: usize, parents: &[NodeId]) -> Result<NodeId> {
        let layer = &image.layers[index];
        let key = &image.chain[index];
        let id = self.store.write(|w| w.reserve_node_id())?;
        let unpacked = (|| -> Result<crate::model::Usage> {
            let mut file = BufReader::with_capacity(1 << 20, res.content.open_blob(&layer.digest)?);
            let compression = layer_compression(&layer.media_type, &mut file)?;
            let applied = res.snapshots.unpack_layer(id.0, &ids(parents), file, compression)?;
            if applied.diff_id != image.diff_ids[index] {
                return Err(SnapshotError::Invalid(format!(
                    "layer {index} ({}) unpacks to {}, but the image config says {}",
                    layer.digest, applied.diff_id, image.diff_ids[index]
                ))
                .into());
            }
            Ok(res.snapshots.usage(id.0)?)
        })();
        let recorded = unpacked.and_then(|usage| {
            crate::fault::point(crate::fault::points::LAYER_UNPACKED);
            let now = Timestamp::now();
            let parent = index.checked_sub(1).map(|i| image.chain[i].clone());
            let snapshot = Snapshot::new(key, SnapshotKind::Committed, parent, res.snapshotter_name(), Some(usage), now);
            self.store.write(|w| w.create_snapshot(id, &snapshot)).map_err(ServiceError::from)
        });
        if let Err(e) = recorded {
            if let Err(cleanup) = res.snapshots.remove(id.0) {
                log::error!("snapshot {key}: unpack failed ({e}) and its directory stays until start-up: {cleanup}");
            }
            return Err(e);
        }
        log::info!("image {}: layer {index} unpacked as snapshot {key}", image.name);
        Ok(id)
    }

    /// Mounts the root filesystem of task `id` when its container has a snapshot (preparing
    /// it from the image if only the key was written); returns the mount point, or `None`
    /// when the spec's own `root.path` is used.
    pub(super) fn mount_rootfs(&self, id: &str) -> Result<Option<PathBuf>> {
        let Some(res) = &self.resources else { return Ok(None) };
        let (node, container) = {
            let reader = self.store.read()?;
            let node = reader.lookup(crate::store::schema::CONTAINERS, id)?.ok_or_else(|| ServiceError::NoContainer(id.into()))?;
            (node.id, reader.container(node.id)?.ok_or_else(|| ServiceError::NoContainer(id.into()))?)
        };
        let key = container.snapshot.clone();
        if key.is_empty() {
            return Ok(None);
        }
        let existing = self.store.read()?.snapshot_by_key(&key)?;
        if existing.is_none() {
            if container.image.is_empty() {
                return Ok(None);
            }
            self.prepare_active(node, &container, &key)?;
        }
        let reader = self.store.read()?;
        let (snapshot_id, snapshot) = reader.snapshot_by_key(&key)?.ok_or_else(|| ServiceError::Gone(format!("snapshot {key}")))?;
        // Committed, or another container's: never run on it.
        check_key_free(&reader, &container.id, &key)?;
        let mounts = self.snapshot_mounts(&reader, snapshot_id, &snapshot)?;
        drop(reader);
        let target = res.rootfs_of(id);
        unmount(&target)?;
        std::fs::create_dir_all(&target).map_err(|e| ServiceError::Host(format!("create {}: {e}", target.display())))?;
        if let Err(e) = mount_all(&mounts, &target) {
            // A bind that mounted before its read-only remount failed must not stay.
            self.release_rootfs(id);
            return Err(e.into());
        }
        Ok(Some(target))
    }

    /// Unmounts task `id`'s root filesystem, if it has one; failures are logged (the
    /// start-up sweep retries).
    pub(super) fn release_rootfs(&self, id: &str) {
        let Some(res) = &self.resources else { return };
        let target = res.rootfs_of(id);
        if !target.exists() {
            return;
        }
        // What the task wrote is measured once here rather than at every stat of `usage`.
        if let Err(e) = self.record_rootfs_usage(id) {
            log::warn!("task {id}: usage of its snapshot not recorded: {e}");
        }
        let released = unmount(&target).map_err(ServiceError::from).and_then(|()| {
            std::fs::remove_dir(&target).map_err(|e| ServiceError::Host(format!("remove {}: {e}", target.display())))
        });
        if let Err(e) = released {
            log::error!("task {id}: root filesystem not released: {e}");
        }
    }

    fn record_rootfs_usage(&self, id: &str) -> Result<()> {
        let snapshot = {
            let reader = self.store.read()?;
            let Some(node) = reader.lookup(crate::store::schema::CONTAINERS, id)? else { return Ok(()) };
            let Some(container) = reader.container(node.id)? else { return Ok(()) };
            reader.snapshot_by_key(&container.snapshot)?.map(|(snapshot, _)| snapshot)
        };
        if let Some(snapshot) = snapshot {
            self.measure_usage(snapshot)?;
        }
        Ok(())
    }

    /// How to mount a snapshot: writable when active, a read-only view when committed.
    pub fn snapshot_mounts(
        &self,
        reader: &impl StoreRead,
        id: NodeId,
        snapshot: &Snapshot,
    ) -> Result<Vec<crate::model::Mount>> {
        let res = self.resources()?;
        let parents = self.parent_chain(reader, snapshot)?;
        Ok(res.snapshots.mounts(id.0, &ids(&parents), snapshot.kind == SnapshotKind::Active))
    }

    /// The node ids of a snapshot's parents, the parent first.
    fn parent_chain(&self, reader: &impl StoreRead, snapshot: &Snapshot) -> Result<Vec<NodeId>> {
        let mut chain = Vec::new();
        let mut next = snapshot.parent.clone();
        while let Some(key) = next {
            let (id, parent) = reader
                .snapshot_by_key(&key)?
                .ok_or_else(|| StoreError::Corrupt(format!("snapshot {} has a missing parent {key}", snapshot.key)))?;
            chain.push(id);
            next = parent.parent;
        }
        Ok(chain)
    }

    fn container_record(&self, node: NodeId) -> Result<Container> {
        self.store.read()?.container(node)?.ok_or_else(|| ServiceError::Gone(format!("container node {}", node.0)))
    }
}

/// Whether `container` may name `key` now: not while its task exists (unless the key
/// stays), and only a key no other container names and no committed snapshot has.
fn check_key_change(reader: &impl StoreRead, container: &Container, key: &str) -> Result<()> {
    if key != container.snapshot && reader.lookup(crate::store::schema::TASKS, &container.id)?.is_some() {
        return Err(StoreError::InUse {
            what: format!("container {}'s root filesystem", container.id),
            by: format!("task {}", container.id),
        }
        .into());
    }
    if key.is_empty() {
        return Ok(());
    }
    check_key_free(reader, &container.id, key)
}

/// Refuses a key another container uses or a committed snapshot has.
fn check_key_free(reader: &impl StoreRead, container_id: &str, key: &str) -> Result<()> {
    if let Some((_, snapshot)) = reader.snapshot_by_key(key)? {
        if snapshot.kind == SnapshotKind::Committed {
            return Err(StoreError::AlreadyExists { kind: "committed snapshot", key: key.to_owned() }.into());
        }
    }
    let users = reader.referrers(crate::store::Target::Snapshot(key))?;
    match users.iter().find(|r| matches!(r, crate::store::Referrer::Container(id) if id != container_id)) {
        Some(user) => Err(StoreError::InUse { what: format!("snapshot {key}"), by: user.to_string() }.into()),
        None => Ok(()),
    }
}

/// How a layer blob is compressed: its media type says, and where it does not (Docker's
/// and custom types), the first bytes do.
fn layer_compression(media_type: &str, file: &mut BufReader<std::fs::File>) -> Result<Compression> {
    if media_type.contains("zstd") {
        return Err(SnapshotError::Invalid(format!("{media_type}: zstd layers are not supported")).into());
    }
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| ServiceError::Host(format!("read layer: {e}")))?;
    file.rewind().map_err(|e| ServiceError::Host(format!("rewind layer: {e}")))?;
    Ok(Compression::sniff(&magic[..n]))
}

fn ids(nodes: &[NodeId]) -> Vec<u64> {
    nodes.iter().map(|n| n.0).collect()
}

impl Services {
    /// `rmdir snapshots/<key>`: deletes a snapshot nothing references.
    pub fn delete_snapshot(&self, key: &str) -> Result<crate::store::Node> {
        let res = self.resources()?;
        // A key being unpacked or prepared is about to be used.
        let (node, _) = res.with_in_flight(|held| {
            if held.contains(&crate::store::Reference::Snapshot(key.to_owned())) {
                return Err(ServiceError::from(StoreError::InUse { what: format!("snapshot {key}"), by: "an unpack".into() }));
            }
            Ok(self.store.write(|w| w.delete_snapshot(key))?)
        })?;
        res.snapshots.remove(node.id.0)?;
        log::info!("snapshot {key} deleted");
        self.collect_after_delete();
        Ok(node)
    }

    /// Measures an active snapshot's own files now and records the figure when it changed.
    /// Committed snapshots never change: their recorded figure is returned.
    pub fn measure_usage(&self, id: NodeId) -> Result<crate::model::Usage> {
        let res = self.resources()?;
        let recorded = self.store.read()?.snapshot(id)?.ok_or_else(|| ServiceError::Gone(format!("snapshot node {}", id.0)))?;
        if let (SnapshotKind::Committed, Some(usage)) = (recorded.kind, recorded.usage) {
            return Ok(usage);
        }
        let usage = res.snapshots.usage(id.0)?;
        if recorded.usage != Some(usage) {
            self.store.write(|w| {
                w.update_snapshot(id, |s| {
                    s.usage = Some(usage);
                    Ok(())
                })
            })?;
        }
        Ok(usage)
    }
}
