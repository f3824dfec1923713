//! `images/`: prefix directories, the `target` descriptor, `info.json`, deletion and name
//! rules (docs/interface.md, "Images").

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::SystemTime;

use serde_json::json;

use crate::common::*;

const BUSYBOX: &str = "images/docker.io/library/busybox:1.36";
const ATTRS: [&str; 3] = ["info.json", "labels", "target"];

#[test]
fn mkdir_p_creates_prefix_directories_without_attribute_files() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    fx.sh_ok("mkdir -p images/quay.io/org/tool");

    assert_eq!(ls(&fx.path("images")), ["docker.io", "quay.io"]);
    assert_eq!(ls(&fx.path("images/docker.io")), ["library"]);
    assert_eq!(ls(&fx.path("images/docker.io/library")), ["busybox:1.36"]);
    assert_eq!(ls(&fx.path(BUSYBOX)), Vec::<String>::new());
    assert_eq!(
        ls(&fx.path("images/quay.io/org/tool")),
        Vec::<String>::new()
    );
    for dir in ["images/docker.io", "images/docker.io/library", BUSYBOX] {
        assert!(fx.path(dir).is_dir(), "{dir} is not a directory");
        for attr in ATTRS {
            let p = fx.path(&format!("{dir}/{attr}"));
            assert_eq!(
                errno_of(fs::metadata(&p)),
                libc::ENOENT,
                "{} exists",
                p.display()
            );
        }
    }
}

#[test]
fn writing_a_target_makes_the_directory_an_image() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    put(
        &fx.path(&format!("{BUSYBOX}/target")),
        descriptor(1).to_string(),
    );

    // Only the files with a value are listed: no labels yet, and info.json (which exists
    // now) is reachable by name only.
    assert_eq!(ls(&fx.path(BUSYBOX)), ["target"]);
    assert_eq!(
        errno_of(fs::read(fx.path(&format!("{BUSYBOX}/labels")))),
        libc::ENOENT
    );
    let info = read_json(&fx.path(&format!("{BUSYBOX}/info.json")));
    assert_eq!(info["target"], descriptor(1));
    assert_eq!(info["labels"], json!({}));
    // The prefixes above stay plain directories.
    assert_eq!(ls(&fx.path("images/docker.io/library")), ["busybox:1.36"]);
    assert_eq!(ls(&fx.path("images/docker.io")), ["library"]);
}

#[test]
fn target_reads_back_byte_for_byte_as_written() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    let target = fx.path(&format!("{BUSYBOX}/target"));
    let desc = descriptor(7);
    // Written compactly on one line, without a newline: read back the same bytes.
    put(&target, desc.to_string());
    assert_eq!(read(&target), desc.to_string());
    assert_eq!(fs::metadata(&target).unwrap().len(), desc.to_string().len() as u64);
    // Written pretty, in another key order: the same again.
    let pretty = format!("{{\n  \"size\": {},\n  \"digest\": {},\n  \"mediaType\": {}\n}}\n", desc["size"], desc["digest"], desc["mediaType"]);
    put(&target, &pretty);
    assert_eq!(read(&target), pretty);
    // info.json shows the parsed descriptor.
    assert_eq!(read_json(&fx.path(&format!("{BUSYBOX}/info.json")))["target"], desc);
}

#[test]
fn info_json_holds_the_whole_record() {
    let fx = MountFixture::new();
    let t0 = SystemTime::now();
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    let desc = descriptor(2);
    put(&fx.path(&format!("{BUSYBOX}/target")), desc.to_string());
    put(
        &fx.path(&format!("{BUSYBOX}/labels")),
        "env=prod\nteam=infra\n",
    );
    let t1 = SystemTime::now();

    let info = read_json(&fx.path(&format!("{BUSYBOX}/info.json")));
    assert_eq!(info["name"], "docker.io/library/busybox:1.36");
    assert_eq!(info["target"], desc);
    assert_eq!(info["labels"], json!({"env": "prod", "team": "infra"}));
    let created = parse_time(&info["created_at"]);
    let updated = parse_time(&info["updated_at"]);
    assert!(created <= updated, "created_at after updated_at: {info}");
    assert!(
        secs(created) >= secs(t0) && secs(updated) <= secs(t1),
        "times outside the test: {info}"
    );
}

