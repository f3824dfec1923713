//! `pause` and `resume`: freeze and thaw the task's cgroup through the runtime.
//!
//! With the cgroup v1 freezer a cgroup goes through FREEZING before FROZEN, and under load
//! runc can return from `pause` while `state` still says running; a `resume` then fails
//! with "container not paused" and the freeze completes later. So `pause` returns only once
//! the runtime reports the task paused.

use std::time::{Duration, Instant};

use super::{RuncOp, Runtime, RuntimeError};

const FREEZE_DEADLINE: Duration = Duration::from_secs(5);

pub(super) fn pause(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    rt.oci.run(RuncOp::Pause { id })?;
    let deadline = Instant::now() + FREEZE_DEADLINE;
    loop {
        match status(rt, id) {
            Some(status) if status != "paused" => {}
            // Paused, or a runtime whose state cannot be read: nothing more to wait for.
            _ => return Ok(()),
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Runc { op: "runc pause", message: format!("not frozen within {FREEZE_DEADLINE:?}") });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn resume(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    rt.oci.run(RuncOp::Resume { id }).map(drop)
}

/// The runtime's status word for the container (`running`, `paused`...).
fn status(rt: &Runtime, id: &str) -> Option<String> {
    let out = rt.oci.run(RuncOp::State { id }).ok()?;
    let state: serde_json::Value = serde_json::from_str(&out).ok()?;
    state["status"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use crate::runtime::fake::{runtime_with, Recording};
    use crate::runtime::RuntimeError;

    #[test]
    fn pause_and_resume_pass_the_runtime_s_refusal_on() {
        let (_dir, calls, rt) = runtime_with(Recording::failing("pause", "container not running"));
        match rt.pause("web") {
            Err(RuntimeError::Runc { op, message }) => assert_eq!((op, message.as_str()), ("runc pause", "container not running")),
            other => panic!("{other:?}"),
        }
        rt.resume("web").unwrap();
        assert_eq!(calls.taken(), ["pause web", "resume web"]);
    }

    #[test]
    fn pause_returns_once_the_runtime_reports_paused() {
        let (_dir, calls, rt) = runtime_with(Recording::with_state("paused"));
        rt.pause("web").unwrap();
        assert_eq!(calls.taken(), ["pause web"]);
    }
}
