//! The interpreter: runs a [`StateMachine`] with AWS's data-flow, error-handling and timing semantics.
//!
//! Every state goes through InputPath → Parameters → (task, branches or iterations) → ResultSelector →
//! ResultPath → OutputPath. Errors go through the state's Retry (with its schedule on the execution's clock)
//! and then its Catch; an uncaught error ends the branch it happens in, and then the execution. Parallel
//! branches and Map iterations run concurrently on the caller's task, so the engine needs no spawning and an
//! embedder's runtime choice (multi-threaded, or current-thread with paused time) is respected.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::clock::{format_timestamp, parse_timestamp, Clock, RunningClock};
use crate::context::{ContextObject, StateFacts};
use crate::definition::{
    Body, Dynamic, Program, ResultHandling, Seconds, State, StateMachine, Transition, WaitFor, MAX_WAIT_SECONDS,
};
use crate::dispatch::{is_function_arn, TaskDispatcher};
use crate::error::{names, Failure};
use crate::history::{self, EventSink, HistoryEvent, Line, Recorder};
use crate::intrinsic::Scope;
use crate::path::{select_from, Path, Root};
use crate::retry::error_matches;
use crate::template::Template;

/// Step Functions' limit on any state's input or output, and on an execution's input and output.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// How long an Express execution may run.
pub const EXPRESS_MAX_DURATION: Duration = Duration::from_secs(5 * 60);

/// The default for [`ExecutionOptions::max_transitions`]: far beyond any real workflow (a Map over 10,000
/// items takes 10,001), small enough that a runaway loop ends in seconds.
pub const DEFAULT_MAX_TRANSITIONS: u64 = 1_000_000;
/// How often a long run of states without waits yields to the runtime, so that other tasks — and the
/// execution's own timeout — get to run.
const YIELD_EVERY: u64 = 256;

/// Standard and Express workflows differ here only in how long an execution may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionKind {
    #[default]
    Standard,
    /// At most five minutes, after which the execution fails with `States.Timeout`.
    Express,
}

/// How to run one execution.
#[derive(Debug, Clone)]
pub struct ExecutionOptions {
    /// The execution's name; a UUID when `None`.
    pub name: Option<String>,
    /// The state machine's name in ARNs and in `$$.StateMachine.Name`.
    pub state_machine_name: String,
    /// Standard or Express: Express adds the five-minute limit and refuses `.sync`/callback tasks.
    pub kind: ExecutionKind,
    /// Where time comes from; [`Clock::Virtual`] under a paused tokio runtime makes waits instant.
    pub clock: Clock,
    /// Seeds jitter, `States.MathRandom`, `States.UUID` and generated names, for reproducible runs.
    pub seed: Option<u64>,
    /// Whether [`Execution::history`] is kept; it costs a JSON serialisation of every state's input and output.
    pub record_history: bool,
    /// Sees every history event as it happens, whether or not the history is kept.
    pub on_event: Option<EventSink>,
    /// A guard against workflows that loop forever without waiting (a Choice or Catch cycle of Pass states):
    /// past this many state transitions the execution fails with `States.Runtime`. Step Functions itself
    /// stops a Standard execution at 25,000 history events; `None` removes the guard.
    pub max_transitions: Option<u64>,
    /// The region and account that ARNs in the context object and history are given.
    pub region: String,
    pub account: String,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        ExecutionOptions {
            name: None,
            state_machine_name: "StateMachine".into(),
            kind: ExecutionKind::default(),
            clock: Clock::System,
            seed: None,
            record_history: true,
            on_event: None,
            max_transitions: Some(DEFAULT_MAX_TRANSITIONS),
            region: "local".into(),
            account: "000000000000".into(),
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed(Failure),
    TimedOut(Failure),
}

/// A finished execution.
#[derive(Debug, Clone)]
pub struct Execution {
    /// `arn:aws:states:<region>:<account>:execution:<state machine>:<name>`, as `$$.Execution.Id` shows it.
    pub arn: String,
    pub name: String,
    /// When the execution started and stopped, on its clock.
    pub start: DateTime<Utc>,
    pub stop: DateTime<Utc>,
    pub outcome: Outcome,
    /// Every event in order of id; empty unless [`ExecutionOptions::record_history`] was set.
    pub history: Vec<HistoryEvent>,
    /// States entered, across all branches and iterations: what Step Functions bills as transitions.
    pub state_transitions: u64,
}

impl Execution {
    /// The output, or the failure (a timeout is a failure with `States.Timeout`).
    pub fn result(&self) -> Result<&Value, &Failure> {
        match &self.outcome {
            Outcome::Succeeded(output) => Ok(output),
            Outcome::Failed(failure) | Outcome::TimedOut(failure) => Err(failure),
        }
    }

