//! Integration tests against a real FUSE mount of the `ctrfs` binary, checking the user
//! contract in docs/interface.md. Every test mounts its own daemon (see `common`), so they
//! run in parallel; they need root.

mod common;

mod cache;
mod concurrency;
mod containers;
mod crash;
mod durability;
mod errno;
mod events;
mod fuzz;
mod fulldisk;
mod hostile;
mod hosts;
mod images;
mod labels;
mod load;
mod namespaces;
mod oci;
mod oci_fixture;
mod privacy;
mod queries;
mod refusals;
mod roundtrip;
mod security;
mod shell;
mod signals;
mod tasks;
mod tools;
mod trust;
mod walks;
