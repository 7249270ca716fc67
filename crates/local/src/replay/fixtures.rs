//! Replayable fixtures: `tests/fixtures/<function>/<case>.event.json` is an AWS event in its exact
//! shape, fed to the handler of `<function>` on the local stack's in-memory ports. Beside it:
//!
//! - `<case>.given.json`, the state to seed first: the clock (`now`, epoch ms; 2023-11-14T22:13:20Z
//!   when left out), ticket messages admitted beforehand (`admitted`), pool rounds run (`rounds`),
//!   for `workflow-tasks` and `sweeper` the fleet's answer (`fleet`: `ready`, `pending` or `full`),
//!   the tasks run before (`tasks`) and the time that passes after them (`elapsedMs`), for the
//!   WebSocket functions the connections (`connections`) and those found closed (`gone`), and for
//!   `ws-authorizer` the Cognito user pool whose tokens it checks (`userPool`: a file beside the
//!   fixture holding `{"issuer", "clientId", "jwks"}`);
//! - `<case>.expected.json`, the response: for a function that fails, Lambda's `{"errorType",
//!   "errorMessage"}`; for an HTTP route, `{"statusCode", "headers": {"content-type"} (and
//!   `"allow"` on a 405), "body"}` with the body as JSON; for the WebSocket functions, `{"response", "connections"}` (and
//!   `"posted"`, the connections the notifier sent to), the connections being what the store holds
//!   afterwards for the players the fixture names.
//!
//! `queuematch replay FIXTURE|DIR` and the fixtures' test both call [`replay_path`].

use super::{differences, parse_json, AcceptingWorkflows, JsonError};
use crate::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyRequest, ApiGatewayProxyResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use jsonwebtoken::jwk::JwkSet;
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::items::PoolRef;
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::{Clock, Fleet, PortError, Store};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::messages::Message;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_handlers::cognito::CognitoTokens;
use queuematch_handlers::push::{self, Connections, Posted, RouteEvent};
use queuematch_handlers::ws_authorizer;
use queuematch_handlers::{matcher, session_reports, sweeper, tickets_api, workflow_tasks, Service};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The instant a fixture happens at when its `given` names none: 2023-11-14T22:13:20Z.
pub const DEFAULT_NOW: Timestamp = Timestamp(1_700_000_000_000);

/// What is wrong with a fixture, naming the file and, within it, the line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{error}")]
    Json { path: String, error: JsonError },
    #[error("{path}: not a fixture: a fixture is the event `<case>.event.json` of tests/fixtures/<function>/")]
    NotAFixture { path: String },
    #[error("{path}: no fixture (`*.event.json`) in it")]
    Empty { path: String },
    #[error("{path}: the directory `{dir}` names no function; fixtures live in <function>/, one of: {known}")]
    UnknownFunction { path: String, dir: String, known: String },
    #[error("{path}: {field}: {message}")]
    Given {
        path: String,
        field: String,
        message: String,
    },
}

