//! `queuematch`: the command-line tool for designers, developers and operators.

mod bots;
mod client;
mod dev;
mod dev_home;
mod ops;
mod record;
mod replay;
mod ruleset;
mod rulesets;
mod schema;
mod simulate;
mod source_map;
mod token;
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
    /// Print schemas generated from the rule sets.
    Schema {
        #[command(subcommand)]
        command: schema::SchemaCommand,
    },
    /// Run the whole service on 127.0.0.1: API, push, matcher, workflows and game servers.
    Dev(dev::DevArgs),
    /// Ask for a match as a player; with --wait, follow it to the end over push.
    Submit(client::SubmitArgs),
    /// Show a ticket.
    Status(client::TicketArgs),
    /// Cancel a ticket.
    Cancel(client::TicketArgs),
    /// Accept the match of a ticket that requires acceptance (for the caller only).
    Accept(client::TicketArgs),
    /// Reject the match of a ticket that requires acceptance; the ticket is then cancelled.
    Decline(client::TicketArgs),
    /// Simulated players with hidden skills: queue, play on the game servers, queue again; then rank
    /// their ratings against their skills.
    Bots(bots::BotsArgs),
    /// Print every event of a player as it is pushed.
    Watch(client::WatchArgs),
    /// Mint a dev token: for a player, a party member, or an operator.
    Token(token::TokenArgs),
    /// Replay fixtures through their handlers, or a recorded trace through the matcher on virtual time.
    Replay(replay::ReplayArgs),
    /// Record the live traffic of a running `queuematch dev` to a trace.
    Record(record::RecordArgs),
    /// The operators' views as tables: queues, sessions and metrics; one session's timeline; histograms; the DLQ.
    Ops(ops::OpsArgs),
    /// Work with Step Functions workflows: validate and run them on the embedded engine.
    Workflow {
        #[command(subcommand)]
        command: workflow::WorkflowCommand,
    },
}

fn main() -> ExitCode {
    quiet_on_a_closed_stdout();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ruleset { command } => ruleset::run(command),
        Command::Schema { command } => schema::run(command),
        Command::Token(args) => token::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Submit(args) => client::submit(args),
        Command::Status(args) => client::status(args),
        Command::Cancel(args) => client::cancel(args),
        Command::Accept(args) => client::accept(args),
        Command::Decline(args) => client::decline(args),
        Command::Watch(args) => client::watch(args),
        Command::Bots(args) => bots::run(args),
        Command::Workflow { command } => workflow::run(command),
        Command::Replay(args) => replay::run(args),
        Command::Record(args) => record::run(args),
        Command::Ops(args) => ops::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The exit status of a command whose reader went away: a process killed by SIGPIPE, as shells
/// report one (128 + 13).
const CLOSED_STDOUT: i32 = 141;

/// `queuematch … | head` stops reading early. Rust ignores SIGPIPE, so the next `print!` fails with
/// EPIPE and panics ("failed printing to stdout: Broken pipe"), backtrace and all; this ends the
/// process quietly instead, as a command killed by SIGPIPE would. Any other panic is reported as
/// before.
fn quiet_on_a_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_STDOUT);
        }
        report(info);
    }));
}

/// The error and its causes, as `{:#}` joins them, but for a cause whose words the message before
/// it already holds: many errors say their cause themselves ("cannot read F: No such file …"),
/// and it was printed twice.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::message;

    /// An error that says its cause, and gives it as its source too.
    #[derive(Debug)]
    struct Saying {
        source: std::io::Error,
    }

    impl std::fmt::Display for Saying {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read f: {}", self.source)
        }
    }

    impl std::error::Error for Saying {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A cause the error already says is not repeated …
        assert_eq!(message(&Saying { source: io() }.into()), "cannot read f: no such file");
        // … one it does not say is added, as `{:#}` does.
        let wrapped = anyhow::Error::new(io()).context("loading the rule sets");
        assert_eq!(message(&wrapped), "loading the rule sets: no such file");
    }
}
