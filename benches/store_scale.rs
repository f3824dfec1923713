//! The benchmark of how the store's reference-holding operations scale with its size,
//! without FUSE (whose cost per request does not depend on the store): a store of N
//! containers and N images is built, then M operations of each kind are timed, each a
//! durable commit as the daemon makes it.
//!
//! Every container has its own active snapshot on one shared committed layer and two
//! labels; every image targets its own manifest, which lists its own config and one shared
//! layer blob, and its config names the shared snapshot (`gc.ref.snapshot`), as unpacking
//! does. The operations:
//! - `rmdir-container`: delete a container and collect (frees its snapshot);
//! - `rmdir-image`: delete an image and collect (frees its manifest and config);
//! - `target`: write the target of a new image name (to an existing manifest);
//! - `snapshot`: point a container at a new snapshot and collect (frees the old one);
//! - `references`: the referrers of a config blob and of a container's snapshot.
//!
//! `store_scale DIR N1 N2 M`: builds both stores, then times M operations of each kind
//! on each, in turns of `TURN` operations (so a change in the machine's load while it
//! runs weighs on both sizes alike, and the ratio is the store's, not the moment's);
//! prints `store_scale N OPERATION M us_per_op` lines. Run by scripts/bench.sh.

use std::collections::HashSet;
use std::time::Instant;

use ctrfs::model::{ContainerField, Descriptor, Snapshot, SnapshotKind, Timestamp};
use ctrfs::store::{schema, Store, StoreRead, Target};

/// Objects created per transaction while building (the build is not what is measured).
const BUILD_BATCH: u64 = 2_000;

fn digest(kind: u64, i: u64) -> String {
    format!("sha256:{:016x}{:048x}", kind, i)
}

fn hex(kind: u64, i: u64) -> String {
    digest(kind, i)["sha256:".len()..].to_owned()
}

const MANIFEST: u64 = 1;
const CONFIG: u64 = 2;
const LAYER: u64 = 3;

fn manifest(i: u64) -> Descriptor {
    Descriptor::from_json(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(MANIFEST, i), "size": 1
    }))
    .expect("descriptor")
}

fn snapshot_record(key: &str, kind: SnapshotKind, parent: Option<&str>) -> Snapshot {
    Snapshot::new(key, kind, parent.map(str::to_owned), "overlayfs", None, Timestamp::now())
}

fn build(store: &Store, n: u64) {
    store
        .write(|w| -> ctrfs::store::Result<()> {
            let id = w.reserve_node_id()?;
            w.create_snapshot(id, &snapshot_record("base", SnapshotKind::Committed, None))?;
            let (layer, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(LAYER, 0))?;
            w.commit_blob(layer.id, 1, vec![], None)?;
            Ok(())
        })
        .expect("base");
    for start in (0..n).step_by(BUILD_BATCH as usize) {
        store
            .write(|w| -> ctrfs::store::Result<()> {
                for i in start..(start + BUILD_BATCH).min(n) {
                    let key = format!("c{i}");
                    let id = w.reserve_node_id()?;
                    w.create_snapshot(id, &snapshot_record(&key, SnapshotKind::Active, Some("base")))?;
                    let (node, _) = w.create_container(&key)?;
                    w.update_container(node.id, |c| {
                        c.set_field(ContainerField::Snapshot, &key)?;
                        c.labels.set("app", "web")?;
                        c.labels.set("tier", "front")
                    })?;
                    let (config, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(CONFIG, i))?;
                    w.commit_blob(config.id, 1, vec![], None)?;
                    w.update_labels(config.id, |l| l.set("containerd.io/gc.ref.snapshot.overlayfs", "base"))?;
                    let (m, _) = w.begin_blob(schema::CONTENT_SHA256, &hex(MANIFEST, i))?;
                    w.commit_blob(m.id, 1, vec![digest(CONFIG, i), digest(LAYER, 0)], None)?;
                    let dir = w.create_image_dir(schema::IMAGES, &format!("img{i}"))?;
                    w.put_image_target(dir.id, manifest(i), None)?;
                }
                Ok(())
            })
            .expect("build");
    }
    // What building left pending (every new snapshot) is judged once, before timing.
    collect(store);
}

