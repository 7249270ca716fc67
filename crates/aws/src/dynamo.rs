//! The `Store` port on DynamoDB: the single table of DESIGN.md.
//!
//! **Item layout.** Every item has `pk`, `sk`, `version` (N) and `body` (M, the domain JSON, mapped
//! by `serde_dynamo`), and when the port item has them: `gsi1pk`/`gsi1sk` (index [`GSI1`]),
//! `poolpk`/`poolsk` (the sparse pool index [`GSI2`]), `expiresAt` (N, epoch *seconds*: DynamoDB's
//! TTL attribute) and `expiresAtMs` (N, the exact expiry the port speaks, in milliseconds). The body
//! is one attribute rather than flattened so that no domain field can collide with a key attribute.
//!
//! **TTL.** DynamoDB deletes expired items lazily (within days), so the adapter judges expiry itself
//! on its clock: reads drop expired items, and every condition treats an expired item as absent
//! (`attribute_not_exists(pk) OR expiresAtMs <= :now`). `expiresAt` is rounded up to the second, so
//! DynamoDB never deletes an item before the port considers it expired.
//!
//! **Versions.** A put under `Absent` writes version 1 if the key is absent or expired; under
//! `Version(v)` it writes `v + 1` if the item is live at `v`. `Any` and `Exists` need the current
//! version: the adapter reads it (strongly consistent) and writes conditional on that exact state,
//! rereading and trying again if another writer got in between. So every write is one
//! compare-and-swap and versions stay exact, including "restart at 1" after a delete or expiry.
//!
//! **Transactions** are one TransactWriteItems. A failed condition is told apart from a lost race on
//! a pinned version by the cancellation reasons (and, for pinned operations, a reread), so the port
//! reports the first operation whose *caller's* condition failed. The SDK gives each call a
//! ClientRequestToken of its own (DynamoDB's `idempotencyToken`), which makes its retries after a
//! lost response harmless. The port's [`IdempotencyToken`] spans calls, and a repeated call carries
//! another `:now` and other pinned versions, which DynamoDB would refuse as a parameter mismatch; so
//! a token is kept as an item of its own (`IDEMPOTENCY#<token>` / `TOKEN`, expiring after DynamoDB's
//! ten minutes) written in the same transaction, holding a digest of the operations: a repeat finds
//! it and succeeds without writing, a reuse for other operations is `Invalid`. That item takes one
//! of the 100 operations, so a transaction with a token holds at most 99.
//!
//! **Queries** read one partition of the table, GSI1 or GSI2 with `Limit` and a filter dropping
//! expired items. A page may come back short, or empty, with a cursor: the port allows that. The
//! cursor is the last *returned* item's keys (so an item written later just after it is not
//! skipped), base64url JSON naming its index and partition, refused as `Invalid` on another query.

use crate::clock::SystemClock;
use crate::error;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use queuematch_core::ports::store::{
    self, Condition, Cursor, IdempotencyToken, Index, IndexKey, Item, Key, Page, Query, Store, Stored, Write,
    MAX_TRANSACTION_OPERATIONS,
};
use queuematch_core::ports::{Clock, PortError};
use queuematch_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// GSI1's name: `gsi1pk` / `gsi1sk`, operator listings by status and time.
pub const GSI1: &str = "GSI1";
/// The sparse pool index's name: `poolpk` / `poolsk`.
pub const GSI2: &str = "GSI2";
/// DynamoDB's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// The table's key: partition and sort attributes.
pub const TABLE_KEY: (&str, &str) = ("pk", "sk");
/// The global secondary indexes queries name: each index with its partition and sort attributes,
/// every attribute projected. The SAM template must create exactly these (a test holds it to it).
pub const INDEXES: [(&str, &str, &str); 2] = [(GSI1, "gsi1pk", "gsi1sk"), (GSI2, "poolpk", "poolsk")];

/// How often a write whose pinned version lost a race is tried again before giving up as
/// `Transient`. Each try rereads, so only a hot item under constant writes ever runs out.
const MAX_ATTEMPTS: u32 = 8;

type Attributes = HashMap<String, AttributeValue>;

