//! The filesystem layer's error type and the one place where any error becomes an errno.

use thiserror::Error;

use crate::content::ContentError;
use crate::model::ValidationError;
use crate::runtime::RuntimeError;
use crate::service::ServiceError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

/// Why a filesystem request was refused or failed.
#[derive(Debug, Error)]
pub enum FsError {
    /// From the services (what the operation means).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// From the store, on a read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value the model refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A host file behind a view (a task log) could not be used.
    #[error("{0}")]
    Host(String),
    /// No such inode or name.
    #[error("no such file or directory")]
    NotFound,
    /// The operation does not exist in this tree (creating arbitrary files, renames...).
    #[error("{0}")]
    NotPermitted(String),
    /// A read-only file opened for writing.
    #[error("{0} is read-only")]
    ReadOnly(&'static str),
    /// A directory operation on a file.
    #[error("not a directory")]
    NotDir,
    /// A file operation on a directory.
    #[error("is a directory")]
    IsDir,
    /// The name exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// An image file other than `target` used before the image has a target.
    #[error("the image has no target yet; write target first")]
    NoTarget,
    /// A name that is not UTF-8.
    #[error("names must be valid UTF-8")]
    BadName,
    /// A name over 255 bytes.
    #[error("a name component is longer than 255 bytes")]
    NameTooLong,
    /// A label asked for as an extended attribute that is not set.
    #[error("no label {0:?}")]
    NoLabel(String),
    /// An extended attribute outside `user.`.
    #[error("extended attribute {0:?} is not supported; labels are user.<key>")]
    XattrNotSupported(String),
    /// The caller's buffer is too small for the value.
    #[error("the value is larger than the buffer")]
    Range,
    /// An unknown file handle, or one not opened for this operation.
    #[error("bad file handle")]
    BadHandle,
    /// A request that makes no sense for this file (e.g. truncating to a non-zero size).
    #[error("{0}")]
    InvalidRequest(String),
    /// More files are open on the mount than it allows.
    #[error("more than {0} files are open on this mount")]
    TooManyOpenFiles(usize),
    /// A temporary file operation refused.
    #[error("temporary file: {0:?}")]
    Temp(super::temp::TempRefusal),
    /// A rename to another directory (tools then copy and remove).
    #[error("a temporary file can only be renamed within its directory")]
    CrossDirectory,
    /// As many reads of `wait/` files are blocked as may be.
    #[error("{0} reads of wait files are already blocked on this mount")]
    TooManyWaiters(usize),
    /// As many query directories are held as may be.
    #[error("{0} query directories (.filter, .by-target) are held already; leave some")]
    TooManyQueries(usize),
    /// The open files together hold as many document bytes as they may.
    #[error("open files hold {0} MiB of documents, all they may; close some")]
    TooMuchHeld(usize),
    /// A handle whose earlier write was refused: the same answer again.
    #[error("refused earlier on this open file: {reason}")]
    Refused {
        /// The errno of the first refusal.
        errno: i32,
        /// Its reason.
        reason: String,
    },
    /// A refusal that may not be final (a bare truncation at a shell's early close): the
    /// caller gets the errno, the log line waits for the final judgement.
    #[error("{0} (judged again at release)")]
    Unsettled(Box<FsError>),
}

impl FsError {
    /// The errno for this error: the only conversion of errors to errno in ctrfs.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Service(e) => service_errno(e),
            FsError::Store(e) => store_errno(e),
            FsError::Invalid(e) => validation_errno(e),
            FsError::Host(_) => libc::EIO,
            FsError::NotFound => libc::ENOENT,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::ReadOnly(_) => libc::EACCES,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::Exists(_) => libc::EEXIST,
            FsError::NoTarget => libc::EINVAL,
            FsError::BadName => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NoLabel(_) => libc::ENODATA,
            FsError::XattrNotSupported(_) => libc::ENOTSUP,
            FsError::Range => libc::ERANGE,
            FsError::BadHandle => libc::EBADF,
            FsError::InvalidRequest(_) => libc::EINVAL,
            FsError::TooManyOpenFiles(_) | FsError::TooMuchHeld(_) | FsError::TooManyWaiters(_) | FsError::TooManyQueries(_) => {
                libc::ENFILE
            }
            FsError::Temp(refusal) => temp_errno(*refusal),
            FsError::CrossDirectory => libc::EXDEV,
            FsError::Refused { errno, .. } => *errno,
            FsError::Unsettled(inner) => inner.errno(),
        }
    }

    /// Where in the text written (or the path looked up) a syntax error sits, when the
    /// refusal is one.
    pub fn syntax_spot(&self) -> Option<crate::model::SyntaxSpot> {
        let invalid = match self {
            FsError::Invalid(e) | FsError::Service(ServiceError::Invalid(e)) | FsError::Store(StoreError::Invalid(e)) => e,
            FsError::Service(ServiceError::Store(StoreError::Invalid(e))) => e,
            FsError::Unsettled(inner) => return inner.syntax_spot(),
            _ => return None,
        };
        match invalid {
            ValidationError::NotJson { spot, .. } => Some(spot.clone()),
            ValidationError::InvalidFilter(e) => Some(e.spot()),
            _ => None,
        }
    }

    /// Whether the refusal may not be final (logged quietly; judged again at release).
    pub fn is_unsettled(&self) -> bool {
        matches!(self, FsError::Unsettled(_) | FsError::Service(ServiceError::Unsettled(_)))
    }

    /// Whether it repeats a refusal answered (and logged) at an earlier call of the same
    /// open file, such as the close after a refused write.
    pub fn is_repeated(&self) -> bool {
        matches!(self, FsError::Refused { .. })
    }

    /// Whether it refuses an extended attribute outside `user.` in a namespace copying
    /// tools try on every file (`system.posix_acl_access` from `cp -p`, `security.*`):
    /// routine, as on any filesystem without ACLs.
    pub fn is_foreign_xattr(&self) -> bool {
        matches!(self, FsError::XattrNotSupported(name) if name.starts_with("system.") || name.starts_with("security."))
    }

    /// True for failures of ctrfs itself (logged as errors), false for refusals of what a
    /// user asked (logged as one informational line).
    pub fn is_internal(&self) -> bool {
        matches!(self.errno(), libc::EIO | libc::ETIMEDOUT)
    }
}

