//! FsCore driven directly, without a mount: the semantics the adapter relies on.

use std::ffi::OsStr;
use std::sync::Arc;

use super::attr::Kind;
use super::errno::FsError;
use super::ino::ROOT_INO;
use super::{FsCore, Ownership};
use crate::store::testing::temp_store;

fn core() -> (tempfile::TempDir, FsCore) {
    let (dir, store) = temp_store();
    (dir, FsCore::over_store(Arc::new(store)))
}

/// The inode of `path`; an attribute file without a value (which a lookup does not find)
/// by its slot, as a writer that creates it would address it.
fn ino_of(core: &FsCore, path: &str) -> u64 {
    path.split('/').fold(ROOT_INO, |parent, name| match core.lookup(parent, OsStr::new(name)) {
        Ok(attr) => attr.ino,
        Err(e) => {
            let file = super::ino::ALL_ATTR_FILES.into_iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("{path}: {e}"));
            super::ino::Ino::File(super::ino::Ino::decode(parent).unwrap().node(), file).number()
        }
    })
}

fn listing(core: &FsCore, ino: u64, offset: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    core.readdir(ino, offset, &mut |_, cookie, _, name| {
        out.push((cookie, name.to_owned()));
        false
    })
    .unwrap();
    out
}

fn write_file(core: &FsCore, ino: u64, flags: i32, bytes: &[u8]) -> Result<(), FsError> {
    let fh = core.open(ino, flags)?;
    let written = core.write(fh, 0, bytes).map(drop);
    let flushed = core.flush(fh);
    core.release(fh)?;
    written.and(flushed)
}

const TRUNC: i32 = libc::O_WRONLY | libc::O_TRUNC;
const APPEND: i32 = libc::O_WRONLY | libc::O_APPEND;

#[test]
fn readdir_cookies_survive_deletions() {
    let (_dir, core) = core();
    let containers = ino_of(&core, "containers");
    for i in 0..5 {
        core.mkdir(containers, OsStr::new(&format!("c{i}"))).unwrap();
    }
    let all = listing(&core, containers, 0);
    let names: Vec<&str> = all.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, [".", "..", "c0", "c1", "c2", "c3", "c4"]);
    // Resume after c1 while c0 and c2 are deleted: nothing skipped, nothing repeated.
    let cookie_c1 = all[3].0;
    core.rmdir(containers, OsStr::new("c0")).unwrap();
    core.rmdir(containers, OsStr::new("c2")).unwrap();
    let rest: Vec<String> = listing(&core, containers, cookie_c1).into_iter().map(|(_, n)| n).collect();
    assert_eq!(rest, ["c3", "c4"]);
}

#[test]
fn container_directories_list_the_files_that_have_a_value() {
    let (_dir, core) = core();
    let web = core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap().ino;
    let names = |offset| -> Vec<String> { listing(&core, web, offset).into_iter().map(|(_, n)| n).collect() };
    assert_eq!(names(0), [".", ".."], "a new container has no field set; info.json is reachable by name only");
    assert!(core.lookup(web, OsStr::new("info.json")).is_ok());
    assert_eq!(core.lookup(web, OsStr::new("runtime")).unwrap_err().errno(), libc::ENOENT);
    for (file, value) in [("runtime", "crun\n"), ("labels", "a=1\n"), ("spec", "{}")] {
        write_file(&core, ino_of(&core, &format!("containers/web/{file}")), TRUNC, value.as_bytes()).unwrap();
    }
    assert_eq!(names(0), [".", "..", "spec", "runtime", "labels"]);
    assert_eq!(names(7), ["labels"], "cookies are slots: resuming after runtime's");
    // rm clears a field (the file is gone until written again), and create with O_EXCL
    // then makes it: what tar and install do.
    core.unlink(web, OsStr::new("runtime")).unwrap();
    assert_eq!(core.lookup(web, OsStr::new("runtime")).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(core.unlink(web, OsStr::new("runtime")).unwrap_err().errno(), libc::ENOENT);
    let (_, fh) = core.create(web, OsStr::new("runtime"), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).unwrap();
    core.write(fh, 0, b"youki\n").unwrap();
    core.release(fh).unwrap();
    assert_eq!(core.content(ino_of(&core, "containers/web/runtime")).unwrap(), b"youki\n");
    assert_eq!(core.create(web, OsStr::new("runtime"), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).unwrap_err().errno(), libc::EEXIST);
    assert_eq!(core.unlink(web, OsStr::new("info.json")).unwrap_err().errno(), libc::EPERM);
}

#[test]
fn sizes_are_exact_and_writes_commit_at_flush() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    write_file(&core, labels, TRUNC, b"b=2\na=1\n").unwrap();
    write_file(&core, labels, APPEND, b"c=3\nb=\n").unwrap();
    assert_eq!(core.content(labels).unwrap(), b"a=1\nc=3\n");
    assert_eq!(core.getattr(labels).unwrap().size, 8);
    let info = ino_of(&core, "containers/web/info.json");
    assert_eq!(core.getattr(info).unwrap().size as usize, core.content(info).unwrap().len());
}