/// The single table on DynamoDB.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Judges TTLs: expired items are invisible before DynamoDB deletes them.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// An item as DynamoDB holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    pk: String,
    sk: String,
    version: u64,
    body: serde_json::Value,
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(rename = "expiresAtMs", default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poolpk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poolsk: Option<String>,
}

impl Row {
    fn new(item: &Item, version: u64) -> Self {
        let (gsi1pk, gsi1sk) = split(&item.gsi1);
        let (poolpk, poolsk) = split(&item.pool);
        Self {
            pk: item.key.pk.clone(),
            sk: item.key.sk.clone(),
            version,
            body: item.body.clone(),
            expires_at: item.expires_at.map(|at| at.as_millis().div_ceil(1_000)),
            expires_at_ms: item.expires_at.map(Timestamp::as_millis),
            gsi1pk,
            gsi1sk,
            poolpk,
            poolsk,
        }
    }

    fn into_stored(self) -> Stored {
        let join = |pk: Option<String>, sk: Option<String>| Some(IndexKey::new(pk?, sk?));
        Stored {
            item: Item {
                key: Key::new(self.pk, self.sk),
                expires_at: self.expires_at_ms.map(Timestamp::from_millis),
                gsi1: join(self.gsi1pk, self.gsi1sk),
                pool: join(self.poolpk, self.poolsk),
                body: self.body,
            },
            version: self.version,
        }
    }

    fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now.as_millis())
    }
}

fn split(index: &Option<IndexKey>) -> (Option<String>, Option<String>) {
    match index {
        Some(k) => (Some(k.pk.clone()), Some(k.sk.clone())),
        None => (None, None),
    }
}

fn to_attributes<T: Serialize>(value: &T, what: &str) -> Result<Attributes, PortError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| PortError::invalid(format!("{what} cannot be written to DynamoDB: {e}")))
}

fn key_attributes(key: &Key) -> Result<Attributes, PortError> {
    #[derive(Serialize)]
    struct KeyOnly<'a> {
        pk: &'a str,
        sk: &'a str,
    }
    to_attributes(
        &KeyOnly {
            pk: &key.pk,
            sk: &key.sk,
        },
        "a key",
    )
}

fn from_attributes(attributes: Attributes) -> Result<Row, PortError> {
    let key = |name: &str| match attributes.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    let (pk, sk) = (key("pk"), key("sk"));
    serde_dynamo::aws_sdk_dynamodb_1::from_item(attributes).map_err(|e| PortError::Corrupt {
        key: Key::new(pk, sk),
        reason: format!("not an item of this store: {e}"),
    })
}

/// A write's condition as DynamoDB evaluates it, with the expiry judged at `:now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// No condition.
    None,
    /// The key is absent, or its item expired.
    AbsentOrExpired,
    /// A live item exists.
    Live,
    /// A live item exists at exactly this version.
    LiveAt(u64),
    /// Never holds: a pinned `Exists` put whose item was absent when read.
    Never,
}

impl Guard {
    /// The condition expression; its names and values are those of `names` and `values`.
    fn expression(self) -> Option<&'static str> {
        match self {
            Guard::None => None,
            Guard::AbsentOrExpired => Some("attribute_not_exists(#pk) OR #e <= :now"),
            Guard::Live => Some("attribute_exists(#pk) AND (attribute_not_exists(#e) OR #e > :now)"),
            Guard::LiveAt(_) => Some("#v = :v AND (attribute_not_exists(#e) OR #e > :now)"),
            Guard::Never => Some("attribute_exists(#pk) AND attribute_not_exists(#pk)"),
        }
    }

    fn names(self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        match self {
            Guard::None => {}
            Guard::Never => {
                names.insert("#pk".to_owned(), "pk".to_owned());
            }
            Guard::AbsentOrExpired | Guard::Live => {
                names.insert("#pk".to_owned(), "pk".to_owned());
                names.insert("#e".to_owned(), "expiresAtMs".to_owned());
            }
            Guard::LiveAt(_) => {
                names.insert("#v".to_owned(), "version".to_owned());
                names.insert("#e".to_owned(), "expiresAtMs".to_owned());
            }
        }
        names
    }

    fn values(self, now: Timestamp) -> Attributes {
        let mut values = Attributes::new();
        match self {
            Guard::None | Guard::Never => {}
            Guard::AbsentOrExpired | Guard::Live => {
                values.insert(":now".to_owned(), number(now.as_millis()));
            }
            Guard::LiveAt(v) => {
                values.insert(":now".to_owned(), number(now.as_millis()));
                values.insert(":v".to_owned(), number(v));
            }
        }
        values
    }
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// One operation as it will be sent: what to write, under which guard, and whether the guard is the
/// caller's own condition or a pin on a version the adapter read.
#[derive(Debug, Clone)]
struct Planned {
    op: Op,
    guard: Guard,
    pinned: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Put(Box<Row>),
    Delete(Key),
    Check(Key),
}

