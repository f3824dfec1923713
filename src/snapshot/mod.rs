//! Snapshots: root filesystems made of image layers, on overlayfs or by copying.
//!
//! No LMDB and no FUSE type here: the store records which snapshots exist, this module
//! makes and removes their directories and mounts.

pub mod apply;
pub mod copy;
mod error;
mod ops;
mod xattr;

pub use apply::{apply_layer, Applied, ApplyOptions, Compression, Whiteouts};
pub use copy::{copy_tree, remove_tree, tree_usage, Usage};
pub use error::{Result, SnapshotError};
