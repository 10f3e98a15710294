//! Shared helpers of the `api_*` integration tests: the `distant-server`
//! binary, temporary directories, an [`Api`] served over an in-memory pipe
//! to a [`JsonRpcClient`], servers started by hand, and notification
//! waiting.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use distant_bridge::api::{Api, ApiOptions, ServeEnd};
use distant_bridge::client::{ClientError, JsonRpcClient};
use distant_bridge::jsonrpc::{Notification, RpcError};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(15);

/// The `distant-server` binary next to the test executables (built once
/// if missing).
pub fn server_binary() -> PathBuf {
    distant_testkit::workspace_bin("distant-server", "distant-server")
}

pub use distant_testkit::TempDir;

pub fn new_api() -> Arc<Api> {
    Api::new(ApiOptions {
        server_binary: Some(server_binary()),
    })
}

/// One peer of the bridge API: a JSON-RPC client talking either to an
/// in-process [`Api`] over a duplex pipe (several peers of one Api share
/// its connections), or to the real `distant-bridge stdio --no-manager`
/// binary over its stdin/stdout — what an editor does.
pub struct Peer {
    pub client: JsonRpcClient,
    pub notes: mpsc::Receiver<Notification>,
    backend: Backend,
}

enum Backend {
    InProcess {
        served: JoinHandle<ServeEnd>,
        /// Copies client → server; aborting it is the peer hanging up.
        line: JoinHandle<()>,
    },
    Stdio(tokio::process::Child),
}

pub fn peer(api: &Arc<Api>) -> Peer {
    let (client_w, mut line_r) = tokio::io::duplex(1 << 20);
    let (mut line_w, server_r) = tokio::io::duplex(1 << 20);
    let (server_w, client_r) = tokio::io::duplex(1 << 20);
    let line = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut line_r, &mut line_w).await;
    });
    let api = api.clone();
    let served = tokio::spawn(async move { api.serve(server_r, server_w).await });
    let (client, notes) = JsonRpcClient::new(client_r, client_w);
    Peer {
        client,
        notes,
        backend: Backend::InProcess { served, line },
    }
}

/// A peer that is the real `distant-bridge stdio --no-manager` process.
pub fn stdio_peer() -> Peer {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_distant-bridge"))
        .args(["--no-manager", "--server-binary"])
        .arg(server_binary())
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start distant-bridge stdio");
    let stdin = child.stdin.take().expect("child stdin");
    let stdout = child.stdout.take().expect("child stdout");
    let (client, notes) = JsonRpcClient::new(stdout, stdin);
    Peer {
        client,
        notes,
        backend: Backend::Stdio(child),
    }
}

impl Peer {
    /// The pid of the `distant-bridge stdio` process (stdio peers only).
    pub fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Stdio(child) => child.id(),
            Backend::InProcess { .. } => None,
        }
    }

    /// Closes the peer's side (the server sees EOF) and waits for serving
    /// to end.
    pub async fn hang_up(self) -> ServeEnd {
        match self.backend {
            Backend::InProcess { served, line } => {
                line.abort();
                tokio::time::timeout(WAIT, served)
                    .await
                    .expect("serve ends at EOF")
                    .expect("serve task")
            }
            Backend::Stdio(mut child) => {
                drop(child.stdin.take());
                drop(self.client);
                let status = tokio::time::timeout(WAIT, child.wait())
                    .await
                    .expect("the bridge exits at EOF")
                    .expect("wait for the bridge");
                assert!(status.success(), "the bridge exited with {status}");
                ServeEnd::Eof
            }
        }
    }

    /// Waits for the server side to finish after `exit` (in-process: how
    /// serving ended; stdio: the process exits 0).
    pub async fn ended(self) -> ServeEnd {
        match self.backend {
            Backend::InProcess { served, .. } => tokio::time::timeout(WAIT, served)
                .await
                .expect("serve ends after exit")
                .expect("serve task"),
            Backend::Stdio(mut child) => {
                let status = tokio::time::timeout(WAIT, child.wait())
                    .await
                    .expect("the bridge exits after exit")
                    .expect("wait for the bridge");
                assert!(status.success(), "the bridge exited with {status}");
                ServeEnd::Exit
            }
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Value {
        match tokio::time::timeout(WAIT, self.client.request(method, params)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("{method} failed: {e:?}"),
            Err(_) => panic!("{method} timed out"),
        }
    }

    pub async fn fail(&self, method: &str, params: Value) -> RpcError {
        match tokio::time::timeout(WAIT, self.client.request(method, params)).await {
            Ok(Ok(v)) => panic!("{method} succeeded unexpectedly: {v}"),
            Ok(Err(ClientError::Rpc(e))) => e,
            Ok(Err(e)) => panic!("{method}: {e:?}"),
            Err(_) => panic!("{method} timed out"),
        }
    }

    pub async fn connect_local(&self) -> String {
        let r = self.call("connect", json!({"destination": "local"})).await;
        r["connection"].as_str().expect("connection id").to_string()
    }

    /// The next notification `method` matching `pred`; others are skipped.
    pub async fn note(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = tokio::time::timeout_at(deadline, self.notes.recv())
                .await
                .unwrap_or_else(|_| panic!("no {method} notification in time"))
                .expect("notification stream ended");
            let params = n.params.unwrap_or(Value::Null);
            if n.method == method && pred(&params) {
                return params;
            }
        }
    }

    /// Every `proc/*` notification of `proc` up to and including its exit.
    pub async fn proc_until_exit(&mut self, proc: &str) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut out = Vec::new();
        loop {
            let n = tokio::time::timeout_at(deadline, self.notes.recv())
                .await
                .expect("process did not exit in time")
                .expect("notification stream ended");
            let params = n.params.unwrap_or(Value::Null);
            if n.method.starts_with("proc/") && params["proc"] == proc {
                let exit = n.method == "proc/exit";
                out.push((n.method, params));
                if exit {
                    return out;
                }
            }
        }
    }
}

/// Concatenated stdout (decoded) of collected `proc/output` notifications.
pub fn stdout_of(notes: &[(String, Value)]) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for (m, p) in notes {
        if m == "proc/output" && p["stream"] == "stdout" {
            let data = p["data"].as_str().unwrap();
            if p["encoding"] == "base64" {
                out.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap(),
                );
            } else {
                out.extend_from_slice(data.as_bytes());
            }
        }
    }
    out
}

/// A `distant-server listen` started by hand with `key`; killed on drop.
pub struct OwnServer {
    child: Child,
    pub url: String,
    pub addr: String,
}

impl OwnServer {
    pub fn start(key: &str) -> Self {
        Self::start_with(Command::new(server_binary()), key)
    }

    /// Runs `command` (a `distant-server`, possibly wrapped: `chroot`,
    /// `qemu-aarch64`) with `listen` on loopback and `key`.
    pub fn start_with(mut command: Command, key: &str) -> Self {
        let mut child = command
            .args(["listen", "--host", "127.0.0.1", "--port", "0"])
            .env("DISTANT_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start distant-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read credentials line");
        let url = line.trim().to_string();
        let addr = url.rsplit_once('@').expect("url").1.to_string();
        Self { child, url, addr }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unused_imports)]
pub use distant_testkit::pid_alive as alive;

pub const KEY_A: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const KEY_B: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
