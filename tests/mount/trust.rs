//! The trust contract (issue 8): what a write() acknowledged survives `kill -9`; a refused
//! value changes nothing, even for an instant a collection could act on; no request can
//! stop the daemon or keep the mount from answering; names the daemon removes itself are
//! gone for the kernel at once.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::common::*;
use crate::oci::{image_container, import_by_copying, snapshot_files};
use crate::oci_fixture::two_layer_layout;
use crate::tasks::Tasks;

const DEADLINE: Duration = Duration::from_secs(60);

/// A shell writer appending `w<W>-r<R>-<i>=v` to `containers/c<W>/labels`, recording each
/// `i` whose `echo` exited 0 in `acked` (outside the mount). It stops at the first failure
/// (the daemon was killed).
fn label_writer(fx: &MountFixture, writer: usize, round: usize, acked: &Path) -> Child {
    let script = format!(
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); \
         echo \"w{writer}-r{round}-$i=v\" >> containers/c{writer}/labels 2>/dev/null || exit 0; \
         echo $i >> '{}'; done",
        acked.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(fx.mnt())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a label writer")
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn no_label_a_shell_saw_acknowledged_is_lost_to_kill_9() {
    let mut fx = MountFixture::new();
    const WRITERS: usize = 4;
    const ROUNDS: usize = 10;
    for w in 0..WRITERS {
        fs::create_dir(fx.path(&format!("containers/c{w}"))).unwrap();
    }
    let mut total = 0;
    for round in 0..ROUNDS {
        let acked: Vec<_> = (0..WRITERS).map(|w| fx.root().join(format!("acked-{w}-{round}"))).collect();
        let mut writers: Vec<Child> = (0..WRITERS).map(|w| label_writer(&fx, w, round, &acked[w])).collect();
        // Kill once every writer is well under way, at a point the writers do not know.
        wait_until(DEADLINE, "every writer to have labels acknowledged", || {
            acked.iter().all(|a| lines(a).len() >= 5 + round * 3)
        });
        fx.kill9_and_remount();
        for child in &mut writers {
            child.wait().expect("writer exits once the daemon is gone");
        }
        for (w, path) in acked.iter().enumerate() {
            let labels = read(&fx.path(&format!("containers/c{w}/labels")));
            for i in lines(path) {
                let line = format!("w{w}-r{round}-{i}=v\n");
                assert!(labels.contains(&line), "round {round}: {line:?} was acknowledged but is gone after kill -9");
                total += 1;
            }
        }
    }
    assert!(total >= ROUNDS * WRITERS * 5, "only {total} writes were acknowledged");
}

#[test]
fn what_fsync_or_a_completing_write_acknowledged_survives_kill_9_before_close() {
    let mut fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let labels = fx.path("containers/c/labels");
    // An unfinished line, made durable by fsync alone.
    // `>>` creates the file: a new container has no labels yet.
    let mut synced = OpenOptions::new().append(true).create(true).open(&labels).unwrap();
    synced.write_all(b"synced=1").unwrap();
    synced.sync_all().unwrap();
    // A whole line and a whole spec: durable at the write() that completed them.
    let mut line = OpenOptions::new().append(true).open(&labels).unwrap();
    line.write_all(b"acked=1\n").unwrap();
    let mut spec = File::create(fx.path("containers/c/spec")).unwrap();
    spec.write_all(br#"{"ociVersion": "1.2.0", "process": {"args": ["true"]}}"#).unwrap();
    fx.kill9_and_remount();
    drop((synced, line, spec));
    assert_eq!(read(&labels), "acked=1\nsynced=1\n");
    assert_eq!(read_json(&fx.path("containers/c/spec"))["process"]["args"], json!(["true"]));
}

/// Opens `path` as a shell's `>` does: truncating, then closing a duplicate descriptor
/// (a FUSE flush that sees the bare truncation) before any byte is written.
pub(crate) fn open_like_a_shell_redirect(path: &Path) -> File {
    let file = OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    drop(file.try_clone().unwrap());
    file
}

#[test]
fn a_refused_snapshot_key_never_lets_a_collection_take_the_rootfs() {
    let layout = two_layer_layout();
    let t = Tasks::new();
    import_by_copying(&t, layout, "latest", "trust/busybox");
    image_container(&t, "x", "trust/busybox", "true");
    image_container(&t, "y", "trust/busybox", "true");
    fs::create_dir(t.path("containers/other")).unwrap();
    let kept = snapshot_files(&t, "x-root").join("kept.txt");
    fs::write(&kept, "x's own data\n").unwrap();

    // bash: `echo y-root > containers/x/snapshot` refused where the shell sees it.
    let (code, _, err) = t.sh("bash -c 'echo y-root > containers/x/snapshot'");
    assert_ne!(code, 0, "the write of another container's key must fail in the shell");
    assert!(err.contains("Device or resource busy"), "{err}");
    assert_eq!(read(&t.path("containers/x/snapshot")), "x-root\n");
    assert!(kept.exists(), "x's root filesystem and its files are intact");

    // The same with a collection between the truncation and the refused write.
    let mut file = open_like_a_shell_redirect(&t.path("containers/x/snapshot"));
    t.sh_ok("rmdir containers/other");
    assert!(t.path("snapshots/x-root").exists(), "the emptied key's snapshot stays pinned by the open writer");
    assert_eq!(errno_of(file.write_all(b"y-root\n")), libc::EBUSY);
    assert_eq!(close_checked(file), Err(libc::EBUSY));
    assert_eq!(read(&t.path("containers/x/snapshot")), "x-root\n");
    assert_eq!(fs::read_to_string(&kept).unwrap(), "x's own data\n");

    // Writing x's own key again (the README's flow after `rm tasks/x`) changes nothing.
    t.sh_ok("echo x-root > containers/x/snapshot; echo x-root > containers/x/snapshot");
    assert_eq!(fs::read_to_string(&kept).unwrap(), "x's own data\n", "the same key twice keeps the files");
    assert_eq!(read(&t.path("snapshots/x-root/references")), "containers/x\n");

    // Clearing the key for real does let it go, once the writer is closed.
    t.sh_ok("echo > containers/x/snapshot");
    wait_until(DEADLINE, "x-root to be collected", || !t.path("snapshots/x-root").exists());
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn a_refused_label_edit_never_drops_a_gc_ref_pin_for_a_collection() {
    let fx = MountFixture::with_args(&["--content-lease", "0s"]);
    let blob = b"pinned by a label only\n";
    let hex = sha256_hex(blob);
    put(&fx.path(&format!("content/sha256/{hex}")), blob);
    fs::create_dir(fx.path("containers/c")).unwrap();
    fs::create_dir(fx.path("containers/other")).unwrap();
    let pin = format!("containerd.io/gc.ref.content.keep=sha256:{hex}\n");
    put(&fx.path("containers/c/labels"), &pin);
    let mut file = open_like_a_shell_redirect(&fx.path("containers/c/labels"));
    fx.sh_ok("rmdir containers/other");
    assert!(fx.path(&format!("content/sha256/{hex}")).exists(), "a collection while the labels are emptied keeps the blob");
    assert_eq!(errno_of(file.write_all(b"no equals sign\n")), libc::EINVAL);
    drop(file);
    assert_eq!(read(&fx.path("containers/c/labels")), pin, "the refusal puts the pin back");
    assert!(fx.path(&format!("content/sha256/{hex}")).exists());
}

#[test]
fn bad_bytes_after_a_committed_document_put_the_value_from_before_the_open_back() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/app")).unwrap();
    let doc = descriptor(1).to_string();
    // A first target, then garbage through the same descriptor: the image goes back to
    // being a name prefix.
    let mut file = File::create(fx.path("images/app/target")).unwrap();
    file.write_all(doc.as_bytes()).unwrap();
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1), "committed at the write that closed it");
    assert_eq!(errno_of(file.write_all(b"x")), libc::EINVAL);
    drop(file);
    assert!(!fx.path("images/app/target").exists(), "no target again");
    // With a target already there, the old one comes back.
    put(&fx.path("images/app/target"), &doc);
    let mut file = File::create(fx.path("images/app/target")).unwrap();
    file.write_all(descriptor(2).to_string().as_bytes()).unwrap();
    assert_eq!(errno_of(file.write_all(b"}")), libc::EINVAL);
    drop(file);
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1));
}

