//! Imports into a plain directory standing in for the mount, from small layouts built by
//! hand: a directory, tars of it (plain, gzip, members in either order) and broken ones.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use tempfile::TempDir;

use super::progress::{human_bytes, Progress, Totals};
use super::*;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A layout under construction: blobs are written as they are made, index.json at the end.
struct Layout {
    root: PathBuf,
    entries: Vec<Value>,
}

impl Layout {
    fn new(root: &Path) -> Self {
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self { root: root.to_owned(), entries: Vec::new() }
    }

    /// Writes a sha256 blob; returns its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let hex = hex::encode(Sha256::digest(bytes));
        fs::write(self.root.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    /// A one-layer image whose layer holds `payload`; adds its index entry with `reference`.
    fn image(&mut self, reference: Option<&str>, payload: &str) -> Value {
        let layer = self.blob("application/vnd.oci.image.layer.v1.tar", payload.as_bytes());
        let config_json = format!(r#"{{"x":"{payload}"}}"#);
        let config = self.blob("application/vnd.oci.image.config.v1+json", config_json.as_bytes());
        let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
        let mut entry = self.blob(MANIFEST, manifest.to_string().as_bytes());
        if let Some(reference) = reference {
            entry["annotations"] = json!({ REF_NAME: reference });
        }
        self.entries.push(entry.clone());
        entry
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": self.entries});
        fs::write(self.root.join("index.json"), index.to_string()).unwrap();
    }

    fn blob_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = ["sha256", "sha512"]
            .iter()
            .filter_map(|alg| fs::read_dir(self.root.join("blobs").join(alg)).ok())
            .flatten()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }
}

/// A temp dir with `layout/` and a stand-in mount `mnt/` holding `content/sha256`.
struct Scene {
    dir: TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("mnt/content/sha256")).unwrap();
        Self { dir }
    }

    fn layout(&self) -> Layout {
        Layout::new(&self.path("layout"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mnt(&self) -> PathBuf {
        self.path("mnt")
    }

    fn import(&self, source: &Path, name: Option<&str>) -> Result<ImportReport, ImportError> {
        import(&ImportArgs {
            mountpoint: self.mnt(),
            path: source.to_owned(),
            name: name.map(str::to_owned),
            progress: false,
        })
    }

    fn target(&self, image: &str) -> Value {
        let text = fs::read_to_string(self.mnt().join("images").join(image).join("target")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn images_dir_is_empty(&self) -> bool {
        fs::read_dir(self.mnt().join("images")).map_or(true, |mut d| d.next().is_none())
    }
}

/// Every blob of the layout is in the mount's content store, byte for byte.
fn assert_all_blobs_stored(layout: &Layout, mnt: &Path) {
    for file in layout.blob_files() {
        let relative = file.strip_prefix(layout.root.join("blobs")).unwrap();
        let stored = fs::read(mnt.join("content").join(relative))
            .unwrap_or_else(|e| panic!("{} not stored: {e}", relative.display()));
        assert_eq!(stored, fs::read(&file).unwrap(), "{}", relative.display());
    }
}

fn message(result: Result<ImportReport, ImportError>) -> String {
    result.expect_err("the import should fail").to_string()
}

/// A tar of `dir`; `prefix` is what member paths start with ("" or "./").
fn tar_of(dir: &Path, out: &Path, prefix: &str, gzip: bool) {
    let file = fs::File::create(out).unwrap();
    let write = |sink: &mut dyn Write| {
        let mut builder = tar::Builder::new(sink);
        for member in ["oci-layout", "index.json"] {
            builder.append_path_with_name(dir.join(member), format!("{prefix}{member}")).unwrap();
        }
        builder.append_dir_all(format!("{prefix}blobs"), dir.join("blobs")).unwrap();
        builder.finish().unwrap();
    };
    if gzip {
        let mut encoder = GzEncoder::new(file, flate2::Compression::fast());
        write(&mut encoder);
        encoder.finish().unwrap();
    } else {
        let mut file = file;
        write(&mut file);
    }
}

/// A tar whose members come in exactly the given order: (name, content).
fn tar_in_order(out: &Path, members: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
    for (name, content) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, content.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

fn blob_members(layout: &Layout) -> Vec<(String, Vec<u8>)> {
    layout
        .blob_files()
        .iter()
        .map(|f| {
            let relative = f.strip_prefix(&layout.root).unwrap().to_string_lossy().into_owned();
            (relative, fs::read(f).unwrap())
        })
        .collect()
}

fn metadata_members(layout: &Layout) -> Vec<(String, Vec<u8>)> {
    ["index.json", "oci-layout"]
        .iter()
        .map(|m| (m.to_string(), fs::read(layout.root.join(m)).unwrap()))
        .collect()
}

#[test]
fn a_directory_layout_becomes_an_image_named_by_its_ref() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "layer one");
    layout.write_index();

    let report = scene.import(&layout.root, None).unwrap();

    assert_all_blobs_stored(&layout, &scene.mnt());
    assert_eq!(scene.target("v1"), entry);
    assert_eq!(report.blobs_copied, 3);
    assert_eq!(report.blobs_skipped, 0);
    let total: u64 = layout.blob_files().iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert_eq!(report.bytes_copied, total);
    let image = &report.images[0];
    assert_eq!((image.name.as_str(), image.digest.as_str()), ("v1", entry["digest"].as_str().unwrap()));
    assert_eq!((image.blobs, image.bytes), (3, total));
}

#[test]
fn plain_and_gzip_tars_import_like_the_directory() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "layer one");
    layout.write_index();
    for (gzip, prefix) in [(false, ""), (false, "./"), (true, ""), (true, "./")] {
        let archive = scene.path("layout.tar");
        tar_of(&layout.root, &archive, prefix, gzip);
        let mnt = scene.mnt();
        fs::remove_dir_all(&mnt).unwrap();
        fs::create_dir_all(mnt.join("content/sha256")).unwrap();

        let report = scene.import(&archive, Some("example.com/app:1")).unwrap();

        assert_all_blobs_stored(&layout, &mnt);
        assert_eq!(scene.target("example.com/app:1"), entry, "gzip={gzip} prefix={prefix:?}");
        assert_eq!((report.blobs_copied, report.images[0].blobs), (3, 3));
    }
}

#[test]
fn archive_members_may_come_in_any_order() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "payload");
    layout.write_index();
    let blobs_first = [blob_members(&layout), metadata_members(&layout)].concat();
    let metadata_first = [metadata_members(&layout), blob_members(&layout)].concat();
    for (i, members) in [blobs_first, metadata_first].iter().enumerate() {
        let archive = scene.path(&format!("ordered-{i}.tar"));
        tar_in_order(&archive, members);
        scene.import(&archive, Some(&format!("order{i}"))).unwrap();
        assert_eq!(scene.target(&format!("order{i}")), entry);
    }
    assert_all_blobs_stored(&layout, &scene.mnt());
}

