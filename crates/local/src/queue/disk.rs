//! [`DiskJournal`]: the queue's messages, dead letters and sequence, kept in a redb file.
//!
//! The journal holds the whole state of the queue, not a log of it: each [`Change`] overwrites or
//! removes one record, in one redb transaction per call, fsynced before the queue's call returns
//! unless its [`Urgency`] is lazy.
//! Opening the file reads every record back, visibility deadlines (absolute times on the queue's
//! clock) and receive counts included, so a message in flight when the process died is receivable
//! again once its deadline passes, and still goes to the dead letters when its receives run out.

use super::{Change, Journal, Message, State, Urgency};
use crate::disk::{self, DiskError};
use queuematch_core::ports::PortError;
use redb::{ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// Messages by sequence number, as JSON [`Message`]s.
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Dead letters by their sequence number in the queue.
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
/// `next_seq`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";

/// A queue's state in a redb file.
pub struct DiskJournal {
    path: PathBuf,
    db: disk::Reopening,
}

impl std::fmt::Debug for DiskJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DiskJournal {
    /// The journal in the file at `path`, created if missing, and the state it holds.
    pub fn open(path: &Path) -> Result<(Self, State), DiskError> {
        let db = disk::open(path)?;
        disk::check_tables(&db, path, "the tickets queue", &["messages", "dead", "meta"])?;
        let failed = disk::read_error(path);
        let txn = db.begin_write().map_err(|e| failed(e.into()))?;
        txn.open_table(MESSAGES).map_err(|e| failed(e.into()))?;
        txn.open_table(DEAD).map_err(|e| failed(e.into()))?;
        txn.open_table(META).map_err(|e| failed(e.into()))?;
        txn.commit().map_err(|e| failed(e.into()))?;

        let read = db.begin_read().map_err(|e| failed(e.into()))?;
        let mut state = State::default();
        for (table, into) in [(MESSAGES, &mut state.messages), (DEAD, &mut state.dead)] {
            let table = read.open_table(table).map_err(|e| failed(e.into()))?;
            for entry in table.iter().map_err(|e| failed(e.into()))? {
                let (seq, value) = entry.map_err(|e| failed(e.into()))?;
                let seq = seq.value();
                let message: Message = serde_json::from_slice(value.value()).map_err(|e| DiskError::Corrupt {
                    path: path.to_owned(),
                    what: format!("message {seq}"),
                    reason: e.to_string(),
                })?;
                into.insert(seq, message);
            }
        }
        let meta = read.open_table(META).map_err(|e| failed(e.into()))?;
        let stored_next = meta
            .get(NEXT_SEQ)
            .map_err(|e| failed(e.into()))?
            .map(|v| v.value())
            .unwrap_or(0);
        // Never below a sequence in use, even if the file was written by hand.
        let in_use = state
            .messages
            .keys()
            .chain(state.dead.keys())
            .max()
            .map_or(0, |s| s + 1);
        state.next_seq = stored_next.max(in_use);
        drop(meta);
        drop(read);
        Ok((
            Self {
                path: path.to_owned(),
                db: disk::Reopening::new(path, db),
            },
            state,
        ))
    }

    fn write(&self, changes: &[Change<'_>], urgency: Urgency) -> Result<(), disk::Failure> {
        self.db.write(|db| Self::write_in(db, changes, urgency))
    }

    fn write_in(db: &redb::Database, changes: &[Change<'_>], urgency: Urgency) -> Result<(), disk::Failure> {
        let mut txn = db.begin_write()?;
        // redb keeps commits in order: an eventual one is made durable by the next immediate one,
        // and a crash before that falls back to a consistent earlier state.
        txn.set_durability(match urgency {
            Urgency::Durable => redb::Durability::Immediate,
            Urgency::Lazy => redb::Durability::Eventual,
        });
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut dead = txn.open_table(DEAD)?;
            let mut meta = txn.open_table(META)?;
            for change in changes {
                match *change {
                    Change::Put(seq, m) => {
                        messages.insert(seq, disk::encode(m)?.as_slice())?;
                    }
                    Change::Remove(seq) => {
                        messages.remove(seq)?;
                    }
                    Change::PutDead(seq, m) => {
                        dead.insert(seq, disk::encode(m)?.as_slice())?;
                    }
                    Change::RemoveDead(seq) => {
                        dead.remove(seq)?;
                    }
                    Change::NextSeq(next) => {
                        meta.insert(NEXT_SEQ, next)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Journal for DiskJournal {
    fn record(&self, changes: &[Change<'_>], urgency: Urgency) -> Result<(), PortError> {
        self.write(changes, urgency)
            .map_err(|e| disk::write_failed("a queue write", e))
    }
}
