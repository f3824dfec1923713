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

/// Writes `dir/config.json` from the spec (made durable: a supervisor started after a
/// crash must find the same bundle).
pub fn write_bundle(dir: &Path, spec: &Value) -> Result<(), RuntimeError> {
    validate_spec(spec)?;
    std::fs::create_dir_all(dir)?;
    let mut config = spec.clone();
    config["root"]["path"] = Value::String(rootfs(spec)?.to_string_lossy().into_owned());
    let bytes = serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::BadSpec { reason: e.to_string() })?;
    super::files::write_durably(&dir.join("config.json"), &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
