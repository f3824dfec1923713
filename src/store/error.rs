//! The store's one error type.

use thiserror::Error;

use crate::model::ValidationError;

/// Why a store operation failed. The filesystem maps each variant to one errno.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{kind} {key:?} does not exist")]
    NotFound {
        /// What kind of object was looked for.
        kind: &'static str,
        /// Its name or id.
        key: String,
    },
    /// The name is taken.
    #[error("{kind} {key:?} already exists")]
    AlreadyExists {
        /// What kind of object exists.
        kind: &'static str,
        /// Its name.
        key: String,
    },
    /// A directory that still has entries.
    #[error("{what} still has entries")]
    NotEmpty {
        /// The directory.
        what: String,
    },
    /// The object is referenced by another.
    #[error("{what} is in use by {by}")]
    InUse {
        /// The object.
        what: String,
        /// What uses it.
        by: String,
    },
    /// The operation does not apply to this object.
    #[error("{0}")]
    NotPermitted(String),
    /// The store holds another namespace than the one asked for.
    #[error("the store holds namespace {holds:?}, not {asked:?}")]
    OtherNamespace {
        /// The namespace recorded in the store.
        holds: String,
        /// The namespace asked for.
        asked: String,
    },
    /// A value the model refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The LMDB map is full.
    #[error("the database is full (LMDB map size reached)")]
    Full,
    /// The filesystem holding the state directory has no room for a commit's pages
    /// (LMDB's data file is sparse and grows as pages are written, so a full disk shows
    /// at the commit, as an `ENOSPC` or `EDQUOT` from its writes).
    #[error("no space left on the state directory's filesystem for the database ({0})")]
    NoSpace(std::io::Error),
    /// A record that cannot be decoded or breaks an invariant.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database was written by a newer ctrfs.
    #[error("the database has schema version {found}, newer than the {supported} this ctrfs understands; use a newer ctrfs")]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Highest version this binary knows.
        supported: u32,
    },
    /// Any other LMDB failure.
    #[error("lmdb: {0}")]
    Lmdb(heed::Error),
    /// A filesystem failure around the environment.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full,
            heed::Error::Decoding(inner) => StoreError::Corrupt(inner.to_string()),
            heed::Error::Io(io) if is_no_space(&io) => StoreError::NoSpace(io),
            other => StoreError::Lmdb(other),
        }
    }
}

/// Whether an I/O error means the filesystem is out of space (or the user's quota).
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_on_a_full_filesystem_is_no_space_not_an_lmdb_fault() {
        let full = |code| StoreError::from(heed::Error::Io(std::io::Error::from_raw_os_error(code)));
        assert!(matches!(full(libc::ENOSPC), StoreError::NoSpace(_)));
        assert!(matches!(full(libc::EDQUOT), StoreError::NoSpace(_)));
        assert!(matches!(full(libc::EACCES), StoreError::Lmdb(_)));
        assert!(matches!(StoreError::from(heed::Error::Mdb(heed::MdbError::MapFull)), StoreError::Full));
    }
}
