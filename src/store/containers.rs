//! Container records: create, update, delete. Each call validates first, then writes,
//! inside the caller's one transaction.

use super::nodes::{Node, NodeId, NodeKind};
use super::{schema, Result, StoreError, StoreRead, Writer};
use crate::model::event::Published;
use crate::model::{validate_identifier, Container, ContainerField, Timestamp, ValidationError, MAX_SPEC_BYTES};

impl Writer<'_> {
    /// `mkdir containers/ID`: a container with containerd's defaults.
    pub fn create_container(&mut self, id: &str) -> Result<(Node, Container)> {
        validate_identifier(id)?;
        let now = Timestamp::now();
        let node = self.insert_node(schema::CONTAINERS, id, NodeKind::Container, now)?;
        let container = Container::new(id.to_owned(), now);
        self.put_container_record(node.id, &container)?;
        self.publish(Published::container_create(&container));
        Ok((node, container))
    }

    /// Applies `change` to a container and stamps `updated_at`. A change that leaves the
    /// record as it was writes nothing (no new `updated_at`): writing a value again is not
    /// a change. Times set on the files whose value changed are cleared.
    pub fn update_container(
        &mut self,
        node: NodeId,
        change: impl FnOnce(&mut Container) -> Result<(), ValidationError>,
    ) -> Result<Container> {
        let before = self.existing_container(node)?;
        let mut container = before.clone();
        change(&mut container)?;
        if container == before {
            return Ok(container);
        }
        let fields = [ContainerField::Image, ContainerField::Snapshotter, ContainerField::Snapshot, ContainerField::Runtime];
        let mut changed: Vec<&str> = fields
            .into_iter()
            .filter(|f| container.field(*f) != before.field(*f))
            .map(ContainerField::file_name)
            .collect();
        if container.labels != before.labels {
            changed.push("labels");
        }
        container.updated_at = Timestamp::now();
        self.put_container_record(node, &container)?;
        self.clear_times(node, &changed)?;
        self.publish(Published::container_update(&container));
        Ok(container)
    }

    /// Sets (or with `None` clears) a container's spec, stamping the container's
    /// `updated_at`. The bytes were validated by the caller (`model::validate_spec`). The
    /// spec it already has changes nothing.
    pub fn put_spec(&mut self, node: NodeId, spec: Option<&[u8]>) -> Result<Container> {
        let mut container = self.existing_container(node)?;
        if spec.is_some_and(|b| b.len() > MAX_SPEC_BYTES) {
            return Err(ValidationError::TooLarge { what: "spec", limit: MAX_SPEC_BYTES }.into());
        }
        if self.dbs.specs.get(&self.txn, &node.0)? == spec {
            return Ok(container);
        }
        match spec {
            Some(bytes) => self.dbs.specs.put(&mut self.txn, &node.0, bytes)?,
            None => drop(self.dbs.specs.delete(&mut self.txn, &node.0)?),
        }
        container.updated_at = Timestamp::now();
        self.put_container_record(node, &container)?;
        self.clear_times(node, &["spec"])?;
        // containerd's update carries no spec, but a spec change is an update.
        self.publish(Published::container_update(&container));
        Ok(container)
    }

    fn existing_container(&self, node: NodeId) -> Result<Container> {
        self.container(node)?.ok_or_else(|| StoreError::NotFound { kind: "container", key: format!("node {}", node.0) })
    }

    /// `rmdir containers/ID`: deletes the record and its directory; returns both as they
    /// were (the caller learns from the record whether anything may be collected now).
    pub fn delete_container(&mut self, id: &str) -> Result<(Node, Container)> {
        let node = self
            .lookup(schema::CONTAINERS, id)?
            .ok_or_else(|| StoreError::NotFound { kind: "container", key: id.into() })?;
        super::tasks::ensure_no_task(self, id)?;
        let record = self.existing_container(node.id)?;
        self.remove_node(&node, Timestamp::now())?;
        self.delete_container_record(node.id)?;
        self.dbs.specs.delete(&mut self.txn, &node.id.0)?;
        self.publish(Published::ContainerDelete { id: id.to_owned() });
        Ok((node, record))
    }
}
