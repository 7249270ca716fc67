//! Bad input gets an error, never a panic: arbitrary text as JSONPaths, intrinsic calls, definitions and
//! substitutions, and random damage to a valid definition, which must then be rejected or run to an outcome.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use queuematch_asl::path::Path;
use queuematch_asl::{
    run_in_virtual_time, Clock, Engine, ExecutionKind, ExecutionOptions, ScriptedTasks, StateMachine,
};
use serde_json::{json, Value};

/// Text drawn mostly from the characters that JSONPath and intrinsic syntax give meaning to.
fn syntaxy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("$".to_owned()),
            Just("$$".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("'".to_owned()),
            Just("\\".to_owned()),
            Just("*".to_owned()),
            Just("?(@.a > 1)".to_owned()),
            Just(",".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("States.".to_owned()),
            Just("Format".to_owned()),
            Just("Array".to_owned()),
            Just("{}".to_owned()),
            "[a-z0-9 ]{0,3}",
            "\\PC{0,2}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn pass_with(field: &str, value: Value) -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", field: value, "End": true}}})
}

/// A definition exercising most state types, to damage.
fn rich_definition() -> Value {
    json!({
        "StartAt": "Task",
        "States": {
            "Task": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fail"}],
                "Next": "Choice"
            },
            "Choice": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "Map"}], "Default": "Wait"},
            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Par"},
            "Par": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}], "Next": "Map"},
            "Map": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "End": true},
            "Fail": {"Type": "Fail", "Error": "E"}
        }
    })
}

/// Every object member in `value`, as a JSON pointer.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(pointer.clone());
                pointers(child, pointer, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        syntaxy().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::hash_map("[A-Za-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_text_is_a_path_or_an_error(text in syntaxy()) {
        let _ = Path::parse(&text, true);
        let _ = Path::parse_reference(&text);
    }

    #[test]
    fn any_text_is_a_template_or_a_definition_error(text in syntaxy()) {
        let _ = StateMachine::from_value(&pass_with("Parameters", json!({"x.$": text.clone()})));
        let _ = StateMachine::from_value(&pass_with("Parameters", json!({"x.$": format!("States.Format({text})")})));
        let _ = StateMachine::from_value(&pass_with("ResultPath", json!(text)));
    }

    #[test]
    fn any_text_is_a_definition_or_an_error(text in "\\PC{0,64}") {
        let _ = StateMachine::from_json(&text);
        let _ = StateMachine::from_json_with_substitutions(&text, &HashMap::from([("A".to_owned(), "1".to_owned())]));
    }

    #[test]
    fn damaged_definitions_are_rejected_or_run_cleanly(
        choice in any::<prop::sample::Index>(),
        replacement in json_value(),
        input in json_value(),
    ) {
        let mut definition = rich_definition();
        let mut all = Vec::new();
        pointers(&definition, String::new(), &mut all);
        let pointer = choice.get(&all);
        if let Some(slot) = definition.pointer_mut(pointer) {
            *slot = replacement;
        }
        match StateMachine::from_value(&definition) {
            Err(error) => prop_assert!(!error.problems().is_empty()),
            // What still parses must run to an outcome, whatever the input.
            Ok(machine) => {
                let options = ExecutionOptions {
                    kind: ExecutionKind::Express,
                    clock: Clock::virtual_from_now(),
                    max_transitions: Some(10_000),
                    seed: Some(1),
                    ..ExecutionOptions::default()
                };
                let engine = Engine::new(Arc::new(ScriptedTasks::default()));
                let execution = run_in_virtual_time(engine.execute(&machine, input, options)).unwrap();
                prop_assert!(execution.stop >= execution.start);
            }
        }
    }
}
