//! The `Store` port: DynamoDB's single table of DESIGN.md, item by item.
//!
//! The port is deliberately low-level and maps 1:1 onto DynamoDB (GetItem, a PutItem/UpdateItem with
//! a condition, DeleteItem, TransactWriteItems, Query on the table, GSI1 and the pool index), so the
//! AWS adapter is a translation and not a second implementation of the semantics. What an item
//! *means* lives in [`items`]: pure functions from domain types to items and back.

pub mod items;

use crate::ports::error::PortError;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// DynamoDB's limit on the operations of one TransactWriteItems.
pub const MAX_TRANSACTION_OPERATIONS: usize = 100;
/// DynamoDB's limit on one item, which we apply to the serialised body.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on the total size of one transaction.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB's limit on a ClientRequestToken.
pub const MAX_TOKEN_CHARS: usize = 36;
/// The most items one query page returns (DynamoDB stops at 1 MB; this keeps pages predictable).
pub const MAX_PAGE_ITEMS: usize = 1_000;

/// An item's primary key: `pk` and `sk`, both non-empty strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.pk, self.sk)
    }
}

/// The key of an item in a secondary index: its partition and its sort key there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
}

impl IndexKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// What a caller writes. The store owns the version, so it is not here: see [`Stored`].
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    /// DynamoDB's TTL attribute: from this instant on the item is invisible to every read and absent
    /// for every condition, although DynamoDB deletes it only later.
    pub expires_at: Option<Timestamp>,
    /// `gsi1pk`/`gsi1sk`: operator listings by status and time.
    pub gsi1: Option<IndexKey>,
    /// `poolpk`/`poolsk`: the sparse pool index. Present only on tickets that are SEARCHING.
    pub pool: Option<IndexKey>,
    /// Everything else, as the serde JSON of a domain type.
    pub body: serde_json::Value,
}

impl Item {
    pub fn new(key: Key, body: serde_json::Value) -> Self {
        Self {
            key,
            expires_at: None,
            gsi1: None,
            pool: None,
            body,
        }
    }

    pub fn expiring_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    pub fn with_gsi1(mut self, key: IndexKey) -> Self {
        self.gsi1 = Some(key);
        self
    }

    pub fn with_pool(mut self, key: IndexKey) -> Self {
        self.pool = Some(key);
        self
    }

    /// Whether the TTL has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// An item as the store holds it, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub item: Item,
    /// 1 when the item was created, one more on every write since. A delete followed by a put starts
    /// again at 1, so a version condition never holds across a delete: the key was reused.
    pub version: u64,
}

/// The condition a write holds to. An expired item counts as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// No condition.
    Any,
    /// The item does not exist (DynamoDB `attribute_not_exists(pk)`).
    Absent,
    /// The item exists, at any version.
    Exists,
    /// The item exists at exactly this version: optimistic concurrency.
    Version(u64),
}

impl Condition {
    /// Whether the condition holds on `current`, the live (unexpired) item if there is one.
    pub fn holds(self, current: Option<u64>) -> bool {
        match (self, current) {
            (Condition::Any, _) => true,
            (Condition::Absent, current) => current.is_none(),
            (Condition::Exists, current) => current.is_some(),
            (Condition::Version(want), Some(have)) => want == have,
            (Condition::Version(_), None) => false,
        }
    }
}

/// One operation of a write: alone, or as one of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Creates or replaces the whole item (DynamoDB Put, or an Update that sets every attribute).
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Writes nothing; the transaction fails unless the condition holds (DynamoDB ConditionCheck).
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    pub fn put(item: Item, condition: Condition) -> Self {
        Write::Put { item, condition }
    }

    pub fn delete(key: Key, condition: Condition) -> Self {
        Write::Delete { key, condition }
    }

    pub fn check(key: Key, condition: Condition) -> Self {
        Write::Check { key, condition }
    }

    pub fn key(&self) -> &Key {
        match self {
            Write::Put { item, .. } => &item.key,
            Write::Delete { key, .. } | Write::Check { key, .. } => key,
        }
    }

    pub fn condition(&self) -> Condition {
        match self {
            Write::Put { condition, .. } | Write::Delete { condition, .. } | Write::Check { condition, .. } => {
                *condition
            }
        }
    }
}

