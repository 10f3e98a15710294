//! Shared helpers for the manager, stdio, CLI and demo tests: a private
//! `XDG_RUNTIME_DIR` per test, `distant-bridge` child processes that are
//! killed on drop, raw framed I/O, and deadline-bounded waits.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::FramedRead;

use distant_bridge::client::JsonRpcClient;
use distant_bridge::framing::{Frame, LspCodec};

pub const BIN: &str = env!("CARGO_BIN_EXE_distant-bridge");

pub use distant_testkit::TempDir;

/// One test's environment: its own XDG_RUNTIME_DIR. Kills every manager it
/// saw when dropped.
pub struct Env {
    pub runtime: TempDir,
    pub idle_exit: u64,
    seen: RefCell<Vec<u32>>,
}

impl Env {
    pub fn new(tag: &str) -> Self {
        Self {
            runtime: TempDir::new(tag),
            idle_exit: 30,
            seen: RefCell::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.runtime.path().join("distant")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir().join("manager.sock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir().join("manager.pid")
    }

    /// The manager's pid from its pid file (remembered for cleanup).
    pub fn manager_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.seen.borrow_mut().push(pid);
        Some(pid)
    }

    /// A `distant-bridge` command in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env(
                "DISTANT_BRIDGE_MANAGER_IDLE_EXIT",
                self.idle_exit.to_string(),
            )
            .env_remove("DISTANT_BRIDGE_SOCKET")
            .env_remove("DISTANT_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs a command to completion (with a deadline) and returns
    /// (status code, stdout, stderr).
    pub async fn run(&self, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut c = self.command(args);
        c.stdin(Stdio::piped());
        let mut child = c.spawn().expect("spawn distant-bridge");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        tokio::spawn(async move {
            let _ = input.write_all(&data).await;
        });
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("distant-bridge finished within 30 s")
            .expect("wait");
        self.manager_pid();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `distant-bridge stdio ARGS…` with piped stdio.
    pub fn stdio(&self, args: &[&str]) -> Bridge {
        let mut all = vec!["stdio"];
        all.extend_from_slice(args);
        let mut c = self.command(&all);
        c.stdin(Stdio::piped());
        let mut child = c.spawn().expect("spawn distant-bridge stdio");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        Bridge {
            child,
            stdin: Some(stdin),
            stdout: Some(stdout),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.manager_pid();
        for pid in self.seen.borrow().iter() {
            // SAFETY: sending a signal to a pid we saw in our own pid file.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

/// A `distant-bridge stdio` child.
pub struct Bridge {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

impl Bridge {
    /// A JSON-RPC client over the child's stdio.
    pub fn client(&mut self) -> JsonRpcClient {
        let (client, _notes) = JsonRpcClient::new(
            self.stdout.take().expect("stdout unused"),
            self.stdin.take().expect("stdin unused"),
        );
        client
    }

    /// Waits (bounded) for the child to exit; returns (code, stderr).
    pub async fn finish(mut self, within: Duration) -> (i32, String) {
        let mut stderr = self.child.stderr.take().expect("stderr");
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the bridge exited in time")
            .expect("wait");
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        (status.code().unwrap_or(-1), err)
    }
}

/// `initialize` through a client; returns the result.
pub async fn initialize(client: &JsonRpcClient) -> Value {
    tokio::time::timeout(
        Duration::from_secs(10),
        client.request("initialize", json!({"clientName": "test"})),
    )
    .await
    .expect("initialize answered in time")
    .expect("initialize succeeded")
}

/// Raw framed I/O with a bridge (for malformed input).
pub struct Raw {
    pub stdin: ChildStdin,
    pub frames: FramedRead<ChildStdout, LspCodec>,
}

impl Raw {
    pub fn new(bridge: &mut Bridge) -> Self {
        Self {
            stdin: bridge.stdin.take().expect("stdin"),
            frames: FramedRead::new(bridge.stdout.take().expect("stdout"), LspCodec::strict()),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    pub async fn recv(&mut self) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(10), self.frames.next())
            .await
            .expect("an answer in time")
            .expect("stream open")
            .expect("frame");
        match frame {
            Frame::Message(body) => serde_json::from_slice(&body).expect("JSON"),
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_until(within: Duration, what: &str, cond: impl FnMut() -> bool) {
    distant_testkit::wait_until(what, within, cond).await
}

/// Whether `pid` is a live (non-zombie) process.
#[allow(unused_imports)]
pub use distant_testkit::pid_alive as alive;

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o777
}
