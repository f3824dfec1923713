//! The daemon's view of exits: an inotify watch on `STATE/tasks/.exits`, where each
//! supervisor renames a marker named by its task once the exit record is on disk.
//! Markers that were dropped while no daemon watched are reported first.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::RuntimeError;

/// Starts watching `dir`; the receiver gets the id of each task that exited.
pub(super) fn watch(dir: &Path) -> Result<Receiver<String>, RuntimeError> {
    std::fs::create_dir_all(dir)?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(dir, AddWatchFlags::IN_MOVED_TO)?;
    let (tx, rx) = mpsc::channel();
    // After the watch is set, so a marker is seen by one or both (reports are idempotent).
    for entry in std::fs::read_dir(dir)?.flatten() {
        send(dir, &tx, &entry.file_name().to_string_lossy());
    }
    let dir = dir.to_path_buf();
    std::thread::Builder::new().name("exit-watch".into()).spawn(move || loop {
        match inotify.read_events() {
            Ok(events) => {
                for name in events.iter().filter_map(|e| e.name.as_ref()) {
                    if !send(&dir, &tx, &name.to_string_lossy()) {
                        return;
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error!("watching task exits in {}: {e}", dir.display());
                return;
            }
        }
    })?;
    Ok(rx)
}

/// Reports one marker and removes it; false once nobody listens.
fn send(dir: &Path, tx: &Sender<String>, name: &str) -> bool {
    if name.starts_with('.') {
        return true; // a marker being written
    }
    let listening = tx.send(name.to_owned()).is_ok();
    let _ = std::fs::remove_file(dir.join(name));
    listening
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn markers_before_and_after_the_watch_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("early"), b"").unwrap();
        let rx = watch(dir.path()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "early");
        crate::runtime::files::write_durably(&dir.path().join("late"), b"").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "late");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "markers are consumed");
    }
}
