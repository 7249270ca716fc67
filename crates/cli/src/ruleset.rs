//! `queuematch ruleset …`: rule-set validation for game designers.

use crate::source_map;
use clap::Subcommand;
use miette::{LabeledSpan, MietteDiagnostic, NamedSource, Report};
use queuematch_core::ruleset::RuleSetError;
use queuematch_core::RuleSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RulesetCommand {
    /// Check rule sets; print every error with the text around it, exit 1 if any is bad.
    Validate {
        /// Rule set files (JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run synthetic players through the matcher and through first-come-first-served; compare.
    Simulate(crate::simulate::SimulateArgs),
}

pub fn run(command: RulesetCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesetCommand::Validate { files } => validate(&files),
        RulesetCommand::Simulate(args) => crate::simulate::run(&args),
    }
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    // One error, one line: messages stay greppable in CI logs instead of wrapping at 80 columns.
    // The hook can only be set once; a second call changes nothing and is harmless.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let (mut bad, mut unreadable) = (0, 0);
    for file in files {
        // A file that cannot be read is no verdict on it, and no reason to leave the others unchecked.
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                unreadable += 1;
                eprintln!("error: cannot read {}: {e}", file.display());
                continue;
            }
        };
        match RuleSet::from_json_str(&text) {
            Ok(rule_set) => println!("{}: ok, queue `{}`", file.display(), rule_set.name),
            Err(errors) => {
                bad += 1;
                // Shown without a byte order mark: the mark has no width, so a caret drawn under a
                // line that has one lands a column early, and the locator of paths does not take
                // it. Errors' ranges are shifted to match.
                let shown = text.strip_prefix('\u{feff}').unwrap_or(&text);
                let mark = text.len() - shown.len();
                let mut located: Vec<_> = errors.iter().map(|e| (position(shown, mark, e), e)).collect();
                // Show errors in the order they appear in the file, as compilers do.
                located.sort_by_key(|(range, _)| range.as_ref().map(|r| r.start));
                for (range, error) in located {
                    eprintln!("{:?}", diagnostic(file, shown, error, range));
                }
                eprintln!(
                    "{}: {} error{}",
                    file.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(match (unreadable, bad) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::FAILURE,
        _ => ExitCode::from(2),
    })
}

/// The byte range of `text` an error is about: from its line and column for syntax errors, else its
/// path. `text` is the file's without its byte order mark, `mark` bytes long, which the columns of
/// the first line count.
fn position(text: &str, mark: usize, error: &RuleSetError) -> Option<std::ops::Range<usize>> {
    match error.position {
        Some((line, column)) => {
            let start: usize = text
                .split_inclusive('\n')
                .take(line.saturating_sub(1))
                .map(str::len)
                .sum();
            let column = if line == 1 { column.saturating_sub(mark) } else { column };
            let offset = (start + column.saturating_sub(1)).min(text.len().saturating_sub(1));
            Some(offset..offset + 1)
        }
        None => source_map::locate(text, &error.path),
    }
}

fn diagnostic(file: &Path, text: &str, error: &RuleSetError, range: Option<std::ops::Range<usize>>) -> Report {
    let title = match error.position {
        Some(_) => error.message.clone(),
        None => format!("{}: {}", error.path, error.message),
    };
    let mut diagnostic = MietteDiagnostic::new(title);
    if let Some(range) = range {
        diagnostic = diagnostic.with_label(LabeledSpan::at(range, "here"));
    }
    Report::new(diagnostic).with_source_code(NamedSource::new(file.display().to_string(), text.to_owned()))
}
