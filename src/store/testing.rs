//! Test helpers: a real environment in a temporary directory, and a text dump of every
//! database so tests assert on the whole state rather than on one accessor.

use std::fmt::Write;

use tempfile::TempDir;

use super::{sealed::Access, Store, StoreRead};

/// Opens a fresh store in a temporary directory (kept alive by the returned guard).
pub(crate) fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&dir.path().join("db")).expect("open store");
    (dir, store)
}

/// Every node, image and container, one line each, in key order, without timestamps.
pub(crate) fn dump(store: &Store) -> String {
    let reader = store.read().expect("read txn");
    let txn = reader.ro();
    let dbs = reader.dbs();
    let mut out = String::new();
    for item in dbs.nodes.iter(txn).unwrap() {
        let (id, _) = item.unwrap();
        let node = reader.node(super::NodeId(id)).unwrap().unwrap();
        writeln!(out, "node {id} parent={} name={:?} kind={:?}", node.parent.0, node.name, node.kind).unwrap();
    }
    for item in dbs.images.iter(txn).unwrap() {
        let (id, image) = item.unwrap();
        writeln!(out, "image {id} name={} digest={} labels={}", image.name, image.target.as_ref().map_or("-", |t| t.digest.as_str()), image.labels.render().trim_end().replace('\n', ",")).unwrap();
    }
    for item in dbs.containers.iter(txn).unwrap() {
        let (id, c) = item.unwrap();
        writeln!(out, "container {id} id={} image={:?} runtime={} labels={}", c.id, c.image, c.runtime, c.labels.render().trim_end().replace('\n', ",")).unwrap();
    }
    out
}