#[test]
fn the_write_that_completes_a_value_commits_it_before_any_close() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    let fh = core.open(labels, APPEND).unwrap();
    core.write(fh, 0, b"a=1\n").unwrap();
    assert_eq!(core.content(labels).unwrap(), b"a=1\n", "committed at write(), no close yet");
    core.write(fh, 4, b"b=2").unwrap();
    assert_eq!(core.content(labels).unwrap(), b"a=1\n", "a line still open waits");
    core.fsync(fh).unwrap();
    assert_eq!(core.content(labels).unwrap(), b"a=1\nb=2\n", "fsync commits what is held");
    core.write(fh, 7, b"\n").unwrap();
    core.release(fh).unwrap();
    assert_eq!(core.content(labels).unwrap(), b"a=1\nb=2\n");
    let spec = ino_of(&core, "containers/web/spec");
    let fh = core.open(spec, TRUNC).unwrap();
    core.write(fh, 0, b"{\"process\": {\"args\": [\"sh\"]}}").unwrap();
    assert!(String::from_utf8(core.content(spec).unwrap()).unwrap().contains("\"sh\""), "the closing brace commits");
    assert_eq!(core.write(fh, 32, b"x").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.content(spec).unwrap(), b"", "a refusal after it puts back the value from before the open");
    core.release(fh).unwrap();
}

#[test]
fn a_refusal_never_puts_back_over_what_another_writer_committed_since() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let spec = ino_of(&core, "containers/web/spec");
    let a = core.open(spec, TRUNC).unwrap();
    core.write(a, 0, b"{\"a\": 1}").unwrap();
    write_file(&core, spec, TRUNC, b"{\"b\": 2}").unwrap();
    assert_eq!(core.write(a, 8, b"x").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.content(spec).unwrap(), b"{\"b\": 2}", "the other writer's acknowledged value stays");
    core.release(a).unwrap();
}

#[test]
fn truncation_to_huge_sizes_is_refused_with_efbig() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    write_file(&core, labels, TRUNC, b"keep=1\n").unwrap();
    let none = Ownership::default();
    assert_eq!(core.setattr(labels, Some(1 << 40), None, none, Default::default()).unwrap_err().errno(), libc::EFBIG);
    let fh = core.open(labels, libc::O_WRONLY).unwrap();
    assert_eq!(core.setattr(labels, Some(1 << 40), Some(fh), none, Default::default()).unwrap_err().errno(), libc::EFBIG);
    assert_eq!(core.write(fh, u64::MAX - 2, b"x=1\n").unwrap_err().errno(), libc::EFBIG);
    core.release(fh).ok();
    assert_eq!(core.content(labels).unwrap(), b"keep=1\n");
}

#[test]
fn writers_that_need_nothing_to_wait_for_open_and_flush_without_a_worker() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    // Labels that reference nothing pin nothing: no wait for the pin table.
    let fh = core.open_without_waiting(labels, APPEND).expect("an open that needs no pin").unwrap();
    core.write(fh, 0, b"a=1\n").unwrap();
    // The write committed its line: the flush has nothing to do.
    assert!(matches!(core.flush_without_waiting(fh), Some(Ok(()))));
    assert!(matches!(core.release_without_waiting(fh), Some(Ok(()))), "nor has the release");
    assert!(!core.is_open(fh));
    assert_eq!(core.content(labels).unwrap(), b"a=1\n");

    // A value its writes did not complete is committed by the flush: that waits.
    let spec = ino_of(&core, "containers/web/spec");
    let fh = core.open_without_waiting(spec, TRUNC).unwrap().unwrap();
    core.write(fh, 0, b"{\"process\":").unwrap();
    assert!(core.flush_without_waiting(fh).is_none(), "a flush that judges a value goes to a worker");
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL);
    assert!(core.flush_without_waiting(fh).is_none(), "not final before the release: judged again");
    assert!(core.release_without_waiting(fh).is_none(), "the release judges it finally");
    let _ = core.release(fh);

    // A handle refused at a write answers its refusal again, and that needs no wait.
    let fh = core.open_without_waiting(labels, APPEND).unwrap().unwrap();
    assert_eq!(core.write(fh, 0, b"no-equals-sign\n").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.flush_without_waiting(fh).expect("a refused handle commits nothing").unwrap_err().errno(), libc::EINVAL);
    let _ = core.release(fh);
    assert_eq!(core.content(labels).unwrap(), b"a=1\n");

    // Labels that reference content pin it while written: that may wait for a collection.
    let digest = format!("sha256:{}", "a".repeat(64));
    write_file(&core, labels, TRUNC, format!("containerd.io/gc.ref.content.x={digest}\n").as_bytes()).unwrap();
    assert!(core.open_without_waiting(labels, APPEND).is_none(), "a writer that pins goes to a worker");
    // Readers never pin.
    assert!(core.open_without_waiting(labels, libc::O_RDONLY).is_some());
}

