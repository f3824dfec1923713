//! Tasks: start a container's process, control it with signals and pause/resume, start
//! it again, delete it, and record how each run ended.
//!
//! The store and the runtime are composed here and nowhere else (as containerd's tasks
//! service composes metadata and shim): validate against the store, run the runtime with
//! no transaction open, then record the outcome in one short write transaction.
//!
//! Each start of a task is a run with its own generation. Everything that changes a
//! task's record (a start, an exit, pause or resume, reconcile) runs under the task's
//! gate, and its write is a compare-and-set on the run it was made for: a late exit of an
//! earlier run never stops a newer one, a status change never brings a stopped run back,
//! and a restart never replaces a record that changed under it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{parse_spec, Event, Result, ServiceError, Services};
use crate::model::event::Published;
use crate::model::{Task, TaskStatus, Timestamp};
use crate::runtime::{self, Control, Exit, Observed, RuntimeError, Started};
use crate::store::{schema, Node, NodeId, StoreRead};

/// What the filesystem needs from a task runtime (the real one is `runtime::Runtime`;
/// tests use a double).
pub trait TaskRuntime: Send + Sync {
    /// Cheap checks that the spec can run.
    fn validate_spec(&self, spec: &Value) -> Result<(), RuntimeError>;
    /// Starts run `generation` of the container's process; returns once it exists. A
    /// failure leaves the logs and exit record of earlier runs as they were.
    fn start(&self, id: &str, spec: &Value, generation: u64) -> Result<Started, RuntimeError>;
    /// Sends a signal.
    fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError>;
    /// Freezes the task.
    fn pause(&self, id: &str) -> Result<(), RuntimeError>;
    /// Thaws the task.
    fn resume(&self, id: &str) -> Result<(), RuntimeError>;
    /// Removes a stopped task's runtime state and logs.
    fn delete(&self, id: &str) -> Result<(), RuntimeError>;
    /// The last durable exit record, of whichever run ended last (see its generation).
    fn exit_of(&self, id: &str) -> Result<Option<Exit>, RuntimeError>;
    /// What is known of a recorded task after a daemon restart.
    fn observe(&self, id: &str, started: &Started) -> Observed;
    /// Every task id the runtime keeps state for (its own containers, its task
    /// directories), recorded or not. A runtime that keeps no state has none.
    fn ids_on_disk(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }
    /// Kills and removes a run no task record names; see `Services::reconcile_tasks`.
    fn remove_unrecorded(&self, id: &str) -> Result<(), RuntimeError> {
        let _ = self.kill(id, Signal::SIGKILL);
        self.delete(id)
    }
    /// Reports `id`'s exit to the exit watcher again. A runtime that keeps no state has
    /// no watcher.
    fn report_exit_again(&self, _id: &str) {}
    /// Ends what runs of these stopped tasks (a start again cut short: a supervisor still
    /// running, a live container); returns the ids that had something. A runtime that
    /// keeps no state has none.
    fn end_unacknowledged_runs(&self, _stopped: &[String]) -> Vec<String> {
        Vec::new()
    }
    /// The task's OCI bundle directory, for its `/tasks/create` event; empty for a
    /// runtime that writes none.
    fn bundle_dir(&self, _id: &str) -> String {
        String::new()
    }
}

