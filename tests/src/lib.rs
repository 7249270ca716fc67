//! queuematch-e2e: cross-crate tests. The tests live in `tests/tests/`; this library holds what
//! they share.

use std::path::PathBuf;

/// The repository's root, where `examples/`, `infra/` and `workflows/` live.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
