//! `session-placement` end to end on the local adapters: tickets admitted and matched by the matcher
//! handler, the workflow run by the embedded engine on virtual time with its Lambda tasks dispatched
//! in-process to the workflow-tasks handler, and the players reading where to connect.
//!
//! The fleet here is a small in-test implementation of the port, so that readiness and capacity are
//! the test's to choose; the process fleet has its own contract suite.

use aws_lambda_events::sqs::SqsEvent;
use queuematch_asl::{Clock, HistoryEvent};
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::{player_token, SessionSecret};
use queuematch_core::ids::{MatchId, PlayerId, SessionId, TicketId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::items::{self, GuardHolder, SessionRecord, TimelineEntry, Versioned};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock as _, Fleet, PortError, Store, TicketQueue, Workflows};
use queuematch_core::usecases::placement::session_id_for;
use queuematch_core::usecases::tickets;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::{DomainEvent, RuleSet, SessionStatus, TicketStatus, Timestamp};
use queuematch_handlers::{matcher, Service};
use queuematch_local::events::Delivery;
use queuematch_local::workflows::{workflow_tasks_arn, ExecutionRecord, ExecutionStatus};
use queuematch_local::{
    EventBus, LocalWorkflows, ManualClock, MemoryQueue, MemoryStore, QueueConfig, ServiceTasks, WorkflowsConfig,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKFLOW: &str = "session-placement";

/// A fleet whose placements become ready after `polls_to_ready` polls, or that has no server at all.
#[derive(Debug)]
struct TestFleet {
    /// `None`: every placement is `PlacementUnavailable`.
    polls_to_ready: Option<u32>,
    calls: Mutex<FleetCalls>,
}

#[derive(Debug, Default, Clone)]
struct FleetCalls {
    places: u32,
    polls: u32,
    released: Vec<PlacementId>,
    /// The secrets handed over, by session: only the server should learn one.
    secrets: Vec<(SessionId, SessionSecret)>,
}

impl TestFleet {
    fn new(polls_to_ready: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            polls_to_ready,
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> FleetCalls {
        self.calls.lock().unwrap_or_else(|e| panic!("{e}")).clone()
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            address: "127.0.0.1".into(),
            port: 7777,
        }
    }
}

#[async_trait::async_trait]
impl Fleet for TestFleet {
    async fn place(&self, session: &SessionId, _: &Match, secret: &SessionSecret) -> Result<Placement, PortError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| panic!("{e}"));
        calls.places += 1;
        let Some(polls) = self.polls_to_ready else {
            return Err(PortError::PlacementUnavailable("fleet is full".into()));
        };
        calls.secrets.push((session.clone(), secret.clone()));
        let placement = PlacementId(format!("pl-{session}"));
        Ok(if polls == 0 {
            Placement::Ready {
                placement,
                endpoint: Self::endpoint(),
            }
        } else {
            Placement::Pending { placement }
        })
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| panic!("{e}"));
        calls.polls += 1;
        let placement = placement.clone();
        Ok(match self.polls_to_ready {
            Some(polls) if calls.polls >= polls => Placement::Ready {
                placement,
                endpoint: Self::endpoint(),
            },
            _ => Placement::Pending { placement },
        })
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| panic!("{e}"));
        calls.released.push(placement.clone());
        Ok(())
    }
}

type TestService = Service<MemoryStore, MemoryQueue, Arc<LocalWorkflows>, EventBus, Arc<ManualClock>, DevTokens>;

