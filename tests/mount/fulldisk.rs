//! A full disk (issue 10): with the state directory on a small tmpfs, writes fail with
//! `ENOSPC` and lose nothing acknowledged; reads keep working; deleting objects frees
//! space and writes work again without a restart; the daemon starts on a full disk and
//! serves reads.
//!
//! Blobs fill the filesystem (their bytes go to `STATE_DIR/content/`); then the LMDB
//! commits themselves meet the full disk (its data file is sparse and grows as pages are
//! written), which must also be `ENOSPC`, not `EIO`.

use std::fs;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::common::*;

const BLOB: usize = 4 << 20;

/// Bytes of blob `i`, all different.
fn blob_bytes(i: u32) -> Vec<u8> {
    let mut state = i.wrapping_mul(2654435761) | 1;
    (0..BLOB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes blobs from `first` until one is refused; returns the hexes acknowledged and
/// the refusal's errno.
fn fill_with_blobs(fx: &MountFixture, first: u32) -> (Vec<String>, i32) {
    let mut acked = Vec::new();
    for i in first..first + 100 {
        let bytes = blob_bytes(i);
        let h = hex(&bytes);
        match write_doc(&fx.path(&format!("content/sha256/{h}")), &bytes, Mode::Truncate) {
            Ok(()) => acked.push(h),
            Err((_, errno)) => return (acked, errno),
        }
    }
    panic!("100 blobs of 4 MiB fit on a 64 MiB filesystem");
}

/// Containers of 900 KiB of labels each (one synced LMDB commit apiece) until a write is
/// refused; returns how many were acknowledged and the errno.
fn fill_with_labels(fx: &MountFixture, prefix: &str) -> (usize, i32) {
    let doc: String = (0..225).map(|i| format!("k{i:03}={}\n", "v".repeat(4000))).collect();
    for i in 0..200 {
        let dir = fx.path(&format!("containers/{prefix}{i}"));
        if let Err(e) = fs::create_dir(&dir) {
            return (i, e.raw_os_error().unwrap_or(0));
        }
        if let Err((_, errno)) = write_doc(&dir.join("labels"), doc.as_bytes(), Mode::Truncate) {
            return (i, errno);
        }
    }
    panic!("200 commits of 900 KiB fit on a full 64 MiB filesystem");
}

fn remove_fillers(fx: &MountFixture, prefix: &str) {
    for name in ls(&fx.path("containers")) {
        if name.starts_with(prefix) {
            fs::remove_dir_all(fx.path(&format!("containers/{name}"))).unwrap();
        }
    }
}

fn assert_blobs_intact(fx: &MountFixture, acked: &[String]) {
    for h in acked {
        let bytes = fs::read(fx.path(&format!("content/sha256/{h}"))).unwrap_or_else(|e| panic!("read acknowledged blob {h}: {e}"));
        assert_eq!(hex(&bytes), *h, "acknowledged blob {h}");
    }
}

fn free_bytes(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() * st.fragment_size()
}

#[test]
fn a_full_disk_refuses_writes_with_enospc_keeps_what_was_acknowledged_and_recovers() {
    let mut fx = MountFixture::with_small_state("64m");
    fs::create_dir(fx.path("containers/web")).unwrap();
    put(&fx.path("containers/web/labels"), "keep=1\n");

    // Blobs until the disk is full: the refusal is ENOSPC, logged with its reason.
    let (acked, errno) = fill_with_blobs(&fx, 0);
    assert_eq!(errno_name(errno), "ENOSPC", "a blob write on a full disk; log:\n{}", fx.log());
    assert!(acked.len() >= 8, "{} blobs fitted", acked.len());
    fx.wait_for_log_line("the blob refusal", |l| l.contains("ENOSPC") && l.contains("content/sha256/"));
    // Metadata commits meet the full disk too: ENOSPC, not EIO.
    let (labels_acked, errno) = fill_with_labels(&fx, "filler");
    assert_eq!(errno_name(errno), "ENOSPC", "a commit on a full disk after {labels_acked}; log:\n{}", fx.log());
    fx.wait_for_log_line("the commit refusal", |l| l.contains("ENOSPC") && l.contains("containers/filler") && l.contains("no space left"));
    assert!(!fx.log().contains("ERROR"), "a full disk is not an internal error:\n{}", fx.log());

    // Nothing acknowledged is lost, and reads work.
    assert_blobs_intact(&fx, &acked);
    assert_eq!(read(&fx.path("containers/web/labels")), "keep=1\n");
    for i in 0..labels_acked {
        assert_eq!(read(&fx.path(&format!("containers/filler{i}/labels"))).lines().count(), 225, "acknowledged labels of filler{i}");
    }
    assert_eq!(ls(&fx.path("content/sha256")).len(), acked.len());
    fs::metadata(fx.mnt()).unwrap();

    // Deleting frees space; writes work again without a restart.
    let before = free_bytes(&fx.state());
    remove_fillers(&fx, "filler");
    for h in &acked[..4] {
        fs::remove_file(fx.path(&format!("content/sha256/{h}"))).unwrap();
    }
    // Four 4 MiB blobs; LMDB keeps its file size (freed pages are reused, not returned).
    assert!(free_bytes(&fx.state()) > before + 3 * BLOB as u64, "rm freed space");
    let again = blob_bytes(1000);
    put(&fx.path(&format!("content/sha256/{}", hex(&again))), &again);
    put(&fx.path("containers/web/labels"), "keep=2\n");
    assert_eq!(read(&fx.path("containers/web/labels")), "keep=2\n");
    let mut kept: Vec<String> = acked[4..].to_vec();
    kept.push(hex(&again));

    // Full again, then a restart on the full disk: it starts and serves reads.
    let (more, errno) = fill_with_blobs(&fx, 2000);
    assert_eq!(errno_name(errno), "ENOSPC");
    kept.extend(more);
    fill_with_labels(&fx, "again");
    fx.remount();
    assert_blobs_intact(&fx, &kept);
    assert_eq!(read(&fx.path("containers/web/labels")), "keep=2\n");
    assert_eq!(ls(&fx.path("content/sha256")).len(), kept.len());
    // And after freeing space, it writes again.
    remove_fillers(&fx, "again");
    fs::remove_file(fx.path(&format!("content/sha256/{}", kept[0]))).unwrap();
    put(&fx.path("containers/web/labels"), "keep=3\n");
    assert_eq!(read(&fx.path("containers/web/labels")), "keep=3\n");
}
