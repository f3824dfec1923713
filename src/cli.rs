//! Command-line interface: argument parsing and the process's exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::daemon;

/// ctrfs: containerd's images and containers as a filesystem, stored in LMDB.
#[derive(Debug, Parser)]
#[command(name = "ctrfs", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount the filesystem; returns once the mount is live (unless --foreground).
    Mount(MountArgs),
    /// Import an OCI image layout (directory, tar or tar.gz) through a mount.
    Import(crate::import::ImportArgs),
    /// Supervise one task (run by the daemon, not by users).
    #[command(hide = true)]
    Supervise(crate::runtime::SuperviseArgs),
}

/// Arguments of `ctrfs mount`.
#[derive(Debug, Clone, Args)]
pub struct MountArgs {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// State directory holding the LMDB environment and the daemon log.
    #[arg(long, value_name = "STATE_DIR", default_value = "/var/lib/ctrfs")]
    pub root: PathBuf,
    /// Number of FUSE worker threads.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Let users other than root see the mount (FUSE allow_other).
    #[arg(long)]
    pub allow_other: bool,
    /// Stay in the foreground and log to stderr.
    #[arg(long)]
    pub foreground: bool,
    /// The OCI runtime binary that runs tasks (runc, or a compatible one such as crun).
    #[arg(long, value_name = "PATH", default_value = "runc")]
    pub runtime: PathBuf,
    /// How snapshots are stored: overlayfs, or native (full copies). Default: overlayfs
    /// where it mounts in the state directory, native otherwise.
    #[arg(long, value_name = "NAME", value_parser = ["overlayfs", "native"])]
    pub snapshotter: Option<String>,
    /// How long a blob nothing references yet is kept (so an image can be copied in file
    /// by file before its target is written), e.g. 24h, 30m, 0s.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub content_lease: std::time::Duration,
}

/// Parses the command line, runs it and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mount(args) if args.foreground => {
            init_logging();
            daemon::run_foreground(&args)
        }
        Command::Mount(args) => daemon::spawn_background(&args),
        Command::Supervise(args) => return crate::runtime::supervise_main(args),
        Command::Import(args) => return crate::import::run_cli(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("ctrfs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,fuser=error"))
        .format_timestamp_micros()
        .init();
}
