//! [`DiskTable`]: the items, indexes and idempotency tokens of the local store, kept in a redb file.
//!
//! Each [`Batch`] is one redb write transaction, committed durably (fsynced) before the store's call
//! returns, so an acknowledged write survives a crash and a failed one leaves nothing behind. Reads
//! are served by a [`MemoryTable`] mirror that is loaded from the file at open and updated only after
//! each commit succeeds: the indexes and scans are then exactly those of the memory store, and the
//! file holds only what must survive (items and tokens; index positions are derived from the items).
//! The price is that the whole table lives in memory too, which the local stack's data easily fits.

use super::table::{Batch, Change, MemoryTable, Position, Remembered, Table};
use crate::disk::{self, DiskError};
use queuematch_core::ports::store::{Index, IndexKey, Item, Key, Stored};
use queuematch_core::ports::PortError;
use queuematch_core::Timestamp;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Items by `(pk, sk)`, as JSON [`ItemRecord`]s.
const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// Remembered idempotency tokens, as JSON [`TokenRecord`]s.
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// An item on disk, its key being the table's key.
#[derive(Debug, Serialize, Deserialize)]
struct ItemRecord {
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1: Option<IndexKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<IndexKey>,
    body: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenRecord {
    fingerprint: String,
    until: Timestamp,
}

/// The store's table in a redb file, mirrored in memory for reads.
pub struct DiskTable {
    path: PathBuf,
    db: disk::Reopening,
    mirror: MemoryTable,
}

impl std::fmt::Debug for DiskTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTable")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DiskTable {
    /// The table in the file at `path`, created if missing, with everything it holds loaded.
    pub fn open(path: &Path) -> Result<Self, DiskError> {
        let db = disk::open(path)?;
        disk::check_tables(&db, path, "the store", &["items", "tokens"])?;
        let failed = disk::read_error(path);
        let corrupt = |what: String, e: serde_json::Error| DiskError::Corrupt {
            path: path.to_owned(),
            what,
            reason: e.to_string(),
        };
        // Create the tables on first use, so that reads find them.
        let txn = db.begin_write().map_err(|e| failed(e.into()))?;
        txn.open_table(ITEMS).map_err(|e| failed(e.into()))?;
        txn.open_table(TOKENS).map_err(|e| failed(e.into()))?;
        txn.commit().map_err(|e| failed(e.into()))?;

        let mut mirror = MemoryTable::default();
        let read = db.begin_read().map_err(|e| failed(e.into()))?;
        let items = read.open_table(ITEMS).map_err(|e| failed(e.into()))?;
        let mut changes = Vec::new();
        for entry in items.iter().map_err(|e| failed(e.into()))? {
            let (key, value) = entry.map_err(|e| failed(e.into()))?;
            let (pk, sk) = key.value();
            let key = Key::new(pk, sk);
            let record: ItemRecord =
                serde_json::from_slice(value.value()).map_err(|e| corrupt(format!("item {key}"), e))?;
            changes.push(Change::Put(Stored {
                item: Item {
                    key,
                    expires_at: record.expires_at,
                    gsi1: record.gsi1,
                    pool: record.pool,
                    body: record.body,
                },
                version: record.version,
            }));
        }
        mirror.apply(Batch {
            changes,
            ..Batch::default()
        });
        let tokens = read.open_table(TOKENS).map_err(|e| failed(e.into()))?;
        for entry in tokens.iter().map_err(|e| failed(e.into()))? {
            let (token, value) = entry.map_err(|e| failed(e.into()))?;
            let token = token.value().to_owned();
            let record: TokenRecord =
                serde_json::from_slice(value.value()).map_err(|e| corrupt(format!("token {token}"), e))?;
            mirror.apply(Batch {
                remember: Some((
                    token,
                    Remembered {
                        fingerprint: record.fingerprint,
                        until: record.until,
                    },
                )),
                ..Batch::default()
            });
        }
        drop(tokens);
        drop(items);
        drop(read);
        Ok(Self {
            path: path.to_owned(),
            db: disk::Reopening::new(path, db),
            mirror,
        })
    }

    /// Writes `batch` in one durable transaction.
    fn write(&self, batch: &Batch) -> Result<(), disk::Failure> {
        self.db.write(|db| Self::write_in(db, batch))
    }

    fn write_in(db: &redb::Database, batch: &Batch) -> Result<(), disk::Failure> {
        let txn = db.begin_write()?;
        {
            let mut items = txn.open_table(ITEMS)?;
            for change in &batch.changes {
                match change {
                    Change::Put(stored) => {
                        let item = &stored.item;
                        let record = ItemRecord {
                            version: stored.version,
                            expires_at: item.expires_at,
                            gsi1: item.gsi1.clone(),
                            pool: item.pool.clone(),
                            body: item.body.clone(),
                        };
                        let bytes = disk::encode(&record)?;
                        items.insert((item.key.pk.as_str(), item.key.sk.as_str()), bytes.as_slice())?;
                    }
                    Change::Delete(key) => {
                        items.remove((key.pk.as_str(), key.sk.as_str()))?;
                    }
                }
            }
            let mut tokens = txn.open_table(TOKENS)?;
            for token in &batch.forget {
                tokens.remove(token.as_str())?;
            }
            if let Some((token, remembered)) = &batch.remember {
                let bytes = disk::encode(&TokenRecord {
                    fingerprint: remembered.fingerprint.clone(),
                    until: remembered.until,
                })?;
                tokens.insert(token.as_str(), bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Table for DiskTable {
    fn get(&self, key: &Key) -> Option<Stored> {
        self.mirror.get(key)
    }

    fn commit(&mut self, batch: Batch) -> Result<(), PortError> {
        self.write(&batch).map_err(|e| disk::write_failed("a store write", e))?;
        self.mirror.apply(batch);
        Ok(())
    }

    fn remembered(&self, token: &str) -> Option<Remembered> {
        self.mirror.remembered(token)
    }

    fn forgettable(&self, now: Timestamp) -> Vec<String> {
        self.mirror.forgettable(now)
    }

    fn scan(
        &self,
        index: Index,
        partition: &str,
        prefix: &str,
        after: Option<&Position>,
        descending: bool,
        take: &mut dyn FnMut(&Position, &Stored) -> bool,
    ) {
        self.mirror.scan(index, partition, prefix, after, descending, take);
    }

    fn expired(&self, now: Timestamp) -> Vec<Key> {
        self.mirror.expired(now)
    }
}
