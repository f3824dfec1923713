//! The benchmark's client: the same metadata workload, done with plain system calls (no
//! process per operation), on a ctrfs mount or on a plain directory, timed per phase.
//!
//! `client DIR N MODE [PHASES]` where MODE is `ctrfs` (a mount: read `info.json`) or
//! `plain` (a directory of the host: read the spec file), and PHASES a comma-separated
//! subset of create,read,reread,stat,readdir,relabel,relabel8,delete (default: all, in that
//! order); create8 and delete8 are create and delete from 8 threads, each on its own
//! containers (not in the default list: name them, create8 first); rmdir and rmdir8 delete
//! with one `rmdir` of the container, its fields still set (ctrfs only: what stands for
//! containerd's one Delete call; a plain directory must be emptied first, as delete does).
//! Prints one line per
//! phase: `phase N seconds us_per_op`. Run by scripts/bench.sh; not a test.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

const SPEC: &str = r#"{"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/"},"root":{"path":"rootfs"}}"#;

fn write_file(path: &Path, bytes: &[u8], append: bool) {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!append)
        .append(append)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all(bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn phase(name: &str, n: usize, body: &mut dyn FnMut()) {
    let start = Instant::now();
    body();
    let seconds = start.elapsed().as_secs_f64();
    println!("{name} {n} {seconds:.6} {:.2}", seconds * 1e6 / n as f64);
}

/// Runs `body(i)` for i in 0..n from `threads` threads, thread t taking every
/// `threads`-th index from t (distinct containers per thread).
fn spread(n: usize, threads: usize, body: &(dyn Fn(usize) + Sync)) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || (t..n).step_by(threads).for_each(body));
        }
    });
}

fn main() {
    // `cargo test --all-targets` runs benchmarks without arguments, `cargo bench` with
    // `--bench`: nothing to measure then.
    if std::env::args().nth(1).is_none_or(|a| a.starts_with("--")) {
        eprintln!("usage: client DIR N ctrfs|plain [PHASES] (run by scripts/bench.sh)");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let (dir, n, mode) = match &args[1..] {
        [dir, n, mode, ..] => (Path::new(dir).join("containers"), n.parse::<usize>().expect("N"), mode.as_str()),
        _ => panic!("usage: client DIR N ctrfs|plain [PHASES]"),
    };
    let wanted = args.get(4).cloned().unwrap_or_else(|| "create,read,reread,stat,readdir,relabel,relabel8,delete".into());
    let wanted: Vec<&str> = wanted.split(',').collect();
    let phase = |name: &str, n: usize, body: &mut dyn FnMut()| {
        if wanted.contains(&name) {
            phase(name, n, body);
        }
    };
    fs::create_dir_all(&dir).expect("containers/");
    let id = |i: usize| dir.join(format!("c{i}"));
    let readable = if mode == "ctrfs" { "info.json" } else { "spec" };
    let create = |i: usize| {
        fs::create_dir(id(i)).expect("mkdir");
        write_file(&id(i).join("spec"), SPEC.as_bytes(), false);
        write_file(&id(i).join("labels"), b"app=web\ntier=front\n", false);
    };
    let delete = |i: usize| {
        fs::remove_file(id(i).join("spec")).expect("rm spec");
        fs::remove_file(id(i).join("labels")).expect("rm labels");
        fs::remove_dir(id(i)).expect("rmdir");
    };
    phase("create", n, &mut || (0..n).for_each(create));
    phase("create8", n, &mut || spread(n, 8, &create));
    phase("read", n, &mut || {
        let mut buffer = Vec::with_capacity(4096);
        for i in 0..n {
            buffer.clear();
            fs::File::open(id(i).join(readable)).and_then(|mut f| f.read_to_end(&mut buffer)).expect("read");
        }
    });
    phase("reread", n, &mut || {
        let mut buffer = Vec::with_capacity(4096);
        for _ in 0..n {
            buffer.clear();
            fs::File::open(id(0).join(readable)).and_then(|mut f| f.read_to_end(&mut buffer)).expect("read");
        }
    });
    phase("stat", n, &mut || {
        for i in 0..n {
            fs::symlink_metadata(id(i).join("labels")).expect("stat");
        }
    });
    phase("readdir", n, &mut || {
        let count = fs::read_dir(&dir).expect("readdir").count();
        assert_eq!(count, n, "listed");
    });
    // A value of this run's own, so a run against a mount an earlier run relabelled still
    // changes every container (an identical write is no change, and commits nothing).
    let (one, eight) = (format!("rev={}\n", std::process::id()), format!("rev={}-8\n", std::process::id()));
    phase("relabel", n, &mut || {
        for i in 0..n {
            write_file(&id(i).join("labels"), one.as_bytes(), true);
        }
    });
    // The same relabels from 8 threads, each on its own containers: what group commit
    // would multiply (the kernel does not serialize writes to distinct files).
    phase("relabel8", n, &mut || spread(n, 8, &|i| write_file(&id(i).join("labels"), eight.as_bytes(), true)));
    phase("delete", n, &mut || (0..n).for_each(delete));
    phase("delete8", n, &mut || spread(n, 8, &delete));
    let rmdir = |i: usize| fs::remove_dir(id(i)).expect("rmdir of a container with its fields");
    phase("rmdir", n, &mut || (0..n).for_each(rmdir));
    phase("rmdir8", n, &mut || spread(n, 8, &rmdir));
}