#[test]
fn name_is_the_image_for_one_entry_and_a_prefix_for_several() {
    let scene = Scene::new();
    let mut one = Layout::new(&scene.path("one"));
    let only = one.image(None, "only");
    one.write_index();
    scene.import(&one.root, Some("docker.io/library/only:latest")).unwrap();
    assert_eq!(scene.target("docker.io/library/only:latest"), only);

    let mut several = Layout::new(&scene.path("several"));
    let a = several.image(Some("a"), "first");
    let b = several.image(Some("b"), "second");
    several.write_index();
    let report = scene.import(&several.root, Some("repo/app")).unwrap();
    assert_eq!(scene.target("repo/app:a"), a);
    assert_eq!(scene.target("repo/app:b"), b);
    let names: Vec<&str> = report.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["repo/app:a", "repo/app:b"]);
}

#[test]
fn entries_without_ref_names_need_a_name() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    layout.image(Some("a"), "first");
    layout.image(None, "second");
    layout.write_index();
    assert_eq!(
        message(scene.import(&layout.root, None)),
        "give --name: index.json entry 1 has no org.opencontainers.image.ref.name"
    );
    assert!(message(scene.import(&layout.root, Some("repo"))).contains("entry 1 has no org.opencontainers"));
    // Naming is judged before any blob is copied.
    assert!(fs::read_dir(scene.mnt().join("content/sha256")).unwrap().next().is_none());
    assert!(scene.images_dir_is_empty());
}

