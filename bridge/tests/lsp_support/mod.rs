//! Shared helpers of the `lsp_*` tests: an editor's LSP client talking to
//! the real `distant-bridge lsp` binary (which runs a real language server
//! through a real `distant-server`), project directories, and the checks
//! that the language servers are installed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distant_bridge::framing::{self, Frame, LspCodec};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

/// Deadline for one answer (language servers index on the first request).
pub const WAIT: Duration = Duration::from_secs(20);

/// The `distant-server` binary next to the test executables.
pub fn server_binary() -> PathBuf {
    distant_testkit::workspace_bin("distant-server", "distant-server")
}

/// Panics with the fix when `program` is not installed.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed; the LSP tests run real language servers. Run \
         `bash .ci/setup-lsp.sh` (installs python-lsp-server and clangd) and try again"
    );
}

/// A scratch project directory (removed on drop) with helpers for the
/// editor-side and remote-side URIs of its files.
pub struct Project(distant_testkit::TempDir);

impl Project {
    pub fn new(tag: &str) -> Self {
        Self(distant_testkit::TempDir::new(&format!("lsp-{tag}")))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    /// Writes `rel` with `text`; returns its absolute path.
    pub fn write(&self, rel: &str, text: &str) -> String {
        let p = self.path().join(rel);
        std::fs::write(&p, text).expect("write project file");
        p.display().to_string()
    }
    /// The editor-side URI of `rel` (`distant://AUTHORITY/ABS`).
    pub fn uri(&self, authority: &str, rel: &str) -> String {
        let p = if rel.is_empty() {
            self.path().to_path_buf()
        } else {
            self.path().join(rel)
        };
        format!("distant://{authority}{}", p.display())
    }
    /// The remote-side URI of `rel`.
    pub fn file_uri(&self, rel: &str) -> String {
        format!("file://{}", self.path().join(rel).display())
    }
}

/// One message from the proxy: its exact bytes and its parsed value.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub raw: Bytes,
    pub value: Value,
}

/// The editor side of an LSP session through `distant-bridge lsp`.
pub struct Editor {
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Notifications (and unexpected messages) received so far, not yet taken.
    pub backlog: Vec<Incoming>,
    next_id: i64,
    /// Everything the proxy wrote to stderr.
    pub stderr: Arc<Mutex<String>>,
    /// Responses to ids nobody waited for (duplicates would land here).
    pub stray_responses: Vec<Incoming>,
    /// The language server's requests (answered with `null` as they came).
    pub server_requests: Vec<Incoming>,
}

/// Options of one proxy run.
pub struct ProxyCmd {
    /// `--destination` (empty: none, the most recent connection).
    pub destination: String,
    /// Use a manager whose `XDG_RUNTIME_DIR` is this (instead of
    /// `--no-manager`).
    pub manager_runtime: Option<PathBuf>,
    pub cwd: Option<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ProxyCmd {
    pub fn local(cmd: &[&str]) -> Self {
        Self {
            destination: "local".into(),
            manager_runtime: None,
            cwd: None,
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        }
    }
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.display().to_string());
        self
    }
    pub fn via_manager(mut self, runtime: &Path) -> Self {
        self.manager_runtime = Some(runtime.to_path_buf());
        self
    }
    pub fn destination(mut self, d: String) -> Self {
        self.destination = d;
        self
    }
}

