//! `start`: write the bundle, clear what an earlier run left, start the task's supervisor
//! and wait for its one-line report. Returns once the container's process exists.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::bundle::{cgroup_parent, write_bundle};
use super::files::{process_start_time, TaskFiles};
use super::{RuncOp, Runtime, RuntimeError, Started};
use crate::model::Timestamp;

/// How long `runc create` + `runc start` may take before the start is given up.
const REPORT_DEADLINE: Duration = Duration::from_secs(30);

pub(super) fn start(rt: &Runtime, id: &str, spec: &Value) -> Result<Started, RuntimeError> {
    let files = rt.files(id);
    prepare(rt, id, &files, spec)?;
    match run_supervisor(rt, id, &files) {
        Ok(started) => Ok(started),
        Err(e) => {
            // Nothing of a failed start stays behind (its logs are in the error message).
            let _ = std::fs::remove_dir_all(&files.dir);
            Err(e)
        }
    }
}

/// Everything before the supervisor: a fresh bundle, no stale exit record or pid, no
/// stopped container of an earlier run (runc refuses to create over one), log files that
/// exist (appended to across restarts of the task).
fn prepare(rt: &Runtime, id: &str, files: &TaskFiles, spec: &Value) -> Result<(), RuntimeError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(RuntimeError::BadSpec { reason: format!("{id:?} cannot name a task") });
    }
    write_bundle(&files.bundle(), spec, &cgroup_parent(&rt.config.state_dir), id)?;
    // `delete --force` of a container that does not exist succeeds too, with some runtimes.
    if rt.oci.run(RuncOp::Delete { id }).is_ok() {
        log::debug!("task {id}: runtime container of an earlier run removed (if there was one)");
    }
    for stale in [files.exit(), files.pid()] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    for log in [files.stdout(), files.stderr()] {
        OpenOptions::new().create(true).append(true).open(log)?;
    }
    Ok(())
}

fn run_supervisor(rt: &Runtime, id: &str, files: &TaskFiles) -> Result<Started, RuntimeError> {
    let supervisor_log = OpenOptions::new().create(true).append(true).open(files.supervisor_log())?;
    let mut command = Command::new(&rt.config.exe);
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(supervisor_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let mut first = command.spawn().map_err(|e| RuntimeError::Supervisor {
        message: format!("cannot run {}: {e}", rt.config.exe.display()),
    })?;
    let pipe = first.stdout.take().ok_or_else(|| RuntimeError::Supervisor { message: "no report pipe".into() })?;
    // The first process forks the supervisor proper and exits at once: reap it here, so
    // the supervisor is nobody's zombie-to-be but init's.
    first.wait()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(BufReader::new(pipe).read_line(&mut line).map(|_| line));
    });
    let line = match rx.recv_timeout(REPORT_DEADLINE) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(RuntimeError::Supervisor { message: format!("no report within {REPORT_DEADLINE:?}") }),
    };
    parse_report(line.trim_end(), files)
}

fn parse_report(line: &str, files: &TaskFiles) -> Result<Started, RuntimeError> {
    let words: Vec<&str> = line.splitn(3, ' ').collect();
    match words.as_slice() {
        ["started", pid, supervisor] => {
            let parse = |w: &str| w.parse::<u32>().map_err(|_| RuntimeError::Supervisor { message: format!("bad report {line:?}") });
            let (pid, supervisor_pid) = (parse(pid)?, parse(supervisor)?);
            Ok(Started {
                pid,
                pid_start_time: process_start_time(pid).unwrap_or(0),
                supervisor_pid,
                supervisor_start_time: process_start_time(supervisor_pid).unwrap_or(0),
                started_at: Timestamp::now(),
                stdout: files.stdout(),
                stderr: files.stderr(),
            })
        }
        ["error", ..] => Err(RuntimeError::Runc { op: "runc create/start", message: line["error ".len()..].to_owned() }),
        _ => {
            let log = std::fs::read_to_string(files.supervisor_log()).unwrap_or_default();
            Err(RuntimeError::Supervisor { message: format!("ended without a report: {}", log.trim()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{runtime_with, Recording};
    use serde_json::json;

    #[test]
    fn prepare_writes_the_bundle_and_clears_an_earlier_run() {
        let (dir, calls, rt) = runtime_with(Recording::default());
        let files = rt.files("web");
        std::fs::create_dir_all(&files.dir).unwrap();
        std::fs::write(files.exit(), b"{}").unwrap();
        std::fs::write(files.stdout(), b"earlier\n").unwrap();
        let spec = json!({"process": {"args": ["sh"]}, "root": {"path": "/r"}});
        prepare(&rt, "web", &files, &spec).unwrap();
        assert_eq!(calls.taken(), ["delete web"]);
        assert!(!files.exit().exists());
        assert_eq!(std::fs::read(files.stdout()).unwrap(), b"earlier\n", "logs are appended to");
        let config: Value = serde_json::from_slice(&std::fs::read(files.bundle().join("config.json")).unwrap()).unwrap();
        assert_eq!(config["root"]["path"], "/r");
        assert!(dir.path().join("tasks/web/stderr").exists());
        assert!(matches!(prepare(&rt, "../x", &files, &spec), Err(RuntimeError::BadSpec { .. })));
    }

    #[test]
    fn reports_become_results() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), "web");
        let me = std::process::id();
        let started = parse_report(&format!("started {me} {me}"), &files).unwrap();
        assert_eq!((started.pid, started.supervisor_pid), (me, me));
        assert!(started.pid_start_time > 0);
        match parse_report("error exec: \"/bin/nope\": no such file", &files) {
            Err(RuntimeError::Runc { message, .. }) => assert!(message.contains("/bin/nope")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_report("", &files), Err(RuntimeError::Supervisor { .. })));
    }
}
