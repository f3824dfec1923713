//! From an OCI image to running tasks through the mount alone: blobs in `content/`, an
//! image made by copying a layout (and by `ctrfs import`), containers whose root
//! filesystems are snapshots unpacked from it, and collection of everything once the
//! containers and the image are gone. Also the crash cases: `kill -9` during an import
//! and during a collection.
//!
//! The images are real OCI layouts built with umoci from a busybox root filesystem
//! (`oci_fixture.rs`): layer 2 deletes and replaces files of layer 1.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::common::*;
use crate::oci_fixture::{layout_blobs, layout_manifest_descriptor, layout_tar, opaque_layer_layout, two_layer_layout};
use crate::tasks::{runc_spec, Tasks};

const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Copies every blob of `layout` into `content/sha256/` with `cp`.
fn copy_blobs(fx: &MountFixture, layout: &Path) {
    let (code, _, err) = fx.sh(&format!("cp {}/blobs/sha256/* content/sha256/", layout.display()));
    assert_eq!(code, 0, "cp of the blobs: {err}\n{}", fx.log());
}

/// Copies every blob of `layout` in, and writes the image.
pub(crate) fn import_by_copying(fx: &MountFixture, layout: &Path, tag: &str, name: &str) {
    copy_blobs(fx, layout);
    fs::create_dir_all(fx.path(&format!("images/{name}"))).unwrap();
    put(&fx.path(&format!("images/{name}/target")), layout_manifest_descriptor(layout, tag));
}

/// A container of `image` whose task runs `script`, with its snapshot key written.
pub(crate) fn image_container(t: &Tasks, id: &str, image: &str, script: &str) {
    fs::create_dir(t.path(&format!("containers/{id}"))).unwrap();
    let script = script.replace("@ID@", id);
    let mut spec = runc_spec(&["/bin/sh", "-c", &script]);
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    t.set_spec(id, &spec);
    put(&t.path(&format!("containers/{id}/image")), format!("{image}\n"));
    let key = format!("{id}-root");
    if let Err((stage, errno)) = write_doc(&t.path(&format!("containers/{id}/snapshot")), format!("{key}\n").as_bytes(), Mode::Truncate) {
        panic!("writing the snapshot key failed at {stage:?} with {}; log:\n{}", errno_name(errno), t.log());
    }
}

/// Names under `snapshots/`.
fn snapshot_keys(fx: &MountFixture) -> Vec<String> {
    ls(&fx.path("snapshots"))
}

/// Files and directories the state directory holds for blobs, snapshots and rootfs mounts.
pub(crate) fn resource_debris(state: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["content/blobs/sha256", "content/blobs/sha512", "content/ingest", "rootfs"] {
        if let Ok(entries) = fs::read_dir(state.join(dir)) {
            found.extend(entries.flatten().map(|e| e.path()));
        }
    }
    if let Ok(entries) = fs::read_dir(state.join("snapshots")) {
        // `driver` records the snapshotter: state, not debris.
        found.extend(entries.flatten().map(|e| e.path()).filter(|p| !p.ends_with("driver")));
    }
    found.sort();
    found
}

/// What a task of the two-layer image prints: proof of each of layer 2's changes, of the
/// metadata layer 1 carried, and of this container's own writes.
const PROBE: &str = "
set -e
test ! -e /data/gone.txt && echo deleted:gone.txt
cat /data/replaced.txt
test ! -e /data/dir/a && cat /data/dir/b
cat /data/new.txt /data/keep.txt
stat -c 'links:%h' /data/hardlink
stat -c 'suid:%a:%u:%g' /data/suid
stat -c 'dev:%t,%T' /data/null
test ! -e /data/mine.txt && echo clean
echo mine-@ID@ > /data/mine.txt
";

const PROBE_OUTPUT: &str = "deleted:gone.txt\nupper\nb\nnew\nkept\nlinks:2\nsuid:4755:1000:1000\ndev:1,3\nclean\n";

