//! Security (issue 10): what a user other than root can do through a mount made with
//! `--allow-other` (read what the modes allow; change, start, signal or import nothing;
//! reach nothing of the state directory), that no name in the mount is a link out of it,
//! and that no value written into the tree (ids, keys, digests, runtime names, labels,
//! `root.path`), nor a name found in the state directory, becomes an option to the
//! runtime or a path outside the state directory.
//!
//! The kernel enforces the modes (`default_permissions`), so uid 65534 is refused before
//! the daemon sees the request: `EACCES` where write permission is missing, `EPERM` where
//! only the owner may act (chmod, chown, explicit times, a hard link to a file one does
//! not own under `fs.protected_hardlinks`). The tests assert those verdicts, that the tree
//! and the state directory are as they were, and that a running task was not touched.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::common::*;
use crate::oci_fixture::{layout_blobs, layout_manifest_descriptor, two_layer_layout};
use crate::tasks::{runc_spec, spec, Tasks};

/// EACCES as the tools print it.
const DENIED: &str = "Permission denied";
/// EPERM as the tools print it.
const NOT_PERMITTED: &str = "Operation not permitted";
/// A task that says it started and runs until killed; a TERM would show in its stdout.
const LOOP: &str = "trap 'echo got-term; exit 143' TERM; echo started; while true; do sleep 0.05; done";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The errno of a call, 0 when it succeeded.
fn errno<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("error without an OS code: {e}")),
    }
}

/// `open(O_WRONLY | O_CREAT)` as `touch` does: creating `tasks/<id>` starts the task.
fn create(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new().write(true).create(true).truncate(false).open(path)
}

/// The busybox image `local/sec`: the layout's blobs copied into `content/`, then its target.
fn image(t: &Tasks) {
    let layout = two_layer_layout();
    t.sh_ok(&format!("cp {}/blobs/sha256/* content/sha256/", layout.display()));
    fs::create_dir_all(t.path("images/local/sec")).unwrap();
    put(&t.path("images/local/sec/target"), layout_manifest_descriptor(layout, "latest"));
}

/// Container `id` of image `local/sec` whose task runs `script` on the snapshot `key`
/// (prepared by the write of the key), the spec's `root` being `root`.
fn image_container(t: &Tasks, id: &str, key: &str, script: &str, root: Value) {
    fs::create_dir(t.path(&format!("containers/{id}"))).unwrap();
    let mut spec = runc_spec(&["/bin/sh", "-c", script]);
    spec["root"] = root;
    t.set_spec(id, &spec);
    put(&t.path(&format!("containers/{id}/image")), "local/sec\n");
    put(&t.path(&format!("containers/{id}/snapshot")), format!("{key}\n"));
}

/// What anyone can see of the tree: every listed path with its type, mode, owner and the
/// sha256 of a file's bytes, each directory's `user.*` attributes, and the files reachable
/// by name only (`info.json`, `wait/<id>`'s size). Mtimes too, outside `snapshots/`
/// (reading an active snapshot's `usage` measures it again).
fn picture(t: &Tasks) -> BTreeMap<String, String> {
    let mnt = t.mnt();
    let mut out = BTreeMap::new();
    let mut paths = walk(&mnt);
    for task in ls(&t.path("tasks")) {
        paths.push(PathBuf::from(format!("wait/{task}")));
    }
    for path in paths {
        let rel = path.to_string_lossy().into_owned();
        let full = mnt.join(&path);
        let md = fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("stat {rel}: {e}"));
        let mtime = if rel.starts_with("snapshots") { String::new() } else { format!("{}.{}", md.mtime(), md.mtime_nsec()) };
        let head = format!("{:o} {}:{} {mtime}", md.mode(), md.uid(), md.gid());
        if md.is_dir() {
            let mut attrs = Vec::new();
            for name in list_xattr(&full).unwrap_or_default() {
                attrs.push(format!("{name}={}", String::from_utf8_lossy(&get_xattr(&full, &name).unwrap_or_default())));
            }
            out.insert(rel.clone(), format!("dir {head} [{}]", attrs.join(",")));
            if let Ok(info) = fs::read(full.join("info.json")) {
                out.insert(format!("{rel}/info.json"), sha256_hex(&info));
            }
        } else if rel.starts_with("wait/") {
            out.insert(rel, format!("wait {head} size {}", md.len()));
        } else {
            let bytes = fs::read(&full).unwrap_or_else(|e| panic!("read {rel}: {e}"));
            out.insert(rel, format!("file {head} {}", sha256_hex(&bytes)));
        }
    }
    out
}

/// Every path under the state directory, but not the containers' own files
/// (`snapshots/<n>/fs` and `work`, `rootfs/`) nor runc's state.
fn state_names(state: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![state.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(state).unwrap().to_string_lossy().into_owned();
            let parts: Vec<&str> = rel.split('/').collect();
            let theirs = matches!(parts.as_slice(), ["snapshots", _, "fs" | "work", ..]) || parts[0] == "rootfs" || parts[0] == "runc";
            if theirs {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path);
            }
            found.push(rel);
        }
    }
    found.sort();
    found
}

