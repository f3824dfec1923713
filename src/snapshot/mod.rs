//! Snapshots: root filesystems made of image layers, on overlayfs or by copying.
//!
//! No LMDB and no FUSE type here: the store records which snapshots exist, this module
//! makes and removes their directories (`STATE_DIR/snapshots/<id>/`) and mounts them.
//!
//! ```text
//! overlayfs:  <id>/fs    the layer's own files (whiteouts in overlay's form), or an active
//!                        snapshot's upper directory
//!             <id>/work  overlay's work directory (active snapshots only)
//!             mount: overlay lowerdir=<parent chain, top first>,upperdir=<id>/fs,workdir=<id>/work
//! native:     <id>/fs    a full copy of the parent plus this layer; mount: bind <id>/fs
//! ```

pub mod apply;
mod at;
pub mod copy;
mod error;
mod mount;
mod ops;
mod snapshotter;
mod xattr;

pub use apply::{apply_layer, Applied, ApplyOptions, Compression, Whiteouts};
pub use copy::{copy_tree, remove_tree, tree_usage, Usage as TreeUsage};
pub use error::{Result, SnapshotError};
pub use mount::{mount_all, unmount};
pub use snapshotter::{Driver, Snapshotter};
