//! SDK errors in the port's terms: every adapter call ends in [`map`] or in a match on the
//! operation's own error codes that falls back to it, so no SDK error type leaks past the adapter.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use queuematch_core::ports::PortError;
use std::error::Error;

/// Error codes the services use for "slow down" (the SDK's own throttling list, plus the service
/// specific ones): after the SDK's retries ran out, these are `Throttled`.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "LimitExceededException",
    "SlowDown",
    "TransactionInProgressException",
];

/// Codes of failures that may pass on their own.
const TRANSIENT: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The service's error code, if the call got as far as an error response.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// A description for the port error's message: the operation, the code and the service's message.
pub(crate) fn describe<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(e) => format!(
            "{operation}: {} ({})",
            e.err().message().unwrap_or("no message"),
            e.err().code().unwrap_or("no code")
        ),
        SdkError::TimeoutError(_) => format!("{operation}: timed out{}", causes(err)),
        SdkError::DispatchFailure(_) => format!("{operation}: the request could not be sent{}", causes(err)),
        SdkError::ResponseError(_) => format!("{operation}: the response could not be read{}", causes(err)),
        SdkError::ConstructionFailure(_) => format!("{operation}: the request could not be built{}", causes(err)),
        _ => format!("{operation}: failed{}", causes(err)),
    }
}

/// What lies under an SDK error that never got a service's answer (a refused connection, a name
/// that does not resolve), after a colon: the SDK's own text is only "dispatch failure".
fn causes<E: Error + 'static, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    err.source()
        .map(|cause| format!(": {}", queuematch_core::ports::error::with_causes(cause)))
        .unwrap_or_default()
}

/// The port error for an SDK error that the operation has no special meaning for: for adapters
/// outside this crate too (the Lambda wiring's WebSocket management API).
pub fn map<E, R>(operation: &str, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = describe(operation, &err);
    let code = code(&err).map(str::to_owned);
    match &err {
        SdkError::ServiceError(_) => match code.as_deref() {
            Some(c) if THROTTLING.contains(&c) => PortError::Throttled { retry_after: None },
            Some(c) if TRANSIENT.contains(&c) => transient(message, err),
            Some(c) if c.contains("NotFound") || c == "NonExistentQueue" || c.ends_with("DoesNotExist") => {
                PortError::NotFound(message)
            }
            // A 4xx the caller can fix (validation, access, a missing resource's configuration):
            // retrying it unchanged fails again.
            _ => PortError::Invalid(message),
        },
        SdkError::ConstructionFailure(_) => PortError::Invalid(message),
        _ => transient(message, err),
    }
}

fn transient<E, R>(message: String, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    PortError::Transient {
        message,
        source: Some(Box::new(err)),
    }
}
