//! Container records: create, update, delete. Each call validates first, then writes,
//! inside the caller's one transaction.

use super::nodes::{Node, NodeId, NodeKind};
use super::{schema, Result, StoreError, StoreRead, Writer};
use crate::model::{validate_identifier, Container, Timestamp, ValidationError, MAX_SPEC_BYTES};

impl Writer<'_> {
    /// `mkdir containers/ID`: a container with containerd's defaults.
    pub fn create_container(&mut self, id: &str) -> Result<(Node, Container)> {
        validate_identifier(id)?;
        let now = Timestamp::now();
        let node = self.insert_node(schema::CONTAINERS, id, NodeKind::Container, now)?;
        let container = Container::new(id.to_owned(), now);
        self.dbs.containers.put(&mut self.txn, &node.id.0, &container)?;
        Ok((node, container))
    }

    /// Applies `change` to a container and stamps `updated_at`.
    pub fn update_container(
        &mut self,
        node: NodeId,
        change: impl FnOnce(&mut Container) -> Result<(), ValidationError>,
    ) -> Result<Container> {
        let mut container = self
            .container(node)?
            .ok_or_else(|| StoreError::NotFound { kind: "container", key: format!("node {}", node.0) })?;
        change(&mut container)?;
        container.updated_at = Timestamp::now();
        self.dbs.containers.put(&mut self.txn, &node.0, &container)?;
        Ok(container)
    }

    /// Sets (or with `None` clears) a container's spec, stamping the container's
    /// `updated_at`. The bytes were validated by the caller (`model::validate_spec`).
    pub fn put_spec(&mut self, node: NodeId, spec: Option<&[u8]>) -> Result<Container> {
        let container = self.update_container(node, |_| Ok(()))?;
        match spec {
            Some(bytes) if bytes.len() > MAX_SPEC_BYTES => {
                return Err(ValidationError::TooLarge { what: "spec", limit: MAX_SPEC_BYTES }.into())
            }
            Some(bytes) => self.dbs.specs.put(&mut self.txn, &node.0, bytes)?,
            None => drop(self.dbs.specs.delete(&mut self.txn, &node.0)?),
        }
        Ok(container)
    }

    /// `rmdir containers/ID`: deletes the record and its directory.
    pub fn delete_container(&mut self, id: &str) -> Result<Node> {
        let node = self
            .lookup(schema::CONTAINERS, id)?
            .ok_or_else(|| StoreError::NotFound { kind: "container", key: id.into() })?;
        super::tasks::ensure_no_task(self, id)?;
        self.remove_node(&node, Timestamp::now())?;
        self.dbs.containers.delete(&mut self.txn, &node.id.0)?;
        self.dbs.specs.delete(&mut self.txn, &node.id.0)?;
        Ok(node)
    }
}
