//! Tasks through the mount with the real runc: start, status, logs, signals, pause/resume,
//! wait, restart, rm, EBUSY, every errno, and daemon restarts (SIGTERM and kill -9) while
//! tasks run or exit.
//!
//! The root filesystem is busybox-static copied into a directory, built once per test
//! binary; each test's spec comes from `runc spec`, adjusted (terminal off, its own args).
//! Container ids are unique per test: runc's default cgroup path is the id.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const TASK_DEADLINE: Duration = Duration::from_secs(20);

/// The busybox root filesystem shared by every test of this binary.
pub(crate) fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ctrfs-rootfs-{}", std::process::id()));
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("rootfs bin");
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            fs::create_dir_all(dir.join(d)).expect("rootfs dir");
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is installed (scripts/deps.sh)");
        fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "echo", "sleep", "cat", "ls", "true", "false", "printf", "kill"] {
            let _ = symlink("busybox", bin.join(applet));
        }
        dir
    })
}

/// `open(O_WRONLY | O_CREAT)`, as `touch` does (no `O_TRUNC`: that waits for a word).
fn create(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)
}

/// The spec `runc spec` makes, with `args` and this binary's root filesystem.
pub(crate) fn spec(args: &[&str]) -> Value {
    let mut spec = runc_spec(args);
    spec["root"] = json!({"path": rootfs(), "readonly": true});
    spec
}

/// The spec `runc spec` makes, with `args`, no terminal, and its own `root`.
pub(crate) fn runc_spec(args: &[&str]) -> Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("spec dir");
        let out = Command::new("runc").arg("spec").current_dir(dir.path()).output().expect("run runc spec");
        assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).expect("config.json")).expect("spec json")
    });
    let mut spec = template.clone();
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec
}

/// A mount whose tasks are all removed (killed if running) before it is unmounted, so
/// no container outlives its test.
pub(crate) struct Tasks {
    fx: MountFixture,
}

impl std::ops::Deref for Tasks {
    type Target = MountFixture;
    fn deref(&self) -> &MountFixture {
        &self.fx
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.fx.sh("for t in tasks/*; do [ -e \"$t\" ] && rm -f \"$t\"; done");
        // Anything the mount could not remove (a test that killed supervisors): by runc.
        let runc_root = self.fx.state().join("runc");
        if let Ok(entries) = fs::read_dir(&runc_root) {
            for entry in entries.flatten() {
                let id = entry.file_name();
                let _ = Command::new("runc").arg("--root").arg(&runc_root).args(["delete", "--force"]).arg(&id).status();
            }
        }
    }
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Tasks { fx: MountFixture::new() }
    }

    /// Wraps a fixture mounted with other options.
    pub(crate) fn with(fx: MountFixture) -> Self {
        Tasks { fx }
    }

    /// The fixture, for restarts.
    pub(crate) fn fixture(&mut self) -> &mut MountFixture {
        &mut self.fx
    }

    /// A container `id` whose process runs `script` with busybox sh.
    pub(crate) fn container(&self, id: &str, script: &str) {
        fs::create_dir(self.path(&format!("containers/{id}"))).expect("mkdir container");
        self.set_spec(id, &spec(&["/bin/sh", "-c", script]));
    }

    pub(crate) fn set_spec(&self, id: &str, spec: &Value) {
        put(&self.path(&format!("containers/{id}/spec")), serde_json::to_vec(spec).unwrap());
    }

    /// Starts task `id` as `touch` does: a create without `O_TRUNC` starts it inside the call.
    pub(crate) fn start(&self, id: &str) {
        create(&self.path(&format!("tasks/{id}")))
            .unwrap_or_else(|e| panic!("start task {id}: {e}; log:\n{}", self.log()));
    }

    pub(crate) fn status(&self, id: &str) -> Value {
        read_json(&self.path(&format!("tasks/{id}")))
    }

    pub(crate) fn control(&self, id: &str, word: &str) -> std::io::Result<()> {
        fs::write(self.path(&format!("tasks/{id}")), format!("{word}\n"))
    }

    pub(crate) fn wait_status(&self, id: &str, status: &str) {
        wait_until(TASK_DEADLINE, &format!("task {id} to be {status}"), || self.status(id)["status"] == status);
    }

    /// `cat wait/<id>`, which blocks until the task exited.
    pub(crate) fn wait(&self, id: &str) -> String {
        self.sh_ok(&format!("cat wait/{id}"))
    }
}

