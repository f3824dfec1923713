//! Snapshots: root filesystems made of image layers, on overlayfs or by copying.
//!
//! No LMDB and no FUSE type here: the store records which snapshots exist, this module
//! makes and removes their directories and mounts.

mod error;

pub use error::{Result, SnapshotError};
