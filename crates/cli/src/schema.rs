//! `queuematch schema …`: schemas generated from the rule sets, for the edge to validate with.

use crate::rulesets;
use clap::Subcommand;
use queuematch_core::ticket_request::{self, DEFAULT_MAX_PLAYERS_PER_TICKET};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print the JSON Schema of POST /v1/tickets, its queue enum taken from the rule sets.
    TicketRequest {
        /// The directory of rule sets the service serves.
        #[arg(long, default_value = "examples/rulesets")]
        rulesets: PathBuf,
        /// The most players one ticket may hold: 1 to 200 (FlexMatch's most players in a match).
        #[arg(long, default_value_t = DEFAULT_MAX_PLAYERS_PER_TICKET as u16, value_parser = clap::value_parser!(u16).range(1..=200))]
        max_players: u16,
    },
}

pub fn run(command: SchemaCommand) -> anyhow::Result<ExitCode> {
    match command {
        SchemaCommand::TicketRequest { rulesets, max_players } => {
            let rule_sets = rulesets::load_dir(&rulesets)?;
            let queues: Vec<&str> = rule_sets.iter().map(|r| r.name.as_str()).collect();
            let schema = ticket_request::json_schema(&queues, usize::from(max_players));
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