#[test]
fn replacing_the_target_keeps_created_at_and_advances_updated_at() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/app")).unwrap();
    let target = fx.path("images/app/target");
    put(&target, descriptor(1).to_string());
    let first = read_json(&fx.path("images/app/info.json"));
    put(&target, descriptor(2).to_string());
    let second = read_json(&fx.path("images/app/info.json"));

    assert_eq!(read_json(&target), descriptor(2));
    assert_eq!(second["target"], descriptor(2));
    assert_eq!(first["created_at"], second["created_at"]);
    assert!(parse_time(&second["updated_at"]) >= parse_time(&first["updated_at"]));
}

#[test]
fn rmdir_of_an_image_with_child_images_is_enotempty() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/a/b")).unwrap();
    put(&fx.path("images/a/target"), descriptor(1).to_string());
    put(&fx.path("images/a/b/target"), descriptor(2).to_string());
    fs::create_dir_all(fx.path("images/p/q")).unwrap();

    assert_eq!(
        errno_of(fs::remove_dir(fx.path("images/a"))),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno_of(fs::remove_dir(fx.path("images/p"))),
        libc::ENOTEMPTY
    );
    // Nothing was lost by the refusal.
    assert_eq!(read_json(&fx.path("images/a/target")), descriptor(1));
    assert_eq!(read_json(&fx.path("images/a/b/target")), descriptor(2));
    assert!(fx.path("images/p/q").is_dir());

    // Once the children are gone the image directory (holding only its attribute files) goes.
    fs::remove_dir(fx.path("images/a/b")).unwrap();
    fs::remove_dir(fx.path("images/a")).unwrap();
    fs::remove_dir(fx.path("images/p/q")).unwrap();
    fs::remove_dir(fx.path("images/p")).unwrap();
    assert_eq!(ls(&fx.path("images")), Vec::<String>::new());
}

#[test]
fn rm_r_removes_a_whole_image_tree() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    fs::create_dir_all(fx.path("images/docker.io/library/alpine:3.20")).unwrap();
    put(
        &fx.path(&format!("{BUSYBOX}/target")),
        descriptor(1).to_string(),
    );
    put(&fx.path(&format!("{BUSYBOX}/labels")), "a=b\n");
    put(
        &fx.path("images/docker.io/library/alpine:3.20/target"),
        descriptor(2).to_string(),
    );
    put(
        &fx.path("images/docker.io/target"),
        descriptor(3).to_string(),
    );

    let (code, out, err) = fx.sh("rm -r images/docker.io");
    assert_eq!(code, 0, "rm -r failed\nstdout: {out}\nstderr: {err}");
    assert_eq!(err, "");
    assert_eq!(ls(&fx.path("images")), Vec::<String>::new());
    assert_eq!(
        errno_of(fs::metadata(fx.path("images/docker.io"))),
        libc::ENOENT
    );

    // The records are gone too: the same name comes back as a bare prefix directory.
    fs::create_dir_all(fx.path(BUSYBOX)).unwrap();
    assert_eq!(ls(&fx.path(BUSYBOX)), Vec::<String>::new());
    assert_eq!(ls(&fx.path("images/docker.io")), ["library"]);
}

#[test]
fn attribute_file_names_are_refused_as_name_components() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/p")).unwrap();
    for name in ATTRS {
        assert_eq!(
            errno_of(fs::create_dir(fx.path(&format!("images/{name}")))),
            libc::EINVAL,
            "images/{name}"
        );
        assert_eq!(
            errno_of(fs::create_dir(fx.path(&format!("images/p/{name}")))),
            libc::EINVAL,
            "images/p/{name}"
        );
    }
    assert_eq!(
        errno_of(fs::create_dir_all(fx.path("images/q/target/x"))),
        libc::EINVAL
    );
    assert_eq!(ls(&fx.path("images")), ["p", "q"]);
    assert_eq!(ls(&fx.path("images/p")), Vec::<String>::new());
    assert_eq!(ls(&fx.path("images/q")), Vec::<String>::new());
}