#[test]
fn blobs_are_verified_at_close_and_shown_with_true_sizes() {
    let fx = MountFixture::new();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let hex = sha256_hex(&big);
    let source = fx.root().join("big.bin");
    fs::write(&source, &big).unwrap();
    fx.sh_ok(&format!("cp {} content/sha256/{hex}", source.display()));
    let blob = fx.path(&format!("content/sha256/{hex}"));
    assert_eq!(fs::read(&blob).unwrap(), big);
    assert_eq!(fs::metadata(&blob).unwrap().len(), big.len() as u64);
    assert_eq!(fx.sh_ok(&format!("ls -l content/sha256/{hex} | awk '{{print $5}}'")), format!("{}\n", big.len()));
    assert_eq!(fx.sh_ok(&format!("sha256sum content/sha256/{hex} | cut -d' ' -f1")), format!("{hex}\n"));
    // Again, with the same bytes: accepted, nothing changes.
    fx.sh_ok(&format!("cp {} content/sha256/{hex}", source.display()));
    // Bytes that do not match the name are refused at close, and nothing is stored.
    let wrong = sha256_hex(b"something else");
    let refused = write_doc(&fx.path(&format!("content/sha256/{wrong}")), b"not those bytes", Mode::Truncate);
    assert_eq!(refused, Err((Stage::Close, libc::EINVAL)));
    // The final verdict comes with the release that follows the last close.
    wait_until(DEADLINE, "the refused blob to go", || !fx.path(&format!("content/sha256/{wrong}")).exists());
    fx.wait_for_log_line("the refusal", |l| l.contains("does not match its digest"));
    // A shell ignores the error of the close that ends a redirection, so `echo >` exits 0;
    // the bytes are refused all the same.
    fx.sh(&format!("echo nope > content/sha256/{wrong}"));
    wait_until(DEADLINE, "the refused blob to go", || !fx.path(&format!("content/sha256/{wrong}")).exists());
    let (code, _, err) = fx.sh(&format!("printf nope > {0}/nope && cp {0}/nope content/sha256/{wrong}", fx.root().display()));
    assert_ne!(code, 0, "cp reports the close's EINVAL");
    assert!(err.contains("Invalid argument"), "{err}");
    // Writing over a stored blob with other bytes is refused and the blob is intact.
    let over = write_doc(&blob, b"other", Mode::Truncate);
    assert_eq!(over, Err((Stage::Close, libc::EINVAL)));
    assert_eq!(fs::read(&blob).unwrap(), big);
    // Names that are not digests, and places that hold no blobs.
    // A name that is no digest is a temporary file, which only a rename onto its digest
    // stores; it is not listed.
    fs::write(fx.path("content/sha256/xyz"), b"x").unwrap();
    assert!(!ls(&fx.path("content/sha256")).contains(&"xyz".to_owned()));
    fs::remove_file(fx.path("content/sha256/xyz")).unwrap();
    assert_eq!(errno_of(fs::write(fx.path("content/other"), b"x")), libc::EPERM);
    assert_eq!(errno_of(fs::create_dir(fx.path("snapshots/mine"))), libc::EPERM);
    // Labels are user.* xattrs; containerd.io/gc.root keeps a blob nothing references.
    fx.sh_ok(&format!("setfattr -n user.containerd.io/gc.root -v yes content/sha256/{hex}"));
    assert_eq!(fx.sh_ok(&format!("getfattr --only-values -n user.containerd.io/gc.root content/sha256/{hex}")), "yes");
    assert_eq!(errno_of(fs::remove_file(&blob)), libc::EBUSY);
    fx.sh_ok(&format!("setfattr -x user.containerd.io/gc.root content/sha256/{hex}"));
    // An unreferenced blob can be removed; the file goes with it.
    fs::remove_file(&blob).unwrap();
    assert!(!blob.exists());
    assert!(resource_debris(&fx.state()).is_empty(), "{:?}", resource_debris(&fx.state()));
}

