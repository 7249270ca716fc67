//! Bad input at every route of the dev server: each answers a precise 4xx `application/problem+json`
//! naming the field by JSON pointer where there is one, never a 5xx, and changes nothing.
//!
//! The server runs without its matcher loop and over a store and a queue that count their
//! successful writes, so "changes nothing" is checked exactly: no write and no send during a
//! refused request, and the seeded ticket and session read back the same.

use proptest::prelude::*;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::identity::report::sign;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::PlacementId;
use queuematch_core::ports::queue::{DeadLetter, QueueDepth, QueueMessage, ReceiptHandle};
use queuematch_core::ports::store::items::{self, GuardHolder, SessionRecord};
use queuematch_core::ports::store::{Condition, IdempotencyToken, Item, Key, Page, Query, Stored, Write};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::status::SessionStatus;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::{
    EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, SystemClock,
};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A store that counts the writes that succeeded.
#[derive(Debug)]
struct CountingStore {
    inner: MemoryStore,
    writes: AtomicUsize,
}

impl CountingStore {
    fn counted<T>(&self, result: Result<T, PortError>) -> Result<T, PortError> {
        if result.is_ok() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, PortError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<u64, PortError> {
        self.counted(self.inner.put(item, condition).await)
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), PortError> {
        self.counted(self.inner.delete(key, condition).await)
    }
    async fn transact_write(&self, writes: Vec<Write>, token: Option<IdempotencyToken>) -> Result<(), PortError> {
        self.counted(self.inner.transact_write(writes, token).await)
    }
    async fn query(&self, query: Query) -> Result<Page, PortError> {
        self.inner.query(query).await
    }
}

/// A queue that counts the sends that succeeded.
#[derive(Debug)]
struct CountingQueue {
    inner: MemoryQueue,
    sends: AtomicUsize,
}

#[async_trait::async_trait]
impl TicketQueue for CountingQueue {
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError> {
        let sent = self.inner.send(body, delay).await;
        if sent.is_ok() {
            self.sends.fetch_add(1, Ordering::SeqCst);
        }
        sent
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        self.inner.receive(max, visibility).await
    }
    async fn receive_batch(
        &self,
        max: usize,
        window: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, PortError> {
        self.inner.receive_batch(max, window, visibility).await
    }
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &ReceiptHandle, timeout: Duration) -> Result<(), PortError> {
        self.inner.change_visibility(receipt, timeout).await
    }
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        self.inner.depth().await
    }
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, PortError> {
        self.inner.dead_letters(max).await
    }
    async fn redrive(&self) -> Result<usize, PortError> {
        self.inner.redrive().await
    }
}

/// No test here places a session.
#[derive(Debug)]
struct NoWorkflows;

#[async_trait::async_trait]
impl Workflows for NoWorkflows {
    async fn start(&self, _definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Err(PortError::invalid(format!("no workflow runs here ({name})")))
    }
}

const OWNER: &str = "owner";
const SESSION: &str = "s-m-1";

