//! The OCI bundle of a task: its spec checked for what this runtime can run, and written
//! as `config.json`. The root filesystem is the spec's absolute `root.path`, used as is;
//! resolving it from snapshots later replaces `rootfs` alone.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RuntimeError;

/// Checks that a spec can run here. Cheap, no I/O.
pub fn validate_spec(spec: &Value) -> Result<(), RuntimeError> {
    let bad = |reason: &str| Err(RuntimeError::BadSpec { reason: reason.into() });
    let Some(object) = spec.as_object() else { return bad("the spec is not a JSON object") };
    let Some(process) = object.get("process").and_then(Value::as_object) else {
        return bad("the spec has no process");
    };
    match process.get("args").and_then(Value::as_array) {
        Some(args) if !args.is_empty() && args.iter().all(Value::is_string) => {}
        _ => return bad("process.args must be a non-empty list of strings"),
    }
    if process.get("terminal").and_then(Value::as_bool) == Some(true) {
        return bad("process.terminal is true, but tasks get no console; set it to false");
    }
    rootfs(spec).map(drop)
}

/// The task's root filesystem: the spec's `root.path`, which must be absolute.
pub fn rootfs(spec: &Value) -> Result<PathBuf, RuntimeError> {
    match spec.pointer("/root/path").and_then(Value::as_str) {
        Some(path) if Path::new(path).is_absolute() => Ok(PathBuf::from(path)),
        Some(_) => Err(RuntimeError::BadSpec { reason: "root.path must be absolute".into() }),
        None => Err(RuntimeError::BadSpec { reason: "the spec has no root.path".into() }),
    }
}

/// Writes `dir/config.json` from the spec, whole or not at all (renamed into place), but
/// not synced: only the runtime reads it, once, while the start runs, and it is written
/// again by every start. A power cut ends the task with it, and a daemon that dies while a
/// supervisor reads it leaves the page cache as it was. (Two fsyncs were a tenth of a
/// start.) A spec without `linux.cgroupsPath` gets one under
/// `cgroup_parent`: runc's default is the bare id, so two mounts (or two state
/// directories) running a task of the same name would share, and freeze, one cgroup.
pub fn write_bundle(dir: &Path, spec: &Value, cgroup_parent: &str, id: &str) -> Result<(), RuntimeError> {
    validate_spec(spec)?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir)?;
    let mut config = spec.clone();
    config["root"]["path"] = Value::String(rootfs(spec)?.to_string_lossy().into_owned());
    if config.pointer("/linux/cgroupsPath").and_then(Value::as_str).is_none_or(str::is_empty) {
        if !config["linux"].is_object() {
            config["linux"] = Value::Object(Default::default());
        }
        config["linux"]["cgroupsPath"] = Value::String(format!("{cgroup_parent}/{id}"));
    }
    let bytes = serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::BadSpec { reason: e.to_string() })?;
    super::files::write_replacing(&dir.join("config.json"), &bytes)?;
    Ok(())
}

/// The cgroup parent of one state directory's tasks: `/ctrfs-<16 hex digits of an FNV-1a
/// hash of its path>`, stable across daemon restarts and versions.
pub fn cgroup_parent(state_dir: &Path) -> String {
    let hash = state_dir.as_os_str().as_encoded_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("/ctrfs-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_state_directory_gets_its_own_cgroups() {
        assert_ne!(cgroup_parent(Path::new("/a")), cgroup_parent(Path::new("/b")));
        assert_eq!(cgroup_parent(Path::new("/a")), cgroup_parent(Path::new("/a")));
        let dir = tempfile::tempdir().unwrap();
        let spec = json!({"process": {"args": ["sh"]}, "root": {"path": "/r"}});
        write_bundle(dir.path(), &spec, "/ctrfs-x", "web").unwrap();
        let config: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(config["linux"]["cgroupsPath"], "/ctrfs-x/web");
        let mut own = spec.clone();
        own["linux"] = json!({"cgroupsPath": "/mine"});
        write_bundle(dir.path(), &own, "/ctrfs-x", "web").unwrap();
        let config: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(config["linux"]["cgroupsPath"], "/mine", "a spec's own path is kept");
    }

    #[test]
    fn specs_that_cannot_run_are_refused() {
        let ok = json!({"process": {"args": ["sh"], "terminal": false}, "root": {"path": "/r"}});
        assert!(validate_spec(&ok).is_ok());
        let rows = [
            json!([]),
            json!({"root": {"path": "/r"}}),
            json!({"process": {"args": []}, "root": {"path": "/r"}}),
            json!({"process": {"args": [1]}, "root": {"path": "/r"}}),
            json!({"process": {"args": ["sh"], "terminal": true}, "root": {"path": "/r"}}),
            json!({"process": {"args": ["sh"]}, "root": {"path": "rootfs"}}),
            json!({"process": {"args": ["sh"]}}),
        ];
        for spec in rows {
            assert!(matches!(validate_spec(&spec), Err(RuntimeError::BadSpec { .. })), "{spec}");
        }
    }
}
