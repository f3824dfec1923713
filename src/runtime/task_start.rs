//! `start`: write the bundle, start the task's supervisor for one run (its generation)
//! and wait for its report. Returns once the container's process exists.
//!
//! A start that fails leaves what the earlier runs left: the logs are cut back to their
//! length before the attempt (runc writes its own error into the container's stderr; the
//! caller logs it), the last run's exit record stays (it names its run), and a task
//! directory this attempt made goes. A start that does not report within the timeout, or
//! ends without a usable report, is abandoned: its supervisor is killed, then the container
//! (`runc kill KILL`, `runc delete --force`), so nothing runs that no record tracks.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::bundle::{cgroup_parent, write_bundle};
use super::files::{kill_supervisor, process_start_time, TaskFiles};
use super::oci_runtime::message_of;
use super::{RuncOp, Runtime, RuntimeError, Started};
use crate::model::Timestamp;

/// How much of a report line is kept; the supervisor's own lines are short, and it cuts
/// its error messages to `MESSAGE_LIMIT` before it sends them.
const REPORT_LINE_LIMIT: usize = 64 * 1024;

pub(super) fn start(rt: &Runtime, id: &str, spec: &Value, generation: u64) -> Result<Started, RuntimeError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(RuntimeError::BadSpec { reason: format!("{id:?} cannot name a task") });
    }
    let files = rt.files(id);
    let earlier = Earlier::note(&files);
    let started = prepare(rt, id, &files, spec).and_then(|()| run_supervisor(rt, id, &files, generation));
    if started.is_err() {
        earlier.restore(&files);
    }
    started
}

/// What the earlier runs left that a failed start must leave as it was.
struct Earlier {
    /// Whether the task's directory existed (a restart) or this start makes it.
    dir: bool,
    /// The logs' lengths, when they existed.
    logs: Vec<(std::path::PathBuf, Option<u64>)>,
}

impl Earlier {
    fn note(files: &TaskFiles) -> Earlier {
        let logs = [files.stdout(), files.stderr()]
            .into_iter()
            .map(|path| {
                let len = std::fs::metadata(&path).ok().map(|m| m.len());
                (path, len)
            })
            .collect();
        Earlier { dir: files.dir.exists(), logs }
    }

    /// Puts back what the failed start changed; failures are logged, the start's own
    /// error is what the caller reports.
    fn restore(&self, files: &TaskFiles) {
        if !self.dir {
            if let Err(e) = std::fs::remove_dir_all(&files.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("{}: not removed after a failed start: {e}", files.dir.display());
                }
            }
            return;
        }
        for (path, len) in &self.logs {
            let restored = match len {
                Some(len) => OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(*len)),
                None => std::fs::remove_file(path),
            };
            if let Err(e) = restored {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("{}: not restored after a failed start: {e}", path.display());
                }
            }
        }
    }
}

