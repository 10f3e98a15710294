//! The `local` destination: a `distant-server listen` child on loopback.
//!
//! The binary is [`ApiOptions::server_binary`](super::ApiOptions), else
//! `distant-server` next to the current executable, else on `$PATH`. A
//! fresh key goes to the child in the `DISTANT_KEY` environment variable
//! (never argv); the child prints one `distant://:KEY@HOST:PORT` line, read
//! with a deadline. The child's stderr is the bridge's stderr. The child is
//! killed when its [`LocalServer`] is dropped (and, on Linux, when the
//! bridge dies).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use distant_protocol::auth::StaticKey;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::destination::Destination;
use crate::jsonrpc::{ErrorKind, RpcError};

/// How long the child may take to print its credentials line.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const SERVER_NAME: &str = "distant-server";

/// A running local server; killed on drop.
pub struct LocalServer {
    child: Child,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Finds the server binary (see the module docs).
pub fn find_binary(configured: Option<&Path>) -> Result<PathBuf, RpcError> {
    if let Some(path) = configured {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(RpcError::new(
            ErrorKind::NotFound,
            format!(
                "the configured distant-server binary {} does not exist",
                path.display()
            ),
        ));
    }
    let mut looked = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join(SERVER_NAME);
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate.display().to_string());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(SERVER_NAME);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    looked.push("every directory of $PATH".into());
    Err(RpcError::new(
        ErrorKind::NotFound,
        format!(
            "cannot find {SERVER_NAME} to start a local server: looked at {}; install it or pass its path",
            looked.join(", ")
        ),
    ))
}

/// Starts a server on 127.0.0.1 and returns it with the destination to dial.
pub async fn start(configured: Option<&Path>) -> Result<(LocalServer, Destination), RpcError> {
    let binary = find_binary(configured)?;
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let mut command = Command::new(&binary);
    command
        .args(["listen", "--host", "127.0.0.1", "--port", "0"])
        .env("DISTANT_KEY", &*key.to_hex())
        // The server's log shares the bridge's stderr (an editor's log
        // pane, a user's terminal): warnings only, unless asked for more.
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    super::die_with_bridge(&mut command);
    let mut child = command.spawn().map_err(|e| {
        RpcError::new(
            ErrorKind::Other,
            format!("cannot start {}: {e}", binary.display()),
        )
    })?;
    let Some(stdout) = child.stdout.take() else {
        return Err(RpcError::internal("the local server's stdout is missing"));
    };
    let server = LocalServer { child };
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let read = tokio::time::timeout(START_TIMEOUT, lines.read_line(&mut line)).await;
    match read {
        Err(_) => {
            return Err(RpcError::new(
                ErrorKind::Timeout,
                format!(
                    "the local server ({}) did not start within {} s",
                    binary.display(),
                    START_TIMEOUT.as_secs()
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(RpcError::new(
                ErrorKind::Other,
                format!("cannot read the local server's address: {e}"),
            ))
        }
        Ok(Ok(0)) => {
            return Err(RpcError::new(
                ErrorKind::Other,
                format!(
                "the local server ({}) exited before printing its address; see its messages above",
                binary.display()
            ),
            ))
        }
        Ok(Ok(_)) => {}
    }
    let destination = Destination::parse(line.trim(), None).map_err(|_| {
        RpcError::new(
            ErrorKind::Other,
            "the local server printed something other than its address",
        )
    })?;
    line.clear();
    // Keep draining stdout so a stray print never meets a closed pipe.
    tokio::spawn(async move {
        let mut sink = [0u8; 1024];
        let mut reader = lines.into_inner();
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    Ok((server, destination))
}
