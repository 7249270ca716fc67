//! The `workflow-tasks` function: every Task state of the `session-placement` and
//! `session-completion` workflows.
//!
//! One function behind all the tasks keeps one deployment, one IAM role and one cold start for a
//! workflow whose tasks share their ports. The workflow invokes it through `lambda:invoke` with a
//! payload naming the task, the ids it needs, and the state running it:
//!
//! ```json
//! {"task": "pollAcceptance", "matchId": "m-1", "execution": {"id": "arn:…:execution:…", "state": "PollAcceptance"}}
//! {"task": "createSession", "matchId": "m-1", "execution": {"id": "arn:…:execution:…", "state": "CreateSession"}}
//! {"task": "place" | "poll" | "activate", "matchId": "m-1", "sessionId": "s-m-1", "attempt": 0, "execution": {…}}
//! {"task": "fail", "matchId": "m-1", "error": {"Error": "PlacementUnavailable", "Cause": "…"}, "execution": {…}}
//! ```
//!
//!
//! `session-completion`'s tasks take the session id only:
//!
//! ```json
//! {"task": "validateResult" | "updateRatings" | "endSession" | "releaseServer" | "publishEnded", "sessionId": "s-m-1", "attempt": 0, "execution": {…}}
//! {"task": "endUnrated", "sessionId": "s-m-1", "error": {"Error": "Invalid", "Cause": "…"}, "attempt": 0, "execution": {…}}
//! ```
//!
//! The output is what the workflow carries on, ids only: `{"matchId", "sessionId", "status",
//! "ready"}` (plus `completed` or `requeued` ticket ids for `activate` and `fail`). A failure is a
//! [`TaskFailure`] whose `errorType` is one of DESIGN.md's stable names, so that the workflow's
//! Retry and Catch match on it: `Transient`, `Throttled` and `PlacementUnavailable` are retried with
//! backoff, the rest go to the Catch. `attempt` is `$$.State.RetryCount`: a failed attempt of
//! every task that names a session (`place`, `poll`, `activate`, and each of `session-completion`'s)
//! is written on the session's timeline before the error goes back, so the retries and their
//! backoff are visible there.
//!
//! The session's secret is drawn here, from the operating system's generator: the core has no
//! entropy of its own, and the secret goes straight to the store.

