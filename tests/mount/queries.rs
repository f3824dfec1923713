//! Query directories: `images/.by-target/<digest>/` and the `.filter/<expr>/` views of
//! `images/` and `containers/` (docs/interface.md, "Queries").

use std::fs;
use std::path::Path;

use crate::common::*;

/// A descriptor document pointing at `sha256:<seed repeated>`.
fn target_doc(seed: u8) -> String {
    descriptor(seed).to_string()
}

fn digest(seed: u8) -> String {
    format!("sha256:{}", format!("{seed:02x}").repeat(32))
}

fn make_image(fx: &MountFixture, name: &str, seed: u8) {
    fs::create_dir_all(fx.path(&format!("images/{name}"))).unwrap();
    put(&fx.path(&format!("images/{name}/target")), target_doc(seed));
}

/// The entries of a query directory with where each link points.
fn links(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_symlink(), "{:?} is not a symlink", e.path());
            let target = fs::read_link(e.path()).unwrap().to_string_lossy().into_owned();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect();
    out.sort();
    out
}

fn pair(name: &str, target: &str) -> (String, String) {
    (name.to_owned(), target.to_owned())
}

#[test]
fn names_by_target_follow_a_retarget_and_a_delete() {
    let fx = MountFixture::new();
    make_image(&fx, "docker.io/library/busybox:1.36", 1);
    make_image(&fx, "docker.io/library/busybox:latest", 1);
    make_image(&fx, "quay.io/other/tool:2", 2);
    // A name prefix and a directory holding only labels are no images.
    fs::create_dir_all(fx.path("images/pending")).unwrap();
    put(&fx.path("images/pending/labels"), "a=b\n");

    let one = fx.path(&format!("images/.by-target/{}", digest(1)));
    assert_eq!(
        links(&one),
        [
            pair("docker.io%2Flibrary%2Fbusybox:1.36", "../../docker.io/library/busybox:1.36"),
            pair("docker.io%2Flibrary%2Fbusybox:latest", "../../docker.io/library/busybox:latest"),
        ]
    );
    // Through the link, the image itself.
    let through = read(&one.join("docker.io%2Flibrary%2Fbusybox:latest/target"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&through).unwrap(), descriptor(1));

    put(&fx.path("images/docker.io/library/busybox:latest/target"), target_doc(2));
    assert_eq!(links(&one), [pair("docker.io%2Flibrary%2Fbusybox:1.36", "../../docker.io/library/busybox:1.36")]);
    let two = fx.path(&format!("images/.by-target/{}", digest(2)));
    assert_eq!(
        links(&two),
        [
            pair("docker.io%2Flibrary%2Fbusybox:latest", "../../docker.io/library/busybox:latest"),
            pair("quay.io%2Fother%2Ftool:2", "../../quay.io/other/tool:2"),
        ]
    );
    // A name looked up directly answers as the listing does, now.
    assert!(fs::symlink_metadata(two.join("docker.io%2Flibrary%2Fbusybox:latest")).unwrap().file_type().is_symlink());
    assert_eq!(errno_of(fs::symlink_metadata(one.join("docker.io%2Flibrary%2Fbusybox:latest"))), libc::ENOENT);

    fx.sh_ok("rm -r images/quay.io/other/tool:2");
    assert_eq!(links(&two), [pair("docker.io%2Flibrary%2Fbusybox:latest", "../../docker.io/library/busybox:latest")]);
    // A digest no image has is an empty query; one that is no digest is EINVAL.
    assert_eq!(links(&fx.path(&format!("images/.by-target/{}", digest(9)))), []);
    assert_eq!(errno_of(fs::read_dir(fx.path("images/.by-target/sha256:abc"))), libc::EINVAL);
    fx.assert_logged("images/.by-target/sha256:abc", libc::EINVAL);
}

