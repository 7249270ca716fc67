//! `session-placement` end to end on the local adapters: tickets admitted and matched by the matcher
//! handler, the workflow run by the embedded engine on virtual time with its Lambda tasks dispatched
//! in-process to the workflow-tasks handler, and the players reading where to connect.
//!
//! The fleet here is a small in-test implementation of the port, so that readiness and capacity are
//! the test's to choose; the process fleet has its own contract suite.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use queuematch_asl::{Clock, HistoryEvent};
use queuematch_core::event::AcceptanceOutcome;
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::report;
use queuematch_core::identity::{player_token, SessionSecret};
use queuematch_core::ids::{MatchId, PlayerId, SessionId, TicketId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::items::{self, GuardHolder, SessionRecord, TimelineEntry, Versioned};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock as _, Fleet, PortError, Store, TicketQueue, Workflows};
use queuematch_core::ratings::{PlayerRating, RatingSystem};
use queuematch_core::usecases::admission::Admitted;
use queuematch_core::usecases::completion::{self, COMPLETION_WORKFLOW};
use queuematch_core::usecases::messages::Message;
use queuematch_core::usecases::placement::session_id_for;
use queuematch_core::usecases::reports::{Recorded, ReportError, Reports, SignedReport};
use queuematch_core::usecases::round::Rounds;
use queuematch_core::usecases::tickets;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::{AttributeValue, DomainEvent, RuleSet, SessionStatus, TicketStatus, Timestamp};
use queuematch_handlers::{matcher, players_api, sweeper, tickets_api, Service};
use queuematch_local::events::Delivery;
use queuematch_local::workflows::{workflow_tasks_arn, ExecutionRecord, ExecutionStatus};
use queuematch_local::{
    EventBus, LocalWorkflows, ManualClock, MemoryQueue, MemoryStore, QueueConfig, ServiceTasks, Timer, TokioClock,
    WorkflowsConfig,
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
    /// How many releases fail (as `Transient`) before one succeeds.
    failing_releases: u32,
    calls: Mutex<FleetCalls>,
}

#[derive(Debug, Default, Clone)]
struct FleetCalls {
    places: u32,
    polls: u32,
    released: Vec<PlacementId>,
    /// Releases that failed.
    release_failures: u32,
    /// The secrets handed over, by session: only the server should learn one.
    secrets: Vec<(SessionId, SessionSecret)>,
}

impl TestFleet {
    fn new(polls_to_ready: Option<u32>) -> Arc<Self> {
        Self::releasing_after(polls_to_ready, 0)
    }

