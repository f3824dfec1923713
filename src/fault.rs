//! Fault injection for the crash tests: `point(name)` aborts the daemon when the
//! environment variable `CTRFS_FAULT` names that point, so a test can stop it exactly
//! between two steps whose order the crash rules depend on (a file placed and its record
//! not yet written, records gone and files not yet removed, a process started and its
//! task not yet recorded).
//!
//! Compiled only into debug builds (`cfg(debug_assertions)`): the mount tests run the
//! binary cargo builds for `cargo test --all-targets`, which is a debug build, so no
//! feature flag has to reach it; a release binary has an empty function here and reads
//! no variable, so nothing in the environment of a production daemon can make it abort.
//! The variable is read once, at the first point reached.

/// The points, by the name `CTRFS_FAULT` gives them.
pub mod points {
    /// A verified blob renamed into place, its record still "ingesting".
    pub const BLOB_PLACED: &str = "blob-placed";
    /// A collection's records deleted and committed, their files not yet removed.
    pub const COLLECTED_RECORDS: &str = "collected-records";
    /// A layer unpacked into its directory, its snapshot record not yet written.
    pub const LAYER_UNPACKED: &str = "layer-unpacked";
    /// A container's active snapshot directory prepared, its record not yet written.
    pub const ACTIVE_PREPARED: &str = "active-prepared";
    /// A task's supervisor spawned, still creating the container (`runc run`).
    pub const SUPERVISOR_SPAWNED: &str = "supervisor-spawned";
    /// runc started a task's process, its task record not yet written.
    pub const TASK_STARTED: &str = "task-started";
    /// runc started a stopped task's next run (`echo start`), its record still `stopped`.
    pub const TASK_RESTARTED: &str = "task-restarted";
}

/// Aborts the process (no unwinding, no destructors: as close to `kill -9` as the
/// process can do to itself) when `CTRFS_FAULT` equals `name`. Debug builds only.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("CTRFS_FAULT").ok().filter(|v| !v.is_empty()));
    if armed.as_deref() == Some(name) {
        // stderr is unbuffered: the line is in the log before the abort.
        eprintln!("ctrfs: fault point {name} reached: aborting");
        std::process::abort();
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}
