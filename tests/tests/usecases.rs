//! The use cases on the embedded adapters, on virtual time: admission, rounds, cancels, timeouts.

mod common;

use queuematch_core::event::DomainEvent;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role, PARTY_TOKEN_TTL};
use queuematch_core::ids::{PlayerId, TicketId};
use queuematch_core::ports::store::items::{self, PoolRef, TicketRecord, Versioned};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{PortError, Store, TicketQueue, Workflows};
use queuematch_core::status::TicketStatus;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::admission::{Admission, Admitted};
use queuematch_core::usecases::messages::{Message, TicketMessage};
use queuematch_core::usecases::round::{RoundReport, Rounds, PLACEMENT_WORKFLOW};
use queuematch_core::usecases::sweeper::Sweeper;
use queuematch_core::usecases::{tickets, Queues, Settings, UseCaseError};
use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use queuematch_local::events::Delivery;
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const START: Timestamp = Timestamp(1_800_000_000_000);

/// Records the executions a round starts; the embedded engine's adapter comes with the local stack.
#[derive(Debug, Default)]
struct StartedExecutions(Mutex<Vec<(String, String, Value)>>);

#[async_trait::async_trait]
impl Workflows for StartedExecutions {
    async fn start(&self, definition: &str, name: &str, input: Value) -> Result<ExecutionId, PortError> {
        let mut started = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !started.iter().any(|(_, n, _)| n == name) {
            started.push((definition.to_owned(), name.to_owned(), input));
        }
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

struct Stack {
    clock: Arc<ManualClock>,
    store: MemoryStore,
    queue: MemoryQueue,
    events: EventBus,
    workflows: StartedExecutions,
    tokens: DevTokens,
    queues: Queues,
    settings: Settings,
}

fn rule_set(name: &str) -> RuleSet {
    let path = repo_root().join(format!("examples/rulesets/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

impl Stack {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(START));
        Self {
            store: MemoryStore::new(clock.clone()),
            queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
            clock,
            events: EventBus::new(1024),
            workflows: StartedExecutions::default(),
            tokens: DevTokens::new(b"test secret for the use cases"),
            queues: Queues::new([rule_set("ranked-1v1"), rule_set("coop-4")]),
            settings: Settings::default(),
        }
    }

    fn admission(&self) -> Admission<'_, MemoryStore, EventBus, Arc<ManualClock>, DevTokens> {
        Admission {
            store: &self.store,
            events: &self.events,
            clock: &self.clock,
            party_tokens: &self.tokens,
            queues: &self.queues,
            settings: &self.settings,
        }
    }

    fn rounds(&self) -> Rounds<'_, MemoryStore, MemoryQueue, StartedExecutions, EventBus, Arc<ManualClock>> {
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

    async fn admit(&self, message: &TicketMessage) -> Admitted {
        self.admission()
            .admit(message)
            .await
            .unwrap_or_else(|e| panic!("admission failed: {e}"))
    }

    async fn round(&self, pool: &PoolRef) -> RoundReport {
        self.rounds()
            .run(pool, "test-holder")
            .await
            .unwrap_or_else(|e| panic!("round failed: {e}"))
    }

    async fn ticket(&self, id: &str) -> Versioned<TicketRecord> {
        let stored = match self.store.get(&items::ticket_key(&TicketId::from(id))).await {
            Ok(Some(stored)) => stored,
            other => panic!("ticket {id} is not stored: {other:?}"),
        };
        items::read(&stored).unwrap_or_else(|e| panic!("ticket {id} does not read: {e}"))
    }

    fn started(&self) -> Vec<(String, String, Value)> {
        self.workflows
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn solo(ticket: &str, player: &str, skill: f64, at: Timestamp) -> TicketMessage {
    TicketMessage {
        ticket_id: ticket.into(),
        player_id: player.into(),
        received_at: at,
        request: json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}, "latencies": {"local": 5}}]}),
    }
}

fn pool_1v1() -> PoolRef {
    PoolRef::new("ranked-1v1", "all")
}

