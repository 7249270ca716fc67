//! The local `Workflows` adapter: `workflows/*.asl.json` on the embedded ASL engine.
//!
//! The files are the ones SAM deploys, loaded with the same DefinitionSubstitutions, where
//! `${WorkflowTasksFunctionArn}` names a local function ARN. Each execution runs as Express on a tokio
//! task of its own, on the real clock in the dev server and on virtual time in tests. Its Lambda
//! tasks are dispatched in-process to the very handler Lambda runs
//! ([`queuematch_handlers::workflow_tasks`]), with Lambda's result shape (`{"Payload", "StatusCode"}`)
//! and its function errors named by their `errorType`, so Retry and Catch behave as on AWS.
//!
//! `start` is idempotent on the execution name, as the port requires: the same name and input
//! answer the first execution's id and start nothing; another input is a `Conflict`. Every
//! execution's status and history (in `GetExecutionHistory`'s shape, growing while it runs) is kept
//! for operators.
//!
//! # Breaking the cycle with the service
//!
//! The handlers' [`Service`] holds its `Workflows` port, and the workflows' tasks need the
//! `Service`. The adapter is therefore built first and handed to the `Service`; the task functions
//! are connected to it afterwards, once ([`LocalWorkflows::connect`], behind a `OnceLock`), as an
//! `Arc<dyn LambdaFunctions>` — the engine's own notion of "Lambda functions by name", so the
//! adapter's type does not name the service's. [`ServiceTasks`] reaches the service through a
//! `Weak`: the service owns the adapter and not the other way round, so dropping the service frees
//! the whole stack, and a task still running then fails as a Lambda service error instead of
//! keeping the ports alive. The alternatives are worse: an `Arc` back-reference is a leak by
//! construction, and `Arc::new_cyclic` would make the adapter's type name the service's, which is
//! generic over the adapter itself.

use crate::lock;
use queuematch_asl::{
    function_name, Clock, DefinitionError, Engine, EventSink, ExecutionKind, ExecutionOptions, FunctionError,
    HistoryEvent, LambdaDispatcher, LambdaFunctions, Outcome, StateGraph, StateMachine,
};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock as DomainClock, Events, Fleet, PortError, Store, TicketQueue, Workflows};
use queuematch_handlers::{workflow_tasks, Service};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::watch;

/// The function behind every task of the placement workflow, as the local stack names it.
pub const WORKFLOW_TASKS_FUNCTION: &str = "queuematch-workflow-tasks";
/// The region and account of the local stack's ARNs.
pub const REGION: &str = "local";
pub const ACCOUNT: &str = "000000000000";
/// The suffix of a workflow file; what precedes it is the workflow's name.
pub const DEFINITION_SUFFIX: &str = ".asl.json";

/// The workflow-tasks function's local ARN.
pub fn workflow_tasks_arn() -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{WORKFLOW_TASKS_FUNCTION}")
}

/// The DefinitionSubstitutions of the local stack: the values SAM's template gives on AWS.
pub fn substitutions() -> HashMap<String, String> {
    HashMap::from([("WorkflowTasksFunctionArn".to_owned(), workflow_tasks_arn())])
}

/// Why the workflows could not be loaded or connected.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workflow {name}: {source}")]
    Definition {
        name: String,
        #[source]
        source: DefinitionError,
    },
    #[error("no workflows (*{DEFINITION_SUFFIX}) in {}", .0.display())]
    Empty(PathBuf),
    #[error("the workflows' task functions are connected already")]
    AlreadyConnected,
}

/// How executions run.
#[derive(Debug, Clone)]
pub struct WorkflowsConfig {
    /// [`Clock::System`] in the dev server; [`Clock::Virtual`] under a paused runtime in tests.
    pub clock: Clock,
    /// Seeds retry jitter, for reproducible runs; random when `None`.
    pub seed: Option<u64>,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        Self {
            clock: Clock::System,
            seed: None,
        }
    }
}

/// Where an execution is.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionStatus {
    Running,
    Succeeded { output: Value },
    Failed { error: String, cause: Option<String> },
    TimedOut { error: String, cause: Option<String> },
}

