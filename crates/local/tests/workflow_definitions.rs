//! Every workflow of `workflows/` is a valid Express state machine for the embedded engine, under the
//! DefinitionSubstitutions the local stack gives it: the same files deploy with SAM.

use queuematch_asl::StateMachine;
use queuematch_local::workflows::{substitutions, DEFINITION_SUFFIX};
use queuematch_local::{LocalWorkflows, WorkflowsConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

#[test]
fn every_workflow_validates_as_express_under_the_local_substitutions() {
    let dir = workflows_dir();
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(DEFINITION_SUFFIX)
        })
        .count();
    // `load` refuses the first definition with a problem, or one that cannot run as Express.
    let workflows = LocalWorkflows::load(&dir, WorkflowsConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(workflows.names().len(), files);
    assert!(workflows.names().contains(&"session-placement"));
}

#[test]
fn every_placeholder_of_a_workflow_has_a_local_value() {
    for entry in std::fs::read_dir(workflows_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // With none, the definition does not even parse; with the local ones, it does.
        assert!(
            StateMachine::from_json_with_substitutions(&text, &HashMap::new()).is_err(),
            "{}",
            path.display()
        );
        assert!(
            StateMachine::from_json_with_substitutions(&text, &substitutions()).is_ok(),
            "{}",
            path.display()
        );
    }
}

/// Why loading a directory that holds one workflow, `name`, defined by `text`, failed.
fn load_error(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join(format!("{name}{DEFINITION_SUFFIX}")), text).unwrap_or_else(|e| panic!("{e}"));
    match LocalWorkflows::load(dir.path(), WorkflowsConfig::default()) {
        Ok(_) => panic!("workflow {name} was loaded"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn load_refuses_a_definition_that_gives_a_key_twice() {
    // GIVEN a workflow whose Pass state gives its Result twice
    let text = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Result":1,"Result":2,"End":true}}}"#;
    // WHEN the workflows are loaded, THEN the workflow is refused, by name, with the key and where
    // it is given again
    assert_eq!(
        load_error("twice", text),
        "workflow twice: the definition is not valid JSON: the key `Result` is given twice in one object \
         at line 1 column 63"
    );
}

#[test]
fn load_refuses_a_sync_task_naming_it_as_every_definition_problem_is_named() {
    // GIVEN a workflow with a .sync task, which the Express workflows of the template cannot run
    let text =
        r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.sync","End":true}}}"#;
    // WHEN the workflows are loaded, THEN the task is refused at its path from the root of the definition
    assert_eq!(
        load_error("sync", text),
        "workflow sync: the definition has 1 problem(s)\n  - state 'A', field States.A.Resource: Express workflows \
         support request/response tasks only, not 'arn:aws:states:::lambda:invoke.sync'"
    );
}
