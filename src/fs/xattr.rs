//! Labels as extended attributes `user.<key>` on object directories, with the same rules
//! as the `labels` file: the xattr protocol (names, flags, sizes) here, the change itself
//! in `service::labels`, which checks the create/replace flags in its transaction.

use std::ffi::OsStr;

use super::content::{Loaded, Object};
use super::errno::FsError;
use super::ino::Ino;
use super::{load_node, FsCore, Result};
use crate::model::{validate_label, ValidationError};
use crate::service::Presence;

const USER_PREFIX: &str = "user.";

fn label_key(name: &OsStr) -> Result<&str> {
    let name = name.to_str().ok_or(FsError::BadName)?;
    name.strip_prefix(USER_PREFIX).ok_or_else(|| FsError::XattrNotSupported(name.into()))
}

impl FsCore {
    fn labelled(&self, ino: u64) -> Result<Option<Loaded>> {
        if super::rename::is_temp(ino) {
            return match self.temp_alias(ino) {
                // Renamed onto a field: that field's directory's labels, as for the field.
                Some(alias) => self.labelled(alias),
                // A temporary file has no labels (nor any other attribute).
                None => Ok(None),
            };
        }
        if super::ino::QueryIno::decode(ino).is_some() {
            // Query directories and their links carry no labels; the objects do.
            return Ok(None);
        }
        match Ino::decode(ino).ok_or(FsError::NotFound)? {
            Ino::Node(node) => Ok(Some(load_node(&self.store().read()?, node)?)),
            Ino::File(node, _) | Ino::LogDir(node) | Ino::Log(node, _) | Ino::Wait(node) => {
                load_node(&self.store().read()?, node)?;
                Ok(None)
            }
            Ino::RootFile(_) => Ok(None),
        }
    }

    /// `getxattr`: the value of label `key` for `user.<key>`. Any other namespace is not
    /// supported (`ENOTSUP`, as on set, and as a local filesystem answers for a namespace it
    /// has no handler for): `ls -l` asks for `security.selinux` and both POSIX ACLs of
    /// every entry, and stops asking for the rest of the listing only on `ENOTSUP`, so an
    /// `ENODATA` here would cost three round trips per entry.
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        let missing = || FsError::NoLabel(name.to_string_lossy().into_owned());
        let key = match label_key(name) {
            Ok(key) => key,
            Err(outside @ FsError::XattrNotSupported(_)) => return Err(outside),
            Err(_) => return Err(missing()),
        };
        let loaded = self.labelled(ino)?.ok_or_else(missing)?;
        let labels = loaded.labels().ok_or_else(missing)?;
        labels.get(key).map(|v| v.as_bytes().to_vec()).ok_or_else(missing)
    }

    /// `listxattr`: `user.<key>\0` for every label.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        let mut list = Vec::new();
        if let Some(labels) = self.labelled(ino)?.as_ref().and_then(Loaded::labels) {
            for (key, _) in labels.iter() {
                list.extend_from_slice(USER_PREFIX.as_bytes());
                list.extend_from_slice(key.as_bytes());
                list.push(0);
            }
        }
        Ok(list)
    }

    /// `setxattr`: sets label `key` (an empty value removes it, as in the labels file).
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        let key = label_key(name)?;
        let value = std::str::from_utf8(value).map_err(|_| {
            FsError::Invalid(ValidationError::InvalidLabel { key: key.into(), reason: "label values must be UTF-8" })
        })?;
        validate_label(key, value)?;
        let loaded = self.labelled(ino)?.ok_or_else(|| FsError::XattrNotSupported(key.into()))?;
        let node = loaded.node.id;
        if matches!(loaded.object, Object::Fixed) {
            return Err(FsError::XattrNotSupported(format!("{USER_PREFIX}{key}")));
        }
        let required = if flags & libc::XATTR_CREATE != 0 {
            Presence::Absent
        } else if flags & libc::XATTR_REPLACE != 0 {
            Presence::Present
        } else {
            Presence::Any
        };
        self.services.set_label(node, key, value, required)?;
        self.forget_vanished(node);
        self.changed(node);
        Ok(())
    }

    /// `removexattr`: removes label `key`.
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let missing = || FsError::NoLabel(name.to_string_lossy().into_owned());
        let Ok(key) = label_key(name) else { return Err(missing()) };
        let loaded = self.labelled(ino)?.ok_or_else(missing)?;
        if loaded.labels().is_none() {
            return Err(missing());
        }
        self.services.remove_label(loaded.node.id, key)?;
        self.forget_vanished(loaded.node.id);
        self.changed(loaded.node.id);
        Ok(())
    }
}
