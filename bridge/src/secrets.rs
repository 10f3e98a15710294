//! Where the bridge's command line may take a key from, and where not.
//!
//! A key never comes from argv: every local user can read any process's
//! command line in `/proc/PID/cmdline`. The verbs that need one (`connect`,
//! `lsp --destination`) take it from `--key-file`, or from `DISTANT_KEY`,
//! which [`take_env_key`] reads, overwrites in place and removes first
//! thing in `main` (while single-threaded), so no process the bridge starts
//! (ssh, a local `distant-server`, the manager) inherits it and the
//! bridge's own `/proc/PID/environ` no longer shows it. A `distant://`
//! destination with a key in it, given on the command line, is refused
//! ([`refuse_key_in_argv`]).

use std::sync::OnceLock;

/// The variable a key may be passed in.
pub const KEY_VAR: &str = "DISTANT_KEY";

static ENV_KEY: OnceLock<Option<String>> = OnceLock::new();

/// Reads `DISTANT_KEY`, scrubs and removes it from the environment. Call
/// once, at the top of `main`, before any thread exists.
pub fn take_env_key() {
    let value = std::env::var(KEY_VAR)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    if std::env::var_os(KEY_VAR).is_some() {
        // SAFETY: single-threaded (see above); getenv returns the
        // NUL-terminated value inside the writable environment string, and
        // only its `strlen` bytes are overwritten.
        unsafe {
            let p = libc::getenv(c"DISTANT_KEY".as_ptr());
            if !p.is_null() {
                std::ptr::write_bytes(p, b'x', libc::strlen(p));
            }
        }
        std::env::remove_var(KEY_VAR);
    }
    let _ = ENV_KEY.set(value);
}

/// The key `DISTANT_KEY` held at start, if any.
pub fn env_key() -> Option<String> {
    ENV_KEY.get().cloned().flatten()
}

/// Does `destination` carry a key (`distant://:KEY@HOST:PORT`)?
pub fn has_key(destination: &str) -> bool {
    destination
        .trim()
        .strip_prefix("distant://")
        .and_then(|rest| rest.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| !userinfo.trim_start_matches(':').is_empty())
}

/// An error when a destination given on the command line carries a key.
/// The message never contains the key.
pub fn refuse_key_in_argv(destination: &str) -> Result<(), String> {
    if !has_key(destination) {
        return Ok(());
    }
    let hostport = destination
        .trim()
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or_default();
    Err(format!(
        "refusing a key on the command line (any local user can read it in /proc/PID/cmdline): \
         give distant://{hostport} and the key in DISTANT_KEY or --key-file, then make a new \
         key — this one has been exposed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_destinations_are_found_and_never_echoed() {
        let key = "ab".repeat(32);
        for d in [
            format!("distant://:{key}@h:1"),
            format!("distant://{key}@h:1"),
        ] {
            assert!(has_key(&d));
            let e = refuse_key_in_argv(&d).unwrap_err();
            assert!(!e.contains(&key) && e.contains("distant://h:1"), "{e}");
        }
        for d in ["distant://h:1", "distant://:@h:1", "ssh://u@h", "local"] {
            assert!(!has_key(d), "{d}");
            assert!(refuse_key_in_argv(d).is_ok());
        }
    }
}
