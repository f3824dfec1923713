//! The state directory is private (issue 8, item 6): 0700 itself, nothing the daemon
//! writes in it readable by others, and a user other than root can neither list it, read
//! a blob, nor run an unpacked layer's binaries. An existing state directory open to
//! others is tightened at start, with a log line.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::*;
use crate::oci_fixture::{layout_manifest_descriptor, two_layer_layout};
use crate::tasks::{runc_spec, Tasks};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Everything under `state` the daemon made itself: not the container's files (inside
/// `snapshots/<id>/fs`, and mounted at `rootfs/<id>`) nor runc's own state (`runc/`).
fn daemon_made(state: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![state.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(state).unwrap();
            let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let containers = matches!(parts.as_slice(), [s, _, f, ..] if s == "snapshots" && f == "fs")
                || matches!(parts.as_slice(), [r, _, ..] if r == "rootfs")
                || parts[0] == "runc";
            if containers {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn the_state_directory_and_what_the_daemon_writes_in_it_are_private() {
    let layout = two_layer_layout();
    let t = Tasks::new();
    t.sh_ok(&format!("cp {}/blobs/sha256/* content/sha256/", layout.display()));
    fs::create_dir_all(t.path("images/local/priv")).unwrap();
    put(&t.path("images/local/priv/target"), layout_manifest_descriptor(layout, "latest"));
    fs::create_dir(t.path("containers/p")).unwrap();
    // A task as a non-root user inside: it does not need to traverse the private state
    // directory, and it keeps runc's umask, not the daemon's.
    let mut spec = runc_spec(&["/bin/sh", "-c", "id -u; umask; echo hi > /tmp/mine; stat -c %a /tmp/mine"]);
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    spec["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    t.set_spec("p", &spec);
    put(&t.path("containers/p/image"), "local/priv\n");
    put(&t.path("containers/p/snapshot"), "p-root\n");
    t.start("p");
    assert_eq!(t.wait("p"), "0\n", "{}", read(&t.path("logs/p/stderr")));
    assert_eq!(read(&t.path("logs/p/stdout")), "65534\n0022\n644\n");

    let state = t.state();
    assert_eq!(mode(&state), 0o700, "the state directory");
    let made = daemon_made(&state);
    for part in ["db/data.mdb", "lock", "content/blobs/sha256", "snapshots/driver", "tasks/p/stdout", "tasks/p/bundle/config.json", "tasks/p/exit"] {
        assert!(made.contains(&state.join(part)), "{part} is among {made:?}");
    }
    let open: Vec<String> =
        made.iter().filter(|p| mode(p) & 0o077 != 0).map(|p| format!("{} {:o}", p.display(), mode(p))).collect();
    assert!(open.is_empty(), "open to others: {open:#?}");

    // The layer's own files keep their modes: privacy comes from the directories above.
    let layer = fs::read_dir(state.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs"))
        .find(|fs| fs.join("bin/busybox").exists())
        .expect("the unpacked busybox layer");
    assert_eq!(mode(&layer.join("bin/busybox")), 0o755);
    assert_eq!(mode(&layer.join("data/suid")), 0o4755);
    assert_eq!(mode(&layer), 0o755, "a layer's root directory");

    let blob = fs::read_dir(state.join("content/blobs/sha256")).unwrap().flatten().next().unwrap().path();
    let (s, b, l) = (state.display(), blob.display(), layer.display());
    // The control: uid 65534 can do all of this where nothing is private.
    let (code, _, err) = sh_as_nobody(t.root(), &format!("ls {} && cat /bin/sh > /dev/null && /bin/true", t.root().display()));
    assert_eq!(code, 0, "uid 65534 works at all: {err}");
    for script in [
        format!("ls {s}"),
        format!("cat {b}"),
        format!("{l}/bin/busybox true"),
        format!("{l}/data/suid"),
        format!("stat {l}/data/null"),
        format!("cat {s}/tasks/p/bundle/config.json"),
        format!("cat {s}/tasks/p/stdout"),
        format!("ls {s}/db"),
    ] {
        let (code, out, err) = sh_as_nobody(t.root(), &script);
        assert_ne!(code, 0, "uid 65534 ran `{script}`: {out}");
        assert!(err.contains("Permission denied"), "`{script}`: {err}");
    }
    t.sh_ok("rm tasks/p && rm -r containers/p && rmdir images/local/priv");
}

#[test]
fn an_open_state_directory_is_tightened_at_start_with_a_log_line() {
    // The fixture makes the state directory with the default 0755 before the daemon starts.
    let mut fx = MountFixture::new();
    let state = fx.state();
    assert_eq!(mode(&state), 0o700);
    let line = |l: &str| l.contains("WARN") && l.contains(&state.display().to_string()) && l.contains("0755") && l.contains("0700");
    fx.wait_for_log_line("saying the state directory was tightened", line);
    assert_eq!(fx.log().lines().filter(|l| line(l)).count(), 1);
    // A restart on a private directory changes nothing and says nothing.
    fx.remount();
    assert_eq!(fx.log().lines().filter(|l| line(l)).count(), 1, "{}", fx.log());
    // Loosened again while down: tightened again.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    fx.remount();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(fx.log().lines().filter(|l| line(l)).count(), 2, "{}", fx.log());
}