impl ExecutionStatus {
    pub fn is_running(&self) -> bool {
        matches!(self, ExecutionStatus::Running)
    }

    /// The name Step Functions gives the status (`DescribeExecution`'s `status`).
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded { .. } => "SUCCEEDED",
            ExecutionStatus::Failed { .. } => "FAILED",
            ExecutionStatus::TimedOut { .. } => "TIMED_OUT",
        }
    }
}

/// One execution, as an operator sees it.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub definition: String,
    pub name: String,
    pub input: Value,
    pub status: ExecutionStatus,
    /// Every event so far, in order.
    pub history: Vec<HistoryEvent>,
}

impl ExecutionRecord {
    /// The history as `GetExecutionHistory` returns it: `{"events": […]}`.
    pub fn history_json(&self) -> Value {
        serde_json::json!({"events": self.history.iter().map(HistoryEvent::to_json).collect::<Vec<_>>()})
    }

    /// The path taken: every state entered, in order (a state entered twice, as in a polling loop,
    /// appears twice).
    pub fn path(&self) -> Vec<String> {
        self.history
            .iter()
            .filter(|event| event.kind.ends_with("StateEntered"))
            .filter_map(|event| event.details.as_ref())
            .filter_map(|(_, details)| details.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    /// The state the execution is in now: the last one entered, while it runs; `None` once it ended.
    pub fn current_state(&self) -> Option<String> {
        if !self.status.is_running() {
            return None;
        }
        self.path().pop()
    }
}

/// An execution and who waits for it to end.
#[derive(Debug)]
struct Entry {
    record: ExecutionRecord,
    /// Flips to true when the execution ends; [`LocalWorkflows::finished`] waits on it.
    done: watch::Sender<bool>,
}

/// Every execution started, by id, and the order they started in.
#[derive(Debug, Default)]
struct Executions {
    by_id: HashMap<String, Entry>,
    order: Vec<String>,
}

/// The connected task functions; until [`LocalWorkflows::connect`], a task fails as an unknown
/// function would on AWS.
#[derive(Clone, Default)]
struct Connection(Arc<OnceLock<Arc<dyn LambdaFunctions>>>);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("connected", &self.0.get().is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl LambdaFunctions for Connection {
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError> {
        match self.0.get() {
            Some(functions) => functions.invoke_function(function, payload).await,
            None => Err(FunctionError::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {function} (no functions are connected)"),
            )),
        }
    }
}

/// The `Workflows` port on the embedded engine.
pub struct LocalWorkflows {
    machines: BTreeMap<String, Arc<StateMachine>>,
    /// Each machine's states and transitions, computed once, for the console to draw.
    graphs: BTreeMap<String, Arc<StateGraph>>,
    /// Bumped on every history event and every end of an execution, so that a watcher (the
    /// operators' push) hears of a step that changed no store item and published no domain event.
    changes: watch::Sender<u64>,
    config: WorkflowsConfig,
    connection: Connection,
    engine: Engine,
    /// A std mutex: it is held only to read or update a map, never across an await, and the
    /// engine's event sink, which is synchronous, takes it too.
    executions: Arc<Mutex<Executions>>,
}

impl std::fmt::Debug for LocalWorkflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorkflows")
            .field("workflows", &self.machines.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl LocalWorkflows {
    /// Loads every `*.asl.json` of `dir` under the local [`substitutions`]. Every problem of a
    /// definition is reported at once, as the engine finds them; a workflow that cannot run as
    /// Express is refused, since Express is what the template deploys.
    pub fn load(dir: &Path, config: WorkflowsConfig) -> Result<Self, WorkflowsError> {
        let read_error = |source| WorkflowsError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut machines = BTreeMap::new();
        let substitutions = substitutions();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(DEFINITION_SUFFIX))
                .map(str::to_owned)
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| WorkflowsError::Read {
                path: path.clone(),
                source,
            })?;
            let definition_error = |source| WorkflowsError::Definition {
                name: name.clone(),
                source,
            };
            let machine =
                StateMachine::from_json_with_substitutions(&text, &substitutions).map_err(definition_error)?;
            let problems = machine.express_problems();
            if !problems.is_empty() {
                return Err(definition_error(DefinitionError::Invalid(problems)));
            }
            machines.insert(name, Arc::new(machine));
        }
        if machines.is_empty() {
            return Err(WorkflowsError::Empty(dir.to_owned()));
        }
        let connection = Connection::default();
        let engine = Engine::new(Arc::new(LambdaDispatcher::new(connection.clone())));
        let graphs = machines
            .iter()
            .map(|(name, machine)| (name.clone(), Arc::new(machine.graph())))
            .collect();
        Ok(Self {
            machines,
            graphs,
            changes: watch::Sender::new(0),
            config,
            connection,
            engine,
            executions: Arc::default(),
        })
    }

