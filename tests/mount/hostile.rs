//! Hostile input, one table (issue 10): every refusal of docs/interface.md that a caller
//! can provoke with bad bytes, names, documents or layers, and every limit that protects
//! the daemon, as rows run one after another against one mount.
//!
//! Each row has a setup, an action answering an errno (0: accepted), the errno expected,
//! a substring the daemon's log must show for it (written after the row started), and a
//! check that what the row could have damaged is as it was. After every row the mount
//! must still serve: `stat` of the root and a read of known files give what they gave
//! before the first row. One mount for all rows keeps the suite fast and proves that no
//! row leaves the daemon worse for the next.
//!
//! The 2 GiB blob row streams zeros from `/dev/zero` through the mount (constant memory on
//! both sides) but takes about a minute in a debug build (sha256 of every byte), so by
//! default it streams 256 MiB; `CTRFS_HOSTILE_BIG_BLOB=1` streams the full 2 GiB.
//!
//! `wait/` readers need a running task, so that limit has its own test below the table.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::common::*;
use crate::tasks::Tasks;

const SPEC: &str = r#"{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/"}}"#;
const LABELS: &str = "keep=1\n";

type Setup = Box<dyn Fn(&Tasks)>;
type Action = Box<dyn Fn(&Tasks) -> i32>;
type Check = Box<dyn Fn(&Tasks)>;

/// One hostile input.
struct Row {
    name: &'static str,
    setup: Setup,
    action: Action,
    /// 0 when the input is accepted (absolute layer paths are made relative, as
    /// containerd does) and only the check says nothing escaped.
    errno: i32,
    /// `None` where the kernel answers without asking the daemon (`mkdir ..`).
    log: Option<&'static str>,
    intact: Check,
}

fn row(name: &'static str, action: impl Fn(&Tasks) -> i32 + 'static, errno: i32, log: Option<&'static str>) -> Row {
    Row { name, setup: Box::new(|_| {}), action: Box::new(action), errno, log, intact: Box::new(|_| {}) }
}

impl Row {
    fn setup(mut self, f: impl Fn(&Tasks) + 'static) -> Self {
        self.setup = Box::new(f);
        self
    }
    fn intact(mut self, f: impl Fn(&Tasks) + 'static) -> Self {
        self.intact = Box::new(f);
        self
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The errno of writing `data` to `rel` (opened as `mode`), 0 if every call succeeded.
fn doc(t: &Tasks, rel: &str, data: &[u8], mode: Mode) -> i32 {
    match write_doc(&t.path(rel), data, mode) {
        Ok(()) => 0,
        Err((_, errno)) => errno,
    }
}

fn result_errno<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("error without an OS code: {e}")),
    }
}

fn labels_of(t: &Tasks, id: &str) -> String {
    read(&t.path(&format!("containers/{id}/labels")))
}

/// A field's file shows while a writer holds it open, and the release that ends that
/// reaches the daemon after `close()` returned, so absence is waited for briefly.
fn absent(t: &Tasks, rel: &str) {
    let gone = || result_errno(fs::symlink_metadata(t.path(rel))) == libc::ENOENT;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !gone() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(gone(), "{rel} must not exist");
}

/// `n` bytes of a JSON array nested `depth` deep inside a spec object.
fn deep_spec(depth: usize) -> Vec<u8> {
    let mut s = b"{\"a\":".to_vec();
    s.extend(std::iter::repeat_n(b'[', depth));
    s.extend(std::iter::repeat_n(b']', depth));
    s.push(b'}');
    s
}

// ---- layers ---------------------------------------------------------------------------

/// One raw tar member; names and link names are written into the header as given (the
/// `tar` crate's builder refuses `..` and absolute paths, which is the point here).
struct Member {
    name: Vec<u8>,
    kind: EntryType,
    link: Vec<u8>,
    data: Vec<u8>,
    dev: (u32, u32),
}

fn m(name: &str, kind: EntryType) -> Member {
    Member { name: name.as_bytes().to_vec(), kind, link: Vec::new(), data: Vec::new(), dev: (0, 0) }
}

fn file(name: &str, data: &str) -> Member {
    Member { data: data.as_bytes().to_vec(), ..m(name, EntryType::Regular) }
}

fn link(name: &str, kind: EntryType, target: &str) -> Member {
    Member { link: target.as_bytes().to_vec(), ..m(name, kind) }
}

