//! Exact copies of directory trees, for the copying snapshotter: contents, owners, modes,
//! extended attributes, times, symlinks, hard links and device nodes. Also the matching
//! removal and a disk-usage count.
//!
//! No function here follows a symlink. Walks keep an explicit stack instead of
//! recursing, so depth costs heap, not thread stack. The copy passes paths whole (a tree
//! deeper than the kernel's PATH_MAX, 4096 bytes, fails with ENAMETOOLONG): its source
//! is a committed layer nothing changes. Removal and measurement also run on trees a
//! container may be changing, so they go by descriptor (`at.rs`), whatever the depth.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use log::debug;

use super::at::{walk, Dir, Visit};
use super::ops::{self, io_error, Times};
use super::{xattr, Result, SnapshotError};

/// Disk use of a tree, as `du` would count it with hard links counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated: `st_blocks * 512` summed over distinct inodes.
    pub size: u64,
    /// Distinct inodes, the root directory's included.
    pub inodes: u64,
}

/// One unit of work of [`copy_tree`]'s walk.
enum Step {
    /// Copy `from` (any kind) to the new path `to`.
    Copy { from: PathBuf, to: PathBuf },
    /// Give directory `to` the metadata of `from`, once everything inside is written
    /// (writing children changes a directory's mtime, and a read-only mode would stop
    /// them being written at all).
    Finish { from: PathBuf, to: PathBuf, meta: Metadata },
}

/// Copies the contents of directory `from` into directory `to`, which must exist and
/// should be empty, then gives `to` the owner, mode, attributes and times of `from`.
/// Sockets are skipped; everything else is copied exactly, trusted.overlay.* and
/// security.* attributes included where the filesystem accepts them.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let root = require_dir(from)?;
    require_dir(to)?;
    let mut links = HashMap::new();
    let mut stack = vec![Step::Finish { from: from.to_path_buf(), to: to.to_path_buf(), meta: root }];
    push_children(&mut stack, from, to)?;
    while let Some(step) = stack.pop() {
        match step {
            Step::Copy { from, to } => copy_step(&from, &to, &mut links, &mut stack)?,
            Step::Finish { from, to, meta } => copy_metadata(&from, &to, &meta, true)?,
        }
    }
    Ok(())
}

fn require_dir(path: &Path) -> Result<Metadata> {
    match ops::lstat(path)? {
        Some(meta) if meta.is_dir() => Ok(meta),
        Some(_) => Err(SnapshotError::Invalid(format!("{} is not a directory", path.display()))),
        None => Err(io_error("opening", path, io::ErrorKind::NotFound.into())),
    }
}

fn push_children(stack: &mut Vec<Step>, from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| io_error("listing", from, e))? {
        let name = entry.map_err(|e| io_error("listing", from, e))?.file_name();
        stack.push(Step::Copy { from: from.join(&name), to: to.join(&name) });
    }
    Ok(())
}

/// Copies one entry. A directory is created empty here and finished after its children;
/// a second name of an inode already copied becomes a hard link to the first copy.
fn copy_step(from: &Path, to: &Path, links: &mut HashMap<(u64, u64), PathBuf>, stack: &mut Vec<Step>) -> Result<()> {
    let meta = fs::symlink_metadata(from).map_err(|e| io_error("inspecting", from, e))?;
    if meta.is_dir() {
        ops::mkdir(to)?;
        stack.push(Step::Finish { from: from.to_path_buf(), to: to.to_path_buf(), meta });
        return push_children(stack, from, to);
    }
    if meta.file_type().is_socket() {
        debug!("not copying socket {}", from.display());
        return Ok(());
    }
    let key = (meta.dev(), meta.ino());
    if meta.nlink() > 1 {
        if let Some(first) = links.get(&key) {
            return fs::hard_link(first, to).map_err(|e| io_error("linking", to, e));
        }
    }
    copy_node(from, to, &meta, true)?;
    if meta.nlink() > 1 {
        links.insert(key, to.to_path_buf());
    }
    Ok(())
}