#[test]
fn refused_writes_keep_the_previous_value() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    write_file(&core, labels, TRUNC, b"keep=1\n").unwrap();
    let err = write_file(&core, labels, TRUNC, b"no-equals-sign\n").unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert_eq!(core.content(labels).unwrap(), b"keep=1\n");
    let spec = ino_of(&core, "containers/web/spec");
    // Incomplete at every write, invalid only once complete: refused at flush.
    let fh = core.open(spec, TRUNC).unwrap();
    core.write(fh, 0, b"{\"process\":").unwrap();
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.release(fh).unwrap_err().errno(), libc::EINVAL, "judged finally at release");
    assert_eq!(core.content(spec).unwrap(), b"");
}

#[test]
fn a_refused_write_after_a_shells_early_close_puts_the_value_back() {
    let (_dir, core) = core();
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    write_file(&core, labels, TRUNC, b"keep=1\n").unwrap();
    // `echo bad > labels`: open, flush of the moved descriptor, refused write, close.
    let fh = core.open(labels, TRUNC).unwrap();
    core.flush(fh).unwrap();
    assert_eq!(core.content(labels).unwrap(), b"", "a truncating open empties the file, as anywhere");
    assert!(core.write(fh, 0, b"bad\n").is_err());
    assert_eq!(core.content(labels).unwrap(), b"keep=1\n", "the refusal puts the old value back");
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL, "the close repeats the refusal");
    core.release(fh).unwrap();
    assert_eq!(core.content(labels).unwrap(), b"keep=1\n");
    assert!(!core.is_open(fh));
}

