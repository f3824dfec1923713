//! `kill`: a signal to the task's process, through the runtime (which checks the
//! process's identity itself before signalling, so a reused pid is never hit).

use nix::sys::signal::Signal;

use super::{RuncOp, Runtime, RuntimeError};

pub(super) fn kill(rt: &Runtime, id: &str, signal: Signal) -> Result<(), RuntimeError> {
    rt.oci.run(RuncOp::Kill { id, signal }).map(drop)
}

#[cfg(test)]
mod tests {
    use crate::runtime::fake::{runtime_with, Recording};
    use nix::sys::signal::Signal;

    #[test]
    fn sends_the_signal_by_name() {
        let (_dir, calls, rt) = runtime_with(Recording::default());
        rt.kill("web", Signal::SIGUSR1).unwrap();
        assert_eq!(calls.taken(), ["kill web SIGUSR1"]);
    }
}
