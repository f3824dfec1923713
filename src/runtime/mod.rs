//! The task runtime: starts containers' processes through an OCI runtime (runc), each
//! under a supervisor process of ours, and reports what became of them.
//!
//! No LMDB and no FUSE here: the filesystem composes this with the store. One verb per
//! file (`task_start`, `task_kill`, `task_pause`, `task_delete`, `reconcile`); the runtime's
//! command line sits behind `OciRuntime` so the verbs are tested with a recording double.
//!
//! Host layout under `STATE/`:
//! ```text
//! runc/                 the OCI runtime's own state (--root)
//! tasks/<id>/           bundle/config.json, stdout, stderr, runc.log, pid, exit, supervisor.log
//! tasks/.exits/<id>     marker dropped by the supervisor once tasks/<id>/exit is on disk
//! ```
//!
//! One directory serves every run of a task: the logs are appended to by each run, and
//! `exit` holds the last run's exit with that run's generation, which the supervisor was
//! given; the caller matches it to the run it asks about.

mod bundle;
mod control;
mod error;
mod exits;
#[cfg(test)]
mod fake;
mod files;
mod oci_runtime;
mod reconcile;
mod supervisor;
mod task_delete;
mod task_kill;
mod task_pause;
mod task_start;

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{validate_identifier, Timestamp};

pub use control::{parse_control, Control};
pub use error::RuntimeError;
pub use files::Exit;
pub use oci_runtime::{OciRuntime, RuncCli, RuncOp};
pub use supervisor::{supervise_main, SuperviseArgs};

/// Where things are.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The OCI runtime binary (`runc`, or a compatible one such as `crun`).
    pub runc: PathBuf,
    /// Per-task state: `STATE/tasks`.
    pub state_dir: PathBuf,
    /// The OCI runtime's state root: `STATE/runc`.
    pub runc_root: PathBuf,
    /// The ctrfs binary, run as `ctrfs supervise` for each task.
    pub exe: PathBuf,
}

/// What `start` returns once the task's process exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Host pid of the container's process.
    pub pid: u32,
    /// Its start time (`/proc/<pid>/stat`), to tell pid reuse apart.
    pub pid_start_time: u64,
    /// Host pid of the task's supervisor.
    pub supervisor_pid: u32,
    /// The supervisor's start time.
    pub supervisor_start_time: u64,
    /// When it started.
    pub started_at: Timestamp,
    /// Host path of the stdout log.
    pub stdout: PathBuf,
    /// Host path of the stderr log.
    pub stderr: PathBuf,
    /// The run's generation, as the supervisor was told it.
    pub generation: u64,
}

/// What is known of a recorded task after a daemon restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Its process runs and its supervisor watches it.
    Running,
    /// Frozen, supervised.
    Paused,
    /// Ended; with the exit record when the supervisor wrote one.
    Stopped(Option<Exit>),
    /// The supervisor is gone but the container still runs: nobody will reap it.
    Unknown,
}

/// The task runtime.
pub struct Runtime {
    config: RuntimeConfig,
    oci: Box<dyn OciRuntime>,
    start_timeout: Duration,
}

/// How long the removal of an unrecorded run waits for its supervisor to end.
pub const UNRECORDED_WAIT: Duration = Duration::from_secs(5);

