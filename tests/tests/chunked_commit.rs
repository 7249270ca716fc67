//! A match of more tickets than one DynamoDB transaction holds (100 operations) commits in chunks
//! behind a PENDING match item, its saga record: all chunks written, it becomes COMMITTED and its
//! placement starts; a conflict reverts the chunks already written; a commit that stopped half-way
//! is put back by the sweeper.

mod common;

use common::NoFleet;
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::ports::store::items::{self, MatchRecord, MatchStatus, PoolRef, TicketRecord, Versioned};
use queuematch_core::ports::store::{Condition, IdempotencyToken, Item, Key, Page, Query, Stored, Write};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{PortError, Store, TicketQueue, Workflows};
use queuematch_core::status::TicketStatus;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::admission::{Admission, Admitted};
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::round::{RoundReport, Rounds};
use queuematch_core::usecases::sweeper::Sweeper;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const START: Timestamp = Timestamp(1_800_000_000_000);
const PLAYERS: usize = 150;

/// What the store does to the second chunk of ticket moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sabotage {
    Nothing,
    /// A player of the chunk cancels just before it is written.
    CancelOne,
    /// The matcher dies: the chunk is never written.
    Crash,
}

/// The memory store, with a hand in the second large transaction it is given.
struct SabotagedStore {
    inner: MemoryStore,
    sabotage: Sabotage,
    large_transactions: AtomicUsize,
    cancelled: Mutex<Option<String>>,
    /// The match items put (the saga records of chunked commits).
    match_keys: Mutex<Vec<Key>>,
}

#[async_trait::async_trait]
impl Store for SabotagedStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError> {
        if item.key.pk.starts_with("MATCH#") {
            self.match_keys
                .lock()
                .unwrap_or_else(|e| panic!("{e}"))
                .push(item.key.clone());
        }
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError> {
        self.inner.delete(key, condition).await
    }
    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError> {
        let large = writes.len() >= 40;
        if large && self.large_transactions.fetch_add(1, Ordering::SeqCst) == 1 {
            match self.sabotage {
                Sabotage::Nothing => {}
                Sabotage::Crash => return Err(PortError::transient("the matcher was killed mid-commit")),
                Sabotage::CancelOne => {
                    let key = writes[7].key().clone();
                    let stored = self.inner.get(&key).await?.unwrap_or_else(|| panic!("no {key}"));
                    let mut record: TicketRecord = items::read(&stored)?.value;
                    record
                        .ticket
                        .move_to(TicketStatus::Cancelled, Some("cancelled by its player".into()))
                        .unwrap_or_else(|e| panic!("{e}"));
                    *self.cancelled.lock().unwrap_or_else(|e| panic!("{e}")) = Some(record.ticket.id.to_string());
                    self.inner
                        .put(items::ticket_item(&record, 4)?, Condition::Version(stored.version))
                        .await?;
                }
            }
        }
        self.inner.transact_write(writes, token).await
    }
    async fn query(&self, query: Query) -> Result<Page, PortError> {
        self.inner.query(query).await
    }
}