/// Everything before the supervisor: a fresh bundle, no stale pid, no stopped container
/// of an earlier run (runc refuses to create over one), log files that exist (appended to
/// across runs). The earlier run's exit record stays: it names its run, and a failed start
/// must not take it away.
fn prepare(rt: &Runtime, id: &str, files: &TaskFiles, spec: &Value) -> Result<(), RuntimeError> {
    write_bundle(&files.bundle(), spec, &cgroup_parent(&rt.config.state_dir), id)?;
    // Only when the runtime keeps state for the id (its directory under the runtime's
    // root): a runc invocation is a sixth of a start, and a first start has nothing to remove.
    // `delete --force` of a container that does not exist succeeds too, with some runtimes.
    if rt.config.runc_root.join(id).symlink_metadata().is_ok() && rt.oci.run(RuncOp::Delete { id }).is_ok() {
        log::debug!("task {id}: runtime container of an earlier run removed");
    }
    for stale in [files.pid(), files.pid_in_progress()] {
        match std::fs::remove_file(stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    for log in [files.stdout(), files.stderr()] {
        OpenOptions::new().create(true).append(true).open(log)?;
    }
    Ok(())
}

/// One line of the supervisor's report.
#[derive(Debug)]
enum Report {
    /// The first process names the supervisor proper (before anything else it does).
    Supervisor(u32),
    /// The start's outcome.
    Done(Result<Started, RuntimeError>),
}

fn run_supervisor(rt: &Runtime, id: &str, files: &TaskFiles, generation: u64) -> Result<Started, RuntimeError> {
    let supervisor_log = OpenOptions::new().create(true).append(true).open(files.supervisor_log())?;
    let mut command = Command::new(&rt.config.exe);
    // systemd's socket is the daemon's: runc, seeing it, would make the container's start
    // wait for the container to report READY=1 itself.
    command.env_remove("NOTIFY_SOCKET");
    command
        .arg("supervise")
        .arg("--id")
        .arg(id)
        .arg("--dir")
        .arg(&files.dir)
        .arg("--runc")
        .arg(&rt.config.runc)
        .arg("--runc-root")
        .arg(&rt.config.runc_root)
        .arg("--generation")
        .arg(generation.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(supervisor_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let deadline = Instant::now() + rt.start_timeout;
    let mut first = command.spawn().map_err(|e| RuntimeError::Supervisor {
        message: format!("cannot run {}: {e}", rt.config.exe.display()),
    })?;
    crate::fault::point(crate::fault::points::SUPERVISOR_SPAWNED);
    let Some(pipe) = first.stdout.take() else {
        abandon(rt, id, &mut first, None);
        return Err(RuntimeError::Supervisor { message: "no report pipe".into() });
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let line = read_line(&mut reader);
            let last = !matches!(line, Ok(Some(_)));
            if tx.send(line).is_err() || last {
                return;
            }
        }
    });
    let mut supervisor = None;
    let outcome = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(Some(line))) => match parse_report(&line, files, generation) {
                Report::Supervisor(pid) => supervisor = process_start_time(pid).map(|start| (pid, start)),
                Report::Done(outcome) => break outcome,
            },
            Ok(Ok(None)) => break Err(ended_without_report(files)),
            Ok(Err(e)) => break Err(e.into()),
            Err(_) => break Err(RuntimeError::StartTimeout { id: id.to_owned(), after: rt.start_timeout }),
        }
    };
    match outcome {
        Ok(started) => {
            // The first process forked the supervisor proper and exited at once: reaped
            // here, the supervisor is nobody's zombie-to-be but init's.
            first.wait()?;
            Ok(started)
        }
        Err(e) => {
            abandon(rt, id, &mut first, supervisor);
            Err(e)
        }
    }
}

/// One line of the report, `REPORT_LINE_LIMIT` bytes of it at most: its start and its
/// end; `None` at the end of the pipe.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut read_any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(read_any.then_some(line));
        }
        read_any = true;
        let (used, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        if line.len() > REPORT_LINE_LIMIT {
            // The first word says what the line is; the cause is at the end.
            let keep_head = 64;
            line.drain(keep_head..line.len() - (REPORT_LINE_LIMIT - keep_head));
        }
        if done {
            return Ok(Some(line));
        }
    }
}

/// Nothing of a start that gave no usable report may keep running: the supervisor (and
/// the runc it runs, in its process group) is killed first, so it cannot go on to start
/// the container, then the container. Each step is best effort; what it could not do is
/// logged.
fn abandon(rt: &Runtime, id: &str, first: &mut Child, supervisor: Option<(u32, u64)>) {
    let _ = first.kill();
    let _ = first.wait();
    if let Some((pid, start)) = supervisor {
        if !kill_supervisor(pid, start, Duration::from_secs(1)) {
            log::error!("task {id}: its supervisor (pid {pid}) outlived SIGKILL");
        }
    }
    if let Err(e) = rt.oci.run(RuncOp::Kill { id, signal: Signal::SIGKILL }) {
        log::debug!("task {id}: kill after a failed start: {e}");
    }
    if let Err(e) = rt.oci.run(RuncOp::Delete { id }) {
        log::debug!("task {id}: delete after a failed start: {e}");
    }
}