#[test]
fn a_task_runs_writes_its_logs_and_reports_its_exit() {
    let t = Tasks::new();
    t.container("hello", "echo hello; echo oops >&2; exit 3");
    let (code, _, err) = t.sh("touch tasks/hello");
    assert_eq!(code, 0, "touch: {err}");
    assert_eq!(t.wait("hello"), "3\n");
    let status = t.status("hello");
    assert_eq!(status["status"], "stopped");
    assert_eq!(status["exit_status"], 3);
    assert!(status["pid"].as_u64().unwrap() > 0);
    assert!(status["exited_at"].is_string() && status["started_at"].is_string());
    assert_eq!(read(&t.path("logs/hello/stdout")), "hello\n");
    assert_eq!(read(&t.path("logs/hello/stderr")), "oops\n");
    assert_eq!(PathBuf::from(status["stdout"].as_str().unwrap()), t.state().join("tasks/hello/stdout"));
    for rel in ["tasks/hello", "logs/hello/stdout", "wait/hello"] {
        let p = t.path(rel);
        assert_eq!(fs::metadata(&p).unwrap().len() as usize, fs::read(&p).unwrap().len(), "{rel}");
    }
    assert_eq!(t.sh_ok("ls tasks logs wait | tr '\\n' ' '"), "logs:\nhello\n\ntasks:\nhello\n\nwait:\n".replace('\n', " "));
}

/// The niceness of process `pid` (field 19 of `/proc/<pid>/stat`, after the command's
/// parenthesis).
fn niceness(pid: i32) -> i64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(16).unwrap().parse().unwrap()
}

#[test]
fn a_task_and_its_supervisor_run_at_the_daemons_priority_not_its_workers() {
    // Tree work (the unpack of the image below, on a worker) runs at a lower priority;
    // the worker that runs the start next, and so what it starts, must not.
    let t = Tasks::new();
    crate::oci::import_by_copying(&t, crate::oci_fixture::two_layer_layout(), "latest", "nice/busybox");
    crate::oci::image_container(&t, "nice", "nice/busybox", "exec sleep 1000");
    t.start("nice");
    let pid = t.status("nice")["pid"].as_u64().unwrap() as i32;
    let daemon = niceness(t.daemon_pid() as i32);
    assert_eq!(niceness(pid), daemon, "the task's niceness");
    assert_eq!(niceness(supervisor_of(&t.state(), "nice")), daemon, "its supervisor's niceness");
    t.control("nice", "KILL").unwrap();
    assert_eq!(t.wait("nice"), "137\n");
}

#[test]
fn a_task_runs_on_its_image_when_the_state_directory_was_given_as_a_relative_path() {
    // `ctrfs mount mnt --root state`, typed in the directory holding both: the snapshot's
    // mounts and the task's root filesystem must still be absolute paths, as runc needs.
    let t = Tasks::with(MountFixture::with_relative_paths());
    crate::oci::import_by_copying(&t, crate::oci_fixture::two_layer_layout(), "latest", "rel/busybox");
    crate::oci::image_container(&t, "rel", "rel/busybox", "echo hi");
    let (code, _, err) = t.sh("touch tasks/rel");
    assert_eq!(code, 0, "the start: {err}");
    assert_eq!(t.wait("rel"), "0\n");
    assert_eq!(read(&t.path("logs/rel/stdout")), "hi\n");
    // overlay's upperdir, or the copying snapshotter's bind source: absolute, in the state.
    let files = crate::oci::snapshot_files(&t, "rel-root");
    assert!(files.is_absolute() && files.starts_with(t.state()), "{}", files.display());
}

