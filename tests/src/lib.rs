//! Harness of the reliability and attack suite: the real `distant-server`
//! and `distant-bridge` binaries as child processes, an editor that talks
//! JSON-RPC to the bridge over its stdio (notifications routed and hashed
//! as they arrive, so 100 MiB of output never sits in memory), memory
//! sampling, seeded randomness and the figures each test reports.
//!
//! Everything runs on loopback. Sizes scale with `RELIABILITY_SCALE`
//! (default 1.0) and fuzz case counts with `FUZZ_CASES`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use distant_bridge::client::{ClientError, JsonRpcClient};
use distant_bridge::jsonrpc::{Notification, RpcError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use distant_testkit::{pid_alive, rss_kib, wait_until, FaultProxy};

/// The key every server of the suite is started with.
pub const KEY: &str = "5a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Any other key.
pub const WRONG_KEY: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";

/// `RELIABILITY_SCALE` (default 1.0): multiplies the data volumes.
pub fn scale() -> f64 {
    std::env::var("RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

/// `n` scaled by [`scale`], at least 1.
pub fn scaled(n: u64) -> u64 {
    ((n as f64 * scale()) as u64).max(1)
}

/// `RELIABILITY_SEED`, else a fixed seed: runs are reproducible.
pub fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_d157)
}

pub fn server_bin() -> PathBuf {
    distant_testkit::workspace_bin("distant-server", "distant-server")
}

pub fn bridge_bin() -> PathBuf {
    distant_testkit::workspace_bin("distant-bridge", "distant-bridge")
}

/// One line of figures for `docs/RELIABILITY.md`, printed so that
/// `cargo test -- --nocapture` shows it and appended to
/// `target/reliability-figures.txt`.
pub fn figure(test: &str, line: impl AsRef<str>) {
    let line = format!("[{test}] {}", line.as_ref());
    println!("FIGURE {line}");
    let path = target_dir().join("reliability-figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{line}");
    }
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test>
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

pub use distant_testkit::TempDir;

/// A real `distant-server listen` on 127.0.0.1; killed on drop.
pub struct Server {
    pub child: std::process::Child,
    /// `distant://:KEY@127.0.0.1:PORT`
    pub url: String,
    pub addr: std::net::SocketAddr,
}

impl Server {
    /// Starts `distant-server listen --host 127.0.0.1 --port 0 EXTRA…`.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(0, extra)
    }

    /// Like [`start`](Self::start) on a given port.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let mut child = std::process::Command::new(server_bin())
            .args(["listen", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .env("DISTANT_KEY", KEY)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start distant-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the credentials line");
        let url = line.trim().to_string();
        let addr = url
            .rsplit_once('@')
            .expect("KEY@HOST:PORT")
            .1
            .parse()
            .expect("HOST:PORT");
        Self { child, url, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The editor's view of one process: output hashed as it streams in.
#[derive(Default)]
pub struct ProcSink {
    pub stdout_len: u64,
    pub stdout_sha: Sha256,
    /// Every stdout chunk (one per `proc/output`), kept while the total
    /// stays under [`KEEP_LIMIT`].
    pub stdout_chunks: Vec<Vec<u8>>,
    pub stderr: Vec<u8>,
    pub exit: Option<Value>,
    pub outputs: u64,
}

/// Output kept verbatim per process (beyond it only the hash is kept).
pub const KEEP_LIMIT: u64 = 4 << 20;

/// Notifications as the editor saw them.
#[derive(Default)]
pub struct Seen {
    pub procs: HashMap<String, ProcSink>,
    /// (connection, state, detail)
    pub states: Vec<(String, String, String)>,
    pub other: Vec<Notification>,
}

/// An editor: the real `distant-bridge stdio` process driven over its
/// stdin/stdout.
pub struct Editor {
    pub client: JsonRpcClient,
    pub child: tokio::process::Child,
    pub pid: u32,
    pub seen: Arc<Mutex<Seen>>,
    pub changed: Arc<Notify>,
    pub notes_bytes: Arc<AtomicU64>,
    /// Deadline of one request (default [`WAIT`]).
    pub wait: Duration,
    /// The slowest request answered so far, in µs.
    pub max_latency_us: Arc<AtomicU64>,
    /// Requests answered so far (results and errors).
    pub answered: Arc<AtomicU64>,
}

/// Deadline of one ordinary request.
pub const WAIT: Duration = Duration::from_secs(30);

impl Editor {
    /// `distant-bridge --no-manager stdio`: the API in the bridge process.
    pub fn no_manager() -> Self {
        let mut cmd = tokio::process::Command::new(bridge_bin());
        cmd.args(["--no-manager", "--server-binary"])
            .arg(server_bin())
            .arg("stdio");
        Self::spawn(cmd)
    }

    /// `distant-bridge stdio` through the manager whose directory is
    /// `$XDG_RUNTIME_DIR/distant` (started on demand).
    pub fn with_manager(runtime_dir: &Path) -> Self {
        let mut cmd = tokio::process::Command::new(bridge_bin());
        cmd.args(["--server-binary"])
            .arg(server_bin())
            .arg("stdio")
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .env("DISTANT_BRIDGE_MANAGER_IDLE_EXIT", "30");
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: tokio::process::Command) -> Self {
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start distant-bridge stdio");
        let pid = child.id().expect("bridge pid");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (client, mut notes) = JsonRpcClient::new(stdout, stdin);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changed = Arc::new(Notify::new());
        let notes_bytes = Arc::new(AtomicU64::new(0));
        {
            let (seen, changed, notes_bytes) = (seen.clone(), changed.clone(), notes_bytes.clone());
            tokio::spawn(async move {
                while let Some(n) = notes.recv().await {
                    route(&seen, n, &notes_bytes);
                    changed.notify_waiters();
                }
                changed.notify_waiters();
            });
        }
        Editor {
            client,
            child,
            pid,
            seen,
            changed,
            notes_bytes,
            wait: WAIT,
            max_latency_us: Arc::default(),
            answered: Arc::default(),
        }
    }

    /// The bridge's stderr (after it exited).
    pub async fn stderr(&mut self) -> String {
        use tokio::io::AsyncReadExt;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut s)).await;
        }
        s
    }

    pub async fn try_call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let started = std::time::Instant::now();
        match tokio::time::timeout(self.wait, self.client.request(method, params.clone())).await {
            Ok(r) => {
                let us = started.elapsed().as_micros() as u64;
                self.max_latency_us.fetch_max(us, Ordering::Relaxed);
                self.answered.fetch_add(1, Ordering::Relaxed);
                r
            }
            Err(_) => panic!("{method} was not answered within {:?}: {params}", self.wait),
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e:?}"),
        }
    }

    pub async fn fail(&self, method: &str, params: Value) -> RpcError {
        match self.try_call(method, params).await {
            Ok(v) => panic!("{method} succeeded unexpectedly: {v}"),
            Err(ClientError::Rpc(e)) => e,
            Err(e) => panic!("{method}: {e:?}"),
        }
    }

    /// `initialize` then `connect`; returns the connection id.
    pub async fn connect(&self, destination: &str) -> String {
        self.call("initialize", json!({"clientName": "distant-e2e"}))
            .await;
        let r = self
            .call("connect", json!({"destination": destination}))
            .await;
        r["connection"].as_str().expect("connection id").to_owned()
    }

    /// Waits until `cond` holds on what was seen.
    pub async fn wait_seen(&self, what: &str, within: Duration, cond: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            if cond(&self.seen.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out after {within:?} waiting for {what}");
            }
        }
    }

    /// Waits for `proc/exit` of `proc`; returns the exit params.
    pub async fn wait_exit(&self, proc: &str, within: Duration) -> Value {
        self.wait_seen(&format!("process {proc} to exit"), within, |s| {
            s.procs.get(proc).is_some_and(|p| p.exit.is_some())
        })
        .await;
        self.seen.lock().unwrap().procs[proc].exit.clone().unwrap()
    }

    /// Takes the sink of `proc` out of the table.
    pub fn take_proc(&self, proc: &str) -> ProcSink {
        self.seen
            .lock()
            .unwrap()
            .procs
            .remove(proc)
            .unwrap_or_default()
    }

    pub fn states(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .states
            .iter()
            .map(|(_, s, _)| s.clone())
            .collect()
    }

    /// `shutdown` then `exit`, and waits for the bridge to end.
    pub async fn close(mut self) -> std::process::ExitStatus {
        let _ = self.try_call("shutdown", json!({})).await;
        let _ = self.client.notify("exit", json!({})).await;
        drop(self.client);
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the bridge exits at EOF")
            .expect("wait for the bridge")
    }
}

