//! Retry and Catch: which errors they match, and the retry schedule.
//!
//! Matching follows AWS: the first retrier (or catcher) whose `ErrorEquals` names the error wins.
//! `States.ALL` matches every error except `States.Runtime` and `States.DataLimitExceeded`; `States.TaskFailed`
//! matches every error except those and `States.Timeout`; `States.Runtime` is never matched at all.

use std::time::Duration;

use rand::Rng;

use crate::error::names;
use crate::path::Path;
use crate::reader::{Fields, Problems};

/// One entry of a state's `Retry`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub full_jitter: bool,
}

impl Retrier {
    /// The delay before retry number `attempt` (0 for the first retry), before jitter:
    /// `IntervalSeconds × BackoffRate^attempt`, capped at `MaxDelaySeconds`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let seconds = self.interval_seconds as f64 * self.backoff_rate.powi(attempt.min(i32::MAX as u32) as i32);
        let capped = match self.max_delay_seconds {
            Some(max) => seconds.min(max as f64),
            None => seconds,
        };
        // An absurd backoff would overflow Duration; a year is longer than any execution may run.
        Duration::from_secs_f64(capped.clamp(0.0, 365.0 * 24.0 * 3600.0))
    }

    /// The delay actually waited: with `JitterStrategy: FULL`, uniform between zero and the base delay.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(attempt);
        if self.full_jitter && !base.is_zero() {
            base.mul_f64(rng.gen_range(0.0..=1.0))
        } else {
            base
        }
    }
}

/// One entry of a state's `Catch`.
#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) error_equals: Vec<String>,
    /// `None` discards the error output (`"ResultPath": null`).
    pub(crate) result_path: Option<Path>,
    pub(crate) next: usize,
}

/// Whether an `ErrorEquals` list matches `error`.
pub(crate) fn error_matches(error_equals: &[String], error: &str) -> bool {
    if error == names::RUNTIME {
        return false;
    }
    error_equals.iter().any(|name| {
        name == error
            || (name == names::ALL && error != names::DATA_LIMIT_EXCEEDED)
            || (name == names::TASK_FAILED && error != names::TIMEOUT && error != names::DATA_LIMIT_EXCEEDED)
    })
}

/// Reads `ErrorEquals`, checking that `States.ALL` stands alone and that `States.*` names are known.
fn parse_error_equals(fields: Fields<'_>, problems: &mut Problems) -> Option<Vec<String>> {
    if !fields.has("ErrorEquals") {
        fields.problem(problems, "ErrorEquals", "is required");
        return None;
    }
    let items = fields.array("ErrorEquals", problems)?;
    if items.is_empty() {
        fields.problem(problems, "ErrorEquals", "must list at least one error name");
        return None;
    }
    let mut names_out = Vec::with_capacity(items.len());
    for item in items {
        let Some(name) = item.as_str() else {
            fields.problem(problems, "ErrorEquals", "must list error names as strings");
            return None;
        };
        if name.starts_with("States.") && !names::KNOWN.contains(&name) {
            fields.problem(
                problems,
                "ErrorEquals",
                format!("'{name}' is not a predefined States error"),
            );
        }
        names_out.push(name.to_owned());
    }
    if names_out.len() > 1 && names_out.iter().any(|name| name == names::ALL) {
        fields.problem(
            problems,
            "ErrorEquals",
            "States.ALL must appear alone in its ErrorEquals",
        );
    }
    Some(names_out)
}

/// Checks that only the last entry of a Retry or Catch list uses `States.ALL`.
fn check_all_is_last(lists: &[Vec<String>], field: &str, fields: Fields<'_>, problems: &mut Problems) {
    let count = lists.len();
    for (i, list) in lists.iter().enumerate() {
        if i + 1 < count && list.iter().any(|name| name == names::ALL) {
            fields.problem(
                problems,
                &format!("{field}[{i}].ErrorEquals"),
                format!("States.ALL must be in the last {field} entry"),
            );
        }
    }
}