    /// The history as `GetExecutionHistory` returns it: `{"events": […]}`.
    pub fn history_json(&self) -> Value {
        json!({"events": self.history.iter().map(HistoryEvent::to_json).collect::<Vec<_>>()})
    }
}

/// Runs state machines, dispatching their tasks to one [`TaskDispatcher`].
#[derive(Clone)]
pub struct Engine {
    dispatcher: Arc<dyn TaskDispatcher>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// What one execution shares across its branches.
struct Run {
    clock: RunningClock,
    history: Recorder,
    /// One generator for the whole execution, seeded once, so that a seed reproduces every draw. A std Mutex:
    /// it is held only for a draw, never across an await.
    rng: Mutex<ChaCha8Rng>,
    /// `$$.Execution` and `$$.StateMachine`, built once and borrowed by every context object.
    execution_context: Value,
    state_machine_context: Value,
    /// For the `region` of TaskScheduled events.
    region: String,
    /// States entered so far, across branches; atomic because branches share `&Run`.
    transitions: AtomicU64,
    max_transitions: Option<u64>,
}

/// One visit of a state: what the context object's `$$.State` describes.
#[derive(Debug, Clone, Copy)]
struct Visit<'a> {
    state: &'a State,
    entered: DateTime<Utc>,
    retry_count: u32,
}

/// Where a state sends its output.
enum Next {
    State(usize),
    /// A Catcher's `Next`: on AWS the failed state records no `…StateExited` event.
    Caught(usize),
    End,
}

impl Engine {
    pub fn new(dispatcher: Arc<dyn TaskDispatcher>) -> Self {
        Engine { dispatcher }
    }

    /// Runs `machine` on `input` to completion.
    pub async fn execute(&self, machine: &StateMachine, input: Value, options: ExecutionOptions) -> Execution {
        let seed = options.seed.unwrap_or_else(rand::random);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let name = match options.name {
            Some(name) => name,
            None => uuid::Builder::from_random_bytes(rand::Rng::gen(&mut rng))
                .into_uuid()
                .to_string(),
        };
        let machine_arn = format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            options.region, options.account, options.state_machine_name
        );
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{}:{name}",
            options.region, options.account, options.state_machine_name
        );
        let role_arn = format!(
            "arn:aws:iam::{}:role/{}-role",
            options.account, options.state_machine_name
        );
        let clock = options.clock.start();
        let start = clock.now();
        let run = Run {
            clock,
            history: Recorder::new(options.record_history, options.on_event.clone()),
            rng: Mutex::new(rng),
            execution_context: json!({
                "Id": arn,
                "Input": input,
                "Name": name,
                "RoleArn": role_arn,
                "StartTime": format_timestamp(start),
                "RedriveCount": 0,
            }),
            state_machine_context: json!({"Id": machine_arn, "Name": options.state_machine_name}),
            region: options.region.clone(),
            transitions: AtomicU64::new(0),
            max_transitions: options.max_transitions,
        };
        let mut line = Line::default();
        run.history.record(&mut line, start, "ExecutionStarted", || {
            Some((
                "executionStartedEventDetails",
                json!({"input": input.to_string(), "inputDetails": {"truncated": false}, "roleArn": role_arn}),
            ))
        });