fn route(seen: &Mutex<Seen>, n: Notification, notes_bytes: &AtomicU64) {
    let params = n.params.clone().unwrap_or(Value::Null);
    let mut seen = seen.lock().unwrap();
    match n.method.as_str() {
        "proc/output" => {
            let proc = params["proc"].as_str().unwrap_or_default().to_owned();
            let data = decode_data(&params);
            notes_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            let sink = seen.procs.entry(proc).or_default();
            sink.outputs += 1;
            if params["stream"] == "stderr" {
                sink.stderr.extend_from_slice(&data);
            } else {
                sink.stdout_len += data.len() as u64;
                sink.stdout_sha.update(&data);
                if sink.stdout_len <= KEEP_LIMIT {
                    sink.stdout_chunks.push(data);
                }
            }
        }
        "proc/exit" => {
            let proc = params["proc"].as_str().unwrap_or_default().to_owned();
            seen.procs.entry(proc).or_default().exit = Some(params);
        }
        "connection/state" => {
            let c = params["connection"].as_str().unwrap_or_default().to_owned();
            let s = params["state"].as_str().unwrap_or_default().to_owned();
            let d = params["detail"].as_str().unwrap_or_default().to_owned();
            if std::env::var_os("E2E_TRACE").is_some() {
                eprintln!("connection/state {c} {s} {d}");
            }
            seen.states.push((c, s, d));
        }
        _ => seen.other.push(n),
    }
}

