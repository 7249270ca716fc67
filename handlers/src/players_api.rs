//! The `players-api` function: `GET /v1/players/{playerId}/ratings` behind API Gateway.
//!
//! A player reads their own ratings, one per queue they have played; an operator reads anyone's.
//! Another player's are 403: ratings are not secret the way tickets are, but they are the
//! player's own. A player with no rating yet, or an id that cannot be one, is 404.

use crate::ops_api::is_operator;
use crate::problem::{json_response, Problem};
use crate::tickets_api::caller;
use crate::Service;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::Method;
use queuematch_core::ids::PlayerId;
use queuematch_core::ports::Store;
use queuematch_core::ratings::{PlayerRating, Rating};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::ratings::ratings_of;
use serde::Serialize;

/// The resource of the route, as API Gateway names it in the proxy event.
pub const RATINGS_RESOURCE: &str = "/v1/players/{playerId}/ratings";

/// What the route answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingsView {
    pub player_id: PlayerId,
    pub ratings: Vec<QueueRating>,
}

/// One queue's rating, with the estimate the matcher reads.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRating {
    pub queue: String,
    #[serde(flatten)]
    pub rating: Rating,
    /// On the 1500-centred scale: what the matcher uses for a ticket without skill.
    pub conservative_estimate: f64,
    pub games: u32,
    pub updated_at: Timestamp,
}

impl From<PlayerRating> for QueueRating {
    fn from(r: PlayerRating) -> Self {
        Self {
            conservative_estimate: r.rating.conservative_estimate(),
            queue: r.queue,
            rating: r.rating,
            games: r.games,
            updated_at: r.updated_at,
        }
    }
}

/// Handles one request.
pub async fn handle<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: Store,
{
    let Some(caller) = caller(&request) else {
        return Problem::unauthorized("no caller: the request carries no verified token").into_response();
    };
    if request.http_method != Method::GET {
        return Problem::method_not_allowed(
            format!("{} is not allowed on {RATINGS_RESOURCE}; use GET", request.http_method),
            &["GET"],
        )
        .into_response();
    }
    let Some(id) = request.path_parameters.get("playerId").cloned() else {
        return Problem::not_found("no such route").into_response();
    };
    if !PlayerId::is_valid(&id) {
        return Problem::not_found(format!("no player {id:?}: {}", PlayerId::RULE)).into_response();
    }
    let player = PlayerId::new(id);
    if player != caller && !is_operator(&request) {
        return Problem::forbidden(format!("{caller} may read their own ratings only, not {player}'s")).into_response();
    }
    match ratings_of(&service.store, &player).await {
        Ok(ratings) if ratings.is_empty() => {
            Problem::not_found(format!("player {player} has no ratings yet: no rated game")).into_response()
        }
        Ok(ratings) => json_response(
            200,
            &RatingsView {
                player_id: player,
                ratings: ratings.into_iter().map(QueueRating::from).collect(),
            },
        ),
        Err(e) => Problem::unavailable(&e).into_response(),
    }
}