struct Stack {
    service: Arc<TestService>,
    workflows: Arc<LocalWorkflows>,
    fleet: Arc<TestFleet>,
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn rule_set(name: &str) -> RuleSet {
    let path = repo().join(format!("examples/rulesets/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// The local stack as `queuematch dev` wires it, on a manual domain clock and virtual engine time.
fn stack(fleet: Arc<TestFleet>) -> Stack {
    let clock = Arc::new(ManualClock::default());
    let config = WorkflowsConfig {
        clock: Clock::virtual_from_now(),
        seed: Some(7),
    };
    let workflows = Arc::new(
        LocalWorkflows::load(&repo().join("workflows"), config).unwrap_or_else(|e| panic!("loading workflows: {e}")),
    );
    let service = Arc::new(Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.as_ref().clone(), QueueConfig::default()),
        workflows: workflows.clone(),
        events: EventBus::new(256),
        clock,
        party_tokens: DevTokens::new(b"placement test secret"),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1")])),
        settings: Arc::new(Settings::default()),
    });
    workflows
        .connect(Arc::new(ServiceTasks::new(&service, fleet.clone())))
        .unwrap_or_else(|e| panic!("{e}"));
    Stack {
        service,
        workflows,
        fleet,
    }
}

/// An SQS batch of solo tickets `(ticket, player, skill)`, received a second ago.
fn tickets_batch(stack: &Stack, tickets: &[(&str, &str, u32)]) -> SqsEvent {
    let received = stack.service.clock.now().as_millis().saturating_sub(1_000);
    let records: Vec<Value> = tickets
        .iter()
        .map(|(ticket, player, skill)| {
            let body = json!({
                "kind": "ticket", "ticketId": ticket, "playerId": player, "receivedAt": received,
                "request": {"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}, "latencies": {"local": 5}}]}
            });
            json!({"messageId": format!("msg-{ticket}"), "body": body.to_string(), "eventSource": "aws:sqs"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap_or_else(|e| panic!("{e}"))
}

/// Admits `tickets` and runs their round; the one match formed, and its placement execution.
async fn matched(stack: &Stack, tickets: &[(&str, &str, u32)]) -> (MatchId, ExecutionId) {
    let outcome = matcher::handle(&stack.service, tickets_batch(stack, tickets), "test").await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{outcome:#?}");
    let matches: Vec<&Match> = outcome.rounds.iter().flat_map(|(_, r)| &r.matches).collect();
    assert_eq!(matches.len(), 1, "{outcome:#?}");
    let executions = stack.workflows.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].definition, WORKFLOW);
    (matches[0].id.clone(), executions[0].id.clone())
}

async fn finished(stack: &Stack, id: &ExecutionId) -> ExecutionRecord {
    stack
        .workflows
        .finished(id)
        .await
        .unwrap_or_else(|| panic!("no execution {id}"))
}

async fn session(stack: &Stack, matched: &MatchId) -> SessionRecord {
    let key = items::session_key(&session_id_for(matched));
    let stored = stack
        .service
        .store
        .get(&key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no session for {matched}"));
    let record: Versioned<SessionRecord> = items::read(&stored).unwrap_or_else(|e| panic!("{e}"));
    record.value
}

async fn timeline(stack: &Stack, session: &SessionId) -> Vec<TimelineEntry> {
    let query = Query::new(Index::Table, format!("SESSION#{session}"), 100).with_prefix(items::TIMELINE_PREFIX);
    let page = stack.service.store.query(query).await.unwrap_or_else(|e| panic!("{e}"));
    page.items
        .iter()
        .map(|stored| {
            items::read::<TimelineEntry>(stored)
                .unwrap_or_else(|e| panic!("{e}"))
                .value
        })
        .collect()
}

async fn guard(stack: &Stack, player: &str) -> Option<GuardHolder> {
    let stored = stack
        .service
        .store
        .get(&items::player_guard_key(&player.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))?;
    Some(
        items::read::<GuardHolder>(&stored)
            .unwrap_or_else(|e| panic!("{e}"))
            .value,
    )
}

/// The task payloads the engine dispatched, in order, with when each was scheduled.
fn dispatched(history: &[HistoryEvent]) -> Vec<(String, i64, Value)> {
    history
        .iter()
        .filter(|e| e.kind == "TaskScheduled")
        .map(|e| {
            let details = e.details.as_ref().map(|(_, d)| d.clone()).unwrap_or(Value::Null);
            let parameters: Value = details["parameters"]
                .as_str()
                .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or(Value::Null);
            let task = parameters["Payload"]["task"].as_str().unwrap_or_default().to_owned();
            (task, e.timestamp.timestamp_millis(), parameters)
        })
        .collect()
}

async fn drain(subscription: &mut queuematch_local::events::Subscription) -> Vec<DomainEvent> {
    let mut events = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_millis(1), subscription.next()).await {
        if let Delivery::Event(event) = delivery {
            events.push(event);
        }
    }
    events
}

#[tokio::test(start_paused = true)]
async fn two_tickets_are_placed_and_each_player_reads_their_own_connection() {
    // GIVEN a fleet whose servers are ready on the second poll, and a watcher of p-1's events
    let stack = stack(TestFleet::new(Some(2)));
    let mut p1_events = stack.service.events.subscribe_player("p-1".into());

    // WHEN two close players queue and are matched
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let record = finished(&stack, &execution).await;

    // THEN the placement ran to its end
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#?}",
        record.history_json()
    );
    let tasks: Vec<String> = dispatched(&record.history).into_iter().map(|(task, ..)| task).collect();
    assert_eq!(tasks, ["createSession", "place", "poll", "poll", "activate"]);
    for (_, _, parameters) in dispatched(&record.history) {
        assert_eq!(parameters["FunctionName"], workflow_tasks_arn());
        assert_eq!(parameters["Payload"]["execution"]["id"], execution.0);
    }

    // AND the session is ACTIVE, its timeline naming the execution and each state
    let session = session(&stack, &match_id).await;
    assert_eq!(session.status, SessionStatus::Active);
    assert_eq!(session.endpoint, Some(TestFleet::endpoint()));
    let entries = timeline(&stack, &session.session_id).await;
    let steps: Vec<(&str, SessionStatus)> = entries.iter().map(|e| (e.state.as_str(), e.status)).collect();
    assert_eq!(
        steps,
        [
            ("CreateSession", SessionStatus::Placing),
            ("Place", SessionStatus::Placing),
            ("Poll", SessionStatus::Placing),
            ("Activate", SessionStatus::Active),
        ]
    );
    assert!(entries.iter().all(|e| e.execution_id == execution.0));

    // AND the server got the session's secret, and nothing in the workflow's history holds it
    let calls = stack.fleet.calls();
    assert_eq!(calls.secrets, [(session.session_id.clone(), session.secret.clone())]);
    assert!(!record.history_json().to_string().contains(session.secret.expose()));

    // AND each player reads a COMPLETED ticket with their own token, which the server accepts
    let now = stack.service.clock.now();
    let mut tokens = Vec::new();
    for (ticket, player) in [("t-1", "p-1"), ("t-2", "p-2")] {
        let view = tickets::get(
            &stack.service.store,
            &stack.service.clock,
            &PlayerId::from(player),
            &TicketId::from(ticket),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view.status, TicketStatus::Completed);
        assert_eq!(view.reason.as_deref(), Some("placed on 127.0.0.1:7777"));
        let connection = view.connection.unwrap_or_else(|| panic!("{ticket} has no connection"));
        assert_eq!((connection.address.as_str(), connection.port), ("127.0.0.1", 7777));
        let claims = player_token::verify(&session.secret, &session.session_id, &connection.player_token, now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.player_id, PlayerId::from(player));
        assert_eq!(
            guard(&stack, player).await,
            Some(GuardHolder::Session(session.session_id.clone()))
        );
        tokens.push(connection.player_token);
    }
    assert_ne!(tokens[0], tokens[1]);

    // AND p-1 was told of the match, the placement and the session's start
    let events = drain(&mut p1_events).await;
    let names: Vec<&str> = events.iter().map(DomainEvent::name).collect();
    for expected in [
        "MatchmakingSearching",
        "PotentialMatchCreated",
        "MatchmakingSucceeded",
        "SessionStatusChanged",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_start_changes_nothing_and_another_input_is_a_conflict() {
    let stack = stack(TestFleet::new(Some(1)));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    finished(&stack, &execution).await;
    let session_before = session(&stack, &match_id).await;
    let timeline_before = timeline(&stack, &session_before.session_id).await;

    // WHEN the round's start is delivered again (the matcher crashed after starting it)
    let input = json!({"matchId": match_id, "queue": "ranked-1v1"});
    let again = stack
        .service
        .workflows
        .start(WORKFLOW, match_id.as_str(), input)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // THEN it is the same execution, nothing ran again, and nothing changed
    assert_eq!(again, execution);
    assert_eq!(stack.workflows.executions().len(), 1);
    assert_eq!(stack.fleet.calls().places, 1);
    assert_eq!(session(&stack, &match_id).await, session_before);
    assert_eq!(timeline(&stack, &session_before.session_id).await, timeline_before);

    // AND the same name with another input is refused
    let other = json!({"matchId": "m-other", "queue": "ranked-1v1"});
    let conflict = stack.service.workflows.start(WORKFLOW, match_id.as_str(), other).await;
    assert!(matches!(conflict, Err(PortError::Conflict(_))), "{conflict:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_fleet_is_retried_with_backoff_then_the_tickets_go_back_to_their_pool() {
    // GIVEN a fleet with no server to give
    let stack = stack(TestFleet::new(None));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let record = finished(&stack, &execution).await;

    // THEN the execution failed with the fleet's error, after Place was retried with backoff
    let ExecutionStatus::Failed { error, .. } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "PlacementUnavailable");
    let dispatched = dispatched(&record.history);
    let places: Vec<i64> = dispatched
        .iter()
        .filter(|(task, ..)| task == "place")
        .map(|(_, at, _)| *at)
        .collect();
    assert_eq!(places.len(), 5, "one attempt and MaxAttempts 4 retries");
    assert_eq!(stack.fleet.calls().places, 5);
    // Full jitter: each wait is random, up to IntervalSeconds 2 × BackoffRate 2 ^ retry, at most
    // MaxDelaySeconds 16; time did pass between the attempts.
    for (retry, pair) in places.windows(2).enumerate() {
        let cap_ms = (2_000i64 << retry).min(16_000);
        let waited = pair[1] - pair[0];
        assert!((0..=cap_ms).contains(&waited), "retry {retry} waited {waited} ms");
    }
    assert!(places[4] > places[0], "the retries waited: {places:?}");
    let last = dispatched.last().map(|(task, ..)| task.as_str());
    assert_eq!(last, Some("fail"), "the Catch ran ReleaseAndRequeue");

    // AND the session is FAILED with its cause, the step recorded on its timeline
    let session = session(&stack, &match_id).await;
    assert_eq!(session.status, SessionStatus::Failed);
    assert_eq!(
        session.reason.as_deref(),
        Some("PlacementUnavailable: placement unavailable: fleet is full")
    );
    let entries = timeline(&stack, &session.session_id).await;
    let steps: Vec<(&str, SessionStatus)> = entries.iter().map(|e| (e.state.as_str(), e.status)).collect();
    assert_eq!(
        steps,
        [
            ("CreateSession", SessionStatus::Placing),
            ("ReleaseAndRequeue", SessionStatus::Failed)
        ]
    );

    // AND both tickets are SEARCHING again, as old as they were, their players still guarded by them
    for (ticket, player) in [("t-1", "p-1"), ("t-2", "p-2")] {
        let stored = stack
            .service
            .store
            .get(&items::ticket_key(&ticket.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {ticket}"));
        let record = items::read::<items::TicketRecord>(&stored)
            .unwrap_or_else(|e| panic!("{e}"))
            .value;
        assert_eq!(record.ticket.status, TicketStatus::Searching);
        assert_eq!(record.match_id, None);
        assert_eq!(
            record.ticket.created_at,
            Timestamp(stack.service.clock.now().as_millis() - 1_000)
        );
        assert!(stored.item.pool.is_some(), "{ticket} is back in the pool index");
        assert_eq!(guard(&stack, player).await, Some(GuardHolder::Ticket(ticket.into())));
    }

    // AND the pool tick left behind runs a round that matches them again, first in line
    stack.service.clock.advance(Duration::from_secs(5));
    let ticks = stack
        .service
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ticks.len(), 1, "{ticks:?}");
    let batch = json!({"Records": [{"messageId": ticks[0].message_id, "body": ticks[0].body}]});
    let batch: SqsEvent = serde_json::from_value(batch).unwrap_or_else(|e| panic!("{e}"));
    let outcome = matcher::handle(&stack.service, batch, "test").await;
    let rematched: Vec<&Match> = outcome.rounds.iter().flat_map(|(_, r)| &r.matches).collect();
    assert_eq!(rematched.len(), 1, "{outcome:#?}");
    assert_ne!(rematched[0].id, match_id);
    assert_eq!(stack.workflows.executions().len(), 2);
}
