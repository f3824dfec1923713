//! The service layer: what an operation on images, containers, content, snapshots and
//! tasks means, whatever asked for it. Each operation validates, commits through the
//! store's one write path, and runs its side effects (unpacking layers, mounting root
//! filesystems, runc through the task runtime, collection), one file per object kind, as
//! containerd's services sit over its metadata store.
//!
//! ```text
//!   fs (paths, inodes, handles, errno)  ──►  Services ──► store    (records, one txn each)
//!                                               │    ├──► content  (blob files)
//!                                               │    ├──► snapshot (layer trees, mounts)
//!                                               │    └──► runtime  (runc, supervisors)
//!                                               └── events ──► fs (waiters, kernel notices)
//! ```
//!
//! Nothing here knows about files, inodes or FUSE; callers hand in node ids and model
//! values and get records and [`ServiceError`]s back. Operations may take long (an unpack,
//! a task start): the filesystem runs them on its workers, never on a request thread.
//! What changed on its own (a task exited, a collection removed blobs) is told to the
//! listeners registered with [`Services::on_event`], after commit.

mod collection;
mod containers;
mod content;
mod error;
mod images;
mod labels;
mod resources;
mod snapshots;
mod tasks;
mod times;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::model::{ContainerField, Descriptor, LabelEdit, Labels};
use crate::store::{Collected, NodeId, NodeKind, Store, StoreRead};

pub use content::{BlobWriter, Judge};
pub use labels::Presence;
pub use error::{Result, ServiceError};
pub use resources::{HeldRefs, ResourceConfig, Resources};
pub use tasks::{TaskGate, TaskRuntime};
pub use times::TimeSet;

/// One validated change to one field of a record (what a write to an attribute file, or
/// any other caller, asks for).
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A new image target, with the document as written (shown back byte for byte);
    /// `None` shows the descriptor's rendering.
    Target(Descriptor, Option<String>),
    /// No target: the image directory is a name prefix again (what putting back the
    /// value from before a refused first target means).
    ClearTarget,
    /// A new (or cleared) runtime spec: the validated bytes, kept as written.
    Spec(Option<Vec<u8>>),
    /// A new value for a one-line container field.
    Field(ContainerField, String),
    /// A whole new label set.
    ReplaceLabels(Labels),
    /// Label edits merged into the current set.
    MergeLabels(Vec<LabelEdit>),
}

/// Something that changed without being asked by the caller that sees it: told after commit.
#[derive(Debug, Clone)]
pub enum Event {
    /// A task's run stopped; `wait_text` is its exit as `wait/<id>` shows it.
    TaskExited {
        /// The task node.
        node: NodeId,
        /// Its exit status as text.
        wait_text: String,
    },
    /// A task's record changed (status, pid, a new run).
    TaskChanged {
        /// The task node.
        node: NodeId,
    },
    /// A task is about to be deleted on its own (its container asked for that on exit):
    /// its record is still there to read.
    TaskRemoving {
        /// The task node.
        node: NodeId,
    },
    /// That task was deleted.
    TaskRemoved {
        /// The task node it had.
        node: NodeId,
        /// Its id.
        id: String,
    },
    /// A collection removed these blobs and snapshots.
    Collected(Collected),
}

type Listener = Box<dyn Fn(&Event) + Send + Sync>;

/// The services over one store, with the content store, snapshotter and task runtime
/// when the daemon has them.
pub struct Services {
    store: Arc<Store>,
    runtime: Option<Arc<dyn TaskRuntime>>,
    resources: Option<Arc<Resources>>,
    /// Serializes operations per task id (and a container's root filesystem with them).
    gate: TaskGate,
    listeners: Mutex<Vec<Listener>>,
}

impl Services {
    /// Services over a store alone: metadata only, no blobs, snapshots or tasks.
    pub fn new(store: Arc<Store>) -> Self {
        Services { store, runtime: None, resources: None, gate: TaskGate::default(), listeners: Mutex::default() }
    }

    /// Adds a task runtime.
    pub fn with_runtime(mut self, runtime: Arc<dyn TaskRuntime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Adds the content store and snapshotter.
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = Some(Arc::new(resources));
        self
    }

    /// The store, for readers (lookups and listings read it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether blobs and snapshots are kept (a state directory is open for them).
    pub fn has_resources(&self) -> bool {
        self.resources.is_some()
    }

    /// Registers a listener for events; it runs on the thread that made the change.
    pub fn on_event(&self, listener: impl Fn(&Event) + Send + Sync + 'static) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(listener));
    }

