//! Extended attributes of host files, read and written without following a final
//! symlink, and the one rule for attributes a filesystem refuses to store.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use log::debug;

use super::at::shown;
use super::{Result, SnapshotError};

/// Overlayfs keeps its own bookkeeping (opaque, redirect, origin...) under this prefix.
pub(crate) const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Calls a size-probing xattr function until the buffer is big enough: the value can grow
/// between the probe and the read, which the kernel reports as ERANGE.
fn read_sized(mut call: impl FnMut(*mut libc::c_void, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize];
        let got = call(buf.as_mut_ptr().cast(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
    }
}

/// The names of `path`'s extended attributes; none on a filesystem without them.
pub(crate) fn list(path: &Path) -> io::Result<Vec<OsString>> {
    let cpath = c_path(path)?;
    // SAFETY: the path is NUL-terminated and the buffer pointer/length pair is valid.
    let raw = match read_sized(|buf, len| unsafe { libc::llistxattr(cpath.as_ptr(), buf.cast(), len) }) {
        Ok(raw) => raw,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let names = raw.split(|b| *b == 0).filter(|n| !n.is_empty());
    Ok(names.map(|n| OsString::from_vec(n.to_vec())).collect())
}

/// The value of attribute `name`, or `None` if `path` does not have it.
pub(crate) fn get(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let (cpath, cname) = (c_path(path)?, c_name(name)?);
    // SAFETY: both strings are NUL-terminated and the buffer pointer/length pair is valid.
    match read_sized(|buf, len| unsafe { libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), buf, len) }) {
        Ok(value) => Ok(Some(value)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets attribute `name` on `path` itself, even when it is a symlink.
pub(crate) fn set(path: &Path, name: &OsStr, value: &[u8]) -> io::Result<()> {
    let (cpath, cname) = (c_path(path)?, c_name(name)?);
    // SAFETY: both strings are NUL-terminated and the value pointer/length pair is valid.
    let rc = unsafe { libc::lsetxattr(cpath.as_ptr(), cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a refusal to store attribute `name` may be ignored. `trusted.` and `security.`
/// attributes depend on privileges and security modules the host may not have, and
/// the kernel never allows `user.` attributes on anything but files and directories;
/// losing those is better than failing a whole layer. Anything else is a real failure.
pub(crate) fn refusal_is_tolerable(name: &[u8], errno: Option<i32>, file_or_dir: bool) -> bool {
    let refused = matches!(errno, Some(libc::EOPNOTSUPP) | Some(libc::EPERM));
    let privileged = name.starts_with(b"trusted.") || name.starts_with(b"security.");
    let user_on_special = name.starts_with(b"user.") && !file_or_dir && errno == Some(libc::EPERM);
    refused && (privileged || user_on_special)
}

/// Sets an attribute copied from a layer or another tree, skipping (with a debug log)
/// one the filesystem may refuse, see [`refusal_is_tolerable`].
pub(crate) fn set_copied(path: &Path, name: &OsStr, value: &[u8], file_or_dir: bool) -> Result<()> {
    match set(path, name, value) {
        Ok(()) => Ok(()),
        Err(e) if refusal_is_tolerable(name.as_bytes(), e.raw_os_error(), file_or_dir) => {
            debug!("skipping xattr {} on {}: {e}", name.to_string_lossy(), shown(path).display());
            Ok(())
        }
        Err(e) => Err(SnapshotError::io(
            format!("setting xattr {} on {}", name.to_string_lossy(), shown(path).display()),
            e,
        )),
    }
}

/// Copies every attribute of `from` onto `to`, leaving out overlayfs's own unless
/// `with_overlay` (a copy of an upper directory keeps them; a file copied up from a lower
/// must not, or it would turn opaque or redirected).
pub(crate) fn copy_all(from: &Path, to: &Path, file_or_dir: bool, with_overlay: bool) -> Result<()> {
    let names = list(from).map_err(|e| SnapshotError::io(format!("listing xattrs of {}", shown(from).display()), e))?;
    for name in names {
        if !with_overlay && name.as_bytes().starts_with(OVERLAY_PREFIX) {
            continue;
        }
        let value = get(from, &name).map_err(|e| {
            SnapshotError::io(format!("reading xattr {} of {}", name.to_string_lossy(), shown(from).display()), e)
        })?;
        if let Some(value) = value {
            set_copied(to, &name, &value, file_or_dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_on_a_file_and_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        set(&file, OsStr::new("user.a"), b"1").unwrap();
        set(&file, OsStr::new("user.big"), &[7u8; 3000]).unwrap();
        let mut names = list(&file).unwrap();
        names.sort();
        assert_eq!(names, [OsString::from("user.a"), OsString::from("user.big")]);
        assert_eq!(get(&file, OsStr::new("user.big")).unwrap().unwrap(), vec![7u8; 3000]);
        assert_eq!(get(&file, OsStr::new("user.none")).unwrap(), None);

        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        set(&link, OsStr::new("trusted.t"), b"v").unwrap();
        assert_eq!(list(&link).unwrap(), [OsString::from("trusted.t")]);
        assert_eq!(get(&file, OsStr::new("trusted.t")).unwrap(), None, "the target is untouched");
    }

    #[test]
    fn which_refusals_are_tolerated() {
        let rows: &[(&[u8], i32, bool, bool)] = &[
            (b"security.capability", libc::EPERM, true, true),
            (b"trusted.overlay.opaque", libc::EOPNOTSUPP, true, true),
            (b"security.selinux", libc::EIO, true, false),
            (b"user.a", libc::EPERM, true, false),
            (b"user.a", libc::EPERM, false, true),
            (b"user.a", libc::EOPNOTSUPP, false, false),
            (b"system.posix_acl_access", libc::EOPNOTSUPP, true, false),
        ];
        for &(name, errno, file_or_dir, tolerated) in rows {
            assert_eq!(refusal_is_tolerable(name, Some(errno), file_or_dir), tolerated, "{name:?} {errno}");
        }
    }

    #[test]
    fn copy_all_can_leave_out_overlay_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
        }
        set(&a, OsStr::new("trusted.overlay.opaque"), b"y").unwrap();
        set(&a, OsStr::new("user.k"), b"v").unwrap();
        copy_all(&a, &b, true, false).unwrap();
        copy_all(&a, &c, true, true).unwrap();
        assert_eq!(get(&b, OsStr::new("trusted.overlay.opaque")).unwrap(), None);
        assert_eq!(get(&b, OsStr::new("user.k")).unwrap().unwrap(), b"v");
        assert_eq!(get(&c, OsStr::new("trusted.overlay.opaque")).unwrap().unwrap(), b"y");
    }
}
