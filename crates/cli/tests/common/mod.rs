//! What the CLI's end-to-end tests share: a real `queuematch dev` process on a free port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The repository's root, for its rule sets and workflows.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `queuematch dev`, killed (SIGKILL, no shutdown of any kind) by `stop` or when dropped.
pub struct DevProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the line it prints first.
    pub url: String,
}

impl DevProcess {
    /// Starts `queuematch dev --port 0` on `rulesets` and the repository's workflows, with `home` for
    /// its dev secret and, when given, `--data-dir`. Returns once it says where it listens.
    #[allow(
        dead_code,
        reason = "each test binary compiles this module; the bots tests start dev with arguments"
    )]
    pub fn spawn(rulesets: &Path, home: &Path, data_dir: Option<&Path>) -> DevProcess {
        Self::spawn_with(rulesets, home, data_dir, &[])
    }

    /// As [`spawn`](Self::spawn), with more arguments for `queuematch dev`.
    pub fn spawn_with(rulesets: &Path, home: &Path, data_dir: Option<&Path>, extra: &[&str]) -> DevProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_queuematch"));
        command
            .args(["dev", "--port", "0"])
            .arg("--rulesets")
            .arg(rulesets)
            .arg("--workflows")
            .arg(repo().join("workflows"))
            .arg("--home")
            .arg(home);
        if let Some(data) = data_dir {
            command.arg("--data-dir").arg(data);
        }
        command.args(extra);
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("queuematch dev does not start: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap_or_else(|e| panic!("{e}"));
        // Keep reading what it prints, as a terminal would.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = first
            .trim()
            .strip_prefix("queuematch dev: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        DevProcess { child, url }
    }

    /// `kill -9`, then waits for it to be gone. Harmless when it is gone already.
    pub fn stop(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
