//! Every fixture under `tests/fixtures/<function>/` replays through its handler to its expected
//! response. A fixture is an AWS event in its exact shape (`<case>.event.json`), the state to seed
//! first (`<case>.given.json`: the clock, ticket messages admitted beforehand, pool rounds run, and
//! for `workflow-tasks` and `sweeper` the fleet's answer, the tasks run before and the time that passes after
//! them, `elapsedMs`), and the response
//! (`<case>.expected.json`; for a task that fails, its `{"errorType", "errorMessage"}`).

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::items::PoolRef;
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Fleet, PortError, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::messages::Message;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_handlers::{matcher, sweeper, tickets_api, workflow_tasks, Service};
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Starts nothing, as a Step Functions API that accepts every start; the engine's adapter comes
/// with the local stack, and these fixtures are about the handlers' responses.
#[derive(Debug, Default)]
struct AcceptingWorkflows;

#[async_trait::async_trait]
impl Workflows for AcceptingWorkflows {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!(
            "arn:aws:states:local:000000000000:execution:{definition}:{name}"
        )))
    }
}

/// A fleet that answers every placement the same way, as `given.fleet` says: `ready` (a server at
/// 127.0.0.1:7777 at once), `pending` (never ready), or `full` (no server free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FixtureFleet {
    Ready,
    Pending,
    Full,
}

impl FixtureFleet {
    fn from_given(given: &Value) -> Self {
        match given["fleet"].as_str().unwrap_or("ready") {
            "ready" => FixtureFleet::Ready,
            "pending" => FixtureFleet::Pending,
            "full" => FixtureFleet::Full,
            other => panic!("given.fleet is ready, pending or full, not {other}"),
        }
    }

    fn answer(self, placement: PlacementId) -> Result<Placement, PortError> {
        match self {
            FixtureFleet::Ready => Ok(Placement::Ready {
                placement,
                endpoint: Endpoint {
                    address: "127.0.0.1".into(),
                    port: 7777,
                },
            }),
            FixtureFleet::Pending => Ok(Placement::Pending { placement }),
            FixtureFleet::Full => Err(PortError::PlacementUnavailable(
                "no server free in the fixture fleet".into(),
            )),
        }
    }
}

#[async_trait::async_trait]
impl Fleet for FixtureFleet {
    async fn place(&self, session: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        self.answer(PlacementId(format!("pl-{session}")))
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        self.answer(placement.clone())
    }
    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}

type LocalService = Service<MemoryStore, MemoryQueue, AcceptingWorkflows, EventBus, Arc<ManualClock>, DevTokens>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn queues() -> Queues {
    let dir = repo().join("examples/rulesets");
    let mut rule_sets = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rule_sets.push(RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    Queues::new(rule_sets)
}

async fn seeded(given: &Value) -> LocalService {
    let now = Timestamp(given["now"].as_u64().unwrap_or_else(|| panic!("given.now is epoch ms")));
    let clock = Arc::new(ManualClock::new(now));
    let service = Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: AcceptingWorkflows,
        events: EventBus::new(64),
        clock,
        party_tokens: DevTokens::new(b"fixture secret"),
        queues: Arc::new(queues()),
        settings: Arc::new(Settings::default()),
    };
    let admission = service.admission();
    for message in given["admitted"].as_array().into_iter().flatten() {
        let Ok(Message::Ticket(message)) = Message::parse(&message.to_string()) else {
            panic!("given.admitted holds ticket messages, not {message}");
        };
        admission
            .admit(&message)
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", message.ticket_id));
    }
    let rounds = service.rounds();
    for pool in given["rounds"].as_array().into_iter().flatten() {
        let pool: PoolRef = serde_json::from_value(pool.clone()).unwrap_or_else(|e| panic!("given.rounds: {e}"));
        rounds
            .run(&pool, "fixture")
            .await
            .unwrap_or_else(|e| panic!("seeding a round of {pool:?}: {e}"));
    }
    service
}

