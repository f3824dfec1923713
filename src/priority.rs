//! The CPU priority of background work. Walking and writing trees (unpacking a layer,
//! copying or removing a snapshot, measuring its usage) runs at a lower priority than the
//! rest of the daemon, so that when it competes with requests for the CPU the requests win.
//!
//! Only that work is lowered, and only while it runs: a worker thread goes back to the
//! daemon's priority afterwards, because what it runs next may be a label's commit, whose
//! writer waits for it, or a task's start, whose processes inherit the thread's priority
//! (a container must run at the priority its host gave the daemon, not a lowered one).

use std::cell::Cell;

/// How much lower than the daemon's priority background work runs, in niceness steps.
pub const BACKGROUND_STEPS: libc::c_int = 10;

/// The lowest priority Linux has.
const LOWEST: libc::c_int = 19;

thread_local! {
    /// Set while a guard of this thread has lowered it (nested guards do nothing).
    static LOWERED: Cell<bool> = const { Cell::new(false) };
    /// Set when this thread could not get its priority back after background work.
    static STUCK_LOW: Cell<bool> = const { Cell::new(false) };
}

/// While alive, this thread runs at the background priority.
#[must_use = "the priority is restored when the guard drops"]
pub struct Background {
    /// The niceness to restore; `None` when the thread was already at least that low.
    before: Option<libc::c_int>,
}

/// Lowers this thread's priority until the guard drops. Nested guards leave it to the
/// outermost one to restore.
pub fn background() -> Background {
    let unchanged = Background { before: None };
    if LOWERED.with(Cell::get) {
        return unchanged;
    }
    let Some(before) = niceness() else { return unchanged };
    let lower = (before + BACKGROUND_STEPS).min(LOWEST);
    if lower == before || set_niceness(lower).is_err() {
        return unchanged;
    }
    LOWERED.with(|l| l.set(true));
    Background { before: Some(before) }
}

impl Drop for Background {
    fn drop(&mut self) {
        let Some(before) = self.before else { return };
        LOWERED.with(|l| l.set(false));
        if let Err(e) = set_niceness(before) {
            // Raising a priority needs CAP_SYS_NICE (or RLIMIT_NICE): a daemon without it
            // keeps this thread low, and its pool retires it (see `is_stuck_low`).
            log::warn!("cannot restore a worker's priority after background work ({e}); the thread retires");
            STUCK_LOW.with(|s| s.set(true));
        }
    }
}

/// Whether this thread stayed at the background priority after its work: a pool thread
/// should then exit rather than run anything else.
pub fn is_stuck_low() -> bool {
    STUCK_LOW.with(Cell::get)
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

fn set_niceness(value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setpriority on this thread's own id; a failure changes nothing.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_work_runs_lower_and_the_thread_gets_its_priority_back() {
        std::thread::spawn(|| {
            let start = niceness().expect("this thread's niceness");
            {
                let _outer = background();
                let low = niceness().unwrap();
                assert_eq!(low, (start + BACKGROUND_STEPS).min(LOWEST), "lowered by {BACKGROUND_STEPS} steps");
                {
                    let _inner = background();
                    assert_eq!(niceness().unwrap(), low, "a nested guard changes nothing");
                }
                assert_eq!(niceness().unwrap(), low, "the inner guard leaves the restoring to the outer one");
                // Threads started meanwhile (the inflating thread of an unpack) inherit it.
                let child = std::thread::spawn(niceness).join().unwrap().unwrap();
                assert_eq!(child, low);
            }
            let after = niceness().unwrap();
            if nix::unistd::geteuid().is_root() {
                assert_eq!(after, start, "root raises the priority again");
            }
            // Without the right to raise it, the thread stays low and knows it.
            assert_eq!(is_stuck_low(), after != start);
        })
        .join()
        .unwrap();
    }
}
