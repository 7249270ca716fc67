//! `GET /v1/ops/stream?token=`: the operators' push, a WebSocket the console draws from.
//!
//! It works as the players' push does (`GET /v1/events`, the same bus), for the operator role only,
//! and sends JSON messages of three kinds:
//! - `{"type": "snapshot", …}`: every view at once (the tickets queue's depths, its dead letters,
//!   sessions, metrics). Sent on connecting, then again after something happened: a domain event on
//!   the bus, or a step of a workflow execution on the embedded engine. Changes that arrive together
//!   are coalesced ([`COALESCE`]), so a burst of events costs one snapshot, not one each. A snapshot
//!   is built once for every console connected ([`Snapshots`]): each was building its own, and fifty
//!   consoles left the players' API a hundredth of its speed. A console that reads slowly is sent
//!   the newest snapshot when it is ready for one, never a backlog.
//! - `{"type": "event", "event": {…}}`: each domain event as it is published, for the live feed.
//! - `{"type": "session", …}`: the session the client watches, with its timeline and each of its
//!   workflow executions (definition graph, path taken, current state), sent when the client asks
//!   (`{"watch": "<sessionId>"}`, or `{"watch": null}` to stop) and again with every snapshot.
//! - `{"type": "redriven", "moved": N}`: the answer to `{"redrive": true}`, the DLQ's redrive
//!   button, followed by a fresh snapshot. The stream is the operator's authenticated channel, so
//!   the page needs no second way to prove who it is.
//!
//! Nothing here polls: the connection sleeps until the bus or the engine says something changed.

use super::super::routes::problem;
use super::super::socket::{self, TokenQuery};
use super::super::DevState;
use super::views;
use crate::events::Delivery;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use queuematch_core::identity::jwt::Role;
use queuematch_core::ids::SessionId;
use queuematch_handlers::problem::Problem;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OnceCell};
use tokio::time::Instant;

/// How long a change waits for others before the snapshot goes out.
pub const COALESCE: Duration = Duration::from_millis(150);

/// How many dead letters a snapshot shows (the port's most per call).
const DEAD_LETTERS_SHOWN: usize = 10;

/// What the client may send.
#[derive(Debug, PartialEq)]
enum ClientMessage {
    /// `{"watch": "<sessionId>"}` follows a session in detail; `{"watch": null}` stops.
    Watch(Option<SessionId>),
    /// `{"redrive": true}` moves every dead letter back to the tickets queue (SQS's redrive).
    Redrive,
}

impl ClientMessage {
    fn parse(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = r#"send {"watch": "<sessionId>"}, {"watch": null} or {"redrive": true}"#;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}); {EXPECTED}"))?;
        let Some(fields) = value.as_object().filter(|o| o.len() == 1) else {
            return Err(format!("not an object of one field; {EXPECTED}"));
        };
        match fields.iter().next() {
            Some((key, Value::String(id))) if key == "watch" => Ok(ClientMessage::Watch(Some(id.as_str().into()))),
            Some((key, Value::Null)) if key == "watch" => Ok(ClientMessage::Watch(None)),
            Some((key, Value::Bool(true))) if key == "redrive" => Ok(ClientMessage::Redrive),
            Some((key, other)) => Err(format!(
                "`{key}`: {other} is not a message this stream takes; {EXPECTED}"
            )),
            None => Err(EXPECTED.to_owned()),
        }
    }
}

/// The token is checked first (401 without a valid one, 403 for a player's), then the upgrade.
pub async fn stream(
    State(state): State<DevState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let missing = "pass an operator token as ?token=; `queuematch token --operator` mints one";
    let claims = match socket::caller(&state, query, missing) {
        Ok(claims) => claims,
        Err(refused) => return problem(*refused),
    };
    if claims.role != Role::Operator {
        return problem(Problem::forbidden(
            "the operators' stream needs an operator token (`queuematch token --operator`)",
        ));
    }
    let upgrade = match socket::upgrade(upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return problem(*refused),
    };
    upgrade.on_upgrade(move |socket| serve(state, socket))
}

/// Sends `value` as one text message; false once the client is gone.
async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    send_text(socket, &value.to_string()).await
}

