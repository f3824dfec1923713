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
    /// A value the model refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The LMDB map is full.
    #[error("the database is full (LMDB map size reached)")]
    Full,
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
            other => StoreError::Lmdb(other),
        }
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
