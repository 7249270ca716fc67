//! State machine definitions: parsing and validating ASL into a form the engine runs directly.
//!
//! Parsing checks what AWS checks when a state machine is created: the fields each state type allows and
//! requires, that every `Next` names a state in the same scope, that every state is reachable, that paths and
//! templates are well formed, and that Retry/Catch lists are ordered correctly. Transitions are resolved to
//! indices here, so that running a state machine never looks a state up by name.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::Value;

use crate::choice::{parse_rule, Rule};
use crate::clock::parse_timestamp;
use crate::error::{DefinitionError, Problem};
use crate::intrinsic::{looks_like_intrinsic, Intrinsic};
use crate::path::Path;
use crate::reader::{Fields, Problems};
use crate::retry::{parse_catch, parse_retry, Catcher, Retrier};
use crate::template::Template;

/// AWS limits state names to 80 characters.
const MAX_STATE_NAME: usize = 80;

/// A parsed, validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) program: Program,
    pub(crate) timeout: Option<Duration>,
    pub(crate) comment: Option<String>,
    /// What keeps the machine from running as Express, found while parsing; see [`StateMachine::express_problems`].
    pub(crate) express_problems: Vec<Problem>,
}

/// The states of the machine itself, of a Parallel branch or of a Map's item processor.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) start: usize,
    pub(crate) states: Vec<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Next(usize),
    End,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) name: String,
    /// `None` is `"InputPath": null`: the state sees `{}`.
    pub(crate) input_path: Option<Path>,
    /// `None` is `"OutputPath": null`: the state outputs `{}`.
    pub(crate) output_path: Option<Path>,
    pub(crate) transition: Transition,
    pub(crate) body: Body,
}

/// What a Task, Parallel or Map does with its result, and how it recovers from errors.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResultHandling {
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    /// `None` is `"ResultPath": null`: the result is discarded and the input passes through.
    pub(crate) result_path: Option<Path>,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub(crate) enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(u64),
    Timestamp(chrono::DateTime<chrono::Utc>),
    SecondsPath(Path),
    TimestampPath(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Dynamic {
    Literal(String),
    Path(Path),
    Call(Intrinsic),
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Pass {
        parameters: Option<Template>,
        result: Option<Value>,
        result_path: Option<Path>,
    },
    Task {
        resource: String,
        handling: ResultHandling,
        timeout: Option<Seconds>,
    },
    Choice {
        choices: Vec<(Rule, usize)>,
        default: Option<usize>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Dynamic>,
        cause: Option<Dynamic>,
    },
    Parallel {
        branches: Vec<Program>,
        handling: ResultHandling,
    },
    Map {
        items_path: Path,
        item_selector: Option<Template>,
        processor: Box<Program>,
        max_concurrency: Seconds,
        handling: ResultHandling,
    },
}

impl State {
    pub(crate) fn type_name(&self) -> &'static str {
        match self.body {
            Body::Pass { .. } => "Pass",
            Body::Task { .. } => "Task",
            Body::Choice { .. } => "Choice",
            Body::Wait(_) => "Wait",
            Body::Succeed => "Succeed",
            Body::Fail { .. } => "Fail",
            Body::Parallel { .. } => "Parallel",
            Body::Map { .. } => "Map",
        }
    }
}

impl StateMachine {
    /// Parses and validates a definition given as JSON text. An object that gives a key twice is refused, with
    /// the key and its line and column, rather than read with the last one winning: Step Functions and other
    /// readers of the same file may keep the other one.
    pub fn from_json(text: &str) -> Result<StateMachine, DefinitionError> {
        let value = queuematch_json::from_str_unique(text).map_err(|e| DefinitionError::Json(e.to_string()))?;
        StateMachine::from_value(&value)
    }

    /// Parses a definition after SAM-style `${Name}` substitution (see [`crate::substitute`]).
    pub fn from_json_with_substitutions(
        text: &str,
        substitutions: &HashMap<String, String>,
    ) -> Result<StateMachine, DefinitionError> {
        StateMachine::from_json(&crate::substitute::substitute(text, substitutions)?)
    }

