//! OCI image layouts for the image tests, made with the `umoci` CLI once per test binary.
//!
//! `two_layer_layout` is a busybox root filesystem with test data in layer 1 and, in layer 2,
//! the changes an unpacker must get right: deletions (whiteouts), a replaced file and a new
//! one. `opaque_layer_layout` adds a third layer that makes `data/dir` opaque. Both are
//! checked as they are built, so a umoci that lays them out differently fails loudly here
//! rather than as a puzzling result in a mount test. Building needs root (mknod, chown).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::*;

/// The ref name both layouts' images carry in index.json.
pub(crate) const TWO_LAYER_TAG: &str = "latest";
/// The ref name of the image in `opaque_layer_layout`.
pub(crate) const OPAQUE_TAG: &str = "opaque";

/// Where every layout of this run lives; the pid keeps parallel runs apart, and the
/// directory outlives every test because the layouts are shared.
fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ctrfs-oci-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the OCI fixture directory");
        dir
    })
}

/// A layout with one image, tagged `latest`, of two layers:
///
/// - layer 1: busybox in `bin/` with a relative symlink per applet, `etc/passwd` and
///   `etc/group`, empty `tmp proc sys dev root`, and `data/`: `keep.txt` ("kept\n"),
///   `gone.txt` and `replaced.txt` ("lower\n"), `dir/a` ("a\n"), `dir/b` ("b\n"),
///   `hardlink` (a hard link of keep.txt), `suid` (mode 4755, owner 1000:1000) and `null`
///   (character device 1:3);
/// - layer 2: deletes `data/gone.txt` and `data/dir/a`, rewrites `data/replaced.txt` to
///   "upper\n", adds `data/new.txt` ("new\n").
///
/// The config runs `/bin/sh` in `/` with a PATH.
pub(crate) fn two_layer_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        require_root();
        let layout = fixture_dir().join("two-layer");
        build_two_layer(&layout);
        check_two_layer(&layout);
        layout
    })
}

/// `two_layer_layout`'s image plus a third layer holding `data/dir/`,
/// `data/dir/.wh..wh..opq` and `data/dir/c` ("c\n"): after it, `data/dir` holds only `c`.
/// Its only tag is `opaque`.
pub(crate) fn opaque_layer_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let layout = fixture_dir().join("opaque");
        copy_tree(two_layer_layout(), &layout);
        let layer = fixture_dir().join("opaque-layer.tar");
        write_opaque_layer(&layer);
        let image = image_ref(&layout, TWO_LAYER_TAG);
        umoci(&[
            "raw",
            "add-layer",
            "--image",
            &image,
            "--tag",
            OPAQUE_TAG,
            path_str(&layer),
        ]);
        umoci(&["rm", "--image", &image]);
        umoci(&["gc", "--layout", path_str(&layout)]);
        check_opaque(&layout);
        layout
    })
}

/// A tar of `layout` for `ctrfs import`, made once per layout: blobs first, then
/// `index.json` and `oci-layout`, the order `docker save` uses.
pub(crate) fn layout_tar(layout: &Path) -> PathBuf {
    static TARS: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut tars = TARS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    tars.entry(layout.to_owned())
        .or_insert_with(|| {
            let out = layout.with_extension("tar");
            let mut builder = tar::Builder::new(File::create(&out).expect("create the layout tar"));
            builder
                .append_dir_all("blobs", layout.join("blobs"))
                .expect("tar the blobs");
            for name in ["index.json", "oci-layout"] {
                builder
                    .append_path_with_name(layout.join(name), name)
                    .expect("tar the layout files");
            }
            builder.finish().expect("finish the layout tar");
            out
        })
        .clone()
}

/// The index.json entry tagged `tag`, as compact JSON: what `target` should hold after
/// the import.
pub(crate) fn layout_manifest_descriptor(layout: &Path, tag: &str) -> String {
    serde_json::to_string(&index_entry(layout, tag)).expect("serialize a descriptor")
}

/// Every blob of the layout as (sha256 hex, path), sorted by hex.
pub(crate) fn layout_blobs(layout: &Path) -> Vec<(String, PathBuf)> {
    let dir = layout.join("blobs/sha256");
    let mut blobs: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("read a blob entry").path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    blobs.sort();
    blobs
}

