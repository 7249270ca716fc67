//! The functions' CloudWatch metrics (EMF) on real events: a matcher batch of
//! `tests/fixtures/matcher/` through the matcher's handler, and domain events through [`Metered`].

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use queuematch_core::event::{AcceptanceOutcome, DomainEvent};
use queuematch_core::ids::{MatchId, PlayerId, TicketId};
use queuematch_core::ports::Clock;
use queuematch_core::ports::Events;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::Queues;
use queuematch_core::{Party, Player, Ticket};
use queuematch_handlers::{matcher, workflow_tasks};
use queuematch_lambda::functions;
use queuematch_lambda::metrics::{self, Metered, Sink};
use queuematch_lambda::rulesets;
use queuematch_local::events::Delivery;
use queuematch_local::replay::fixtures::{self, Fixture, FixtureFleet};
use queuematch_local::{EventBus, ManualClock};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn a_matched_batch_gives_its_queue_s_metrics() {
    // GIVEN two ranked-1v1 tickets (skills 1500 and 1530, 5 ms to `local`) in one batch
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/matcher/two-tickets-match.event.json");
    let fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let queues: Arc<Queues> = Arc::new(rulesets::queues().unwrap_or_else(|e| panic!("{e}")));
    let service = fixtures::seeded(&fixture, &queues)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    // WHEN the matcher handles it
    let outcome = matcher::handle(&service, event, "metrics").await;
    let now = Timestamp(1_800_000_000_000);
    let records = metrics::batch_records(&outcome, now);
    // THEN one EMF line for ranked-1v1 counts both tickets in, one match, nobody left, and its quality
    assert_eq!(records.len(), 1);
    let lines = records[0].to_emf();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["queue"], "ranked-1v1");
    assert_eq!(line["_aws"]["Timestamp"], json!(now.0));
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "queuematch");
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["queue"]]));
    assert_eq!(line["TicketsStarted"], json!(2.0));
    assert_eq!(line["MatchesCreated"], json!(1.0));
    assert_eq!(line["CurrentTickets"], json!(0.0));
    assert_eq!(line["SkillSpread"], json!(30.0));
    assert_eq!(line["WorstLatency"], json!(5.0));
    assert_eq!(line["TimeToMatch"].as_array().map(Vec::len), Some(2), "{line}");
    assert!(line.get("TicketsTimedOut").is_none(), "{line}");
    // Every value has its definition, and every definition its value.
    let declared: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("{line}"))
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    let mut present: Vec<&str> = line
        .as_object()
        .unwrap_or_else(|| panic!("{line}"))
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "_aws" && *k != "queue")
        .collect();
    let mut sorted = declared.clone();
    sorted.sort_unstable();
    present.sort_unstable();
    assert_eq!(sorted, present);

    // WHEN its session is made ACTIVE five seconds after the match
    let matched = &outcome.rounds[0].1.matches[0];
    let placed = metrics::placed_record(matched, matched.created_at.plus(Duration::from_secs(5)));
    // THEN the match is placed, and each ticket waited its wait for the match, then five seconds
    let line = &placed.to_emf()[0];
    assert_eq!(line["queue"], "ranked-1v1");
    assert_eq!(line["MatchesPlaced"], json!(1.0));
    let expected: Vec<Value> = matched
        .quality
        .waits_ms
        .iter()
        .map(|wait| json!(5000.0 + *wait as f64))
        .collect();
    assert_eq!(line["TimeToTicketSuccess"], Value::Array(expected));
}

#[test]
fn a_cancel_gives_its_ticket_s_wait_for_its_queue() {
    let party: Party = vec![Player::new(PlayerId::new("p-1"))];
    let ticket = Ticket::queued("t-1", "coop-4", party, Timestamp(1_000_000));
    let record = metrics::cancel_record(&ticket, Timestamp(1_012_500));
    let line = &record.to_emf()[0];
    assert_eq!(line["queue"], "coop-4");
    assert_eq!(line["TimeToTicketCancel"], json!(12_500.0));
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        json!([{"Name": "TimeToTicketCancel", "Unit": "Milliseconds"}])
    );
}

