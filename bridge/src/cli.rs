//! The human CLI verbs (`connect`, `fs read|write|ls`, `spawn`, `shell`,
//! `status`; `forward` in [`forward`]): bridge API calls made with a [`JsonRpcClient`] over the
//! manager's socket (started on demand), or over an in-process [`Api`] with
//! `--no-manager` (then a connection lives only as long as the command).
//!
//! Verbs act on `--connection ID`, or on the most recent connection: the
//! last entry of the `connections` list whose state is `connected` or
//! `reconnecting` (the API lists connections in the order they were made).
//!
//! Streaming: `spawn` and `shell` write process output as it arrives;
//! `fs write` sends stdin in [`WRITE_CHUNK`] pieces into one chunked write
//! (`fs/writeStart`, `fs/writeChunk`, `fs/writeFinish`), atomic on the remote.
//! `fs read` reads the file range by range (`fs/read` with `offset` and
//! `length`, a few ranges in flight), so a 1 GiB file passes through in
//! bounded memory.

pub mod forward;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::api::{Api, ApiOptions};
use crate::client::{ClientError, JsonRpcClient};
use crate::jsonrpc::{codes, Notification};
use crate::manager::{self, ManagerPaths, StartOptions};

/// Size of the pieces `fs write` sends.
pub const WRITE_CHUNK: usize = 4 * 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Global options shared by every verb.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--connection ID`.
    pub connection: Option<String>,
    /// `--no-manager`: serve the API in-process.
    pub no_manager: bool,
    /// `--server-binary PATH`.
    pub server_binary: Option<PathBuf>,
    /// `--socket PATH`: the manager socket.
    pub socket: Option<PathBuf>,
}

/// A failed verb: the message for stderr and the exit status.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong and what to do about it.
    pub message: String,
    /// Exit status.
    pub code: u8,
}

impl CliError {
    /// An error with exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<manager::ManagerError> for CliError {
    fn from(e: manager::ManagerError) -> Self {
        Self::new(e.to_string())
    }
}

/// Turns a failed request into a message naming the method.
pub fn rpc_error(method: &str, e: ClientError) -> CliError {
    match e {
        ClientError::Rpc(r) if r.code == codes::METHOD_NOT_FOUND => CliError::new(format!(
            "{method}: {} (this bridge's API does not implement it yet)",
            r.message
        )),
        ClientError::Rpc(r) => {
            CliError::new(format!("{method}: {} [{}]", r.message, r.kind.as_str()))
        }
        ClientError::Closed => CliError::new(format!(
            "{method}: the bridge closed the connection before answering (did the manager \
             exit? its log is in the manager directory; run `distant-bridge status`)"
        )),
    }
}

/// How a session reaches the API.
pub enum Via {
    /// The manager's socket.
    Manager(ManagerPaths),
    /// An API in this process.
    InProcess(Arc<Api>),
}

/// A client talking to a bridge API server, after `initialize`.
pub struct Session {
    /// The client.
    pub client: JsonRpcClient,
    /// Notifications from the server.
    pub notes: mpsc::Receiver<Notification>,
    /// How it is connected.
    pub via: Via,
    /// The `initialize` result.
    pub init: Value,
}

impl Session {
    /// Opens a session: through the manager (started on demand), or in-process
    /// with `--no-manager`.
    pub async fn open(options: &Options) -> Result<Self, CliError> {
        let api_options = ApiOptions {
            server_binary: options.server_binary.clone(),
        };
        if options.no_manager {
            return Self::in_process(api_options).await;
        }
        let paths = ManagerPaths::resolve(options.socket.as_deref())?;
        let start = StartOptions {
            server_binary: options.server_binary.clone(),
            ..StartOptions::default()
        };
        let stream = manager::connect_or_start(&paths, &start).await?;
        let (reader, writer) = stream.into_split();
        let (client, notes) = JsonRpcClient::new(reader, writer);
        Self::initialize(client, notes, Via::Manager(paths)).await
    }

    /// A session with an API in this process.
    pub async fn in_process(api_options: ApiOptions) -> Result<Self, CliError> {
        let api = Api::new(api_options);
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let (server_reader, server_writer) = tokio::io::split(theirs);
        let serving = api.clone();
        tokio::spawn(async move { serving.serve(server_reader, server_writer).await });
        let (reader, writer) = tokio::io::split(ours);
        let (client, notes) = JsonRpcClient::new(reader, writer);
        Self::initialize(client, notes, Via::InProcess(api)).await
    }

    async fn initialize(
        client: JsonRpcClient,
        notes: mpsc::Receiver<Notification>,
        via: Via,
    ) -> Result<Self, CliError> {
        let init = client
            .request(
                "initialize",
                json!({"clientName": "distant-bridge-cli", "clientVersion": env!("CARGO_PKG_VERSION")}),
            )
            .await
            .map_err(|e| rpc_error("initialize", e))?;
        Ok(Self {
            client,
            notes,
            via,
            init,
        })
    }

    /// The API's capabilities (empty for the placeholder API).
    pub fn capabilities(&self) -> Vec<String> {
        self.init
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls `method`, turning errors into [`CliError`]s.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CliError> {
        self.client
            .request(method, params)
            .await
            .map_err(|e| rpc_error(method, e))
    }

    /// `--connection ID`, or the most recent live connection.
    pub async fn connection(&self, explicit: Option<&str>) -> Result<String, CliError> {
        if let Some(id) = explicit {
            return Ok(id.to_owned());
        }
        let list = self.call("connections", json!({})).await?;
        default_connection(&list).ok_or_else(|| {
            CliError::new(
                "no connection: run `distant-bridge connect DESTINATION` first (e.g. `connect \
                 local`), or pass --connection ID",
            )
        })
    }
}

/// The most recent live connection in a `connections` result.
pub fn default_connection(list: &Value) -> Option<String> {
    list.as_array()?
        .iter()
        .rev()
        .find(|c| {
            matches!(
                c.get("state").and_then(Value::as_str),
                Some("connected" | "reconnecting")
            )
        })
        .and_then(|c| id_string(c.get("connection")?))
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Hides the key in a `distant://[USER]:KEY@HOST` URL.
pub fn redact(destination: &str) -> String {
    let Some(scheme_end) = destination.find("://") else {
        return destination.to_owned();
    };
    let rest = &destination[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return destination.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &destination[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => destination.to_owned(),
    }
}

/// Decodes a `{data, encoding}` object.
pub fn decode_data(v: &Value) -> Result<Vec<u8>, CliError> {
    let data = v
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::new("the bridge sent data without a `data` string"))?;
    match v.get("encoding").and_then(Value::as_str).unwrap_or("utf-8") {
        "base64" => B64
            .decode(data)
            .map_err(|e| CliError::new(format!("the bridge sent invalid base64: {e}"))),
        _ => Ok(data.as_bytes().to_vec()),
    }
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |e| CliError::new(format!("{what}: {e}"))
}

