//! Mounting the way hosts do: `mount -t fuse.ctrfs` and an fstab line, through mount(8)
//! and the `mount.fuse.ctrfs` helper (a link to the ctrfs binary).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const HELPER: &str = "/usr/sbin/mount.fuse.ctrfs";

/// The helper link for the test's life: made if absent, and then removed by its own path;
/// one already there must be this build's, or the test would run another binary.
struct Helper {
    made: bool,
}

impl Helper {
    fn install() -> Helper {
        let binary = Path::new(env!("CARGO_BIN_EXE_ctrfs"));
        match fs::read_link(HELPER) {
            Ok(target) => {
                assert_eq!(target, binary, "{HELPER} exists and is not this build's binary: remove it to run this test");
                Helper { made: false }
            }
            Err(_) => {
                std::os::unix::fs::symlink(binary, HELPER).unwrap_or_else(|e| panic!("cannot make {HELPER}: {e}"));
                Helper { made: true }
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.made {
            let _ = fs::remove_file(HELPER);
        }
    }
}

/// A state directory and mount point; unmounts on drop (by path) if a test left it
/// mounted, and stops the daemons it saw by their pids.
struct HostMount {
    dir: tempfile::TempDir,
    daemons: Vec<i32>,
}

impl HostMount {
    fn new() -> HostMount {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("mnt")).unwrap();
        HostMount { dir, daemons: Vec::new() }
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// Runs mount(8) with `args`; returns its exit code, stdout and stderr, and notes the
    /// daemon's pid from what `ctrfs mount` prints.
    fn mount(&mut self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("mount").args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(pid) = stdout.split("daemon pid ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()) {
            self.daemons.push(pid.parse().unwrap());
        }
        (out.status.code().unwrap_or(-1), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }
    fn unmount_and_wait(&mut self) {
        let out = Command::new("umount").arg(self.mnt()).output().unwrap();
        assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
        for pid in self.daemons.drain(..) {
            wait_until(DAEMON_DEADLINE, "the daemon to end after umount", || !Path::new(&format!("/proc/{pid}")).exists());
        }
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt()) {
            let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
        }
        for pid in &self.daemons {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[test]
fn mount_t_fuse_ctrfs_and_an_fstab_line_mount_the_tree_and_umount_ends_the_daemon() {
    require_root();
    let _helper = Helper::install();
    let mut host = HostMount::new();
    let (mnt, state) = (host.mnt(), host.state());
    let options = format!("root={},nofail,namespace=default", state.display());

    let (code, out, err) = host.mount(&["-t", "fuse.ctrfs", "ctrfs", mnt.to_str().unwrap(), "-o", &options]);
    assert_eq!(code, 0, "mount -t fuse.ctrfs: {out} {err}");
    assert!(is_mounted(&mnt));
    assert!(ls(&mnt).contains(&"containers".to_owned()), "{:?}", ls(&mnt));
    fs::create_dir(mnt.join("containers/web")).unwrap();
    put(&mnt.join("containers/web/labels"), "from=mount-t\n");
    host.unmount_and_wait();

    // The same state through an fstab line (a file of the test's, not /etc/fstab).
    let fstab = host.dir.path().join("fstab");
    fs::write(&fstab, format!("# a host's line\nctrfs {} fuse.ctrfs {options},x-systemd.automount 0 0\n", mnt.display())).unwrap();
    let (code, out, err) = host.mount(&["--fstab", fstab.to_str().unwrap(), mnt.to_str().unwrap()]);
    assert_eq!(code, 0, "mount --fstab: {out} {err}");
    assert_eq!(read(&mnt.join("containers/web/labels")), "from=mount-t\n", "the same state directory");
    host.unmount_and_wait();

    // What the helper cannot serve is refused, naming it, and nothing is mounted.
    let (code, _, err) = host.mount(&["-t", "fuse.ctrfs", "ctrfs", mnt.to_str().unwrap(), "-o", "root=/tmp/x,bogus"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown option \"bogus\""), "{err}");
    let (code, _, err) = host.mount(&["-t", "fuse.ctrfs", "ctrfs", mnt.to_str().unwrap(), "-o", &format!("root={},namespace=../x", state.display())]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid identifier"), "{err}");
    assert!(!is_mounted(&mnt));

    // Another namespace of the same state directory: its own, empty, tree.
    let other = format!("root={},namespace=build", state.display());
    let (code, out, err) = host.mount(&["-t", "fuse.ctrfs", "ctrfs", mnt.to_str().unwrap(), "-o", &other]);
    assert_eq!(code, 0, "mount -o namespace=build: {out} {err}");
    assert_eq!(ls(&mnt.join("containers")), Vec::<String>::new());
    host.unmount_and_wait();
    assert!(state.join("namespaces/build/db").is_dir());
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_once_the_mount_is_live() {
    require_root();
    let host = HostMount::new();
    let socket_path = host.dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(DAEMON_DEADLINE)).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .args(["mount", host.mnt().to_str().unwrap(), "--root", host.state().to_str().unwrap(), "--foreground"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let received = socket.recv(&mut buf);
    let mounted = is_mounted(&host.mnt());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait().unwrap();
    let message = String::from_utf8_lossy(&buf[..received.expect("a notice within the deadline")]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    assert!(message.contains(&format!("MAINPID={}", daemon.id())), "{message:?}");
    assert!(mounted, "ready means mounted");
    assert!(status.success(), "SIGTERM ends it cleanly: {status}");
}

#[test]
fn the_systemd_unit_in_the_repository_is_valid_for_systemd() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(analyze.exists(), "systemd-analyze is installed by scripts/deps.sh (package systemd)");
    let unit = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/ctrfs.service")).unwrap();
    for line in ["Type=notify", "KillMode=process", "Restart=on-failure", "--foreground"] {
        assert!(unit.contains(line), "the unit has {line}");
    }
    // Checked with this build as the binary (the installed path need not exist here).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ctrfs.service");
    fs::write(&copy, unit.replace("/usr/local/bin/ctrfs", env!("CARGO_BIN_EXE_ctrfs"))).unwrap();
    let out = Command::new(analyze).args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    // The template, one namespace per instance, as the instance `build`.
    let template = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/ctrfs@.service")).unwrap();
    assert!(template.contains("--namespace %i"), "the instance name is the namespace");
    let instance = dir.path().join("ctrfs@build.service");
    fs::write(&instance, template.replace("/usr/local/bin/ctrfs", env!("CARGO_BIN_EXE_ctrfs"))).unwrap();
    let out = Command::new(analyze).args(["verify", "--man=no"]).arg(&instance).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify ctrfs@build: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ctrfs_status_counts_what_the_mount_holds_and_names_what_serves_it() {
    let t = crate::tasks::Tasks::new();
    t.container("up", "exec sleep 1000");
    t.container("done", "true");
    t.start("up");
    t.start("done");
    t.wait_status("done", "stopped");
    fs::create_dir_all(t.path("images/a/b")).unwrap();
    put(&t.path("images/a/b/target"), descriptor(7).to_string());
    put(&t.path("content/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"), "hello");
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs")).arg("status").arg(t.mnt()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("no {name} in {text}")).to_owned();
    assert_eq!(field("images"), "1", "a name prefix is no image");
    assert_eq!(field("containers"), "2");
    assert_eq!(field("tasks"), "2 (1 running)");
    assert_eq!(field("content"), "1 blobs");
    assert_eq!(field("namespace"), "default");
    let state = fs::canonicalize(t.state()).unwrap();
    assert!(field("state").starts_with(&format!("{} (store ", state.display())), "{text}");
    assert!(field("runtime").starts_with("runc (runc version"), "{text}");
    let not_ctrfs = Command::new(env!("CARGO_BIN_EXE_ctrfs")).args(["status", "/"]).output().unwrap();
    assert!(!not_ctrfs.status.success());
    assert!(String::from_utf8_lossy(&not_ctrfs.stderr).contains("/ is not a ctrfs mount"));
}

/// After `kill -9` of the daemon its mount is left dead (ENOTCONN); `ctrfs mount` on the
/// same point detaches it and mounts (the check that it was ctrfs's expected the type
/// `fuse.ctrfs`, which a daemon's own mount never has: found by reviewing `ctrfs status`).
#[test]
fn a_mount_left_dead_by_kill_9_is_detached_and_mounted_over() {
    require_root();
    let mut host = HostMount::new();
    let (mnt, state) = (host.mnt(), host.state());
    let start = |host: &mut HostMount| {
        let out = Command::new(env!("CARGO_BIN_EXE_ctrfs")).arg("mount").arg(&mnt).arg("--root").arg(&state).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "ctrfs mount: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let pid: i32 = stdout.split("daemon pid ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).unwrap().parse().unwrap();
        host.daemons.push(pid);
        pid
    };
    let first = start(&mut host);
    fs::create_dir(mnt.join("containers/kept")).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until(DAEMON_DEADLINE, "the mount to be dead", || fs::metadata(&mnt).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOTCONN));
    host.daemons.retain(|p| *p != first);
    start(&mut host);
    assert_eq!(ls(&mnt.join("containers")), ["kept"], "the new daemon serves the same state");
    host.unmount_and_wait();
    assert!(!is_mounted(&mnt), "nothing of the dead mount is left under the new one");
}