#[derive(Debug, Default)]
struct StartedExecutions(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Workflows for StartedExecutions {
    async fn start(&self, _: &str, name: &str, _: Value) -> Result<ExecutionId, PortError> {
        self.0.lock().unwrap_or_else(|e| panic!("{e}")).push(name.to_owned());
        Ok(ExecutionId(name.to_owned()))
    }
}

/// A free-for-all of exactly 150 players: battle-royale-60, grown, without its shrinking lobby.
fn royale_150() -> RuleSet {
    let path = repo_root().join("examples/rulesets/battle-royale-60.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    json["teams"] = json!([{"name": "players", "minPlayers": PLAYERS, "maxPlayers": PLAYERS}]);
    let expansions: Vec<Value> = json["expansions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| !e["target"].as_str().unwrap_or_default().starts_with("teams"))
        .cloned()
        .collect();
    json["expansions"] = Value::Array(expansions);
    RuleSet::from_json_str(&json.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

struct World {
    clock: Arc<ManualClock>,
    store: SabotagedStore,
    queue: MemoryQueue,
    events: EventBus,
    workflows: StartedExecutions,
    tokens: DevTokens,
    queues: Queues,
    settings: Settings,
}

impl World {
    async fn with(sabotage: Sabotage) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        let world = Self {
            store: SabotagedStore {
                inner: MemoryStore::new(clock.clone()),
                sabotage,
                large_transactions: AtomicUsize::new(0),
                cancelled: Mutex::new(None),
                match_keys: Mutex::default(),
            },
            queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
            clock,
            events: EventBus::new(4096),
            workflows: StartedExecutions::default(),
            tokens: DevTokens::new(b"chunked commit test"),
            queues: Queues::new([royale_150()]),
            settings: Settings::default(),
        };
        let admission = Admission {
            store: &world.store,
            events: &world.events,
            clock: &world.clock,
            party_tokens: &world.tokens,
            queues: &world.queues,
            settings: &world.settings,
        };
        for i in 0..PLAYERS {
            let player = format!("p-{i:03}");
            let message = TicketMessage {
                ticket_id: format!("t-{i:03}").into(),
                player_id: player.as_str().into(),
                received_at: START,
                request: json!({"queue": "battle-royale-60", "players": [{"id": player, "attributes": {"skill": 1500 + i}, "latencies": {"local": 10}}]}),
            };
            let admitted = admission.admit(&message).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(admitted, Admitted::Searching(_)), "{admitted:?}");
        }
        world
    }

    fn rounds(&self) -> Rounds<'_, SabotagedStore, MemoryQueue, StartedExecutions, EventBus, Arc<ManualClock>> {
        Rounds {
            store: &self.store,
            queue: &self.queue,
            workflows: &self.workflows,
            events: &self.events,
            clock: &self.clock,
            queues: &self.queues,
            settings: &self.settings,
        }
    }

    async fn round(&self) -> Result<RoundReport, PortError> {
        self.rounds()
            .run(&PoolRef::new("battle-royale-60", "all"), "test")
            .await
    }

    async fn ticket(&self, i: usize) -> Stored {
        self.store
            .get(&items::ticket_key(&format!("t-{i:03}").into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no t-{i:03}"))
    }

    async fn statuses(&self) -> Vec<TicketStatus> {
        let mut statuses = Vec::new();
        for i in 0..PLAYERS {
            let record: Versioned<TicketRecord> = items::read(&self.ticket(i).await).unwrap_or_else(|e| panic!("{e}"));
            statuses.push(record.value.ticket.status);
        }
        statuses
    }

    fn started(&self) -> Vec<String> {
        self.workflows.0.lock().unwrap_or_else(|e| panic!("{e}")).clone()
    }
}

#[tokio::test]
async fn a_match_of_150_tickets_commits_in_chunks_and_then_starts_its_placement() {
    let world = World::with(Sabotage::Nothing).await;
    let report = world.round().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.matches.len(), 1, "{report:?}");
    let matched = &report.matches[0];
    assert_eq!(matched.ticket_ids().count(), PLAYERS);

    // Every ticket is PLACING in the match, out of the pool index.
    for i in 0..PLAYERS {
        let stored = world.ticket(i).await;
        let record: TicketRecord = items::read(&stored).unwrap_or_else(|e| panic!("{e}")).value;
        assert_eq!(record.ticket.status, TicketStatus::Placing, "t-{i:03}");
        assert_eq!(record.match_id.as_ref(), Some(&matched.id));
        assert!(stored.item.pool.is_none());
    }
    // The saga record is COMMITTED, and only then did the placement start.
    let stored = world
        .store
        .get(&items::match_key(&matched.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no match item"));
    let record: MatchRecord = items::read(&stored).unwrap_or_else(|e| panic!("{e}")).value;
    assert_eq!(record.status, MatchStatus::Committed);
    assert_eq!(world.started(), [matched.id.to_string()]);

    // A replayed round finds nothing to match and writes nothing.
    let again = world.round().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.matches.is_empty());
    assert_eq!(world.started().len(), 1);
}

#[tokio::test]
async fn a_conflict_in_a_later_chunk_reverts_the_chunks_already_written() {
    let world = World::with(Sabotage::CancelOne).await;
    let before: Vec<Stored> = {
        let mut v = Vec::new();
        for i in 0..PLAYERS {
            v.push(world.ticket(i).await);
        }
        v
    };

    // WHEN a player of the second chunk cancels just before it is written
    let report = world.round().await.unwrap_or_else(|e| panic!("{e}"));

    // THEN the match is not made, and nothing starts
    assert!(report.matches.is_empty(), "{report:?}");
    assert_eq!(report.conflicts, 1);
    assert!(world.started().is_empty());
    // AND the partners are looked at again within the batching window, on a tick
    assert_eq!(report.next_tick, Some(START.plus(Duration::from_secs(1))));
    let depth = world.queue.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(depth.delayed, 1, "{depth:?}");

    // AND the cancelled ticket stays CANCELLED; every other is SEARCHING again, in the pool index,
    // as old as it was, with no match
    let cancelled = world
        .store
        .cancelled
        .lock()
        .unwrap_or_else(|e| panic!("{e}"))
        .clone()
        .unwrap_or_else(|| panic!("nobody cancelled"));
    let statuses = world.statuses().await;
    for (i, status) in statuses.iter().enumerate() {
        let stored = world.ticket(i).await;
        let record: TicketRecord = items::read(&stored).unwrap_or_else(|e| panic!("{e}")).value;
        if record.ticket.id.as_str() == cancelled {
            assert_eq!(*status, TicketStatus::Cancelled);
            continue;
        }
        assert_eq!(*status, TicketStatus::Searching, "t-{i:03}");
        assert_eq!(record.match_id, None);
        assert_eq!(record.ticket.created_at, START);
        assert_eq!(
            stored.item.pool, before[i].item.pool,
            "t-{i:03} is back in its pool shard"
        );
    }
    let reverted = statuses.iter().filter(|s| **s == TicketStatus::Searching).count();
    assert_eq!(reverted, PLAYERS - 1);

    // AND the saga record, written PENDING first, is gone
    let keys = world.store.match_keys.lock().unwrap_or_else(|e| panic!("{e}")).clone();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let record = world.store.get(&keys[0]).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(record.is_none(), "{record:?}");
}

#[tokio::test]
async fn a_chunked_commit_that_stopped_half_way_is_put_back_by_the_sweeper() {
    let world = World::with(Sabotage::Crash).await;
    // WHEN the matcher dies between the first and second chunk
    let crash = world.round().await;
    assert!(matches!(crash, Err(PortError::Transient { .. })), "{crash:?}");
    let statuses = world.statuses().await;
    let placing = statuses.iter().filter(|s| **s == TicketStatus::Placing).count();
    assert_eq!(placing, 100, "the first chunk was written");
    assert!(world.started().is_empty());
    let keys = world.store.match_keys.lock().unwrap_or_else(|e| panic!("{e}")).clone();
    let stored = world.store.get(&keys[0]).await.unwrap_or_else(|e| panic!("{e}"));
    let record: MatchRecord = items::read(&stored.unwrap_or_else(|| panic!("no saga record")))
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
    assert_eq!(record.status, MatchStatus::Pending);

    // THEN the sweeper, once the round is surely over, puts every ticket back to SEARCHING
    let sweeper = Sweeper {
        store: &world.store,
        queue: &world.queue,
        workflows: &world.workflows,
        fleet: &NoFleet,
        events: &world.events,
        clock: &world.clock,
        queues: &world.queues,
        settings: &world.settings,
    };
    let early = sweeper.sweep("early").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(early.resumed.is_empty(), "{early:?}");
    world.clock.advance(Duration::from_secs(61));
    let late = sweeper.sweep("late").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(late.resumed.len(), 1, "{late:?}");
    assert!(late.restarted.is_empty(), "a PENDING match is never placed: {late:?}");
    assert!(world.statuses().await.iter().all(|s| *s == TicketStatus::Searching));
    assert!(world.started().is_empty());

    // AND the next round makes the match whole
    let report = world.round().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.matches.len(), 1, "{report:?}");
    assert!(world.statuses().await.iter().all(|s| *s == TicketStatus::Placing));
}