fn temp_errno(refusal: super::temp::TempRefusal) -> i32 {
    use super::temp::TempRefusal;
    match refusal {
        TempRefusal::Exists => libc::EEXIST,
        TempRefusal::TooMany | TempRefusal::Full => libc::ENOSPC,
        TempRefusal::TooLarge => libc::EFBIG,
        TempRefusal::Gone => libc::ENOENT,
        TempRefusal::Renamed => libc::ESTALE,
    }
}

fn service_errno(e: &ServiceError) -> i32 {
    match e {
        ServiceError::Store(e) => store_errno(e),
        ServiceError::Invalid(e) => validation_errno(e),
        ServiceError::Runtime(e) => runtime_errno(e),
        ServiceError::Content(e) => content_errno(e),
        ServiceError::Snapshot(e) => snapshot_errno(e),
        ServiceError::MissingBlob { .. } | ServiceError::NoImage { .. } => libc::ENOENT,
        ServiceError::NoResources | ServiceError::NoRuntime => libc::EPERM,
        ServiceError::NoContainer(_) | ServiceError::Gone(_) => libc::ENOENT,
        ServiceError::Exists(_) => libc::EEXIST,
        ServiceError::NoLabel(_) => libc::ENODATA,
        ServiceError::NoProcess(_) => libc::ESRCH,
        ServiceError::IncorrectStatus(..) | ServiceError::TaskBusy(_) => libc::EBUSY,
        ServiceError::Host(_) => libc::EIO,
        ServiceError::Judged => libc::EBADF,
        ServiceError::Unsettled(inner) => service_errno(inner),
    }
}

fn store_errno(e: &StoreError) -> i32 {
    match e {
        StoreError::NotFound { .. } => libc::ENOENT,
        StoreError::AlreadyExists { .. } => libc::EEXIST,
        StoreError::NotEmpty { .. } => libc::ENOTEMPTY,
        StoreError::InUse { .. } => libc::EBUSY,
        StoreError::NotPermitted(_) => libc::EPERM,
        StoreError::Invalid(v) => validation_errno(v),
        StoreError::Full | StoreError::NoSpace(_) => libc::ENOSPC,
        StoreError::Io(e) => io_errno(e),
        StoreError::Corrupt(_) | StoreError::SchemaTooNew { .. } | StoreError::OtherNamespace { .. } | StoreError::Lmdb(_) => libc::EIO,
    }
}

fn content_errno(e: &ContentError) -> i32 {
    match e {
        ContentError::DigestMismatch { .. } => libc::EINVAL,
        ContentError::TooLarge { .. } => libc::EFBIG,
        ContentError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => libc::ENOENT,
        ContentError::Io { source, .. } => io_errno(source),
    }
}

/// A host file operation that failed: a full filesystem (or quota) is the caller's
/// `ENOSPC`, as on any filesystem, not an internal fault; anything else is `EIO`.
fn io_errno(e: &std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => libc::ENOSPC,
        _ => libc::EIO,
    }
}

fn snapshot_errno(e: &SnapshotError) -> i32 {
    match e {
        SnapshotError::Invalid(_) => libc::EINVAL,
        SnapshotError::Io { source, .. } => io_errno(source),
    }
}

fn runtime_errno(e: &RuntimeError) -> i32 {
    match e {
        RuntimeError::BadSpec { .. } | RuntimeError::BadControl { .. } => libc::EINVAL,
        RuntimeError::NoSuchTask { .. } => libc::ENOENT,
        RuntimeError::IncorrectStatus { .. } => libc::EBUSY,
        RuntimeError::Runc { .. } | RuntimeError::Supervisor { .. } | RuntimeError::Io(_) | RuntimeError::Nix(_) => libc::EIO,
        // Told apart from a runtime that refused: the start was killed, it may succeed
        // when tried again.
        RuntimeError::StartTimeout { .. } => libc::ETIMEDOUT,
    }
}