/// The bytes of a `{data, encoding}` object.
pub fn decode_data(v: &Value) -> Vec<u8> {
    let data = v["data"].as_str().unwrap_or_default();
    if v["encoding"] == "base64" {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("valid base64")
    } else {
        data.as_bytes().to_vec()
    }
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// sha256 of a local file, streamed.
pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).expect("open for hashing");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read for hashing");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Peak RSS (KiB) of the processes sampled every 100 ms until dropped.
pub struct MemSampler {
    peaks: Arc<Mutex<Vec<(String, u32, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemSampler {
    pub fn start(procs: Vec<(String, u32)>) -> Self {
        let peaks = Arc::new(Mutex::new(
            procs
                .iter()
                .map(|(n, p)| (n.clone(), *p, 0))
                .collect::<Vec<_>>(),
        ));
        let p = peaks.clone();
        let task = tokio::spawn(async move {
            loop {
                for entry in p.lock().unwrap().iter_mut() {
                    let (rss, _) = rss_kib(entry.1);
                    entry.2 = entry.2.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { peaks, task }
    }

    /// Adds a process to sample.
    pub fn add(&self, name: &str, pid: u32) {
        self.peaks.lock().unwrap().push((name.into(), pid, 0));
    }

    /// (name, peak RSS sampled, VmHWM now) per process, in KiB.
    pub fn peaks(&self) -> Vec<(String, u64, u64)> {
        self.peaks
            .lock()
            .unwrap()
            .iter()
            .map(|(n, pid, peak)| {
                let (rss, hwm) = rss_kib(*pid);
                (n.clone(), (*peak).max(rss), hwm)
            })
            .collect()
    }
}

impl Drop for MemSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deterministic bytes: a ChaCha stream seeded with `seed`.
pub fn det_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Percentile (0..=100) of latencies, in ms.
pub fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort();
    let i = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

/// Sends `SIGKILL` to `pid`.
pub fn kill9(pid: u32) {
    // SAFETY: a plain syscall on a pid this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// The pids of `parent`'s children (from /proc).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}
