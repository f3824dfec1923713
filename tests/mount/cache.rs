//! The kernel's caches over the mount: unchanged files are read again from the page cache
//! and listings carry attributes (so it must be in effect, which a stopped daemon shows),
//! and every change, wherever it comes from, is seen by the next read or stat.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::*;
use crate::tasks::Tasks;

/// How long an answer from the kernel's caches may take: nothing is waited for.
const FROM_CACHE: Duration = Duration::from_secs(2);
/// How long a request that needs the stopped daemon is given to (wrongly) answer.
const NEEDS_DAEMON: Duration = Duration::from_millis(300);

/// The daemon stopped (SIGSTOP) until this is dropped: whatever is answered meanwhile was
/// answered by the kernel alone.
struct Stopped(i32);

impl Stopped {
    fn new(pid: u32) -> Self {
        let pid = pid as i32;
        // SAFETY: kill has no memory preconditions; the pid is this test's own daemon.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP the daemon");
        wait_until(DAEMON_DEADLINE, "the daemon to stop", || process_state(pid) == 'T');
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The state letter of a process in /proc/<pid>/stat.
fn process_state(pid: i32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()).expect("a state")
}

/// Reads `len` bytes at 0 of `file` on another thread (it may block on the daemon).
fn read_elsewhere(file: File, len: usize) -> Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; len];
        let _ = tx.send(file.read_at(&mut buf, 0).map(|n| buf[..n].to_vec()));
    });
    rx
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` on another thread: the file type it finds.
/// Relative to an open directory, so no path walk from the mount's top is involved.
fn stat_elsewhere(dir: File, name: &str) -> Receiver<io::Result<u32>> {
    let (tx, rx) = channel();
    let name = std::ffi::CString::new(name).expect("a name");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: a zeroed stat is a valid out-parameter; the name is NUL-terminated and the
        // descriptor open for the call's duration.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        let _ = tx.send(if rc == 0 { Ok(st.st_mode & libc::S_IFMT) } else { Err(io::Error::last_os_error()) });
    });
    rx
}

/// A file read whole, and its size as `stat` reports it: they must agree.
fn read_sized(path: &Path) -> String {
    let text = read(path);
    let size = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).len();
    assert_eq!(size, text.len() as u64, "{}: stat says {size} bytes, a read gives {}", path.display(), text.len());
    text
}

/// The labels `info.json` shows, as `key=value` lines.
fn info_labels(path: &Path) -> String {
    let info: serde_json::Value = serde_json::from_str(&read_sized(path)).expect("info.json is JSON");
    let labels = info["labels"].as_object().cloned().unwrap_or_default();
    labels.iter().map(|(k, v)| format!("{k}={}\n", v.as_str().unwrap_or_default())).collect()
}

#[test]
fn an_unchanged_file_is_read_again_from_the_kernels_cache() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/labels"), "app=web\n");
    let info = fx.path("containers/c/info.json");
    let first = read_sized(&info);
    // Opens reach the daemon; what is read through them afterwards need not.
    let cached = File::open(&info).unwrap();
    let direct = File::open(fx.path("error_log")).unwrap();
    let stopped = Stopped::new(fx.daemon_pid());
    let again = read_elsewhere(cached, first.len()).recv_timeout(FROM_CACHE);
    let pending = read_elsewhere(direct, 4096);
    let direct_answered = pending.recv_timeout(NEEDS_DAEMON).is_ok();
    drop(stopped);
    let again = again.expect("a re-read of an unchanged info.json needs no daemon").unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), first);
    // The check tells the two apart: a direct-I/O file waits for the daemon.
    assert!(!direct_answered, "error_log (direct I/O) was read while the daemon was stopped");
    pending.recv_timeout(DAEMON_DEADLINE).expect("error_log answered once the daemon runs").unwrap();
}

#[test]
fn ls_l_hands_the_kernel_each_entrys_attributes() {
    let fx = MountFixture::new();
    for i in 0..20 {
        fs::create_dir(fx.path(&format!("containers/c{i}"))).unwrap();
    }
    let containers = File::open(fx.path("containers")).unwrap();
    let listed = fx.sh_ok("ls -l containers");
    assert_eq!(listed.lines().filter(|l| l.starts_with('d')).count(), 20, "{listed}");
    let stopped = Stopped::new(fx.daemon_pid());
    let stat = stat_elsewhere(containers, "c19").recv_timeout(FROM_CACHE);
    drop(stopped);
    let kind = stat.expect("the listing's name and attributes answer a stat without the daemon").unwrap();
    assert_eq!(kind, libc::S_IFDIR);
}

#[test]
fn derived_files_show_a_label_change_from_any_path_at_once() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let (dir, labels, info) = (fx.path("containers/c"), fx.path("containers/c/labels"), fx.path("containers/c/info.json"));
    put(&labels, "app=web\n");
    // Cached, and held open: an open descriptor must see the changes too.
    assert_eq!(info_labels(&info), "app=web\n");
    assert_eq!(info_labels(&info), "app=web\n");
    let held = File::open(&info).unwrap();
    let mtime = |p: &Path| fs::metadata(p).unwrap().mtime_nsec() as i128 + fs::metadata(p).unwrap().mtime() as i128 * 1_000_000_000;
    let mut last_mtime = mtime(&dir);
    let mut check = |how: &str, expected: &str| {
        assert_eq!(read_sized(&labels), expected, "labels after {how}");
        assert_eq!(info_labels(&info), expected, "info.json after {how}");
        let mut buf = vec![0u8; 1 << 16];
        let n = held.read_at(&mut buf, 0).unwrap();
        assert_eq!(n as u64, held.metadata().unwrap().len(), "fstat of the held descriptor after {how}");
        let shown: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(shown, read_json(&info), "the descriptor opened before {how}");
        let now = mtime(&dir);
        assert!(now > last_mtime, "the directory's mtime moves with {how}");
        last_mtime = now;
    };
    fx.sh_ok("echo tier=front >> containers/c/labels");
    check("another process's >>", "app=web\ntier=front\n");
    set_xattr(&dir, "user.zone", b"eu", 0).unwrap();
    check("setxattr on the directory", "app=web\ntier=front\nzone=eu\n");
    fx.sh_ok("setfattr -x user.app containers/c");
    check("removexattr", "tier=front\nzone=eu\n");
    put(&labels, "x=1\n");
    check("> (a shrink)", "x=1\n");
    put(&labels, "x=1\ny=a-much-longer-value-than-before\n");
    check("> (a growth)", "x=1\ny=a-much-longer-value-than-before\n");
}

#[test]
fn tools_that_replace_files_are_seen_through_the_cache() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let (labels, info) = (fx.path("containers/c/labels"), fx.path("containers/c/info.json"));
    put(&labels, "app=web\ntier=front\n");
    assert_eq!(read_sized(&labels), "app=web\ntier=front\n");
    assert_eq!(info_labels(&info), "app=web\ntier=front\n");
    // A temporary file renamed over the field.
    fx.sh_ok("sed -i 's/web/db/' containers/c/labels");
    assert_eq!(read_sized(&labels), "app=db\ntier=front\n");
    assert_eq!(info_labels(&info), "app=db\ntier=front\n");
    let copy = fx.root().join("labels.copy");
    fx.sh_ok(&format!("cp containers/c/labels {0} && echo zone=eu >> {0} && cp {0} containers/c/labels", copy.display()));
    assert_eq!(read_sized(&labels), "app=db\ntier=front\nzone=eu\n");
    assert_eq!(info_labels(&info), "app=db\ntier=front\nzone=eu\n");
    fs::write(&copy, "only=this\n").unwrap();
    fx.sh_ok(&format!("install -m 644 {} containers/c/labels", copy.display()));
    assert_eq!(read_sized(&labels), "only=this\n");
    assert_eq!(info_labels(&info), "only=this\n");
    // `ls -l` of the directory shows the size a read gives.
    let listed = fx.sh_ok("ls -ln containers/c");
    let line = listed.lines().find(|l| l.ends_with(" labels")).unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(line.split_whitespace().nth(4), Some("10"), "{line}");
}

#[test]
fn a_refused_write_puts_back_what_readers_see() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let (labels, info) = (fx.path("containers/c/labels"), fx.path("containers/c/info.json"));
    put(&labels, "app=web\n");
    assert_eq!(info_labels(&info), "app=web\n");
    // A shell's `>`: its early close commits the truncation, which a reader sees (and the
    // kernel may cache) ...
    let mut file = crate::trust::open_like_a_shell_redirect(&labels);
    assert_eq!(info_labels(&info), "");
    // ... then the refused line puts the old set back, which the next reader must see.
    assert_eq!(errno_of(std::io::Write::write_all(&mut file, b"no equals sign\n")), libc::EINVAL);
    drop(file);
    assert_eq!(info_labels(&info), "app=web\n");
    assert_eq!(read_sized(&labels), "app=web\n");
}

#[test]
fn ls_l_follows_removals_and_renames() {
    let fx = MountFixture::new();
    for id in ["a", "b"] {
        fs::create_dir(fx.path(&format!("containers/{id}"))).unwrap();
        put(&fx.path(&format!("containers/{id}/labels")), "k=v\n");
    }
    let names = |dir: &str| -> Vec<String> {
        fx.sh_ok(&format!("ls -l {dir}")).lines().skip(1).filter_map(|l| l.split_whitespace().last().map(str::to_owned)).collect()
    };
    assert_eq!(names("containers"), ["a", "b"]);
    assert_eq!(names("containers/a"), ["labels"]);
    fx.sh_ok("rm -r containers/a");
    assert_eq!(names("containers"), ["b"]);
    assert_eq!(errno_of(fs::symlink_metadata(fx.path("containers/a"))), libc::ENOENT);
    // A temporary file renamed onto a field: the listing shows the new value's size.
    assert_eq!(fs::metadata(fx.path("containers/b/labels")).unwrap().len(), 4);
    fs::write(fx.path("containers/b/.labels.tmp"), "k=v\nother=longer\n").unwrap();
    fs::rename(fx.path("containers/b/.labels.tmp"), fx.path("containers/b/labels")).unwrap();
    let listed = fx.sh_ok("ls -ln containers/b");
    let line = listed.lines().find(|l| l.ends_with(" labels")).unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(line.split_whitespace().nth(4), Some("17"), "{line}");
    assert_eq!(read_sized(&fx.path("containers/b/labels")), "k=v\nother=longer\n");
}

#[test]
fn a_blob_a_collection_took_is_gone_from_ls_l() {
    let fx = MountFixture::with_args(&["--content-lease", "0s"]);
    let blob = b"kept by a label only\n";
    let hex = hex::encode(Sha256::digest(blob));
    put(&fx.path(&format!("content/sha256/{hex}")), blob);
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/labels"), format!("containerd.io/gc.ref.content.keep=sha256:{hex}\n"));
    let listed = fx.sh_ok("ls -l content/sha256");
    assert!(listed.contains(&hex), "{listed}");
    assert_eq!(fs::metadata(fx.path(&format!("content/sha256/{hex}"))).unwrap().len(), blob.len() as u64);
    // Cached, then collected when the container that kept it goes.
    assert_eq!(fs::read(fx.path(&format!("content/sha256/{hex}"))).unwrap(), blob);
    fx.sh_ok("rm -r containers/c");
    let listed = fx.sh_ok("ls -l content/sha256");
    assert!(!listed.contains(&hex), "collected, still listed:\n{listed}");
    assert_eq!(errno_of(fs::metadata(fx.path(&format!("content/sha256/{hex}")))), libc::ENOENT);
}

#[test]
fn a_tasks_status_shows_its_exit_through_a_descriptor_opened_before() {
    let t = Tasks::new();
    // It ends on its own: the exit is recorded by the daemon, not by a request on the file.
    t.container("cache-exit", "exec sleep 3");
    t.start("cache-exit");
    t.wait_status("cache-exit", "running");
    let path = t.path("tasks/cache-exit");
    let running = read(&path);
    let held = File::open(&path).unwrap();
    let mut buf = vec![0u8; running.len()];
    assert_eq!(held.read_at(&mut buf, 0).unwrap(), running.len());
    assert_eq!(buf, running.as_bytes(), "cached while it runs");
    assert!(running.contains("\"running\""), "{running}");
    t.wait("cache-exit");
    // Read through the held descriptor first, within the size it had: only the daemon's
    // invalidation can make the kernel drop the pages (a new open would see the size
    // change and drop them itself).
    wait_until(DAEMON_DEADLINE, "the held descriptor to read the exit", || {
        let n = held.read_at(&mut buf, 0).unwrap();
        buf[..n] != *running.as_bytes()
    });
    let stopped = read(&path);
    assert!(stopped.contains("\"stopped\""), "{stopped}");
    assert_eq!(buf, stopped.as_bytes()[..running.len()]);
    // Removed, the task's last status is what the held descriptor still reads.
    fs::remove_file(&path).unwrap();
    let n = held.read_at(&mut buf, 0).expect("a held descriptor reads after the removal");
    assert_eq!(buf[..n], stopped.as_bytes()[..n]);
}

/// A task's status changes on its own, at the exit. Read through the page cache, a poller's
/// read could be cut at the size the kernel learnt just before the exit, and half a
/// document came back (found by the crash suite's `wait_status` loop: "EOF while parsing").
/// Every read while tasks exit must be a whole document.
#[test]
fn polling_a_task_while_it_exits_always_reads_a_whole_document() {
    let t = Tasks::new();
    let mut reads = 0;
    for i in 0..8 {
        let id = format!("poll-{i}");
        t.container(&id, "sleep 0.1; exit 3");
        t.start(&id);
        let path = t.path(&format!("tasks/{id}"));
        let mut running = 0;
        wait_until(DAEMON_DEADLINE, "the task to stop", || {
            reads += 1;
            let text = read(&path);
            let status: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("read {reads} of {id} is not a whole document ({e}):\n{text}"));
            running += usize::from(status["status"] == "running");
            status["status"] == "stopped"
        });
        assert!(running > 0, "{id} was polled while it ran");
    }
    assert!(reads > 8, "{reads} reads");
}

/// A descriptor that reads direct (a writer, here) can still fill the page cache: the
/// kernel serves `sendfile`, `splice` and `mmap` through pages even then. What such a read
/// put there must not be what the next `cat` gets (found by review: an uncommitted,
/// invalid in-place edit was shown to every later reader).
#[test]
fn pages_filled_through_a_direct_descriptor_are_not_trusted_by_a_later_open() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let labels = fx.path("containers/c/labels");
    put(&labels, "keep=1\n");
    assert_eq!(read_sized(&labels), "keep=1\n");
    // An in-place edit, invalid and not committed (it is judged at close).
    let editor = fs::OpenOptions::new().read(true).write(true).open(&labels).unwrap();
    editor.write_at(b"=", 0).unwrap();
    let sink = File::create("/dev/null").unwrap();
    let mut offset: libc::off_t = 0;
    // SAFETY: both descriptors are open for the call; offset is a valid pointer.
    let sent = unsafe { libc::sendfile(std::os::fd::AsRawFd::as_raw_fd(&sink), std::os::fd::AsRawFd::as_raw_fd(&editor), &mut offset, 4096) };
    assert!(sent > 0, "sendfile through the editor's descriptor: {}", io::Error::last_os_error());
    assert_eq!(read_sized(&labels), "keep=1\n", "a reader sees what is committed, not the editor's bytes");
    assert_eq!(close_checked(editor), Err(libc::EINVAL));
    assert_eq!(read_sized(&labels), "keep=1\n");
}
