//! Schema migrations, applied in order at open, each in the opening transaction (so a
//! crash leaves the old version intact); the check that refuses a newer database lives
//! here too.

use std::collections::{HashMap, HashSet};

use heed::RwTxn;

use super::{gc::Reference, nodes, nodes::NodeId, refs, schema::META_NAMESPACE, schema::SCHEMA_VERSION, schema::META_SCHEMA_VERSION, Dbs, Result, StoreError};
use crate::model::DEFAULT_NAMESPACE;
use crate::model::Timestamp;

/// Brings a database at `found` up to `SCHEMA_VERSION`, or refuses one that is newer.
pub(super) fn migrate(dbs: &Dbs, wtxn: &mut RwTxn, found: u32) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    if found < 2 {
        v1_to_v2(dbs, wtxn)?;
    }
    if found < 3 {
        v2_to_v3(dbs, wtxn)?;
    }
    // 3 → 4 moves nothing: records written since may have no target (labels before the
    // target), a target's text as written, and set times. The version says so, so that a
    // binary that cannot read them refuses the store instead of misreading it.
    if found < 5 {
        v4_to_v5();
    }
    if found < 6 {
        v5_to_v6(dbs, wtxn)?;
    }
    if found < 7 {
        v6_to_v7(dbs, wtxn)?;
    }
    dbs.meta.put(wtxn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
    Ok(())
}

/// Version 7 keeps a reference index beside the records (`refs.rs`): it is built from every
/// record, every lease is listed by its end, and every blob and snapshot is pending, so
/// the first collection judges the whole store once, as every collection did before.
fn v6_to_v7(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    log::info!("migrating the store from schema 6 to 7: indexing references");
    // (holder, the holder as a target for blobs and snapshots, its references)
    let mut holders: Vec<(refs::Holder, Option<Reference>, refs::Edges)> = Vec::new();
    let mut leases = Vec::new();
    for item in dbs.images.iter(wtxn)? {
        let (id, image) = item?;
        holders.push((refs::Holder::Image(NodeId(id)), None, refs::image_edges(&image)));
    }
    for item in dbs.containers.iter(wtxn)? {
        let (id, container) = item?;
        holders.push((refs::Holder::Container(NodeId(id)), None, refs::container_edges(&container)));
    }
    for item in dbs.blobs.iter(wtxn)? {
        let (id, blob) = item?;
        if let Some(until) = blob.lease_until {
            leases.push((NodeId(id), until));
        }
        let edges = refs::blob_edges(&blob);
        holders.push((refs::Holder::Blob(NodeId(id)), Some(Reference::Blob(blob.digest)), edges));
    }
    for item in dbs.snapshots.iter(wtxn)? {
        let (id, snapshot) = item?;
        let edges = refs::snapshot_edges(&snapshot);
        holders.push((refs::Holder::Snapshot(NodeId(id)), Some(Reference::Snapshot(snapshot.key)), edges));
    }
    for (holder, this, edges) in &holders {
        refs::insert_edges(dbs, wtxn, *holder, edges)?;
        if let Some(this) = this {
            refs::insert_pending(dbs, wtxn, this)?;
        }
    }
    // Schema 6's next collection would have ended the lease of whatever an image or a
    // container reaches; schema 7 ends leases at the writes that come to reach, so what is
    // reached already loses its lease here, or it would outlive its image by up to a lease.
    let reached = blobs_reached_from_roots(&holders);
    for (id, until) in leases {
        if reached.contains(&id) {
            if let Some(mut blob) = dbs.blobs.get(wtxn, &id.0)? {
                blob.lease_until = None;
                dbs.blobs.put(wtxn, &id.0, &blob)?;
            }
        } else {
            refs::insert_lease(dbs, wtxn, id, until)?;
        }
    }
    Ok(())
}

/// The blob nodes an image or container reaches, through every record's references.
fn blobs_reached_from_roots(holders: &[(refs::Holder, Option<Reference>, refs::Edges)]) -> HashSet<NodeId> {
    let by_name: HashMap<&Reference, (refs::Holder, &refs::Edges)> =
        holders.iter().filter_map(|(holder, this, edges)| this.as_ref().map(|t| (t, (*holder, edges)))).collect();
    let mut work: Vec<&Reference> = holders
        .iter()
        .filter(|(holder, _, _)| holder.is_root())
        .flat_map(|(_, _, edges)| edges.iter().map(|(r, _)| r))
        .collect();
    let (mut seen, mut blobs) = (HashSet::new(), HashSet::new());
    while let Some(reference) = work.pop() {
        if !seen.insert(reference) {
            continue;
        }
        if let Some((holder, edges)) = by_name.get(reference) {
            if let refs::Holder::Blob(id) = holder {
                blobs.insert(*id);
            }
            work.extend(edges.iter().map(|(r, _)| r));
        }
    }
    blobs
}

/// Version 6 names the namespace a store holds. Before it there was one namespace, and
/// the state directory's own store was it: its objects are `default`'s, where they are
/// (each namespace has a store of its own, so nothing moves).
fn v5_to_v6(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    log::info!("migrating the store from schema 5 to 6: its objects are namespace {DEFAULT_NAMESPACE}'s");
    dbs.meta.put(wtxn, META_NAMESPACE, DEFAULT_NAMESPACE.as_bytes())?;
    Ok(())
}

/// Version 2 added the content store and snapshots: two record databases (created empty
/// at open) and the fixed directories `content/{sha256,sha512}/` and `snapshots/`.
fn v1_to_v2(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    log::info!("migrating the store from schema 1 to 2: adding content/ and snapshots/");
    nodes::link_v2_fixed_nodes(dbs, wtxn, Timestamp::now())
}

/// Version 5 adds the event journal. Its database is created (empty) at every open, so
/// nothing moves; the version keeps an older binary, which would commit changes without
/// their events, from opening the store. The journal starts with the next change.
fn v4_to_v5() {
    log::info!("migrating the store to schema 5: an empty event journal");
}

/// Version 3 keeps each container's spec apart from its record, as bytes: the spec of a
/// version-2 record becomes the pretty JSON (and newline) that `cat spec` showed, so
/// nothing a user sees changes.
fn v2_to_v3(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    let raw = dbs.containers.remap_data_type::<heed::types::Bytes>();
    let mut moved = Vec::new();
    for item in raw.iter(wtxn)? {
        let (id, bytes) = item?;
        let mut record: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("container record {id}: {e}")))?;
        let spec = record.as_object_mut().and_then(|o| o.remove("spec")).filter(|s| !s.is_null());
        moved.push((id, record, spec));
    }
    if !moved.is_empty() {
        log::info!("migrating the store from schema 2 to 3: {} container spec(s) move to their own database", moved.len());
    }
    for (id, record, spec) in moved {
        let record = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(format!("container record {id}: {e}")))?;
        raw.put(wtxn, &id, &record)?;
        if let Some(spec) = spec {
            let mut text = serde_json::to_string_pretty(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            text.push('\n');
            dbs.specs.put(wtxn, &id, text.as_bytes())?;
        }
    }
    Ok(())
}
