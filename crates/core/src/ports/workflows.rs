//! The `Workflows` port: starting a Step Functions execution (the embedded ASL engine locally).

use crate::ports::error::PortError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An execution's id: its ARN on AWS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(pub String);

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Starts workflows.
///
/// Guarantees: **idempotent on the execution name**, as StartExecution is for Standard workflows:
/// starting `execution_name` again with the same input returns the first execution's id and starts
/// nothing; with another input it is
/// [`PortError::Conflict`] (ExecutionAlreadyExists). Express workflows do not
/// deduplicate names on AWS, so that adapter deduplicates itself; callers name executions after what
/// they run for (e.g. the session id), so a retried start never runs a lifecycle twice. The workflow
/// runs at least once per started execution; its tasks are idempotent.
#[async_trait::async_trait]
pub trait Workflows: Send + Sync {
    /// Starts `definition` (a file of `workflows/`, without `.asl.json`) on `input`.
    async fn start(
        &self,
        definition: &str,
        execution_name: &str,
        input: serde_json::Value,
    ) -> Result<ExecutionId, PortError>;
}

#[async_trait::async_trait]
impl<W: Workflows + ?Sized> Workflows for std::sync::Arc<W> {
    async fn start(
        &self,
        definition: &str,
        execution_name: &str,
        input: serde_json::Value,
    ) -> Result<ExecutionId, PortError> {
        (**self).start(definition, execution_name, input).await
    }
}
