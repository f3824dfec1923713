//! A recording `OciRuntime` double: records each command as `verb id [signal]`, answers
//! `state` with a chosen status and fails the verbs it is told to (youki's recording
//! syscall double, for runc).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{OciRuntime, RuncOp, Runtime, RuntimeConfig, RuntimeError};

/// What the double does.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    calls: Arc<Mutex<Vec<String>>>,
    fail: Option<(&'static str, String)>,
    state: Option<String>,
}

impl Recording {
    /// Fails `verb` with the runtime message `message`.
    pub fn failing(verb: &'static str, message: &str) -> Self {
        Recording { fail: Some((verb, message.into())), ..Self::default() }
    }

    /// Answers `state` with this status.
    pub fn with_state(status: &str) -> Self {
        Recording { state: Some(status.into()), ..Self::default() }
    }

    /// The commands recorded so far (and forgets them).
    pub fn taken(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl OciRuntime for Recording {
    fn run(&self, op: RuncOp<'_>) -> Result<String, RuntimeError> {
        let (verb, line) = match &op {
            RuncOp::Run { id, .. } => ("run", format!("run {id}")),
            RuncOp::Kill { id, signal } => ("kill", format!("kill {id} {}", signal.as_str())),
            RuncOp::Pause { id } => ("pause", format!("pause {id}")),
            RuncOp::Resume { id } => ("resume", format!("resume {id}")),
            RuncOp::Delete { id } => ("delete", format!("delete {id}")),
            RuncOp::State { id } => ("state", format!("state {id}")),
        };
        if verb != "state" {
            self.calls.lock().unwrap().push(line);
        }
        if let Some((failing, message)) = &self.fail {
            if *failing == verb {
                return Err(RuntimeError::Runc { op: op.name(), message: message.clone() });
            }
        }
        Ok(match (verb, &self.state) {
            ("state", Some(status)) => format!("{{\"status\":\"{status}\"}}"),
            _ => String::new(),
        })
    }
}

/// A runtime over the double, in a temporary state directory; returns the double too so
/// a test can read what was run.
pub fn runtime_with(recording: Recording) -> (tempfile::TempDir, Recording, Runtime) {
    runtime_with_supervisor(recording, None)
}

/// The same, with `supervisor` (a shell script's body) run in place of `ctrfs
/// supervise`; it gets the same arguments (`$3` is the id, `$5` the task's directory) and
/// reports on its stdout as the supervisor does.
pub fn runtime_with_supervisor(recording: Recording, supervisor: Option<&str>) -> (tempfile::TempDir, Recording, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let exe = match supervisor {
        Some(body) => script(dir.path(), "supervise", body),
        None => "/nonexistent/ctrfs".into(),
    };
    let config =
        RuntimeConfig { runc: "runc".into(), state_dir: dir.path().join("tasks"), runc_root: dir.path().join("runc"), exe };
    let runtime = Runtime::with_oci(config, Box::new(recording.clone())).unwrap();
    (dir, recording, runtime)
}

/// An executable `/bin/sh` script `dir/name` with `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
