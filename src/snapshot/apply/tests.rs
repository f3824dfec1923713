//! Layer application tests. Layers are built here with `tar::Builder` from raw headers,
//! so that they can also hold what a well-behaved writer refuses (`..`, odd types).
//! They need root: owners, device nodes, `trusted.` attributes and an overlay mount.

use std::os::unix::fs::FileTypeExt;

use flate2::write::GzEncoder;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::makedev;
use tar::Header;

use super::*;

const MTIME: u64 = 1_600_000_000;

/// A layer under construction.
struct Layer(tar::Builder<Vec<u8>>);

fn set_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
}

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry, letting `edit` change the header (root-owned, mode 0644 and
    /// MTIME by default) before its checksum is computed.
    fn entry(&mut self, kind: EntryType, path: &str, data: &[u8], edit: impl FnOnce(&mut Header)) -> &mut Layer {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        set_field(&mut header.as_old_mut().name, path.as_bytes());
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(data.len() as u64);
        edit(&mut header);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str) -> &mut Layer {
        self.entry(EntryType::Directory, path, b"", |h| h.set_mode(0o755))
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Layer {
        self.entry(EntryType::Regular, path, data, |_| {})
    }

    fn linked(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Layer {
        self.entry(kind, path, b"", |h| set_field(&mut h.as_old_mut().linkname, target.as_bytes()))
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Layer {
        self.linked(EntryType::Symlink, path, target)
    }

    fn hard_link(&mut self, path: &str, target: &str) -> &mut Layer {
        self.linked(EntryType::Link, path, target)
    }

    /// A PAX extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut body = Vec::new();
        for (key, value) in records {
            // The length prefix counts itself, so find the fixed point.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.entry(EntryType::XHeader, "PaxHeader", &body, |_| {})
    }

    fn tar(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new())).into_inner().unwrap()
    }

    fn gzip(&mut self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const DELETE: ApplyOptions<'static> = ApplyOptions { whiteouts: Whiteouts::Delete, lowers: &[] };
const OVERLAY: ApplyOptions<'static> = ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &[] };

fn apply(tar: &[u8], target: &Path, opts: &ApplyOptions) -> Result<Applied> {
    apply_layer(tar, Compression::None, target, opts)
}

fn stat(path: &Path) -> Metadata {
    fs::symlink_metadata(path).unwrap()
}

fn exists(path: &Path) -> bool {
    ops::lstat(path).unwrap().is_some()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn is_invalid(result: Result<Applied>, needle: &str) -> bool {
    matches!(&result, Err(SnapshotError::Invalid(why)) if why.contains(needle))
}

#[test]
fn media_types_and_sniffing() {
    let rows = [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::Gzip),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::Gzip),
    ];
    for (media_type, compression) in rows {
        assert_eq!(Compression::from_media_type(media_type).unwrap(), compression, "{media_type}");
    }
    let zstd = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd");
    assert!(matches!(zstd, Err(SnapshotError::Invalid(why)) if why == "zstd layers are not supported"));
    assert!(Compression::from_media_type("application/vnd.oci.image.config.v1+json").is_err());
    assert_eq!(Compression::sniff(&gzip(b"x")), Compression::Gzip);
    assert_eq!(Compression::sniff(&Layer::new().file("f", b"x").tar()), Compression::None);
    assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
}

#[test]
fn entry_kinds_owners_and_modes() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let tar = Layer::new()
        .entry(EntryType::Directory, "./", b"", |h| h.set_mode(0o750))
        .entry(EntryType::Directory, "etc/", b"", |h| {
            h.set_mode(0o2775);
            h.set_uid(10);
            h.set_gid(20);
        })
        .entry(EntryType::Regular, "etc/passwd", b"root:x:0:0", |h| {
            h.set_uid(1000);
            h.set_gid(1001);
        })
        .entry(EntryType::Regular, "/usr/bin/su", b"\x7fELF", |h| {
            h.set_mode(0o4755);
            h.set_uid(1234);
        })
        .entry(EntryType::Directory, "./tmp", b"", |h| h.set_mode(0o1777))
        .entry(EntryType::Symlink, "etc/localtime", b"", |h| {
            set_field(&mut h.as_old_mut().linkname, b"/usr/share/zoneinfo/UTC");
            h.set_uid(5);
            h.set_gid(6);
        })
        .entry(EntryType::Char, "dev/null", b"", |h| {
            h.set_mode(0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .entry(EntryType::Block, "dev/loop0", b"", |h| {
            h.set_device_major(7).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .entry(EntryType::Fifo, "run/fifo", b"", |h| h.set_mode(0o600))
        .tar();
    apply(&tar, t, &DELETE).unwrap();

    let mode_owner = |p: &str| {
        let m = stat(&t.join(p));
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(mode_owner(""), (0o750, 0, 0));
    assert_eq!(mode_owner("etc"), (0o2775, 10, 20));
    assert_eq!(mode_owner("etc/passwd"), (0o644, 1000, 1001));
    assert_eq!(fs::read(t.join("etc/passwd")).unwrap(), b"root:x:0:0");
    assert_eq!(mode_owner("usr/bin/su"), (0o4755, 1234, 0), "setuid survives the chown");
    assert_eq!(mode_owner("usr"), (0o755, 0, 0), "a missing parent is root's, 0755");
    assert_eq!(mode_owner("tmp"), (0o1777, 0, 0));
    assert_eq!(fs::read_link(t.join("etc/localtime")).unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
    let link = stat(&t.join("etc/localtime"));
    assert_eq!((link.uid(), link.gid()), (5, 6));
    let null = stat(&t.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (makedev(1, 3), 0o666));
    assert!(stat(&t.join("dev/loop0")).file_type().is_block_device());
    assert_eq!(stat(&t.join("dev/loop0")).rdev(), makedev(7, 0));
    assert!(stat(&t.join("run/fifo")).file_type().is_fifo());
}

#[test]
fn pax_xattrs_times_and_long_names() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let long = format!("{}/file", "long-directory-name".repeat(8));
    let mut layer = Layer::new();
    layer
        .pax(&[("SCHILY.xattr.user.dir", b"d")])
        .dir("d/")
        .pax(&[
            ("SCHILY.xattr.user.mime", b"text/plain"),
            ("SCHILY.xattr.trusted.t", b"\x00\xff"),
            ("mtime", b"1700000000.25"),
        ])
        .file("d/f", b"x")
        .pax(&[("path", long.as_bytes())])
        .file("ignored-short-name", b"pax path")
        .pax(&[("mtime", b"-1.5")])
        .file("old", b"");
    // Owner fields left blank, which reads as root.
    let mut header = Header::new_gnu();
    header.set_size(8);
    header.set_mode(0o644);
    header.set_mtime(MTIME);
    let gnu_long = format!("{}/gnu", "gnu-long-name".repeat(10));
    layer.0.append_data(&mut header, &gnu_long, &b"gnu long"[..]).unwrap();
    apply(&layer.tar(), t, &DELETE).unwrap();

    let get = |p: &str, n: &str| xattr::get(&t.join(p), OsStr::new(n)).unwrap();
    assert_eq!(get("d", "user.dir").unwrap(), b"d");
    assert_eq!(get("d/f", "user.mime").unwrap(), b"text/plain");
    assert_eq!(get("d/f", "trusted.t").unwrap(), b"\x00\xff");
    let f = stat(&t.join("d/f"));
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_700_000_000, 250_000_000));
    assert_eq!((f.atime(), f.atime_nsec()), (1_700_000_000, 250_000_000), "atime is mtime");
    let old = stat(&t.join("old"));
    assert_eq!((old.mtime(), old.mtime_nsec()), (-2, 500_000_000));
    assert_eq!(fs::read(t.join(&long)).unwrap(), b"pax path");
    assert!(!exists(&t.join("ignored-short-name")));
    assert_eq!(fs::read(t.join(&gnu_long)).unwrap(), b"gnu long");
}

#[test]
fn pax_times_parse() {
    type Row<'a> = (&'a [u8], Option<(i64, i64)>);
    let rows: &[Row] = &[
        (b"12", Some((12, 0))),
        (b"12.5", Some((12, 500_000_000))),
        (b"12.1234567891", Some((12, 123_456_789))),
        (b"-3", Some((-3, 0))),
        (b"-3.25", Some((-4, 750_000_000))),
        (b"", None),
        (b"1e9", None),
        (b".5", None),
    ];
    for (text, want) in rows {
        let got = parse_pax_time(text).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(got, *want, "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn directory_times_are_set_after_their_children() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let tar = Layer::new()
        .entry(EntryType::Directory, "./", b"", |h| h.set_mtime(100))
        .entry(EntryType::Directory, "a/", b"", |h| h.set_mtime(200))
        .entry(EntryType::Directory, "a/b/", b"", |h| h.set_mtime(300))
        .entry(EntryType::Regular, "a/b/f", b"x", |h| h.set_mtime(400))
        .entry(EntryType::Regular, "a/g", b"x", |h| h.set_mtime(500))
        .symlink("a/link", "b")
        .tar();
    apply(&tar, t, &DELETE).unwrap();
    let mtime = |p: &str| stat(&t.join(p)).mtime();
    assert_eq!([mtime(""), mtime("a"), mtime("a/b"), mtime("a/b/f"), mtime("a/g")], [100, 200, 300, 400, 500]);
    assert_eq!(mtime("a/link"), MTIME as i64);
    assert_eq!(stat(&t.join("a")).atime(), 200);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    fs::create_dir_all(t.join("keep/old")).unwrap();
    fs::write(t.join("keep/file"), b"from below").unwrap();
    fs::write(t.join("shared"), b"shared").unwrap();
    fs::hard_link(t.join("shared"), t.join("other-name")).unwrap();
    let tar = Layer::new()
        .file("was-file", b"1")
        .dir("was-file/")
        .dir("was-dir/")
        .file("was-dir/child", b"c")
        .file("was-dir", b"now a file")
        .file("to-link", b"1")
        .symlink("to-link", "elsewhere")
        .entry(EntryType::Directory, "keep/", b"", |h| h.set_mode(0o700))
        .file("shared", b"replaced")
        .tar();
    apply(&tar, t, &DELETE).unwrap();
    assert!(stat(&t.join("was-file")).is_dir());
    assert_eq!(fs::read(t.join("was-dir")).unwrap(), b"now a file");
    assert_eq!(fs::read_link(t.join("to-link")).unwrap(), Path::new("elsewhere"));
    assert_eq!(names(&t.join("keep")), ["file", "old"], "an existing directory keeps its contents");
    assert_eq!(stat(&t.join("keep")).mode() & 0o7777, 0o700);
    assert_eq!(fs::read(t.join("shared")).unwrap(), b"replaced");
    assert_eq!(fs::read(t.join("other-name")).unwrap(), b"shared", "the old inode's other name is untouched");
}

#[test]
fn hard_links_within_a_layer() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let tar = Layer::new()
        .entry(EntryType::Regular, "bin/busybox", b"multi-call", |h| h.set_mode(0o755))
        .hard_link("bin/sh", "bin/busybox")
        .hard_link("usr/bin/env", "/bin/busybox")
        .symlink("bin/link", "busybox")
        .hard_link("bin/link2", "bin/link")
        .tar();
    apply(&tar, t, &DELETE).unwrap();
    let ino = stat(&t.join("bin/busybox")).ino();
    assert_eq!(stat(&t.join("bin/sh")).ino(), ino);
    assert_eq!(stat(&t.join("usr/bin/env")).ino(), ino);
    assert_eq!(stat(&t.join("bin/busybox")).nlink(), 3);
    let symlink_ino = stat(&t.join("bin/link")).ino();
    assert_eq!(stat(&t.join("bin/link2")).ino(), symlink_ino, "a link to a symlink links the symlink");

    for (tar, why) in [
        (Layer::new().hard_link("a", "missing").tar(), "not found"),
        (Layer::new().dir("d/").hard_link("a", "d").tar(), "a directory"),
        (Layer::new().hard_link("a", "a").tar(), "bad hard link"),
    ] {
        let target = tempfile::tempdir().unwrap();
        assert!(is_invalid(apply(&tar, target.path(), &DELETE), why), "{why}");
    }
}

#[test]
fn traversal_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().to_str().unwrap().to_owned();
    let layers = [
        (Layer::new().file("../evil", b"x").tar(), "leaves the layer's root"),
        (Layer::new().file("a/../../evil", b"x").tar(), "leaves the layer's root"),
        (Layer::new().file("f", b"x").hard_link("l", "../f").tar(), "leaves the layer's root"),
        (Layer::new().symlink("esc", &escape).file("esc/evil", b"x").tar(), "through a symlink"),
        (Layer::new().symlink("esc", "..").dir("esc/sub/").tar(), "through a symlink"),
        (Layer::new().symlink("esc", &escape).hard_link("l", "esc/evil").tar(), "through a symlink"),
        (Layer::new().symlink("esc", &escape).file("esc/.wh.victim", b"").tar(), "through a symlink"),
        (Layer::new().symlink("esc", &escape).file("esc/.wh..wh..opq", b"").tar(), "through a symlink"),
        (Layer::new().file("f", b"x").file("f/g", b"x").tar(), "is not a directory"),
        (Layer::new().file(".", b"x").tar(), "only a directory"),
        (Layer::new().file(".wh..", b"").tar(), "whiteout names no file"),
    ];
    fs::write(outside.path().join("victim"), b"v").unwrap();
    for (tar, why) in layers {
        for opts in [&DELETE, &OVERLAY] {
            let target = tempfile::tempdir().unwrap();
            let result = apply(&tar, target.path(), opts);
            assert!(is_invalid(result, why), "{why}");
        }
    }
    assert_eq!(names(outside.path()), ["victim"]);

    // An absolute path or symlink target is taken inside the target, never followed.
    let target = tempfile::tempdir().unwrap();
    let tar = Layer::new().symlink("abs", &escape).file(&format!("{escape}/inside"), b"x").tar();
    apply(&tar, target.path(), &DELETE).unwrap();
    assert!(exists(&target.path().join(escape.trim_start_matches('/')).join("inside")));
    assert_eq!(names(outside.path()), ["victim"]);
}

#[test]
fn unsupported_entries() {
    let target = tempfile::tempdir().unwrap();
    let sparse = Layer::new().entry(EntryType::GNUSparse, "sparse", b"", |_| {}).tar();
    assert!(matches!(apply(&sparse, target.path(), &DELETE), Err(SnapshotError::Invalid(_))));
    let pax_sparse = Layer::new().pax(&[("GNU.sparse.major", b"1")]).file("s", b"").tar();
    assert!(is_invalid(apply(&pax_sparse, target.path(), &DELETE), "sparse"));
    let odd = Layer::new().entry(EntryType::new(b'V'), "volume", b"", |_| {}).tar();
    assert!(is_invalid(apply(&odd, target.path(), &DELETE), "unsupported entry type 'V'"));

    let tar = Layer::new()
        .entry(EntryType::XGlobalHeader, "global", b"9 a=bcd\n", |_| {})
        .file(".wh..wh.plnk", b"")
        .file("d/.wh..wh.aufs", b"")
        .file("after", b"ok")
        .tar();
    let target = tempfile::tempdir().unwrap();
    apply(&tar, target.path(), &DELETE).unwrap();
    assert_eq!(names(target.path()), ["after"], "an ignored marker creates no parent");
}

#[test]
fn delete_mode_whiteouts() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    fs::create_dir_all(t.join("etc/conf.d/deep")).unwrap();
    fs::write(t.join("etc/conf.d/deep/x"), b"x").unwrap();
    fs::write(t.join("etc/hosts"), b"h").unwrap();
    fs::write(t.join("etc/keep"), b"k").unwrap();
    let tar = Layer::new()
        .file("etc/.wh.hosts", b"")
        .file("etc/.wh.conf.d", b"")
        .file("etc/.wh.never-existed", b"")
        .file("nodir/.wh.x", b"")
        .tar();
    apply(&tar, t, &DELETE).unwrap();
    assert_eq!(names(&t.join("etc")), ["keep"]);
    assert!(!exists(&t.join("nodir")), "a whiteout creates nothing in Delete mode");
}

#[test]
fn delete_mode_opaque_directories_in_either_order() {
    for marker_first in [true, false] {
        let target = tempfile::tempdir().unwrap();
        let t = target.path();
        fs::create_dir_all(t.join("d/sub/inner")).unwrap();
        fs::create_dir_all(t.join("d/gone")).unwrap();
        for f in ["d/old", "d/keep", "d/sub/old", "d/sub/inner/old", "d/gone/old", "outside"] {
            fs::write(t.join(f), b"lower").unwrap();
        }
        let mut layer = Layer::new();
        if marker_first {
            layer.file("d/.wh..wh..opq", b"");
        }
        layer.file("d/keep", b"upper").file("d/sub/new", b"upper").dir("d/newdir/");
        if !marker_first {
            layer.file("d/.wh..wh..opq", b"");
        }
        apply(&layer.tar(), t, &DELETE).unwrap();
        assert_eq!(names(&t.join("d")), ["keep", "newdir", "sub"], "marker first: {marker_first}");
        assert_eq!(names(&t.join("d/sub")), ["new"], "marker first: {marker_first}");
        assert_eq!(fs::read(t.join("d/keep")).unwrap(), b"upper");
        assert!(exists(&t.join("outside")));
    }
}

#[test]
fn diff_id_covers_every_uncompressed_byte() {
    let mut tar = Layer::new().dir("a/").file("a/f", &[5u8; 100_000]).tar();
    // GNU tar pads the archive to a 10 KiB record; the padding is part of the diff ID.
    tar.resize(tar.len().div_ceil(10240) * 10240, 0);
    let want = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    for (bytes, compression) in [(tar.clone(), Compression::None), (gzip(&tar), Compression::Gzip)] {
        let target = tempfile::tempdir().unwrap();
        let applied = apply_layer(&bytes[..], compression, target.path(), &DELETE).unwrap();
        assert_eq!(applied, Applied { diff_id: want.clone(), uncompressed_bytes: tar.len() as u64 });
        assert_eq!(fs::read(target.path().join("a/f")).unwrap(), vec![5u8; 100_000]);
    }

    // Two concatenated gzip members are one stream.
    let (first, second) = tar.split_at(700);
    let mut members = gzip(first);
    members.extend(gzip(second));
    let target = tempfile::tempdir().unwrap();
    assert_eq!(apply_layer(&members[..], Compression::Gzip, target.path(), &DELETE).unwrap().diff_id, want);
}

#[test]
fn broken_streams_fail() {
    let tar = Layer::new().file("f", &[1u8; 50_000]).file("g", b"g").tar();
    let compressed = gzip(&tar);
    for cut in [compressed.len() / 2, compressed.len() - 4] {
        let target = tempfile::tempdir().unwrap();
        let result = apply_layer(&compressed[..cut], Compression::Gzip, target.path(), &DELETE);
        assert!(matches!(result, Err(SnapshotError::Invalid(_))), "cut at {cut}: {result:?}");
    }
    let target = tempfile::tempdir().unwrap();
    let result = apply(&tar[..1000], target.path(), &DELETE);
    assert!(is_invalid(result, "layer ends inside the file"));
    let mut corrupt = tar.clone();
    corrupt[100] ^= 0xff;
    assert!(is_invalid(apply(&corrupt, target.path(), &DELETE), "malformed layer"));
    let result = apply_layer(&b"not gzip at all"[..], Compression::Gzip, target.path(), &DELETE);
    assert!(matches!(result, Err(SnapshotError::Invalid(_))));
}

/// A reader that fails as a disk would, after some good bytes.
struct Failing<'a>(&'a [u8]);

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_failing_reader_is_an_io_error() {
    let tar = Layer::new().file("f", &[1u8; 50_000]).tar();
    let compressed = gzip(&tar);
    for (bytes, compression) in [(&tar[..20_000], Compression::None), (&compressed[..100], Compression::Gzip)] {
        let target = tempfile::tempdir().unwrap();
        let result = apply_layer(Failing(bytes), compression, target.path(), &DELETE);
        match result {
            Err(SnapshotError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
            other => panic!("{compression:?}: {other:?}"),
        }
    }
}

#[test]
fn overlay_whiteouts_are_devices_and_opaque_is_an_attribute() {
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    let tar = Layer::new()
        .file("etc/.wh.hosts", b"")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("later/.wh..wh..opq", b"")
        .file("later/new", b"n")
        .tar();
    apply(&tar, u, &OVERLAY).unwrap();
    let hosts = stat(&u.join("etc/hosts"));
    assert!(hosts.file_type().is_char_device() && hosts.rdev() == 0);
    assert!(is_opaque(&u.join("opq")).unwrap());
    assert!(is_opaque(&u.join("later")).unwrap());
    assert!(!is_opaque(&u.join("etc")).unwrap());
    assert_eq!(names(&u.join("etc")), ["hosts"], "no .wh. file is ever created");
    assert_eq!(names(&u.join("later")), ["new"]);
}

#[test]
fn overlay_missing_parents_take_lower_metadata() {
    let lower = tempfile::tempdir().unwrap();
    let tar = Layer::new()
        .entry(EntryType::Directory, "srv/", b"", |h| {
            h.set_mode(0o2710);
            h.set_uid(33);
            h.set_gid(34);
            h.set_mtime(12345);
        })
        .pax(&[("SCHILY.xattr.user.origin", b"lower")])
        .dir("srv/www/")
        .file("srv/www/.wh..wh..opq", b"")
        .tar();
    apply(&tar, lower.path(), &OVERLAY).unwrap();

    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    let lowers = [lower.path().to_path_buf()];
    let opts = ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &lowers };
    apply(&Layer::new().file("srv/www/index.html", b"hi").file("new/f", b"").tar(), u, &opts).unwrap();
    let srv = stat(&u.join("srv"));
    assert_eq!((srv.mode() & 0o7777, srv.uid(), srv.gid(), srv.mtime()), (0o2710, 33, 34, 12345));
    assert_eq!(xattr::get(&u.join("srv/www"), OsStr::new("user.origin")).unwrap().unwrap(), b"lower");
    assert!(!is_opaque(&u.join("srv/www")).unwrap(), "overlay's own attributes are not copied");
    let new = stat(&u.join("new"));
    assert_eq!((new.mode() & 0o7777, new.uid(), new.gid()), (0o755, 0, 0));
}

#[test]
fn overlay_hard_links_copy_up_their_target() {
    let bottom = tempfile::tempdir().unwrap();
    let tar = Layer::new()
        .entry(EntryType::Directory, "bin/", b"", |h| h.set_mode(0o750))
        .pax(&[("SCHILY.xattr.user.k", b"v")])
        .entry(EntryType::Regular, "bin/tool", b"tool", |h| {
            h.set_mode(0o4711);
            h.set_uid(7);
            h.set_mtime(4242);
        })
        .file("bin/hidden", b"h")
        .file("gone/f", b"f")
        .tar();
    apply(&tar, bottom.path(), &OVERLAY).unwrap();
    let middle = tempfile::tempdir().unwrap();
    let tar = Layer::new().file("bin/.wh.hidden", b"").file("gone/.wh..wh..opq", b"").tar();
    let below = [bottom.path().to_path_buf()];
    apply(&tar, middle.path(), &ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &below }).unwrap();

    let lowers = [middle.path().to_path_buf(), bottom.path().to_path_buf()];
    let opts = ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &lowers };
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    apply(&Layer::new().hard_link("usr/bin/tool", "bin/tool").tar(), u, &opts).unwrap();
    let tool = stat(&u.join("bin/tool"));
    assert_eq!(fs::read(u.join("bin/tool")).unwrap(), b"tool");
    assert_eq!((tool.mode() & 0o7777, tool.uid(), tool.mtime(), tool.nlink()), (0o4711, 7, 4242, 2));
    assert_eq!(stat(&u.join("usr/bin/tool")).ino(), tool.ino());
    assert_eq!(xattr::get(&u.join("bin/tool"), OsStr::new("user.k")).unwrap().unwrap(), b"v");
    assert_eq!(stat(&u.join("bin")).mode() & 0o7777, 0o750);
    assert_ne!(tool.ino(), stat(&bottom.path().join("bin/tool")).ino(), "the lower file is untouched");

    for (link, why) in [("bin/hidden", "whited out"), ("gone/f", "below an opaque directory")] {
        let upper = tempfile::tempdir().unwrap();
        let result = apply(&Layer::new().hard_link("l", link).tar(), upper.path(), &opts);
        assert!(is_invalid(result, "not found"), "{why}");
    }
}

