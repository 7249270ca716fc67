//! Every workflow of `workflows/` is a valid Express state machine for the embedded engine, under the
//! DefinitionSubstitutions the local stack gives it: the same files deploy with SAM.

use queuematch_asl::StateMachine;
use std::collections::HashMap;
use std::path::Path;

#[test]
fn every_workflow_validates_as_express_under_the_local_substitutions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let substitutions = HashMap::from([(
        "WorkflowTasksFunctionArn".to_owned(),
        "arn:aws:lambda:local:000000000000:function:queuematch-workflow-tasks".to_owned(),
    )]);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".asl.json"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let machine =
            StateMachine::from_json_with_substitutions(&text, &substitutions).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(machine.express_problems(), Vec::new(), "{name}");
        names.push(name.to_owned());
    }
    assert!(names.iter().any(|n| n == "session-placement"), "{names:?}");
}

#[test]
fn a_workflow_without_its_substitutions_is_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/session-placement.asl.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let error = StateMachine::from_json_with_substitutions(&text, &HashMap::new()).unwrap_err();
    assert!(error.to_string().contains("${WorkflowTasksFunctionArn}"), "{error}");
}
