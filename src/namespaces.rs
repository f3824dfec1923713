//! `ctrfs namespace ls|rm`: the namespaces a state directory holds, and removing an empty
//! one. Each namespace is a store of its own (`state_dir::namespace_dir`), so these work
//! on the directories and stores directly; a namespace being served is never touched (its
//! daemon holds its lock).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::daemon::DaemonError;
use crate::model::DEFAULT_NAMESPACE;
use crate::state_dir;
use crate::store::{Store, StoreOptions, StoreRead};

/// Arguments of `ctrfs namespace`.
#[derive(Debug, Clone, Args)]
pub struct NamespaceArgs {
    /// State directory holding the namespaces.
    #[arg(long, value_name = "STATE_DIR", default_value = "/var/lib/ctrfs", global = true)]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: NamespaceCommand,
}

/// The namespace subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum NamespaceCommand {
    /// List the namespaces, one per line.
    Ls,
    /// Remove a namespace that holds nothing (refused while it holds objects or is mounted).
    Rm {
        /// The namespace.
        name: String,
    },
}

/// Runs `ctrfs namespace …`.
pub fn run(args: &NamespaceArgs) -> Result<(), DaemonError> {
    match &args.command {
        NamespaceCommand::Ls => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for name in state_dir::namespaces(&args.root)? {
                writeln!(out, "{name}")?;
            }
            Ok(())
        }
        NamespaceCommand::Rm { name } => remove(&args.root, name),
    }
}

/// What a namespace still holds, as a phrase ("2 containers, 1 image"); empty when nothing.
fn holdings(store: &Store) -> Result<String, DaemonError> {
    let reader = store.read()?;
    let mut images = 0;
    reader.for_each_image(0, &mut |_, image| {
        images += usize::from(image.is_image());
        true
    })?;
    let mut containers = 0;
    reader.for_each_container(0, &mut |_, _| {
        containers += 1;
        true
    })?;
    let tasks = reader.tasks()?.len();
    let (blobs, snapshots) = reader.record_ids()?;
    let kinds = [(images, "image"), (containers, "container"), (tasks, "task"), (blobs.len(), "blob"), (snapshots.len(), "snapshot")];
    let held: Vec<String> =
        kinds.iter().filter(|(n, _)| *n > 0).map(|(n, kind)| format!("{n} {kind}{}", if *n == 1 { "" } else { "s" })).collect();
    Ok(held.join(", "))
}

fn remove(root: &std::path::Path, name: &str) -> Result<(), DaemonError> {
    crate::model::validate_namespace(name)?;
    if name == DEFAULT_NAMESPACE {
        return Err("the default namespace is the state directory itself; it cannot be removed".into());
    }
    let home = state_dir::namespace_dir(root, name);
    if !home.is_dir() {
        return Err(format!("no namespace {name} in {}", root.display()).into());
    }
    let _lock = crate::daemon::lock_state_dir(&home).map_err(|_| format!("namespace {name} is mounted; unmount it first"))?;
    let store = Store::open_with(&home.join("db"), StoreOptions { namespace: name.to_owned(), ..Default::default() })?;
    let held = holdings(&store)?;
    if !held.is_empty() {
        return Err(format!("namespace {name} still holds {held}; remove them first").into());
    }
    drop(store);
    // Race-safe against links planted inside (std's remove_dir_all opens each level
    // relative to its parent without following symbolic links).
    std::fs::remove_dir_all(&home).map_err(|e| format!("removing {}: {e}", home.display()))?;
    log::info!("namespace {name} removed from {}", root.display());
    Ok(())
}