        let limit = match (machine.timeout(), options.kind) {
            (Some(timeout), ExecutionKind::Express) => Some(timeout.min(EXPRESS_MAX_DURATION)),
            (None, ExecutionKind::Express) => Some(EXPRESS_MAX_DURATION),
            (timeout, ExecutionKind::Standard) => timeout,
        };
        let express_problems = if options.kind == ExecutionKind::Express {
            machine.express_problems()
        } else {
            Vec::new()
        };
        let body = async {
            if let Some(problem) = express_problems.first() {
                return (Err(Failure::runtime(problem.to_string())), line);
            }
            if let Err(failure) = check_size(&input, || "the execution input".into()) {
                return (Err(failure), line);
            }
            self.run_program(&run, &machine.program, input, line).await
        };
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, body).await.map_err(|_| limit),
            None => Ok(body.await),
        };
        let stop = run.clock.now();
        let (outcome, mut last) = match result {
            Ok((Ok(output), line)) => match check_size(&output, || "the execution output".into()) {
                Ok(()) => (Outcome::Succeeded(output), line),
                Err(failure) => (Outcome::Failed(failure), line),
            },
            Ok((Err(failure), line)) => (Outcome::Failed(failure), line),
            // A timeout interrupts whatever ran last, on whichever line that was.
            Err(limit) => (
                Outcome::TimedOut(Failure::new(
                    names::TIMEOUT,
                    format!("The execution timed out after {} seconds", limit.as_secs()),
                )),
                Line {
                    last_event: run.history.last_id(),
                },
            ),
        };
        match &outcome {
            Outcome::Succeeded(output) => run.history.record(&mut last, stop, "ExecutionSucceeded", || {
                Some((
                    "executionSucceededEventDetails",
                    json!({"output": output.to_string(), "outputDetails": {"truncated": false}}),
                ))
            }),
            Outcome::Failed(failure) => run.history.record(&mut last, stop, "ExecutionFailed", || {
                Some(("executionFailedEventDetails", failure_details(failure)))
            }),
            Outcome::TimedOut(failure) => run.history.record(&mut last, stop, "ExecutionTimedOut", || {
                Some(("executionTimedOutEventDetails", failure_details(failure)))
            }),
        }
        Execution {
            arn,
            name,
            start,
            stop,
            outcome,
            state_transitions: run.transitions.load(Ordering::Relaxed),
            history: run.history.into_events(),
        }
    }

    /// Runs the states of `program` from its start; returns the outcome and the line's last event, so that
    /// what follows a branch (its Parallel's end, or a failure) points back to where the branch ended.
    fn run_program<'a>(
        &'a self,
        run: &'a Run,
        program: &'a Program,
        input: Value,
        line: Line,
    ) -> BoxFuture<'a, (Result<Value, Failure>, Line)> {
        Box::pin(async move {
            let mut line = line;
            let result = self.run_states(run, program, input, &mut line).await;
            (result, line)
        })
    }

    async fn run_states(&self, run: &Run, program: &Program, input: Value, line: &mut Line) -> Result<Value, Failure> {
        let mut current = program.start;
        let mut input = input;
        loop {
            let state = &program.states[current];
            let transitions = run.transitions.fetch_add(1, Ordering::Relaxed) + 1;
            if run.max_transitions.is_some_and(|max| transitions > max) {
                return Err(Failure::runtime(format!(
                    "the execution exceeded {} state transitions at state '{}': a loop without end?",
                    transitions - 1,
                    state.name
                )));
            }
            if transitions.is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
            let entered = run.clock.now();
            run.history
                .record(line, entered, history::entered_kind(state.type_name()), || {
                    history::state_entered(&state.name, &input)
                });
            let (output, next) = self.run_state(run, state, input, entered, line).await?;
            check_size(&output, || format!("the output of state '{}'", state.name))?;
            if !matches!(next, Next::Caught(_)) {
                run.history
                    .record(line, run.clock.now(), history::exited_kind(state.type_name()), || {
                        history::state_exited(&state.name, &output)
                    });
            }
            match next {
                Next::State(index) | Next::Caught(index) => {
                    current = index;
                    input = output;
                }
                Next::End => return Ok(output),
            }
        }
    }

    async fn run_state(
        &self,
        run: &Run,
        state: &State,
        input: Value,
        entered: DateTime<Utc>,
        line: &mut Line,
    ) -> Result<(Value, Next), Failure> {
        let next = match state.transition {
            Transition::Next(index) => Next::State(index),
            Transition::End => Next::End,
        };
        let visit = Visit {
            state,
            entered,
            retry_count: 0,
        };
        let context = run.context(visit, None);
        match &state.body {
            Body::Pass {
                parameters,
                result,
                result_path,
            } => {
                let result_is_root = result_path.as_ref().is_some_and(|path| path.steps().is_empty());
                let result = if let Some(result) = result {
                    result.clone()
                } else if let Some(parameters) = parameters {
                    let effective = effective_input(state, &input, &context)?;
                    run.evaluate(parameters, &effective, visit, None)?
                } else if result_is_root {
                    // The commonest Pass: its output is its (filtered) input, moved rather than copied.
                    return Ok((
                        output_path(state, take_effective_input(state, input, &context)?, &context)?,
                        next,
                    ));
                } else {
                    effective_input(state, &input, &context)?.into_owned()
                };
                let combined =
                    apply_result_path(result_path.as_ref(), input, result).map_err(|(failure, _)| failure)?;
                Ok((output_path(state, combined, &context)?, next))
            }
            Body::Choice { choices, default } => {
                let effective = take_effective_input(state, input, &context)?;
                let mut chosen = None;
                for (rule, target) in choices {
                    if rule.evaluate(&effective, &context)? {
                        chosen = Some(*target);
                        break;
                    }
                }
                let Some(target) = chosen.or(*default) else {
                    // AWS reserves States.NoChoiceMatched and reports this as a runtime error, which no
                    // Catch or Retry takes: the execution fails.
                    return Err(Failure::runtime(format!("No Matches! (state '{}')", state.name)));
                };
                Ok((output_path(state, effective, &context)?, Next::State(target)))
            }
            Body::Wait(wait) => {
                let effective = take_effective_input(state, input, &context)?;
                let deadline = wait_deadline(wait, &effective, entered)?;
                run.clock.sleep_until(deadline).await;
                Ok((output_path(state, effective, &context)?, next))
            }
            Body::Succeed => Ok((
                output_path(state, take_effective_input(state, input, &context)?, &context)?,
                Next::End,
            )),
            Body::Fail { error, cause } => {
                let error = resolve_dynamic(error.as_ref(), &input, &context, run, "ErrorPath")?;
                let cause = resolve_dynamic(cause.as_ref(), &input, &context, run, "CausePath")?;
                Err(Failure {
                    error: error.unwrap_or_default(),
                    cause,
                })
            }
            Body::Task { handling, .. } | Body::Parallel { handling, .. } | Body::Map { handling, .. } => {
                self.run_with_recovery(run, visit, handling, input, next, line).await
            }
        }
    }

    /// Runs a Task, Parallel or Map state, applying its Retry and Catch.
    async fn run_with_recovery(
        &self,
        run: &Run,
        visit: Visit<'_>,
        handling: &ResultHandling,
        input: Value,
        next: Next,
        line: &mut Line,
    ) -> Result<(Value, Next), Failure> {
        let mut attempts = vec![0u32; handling.retry.len()];
        let mut retry_count = 0u32;
        let mut input = input;
        loop {
            let failure = match self
                .attempt(run, Visit { retry_count, ..visit }, handling, &input, line)
                .await
            {
                Ok(result) => match apply_result_path(handling.result_path.as_ref(), input, result) {
                    Ok(combined) => return Ok((output_path(visit.state, combined, &run.context(visit, None))?, next)),
                    Err((failure, original)) => {
                        input = original;
                        failure
                    }
                },
                Err(failure) => failure,
            };
            if failure.error == names::RUNTIME {
                return Err(failure);
            }
            if let Some(index) = handling
                .retry
                .iter()
                .position(|retrier| error_matches(&retrier.error_equals, &failure.error))
            {
                let retrier = &handling.retry[index];
                if attempts[index] < retrier.max_attempts {
                    let delay = retrier.delay(attempts[index], &mut *lock(&run.rng));
                    attempts[index] += 1;
                    retry_count += 1;
                    run.clock.sleep(delay).await;
                    continue;
                }
            }
            if let Some(catcher) = handling
                .catch
                .iter()
                .find(|catcher| error_matches(&catcher.error_equals, &failure.error))
            {
                let output = apply_result_path(catcher.result_path.as_ref(), input, failure.to_error_output())
                    .map_err(|(failure, _)| failure)?;
                return Ok((output, Next::Caught(catcher.next)));
            }
            return Err(failure);
        }
    }

    /// One attempt at a Task, Parallel or Map: everything up to and including ResultSelector.
    async fn attempt(
        &self,
        run: &Run,
        visit: Visit<'_>,
        handling: &ResultHandling,
        raw: &Value,
        line: &mut Line,
    ) -> Result<Value, Failure> {
        let state = visit.state;
        let context = run.context(visit, None);
        let effective = effective_input(state, raw, &context)?;
        let result = match &state.body {
            Body::Task { resource, timeout, .. } => {
                let timeout = match timeout {
                    Some(seconds) => Some(resolve_seconds(seconds, &effective, "TimeoutSecondsPath", 1)?),
                    None => None,
                };
                let parameters = match &handling.parameters {
                    Some(template) => run.evaluate(template, &effective, visit, None)?,
                    None => effective.into_owned(),
                };
                self.run_task(run, resource, parameters, timeout, line).await?
            }
            Body::Parallel { branches, .. } => {
                let branch_input = match &handling.parameters {
                    Some(template) => run.evaluate(template, &effective, visit, None)?,
                    None => effective.into_owned(),
                };
                self.run_parallel(run, branches, branch_input, line).await?
            }
            Body::Map {
                items_path,
                item_selector,
                processor,
                max_concurrency,
                ..
            } => {
                let items = select_from(items_path, &effective, &context).map_err(|_| {
                    Failure::runtime(format!(
                        "Map state '{}': ItemsPath '{items_path}' selects nothing",
                        state.name
                    ))
                })?;
                let Value::Array(items) = items.as_ref() else {
                    return Err(Failure::runtime(format!(
                        "Map state '{}': ItemsPath '{items_path}' must select an array, not {}",
                        state.name,
                        items.as_ref()
                    )));
                };
                let limit = resolve_seconds(max_concurrency, &effective, "MaxConcurrencyPath", 0)?.as_secs();
                let mut inputs = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    inputs.push(match item_selector {
                        Some(selector) => run.evaluate(selector, &effective, visit, Some((index, item)))?,
                        None => item.clone(),
                    });
                }
                self.run_map(run, state, processor, inputs, limit, line).await?
            }
            _ => return Err(Failure::runtime(format!("state '{}' cannot be retried", state.name))),
        };
        match &handling.result_selector {
            Some(selector) => run.evaluate(selector, &result, visit, None),
            None => Ok(result),
        }
    }

    async fn run_task(
        &self,
        run: &Run,
        resource: &str,
        parameters: Value,
        timeout: Option<Duration>,
        line: &mut Line,
    ) -> Result<Value, Failure> {
        check_size(&parameters, || "the task input".into())?;
        let lambda = is_function_arn(resource);
        let (resource_type, resource_name) = history::resource_parts(resource);
        let timeout_field = timeout.map(|t| t.as_secs());
        if lambda {
            run.history.record(line, run.clock.now(), "LambdaFunctionScheduled", || {
                let mut details = json!({"resource": resource, "input": parameters.to_string(), "inputDetails": {"truncated": false}});
                if let Some(seconds) = timeout_field {
                    details["timeoutInSeconds"] = seconds.into();
                }
                Some(("lambdaFunctionScheduledEventDetails", details))
            });
            run.history
                .record(line, run.clock.now(), "LambdaFunctionStarted", || None);
        } else {
            run.history.record(line, run.clock.now(), "TaskScheduled", || {
                let mut details = json!({
                    "resourceType": resource_type, "resource": resource_name, "region": run.region,
                    "parameters": parameters.to_string(),
                });
                if let Some(seconds) = timeout_field {
                    details["timeoutInSeconds"] = seconds.into();
                }
                Some(("taskScheduledEventDetails", details))
            });
            run.history.record(line, run.clock.now(), "TaskStarted", || {
                Some((
                    "taskStartedEventDetails",
                    json!({"resourceType": resource_type, "resource": resource_name}),
                ))
            });
        }
        let call = self.dispatcher.invoke(resource, parameters);
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let failure = Failure::new(
                        names::TIMEOUT,
                        format!("The task timed out after {} seconds", limit.as_secs()),
                    );
                    let (kind, field) = if lambda {
                        ("LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails")
                    } else {
                        ("TaskTimedOut", "taskTimedOutEventDetails")
                    };
                    run.history.record(line, run.clock.now(), kind, || {
                        Some((field, task_details(&resource_type, &resource_name, lambda, &failure)))
                    });
                    return Err(failure);
                }
            },
            None => call.await,
        };
        let outcome = outcome.and_then(|output| check_size(&output, || "the task result".into()).map(|()| output));
        match &outcome {
            Ok(output) if lambda => run
                .history
                .record(line, run.clock.now(), "LambdaFunctionSucceeded", || {
                    Some((
                        "lambdaFunctionSucceededEventDetails",
                        json!({"output": output.to_string(), "outputDetails": {"truncated": false}}),
                    ))
                }),
            Ok(output) => run.history.record(line, run.clock.now(), "TaskSucceeded", || {
                Some((
                    "taskSucceededEventDetails",
                    json!({"resourceType": resource_type, "resource": resource_name, "output": output.to_string(),
                           "outputDetails": {"truncated": false}}),
                ))
            }),
            Err(failure) => {
                let (kind, field) = if lambda {
                    ("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails")
                } else {
                    ("TaskFailed", "taskFailedEventDetails")
                };
                run.history.record(line, run.clock.now(), kind, || {
                    Some((field, task_details(&resource_type, &resource_name, lambda, failure)))
                });
            }
        }
        outcome
    }

    async fn run_parallel(
        &self,
        run: &Run,
        branches: &[Program],
        input: Value,
        line: &mut Line,
    ) -> Result<Value, Failure> {
        run.history
            .record(line, run.clock.now(), "ParallelStateStarted", || None);
        let start = *line;
        let mut pending: FuturesUnordered<_> = branches
            .iter()
            .enumerate()
            .map(|(index, branch)| {
                let input = input.clone();
                async move { (index, self.run_program(run, branch, input, start).await) }
            })
            .collect();
        let mut outputs = vec![Value::Null; branches.len()];
        let mut last = start;
        while let Some((index, (result, branch_line))) = pending.next().await {
            last = branch_line;
            match result {
                Ok(output) => outputs[index] = output,
                Err(failure) => {
                    // Dropping `pending` cancels the other branches, as AWS stops them.
                    drop(pending);
                    *line = last;
                    run.history
                        .record(line, run.clock.now(), "ParallelStateFailed", || None);
                    return Err(failure);
                }
            }
        }
        *line = last;
        run.history
            .record(line, run.clock.now(), "ParallelStateSucceeded", || None);
        Ok(Value::Array(outputs))
    }

    async fn run_map(
        &self,
        run: &Run,
        state: &State,
        processor: &Program,
        inputs: Vec<Value>,
        limit: u64,
        line: &mut Line,
    ) -> Result<Value, Failure> {
        let count = inputs.len();
        run.history.record(line, run.clock.now(), "MapStateStarted", || {
            Some(("mapStateStartedEventDetails", json!({"length": count})))
        });
        let limit = if limit == 0 {
            count.max(1)
        } else {
            usize::try_from(limit).unwrap_or(usize::MAX).min(count.max(1))
        };
        let start = *line;
        let name = state.name.as_str();
        let iteration = |index: usize, input: Value| async move {
            let mut iteration_line = start;
            let details = || Some(("mapIterationStartedEventDetails", json!({"name": name, "index": index})));
            run.history
                .record(&mut iteration_line, run.clock.now(), "MapIterationStarted", details);
            let (result, mut end_line) = self.run_program(run, processor, input, iteration_line).await;
            let (kind, field) = match &result {
                Ok(_) => ("MapIterationSucceeded", "mapIterationSucceededEventDetails"),
                Err(_) => ("MapIterationFailed", "mapIterationFailedEventDetails"),
            };
            run.history.record(&mut end_line, run.clock.now(), kind, || {
                Some((field, json!({"name": name, "index": index})))
            });
            (index, result, end_line)
        };
        let mut inputs = inputs.into_iter().enumerate();
        let mut pending = FuturesUnordered::new();
        for (index, input) in inputs.by_ref().take(limit) {
            pending.push(iteration(index, input));
        }
        let mut outputs = vec![Value::Null; count];
        let mut last = start;
        while let Some((index, result, end_line)) = pending.next().await {
            match result {
                Ok(output) => {
                    outputs[index] = output;
                    last = end_line;
                    if let Some((index, input)) = inputs.next() {
                        pending.push(iteration(index, input));
                    }
                }
                Err(failure) => {
                    drop(pending);
                    *line = end_line;
                    run.history.record(line, run.clock.now(), "MapStateFailed", || None);
                    return Err(failure);
                }
            }
        }
        *line = last;
        run.history.record(line, run.clock.now(), "MapStateSucceeded", || None);
        Ok(Value::Array(outputs))
    }
}

