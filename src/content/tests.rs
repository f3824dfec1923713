use std::collections::HashSet;
use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::*;

/// Verifies and places an ingest, as the filesystem does at close.
fn commit(store: &ContentStore, mut ingest: Ingest) -> Result<u64> {
    let size = ingest.verify()?;
    store.place(ingest)?;
    Ok(size)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn ingest_files(root: &Path) -> usize {
    fs::read_dir(root.join("ingest")).unwrap().count()
}

#[test]
fn a_blob_written_in_order_is_verified_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let bytes = b"hello, layer".repeat(1000);
    let digest = digest_of(&bytes);
    let mut ingest = store.begin(&digest).unwrap();
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        ingest.write_at((i * 4096) as u64, chunk).unwrap();
    }
    assert_eq!(commit(&store, ingest).unwrap(), bytes.len() as u64);
    let mut read = Vec::new();
    store.open_blob(&digest).unwrap().read_to_end(&mut read).unwrap();
    assert_eq!(read, bytes);
    assert_eq!(ingest_files(dir.path()), 0);
}

#[test]
fn out_of_order_writes_are_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let bytes = b"0123456789abcdef".repeat(64);
    let digest = digest_of(&bytes);
    let mut ingest = store.begin(&digest).unwrap();
    ingest.write_at(512, &bytes[512..]).unwrap();
    ingest.write_at(0, &bytes[..512]).unwrap();
    commit(&store, ingest).unwrap();
    assert_eq!(fs::read(store.path(&digest)).unwrap(), bytes);
}

#[test]
fn a_mismatch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let digest = digest_of(b"expected");
    let mut ingest = store.begin(&digest).unwrap();
    ingest.write_at(0, b"something else").unwrap();
    assert!(matches!(commit(&store, ingest), Err(ContentError::DigestMismatch { .. })));
    assert!(!store.path(&digest).exists());
    assert_eq!(ingest_files(dir.path()), 0);
}

#[test]
fn truncation_restarts_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let digest = digest_of(b"final");
    let mut ingest = store.begin(&digest).unwrap();
    ingest.write_at(0, b"draft that is longer").unwrap();
    ingest.set_len(0).unwrap();
    ingest.write_at(0, b"final").unwrap();
    assert_eq!(commit(&store, ingest).unwrap(), 5);
}

#[test]
fn reopening_clears_ingests_and_sweep_removes_unrecorded_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let kept = digest_of(b"kept");
    let stray = digest_of(b"stray");
    for (digest, bytes) in [(&kept, &b"kept"[..]), (&stray, &b"stray"[..])] {
        let mut ingest = store.begin(digest).unwrap();
        ingest.write_at(0, bytes).unwrap();
        commit(&store, ingest).unwrap();
    }
    let abandoned = store.begin(&digest_of(b"x")).unwrap();
    std::mem::forget(abandoned); // as if the daemon died mid-write
    assert_eq!(ingest_files(dir.path()), 1);
    let store = ContentStore::open(dir.path()).unwrap();
    assert_eq!(ingest_files(dir.path()), 0);
    let removed = store.sweep(&HashSet::from([kept.clone()])).unwrap();
    assert_eq!(removed, vec![stray.clone()]);
    assert!(store.path(&kept).exists() && !store.path(&stray).exists());
    assert!(store.read_small(&kept, 2).is_err());
    assert_eq!(store.read_small(&kept, 100).unwrap(), b"kept");
}