#[test]
fn an_empty_value_that_is_invalid_is_refused_but_not_final_at_flush() {
    let (_dir, core) = core();
    let app = core.mkdir(ino_of(&core, "images"), OsStr::new("app")).unwrap().ino;
    let doc = |seed: char| format!("{{\"mediaType\":\"m\",\"digest\":\"sha256:{}\",\"size\":1}}\n", seed.to_string().repeat(64));
    // `echo DOC > target`: the early flush is refused quietly, the write then commits.
    let (attr, fh) = core.create(app, OsStr::new("target"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
    assert!(matches!(core.flush(fh), Err(FsError::Unsettled(_))));
    core.write(fh, 0, doc('a').as_bytes()).unwrap();
    core.flush(fh).unwrap();
    core.release(fh).unwrap();
    assert!(String::from_utf8(core.content(attr.ino).unwrap()).unwrap().contains(&"a".repeat(64)));
    // `: > target`: refused at close, and for good at release.
    let fh = core.open(attr.ino, TRUNC).unwrap();
    assert_eq!(core.flush(fh).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(core.release(fh).unwrap_err().errno(), libc::EINVAL);
    assert!(String::from_utf8(core.content(attr.ino).unwrap()).unwrap().contains(&"a".repeat(64)));
}

#[test]
fn images_appear_when_their_target_is_written() {
    let (_dir, core) = core();
    let images = ino_of(&core, "images");
    let prefix = core.mkdir(images, OsStr::new("docker.io")).unwrap().ino;
    let leaf = core.mkdir(prefix, OsStr::new("busybox:1.36")).unwrap().ino;
    assert_eq!(listing(&core, leaf, 0).len(), 2, "a prefix shows no files");
    // Labels may come first (a restore copies files in its own order): still no image.
    let (_, fh) = core.create(leaf, OsStr::new("labels"), TRUNC).unwrap();
    core.write(fh, 0, b"origin=backup\n").unwrap();
    core.release(fh).unwrap();
    let names: Vec<String> = listing(&core, leaf, 0).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, [".", "..", "labels"]);
    assert_eq!(core.lookup(leaf, OsStr::new("info.json")).unwrap_err().errno(), libc::ENOENT, "not an image yet");
    let (attr, fh) = core.create(leaf, OsStr::new("target"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
    assert_eq!(core.getattr(attr.ino).unwrap().size, 0, "a target being created answers getattr");
    let doc = format!("{{\"mediaType\":\"m\",\"digest\":\"sha256:{}\",\"size\":1}}\n", "c".repeat(64));
    core.write(fh, 0, doc.as_bytes()).unwrap();
    core.flush(fh).unwrap();
    core.release(fh).unwrap();
    let names: Vec<String> = listing(&core, leaf, 0).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, [".", "..", "target", "labels"], "the labels written first stay; info.json by name");
    assert_eq!(core.content(ino_of(&core, "images/docker.io/busybox:1.36/labels")).unwrap(), b"origin=backup\n");
    let info = String::from_utf8(core.content(ino_of(&core, "images/docker.io/busybox:1.36/info.json")).unwrap()).unwrap();
    assert!(info.contains("\"name\": \"docker.io/busybox:1.36\""), "{info}");
    assert_eq!(core.rmdir(images, OsStr::new("docker.io")).unwrap_err().errno(), libc::ENOTEMPTY);
    assert_eq!(core.mkdir(prefix, OsStr::new("target")).unwrap_err().errno(), libc::EINVAL);
}

#[test]
fn deleted_objects_answer_from_their_tombstone_until_forgotten() {
    let (_dir, core) = core();
    let containers = ino_of(&core, "containers");
    let web = core.mkdir(containers, OsStr::new("web")).unwrap().ino;
    write_file(&core, ino_of(&core, "containers/web/runtime"), TRUNC, b"runc\n").unwrap();
    let runtime = ino_of(&core, "containers/web/runtime");
    core.rmdir(containers, OsStr::new("web")).unwrap();
    let dir_attr = core.getattr(web).unwrap();
    assert_eq!((dir_attr.kind, dir_attr.nlink), (Kind::Dir, 0));
    assert_eq!(core.getattr(runtime).unwrap().nlink, 0);
    core.forget(web, 3); // mkdir and the two lookups on the way to runtime
    core.forget(runtime, 1);
    assert_eq!(core.getattr(web).unwrap_err().errno(), libc::ENOENT);
    assert!(!core.inodes().is_known(web) && !core.inodes().is_known(runtime));
    // A new container of the same name is a new object with a new inode.
    let again = core.mkdir(containers, OsStr::new("web")).unwrap().ino;
    assert_ne!(again, web);
}

#[test]
fn refusals_have_their_errno() {
    let (_dir, core) = core();
    let containers = ino_of(&core, "containers");
    let web = core.mkdir(containers, OsStr::new("web")).unwrap().ino;
    let info = ino_of(&core, "containers/web/info.json");
    let rows: Vec<(Result<(), FsError>, i32)> = vec![
        (core.mkdir(containers, OsStr::new("web")).map(drop), libc::EEXIST),
        (core.mkdir(containers, OsStr::new("bad name")).map(drop), libc::EINVAL),
        (core.mkdir(web, OsStr::new("sub")).map(drop), libc::EPERM),
        (core.mkdir(ROOT_INO, OsStr::new("extra")).map(drop), libc::EPERM),
        (core.create(containers, OsStr::new("file"), TRUNC).map(drop), libc::EPERM),
        (core.open(info, libc::O_WRONLY).map(drop), libc::EACCES),
        (core.rmdir(containers, OsStr::new("nope")), libc::ENOENT),
        (core.lookup(web, OsStr::new("nope")).map(drop), libc::ENOENT),
        (core.unlink(containers, OsStr::new("web")), libc::EISDIR),
        (core.getxattr(web, OsStr::new("user.none")).map(drop), libc::ENODATA),
        (core.setxattr(web, OsStr::new("trusted.x"), b"v", 0), libc::ENOTSUP),
        (core.getxattr(web, OsStr::new("security.selinux")).map(drop), libc::ENOTSUP),
        (core.setattr(info, Some(0), None, Default::default(), Default::default()).map(drop), libc::EACCES),
        (core.setattr(web, None, None, super::Ownership { mode: Some(0o700), ..Default::default() }, Default::default()).map(drop), libc::EPERM),
    ];
    for (i, (result, errno)) in rows.into_iter().enumerate() {
        assert_eq!(result.map_err(|e| e.errno()), Err(errno), "row {i}");
    }
    assert_eq!(core.unlink(web, OsStr::new("labels")).unwrap_err().errno(), libc::ENOENT, "no labels to remove");
    // Any other name in an object directory is a temporary file (for rename onto a field).
    let (_, fh) = core.create(web, OsStr::new("notes"), TRUNC).unwrap();
    core.release(fh).unwrap();
    assert_eq!(core.rename(web, OsStr::new("notes"), containers, OsStr::new("x"), 0).unwrap_err().errno(), libc::EXDEV);
    assert_eq!(core.rename(web, OsStr::new("nope"), web, OsStr::new("labels"), 0).unwrap_err().errno(), libc::EPERM);
    core.unlink(web, OsStr::new("notes")).unwrap();
}

#[test]
fn labels_as_xattrs_follow_the_flags() {
    let (_dir, core) = core();
    let web = core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap().ino;
    core.setxattr(web, OsStr::new("user.env"), b"prod", 0).unwrap();
    assert_eq!(core.setxattr(web, OsStr::new("user.env"), b"x", libc::XATTR_CREATE).unwrap_err().errno(), libc::EEXIST);
    assert_eq!(core.setxattr(web, OsStr::new("user.new"), b"x", libc::XATTR_REPLACE).unwrap_err().errno(), libc::ENODATA);
    assert_eq!(core.getxattr(web, OsStr::new("user.env")).unwrap(), b"prod");
    assert_eq!(core.listxattr(web).unwrap(), b"user.env\0");
    assert_eq!(core.content(ino_of(&core, "containers/web/labels")).unwrap(), b"env=prod\n");
    core.removexattr(web, OsStr::new("user.env")).unwrap();
    assert_eq!(core.removexattr(web, OsStr::new("user.env")).unwrap_err().errno(), libc::ENODATA);
}

mod tasks {
    //! Tasks through FsCore with a recording runtime double: the composition of store and
    //! runtime, without root or runc.

    use std::ffi::OsStr;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::{ino_of, write_file, TRUNC};
    use crate::fs::{FsCore, ReadOutcome};
    use crate::service::testing::FakeRuntime;
    use crate::service::{Event, Services};
    use crate::store::testing::temp_store;

    fn setup() -> (tempfile::TempDir, Arc<FakeRuntime>, FsCore) {
        let (dir, store) = temp_store();
        let runtime = Arc::new(FakeRuntime::default());
        let core = FsCore::new(Arc::new(Services::new(Arc::new(store)).with_runtime(runtime.clone())));
        let containers = ino_of(&core, "containers");
        core.mkdir(containers, OsStr::new("web")).unwrap();
        let spec = json!({"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"]}, "root": {"path": "/r"}});
        write_file(&core, ino_of(&core, "containers/web/spec"), TRUNC, spec.to_string().as_bytes()).unwrap();
        (dir, runtime, core)
    }

    fn status(core: &FsCore) -> Value {
        let ino = ino_of(core, "tasks/web");
        let fh = core.open(ino, libc::O_RDONLY).unwrap();
        let ReadOutcome::Data(bytes) = core.read(fh, 0, 65536).unwrap() else { panic!("a task file never blocks") };
        core.release(fh).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn control(core: &FsCore, word: &str) -> Result<(), i32> {
        let fh = core.open(ino_of(core, "tasks/web"), TRUNC).unwrap();
        let result = core.write(fh, 0, word.as_bytes()).map(drop).map_err(|e| e.errno());
        core.release(fh).unwrap();
        result
    }

    #[test]
    fn create_starts_records_and_makes_the_container_busy() {
        let (_dir, runtime, core) = setup();
        let tasks = ino_of(&core, "tasks");
        let (attr, fh) = core.create(tasks, OsStr::new("web"), libc::O_WRONLY | libc::O_CREAT).unwrap();
        core.release(fh).unwrap();
        assert_eq!(attr.ino, ino_of(&core, "tasks/web"));
        assert_eq!(runtime.calls(), ["start web"]);
        let s = status(&core);
        assert_eq!((s["status"].as_str(), s["pid"].as_u64()), (Some("running"), Some(4242)));
        assert!(s.get("exit_status").is_none());
        let containers = ino_of(&core, "containers");
        assert_eq!(core.rmdir(containers, OsStr::new("web")).unwrap_err().errno(), libc::EBUSY);
        let again = core.create(tasks, OsStr::new("web"), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
        assert_eq!(again.unwrap_err().errno(), libc::EEXIST);
    }

    #[test]
    fn refusals_at_create_have_their_errno() {
        let (_dir, runtime, core) = setup();
        let tasks = ino_of(&core, "tasks");
        assert_eq!(core.create(tasks, OsStr::new("nope"), libc::O_WRONLY).unwrap_err().errno(), libc::ENOENT);
        let containers = ino_of(&core, "containers");
        core.mkdir(containers, OsStr::new("bare")).unwrap();
        assert_eq!(core.create(tasks, OsStr::new("bare"), libc::O_WRONLY).unwrap_err().errno(), libc::EINVAL);
        write_file(&core, ino_of(&core, "containers/bare/spec"), TRUNC, b"{\"process\":{\"args\":[]}}").unwrap();
        assert_eq!(core.create(tasks, OsStr::new("bare"), libc::O_WRONLY).unwrap_err().errno(), libc::EINVAL);
        *runtime.fail_start.lock().unwrap() = Some("exec: no such file".into());
        assert_eq!(core.create(tasks, OsStr::new("web"), libc::O_WRONLY).unwrap_err().errno(), libc::EIO);
        assert_eq!(core.lookup(tasks, OsStr::new("web")).unwrap_err().errno(), libc::ENOENT, "nothing recorded");
    }

    #[test]
    fn a_truncating_create_starts_nothing_until_a_start_word_or_the_close() {
        let (_dir, runtime, core) = setup();
        let tasks = ino_of(&core, "tasks");
        let pending = |flags| core.create(tasks, OsStr::new("web"), libc::O_WRONLY | libc::O_CREAT | flags).unwrap();
        for (flags, word, errno) in
            [(libc::O_TRUNC, "KILL\n", libc::ESRCH), (libc::O_APPEND, "TERM\n", libc::ESRCH), (libc::O_TRUNC, "pause\n", libc::ESRCH), (libc::O_TRUNC, "frob\n", libc::EINVAL)]
        {
            let (attr, fh) = pending(flags);
            assert_eq!((core.getattr(attr.ino).unwrap().size, attr.size), (0, 0), "the create's inode answers while open");
            assert_eq!(core.lookup(tasks, OsStr::new("web")).unwrap_err().errno(), libc::ENOENT, "no task yet");
            assert_eq!(core.flush(fh).map_err(|e| e.errno()), Ok(()), "a shell's early close starts nothing");
            assert_eq!(core.write(fh, 0, word.as_bytes()).unwrap_err().errno(), errno, "{word}");
            assert_eq!(core.write(fh, 0, b"start\n").unwrap_err().errno(), errno, "refused for good");
            core.release(fh).unwrap();
            assert_eq!(core.getattr(attr.ino).unwrap_err().errno(), libc::ENOENT);
            assert_eq!(core.lookup(tasks, OsStr::new("web")).unwrap_err().errno(), libc::ENOENT, "{word} left no task");
        }
        assert!(runtime.calls().is_empty(), "nothing ran: {:?}", runtime.calls());
        let (_, fh) = pending(libc::O_TRUNC);
        core.write(fh, 0, b"start\n").unwrap();
        assert_eq!(runtime.calls(), ["start web"]);
        assert_eq!(status(&core)["status"], "running");
        core.write(fh, 6, b"pause\n").unwrap();
        core.release(fh).unwrap();
        assert_eq!(status(&core)["status"], "paused", "later words act on the task");
        let spec = json!({"process": {"args": ["/bin/sh"]}, "root": {"path": "/r"}}).to_string();
        for id in ["closed", "touched"] {
            core.mkdir(ino_of(&core, "containers"), OsStr::new(id)).unwrap();
            write_file(&core, ino_of(&core, &format!("containers/{id}/spec")), TRUNC, spec.as_bytes()).unwrap();
        }
        // Closed without a write: started as touch would.
        let (_, fh) = core.create(tasks, OsStr::new("closed"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
        core.release(fh).unwrap();
        assert!(core.lookup(tasks, OsStr::new("closed")).is_ok());
        // A start word through the handle of a touch-like create is that start.
        let (_, fh) = core.create(tasks, OsStr::new("touched"), libc::O_WRONLY | libc::O_CREAT).unwrap();
        core.write(fh, 0, b"start\n").unwrap();
        core.release(fh).unwrap();
        assert_eq!(runtime.calls(), ["start web", "pause web", "start closed", "start touched"]);
    }

    #[test]
    fn wait_lists_nothing_but_answers_by_name() {
        let (_dir, _runtime, core) = setup();
        let (_, fh) = core.create(ino_of(&core, "tasks"), OsStr::new("web"), libc::O_WRONLY).unwrap();
        core.release(fh).unwrap();
        let mut names = Vec::new();
        core.readdir(ino_of(&core, "wait"), 0, &mut |_, _, _, name| {
            names.push(name.to_owned());
            false
        })
        .unwrap();
        assert_eq!(names, [".", ".."]);
        assert_eq!(core.getattr(ino_of(&core, "wait/web")).unwrap().size, 0);
    }

    #[test]
    fn control_words_drive_the_runtime_and_the_record() {
        let (_dir, runtime, core) = setup();
        let (_, fh) = core.create(ino_of(&core, "tasks"), OsStr::new("web"), libc::O_WRONLY).unwrap();
        core.release(fh).unwrap();
        control(&core, "pause\n").unwrap();
        assert_eq!(status(&core)["status"], "paused");
        assert_eq!(control(&core, "pause\n"), Err(libc::EBUSY));
        control(&core, "resume\n").unwrap();
        control(&core, "TERM\n").unwrap();
        assert_eq!(control(&core, "bogus\n"), Err(libc::EINVAL));
        assert_eq!(control(&core, "start\n"), Err(libc::EBUSY), "running tasks do not start again");
        runtime.exit("web", 143);
        core.services().record_exit("web").unwrap();
        let s = status(&core);
        assert_eq!((s["status"].as_str(), s["exit_status"].as_i64()), (Some("stopped"), Some(143)));
        assert_eq!(control(&core, "KILL\n"), Err(libc::ESRCH));
        control(&core, "start\n").unwrap();
        assert_eq!(status(&core)["status"], "running");
        let calls = runtime.calls();
        assert_eq!(calls[1..], ["pause web", "resume web", "kill web SIGTERM", "start web"]);
    }

    #[test]
    fn wait_blocks_until_the_exit_and_events_carry_the_status() {
        let (_dir, runtime, core) = setup();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        core.services().on_event(move |e| {
            if let Event::TaskExited { wait_text, .. } = e {
                sink.lock().unwrap().push(wait_text.clone());
            }
        });
        let (_, fh) = core.create(ino_of(&core, "tasks"), OsStr::new("web"), libc::O_WRONLY).unwrap();
        core.release(fh).unwrap();
        let wait = ino_of(&core, "wait/web");
        let fh = core.open(wait, libc::O_RDONLY).unwrap();
        assert!(matches!(core.read(fh, 0, 4096).unwrap(), ReadOutcome::WaitForExit(_)));
        runtime.exit("web", 3);
        core.services().record_exit("web").unwrap();
        assert_eq!(core.read(fh, 0, 4096).unwrap(), ReadOutcome::Data(b"3\n".to_vec()));
        assert_eq!(*seen.lock().unwrap(), ["3\n"]);
        assert_eq!(core.getattr(wait).unwrap().size, 2);
    }

    #[test]
    fn rm_of_a_running_task_kills_records_the_exit_then_deletes() {
        let (_dir, runtime, core) = setup();
        let tasks = ino_of(&core, "tasks");
        let (_, fh) = core.create(tasks, OsStr::new("web"), libc::O_WRONLY).unwrap();
        core.release(fh).unwrap();
        control(&core, "pause\n").unwrap();
        core.unlink(tasks, OsStr::new("web")).unwrap();
        assert_eq!(runtime.calls()[2..], ["resume web", "kill web SIGKILL", "delete web"]);
        assert_eq!(core.lookup(tasks, OsStr::new("web")).unwrap_err().errno(), libc::ENOENT);
        core.rmdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    }

    #[test]
    fn views_list_tasks_and_reconcile_reports_what_happened_while_down() {
        let (_dir, runtime, core) = setup();
        let (_, fh) = core.create(ino_of(&core, "tasks"), OsStr::new("web"), libc::O_WRONLY).unwrap();
        core.release(fh).unwrap();
        let mut names = Vec::new();
        core.readdir(ino_of(&core, "logs/web"), 0, &mut |_, _, _, name| {
            names.push(name.to_owned());
            false
        })
        .unwrap();
        assert_eq!(names, [".", "..", "stdout", "stderr"]);
        let mut waits = Vec::new();
        core.readdir(ino_of(&core, "wait"), 2, &mut |_, _, _, name| {
            waits.push(name.to_owned());
            false
        })
        .unwrap();
        assert!(waits.is_empty(), "wait/ lists nothing (its files block a walk): {waits:?}");
        runtime.exit("web", 0);
        assert_eq!(core.services().reconcile_tasks().unwrap(), 1);
        assert_eq!(status(&core)["exit_status"], 0);
        runtime.observed.lock().unwrap().insert("web".into(), "unknown");
        assert_eq!(core.services().reconcile_tasks().unwrap(), 0, "stopped tasks are settled");
    }
}

#[test]
fn times_set_with_setattr_are_what_getattr_shows() {
    use crate::service::TimeSet;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let (_dir, core) = core();
    let web = core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap().ino;
    write_file(&core, ino_of(&core, "containers/web/labels"), TRUNC, b"a=0\n").unwrap();
    write_file(&core, ino_of(&core, "containers/web/spec"), TRUNC, b"{}").unwrap();
    let labels = ino_of(&core, "containers/web/labels");
    let spec = ino_of(&core, "containers/web/spec");
    let past = UNIX_EPOCH + Duration::new(1_577_934_245, 123);
    let at = TimeSet::At(crate::model::Timestamp::from(past));
    let times = super::Times { atime: Some(at), mtime: Some(at) };
    let none = Ownership::default();
    let shown = core.setattr(labels, None, None, none, times).unwrap();
    assert_eq!((shown.mtime, shown.atime), (past, past));
    assert_eq!(core.getattr(labels).unwrap().mtime, past);
    assert!(core.getattr(labels).unwrap().ctime > past);
    assert!(core.getattr(spec).unwrap().mtime > past, "other files follow the record");
    // Only the modification time (`touch -m`): the access time stays as shown.
    let later = past + Duration::from_secs(60);
    let only_m = super::Times { atime: None, mtime: Some(TimeSet::At(later.into())) };
    let shown = core.setattr(labels, None, None, none, only_m).unwrap();
    assert_eq!((shown.mtime, shown.atime), (later, past));
    // Directories take times too, until their record or entries change.
    assert_eq!(core.setattr(web, None, None, none, times).unwrap().mtime, past);
    assert_eq!(core.getattr(web).unwrap().mtime, past);
    // A new value is a change: now, for the file and its directory.
    let before_write = SystemTime::now();
    write_file(&core, labels, TRUNC, b"a=1\n").unwrap();
    assert!(core.getattr(labels).unwrap().mtime >= before_write);
    assert!(core.getattr(web).unwrap().mtime >= before_write);
    // UTIME_NOW sets now; read-only files refuse times as they refuse writes.
    let now = super::Times { atime: Some(TimeSet::Now), mtime: Some(TimeSet::Now) };
    core.setattr(spec, None, None, none, times).unwrap();
    assert!(core.setattr(spec, None, None, none, now).unwrap().mtime >= before_write);
    let info = ino_of(&core, "containers/web/info.json");
    assert_eq!(core.setattr(info, None, None, none, times).unwrap_err().errno(), libc::EACCES);
}

#[test]
fn events_is_reachable_by_name_only_and_each_handle_reads_its_own_stream() {
    let (_dir, core) = core();
    let events = core.lookup(ROOT_INO, OsStr::new("events")).unwrap();
    assert_eq!((events.ino, events.size, events.perm), (super::ino::Ino::RootFile(super::ino::RootFile::Events).number(), 0, 0o444));
    assert_eq!(core.getattr(events.ino).unwrap().ino, events.ino);
    assert!(listing(&core, ROOT_INO, 0).iter().all(|(_, name)| name != "events"), "not listed");
    assert_eq!(core.path_of(events.ino), "events");
    assert!(matches!(core.open(events.ino, libc::O_WRONLY), Err(FsError::ReadOnly("events"))));
    let fh = core.open(events.ino, libc::O_RDONLY).unwrap();
    assert_eq!(core.read(fh, 0, 4096).unwrap(), super::ReadOutcome::WaitForEvent, "nothing published yet");
    assert_eq!(core.stream_ready(fh).unwrap(), Some(false));
    core.mkdir(ino_of(&core, "containers"), OsStr::new("web")).unwrap();
    assert_eq!(core.stream_ready(fh).unwrap(), Some(true));
    let super::ReadOutcome::Data(line) = core.read(fh, 12345, 4096).unwrap() else { panic!("a line") };
    let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(value["topic"], "/containers/create");
    // Another handle starts at the oldest kept event; the first is at the end.
    let other = core.open(events.ino, libc::O_RDONLY).unwrap();
    assert!(matches!(core.read(other, 0, 4096).unwrap(), super::ReadOutcome::Data(_)));
    assert_eq!(core.read(fh, 0, 4096).unwrap(), super::ReadOutcome::WaitForEvent);
    let target = core.open(ino_of(&core, "containers/web/info.json"), libc::O_RDONLY).unwrap();
    assert_eq!(core.stream_ready(target).unwrap(), None, "other files never wait");
}
