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

/// How long `runc create` + `runc start`, under the supervisor, may take before the start
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

    /// Whether runc has a process of `id` that has not ended (created, running, paused).
    /// Asked at start-up of every stopped task, so runc (a process to spawn) is asked
    /// only when the pid file names a process that exists: a start writes a new pid file,
    /// and a stopped run's process is gone.
    pub fn has_live_run(&self, id: &str) -> bool {
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
    /// A supervisor still inside `runc create` (no pid file yet) is found by its command
    /// line, and its session (it, `runc create`, `runc init`) killed, so no container can
    /// start after the removal. Otherwise the supervisor is found as the container's
    /// parent (it is the container's subreaper) before the kill, and waited for (at most
    /// `UNRECORDED_WAIT`) before the files go, so that it cannot write its exit record
    /// into the directory of a later task of the same id.
    pub fn remove_unrecorded(&self, id: &str) -> Result<(), RuntimeError> {
        self.kill_supervisors_of(id);
        let container = std::fs::read_to_string(self.files(id).pid()).ok().and_then(|p| p.trim().parse::<u32>().ok());
        let supervisor = container
            .and_then(files::parent_pid)
            .filter(|&ppid| ppid > 1 && ppid != std::process::id())
            .and_then(|ppid| Some((ppid, files::process_start_time(ppid)?)));
        // Not running any more (or never created): the forced delete below settles it.
        let _ = self.kill(id, Signal::SIGKILL);
        if let Some((pid, start)) = supervisor {
            let deadline = std::time::Instant::now() + UNRECORDED_WAIT;
            while files::is_alive(pid, start) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.delete(id)
    }

    /// Kills the sessions of `id`'s supervisors that have not started a container yet and
    /// waits (at most `UNRECORDED_WAIT`) for them to end.
    fn kill_supervisors_of(&self, id: &str) {
        let own_group = nix::unistd::getpgrp().as_raw() as u32;
        for (pid, start) in files::supervisors_of(&self.files(id).dir) {
            // A supervisor calls setsid first: its group is its session, never ours.
            let Some(group) = files::process_group(pid).filter(|g| *g > 1 && *g != own_group) else { continue };
            if !files::is_alive(pid, start) {
                continue;
            }
            log::warn!("task {id}: supervisor {pid} of an unrecorded start still runs; killing its session");
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group as i32), Signal::SIGKILL);
            let deadline = std::time::Instant::now() + UNRECORDED_WAIT;
            while files::is_alive(pid, start) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Watches for exits; the receiver gets each exited task's id (at least once).
    pub fn watch_exits(&self) -> Result<Receiver<String>, RuntimeError> {
        exits::watch(&files::exits_dir(&self.config.state_dir))
    }

    fn files(&self, id: &str) -> files::TaskFiles {
        files::TaskFiles::new(&self.config.state_dir, id)
    }
}