    /// The workflows loaded, by name.
    pub fn names(&self) -> Vec<&str> {
        self.machines.keys().map(String::as_str).collect()
    }

    /// A workflow's states and transitions, for drawing.
    pub fn graph(&self, name: &str) -> Option<Arc<StateGraph>> {
        self.graphs.get(name).cloned()
    }

    /// Changes whenever any execution records a history event or ends: a cue to look again, carrying
    /// no data (a watcher that misses a bump still sees the latest value).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Connects the Lambda functions the workflows' tasks invoke (see the module's docs for why
    /// this comes after construction). Once only.
    pub fn connect(&self, functions: Arc<dyn LambdaFunctions>) -> Result<(), WorkflowsError> {
        self.connection
            .0
            .set(functions)
            .map_err(|_| WorkflowsError::AlreadyConnected)
    }

    /// One execution, as it is now.
    pub fn execution(&self, id: &ExecutionId) -> Option<ExecutionRecord> {
        lock(&self.executions).by_id.get(&id.0).map(|e| e.record.clone())
    }

    /// Every execution, in the order they started.
    pub fn executions(&self) -> Vec<ExecutionRecord> {
        let executions = lock(&self.executions);
        executions
            .order
            .iter()
            .filter_map(|id| executions.by_id.get(id).map(|e| e.record.clone()))
            .collect()
    }

    /// Waits until the execution has ended, and returns it; `None` for an id never started.
    pub async fn finished(&self, id: &ExecutionId) -> Option<ExecutionRecord> {
        let mut done = lock(&self.executions).by_id.get(&id.0)?.done.subscribe();
        // The sender lives in the map, which never drops an entry, so this only errs if the
        // adapter itself is gone; then report what is known.
        let _ = done.wait_for(|done| *done).await;
        self.execution(id)
    }

    fn execution_arn(definition: &str, name: &str) -> String {
        format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{definition}:{name}")
    }
}

