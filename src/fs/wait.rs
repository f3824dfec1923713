//! Parked reads: a read that has to wait is answered later, without holding a thread.
//! A read of `wait/<id>` waits until its task stops ([`WaitRegistry`]); a read at the end
//! of `events` until the next event is published ([`StreamRegistry`], which also keeps
//! the `poll` notifiers of that file). Lives on the adapter side because it keeps fuser
//! reply objects.
//!
//! fuser answers FUSE_INTERRUPT with ENOSYS, after which the kernel waits for our answer
//! uninterruptibly even when the reader got Ctrl-C. So one thread (`spawn_parked_reads`)
//! looks at each parked reader's signals in `/proc` and answers EINTR to a reader that is
//! gone or has a fatal signal pending: Ctrl-C on `cat wait/web` or `cat events` ends the
//! `cat`, and the daemon carries on. The same thread answers the stream's parked reads
//! when an event is published: a commit only raises a flag, so no reader, however many,
//! slows the writer that woke them.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use fuser::{Errno, PollNotifier, ReplyData};

/// The most reads parked at once, in each registry. Each open file can carry several
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
            None => {
                // Tests wait for this line to know the kernel's request reached the daemon.
                log::debug!("read of a wait file by pid {pid} parked");
                parked.entry(node).or_default().push(Parked { reply, pid, offset, size });
            }
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

}

/// What a parked read of the stream gets when it is tried again.
pub enum Retry {
    /// Bytes: the read is answered with them.
    Data(Vec<u8>),
    /// Still at the end: it stays parked.
    Wait,
    /// It failed: answered with this errno.
    Failed(Errno),
}

struct StreamRead {
    fh: u64,
    size: u32,
    /// Who asked (uid, pid), for `error_log` should a retry fail.
    uid: u32,
    pid: u32,
    reply: ReplyData,
}

/// A parked read's retry: handle, size, and the requester's uid and pid.
pub type RetryRead = dyn Fn(u64, u32, u32, u32) -> Retry;

/// Parked reads at the end of `events`, and the handles a `poll` waits on.
#[derive(Default)]
pub struct StreamRegistry {
    reads: Mutex<Vec<StreamRead>>,
    /// Notifiers of polls that found nothing to read, by handle (the kernel polls again
    /// after each notice, so one per handle is enough).
    pollers: Mutex<HashMap<u64, PollNotifier>>,
    /// Raised by a commit that published events; cleared by the thread that answers.
    news: Mutex<bool>,
    woken: Condvar,
}

impl StreamRegistry {
    /// Parks a read of handle `fh` unless `retry()` (tried under the registry's lock,
    /// so an event published between the caller's read and the parking is not missed)
    /// has something by now. With [`MAX_PARKED_READS`] reads parked, the reply is
    /// handed back for the caller to refuse.
    pub fn park(&self, fh: u64, size: u32, (uid, pid): (u32, u32), reply: ReplyData, retry: impl FnOnce() -> Retry) -> Result<(), ReplyData> {
        let mut reads = lock(&self.reads);
        match retry() {
            Retry::Data(bytes) => reply.data(&bytes),
            Retry::Failed(errno) => reply.error(errno),
            Retry::Wait if reads.len() >= MAX_PARKED_READS => return Err(reply),
            Retry::Wait => reads.push(StreamRead { fh, size, uid, pid, reply }),
        }
        Ok(())
    }

    /// Keeps `notifier` for handle `fh` unless `ready()` (asked under the lock, for the
    /// same reason as in `park`) says there is something to read now; returns whether
    /// it is ready. Beyond the bound, the notifiers kept are told at once (a spurious
    /// wake-up, which `poll` allows), so closed handles never pile up.
    pub fn watch(&self, fh: u64, notifier: PollNotifier, ready: impl FnOnce() -> bool) -> bool {
        let mut pollers = lock(&self.pollers);
        if ready() {
            return true;
        }
        if pollers.len() >= MAX_PARKED_READS {
            for (_, old) in pollers.drain() {
                notify(old);
            }
        }
        pollers.insert(fh, notifier);
        false
    }