impl DynamoStore {
    /// The store on `table`, judging TTLs on the system clock.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self::with_clock(client, table, SystemClock)
    }

    /// The store on `table`, judging TTLs on `clock`.
    pub fn with_clock(client: Client, table: impl Into<String>, clock: impl Clock + 'static) -> Self {
        Self {
            client,
            table: table.into(),
            clock: Arc::new(clock),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The row under `key` as DynamoDB holds it, expired or not (strongly consistent).
    async fn read_row(&self, key: &Key) -> Result<Option<Row>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)?))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error::map("GetItem", e))?;
        out.item.map(from_attributes).transpose()
    }

    /// The live version under `key`, if any.
    async fn live_version(&self, key: &Key, now: Timestamp) -> Result<Option<u64>, PortError> {
        Ok(self
            .read_row(key)
            .await?
            .filter(|r| !r.is_expired(now))
            .map(|r| r.version))
    }

    /// Plans `write` at `now`, reading the current version where the condition needs one.
    async fn plan(&self, write: &Write, now: Timestamp) -> Result<Planned, PortError> {
        Ok(match write {
            Write::Put { item, condition } => match condition {
                Condition::Absent => Planned {
                    op: Op::Put(Box::new(Row::new(item, 1))),
                    guard: Guard::AbsentOrExpired,
                    pinned: false,
                },
                Condition::Version(v) => Planned {
                    op: Op::Put(Box::new(Row::new(item, v.saturating_add(1)))),
                    guard: Guard::LiveAt(*v),
                    pinned: false,
                },
                Condition::Any | Condition::Exists => {
                    let current = self.live_version(&item.key, now).await?;
                    let (version, guard) = match (current, condition) {
                        (Some(v), _) => (v.saturating_add(1), Guard::LiveAt(v)),
                        (None, Condition::Exists) => (1, Guard::Never),
                        (None, _) => (1, Guard::AbsentOrExpired),
                    };
                    Planned {
                        op: Op::Put(Box::new(Row::new(item, version))),
                        guard,
                        pinned: true,
                    }
                }
            },
            Write::Delete { key, condition } => Planned {
                op: Op::Delete(key.clone()),
                guard: guard_of(*condition),
                pinned: false,
            },
            Write::Check { key, condition } => Planned {
                op: Op::Check(key.clone()),
                guard: guard_of(*condition),
                pinned: false,
            },
        })
    }

    /// Whether the caller's condition of `write` fails now, by a fresh read.
    async fn fails_now(&self, write: &Write, now: Timestamp) -> Result<bool, PortError> {
        let current = self.live_version(write.key(), now).await?;
        Ok(!write.condition().holds(current))
    }

    fn transact_item(&self, planned: &Planned, now: Timestamp) -> Result<TransactWriteItem, PortError> {
        let expression = planned.guard.expression();
        let names = Some(planned.guard.names()).filter(|n| !n.is_empty());
        let values = Some(planned.guard.values(now)).filter(|v| !v.is_empty());
        let built = match &planned.op {
            Op::Put(row) => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attributes(row, "an item")?))
                    .set_condition_expression(expression.map(str::to_owned))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| PortError::invalid(format!("a transaction put: {e}")))?,
            ),
            Op::Delete(key) => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)?))
                    .set_condition_expression(expression.map(str::to_owned))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| PortError::invalid(format!("a transaction delete: {e}")))?,
            ),
            Op::Check(key) => {
                // A ConditionCheck must have a condition: under `Any`, one that always holds.
                let (expression, names) = match expression {
                    Some(e) => (e.to_owned(), names),
                    None => (
                        "attribute_exists(#pk) OR attribute_not_exists(#pk)".to_owned(),
                        Some(HashMap::from([("#pk".to_owned(), "pk".to_owned())])),
                    ),
                };
                TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)?))
                        .condition_expression(expression)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(|e| PortError::invalid(format!("a transaction check: {e}")))?,
                )
            }
        };
        Ok(built.build())
    }

    /// Sends one put; `Ok(false)` when its guard failed.
    async fn put_once(&self, planned: &Planned, now: Timestamp) -> Result<bool, PortError> {
        let Op::Put(row) = &planned.op else {
            return Err(PortError::invalid("put_once takes a put"));
        };
        let names = Some(planned.guard.names()).filter(|n| !n.is_empty());
        let values = Some(planned.guard.values(now)).filter(|v| !v.is_empty());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(row, "an item")?))
            .set_condition_expression(planned.guard.expression().map(str::to_owned))
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if error::code(&e) == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(error::map("PutItem", e)),
        }
    }

    /// The token's item, recording the digest of the operations it was used for.
    fn token_row(token: &IdempotencyToken, digest: &str, now: Timestamp) -> Row {
        let expires = now.plus(Duration::from_millis(IdempotencyToken::WINDOW_MS));
        Row::new(
            &Item::new(token_key(token), serde_json::json!({ "digest": digest })).expiring_at(expires),
            1,
        )
    }

    /// After a cancellation in which the token's own put failed: a repeat of the same operations
    /// (`Ok(true)`), a reuse for others (`Invalid`), or a token that expired meanwhile (`Ok(false)`).
    async fn token_replayed(&self, token: &IdempotencyToken, digest: &str, now: Timestamp) -> Result<bool, PortError> {
        match self.read_row(&token_key(token)).await? {
            Some(row) if !row.is_expired(now) => {
                if row.body.get("digest").and_then(|d| d.as_str()) == Some(digest) {
                    Ok(true)
                } else {
                    Err(PortError::invalid(format!(
                        "idempotency token {:?} was used for other operations",
                        token.as_str()
                    )))
                }
            }
            _ => Ok(false),
        }
    }

    /// One try of a transaction.
    async fn transact_once(
        &self,
        writes: &[Write],
        token: Option<(&IdempotencyToken, &str)>,
    ) -> Result<Attempt, PortError> {
        let now = self.clock.now();
        let plans = futures::future::try_join_all(writes.iter().map(|w| self.plan(w, now))).await?;
        let mut items = plans
            .iter()
            .map(|p| self.transact_item(p, now))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((token, digest)) = token {
            let planned = Planned {
                op: Op::Put(Box::new(Self::token_row(token, digest, now))),
                guard: Guard::AbsentOrExpired,
                pinned: false,
            };
            items.push(self.transact_item(&planned, now)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Attempt::Done),
            Err(e) => e,
        };
        if error::code(&err) != Some("TransactionCanceledException") {
            return Err(error::map("TransactWriteItems", err));
        }
        let reasons: Vec<CancellationReason> = match err.as_service_error() {
            Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                t,
            )) => t.cancellation_reasons().to_vec(),
            _ => Vec::new(),
        };
        let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if let Some((token, digest)) = token {
            if failed(writes.len()) && self.token_replayed(token, digest, now).await? {
                return Ok(Attempt::Done);
            }
        }
        let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
        if codes
            .iter()
            .any(|c| c.contains("Throttl") || *c == "ProvisionedThroughputExceeded")
        {
            return Err(PortError::Throttled { retry_after: None });
        }
        if reasons.is_empty() {
            // No reasons to go by: judge every caller's condition by a fresh read.
            for (i, write) in writes.iter().enumerate() {
                if self.fails_now(write, now).await? {
                    return Ok(Attempt::Failed(i));
                }
            }
            return Ok(Attempt::Retry);
        }
        for (i, (write, planned)) in writes.iter().zip(&plans).enumerate() {
            if !failed(i) {
                continue;
            }
            if !planned.pinned || self.fails_now(write, now).await? {
                return Ok(Attempt::Failed(i));
            }
        }
        // Only pins lost (or a concurrent transaction, `TransactionConflict`): try again.
        Ok(Attempt::Retry)
    }
}