#[tokio::test]
async fn two_admitted_duellists_are_matched_committed_and_sent_to_placement() {
    let stack = Stack::new();
    let mut p1_events = stack.events.subscribe_player("p-1".into());
    assert_eq!(
        stack.admit(&solo("t-1", "p-1", 1500.0, START)).await,
        Admitted::Searching(pool_1v1())
    );
    assert_eq!(
        stack.admit(&solo("t-2", "p-2", 1540.0, START)).await,
        Admitted::Searching(pool_1v1())
    );

    // A ticket that has just arrived holds out for a closer opponent for its first seconds; the
    // round schedules a tick to look again, and a second later 40 points is close enough.
    let first = stack.round(&pool_1v1()).await;
    assert_eq!(first.matches.len(), 0);
    assert_eq!(first.next_tick, Some(START.plus(Duration::from_secs(1))));
    stack.clock.advance(Duration::from_secs(1));
    let report = stack.round(&pool_1v1()).await;
    assert_eq!(report.matches.len(), 1);
    assert_eq!((report.remaining, report.conflicts, report.lease_busy), (0, 0, false));
    let matched = &report.matches[0];
    for id in ["t-1", "t-2"] {
        let t = stack.ticket(id).await.value;
        assert_eq!(t.ticket.status, TicketStatus::Placing, "{id}");
        assert_eq!(t.match_id.as_ref(), Some(&matched.id));
    }
    assert_eq!(
        stack.started(),
        [(
            PLACEMENT_WORKFLOW.to_owned(),
            matched.id.to_string(),
            json!({"matchId": matched.id, "queue": "ranked-1v1", "acceptanceRequired": false})
        )]
    );
    let first = p1_events.next().await;
    assert!(
        matches!(first, Some(Delivery::Event(DomainEvent::MatchmakingSearching { .. }))),
        "{first:?}"
    );
    let second = p1_events.next().await;
    assert!(
        matches!(
            second,
            Some(Delivery::Event(DomainEvent::PotentialMatchCreated {
                acceptance_required: false,
                ..
            }))
        ),
        "{second:?}"
    );

    // A replayed round finds nothing left to match and starts nothing more.
    let again = stack.round(&pool_1v1()).await;
    assert!(again.matches.is_empty());
    assert_eq!(stack.started().len(), 1);
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing() {
    let stack = Stack::new();
    let message = solo("t-1", "p-1", 1500.0, START);
    stack.admit(&message).await;
    let before = stack.ticket("t-1").await;
    assert_eq!(stack.admit(&message).await, Admitted::Duplicate);
    assert_eq!(stack.ticket("t-1").await, before, "same ticket, same version");
}

#[tokio::test]
async fn a_second_active_ticket_of_a_player_fails_with_the_reason() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    let outcome = stack.admit(&solo("t-2", "p-1", 1500.0, START)).await;
    assert_eq!(
        outcome,
        Admitted::Failed("player p-1 already has an active ticket or session".into())
    );
    let view = tickets::get(&stack.store, &stack.clock, &"p-1".into(), &"t-2".into())
        .await
        .unwrap();
    assert_eq!(view.status, TicketStatus::Failed);
    assert_eq!(
        view.reason.as_deref(),
        Some("player p-1 already has an active ticket or session")
    );
    assert_eq!(
        stack.ticket("t-1").await.value.ticket.status,
        TicketStatus::Searching,
        "the first is untouched"
    );
}

#[tokio::test]
async fn an_invalid_ticket_fails_with_its_reason_and_is_acknowledged() {
    let stack = Stack::new();
    let mut message = solo("t-1", "p-1", 1500.0, START);
    message.request = json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "attributes": {"skil": 1500}}]});
    let Admitted::Failed(reason) = stack.admit(&message).await else {
        panic!("should fail")
    };
    assert_eq!(
        reason,
        "/players/0/attributes/skil: queue `ranked-1v1` has no attribute `skil` (it has `skill`)"
    );
    // The failed ticket holds no guard: the player can queue again at once.
    assert_eq!(
        stack.admit(&solo("t-2", "p-1", 1500.0, START)).await,
        Admitted::Searching(pool_1v1())
    );
}

