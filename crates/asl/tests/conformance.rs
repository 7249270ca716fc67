//! The conformance suite: every `conformance/*.json` file holds cases — a definition, an input, scripted task
//! results and the expected output, error or definition problems — written from the Amazon States Language
//! specification and AWS's documented examples. Each case runs in virtual time; every failing case is reported
//! by file and name, and the suite fails if any does.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use queuematch_asl::{
    run_in_virtual_time, Clock, Engine, ExecutionKind, ExecutionOptions, ScriptedTasks, StateMachine,
};
use serde_json::{json, Value};

/// The suite is meant to stay broad; shrinking it below this is a regression in itself.
const MIN_CASES: usize = 150;

/// Runs one case; `Err` says how it differs from what was expected.
fn run_case(case: &Value, start: DateTime<Utc>) -> Result<(), String> {
    let expect = case.get("expect").ok_or("the case has no 'expect'")?;
    let definition = case.get("definition").ok_or("the case has no 'definition'")?;
    let machine = match (StateMachine::from_value(definition), expect.get("invalid")) {
        (Ok(_), Some(_)) => return Err("the definition was accepted, but it should be rejected".into()),
        (Err(error), Some(Value::Array(fragments))) => {
            let message = error.to_string();
            for fragment in fragments {
                let fragment = fragment.as_str().ok_or("'invalid' lists strings")?;
                if !message.contains(fragment) {
                    return Err(format!(
                        "the definition error does not mention '{fragment}':\n{message}"
                    ));
                }
            }
            return Ok(());
        }
        (Err(error), _) => return Err(format!("the definition was rejected: {error}")),
        (Ok(machine), _) => machine,
    };
    let tasks = Arc::new(ScriptedTasks::from_json(case.get("tasks").unwrap_or(&json!({})))?);
    let options = case.get("options").cloned().unwrap_or(json!({}));
    let options = ExecutionOptions {
        name: Some("conformance".into()),
        state_machine_name: "Conformance".into(),
        kind: if options["kind"] == "express" {
            ExecutionKind::Express
        } else {
            ExecutionKind::Standard
        },
        clock: Clock::virtual_at(start),
        seed: Some(options["seed"].as_u64().unwrap_or(1)),
        max_transitions: options["maxTransitions"]
            .as_u64()
            .or(Some(queuematch_asl::DEFAULT_MAX_TRANSITIONS)),
        ..ExecutionOptions::default()
    };
    let input = case.get("input").cloned().unwrap_or(json!({}));
    let engine = Engine::new(tasks.clone());
    let execution =
        run_in_virtual_time(engine.execute(&machine, input, options)).map_err(|e| format!("no runtime: {e}"))?;

    match (execution.result(), expect.get("output"), expect.get("error")) {
        (Ok(output), Some(expected), _) if output == expected => {}
        (Ok(output), Some(expected), _) => return Err(format!("output {output}\n     expected {expected}")),
        (Ok(output), None, _) => return Err(format!("succeeded with {output}, but should fail")),
        (Err(failure), _, Some(expected)) if failure.error == *expected => {
            if let Some(fragment) = expect.get("cause").and_then(Value::as_str) {
                let cause = failure.cause.as_deref().unwrap_or("");
                if !cause.contains(fragment) {
                    return Err(format!("cause '{cause}' does not contain '{fragment}'"));
                }
            }
        }
        (Err(failure), _, _) => {
            return Err(format!(
                "failed with {}: {}",
                failure.error,
                failure.cause.as_deref().unwrap_or("")
            ))
        }
    }
    if let Some(expected) = expect.get("history") {
        let kinds: Vec<Value> = execution.history.iter().map(|event| Value::from(event.kind)).collect();
        if Value::Array(kinds.clone()) != *expected {
            return Err(format!("history {}\n     expected {expected}", Value::Array(kinds)));
        }
    }
    if let Some(expected) = expect.get("elapsedSeconds").and_then(Value::as_f64) {
        let elapsed = (execution.stop - execution.start).num_milliseconds() as f64 / 1000.0;
        if (elapsed - expected).abs() > 0.001 {
            return Err(format!("took {elapsed} s of virtual time, expected {expected} s"));
        }
    }
    if let Some(Value::Object(calls)) = expect.get("calls") {
        for (key, expected) in calls {
            let actual = tasks.calls(key);
            if Some(actual as u64) != expected.as_u64() {
                return Err(format!("'{key}' was called {actual} times, expected {expected}"));
            }
        }
    }
    Ok(())
}

#[test]
fn conformance_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut total = 0;
    for file in files
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
    {
        let label = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        // Read as the engine reads a definition: a key given twice would otherwise test only its last value.
        let cases = queuematch_json::from_str_unique(&text).unwrap_or_else(|e| panic!("{label}.json: {e}"));
        let cases = cases
            .as_array()
            .unwrap_or_else(|| panic!("{label}.json: not an array of cases"));
        for case in cases {
            total += 1;
            let name = format!("{label}/{}", case["name"].as_str().unwrap_or("<unnamed>"));
            assert!(names.insert(name.clone()), "duplicate case name {name}");
            if let Err(message) = run_case(case, start) {
                failures.push(format!("FAILED {name}\n     {message}"));
            }
        }
    }
    println!("{} passed, {} failed", total - failures.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {total} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total >= MIN_CASES,
        "only {total} conformance cases; the suite should have at least {MIN_CASES}"
    );
}
