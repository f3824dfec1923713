//! The mount's lifecycle: lock the state directory, open the store, mount, serve on
//! several threads, and unmount cleanly on SIGTERM/SIGINT/SIGHUP or an external `umount`.
//!
//! Without `--foreground` the command re-runs itself in the foreground in a new session,
//! with its log in `STATE_DIR/ctrfs.log`, and returns once the child says the mount is live.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use std::ffi::OsStr;
use std::sync::mpsc::Receiver;

use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use crate::fs::fuse::FuseAdapter;
use crate::fs::notify::{Notice, Queued};
use crate::fs::FsCore;
use crate::service::{ResourceConfig, Resources, Services};
use crate::snapshot::Driver;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::state_dir;
use crate::store::Store;

/// Arguments of `ctrfs mount`.
#[derive(Debug, Clone, clap::Args)]
pub struct MountArgs {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// State directory holding the LMDB environment and the daemon log.
    #[arg(long, value_name = "STATE_DIR", default_value = "/var/lib/ctrfs")]
    pub root: PathBuf,
    /// Number of FUSE request threads (requests that may take long run on a separate,
    /// growing pool of workers).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Let users other than root see the mount (FUSE allow_other).
    #[arg(long)]
    pub allow_other: bool,
    /// Stay in the foreground and log to stderr.
    #[arg(long)]
    pub foreground: bool,
    /// The namespace the mount shows (containerd's): its objects live in a store of their
    /// own; the same id in two namespaces is two objects. Made at its first mount.
    #[arg(long, value_name = "NAME", default_value = crate::model::DEFAULT_NAMESPACE, value_parser = parse_namespace)]
    pub namespace: String,
    /// The OCI runtime binary that runs tasks (runc, or a compatible one such as crun).
    #[arg(long, value_name = "PATH", default_value = "runc")]
    pub runtime: PathBuf,
    /// How snapshots are stored: overlayfs, or native (full copies). Default: overlayfs
    /// where it mounts in the state directory, native otherwise.
    #[arg(long, value_name = "NAME", value_parser = ["overlayfs", "native"])]
    pub snapshotter: Option<String>,
    /// How long a blob nothing references yet is kept (so an image can be copied in file
    /// by file before its target is written), e.g. 24h, 30m, 0s.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub content_lease: std::time::Duration,
}

fn parse_namespace(name: &str) -> Result<String, String> {
    crate::model::validate_namespace(name).map_err(|e| e.to_string())?;
    Ok(name.to_owned())
}

/// Startup failures, with the context a user needs.
pub type DaemonError = Box<dyn std::error::Error + Send + Sync>;

/// Set in the environment of the background child: print this line on stdout once mounted.
const READY_ENV: &str = "CTRFS_READY_LINE";

/// A test knob: how many events the journal keeps (default 10,000), so that a test can
/// make a reader fall behind the window without committing ten thousand changes.
const EVENTS_KEPT_ENV: &str = "CTRFS_EVENTS_KEPT";

/// The store's settings, from the environment's test knob.
fn store_options(namespace: &str) -> Result<crate::store::StoreOptions, String> {
    let mut options = crate::store::StoreOptions { namespace: namespace.to_owned(), ..Default::default() };
    if let Some(value) = std::env::var_os(EVENTS_KEPT_ENV) {
        let kept = value.to_str().and_then(|v| v.parse::<u64>().ok()).filter(|n| *n > 0);
        options.events_kept = kept.ok_or_else(|| format!("{EVENTS_KEPT_ENV} must be a positive number, not {value:?}"))?;
        log::info!("the event journal keeps the last {} events ({EVENTS_KEPT_ENV})", options.events_kept);
    }
    Ok(options)
}
const READY_LINE: &str = "ctrfs-ready";