/// Step Functions' rule for execution names: 1 to 80 characters, none of them whitespace, brackets,
/// wildcards, control characters or these: `"#%\^|~`$&,;:/`.
fn check_name(name: &str) -> Result<(), PortError> {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    let length = name.chars().count();
    if length == 0 || length > 80 || name.chars().any(forbidden) {
        return Err(PortError::invalid(format!(
            "`{name}` is not an execution name: 1 to 80 characters, without whitespace or special characters"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Workflows for LocalWorkflows {
    async fn start(&self, definition: &str, execution_name: &str, input: Value) -> Result<ExecutionId, PortError> {
        let machine = self
            .machines
            .get(definition)
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("no workflow `{definition}`")))?;
        check_name(execution_name)?;
        let id = Self::execution_arn(definition, execution_name);
        {
            let mut executions = lock(&self.executions);
            if let Some(existing) = executions.by_id.get(&id) {
                return if existing.record.input == input {
                    Ok(existing.record.id.clone())
                } else {
                    Err(PortError::Conflict(format!(
                        "execution {execution_name} of {definition} already exists with another input"
                    )))
                };
            }
            let record = ExecutionRecord {
                id: ExecutionId(id.clone()),
                definition: definition.to_owned(),
                name: execution_name.to_owned(),
                input: input.clone(),
                status: ExecutionStatus::Running,
                history: Vec::new(),
            };
            let (done, _) = watch::channel(false);
            executions.by_id.insert(id.clone(), Entry { record, done });
            executions.order.push(id.clone());
        }

        let sink = {
            let (executions, id, changes) = (Arc::clone(&self.executions), id.clone(), self.changes.clone());
            EventSink::new(move |event| {
                if let Some(entry) = lock(&executions).by_id.get_mut(&id) {
                    entry.record.history.push(event.clone());
                }
                changes.send_modify(|n| *n = n.wrapping_add(1));
            })
        };
        let options = ExecutionOptions {
            name: Some(execution_name.to_owned()),
            state_machine_name: definition.to_owned(),
            kind: ExecutionKind::Express,
            clock: self.config.clock,
            seed: self.config.seed,
            // The sink keeps the history, live; the engine need not keep a second copy.
            record_history: false,
            on_event: Some(sink),
            region: REGION.to_owned(),
            account: ACCOUNT.to_owned(),
            ..ExecutionOptions::default()
        };
        let (engine, executions, changes) = (self.engine.clone(), Arc::clone(&self.executions), self.changes.clone());
        tokio::spawn(async move {
            let execution = engine.execute(&machine, input, options).await;
            let status = match execution.outcome {
                Outcome::Succeeded(output) => ExecutionStatus::Succeeded { output },
                Outcome::Failed(f) => ExecutionStatus::Failed {
                    error: f.error,
                    cause: f.cause,
                },
                Outcome::TimedOut(f) => ExecutionStatus::TimedOut {
                    error: f.error,
                    cause: f.cause,
                },
            };
            if let Some(entry) = lock(&executions).by_id.get_mut(&id) {
                entry.record.status = status;
                entry.done.send_replace(true);
            }
            changes.send_modify(|n| *n = n.wrapping_add(1));
        });
        Ok(ExecutionId(Self::execution_arn(definition, execution_name)))
    }
}

/// The service's Lambda functions that workflows invoke: [`WORKFLOW_TASKS_FUNCTION`], run in-process
/// by [`workflow_tasks::handle`] on the service's ports and `fleet`. See the module's docs for why it
/// holds the service weakly.
pub struct ServiceTasks<S, Q, W, E, C, P, F> {
    service: Weak<Service<S, Q, W, E, C, P>>,
    fleet: F,
}

impl<S, Q, W, E, C, P, F> ServiceTasks<S, Q, W, E, C, P, F> {
    pub fn new(service: &Arc<Service<S, Q, W, E, C, P>>, fleet: F) -> Self {
        Self {
            service: Arc::downgrade(service),
            fleet,
        }
    }
}

impl<S, Q, W, E, C, P, F: std::fmt::Debug> std::fmt::Debug for ServiceTasks<S, Q, W, E, C, P, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTasks")
            .field("service_alive", &(self.service.strong_count() > 0))
            .field("fleet", &self.fleet)
            .finish()
    }
}

#[async_trait::async_trait]
impl<S, Q, W, E, C, P, F> LambdaFunctions for ServiceTasks<S, Q, W, E, C, P, F>
where
    S: Store + 'static,
    Q: TicketQueue + 'static,
    W: Send + Sync + 'static,
    E: Events + 'static,
    C: DomainClock + 'static,
    P: Send + Sync + 'static,
    F: Fleet + 'static,
{
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError> {
        if function_name(function) != WORKFLOW_TASKS_FUNCTION {
            return Err(FunctionError::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {function}"),
            ));
        }
        let Some(service) = self.service.upgrade() else {
            return Err(FunctionError::new(
                "Lambda.ServiceException",
                "the local stack has shut down",
            ));
        };
        workflow_tasks::handle(&service, &self.fleet, payload)
            .await
            .map_err(|failure| FunctionError::new(failure.error_type.as_str(), failure.error_message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_follow_step_functions_rules() {
        assert!(check_name("m-1800000000000-t-1").is_ok());
        for bad in ["", "has space", "a/b", "x".repeat(81).as_str(), "tab\t", "q?"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_local_arn_names_the_workflow_tasks_function() {
        assert_eq!(function_name(&workflow_tasks_arn()), WORKFLOW_TASKS_FUNCTION);
        assert_eq!(substitutions()["WorkflowTasksFunctionArn"], workflow_tasks_arn());
    }
}
