//! `pause` and `resume`: freeze and thaw the task's cgroup through the runtime.

use super::{RuncOp, Runtime, RuntimeError};

pub(super) fn pause(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    rt.oci.run(RuncOp::Pause { id }).map(drop)
}

pub(super) fn resume(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    rt.oci.run(RuncOp::Resume { id }).map(drop)
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
}
