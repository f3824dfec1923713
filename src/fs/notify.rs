//! What the kernel must be told about changes it did not make itself: a task exited (its
//! file's attributes changed), or a name the daemon removed on its own (`logs/<id>` and
//! `wait/<id>` when a task goes, blobs and snapshots a collection took).
//!
//! Requests and background work only queue notices here, after their commit; threads
//! started by the daemon with fuser's notifier send them. A notification sent from a
//! request handler can deadlock the session (libfuse's documentation), and the queues are
//! unbounded so that queueing never waits on those threads. A worker of the pool sends its
//! own inode invalidations instead (see `invalidate_and_wait`).
//!
//! Two queues, two threads: names (`inval_entry`, `delete`) need the directory's lock,
//! which a request may hold while it waits; inode invalidations (`inval_inode`) need no
//! inode lock, only the pages a read is filling, so a request may wait for them without
//! waiting behind a name whose directory it holds.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

/// The longest a request waits for the kernel to have been told (see `send_and_wait`).
const ACK_WAIT: Duration = Duration::from_secs(1);

/// One thing to tell the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The attributes of an inode changed.
    Attributes(u64),
    /// The content of an inode may have changed, and its attributes: the kernel drops its
    /// pages and attributes (`page_cache.rs`).
    Content(u64),
    /// The name `name` of directory `parent` is gone, and the kernel must drop its entry
    /// without touching the inode behind it (whose lock the request that caused this may
    /// hold, as a write does).
    Forget {
        /// The directory's inode.
        parent: u64,
        /// The name.
        name: String,
    },
    /// The daemon removed the name `name` (inode `child`) from directory `parent`.
    Removed {
        /// The directory's inode.
        parent: u64,
        /// The removed entry's inode.
        child: u64,
        /// The removed name.
        name: String,
    },
}

impl Notice {
    /// Whether it goes to the queue of inode invalidations.
    pub fn is_inode(&self) -> bool {
        matches!(self, Notice::Attributes(_) | Notice::Content(_))
    }

    /// The daemon removed `name` (whose inode is `child`) from directory node `parent`.
    pub fn removed(parent: crate::store::NodeId, child: super::ino::Ino, name: &str) -> Notice {
        Notice::Removed { parent: super::ino::Ino::Node(parent).number(), child: child.number(), name: name.to_owned() }
    }
}

/// A notice on its way, with whom to tell once it was sent.
#[derive(Debug)]
pub struct Queued {
    /// What to tell the kernel.
    pub notice: Notice,
    ack: Option<Sender<()>>,
}

impl Queued {
    /// Tells the waiting request, if any, that the kernel knows.
    pub fn sent(self) {
        if let Some(ack) = self.ack {
            let _ = ack.send(());
        }
    }
}

/// Tells the kernel of one inode notice on the calling thread (the daemon's, over its
/// notifier).
pub type InodeSender = dyn Fn(&Notice) + Send + Sync;

/// The queue of notices.
#[derive(Default)]
pub struct Notices {
    sender: Mutex<Option<Sender<Queued>>>,
    inodes: Mutex<Option<Sender<Queued>>>,
    /// Sends inode notices on the caller's thread, for callers on the worker pool.
    direct: std::sync::OnceLock<Box<InodeSender>>,
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notices").field("direct", &self.direct.get().is_some()).finish_non_exhaustive()
    }
}

