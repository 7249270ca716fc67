//! The published JSON Schema (`infra/schemas/ruleset.json`) and the rule-set reader agree.
//!
//! Every example must pass both. Every bad case under `tests/fixtures/rulesets/invalid/` must be
//! refused by the reader with the errors its `.expected.json` lists, and the schema must give the
//! verdict recorded there: it refuses every structural fault; the faults draft 4 cannot express
//! (cross-references, sums, orderings, unique names) carry the reason it accepts them.

use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> jsonschema::Validator {
    let schema = read_json(&repo_root().join("infra/schemas/ruleset.json"));
    jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("the rule-set schema does not compile as draft 4: {e}"))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_passes_both_the_schema_and_the_reader() {
    let schema = schema();
    let examples = json_files(&repo_root().join("examples/rulesets"));
    assert!(
        examples.len() >= 4,
        "expected the four example rule sets, found {examples:?}"
    );
    for path in examples {
        let doc = read_json(&path);
        let schema_errors: Vec<_> = schema
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            schema_errors.is_empty(),
            "{}: schema refuses it: {schema_errors:#?}",
            path.display()
        );
        if let Err(e) = RuleSet::from_json(&doc) {
            panic!("{}: the reader refuses it: {e}", path.display());
        }
    }
}

#[test]
fn every_bad_case_is_refused_by_the_reader_and_judged_by_the_schema_as_recorded() {
    let schema = schema();
    let cases = json_files(&repo_root().join("tests/fixtures/rulesets/invalid"));
    assert!(cases.len() >= 20, "expected the bad cases, found {}", cases.len());
    let mut structural = 0;
    for path in cases {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("file name");
        let expected = read_json(&path.with_file_name(format!("{name}.expected.json")));
        let doc = read_json(&path);

        let errors = match RuleSet::from_json(&doc) {
            Ok(_) => panic!("{name}: the reader accepted a bad rule set"),
            Err(e) => e,
        };
        let wanted = expected["errors"].as_array().expect("errors is an array");
        assert_eq!(errors.len(), wanted.len(), "{name}: got {errors}");
        for want in wanted {
            let (path, needle) = (
                want["path"].as_str().expect("path"),
                want["contains"].as_str().expect("contains"),
            );
            assert!(
                errors
                    .iter()
                    .any(|e| e.path.to_string() == path && e.message.contains(needle)),
                "{name}: no error at {path} containing {needle:?}; got {errors}"
            );
        }

        let schema_rejects = !schema.is_valid(&doc);
        match expected["schema"].as_str() {
            Some("rejects") => {
                structural += 1;
                assert!(schema_rejects, "{name}: the schema should refuse this structural fault");
            }
            Some("accepts") => {
                assert!(
                    !schema_rejects,
                    "{name}: recorded as beyond the schema, but the schema refuses it"
                );
                assert!(
                    expected["schemaWhy"].is_string(),
                    "{name}: say why the schema cannot see this"
                );
            }
            other => panic!("{name}: schema verdict must be \"rejects\" or \"accepts\", found {other:?}"),
        }
    }
    assert!(structural >= 8, "too few structural cases: {structural}");
}
