//! The engine as an embedder uses it: in-process Lambda handlers, executions spawned on a multi-threaded
//! runtime, and the history an operator reads.

use std::sync::Arc;

use queuematch_asl::{
    Engine, EventSink, ExecutionOptions, FunctionError, FunctionTable, HistoryEvent, LambdaDispatcher, Outcome,
    StateMachine,
};
use serde_json::{json, Value};

fn placement() -> StateMachine {
    let definition = json!({
        "StartAt": "Place",
        "States": {
            "Place": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "place", "Payload": {"matchId.$": "$.matchId"}},
                "ResultSelector": {"endpoint.$": "$.Payload.endpoint"},
                "ResultPath": "$.placement",
                "Catch": [{"ErrorEquals": ["PlacementUnavailable"], "ResultPath": "$.error", "Next": "Requeue"}],
                "Next": "Fanout"
            },
            "Fanout": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Tokens", "States": {"Tokens": {"Type": "Pass", "Result": "minted", "End": true}}},
                    {"StartAt": "Publish", "States": {"Publish": {"Type": "Pass", "Result": "published", "End": true}}}
                ],
                "ResultPath": "$.done",
                "End": true
            },
            "Requeue": {"Type": "Fail", "Error": "Requeued"}
        }
    });
    StateMachine::from_value(&definition).unwrap_or_else(|e| panic!("{e}"))
}

fn functions() -> FunctionTable {
    let mut functions = FunctionTable::new();
    functions.register("place", |payload: Value| async move {
        match payload["matchId"].as_str() {
            Some(id) if id.starts_with("full") => Err(FunctionError::new("PlacementUnavailable", "fleet is full")),
            Some(id) => Ok(json!({"endpoint": format!("{id}.local:7777")})),
            None => Err(FunctionError::new("Invalid", "no matchId")),
        }
    });
    functions
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_run_concurrently_on_a_multi_threaded_runtime() {
    let engine = Engine::new(Arc::new(LambdaDispatcher::new(functions())));
    let machine = Arc::new(placement());
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (engine, machine) = (engine.clone(), machine.clone());
            let id = if i % 5 == 0 {
                format!("full-{i}")
            } else {
                format!("m{i}")
            };
            // The execution future is Send, so it can be spawned like any other task.
            tokio::spawn(assert_send(async move {
                engine
                    .execute(&machine, json!({"matchId": id}), ExecutionOptions::default())
                    .await
            }))
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let execution = handle.await.unwrap();
        if i % 5 == 0 {
            assert_eq!(execution.result().unwrap_err().error, "Requeued", "execution {i}");
        } else {
            let output = execution.result().unwrap();
            assert_eq!(output["placement"]["endpoint"], format!("m{i}.local:7777"));
            assert_eq!(output["done"], json!(["minted", "published"]));
        }
    }
}

#[tokio::test]
async fn history_ids_chain_per_branch_like_aws() {
    let engine = Engine::new(Arc::new(LambdaDispatcher::new(functions())));
    let execution = engine
        .execute(&placement(), json!({"matchId": "m1"}), ExecutionOptions::default())
        .await;
    assert!(matches!(execution.outcome, Outcome::Succeeded(_)));
    let events = &execution.history;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.id, i as u64 + 1);
        assert!(event.previous_event_id < event.id);
        assert!(i == 0 || event.timestamp >= events[0].timestamp);
    }
    let started = events.iter().find(|e| e.kind == "ParallelStateStarted").unwrap();
    let branch_starts: Vec<_> = events.iter().filter(|e| e.kind == "PassStateEntered").collect();
    assert_eq!(branch_starts.len(), 2);
    // Both branches start from the Parallel state's start, not from each other.
    assert!(branch_starts.iter().all(|e| e.previous_event_id == started.id));
    let scheduled = events.iter().find(|e| e.kind == "TaskScheduled").unwrap();
    let details = &scheduled.details.as_ref().unwrap().1;
    assert_eq!(details["resourceType"], "lambda");
    assert_eq!(details["resource"], "invoke");
    let parameters: Value = serde_json::from_str(details["parameters"].as_str().unwrap()).unwrap();
    assert_eq!(
        parameters,
        json!({"FunctionName": "place", "Payload": {"matchId": "m1"}})
    );
    let json = execution.history_json();
    assert_eq!(json["events"][0]["type"], "ExecutionStarted");
    assert_eq!(
        json["events"].as_array().unwrap().last().unwrap()["type"],
        "ExecutionSucceeded"
    );
}

