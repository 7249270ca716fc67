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
///
/// A new file is made whole beside it and renamed into place, so that a process killed while
/// creating it leaves either no file or a database, never a half-written file no start can open.
/// An existing file that is empty was not written by redb (a database is never empty): it is
/// refused rather than taken as a new, empty one.
pub(crate) fn open(path: &Path) -> Result<redb::Database, DiskError> {
    let io = |e: std::io::Error| DiskError::Open {
        path: path.to_owned(),
        source: Box::new(redb::DatabaseError::Storage(redb::StorageError::Io(e))),
    };
    let redb_failed = |source: redb::DatabaseError| DiskError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => {
            return Err(DiskError::Corrupt {
                path: path.to_owned(),
                what: "the file".into(),
                reason: "it is empty, so no database written here; remove it to start afresh".into(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut creating = path.as_os_str().to_owned();
            creating.push(".creating");
            let creating = PathBuf::from(creating);
            // Left by a start killed while creating the file: never in use, so never worth keeping.
            match std::fs::remove_file(&creating) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
            drop(redb::Database::create(&creating).map_err(redb_failed)?);
            std::fs::rename(&creating, path).map_err(io)?;
            if let Some(dir) = dir {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        Err(e) => return Err(io(e)),
    }
    redb::Database::create(path).map_err(redb_failed)
}

/// Refuses the database at `path` when it holds a table that is not one of `own`: another adapter's
/// file (the queue's where the store's should be), which opening would change by adding its tables.
pub(crate) fn check_tables(db: &redb::Database, path: &Path, what: &str, own: &[&str]) -> Result<(), DiskError> {
    use redb::TableHandle;
    let failed = read_error(path);
    let read = db.begin_read().map_err(|e| failed(e.into()))?;
    let foreign: Vec<String> = read
        .list_tables()
        .map_err(|e| failed(e.into()))?
        .map(|t| t.name().to_owned())
        .filter(|name| !own.contains(&name.as_str()))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(DiskError::Corrupt {
        path: path.to_owned(),
        what: "the file".into(),
        reason: format!(
            "it holds tables {} that {what} never writes: it is another file's (swapped?), left as it is",
            foreign.join(", ")
        ),
    })
}

/// Runs `load`, which reads the file at `path`; a panic inside it (redb asserts on some damaged
/// files rather than returning an error) becomes a [`DiskError::Corrupt`] naming the file.
pub(crate) fn guard_load<T>(path: &Path, load: impl FnOnce() -> Result<T, DiskError>) -> Result<T, DiskError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("its reader gave up");
        Err(DiskError::Corrupt {
            path: path.to_owned(),
            what: "the file".into(),
            reason: format!("it is damaged ({reason}); restore it from a copy, or remove it to start afresh"),
        })
    })
}

/// A database that is opened again when a write fails. After an I/O error (a full disk) redb
/// refuses every later write ("Previous I/O error occurred. Please close and re-open the
/// database"), so without this one moment without space broke the adapter until the process
/// restarted, though the disk had room again.
pub(crate) struct Reopening {
    path: PathBuf,
    db: std::sync::Mutex<Option<redb::Database>>,
}

impl Reopening {
    pub(crate) fn new(path: &Path, db: redb::Database) -> Self {
        Self {
            path: path.to_owned(),
            db: std::sync::Mutex::new(Some(db)),
        }
    }

    /// Runs `write` in the database; if it fails, opens the database again (it recovers the last
    /// commit) and runs it once more. `write` is one transaction, so a failed one left nothing.
    pub(crate) fn write<T>(&self, write: impl Fn(&redb::Database) -> Result<T, Failure>) -> Result<T, Failure> {
        let mut db = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = match db.as_ref() {
            Some(open) => match write(open) {
                Ok(done) => return Ok(done),
                Err(e) => e,
            },
            None => Failure::from(redb::Error::DatabaseAlreadyOpen),
        };
        // The old handle holds the file's lock until it is dropped.
        *db = None;
        match redb::Database::create(&self.path) {
            Ok(reopened) => {
                tracing::info!(path = %self.path.display(), error = %first.0, "reopened after a failed write");
                write(db.insert(reopened))
            }
            Err(_) => Err(first),
        }
    }
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
