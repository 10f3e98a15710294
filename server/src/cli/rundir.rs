//! The ssh-mode daemon's private directory.
//!
//! Everything the per-user daemon shares with its proxies lives in one
//! directory only its owner can enter:
//!
//! - `$XDG_RUNTIME_DIR/distant/` when `XDG_RUNTIME_DIR` is set (a tmpfs the
//!   login manager makes private to the user), else
//!   `~/.local/state/distant/run/`; or the parent of `--socket PATH`;
//! - `server.sock`: the Unix socket (created 0600);
//! - `server.key`: the daemon's static key, 64 hex digits (0600, created
//!   once and reused, so a reconnecting client still holds the right key);
//! - `daemon.lock`: `flock`ed by the running daemon (one per directory);
//! - `daemon.pid`: the running daemon's pid;
//! - `daemon.log`: the daemon's log (`RUST_LOG` respected).
//!
//! The directory is created with mode 0700. An existing one must belong to
//! the current user and be closed to group and others, or nothing is
//! trusted: another user able to enter it could swap the socket or read
//! the key.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use distant_protocol::auth::StaticKey;

/// File names inside the directory.
pub const SOCKET: &str = "server.sock";
pub const KEY: &str = "server.key";
pub const LOCK: &str = "daemon.lock";
pub const PID: &str = "daemon.pid";
pub const LOG: &str = "daemon.log";

/// Where the daemon's files live.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl RunDir {
    /// The directory for `--socket PATH` if given, else the default one.
    pub fn locate(socket: Option<&Path>) -> Result<Self, String> {
        if let Some(socket) = socket {
            let dir = match socket.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            return Ok(Self {
                dir,
                socket: socket.to_path_buf(),
            });
        }
        let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(x) if !x.is_empty() => PathBuf::from(x).join("distant"),
            _ => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => PathBuf::from(h).join(".local/state/distant/run"),
                _ => {
                    return Err("neither XDG_RUNTIME_DIR nor HOME is set, so there is no \
                         private place for the daemon's socket; set one, or pass --socket PATH"
                        .into())
                }
            },
        };
        let socket = dir.join(SOCKET);
        Ok(Self { dir, socket })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory (0700) or checks an existing one.
    pub fn ensure_private(&self) -> Result<(), String> {
        if let Some(parent) = self.dir.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent).map_err(|e| {
                    format!("cannot create the directory {}: {e}", parent.display())
                })?;
            }
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "cannot create the daemon directory {}: {e}",
                    self.dir.display()
                ))
            }
        }
        check_private(&self.dir, true)
    }

    /// Reads the daemon's key, creating it (0600) if there is none yet.
    /// Only the daemon holding the lock calls this with `create`.
    pub fn load_key(&self, create: bool) -> Result<StaticKey, String> {
        let path = self.file(KEY);
        match fs::symlink_metadata(&path) {
            Ok(_) => {
                check_private(&path, false)?;
                let mut text = String::new();
                fs::File::open(&path)
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
                StaticKey::from_hex(text.trim()).map_err(|e| {
                    format!(
                        "the key file {} is damaged ({e}); remove it and run again \
                         (clients will need to connect anew)",
                        path.display()
                    )
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = StaticKey::generate(&mut rand::rngs::OsRng);
                let tmp = self.file(&format!("{KEY}.{}", std::process::id()));
                let written = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .and_then(|mut f| {
                        f.write_all(key.to_hex().as_bytes())?;
                        f.write_all(b"\n")?;
                        f.sync_all()
                    })
                    .and_then(|_| fs::rename(&tmp, &path));
                if let Err(e) = written {
                    let _ = fs::remove_file(&tmp);
                    return Err(format!("cannot write the key file {}: {e}", path.display()));
                }
                Ok(key)
            }
            Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
        }
    }
}

/// Refuses a path that is not ours or that group or others can access.
fn check_private(path: &Path, want_dir: bool) -> Result<(), String> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    let kind_ok = if want_dir {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    if !kind_ok {
        return Err(format!(
            "{} is not a {} (a symlink or something else is in the way); remove it and run again",
            path.display(),
            if want_dir {
                "directory"
            } else {
                "regular file"
            }
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {me}); the daemon will not trust it. \
             Remove it, or point XDG_RUNTIME_DIR or --socket somewhere private",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:o}, open to other users; the daemon will not use it. \
             Run `chmod {} {}` and try again",
            path.display(),
            if want_dir { "700" } else { "600" },
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_dir_and_refuses_an_open_one() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::locate(Some(&tmp.path().join("a/b/server.sock"))).unwrap();
        run.ensure_private().unwrap();
        let mode = fs::metadata(&run.dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let key = run.load_key(true).unwrap();
        assert_eq!(run.load_key(false).unwrap(), key, "the key is reused");
        let mode = fs::metadata(run.file(KEY)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        fs::set_permissions(&run.dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = run.ensure_private().unwrap_err();
        assert!(err.contains("chmod 700"), "{err}");
        fs::set_permissions(&run.dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(run.file(KEY), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(run.load_key(false).unwrap_err().contains("chmod 600"));
    }
}
