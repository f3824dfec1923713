//! Why an operation on images, containers, content, snapshots or tasks was refused or
//! failed. The filesystem layer turns these into errnos (in `fs/errno.rs`, the one place
//! that does); nothing here knows about files.

use thiserror::Error;

use crate::content::ContentError;
use crate::model::{TaskStatus, ValidationError};
use crate::runtime::RuntimeError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

/// The service layer's error.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// From the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value the model refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// From the task runtime.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// From the content store (blob files).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// From the snapshotter.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A blob an image needs is not in the content store.
    #[error("blob {digest} ({what} of image {image}) is not in content/")]
    MissingBlob {
        /// Its digest.
        digest: String,
        /// What it is (index, manifest, config, layer N).
        what: String,
        /// The image that needs it.
        image: String,
    },
    /// A container names an image that does not exist.
    #[error("container {container} names image {image:?}, which does not exist")]
    NoImage {
        /// The container.
        container: String,
        /// The image name.
        image: String,
    },
    /// A blob or snapshot operation where there is no state directory for them.
    #[error("this filesystem has no content store or snapshotter")]
    NoResources,
    /// Tasks asked of services built without a task runtime.
    #[error("this mount runs no tasks")]
    NoRuntime,
    /// A task asked for a container that does not exist.
    #[error("there is no container {0:?}")]
    NoContainer(String),
    /// A record that was looked for is gone (deleted meanwhile).
    #[error("{0} does not exist")]
    Gone(String),
    /// The object exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// A label that is not set.
    #[error("no label {0:?}")]
    NoLabel(String),
    /// A signal to a task whose process is gone.
    #[error("task {0} has no process (stopped)")]
    NoProcess(String),
    /// A task verb that does not apply in the task's state.
    #[error("task {0} is {1:?}")]
    IncorrectStatus(String, TaskStatus),
    /// Another operation on the same task is under way.
    #[error("another operation on task {0} is under way")]
    TaskBusy(String),
    /// A host file or directory could not be used.
    #[error("{0}")]
    Host(String),
    /// A blob writer used after it was judged.
    #[error("the blob was already judged on this open file")]
    Judged,
    /// A refusal that may not be final (a digest mismatch at a close while another
    /// descriptor may still write the rest).
    #[error("{0} (judged again at release)")]
    Unsettled(Box<ServiceError>),
}

/// Results of the service layer.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
