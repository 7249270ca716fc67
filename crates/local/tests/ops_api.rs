//! The operators' API (`/v1/ops/…`) on the dev server in-process: real tickets through the queue and
//! the matcher, then listed, filtered, counted and measured; the DLQ inspected and redriven; and
//! every refusal a precise 4xx.

use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::{
    EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, SystemClock,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Placements are started and go nowhere: these tests look at tickets and matches, not servers.
#[derive(Debug, Default)]
struct NoPlacement;

#[async_trait::async_trait]
impl Workflows for NoPlacement {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

struct Running {
    url: String,
    tokens: DevTokens,
    client: reqwest::Client,
    service: Arc<dev::LocalService>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
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
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

async fn start() -> Running {
    let tokens = DevTokens::new(b"ops api test secret");
    let service = Arc::new(Service {
        store: Arc::new(MemoryStore::new(SystemClock)) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(SystemClock, QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: Arc::new(NoPlacement) as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(1024)),
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1"), rule_set("coop-4")])),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    // No test here places a session: the fleet is never asked for a server.
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state = DevState::new(service.clone(), tokens.clone(), fleet).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_matcher, matcher_stopped) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        let _ = dev::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await;
        let _ = stop_matcher.send(());
    });
    tokio::spawn(dev::run_matcher(service.clone(), async move {
        let mut rx = matcher_stopped;
        let _ = rx.changed().await;
    }));
    Running {
        url,
        tokens,
        client: reqwest::Client::new(),
        service,
        stop: Some(stop),
    }
}

impl Running {
    fn token(&self, subject: &str, role: Role) -> String {
        self.tokens
            .mint(subject, Audience::Api, role, now(), Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn submit(&self, queue: &str, player: &str, skill: u32) -> String {
        let body = json!({"queue": queue, "players": [{"id": player, "attributes": {"skill": skill}}]});
        let response = self
            .client
            .post(format!("{}/v1/tickets", self.url))
            .bearer_auth(self.token(player, Role::Player))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 202, "{body}");
        body["ticketId"].as_str().unwrap_or_default().to_owned()
    }

    /// `method path` with an operator's token (or `token`), its status and body.
    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, String, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, kind, response.json().await.unwrap_or(Value::Null))
    }

    async fn ops(&self, path: &str) -> Value {
        let token = self.token("ops", Role::Operator);
        let (status, _, body) = self.call(reqwest::Method::GET, path, Some(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Polls `path` until `done` holds on its body.
    async fn ops_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let body = self.ops(path).await;
            if done(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never got there: {}", self.ops(path).await);
    }
}

fn ids(listing: &Value, kind: &str, field: &str) -> Vec<String> {
    listing[kind]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| row[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn tickets_and_matches_are_listed_by_status_and_time_and_counted_in_the_metrics() {
    let dev = start().await;
    let before = now();
    // GIVEN a duel that matches and a coop ticket that waits alone
    let alice = dev.submit("ranked-1v1", "alice", 1500).await;
    let bob = dev.submit("ranked-1v1", "bob", 1510).await;
    let listing = dev
        .ops_until("/v1/ops/tickets?status=PLACING", |b| {
            ids(b, "tickets", "ticketId").len() == 2
        })
        .await;
    let mut placing = ids(&listing, "tickets", "ticketId");
    placing.sort();
    let mut duel = vec![alice.clone(), bob.clone()];
    duel.sort();
    assert_eq!(placing, duel);
    assert!(listing["tickets"][0]["matchId"].is_string(), "{listing}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let carol = dev.submit("coop-4", "carol", 1500).await;
    dev.ops_until("/v1/ops/tickets?status=SEARCHING", |b| {
        ids(b, "tickets", "ticketId") == [carol.as_str()]
    })
    .await;

    // WHEN they are listed with every status, newest first, one a page
    let first = dev.ops("/v1/ops/tickets?limit=1").await;
    assert_eq!(ids(&first, "tickets", "ticketId"), [carol.as_str()]);
    let cursor = first["nextCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("a cursor: {first}"));
    let second = dev.ops(&format!("/v1/ops/tickets?limit=5&cursor={cursor}")).await;
    let mut rest = ids(&second, "tickets", "ticketId");
    rest.sort();
    assert_eq!(rest, duel, "the next page holds the others: {second}");
    assert_eq!(second["nextCursor"], Value::Null, "and nothing follows");
    // AND the tickets' cursor is no cursor of the sessions listing
    let path = format!("/v1/ops/sessions?cursor={cursor}");
    let operator = dev.token("ops", Role::Operator);
    let (status, _, refused) = dev.call(reqwest::Method::GET, &path, Some(&operator)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("not a cursor of the sessions listing"));

    // THEN a time window keeps only what was created within it
    let since = dev.ops(&format!("/v1/ops/tickets?since={}", middle.0)).await;
    assert_eq!(ids(&since, "tickets", "ticketId"), [carol.as_str()]);
    let until = dev.ops(&format!("/v1/ops/tickets?until={}", middle.0)).await;
    assert_eq!(ids(&until, "tickets", "ticketId").len(), 2);
    let rfc3339 = chrono::DateTime::from_timestamp_millis(middle.0 as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let since = dev.ops(&format!("/v1/ops/tickets?since={rfc3339}")).await;
    assert_eq!(
        ids(&since, "tickets", "ticketId"),
        [carol.as_str()],
        "RFC 3339 reads the same"
    );
    let none = dev.ops(&format!("/v1/ops/tickets?until={}", before.0 - 1)).await;
    assert_eq!(none["tickets"], json!([]));

    // AND the match is listed, with its quality, and without a session: no workflow placed it here
    let matches = dev.ops("/v1/ops/matches?status=COMMITTED").await;
    assert_eq!(matches["matches"].as_array().map(Vec::len), Some(1), "{matches}");
    let matched = &matches["matches"][0];
    assert_eq!(matched["queue"], "ranked-1v1");
    assert_eq!(matched["quality"]["skillSpread"], 10.0);
    assert_eq!(matched["sessionId"], Value::Null, "{matched}");
    assert_eq!(
        matched["collections"],
        json!({}),
        "ranked-1v1 has no collection rule: {matched}"
    );

    // AND the queues and the metrics count what happened
    let queues = dev.ops("/v1/ops/queues").await;
    let coop = queues["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "coop-4"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(coop["searching"], 1, "{queues}");
    assert!(
        coop["oldestSearchingSeconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{coop}"
    );
    let duels = queues["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "ranked-1v1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(duels["placing"], 2, "{queues}");
    assert_eq!(queues["ticketsQueue"]["dead"], 0);

    let metrics = dev.ops("/v1/ops/metrics").await;
    let m = &metrics["metrics"];
    assert_eq!(m["TicketsStarted"], 3, "{metrics}");
    assert_eq!(m["CurrentTickets"], 3);
    assert_eq!(m["MatchesCreated"], 1);
    assert_eq!(m["MatchesPlaced"], 0, "no server was found");
    assert_eq!(m["TicketsTimedOut"], 0);
    assert_eq!(m["TicketsFailed"], 0);
    assert_eq!(m["TimeToMatch"]["count"], 2, "one wait per ticket matched");
    assert_eq!(metrics["quality"][0]["name"], "SkillSpread");
    assert_eq!(metrics["quality"][0]["count"], 1);
    let later = dev.ops(&format!("/v1/ops/metrics?since={}", middle.0)).await;
    assert_eq!(later["metrics"]["TicketsStarted"], 1, "{later}");
    assert_eq!(later["metrics"]["MatchesCreated"], 0);
    // A gauge: the tickets in play now, whenever they were created.
    assert_eq!(later["metrics"]["CurrentTickets"], 3, "{later}");
    let before = dev.ops("/v1/ops/metrics?until=1").await;
    assert_eq!(before["metrics"]["TicketsStarted"], 0, "{before}");
    assert_eq!(before["metrics"]["CurrentTickets"], 3, "{before}");

    // AND a cancel is counted as it happened
    let response = dev
        .client
        .delete(format!("{}/v1/tickets/{carol}", dev.url))
        .bearer_auth(dev.token("carol", Role::Player))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    let cancelled = dev.ops("/v1/ops/tickets?status=CANCELLED").await;
    assert_eq!(ids(&cancelled, "tickets", "ticketId"), [carol]);
    assert_eq!(cancelled["tickets"][0]["reason"], "cancelled by carol");
    let metrics = dev.ops("/v1/ops/metrics").await;
    assert_eq!(metrics["metrics"]["CurrentTickets"], 2, "{metrics}");
    assert_eq!(metrics["metrics"]["TicketsCancelled"], 1);
    let to_cancel = &metrics["metrics"]["TimeToTicketCancel"];
    assert_eq!(to_cancel["count"], 1, "{to_cancel}");
    let waited = to_cancel["sum"].as_f64().unwrap_or(-1.0);
    let alive = now().since(middle).as_secs_f64();
    assert!(
        (0.0..=alive).contains(&waited),
        "{waited} s, within the {alive} s carol's ticket lived"
    );
}

#[tokio::test]
async fn the_metrics_of_a_recent_window_count_it_however_many_older_tickets_there_are() {
    use queuematch_core::ports::store::items::{self, TicketRecord};
    use queuematch_core::ports::store::{Condition, Write};
    use queuematch_core::ticket::{Player, Ticket};
    use queuematch_core::TicketStatus;
    let dev = start().await;
    // GIVEN more timed-out tickets than a metric reads of one status, a day old, and three newer
    let timed_out = |id: String, at: Timestamp| {
        let mut ticket = Ticket::queued(id.as_str(), "ranked-1v1", vec![Player::new(format!("p-{id}"))], at);
        ticket.status = TicketStatus::TimedOut;
        ticket.reason = Some("no match found".into());
        TicketRecord::unmatched(ticket, "all")
    };
    let old = now().as_millis() - 24 * 3_600_000;
    let recent = now().as_millis() - 60_000;
    let mut writes = Vec::new();
    let records = (0..queuematch_handlers::ops_api::TICKETS_COUNTED + 5)
        .map(|i| timed_out(format!("t-old-{i}"), Timestamp(old + i as u64)))
        .chain((0..3).map(|i| timed_out(format!("t-new-{i}"), Timestamp(recent + i))));
    for record in records {
        let item = items::ticket_item(&record, 4).unwrap_or_else(|e| panic!("{e}"));
        writes.push(Write::put(item, Condition::Absent));
        if writes.len() == 100 {
            let batch = std::mem::take(&mut writes);
            dev.service
                .store
                .transact_write(batch, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    dev.service
        .store
        .transact_write(writes, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // THEN the last ten minutes count the three, and the last two days count every one read
    let since = now().as_millis() - 600_000;
    let window = dev.ops(&format!("/v1/ops/metrics?since={since}")).await;
    assert_eq!(window["metrics"]["TicketsTimedOut"], 3, "{window}");
    assert_eq!(window["capped"], json!([]), "{window}");
    let days = dev.ops(&format!("/v1/ops/metrics?since={}", old - 1)).await;
    assert_eq!(
        days["metrics"]["TicketsTimedOut"],
        queuematch_handlers::ops_api::TICKETS_COUNTED,
        "{days}"
    );
    // AND the answer says that count is a floor
    assert_eq!(days["capped"], json!(["TICKETS#TIMED_OUT"]), "{days}");
}

#[tokio::test]
async fn dead_letters_are_inspected_and_redriven() {
    let dev = start().await;
    // GIVEN a message nobody can read, received until it goes to the DLQ (the matcher loop would
    // take 5 visibility timeouts; the port gets there at once with a zero timeout)
    let queue = &dev.service.queue;
    queue
        .send("not a ticket".into(), Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..10 {
        if queue.depth().await.map(|d| d.dead).unwrap_or_default() == 1 {
            break;
        }
        let _ = queue.receive(10, Duration::ZERO).await;
    }
    // WHEN an operator inspects the DLQ
    let dlq = dev.ops_until("/v1/ops/dlq", |b| b["dead"] == 1).await;
    assert_eq!(dlq["deadLetters"][0]["body"], "not a ticket", "{dlq}");
    assert!(dlq["deadLetters"][0]["receiveCount"].as_u64().is_some_and(|n| n >= 5));
    let queues = dev.ops("/v1/ops/queues").await;
    assert_eq!(queues["ticketsQueue"]["dead"], 1);

    // AND redrives it
    let token = dev.token("ops", Role::Operator);
    let (status, _, body) = dev
        .call(reqwest::Method::POST, "/v1/ops/dlq/redrive", Some(&token))
        .await;
    assert_eq!((status, body), (200, json!({"moved": 1})));

    // THEN the DLQ is empty and the message is back in the queue (where it dies again: it is still
    // not a ticket)
    let dlq = dev.ops("/v1/ops/dlq").await;
    assert_eq!(dlq["deadLetters"], json!([]));
    let (status, _, body) = dev
        .call(reqwest::Method::POST, "/v1/ops/dlq/redrive", Some(&token))
        .await;
    assert_eq!((status, body["moved"].as_u64()), (200, Some(0)), "{body}");
}

#[tokio::test]
async fn only_operators_pass_and_bad_filters_are_named() {
    let dev = start().await;
    let player = dev.token("alice", Role::Player);
    let operator = dev.token("ops", Role::Operator);
    for path in [
        "/v1/ops/tickets",
        "/v1/ops/matches",
        "/v1/ops/sessions",
        "/v1/ops/sessions/s-1",
        "/v1/ops/queues",
        "/v1/ops/dlq",
        "/v1/ops/metrics",
    ] {
        let (status, kind, body) = dev.call(reqwest::Method::GET, path, None).await;
        assert_eq!(
            (status, kind.as_str()),
            (401, "application/problem+json"),
            "{path}: {body}"
        );
        let (status, _, body) = dev.call(reqwest::Method::GET, path, Some("not.a.token")).await;
        assert_eq!(status, 401, "{path}: {body}");
        let (status, kind, body) = dev.call(reqwest::Method::GET, path, Some(&player)).await;
        assert_eq!(
            (status, kind.as_str()),
            (403, "application/problem+json"),
            "{path}: {body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("operators")),
            "{body}"
        );
    }
    let (status, _, _) = dev
        .call(reqwest::Method::POST, "/v1/ops/dlq/redrive", Some(&player))
        .await;
    assert_eq!(status, 403, "a player cannot redrive");

    let cases = [
        (
            "/v1/ops/tickets?status=WAITING",
            "status",
            "\"WAITING\" is not one of SEARCHING",
        ),
        ("/v1/ops/tickets?status=QUEUED", "status", "tickets queue"),
        (
            "/v1/ops/sessions?status=PLACED",
            "status",
            "is not one of PLACING, ACTIVE",
        ),
        ("/v1/ops/matches?status=SEARCHING", "status", "COMMITTED, PENDING"),
        (
            "/v1/ops/tickets?since=yesterday",
            "since",
            "neither epoch milliseconds nor RFC 3339",
        ),
        ("/v1/ops/tickets?until=2026-13-01T00:00:00Z", "until", "RFC 3339"),
        ("/v1/ops/tickets?since=2000&until=1000", "since", "is after `until`"),
        ("/v1/ops/sessions?limit=0", "limit", "from 1 to 100"),
        ("/v1/ops/sessions?limit=101", "limit", "from 1 to 100"),
        ("/v1/ops/sessions?limit=ten", "limit", "from 1 to 100"),
        ("/v1/ops/sessions?limit=%2B5", "limit", "from 1 to 100"),
        ("/v1/ops/tickets?cursor=abc", "cursor", "not a cursor this API gave"),
        ("/v1/ops/tickets?limit=1&limit=2", "limit", "more than once"),
        ("/v1/ops/tickets?colour=red", "colour", "unknown parameter"),
        ("/v1/ops/queues?status=ACTIVE", "status", "takes no query parameters"),
        ("/v1/ops/metrics?limit=5", "limit", "takes since, until"),
    ];
    for (path, name, says) in cases {
        let (status, kind, body) = dev.call(reqwest::Method::GET, path, Some(&operator)).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "application/problem+json"),
            "{path}: {body}"
        );
        assert_eq!(body["errors"][0]["pointer"], format!("/query/{name}"), "{path}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{path}: {detail}");
    }
    let (status, _, body) = dev
        .call(reqwest::Method::GET, "/v1/ops/sessions/s-nope", Some(&operator))
        .await;
    assert_eq!((status, body["detail"].as_str()), (404, Some("no session s-nope")));
    let (status, _, _) = dev
        .call(reqwest::Method::GET, "/v1/ops/sessions/bad%20id", Some(&operator))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = dev
        .call(reqwest::Method::DELETE, "/v1/ops/tickets", Some(&operator))
        .await;
    assert_eq!(status, 405);
    let (status, _, _) = dev
        .call(reqwest::Method::GET, "/v1/ops/dlq/redrive", Some(&operator))
        .await;
    assert_eq!(status, 405);
}