fn parse_report(line: &[u8], files: &TaskFiles, generation: u64) -> Report {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let bad = || RuntimeError::Supervisor { message: format!("bad report {:?}", message_of(text.as_bytes())) };
    match word {
        "supervisor" => match rest.parse::<u32>() {
            Ok(pid) => Report::Supervisor(pid),
            Err(_) => Report::Done(Err(bad())),
        },
        "started" => {
            let pids: Vec<Option<u32>> = rest.split(' ').map(|w| w.parse::<u32>().ok()).collect();
            let [Some(pid), Some(supervisor_pid)] = pids[..] else { return Report::Done(Err(bad())) };
            Report::Done(Ok(Started {
                pid,
                pid_start_time: process_start_time(pid).unwrap_or(0),
                supervisor_pid,
                supervisor_start_time: process_start_time(supervisor_pid).unwrap_or(0),
                started_at: Timestamp::now(),
                stdout: files.stdout(),
                stderr: files.stderr(),
                generation,
            }))
        }
        "error" => {
            let message = message_of(rest.as_bytes());
            let message = if message.is_empty() { "failed without a message".to_owned() } else { message };
            Report::Done(Err(RuntimeError::Runc { op: "runc run", message }))
        }
        _ => Report::Done(Err(bad())),
    }
}