#[tokio::test]
async fn metered_events_are_published_and_counted_service_wide() {
    let lines = Arc::new(Mutex::new(Vec::<Value>::new()));
    let bus = EventBus::new(16);
    let mut subscription = bus.subscribe();
    let events = Metered {
        inner: bus,
        clock: ManualClock::new(Timestamp(42)),
        sink: Sink::Memory(lines.clone()),
    };
    let player_ids = vec![PlayerId::new("p-1")];
    events
        .publish(DomainEvent::MatchmakingSearching {
            ticket_id: TicketId::from("t-1"),
            player_ids: player_ids.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events
        .publish(DomainEvent::AcceptMatchCompleted {
            match_id: MatchId::from("m-1"),
            acceptance: AcceptanceOutcome::Rejected,
            player_ids,
            reason: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Both reach the bus; only the rejection is a metric.
    for expected in ["MatchmakingSearching", "AcceptMatchCompleted"] {
        match subscription.next().await {
            Some(Delivery::Event(event)) => assert!(format!("{event:?}").starts_with(expected), "{event:?}"),
            other => panic!("{other:?}"),
        }
    }
    let lines = lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert_eq!(
        lines,
        vec![json!({
            "_aws": {
                "Timestamp": 42,
                "CloudWatchMetrics": [{
                    "Namespace": "queuematch",
                    "Dimensions": [[]],
                    "Metrics": [{"Name": "MatchesRejected", "Unit": "Count"}],
                }],
            },
            "MatchesRejected": 1.0,
        })]
    );
}

fn fixture_path(function: &str, case: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(function)
        .join(format!("{case}.event.json"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn memory_sink() -> (Sink, Arc<Mutex<Vec<Value>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    (Sink::Memory(lines.clone()), lines)
}

fn taken(lines: &Arc<Mutex<Vec<Value>>>) -> Vec<Value> {
    std::mem::take(&mut *lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

#[tokio::test]
async fn the_tickets_api_counts_a_cancel_once() {
    // GIVEN a searching ticket, created at 1799999999000, and the player's DELETE of it
    let path = fixture_path("tickets-api", "cancel-a-searching-ticket");
    let fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let queues: Arc<Queues> = Arc::new(rulesets::queues().unwrap_or_else(|e| panic!("{e}")));
    let service = fixtures::seeded(&fixture, &queues)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event: ApiGatewayProxyRequest = serde_json::from_value(read_json(&path)).unwrap_or_else(|e| panic!("{e}"));
    let (sink, lines) = memory_sink();
    // WHEN the function answers it
    let response = functions::tickets_api(&service, LambdaEvent::new(event.clone(), Context::default()), &sink)
        .await
        .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(response.status_code, 200);
    // THEN its queue's TimeToTicketCancel is the ticket's age
    let lines = taken(&lines);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["queue"], "ranked-1v1");
    let age = service.clock.now().since(Timestamp(1_799_999_999_000)).as_millis() as f64;
    assert_eq!(lines[0]["TimeToTicketCancel"], json!(age));
    // AND the same DELETE again, answered the same, counts nothing
    let (sink, again) = memory_sink();
    let response = functions::tickets_api(&service, LambdaEvent::new(event, Context::default()), &sink)
        .await
        .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(response.status_code, 200);
    assert!(taken(&again).is_empty());
}

#[tokio::test]
async fn workflow_tasks_count_a_placed_match_once() {
    // GIVEN a match placed on a ready server (the fixture's tasks run first)
    let path = fixture_path("workflow-tasks", "activate");
    let fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let queues: Arc<Queues> = Arc::new(rulesets::queues().unwrap_or_else(|e| panic!("{e}")));
    let service = fixtures::seeded(&fixture, &queues)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let given = read_json(&path.with_file_name("activate.given.json"));
    let fleet = FixtureFleet::Ready;
    for task in given["tasks"].as_array().into_iter().flatten() {
        workflow_tasks::handle(&service, &fleet, task.clone())
            .await
            .unwrap_or_else(|e| panic!("{task}: {e:?}"));
    }
    service
        .clock
        .advance(Duration::from_millis(given["elapsedMs"].as_u64().unwrap_or(0)));
    let event = read_json(&path);
    let (sink, lines) = memory_sink();
    // WHEN the activate task runs
    let output = functions::workflow_tasks(
        &service,
        &fleet,
        LambdaEvent::new(event.clone(), Context::default()),
        &sink,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(output["status"], "ACTIVE");
    // THEN the match is placed for its queue, with each ticket's time from creation
    let lines = taken(&lines);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["queue"], "ranked-1v1");
    assert_eq!(lines[0]["MatchesPlaced"], json!(1.0));
    let created = Timestamp(1_799_999_999_000);
    let age = service.clock.now().since(created).as_millis() as f64;
    assert_eq!(lines[0]["TimeToTicketSuccess"], json!([age, age]));
    // AND Express running the task again counts nothing more
    let (sink, again) = memory_sink();
    functions::workflow_tasks(&service, &fleet, LambdaEvent::new(event, Context::default()), &sink)
        .await
        .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert!(taken(&again).is_empty());
}