fn tar_of(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for member in members {
        let mut header = tar::Header::new_ustar();
        {
            let raw = header.as_old_mut();
            raw.name[..member.name.len()].copy_from_slice(&member.name);
            raw.linkname[..member.link.len()].copy_from_slice(&member.link);
        }
        header.set_entry_type(member.kind);
        header.set_size(member.data.len() as u64);
        header.set_mode(if member.kind == EntryType::Directory { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_device_major(member.dev.0).unwrap();
        header.set_device_minor(member.dev.1).unwrap();
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&member.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Writes blob bytes into `content/sha256/`; returns the digest.
fn put_blob(t: &Tasks, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    put(&t.path(&format!("content/sha256/{hex}")), bytes);
    format!("sha256:{hex}")
}

fn descriptor_of(media_type: &str, digest: &str, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// An image `name` of one layer made of `members`; returns its manifest's descriptor.
fn layer_image(t: &Tasks, name: &str, members: &[Member]) -> Value {
    let layer = tar_of(members);
    let layer_digest = put_blob(t, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": oci_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = put_blob(t, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor_of("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
        "layers": [descriptor_of("application/vnd.oci.image.layer.v1.tar", &layer_digest, layer.len())],
    }))
    .unwrap();
    let target = descriptor_of("application/vnd.oci.image.manifest.v1+json", &put_blob(t, &manifest), manifest.len());
    fs::create_dir_all(t.path(&format!("images/{name}"))).unwrap();
    put(&t.path(&format!("images/{name}/target")), target.to_string());
    target
}

/// A container `id` of image `image`; the answer is the write of its snapshot key, which
/// unpacks the layers.
fn prepare(t: &Tasks, id: &str, image: &str) -> i32 {
    fs::create_dir(t.path(&format!("containers/{id}"))).unwrap();
    put(&t.path(&format!("containers/{id}/image")), format!("{image}\n"));
    doc(t, &format!("containers/{id}/snapshot"), format!("{id}-root\n").as_bytes(), Mode::Truncate)
}

/// What a refused unpack must leave: no key for the container, no snapshot of it.
fn unprepared(t: &Tasks, id: &str) {
    absent(t, &format!("containers/{id}/snapshot"));
    absent(t, &format!("snapshots/{id}-root"));
}

/// A row whose layer is `members`: refused with EINVAL naming `why`.
fn layer_row(name: &'static str, id: &'static str, members: impl Fn(&Tasks) -> Vec<Member> + 'static, why: &'static str) -> Row {
    let image = format!("hostile/{id}");
    let image2 = image.clone();
    row(name, move |t| prepare(t, id, &image), libc::EINVAL, Some(why))
        .setup(move |t| {
            layer_image(t, &image2, &members(t));
        })
        .intact(move |t| {
            unprepared(t, id);
            assert!(!t.root().join("outside/pwned").exists(), "a layer wrote outside its snapshot");
            assert!(!t.root().join("outside/passwd").exists(), "a layer linked outside its snapshot");
        })
}

/// An index nested `depth` deep around `manifest`; returns the outer descriptor.
fn nested_index(t: &Tasks, manifest: Value, depth: usize) -> Value {
    let mut inner = manifest;
    inner["platform"] = json!({"architecture": oci_arch(), "os": "linux"});
    for _ in 0..depth {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [inner],
        }))
        .unwrap();
        let digest = put_blob(t, &index);
        inner = descriptor_of("application/vnd.oci.image.index.v1+json", &digest, index.len());
        inner["platform"] = json!({"architecture": oci_arch(), "os": "linux"});
    }
    inner
}

// ---- limits -----------------------------------------------------------------------------