/// Copies one non-directory `from` (regular file, symlink, device or FIFO; `meta` is its
/// lstat) to the new path `to`, with its metadata. Overlayfs attributes are copied only
/// if `with_overlay`.
pub(crate) fn copy_node(from: &Path, to: &Path, meta: &Metadata, with_overlay: bool) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        copy_contents(from, to)?;
    } else if kind.is_symlink() {
        let target = fs::read_link(from).map_err(|e| io_error("reading link", from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| io_error("creating symlink", to, e))?;
    } else if let Some(node) = ops::node_kind(meta) {
        ops::mknod(to, node, meta.rdev())?;
    } else {
        return Err(SnapshotError::Invalid(format!("cannot copy {}: unsupported file type", from.display())));
    }
    copy_metadata(from, to, meta, with_overlay)
}

fn copy_contents(from: &Path, to: &Path) -> Result<()> {
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .map_err(|e| io_error("opening", from, e))?;
    let mut dst = create_file(to)?;
    // std turns a file-to-file copy into copy_file_range, so reflinks and server-side
    // copies apply where the filesystem has them.
    io::copy(&mut src, &mut dst).map_err(|e| io_error("copying into", to, e))?;
    Ok(())
}

/// Creates a new regular file, refusing an existing path or a symlink in its place.
pub(crate) fn create_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_error("creating", path, e))
}

/// Gives `to` the owner, attributes, mode and times `from` has (`meta` is its lstat).
/// Owner first, as chown clears setuid, setgid and file capabilities; times last, as
/// every other change touches ctime only but writing content touched mtime.
fn copy_metadata(from: &Path, to: &Path, meta: &Metadata, with_overlay: bool) -> Result<()> {
    let kind = meta.file_type();
    ops::lchown(to, meta.uid(), meta.gid())?;
    xattr::copy_all(from, to, kind.is_file() || kind.is_dir(), with_overlay)?;
    if !kind.is_symlink() {
        ops::chmod(to, meta.mode())?;
    }
    ops::set_times(to, Times::of(meta))
}

/// `rm -rf path`: removes a file, symlink or whole tree, never following a symlink.
/// A missing path is not an error; directories without write or search permission for
/// their owner are made accessible before they are emptied.
///
/// The tree may be changing under the walk (a container's writable layer): every
/// directory is entered by descriptor, so a directory swapped for a symlink can only
/// make the removal skip or fail, never reach outside.
pub fn remove_tree(path: &Path) -> Result<()> {
    let root = match Dir::open(path) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // A symlink (ELOOP) or any other non-directory: the name itself goes.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => return remove_file(path),
        Err(e) => return Err(io_error("opening", path, e)),
    };
    walk(root, &mut Remover)?;
    match fs::remove_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("removing", path, e)),
        _ => Ok(()),
    }
}

/// [`remove_tree`]'s walk: non-directories go on entering a directory, the directory
/// itself once it is empty (the root is left to the caller, who named it by path).
struct Remover;

impl Visit for Remover {
    fn enter(&mut self, dir: &Dir) -> Result<Vec<OsString>> {
        let here = dir.itself();
        let meta = fs::metadata(&here).map_err(|e| io_error("inspecting", &here, e))?;
        // Root ignores permission bits, but an unprivileged caller could not list or
        // unlink inside a directory it made read-only.
        if meta.mode() & 0o700 != 0o700 {
            ops::chmod(&here, meta.mode() | 0o700)?;
        }
        let mut subdirs = Vec::new();
        for (name, is_dir) in dir.entries().map_err(|e| io_error("listing", &here, e))? {
            if is_dir {
                subdirs.push(name);
            } else {
                remove_file(&dir.entry(&name))?;
            }
        }
        Ok(subdirs)
    }

    fn leave(&mut self, parent: Option<&Dir>, name: &OsStr, _dir: Dir) -> Result<()> {
        let Some(parent) = parent else { return Ok(()) };
        let path = parent.entry(name);
        match fs::remove_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("removing", &path, e)),
            _ => Ok(()),
        }
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("removing", path, e)),
        _ => Ok(()),
    }
}