/// `connect DEST`: prints the connection id. The key comes from `key_file`,
/// else `DISTANT_KEY`; never from the URL (argv is public); it is never printed.
/// `connect`'s settings for `ssh://` destinations (the API's `options`).
#[derive(Debug, Default)]
pub struct SshOptions {
    /// Extra ssh arguments, in order.
    pub args: Vec<String>,
    /// The ssh client to run.
    pub binary: Option<String>,
    /// distant-server's path on the remote.
    pub remote_server: Option<String>,
    /// Upload distant-server when the remote has none.
    pub upload: bool,
}

impl SshOptions {
    /// The `options` object of `connect`; `None` when nothing is set.
    fn to_params(&self) -> Option<Value> {
        let mut o = serde_json::Map::new();
        if !self.args.is_empty() {
            o.insert("ssh".into(), json!(self.args));
            // Typed by the user on this command line: an explicit local
            // choice (api/ssh_args.rs).
            o.insert("allowLocalCommands".into(), json!(true));
        }
        if let Some(b) = &self.binary {
            o.insert("sshBinary".into(), json!(b));
        }
        if let Some(r) = &self.remote_server {
            o.insert("remoteServer".into(), json!(r));
        }
        if !self.upload {
            o.insert("upload".into(), json!(false));
        }
        (!o.is_empty()).then_some(Value::Object(o))
    }
}

