//! Strict reading of definition objects: every field is type-checked, unknown fields are reported, and every
//! problem is recorded with the state and the field it concerns instead of stopping at the first one.

use serde_json::{Map, Value};

use crate::error::Problem;

/// The problems found so far in a definition.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
    /// What only an Express workflow refuses (a `.sync` task, for one): kept apart, since the same definition
    /// is valid as Standard, but found here, where each field's path is known.
    pub(crate) express: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, state: Option<&str>, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            state: state.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// One JSON object of the definition, read field by field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) map: &'a Map<String, Value>,
    pub(crate) at: &'a str,
    pub(crate) state: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Reads `value` as an object; records a problem and returns `None` when it is not one.
    pub(crate) fn new(
        value: &'a Value,
        at: &'a str,
        state: Option<&'a str>,
        problems: &mut Problems,
    ) -> Option<Fields<'a>> {
        match value {
            Value::Object(map) => Some(Fields { map, at, state }),
            _ => {
                problems.push(state, at, "must be a JSON object");
                None
            }
        }
    }

    /// The location of `key` below this object.
    pub(crate) fn at(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub(crate) fn problem(&self, problems: &mut Problems, key: &str, message: impl Into<String>) {
        problems.push(self.state, self.at(key), message);
    }

    /// A problem with `key` that only keeps the definition from running as an Express workflow.
    pub(crate) fn express_problem(&self, problems: &mut Problems, key: &str, message: impl Into<String>) {
        problems.express.push(Problem {
            state: self.state.map(str::to_owned),
            field: self.at(key),
            message: message.into(),
        });
    }

    pub(crate) fn string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        match self.map.get(key)? {
            Value::String(text) => Some(text),
            _ => {
                self.problem(problems, key, "must be a string");
                None
            }
        }
    }

    pub(crate) fn required_string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        if !self.has(key) {
            self.problem(problems, key, "is required");
        }
        self.string(key, problems)
    }

    /// A string or an explicit `null`: `Some(None)` for null, as InputPath/OutputPath/ResultPath allow.
    pub(crate) fn nullable_string(&self, key: &str, problems: &mut Problems) -> Option<Option<&'a str>> {
        match self.map.get(key)? {
            Value::Null => Some(None),
            Value::String(text) => Some(Some(text)),
            _ => {
                self.problem(problems, key, "must be a string or null");
                None
            }
        }
    }

    /// A non-negative integer, at least `min`.
    pub(crate) fn integer(&self, key: &str, min: u64, problems: &mut Problems) -> Option<u64> {
        self.integer_within(key, min, u64::MAX, problems)
    }

    /// An integer from `min` to `max`, both included.
    pub(crate) fn integer_within(&self, key: &str, min: u64, max: u64, problems: &mut Problems) -> Option<u64> {
        let value = self.map.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let range = if max == u64::MAX {
                    format!("of at least {min}")
                } else {
                    format!("from {min} to {max}")
                };
                self.problem(problems, key, format!("must be an integer {range}"));
                None
            }
        }
    }

    pub(crate) fn number(&self, key: &str, problems: &mut Problems) -> Option<f64> {
        let value = self.map.get(key)?;
        match value.as_f64() {
            Some(n) => Some(n),
            None => {
                self.problem(problems, key, "must be a number");
                None
            }
        }
    }

    pub(crate) fn array(&self, key: &str, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        match self.map.get(key)? {
            Value::Array(items) => Some(items),
            _ => {
                self.problem(problems, key, "must be an array");
                None
            }
        }
    }

    /// Reports every field not in `allowed`, with a hint where the field belongs somewhere else.
    pub(crate) fn reject_unknown(&self, allowed: &[&str], what: &str, problems: &mut Problems) {
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let message = match key.as_str() {
                "Assign" | "Output" | "Arguments" => {
                    format!("'{key}' is not supported: variables and the JSONata query language are out of scope")
                }
                "QueryLanguage" => "JSONata states are not supported; only the JSONPath query language is".into(),
                _ => format!("unknown field '{key}' for {what}"),
            };
            self.problem(problems, key, message);
        }
    }
}
