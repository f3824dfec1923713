//! Parked reads of `wait/<id>`: a read of a task that has not stopped is answered when it
//! stops, without holding a worker thread. Lives on the adapter side because it keeps
//! fuser reply objects.
//!
//! fuser answers FUSE_INTERRUPT with ENOSYS, after which the kernel waits for our answer
//! uninterruptibly even when the reader got Ctrl-C. So a reaper looks at each parked
//! reader's signals in `/proc` and answers EINTR to a reader that is gone or has a fatal
//! signal pending: Ctrl-C on `cat wait/web` ends the `cat`, and the daemon carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fuser::{Errno, ReplyData};

/// The most reads of `wait/` files parked at once. Each open file can carry several
/// reads at a time (threads sharing a descriptor), so the open-file bound alone does not
/// bound this; every parked read keeps a kernel request and its reply object alive.
pub const MAX_PARKED_READS: usize = 4096;

/// How often parked readers are checked for a pending fatal signal.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

struct Parked {
    reply: ReplyData,
    pid: u32,
    offset: u64,
    size: u32,
}

/// Parked reads, by task node id.
#[derive(Default)]
pub struct WaitRegistry {
    parked: Mutex<HashMap<u64, Vec<Parked>>>,
}

impl WaitRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Vec<Parked>>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a read unless `stopped()` (checked under the registry's lock, so an exit that
    /// lands between the caller's check and the parking is not missed) already has the text.
    /// With [`MAX_PARKED_READS`] reads parked already, the reply is handed back for the
    /// caller to refuse.
    pub fn park(
        &self,
        node: u64,
        reply: ReplyData,
        pid: u32,
        offset: u64,
        size: u32,
        stopped: impl FnOnce() -> Option<String>,
    ) -> Result<(), ReplyData> {
        let mut parked = self.lock();
        match stopped() {
            Some(text) => answer(reply, &text, offset, size),
            None if parked.values().map(Vec::len).sum::<usize>() >= MAX_PARKED_READS => return Err(reply),
            None => parked.entry(node).or_default().push(Parked { reply, pid, offset, size }),
        }
        Ok(())
    }

    /// The task stopped: answers every parked read of it.
    pub fn wake(&self, node: u64, text: &str) {
        let woken = self.lock().remove(&node).unwrap_or_default();
        for parked in woken {
            answer(parked.reply, text, parked.offset, parked.size);
        }
    }

    /// Answers EINTR to parked reads whose reader is gone or dying.
    pub fn reap_interrupted(&self) {
        let mut interrupted = Vec::new();
        {
            let mut parked = self.lock();
            for list in parked.values_mut() {
                let (gone, keep): (Vec<Parked>, Vec<Parked>) = list.drain(..).partition(|p| reader_is_dying(p.pid));
                *list = keep;
                interrupted.extend(gone);
            }
            parked.retain(|_, list| !list.is_empty());
        }
        for parked in interrupted {
            log::info!("read of a wait file by pid {} interrupted", parked.pid);
            parked.reply.error(Errno::EINTR);
        }
    }

    /// Runs the reaper on its own thread for the life of the process.
    pub fn spawn_reaper(self: &Arc<Self>) -> std::io::Result<()> {
        let registry = Arc::clone(self);
        std::thread::Builder::new().name("wait-reaper".into()).spawn(move || loop {
            std::thread::sleep(REAP_INTERVAL);
            registry.reap_interrupted();
        })?;
        Ok(())
    }
}

fn answer(reply: ReplyData, text: &str, offset: u64, size: u32) {
    let bytes = text.as_bytes();
    let start = (offset as usize).min(bytes.len());
    let end = start.saturating_add(size as usize).min(bytes.len());
    reply.data(&bytes[start..end]);
}

/// Signals whose default action ends a process.
const TERMINATING: [i32; 9] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGKILL,
];

/// Whether thread `pid` (the requester) is gone or has a signal pending that will kill it.
fn reader_is_dying(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return true };
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    let handled = mask("SigIgn:") | mask("SigCgt:");
    TERMINATING.iter().any(|&sig| {
        let bit = 1u64 << (sig - 1);
        pending & bit != 0 && (sig == libc::SIGKILL || handled & bit == 0)
    }) || status.lines().any(|l| l.starts_with("State:") && l.contains("zombie"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_reader_is_not_dying_and_a_missing_one_is() {
        assert!(!reader_is_dying(std::process::id()));
        assert!(reader_is_dying(u32::MAX - 1));
    }
}