pub async fn connect(
    options: &Options,
    destination: &str,
    key_file: Option<&std::path::Path>,
    ssh: &SshOptions,
) -> Result<(), CliError> {
    let key = match key_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(io_error(&format!(
                    "cannot read the key file {}",
                    f.display()
                )))?
                .trim()
                .to_owned(),
        ),
        None => crate::secrets::env_key(),
    };
    crate::secrets::refuse_key_in_argv(destination).map_err(CliError::new)?;
    let session = Session::open(options).await?;
    let mut params = json!({"destination": destination});
    if let Some(key) = key {
        params["key"] = Value::String(key);
    }
    if let Some(ssh) = ssh.to_params() {
        if !destination.starts_with("ssh://") {
            return Err(CliError::new(
                "--ssh-arg, --ssh-binary, --remote-server and --no-upload apply to ssh:// \
                 destinations only",
            ));
        }
        params["options"] = ssh;
    }
    let result = session.call("connect", params).await?;
    let id = result
        .get("connection")
        .and_then(id_string)
        .ok_or_else(|| CliError::new("connect: the bridge answered without a connection id"))?;
    println!("{id}");
    if options.no_manager {
        eprintln!(
            "distant-bridge: note: with --no-manager the connection closes when this command exits"
        );
    }
    Ok(())
}

/// Ranges of `fs read` in flight at once: enough to keep the link busy
/// while one range is written out, few enough to keep memory bounded
/// (each is at most [`WRITE_CHUNK`] bytes, twice over with base64).
const READ_AHEAD: usize = 3;

/// `fs read PATH`: the file's bytes to stdout, range by range
/// ([`WRITE_CHUNK`] at a time, [`READ_AHEAD`] in flight) so memory stays
/// bounded whatever the size. A file that changes while it is read (its
/// etag moves) is an error, not a silently mixed copy.
pub async fn fs_read(options: &Options, path: &str) -> Result<(), CliError> {
    let session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    let read = |offset: u64| {
        session.call(
            "fs/read",
            json!({
                "connection": connection, "path": path, "encoding": "base64",
                "offset": offset, "length": WRITE_CHUNK,
            }),
        )
    };
    let mut out = tokio::io::stdout();
    // The first range tells the size and the etag the others must match.
    let first = read(0).await?;
    let size = first.get("size").and_then(Value::as_u64).unwrap_or(0);
    let etag = first.get("etag").and_then(Value::as_str).map(str::to_owned);
    let bytes = decode_data(&first)?;
    out.write_all(&bytes)
        .await
        .map_err(io_error("cannot write to stdout"))?;
    let mut next = bytes.len() as u64;
    let mut in_flight = futures::stream::FuturesOrdered::new();
    loop {
        while in_flight.len() < READ_AHEAD && next < size && !bytes.is_empty() {
            in_flight.push_back(read(next));
            next += WRITE_CHUNK as u64;
        }
        let Some(result) = futures::StreamExt::next(&mut in_flight).await else {
            break;
        };
        let result = result?;
        let this_etag = result.get("etag").and_then(Value::as_str);
        if this_etag != etag.as_deref() {
            return Err(CliError::new(format!(
                "{path} changed on the remote while it was being read; run the command again"
            )));
        }
        let bytes = decode_data(&result)?;
        out.write_all(&bytes)
            .await
            .map_err(io_error("cannot write to stdout"))?;
    }
    out.flush()
        .await
        .map_err(io_error("cannot write to stdout"))?;
    Ok(())
}

/// Reads until `buf` holds `WRITE_CHUNK` bytes or stdin ends; false at EOF.
async fn fill<R: tokio::io::AsyncRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, CliError> {
    buf.clear();
    let mut piece = vec![0u8; 256 * 1024];
    while buf.len() < WRITE_CHUNK {
        let want = piece.len().min(WRITE_CHUNK - buf.len());
        let n = input
            .read(&mut piece[..want])
            .await
            .map_err(io_error("cannot read stdin"))?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&piece[..n]);
    }
    Ok(true)
}

