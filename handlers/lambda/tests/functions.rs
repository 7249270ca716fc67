//! Each function of the crate on real AWS events: `tests/fixtures/<function>/<case>.event.json`
//! through the same function the binary runs, compared with `<case>.expected.json` (a refusal is
//! Lambda's `{"errorType", "errorMessage"}`). Adapters are the in-memory ones of queuematch-local;
//! Cognito's keys are a test key pair (`tests/keys/`), its tokens in the fixtures signed with it.

use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyRequest};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use jsonwebtoken::jwk::JwkSet;
use lambda_runtime::{Context, LambdaEvent};
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Placement, PlacementId};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Fleet, PortError, Store, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::Settings;
use queuematch_handlers::push::{self, Connections, Posted, RouteEvent};
use queuematch_handlers::Service;
use queuematch_lambda::cognito::CognitoTokens;
use queuematch_lambda::config::CognitoConfig;
use queuematch_lambda::metrics::Sink;
use queuematch_lambda::{functions, rulesets};
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The instant every fixture happens at: 2023-11-14T22:13:20Z.
const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn fixtures(function: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(function);
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(".event.json")?.to_owned();
            Some((name, dir.clone()))
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no fixtures in {}", dir.display());
    cases
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn test_pool() -> CognitoTokens {
    let config = CognitoConfig {
        issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool".into(),
        client_id: "test-client".into(),
        jwks_url: "unused: the keys are given".into(),
    };
    let jwks: JwkSet = serde_json::from_value(read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/jwks.json"),
    ))
    .unwrap_or_else(|e| panic!("tests/keys/jwks.json: {e}"));
    queuematch_lambda::cognito::from_jwks(&config, &jwks).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn ws_authorizer_fixtures_replay_to_their_expected_responses() {
    let tokens = test_pool();
    let clock = ManualClock::new(NOW);
    for (case, dir) in fixtures("ws-authorizer") {
        let event: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(read_json(&dir.join(format!("{case}.event.json"))))
                .unwrap_or_else(|e| panic!("{case}: not an authorizer event: {e}"));
        let expected = read_json(&dir.join(format!("{case}.expected.json")));
        let actual = match functions::ws_authorizer(&tokens, &clock, LambdaEvent::new(event, Context::default())).await
        {
            Ok(response) => serde_json::to_value(&response).unwrap_or_else(|e| panic!("{case}: {e}")),
            Err(d) => serde_json::json!({"errorType": d.error_type, "errorMessage": d.error_message}),
        };
        assert_eq!(actual, expected, "{case}");
    }
}

#[test]
fn a_token_is_refused_for_what_is_wrong_with_it() {
    // The fixtures show the client only `Unauthorized`; the log says why.
    let tokens = test_pool();
    let token_of = |case: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ws-authorizer");
        read_json(&dir.join(format!("{case}.event.json")))["queryStringParameters"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: no token"))
            .to_owned()
    };
    let verify = |case: &str| tokens.verify(&token_of(case), NOW);
    assert_eq!(
        verify("connect-with-a-valid-token").map(|p| p.to_string()),
        Ok("p-1".into())
    );
    assert_eq!(
        verify("connect-with-an-expired-token"),
        Err("the token expired at 1699993600 (now 1700000000)".into())
    );
    assert_eq!(
        verify("connect-with-a-token-of-another-pool"),
        Err("the token is not from this user pool".into())
    );
    assert_eq!(
        verify("connect-with-a-token-of-another-client"),
        Err("the token is for another app client".into())
    );
    assert_eq!(
        verify("connect-with-a-token-signed-by-an-unknown-key"),
        Err("the token's key \"rotated-away\" is not one of the user pool's".into())
    );
    assert_eq!(
        tokens.verify("not.a.jwt", NOW),
        Err("the token is not a well-formed JWT".into())
    );
}

// ---------------------------------------------------------------- ws-connections and notifier

/// `given.connections`: the connections to seed, each `{"connectionId", "playerId"}`.
async fn seed_connections(store: &MemoryStore, clock: &ManualClock, given: &Value) {
    for c in given["connections"].as_array().into_iter().flatten() {
        let id = c["connectionId"].as_str().unwrap_or_default();
        let player = PlayerId::new(c["playerId"].as_str().unwrap_or_default());
        push::subscribe(store, clock, id, &player)
            .await
            .unwrap_or_else(|e| panic!("seeding {c}: {e}"));
    }
}

/// The connections the store holds for `players`, both items of each present.
async fn connections_of(store: &MemoryStore, players: &BTreeSet<String>) -> Vec<Value> {
    let mut found = Vec::new();
    for player in players {
        let query = Query::new(Index::Table, format!("PLAYER#{player}"), 100).with_prefix("CONN#");
        let page = store.query(query).await.unwrap_or_else(|e| panic!("{e}"));
        for stored in page.items {
            let id = stored.item.key.sk.trim_start_matches("CONN#").to_owned();
            let own = store
                .get(&push::connection_key(&id))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{id} is listed under {player} but has no CONN# item"));
            assert_eq!(own.item.body["playerId"], player.as_str(), "{id}");
            found.push(json!({"connectionId": id, "playerId": player}));
        }
    }
    found
}

fn players_named(values: &[&Value]) -> BTreeSet<String> {
    values
        .iter()
        .flat_map(|v| v["connections"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["playerId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn ws_connections_fixtures_replay_to_their_expected_responses_and_items() {
    for (case, dir) in fixtures("ws-connections") {
        let clock = ManualClock::new(NOW);
        let store = MemoryStore::new(clock.clone());
        let given = read_json(&dir.join(format!("{case}.given.json")));
        let expected = read_json(&dir.join(format!("{case}.expected.json")));
        seed_connections(&store, &clock, &given).await;
        let event: RouteEvent = serde_json::from_value(read_json(&dir.join(format!("{case}.event.json"))))
            .unwrap_or_else(|e| panic!("{case}: not a WebSocket route event: {e}"));
        let response = functions::ws_connections(&store, &clock, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{case}: {}", e.error_message));
        let response = serde_json::to_value(&response).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(response, expected["response"], "{case}: response");
        let players = players_named(&[&given, &expected]);
        assert_eq!(
            Value::Array(connections_of(&store, &players).await),
            expected["connections"],
            "{case}: connections afterwards"
        );
    }
}

/// API Gateway's management API as the notifier sees it: connections in `gone` are closed.
#[derive(Debug, Default)]
struct RecordingConnections {
    gone: BTreeSet<String>,
    posted: Mutex<Vec<(String, Value)>>,
}

#[async_trait::async_trait]
impl Connections for RecordingConnections {
    async fn post(&self, connection_id: &str, message: &[u8]) -> Result<Posted, PortError> {
        if self.gone.contains(connection_id) {
            return Ok(Posted::Gone);
        }
        let message: Value = serde_json::from_slice(message).map_err(|e| PortError::invalid(e.to_string()))?;
        self.posted
            .lock()
            .unwrap_or_else(|e| panic!("{e}"))
            .push((connection_id.to_owned(), message));
        Ok(Posted::Sent)
    }
}

#[tokio::test]
async fn notifier_fixtures_replay_to_their_expected_pushes() {
    for (case, dir) in fixtures("notifier") {
        let clock = ManualClock::new(NOW);
        let store = MemoryStore::new(clock.clone());
        let given = read_json(&dir.join(format!("{case}.given.json")));
        let expected = read_json(&dir.join(format!("{case}.expected.json")));
        seed_connections(&store, &clock, &given).await;
        let connections = RecordingConnections {
            gone: given["gone"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            ..RecordingConnections::default()
        };
        let raw = read_json(&dir.join(format!("{case}.event.json")));
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{case}: not an EventBridge event: {e}"));
        let response =
            match functions::notifier(&store, &connections, LambdaEvent::new(event, Context::default())).await {
                Ok(response) => response,
                Err(d) => json!({"errorType": d.error_type, "errorMessage": d.error_message}),
            };
        assert_eq!(response, expected["response"], "{case}: response");
        let posted = connections.posted.into_inner().unwrap_or_else(|e| panic!("{e}"));
        for (id, message) in &posted {
            assert_eq!(
                message, &raw["detail"],
                "{case}: {id} was sent the event's detail as it is"
            );
        }
        let ids: Vec<&str> = posted.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(json!(ids), expected["posted"], "{case}: posted to");
        let players = players_named(&[&given, &expected]);
        assert_eq!(
            Value::Array(connections_of(&store, &players).await),
            expected["connections"],
            "{case}: connections afterwards"
        );
    }
}

// ---------------------------------------------------------------- the Lambda boundary of the others
// handlers/tests/fixtures.rs replays every fixture of these functions through their handlers, with
// the state each `given` seeds; here a few whose answer needs no state go through the functions the
// binaries run, to show the boundary: batch failures, HTTP responses, and task errors as errorType.

/// A fleet with no server free; these fixtures never reach it.
#[derive(Debug)]
struct NoServers;

#[async_trait::async_trait]
impl Fleet for NoServers {
    async fn place(&self, _: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        Err(PortError::PlacementUnavailable("no server free".into()))
    }
    async fn poll(&self, _: &PlacementId) -> Result<Placement, PortError> {
        Err(PortError::PlacementUnavailable("no server free".into()))
    }
    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}

/// Starts every workflow it is asked to.
#[derive(Debug)]
struct AcceptingWorkflows;

#[async_trait::async_trait]
impl Workflows for AcceptingWorkflows {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!(
            "arn:aws:states:eu-west-1:123456789012:execution:{definition}:{name}"
        )))
    }
}

type LocalService = Service<MemoryStore, MemoryQueue, AcceptingWorkflows, EventBus, Arc<ManualClock>, DevTokens>;

fn service_at(given: &Value) -> LocalService {
    let clock = Arc::new(ManualClock::new(Timestamp(
        given["now"].as_u64().unwrap_or_else(|| panic!("given.now")),
    )));
    Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: AcceptingWorkflows,
        events: EventBus::new(64),
        clock,
        party_tokens: DevTokens::new(b"fixture secret"),
        queues: Arc::new(rulesets::queues().unwrap_or_else(|e| panic!("{e}"))),
        settings: Arc::new(Settings::default()),
    }
}

fn fixture(function: &str, case: &str) -> (Value, Value, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(function);
    let read = |suffix: &str| read_json(&dir.join(format!("{case}.{suffix}.json")));
    (read("event"), read("given"), read("expected"))
}

#[tokio::test]
async fn matcher_reports_an_unparseable_message_as_a_batch_item_failure() {
    let (event, given, expected) = fixture("matcher", "unparseable-message-goes-to-the-dlq");
    let event: SqsEvent = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
    let response = functions::matcher(
        &service_at(&given),
        LambdaEvent::new(event, Context::default()),
        &Sink::Memory(Default::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(
        serde_json::to_value(&response).unwrap_or_else(|e| panic!("{e}")),
        expected
    );
}

#[tokio::test]
async fn tickets_api_answers_a_request_without_a_caller_with_a_401_problem() {
    let (event, given, expected) = fixture("tickets-api", "no-caller");
    let event: ApiGatewayProxyRequest = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
    let response = functions::tickets_api(
        &service_at(&given),
        LambdaEvent::new(event, Context::default()),
        &Sink::Memory(Default::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(expected["statusCode"].as_i64(), Some(response.status_code));
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{e}")),
        other => panic!("not a text body: {other:?}"),
    };
    assert_eq!(body, expected["body"]);
}

#[tokio::test]
async fn workflow_tasks_fail_with_the_errortype_the_workflow_matches_on() {
    let (event, given, expected) = fixture("workflow-tasks", "an-unknown-task-is-invalid");
    let failure = functions::workflow_tasks(
        &service_at(&given),
        &NoServers,
        LambdaEvent::new(event, Context::default()),
        &Sink::Memory(Default::default()),
    )
    .await
    .map(|ok| panic!("the task succeeded: {ok}"))
    .unwrap_or_else(|d| json!({"errorType": d.error_type, "errorMessage": d.error_message}));
    assert_eq!(failure, expected);
}

#[tokio::test]
async fn sweeper_takes_the_schedulers_event_and_answers_what_it_swept() {
    // The fixture's event, on a store with nothing to sweep: handlers/tests/fixtures.rs replays it
    // with its tickets seeded; here it shows the scheduler's event shape reaching the sweep.
    let (event, given, _) = fixture("sweeper", "a-ticket-past-its-timeout-is-timed-out");
    let event: EventBridgeEvent<Value> = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}"));
    let swept = functions::sweeper(
        &service_at(&given),
        &NoServers,
        LambdaEvent::new(event, Context::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.error_message));
    assert_eq!(
        swept,
        json!({"timedOut": [], "failedSessions": [], "restarted": [], "resumed": [], "abandoned": [], "completing": []})
    );
}

/// An API Gateway proxy event of `/v1/ops/…` as the REST API sends it behind the Cognito
/// authorizer: the claims are strings, and a user's groups are `cognito:groups`.
fn ops_event(method: &str, resource: &str, query: Value, claims: Value) -> ApiGatewayProxyRequest {
    let multi: serde_json::Map<String, Value> = query
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    serde_json::from_value(json!({
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": if multi.is_empty() { Value::Null } else { query.clone() },
        "multiValueQueryStringParameters": if multi.is_empty() { Value::Null } else { Value::Object(multi) },
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abc123",
            "stage": "live",
            "requestId": "00000000-0000-0000-0000-000000000001",
            "identity": {"sourceIp": "203.0.113.7"},
            "resourcePath": resource,
            "httpMethod": method,
            "apiId": "a1b2c3d4e5",
            "authorizer": {"claims": claims},
        },
        "body": null,
        "isBase64Encoded": false,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn ops(event: ApiGatewayProxyRequest) -> (i64, Value) {
    let service = service_at(&json!({"now": NOW.0}));
    let response = functions::ops_api(&service, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap_or_else(|e| panic!("{}", e.error_message));
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{e}")),
        other => panic!("not a text body: {other:?}"),
    };
    (response.status_code, body)
}

#[tokio::test]
async fn ops_api_answers_the_operators_group_only_and_names_a_bad_filter() {
    let operator = json!({"sub": "0f1e2d3c", "email": "ops@example.com", "cognito:groups": "operators"});
    let player = json!({"sub": "a1b2c3d4", "email": "p@example.com"});

    let (status, body) = ops(ops_event("GET", "/v1/ops/queues", json!({}), operator.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ticketsQueue"],
        json!({"visible": 0, "inFlight": 0, "delayed": 0, "dead": 0})
    );
    let queues: Vec<&str> = body["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert!(queues.contains(&"ranked-1v1"), "every rule set bundled: {queues:?}");

    let (status, body) = ops(ops_event("GET", "/v1/ops/queues", json!({}), player)).await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = ops(ops_event(
        "GET",
        "/v1/ops/tickets",
        json!({"status": "NOPE"}),
        operator.clone(),
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/query/status");

    let (status, body) = ops(ops_event("POST", "/v1/ops/dlq/redrive", json!({}), operator)).await;
    assert_eq!((status, body), (200, json!({"moved": 0})));
}