impl TaskRuntime for runtime::Runtime {
    fn validate_spec(&self, spec: &Value) -> Result<(), RuntimeError> {
        runtime::Runtime::validate_spec(spec)
    }
    fn start(&self, id: &str, spec: &Value, generation: u64) -> Result<Started, RuntimeError> {
        runtime::Runtime::start(self, id, spec, generation)
    }
    fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        runtime::Runtime::kill(self, id, signal)
    }
    fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        runtime::Runtime::pause(self, id)
    }
    fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        runtime::Runtime::resume(self, id)
    }
    fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        runtime::Runtime::delete(self, id)
    }
    fn exit_of(&self, id: &str) -> Result<Option<Exit>, RuntimeError> {
        runtime::Runtime::exit_of(self, id)
    }
    fn observe(&self, id: &str, started: &Started) -> Observed {
        runtime::Runtime::observe(self, id, started)
    }
    fn ids_on_disk(&self) -> Result<Vec<String>, RuntimeError> {
        runtime::Runtime::ids_on_disk(self)
    }
    fn remove_unrecorded(&self, id: &str) -> Result<(), RuntimeError> {
        runtime::Runtime::remove_unrecorded(self, id)
    }
    fn end_unacknowledged_runs(&self, stopped: &[String]) -> Vec<String> {
        runtime::Runtime::end_unacknowledged_runs(self, stopped)
    }
    fn report_exit_again(&self, id: &str) {
        runtime::Runtime::report_exit_again(self, id)
    }
    fn bundle_dir(&self, id: &str) -> String {
        runtime::Runtime::bundle_dir(self, id).to_string_lossy().into_owned()
    }
}

/// Serializes operations per task (a start racing an `rm` of the same id gets EBUSY).
///
/// Who holds a task's gate matters to a user request that finds it held: another user
/// request (a start, an `rm`) is refused with EBUSY, but the exit recorder and the
/// start-up reconciliation hold it only for a store write or a runtime query, so a user
/// request waits for them. Refusing then made `rm tasks/x && rmdir containers/x` fail
/// now and then: the exit recorder, woken by the killed run's exit, took the gate right
/// after the `rm` released it (found by the crash harness, tests/mount/crash.rs).
#[derive(Default)]
pub struct TaskGate {
    /// The tasks whose gate is held, and whether by background work (`enter_waiting`).
    busy: Mutex<HashMap<String, bool>>,
    /// Signalled whenever a task's gate opens, for those waiting on it.
    opened: Condvar,
}

/// Held while one operation runs on a task.
pub struct GateGuard<'a> {
    gate: &'a TaskGate,
    id: String,
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.gate.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        self.gate.opened.notify_all();
    }
}

impl TaskGate {
    /// For user requests: EBUSY while another user request on the task runs; waits while
    /// background work (recording an exit) holds it, which never waits for a user request.
    pub(super) fn enter(&self, id: &str) -> Result<GateGuard<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match busy.get(id) {
                None => break,
                Some(false) => return Err(ServiceError::TaskBusy(id.to_owned())),
                Some(true) => busy = self.opened.wait(busy).unwrap_or_else(|p| p.into_inner()),
            }
        }
        busy.insert(id.to_owned(), false);
        Ok(GateGuard { gate: self, id: id.to_owned() })
    }

    /// For what must not be refused (an exit to record): waits until the gate opens. No
    /// holder of the gate waits for anything that needs it, so the wait ends with the
    /// operation that holds it (at most a start's timeout).
    fn enter_waiting(&self, id: &str) -> GateGuard<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains_key(id) {
            busy = self.opened.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(id.to_owned(), true);
        GateGuard { gate: self, id: id.to_owned() }
    }
}