    /// Parses and validates a definition.
    pub fn from_value(value: &Value) -> Result<StateMachine, DefinitionError> {
        let mut problems = Problems::default();
        let mut names = HashSet::new();
        let machine = parse_top(value, &mut problems, &mut names);
        match machine {
            Some(machine) if problems.list.is_empty() => Ok(machine),
            _ => Err(DefinitionError::Invalid(problems.list)),
        }
    }

    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The execution timeout set by the top-level `TimeoutSeconds`.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// What keeps this machine from running as an Express workflow: tasks that wait for a job (`.sync`) or a
    /// callback (`.waitForTaskToken`), and activities, none of which Express supports. Each is located as a definition's
    /// problems are (`States.A.Resource`): to refuse a definition meant for Express, report them as
    /// [`DefinitionError::Invalid`] before running it.
    pub fn express_problems(&self) -> Vec<Problem> {
        self.express_problems.clone()
    }

    /// How many states the machine has, counting those inside Parallel branches and Map processors.
    pub fn state_count(&self) -> usize {
        fn count(program: &Program) -> usize {
            program
                .states
                .iter()
                .map(|state| {
                    1 + match &state.body {
                        Body::Parallel { branches, .. } => branches.iter().map(count).sum(),
                        Body::Map { processor, .. } => count(processor),
                        _ => 0,
                    }
                })
                .sum()
        }
        count(&self.program)
    }
}

fn check_query_language(fields: Fields<'_>, problems: &mut Problems) {
    match fields.get("QueryLanguage") {
        None => {}
        Some(Value::String(language)) if language == "JSONPath" => {}
        Some(Value::String(language)) if language == "JSONata" => fields.problem(
            problems,
            "QueryLanguage",
            "the JSONata query language is not supported yet; use JSONPath (the default)",
        ),
        Some(other) => fields.problem(
            problems,
            "QueryLanguage",
            format!("must be \"JSONPath\" or \"JSONata\", not {other}"),
        ),
    }
}

fn parse_top(value: &Value, problems: &mut Problems, names: &mut HashSet<String>) -> Option<StateMachine> {
    let fields = Fields::new(value, "", None, problems)?;
    fields.reject_unknown(
        &[
            "Comment",
            "StartAt",
            "States",
            "Version",
            "TimeoutSeconds",
            "QueryLanguage",
        ],
        "a state machine",
        problems,
    );
    check_query_language(fields, problems);
    if let Some(version) = fields.string("Version", problems) {
        if version != "1.0" {
            fields.problem(
                problems,
                "Version",
                format!("the only ASL version is \"1.0\", not \"{version}\""),
            );
        }
    }
    let timeout = fields.integer("TimeoutSeconds", 1, problems).map(Duration::from_secs);
    let comment = fields.string("Comment", problems).map(str::to_owned);
    let program = parse_program(fields, problems, names)?;
    Some(StateMachine {
        program,
        timeout,
        comment,
        express_problems: std::mem::take(&mut problems.express),
    })
}