pub(crate) fn parse_retry(state: Fields<'_>, problems: &mut Problems) -> Vec<Retrier> {
    let Some(items) = state.array("Retry", problems) else {
        return Vec::new();
    };
    let mut retriers = Vec::with_capacity(items.len());
    let mut lists = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = state.at(&format!("Retry[{i}]"));
        let Some(fields) = Fields::new(item, &at, state.state, problems) else {
            continue;
        };
        fields.reject_unknown(
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
            "a Retrier",
            problems,
        );
        let error_equals = parse_error_equals(fields, problems);
        let interval_seconds = fields.integer("IntervalSeconds", 1, problems).unwrap_or(1);
        let max_attempts = fields.integer("MaxAttempts", 0, problems).unwrap_or(3);
        let max_attempts = u32::try_from(max_attempts).unwrap_or(u32::MAX);
        let backoff_rate = match fields.number("BackoffRate", problems) {
            Some(rate) if rate < 1.0 => {
                fields.problem(problems, "BackoffRate", "must be at least 1.0");
                1.0
            }
            Some(rate) => rate,
            None => 2.0,
        };
        let max_delay_seconds = fields.integer("MaxDelaySeconds", 1, problems);
        let full_jitter = match fields.string("JitterStrategy", problems) {
            None | Some("NONE") => false,
            Some("FULL") => true,
            Some(other) => {
                fields.problem(
                    problems,
                    "JitterStrategy",
                    format!("must be FULL or NONE, not '{other}'"),
                );
                false
            }
        };
        if let Some(error_equals) = error_equals {
            lists.push(error_equals.clone());
            retriers.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                full_jitter,
            });
        }
    }
    check_all_is_last(&lists, "Retry", state, problems);
    retriers
}

/// Reads `Catch`; `resolve` turns a `Next` name into a state index (recording a problem when it names nothing).
pub(crate) fn parse_catch(
    state: Fields<'_>,
    problems: &mut Problems,
    resolve: &mut dyn FnMut(&str, String, &mut Problems) -> Option<usize>,
) -> Vec<Catcher> {
    let Some(items) = state.array("Catch", problems) else {
        return Vec::new();
    };
    let mut catchers = Vec::with_capacity(items.len());
    let mut lists = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = state.at(&format!("Catch[{i}]"));
        let Some(fields) = Fields::new(item, &at, state.state, problems) else {
            continue;
        };
        fields.reject_unknown(&["ErrorEquals", "Next", "ResultPath", "Comment"], "a Catcher", problems);
        let error_equals = parse_error_equals(fields, problems);
        let next_name = fields.required_string("Next", problems);
        let next = next_name.and_then(|name| resolve(name, fields.at("Next"), problems));
        let result_path = match fields.nullable_string("ResultPath", problems) {
            None => Path::parse_reference("$").ok(),
            Some(None) => None,
            Some(Some(text)) => match Path::parse_reference(text) {
                Ok(path) => Some(path),
                Err(message) => {
                    fields.problem(problems, "ResultPath", message);
                    None
                }
            },
        };
        if let (Some(error_equals), Some(next)) = (error_equals, next) {
            lists.push(error_equals.clone());
            catchers.push(Catcher {
                error_equals,
                result_path,
                next,
            });
        }
    }
    check_all_is_last(&lists, "Catch", state, problems);
    catchers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrier(interval: u64, backoff: f64, max_delay: Option<u64>) -> Retrier {
        Retrier {
            error_equals: vec![names::ALL.into()],
            interval_seconds: interval,
            max_attempts: 10,
            backoff_rate: backoff,
            max_delay_seconds: max_delay,
            full_jitter: false,
        }
    }

    #[test]
    fn backoff_grows_geometrically_and_is_capped() {
        let r = retrier(2, 3.0, Some(30));
        let delays: Vec<u64> = (0..5).map(|n| r.base_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![2, 6, 18, 30, 30]);
    }

    #[test]
    fn wildcards_follow_aws_precedence() {
        let all = vec![names::ALL.to_owned()];
        let task_failed = vec![names::TASK_FAILED.to_owned()];
        assert!(error_matches(&all, "Custom"));
        assert!(error_matches(&all, names::TIMEOUT));
        assert!(!error_matches(&all, names::RUNTIME));
        assert!(!error_matches(&all, names::DATA_LIMIT_EXCEEDED));
        assert!(error_matches(&task_failed, "Lambda.ServiceException"));
        assert!(!error_matches(&task_failed, names::TIMEOUT));
    }
}