/// `fs write PATH`: stdin to the file. Up to [`WRITE_CHUNK`] bytes go in one
/// atomic `fs/write`. Larger input is streamed into a chunked write
/// (`fs/writeStart`, `fs/writeChunk` per piece while the next piece is
/// read, `fs/writeFinish`): just as atomic, and the file keeps its
/// permissions; on failure the write is aborted and the file is untouched.
pub async fn fs_write(options: &Options, path: &str) -> Result<(), CliError> {
    let session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    let mut stdin = tokio::io::stdin();
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    let mut more = fill(&mut stdin, &mut buf).await?;
    if !more {
        let params = json!({"connection": connection, "path": path, "data": B64.encode(&buf), "encoding": "base64"});
        session.call("fs/write", params).await?;
        return Ok(());
    }
    let started = session
        .call(
            "fs/writeStart",
            json!({"connection": connection, "path": path}),
        )
        .await?;
    let Some(write) = started.get("write").and_then(Value::as_str) else {
        return Err(CliError::new(format!(
            "the bridge answered fs/writeStart without a write id: {started}"
        )));
    };
    let end = || json!({"connection": connection, "write": write});
    let streamed = async {
        let mut offset = 0u64;
        let mut next = Vec::with_capacity(WRITE_CHUNK);
        loop {
            let chunk = json!({
                "connection": connection, "write": write, "offset": offset,
                "data": B64.encode(&buf), "encoding": "base64",
            });
            offset += buf.len() as u64;
            if more {
                // Read the next piece while this one is on its way.
                let (sent, read) = tokio::join!(
                    session.call("fs/writeChunk", chunk),
                    fill(&mut stdin, &mut next)
                );
                sent?;
                more = read?;
                std::mem::swap(&mut buf, &mut next);
            } else {
                if !buf.is_empty() {
                    session.call("fs/writeChunk", chunk).await?;
                }
                break;
            }
        }
        session.call("fs/writeFinish", end()).await
    }
    .await;
    if let Err(e) = streamed {
        let _ = session.call("fs/writeAbort", end()).await;
        return Err(e);
    }
    Ok(())
}

/// `fs ls [PATH]`: one entry per line, directories with a trailing `/`.
pub async fn fs_ls(options: &Options, path: Option<&str>) -> Result<(), CliError> {
    let session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    let result = session
        .call(
            "fs/readDir",
            json!({"connection": connection, "path": path.unwrap_or(".")}),
        )
        .await?;
    let mut out = String::new();
    for entry in result
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(p) = entry.get("path").and_then(Value::as_str) else {
            continue;
        };
        out.push_str(p);
        if entry.get("type").and_then(Value::as_str) == Some("dir") {
            out.push('/');
        }
        out.push('\n');
    }
    print!("{out}");
    for error in result
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        eprintln!(
            "distant-bridge: {}: {}",
            error.get("path").and_then(Value::as_str).unwrap_or("?"),
            error.get("message").and_then(Value::as_str).unwrap_or("?")
        );
    }
    Ok(())
}

/// `status`: where the API runs and every connection with its state.
pub async fn status(options: &Options) -> Result<(), CliError> {
    let session = Session::open(options).await?;
    match &session.via {
        Via::Manager(paths) => println!(
            "manager: {} (socket {})",
            paths
                .read_pid()
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "running".into()),
            paths.socket.display()
        ),
        Via::InProcess(_) => println!("manager: none (--no-manager: in-process API)"),
    }
    let list = session.call("connections", json!({})).await?;
    let entries = list.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("no connections");
        return Ok(());
    }
    let default = default_connection(&list);
    println!("  {:<14} {:<13} DESTINATION", "CONNECTION", "STATE");
    for c in &entries {
        let id = c.get("connection").and_then(id_string).unwrap_or_default();
        let mark = if Some(&id) == default.as_ref() {
            "*"
        } else {
            " "
        };
        println!(
            "{mark} {:<14} {:<13} {}",
            id,
            c.get("state").and_then(Value::as_str).unwrap_or("?"),
            redact(c.get("destination").and_then(Value::as_str).unwrap_or("?"))
        );
    }
    println!("(* = the default for verbs without --connection)");
    Ok(())
}

/// The exit status for a `proc/exit` notification: the code, or 128 + the
/// signal number.
pub fn exit_status(params: &Value) -> u8 {
    if let Some(code) = params.get("code").and_then(Value::as_i64) {
        return (code & 0xff) as u8;
    }
    let signal = match params.get("signal") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
        Some(Value::String(s)) => signal_number(s).unwrap_or(0),
        _ => 0,
    };
    if signal > 0 {
        (128 + signal).min(255) as u8
    } else {
        1
    }
}

/// `"TERM"`/`"SIGTERM"`/`"15"` → 15.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = bare.parse() {
        return Some(n);
    }
    Some(match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "ABRT" => libc::SIGABRT,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "SEGV" => libc::SIGSEGV,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "BUS" => libc::SIGBUS,
        _ => return None,
    })
}

