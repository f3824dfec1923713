//! Task records: create, update, delete. A task is a node under `tasks/` named by its
//! container's id; its existence is what makes the container busy.

use super::nodes::{Node, NodeId, NodeKind};
use super::{schema, Result, StoreError, StoreRead, Writer};
use crate::model::{Task, Timestamp};

impl Writer<'_> {
    /// Records a task whose process the runtime has just started. Refuses when the
    /// container is gone or a task exists.
    pub fn create_task(&mut self, task: Task) -> Result<Node> {
        if self.lookup(schema::CONTAINERS, &task.id)?.is_none() {
            return Err(StoreError::NotFound { kind: "container", key: task.id });
        }
        let node = self.insert_node(schema::TASKS, &task.id, NodeKind::Task, task.created_at)?;
        self.dbs.tasks.put(&mut self.txn, &node.id.0, &task)?;
        Ok(node)
    }

    /// Compare-and-set of a task: `change` sees the record as this transaction read it
    /// and returns whether it applies (the model's run rules: `Task::record_exit`,
    /// `change_status`, `begin_run`). Applied: the record is written with a new
    /// `updated_at` and returned. Refused: nothing is written and `None` is returned. The
    /// check and the write are one transaction, so no other change can come between them.
    pub fn update_task(&mut self, node: NodeId, change: impl FnOnce(&mut Task) -> bool) -> Result<Option<Task>> {
        let mut task = self
            .task(node)?
            .ok_or_else(|| StoreError::NotFound { kind: "task", key: format!("node {}", node.0) })?;
        if !change(&mut task) {
            return Ok(None);
        }
        task.updated_at = Timestamp::now();
        self.dbs.tasks.put(&mut self.txn, &node.0, &task)?;
        // What `cat tasks/<id>` shows changed: a time set on the file is over.
        self.clear_times(node, &[])?;
        Ok(Some(task))
    }

    /// Removes a task record; returns it as it was.
    pub fn delete_task(&mut self, id: &str) -> Result<Task> {
        let node = self.lookup(schema::TASKS, id)?.ok_or_else(|| StoreError::NotFound { kind: "task", key: id.into() })?;
        let task = self.task(node.id)?.ok_or_else(|| StoreError::Corrupt(format!("task node {} has no record", node.id.0)))?;
        self.remove_node(&node, Timestamp::now())?;
        self.dbs.tasks.delete(&mut self.txn, &node.id.0)?;
        Ok(task)
    }
}

/// Refuses to delete a container while its task exists.
pub(super) fn ensure_no_task(reader: &impl StoreRead, container_id: &str) -> Result<()> {
    match reader.lookup(schema::TASKS, container_id)? {
        Some(_) => Err(StoreError::InUse { what: format!("container {container_id}"), by: format!("task {container_id}") }),
        None => Ok(()),
    }
}