/// Runs the daemon in this process until the filesystem is unmounted.
pub fn run_foreground(args: &MountArgs) -> Result<(), DaemonError> {
    // Block the stop signals before any thread exists (the runtime's watcher is one), so
    // every thread inherits the mask and only the waiter below receives them.
    let stop_signals = stop_signal_set();
    stop_signals.thread_block()?;
    state_dir::restrict_umask();
    match state_dir::make_namespace_private(&args.root, &args.namespace) {
        Ok(None) => {}
        Ok(Some(old)) => log::warn!(
            "state directory {} was mode {old:04o}, open to other users; tightened to {:04o}",
            args.root.display(),
            state_dir::DIR_MODE
        ),
        Err(e) => return Err(format!("cannot make {} private: {e}", args.root.display()).into()),
    }
    // Absolute from here on: snapshots' mounts and tasks' root filesystems name paths in
    // it, and runc refuses a relative root (`--root state` gave every task on an image's
    // snapshot `EINVAL`, its spec's root.path being `state/.../rootfs/<id>`).
    let state_root = std::fs::canonicalize(&args.root).map_err(|e| format!("cannot resolve {}: {e}", args.root.display()))?;
    // Each namespace has its own store, content, snapshots, tasks and lock: a daemon
    // serves one, and several share a state directory (see docs/design.md, Namespaces).
    let home = state_dir::namespace_dir(&state_root, &args.namespace);
    let _lock = lock_state_dir(&home)?;
    refuse_live_mount(&args.mountpoint)?;
    let store = Store::open_with(&home.join("db"), store_options(&args.namespace)?)
        .map_err(|e| format!("cannot open the store of namespace {}: {e}", args.namespace))?;
    // Supervisors are found again at the next start by the task directory in their
    // command line, so it is spelled the same whatever path `--root` was given as.
    let root = std::fs::canonicalize(&home).map_err(|e| format!("cannot resolve {}: {e}", home.display()))?;
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            runc: args.runtime.clone(),
            state_dir: root.join("tasks"),
            runc_root: root.join("runc"),
            exe: std::env::current_exe()?,
        })
        .map_err(|e| format!("cannot set up the task runtime: {e}"))?,
    );
    // Watch before reconciling, so an exit between the two is not missed.
    let exits = runtime.watch_exits().map_err(|e| format!("cannot watch task exits: {e}"))?;
    let driver = args.snapshotter.as_deref().and_then(Driver::from_name);
    let resources = Resources::open(&ResourceConfig::under(&home, driver, args.content_lease).sharing_content_of(&state_root))
        .map_err(|e| format!("cannot open the content store and snapshots: {e}"))?;
    log::info!("snapshotter {}", resources.snapshotter_name());
    let services = Arc::new(Services::new(Arc::new(store)).with_runtime(runtime).with_resources(resources));
    match services.reconcile_tasks() {
        Ok(0) => {}
        Ok(n) => log::info!("reconciled {n} task(s) with the runtime"),
        Err(e) => log::error!("reconciling tasks: {e}"),
    }
    // Finish what a crash left: ingests, files without records, a collection cut short.
    if let Err(e) = services.recover_resources() {
        // Debris costs disk space, not correctness: serve, and retry at the next start.
        log::error!("start-up recovery of the content store and snapshots did not finish: {e}");
    }
    let core = Arc::new(FsCore::new(Arc::clone(&services)));
    let notices = core.notices().subscribe();
    let inode_notices = core.notices().subscribe_inodes();

    detach_stale_mount(&args.mountpoint);
    let adapter = FuseAdapter::new(Arc::clone(&core))?.with_statfs_of(&state_root);
    let session = Session::new(adapter, &args.mountpoint, &mount_config(args))
        .map_err(|e| format!("cannot mount {}: {e}", args.mountpoint.display()))?;
    log::info!(
        "mounted {} (namespace {}, state {}, {} threads)",
        args.mountpoint.display(),
        args.namespace,
        home.display(),
        args.threads
    );
    announce_ready();
    notify_systemd(&format!("READY=1\nSTATUS=serving {}\nMAINPID={}", args.mountpoint.display(), std::process::id()));

    spawn_inode_notifier(session.notifier(), Arc::clone(&core), inode_notices)?;
    spawn_notifier(session.notifier(), Arc::clone(&core), notices)?;
    spawn_exit_recorder(services, exits)?;
    let mountpoint = absolute(&args.mountpoint);
    std::thread::Builder::new().name("signals".into()).spawn(move || unmount_on_signals(&stop_signals, &mountpoint))?;
    session.run()?;
    log::info!("unmounted {} (tasks keep running)", args.mountpoint.display());
    Ok(())
}