/// Runs `method` while buffering notifications that arrive before its
/// answer (a process's output can beat the `proc/spawn` result).
async fn call_buffering(
    session: &mut Session,
    method: &str,
    params: Value,
) -> Result<(Value, Vec<Notification>), CliError> {
    let client = session.client.clone();
    let call = client.request(method, params);
    tokio::pin!(call);
    let mut early = Vec::new();
    loop {
        tokio::select! {
            r = &mut call => return r.map(|v| (v, early)).map_err(|e| rpc_error(method, e)),
            Some(n) = session.notes.recv() => early.push(n),
        }
    }
}

/// Output and exit of one process.
enum ProcEvent {
    Output { stderr: bool, data: Vec<u8> },
    Exit(u8),
}

fn proc_event(proc_id: &str, note: &Notification) -> Option<ProcEvent> {
    let params = note.params.as_ref()?;
    if params.get("proc").and_then(id_string).as_deref() != Some(proc_id) {
        return None;
    }
    match note.method.as_str() {
        "proc/output" => Some(ProcEvent::Output {
            stderr: params.get("stream").and_then(Value::as_str) == Some("stderr"),
            data: decode_data(params).ok()?,
        }),
        "proc/exit" => Some(ProcEvent::Exit(exit_status(params))),
        _ => None,
    }
}

/// Forwards stdin to the process (base64), then closes its stdin.
fn forward_stdin(client: JsonRpcClient, connection: String, proc_id: String, close_at_eof: bool) {
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let params = json!({"connection": connection, "proc": proc_id,
                        "data": B64.encode(&buf[..n]), "encoding": "base64"});
                    if client.request("proc/stdin", params).await.is_err() {
                        return;
                    }
                }
            }
        }
        if close_at_eof {
            let _ = client
                .request(
                    "proc/closeStdin",
                    json!({"connection": connection, "proc": proc_id}),
                )
                .await;
        }
    });
}

/// Writes a process's output until it exits; returns its exit status.
async fn stream_process(
    session: &mut Session,
    proc_id: &str,
    early: Vec<Notification>,
) -> Result<u8, CliError> {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut backlog = early.into_iter();
    loop {
        let note = match backlog.next() {
            Some(n) => n,
            None => match session.notes.recv().await {
                Some(n) => n,
                None => {
                    return Err(CliError::new(
                        "the bridge connection closed before the process exited (did the \
                         manager exit? run `distant-bridge status`)",
                    ))
                }
            },
        };
        match proc_event(proc_id, &note) {
            Some(ProcEvent::Output { stderr: true, data }) => {
                let _ = stderr.write_all(&data).await;
                let _ = stderr.flush().await;
            }
            Some(ProcEvent::Output { data, .. }) => {
                if stdout.write_all(&data).await.is_err() {
                    return Ok(141); // like SIGPIPE: our reader went away
                }
                let _ = stdout.flush().await;
            }
            Some(ProcEvent::Exit(code)) => return Ok(code),
            None => {}
        }
    }
}

/// `spawn [--pty] -- CMD…`: runs CMD remotely, streams its output, forwards
/// stdin and Ctrl-C (a third Ctrl-C gives up locally, status 130), and
/// returns its exit status.
pub async fn spawn(options: &Options, cmd: &[String], pty: bool) -> Result<u8, CliError> {
    let mut session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    // Output goes to our stdout as raw bytes, so ask for base64: valid
    // UTF-8 with control bytes would otherwise travel as six-byte JSON
    // escapes (bench/RESULTS.md: a NUL-heavy stream spent half its CPU
    // parsing them).
    let mut params = json!({"connection": connection, "cmd": cmd, "encoding": "base64"});
    if pty {
        let (rows, cols) = terminal_size().unwrap_or((24, 80));
        params["pty"] = json!({"rows": rows, "cols": cols});
    }
    let (result, early) = call_buffering(&mut session, "proc/spawn", params).await?;
    let proc_id = result
        .get("proc")
        .and_then(id_string)
        .ok_or_else(|| CliError::new("proc/spawn: the bridge answered without a process id"))?;
    forward_stdin(
        session.client.clone(),
        connection.clone(),
        proc_id.clone(),
        true,
    );
    // Ctrl-C goes to the remote process; it decides whether to exit.
    if let Ok(mut sigint) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    {
        let client = session.client.clone();
        let (connection, proc_id) = (connection.clone(), proc_id.clone());
        tokio::spawn(async move {
            let mut presses = 0;
            while sigint.recv().await.is_some() {
                presses += 1;
                if presses >= 3 {
                    eprintln!("distant-bridge: interrupted 3 times; leaving the remote process");
                    std::process::exit(130);
                }
                let _ = client
                    .request(
                        "proc/kill",
                        json!({"connection": connection, "proc": proc_id, "signal": "INT"}),
                    )
                    .await;
            }
        });
    }
    stream_process(&mut session, &proc_id, early).await
}