/// An overlay mount, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn overlay_layers_mount_as_the_merged_image() {
    let dir = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|n| dir.path().join(n));
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let base = Layer::new()
        .dir("etc/")
        .file("etc/keep", b"k")
        .file("etc/gone", b"g")
        .dir("etc/gonedir/")
        .file("etc/gonedir/f", b"f")
        .dir("opq/")
        .file("opq/old", b"o")
        .file("opq/sub/old", b"o")
        .file("opq/replaced", b"old")
        .gzip();
    apply_layer(&base[..], Compression::Gzip, &lower, &OVERLAY).unwrap();
    let lowers = [lower.clone()];
    let opts = ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &lowers };
    let top = Layer::new()
        .file("etc/.wh.gone", b"")
        .file("etc/.wh.gonedir", b"")
        .file("opq/replaced", b"new")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"n")
        .file("etc/added", b"a")
        .gzip();
    apply_layer(&top[..], Compression::Gzip, &upper, &opts).unwrap();

    let data = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    nix::mount::mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(data.as_str())).unwrap();
    let _mounted = Mounted(merged.clone());
    assert_eq!(names(&merged), ["etc", "opq"]);
    assert_eq!(names(&merged.join("etc")), ["added", "keep"]);
    assert_eq!(names(&merged.join("opq")), ["new", "replaced"]);
    assert_eq!(fs::read(merged.join("opq/replaced")).unwrap(), b"new");
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"k");
}

/// A directory of the layer swapped back and forth with a symlink to an outside
/// directory while the layer is applied (`renameat2(RENAME_EXCHANGE)`, so the name is
/// always one or the other): the entries that follow never land outside, whether the
/// application notices the symlink (and fails) or still holds the directory it opened.
#[test]
fn a_directory_swapped_for_a_symlink_mid_layer_never_sends_writes_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let outside = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer.dir("dir/");
    for i in 0..300 {
        layer.file(&format!("dir/f{i}"), b"x");
    }
    let tar = layer.tar();
    for round in 0..40 {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = scratch.path().join("link");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (dir, link, stop) = (target.join("dir"), link.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (at, flags) = (nix::fcntl::AT_FDCWD, nix::fcntl::RenameFlags::RENAME_EXCHANGE);
                    // Fails (ENOENT) until the layer has made `dir`.
                    let _ = nix::fcntl::renameat2(at, &dir, at, &link, flags);
                }
            })
        };
        let _ = apply(&tar, &target, if round % 2 == 0 { &DELETE } else { &OVERLAY });
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(names(outside.path()), Vec::<String>::new(), "round {round}: a file was written outside");
    }
}