#[test]
fn signals_pause_resume_and_start_again() {
    let t = Tasks::new();
    // The first process of a pid namespace ignores signals it installed no handler for.
    t.container("sig", "trap 'exit 143' TERM; echo started; while true; do sleep 0.05; done");
    t.start("sig");
    assert_eq!(t.status("sig")["status"], "running");
    wait_until(TASK_DEADLINE, "stdout to show the start", || read(&t.path("logs/sig/stdout")) == "started\n");
    t.control("sig", "pause").unwrap();
    assert_eq!(t.status("sig")["status"], "paused");
    assert_eq!(errno_of(t.control("sig", "pause")), libc::EBUSY);
    t.control("sig", "resume").unwrap();
    assert_eq!(t.status("sig")["status"], "running");
    assert_eq!(errno_of(t.control("sig", "start")), libc::EBUSY);
    assert_eq!(errno_of(t.control("sig", "FROB")), libc::EINVAL);
    let (code, _, err) = t.sh("echo TERM > tasks/sig");
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.wait("sig"), "143\n");
    assert_eq!(errno_of(t.control("sig", "KILL")), libc::ESRCH);
    // Start again: a fresh process, appending to the same logs.
    t.control("sig", "start").unwrap();
    t.wait_status("sig", "running");
    wait_until(TASK_DEADLINE, "the second start in stdout", || read(&t.path("logs/sig/stdout")) == "started\nstarted\n");
    t.control("sig", "SIGKILL").unwrap();
    assert_eq!(t.wait("sig"), "137\n");
}

#[test]
fn a_restart_keeps_earlier_runs_logs_and_a_failed_one_keeps_the_stopped_run() {
    let mut t = Tasks::new();
    t.container("again", "echo one; echo e1 >&2; exit 3");
    t.start("again");
    assert_eq!(t.wait("again"), "3\n");
    t.set_spec("again", &spec(&["/bin/sh", "-c", "echo two; exit 4"]));
    t.control("again", "start").unwrap();
    assert_eq!(t.wait("again"), "4\n");
    assert_eq!(read(&t.path("logs/again/stdout")), "one\ntwo\n", "the first run's lines stay");
    assert_eq!(read(&t.path("logs/again/stderr")), "e1\n");
    let stopped = t.status("again");
    // The spec was made invalid meanwhile: for runc (EIO), then for ctrfs itself (EINVAL).
    t.set_spec("again", &spec(&["/bin/not-there"]));
    assert_eq!(errno_of(t.control("again", "start")), libc::EIO);
    assert!(t.log().contains("not-there"), "runc's message is logged:\n{}", t.log());
    let mut no_args = spec(&["/bin/true"]);
    no_args["process"]["args"] = json!([]);
    t.set_spec("again", &no_args);
    assert_eq!(errno_of(t.control("again", "start")), libc::EINVAL);
    for _ in 0..2 {
        assert_eq!(t.status("again"), stopped, "the stopped run, its exit status and times stay");
        assert_eq!(t.wait("again"), "4\n");
        assert_eq!(read(&t.path("logs/again/stdout")), "one\ntwo\n", "logs as they were");
        assert_eq!(read(&t.path("logs/again/stderr")), "e1\n", "runc's own error is not in the task's log");
        // And so after a restart of the daemon.
        t.fixture().remount();
    }
    t.set_spec("again", &spec(&["/bin/sh", "-c", "echo three"]));
    t.control("again", "start").unwrap();
    assert_eq!(t.wait("again"), "0\n");
    assert_eq!(read(&t.path("logs/again/stdout")), "one\ntwo\nthree\n");
}

