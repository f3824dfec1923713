//! The benchmark's floor for a durable change: one small put per LMDB write transaction,
//! committed with the same settings as ctrfs's store (synced, no `NO_SYNC`), in a
//! directory on the disk the state directory is on. What is timed is the change a relabel
//! makes: a new value for one of N records already stored, so the file does not grow (a
//! growing file makes each sync also commit the filesystem's journal, which a store in
//! use seldom needs).
//!
//! `lmdb_commit DIR N`: prints `commit N seconds us_per_op`. Run by scripts/bench.sh.

use std::time::Instant;

use heed::types::{Bytes, U64};
use heed::{byteorder::BigEndian, Database, EnvOpenOptions};

fn main() {
    // `cargo test --all-targets` runs benchmarks without arguments, `cargo bench` with
    // `--bench`: nothing to measure then.
    if std::env::args().nth(1).is_none_or(|a| a.starts_with("--")) {
        eprintln!("usage: lmdb_commit DIR N (run by scripts/bench.sh)");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let (dir, n) = match &args[1..] {
        [dir, n, ..] => (std::path::PathBuf::from(dir), n.parse::<u64>().expect("N")),
        _ => panic!("usage: lmdb_commit DIR N"),
    };
    std::fs::create_dir_all(&dir).expect("dir");
    // SAFETY: a fresh environment opened once by this process, on a local filesystem.
    let env = unsafe { EnvOpenOptions::new().map_size(1 << 30).max_dbs(4).open(&dir) }.expect("open");
    let mut wtxn = env.write_txn().expect("txn");
    let db: Database<U64<BigEndian>, Bytes> = env.create_database(&mut wtxn, Some("bench")).expect("db");
    wtxn.commit().expect("commit");
    let put = |i: u64, record: &[u8]| {
        let mut wtxn = env.write_txn().expect("txn");
        db.put(&mut wtxn, &i, record).expect("put");
        wtxn.commit().expect("commit");
    };
    for i in 0..n {
        put(i, &[b'x'; 200]);
    }
    let start = Instant::now();
    for i in 0..n {
        put(i, &[b'y'; 200]);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("commit {n} {seconds:.6} {:.2}", seconds * 1e6 / n as f64);
}
