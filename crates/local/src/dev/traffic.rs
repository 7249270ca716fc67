//! `GET /v1/ops/traffic`: the operators' tap on live traffic, what `queuematch record` writes to a
//! trace (`crate::replay::trace` has the format).
//!
//! A middleware in front of every route sees each request and its answer; while somebody listens,
//! it turns the ones a replay needs into trace lines: a ticket accepted (202), a cancel or an
//! acceptance by an authenticated player (answered 2xx or 409: a cancel refused live may succeed
//! under another rule set), a game server's report taken (2xx). With nobody listening it only looks
//! at the receiver count, so the tap costs nothing by default. The stream's first message is the
//! trace's header: the rule sets served and the fleet's one region.
//!
//! A listener that falls behind the broadcast's buffer would write a trace with a hole in it; its
//! socket is closed with the count of lost lines instead, so the recording fails loudly.

use super::routes::{bearer_token, problem, verify};
use super::socket::{self, TokenQuery};
use super::DevState;
use crate::replay::trace::{TicketArrival, TraceHeader, TraceLine, TRACE_VERSION};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use queuematch_core::identity::jwt::Role;
use queuematch_core::ports::Clock;
use queuematch_core::ticket::AcceptanceType;
use queuematch_core::Timestamp;
use queuematch_handlers::problem::Problem;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Lines buffered for a listener that is momentarily slow: a burst of a few thousand tickets.
const BUFFER: usize = 8_192;

/// The tap: where trace lines are broadcast, and the server state they are read against.
#[derive(Clone)]
pub struct Tap {
    lines: broadcast::Sender<String>,
    state: DevState,
    /// The time of the last line sent. A line's time is read when its request arrives, but lines go
    /// out when their answers are ready, and concurrent requests finish in any order: a line is
    /// sent at no earlier a time than the one before it, so that a trace is in time order, as a
    /// replay requires. The lock is held only to compare and send, never across an await.
    last_at: Arc<Mutex<Timestamp>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("listeners", &self.lines.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Tap {
    pub fn new(state: &DevState) -> Self {
        Self {
            lines: broadcast::channel(BUFFER).0,
            state: state.clone(),
            last_at: Arc::new(Mutex::new(Timestamp(0))),
        }
    }

    /// The trace's first line: what the server serves, as a replay needs it.
    fn header(&self) -> String {
        let queues = &self.state.service.queues;
        let rule_sets = queues
            .names()
            .into_iter()
            .filter_map(|name| queues.get(name))
            .filter_map(|rule_set| serde_json::to_value(rule_set).ok())
            .collect();
        TraceLine::Header(TraceHeader {
            version: TRACE_VERSION,
            single_region: self.state.service.settings.single_region.clone(),
            rule_sets,
        })
        .to_line()
    }
}

/// The requests a trace records.
enum Tapped {
    Ticket,
    Cancel(String),
    Accept(String),
    Report(String),
}

fn classify(method: &Method, path: &str) -> Option<Tapped> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "tickets"]) => Some(Tapped::Ticket),
        (&Method::DELETE, ["v1", "tickets", id]) => Some(Tapped::Cancel((*id).to_owned())),
        (&Method::POST, ["v1", "tickets", id, "acceptance"]) => Some(Tapped::Accept((*id).to_owned())),
        (&Method::POST, ["v1", "sessions", id, "events"]) => Some(Tapped::Report((*id).to_owned())),
        _ => None,
    }
}

/// The middleware: passes every request on, and broadcasts the trace line of those a trace keeps.
pub async fn observe(State(tap): State<Tap>, request: Request, next: Next) -> Response {
    if tap.lines.receiver_count() == 0 {
        return next.run(request).await;
    }
    let Some(tapped) = classify(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let caller = bearer_token(request.headers())
        .ok()
        .and_then(|token| verify(&tap.state, token).ok())
        .map(|claims| claims.player_id().to_string());
    let (parts, body) = request.into_parts();
    // The body was read whole before this layer (`routes::whole_body`), within the limit.
    let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY_BYTES).await else {
        return problem(Problem::too_large(super::MAX_BODY_BYTES));
    };
    let at = tap.state.service.clock.now();
    let response = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    let status = response.status();
    let answered = status.as_u16();
    let kept = status.is_success() || status == StatusCode::CONFLICT;
    let json = || serde_json::from_slice::<Value>(&body).ok();
    let (line, response) = match tapped {
        Tapped::Ticket if status == StatusCode::ACCEPTED => {
            let (parts, response_body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(response_body, usize::MAX).await else {
                return problem(Problem::new(
                    500,
                    "Internal Server Error",
                    "the answer could not be read",
                ));
            };
            let ticket_id = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["ticketId"].as_str().map(str::to_owned));
            let line = match (ticket_id, caller, json()) {
                (Some(ticket_id), Some(player_id), Some(request)) => Some(TraceLine::Ticket(TicketArrival {
                    at,
                    ticket_id,
                    player_id,
                    request,
                })),
                _ => None,
            };
            (line, Response::from_parts(parts, Body::from(bytes)))
        }
        Tapped::Cancel(ticket_id) if kept => (
            caller.map(|player_id| TraceLine::Cancel {
                at,
                ticket_id,
                player_id,
                status: answered,
            }),
            response,
        ),
        Tapped::Accept(ticket_id) if kept => {
            let answer = json()
                .and_then(|v| v.get("acceptanceType").cloned())
                .and_then(|v| serde_json::from_value::<AcceptanceType>(v).ok());
            let line = match (caller, answer) {
                (Some(player_id), Some(acceptance_type)) => Some(TraceLine::Accept {
                    at,
                    ticket_id,
                    player_id,
                    acceptance_type,
                    status: answered,
                }),
                _ => None,
            };
            (line, response)
        }
        Tapped::Report(session_id) if status.is_success() => (
            json().map(|report| TraceLine::Report {
                at,
                session_id,
                report,
                status: answered,
            }),
            response,
        ),
        _ => (None, response),
    };
    if let Some(mut line) = line {
        // A poisoned lock only means another request panicked between two plain assignments.
        let mut last_at = tap.last_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *last_at = (*last_at).max(at);
        line.set_at(*last_at);
        // Nobody may be listening any more; then the line has nowhere to go.
        let _ = tap.lines.send(line.to_line());
    }
    response
}

/// `GET /v1/ops/traffic?token=`: an operator's token (401 without a valid one, 403 for a player's),
/// then the WebSocket upgrade.
pub async fn stream(
    State(tap): State<Tap>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let claims = match socket::caller(&tap.state, query, "pass the token as ?token=") {
        Ok(claims) => claims,
        Err(refused) => return problem(*refused),
    };
    if claims.role != Role::Operator {
        return problem(Problem::forbidden(
            "live traffic is for operators; `queuematch token --operator` mints an operator's token",
        ));
    }
    let upgrade = match socket::upgrade(upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return problem(*refused),
    };
    // Subscribed before the header goes out: whatever the listener does once it has the header
    // is in the trace.
    let lines = tap.lines.subscribe();
    let header = tap.header();
    upgrade.on_upgrade(move |socket| forward(header, lines, socket))
}

async fn forward(header: String, mut lines: broadcast::Receiver<String>, mut socket: WebSocket) {
    if socket.send(Message::Text(header.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Ok(line) => {
                    if socket.send(Message::Text(line.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "a traffic listener fell behind; closing it");
                    let frame = CloseFrame {
                        code: 1011,
                        reason: format!("fell behind: {lost} trace lines lost").into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
