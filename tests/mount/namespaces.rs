//! Namespaces: `ctrfs mount --namespace NAME` over one state directory, the same ids as
//! two objects, content shared by digest, and `ctrfs namespace ls|rm` (docs/interface.md,
//! "Namespaces").

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::*;
use crate::tasks::Tasks;

fn ctrfs_namespace(fx: &MountFixture, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("namespace")
        .args(args)
        .arg("--root")
        .arg(fx.state())
        .output()
        .expect("run ctrfs namespace");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The events a fresh reader of `fx`'s `events` gets before the end.
fn events(fx: &MountFixture) -> Vec<serde_json::Value> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(fx.path("events")).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn two_namespaces_hold_the_same_ids_as_two_objects_and_share_content_by_digest() {
    let a = Tasks::new();
    let b = Tasks::with(MountFixture::sharing_state_of(&a, &["--namespace", "build"]));

    // The same container id in each, with its own labels, spec and task, running at once.
    a.container("web", "echo from-default; sleep 0.5; exit 3");
    b.container("web", "echo from-build; sleep 0.5; exit 4");
    put(&a.path("containers/web/labels"), "team=a\n");
    put(&b.path("containers/web/labels"), "team=b\n");
    a.start("web");
    b.start("web");
    assert_eq!(a.wait("web"), "3\n");
    assert_eq!(b.wait("web"), "4\n");
    assert_eq!(read(&a.path("logs/web/stdout")), "from-default\n");
    assert_eq!(read(&b.path("logs/web/stdout")), "from-build\n");
    assert_eq!(read(&a.path("containers/web/labels")), "team=a\n");
    assert_eq!(read(&b.path("containers/web/labels")), "team=b\n");
    // Deleting one namespace's object leaves the other's.
    a.sh_ok("rm tasks/web && rm -r containers/web");
    assert!(b.path("containers/web").is_dir());
    assert_eq!(b.status("web")["exit_status"], 4);

    // The same blob written in both is stored once: one file, two names.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hex = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&bytes))
    };
    put(&a.path(&format!("content/sha256/{hex}")), &bytes);
    put(&b.path(&format!("content/sha256/{hex}")), &bytes);
    let in_default = fs::metadata(a.state().join(format!("content/blobs/sha256/{hex}"))).unwrap();
    let in_build = fs::metadata(a.state().join(format!("namespaces/build/content/blobs/sha256/{hex}"))).unwrap();
    assert_eq!((in_default.ino(), in_default.nlink()), (in_build.ino(), 2), "one file shared by digest");
    fs::remove_file(a.path(&format!("content/sha256/{hex}"))).unwrap();
    assert_eq!(fs::read(b.path(&format!("content/sha256/{hex}"))).unwrap(), bytes, "the other namespace keeps it");

    // Each stream names its namespace; each mount says which it shows.
    let b_events = events(&b);
    assert!(!b_events.is_empty());
    assert!(b_events.iter().all(|e| e["namespace"] == "build"), "{b_events:?}");
    assert!(events(&a).iter().all(|e| e["namespace"] == "default"));
    let status = Command::new(env!("CARGO_BIN_EXE_ctrfs")).arg("status").arg(b.mnt()).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("namespace   build\n"));

    let (ok, out, _) = ctrfs_namespace(&a, &["ls"]);
    assert!(ok);
    assert_eq!(out, "build\ndefault\n");
    // A mounted namespace is not removed, nor the default one.
    let (ok, _, err) = ctrfs_namespace(&a, &["rm", "build"]);
    assert!(!ok && err.contains("namespace build is mounted"), "{err}");
    let (ok, _, err) = ctrfs_namespace(&a, &["rm", "default"]);
    assert!(!ok && err.contains("cannot be removed"), "{err}");
    b.sh_ok("rm tasks/web");
}

#[test]
fn a_namespace_that_holds_objects_is_not_removed_and_an_empty_one_is() {
    let fx = MountFixture::new();
    let other = MountFixture::sharing_state_of(&fx, &["--namespace", "scratch"]);
    fs::create_dir(other.path("containers/keep")).unwrap();
    fs::create_dir_all(other.path("images/app")).unwrap();
    put(&other.path("images/app/target"), descriptor(1).to_string());
    drop(other);

    let (ok, _, err) = ctrfs_namespace(&fx, &["rm", "scratch"]);
    assert!(!ok, "removed a namespace holding objects");
    assert!(err.contains("namespace scratch still holds 1 image, 1 container"), "{err}");
    let home = fx.state().join("namespaces/scratch");
    assert!(home.join("db").is_dir(), "refused means unchanged");

    // Mounted again, it holds what it held.
    let other = MountFixture::sharing_state_of(&fx, &["--namespace", "scratch"]);
    assert!(other.path("containers/keep").is_dir());
    other.sh_ok("rmdir containers/keep && rm -r images/app");
    drop(other);
    let (ok, _, err) = ctrfs_namespace(&fx, &["rm", "scratch"]);
    assert!(ok, "{err}");
    assert!(!home.exists());
    assert_eq!(ctrfs_namespace(&fx, &["ls"]).1, "default\n");
    let (ok, _, err) = ctrfs_namespace(&fx, &["rm", "scratch"]);
    assert!(!ok && err.contains("no namespace scratch"), "{err}");
    // Names follow containerd's rule.
    let (ok, _, err) = ctrfs_namespace(&fx, &["rm", "../etc"]);
    assert!(!ok && err.contains("invalid identifier"), "{err}");
    let (code, _, err) = sh(fx.root(), &format!("{} mount --root {} --namespace ../x {}/mnt", env!("CARGO_BIN_EXE_ctrfs"), fx.state().display(), fx.root().display()));
    assert_ne!(code, 0);
    assert!(err.contains("invalid identifier"), "{err}");
}

#[test]
fn a_namespace_s_task_outlives_its_daemon_s_kill_9_and_is_found_again() {
    let a = Tasks::new();
    let mut b = Tasks::with(MountFixture::sharing_state_of(&a, &["--namespace", "build"]));
    b.container("web", "exec sleep 1000");
    b.start("web");
    b.wait_status("web", "running");
    let pid = b.status("web")["pid"].as_u64().unwrap();
    b.fixture().kill9_and_remount();
    assert_eq!(b.status("web")["status"], "running", "found again by its namespace's daemon");
    assert_eq!(b.status("web")["pid"].as_u64(), Some(pid));
    // The default namespace knows nothing of it.
    assert_eq!(errno_of(fs::metadata(a.path("tasks/web"))), libc::ENOENT);
    b.control("web", "KILL").unwrap();
    assert_eq!(b.wait("web"), "137\n");
}