#[test]
fn clashing_or_invalid_names_are_refused() {
    let scene = Scene::new();
    let mut twins = Layout::new(&scene.path("twins"));
    twins.image(Some("same"), "first");
    twins.image(Some("same"), "second");
    twins.write_index();
    assert_eq!(message(scene.import(&twins.root, None)), "index.json entries 0 and 1 both become image same");

    let mut bad = Layout::new(&scene.path("bad"));
    bad.image(Some("a//b"), "first");
    bad.write_index();
    assert!(message(scene.import(&bad.root, None)).starts_with("index.json entry 0: invalid image name \"a//b\""));
    assert!(message(scene.import(&bad.root, Some("x/target"))).contains("invalid image name"));
    assert!(scene.images_dir_is_empty());
}

#[test]
fn invalid_layouts_are_refused_with_the_reason() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "payload");
    let root = layout.root.clone();
    let good_digest = entry["digest"].as_str().unwrap().to_owned();
    let with_digest = |digest: &str| {
        let mut e = entry.clone();
        e["digest"] = json!(digest);
        json!({"schemaVersion": 2, "manifests": [e]}).to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "index.json is not JSON"),
        (r#"{"schemaVersion":1,"manifests":[]}"#.into(), "schemaVersion is not 2"),
        (r#"{"schemaVersion":2}"#.into(), "no manifests array"),
        (r#"{"schemaVersion":2,"manifests":[]}"#.into(), "lists no manifests"),
        (json!({"schemaVersion": 2, "mediaType": MANIFEST, "manifests": [entry]}).to_string(), "not an OCI index"),
        (with_digest("sha256:xyz"), "needs 64 lowercase hex digits"),
        (with_digest(&good_digest.to_uppercase().replace("SHA256", "sha256")), "lowercase hex"),
        (with_digest("md5:abc"), "not sha256 or sha512"),
        (with_digest(&format!("sha256:{}", "0".repeat(64))), "is not in blobs/"),
        (json!({"schemaVersion": 2, "manifests": [{"digest": good_digest, "size": 1}]}).to_string(), "mediaType"),
    ];
    for (index, reason) in cases {
        fs::write(root.join("index.json"), &index).unwrap();
        let got = message(scene.import(&root, None));
        assert!(got.starts_with("not an OCI image layout: "), "{index}: {got}");
        assert!(got.contains(reason), "{index}: {got} lacks {reason:?}");
    }

    let mut wrong_size = entry.clone();
    wrong_size["size"] = json!(1);
    fs::write(root.join("index.json"), json!({"schemaVersion": 2, "manifests": [wrong_size]}).to_string()).unwrap();
    assert!(message(scene.import(&root, None)).contains("descriptor size 1 but blob"));

    layout.write_index();
    fs::write(root.join("blobs/sha256/not-a-digest"), "x").unwrap();
    assert!(message(scene.import(&root, None)).contains("blobs/sha256/not-a-digest is not named by a sha256 digest"));
    fs::remove_file(root.join("blobs/sha256/not-a-digest")).unwrap();
    fs::create_dir(root.join("blobs/md5")).unwrap();
    assert!(message(scene.import(&root, None)).contains("blobs/md5: unsupported digest algorithm"));
    fs::remove_dir(root.join("blobs/md5")).unwrap();

    fs::write(root.join("oci-layout"), "{}").unwrap();
    assert!(message(scene.import(&root, None)).contains("oci-layout has no imageLayoutVersion"));
    fs::remove_file(root.join("oci-layout")).unwrap();
    assert_eq!(message(scene.import(&root, None)), "not an OCI image layout: no oci-layout file");
    assert!(scene.images_dir_is_empty());
}

#[test]
fn an_archive_is_checked_like_a_directory() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    layout.image(Some("v1"), "payload");
    layout.write_index();
    let archive = scene.path("no-marker.tar");
    let index_only = vec![("index.json".to_string(), fs::read(layout.root.join("index.json")).unwrap())];
    tar_in_order(&archive, &[blob_members(&layout), index_only].concat());
    assert_eq!(message(scene.import(&archive, None)), "not an OCI image layout: no oci-layout file");

    let bad_marker = vec![("oci-layout".to_string(), b"[]".to_vec())];
    tar_in_order(&archive, &[metadata_members(&layout)[..1].to_vec(), bad_marker].concat());
    assert!(message(scene.import(&archive, None)).contains("oci-layout has no imageLayoutVersion"));
    assert!(scene.images_dir_is_empty());

    let junk = scene.path("junk.bin");
    fs::write(&junk, vec![7u8; 2048]).unwrap();
    assert!(message(scene.import(&junk, None)).contains("is neither a directory nor a tar"));
}

