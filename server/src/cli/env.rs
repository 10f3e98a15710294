//! The environment `distant-server` keeps for itself and hands to the
//! processes it spawns (language servers, shells, `proc/spawn`).
//!
//! Spawned processes inherit the server's environment, plus the request's
//! own `env`, minus:
//!
//! - `DISTANT_KEY` — always. [`take_key`] reads it and removes it from the
//!   process environment first thing in `main`, before any thread exists,
//!   so nothing spawned later can read the key (`/proc/PID/environ` of a
//!   child shows only what the child was given). The value is overwritten
//!   in place first, so the server's own `/proc/PID/environ` (the initial
//!   block the kernel reports) no longer shows it either.
//! - the per-login variables in [`PER_LOGIN`] — in the `daemon` (ssh mode)
//!   only. The daemon outlives the ssh login that started it and serves
//!   later ones; the first login's agent socket, client address or X display
//!   must not reach the processes of later sessions ([`forget_login`]).
//!
//! Both run while the process is single-threaded (the start of `main`, or
//! the proxy's `Command` for the daemon it starts).

/// The variable `listen` may read its key from.
pub const KEY_VAR: &str = "DISTANT_KEY";

/// Variables that describe one ssh login, stale for any other.
pub const PER_LOGIN: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "SSH_ORIGINAL_COMMAND",
    "SSH_USER_AUTH",
    "DISPLAY",
    "XAUTHORITY",
    "XDG_SESSION_ID",
];

/// Reads `DISTANT_KEY` and removes it from this process's environment.
/// Call only while single-threaded (the top of `main`).
pub fn take_key() -> Option<String> {
    let value = std::env::var(KEY_VAR).ok();
    if value.is_some() {
        // Overwrite the value where it lies (for the initial environment,
        // the block `/proc/PID/environ` reads), then unset it.
        // SAFETY: single-threaded (see above); getenv returns the NUL-
        // terminated value inside the writable environment string, and we
        // write only its `strlen` bytes.
        unsafe {
            let p = libc::getenv(c"DISTANT_KEY".as_ptr());
            if !p.is_null() {
                std::ptr::write_bytes(p, b'x', libc::strlen(p));
            }
        }
    }
    std::env::remove_var(KEY_VAR);
    value
}

/// Removes [`PER_LOGIN`] from this process's environment. Call only while
/// single-threaded.
pub fn forget_login() {
    for name in PER_LOGIN {
        std::env::remove_var(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_taken_and_gone() {
        // The only test in this binary touching these variables.
        std::env::set_var(KEY_VAR, "abc");
        std::env::set_var("SSH_AUTH_SOCK", "/tmp/agent");
        assert_eq!(take_key().as_deref(), Some("abc"));
        assert!(std::env::var_os(KEY_VAR).is_none());
        assert_eq!(take_key(), None);
        forget_login();
        assert!(std::env::var_os("SSH_AUTH_SOCK").is_none());
    }
}
