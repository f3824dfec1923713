//! The per-task supervisor (`ctrfs supervise`, hidden): what containerd needs a shim for.
//!
//! It detaches from the daemon (fork; the daemon reaps the short-lived first process, which
//! reports `supervisor <pid>` first, so a start that times out can be stopped), becomes the
//! child subreaper, runs `runc run --detach` with the task's log files as the container's
//! stdout and stderr, reports `started <pid> <supervisor pid>` (or `error
//! <message>`) on its stdout pipe, and is then the one and only waiter of the container: it
//! reaps every child and, when the container's process ends, writes the exit status with
//! its run's generation durably and drops a marker for the daemon's watcher.
//!
//! The container writes straight to the log files rather than through pipes the
//! supervisor copies: the logs keep growing even if the supervisor dies, and no process
//! gets SIGPIPE when another one is gone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::files::{exits_dir, write_durably, Exit, TaskFiles};
use super::oci_runtime::{last_error, message_of, OciRuntime, RuncCli, RuncOp};
use crate::model::Timestamp;

/// Arguments of the hidden `ctrfs supervise` subcommand (passed by `Runtime::start`).
#[derive(Debug, Clone, clap::Args)]
pub struct SuperviseArgs {
    /// The task (container) id.
    #[arg(long)]
    pub id: String,
    /// The task's state directory (`STATE/tasks/<id>`).
    #[arg(long)]
    pub dir: PathBuf,
    /// The OCI runtime binary.
    #[arg(long)]
    pub runc: PathBuf,
    /// The OCI runtime's state root.
    #[arg(long)]
    pub runc_root: PathBuf,
    /// The run this supervisor is for, written into its exit record.
    #[arg(long, default_value_t = 0)]
    pub generation: u64,
}

/// The subcommand's body.
pub fn supervise_main(args: SuperviseArgs) -> ExitCode {
    // What it creates (logs, exit records) is the state directory's: private. runc gives
    // the container's process its own umask (the spec's, or 022).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // SAFETY: called first thing in the subcommand, while the process has one thread.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            report(&format!("supervisor {child}"));
            return ExitCode::SUCCESS;
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report(&format!("error cannot fork the supervisor: {e}"));
            return ExitCode::FAILURE;
        }
    }
    // The first process led a new session (the daemon made it); this one starts its own,
    // so nothing that happens to the daemon's session reaches the task.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        report(&format!("error cannot become a subreaper: {}", std::io::Error::last_os_error()));
        return ExitCode::FAILURE;
    }
    let files = TaskFiles { dir: args.dir.clone() };
    let container = match create_and_start(&args, &files) {
        Ok(pid) => pid,
        Err(message) => {
            report(&format!("error {}", message_of(message.as_bytes())));
            return ExitCode::FAILURE;
        }
    };
    report(&format!("started {container} {}", std::process::id()));
    detach_stdout();
    let status = reap_until(container);
    match status {
        Some(status) => {
            let exit = Exit { status, exited_at: Timestamp::now(), generation: args.generation };
            let record = serde_json::to_vec(&exit).expect("an exit record serializes");
            if let Err(e) = write_durably(&files.exit(), &record) {
                eprintln_safe(&format!("cannot record the exit of {}: {e}", args.id));
                return ExitCode::FAILURE;
            }
        }
        None => eprintln_safe(&format!("lost track of {} (pid {container}); its exit status is unknown", args.id)),
    }
    let exits = exits_dir(args.dir.parent().unwrap_or(Path::new("/")));
    if let Err(e) = write_durably(&exits.join(&args.id), b"") {
        eprintln_safe(&format!("cannot signal the exit of {}: {e}", args.id));
    }
    ExitCode::SUCCESS
}

fn create_and_start(args: &SuperviseArgs, files: &TaskFiles) -> Result<i32, String> {
    let append = |path: PathBuf| {
        OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (stdout, stderr) = (append(files.stdout())?, append(files.stderr())?);
    let _ = std::fs::remove_file(files.runc_log());
    let cli = RuncCli { binary: args.runc.clone(), root: args.runc_root.clone(), log: Some(files.runc_log()) };
    let (bundle, pid_file) = (files.bundle(), files.pid());
    // One runtime process for create and start (as `runc run` alone is): each runc
    // invocation costs about 12 ms here, a third of a start.
    let run = RuncOp::Run { id: &args.id, bundle: &bundle, pid_file: &pid_file };
    let status = cli
        .command(&run)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", args.runc.display()))?;
    if !status.success() {
        // The run's own error first: the delete below logs to the same file.
        let error = last_error(&files.runc_log()).unwrap_or_else(|| format!("runc run: {status}"));
        // runc removes what a failed run made; a runtime that does not is asked to.
        let _ = cli.run(RuncOp::Delete { id: &args.id });
        return Err(error);
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .ok_or_else(|| "runc run wrote no pid".to_owned())?;
    wait_until_started(&args.runc_root, &args.id);
    Ok(pid)
}

/// A detached run returns once the runtime has released the container's init, which then
/// execs the process. Until the init has read its exec fifo (`ROOT/ID/exec.fifo`, which
/// runc removes then), the runtime says `created` and refuses pause. runc removes the fifo
/// before its run returns, so this normally finds it gone at once; it waits (at most 5 s)
/// for a runtime that returns earlier. A stat, not a `runc state` of 12 ms.
fn wait_until_started(runc_root: &Path, id: &str) {
    let fifo = runc_root.join(id).join("exec.fifo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fifo.symlink_metadata().is_ok() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reaps every child until the container's process ends; its status as a shell reports
/// it (code, or 128 + signal). `None` if it turns out not to be a descendant.
fn reap_until(container: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == container => return Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid.as_raw() == container => return Some(128 + signal as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Writes the one-line report to the daemon (stdout is its pipe).
fn report(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// After the report, stdout is let go, so the daemon's read sees the end of the pipe.
fn detach_stdout() {
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2 between two descriptors valid for the duration of the call.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

/// stderr is `supervisor.log`; a failed write there must not end the supervisor.
fn eprintln_safe(message: &str) {
    let _ = writeln!(std::io::stderr(), "ctrfs supervise: {message}");
}