    /// An event was published: the parked-reads thread answers. Raises a flag, and wakes
    /// the thread only when a read or a poll waits: most commits have nobody to tell, and
    /// a wake-up per commit was a thread switch each. A read parked after this looks at
    /// the store itself (`park`); one the thread is retrying now finds the flag raised
    /// when it next waits.
    pub fn publish(&self) {
        *lock(&self.news) = true;
        if !lock(&self.reads).is_empty() || !lock(&self.pollers).is_empty() {
            self.woken.notify_one();
        }
    }

    /// Waits up to `timeout` for news; `true` if there was some (and clears it).
    fn wait_for_news(&self, timeout: Duration) -> bool {
        let news = lock(&self.news);
        let (mut news, _) = self.woken.wait_timeout_while(news, timeout, |n| !*n).unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *news, false)
    }

    /// Tries every parked read again with `retry`; those still at the end stay. Tells
    /// every poller.
    fn serve(&self, retry: &RetryRead) {
        let parked = std::mem::take(&mut *lock(&self.reads));
        let mut still = Vec::new();
        for read in parked {
            match retry(read.fh, read.size, read.uid, read.pid) {
                Retry::Data(bytes) => read.reply.data(&bytes),
                Retry::Failed(errno) => read.reply.error(errno),
                Retry::Wait => still.push(read),
            }
        }
        lock(&self.reads).extend(still);
        let pollers = std::mem::take(&mut *lock(&self.pollers));
        for (_, notifier) in pollers {
            notify(notifier);
        }
    }

    /// Answers EINTR to parked reads whose reader is gone or dying.
    fn reap_interrupted(&self) {
        let interrupted: Vec<StreamRead> = {
            let mut reads = lock(&self.reads);
            let (gone, keep) = reads.drain(..).partition(|r| reader_is_dying(r.pid));
            *reads = keep;
            gone
        };
        for read in interrupted {
            log::info!("read of the events stream by pid {} interrupted", read.pid);
            read.reply.error(Errno::EINTR);
        }
    }
}

/// Tells the kernel a polled file is ready; a handle it no longer has is no error.
fn notify(notifier: PollNotifier) {
    if let Err(e) = notifier.notify() {
        log::debug!("poll notice not delivered: {e}");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs, for the life of the process, the one thread that answers parked reads: the
/// stream's when an event is published (with `retry`), and EINTR to interrupted readers
/// of both registries every [`REAP_INTERVAL`].
pub fn spawn_parked_reads(
    waits: Arc<WaitRegistry>,
    streams: Arc<StreamRegistry>,
    retry: impl Fn(u64, u32, u32, u32) -> Retry + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("parked-reads".into()).spawn(move || {
        let mut last_reap = std::time::Instant::now();
        loop {
            if streams.wait_for_news(REAP_INTERVAL) {
                streams.serve(&retry);
            }
            if last_reap.elapsed() >= REAP_INTERVAL {
                waits.reap_interrupted();
                streams.reap_interrupted();
                last_reap = std::time::Instant::now();
            }
        }
    })?;
    Ok(())
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
    fn news_with_nobody_waiting_is_kept_for_the_next_wait() {
        // A read the thread is retrying when the event lands is back in the list only
        // after: the flag, not a wake-up, is what brings the thread round again.
        let streams = StreamRegistry::default();
        streams.publish();
        assert!(streams.wait_for_news(Duration::ZERO), "the news is there without a wake-up");
        assert!(!streams.wait_for_news(Duration::ZERO), "and taken by the one who looked");
    }

    #[test]
    fn a_live_reader_is_not_dying_and_a_missing_one_is() {
        assert!(!reader_is_dying(std::process::id()));
        assert!(reader_is_dying(u32::MAX - 1));
    }
}