/// Lets this process hold more descriptors than the mount's open-file limit.
fn raise_fd_limit(want: u64) {
    let limit = libc::rlimit { rlim_cur: want, rlim_max: want };
    // SAFETY: a valid rlimit struct; raising the limit is allowed for root.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// Opens `rel` with `opts` until the mount refuses; returns the errno and how many opened.
fn open_until_refused(t: &Tasks, rel: &str, opts: &OpenOptions, most: usize) -> (i32, usize) {
    let mut held = Vec::new();
    loop {
        match opts.open(t.path(rel)) {
            Ok(f) => held.push(f),
            Err(e) => return (e.raw_os_error().unwrap_or(0), held.len()),
        }
        assert!(held.len() <= most, "{rel}: {} opens and no refusal", held.len());
    }
}

/// Streams `bytes` zeros from /dev/zero into a blob named by the digest of other bytes;
/// the answer is that of the close that judges it.
fn stream_zeros(t: &Tasks, rel: &str, bytes: u64) -> i32 {
    let mut out = File::create(t.path(rel)).unwrap();
    let mut zeros = File::open("/dev/zero").unwrap().take(bytes);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = zeros.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if let Err(e) = out.write_all(&buf[..n]) {
            return e.raw_os_error().unwrap_or(0);
        }
    }
    match close_checked(out) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn big_blob_bytes() -> u64 {
    if std::env::var_os("CTRFS_HOSTILE_BIG_BLOB").is_some_and(|v| v == "1") {
        2 << 30
    } else {
        256 << 20
    }
}

fn rows() -> Vec<Row> {
    let long = "x".repeat(256);
    let long2 = long.clone();
    let wrong = sha256_hex(b"not what is written");
    let wrong2 = wrong.clone();
    vec![
        // -- labels
        row("a label over 4096 bytes", |t| doc(t, "containers/web/labels", format!("k={}\n", "v".repeat(5000)).as_bytes(), Mode::Truncate), libc::EINVAL, Some("longer than 4096 bytes")),
        row("a label over 4096 bytes by setxattr", |t| result_errno(set_xattr(&t.path("containers/web"), "user.k", "v".repeat(5000).as_bytes(), 0)), libc::EINVAL, Some("longer than 4096 bytes")),
        row("100,000 labels in one write", |t| {
            let text: String = (0..100_000).map(|i| format!("k{i}=v\n")).collect();
            doc(t, "containers/web/labels", text.as_bytes(), Mode::Truncate)
        }, libc::EINVAL, Some("at most 1024 labels")),
        row("1,024 labels appended to one", |t| {
            let text: String = (0..1024).map(|i| format!("a{i}=v\n")).collect();
            doc(t, "containers/web/labels", text.as_bytes(), Mode::Append)
        }, libc::EINVAL, Some("at most 1024 labels")),
        row("labels over 1 MiB set one by one with setxattr", |t| {
            for i in 0..300 {
                let r = set_xattr(&t.path("containers/xl"), &format!("user.k{i:03}"), "v".repeat(4000).as_bytes(), 0);
                if r.is_err() {
                    return result_errno(r);
                }
            }
            0
        }, libc::EFBIG, Some("the label set is larger than 1048576 bytes"))
        .setup(|t| fs::create_dir(t.path("containers/xl")).unwrap())
        .intact(|t| {
            // Every label acknowledged before the refusal stays; the refused one is not there.
            let n = labels_of(t, "xl").lines().count();
            assert!((250..300).contains(&n), "{n} labels kept");
            assert_eq!(result_errno(get_xattr(&t.path("containers/xl"), &format!("user.k{n:03}"))), libc::ENODATA);
        }),
        row("a label with a NUL byte", |t| doc(t, "containers/web/labels", b"a=b\0c\n", Mode::Truncate), libc::EINVAL, Some("NUL")),
        row("a label that is not UTF-8", |t| doc(t, "containers/web/labels", b"\xff\xfe=1\n", Mode::Truncate), libc::EINVAL, Some("containers/web/labels")),
        row("labels over 1 MiB in one write", |t| doc(t, "containers/web/labels", &vec![b'x'; 2 << 20], Mode::Truncate), libc::EFBIG, Some("containers/web/labels")),
        // -- documents
        row("a 10 MiB spec", |t| {
            let mut spec = b"{\"a\":\"".to_vec();
            spec.extend(std::iter::repeat_n(b'x', 10 << 20));
            spec.extend(b"\"}");
            doc(t, "containers/web/spec", &spec, Mode::Truncate)
        }, libc::EFBIG, Some("containers/web/spec")),
        row("a spec nested 100,000 deep", |t| doc(t, "containers/web/spec", &deep_spec(100_000), Mode::Truncate), libc::EINVAL, Some("containers/web/spec")),
        row("a target nested 100,000 deep", |t| {
            let mut d = b"{\"mediaType\":".to_vec();
            d.extend(std::iter::repeat_n(b'[', 100_000));
            doc(t, "images/app/target", &d, Mode::Truncate)
        }, libc::EINVAL, Some("images/app/target")),
        row("a spec that is not UTF-8", |t| doc(t, "containers/web/spec", b"{\"a\":\"\xff\xfe\"}", Mode::Truncate), libc::EINVAL, Some("containers/web/spec")),
        row("a spec with a NUL after it", |t| doc(t, "containers/web/spec", format!("{SPEC}\0").as_bytes(), Mode::Truncate), libc::EINVAL, Some("containers/web/spec")),
        row("a runtime with a NUL byte", |t| doc(t, "containers/web/runtime", b"ru\0nc\n", Mode::Truncate), libc::EINVAL, Some("containers/web/runtime"))
            .intact(|t| absent(t, "containers/web/runtime")),
        row("a runtime that is not UTF-8", |t| doc(t, "containers/web/runtime", b"\xffrunc\n", Mode::Truncate), libc::EINVAL, Some("containers/web/runtime"))
            .intact(|t| absent(t, "containers/web/runtime")),
        // -- names
        row("a container name of 256 bytes", move |t| result_errno(fs::create_dir(t.path(&format!("containers/{long}")))), libc::ENAMETOOLONG, Some("longer than 255 bytes")),
        row("an image name component of 256 bytes", move |t| result_errno(fs::create_dir(t.path(&format!("images/{long2}")))), libc::ENAMETOOLONG, Some("longer than 255 bytes")),
        row("a container name that is not UTF-8", |t| {
            use std::os::unix::ffi::OsStrExt;
            result_errno(fs::create_dir(t.path("containers").join(std::ffi::OsStr::from_bytes(b"w\xffb"))))
        }, libc::EINVAL, Some("UTF-8")),
        row("mkdir images/.. (the kernel answers)", |t| result_errno(fs::create_dir(t.path("images/.."))), libc::EEXIST, None),
        row("an image field naming a/../b", |t| doc(t, "containers/web/image", b"a/../b\n", Mode::Truncate), libc::EINVAL, Some("'.' and '..'"))
            .intact(|t| absent(t, "containers/web/image")),
        row("an image field naming .", |t| doc(t, "containers/web/image", b".\n", Mode::Truncate), libc::EINVAL, Some("'.' and '..'"))
            .intact(|t| absent(t, "containers/web/image")),
        row("an image path 64 levels deep is served", |t| {
            let deep = vec!["d"; 64].join("/");
            let r = fs::create_dir_all(t.path(&format!("images/{deep}")));
            if r.is_err() {
                return result_errno(r);
            }
            put(&t.path(&format!("images/{deep}/target")), descriptor(7).to_string());
            doc(t, "containers/deep/image", format!("{deep}\n").as_bytes(), Mode::Truncate)
        }, 0, None)
        .setup(|t| fs::create_dir(t.path("containers/deep")).unwrap())
        .intact(|t| {
            let deep = vec!["d"; 64].join("/");
            assert_eq!(read_json(&t.path(&format!("images/{deep}/target"))), descriptor(7));
            assert_eq!(read(&t.path("containers/deep/image")), format!("{deep}\n"));
        }),
        row("an image path 64 levels of 200-byte components", |t| {
            let deep = vec!["n".repeat(200); 64].join("/");
            let mut dir = t.path("images");
            for part in deep.split('/') {
                dir.push(part);
                // mkdir -p would pass PATH_MAX; one level at a time from an open parent.
                let r = fs::create_dir(&dir);
                if r.is_err() {
                    return result_errno(r);
                }
            }
            0
        }, libc::ENAMETOOLONG, None),
        // -- digests
        row("a target digest of 63 hex digits", |t| doc(t, "images/app/target", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":format!("sha256:{}","a".repeat(63)),"size":1}).to_string().as_bytes(), Mode::Truncate), libc::EINVAL, Some("images/app/target")),
        row("a target digest in upper case", |t| doc(t, "images/app/target", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":format!("sha256:{}","A".repeat(64)),"size":1}).to_string().as_bytes(), Mode::Truncate), libc::EINVAL, Some("images/app/target")),
        row("a target digest of an unknown algorithm", |t| doc(t, "images/app/target", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":format!("md5:{}","a".repeat(32)),"size":1}).to_string().as_bytes(), Mode::Truncate), libc::EINVAL, Some("images/app/target")),
        row("a gc.ref label naming a digest of the wrong alphabet", |t| doc(t, "containers/web/labels", format!("containerd.io/gc.ref.content=sha256:{}\n", "g".repeat(64)).as_bytes(), Mode::Append), 0, None)
            .intact(|t| {
                // containerd accepts any label value; the collector must just not follow it.
                assert!(labels_of(t, "web").contains("gc.ref.content=sha256:ggg"));
                put(&t.path("containers/web/labels"), LABELS);
            }),
        row("a blob streamed from /dev/zero under a wrong name", move |t| stream_zeros(t, &format!("content/sha256/{wrong}"), big_blob_bytes()), libc::EINVAL, Some("does not match its digest"))
            .intact(move |t| {
                let rel = format!("content/sha256/{wrong2}");
                wait_until(Duration::from_secs(10), "the refused blob to go", || !t.path(&rel).exists());
                let ingest = t.state().join("content/ingest");
                wait_until(Duration::from_secs(10), "the ingest to be removed", || fs::read_dir(&ingest).map_or(true, |mut d| d.next().is_none()));
            }),
        // -- layers
        layer_row("a layer entry ../escape", "l-dotdot", |_| vec![file("../escape", "x\n")], "leaves the layer's root"),
        layer_row("a layer entry a/../../escape", "l-dotdot2", |_| vec![m("a/", EntryType::Directory), file("a/../../escape", "x\n")], "leaves the layer's root"),
        layer_row("a layer symlink to outside, then a file through it", "l-symlink", |t| {
            let outside = t.root().join("outside");
            vec![link("evil", EntryType::Symlink, outside.to_str().unwrap()), file("evil/pwned", "x\n")]
        }, "through a symlink"),
        layer_row("a layer symlink ../.., then a file through it", "l-symlink2", |_| vec![link("up", EntryType::Symlink, "../../../../.."), file("up/pwned", "x\n")], "through a symlink"),
        layer_row("a layer hard link to ../../etc/passwd", "l-hardlink", |_| vec![link("passwd", EntryType::Link, "../../../etc/passwd")], "leaves the layer's root"),
        layer_row("a layer hard link to /etc/passwd (absent in the layer)", "l-hardlink-abs", |_| vec![link("passwd", EntryType::Link, "/etc/passwd")], "not found"),
        layer_row("a layer hard link through a symlink", "l-hardlink-sym", |t| {
            let outside = t.root().join("outside");
            vec![link("evil", EntryType::Symlink, outside.to_str().unwrap()), link("passwd", EntryType::Link, "evil/passwd")]
        }, "through a symlink"),
        layer_row("a layer whose root is a device node", "l-dev-root", |_| vec![Member { dev: (1, 3), ..m("./", EntryType::Char) }], "only a directory can be the root"),
        layer_row("a layer file below a device node", "l-dev-parent", |_| vec![m("dev/", EntryType::Directory), Member { dev: (1, 3), ..m("dev/null", EntryType::Char) }, file("dev/null/x", "x\n")], "is not a directory"),
        layer_row("a layer whiteout .wh..", "l-wh-dotdot", |_| vec![m(".wh..", EntryType::Regular)], "whiteout names no file"),
        layer_row("a layer whiteout .wh. of nothing", "l-wh-empty", |_| vec![m("a/", EntryType::Directory), m("a/.wh.", EntryType::Regular)], "whiteout names no file"),
        layer_row("a layer file below a whiteout", "l-wh-parent", |_| vec![m(".wh.x", EntryType::Regular), file("x/y", "x\n")], "is not a directory"),
        row("a layer entry with an absolute path stays inside", |t| prepare(t, "l-abs", "hostile/l-abs"), 0, None)
            .setup(|t| {
                fs::create_dir_all(t.root().join("outside")).unwrap();
                let abs = format!("{}/outside/abs.txt", t.root().display());
                layer_image(t, "hostile/l-abs", &[file(&abs, "inside\n")]);
            })
            .intact(|t| {
                assert!(!t.root().join("outside/abs.txt").exists(), "an absolute layer path was written on the host");
                let rel = format!("{}/outside/abs.txt", t.root().display());
                let found = fs::read_dir(t.state().join("snapshots")).unwrap().flatten().any(|e| e.path().join("fs").join(rel.trim_start_matches('/')).exists());
                assert!(found, "the absolute entry is in the layer's snapshot, made relative");
            }),
        // -- references
        row("an index nested 6 deep (what a cycle of indexes would look like)", |t| prepare(t, "ix", "hostile/ix"), libc::EINVAL, Some("nested too deep"))
            .setup(|t| {
                let manifest = layer_image(t, "hostile/ix-base", &[file("a", "a\n")]);
                let outer = nested_index(t, manifest, 6);
                fs::create_dir_all(t.path("images/hostile/ix")).unwrap();
                put(&t.path("images/hostile/ix/target"), outer.to_string());
            })
            .intact(|t| unprepared(t, "ix")),
        row("a blob whose gc.ref label names itself is removable", |t| {
            let hex = sha256_hex(b"self");
            result_errno(fs::remove_file(t.path(&format!("content/sha256/{hex}"))))
        }, 0, None)
        .setup(|t| {
            let digest = put_blob(t, b"self");
            let blob = t.path(&format!("content/sha256/{}", digest.trim_start_matches("sha256:")));
            set_xattr(&blob, "user.containerd.io/gc.ref.content", digest.as_bytes(), 0).unwrap();
        })
        .intact(|t| absent(t, &format!("content/sha256/{}", sha256_hex(b"self")))),
        // A label pins what it names while its record is reachable from a root (here A's
        // gc.root); marking must end on the cycle and name the root that pins B.
        row("two blobs whose gc.ref labels name each other, one a gc.root", |t| {
            let b = sha256_hex(b"cycle-b");
            result_errno(fs::remove_file(t.path(&format!("content/sha256/{b}"))))
        }, libc::EBUSY, Some("EBUSY"))
        .setup(|t| {
            let a = put_blob(t, b"cycle-a");
            let b = put_blob(t, b"cycle-b");
            let path = |d: &str| t.path(&format!("content/sha256/{}", d.trim_start_matches("sha256:")));
            set_xattr(&path(&a), "user.containerd.io/gc.ref.content", b.as_bytes(), 0).unwrap();
            set_xattr(&path(&b), "user.containerd.io/gc.ref.content", a.as_bytes(), 0).unwrap();
            set_xattr(&path(&a), "user.containerd.io/gc.root", b"true", 0).unwrap();
        })
        .intact(|t| {
            assert!(t.path(&format!("content/sha256/{}", sha256_hex(b"cycle-a"))).exists());
            assert!(t.path(&format!("content/sha256/{}", sha256_hex(b"cycle-b"))).exists());
        }),
        // -- limits
        row("more than 4096 open files", |t| {
            raise_fd_limit(16384);
            let (errno, opened) = open_until_refused(t, "containers/web/labels", OpenOptions::new().read(true), 5000);
            assert_eq!(opened, 4096, "open files allowed");
            errno
        }, libc::ENFILE, Some("more than 4096 files are open")),
        row("writers holding more than 1 GiB of documents", |t| {
            raise_fd_limit(16384);
            let (errno, opened) = open_until_refused(t, "containers/web/labels", OpenOptions::new().write(true), 5000);
            assert!((1000..1030).contains(&opened), "{opened} writers of 1 MiB each");
            errno
        }, libc::ENFILE, Some("MiB of documents")),
    ]
}

/// What every row must leave as it found it, and proof the daemon serves.
fn assert_serving(t: &Tasks, before: &fs::Metadata, row: &str) {
    use std::os::unix::fs::MetadataExt;
    let root = fs::metadata(t.mnt()).unwrap_or_else(|e| panic!("{row}: stat of the root: {e}\n{}", t.log()));
    assert_eq!(root.ino(), before.ino(), "{row}: the root");
    assert_eq!(labels_of(t, "web"), LABELS, "{row}: containers/web/labels");
    assert_eq!(read(&t.path("containers/web/spec")), SPEC, "{row}: containers/web/spec");
    assert_eq!(read_json(&t.path("images/app/target")), descriptor(1), "{row}: images/app/target");
    // A change is still accepted.
    put(&t.path("containers/web/snapshotter"), "native\n");
    assert_eq!(read(&t.path("containers/web/snapshotter")), "native\n", "{row}: a change after the row");
}

#[test]
fn every_hostile_input_is_refused_with_its_errno_and_the_daemon_serves_on() {
    let t = Tasks::new();
    fs::create_dir(t.path("containers/web")).unwrap();
    put(&t.path("containers/web/labels"), LABELS);
    put(&t.path("containers/web/spec"), SPEC);
    fs::create_dir(t.path("images/app")).unwrap();
    put(&t.path("images/app/target"), descriptor(1).to_string());
    fs::create_dir_all(t.root().join("outside")).unwrap();
    let before = fs::metadata(t.mnt()).unwrap();
    let rows = rows();
    let mut failures = Vec::new();
    let started = Instant::now();
    for row in &rows {
        let row_start = Instant::now();
        (row.setup)(&t);
        let log_from = t.log().len();
        let got = (row.action)(&t);
        let mut failed = Vec::new();
        if got != row.errno {
            failed.push(format!("answered {} (want {})", errno_name(got), errno_name(row.errno)));
        }
        if let Some(want) = row.log {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.log()[log_from..].contains(want) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if !t.log()[log_from..].contains(want) {
                failed.push(format!("no log line with {want:?}; new log:\n{}", &t.log()[log_from..]));
            }
        }
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (row.intact)(&t);
            assert_serving(&t, &before, row.name);
        })) {
            let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            failed.push(format!("state check: {}", what.unwrap_or_default()));
        }
        eprintln!("row {:<60} {:>10} {:>6} ms {}", row.name, errno_name(got), row_start.elapsed().as_millis(), if failed.is_empty() { "ok" } else { "FAILED" });
        if !failed.is_empty() {
            failures.push(format!("{}: {}", row.name, failed.join("; ")));
        }
    }
    eprintln!("{} rows in {:?}", rows.len(), started.elapsed());
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    assert!(!t.log().contains("panicked"), "a request panicked:\n{}", t.log());
}

/// `n` threads each blocked in a `pread` of one shared descriptor of a `wait/` file
/// (several reads per open file, so the open-file limit does not bound them); each sends
/// 0 when it read the status 137, or the errno it got.
fn blocked_readers(t: &Tasks, file: Arc<File>, n: usize) -> mpsc::Receiver<i32> {
    let (tx, rx) = mpsc::channel();
    for _ in 0..n {
        let (file, tx) = (Arc::clone(&file), tx.clone());
        thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let mut buf = [0u8; 64];
                let answer = match file.read_at(&mut buf, 0) {
                    Ok(len) if &buf[..len] == b"137\n" => 0,
                    Ok(_) => -1,
                    Err(e) => e.raw_os_error().unwrap_or(-2),
                };
                let _ = tx.send(answer);
            })
            .unwrap_or_else(|e| panic!("spawn waiter: {e}; log:\n{}", t.log()));
    }
    rx
}

#[test]
fn blocked_wait_readers_are_bounded_and_the_mount_serves_while_they_wait() {
    const EXTRA: usize = 4;
    let t = Tasks::new();
    t.container("sleeper", "sleep 1000");
    t.start("sleeper");
    put(&t.path("containers/sleeper/labels"), LABELS);
    let file = Arc::new(File::open(t.path("wait/sleeper")).unwrap());
    // 4096 reads park; the ones beyond are refused at once.
    let answers = blocked_readers(&t, Arc::clone(&file), 4096 + EXTRA);
    for _ in 0..EXTRA {
        let got = answers.recv_timeout(Duration::from_secs(60)).expect("the reads beyond the bound answered");
        assert_eq!(errno_name(got), "ENFILE", "a read beyond the bound");
    }
    t.wait_for_log_line("the refused read", |l| l.contains("reads of wait files are already blocked"));
    assert!(answers.recv_timeout(Duration::from_millis(300)).is_err(), "a parked read answered before the task stopped");
    // The mount serves everything else while they wait.
    let started = Instant::now();
    fs::metadata(t.mnt()).unwrap();
    assert_eq!(labels_of(&t, "sleeper"), LABELS);
    put(&t.path("containers/sleeper/labels"), "more=1\n");
    assert!(started.elapsed() < Duration::from_secs(2), "the mount answered in {:?}", started.elapsed());
    // Removing the task wakes every parked reader with its status.
    fs::remove_file(t.path("tasks/sleeper")).unwrap();
    let woken: Vec<i32> = (0..4096).map(|_| answers.recv_timeout(Duration::from_secs(60)).expect("every parked read answered")).collect();
    assert!(woken.iter().all(|a| *a == 0), "waiters answered {:?}", woken.iter().filter(|a| **a != 0).take(5).collect::<Vec<_>>());
    assert!(!t.log().contains("panicked"));
}