impl Run {
    /// The context object as `$$` sees it in `state`.
    fn context<'a>(&'a self, visit: Visit<'a>, item: Option<(usize, &'a Value)>) -> ContextObject<'a> {
        let facts = StateFacts {
            name: &visit.state.name,
            entered: visit.entered,
            retry_count: visit.retry_count,
        };
        ContextObject::new(&self.execution_context, &self.state_machine_context, Some(facts), item)
    }

    /// Evaluates a payload template against `data`, with the context object of `visit`.
    fn evaluate(
        &self,
        template: &Template,
        data: &Value,
        visit: Visit<'_>,
        item: Option<(usize, &Value)>,
    ) -> Result<Value, Failure> {
        let context = self.context(visit, item);
        template.evaluate(&Scope {
            data,
            context: &context,
            rng: &self.rng,
        })
    }
}

fn lock(rng: &Mutex<ChaCha8Rng>) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
    rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn failure_details(failure: &Failure) -> Value {
    // A Fail state may name no error; AWS then leaves the field out rather than showing an empty one.
    let mut details = if failure.error.is_empty() {
        json!({})
    } else {
        json!({"error": failure.error})
    };
    if let Some(cause) = &failure.cause {
        details["cause"] = cause.clone().into();
    }
    details
}

fn task_details(resource_type: &str, resource: &str, lambda: bool, failure: &Failure) -> Value {
    let mut details = failure_details(failure);
    if !lambda {
        details["resourceType"] = resource_type.into();
        details["resource"] = resource.into();
    }
    details
}

