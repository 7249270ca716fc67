//! Backfill on the embedded adapters, on virtual time: sessions placed by the placement use cases,
//! departures reported as signed `playerLeft` reports, open slots filled by the pool's rounds.

use queuematch_core::identity::report::sign;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{MatchId, SessionId, TicketId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::items::{self, GuardHolder, MatchRecord, PoolRef, SessionRecord, TicketRecord};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock as _, Fleet, PortError, Store, Workflows};
use queuematch_core::status::{SessionStatus, TicketStatus};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::admission::Admission;
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::placement::{session_id_for, Placements, Step};
use queuematch_core::usecases::reports::{ReportError, Reports, SignedReport};
use queuematch_core::usecases::round::{RoundReport, Rounds};
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const START: Timestamp = Timestamp(1_800_000_000_000);

/// Every placement is ready at once, each on a port of its own.
#[derive(Debug, Default)]
struct ReadyFleet(AtomicU32);

#[async_trait::async_trait]
impl Fleet for ReadyFleet {
    async fn place(&self, session: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        let port = 7000 + self.0.fetch_add(1, Ordering::SeqCst) as u16;
        Ok(Placement::Ready {
            placement: PlacementId(format!("pl-{session}")),
            endpoint: Endpoint {
                address: "127.0.0.1".into(),
                port,
            },
        })
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        Err(PortError::invalid(format!("{placement:?} was ready at once")))
    }

    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct NoWorkflows;

#[async_trait::async_trait]
impl Workflows for NoWorkflows {
    async fn start(&self, definition: &str, name: &str, _: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

struct Stack {
    clock: Arc<ManualClock>,
    store: MemoryStore,
    queue: MemoryQueue,
    events: EventBus,
    fleet: ReadyFleet,
    workflows: NoWorkflows,
    tokens: queuematch_core::identity::jwt::DevTokens,
    queues: Queues,
    settings: Settings,
    nonces: AtomicU32,
}

/// ranked-1v1 with the given backfill mode.
fn duel(mode: &str) -> RuleSet {
    let path = repo_root().join("examples/rulesets/ranked-1v1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    value["queue"]["backfillMode"] = json!(mode);
    RuleSet::from_json(&value).unwrap_or_else(|e| panic!("{e:?}"))
}

fn pool() -> PoolRef {
    PoolRef::new("ranked-1v1", "all")
}

fn step() -> Step {
    Step {
        execution_id: "test".into(),
        state: "Test".into(),
    }
}

impl Stack {
    fn new(mode: &str) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        Self {
            store: MemoryStore::new(clock.clone()),
            queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
            clock,
            events: EventBus::new(1024),
            fleet: ReadyFleet::default(),
            workflows: NoWorkflows,
            tokens: queuematch_core::identity::jwt::DevTokens::new(b"backfill test secret"),
            queues: Queues::new([duel(mode)]),
            settings: Settings {
                single_region: Some("local".into()),
                ..Settings::default()
            },
            nonces: AtomicU32::new(0),
        }
    }

    async fn queue_ticket(&self, ticket: &str, skill: f64) {
        let message = TicketMessage {
            ticket_id: ticket.into(),
            player_id: format!("p-{ticket}").as_str().into(),
            received_at: self.clock.now(),
            request: json!({"queue": "ranked-1v1", "players": [{"id": format!("p-{ticket}"), "attributes": {"skill": skill}}]}),
        };
        Admission {
            store: &self.store,
            events: &self.events,
            clock: &self.clock,
            party_tokens: &self.tokens,
            queues: &self.queues,
            settings: &self.settings,
        }
        .admit(&message)
        .await
        .unwrap_or_else(|e| panic!("admission: {e}"));
    }

    async fn round(&self) -> RoundReport {
        Rounds {
            store: &self.store,
            queue: &self.queue,
            workflows: &self.workflows,
            events: &self.events,
            clock: &self.clock,
            queues: &self.queues,
            settings: &self.settings,
        }
        .run(&pool(), "round-holder")
        .await
        .unwrap_or_else(|e| panic!("round: {e}"))
    }

    /// Places a committed match the way the `session-placement` workflow does: ACTIVE.
    async fn place(&self, matched: &MatchId) -> SessionRecord {
        let placements = Placements {
            store: &self.store,
            queue: &self.queue,
            fleet: &self.fleet,
            events: &self.events,
            clock: &self.clock,
            queues: &self.queues,
            settings: &self.settings,
        };
        let secret = SessionSecret::from_random_bytes(&[9; 32]);
        let session = placements
            .create_session(matched, secret, &step())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .session_id;
        placements
            .place(&session, &step())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        placements
            .activate(&session, &step())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.session(&session).await
    }

    /// Two duellists matched and placed: their session.
    async fn session_of(&self, a: &str, b: &str) -> SessionRecord {
        self.queue_ticket(a, 1500.0).await;
        self.queue_ticket(b, 1500.0).await;
        let report = self.round().await;
        assert_eq!(report.matches.len(), 1, "{report:?}");
        self.place(&report.matches[0].id).await
    }

    async fn report(&self, session: &SessionRecord, body: &str) -> Result<SessionStatus, ReportError> {
        let now = self.clock.now();
        let nonce = format!("nonce-{:04}", self.nonces.fetch_add(1, Ordering::SeqCst));
        let signature = sign(&session.secret, now, &nonce, body.as_bytes());
        Reports {
            store: &self.store,
            queue: &self.queue,
            queues: &self.queues,
            fleet: &self.fleet,
            workflows: &self.workflows,
            events: &self.events,
            clock: &self.clock,
            settings: &self.settings,
        }
        .record(
            &session.session_id,
            SignedReport {
                timestamp: now,
                nonce: &nonce,
                signature: &signature,
                body: body.as_bytes(),
            },
        )
        .await
        .map(|r| r.status)
    }

    async fn left(&self, session: &SessionRecord, player: &str) {
        let body = json!({"type": "playerLeft", "playerId": player}).to_string();
        self.report(session, &body).await.unwrap_or_else(|e| panic!("{e}"));
    }

    async fn session(&self, id: &SessionId) -> SessionRecord {
        let stored = self.store.get(&items::session_key(id)).await.ok().flatten();
        items::read(&stored.unwrap_or_else(|| panic!("no session {id}")))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
    }

    async fn ticket(&self, id: &str) -> TicketRecord {
        let stored = self
            .store
            .get(&items::ticket_key(&TicketId::from(id)))
            .await
            .ok()
            .flatten();
        items::read(&stored.unwrap_or_else(|| panic!("no ticket {id}")))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
    }

    async fn guard(&self, player: &str) -> Option<GuardHolder> {
        let stored = self
            .store
            .get(&items::player_guard_key(&player.into()))
            .await
            .ok()
            .flatten()?;
        Some(items::read(&stored).unwrap_or_else(|e| panic!("{e}")).value)
    }

    async fn match_record(&self, id: &MatchId) -> Match {
        let stored = self.store.get(&items::match_key(id)).await.ok().flatten();
        items::read::<MatchRecord>(&stored.unwrap_or_else(|| panic!("no match {id}")))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
            .matched
    }
}

#[tokio::test]
async fn two_open_sessions_and_one_ticket_one_session_gets_it_and_nothing_is_booked_twice() {
    // GIVEN two running duels whose blue players quit (AUTOMATIC backfill)
    let stack = Stack::new("AUTOMATIC");
    let first = stack.session_of("a", "b").await;
    stack.clock.advance(Duration::from_secs(1));
    let second = stack.session_of("c", "d").await;
    stack.left(&first, "p-b").await;
    stack.clock.advance(Duration::from_secs(1));
    stack.left(&second, "p-d").await;
    // (a departure already recorded changes nothing)
    stack.left(&first, "p-b").await;

    // WHEN one ticket arrives and the pool's round runs
    stack.clock.advance(Duration::from_secs(1));
    stack.queue_ticket("e", 1510.0).await;
    let report = stack.round().await;

    // THEN the slot that opened first takes it, before and instead of any new match
    assert!(report.matches.is_empty(), "{report:?}");
    assert_eq!(report.backfilled.len(), 1, "{report:?}");
    assert_eq!(report.backfilled[0].session_id, first.session_id);
    assert_eq!(report.backfilled[0].tickets, [TicketId::from("e")]);
    let e = stack.ticket("e").await;
    assert_eq!(e.ticket.status, TicketStatus::Completed);
    assert_eq!(e.match_id.as_ref(), Some(&first.match_id));
    assert_eq!(session_id_for(&first.match_id), first.session_id);
    assert!(
        e.ticket.reason.as_deref().is_some_and(|r| r.contains("backfilled")),
        "{e:?}"
    );
    assert_eq!(
        stack.guard("p-e").await,
        Some(GuardHolder::Session(first.session_id.clone()))
    );
    // AND the session and its match know the newcomer; the one who left stays on the list
    let now_first = stack.session(&first.session_id).await;
    assert_eq!(now_first.player_ids, ["p-a", "p-b", "p-e"].map(Into::into));
    let teams: Vec<Vec<String>> = stack
        .match_record(&first.match_id)
        .await
        .teams
        .iter()
        .map(|t| t.players.iter().map(|p| p.to_string()).collect())
        .collect();
    assert!(teams.iter().any(|t| t.contains(&"p-e".to_owned())), "{teams:?}");

    // WHEN another ticket arrives THEN the second session takes it; the first is full
    stack.clock.advance(Duration::from_secs(1));
    stack.queue_ticket("f", 1490.0).await;
    let report = stack.round().await;
    assert_eq!(report.backfilled.len(), 1, "{report:?}");
    assert_eq!(report.backfilled[0].session_id, second.session_id);
    // AND a third finds no open slot: it waits for a match of its own
    stack.queue_ticket("g", 1500.0).await;
    let report = stack.round().await;
    assert!(report.backfilled.is_empty() && report.matches.is_empty(), "{report:?}");
    assert_eq!(stack.ticket("g").await.ticket.status, TicketStatus::Searching);
}

#[tokio::test]
async fn under_manual_backfill_a_slot_is_filled_only_once_the_server_asks() {
    let stack = Stack::new("MANUAL");
    let session = stack.session_of("a", "b").await;
    stack.left(&session, "p-b").await;
    stack.queue_ticket("c", 1500.0).await;
    assert!(stack.round().await.backfilled.is_empty());
    assert_eq!(stack.ticket("c").await.ticket.status, TicketStatus::Searching);

    stack
        .report(&session, r#"{"type":"backfill"}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = stack.round().await;
    assert_eq!(report.backfilled.len(), 1, "{report:?}");
    assert_eq!(stack.ticket("c").await.ticket.status, TicketStatus::Completed);
}

#[tokio::test]
async fn a_ticket_outside_the_rules_is_not_backfilled() {
    let stack = Stack::new("AUTOMATIC");
    let session = stack.session_of("a", "b").await;
    stack.left(&session, "p-b").await;
    // ranked-1v1's distance limit is 100 before its expansion
    stack.queue_ticket("far", 1800.0).await;
    let report = stack.round().await;
    assert!(report.backfilled.is_empty(), "{report:?}");
    assert_eq!(stack.ticket("far").await.ticket.status, TicketStatus::Searching);
}

#[tokio::test]
async fn departures_are_checked_before_anything_changes() {
    let stack = Stack::new("AUTOMATIC");
    let session = stack.session_of("a", "b").await;
    // A stranger: 400 at its pointer
    let stranger = stack
        .report(&session, r#"{"type":"playerLeft","playerId":"p-z"}"#)
        .await;
    assert!(
        matches!(stranger, Err(ReportError::Invalid(ref f)) if f.pointer == "/playerId"),
        "{stranger:?}"
    );
    // No player: 400
    let missing = stack.report(&session, r#"{"type":"playerLeft"}"#).await;
    assert!(matches!(missing, Err(ReportError::Invalid(_))), "{missing:?}");
    // Nothing opened: a ticket that would fit waits for a match of its own
    stack.queue_ticket("c", 1500.0).await;
    assert!(stack.round().await.backfilled.is_empty());

    // A session that is over takes no departure, and its open slots are not filled
    stack.left(&session, "p-b").await;
    stack
        .report(&session, r#"{"type":"end","reason":"done"}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let late = stack
        .report(&session, r#"{"type":"playerLeft","playerId":"p-a"}"#)
        .await;
    assert!(matches!(late, Err(ReportError::Conflict(_))), "{late:?}");
    stack.queue_ticket("d", 1500.0).await;
    let report = stack.round().await;
    assert!(report.backfilled.is_empty(), "{report:?}");
    // (c and d form a match of their own instead)
    assert_eq!(report.matches.len(), 1, "{report:?}");
}

#[tokio::test]
async fn a_player_who_comes_back_before_backfill_closes_their_slot_again() {
    let stack = Stack::new("MANUAL");
    let session = stack.session_of("a", "b").await;
    stack.left(&session, "p-b").await;
    // GIVEN b is back in their slot before the server asked for backfill
    let back = json!({"type": "playerReturned", "playerId": "p-b"}).to_string();
    stack.report(&session, &back).await.unwrap_or_else(|e| panic!("{e}"));
    // WHEN the server asks anyway, and a ticket that would fit waits
    stack
        .report(&session, r#"{"type":"backfill"}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stack.queue_ticket("c", 1500.0).await;
    stack.queue_ticket("d", 1500.0).await;
    let report = stack.round().await;
    // THEN nothing is backfilled: c and d form a match of their own
    assert!(report.backfilled.is_empty(), "{report:?}");
    assert_eq!(report.matches.len(), 1, "{report:?}");
    // AND a second return changes nothing
    stack.report(&session, &back).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_player_whose_slot_was_backfilled_cannot_return_to_it() {
    let stack = Stack::new("AUTOMATIC");
    let session = stack.session_of("a", "b").await;
    stack.left(&session, "p-b").await;
    stack.queue_ticket("c", 1500.0).await;
    let report = stack.round().await;
    assert_eq!(report.backfilled.len(), 1, "{report:?}");
    // WHEN b reports back
    let back = json!({"type": "playerReturned", "playerId": "p-b"}).to_string();
    let refused = stack.report(&session, &back).await;
    // THEN it is a conflict that names the reason
    assert!(
        matches!(refused, Err(ReportError::Conflict(ref m)) if m.contains("backfilled while they were away")),
        "{refused:?}"
    );
    // AND a return of someone who never left, or a stranger, is checked like a departure
    let stranger = stack
        .report(&session, r#"{"type":"playerReturned","playerId":"p-z"}"#)
        .await;
    assert!(
        matches!(stranger, Err(ReportError::Invalid(ref f)) if f.pointer == "/playerId"),
        "{stranger:?}"
    );
    let stayed = json!({"type": "playerReturned", "playerId": "p-a"}).to_string();
    stack.report(&session, &stayed).await.unwrap_or_else(|e| panic!("{e}"));
}