impl FixtureError {
    fn read(path: &Path, source: std::io::Error) -> Self {
        FixtureError::Read {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The functions with fixtures, by the name of their directory (the function's in the template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Matcher,
    TicketsApi,
    SessionReports,
    WorkflowTasks,
    Sweeper,
    WsAuthorizer,
    WsConnections,
    Notifier,
}

impl Function {
    pub const ALL: [Function; 8] = [
        Function::Matcher,
        Function::TicketsApi,
        Function::SessionReports,
        Function::WorkflowTasks,
        Function::Sweeper,
        Function::WsAuthorizer,
        Function::WsConnections,
        Function::Notifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Matcher => "matcher",
            Function::TicketsApi => "tickets-api",
            Function::SessionReports => "session-reports",
            Function::WorkflowTasks => "workflow-tasks",
            Function::Sweeper => "sweeper",
            Function::WsAuthorizer => "ws-authorizer",
            Function::WsConnections => "ws-connections",
            Function::Notifier => "notifier",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the fixture fleet answers every placement and poll: `given.fleet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FixtureFleet {
    /// A server at 127.0.0.1:7777, at once.
    #[default]
    Ready,
    /// Never ready.
    Pending,
    /// No server free.
    Full,
}

impl FixtureFleet {
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

/// A WebSocket connection to seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionSeed {
    connection_id: String,
    player_id: String,
}

/// `<case>.given.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Given {
    now: Option<u64>,
    #[serde(default)]
    admitted: Vec<Value>,
    #[serde(default)]
    rounds: Vec<PoolRef>,
    #[serde(default)]
    fleet: FixtureFleet,
    #[serde(default)]
    tasks: Vec<Value>,
    #[serde(default)]
    elapsed_ms: u64,
    #[serde(default)]
    connections: Vec<ConnectionSeed>,
    #[serde(default)]
    gone: Vec<String>,
    user_pool: Option<String>,
}

/// A Cognito user pool, as `given.userPool` names it: its issuer, the app client, its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserPool {
    issuer: String,
    client_id: String,
    jwks: JwkSet,
}

/// One fixture, read and parsed.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The event file.
    pub path: PathBuf,
    pub function: Function,
    /// `<case>`.
    pub case: String,
    event: String,
    given: Given,
    given_path: PathBuf,
    pub expected: Option<Value>,
}

/// The event files `path` names: itself, if it is one, or every `*.event.json` under it, in order.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let meta = std::fs::metadata(path).map_err(|e| FixtureError::read(path, e))?;
    if !meta.is_dir() {
        return if is_event(path) {
            Ok(vec![path.to_owned()])
        } else {
            Err(FixtureError::NotAFixture {
                path: path.display().to_string(),
            })
        };
    }
    let mut found = Vec::new();
    walk(path, &mut found)?;
    found.sort();
    if found.is_empty() {
        return Err(FixtureError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(found)
}

fn is_event(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".event.json") && n.len() > ".event.json".len())
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), FixtureError> {
    for entry in std::fs::read_dir(dir).map_err(|e| FixtureError::read(dir, e))? {
        let path = entry.map_err(|e| FixtureError::read(dir, e))?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if is_event(&path) {
            found.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, FixtureError> {
    std::fs::read_to_string(path).map_err(|e| FixtureError::read(path, e))
}

fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FixtureError> {
    parse_json(text).map_err(|error| FixtureError::Json {
        path: path.display().to_string(),
        error,
    })
}

impl Fixture {
    /// Reads the fixture whose event is at `path`, with its `given` and `expected` beside it.
    pub fn load(path: &Path) -> Result<Self, FixtureError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(case) = name.strip_suffix(".event.json").filter(|c| !c.is_empty()) else {
            return Err(FixtureError::NotAFixture {
                path: path.display().to_string(),
            });
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir_name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .unwrap_or_default();
        let function = Function::from_name(&dir_name).ok_or_else(|| FixtureError::UnknownFunction {
            path: path.display().to_string(),
            dir: dir_name.clone(),
            known: Function::ALL.map(Function::name).join(", "),
        })?;
        let event = read(path)?;
        // Parsed now so that a fixture that is not JSON is refused before anything runs.
        parse::<Value>(path, &event)?;
        let given_path = dir.join(format!("{case}.given.json"));
        let given = if given_path.exists() {
            parse(&given_path, &read(&given_path)?)?
        } else {
            Given::default()
        };
        let expected_path = dir.join(format!("{case}.expected.json"));
        let expected = if expected_path.exists() {
            Some(parse(&expected_path, &read(&expected_path)?)?)
        } else {
            None
        };
        Ok(Self {
            path: path.to_owned(),
            function,
            case: case.to_owned(),
            event,
            given,
            given_path,
            expected,
        })
    }

    fn event<T: DeserializeOwned>(&self) -> Result<T, FixtureError> {
        parse(&self.path, &self.event)
    }

    fn given_error(&self, field: String, message: impl fmt::Display) -> FixtureError {
        FixtureError::Given {
            path: self.given_path.display().to_string(),
            field,
            message: message.to_string(),
        }
    }
}

/// A fixture's response, next to what was expected of it.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub path: PathBuf,
    pub function: Function,
    pub response: Value,
    pub expected: Option<Value>,
}

impl Replayed {
    /// The differences from the expected response, each at its JSON path; empty when it matches or
    /// when nothing is expected.
    pub fn differences(&self) -> Vec<String> {
        self.expected
            .as_ref()
            .map(|expected| differences(&self.response, expected))
            .unwrap_or_default()
    }
}

/// The ports a fixture runs on: in memory, on a manual clock, starting no workflow.
pub type FixtureService = Service<MemoryStore, MemoryQueue, AcceptingWorkflows, EventBus, Arc<ManualClock>, DevTokens>;

/// Seeds the fixture's `given` on fresh in-memory ports serving `queues`.
pub async fn seeded(fixture: &Fixture, queues: &Arc<Queues>) -> Result<FixtureService, FixtureError> {
    let given = &fixture.given;
    let clock = Arc::new(ManualClock::new(given.now.map_or(DEFAULT_NOW, Timestamp)));
    let service = Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: AcceptingWorkflows,
        events: EventBus::new(64),
        clock,
        party_tokens: DevTokens::new(b"fixture secret"),
        queues: queues.clone(),
        settings: Arc::new(Settings::default()),
    };
    let admission = service.admission();
    for (i, message) in given.admitted.iter().enumerate() {
        let field = format!("$.admitted[{i}]");
        let message = match Message::parse(&message.to_string()) {
            Ok(Message::Ticket(message)) => message,
            Ok(Message::PoolTick(_)) => return Err(fixture.given_error(field, "a pool tick, not a ticket message")),
            Err(e) => return Err(fixture.given_error(field, e)),
        };
        admission
            .admit(&message)
            .await
            .map_err(|e| fixture.given_error(field, format!("admitting it failed: {e}")))?;
    }
    let rounds = service.rounds();
    for (i, pool) in given.rounds.iter().enumerate() {
        rounds
            .run(pool, "fixture")
            .await
            .map_err(|e| fixture.given_error(format!("$.rounds[{i}]"), format!("the round failed: {e}")))?;
    }
    for seed in &given.connections {
        push::subscribe(
            &service.store,
            &service.clock,
            &seed.connection_id,
            &PlayerId::new(seed.player_id.as_str()),
        )
        .await
        .map_err(|e| fixture.given_error("$.connections".into(), e))?;
    }
    Ok(service)
}

/// An HTTP response as fixtures expect it: status, content type, and the body as JSON.
fn http_response(response: &ApiGatewayProxyResponse) -> Value {
    let body = match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Some(Body::Binary(bytes)) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        _ => Value::Null,
    };
    let content_type = response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut headers = json!({"content-type": content_type});
    // A 405's methods, when the handler says them.
    if let Some(allow) = response.headers.get("allow").and_then(|v| v.to_str().ok()) {
        headers["allow"] = json!(allow);
    }
    json!({"statusCode": response.status_code, "headers": headers, "body": body})
}

/// A result in Lambda's shape: the output, or the function error.
fn lambda_result<E: serde::Serialize>(result: Result<Value, E>) -> Value {
    match result {
        Ok(output) => output,
        Err(failure) => serde_json::to_value(failure).unwrap_or(Value::Null),
    }
}

/// Every connection the store holds for `players`, in order.
async fn connections_of(store: &MemoryStore, players: &BTreeSet<String>) -> Result<Value, PortError> {
    let mut found = Vec::new();
    for player in players {
        let query = Query::new(Index::Table, format!("PLAYER#{player}"), 100).with_prefix("CONN#");
        for stored in store.query(query).await?.items {
            let id = stored.item.key.sk.trim_start_matches("CONN#").to_owned();
            found.push(json!({"connectionId": id, "playerId": player}));
        }
    }
    Ok(Value::Array(found))
}

/// API Gateway's management API as the notifier sees it: the `given.gone` connections are closed.
#[derive(Debug, Default)]
struct RecordingConnections {
    gone: BTreeSet<String>,
    posted: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Connections for RecordingConnections {
    async fn post(&self, connection_id: &str, _message: &[u8]) -> Result<Posted, PortError> {
        if self.gone.contains(connection_id) {
            return Ok(Posted::Gone);
        }
        crate::lock(&self.posted).push(connection_id.to_owned());
        Ok(Posted::Sent)
    }
}

/// The players a WebSocket fixture names: its seeded connections', and the event's own (the
/// `$connect` authorizer's principal, a domain event's players).
fn players_named(given: &Given, event: &Value) -> BTreeSet<String> {
    let mut players: BTreeSet<String> = given.connections.iter().map(|c| c.player_id.clone()).collect();
    if let Some(p) = event["requestContext"]["authorizer"]["principalId"].as_str() {
        players.insert(p.to_owned());
    }
    for p in event["detail"]["playerIds"].as_array().into_iter().flatten() {
        if let Some(p) = p.as_str() {
            players.insert(p.to_owned());
        }
    }
    players
}

impl Fixture {
    /// The verifier of the user pool `given.userPool` names.
    fn user_pool(&self) -> Result<CognitoTokens, FixtureError> {
        let Some(file) = &self.given.user_pool else {
            return Err(self.given_error(
                "$.userPool".into(),
                "a ws-authorizer fixture names the user pool whose tokens it checks",
            ));
        };
        let path = self.path.parent().unwrap_or(Path::new(".")).join(file);
        let pool: UserPool = parse(&path, &read(&path)?)?;
        CognitoTokens::from_jwks(&pool.issuer, &pool.client_id, &pool.jwks)
            .map_err(|e| self.given_error("$.userPool".into(), format!("{}: {e}", path.display())))
    }
}

/// Replays one fixture on fresh in-memory ports serving `queues`: seeds its `given`, feeds its event
/// to its function's handler, and answers the response in the shape `expected` has.
pub async fn replay(fixture: &Fixture, queues: &Arc<Queues>) -> Result<Replayed, FixtureError> {
    let service = seeded(fixture, queues).await?;
    let fleet = fixture.given.fleet;
    let response = match fixture.function {
        Function::Matcher => {
            let event: SqsEvent = fixture.event()?;
            let outcome = matcher::handle(&service, event, "fixture").await;
            serde_json::to_value(&outcome.response).unwrap_or(Value::Null)
        }
        Function::TicketsApi => {
            let request: ApiGatewayProxyRequest = fixture.event()?;
            http_response(&tickets_api::handle(&service, request).await)
        }
        Function::SessionReports => {
            let request: ApiGatewayProxyRequest = fixture.event()?;
            http_response(&session_reports::handle(&service, &fleet, request).await)
        }
        Function::WorkflowTasks => {
            let event: Value = fixture.event()?;
            for (i, task) in fixture.given.tasks.iter().enumerate() {
                workflow_tasks::handle(&service, &fleet, task.clone())
                    .await
                    .map_err(|e| fixture.given_error(format!("$.tasks[{i}]"), format!("the task failed: {e}")))?;
            }
            service.clock.advance(Duration::from_millis(fixture.given.elapsed_ms));
            lambda_result(workflow_tasks::handle(&service, &fleet, event).await)
        }
        Function::Sweeper => {
            let event: EventBridgeEvent<Value> = fixture.event()?;
            lambda_result(sweeper::handle(&service, &fleet, event).await)
        }
        Function::WsAuthorizer => {
            let request: ApiGatewayCustomAuthorizerRequestTypeRequest = fixture.event()?;
            match ws_authorizer::handle(&fixture.user_pool()?, service.clock.now(), &request) {
                Ok(allowed) => serde_json::to_value(&allowed).unwrap_or(Value::Null),
                Err(refused) => json!({"errorType": "Unauthorized", "errorMessage": refused.to_string()}),
            }
        }
        Function::WsConnections => {
            let event: RouteEvent = fixture.event()?;
            let raw: Value = fixture.event()?;
            let response = push::handle_route(&service.store, &service.clock, event).await;
            let connections = connections_of(&service.store, &players_named(&fixture.given, &raw))
                .await
                .map_err(|e| fixture.given_error("$".into(), e))?;
            json!({"response": serde_json::to_value(&response).unwrap_or(Value::Null), "connections": connections})
        }
        Function::Notifier => {
            let event: EventBridgeEvent<Value> = fixture.event()?;
            let raw: Value = fixture.event()?;
            let connections = RecordingConnections {
                gone: fixture.given.gone.iter().cloned().collect(),
                ..RecordingConnections::default()
            };
            let response = lambda_result(push::handle_event(&service.store, &connections, event).await);
            let posted = connections.posted.into_inner().unwrap_or_else(|e| e.into_inner());
            let after = connections_of(&service.store, &players_named(&fixture.given, &raw))
                .await
                .map_err(|e| fixture.given_error("$".into(), e))?;
            json!({"response": response, "posted": posted, "connections": after})
        }
    };
    Ok(Replayed {
        path: fixture.path.clone(),
        function: fixture.function,
        response,
        expected: fixture.expected.clone(),
    })
}

/// Replays every fixture `path` names (a fixture's event, or a directory searched for them), in
/// order. A fixture that cannot be read or seeded is an error; a response that differs is not: it
/// is for the caller to judge, with [`Replayed::differences`].
pub async fn replay_path(path: &Path, queues: &Arc<Queues>) -> Result<Vec<Replayed>, FixtureError> {
    let mut replayed = Vec::new();
    for event in discover(path)? {
        let fixture = Fixture::load(&event)?;
        replayed.push(replay(&fixture, queues).await?);
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture of tickets-api in a directory of its own, with `expected` as its expected response.
    fn fixture_expecting(expected: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let function = dir.path().join("tickets-api");
        std::fs::create_dir(&function).unwrap_or_else(|e| panic!("{e}"));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tickets-api");
        let event = function.join("case.event.json");
        std::fs::copy(source.join("a-malformed-ticket-id.event.json"), &event).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(function.join("case.expected.json"), expected).unwrap_or_else(|e| panic!("{e}"));
        (dir, event)
    }

    #[test]
    fn an_expected_response_naming_a_key_twice_is_refused_where_it_is() {
        let (_dir, event) = fixture_expecting("{\"statusCode\": 404,\n \"statusCode\": 200}");
        let error = match Fixture::load(&event) {
            Ok(_) => panic!("an expected response with a doubled key was read"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("case.expected.json:2:") && error.contains("the key `statusCode` is given twice"),
            "{error}"
        );
    }
}
