//! `queuematch ruleset validate`, run as a designer runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .arg("ruleset")
        .arg("validate")
        .args(files)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("queuematch does not run: {e}"))
}

#[test]
fn good_rule_sets_exit_zero_and_name_their_queues() {
    let dir = repo().join("examples/rulesets");
    let files: Vec<_> = ["ranked-1v1", "ranked-5v5", "coop-4", "battle-royale-60"]
        .iter()
        .map(|n| dir.join(format!("{n}.json")))
        .collect();
    let out = validate(&files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for queue in ["ranked-1v1", "ranked-5v5", "coop-4", "battle-royale-60"] {
        assert!(stdout.contains(&format!("ok, queue `{queue}`")), "{stdout}");
    }
}

#[test]
fn a_bad_rule_set_exits_one_showing_each_error_in_its_text() {
    let dir = std::env::temp_dir().join(format!("qm-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{
  "name": "duel",
  "ruleLanguageVersion": "1.0",
  "playerAttributes": [{"name": "skill", "type": "number"}],
  "teams": [{"name": "a", "minPlayers": 1, "maxPlayers": 1}, {"name": "b", "minPlayers": 1, "maxPlayers": 1}],
  "rules": [{"name": "fair", "type": "distance", "attribute": "skil", "maxDistnce": 100}]
}
"#,
    )
    .unwrap();
    let good = repo().join("examples/rulesets/ranked-1v1.json");
    let out = validate(&[good, bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Every error, each with its path, its message and the line it is on.
    assert!(
        stderr.contains("$.rules[0].attribute: unknown attribute `skil`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("$.rules[0].maxDistnce: unknown field `maxDistnce`; did you mean `maxDistance`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("$.rules[0]: missing required field `maxDistance`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"6 │   "rules": [{"name": "fair""#),
        "the source line is shown: {stderr}"
    );
    assert!(stderr.contains("bad.json: 3 errors"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_syntax_error_points_at_its_line() {
    let dir = std::env::temp_dir().join(format!("qm-validate-syntax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.json");
    std::fs::write(&bad, "{\n  \"name\": \"duel\",\n  \"teams\": [\n}\n").unwrap();
    let out = validate(&[bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
    assert!(stderr.contains("broken.json:4:1"), "the position is given: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Windows editors save UTF-8 with a byte order mark: errors are shown in the text as without one.
#[test]
fn a_file_with_a_byte_order_mark_shows_its_errors_in_its_text() {
    let dir = std::env::temp_dir().join(format!("qm-validate-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rule_set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap())
            .unwrap();
    rule_set["name"] = serde_json::json!("");
    let semantic = dir.join("semantic.json");
    let pretty = serde_json::to_string_pretty(&rule_set).unwrap();
    std::fs::write(&semantic, format!("\u{feff}{pretty}")).unwrap();
    let syntax = dir.join("syntax.json");
    std::fs::write(&syntax, "\u{feff}{\"name\": \"x\", oops}\n").unwrap();

    let out = validate(&[semantic, syntax]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("$.name: "), "{stderr}");
    // The error's line is found and shown, without the mark, and with it the position.
    let line = 1 + pretty.lines().position(|l| l.starts_with(r#"  "name": """#)).unwrap();
    assert!(stderr.contains(&format!("semantic.json:{line}:3]")), "{stderr}");
    assert!(stderr.contains(&format!(r#"{line} │   "name": "","#)), "{stderr}");
    assert!(!stderr.contains('\u{feff}'), "{stderr}");
    // `oops` is the 15th character of the line after the mark.
    assert!(stderr.contains("syntax.json:1:15]"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_file_is_an_error_not_a_verdict() {
    let out = validate(&[repo().join("no/such/ruleset.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_files_after_a_missing_one_are_still_checked() {
    let good = repo().join("examples/rulesets/ranked-1v1.json");
    let out = validate(&[repo().join("no/such/ruleset.json"), good]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("ruleset.json"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok, queue `ranked-1v1`"),
        "the file after the missing one was not checked"
    );
}
