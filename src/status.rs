//! `ctrfs status MOUNTPOINT`: what a mount holds and what serves it, for a host's admin.
//! Counts come from the tree itself (listings, as `ls` makes them); the state directory
//! and the runtime from the serving daemon's own command line, found in `/proc` and read
//! with the `ctrfs mount` definition, so the defaults are the daemon's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, FromArgMatches};

use crate::daemon::{DaemonError, MountArgs};

/// Arguments of `ctrfs status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// A ctrfs mount point.
    pub mountpoint: PathBuf,
}

/// What one mount holds, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Directories under `images/` with a target.
    pub images: usize,
    /// Entries of `containers/`.
    pub containers: usize,
    /// Entries of `tasks/`.
    pub tasks: usize,
    /// Of those, the running ones.
    pub running: usize,
    /// Blobs in `content/sha256/` and `content/sha512/`.
    pub blobs: usize,
    /// Entries of `snapshots/`.
    pub snapshots: usize,
}

/// Prints the status of the mount at `args.mountpoint`. A reader that stopped reading
/// (`| head`) ends it quietly, as it ends any other tool.
pub fn run(args: &StatusArgs) -> Result<(), DaemonError> {
    match print(args) {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(()),
        other => other,
    }
}

fn print(args: &StatusArgs) -> Result<(), DaemonError> {
    let mnt = std::fs::canonicalize(&args.mountpoint).map_err(|e| format!("{}: {e}", args.mountpoint.display()))?;
    if !crate::daemon::is_ctrfs_mount(&mnt) {
        return Err(format!("{} is not a ctrfs mount", mnt.display()).into());
    }
    let counts = count(&mnt)?;
    // A closed pipe (`| head`) ends the command with its error, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(out, "mount       {}", mnt.display())?;
    let daemon = serving_daemon(&mnt);
    // Without the daemon's command line the namespace is unknown; events say it too.
    let namespace = daemon.as_ref().map_or("unknown", |(_, d)| d.namespace.as_str());
    writeln!(out, "namespace   {namespace}")?;
    match daemon {
        Some((pid, daemon)) => {
            let home = crate::state_dir::namespace_dir(&daemon.root, &daemon.namespace);
            let store = std::fs::metadata(home.join("db").join("data.mdb")).map_or(0, |m| m.len());
            writeln!(out, "daemon      pid {pid}")?;
            writeln!(out, "state       {} (store {})", home.display(), human_bytes(store))?;
            writeln!(out, "runtime     {} ({})", daemon.runtime.display(), runtime_version(&daemon.runtime))?;
        }
        None => writeln!(out, "daemon      not found in /proc (another pid namespace?)")?,
    }
    writeln!(out, "images      {}", counts.images)?;
    writeln!(out, "containers  {}", counts.containers)?;
    writeln!(out, "tasks       {} ({} running)", counts.tasks, counts.running)?;
    writeln!(out, "content     {} blobs", counts.blobs)?;
    writeln!(out, "snapshots   {}", counts.snapshots)?;
    Ok(())
}

/// The objects under `mnt`, counted from its listings: an image is a directory under
/// `images/` with a `target`; a task is running when its status says so.
pub fn count(mnt: &Path) -> Result<Counts, DaemonError> {
    let names = |rel: &str| -> Result<Vec<String>, DaemonError> {
        Ok(std::fs::read_dir(mnt.join(rel))?.map(|e| Ok(e?.file_name().to_string_lossy().into_owned())).collect::<std::io::Result<_>>()?)
    };
    let tasks = names("tasks")?;
    let running = tasks
        .iter()
        .filter(|id| {
            std::fs::read(mnt.join("tasks").join(id))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|s| s["status"] == "running")
        })
        .count();
    Ok(Counts {
        images: count_images(&mnt.join("images"))?,
        containers: names("containers")?.len(),
        tasks: tasks.len(),
        running,
        blobs: names("content/sha256")?.len() + names("content/sha512")?.len(),
        snapshots: names("snapshots")?.len(),
    })
}

fn count_images(dir: &Path) -> Result<usize, DaemonError> {
    let mut images = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            images += usize::from(entry.path().join("target").exists()) + count_images(&entry.path())?;
        }
    }
    Ok(images)
}

/// The daemon serving `mnt` (its pid and `ctrfs mount` arguments), from `/proc`.
fn serving_daemon(mnt: &Path) -> Option<(u32, MountArgs)> {
    let mount_command = MountArgs::augment_args(clap::Command::new("mount"));
    let command = clap::Command::new("ctrfs").subcommand(mount_command);
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let argv: Vec<String> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if argv.get(1).map(String::as_str) != Some("mount") || !argv.iter().any(|a| a == "--foreground") {
            return None;
        }
        let matches = command.clone().try_get_matches_from(&argv).ok()?;
        let mut args = MountArgs::from_arg_matches(matches.subcommand_matches("mount")?).ok()?;
        // Relative paths are the daemon's own working directory's.
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
        let point = std::fs::canonicalize(cwd.join(&args.mountpoint)).ok()?;
        args.root = cwd.join(&args.root);
        (point == mnt).then_some((pid, args))
    })
}

fn runtime_version(runtime: &Path) -> String {
    match Command::new(runtime).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned(),
        Ok(out) => format!("--version failed: {}", out.status),
        Err(e) => format!("cannot run it: {e}"),
    }
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
