//! What the runtime keeps of a deleted task (runc's state and cgroup, the task's files:
//! logs, exit record, bundle) is removed on a thread of its own, after the record's delete
//! was committed and answered: `runc delete` costs about 12 ms here, a sixth of a short
//! task's whole life, and nothing needs to wait for it. The names are gone at the commit.
//!
//! A cleanup runs under the task's gate, and only while no task of that id exists: a new
//! task of the same id removes what it finds at its first start (runtime::task_start), and
//! then owns whatever the runtime keeps for the id. Cleanups that a stop interrupts are
//! finished at the next start-up, which removes every runtime container and task directory
//! that no record names (`remove_unrecorded_runs`).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

use super::tasks::TaskGate;
use super::TaskRuntime;
use crate::store::{schema, Store, StoreRead};

/// The queue of deleted tasks whose runtime state is still to be removed.
pub(super) struct Cleanups {
    sender: Mutex<Sender<String>>,
    /// Cleanups queued or running, and its change.
    outstanding: Arc<(Mutex<usize>, Condvar)>,
}

impl Cleanups {
    /// Starts the thread that does them.
    pub(super) fn start(store: Arc<Store>, runtime: Arc<dyn TaskRuntime>, gate: Arc<TaskGate>) -> Cleanups {
        let (sender, receiver) = channel::<String>();
        let outstanding: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let counter = Arc::clone(&outstanding);
        let spawned = std::thread::Builder::new().name("task-cleanup".into()).spawn(move || {
            for id in receiver {
                clean(&store, &*runtime, &gate, &id);
                let (count, changed) = &*counter;
                *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                changed.notify_all();
            }
        });
        if let Err(e) = spawned {
            log::error!("cannot start the task cleanup thread ({e}): deleted tasks are cleaned up at the next start-up");
        }
        Cleanups { sender: Mutex::new(sender), outstanding }
    }

    /// Queues the cleanup of deleted task `id`.
    pub(super) fn defer(&self, id: &str) {
        let (count, _) = &*self.outstanding;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if self.sender.lock().unwrap_or_else(|p| p.into_inner()).send(id.to_owned()).is_err() {
            *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            log::warn!("task {id}: its runtime state is removed at the next start-up (the cleanup thread is gone)");
        }
    }

    /// Waits until every queued cleanup was done (tests, and a daemon that stops).
    pub(super) fn settle(&self) {
        let (count, changed) = &*self.outstanding;
        let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            count = changed.wait(count).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn clean(store: &Store, runtime: &dyn TaskRuntime, gate: &TaskGate, id: &str) {
    let _gate = gate.enter_waiting(id);
    match store.read().and_then(|reader| reader.lookup(schema::TASKS, id)) {
        Ok(None) => match runtime.delete(id) {
            Ok(()) => log::debug!("task {id}: runtime state removed"),
            Err(e) => log::error!("task {id}: runtime state not removed (retried at the next start-up): {e}"),
        },
        // A new task of that id: its first start removed what was left.
        Ok(Some(_)) => {}
        Err(e) => log::error!("task {id}: runtime state not removed (retried at the next start-up): {e}"),
    }
}
