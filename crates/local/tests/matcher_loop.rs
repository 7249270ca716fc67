//! The matcher loop of `queuematch dev` under time and delivery faults, on virtual time: the real
//! loop receiving SQS-shaped batches from the embedded queue and handing them to the matcher
//! handler, on a domain clock that follows tokio's paused clock, so a minute passes in no time.
//!
//! - Time: once tickets have arrived, `pool-tick` messages alone carry their pool through its
//!   expansions and timeouts; a pool whose lease holder died moves again once the lease expires.
//! - Delivery faults: a duplicate delivery changes nothing; a body that cannot be parsed goes to
//!   the dead-letter queue after its receives while the rest of its batch goes on; a ticket that
//!   reads but is invalid is FAILED with its reason and acknowledged.

use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::ports::store::items::{self, PoolRef, TicketRecord, Versioned};
use queuematch_core::ports::store::Write;
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::usecases::messages::{Message, TicketMessage};
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::{DomainEvent, RuleSet, TicketStatus, Timestamp};
use queuematch_handlers::Service;
use queuematch_local::dev::{self, LocalService};
use queuematch_local::events::Delivery;
use queuematch_local::{EventBus, MemoryQueue, MemoryStore, QueueConfig, TokioClock};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const START: Timestamp = Timestamp(1_800_000_000_000);

/// Records the placements started, with when.
#[derive(Debug, Default)]
struct StartedExecutions(Mutex<Vec<(String, Timestamp)>>);

struct Loop {
    service: Arc<LocalService>,
    clock: TokioClock,
    starts: Arc<StartedExecutions>,
    _stop: oneshot::Sender<()>,
}

/// The workflows port of these tests, remembering when each start came.
#[derive(Debug)]
struct Recording {
    starts: Arc<StartedExecutions>,
    clock: TokioClock,
}

#[async_trait::async_trait]
impl Workflows for Recording {
    async fn start(&self, definition: &str, name: &str, _: Value) -> Result<ExecutionId, PortError> {
        let mut starts = self.starts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !starts.iter().any(|(n, _)| n == name) {
            starts.push((name.to_owned(), self.clock.now()));
        }
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

fn rule_set(name: &str) -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// The matcher loop on the local ports, running until the returned value is dropped.
fn start() -> Loop {
    let clock = TokioClock::new(START);
    let starts = Arc::new(StartedExecutions::default());
    let service: Arc<LocalService> = Arc::new(Service {
        store: Arc::new(MemoryStore::new(clock)) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(clock, QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: Arc::new(Recording {
            starts: starts.clone(),
            clock,
        }) as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(1024)),
        clock: Arc::new(clock) as Arc<dyn Clock>,
        party_tokens: DevTokens::new(b"matcher loop test secret"),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1")])),
        settings: Arc::new(Settings::default()),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dev::run_matcher(service.clone(), async {
        let _ = stopped.await;
    }));
    Loop {
        service,
        clock,
        starts,
        _stop: stop,
    }
}

fn ticket_body(ticket: &str, player: &str, skill: u32, at: Timestamp) -> String {
    Message::Ticket(TicketMessage {
        ticket_id: ticket.into(),
        player_id: player.into(),
        received_at: at,
        request: json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}, "latencies": {"local": 5}}]}),
    })
    .to_body()
}

