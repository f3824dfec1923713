//! The kernel's caches as FsCore decides them, without a mount: which opens may keep the
//! pages, what a change the kernel was not told of does, which attributes are cached, and
//! the lookups a `readdirplus` hands out.

use std::ffi::OsStr;
use std::sync::Arc;

use super::attr::{CACHED_ATTR_TTL, OBJECT_ATTR_TTL};
use super::ino::ROOT_INO;
use super::page_cache::{OpenMode, Served};
use super::FsCore;
use crate::store::testing::temp_store;

fn core() -> (tempfile::TempDir, FsCore) {
    let (dir, store) = temp_store();
    (dir, FsCore::over_store(Arc::new(store)))
}

fn lookup(core: &FsCore, parent: u64, name: &str) -> u64 {
    core.lookup(parent, OsStr::new(name)).unwrap_or_else(|e| panic!("{name}: {e}")).ino
}

fn open(core: &FsCore, ino: u64, flags: i32) -> (u64, OpenMode) {
    let mut opened = None;
    core.open_and_answer(ino, flags, |r| opened = Some(r.expect("open")));
    opened.expect("answered")
}

fn read_all(core: &FsCore, fh: u64) -> String {
    match core.read(fh, 0, 1 << 20).expect("read") {
        super::ReadOutcome::Data(bytes) => String::from_utf8(bytes).expect("utf-8"),
        other => panic!("{other:?}"),
    }
}

fn relabel(core: &FsCore, labels: u64, text: &str) {
    let fh = core.open(labels, libc::O_WRONLY | libc::O_TRUNC).expect("open labels");
    core.write(fh, 0, text.as_bytes()).expect("write labels");
    core.flush(fh).expect("flush");
    core.release(fh).expect("release");
}

/// A container `web` with one label: (its directory, `labels`, `info.json`).
fn web(core: &FsCore) -> (u64, u64, u64) {
    let containers = lookup(core, ROOT_INO, "containers");
    let dir = core.mkdir(containers, OsStr::new("web")).expect("mkdir").ino;
    let labels = super::ino::Ino::File(super::ino::Ino::decode(dir).unwrap().node(), super::ino::AttrFile::Labels).number();
    relabel(core, labels, "app=web\n");
    (dir, labels, lookup(core, dir, "info.json"))
}

#[test]
fn readers_of_record_files_go_through_the_cache_and_writers_never() {
    let (_dir, core) = core();
    let (_, labels, info) = web(&core);
    assert_eq!(open(&core, info, libc::O_RDONLY).1, OpenMode::Cached);
    assert_eq!(open(&core, labels, libc::O_RDONLY).1, OpenMode::Cached);
    assert_eq!(open(&core, labels, libc::O_WRONLY | libc::O_APPEND).1, OpenMode::Direct);
    assert_eq!(open(&core, labels, libc::O_RDWR).1, OpenMode::Direct);
    let events = lookup(&core, ROOT_INO, "events");
    assert_eq!(open(&core, events, libc::O_RDONLY).1, OpenMode::Direct, "a stream is never cached");
}

#[test]
fn a_read_through_the_cache_shows_the_content_as_of_that_read() {
    let (_dir, core) = core();
    let (_, labels, _) = web(&core);
    let (fh, mode) = open(&core, labels, libc::O_RDONLY);
    assert_eq!(mode, OpenMode::Cached);
    relabel(&core, labels, "app=db\n");
    // Never the snapshot of the open: that would put older content in the kernel's pages
    // after the change's invalidation.
    assert_eq!(read_all(&core, fh), "app=db\n");
    core.release(fh).unwrap();
}

#[test]
fn a_change_the_kernel_was_not_told_of_makes_the_next_open_read_direct() {
    // No notifier thread here: the invalidation `relabel` asks for is never sent, as if the
    // daemon had missed a change.
    let (_dir, core) = core();
    let (_, labels, info) = web(&core);
    let (fh, _) = open(&core, info, libc::O_RDONLY);
    assert!(read_all(&core, fh).contains("\"app\": \"web\""));
    core.release(fh).unwrap();
    assert!(matches!(core.page_cache().served(info), Some(Served::Filled(_))));
    relabel(&core, labels, "app=db\n");
    let (fh, mode) = open(&core, info, libc::O_RDONLY);
    assert_eq!(mode, OpenMode::Direct, "the pages may hold the old document");
    assert!(read_all(&core, fh).contains("\"app\": \"db\""));
    core.release(fh).unwrap();
    // Once the invalidation that open asked for was sent, the cache is used again.
    core.page_cache().invalidating(info);
    core.page_cache().invalidated(info);
    assert_eq!(open(&core, info, libc::O_RDONLY).1, OpenMode::Cached);
}

#[test]
fn an_unchanged_file_keeps_its_pages_across_opens() {
    let (_dir, core) = core();
    let (_, _, info) = web(&core);
    for _ in 0..3 {
        let (fh, mode) = open(&core, info, libc::O_RDONLY);
        assert_eq!(mode, OpenMode::Cached);
        read_all(&core, fh);
        core.release(fh).unwrap();
    }
}

#[test]
fn object_attributes_are_cached_and_the_rest_are_not() {
    let (_dir, core) = core();
    let (dir, labels, info) = web(&core);
    for ino in [dir, labels, info] {
        assert_eq!(core.getattr(ino).unwrap().ttl, CACHED_ATTR_TTL, "inode {ino}");
    }
    let events = lookup(&core, ROOT_INO, "events");
    assert_eq!(core.getattr(events).unwrap().ttl, OBJECT_ATTR_TTL);
}

#[test]
fn readdirplus_counts_a_lookup_for_each_entry_it_hands_out_but_dot_and_dotdot() {
    let (_dir, core) = core();
    let containers = lookup(&core, ROOT_INO, "containers");
    let mut children = Vec::new();
    for name in ["a", "b", "c"] {
        let ino = core.mkdir(containers, OsStr::new(name)).unwrap().ino;
        core.forget(ino, 1); // the mkdir's reference
        assert!(!core.inodes().is_known(ino));
        children.push(ino);
    }
    let mut listed = Vec::new();
    core.readdirplus(containers, 0, &mut |attr, _, name| {
        // The buffer is full at `c`: it is not handed out, so not counted.
        if name == "c" {
            return true;
        }
        assert_eq!(attr.ttl, CACHED_ATTR_TTL, "{name}");
        listed.push((name.to_owned(), attr.ino));
        false
    })
    .unwrap();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [".", "..", "a", "b"]);
    assert_eq!(listed[2].1, children[0]);
    assert!(core.inodes().is_known(children[0]) && core.inodes().is_known(children[1]));
    assert!(!core.inodes().is_known(children[2]), "not handed out, not counted");
    // Exactly one reference each: one forget drops it.
    core.forget(children[0], 1);
    assert!(!core.inodes().is_known(children[0]));
    // `.` was not counted: the lookup of `containers` is its only reference.
    core.forget(containers, 1);
    assert!(!core.inodes().is_known(containers));
}
