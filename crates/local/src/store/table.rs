//! Where the local store keeps its items: the seam for durable storage.
//!
//! [`LocalStore`](super::LocalStore) decides *whether* a write happens (conditions, TTL, tokens,
//! limits); a [`Table`] only keeps items, their sorted views and the idempotency tokens it was told
//! to remember, and applies a [`Batch`] atomically. [`MemoryTable`] keeps them in memory;
//! [`DiskTable`](super::disk::DiskTable) also writes each batch durably to disk before it applies
//! it, and the semantics above, tested by the contract suite, do not change.

use queuematch_core::ports::store::{Index, Key, Stored};
use queuematch_core::ports::PortError;
use queuematch_core::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// Where an item sits in one index: its sort key there, then its primary key to break ties (DynamoDB
/// keeps no order among equal sort keys; a total order makes cursors exact).
pub type Position = (String, Key);

/// One change of a committed batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Stored),
    Delete(Key),
}

/// A transaction that succeeded with an idempotency token, as long as DynamoDB would remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// What identifies the transaction's operations: a repeat must bring the same (see
    /// [`super::fingerprint`]).
    pub fingerprint: String,
    /// The token is forgotten from then on.
    pub until: Timestamp,
}

/// What one call of the store writes, all or nothing: item changes and the tokens to remember or
/// forget with them (a transaction and its token are one commit, so a crash cannot keep one of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub changes: Vec<Change>,
    pub remember: Option<(String, Remembered)>,
    pub forget: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.remember.is_none() && self.forget.is_empty()
    }
}

/// The storage under the store.
pub trait Table: Send + std::fmt::Debug {
    /// The item under `key`, expired or not.
    fn get(&self, key: &Key) -> Option<Stored>;

    /// Applies every change, in order, then remembers and forgets the tokens; or, when the storage
    /// fails, none of it, and says why as a [`PortError::Transient`].
    fn commit(&mut self, batch: Batch) -> Result<(), PortError>;

    /// The transaction remembered under `token`, even past its window (the caller judges that).
    fn remembered(&self, token: &str) -> Option<Remembered>;

    /// Tokens whose window has ended at `now`, so they can be forgotten.
    fn forgettable(&self, now: Timestamp) -> Vec<String>;

    /// Items of `partition` in `index` past `after`, in order (descending when asked), whose sort key
    /// starts with `prefix`, for as long as `take` says to go on.
    fn scan(
        &self,
        index: Index,
        partition: &str,
        prefix: &str,
        after: Option<&Position>,
        descending: bool,
        take: &mut dyn FnMut(&Position, &Stored) -> bool,
    );

    /// Keys whose TTL is at or before `now`, so they can be deleted.
    fn expired(&self, now: Timestamp) -> Vec<Key>;
}

/// The position of `stored` in `index`, if it is in it.
pub fn position(index: Index, stored: &Stored) -> Option<(String, Position)> {
    let item = &stored.item;
    let (partition, sort) = match index {
        Index::Table => (&item.key.pk, &item.key.sk),
        Index::Gsi1 => item.gsi1.as_ref().map(|g| (&g.pk, &g.sk))?,
        Index::Pool => item.pool.as_ref().map(|p| (&p.pk, &p.sk))?,
    };
    Some((partition.clone(), (sort.clone(), item.key.clone())))
}

const INDEXES: [Index; 3] = [Index::Table, Index::Gsi1, Index::Pool];

/// Items in a map, each index a sorted set of positions per partition, and TTLs in time order.
#[derive(Debug, Default)]
pub struct MemoryTable {
    items: HashMap<Key, Stored>,
    indexes: HashMap<(Index, String), BTreeSet<Position>>,
    expiries: BTreeSet<(Timestamp, Key)>,
    tokens: HashMap<String, Remembered>,
    /// The tokens by the end of their window, so forgetting them does not scan them all.
    token_windows: BTreeSet<(Timestamp, String)>,
}

impl MemoryTable {
    fn unlink(&mut self, stored: &Stored) {
        for index in INDEXES {
            if let Some((partition, pos)) = position(index, stored) {
                let slot = (index, partition);
                if let Some(set) = self.indexes.get_mut(&slot) {
                    set.remove(&pos);
                    if set.is_empty() {
                        self.indexes.remove(&slot);
                    }
                }
            }
        }
        if let Some(at) = stored.item.expires_at {
            self.expiries.remove(&(at, stored.item.key.clone()));
        }
    }

    fn link(&mut self, stored: &Stored) {
        for index in INDEXES {
            if let Some((partition, pos)) = position(index, stored) {
                self.indexes.entry((index, partition)).or_default().insert(pos);
            }
        }
        if let Some(at) = stored.item.expires_at {
            self.expiries.insert((at, stored.item.key.clone()));
        }
    }

    /// Applies `batch`, which cannot fail in memory.
    pub(super) fn apply(&mut self, batch: Batch) {
        for change in batch.changes {
            let key = match &change {
                Change::Put(stored) => stored.item.key.clone(),
                Change::Delete(key) => key.clone(),
            };
            if let Some(old) = self.items.remove(&key) {
                self.unlink(&old);
            }
            if let Change::Put(stored) = change {
                self.link(&stored);
                self.items.insert(key, stored);
            }
        }
        for token in batch.forget {
            if let Some(old) = self.tokens.remove(&token) {
                self.token_windows.remove(&(old.until, token));
            }
        }
        if let Some((token, remembered)) = batch.remember {
            if let Some(old) = self.tokens.remove(&token) {
                self.token_windows.remove(&(old.until, token.clone()));
            }
            self.token_windows.insert((remembered.until, token.clone()));
            self.tokens.insert(token, remembered);
        }
    }
}