/// The terminal size of stdout (or stdin) as (rows, cols).
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd number and pointer to a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Puts stdin's terminal in raw mode; restores it when dropped (also on
/// error paths and unwinding).
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode if stdin is a terminal; `None` otherwise.
    pub fn enable() -> Result<Option<Self>, CliError> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal (checked); pointer is valid.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Err(CliError::new(format!(
                "cannot read the terminal settings: {}",
                std::io::Error::last_os_error()
            )));
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(CliError::new(format!(
                "cannot put the terminal in raw mode: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &self.saved) };
    }
}

/// `shell [CMD…]`: a remote PTY in this terminal (raw mode, resize on
/// SIGWINCH). Without CMD, runs the remote user's shell (`system/info`).
pub async fn shell(options: &Options, cmd: &[String]) -> Result<u8, CliError> {
    let mut session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    let cmd: Vec<String> = if cmd.is_empty() {
        let info = session
            .call("system/info", json!({"connection": connection}))
            .await?;
        let shell = info
            .get("shell")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/bin/sh");
        vec![shell.to_owned()]
    } else {
        cmd.to_vec()
    };
    let (rows, cols) = terminal_size().unwrap_or((24, 80));
    let params = json!({"connection": connection, "cmd": cmd, "pty": {"rows": rows, "cols": cols}});
    let (result, early) = call_buffering(&mut session, "proc/spawn", params).await?;
    let proc_id = result
        .get("proc")
        .and_then(id_string)
        .ok_or_else(|| CliError::new("proc/spawn: the bridge answered without a process id"))?;

    let raw = RawMode::enable()?;
    forward_stdin(
        session.client.clone(),
        connection.clone(),
        proc_id.clone(),
        raw.is_none(),
    );
    let resize = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change());
    if let Ok(mut winch) = resize {
        let client = session.client.clone();
        let (connection, proc_id) = (connection.clone(), proc_id.clone());
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if let Some((rows, cols)) = terminal_size() {
                    let _ = client
                        .request(
                            "proc/resize",
                            json!({"connection": connection, "proc": proc_id, "rows": rows, "cols": cols}),
                        )
                        .await;
                }
            }
        });
    }
    let status = stream_process(&mut session, &proc_id, early).await;
    drop(raw);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_keys_only() {
        assert_eq!(
            redact("distant://:abcd@127.0.0.1:4000"),
            "distant://:***@127.0.0.1:4000"
        );
        assert_eq!(
            redact("distant://me:abcd@host:1/x@y"),
            "distant://me:***@host:1/x@y"
        );
        assert_eq!(redact("ssh://me@host:22"), "ssh://me@host:22");
        assert_eq!(redact("local"), "local");
    }

    #[test]
    fn exit_status_codes_and_signals() {
        assert_eq!(exit_status(&json!({"code": 3})), 3);
        assert_eq!(exit_status(&json!({"code": null, "signal": "KILL"})), 137);
        assert_eq!(exit_status(&json!({"signal": "SIGTERM"})), 143);
        assert_eq!(exit_status(&json!({"signal": 2})), 130);
        assert_eq!(exit_status(&json!({})), 1);
    }

    #[test]
    fn default_connection_is_the_last_live_one() {
        let list = json!([
            {"connection": "a", "destination": "local", "state": "connected"},
            {"connection": "b", "destination": "local", "state": "reconnecting"},
            {"connection": "c", "destination": "local", "state": "lost"},
        ]);
        assert_eq!(default_connection(&list).as_deref(), Some("b"));
        assert_eq!(default_connection(&json!([])), None);
    }
}