    fn emit(&self, event: Event) {
        for listener in self.listeners.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            listener(&event);
        }
    }

    fn resources(&self) -> Result<&Resources> {
        self.resources.as_deref().ok_or(ServiceError::NoResources)
    }

    /// Commits one validated change to the record of `node` (of `kind`). A container's
    /// snapshot key may prepare its root filesystem; an image's target is checked against
    /// its blob when that is here. A value equal to the stored one commits nothing: the
    /// record keeps its `updated_at` and the times set on its files.
    pub fn apply(&self, edit: Edit, node: NodeId, kind: NodeKind) -> Result<()> {
        match (kind, edit) {
            (NodeKind::ImageDir, Edit::Target(descriptor, text)) => self.set_target(node, descriptor, text),
            (NodeKind::ImageDir, Edit::ClearTarget) => self.clear_target(node),
            (NodeKind::Container, Edit::Spec(spec)) => self.set_spec(node, spec.as_deref()),
            (NodeKind::Container, Edit::Field(ContainerField::Snapshot, key)) => self.set_snapshot_key(node, &key),
            (NodeKind::Container, Edit::Field(field, value)) => self.set_field(node, field, &value),
            (_, Edit::ReplaceLabels(labels)) => self.update_labels(node, |l| *l = labels),
            (_, Edit::MergeLabels(edits)) => self.update_labels(node, |l| l.apply(edits)),
            (kind, edit) => Err(crate::store::StoreError::NotPermitted(format!("{edit:?} does not apply to a {kind:?}")).into()),
        }
    }

    /// Puts `back` (the value from before a refused handle's open) on `node`, if its field
    /// still holds `ours`, the value that handle committed. The check and the write are one
    /// transaction, so a value another writer commits meanwhile is theirs, acknowledged,
    /// and stays. A snapshot key, whose change may prepare a root filesystem outside any
    /// transaction, is checked first and then set as any key is (the one window left: a
    /// key written between the two is replaced). Answers whether it put the value back.
    pub fn put_back(&self, node: NodeId, kind: NodeKind, ours: &Edit, back: Edit) -> Result<bool> {
        if let Edit::Field(ContainerField::Snapshot, key) = &back {
            if !holds(&self.store.read()?, node, kind, ours)? {
                return Ok(false);
            }
            self.set_snapshot_key(node, key)?;
            return Ok(true);
        }
        self.store.write(|w| -> Result<bool> {
            if !holds(w, node, kind, ours)? {
                return Ok(false);
            }
            match (kind, back) {
                (NodeKind::ImageDir, Edit::Target(descriptor, text)) => drop(w.put_image_target(node, descriptor, text)?),
                (NodeKind::ImageDir, Edit::ClearTarget) => w.clear_image_target(node)?,
                (NodeKind::Container, Edit::Spec(spec)) => drop(w.put_spec(node, spec.as_deref())?),
                (NodeKind::Container, Edit::Field(field, value)) => {
                    drop(w.update_container(node, |c| c.set_field(field, &value))?)
                }
                (_, Edit::ReplaceLabels(labels)) => drop(w.update_labels(node, |l| {
                    *l = labels;
                    Ok(())
                })?),
                (kind, edit) => {
                    return Err(crate::store::StoreError::NotPermitted(format!("{edit:?} cannot be put back on a {kind:?}")).into())
                }
            }
            Ok(true)
        })
    }

    /// Keeps `refs` from collection until the guard drops (an open writer's file's
    /// references at open); `None` where nothing is ever collected.
    pub fn pin(&self, refs: Vec<crate::store::Reference>) -> Option<HeldRefs> {
        let res = self.resources.as_ref()?;
        (!refs.is_empty()).then(|| res.hold_refs(refs))
    }
}

/// Whether `node`'s field holds the value `edit` set (a whole value: not a merge of label
/// lines, which always answers `false`), as `reader` sees it.
fn holds(reader: &impl StoreRead, node: NodeId, kind: NodeKind, edit: &Edit) -> Result<bool> {
    Ok(match (kind, edit) {
        (NodeKind::ImageDir, Edit::Target(target, text)) => reader.image(node)?.is_some_and(|i| {
            i.target.as_ref() == Some(target) && text.as_ref().is_none_or(|t| *t == i.target_file())
        }),
        (NodeKind::ImageDir, Edit::ClearTarget) => reader.image(node)?.is_none_or(|i| i.target.is_none()),
        (NodeKind::Container, Edit::Spec(spec)) => reader.with_spec(node, |s| s.to_vec())? == *spec,
        (NodeKind::Container, Edit::Field(field, value)) => reader.container(node)?.is_some_and(|c| c.field(*field) == value),
        // A name prefix in images/ whose labels went has no record at all: no labels.
        (_, Edit::ReplaceLabels(labels)) => reader.node(node)?.is_some() && reader.labels_of(node)?.unwrap_or_default() == *labels,
        _ => false,
    })
}

/// Locks a mutex; a poisoned one (a request panicked while holding it) still holds
/// consistent data here, since every update under these locks is a single assignment.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A spec as the runtime takes it, from the stored bytes.
fn parse_spec(id: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("spec of container {id}: {e}")).into())
}
