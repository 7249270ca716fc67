//! The `tickets-api` function: `GET` and `DELETE /v1/tickets/{ticketId}`, and
//! `POST /v1/tickets/{ticketId}/acceptance`, behind API Gateway.
//!
//! `POST /v1/tickets` never reaches a function on AWS: API Gateway validates it and sends it to SQS
//! itself. The caller is the subject of the JWT the authorizer checked, which API Gateway hands over
//! as `requestContext.authorizer.claims.sub` (Cognito) — and which the dev server hands over the same
//! way after checking a dev token.

use crate::problem::{json_response, request_body, Problem};
use crate::Service;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::Method;
use queuematch_core::ids::{PlayerId, TicketId};
use queuematch_core::json::from_slice_unique;
use queuematch_core::ports::{Clock, Events, Store};
use queuematch_core::ticket_request::FieldError;
use queuematch_core::usecases::{acceptance, tickets};
use queuematch_core::{AcceptanceType, TicketStatus};
use serde_json::Value;

/// The resource of the acceptance route, as API Gateway names it in the proxy event.
pub const ACCEPTANCE_RESOURCE: &str = "/v1/tickets/{ticketId}/acceptance";

/// Reads `{"acceptanceType": "ACCEPT" | "REJECT"}`, naming every problem at its pointer.
pub fn acceptance_type(body: &[u8]) -> Result<AcceptanceType, Box<Problem>> {
    let refuse = |pointer: &str, message: String| {
        Box::new(Problem::bad_request(
            "the body is not an acceptance",
            vec![FieldError {
                pointer: pointer.to_owned(),
                message,
            }],
        ))
    };
    let json: Value = from_slice_unique(body).map_err(|e| refuse("", format!("not valid JSON: {e}")))?;
    let Some(object) = json.as_object() else {
        return Err(refuse(
            "",
            "must be an object: {\"acceptanceType\": \"ACCEPT\" | \"REJECT\"}".into(),
        ));
    };
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "acceptanceType") {
        return Err(refuse(&format!("/{unknown}"), format!("unknown field `{unknown}`")));
    }
    match object.get("acceptanceType") {
        None => Err(refuse("/acceptanceType", "is required: ACCEPT or REJECT".into())),
        Some(Value::String(s)) if s == "ACCEPT" => Ok(AcceptanceType::Accept),
        Some(Value::String(s)) if s == "REJECT" => Ok(AcceptanceType::Reject),
        Some(other) => Err(refuse(
            "/acceptanceType",
            format!("must be ACCEPT or REJECT, not {other}"),
        )),
    }
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
    if !TicketId::is_valid(&id) {
        return Problem::not_found(format!("no ticket {id:?}: {}", TicketId::RULE)).into_response();
    }
    let id = TicketId::new(id);
    if request.resource.as_deref() == Some(ACCEPTANCE_RESOURCE) {
        if request.http_method != Method::POST {
            return Problem::method_not_allowed(
                format!(
                    "{} is not allowed on {ACCEPTANCE_RESOURCE}; use POST",
                    request.http_method
                ),
                &["POST"],
            )
            .into_response();
        }
        let answer = match request_body(&request).and_then(|body| acceptance_type(&body)) {
            Ok(answer) => answer,
            Err(problem) => return problem.into_response(),
        };
        let acceptances = acceptance::Acceptances {
            store: &service.store,
            events: &service.events,
            clock: &service.clock,
            queues: &service.queues,
            settings: &service.settings,
        };
        let result = acceptances.respond(&caller, &id, answer).await;
        return match result {
            Ok(view) => json_response(200, &view),
            Err(e) => Problem::from(&e).into_response(),
        };
    }
    let result = match request.http_method {
        Method::GET => tickets::get(&service.store, &service.clock, &caller, &id).await,
        Method::DELETE => {
            let cancelled = tickets::cancel(
                &service.store,
                &service.events,
                &service.clock,
                &service.settings,
                &caller,
                &id,
            )
            .await;
            return match cancelled {
                Ok(tickets::Cancel::Done(view)) => json_response(200, &view),
                Ok(tickets::Cancel::WhenAdmitted) => json_response(
                    202,
                    &serde_json::json!({
                        "ticketId": id,
                        "status": TicketStatus::Queued,
                        "detail": format!(
                            "no ticket {id} is admitted yet: the cancel is recorded, and the ticket is CANCELLED when it is"
                        ),
                    }),
                ),
                Err(e) => Problem::from(&e).into_response(),
            };
        }
        other => {
            return Problem::method_not_allowed(
                format!("{other} is not allowed on /v1/tickets/{{ticketId}}; use GET or DELETE"),
                &["GET", "DELETE"],
            )
            .into_response()
        }
    };
    match result {
        Ok(view) => json_response(200, &view),
        Err(e) => Problem::from(&e).into_response(),
    }
}
