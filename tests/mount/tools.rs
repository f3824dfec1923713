//! The tools people already use, run for real against the mount: editors that write a
//! temporary file and rename it (sed -i, perl -pi, Python's mkstemp + os.replace, rsync,
//! vim), tools that remove and create again (install, mv, cp --remove-destination,
//! tar -x), copies into new directories (cp -a, cp -r), and backups restored with tar and
//! rsync into a fresh mount and compared file by file.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::common::*;
use crate::oci::{image_container, import_by_copying, snapshot_files};
use crate::oci_fixture::two_layer_layout;
use crate::tasks::Tasks;

/// Every file under `rel` of a mount, by path, with its bytes (what a backup holds).
fn tree(fx: &MountFixture, rel: &str) -> BTreeMap<String, Vec<u8>> {
    let root = fx.mnt();
    walk(&fx.path(rel))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.strip_prefix(&root).unwrap().display().to_string(), fs::read(&p).unwrap()))
        .collect()
}

fn host_file(fx: &MountFixture, name: &str, content: &str) -> std::path::PathBuf {
    let path = fx.root().join(name);
    fs::write(&path, content).unwrap();
    path
}

#[test]
fn editors_that_write_a_temporary_file_and_rename_it_replace_the_value() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/labels"), "a=1\nb=2\n");
    fx.sh_ok("sed -i 's/a=1/a=9/' containers/c/labels");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=9\nb=2\n");
    fx.sh_ok("perl -pi -e 's/b=2/b=8/' containers/c/labels");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=9\nb=8\n");
    let py = r#"
import os, sys, tempfile
fd, tmp = tempfile.mkstemp(dir="containers/c")
os.write(fd, b'{"ociVersion": "1.2.0", "process": {"args": ["true"]}}\n'); os.close(fd)
os.replace(tmp, "containers/c/spec")
fd, tmp = tempfile.mkstemp(dir="containers/c")
os.write(fd, b"not a label line\n"); os.close(fd)
try:
    os.replace(tmp, "containers/c/labels")
    sys.exit("a refused value was renamed in")
except OSError as e:
    print(e.errno)
# As rename(2) leaves its source: the tool removes it.
os.unlink(tmp)
"#;
    assert_eq!(fx.sh_ok(&format!("python3 -c '{}'", py.replace('\'', "'\\''"))).trim(), libc::EINVAL.to_string());
    assert_eq!(read(&fx.path("containers/c/labels")), "a=9\nb=8\n", "the refused rename left the value");
    assert_eq!(read(&fx.path("containers/c/spec")), "{\"ociVersion\": \"1.2.0\", \"process\": {\"args\": [\"true\"]}}\n");
    fx.sh_ok("vim.tiny -es -c '%s/a=9/a=7/' -c 'wq' containers/c/labels");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=7\nb=8\n");
    fx.sh_ok("printf 'c=3\\n' | sponge -a containers/c/labels");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=7\nb=8\nc=3\n");
    fx.sh_ok("printf '%s\\n' ',s/c=3/c=4/' w q | ed -s containers/c/labels");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=7\nb=8\nc=4\n");
    assert_eq!(ls(&fx.path("containers/c")), ["labels", "spec"], "no temporary file left");
}

#[test]
fn a_temporary_file_renamed_onto_a_blob_name_must_hash_to_it() {
    let fx = MountFixture::new();
    let py = r#"
import hashlib, os, sys, tempfile
data = b"layer bytes\n"
good = hashlib.sha256(data).hexdigest()
for name, want in (("0" * 64, 22), (good, 0)):
    fd, tmp = tempfile.mkstemp(dir="content/sha256", prefix=".")
    os.write(fd, data); os.close(fd)
    try:
        os.replace(tmp, "content/sha256/" + name)
        got = 0
    except OSError as e:
        got = e.errno
    if got != want:
        sys.exit(f"{name}: errno {got}, wanted {want}")
print(good)
"#;
    let good = fx.sh_ok(&format!("python3 -c '{}'", py.replace('\'', "'\\''")));
    assert_eq!(ls(&fx.path("content/sha256")), [good.trim()], "only the blob that hashed to its name");
    assert_eq!(read(&fx.path(&format!("content/sha256/{}", good.trim()))), "layer bytes\n");
}

#[test]
fn tools_that_remove_then_create_end_with_the_new_value() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/runtime"), "runc\n");
    let crun = host_file(&fx, "runtime", "crun\n");
    fx.sh_ok(&format!("install -m 644 {} containers/c/runtime", crun.display()));
    assert_eq!(read(&fx.path("containers/c/runtime")), "crun\n");
    fx.sh_ok(&format!("install -D -m 644 {} containers/new/runtime", crun.display()));
    assert_eq!(ls(&fx.path("containers/new")), ["runtime"], "install -D made the container");
    let youki = host_file(&fx, "runtime2", "youki\n");
    fx.sh_ok(&format!("cp --remove-destination {} containers/c/runtime", youki.display()));
    assert_eq!(read(&fx.path("containers/c/runtime")), "youki\n");
    let moved = host_file(&fx, "moved", "k=v\n");
    fx.sh_ok(&format!("mv {} containers/c/labels", moved.display()));
    assert_eq!(read(&fx.path("containers/c/labels")), "k=v\n");
    // Moving a field out of the mount takes it away, as mv does.
    fx.sh_ok(&format!("mv containers/c/labels {}", fx.root().join("out").display()));
    assert_eq!(fs::read_to_string(fx.root().join("out")).unwrap(), "k=v\n");
    assert!(!fx.path("containers/c/labels").exists());
}

