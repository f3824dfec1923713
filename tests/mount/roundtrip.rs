//! Round trips with common tools (docs/interface.md, "Times, sizes and caching"): times
//! set with utimensat are what `stat` shows, an identical write is not a change, and
//! `rsync -a` and Ansible's copy find nothing to do the second time.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;

/// 2020-01-02 03:04:05 UTC.
const PAST: i64 = 1_577_934_245;

fn mtime(path: &Path) -> (i64, i64) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (meta.mtime(), meta.mtime_nsec())
}

fn updated_at(fx: &MountFixture, rel: &str) -> serde_json::Value {
    read_json(&fx.path(rel))["updated_at"].clone()
}

#[test]
fn touch_d_sets_the_mtime_stat_shows_until_the_value_changes() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/c && echo a=1 > containers/c/labels && echo '{}' > containers/c/spec && echo img > containers/c/image");
    fx.sh_ok("TZ=UTC touch -d '2020-01-02 03:04:05' containers/c/labels containers/c");
    assert_eq!(mtime(&fx.path("containers/c/labels")), (PAST, 0));
    assert_eq!(fx.sh_ok("stat -c %Y containers/c/labels").trim(), PAST.to_string());
    assert_eq!(fs::metadata(fx.path("containers/c/labels")).unwrap().atime(), PAST);
    assert_eq!(mtime(&fx.path("containers/c")), (PAST, 0), "the directory's own time");
    // The other files keep following the record.
    assert!(mtime(&fx.path("containers/c/spec")).0 > PAST + 86_400 * 365);
    // Setting times is not a change of the value.
    assert_eq!(read(&fx.path("containers/c/labels")), "a=1\n");
    // A new value is a change now: the file (and its directory) show the time of it.
    fx.sh_ok("echo a=2 > containers/c/labels");
    let now = secs(std::time::SystemTime::now()) as i64;
    assert!(mtime(&fx.path("containers/c/labels")).0 >= now - 60, "{:?}", mtime(&fx.path("containers/c/labels")));
    assert!(mtime(&fx.path("containers/c")).0 >= now - 60);
    // `touch` with no time sets now; a read-only file refuses times.
    fx.sh_ok("TZ=UTC touch -d '2020-01-02 03:04:05' containers/c/image && touch containers/c/image");
    assert!(mtime(&fx.path("containers/c/image")).0 >= now - 60);
    let (code, _, err) = fx.sh("touch -d '2020-01-02 03:04:05' containers/c/info.json");
    assert_ne!(code, 0, "times on info.json were accepted");
    assert!(err.contains("Permission denied"), "{err}");
    // Times survive a remount (they are stored with the node).
    fx.sh_ok("TZ=UTC touch -d '2020-01-02 03:04:05' containers/c/labels");
    let mut fx = fx;
    fx.remount();
    assert_eq!(mtime(&fx.path("containers/c/labels")), (PAST, 0));
}

#[test]
fn an_identical_write_is_not_a_change() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/c && printf 'a=1\\nb=2\\n' > containers/c/labels && echo runc > containers/c/runtime");
    let host = fx.root().join("labels");
    fs::write(&host, "a=1\nb=2\n").unwrap();
    let spec = fx.root().join("spec");
    fs::write(&spec, "{\"ociVersion\": \"1.2.0\",  \"process\": {\"args\": [\"sh\"]}}\n").unwrap();
    let host_s = host.display();
    let spec_s = spec.display();
    fx.sh_ok(&format!("cp {spec_s} containers/c/spec && echo img > containers/c/image"));
    let before = updated_at(&fx, "containers/c/info.json");
    let dir_before = mtime(&fx.path("containers/c"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    // cp and tee open with O_TRUNC and write the whole value: the same value commits nothing.
    fx.sh_ok(&format!("cp {host_s} containers/c/labels && cp {spec_s} containers/c/spec"));
    fx.sh_ok("echo img | tee containers/c/image >/dev/null && echo runc | tee containers/c/runtime >/dev/null");
    // So does a label set to the value it has, as an extended attribute.
    set_xattr(&fx.path("containers/c"), "user.a", b"1", 0).unwrap();
    assert_eq!(updated_at(&fx, "containers/c/info.json"), before);
    assert_eq!(mtime(&fx.path("containers/c")), dir_before);
    // A different value is a change.
    set_xattr(&fx.path("containers/c"), "user.a", b"3", 0).unwrap();
    assert_ne!(updated_at(&fx, "containers/c/info.json"), before);
    assert_eq!(read(&fx.path("containers/c/labels")), "a=3\nb=2\n");
}

#[test]
fn rsync_a_twice_copies_nothing_the_second_time() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/c");
    let src = fx.root().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("spec"), "{\n    \"ociVersion\": \"1.2.0\",\n    \"process\": {\"args\": [\"sh\", \"-c\", \"true\"]}\n}\n")
        .unwrap();
    fs::write(src.join("labels"), "env=prod\ntier=web\n").unwrap();
    fs::write(src.join("image"), "library/busybox\n").unwrap();
    let src_s = src.display();
    sh_ok(
        fx.root(),
        &format!("chmod 644 {src_s}/* && chmod 755 {src_s} && TZ=UTC touch -d '2020-01-02 03:04:05' {src_s}/* {src_s}"),
    );
    // rsync writes `.spec.XXXXXX`, sets its times and renames it onto the attribute file.
    let first = fx.sh_ok(&format!("rsync -a --itemize-changes {src_s}/ containers/c/"));
    assert!(first.contains("spec"), "the first run copied nothing:\n{first}");
    assert_eq!(fs::read(fx.path("containers/c/spec")).unwrap(), fs::read(src.join("spec")).unwrap());
    assert_eq!(read(&fx.path("containers/c/image")), "library/busybox\n");
    let second = fx.sh_ok(&format!("rsync -a --itemize-changes {src_s}/ containers/c/"));
    assert_eq!(second, "", "the second run still found changes");
    // The dry run of a checksum comparison agrees: the bytes are the same.
    let checked = fx.sh_ok(&format!("rsync -a --checksum --itemize-changes --dry-run {src_s}/ containers/c/"));
    assert_eq!(checked, "");
}