/// How long `runc run --detach`, under the supervisor, may take before the start
/// is given up (and what it made killed).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Runtime {
    /// A runtime driving the configured binary; creates its directories.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let cli = RuncCli { binary: config.runc.clone(), root: config.runc_root.clone(), log: None };
        Self::with_oci(config, Box::new(cli))
    }

    /// A runtime over any `OciRuntime` (the tests' recording double).
    pub fn with_oci(config: RuntimeConfig, oci: Box<dyn OciRuntime>) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&config.state_dir)?;
        std::fs::create_dir_all(&config.runc_root)?;
        std::fs::create_dir_all(files::exits_dir(&config.state_dir))?;
        Ok(Runtime { config, oci, start_timeout: START_TIMEOUT })
    }

    /// The same runtime with another start timeout (tests use a short one).
    pub fn with_start_timeout(mut self, timeout: Duration) -> Runtime {
        self.start_timeout = timeout;
        self
    }

    /// Checks that a spec can run here (cheap, no I/O).
    pub fn validate_spec(spec: &Value) -> Result<(), RuntimeError> {
        bundle::validate_spec(spec)
    }

    /// Starts run `generation` of task `id` from `spec`; returns once its process exists.
    /// A failure leaves the files of earlier runs as they were.
    pub fn start(&self, id: &str, spec: &Value, generation: u64) -> Result<Started, RuntimeError> {
        task_start::start(self, id, spec, generation)
    }

    /// Sends `signal` to the task's process.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        task_kill::kill(self, id, signal)
    }

    /// Freezes the task.
    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        task_pause::pause(self, id)
    }

    /// Thaws the task.
    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        task_pause::resume(self, id)
    }

    /// Removes the task's runtime state and files (its process must have ended; a still
    /// running one is killed by the runtime's forced delete).
    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        task_delete::delete(self, id)
    }

    /// The last exit record, once a supervisor wrote it; of whichever run ended last
    /// (compare its generation).
    pub fn exit_of(&self, id: &str) -> Result<Option<Exit>, RuntimeError> {
        Ok(files::read_exit(&self.files(id).exit())?)
    }

    /// Ends the runs of these stopped tasks that were started and never acknowledged (a
    /// start again the daemon died in): a supervisor still running for one (found in one
    /// walk of `/proc`) is killed with its group, so its exit is never recorded and no
    /// container it was making can start; a container its pid file names that still runs
    /// is killed. Returns the ids that had one. Made at start-up, once.
    pub fn end_unacknowledged_runs(&self, stopped: &[String]) -> Vec<String> {
        let supervisors = files::supervisors();
        let mut ended = Vec::new();
        for id in stopped {
            let dir = self.files(id).dir;
            let mut found = false;
            for (_, (pid, start)) in supervisors.iter().filter(|(d, _)| *d == dir) {
                found = true;
                if !files::kill_supervisor(*pid, *start, UNRECORDED_WAIT) {
                    log::error!("task {id}: supervisor {pid} of an unacknowledged run outlived SIGKILL");
                }
            }
            if self.pid_file_names_a_live_container(id) {
                found = true;
                let _ = self.kill(id, Signal::SIGKILL);
            }
            if found {
                ended.push(id.clone());
            }
        }
        ended
    }

    /// Whether `id`'s pid file names a process that exists and runc still has it created,
    /// running or paused (runc is asked only then: a start writes a new pid file, and a
    /// stopped run's process is gone).
    fn pid_file_names_a_live_container(&self, id: &str) -> bool {
        let pid = std::fs::read_to_string(self.files(id).pid()).ok().and_then(|p| p.trim().parse::<u32>().ok());
        if !pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            return false;
        }
        reconcile::runtime_status(self, id).is_some_and(|s| matches!(s.as_str(), "created" | "running" | "paused"))
    }

    /// What became of a recorded task (the run `started` describes) while no daemon
    /// watched.
    pub fn observe(&self, id: &str, started: &Started) -> Observed {
        reconcile::observe(self, id, started)
    }

    /// Every task id with state here: a container in the OCI runtime's root or a task
    /// directory, recorded or not; sorted, without repeats. Only names that are container
    /// identifiers count (`.exits` is none): these ids are passed to the runtime as
    /// arguments, and a directory named `--all` or `-h` (made by hand, or by another
    /// tool in the runtime's root) would be read as an option. Such a name is logged and
    /// left alone.
    pub fn ids_on_disk(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids = std::collections::BTreeSet::new();
        for dir in [&self.config.runc_root, &self.config.state_dir] {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == files::EXITS_DIR || !entry.file_type()?.is_dir() {
                    continue;
                }
                match validate_identifier(&name) {
                    Ok(()) => {
                        ids.insert(name);
                    }
                    Err(e) => log::warn!("{:?} in {} is not a task id ({e}); left alone", name, dir.display()),
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Kills and removes a run that no task record names (a start the daemon died in).
    /// Its supervisor is found by its command line (also while still inside `runc
    /// create`, before any pid file names the container) and killed with its group, so no
    /// container can start after the removal, and it cannot write an exit record into the
    /// directory of a later task of the same id. Then the container is killed and the
    /// runtime's state and the files removed.
    pub fn remove_unrecorded(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.files(id).dir;
        for (_, (pid, start)) in files::supervisors().into_iter().filter(|(d, _)| *d == dir) {
            log::warn!("task {id}: supervisor {pid} of an unrecorded start still runs; killing it and its group");
            if !files::kill_supervisor(pid, start, UNRECORDED_WAIT) {
                log::error!("task {id}: supervisor {pid} outlived SIGKILL");
            }
        }
        // Not running any more (or never created): the forced delete below settles it.
        let _ = self.kill(id, Signal::SIGKILL);
        self.delete(id)
    }

    /// Reports `id`'s exit to the watcher again, as its supervisor did: a marker renamed
    /// into the exits directory.
    pub fn report_exit_again(&self, id: &str) {
        if let Err(e) = files::write_durably(&files::exits_dir(&self.config.state_dir).join(id), b"") {
            log::error!("task {id}: cannot report its exit again: {e}");
        }
    }

    /// Watches for exits; the receiver gets each exited task's id (at least once).
    pub fn watch_exits(&self) -> Result<Receiver<String>, RuntimeError> {
        exits::watch(&files::exits_dir(&self.config.state_dir))
    }

    /// Task `id`'s OCI bundle directory (what containerd's task events call `bundle`).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.files(id).bundle()
    }

    fn files(&self, id: &str) -> files::TaskFiles {
        files::TaskFiles::new(&self.config.state_dir, id)
    }
}