/// Parses `StartAt` and `States` of `fields`: the machine, a branch or an item processor.
fn parse_program(fields: Fields<'_>, problems: &mut Problems, names: &mut HashSet<String>) -> Option<Program> {
    let start_name = fields.required_string("StartAt", problems);
    if !fields.has("States") {
        fields.problem(problems, "States", "is required");
        return None;
    }
    let states_at = fields.at("States");
    let states_value = fields.get("States")?;
    let Value::Object(states) = states_value else {
        fields.problem(problems, "States", "must be an object of states by name");
        return None;
    };
    if states.is_empty() {
        fields.problem(problems, "States", "must have at least one state");
        return None;
    }
    let index: HashMap<&str, usize> = states.keys().enumerate().map(|(i, name)| (name.as_str(), i)).collect();
    for name in states.keys() {
        if name.chars().count() > MAX_STATE_NAME {
            problems.push(
                Some(name),
                format!("{states_at}.{name}"),
                format!("state names are at most {MAX_STATE_NAME} characters"),
            );
        }
        if !names.insert(name.clone()) {
            problems.push(
                Some(name),
                format!("{states_at}.{name}"),
                "state names must be unique within the state machine",
            );
        }
    }
    let start = start_name.and_then(|name| match index.get(name) {
        Some(i) => Some(*i),
        None => {
            fields.problem(problems, "StartAt", format!("'{name}' is not a state in this scope"));
            None
        }
    });
    let mut parsed = Vec::with_capacity(states.len());
    for (name, value) in states {
        let at = format!("{states_at}.{name}");
        if let Some(state) = parse_state(name, value, &at, &index, problems, names) {
            parsed.push(state);
        }
    }
    let start = start?;
    if parsed.len() != states.len() {
        return None;
    }
    check_reachable(start, states, &index, &states_at, problems);
    Some(Program { start, states: parsed })
}

/// Reports the states no transition leads to from `start`. The transitions are read from the
/// definition as written, not from what parsed: a Choice rule or a Catcher refused for another
/// reason still names its `Next`, and the state it names is not also "unreachable".
fn check_reachable(
    start: usize,
    states: &serde_json::Map<String, Value>,
    index: &HashMap<&str, usize>,
    states_at: &str,
    problems: &mut Problems,
) {
    let values: Vec<&Value> = states.values().collect();
    let mut seen = vec![false; values.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let state = values[i];
        let listed = |key: &str| state.get(key).and_then(Value::as_array).into_iter().flatten();
        let targets = [state.get("Next"), state.get("Default")].into_iter().flatten().chain(
            listed("Choices")
                .chain(listed("Catch"))
                .filter_map(|item| item.get("Next")),
        );
        queue.extend(targets.filter_map(|name| index.get(name.as_str()?).copied()));
    }
    for ((name, _), reached) in states.iter().zip(seen) {
        if !reached {
            problems.push(
                Some(name),
                format!("{states_at}.{name}"),
                "the state is unreachable from StartAt",
            );
        }
    }
}

const COMMON: &[&str] = &["Type", "Comment", "InputPath", "OutputPath", "QueryLanguage"];

fn parse_state(
    name: &str,
    value: &Value,
    at: &str,
    index: &HashMap<&str, usize>,
    problems: &mut Problems,
    names: &mut HashSet<String>,
) -> Option<State> {
    let fields = Fields::new(value, at, Some(name), problems)?;
    check_query_language(fields, problems);
    fields.string("Comment", problems);
    let kind = fields.required_string("Type", problems)?;
    let mut resolve = |target: &str, location: String, problems: &mut Problems| match index.get(target) {
        Some(i) => Some(*i),
        None => {
            problems.push(Some(name), location, format!("'{target}' is not a state in this scope"));
            None
        }
    };
    let (allowed, has_transition): (&[&str], bool) = match kind {
        "Pass" => (&["Next", "End", "Parameters", "Result", "ResultPath"], true),
        "Task" => (
            &[
                "Next",
                "End",
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Credentials",
            ],
            true,
        ),
        "Choice" => (&["Choices", "Default"], false),
        "Wait" => (
            &["Next", "End", "Seconds", "Timestamp", "SecondsPath", "TimestampPath"],
            true,
        ),
        "Succeed" => (&[], false),
        "Fail" => (&["Error", "Cause", "ErrorPath", "CausePath"], false),
        "Parallel" => (
            &[
                "Next",
                "End",
                "Branches",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
            ],
            true,
        ),
        "Map" => (
            &[
                "Next",
                "End",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "Iterator",
                "ItemProcessor",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
            ],
            true,
        ),
        other => {
            fields.problem(
                problems,
                "Type",
                format!("unknown state type '{other}': use Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map"),
            );
            return None;
        }
    };
    let common: &[&str] = if kind == "Fail" {
        &["Type", "Comment", "QueryLanguage"]
    } else {
        COMMON
    };
    let mut every: Vec<&str> = common.to_vec();
    every.extend_from_slice(allowed);
    if kind == "Map" {
        for distributed in [
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "Label",
        ] {
            if fields.has(distributed) {
                fields.problem(
                    problems,
                    distributed,
                    format!("'{distributed}' belongs to Distributed Map, which is not supported; only inline Map is"),
                );
                every.push(distributed);
            }
        }
    }
    fields.reject_unknown(&every, &format!("a {kind} state"), problems);

    let transition = if has_transition {
        read_transition(fields, problems, &mut resolve)
    } else {
        Transition::End
    };

    let input_path = read_query_path(fields, "InputPath", problems);
    let output_path = read_query_path(fields, "OutputPath", problems);

    let body = match kind {
        "Pass" => Body::Pass {
            parameters: read_template(fields, "Parameters", problems),
            result: fields.get("Result").cloned(),
            result_path: read_result_path(fields, problems),
        },
        "Task" => parse_task(fields, problems, &mut resolve),
        "Choice" => parse_choice(fields, problems, &mut resolve),
        "Wait" => Body::Wait(read_wait(fields, problems)?),
        "Succeed" => Body::Succeed,
        "Fail" => Body::Fail {
            error: read_dynamic(fields, "Error", "ErrorPath", problems),
            cause: read_dynamic(fields, "Cause", "CausePath", problems),
        },
        "Parallel" => parse_parallel(fields, problems, names, &mut resolve),
        "Map" => parse_map(fields, problems, names, &mut resolve)?,
        _ => return None,
    };
    Some(State {
        name: name.to_owned(),
        input_path,
        output_path,
        transition,
        body,
    })
}

