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
    /// Print what a mount holds (counts per kind) and what serves it (state directory,
    /// store size, runtime and its version).
    Status(crate::status::StatusArgs),
    /// List the namespaces of a state directory, or remove an empty one.
    Namespace(crate::namespaces::NamespaceArgs),
    /// Print a shell completion script (e.g. `ctrfs completions bash >
    /// /etc/bash_completion.d/ctrfs`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, roff (e.g. `ctrfs man | man -l -`).
    Man,
    /// Supervise one task (run by the daemon, not by users).
    #[command(hide = true)]
    Supervise(crate::runtime::SuperviseArgs),
}

/// Parses the command line, runs it and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let program = std::env::args_os().next();
    let invoked_as = program.as_deref().and_then(|a| std::path::Path::new(a).file_name());
    let cli = if invoked_as == Some(std::ffi::OsStr::new(crate::mount_helper::HELPER_NAME)) {
        // Run by mount(8) for `mount -t fuse.ctrfs` or an fstab line.
        let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
        match crate::mount_helper::mount_argv(&args).map(Cli::try_parse_from) {
            Ok(Ok(cli)) => cli,
            Ok(Err(e)) => e.exit(),
            Err(e) => {
                eprintln!("{}: {e}", crate::mount_helper::HELPER_NAME);
                return ExitCode::FAILURE;
            }
        }
    } else {
        Cli::parse()
    };
    let result = match cli.command {
        Command::Mount(args) if args.foreground => {
            daemon::init_logging();
            daemon::run_foreground(&args)
        }
        Command::Mount(args) => daemon::spawn_background(&args),
        Command::Supervise(args) => return crate::runtime::supervise_main(args),
        Command::Import(args) => return crate::import::run_cli(&args),
        Command::Status(args) => crate::status::run(&args),
        Command::Namespace(args) => crate::namespaces::run(&args),
        Command::Completions { shell } => print_completions(shell),
        Command::Man => print_man_page(),
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

/// Completions generated from the command-line definition itself, so they never drift.
/// The generators offer hidden subcommands too, so the daemon's own (`supervise`) is left
/// out of the definition they are given.
fn print_completions(shell: clap_complete::Shell) -> Result<(), daemon::DaemonError> {
    use clap::CommandFactory;
    let full = Cli::command();
    let mut users = clap::Command::new("ctrfs")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut users, "ctrfs", &mut std::io::stdout());
    Ok(())
}

/// The manual page, from the same definition: `ctrfs(1)`, with each subcommand's options.
fn print_man_page() -> Result<(), daemon::DaemonError> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    let command = Cli::command();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        // ctrfs-mount(1) and so on, one page after the other (man renders each).
        let name: &'static str = Box::leak(format!("ctrfs-{}", sub.get_name()).into_boxed_str());
        clap_mangen::Man::new(sub.clone().name(name).version(env!("CARGO_PKG_VERSION"))).render(&mut out)?;
    }
    Ok(())
}
