//! A reader that stops early (`queuematch … | head`) ends the command quietly, as SIGPIPE would,
//! rather than with a panic and its backtrace.

use std::process::{Command, Stdio};

#[test]
fn a_command_whose_reader_has_gone_ends_quietly() {
    // A pipe whose reading end is closed before the command starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("{e}"));
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(["schema", "ticket-request", "--rulesets"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rulesets"))
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("queuematch does not run: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}
