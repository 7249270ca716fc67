//! Push on AWS: the WebSocket API's routes keep each player's connections in the table, and the
//! `notifier` sends every domain event to every connection of its players.
//!
//! A connection is two items, both expiring when API Gateway would close it anyway (2 hours):
//! `CONN#<id> / CONN` names its player, for `$disconnect`; `PLAYER#<id> / CONN#<id>` lists it under
//! the player, for the notifier's query. A client subscribes as a player, never per ticket: the
//! `$connect` authorizer has already named the player, so `$connect` subscribes, and the
//! `subscribe` route renews a long-lived connection's items.
//!
//! The messages are the domain events' JSON, the same the dev server's `GET /v1/events` sends.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use queuematch_core::event::{DomainEvent, EVENT_SOURCE};
use queuematch_core::ids::PlayerId;
use queuematch_core::ports::store::{Condition, Index, Item, Key, Query, Write, MAX_PAGE_ITEMS};
use queuematch_core::ports::{Clock, ErrorType, PortError, Store};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

use crate::problem::{json_response, Problem};
use crate::workflow_tasks::TaskFailure;

/// API Gateway closes a WebSocket connection after 2 hours; its items go with it.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// The key of a connection's own item.
pub fn connection_key(connection_id: &str) -> Key {
    Key::new(format!("CONN#{connection_id}"), "CONN")
}

/// The key of a connection's item under its player.
pub fn player_connection_key(player: &PlayerId, connection_id: &str) -> Key {
    Key::new(format!("PLAYER#{player}"), format!("CONN#{connection_id}"))
}

/// Sends one message to one connection: API Gateway's `PostToConnection` on AWS.
#[async_trait::async_trait]
pub trait Connections: Send + Sync {
    async fn post(&self, connection_id: &str, message: &[u8]) -> Result<Posted, PortError>;
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Sent,
    /// The connection is closed (`GoneException`): its items are stale.
    Gone,
}

/// A WebSocket route event, as much of it as these routes read. `aws_lambda_events`' WebSocket
/// request types drop the `$connect` authorizer's `principalId`, which is what names the player.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEvent {
    pub request_context: RouteContext,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteContext {
    #[serde(default)]
    pub route_key: String,
    #[serde(default)]
    pub connection_id: String,
    /// What the Lambda authorizer returned: `principalId` and its context. Only on `$connect`.
    #[serde(default)]
    pub authorizer: Option<Map<String, Value>>,
}

/// Handles one WebSocket route event: `$connect`, `$disconnect` or `subscribe`.
pub async fn handle_route<S: Store, C: Clock>(store: &S, clock: &C, event: RouteEvent) -> ApiGatewayProxyResponse {
    let context = event.request_context;
    let connection_id = context.connection_id;
    if connection_id.is_empty() {
        return Problem::bad_request("the event names no connection", vec![]).into_response();
    }
    let result = match context.route_key.as_str() {
        "$connect" => {
            let player = context
                .authorizer
                .as_ref()
                .and_then(|a| a.get("principalId"))
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(PlayerId::new);
            let Some(player) = player else {
                return Problem::unauthorized("the connection has no verified player").into_response();
            };
            subscribe(store, clock, &connection_id, &player)
                .await
                .map(|()| json!({"subscribed": player.as_str()}))
        }
        // Later frames carry no authorizer context: the player is the one `$connect` stored.
        "subscribe" => match player_of(store, &connection_id).await {
            Ok(Some(player)) => subscribe(store, clock, &connection_id, &player)
                .await
                .map(|()| json!({"subscribed": player.as_str()})),
            Ok(None) => {
                return Problem::unauthorized("the connection is unknown or expired: connect again").into_response()
            }
            Err(e) => Err(e),
        },
        "$disconnect" => disconnect(store, &connection_id)
            .await
            .map(|()| json!({"disconnected": connection_id})),
        other => {
            return Problem::not_found(format!(
                "no route {other:?}: send {{\"action\": \"subscribe\"}}, or just listen"
            ))
            .into_response()
        }
    };
    match result {
        Ok(body) => json_response(200, &body),
        Err(e) => Problem::unavailable(&e).into_response(),
    }
}

/// The player of a connection; `None` once it is gone or expired (the store hides expired items).
async fn player_of<S: Store>(store: &S, connection_id: &str) -> Result<Option<PlayerId>, PortError> {
    let stored = store.get(&connection_key(connection_id)).await?;
    Ok(stored.and_then(|s| s.item.body["playerId"].as_str().map(PlayerId::new)))
}

