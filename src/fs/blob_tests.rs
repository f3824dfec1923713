//! Blobs and snapshots through FsCore, without a mount: writers judged at close, the
//! shell's early close, rewrites of stored blobs, EBUSY for referenced blobs, and the
//! start-up sweep of what a crash left.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::errno::FsError;
use super::ino::ROOT_INO;
use super::{FsCore, ReadOutcome};
use crate::service::{ResourceConfig, Resources, Services};
use crate::snapshot::Driver;
use crate::store::testing::temp_store;

fn core_with(lease: Duration) -> (tempfile::TempDir, FsCore) {
    let (dir, store) = temp_store();
    let config = ResourceConfig::under(dir.path(), Some(Driver::Native), lease);
    let resources = Resources::open(&config).unwrap();
    (dir, FsCore::new(Arc::new(Services::new(Arc::new(store)).with_resources(resources))))
}

fn ino_of(core: &FsCore, path: &str) -> u64 {
    path.split('/').fold(ROOT_INO, |parent, name| core.lookup(parent, OsStr::new(name)).unwrap().ino)
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Creates `content/sha256/<hex>` and writes `chunks` at increasing offsets; returns the
/// handle (still open).
fn create_blob(core: &FsCore, hex: &str, chunks: &[&[u8]]) -> Result<u64, FsError> {
    let dir = ino_of(core, "content/sha256");
    let (_, fh) = core.create(dir, OsStr::new(hex), libc::O_WRONLY | libc::O_TRUNC)?;
    let mut offset = 0;
    for chunk in chunks {
        core.write(fh, offset, chunk)?;
        offset += chunk.len() as u64;
    }
    Ok(fh)
}

fn read_all(core: &FsCore, ino: u64) -> Vec<u8> {
    let fh = core.open(ino, libc::O_RDONLY).unwrap();
    let mut out = Vec::new();
    loop {
        let ReadOutcome::Data(chunk) = core.read(fh, out.len() as u64, 4096).unwrap() else { panic!("blob reads never wait") };
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    core.release(fh).unwrap();
    out
}

#[test]
fn a_blob_is_stored_at_close_when_its_bytes_match_its_name() {
    let (dir, core) = core_with(Duration::from_secs(3600));
    let bytes = vec![7u8; 100_000];
    let hex = hex_of(&bytes);
    let fh = create_blob(&core, &hex, &[&bytes[..60_000], &bytes[60_000..]]).unwrap();
    assert_eq!(core.getattr(ino_of(&core, &format!("content/sha256/{hex}"))).unwrap().size, 0, "ingesting");
    core.flush(fh).unwrap();
    core.release(fh).unwrap();
    let ino = ino_of(&core, &format!("content/sha256/{hex}"));
    assert_eq!(core.getattr(ino).unwrap().size, 100_000);
    assert_eq!(core.getattr(ino).unwrap().perm, 0o444);
    assert_eq!(read_all(&core, ino), bytes);
    assert!(dir.path().join("content/blobs/sha256").join(&hex).exists());
    // Writing it again with the same bytes is accepted; other bytes are refused.
    let again = core.open(ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    core.write(again, 0, &bytes).unwrap();
    core.flush(again).unwrap();
    core.release(again).unwrap();
    let other = core.open(ino, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    core.write(other, 0, b"other").unwrap();
    assert_eq!(core.flush(other).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.release(other).unwrap_err().errno(), libc::EINVAL, "the final verdict");
    assert_eq!(read_all(&core, ino), bytes);
    // Truncating a stored blob without a writer is refused.
    assert_eq!(core.setattr(ino, Some(0), None, Default::default(), Default::default()).unwrap_err().errno(), libc::EPERM);
}

#[test]
fn a_mismatch_stores_nothing_and_an_empty_early_close_waits_for_release() {
    let (dir, core) = core_with(Duration::from_secs(3600));
    let hex = hex_of(b"expected");
    let fh = create_blob(&core, &hex, &[]).unwrap();
    core.flush(fh).unwrap(); // a shell's `>` closes once before the command writes
    core.write(fh, 0, b"unexpected").unwrap();
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.release(fh).unwrap_err().errno(), libc::EINVAL);
    let sha256 = ino_of(&core, "content/sha256");
    assert_eq!(core.lookup(sha256, OsStr::new(&hex)).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(std::fs::read_dir(dir.path().join("content/ingest")).unwrap().count(), 0);
    // A name that is not a digest is a temporary file: renamed onto the wrong digest it is
    // refused and nothing is stored.
    let (_, tmp) = core.create(sha256, OsStr::new(".abc.XYZ"), libc::O_WRONLY).unwrap();
    core.write(tmp, 0, b"not these bytes").unwrap();
    core.release(tmp).unwrap();
    let err = core.rename(sha256, OsStr::new(".abc.XYZ"), sha256, OsStr::new(&hex), 0).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert_eq!(core.lookup(sha256, OsStr::new(&hex)).unwrap_err().errno(), libc::ENOENT);
    // A writer that never wrote is judged at release: the empty bytes do not match.
    let fh = create_blob(&core, &hex, &[]).unwrap();
    assert_eq!(core.release(fh).unwrap_err().errno(), libc::EINVAL);
    assert!(core.lookup(sha256, OsStr::new(&hex)).is_err());
}

#[test]
fn a_blob_an_image_reaches_is_busy_and_collection_follows_deletes() {
    let (dir, core) = core_with(Duration::ZERO);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[]}}"#,
        hex_of(config),
        config.len()
    );
    for bytes in [&config[..], manifest.as_bytes()] {
        let fh = create_blob(&core, &hex_of(bytes), &[bytes]).unwrap();
        core.flush(fh).unwrap();
        core.release(fh).unwrap();
    }
    let images = ino_of(&core, "images");
    let app = core.mkdir(images, OsStr::new("app")).unwrap().ino;
    let target = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":{}}}"#,
        hex_of(manifest.as_bytes()),
        manifest.len()
    );
    let (_, fh) = core.create(app, OsStr::new("target"), libc::O_WRONLY | libc::O_TRUNC).unwrap();
    core.write(fh, 0, target.as_bytes()).unwrap();
    core.flush(fh).unwrap();
    core.release(fh).unwrap();
    let sha256 = ino_of(&core, "content/sha256");
    let busy = core.unlink(sha256, OsStr::new(&hex_of(config))).unwrap_err();
    assert_eq!(busy.errno(), libc::EBUSY, "{busy}");
    assert!(busy.to_string().contains("images/app"), "{busy}");
    // With no lease, deleting the image collects both blobs, files included.
    core.rmdir(images, OsStr::new("app")).unwrap();
    assert!(core.lookup(sha256, OsStr::new(&hex_of(config))).is_err());
    assert_eq!(std::fs::read_dir(dir.path().join("content/blobs/sha256")).unwrap().count(), 0);
}

