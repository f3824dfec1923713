//! Labels: the `labels` file (`>` replaces, `>>` merges) and the `user.*` xattrs on the
//! object directory (docs/interface.md, "Labels").

use std::fs;

use serde_json::json;

use crate::common::*;

fn container(fx: &MountFixture, id: &str) -> std::path::PathBuf {
    fs::create_dir(fx.path(&format!("containers/{id}"))).unwrap();
    fx.path(&format!("containers/{id}"))
}

#[test]
fn truncating_write_replaces_and_output_is_sorted() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    put(&labels, "b=2\na=1\nc=x=y\n");
    // The key ends at the first '='; the rest belongs to the value.
    assert_eq!(read(&labels), "a=1\nb=2\nc=x=y\n");
    put(&labels, "z=26\n");
    assert_eq!(read(&labels), "z=26\n");
    assert_eq!(
        read_json(&fx.path("containers/web/info.json"))["labels"],
        json!({"z": "26"})
    );
}

#[test]
fn append_merges_and_empty_value_removes() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    put(&labels, "a=1\nc=3\n");
    append(&labels, "a=9\nd=4\n");
    assert_eq!(read(&labels), "a=9\nc=3\nd=4\n");
    append(&labels, "c=\n");
    assert_eq!(read(&labels), "a=9\nd=4\n");
    // Removing a key that is not there is not an error.
    append(&labels, "nope=\n");
    assert_eq!(read(&labels), "a=9\nd=4\n");
    fx.sh_ok("echo e=5 >> containers/web/labels");
    assert_eq!(read(&labels), "a=9\nd=4\ne=5\n");
}

#[test]
fn empty_lines_are_ignored_and_values_may_hold_spaces() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    put(&labels, "\n\nk=a value with spaces\n\nu=\u{e9}t\u{e9}\n\n");
    assert_eq!(read(&labels), "k=a value with spaces\nu=\u{e9}t\u{e9}\n");
}

#[test]
fn truncating_with_no_bytes_clears_the_labels() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    put(&labels, "a=1\nb=2\n");
    fx.sh_ok(": > containers/web/labels");
    // Cleared: the file is absent until labels are written again.
    assert_eq!(errno_of(fs::read(&labels)), libc::ENOENT);
    assert_eq!(ls(&fx.path("containers/web")), Vec::<String>::new());
    assert_eq!(
        read_json(&fx.path("containers/web/info.json"))["labels"],
        json!({})
    );
}

#[test]
fn key_plus_value_is_limited_to_4096_bytes() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    let ok = format!("key={}\n", "v".repeat(4096 - 3));
    put(&labels, &ok);
    assert_eq!(read(&labels), ok);

    let over = format!("key={}\n", "v".repeat(4096 - 2));
    let r = write_doc(&labels, over.as_bytes(), Mode::Truncate);
    assert!(matches!(r, Err((_, libc::EINVAL))), "4097 bytes gave {r:?}");
    let r = write_doc(&labels, over.as_bytes(), Mode::Append);
    assert!(
        matches!(r, Err((_, libc::EINVAL))),
        "4097 bytes appended gave {r:?}"
    );
    assert_eq!(read(&labels), ok, "a refused label changed the set");

    let r = set_xattr(
        &fx.path("containers/web"),
        "user.key",
        "v".repeat(4096 - 2).as_bytes(),
        0,
    );
    assert_eq!(errno_of(r), libc::EINVAL, "4097 bytes through setxattr");
    set_xattr(
        &fx.path("containers/web"),
        "user.k2",
        "v".repeat(4096 - 2).as_bytes(),
        0,
    )
    .unwrap();
}

#[test]
fn a_line_without_equals_is_refused_at_write() {
    let fx = MountFixture::new();
    let labels = container(&fx, "web").join("labels");
    put(&labels, "a=1\n");
    assert_eq!(
        write_doc(&labels, b"novalue\n", Mode::Truncate),
        Err((Stage::Write, libc::EINVAL))
    );
    assert_eq!(
        write_doc(&labels, b"b=2\nnovalue\n", Mode::Append),
        Err((Stage::Write, libc::EINVAL))
    );
    assert_eq!(
        write_doc(&labels, b"=nokey\n", Mode::Append).map_err(|e| e.1),
        Err(libc::EINVAL)
    );
    assert_eq!(read(&labels), "a=1\n");
}

#[test]
fn xattrs_through_getfattr_and_setfattr() {
    let fx = MountFixture::new();
    container(&fx, "web");
    fx.sh_ok("setfattr -n user.env -v prod containers/web");
    fx.sh_ok("setfattr -n user.team -v infra containers/web");
    assert_eq!(
        read(&fx.path("containers/web/labels")),
        "env=prod\nteam=infra\n"
    );

    let out = fx.sh_ok("getfattr -d containers/web");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("user.")).collect();
    assert_eq!(
        lines,
        ["user.env=\"prod\"", "user.team=\"infra\""],
        "getfattr -d output:\n{out}"
    );
    assert_eq!(
        fx.sh_ok("getfattr --only-values -n user.env containers/web"),
        "prod"
    );

    fx.sh_ok("setfattr -x user.env containers/web");
    assert_eq!(read(&fx.path("containers/web/labels")), "team=infra\n");
    let (code, _, err) = fx.sh("getfattr -n user.env containers/web");
    assert_ne!(code, 0, "getfattr found a removed label");
    // getfattr words ENODATA as "No such attribute".
    assert!(
        err.contains("No such attribute"),
        "getfattr of a removed label: {err}"
    );
}