/// The state's input after InputPath, borrowed where possible.
fn effective_input<'v>(
    state: &State,
    input: &'v Value,
    context: &'v ContextObject<'_>,
) -> Result<Cow<'v, Value>, Failure> {
    match &state.input_path {
        None => Ok(Cow::Owned(json!({}))),
        Some(path) => select_from(path, input, context).map_err(|_| no_results("InputPath", path, input)),
    }
}

fn take_effective_input(state: &State, input: Value, context: &ContextObject<'_>) -> Result<Value, Failure> {
    take_path("InputPath", state.input_path.as_ref(), input, context)
}

fn output_path(state: &State, value: Value, context: &ContextObject<'_>) -> Result<Value, Failure> {
    take_path("OutputPath", state.output_path.as_ref(), value, context)
}

/// InputPath or OutputPath (`field`) applied to a value the state owns: `{}` for a null path, the
/// value itself for `$`, else the part selected from the value (moved out, not cloned) or from the
/// context object.
fn take_path(field: &str, path: Option<&Path>, value: Value, context: &ContextObject<'_>) -> Result<Value, Failure> {
    let Some(path) = path else { return Ok(json!({})) };
    match path.root() {
        Root::Context => context
            .select(path)
            .map(Cow::into_owned)
            .map_err(|_| no_results(field, path, &value)),
        Root::Data if path.steps().is_empty() && path.is_definite() => Ok(value),
        // Checked first so that a failing path can still show the value it failed on.
        Root::Data if path.select(&value).is_err() => Err(no_results(field, path, &value)),
        Root::Data => path
            .select_owned(value)
            .map_err(|_| Failure::runtime(format!("Invalid {field} '{path}'"))),
    }
}