/// Unmounts at each stop signal until an unmount succeeds; the session then ends by
/// itself. A busy mount (a process has its working directory or a file in it) stays
/// mounted and served, and the next signal tries again. Not fuser's unmounter: it gives
/// its one mount handle away on the first attempt, so a second one would do nothing.
fn unmount_on_signals(signals: &SigSet, mountpoint: &Path) {
    while let Ok(signal) = signals.wait() {
        log::info!("{signal}: unmounting {}", mountpoint.display());
        notify_systemd(&format!("STOPPING=1\nSTATUS={signal}: unmounting"));
        match nix::mount::umount(mountpoint) {
            Ok(()) => return,
            Err(nix::errno::Errno::EBUSY) => log::warn!(
                "{signal}: {} is busy (a process has its working directory or an open file in it); still serving, signal again to retry",
                mountpoint.display()
            ),
            // Gone already (an external umount): the session is ending.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return,
            Err(e) => log::error!("{signal}: unmount of {} failed: {e}; still serving", mountpoint.display()),
        }
    }
}

/// Tells the kernel what the daemon changed on its own: attributes of inodes (a task
/// exited) and names it removed (a task's views, collected blobs and snapshots). On its own
/// thread: a notification sent from a request handler can deadlock the session.
fn spawn_notifier(notifier: Notifier, core: Arc<FsCore>, notices: Receiver<Queued>) -> std::io::Result<()> {
    std::thread::Builder::new().name("notify".into()).spawn(move || {
        for queued in notices {
            let notice = &queued.notice;
            let sent = match notice {
                // Sent by the inode notifier once it runs; before, here.
                Notice::Attributes(_) | Notice::Content(_) => send_inode_notice(&notifier, &core, notice),
                // `delete` also tells watchers (inotify) the name is gone; it needs the
                // child's inode, which the kernel may never have looked up.
                Notice::Removed { parent, child, name } if core.inodes().is_known(*child) => {
                    notifier.delete(INodeNo(*parent), INodeNo(*child), OsStr::new(name))
                }
                Notice::Removed { parent, name, .. } | Notice::Forget { parent, name } => {
                    notifier.inval_entry(INodeNo(*parent), OsStr::new(name))
                }
            };
            if let Err(e) = sent {
                // ENOENT: the kernel had already dropped it.
                log::debug!("notify {notice:?}: {e}");
            }
            queued.sent();
        }
    })?;
    Ok(())
}

/// Tells the kernel which inodes changed: attributes only, or pages and attributes. Its own
/// thread, because a request may wait for these (`FsCore::changed`), and they never wait
/// for a directory's lock as names do: only for pages a read is filling, which a request
/// thread answers without waiting for anything.
fn spawn_inode_notifier(notifier: Notifier, core: Arc<FsCore>, notices: Receiver<Queued>) -> std::io::Result<()> {
    std::thread::Builder::new().name("notify-inodes".into()).spawn(move || {
        for queued in notices {
            if let Err(e) = send_inode_notice(&notifier, &core, &queued.notice) {
                log::debug!("notify {:?}: {e}", queued.notice);
            }
            queued.sent();
        }
    })?;
    Ok(())
}

fn send_inode_notice(notifier: &Notifier, core: &FsCore, notice: &Notice) -> std::io::Result<()> {
    match notice {
        // Offset -1: attributes only (a direct-I/O file has no pages).
        Notice::Attributes(ino) if core.inodes().is_known(*ino) => notifier.inval_inode(INodeNo(*ino), -1, 0),
        // Each one sent, whatever became of the others (ENOENT: the kernel dropped one).
        Notice::Content(inodes) => inodes.iter().map(|ino| send_content_notice(notifier, core, *ino)).fold(Ok(()), Result::and),
        _ => Ok(()),
    }
}