#[test]
fn xattrs_through_libc() {
    let fx = MountFixture::new();
    let dir = container(&fx, "web");
    put(&dir.join("labels"), "from.file=1\n");

    set_xattr(&dir, "user.env", b"prod", 0).unwrap();
    assert_eq!(get_xattr(&dir, "user.env").unwrap(), b"prod");
    assert_eq!(get_xattr(&dir, "user.from.file").unwrap(), b"1");
    let mut names = list_xattr(&dir).unwrap();
    names.sort();
    assert_eq!(names, ["user.env", "user.from.file"]);

    // XATTR_REPLACE needs an existing label; XATTR_CREATE a new one.
    set_xattr(&dir, "user.env", b"staging", libc::XATTR_REPLACE).unwrap();
    assert_eq!(
        errno_of(set_xattr(&dir, "user.nope", b"x", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    set_xattr(&dir, "user.new", b"n", libc::XATTR_CREATE).unwrap();
    assert_eq!(
        errno_of(set_xattr(&dir, "user.new", b"m", libc::XATTR_CREATE)),
        libc::EEXIST
    );

    remove_xattr(&dir, "user.from.file").unwrap();
    assert_eq!(errno_of(get_xattr(&dir, "user.from.file")), libc::ENODATA);
    assert_eq!(
        errno_of(remove_xattr(&dir, "user.from.file")),
        libc::ENODATA
    );
    assert_eq!(errno_of(get_xattr(&dir, "user.never")), libc::ENODATA);

    assert_eq!(read(&dir.join("labels")), "env=staging\nnew=n\n");
    assert_eq!(
        read_json(&dir.join("info.json"))["labels"]["env"],
        "staging"
    );
}

#[test]
fn image_labels_work_once_the_image_has_a_target() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/reg/app")).unwrap();
    put(&fx.path("images/reg/app/target"), descriptor(1).to_string());
    put(&fx.path("images/reg/app/labels"), "b=2\na=1\n");
    assert_eq!(read(&fx.path("images/reg/app/labels")), "a=1\nb=2\n");
    set_xattr(&fx.path("images/reg/app"), "user.c", b"3", 0).unwrap();
    assert_eq!(read(&fx.path("images/reg/app/labels")), "a=1\nb=2\nc=3\n");
    assert_eq!(
        read_json(&fx.path("images/reg/app/info.json"))["labels"],
        json!({"a": "1", "b": "2", "c": "3"})
    );
}

#[test]
fn labels_in_an_image_directory_without_target_are_kept() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/reg/app")).unwrap();
    let dir = fx.path("images/reg/app");
    // Every way of writing labels works before the target: `>`, `>>` and the xattrs.
    put(&dir.join("labels"), "a=1\n");
    append(&dir.join("labels"), "b=2\n");
    set_xattr(&dir, "user.c", b"3", 0).unwrap();
    assert_eq!(read(&dir.join("labels")), "a=1\nb=2\nc=3\n");
    assert_eq!(get_xattr(&dir, "user.b").unwrap(), b"2");
    assert_eq!(ls(&dir), ["labels"]);
    assert_eq!(errno_of(fs::metadata(dir.join("info.json"))), libc::ENOENT, "not an image yet");

    // With a target it is an image, the labels kept.
    put(&dir.join("target"), descriptor(1).to_string());
    assert_eq!(ls(&dir), ["labels", "target"]);
    assert_eq!(
        read_json(&dir.join("info.json"))["labels"],
        json!({"a": "1", "b": "2", "c": "3"})
    );
    // `rm target` makes it not an image again, and keeps its labels.
    fs::remove_file(dir.join("target")).unwrap();
    assert_eq!(ls(&dir), ["labels"]);
    // (The kernel is told to forget the cached info.json; it may take it a moment.)
    wait_until(DAEMON_DEADLINE, "info.json to be gone", || fs::metadata(dir.join("info.json")).is_err());
    assert_eq!(errno_of(fs::metadata(dir.join("info.json"))), libc::ENOENT, "no longer an image");
    assert_eq!(read(&dir.join("labels")), "a=1\nb=2\nc=3\n");
    // Without labels either, a bare prefix directory again.
    fs::remove_file(dir.join("labels")).unwrap();
    assert_eq!(ls(&dir), Vec::<String>::new());
    assert_eq!(errno_of(get_xattr(&dir, "user.a")), libc::ENODATA);
    fs::remove_dir(&dir).unwrap();
}
