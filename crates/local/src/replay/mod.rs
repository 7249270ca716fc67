//! Replay: what happened, run again on the local stack.
//!
//! - [`fixtures`]: an AWS event of `tests/fixtures/<function>/` fed to the handler of its function,
//!   after its `given` state is seeded, and its response compared with the expected one. The tests
//!   and `queuematch replay FIXTURE|DIR` run this same code.
//! - [`trace`]: live traffic recorded from `queuematch dev` (`queuematch record`), one JSON record
//!   a line, replayed on virtual time through admission and the matcher's rounds into a match log
//!   that is the same, byte for byte, on every run (`queuematch replay --trace`).
//!
//! Both read files written by people and by other versions of the tools, so every parser here
//! names the file, the line or field, and what is wrong, and never panics.

pub mod fixtures;
pub mod trace;

use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{PortError, Workflows};
use serde_json::Value;

/// Starts nothing, as a Step Functions API that accepts every start: a replay is about what the
/// handlers and the rounds answer, not about the workflows they start (the engine's adapter is
/// [`crate::LocalWorkflows`]). The execution id is the one Step Functions would give, from the names.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptingWorkflows;

#[async_trait::async_trait]
impl Workflows for AcceptingWorkflows {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!(
            "arn:aws:states:local:000000000000:execution:{definition}:{name}"
        )))
    }
}

/// What is wrong with a piece of JSON, and where: its line and column, and for a value of the wrong
/// shape, the field, as a JSON path (`$.admitted[0].request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct JsonError {
    pub line: usize,
    pub column: usize,
    /// `None` when the text is not JSON at all.
    pub field: Option<String>,
    pub message: String,
}

impl JsonError {
    /// What is wrong, with the field, without the position: for a line of JSON Lines, whose
    /// position is the line's own.
    pub fn what(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// `text` read as a `T`, or what is wrong with it and where. A key given twice in an object is
/// refused whatever `T` is: read as a `Value`, the last one would silently win.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    queuematch_core::json::from_str_unique(text).map_err(|e| json_error(text, None, e))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        json_error(text, Some(path), e.into_inner())
    })?;
    // Trailing text after the value is an error too, as `serde_json::from_str` has it.
    deserializer.end().map_err(|e| json_error(text, None, e))?;
    Ok(value)
}

/// `value` read as a `T`, or what is wrong with it, named by its field. A `Value` keeps no position,
/// so the error's line and column are 0: the caller knows where the value came from.
pub fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        json_error("", Some(path), e.into_inner())
    })
}

/// `inner`, an error reading `text` (empty when it was read from a `Value`, which keeps no position).
fn json_error(text: &str, path: Option<String>, inner: serde_json::Error) -> JsonError {
    // serde_json ends its message with the position, which is given separately here.
    let message = inner.to_string();
    let (line, column) = queuematch_core::json::position(text, &inner);
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let message = message.strip_suffix(&position).unwrap_or(&message).to_owned();
    let field = match (inner.classify(), path) {
        (serde_json::error::Category::Data, Some(path)) if path != "." => Some(format!("$.{path}")),
        (serde_json::error::Category::Data, _) => Some("$".to_owned()),
        _ => None,
    };
    JsonError {
        line,
        column,
        field,
        message,
    }
}

/// The differences between `got` and `expected`, one a line, each at its JSON path; empty when they
/// are equal.
pub fn differences(got: &Value, expected: &Value) -> Vec<String> {
    let mut found = Vec::new();
    diff_at("$", got, expected, &mut found);
    found
}

fn diff_at(path: &str, got: &Value, expected: &Value, found: &mut Vec<String>) {
    match (got, expected) {
        (Value::Object(g), Value::Object(e)) => {
            // In key order, whatever order the maps keep (serde_json's `preserve_order` is on in
            // some builds and not in others), so that a report reads the same everywhere.
            let mut expected_keys: Vec<(&String, &Value)> = e.iter().collect();
            expected_keys.sort_unstable_by_key(|&(key, _)| key);
            for (key, e_value) in expected_keys {
                let at = format!("{path}.{key}");
                match g.get(key) {
                    Some(g_value) => diff_at(&at, g_value, e_value, found),
                    None => found.push(format!("{at}: missing; expected {e_value}")),
                }
            }
            let mut unexpected: Vec<(&String, &Value)> = g.iter().filter(|(k, _)| !e.contains_key(*k)).collect();
            unexpected.sort_unstable_by_key(|&(key, _)| key);
            for (key, g_value) in unexpected {
                found.push(format!("{path}.{key}: not expected; got {g_value}"));
            }
        }
        (Value::Array(g), Value::Array(e)) => {
            for (i, e_value) in e.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match g.get(i) {
                    Some(g_value) => diff_at(&at, g_value, e_value, found),
                    None => found.push(format!("{at}: missing; expected {e_value}")),
                }
            }
            for (i, g_value) in g.iter().enumerate().skip(e.len()) {
                found.push(format!("{path}[{i}]: not expected; got {g_value}"));
            }
        }
        _ if got != expected => found.push(format!("{path}: expected {expected}, got {got}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_each_path() {
        let got = json!({"statusCode": 200, "body": {"status": "PLACING", "extra": 1}, "list": [1, 2, 3]});
        let expected = json!({"statusCode": 200, "body": {"status": "SEARCHING", "reason": "x"}, "list": [1, 2]});
        assert_eq!(
            differences(&got, &expected),
            vec![
                "$.body.reason: missing; expected \"x\"",
                "$.body.status: expected \"SEARCHING\", got \"PLACING\"",
                "$.body.extra: not expected; got 1",
                "$.list[2]: not expected; got 3",
            ]
        );
        assert!(differences(&expected, &expected).is_empty());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        at: u64,
    }

    #[test]
    fn a_bad_value_is_named_by_its_path_and_position() {
        let error = parse_json::<Shape>("{\"items\": [{\"at\": 1}, {\"at\": \"soon\"}]}").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("$.items[1].at"));
        assert_eq!((error.line, error.column), (1, 35));
        assert_eq!(error.message, "invalid type: string \"soon\", expected u64");
        let error = parse_json::<Shape>("{\"items\": [").unwrap_err();
        assert_eq!(error.field, None);
        assert_eq!(error.to_string(), "1:11: EOF while parsing a list");
        // At the end of a text that ends a line, serde_json says column 0: the line break is named.
        let error = parse_json::<Shape>("{\"items\": [\n").unwrap_err();
        assert_eq!(error.to_string(), "1:12: EOF while parsing a list");
        assert_eq!(
            parse_json::<Shape>("").unwrap_err().to_string(),
            "1:1: EOF while parsing a value"
        );
        assert!(parse_json::<Shape>("{\"items\": []} trailing").is_err());
        let good: Shape = parse_json("{\"items\": [{\"at\": 7}]}").unwrap();
        assert_eq!(good.items[0].at, 7);
    }
}
