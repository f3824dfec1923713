//! The task record: the running process made from a container (containerd's task), as the
//! daemon records it so that a restart can find, reconcile and report it.
//!
//! A task is run again by `start` as a fresh process; each run has an identity, its
//! generation. What happens to a run (its exit, a pause or resume) applies to the record
//! only while that run is the record's current one: the rules are here, and the store
//! applies them inside the write transaction that reads the record.

use serde::{Deserialize, Serialize};

use super::{Labels, Timestamp};

/// A container label that deletes its task as soon as it exits (`docker run --rm`):
/// the task record, its runtime state, logs and root filesystem mount.
pub const LABEL_REMOVE_ON_EXIT: &str = "ctrfs.io/rm";

/// Whether a container's labels ask for its task to be deleted when it exits.
pub fn removes_on_exit(labels: &Labels) -> bool {
    labels.get(LABEL_REMOVE_ON_EXIT) == Some("true")
}

/// The lifecycle state of a task, as `cat tasks/<id>` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Made by the runtime, not started yet.
    Created,
    /// Its process runs.
    Running,
    /// Frozen (`echo pause`).
    Paused,
    /// Its process exited; the exit status is kept until the task is removed.
    Stopped,
    /// Its supervisor is gone and the runtime cannot say more: reported, never dropped.
    Unknown,
}

impl TaskStatus {
    /// Whether a signal can be delivered.
    pub fn can_signal(self) -> bool {
        matches!(self, TaskStatus::Created | TaskStatus::Running | TaskStatus::Paused | TaskStatus::Unknown)
    }
    /// Whether `pause` applies.
    pub fn can_pause(self) -> bool {
        self == TaskStatus::Running
    }
    /// Whether `resume` applies.
    pub fn can_resume(self) -> bool {
        self == TaskStatus::Paused
    }
    /// Whether `start` applies (a stopped task starts again as a fresh process).
    pub fn can_start(self) -> bool {
        self == TaskStatus::Stopped
    }
    /// Whether the process may still be alive.
    pub fn is_live(self) -> bool {
        !matches!(self, TaskStatus::Stopped)
    }
}

/// A task. Its id is its container's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The container's id (immutable).
    pub id: String,
    /// Current state.
    pub status: TaskStatus,
    /// Host pid of the container's init process (0 when none).
    pub pid: u32,
    /// `/proc/<pid>/stat` start time of that process, to tell pid reuse apart.
    #[serde(default)]
    pub pid_start_time: u64,
    /// Host pid of the task's supervisor.
    #[serde(default)]
    pub supervisor_pid: u32,
    /// Start time of the supervisor.
    #[serde(default)]
    pub supervisor_start_time: u64,
    /// When the current process started.
    pub started_at: Timestamp,
    /// Exit status (code, or 128 + signal) once stopped; absent when unknown.
    pub exit_status: Option<i32>,
    /// When it exited, once stopped.
    pub exited_at: Option<Timestamp>,
    /// Host path of the stdout log.
    pub stdout: String,
    /// Host path of the stderr log.
    pub stderr: String,
    /// Which run of the task this record describes (mutable, by `start` only): 1 for the
    /// first start, one more for each start again. Not shown in `tasks/<id>`.
    ///
    /// Defaulted, so records written before runs had generations load as run 0; their
    /// supervisors wrote no generation either, so their exit records (also defaulted to 0)
    /// still match. An added field with a default needs no schema migration.
    #[serde(default)]
    pub generation: u64,
    /// When the task was first created.
    pub created_at: Timestamp,
    /// Last change of the record.
    pub updated_at: Timestamp,
}

impl Task {
    /// The document `cat tasks/<id>` shows.
    pub fn status_json(&self) -> String {
        let mut view = serde_json::json!({
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "started_at": self.started_at,
            "stdout": self.stdout,
            "stderr": self.stderr,
        });
        if self.status == TaskStatus::Stopped {
            view["exit_status"] = serde_json::json!(self.exit_status);
            view["exited_at"] = serde_json::json!(self.exited_at);
        }
        let mut text = serde_json::to_string_pretty(&view).expect("a task always serializes");
        text.push('\n');
        text
    }

    /// Records that run `generation` ended (`status` unknown when `None`). False, and no
    /// change, when that run is not the current one (a late report of an earlier run must
    /// not stop a newer one) or its exit is already recorded (reports are repeated).
    pub fn record_exit(&mut self, generation: u64, status: Option<i32>, exited_at: Option<Timestamp>) -> bool {
        if generation != self.generation {
            return false;
        }
        // Already stopped: only an unknown status may still be learnt (an `rm` that gave up
        // waiting, then the supervisor's record).
        if self.status == TaskStatus::Stopped && (self.exit_status.is_some() || status.is_none()) {
            return false;
        }
        self.status = TaskStatus::Stopped;
        self.exit_status = status;
        self.exited_at = exited_at;
        true
    }

    /// A status change made on run `generation` (pause, resume, what reconcile saw). False,
    /// and no change, when that run is not the current one or has stopped: only `start`
    /// brings a stopped task back, as a new run.
    pub fn change_status(&mut self, generation: u64, status: TaskStatus) -> bool {
        if generation != self.generation || self.status == TaskStatus::Stopped || status == TaskStatus::Stopped {
            return false;
        }
        self.status = status;
        true
    }