impl Loop {
    async fn send(&self, body: String) {
        self.service
            .queue
            .send(body, Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn ticket(&self, id: &str) -> Option<Versioned<TicketRecord>> {
        let stored = self
            .service
            .store
            .get(&items::ticket_key(&id.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))?;
        Some(items::read(&stored).unwrap_or_else(|e| panic!("{e}")))
    }

    async fn status(&self, id: &str) -> Option<TicketStatus> {
        self.ticket(id).await.map(|t| t.value.ticket.status)
    }

    /// Lets `by` pass on the paused clock, the loop running meanwhile.
    async fn wait(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn starts(&self) -> Vec<(String, Timestamp)> {
        self.starts
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[tokio::test(start_paused = true)]
async fn ticks_alone_carry_a_pool_through_its_expansions_and_timeouts() {
    let stack = start();
    // GIVEN three tickets that arrive once, and nothing after them: two 350 apart (too far until
    // ranked-1v1 widens maxDistance to 400 at 30 s), and one no expansion brings near anyone
    for (ticket, player, skill) in [("t-1", "p-1", 1500), ("t-2", "p-2", 1850), ("t-3", "p-3", 3000)] {
        stack.send(ticket_body(ticket, player, skill, START)).await;
    }

    // WHEN time passes: before the 30 s step, nothing is matched
    stack.wait(Duration::from_secs(25)).await;
    assert_eq!(stack.status("t-1").await, Some(TicketStatus::Searching));
    assert!(stack.starts().is_empty());

    // THEN a tick due at the step runs the round that matches the pair
    stack.wait(Duration::from_secs(10)).await;
    let starts = stack.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let waited = starts[0].1.since(START);
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(32)).contains(&waited),
        "matched {waited:?} after arriving"
    );
    for ticket in ["t-1", "t-2"] {
        assert_eq!(stack.status(ticket).await, Some(TicketStatus::Placing), "{ticket}");
    }

    // AND the lonely ticket times out at 120 s, on a tick too, its player freed
    stack.wait(Duration::from_secs(80)).await;
    assert_eq!(stack.status("t-3").await, Some(TicketStatus::Searching), "at 115 s");
    stack.wait(Duration::from_secs(10)).await;
    let t3 = stack.ticket("t-3").await.unwrap_or_else(|| panic!("no t-3"));
    assert_eq!(t3.value.ticket.status, TicketStatus::TimedOut);
    let reason = t3.value.ticket.reason.unwrap_or_default();
    assert!(reason.starts_with("no match found within 120 s (waited 12"), "{reason}");
    let guard = stack
        .service
        .store
        .get(&items::player_guard_key(&"p-3".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(guard.is_none());

    // AND with the pool empty, the chain of ticks ends: nothing is left in the queue
    let depth = stack.service.queue.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((depth.visible, depth.delayed, depth.in_flight), (0, 0, 0), "{depth:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pool_whose_lease_holder_died_moves_again_once_the_lease_expires() {
    let stack = start();
    // GIVEN a matcher that took the pool's lease and died holding it
    let pool = PoolRef::new("ranked-1v1", "all");
    let Write::Put { item, condition } =
        items::take_lease(&pool, "dead-matcher", stack.clock.now(), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("a lease is a put")
    };
    stack
        .service
        .store
        .put(item, condition)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // WHEN two players who match at once arrive
    stack.send(ticket_body("t-1", "p-1", 1500, START)).await;
    stack.send(ticket_body("t-2", "p-2", 1500, START)).await;

    // THEN while the dead holder's lease lasts, they wait, kept in sight by ticks
    stack.wait(Duration::from_secs(20)).await;
    assert!(stack.starts().is_empty());
    assert_eq!(stack.status("t-1").await, Some(TicketStatus::Searching));
    let depth = stack.service.queue.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        depth.delayed + depth.visible + depth.in_flight >= 1,
        "a tick is due: {depth:?}"
    );

    // AND once it expires (30 s), the next tick's round takes the lease and matches them
    stack.wait(Duration::from_secs(15)).await;
    let starts = stack.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let waited = starts[0].1.since(START);
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(33)).contains(&waited),
        "matched {waited:?} after arriving"
    );
    let lease = stack
        .service
        .store
        .get(&pool.lease_key())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lease.is_none(), "the new holder gave the lease up: {lease:?}");
}

#[tokio::test(start_paused = true)]
async fn a_batch_with_a_duplicate_an_unreadable_and_an_invalid_message_goes_on_with_the_rest() {
    let stack = start();
    let mut p1 = stack.service.events.subscribe_player("p-1".into());
    // GIVEN one batch: a ticket, the same ticket delivered again, a body that is no queue message,
    // and a ticket that reads but is invalid (a skill that is not a number), then the partner of
    // the first ticket
    stack.send(ticket_body("t-1", "p-1", 1500, START)).await;
    stack.send(ticket_body("t-1", "p-1", 1500, START)).await;
    stack.send("{\"kind\": \"ticket\", \"ticketId\": ".to_owned()).await;
    let invalid = Message::Ticket(TicketMessage {
        ticket_id: "t-bad".into(),
        player_id: "p-9".into(),
        received_at: START,
        request: json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"skill": "high"}}]}),
    });
    stack.send(invalid.to_body()).await;
    stack.send(ticket_body("t-2", "p-2", 1500, START)).await;

    // WHEN the loop has had its batches
    stack.wait(Duration::from_secs(3)).await;

    // THEN the valid tickets were admitted once and matched; the duplicate changed nothing
    let starts = stack.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let t1 = stack.ticket("t-1").await.unwrap_or_else(|| panic!("no t-1"));
    assert_eq!(t1.value.ticket.status, TicketStatus::Placing);
    let mut searching = 0;
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_millis(1), p1.next()).await {
        if let Delivery::Event(DomainEvent::MatchmakingSearching { .. }) = delivery {
            searching += 1;
        }
    }
    assert_eq!(searching, 1, "p-1 was admitted once");

    // AND the invalid ticket is FAILED with the reason, at its field, and was acknowledged
    let bad = stack.ticket("t-bad").await.unwrap_or_else(|| panic!("no t-bad"));
    assert_eq!(bad.value.ticket.status, TicketStatus::Failed);
    let reason = bad.value.ticket.reason.clone().unwrap_or_default();
    assert!(reason.contains("/players/0/attributes/skill"), "{reason}");

    // AND the unreadable body alone keeps coming back, until its five receives run out and it is
    // in the dead-letter queue, as SQS's redrive policy does
    let depth = stack.service.queue.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        depth.in_flight, 1,
        "only the unreadable message is unacknowledged: {depth:?}"
    );
    stack.wait(Duration::from_secs(5 * 31)).await;
    let dead = stack
        .service
        .queue
        .dead_letters(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, "{\"kind\": \"ticket\", \"ticketId\": ");
    assert_eq!(dead[0].receive_count, 5);
    let depth = stack.service.queue.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "{depth:?}");
    assert_eq!(
        stack.ticket("t-bad").await.map(|t| t.version),
        Some(bad.version),
        "FAILED stays"
    );
}