/// Offset 0, length 0: every page, and the attributes. The page table says "may hold
/// anything" until it is done (see fs/page_cache.rs).
fn send_content_notice(notifier: &Notifier, core: &FsCore, ino: u64) -> std::io::Result<()> {
    if !core.inodes().is_known(ino) {
        return Ok(());
    }
    core.page_cache().invalidating(ino);
    let sent = notifier.inval_inode(INodeNo(ino), 0, 0);
    core.page_cache().invalidated(ino);
    sent
}

/// Records each exit the runtime reports.
fn spawn_exit_recorder(services: Arc<Services>, exits: Receiver<String>) -> std::io::Result<()> {
    std::thread::Builder::new().name("exits".into()).spawn(move || {
        for id in exits {
            if let Err(e) = services.record_exit(&id) {
                log::error!("task {id}: recording its exit: {e}");
            }
        }
    })?;
    Ok(())
}

/// Starts the daemon as a child in its own session and waits until it has mounted.
pub fn spawn_background(args: &MountArgs) -> Result<(), DaemonError> {
    // The child makes an existing directory private, and logs it.
    let home = state_dir::create_namespace(&args.root, &args.namespace)
        .map_err(|e| format!("cannot create {}: {e}", args.root.display()))?;
    let log_path = home.join("ctrfs.log");
    let log = OpenOptions::new().create(true).append(true).mode(state_dir::FILE_MODE).open(&log_path)?;
    // A refusal shows only what this attempt wrote, not a running daemon's lines.
    let log_start = log.metadata().map_or(0, |m| m.len());
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("mount")
        .arg(&args.mountpoint)
        .arg("--root")
        .arg(&args.root)
        .arg("--threads")
        .arg(args.threads.to_string())
        .arg("--runtime")
        .arg(&args.runtime)
        .arg("--namespace")
        .arg(&args.namespace)
        .arg("--content-lease")
        .arg(humantime::format_duration(args.content_lease).to_string())
        .arg("--foreground")
        .env(READY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if args.allow_other {
        command.arg("--allow-other");
    }
    if let Some(snapshotter) = &args.snapshotter {
        command.arg("--snapshotter").arg(snapshotter);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no pipe to the daemon")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim_end() == READY_LINE {
        println!("ctrfs: mounted {} (daemon pid {}, log {})", args.mountpoint.display(), child.id(), log_path.display());
        return Ok(());
    }
    let status = child.wait()?;
    Err(format!("the daemon did not start ({status}); its log:\n{}", log_tail(&log_path, log_start)).into())
}

fn mount_config(args: &MountArgs) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("ctrfs".into()),
        MountOption::Subtype("ctrfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.acl = if args.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(usize::from(args.threads));
    config.clone_fd = true;
    config
}

fn stop_signal_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// One daemon per state directory: LMDB would allow two processes, but two mounts of
/// one store would each hold stale views of the other's changes.
/// How long a start waits for the state directory's lock before it says "in use".
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) fn lock_state_dir(root: &Path) -> Result<File, DaemonError> {
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).mode(state_dir::FILE_MODE).open(root.join("lock"))?;
    // A daemon killed a moment ago can hold the lock for some milliseconds after it was
    // reaped (measured: 8 ms after `kill -9` and waitpid, by the crash tests), so an
    // immediate restart is given a short grace before it is refused.
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("state directory {} is in use by another ctrfs", root.display()).into());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A live filesystem mounted at the mount point (another ctrfs, of another state
/// directory) would be hidden under the new mount, its tasks unreachable: refuse. A dead
/// ctrfs mount (ENOTCONN) is detached instead (`detach_stale_mount`).
fn refuse_live_mount(mountpoint: &Path) -> Result<(), DaemonError> {
    if matches!(std::fs::metadata(mountpoint), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN)) {
        return Ok(());
    }
    let wanted = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| absolute(mountpoint));
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else { return Ok(()) };
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let fstype = fields.iter().skip_while(|f| **f != "-").nth(1).copied().unwrap_or("?");
        // A live FUSE mount there (another ctrfs) would be hidden; a bind-mounted volume or
        // a partition is an ordinary place to mount on.
        if fields.get(4).map(|p| unescape_mountinfo(p)) == Some(wanted.clone()) && fstype.starts_with("fuse") {
            return Err(format!(
                "{} is already a mount point ({fstype}); mounting over it would hide it: unmount it first",
                mountpoint.display()
            )
            .into());
        }
    }
    Ok(())
}

