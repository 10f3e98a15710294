//! Test helpers shared by every crate's integration tests, so each fault
//! and probe is written once:
//!
//! - [`FaultProxy`]: a loopback TCP relay that cuts (at once or after N
//!   bytes), black-holes, refuses, half-closes or redirects connections — what a flaky network or a restarted server
//!   looks like to a client.
//! - [`pid_alive`], [`rss_kib`], [`children_named`], [`all_pids`]: /proc probes for "the
//!   process was reaped", "its children", and
//!   "memory stayed bounded".
//! - [`wait_until`]: polling with a deadline instead of fixed sleeps.
//! - [`workspace_bin`]: the path of a workspace binary (built on demand),
//!   for tests that run the real `distant-server` / `distant-bridge`.
//! - [`uploadable_server`]: the static `distant-server` the bridge uploads
//!   over ssh (`scripts/build-servers`, brought up to date once per test
//!   process).
//! - [`TempDir`]: a scratch directory removed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A TCP relay on 127.0.0.1 that can cut, black-hole, refuse, half-close
/// or redirect the connections it carries.
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
    /// Bytes (both directions together) still forwarded before every
    /// relayed connection is cut; `u64::MAX` = no cut armed.
    cut_budget: Arc<AtomicU64>,
    /// Wakes the pumps of one direction to half-close it.
    half_close: Arc<[Notify; 2]>,
    /// Connections accepted and relayed so far.
    accepted: Arc<AtomicU64>,
    /// Bytes forwarded so far (both directions).
    forwarded: Arc<AtomicU64>,
}

/// A direction through a [`FaultProxy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting client to the target.
    ToTarget = 0,
    /// From the target back to the client.
    ToClient = 1,
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
            cut_budget: Arc::new(AtomicU64::new(u64::MAX)),
            half_close: Arc::new([Notify::new(), Notify::new()]),
            accepted: Arc::default(),
            forwarded: Arc::default(),
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
                p.accepted.fetch_add(1, Ordering::Relaxed);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let a = tokio::spawn(pump(ri, wo, p.clone(), Direction::ToTarget));
                let b = tokio::spawn(pump(ro, wi, p.clone(), Direction::ToClient));
                let mut relays = lock(&p.relays);
                relays.retain(|r| !r.is_finished());
                relays.extend([a, b]);
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

    /// Forwards `bytes` more bytes (counting both directions), then cuts
    /// every relayed connection: a cut at an arbitrary byte offset, in the
    /// middle of a frame more often than not. Idle links stay armed until
    /// traffic flows.
    pub fn cut_after(&self, bytes: u64) {
        self.cut_budget.store(bytes, Ordering::SeqCst);
    }

    /// True while a [`cut_after`](Self::cut_after) has not fired yet.
    pub fn cut_pending(&self) -> bool {
        self.cut_budget.load(Ordering::SeqCst) != u64::MAX
    }

    /// Disarms a pending [`cut_after`](Self::cut_after).
    pub fn disarm_cut(&self) {
        self.cut_budget.store(u64::MAX, Ordering::SeqCst);
    }

    /// Half-closes every relayed connection in direction `dir`: the
    /// receiving end reads EOF, the sending end's bytes are no longer
    /// read; the other direction keeps flowing.
    pub fn half_close(&self, dir: Direction) {
        self.half_close[dir as usize].notify_waiters();
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

    /// Connections relayed so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    proxy: FaultProxy,
    dir: Direction,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let half_closed = proxy.half_close[dir as usize].notified();
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = half_closed => {
                // The receiver reads EOF; the sender's bytes stay unread.
                let _ = to.shutdown().await;
                std::future::pending::<()>().await;
                return;
            }
        };
        if proxy.blackhole.load(Ordering::SeqCst) {
            continue; // swallowed: the link looks alive but nothing arrives
        }
        let mut send = n;
        let mut cut_now = false;
        let budget = &proxy.cut_budget;
        let mut left = budget.load(Ordering::SeqCst);
        while left != u64::MAX {
            let take = (n as u64).min(left);
            match budget.compare_exchange(left, left - take, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    send = take as usize;
                    cut_now = take == left;
                    break;
                }
                Err(now) => left = now,
            }
        }
        if send > 0 && to.write_all(&buf[..send]).await.is_err() {
            return;
        }
        proxy.forwarded.fetch_add(send as u64, Ordering::Relaxed);
        if cut_now {
            budget.store(u64::MAX, Ordering::SeqCst);
            let _ = to.flush().await;
            proxy.cut();
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

/// Every process id in `/proc` right now.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Children of `parent` whose command name is `comm`.
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for pid in all_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next();
        let ppid = rest.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && name == comm && state != Some("Z") {
            pids.push(pid);
        }
    }
    pids
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

/// The static, stripped `distant-server` the bridge uploads to a Linux
/// remote of `arch` (`x86_64`, `aarch64`):
/// `target/servers/linux-ARCH/distant-server`. The first call in a test
/// process runs `scripts/build-servers` for that target (a no-op when it is
/// up to date; `scripts/test-all` runs it first), so tests never run a
/// stale or missing one: a failed build fails the test.
pub fn uploadable_server(arch: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf();
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    let bin = target.join(format!("servers/linux-{arch}/distant-server"));
    let mut built = lock(BUILT.get_or_init(|| Mutex::new(Vec::new())));
    if !built.iter().any(|a| a == arch) {
        let status = std::process::Command::new(root.join("scripts/build-servers"))
            .arg(format!("{arch}-unknown-linux-musl"))
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO", env_cargo())
            .status()
            .expect("run scripts/build-servers");
        assert!(
            status.success() && bin.is_file(),
            "scripts/build-servers {arch}-unknown-linux-musl failed"
        );
        built.push(arch.to_owned());
    }
    bin
}

fn env_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A fresh directory under the system temp dir, removed on drop. Its path
/// is canonical (symlinks resolved) so it compares equal to paths a server
/// reports back.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `distant-TAG-<pid>-<n>` (unique within and across runs).
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "distant-{tag}-{}-{n}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p.canonicalize().expect("canonicalize temp dir"))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `path/p` as a string, the form the bridge API takes.
    pub fn join(&self, p: &str) -> String {
        self.0.join(p).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
