//! The collection rules, on real LMDB records: what each kind of reference keeps.

use std::collections::HashSet;

use super::testing::temp_store;
use super::*;
use crate::model::{ContainerField, Descriptor, Snapshot, SnapshotKind, Timestamp, LABEL_ROOT};

fn hex(fill: char) -> String {
    fill.to_string().repeat(64)
}

fn digest(fill: char) -> String {
    format!("sha256:{}", hex(fill))
}

/// A committed blob with these children and no lease.
fn blob(store: &Store, fill: char, children: &[char]) -> NodeId {
    store
        .write(|w| -> Result<NodeId> {
            let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(fill))?;
            w.commit_blob(node.id, 1, children.iter().map(|c| digest(*c)).collect(), None)?;
            Ok(node.id)
        })
        .unwrap()
}

fn snapshot(store: &Store, key: &str, kind: SnapshotKind, parent: Option<&str>) {
    let now = Timestamp::now();
    let record = Snapshot::new(key, kind, parent.map(str::to_owned), "overlayfs", None, now);
    store.write(|w| { let id = w.reserve_node_id()?; w.create_snapshot(id, &record) }).unwrap();
}

fn image(store: &Store, name: &str, target: char) {
    let descriptor = Descriptor::from_json(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(target), "size": 1
    }))
    .unwrap();
    store.write(|w| { let dir = w.create_image_dir(schema::IMAGES, name)?; w.put_image_target(dir.id, descriptor, None) }).unwrap();
}

fn collect(store: &Store) -> Collected {
    store.write(|w| w.collect_garbage(&HashSet::new(), Timestamp::now())).unwrap()
}

fn names(collected: &Collected) -> (Vec<String>, Vec<String>) {
    (collected.blobs.iter().map(|(_, d)| d.clone()).collect(), collected.snapshots.iter().map(|(_, k)| k.clone()).collect())
}

#[test]
fn an_image_keeps_what_its_target_reaches_and_a_container_its_snapshot_chain() {
    let (_dir, store) = temp_store();
    // index a → manifest b → config c, layer d; e is unreferenced.
    for (fill, children) in [('a', &['b'][..]), ('b', &['c', 'd']), ('c', &[]), ('d', &[]), ('e', &[])] {
        blob(&store, fill, children);
    }
    image(&store, "app", 'a');
    snapshot(&store, "l1", SnapshotKind::Committed, None);
    snapshot(&store, "l2", SnapshotKind::Committed, Some("l1"));
    snapshot(&store, "web", SnapshotKind::Active, Some("l2"));
    snapshot(&store, "stray", SnapshotKind::Active, Some("l1"));
    store
        .write(|w| {
            let (node, _) = w.create_container("web")?;
            w.update_container(node.id, |c| c.set_field(ContainerField::Snapshot, "web"))
        })
        .unwrap();
    let (blobs, snapshots) = names(&collect(&store));
    assert_eq!(blobs, vec![digest('e')]);
    assert_eq!(snapshots, vec!["stray".to_owned()]);
    assert!(collect(&store).is_empty(), "a second collection finds nothing");

    // Deleting the container frees its snapshot and the chain below it.
    store.write(|w| w.delete_container("web")).unwrap();
    let (_, mut snapshots) = names(&collect(&store));
    snapshots.sort();
    assert_eq!(snapshots, vec!["l1".to_owned(), "l2".to_owned(), "web".to_owned()]);
    // Deleting the image frees its content.
    store.write(|w| w.delete_image_dir(schema::IMAGES, "app")).unwrap();
    let (blobs, _) = names(&collect(&store));
    assert_eq!(blobs, vec![digest('a'), digest('b'), digest('c'), digest('d')]);
}

