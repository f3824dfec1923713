//! Mounting a snapshot's mounts at a target directory, and unmounting it.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{Result, SnapshotError};
use crate::model::Mount;

/// Mounts `mounts` (in order) at `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        mount_one(m, target)?;
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let read_only = m.options.iter().any(|o| o == "ro");
    let fail = |e: nix::Error| SnapshotError::io(format!("mount {} at {}", m.kind, target.display()), e.into());
    if m.kind == "bind" {
        mount(Some(Path::new(&m.source)), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(fail)?;
        if read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(fail)?;
        }
        return Ok(());
    }
    let data: Vec<&str> = m.options.iter().map(String::as_str).filter(|o| *o != "ro" && *o != "rw").collect();
    let flags = if read_only { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    mount(Some(m.source.as_str()), target, Some(m.kind.as_str()), flags, Some(data.join(",").as_str())).map_err(fail)
}

/// Unmounts `target`; one not mounted is not an error. A busy mount is detached, so it
/// goes once its last user does.
pub fn unmount(target: &Path) -> Result<()> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| SnapshotError::io(format!("unmount {}", target.display()), e.into())),
        Err(e) => Err(SnapshotError::io(format!("unmount {}", target.display()), e.into())),
    }
}