impl Notices {
    /// Starts queueing; the receiver goes to the thread that talks to the kernel. Before
    /// this (a filesystem without a mount, in tests) notices are dropped.
    pub fn subscribe(&self) -> Receiver<Queued> {
        let (tx, rx) = channel();
        *self.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Starts queueing inode invalidations, for a thread of their own (see the module's
    /// doc). Before this they go with the names, if anyone listens.
    pub fn subscribe_inodes(&self) -> Receiver<Queued> {
        let (tx, rx) = channel();
        *self.inodes.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Lets workers send inode notices themselves (see `invalidate_and_wait`).
    pub fn send_inodes_with(&self, send: Box<InodeSender>) {
        let _ = self.direct.set(send);
    }

    /// Tells the kernel of changed inodes and returns once it was told of all of them, so
    /// the request that made the change answers only once nothing stale can be read or
    /// stat'ed. Never for names (see `send_and_wait`).
    ///
    /// A worker sends them itself: an inode invalidation waits only for pages a read is
    /// filling, which the request threads answer without waiting for any worker, so it
    /// cannot deadlock there, and the two thread hand-offs of the queue are the larger part
    /// of a small change's cost. A request thread must not (it may be the one the read
    /// needs): it queues them for the inode notifier and waits, a little.
    pub fn invalidate_and_wait(&self, inodes: Vec<u64>) {
        if super::workers::on_worker_thread() {
            if let Some(send) = self.direct.get() {
                for ino in inodes {
                    send(&Notice::Content(ino));
                }
                return;
            }
        }
        let Some(last) = inodes.len().checked_sub(1) else { return };
        let (tx, rx) = channel();
        let mut queued = true;
        for (i, ino) in inodes.into_iter().enumerate() {
            // One thread sends them in order: the last one's acknowledgement covers all.
            let ack = (i == last).then(|| tx.clone());
            queued &= self.queue(Queued { notice: Notice::Content(ino), ack });
        }
        if queued && rx.recv_timeout(ACK_WAIT).is_err() {
            log::warn!("the kernel was not told of changed inodes within {ACK_WAIT:?}; answering anyway");
        }
    }

    /// Queues a notice.
    pub fn send(&self, notice: Notice) {
        self.queue(Queued { notice, ack: None });
    }

    /// Queues a notice and waits (a little) until it was sent, so the request that caused
    /// it answers only once the kernel forgot the name: `rm tasks/w; touch tasks/w; cat
    /// wait/w` must not find the old `wait/w`. Only for names in a directory other than
    /// the one the request changes: the kernel holds that directory's lock until we
    /// answer, and removing a name from it needs the same lock.
    pub fn send_and_wait(&self, notice: Notice) {
        let (tx, rx) = channel();
        let what = format!("{notice:?}");
        if self.queue(Queued { notice, ack: Some(tx) }) && rx.recv_timeout(ACK_WAIT).is_err() {
            log::warn!("the kernel was not told of {what} within {ACK_WAIT:?}; answering anyway (it may show the old name until its cache expires, 1 s)");
        }
    }

    fn queue(&self, queued: Queued) -> bool {
        if queued.notice.is_inode() {
            if let Some(tx) = self.inodes.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                return tx.send(queued).is_ok();
            }
        }
        match self.sender.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // A closed receiver means the mount is gone: nobody to tell.
            Some(tx) => tx.send(queued).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_worker_tells_the_kernel_itself_and_other_threads_queue_and_wait() {
        let notices = Arc::new(Notices::default());
        let queued = notices.subscribe_inodes();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        notices.send_inodes_with(Box::new(move |notice| record.lock().unwrap().push(notice.clone())));

        let workers = super::super::workers::Workers::new(1, 4);
        let (done, finished) = channel();
        let on_worker = Arc::clone(&notices);
        workers.run("test", move || {
            on_worker.invalidate_and_wait(vec![7, 8]);
            done.send(()).unwrap();
        });
        finished.recv_timeout(Duration::from_secs(10)).expect("the worker returns without waiting for anyone");
        assert_eq!(*sent.lock().unwrap(), [Notice::Content(7), Notice::Content(8)]);
        assert!(queued.try_recv().is_err(), "nothing queued by the worker");

        // Any other thread (a FUSE request thread) queues for the inode notifier and waits.
        let elsewhere = Arc::clone(&notices);
        let waiter = std::thread::spawn(move || elsewhere.invalidate_and_wait(vec![9]));
        let notice = queued.recv_timeout(Duration::from_secs(10)).expect("queued");
        assert_eq!(notice.notice, Notice::Content(9));
        assert!(!waiter.is_finished(), "it waits until the notice was sent");
        notice.sent();
        waiter.join().unwrap();
        assert_eq!(sent.lock().unwrap().len(), 2, "not sent by the request thread itself");
    }
}