#[test]
fn blobs_already_stored_with_their_size_are_skipped() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "layer bytes");
    layout.write_index();
    let layer_hex = hex::encode(Sha256::digest(b"layer bytes"));
    let stored = scene.mnt().join("content/sha256").join(&layer_hex);
    // Same size, different bytes: proves the file is left alone rather than rewritten.
    fs::write(&stored, "XXXXXXXXXXX").unwrap();

    let report = scene.import(&layout.root, None).unwrap();

    assert_eq!((report.blobs_copied, report.blobs_skipped), (2, 1));
    assert_eq!(fs::read_to_string(&stored).unwrap(), "XXXXXXXXXXX");
    assert_eq!(scene.target("v1"), entry);
    let again = scene.import(&layout.root, None).unwrap();
    assert_eq!((again.blobs_copied, again.blobs_skipped, again.bytes_copied), (0, 3, 0));

    // A stored file of another size is not the blob: it is written over.
    fs::write(&stored, "short").unwrap();
    assert_eq!(scene.import(&layout.root, None).unwrap().blobs_copied, 1);
    assert_eq!(fs::read_to_string(&stored).unwrap(), "layer bytes");
}

#[test]
fn a_corrupt_blob_is_named_and_not_stored() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    layout.image(Some("v1"), "genuine");
    layout.write_index();
    let hex = hex::encode(Sha256::digest(b"genuine"));
    fs::write(layout.root.join("blobs/sha256").join(&hex), "tampered").unwrap();

    let got = message(scene.import(&layout.root, None));

    assert_eq!(got, format!("blob sha256:{hex}: content does not match its digest"));
    assert!(!scene.mnt().join("content/sha256").join(&hex).exists());
    assert!(scene.images_dir_is_empty());
}

#[test]
fn sha512_blobs_go_to_their_own_directory() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    let entry = layout.image(Some("v1"), "payload");
    layout.write_index();
    let extra = b"a sha512 blob";
    let hex = hex::encode(Sha512::digest(extra));
    fs::create_dir(layout.root.join("blobs/sha512")).unwrap();
    fs::write(layout.root.join("blobs/sha512").join(&hex), extra).unwrap();
    fs::create_dir(scene.mnt().join("content/sha512")).unwrap();

    let report = scene.import(&layout.root, None).unwrap();

    assert_eq!(fs::read(scene.mnt().join("content/sha512").join(&hex)).unwrap(), extra);
    assert_eq!(report.blobs_copied, 4);
    // Not reachable from the image, so not counted in it.
    assert_eq!(report.images[0].blobs, 3);
    assert_eq!(scene.target("v1"), entry);
}

#[test]
fn the_destination_must_look_like_a_mount() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    layout.image(Some("v1"), "payload");
    layout.write_index();
    let elsewhere = scene.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let args = ImportArgs { mountpoint: elsewhere.clone(), path: layout.root.clone(), name: None, progress: false };
    let expected = format!("{} is not a ctrfs mount: it has no content/sha256 directory", elsewhere.display());
    assert_eq!(message(import(&args)), expected);
}

#[test]
fn sizes_and_progress_lines_read_well() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1024), "1.0 KiB");
    assert_eq!(human_bytes(300 << 20), "300.0 MiB");
    assert_eq!(human_bytes((1 << 20) - 1), "1.0 MiB");
    assert_eq!(human_bytes(1288490189), "1.2 GiB");

    let mut known = Progress::new(false, Totals { blobs: Some(40), bytes: Some(1288490189) });
    for _ in 0..12 {
        known.add_blob();
    }
    known.add_bytes(300 << 20);
    assert_eq!(known.line(), "import: 12/40 blobs, 300.0 MiB of 1.2 GiB");
    let mut unknown = Progress::new(false, Totals::default());
    unknown.add_blob();
    unknown.add_bytes(2048);
    assert_eq!(unknown.line(), "import: 1 blobs, 2.0 KiB");
}

#[test]
fn containerds_image_name_annotation_names_the_image_over_a_bare_tag() {
    let scene = Scene::new();
    let mut layout = scene.layout();
    layout.image(Some("latest"), "first");
    layout.entries[0]["annotations"]["io.containerd.image.name"] = json!("docker.io/library/busybox:latest");
    layout.write_index();
    let report = scene.import(&layout.root, None).unwrap();
    assert_eq!(report.images[0].name, "docker.io/library/busybox:latest");
}