fn no_results(field: &str, path: &Path, value: &Value) -> Failure {
    Failure::runtime(format!(
        "Invalid path '{path}' in {field}: no results for path in the input '{value}'"
    ))
}

/// ResultPath: combines `result` with the state's raw input; on failure hands the input back for Catch.
fn apply_result_path(path: Option<&Path>, input: Value, result: Value) -> Result<Value, (Failure, Value)> {
    let Some(path) = path else { return Ok(input) };
    if path.steps().is_empty() {
        return Ok(result);
    }
    if let Err(message) = path.check_writable(&input) {
        return Err((Failure::new(names::RESULT_PATH_MATCH_FAILURE, message), input));
    }
    path.write(input, result)
        .map_err(|message| (Failure::new(names::RESULT_PATH_MATCH_FAILURE, message), Value::Null))
}

fn resolve_seconds(seconds: &Seconds, data: &Value, field: &str, min: u64) -> Result<Duration, Failure> {
    Ok(Duration::from_secs(match seconds {
        Seconds::Fixed(n) => *n,
        Seconds::Path(path) => match path.select(data).ok().as_deref().and_then(Value::as_u64) {
            Some(n) if n >= min => n,
            _ => {
                return Err(Failure::runtime(format!(
                    "{field} '{path}' must select an integer of at least {min} in the input '{data}'"
                )))
            }
        },
    }))
}

