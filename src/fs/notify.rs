//! What the kernel must be told about changes it did not make itself: a task exited (its
//! file's attributes changed), or a name the daemon removed on its own (`logs/<id>` and
//! `wait/<id>` when a task goes, blobs and snapshots a collection took).
//!
//! Requests and background work only queue notices here, after their commit; one thread
//! (started by the daemon with fuser's notifier) sends them. A notification sent from a
//! request handler can deadlock the session (libfuse's documentation), and the queue is
//! unbounded so that queueing never waits on that thread.

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
}

impl Notices {
    /// Starts queueing; the receiver goes to the thread that talks to the kernel. Before
    /// this (a filesystem without a mount, in tests) notices are dropped.
    pub fn subscribe(&self) -> Receiver<Queued> {
        let (tx, rx) = channel();
        *self.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
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
        match self.sender.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // A closed receiver means the mount is gone: nobody to tell.
            Some(tx) => tx.send(queued).is_ok(),
            None => false,
        }
    }
}
