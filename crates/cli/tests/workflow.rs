//! `queuematch workflow validate|run`, run as a developer runs them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Writes `value` to a file of its own under the target's scratch directory.
fn write(name: &str, value: &Value) -> PathBuf {
    write_text(name, &value.to_string())
}

/// Writes `text` as it is: for JSON that a `Value` cannot hold, such as a key given twice.
fn write_text(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("workflow-cli");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

fn queuematch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("queuematch does not run: {e}"))
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

fn placement() -> Value {
    json!({
        "Comment": "Place a match, retrying while the fleet is busy",
        "StartAt": "Place",
        "States": {
            "Place": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${PlaceFunction}", "Payload.$": "$"},
                "ResultSelector": {"server.$": "$.Payload.server"},
                "ResultPath": "$.placement",
                "Retry": [{"ErrorEquals": ["PlacementUnavailable"], "IntervalSeconds": 600, "MaxAttempts": 2}],
                "Next": "Settle"
            },
            "Settle": {"Type": "Wait", "Seconds": 3600, "End": true}
        }
    })
}

#[test]
fn validate_accepts_a_good_definition_with_its_substitutions() {
    let file = write("placement.asl.json", &placement());
    let out = queuematch(&[
        "workflow",
        "validate",
        file.to_str().unwrap(),
        "--sub",
        "PlaceFunction=place",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 2 states"));
}

#[test]
fn validate_names_a_missing_substitution() {
    let file = write("placement-unsubstituted.asl.json", &placement());
    let out = queuematch(&["workflow", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("${PlaceFunction}"));
}

#[test]
fn validate_reports_every_problem_with_its_state_and_field() {
    let definition =
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Pass"}}});
    let file = write("broken.asl.json", &definition);
    let out = queuematch(&["workflow", "validate", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("state 'A', field States.A.Next: 'Nowhere' is not a state in this scope"),
        "{stderr}"
    );
    assert!(stderr.contains("state 'B'"), "{stderr}");
    assert!(stderr.contains("3 problems"), "{stderr}");
}

#[test]
fn validate_and_run_refuse_a_key_given_twice() {
    // GIVEN a definition whose state B is given twice, the second a Fail state that a last-wins reader would run
    let file = write_text(
        "duplicate-state.asl.json",
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","End":true},"B":{"Type":"Fail","Error":"Oops"}}}"#,
    );
    for command in ["validate", "run"] {
        // WHEN it is validated or run
        let out = queuematch(&[
            "workflow",
            command,
            file.to_str().unwrap_or_else(|| panic!("not UTF-8")),
        ]);
        // THEN it is refused, naming the key and where, and nothing runs
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("the key `B` is given twice in one object at line 1 column 90"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("1 problem\n"), "{command}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn validate_refuses_sync_tasks_for_express_only() {
    let definition = json!({"StartAt": "Run", "States": {"Run": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": true}}});
    let file = write("sync.asl.json", &definition);
    let express = queuematch(&["workflow", "validate", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&express.stderr);
    assert_eq!(express.status.code(), Some(1));
    // Located and counted as every other problem of a definition is.
    assert!(
        stderr
            .contains("state 'Run', field States.Run.Resource: Express workflows support request/response tasks only"),
        "{stderr}"
    );
    assert!(stderr.ends_with("sync.asl.json: 1 problem\n"), "{stderr}");
    let standard = queuematch(&["workflow", "validate", file.to_str().unwrap(), "--type", "standard"]);
    assert!(standard.status.success());
}

#[test]
fn run_refuses_a_sync_task_for_express_before_running_it() {
    // GIVEN a definition with a .sync task, which Express cannot run
    let definition = json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.sync", "End": true}}});
    let file = write("sync-run.asl.json", &definition);
    let file = file.to_str().unwrap_or_else(|| panic!("not UTF-8"));
    // WHEN it is run as Express (the default)
    let express = queuematch(&["workflow", "run", file]);
    // THEN the definition is refused as validate refuses it, and no execution result is printed
    let stderr = String::from_utf8_lossy(&express.stderr);
    assert_eq!(express.status.code(), Some(1), "{stderr}");
    assert!(
        express.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&express.stdout)
    );
    assert!(stderr.contains("state 'A', field States.A.Resource: "), "{stderr}");
    assert!(stderr.ends_with("sync-run.asl.json: 1 problem\n"), "{stderr}");
    // AND as Standard it runs, to the task that has no scripted answer
    let standard = queuematch(&["workflow", "run", file, "--type", "standard"]);
    assert_eq!(stdout_json(&standard)["error"], "States.TaskFailed");
}

#[test]
fn run_prints_the_output_after_retries_and_waits_in_virtual_time() {
    let file = write("placement-run.asl.json", &placement());
    let script = write(
        "placement-tasks.json",
        &json!({"place": [{"Throw": {"Error": "PlacementUnavailable", "Cause": "busy"}}, {"Return": {"server": "10.0.0.7:7777"}}]}),
    );
    let started = Instant::now();
    let out = queuematch(&[
        "workflow",
        "run",
        file.to_str().unwrap(),
        "--sub",
        "PlaceFunction=place",
        "--input",
        r#"{"matchId": "m-1"}"#,
        "--task-results",
        script.to_str().unwrap(),
        "--virtual-time",
        "--type",
        "standard",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        stdout_json(&out),
        json!({"matchId": "m-1", "placement": {"server": "10.0.0.7:7777"}})
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an hour of virtual waiting took {:?}",
        started.elapsed()
    );
}

#[test]
fn express_runs_stop_at_five_minutes() {
    let definition = json!({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let file = write("long-wait.asl.json", &definition);
    let out = queuematch(&["workflow", "run", file.to_str().unwrap(), "--virtual-time"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"], "States.Timeout");
}

#[test]
fn run_reads_its_input_from_a_file() {
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.ticket", "End": true}}});
    let file = write("input-file.asl.json", &definition);
    let input = write("input.json", &json!({"ticket": {"id": "t-9"}}));
    let out = queuematch(&[
        "workflow",
        "run",
        file.to_str().unwrap(),
        "--input-file",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out), json!({"id": "t-9"}));
}

#[test]
fn run_prints_error_and_cause_and_exits_one_on_failure() {
    let definition =
        json!({"StartAt": "Fail", "States": {"Fail": {"Type": "Fail", "Error": "Invalid", "Cause": "no players"}}});
    let file = write("fails.asl.json", &definition);
    let out = queuematch(&["workflow", "run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out), json!({"error": "Invalid", "cause": "no players"}));
}

#[test]
fn run_without_scripted_results_fails_the_lambda_task_as_a_missing_function() {
    let file = write("unscripted.asl.json", &placement());
    let out = queuematch(&[
        "workflow",
        "run",
        file.to_str().unwrap(),
        "--sub",
        "PlaceFunction=place",
        "--virtual-time",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"], "Lambda.ResourceNotFoundException");
}

#[test]
fn run_with_history_prints_aws_events_on_stderr() {
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}});
    let file = write("history.asl.json", &definition);
    let out = queuematch(&[
        "workflow",
        "run",
        file.to_str().unwrap(),
        "--history",
        "--type",
        "standard",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout_json(&out), json!(1));
    let history: Value = serde_json::from_slice(&out.stderr).unwrap();
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(history["events"][1]["previousEventId"], 1);
    assert!(history["events"][0]["executionStartedEventDetails"]["input"].is_string());
}
