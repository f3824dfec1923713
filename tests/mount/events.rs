//! The `events` file (issue 11): containerd's topics and fields for what was committed,
//! kept across a daemon restart, read as a stream (blocking at its end, EOF there for
//! O_NONBLOCK, poll), a reader behind the kept window moved on and told, a task removed
//! on exit publishing its exit and delete, and walks of the mount never meeting it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::tasks::Tasks;

const DEADLINE: Duration = Duration::from_secs(20);

/// Opens `events` so that a read at its end returns 0 bytes at once.
fn open_nonblocking(fx: &MountFixture) -> File {
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(fx.path("events")).expect("open events")
}

/// Every line `file` has left to give, parsed; stops at the stream's end (EOF).
fn drain(file: &mut File) -> Vec<Value> {
    let mut text = String::new();
    file.read_to_string(&mut text).expect("read events");
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines only: {text:?}");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect()
}

/// Everything kept so far, read by a new reader.
fn all_events(fx: &MountFixture) -> Vec<Value> {
    drain(&mut open_nonblocking(fx))
}

fn topics(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["topic"].as_str().expect("a topic")).collect()
}

/// `poll(2)` for input on `file`; the events seen (0 when it timed out).
fn poll_in(file: &File, timeout: Duration) -> i16 {
    let mut fd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    fd.revents
}