type Resolve<'r> = dyn FnMut(&str, String, &mut Problems) -> Option<usize> + 'r;

/// `Next` or `"End": true`, exactly one of them.
fn read_transition(fields: Fields<'_>, problems: &mut Problems, resolve: &mut Resolve<'_>) -> Transition {
    let next = fields.string("Next", problems);
    let end = match fields.get("End") {
        None => false,
        Some(Value::Bool(end)) => *end,
        Some(_) => {
            fields.problem(problems, "End", "must be true or false");
            false
        }
    };
    match (next, end) {
        (Some(_), true) => {
            fields.problem(problems, "Next", "a state has either 'Next' or \"End\": true, not both");
            Transition::End
        }
        (Some(target), false) => match resolve(target, fields.at("Next"), problems) {
            Some(i) => Transition::Next(i),
            None => Transition::End,
        },
        (None, true) => Transition::End,
        (None, false) => {
            fields.problem(problems, "Next", "a non-terminal state needs 'Next' or \"End\": true");
            Transition::End
        }
    }
}

fn parse_task(fields: Fields<'_>, problems: &mut Problems, resolve: &mut Resolve<'_>) -> Body {
    let resource = fields
        .required_string("Resource", problems)
        .unwrap_or_default()
        .to_owned();
    // A Resource that is missing or not a string has been reported already; it is not also "not an ARN".
    if matches!(fields.get("Resource"), Some(Value::String(_))) && !resource.starts_with("arn:") {
        fields.problem(problems, "Resource", format!("'{resource}' is not an ARN (arn:…)"));
    }
    if resource.contains(".sync") || resource.ends_with(".waitForTaskToken") {
        fields.express_problem(
            problems,
            "Resource",
            format!("Express workflows support request/response tasks only, not '{resource}'"),
        );
    }
    // arn:aws:states:<region>:<account>:activity:<name>
    let mut arn = resource.split(':');
    if arn.nth(2) == Some("states") && arn.nth(2) == Some("activity") {
        fields.express_problem(
            problems,
            "Resource",
            format!("Express workflows do not support activities, such as '{resource}'"),
        );
    }
    let timeout = read_seconds(fields, "TimeoutSeconds", "TimeoutSecondsPath", 1, problems);
    // Heartbeats only apply to activities and callbacks, which request/response tasks never are; the field is
    // still validated as AWS does.
    let heartbeat = read_seconds(fields, "HeartbeatSeconds", "HeartbeatSecondsPath", 1, problems);
    if let (Some(Seconds::Fixed(timeout)), Some(Seconds::Fixed(heartbeat))) = (&timeout, &heartbeat) {
        if heartbeat >= timeout {
            fields.problem(problems, "HeartbeatSeconds", "must be smaller than TimeoutSeconds");
        }
    }
    Body::Task {
        resource,
        handling: read_handling(fields, problems, resolve),
        timeout,
    }
}