/// The cases of one function: `(name, event, given, expected)`.
fn cases(function: &str) -> Vec<(String, Value, Value, Value)> {
    let dir = repo().join("tests/fixtures").join(function);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".event.json")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixtures in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let event = read_json(&dir.join(format!("{name}.event.json")));
            let given_path = dir.join(format!("{name}.given.json"));
            let given = if given_path.exists() {
                read_json(&given_path)
            } else {
                serde_json::json!({"now": 0})
            };
            let expected = read_json(&dir.join(format!("{name}.expected.json")));
            (name, event, given, expected)
        })
        .collect()
}

#[tokio::test]
async fn every_matcher_fixture_replays_to_its_expected_response() {
    for (name, event, given, expected) in cases("matcher") {
        let service = seeded(&given).await;
        let event: SqsEvent = serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: not an SqsEvent: {e}"));
        let outcome = matcher::handle(&service, event, "fixture").await;
        let response = serde_json::to_value(&outcome.response).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response, expected, "{name}: {outcome:#?}");
    }
}

fn comparable(response: &ApiGatewayProxyResponse) -> Value {
    let body = match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Some(other) => panic!("unexpected body {other:?}"),
        None => Value::Null,
    };
    let content_type = response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    serde_json::json!({"statusCode": response.status_code, "headers": {"content-type": content_type}, "body": body})
}

#[tokio::test]
async fn every_tickets_api_fixture_replays_to_its_expected_response() {
    for (name, event, given, expected) in cases("tickets-api") {
        let service = seeded(&given).await;
        let request: ApiGatewayProxyRequest =
            serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: not an API Gateway proxy event: {e}"));
        let response = tickets_api::handle(&service, request).await;
        assert_eq!(comparable(&response), expected, "{name}");
    }
}

/// A task's result as Lambda reports it: its output, or its function error.
fn task_result(result: Result<Value, workflow_tasks::TaskFailure>) -> Value {
    match result {
        Ok(output) => output,
        Err(failure) => serde_json::to_value(failure).unwrap_or_else(|e| panic!("{e}")),
    }
}

#[tokio::test]
async fn every_workflow_tasks_fixture_replays_to_its_expected_response() {
    for (name, event, given, expected) in cases("workflow-tasks") {
        let service = seeded(&given).await;
        let fleet = FixtureFleet::from_given(&given);
        for (i, task) in given["tasks"].as_array().into_iter().flatten().enumerate() {
            workflow_tasks::handle(&service, &fleet, task.clone())
                .await
                .unwrap_or_else(|e| panic!("{name}: given.tasks[{i}] failed: {e}"));
        }
        service.clock.advance(std::time::Duration::from_millis(
            given["elapsedMs"].as_u64().unwrap_or(0),
        ));
        let result = workflow_tasks::handle(&service, &fleet, event).await;
        assert_eq!(task_result(result), expected, "{name}");
    }
}

#[tokio::test]
async fn every_sweeper_fixture_replays_to_its_expected_response() {
    for (name, event, given, expected) in cases("sweeper") {
        let service = seeded(&given).await;
        let fleet = FixtureFleet::from_given(&given);
        let event: EventBridgeEvent =
            serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: not an EventBridge event: {e}"));
        let result = sweeper::handle(&service, &fleet, event).await;
        assert_eq!(task_result(result), expected, "{name}");
    }
}

#[tokio::test]
async fn a_matched_batch_leaves_its_tickets_placing() {
    // The response of `two-tickets-match` is an empty failure list; this checks what it did.
    let (_, event, given, _) = cases("matcher")
        .into_iter()
        .find(|(n, ..)| n == "two-tickets-match")
        .unwrap_or_else(|| panic!("fixture"));
    let service = seeded(&given).await;
    let event: SqsEvent = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
    let outcome = matcher::handle(&service, event, "fixture").await;
    assert_eq!(outcome.admitted, 2);
    assert_eq!(outcome.rounds.len(), 1);
    assert_eq!(outcome.rounds[0].1.matches.len(), 1);
}