/// One member of a layer archive, as much of it as the tests look at.
#[derive(Debug, Clone)]
pub(crate) struct LayerMember {
    /// The path as stored, without a leading `./`.
    pub(crate) path: String,
    /// Regular file, hard link, symlink, directory, device...
    pub(crate) kind: tar::EntryType,
    /// Permission bits, including setuid.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u64,
    /// Group.
    pub(crate) gid: u64,
    /// A link's target.
    pub(crate) link: Option<String>,
}

/// The members of each layer of the image tagged `tag`, layer by layer, bottom first.
pub(crate) fn layer_members(layout: &Path, tag: &str) -> Vec<Vec<LayerMember>> {
    let manifest = read_blob_json(layout, &index_entry(layout, tag)["digest"]);
    let layers = manifest["layers"].as_array().expect("manifest layers");
    layers
        .iter()
        .map(|layer| {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "umoci gzips layers"
            );
            let file = File::open(blob_path(layout, &layer["digest"])).expect("open a layer");
            list_tar(flate2::read::GzDecoder::new(file))
        })
        .collect()
}

fn list_tar(reader: impl Read) -> Vec<LayerMember> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().expect("read a layer tar");
    entries
        .map(|entry| {
            let entry = entry.expect("read a layer member");
            let header = entry.header();
            let path = entry
                .path()
                .expect("member path")
                .to_string_lossy()
                .into_owned();
            LayerMember {
                path: path.strip_prefix("./").unwrap_or(&path).to_owned(),
                kind: header.entry_type(),
                mode: header.mode().expect("member mode"),
                uid: header.uid().expect("member uid"),
                gid: header.gid().expect("member gid"),
                link: entry
                    .link_name()
                    .expect("member link")
                    .map(|l| l.to_string_lossy().into_owned()),
            }
        })
        .collect()
}

fn build_two_layer(layout: &Path) {
    let image = image_ref(layout, TWO_LAYER_TAG);
    let bundle = fixture_dir().join("bundle");
    umoci(&["init", "--layout", path_str(layout)]);
    umoci(&["new", "--image", &image]);
    umoci(&["unpack", "--image", &image, path_str(&bundle)]);
    let rootfs = bundle.join("rootfs");
    write_lower(&rootfs);
    // --refresh-bundle points the bundle at the new manifest, so the next repack diffs
    // against layer 1 rather than against the empty image.
    umoci(&[
        "repack",
        "--refresh-bundle",
        "--image",
        &image,
        path_str(&bundle),
    ]);
    write_upper(&rootfs);
    umoci(&["repack", "--image", &image, path_str(&bundle)]);
    umoci(&[
        "config",
        "--no-history",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.workingdir",
        "/",
    ]);
    // Drops the manifests and configs the intermediate steps left behind.
    umoci(&["gc", "--layout", path_str(layout)]);
    fs::remove_dir_all(&bundle).expect("remove the umoci bundle");
}

