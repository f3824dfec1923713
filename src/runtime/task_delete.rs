//! `delete`: the runtime forgets the container (forced, so a process still alive is
//! killed) and the task's files go, logs included.

use super::{RuncOp, Runtime, RuntimeError};

pub(super) fn delete(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    match rt.oci.run(RuncOp::Delete { id }) {
        Ok(_) => {}
        // Never created, or already deleted: nothing of the runtime's to remove.
        Err(RuntimeError::Runc { message, .. }) if message.contains("not exist") || message.contains("not found") => {}
        Err(e) => return Err(e),
    }
    let dir = rt.files(id).dir;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::runtime::fake::{runtime_with, Recording};

    #[test]
    fn removes_the_container_then_the_files() {
        let (dir, calls, rt) = runtime_with(Recording::default());
        let task_dir = dir.path().join("tasks/web");
        std::fs::create_dir_all(task_dir.join("bundle")).unwrap();
        std::fs::write(task_dir.join("stdout"), b"x").unwrap();
        rt.delete("web").unwrap();
        assert_eq!(calls.taken(), ["delete web"]);
        assert!(!task_dir.exists());
    }

    #[test]
    fn a_container_the_runtime_never_had_is_not_an_error() {
        let (_dir, _calls, rt) = runtime_with(Recording::failing("delete", "container \"web\" does not exist"));
        rt.delete("web").unwrap();
        let (_dir, _calls, rt) = runtime_with(Recording::failing("delete", "permission denied"));
        assert!(rt.delete("web").is_err());
    }
}