#[test]
fn huge_truncations_and_offsets_are_refused_and_the_daemon_serves_on() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/labels"), "keep=1\n");
    for file in ["labels", "spec"] {
        let (code, _, err) = fx.sh(&format!("truncate -s 1T containers/c/{file}"));
        assert_ne!(code, 0, "{file}");
        assert!(err.contains("File too large"), "{file}: {err}");
    }
    let mut far = OpenOptions::new().write(true).open(fx.path("containers/c/labels")).unwrap();
    let at = |f: &mut File, offset: u64| {
        std::io::Seek::seek(f, std::io::SeekFrom::Start(offset)).unwrap();
        f.write_all(b"x=1\n")
    };
    assert_eq!(errno_of(at(&mut far, 1 << 50)), libc::EFBIG);
    drop(far);
    assert_eq!(read(&fx.path("containers/c/labels")), "keep=1\n");
    fx.assert_logged("containers/c/labels", libc::EFBIG);
}

/// An image of one uncompressed layer holding `size` bytes of data made from `seed`.
fn big_image(fx: &MountFixture, name: &str, seed: u32, size: usize) {
    let mut state = seed.wrapping_mul(2654435761) | 1;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let mut layer = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut layer);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "big.bin", data.as_slice()).unwrap();
        builder.finish().unwrap();
    }
    let layer_hex = sha256_hex(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": oci_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_hex}"), "size": layer.len()}],
    }))
    .unwrap();
    for blob in [&layer, &config, &manifest] {
        put(&fx.path(&format!("content/sha256/{}", sha256_hex(blob))), blob);
    }
    fs::create_dir_all(fx.path(&format!("images/{name}"))).unwrap();
    let target = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha256_hex(&manifest)), "size": manifest.len()});
    put(&fx.path(&format!("images/{name}/target")), target.to_string());
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn the_mount_answers_within_100ms_while_6_unpacks_and_4_task_starts_run() {
    let layout = two_layer_layout();
    let t = Tasks::new();
    import_by_copying(&t, layout, "latest", "quick/busybox");
    for i in 0..4 {
        image_container(&t, &format!("s{i}"), "quick/busybox", "sleep 30");
    }
    for i in 0..6 {
        big_image(&t, &format!("big/{i}"), i + 1, 24 << 20);
        fs::create_dir(t.path(&format!("containers/b{i}"))).unwrap();
        put(&t.path(&format!("containers/b{i}/image")), format!("big/{i}\n"));
    }
    fs::create_dir(t.path("containers/idle")).unwrap();
    put(&t.path("containers/idle/labels"), "quiet=1\n");
    let mnt = t.mnt();
    let slow: Vec<std::thread::JoinHandle<(i32, String)>> = (0..6)
        .map(|i| format!("echo b{i}-root > containers/b{i}/snapshot"))
        .chain((0..4).map(|i| format!("touch tasks/s{i}")))
        .map(|script| {
            let mnt = mnt.clone();
            std::thread::spawn(move || {
                let (code, _, err) = sh(&mnt, &script);
                (code, format!("{script}: {err}"))
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    let mut samples = 0;
    while slow.iter().any(|h| !h.is_finished()) {
        let started = Instant::now();
        let size = fs::metadata(t.path("containers/idle/labels")).unwrap().len();
        let text = read(&t.path("containers/idle/labels"));
        worst = worst.max(started.elapsed());
        assert_eq!((size, text.as_str()), (8, "quiet=1\n"));
        samples += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    for h in slow {
        let (code, what) = h.join().unwrap();
        assert_eq!(code, 0, "{what}\n{}", t.log());
    }
    assert!(samples >= 10, "the slow work ended too soon to measure ({samples} samples)");
    assert!(worst < Duration::from_millis(100), "stat + read took {worst:?} while unpacks and starts ran");
    let unpacked = t.log().matches("unpacked as snapshot").count();
    assert!(unpacked >= 6 + 2, "six big layers and busybox's two were unpacked: {unpacked}");
    for i in 0..4 {
        t.sh_ok(&format!("rm tasks/s{i}"));
    }
}

#[test]
fn watchers_of_a_removed_task_s_views_see_them_go() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let t = Tasks::new();
    t.container("w", "exit 0");
    t.start("w");
    assert_eq!(t.wait("w"), "0\n");
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    let wait = inotify.add_watch(&t.path("wait/w"), AddWatchFlags::IN_DELETE_SELF).unwrap();
    let logs = inotify.add_watch(&t.path("logs/w"), AddWatchFlags::IN_DELETE_SELF).unwrap();
    t.sh_ok("rm tasks/w");
    let mut gone = Vec::new();
    wait_until(DEADLINE, "IN_DELETE_SELF for wait/w and logs/w", || {
        if let Ok(events) = inotify.read_events() {
            gone.extend(events.into_iter().filter(|e| e.mask.contains(AddWatchFlags::IN_DELETE_SELF)).map(|e| e.wd));
        }
        gone.contains(&wait) && gone.contains(&logs)
    });
    assert!(!t.path("wait/w").exists() && !t.path("logs/w").exists());
}

#[test]
fn stat_of_usage_never_walks_the_tree_and_reading_it_measures() {
    let layout = two_layer_layout();
    let t = Tasks::new();
    import_by_copying(&t, layout, "latest", "usage/busybox");
    image_container(&t, "u", "usage/busybox", "true");
    let usage = t.path("snapshots/u-root/usage");
    let recorded = read(&usage);
    let files = snapshot_files(&t, "u-root");
    for i in 0..200 {
        fs::write(files.join(format!("f{i}")), vec![b'x'; 4096]).unwrap();
    }
    assert_eq!(fs::metadata(&usage).unwrap().len() as usize, recorded.len(), "a stat shows the recorded figure");
    let measured = read(&usage);
    let inodes = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["inodes"].as_u64().unwrap();
    assert!(inodes(&measured) >= inodes(&recorded) + 200, "{recorded} -> {measured}");
    assert_eq!(fs::metadata(&usage).unwrap().len() as usize, measured.len(), "and the reading recorded it");
}

#[test]
fn a_large_spec_written_in_small_chunks_is_accepted_and_comes_back_whole() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/big")).unwrap();
    let env: Vec<String> = (0..40_000).map(|i| format!("VAR_{i}=value-{i}")).collect();
    let spec = serde_json::to_string_pretty(&json!({"ociVersion": "1.2.0", "process": {"args": ["true"], "env": env}})).unwrap();
    assert!(spec.len() > 1 << 20, "{} bytes", spec.len());
    let source = fx.root().join("spec.json");
    fs::write(&source, &spec).unwrap();
    fx.sh_ok(&format!("dd if={} of=containers/big/spec bs=512 status=none", source.display()));
    assert_eq!(read(&fx.path("containers/big/spec")), spec);
    assert_eq!(fs::metadata(fx.path("containers/big/spec")).unwrap().len() as usize, spec.len());
}

#[test]
fn rm_touch_and_wait_of_one_task_work_in_a_tight_loop() {
    let t = Tasks::new();
    t.container("w", "exit 0");
    let (code, out, err) = t.sh(
        "for i in $(seq 50); do rm -f tasks/w; touch tasks/w || exit 1; s=$(cat wait/w) || exit 2; \
         [ \"$s\" = 0 ] || { echo \"round $i: [$s]\"; exit 3; }; done; rm tasks/w",
    );
    assert_eq!(code, 0, "{out}{err}\n{}", t.log());
    assert!(!t.path("wait/w").exists());
}