impl Table for MemoryTable {
    fn get(&self, key: &Key) -> Option<Stored> {
        self.items.get(key).cloned()
    }

    fn commit(&mut self, batch: Batch) -> Result<(), PortError> {
        self.apply(batch);
        Ok(())
    }

    fn remembered(&self, token: &str) -> Option<Remembered> {
        self.tokens.get(token).cloned()
    }

    fn forgettable(&self, now: Timestamp) -> Vec<String> {
        self.token_windows
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, token)| token.clone())
            .collect()
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
        let Some(set) = self.indexes.get(&(index, partition.to_owned())) else {
            return;
        };
        let floor: Position = (prefix.to_owned(), Key::new("", ""));
        let range: Box<dyn Iterator<Item = &Position>> = match (after, descending) {
            (None, false) => Box::new(set.range(floor..)),
            (Some(after), false) => Box::new(set.range((Bound::Excluded(after), Bound::Unbounded))),
            (None, true) => Box::new(set.range(floor..).rev()),
            (Some(after), true) => Box::new(set.range((Bound::Included(&floor), Bound::Excluded(after))).rev()),
        };
        // Ascending, the range starts inside the prefix; descending, it starts after it, so skip to it.
        let in_prefix = range.skip_while(|pos| descending && !pos.0.starts_with(prefix));
        for pos in in_prefix.take_while(|pos| pos.0.starts_with(prefix)) {
            let Some(stored) = self.items.get(&pos.1) else { continue };
            if !take(pos, stored) {
                return;
            }
        }
    }

    fn expired(&self, now: Timestamp) -> Vec<Key> {
        self.expiries
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queuematch_core::ports::store::{IndexKey, Item};
    use serde_json::json;

    fn stored(pk: &str, pool_sort: Option<&str>, version: u64) -> Stored {
        let mut item = Item::new(Key::new(pk, "S"), json!({}));
        if let Some(sort) = pool_sort {
            item = item.with_pool(IndexKey::new("POOL", sort));
        }
        Stored { item, version }
    }

    fn apply(table: &mut MemoryTable, changes: Vec<Change>) {
        table.apply(Batch {
            changes,
            ..Batch::default()
        });
    }

    fn pool_scan(table: &MemoryTable, prefix: &str, descending: bool) -> Vec<String> {
        let mut seen = Vec::new();
        table.scan(Index::Pool, "POOL", prefix, None, descending, &mut |_, s| {
            seen.push(s.item.key.pk.clone());
            true
        });
        seen
    }

    #[test]
    fn a_replaced_item_leaves_its_old_index_positions() {
        let mut table = MemoryTable::default();
        apply(
            &mut table,
            vec![
                Change::Put(stored("A", Some("1"), 1)),
                Change::Put(stored("B", Some("2"), 1)),
            ],
        );
        apply(&mut table, vec![Change::Put(stored("A", None, 2))]);
        assert_eq!(pool_scan(&table, "", false), ["B"]);
        apply(&mut table, vec![Change::Delete(Key::new("B", "S"))]);
        assert!(pool_scan(&table, "", false).is_empty());
        assert!(
            table.indexes.keys().all(|(index, _)| *index == Index::Table),
            "empty partitions are dropped"
        );
    }

    #[test]
    fn a_prefix_scan_reads_only_the_prefix_both_ways() {
        let mut table = MemoryTable::default();
        let items = [("A", "a#1"), ("B", "b#1"), ("C", "b#2"), ("D", "c#1")];
        apply(
            &mut table,
            items
                .iter()
                .map(|(pk, sort)| Change::Put(stored(pk, Some(sort), 1)))
                .collect(),
        );
        assert_eq!(pool_scan(&table, "b#", false), ["B", "C"]);
        assert_eq!(pool_scan(&table, "b#", true), ["C", "B"]);
        assert_eq!(pool_scan(&table, "", true), ["D", "C", "B", "A"]);
    }

    #[test]
    fn expiries_are_listed_in_time_order_up_to_now() {
        let mut table = MemoryTable::default();
        let mut late = stored("LATE", None, 1);
        late.item.expires_at = Some(Timestamp(20));
        let mut early = stored("EARLY", None, 1);
        early.item.expires_at = Some(Timestamp(10));
        apply(&mut table, vec![Change::Put(late), Change::Put(early)]);
        assert_eq!(table.expired(Timestamp(15)), [Key::new("EARLY", "S")]);
        assert_eq!(table.expired(Timestamp(20)).len(), 2);
    }

    #[test]
    fn a_token_remembered_again_keeps_one_window() {
        let mut table = MemoryTable::default();
        let remembered = |until| Remembered {
            fingerprint: "f".into(),
            until: Timestamp(until),
        };
        for until in [10, 10, 30] {
            table.apply(Batch {
                remember: Some(("t".into(), remembered(until))),
                ..Batch::default()
            });
        }
        assert_eq!(table.forgettable(Timestamp(10)), Vec::<String>::new());
        assert_eq!(table.forgettable(Timestamp(30)), ["t"]);
        table.apply(Batch {
            forget: vec!["t".into()],
            ..Batch::default()
        });
        assert_eq!(table.remembered("t"), None);
        assert!(table.token_windows.is_empty());
    }
}