fn collect(store: &Store) {
    store.write(|w| w.collect_garbage(&HashSet::new(), Timestamp::now())).expect("collect");
}

/// Operations timed on one store before the other store's turn.
const TURN: u64 = 10;

const OPERATIONS: [&str; 5] = ["rmdir-container", "rmdir-image", "target", "snapshot", "references"];

/// Operation `what` number `i` of `m` on a store of `n`: each picks objects spread over the
/// store rather than its first ones.
fn operate(store: &Store, n: u64, m: u64, what: &str, i: u64) {
    let pick = |i: u64| i * (n / m);
    match what {
        "rmdir-container" => {
            let (_, container) = store.write(|w| w.delete_container(&format!("c{}", pick(i)))).expect("delete");
            assert!(container.references_anything());
            collect(store);
        }
        "rmdir-image" => {
            store.write(|w| w.delete_image_dir(schema::IMAGES, &format!("img{}", pick(i)))).expect("delete");
            collect(store);
        }
        "target" => {
            store
                .write(|w| {
                    let dir = w.create_image_dir(schema::IMAGES, &format!("new{i}"))?;
                    w.put_image_target(dir.id, manifest(pick(i) + 1), None)
                })
                .expect("target");
        }
        "snapshot" => {
            let key = format!("c{}", pick(i) + 1);
            store
                .write(|w| -> ctrfs::store::Result<()> {
                    let id = w.reserve_node_id()?;
                    let fresh = format!("{key}-2");
                    w.create_snapshot(id, &snapshot_record(&fresh, SnapshotKind::Active, Some("base")))?;
                    let node = w.lookup(schema::CONTAINERS, &key)?.expect("container");
                    w.update_container(node.id, |c| c.set_field(ContainerField::Snapshot, &fresh))?;
                    Ok(())
                })
                .expect("snapshot");
            collect(store);
        }
        "references" => {
            let reader = store.read().expect("read");
            let config = reader.referrers(Target::Blob(&digest(CONFIG, pick(i) + 1))).expect("referrers");
            let snapshot = reader.referrers(Target::Snapshot(&format!("c{}", pick(i) + 2))).expect("referrers");
            assert_eq!((config.len(), snapshot.len()), (1, 1));
        }
        other => unreachable!("{other}"),
    }
}

fn main() {
    // `cargo test --all-targets` runs benchmarks without arguments: nothing to measure then.
    if std::env::args().nth(1).is_none_or(|a| a.starts_with("--")) {
        eprintln!("usage: store_scale DIR N1 N2 M (run by scripts/bench.sh)");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let parse = |s: &str, what: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{what}: {s}"));
    let (dir, sizes, m) = match &args[1..] {
        [dir, n1, n2, m, ..] => (std::path::PathBuf::from(dir), [parse(n1, "N1"), parse(n2, "N2")], parse(m, "M")),
        _ => panic!("usage: store_scale DIR N1 N2 M"),
    };
    assert!(sizes.iter().all(|n| m * 3 <= *n), "M operations of each kind need N >= 3M objects");
    let stores: Vec<Store> = sizes
        .iter()
        .map(|n| {
            let store = Store::open(&dir.join(n.to_string())).expect("open store");
            build(&store, *n);
            store
        })
        .collect();
    for what in OPERATIONS {
        let mut spent = [std::time::Duration::ZERO; 2];
        for turn in (0..m).step_by(TURN as usize) {
            for (k, (store, n)) in stores.iter().zip(sizes).enumerate() {
                let start = Instant::now();
                for i in turn..(turn + TURN).min(m) {
                    operate(store, n, m, what, i);
                }
                spent[k] += start.elapsed();
            }
        }
        for (n, spent) in sizes.iter().zip(spent) {
            println!("store_scale {n} {what} {m} {:.1}", spent.as_secs_f64() * 1e6 / m as f64);
        }
    }
}
