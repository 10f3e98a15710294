//! The measurements. Peers: 0 = ours, 1 = distant 0.20, 2 = OpenSSH.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distant_bridge::client::JsonRpcClient;
use distant_bridge::jsonrpc::Notification;
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{self, ClientOptions, DialFuture};
use distant_protocol::driver::rpc::RpcClient;
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::handshake::ClientConfig;
use distant_protocol::msg::Op;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::proc::{self as p, Outcome};
use crate::report::{fmt_num, Results, Row, V};
use crate::Config;

mod forward;

const MIB: u64 = 1 << 20;

/// Samples per (row, peer); DNF / notes per (row, peer).
#[derive(Default)]
struct Samples {
    order: Vec<String>,
    meta: BTreeMap<String, (&'static str, bool, String, String)>,
    n: BTreeMap<(String, usize), Vec<f64>>,
    t: BTreeMap<(String, usize), String>,
}

impl Samples {
    fn row(&mut self, what: &str, unit: &'static str, higher: bool, target: &str, note: &str) {
        if !self.meta.contains_key(what) {
            self.order.push(what.into());
            self.meta
                .insert(what.into(), (unit, higher, target.into(), note.into()));
        }
    }
    fn add(&mut self, what: &str, peer: usize, x: f64) {
        self.n.entry((what.into(), peer)).or_default().push(x);
    }
    fn text(&mut self, what: &str, peer: usize, t: impl Into<String>) {
        self.t
            .entry((what.into(), peer))
            .or_insert_with(|| t.into());
    }
    fn rows(&self) -> Vec<Row> {
        self.order
            .iter()
            .map(|what| {
                let (unit, higher, target, note) = self.meta[what].clone();
                let v = [0, 1, 2].map(|peer| {
                    if let Some(xs) = self.n.get(&(what.clone(), peer)) {
                        if !xs.is_empty() {
                            return V::N(median(xs));
                        }
                    }
                    V::T(
                        self.t
                            .get(&(what.clone(), peer))
                            .cloned()
                            .unwrap_or_else(|| "–".into()),
                    )
                });
                Row {
                    what: what.clone(),
                    unit,
                    higher_better: higher,
                    target,
                    v,
                    note,
                }
            })
            .collect()
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i]
}

/// Our server + manager.
struct Ours {
    server: Child,
    server_pid: u32,
    addr: String,
    key_hex: String,
    socket: PathBuf,
    manager_pid: u32,
}

impl Ours {
    fn cli(&self, cfg: &Config) -> Command {
        let mut c = Command::new(&cfg.bridge);
        c.env("DISTANT_BRIDGE_SOCKET", &self.socket)
            .env("DISTANT_BRIDGE_MANAGER_IDLE_EXIT", "900")
            .env("RUST_LOG", "error");
        c
    }
    fn url(&self) -> String {
        format!("distant://:{}@{}", self.key_hex, self.addr)
    }
}

struct Distant {
    bin: PathBuf,
    server: Child,
    server_pid: u32,
    manager: Child,
    manager_pid: u32,
    socket: PathBuf,
    cache: PathBuf,
    url: String,
}

impl Distant {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg("--unix-socket")
            .arg(&self.socket)
            .arg("--cache")
            .arg(&self.cache);
        c
    }
    /// `distant SUB… --unix-socket S --cache C -- REST…` (spawn takes its
    /// command after the options).
    fn cmd_with_rest(&self, args: &[&str], rest: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.arg("--").args(rest);
        c
    }
}

struct Ssh {
    port: u16,
    user: String,
    key: PathBuf,
    ctl: PathBuf,
    sshd_pid: u32,
}

impl Ssh {
    fn opts(&self, c: &mut Command, port_flag: &str) {
        c.arg(port_flag)
            .arg(self.port.to_string())
            .arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ]);
    }
    fn fresh(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        self.opts(&mut c, "-p");
        c.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(remote);
        c
    }
    fn muxed(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        self.opts(&mut c, "-p");
        c.args(["-o", "ControlMaster=no", "-S"])
            .arg(&self.ctl)
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(remote);
        c
    }
    fn sftp(&self, batch: &Path) -> Command {
        let mut c = Command::new("sftp");
        self.opts(&mut c, "-P");
        c.args([
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-q",
            "-b",
        ])
        .arg(batch)
        .arg(format!("{}@127.0.0.1", self.user));
        c
    }
    fn master_pid(&self) -> Option<u32> {
        let mut c = Command::new("ssh");
        c.args(["-S"])
            .arg(&self.ctl)
            .args(["-O", "check", "x"])
            .stderr(Stdio::piped());
        let out = c.output().ok()?;
        let s = String::from_utf8_lossy(&out.stderr).to_string();
        let i = s.find("pid=")? + 4;
        s[i..]
            .trim_end_matches([')', '\n', '\r'])
            .split(')')
            .next()?
            .parse()
            .ok()
    }
}

async fn blocking(cmd: Command, stdin: Option<File>, count: bool, timeout: Duration) -> Outcome {
    tokio::task::spawn_blocking(move || p::run(cmd, stdin, count, timeout))
        .await
        .expect("runner thread")
}

fn machine() -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|x| x.1.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    vec![
        ("CPUs (nproc)".into(), sh("nproc")),
        ("CPU".into(), cpu),
        ("kernel".into(), sh("uname -sr")),
        (
            "memory".into(),
            sh("free -m | awk '/Mem:/{print $2\" MiB\"}'"),
        ),
        ("date".into(), sh("date -u '+%Y-%m-%d %H:%M UTC'")),
        ("OpenSSH".into(), sh("ssh -V 2>&1")),
        (
            "load average at start (1/5/15 min; other work shares the machine)".into(),
            sh("cut -d' ' -f1-3 /proc/loadavg"),
        ),
    ]
}

