//! The CPU priority of background work. Walking and writing trees (unpacking a layer,
//! copying or removing a snapshot, measuring its usage) runs at a lower priority than the
//! rest of the daemon, so that when it competes with requests for the CPU the requests win.
//!
//! That work runs on a thread of its own, started for it and lowered for good, which the
//! caller waits for. The caller's thread keeps its priority: a worker of the pool runs a
//! label's commit next, whose writer waits for it, or a task's start, whose processes
//! inherit the thread's priority (a container must run at the priority its host gave the
//! daemon). Lowering a priority needs no privilege; raising one back would need
//! `CAP_SYS_NICE`, which is why no thread is ever raised again.

use std::cell::Cell;
use std::sync::Mutex;

/// How much lower than the daemon's priority background work runs, in niceness steps.
pub const BACKGROUND_STEPS: libc::c_int = 10;

/// The lowest priority Linux has.
const LOWEST: libc::c_int = 19;

thread_local! {
    /// Set on the threads `in_background` starts (their work may nest more of it).
    static IN_BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` at the background priority, on a thread of its own (threads it starts, such
/// as an unpack's inflating thread, inherit it), and returns what it returns; a panic in it
/// goes on in the caller. Nested calls run inline. If no thread can be started, `work`
/// runs on the caller's thread at the caller's priority.
pub fn in_background<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if IN_BACKGROUND.with(Cell::get) {
        return work();
    }
    // Shared with the thread, so the work is still here to run if the thread cannot start.
    let work = Mutex::new(Some(work));
    let take = || work.lock().unwrap_or_else(|p| p.into_inner()).take().expect("the work runs once");
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().name("ctrfs-tree".into()).spawn_scoped(scope, || {
            IN_BACKGROUND.with(|b| b.set(true));
            lower_this_thread();
            take()()
        });
        match spawned {
            Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                log::warn!("cannot start a thread for background work ({e}); running it at the caller's priority");
                take()()
            }
        }
    })
}

fn lower_this_thread() {
    let Some(now) = niceness() else { return };
    let lower = (now + BACKGROUND_STEPS).min(LOWEST);
    // SAFETY: setpriority on this thread's own id; a failure changes nothing.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, lower) };
    if rc != 0 {
        log::debug!("background work runs at the daemon's priority: {}", std::io::Error::last_os_error());
    }
}

/// This thread's niceness (Linux keeps one per thread).
pub fn niceness() -> Option<libc::c_int> {
    // getpriority may return -1 as a value: errno tells a failure apart.
    // SAFETY: errno is this thread's; getpriority reads the calling thread's value.
    unsafe {
        *libc::__errno_location() = 0;
        let value = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        (value != -1 || *libc::__errno_location() == 0).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_work_runs_lower_on_its_own_thread_and_the_caller_keeps_its_priority() {
        let start = niceness().expect("this thread's niceness");
        let (low, nested, child) = in_background(|| {
            let low = niceness().unwrap();
            let nested = in_background(|| niceness().unwrap());
            // Threads started meanwhile (the inflating thread of an unpack) inherit it.
            let child = std::thread::spawn(niceness).join().unwrap().unwrap();
            (low, nested, child)
        });
        assert_eq!(low, (start + BACKGROUND_STEPS).min(LOWEST), "lowered by {BACKGROUND_STEPS} steps");
        assert_eq!(nested, low, "a nested call lowers no further");
        assert_eq!(child, low);
        assert_eq!(niceness().unwrap(), start, "the caller's thread was never lowered");
    }

    #[test]
    fn a_panic_in_background_work_goes_on_in_the_caller() {
        let caught = std::panic::catch_unwind(|| in_background(|| panic!("in the tree")));
        assert!(caught.is_err());
    }
}
