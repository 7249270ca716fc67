//! The local `Store`: DynamoDB's single-table semantics on one machine.
//!
//! [`LocalStore`] holds the rules (conditions, versions, TTL, transactions, idempotency tokens,
//! pagination); the items live in a [`Table`], in memory ([`MemoryStore`], the default) or on disk
//! ([`DiskStore`], `queuematch dev --data-dir`). One mutex serialises every operation, which makes
//! each call, transactions included, trivially atomic and isolated; the local stack's load is far
//! below what one lock can serve.

pub mod disk;
pub mod table;

use crate::lock;
use queuematch_core::ports::store::{
    self, Condition, Cursor, IdempotencyToken, Index, Item, Key, Page, Query, Store, Stored, Write,
};
use queuematch_core::ports::{Clock, PortError};
use queuematch_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};
use table::{Batch, Change, MemoryTable, Position, Remembered, Table};

pub use disk::DiskTable;

/// The single table, its items in a `T`.
pub struct LocalStore<T: Table = MemoryTable> {
    /// TTLs and token windows are judged on this clock: virtual in tests.
    clock: Arc<dyn Clock>,
    state: Mutex<State<T>>,
}

/// The single table in memory: what `queuematch dev` runs on by default, and the fake of tests.
pub type MemoryStore = LocalStore<MemoryTable>;

/// The single table on disk: every write is durable before it returns, and a reopened store holds
/// what the last one wrote, tokens included.
pub type DiskStore = LocalStore<DiskTable>;

impl<T: Table> std::fmt::Debug for LocalStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State<T> {
    table: T,
}

impl MemoryStore {
    /// An empty store in memory.
    pub fn new(clock: impl Clock + 'static) -> Self {
        Self::with_table(clock, MemoryTable::default())
    }
}

impl DiskStore {
    /// The store kept in the file at `path`, created if missing.
    pub fn open(clock: impl Clock + 'static, path: &Path) -> Result<Self, crate::disk::DiskError> {
        let table = crate::disk::guard_load(path, || DiskTable::open(path))?;
        Ok(Self::with_table(clock, table))
    }
}

impl<T: Table> LocalStore<T> {
    /// A store over `table`.
    pub fn with_table(clock: impl Clock + 'static, table: T) -> Self {
        Self {
            clock: Arc::new(clock),
            state: Mutex::new(State { table }),
        }
    }
}

/// What identifies the operations of a transaction, to tell a repeat under the same token from a
/// reuse: the SHA-256 of their JSON. Kept instead of the operations, so a token costs the same
/// whatever the size of its transaction, and reads back from disk exactly.
pub fn fingerprint(writes: &[Write]) -> String {
    let records: Vec<WriteRecord<'_>> = writes.iter().map(WriteRecord::from).collect();
    let json = serde_json::to_vec(&records).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A write as its fingerprint spells it.
#[derive(Serialize)]
enum WriteRecord<'a> {
    Put {
        key: &'a Key,
        expires_at: Option<Timestamp>,
        gsi1: Option<&'a store::IndexKey>,
        pool: Option<&'a store::IndexKey>,
        body: &'a serde_json::Value,
        condition: ConditionRecord,
    },
    Delete {
        key: &'a Key,
        condition: ConditionRecord,
    },
    Check {
        key: &'a Key,
        condition: ConditionRecord,
    },
}

#[derive(Serialize)]
enum ConditionRecord {
    Any,
    Absent,
    Exists,
    Version(u64),
}

impl From<Condition> for ConditionRecord {
    fn from(condition: Condition) -> Self {
        match condition {
            Condition::Any => ConditionRecord::Any,
            Condition::Absent => ConditionRecord::Absent,
            Condition::Exists => ConditionRecord::Exists,
            Condition::Version(v) => ConditionRecord::Version(v),
        }
    }
}

impl<'a> From<&'a Write> for WriteRecord<'a> {
    fn from(write: &'a Write) -> Self {
        match write {
            Write::Put { item, condition } => WriteRecord::Put {
                key: &item.key,
                expires_at: item.expires_at,
                gsi1: item.gsi1.as_ref(),
                pool: item.pool.as_ref(),
                body: &item.body,
                condition: (*condition).into(),
            },
            Write::Delete { key, condition } => WriteRecord::Delete {
                key,
                condition: (*condition).into(),
            },
            Write::Check { key, condition } => WriteRecord::Check {
                key,
                condition: (*condition).into(),
            },
        }
    }
}

impl<T: Table> State<T> {
    /// The item under `key` unless its TTL has passed.
    fn live(&self, key: &Key, now: Timestamp) -> Option<Stored> {
        self.table.get(key).filter(|s| !s.item.is_expired(now))
    }