#[tokio::test]
async fn a_ticket_naming_a_player_other_than_the_caller_needs_their_party_token() {
    let stack = Stack::new();
    let request = |token: Option<String>| {
        let mut member = json!({"id": "p-2"});
        if let Some(token) = token {
            member["partyToken"] = json!(token);
        }
        json!({"queue": "coop-4", "players": [{"id": "p-1"}, member]})
    };
    let message = |id: &str, token| TicketMessage {
        ticket_id: id.into(),
        player_id: "p-1".into(),
        received_at: START,
        request: request(token),
    };

    let Admitted::Failed(reason) = stack.admit(&message("t-1", None)).await else {
        panic!("no token must fail")
    };
    assert_eq!(reason, "/players/1: p-2 must present a party token to be queued by p-1");

    let someone_elses = stack
        .tokens
        .mint("p-3", Audience::Party, Role::Player, START, PARTY_TOKEN_TTL)
        .unwrap();
    let Admitted::Failed(reason) = stack.admit(&message("t-2", Some(someone_elses))).await else {
        panic!()
    };
    assert!(reason.contains("the party token is p-3's, not p-2's"), "{reason}");

    let api_token = stack
        .tokens
        .mint("p-2", Audience::Api, Role::Player, START, PARTY_TOKEN_TTL)
        .unwrap();
    let Admitted::Failed(reason) = stack.admit(&message("t-3", Some(api_token))).await else {
        panic!()
    };
    assert!(reason.contains("audience is not `party`"), "{reason}");

    let good = stack
        .tokens
        .mint("p-2", Audience::Party, Role::Player, START, PARTY_TOKEN_TTL)
        .unwrap();
    assert_eq!(
        stack.admit(&message("t-4", Some(good))).await,
        Admitted::Searching(PoolRef::new("coop-4", "all"))
    );
    let record = stack.ticket("t-4").await.value;
    let ids: Vec<_> = record.ticket.player_ids().cloned().collect();
    assert_eq!(ids, [PlayerId::from("p-1"), PlayerId::from("p-2")]);
}

#[tokio::test]
async fn a_ticket_whose_caller_is_not_on_it_fails() {
    let stack = Stack::new();
    let mut message = solo("t-1", "p-1", 1500.0, START);
    message.player_id = "p-9".into();
    let Admitted::Failed(reason) = stack.admit(&message).await else {
        panic!("should fail")
    };
    assert_eq!(reason, "the caller p-9 is not one of the ticket's players");
}

#[tokio::test]
async fn a_cancelled_ticket_leaves_the_pool_and_frees_its_player() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    let view = tickets::cancel(
        &stack.store,
        &stack.events,
        &stack.clock,
        &stack.settings,
        &"p-1".into(),
        &"t-1".into(),
    )
    .await
    .unwrap();
    let tickets::Cancel::Done(view) = view else {
        panic!("t-1 is admitted: {view:?}")
    };
    assert_eq!(view.status, TicketStatus::Cancelled);
    assert_eq!(view.reason.as_deref(), Some("cancelled by p-1"));
    // Cancelling again answers the same ticket.
    let again = tickets::cancel(
        &stack.store,
        &stack.events,
        &stack.clock,
        &stack.settings,
        &"p-1".into(),
        &"t-1".into(),
    )
    .await
    .unwrap();
    assert_eq!(again, tickets::Cancel::Done(view));

    stack.admit(&solo("t-2", "p-2", 1500.0, START)).await;
    let report = stack.round(&pool_1v1()).await;
    assert!(report.matches.is_empty(), "the cancelled ticket is not matched");
    assert_eq!(
        stack.admit(&solo("t-3", "p-1", 1500.0, START)).await,
        Admitted::Searching(pool_1v1())
    );
}