#[test]
fn query_directories_are_not_listed_and_are_read_only() {
    let fx = MountFixture::new();
    make_image(&fx, "web", 1);
    fs::create_dir(fx.path("containers/web")).unwrap();
    let all = format!("images/.by-target/{}", digest(1));

    // Never listed: globs, `ls -a`, find and tar never meet them.
    assert_eq!(fx.sh_ok("ls -a images"), ".\n..\nweb\n");
    assert_eq!(fx.sh_ok("ls -a containers"), ".\n..\nweb\n");
    assert_eq!(fx.sh_ok("find . -name '.filter' -o -name '.by-target' | wc -l").trim(), "0");
    for root in ["images/.by-target", "images/.filter", "containers/.filter"] {
        assert_eq!(fx.sh_ok(&format!("ls -a {root}")), ".\n..\n", "{root} lists nothing");
    }
    assert!(fs::metadata(fx.path("images/.filter")).unwrap().is_dir());

    for script in [
        format!("rm {all}/web"),
        format!("touch {all}/new"),
        format!("mkdir {all}/new"),
        format!("ln -s ../../web {all}/again"),
        "rmdir images/.by-target".to_owned(),
        "rm -rf containers/.filter".to_owned(),
        format!("touch -h {all}/web"),
        format!("setfattr -n user.a -v b {all}"),
    ] {
        let (code, _, err) = fx.sh(&script);
        assert_ne!(code, 0, "{script} succeeded");
        assert!(err.contains("not permitted") || err.contains("exists") || err.contains("not supported"), "{script}: {err}");
    }
    assert_eq!(fx.sh_ok("mkdir images/.filter containers/.filter 2>&1; echo $?").trim().lines().last(), Some("1"));
    // The objects are untouched.
    assert_eq!(ls(&fx.path("images/web")), ["target"]);
    assert!(fx.path("containers/web").is_dir());
    assert_eq!(links(&fx.path(&all)), [pair("web", "../../web")]);
}

/// Three containers and three images, each filter's expected answer derivable by hand.
fn corpus(fx: &MountFixture) {
    for (id, image, runtime, labels) in [
        ("web", "docker.io/library/busybox:latest", "io.containerd.runc.v2", "foo=true\nenv=prod\nvery complex label=something\n"),
        ("db", "docker.io/library/postgres:16", "", "env=dev\n"),
        ("cache", "", "crun", "ctrfs.io/rm=true\n"),
    ] {
        fs::create_dir(fx.path(&format!("containers/{id}"))).unwrap();
        if !image.is_empty() {
            put(&fx.path(&format!("containers/{id}/image")), format!("{image}\n"));
        }
        if !runtime.is_empty() {
            put(&fx.path(&format!("containers/{id}/runtime")), format!("{runtime}\n"));
        }
        put(&fx.path(&format!("containers/{id}/labels")), labels);
    }
    make_image(fx, "docker.io/library/busybox:latest", 1);
    put(&fx.path("images/docker.io/library/busybox:latest/labels"), "bar=1\ncontainerd.io/gc.root=check-walk\n");
    make_image(fx, "foo", 2);
    put(&fx.path("images/foo/labels"), "bar=2\n");
    fs::create_dir_all(fx.path("images/p")).unwrap();
    let index = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest(3),
        "size": 300,
    });
    put(&fx.path("images/p/target"), index.to_string());
}

/// The sorted entry names of a filter over `kind` (`containers` or `images`).
fn matches(fx: &MountFixture, kind: &str, expr: &str) -> Vec<String> {
    ls(&fx.path(&format!("{kind}/.filter/{expr}")))
}

