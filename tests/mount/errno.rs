//! One test (or a few) per row of the Errors table in docs/interface.md, plus the
//! "When a write is judged and committed" rules: a refused write leaves the previous value
//! and logs one line naming the path and the errno.
//!
//! Not reachable from outside the daemon, so not here: `EBUSY` needs a task and the task
//! runtime has not landed (tasks/ is always empty); `ENOSPC` needs a full LMDB map and
//! `EIO` an internal failure, neither of which the CLI can provoke.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, PermissionsExt};

use crate::common::*;

/// The start of a document, for assertion messages (some are megabytes).
fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    if text.chars().count() > 80 {
        let head: String = text.chars().take(80).collect();
        format!("{head:?}... ({} bytes)", data.len())
    } else {
        format!("{text:?}")
    }
}

/// The content of `path`, or `None` when the file is absent (an attribute file without a
/// value); any other failure panics.
fn content_or_absent(path: &std::path::Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// Writes `data` to `rel` and checks the refusal: `errno` (at `stage` when given), the
/// previous content unchanged (an absent file stays absent), and the daemon's log line.
fn assert_refused(
    fx: &MountFixture,
    rel: &str,
    data: &[u8],
    mode: Mode,
    stage: Option<Stage>,
    errno: i32,
) {
    let path = fx.path(rel);
    let before = content_or_absent(&path);
    let got = write_doc(&path, data, mode);
    match (got, stage) {
        (Err((s, e)), Some(want)) => assert_eq!(
            (s, errno_name(e)),
            (want, errno_name(errno)),
            "{rel} <- {}",
            preview(data)
        ),
        (Err((_, e)), None) => {
            assert_eq!(
                errno_name(e),
                errno_name(errno),
                "{rel} <- {}",
                preview(data)
            )
        }
        (Ok(()), _) => panic!("{rel} accepted {}", preview(data)),
    }
    let after = content_or_absent(&path);
    let show = |c: &Option<Vec<u8>>| c.as_deref().map_or("(absent)".to_string(), preview);
    assert!(
        after == before,
        "{rel} changed by a refused write: {} -> {}",
        show(&before),
        show(&after)
    );
    fx.assert_logged(rel, errno);
}

fn with_container(fx: &MountFixture) {
    fs::create_dir(fx.path("containers/web")).unwrap();
}

fn with_image(fx: &MountFixture) {
    fs::create_dir(fx.path("images/app")).unwrap();
    put(&fx.path("images/app/target"), descriptor(1).to_string());
}

fn desc_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut d = descriptor(9);
    d[field] = value;
    d.to_string().into_bytes()
}

// ---- EINVAL -------------------------------------------------------------------------

#[test]
fn einval_invalid_container_identifier() {
    let fx = MountFixture::new();
    for id in ["-a", "a..b", "a b", &"x".repeat(77)] {
        assert_eq!(
            errno_of(fs::create_dir(fx.path(&format!("containers/{id}")))),
            libc::EINVAL,
            "{id:?}"
        );
    }
    assert_eq!(ls(&fx.path("containers")), Vec::<String>::new());
}

#[test]
fn einval_invalid_image_name_component() {
    let fx = MountFixture::new();
    for name in ["target", "labels", "info.json"] {
        assert_eq!(
            errno_of(fs::create_dir(fx.path(&format!("images/{name}")))),
            libc::EINVAL,
            "{name}"
        );
    }
    assert_eq!(ls(&fx.path("images")), Vec::<String>::new());
}

#[test]
fn einval_json_syntax_error_at_write() {
    let fx = MountFixture::new();
    with_image(&fx);
    assert_refused(
        &fx,
        "images/app/target",
        b"{bad",
        Mode::Truncate,
        Some(Stage::Write),
        libc::EINVAL,
    );
    with_container(&fx);
    assert_refused(
        &fx,
        "containers/web/spec",
        b"{\"a\":1,,",
        Mode::Truncate,
        Some(Stage::Write),
        libc::EINVAL,
    );
}