/// A ClientRequestToken: a transaction repeated with the same token and the same operations within
/// [`IdempotencyToken::WINDOW_MS`] succeeds without writing again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyToken(String);

impl IdempotencyToken {
    /// DynamoDB remembers a token for ten minutes.
    pub const WINDOW_MS: u64 = 10 * 60 * 1_000;

    /// A token of 1 to 36 characters, as DynamoDB takes them.
    pub fn new(token: impl Into<String>) -> Result<Self, PortError> {
        let token = token.into();
        let chars = token.chars().count();
        if chars == 0 || chars > MAX_TOKEN_CHARS {
            return Err(PortError::invalid(format!(
                "an idempotency token has 1 to {MAX_TOKEN_CHARS} characters, not {chars}"
            )));
        }
        Ok(Self(token))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which sorted view a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    /// The table itself: items of one `pk`, in `sk` order. Strongly consistent.
    Table,
    /// GSI1: items of one `gsi1pk`, in `gsi1sk` order. Eventually consistent on AWS.
    Gsi1,
    /// The sparse pool index: items of one `poolpk`, in `poolsk` order. Eventually consistent on AWS.
    Pool,
}

/// Where a page ends, to start the next one after it. Opaque: only the adapter that made it reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor(pub String);

/// A query: one partition of one index, optionally narrowed to sort keys starting with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    /// DynamoDB `begins_with` on the sort key (e.g. `EVENT#` for a session's timeline).
    pub sort_prefix: Option<String>,
    /// Only sort keys below this one (DynamoDB `sk < :before`): where a listing newest first goes on
    /// from, read from there rather than from the top. DynamoDB takes one sort-key condition, so
    /// not with `sort_prefix`.
    pub sort_before: Option<String>,
    /// Newest (highest sort key) first when true: DynamoDB `ScanIndexForward = false`.
    pub descending: bool,
    /// 1 to [`MAX_PAGE_ITEMS`].
    pub limit: usize,
    /// The `next` of the previous page; `None` for the first.
    pub after: Option<Cursor>,
}

impl Query {
    pub fn new(index: Index, partition: impl Into<String>, limit: usize) -> Self {
        Self {
            index,
            partition: partition.into(),
            sort_prefix: None,
            sort_before: None,
            descending: false,
            limit,
            after: None,
        }
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sort_prefix = Some(prefix.into());
        self
    }

    /// Only items whose sort key is below `sort_key`.
    pub fn before(mut self, sort_key: impl Into<String>) -> Self {
        self.sort_before = Some(sort_key.into());
        self
    }

    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.after = cursor;
        self
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Stored>,
    /// Where to go on; `None` only at the end. A page may hold fewer than `limit` items, even none,
    /// while more follow (DynamoDB filters expired items after reading a page), so callers loop until
    /// `next` is `None`.
    pub next: Option<Cursor>,
}

