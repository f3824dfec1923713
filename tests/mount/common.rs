//! The mount fixture and small helpers shared by every test module.
//!
//! Each test owns one `MountFixture`: a temp dir holding `state/` (the LMDB env), `mnt/`
//! (the mount point) and `daemon.log` (the daemon's stderr, shown on failure). Processes are
//! only ever signalled by their own PID and mounts only ever detached by their own path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long the daemon may take to mount, unmount or exit.
pub const DAEMON_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// Fails (rather than skips) when not root: FUSE mounts and the uid switches need it, and
/// a silently skipped test would claim coverage it does not give.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "the mount tests must run as root (euid is {euid}): they mount FUSE filesystems \
             without fusermount and switch to uid 65534 for permission checks; run them with \
             `sudo -E cargo test --test mount` or via scripts/test.sh"
        );
    }
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// Runs `sh -c script` in `dir`; returns (exit code, stdout, stderr). A signal death gives
/// 128 + signal, as a shell would report it.
pub fn sh(dir: &Path, script: &str) -> (i32, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh -c {script:?}: {e}"));
    (
        exit_code(out.status),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Like `sh` but asserts exit 0 and returns stdout.
pub fn sh_ok(dir: &Path, script: &str) -> String {
    let (code, out, err) = sh(dir, script);
    assert_eq!(
        code, 0,
        "sh -c {script:?} failed\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// The errno of a failed call; panics when it succeeded.
pub fn errno_of<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => panic!("expected the call to fail, it succeeded"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("error without an OS code: {e}")),
    }
}

/// The errno name used in assertion messages and log checks.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EINVAL => "EINVAL",
        libc::EEXIST => "EEXIST",
        libc::ENOENT => "ENOENT",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EBUSY => "EBUSY",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EFBIG => "EFBIG",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSPC => "ENOSPC",
        libc::EIO => "EIO",
        libc::EINTR => "EINTR",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        other => return format!("errno {other}"),
    };
    name.to_string()
}

/// The syscall at which a document write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Open,
    Write,
    Close,
}

/// How a document file is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `>`: O_CREAT | O_TRUNC
    Truncate,
    /// `>>`: O_CREAT | O_APPEND
    Append,
    /// O_WRONLY alone: positional writes over the current content
    InPlace,
}

/// Opens, writes and closes `path`, reporting which syscall failed. The close is done with
/// `libc::close` because std's `File` drop ignores errors, and the daemon judges incomplete
/// documents at close (FUSE flush).
pub fn write_doc(path: &Path, data: &[u8], mode: Mode) -> Result<(), (Stage, i32)> {
    let mut opts = OpenOptions::new();
    match mode {
        Mode::Truncate => opts.write(true).create(true).truncate(true),
        Mode::Append => opts.append(true).create(true),
        Mode::InPlace => opts.write(true),
    };
    let mut file = opts.open(path).map_err(|e| (Stage::Open, os_code(&e)))?;
    if let Err(e) = file.write_all(data) {
        // The write's error is the one that matters; the fd still gets closed.
        drop(file);
        return Err((Stage::Write, os_code(&e)));
    }
    close_checked(file).map_err(|errno| (Stage::Close, errno))
}

/// Closes a file and returns close()'s errno on failure.
pub fn close_checked(file: File) -> Result<(), i32> {
    let fd = file.into_raw_fd();
    // SAFETY: fd was just released by `File`, so it is open and owned by nobody else.
    let rc = unsafe { libc::close(fd) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

fn os_code(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("error without an OS code: {e}"))
}

/// `>`: replaces the document; panics on any refusal.
pub fn put(path: &Path, data: impl AsRef<[u8]>) {
    if let Err((stage, errno)) = write_doc(path, data.as_ref(), Mode::Truncate) {
        panic!(
            "writing {} failed at {stage:?} with {}",
            path.display(),
            errno_name(errno)
        );
    }
}

/// `>>`: appends to the document; panics on any refusal.
pub fn append(path: &Path, data: impl AsRef<[u8]>) {
    if let Err((stage, errno)) = write_doc(path, data.as_ref(), Mode::Append) {
        panic!(
            "appending to {} failed at {stage:?} with {}",
            path.display(),
            errno_name(errno)
        );
    }
}

/// Reads a file as UTF-8; panics naming the path on failure.
pub fn read(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()))
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = read(path);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

/// A valid OCI descriptor whose digest is derived from `seed` (so tests can tell them apart).
pub fn descriptor(seed: u8) -> serde_json::Value {
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32)),
        "size": 1000 + u64::from(seed),
    })
}

/// Parses an RFC 3339 timestamp from info.json.
pub fn parse_time(v: &serde_json::Value) -> SystemTime {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("bad timestamp {text:?}: {e}"))
}