    /// A batch that deletes what expired, as DynamoDB's TTL sweeper does (later than the expiry;
    /// reads never see the difference), and forgets tokens past their window. Each write starts its
    /// batch with it, so the purge costs no commit of its own.
    fn purge(&self, now: Timestamp) -> Batch {
        Batch {
            changes: self.table.expired(now).into_iter().map(Change::Delete).collect(),
            remember: None,
            forget: self.table.forgettable(now),
        }
    }

    /// Commits `batch` unless it is empty.
    fn commit(&mut self, batch: Batch) -> Result<(), PortError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.table.commit(batch)
    }

    fn check(&self, key: &Key, condition: Condition, now: Timestamp) -> Result<Option<Stored>, ()> {
        let current = self.live(key, now);
        if condition.holds(current.as_ref().map(|s| s.version)) {
            Ok(current)
        } else {
            Err(())
        }
    }
}

fn next_version(current: Option<&Stored>) -> u64 {
    current.map_or(1, |s| s.version.saturating_add(1))
}

/// What a local cursor holds: the query it belongs to and the position of the last item returned.
#[derive(Debug, Serialize, Deserialize)]
struct LocalCursor {
    index: String,
    partition: String,
    sort: String,
    pk: String,
    sk: String,
}

fn index_name(index: Index) -> &'static str {
    match index {
        Index::Table => "table",
        Index::Gsi1 => "gsi1",
        Index::Pool => "pool",
    }
}

fn encode_cursor(query: &Query, pos: &Position) -> Result<Cursor, PortError> {
    let cursor = LocalCursor {
        index: index_name(query.index).to_owned(),
        partition: query.partition.clone(),
        sort: pos.0.clone(),
        pk: pos.1.pk.clone(),
        sk: pos.1.sk.clone(),
    };
    serde_json::to_string(&cursor)
        .map(Cursor)
        .map_err(|e| PortError::transient(format!("cursor: {e}")))
}

/// The position a cursor resumes after; `Invalid` for a cursor of another query or none at all, as
/// DynamoDB refuses an ExclusiveStartKey that does not fit the query.
fn decode_cursor(query: &Query, cursor: &Cursor) -> Result<Position, PortError> {
    let c: LocalCursor =
        serde_json::from_str(&cursor.0).map_err(|_| PortError::invalid("the cursor was not made by this store"))?;
    if c.index != index_name(query.index) || c.partition != query.partition {
        return Err(PortError::invalid("the cursor belongs to another query"));
    }
    Ok((c.sort, Key::new(c.pk, c.sk)))
}