/// How long `rm` of a running task waits for the supervisor to record the SIGKILL'd exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Services {
    fn runtime(&self) -> Result<Arc<dyn TaskRuntime>> {
        self.runtime.clone().ok_or(ServiceError::NoRuntime)
    }

    /// Starts container `id`'s process, as its run 1, and records the task.
    pub fn start_task(&self, id: &str) -> Result<(Node, Task)> {
        let runtime = self.runtime()?;
        let _gate = self.gate.enter(id)?;
        let spec = {
            let reader = self.store.read()?;
            if reader.lookup(schema::TASKS, id)?.is_some() {
                return Err(ServiceError::Exists(format!("task {id}")));
            }
            self.container_spec(&reader, id)?
        };
        let started = self.start_run(&*runtime, id, spec, 1)?;
        crate::fault::point(crate::fault::points::TASK_STARTED);
        let task = new_task(id, &started);
        let bundle = runtime.bundle_dir(id);
        let recorded = self.store.write(|w| {
            let node = w.create_task(task.clone())?;
            w.publish(Published::TaskCreate { container_id: id.to_owned(), bundle, pid: task.pid });
            w.publish(Published::TaskStart { container_id: id.to_owned(), pid: task.pid });
            Ok::<_, crate::store::StoreError>(node)
        });
        let node = match recorded {
            Ok(node) => node,
            Err(e) => {
                // A first run has no earlier logs to keep: its runtime state goes too.
                if let Err(cleanup) = runtime.kill(id, Signal::SIGKILL).and_then(|()| runtime.delete(id)) {
                    log::error!("task {id}: not recorded ({e}) and not cleaned up: {cleanup}");
                }
                self.release_rootfs(id);
                return Err(e.into());
            }
        };
        log::info!("task {id} started: pid {}", started.pid);
        // An exit that came before the record existed was skipped by the watcher.
        self.record_exit_locked(&*runtime, id)?;
        self.report_early_exit(&*runtime, id);
        let task = self.task_record(node.id)?;
        Ok((node, task))
    }

    /// Mounts the root filesystem and starts run `generation` from `spec`; a failure
    /// releases the root filesystem again (a failed start leaves nothing mounted).
    fn start_run(&self, runtime: &dyn TaskRuntime, id: &str, spec: Value, generation: u64) -> Result<Started> {
        let spec = self.with_rootfs(id, spec)?;
        match runtime.validate_spec(&spec).and_then(|()| runtime.start(id, &spec, generation)) {
            Ok(started) => Ok(started),
            Err(e) => {
                self.release_rootfs(id);
                Err(e.into())
            }
        }
    }

    /// A run that started but could not be recorded must not run untracked; its exit
    /// (not the recorded run's) will not be applied.
    fn abandon_run(&self, runtime: &dyn TaskRuntime, id: &str, why: &str) {
        if let Err(cleanup) = runtime.kill(id, Signal::SIGKILL) {
            log::error!("task {id}: {why} and not killed: {cleanup}");
        }
    }

    /// The spec with its root pointed at the container's snapshot, mounted now, when the
    /// container has one: the snapshot is the root filesystem, whatever the spec said.
    fn with_rootfs(&self, id: &str, mut spec: Value) -> Result<Value> {
        if let Some(rootfs) = self.mount_rootfs(id)? {
            spec["root"]["path"] = Value::String(rootfs.to_string_lossy().into_owned());
        }
        Ok(spec)
    }

    fn container_spec(&self, reader: &impl StoreRead, id: &str) -> Result<Value> {
        let node = reader
            .lookup(schema::CONTAINERS, id)?
            .ok_or_else(|| ServiceError::NoContainer(id.to_owned()))?;
        let spec = reader.spec(node.id)?.ok_or_else(|| RuntimeError::BadSpec { reason: format!("container {id} has no spec") })?;
        parse_spec(id, &spec)
    }

    /// Control words, one per line (a signal, pause, resume, start), applied in order.
    pub fn control_task(&self, node: NodeId, data: &[u8]) -> Result<()> {
        for control in parse_controls(data)? {
            self.apply_control(node, control)?;
        }
        Ok(())
    }

    /// Whether container `id` could start a task now, checked without side effects (no
    /// mount, no runtime call): no task yet, a container with a spec that can run. What
    /// only the runtime can tell (a missing binary) is known at the start itself.
    pub fn check_task_start(&self, id: &str) -> Result<()> {
        let runtime = self.runtime()?;
        let reader = self.store.read()?;
        if reader.lookup(schema::TASKS, id)?.is_some() {
            return Err(ServiceError::Exists(format!("task {id}")));
        }
        let mut spec = self.container_spec(&reader, id)?;
        let node = reader.lookup(schema::CONTAINERS, id)?.ok_or_else(|| ServiceError::NoContainer(id.to_owned()))?;
        let has_snapshot = reader.container(node.id)?.is_some_and(|c| !c.snapshot.is_empty());
        if has_snapshot && self.resources.is_some() && spec.pointer("/root/path").is_none() {
            // The snapshot becomes root.path at the start.
            spec["root"]["path"] = Value::String("/".into());
        }
        Ok(runtime.validate_spec(&spec)?)
    }

    /// The first write to a task that does not exist yet: `start` (or no word at all)
    /// starts it; any other word is refused before anything runs: a signal, `pause` or
    /// `resume` with `ESRCH` (there is no process), a word that is none with `EINVAL`.
    /// Only the first word decides; `control_task_after_start` applies the rest.
    pub fn start_task_for_write(&self, id: &str, data: &[u8]) -> Result<(Node, Task)> {
        match parse_controls(data)?.first() {
            None | Some(Control::Start) => self.start_task(id),
            Some(_) => Err(ServiceError::NoProcess(id.to_owned())),
        }
    }

    /// Control words written through the handle that started the task: a first `start`
    /// is that start itself, not a second one; the rest apply as `control_task`.
    pub fn control_task_after_start(&self, node: NodeId, data: &[u8]) -> Result<()> {
        let controls = parse_controls(data)?;
        let skip = usize::from(controls.first() == Some(&Control::Start));
        for control in controls.into_iter().skip(skip) {
            self.apply_control(node, control)?;
        }
        Ok(())
    }

    fn apply_control(&self, node: NodeId, control: Control) -> Result<()> {
        let runtime = self.runtime()?;
        let id = self.task_record(node)?.id;
        let _gate = self.gate.enter(&id)?;
        // Read again under the gate: an exit may have been recorded meanwhile.
        let task = self.task_record(node)?;
        let refuse = |status: TaskStatus| Err(ServiceError::IncorrectStatus(id.clone(), status));
        match control {
            Control::Signal(signal) => {
                if !task.status.can_signal() {
                    return Err(ServiceError::NoProcess(id));
                }
                match runtime.kill(&id, signal) {
                    // The process ended before its exit was recorded: same answer as after.
                    Err(RuntimeError::Runc { message, .. }) if message.contains("not running") => {
                        return Err(ServiceError::NoProcess(id));
                    }
                    result => result?,
                }
                log::info!("task {id}: sent {signal}");
                return Ok(());
            }
            Control::Pause if !task.status.can_pause() => return refuse(task.status),
            Control::Resume if !task.status.can_resume() => return refuse(task.status),
            Control::Start if !task.status.can_start() => return refuse(task.status),
            Control::Pause => {
                runtime.pause(&id)?;
                self.set_status(node, task.generation, TaskStatus::Paused)?;
            }
            Control::Resume => {
                runtime.resume(&id)?;
                self.set_status(node, task.generation, TaskStatus::Running)?;
            }
            Control::Start => self.restart(&*runtime, node, &task)?,
        }
        self.emit(Event::TaskChanged { node });
        Ok(())
    }

    /// `start` of a stopped task: a fresh process as the next run. A failure leaves the
    /// stopped run's record, logs and exit record as they were, and reports its error.
    fn restart(&self, runtime: &dyn TaskRuntime, node: NodeId, stopped: &Task) -> Result<()> {
        let id = &stopped.id;
        let spec = self.container_spec(&self.store.read()?, id)?;
        let started = self.start_run(runtime, id, spec, next_generation(runtime, stopped))?;
        crate::fault::point(crate::fault::points::TASK_RESTARTED);
        let next = new_task(id, &started);
        let begun = self.store.write(|w| {
            let task = w.update_task(node, |t| t.begin_run(stopped.generation, next))?;
            if let Some(task) = &task {
                w.publish(Published::TaskStart { container_id: task.id.clone(), pid: task.pid });
            }
            Ok::<_, crate::store::StoreError>(task)
        });
        match begun {
            Ok(Some(_)) => {}
            // Under the gate nothing else replaces a run; should it ever, the new process
            // must not outlive the refusal.
            Ok(None) => {
                self.abandon_run(runtime, id, "run not recorded (the record changed)");
                return Err(ServiceError::TaskBusy(id.clone()));
            }
            Err(e) => {
                self.abandon_run(runtime, id, &format!("run not recorded ({e})"));
                return Err(e.into());
            }
        }
        log::info!("task {id} started again: run {}, pid {}", started.generation, started.pid);
        self.record_exit_locked(runtime, id)?;
        self.report_early_exit(runtime, id);
        Ok(())
    }

    /// A status change made on run `generation`; not applied (and logged) when that run
    /// has ended meanwhile, or another run replaced it.
    fn set_status(&self, node: NodeId, generation: u64, status: TaskStatus) -> Result<()> {
        let changed = self.store.write(|w| {
            let before = w.task(node)?.map(|t| t.status);
            let task = w.update_task(node, |t| t.change_status(generation, status))?;
            if let Some(event) = task.as_ref().and_then(|t| status_event(before, t)) {
                w.publish(event);
            }
            Ok::<_, crate::store::StoreError>(task)
        })?;
        if changed.is_none() {
            log::info!("task node {}: run {generation} ended before it became {status:?}; it stays stopped", node.0);
        }
        Ok(())
    }

    fn task_record(&self, node: NodeId) -> Result<Task> {
        self.store.read()?.task(node)?.ok_or_else(|| ServiceError::Gone(format!("task node {}", node.0)))
    }

    /// Deletes task `node`: a live task is killed (SIGKILL) and its exit recorded first,
    /// so waiters learn how it ended; then the runtime state and the record go.
    pub fn delete_task(&self, node: NodeId) -> Result<()> {
        let runtime = self.runtime()?;
        let id = self.task_record(node)?.id;
        let _gate = self.gate.enter(&id)?;
        let record = self.task_record(node)?;
        if record.status.is_live() {
            self.kill_and_reap(&*runtime, node, &record)?;
        }
        runtime.delete(&id)?;
        self.release_rootfs(&id);
        self.store.write(|w| delete_and_publish(w, &id))?;
        log::info!("task {id} deleted");
        Ok(())
    }

    fn kill_and_reap(&self, runtime: &dyn TaskRuntime, node: NodeId, task: &Task) -> Result<()> {
        let id = &task.id;
        if task.status == TaskStatus::Paused {
            // A frozen process cannot act on SIGKILL everywhere; thaw it first.
            if let Err(e) = runtime.resume(id) {
                log::warn!("task {id}: resume before kill failed: {e}");
            }
        }
        if let Err(e) = runtime.kill(id, Signal::SIGKILL) {
            log::warn!("task {id}: SIGKILL failed ({e}); deleting anyway");
        }
        let deadline = Instant::now() + KILL_WAIT;
        let exit = loop {
            // Only this run's exit: the record of the run before may still be there.
            if let Some(exit) = runtime.exit_of(id)?.filter(|e| e.generation == task.generation) {
                break Some(exit);
            }
            if Instant::now() >= deadline {
                log::warn!("task {id}: no exit recorded {KILL_WAIT:?} after SIGKILL (supervisor gone?)");
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.apply_exit(node, task.generation, exit)
    }

    /// The exit watcher saw task `id` exit: record it and tell the waiters. Idempotent,
    /// and a no-op for a task that is not (or no longer) recorded, or for the exit of a
    /// run that is not the task's current one.
    ///
    /// It waits for the task's gate rather than being refused by a user's request, so no
    /// exit is lost; it looks first without the gate, since most reports are repeats or
    /// of tasks that are gone, and the gate may be held for long (a start, an unpack).
    pub fn record_exit(&self, id: &str) -> Result<()> {
        let runtime = self.runtime()?;
        let Some(exit) = runtime.exit_of(id)? else { return Ok(()) };
        let Some(node) = self.store.read()?.lookup(schema::TASKS, id)? else { return Ok(()) };
        let Some(mut current) = self.store.read()?.task(node.id)? else { return Ok(()) };
        // Not the recorded run (an earlier one; or a later one whose start has not been
        // committed: the start looks again after its commit), or recorded already (by the
        // start itself, for a process that exited at once: its container may still ask
        // for the task's removal, which only this report makes).
        let stopped = current.status == TaskStatus::Stopped && current.generation == exit.generation;
        if !current.record_exit(exit.generation, Some(exit.status), Some(exit.exited_at)) && !stopped {
            return Ok(());
        }
        let _gate = self.gate.enter_waiting(id);
        self.record_exit_locked(&*runtime, id)?;
        self.remove_if_asked(&*runtime, id)
    }

    /// Deletes stopped task `id` when its container's labels ask for it
    /// (`ctrfs.io/rm=true`), as `rm tasks/<id>` would: runtime state, logs, root
    /// filesystem mount and record. Its exit was recorded first, so readers already
    /// blocked on `wait/<id>` were given it. The caller holds the task's gate.
    fn remove_if_asked(&self, runtime: &dyn TaskRuntime, id: &str) -> Result<()> {
        let Some(node) = self.stopped_and_asked_to_go(id)? else { return Ok(()) };
        self.emit(Event::TaskRemoving { node });
        runtime.delete(id)?;
        self.release_rootfs(id);
        self.store.write(|w| delete_and_publish(w, id))?;
        log::info!("task {id} deleted on exit ({}=true)", crate::model::LABEL_REMOVE_ON_EXIT);
        self.emit(Event::TaskRemoved { node, id: id.to_owned() });
        Ok(())
    }

    /// The node of task `id` when it is stopped and its container asks for its removal.
    fn stopped_and_asked_to_go(&self, id: &str) -> Result<Option<NodeId>> {
        let reader = self.store.read()?;
        let Some(node) = reader.lookup(schema::TASKS, id)? else { return Ok(None) };
        if !reader.task(node.id)?.is_some_and(|t| t.status == TaskStatus::Stopped) {
            return Ok(None);
        }
        let Some(container) = reader.lookup(schema::CONTAINERS, id)? else { return Ok(None) };
        let asked = reader.container(container.id)?.is_some_and(|c| crate::model::removes_on_exit(&c.labels));
        Ok(asked.then_some(node.id))
    }

    /// A start whose process exited before the start's record was committed: the exit
    /// watcher's report came too early to find the task, and the start recorded the exit
    /// itself. Removal is not done inside the start (the `touch` that made the task still
    /// works on it): the exit is reported again, and the watcher removes the task then.
    fn report_early_exit(&self, runtime: &dyn TaskRuntime, id: &str) {
        if matches!(self.stopped_and_asked_to_go(id), Ok(Some(_))) {
            runtime.report_exit_again(id);
        }
    }

    /// `record_exit` for a caller that holds the task's gate.
    fn record_exit_locked(&self, runtime: &dyn TaskRuntime, id: &str) -> Result<()> {
        let Some(exit) = runtime.exit_of(id)? else { return Ok(()) };
        let Some(node) = self.store.read()?.lookup(schema::TASKS, id)? else { return Ok(()) };
        self.apply_exit(node.id, exit.generation, Some(exit))
    }

    /// Records that run `generation` ended, in one compare-and-set: applied only while it
    /// is the task's current run and its exit is not recorded yet.
    fn apply_exit(&self, node: NodeId, generation: u64, exit: Option<Exit>) -> Result<()> {
        let applied = self.store.write(|w| {
            let task = w.update_task(node, |t| t.record_exit(generation, exit.map(|e| e.status), exit.map(|e| e.exited_at)))?;
            if let Some(task) = &task {
                w.publish(Published::task_exit(task, Timestamp::now()));
            }
            Ok::<_, crate::store::StoreError>(task)
        })?;
        let Some(task) = applied else {
            log::debug!("task node {}: exit of run {generation} not applied (not the current run, or recorded)", node.0);
            return Ok(());
        };
        log::info!("task {} stopped: exit status {}", task.id, task.exit_status.map_or("unknown".into(), |s| s.to_string()));
        let wait_text = task.wait_text().unwrap_or_default();
        self.emit(Event::TaskExited { node, wait_text });
        Ok(())
    }

    /// At start-up: compares every recorded live task with what the runtime sees, so
    /// exits while the daemon was down are reported and nothing is dropped.
    pub fn reconcile_tasks(&self) -> Result<usize> {
        let runtime = self.runtime()?;
        let tasks = self.store.read()?.tasks()?;
        let mut changed = self.end_unacknowledged_restarts(&*runtime, &tasks);
        // Stopped while no daemon could delete them (it died in between).
        for (_, task) in tasks.iter().filter(|(_, t)| t.status == TaskStatus::Stopped) {
            let _gate = self.gate.enter_waiting(&task.id);
            if let Err(e) = self.remove_if_asked(&*runtime, &task.id) {
                // One task's trouble must not keep the others from being reconciled.
                log::error!("task {}: not deleted on exit ({e}); tried again at the next start", task.id);
            }
        }
        for (node, task) in tasks.into_iter().filter(|(_, t)| t.status != TaskStatus::Stopped) {
            let _gate = self.gate.enter_waiting(&task.id);
            let observed = runtime.observe(&task.id, &started_of(&task));
            let status = match observed {
                Observed::Stopped(exit) => {
                    self.apply_exit(node, task.generation, exit)?;
                    if let Err(e) = self.remove_if_asked(&*runtime, &task.id) {
                        log::error!("task {}: not deleted on exit ({e}); tried again at the next start", task.id);
                    }
                    changed += 1;
                    continue;
                }
                Observed::Running => TaskStatus::Running,
                Observed::Paused => TaskStatus::Paused,
                Observed::Unknown => TaskStatus::Unknown,
            };
            if status != task.status {
                log::warn!("task {}: recorded {:?}, runtime says {:?}", task.id, task.status, status);
                self.set_status(node, task.generation, status)?;
                changed += 1;
            }
        }
        changed += self.remove_unrecorded_runs(&*runtime)?;
        Ok(changed)
    }

    /// Stopped tasks whose runtime still runs something: a start again (`echo start`) cut
    /// short between the runtime's start and the record's update. The start was never
    /// acknowledged, so what it began is ended (its supervisor first, so that its exit is
    /// never recorded); the record, its earlier run's exit and logs stay. Should an exit of
    /// that run have been recorded anyway, the next start takes a later generation.
    fn end_unacknowledged_restarts(&self, runtime: &dyn TaskRuntime, tasks: &[(NodeId, Task)]) -> usize {
        let stopped: Vec<String> = tasks.iter().filter(|(_, t)| t.status == TaskStatus::Stopped).map(|(_, t)| t.id.clone()).collect();
        let ended = runtime.end_unacknowledged_runs(&stopped);
        for id in &ended {
            log::warn!("task {id}: stopped, but a start again of it was under way (cut short); ended it");
        }
        ended.len()
    }

    /// A run the runtime knows of but no task record names: the daemon died between the
    /// runtime's start and the record's commit (or between a delete's runtime part and
    /// its record). The start was never acknowledged, so it is undone: the process is
    /// killed and its runtime state and files removed, and nothing runs untracked.
    fn remove_unrecorded_runs(&self, runtime: &dyn TaskRuntime) -> Result<usize> {
        let mut removed = 0;
        for id in runtime.ids_on_disk()? {
            if self.store.read()?.lookup(schema::TASKS, &id)?.is_some() {
                continue;
            }
            let _gate = self.gate.enter_waiting(&id);
            log::warn!("task {id}: the runtime has it but no record does (a start cut short); killing and removing it");
            if let Err(e) = runtime.remove_unrecorded(&id) {
                log::error!("task {id}: unrecorded run not removed (retried at the next start-up): {e}");
                continue;
            }
            self.release_rootfs(&id);
            removed += 1;
        }
        Ok(removed)
    }

    /// What `wait/<id>` shows: `None` while the task has not stopped; a task deleted
    /// meanwhile answers `unknown`.
    pub fn wait_text(&self, node: NodeId) -> Result<Option<String>> {
        match self.store.read()?.task(node)? {
            Some(task) => Ok(task.wait_text()),
            None => Ok(Some("unknown\n".into())),
        }
    }
}

/// Deletes task `id`'s record, publishing `/tasks/delete` with how its last run ended.
fn delete_and_publish(w: &mut crate::store::Writer<'_>, id: &str) -> crate::store::Result<()> {
    let task = w.delete_task(id)?;
    w.publish(Published::task_delete(&task, Timestamp::now()));
    Ok(())
}

/// The event of a status change that applied: pause and resume are published; a status
/// learnt at reconciliation (`unknown`) is no event of containerd's.
fn status_event(before: Option<TaskStatus>, after: &Task) -> Option<Published> {
    let container_id = after.id.clone();
    match (before, after.status) {
        (Some(TaskStatus::Running), TaskStatus::Paused) => Some(Published::TaskPaused { container_id }),
        (Some(TaskStatus::Paused), TaskStatus::Running) => Some(Published::TaskResumed { container_id }),
        _ => None,
    }
}

/// Control words, one per line; blank lines are none. Any invalid word refuses them all.
fn parse_controls(data: &[u8]) -> Result<Vec<Control>> {
    let text = std::str::from_utf8(data).map_err(|_| RuntimeError::BadControl { word: String::from_utf8_lossy(data).into() })?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(runtime::parse_control).collect::<Result<_, _>>()?)
}