/// How one try of a transaction ended.
#[derive(Debug)]
enum Attempt {
    Done,
    /// The caller's condition of this operation failed.
    Failed(usize),
    Retry,
}

fn guard_of(condition: Condition) -> Guard {
    match condition {
        Condition::Any => Guard::None,
        Condition::Absent => Guard::AbsentOrExpired,
        Condition::Exists => Guard::Live,
        Condition::Version(v) => Guard::LiveAt(v),
    }
}

fn token_key(token: &IdempotencyToken) -> Key {
    Key::new(format!("IDEMPOTENCY#{}", token.as_str()), "TOKEN")
}

/// A digest of a transaction's operations, to tell a repeat from a reuse of its token.
fn digest(writes: &[Write]) -> String {
    let described: Vec<serde_json::Value> = writes
        .iter()
        .map(|w| {
            let condition = format!("{:?}", w.condition());
            match w {
                Write::Put { item, .. } => serde_json::json!({
                    "put": [item.key.pk, item.key.sk], "condition": condition, "body": item.body,
                    "expiresAt": item.expires_at.map(Timestamp::as_millis),
                    "gsi1": item.gsi1.as_ref().map(|k| [&k.pk, &k.sk]),
                    "pool": item.pool.as_ref().map(|k| [&k.pk, &k.sk]),
                }),
                Write::Delete { key, .. } => serde_json::json!({ "delete": [key.pk, key.sk], "condition": condition }),
                Write::Check { key, .. } => serde_json::json!({ "check": [key.pk, key.sk], "condition": condition }),
            }
        })
        .collect();
    let bytes = serde_json::to_vec(&described).unwrap_or_default();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a cursor holds: the query it belongs to and the keys of the item it resumes after.
#[derive(Debug, Serialize, Deserialize)]
struct DynamoCursor {
    index: String,
    partition: String,
    key: CursorKey,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CursorKey {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poolpk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poolsk: Option<String>,
}

impl CursorKey {
    /// The key attributes DynamoDB wants back as `ExclusiveStartKey` on `index`.
    fn of_row(row: &Row, index: Index) -> Self {
        let mut key = CursorKey {
            pk: row.pk.clone(),
            sk: row.sk.clone(),
            gsi1pk: None,
            gsi1sk: None,
            poolpk: None,
            poolsk: None,
        };
        match index {
            Index::Table => {}
            Index::Gsi1 => (key.gsi1pk, key.gsi1sk) = (row.gsi1pk.clone(), row.gsi1sk.clone()),
            Index::Pool => (key.poolpk, key.poolsk) = (row.poolpk.clone(), row.poolsk.clone()),
        }
        key
    }
}

fn index_name(index: Index) -> &'static str {
    match index {
        Index::Table => "table",
        Index::Gsi1 => GSI1,
        Index::Pool => GSI2,
    }
}

fn encode_cursor(query: &Query, key: CursorKey) -> Result<Cursor, PortError> {
    let cursor = DynamoCursor {
        index: index_name(query.index).to_owned(),
        partition: query.partition.clone(),
        key,
    };
    let json = serde_json::to_vec(&cursor).map_err(|e| PortError::invalid(format!("a cursor: {e}")))?;
    Ok(Cursor(URL_SAFE_NO_PAD.encode(json)))
}

fn decode_cursor(query: &Query, cursor: &Cursor) -> Result<CursorKey, PortError> {
    let refuse = || PortError::invalid(format!("{:?} is not a cursor of this query", cursor.0));
    let bytes = URL_SAFE_NO_PAD.decode(cursor.0.as_bytes()).map_err(|_| refuse())?;
    let decoded: DynamoCursor = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    if decoded.index != index_name(query.index) || decoded.partition != query.partition {
        return Err(refuse());
    }
    Ok(decoded.key)
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError> {
        store::validate_key(key)?;
        let now = self.clock.now();
        Ok(self
            .read_row(key)
            .await?
            .filter(|r| !r.is_expired(now))
            .map(Row::into_stored))
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError> {
        store::validate_item(&item)?;
        let write = Write::put(item, condition);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let planned = self.plan(&write, now).await?;
            let version = match &planned.op {
                Op::Put(row) => row.version,
                _ => 0,
            };
            if self.put_once(&planned, now).await? {
                return Ok(version);
            }
            if !planned.pinned || self.fails_now(&write, now).await? {
                return Err(PortError::ConditionFailed {
                    key: write.key().clone(),
                    operation: None,
                });
            }
        }
        Err(PortError::transient(format!(
            "{} was written by others {MAX_ATTEMPTS} times while this put tried",
            write.key()
        )))
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError> {
        store::validate_key(key)?;
        let now = self.clock.now();
        let guard = guard_of(condition);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)?))
            .set_condition_expression(guard.expression().map(str::to_owned))
            .set_expression_attribute_names(Some(guard.names()).filter(|n| !n.is_empty()))
            .set_expression_attribute_values(Some(guard.values(now)).filter(|v| !v.is_empty()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if error::code(&e) == Some("ConditionalCheckFailedException") => Err(PortError::ConditionFailed {
                key: key.clone(),
                operation: None,
            }),
            Err(e) => Err(error::map("DeleteItem", e)),
        }
    }

    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError> {
        store::validate_transaction(&writes)?;
        if token.is_some() && writes.len() >= MAX_TRANSACTION_OPERATIONS {
            return Err(PortError::invalid(format!(
                "a transaction with an idempotency token holds at most {} operations (its token takes one), not {}",
                MAX_TRANSACTION_OPERATIONS - 1,
                writes.len()
            )));
        }
        let digest = token.as_ref().map(|_| digest(&writes));
        let token = token.as_ref().zip(digest.as_deref());
        for attempt in 0..MAX_ATTEMPTS {
            match self.transact_once(&writes, token).await? {
                Attempt::Done => return Ok(()),
                Attempt::Failed(i) => {
                    return Err(PortError::ConditionFailed {
                        key: writes[i].key().clone(),
                        operation: Some(i),
                    })
                }
                Attempt::Retry => tokio::time::sleep(jitter(attempt)).await,
            }
        }
        Err(PortError::transient(format!(
            "a transaction lost {MAX_ATTEMPTS} races on the versions it read"
        )))
    }

    async fn query(&self, query: Query) -> Result<Page, PortError> {
        store::validate_query(&query)?;
        let start = query.after.as_ref().map(|c| decode_cursor(&query, c)).transpose()?;
        let (partition_attr, sort_attr) = match query.index {
            Index::Table => ("pk", "sk"),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
            Index::Pool => ("poolpk", "poolsk"),
        };
        let mut key_condition = "#p = :p".to_owned();
        let mut names = HashMap::from([
            ("#p".to_owned(), partition_attr.to_owned()),
            ("#e".to_owned(), "expiresAtMs".to_owned()),
        ]);
        let now = self.clock.now();
        let mut values = HashMap::from([
            (":p".to_owned(), AttributeValue::S(query.partition.clone())),
            (":now".to_owned(), number(now.as_millis())),
        ]);
        if let Some(prefix) = &query.sort_prefix {
            key_condition.push_str(" AND begins_with(#s, :prefix)");
            names.insert("#s".to_owned(), sort_attr.to_owned());
            values.insert(":prefix".to_owned(), AttributeValue::S(prefix.clone()));
        }
        if let Some(before) = &query.sort_before {
            key_condition.push_str(" AND #s < :before");
            names.insert("#s".to_owned(), sort_attr.to_owned());
            values.insert(":before".to_owned(), AttributeValue::S(before.clone()));
        }
        let mut call = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .filter_expression("attribute_not_exists(#e) OR #e > :now")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!query.descending)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX));
        call = match query.index {
            Index::Table => call.consistent_read(true),
            index => call.index_name(index_name(index)),
        };
        if let Some(start) = start {
            call = call.set_exclusive_start_key(Some(to_attributes(&start, "a cursor")?));
        }
        let out = call.send().await.map_err(|e| error::map("Query", e))?;
        let rows = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attributes)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            None => None,
            Some(last) => {
                let key = match rows.last() {
                    Some(row) => CursorKey::of_row(row, query.index),
                    None => serde_dynamo::aws_sdk_dynamodb_1::from_item(last).map_err(|e| {
                        PortError::transient(format!("DynamoDB sent an unreadable LastEvaluatedKey: {e}"))
                    })?,
                };
                Some(encode_cursor(&query, key)?)
            }
        };
        Ok(Page {
            items: rows
                .into_iter()
                .filter(|r| !r.is_expired(now))
                .map(Row::into_stored)
                .collect(),
            next,
        })
    }
}