/// Disk use of the tree at `path` (which may also be a single file): every inode once,
/// however many names it has, and no symlink followed, even one swapped in for a
/// directory while the walk runs.
pub fn tree_usage(path: &Path) -> Result<Usage> {
    let mut counter = UsageCounter::default();
    match Dir::open(path) {
        Ok(root) => walk(root, &mut counter)?,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            counter.count(&fs::symlink_metadata(path).map_err(|e| io_error("inspecting", path, e))?);
        }
        Err(e) => return Err(io_error("opening", path, e)),
    }
    Ok(counter.usage)
}

impl Visit for UsageCounter {
    fn enter(&mut self, dir: &Dir) -> Result<Vec<OsString>> {
        let here = dir.itself();
        self.count(&fs::metadata(&here).map_err(|e| io_error("inspecting", &here, e))?);
        let mut subdirs = Vec::new();
        for (name, is_dir) in dir.entries().map_err(|e| io_error("listing", &here, e))? {
            // Subdirectories count themselves when entered.
            if is_dir {
                subdirs.push(name);
                continue;
            }
            let path = dir.entry(&name);
            match fs::symlink_metadata(&path) {
                Ok(meta) => self.count(&meta),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("inspecting", &path, e)),
            }
        }
        Ok(subdirs)
    }

    fn leave(&mut self, _parent: Option<&Dir>, _name: &OsStr, _dir: Dir) -> Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct UsageCounter {
    usage: Usage,
    /// Inodes with several names seen so far; single-name inodes need no memory.
    linked: HashSet<(u64, u64)>,
}