/// The single table.
///
/// Guarantees:
/// - **Consistency.** `get` and [`Index::Table`] queries are strongly consistent. GSI1 and pool
///   queries are eventually consistent on AWS (an item written a moment ago may be missing, or seen
///   at an older version); the local store happens to be strongly consistent, but callers must not
///   rely on it. Anything read from an index is re-checked by a conditional write before it counts.
/// - **Versions.** Every write of an item bumps its version by one; creation gives 1. A
///   [`Condition::Version`] write is therefore a compare-and-swap.
/// - **TTL.** An item whose `expires_at` has passed is invisible to every read and absent for every
///   condition, before and after it is physically deleted.
/// - **Transactions** are all-or-nothing, hold at most [`MAX_TRANSACTION_OPERATIONS`] operations on
///   distinct keys, and with an [`IdempotencyToken`] are safe to retry: a repeat with the same token and
///   operations succeeds without writing, a reuse of the token for other operations is `Invalid`.
/// - **Pagination.** Queries return items in sort-key order (then by primary key), in pages; the
///   cursor of a page resumes exactly after its last item, even if items were written meanwhile.
/// - **Errors.** A condition that does not hold is [`PortError::ConditionFailed`]; a broken limit or
///   malformed key is [`PortError::Invalid`]; nothing is written by a failed call.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The live item under `key`, if any.
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError>;

    /// Creates or replaces `item` if `condition` holds, returning its new version.
    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError>;

    /// Deletes the item if `condition` holds. Deleting an absent item under [`Condition::Any`] is fine.
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError>;

    /// Applies every operation or none.
    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError>;

    /// One page of `query`.
    async fn query(&self, query: Query) -> Result<Page, PortError>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError> {
        (**self).get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError> {
        (**self).put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError> {
        (**self).delete(key, condition).await
    }
    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError> {
        (**self).transact_write(writes, token).await
    }
    async fn query(&self, query: Query) -> Result<Page, PortError> {
        (**self).query(query).await
    }
}

/// Checks what every adapter must refuse before it writes anything, so that the local store and the
/// AWS one refuse the same requests with the same errors.
pub fn validate_item(item: &Item) -> Result<(), PortError> {
    validate_key(&item.key)?;
    for (name, index) in [("gsi1", &item.gsi1), ("pool", &item.pool)] {
        if let Some(index) = index {
            if index.pk.is_empty() || index.sk.is_empty() {
                return Err(PortError::invalid(format!(
                    "{name} key of {} has an empty part",
                    item.key
                )));
            }
        }
    }
    let bytes = body_bytes(item);
    if bytes > MAX_ITEM_BYTES {
        return Err(PortError::invalid(format!(
            "item {} is {bytes} bytes; the limit is {MAX_ITEM_BYTES}",
            item.key
        )));
    }
    Ok(())
}

/// Checks a key: DynamoDB refuses empty key attributes.
pub fn validate_key(key: &Key) -> Result<(), PortError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(PortError::invalid(format!("key {key} has an empty part")));
    }
    Ok(())
}

/// Checks a transaction's shape: 1 to 100 operations on distinct, valid keys, at most 4 MB.
pub fn validate_transaction(writes: &[Write]) -> Result<(), PortError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_OPERATIONS {
        return Err(PortError::invalid(format!(
            "a transaction has 1 to {MAX_TRANSACTION_OPERATIONS} operations, not {}",
            writes.len()
        )));
    }
    let mut keys = std::collections::BTreeSet::new();
    let mut bytes = 0usize;
    for write in writes {
        match write {
            Write::Put { item, .. } => {
                validate_item(item)?;
                bytes = bytes.saturating_add(body_bytes(item));
            }
            Write::Delete { key, .. } | Write::Check { key, .. } => validate_key(key)?,
        }
        if !keys.insert(write.key()) {
            return Err(PortError::invalid(format!("a transaction names {} twice", write.key())));
        }
    }
    if bytes > MAX_TRANSACTION_BYTES {
        return Err(PortError::invalid(format!(
            "a transaction of {bytes} bytes; the limit is {MAX_TRANSACTION_BYTES}"
        )));
    }
    Ok(())
}

/// Checks a query's limit and partition.
pub fn validate_query(query: &Query) -> Result<(), PortError> {
    if query.partition.is_empty() {
        return Err(PortError::invalid("a query names an empty partition"));
    }
    if query.limit == 0 || query.limit > MAX_PAGE_ITEMS {
        return Err(PortError::invalid(format!(
            "a query page holds 1 to {MAX_PAGE_ITEMS} items, not {}",
            query.limit
        )));
    }
    if query.sort_prefix.is_some() && query.sort_before.is_some() {
        return Err(PortError::invalid(
            "a query takes one sort-key condition: a prefix or an upper bound, not both",
        ));
    }
    Ok(())
}

