//! A recording double of the task runtime, for the tests of the services and of the
//! filesystem above them: it records each call, starts "processes" that exit when told,
//! and can be made to fail a start or to act in the middle of a `resume`.

use std::collections::HashMap;
use std::sync::Mutex;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::TaskRuntime;
use crate::model::Timestamp;
use crate::runtime::{Exit, Observed, RuntimeError, Started};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(crate) struct FakeRuntime {
    pub(crate) calls: Mutex<Vec<String>>,
    /// The last exit record, of whichever run: as on disk, it stays across a start.
    pub(crate) exits: Mutex<HashMap<String, Exit>>,
    /// The generation of each task's last started run.
    pub(crate) runs: Mutex<HashMap<String, u64>>,
    pub(crate) fail_start: Mutex<Option<String>>,
    pub(crate) observed: Mutex<HashMap<String, &'static str>>,
    /// Runs inside the next `resume`, as if the process did something meanwhile.
    pub(crate) on_resume: Mutex<Option<Hook>>,
    /// Tasks the runtime runs whatever their records say (a start cut short).
    pub(crate) live: Mutex<std::collections::HashSet<String>>,
}

impl FakeRuntime {
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    /// The task's last started run exits with `status`.
    pub(crate) fn exit(&self, id: &str, status: i32) {
        let run = self.run_of(id);
        self.exit_of_run(id, run, status);
    }
    /// An exit record of run `generation`.
    pub(crate) fn exit_of_run(&self, id: &str, generation: u64, status: i32) {
        self.exits.lock().unwrap().insert(id.into(), Exit { status, exited_at: Timestamp::now(), generation });
    }
    pub(crate) fn run_of(&self, id: &str) -> u64 {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl TaskRuntime for FakeRuntime {
    fn validate_spec(&self, spec: &Value) -> Result<(), RuntimeError> {
        match spec.pointer("/process/args").and_then(Value::as_array) {
            Some(args) if !args.is_empty() => Ok(()),
            _ => Err(RuntimeError::BadSpec { reason: "process.args is empty".into() }),
        }
    }
    fn start(&self, id: &str, _spec: &Value, generation: u64) -> Result<Started, RuntimeError> {
        self.record(format!("start {id}"));
        if let Some(message) = self.fail_start.lock().unwrap().clone() {
            return Err(RuntimeError::Runc { op: "create", message });
        }
        self.runs.lock().unwrap().insert(id.into(), generation);
        Ok(Started {
            pid: 4242,
            pid_start_time: 7,
            supervisor_pid: 4241,
            supervisor_start_time: 6,
            started_at: Timestamp::now(),
            stdout: format!("/nonexistent/{id}/stdout").into(),
            stderr: format!("/nonexistent/{id}/stderr").into(),
            generation,
        })
    }
    fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        self.record(format!("kill {id} {signal}"));
        if signal == Signal::SIGKILL {
            self.exit(id, 137);
        }
        Ok(())
    }
    fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(format!("pause {id}"));
        Ok(())
    }
    fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(format!("resume {id}"));
        if let Some(hook) = self.on_resume.lock().unwrap().take() {
            hook();
        }
        Ok(())
    }
    fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(format!("delete {id}"));
        Ok(())
    }
    fn exit_of(&self, id: &str) -> Result<Option<Exit>, RuntimeError> {
        Ok(self.exits.lock().unwrap().get(id).copied())
    }
    fn end_unacknowledged_runs(&self, stopped: &[String]) -> Vec<String> {
        let live = self.live.lock().unwrap().clone();
        let ended: Vec<String> = stopped.iter().filter(|id| live.contains(*id)).cloned().collect();
        for id in &ended {
            let _ = self.kill(id, Signal::SIGKILL);
        }
        ended
    }
    fn observe(&self, id: &str, started: &Started) -> Observed {
        match self.observed.lock().unwrap().get(id).copied() {
            Some("paused") => Observed::Paused,
            Some("unknown") => Observed::Unknown,
            Some("gone") => Observed::Stopped(None),
            _ => match self.exits.lock().unwrap().get(id).filter(|e| e.generation == started.generation) {
                Some(exit) => Observed::Stopped(Some(*exit)),
                None => Observed::Running,
            },
        }
    }
}