fn ended_without_report(files: &TaskFiles) -> RuntimeError {
    let log = std::fs::read(files.supervisor_log()).unwrap_or_default();
    RuntimeError::Supervisor { message: format!("ended without a report: {}", message_of(&log)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::files::is_alive;
    use crate::runtime::fake::{runtime_with, runtime_with_supervisor, Recording};
    use crate::runtime::files::{read_exit, write_durably, Exit};
    use serde_json::json;

    fn spec() -> Value {
        json!({"process": {"args": ["sh"]}, "root": {"path": "/r"}})
    }

    #[test]
    fn prepare_writes_the_bundle_and_keeps_what_earlier_runs_left() {
        let (dir, calls, rt) = runtime_with(Recording::default());
        let files = rt.files("web");
        std::fs::create_dir_all(&files.dir).unwrap();
        std::fs::write(files.exit(), b"{}").unwrap();
        std::fs::write(files.pid(), b"41").unwrap();
        std::fs::write(files.pid_in_progress(), b"40").unwrap();
        std::fs::write(files.stdout(), b"earlier\n").unwrap();
        prepare(&rt, "web", &files, &spec()).unwrap();
        assert_eq!(calls.taken(), Vec::<String>::new(), "the runtime keeps nothing of web: nothing to delete");
        std::fs::create_dir_all(rt.config.runc_root.join("web")).unwrap();
        prepare(&rt, "web", &files, &spec()).unwrap();
        assert_eq!(calls.taken(), ["delete web"], "an earlier run's runtime container goes first");
        assert!(!files.pid().exists());
        assert!(!files.pid_in_progress().exists(), "a killed runc's half-written pid file would fail the run");
        assert!(files.exit().exists(), "the exit record names its run; it stays");
        assert_eq!(std::fs::read(files.stdout()).unwrap(), b"earlier\n", "logs are appended to");
        let config: Value = serde_json::from_slice(&std::fs::read(files.bundle().join("config.json")).unwrap()).unwrap();
        assert_eq!(config["root"]["path"], "/r");
        assert!(dir.path().join("tasks/web/stderr").exists());
        assert!(matches!(rt.start("../x", &spec(), 1), Err(RuntimeError::BadSpec { .. })));
    }

    #[test]
    fn reports_become_results() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), "web");
        let me = std::process::id();
        let Report::Done(Ok(started)) = parse_report(format!("started {me} {me}\n").as_bytes(), &files, 3) else {
            panic!("a start")
        };
        assert_eq!((started.pid, started.supervisor_pid, started.generation), (me, me, 3));
        assert!(started.pid_start_time > 0);
        assert!(matches!(parse_report(format!("supervisor {me}").as_bytes(), &files, 3), Report::Supervisor(pid) if pid == me));
        match parse_report(b"error exec: \"/bin/nope\": no such file", &files, 3) {
            Report::Done(Err(RuntimeError::Runc { message, .. })) => assert!(message.contains("/bin/nope")),
            other => panic!("{other:?}"),
        }
        for bad in [&b""[..], b"started", b"started 1", b"started x y", b"started 1 2 3", b"supervisor", b"hello"] {
            assert!(matches!(parse_report(bad, &files, 3), Report::Done(Err(RuntimeError::Supervisor { .. }))), "{bad:?}");
        }
    }

    #[test]
    fn no_error_report_panics_empty_huge_or_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), "web");
        let mut huge = b"error ".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        let rows: [&[u8]; 5] = [b"error", b"error ", b"error \n", &huge, b"error \xff\xfe bad\n"];
        for line in rows {
            let Report::Done(Err(RuntimeError::Runc { message, .. })) = parse_report(line, &files, 1) else {
                panic!("{:?}: a runtime error", String::from_utf8_lossy(&line[..line.len().min(20)]))
            };
            assert!(!message.is_empty() && message.len() <= crate::runtime::oci_runtime::MESSAGE_LIMIT + 4);
        }
    }

    /// A runtime whose supervisor is the shell script `report`.
    fn supervised(report: &str) -> (tempfile::TempDir, Recording, Runtime) {
        runtime_with_supervisor(Recording::default(), Some(report))
    }

    #[test]
    fn error_reports_of_any_shape_fail_the_start_without_a_panic() {
        for (body, want) in [
            ("echo error", "failed without a message"),
            ("printf 'error '; head -c 1048576 /dev/zero | tr '\\0' x; echo ' the cause'", "the cause"),
            ("printf 'error \\377\\376 bad\\n'", "\u{fffd}\u{fffd} bad"),
        ] {
            let (_dir, _calls, rt) = supervised(body);
            match rt.start("web", &spec(), 1) {
                Err(RuntimeError::Runc { message, .. }) => {
                    assert!(message.ends_with(want) && message.len() <= 4100, "{body}: {} bytes", message.len())
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_failed_restart_keeps_the_earlier_run_s_logs_and_exit() {
        // runc writes its own error into the container's stderr before failing.
        let (_dir, calls, rt) = supervised("echo 'runc: exec failed' >> \"$5/stderr\"; echo 'error exec: boom'");
        let files = rt.files("web");
        std::fs::create_dir_all(&files.dir).unwrap();
        std::fs::write(files.stdout(), b"first run\n").unwrap();
        std::fs::write(files.stderr(), b"first err\n").unwrap();
        let earlier = Exit { status: 3, exited_at: Timestamp::from_nanos(1), generation: 1 };
        write_durably(&files.exit(), &serde_json::to_vec(&earlier).unwrap()).unwrap();
        match rt.start("web", &spec(), 2) {
            Err(RuntimeError::Runc { message, .. }) => assert_eq!(message, "exec: boom"),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(files.stdout()).unwrap(), "first run\n");
        assert_eq!(std::fs::read_to_string(files.stderr()).unwrap(), "first err\n", "what the attempt wrote is cut off");
        assert_eq!(read_exit(&files.exit()).unwrap(), Some(earlier));
        assert_eq!(calls.taken(), ["kill web SIGKILL", "delete web"]);
    }

    #[test]
    fn a_failed_first_start_leaves_no_directory() {
        let (_dir, _calls, rt) = supervised("echo 'error exec: boom'");
        assert!(rt.start("web", &spec(), 1).is_err());
        assert!(!rt.files("web").dir.exists());
    }

    #[test]
    fn a_start_that_times_out_is_killed_and_cleaned_up() {
        // The supervisor proper (a sleep) holds the report pipe and never reports.
        let (_dir, calls, rt) = supervised("sleep 60 & echo \"supervisor $!\"; echo $! > \"$5/../sleeper\"");
        let rt = rt.with_start_timeout(Duration::from_millis(300));
        let began = Instant::now();
        match rt.start("web", &spec(), 1) {
            Err(RuntimeError::StartTimeout { id, .. }) => assert_eq!(id, "web"),
            other => panic!("{other:?}"),
        }
        assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
        assert_eq!(calls.taken(), ["kill web SIGKILL", "delete web"], "the container is killed and deleted");
        let sleeper: u32 = std::fs::read_to_string(rt.config.state_dir.join("sleeper")).unwrap().trim().parse().unwrap();
        assert!(process_start_time(sleeper).is_none_or(|start| !is_alive(sleeper, start)), "the supervisor is stopped");
        assert!(!rt.files("web").dir.exists(), "nothing of a first start stays");
    }

    #[test]
    fn a_supervisor_that_starts_reports_its_run() {
        let (_dir, calls, rt) = supervised("echo \"supervisor $$\"; echo \"started $$ $$\"");
        let started = rt.start("web", &spec(), 4).unwrap();
        assert_eq!(started.generation, 4);
        assert_eq!(calls.taken(), Vec::<String>::new(), "a first start runs no runtime command of its own");
    }
}