use crate::Service;
use queuematch_core::identity::{SessionSecret, SESSION_SECRET_BYTES};
use queuematch_core::ids::{MatchId, SessionId};
use queuematch_core::ports::{Clock, ErrorType, Events, Fleet, PortError, Store, TicketQueue};
use queuematch_core::usecases::acceptance::{AcceptanceProgress, AcceptanceState};
use queuematch_core::usecases::completion::{CompletionProgress, Completions};
use queuematch_core::usecases::placement::{session_id_for, Placements, SessionProgress, Step};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// One task of the workflow, as its payload names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "task", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum TaskRequest {
    /// Where the acceptance of a match that requires it is.
    PollAcceptance {
        match_id: MatchId,
        execution: Step,
    },
    CreateSession {
        match_id: MatchId,
        execution: Step,
    },
    Place {
        match_id: MatchId,
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    Poll {
        match_id: MatchId,
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    Activate {
        match_id: MatchId,
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion: the stored result names the session's players, with a score each.
    ValidateResult {
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion: the result applied to the players' ratings, once.
    UpdateRatings {
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion: ACTIVE → ENDED.
    EndSession {
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion's Catch: the result could not be rated; the session ends all the same.
    EndUnrated {
        session_id: SessionId,
        #[serde(default)]
        error: Option<CaughtError>,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion: the server given back.
    ReleaseServer {
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// session-completion: the ENDED status published.
    PublishEnded {
        session_id: SessionId,
        /// `$$.State.RetryCount`: 0 on the first attempt.
        #[serde(default)]
        attempt: u32,
        execution: Step,
    },
    /// The Catch: `error` is what Step Functions caught (`{"Error", "Cause"}`).
    Fail {
        match_id: MatchId,
        #[serde(default)]
        error: Option<CaughtError>,
        execution: Step,
    },
}

/// An error as a Catch with `ResultPath` hands it on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl CaughtError {
    /// The session's failure reason: the error name and, for a Lambda error, its message rather
    /// than the JSON envelope Step Functions wraps it in.
    fn reason(&self) -> String {
        let message = self.cause.as_deref().map(|cause| {
            serde_json::from_str::<Value>(cause)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| cause.to_owned())
        });
        match message {
            Some(message) if !message.is_empty() => format!("{}: {message}", self.error),
            _ => self.error.clone(),
        }
    }
}

/// A task's failure, in the shape the Lambda runtime reports a function error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    #[serde(serialize_with = "error_type_name")]
    pub error_type: ErrorType,
    pub error_message: String,
}

fn error_type_name<S: serde::Serializer>(error_type: &ErrorType, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(error_type.as_str())
}

impl From<PortError> for TaskFailure {
    fn from(error: PortError) -> Self {
        Self {
            error_type: error.error_type(),
            error_message: error.to_string(),
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for TaskFailure {}

/// Runs the task `event` names. The fleet is not one of the [`Service`]'s ports because only this
/// function places servers.
pub async fn handle<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    event: Value,
) -> Result<Value, TaskFailure>
where
    S: Store,
    Q: TicketQueue,
    E: Events,
    C: Clock,
    F: Fleet,
{
    let request: TaskRequest = serde_json::from_value(event).map_err(|e| TaskFailure {
        error_type: ErrorType::Invalid,
        error_message: format!("not a workflow task: {e}"),
    })?;
    let completions = Completions {
        store: &service.store,
        fleet,
        events: &service.events,
        clock: &service.clock,
    };
    let placements = Placements {
        store: &service.store,
        queue: &service.queue,
        fleet,
        events: &service.events,
        clock: &service.clock,
        queues: &service.queues,
        settings: &service.settings,
    };
    if let TaskRequest::Place {
        match_id, session_id, ..
    }
    | TaskRequest::Poll {
        match_id, session_id, ..
    }
    | TaskRequest::Activate {
        match_id, session_id, ..
    } = &request
    {
        // The session of a match is named after it: a task naming another one is not this match's.
        if *session_id != session_id_for(match_id) {
            return Err(PortError::invalid(format!(
                "sessionId {session_id} is not the session of match {match_id} ({})",
                session_id_for(match_id)
            ))
            .into());
        }
    }
    let output = match request {
        TaskRequest::PollAcceptance { match_id, .. } => acceptance(placements.poll_acceptance(&match_id).await?),
        TaskRequest::CreateSession { match_id, execution } => {
            let secret = SessionSecret::from_random_bytes(&rand::random::<[u8; SESSION_SECRET_BYTES]>());
            progress(
                &match_id,
                placements.create_session(&match_id, secret, &execution).await?,
            )
        }
        TaskRequest::Place {
            match_id,
            session_id,
            attempt,
            execution,
        } => {
            let placed = placements.place(&session_id, &execution).await;
            progress(
                &match_id,
                on_timeline(&placements, &session_id, &execution, attempt, placed).await?,
            )
        }
        TaskRequest::Poll {
            match_id,
            session_id,
            attempt,
            execution,
        } => {
            let polled = placements.poll(&session_id, &execution).await;
            progress(
                &match_id,
                on_timeline(&placements, &session_id, &execution, attempt, polled).await?,
            )
        }
        TaskRequest::Activate {
            match_id,
            session_id,
            attempt,
            execution,
        } => {
            let activated = placements.activate(&session_id, &execution).await;
            let activated = on_timeline(&placements, &session_id, &execution, attempt, activated).await?;
            json!({"matchId": match_id, "sessionId": activated.session_id, "status": activated.status, "completed": activated.completed})
        }
        TaskRequest::ValidateResult {
            session_id,
            attempt,
            execution,
        } => {
            let validated = completions.validate(&session_id, &execution).await;
            completed(noted(&completions, &session_id, &execution, attempt, validated).await?)
        }
        TaskRequest::UpdateRatings {
            session_id,
            attempt,
            execution,
        } => {
            let rated = completions.update_ratings(&session_id, &execution).await;
            completed(noted(&completions, &session_id, &execution, attempt, rated).await?)
        }
        TaskRequest::EndSession {
            session_id,
            attempt,
            execution,
        } => {
            let ended = completions
                .end(&session_id, &execution, "the game's result is in".to_owned())
                .await;
            let ended = noted(&completions, &session_id, &execution, attempt, ended).await?;
            json!({"sessionId": ended.session_id, "status": ended.status})
        }
        TaskRequest::EndUnrated {
            session_id,
            error,
            attempt,
            execution,
        } => {
            let cause = error.map_or_else(|| "the result could not be rated".to_owned(), |e| e.reason());
            let ended = completions
                .end(&session_id, &execution, format!("ended unrated: {cause}"))
                .await;
            let ended = noted(&completions, &session_id, &execution, attempt, ended).await?;
            json!({"sessionId": ended.session_id, "status": ended.status})
        }
        TaskRequest::ReleaseServer {
            session_id,
            attempt,
            execution,
        } => {
            let released = completions.release(&session_id, &execution).await;
            completed(noted(&completions, &session_id, &execution, attempt, released).await?)
        }
        TaskRequest::PublishEnded {
            session_id,
            attempt,
            execution,
        } => {
            let published = completions.publish(&session_id, &execution).await;
            completed(noted(&completions, &session_id, &execution, attempt, published).await?)
        }
        TaskRequest::Fail {
            match_id,
            error,
            execution,
        } => {
            let cause = error.map_or_else(|| "placement failed".to_owned(), |e| e.reason());
            let failed = placements.fail(&match_id, &cause, &execution).await?;
            json!({
                "matchId": match_id,
                "sessionId": failed.session_id,
                "status": failed.status,
                "requeued": failed.requeued,
                "cancelled": failed.cancelled,
            })
        }
    };
    Ok(output)
}

/// Passes a task's result on; a failure is first recorded on the session's timeline as a failed
/// attempt, so that an operator sees each retry, with its time and error, where Express keeps no
/// history. Recording is best effort: the task's own error is what the workflow must see.
async fn on_timeline<T, S, Q, F, E, C>(
    placements: &Placements<'_, S, Q, F, E, C>,
    session_id: &SessionId,
    step: &Step,
    attempt: u32,
    result: Result<T, PortError>,
) -> Result<T, PortError>
where
    S: Store,
    Q: TicketQueue,
    F: Fleet,
    E: Events,
    C: Clock,
{
    if let Err(error) = &result {
        let _ = placements.record_failed_attempt(session_id, step, attempt, error).await;
    }
    result
}

/// [`on_timeline`] for the completion's tasks.
async fn noted<T, S, F, E, C>(
    completions: &Completions<'_, S, F, E, C>,
    session_id: &SessionId,
    step: &Step,
    attempt: u32,
    result: Result<T, PortError>,
) -> Result<T, PortError>
where
    S: Store,
    F: Fleet,
    E: Events,
    C: Clock,
{
    if let Err(error) = &result {
        let _ = completions
            .record_failed_attempt(session_id, step, attempt, error)
            .await;
    }
    result
}

/// What `pollAcceptance` answers: `{"matchId", "acceptance"}`, and for a match that will not be
/// placed, the `error` its Catch path reads, shaped as a Catch hands one on
/// (`MatchRejected` or `AcceptanceTimedOut`, with the reason as `Cause`).
fn acceptance(progress: AcceptanceProgress) -> Value {
    let mut output = json!({"matchId": progress.match_id, "acceptance": progress.acceptance});
    let error = match progress.acceptance {
        AcceptanceState::Rejected => Some("MatchRejected"),
        AcceptanceState::TimedOut => Some("AcceptanceTimedOut"),
        AcceptanceState::Pending | AcceptanceState::Accepted => None,
    };
    if let Some(error) = error {
        output["reason"] = json!(progress.reason);
        output["error"] = json!({"Error": error, "Cause": progress.reason});
    }
    output
}

/// What the completion's tasks answer: `{"sessionId", "status", "rated"?}`.
fn completed(progress: CompletionProgress) -> Value {
    json!(progress)
}

/// What `createSession`, `place` and `poll` answer: where the session is, for the Choice that reads
/// `ready`.
fn progress(match_id: &MatchId, progress: SessionProgress) -> Value {
    json!({"matchId": match_id, "sessionId": progress.session_id, "status": progress.status, "ready": progress.ready})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_cause_becomes_its_message() {
        let caught = CaughtError {
            error: "PlacementUnavailable".into(),
            cause: Some(r#"{"errorMessage":"placement unavailable: fleet full","errorType":"PlacementUnavailable","stackTrace":[]}"#.into()),
        };
        assert_eq!(
            caught.reason(),
            "PlacementUnavailable: placement unavailable: fleet full"
        );
        let timeout = CaughtError {
            error: "States.Timeout".into(),
            cause: None,
        };
        assert_eq!(timeout.reason(), "States.Timeout");
        let plain = CaughtError {
            error: "States.TaskFailed".into(),
            cause: Some("boom".into()),
        };
        assert_eq!(plain.reason(), "States.TaskFailed: boom");
    }

    #[test]
    fn payloads_read_as_their_task() {
        let payload =
            json!({"task": "poll", "matchId": "m-1", "sessionId": "s-m-1", "execution": {"id": "x", "state": "Poll"}});
        let request: TaskRequest = serde_json::from_value(payload).unwrap();
        assert!(matches!(request, TaskRequest::Poll { ref session_id, .. } if session_id.as_str() == "s-m-1"));
        let failure = json!({"task": "fail", "matchId": "m-1", "execution": {"id": "x", "state": "Release"}});
        assert!(matches!(
            serde_json::from_value(failure),
            Ok(TaskRequest::Fail { error: None, .. })
        ));
    }

    #[test]
    fn failures_serialize_as_lambda_function_errors() {
        let failure = TaskFailure::from(PortError::PlacementUnavailable("fleet full".into()));
        assert_eq!(
            serde_json::to_value(&failure).unwrap(),
            json!({"errorType": "PlacementUnavailable", "errorMessage": "placement unavailable: fleet full"})
        );
    }
}
