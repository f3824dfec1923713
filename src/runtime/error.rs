//! The runtime's one error type.

use thiserror::Error;

/// Why a runtime operation failed. The filesystem maps each variant to one errno.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The spec cannot run.
    #[error("the spec cannot run: {reason}")]
    BadSpec {
        /// What is wrong.
        reason: String,
    },
    /// A control word that is neither a signal nor pause/resume/start.
    #[error("unknown control word {word:?}: write a signal (TERM, 9, SIGKILL...), pause, resume or start")]
    BadControl {
        /// The word.
        word: String,
    },
    /// No runtime state for this task.
    #[error("no task {id}")]
    NoSuchTask {
        /// The task id.
        id: String,
    },
    /// The verb does not apply in the task's current state.
    #[error("task {id} is {status}")]
    IncorrectStatus {
        /// The task id.
        id: String,
        /// Its state, as the runtime reports it.
        status: String,
    },
    /// The OCI runtime failed; `message` is its own.
    #[error("{op} failed: {message}")]
    Runc {
        /// The runtime command (create, start, kill...).
        op: &'static str,
        /// The runtime's message.
        message: String,
    },
    /// The task's supervisor failed before reporting.
    #[error("supervisor: {message}")]
    Supervisor {
        /// What happened.
        message: String,
    },
    /// The task's start did not report within the start timeout; what it had made was
    /// killed and removed.
    #[error("task {id}: no start report within {after:?}; its supervisor and container were killed")]
    StartTimeout {
        /// The task id.
        id: String,
        /// The timeout.
        after: std::time::Duration,
    },
    /// A host file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A system call failed.
    #[error("system call: {0}")]
    Nix(#[from] nix::Error),
}