impl UsageCounter {
    fn count(&mut self, meta: &Metadata) {
        if !meta.is_dir() && meta.nlink() > 1 && !self.linked.insert((meta.dev(), meta.ino())) {
            return;
        }
        self.usage.size += meta.blocks() * 512;
        self.usage.inodes += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::fs::{symlink, PermissionsExt};

    use nix::sys::stat::SFlag;
    use nix::sys::time::TimeSpec;

    use super::*;

    fn stat(path: &Path) -> Metadata {
        fs::symlink_metadata(path).unwrap()
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn set_time(path: &Path, secs: i64, nsec: i64) {
        let t = TimeSpec::new(secs, nsec);
        ops::set_times(path, Times { atime: TimeSpec::new(secs - 100, 7), mtime: t }).unwrap();
    }

    /// Copies `src` into a fresh directory and returns both tempdirs' roots.
    fn copied(src: &Path) -> tempfile::TempDir {
        let dst = tempfile::tempdir().unwrap();
        copy_tree(src, dst.path()).unwrap();
        dst
    }

    #[test]
    fn contents_and_nested_directories() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b/c")).unwrap();
        fs::write(src.path().join("a/b/c/f"), b"deep").unwrap();
        fs::write(src.path().join("top"), vec![9u8; 300_000]).unwrap();
        fs::write(src.path().join("empty"), b"").unwrap();
        let dst = copied(src.path());
        assert_eq!(fs::read(dst.path().join("a/b/c/f")).unwrap(), b"deep");
        assert_eq!(fs::read(dst.path().join("top")).unwrap(), vec![9u8; 300_000]);
        assert_eq!(fs::read(dst.path().join("empty")).unwrap(), b"");
    }

    #[test]
    fn modes_including_special_bits_and_owners() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::write(s.join("suid"), b"x").unwrap();
        fs::create_dir(s.join("sgid")).unwrap();
        fs::create_dir(s.join("tmp")).unwrap();
        fs::create_dir(s.join("locked")).unwrap();
        fs::write(s.join("locked/inside"), b"x").unwrap();
        ops::lchown(&s.join("suid"), 1234, 5678).unwrap();
        ops::lchown(&s.join("sgid"), 42, 43).unwrap();
        set_mode(&s.join("suid"), 0o4755);
        set_mode(&s.join("sgid"), 0o2750);
        set_mode(&s.join("tmp"), 0o1777);
        set_mode(&s.join("locked"), 0o500);
        set_mode(s, 0o711);
        let dst = copied(s);
        let d = dst.path();
        let rows =
            [("suid", 0o4755, 1234, 5678), ("sgid", 0o2750, 42, 43), ("tmp", 0o1777, 0, 0), ("locked", 0o500, 0, 0)];
        for (name, mode, uid, gid) in rows {
            let meta = stat(&d.join(name));
            assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (mode, uid, gid), "{name}");
        }
        assert_eq!(fs::read(d.join("locked/inside")).unwrap(), b"x");
        assert_eq!(stat(d).mode() & 0o7777, 0o711, "the root takes the source root's mode");
    }

    #[test]
    fn extended_attributes_including_overlay_ones() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir(s.join("dir")).unwrap();
        fs::write(s.join("file"), b"x").unwrap();
        symlink("file", s.join("link")).unwrap();
        xattr::set(&s.join("dir"), OsStr::new("trusted.overlay.opaque"), b"y").unwrap();
        xattr::set(&s.join("file"), OsStr::new("user.note"), b"hello").unwrap();
        xattr::set(&s.join("file"), OsStr::new("security.capability"), &capability()).unwrap();
        xattr::set(&s.join("link"), OsStr::new("trusted.t"), b"on the link").unwrap();
        let dst = copied(s);
        let d = dst.path();
        let get = |p: &str, n: &str| xattr::get(&d.join(p), OsStr::new(n)).unwrap();
        assert_eq!(get("dir", "trusted.overlay.opaque").unwrap(), b"y");
        assert_eq!(get("file", "user.note").unwrap(), b"hello");
        assert_eq!(get("file", "security.capability").unwrap(), capability());
        assert_eq!(get("link", "trusted.t").unwrap(), b"on the link");
    }

    /// A version-2 file capability granting CAP_NET_BIND_SERVICE (bit 10).
    fn capability() -> Vec<u8> {
        let mut v = vec![0u8; 20];
        v[..4].copy_from_slice(&0x0200_0000u32.to_le_bytes());
        v[4..8].copy_from_slice(&(1u32 << 10).to_le_bytes());
        v
    }

    #[test]
    fn times_of_files_symlinks_and_directories() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir(s.join("dir")).unwrap();
        fs::write(s.join("dir/file"), b"x").unwrap();
        symlink("nowhere", s.join("dir/link")).unwrap();
        set_time(&s.join("dir/file"), 1_000_000, 123_456_789);
        set_time(&s.join("dir/link"), 2_000_000, 5);
        set_time(&s.join("dir"), 3_000_000, 999);
        // Taken before copying: reading the sources may move their atimes.
        let before: Vec<_> = ["dir/file", "dir/link", "dir"].map(|n| (n, stat(&s.join(n)))).into();
        let dst = copied(s);
        for (name, a) in before {
            let b = stat(&dst.path().join(name));
            assert_eq!((b.mtime(), b.mtime_nsec()), (a.mtime(), a.mtime_nsec()), "{name} mtime");
            assert_eq!((b.atime(), b.atime_nsec()), (a.atime(), a.atime_nsec()), "{name} atime");
        }
    }

    #[test]
    fn symlinks_are_copied_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        symlink(outside.path(), s.join("out")).unwrap();
        symlink("../../dangling", s.join("dangling")).unwrap();
        ops::lchown(&s.join("dangling"), 7, 8).unwrap();
        let dst = copied(s);
        let d = dst.path();
        assert_eq!(fs::read_link(d.join("out")).unwrap(), outside.path());
        assert!(stat(&d.join("out")).file_type().is_symlink());
        assert_eq!(fs::read_link(d.join("dangling")).unwrap(), Path::new("../../dangling"));
        assert_eq!((stat(&d.join("dangling")).uid(), stat(&d.join("dangling")).gid()), (7, 8));
    }

    #[test]
    fn hard_links_stay_linked() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir(s.join("sub")).unwrap();
        fs::write(s.join("one"), b"shared").unwrap();
        fs::hard_link(s.join("one"), s.join("sub/two")).unwrap();
        fs::hard_link(s.join("one"), s.join("three")).unwrap();
        fs::write(s.join("alone"), b"a").unwrap();
        let dst = copied(s);
        let d = dst.path();
        let ino = stat(&d.join("one")).ino();
        assert_ne!(ino, stat(&s.join("one")).ino());
        assert_eq!(stat(&d.join("sub/two")).ino(), ino);
        assert_eq!(stat(&d.join("three")).ino(), ino);
        assert_eq!(stat(&d.join("one")).nlink(), 3);
        assert_eq!(stat(&d.join("alone")).nlink(), 1);
    }

    #[test]
    fn devices_and_fifos_but_not_sockets() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        ops::mknod(&s.join("null"), SFlag::S_IFCHR, nix::sys::stat::makedev(1, 3)).unwrap();
        ops::mknod(&s.join("blk"), SFlag::S_IFBLK, nix::sys::stat::makedev(7, 200)).unwrap();
        ops::mknod(&s.join("fifo"), SFlag::S_IFIFO, 0).unwrap();
        set_mode(&s.join("null"), 0o666);
        let _listener = std::os::unix::net::UnixListener::bind(s.join("sock")).unwrap();
        let dst = copied(s);
        let d = dst.path();
        let null = stat(&d.join("null"));
        assert!(null.file_type().is_char_device());
        assert_eq!((null.rdev(), null.mode() & 0o7777), (nix::sys::stat::makedev(1, 3), 0o666));
        assert!(stat(&d.join("blk")).file_type().is_block_device());
        assert_eq!(stat(&d.join("blk")).rdev(), nix::sys::stat::makedev(7, 200));
        assert!(stat(&d.join("fifo")).file_type().is_fifo());
        assert!(ops::lstat(&d.join("sock")).unwrap().is_none());
    }

    #[test]
    fn deep_trees_do_not_recurse() {
        let src = tempfile::tempdir().unwrap();
        let deep: PathBuf = std::iter::repeat_n("d", 1500).collect();
        fs::create_dir_all(src.path().join(&deep)).unwrap();
        fs::write(src.path().join(&deep).join("leaf"), b"bottom").unwrap();
        let dst = copied(src.path());
        assert_eq!(fs::read(dst.path().join(&deep).join("leaf")).unwrap(), b"bottom");
        remove_tree(&dst.path().join("d")).unwrap();
        assert!(ops::lstat(&dst.path().join("d")).unwrap().is_none());
    }

    #[test]
    fn copy_refuses_a_non_directory_source() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), b"").unwrap();
        symlink(src.path(), src.path().join("l")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        assert!(matches!(copy_tree(&src.path().join("f"), dst.path()), Err(SnapshotError::Invalid(_))));
        assert!(matches!(copy_tree(&src.path().join("l"), dst.path()), Err(SnapshotError::Invalid(_))));
        assert!(matches!(copy_tree(&src.path().join("none"), dst.path()), Err(SnapshotError::Io { .. })));
    }

    #[test]
    fn remove_tree_copes_with_modes_symlinks_and_absence() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), b"k").unwrap();
        let root = tempfile::tempdir().unwrap();
        let t = root.path().join("t");
        fs::create_dir_all(t.join("ro/inner")).unwrap();
        fs::write(t.join("ro/inner/f"), b"x").unwrap();
        fs::write(t.join("nomode"), b"x").unwrap();
        fs::create_dir(t.join("closed")).unwrap();
        fs::write(t.join("closed/f"), b"x").unwrap();
        symlink(outside.path(), t.join("link")).unwrap();
        set_mode(&t.join("ro/inner"), 0o555);
        set_mode(&t.join("ro"), 0o444);
        set_mode(&t.join("nomode"), 0);
        set_mode(&t.join("closed"), 0);
        remove_tree(&t).unwrap();
        assert!(ops::lstat(&t).unwrap().is_none());
        assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"k");
        remove_tree(&t).unwrap();

        let link = root.path().join("to-outside");
        symlink(outside.path(), &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(ops::lstat(&link).unwrap().is_none());
        assert!(outside.path().join("keep").exists());
    }

    /// A tree of `count` directories of `files` files each, under `root/t`, and a thread
    /// that, once started, moves each directory aside and puts a symlink to `outside` in
    /// its place, as a container could while its layer is removed or measured.
    fn tree_with_a_swapper(root: &Path, outside: &Path, count: usize, files: usize) -> (PathBuf, std::thread::JoinHandle<()>) {
        let t = root.join("t");
        let aside = root.join("aside");
        fs::create_dir(&aside).unwrap();
        for i in 0..count {
            fs::create_dir_all(t.join(format!("d{i}"))).unwrap();
            for j in 0..files {
                fs::write(t.join(format!("d{i}/f{j}")), b"x").unwrap();
            }
        }
        let (tree, outside) = (t.clone(), outside.to_path_buf());
        let swapper = std::thread::spawn(move || {
            for i in 0..count {
                let dir = tree.join(format!("d{i}"));
                if fs::rename(&dir, aside.join(format!("d{i}"))).is_ok() {
                    let _ = symlink(&outside, &dir);
                }
            }
        });
        (t, swapper)
    }

    #[test]
    fn a_removal_racing_directories_swapped_for_symlinks_removes_nothing_outside() {
        let outside = tempfile::tempdir().unwrap();
        for round in 0..5 {
            let victims: Vec<String> = (0..8).map(|j| format!("f{j}")).collect();
            for name in &victims {
                fs::write(outside.path().join(name), b"keep").unwrap();
            }
            let root = tempfile::tempdir().unwrap();
            let (t, swapper) = tree_with_a_swapper(root.path(), outside.path(), 400, 8);
            // Removal may fail (a symlink appeared after its directory was listed); it
            // must never remove what a symlink points at.
            let _ = remove_tree(&t);
            swapper.join().unwrap();
            let mut left: Vec<String> =
                fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            left.sort();
            assert_eq!(left, victims, "round {round}: files outside the tree were removed");
        }
    }

    #[test]
    fn a_measure_racing_directories_swapped_for_symlinks_counts_nothing_outside() {
        let outside = tempfile::tempdir().unwrap();
        // Far more than the tree's own 400 directories and files (4 KiB each at most).
        fs::write(outside.path().join("big"), vec![1u8; 8 << 20]).unwrap();
        for round in 0..5 {
            let root = tempfile::tempdir().unwrap();
            let (t, swapper) = tree_with_a_swapper(root.path(), outside.path(), 400, 1);
            let usage = tree_usage(&t);
            swapper.join().unwrap();
            if let Ok(usage) = usage {
                assert!(usage.size < 8 << 20, "round {round}: the symlinked directory was counted: {usage:?}");
            }
        }
    }

    #[test]
    fn usage_counts_each_inode_once() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let big = tempfile::tempdir().unwrap();
        fs::write(big.path().join("big"), vec![1u8; 1 << 20]).unwrap();
        fs::create_dir(r.join("sub")).unwrap();
        fs::write(r.join("sub/data"), vec![1u8; 64 * 1024]).unwrap();
        fs::hard_link(r.join("sub/data"), r.join("again")).unwrap();
        symlink(big.path().join("big"), r.join("link")).unwrap();
        let usage = tree_usage(r).unwrap();
        let blocks = |p: &str| stat(&r.join(p)).blocks() * 512;
        let expected = stat(r).blocks() * 512 + blocks("sub") + blocks("sub/data") + blocks("link");
        assert_eq!(usage, Usage { size: expected, inodes: 4 });
        assert!(usage.size >= 64 * 1024 && usage.size < 1 << 20, "the symlink's target is not counted");

        let file = tree_usage(&r.join("sub/data")).unwrap();
        assert_eq!(file, Usage { size: blocks("sub/data"), inodes: 1 });
        assert!(tree_usage(&r.join("none")).is_err());
    }
}
