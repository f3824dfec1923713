//! Group commit: writers that arrive while a commit is being synced share the next one.
//!
//! Every change still runs in a transaction of its own (a nested transaction of the
//! shared one), so a change that fails or panics is undone alone; the shared transaction
//! is committed, and synced, once, and no writer returns before that commit has. The
//! first writer to find no commit under way leads: it takes every change queued so far,
//! runs them on its thread in order, commits, and hands each its outcome. Writers that
//! queue meanwhile wait, and the first of them leads the next batch. A lone writer pays
//! one nested transaction more than before, and the one sync it always paid.
//!
//! The changes of other writers run on the leader's thread, so a change must not take a
//! lock its own writer holds (none does: every change only reads and writes through its
//! `Writer`), nor capture a value whose drop does (it is dropped there), and must be
//! `Send`. A batch shares its fate at the commit: a commit that fails (a full disk, the
//! map full) fails every change in it, each of which would have been judged alone before.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Store, StoreError, Writer};
use crate::model::event::Published;

/// One queued change, type-erased: runs against a writer, says whether it succeeded.
type Change<'a> = dyn FnMut(&mut Writer<'_>) -> bool + Send + 'a;

/// How a queued change ended.
pub(super) enum Outcome {
    /// Not run yet.
    Queued,
    /// Ran and was committed with its batch (or failed on its own: its closure has its
    /// error, and nothing of it was committed).
    Done,
    /// Its batch's commit failed: nothing of it is committed.
    CommitFailed(Failure),
    /// It panicked: nothing of it is committed; the payload goes back to its thread.
    Panicked(Box<dyn Any + Send>),
}

/// A commit failure that every writer of the batch gets (StoreError is not `Clone`).
#[derive(Debug, Clone)]
pub(super) enum Failure {
    Full,
    NoSpace(i32),
    Other(String),
}

impl Failure {
    fn of(error: &StoreError) -> Failure {
        match error {
            StoreError::Full => Failure::Full,
            StoreError::NoSpace(io) => Failure::NoSpace(io.raw_os_error().unwrap_or(libc::ENOSPC)),
            other => Failure::Other(other.to_string()),
        }
    }

    pub(super) fn error(&self) -> StoreError {
        match self {
            Failure::Full => StoreError::Full,
            Failure::NoSpace(code) => StoreError::NoSpace(std::io::Error::from_raw_os_error(*code)),
            Failure::Other(message) => StoreError::Io(std::io::Error::other(format!("commit failed: {message}"))),
        }
    }
}

/// How a batch ended: each run change's outcome, the changes it could not run (back to
/// the queue), and the last event sequence number it journalled.
struct Batch {
    outcomes: Vec<(usize, Outcome)>,
    not_run: Vec<(usize, Slot)>,
    last_event: Option<u64>,
}

/// A change on its writer's stack, shared with the leader through a pointer while its
/// writer waits.
struct Slot {
    change: *mut Change<'static>,
}

// SAFETY: a slot is only dereferenced by the leader between its queuing and the moment
// its outcome is set, while the writer that owns the change blocks in `submit` (which
// returns only after that); the change itself is `Send`.
unsafe impl Send for Slot {}

#[derive(Default)]
struct State {
    queue: Vec<(usize, Slot)>,
    outcomes: std::collections::HashMap<usize, Outcome>,
    leading: bool,
    next_ticket: usize,
}

/// The queue of changes waiting for a commit.
#[derive(Default)]
pub(super) struct Combiner {
    state: Mutex<State>,
    done: Condvar,
}

