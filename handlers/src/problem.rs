//! RFC 7807 problem details: the body of every error response, on AWS and locally.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use queuematch_core::ports::{ErrorType, PortError};
use queuematch_core::ticket_request::FieldError;
use queuematch_core::usecases::UseCaseError;
use serde::Serialize;
use std::borrow::Cow;

/// A problem, as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field errors, each at its JSON pointer into the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying a 429 or 503; sent as `Retry-After`, not in the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The methods a 405's resource takes; sent as `Allow` (RFC 9110 §15.5.6), not in the body.
    #[serde(skip)]
    pub allow: Option<String>,
}

impl Problem {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:queuematch:problem:{}", title.to_lowercase().replace(' ', "-")),
            title: title.to_owned(),
            status,
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after: None,
            allow: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(400, "Bad Request", detail)
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", detail)
    }

    /// A 405 of a resource that takes `allowed` methods only (none given: the server's router
    /// says them, as axum's does).
    pub fn method_not_allowed(detail: impl Into<String>, allowed: &[&str]) -> Self {
        Self {
            allow: (!allowed.is_empty()).then(|| allowed.join(", ")),
            ..Self::new(405, "Method Not Allowed", detail)
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "Payload Too Large",
            format!("the body is over {} KiB", limit / 1024),
        )
    }

    /// A body sent as something other than JSON: API Gateway's `UNSUPPORTED_MEDIA_TYPE` response,
    /// in its words.
    pub fn unsupported_media_type() -> Self {
        Self::new(415, "Unsupported Media Type", "send the body as application/json")
    }

    /// Throttling, or a failure behind the ports that may pass: the client retries after a while.
    /// Never a 500 with the error's debug dump: the cause goes to the logs, not to the caller.
    pub fn unavailable(error: &PortError) -> Self {
        match error.error_type() {
            ErrorType::Throttled => Self {
                retry_after: Some(1),
                ..Self::new(429, "Too Many Requests", "slow down")
            },
            _ => Self {
                retry_after: Some(1),
                ..Self::new(
                    503,
                    "Service Unavailable",
                    "the service could not complete the request; retry shortly",
                )
            },
        }
    }

    pub fn into_response(self) -> ApiGatewayProxyResponse {
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = i64::from(self.status);
        response
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            response.headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allowed) = self.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
            response.headers.insert(ALLOW, allowed);
        }
        response.body = Some(Body::Text(body));
        response
    }
}

impl From<&UseCaseError> for Problem {
    fn from(error: &UseCaseError) -> Self {
        match error {
            UseCaseError::NotFound(detail) => Problem::not_found(detail.clone()),
            UseCaseError::Conflict(detail) => Problem::conflict(detail.clone()),
            UseCaseError::Port(e) => Problem::unavailable(e),
        }
    }
}

/// A JSON response with `status`.
pub fn json_response(status: u16, body: &impl Serialize) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(serde_json::to_string(body).unwrap_or_default()));
    response
}

/// The request's body as sent: API Gateway hands over a body it took for binary in base64 and says so
/// in `isBase64Encoded`. No body reads as empty.
pub fn request_body(request: &ApiGatewayProxyRequest) -> Result<Cow<'_, [u8]>, Box<Problem>> {
    match (&request.body, request.is_base64_encoded) {
        (None, _) => Ok(Cow::Borrowed(&[])),
        (Some(text), false) => Ok(Cow::Borrowed(text.as_bytes())),
        (Some(text), true) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Cow::Owned)
            .map_err(|e| {
                Box::new(Problem::bad_request(
                    format!("the body is marked base64 but is not: {e}"),
                    Vec::new(),
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_problem_json_with_its_status() {
        let response = Problem::bad_request(
            "the body breaks the schema",
            vec![FieldError {
                pointer: "/queue".into(),
                message: "unknown queue".into(),
            }],
        )
        .into_response();
        assert_eq!(response.status_code, 400);
        assert_eq!(response.headers[CONTENT_TYPE], "application/problem+json");
        let Some(Body::Text(body)) = response.body else {
            panic!("a text body")
        };
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["type"], "urn:queuematch:problem:bad-request");
        assert_eq!(body["errors"][0]["pointer"], "/queue");
    }

    #[test]
    fn a_throttle_answers_429_with_retry_after_and_no_internals() {
        let response = Problem::unavailable(&PortError::Throttled { retry_after: None }).into_response();
        assert_eq!(response.status_code, 429);
        assert_eq!(response.headers[RETRY_AFTER], "1");
        let transient = Problem::unavailable(&PortError::transient("connection reset by 10.0.0.1")).into_response();
        assert_eq!(transient.status_code, 503);
        let Some(Body::Text(body)) = transient.body else {
            panic!("a text body")
        };
        assert!(!body.contains("10.0.0.1"), "no internals leak: {body}");
    }
}
