//! Stop signals (issue 8, item 8): every SIGTERM tries the unmount again. A busy mount
//! says why in the log and keeps serving; once nothing holds it, SIGTERM stops the daemon.

use std::fs;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// The pid of the daemon serving `fx`: the `ctrfs mount <mnt> ... --foreground` process.
fn daemon_pid(fx: &MountFixture) -> Pid {
    let mnt = fx.mnt().display().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.get(1).map(String::as_str) == Some("mount") && args.contains(&mnt) && args.iter().any(|a| a == "--foreground") {
            return Pid::from_raw(pid);
        }
    }
    panic!("no daemon process for {mnt}");
}

/// Whether `pid` has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("Z"),
        Err(_) => true,
    }
}

/// A process keeping the mount busy (its working directory is inside), stopped by its
/// pid when dropped, also when the test fails.
struct Busy(Child);

impl Busy {
    fn stop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn sigterm_on_a_busy_mount_keeps_serving_and_a_later_sigterm_stops_the_daemon() {
    let fx = MountFixture::new();
    let pid = daemon_pid(&fx);
    let mut busy = Busy(Command::new("sleep").arg("60").current_dir(fx.mnt()).spawn().expect("spawn sleep"));
    let busy_lines = || fx.log().lines().filter(|l| l.contains("is busy")).count();

    for attempt in 1..=2 {
        kill(pid, Signal::SIGTERM).unwrap();
        wait_until(DEADLINE, "the log to say the mount is busy", || busy_lines() == attempt);
        assert!(is_mounted(&fx.mnt()), "attempt {attempt}");
        assert!(!exited(pid), "attempt {attempt}: the daemon keeps serving");
        fs::metadata(fx.path("images")).expect("the mount still answers");
        fs::create_dir(fx.path(&format!("containers/c{attempt}"))).expect("and still takes changes");
    }

    busy.stop();
    kill(pid, Signal::SIGTERM).unwrap();
    wait_until(DEADLINE, "the daemon to exit after SIGTERM", || exited(pid));
    wait_until(DEADLINE, "the mount to go", || !is_mounted(&fx.mnt()));
    assert_eq!(busy_lines(), 2, "{}", fx.log());
}