#[test]
fn a_255_byte_component_is_accepted() {
    let fx = MountFixture::new();
    let name = "n".repeat(255);
    fs::create_dir(fx.path(&format!("images/{name}"))).unwrap();
    put(
        &fx.path(&format!("images/{name}/target")),
        descriptor(1).to_string(),
    );
    assert_eq!(
        read_json(&fx.path(&format!("images/{name}/info.json")))["name"],
        name.as_str()
    );
}

#[test]
fn sha512_digests_are_accepted() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/app")).unwrap();
    let desc = json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha512:{}", "0123456789abcdef".repeat(8)),
        "size": 0,
    });
    put(&fx.path("images/app/target"), desc.to_string());
    assert_eq!(read_json(&fx.path("images/app/target")), desc);
}

#[test]
fn optional_and_unknown_descriptor_fields_are_kept() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/app")).unwrap();
    let desc = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "size": 527,
        "annotations": {"org.opencontainers.image.ref.name": "1.36", "x": ""},
        "urls": ["https://example.com/blob"],
        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        "artifactType": "application/vnd.example+type",
        "x-vendor": {"nested": [1, 2, {"k": null}]},
    });
    put(&fx.path("images/app/target"), desc.to_string());
    assert_eq!(read_json(&fx.path("images/app/target")), desc);
    assert_eq!(read_json(&fx.path("images/app/info.json"))["target"], desc);
}

#[test]
fn image_files_have_documented_modes_owner_and_exact_sizes() {
    let fx = MountFixture::new();
    fs::create_dir_all(fx.path("images/reg/app")).unwrap();
    put(&fx.path("images/reg/app/target"), descriptor(3).to_string());
    put(&fx.path("images/reg/app/labels"), "k=v\n");

    for (rel, mode, is_dir) in [
        ("images", 0o755, true),
        ("images/reg", 0o755, true),
        ("images/reg/app", 0o755, true),
        ("images/reg/app/target", 0o644, false),
        ("images/reg/app/labels", 0o644, false),
        ("images/reg/app/info.json", 0o444, false),
    ] {
        let md = fs::metadata(fx.path(rel)).unwrap();
        assert_eq!(md.is_dir(), is_dir, "{rel}");
        assert_eq!(md.is_file(), !is_dir, "{rel}");
        assert_eq!(
            md.permissions().mode() & 0o7777,
            mode,
            "{rel} mode {:o}",
            md.mode()
        );
        assert_eq!((md.uid(), md.gid()), (0, 0), "{rel} owner");
        if !is_dir {
            assert_eq!(
                md.len(),
                fs::read(fx.path(rel)).unwrap().len() as u64,
                "{rel} st_size"
            );
        }
    }
}

#[test]
fn labels_may_come_before_the_target_and_are_kept() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/bare")).unwrap();
    // A restore copies an image's files in its own order: labels first is accepted.
    put(&fx.path("images/bare/labels"), "b=2\na=1\n");
    assert_eq!(read(&fx.path("images/bare/labels")), "a=1\nb=2\n");
    assert_eq!(ls(&fx.path("images/bare")), ["labels"]);
    // Not an image until a target is written: no target, no info.json.
    for name in ["target", "info.json"] {
        assert_eq!(
            errno_of(fs::metadata(fx.path(&format!("images/bare/{name}")))),
            libc::ENOENT,
            "{name} before the target"
        );
    }
    // The target arrives: an image with the labels written first.
    put(&fx.path("images/bare/target"), descriptor(1).to_string());
    assert_eq!(ls(&fx.path("images/bare")), ["labels", "target"]);
    assert_eq!(read(&fx.path("images/bare/labels")), "a=1\nb=2\n");
    let info = read_json(&fx.path("images/bare/info.json"));
    assert_eq!(info["name"], "bare");
    assert_eq!(info["target"], descriptor(1));
    assert_eq!(info["labels"], json!({"a": "1", "b": "2"}));
}