impl Combiner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Runs `change` in the next shared commit and returns how it ended.
    pub(super) fn submit(&self, change: &mut Change<'_>) -> Outcome {
        // SAFETY: the lifetime is erased only for the queue; see `Slot`.
        let erased: *mut Change<'static> = unsafe { std::mem::transmute::<*mut Change<'_>, *mut Change<'static>>(change) };
        let combiner = &self.combiner;
        let mut state = combiner.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, Slot { change: erased }));
        state.outcomes.insert(ticket, Outcome::Queued);
        loop {
            if !matches!(state.outcomes.get(&ticket), Some(Outcome::Queued)) {
                return state.outcomes.remove(&ticket).unwrap_or(Outcome::Done);
            }
            if state.leading {
                state = combiner.done.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.leading = true;
            let batch = std::mem::take(&mut state.queue);
            drop(state);
            // A panic here must not leave `leading` set (every writer would wait for ever):
            // the batch fails as a whole; nothing of it was committed (the transaction is
            // aborted as it unwinds; the listeners run after the batch).
            let tickets: Vec<usize> = batch.iter().map(|(ticket, _)| *ticket).collect();
            let ended = catch_unwind(AssertUnwindSafe(|| self.commit_batch(batch))).unwrap_or_else(|_| {
                log::error!("a shared commit panicked; its {} change(s) failed", tickets.len());
                let failure = Failure::Other("the commit panicked".into());
                let outcomes = tickets.into_iter().map(|ticket| (ticket, Outcome::CommitFailed(failure.clone()))).collect();
                Batch { outcomes, not_run: Vec::new(), last_event: None }
            });
            state = combiner.lock();
            state.outcomes.extend(ended.outcomes);
            // Changes a poisoned transaction could not take go first into the next batch.
            let later = std::mem::take(&mut state.queue);
            state.queue = ended.not_run.into_iter().chain(later).collect();
            state.leading = false;
            combiner.done.notify_all();
            drop(state);
            // After the batch, not while leading: a listener may write itself.
            if let Some(seq) = ended.last_event {
                self.tell_listeners(seq);
            }
            state = combiner.lock();
        }
    }

    fn tell_listeners(&self, seq: u64) {
        for listener in self.published.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            // Committed already: a listener that panics must not turn that into a
            // failure its writers would take for a refusal.
            if catch_unwind(AssertUnwindSafe(|| listener(seq))).is_err() {
                log::error!("a listener of published events panicked");
            }
        }
    }

    /// Runs every change of `batch` in its own nested transaction of one shared write
    /// transaction, journals their events, commits once, and says how each ended.
    fn commit_batch(&self, batch: Vec<(usize, Slot)>) -> Batch {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut txn = match self.env.write_txn() {
            Ok(txn) => txn,
            Err(e) => {
                let failure = Failure::of(&StoreError::from(e));
                let outcomes = batch.into_iter().map(|(ticket, _)| (ticket, Outcome::CommitFailed(failure.clone()))).collect();
                return Batch { outcomes, not_run: Vec::new(), last_event: None };
            }
        };
        let mut published: Vec<Published> = Vec::new();
        let mut committed = Vec::new();
        let mut batch = batch.into_iter();
        let mut not_run = Vec::new();
        while let Some((ticket, slot)) = batch.next() {
            // SAFETY: see `Slot`: its writer waits for this outcome.
            let change = unsafe { &mut *slot.change };
            let nested = match self.env.nested_write_txn(&mut txn) {
                Ok(nested) => nested,
                Err(e) => {
                    outcomes.push((ticket, Outcome::CommitFailed(Failure::of(&StoreError::from(e)))));
                    continue;
                }
            };
            let mut writer = Writer { dbs: &self.dbs, txn: nested, pending: Vec::new() };
            match catch_unwind(AssertUnwindSafe(|| change(&mut writer))) {
                Ok(true) => {
                    let Writer { txn: nested, pending, .. } = writer;
                    match nested.commit() {
                        Ok(()) => {
                            published.extend(pending);
                            committed.push(ticket);
                        }
                        // LMDB refuses to merge a child that met an error (a change that
                        // went on after one), and marks the shared transaction failed:
                        // nothing merged so far can commit now, and the changes not run yet
                        // go to the next batch.
                        Err(e) => {
                            let failure = Failure::of(&StoreError::from(e));
                            log::error!("a change could not be merged into its shared commit ({failure:?}); its batch fails");
                            outcomes.push((ticket, Outcome::CommitFailed(failure.clone())));
                            outcomes.extend(committed.drain(..).map(|t| (t, Outcome::CommitFailed(failure.clone()))));
                            not_run.extend(batch.by_ref());
                            return Batch { outcomes, not_run, last_event: None };
                        }
                    }
                }
                // Its own error: dropping the nested transaction undoes it alone.
                Ok(false) => outcomes.push((ticket, Outcome::Done)),
                Err(payload) => outcomes.push((ticket, Outcome::Panicked(payload))),
            }
        }
        let appended = match published.is_empty() {
            true => Ok(None),
            false => super::events::append(
                &self.dbs,
                &mut txn,
                &published,
                crate::model::Timestamp::now(),
                self.events_kept,
                &self.namespace,
            )
            .map(Some),
        };
        let result = appended.and_then(|last| txn.commit().map(|()| last).map_err(|e| self.commit_error(e)));
        match result {
            Ok(last_event) => {
                outcomes.extend(committed.into_iter().map(|ticket| (ticket, Outcome::Done)));
                Batch { outcomes, not_run, last_event }
            }
            Err(error) => {
                let failure = Failure::of(&error);
                outcomes.extend(committed.into_iter().map(|ticket| (ticket, Outcome::CommitFailed(failure.clone()))));
                Batch { outcomes, not_run, last_event: None }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::temp_store;
    use super::super::{schema, StoreError, StoreRead};

    #[test]
    fn concurrent_changes_share_commits_and_each_fails_or_panics_alone() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let id = format!("c{t}-{i}");
                        match i % 10 {
                            // Refused after writing: nothing of it may remain.
                            3 => {
                                let refused = store.write(|w| -> Result<(), StoreError> {
                                    w.create_container(&id)?;
                                    Err(StoreError::NotPermitted("refused on purpose".into()))
                                });
                                assert!(matches!(refused, Err(StoreError::NotPermitted(_))));
                            }
                            // Panics after writing: only its own thread sees the panic.
                            7 => {
                                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    let _ = store.write(|w| -> Result<(), StoreError> {
                                        w.create_container(&id)?;
                                        panic!("a change that panics");
                                    });
                                }));
                                assert!(caught.is_err(), "the panic reaches its own writer");
                            }
                            _ => store.write(|w| w.create_container(&id).map(drop)).unwrap(),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let reader = store.read().unwrap();
        for t in 0..16 {
            for i in 0..40 {
                let present = reader.lookup(schema::CONTAINERS, &format!("c{t}-{i}")).unwrap().is_some();
                assert_eq!(present, !matches!(i % 10, 3 | 7), "c{t}-{i}");
            }
        }
        // One event per container created, none for the refused or panicked ones.
        assert_eq!(reader.journal_bounds().unwrap().next - 1, 16 * 32);
    }

    #[test]
    fn a_listener_that_panics_neither_refuses_a_committed_change_nor_stops_the_next() {
        let (_dir, store) = temp_store();
        let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let once = Arc::clone(&panicked);
        store.on_publish(move |_| {
            if !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("a listener that panics");
            }
        });
        store.write(|w| w.create_container("a").map(drop)).expect("committed: the listener's panic is not the change's");
        assert!(panicked.load(std::sync::atomic::Ordering::SeqCst));
        let store = Arc::new(store);
        let other = Arc::clone(&store);
        let next = std::thread::spawn(move || other.write(|w| w.create_container("b").map(drop)));
        next.join().unwrap().expect("the next writer is served");
        let reader = store.read().unwrap();
        assert!(reader.lookup(schema::CONTAINERS, "a").unwrap().is_some() && reader.lookup(schema::CONTAINERS, "b").unwrap().is_some());
    }
}