/// Full jitter: a delay drawn uniformly below an exponential bound (10 ms, doubling, at most 1 s).
fn jitter(attempt: u32) -> Duration {
    use rand::Rng;
    let bound = 10u64.saturating_mul(1 << attempt.min(7)).min(1_000);
    Duration::from_millis(rand::thread_rng().gen_range(0..=bound))
}

/// Creates the single table: `pk`/`sk`, GSI1 and GSI2 (all attributes projected), on-demand, with
/// TTL on `expiresAt`. For tests and local tooling; on AWS the SAM template creates it.
pub async fn create_table(client: &Client, name: &str) -> Result<(), PortError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| PortError::invalid(format!("attribute {n}: {e}")))
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| PortError::invalid(format!("key {n}: {e}")))
    };
    let gsi = |index: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, PortError> {
        GlobalSecondaryIndex::builder()
            .index_name(index)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| PortError::invalid(format!("index {index}: {e}")))
    };
    let (pk, sk) = TABLE_KEY;
    let mut table = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(pk)?)
        .attribute_definitions(attr(sk)?)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?);
    for (index, index_pk, index_sk) in INDEXES {
        table = table
            .attribute_definitions(attr(index_pk)?)
            .attribute_definitions(attr(index_sk)?)
            .global_secondary_indexes(gsi(index, index_pk, index_sk)?);
    }
    table.send().await.map_err(|e| error::map("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| PortError::invalid(format!("TTL: {e}")))?,
        )
        .send()
        .await
        .map_err(|e| error::map("UpdateTimeToLive", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_item_round_trips_through_its_attributes() {
        let item = Item::new(
            Key::new("TICKET#t", "TICKET"),
            json!({"n": 1, "f": 1.5, "s": "x", "l": [1, "a"], "z": null}),
        )
        .expiring_at(Timestamp::from_millis(1_500))
        .with_gsi1(IndexKey::new("G", "1"))
        .with_pool(IndexKey::new("P", "2"));
        let row = Row::new(&item, 3);
        assert_eq!(row.expires_at, Some(2), "the TTL rounds up to the second");
        let back = from_attributes(to_attributes(&row, "item").unwrap())
            .unwrap()
            .into_stored();
        assert_eq!((back.item, back.version), (item, 3));
    }

    #[test]
    fn a_cursor_belongs_to_its_query() {
        let q = Query::new(Index::Pool, "POOL#q#p#0", 5);
        let key = CursorKey {
            pk: "T".into(),
            sk: "S".into(),
            gsi1pk: None,
            gsi1sk: None,
            poolpk: Some("POOL#q#p#0".into()),
            poolsk: Some("1".into()),
        };
        let cursor = encode_cursor(&q, key.clone()).unwrap();
        assert_eq!(decode_cursor(&q, &cursor).unwrap(), key);
        let other = Query::new(Index::Pool, "POOL#q#p#1", 5);
        assert!(matches!(decode_cursor(&other, &cursor), Err(PortError::Invalid(_))));
        assert!(matches!(
            decode_cursor(&q, &Cursor("%%".into())),
            Err(PortError::Invalid(_))
        ));
    }

    #[test]
    fn the_digest_tells_operations_apart() {
        let a = vec![Write::put(
            Item::new(Key::new("A", "S"), json!({"n": 1})),
            Condition::Any,
        )];
        let b = vec![Write::put(
            Item::new(Key::new("A", "S"), json!({"n": 2})),
            Condition::Any,
        )];
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
    }

    #[test]
    fn jitter_stays_under_its_bound() {
        for attempt in 0..20 {
            assert!(jitter(attempt) <= Duration::from_secs(1));
        }
    }
}