/// Changes uid 65534 must not make: (script run in the mount, what the tool must print).
fn denied_changes(t: &Tasks, blob_hex: &str, new_blob: &Path, layout: &Path) -> Vec<(String, &'static str)> {
    let new_hex = sha256_hex(&fs::read(new_blob).unwrap());
    let existing = layout_blobs(layout).into_iter().find(|(hex, _)| hex == blob_hex).unwrap().1;
    let desc = descriptor(3).to_string();
    let exe = env!("CARGO_BIN_EXE_ctrfs");
    let mnt = t.mnt();
    // Where the kernel protects hard links, linking a file one does not own is EPERM;
    // without that, the directory's write permission is missing: EACCES.
    let protected = fs::read_to_string("/proc/sys/fs/protected_hardlinks").is_ok_and(|s| s.trim() == "1");
    let link_refusal = if protected { NOT_PERMITTED } else { DENIED };
    let mut rows: Vec<(String, &'static str)> = Vec::new();
    let mut add = |script: String, want: &'static str| rows.push((script, want));
    // Objects.
    add("mkdir containers/new".into(), DENIED);
    add("mkdir images/new".into(), DENIED);
    add("mkdir images/local/sec/v2".into(), DENIED);
    add("rmdir containers/web".into(), DENIED);
    add("rm -r containers/web".into(), DENIED);
    add("rmdir images/local/sec".into(), DENIED);
    add("rm -r images/local".into(), DENIED);
    add("rmdir snapshots/run-root".into(), DENIED);
    // Every field: written, appended to, truncated, removed.
    for field in CONTAINER_FIELD_FILES {
        add(format!("echo x > containers/web/{field}"), DENIED);
        add(format!("truncate -s 0 containers/web/{field}"), DENIED);
        add(format!("rm containers/web/{field}"), DENIED);
    }
    add("echo a=b >> containers/web/labels".into(), DENIED);
    add(": > containers/web/labels".into(), DENIED);
    add("echo crun > containers/run/runtime".into(), DENIED);
    add(format!("echo '{desc}' > images/local/sec/target"), DENIED);
    add("truncate -s 0 images/local/sec/target".into(), DENIED);
    add("rm images/local/sec/target".into(), DENIED);
    add("echo a=b >> images/local/sec/labels".into(), DENIED);
    add("echo a=b > snapshots/run-root/labels".into(), DENIED);
    add("echo '{}' > containers/web/info.json".into(), DENIED);
    // Labels as extended attributes.
    add("setfattr -n user.a -v b containers/web".into(), DENIED);
    add("setfattr -x user.env containers/web".into(), DENIED);
    add("setfattr -n user.a -v b images/local/sec".into(), DENIED);
    add("setfattr -x user.team images/local/sec".into(), DENIED);
    add(format!("setfattr -n user.a -v b content/sha256/{blob_hex}"), DENIED);
    add("setfattr -n user.a -v b snapshots/run-root".into(), DENIED);
    // Tasks: created (started), controlled, removed.
    add("touch tasks/web".into(), DENIED);
    add("echo start > tasks/web".into(), DENIED);
    add(": > tasks/web".into(), DENIED);
    for word in ["KILL", "TERM", "9", "pause", "resume", "start"] {
        add(format!("echo {word} > tasks/run"), DENIED);
        add(format!("echo {word} >> tasks/run"), DENIED);
    }
    add("rm tasks/run".into(), DENIED);
    add("rm -f tasks/run".into(), DENIED);
    add("echo x > logs/run/stdout".into(), DENIED);
    // Content: a new blob, the same bytes over a stored one, a removal.
    add(format!("cp {} content/sha256/{new_hex}", new_blob.display()), DENIED);
    add(format!("cp {} content/sha256/{blob_hex}", existing.display()), DENIED);
    add(format!("rm content/sha256/{blob_hex}"), DENIED);
    add("echo x > content/sha256/tmp.upload".into(), DENIED);
    // Temporary file and rename, as sed -i and rsync do; rename of a field.
    add("echo a=1 > containers/web/.labels.tmp && mv containers/web/.labels.tmp containers/web/labels".into(), DENIED);
    add("mktemp -p containers/web".into(), DENIED);
    add("sed -i s/test/prod/ containers/web/labels".into(), DENIED);
    add("mv containers/web/labels containers/web/labels.old".into(), DENIED);
    // Import through the mount's files.
    add(format!("{exe} import {} {} --name local/nobody", mnt.display(), layout.display()), DENIED);
    // Modes, owners and times: only the owner may, or (times set to now) a writer.
    add("chmod 600 containers/web/labels".into(), NOT_PERMITTED);
    add("chmod 777 containers/web".into(), NOT_PERMITTED);
    add(format!("chmod 644 content/sha256/{blob_hex}"), NOT_PERMITTED);
    add("chown 65534 containers/web/labels".into(), NOT_PERMITTED);
    add("chgrp 65534 containers/web".into(), NOT_PERMITTED);
    add("touch -c -d 2020-01-02 containers/web/labels".into(), NOT_PERMITTED);
    add("touch -c -d 2020-01-02 containers/web".into(), NOT_PERMITTED);
    add("touch -c containers/web/labels".into(), DENIED);
    add("touch -c tasks/run".into(), DENIED);
    // Links and special files.
    add("ln -s /etc/passwd containers/web/passwd".into(), DENIED);
    add("ln -s /etc containers/etc".into(), DENIED);
    add("ln containers/web/labels containers/web/labels2".into(), link_refusal);
    add("mknod containers/web/fifo p".into(), DENIED);
    rows
}

#[test]
fn a_non_root_user_reads_what_the_modes_allow_and_changes_nothing() {
    let t = Tasks::with(MountFixture::with_args(&["--allow-other"]));
    image(&t);
    // A layout uid 65534 may read (umoci keeps its files private), for its import.
    let layout = &t.root().join("layout");
    t.sh_ok(&format!("cp -r {} {} && chmod -R a+rX {}", two_layer_layout().display(), layout.display(), layout.display()));
    put(&t.path("images/local/sec/labels"), "team=a\n");
    fs::create_dir(t.path("containers/web")).unwrap();
    set_container_fields(&t, "web");
    image_container(&t, "run", "run-root", LOOP, json!({"path": "rootfs", "readonly": true}));
    t.start("run");
    wait_until(Duration::from_secs(20), "the task to say it started", || read(&t.path("logs/run/stdout")) == "started\n");
    let status = t.status("run");
    assert_eq!(status["status"], "running");
    let blob_hex = layout_blobs(layout)[0].0.clone();
    let new_blob = t.root().join("new-blob");
    fs::write(&new_blob, b"a blob uid 65534 would add\n").unwrap();
    let mnt = t.mnt();

    // Controls: uid 65534 can run the tools, read the layout it would import, and read
    // the blob it would copy; so every refusal below is the mount's.
    let (code, _, err) = sh_as_nobody(t.root(), &format!("cat {}/index.json {} >/dev/null", layout.display(), new_blob.display()));
    assert_eq!(code, 0, "uid 65534 reads the layout and the new blob: {err}");

    // Reads the modes allow: every file is readable by others (0644, 0444), and uid
    // 65534 reads the bytes root reads; listings and labels too.
    let snapshot_files: Vec<String> = ls(&t.path("snapshots/run-root")).into_iter().map(|f| format!("snapshots/run-root/{f}")).collect();
    assert!(snapshot_files.iter().any(|f| f.ends_with("/kind")), "{snapshot_files:?}");
    let mut readable: Vec<String> = CONTAINER_FIELD_FILES.iter().map(|f| format!("containers/web/{f}")).collect();
    readable.extend(
        ["containers/web/info.json", "containers/run/info.json", "images/local/sec/target", "images/local/sec/labels", "images/local/sec/info.json", "tasks/run", "logs/run/stdout", "logs/run/stderr"]
            .map(String::from),
    );
    readable.push(format!("content/sha256/{blob_hex}"));
    readable.extend(snapshot_files.into_iter().filter(|f| !f.ends_with("/usage")));
    for rel in &readable {
        let md = fs::metadata(t.path(rel)).unwrap();
        assert_eq!(md.mode() & 0o006, 0o004, "{rel}: readable, not writable, by others (mode {:o})", md.mode());
        let want = sha256_hex(&fs::read(t.path(rel)).unwrap());
        let (code, out, err) = sh_as_nobody(&mnt, &format!("sha256sum < '{rel}'"));
        assert_eq!((code, out.get(..64)), (0, Some(want.as_str())), "uid 65534 reads {rel}: {err}");
    }
    let status_as_nobody: Value = serde_json::from_str(&sh_as_nobody(&mnt, "cat tasks/run").1).unwrap();
    assert_eq!((status_as_nobody["status"].as_str(), status_as_nobody["pid"].as_u64()), (Some("running"), status["pid"].as_u64()));
    for dir in [".", "containers", "containers/web", "images", "images/local", "images/local/sec", "tasks", "logs", "logs/run", "content/sha256", "snapshots", "snapshots/run-root"] {
        let want: String = ls(&t.path(dir)).iter().map(|n| format!("{n}\n")).collect();
        let (code, out, err) = sh_as_nobody(&mnt, &format!("ls -A {dir}"));
        assert_eq!((code, out), (0, want), "uid 65534 lists {dir}: {err}");
    }
    let (code, out, err) = sh_as_nobody(&mnt, "getfattr -n user.env --only-values containers/web && echo && stat -c %s wait/run");
    assert_eq!((code, out.as_str()), (0, "test\n0\n"), "uid 65534 reads a label and wait/run's size: {err}");

    // Every kind of change, refused with the kernel's errno, one row at a time.
    let before = picture(&t);
    let state_before = state_names(&t.state());
    let rows = denied_changes(&t, &blob_hex, &new_blob, layout);
    let mut failures = Vec::new();
    for (script, want) in &rows {
        let (code, out, err) = sh_as_nobody(&mnt, script);
        if code == 0 || !err.contains(want) {
            failures.push(format!("{script:?}: exit {code}, want {want:?}; stdout {out:?}, stderr {err:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} changes were not refused as expected:\n{}", failures.len(), rows.len(), failures.join("\n"));

    // Nothing changed: not the tree, not the state directory, not the task.
    let after = picture(&t);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect();
    assert!(changed.is_empty(), "uid 65534 changed the tree:\n{}", changed.join("\n"));
    assert_eq!(state_names(&t.state()), state_before, "the state directory");
    assert!(!mnt.join("images/local/nobody").exists(), "the import as uid 65534 made an image");
    let now = t.status("run");
    assert_eq!((now["status"].as_str(), now["pid"].as_u64()), (Some("running"), status["pid"].as_u64()), "{now}");
    assert_eq!(read(&t.path("logs/run/stdout")), "started\n", "the task got no signal");
    assert_eq!(read(&t.path("containers/web/labels")), "env=test\n");
    // The refusals were the kernel's: the daemon logged none of them.
    assert!(!t.log().contains("EACCES"), "the daemon saw a refused change:\n{}", t.log());
    eprintln!("{} reads and {} refused changes as uid 65534", readable.len(), rows.len());
}

#[test]
fn a_non_root_user_cannot_reach_the_state_directory() {
    let t = Tasks::with(MountFixture::with_args(&["--allow-other"]));
    t.container("st", "echo secret; echo oops >&2");
    t.start("st");
    assert_eq!(t.wait("st"), "0\n");
    let state = t.state();
    let md = fs::metadata(&state).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o700, 0), "the state directory is root's, 0700");
    // The status names the host file behind logs/st/stdout; the path is no way in.
    let stdout = t.status("st")["stdout"].as_str().unwrap().to_owned();
    assert!(Path::new(&stdout).starts_with(&state), "{stdout}");
    // Controls: through the mount uid 65534 reads the log; root reads every path below.
    let (code, out, err) = sh_as_nobody(&t.mnt(), "cat logs/st/stdout");
    assert_eq!((code, out.as_str()), (0, "secret\n"), "{err}");
    let s = state.display();
    let scripts = [
        format!("ls {s}"),
        format!("find {s}"),
        format!("stat {s}/db"),
        format!("cat {s}/db/data.mdb"),
        format!("cat {s}/lock"),
        format!("cat {stdout}"),
        format!("cat {s}/tasks/st/stderr"),
        format!("cat {s}/tasks/st/bundle/config.json"),
        format!("ls {s}/tasks"),
        format!("ls {s}/content/blobs/sha256"),
        format!("ls {s}/snapshots"),
        format!("ls {s}/runc"),
        format!("touch {s}/planted"),
        format!("mkdir {s}/tasks/planted"),
    ];
    for script in &scripts {
        let (code, out, err) = sh_as_nobody(t.root(), script);
        assert!(code != 0 && err.contains(DENIED), "uid 65534 ran `{script}`: exit {code}, {out:?} {err:?}");
    }
    for rel in ["db/data.mdb", "lock", "tasks/st/stderr", "tasks/st/bundle/config.json"] {
        assert!(state.join(rel).is_file(), "{rel} exists, so its refusal above was a refusal");
    }
    assert!(!state.join("planted").exists() && !state.join("tasks/planted").exists());
}

#[test]
fn no_name_in_the_mount_is_a_link_and_no_value_names_a_host_path() {
    let t = Tasks::new();
    let outside = t.root().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "victim\n").unwrap();
    let outside_list = || ls(&outside);
    image(&t);

    // root.path naming a host directory: the container's snapshot replaces it, so the
    // task writes into its own root filesystem, not there.
    image_container(&t, "abs", "abs-root", "cat /data/keep.txt; echo x > /marker", json!({"path": outside, "readonly": false}));
    t.start("abs");
    assert_eq!(t.wait("abs"), "0\n", "{}", read(&t.path("logs/abs/stderr")));
    assert_eq!(read(&t.path("logs/abs/stdout")), "kept\n", "the task ran on the image's snapshot");
    assert_eq!(outside_list(), ["victim"], "the task wrote into the root.path it named");
    // A relative root.path without a snapshot is refused at the start.
    fs::create_dir(t.path("containers/rel")).unwrap();
    let mut rel_spec = spec(&["/bin/sh", "-c", "echo x > /marker"]);
    rel_spec["root"] = json!({"path": "../../outside", "readonly": false});
    t.set_spec("rel", &rel_spec);
    assert_eq!(errno(create(&t.path("tasks/rel"))), libc::EINVAL);
    assert_eq!(errno(fs::symlink_metadata(t.path("tasks/rel"))), libc::ENOENT);
    assert_eq!(outside_list(), ["victim"]);

    // No symlink or hard link can be made anywhere, to a host file or within the mount;
    // a host file cannot be linked in (another filesystem).
    let dirs = [
        ".", "containers", "containers/abs", "images", "images/local", "images/local/sec", "tasks", "logs", "logs/abs", "wait",
        "snapshots", "snapshots/abs-root", "content", "content/sha256",
    ];
    let mut refused = 0;
    for dir in dirs {
        for target in [Path::new("/etc/passwd"), outside.as_path(), Path::new("../..")] {
            let link = t.path(dir).join("evil");
            assert_eq!(errno_name(errno(symlink(target, &link))), "EPERM", "symlink {dir}/evil -> {}", target.display());
            refused += 1;
        }
    }
    for file in ["containers/abs/spec", "images/local/sec/target", "tasks/abs", "logs/abs/stdout"] {
        let twin = format!("{file}.twin");
        assert_eq!(errno_name(errno(fs::hard_link(t.path(file), t.path(&twin)))), "EPERM", "link {file} {twin}");
        assert_eq!(errno(fs::hard_link("/etc/passwd", t.path(&twin))), libc::EXDEV, "link /etc/passwd {twin}");
        refused += 2;
    }
    // Nothing in the tree is a link, so nothing leads out: every listed name and every
    // name reachable by name only is a directory or a regular file, and readlink fails.
    let mut names = walk(&t.mnt());
    names.extend(["containers/abs/info.json", "images/local/sec/info.json", "wait/abs"].map(PathBuf::from));
    for name in &names {
        let full = t.mnt().join(name);
        let kind = fs::symlink_metadata(&full).unwrap().file_type();
        assert!(kind.is_dir() || kind.is_file(), "{} is neither a directory nor a file: {kind:?}", name.display());
        assert_eq!(errno(fs::read_link(&full)), libc::EINVAL, "readlink {}", name.display());
    }
    // `..` inside the mount stays inside it: the kernel resolves it to the mount's own
    // directories, and a write through it lands where the tree refuses files.
    let ino = |rel: &str| fs::metadata(t.path(rel)).unwrap().ino();
    assert_eq!(ino("containers/abs/../.."), ino("."));
    assert_eq!(ino("content/sha256/../.."), ino("."));
    assert_eq!(ino("logs/abs/../../tasks"), ino("tasks"));
    assert_eq!(ino("snapshots/abs-root/../../images/local/sec/.."), ino("images/local"));
    assert_eq!(errno_name(errno(fs::write(t.path("content/sha256/../../evil"), "x"))), "EPERM");
    assert_eq!(errno_name(errno(fs::write(t.path("logs/abs/../evil"), "x"))), "EPERM");

    // Label values naming host paths are only values: containerd accepts any, and the
    // collector looks digests and keys up, never joins them into a path.
    let victim = outside.join("victim");
    let passwd = fs::metadata("/etc/passwd").unwrap();
    let values = [
        format!("containerd.io/gc.ref.content={}", victim.display()),
        "containerd.io/gc.ref.content.l.0=sha256:../../../../outside/victim".into(),
        "containerd.io/gc.ref.content.l.1=../../../../../../etc/passwd".into(),
        format!("containerd.io/gc.ref.snapshot.overlayfs={}", outside.display()),
        "containerd.io/gc.ref.snapshot.native/x=../../outside".into(),
        "containerd.io/gc.root=../../outside".into(),
    ];
    fs::create_dir(t.path("containers/lab")).unwrap();
    put(&t.path("containers/lab/labels"), values.iter().map(|v| format!("{v}\n")).collect::<String>());
    put(&t.path("containers/lab/snapshot"), "lab-root\n");
    let blob = format!("content/sha256/{}", layout_blobs(two_layer_layout())[0].0);
    for value in &values {
        let (key, v) = value.split_once('=').unwrap();
        set_xattr(&t.path(&blob), &format!("user.{key}"), v.as_bytes(), 0).unwrap();
        set_xattr(&t.path("images/local/sec"), &format!("user.{key}"), v.as_bytes(), 0).unwrap();
    }
    assert_eq!(read(&t.path("containers/lab/labels")).lines().count(), values.len());
    // Collections run after each of these, the labels in place (the blob's stay).
    fs::remove_dir_all(t.path("containers/lab")).unwrap();
    t.sh_ok("rm tasks/abs && rm -r containers/abs containers/rel && rmdir images/local/sec");
    assert_eq!(read(&victim), "victim\n");
    assert_eq!(outside_list(), ["victim"]);
    let passwd_now = fs::metadata("/etc/passwd").unwrap();
    assert_eq!((passwd_now.ino(), passwd_now.len(), passwd_now.mtime()), (passwd.ino(), passwd.len(), passwd.mtime()));
    assert_eq!(get_xattr(&t.path(&blob), "user.containerd.io/gc.root").unwrap(), b"../../outside");
    assert!(!t.log().contains("panicked"), "{}", t.log());
    eprintln!("{refused} link attempts refused, {} names checked, {} label values", names.len(), values.len());
}

/// Command line of `ctrfs import MOUNT PATH [args]`: (exit code, stderr).
fn import(t: &Tasks, path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs")).arg("import").arg(t.mnt()).arg(path).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A tar whose members are written with their names as given (`..` included).
fn raw_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// The daemon still answers and accepts a change.
fn serving(t: &Tasks, after: &str) {
    fs::metadata(t.mnt()).unwrap_or_else(|e| panic!("after {after}: stat of the root: {e}\n{}", t.log()));
    let _ = fs::create_dir(t.path("containers/alive"));
    put(&t.path("containers/alive/labels"), format!("after={after}\n"));
    assert_eq!(read(&t.path("containers/alive/labels")), format!("after={after}\n"));
}

#[test]
fn option_and_path_shaped_values_reach_neither_the_runtime_nor_the_disk() {
    let t = Tasks::new();
    let root = t.root().to_owned();
    let tmp_x = Path::new("/tmp/x").exists();
    // What a value used as a path or run as a command would leave: anything in
    // `outside/`, or the files the values below name.
    fs::create_dir(root.join("outside")).unwrap();
    let escapes = || {
        let mut found = ls(&root.join("outside"));
        found.extend(["x", "evil-ran"].into_iter().filter(|p| root.join(p).exists()).map(String::from));
        found
    };
    image(&t);
    let state = t.state();
    let mut tried = BTreeMap::<&str, usize>::new();

    // Container ids: containerd's identifier rule refuses every option- or path-shaped
    // one (EINVAL); `.`, `..` and names with '/' the kernel answers itself.
    let ids = [
        "-rf", "--help", "-h", "--all", "--force", "--root=x", "-", ".hidden", ".exits", "a..b", "_x", "x-", "a b", "a;b",
        "$(touch x)", "`touch x`", "a\tb", "a\nb", "*", "~root",
    ];
    for id in ids {
        assert_eq!(errno_name(errno(fs::create_dir(t.path("containers").join(id)))), "EINVAL", "mkdir containers/{id:?}");
    }
    let rooted = format!("--root={}/x", root.display());
    let kernel = [(".", "EEXIST"), ("..", "EEXIST"), (rooted.as_str(), "ENOENT"), ("a/../b", "ENOENT")];
    for (id, want) in kernel {
        assert_eq!(errno_name(errno(fs::create_dir(t.path("containers").join(id)))), want, "mkdir containers/{id}");
    }
    fs::write(root.join("rt"), "runc\n").unwrap();
    let (code, _, err) = t.sh(&format!("install -D {}/rt containers/-rf/runtime", root.display()));
    assert!(code != 0 && err.contains("Invalid argument"), "install -D into containers/-rf: {err}");
    assert_eq!(ls(&t.path("containers")), Vec::<String>::new());
    tried.insert("container ids", ids.len() + kernel.len() + 1);
    serving(&t, "container ids");

    // Task names: there is no such container, so nothing starts and the runtime is not
    // run (no task directory, no runc state).
    let state_tasks = ls(&state.join("tasks"));
    let task_names = ["-rf", "--all", "--root=x", ".exits", "-h"];
    for name in task_names {
        assert_eq!(errno_name(errno(create(&t.path("tasks").join(name)))), "ENOENT", "touch tasks/{name}");
        let r = write_doc(&t.path("tasks").join(name), b"KILL\n", Mode::Truncate);
        assert!(matches!(r, Err((_, libc::ENOENT))), "echo KILL > tasks/{name}: {r:?}");
    }
    assert_eq!(ls(&state.join("tasks")), state_tasks);
    assert_eq!(ls(&state.join("runc")), Vec::<String>::new());
    tried.insert("task names", task_names.len());

    // Snapshot keys: option-shaped ones are valid keys (one path component, printable)
    // and only ever names; path-shaped ones are EINVAL.
    fs::create_dir(t.path("containers/keys")).unwrap();
    let good_keys = ["--help", "-x", "--root=x", "-", "...", "-rf"];
    let bad_keys = ["../x", ".", "..", "a/b", "/etc", "../../etc/passwd", "./x"];
    for key in good_keys {
        put(&t.path("containers/keys/snapshot"), format!("{key}\n"));
        assert_eq!(read(&t.path("containers/keys/snapshot")), format!("{key}\n"));
    }
    for key in bad_keys {
        let r = write_doc(&t.path("containers/keys/snapshot"), format!("{key}\n").as_bytes(), Mode::Truncate);
        assert!(matches!(r, Err((_, libc::EINVAL))), "snapshot key {key:?}: {r:?}");
        assert_eq!(read(&t.path("containers/keys/snapshot")), "-rf\n", "after {key:?}");
    }
    // An option-shaped key prepared and run: the task starts on it.
    image_container(&t, "opt", "--help", "cat /data/keep.txt", json!({"path": "rootfs", "readonly": true}));
    assert_eq!(read(&t.path("snapshots/--help/kind")).trim(), "active");
    t.start("opt");
    assert_eq!(t.wait("opt"), "0\n", "{}", read(&t.path("logs/opt/stderr")));
    assert_eq!(read(&t.path("logs/opt/stdout")), "kept\n");
    // On disk snapshots are numbered: no key became a name there.
    for name in ls(&state.join("snapshots")) {
        assert!(name == "driver" || name.parse::<u64>().is_ok(), "STATE/snapshots/{name}");
    }
    tried.insert("snapshot keys", good_keys.len() + bad_keys.len());
    serving(&t, "snapshot keys");

    // Runtime names: recorded as written (printable, at most 255 bytes) and never run:
    // every task runs with the mount's --runtime.
    let evil = root.join("evil-runtime");
    fs::write(&evil, format!("#!/bin/sh\ntouch {}/evil-ran\nexec runc \"$@\"\n", root.display())).unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    let runtimes = [
        format!("--root={}/x", root.display()),
        "/bin/sh".into(),
        "../../bin/sh".into(),
        "-h".into(),
        "--help".into(),
        evil.display().to_string(),
        format!("$(touch {}/x)", root.display()),
        "runc --root=/tmp/x".into(),
    ];
    for (i, runtime) in runtimes.iter().enumerate() {
        let id = format!("rt{i}");
        t.container(&id, "echo ran");
        put(&t.path(&format!("containers/{id}/runtime")), format!("{runtime}\n"));
        assert_eq!(read(&t.path(&format!("containers/{id}/runtime"))), format!("{runtime}\n"));
        t.start(&id);
        assert_eq!(t.wait(&id), "0\n", "runtime {runtime:?}: {}", read(&t.path(&format!("logs/{id}/stderr"))));
        assert_eq!(read(&t.path(&format!("logs/{id}/stdout"))), "ran\n", "runtime {runtime:?}");
    }
    assert_eq!(escapes(), Vec::<String>::new(), "a runtime name was run");
    tried.insert("runtime names", runtimes.len());
    serving(&t, "runtime names");

    // Digests: a target naming anything but algorithm:hex is EINVAL, and the target stays.
    let target_before = fs::read(t.path("images/local/sec/target")).unwrap();
    let hex = "a".repeat(64);
    let digests = [
        "sha256:../../etc/passwd".to_owned(),
        "sha256:/etc/passwd".into(),
        "../../../etc/passwd".into(),
        format!("sha256:{hex}/../../x"),
        format!("sha256:../{}", &hex[3..]),
        "sha256:-rf".into(),
        "sha256:--help".into(),
        "sha512:..".into(),
        format!(":{hex}"),
        format!("../sha256:{hex}"),
        format!("sha256/../../x:{hex}"),
        format!("sha256:{hex}\n"),
    ];
    for digest in &digests {
        let desc = json!({"mediaType": MANIFEST, "digest": digest, "size": 1}).to_string();
        let r = write_doc(&t.path("images/local/sec/target"), desc.as_bytes(), Mode::Truncate);
        assert!(matches!(r, Err((_, libc::EINVAL))), "target digest {digest:?}: {r:?}");
        assert_eq!(fs::read(t.path("images/local/sec/target")).unwrap(), target_before, "after {digest:?}");
    }
    // ...also inside a manifest (its target is refused) and an image config (its unpack is).
    let layout = two_layer_layout();
    let manifest = |layer: &str, config: &Value| {
        json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config,
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 7}]})
        .to_string()
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config_bytes = json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:../../../outside/victim"]}}).to_string();
    let config_hex = sha256_hex(config_bytes.as_bytes());
    put(&t.path(&format!("content/sha256/{config_hex}")), &config_bytes);
    let config_desc = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config_bytes.len()});
    let bad_manifest = manifest("sha256:../../../outside/victim", &config_desc);
    let bad_hex = sha256_hex(bad_manifest.as_bytes());
    put(&t.path(&format!("content/sha256/{bad_hex}")), &bad_manifest);
    fs::create_dir_all(t.path("images/evil/layer")).unwrap();
    let desc = json!({"mediaType": MANIFEST, "digest": format!("sha256:{bad_hex}"), "size": bad_manifest.len()}).to_string();
    let r = write_doc(&t.path("images/evil/layer/target"), desc.as_bytes(), Mode::Truncate);
    assert!(matches!(r, Err((_, libc::EINVAL))), "a manifest with a path-shaped layer digest: {r:?}");
    assert_eq!(errno(fs::metadata(t.path("images/evil/layer/target"))), libc::ENOENT);
    // A real layer, its config's diff ID path-shaped.
    let target = read_json(&t.path("images/local/sec/target"));
    let real_hex = target["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    let real_manifest = read_json(&t.path(&format!("content/sha256/{real_hex}")));
    let mut diff_manifest: Value = serde_json::from_str(&manifest("sha256:0", &config_desc)).unwrap();
    diff_manifest["layers"][0] = real_manifest["layers"][0].clone();
    let diff_manifest = diff_manifest.to_string();
    let diff_hex = sha256_hex(diff_manifest.as_bytes());
    put(&t.path(&format!("content/sha256/{diff_hex}")), &diff_manifest);
    fs::create_dir_all(t.path("images/evil/diff")).unwrap();
    put(&t.path("images/evil/diff/target"), json!({"mediaType": MANIFEST, "digest": format!("sha256:{diff_hex}"), "size": diff_manifest.len()}).to_string());
    fs::create_dir(t.path("containers/diff")).unwrap();
    put(&t.path("containers/diff/image"), "evil/diff\n");
    let r = write_doc(&t.path("containers/diff/snapshot"), b"diff-root\n", Mode::Truncate);
    assert!(matches!(r, Err((_, libc::EINVAL))), "a config with a path-shaped diff ID: {r:?}");
    t.wait_for_log_line("refusing the path-shaped diff ID", |l| l.contains("containers/diff/snapshot") && l.contains("not a sha256 digest"));
    assert_eq!(errno(fs::metadata(t.path("snapshots/diff-root"))), libc::ENOENT);
    // Content names: `..` is the kernel's (inside the mount); any other non-digest name
    // is a temporary file, whose bytes go to an ingest file, never to a file of that name.
    assert_eq!(fs::metadata(t.path("content/sha256/../..")).unwrap().ino(), fs::metadata(t.mnt()).unwrap().ino());
    let content_names = ["-rf", "--help", "..x", ".hidden", "x:..", &format!("{hex}.."), &hex[..63]];
    for name in content_names {
        put(&t.path("content/sha256").join(name), "bytes\n");
        assert_eq!(errno(fs::metadata(state.join("content/blobs/sha256").join(name))), libc::ENOENT, "STATE/content/blobs/sha256/{name}");
    }
    let blob_names = ls(&state.join("content/blobs/sha256"));
    assert!(blob_names.iter().all(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())), "{blob_names:?}");
    for name in content_names {
        fs::remove_file(t.path("content/sha256").join(name)).unwrap();
    }
    wait_until(Duration::from_secs(10), "the temporary files' ingests to go", || {
        fs::read_dir(state.join("content/ingest")).is_ok_and(|d| d.count() == 0)
    });
    // Target digests, a manifest's layer digest, a config's diff ID, `..` and the names.
    tried.insert("digests and content names", digests.len() + 2 + 1 + content_names.len());
    serving(&t, "digests");

    // Image names with '.' or '..' components, empty components or a leading '/'.
    fs::create_dir(t.path("containers/img")).unwrap();
    let names = ["..", "../etc", "a/../b", "a/..", ".", "./a", "/etc/passwd", "a//b", "../../../../etc/shadow", "local/sec/.."];
    for name in names {
        let r = write_doc(&t.path("containers/img/image"), format!("{name}\n").as_bytes(), Mode::Truncate);
        assert!(matches!(r, Err((_, libc::EINVAL))), "image {name:?}: {r:?}");
        assert_eq!(errno(fs::metadata(t.path("containers/img/image"))), libc::ENOENT, "after {name:?}");
    }
    tried.insert("image names", names.len());

    // ctrfs import: a layout naming a path-shaped digest, an archive with `..` members,
    // and path-shaped image names are refused (exit 1); nothing lands outside the mount.
    let images_before = walk(&t.path("images"));
    let hostile = root.join("hostile-layout");
    fs::create_dir_all(hostile.join("blobs/sha256")).unwrap();
    fs::write(hostile.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let hostile_digests = [
        ("sha256:../../../outside/x", "needs 64 lowercase hex digits"),
        ("sha256:/etc/passwd", "needs 64 lowercase hex digits"),
        ("../../outside/x", "is not algorithm:hex"),
    ];
    for (digest, why) in hostile_digests {
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": MANIFEST, "digest": digest, "size": 1}]});
        fs::write(hostile.join("index.json"), index.to_string()).unwrap();
        let (code, err) = import(&t, &hostile, &["--name", "hostile"]);
        assert!(code == 1 && err.contains(why), "import of a layout naming {digest}: exit {code}, {err}");
    }
    let member_bytes: &[u8] = b"pwned\n";
    let member_hex = sha256_hex(member_bytes);
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": MANIFEST, "digest": format!("sha256:{}", sha256_hex(member_bytes)), "size": member_bytes.len()}]}).to_string();
    let archive = raw_tar(&[
        ("../../../outside/pwn", member_bytes),
        (&format!("blobs/sha256/../../../../outside/{member_hex}"), member_bytes),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", index.as_bytes()),
    ]);
    let tar_path = root.join("hostile.tar");
    fs::write(&tar_path, archive).unwrap();
    let (code, err) = import(&t, &tar_path, &["--name", "hostile"]);
    // The `..` members are no layout's files: the blob the index names is missing.
    assert!(code == 1 && err.contains("is not in blobs/"), "import of an archive with '..' members: exit {code}, {err}");
    let import_names = ["../x", "a/../b", "..", "/etc/x"];
    for name in import_names {
        let (code, err) = import(&t, layout, &["--name", name]);
        assert!(code == 1 && err.contains("invalid image name"), "import --name {name}: exit {code}, {err}");
    }
    assert_eq!(walk(&t.path("images")), images_before, "a refused import made an image");
    tried.insert("imports", hostile_digests.len() + 1 + import_names.len());
    assert_eq!(escapes(), Vec::<String>::new(), "something was written outside");
    assert_eq!(Path::new("/tmp/x").exists(), tmp_x, "/tmp/x appeared");
    serving(&t, "imports");
    assert!(!t.log().contains("panicked"), "{}", t.log());
    eprintln!("tried: {tried:?}");
}