struct Server {
    url: String,
    tokens: DevTokens,
    client: reqwest::Client,
    store: Arc<CountingStore>,
    queue: Arc<CountingQueue>,
    secret: SessionSecret,
    /// The owner's ticket, SEARCHING.
    ticket: String,
    failures: std::sync::Mutex<Vec<String>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn rule_set(name: &str) -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> Timestamp {
    SystemClock.now()
}

/// The dev server with a SEARCHING ticket of `owner` and an ACTIVE session of `p-1` and `p-2`.
async fn start() -> Server {
    let tokens = DevTokens::new(b"bad input test secret, 32 bytes or more");
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(SystemClock),
        writes: AtomicUsize::new(0),
    });
    let queue = Arc::new(CountingQueue {
        inner: MemoryQueue::new(SystemClock, QueueConfig::default()),
        sends: AtomicUsize::new(0),
    });
    let service = Arc::new(Service {
        store: store.clone() as Arc<dyn Store>,
        queue: queue.clone() as Arc<dyn TicketQueue>,
        workflows: Arc::new(NoWorkflows) as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(1024)),
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1"), rule_set("coop-4")])),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    // The owner's ticket, admitted as the matcher would admit it.
    let ticket = "t-owner-1".to_owned();
    let message = TicketMessage {
        ticket_id: ticket.as_str().into(),
        player_id: OWNER.into(),
        received_at: now(),
        request: json!({"queue": "ranked-1v1", "players": [{"id": OWNER, "attributes": {"skill": 1500}}]}),
    };
    let admitted = service
        .admission()
        .admit(&message)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(admitted, queuematch_core::usecases::admission::Admitted::Searching(_)),
        "{admitted:?}"
    );
    // A session of p-1 and p-2, whose server reports with `secret`.
    let secret = SessionSecret::from_random_bytes(&[7; 32]);
    let record = SessionRecord {
        session_id: SESSION.into(),
        match_id: "m-1".into(),
        queue: "ranked-1v1".into(),
        status: SessionStatus::Active,
        player_ids: vec!["p-1".into(), "p-2".into()],
        created_at: now(),
        secret: secret.clone(),
        placement_deadline: now().plus(Duration::from_secs(60)),
        placement: Some(PlacementId("local-1".into())),
        endpoint: None,
        reason: None,
        timeline_len: 3,
    };
    let item = items::session_item(&record).unwrap_or_else(|e| panic!("{e}"));
    store
        .put(item, Condition::Absent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for player in &record.player_ids {
        let guard = items::hold_guard(player, &GuardHolder::Session(SESSION.into())).unwrap_or_else(|e| panic!("{e}"));
        let Write::Put { item, condition } = guard else {
            panic!("a guard is a put")
        };
        store.put(item, condition).await.unwrap_or_else(|e| panic!("{e}"));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state = DevState::new(service, tokens.clone(), fleet).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dev::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        url,
        tokens,
        client: reqwest::Client::new(),
        store,
        queue,
        secret,
        ticket,
        failures: std::sync::Mutex::new(Vec::new()),
        stop: Some(stop),
    }
}

impl Server {
    /// Another client is answered: the server is not held up by the connections a test keeps.
    async fn assert_served(&self) {
        let health = self
            .request(Method::GET, "/health")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(health.status().as_u16(), 200);
    }

    fn token(&self, player: &str) -> String {
        self.mint(player, Audience::Api, now(), Duration::from_secs(600))
    }

    fn party_token(&self, player: &str) -> String {
        self.mint(player, Audience::Party, now(), Duration::from_secs(300))
    }

