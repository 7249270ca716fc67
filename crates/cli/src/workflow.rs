//! `queuematch workflow …`: validate and run Step Functions definitions on the embedded ASL engine.
//!
//! `run` has no AWS to call, so Task states are answered from a script (`--task-results FILE`, see
//! `queuematch_asl::ScriptedTasks`): results or errors per resource ARN or Lambda function name. A task with
//! no scripted answer fails as AWS would fail a missing function (`Lambda.ResourceNotFoundException`) or, for
//! other resources, with `States.TaskFailed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use queuematch_asl::{
    run_in_real_time, run_in_virtual_time, Clock, Engine, ExecutionKind, ExecutionOptions, ScriptedTasks, StateMachine,
};
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a definition as Step Functions would; print every problem and exit 1 if there is any.
    Validate {
        /// The definition (an *.asl.json file).
        file: PathBuf,
        /// A DefinitionSubstitutions value replacing `${NAME}`; repeat for each.
        #[arg(long = "sub", value_name = "NAME=VALUE", value_parser = parse_substitution)]
        substitutions: Vec<(String, String)>,
        /// The workflow type: Express also refuses `.sync` and `.waitForTaskToken` tasks.
        #[arg(long = "type", value_enum, default_value_t = WorkflowType::Express)]
        workflow_type: WorkflowType,
    },
    /// Run a definition locally: print its output as JSON and exit 0, or print {"error", "cause"} and exit 1.
    Run {
        /// The definition (an *.asl.json file).
        file: PathBuf,
        /// The execution input, as JSON.
        #[arg(long, default_value = "{}", conflicts_with = "input_file")]
        input: String,
        /// The execution input, read from a JSON file.
        #[arg(long, value_name = "FILE")]
        input_file: Option<PathBuf>,
        /// A DefinitionSubstitutions value replacing `${NAME}`; repeat for each.
        #[arg(long = "sub", value_name = "NAME=VALUE", value_parser = parse_substitution)]
        substitutions: Vec<(String, String)>,
        /// Scripted task answers: {"RESOURCE": [{"Return": …} | {"Throw": {"Error", "Cause"}} | {"Echo": true},
        /// …]}, RESOURCE being a resource ARN or a function name; successive calls take successive
        /// answers, the last one repeating.
        #[arg(long, value_name = "FILE")]
        task_results: Option<PathBuf>,
        /// Run on virtual time: Waits, retry intervals and timeouts pass instantly, in the same order.
        #[arg(long)]
        virtual_time: bool,
        /// Print the execution history (GetExecutionHistory's shape) on stderr.
        #[arg(long)]
        history: bool,
        /// The workflow type: Express refuses `.sync` and `.waitForTaskToken` tasks, and its executions fail
        /// with States.Timeout after five minutes.
        #[arg(long = "type", value_enum, default_value_t = WorkflowType::Express)]
        workflow_type: WorkflowType,
        /// The execution's name; a UUID by default.
        #[arg(long)]
        name: Option<String>,
        /// Seed for jitter, States.MathRandom and States.UUID, to reproduce a run.
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkflowType {
    Standard,
    Express,
}

pub fn run(command: WorkflowCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkflowCommand::Validate {
            file,
            substitutions,
            workflow_type,
        } => validate(&file, &substitutions.into_iter().collect(), workflow_type),
        WorkflowCommand::Run {
            file,
            input,
            input_file,
            substitutions,
            task_results,
            virtual_time,
            history,
            workflow_type,
            name,
            seed,
        } => {
            let substitutions = substitutions.into_iter().collect();
            let Some(machine) = load(&file, &substitutions, workflow_type)? else {
                return Ok(ExitCode::FAILURE);
            };
            let input: Value = match input_file {
                Some(path) => serde_json::from_str(&read(&path)?)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?,
                None => serde_json::from_str(&input).context("--input is not valid JSON")?,
            };
            let tasks = match task_results {
                Some(path) => {
                    let script: Value = serde_json::from_str(&read(&path)?)
                        .with_context(|| format!("{} is not valid JSON", path.display()))?;
                    ScriptedTasks::from_json(&script).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => ScriptedTasks::default(),
            };
            let options = ExecutionOptions {
                name,
                state_machine_name: machine_name(&file),
                kind: match workflow_type {
                    WorkflowType::Standard => ExecutionKind::Standard,
                    WorkflowType::Express => ExecutionKind::Express,
                },
                clock: if virtual_time {
                    Clock::virtual_from_now()
                } else {
                    Clock::System
                },
                seed,
                record_history: history,
                ..ExecutionOptions::default()
            };
            execute(&machine, input, Arc::new(tasks), options, virtual_time, history)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_substitution(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

/// Reads and validates a definition as a `workflow_type` state machine; prints its problems and returns `None`
/// when it is invalid. What only Express refuses (a `.sync` task) is one more problem of the definition, found
/// before anything runs, as Step Functions refuses it when the state machine is created.
fn load(
    file: &Path,
    substitutions: &HashMap<String, String>,
    workflow_type: WorkflowType,
) -> anyhow::Result<Option<StateMachine>> {
    let text = read(file)?;
    let problems = match StateMachine::from_json_with_substitutions(&text, substitutions) {
        Ok(machine) if workflow_type == WorkflowType::Standard => return Ok(Some(machine)),
        Ok(machine) => match machine.express_problems() {
            problems if problems.is_empty() => return Ok(Some(machine)),
            problems => problems,
        },
        Err(error) => error.problems(),
    };
    for problem in &problems {
        eprintln!("{}: {problem}", file.display());
    }
    eprintln!(
        "{}: {} problem{}",
        file.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    Ok(None)
}

fn validate(
    file: &Path,
    substitutions: &HashMap<String, String>,
    workflow_type: WorkflowType,
) -> anyhow::Result<ExitCode> {
    let Some(machine) = load(file, substitutions, workflow_type)? else {
        return Ok(ExitCode::FAILURE);
    };
    println!("{}: ok, {} states", file.display(), machine.state_count());
    Ok(ExitCode::SUCCESS)
}

fn execute(
    machine: &StateMachine,
    input: Value,
    tasks: Arc<ScriptedTasks>,
    options: ExecutionOptions,
    virtual_time: bool,
    history: bool,
) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(tasks);
    let run = engine.execute(machine, input, options);
    let execution = if virtual_time {
        run_in_virtual_time(run)
    } else {
        run_in_real_time(run)
    }
    .context("cannot start the async runtime")?;
    if history {
        eprintln!("{}", serde_json::to_string_pretty(&execution.history_json())?);
    }
    match execution.result() {
        Ok(output) => {
            println!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            let error = if failure.error.is_empty() {
                Value::Null
            } else {
                Value::from(failure.error.clone())
            };
            println!("{}", json!({"error": error, "cause": failure.cause}));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The state machine's name in ARNs: the file name without `.asl.json`.
fn machine_name(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("StateMachine");
    let name = name
        .strip_suffix(".asl.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name);
    if name.is_empty() {
        "StateMachine".to_owned()
    } else {
        name.to_owned()
    }
}