fn parse_choice(fields: Fields<'_>, problems: &mut Problems, resolve: &mut Resolve<'_>) -> Body {
    let mut choices = Vec::new();
    match fields.array("Choices", problems) {
        None if !fields.has("Choices") => fields.problem(problems, "Choices", "is required"),
        None => {}
        Some(items) if items.is_empty() => fields.problem(problems, "Choices", "must have at least one rule"),
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let rule_at = fields.at(&format!("Choices[{i}]"));
                let Some(rule_fields) = Fields::new(item, &rule_at, fields.state, problems) else {
                    continue;
                };
                let next = match rule_fields.required_string("Next", problems) {
                    Some(target) => resolve(target, rule_fields.at("Next"), problems),
                    None => None,
                };
                if let (Some(rule), Some(next)) = (parse_rule(rule_fields, true, problems), next) {
                    choices.push((rule, next));
                }
            }
        }
    }
    let default = fields
        .string("Default", problems)
        .and_then(|target| resolve(target, fields.at("Default"), problems));
    Body::Choice { choices, default }
}

fn parse_parallel(
    fields: Fields<'_>,
    problems: &mut Problems,
    names: &mut HashSet<String>,
    resolve: &mut Resolve<'_>,
) -> Body {
    let mut branches = Vec::new();
    match fields.array("Branches", problems) {
        None if !fields.has("Branches") => fields.problem(problems, "Branches", "is required"),
        None => {}
        Some(items) if items.is_empty() => fields.problem(problems, "Branches", "must have at least one branch"),
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let branch_at = fields.at(&format!("Branches[{i}]"));
                let Some(branch) = Fields::new(item, &branch_at, fields.state, problems) else {
                    continue;
                };
                branch.reject_unknown(&["StartAt", "States", "Comment"], "a Parallel branch", problems);
                if let Some(program) = parse_program(branch, problems, names) {
                    branches.push(program);
                }
            }
        }
    }
    Body::Parallel {
        branches,
        handling: read_handling(fields, problems, resolve),
    }
}

