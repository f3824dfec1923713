//! `error_log` at the mount's top: the last refusals, readable by a shell user
//! (docs/interface.md, "Readable refusals: error_log").

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::*;

/// The error_log entries whose first line names `path` (each entry: its lines).
fn entries_for(fx: &MountFixture, path: &str) -> Vec<Vec<String>> {
    let text = read(&fx.path("error_log"));
    let mut entries: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            if let Some(last) = entries.last_mut() {
                last.push(line.to_owned());
            }
        } else {
            entries.push(vec![line.to_owned()]);
        }
    }
    entries.retain(|e| e[0].ends_with(&format!(" {path}")));
    entries
}

#[test]
fn a_bad_label_a_bad_filter_and_a_bad_spec_are_explained_in_error_log() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/web")).unwrap();
    assert_eq!(fx.sh_ok("cat error_log"), "", "nothing refused yet");

    // A label line without '=': the shell's own pid and uid are in the line.
    let (code, out, _) = fx.sh("echo $$; echo 'no equals sign' >> containers/web/labels");
    assert_ne!(code, 0);
    let pid = out.trim();
    let label = entries_for(&fx, "containers/web/labels");
    assert_eq!(label.len(), 1, "{label:?}");
    let line = &label[0][0];
    assert!(line.contains(&format!(" uid=0 pid={pid} write EINVAL (invalid label")), "{line}");
    assert_eq!(label[0].len(), 1, "no caret line for a label: {label:?}");

    // A filter expression: the caret sits under the fault, in the path itself.
    let expr = r#"labels."a"=="#;
    assert_eq!(errno_of(fs::read_dir(fx.path(&format!("containers/.filter/{expr}")))), libc::EINVAL);
    let filter = entries_for(&fx, &format!("containers/.filter/{expr}"));
    let entry = filter.first().unwrap_or_else(|| panic!("no entry: {}", read(&fx.path("error_log"))));
    assert!(entry[0].contains(" lookup EINVAL (filter "), "{entry:?}");
    assert_eq!(entry.len(), 2, "{entry:?}");
    let at = entry[1].find('^').expect("a caret");
    assert_eq!(entry[1].trim_end().len(), at + 1, "only the caret: {entry:?}");
    let path_starts = entry[0].chars().count() - format!("containers/.filter/{expr}").len();
    assert_eq!(at, path_starts + "containers/.filter/".len() + 12, "under byte 12 of the expression: {entry:?}");

    // A spec that stops being JSON: the line at fault, quoted, and a caret under it.
    let (code, _, _) = fx.sh(r#"printf '{"ociVersion": "1.0.2",, "process": {}}' > containers/web/spec"#);
    assert_ne!(code, 0);
    let spec = entries_for(&fx, "containers/web/spec");
    let entry = spec.first().unwrap_or_else(|| panic!("no entry: {}", read(&fx.path("error_log"))));
    assert!(entry[0].contains(" write EINVAL (invalid spec: not JSON"), "{entry:?}");
    assert_eq!(entry.len(), 3, "{entry:?}");
    assert_eq!(entry[1], r#"  {"ociVersion": "1.0.2",, "process": {}}"#);
    let caret = entry[2].find('^').expect("a caret");
    assert_eq!(&entry[1][caret..caret + 1], ",", "the caret is under the second comma: {entry:?}");
    assert_eq!(caret, 2 + r#"{"ociVersion": "1.0.2","#.len());

    // A shell probing for names is not a refusal worth telling.
    let _ = fs::metadata(fx.path("containers/nothing"));
    assert!(entries_for(&fx, "containers/nothing").is_empty());
    // Read-only, its size is what cat reads, and the root does not list it.
    let text = read(&fx.path("error_log"));
    assert_eq!(fs::metadata(fx.path("error_log")).unwrap().size() as usize, text.len());
    assert_eq!(errno_of(fs::OpenOptions::new().write(true).open(fx.path("error_log"))), libc::EACCES);
    assert!(!ls(&fx.mnt()).contains(&"error_log".to_owned()));
    // Root's only: it tells who was refused what.
    assert_eq!(fs::metadata(fx.path("error_log")).unwrap().mode() & 0o777, 0o400);
    // The refusal of that open is itself explained.
    assert!(entries_for(&fx, "error_log").iter().any(|e| e[0].contains(" open EACCES ")), "{text}");
}

#[test]
fn only_the_last_256_refusals_are_kept() {
    let fx = MountFixture::new();
    fx.sh_ok("for i in $(seq 1 300); do mkdir containers/-bad$i 2>/dev/null; done; true");
    let text = read(&fx.path("error_log"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 256);
    assert!(lines[0].ends_with(" containers/-bad45"), "{}", lines[0]);
    assert!(lines[255].ends_with(" containers/-bad300"), "{}", lines[255]);
}