    fn mint(&self, player: &str, audience: Audience, at: Timestamp, ttl: Duration) -> String {
        self.tokens
            .mint(player, audience, Role::Player, at, ttl)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    fn as_player(&self, method: Method, path: &str, player: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(self.token(player))
    }

    fn post_ticket(&self, player: &str, body: &Value) -> RequestBuilder {
        self.as_player(Method::POST, "/v1/tickets", player).json(body)
    }

    /// A report to the seeded session, signed with its secret over `body`.
    fn report(&self, nonce: &str, body: &[u8]) -> RequestBuilder {
        let at = now();
        let signature = sign(&self.secret, at, nonce, body);
        self.report_with(SESSION, &at.as_millis().to_string(), nonce, &signature, body)
    }

    /// A report with these headers, as they are.
    fn report_with(&self, session: &str, timestamp: &str, nonce: &str, signature: &str, body: &[u8]) -> RequestBuilder {
        self.request(Method::POST, &format!("/v1/sessions/{session}/events"))
            .header("x-queuematch-timestamp", timestamp)
            .header("x-queuematch-nonce", nonce)
            .header("x-queuematch-signature", signature)
            .body(body.to_vec())
    }

    /// What a refused request must leave as it was.
    async fn snapshot(&self) -> (usize, usize, Value, Option<u64>, QueueDepth) {
        let ticket = self
            .as_player(Method::GET, &format!("/v1/tickets/{}", self.ticket), OWNER)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ticket.status(), 200);
        let ticket: Value = ticket.json().await.unwrap_or_else(|e| panic!("{e}"));
        let session = self
            .store
            .get(&items::session_key(&SessionId::from(SESSION)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|s| s.version);
        (
            self.store.writes.load(Ordering::SeqCst),
            self.queue.sends.load(Ordering::SeqCst),
            ticket,
            session,
            self.queue.depth().await.unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// Sends `request`, which must be refused with `status`, as problem+json whose `errors` hold
    /// `pointer` (if given), and whose detail or errors say `says`; and must change nothing. What
    /// does not hold is noted, so that one run shows every case that fails.
    async fn refused(&self, case: &str, request: RequestBuilder, status: u16, pointer: Option<&str>, says: &str) {
        let before = self.snapshot().await;
        let response = request.send().await.unwrap_or_else(|e| panic!("{case}: {e}"));
        let got = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        let said = format!(
            "{} {}",
            body["detail"].as_str().unwrap_or(""),
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut wrong = Vec::new();
        if got != status {
            wrong.push(format!("status {got}, not {status}"));
        }
        if content_type != "application/problem+json" {
            wrong.push(format!("content type {content_type:?}"));
        }
        if body["status"] != json!(status)
            || !body["title"].is_string()
            || !body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:queuematch:problem:"))
        {
            wrong.push("not a problem of that status".to_owned());
        }
        if let Some(pointer) = pointer {
            if !errors.iter().any(|e| e["pointer"] == json!(pointer)) {
                wrong.push(format!("no error at {pointer:?}"));
            }
        }
        if !said.contains(says) {
            wrong.push(format!("does not say {says:?}"));
        }
        if self.snapshot().await != before {
            wrong.push("it changed something".to_owned());
        }
        if !wrong.is_empty() {
            self.failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(format!("{case}: {}; answered {got} {text}", wrong.join(", ")));
        }
    }

    /// Fails the test with every case that went wrong.
    fn verdict(&self) {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(
            failures.is_empty(),
            "{} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// What a client may send as it likes: the scheme's case, the content type's parameters, or no
/// content type at all (API Gateway takes it for JSON).
#[tokio::test]
async fn a_request_is_taken_however_its_headers_are_spelt() {
    let s = start().await;
    let cases = [
        ("p-21", "bearer", Some("application/json; charset=utf-8")),
        ("p-22", "BEARER", Some("Application/JSON")),
        ("p-23", "Bearer", None),
    ];
    for (player, scheme, content_type) in cases {
        let mut request = s
            .request(Method::POST, "/v1/tickets")
            .header("authorization", format!("{scheme} {}", s.token(player)))
            .body(solo(player).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        assert_eq!(status, 202, "{player}: {}", response.text().await.unwrap_or_default());
    }
}

/// Clients that open a connection and never finish a request's headers are cut off after the
/// header-read timeout, and everyone else is still served meanwhile and after.
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start().await;
    let address = s.url.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&address)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut halfway = tokio::net::TcpStream::connect(&address)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    halfway
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // WHILE they hold their connections, another client is served
    s.assert_served().await;

    // THEN, once the timeout has passed, the server closes both
    let limit = dev::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    for (what, stream) in [("silent", &mut silent), ("halfway", &mut halfway)] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the {what} connection was still open after {limit:?}");
    }
    s.assert_served().await;
}

/// A request whose headers arrived but whose body stalls is answered 408 after the body-read timeout
/// and changes nothing; everyone else is served meanwhile.
#[tokio::test(start_paused = true)]
async fn a_request_whose_body_never_completes_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start().await;
    let address = s.url.trim_start_matches("http://").to_owned();
    let token = s.token("p-stalled");
    let head = |length: &str| {
        format!(
            "POST /v1/tickets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{length}\r\n"
        )
    };
    let body = r#"{"queue": "ranked-1v1", "players": [{"id": "p-stalled"}]}"#;
    let before = s.snapshot().await;
    let mut stalled = Vec::new();
    for (what, length, sent) in [
        (
            "short of its length",
            format!("Content-Length: {}\r\n", body.len() + 10),
            body.to_owned(),
        ),
        (
            "a chunk that never ends",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("{:x}\r\n{body}\r\n", body.len()),
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(format!("{}{sent}", head(&length)).as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stalled.push((what, stream));
    }

    // WHILE they hold their requests, another client is served
    s.assert_served().await;

    // THEN each is answered 408 with a problem, and its connection closed
    let limit = dev::BODY_READ_TIMEOUT + Duration::from_secs(5);
    for (what, mut stream) in stalled {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "{what}: no answer after {limit:?}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer}");
        assert!(answer.contains("application/problem+json"), "{what}: {answer}");
        assert!(answer.contains("did not arrive within 30 s"), "{what}: {answer}");
    }
    assert_eq!(s.snapshot().await, before, "a stalled request changed something");
}

fn solo(player: &str) -> Value {
    json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": 1500}}]})
}

#[tokio::test]
async fn every_route_refuses_bad_input_precisely_and_changes_nothing() {
    let s = start().await;
    let post = || s.request(Method::POST, "/v1/tickets");

    // ---- POST /v1/tickets: who is asking ----------------------------------------------------
    s.refused(
        "no token",
        post().json(&solo("p-9")),
        401,
        None,
        "Authorization: Bearer",
    )
    .await;
    s.refused(
        "not bearer",
        post().header("authorization", "Basic eDp5").json(&solo("p-9")),
        401,
        None,
        "Bearer",
    )
    .await;
    s.refused(
        "forged token",
        post()
            .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.Zm9yZ2Vk")
            .json(&solo("p-9")),
        401,
        None,
        "token",
    )
    .await;
    let expired = s.mint("p-9", Audience::Api, Timestamp(1_000_000), Duration::from_secs(60));
    s.refused(
        "expired token",
        post().bearer_auth(expired).json(&solo("p-9")),
        401,
        None,
        "expired",
    )
    .await;
    let party = s.party_token("p-9");
    s.refused(
        "party token as API token",
        post().bearer_auth(party).json(&solo("p-9")),
        401,
        None,
        "audience",
    )
    .await;
    let other_secret = DevTokens::new(b"another secret, not the server's one")
        .mint("p-9", Audience::Api, Role::Player, now(), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    s.refused(
        "another secret's token",
        post().bearer_auth(other_secret).json(&solo("p-9")),
        401,
        None,
        "signature",
    )
    .await;

    s.refused(
        "two tokens",
        s.as_player(Method::POST, "/v1/tickets", "p-9")
            .header("authorization", "Bearer not-a-token")
            .json(&solo("p-9")),
        401,
        None,
        "more than once",
    )
    .await;

    // ---- POST /v1/tickets: the body -----------------------------------------------------------
    s.refused(
        "a body that is not JSON by its type",
        s.as_player(Method::POST, "/v1/tickets", "p-9")
            .header("content-type", "text/plain")
            .body(solo("p-9").to_string()),
        415,
        None,
        "application/json",
    )
    .await;
    s.refused(
        "a key given twice",
        s.as_player(Method::POST, "/v1/tickets", "p-9")
            .header("content-type", "application/json")
            .body(r#"{"queue": "ranked-1v1", "queue": "coop-4", "players": [{"id": "p-9"}]}"#),
        400,
        Some(""),
        "the key `queue` is given twice",
    )
    .await;
    let raw = |body: &'static [u8]| {
        s.as_player(Method::POST, "/v1/tickets", "p-9")
            .header("content-type", "application/json")
            .body(body)
    };
    s.refused("malformed JSON", raw(b"{oops"), 400, Some(""), "not valid JSON")
        .await;
    s.refused("empty body", raw(b""), 400, Some(""), "not valid JSON").await;
    s.refused("not UTF-8", raw(b"\xff\xfe{}"), 400, Some(""), "not valid JSON")
        .await;
    s.refused("a JSON array", raw(b"[1]"), 400, Some(""), "").await;
    s.refused(
        "missing queue",
        s.post_ticket("p-9", &json!({"players": [{"id": "p-9"}]})),
        400,
        Some("/queue"),
        "queue",
    )
    .await;
    s.refused(
        "missing players",
        s.post_ticket("p-9", &json!({"queue": "ranked-1v1"})),
        400,
        Some("/players"),
        "players",
    )
    .await;
    s.refused(
        "missing player id",
        s.post_ticket("p-9", &json!({"queue": "ranked-1v1", "players": [{}]})),
        400,
        Some("/players/0/id"),
        "id",
    )
    .await;
    s.refused(
        "queue of the wrong type",
        s.post_ticket("p-9", &json!({"queue": 5, "players": [{"id": "p-9"}]})),
        400,
        Some("/queue"),
        "",
    )
    .await;
    s.refused(
        "players of the wrong type",
        s.post_ticket("p-9", &json!({"queue": "ranked-1v1", "players": "p-9"})),
        400,
        Some("/players"),
        "",
    )
    .await;
    s.refused(
        "id of the wrong type",
        s.post_ticket("p-9", &json!({"queue": "ranked-1v1", "players": [{"id": 9}]})),
        400,
        Some("/players/0/id"),
        "",
    )
    .await;
    s.refused(
        "an attribute of the wrong type for the rule set",
        s.post_ticket(
            "p-9",
            &json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"skill": "high"}}]}),
        ),
        400,
        Some("/players/0/attributes/skill"),
        "a number",
    )
    .await;
    s.refused(
        "a list where the rule set reads a number (which the schema alone calls a list of non-strings)",
        s.post_ticket(
            "p-9",
            &json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"skill": [1]}}]}),
        ),
        400,
        Some("/players/0/attributes/skill"),
        "a number",
    )
    .await;
    s.refused(
        "a latency of the wrong type",
        s.post_ticket(
            "p-9",
            &json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "latencies": {"local": "fast"}}]}),
        ),
        400,
        Some("/players/0/latencies/local"),
        "",
    )
    .await;
    s.refused(
        "an unknown field",
        s.post_ticket(
            "p-9",
            &json!({"queue": "ranked-1v1", "players": [{"id": "p-9"}], "priority": 1}),
        ),
        400,
        Some("/priority"),
        "priority",
    )
    .await;
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("p-{i}"), "partyToken": "x"}))
        .collect();
    s.refused(
        "eleven players",
        s.post_ticket("p-0", &json!({"queue": "coop-4", "players": eleven})),
        400,
        Some("/players"),
        "10",
    )
    .await;
    s.refused(
        "an unknown queue",
        s.post_ticket("p-9", &json!({"queue": "ranked-9v9", "players": [{"id": "p-9"}]})),
        400,
        Some("/queue"),
        "ranked-9v9",
    )
    .await;
    let huge = json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"pad": "x".repeat(70_000)}}]});
    s.refused("an oversize body", s.post_ticket("p-9", &huge), 413, None, "64 KiB")
        .await;
    // The limit to the byte: 64 KiB is read (and refused for what it says), one more byte is 413.
    let sized = |len: usize| {
        let frame = json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"pad": ""}}]}).to_string();
        let pad = "x".repeat(len - frame.len());
        json!({"queue": "ranked-1v1", "players": [{"id": "p-9", "attributes": {"pad": pad}}]}).to_string()
    };
    for (len, status) in [(dev::MAX_BODY_BYTES, 400), (dev::MAX_BODY_BYTES + 1, 413)] {
        let body = sized(len);
        assert_eq!(body.len(), len);
        let answer = s
            .as_player(Method::POST, "/v1/tickets", "p-9")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer.status().as_u16(), status, "a body of {len} bytes");
    }

    // ---- POST /v1/tickets: whom it queues -------------------------------------------------------
    s.refused(
        "queueing someone else",
        s.post_ticket("p-9", &solo("p-8")),
        403,
        Some("/players"),
        "p-9 is missing",
    )
    .await;
    let party = |member: Value| json!({"queue": "coop-4", "players": [{"id": "p-9"}, member]});
    s.refused(
        "a member without a party token",
        s.post_ticket("p-9", &party(json!({"id": "p-8"}))),
        403,
        Some("/players/1/partyToken"),
        "must present a party token",
    )
    .await;
    s.refused(
        "a forged party token",
        s.post_ticket("p-9", &party(json!({"id": "p-8", "partyToken": "forged"}))),
        403,
        Some("/players/1/partyToken"),
        "refused",
    )
    .await;
    s.refused(
        "another member's party token",
        s.post_ticket("p-9", &party(json!({"id": "p-8", "partyToken": s.party_token("p-7")}))),
        403,
        Some("/players/1/partyToken"),
        "refused",
    )
    .await;
    s.refused(
        "an API token as a party token",
        s.post_ticket("p-9", &party(json!({"id": "p-8", "partyToken": s.token("p-8")}))),
        403,
        Some("/players/1/partyToken"),
        "audience",
    )
    .await;

    // ---- POST /v1/tickets: a second active ticket -------------------------------------------
    s.refused(
        "a second ticket",
        s.post_ticket(OWNER, &solo(OWNER)),
        409,
        Some("/players/0/id"),
        "already has an active ticket",
    )
    .await;
    s.refused(
        "a party with a member already searching",
        s.post_ticket("p-9", &party(json!({"id": OWNER, "partyToken": s.party_token(OWNER)}))),
        409,
        Some("/players/1/id"),
        "owner already has an active ticket",
    )
    .await;
    s.refused(
        "a member in a session",
        s.post_ticket("p-1", &solo("p-1")),
        409,
        Some("/players/0/id"),
        "",
    )
    .await;
    s.refused(
        "PUT /v1/tickets",
        s.as_player(Method::PUT, "/v1/tickets", "p-9").json(&solo("p-9")),
        405,
        None,
        "PUT",
    )
    .await;

    // ---- GET and DELETE /v1/tickets/{ticketId} ----------------------------------------------
    let mine = format!("/v1/tickets/{}", s.ticket);
    for method in [Method::GET, Method::DELETE] {
        let m = method.as_str();
        s.refused(
            &format!("{m}: no token"),
            s.request(method.clone(), &mine),
            401,
            None,
            "Bearer",
        )
        .await;
        let party = s.party_token(OWNER);
        s.refused(
            &format!("{m}: party token"),
            s.request(method.clone(), &mine).bearer_auth(party),
            401,
            None,
            "audience",
        )
        .await;
        s.refused(
            &format!("{m}: another player's ticket"),
            s.as_player(method.clone(), &mine, "p-9"),
            404,
            None,
            "no ticket",
        )
        .await;
        // (A DELETE of an unknown ticket is a cancel recorded for when it is admitted: 202.)
        if method == Method::GET {
            s.refused(
                &format!("{m}: an unknown ticket"),
                s.as_player(method.clone(), "/v1/tickets/t-404", OWNER),
                404,
                None,
                "may still be queued",
            )
            .await;
        }
        s.refused(
            &format!("{m}: a malformed id"),
            s.as_player(method.clone(), "/v1/tickets/a%20b", OWNER),
            404,
            None,
            "ticket id",
        )
        .await;
        s.refused(
            &format!("{m}: an id of bytes"),
            s.as_player(method.clone(), "/v1/tickets/%FF%FE", OWNER),
            404,
            None,
            "cannot be read",
        )
        .await;
        let long = format!("/v1/tickets/{}", "t".repeat(200));
        s.refused(
            &format!("{m}: an id too long"),
            s.as_player(method.clone(), &long, OWNER),
            404,
            None,
            "1 to 128",
        )
        .await;
    }
    s.refused(
        "POST /v1/tickets/{id}",
        s.as_player(Method::POST, &mine, OWNER),
        405,
        None,
        "POST",
    )
    .await;

    // ---- GET /v1/events ------------------------------------------------------------------------
    s.refused(
        "push: no token",
        s.request(Method::GET, "/v1/events"),
        401,
        None,
        "?token=",
    )
    .await;
    s.refused(
        "push: forged token",
        s.request(Method::GET, "/v1/events?token=forged"),
        401,
        None,
        "JWT",
    )
    .await;
    let token = s.token(OWNER);
    s.refused(
        "push: the token twice",
        s.request(Method::GET, &format!("/v1/events?token={token}&token={token}")),
        401,
        None,
        "once",
    )
    .await;
    let party = s.party_token(OWNER);
    s.refused(
        "push: a party token",
        s.request(Method::GET, &format!("/v1/events?token={party}")),
        401,
        None,
        "audience",
    )
    .await;
    s.refused(
        "push: no upgrade",
        s.request(Method::GET, &format!("/v1/events?token={token}")),
        400,
        None,
        "WebSocket",
    )
    .await;
    s.refused(
        "push: POST",
        s.request(Method::POST, &format!("/v1/events?token={token}")),
        405,
        None,
        "POST",
    )
    .await;

    // ---- POST /v1/sessions/{sessionId}/events ----------------------------------------------------
    let events = format!("/v1/sessions/{SESSION}/events");
    s.refused(
        "report: unsigned",
        s.request(Method::POST, &events).body(r#"{"type":"heartbeat"}"#),
        401,
        None,
        "x-queuematch-timestamp",
    )
    .await;
    let heartbeat: &[u8] = br#"{"type":"heartbeat"}"#;
    let at = now().as_millis().to_string();
    s.refused(
        "report: a timestamp that is no number",
        s.report_with(SESSION, "soon", "nonce-0001", "x", heartbeat),
        401,
        None,
        "epoch milliseconds",
    )
    .await;
    s.refused(
        "report: a nonce that is not ASCII",
        s.request(Method::POST, &events)
            .header("x-queuematch-timestamp", &at)
            .header(
                "x-queuematch-nonce",
                reqwest::header::HeaderValue::from_bytes("nonce-é".as_bytes()).unwrap_or_else(|e| panic!("{e}")),
            )
            .header("x-queuematch-signature", "x")
            .body(heartbeat.to_vec()),
        401,
        None,
        "`x-queuematch-nonce` header is not visible ASCII",
    )
    .await;
    s.refused(
        "report: a forged signature",
        s.report_with(SESSION, &at, "nonce-0002", "Zm9yZ2Vk", heartbeat),
        401,
        None,
        "does not match",
    )
    .await;
    let stale = Timestamp(now().as_millis() - 120_000);
    let stale_signature = sign(&s.secret, stale, "nonce-0003", heartbeat);
    s.refused(
        "report: a stale timestamp",
        s.report_with(
            SESSION,
            &stale.as_millis().to_string(),
            "nonce-0003",
            &stale_signature,
            heartbeat,
        ),
        401,
        None,
        "60 s",
    )
    .await;
    s.refused("report: a bad nonce", s.report("short", heartbeat), 401, None, "nonce")
        .await;
    s.refused(
        "report: an unknown session",
        s.report_with("s-404", &at, "nonce-0004", "x", heartbeat),
        404,
        None,
        "no session s-404",
    )
    .await;
    s.refused(
        "report: a session id of bytes",
        s.request(Method::POST, "/v1/sessions/%FF/events").body("{}"),
        404,
        None,
        "cannot be read",
    )
    .await;
    s.refused(
        "report: malformed JSON",
        s.report("nonce-0005", b"{oops"),
        400,
        Some(""),
        "not valid JSON",
    )
    .await;
    s.refused(
        "report: missing type",
        s.report("nonce-0006", b"{}"),
        400,
        Some("/type"),
        "missing required field",
    )
    .await;
    s.refused(
        "report: type of the wrong type",
        s.report("nonce-0007", br#"{"type":5}"#),
        400,
        Some("/type"),
        "a string",
    )
    .await;
    s.refused(
        "report: an unknown type",
        s.report("nonce-0008", br#"{"type":"cheat"}"#),
        400,
        Some("/type"),
        "cheat",
    )
    .await;
    s.refused(
        "report: an unknown field",
        s.report("nonce-0009", br#"{"type":"ready","x":1}"#),
        400,
        Some("/x"),
        "unknown field",
    )
    .await;
    s.refused(
        "report: a score of the wrong type",
        s.report("nonce-0010", br#"{"type":"result","result":{"scores":{"p-1":"win"}}}"#),
        400,
        Some("/result/scores/p-1"),
        "a number",
    )
    .await;
    s.refused(
        "report: a stranger's score",
        s.report("nonce-0011", br#"{"type":"result","result":{"scores":{"p-9":1}}}"#),
        400,
        Some("/result/scores/p-9"),
        "not in session",
    )
    .await;
    let big = format!(r#"{{"type":"end","reason":"{}"}}"#, "x".repeat(70_000));
    s.refused(
        "report: an oversize body",
        s.report("nonce-0012", big.as_bytes()),
        413,
        None,
        "64 KiB",
    )
    .await;
    s.refused("report: GET", s.request(Method::GET, &events), 405, None, "GET")
        .await;
    // A report accepted once is refused the second time, and the second changes nothing.
    let heartbeat = s.report("nonce-0013", br#"{"type":"heartbeat"}"#).send().await.unwrap();
    assert_eq!(heartbeat.status(), 202);
    s.refused(
        "report: a replay",
        s.report("nonce-0013", br#"{"type":"heartbeat"}"#),
        409,
        None,
        "nonce-0013",
    )
    .await;

    // ---- anything else ----------------------------------------------------------------------------
    s.refused(
        "an unknown route",
        s.request(Method::GET, "/v1/nope"),
        404,
        None,
        "no such route",
    )
    .await;
    s.refused("POST /health", s.request(Method::POST, "/health"), 405, None, "POST")
        .await;
    s.refused(
        "DELETE /openapi.yaml",
        s.request(Method::DELETE, "/openapi.yaml"),
        405,
        None,
        "DELETE",
    )
    .await;

    s.verdict();
    // And the good request still works after all that.
    let created = s.post_ticket("p-9", &solo("p-9")).send().await.unwrap();
    assert_eq!(created.status(), 202);
    assert_eq!(
        s.queue.sends.load(Ordering::SeqCst),
        1,
        "only the good request was queued"
    );
}

/// Any JSON, leaning towards the names and values the routes read, so that bodies reach deep into
/// the readers rather than failing at the first field.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9@:._/~-]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("ranked-1v1"),
            Just("coop-4"),
            Just("p-9"),
            Just("owner"),
            Just("result"),
            Just("end")
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        "[a-z]{1,8}",
        prop_oneof![
            Just("queue"),
            Just("players"),
            Just("id"),
            Just("attributes"),
            Just("latencies"),
            Just("partyToken"),
            Just("skill"),
            Just("local"),
            Just("type"),
            Just("result"),
            Just("scores"),
            Just("reason"),
        ]
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: random JSON, a ticket request with random parts, or random bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), prop::collection::vec(json_value(), 0..12))
            .prop_map(|(queue, players)| { json!({"queue": queue, "players": players}).to_string().into_bytes() }),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Whether an answer is a success or a 4xx problem, never a 5xx or an error in another shape.
async fn well_formed(what: &str, response: reqwest::Response) -> Result<(), String> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    match status {
        202 => Ok(()),
        400..=499 if content_type == "application/problem+json" => {
            let body: Value = serde_json::from_str(&text).map_err(|e| format!("{what}: {e}: {text}"))?;
            if body["status"] == json!(status) {
                Ok(())
            } else {
                Err(format!("{what}: {status} with {body}"))
            }
        }
        _ => Err(format!("{what}: {status} {content_type} {text}")),
    }
}

#[test]
fn random_bodies_never_answer_5xx_nor_anything_but_a_problem() {
    // One thread: the server's tasks run while each case waits for its answers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start());
    let nonce = AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let outcome = runner.run(&body(), |body| {
        runtime.block_on(async {
            let ticket = server
                .as_player(Method::POST, "/v1/tickets", "p-9")
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            well_formed("POST /v1/tickets", ticket)
                .await
                .map_err(TestCaseError::fail)?;
            let n = nonce.fetch_add(1, Ordering::SeqCst);
            let report = server
                .report(&format!("fuzz-nonce-{n:06}"), &body)
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            well_formed("POST /v1/sessions/{id}/events", report)
                .await
                .map_err(TestCaseError::fail)
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
