//! The rule sets the functions serve, embedded at build time from `examples/rulesets/` (see
//! `build.rs`): the same files the REST API's ticket model takes its queue enum from.

use queuematch_core::usecases::Queues;
use queuematch_core::RuleSet;

include!(concat!(env!("OUT_DIR"), "/rule_sets.rs"));

/// The embedded rule sets, parsed; the first bad one is named with its error.
pub fn queues() -> Result<Queues, String> {
    let rule_sets = RULE_SETS
        .iter()
        .map(|(file, text)| RuleSet::from_json_str(text).map_err(|e| format!("embedded rule set {file}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Queues::new(rule_sets))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_embedded_rule_set_parses_and_names_its_queue() {
        let queues = super::queues().unwrap();
        for name in ["battle-royale-60", "coop-4", "ranked-1v1", "ranked-5v5"] {
            assert!(queues.get(name).is_some(), "{name}");
        }
    }
}