fn write_lower(rootfs: &Path) {
    write_busybox(rootfs);
    for dir in ["etc", "proc", "sys", "dev", "root", "data/dir"] {
        fs::create_dir_all(rootfs.join(dir)).expect("create a rootfs directory");
    }
    fs::create_dir_all(rootfs.join("tmp")).expect("create tmp");
    set_mode(&rootfs.join("tmp"), 0o1777);
    write_file(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    write_file(&rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n");
    let data = rootfs.join("data");
    write_file(&data.join("keep.txt"), "kept\n");
    write_file(&data.join("gone.txt"), "lower\n");
    write_file(&data.join("replaced.txt"), "lower\n");
    write_file(&data.join("dir/a"), "a\n");
    write_file(&data.join("dir/b"), "b\n");
    fs::hard_link(data.join("keep.txt"), data.join("hardlink")).expect("hard link data/hardlink");
    let suid = data.join("suid");
    write_file(&suid, "suid\n");
    // chown clears the setuid bit, so ownership goes first.
    std::os::unix::fs::chown(&suid, Some(1000), Some(1000)).expect("chown data/suid");
    set_mode(&suid, 0o4755);
    make_null_device(&data.join("null"));
}

fn write_busybox(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("create bin");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed (scripts/deps.sh)");
    fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    set_mode(&bin.join("busybox"), 0o755);
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("run busybox --list");
    assert!(list.status.success(), "busybox --list failed");
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", bin.join(applet))
            .unwrap_or_else(|e| panic!("symlink bin/{applet}: {e}"));
    }
}

fn make_null_device(path: &Path) {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .expect("mknod data/null");
}

fn write_upper(rootfs: &Path) {
    let data = rootfs.join("data");
    fs::remove_file(data.join("gone.txt")).expect("delete data/gone.txt");
    fs::remove_file(data.join("dir/a")).expect("delete data/dir/a");
    write_file(&data.join("replaced.txt"), "upper\n");
    write_file(&data.join("new.txt"), "new\n");
}

/// Writes a file with mode 0644 whatever the umask.
fn write_file(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, 0o644);
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// The layer that makes `data/dir` opaque, uncompressed as `umoci raw add-layer` wants it.
fn write_opaque_layer(out: &Path) {
    let mut builder = tar::Builder::new(File::create(out).expect("create the opaque layer"));
    let members: [(&str, tar::EntryType, u32, &[u8]); 3] = [
        ("data/dir/", tar::EntryType::Directory, 0o755, b""),
        ("data/dir/.wh..wh..opq", tar::EntryType::Regular, 0o644, b""),
        ("data/dir/c", tar::EntryType::Regular, 0o644, b"c\n"),
    ];
    for (path, kind, mode, content) in members {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(content.len() as u64);
        builder
            .append_data(&mut header, path, content)
            .expect("add an opaque layer member");
    }
    builder.finish().expect("finish the opaque layer");
}

/// Panics unless layer 2 holds the whiteouts and files the description promises.
fn check_two_layer(layout: &Path) {
    let layers = layer_members(layout, TWO_LAYER_TAG);
    assert_eq!(
        layers.len(),
        2,
        "umoci should have made exactly 2 layers, made {}",
        layers.len()
    );
    let lower = &layers[0];
    for path in [
        "bin/busybox",
        "bin/sh",
        "etc/passwd",
        "data/keep.txt",
        "data/dir/a",
        "data/gone.txt",
        "tmp/",
    ] {
        assert!(
            find(lower, path).is_some(),
            "layer 1 lacks {path}: {:?}",
            paths(lower)
        );
    }
    let suid = find(lower, "data/suid").expect("layer 1 holds data/suid");
    assert_eq!(
        (suid.mode & 0o7777, suid.uid, suid.gid),
        (0o4755, 1000, 1000),
        "data/suid"
    );
    assert!(
        find(lower, "data/null").is_some_and(|m| m.kind.is_character_special()),
        "data/null is a char device"
    );
    let links: Vec<&LayerMember> = lower.iter().filter(|m| m.kind.is_hard_link()).collect();
    assert_eq!(
        links.len(),
        1,
        "layer 1 should hold one hard link: {links:?}"
    );
    // umoci stores whichever name it walks first as the file, so either may be the link.
    let mut pair = [
        links[0].path.as_str(),
        links[0].link.as_deref().unwrap_or(""),
    ];
    pair.sort();
    assert_eq!(
        pair,
        ["data/hardlink", "data/keep.txt"],
        "the hard link joins keep.txt and hardlink"
    );
    let upper = &layers[1];
    for path in [
        "data/.wh.gone.txt",
        "data/dir/.wh.a",
        "data/replaced.txt",
        "data/new.txt",
    ] {
        assert!(
            find(upper, path).is_some(),
            "layer 2 lacks {path}: {:?}",
            paths(upper)
        );
    }
    assert!(
        find(upper, "data/keep.txt").is_none(),
        "layer 2 should not repeat unchanged files"
    );
}

fn check_opaque(layout: &Path) {
    let layers = layer_members(layout, OPAQUE_TAG);
    assert_eq!(layers.len(), 3, "the opaque image should have 3 layers");
    let top = &layers[2];
    for path in ["data/dir/", "data/dir/.wh..wh..opq", "data/dir/c"] {
        assert!(
            find(top, path).is_some(),
            "umoci changed the opaque layer; {path} missing: {:?}",
            paths(top)
        );
    }
    let index = read_json(&layout.join("index.json"));
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(1),
        "only the opaque tag is left"
    );
}

fn find<'a>(members: &'a [LayerMember], path: &str) -> Option<&'a LayerMember> {
    let bare = path.trim_end_matches('/');
    members
        .iter()
        .find(|m| m.path.trim_end_matches('/') == bare)
}

fn paths(members: &[LayerMember]) -> Vec<&str> {
    members.iter().map(|m| m.path.as_str()).collect()
}

