//! Labels of any labelled record (image, container, blob, snapshot): replaced or merged
//! as a set, or set and removed one by one (the `user.*` extended attributes), each in
//! one transaction that checks against the committed labels.

use super::{Result, ServiceError, Services};
use crate::model::{validate_label, Labels};
use crate::store::{NodeId, StoreRead};

/// What a single-label change requires of the label's current state (setxattr's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Whatever it is.
    Any,
    /// The label must not exist yet.
    Absent,
    /// The label must exist.
    Present,
}

impl Services {
    /// Changes the labels of `node` in one transaction.
    pub(super) fn update_labels(&self, node: NodeId, change: impl FnOnce(&mut Labels) + Send) -> Result<()> {
        self.store.write(|w| {
            w.update_labels(node, |l| {
                change(l);
                Ok(())
            })
        })?;
        Ok(())
    }

    /// Sets label `key` of `node` to `value` (an empty value removes it, as in a labels
    /// file), if the label's presence is what `required` says.
    pub fn set_label(&self, node: NodeId, key: &str, value: &str, required: Presence) -> Result<()> {
        validate_label(key, value)?;
        self.store.write(|w| -> Result<()> {
            let exists = w.labels_of(node)?.is_some_and(|l| l.get(key).is_some());
            match required {
                Presence::Absent if exists => return Err(ServiceError::Exists(format!("label {key}"))),
                Presence::Present if !exists => return Err(ServiceError::NoLabel(key.into())),
                _ => {}
            }
            w.update_labels(node, |l| l.set(key, value))?;
            Ok(())
        })
    }

    /// Removes label `key` of `node`; refused when it is not set.
    pub fn remove_label(&self, node: NodeId, key: &str) -> Result<()> {
        self.store.write(|w| -> Result<()> {
            if w.labels_of(node)?.is_none_or(|l| l.get(key).is_none()) {
                return Err(ServiceError::NoLabel(key.into()));
            }
            w.update_labels(node, |l| {
                l.remove(key);
                Ok(())
            })?;
            Ok(())
        })
    }
}