#[test]
fn an_image_copied_in_runs_two_containers_that_share_its_layers_and_keep_their_writes() {
    let layout = two_layer_layout();
    let mut t = Tasks::new();
    import_by_copying(&t, layout, "latest", "local/busybox:2layers");
    let blob_count = layout_blobs(layout).len();
    assert_eq!(ls(&t.path("content/sha256")).len(), blob_count);
    let manifest: Value = serde_json::from_str(&layout_manifest_descriptor(layout, "latest")).unwrap();
    let manifest_hex = manifest["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    assert_eq!(
        errno_of(fs::remove_file(t.path(&format!("content/sha256/{manifest_hex}")))),
        libc::EBUSY,
        "the image reaches its manifest"
    );
    t.assert_logged(&format!("content/sha256/{manifest_hex}"), libc::EBUSY);

    image_container(&t, "img-a", "local/busybox:2layers", PROBE);
    image_container(&t, "img-b", "local/busybox:2layers", PROBE);
    let keys = snapshot_keys(&t);
    let committed: Vec<&String> = keys.iter().filter(|k| k.starts_with("sha256:")).collect();
    assert_eq!(committed.len(), 2, "one committed snapshot per layer, shared: {keys:?}");
    assert!(keys.contains(&"img-a-root".to_owned()) && keys.contains(&"img-b-root".to_owned()));
    assert_eq!(read(&t.path("snapshots/img-a-root/kind")), "active\n");
    let top = read(&t.path("snapshots/img-a-root/parent"));
    assert_eq!(read(&t.path(&format!("snapshots/{}/kind", top.trim()))), "committed\n");
    let lower = read(&t.path(&format!("snapshots/{}/parent", top.trim())));
    assert_eq!(read(&t.path(&format!("snapshots/{}/parent", lower.trim()))), "");
    assert_eq!(
        read(&t.path(&format!("snapshots/{}/references", top.trim()))),
        format!("content/sha256/{}\nsnapshots/img-a-root\nsnapshots/img-b-root\n", config_hex(layout))
    );
    assert_eq!(read(&t.path("snapshots/img-a-root/references")), "containers/img-a\n");
    let mounts: Value = read_json(&t.path("snapshots/img-a-root/mounts"));
    assert!(mounts.as_array().is_some_and(|m| !m.is_empty()), "{mounts}");
    let usage: Value = read_json(&t.path(&format!("snapshots/{}/usage", lower.trim())));
    assert!(usage["size"].as_u64().unwrap() > 500_000, "busybox is in the lower layer: {usage}");
    for rel in ["snapshots/img-a-root/mounts", "snapshots/img-a-root/usage", "snapshots/img-a-root/references"] {
        assert_eq!(fs::metadata(t.path(rel)).unwrap().len() as usize, fs::read(t.path(rel)).unwrap().len(), "{rel}");
    }

    for id in ["img-a", "img-b"] {
        t.start(id);
        assert_eq!(t.wait(id), "0\n", "{id}: {}", read(&t.path(&format!("logs/{id}/stderr"))));
        assert_eq!(read(&t.path(&format!("logs/{id}/stdout"))), PROBE_OUTPUT, "{id}");
    }
    // Each container's write stays in its own snapshot.
    let state = t.state();
    let own = |id: &str| fs::read_to_string(snapshot_files(&t, &format!("{id}-root")).join("data/mine.txt")).unwrap_or_default();
    assert_eq!(own("img-a"), "mine-img-a\n");
    assert_eq!(own("img-b"), "mine-img-b\n");
    // Started again, img-a runs on the same snapshot: its first run's file is there.
    t.control("img-a", "start").unwrap();
    assert_eq!(t.wait("img-a"), "0\n");
    let twice = read(&t.path("logs/img-a/stdout"));
    assert_eq!(twice.matches("deleted:gone.txt").count(), 2, "{twice}");
    assert_eq!(twice.matches("clean").count(), 1, "the second run found /data/mine.txt: {twice}");

    // Deleting img-a: its task unmounts, its active snapshot goes, the shared layers stay.
    let a_dir = snapshot_files(&t, "img-a-root").parent().unwrap().to_owned();
    t.sh_ok("rm tasks/img-a && rmdir containers/img-a");
    assert!(!snapshot_keys(&t).contains(&"img-a-root".to_owned()));
    assert!(!a_dir.exists(), "{} is removed with the snapshot", a_dir.display());
    assert!(!state.join("rootfs/img-a").exists());
    assert_eq!(snapshot_keys(&t).iter().filter(|k| k.starts_with("sha256:")).count(), 2);

    // Deleting img-b and then the image: every blob and snapshot is collected.
    t.sh_ok("rm tasks/img-b && rm -r containers/img-b");
    assert_eq!(snapshot_keys(&t).iter().filter(|k| k.starts_with("sha256:")).count(), 2, "the image pins its layers");
    t.sh_ok("rmdir images/local/busybox:2layers");
    assert!(ls(&t.path("content/sha256")).is_empty(), "{:?}", ls(&t.path("content/sha256")));
    assert!(snapshot_keys(&t).is_empty(), "{:?}", snapshot_keys(&t));
    assert!(resource_debris(&state).is_empty(), "{:?}", resource_debris(&state));
    let fx = t.fixture();
    fx.remount();
    assert!(resource_debris(&fx.state()).is_empty());
}

