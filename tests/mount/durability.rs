//! What survives a restart: a clean remount (SIGTERM) and a crash (SIGKILL) right after
//! acknowledged writes must both show the same tree.
//!
//! Not here: refusing a store with a newer schema version needs a hook into the store;
//! the store's unit tests cover it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::common::*;

/// One visible path with everything a user can observe about it.
#[derive(Debug, PartialEq)]
struct Node {
    path: PathBuf,
    is_dir: bool,
    mode: u32,
    ino: u64,
    /// `None` where the contract does not fix the time (the root and the never-changed `tasks/`).
    mtime: Option<(i64, i64)>,
    content: String,
}

fn dump(fx: &MountFixture) -> Vec<Node> {
    walk(&fx.mnt())
        .into_iter()
        .map(|rel| {
            let p = fx.mnt().join(&rel);
            let md = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            let fixed_time = rel != Path::new("tasks");
            Node {
                is_dir: md.is_dir(),
                mode: md.permissions().mode(),
                ino: md.ino(),
                mtime: fixed_time.then(|| (md.mtime(), md.mtime_nsec())),
                content: if md.is_dir() { String::new() } else { read(&p) },
                path: rel,
            }
        })
        .collect()
}

fn assert_same_tree(before: &[Node], after: &[Node]) {
    let paths = |v: &[Node]| v.iter().map(|n| n.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(after), paths(before), "the set of paths changed");
    for (b, a) in before.iter().zip(after) {
        assert_eq!(a, b, "{} changed", b.path.display());
    }
}

fn spec() -> serde_json::Value {
    json!({"ociVersion": "1.2.0", "process": {"args": ["/bin/sh"], "cwd": "/"}, "root": {"path": "rootfs"}})
}

/// Writes a varied set of records; every write is acknowledged (closed without error).
fn populate(fx: &MountFixture) {
    let p = |rel: &str| fx.path(rel);
    fs::create_dir_all(p("images/docker.io/library/busybox:1.36")).unwrap();
    fs::create_dir_all(p("images/docker.io/library/alpine:3.20")).unwrap();
    fs::create_dir_all(p("images/quay.io/org/only-a-prefix")).unwrap();
    fs::create_dir_all(p("images/app/v2")).unwrap();
    put(
        &p("images/docker.io/library/busybox:1.36/target"),
        descriptor(1).to_string(),
    );
    put(
        &p("images/docker.io/library/busybox:1.36/labels"),
        "b=2\na=1\n",
    );
    put(
        &p("images/docker.io/library/alpine:3.20/target"),
        descriptor(2).to_string(),
    );
    let mut annotated = descriptor(3);
    annotated["annotations"] = json!({"k": "v"});
    annotated["x-extra"] = json!([1, 2]);
    put(&p("images/app/target"), annotated.to_string());
    put(&p("images/app/v2/target"), descriptor(4).to_string());

    for id in ["web", "db", "cache", "gone"] {
        fs::create_dir(p(&format!("containers/{id}"))).unwrap();
    }
    put(&p("containers/web/spec"), spec().to_string());
    put(&p("containers/web/snapshot"), "web-root\n");
    put(
        &p("containers/web/image"),
        "docker.io/library/busybox:1.36\n",
    );
    put(&p("containers/web/snapshotter"), "native\n");
    put(&p("containers/web/runtime"), "crun\n");
    put(&p("containers/web/labels"), "env=prod\nteam=infra\n");
    append(&p("containers/web/labels"), "team=\ntier=front\n");
    set_xattr(&p("containers/cache"), "user.ttl", b"60", 0).unwrap();
    fs::remove_dir(p("containers/gone")).unwrap();
    fs::create_dir(p("images/gone")).unwrap();
    put(&p("images/gone/target"), descriptor(5).to_string());
    fs::remove_dir(p("images/gone")).unwrap();
}