/// Whole seconds since the epoch.
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .expect("time after the epoch")
        .as_secs()
}

/// One FUSE mount of the daemon under test.
pub struct MountFixture {
    /// `None` only once deliberately leaked (a mount that could not be detached).
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    /// A tmpfs this fixture mounted on the state directory: unmounted (by its path) in
    /// Drop, after the daemon stopped and before the temp dir is removed.
    state_tmpfs: bool,
    /// Extra environment of the daemon from its next start on (the fault tests' `CTRFS_FAULT`).
    env: Vec<(String, String)>,
    /// Another fixture's state directory, shared (a second namespace's mount).
    shared_state: Option<PathBuf>,
    /// The daemon is started in the temp dir with `mnt` and `--root state`, as a user in
    /// that directory would type them.
    relative_paths: bool,
}

/// How a fixture is made (the constructors below set one or two of these).
#[derive(Default)]
struct Build<'a> {
    /// Extra `ctrfs mount` options.
    args: &'a [&'a str],
    /// The size of a tmpfs mounted on the state directory first.
    tmpfs: Option<&'a str>,
    /// Another fixture's state directory, to share.
    shared_state: Option<PathBuf>,
    /// Start the daemon with relative paths (see `MountFixture::relative_paths`).
    relative_paths: bool,
}

impl MountFixture {
    /// A mount with the default options.
    pub fn new() -> Self {
        Self::with_args(&[])
    }

    /// A mount with extra `ctrfs mount` options (e.g. `--allow-other`).
    pub fn with_args(args: &[&str]) -> Self {
        Self::build(Build { args, ..Build::default() })
    }

    /// A mount whose state directory is a tmpfs of `size` (`64m`...), mounted before the
    /// daemon starts: a small filesystem to fill.
    pub fn with_small_state(size: &str) -> Self {
        Self::build(Build { tmpfs: Some(size), ..Build::default() })
    }

    /// A second mount of `other`'s state directory with `args` (e.g. `--namespace b`):
    /// its own mount point and log. Drop it before `other`.
    pub fn sharing_state_of(other: &MountFixture, args: &[&str]) -> Self {
        Self::build(Build { args, shared_state: Some(other.state()), ..Build::default() })
    }

    /// A mount started from the temp dir as `ctrfs mount mnt --root state`.
    pub fn with_relative_paths() -> Self {
        Self::build(Build { relative_paths: true, ..Build::default() })
    }

    fn build(Build { args, tmpfs, shared_state, relative_paths }: Build<'_>) -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("ctrfs-mount-")
            .tempdir()
            .expect("create temp dir");
        // Canonical, because mountinfo shows resolved paths.
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        // uid 65534 must traverse to the mount point in the permission tests.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        fs::create_dir(root.join("state")).expect("create state dir");
        fs::create_dir(root.join("mnt")).expect("create mount point");
        let mut fx = MountFixture {
            dir: Some(dir),
            root,
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            state_tmpfs: false,
            env: Vec::new(),
            shared_state,
            relative_paths,
        };
        if let Some(size) = tmpfs {
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
                .arg(fx.state())
                .output()
                .expect("run mount");
            assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
            fx.state_tmpfs = true;
        }
        // The fixture exists before the wait, so a failed start is still cleaned up by Drop.
        fx.spawn();
        fx
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }

    /// The state directory (`--root`).
    pub fn state(&self) -> PathBuf {
        self.shared_state.clone().unwrap_or_else(|| self.root.join("state"))
    }

