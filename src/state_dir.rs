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

/// The directory under the state directory that holds the namespaces other than
/// `default`, one directory each.
pub const NAMESPACES_DIR: &str = "namespaces";

/// Where a namespace's state lives: `default`'s is the state directory itself (where all
/// state lived before namespaces), any other's is `ROOT/namespaces/<name>/`, laid out the
/// same way (its own store, content, snapshots, tasks and lock).
pub fn namespace_dir(root: &Path, namespace: &str) -> std::path::PathBuf {
    if namespace == crate::model::DEFAULT_NAMESPACE {
        root.to_path_buf()
    } else {
        root.join(NAMESPACES_DIR).join(namespace)
    }
}

/// The namespaces with state under `root`, sorted: `default` (when its store exists) and
/// every valid name under `namespaces/`.
pub fn namespaces(root: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    if root.join("db").is_dir() {
        names.push(crate::model::DEFAULT_NAMESPACE.to_owned());
    }
    match fs::read_dir(root.join(NAMESPACES_DIR)) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                if crate::model::validate_namespace(&name).is_ok() && entry.file_type()?.is_dir() {
                    names.push(name);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Creates the state directory of `namespace` under `root` where missing (mode 0700), as
/// `create` does: existing directories keep their modes (the daemon tightens and logs).
pub fn create_namespace(root: &Path, namespace: &str) -> io::Result<std::path::PathBuf> {
    create(root)?;
    let dir = namespace_dir(root, namespace);
    if dir != root {
        create(&root.join(NAMESPACES_DIR))?;
        create(&dir)?;
    }
    Ok(dir)
}

/// Makes the state directory of `namespace` under `root`, private (and `root` itself, and
/// `namespaces/`, private too). Returns the old mode of `root` when it had to tighten it.
pub fn make_namespace_private(root: &Path, namespace: &str) -> io::Result<Option<u32>> {
    let tightened = make_private(root)?;
    let dir = namespace_dir(root, namespace);
    if dir != root {
        make_private(&root.join(NAMESPACES_DIR))?;
        make_private(&dir)?;
    }
    Ok(tightened)
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

    #[test]
    fn default_lives_in_the_state_directory_and_others_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        assert_eq!(namespace_dir(&root, "default"), root);
        assert_eq!(namespace_dir(&root, "build"), root.join("namespaces/build"));
        assert_eq!(namespaces(&root).unwrap(), Vec::<String>::new());
        make_namespace_private(&root, "build").unwrap();
        for private in [root.clone(), root.join("namespaces"), root.join("namespaces/build")] {
            assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o7777, DIR_MODE, "{}", private.display());
        }
        fs::create_dir(root.join("db")).unwrap();
        fs::create_dir(root.join("namespaces/-not-a-name")).unwrap();
        assert_eq!(namespaces(&root).unwrap(), ["build", "default"]);
    }
}
