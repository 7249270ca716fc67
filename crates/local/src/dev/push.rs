//! `GET /v1/events`: the WebSocket push. A client subscribes as a player, not per ticket, and
//! receives every event of its tickets and sessions, each as the JSON the AWS notifier sends.

use super::socket::{self, TokenQuery};
use super::DevState;
use crate::events::Delivery;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use queuematch_core::ids::PlayerId;

/// The token is checked first (401), then the upgrade (a plain GET is refused with the status axum
/// gives it, 400 or 426, as problem+json).
pub async fn events(
    State(state): State<DevState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let claims = match socket::caller(&state, query, "pass the token as ?token=") {
        Ok(claims) => claims,
        Err(refused) => return super::routes::problem(*refused),
    };
    let upgrade = match socket::upgrade(upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return super::routes::problem(*refused),
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
