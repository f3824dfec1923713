//! Where requests that may take long are served: a pool of threads beside the FUSE
//! request threads, so an unpack, a runc call or a wait for a task's exit never keeps the
//! mount from answering `stat` and `cat` of everything else. fuser's replies can be sent
//! from any thread, so a request is answered when its work ends.
//!
//! The pool grows with demand up to a bound, idle threads exit after a while, and a job
//! that panics loses only its own reply (fuser answers a dropped reply with EIO).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long an idle worker waits for a job before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saturated;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<(&'static str, Job)>,
    threads: usize,
    idle: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    max_threads: usize,
    max_queued: usize,
}

/// The pool.
#[derive(Clone)]
pub struct Workers {
    shared: Arc<Shared>,
}

impl Workers {
    /// A pool of at most `max_threads` threads and `max_queued` waiting jobs.
    pub fn new(max_threads: usize, max_queued: usize) -> Workers {
        let shared = Shared { queue: Mutex::default(), ready: Condvar::new(), max_threads: max_threads.max(1), max_queued };
        Workers { shared: Arc::new(shared) }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on a worker; when every worker is busy and the queue is full, runs it
    /// on the calling thread (back-pressure on the kernel rather than unbounded memory).
    pub fn run(&self, op: &'static str, job: impl FnOnce() + Send + 'static) {
        if self.submit(op, job).is_err() {
            log::warn!("{op}: every worker is busy and {} requests wait; served on a request thread", self.shared.max_queued);
        }
    }

    /// Queues `job` for a worker. Refused, with the job run here, when every worker is
    /// busy and the queue is full.
    fn submit(&self, op: &'static str, job: impl FnOnce() + Send + 'static) -> Result<(), Saturated> {
        let mut queue = self.lock();
        if queue.jobs.len() >= self.shared.max_queued {
            drop(queue);
            run_guarded(op, Box::new(job));
            return Err(Saturated);
        }
        queue.jobs.push_back((op, Box::new(job)));
        self.shared.ready.notify_one();
        // `idle` counts waiting workers, and one woken by an earlier submit still counts
        // until it takes the lock: so every queued job beyond them gets a thread of its own
        // (up to the bound), and a burst never ends up behind one slow job.
        if queue.jobs.len() > queue.idle && queue.threads < self.shared.max_threads {
            queue.threads += 1;
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new().name("ctrfs-worker".into()).spawn(move || work(&shared));
            if let Err(e) = spawned {
                queue.threads -= 1;
                log::error!("cannot start a worker thread: {e}");
                if queue.threads == 0 {
                    let (op, job) = queue.jobs.pop_back().expect("pushed above");
                    drop(queue);
                    run_guarded(op, job);
                    return Err(Saturated);
                }
            }
        }
        Ok(())
    }

    /// Threads alive now (for tests).
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.lock().threads
    }
}

fn run_guarded(op: &str, job: Job) {
    if catch_unwind(AssertUnwindSafe(job)).is_err() {
        log::error!("{op}: internal panic; answered EIO");
    }
}

fn work(shared: &Shared) {
    let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some((op, job)) = queue.jobs.pop_front() {
            drop(queue);
            run_guarded(op, job);
            queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        queue.idle += 1;
        let (guard, timeout) = shared.ready.wait_timeout(queue, IDLE_EXIT).unwrap_or_else(|p| p.into_inner());
        queue = guard;
        queue.idle -= 1;
        if timeout.timed_out() && queue.jobs.is_empty() {
            queue.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn slow_jobs_do_not_hold_up_others_and_a_panic_is_contained() {
        let workers = Workers::new(4, 16);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            let rx = Arc::clone(&release_rx);
            workers.run("slow", move || {
                let _ = rx.lock().unwrap().recv();
            });
        }
        workers.run("panics", || panic!("boom"));
        let (done_tx, done_rx) = mpsc::channel();
        workers.run("fast", move || done_tx.send(()).unwrap());
        done_rx.recv_timeout(Duration::from_secs(5)).expect("a fast job runs while slow ones wait");
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        assert!(workers.threads() <= 4);
    }

    #[test]
    fn a_burst_gets_a_thread_per_job_even_with_one_worker_idle() {
        let workers = Workers::new(8, 64);
        // One worker, then idle.
        let (tx, rx) = mpsc::channel();
        workers.run("warm", move || tx.send(()).unwrap());
        rx.recv().unwrap();
        // Two slow jobs at once, and a third that must not wait for either.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            let rx = Arc::clone(&release_rx);
            workers.run("slow", move || {
                let _ = rx.lock().unwrap().recv();
            });
        }
        let (done_tx, done_rx) = mpsc::channel();
        workers.run("fast", move || done_tx.send(()).unwrap());
        done_rx.recv_timeout(Duration::from_secs(5)).expect("the fast job got a thread");
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
    }

    #[test]
    fn a_full_queue_runs_the_job_on_the_caller() {
        let workers = Workers::new(1, 1);
        let (tx, rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        workers.submit("block", move || {
            started_tx.send(()).unwrap();
            let _ = rx.recv();
        })
        .unwrap();
        started_rx.recv().unwrap();
        workers.submit("queued", || {}).unwrap();
        let ran_here = Arc::new(Mutex::new(None));
        let cell = Arc::clone(&ran_here);
        assert_eq!(workers.submit("refused", move || *cell.lock().unwrap() = Some(std::thread::current().id())), Err(Saturated));
        assert_eq!(*ran_here.lock().unwrap(), Some(std::thread::current().id()));
        tx.send(()).unwrap();
    }
}