/// The host directory holding an active snapshot's own files, read from its `mounts`:
/// overlay's upperdir, or the bind source of the copying snapshotter.
pub(crate) fn snapshot_files(fx: &MountFixture, key: &str) -> PathBuf {
    let mounts: Value = read_json(&fx.path(&format!("snapshots/{key}/mounts")));
    let options = mounts[0]["options"].as_array().cloned().unwrap_or_default();
    let upper = options.iter().filter_map(Value::as_str).find_map(|o| o.strip_prefix("upperdir=")).map(PathBuf::from);
    upper.unwrap_or_else(|| PathBuf::from(mounts[0]["source"].as_str().unwrap()))
}

fn config_hex(layout: &Path) -> String {
    let manifest: Value = serde_json::from_str(&layout_manifest_descriptor(layout, "latest")).unwrap();
    let hex = manifest["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let manifest: Value = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned()
}

#[test]
fn ctrfs_import_of_a_tar_then_a_key_written_first_is_prepared_by_the_task() {
    let layout = opaque_layer_layout();
    let tar = layout_tar(layout);
    let t = Tasks::new();
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("import")
        .arg(t.mnt())
        .arg(&tar)
        .args(["--name", "library/busybox"])
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}\n{}", String::from_utf8_lossy(&out.stderr), t.log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imported library/busybox"), "{stdout}");
    let images = t.sh_ok("find images -name target | sort");
    assert!(images.contains("images/library/busybox"), "{images}");
    let image = images.lines().next().unwrap().trim_start_matches("images/").trim_end_matches("/target").to_owned();
    // The key first, then the image: nothing is unpacked until the task starts.
    fs::create_dir(t.path("containers/opq")).unwrap();
    let mut spec = runc_spec(&["/bin/sh", "-c", "ls /data/dir | tr '\\n' ' '; cat /data/replaced.txt"]);
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    t.set_spec("opq", &spec);
    put(&t.path("containers/opq/snapshot"), "opq-root\n");
    put(&t.path("containers/opq/image"), format!("{image}\n"));
    assert!(snapshot_keys(&t).is_empty());
    t.start("opq");
    assert_eq!(t.wait("opq"), "0\n", "{}", read(&t.path("logs/opq/stderr")));
    assert_eq!(read(&t.path("logs/opq/stdout")), "c upper\n", "the opaque directory hides the lower a and b");
    assert_eq!(snapshot_keys(&t).iter().filter(|k| k.starts_with("sha256:")).count(), 3);
}