#[test]
fn cp_a_and_cp_r_copy_containers_and_images_into_new_directories() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/a")).unwrap();
    put(&fx.path("containers/a/spec"), "{\"process\": {\"args\": [\"sh\"]}}\n");
    put(&fx.path("containers/a/labels"), "env=prod\n");
    put(&fx.path("containers/a/runtime"), "crun\n");
    fx.sh_ok("cp -a containers/a containers/b");
    for file in ["spec", "labels", "runtime"] {
        assert_eq!(read(&fx.path(&format!("containers/b/{file}"))), read(&fx.path(&format!("containers/a/{file}"))), "{file}");
    }
    fs::create_dir_all(fx.path("images/app/v1")).unwrap();
    put(&fx.path("images/app/v1/target"), descriptor(1).to_string());
    put(&fx.path("images/app/v1/labels"), "tier=web\n");
    fx.sh_ok("cp -r images/app images/copy");
    assert_eq!(read_json(&fx.path("images/copy/v1/target")), descriptor(1));
    assert_eq!(read(&fx.path("images/copy/v1/labels")), "tier=web\n");
}

/// A source mount with content, a nested image, containers (one with a prepared
/// snapshot), labels everywhere.
fn populated() -> Tasks {
    let t = Tasks::new();
    import_by_copying(&t, two_layer_layout(), "latest", "backup/busybox");
    put(&t.path("images/backup/busybox/labels"), "origin=test\n");
    image_container(&t, "web", "backup/busybox", "true");
    put(&t.path("containers/web/labels"), "env=prod\n");
    fs::create_dir(t.path("containers/bare")).unwrap();
    put(&t.path("containers/bare/runtime"), "crun\n");
    t
}

fn assert_same_tree(from: &MountFixture, to: &MountFixture) {
    for rel in ["content", "images", "containers"] {
        let (a, b) = (tree(from, rel), tree(to, rel));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{rel}: the same files");
        for (path, bytes) in &a {
            assert_eq!(Some(bytes), b.get(path), "{path}");
        }
    }
}

#[test]
fn busybox_tar_and_cp_p_restore_fields_and_a_lengthening_truncate_is_refused() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/a")).unwrap();
    put(&fx.path("containers/a/labels"), "k=v\n");
    put(&fx.path("containers/a/runtime"), "crun\n");
    let archive = fx.root().join("a.tar");
    fx.sh_ok(&format!("busybox tar -cf {} containers/a", archive.display()));
    fx.sh_ok("rm -r containers/a");
    fx.sh_ok(&format!("busybox tar -xf {}", archive.display()));
    assert_eq!(read(&fx.path("containers/a/labels")), "k=v\n");
    assert_eq!(read(&fx.path("containers/a/runtime")), "crun\n");
    // cp -p keeps the source's mode (a field's is fixed: accepted as it is) and times.
    let host = host_file(&fx, "labels", "p=1\n");
    fx.sh_ok(&format!("touch -d '2020-01-02 03:04:05' {0} && cp -p {0} containers/a/labels", host.display()));
    assert_eq!(read(&fx.path("containers/a/labels")), "p=1\n");
    assert_eq!(fs::metadata(fx.path("containers/a/labels")).unwrap().modified().unwrap(), fs::metadata(&host).unwrap().modified().unwrap());
    // `truncate -s 10` of a shorter field would add zeros no value holds.
    let (code, _, err) = fx.sh("truncate -s 10 containers/a/labels");
    assert!(code != 0 && err.contains("Invalid argument"), "{err}");
    assert_eq!(read(&fx.path("containers/a/labels")), "p=1\n");
}

#[test]
fn a_tar_backup_restores_into_a_fresh_mount_as_an_equal_tree() {
    let source = populated();
    let archive = source.root().join("backup.tar");
    source.sh_ok(&format!("tar -cf {} content images containers", archive.display()));
    let target = Tasks::new();
    let (code, _, err) = sh(&target.mnt(), &format!("timeout 60 tar -xf {}", archive.display()));
    assert_eq!(code, 0, "tar -x: {err}\n{}", target.log());
    assert_same_tree(&source, &target);
    assert_eq!(read(&target.path("snapshots/web-root/kind")), "active\n", "the restored key was prepared");
    // Extracting again over the same tree changes nothing. (`--overwrite`: without it tar
    // removes each file first, and a blob the images reference cannot be removed.)
    let (code, _, err) = sh(&target.mnt(), &format!("timeout 60 tar --overwrite -xf {}", archive.display()));
    assert_eq!(code, 0, "tar -x again: {err}\n{}", target.log());
    assert_same_tree(&source, &target);
}

