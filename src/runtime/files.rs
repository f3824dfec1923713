//! The task's files on the host, and how they are written so a crash never leaves half of
//! one: `STATE/tasks/<id>/{bundle/config.json, stdout, stderr, runc.log, pid, exit,
//! supervisor.log}` and the exit markers in `STATE/tasks/.exits/<id>`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// How a task's process ended, as its supervisor recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code, or 128 + the signal number for a process killed by a signal.
    pub status: i32,
    /// When the supervisor reaped it.
    pub exited_at: Timestamp,
    /// The run it ended (the supervisor is told its run's generation). One `exit` file
    /// serves every run of a task, so a reader compares this with the run it asks about;
    /// records of supervisors that knew no generation read as 0.
    #[serde(default)]
    pub generation: u64,
}

/// The paths of one task's files.
#[derive(Debug, Clone)]
pub struct TaskFiles {
    /// `STATE/tasks/<id>`.
    pub dir: PathBuf,
}

impl TaskFiles {
    /// The files of task `id` under `state_dir`.
    pub fn new(state_dir: &Path, id: &str) -> Self {
        TaskFiles { dir: state_dir.join(id) }
    }
    /// The OCI bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    /// The stdout log.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout")
    }
    /// The stderr log.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr")
    }
    /// runc's own log (JSON lines).
    pub fn runc_log(&self) -> PathBuf {
        self.dir.join("runc.log")
    }
    /// The container's pid, written by `runc run`.
    pub fn pid(&self) -> PathBuf {
        self.dir.join("pid")
    }
    /// Where runc writes the pid first (`O_EXCL`), then renames it to [`TaskFiles::pid`]:
    /// a runc killed in between leaves it, and every later run would fail on it.
    pub fn pid_in_progress(&self) -> PathBuf {
        self.dir.join(".pid")
    }
    /// The durable exit record.
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit")
    }
    /// The supervisor's own messages.
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
}

/// The name of the directory of exit markers, beside the task directories (no task id
/// starts with a dot).
pub const EXITS_DIR: &str = ".exits";

/// Where supervisors drop a marker per exit, watched by the daemon.
pub fn exits_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(EXITS_DIR)
}

/// Writes `path` so that it holds either its old content or all of `bytes`, on disk,
/// before returning: temporary file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_whole(path, bytes, true)
}

/// Writes `path` so that a reader finds either its old content or all of `bytes` (a
/// temporary file renamed into place), without waiting for the disk.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_whole(path, bytes, false)
}

fn write_whole(path: &Path, bytes: &[u8], durably: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Per process: a supervisor and the daemon may both write one task's exit marker.
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = File::options().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        if durably {
            file.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durably {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads an exit record; `None` when there is none (yet).
pub fn read_exit(path: &Path) -> std::io::Result<Option<Exit>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The start time of a process (`/proc/<pid>/stat` field 22, in clock ticks since boot):
/// with the pid, it names one process even after the pid is reused.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(19)?.parse().ok()
}

/// Every live supervisor (`ctrfs supervise ... --dir DIR ...`), found by its command line,
/// as its task directory and (pid, start time). One walk of `/proc`, made at start-up
/// only: a supervisor still inside `runc run` has written nothing else that names it.
pub fn supervisors() -> Vec<(PathBuf, (u32, u64))> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.get(1) != Some(&&b"supervise"[..]) {
                return None;
            }
            let dir = args.windows(2).find(|w| w[0] == b"--dir")?[1];
            Some((PathBuf::from(std::ffi::OsStr::from_bytes(dir)), (pid, process_start_time(pid)?)))
        })
        .collect()
}

/// Kills supervisor `pid` (started at `start`, so a reused pid is left alone) and, when it
/// leads its process group (it calls setsid first), the whole group: the `runc` it runs
/// cannot go on to make or start a container. Waits at most `wait` for it to end; returns
/// whether it did.
pub fn kill_supervisor(pid: u32, start: u64, wait: std::time::Duration) -> bool {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::{getpgid, Pid};
    if !is_alive(pid, start) {
        return true;
    }
    let target = Pid::from_raw(pid as i32);
    if getpgid(Some(target)) == Ok(target) {
        let _ = killpg(target, Signal::SIGKILL);
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = std::time::Instant::now() + wait;
    while is_alive(pid, start) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    !is_alive(pid, start)
}

/// Whether the process `pid` that started at `start_time` is still alive (not a zombie).
pub fn is_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 || process_start_time(pid) != Some(start_time) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) != Some("Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records_round_trip_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        assert_eq!(read_exit(&path).unwrap(), None);
        let exit = Exit { status: 143, exited_at: Timestamp::from_nanos(5), generation: 2 };
        write_durably(&path, &serde_json::to_vec(&exit).unwrap()).unwrap();
        assert_eq!(read_exit(&path).unwrap(), Some(exit));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        std::fs::write(&path, br#"{"status":3,"exited_at":"1970-01-01T00:00:00.000000001Z"}"#).unwrap();
        assert_eq!(read_exit(&path).unwrap().map(|e| e.generation), Some(0), "a record without a generation");
    }

    #[test]
    fn a_supervisor_is_found_by_its_task_directory_and_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let task_dir = dir.path().join("tasks").join("web");
        // A process whose command line is a supervisor's (`sh supervise --id web --dir
        // DIR`, a script named `supervise`), leading its own group, with a child in it.
        std::fs::write(dir.path().join("supervise"), "sleep 30 &\nwait\n").unwrap();
        let mut command = std::process::Command::new("sh");
        command.current_dir(dir.path()).args(["supervise", "--id", "web", "--dir"]).arg(&task_dir);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            // Until the child has exec'd, its command line is still this test's.
            let found: Vec<_> = supervisors().into_iter().filter(|(d, _)| *d == task_dir).collect();
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        // Its forked child may show the same command line for a moment, before its exec.
        let (_, (pid, start)) = *found.iter().find(|(_, (p, _))| *p == pid).unwrap_or_else(|| panic!("{found:?} holds {pid}"));
        assert!(kill_supervisor(pid, start, std::time::Duration::from_secs(5)));
        child.wait().unwrap();
        assert!(!kill_supervisor(pid, start + 1, std::time::Duration::ZERO) || !is_alive(pid, start + 1), "another start time is another process");
    }

    #[test]
    fn this_process_has_a_start_time_and_is_alive() {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1), "another start time is another process");
    }
}
