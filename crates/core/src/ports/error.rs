//! The error every port returns, and the stable `errorType` it maps to at the Lambda boundary.

use crate::ports::store::Key;
use std::fmt;
use std::time::Duration;

/// `error` and each error under it, joined by colons: what a client library's top-level error
/// leaves out ("error sending request", "dispatch failure") is usually its cause's.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// What went wrong behind a port, in domain terms. Adapters map their SDK's errors onto these and
/// keep the SDK error as the source, so no SDK type leaks past the adapter.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A write's condition did not hold: the item was absent, present, or at another version than
    /// the caller expected. In a transaction, `operation` is the index of the first operation whose
    /// condition failed, and nothing of the transaction was written.
    #[error("condition failed on {key}{}", operation.map(|i| format!(" (operation {i})")).unwrap_or_default())]
    ConditionFailed { key: Key, operation: Option<usize> },
    /// The request clashes with what already exists outside the store's conditions: an execution
    /// name already started with another input, a server already claimed by another session.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing named does not exist (or no longer does: a deleted message, an expired item).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request breaks a rule of the port (a limit, a malformed key, an idempotency token reused
    /// for another request). Retrying it unchanged fails again.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// What the store holds cannot be read back as the domain type it should be.
    #[error("corrupt item {key}: {reason}")]
    Corrupt { key: Key, reason: String },
    /// No server can be placed now (fleet full, placement timed out or was cancelled).
    #[error("placement unavailable: {0}")]
    PlacementUnavailable(String),
    /// The service asked us to slow down.
    #[error("throttled{}", retry_after.map(|d| format!(", retry after {} ms", d.as_millis())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    /// A failure that may pass: a timeout, a dropped connection, a concurrent transaction.
    #[error("transient failure: {message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl PortError {
    pub fn transient(message: impl Into<String>) -> Self {
        PortError::Transient {
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        PortError::Invalid(message.into())
    }

    /// The stable `errorType` that workflow Retry/Catch and `batchItemFailures` decisions match on.
    pub fn error_type(&self) -> ErrorType {
        match self {
            PortError::ConditionFailed { .. } | PortError::Conflict(_) => ErrorType::Conflict,
            PortError::NotFound(_) => ErrorType::NotFound,
            PortError::Invalid(_) | PortError::Corrupt { .. } => ErrorType::Invalid,
            PortError::PlacementUnavailable(_) => ErrorType::PlacementUnavailable,
            PortError::Throttled { .. } => ErrorType::Throttled,
            PortError::Transient { .. } => ErrorType::Transient,
        }
    }

    /// Whether the same request may succeed later (with backoff and full jitter).
    pub fn is_retryable(&self) -> bool {
        self.error_type().is_retryable()
    }
}

/// The `errorType`s of DESIGN.md, stable across releases: workflow definitions match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Invalid,
    NotFound,
    Conflict,
    PlacementUnavailable,
    Throttled,
    Transient,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Invalid => "Invalid",
            ErrorType::NotFound => "NotFound",
            ErrorType::Conflict => "Conflict",
            ErrorType::PlacementUnavailable => "PlacementUnavailable",
            ErrorType::Throttled => "Throttled",
            ErrorType::Transient => "Transient",
        }
    }

    /// Throttling and transient failures pass; the others need a different request, or never pass.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorType::Throttled | ErrorType::Transient)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_told_with_every_cause_under_it() {
        /// An error that says only what it is, and has `cause` under it.
        #[derive(Debug)]
        struct Wrapping(&'static str, Option<Box<Wrapping>>);
        impl fmt::Display for Wrapping {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrapping {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
            }
        }
        let refused = Wrapping(
            "tcp connect error",
            Some(Box::new(Wrapping("Connection refused", None))),
        );
        let top = Wrapping("dispatch failure", Some(Box::new(refused)));
        assert_eq!(
            with_causes(&top),
            "dispatch failure: tcp connect error: Connection refused"
        );
        assert_eq!(with_causes(&Wrapping("alone", None)), "alone");
    }

    #[test]
    fn each_error_maps_to_its_stable_error_type() {
        let key = Key::new("TICKET#t", "TICKET");
        let cases = [
            (
                PortError::ConditionFailed {
                    key: key.clone(),
                    operation: Some(2),
                },
                "Conflict",
                false,
            ),
            (PortError::Conflict("execution s-1 exists".into()), "Conflict", false),
            (PortError::NotFound("t".into()), "NotFound", false),
            (PortError::invalid("too big"), "Invalid", false),
            (
                PortError::Corrupt {
                    key,
                    reason: "bad json".into(),
                },
                "Invalid",
                false,
            ),
            (
                PortError::PlacementUnavailable("full".into()),
                "PlacementUnavailable",
                false,
            ),
            (PortError::Throttled { retry_after: None }, "Throttled", true),
            (PortError::transient("timeout"), "Transient", true),
        ];
        for (err, name, retryable) in cases {
            assert_eq!(err.error_type().as_str(), name, "{err}");
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn a_transaction_conflict_names_the_operation() {
        let err = PortError::ConditionFailed {
            key: Key::new("PLAYER#p", "ACTIVE"),
            operation: Some(3),
        };
        assert_eq!(err.to_string(), "condition failed on PLAYER#p / ACTIVE (operation 3)");
    }
}
