//! `~/.queuematch`: where the dev secret lives, so dev tokens survive restarts of `queuematch dev`.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_FILE: &str = "dev-secret";
const SECRET_BYTES: usize = 32;

/// The directory that holds local state: `--home`, else `$QUEUEMATCH_HOME`, else `~/.queuematch`.
pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let home = std::env::var_os("HOME").context("neither --home nor $HOME is set")?;
    Ok(Path::new(&home).join(".queuematch"))
}

/// Reads the dev secret from `home`, creating it (random, readable by its owner only) if missing.
pub fn load_or_create_secret(home: &Path) -> anyhow::Result<Vec<u8>> {
    let path = home.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = URL_SAFE_NO_PAD.decode(text.trim()).with_context(|| {
                format!(
                    "{} is not a base64url dev secret; delete it to make a new one",
                    path.display()
                )
            })?;
            anyhow::ensure!(
                secret.len() >= SECRET_BYTES,
                "{} holds a secret shorter than 32 bytes",
                path.display()
            );
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_secret(home, &path),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the secret whole or not at all: it is written to a file of this process's own, then linked
/// in under its name, which fails if another process linked theirs first. A process starting beside
/// this one (`queuematch dev` and `queuematch submit` on a fresh machine) reads either no file or a
/// complete one, never one half written.
fn create_secret(home: &Path, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let draft = home.join(format!(".{SECRET_FILE}.{}.{}", std::process::id(), draft_suffix()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&draft).and_then(|mut file| {
        file.write_all(URL_SAFE_NO_PAD.encode(&secret).as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
    std::fs::remove_file(&draft).ok();
    match linked {
        Ok(()) => Ok(secret),
        // Another process created it first: use theirs, so both mint the same tokens.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_secret(home),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Tells apart the drafts of threads of one process.
fn draft_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_created_once_and_then_read_back() {
        let dir = std::env::temp_dir().join(format!("qm-home-{}", std::process::id()));
        let first = load_or_create_secret(&dir).unwrap();
        let second = load_or_create_secret(&dir).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn processes_starting_together_read_one_whole_secret() {
        let dir = std::env::temp_dir().join(format!("qm-home-race-{}", std::process::id()));
        let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let started: Vec<_> = (0..16).map(|_| scope.spawn(|| load_or_create_secret(&dir))).collect();
            started
                .into_iter()
                .map(|t| t.join().expect("no panic").expect("every caller gets the secret"))
                .collect()
        });
        assert!(secrets.iter().all(|s| s == &secrets[0] && s.len() == SECRET_BYTES));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [SECRET_FILE], "no draft is left behind");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_corrupt_secret_is_an_error_that_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("qm-home-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(SECRET_FILE), "not base64 !!!").unwrap();
        let err = load_or_create_secret(&dir).unwrap_err();
        assert!(format!("{err:#}").contains("delete it to make a new one"), "{err:#}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