/// A daemon killed with SIGKILL leaves its mount behind, answering ENOTCONN. Mounting
/// again over it must work, so detach such a dead ctrfs mount first.
fn detach_stale_mount(mountpoint: &Path) {
    let dead = matches!(std::fs::metadata(mountpoint), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    if dead && is_ctrfs_mount(mountpoint) {
        log::warn!("{} is a dead ctrfs mount (daemon killed?); detaching it", mountpoint.display());
        if let Err(e) = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
            log::error!("cannot detach {}: {e}", mountpoint.display());
        }
    }
}

/// Whether a ctrfs mount is at `mountpoint` (live or dead). The daemon mounts without
/// fusermount, so the kernel shows the type as plain `fuse` with the source `ctrfs`; a
/// mount through mount(8)'s helper shows `fuse.ctrfs`.
pub fn is_ctrfs_mount(mountpoint: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let wanted = absolute(mountpoint);
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mut after_separator = fields.iter().skip_while(|f| **f != "-").skip(1);
        let (fstype, source) = (after_separator.next(), after_separator.next());
        fields.get(4).map(|p| unescape_mountinfo(p)) == Some(wanted.clone())
            && (fstype == Some(&"fuse.ctrfs") || (fstype == Some(&"fuse") && source == Some(&"ctrfs")))
    })
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let code = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Tells systemd (a `Type=notify` unit: `NOTIFY_SOCKET` is set) how the daemon is doing,
/// so `After=` orders other units after the mount is live. A path or, with a leading
/// `@`, an abstract socket name; anything else, or no systemd, is no notice.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(&socket)),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        log::warn!("cannot notify systemd through {}: {e}", socket.to_string_lossy());
    }
}

/// Tells the waiting parent (if any) that the mount is live, then lets go of stdout.
fn announce_ready() {
    if std::env::var_os(READY_ENV).is_none() {
        return;
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{READY_LINE}");
    let _ = stdout.flush();
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2 onto stdout; both descriptors are valid for the duration of the call.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

/// The last lines of the log written from byte `start` on.
fn log_tail(path: &Path, start: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(bytes.get(start as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The daemon's log: `RUST_LOG` (default `info`), with fuser's own lines at error only.
pub fn init_logging() {
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,fuser=error"))
        .format_timestamp_micros()
        .build();
    let level = logger.filter();
    if log::set_boxed_logger(Box::new(KernelGoneQuiet(logger))).is_ok() {
        log::set_max_level(level);
    }
}

/// The daemon's logger, with one of fuser's error lines moved to debug: a reply the kernel
/// answers with ENOENT ("Failed to send FUSE reply: No such file or directory") is to a
/// request the kernel dropped because its caller was interrupted (Ctrl-C on
/// `cat wait/<id>`); nothing failed, and the interruption is logged once at info.
struct KernelGoneQuiet(env_logger::Logger);

impl log::Log for KernelGoneQuiet {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        let dropped = record.level() == log::Level::Error
            && record.target().starts_with("fuser::reply")
            && record.args().to_string().ends_with("(os error 2)");
        if dropped {
            let quiet = log::Record::builder()
                .level(log::Level::Debug)
                .target(record.target())
                .args(*record.args())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.0.log(&quiet);
        } else {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
