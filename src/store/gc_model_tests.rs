//! The collection against a reference model: random changes to images, containers, blobs
//! and snapshots, and after each collection what is left must be exactly what a full mark
//! from the roots (the collector ctrfs had before the reference index) keeps. After every
//! change the index must be what the records say, and a refused removal must be one the
//! full mark refuses.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::refs::check_index;
use super::testing::temp_store;
use super::*;
use crate::model::{label_refs, BlobState, ContainerField, Descriptor, LabelRef, Labels, Snapshot, SnapshotKind};
use crate::model::{Timestamp, LABEL_ROOT};

const FILLS: [char; 6] = ['a', 'b', 'c', 'd', 'e', 'f'];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const SECOND: u64 = 1_000_000_000;

fn digest(fill: usize) -> String {
    format!("sha256:{}", FILLS[fill].to_string().repeat(64))
}

fn hex(fill: usize) -> String {
    FILLS[fill].to_string().repeat(64)
}

#[derive(Debug, Clone)]
enum Ref {
    Blob(usize),
    Snapshot(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Blob { fill: usize, children: Vec<usize>, label: Option<Ref>, root: bool, lease: Option<u64> },
    Ingest { fill: usize },
    FinishIngest { fill: usize, lease: Option<u64> },
    BlobLabel { fill: usize, label: Option<Ref>, root: bool },
    Snap { key: usize, parent: Option<usize>, committed: bool, label: Option<Ref>, root: bool },
    SnapLabel { key: usize, label: Option<Ref>, root: bool },
    Image { name: usize, target: Option<usize>, label: Option<Ref> },
    DropImage { name: usize },
    Container { id: usize, snapshot: Option<usize>, label: Option<Ref> },
    DropContainer { id: usize },
    RmBlob { fill: usize },
    RmSnap { key: usize },
    Tick,
    Collect { in_flight: Option<Ref> },
}

fn a_ref() -> impl Strategy<Value = Option<Ref>> {
    prop_oneof![
        2 => Just(None),
        2 => (0..FILLS.len()).prop_map(|f| Some(Ref::Blob(f))),
        1 => (0..KEYS.len()).prop_map(|k| Some(Ref::Snapshot(k))),
    ]
}

fn an_op() -> impl Strategy<Value = Op> {
    let fill = 0..FILLS.len();
    let key = 0..KEYS.len();
    let lease = prop::option::of(0..3u64);
    prop_oneof![
        4 => (fill.clone(), prop::collection::vec(0..FILLS.len(), 0..3), a_ref(), prop::bool::weighted(0.15), lease.clone())
            .prop_map(|(fill, children, label, root, lease)| Op::Blob { fill, children, label, root, lease }),
        1 => fill.clone().prop_map(|fill| Op::Ingest { fill }),
        1 => (fill.clone(), lease).prop_map(|(fill, lease)| Op::FinishIngest { fill, lease }),
        2 => (fill.clone(), a_ref(), prop::bool::weighted(0.15)).prop_map(|(fill, label, root)| Op::BlobLabel { fill, label, root }),
        3 => (key.clone(), prop::option::of(0..KEYS.len()), any::<bool>(), a_ref(), prop::bool::weighted(0.1))
            .prop_map(|(key, parent, committed, label, root)| Op::Snap { key, parent, committed, label, root }),
        1 => (key.clone(), a_ref(), prop::bool::weighted(0.15)).prop_map(|(key, label, root)| Op::SnapLabel { key, label, root }),
        3 => (0..3usize, prop::option::of(0..FILLS.len()), a_ref()).prop_map(|(name, target, label)| Op::Image { name, target, label }),
        2 => (0..3usize).prop_map(|name| Op::DropImage { name }),
        3 => (0..3usize, prop::option::of(0..KEYS.len()), a_ref()).prop_map(|(id, snapshot, label)| Op::Container { id, snapshot, label }),
        2 => (0..3usize).prop_map(|id| Op::DropContainer { id }),
        1 => fill.prop_map(|fill| Op::RmBlob { fill }),
        1 => key.prop_map(|key| Op::RmSnap { key }),
        1 => Just(Op::Tick),
        3 => a_ref().prop_map(|in_flight| Op::Collect { in_flight }),
    ]
}

fn reference(r: &Ref) -> Reference {
    match r {
        Ref::Blob(f) => Reference::Blob(digest(*f)),
        Ref::Snapshot(k) => Reference::Snapshot(KEYS[*k].to_owned()),
    }
}

/// Sets (or with `None` removes) the one reference label the model uses, and `gc.root`.
fn relabel(labels: &mut Labels, label: &Option<Ref>, root: bool) -> Result<(), crate::model::ValidationError> {
    labels.remove("containerd.io/gc.ref.content.m");
    labels.remove("containerd.io/gc.ref.snapshot.overlayfs/m");
    match label {
        Some(Ref::Blob(f)) => labels.set("containerd.io/gc.ref.content.m", &digest(*f))?,
        Some(Ref::Snapshot(k)) => labels.set("containerd.io/gc.ref.snapshot.overlayfs/m", KEYS[*k])?,
        None => {}
    }
    if root {
        labels.set(LABEL_ROOT, "yes")?;
    } else {
        labels.remove(LABEL_ROOT);
    }
    Ok(())
}

/// What a full mark from the roots reaches: `strong` counts only images, containers,
/// writers and `gc.root` (what refuses a removal); otherwise in-flight references and
/// unexpired leases too (what a collection keeps).
fn full_mark(store: &Store, in_flight: &HashSet<Reference>, now: Timestamp, strong: bool) -> HashSet<Reference> {
    let reader = store.read().unwrap();
    let (blobs, snapshots) = reader.record_ids().unwrap();
    let blobs: HashMap<String, crate::model::Blob> = blobs.into_iter().map(|(_, b)| (b.digest.clone(), b)).collect();
    let snapshots: HashMap<String, Snapshot> = snapshots.into_iter().map(|(_, s)| (s.key.clone(), s)).collect();
    let labelled = |labels: &Labels| -> Vec<Reference> {
        label_refs(labels)
            .map(|r| match r {
                LabelRef::Content(d) => Reference::Blob(d.to_owned()),
                LabelRef::Snapshot { key, .. } => Reference::Snapshot(key.to_owned()),
            })
            .collect()
    };
    let mut roots: Vec<Reference> = Vec::new();
    reader
        .for_each_image(0, &mut |_, image| {
            roots.extend(image.target.iter().map(|t| Reference::Blob(t.digest.clone())));
            roots.extend(labelled(&image.labels));
            true
        })
        .unwrap();
    reader
        .for_each_container(0, &mut |_, container| {
            if !container.snapshot.is_empty() {
                roots.push(Reference::Snapshot(container.snapshot.clone()));
            }
            roots.extend(labelled(&container.labels));
            true
        })
        .unwrap();
    for blob in blobs.values() {
        let leased = !strong && blob.lease_until.is_some_and(|u| u > now);
        if blob.state == BlobState::Ingesting || is_gc_root(&blob.labels) || leased {
            roots.push(Reference::Blob(blob.digest.clone()));
        }
    }
    roots.extend(snapshots.values().filter(|s| is_gc_root(&s.labels)).map(|s| Reference::Snapshot(s.key.clone())));
    if !strong {
        roots.extend(in_flight.iter().cloned());
    }
    let mut marked = HashSet::new();
    while let Some(r) = roots.pop() {
        if !marked.insert(r.clone()) {
            continue;
        }
        match &r {
            Reference::Blob(d) => {
                if let Some(b) = blobs.get(d) {
                    roots.extend(b.children.iter().map(|c| Reference::Blob(c.clone())));
                    roots.extend(labelled(&b.labels));
                }
            }
            Reference::Snapshot(k) => {
                if let Some(s) = snapshots.get(k) {
                    roots.extend(s.parent.iter().map(|p| Reference::Snapshot(p.clone())));
                    roots.extend(labelled(&s.labels));
                }
            }
        }
    }
    marked
}

use crate::model::is_gc_root;

fn existing(store: &Store) -> HashSet<Reference> {
    let (blobs, snapshots) = store.read().unwrap().record_ids().unwrap();
    blobs
        .into_iter()
        .map(|(_, b)| Reference::Blob(b.digest))
        .chain(snapshots.into_iter().map(|(_, s)| Reference::Snapshot(s.key)))
        .collect()
}

fn lease_at(now: Timestamp, units: Option<u64>) -> Option<Timestamp> {
    units.map(|u| Timestamp::from_nanos(now.as_nanos() + (u + 1) * SECOND))
}

fn image_dir(w: &mut Writer<'_>, name: usize) -> Result<NodeId> {
    let name = format!("i{name}");
    match w.lookup(schema::IMAGES, &name)? {
        Some(node) => Ok(node.id),
        None => Ok(w.create_image_dir(schema::IMAGES, &name)?.id),
    }
}

fn container_node(w: &mut Writer<'_>, id: usize) -> Result<NodeId> {
    let id = format!("c{id}");
    match w.lookup(schema::CONTAINERS, &id)? {
        Some(node) => Ok(node.id),
        None => Ok(w.create_container(&id)?.0.id),
    }
}

/// Applies one operation; refusals are part of the game, but must agree with the model.
fn apply(store: &Store, op: &Op, now: &mut Timestamp) {
    let t = *now;
    match op {
        Op::Blob { fill, children, label, root, lease } => {
            let _ = store.write(|w| -> Result<()> {
                let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(*fill))?;
                w.commit_blob(node.id, 1, children.iter().map(|c| digest(*c)).collect(), lease_at(t, *lease))?;
                w.update_labels(node.id, |l| relabel(l, label, *root))?;
                Ok(())
            });
        }
        Op::Ingest { fill } => {
            let _ = store.write(|w| w.begin_blob(schema::CONTENT_SHA256, &hex(*fill)));
        }
        Op::FinishIngest { fill, lease } => {
            let _ = store.write(|w| -> Result<()> {
                let node = w.lookup(schema::CONTENT_SHA256, &hex(*fill))?.ok_or(StoreError::Corrupt("none".into()))?;
                w.commit_blob(node.id, 1, vec![], lease_at(t, *lease))?;
                Ok(())
            });
        }
        Op::BlobLabel { fill, label, root } => {
            let _ = store.write(|w| -> Result<()> {
                let node = w.lookup(schema::CONTENT_SHA256, &hex(*fill))?.ok_or(StoreError::Corrupt("none".into()))?;
                w.update_labels(node.id, |l| relabel(l, label, *root))?;
                Ok(())
            });
        }
        Op::Snap { key, parent, committed, label, root } => {
            let kind = if *committed { SnapshotKind::Committed } else { SnapshotKind::Active };
            let parent = parent.map(|p| KEYS[p].to_owned()).filter(|p| p != KEYS[*key]);
            let mut record = Snapshot::new(KEYS[*key], kind, parent, "overlayfs", None, t);
            relabel(&mut record.labels, label, *root).unwrap();
            let _ = store.write(|w| {
                let id = w.reserve_node_id()?;
                w.create_snapshot(id, &record)
            });
        }
        Op::SnapLabel { key, label, root } => {
            let _ = store.write(|w| -> Result<()> {
                let (id, _) = w.snapshot_by_key(KEYS[*key])?.ok_or(StoreError::Corrupt("none".into()))?;
                w.update_snapshot(id, |s| relabel(&mut s.labels, label, *root))?;
                Ok(())
            });
        }
        Op::Image { name, target, label } => {
            store
                .write(|w| -> Result<()> {
                    let dir = image_dir(w, *name)?;
                    match target {
                        Some(fill) => {
                            let descriptor = Descriptor::from_json(serde_json::json!({
                                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(*fill), "size": 1
                            }))?;
                            w.put_image_target(dir, descriptor, None)?;
                        }
                        None => w.clear_image_target(dir)?,
                    }
                    w.update_image_labels(dir, |l| relabel(l, label, false))?;
                    Ok(())
                })
                .unwrap();
        }
        Op::DropImage { name } => {
            let _ = store.write(|w| w.delete_image_dir(schema::IMAGES, &format!("i{name}")));
        }
        Op::Container { id, snapshot, label } => {
            store
                .write(|w| -> Result<()> {
                    let node = container_node(w, *id)?;
                    let key = snapshot.map(|k| KEYS[k]).unwrap_or("");
                    w.update_container(node, |c| {
                        c.set_field(ContainerField::Snapshot, key)?;
                        relabel(&mut c.labels, label, false)
                    })?;
                    Ok(())
                })
                .unwrap();
        }
        Op::DropContainer { id } => {
            let _ = store.write(|w| w.delete_container(&format!("c{id}")));
        }
        Op::RmBlob { fill } => {
            let target = Reference::Blob(digest(*fill));
            let before = store.read().unwrap().blob_by_digest(&digest(*fill)).unwrap();
            let pinned = full_mark(store, &HashSet::new(), t, true).contains(&target);
            let result = store.write(|w| w.delete_blob(schema::CONTENT_SHA256, &hex(*fill)));
            match before {
                Some((_, b)) if b.state == BlobState::Committed => {
                    assert_eq!(result.is_err(), pinned, "rm of {target:?}: {result:?}, full mark pinned: {pinned}")
                }
                _ => assert!(result.is_err()),
            }
        }
        Op::RmSnap { key } => {
            let target = Reference::Snapshot(KEYS[*key].to_owned());
            let reader = store.read().unwrap();
            let exists = reader.snapshot_by_key(KEYS[*key]).unwrap().is_some();
            let (_, snapshots) = reader.record_ids().unwrap();
            drop(reader);
            let has_child = snapshots.iter().any(|(_, s)| s.parent.as_deref() == Some(KEYS[*key]));
            let pinned = has_child || full_mark(store, &HashSet::new(), t, true).contains(&target);
            let result = store.write(|w| w.delete_snapshot(KEYS[*key]));
            if exists {
                assert_eq!(result.is_err(), pinned, "rmdir of {target:?}: {result:?}, full mark pinned: {pinned}");
            } else {
                assert!(result.is_err());
            }
        }
        Op::Tick => *now = Timestamp::from_nanos(now.as_nanos() + SECOND),
        Op::Collect { in_flight } => {
            let in_flight: HashSet<Reference> = in_flight.iter().map(reference).collect();
            let marked = full_mark(store, &in_flight, t, false);
            let expected: HashSet<Reference> = existing(store).into_iter().filter(|r| marked.contains(r)).collect();
            store.write(|w| w.collect_garbage(&in_flight, t)).unwrap();
            let left = existing(store);
            assert_eq!(left, expected, "what the collection left, against a full mark (in flight: {in_flight:?})");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn collection_by_the_index_keeps_exactly_what_a_full_mark_keeps(ops in prop::collection::vec(an_op(), 1..60)) {
        let (_dir, store) = temp_store();
        let mut now = Timestamp::now();
        for op in &ops {
            apply(&store, op, &mut now);
            if let Err(e) = check_index(&store.read().unwrap()) {
                panic!("after {op:?}: {e}");
            }
        }
        apply(&store, &Op::Collect { in_flight: None }, &mut now);
    }
}
