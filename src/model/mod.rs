//! The domain model: images, containers, their names, labels and descriptors, and every
//! validation rule that applies to them.
//!
//! Pure data and pure functions: no I/O, no LMDB, no FUSE. Everything a user can write is
//! parsed and judged here, so the store and the filesystem never hold an invalid value.

mod blob;
mod container;
mod descriptor;
mod error;
pub mod filter;
pub mod event;
mod gc;
mod image;
mod json_scan;
mod labels;
mod name;
pub mod oci;
mod snapshot;
mod syntax;
mod task;
mod time;

pub use blob::{digest_of_file_name, Blob, BlobState, DIGEST_ALGORITHMS};
pub use container::{trim_json_whitespace, validate_spec, Container, ContainerField, DEFAULT_RUNTIME, DEFAULT_SNAPSHOTTER, MAX_SPEC_BYTES};
pub use descriptor::{validate_digest, Descriptor};
pub use error::ValidationError;
pub use filter::{escape_component, unescape_component, Fields, Filter, FilterError};
pub use gc::{is_root as is_gc_root, label_refs, LabelRef, LABEL_REF_CONTENT, LABEL_REF_SNAPSHOT, LABEL_ROOT};
pub use image::Image;
pub use json_scan::{JsonScan, JsonSyntaxError, MAX_JSON_DEPTH};
pub use labels::{parse_document as parse_labels, parse_line as parse_label_line, validate_label, LabelEdit, Labels, MAX_LABELS, MAX_LABELS_BYTES, MAX_LABEL_BYTES};
pub use name::{validate_component, validate_identifier, validate_image_name, validate_namespace, DEFAULT_NAMESPACE, MAX_COMPONENT_BYTES, MAX_IDENTIFIER_BYTES};
pub use syntax::SyntaxSpot;
pub use snapshot::{validate_snapshot_key, Mount, Snapshot, SnapshotKind, Usage};
pub use task::{removes_on_exit, Task, TaskStatus, LABEL_REMOVE_ON_EXIT};
pub use time::{FileTimes, SetTimes, Timestamp, NODE_ITSELF};

/// The largest document any attribute file other than `spec` accepts.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