/// The size of an item as the limits count it: keys plus the serialised body, roughly as DynamoDB does.
fn body_bytes(item: &Item) -> usize {
    let keys = [&item.key.pk, &item.key.sk].iter().map(|s| s.len()).sum::<usize>();
    let body = serde_json::to_vec(&item.body).map(|v| v.len()).unwrap_or(usize::MAX);
    keys.saturating_add(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(pk: &str) -> Write {
        Write::put(Item::new(Key::new(pk, "S"), json!({})), Condition::Any)
    }

    #[test]
    fn conditions_hold_as_dynamodb_evaluates_them() {
        assert!(Condition::Any.holds(None) && Condition::Any.holds(Some(3)));
        assert!(Condition::Absent.holds(None) && !Condition::Absent.holds(Some(1)));
        assert!(!Condition::Exists.holds(None) && Condition::Exists.holds(Some(1)));
        assert!(Condition::Version(2).holds(Some(2)));
        assert!(!Condition::Version(2).holds(Some(3)) && !Condition::Version(2).holds(None));
    }

    #[test]
    fn transactions_of_0_or_101_operations_are_invalid() {
        assert!(matches!(validate_transaction(&[]), Err(PortError::Invalid(_))));
        let writes: Vec<_> = (0..101).map(|i| put(&format!("K#{i}"))).collect();
        assert!(matches!(validate_transaction(&writes), Err(PortError::Invalid(_))));
        assert!(validate_transaction(&writes[..100]).is_ok());
    }

    #[test]
    fn a_transaction_naming_a_key_twice_is_invalid() {
        let err = validate_transaction(&[put("A"), Write::check(Key::new("A", "S"), Condition::Exists)]);
        assert!(matches!(err, Err(PortError::Invalid(m)) if m.contains("A / S twice")));
    }

    #[test]
    fn empty_keys_and_oversized_items_are_invalid() {
        assert!(validate_item(&Item::new(Key::new("", "S"), json!({}))).is_err());
        assert!(validate_item(&Item::new(Key::new("P", "S"), json!({})).with_pool(IndexKey::new("P", ""))).is_err());
        let big = Item::new(Key::new("P", "S"), json!({ "blob": "x".repeat(MAX_ITEM_BYTES) }));
        assert!(matches!(validate_item(&big), Err(PortError::Invalid(m)) if m.contains("limit")));
    }

    #[test]
    fn tokens_have_1_to_36_characters() {
        assert!(IdempotencyToken::new("").is_err());
        assert!(IdempotencyToken::new("x".repeat(37)).is_err());
        assert_eq!(
            IdempotencyToken::new("match-1")
                .map(|t| t.as_str().to_owned())
                .ok()
                .as_deref(),
            Some("match-1")
        );
    }

    #[test]
    fn query_limits_are_checked() {
        assert!(validate_query(&Query::new(Index::Pool, "POOL#q#p#0", 0)).is_err());
        assert!(validate_query(&Query::new(Index::Pool, "", 10)).is_err());
        assert!(validate_query(&Query::new(Index::Pool, "POOL#q#p#0", MAX_PAGE_ITEMS + 1)).is_err());
        assert!(validate_query(&Query::new(Index::Pool, "POOL#q#p#0", MAX_PAGE_ITEMS)).is_ok());
    }

    #[test]
    fn an_item_expires_at_its_ttl_instant() {
        let item = Item::new(Key::new("P", "S"), json!(null)).expiring_at(Timestamp(10));
        assert!(!item.is_expired(Timestamp(9)));
        assert!(item.is_expired(Timestamp(10)));
    }
}
