//! `GET /v1/events`: the WebSocket push. A client subscribes as a player, not per ticket, and
//! receives every event of its tickets and sessions, each as the JSON the AWS notifier sends.

use super::routes::verify;
use super::DevState;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use queuematch_core::ids::PlayerId;
use queuematch_handlers::problem::Problem;
use serde::Deserialize;

use crate::events::Delivery;

#[derive(Debug, Deserialize)]
pub struct PushQuery {
    /// Browsers cannot set headers on a WebSocket, so the token comes in the query.
    token: Option<String>,
}

/// The token is checked first (401), then the upgrade (a plain GET is refused with the status axum
/// gives it, 400 or 426, as problem+json).
pub async fn events(
    State(state): State<DevState>,
    query: Result<Query<PushQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let token = match query {
        Ok(Query(PushQuery { token: Some(token) })) => token,
        Ok(Query(PushQuery { token: None })) => {
            return super::routes::problem(Problem::unauthorized("pass the token as ?token="))
        }
        Err(rejection) => {
            return super::routes::problem(Problem::unauthorized(format!(
                "pass the token once as ?token=: {}",
                rejection.body_text()
            )))
        }
    };
    let claims = match verify(&state, &token) {
        Ok(claims) => claims,
        Err(unauthorized) => return super::routes::problem(*unauthorized),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status();
            return super::routes::problem(Problem::new(
                status.as_u16(),
                status.canonical_reason().unwrap_or("Bad Request"),
                format!("this route is a WebSocket: {}", rejection.body_text()),
            ));
        }
    };
    let player = claims.player_id();
    upgrade.on_upgrade(move |socket| forward(state, player, socket))
}

async fn forward(state: DevState, player: PlayerId, mut socket: WebSocket) {
    let mut subscription = state.service.events.subscribe_player(player.clone());
    loop {
        tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(Delivery::Event(event)) => {
                    let Ok(text) = serde_json::to_string(&event) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                // As on API Gateway, a slow client loses events; it re-reads its ticket.
                Some(Delivery::Missed(count)) => tracing::warn!(%player, count, "push subscriber fell behind"),
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