/// Sends `text`, a message already serialised; false once the client is gone.
async fn send_text(socket: &mut WebSocket, text: &str) -> bool {
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// The snapshot all consoles are sent: built by one task after each change (coalesced), for every
/// connection at once, and kept as its text. Started by the first console to connect.
#[derive(Debug, Clone, Default)]
pub struct Snapshots(Arc<OnceCell<watch::Sender<Arc<str>>>>);

impl Snapshots {
    /// The newest snapshot, marked unseen, and each one after it.
    async fn subscribe(&self, state: &DevState) -> watch::Receiver<Arc<str>> {
        let sender = self
            .0
            .get_or_init(|| async {
                // Subscribed before the first snapshot, so that nothing after it is missed.
                let changes = Changes::of(state);
                let (sender, _) = watch::channel(Arc::from(snapshot(state).await.to_string()));
                tokio::spawn(refresh(state.clone(), sender.clone(), changes));
                sender
            })
            .await;
        let mut receiver = sender.subscribe();
        receiver.mark_changed();
        receiver
    }
}

/// What a snapshot changes with: the bus's events and the engine's steps.
struct Changes {
    bus: crate::events::Subscription,
    steps: Option<watch::Receiver<u64>>,
}

impl Changes {
    fn of(state: &DevState) -> Self {
        Changes {
            bus: state.service.events.subscribe(),
            steps: state.workflows.as_ref().map(|w| w.changes()),
        }
    }

    /// Waits for the next change; false once the bus is gone.
    async fn next(&mut self) -> bool {
        let step = async {
            match self.steps.as_mut() {
                Some(steps) => steps.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            delivery = self.bus.next() => delivery.is_some(),
            alive = step => {
                if !alive {
                    // The engine is gone; go on with the bus alone.
                    self.steps = None;
                }
                true
            }
        }
    }
}

/// Builds a snapshot [`COALESCE`] after each change, while any console is connected.
async fn refresh(state: DevState, sender: watch::Sender<Arc<str>>, mut changes: Changes) {
    // When the pending snapshot is built; `None` while nothing changed since the last.
    let mut due: Option<Instant> = None;
    loop {
        let deadline = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.next() => {
                if !changed {
                    return;
                }
                due.get_or_insert_with(|| Instant::now() + COALESCE);
            }
            () = deadline => {
                due = None;
                if sender.receiver_count() > 0 {
                    sender.send_replace(Arc::from(snapshot(&state).await.to_string()));
                }
            }
        }
    }
}

async fn serve(state: DevState, mut socket: WebSocket) {
    // Subscribed before the first snapshot, so that no event after it is missed.
    let mut bus = state.service.events.subscribe();
    let mut snapshots = state.snapshots.subscribe(&state).await;
    let mut watched: Option<SessionId> = None;
    loop {
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                let text = snapshots.borrow_and_update().clone();
                if !send_text(&mut socket, &text).await {
                    return;
                }
                if let Some(id) = &watched {
                    if !send(&mut socket, &session_detail(&state, id).await).await {
                        return;
                    }
                }
            }
            delivery = bus.next() => match delivery {
                Some(Delivery::Event(event)) => {
                    let Ok(event) = serde_json::to_value(&event) else { continue };
                    if !send(&mut socket, &json!({"type": "event", "event": event})).await {
                        return;
                    }
                }
                // Fell behind: the feed has a gap, but the snapshots are whole.
                Some(Delivery::Missed(count)) => tracing::warn!(count, "operators' stream fell behind"),
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match ClientMessage::parse(&text) {
                    Ok(ClientMessage::Watch(watch)) => {
                        watched = watch;
                        if let Some(id) = &watched {
                            if !send(&mut socket, &session_detail(&state, id).await).await {
                                return;
                            }
                        }
                    }
                    Ok(ClientMessage::Redrive) => {
                        let answer = match state.service.queue.redrive().await {
                            Ok(moved) => json!({"type": "redriven", "moved": moved}),
                            Err(e) => json!({"type": "error", "detail": format!("the redrive failed: {e}")}),
                        };
                        // The queue changed with no domain event: the snapshot follows at once.
                        if !send(&mut socket, &answer).await || !send(&mut socket, &snapshot(&state).await).await {
                            return;
                        }
                    }
                    Err(detail) => {
                        if !send(&mut socket, &json!({"type": "error", "detail": detail})).await {
                            return;
                        }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Binary(_))) => {
                    let detail = r#"a binary frame: send JSON text, {"watch": "<sessionId>"}, {"watch": null} or {"redrive": true}"#;
                    if !send(&mut socket, &json!({"type": "error", "detail": detail})).await {
                        return;
                    }
                }
                // Pings are answered by the socket itself; pongs need nothing.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Every view at once. A view whose port failed carries `{"error": …}` instead, so one failing
/// port does not blank the others.
pub(crate) async fn snapshot(state: &DevState) -> Value {
    let service = &state.service;
    let now = queuematch_core::ports::Clock::now(&*service.clock);
    let queue = match service.queue.depth().await {
        Ok(depth) => json!({
            "visible": depth.visible,
            "inFlight": depth.in_flight,
            "delayed": depth.delayed,
            "dead": depth.dead,
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let dead_letters = match service.queue.dead_letters(DEAD_LETTERS_SHOWN).await {
        Ok(letters) => Value::Array(
            letters
                .into_iter()
                .map(|l| {
                    json!({
                        "messageId": l.message_id,
                        "receiveCount": l.receive_count,
                        "sentAt": l.sent_at,
                        "body": l.body,
                    })
                })
                .collect(),
        ),
        Err(e) => json!({"error": e.to_string()}),
    };
    let mut snapshot = json!({
        "type": "snapshot",
        "at": now,
        "ticketsQueue": queue,
        "deadLetters": dead_letters,
    });
    match views::sessions(state).await {
        Ok(sessions) => {
            snapshot["sessions"] = sessions.iter().map(|(s, _)| views::session_row(s)).collect();
            snapshot["histograms"] = views::histograms(&sessions);
            snapshot["queues"] = match views::queues(state).await {
                Ok(queues) => queues,
                Err(e) => json!({"error": e.to_string()}),
            };
        }
        Err(e) => snapshot["error"] = json!(e.to_string()),
    }
    snapshot
}

/// The watched session's detail; a port that failed is named in `error`.
pub(crate) async fn session_detail(state: &DevState, id: &SessionId) -> Value {
    views::session_detail(state, id)
        .await
        .unwrap_or_else(|e| json!({"type": "session", "sessionId": id, "error": e.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_are_read_exactly() {
        assert_eq!(
            ClientMessage::parse(r#"{"watch": "s-1"}"#),
            Ok(ClientMessage::Watch(Some("s-1".into())))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"watch": null}"#),
            Ok(ClientMessage::Watch(None))
        );
        assert_eq!(ClientMessage::parse(r#"{"redrive": true}"#), Ok(ClientMessage::Redrive));
        for bad in [
            r#"{"redrive": false}"#,
            r#"{"watch": 1}"#,
            r#"{"watch": "s", "redrive": true}"#,
            "[]",
            "{",
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
        assert!(ClientMessage::parse(r#"{"follow": "s-1"}"#)
            .unwrap_err()
            .starts_with("`follow`: \"s-1\" is not a message"));
    }
}