fn validation_errno(e: &ValidationError) -> i32 {
    match e {
        ValidationError::TooLarge { .. } => libc::EFBIG,
        ValidationError::InvalidIdentifier { .. }
        | ValidationError::InvalidImageName { .. }
        | ValidationError::InvalidLabel { .. }
        | ValidationError::InvalidDescriptor { .. }
        | ValidationError::InvalidSpec { .. }
        | ValidationError::InvalidField { .. }
        | ValidationError::InvalidDigest { .. }
        | ValidationError::NotJson { .. }
        | ValidationError::InvalidFilter(_)
        | ValidationError::InvalidImage { .. } => libc::EINVAL,
    }
}

/// The symbolic name of an errno, for log lines.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EBUSY => "EBUSY",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EIO => "EIO",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ERANGE => "ERANGE",
        libc::EBADF => "EBADF",
        libc::EINTR => "EINTR",
        libc::ESRCH => "ESRCH",
        libc::ENOSYS => "ENOSYS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENFILE => "ENFILE",
        libc::EXDEV => "EXDEV",
        libc::ESTALE => "ESTALE",
        _ => "errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(e: ServiceError) -> FsError {
        FsError::Service(e)
    }

    #[test]
    fn every_class_has_its_errno() {
        let rows: Vec<(FsError, i32)> = vec![
            (StoreError::NotFound { kind: "container", key: "x".into() }.into(), libc::ENOENT),
            (StoreError::AlreadyExists { kind: "container", key: "x".into() }.into(), libc::EEXIST),
            (StoreError::NotEmpty { what: "a".into() }.into(), libc::ENOTEMPTY),
            (StoreError::InUse { what: "a".into(), by: "b".into() }.into(), libc::EBUSY),
            (StoreError::Full.into(), libc::ENOSPC),
            (StoreError::NoSpace(std::io::Error::from_raw_os_error(libc::ENOSPC)).into(), libc::ENOSPC),
            (StoreError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)).into(), libc::ENOSPC),
            (service(ContentError::io("writing", std::io::Error::from_raw_os_error(libc::ENOSPC)).into()), libc::ENOSPC),
            (service(SnapshotError::io("unpacking", std::io::Error::from_raw_os_error(libc::EDQUOT)).into()), libc::ENOSPC),
            (StoreError::Corrupt("x".into()).into(), libc::EIO),
            (ValidationError::TooLarge { what: "spec", limit: 1 }.into(), libc::EFBIG),
            (ValidationError::InvalidSpec { reason: "x".into() }.into(), libc::EINVAL),
            (StoreError::Invalid(ValidationError::InvalidLabel { key: "k".into(), reason: "r" }).into(), libc::EINVAL),
            (FsError::ReadOnly("info.json"), libc::EACCES),
            (FsError::NotPermitted("x".into()), libc::EPERM),
            (FsError::NoLabel("k".into()), libc::ENODATA),
            (FsError::XattrNotSupported("security.x".into()), libc::ENOTSUP),
            (FsError::NoTarget, libc::EINVAL),
            (FsError::TooManyWaiters(1), libc::ENFILE),
            (service(ContentError::DigestMismatch { expected: "a".into(), actual: "b".into() }.into()), libc::EINVAL),
            (service(ServiceError::MissingBlob { digest: "d".into(), what: "layer 0".into(), image: "i".into() }), libc::ENOENT),
            (service(ServiceError::NoImage { container: "c".into(), image: "i".into() }), libc::ENOENT),
            (service(SnapshotError::Invalid("x".into()).into()), libc::EINVAL),
            (service(RuntimeError::Runc { op: "runc create", message: String::new() }.into()), libc::EIO),
            (service(RuntimeError::StartTimeout { id: "t".into(), after: std::time::Duration::from_secs(30) }.into()), libc::ETIMEDOUT),
            (service(ServiceError::TaskBusy("t".into())), libc::EBUSY),
            (service(ServiceError::NoProcess("t".into())), libc::ESRCH),
            (FsError::TooManyOpenFiles(1), libc::ENFILE),
            (FsError::Refused { errno: libc::EBUSY, reason: "r".into() }, libc::EBUSY),
        ];
        for (error, errno) in rows {
            assert_eq!(error.errno(), errno, "{error}");
            assert_ne!(errno_name(errno), "errno");
        }
        assert!(FsError::Store(StoreError::Corrupt("x".into())).is_internal());
        assert!(!FsError::NotFound.is_internal());
        assert!(service(RuntimeError::StartTimeout { id: "t".into(), after: Default::default() }.into()).is_internal());
        assert!(service(ServiceError::Unsettled(Box::new(ServiceError::Judged))).is_unsettled());
    }
}
