//! Loading the rule sets of a directory: the queues a service serves.

use anyhow::Context;
use queuematch_core::RuleSet;
use std::path::Path;

/// Every `*.json` rule set in `dir`, sorted by queue name. Any bad one fails the whole load, with
/// every error of every file, so a service never starts with half its queues.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<RuleSet>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        // A relative directory (the default, `examples/rulesets`) is read from where the command
        // runs: say where that is.
        let here = match std::env::current_dir() {
            Ok(cwd) if dir.is_relative() => format!(" (relative to {})", cwd.display()),
            _ => String::new(),
        };
        format!(
            "cannot read rule sets from {}{here}; --rulesets DIR names them",
            dir.display()
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut rule_sets: Vec<RuleSet> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        match RuleSet::from_json_str(&text) {
            Ok(rs) if rule_sets.iter().any(|other| other.name == rs.name) => {
                problems.push(format!("{}: queue `{}` is defined twice", file.display(), rs.name));
            }
            Ok(rs) => rule_sets.push(rs),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "bad rule sets in {}:\n{}",
        dir.display(),
        problems.join("\n")
    );
    anyhow::ensure!(!rule_sets.is_empty(), "no rule sets (*.json) in {}", dir.display());
    rule_sets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rule_sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_relative_directory_says_where_it_was_looked_for_and_how_to_name_another() {
        let error = load_dir(Path::new("no-such-rulesets-dir")).unwrap_err();
        let message = format!("{error:#}");
        let cwd = std::env::current_dir().unwrap();
        assert!(
            message.starts_with(&format!(
                "cannot read rule sets from no-such-rulesets-dir (relative to {}); --rulesets DIR names them:",
                cwd.display()
            )),
            "{message}"
        );
    }
}