#[test]
fn containerd_s_filter_examples_select_what_they_say() {
    let fx = MountFixture::new();
    corpus(&fx);
    let cases: &[(&str, &str, &[&str])] = &[
        // containerd's documentation and filter package examples, in path form.
        ("containers", "labels.foo", &["web"]),
        ("images", "name==foo,labels.bar", &["foo"]),
        ("containers", r#"labels."very complex label"==something"#, &["web"]),
        ("images", r#"labels."containerd.io%2Fgc.root"==check-walk"#, &["docker.io%2Flibrary%2Fbusybox:latest"]),
        ("containers", "id==web", &["web"]),
        ("images", "name==docker.io%2Flibrary%2Fbusybox:latest|name==p", &["docker.io%2Flibrary%2Fbusybox:latest", "p"]),
        ("images", "target.mediatype==application%2Fvnd.oci.image.index.v1+json", &["p"]),
        // A `/…/` regular expression: its slashes are written %2F.
        ("containers", "image~=%2Fbusy|post%2F,id!=db", &["web"]),
        ("containers", r#"image~="busy|post""#, &["db", "web"]),
        ("containers", "runtime.name==io.containerd.runc.v2", &["web"]),
        ("containers", "runtime.name~=^(crun)?$", &["cache", "db"]),
        ("containers", "labels.env!=prod", &["cache", "db"]),
        ("containers", r#"labels."ctrfs.io%2Frm"==true"#, &["cache"]),
        ("containers", "labels.env==prod|labels.env==dev", &["db", "web"]),
        ("images", "labels.bar~=^[12]$", &["docker.io%2Flibrary%2Fbusybox:latest", "foo"]),
        ("containers", "id==nothing", &[]),
    ];
    let by_digest = format!("target.digest=={}", digest(2));
    let mut failures = Vec::new();
    for (kind, expr, want) in cases.iter().copied().chain([("images", by_digest.as_str(), &["foo"][..])]) {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        let got = matches(&fx, kind, expr);
        if got != want {
            failures.push(format!("{kind}/.filter/{expr}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What shell users do with a view: loop over it, follow it, read through it.
    let loop_out = fx.sh_ok("for c in 'containers/.filter/labels.env'/*; do cat \"$c/image\"; done");
    assert_eq!(loop_out, "docker.io/library/postgres:16\ndocker.io/library/busybox:latest\n");
    let found = fx.sh_ok("find -L 'containers/.filter/id==web' -name labels");
    assert_eq!(found.trim(), "containers/.filter/id==web/web/labels");
    let (code, out, _) = fx.sh("ls -l 'images/.filter/name==foo'");
    assert_eq!(code, 0);
    assert!(out.contains("foo -> ../../foo"), "{out}");

    // Membership follows the records at once: nothing is cached.
    append(&fx.path("containers/cache/labels"), "env=prod\n");
    assert_eq!(matches(&fx, "containers", "labels.env==prod"), ["cache", "web"]);
    fx.sh_ok("rm -r containers/web");
    assert_eq!(matches(&fx, "containers", "labels.env==prod"), ["cache"]);
    assert_eq!(errno_of(fs::symlink_metadata(fx.path("containers/.filter/labels.env==prod/web"))), libc::ENOENT);
}

#[test]
fn an_invalid_filter_is_einval_at_lookup_with_its_reason_and_position() {
    let fx = MountFixture::new();
    corpus(&fx);
    for (kind, expr, position) in [
        ("containers", r#"labels."a"=="#, 12),
        ("containers", "id==web,", 8),
        ("images", "name==a%2Fb c", 11),
        ("images", "name==100%", 9),
        ("containers", "image~=%2F[%2F", 7),
        ("containers", "id==a||id==b", 6),
    ] {
        let path = fx.path(&format!("{kind}/.filter/{expr}"));
        assert_eq!(errno_of(fs::read_dir(&path)), libc::EINVAL, "{expr}");
        assert_eq!(errno_of(fs::metadata(&path)), libc::EINVAL, "{expr}");
        fx.wait_for_log_line(&format!("filter {expr:?}"), |line| {
            line.contains("EINVAL") && line.contains(&format!("{kind}/.filter/{expr}")) && line.contains(&format!("at position {position}"))
        });
    }
    // `ls` reports it as the shell user sees it.
    let (code, _, err) = fx.sh("ls 'containers/.filter/id=web'");
    assert_ne!(code, 0);
    assert!(err.contains("Invalid argument"), "{err}");
}

#[test]
fn a_query_directory_in_use_stays_valid_however_many_queries_follow() {
    use std::os::fd::AsRawFd;
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/web")).unwrap();
    // Held open, as a shell's working directory is: no path walk reaches it again.
    let held = fs::File::open(fx.path("containers/.filter/id==web")).unwrap();
    let through_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", held.as_raw_fd()));
    // More queries than the table keeps: the kernel is asked to forget the unused ones.
    for i in 0..4200 {
        let query = fx.path(&format!("containers/.filter/id==q{i}"));
        fs::metadata(&query).unwrap_or_else(|e| panic!("query {i}: {e}"));
    }
    assert_eq!(ls(&through_fd), ["web"], "the held query still answers");
    assert_eq!(ls(&fx.path("containers/.filter/id==web")), ["web"]);
}