#[test]
fn start_up_removes_what_a_crash_left() {
    let (dir, core) = core_with(Duration::from_secs(3600));
    let hex = hex_of(b"half");
    let _open_writer = create_blob(&core, &hex, &[b"ha"]).unwrap(); // the daemon dies with it open
    std::fs::create_dir_all(dir.path().join("snapshots/4242/fs/etc")).unwrap();
    std::fs::write(dir.path().join("content/blobs/sha256").join("cd".repeat(32)), b"debris").unwrap();
    core.services().recover_resources().unwrap();
    let sha256 = ino_of(&core, "content/sha256");
    assert!(core.lookup(sha256, OsStr::new(&hex)).is_err(), "the unfinished blob's record is dropped");
    assert!(!dir.path().join("snapshots/4242").exists());
    assert_eq!(std::fs::read_dir(dir.path().join("content/blobs/sha256")).unwrap().count(), 0);
}

#[test]
fn bytes_from_several_descriptors_are_judged_at_the_last_release() {
    // `{ cat a; cat b; } > blob`: the first cat's close sees half the bytes.
    let (_dir, core) = core_with(Duration::from_secs(3600));
    let whole = b"first half, second half".to_vec();
    let hex = hex_of(&whole);
    let fh = create_blob(&core, &hex, &[&whole[..11]]).unwrap();
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL, "not yet the whole blob");
    core.write(fh, 11, &whole[11..]).unwrap();
    core.flush(fh).unwrap();
    core.release(fh).unwrap();
    assert_eq!(read_all(&core, ino_of(&core, &format!("content/sha256/{hex}"))), whole);
}

#[test]
fn a_create_of_a_stored_blob_rewrites_it() {
    let (_dir, core) = core_with(Duration::from_secs(3600));
    let hex = hex_of(b"same");
    for _ in 0..2 {
        let fh = create_blob(&core, &hex, &[b"same"]).unwrap();
        core.flush(fh).unwrap();
        core.release(fh).unwrap();
    }
    assert_eq!(read_all(&core, ino_of(&core, &format!("content/sha256/{hex}"))), b"same");
}
