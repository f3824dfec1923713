//! Common tools over the whole tree (issue 9): recursive walks finish while tasks run,
//! control words never start a task, `df` shows the state directory's filesystem, a
//! second mount over a live one is refused, and routine events are logged once.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::tasks::Tasks;

const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `bash -c script` in `dir` (bash's own redirections are what is tested); returns
/// (exit code, stdout, stderr).
fn bash(dir: &Path, script: &str) -> (i32, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash -c {script:?}: {e}"));
    let code = out.status.code().unwrap_or(128);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn recursive_walks_finish_while_a_task_runs_and_wait_still_blocks() {
    let t = Tasks::new();
    t.container("walk", "echo walking; exec sleep 60");
    t.start("walk");
    let mut waiter = Command::new("cat").arg(t.path("wait/walk")).stdout(Stdio::piped()).spawn().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let mnt = t.mnt();
    let walks = [
        format!("timeout 20 grep -r x {}", mnt.display()),
        format!("timeout 20 find {} -type f -exec cat {{}} + > /dev/null", mnt.display()),
        format!("timeout 20 tar -cf /dev/null -C {} .", mnt.display()),
        format!("timeout 20 rsync -a {}/ {}/", mnt.display(), copy.path().display()),
    ];
    for walk in &walks {
        let (code, _, err) = bash(copy.path(), walk);
        assert_ne!(code, 124, "{walk} did not finish within {DEADLINE:?}: {err}\nlog:\n{}", t.log());
        assert!(code == 0 || (walk.contains("grep") && code == 1), "{walk}: exit {code}: {err}");
    }
    assert!(copy.path().join("tasks/walk").exists(), "rsync copied the tree");
    assert!(waiter.try_wait().unwrap().is_none(), "cat wait/walk still blocks");
    // Reachable by name, not listed: wait/<id>, and events at the top.
    assert_eq!(ls(&t.path("wait")), Vec::<String>::new());
    assert!(!ls(&t.mnt()).contains(&"events".to_owned()), "{:?}", ls(&t.mnt()));
    assert!(t.path("events").is_file());
    assert_eq!(fs::metadata(t.path("wait/walk")).unwrap().len(), 0);
    assert_eq!(t.sh_ok("ls tasks logs | tr '\\n' ' '"), "logs: walk  tasks: walk ");
    t.control("walk", "KILL").unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "137\n");
    assert!(!t.log().contains("ERROR"), "no error lines:\n{}", t.log());
}

#[test]
fn an_interrupted_wait_logs_at_info() {
    let t = Tasks::new();
    t.container("iw", "exec sleep 60");
    t.start("iw");
    let (code, _, _) = bash(&t.mnt(), "timeout 1 cat wait/iw");
    assert_eq!(code, 124);
    t.wait_for_log_line("the interrupted read at info", |l| l.contains("INFO") && l.contains("interrupted"));
    // fuser's failed reply to the dropped request comes about the same time.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.log().contains("ERROR"), "an interrupted wait is not an error:\n{}", t.log());
}

#[test]
fn control_words_never_start_a_task() {
    let t = Tasks::new();
    t.container("nope", "echo ran; exec sleep 60");
    let runc_state = t.state().join("runc/nope");
    let nothing_ran = |what: &str| {
        assert_eq!(ls(&t.path("tasks")), Vec::<String>::new(), "{what}: no task");
        assert!(!t.state().join("tasks/nope").exists(), "{what}: no task files");
        assert!(!runc_state.exists(), "{what}: runc never ran");
        assert!(!t.log().contains("task nope started"), "{what}: never started:\n{}", t.log());
    };
    for (script, message) in [
        ("echo KILL > tasks/nope", "No such process"),
        ("echo TERM >> tasks/nope", "No such process"),
        ("echo pause > tasks/nope", "No such process"),
        ("echo FROB > tasks/nope", "Invalid argument"),
    ] {
        let (code, _, err) = bash(&t.mnt(), script);
        assert_eq!(code, 1, "{script} must fail: {err}");
        assert!(err.contains(message), "{script}: {err}");
        nothing_ran(script);
    }
    // `start` on a new name starts it, without an error.
    let (code, _, err) = bash(&t.mnt(), "echo start > tasks/nope && cat tasks/nope");
    assert_eq!(code, 0, "echo start: {err}\nlog:\n{}", t.log());
    assert_eq!(t.status("nope")["status"], "running");
    wait_until(DEADLINE, "the task's output", || read(&t.path("logs/nope/stdout")) == "ran\n");
    // touch starts at once.
    t.container("w2", "exec sleep 60");
    let (code, _, err) = bash(&t.mnt(), "touch tasks/w2 && cat tasks/w2");
    assert_eq!(code, 0, "touch: {err}");
    assert_eq!(t.status("w2")["status"], "running");
    // `start` written through the handle that created (and started) the task.
    t.container("w3", "exec sleep 60");
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(false).open(t.path("tasks/w3")).unwrap();
    assert_eq!(t.status("w3")["status"], "running");
    file.write_all(b"start\n").expect("start through the creating handle is not an error");
    drop(file);
    assert_eq!(t.status("w3")["status"], "running");
    // A truncating create closed without a write starts it too (as touch would).
    t.container("w4", "exec sleep 60");
    let (code, _, err) = bash(&t.mnt(), ": > tasks/w4");
    assert_eq!(code, 0, ": > {err}");
    wait_until(DEADLINE, "w4 to start at close", || t.path("tasks/w4").exists() && t.status("w4")["status"] == "running");
    // A control word to a task that does not exist and has no container.
    let (code, _, err) = bash(&t.mnt(), "echo KILL > tasks/ghost");
    assert_eq!(code, 1);
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn df_shows_the_state_directorys_filesystem() {
    let fx = MountFixture::new();
    let mount = nix::sys::statvfs::statvfs(&fx.mnt()).unwrap();
    let state = nix::sys::statvfs::statvfs(&fx.state()).unwrap();
    assert!(mount.blocks() > 0, "df shows a size");
    assert_eq!(mount.blocks() * mount.fragment_size(), state.blocks() * state.fragment_size(), "the same size");
    let (code, out, err) = sh(fx.root(), "df -P mnt");
    assert_eq!(code, 0, "{err}");
    let size: u64 = out.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap();
    assert!(size > 0, "df: {out}");
}

/// Runs `ctrfs mount` in the background mode a user would; returns (success, stdout+stderr).
fn ctrfs_mount(mnt: &Path, state: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("mount")
        .arg(mnt)
        .arg("--root")
        .arg(state)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_second_mount_over_a_live_mountpoint_is_refused() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/keep")).unwrap();
    let other = fx.root().join("other-state");
    let (ok, text) = ctrfs_mount(&fx.mnt(), &other);
    if ok {
        // Before the fix it mounts over the first: take the second mount away again.
        let _ = Command::new("umount").arg(fx.mnt()).status();
        wait_until(DEADLINE, "the second mount to go", || fx.path("containers/keep").exists());
        panic!("a second mount over a live one must be refused: {text}");
    }
    assert!(text.contains("already") && text.contains(&*fx.mnt().to_string_lossy()), "a clear message: {text}");
    assert!(fx.path("containers/keep").exists(), "the first mount keeps working");
    fs::create_dir(fx.path("containers/more")).unwrap();
}

#[test]
fn a_refused_mount_of_a_busy_state_directory_prints_only_its_own_lines() {
    let fx = MountFixture::new();
    // What the running daemon would have in its log.
    fs::write(fx.state().join("ctrfs.log"), "INFO earlier line of the running daemon\n").unwrap();
    let other_mnt = fx.root().join("mnt2");
    fs::create_dir(&other_mnt).unwrap();
    let (ok, text) = ctrfs_mount(&other_mnt, &fx.state());
    assert!(!ok, "{text}");
    assert!(!is_mounted(&other_mnt));
    assert!(text.contains("in use"), "{text}");
    assert!(!text.contains("earlier line"), "only this attempt's lines: {text}");
}

#[test]
fn an_exit_and_a_refusal_are_logged_once() {
    let t = Tasks::new();
    t.container("once", "exit 3");
    t.start("once");
    assert_eq!(t.wait("once"), "3\n");
    t.container("kill", "exec sleep 60");
    t.start("kill");
    let _ = bash(&t.mnt(), "echo KILL > tasks/kill; cat wait/kill; echo '{bad' > containers/kill/spec; rm tasks/kill");
    std::thread::sleep(Duration::from_millis(300));
    let log = t.log();
    for id in ["once", "kill"] {
        let exits = log.lines().filter(|l| l.contains(&format!("task {id} ")) && l.contains("stopped")).count();
        assert_eq!(exits, 1, "one line per exit of {id}:\n{log}");
    }
    let refusals = log.lines().filter(|l| l.contains("containers/kill/spec")).count();
    assert_eq!(refusals, 1, "a refusal is logged at the write, not again at the close:\n{log}");
}

#[test]
fn cp_p_onto_an_attribute_file_logs_no_xattr_refusals() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let host = fx.root().join("labels.txt");
    fs::write(&host, "a=b\n").unwrap();
    fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, _, err) = sh(fx.root(), "cp -p labels.txt mnt/containers/c/labels && cp -a labels.txt mnt/containers/c/labels");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&fx.path("containers/c/labels")), "a=b\n");
    std::thread::sleep(Duration::from_millis(300));
    let log = fx.log();
    assert!(
        !log.lines().any(|l| l.contains("posix_acl") || l.contains("ENOTSUP") || l.contains("EOPNOTSUPP")),
        "no xattr refusal at info:\n{log}"
    );
}