#[test]
fn labels_pin_content_and_snapshots_and_gc_root_keeps_a_record() {
    let (_dir, store) = temp_store();
    let config = blob(&store, 'c', &[]);
    blob(&store, 'd', &[]);
    let rooted = blob(&store, 'f', &[]);
    snapshot(&store, "l1", SnapshotKind::Committed, None);
    image(&store, "app", 'c');
    store
        .write(|w| -> Result<()> {
            w.update_labels(config, |l| l.set("containerd.io/gc.ref.snapshot.overlayfs", "l1"))?;
            w.update_labels(config, |l| l.set("containerd.io/gc.ref.content.l.0", &digest('d')))?;
            w.update_labels(rooted, |l| l.set(LABEL_ROOT, "yes"))?;
            Ok(())
        })
        .unwrap();
    assert!(collect(&store).is_empty());
    let reader = store.read().unwrap();
    assert_eq!(reader.referrers(Target::Snapshot("l1")).unwrap(), vec![Referrer::Blob(digest('c'))]);
    assert_eq!(reader.referrers(Target::Blob(&digest('c'))).unwrap(), vec![Referrer::Image("app".into())]);
    assert_eq!(reader.referrers(Target::Blob(&digest('f'))).unwrap(), vec![Referrer::Root]);
}

#[test]
fn a_lease_keeps_a_blob_until_it_expires_or_an_image_reaches_it() {
    let (_dir, store) = temp_store();
    let later = Timestamp::from_nanos(Timestamp::now().as_nanos() + 3_600_000_000_000);
    for fill in ['a', 'b'] {
        store
            .write(|w| {
                let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(fill))?;
                w.commit_blob(node.id, 1, vec![], Some(later))
            })
            .unwrap();
    }
    assert!(collect(&store).is_empty(), "leased blobs stay");
    image(&store, "app", 'a');
    store.write(|w| w.delete_image_dir(schema::IMAGES, "app")).unwrap();
    let (blobs, _) = names(&collect(&store));
    assert_eq!(blobs, vec![digest('a')], "the image ended a's lease; b keeps its own");
    let after = Timestamp::from_nanos(later.as_nanos() + 1);
    let collected = store.write(|w| w.collect_garbage(&HashSet::new(), after)).unwrap();
    assert_eq!(names(&collected).0, vec![digest('b')]);
}

#[test]
fn removals_that_break_a_reference_are_refused_and_writers_and_in_flight_keys_are_kept() {
    let (_dir, store) = temp_store();
    blob(&store, 'a', &['b']);
    blob(&store, 'b', &[]);
    image(&store, "app", 'a');
    let refused = store.write(|w| w.delete_blob(schema::CONTENT_SHA256, &hex('b')));
    assert!(matches!(refused, Err(StoreError::InUse { ref by, .. }) if by == "images/app"), "{refused:?}");
    snapshot(&store, "l1", SnapshotKind::Committed, None);
    snapshot(&store, "web", SnapshotKind::Active, Some("l1"));
    let refused = store.write(|w| w.delete_snapshot("l1"));
    assert!(matches!(refused, Err(StoreError::InUse { .. })), "{refused:?}");
    let (ingesting, _) = store.write(|w| w.begin_blob(schema::CONTENT_SHA256, &hex('e'))).unwrap();
    let in_flight = HashSet::from([crate::store::Reference::Snapshot("web".to_owned())]);
    let collected = store.write(|w| w.collect_garbage(&in_flight, Timestamp::now())).unwrap();
    assert!(collected.is_empty(), "{collected:?}");
    assert!(store.write(|w| w.discard_blob(ingesting.id)).unwrap().is_some());
    store.write(|w| w.delete_snapshot("web")).unwrap();
    let (_, snapshots) = names(&collect(&store));
    assert_eq!(snapshots, vec!["l1".to_owned()]);
}

#[test]
fn an_image_ends_the_leases_of_what_its_target_reaches_and_only_those() {
    let (_dir, store) = temp_store();
    let later = Timestamp::from_nanos(Timestamp::now().as_nanos() + 3_600_000_000_000);
    // e lists c as a child; d is another blob nothing reaches; all three leased.
    for (fill, children) in [('c', vec![]), ('e', vec![digest('c')]), ('d', vec![])] {
        store
            .write(|w| {
                let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(fill))?;
                w.commit_blob(node.id, 1, children, Some(later))
            })
            .unwrap();
    }
    image(&store, "app", 'e');
    let lease = |fill| store.read().unwrap().blob_by_digest(&digest(fill)).unwrap().unwrap().1.lease_until;
    assert_eq!((lease('e'), lease('c')), (None, None), "the target and its child are reached");
    assert_eq!(lease('d'), Some(later), "what the image does not reach keeps its lease");
}