#[tokio::test]
async fn an_execution_without_history_records_nothing_but_still_counts_transitions() {
    let engine = Engine::new(Arc::new(LambdaDispatcher::new(functions())));
    let options = ExecutionOptions {
        record_history: false,
        ..ExecutionOptions::default()
    };
    let execution = engine.execute(&placement(), json!({"matchId": "m1"}), options).await;
    assert!(execution.history.is_empty());
    // Place, Fanout, and one Pass in each branch.
    assert_eq!(execution.state_transitions, 4);
}

#[tokio::test]
async fn a_loop_without_waits_still_hits_the_execution_timeout() {
    // GIVEN two Pass states sending to each other forever, and no transition guard
    let definition = json!({
        "StartAt": "Ping", "TimeoutSeconds": 1,
        "States": {"Ping": {"Type": "Pass", "Next": "Pong"}, "Pong": {"Type": "Pass", "Next": "Ping"}}
    });
    let machine = StateMachine::from_value(&definition).unwrap();
    let options = ExecutionOptions {
        max_transitions: None,
        record_history: false,
        ..ExecutionOptions::default()
    };
    // WHEN it runs on the system clock
    let execution = Engine::new(Arc::new(LambdaDispatcher::new(functions())))
        .execute(&machine, json!({}), options)
        .await;
    // THEN the engine yields often enough for the timeout to end it
    assert!(matches!(&execution.outcome, Outcome::TimedOut(failure) if failure.error == "States.Timeout"));
    assert!(execution.state_transitions > 1000);
}

#[tokio::test]
async fn a_failing_branch_is_where_the_failure_events_point() {
    let definition = json!({
        "StartAt": "Fork",
        "States": {"Fork": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Slow", "States": {"Slow": {"Type": "Pass", "Next": "Slower"}, "Slower": {"Type": "Pass", "End": true}}},
            {"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "Broken"}}}
        ]}}
    });
    let machine = StateMachine::from_value(&definition).unwrap();
    let engine = Engine::new(Arc::new(LambdaDispatcher::new(functions())));
    let execution = engine.execute(&machine, json!({}), ExecutionOptions::default()).await;
    let events = &execution.history;
    let by_kind = |kind: &str| events.iter().find(|e| e.kind == kind).unwrap();
    let fail_entered = by_kind("FailStateEntered");
    let parallel_failed = by_kind("ParallelStateFailed");
    assert_eq!(parallel_failed.previous_event_id, fail_entered.id);
    assert_eq!(by_kind("ExecutionFailed").previous_event_id, parallel_failed.id);
}

#[tokio::test]
async fn an_event_sink_sees_the_history_as_it_happens() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        EventSink::new(move |event: &HistoryEvent| seen.lock().unwrap().push((event.id, event.kind)))
    };
    let engine = Engine::new(Arc::new(LambdaDispatcher::new(functions())));
    let kept = ExecutionOptions {
        on_event: Some(sink.clone()),
        ..ExecutionOptions::default()
    };
    let execution = engine.execute(&placement(), json!({"matchId": "m1"}), kept).await;
    let streamed = std::mem::take(&mut *seen.lock().unwrap());
    let recorded: Vec<_> = execution.history.iter().map(|e| (e.id, e.kind)).collect();
    assert_eq!(streamed, recorded);

    // Without a kept history, the sink still sees every event, with the same ids.
    let live_only = ExecutionOptions {
        on_event: Some(sink),
        record_history: false,
        ..ExecutionOptions::default()
    };
    let execution = engine.execute(&placement(), json!({"matchId": "m1"}), live_only).await;
    assert!(execution.history.is_empty());
    let streamed: Vec<_> = seen.lock().unwrap().iter().map(|(_, kind)| *kind).collect();
    let kinds: Vec<_> = recorded.iter().map(|(_, kind)| *kind).collect();
    assert_eq!(streamed, kinds);
}