#[test]
fn references_that_do_not_resolve_are_refused_with_their_errno() {
    let layout = two_layer_layout();
    let t = Tasks::new();
    // A container naming an image that does not exist: its snapshot key is kept at the
    // write (a restore copies files in its own order), and refused when the task starts.
    fs::create_dir(t.path("containers/ghost")).unwrap();
    let mut spec = runc_spec(&["/bin/sh", "-c", "sleep 1000"]);
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    t.set_spec("ghost", &spec);
    put(&t.path("containers/ghost/image"), "no/such:image\n");
    put(&t.path("containers/ghost/snapshot"), "ghost-root\n");
    assert_eq!(read(&t.path("containers/ghost/snapshot")), "ghost-root\n", "the key is kept");
    t.wait_for_log_line("that the key ghost-root is kept", |l| l.contains("ghost-root") && l.contains("kept"));
    assert!(!snapshot_keys(&t).contains(&"ghost-root".to_owned()), "nothing prepared yet");
    let (code, _, err) = t.sh("touch tasks/ghost");
    assert_ne!(code, 0, "a task started on a missing image");
    assert!(err.contains("No such file or directory"), "{err}");
    t.assert_logged("tasks/ghost", libc::ENOENT);
    assert_eq!(errno_of(fs::metadata(t.path("tasks/ghost"))), libc::ENOENT, "no task recorded");
    assert_eq!(read(&t.path("containers/ghost/snapshot")), "ghost-root\n", "the key stays");

    // An image directory with labels but no target is not an image: the same ENOENT.
    fs::create_dir_all(t.path("images/pending")).unwrap();
    put(&t.path("images/pending/labels"), "origin=restore\n");
    put(&t.path("containers/ghost/image"), "pending\n");
    let (code, _, err) = t.sh("touch tasks/ghost");
    assert!(code != 0 && err.contains("No such file or directory"), "{err}");

    // An image whose layer blob is missing: the key is kept at the write, the start is
    // ENOENT, and the log names the digest.
    let blobs = layout_blobs(layout);
    let manifest: Value = serde_json::from_str(&layout_manifest_descriptor(layout, "latest")).unwrap();
    let manifest_hex = manifest["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    let doc: Value = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&manifest_hex)).unwrap()).unwrap();
    let missing_layer = doc["layers"][1]["digest"].as_str().unwrap().to_owned();
    for (hex, path) in &blobs {
        if !missing_layer.ends_with(hex.as_str()) {
            fs::copy(path, t.path(&format!("content/sha256/{hex}"))).unwrap();
        }
    }
    fs::create_dir_all(t.path("images/partial")).unwrap();
    put(&t.path("images/partial/target"), manifest.to_string());
    put(&t.path("containers/ghost/image"), "partial\n");
    put(&t.path("containers/ghost/snapshot"), "ghost-root\n");
    t.wait_for_log_line("keeping ghost-root, naming the missing layer", |l| l.contains("kept") && l.contains(&missing_layer));
    let (code, _, err) = t.sh("touch tasks/ghost");
    assert_ne!(code, 0, "a task started with a missing layer");
    assert!(err.contains("No such file or directory"), "{err}");
    t.wait_for_log_line("naming tasks/ghost and the missing layer", |l| l.contains("tasks/ghost") && l.contains(&missing_layer));
    assert!(!snapshot_keys(&t).contains(&"ghost-root".to_owned()));

    // A target whose blob is not a manifest.
    let config = config_hex(layout);
    let bad = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{config}"),
                     "size": fs::metadata(layout.join("blobs/sha256").join(&config)).unwrap().len()});
    fs::create_dir_all(t.path("images/bad")).unwrap();
    assert_eq!(write_doc(&t.path("images/bad/target"), bad.to_string().as_bytes(), Mode::Truncate), Err((Stage::Write, libc::EINVAL)));
    // A snapshot key another container holds, even one only kept: EBUSY at the write.
    fs::create_dir(t.path("containers/thief")).unwrap();
    put(&t.path("containers/thief/image"), "partial\n");
    assert_eq!(write_doc(&t.path("containers/thief/snapshot"), b"ghost-root\n", Mode::Truncate), Err((Stage::Write, libc::EBUSY)));
    // Without an image the key is only recorded, but another container's key still is not free.
    fs::create_dir(t.path("containers/bare")).unwrap();
    assert_eq!(write_doc(&t.path("containers/bare/snapshot"), b"ghost-root\n", Mode::Truncate), Err((Stage::Write, libc::EBUSY)));
    assert_eq!(errno_of(fs::metadata(t.path("containers/bare/snapshot"))), libc::ENOENT, "the refused key left it unset");
    // Once the missing layer is here, the task's start prepares the kept key.
    let missing_path = layout.join("blobs/sha256").join(missing_layer.trim_start_matches("sha256:"));
    fs::copy(missing_path, t.path(&format!("content/sha256/{}", missing_layer.trim_start_matches("sha256:")))).unwrap();
    t.start("ghost");
    assert!(snapshot_keys(&t).contains(&"ghost-root".to_owned()), "prepared at the start");
    // A snapshot in use cannot be removed; neither can a parent.
    assert_eq!(errno_of(fs::remove_dir(t.path("snapshots/ghost-root"))), libc::EBUSY);
    let top = read(&t.path("snapshots/ghost-root/parent"));
    assert_eq!(errno_of(fs::remove_dir(t.path(&format!("snapshots/{}", top.trim())))), libc::EBUSY);
    assert_eq!(errno_of(fs::write(t.path("snapshots/ghost-root/kind"), b"committed\n")), libc::EACCES);
    // Changing the key of a container whose task exists is refused.
    assert_eq!(write_doc(&t.path("containers/ghost/snapshot"), b"other\n", Mode::Truncate), Err((Stage::Write, libc::EBUSY)));
}