#[test]
fn containers_and_images_are_published_in_order_with_containerds_fields() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/web")).unwrap();
    put(&fx.path("containers/web/image"), "docker.io/library/busybox:latest\n");
    put(&fx.path("containers/web/labels"), "env=prod\n");
    fs::remove_dir(fx.path("containers/web")).unwrap();
    fs::create_dir(fx.path("images/app")).unwrap();
    put(&fx.path("images/app/target"), descriptor(1).to_string());
    put(&fx.path("images/app/labels"), "tier=web\n");
    put(&fx.path("images/app/target"), descriptor(2).to_string());
    fs::remove_dir(fx.path("images/app")).unwrap();

    let events = all_events(&fx);
    assert_eq!(
        topics(&events),
        [
            "/containers/create",
            "/containers/update",
            "/containers/update",
            "/containers/delete",
            "/images/create",
            "/images/update",
            "/images/update",
            "/images/delete"
        ],
        "{events:#?}"
    );
    for event in &events {
        assert_eq!(event["namespace"], "default");
        let stamp = event["timestamp"].as_str().unwrap();
        assert!(stamp.ends_with('Z') && humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    }
    let bodies: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(*bodies[0], json!({"id": "web", "image": "", "runtime": {"name": "runc"}}));
    assert_eq!(
        *bodies[2],
        json!({"id": "web", "image": "docker.io/library/busybox:latest", "labels": {"env": "prod"}, "snapshot_key": ""})
    );
    assert_eq!(*bodies[3], json!({"id": "web"}));
    assert_eq!(*bodies[4], json!({"name": "app", "labels": {}}));
    assert_eq!(*bodies[6], json!({"name": "app", "labels": {"tier": "web"}}));
    assert_eq!(*bodies[7], json!({"name": "app"}));
    let stamps: Vec<&str> = events.iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
    let times: Vec<_> = stamps.iter().map(|s| humantime::parse_rfc3339(s).unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in commit order: {stamps:?}");
    // A write of the stored value commits nothing, and publishes nothing.
    fs::create_dir(fx.path("containers/same")).unwrap();
    put(&fx.path("containers/same/runtime"), "crun\n");
    put(&fx.path("containers/same/runtime"), "crun\n");
    assert_eq!(topics(&all_events(&fx)[8..]), ["/containers/create", "/containers/update"]);
}

#[test]
fn events_survive_a_restart_and_a_new_reader_starts_at_the_oldest_kept() {
    let mut fx = MountFixture::new();
    fs::create_dir(fx.path("containers/before")).unwrap();
    let mut reader = open_nonblocking(&fx);
    assert_eq!(topics(&drain(&mut reader)), ["/containers/create"]);
    drop(reader);
    fx.remount();
    fs::create_dir(fx.path("containers/after")).unwrap();
    let events = all_events(&fx);
    let ids: Vec<&str> = events.iter().map(|e| e["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["before", "after"], "the journal outlived the daemon, in order");
    // Each open has its own cursor: a second reader reads it all too, then meets the end.
    let mut again = open_nonblocking(&fx);
    assert_eq!(drain(&mut again).len(), 2);
    assert!(drain(&mut again).is_empty(), "at the end, EOF");
}

#[test]
fn a_blocked_reader_gets_the_next_event_and_nonblocking_readers_and_poll_see_the_end() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/one")).unwrap();

    // A blocking `cat`: its lines come through a thread, awaited with a deadline.
    let mut cat = Command::new("cat").arg(fx.path("events")).stdout(Stdio::piped()).spawn().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = cat.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first: Value = serde_json::from_str(&lines.recv_timeout(DEADLINE).expect("cat's first line")).unwrap();
    assert_eq!(first["event"]["id"], "one");
    assert!(lines.recv_timeout(Duration::from_millis(200)).is_err(), "nothing more yet");
    assert!(cat.try_wait().unwrap().is_none(), "cat is blocked at the end, not finished");
    fs::create_dir(fx.path("containers/two")).unwrap();
    let second: Value = serde_json::from_str(&lines.recv_timeout(DEADLINE).expect("the new event")).unwrap();
    assert_eq!((second["topic"].as_str(), second["event"]["id"].as_str()), (Some("/containers/create"), Some("two")));
    // A signal that kills it (as `timeout` or Ctrl-C would; SIGTERM, since SIGINT is
    // ignored by background jobs of a script such as scripts/test.sh, and cat inherits
    // that) ends it: the parked read is answered EINTR, and the daemon goes on. Sent once
    // cat waits in its next read: a signal while it writes its line needs no answer.
    let wchan = format!("/proc/{}/wchan", cat.id());
    wait_until(DEADLINE, "cat to wait in a read of the mount", || {
        fs::read_to_string(&wchan).is_ok_and(|w| w.contains("request_wait_answer"))
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(cat.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    // (Whether the daemon answered it, or the kernel dropped a request not yet read from
    // /dev/fuse, depends on scheduling; the walks test below checks the daemon's answer.)
    wait_until(DEADLINE, "cat to end on SIGTERM", || cat.try_wait().unwrap().is_some());
    fs::create_dir(fx.path("containers/three")).unwrap();

    // O_NONBLOCK: EOF at the end, more after a change.
    let mut reader = open_nonblocking(&fx);
    assert_eq!(drain(&mut reader).len(), 3);
    assert!(drain(&mut reader).is_empty());
    // poll: not readable at the end, readable once an event is committed.
    assert_eq!(poll_in(&reader, Duration::ZERO), 0, "nothing to read: not readable");
    let (done_tx, done) = mpsc::channel();
    let polled = reader.try_clone().unwrap();
    // poll's own timeout is longer than the wait for it: only the daemon's notice can
    // end it in time (at its timeout the kernel polls once more, which would pass).
    std::thread::spawn(move || done_tx.send(poll_in(&polled, 3 * DEADLINE)).unwrap());
    assert!(done.recv_timeout(Duration::from_millis(200)).is_err(), "poll waits while nothing comes");
    fs::create_dir(fx.path("containers/four")).unwrap();
    let revents = done.recv_timeout(DEADLINE).expect("poll to return on the daemon's notice");
    assert_ne!(revents & libc::POLLIN, 0, "readable after the change: {revents:#x}");
    assert_ne!(poll_in(&reader, Duration::ZERO) & libc::POLLIN, 0);
    let new = drain(&mut reader);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["event"]["id"], "four");
    assert_eq!(poll_in(&reader, Duration::ZERO), 0, "read to the end again");

    // The flags that count are the file's at each read: fcntl changes them after open.
    let mut switched = File::open(fx.path("events")).unwrap();
    set_nonblocking(&switched, true);
    assert_eq!(drain(&mut switched).len(), 4, "O_NONBLOCK set by fcntl: EOF at the end");
    set_nonblocking(&switched, false);
    let (line_tx, line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let n = switched.read(&mut buf).unwrap();
        line_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).unwrap();
    });
    assert!(line.recv_timeout(Duration::from_millis(200)).is_err(), "cleared again: the read blocks");
    fs::create_dir(fx.path("containers/five")).unwrap();
    let got: Value = serde_json::from_str(line.recv_timeout(DEADLINE).expect("the blocked read").trim_end()).unwrap();
    assert_eq!(got["event"]["id"], "five");
    assert!(!fx.log().contains("ERROR"), "no error lines:\n{}", fx.log());
}

/// Sets or clears `O_NONBLOCK` on an open file.
fn set_nonblocking(file: &File, on: bool) {
    // SAFETY: fcntl on a descriptor this File owns, with integer flags only.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags) }, 0);
}

#[test]
fn a_reader_behind_the_kept_window_is_told_and_moved_to_the_oldest_kept() {
    let mut fx = MountFixture::new();
    fx.set_daemon_env("CTRFS_EVENTS_KEPT", Some("3"));
    fx.remount();
    fs::create_dir(fx.path("containers/c0")).unwrap();
    let mut slow = open_nonblocking(&fx);
    assert_eq!(drain(&mut slow)[0]["event"]["id"], "c0");
    for i in 1..=5 {
        fs::create_dir(fx.path(&format!("containers/c{i}"))).unwrap();
    }
    let events = drain(&mut slow);
    assert_eq!(events[0]["topic"], "/ctrfs/lagged", "{events:#?}");
    assert_eq!(events[0]["namespace"], "default");
    assert_eq!(events[0]["event"], json!({"skipped": 2}), "c1 and c2 fell out of the window");
    let ids: Vec<&str> = events[1..].iter().map(|e| e["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c3", "c4", "c5"]);
    assert_eq!(topics(&all_events(&fx)), ["/containers/create"; 3], "only the window is kept");
}

#[test]
fn a_task_removed_on_exit_publishes_its_create_start_exit_and_delete() {
    let t = Tasks::new();
    t.container("evrm", "exit 3");
    put(&t.path("containers/evrm/labels"), "ctrfs.io/rm=true\n");
    t.start("evrm");
    wait_until(DEADLINE, "the task to be removed on exit", || {
        topics(&all_events(&t)).contains(&"/tasks/delete")
    });
    assert!(!t.path("tasks/evrm").exists());
    let events: Vec<Value> = all_events(&t).into_iter().filter(|e| e["topic"].as_str().unwrap().starts_with("/tasks/")).collect();
    assert_eq!(topics(&events), ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "{events:#?}");
    let pid = events[0]["event"]["pid"].as_u64().unwrap();
    assert!(pid > 0);
    assert_eq!(events[0]["event"]["container_id"], "evrm");
    assert!(events[0]["event"]["bundle"].as_str().unwrap().ends_with("/tasks/evrm/bundle"), "{}", events[0]);
    assert_eq!(events[1]["event"], json!({"container_id": "evrm", "pid": pid}));
    for (i, end) in events[2..].iter().enumerate() {
        let body = &end["event"];
        assert_eq!((body["container_id"].as_str(), body["id"].as_str()), (Some("evrm"), Some("evrm")), "{end}");
        assert_eq!(body["pid"], pid);
        assert_eq!(body["exit_status"], 3, "event {i}: {end}");
        assert!(humantime::parse_rfc3339(body["exited_at"].as_str().unwrap()).is_ok());
    }
}

#[test]
fn events_is_not_listed_and_recursive_walks_never_open_it() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/walked")).unwrap();
    // A reader blocked on the stream meanwhile changes nothing for the walks.
    let mut cat = Command::new("cat").arg(fx.path("events")).stdout(Stdio::null()).spawn().unwrap();
    assert!(!ls(&fx.mnt()).contains(&"events".to_owned()), "{:?}", ls(&fx.mnt()));
    let meta = fs::metadata(fx.path("events")).expect("stat by name");
    assert!(meta.is_file());
    assert_eq!((meta.len(), meta.mode() & 0o7777), (0, 0o444), "a read-only stream of size 0");
    assert_eq!(errno_of(OpenOptions::new().write(true).open(fx.path("events"))), libc::EACCES);
    assert_eq!(errno_of(fs::remove_file(fx.path("events"))), libc::EPERM);
    assert_eq!(errno_of(fs::remove_dir(fx.path("events"))), libc::ENOTDIR);
    let mnt = fx.mnt();
    for walk in [
        format!("timeout 20 grep -r x {}", mnt.display()),
        format!("timeout 20 find {} -type f -exec cat {{}} + > /dev/null", mnt.display()),
        format!("timeout 20 tar -cf /dev/null -C {} .", mnt.display()),
    ] {
        let (code, _, err) = sh(fx.root(), &walk);
        assert_ne!(code, 124, "{walk} did not finish: {err}");
        assert!(code == 0 || (walk.contains("grep") && code == 1), "{walk}: exit {code}: {err}");
    }
    assert!(cat.try_wait().unwrap().is_none(), "cat events still blocks");
    // Parked all along the walks: killing it needs the daemon's EINTR, since the kernel
    // waits for the answer to a request it has sent.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(cat.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_until(DEADLINE, "cat to end on SIGTERM", || cat.try_wait().unwrap().is_some());
    fx.wait_for_log_line("the interrupted read at info", |l| l.contains("INFO") && l.contains("events stream by pid"));
}
