//! The task record: the running process made from a container (containerd's task), as the
//! daemon records it so that a restart can find, reconcile and report it.

use serde::{Deserialize, Serialize};

use super::Timestamp;

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
}