#[test]
fn kill_9_during_an_import_leaves_only_whole_blobs_and_a_rerun_completes_it() {
    let mut fx = MountFixture::new();
    // A layout with one large incompressible blob, so the import is still writing when killed.
    let layout = fx.root().join("big-layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut big = Vec::with_capacity(96 << 20);
    let mut x = 0x9e3779b97f4a7c15u64;
    while big.len() < 96 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    let big_hex = sha256_hex(&big);
    fs::write(layout.join("blobs/sha256").join(&big_hex), &big).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_hex = sha256_hex(config);
    fs::write(layout.join("blobs/sha256").join(&config_hex), config).unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{big_hex}"), "size": big.len()}]});
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_hex = sha256_hex(&manifest_bytes);
    fs::write(layout.join("blobs/sha256").join(&manifest_hex), &manifest_bytes).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{manifest_hex}"), "size": manifest_bytes.len()}]});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();

    let mut import = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("import")
        .arg(fx.mnt())
        .arg(&layout)
        .args(["--name", "big"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the big blob is being written (its ingest file exists and grows).
    let ingest = fx.state().join("content/ingest");
    wait_until(DEADLINE, "the import to be writing the big blob", || {
        fs::read_dir(&ingest).map(|d| d.flatten().any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))).unwrap_or(false)
    });
    fx.kill9_and_remount();
    let _ = import.wait();
    // Every blob that is listed is whole and matches its name; no ingest is left.
    for hex in ls(&fx.path("content/sha256")) {
        let bytes = fs::read(fx.path(&format!("content/sha256/{hex}"))).unwrap();
        assert_eq!(sha256_hex(&bytes), hex);
    }
    assert_eq!(fs::read_dir(&ingest).unwrap().count(), 0);
    assert!(!fx.path(&format!("content/sha256/{big_hex}")).exists() || fs::metadata(fx.path(&format!("content/sha256/{big_hex}"))).unwrap().len() == big.len() as u64);
    // Running the import again finishes it.
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs")).arg("import").arg(fx.mnt()).arg(&layout).args(["--name", "big"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ls(&fx.path("content/sha256")).len(), 3);
    assert_eq!(read_json(&fx.path("images/big/target"))["digest"], format!("sha256:{manifest_hex}"));
}

#[test]
fn kill_9_during_a_collection_is_finished_by_the_restart() {
    let layout = two_layer_layout();
    let mut t = Tasks::new();
    import_by_copying(&t, layout, "latest", "gc/busybox");
    image_container(&t, "gc1", "gc/busybox", "true");
    let state = t.state();
    assert!(!resource_debris(&state).is_empty());
    // Delete the container and the image, and kill the daemon as the collection starts
    // removing files: the records are gone in one transaction, the files may not be.
    fs::remove_dir(t.path("containers/gc1")).unwrap();
    let mut rmdir = Command::new("rmdir").arg(t.path("images/gc/busybox")).spawn().unwrap();
    t.wait_for_log_line("the collection", |l| l.contains("collected"));
    let fx = t.fixture();
    // Whatever the kill interrupted, a crash can also leave these: a blob file and a
    // snapshot directory without records, and an ingest never closed.
    fx.kill9_and_remount_with(|| {
        fs::create_dir_all(state.join("snapshots/999999/fs/etc")).unwrap();
        fs::write(state.join(format!("content/blobs/sha256/{}", "ab".repeat(32))), b"debris").unwrap();
        let mut ingest = fs::File::create(state.join("content/ingest/1-2-sha256-x")).unwrap();
        ingest.write_all(b"half").unwrap();
    });
    let _ = rmdir.wait();
    // After the restart nothing is half-deleted: either the image survived whole (the kill
    // came before its commit) or everything is collected.
    let images = fx.sh_ok("find images -name target");
    if images.is_empty() {
        assert!(ls(&fx.path("content/sha256")).is_empty());
        assert!(ls(&fx.path("snapshots")).is_empty());
        assert!(resource_debris(&fx.state()).is_empty(), "{:?}", resource_debris(&fx.state()));
    } else {
        for hex in ls(&fx.path("content/sha256")) {
            assert_eq!(sha256_hex(&fs::read(fx.path(&format!("content/sha256/{hex}"))).unwrap()), hex);
        }
        fx.sh_ok("rmdir images/gc/busybox");
        assert!(resource_debris(&fx.state()).is_empty(), "{:?}", resource_debris(&fx.state()));
    }
    fx.wait_for_log_line("the sweep", |l| l.contains("removed snapshot directory 999999"));
}

/// An index over the two-layer manifest and a manifest for another platform (whose blob is
/// not even here): the host's entry is chosen.
fn write_index_image(fx: &MountFixture, layout: &Path, name: &str) {
    copy_blobs(fx, layout);
    let mut ours: Value = serde_json::from_str(&layout_manifest_descriptor(layout, "latest")).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ours["platform"] = json!({"os": "linux", "architecture": arch});
    let other = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "0e".repeat(32)), "size": 100,
        "platform": {"os": "linux", "architecture": "s390x-elsewhere"}});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, ours]}))
    .unwrap();
    let hex = sha256_hex(&index);
    let staged = fx.root().join("index.json");
    fs::write(&staged, &index).unwrap();
    fx.sh_ok(&format!("cp {} content/sha256/{hex}", staged.display()));
    fs::create_dir_all(fx.path(&format!("images/{name}"))).unwrap();
    let target = json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{hex}"), "size": index.len()});
    put(&fx.path(&format!("images/{name}/target")), target.to_string());
}

