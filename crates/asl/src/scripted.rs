//! Scripted task results: a [`TaskDispatcher`] that answers from a script instead of calling anything.
//!
//! The script maps a resource ARN, or a Lambda function's name, to the responses its successive calls get
//! (the last one repeats), in the spirit of Step Functions Local's mocked responses:
//!
//! ```json
//! {
//!   "place-session": [{"Throw": {"Error": "Transient", "Cause": "fleet busy"}}, {"Return": {"ok": true}}],
//!   "arn:aws:states:::dynamodb:putItem": [{"Return": {}}],
//!   "echo": [{"Echo": true, "DelaySeconds": 5}]
//! }
//! ```
//!
//! Lambda functions keep Lambda's semantics: `lambda:invoke` wraps a `Return` in Lambda's response shape, and a
//! `Throw` is a function error whose `Error` is the `errorType`. `Echo` returns the task's input; `DelaySeconds`
//! makes a call take that long (on the execution's clock), to exercise `TimeoutSeconds`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::dispatch::{
    function_name, invoke_lambda, is_lambda_resource, FunctionError, LambdaFunctions, TaskDispatcher, TaskError,
};
use crate::error::{names, Failure};

#[derive(Debug, Clone)]
enum Answer {
    Return(Value),
    Echo,
    Throw { error: String, cause: Option<String> },
}

#[derive(Debug, Clone)]
struct Response {
    answer: Answer,
    delay: Duration,
}

#[derive(Debug)]
struct Script {
    responses: Vec<Response>,
    calls: AtomicUsize,
}

/// Task results read from a script; see the module documentation for its format.
#[derive(Debug, Default)]
pub struct ScriptedTasks {
    scripts: HashMap<String, Script>,
}

impl ScriptedTasks {
    /// Reads a script, naming the key and position of anything malformed.
    pub fn from_json(script: &Value) -> Result<ScriptedTasks, String> {
        let Value::Object(entries) = script else {
            return Err("a task script is an object of response lists by resource or function name".into());
        };
        let mut scripts = HashMap::new();
        for (key, value) in entries {
            let items = match value {
                Value::Array(items) if !items.is_empty() => items.as_slice(),
                Value::Object(_) => std::slice::from_ref(value),
                _ => return Err(format!("'{key}': give a response object or a non-empty list of them")),
            };
            let responses = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_response(item).map_err(|message| format!("'{key}'[{i}]: {message}")))
                .collect::<Result<_, _>>()?;
            scripts.insert(
                key.clone(),
                Script {
                    responses,
                    calls: AtomicUsize::new(0),
                },
            );
        }
        Ok(ScriptedTasks { scripts })
    }

    /// How many times `key` (a resource or a function name) has been called.
    pub fn calls(&self, key: &str) -> usize {
        self.scripts
            .get(key)
            .map_or(0, |script| script.calls.load(Ordering::SeqCst))
    }

    fn next(&self, keys: &[&str]) -> Option<Response> {
        let script = keys.iter().find_map(|key| self.scripts.get(*key))?;
        let call = script.calls.fetch_add(1, Ordering::SeqCst);
        script.responses.get(call.min(script.responses.len() - 1)).cloned()
    }
}

fn parse_response(item: &Value) -> Result<Response, String> {
    let Value::Object(fields) = item else {
        return Err("a response must be an object".into());
    };
    for key in fields.keys() {
        if !["Return", "Throw", "Echo", "DelaySeconds"].contains(&key.as_str()) {
            return Err(format!(
                "unknown field '{key}': use Return, Throw, Echo or DelaySeconds"
            ));
        }
    }
    let delay = match fields.get("DelaySeconds") {
        None => Duration::ZERO,
        Some(seconds) => seconds
            .as_f64()
            .filter(|s| *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                format!("DelaySeconds must be a non-negative number of seconds below 1.8e19, not {seconds}")
            })?,
    };
    let answer = match (fields.get("Return"), fields.get("Throw"), fields.get("Echo")) {
        (Some(value), None, None) => Answer::Return(value.clone()),
        (None, Some(Value::Object(throw)), None) => Answer::Throw {
            error: throw
                .get("Error")
                .and_then(Value::as_str)
                .ok_or("Throw needs an Error string")?
                .to_owned(),
            cause: throw.get("Cause").and_then(Value::as_str).map(str::to_owned),
        },
        (None, Some(_), None) => return Err("Throw must be an object with Error and Cause".into()),
        (None, None, Some(Value::Bool(true))) => Answer::Echo,
        _ => return Err("give exactly one of Return, Throw or \"Echo\": true".into()),
    };
    Ok(Response { answer, delay })
}

#[async_trait]
impl LambdaFunctions for ScriptedTasks {
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError> {
        let Some(response) = self.next(&[function, function_name(function)]) else {
            return Err(FunctionError::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {function} (no scripted response)"),
            ));
        };
        tokio::time::sleep(response.delay).await;
        match response.answer {
            Answer::Return(value) => Ok(value),
            Answer::Echo => Ok(payload),
            Answer::Throw { error, cause } => Err(FunctionError::new(error, cause.unwrap_or_default())),
        }
    }
}

#[async_trait]
impl TaskDispatcher for ScriptedTasks {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        if is_lambda_resource(resource) {
            return invoke_lambda(self, resource, input).await;
        }
        let Some(response) = self.next(&[resource]) else {
            return Err(Failure::new(
                names::TASK_FAILED,
                format!("no scripted response for resource '{resource}'"),
            ));
        };
        tokio::time::sleep(response.delay).await;
        match response.answer {
            Answer::Return(value) => Ok(value),
            Answer::Echo => Ok(input),
            Answer::Throw { error, cause } => Err(Failure { error, cause }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_delay_no_duration_holds_is_refused_by_name() {
        for delay in [json!(1e300), json!(-1), json!("5")] {
            let script = json!({"arn:aws:states:::echo": [{"Echo": true, "DelaySeconds": delay}]});
            match ScriptedTasks::from_json(&script) {
                Err(message) => assert!(message.contains("DelaySeconds"), "{message}"),
                Ok(_) => panic!("DelaySeconds {delay} was taken"),
            }
        }
        assert!(ScriptedTasks::from_json(&json!({"t": [{"Echo": true, "DelaySeconds": 2.5}]})).is_ok());
    }
}
