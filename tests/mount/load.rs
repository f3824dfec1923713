//! Load and soak through a real mount with the real runc (docs/reliability.md, "Load and
//! soak").
//!
//! - Load: shells run mixed operations while a task writes numbered lines to stdout as
//!   fast as it can, and a prober times a `stat` and a label append. Every operation must
//!   be answered, the task's log must hold every line it wrote, and the daemon's memory
//!   must stay bounded. Latencies are reported on a `load:` line, never asserted.
//! - Soak: mount and unmount cycles, two of them a `kill -9` of the daemon, with tasks
//!   running throughout. Mounts, processes, the daemon's descriptors and the state
//!   directory's disk usage must not grow; the figures go to a `soak:` line.
//!
//! Knobs (environment of the test); the defaults are the suite's fast run:
//! `CTRFS_LOAD_SHELLS` (8), `CTRFS_LOAD_SECS` (5), `CTRFS_SOAK_CYCLES` (10). The long run
//! of the issue is `CTRFS_LOAD_SHELLS=32 CTRFS_LOAD_SECS=60 CTRFS_SOAK_CYCLES=200`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::crash::check_consistency;
use crate::oci::{image_container, import_by_copying};
use crate::oci_fixture::two_layer_layout;
use crate::tasks::Tasks;

const IMAGE: &str = "load/busybox";
const TASK_DEADLINE: Duration = Duration::from_secs(20);
/// An operation that takes longer than this counts as hung: the daemon stopped answering.
const OP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a shell may take to finish its round once told to stop (a round is a dozen
/// processes, and 32 shells share two cores).
const SHELL_DEADLINE: Duration = Duration::from_secs(60);
/// The daemon's peak resident memory must stay below this: generous, so only a leak or a
/// buffer that grows with the load (not a slow machine) fails it.
const RSS_BOUND_KIB: u64 = 512 * 1024;
/// How much the state directory may grow over a soak beyond what the tasks' logs wrote:
/// LMDB takes a page or so for a new record before the freed ones of removed records are
/// reused, and the short task's files come and go. Generous against that, tiny against a
/// leak of a task directory or a snapshot per cycle (hundreds of KiB each).
const DISK_ALLOWANCE_KIB: i64 = 1024;
/// How long a process count or a descriptor count may take to settle after the last
/// operation (an exiting supervisor, a runc being reaped).
const SETTLE: Duration = Duration::from_secs(5);

fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------
// What /proc says about the daemon and its tasks.

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`); `None` once the process is gone.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// How many descriptors process `pid` has open.
fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc").expect("read /proc").flatten().filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// The command line of every living process that names `dir` in it (the daemon names its
/// state directory, each supervisor its task's directory, runc its root below it), with
/// `dir` written as `STATE`, sorted: what a leak would add to.
fn procs_naming(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.to_string_lossy();
    let mut found: Vec<(u32, String)> = pids()
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&*dir).then(|| (pid, cmdline.trim().replace(&*dir, "STATE")))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

fn cmdlines(procs: &[(u32, String)]) -> Vec<String> {
    procs.iter().map(|(_, c)| c.clone()).collect()
}

/// How many processes live in a cgroup whose path starts with `prefix`: ctrfs puts each
/// task in `/ctrfs-<hash of the state directory>/<id>`, so these are the tasks' processes.
fn procs_in_cgroups(prefix: &str) -> usize {
    pids()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.lines().any(|l| l.split(':').nth(2).is_some_and(|p| p.starts_with(prefix))))
        })
        .count()
}

/// The cgroup prefix ctrfs gave task `id` (whose process is `pid`), without the id.
fn task_cgroup_prefix(pid: u32, id: &str) -> String {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read the task's cgroups");
    let suffix = format!("/{id}");
    cgroups
        .lines()
        .filter_map(|l| l.split(':').nth(2))
        .find(|p| p.starts_with("/ctrfs-") && p.ends_with(&suffix))
        .map(|p| p[..p.len() - id.len()].to_owned())
        .unwrap_or_else(|| panic!("task {id} (pid {pid}) is in no /ctrfs-*/{id} cgroup:\n{cgroups}"))
}

/// Mount points at or below `dir`, sorted, with `dir` written as `ROOT`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let mut found: Vec<String> = fs::read_to_string("/proc/mounts")
        .expect("read /proc/mounts")
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&*dir))
        .map(|m| m.replace(&*dir, "ROOT"))
        .collect();
    found.sort();
    found
}

/// Disk usage of `dir` in KiB, on its own filesystem only (`du -x`): the tasks' root
/// filesystems mounted below it are views of snapshots already counted.
fn du_kib(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-skx").arg(dir).output().expect("run du");
    assert!(out.status.success(), "du {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("du said {text:?}"))
}

/// Like `wait_until`, but says whether `cond` came to hold instead of panicking.
fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The `p`th percentile of `samples` (which it sorts), in milliseconds.
fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    samples.sort();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank].as_secs_f64() * 1e3
}

fn labels_of(path: &Path) -> BTreeMap<String, String> {
    read(path).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

// ---------------------------------------------------------------------------------------
// Load.

/// Writes 1, 2, 3... to stdout, one `write()` per line, as fast as busybox sh can, until
/// `/tmp/stop` exists (looked at every 1000 lines, a `stat` without a fork); then says on
/// stderr how many lines it wrote, so the count the log must hold is known exactly.
const FLOOD: &str = "i=0
while :; do
    i=$((i + 1))
    echo $i
    if [ $((i % 1000)) -eq 0 ] && [ -e /tmp/stop ]; then break; fi
done
echo \"wrote $i\" >&2";

/// One shell's rounds of mixed operations on its own container `containers/load-$K`,
/// until the file `$STOP` exists; prints how many rounds it completed. With `set -e` the
/// first operation that fails ends the shell, its message on stderr. Round `n` appends
/// label `k<n % 16>=v<n>` and sets `user.x` to `n`, so the labels the shell was
/// acknowledged follow from its count.
const SHELL: &str = r#"set -e
c=containers/load-$K
n=0
while [ ! -e "$STOP" ]; do
    n=$((n + 1))
    echo "k$((n % 16))=v$n" >> "$c/labels"
    stat "$c" "$c/labels" > /dev/null
    cat "$c/labels" "$c/info.json" tasks/flood > /dev/null
    ls containers logs/flood > /dev/null
    tail -c 64 logs/flood/stdout > /dev/null
    mkdir "$c-tmp"
    rmdir "$c-tmp"
    setfattr -n user.x -v "$n" "$c"
    getfattr -n user.x "$c" > /dev/null
done
echo "$n"
"#;

/// The labels a shell that completed `rounds` rounds was acknowledged.
fn shell_labels(rounds: u64) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> =
        (1..=rounds).rev().take(16).map(|n| (format!("k{}", n % 16), format!("v{n}"))).collect();
    if rounds > 0 {
        labels.insert("x".into(), rounds.to_string());
    }
    labels
}

/// What the prober measured: each sample is one syscall (`stat`) or one `>>` (open,
/// write, close) of a label line.
#[derive(Default)]
struct Probe {
    stat: Vec<Duration>,
    append: Vec<Duration>,
    failures: Vec<String>,
    /// The labels it was acknowledged, as they must read at the end.
    labels: BTreeMap<String, String>,
}

/// Times a `stat` of `dir` and a label append to its `labels`, one pair every 5 ms (a
/// sampling rate, so the prober measures the load rather than adding to it), until `stop`.
fn probe(dir: &Path, stop: &AtomicBool) -> Probe {
    let labels = dir.join("labels");
    let mut probe = Probe::default();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let start = Instant::now();
        let stat = fs::metadata(dir);
        probe.stat.push(start.elapsed());
        if let Err(e) = stat {
            probe.failures.push(format!("stat {}: {e}", dir.display()));
        }
        let (key, value) = (format!("p{}", i % 64), format!("v{i}"));
        let start = Instant::now();
        let appended = write_doc(&labels, format!("{key}={value}\n").as_bytes(), Mode::Append);
        probe.append.push(start.elapsed());
        match appended {
            Ok(()) => {
                probe.labels.insert(key, value);
            }
            Err((stage, errno)) => probe.failures.push(format!("{key}={value} >> labels: {} at {stage:?}", errno_name(errno))),
        }
        thread::sleep(Duration::from_millis(5));
    }
    probe
}

/// The daemon's resident memory (KiB) and descriptors, sampled every 100 ms until `stop`.
#[derive(Default)]
struct Usage {
    samples: usize,
    max_rss_kib: u64,
    max_fds: usize,
}

fn sample_usage(pid: u32, stop: &AtomicBool) -> Usage {
    let mut usage = Usage::default();
    while !stop.load(Ordering::SeqCst) {
        if let Some(rss) = status_kib(pid, "VmRSS") {
            usage.samples += 1;
            usage.max_rss_kib = usage.max_rss_kib.max(rss);
            usage.max_fds = usage.max_fds.max(fd_count(pid));
        }
        thread::sleep(Duration::from_millis(100));
    }
    usage
}

fn spawn_shell(mnt: &Path, k: usize, stop: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(SHELL)
        .env("K", k.to_string())
        .env("STOP", stop)
        .current_dir(mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a load shell")
}

/// Waits for shell `k` (told to stop) and returns its rounds; panics with its stderr if an
/// operation failed.
fn finish_shell(k: usize, mut shell: Child, log: impl Fn() -> String) -> u64 {
    wait_until(SHELL_DEADLINE, &format!("load shell {k} to finish its round"), || shell.try_wait().unwrap().is_some());
    let out = shell.wait_with_output().expect("collect a load shell");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "load shell {k} failed ({}): {stderr}\nlog tail:\n{}", out.status, tail(&log(), 20));
    stdout.trim().parse().unwrap_or_else(|_| panic!("load shell {k} printed {stdout:?}"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads the flood's log through the mount and checks it is exactly `1\n2\n...N\n`;
/// returns N and the bytes read.
fn count_sequence(path: &Path) -> (u64, u64) {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut current, mut digits, mut bytes) = (0u64, 0u64, 0usize, 0u64);
    loop {
        let n = file.read(&mut buf).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            match b {
                b'0'..=b'9' => {
                    current = current * 10 + u64::from(b - b'0');
                    digits += 1;
                }
                b'\n' => {
                    assert!(
                        digits > 0 && current == lines + 1,
                        "line {} of the log is {current} (digits: {digits}), not {}: a line lost, repeated or torn",
                        lines + 1,
                        lines + 1
                    );
                    lines += 1;
                    (current, digits) = (0, 0);
                }
                other => panic!("byte {other:#x} after line {lines} of the log"),
            }
        }
        bytes += n as u64;
    }
    assert_eq!(digits, 0, "the log ends in a torn line after line {lines}");
    (lines, bytes)
}

/// What a load run measured.
struct LoadRun {
    probe: Probe,
    /// Rounds completed, by shell.
    rounds: Vec<u64>,
    usage: Usage,
    elapsed: Duration,
}

/// The prober, the sampler and `shells` shells against mount `t` for `secs` seconds.
fn run_load(t: &Tasks, shells: usize, secs: u64) -> LoadRun {
    let pid = t.daemon_pid();
    let stop = Arc::new(AtomicBool::new(false));
    let (probe_tx, probe_rx) = mpsc::channel();
    let (probe_dir, prober_stop) = (t.path("containers/probe"), Arc::clone(&stop));
    thread::spawn(move || probe_tx.send(probe(&probe_dir, &prober_stop)));
    let sampler_stop = Arc::clone(&stop);
    let sampler = thread::spawn(move || sample_usage(pid, &sampler_stop));
    let stop_file = t.root().join("stop-shells");
    let children: Vec<Child> = (0..shells).map(|k| spawn_shell(&t.mnt(), k, &stop_file)).collect();
    // A fixed-length run: the load is what is measured, so its length is the knob's. On a
    // machine busy with the rest of the suite a shell may not finish a round in that time;
    // it gets until SHELL_DEADLINE to finish one (a hung daemon still fails there).
    let started = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    wait_until(SHELL_DEADLINE, "every load shell to complete a round", || {
        (0..shells).all(|k| get_xattr(&t.path(&format!("containers/load-{k}")), "user.x").is_ok())
    });
    fs::write(&stop_file, b"").unwrap();
    stop.store(true, Ordering::SeqCst);
    // The prober's last operation began before the stop; a hung one never reports.
    let probe = probe_rx
        .recv_timeout(OP_DEADLINE)
        .unwrap_or_else(|_| panic!("the prober's last operation did not return within {OP_DEADLINE:?}: the daemon hangs"));
    let rounds = children.into_iter().enumerate().map(|(k, c)| finish_shell(k, c, || t.log())).collect();
    let elapsed = started.elapsed();
    LoadRun { probe, rounds, usage: sampler.join().expect("the memory sampler"), elapsed }
}

/// Tells the flood to stop, waits for its exit, and checks its log holds exactly the lines
/// it says it wrote; returns their count and bytes.
fn stop_and_count_flood(t: &Tasks) -> (u64, u64) {
    fs::write(t.state().join("rootfs/flood/tmp/stop"), b"").expect("tell the flood to stop");
    assert_eq!(t.wait("flood"), "0\n", "the flood exits on its own");
    let log = t.path("logs/flood/stdout");
    let (lines, bytes) = count_sequence(&log);
    assert_eq!(read(&t.path("logs/flood/stderr")), format!("wrote {lines}\n"), "the log holds every line the task wrote");
    assert_eq!(fs::metadata(&log).unwrap().len(), bytes, "the log's size is what reads give");
    (lines, bytes)
}

/// Every label a shell or the prober was acknowledged reads back, and nothing else.
fn check_acknowledged_labels(t: &Tasks, run: &LoadRun) {
    for (k, &n) in run.rounds.iter().enumerate() {
        assert!(n > 0, "load shell {k} completed no round");
        assert_eq!(labels_of(&t.path(&format!("containers/load-{k}/labels"))), shell_labels(n), "load shell {k}'s labels");
    }
    assert_eq!(labels_of(&t.path("containers/probe/labels")), run.probe.labels, "the prober's labels");
}

#[test]
fn load_of_mixed_shells_and_a_flooding_task_every_op_answered_every_line_kept_memory_bounded() {
    let shells = knob("CTRFS_LOAD_SHELLS", 8) as usize;
    let secs = knob("CTRFS_LOAD_SECS", 5);
    let t = Tasks::new();
    import_by_copying(&t, two_layer_layout(), "latest", IMAGE);
    image_container(&t, "flood", IMAGE, FLOOD);
    for k in 0..shells {
        fs::create_dir(t.path(&format!("containers/load-{k}"))).unwrap();
    }
    fs::create_dir(t.path("containers/probe")).unwrap();
    t.start("flood");
    let flood_log = t.path("logs/flood/stdout");
    wait_until(TASK_DEADLINE, "the flood's first lines", || fs::metadata(&flood_log).is_ok_and(|m| m.len() > 0));
    let pid = t.daemon_pid();
    let (rss_before, fds_before) = (status_kib(pid, "VmRSS").expect("the daemon's VmRSS"), fd_count(pid));

    let mut run = run_load(&t, shells, secs);
    let (lines, bytes) = stop_and_count_flood(&t);
    assert!(run.probe.failures.is_empty(), "the prober's operations failed: {:?}", run.probe.failures);
    check_acknowledged_labels(&t, &run);
    let peak = status_kib(pid, "VmHWM").expect("the daemon's VmHWM");
    // Thousands of operations later, with the flood gone, the daemon holds no more
    // descriptors than before them (a moment for the last release to be handled).
    let mut fds_after = fd_count(pid);
    wait_for(SETTLE, || {
        fds_after = fd_count(pid);
        fds_after <= fds_before
    });
    let probe = &mut run.probe;
    let slowest = probe.stat.iter().chain(&probe.append).max().copied().unwrap_or_default();
    let total: u64 = run.rounds.iter().sum();
    let per_sec = |n: u64| n as f64 / run.elapsed.as_secs_f64();
    eprintln!(
        "load: {shells} shells x {secs} s: {total} shell rounds ({:.1}/s, 0 failed); \
         stat p50 {:.2} ms p99 {:.2} ms (n={}); label append p50 {:.2} ms p99 {:.2} ms (n={}); slowest probe {:.1} ms; \
         flood {lines} lines ({:.1} MiB, {:.0} lines/s), contiguous; \
         daemon RSS {:.1} MiB before, max sampled {:.1} MiB (n={}), peak (VmHWM) {:.1} MiB; \
         daemon fds {fds_before} before, max sampled {}, {fds_after} after",
        per_sec(total),
        percentile_ms(&mut probe.stat, 50.0),
        percentile_ms(&mut probe.stat, 99.0),
        probe.stat.len(),
        percentile_ms(&mut probe.append, 50.0),
        percentile_ms(&mut probe.append, 99.0),
        probe.append.len(),
        slowest.as_secs_f64() * 1e3,
        bytes as f64 / (1 << 20) as f64,
        per_sec(lines),
        rss_before as f64 / 1024.0,
        run.usage.max_rss_kib as f64 / 1024.0,
        run.usage.samples,
        peak as f64 / 1024.0,
        run.usage.max_fds,
    );
    assert!(slowest < OP_DEADLINE, "a probe took {slowest:?}: the daemon stopped answering");
    assert!(fds_after <= fds_before, "the daemon holds {fds_after} descriptors after the load, {fds_before} before it");
    assert!(peak < RSS_BOUND_KIB, "the daemon's peak RSS {peak} KiB is not below {RSS_BOUND_KIB} KiB");
}

// ---------------------------------------------------------------------------------------
// Soak.

/// Writes a line five times a second without starting a process (`read -t` on a FIFO it
/// holds open is the sleep), so its cgroup holds exactly one process at any moment.
const TICKER: &str = "mkfifo /tmp/tick; exec 3<> /tmp/tick; while :; do echo tick; read -t 0.2 x <&3 || :; done";

/// What is measured at the same point of every cycle: after its operations, before the
/// daemon is stopped.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    daemon_fds: usize,
    supervisor_fds: usize,
    mounts: Vec<String>,
    procs: Vec<String>,
    task_procs: usize,
    du_kib: u64,
    /// What the running tasks' logs hold: data, so disk growth it accounts for is no leak.
    logs_bytes: u64,
}

struct Soak {
    t: Tasks,
    /// The pid of each long-running task, which must survive every restart.
    running: Vec<(&'static str, u64)>,
    cgroup_prefix: String,
}

impl Soak {
    fn new() -> Soak {
        let t = Tasks::new();
        import_by_copying(&t, two_layer_layout(), "latest", IMAGE);
        image_container(&t, "ticker", IMAGE, TICKER);
        image_container(&t, "sleeper", IMAGE, "exec sleep 1000000");
        image_container(&t, "short", IMAGE, "echo once");
        fs::create_dir(t.path("containers/notes")).unwrap();
        let mut running = Vec::new();
        for id in ["ticker", "sleeper"] {
            t.start(id);
            running.push((id, t.status(id)["pid"].as_u64().unwrap()));
        }
        let cgroup_prefix = task_cgroup_prefix(running[1].1 as u32, "sleeper");
        Soak { t, running, cgroup_prefix }
    }

    fn ticker_log(&self) -> PathBuf {
        self.t.state().join("tasks/ticker/stdout")
    }

    /// After a start of the daemon: the tasks are listed running with the pids they had,
    /// the ticker's log keeps growing, and the state is consistent (crash.rs's check: no
    /// orphaned runc container, no rootfs mount without its task, blobs and snapshots whole).
    fn check_survivors(&self, cycle: u64) {
        for (id, pid) in &self.running {
            let status = self.t.status(id);
            assert_eq!(status["status"], "running", "cycle {cycle}: task {id} is not running: {status}");
            assert_eq!(status["pid"].as_u64(), Some(*pid), "cycle {cycle}: task {id} has another process: {status}");
        }
        let log = self.ticker_log();
        let before = fs::metadata(&log).unwrap().len();
        wait_until(TASK_DEADLINE, &format!("cycle {cycle}: the ticker's log to grow"), || fs::metadata(&log).unwrap().len() > before);
        check_consistency(&self.t);
    }

    /// A label, a container made and removed, and a short task started, waited for and
    /// removed (its root filesystem mounted and unmounted).
    fn operate(&self, cycle: u64) {
        append(&self.t.path("containers/notes/labels"), format!("c{}={cycle}\n", cycle % 8));
        let tmp = self.t.path(&format!("containers/tmp-{cycle}"));
        fs::create_dir(&tmp).unwrap();
        fs::remove_dir(&tmp).unwrap();
        self.t.start("short");
        assert_eq!(self.t.wait("short"), "0\n", "cycle {cycle}: the short task");
        assert_eq!(read(&self.t.path("logs/short/stdout")), "once\n");
        fs::remove_file(self.t.path("tasks/short")).unwrap();
    }

    /// The processes naming the state directory once nothing is under way: the daemon
    /// and one supervisor per running task. A supervisor or runc of the short task may
    /// take a moment to end after `rm`, so this waits for that; a leak never ends.
    fn settled_procs(&self, cycle: u64) -> Vec<(u32, String)> {
        let want = 1 + self.running.len();
        let mut procs = Vec::new();
        let settled = wait_for(SETTLE, || {
            procs = procs_naming(&self.t.state());
            procs.len() == want
        });
        assert!(settled, "cycle {cycle}: {} processes name the state directory, not {want}: {procs:#?}", procs.len());
        procs
    }

    fn measure(&self, cycle: u64) -> Figures {
        let procs = self.settled_procs(cycle);
        let supervisor_fds = procs.iter().filter(|(_, c)| c.contains(" supervise ")).map(|(pid, _)| fd_count(*pid)).sum();
        let log_size = |id: &str| fs::metadata(self.t.state().join(format!("tasks/{id}/stdout"))).unwrap().len();
        Figures {
            procs: cmdlines(&procs),
            daemon_fds: fd_count(self.t.daemon_pid()),
            supervisor_fds,
            mounts: mounts_under(self.t.root()),
            task_procs: procs_in_cgroups(&self.cgroup_prefix),
            du_kib: du_kib(&self.t.state()),
            logs_bytes: self.running.iter().map(|(id, _)| log_size(id)).sum(),
        }
    }

    /// Compares a cycle's figures with the first cycle's: the same mounts, processes and
    /// task processes, and no more descriptors in the daemon or the supervisors. A count
    /// above the first is looked at again for a moment (a descriptor of the last operation
    /// being closed); a leak stays.
    fn check_no_growth(&self, cycle: u64, first: &Figures, now: &mut Figures) {
        assert_eq!(now.mounts, first.mounts, "cycle {cycle}: mounts under the fixture differ from the first cycle's");
        assert_eq!(now.procs, first.procs, "cycle {cycle}: processes naming the state directory differ from the first cycle's");
        assert_eq!(now.task_procs, first.task_procs, "cycle {cycle}: processes in the tasks' cgroups differ from the first cycle's");
        let daemon = self.t.daemon_pid();
        wait_for(SETTLE, || {
            now.daemon_fds = fd_count(daemon);
            now.daemon_fds <= first.daemon_fds
        });
        assert!(
            now.daemon_fds <= first.daemon_fds,
            "cycle {cycle}: the daemon has {} descriptors open, the first cycle's had {}: {:?}",
            now.daemon_fds,
            first.daemon_fds,
            fs::read_dir(format!("/proc/{daemon}/fd")).unwrap().flatten().map(|fd| fs::read_link(fd.path()).ok()).collect::<Vec<_>>()
        );
        assert!(
            now.supervisor_fds <= first.supervisor_fds,
            "cycle {cycle}: the supervisors have {} descriptors open, {} in the first cycle",
            now.supervisor_fds,
            first.supervisor_fds
        );
    }
}

#[test]
fn soak_of_mount_cycles_with_tasks_running_and_two_kill_9_leaks_no_mount_process_fd_or_disk() {
    let cycles = knob("CTRFS_SOAK_CYCLES", 10).max(3);
    // Two kills, a third and two thirds of the way through, each followed by clean cycles.
    let kills = [cycles / 3, 2 * cycles / 3];
    let started = Instant::now();
    let mut soak = Soak::new();
    let mut figures: Vec<Figures> = Vec::new();
    for cycle in 0..=cycles {
        if cycle > 0 {
            soak.check_survivors(cycle);
        }
        soak.operate(cycle);
        let mut now = soak.measure(cycle);
        if let Some(first) = figures.first() {
            soak.check_no_growth(cycle, first, &mut now);
        }
        figures.push(now);
        if cycle == cycles {
            break;
        }
        if kills.contains(&cycle) {
            soak.t.fixture().kill9_and_remount();
        } else {
            soak.t.fixture().remount();
        }
    }
    report_and_check_soak(cycles, &figures, started.elapsed());
    // With the tasks removed, nothing of them is left: one mount, one process.
    for (id, _) in std::mem::take(&mut soak.running) {
        fs::remove_file(soak.t.path(&format!("tasks/{id}"))).unwrap();
    }
    let procs = cmdlines(&soak.settled_procs(cycles + 1));
    assert_eq!(mounts_under(soak.t.root()), ["ROOT/mnt"], "after rm of every task only the FUSE mount is left");
    assert!(wait_for(SETTLE, || procs_in_cgroups(&soak.cgroup_prefix) == 0), "task processes outlive their tasks");
    eprintln!("soak: after rm of every task: mounts {:?}, processes {procs:?}, task processes 0", mounts_under(soak.t.root()));
}

fn report_and_check_soak(cycles: u64, figures: &[Figures], elapsed: Duration) {
    let (first, last) = (&figures[0], &figures[figures.len() - 1]);
    let fds: Vec<usize> = figures.iter().map(|f| f.daemon_fds).collect();
    let (min_fds, max_fds) = (fds.iter().min().unwrap(), fds.iter().max().unwrap());
    let supervisor_fds: Vec<usize> = figures.iter().map(|f| f.supervisor_fds).collect();
    let du_growth = last.du_kib as i64 - first.du_kib as i64;
    let data_kib = (last.logs_bytes - first.logs_bytes).div_ceil(1024) as i64;
    eprintln!(
        "soak: {cycles} cycles ({} unmounts, 2 kill -9) in {:.1} s; daemon fds first {} last {} min {min_fds} max {max_fds}; \
         supervisor fds first {} last {} max {}; mounts under the fixture {} ({:?}); processes naming the state dir {}; \
         task processes {}; state dir {} KiB -> {} KiB (max {} KiB; {du_growth:+} KiB, task logs {data_kib:+} KiB)",
        cycles - 2,
        elapsed.as_secs_f64(),
        first.daemon_fds,
        last.daemon_fds,
        first.supervisor_fds,
        last.supervisor_fds,
        supervisor_fds.iter().max().unwrap(),
        first.mounts.len(),
        first.mounts,
        first.procs.len(),
        first.task_procs,
        first.du_kib,
        last.du_kib,
        figures.iter().map(|f| f.du_kib).max().unwrap(),
    );
    assert!(
        du_growth <= data_kib + DISK_ALLOWANCE_KIB,
        "the state directory grew by {du_growth} KiB over {cycles} cycles, of which the tasks' logs account for {data_kib} KiB; \
         by cycle: {:?}",
        figures.iter().map(|f| f.du_kib).collect::<Vec<_>>()
    );
}