    /// A fleet whose first `failing_releases` releases fail.
    fn releasing_after(polls_to_ready: Option<u32>, failing_releases: u32) -> Arc<Self> {
        Arc::new(Self {
            polls_to_ready,
            failing_releases,
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
        if calls.release_failures < self.failing_releases {
            calls.release_failures += 1;
            return Err(PortError::transient("the fleet's API is down"));
        }
        calls.released.push(placement.clone());
        Ok(())
    }
}

type TestService<C> = Service<MemoryStore, MemoryQueue, Arc<LocalWorkflows>, EventBus, Arc<C>, DevTokens>;

struct Stack<C> {
    service: Arc<TestService<C>>,
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

/// `ranked-1v1` with acceptance required, within `timeout_seconds`.
fn ranked_1v1_with_acceptance(timeout_seconds: u32) -> RuleSet {
    let path = repo().join("examples/rulesets/ranked-1v1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    json["queue"]["acceptance"] = json!({"required": true, "timeoutSeconds": timeout_seconds});
    RuleSet::from_json_str(&json.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// The local stack as `queuematch dev` wires it, on a manual domain clock and virtual engine time.
fn stack(fleet: Arc<TestFleet>) -> Stack<ManualClock> {
    stack_with(fleet, ManualClock::default(), rule_set("ranked-1v1"))
}

/// The local stack serving `rule_set` on domain clock `clock`.
fn stack_with<C: Timer + 'static>(fleet: Arc<TestFleet>, clock: C, rule_set: RuleSet) -> Stack<C> {
    let clock = Arc::new(clock);
    let config = WorkflowsConfig {
        clock: Clock::virtual_from_now(),
        seed: Some(7),
    };
    let workflows = Arc::new(
        LocalWorkflows::load(&repo().join("workflows"), config).unwrap_or_else(|e| panic!("loading workflows: {e}")),
    );
    let service = Arc::new(Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: workflows.clone(),
        events: EventBus::new(256),
        clock,
        party_tokens: DevTokens::new(b"placement test secret"),
        queues: Arc::new(Queues::new([rule_set])),
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
fn tickets_batch(stack: &Stack<impl Timer>, tickets: &[(&str, &str, u32)]) -> SqsEvent {
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
async fn matched(stack: &Stack<impl Timer>, tickets: &[(&str, &str, u32)]) -> (MatchId, ExecutionId) {
    let outcome = matcher::handle(&stack.service, tickets_batch(stack, tickets), "test").await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{outcome:#?}");
    let matches: Vec<&Match> = outcome.rounds.iter().flat_map(|(_, r)| &r.matches).collect();
    assert_eq!(matches.len(), 1, "{outcome:#?}");
    let executions = stack.workflows.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].definition, WORKFLOW);
    (matches[0].id.clone(), executions[0].id.clone())
}

async fn finished(stack: &Stack<impl Timer>, id: &ExecutionId) -> ExecutionRecord {
    stack
        .workflows
        .finished(id)
        .await
        .unwrap_or_else(|| panic!("no execution {id}"))
}

/// p-1 and p-2 (1500 and 1510) matched and placed on `fleet`: the stack, their match and its
/// ACTIVE session.
async fn active_duel(fleet: Arc<TestFleet>) -> (Stack<ManualClock>, MatchId, SessionRecord) {
    let stack = stack(fleet);
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    finished(&stack, &execution).await;
    let active = session(&stack, &match_id).await;
    (stack, match_id, active)
}

async fn session(stack: &Stack<impl Timer>, matched: &MatchId) -> SessionRecord {
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

async fn timeline(stack: &Stack<impl Timer>, session: &SessionId) -> Vec<TimelineEntry> {
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

async fn guard(stack: &Stack<impl Timer>, player: &str) -> Option<GuardHolder> {
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
    let input = json!({"matchId": match_id, "queue": "ranked-1v1", "acceptanceRequired": false});
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
    let other = json!({"matchId": "m-other", "queue": "ranked-1v1", "acceptanceRequired": false});
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

    // AND the session is FAILED with its cause; its timeline shows every attempt, then the Catch
    let session = session(&stack, &match_id).await;
    assert_eq!(session.status, SessionStatus::Failed);
    assert_eq!(
        session.reason.as_deref(),
        Some("PlacementUnavailable: placement unavailable: fleet is full")
    );
    let entries = timeline(&stack, &session.session_id).await;
    let steps: Vec<(&str, SessionStatus, &str)> = entries
        .iter()
        .map(|e| (e.state.as_str(), e.status, e.detail.as_deref().unwrap_or_default()))
        .collect();
    let attempt = |n: u32| format!("attempt {n} failed: PlacementUnavailable: placement unavailable: fleet is full");
    let (a1, a2, a3, a4, a5) = (attempt(1), attempt(2), attempt(3), attempt(4), attempt(5));
    assert_eq!(
        steps,
        [
            (
                "CreateSession",
                SessionStatus::Placing,
                format!("created for match {match_id}").as_str()
            ),
            ("Place", SessionStatus::Placing, a1.as_str()),
            ("Place", SessionStatus::Placing, a2.as_str()),
            ("Place", SessionStatus::Placing, a3.as_str()),
            ("Place", SessionStatus::Placing, a4.as_str()),
            ("Place", SessionStatus::Placing, a5.as_str()),
            (
                "ReleaseAndRequeue",
                SessionStatus::Failed,
                "PlacementUnavailable: placement unavailable: fleet is full"
            ),
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

// ---- acceptance --------------------------------------------------------------------------------

/// `POST /v1/tickets/{ticket}/acceptance` by `player`, as API Gateway hands it to the tickets-api
/// function after its Cognito authorizer: the status and the JSON body answered.
async fn answer(stack: &Stack<impl Timer>, player: &str, ticket: &str, body: &str) -> (i64, Value) {
    let event = json!({
        "resource": "/v1/tickets/{ticketId}/acceptance",
        "path": format!("/v1/tickets/{ticket}/acceptance"),
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "pathParameters": {"ticketId": ticket},
        "requestContext": {
            "accountId": "123456789012", "stage": "prod", "requestId": "r-1", "apiId": "a1b2c3d4e5",
            "resourcePath": "/v1/tickets/{ticketId}/acceptance", "httpMethod": "POST",
            "authorizer": {"claims": {"sub": player, "token_use": "id"}}
        },
        "body": body,
        "isBase64Encoded": false
    });
    let request: ApiGatewayProxyRequest = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
    let response = tickets_api::handle(&stack.service, request).await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
        other => panic!("no text body: {other:?}"),
    };
    (response.status_code, body)
}

async fn ticket_record(stack: &Stack<impl Timer>, ticket: &str) -> items::TicketRecord {
    let stored = stack
        .service
        .store
        .get(&items::ticket_key(&ticket.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no {ticket}"));
    items::read::<items::TicketRecord>(&stored)
        .unwrap_or_else(|e| panic!("{e}"))
        .value
}

fn acceptance_completed(events: &[DomainEvent]) -> Vec<(AcceptanceOutcome, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            DomainEvent::AcceptMatchCompleted { acceptance, reason, .. } => Some((*acceptance, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The states an execution entered, in order.
fn states_entered(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e.kind.ends_with("StateEntered"))
        .filter_map(|e| {
            e.details
                .as_ref()
                .and_then(|(_, d)| d["name"].as_str().map(str::to_owned))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_match_every_player_accepts_is_placed() {
    // GIVEN a queue that requires acceptance within 20 s, and a watcher of p-2's events
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(1)), clock, ranked_1v1_with_acceptance(20));
    let mut p2_events = stack.service.events.subscribe_player("p-2".into());

    // WHEN two players are matched, their tickets wait for acceptance
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    for ticket in ["t-1", "t-2"] {
        assert_eq!(
            ticket_record(&stack, ticket).await.ticket.status,
            TicketStatus::RequiresAcceptance
        );
    }

    // AND both accept, through the tickets-api function; p-1 says so twice (a retried request)
    let (status, view) = answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await;
    assert_eq!(
        (status, &view["status"], &view["acceptances"]),
        (200, &json!("REQUIRES_ACCEPTANCE"), &json!({"p-1": "ACCEPT"}))
    );
    let (again, _) = answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await;
    assert_eq!(again, 200);
    // Five seconds pass, in which the workflow polls and finds p-2 still to answer.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, _) = answer(&stack, "p-2", "t-2", r#"{"acceptanceType":"ACCEPT"}"#).await;
    assert_eq!(status, 200);
    let record = finished(&stack, &execution).await;

    // THEN the workflow polled acceptance until both had answered, then placed the match
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#?}",
        record.history_json()
    );
    let tasks: Vec<String> = dispatched(&record.history).into_iter().map(|(task, ..)| task).collect();
    let polls = tasks.iter().filter(|t| *t == "pollAcceptance").count();
    assert!(polls >= 2, "it waited for p-2: {tasks:?}");
    assert_eq!(
        tasks[polls..],
        ["createSession", "place", "poll", "activate"],
        "acceptance comes before the session: {tasks:?}"
    );
    let states = states_entered(&record.history);
    assert_eq!(states[..3], ["NeedsAcceptance", "WaitForAcceptance", "PollAcceptance"]);

    // AND both tickets are COMPLETED, their answers kept, the session ACTIVE
    for ticket in ["t-1", "t-2"] {
        let t = ticket_record(&stack, ticket).await;
        assert_eq!(t.ticket.status, TicketStatus::Completed, "{ticket}");
        assert!(t.all_accepted(), "{ticket}");
    }
    let session = session(&stack, &match_id).await;
    assert_eq!(session.status, SessionStatus::Active);

    // AND p-2 was told of each answer and of the acceptance's end
    let events = drain(&mut p2_events).await;
    let answers: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            DomainEvent::AcceptMatch {
                player_id, accepted, ..
            } => Some((player_id.to_string(), *accepted)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, [("p-1".to_owned(), true), ("p-2".to_owned(), true)]);
    assert_eq!(acceptance_completed(&events), [(AcceptanceOutcome::Accepted, None)]);
    let names: Vec<&str> = events.iter().map(DomainEvent::name).collect();
    assert!(names.contains(&"MatchmakingSucceeded"), "{names:?}");

    // AND an answer after the match was decided is refused: an answer is final
    let (late, problem) = answer(&stack, "p-2", "t-2", r#"{"acceptanceType": "REJECT"}"#).await;
    assert_eq!(late, 409, "{problem}");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_cancels_the_rejecting_ticket_and_requeues_the_other_at_the_front() {
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(1)), clock, ranked_1v1_with_acceptance(20));
    let mut p1_events = stack.service.events.subscribe_player("p-1".into());
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let created = ticket_record(&stack, "t-1").await.ticket.created_at;

    // WHEN p-1 accepts and p-2 rejects
    assert_eq!(
        answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await.0,
        200
    );
    let (status, view) = answer(&stack, "p-2", "t-2", r#"{"acceptanceType": "REJECT"}"#).await;
    assert_eq!((status, &view["acceptances"]["p-2"]), (200, &json!("REJECT")));
    let record = finished(&stack, &execution).await;

    // THEN the execution failed as MatchRejected, without creating a session or placing anything
    let ExecutionStatus::Failed { error, cause } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "MatchRejected");
    assert_eq!(
        cause.as_deref(),
        Some(format!("p-2 rejected match {match_id}").as_str())
    );
    let tasks: Vec<String> = dispatched(&record.history).into_iter().map(|(task, ..)| task).collect();
    assert_eq!(tasks, ["pollAcceptance", "fail"]);
    assert_eq!(stack.fleet.calls().places, 0);
    let no_session = stack
        .service
        .store
        .get(&items::session_key(&session_id_for(&match_id)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(no_session.is_none());

    // AND t-2 is CANCELLED with the reason, its player free; t-1 is SEARCHING again, as old as it was
    let rejected = ticket_record(&stack, "t-2").await;
    assert_eq!(rejected.ticket.status, TicketStatus::Cancelled);
    assert_eq!(rejected.ticket.reason, Some(format!("p-2 rejected match {match_id}")));
    assert_eq!(guard(&stack, "p-2").await, None);
    let requeued = ticket_record(&stack, "t-1").await;
    assert_eq!(requeued.ticket.status, TicketStatus::Searching);
    assert_eq!((requeued.match_id, requeued.acceptances.len()), (None, 0));
    assert_eq!(
        requeued.ticket.created_at, created,
        "it keeps its age, so it is first in line"
    );
    assert_eq!(guard(&stack, "p-1").await, Some(GuardHolder::Ticket("t-1".into())));

    // AND p-1 heard why the match fell through, and that they are searching again
    let events = drain(&mut p1_events).await;
    assert_eq!(
        acceptance_completed(&events),
        [(
            AcceptanceOutcome::Rejected,
            Some(format!("p-2 rejected match {match_id}"))
        )]
    );
    assert!(
        matches!(events.last(), Some(DomainEvent::MatchmakingSearching { .. })),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_acceptance_that_times_out_cancels_the_silent_and_requeues_who_accepted() {
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(1)), clock, ranked_1v1_with_acceptance(10));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;

    // WHEN only p-1 answers, and p-2 stays silent past the 10 s window
    assert_eq!(
        answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await.0,
        200
    );
    let record = finished(&stack, &execution).await;

    // THEN the workflow waited out the window on virtual time, then timed the acceptance out
    let ExecutionStatus::Failed { error, .. } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "AcceptanceTimedOut");
    let polls: Vec<i64> = dispatched(&record.history)
        .iter()
        .filter(|(task, ..)| task == "pollAcceptance")
        .map(|(_, at, _)| *at)
        .collect();
    assert!(polls.len() >= 5, "a poll every 2 s for 10 s: {polls:?}");
    let waited = polls.last().copied().unwrap_or_default() - polls[0];
    assert!((8_000..=12_000).contains(&waited), "polled for {waited} ms");

    // AND the silent player's ticket is CANCELLED, the one who accepted is SEARCHING again
    let silent = ticket_record(&stack, "t-2").await;
    assert_eq!(silent.ticket.status, TicketStatus::Cancelled);
    assert_eq!(
        silent.ticket.reason,
        Some(format!("p-2 did not accept match {match_id} in time"))
    );
    assert_eq!(
        ticket_record(&stack, "t-1").await.ticket.status,
        TicketStatus::Searching
    );

    // AND an answer after the window is refused
    let (late, problem) = answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await;
    assert_eq!(late, 409, "t-1 is SEARCHING now: {problem}");
}

#[tokio::test(start_paused = true)]
async fn answers_are_checked_before_anything_is_written() {
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(1)), clock, ranked_1v1_with_acceptance(20));
    matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let before = ticket_record(&stack, "t-1").await;

    for (player, ticket, body, status, pointer) in [
        ("p-1", "t-1", "{", 400, Some("")),
        ("p-1", "t-1", "[]", 400, Some("")),
        ("p-1", "t-1", "{}", 400, Some("/acceptanceType")),
        (
            "p-1",
            "t-1",
            r#"{"acceptanceType": "MAYBE"}"#,
            400,
            Some("/acceptanceType"),
        ),
        (
            "p-1",
            "t-1",
            r#"{"acceptanceType": true}"#,
            400,
            Some("/acceptanceType"),
        ),
        (
            "p-1",
            "t-1",
            r#"{"acceptanceType": "ACCEPT", "for": "p-2"}"#,
            400,
            Some("/for"),
        ),
        // Another player's ticket, and one that does not exist, look the same.
        ("p-2", "t-1", r#"{"acceptanceType": "ACCEPT"}"#, 404, None),
        ("p-1", "t-404", r#"{"acceptanceType": "ACCEPT"}"#, 404, None),
        ("p-1", "../t-1", r#"{"acceptanceType": "ACCEPT"}"#, 404, None),
    ] {
        let (got, problem) = answer(&stack, player, ticket, body).await;
        assert_eq!(got, status, "{player} {ticket} {body}: {problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:queuematch:problem:")));
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}: {problem}");
        }
    }
    assert_eq!(ticket_record(&stack, "t-1").await, before, "nothing was written");
}

// ---- the sweeper -------------------------------------------------------------------------------

/// A scheduled event as EventBridge Scheduler delivers it to the sweeper function.
fn scheduled_event(id: &str) -> EventBridgeEvent {
    serde_json::from_value(json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-01-01T00:05:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:scheduler:eu-west-1:123456789012:schedule/default/queuematch-sweeper"],
        "detail": {}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn sweep(stack: &Stack<impl Timer>, id: &str) -> Value {
    sweeper::handle(&stack.service, &stack.fleet, scheduled_event(id))
        .await
        .unwrap_or_else(|e| panic!("sweep {id}: {e}"))
}

/// A Workflows port whose every start fails, as a matcher that crashed between its commit and
/// StartExecution would have left things.
#[derive(Debug)]
struct CrashingWorkflows;

#[async_trait::async_trait]
impl Workflows for CrashingWorkflows {
    async fn start(&self, _: &str, _: &str, _: Value) -> Result<ExecutionId, PortError> {
        Err(PortError::transient("the matcher died before StartExecution"))
    }
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_times_out_tickets_that_no_round_visits() {
    let stack = stack(TestFleet::new(Some(1)));
    let mut events = stack.service.events.subscribe_player("p-1".into());
    let outcome = matcher::handle(&stack.service, tickets_batch(&stack, &[("t-1", "p-1", 1500)]), "test").await;
    assert_eq!(outcome.admitted, 1);

    // GIVEN nothing delivers the pool's ticks, WHEN the queue's 120 s timeout passes
    stack.service.clock.advance(Duration::from_secs(60));
    assert_eq!(sweep(&stack, "sweep-1").await["timedOut"], json!([]), "not yet");
    stack.service.clock.advance(Duration::from_secs(61));
    let summary = sweep(&stack, "sweep-2").await;

    // THEN the sweeper times the ticket out, with the reason, and frees its player
    assert_eq!(summary["timedOut"], json!(["t-1"]));
    let t = ticket_record(&stack, "t-1").await;
    assert_eq!(t.ticket.status, TicketStatus::TimedOut);
    assert_eq!(
        t.ticket.reason.as_deref(),
        Some("no match found within 120 s (waited 122 s)")
    );
    assert_eq!(guard(&stack, "p-1").await, None);
    let events = drain(&mut events).await;
    let names: Vec<&str> = events.iter().map(DomainEvent::name).collect();
    assert_eq!(names.last(), Some(&"MatchmakingTimedOut"), "{names:?}");

    // AND a second sweep changes nothing
    assert_eq!(
        sweep(&stack, "sweep-3").await,
        json!({"timedOut": [], "failedSessions": [], "restarted": [], "resumed": [], "abandoned": [], "completing": []})
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_workflow_died_in_placing_is_failed_by_the_sweeper_and_its_players_requeued() {
    // GIVEN a server that never becomes ready, and a domain clock that stands still, so the
    // placement timeout never fires and the Express execution dies at its five-minute limit instead,
    // without running its Catch
    let stack = stack(TestFleet::new(Some(u32::MAX)));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let record = finished(&stack, &execution).await;
    assert!(
        matches!(record.status, ExecutionStatus::TimedOut { .. }),
        "{:?}",
        record.status
    );
    let stuck = session(&stack, &match_id).await;
    assert_eq!(stuck.status, SessionStatus::Placing);
    assert_eq!(ticket_record(&stack, "t-1").await.ticket.status, TicketStatus::Placing);

    // WHEN the sweeper runs before and after the session has been PLACING for 300 s
    stack.service.clock.advance(Duration::from_secs(299));
    assert_eq!(sweep(&stack, "early").await["failedSessions"], json!([]));
    stack.service.clock.advance(Duration::from_secs(2));
    let summary = sweep(&stack, "late").await;

    // THEN the session is FAILED with its cause, recorded on its timeline as the sweeper's step
    assert_eq!(summary["failedSessions"], json!([stuck.session_id]));
    let failed = session(&stack, &match_id).await;
    assert_eq!(failed.status, SessionStatus::Failed);
    assert_eq!(
        failed.reason.as_deref(),
        Some("Sweeper: the session was still PLACING after 301 s; its placement was given up")
    );
    let entries = timeline(&stack, &stuck.session_id).await;
    let last = entries.last().unwrap_or_else(|| panic!("an empty timeline"));
    assert_eq!(
        (last.state.as_str(), last.execution_id.as_str(), last.status),
        ("Sweep", "sweeper:late", SessionStatus::Failed)
    );

    // AND its server is released once, and both tickets are SEARCHING again, guarded by themselves
    assert_eq!(stack.fleet.calls().released.len(), 1);
    for (ticket, player) in [("t-1", "p-1"), ("t-2", "p-2")] {
        let t = ticket_record(&stack, ticket).await;
        assert_eq!(
            (t.ticket.status, t.match_id),
            (TicketStatus::Searching, None),
            "{ticket}"
        );
        assert_eq!(guard(&stack, player).await, Some(GuardHolder::Ticket(ticket.into())));
    }

    // AND sweeping again changes nothing of the session; the tickets, past their queue's 120 s,
    // time out saying that a match was found and why it was not played, not that none was found
    let again = sweep(&stack, "again").await;
    assert_eq!(stack.fleet.calls().released.len(), 1);
    assert_eq!(timeline(&stack, &stuck.session_id).await, entries);
    assert_eq!(again["timedOut"], json!(["t-1", "t-2"]));
    let timed_out = ticket_record(&stack, "t-1").await;
    assert_eq!(timed_out.ticket.status, TicketStatus::TimedOut);
    assert_eq!(
        timed_out.ticket.reason,
        Some(format!(
            "no match played within 120 s (waited 302 s); match {match_id} was not played: \
             Sweeper: the session was still PLACING after 301 s; its placement was given up"
        ))
    );
}

/// Admits t-1 and t-2 and runs a round that commits their match and then dies before
/// StartExecution; answers the match's id.
async fn committed_without_a_placement(stack: &Stack<impl Timer>) -> MatchId {
    for record in tickets_batch(stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1500)]).records {
        let Ok(Message::Ticket(message)) = Message::parse(record.body.as_deref().unwrap_or_default()) else {
            panic!("a ticket message")
        };
        let admitted = stack.service.admission().admit(&message).await;
        assert!(matches!(admitted, Ok(Admitted::Searching(_))), "{admitted:?}");
    }
    let crashed = Rounds {
        store: &stack.service.store,
        queue: &stack.service.queue,
        workflows: &CrashingWorkflows,
        events: &stack.service.events,
        clock: &stack.service.clock,
        queues: &stack.service.queues,
        settings: &stack.service.settings,
    };
    let pool = items::PoolRef::new("ranked-1v1", "all");
    let Err(crash) = crashed.run(&pool, "doomed").await else {
        panic!("the round was meant to crash")
    };
    assert!(crash.to_string().contains("before StartExecution"), "{crash}");
    let match_id = ticket_record(stack, "t-1")
        .await
        .match_id
        .unwrap_or_else(|| panic!("t-1 was committed into a match"));
    assert!(stack.workflows.executions().is_empty());
    match_id
}

#[tokio::test(start_paused = true)]
async fn a_match_whose_placement_never_started_is_started_again_under_the_same_name() {
    let stack = stack(TestFleet::new(Some(1)));
    // GIVEN two admitted tickets, and a round that committed their match and then died before
    // StartExecution
    let match_id = committed_without_a_placement(&stack).await;

    // WHEN the sweeper runs within the grace a workflow has to create its session, nothing starts
    stack.service.clock.advance(Duration::from_secs(30));
    assert_eq!(sweep(&stack, "early").await["restarted"], json!([]));

    // AND after it, the placement is started under the match's name, and runs to the end
    stack.service.clock.advance(Duration::from_secs(31));
    assert_eq!(sweep(&stack, "late").await["restarted"], json!([match_id]));
    let executions = stack.workflows.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].name, match_id.as_str());
    assert_eq!(
        executions[0].input,
        json!({"matchId": match_id, "queue": "ranked-1v1", "acceptanceRequired": false})
    );
    let record = finished(&stack, &executions[0].id).await;
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:?}",
        record.status
    );
    for ticket in ["t-1", "t-2"] {
        assert_eq!(
            ticket_record(&stack, ticket).await.ticket.status,
            TicketStatus::Completed
        );
    }
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Active);

    // AND a later sweep finds nothing in flight
    assert_eq!(sweep(&stack, "after").await["restarted"], json!([]));
    assert_eq!(stack.workflows.executions().len(), 1);
}

/// A fleet whose release never returns, as the dev server's answer to a game server's last report
/// never does when releasing stops that very server: its connection, and the report's handling,
/// end with the process.
#[derive(Debug)]
struct ReleaseNeverReturns(Arc<TestFleet>);

#[async_trait::async_trait]
impl Fleet for ReleaseNeverReturns {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        self.0.place(session, matched, secret).await
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        self.0.poll(placement).await
    }
    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn the_players_hear_that_the_game_ended_even_if_releasing_the_server_ends_the_report() {
    // GIVEN an ACTIVE session, and a player listening
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    let mut p1_events = stack.service.events.subscribe_player("p-1".into());
    drain(&mut p1_events).await;

    // WHEN its server reports the end, and the report's handling is dropped while the server is
    // being released
    let fleet = ReleaseNeverReturns(stack.fleet.clone());
    let end = report_through(
        &stack,
        &fleet,
        &active,
        "end-0001",
        r#"{"type":"end","reason":"no player connected"}"#,
    );
    let cut_short = tokio::time::timeout(Duration::from_secs(5), end).await;
    assert!(cut_short.is_err(), "the release was meant never to return");

    // THEN the session is ENDED, saying why, and the player was told so
    let ended_session = session(&stack, &match_id).await;
    assert_eq!(ended_session.status, SessionStatus::Ended);
    assert_eq!(ended_session.reason.as_deref(), Some("no player connected"));
    let ended: Vec<_> = drain(&mut p1_events)
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                DomainEvent::SessionStatusChanged {
                    status: SessionStatus::Ended,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
}

// ---- after a restart ---------------------------------------------------------------------------

async fn after_restart(stack: &Stack<impl Timer>) -> Value {
    sweeper::after_restart(&stack.service, &stack.fleet, true)
        .await
        .unwrap_or_else(|e| panic!("after restart: {e}"))
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_a_session_placing_is_failed_at_once_and_its_players_requeued() {
    // GIVEN a session PLACING whose workflow is gone (it died at Express's five-minute limit; a
    // restart of the dev server stops it the same way), 10 s after it was created
    let stack = stack(TestFleet::new(Some(u32::MAX)));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    finished(&stack, &execution).await;
    stack.service.clock.advance(Duration::from_secs(10));
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Placing);

    // WHEN the service starts again, THEN the session is failed at once, not 300 s later, with why
    let summary = after_restart(&stack).await;
    let failed = session(&stack, &match_id).await;
    assert_eq!(summary["failedSessions"], json!([failed.session_id]));
    assert_eq!(
        failed.reason.as_deref(),
        Some("the service restarted while the session was PLACING (10 s); its placement workflow did not survive")
    );
    let last = timeline(&stack, &failed.session_id)
        .await
        .pop()
        .unwrap_or_else(|| panic!("a timeline"));
    assert_eq!(last.state, "Restart");
    // AND its players are back in their pool, first in line, to be matched and placed again
    for ticket in ["t-1", "t-2"] {
        let t = ticket_record(&stack, ticket).await;
        assert_eq!(
            (t.ticket.status, t.match_id),
            (TicketStatus::Searching, None),
            "{ticket}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_a_match_waiting_for_its_placement_is_placed_at_once() {
    // GIVEN a match committed by a round that died before StartExecution, 5 s ago
    let stack = stack(TestFleet::new(Some(1)));
    let match_id = committed_without_a_placement(&stack).await;
    stack.service.clock.advance(Duration::from_secs(5));

    // WHEN the service starts again, THEN its placement starts at once, without the sweep's grace,
    // and places it
    let summary = after_restart(&stack).await;
    assert_eq!(summary["restarted"], json!([match_id]));
    let executions = stack.workflows.executions();
    assert_eq!(executions.len(), 1);
    finished(&stack, &executions[0].id).await;
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_that_stopped_the_game_servers_active_sessions_are_abandoned() {
    // GIVEN an ACTIVE session whose server heartbeat a second ago
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    heartbeat(&stack, &active, "beat-0001").await;
    stack.service.clock.advance(Duration::from_secs(1));

    // WHEN the service starts again with its game servers gone
    let summary = after_restart(&stack).await;

    // THEN the session is ABANDONED at once, its server released and its players free
    assert_eq!(summary["abandoned"], json!([active.session_id]));
    let abandoned = session(&stack, &match_id).await;
    assert_eq!(
        (abandoned.status, abandoned.reason.as_deref()),
        (
            SessionStatus::Abandoned,
            Some("the service restarted, and the game server stopped with it")
        )
    );
    assert_eq!(stack.fleet.calls().released.len(), 1);
    for player in ["p-1", "p-2"] {
        assert_eq!(guard(&stack, player).await, None, "{player}");
    }
    // AND a scheduled sweep has nothing left to do
    assert_eq!(sweep(&stack, "after").await["abandoned"], json!([]));
}

/// A Workflows port that takes every start and runs nothing: a service stopped before the
/// executions it started had run.
#[derive(Debug)]
struct StoppedWorkflows;

#[async_trait::async_trait]
impl Workflows for StoppedWorkflows {
    async fn start(&self, definition: &str, name: &str, _: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!("{definition}:{name}:never-run")))
    }
}

/// An ACTIVE duel of p-1 and p-2 whose server's result, `scores`, was taken (202) through a
/// workflows port that ran nothing: the completion it started never ran.
async fn active_with_a_result_never_completed(scores: &str) -> (Stack<ManualClock>, MatchId, SessionRecord) {
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    let body = format!(r#"{{"type":"result","result":{{"scores":{scores}}}}}"#);
    let recorded = report_to(&stack, &stack.fleet, &StoppedWorkflows, &active, "result-0001", &body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recorded.status, SessionStatus::Active);
    (stack, match_id, active)
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_a_session_whose_result_was_taken_is_completed_not_abandoned() {
    // GIVEN an ACTIVE session whose server's result was taken (answered 202), and a service that
    // stopped before the completion it started had run
    let (stack, match_id, active) = active_with_a_result_never_completed(r#"{"p-1":5,"p-2":2}"#).await;

    // WHEN the service starts again with its game servers gone
    let summary = after_restart(&stack).await;

    // THEN the completion runs again, rather than the session being abandoned: rated and ENDED
    assert_eq!(summary["completing"], json!([active.session_id]));
    assert_eq!(summary["abandoned"], json!([]));
    let record = completion(&stack, &active.session_id).await;
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#?}",
        record.status
    );
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Ended);
    let winner = rating(&stack, "p-1", "ranked-1v1")
        .await
        .unwrap_or_else(|| panic!("p-1 rated"));
    assert_eq!(winner.games, 1);

    // AND a scheduled sweep long after finds nothing to complete or abandon
    stack.service.clock.advance(Duration::from_secs(600));
    let later = sweep(&stack, "later").await;
    assert_eq!((&later["completing"], &later["abandoned"]), (&json!([]), &json!([])));
}

#[tokio::test(start_paused = true)]
async fn a_silent_session_whose_result_was_taken_is_completed_by_the_sweeper_not_abandoned() {
    // GIVEN an ACTIVE session whose result was taken but whose completion never ran (it failed)
    let (stack, match_id, active) = active_with_a_result_never_completed(r#"{"p-1":1,"p-2":4}"#).await;

    // WHEN its server stays silent past the heartbeat timeout and the sweeper passes
    stack.service.clock.advance(Duration::from_secs(120));
    let summary = sweep(&stack, "silent").await;

    // THEN its completion is started again and rates the game, rather than the session abandoned
    assert_eq!(summary["completing"], json!([active.session_id]));
    assert_eq!(summary["abandoned"], json!([]));
    completion(&stack, &active.session_id).await;
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Ended);
    assert!(rating(&stack, "p-2", "ranked-1v1").await.is_some());
}

// ---- compensation ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_placement_that_times_out_releases_its_server_and_requeues_after_backed_off_retries() {
    // GIVEN a fleet that claims a server at once but never gets it ready, on a domain clock that
    // follows the engine's virtual time (so the 60 s placement timeout passes as the workflow waits)
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(u32::MAX)), clock, rule_set("ranked-1v1"));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let created = ticket_record(&stack, "t-1").await.ticket.created_at;
    let record = finished(&stack, &execution).await;

    // THEN the execution failed on the poll past the placement timeout, and the Catch ran
    let ExecutionStatus::Failed { error, .. } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "PlacementUnavailable");
    let tasks: Vec<String> = dispatched(&record.history).into_iter().map(|(task, ..)| task).collect();
    assert_eq!(tasks.first().map(String::as_str), Some("createSession"));
    assert_eq!(tasks.last().map(String::as_str), Some("fail"));

    // AND the server it claimed is released, exactly once
    let calls = stack.fleet.calls();
    assert_eq!(calls.places, 1);
    assert_eq!(
        calls.released,
        [PlacementId(format!("pl-{}", session_id_for(&match_id)))]
    );

    // AND the session is FAILED with the cause, after about a minute of polls on its timeline
    let session = session(&stack, &match_id).await;
    assert_eq!(session.status, SessionStatus::Failed);
    let reason = session.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("PlacementUnavailable: placement unavailable: no server was ready for session"),
        "{reason}"
    );
    let entries = timeline(&stack, &session.session_id).await;
    let states: Vec<&str> = entries.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(
        states,
        ["CreateSession", "Place", "Poll", "ReleaseAndRequeue"],
        "{entries:#?}"
    );
    let poll = &entries[2];
    assert!(poll
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("attempt 1 failed: PlacementUnavailable")));
    let placing_for = entries[3].at.since(entries[0].at);
    assert!(
        (60..=64).contains(&placing_for.as_secs()),
        "failed {placing_for:?} after it was created"
    );

    // AND both tickets are back in the pool, as old as they were, guarded by themselves
    for (ticket, player) in [("t-1", "p-1"), ("t-2", "p-2")] {
        let t = ticket_record(&stack, ticket).await;
        assert_eq!(
            (t.ticket.status, t.match_id),
            (TicketStatus::Searching, None),
            "{ticket}"
        );
        assert_eq!(guard(&stack, player).await, Some(GuardHolder::Ticket(ticket.into())));
    }
    assert_eq!(ticket_record(&stack, "t-1").await.ticket.created_at, created);
}

/// A fleet that is full for its first `full_for` placements, then places at once.
#[derive(Debug)]
struct RecoveringFleet {
    full_for: u32,
    calls: Mutex<u32>,
}

#[async_trait::async_trait]
impl Fleet for RecoveringFleet {
    async fn place(&self, session: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| panic!("{e}"));
        *calls += 1;
        if *calls <= self.full_for {
            return Err(PortError::PlacementUnavailable(format!("fleet is full (call {calls})")));
        }
        Ok(Placement::Ready {
            placement: PlacementId(format!("pl-{session}")),
            endpoint: TestFleet::endpoint(),
        })
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        Ok(Placement::Ready {
            placement: placement.clone(),
            endpoint: TestFleet::endpoint(),
        })
    }

    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_fleet_that_recovers_within_the_retries_places_the_match_with_each_retry_on_the_timeline() {
    // GIVEN a fleet full for two placements, on a domain clock following the engine's time
    let clock = Arc::new(TokioClock::new(Timestamp(1_800_000_000_000)));
    let config = WorkflowsConfig {
        clock: Clock::virtual_from_now(),
        seed: Some(11),
    };
    let workflows = Arc::new(LocalWorkflows::load(&repo().join("workflows"), config).unwrap_or_else(|e| panic!("{e}")));
    let service = Arc::new(Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: workflows.clone(),
        events: EventBus::new(256),
        clock,
        party_tokens: DevTokens::new(b"placement test secret"),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1")])),
        settings: Arc::new(Settings::default()),
    });
    let fleet = Arc::new(RecoveringFleet {
        full_for: 2,
        calls: Mutex::new(0),
    });
    workflows
        .connect(Arc::new(ServiceTasks::new(&service, fleet.clone())))
        .unwrap_or_else(|e| panic!("{e}"));
    let stack = Stack {
        service,
        workflows,
        fleet: TestFleet::new(None),
    };
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let record = finished(&stack, &execution).await;

    // THEN the third attempt placed it
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:?}",
        record.status
    );
    assert_eq!(*fleet.calls.lock().unwrap_or_else(|e| panic!("{e}")), 3);

    // AND the timeline shows the two failed attempts, each waited for with backoff and full jitter:
    // at most 2 s before the first retry, 4 s before the second (IntervalSeconds 2, BackoffRate 2)
    let entries = timeline(&stack, &session_id_for(&match_id)).await;
    let steps: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.state.as_str(), e.detail.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        steps[1],
        (
            "Place",
            "attempt 1 failed: PlacementUnavailable: placement unavailable: fleet is full (call 1)"
        )
    );
    assert_eq!(
        steps[2],
        (
            "Place",
            "attempt 2 failed: PlacementUnavailable: placement unavailable: fleet is full (call 2)"
        )
    );
    assert!(steps[3].1.starts_with("placement pl-"), "{steps:?}");
    assert_eq!(steps.last().map(|s| s.0), Some("Activate"));
    let first_wait = entries[2].at.since(entries[1].at);
    let second_wait = entries[3].at.since(entries[2].at);
    assert!(first_wait <= Duration::from_secs(2), "{first_wait:?}");
    assert!(second_wait <= Duration::from_secs(4), "{second_wait:?}");
    assert!(entries.windows(2).all(|w| w[0].at <= w[1].at), "{entries:#?}");
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn a_player_who_cancels_during_acceptance_drops_the_match_and_the_other_is_requeued() {
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(TestFleet::new(Some(1)), clock, ranked_1v1_with_acceptance(20));
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;

    // WHEN p-1 accepts and p-2 cancels their ticket instead of answering
    assert_eq!(
        answer(&stack, "p-1", "t-1", r#"{"acceptanceType": "ACCEPT"}"#).await.0,
        200
    );
    let cancelled = tickets::cancel(
        &stack.service.store,
        &stack.service.events,
        &stack.service.clock,
        &stack.service.settings,
        &PlayerId::from("p-2"),
        &TicketId::from("t-2"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let tickets::Cancel::Done(cancelled) = cancelled else {
        panic!("t-2 is admitted: {cancelled:?}")
    };
    assert_eq!(cancelled.status, TicketStatus::Cancelled);
    let record = finished(&stack, &execution).await;

    // THEN the match is dropped as rejected, and p-1's ticket searches again
    let ExecutionStatus::Failed { error, cause } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "MatchRejected");
    assert_eq!(
        cause.as_deref(),
        Some(format!("ticket t-2 left match {match_id}: it is CANCELLED").as_str())
    );
    assert_eq!(
        ticket_record(&stack, "t-1").await.ticket.status,
        TicketStatus::Searching
    );
    let t2 = ticket_record(&stack, "t-2").await;
    assert_eq!(
        (t2.ticket.status, t2.ticket.reason.as_deref()),
        (TicketStatus::Cancelled, Some("cancelled by p-2"))
    );
    assert_eq!(stack.fleet.calls().places, 0);
}

/// A signed report from the session's server, as the game server sends it.
async fn report_from(
    stack: &Stack<impl Timer>,
    session: &SessionRecord,
    nonce: &str,
    body: &str,
) -> Result<Recorded, ReportError> {
    report_through(stack, &stack.fleet, session, nonce, body).await
}

/// A signed report of the session's server, handled with `fleet`.
async fn report_through(
    stack: &Stack<impl Timer>,
    fleet: &impl Fleet,
    session: &SessionRecord,
    nonce: &str,
    body: &str,
) -> Result<Recorded, ReportError> {
    report_to(stack, fleet, &stack.service.workflows, session, nonce, body).await
}

/// A signed report of `session`'s server, handled with `fleet` and `workflows` as the service's ports.
async fn report_to(
    stack: &Stack<impl Timer>,
    fleet: &impl Fleet,
    workflows: &impl Workflows,
    session: &SessionRecord,
    nonce: &str,
    body: &str,
) -> Result<Recorded, ReportError> {
    let now = stack.service.clock.now();
    let signature = report::sign(&session.secret, now, nonce, body.as_bytes());
    let reports = Reports {
        store: &stack.service.store,
        queue: &stack.service.queue,
        queues: &stack.service.queues,
        fleet,
        workflows,
        events: &stack.service.events,
        clock: &stack.service.clock,
        settings: &stack.service.settings,
    };
    let signed = SignedReport {
        timestamp: now,
        nonce,
        signature: &signature,
        body: body.as_bytes(),
    };
    reports.record(&session.session_id, signed).await
}

/// A signed `heartbeat` from the session's server.
async fn heartbeat(stack: &Stack<impl Timer>, session: &SessionRecord, nonce: &str) {
    report_from(stack, session, nonce, r#"{"type":"heartbeat"}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The player's stored rating in `queue`, if any.
async fn rating(stack: &Stack<impl Timer>, player: &str, queue: &str) -> Option<PlayerRating> {
    let stored = stack
        .service
        .store
        .get(&items::rating_key(&player.into(), queue))
        .await
        .unwrap_or_else(|e| panic!("{e}"))?;
    Some(
        items::read::<PlayerRating>(&stored)
            .unwrap_or_else(|e| panic!("{e}"))
            .value,
    )
}

/// The completion execution of `session`, once it has finished.
async fn completion(stack: &Stack<impl Timer>, session: &SessionId) -> ExecutionRecord {
    let execution = stack
        .workflows
        .executions()
        .into_iter()
        .find(|e| e.definition == COMPLETION_WORKFLOW && e.name == completion::execution_name(session))
        .unwrap_or_else(|| panic!("no completion of {session}"));
    finished(stack, &execution.id).await
}

#[tokio::test(start_paused = true)]
async fn a_result_rates_the_game_ends_the_session_and_releases_its_server_once() {
    // GIVEN an ACTIVE 1v1 session between two unrated players
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    assert_eq!(active.status, SessionStatus::Active);
    let mut subscription = stack.service.events.subscribe();
    stack.service.clock.advance(Duration::from_secs(300));

    // WHEN its server reports that p-1 won
    let body = r#"{"type":"result","result":{"scores":{"p-1":5,"p-2":2}}}"#;
    let recorded = report_from(&stack, &active, "result-0001", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recorded.status, SessionStatus::Active, "the workflow ends it");
    let record = completion(&stack, &active.session_id).await;
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#?}",
        record.status
    );
    assert_eq!(
        states_entered(&record.history),
        ["ValidateResult", "UpdateRatings", "MarkEnded", "Release", "Publish"]
    );

    // THEN the winner's rating rose and the loser's fell, in Glicko-2, each after one game
    let winner = rating(&stack, "p-1", "ranked-1v1")
        .await
        .unwrap_or_else(|| panic!("p-1 rated"));
    let loser = rating(&stack, "p-2", "ranked-1v1")
        .await
        .unwrap_or_else(|| panic!("p-2 rated"));
    assert_eq!(winner.rating.system(), RatingSystem::Glicko2);
    assert!(winner.rating.scaled_mean() > 1500.0, "{winner:?}");
    assert!(loser.rating.scaled_mean() < 1500.0, "{loser:?}");
    assert_eq!((winner.games, loser.games), (1, 1));
    assert_eq!(winner.updated_at, stack.service.clock.now());

    // AND the session ENDED, its players are free, its server was released once
    let ended = session(&stack, &match_id).await;
    assert_eq!(ended.status, SessionStatus::Ended);
    for player in ["p-1", "p-2"] {
        assert_eq!(guard(&stack, player).await, None, "{player}");
    }
    assert_eq!(
        stack.fleet.calls().released,
        [PlacementId(format!("pl-{}", active.session_id))]
    );

    // AND each step is on the timeline with the execution id and its state
    let entries = timeline(&stack, &active.session_id).await;
    let steps: Vec<(&str, SessionStatus)> = entries
        .iter()
        .filter(|e| e.execution_id == record.id.0)
        .map(|e| (e.state.as_str(), e.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("ValidateResult", SessionStatus::Active),
            ("UpdateRatings", SessionStatus::Active),
            ("MarkEnded", SessionStatus::Ended),
            ("Release", SessionStatus::Ended),
            ("Publish", SessionStatus::Ended),
        ]
    );
    let rated = entries
        .iter()
        .find(|e| e.state == "UpdateRatings")
        .and_then(|e| e.detail.clone());
    assert!(rated.is_some_and(|d| d.contains("p-1 800→") && d.contains("p-2 800→")));

    // AND ENDED was published
    let events = drain(&mut subscription).await;
    assert!(events.iter().any(|e| matches!(e,
        DomainEvent::SessionStatusChanged { status: SessionStatus::Ended, session_id, .. } if *session_id == active.session_id)));

    // WHEN the server repeats its result and ends the session
    let again = report_from(&stack, &active, "result-0002", body).await;
    assert!(matches!(again, Err(ReportError::Conflict(_))), "{again:?}");
    let end = report_from(&stack, &active, "end-0001", r#"{"type":"end"}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(end.status, SessionStatus::Ended);

    // THEN nothing changes: the ratings, the releases and the timeline are as they were
    assert_eq!(rating(&stack, "p-1", "ranked-1v1").await, Some(winner));
    assert_eq!(rating(&stack, "p-2", "ranked-1v1").await, Some(loser));
    assert_eq!(stack.fleet.calls().released.len(), 1);
    assert_eq!(timeline(&stack, &active.session_id).await, entries);
    assert_eq!(
        stack
            .workflows
            .executions()
            .iter()
            .filter(|e| e.definition == COMPLETION_WORKFLOW)
            .count(),
        1
    );
}

/// `GET /v1/players/{playerId}/ratings` as API Gateway hands it over, as `caller` (with `role`).
async fn ratings_route(stack: &Stack<impl Timer>, caller: Option<(&str, &str)>, player: &str) -> (i64, Value) {
    let claims = caller.map(|(sub, role)| json!({"sub": sub, "role": role}));
    ratings_route_with(stack, claims, player).await
}

/// The same, with the authorizer's `claims` as they are.
async fn ratings_route_with(stack: &Stack<impl Timer>, claims: Option<Value>, player: &str) -> (i64, Value) {
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = axum::http::Method::GET;
    request.resource = Some(players_api::RATINGS_RESOURCE.into());
    request.path_parameters.insert("playerId".into(), player.into());
    if let Some(claims) = claims {
        request
            .request_context
            .authorizer
            .fields
            .insert("claims".into(), claims);
    }
    let response = players_api::handle(&stack.service, request).await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        other => panic!("{other:?}"),
    };
    (response.status_code, body)
}

#[tokio::test(start_paused = true)]
async fn players_read_their_own_ratings_and_operators_anyones() {
    // GIVEN a rated 1v1 that p-2 won
    let (stack, _, active) = active_duel(TestFleet::new(Some(1))).await;
    let body = r#"{"type":"result","result":{"scores":{"p-1":0,"p-2":3}}}"#;
    report_from(&stack, &active, "result-0001", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    completion(&stack, &active.session_id).await;

    // WHEN p-2 reads their ratings THEN there is one, for ranked-1v1, with its estimate
    let (status, own) = ratings_route(&stack, Some(("p-2", "player")), "p-2").await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["playerId"], "p-2");
    let rating = &own["ratings"][0];
    assert_eq!(
        (rating["queue"].as_str(), rating["system"].as_str()),
        (Some("ranked-1v1"), Some("glicko2"))
    );
    assert_eq!(rating["games"], 1);
    let (mean, deviation) = (
        rating["rating"].as_f64().unwrap_or(0.0),
        rating["deviation"].as_f64().unwrap_or(0.0),
    );
    assert!(mean > 1500.0);
    assert_eq!(rating["conservativeEstimate"].as_f64(), Some(mean - 2.0 * deviation));

    // AND an operator reads anyone's; another player is refused; no token is 401; no games is 404
    let (status, theirs) = ratings_route(&stack, Some(("ops", "operator")), "p-1").await;
    assert_eq!(status, 200, "{theirs}");
    // On AWS an operator is a member of the Cognito group, which the claims name, with no role.
    let cognito_operator = json!({"sub": "0f8fad5b-d9cb-469f", "cognito:groups": "operators"});
    let (status, read) = ratings_route_with(&stack, Some(cognito_operator), "p-1").await;
    assert_eq!((status, &read), (200, &theirs));
    assert!(theirs["ratings"][0]["rating"].as_f64().unwrap_or(2000.0) < 1500.0);
    let (status, refused) = ratings_route(&stack, Some(("p-1", "player")), "p-2").await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["detail"]
        .as_str()
        .unwrap_or("")
        .contains("their own ratings only"));
    assert_eq!(ratings_route(&stack, None, "p-2").await.0, 401);
    let (status, unknown) = ratings_route(&stack, Some(("p-3", "player")), "p-3").await;
    assert_eq!(status, 404, "{unknown}");
    assert_eq!(ratings_route(&stack, Some(("ops", "operator")), "bad/id").await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn a_ticket_without_skill_is_matched_on_the_players_rating() {
    // GIVEN p-1 beat p-2 in a rated game, so both are rated in ranked-1v1
    let (stack, _, active) = active_duel(TestFleet::new(Some(1))).await;
    let body = r#"{"type":"result","result":{"scores":{"p-1":3,"p-2":0}}}"#;
    report_from(&stack, &active, "result-0001", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    completion(&stack, &active.session_id).await;
    let rated = |player: &'static str| {
        let stack = &stack;
        async move {
            rating(stack, player, "ranked-1v1")
                .await
                .unwrap_or_else(|| panic!("{player} rated"))
                .rating
                .conservative_estimate()
        }
    };
    let (winner, loser) = (rated("p-1").await, rated("p-2").await);

    // WHEN they queue again without a skill, beside p-3 who was never rated and p-4 who gives one
    let received = stack.service.clock.now().as_millis().saturating_sub(1_000);
    let records: Vec<Value> = [("t-3", "p-1", None), ("t-4", "p-2", None), ("t-5", "p-3", None), ("t-6", "p-4", Some(1234))]
        .iter()
        .map(|(ticket, player, skill)| {
            let attributes = skill.map_or_else(|| json!({}), |s| json!({"skill": s}));
            let body = json!({
                "kind": "ticket", "ticketId": ticket, "playerId": player, "receivedAt": received,
                "request": {"queue": "ranked-1v1", "players": [{"id": player, "attributes": attributes, "latencies": {"local": 5}}]}
            });
            json!({"messageId": format!("msg-{ticket}"), "body": body.to_string(), "eventSource": "aws:sqs"})
        })
        .collect();
    let batch: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap_or_else(|e| panic!("{e}"));
    let outcome = matcher::handle(&stack.service, batch, "rated").await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{outcome:#?}");

    // THEN each ticket carries its player's conservative estimate; the unrated one the default
    let skill = |ticket: &'static str| {
        let stack = &stack;
        async move { ticket_record(stack, ticket).await.ticket.players[0].attributes["skill"].clone() }
    };
    assert_eq!(skill("t-3").await, AttributeValue::Number(winner));
    assert_eq!(skill("t-4").await, AttributeValue::Number(loser));
    assert_eq!(skill("t-5").await, AttributeValue::Number(1500.0));
    assert_eq!(
        skill("t-6").await,
        AttributeValue::Number(1234.0),
        "a skill given is kept"
    );
    assert!(winner > loser);
}

#[tokio::test(start_paused = true)]
async fn a_completion_replayed_applies_the_ratings_once() {
    // GIVEN a session whose completion has run
    let (stack, _, active) = active_duel(TestFleet::new(Some(1))).await;
    let body = r#"{"type":"result","result":{"scores":{"p-1":1,"p-2":4}}}"#;
    report_from(&stack, &active, "result-0001", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    completion(&stack, &active.session_id).await;
    let before = (
        rating(&stack, "p-1", "ranked-1v1").await,
        rating(&stack, "p-2", "ranked-1v1").await,
    );

    // WHEN its tasks run again, as an at-least-once Express start would run them
    let step = json!({"id": "replay", "state": "UpdateRatings"});
    let again = queuematch_handlers::workflow_tasks::handle(
        &stack.service,
        &stack.fleet,
        json!({"task": "updateRatings", "sessionId": active.session_id, "execution": step}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let released = queuematch_handlers::workflow_tasks::handle(
        &stack.service,
        &stack.fleet,
        json!({"task": "releaseServer", "sessionId": active.session_id, "execution": {"id": "replay", "state": "Release"}}),
    )
    .await;

    // THEN the ratings are unchanged, and the fleet released the server once
    assert_eq!(again["rated"], json!(false));
    assert!(released.is_ok(), "{released:?}");
    assert_eq!(
        (
            rating(&stack, "p-1", "ranked-1v1").await,
            rating(&stack, "p-2", "ranked-1v1").await
        ),
        before
    );
    assert!(before.1.is_some_and(|r| r.rating.scaled_mean() > 1500.0), "p-2 won");
}

#[tokio::test(start_paused = true)]
async fn a_result_naming_a_stranger_or_missing_a_player_is_refused_with_why() {
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;

    let stranger = report_from(
        &stack,
        &active,
        "result-0001",
        r#"{"type":"result","result":{"scores":{"p-1":5,"p-9":2}}}"#,
    )
    .await;
    let Err(ReportError::Invalid(field)) = stranger else {
        panic!("{stranger:?}")
    };
    assert_eq!(field.pointer, "/result/scores/p-9");
    assert!(
        field
            .message
            .contains(&format!("player p-9 is not in session {}", active.session_id)),
        "{field}"
    );

    let missing = report_from(
        &stack,
        &active,
        "result-0002",
        r#"{"type":"result","result":{"scores":{"p-1":5}}}"#,
    )
    .await;
    let Err(ReportError::Invalid(field)) = missing else {
        panic!("{missing:?}")
    };
    assert_eq!(field.pointer, "/result/scores");
    assert!(field.message.contains("no score for player p-2"), "{field}");

    // AND nothing was started, rated or ended
    assert!(stack
        .workflows
        .executions()
        .iter()
        .all(|e| e.definition != COMPLETION_WORKFLOW));
    assert_eq!(rating(&stack, "p-1", "ranked-1v1").await, None);
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn an_active_session_whose_server_goes_silent_is_abandoned_by_the_sweeper() {
    // GIVEN a placed session whose server heartbeats for a while, then goes silent
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    assert_eq!(active.status, SessionStatus::Active);
    stack.service.clock.advance(Duration::from_secs(90));
    heartbeat(&stack, &active, "beat-0001").await;

    // WHEN the sweeper runs 59 s after the last heartbeat, the session is left alone
    stack.service.clock.advance(Duration::from_secs(59));
    assert_eq!(sweep(&stack, "quiet").await["abandoned"], json!([]));

    // THEN once 60 s have passed without one, it is ABANDONED, the step on its timeline
    stack.service.clock.advance(Duration::from_secs(1));
    let summary = sweep(&stack, "silent").await;
    assert_eq!(summary["abandoned"], json!([active.session_id]));
    let abandoned = session(&stack, &match_id).await;
    assert_eq!(abandoned.status, SessionStatus::Abandoned);
    assert_eq!(
        abandoned.reason.as_deref(),
        Some("no heartbeat for 60 s: the server is given up")
    );
    let entries = timeline(&stack, &active.session_id).await;
    let last = entries.last().unwrap_or_else(|| panic!("an empty timeline"));
    assert_eq!(
        (last.state.as_str(), last.execution_id.as_str(), last.status),
        ("Sweep", "sweeper:silent", SessionStatus::Abandoned)
    );

    // AND its server is released, once, and its players may queue again
    assert_eq!(stack.fleet.calls().released.len(), 1);
    for player in ["p-1", "p-2"] {
        assert_eq!(guard(&stack, player).await, None, "{player}");
    }
    sweep(&stack, "again").await;
    assert_eq!(stack.fleet.calls().released.len(), 1);
    assert_eq!(timeline(&stack, &active.session_id).await, entries);
}

#[tokio::test(start_paused = true)]
async fn a_server_silent_soon_after_it_started_is_abandoned_60_s_after_its_last_heartbeat() {
    // GIVEN a session whose server heartbeats once, right after it started, and then dies: well
    // before the placement deadline (60 s after the session was created)
    let (stack, match_id, active) = active_duel(TestFleet::new(Some(1))).await;
    assert_eq!(active.status, SessionStatus::Active);
    heartbeat(&stack, &active, "beat-0001").await;
    assert!(stack.service.clock.now() < active.placement_deadline);

    // WHEN the sweeper runs 60 s after that heartbeat
    stack.service.clock.advance(Duration::from_secs(60));
    let summary = sweep(&stack, "silent").await;

    // THEN the session is ABANDONED: silence counts from the last heartbeat, not from the deadline
    assert_eq!(summary["abandoned"], json!([active.session_id]));
    assert_eq!(
        session(&stack, &match_id).await.reason.as_deref(),
        Some("no heartbeat for 60 s: the server is given up")
    );
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_could_not_finish_is_finished_by_the_sweeper() {
    // GIVEN a server that never gets ready and a fleet whose API fails every release the workflow
    // tries (one attempt and six retries)
    let clock = TokioClock::new(Timestamp(1_800_000_000_000));
    let stack = stack_with(
        TestFleet::releasing_after(Some(u32::MAX), 7),
        clock,
        rule_set("ranked-1v1"),
    );
    let (match_id, execution) = matched(&stack, &[("t-1", "p-1", 1500), ("t-2", "p-2", 1510)]).await;
    let record = finished(&stack, &execution).await;

    // THEN the execution failed in ReleaseAndRequeue: the session is FAILED, but its server is not
    // released and its tickets are still PLACING
    let ExecutionStatus::Failed { error, .. } = &record.status else {
        panic!("{:#?}", record.status)
    };
    assert_eq!(error, "Transient");
    assert_eq!(session(&stack, &match_id).await.status, SessionStatus::Failed);
    assert_eq!(stack.fleet.calls().release_failures, 7);
    assert!(stack.fleet.calls().released.is_empty());
    assert_eq!(ticket_record(&stack, "t-1").await.ticket.status, TicketStatus::Placing);

    // WHEN the sweeper runs, with the fleet back
    let summary = sweep(&stack, "after-outage").await;

    // THEN it finishes the compensation: the server released, the tickets SEARCHING again
    assert_eq!(summary["resumed"], json!([match_id]));
    assert_eq!(stack.fleet.calls().released.len(), 1);
    for ticket in ["t-1", "t-2"] {
        let t = ticket_record(&stack, ticket).await;
        assert_eq!(
            (t.ticket.status, t.match_id),
            (TicketStatus::Searching, None),
            "{ticket}"
        );
    }
    // AND the session keeps the cause it failed with
    let failed = session(&stack, &match_id).await;
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("PlacementUnavailable")),
        "{:?}",
        failed.reason
    );
    assert_eq!(sweep(&stack, "again").await["resumed"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn a_completion_step_that_fails_twice_shows_each_retry_on_the_timeline() {
    // GIVEN an ACTIVE session on a fleet whose API fails the first two releases
    let (stack, _, active) = active_duel(TestFleet::releasing_after(Some(1), 2)).await;

    // WHEN its server reports the result
    let body = r#"{"type":"result","result":{"scores":{"p-1":3,"p-2":4}}}"#;
    report_from(&stack, &active, "result-0001", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let record = completion(&stack, &active.session_id).await;
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#?}",
        record.status
    );

    // THEN the completion's timeline shows both failed releases, then the release and the publish,
    // each with the execution id and its state
    let entries = timeline(&stack, &active.session_id).await;
    let steps: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.execution_id == record.id.0)
        .map(|e| (e.state.as_str(), e.detail.as_deref().unwrap_or_default()))
        .collect();
    let states: Vec<&str> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        states,
        [
            "ValidateResult",
            "UpdateRatings",
            "MarkEnded",
            "Release",
            "Release",
            "Release",
            "Publish"
        ]
    );
    assert_eq!(
        steps[3].1,
        "attempt 1 failed: Transient: transient failure: the fleet's API is down"
    );
    assert_eq!(
        steps[4].1,
        "attempt 2 failed: Transient: transient failure: the fleet's API is down"
    );
    assert_eq!(
        steps[5].1,
        format!("server released (placement pl-{})", active.session_id)
    );
    assert_eq!(steps[6].1, "ENDED published to the players");
    assert_eq!(stack.fleet.calls().released.len(), 1);
    assert_eq!(stack.fleet.calls().release_failures, 2);
}
