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
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,fuser=error"))
        .format_timestamp_micros()
        .build();
    let level = logger.filter();
    if log::set_boxed_logger(Box::new(KernelGoneQuiet(logger))).is_ok() {
        log::set_max_level(level);
    }
}

/// The daemon's logger, with one of fuser's error lines moved to debug: a reply the kernel
/// answers with ENOENT ("Failed to send FUSE reply: No such file or directory") is to a
/// request the kernel dropped because its caller was interrupted (Ctrl-C on
/// `cat wait/<id>`); nothing failed, and the interruption is logged once at info.
struct KernelGoneQuiet(env_logger::Logger);

impl log::Log for KernelGoneQuiet {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        let dropped = record.level() == log::Level::Error
            && record.target().starts_with("fuser::reply")
            && record.args().to_string().ends_with("(os error 2)");
        if dropped {
            let quiet = log::Record::builder()
                .level(log::Level::Debug)
                .target(record.target())
                .args(*record.args())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.0.log(&quiet);
        } else {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