#[test]
fn einval_echo_bad_json_prints_an_error_in_the_shell() {
    let fx = MountFixture::new();
    with_image(&fx);
    let (code, out, err) = fx.sh("echo '{bad' > images/app/target");
    assert_ne!(
        code, 0,
        "the shell saw no error\nstdout: {out}\nstderr: {err}"
    );
    // dash words every failed builtin write as "I/O error", so only its presence counts.
    assert!(!err.trim().is_empty(), "no error printed");
    let (code, _, err) = fx.sh("env echo '{bad' > images/app/target");
    assert_ne!(code, 0, "env echo of bad JSON into target succeeded");
    assert!(
        err.contains("Invalid argument"),
        "coreutils echo does not report EINVAL: {err:?}"
    );
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1));
    fx.assert_logged("images/app/target", libc::EINVAL);
}

#[test]
fn einval_descriptor_with_bad_digest_at_write() {
    let fx = MountFixture::new();
    with_image(&fx);
    for digest in [
        "md5:d41d8cd98f00b204e9800998ecf8427e".to_string(),
        format!("sha256:{}", "AB".repeat(32)),
        format!("sha256:{}", "ab".repeat(31)),
        format!("sha512:{}", "ab".repeat(32)),
        "sha256".to_string(),
    ] {
        let data = desc_with("digest", serde_json::Value::String(digest));
        assert_refused(
            &fx,
            "images/app/target",
            &data,
            Mode::Truncate,
            Some(Stage::Write),
            libc::EINVAL,
        );
    }
}

#[test]
fn einval_descriptor_with_negative_size_at_write() {
    let fx = MountFixture::new();
    with_image(&fx);
    let data = desc_with("size", serde_json::json!(-1));
    assert_refused(
        &fx,
        "images/app/target",
        &data,
        Mode::Truncate,
        Some(Stage::Write),
        libc::EINVAL,
    );
}

#[test]
fn einval_descriptor_missing_or_mistyped_fields() {
    let fx = MountFixture::new();
    with_image(&fx);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for field in ["mediaType", "digest", "size"] {
        let mut d = descriptor(9);
        d.as_object_mut().unwrap().remove(field);
        cases.push(d.to_string().into_bytes());
    }
    cases.push(desc_with("mediaType", serde_json::json!("")));
    cases.push(desc_with("size", serde_json::json!(1.5)));
    cases.push(desc_with("size", serde_json::json!("12")));
    cases.push(desc_with("annotations", serde_json::json!({"k": 1})));
    cases.push(desc_with("urls", serde_json::json!("https://x")));
    cases.push(desc_with(
        "platform",
        serde_json::json!({"architecture": "amd64"}),
    ));
    cases.push(b"[1]".to_vec());
    for data in cases {
        assert_refused(
            &fx,
            "images/app/target",
            &data,
            Mode::Truncate,
            None,
            libc::EINVAL,
        );
    }
}

#[test]
fn einval_incomplete_document_at_close() {
    let fx = MountFixture::new();
    with_image(&fx);
    // Direct file I/O so the close's own result is visible (std's drop ignores it).
    let mut file = File::create(fx.path("images/app/target")).unwrap();
    std::io::Write::write_all(&mut file, br#"{"mediaType":"#).unwrap();
    assert_eq!(
        close_checked(file),
        Err(libc::EINVAL),
        "close of an incomplete target"
    );
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1));
    fx.assert_logged("images/app/target", libc::EINVAL);

    with_container(&fx);
    put(&fx.path("containers/web/spec"), r#"{"ociVersion":"1.2.0"}"#);
    assert_refused(
        &fx,
        "containers/web/spec",
        br#"{"ociVersion":"1."#,
        Mode::Truncate,
        Some(Stage::Close),
        libc::EINVAL,
    );
}

