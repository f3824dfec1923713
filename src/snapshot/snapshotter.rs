//! The snapshotter: one directory per snapshot, laid out for overlayfs or, where overlayfs
//! cannot mount, as full copies (containerd's `native`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::apply::{apply_layer, Applied, ApplyOptions, Compression, Whiteouts};
use super::copy::{copy_tree, remove_tree, tree_usage};
use super::{mount, Result, SnapshotError};
use crate::model::{Mount, Usage};

/// How snapshots are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Layers stacked by overlayfs; an active snapshot is an upper directory.
    Overlay,
    /// Each snapshot a full copy of its parent.
    Native,
}

impl Driver {
    /// containerd's name for it (what `containerd.io/gc.ref.snapshot.<name>` uses).
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlayfs",
            Driver::Native => "native",
        }
    }

    /// Parses a name as the command line gives it.
    pub fn from_name(name: &str) -> Option<Driver> {
        match name {
            "overlayfs" | "overlay" => Some(Driver::Overlay),
            "native" => Some(Driver::Native),
            _ => None,
        }
    }
}

/// The file in the snapshots directory that records which driver made them.
const DRIVER_FILE: &str = "driver";

/// The snapshots of one state directory.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    driver: Driver,
}

impl Snapshotter {
    /// Opens `root`, using `driver` or, when `None`, overlayfs if it mounts there and the
    /// copying driver otherwise.
    pub fn open(root: &Path, driver: Option<Driver>) -> Result<Snapshotter> {
        private_dir(root)?;
        let snapshotter = Snapshotter { root: root.to_owned(), driver: Driver::Native };
        // Snapshots made by one driver cannot be read by the other (overlay layers are
        // diffs, native ones full copies), so the first choice holds while any exist.
        let recorded = snapshotter.recorded_driver()?;
        let in_use = !snapshotter.ids_on_disk()?.is_empty();
        let driver = match (driver, recorded) {
            (Some(asked), Some(had)) if in_use && asked != had => {
                return Err(SnapshotError::Invalid(format!(
                    "the snapshots in {} were made by {}; mount with --snapshotter {} (or delete the containers and images first)",
                    root.display(),
                    had.name(),
                    had.name()
                )))
            }
            (Some(asked), _) => asked,
            (None, Some(had)) if in_use => had,
            (None, _) if overlay_works(root) => Driver::Overlay,
            (None, _) => {
                log::warn!("overlayfs does not mount in {}; snapshots are full copies (native)", root.display());
                Driver::Native
            }
        };
        let path = root.join(DRIVER_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(driver.name().as_bytes()))
            .map_err(|e| SnapshotError::io(format!("write {}", path.display()), e))?;
        Ok(Snapshotter { driver, ..snapshotter })
    }

