//! The `tickets-api` function: `GET` and `DELETE /v1/tickets/{ticketId}` behind API Gateway.
//!
//! `POST /v1/tickets` never reaches a function on AWS: API Gateway validates it and sends it to SQS
//! itself. The caller is the subject of the JWT the authorizer checked, which API Gateway hands over
//! as `requestContext.authorizer.claims.sub` (Cognito) — and which the dev server hands over the same
//! way after checking a dev token.

use crate::problem::{json_response, Problem};
use crate::Service;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::Method;
use queuematch_core::ids::{PlayerId, TicketId};
use queuematch_core::ports::{Clock, Events, Store};
use queuematch_core::usecases::tickets;

/// Ticket ids are opaque but bounded; anything else is refused before it reaches the store.
fn valid_ticket_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The caller, from the authorizer's claims.
pub fn caller(request: &ApiGatewayProxyRequest) -> Option<PlayerId> {
    let claims = request.request_context.authorizer.fields.get("claims")?;
    let sub = claims.get("sub")?.as_str()?;
    (!sub.is_empty()).then(|| PlayerId::new(sub))
}

/// Handles one request.
pub async fn handle<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: Store,
    E: Events,
    C: Clock,
{
    let Some(caller) = caller(&request) else {
        return Problem::unauthorized("no caller: the request carries no verified token").into_response();
    };
    let Some(id) = request.path_parameters.get("ticketId").cloned() else {
        return Problem::not_found("no such route").into_response();
    };
    if !valid_ticket_id(&id) {
        return Problem::not_found(format!(
            "no ticket {id:?}: a ticket id is 1 to 128 letters, digits, `-`, `_`, `.` or `:`"
        ))
        .into_response();
    }
    let id = TicketId::new(id);
    let result = match request.http_method {
        Method::GET => tickets::get(&service.store, &service.clock, &caller, &id).await,
        Method::DELETE => tickets::cancel(&service.store, &service.events, &service.settings, &caller, &id).await,
        other => {
            return Problem::method_not_allowed(format!(
                "{other} is not allowed on /v1/tickets/{{ticketId}}; use GET or DELETE"
            ))
            .into_response()
        }
    };
    match result {
        Ok(view) => json_response(200, &view),
        Err(e) => Problem::from(&e).into_response(),
    }
}