fn parse_map(
    fields: Fields<'_>,
    problems: &mut Problems,
    names: &mut HashSet<String>,
    resolve: &mut Resolve<'_>,
) -> Option<Body> {
    let items_path = match fields.string("ItemsPath", problems) {
        None => Path::parse_reference("$").ok()?,
        // AWS lets ItemsPath, InputPath and OutputPath read the context object (`$$.`).
        Some(text) => match Path::parse_reference_in(text, true) {
            Ok(path) => path,
            Err(message) => {
                fields.problem(problems, "ItemsPath", message);
                return None;
            }
        },
    };
    if fields.has("ItemSelector") && fields.has("Parameters") {
        fields.problem(
            problems,
            "Parameters",
            "use either ItemSelector or its older name Parameters, not both",
        );
    }
    let item_selector =
        read_template(fields, "ItemSelector", problems).or_else(|| read_template(fields, "Parameters", problems));
    let processor_key = match (fields.has("ItemProcessor"), fields.has("Iterator")) {
        (true, true) => {
            fields.problem(
                problems,
                "Iterator",
                "use either ItemProcessor or its older name Iterator, not both",
            );
            return None;
        }
        (true, false) => "ItemProcessor",
        (false, true) => "Iterator",
        (false, false) => {
            fields.problem(problems, "ItemProcessor", "is required");
            return None;
        }
    };
    let processor_at = fields.at(processor_key);
    let processor_fields = Fields::new(fields.get(processor_key)?, &processor_at, fields.state, problems)?;
    if processor_key == "ItemProcessor" {
        processor_fields.reject_unknown(
            &["StartAt", "States", "Comment", "ProcessorConfig"],
            "an ItemProcessor",
            problems,
        );
        if let Some(config) = processor_fields.get("ProcessorConfig") {
            let config_at = processor_fields.at("ProcessorConfig");
            if let Some(config) = Fields::new(config, &config_at, fields.state, problems) {
                config.reject_unknown(&["Mode", "ExecutionType"], "a ProcessorConfig", problems);
                match config.string("Mode", problems) {
                    None | Some("INLINE") => {}
                    Some("DISTRIBUTED") => {
                        config.problem(problems, "Mode", "Distributed Map is not supported; only INLINE is")
                    }
                    Some(other) => config.problem(
                        problems,
                        "Mode",
                        format!("must be INLINE or DISTRIBUTED, not '{other}'"),
                    ),
                }
                if config.has("ExecutionType") {
                    config.problem(
                        problems,
                        "ExecutionType",
                        "belongs to Distributed Map, which is not supported",
                    );
                }
            }
        }
    } else {
        processor_fields.reject_unknown(&["StartAt", "States", "Comment"], "an Iterator", problems);
    }
    let processor = parse_program(processor_fields, problems, names);
    let max_concurrency =
        read_seconds(fields, "MaxConcurrency", "MaxConcurrencyPath", 0, problems).unwrap_or(Seconds::Fixed(0));
    let handling = read_handling(fields, problems, resolve);
    Some(Body::Map {
        items_path,
        item_selector,
        processor: Box::new(processor?),
        max_concurrency,
        handling,
    })
}

fn read_handling(fields: Fields<'_>, problems: &mut Problems, resolve: &mut Resolve<'_>) -> ResultHandling {
    ResultHandling {
        parameters: read_template(fields, "Parameters", problems),
        result_selector: read_template(fields, "ResultSelector", problems),
        result_path: read_result_path(fields, problems),
        retry: parse_retry(fields, problems),
        catch: parse_catch(fields, problems, resolve),
    }
}

/// InputPath/OutputPath: a JSONPath into the data, `$` when absent, `None` for null.
fn read_query_path(fields: Fields<'_>, key: &str, problems: &mut Problems) -> Option<Path> {
    let text = match fields.nullable_string(key, problems) {
        Some(None) => return None,
        Some(Some(text)) => text,
        None => "$",
    };
    match Path::parse(text, true) {
        Ok(path) => Some(path),
        Err(message) => {
            fields.problem(problems, key, message);
            Path::parse("$", false).ok()
        }
    }
}

fn read_result_path(fields: Fields<'_>, problems: &mut Problems) -> Option<Path> {
    let text = match fields.nullable_string("ResultPath", problems) {
        Some(None) => return None,
        Some(Some(text)) => text,
        None => "$",
    };
    match Path::parse_reference(text) {
        Ok(path) => Some(path),
        Err(message) => {
            fields.problem(problems, "ResultPath", message);
            None
        }
    }
}

fn read_template(fields: Fields<'_>, key: &str, problems: &mut Problems) -> Option<Template> {
    let value = fields.get(key)?;
    match Template::compile(value) {
        Ok(template) => Some(template),
        Err((inner, message)) => {
            fields.problem(problems, &format!("{key}.{inner}"), message);
            None
        }
    }
}

/// A number of seconds given either literally or by a reference path, not both.
fn read_seconds(fields: Fields<'_>, key: &str, path_key: &str, min: u64, problems: &mut Problems) -> Option<Seconds> {
    if fields.has(key) && fields.has(path_key) {
        fields.problem(problems, path_key, format!("use either {key} or {path_key}, not both"));
        return None;
    }
    if let Some(seconds) = fields.integer(key, min, problems) {
        return Some(Seconds::Fixed(seconds));
    }
    let text = fields.string(path_key, problems)?;
    match Path::parse_reference(text) {
        Ok(path) => Some(Seconds::Path(path)),
        Err(message) => {
            fields.problem(problems, path_key, message);
            None
        }
    }
}

