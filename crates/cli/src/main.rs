//! `queuematch`: the command-line tool for designers, developers and operators.

mod ruleset;
mod source_map;
mod workflow;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "queuematch", version, about = "Queue-buffered matchmaking and game sessions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with rule sets: validate them before shipping.
    Ruleset {
        #[command(subcommand)]
        command: ruleset::RulesetCommand,
    },
    /// Work with Step Functions workflows: validate and run them on the embedded engine.
    Workflow {
        #[command(subcommand)]
        command: workflow::WorkflowCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ruleset { command } => ruleset::run(command),
        Command::Workflow { command } => workflow::run(command),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