#[test]
fn einval_empty_target_at_close() {
    let fx = MountFixture::new();
    with_image(&fx);
    assert_refused(
        &fx,
        "images/app/target",
        b"",
        Mode::Truncate,
        Some(Stage::Close),
        libc::EINVAL,
    );

    // In a prefix directory an empty target does not create the image.
    fs::create_dir(fx.path("images/bare")).unwrap();
    assert_eq!(
        write_doc(&fx.path("images/bare/target"), b"", Mode::Truncate).map_err(|e| e.1),
        Err(libc::EINVAL)
    );
    assert_eq!(ls(&fx.path("images/bare")), Vec::<String>::new());
}

#[test]
fn einval_truncate_target_to_zero() {
    let fx = MountFixture::new();
    with_image(&fx);
    // truncate commits the empty value at once, and an empty target is invalid.
    let (code, _, err) = fx.sh("truncate -s 0 images/app/target");
    assert_ne!(code, 0, "truncate -s 0 of target succeeded");
    assert!(err.contains("Invalid argument"), "{err:?}");
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1));
}

#[test]
fn einval_spec_not_an_object_at_write() {
    let fx = MountFixture::new();
    with_container(&fx);
    put(&fx.path("containers/web/spec"), r#"{"ociVersion":"1.2.0"}"#);
    for bad in [&b"[1,2]"[..], b"\"spec\"", b"7 "] {
        assert_refused(
            &fx,
            "containers/web/spec",
            bad,
            Mode::Truncate,
            Some(Stage::Write),
            libc::EINVAL,
        );
    }
}

#[test]
fn einval_label_line_without_equals_at_write() {
    let fx = MountFixture::new();
    with_container(&fx);
    put(&fx.path("containers/web/labels"), "a=1\n");
    assert_refused(
        &fx,
        "containers/web/labels",
        b"novalue\n",
        Mode::Truncate,
        Some(Stage::Write),
        libc::EINVAL,
    );
    assert_refused(
        &fx,
        "containers/web/labels",
        b"b=2\nnovalue\n",
        Mode::Append,
        Some(Stage::Write),
        libc::EINVAL,
    );
}

#[test]
fn einval_label_over_4096_bytes() {
    let fx = MountFixture::new();
    with_container(&fx);
    let line = format!("k={}\n", "v".repeat(4096));
    assert_refused(
        &fx,
        "containers/web/labels",
        line.as_bytes(),
        Mode::Append,
        None,
        libc::EINVAL,
    );
}

#[test]
fn einval_second_line_in_a_one_line_file_at_write() {
    let fx = MountFixture::new();
    with_container(&fx);
    // Unset fields (the refusal leaves them absent), then set ones (it leaves the value).
    for set in [false, true] {
        if set {
            set_container_fields(&fx, "web");
        }
        for field in ["image", "snapshotter", "snapshot", "runtime"] {
            let rel = format!("containers/web/{field}");
            assert_refused(
                &fx,
                &rel,
                b"one\ntwo\n",
                Mode::Truncate,
                Some(Stage::Write),
                libc::EINVAL,
            );
        }
    }
}

#[test]
fn einval_invalid_one_line_values() {
    let fx = MountFixture::new();
    with_container(&fx);
    let long256 = "r".repeat(256);
    let long4097 = "s".repeat(4097);
    let cases: [(&str, &str); 7] = [
        ("snapshotter", "a/b"),
        ("snapshotter", &long256),
        ("runtime", &long256),
        ("snapshot", &long4097),
        ("snapshot", "bell\u{7}"),
        ("image", "a//b"),
        ("image", "reg/target"),
    ];
    for (field, value) in cases {
        let rel = format!("containers/web/{field}");
        assert_refused(
            &fx,
            &rel,
            format!("{value}\n").as_bytes(),
            Mode::Truncate,
            None,
            libc::EINVAL,
        );
    }
    // The same values are refused over set fields, which keep their values.
    set_container_fields(&fx, "web");
    for (field, value) in cases {
        assert_refused(
            &fx,
            &format!("containers/web/{field}"),
            format!("{value}\n").as_bytes(),
            Mode::Truncate,
            None,
            libc::EINVAL,
        );
    }
    // An empty snapshotter or runtime is valid: unset, the default applies.
    fx.sh_ok("echo > containers/web/snapshotter && truncate -s 0 containers/web/runtime");
    for field in ["snapshotter", "runtime"] {
        assert_eq!(
            errno_of(fs::read(fx.path(&format!("containers/web/{field}")))),
            libc::ENOENT,
            "{field} cleared"
        );
    }
    let info = read_json(&fx.path("containers/web/info.json"));
    assert_eq!((&info["snapshotter"], &info["runtime"]), (&serde_json::json!(""), &serde_json::json!("")), "{info}");
}

// Labels in an image directory without a target are no longer EINVAL: they are kept,
// see images::labels_may_come_before_the_target_and_are_kept.

// ---- EEXIST ---------------------------------------------------------------------------

#[test]
fn eexist_mkdir_of_an_existing_name() {
    let fx = MountFixture::new();
    with_container(&fx);
    with_image(&fx);
    fs::create_dir(fx.path("images/prefix")).unwrap();
    for rel in [
        "containers/web",
        "images/app",
        "images/prefix",
        "images",
        "containers",
    ] {
        assert_eq!(
            errno_of(fs::create_dir(fx.path(rel))),
            libc::EEXIST,
            "{rel}"
        );
    }
}

#[test]
fn eexist_xattr_create_on_an_existing_label() {
    let fx = MountFixture::new();
    with_container(&fx);
    put(&fx.path("containers/web/labels"), "env=prod\n");
    let r = set_xattr(
        &fx.path("containers/web"),
        "user.env",
        b"dev",
        libc::XATTR_CREATE,
    );
    assert_eq!(errno_of(r), libc::EEXIST);
    assert_eq!(read(&fx.path("containers/web/labels")), "env=prod\n");
}

// ---- ENOENT ---------------------------------------------------------------------------

#[test]
fn enoent_for_names_that_do_not_exist() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/bare")).unwrap();
    for rel in [
        "nope",
        "containers/nope",
        "containers/nope/spec",
        "images/nope",
        "images/bare/target",
        "images/bare/info.json",
        "tasks/nope",
    ] {
        assert_eq!(
            errno_of(fs::metadata(fx.path(rel))),
            libc::ENOENT,
            "stat {rel}"
        );
    }
    assert_eq!(
        errno_of(fs::read(fx.path("containers/nope/spec"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs::remove_dir(fx.path("containers/nope"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs::remove_dir(fx.path("images/nope"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(File::create(fx.path("containers/nope/labels"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(get_xattr(&fx.path("containers/nope"), "user.a")),
        libc::ENOENT
    );
}

// ---- ENOTEMPTY ------------------------------------------------------------------------

#[test]
fn enotempty_rmdir_of_an_image_directory_with_children() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/app/child")).unwrap();
    put(&fx.path("images/app/target"), descriptor(1).to_string());
    assert_eq!(
        errno_of(fs::remove_dir(fx.path("images/app"))),
        libc::ENOTEMPTY
    );
    assert_eq!(read_json(&fx.path("images/app/target")), descriptor(1));
    fs::create_dir_all(fx.path("images/p/q/r")).unwrap();
    assert_eq!(
        errno_of(fs::remove_dir(fx.path("images/p/q"))),
        libc::ENOTEMPTY
    );
    assert!(fx.path("images/p/q/r").is_dir());
}

// ---- EBUSY ----------------------------------------------------------------------------

#[test]
fn ebusy_cannot_arise_without_tasks_so_an_idle_container_is_removable() {
    // The EBUSY row needs a task; until the task runtime lands tasks/ stays empty, and
    // rmdir of a container must then never be EBUSY.
    let fx = MountFixture::new();
    with_container(&fx);
    assert_eq!(ls(&fx.path("tasks")), Vec::<String>::new());
    fs::remove_dir(fx.path("containers/web")).unwrap();
}

// ---- EPERM ----------------------------------------------------------------------------

#[test]
fn eperm_files_directly_under_images_containers_or_the_root() {
    let fx = MountFixture::new();
    for rel in ["images/file", "containers/file", "file"] {
        assert_eq!(
            errno_of(File::create(fx.path(rel))),
            libc::EPERM,
            "create {rel}"
        );
    }
    assert_eq!(ls(&fx.path("")), ["containers", "content", "images", "logs", "snapshots", "tasks", "wait"]);
}

#[test]
fn eperm_other_files_inside_an_object_directory() {
    let fx = MountFixture::new();
    with_container(&fx);
    with_image(&fx);
    // Any other name in an object directory is a temporary file (for an atomic replace by
    // rename): it can be written and removed, is not listed, and cannot leave its
    // directory (EXDEV, so mv copies instead).
    for rel in ["containers/web/notes", "images/app/notes"] {
        fs::write(fx.path(rel), "draft\n").unwrap();
        assert_eq!(read(&fx.path(rel)), "draft\n");
        assert!(!ls(fx.path(rel).parent().unwrap()).contains(&"notes".to_owned()), "{rel} is not listed");
        assert_eq!(errno_of(fs::rename(fx.path(rel), fx.path("containers/elsewhere"))), libc::EXDEV);
        fs::remove_file(fx.path(rel)).unwrap();
        assert_eq!(errno_of(fs::metadata(fx.path(rel))), libc::ENOENT);
    }
    // A container directory has no `target`: that name is a temporary file there too, but
    // an attribute file cannot be renamed, nor made elsewhere.
    assert_eq!(errno_of(fs::rename(fx.path("images/app/target"), fx.path("images/app/copy"))), libc::EPERM);
    assert_eq!(errno_of(File::create(fx.path("content/notes"))), libc::EPERM);
    assert_eq!(errno_of(File::create(fx.path("containers/notes"))), libc::EPERM);
}

#[test]
fn eperm_mkdir_inside_a_container_or_at_the_root() {
    let fx = MountFixture::new();
    with_container(&fx);
    assert_eq!(
        errno_of(fs::create_dir(fx.path("containers/web/sub"))),
        libc::EPERM
    );
    assert_eq!(errno_of(fs::create_dir(fx.path("newtop"))), libc::EPERM);
    // Nothing was made: a new container lists nothing (info.json is not listed).
    assert_eq!(ls(&fx.path("containers/web")), Vec::<String>::new());
    assert_eq!(ls(&fx.path("")), ["containers", "content", "images", "logs", "snapshots", "tasks", "wait"]);
}

#[test]
fn eperm_rename() {
    let fx = MountFixture::new();
    with_container(&fx);
    set_container_fields(&fx, "web");
    with_image(&fx);
    assert_eq!(
        errno_of(fs::rename(
            fx.path("containers/web"),
            fx.path("containers/web2")
        )),
        libc::EPERM
    );
    assert_eq!(
        errno_of(fs::rename(fx.path("images/app"), fx.path("images/app2"))),
        libc::EPERM
    );
    // temp files: changes with rename support
    assert_eq!(
        errno_of(fs::rename(
            fx.path("containers/web/image"),
            fx.path("containers/web/snapshot")
        )),
        libc::EPERM
    );
    assert_eq!(ls(&fx.path("containers")), ["web"]);
    // Both fields keep their values.
    assert_eq!(read(&fx.path("containers/web/image")), "docker.io/library/busybox:1.36\n");
    assert_eq!(read(&fx.path("containers/web/snapshot")), "web-root\n");
}

#[test]
fn eperm_link_symlink_mknod() {
    let fx = MountFixture::new();
    with_container(&fx);
    set_container_fields(&fx, "web");
    assert_eq!(
        errno_of(fs::hard_link(
            fx.path("containers/web/spec"),
            fx.path("containers/web/spec2")
        )),
        libc::EPERM
    );
    assert_eq!(
        errno_of(symlink("spec", fx.path("containers/web/link"))),
        libc::EPERM
    );
    assert_eq!(
        errno_of(symlink("web", fx.path("containers/link"))),
        libc::EPERM
    );
    let fifo = std::ffi::CString::new(
        fx.path("containers/web/fifo")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(fifo.as_ptr(), libc::S_IFIFO | 0o644, 0) };
    assert_eq!(rc, -1, "mknod succeeded");
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(ls(&fx.path("containers/web")), CONTAINER_FIELD_FILES);
}

#[test]
fn eperm_chmod_and_chown() {
    let fx = MountFixture::new();
    with_container(&fx);
    put(&fx.path("containers/web/spec"), r#"{"ociVersion":"1.2.0"}"#);
    for rel in ["containers/web/spec", "containers/web"] {
        let r = fs::set_permissions(fx.path(rel), fs::Permissions::from_mode(0o600));
        assert_eq!(errno_of(r), libc::EPERM, "chmod {rel}");
        let r = std::os::unix::fs::chown(fx.path(rel), Some(1), Some(1));
        assert_eq!(errno_of(r), libc::EPERM, "chown {rel}");
    }
    let md = fs::metadata(fx.path("containers/web/spec")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o644);
}

// ---- EACCES ---------------------------------------------------------------------------

#[test]
fn eacces_writing_info_json() {
    let fx = MountFixture::new();
    with_container(&fx);
    let before = read(&fx.path("containers/web/info.json"));
    for mode in [Mode::Truncate, Mode::Append, Mode::InPlace] {
        let r = write_doc(&fx.path("containers/web/info.json"), b"{}", mode);
        assert!(matches!(r, Err((_, libc::EACCES))), "{mode:?} gave {r:?}");
    }
    let (code, _, err) = fx.sh("truncate -s 0 containers/web/info.json");
    assert_ne!(code, 0, "truncate -s 0 of info.json succeeded");
    assert!(err.contains("Permission denied"), "{err:?}");
    assert_eq!(read(&fx.path("containers/web/info.json")), before);
    // Refused by the daemon itself (root passes the kernel's mode check), so it logs.
    fx.assert_logged("containers/web/info.json", libc::EACCES);
}

#[test]
fn eacces_any_change_by_a_non_root_user() {
    let fx = MountFixture::with_args(&["--allow-other"]);
    with_container(&fx);
    put(&fx.path("containers/web/runtime"), "runc\n");
    put(&fx.path("containers/web/labels"), "keep=1\n");
    with_image(&fx);
    let mnt = fx.mnt();

    // Reading is allowed.
    let (code, out, err) = sh_as_nobody(
        &mnt,
        "cat containers/web/runtime && ls containers && cat images/app/info.json >/dev/null",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "runc\nweb\n"),
        "reads as uid 65534 failed: {err}"
    );

    for script in [
        "echo a=b > containers/web/labels",
        "echo a=b >> containers/web/labels",
        "echo crun > containers/web/runtime",
        // An unset field: creating its file is a change too.
        "echo native > containers/web/snapshotter",
        // rm clears a field: a change.
        "rm containers/web/runtime",
        "mkdir containers/other",
        "mkdir images/other",
        "rmdir containers/web",
        "setfattr -n user.a -v b containers/web",
        "truncate -s 0 containers/web/labels",
    ] {
        let (code, out, err) = sh_as_nobody(&mnt, script);
        assert_ne!(code, 0, "{script:?} succeeded as uid 65534: {out}");
        assert!(
            err.contains("Permission denied"),
            "{script:?} as uid 65534: {err:?}"
        );
    }
    assert_eq!(read(&fx.path("containers/web/labels")), "keep=1\n");
    assert_eq!(read(&fx.path("containers/web/runtime")), "runc\n");
    assert_eq!(ls(&fx.path("containers/web")), ["labels", "runtime"]);
    assert_eq!(ls(&fx.path("containers")), ["web"]);
    assert_eq!(ls(&fx.path("images")), ["app"]);
}

#[test]
fn eacces_for_other_users_without_allow_other() {
    let fx = MountFixture::new();
    let (code, _, err) = sh_as_nobody(fx.root(), "ls mnt/containers");
    assert_ne!(
        code, 0,
        "uid 65534 could list a mount made without --allow-other"
    );
    assert!(err.contains("Permission denied"), "{err:?}");
}

// ---- EFBIG ----------------------------------------------------------------------------

#[test]
fn efbig_spec_over_4_mib() {
    let fx = MountFixture::new();
    with_container(&fx);
    // A large spec under the limit is fine.
    let big = format!(
        r#"{{"ociVersion":"1.2.0","annotations":{{"pad":"{}"}}}}"#,
        "p".repeat(3 << 20)
    );
    put(&fx.path("containers/web/spec"), &big);
    assert_eq!(
        read_json(&fx.path("containers/web/spec"))["ociVersion"],
        "1.2.0"
    );

    let over = format!(
        r#"{{"ociVersion":"1.2.0","annotations":{{"pad":"{}"}}}}"#,
        "p".repeat((4 << 20) + 1024)
    );
    assert_refused(
        &fx,
        "containers/web/spec",
        over.as_bytes(),
        Mode::Truncate,
        None,
        libc::EFBIG,
    );
}

#[test]
fn efbig_labels_and_target_over_1_mib() {
    let fx = MountFixture::new();
    with_container(&fx);
    with_image(&fx);
    put(&fx.path("containers/web/labels"), "keep=1\n");
    let mut labels = String::new();
    let mut i = 0;
    while labels.len() <= (1 << 20) + 4096 {
        labels.push_str(&format!("k{i:05}={}\n", "v".repeat(4000)));
        i += 1;
    }
    assert_refused(
        &fx,
        "containers/web/labels",
        labels.as_bytes(),
        Mode::Truncate,
        None,
        libc::EFBIG,
    );

    let target = desc_with(
        "annotations",
        serde_json::json!({"pad": "p".repeat((1 << 20) + 1024)}),
    );
    assert_refused(
        &fx,
        "images/app/target",
        &target,
        Mode::Truncate,
        None,
        libc::EFBIG,
    );
}

// ---- ENODATA / ENOTSUP ----------------------------------------------------------------

#[test]
fn enodata_for_a_missing_label_xattr() {
    let fx = MountFixture::new();
    with_container(&fx);
    let dir = fx.path("containers/web");
    set_xattr(&dir, "user.present", b"1", 0).unwrap();
    assert_eq!(errno_of(get_xattr(&dir, "user.missing")), libc::ENODATA);
    assert_eq!(errno_of(remove_xattr(&dir, "user.missing")), libc::ENODATA);
    // Outside user.: not supported, on get as on set (`ls -l` stops asking then).
    assert_eq!(errno_of(get_xattr(&dir, "trusted.present")), libc::ENOTSUP);
    assert_eq!(errno_of(get_xattr(&dir, "security.selinux")), libc::ENOTSUP);
    assert_eq!(errno_of(get_xattr(&dir, "system.posix_acl_access")), libc::ENOTSUP);
}

#[test]
fn enotsup_for_an_xattr_outside_user() {
    let fx = MountFixture::new();
    with_container(&fx);
    let dir = fx.path("containers/web");
    // A user. set works first, so ENOTSUP cannot come from a kernel-cached "no xattrs".
    set_xattr(&dir, "user.ok", b"1", 0).unwrap();
    assert_eq!(
        errno_of(set_xattr(&dir, "trusted.ctrfs", b"1", 0)),
        libc::ENOTSUP
    );
    set_xattr(&dir, "user.ok2", b"2", 0).unwrap();
    assert_eq!(read(&fx.path("containers/web/labels")), "ok=1\nok2=2\n");
}

// ---- ENAMETOOLONG ---------------------------------------------------------------------

#[test]
fn enametoolong_for_a_component_over_255_bytes() {
    let fx = MountFixture::new();
    let name = "n".repeat(256);
    assert_eq!(
        errno_of(fs::create_dir(fx.path(&format!("images/{name}")))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(fs::create_dir_all(fx.path(&format!("images/reg/{name}")))),
        libc::ENAMETOOLONG
    );
    assert_eq!(ls(&fx.path("images")), ["reg"]);
}