/// The longest a Wait's `Seconds` may be, as Step Functions validates it (99,999,999 s, about
/// three years).
pub(crate) const MAX_WAIT_SECONDS: u64 = 99_999_999;

fn read_wait(fields: Fields<'_>, problems: &mut Problems) -> Option<WaitFor> {
    let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
        .into_iter()
        .filter(|key| fields.has(key))
        .collect();
    let [key] = present.as_slice() else {
        problems.push(
            fields.state,
            fields.at.to_owned(),
            "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath or TimestampPath",
        );
        return None;
    };
    match *key {
        "Seconds" => fields
            .integer_within("Seconds", 0, MAX_WAIT_SECONDS, problems)
            .map(WaitFor::Seconds),
        "Timestamp" => {
            let text = fields.string("Timestamp", problems)?;
            match parse_timestamp(text) {
                Some(time) => Some(WaitFor::Timestamp(time.with_timezone(&chrono::Utc))),
                None => {
                    fields.problem(
                        problems,
                        "Timestamp",
                        format!("'{text}' is not an RFC 3339 timestamp such as 2016-03-14T01:59:00Z"),
                    );
                    None
                }
            }
        }
        path_key => {
            let text = fields.string(path_key, problems)?;
            match Path::parse_reference(text) {
                Ok(path) if path_key == "SecondsPath" => Some(WaitFor::SecondsPath(path)),
                Ok(path) => Some(WaitFor::TimestampPath(path)),
                Err(message) => {
                    fields.problem(problems, path_key, message);
                    None
                }
            }
        }
    }
}

/// Fail's Error/Cause: a literal, or a path or intrinsic in ErrorPath/CausePath.
fn read_dynamic(fields: Fields<'_>, key: &str, path_key: &str, problems: &mut Problems) -> Option<Dynamic> {
    if fields.has(key) && fields.has(path_key) {
        fields.problem(problems, path_key, format!("use either {key} or {path_key}, not both"));
        return None;
    }
    if let Some(text) = fields.string(key, problems) {
        return Some(Dynamic::Literal(text.to_owned()));
    }
    let text = fields.string(path_key, problems)?;
    let parsed = if looks_like_intrinsic(text) {
        Intrinsic::parse(text).map(Dynamic::Call)
    } else {
        Path::parse_reference(text).map(Dynamic::Path)
    };
    match parsed {
        Ok(Dynamic::Call(call)) if !call.returns_text() => {
            fields.problem(
                problems,
                path_key,
                format!(
                    "'{text}' does not return a string: {path_key} may call {}",
                    Intrinsic::TEXT_FUNCTIONS
                ),
            );
            None
        }
        Ok(dynamic) => Some(dynamic),
        Err(message) => {
            fields.problem(problems, path_key, message);
            None
        }
    }
}