/// Fills `path` with `size` incompressible bytes (unless it already has them).
fn data_file(path: &Path, size: u64) {
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(size) {
        return;
    }
    let mut f = std::io::BufWriter::new(File::create(path).expect("create data file"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).expect("write data file");
    }
    f.flush().expect("flush data file");
}

fn start_ours(cfg: &Config) -> Ours {
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let key_hex = key.to_hex().to_string();
    let mut server = Command::new(&cfg.server)
        .args(["listen", "--host", "127.0.0.1", "--port", "0"])
        .env("DISTANT_KEY", &key_hex)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start distant-server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("credentials line");
    let addr = line.trim().rsplit_once('@').expect("url").1.to_string();
    let dir = cfg.work.join("ours-manager");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let socket = dir.join("manager.sock");
    let mut ours = Ours {
        server_pid: server.id(),
        server,
        addr,
        key_hex,
        socket,
        manager_pid: 0,
    };
    let mut c = ours.cli(cfg);
    c.args(["connect", &format!("distant://{}", ours.addr)])
        .env("DISTANT_KEY", &ours.key_hex);
    let o = p::run(c, None, true, Duration::from_secs(30));
    assert!(o.ok, "distant-bridge connect failed: {}", o.stderr);
    ours.manager_pid = std::fs::read_to_string(dir.join("manager.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    ours
}

fn start_distant(cfg: &Config) -> Option<Distant> {
    let bin = cfg.distant.clone()?;
    let mut server = Command::new(&bin)
        .args(["server", "listen", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut reader = BufReader::new(server.stdout.take().unwrap());
    let mut url = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            break;
        }
        if let Some(i) = line.find("distant://") {
            url = line[i..].trim().to_string();
            break;
        }
    }
    // Keep draining the server's stdout.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    if url.is_empty() {
        eprintln!("distant 0.20 server printed no credentials");
        return None;
    }
    let dir = cfg.work.join("distant020");
    let _ = std::fs::create_dir_all(&dir);
    let socket = dir.join("manager.sock");
    let _ = std::fs::remove_file(&socket);
    let manager = Command::new(&bin)
        .args(["manager", "listen", "--unix-socket"])
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = Distant {
        bin,
        server_pid: server.id(),
        server,
        manager_pid: manager.id(),
        manager,
        socket,
        cache: dir.join("cache.toml"),
        url,
    };
    let o = p::run(
        d.cmd_with_rest(&["connect"], &[&d.url]),
        None,
        true,
        Duration::from_secs(30),
    );
    if !o.ok {
        eprintln!("distant connect failed: {}", o.stderr);
        return None;
    }
    Some(d)
}

fn start_ssh(cfg: &Config) -> Option<Ssh> {
    let port = cfg.ssh_port?;
    let sshd_pid = std::fs::read_to_string(&cfg.sshd_pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let ssh = Ssh {
        port,
        user: cfg.ssh_user.clone(),
        key: cfg.ssh_key.clone(),
        ctl: cfg.work.join("ssh-ctl"),
        sshd_pid,
    };
    let _ = std::fs::remove_file(&ssh.ctl);
    let mut c = Command::new("ssh");
    ssh.opts(&mut c, "-p");
    c.args(["-f", "-N", "-M", "-S"])
        .arg(&ssh.ctl)
        .args(["-o", "ControlPersist=no"])
        .arg(format!("{}@127.0.0.1", ssh.user));
    let o = p::run(c, None, false, Duration::from_secs(20));
    if !o.ok {
        eprintln!("ssh master failed: {}", o.stderr);
        return None;
    }
    let o = p::run(ssh.fresh("true"), None, false, Duration::from_secs(20));
    if !o.ok {
        eprintln!("ssh does not work: {}", o.stderr);
        return None;
    }
    Some(ssh)
}

/// A JSON-RPC session with `distant-bridge stdio` (through the manager, or
/// in-process with `--no-manager`), and the connection id to use.
async fn bridge_session(
    cfg: &Config,
    ours: &Ours,
    no_manager: bool,
) -> (
    JsonRpcClient,
    mpsc::Receiver<Notification>,
    tokio::process::Child,
    String,
) {
    let mut c = tokio::process::Command::new(&cfg.bridge);
    c.env("DISTANT_BRIDGE_SOCKET", &ours.socket)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if no_manager {
        c.arg("--no-manager");
    }
    c.arg("stdio");
    let mut child = c.spawn().expect("distant-bridge stdio");
    let (client, notes) =
        JsonRpcClient::new(child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let conn = if no_manager {
        let r = client
            .request("connect", json!({"destination": ours.url()}))
            .await
            .expect("connect");
        r["connection"].as_str().unwrap().to_string()
    } else {
        let r = client
            .request("connections", json!({}))
            .await
            .expect("connections");
        r.as_array()
            .and_then(|a| a.iter().find(|c| c["state"] == "connected"))
            .and_then(|c| c["connection"].as_str())
            .expect("a live connection in the manager")
            .to_string()
    };
    (client, notes, child, conn)
}

async fn protocol_client(ours: &Ours) -> RpcClient {
    let key = StaticKey::from_hex(&ours.key_hex).unwrap();
    let options = ClientOptions::new(ClientConfig {
        static_key: Some(key),
        ..ClientConfig::default()
    });
    let addr = ours.addr.clone();
    let dialer = Arc::new(move || -> DialFuture {
        let addr = addr.clone();
        Box::pin(async move { dial_tcp(&addr, Duration::from_secs(5)).await })
    });
    RpcClient::new(client::connect(options, dialer).await.expect("connect"))
}

/// Sequential latencies (µs) and a pipelined rate (req/s) of one request
/// shape over the JSON-RPC client.
async fn jsonrpc_rtt(client: &JsonRpcClient, params: Value, n: usize) -> Vec<f64> {
    for _ in 0..50 {
        let _ = client.request("fs/exists", params.clone()).await;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .request("fs/exists", params.clone())
            .await
            .expect("fs/exists");
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v
}

async fn jsonrpc_pipelined(client: &JsonRpcClient, params: Value, n: usize) -> f64 {
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|_| {
            let c = client.clone();
            let params = params.clone();
            async move { c.request("fs/exists", params).await }
        })
        .buffer_unordered(128)
        .for_each(|r| {
            r.expect("fs/exists");
            async {}
        })
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

/// distant 0.20's `api` (JSON lines): sequential latencies (µs) and a
/// pipelined rate; `None` when it stalls.
async fn distant_api(d: &Distant, path: &str, seq: usize, piped: usize) -> Option<(Vec<f64>, f64)> {
    let std_cmd = d.cmd(&["api"]);
    let mut c = tokio::process::Command::from(std_cmd);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = c.spawn().ok()?;
    let mut stdin = child.stdin.take()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take()?).lines();
    let path = path.to_string();
    let line = move |id: usize| {
        format!(
            "{}\n",
            json!({"id": id.to_string(), "payload": {"type": "exists", "path": path}})
        )
    };
    // Its stdio speaks an authentication exchange first (method `none`).
    stdin
        .write_all(b"{\"type\":\"auth_initialization_response\",\"methods\":[\"none\"]}\n")
        .await
        .ok()?;
    loop {
        let l = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .ok()?
            .ok()??;
        if l.contains("auth_finished") {
            break;
        }
    }
    let mut v = Vec::new();
    let timeout = Duration::from_secs(10);
    for i in 0..seq + 10 {
        let t = Instant::now();
        stdin.write_all(line(i).as_bytes()).await.ok()?;
        stdin.flush().await.ok()?;
        let got = tokio::time::timeout(timeout, lines.next_line())
            .await
            .ok()?
            .ok()??;
        if i == 0 && !got.contains("exists") {
            eprintln!("distant api answered: {got}");
        }
        if i >= 10 {
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let t = Instant::now();
    let line2 = line.clone();
    let writer = tokio::spawn(async move {
        let line = line2;
        for i in 0..piped {
            if stdin.write_all(line(100_000 + i).as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = stdin.flush().await;
        stdin
    });
    for _ in 0..piped {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .ok()?
            .ok()??;
    }
    let rate = piped as f64 / t.elapsed().as_secs_f64();
    let _ = writer.await;
    Some((v, rate))
}

/// Latencies (µs) of `ls FILE` (one stat) inside one interactive sftp
/// session (`-b -`: sftp line-buffers its output, so each answer can be timed).
async fn sftp_stat(ssh: &Ssh, path: &str, n: usize) -> Option<Vec<f64>> {
    let mut c = Command::new("sftp");
    ssh.opts(&mut c, "-P");
    c.args([
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-b",
        "-",
    ])
    .arg(format!("{}@127.0.0.1", ssh.user));
    let mut c = tokio::process::Command::from(c);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = c.spawn().ok()?;
    let mut stdin = child.stdin.take()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take()?).lines();
    // `ls FILE` (sftp has no `ls -d`): one stat, prints the path.
    let cmd = format!("ls {path}\n");
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let t = Instant::now();
        stdin.write_all(cmd.as_bytes()).await.ok()?;
        stdin.flush().await.ok()?;
        loop {
            let l = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .ok()?
                .ok()??;
            if l.trim() == path {
                break;
            }
        }
        if i >= 20 {
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Some(v)
}

/// Peak RSS seen while sampling, per role.
#[derive(Default)]
struct Peaks {
    ssh_client_kib: u64,
    ours_cli_kib: u64,
    distant_cli_kib: u64,
}

pub async fn run(cfg: &Config) -> Results {
    let mut res = Results {
        machine: machine(),
        ..Results::default()
    };
    res.machine.push(("commit".into(), cfg.commit.clone()));
    let _ = std::fs::create_dir_all(&cfg.work);
    let _ = std::fs::create_dir_all(&cfg.data);
    let sizes: Vec<(u64, &str)> = {
        let mut s = vec![(4 * MIB, "4 MiB"), (100 * MIB, "100 MiB")];
        if cfg.big {
            s.push((1024 * MIB, "1 GiB"));
        }
        s
    };
    eprintln!("[bench] data files");
    for (size, label) in &sizes {
        data_file(
            &cfg.data.join(format!("src-{}", label.replace(' ', ""))),
            *size,
        );
    }
    eprintln!("[bench] starting peers");
    let ours = start_ours(cfg);
    let distant = start_distant(cfg);
    let ssh = start_ssh(cfg);
    if distant.is_none() {
        res.notes
            .push("distant 0.20 was not available or did not start; its column is empty.".into());
    }
    if ssh.is_none() {
        res.notes
            .push("OpenSSH (sshd on loopback) was not available; its column is empty.".into());
    }

    // sshd per-connection RSS sampler.
    let stop = Arc::new(AtomicBool::new(false));
    let sshd_peak = Arc::new(Mutex::new(0u64));
    let sampler = ssh.as_ref().map(|s| {
        let root = s.sshd_pid;
        let stop = stop.clone();
        let peak = sshd_peak.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let m = p::subtree_rss(root)
                    .into_iter()
                    .map(|x| x.1)
                    .max()
                    .unwrap_or(0);
                let mut g = peak.lock().unwrap();
                *g = (*g).max(m);
                drop(g);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    });
    let mut peaks = Peaks::default();
    let mut s = Samples::default();
    if cfg.only.as_deref() == Some("forward") {
        forward::measure(cfg, &ours, ssh.as_ref(), &mut s, cfg.reps).await;
        stop.store(true, Ordering::Relaxed);
        let mut ours = ours;
        unsafe { libc::kill(ours.manager_pid as i32, libc::SIGTERM) };
        let _ = ours.server.kill();
        let _ = ours.server.wait();
        if let Some(h) = &ssh {
            let _ = Command::new("ssh")
                .arg("-S")
                .arg(&h.ctl)
                .args(["-O", "exit", "x"])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut d) = distant {
            let _ = d.manager.kill();
            let _ = d.manager.wait();
            let _ = d.server.kill();
            let _ = d.server.wait();
        }
        res.rows = s.rows();
        return res;
    }
    let probe = cfg.data.to_string_lossy().to_string();
    let reps = cfg.reps;

    let phase_rss = |what: &str, ours: &Ours, notes: &mut Vec<String>| {
        let (s, m) = (p::rss(ours.server_pid).1, p::rss(ours.manager_pid).1);
        notes.push(format!(
            "ours, peak RSS during {what}: server {:.1} MiB, manager {:.1} MiB",
            s as f64 / 1024.0,
            m as f64 / 1024.0
        ));
        for pid in [ours.server_pid, ours.manager_pid] {
            // Resets VmHWM so the next phase gets its own peak.
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    };
    let mut overall = (0u64, 0u64);
    let mut track = |ours: &Ours| {
        overall.0 = overall.0.max(p::rss(ours.server_pid).1);
        overall.1 = overall.1.max(p::rss(ours.manager_pid).1);
        overall
    };
    phase_rss("start-up", &ours, &mut res.notes);

    // ---- connect -------------------------------------------------------
    eprintln!("[bench] connect");
    let (jc, _jn, _jchild, _jconn) = bridge_session(cfg, &ours, true).await;
    for rep in 0..reps {
        for k in 0..3 {
            match (rep + k) % 3 {
                0 => {
                    s.row("connect, fresh (TCP + handshake + auth)", "ms", false, "≤ 5 ms",
                        "ours: protocol driver in-process; distant: `distant connect` via its manager; ssh: `ssh host true` (ControlMaster=no)");
                    for _ in 0..10 {
                        let key = StaticKey::from_hex(&ours.key_hex).unwrap();
                        let options = ClientOptions::new(ClientConfig {
                            static_key: Some(key),
                            ..ClientConfig::default()
                        });
                        let addr = ours.addr.clone();
                        let dialer = Arc::new(move || -> DialFuture {
                            let addr = addr.clone();
                            Box::pin(async move { dial_tcp(&addr, Duration::from_secs(5)).await })
                        });
                        let t = Instant::now();
                        let sess = client::connect(options, dialer).await.expect("connect");
                        s.add(
                            "connect, fresh (TCP + handshake + auth)",
                            0,
                            t.elapsed().as_secs_f64() * 1e3,
                        );
                        drop(sess);
                    }
                    s.row(
                        "connect, fresh, through the bridge API (`connect` request)",
                        "ms",
                        false,
                        "≤ 5 ms",
                        "JSON-RPC `connect` + `disconnect` in one `stdio --no-manager` session",
                    );
                    for _ in 0..5 {
                        let t = Instant::now();
                        let r = jc
                            .request("connect", json!({"destination": ours.url()}))
                            .await
                            .expect("connect");
                        s.add(
                            "connect, fresh, through the bridge API (`connect` request)",
                            0,
                            t.elapsed().as_secs_f64() * 1e3,
                        );
                        let _ = jc
                            .request("disconnect", json!({"connection": r["connection"]}))
                            .await;
                    }
                }
                1 => {
                    if let Some(d) = &distant {
                        for _ in 0..3 {
                            let o = blocking(
                                d.cmd_with_rest(&["connect"], &[&d.url]),
                                None,
                                true,
                                Duration::from_secs(30),
                            )
                            .await;
                            peaks.distant_cli_kib = peaks.distant_cli_kib.max(o.maxrss_kib);
                            if o.ok {
                                s.add("connect, fresh (TCP + handshake + auth)", 1, o.secs * 1e3);
                            } else {
                                s.text("connect, fresh (TCP + handshake + auth)", 1, "failed");
                            }
                        }
                    }
                }
                _ => {
                    if let Some(h) = &ssh {
                        for _ in 0..3 {
                            let o = blocking(h.fresh("true"), None, false, Duration::from_secs(30))
                                .await;
                            peaks.ssh_client_kib = peaks.ssh_client_kib.max(o.maxrss_kib);
                            if o.ok {
                                s.add("connect, fresh (TCP + handshake + auth)", 2, o.secs * 1e3);
                            }
                        }
                    }
                }
            }
        }
    }

    track(&ours);
    phase_rss("connect", &ours, &mut res.notes);
    // ---- small requests ----------------------------------------------
    eprintln!("[bench] small requests");
    let (mc, _mn, _mchild, mconn) = bridge_session(cfg, &ours, false).await;
    let (nc, _nn, _nchild, nconn) = bridge_session(cfg, &ours, true).await;
    let proto = protocol_client(&ours).await;
    let seq = if cfg.quick { 500 } else { 2000 };
    let piped = if cfg.quick { 5000 } else { 20000 };
    let (p50, p99, rate) = (
        "small request (`fs/exists`) p50, one long-lived client",
        "small request p99",
        "small requests pipelined",
    );
    s.row(p50, "µs", false, "≤ 50 µs",
        "ours: JSON-RPC via `distant-bridge stdio` → manager; distant: `distant api` JSON lines; ssh: sftp `ls FILE` (one stat) in one interactive sftp session");
    s.row(p99, "µs", false, "", "");
    s.row(
        rate,
        "req/s",
        true,
        "≥ 50,000",
        "ours: 128 in flight; distant: 1000 lines written at once",
    );
    let p50b = "  ↳ ours without the manager (`stdio --no-manager`) p50";
    let p50c = "  ↳ ours at the protocol level (in-process `RpcClient`) p50";
    let rateb = "  ↳ ours without the manager, pipelined";
    let ratec = "  ↳ ours at the protocol level, pipelined (256 in flight)";
    s.row(p50b, "µs", false, "", "");
    s.row(
        p50c,
        "µs",
        false,
        "",
        "what the JSON-RPC layers add is the difference",
    );
    s.row(rateb, "req/s", true, "", "");
    s.row(ratec, "req/s", true, "", "");
    for rep in 0..reps {
        for k in 0..3 {
            match (rep + k) % 3 {
                0 => {
                    let params = json!({"connection": mconn, "path": probe});
                    let mut v = jsonrpc_rtt(&mc, params.clone(), seq).await;
                    s.add(p50, 0, pct(&mut v, 0.5));
                    s.add(p99, 0, pct(&mut v, 0.99));
                    s.add(rate, 0, jsonrpc_pipelined(&mc, params, piped).await);
                    let params = json!({"connection": nconn, "path": probe});
                    let mut v = jsonrpc_rtt(&nc, params.clone(), seq).await;
                    s.add(p50b, 0, pct(&mut v, 0.5));
                    s.add(rateb, 0, jsonrpc_pipelined(&nc, params, piped).await);
                    let mut v = Vec::new();
                    for i in 0..seq + 50 {
                        let t = Instant::now();
                        proto
                            .call(Op::Exists {
                                path: probe.clone(),
                            })
                            .await
                            .expect("exists");
                        if i >= 50 {
                            v.push(t.elapsed().as_secs_f64() * 1e6);
                        }
                    }
                    s.add(p50c, 0, pct(&mut v, 0.5));
                    let t = Instant::now();
                    futures::stream::iter(0..piped * 2)
                        .map(|_| {
                            let c = proto.clone();
                            let path = probe.clone();
                            async move { c.call(Op::Exists { path }).await }
                        })
                        .buffer_unordered(256)
                        .for_each(|r| {
                            r.expect("exists");
                            async {}
                        })
                        .await;
                    s.add(ratec, 0, (piped * 2) as f64 / t.elapsed().as_secs_f64());
                }
                1 => {
                    if let Some(d) = &distant {
                        match distant_api(d, &probe, if cfg.quick { 50 } else { 200 }, 1000).await {
                            Some((mut v, r)) => {
                                s.add(p50, 1, pct(&mut v, 0.5));
                                s.add(p99, 1, pct(&mut v, 0.99));
                                s.add(rate, 1, r);
                            }
                            None => {
                                s.text(p50, 1, "DNF");
                                s.text(rate, 1, "DNF");
                            }
                        }
                    }
                }
                _ => {
                    if let Some(h) = &ssh {
                        match sftp_stat(
                            h,
                            &format!("{probe}/src-4MiB"),
                            if cfg.quick { 200 } else { 1000 },
                        )
                        .await
                        {
                            Some(mut v) => {
                                s.add(p50, 2, pct(&mut v, 0.5));
                                s.add(p99, 2, pct(&mut v, 0.99));
                            }
                            None => s.text(p50, 2, "failed"),
                        }
                        s.text(rate, 2, "n/a");
                    }
                }
            }
        }
    }
    drop(proto);

    track(&ours);
    phase_rss("small requests", &ours, &mut res.notes);
    // ---- files ---------------------------------------------------------
    let mut distant_gave_up = false;
    let mut prev_label: Option<&str> = None;
    for (size, label) in &sizes {
        eprintln!("[bench] files {label}");
        let src = cfg.data.join(format!("src-{}", label.replace(' ', "")));
        let src_s = src.to_string_lossy().to_string();
        let rd = format!("file read {label}");
        let wr = format!("file write {label}");
        let target = if *size >= 100 * MIB {
            "≥ 2× sftp, ≥ ssh cat"
        } else {
            ""
        };
        s.row(&rd, "MB/s", true, target,
            "ours: `distant-bridge fs read` (manager); distant: `distant fs read`; ssh: `ssh host cat` (fresh connection; `sftp get` below)");
        let rd_sftp = format!("  ↳ OpenSSH `sftp get` {label}");
        s.row(&rd_sftp, "MB/s", true, "", "ratio = ours vs sftp");
        s.row(&wr, "MB/s", true, target,
            "ours: `distant-bridge fs write` < file; distant: `distant fs write` < file; ssh: `ssh host 'cat > f'`");
        let wr_sftp = format!("  ↳ OpenSSH `sftp put` {label}");
        s.row(&wr_sftp, "MB/s", true, "", "ratio = ours vs sftp");
        let reps_here = if *size >= 1024 * MIB {
            reps.min(2)
        } else {
            reps
        };
        let timeout = Duration::from_secs(if *size >= 1024 * MIB { 120 } else { 60 });
        let mbps = |o: &Outcome| *size as f64 / o.secs / 1e6;
        if let Some(prev) = prev_label.replace(*label) {
            track(&ours);
            phase_rss(&format!("file read/write {prev}"), &ours, &mut res.notes);
        }
        for rep in 0..reps_here {
            for k in 0..3 {
                let peer = (rep + k) % 3;
                let dst = cfg.data.join(format!("dst-{peer}"));
                let dst_s = dst.to_string_lossy().to_string();
                let _ = std::fs::remove_file(&dst);
                match peer {
                    0 => {
                        let mut c = ours.cli(cfg);
                        c.args(["fs", "read", &src_s]);
                        let o = blocking(c, None, true, timeout).await;
                        peaks.ours_cli_kib = peaks.ours_cli_kib.max(o.maxrss_kib);
                        if o.ok && o.bytes == *size {
                            s.add(&rd, 0, mbps(&o));
                        } else {
                            s.text(&rd, 0, "failed");
                            eprintln!("ours read: {} bytes {}", o.bytes, o.stderr);
                        }
                        let mut c = ours.cli(cfg);
                        c.args(["fs", "write", &dst_s]);
                        let o = blocking(c, Some(File::open(&src).unwrap()), false, timeout).await;
                        peaks.ours_cli_kib = peaks.ours_cli_kib.max(o.maxrss_kib);
                        let len = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                        if o.ok && len == *size {
                            s.add(&wr, 0, mbps(&o));
                        } else {
                            s.text(&wr, 0, "failed");
                            eprintln!("ours write: {len} bytes {}", o.stderr);
                        }
                    }
                    1 => {
                        let Some(d) = &distant else { continue };
                        if distant_gave_up {
                            s.text(&rd, 1, "not run (DNF smaller)");
                            s.text(&wr, 1, "not run (DNF smaller)");
                            continue;
                        }
                        let dl = Duration::from_secs(if *size > 4 * MIB { 20 } else { 60 });
                        let o =
                            blocking(d.cmd_with_rest(&["fs", "read"], &[&src_s]), None, true, dl)
                                .await;
                        peaks.distant_cli_kib = peaks.distant_cli_kib.max(o.maxrss_kib);
                        if o.ok && o.bytes == *size {
                            s.add(&rd, 1, mbps(&o));
                        } else {
                            s.text(
                                &rd,
                                1,
                                if o.timed_out {
                                    format!("DNF in {} s", dl.as_secs())
                                } else {
                                    "failed".into()
                                },
                            );
                            distant_gave_up |= o.timed_out;
                        }
                        let o = blocking(
                            d.cmd_with_rest(&["fs", "write"], &[&dst_s]),
                            Some(File::open(&src).unwrap()),
                            false,
                            dl,
                        )
                        .await;
                        peaks.distant_cli_kib = peaks.distant_cli_kib.max(o.maxrss_kib);
                        let len = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                        if o.ok && len == *size {
                            s.add(&wr, 1, mbps(&o));
                        } else {
                            s.text(
                                &wr,
                                1,
                                if o.timed_out {
                                    format!("DNF in {} s", dl.as_secs())
                                } else {
                                    format!("failed ({len} B written)")
                                },
                            );
                            distant_gave_up |= o.timed_out;
                        }
                    }
                    _ => {
                        let Some(h) = &ssh else { continue };
                        let o =
                            blocking(h.fresh(&format!("cat {src_s}")), None, true, timeout).await;
                        peaks.ssh_client_kib = peaks.ssh_client_kib.max(o.maxrss_kib);
                        if o.ok && o.bytes == *size {
                            s.add(&rd, 2, mbps(&o));
                        }
                        let batch = cfg.work.join("get.batch");
                        std::fs::write(&batch, format!("get {src_s} /dev/null\n")).unwrap();
                        let o = blocking(h.sftp(&batch), None, false, timeout).await;
                        peaks.ssh_client_kib = peaks.ssh_client_kib.max(o.maxrss_kib);
                        if o.ok {
                            s.add(&rd_sftp, 2, mbps(&o));
                        } else {
                            eprintln!("sftp get: {}", o.stderr);
                        }
                        let o = blocking(
                            h.fresh(&format!("cat > {dst_s}")),
                            Some(File::open(&src).unwrap()),
                            false,
                            timeout,
                        )
                        .await;
                        let len = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                        if o.ok && len == *size {
                            s.add(&wr, 2, mbps(&o));
                        } else {
                            eprintln!("ssh cat >: {len} {}", o.stderr);
                        }
                        let _ = std::fs::remove_file(&dst);
                        let batch = cfg.work.join("put.batch");
                        std::fs::write(&batch, format!("put {src_s} {dst_s}\n")).unwrap();
                        let o = blocking(h.sftp(&batch), None, false, timeout).await;
                        let len = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                        if o.ok && len == *size {
                            s.add(&wr_sftp, 2, mbps(&o));
                        } else {
                            eprintln!("sftp put: {len} {}", o.stderr);
                        }
                    }
                }
                let _ = std::fs::remove_file(&dst);
            }
        }
    }
    // sftp rows: ours goes in column 0 for the ratio.
    for (_, label) in &sizes {
        for (from, to) in [
            (
                format!("file read {label}"),
                format!("  ↳ OpenSSH `sftp get` {label}"),
            ),
            (
                format!("file write {label}"),
                format!("  ↳ OpenSSH `sftp put` {label}"),
            ),
        ] {
            if let Some(v) = s.n.get(&(from, 0)).cloned() {
                s.n.insert((to, 0), v);
            }
        }
    }

    track(&ours);
    phase_rss(
        &format!("file read/write {}", prev_label.unwrap_or("")),
        &ours,
        &mut res.notes,
    );
    // ---- processes -----------------------------------------------------
    eprintln!("[bench] processes");
    let sp = "process spawn → exit of `true`";
    s.row(sp, "ms", false, "≤ 5 ms",
        "ours: `proc/spawn` → `proc/exit` in the JSON-RPC session (manager); distant: `distant spawn -- true` (CLI); ssh: `ssh -S ctl host true` (ControlMaster)");
    let sp_cli = "  ↳ ours as a CLI command (`distant-bridge spawn -- true`)";
    s.row(
        sp_cli,
        "ms",
        false,
        "",
        "process start + manager socket + spawn + exit",
    );
    let out = "100 MiB of process stdout";
    s.row(out, "MB/s", true, "≥ 500 MB/s",
        "`yes <64-char line> | head -c 100MiB`; ours: `distant-bridge spawn`; distant: `distant spawn`; ssh: `ssh host head …` (fresh)");
    let mut distant_out_dnf = false;
    let (mc2, mut mn2, _mchild2, mconn2) = bridge_session(cfg, &ours, false).await;
    // Text (what processes print); NUL bytes are a separate row below.
    let cmd_out = format!(
        "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY | head -c {}",
        100 * MIB
    );
    let cmd_zero = format!("head -c {} /dev/zero", 100 * MIB);
    let out_zero = "  ↳ ours, 100 MiB of NUL bytes (`/dev/zero`)";
    s.row(out_zero, "MB/s", true, "", "valid UTF-8, so `proc/output` sends it as a JSON string of `\\u0000` escapes (6 bytes per byte)");
    for rep in 0..reps {
        for k in 0..3 {
            match (rep + k) % 3 {
                0 => {
                    for i in 0..25 {
                        let t = Instant::now();
                        let r = mc2
                            .request("proc/spawn", json!({"connection": mconn2, "cmd": ["true"]}))
                            .await
                            .expect("proc/spawn");
                        let id = r["proc"].clone();
                        loop {
                            let n = tokio::time::timeout(Duration::from_secs(10), mn2.recv())
                                .await
                                .expect("proc/exit in time")
                                .expect("notifications");
                            if n.method == "proc/exit"
                                && n.params.as_ref().map(|p| &p["proc"]) == Some(&id)
                            {
                                break;
                            }
                        }
                        if i >= 5 {
                            s.add(sp, 0, t.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    for _ in 0..5 {
                        let mut c = ours.cli(cfg);
                        c.args(["spawn", "--", "true"]);
                        let o = blocking(c, None, true, Duration::from_secs(30)).await;
                        if o.ok {
                            s.add(sp_cli, 0, o.secs * 1e3);
                        }
                    }
                    let mut c = ours.cli(cfg);
                    c.args(["spawn", "--", "sh", "-c", &cmd_out]);
                    let o = blocking(c, None, true, Duration::from_secs(60)).await;
                    peaks.ours_cli_kib = peaks.ours_cli_kib.max(o.maxrss_kib);
                    if o.ok && o.bytes == 100 * MIB {
                        s.add(out, 0, o.bytes as f64 / o.secs / 1e6);
                    } else {
                        s.text(out, 0, "failed");
                        eprintln!("ours stdout: {} {}", o.bytes, o.stderr);
                    }
                    let mut c = ours.cli(cfg);
                    c.args(["spawn", "--", "sh", "-c", &cmd_zero]);
                    let o = blocking(c, None, true, Duration::from_secs(60)).await;
                    if o.ok && o.bytes == 100 * MIB {
                        s.add(out_zero, 0, o.bytes as f64 / o.secs / 1e6);
                    }
                }
                1 => {
                    let Some(d) = &distant else { continue };
                    for _ in 0..3 {
                        let o = blocking(
                            d.cmd_with_rest(&["spawn"], &["true"]),
                            None,
                            true,
                            Duration::from_secs(30),
                        )
                        .await;
                        if o.ok {
                            s.add(sp, 1, o.secs * 1e3);
                        } else {
                            s.text(sp, 1, "failed");
                            eprintln!("distant spawn: {}", o.stderr);
                        }
                    }
                    if distant_out_dnf {
                        continue;
                    }
                    let o = blocking(
                        d.cmd_with_rest(&["spawn"], &["sh", "-c", &cmd_out]),
                        None,
                        true,
                        Duration::from_secs(30),
                    )
                    .await;
                    if o.ok && o.bytes == 100 * MIB {
                        s.add(out, 1, o.bytes as f64 / o.secs / 1e6);
                    } else {
                        distant_out_dnf |= o.timed_out;
                        s.text(
                            out,
                            1,
                            if o.timed_out {
                                format!("DNF in 30 s ({} MiB)", o.bytes / MIB)
                            } else {
                                "failed".into()
                            },
                        );
                    }
                }
                _ => {
                    let Some(h) = &ssh else { continue };
                    for _ in 0..5 {
                        let o =
                            blocking(h.muxed("true"), None, false, Duration::from_secs(30)).await;
                        if o.ok {
                            s.add(sp, 2, o.secs * 1e3);
                        }
                    }
                    let o = blocking(h.fresh(&cmd_out), None, true, Duration::from_secs(60)).await;
                    if o.ok && o.bytes == 100 * MIB {
                        s.add(out, 2, o.bytes as f64 / o.secs / 1e6);
                    }
                }
            }
        }
    }

    track(&ours);
    phase_rss("processes", &ours, &mut res.notes);
    // ---- reconnect (ours) ----------------------------------------------
    eprintln!("[bench] reconnect");
    let rc_cut = "reconnect: link cut, server reachable → first answer";
    let rc_back = "reconnect: link back after a 1 s outage → first answer";
    s.row(rc_cut, "ms", false, "", "ours only (`stdio --no-manager` through a FaultProxy); includes detecting the cut, redial, resume handshake, replay");
    s.row(
        rc_back,
        "ms",
        false,
        "",
        "mostly the client's redial backoff (100 ms doubling, jittered)",
    );
    {
        let proxy = distant_testkit::FaultProxy::start(ours.addr.parse().unwrap()).await;
        let url = format!("distant://:{}@{}", ours.key_hex, proxy.addr);
        let mut c = tokio::process::Command::new(&cfg.bridge);
        c.args(["--no-manager", "stdio"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().expect("bridge");
        let (rc, _rn) =
            JsonRpcClient::new(child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let r = rc
            .request("connect", json!({"destination": url}))
            .await
            .expect("connect");
        let params = json!({"connection": r["connection"], "path": probe});
        for _ in 0..(if cfg.quick { 2 } else { 5 }) {
            rc.request("fs/exists", params.clone())
                .await
                .expect("exists");
            let t = Instant::now();
            proxy.cut();
            rc.request("fs/exists", params.clone())
                .await
                .expect("exists after cut");
            s.add(rc_cut, 0, t.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(200)).await;

            proxy.set_refuse(true);
            proxy.cut();
            let c2 = rc.clone();
            let p2 = params.clone();
            let pending = tokio::spawn(async move {
                let r = c2.request("fs/exists", p2).await;
                (r, Instant::now())
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t = Instant::now();
            proxy.set_refuse(false);
            let (r, done) = pending.await.unwrap();
            r.expect("exists after outage");
            s.add(rc_back, 0, done.duration_since(t).as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // ---- idle CPU and memory ------------------------------------------
    eprintln!("[bench] idle CPU (10 s)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut watched: Vec<(usize, &str, Vec<u32>)> = vec![
        (0, "server", vec![ours.server_pid]),
        (0, "client", vec![ours.manager_pid]),
    ];
    if let Some(d) = &distant {
        watched.push((1, "server", vec![d.server_pid]));
        watched.push((1, "client", vec![d.manager_pid]));
    }
    if let Some(h) = &ssh {
        if let Some(m) = h.master_pid() {
            watched.push((2, "client", vec![m]));
        }
        watched.push((2, "server", p::descendants(h.sshd_pid)));
    }
    let before: Vec<u64> = watched
        .iter()
        .map(|w| w.2.iter().filter_map(|&pid| p::cpu_ticks(pid)).sum())
        .collect();
    let idle_secs = if cfg.quick { 5.0 } else { 10.0 };
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let cpu_s = "idle CPU, server (connected, no requests)";
    let cpu_c = "idle CPU, client / manager";
    s.row(
        cpu_s,
        "% of a core",
        false,
        "0",
        &format!("utime+stime over {idle_secs} s; ssh: every sshd process under the listener"),
    );
    s.row(
        cpu_c,
        "% of a core",
        false,
        "0",
        "ours: manager; distant: manager; ssh: the ControlMaster client",
    );
    for (i, (peer, role, pids)) in watched.iter().enumerate() {
        let after: u64 = pids.iter().filter_map(|&pid| p::cpu_ticks(pid)).sum();
        let pct = (after.saturating_sub(before[i])) as f64 / p::ticks_per_sec() / idle_secs * 100.0;
        s.add(if *role == "server" { cpu_s } else { cpu_c }, *peer, pct);
    }

    stop.store(true, Ordering::Relaxed);
    if let Some(t) = sampler {
        let _ = t.join();
    }
    let mem_s = "peak RSS, server";
    let mem_m = "peak RSS, manager";
    let mem_c = "peak RSS, CLI client process";
    s.row(mem_s, "MiB", false, "≤ 10 MiB idle, ≤ 64 MiB", "ours/distant: VmHWM of the server over the whole run; ssh: largest per-connection sshd tree (incl. sftp-server/cat), sampled");
    s.row(
        mem_m,
        "MiB",
        false,
        "≤ 64 MiB",
        "VmHWM over the whole run (ssh: the ControlMaster client)",
    );
    s.row(
        mem_c,
        "MiB",
        false,
        "≤ 64 MiB",
        "largest ru_maxrss of any CLI command (fs read/write, spawn, ssh, sftp)",
    );
    let mib = |k: u64| k as f64 / 1024.0;
    let overall = track(&ours);
    s.add(mem_s, 0, mib(overall.0));
    s.add(mem_m, 0, mib(overall.1));
    s.add(mem_c, 0, mib(peaks.ours_cli_kib));
    let idle_rss = "RSS, server, idle after the run";
    s.row(idle_rss, "MiB", false, "≤ 10 MiB", "VmRSS now");
    s.add(idle_rss, 0, mib(p::rss(ours.server_pid).0));
    if let Some(d) = &distant {
        s.add(mem_s, 1, mib(p::rss(d.server_pid).1));
        s.add(mem_m, 1, mib(p::rss(d.manager_pid).1));
        s.add(mem_c, 1, mib(peaks.distant_cli_kib));
        s.add(idle_rss, 1, mib(p::rss(d.server_pid).0));
    }
    if let Some(h) = &ssh {
        s.add(mem_s, 2, mib(*sshd_peak.lock().unwrap()));
        if let Some(m) = h.master_pid() {
            s.add(mem_m, 2, mib(p::rss(m).1));
        }
        s.add(mem_c, 2, mib(peaks.ssh_client_kib));
        let idle = p::subtree_rss(h.sshd_pid)
            .into_iter()
            .map(|x| x.1)
            .max()
            .unwrap_or(0);
        s.add(idle_rss, 2, mib(idle));
    }
    res.notes.push(format!(
        "ssh transfers open a fresh connection each (≈ the ssh connect figure above, {} ms, is inside every ssh/sftp transfer time).",
        s.n.get(&("connect, fresh (TCP + handshake + auth)".to_string(), 2)).map(|v| fmt_num(median(v))).unwrap_or_else(|| "?".into())
    ));

    // ---- port forwarding -----------------------------------------------
    forward::measure(cfg, &ours, ssh.as_ref(), &mut s, reps).await;

    // ---- tear down -----------------------------------------------------
    drop((mc, nc, mc2, jc));
    let mut ours = ours;
    unsafe { libc::kill(ours.manager_pid as i32, libc::SIGTERM) };
    let _ = ours.server.kill();
    let _ = ours.server.wait();
    if let Some(mut d) = distant {
        let _ = d.manager.kill();
        let _ = d.manager.wait();
        let _ = d.server.kill();
        let _ = d.server.wait();
    }
    if let Some(h) = &ssh {
        let _ = Command::new("ssh")
            .arg("-S")
            .arg(&h.ctl)
            .args(["-O", "exit", "x"])
            .stderr(Stdio::null())
            .status();
    }
    res.machine.push((
        "load average at the end".into(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    res.rows = s.rows();
    if let Some(dir) = &cfg.criterion {
        res.micro = crate::micro::collect(dir);
    }
    res
}
