//! Containers: metadata that pins what a task needs (a spec, an image, a root-filesystem
//! snapshot, a runtime, labels). Deleting one collects its snapshot unless something else
//! still uses it.

use super::{Result, Services};
use crate::model::{Container, ContainerField};
use crate::store::{Node, NodeId};

impl Services {
    /// A container `id` with containerd's defaults.
    pub fn create_container(&self, id: &str) -> Result<(Node, Container)> {
        Ok(self.store.write(|w| w.create_container(id))?)
    }

    /// Deletes container `id` (refused while its task exists), then collects what it
    /// alone pinned: its snapshot. A container that referenced nothing frees nothing, and
    /// its delete costs no collection (whose mark phase reads the whole store).
    pub fn delete_container(&self, id: &str) -> Result<Node> {
        // Not while its task is being started: the start would outlive its container.
        let (node, record) = {
            let _gate = self.gate.enter(id)?;
            self.store.write(|w| w.delete_container(id))?
        };
        let referenced = record.references_anything();
        if referenced {
            self.collect_after_delete();
        }
        Ok(node)
    }

    /// Sets or clears container `node`'s spec (already validated by the caller).
    pub(super) fn set_spec(&self, node: NodeId, spec: Option<&[u8]>) -> Result<()> {
        self.store.write(|w| w.put_spec(node, spec))?;
        Ok(())
    }

    /// Sets a one-line field other than the snapshot key (see `set_snapshot_key`).
    pub(super) fn set_field(&self, node: NodeId, field: ContainerField, value: &str) -> Result<()> {
        self.store.write(|w| w.update_container(node, |c| c.set_field(field, value)))?;
        Ok(())
    }
}