fn wait_deadline(wait: &WaitFor, input: &Value, entered: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    let after = |seconds: u64| {
        i64::try_from(seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|delta| entered.checked_add_signed(delta))
            .ok_or_else(|| Failure::runtime(format!("Wait of {seconds} seconds is out of range")))
    };
    match wait {
        WaitFor::Seconds(seconds) => after(*seconds),
        WaitFor::Timestamp(time) => Ok(*time),
        WaitFor::SecondsPath(path) => match path.select(input).ok().as_deref() {
            Some(Value::Number(n)) if n.as_u64().is_some_and(|s| s <= MAX_WAIT_SECONDS) => {
                after(n.as_u64().unwrap_or_default())
            }
            _ => Err(Failure::runtime(format!(
                "SecondsPath '{path}' must select an integer from 0 to {MAX_WAIT_SECONDS} in the input '{input}'"
            ))),
        },
        WaitFor::TimestampPath(path) => match path
            .select(input)
            .ok()
            .as_deref()
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
        {
            Some(time) => Ok(time.with_timezone(&Utc)),
            None => Err(Failure::runtime(format!(
                "TimestampPath '{path}' must select an RFC 3339 timestamp in the input '{input}'"
            ))),
        },
    }
}

fn resolve_dynamic(
    dynamic: Option<&Dynamic>,
    input: &Value,
    context: &ContextObject<'_>,
    run: &Run,
    field: &str,
) -> Result<Option<String>, Failure> {
    let value = match dynamic {
        None => return Ok(None),
        Some(Dynamic::Literal(text)) => return Ok(Some(text.clone())),
        Some(Dynamic::Path(path)) => path
            .select(input)
            .map_err(|_| no_results(field, path, input))?
            .into_owned(),
        Some(Dynamic::Call(call)) => call.evaluate(&Scope {
            data: input,
            context,
            rng: &run.rng,
        })?,
    };
    match value {
        Value::String(text) => Ok(Some(text)),
        other => Err(Failure::runtime(format!("{field} must select a string, not {other}"))),
    }
}

/// Fails with `States.DataLimitExceeded` when `value` serialises to more than 256 KiB; `what` names it.
fn check_size(value: &Value, what: impl FnOnce() -> String) -> Result<(), Failure> {
    let size = serialized_len(value);
    if size > MAX_PAYLOAD_BYTES {
        return Err(Failure::new(
            names::DATA_LIMIT_EXCEEDED,
            format!(
                "{} is {size} bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes",
                what()
            ),
        ));
    }
    Ok(())
}

/// The length of `value`'s compact JSON, counted without building the string.
pub(crate) fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and serialising a Value cannot either.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
