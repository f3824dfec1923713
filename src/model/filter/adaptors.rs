//! What a field path means for ctrfs's records: containerd's container and image
//! adaptors (`core/metadata/adaptors.go`) over ctrfs's fields.
//!
//! As there, only the leading segments pick a field (`name.x` is `name`), `labels.a.b` is
//! the label `a.b` (segments after `labels` are joined with `.`), an empty value is
//! absent, and any other path is absent.

use super::Fields;
use crate::model::{Container, Image};

impl Fields for Container {
    /// `id`, `image`, `runtime.name`, `snapshotter`, `labels.<key>`. `snapshotter` is
    /// ctrfs's addition (containerd's adaptor has no such field, so there it is always
    /// absent).
    ///
    /// `runtime.name` and `snapshotter` are the values as stored, and absent when unset,
    /// although an unset runtime means `runc` and an unset snapshotter `overlayfs`: that
    /// is what the files show (an unset field has no file, and `info.json` shows `""`),
    /// and it is containerd's rule that an empty field is absent. A filter thus tells
    /// containers that name a runtime from those that take the default:
    /// `runtime.name~=^$` selects the unset ones, `runtime.name~=^(runc)?$` both.
    fn field(&self, path: &[String]) -> Option<&str> {
        match (first(path)?, path.get(1).map(String::as_str)) {
            ("id", _) => non_empty(&self.id),
            ("image", _) => non_empty(&self.image),
            ("runtime", Some("name")) => non_empty(&self.runtime),
            ("snapshotter", _) => non_empty(&self.snapshotter),
            ("labels", _) => self.labels.get(&path[1..].join(".")),
            _ => None,
        }
    }
}

impl Fields for Image {
    /// `name`, `target.digest`, `target.mediatype` (lowercase, as containerd spells it),
    /// `labels.<key>` and `annotations.<key>` (the target descriptor's annotations). A
    /// record whose target is not written yet has no `target.*` or `annotations.*`.
    fn field(&self, path: &[String]) -> Option<&str> {
        let target = self.target.as_ref();
        match (first(path)?, path.get(1).map(String::as_str)) {
            ("name", _) => non_empty(&self.name),
            ("target", Some("digest")) => non_empty(&target?.digest),
            ("target", Some("mediatype")) => non_empty(&target?.media_type),
            ("labels", _) => self.labels.get(&path[1..].join(".")),
            ("annotations", _) => target?.annotations.as_ref()?.get(&path[1..].join(".")).map(String::as_str),
            _ => None,
        }
    }
}

fn first(path: &[String]) -> Option<&str> {
    path.first().map(String::as_str)
}

fn non_empty(value: &str) -> Option<&str> {
    Some(value).filter(|v| !v.is_empty())
}
