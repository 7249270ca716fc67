//! What the WebSocket routes share: the caller's token comes in the query, since browsers cannot set
//! headers on a WebSocket, and it is checked before the upgrade (401 without a valid one); a plain
//! GET is then refused with the status axum gives it (400 or 426), as problem+json.

use super::routes::verify;
use super::DevState;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::Query;
use queuematch_core::identity::jwt::Claims;
use queuematch_handlers::problem::Problem;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The verified claims of the `?token=`, or the 401 to answer; `missing` says what to pass when
/// there is no token.
pub(super) fn caller(
    state: &DevState,
    query: Result<Query<TokenQuery>, QueryRejection>,
    missing: &str,
) -> Result<Claims, Box<Problem>> {
    let token = match query {
        Ok(Query(TokenQuery { token: Some(token) })) => token,
        Ok(Query(TokenQuery { token: None })) => return Err(Box::new(Problem::unauthorized(missing))),
        Err(rejection) => {
            return Err(Box::new(Problem::unauthorized(format!(
                "pass the token once as ?token=: {}",
                rejection.body_text()
            ))))
        }
    };
    verify(state, &token)
}

/// The upgrade, or the problem for a request that is not a WebSocket handshake.
pub(super) fn upgrade(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, Box<Problem>> {
    upgrade.map_err(|rejection| {
        let status = rejection.status();
        Box::new(Problem::new(
            status.as_u16(),
            status.canonical_reason().unwrap_or("Bad Request"),
            format!("this route is a WebSocket: {}", rejection.body_text()),
        ))
    })
}