/// Validation entry point for tools: every problem, or none.
pub fn validate(value: &Value) -> Vec<Problem> {
    match StateMachine::from_value(value) {
        Ok(_) => Vec::new(),
        Err(error) => error.problems(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_refused_with_the_key_and_where_it_is() {
        // GIVEN a definition naming state B twice, and one naming a Pass state's Result twice
        let states = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","End":true},
"B":{"Type":"Fail","Error":"Oops"}}}"#;
        let fields = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Result":1,"Result":2,"End":true}}}"#;
        for (text, key, line, column) in [(states, "B", 2, 3), (fields, "Result", 1, 63)] {
            // WHEN each is read
            let error = StateMachine::from_json(text).map(|_| ()).unwrap_err();
            // THEN it is refused at the end of the second key, which the message names, rather than the last one winning
            assert_eq!(
                error.to_string(),
                format!(
                    "the definition is not valid JSON: the key `{key}` is given twice in one object \
                     at line {line} column {column}"
                )
            );
        }
    }

    #[test]
    fn an_express_problem_names_the_task_by_its_path_as_every_problem_does() {
        // GIVEN a .sync task at the top level and a .waitForTaskToken task inside a Map's item processor
        let machine = StateMachine::from_value(&serde_json::json!({
            "StartAt": "A",
            "States": {
                "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.sync", "Next": "M"},
                "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "W", "States": {
                    "W": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "End": true}
                }}}
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        // WHEN it is checked for Express
        let fields: Vec<String> = machine.express_problems().into_iter().map(|p| p.to_string()).collect();
        // THEN each problem is located from the root of the definition
        assert_eq!(
            fields,
            [
                "state 'A', field States.A.Resource: Express workflows support request/response tasks only, \
                 not 'arn:aws:states:::lambda:invoke.sync'",
                "state 'W', field States.M.ItemProcessor.States.W.Resource: Express workflows support \
                 request/response tasks only, not 'arn:aws:states:::sqs:sendMessage.waitForTaskToken'",
            ]
        );
    }

    #[test]
    fn a_state_named_by_a_refused_rule_or_catcher_is_not_also_unreachable() {
        // GIVEN a Choice rule and a Catcher refused for their own faults, and a state nothing names
        let definition = serde_json::json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": "1", "Next": "One"}],
                  "Default": "Other"},
            "One": {"Type": "Succeed"},
            "Other": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Catch": [{"ErrorEquals": "States.ALL", "Next": "Handler"}], "End": true},
            "Handler": {"Type": "Succeed"},
            "Orphan": {"Type": "Succeed"}
        }});
        // WHEN it is validated
        let problems: Vec<String> = validate(&definition).iter().map(ToString::to_string).collect();
        // THEN the two faults are reported, and only the state nothing names is unreachable
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[..2].iter().all(|p| !p.contains("unreachable")),
            "{problems:#?}"
        );
        assert_eq!(
            problems[2],
            "state 'Orphan', field States.Orphan: the state is unreachable from StartAt"
        );
    }

    #[test]
    fn an_activity_is_an_express_problem_and_a_lambda_is_not() {
        let task = |resource: &str| {
            StateMachine::from_value(&serde_json::json!({
                "StartAt": "A",
                "States": {"A": {"Type": "Task", "Resource": resource, "End": true}}
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let activity = task("arn:aws:states:us-east-1:123456789012:activity:Approve");
        let problems: Vec<String> = activity.express_problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "state 'A', field States.A.Resource: Express workflows do not support activities, such as \
              'arn:aws:states:us-east-1:123456789012:activity:Approve'"
            ]
        );
        assert!(task("arn:aws:lambda:us-east-1:123456789012:function:activity")
            .express_problems()
            .is_empty());
        assert!(task("arn:aws:states:::lambda:invoke").express_problems().is_empty());
    }

    #[test]
    fn a_wrong_field_is_reported_once() {
        // GIVEN a Task whose Resource is null, and Choice rules that nest a rule with its own Next
        let task =
            serde_json::json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": null, "End": true}}});
        let choice =
            |rule: Value| serde_json::json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [rule]}}});
        let nested = serde_json::json!({"Variable": "$.a", "IsNull": true, "Next": "C"});
        let not = choice(serde_json::json!({"Not": nested, "Next": "C"}));
        let and = choice(serde_json::json!({"And": [nested], "Next": "C"}));
        let nested_next = "a rule nested in And, Or or Not must not have 'Next'";
        for (definition, expected) in [
            (task, "state 'A', field States.A.Resource: must be a string".to_owned()),
            (
                not,
                format!("state 'C', field States.C.Choices[0].Not.Next: {nested_next}"),
            ),
            (
                and,
                format!("state 'C', field States.C.Choices[0].And[0].Next: {nested_next}"),
            ),
        ] {
            // WHEN each is validated
            let problems: Vec<String> = validate(&definition).iter().map(Problem::to_string).collect();
            // THEN its one problem is reported once, not again as a consequence of itself
            assert_eq!(problems, [expected]);
        }
    }
}