#[test]
fn the_copying_snapshotter_runs_an_index_image_unpacked_once_for_concurrent_containers() {
    let layout = two_layer_layout();
    let mut t = Tasks::with(MountFixture::with_args(&["--snapshotter", "native"]));
    write_index_image(&t, layout, "multi");
    let ids = ["n1", "n2", "n3", "n4"];
    for id in ids {
        fs::create_dir(t.path(&format!("containers/{id}"))).unwrap();
        let script = PROBE.replace("@ID@", id);
        let mut spec = runc_spec(&["/bin/sh", "-c", &script]);
        spec["root"] = json!({"path": "rootfs", "readonly": false});
        t.set_spec(id, &spec);
        put(&t.path(&format!("containers/{id}/image")), "multi\n");
    }
    // Four keys written at once: each layer is still unpacked exactly once.
    std::thread::scope(|scope| {
        for id in ids {
            let path = t.path(&format!("containers/{id}/snapshot"));
            scope.spawn(move || put(&path, format!("{id}-root\n")));
        }
    });
    let unpacked = t.log().lines().filter(|l| l.contains("unpacked as snapshot")).count();
    assert_eq!(unpacked, 2, "{}", t.log());
    assert_eq!(read(&t.path("snapshots/n1-root/snapshotter")), "native\n");
    let mounts = read_json(&t.path("snapshots/n1-root/mounts"));
    assert_eq!(mounts[0]["type"], "bind", "{mounts}");
    for id in ["n1", "n2"] {
        t.start(id);
        assert_eq!(t.wait(id), "0\n", "{id}: {}", read(&t.path(&format!("logs/{id}/stderr"))));
        assert_eq!(read(&t.path(&format!("logs/{id}/stdout"))), PROBE_OUTPUT, "{id}");
    }
    t.sh_ok("for id in n1 n2; do rm tasks/$id; done; rm -r containers/n1 containers/n2 containers/n3 containers/n4");
    t.sh_ok("rmdir images/multi");
    assert!(ls(&t.path("snapshots")).is_empty());
    assert!(resource_debris(&t.state()).is_empty(), "{:?}", resource_debris(&t.state()));
    t.fixture().remount();
}

#[test]
fn a_task_on_a_snapshot_survives_kill_9_of_the_daemon_and_rm_unmounts_it_after() {
    let layout = two_layer_layout();
    let mut t = Tasks::new();
    import_by_copying(&t, layout, "latest", "keep/busybox");
    image_container(&t, "alive", "keep/busybox", "trap 'exit 143' TERM; echo up; while true; do sleep 0.05; done");
    t.start("alive");
    wait_until(DEADLINE, "the task to print", || read(&t.path("logs/alive/stdout")) == "up\n");
    let rootfs = t.state().join("rootfs/alive");
    assert!(is_mounted(&rootfs), "the snapshot is mounted for the task");
    t.fixture().kill9_and_remount();
    assert_eq!(t.status("alive")["status"], "running");
    assert!(is_mounted(&rootfs), "a restart leaves a running task's root filesystem alone");
    assert_eq!(snapshot_keys(&t).len(), 3);
    t.control("alive", "TERM").unwrap();
    assert_eq!(t.wait("alive"), "143\n");
    t.sh_ok("rm tasks/alive && rmdir containers/alive images/keep/busybox");
    assert!(!is_mounted(&rootfs) && !rootfs.exists());
    assert!(resource_debris(&t.state()).is_empty(), "{:?}", resource_debris(&t.state()));
}
