//! Task dispatch: how a Task state's resource is invoked, and Lambda's integration shapes.
//!
//! The engine hands every Task to a [`TaskDispatcher`] with the resource ARN and the effective input (after
//! InputPath and Parameters). [`LambdaDispatcher`] adapts plain functions — "call function F with this payload"
//! — to what Step Functions does with them: `arn:aws:states:::lambda:invoke` returns Lambda's full response
//! (`Payload`, `StatusCode`, `ExecutedVersion`, `SdkHttpMetadata`, `SdkResponseMetadata`), a bare function ARN
//! returns the payload itself, and a function error becomes the task's error named by its `errorType`.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::error::{names, Failure};

/// How a task failed: the `Error` and `Cause` that Retry and Catch see.
pub type TaskError = Failure;

/// Runs the resources of Task states.
///
/// Guarantees the engine relies on:
/// - `invoke` may be called concurrently (Parallel branches, Map iterations), and again for the same state
///   when a Retry applies, so implementations must be safe to call concurrently and should be idempotent
///   where the task has effects;
/// - an `Err` is matched against the state's Retry and Catch by its `error` name, exactly as on AWS;
/// - the engine enforces the state's `TimeoutSeconds` by dropping the future, so `invoke` must be
///   cancellation-safe.
#[async_trait]
pub trait TaskDispatcher: Send + Sync {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError>;
}

/// An error raised by a Lambda function, as the Lambda runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        FunctionError {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

/// Lambda functions callable by name: what the local stack implements with in-process handlers.
///
/// `function` is what the definition names: a function name, a full or partial ARN, possibly with a
/// `:qualifier`. Implementations decide how to map it; [`function_name`] extracts the bare name.
#[async_trait]
pub trait LambdaFunctions: Send + Sync {
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError>;
}

/// The resource of the optimised Lambda integration.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// The name in a function ARN (`arn:aws:lambda:region:account:function:NAME[:qualifier]`), or the input as is.
pub fn function_name(function: &str) -> &str {
    match function.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => name,
        [_, "function", name, ..] => name,
        _ => function,
    }
}

/// Whether `resource` is a bare Lambda function ARN, which Step Functions invokes directly.
pub fn is_function_arn(resource: &str) -> bool {
    resource.starts_with("arn:aws:lambda:") && resource.contains(":function:")
}

/// A [`TaskDispatcher`] for Lambda resources, over any [`LambdaFunctions`].
#[derive(Debug, Clone)]
pub struct LambdaDispatcher<F> {
    functions: F,
}

impl<F> LambdaDispatcher<F> {
    pub fn new(functions: F) -> Self {
        LambdaDispatcher { functions }
    }
}

fn task_error(error: FunctionError) -> TaskError {
    let cause = json!({"errorMessage": error.error_message, "errorType": error.error_type, "stackTrace": []});
    Failure {
        error: error.error_type,
        cause: Some(cause.to_string()),
    }
}

/// Lambda's response to a synchronous invoke, as the optimised integration returns it.
pub fn lambda_response(payload: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let length = payload.to_string().len().to_string();
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let headers = json!({
        "Connection": "keep-alive",
        "Content-Length": length,
        "Content-Type": "application/json",
        "Date": date,
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": request_id,
    });
    let all_headers: serde_json::Map<String, Value> = headers
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), Value::Array(vec![value.clone()])))
        .collect();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {"AllHttpHeaders": all_headers, "HttpHeaders": headers, "HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200,
    })
}

/// Whether `resource` is Lambda: the optimised integration or a bare function ARN.
pub fn is_lambda_resource(resource: &str) -> bool {
    resource == LAMBDA_INVOKE || is_function_arn(resource)
}

/// Invokes `resource` the way Step Functions invokes Lambda; `None` when it is not a Lambda resource.
pub async fn invoke_lambda(
    functions: &dyn LambdaFunctions,
    resource: &str,
    input: Value,
) -> Option<Result<Value, TaskError>> {
    if resource == LAMBDA_INVOKE {
        let Value::Object(mut parameters) = input else {
            return Some(Err(Failure::new(
                names::TASK_FAILED,
                "lambda:invoke takes an object with FunctionName and Payload",
            )));
        };
        let Some(Value::String(function)) = parameters.remove("FunctionName") else {
            return Some(Err(Failure::new(
                names::TASK_FAILED,
                "lambda:invoke needs a FunctionName string in Parameters",
            )));
        };
        let payload = parameters.remove("Payload").unwrap_or_else(|| json!({}));
        Some(
            functions
                .invoke_function(&function, payload)
                .await
                .map(lambda_response)
                .map_err(task_error),
        )
    } else if is_function_arn(resource) {
        Some(functions.invoke_function(resource, input).await.map_err(task_error))
    } else {
        None
    }
}

#[async_trait]
impl<F: LambdaFunctions> TaskDispatcher for LambdaDispatcher<F> {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        match invoke_lambda(&self.functions, resource, input).await {
            Some(result) => result,
            None => Err(Failure::new(
                names::TASK_FAILED,
                format!("no integration is available for resource '{resource}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_out_of_arns() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:place:live"),
            "place"
        );
        assert_eq!(function_name("123456789012:function:place"), "place");
        assert_eq!(function_name("place"), "place");
    }
}
