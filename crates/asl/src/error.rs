//! Errors: what is wrong with a definition, and how an execution fails.
//!
//! Definition errors are collected, not returned one at a time, so that a user fixing a workflow sees every
//! problem at once. Runtime failures carry the `Error`/`Cause` pair that Retry, Catch and the execution result
//! speak, with the names AWS uses.

use std::fmt;

/// The `States.*` error names of the Amazon States Language.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";

    /// Every predefined name, as accepted in `ErrorEquals`.
    pub const KNOWN: &[&str] = &[
        ALL,
        DATA_LIMIT_EXCEEDED,
        HEARTBEAT_TIMEOUT,
        INTRINSIC_FAILURE,
        NO_CHOICE_MATCHED,
        PARAMETER_PATH_FAILURE,
        PERMISSIONS,
        RESULT_PATH_MATCH_FAILURE,
        RUNTIME,
        TASK_FAILED,
        TIMEOUT,
        BRANCH_FAILED,
        "States.ExceedToleratedFailureThreshold",
        "States.ItemReaderFailed",
        "States.ResultWriterFailed",
        "States.QueryEvaluationError",
    ];
}

/// One problem in a definition, located by the state it is in (if any) and the field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The state's name, or `None` for a top-level field.
    pub state: Option<String>,
    /// Where the field is, from the root of the definition, e.g. `States.Fork.Branches[0].States.Work.Next`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => write!(f, "state '{state}', field {}: {}", self.field, self.message),
            None => write!(f, "field {}: {}", self.field, self.message),
        }
    }
}

/// A definition that cannot run, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("the definition is not valid JSON: {0}")]
    Json(String),
    #[error("definition substitution failed: {0}")]
    Substitution(String),
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl DefinitionError {
    /// The individual problems; a JSON or substitution error counts as one problem at the root.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            DefinitionError::Invalid(problems) => problems.clone(),
            other => vec![Problem {
                state: None,
                field: "$".into(),
                message: other.to_string(),
            }],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!("the definition has {} problem(s)", problems.len());
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}

/// How a state, or a whole execution, failed: the `Error` and `Cause` of ASL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {}", cause.as_deref().unwrap_or(""))]
pub struct Failure {
    pub error: String,
    pub cause: Option<String>,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }

    pub fn runtime(cause: impl Into<String>) -> Self {
        Failure::new(names::RUNTIME, cause)
    }

    /// The error output a Catcher hands to its `Next` state.
    pub fn to_error_output(&self) -> serde_json::Value {
        let mut output = serde_json::Map::new();
        output.insert("Error".into(), self.error.clone().into());
        if let Some(cause) = &self.cause {
            output.insert("Cause".into(), cause.clone().into());
        }
        serde_json::Value::Object(output)
    }

    /// `States.Runtime` and `States.DataLimitExceeded` end the execution: `States.ALL` does not catch them.
    pub fn is_terminal(&self) -> bool {
        self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED
    }
}
