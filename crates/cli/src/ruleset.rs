//! `queuematch ruleset …`: rule-set validation for game designers.

use anyhow::Context;
use clap::Subcommand;
use queuematch_core::RuleSet;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RulesetCommand {
    /// Check rule sets; print every error with the text around it, exit 1 if any is bad.
    Validate {
        /// Rule set files (JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: RulesetCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesetCommand::Validate { files } => validate(&files),
    }
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        match RuleSet::from_json_str(&text) {
            Ok(rule_set) => println!("{}: ok ({})", file.display(), rule_set.name),
            Err(errors) => {
                bad += 1;
                eprintln!("{}: {errors}", file.display());
            }
        }
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