#[test]
fn rsync_copies_a_mount_into_a_fresh_one_as_an_equal_tree() {
    let source = populated();
    let target = Tasks::new();
    // rsync orders names (containers before content and images): keys and targets arrive
    // before what they name, and are kept until it does.
    let (from, to) = (source.mnt(), target.mnt());
    let (code, _, err) = sh(
        Path::new("/"),
        &format!("timeout 60 rsync -r {0}/containers {0}/content {0}/images {1}/", from.display(), to.display()),
    );
    assert_eq!(code, 0, "rsync: {err}\n{}", target.log());
    assert_same_tree(&source, &target);
    target.start("web");
    assert_eq!(target.wait("web"), "0\n", "the key copied before its image is prepared at start");
    target.sh_ok("rm tasks/web");
}

#[test]
fn inotifywait_sees_changes_made_through_the_mount_and_views_removed_with_their_task() {
    let t = Tasks::new();
    t.container("w", "exit 0");
    t.start("w");
    assert_eq!(t.wait("w"), "0\n");
    put(&t.path("containers/w/labels"), "a=1\n");
    let watch = |args: &str| {
        std::process::Command::new("inotifywait")
            .args(args.split(' '))
            .current_dir(t.mnt())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("inotifywait")
    };
    let modified = watch("-q -t 20 -e modify containers/w/labels");
    let deleted = watch("-q -t 20 -e delete_self wait/w");
    // Wait until both watches are set up: inotifywait says so on stderr without -q; with
    // -q it prints nothing, so poll the kernel's view of its watches instead.
    for child in [&modified, &deleted] {
        let pid = child.id();
        wait_until(DAEMON_DEADLINE, "the watch to be set", || {
            fs::read_dir(format!("/proc/{pid}/fdinfo")).is_ok_and(|fds| {
                fds.flatten().any(|fd| fs::read_to_string(fd.path()).is_ok_and(|i| i.contains("inotify wd:")))
            })
        });
    }
    append(&t.path("containers/w/labels"), "b=2\n");
    t.sh_ok("rm tasks/w");
    let out = |child: std::process::Child| String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    assert!(out(modified).contains("MODIFY"), "a write through the mount is a modify");
    assert!(out(deleted).contains("DELETE_SELF"), "the removed task's wait file");
}

#[test]
fn polling_sees_what_the_daemon_changes_on_its_own() {
    // What raises no inotify event (a log growing, a task exiting) a poller sees at once:
    // sizes and statuses are never cached.
    let t = Tasks::new();
    t.container("p", "echo one; read -t 5 x < /dev/null; sleep 0.3; echo two; sleep 0.3; echo three");
    t.start("p");
    let log = t.path("logs/p/stdout");
    wait_until(DAEMON_DEADLINE, "the log to grow to three lines", || fs::metadata(&log).is_ok_and(|m| m.len() == 14));
    assert_eq!(t.wait("p"), "0\n");
    assert_eq!(t.status("p")["status"], "stopped", "stat and read of tasks/p see the exit");
    assert_eq!(fs::metadata(t.path("wait/p")).unwrap().len(), 2, "wait/p's size is its exit status's");
    t.sh_ok("rm tasks/p");
}

#[test]
fn removing_a_key_and_writing_it_again_keeps_the_root_filesystem_and_a_busy_container_keeps_its_fields() {
    let t = Tasks::new();
    import_by_copying(&t, two_layer_layout(), "latest", "keep/busybox");
    image_container(&t, "x", "keep/busybox", "true");
    let kept = snapshot_files(&t, "x-root").join("kept.txt");
    fs::write(&kept, "x's data\n").unwrap();
    // install, mv and tar -x remove the file, then create it again with the same key.
    let key = host_file(&t, "key", "x-root\n");
    t.sh_ok(&format!("install -m 644 {} containers/x/snapshot", key.display()));
    assert_eq!(read(&t.path("containers/x/snapshot")), "x-root\n");
    assert_eq!(fs::read_to_string(&kept).unwrap(), "x's data\n", "the snapshot survived the remove and create");
    // A container whose task exists keeps its fields: a refused rm -r changes nothing.
    t.container("busy", "sleep 30");
    put(&t.path("containers/busy/labels"), "k=v\n");
    t.start("busy");
    let (code, _, err) = t.sh("rm -r containers/busy");
    assert_ne!(code, 0);
    assert!(err.contains("Device or resource busy"), "{err}");
    assert_eq!(read(&t.path("containers/busy/labels")), "k=v\n");
    assert!(t.path("containers/busy/spec").exists());
    t.sh_ok("rm tasks/busy && rm -r containers/busy");
}