/// Writes (or renews) both items of a connection, in one transaction.
pub async fn subscribe<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    connection_id: &str,
    player: &PlayerId,
) -> Result<(), PortError> {
    let expires = clock.now().plus(CONNECTION_LIFETIME);
    let body = json!({"connectionId": connection_id, "playerId": player.as_str()});
    let writes = vec![
        Write::put(
            Item::new(connection_key(connection_id), body.clone()).expiring_at(expires),
            Condition::Any,
        ),
        Write::put(
            Item::new(player_connection_key(player, connection_id), body).expiring_at(expires),
            Condition::Any,
        ),
    ];
    store.transact_write(writes, None).await
}

/// Deletes both items of a connection; a connection already gone is no error.
pub async fn disconnect<S: Store>(store: &S, connection_id: &str) -> Result<(), PortError> {
    let Some(player) = player_of(store, connection_id).await? else {
        return store.delete(&connection_key(connection_id), Condition::Any).await;
    };
    forget(store, &player, connection_id).await
}

async fn forget<S: Store>(store: &S, player: &PlayerId, connection_id: &str) -> Result<(), PortError> {
    store
        .transact_write(
            vec![
                Write::delete(connection_key(connection_id), Condition::Any),
                Write::delete(player_connection_key(player, connection_id), Condition::Any),
            ],
            None,
        )
        .await
}

/// What the notifier did with one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notified {
    pub sent: usize,
    /// Connections found closed, whose items were deleted.
    pub gone: usize,
}

/// Sends `event` to every open connection of its players. Closed connections are forgotten. An error
/// of the store or of a send fails the whole event, for EventBridge to retry: a duplicate message is
/// harmless (clients read state by id), a lost one is not.
pub async fn notify<S: Store, N: Connections>(
    store: &S,
    connections: &N,
    event: &DomainEvent,
) -> Result<Notified, PortError> {
    let message = serde_json::to_vec(event).map_err(|e| PortError::invalid(format!("event: {e}")))?;
    let mut notified = Notified::default();
    // A player named twice is sent the event once.
    let mut seen = std::collections::HashSet::new();
    for player in event.player_ids().iter().filter(|p| seen.insert(*p)) {
        let mut after = None;
        loop {
            let query = Query::new(Index::Table, format!("PLAYER#{player}"), MAX_PAGE_ITEMS)
                .with_prefix("CONN#")
                .after(after);
            let page = store.query(query).await?;
            for stored in &page.items {
                let Some(connection_id) = stored.item.key.sk.strip_prefix("CONN#") else {
                    continue;
                };
                match connections.post(connection_id, &message).await? {
                    Posted::Sent => notified.sent += 1,
                    Posted::Gone => {
                        forget(store, player, connection_id).await?;
                        notified.gone += 1;
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(notified)
}

/// The `notifier` function: one EventBridge event of the bus, its detail a domain event, pushed to
/// every connection of its players. Its answer is `{"sent", "gone"}`. An event that is not the
/// service's own (its `source` is not [`EVENT_SOURCE`]), a detail that is no domain event, and a
/// `detail-type` that names another event than its detail are `Invalid` (EventBridge's retries
/// cannot mend them) and push nothing; a port's failure keeps its `errorType`.
pub async fn handle_event<S: Store, N: Connections>(
    store: &S,
    connections: &N,
    event: EventBridgeEvent<Value>,
) -> Result<Value, TaskFailure> {
    let invalid = |error_message: String| TaskFailure {
        error_type: ErrorType::Invalid,
        error_message,
    };
    let detail_type = event.detail_type;
    if event.source != EVENT_SOURCE {
        return Err(invalid(format!(
            "the {detail_type:?} event comes from {:?}, not from {EVENT_SOURCE:?}: only the service's own events are pushed",
            event.source
        )));
    }
    let domain_event: DomainEvent = serde_json::from_value(event.detail).map_err(|e| {
        invalid(format!(
            "the detail of a {detail_type:?} event is not a domain event: {e}"
        ))
    })?;
    if domain_event.name() != detail_type {
        return Err(invalid(format!(
            "the event's detail-type is {detail_type:?} but its detail is a {:?} event",
            domain_event.name()
        )));
    }
    let notified = notify(store, connections, &domain_event).await?;
    Ok(json!({"sent": notified.sent, "gone": notified.gone}))
}
