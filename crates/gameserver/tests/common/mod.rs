//! What the game server's integration tests share: the service's report endpoint, played by a tiny
//! axum receiver on 127.0.0.1:0; a local fleet of the binary under test; and players, through the crate's client or a raw WebSocket.

#![allow(dead_code)] // each test file uses its own part of this module

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use queuematch_core::identity::{report, SessionSecret};
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::Fleet;
use queuematch_core::Timestamp;
use queuematch_gameserver::client::{ClientError, GameClient};
use queuematch_gameserver::report::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use queuematch_local::fleet::ServerLogs;
use queuematch_local::{ProcessFleet, ProcessFleetConfig};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one step of a test may take before it fails rather than hangs.
pub const STEP: Duration = Duration::from_secs(15);

/// One report as the service received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub session: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub body: Bytes,
}

impl Received {
    /// Checks the signature as the service does, at the receiver's clock.
    pub fn verify(&self, secret: &SessionSecret) -> Result<(), report::ReportAuthError> {
        let timestamp = Timestamp(self.timestamp.parse().unwrap_or_else(|e| panic!("timestamp: {e}")));
        report::verify(secret, timestamp, &self.nonce, &self.body, &self.signature, now())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("a report body is not JSON: {e}"))
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// The service's `POST /v1/sessions/{id}/events`, answering 202 to every report.
#[derive(Debug)]
pub struct ReportReceiver {
    pub url: String,
    received: Mutex<mpsc::UnboundedReceiver<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ReportReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(sink): State<mpsc::UnboundedSender<Received>>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = format!(r#"{{"sessionId":"{session}","status":"ACTIVE"}}"#);
    let _ = sink.send(Received {
        session,
        timestamp: header(TIMESTAMP_HEADER),
        nonce: header(NONCE_HEADER),
        signature: header(SIGNATURE_HEADER),
        body,
    });
    (StatusCode::ACCEPTED, answer)
}

impl ReportReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the receiver: {e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let (sink, received) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/v1/sessions/{session}/events", post(receive))
            .with_state(sink);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received: Mutex::new(received),
            server,
        }
    }

    /// The next report, within [`STEP`].
    pub async fn next(&self) -> Received {
        let mut received = self.received.lock().await;
        match tokio::time::timeout(STEP, received.recv()).await {
            Ok(Some(report)) => report,
            Ok(None) => panic!("the receiver stopped"),
            Err(_) => panic!("no report within {STEP:?}"),
        }
    }

    /// Reports up to and including the first of kind `last`.
    pub async fn until(&self, last: &str) -> Vec<Received> {
        let mut reports = Vec::new();
        loop {
            let report = self.next().await;
            let done = report.kind() == last;
            reports.push(report);
            if done {
                return reports;
            }
        }
    }
}

pub fn now() -> Timestamp {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp(since.as_millis() as u64)
}

/// The binary under test: Cargo builds it for this package's integration tests.
pub const GAMESERVER: &str = env!("CARGO_BIN_EXE_queuematch-gameserver");

/// A local fleet of the binary under test, reporting to `service_url`.
pub fn fleet(service_url: &str, capacity: usize, server_args: &[&str]) -> ProcessFleet {
    let mut config = ProcessFleetConfig::new(GAMESERVER, service_url);
    config.max_servers = capacity;
    config.server_args = server_args.iter().map(Into::into).collect();
    // Set QUEUEMATCH_TEST_SERVER_LOGS to see the servers' JSON logs when a test fails.
    config.logs = if std::env::var_os("QUEUEMATCH_TEST_SERVER_LOGS").is_some() {
        ServerLogs::Inherit
    } else {
        ServerLogs::Discard
    };
    ProcessFleet::new(config)
}

/// Polls `placement` until its server is ready.
pub async fn ready<F: Fleet>(fleet: &F, placement: &Placement) -> (PlacementId, Endpoint) {
    let id = match placement {
        Placement::Pending { placement } | Placement::Ready { placement, .. } => placement.clone(),
    };
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match fleet.poll(&id).await {
            Ok(Placement::Ready { endpoint, .. }) => return (id, endpoint),
            Ok(Placement::Pending { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("{id:?} is not ready: {other:?}"),
        }
    }
}

/// Connects to `endpoint` with `token`, through the crate's client, giving up on a silent server
/// after [`STEP`].
pub async fn hello(endpoint: &Endpoint, token: &str) -> Result<GameClient, ClientError> {
    GameClient::connect_with(&endpoint.address, endpoint.port, token, STEP).await
}

/// A player the server must let in.
pub async fn join(endpoint: &Endpoint, token: &str) -> GameClient {
    hello(endpoint, token)
        .await
        .unwrap_or_else(|e| panic!("the server did not let the player in: {e}"))
}

/// Why the server refused `token`.
pub async fn denial(endpoint: &Endpoint, token: &str) -> String {
    match hello(endpoint, token).await {
        Err(ClientError::Denied(reason)) => reason,
        Err(other) => panic!("expected a denial, got {other}"),
        Ok(client) => panic!("expected a denial, but {:?} was let in", client.welcome()),
    }
}

/// A raw WebSocket to `endpoint`, for what the client library would never send.
pub async fn raw(endpoint: &Endpoint) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{}:{}/", endpoint.address, endpoint.port);
    tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint:?}: {e}"))
        .0
}

/// The next text message on a raw socket, as JSON; `None` once it is closed.
pub async fn raw_next(socket: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Option<serde_json::Value> {
    loop {
        match tokio::time::timeout(STEP, socket.next()).await {
            Err(_) => panic!("the server said nothing within {STEP:?}"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{e}: {text}")))
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}