#[tokio::test]
async fn a_placing_ticket_cannot_be_cancelled_and_others_cannot_see_it() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    stack.admit(&solo("t-2", "p-2", 1500.0, START)).await;
    stack.round(&pool_1v1()).await;
    let err = tickets::cancel(
        &stack.store,
        &stack.events,
        &stack.clock,
        &stack.settings,
        &"p-1".into(),
        &"t-1".into(),
    )
    .await;
    assert!(
        matches!(err, Err(UseCaseError::Conflict(ref m)) if m.contains("PLACING")),
        "{err:?}"
    );
    let hidden = tickets::get(&stack.store, &stack.clock, &"p-3".into(), &"t-1".into()).await;
    assert!(matches!(hidden, Err(UseCaseError::NotFound(_))), "{hidden:?}");
    let unknown = tickets::get(&stack.store, &stack.clock, &"p-1".into(), &"t-404".into()).await;
    assert!(
        matches!(unknown, Err(UseCaseError::NotFound(ref m)) if m.contains("may still be queued")),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_ticket_cancelled_while_queued_is_cancelled_when_it_is_admitted() {
    let stack = Stack::new();
    let cancel = |player: &str, ticket: &str| {
        let (player, ticket) = (PlayerId::from(player), TicketId::from(ticket));
        let stack = &stack;
        async move {
            tickets::cancel(
                &stack.store,
                &stack.events,
                &stack.clock,
                &stack.settings,
                &player,
                &ticket,
            )
            .await
            .unwrap()
        }
    };
    // p-1 cancels t-1 before it is admitted; p-9 "cancels" p-2's t-2, which is not theirs.
    assert_eq!(cancel("p-1", "t-1").await, tickets::Cancel::WhenAdmitted);
    assert_eq!(cancel("p-9", "t-2").await, tickets::Cancel::WhenAdmitted);

    assert_eq!(
        stack.admit(&solo("t-1", "p-1", 1500.0, START)).await,
        Admitted::Cancelled
    );
    let view = tickets::get(&stack.store, &stack.clock, &"p-1".into(), &"t-1".into())
        .await
        .unwrap();
    assert_eq!(view.status, TicketStatus::Cancelled);
    assert_eq!(view.reason.as_deref(), Some("cancelled by p-1 before it was admitted"));
    // Only its caller cancels a ticket: t-2 is admitted.
    assert_eq!(
        stack.admit(&solo("t-2", "p-2", 1500.0, START)).await,
        Admitted::Searching(pool_1v1())
    );
    // p-1 was never held: their next ticket is admitted, and a second delivery of t-1 changes nothing.
    assert_eq!(
        stack.admit(&solo("t-3", "p-1", 1500.0, START)).await,
        Admitted::Searching(pool_1v1())
    );
    assert_eq!(
        stack.admit(&solo("t-1", "p-1", 1500.0, START)).await,
        Admitted::Duplicate
    );

    // A stranger's cancel after the owner's does not undo it: each caller's is kept apart.
    assert_eq!(cancel("p-4", "t-4").await, tickets::Cancel::WhenAdmitted);
    assert_eq!(cancel("p-9", "t-4").await, tickets::Cancel::WhenAdmitted);
    assert_eq!(
        stack.admit(&solo("t-4", "p-4", 1500.0, START)).await,
        Admitted::Cancelled
    );
    // A party member's cancel counts before admission as after: the party's ticket is cancelled.
    assert_eq!(cancel("p-6", "t-5").await, tickets::Cancel::WhenAdmitted);
    let party = TicketMessage {
        ticket_id: "t-5".into(),
        player_id: "p-5".into(),
        received_at: START,
        request: json!({"queue": "coop-4", "players": [{"id": "p-5"}, {"id": "p-6", "partyToken": "unread"}]}),
    };
    assert_eq!(stack.admit(&party).await, Admitted::Cancelled);
    let view = tickets::get(&stack.store, &stack.clock, &"p-5".into(), &"t-5".into())
        .await
        .unwrap();
    assert_eq!(view.reason.as_deref(), Some("cancelled by p-6 before it was admitted"));
}

#[tokio::test]
async fn a_ticket_of_a_queue_no_longer_served_is_failed_by_the_sweeper() {
    // GIVEN a ticket searching in ranked-1v1
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    // WHEN the service runs again without ranked-1v1, and the sweeper passes after coop-4's timeout
    let served = Queues::new([rule_set("coop-4")]);
    let sweeper = Sweeper {
        store: &stack.store,
        queue: &stack.queue,
        workflows: &stack.workflows,
        fleet: &common::NoFleet,
        events: &stack.events,
        clock: &stack.clock,
        queues: &served,
        settings: &stack.settings,
    };
    let early = sweeper.sweep("early").await.unwrap();
    assert!(early.orphaned.is_empty(), "younger than every timeout: {early:?}");
    let timeout = served.timeouts().min().unwrap();
    stack.clock.advance(timeout);
    let report = sweeper.sweep("late").await.unwrap();
    // THEN it is FAILED with the reason, and its player free again
    assert_eq!(report.orphaned, [TicketId::from("t-1")], "{report:?}");
    let ticket = stack.ticket("t-1").await.value.ticket;
    assert_eq!(ticket.status, TicketStatus::Failed);
    assert_eq!(ticket.reason.as_deref(), Some("queue `ranked-1v1` is no longer served"));
    assert!(
        stack
            .store
            .get(&items::player_guard_key(&"p-1".into()))
            .await
            .unwrap()
            .is_none(),
        "p-1 is still held"
    );
}

#[tokio::test]
async fn a_lonely_ticket_times_out_on_virtual_time_and_its_player_is_freed() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    let first = stack.round(&pool_1v1()).await;
    assert_eq!(first.remaining, 1);
    assert!(first.next_tick.is_some(), "the next expansion step is scheduled");

    stack.clock.advance(Duration::from_secs(121));
    let report = stack.round(&pool_1v1()).await;
    assert_eq!(report.timed_out, [TicketId::from("t-1")]);
    let t = stack.ticket("t-1").await.value.ticket;
    assert_eq!(t.status, TicketStatus::TimedOut);
    assert_eq!(t.reason.as_deref(), Some("no match found within 120 s (waited 121 s)"));
    assert_eq!(
        stack.admit(&solo("t-2", "p-1", 1500.0, stack.clock_now())).await,
        Admitted::Searching(pool_1v1())
    );
}

