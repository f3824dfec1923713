//! The state directory is private, as containerd keeps its root: unpacked layers hold
//! setuid binaries and device nodes, bundles hold the spec's environment, logs and blobs
//! the containers' data. The directory is 0700; what the daemon makes below it is 0700
//! (directories) or 0600 (files), by an explicit mode where it is created and by a umask
//! of 077 as a belt for anything created without one. Inside a snapshot's `fs` the
//! container's files keep their own modes: the directories above them keep others out.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::Mode;

/// The mode of every directory the daemon makes in the state directory, and of itself.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file the daemon makes in the state directory.
pub const FILE_MODE: u32 = 0o600;

/// Sets the process's umask to 077, so that nothing made without an explicit mode is
/// readable by others. Call it before any thread starts (the umask is per process).
pub fn restrict_umask() {
    nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
}

/// Creates `root` (mode 0700) if it is missing; its parents, outside the state
/// directory, get the usual modes.
pub fn create(root: &Path) -> io::Result<()> {
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(root) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && root.is_dir() => Ok(()),
        other => other,
    }
}

/// Creates `root` private, or makes an existing one private: a mode open to the group or
/// others becomes 0700. Returns the old mode when it changed one, for the caller to log.
pub fn make_private(root: &Path) -> io::Result<Option<u32>> {
    create(root)?;
    let mode = fs::metadata(root)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(root, fs::Permissions::from_mode(DIR_MODE))?;
    Ok(Some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_directory_is_private_and_an_open_one_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/state");
        assert_eq!(make_private(&root).unwrap(), None);
        assert_eq!(fs::metadata(&root).unwrap().permissions().mode() & 0o7777, DIR_MODE);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(make_private(&root).unwrap(), Some(0o755));
        assert_eq!(fs::metadata(&root).unwrap().permissions().mode() & 0o7777, DIR_MODE);
        assert_eq!(make_private(&root).unwrap(), None, "already private");
    }
}