    /// The temp dir holding state, mount point and log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path under the mount point.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt().join(rel)
    }

    /// The pid of the running daemon (a new one after each restart).
    pub fn daemon_pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Everything the daemon wrote to stderr/stdout so far, across restarts.
    pub fn log(&self) -> String {
        fs::read(self.root.join("daemon.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs a shell script with the mount point as current directory.
    pub fn sh(&self, script: &str) -> (i32, String, String) {
        sh(&self.mnt(), script)
    }

    /// Runs a shell script in the mount point and asserts exit 0; returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        sh_ok(&self.mnt(), script)
    }

    /// Waits until the daemon's log has a line satisfying `pred`; panics with the log.
    pub fn wait_for_log_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        // The line may be written just after the reply reaches us, hence a wait, not a read.
        let start = Instant::now();
        loop {
            if self.log().lines().any(&pred) {
                return;
            }
            if start.elapsed() > Duration::from_secs(5) {
                panic!("the daemon log has no line {what}; log:\n{}", self.log());
            }
            thread::sleep(POLL);
        }
    }

    /// Asserts the log names `rel` (a path under the mount) and `errno`, by its name or its
    /// strerror text, on one line.
    pub fn assert_logged(&self, rel: &str, errno: i32) {
        let name = errno_name(errno).to_ascii_lowercase();
        let text = io::Error::from_raw_os_error(errno)
            .to_string()
            .to_ascii_lowercase();
        // std appends " (os error N)"; the daemon's text need not.
        let text = text.split(" (os error").next().unwrap_or("").to_string();
        self.wait_for_log_line(&format!("naming {rel} and {}", errno_name(errno)), |line| {
            let l = line.to_ascii_lowercase();
            l.contains(&rel.to_ascii_lowercase()) && (l.contains(&name) || l.contains(&text))
        });
    }

    /// Stops the daemon with SIGTERM (which must unmount and exit 0) and starts it again on
    /// the same state directory.
    pub fn remount(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        let status = stop_with_sigterm(&mut child);
        let status = match status {
            Some(s) => s,
            None => {
                // Keep it for Drop, which escalates to SIGKILL.
                self.child = Some(child);
                panic!(
                    "daemon did not exit within {DAEMON_DEADLINE:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
        };
        assert!(
            status.success(),
            "daemon ended uncleanly on SIGTERM ({status}); log:\n{}",
            self.log()
        );
        let mnt = self.mnt();
        wait_until(
            DAEMON_DEADLINE,
            "the mount to go away after SIGTERM",
            || !is_mounted(&mnt),
        );
        self.spawn();
    }

    /// Kills the daemon with SIGKILL, detaches the dead mount, and starts it again.
    pub fn kill9_and_remount(&mut self) {
        self.kill9_and_remount_with(|| {});
    }

    /// Like `kill9_and_remount`, running `while_down` between the kill and the restart.
    pub fn kill9_and_remount_with(&mut self, while_down: impl FnOnce()) {
        let mut child = self.child.take().expect("daemon running");
        signal(&child, Signal::SIGKILL);
        child.wait().expect("reap killed daemon");
        let mnt = self.mnt();
        // The FUSE connection died with the daemon; only a lazy detach can remove it.
        lazy_umount(&mnt);
        wait_until(DAEMON_DEADLINE, "the dead mount to be detached", || {
            !is_mounted(&mnt)
        });
        while_down();
        self.spawn();
    }

    /// Sets (or with `None` removes) a variable of the daemon's environment; it applies
    /// from the next start (`remount`, `kill9_and_remount`, `await_abort_and_remount`).
    pub fn set_daemon_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Waits for the daemon to die on its own of SIGABRT (a fault point's abort), detaches
    /// the dead mount, runs `while_down`, and starts it again. Panics with the log when it
    /// does not die within the deadline, or dies of anything else.
    pub fn await_abort_and_remount(&mut self, while_down: impl FnOnce()) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().expect("daemon running");
        let Some(status) = wait_child(&mut child, DAEMON_DEADLINE) else {
            self.child = Some(child);
            panic!("the daemon did not abort within {DAEMON_DEADLINE:?}; log:\n{}", self.log());
        };
        assert_eq!(status.signal(), Some(libc::SIGABRT), "the daemon died of SIGABRT ({status}); log:\n{}", self.log());
        let mnt = self.mnt();
        lazy_umount(&mnt);
        wait_until(DAEMON_DEADLINE, "the dead mount to be detached", || !is_mounted(&mnt));
        while_down();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .expect("open daemon.log");
        let log2 = log.try_clone().expect("dup daemon.log");
        let mnt = self.mnt();
        let (mnt_arg, state_arg) = match self.relative_paths {
            true => (PathBuf::from("mnt"), PathBuf::from("state")),
            false => (mnt.clone(), self.state()),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
            .current_dir(&self.root)
            .arg("mount")
            .arg(&mnt_arg)
            .arg("--root")
            .arg(&state_arg)
            .arg("--foreground")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log2))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ctrfs");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if is_mounted(&mnt) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "ctrfs exited before mounting ({status}); log:\n{}",
                    self.log()
                );
            }
            if start.elapsed() > DAEMON_DEADLINE {
                panic!(
                    "{} did not appear in /proc/self/mountinfo within {DAEMON_DEADLINE:?}; log:\n{}",
                    mnt.display(),
                    self.log()
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for MountFixture {
    fn drop(&mut self) {
        // No panics here: Drop also runs while a failed test unwinds.
        if thread::panicking() {
            // The daemon's side of a failure; the tail is enough and keeps output readable.
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "--- daemon log ({}), last 40 lines ---\n{tail}",
                self.root.join("daemon.log").display()
            );
        }
        if let Some(mut child) = self.child.take() {
            if stop_with_sigterm(&mut child).is_none() {
                signal(&child, Signal::SIGKILL);
                let _ = child.wait();
            }
        }
        let mnt = self.mnt();
        if is_mounted(&mnt) {
            lazy_umount(&mnt);
        }
        if self.state_tmpfs {
            // The daemon is gone, so nothing holds it; lazily, so a stray open file of a
            // failed test cannot keep the temp dir from being cleaned.
            lazy_umount(&self.state());
        }
        let gone = {
            let start = Instant::now();
            loop {
                if !is_mounted(&mnt) {
                    break true;
                }
                if start.elapsed() > DAEMON_DEADLINE {
                    break false;
                }
                thread::sleep(POLL);
            }
        };
        if !gone {
            // Removing the temp dir would walk into a live mount; leave it for inspection.
            eprintln!(
                "ctrfs test: {} is still mounted; leaving {}",
                mnt.display(),
                self.root.display()
            );
            std::mem::forget(self.dir.take());
        }
    }
}

fn signal(child: &Child, sig: Signal) {
    // ESRCH cannot happen for an unreaped child; other errors are not actionable in tests.
    let _ = kill(Pid::from_raw(child.id() as i32), sig);
}

/// Waits for the child to exit within `deadline`; `None` if it is still running.
/// SIGTERM, again each second until `DAEMON_DEADLINE`: a mount is busy for a moment when
/// another test's thread forks while this one has a file open on it (the child holds a
/// copy of the descriptor until its exec), and the daemon then serves on until signalled
/// again, as a user would retry.
fn stop_with_sigterm(child: &mut Child) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < DAEMON_DEADLINE {
        signal(child, Signal::SIGTERM);
        if let Some(status) = wait_child(child, Duration::from_secs(1)) {
            return Some(status);
        }
    }
    None
}

fn wait_child(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

fn lazy_umount(mnt: &Path) {
    let out = Command::new("umount").arg("-l").arg(mnt).output();
    if let Ok(out) = out {
        if !out.status.success() {
            eprintln!(
                "umount -l {} failed: {}",
                mnt.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Whether `/proc/self/mountinfo` lists `mnt` as a mount point (field 5).
pub fn is_mounted(mnt: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let want = mnt.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| unescape_mountinfo(field) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every path under `dir`, relative and sorted (directories included, `dir` itself not).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_into(dir, dir, &mut out);
    out.sort();
    out
}

fn walk_into(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let path = entry.path();
        out.push(path.strip_prefix(base).unwrap().to_path_buf());
        if entry.file_type().expect("file type").is_dir() {
            walk_into(base, &path, out);
        }
    }
}

/// Names in a directory, sorted.
pub fn ls(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn cpath(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn cname(name: &str) -> std::ffi::CString {
    std::ffi::CString::new(name).expect("xattr name without NUL")
}

/// `setxattr(2)` with `flags` (0, `libc::XATTR_CREATE` or `libc::XATTR_REPLACE`).
pub fn set_xattr(path: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (cpath(path), cname(name));
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getxattr(2)`: asks for the size first, then reads the value.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (p, n) = (cpath(path), cname(name));
    // SAFETY: a null buffer with size 0 asks only for the value's length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: buf has exactly buf.len() writable bytes.
    let got = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf)
}

/// `listxattr(2)`: the names, in the order the daemon gives them.
pub fn list_xattr(path: &Path) -> io::Result<Vec<String>> {
    let p = cpath(path);
    // SAFETY: a null buffer with size 0 asks only for the list's length.
    let len = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: buf has exactly buf.len() writable bytes.
    let got = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// `removexattr(2)`.
pub fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (cpath(path), cname(name));
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs a shell script as uid/gid 65534 with no supplementary groups, in `dir`.
pub fn sh_as_nobody(dir: &Path, script: &str) -> (i32, String, String) {
    let quoted = script.replace('\'', r"'\''");
    sh(
        dir,
        &format!("exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '{quoted}'"),
    )
}

/// The attribute files a container lists once every field is set (`info.json` is
/// reachable by name only), sorted as `ls` sorts them.
pub const CONTAINER_FIELD_FILES: [&str; 6] = ["image", "labels", "runtime", "snapshot", "snapshotter", "spec"];

/// Sets every writable field of container `id` (which must exist), so each of its
/// attribute files exists: a field without a value has no file. The key is written before
/// the image, and names no image that exists here, so it is only recorded (it would be
/// prepared when a task starts); keys are per container (`{id}-root`), so several
/// containers can be set up this way without one holding another's key.
pub fn set_container_fields(fx: &MountFixture, id: &str) {
    let p = |f: &str| fx.path(&format!("containers/{id}/{f}"));
    put(&p("spec"), r#"{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/"}}"#);
    put(&p("snapshot"), format!("{id}-root\n"));
    put(&p("image"), "docker.io/library/busybox:1.36\n");
    put(&p("snapshotter"), "overlayfs\n");
    put(&p("runtime"), "runc\n");
    put(&p("labels"), "env=test\n");
    assert_eq!(
        ls(&fx.path(&format!("containers/{id}"))),
        CONTAINER_FIELD_FILES,
        "every field of {id} is set"
    );
}