fn index_entry(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().expect("index.json manifests");
    entries
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("{} has no tag {tag}", layout.display()))
        .clone()
}

fn blob_path(layout: &Path, digest: &Value) -> PathBuf {
    let digest = digest.as_str().expect("digest string");
    let hex = digest.strip_prefix("sha256:").expect("umoci uses sha256");
    layout.join("blobs/sha256").join(hex)
}

fn read_blob_json(layout: &Path, digest: &Value) -> Value {
    read_json(&blob_path(layout, digest))
}

fn image_ref(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", layout.display())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("fixture paths are UTF-8")
}

fn umoci(args: &[&str]) {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .expect("run umoci (scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "umoci {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a layout (directories and regular files only).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create a layout copy");
    for entry in fs::read_dir(from).expect("list a layout") {
        let entry = entry.expect("read a layout entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("layout entry type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a layout file");
        }
    }
}

#[test]
fn fixture_layouts_have_the_layers_the_image_tests_rely_on() {
    let two = two_layer_layout();
    let upper = &layer_members(two, TWO_LAYER_TAG)[1];
    let mut whiteouts: Vec<&str> = paths(upper)
        .into_iter()
        .filter(|p| p.contains(".wh."))
        .collect();
    whiteouts.sort();
    assert_eq!(whiteouts, ["data/.wh.gone.txt", "data/dir/.wh.a"]);

    let opaque = opaque_layer_layout();
    let layers = layer_members(opaque, OPAQUE_TAG);
    assert!(find(&layers[2], "data/dir/.wh..wh..opq").is_some_and(|m| m.kind.is_file()));
    // The lower two layers are shared, blob for blob.
    let two_layers = layer_members(two, TWO_LAYER_TAG);
    assert_eq!(paths(&layers[1]), paths(&two_layers[1]));

    for layout in [two, opaque] {
        let blobs = layout_blobs(layout);
        // manifest, config and one blob per layer; gc left nothing else.
        let layer_count = layer_members(
            layout,
            if layout == two {
                TWO_LAYER_TAG
            } else {
                OPAQUE_TAG
            },
        )
        .len();
        assert_eq!(blobs.len(), 2 + layer_count, "{}", layout.display());
        for (hex, path) in &blobs {
            assert_eq!(
                &hex::encode(Sha256::digest(fs::read(path).unwrap())),
                hex,
                "blob {hex} is intact"
            );
        }
    }
    let config_digest =
        read_blob_json(two, &index_entry(two, TWO_LAYER_TAG)["digest"])["config"]["digest"].clone();
    let config = read_blob_json(two, &config_digest);
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
}

#[test]
fn ctrfs_import_copies_every_blob_and_names_the_image() {
    let two = two_layer_layout();
    let opaque = opaque_layer_layout();
    let cases = [
        (two.to_owned(), None, TWO_LAYER_TAG, two),
        (
            layout_tar(two),
            Some("docker.io/library/two-layer:latest"),
            TWO_LAYER_TAG,
            two,
        ),
        (layout_tar(opaque), None, OPAQUE_TAG, opaque),
    ];
    for (source, name, tag, layout) in cases {
        let mnt = tempfile::tempdir().expect("stand-in mount");
        fs::create_dir_all(mnt.path().join("content/sha256")).unwrap();
        let mut import = Command::new(env!("CARGO_BIN_EXE_ctrfs"));
        import.arg("import").arg(mnt.path()).arg(&source);
        if let Some(name) = name {
            import.args(["--name", name]);
        }
        let out = import.output().expect("run ctrfs import");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ctrfs import {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );

        for (hex, path) in layout_blobs(layout) {
            let stored = mnt.path().join("content/sha256").join(&hex);
            assert_eq!(
                fs::read(&stored).ok(),
                Some(fs::read(&path).unwrap()),
                "blob {hex} stored"
            );
        }
        let image = name.unwrap_or(tag);
        let target = read_json(&mnt.path().join("images").join(image).join("target"));
        let expected: Value =
            serde_json::from_str(&layout_manifest_descriptor(layout, tag)).unwrap();
        assert_eq!(target, expected, "{image}");
        let summary = format!(
            "imported {image} {} (",
            expected["digest"].as_str().unwrap()
        );
        assert!(stdout.starts_with(&summary), "summary line: {stdout}");
    }
}
