//! What the kernel must be told about changes it did not make itself: a task exited (its
//! file's attributes changed), or a name the daemon removed on its own (`logs/<id>` and
//! `wait/<id>` when a task goes, blobs and snapshots a collection took).
//!
//! Requests and background work only queue notices here, after their commit; threads
//! started by the daemon with fuser's notifier send them. A notification sent from a
//! request handler can deadlock the session (libfuse's documentation), and the queues are
//! unbounded so that queueing never waits on those threads.
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
    /// The content of these inodes may have changed, and their attributes: the kernel drops
    /// their pages and attributes (`page_cache.rs`), in order. All that one change made
    /// stale goes in one message, so the notifier thread wakes once for them rather than
    /// once each (a thread hand-off costs more here than the invalidation itself).
    Content(Vec<u64>),
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

/// The queue of notices.
#[derive(Debug, Default)]
pub struct Notices {
    sender: Mutex<Option<Sender<Queued>>>,
    inodes: Mutex<Option<Sender<Queued>>>,
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

    /// Queues inode invalidations and waits (a little) until the kernel was told of all of
    /// them, so the request that made the change answers only once nothing stale can be
    /// read or stat'ed. Never for names (see `send_and_wait`).
    ///
    /// Always through the inode notifier, never sent by the caller itself, though that
    /// would save two thread hand-offs: the caller may hold a writer's handle lock, and the
    /// kernel's invalidation waits, without a timeout, for a page a read through that very
    /// handle is filling (a private `mmap` of the file), whose read waits for the lock. Here
    /// the wait ends after `ACK_WAIT` instead.
    pub fn invalidate_and_wait(&self, inodes: Vec<u64>) {
        if inodes.is_empty() {
            return;
        }
        let (tx, rx) = channel();
        if self.queue(Queued { notice: Notice::Content(inodes), ack: Some(tx) }) && rx.recv_timeout(ACK_WAIT).is_err() {
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

    #[test]
    fn one_change_s_invalidations_are_one_message_and_the_request_waits_for_it() {
        let notices = std::sync::Arc::new(Notices::default());
        let inodes = notices.subscribe_inodes();
        let waiter = {
            let notices = std::sync::Arc::clone(&notices);
            std::thread::spawn(move || {
                let began = std::time::Instant::now();
                notices.invalidate_and_wait(vec![7, 8, 9]);
                began.elapsed()
            })
        };
        let queued = inodes.recv_timeout(Duration::from_secs(5)).expect("a message");
        assert_eq!(queued.notice, Notice::Content(vec![7, 8, 9]), "all three, in order, in one message");
        assert!(inodes.try_recv().is_err(), "and nothing else");
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the request answers only once the kernel was told");
        queued.sent();
        assert!(waiter.join().unwrap() < ACK_WAIT, "the acknowledgement ends the wait");
        notices.invalidate_and_wait(Vec::new());
        assert!(inodes.try_recv().is_err(), "nothing changed, nothing sent");
    }
}
