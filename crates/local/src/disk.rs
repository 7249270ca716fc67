//! What the disk adapters of `queuematch dev --data-dir` share: redb, and its errors.
//!
//! Why redb: it is pure Rust (no C toolchain, unlike SQLite's `bundled` build), ACID, and crash-safe
//! by design: copy-on-write B-trees with a checksummed commit, so a `kill -9` at any instant leaves the
//! last committed transaction in force. Every commit here uses `Durability::Immediate`, redb's
//! default: the commit returns once it is fsynced. It takes a lock on its file, so two dev servers
//! cannot share a data directory by accident.

use queuematch_core::ports::PortError;
use std::path::{Path, PathBuf};

/// A disk adapter could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("{} holds a record that cannot be read ({what}): {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        what: String,
        reason: String,
    },
}

/// Opens the database at `path`, creating it (and its directory) if missing.
pub(crate) fn open(path: &Path) -> Result<redb::Database, DiskError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DiskError::Open {
            path: path.to_owned(),
            source: Box::new(redb::DatabaseError::Storage(redb::StorageError::Io(e))),
        })?;
    }
    redb::Database::create(path).map_err(|source| DiskError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Any error of redb, boxed (they are large), so `?` works across redb's error types.
#[derive(Debug)]
pub(crate) struct Failure(pub Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(Box::new(e.into()))
    }
}

/// A failed read at open, as a [`DiskError`].
pub(crate) fn read_error(path: &Path) -> impl Fn(Failure) -> DiskError + '_ {
    move |Failure(source)| DiskError::Read {
        path: path.to_owned(),
        source,
    }
}

/// A record that cannot be encoded: never for the plain structs stored here, but if it happened the
/// write would fail rather than store garbage.
pub(crate) fn encode<T: serde::Serialize>(record: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(record)
        .map_err(|e| Failure::from(redb::Error::Corrupted(format!("cannot encode a record: {e}"))))
}

/// A failed write, as the port reports it: the disk may come back (space freed, a lock released), so
/// it is transient, and nothing of the call was applied.
pub(crate) fn write_failed(what: &str, Failure(source): Failure) -> PortError {
    tracing::warn!(error = %source, "{what} failed");
    PortError::Transient {
        message: format!("{what} failed on disk"),
        source: Some(source),
    }
}