    fn recorded_driver(&self) -> Result<Option<Driver>> {
        match fs::read_to_string(self.root.join(DRIVER_FILE)) {
            Ok(name) => Ok(Driver::from_name(name.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SnapshotError::io(format!("read {}", self.root.join(DRIVER_FILE).display()), e)),
        }
    }

    /// The driver in use.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The directory of snapshot `id`.
    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn files(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Unpacks one layer as snapshot `id` on top of `parents` (ids, the parent first).
    /// Returns the layer's diff ID, which the caller checks against the image config.
    pub fn unpack_layer(&self, id: u64, parents: &[u64], layer: impl Read + Send, compression: Compression) -> Result<Applied> {
        crate::priority::in_background(|| {
            let files = self.fresh_dir(id)?;
            let applied = match self.driver {
                Driver::Overlay => {
                    let lowers: Vec<PathBuf> = parents.iter().map(|p| self.files(*p)).collect();
                    apply_layer(layer, compression, &files, &ApplyOptions { whiteouts: Whiteouts::Overlay, lowers: &lowers })
                }
                Driver::Native => {
                    if let Some(parent) = parents.first() {
                        copy_tree(&self.files(*parent), &files)?;
                    }
                    apply_layer(layer, compression, &files, &ApplyOptions { whiteouts: Whiteouts::Delete, lowers: &[] })
                }
            }?;
            sync_filesystem(&files)?;
            Ok(applied)
        })
    }

    /// Makes the writable directory of active snapshot `id` on top of `parents`.
    pub fn prepare_active(&self, id: u64, parents: &[u64]) -> Result<()> {
        crate::priority::in_background(|| {
            let files = self.fresh_dir(id)?;
            match self.driver {
                Driver::Overlay => {
                    let work = self.dir(id).join("work");
                    private_dir(&work)?;
                }
                Driver::Native => {
                    if let Some(parent) = parents.first() {
                        copy_tree(&self.files(*parent), &files)?;
                    }
                }
            }
            sync_filesystem(&files)
        })
    }

    /// The mounts that show snapshot `id` (with `parents`, the parent first): writable
    /// when `active`, a read-only view otherwise.
    pub fn mounts(&self, id: u64, parents: &[u64], active: bool) -> Vec<Mount> {
        let path = |id: u64| self.files(id).to_string_lossy().into_owned();
        let bind = |id: u64, ro: bool| Mount {
            kind: "bind".into(),
            source: path(id),
            options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
        };
        match (self.driver, active, parents.is_empty()) {
            (Driver::Native, _, _) | (Driver::Overlay, true, true) => vec![bind(id, !active)],
            (Driver::Overlay, true, false) => {
                let lower: Vec<String> = parents.iter().map(|p| path(*p)).collect();
                vec![Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![
                        format!("workdir={}", self.dir(id).join("work").display()),
                        format!("upperdir={}", path(id)),
                        format!("lowerdir={}", lower.join(":")),
                    ],
                }]
            }
            (Driver::Overlay, false, true) => vec![bind(id, true)],
            (Driver::Overlay, false, false) => {
                let lower: Vec<String> = std::iter::once(id).chain(parents.iter().copied()).map(path).collect();
                vec![Mount { kind: "overlay".into(), source: "overlay".into(), options: vec!["ro".into(), format!("lowerdir={}", lower.join(":"))] }]
            }
        }
    }

    /// What snapshot `id`'s own directory uses.
    pub fn usage(&self, id: u64) -> Result<Usage> {
        let usage = crate::priority::in_background(|| tree_usage(&self.files(id)))?;
        Ok(Usage { size: usage.size, inodes: usage.inodes })
    }

    /// Removes snapshot `id`'s directory; one already gone is not an error.
    pub fn remove(&self, id: u64) -> Result<()> {
        crate::priority::in_background(|| remove_tree(&self.dir(id)))
    }

    /// The ids of every snapshot directory on disk, for the start-up sweep. Anything else
    /// in the directory is not ours and is left alone.
    pub fn ids_on_disk(&self) -> Result<Vec<u64>> {
        let entries = fs::read_dir(&self.root).map_err(|e| SnapshotError::io(format!("list {}", self.root.display()), e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SnapshotError::io(format!("list {}", self.root.display()), e))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// A new, empty `<id>/fs`; debris of an earlier attempt at the same id is removed.
    /// `<id>` is 0700, which keeps others away from the layer's files; `fs` is the root
    /// directory of the layer (or of the container's writes) and so 0755, as a root
    /// filesystem's is until a layer says otherwise.
    fn fresh_dir(&self, id: u64) -> Result<PathBuf> {
        let dir = self.dir(id);
        remove_tree(&dir)?;
        private_dir(&dir)?;
        let files = self.files(id);
        fs::create_dir(&files).map_err(|e| SnapshotError::io(format!("create {}", files.display()), e))?;
        // Set, not asked of mkdir: the daemon's umask would take bits off.
        fs::set_permissions(&files, fs::Permissions::from_mode(0o755))
            .map_err(|e| SnapshotError::io(format!("chmod {}", files.display()), e))?;
        Ok(files)
    }
}

/// Creates `dir` and missing parents with mode 0700, whatever the umask lets through.
fn private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SnapshotError::io(format!("create {}", dir.display()), e))
}

/// Flushes everything written under `path` to disk, so a snapshot recorded after this
/// survives a power cut as well as a crash (one `syncfs` instead of an fsync per file).
fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = fs::File::open(path).map_err(|e| SnapshotError::io(format!("open {}", path.display()), e))?;
    nix::unistd::syncfs(&dir).map_err(|e| SnapshotError::io(format!("syncfs {}", path.display()), e.into()))
}

/// Tries an overlay mount inside `root`, as containerd's overlay snapshotter checks
/// support before use.
fn overlay_works(root: &Path) -> bool {
    let probe = root.join(".overlay-probe");
    let _ = remove_tree(&probe);
    let dirs = ["lower1", "lower2", "upper", "work", "merged"].map(|d| probe.join(d));
    if dirs.iter().any(|d| private_dir(d).is_err()) {
        return false;
    }
    let m = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}:{}", dirs[0].display(), dirs[1].display()),
            format!("upperdir={}", dirs[2].display()),
            format!("workdir={}", dirs[3].display()),
        ],
    };
    let works = mount::mount_all(&[m], &dirs[4]).is_ok();
    if works {
        let _ = mount::unmount(&dirs[4]);
    }
    let _ = remove_tree(&probe);
    works
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_that_made_snapshots_stays_while_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let first = Snapshotter::open(dir.path(), Some(Driver::Native)).unwrap();
        first.prepare_active(5, &[]).unwrap();
        assert!(matches!(Snapshotter::open(dir.path(), Some(Driver::Overlay)), Err(SnapshotError::Invalid(_))));
        assert_eq!(Snapshotter::open(dir.path(), None).unwrap().driver(), Driver::Native);
        first.remove(5).unwrap();
        assert_eq!(Snapshotter::open(dir.path(), Some(Driver::Overlay)).unwrap().driver(), Driver::Overlay);
        assert_eq!(first.ids_on_disk().unwrap(), Vec::<u64>::new(), "the driver file is not a snapshot");
    }
}