    /// Replaces this stopped run, of generation `from`, by `next`, a later run. False, and
    /// no change, when this record is no longer the stopped run `next` was started from.
    /// (`next` may skip numbers: a run started and never recorded took one.)
    pub fn begin_run(&mut self, from: u64, next: Task) -> bool {
        if self.status != TaskStatus::Stopped || self.generation != from || next.generation <= from {
            return false;
        }
        *self = Task { created_at: self.created_at, ..next };
        true
    }

    /// What `wait/<id>` returns once stopped: the exit status and a newline, or
    /// `unknown` when the status was lost with the supervisor.
    pub fn wait_text(&self) -> Option<String> {
        (self.status == TaskStatus::Stopped).then(|| match self.exit_status {
            Some(code) => format!("{code}\n"),
            None => "unknown\n".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: TaskStatus) -> Task {
        Task {
            id: "web".into(),
            status,
            pid: 42,
            pid_start_time: 1,
            supervisor_pid: 41,
            supervisor_start_time: 1,
            started_at: Timestamp::from_nanos(0),
            exit_status: (status == TaskStatus::Stopped).then_some(3),
            exited_at: (status == TaskStatus::Stopped).then_some(Timestamp::from_nanos(1)),
            stdout: "/s/web/stdout".into(),
            stderr: "/s/web/stderr".into(),
            generation: 1,
            created_at: Timestamp::from_nanos(0),
            updated_at: Timestamp::from_nanos(0),
        }
    }

    #[test]
    fn exit_fields_show_once_stopped() {
        let running: serde_json::Value = serde_json::from_str(&task(TaskStatus::Running).status_json()).unwrap();
        assert_eq!(running["status"], "running");
        assert!(running.get("exit_status").is_none());
        let stopped: serde_json::Value = serde_json::from_str(&task(TaskStatus::Stopped).status_json()).unwrap();
        assert_eq!(stopped["exit_status"], 3);
        assert_eq!(task(TaskStatus::Stopped).wait_text().as_deref(), Some("3\n"));
        assert_eq!(task(TaskStatus::Running).wait_text(), None);
    }

    #[test]
    fn verbs_follow_the_status() {
        assert!(TaskStatus::Running.can_pause() && !TaskStatus::Paused.can_pause());
        assert!(TaskStatus::Paused.can_resume());
        assert!(TaskStatus::Stopped.can_start() && !TaskStatus::Running.can_start());
        assert!(!TaskStatus::Stopped.can_signal());
    }

    #[test]
    fn an_exit_applies_to_its_own_run_only() {
        let mut t = task(TaskStatus::Running);
        t.generation = 2;
        assert!(!t.record_exit(1, Some(3), Some(Timestamp::from_nanos(1))), "a report of the run before");
        assert_eq!(t.status, TaskStatus::Running);
        assert!(t.record_exit(2, Some(4), Some(Timestamp::from_nanos(2))));
        assert_eq!((t.status, t.exit_status), (TaskStatus::Stopped, Some(4)));
        assert!(!t.record_exit(2, Some(4), Some(Timestamp::from_nanos(2))), "a repeated report changes nothing");
        let mut unknown = task(TaskStatus::Running);
        assert!(unknown.record_exit(1, None, None));
        assert!(unknown.record_exit(1, Some(137), Some(Timestamp::from_nanos(3))), "an unknown status is learnt later");
        assert_eq!(unknown.exit_status, Some(137));
    }

    #[test]
    fn status_changes_never_bring_a_stopped_run_back() {
        let mut t = task(TaskStatus::Running);
        assert!(t.change_status(1, TaskStatus::Paused));
        assert!(!t.change_status(0, TaskStatus::Running), "another run");
        assert!(t.record_exit(1, Some(0), None));
        assert!(!t.change_status(1, TaskStatus::Running));
        assert_eq!(t.status, TaskStatus::Stopped);
        let next = Task { generation: 2, status: TaskStatus::Running, created_at: Timestamp::from_nanos(9), ..t.clone() };
        assert!(!t.clone().begin_run(0, next.clone()), "not the run it was started from");
        assert!(!t.clone().begin_run(1, Task { generation: 1, ..next.clone() }), "not a later run");
        assert!(t.clone().begin_run(1, Task { generation: 3, ..next.clone() }), "a later run may skip a number");
        assert!(t.begin_run(1, next));
        assert_eq!((t.generation, t.status, t.created_at), (2, TaskStatus::Running, Timestamp::from_nanos(0)));
        assert!(!t.clone().begin_run(2, Task { generation: 3, ..t.clone() }), "only a stopped run is replaced");
    }

    #[test]
    fn records_without_a_generation_still_load() {
        let mut old = serde_json::to_value(task(TaskStatus::Running)).unwrap();
        old.as_object_mut().unwrap().remove("generation");
        let loaded: Task = serde_json::from_value(old).unwrap();
        assert_eq!(loaded.generation, 0);
    }
}
