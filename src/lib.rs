//! ctrfs: containerd's metadata model (images, containers, tasks) as a FUSE filesystem,
//! stored durably in LMDB.
//!
//! ```text
//!   kernel (VFS, FUSE) ──► fs::fuse (fuser adapter: decode, reply; workers for slow requests)
//!                              │
//!                              ▼
//!                          fs (FsCore: paths, inodes, handles and their buffers, attributes,
//!                              │   the errno mapping, kernel notices)
//!                              ▼
//!                          service (what an operation means: validate, commit, side effects;
//!                              │     images, containers, content, snapshots, tasks, collection)
//!            ┌─────────────┬───┴──────────┬──────────────┐
//!            ▼             ▼              ▼              ▼
//!   store (LMDB)   content (blobs)   snapshot (trees)   runtime (runc, supervisor)
//!            └─────────────┴──────► model ◄─────────────┘   (types + validation, no I/O)
//! ```
//!
//! Dependencies point downwards only: `model` knows nothing of the others, `store` knows
//! no FUSE type, `fs` knows no LMDB type and writes only through `service`; `daemon` and
//! `cli` wire them together.
#![warn(missing_docs)]

pub mod cli;
pub mod content;
pub mod daemon;
pub mod fault;
pub mod fs;
pub mod import;
pub mod model;
pub mod mount_helper;
pub mod namespaces;
pub mod priority;
pub mod runtime;
pub mod service;
pub mod snapshot;
pub mod state_dir;
pub mod status;
pub mod store;