/// Runs Ansible's copy module from `src` to `dest` and returns whether it reported a change.
fn ansible_copy(fx: &MountFixture, src: &Path, dest: &Path) -> bool {
    ansible(fx, "copy", &format!("src={} dest={}", src.display(), dest.display()))
}

/// Runs one Ansible module on localhost; whether it reported a change.
fn ansible(fx: &MountFixture, module: &str, args: &str) -> bool {
    let home = fx.root().join("ansible-home");
    fs::create_dir_all(&home).unwrap();
    // copy's atomic move makes a temporary file beside `dest` and renames it onto it.
    // `-t DIR` (the tree callback of ansible-core) writes each host's result as JSON.
    let tree = home.join("tree");
    let _ = fs::remove_dir_all(&tree);
    let script = format!(
        "HOME={home} ANSIBLE_LOCAL_TEMP={home}/tmp ANSIBLE_REMOTE_TEMP={home}/tmp ANSIBLE_NOCOLOR=1 \
         ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
         ansible localhost -i localhost, -c local -t {tree} -m {module} -a '{args}'",
        home = home.display(),
        tree = tree.display(),
    );
    let (code, out, err) = sh(fx.root(), &script);
    assert_eq!(code, 0, "ansible failed:\n{out}\n{err}");
    let text = fs::read_to_string(tree.join("localhost")).unwrap_or_else(|e| panic!("no tree result ({e}):\n{out}"));
    let result: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ansible's result is not JSON ({e}):\n{text}"));
    assert!(result.get("failed").is_none_or(|f| f == false), "ansible failed:\n{text}");
    result["changed"].as_bool().unwrap_or_else(|| panic!("no `changed` in:\n{out}"))
}

#[test]
fn ansible_copy_twice_reports_changed_then_ok() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/c && mkdir -p images/app");
    let spec = fx.root().join("spec.json");
    fs::write(&spec, "{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {\"args\": [\"sh\"]}\n}\n").unwrap();
    // A target as an editor or jq writes it, not as ctrfs would print it.
    let target = fx.root().join("target.json");
    let mut doc = serde_json::to_string_pretty(&descriptor(7)).unwrap();
    doc.push('\n');
    fs::write(&target, &doc).unwrap();
    for (src, dest) in [(&spec, "containers/c/spec"), (&target, "images/app/target")] {
        assert!(ansible_copy(&fx, src, &fx.path(dest)), "the first copy to {dest} changed nothing");
        assert_eq!(read(&fx.path(dest)), read(src), "{dest} reads back otherwise");
        let before = read_json(&fx.path(&dest.replace("spec", "info.json").replace("target", "info.json")))["updated_at"].clone();
        assert!(!ansible_copy(&fx, src, &fx.path(dest)), "the second copy to {dest} reported a change");
        let after = read_json(&fx.path(&dest.replace("spec", "info.json").replace("target", "info.json")))["updated_at"].clone();
        assert_eq!(before, after);
    }
}

#[test]
fn ansible_lineinfile_and_file_settle_on_the_second_run() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/c && echo tier=web > containers/c/labels");
    let labels = fx.path("containers/c/labels");
    let add = format!("path={} line=env=prod", labels.display());
    assert!(ansible(&fx, "lineinfile", &add), "the line was added");
    assert_eq!(read(&labels), "env=prod\ntier=web\n");
    assert!(!ansible(&fx, "lineinfile", &add), "the second run finds the line");
    let change = format!("path={} regexp=^env= line=env=dev", labels.display());
    assert!(ansible(&fx, "lineinfile", &change));
    assert_eq!(read(&labels), "env=dev\ntier=web\n");
    assert!(!ansible(&fx, "lineinfile", &change));
    // `file state=absent` on a field clears it; the second run has nothing to do.
    let absent = format!("path={} state=absent", labels.display());
    assert!(ansible(&fx, "file", &absent));
    assert!(!labels.exists());
    assert!(!ansible(&fx, "file", &absent));
}
