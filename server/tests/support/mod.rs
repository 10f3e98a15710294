//! Shared harness of the end-to-end tests: the real `distant-server`
//! binary as a child process (killed on drop), protocol-driver clients, a
//! fault-injecting TCP relay, `/proc` probes and deadline-based waiting.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{
    self, ClientOptions, ClientSession, DialFuture, Dialer, ReconnectPolicy,
};
use distant_protocol::driver::rpc::RpcClient;
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::driver::ConnectionState;
use distant_protocol::handshake::ClientConfig;
use distant_protocol::msg::{Op, Reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use distant_testkit::{pid_alive, rss_kib, wait_until, FaultProxy};

pub const BIN: &str = env!("CARGO_BIN_EXE_distant-server");

/// A `distant-server listen` child; killed when dropped.
pub struct ServerProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: StaticKey,
}

impl ServerProc {
    /// Starts `distant-server listen --port 0 EXTRA…` with the key in
    /// `DISTANT_KEY` and parses its credentials line.
    pub fn start(extra: &[&str]) -> Self {
        let key = StaticKey::generate(&mut rand::rngs::OsRng);
        let mut child = Command::new(BIN)
            .args(["listen", "--port", "0"])
            .args(extra)
            .env("DISTANT_KEY", &*key.to_hex())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn distant-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the credentials line");
        let line = line.trim();
        let rest = line
            .strip_prefix("distant://:")
            .unwrap_or_else(|| panic!("unexpected credentials line {line:?}"));
        let (hex, hostport) = rest.split_once('@').expect("KEY@HOST:PORT");
        assert_eq!(
            StaticKey::from_hex(hex).unwrap(),
            key,
            "the printed key is ours"
        );
        let addr: SocketAddr = hostport.parse().expect("HOST:PORT");
        Self { child, addr, key }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client_options(key: &StaticKey, give_up_after: Duration) -> ClientOptions {
    let config = ClientConfig {
        static_key: Some(key.clone()),
        ..ClientConfig::default()
    };
    let mut options = ClientOptions::new(config);
    options.reconnect = ReconnectPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        give_up_after,
        ..ReconnectPolicy::default()
    };
    options.dial_timeout = Duration::from_secs(2);
    options.handshake_timeout = Duration::from_secs(5);
    options
}

pub fn tcp_dialer(addr: SocketAddr) -> Arc<dyn Dialer> {
    let target = addr.to_string();
    Arc::new(move || -> DialFuture {
        let target = target.clone();
        Box::pin(async move { dial_tcp(&target, Duration::from_secs(2)).await })
    })
}

pub async fn session(addr: SocketAddr, key: &StaticKey, give_up_after: Duration) -> ClientSession {
    client::connect(client_options(key, give_up_after), tcp_dialer(addr))
        .await
        .expect("connect to the server")
}

pub async fn rpc(addr: SocketAddr, key: &StaticKey) -> RpcClient {
    RpcClient::new(session(addr, key, Duration::from_secs(30)).await)
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_for_state(rpc: &RpcClient, want: &str, within: Duration) -> ConnectionState {
    let mut state = rpc.state();
    tokio::time::timeout(within, async {
        loop {
            let current = state.borrow_and_update().clone();
            if current.word() == want {
                return current;
            }
            if state.changed().await.is_err() {
                return state.borrow().clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state did not become {want} within {within:?}"))
}

/// Reads a whole file over `FileRead`.
pub async fn read_file(rpc: &RpcClient, path: &Path) -> Vec<u8> {
    let mut stream = rpc
        .stream(Op::FileRead {
            path: path.display().to_string(),
            chunk_size: None,
            offset: 0,
            length: None,
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(reply) = stream.recv().await {
        match reply.unwrap() {
            Reply::FileChunk { offset, data } => {
                assert_eq!(offset as usize, out.len());
                out.extend_from_slice(&data);
            }
            Reply::FileEnd(_) => return out,
            other => panic!("unexpected reply to FileRead: {other:?}"),
        }
    }
    panic!("FileRead ended without FileEnd")
}

/// A `distant-server proxy` child's stdout and stdin as one transport; the
/// child is killed when the transport is dropped.
pub struct ChildTransport {
    pub child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stdin: tokio::process::ChildStdin,
}

impl ChildTransport {
    /// Spawns `distant-server proxy ARGS…` with the given environment and
    /// reads its greeting; returns the transport and the key it announced.
    pub async fn spawn_proxy(
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> std::io::Result<(Self, StaticKey)> {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("proxy").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        // Byte by byte: nothing after the newline belongs to the greeting.
        let mut line = Vec::new();
        loop {
            let b = stdout.read_u8().await?;
            if b == b'\n' {
                break;
            }
            line.push(b);
            if line.len() > 200 {
                return Err(std::io::Error::other("greeting too long"));
            }
        }
        let line = String::from_utf8(line).map_err(std::io::Error::other)?;
        let hex = line
            .strip_prefix("DISTANT-PROXY 1 key=")
            .ok_or_else(|| std::io::Error::other(format!("unexpected greeting {line:?}")))?;
        let key = StaticKey::from_hex(hex).map_err(std::io::Error::other)?;
        Ok((
            Self {
                child,
                stdout,
                stdin,
            },
            key,
        ))
    }
}

impl AsyncRead for ChildTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildTransport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stdin).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

/// The environment a process was started with (`/proc/PID/environ`).
pub fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read /proc/PID/environ");
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Spawns `cmd` (pipes, or a PTY) and returns its pid; the stream is
/// returned so the process lives as long as the caller keeps it.
pub async fn spawn_pid(
    rpc: &RpcClient,
    cmd: &[&str],
    pty: bool,
) -> (u32, distant_protocol::driver::rpc::ReplyStream) {
    let op = distant_protocol::msg::Op::ProcSpawn {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        env: std::collections::BTreeMap::from([("FROM_REQUEST".to_owned(), "1".to_owned())]),
        pty: pty.then_some(distant_protocol::msg::PtySize { rows: 24, cols: 80 }),
        framing: distant_protocol::msg::OutputFraming::Raw,
    };
    let mut stream = rpc.stream(op).await.expect("spawn");
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), stream.recv())
        .await
        .expect("spawn answered in time")
        .expect("stream open")
        .expect("spawned");
    match first {
        Reply::ProcSpawned { pid, .. } => (pid, stream),
        other => panic!("{other:?}"),
    }
}