/// The generation of a stopped task's next run: above its record's and above any run
/// whose exit the runtime recorded (a run started but never recorded, then killed, took
/// a number the record does not show).
fn next_generation(runtime: &dyn TaskRuntime, stopped: &Task) -> u64 {
    let last_exit = runtime.exit_of(&stopped.id).ok().flatten().map_or(0, |e| e.generation);
    stopped.generation.max(last_exit) + 1
}

fn new_task(id: &str, started: &Started) -> Task {
    let now = Timestamp::now();
    Task {
        id: id.to_owned(),
        status: TaskStatus::Running,
        pid: started.pid,
        pid_start_time: started.pid_start_time,
        supervisor_pid: started.supervisor_pid,
        supervisor_start_time: started.supervisor_start_time,
        started_at: started.started_at,
        exit_status: None,
        exited_at: None,
        stdout: started.stdout.to_string_lossy().into_owned(),
        stderr: started.stderr.to_string_lossy().into_owned(),
        generation: started.generation,
        created_at: now,
        updated_at: now,
    }
}

fn started_of(task: &Task) -> Started {
    Started {
        pid: task.pid,
        pid_start_time: task.pid_start_time,
        supervisor_pid: task.supervisor_pid,
        supervisor_start_time: task.supervisor_start_time,
        started_at: task.started_at,
        stdout: task.stdout.clone().into(),
        stderr: task.stderr.clone().into(),
        generation: task.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_request_is_refused_by_another_but_waits_for_background_work() {
        let gate = Arc::new(TaskGate::default());
        let user = gate.enter("web").unwrap();
        assert!(matches!(gate.enter("web"), Err(ServiceError::TaskBusy(_))), "a user request refuses another");
        drop(user);
        let background = gate.enter_waiting("web");
        let waiter = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.enter("web").map(drop).is_ok())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the user request waits while the exit recorder holds the gate");
        drop(background);
        assert!(waiter.join().unwrap(), "and enters once it is released");
    }
}
