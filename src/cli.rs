//! Command-line interface: argument parsing and the process's exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::daemon::{self, MountArgs};

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

/// Parses the command line, runs it and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mount(args) if args.foreground => {
            daemon::init_logging();
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