#[tokio::test]
async fn expansions_let_far_apart_players_meet_once_they_have_waited() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    stack.admit(&solo("t-2", "p-2", 1750.0, START)).await;
    assert!(
        stack.round(&pool_1v1()).await.matches.is_empty(),
        "250 apart: too far at first"
    );
    // ranked-1v1 widens maxDistance to 400 after 30 s.
    stack.clock.advance(Duration::from_secs(31));
    assert_eq!(stack.round(&pool_1v1()).await.matches.len(), 1);
}

#[tokio::test]
async fn a_busy_lease_leaves_the_round_to_its_holder_with_a_tick_due_within_the_window() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    let lease = items::take_lease(&pool_1v1(), "someone-else", START, Duration::from_secs(30)).unwrap();
    let queuematch_core::ports::store::Write::Put { item, condition } = lease else {
        panic!("a put")
    };
    stack.store.put(item, condition).await.unwrap();

    let report = stack.round(&pool_1v1()).await;
    assert!(report.lease_busy);
    assert_eq!(report.next_tick, Some(START.plus(Duration::from_secs(1))));
    let depth = stack.queue.depth().await.unwrap();
    assert_eq!(depth.delayed, 1, "{depth:?}");
    // A second busy round schedules no second tick: one is due within the window already.
    stack.round(&pool_1v1()).await;
    assert_eq!(stack.queue.depth().await.unwrap().delayed, 1);

    stack.clock.advance(Duration::from_secs(1));
    let tick = stack.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(tick.len(), 1);
    assert!(matches!(Message::parse(&tick[0].body), Ok(Message::PoolTick(ref t)) if t.queue == "ranked-1v1"));
}

#[tokio::test]
async fn a_lease_whose_holder_died_expires_and_the_pool_moves_again() {
    let stack = Stack::new();
    stack.admit(&solo("t-1", "p-1", 1500.0, START)).await;
    stack.admit(&solo("t-2", "p-2", 1500.0, START)).await;
    let lease = items::take_lease(&pool_1v1(), "crashed", START, Duration::from_secs(30)).unwrap();
    let queuematch_core::ports::store::Write::Put { item, condition } = lease else {
        panic!("a put")
    };
    stack.store.put(item, condition).await.unwrap();
    assert!(stack.round(&pool_1v1()).await.lease_busy);
    stack.clock.advance(Duration::from_secs(31));
    assert_eq!(stack.round(&pool_1v1()).await.matches.len(), 1);
    assert!(
        stack.store.get(&pool_1v1().lease_key()).await.unwrap().is_none(),
        "the lease is given up"
    );
}

impl Stack {
    fn clock_now(&self) -> Timestamp {
        use queuematch_core::ports::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn with_one_region_served_tickets_need_no_latencies() {
    let without_latencies = |ticket: &str, player: &str| TicketMessage {
        request: json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": 1500}}]}),
        ..solo(ticket, player, 1500.0, START)
    };
    // Several regions: a ticket with no latencies cannot meet the latency rule anywhere.
    let stack = Stack::new();
    stack.admit(&without_latencies("t-1", "p-1")).await;
    stack.admit(&without_latencies("t-2", "p-2")).await;
    assert!(stack.round(&pool_1v1()).await.matches.is_empty());

    // One region served: the players are taken to be next to it.
    let mut stack = Stack::new();
    stack.settings.single_region = Some("local".into());
    stack.admit(&without_latencies("t-1", "p-1")).await;
    stack.admit(&without_latencies("t-2", "p-2")).await;
    let report = stack.round(&pool_1v1()).await;
    assert_eq!(report.matches.len(), 1);
    assert_eq!(report.matches[0].region.as_deref(), Some("local"));
    assert!(
        stack.ticket("t-1").await.value.ticket.players[0].latencies.is_empty(),
        "the stored ticket is as sent"
    );
}
