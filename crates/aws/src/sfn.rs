//! The `Workflows` port on Step Functions: StartExecution, named after what the execution runs for.
//!
//! **Idempotency.** The execution name is the idempotency key. For a Standard state machine, Step
//! Functions refuses a second start of a name with `ExecutionAlreadyExists` (or returns the running
//! execution for the same input); the adapter then describes the existing execution and answers
//! with its id when the input is the same, `Conflict` when it is not. Express state machines (ours,
//! on AWS) deduplicate no names, and cannot be described; with a store ([`SfnWorkflows::deduplicated_by`])
//! the adapter records each start as `EXECUTION#<definition>#<name>` / `EXECUTION` and answers a
//! repeated start from that record. A start and its record are two calls, so two racing starts (or
//! a crash between the two) can still run an Express execution twice: DESIGN.md's "at-least-once
//! start", which the workflow tasks absorb by being idempotent on the session id.

use crate::error;
use aws_sdk_sfn::Client;
use queuematch_core::ports::store::{Condition, Item, Key, Store};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{PortError, Workflows};
use queuematch_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a start's record keeps repeats away: longer than any Express execution (5 minutes) and
/// any retry of a start.
const RECORD_TTL: Duration = Duration::from_secs(24 * 3_600);

/// Starts the state machines of `workflows/`, by definition name.
#[derive(Clone)]
pub struct SfnWorkflows {
    client: Client,
    /// Definition name (a file of `workflows/` without `.asl.json`) → state machine ARN.
    state_machines: HashMap<String, String>,
    /// Records starts for Express deduplication, when given.
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn queuematch_core::ports::Clock>,
}

impl std::fmt::Debug for SfnWorkflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfnWorkflows")
            .field("state_machines", &self.state_machines)
            .field("deduplicated", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

/// What a start's record holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRecord {
    execution_arn: String,
    input_digest: String,
}

impl SfnWorkflows {
    pub fn new(client: Client, state_machine_arns: HashMap<String, String>) -> Self {
        Self {
            client,
            state_machines: state_machine_arns,
            store: None,
            clock: Arc::new(crate::clock::SystemClock),
        }
    }

    /// Records every start in `store`, so a repeated start of an Express execution is answered
    /// without starting it again.
    pub fn deduplicated_by(
        mut self,
        store: Arc<dyn Store>,
        clock: impl queuematch_core::ports::Clock + 'static,
    ) -> Self {
        self.store = Some(store);
        self.clock = Arc::new(clock);
        self
    }

    /// The existing execution `name` of `state_machine`, if its input is `input`.
    async fn existing(
        &self,
        state_machine: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<ExecutionId, PortError> {
        let arn = execution_arn(state_machine, name)?;
        let out = self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(|e| error::map("DescribeExecution", e))?;
        let same = out
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .is_some_and(|existing| &existing == input);
        if same {
            Ok(ExecutionId(out.execution_arn))
        } else {
            Err(PortError::Conflict(format!(
                "execution {name} already exists with another input"
            )))
        }
    }
}

/// Step Functions' rule for execution names: 1 to 80 characters, none of them whitespace, brackets,
/// wildcards, control characters or these: `"#%\^|~`$&,;:/`.
fn check_name(name: &str) -> Result<(), PortError> {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    let length = name.chars().count();
    if length == 0 || length > 80 || name.chars().any(forbidden) {
        return Err(PortError::invalid(format!(
            "`{name}` is not an execution name: 1 to 80 characters, without whitespace or special characters"
        )));
    }
    Ok(())
}

/// `arn:aws:states:<region>:<account>:stateMachine:<sm>` → `…:execution:<sm>:<name>`.
fn execution_arn(state_machine: &str, name: &str) -> Result<String, PortError> {
    let parts: Vec<&str> = state_machine.split(':').collect();
    match parts.as_slice() {
        [arn, partition, states, region, account, "stateMachine", machine] => Ok(format!(
            "{arn}:{partition}:{states}:{region}:{account}:execution:{machine}:{name}"
        )),
        _ => Err(PortError::invalid(format!(
            "{state_machine} is not a state machine ARN"
        ))),
    }
}

fn record_key(definition: &str, name: &str) -> Key {
    Key::new(format!("EXECUTION#{definition}#{name}"), "EXECUTION")
}

fn input_digest(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait::async_trait]
impl Workflows for SfnWorkflows {
    async fn start(
        &self,
        definition: &str,
        execution_name: &str,
        input: serde_json::Value,
    ) -> Result<ExecutionId, PortError> {
        let state_machine = self
            .state_machines
            .get(definition)
            .ok_or_else(|| PortError::NotFound(format!("no state machine for workflow `{definition}`")))?;
        check_name(execution_name)?;
        let body = serde_json::to_string(&input).map_err(|e| PortError::invalid(format!("workflow input: {e}")))?;
        let digest = input_digest(&body);
        if let Some(store) = &self.store {
            if let Some(stored) = store.get(&record_key(definition, execution_name)).await? {
                let record: StartRecord = serde_json::from_value(stored.item.body).map_err(|e| PortError::Corrupt {
                    key: stored.item.key.clone(),
                    reason: e.to_string(),
                })?;
                return if record.input_digest == digest {
                    Ok(ExecutionId(record.execution_arn))
                } else {
                    Err(PortError::Conflict(format!(
                        "execution {execution_name} of {definition} already exists with another input"
                    )))
                };
            }
        }
        let result = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(execution_name)
            .input(body)
            .send()
            .await;
        let id = match result {
            Ok(out) => ExecutionId(out.execution_arn),
            Err(e) if error::code(&e) == Some("ExecutionAlreadyExists") => {
                self.existing(state_machine, execution_name, &input).await?
            }
            Err(e) if error::code(&e) == Some("StateMachineDoesNotExist") => {
                return Err(PortError::NotFound(format!(
                    "state machine {state_machine} does not exist"
                )))
            }
            Err(e) => return Err(error::map("StartExecution", e)),
        };
        if let Some(store) = &self.store {
            let record = StartRecord {
                execution_arn: id.0.clone(),
                input_digest: digest,
            };
            let body = serde_json::to_value(&record).map_err(|e| PortError::invalid(format!("start record: {e}")))?;
            let expires: Timestamp = self.clock.now().plus(RECORD_TTL);
            let item = Item::new(record_key(definition, execution_name), body).expiring_at(expires);
            match store.put(item, Condition::Absent).await {
                // A racing start recorded first: both executions run, as at-least-once allows.
                Ok(_) | Err(PortError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_arn_is_derived_from_its_state_machine() {
        assert_eq!(
            execution_arn("arn:aws:states:eu-west-1:123:stateMachine:session-placement", "s-1")
                .ok()
                .as_deref(),
            Some("arn:aws:states:eu-west-1:123:execution:session-placement:s-1")
        );
        assert!(execution_arn("not-an-arn", "s-1").is_err());
    }

    #[test]
    fn execution_names_follow_step_functions_rules() {
        assert!(check_name("session-1_a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(81)).is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("a:b").is_err());
    }
}