impl Editor {
    /// Starts `distant-bridge --no-manager lsp --destination … -- CMD`.
    pub fn start(cmd: ProxyCmd) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_distant-bridge"));
        match &cmd.manager_runtime {
            Some(runtime) => {
                command
                    .env("XDG_RUNTIME_DIR", runtime)
                    .env("DISTANT_BRIDGE_MANAGER_IDLE_EXIT", "10");
            }
            None => {
                command.arg("--no-manager");
            }
        }
        command
            .arg("--server-binary")
            .arg(server_binary())
            .arg("lsp");
        if !cmd.destination.is_empty() {
            // A key never goes on a command line: DISTANT_KEY carries it.
            match cmd
                .destination
                .strip_prefix("distant://:")
                .and_then(|r| r.split_once('@'))
            {
                Some((key, hostport)) => {
                    command
                        .arg("--destination")
                        .arg(format!("distant://{hostport}"))
                        .env("DISTANT_KEY", key);
                }
                None => {
                    command.arg("--destination").arg(&cmd.destination);
                }
            }
        }
        if let Some(cwd) = &cmd.cwd {
            command.arg("--cwd").arg(cwd);
        }
        command.arg("--").args(&cmd.cmd);
        command
            .env("RUST_LOG", "distant_bridge=info")
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start distant-bridge lsp");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[proxy] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });

        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(stdout, LspCodec::strict());
            while let Some(frame) = frames.next().await {
                match frame {
                    Ok(Frame::Message(raw)) => {
                        let value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
                            panic!(
                                "the proxy sent a body that is not JSON ({e}): {:?}",
                                String::from_utf8_lossy(&raw)
                            )
                        });
                        if tx.send(Incoming { raw, value }).is_err() {
                            return;
                        }
                    }
                    Ok(other) => panic!("the proxy's stdout is not clean LSP: {other:?}"),
                    Err(e) => panic!("the proxy's stdout is not clean LSP: {e}"),
                }
            }
        });
        Self {
            child,
            stdin,
            incoming,
            backlog: Vec::new(),
            next_id: 1,
            stderr,
            stray_responses: Vec::new(),
            server_requests: Vec::new(),
        }
    }

    /// Sends one raw body (framed here).
    pub async fn send_raw(&mut self, body: &[u8]) {
        self.send_bytes(&framing::frame(body)).await;
    }

    /// Sends bytes exactly as given (no framing).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).await.expect("write to the proxy");
        stdin.flush().await.expect("flush to the proxy");
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_raw(body.to_string().as_bytes()).await;
    }

    /// Sends a request; returns its id.
    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(body.to_string().as_bytes()).await;
        id
    }

    /// Sends a request and waits for its response (the whole message).
    pub async fn request_full(&mut self, method: &str, params: Value) -> Incoming {
        let id = self.send_request(method, params).await;
        self.response(id, method).await
    }

    /// Sends a request and returns its `result` (panics on an error).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let r = self.request_full(method, params).await;
        if let Some(e) = r.value.get("error") {
            panic!("{method} failed: {e}");
        }
        r.value["result"].clone()
    }

    /// Waits for the response to `id`.
    pub async fn response(&mut self, id: i64, what: &str) -> Incoming {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next_message(deadline, what).await;
            if m.value.get("method").is_none() {
                if m.value["id"] == json!(id) {
                    return m;
                }
                self.stray_responses.push(m);
            } else {
                self.backlog.push(m);
            }
        }
    }

    /// The next message from the proxy, answering the language server's
    /// own requests (`workspace/configuration`, progress, …) with `null`.
    async fn next_message(&mut self, deadline: Instant, what: &str) -> Incoming {
        loop {
            let m = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .unwrap_or_else(|_| panic!("no answer for {what} in time"))
                .unwrap_or_else(|| {
                    panic!(
                        "the proxy's stdout ended while waiting for {what}; stderr:\n{}",
                        self.stderr.lock().unwrap()
                    )
                });
            if m.value.get("method").is_some() && m.value.get("id").is_some() {
                let reply = json!({"jsonrpc": "2.0", "id": m.value["id"], "result": null});
                self.send_raw(reply.to_string().as_bytes()).await;
                self.server_requests.push(m);
                continue;
            }
            return m;
        }
    }

    /// The next notification `method` whose params match `pred` (from the
    /// backlog first).
    pub async fn notification(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Incoming {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|m| m.value["method"] == method && pred(&m.value["params"]))
        {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next_message(deadline, method).await;
            if m.value["method"] == method && pred(&m.value["params"]) {
                return m;
            }
            if m.value.get("method").is_none() {
                self.stray_responses.push(m);
            } else {
                self.backlog.push(m);
            }
        }
    }

    /// `initialize` + `initialized` with `root` (an editor URI).
    pub async fn initialize(&mut self, root: &str, name: &str) -> Value {
        let r = self
            .request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "rootUri": root,
                    "workspaceFolders": [{"uri": root, "name": name}],
                    "capabilities": {
                        "textDocument": {
                            "hover": {"contentFormat": ["plaintext", "markdown"]},
                            "publishDiagnostics": {"relatedInformation": true},
                            "rename": {"prepareSupport": false},
                            "definition": {"linkSupport": false}
                        },
                        "workspace": {"workspaceFolders": true, "workspaceEdit": {"documentChanges": false}}
                    }
                }),
            )
            .await;
        self.notify("initialized", json!({})).await;
        r
    }

    pub async fn did_open(&mut self, uri: &str, language: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        )
        .await;
    }

    /// Closes the proxy's stdin (the editor went away).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the proxy to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the proxy did not exit in time; stderr:\n{}",
                    self.stderr.lock().unwrap()
                )
            })
            .expect("wait for the proxy");
        status.code()
    }

    /// The remote language server's pid, from the proxy's info log.
    pub async fn remote_pid(&self) -> u32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pid) = self
                .stderr
                .lock()
                .unwrap()
                .split("(pid=")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .and_then(|p| p.parse().ok())
            {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy never logged the language server's pid"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The proxy's pid.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the proxy is running")
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// Every string in `v` (keys included) that starts with `prefix`.
pub fn strings_with_prefix(v: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.starts_with(prefix) => out.push(s.clone()),
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => {
                for (k, v) in m {
                    if k.starts_with(prefix) {
                        out.push(k.clone());
                    }
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    out
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A small language server (python3) that misbehaves the way real ones do:
/// a banner and stray prints on stdout, chatter on stderr. It writes its
/// pid to `argv[1]`; `echo` answers with its params and the exact body it
/// received; `stats` lists the `seq` of every `echo` seen; with `argv[2] ==
/// "stubborn"` it ignores `exit` and the end of stdin.
pub const FAKE_LS: &str = r#"
import json, os, sys
pidfile = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else ""
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
inp, out = sys.stdin.buffer, sys.stdout.buffer
sys.stderr.write("fake-ls: starting up \x1b[1mbold\x1b[0m\n")
sys.stderr.flush()
out.write(b"Fake language server 1.0 starting...\nloading plugins: none\n")
out.flush()

def send(obj, junk=False):
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    if junk:
        out.write(b"stray debug print\n")
    out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()

def read():
    headers = {}
    while True:
        line = inp.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        k, v = line.split(b":", 1)
        headers[k.strip().lower()] = v.strip()
    return inp.read(int(headers[b"content-length"]))

seen, bad, shutdown, answers = [], 0, False, []
while True:
    raw = read()
    if raw is None:
        if mode == "stubborn":
            import time
            time.sleep(3600)
        sys.exit(3)
    try:
        msg = json.loads(raw)
    except ValueError:
        bad += 1
        continue
    m = msg.get("method")
    if m is None:
        answers.append(msg)
    elif m == "initialize":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"capabilities": {}, "serverInfo": {"name": "fake"}}})
    elif m == "echo":
        seen.append(msg["params"].get("seq"))
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"params": msg["params"], "raw": raw.decode("utf-8")}}, junk=len(seen) % 2 == 0)
        sys.stderr.write("fake-ls: echoed %d\n" % len(seen))
        sys.stderr.flush()
    elif m == "stats":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"seq": seen, "bad": bad, "answers": answers}})
    elif m == "say":
        body = msg["params"]["body"].encode()
        out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        out.flush()
        send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
    elif m == "publish":
        send({"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics", "params": msg["params"]}, junk=True)
    elif m == "shutdown":
        shutdown = True
        send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
    elif m == "exit":
        if mode == "stubborn":
            continue
        sys.exit(0 if shutdown else 1)
"#;

/// Writes the fake language server into `project`; returns the command to
/// run it and the pid file it will write.
pub fn fake_ls(project: &Project, mode: &str) -> (Vec<String>, PathBuf) {
    let script = project.write("fake_ls.py", FAKE_LS);
    let pidfile = project.path().join(format!("fake_ls.{mode}.pid"));
    let mut cmd = vec!["python3".to_string(), script, pidfile.display().to_string()];
    if !mode.is_empty() {
        cmd.push(mode.to_string());
    }
    (cmd, pidfile)
}

/// Waits for the pid file and returns the pid.
pub async fn read_pid(pidfile: &Path) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the fake server never wrote its pid"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
