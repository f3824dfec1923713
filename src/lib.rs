//! ctrfs: containerd's metadata model (images, containers, tasks) as a FUSE filesystem,
//! stored durably in LMDB.
//!
//! ```text
//!   kernel (VFS, FUSE) ──► fs::fuse (fuser adapter: decode, reply, errno)
//!                              │
//!                              ▼
//!                          fs (FsCore: paths/inodes onto records, handles, write rules)
//!                           │                     │
//!                           ▼                     ▼
//!                   store (LMDB via heed)   runtime (runc, supervision)
//!                           │                     │
//!                           └────────► model ◄────┘   (types + validation, no I/O)
//! ```
//!
//! Dependencies point downwards only: `model` knows nothing of the others, `store` knows
//! no FUSE type, `fs` knows no LMDB type.
#![warn(missing_docs)]

pub mod cli;
pub mod content;
pub mod daemon;
pub mod fs;
pub mod import;
pub mod model;
pub mod runtime;
pub mod snapshot;
pub mod state_dir;
pub mod store;