#[test]
fn a_state_directory_entry_shaped_like_an_option_never_reaches_the_runtime() {
    // Start-up removes a run the runtime has but no task records, by the names it finds
    // in the state directory. A name shaped like an option must not reach runc as one:
    // `runc kill --all SIGKILL` would send SIGTERM to every process of task `SIGKILL`.
    let mut t = Tasks::new();
    t.container("SIGKILL", LOOP);
    t.start("SIGKILL");
    wait_until(Duration::from_secs(20), "the task to say it started", || read(&t.path("logs/SIGKILL/stdout")) == "started\n");
    let pid = t.status("SIGKILL")["pid"].as_u64().unwrap();
    let state = t.state();
    let planted = ["--all", "-h", "--force"];
    for name in planted {
        fs::create_dir(state.join("tasks").join(name)).unwrap();
    }
    let log_from = t.log().len();
    t.fixture().remount();
    let log = t.log()[log_from..].to_owned();
    for name in planted {
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains(&format!("{name:?}")) && l.contains("not a task id")),
            "no warning naming {name:?}:\n{log}"
        );
        assert!(state.join("tasks").join(name).is_dir(), "{name} is left alone");
    }
    assert!(!log.contains("killing and removing it"), "a planted name was handed to the runtime:\n{log}");
    let now = t.status("SIGKILL");
    assert_eq!((now["status"].as_str(), now["pid"].as_u64()), (Some("running"), Some(pid)), "{now}");
    // The only signal the task ever gets is ours.
    t.control("SIGKILL", "KILL").unwrap();
    assert_eq!(t.wait("SIGKILL"), "137\n");
    assert_eq!(read(&t.path("logs/SIGKILL/stdout")), "started\n", "the task got a TERM");
    for name in planted {
        fs::remove_dir(state.join("tasks").join(name)).unwrap();
    }
}
