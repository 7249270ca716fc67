//! queuematch-asl: an embeddable Amazon States Language engine.
//!
//! Parse a definition with [`StateMachine::from_json`] (or with SAM-style substitutions), then run it with an
//! [`Engine`] whose tasks go to your [`TaskDispatcher`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use queuematch_asl::*;
//! # async fn demo(dispatcher: Arc<dyn TaskDispatcher>) -> Result<(), DefinitionError> {
//! let machine = StateMachine::from_json(r#"{"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "End": true}}}"#)?;
//! let execution = Engine::new(dispatcher).execute(&machine, serde_json::json!({"a": 1}), ExecutionOptions::default()).await;
//! assert_eq!(execution.result(), Ok(&serde_json::json!({"a": 1})));
//! # Ok(()) }
//! ```
//!
//! For in-process Lambda handlers, register them in a [`FunctionTable`] and wrap it in a [`LambdaDispatcher`];
//! for tests and the CLI, [`ScriptedTasks`] answers tasks from a script. Run under tokio's paused clock (see
//! [`run_in_virtual_time`] and [`Clock::Virtual`]) and waits, retry intervals and timeouts take no real time.
//!
//! # Scope
//!
//! The JSONPath query language is supported in full; JSONata and workflow variables (`Assign`) are refused at
//! parse time, as is Distributed Map. Where this engine knowingly differs from Step Functions:
//! - Indefinite JSONPaths are evaluated by RFC 9535 rules, which cover Jayway's wildcards, slices, unions,
//!   deep scan and `[?(@.x < 1)]` filters (with `&&`, `||`, `!`), but not its extra filter operators (`=~`,
//!   `in`, `nin`, `size`, `empty`) or path functions such as `.length()`; those are definition errors.
//! - `HeartbeatSeconds` is validated but not enforced: request/response tasks, the only kind Express runs,
//!   send no heartbeats. Task tokens (`$$.Task.Token`) do not exist for the same reason.
//! - Executions stop after [`DEFAULT_MAX_TRANSITIONS`] state transitions unless told otherwise, a guard
//!   against endless Pass loops that Step Functions enforces differently (by history size, on Standard).

mod choice;
mod clock;
mod context;
mod definition;
mod dispatch;
mod engine;
mod error;
mod graph;
mod history;
mod intrinsic;
pub mod path;
mod reader;
mod retry;
mod scripted;
pub mod substitute;
mod template;

pub use clock::{format_timestamp, parse_timestamp, run_in_real_time, run_in_virtual_time, Clock};
pub use definition::{validate, StateMachine};
pub use dispatch::{
    function_name, invoke_lambda, is_function_arn, is_lambda_resource, lambda_response, FunctionError, FunctionTable,
    LambdaDispatcher, LambdaFunctions, TaskDispatcher, TaskError, LAMBDA_INVOKE,
};
pub use engine::{
    Engine, Execution, ExecutionKind, ExecutionOptions, Outcome, DEFAULT_MAX_TRANSITIONS, EXPRESS_MAX_DURATION,
    MAX_PAYLOAD_BYTES,
};
pub use error::{names, DefinitionError, Failure, Problem};
pub use graph::{Edge, EdgeKind, Node, StateGraph};
pub use history::{EventSink, HistoryEvent};
pub use retry::Retrier;
pub use scripted::ScriptedTasks;