#[async_trait::async_trait]
impl<T: Table> Store for LocalStore<T> {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError> {
        store::validate_key(key)?;
        let now = self.clock.now();
        Ok(lock(&self.state).live(key, now))
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError> {
        store::validate_item(&item)?;
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let current = state
            .check(&item.key, condition, now)
            .map_err(|()| PortError::ConditionFailed {
                key: item.key.clone(),
                operation: None,
            })?;
        let version = next_version(current.as_ref());
        let mut batch = state.purge(now);
        batch.changes.push(Change::Put(Stored { item, version }));
        state.commit(batch)?;
        Ok(version)
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError> {
        store::validate_key(key)?;
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let current = state
            .check(key, condition, now)
            .map_err(|()| PortError::ConditionFailed {
                key: key.clone(),
                operation: None,
            })?;
        let mut batch = state.purge(now);
        if current.is_some() {
            batch.changes.push(Change::Delete(key.clone()));
        }
        state.commit(batch)
    }

    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError> {
        store::validate_transaction(&writes)?;
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let fingerprint = token.as_ref().map(|_| fingerprint(&writes));
        let remembered = token
            .as_ref()
            .and_then(|t| state.table.remembered(t.as_str()))
            .filter(|r| r.until > now);
        if let Some(remembered) = remembered {
            return if Some(&remembered.fingerprint) == fingerprint.as_ref() {
                Ok(())
            } else {
                Err(PortError::invalid(
                    "the idempotency token was used for another transaction",
                ))
            };
        }
        // Every condition is judged on the state before the transaction, then every change applied.
        let mut changes = Vec::with_capacity(writes.len());
        for (i, write) in writes.iter().enumerate() {
            let current =
                state
                    .check(write.key(), write.condition(), now)
                    .map_err(|()| PortError::ConditionFailed {
                        key: write.key().clone(),
                        operation: Some(i),
                    })?;
            match write {
                Write::Put { item, .. } => changes.push(Change::Put(Stored {
                    item: item.clone(),
                    version: next_version(current.as_ref()),
                })),
                Write::Delete { key, .. } if current.is_some() => changes.push(Change::Delete(key.clone())),
                Write::Delete { .. } | Write::Check { .. } => {}
            }
        }
        let mut batch = state.purge(now);
        // Expired items are deleted first, so a put on a key that just expired lands after them.
        batch.changes.extend(changes);
        if let (Some(token), Some(fingerprint)) = (token, fingerprint) {
            let until = now.plus(std::time::Duration::from_millis(IdempotencyToken::WINDOW_MS));
            let token = token.as_str().to_owned();
            batch.forget.retain(|t| *t != token);
            batch.remember = Some((token, Remembered { fingerprint, until }));
        }
        state.commit(batch)
    }

    async fn query(&self, query: Query) -> Result<Page, PortError> {
        store::validate_query(&query)?;
        let mut after = query.after.as_ref().map(|c| decode_cursor(&query, c)).transpose()?;
        let prefix = query.sort_prefix.as_deref().unwrap_or("");
        let before = query.sort_before.as_deref();
        if let (None, Some(before), true) = (&after, before, query.descending) {
            // Newest first, a page below `before` starts just under it: every position of that
            // sort key is above (sort, the least key).
            after = Some((before.to_owned(), Key::new("", "")));
        }
        let now = self.clock.now();
        let state = lock(&self.state);
        // One item beyond the page tells whether another page follows, so `next` is `None` exactly
        // at the end.
        let mut found: Vec<(Position, Stored)> = Vec::with_capacity(query.limit + 1);
        state.table.scan(
            query.index,
            &query.partition,
            prefix,
            after.as_ref(),
            query.descending,
            &mut |pos, s| {
                if before.is_some_and(|before| pos.0.as_str() >= before) {
                    // Oldest first, the rest are at or above the bound too.
                    return false;
                }
                if !s.item.is_expired(now) {
                    found.push((pos.clone(), s.clone()));
                }
                found.len() <= query.limit
            },
        );
        let more = found.len() > query.limit;
        found.truncate(query.limit);
        let next = match (more, found.last()) {
            (true, Some((pos, _))) => Some(encode_cursor(&query, pos)?),
            _ => None,
        };
        Ok(Page {
            items: found.into_iter().map(|(_, s)| s).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn expired_items_are_deleted_by_the_next_write() {
        // GIVEN an item that expires WHEN time passes and anything is written THEN it is gone for good.
        let clock = ManualClock::default();
        let store = MemoryStore::new(clock.clone());
        let item =
            Item::new(Key::new("NONCE#n", "NONCE"), json!({})).expiring_at(clock.now().plus(Duration::from_secs(60)));
        store.put(item, Condition::Absent).await.unwrap();
        clock.advance(Duration::from_secs(61));
        store
            .put(Item::new(Key::new("OTHER", "S"), json!({})), Condition::Any)
            .await
            .unwrap();
        let state = lock(&store.state);
        assert_eq!(state.table.get(&Key::new("NONCE#n", "NONCE")), None);
    }

    #[tokio::test]
    async fn a_token_is_forgotten_after_ten_minutes() {
        let clock = ManualClock::default();
        let store = MemoryStore::new(clock.clone());
        let token = IdempotencyToken::new("t").unwrap();
        let write = || vec![Write::put(Item::new(Key::new("A", "S"), json!({})), Condition::Absent)];
        store.transact_write(write(), Some(token.clone())).await.unwrap();
        clock.advance(Duration::from_millis(IdempotencyToken::WINDOW_MS));
        let replay = store.transact_write(write(), Some(token)).await;
        assert!(
            matches!(replay, Err(PortError::ConditionFailed { operation: Some(0), .. })),
            "{replay:?}"
        );
    }

    /// A store whose pool `POOL#a` holds `n` items.
    async fn pool_of(n: usize) -> MemoryStore {
        let store = MemoryStore::new(ManualClock::default());
        for i in 0..n {
            let item = Item::new(Key::new(format!("T#{i}"), "S"), json!({}))
                .with_pool(store::IndexKey::new("POOL#a", i.to_string()));
            if let Err(e) = store.put(item, Condition::Any).await {
                panic!("seeding the pool: {e}");
            }
        }
        store
    }

    #[tokio::test]
    async fn a_cursor_of_another_partition_is_refused() {
        let store = pool_of(3).await;
        let page = store.query(Query::new(Index::Pool, "POOL#a", 1)).await.unwrap();
        let other = Query::new(Index::Pool, "POOL#b", 1).after(page.next);
        assert!(matches!(store.query(other).await, Err(PortError::Invalid(_))));
    }

    #[tokio::test]
    async fn the_last_page_has_no_cursor_even_when_full() {
        let store = pool_of(4).await;
        let first = store.query(Query::new(Index::Pool, "POOL#a", 2)).await.unwrap();
        let second = store
            .query(Query::new(Index::Pool, "POOL#a", 2).after(first.next))
            .await
            .unwrap();
        assert_eq!(second.items.len(), 2);
        assert_eq!(second.next, None);
    }
}