/// The values `populate` wrote, checked one by one.
fn assert_populated(fx: &MountFixture) {
    let p = |rel: &str| fx.path(rel);
    assert_eq!(ls(&p("images")), ["app", "docker.io", "quay.io"]);
    assert_eq!(
        ls(&p("images/docker.io/library")),
        ["alpine:3.20", "busybox:1.36"]
    );
    assert_eq!(
        ls(&p("images/quay.io/org/only-a-prefix")),
        Vec::<String>::new()
    );
    assert_eq!(
        read_json(&p("images/docker.io/library/busybox:1.36/target")),
        descriptor(1)
    );
    assert_eq!(
        read(&p("images/docker.io/library/busybox:1.36/labels")),
        "a=1\nb=2\n"
    );
    assert_eq!(
        read_json(&p("images/docker.io/library/alpine:3.20/target")),
        descriptor(2)
    );
    assert_eq!(read_json(&p("images/app/target"))["x-extra"], json!([1, 2]));
    assert_eq!(read_json(&p("images/app/v2/target")), descriptor(4));
    assert_eq!(read_json(&p("images/app/v2/info.json"))["name"], "app/v2");

    assert_eq!(ls(&p("containers")), ["cache", "db", "web"]);
    assert_eq!(read_json(&p("containers/web/spec")), spec());
    assert_eq!(
        read(&p("containers/web/image")),
        "docker.io/library/busybox:1.36\n"
    );
    assert_eq!(read(&p("containers/web/snapshotter")), "native\n");
    assert_eq!(read(&p("containers/web/snapshot")), "web-root\n");
    assert_eq!(read(&p("containers/web/runtime")), "crun\n");
    assert_eq!(read(&p("containers/web/labels")), "env=prod\ntier=front\n");
    // db never had a field set: it has no files (runtime unset, the default applies).
    assert_eq!(ls(&p("containers/db")), Vec::<String>::new());
    assert_eq!(errno_of(fs::read(p("containers/db/runtime"))), libc::ENOENT);
    assert_eq!(read_json(&p("containers/db/info.json"))["runtime"], "");
    assert_eq!(ls(&p("containers/cache")), ["labels"]);
    assert_eq!(read(&p("containers/cache/labels")), "ttl=60\n");
    assert_eq!(read_json(&p("containers/web/info.json"))["runtime"], "crun");
}

#[test]
fn remount_shows_the_identical_tree() {
    let mut fx = MountFixture::new();
    populate(&fx);
    assert_populated(&fx);
    let before = dump(&fx);
    fx.remount();
    assert_same_tree(&before, &dump(&fx));
    assert_populated(&fx);
}

#[test]
fn kill_9_right_after_acknowledged_writes_loses_nothing() {
    let mut fx = MountFixture::new();
    populate(&fx);
    // No reads in between: the kill lands right after the last acknowledged close.
    fx.kill9_and_remount();
    assert_populated(&fx);
}

#[test]
fn kill_9_keeps_times_and_inode_numbers() {
    let mut fx = MountFixture::new();
    populate(&fx);
    let before = dump(&fx);
    fx.kill9_and_remount();
    assert_same_tree(&before, &dump(&fx));
}

#[test]
fn a_remounted_store_keeps_working_and_allocates_fresh_inodes() {
    let mut fx = MountFixture::new();
    fs::create_dir(fx.path("containers/old")).unwrap();
    let old_ino = fs::metadata(fx.path("containers/old")).unwrap().ino();
    fs::remove_dir(fx.path("containers/old")).unwrap();
    fx.remount();
    // A number is never reused, even after a restart.
    fs::create_dir(fx.path("containers/new")).unwrap();
    fs::create_dir(fx.path("containers/old")).unwrap();
    assert_ne!(
        fs::metadata(fx.path("containers/new")).unwrap().ino(),
        old_ino
    );
    assert_ne!(
        fs::metadata(fx.path("containers/old")).unwrap().ino(),
        old_ino
    );
    append(&fx.path("containers/new/labels"), "a=1\n");
    assert_eq!(read(&fx.path("containers/new/labels")), "a=1\n");
}

/// A second daemon started by this test; killed by its PID and its mount detached if the
/// refusal does not happen.
struct SecondDaemon {
    child: Child,
    mnt: PathBuf,
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/web")).unwrap();
    put(&fx.path("containers/web/runtime"), "crun\n");
    let mnt2 = fx.root().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let log2 = fx.root().join("second.log");
    let mut second = SecondDaemon {
        child: Command::new(env!("CARGO_BIN_EXE_ctrfs"))
            .arg("mount")
            .arg(&mnt2)
            .arg("--root")
            .arg(fx.state())
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log2).unwrap())
            .spawn()
            .unwrap(),
        mnt: mnt2.clone(),
    };
    let mut status = None;
    wait_until(DAEMON_DEADLINE, "the second daemon to give up", || {
        status = second.child.try_wait().unwrap();
        status.is_some()
    });
    let log = fs::read_to_string(&log2).unwrap();
    assert!(
        !status.unwrap().success(),
        "the second daemon exited 0; its log:\n{log}"
    );
    // The message may name the directory between the words.
    assert!(
        log.lines()
            .any(|l| l.contains("state directory") && l.contains("is in use")),
        "second daemon's stderr:\n{log}"
    );
    assert!(!is_mounted(&mnt2));
    // The first daemon is unaffected.
    assert_eq!(read(&fx.path("containers/web/runtime")), "crun\n");
}