#[test]
fn a_collection_looks_at_what_the_delete_can_free_not_at_the_store() {
    let (_dir, store) = temp_store();
    snapshot(&store, "layer", SnapshotKind::Committed, None);
    let containers = 2_000;
    store
        .write(|w| -> Result<()> {
            for i in 0..containers {
                let key = format!("c{i}");
                let id = w.reserve_node_id()?;
                let now = Timestamp::now();
                let record = Snapshot::new(&key, SnapshotKind::Active, Some("layer".into()), "overlayfs", None, now);
                w.create_snapshot(id, &record)?;
                let (node, _) = w.create_container(&key)?;
                w.update_container(node.id, |c| c.set_field(ContainerField::Snapshot, &key))?;
            }
            Ok(())
        })
        .unwrap();
    let first = collect(&store);
    assert!(first.is_empty(), "every snapshot is some container's: {first:?}");
    assert!(first.examined >= containers, "the new snapshots were judged once: {}", first.examined);

    store.write(|w| w.delete_container("c7")).unwrap();
    let freed = collect(&store);
    assert_eq!(names(&freed).1, vec!["c7".to_owned()]);
    // c7's snapshot, then its parent, kept by 1,999 other children: the first one found.
    assert!(freed.examined <= 3, "looked at {} records for one container's snapshot", freed.examined);
    assert!(collect(&store).examined == 0, "nothing is left to judge");
    let reader = store.read().unwrap();
    assert_eq!(reader.referrers(Target::Snapshot("c8")).unwrap(), vec![Referrer::Container("c8".into())]);
    super::refs::check_index(&reader).unwrap();
}

#[test]
fn a_label_that_drops_a_reference_leaves_the_target_to_the_next_collection() {
    let (_dir, store) = temp_store();
    let config = blob(&store, 'c', &[]);
    blob(&store, 'd', &[]);
    image(&store, "app", 'c');
    store.write(|w| w.update_labels(config, |l| l.set("containerd.io/gc.ref.content.l.0", &digest('d')))).unwrap();
    assert!(collect(&store).is_empty());
    store.write(|w| w.update_labels(config, |l| { l.remove("containerd.io/gc.ref.content.l.0"); Ok(()) })).unwrap();
    // Nothing collects at a label write; the next collection (after any delete) does.
    assert_eq!(names(&collect(&store)).0, vec![digest('d')]);
}

#[test]
fn a_lease_ends_when_an_image_or_container_comes_to_reach_the_blob_and_not_otherwise() {
    let (_dir, store) = temp_store();
    let later = Timestamp::from_nanos(Timestamp::now().as_nanos() + 3_600_000_000_000);
    let leased = |fill| {
        store
            .write(|w| {
                let (node, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(fill))?;
                w.commit_blob(node.id, 1, vec![], Some(later)).map(|_| node.id)
            })
            .unwrap()
    };
    let lease = |fill| store.read().unwrap().blob_by_digest(&digest(fill)).unwrap().unwrap().1.lease_until;
    leased('a');
    let holder = leased('f');
    // A record that keeps itself (gc.root) is no image or container: a's lease runs on.
    store
        .write(|w| -> Result<()> {
            w.update_labels(holder, |l| l.set(LABEL_ROOT, "yes"))?;
            w.update_labels(holder, |l| l.set("containerd.io/gc.ref.content", &digest('a')))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(lease('a'), Some(later), "a gc.root record does not end a lease");
    // A container's label does, at the write.
    store
        .write(|w| {
            let (web, _) = w.create_container("web")?;
            w.update_labels(web.id, |l| l.set("containerd.io/gc.ref.content", &digest('a')))
        })
        .unwrap();
    assert_eq!(lease('a'), None, "the container reached a");
    assert_eq!(lease('f'), Some(later), "nothing reaches f");
    // A blob committed below what a container reaches gets no lease either.
    store.write(|w| w.update_labels(holder, |l| l.set("containerd.io/gc.ref.content.x", &digest('b')))).unwrap();
    let web = store.read().unwrap().lookup(schema::CONTAINERS, "web").unwrap().unwrap();
    store.write(|w| w.update_labels(web.id, |l| l.set("containerd.io/gc.ref.content.f", &digest('f')))).unwrap();
    assert_eq!(lease('f'), None, "the container reached f");
    leased('b');
    assert_eq!(lease('b'), None, "b was committed below f, which the container reaches");
}
