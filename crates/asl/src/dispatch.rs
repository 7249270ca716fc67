//! Task dispatch: how a Task state's resource is invoked, and Lambda's integration shapes.
//!
//! The engine hands every Task to a [`TaskDispatcher`] with the resource ARN and the effective input (after
//! InputPath and Parameters). [`LambdaDispatcher`] adapts plain functions — "call function F with this payload"
//! — to what Step Functions does with them: `arn:aws:states:::lambda:invoke` returns Lambda's full response
//! (`Payload`, `StatusCode`, `ExecutedVersion`, `SdkHttpMetadata`, `SdkResponseMetadata`), a bare function ARN
//! returns the payload itself, and a function error becomes the task's error named by its `errorType`.

use std::collections::HashMap;
use std::future::Future;

use async_trait::async_trait;
use futures::future::BoxFuture;
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
///
/// The same guarantees as [`TaskDispatcher`] apply: calls may be concurrent and repeated (Retry, and Express's
/// at-least-once start), and a call is dropped when its task times out. An `Err` is a function error: its
/// `error_type` becomes the task's error name, as the Lambda runtime's `errorType` does on AWS.
#[async_trait]
pub trait LambdaFunctions: Send + Sync {
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError>;
}

type Handler = Box<dyn Fn(Value) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync>;

/// Lambda functions as in-process async handlers, registered by function name: how an embedder runs the very
/// handler code that Lambda runs, with Step Functions' Lambda semantics from [`LambdaDispatcher`].
///
/// A call names its function by name or ARN (with or without a qualifier); an unregistered function fails
/// with `Lambda.ResourceNotFoundException`, as on AWS.
#[derive(Default)]
pub struct FunctionTable {
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for FunctionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("FunctionTable").field("functions", &names).finish()
    }
}

impl FunctionTable {
    pub fn new() -> Self {
        FunctionTable::default()
    }

    /// Registers `handler` as function `name`, replacing any handler already registered under that name.
    pub fn register<H, F>(&mut self, name: impl Into<String>, handler: H) -> &mut Self
    where
        H: Fn(Value) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.handlers
            .insert(name.into(), Box::new(move |payload| Box::pin(handler(payload))));
        self
    }
}

#[async_trait]
impl LambdaFunctions for FunctionTable {
    async fn invoke_function(&self, function: &str, payload: Value) -> Result<Value, FunctionError> {
        match self
            .handlers
            .get(function)
            .or_else(|| self.handlers.get(function_name(function)))
        {
            Some(handler) => handler(payload).await,
            None => Err(FunctionError::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {function}"),
            )),
        }
    }
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
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let trace_id = format!(
        "root=1-{:08x}-{};sampled=0",
        chrono::Utc::now().timestamp(),
        &trace[..24]
    );
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
        "X-Amzn-Trace-Id": trace_id,
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

/// Invokes `resource` the way Step Functions invokes Lambda; a resource that is not Lambda (see
/// [`is_lambda_resource`]) fails with `States.TaskFailed`.
pub async fn invoke_lambda(functions: &dyn LambdaFunctions, resource: &str, input: Value) -> Result<Value, TaskError> {
    if resource == LAMBDA_INVOKE {
        let Value::Object(mut parameters) = input else {
            return Err(Failure::new(
                names::TASK_FAILED,
                "lambda:invoke takes an object with FunctionName and Payload",
            ));
        };
        let Some(Value::String(function)) = parameters.remove("FunctionName") else {
            return Err(Failure::new(
                names::TASK_FAILED,
                "lambda:invoke needs a FunctionName string in Parameters",
            ));
        };
        let payload = parameters.remove("Payload").unwrap_or_else(|| json!({}));
        functions
            .invoke_function(&function, payload)
            .await
            .map(lambda_response)
            .map_err(task_error)
    } else if is_function_arn(resource) {
        functions.invoke_function(resource, input).await.map_err(task_error)
    } else {
        Err(Failure::new(
            names::TASK_FAILED,
            format!("no integration is available for resource '{resource}'"),
        ))
    }
}

#[async_trait]
impl<F: LambdaFunctions> TaskDispatcher for LambdaDispatcher<F> {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        invoke_lambda(&self.functions, resource, input).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> LambdaDispatcher<FunctionTable> {
        let mut functions = FunctionTable::new();
        functions
            .register("place", |payload: Value| async move {
                Ok(json!({"placed": payload["matchId"]}))
            })
            .register("reject", |_| async {
                Err(FunctionError::new("PlacementUnavailable", "no capacity"))
            });
        LambdaDispatcher::new(functions)
    }

    #[tokio::test]
    async fn lambda_invoke_returns_lambdas_response_shape() {
        let input = json!({"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:place:live", "Payload": {"matchId": "m1"}});
        let output = table().invoke(LAMBDA_INVOKE, input).await.unwrap();
        assert_eq!(output["Payload"], json!({"placed": "m1"}));
        assert_eq!(output["StatusCode"], 200);
        assert_eq!(output["ExecutedVersion"], "$LATEST");
        assert_eq!(output["SdkHttpMetadata"]["HttpStatusCode"], 200);
        let request_id = output["SdkResponseMetadata"]["RequestId"].as_str().unwrap();
        assert_eq!(output["SdkHttpMetadata"]["HttpHeaders"]["x-amzn-RequestId"], request_id);
        assert_eq!(
            output["SdkHttpMetadata"]["AllHttpHeaders"]["x-amzn-RequestId"],
            json!([request_id])
        );
    }

    #[tokio::test]
    async fn a_bare_function_arn_returns_the_payload_itself() {
        let output = table()
            .invoke(
                "arn:aws:lambda:eu-west-1:123456789012:function:place",
                json!({"matchId": "m2"}),
            )
            .await;
        assert_eq!(output.unwrap(), json!({"placed": "m2"}));
    }

    #[tokio::test]
    async fn function_errors_are_named_by_their_error_type() {
        let failure = table()
            .invoke(LAMBDA_INVOKE, json!({"FunctionName": "reject"}))
            .await
            .unwrap_err();
        assert_eq!(failure.error, "PlacementUnavailable");
        let cause: Value = serde_json::from_str(failure.cause.as_deref().unwrap()).unwrap();
        assert_eq!(cause["errorMessage"], "no capacity");
        assert_eq!(cause["errorType"], "PlacementUnavailable");
        let missing = table()
            .invoke(LAMBDA_INVOKE, json!({"FunctionName": "ghost"}))
            .await
            .unwrap_err();
        assert_eq!(missing.error, "Lambda.ResourceNotFoundException");
    }

    #[tokio::test]
    async fn other_resources_are_not_lambda() {
        let failure = table()
            .invoke("arn:aws:states:::sqs:sendMessage", json!({}))
            .await
            .unwrap_err();
        assert_eq!(failure.error, names::TASK_FAILED);
    }

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