#[test]
fn rm_deletes_running_and_stopped_tasks_and_a_task_keeps_its_container_busy() {
    let t = Tasks::new();
    t.container("busy", "exec sleep 1000");
    t.start("busy");
    assert_eq!(errno_of(fs::remove_dir(t.path("containers/busy"))), libc::EBUSY);
    assert_eq!(t.sh("rm -r containers/busy").0, 1, "rm -r must fail while the task exists");
    let (code, _, err) = t.sh("rm tasks/busy");
    assert_eq!(code, 0, "{err}");
    assert!(!t.path("tasks/busy").exists() && !t.path("logs/busy").exists() && !t.path("wait/busy").exists());
    assert!(!t.state().join("tasks/busy").exists(), "logs and bundle are removed with the task");
    t.container("done", "exit 0");
    t.start("done");
    assert_eq!(t.wait("done"), "0\n");
    fs::remove_file(t.path("tasks/done")).unwrap();
    fs::remove_dir(t.path("containers/busy")).unwrap();
    let (code, _, err) = t.sh("rm -r containers/done");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn refusals_at_start_and_control_have_their_errno() {
    let t = Tasks::new();
    assert_eq!(errno_of(create(&t.path("tasks/nope"))), libc::ENOENT);
    fs::create_dir(t.path("containers/nospec")).unwrap();
    assert_eq!(errno_of(create(&t.path("tasks/nospec"))), libc::EINVAL);
    let mut no_args = spec(&["/bin/true"]);
    no_args["process"]["args"] = json!([]);
    t.set_spec("nospec", &no_args);
    assert_eq!(errno_of(create(&t.path("tasks/nospec"))), libc::EINVAL);
    let mut terminal = spec(&["/bin/true"]);
    terminal["process"]["terminal"] = json!(true);
    t.set_spec("nospec", &terminal);
    assert_eq!(errno_of(create(&t.path("tasks/nospec"))), libc::EINVAL);
    t.fx.assert_logged("tasks/nospec", libc::EINVAL);
    // runc itself fails: the binary is not in the root filesystem.
    t.set_spec("nospec", &spec(&["/bin/not-there"]));
    assert_eq!(errno_of(create(&t.path("tasks/nospec"))), libc::EIO);
    assert!(t.log().contains("not-there"), "runc's own message is logged:\n{}", t.log());
    assert!(!t.path("tasks/nospec").exists(), "a failed start leaves no task");
    assert_eq!(t.sh("mkdir tasks/x").0, 1);
}

#[test]
fn every_waiter_wakes_and_an_interrupted_one_leaves_the_daemon_well() {
    let mut t = Tasks::new();
    // The daemon says when it parked a read: a signal that lands before the daemon took
    // the request is the kernel's to handle (it drops the request, the daemon never sees it).
    t.fx.set_daemon_env("RUST_LOG", Some("info,ctrfs::fs::wait=debug"));
    t.fx.remount();
    t.container("w", "read line < /dev/stdin; exec sleep 1000");
    t.start("w");
    let waiters: Vec<_> = (0..3)
        .map(|_| Command::new("cat").arg(t.path("wait/w")).stdout(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    // One more waiter, interrupted with SIGINT as Ctrl-C would. A shell's background job
    // (CI may run the suite as one) inherits SIGINT ignored: give cat the default action.
    let mut command = Command::new("cat");
    command.arg(t.path("wait/w"));
    // SAFETY: signal() with constant arguments is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut interrupted = command.spawn().unwrap();
    let parked = format!("read of a wait file by pid {} parked", interrupted.id());
    t.fx.wait_for_log_line("the interrupted reader's read to be parked", |l| l.contains(&parked));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(interrupted.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = wait_child_status(&mut interrupted);
    assert!(!status.success(), "the interrupted cat ends");
    let interrupted_line = format!("read of a wait file by pid {} interrupted", interrupted.id());
    t.fx.wait_for_log_line("the interrupted read", |l| l.contains(&interrupted_line));
    assert_eq!(t.status("w")["status"], "running", "the daemon still answers");
    t.control("w", "KILL").unwrap();
    for waiter in waiters {
        let out = waiter.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "137\n");
    }
}

fn wait_child_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(TASK_DEADLINE, "the child to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

#[test]
fn tasks_outlive_the_daemon_and_exits_while_it_is_down_are_reported() {
    let mut t = Tasks::new();
    t.container("ticker", "while true; do echo tick; sleep 0.05; done");
    t.container("victim", "trap 'exit 143' TERM; while true; do sleep 0.05; done");
    t.start("ticker");
    t.start("victim");
    let victim_pid = t.status("victim")["pid"].as_u64().unwrap() as i32;
    let ticker_log = t.state().join("tasks/ticker/stdout");
    let log_size = || fs::metadata(&ticker_log).map(|m| m.len()).unwrap_or(0);
    t.fx.kill9_and_remount();
    // Down and up again: make the victim exit while nobody watches.
    t.fx.kill9_and_remount_with(|| {
        // From the host, as a user's `kill` would; the task's trap turns it into exit 143.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim_pid), nix::sys::signal::Signal::SIGTERM).unwrap();
        wait_until(TASK_DEADLINE, "the victim's exit", || !Path::new(&format!("/proc/{victim_pid}")).exists());
    });
    assert_eq!(t.status("ticker")["status"], "running");
    let before = log_size();
    wait_until(TASK_DEADLINE, "the ticker's log to keep growing", || log_size() > before);
    assert_eq!(t.status("victim")["status"], "stopped");
    assert_eq!(t.status("victim")["exit_status"], 143);
    assert_eq!(t.wait("victim"), "143\n");
    // A clean unmount leaves tasks running too.
    t.fx.remount();
    assert_eq!(t.status("ticker")["status"], "running");
    t.control("ticker", "KILL").unwrap();
    assert_eq!(t.wait("ticker"), "137\n");
}

#[test]
fn a_task_whose_supervisor_died_is_reported_not_dropped() {
    let mut t = Tasks::new();
    t.container("orphan", "exec sleep 1000");
    t.start("orphan");
    let supervisor = supervisor_of(&t.state(), "orphan");
    t.fx.kill9_and_remount_with(|| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
        wait_until(TASK_DEADLINE, "the supervisor to die", || !Path::new(&format!("/proc/{supervisor}")).exists());
    });
    let status = t.status("orphan");
    assert!(status["status"] == "unknown" || (status["status"] == "stopped" && status["exit_status"].is_null()), "{status}");
    let (code, _, err) = t.sh("rm tasks/orphan");
    assert_eq!(code, 0, "{err}");
}

/// The supervisor of task `id`: the process whose command line is `ctrfs supervise` with
/// this task's state directory.
fn supervisor_of(state: &Path, id: &str) -> i32 {
    let marker = state.join("tasks").join(id);
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        // By the task's state directory, unique to this test: ids repeat across test runs.
        if args.iter().any(|a| a == "supervise") && args.iter().any(|a| a.contains(&*marker.to_string_lossy())) {
            return pid;
        }
    }
    panic!("no supervisor for {id}");
}

/// `cat wait/<id>` started now, and waited for until it blocks in the FUSE request.
fn blocked_wait_reader(t: &Tasks, id: &str) -> std::process::Child {
    let reader = Command::new("cat").arg(t.path(&format!("wait/{id}"))).stdout(std::process::Stdio::piped()).spawn().unwrap();
    wait_until(TASK_DEADLINE, "the reader to block in the FUSE request", || {
        fs::read_to_string(format!("/proc/{}/wchan", reader.id())).is_ok_and(|w| w.contains("request_wait_answer"))
    });
    reader
}

fn assert_task_gone(t: &Tasks, id: &str) {
    for view in [format!("tasks/{id}"), format!("logs/{id}"), format!("wait/{id}")] {
        assert_eq!(errno_of(fs::metadata(t.path(&view))), libc::ENOENT, "{view} is gone");
    }
    assert!(!ls(&t.path("tasks")).contains(&id.to_owned()));
    let runc = Command::new("runc").arg("--root").arg(t.state().join("runc")).args(["state", id]).output().unwrap();
    assert!(!runc.status.success(), "runc has no container {id}");
    assert!(!t.state().join("tasks").join(id).exists(), "its task directory (logs, exit record) is gone");
}

#[test]
fn a_container_labelled_rm_has_its_task_deleted_when_it_exits_and_waiters_get_the_status() {
    let t = Tasks::new();
    t.container("auto", "echo hello; exec sleep 1000");
    put(&t.path("containers/auto/labels"), "ctrfs.io/rm=true\n");
    t.start("auto");
    wait_until(TASK_DEADLINE, "the task's first line", || fs::read_to_string(t.path("logs/auto/stdout")).is_ok_and(|s| s == "hello\n"));
    let log = fs::File::open(t.path("logs/auto/stdout")).unwrap();
    let reader = blocked_wait_reader(&t, "auto");
    t.control("auto", "KILL").unwrap();
    let out = reader.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "137\n", "the blocked waiter is given the exit status");
    // The daemon removes the three names on its own, one notice after another: each is
    // waited for (no request of the test's was acknowledged with them).
    let gone = |view: &str| !t.path(view).exists();
    wait_until(TASK_DEADLINE, "the task to be deleted", || gone("tasks/auto") && gone("logs/auto") && gone("wait/auto"));
    assert_task_gone(&t, "auto");
    assert!(t.log().contains("task auto deleted on exit (ctrfs.io/rm=true)"), "logged");
    assert!(log.metadata().is_ok(), "an open log answers from its tombstone, as after rm");
    // The container stays, and runs again (and goes again).
    assert!(t.path("containers/auto/spec").exists());
    t.set_spec("auto", &spec(&["/bin/sh", "-c", "exit 3"]));
    fs::File::create(t.path("tasks/auto")).expect("the quick task starts");
    wait_until(TASK_DEADLINE, "the quick task to be deleted", || {
        t.log().matches("task auto deleted on exit").count() == 2 && gone("tasks/auto") && gone("logs/auto") && gone("wait/auto")
    });
    assert_task_gone(&t, "auto");
    // Without the label (or with another value) the task stays stopped.
    put(&t.path("containers/auto/labels"), "ctrfs.io/rm=false\n");
    t.start("auto");
    t.wait_status("auto", "stopped");
    assert_eq!(t.status("auto")["exit_status"], 3);
}

#[test]
fn a_task_labelled_rm_that_exits_while_the_daemon_is_down_is_deleted_at_the_next_start() {
    let mut t = Tasks::new();
    t.container("down", "exec sleep 1000");
    put(&t.path("containers/down/labels"), "ctrfs.io/rm=true\n");
    t.start("down");
    let pid = t.status("down")["pid"].as_i64().unwrap() as i32;
    t.fixture().kill9_and_remount_with(|| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        wait_until(TASK_DEADLINE, "the task's process to end", || !Path::new(&format!("/proc/{pid}")).exists());
    });
    wait_until(TASK_DEADLINE, "the task to be deleted", || !t.path("tasks/down").exists());
    assert_task_gone(&t, "down");
}

/// Under systemd the daemon has `NOTIFY_SOCKET`; a task must neither see it nor wait for
/// it (runc, given it, makes a start wait for the container's own READY=1; found by review).
#[test]
fn systemd_s_notify_socket_never_reaches_a_task() {
    let mut t = Tasks::new();
    let socket_path = t.root().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    t.fixture().set_daemon_env("NOTIFY_SOCKET", Some(socket_path.to_str().unwrap()));
    t.fixture().remount();
    let mut buf = [0u8; 256];
    socket.set_read_timeout(Some(DAEMON_DEADLINE)).unwrap();
    let len = socket.recv(&mut buf).unwrap();
    let ready = String::from_utf8_lossy(&buf[..len]).into_owned();
    assert!(ready.contains("READY=1"), "{ready:?}");
    t.container("env", "env");
    t.start("env");
    assert_eq!(t.wait("env"), "0\n", "the task ran to its end without waiting");
    let env = fs::read_to_string(t.path("logs/env/stdout")).unwrap();
    assert!(env.contains("PATH="), "the task printed its environment: {env:?}");
    assert!(!env.contains("NOTIFY_SOCKET"), "{env:?}");
}
