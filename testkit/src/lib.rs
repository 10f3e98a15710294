//! Test helpers shared by every crate's integration tests, so each fault
//! and probe is written once:
//!
//! - [`FaultProxy`]: a loopback TCP relay that cuts, black-holes, refuses
//!   or redirects connections — what a flaky network or a restarted server
//!   looks like to a client.
//! - [`pid_alive`], [`rss_kib`]: /proc probes for "the process was reaped"
//!   and "memory stayed bounded".
//! - [`wait_until`]: polling with a deadline instead of fixed sleeps.
//! - [`workspace_bin`]: the path of a workspace binary (built on demand),
//!   for tests that run the real `distant-server` / `distant-bridge`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP relay on 127.0.0.1 that can cut, black-hole, refuse or redirect
/// the connections it carries.
#[derive(Clone)]
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Where new connections are relayed to (change it to "restart" a server).
    pub target: Arc<Mutex<SocketAddr>>,
    /// While set, bytes are swallowed in both directions and nothing is
    /// closed: what a network switch looks like.
    pub blackhole: Arc<AtomicBool>,
    /// While set, new connections are accepted and closed at once.
    pub refuse: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let proxy = FaultProxy {
            addr: listener.local_addr().expect("proxy address"),
            target: Arc::new(Mutex::new(target)),
            blackhole: Arc::default(),
            refuse: Arc::default(),
            relays: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if p.refuse.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = *lock(&p.target);
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let a = tokio::spawn(pump(ri, wo, p.blackhole.clone()));
                let b = tokio::spawn(pump(ro, wi, p.blackhole.clone()));
                lock(&p.relays).extend([a, b]);
            }
        });
        proxy
    }

    /// Drops every relayed connection (both sockets close).
    pub fn cut(&self) {
        for relay in lock(&self.relays).drain(..) {
            relay.abort();
        }
    }

    /// Starts or stops swallowing bytes.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    /// Starts or stops refusing new connections.
    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Relays new connections to `target` from now on.
    pub fn retarget(&self, target: SocketAddr) {
        *lock(&self.target) = target;
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackhole: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackhole.load(Ordering::SeqCst) {
            continue; // swallowed: the link looks alive but nothing arrives
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// VmRSS and VmHWM (peak) of a process, in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after
/// `within`.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Path of the workspace binary `name` (from package `package`) in the
/// target directory the running test lives in, built once if missing.
/// `scripts/test-all` builds every binary first; this covers running one
/// crate's tests alone.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    static BUILD: OnceLock<Mutex<()>> = OnceLock::new();
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(name);
    let _guard = lock(BUILD.get_or_init(|| Mutex::new(())));
    if !bin.exists() {
        let mut cmd = std::process::Command::new(env_cargo());
        cmd.args(["build", "-p", package, "--bin", name]);
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building {name} failed");
    }
    bin
}

fn env_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
