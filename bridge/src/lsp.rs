//! `distant-bridge lsp`: a remote language server that looks local.
//!
//! An editor's LSP client spawns
//! `distant-bridge lsp [--connection ID | --destination DEST] [--scheme S] [--cwd DIR] -- CMD…`
//! as if it were the language server. The proxy starts `CMD` on the remote
//! through the bridge API (`proc/spawn` with `framing: "lsp"`, so the
//! *server* cuts the language server's stdout into whole messages) and
//! carries every message both ways:
//!
//! - **editor → remote.** stdin is read with the strict codec
//!   ([`LspCodec::strict`]: a malformed header is logged and skipped, the
//!   codec resynchronises). Each body goes through
//!   [`UriMap::to_remote`] (`SCHEME://AUTHORITY/P` → `file:///P`, only where
//!   a JSON string *is* such a URI), is re-framed with a fresh
//!   `Content-Length` and written with `proc/stdin`. The writes are
//!   pipelined (up to [`STDIN_WINDOW`] unanswered) and the API applies them
//!   in order. A body the rewriter cannot parse is forwarded untouched, with
//!   a warning.
//! - **remote → editor.** Each `proc/output` on stdout carries one framed
//!   message; a lenient decoder ([`LspCodec::lenient`]) takes the body (and
//!   would skip any junk with a warning), [`UriMap::to_editor`] maps
//!   every local `file:` URI form → `SCHEME://AUTHORITY/P` and the body goes
//!   to stdout with a fresh `Content-Length`. Everything else in a message
//!   stays byte for byte. The language server is not trusted: a message
//!   carrying a `file:` URI that cannot be made remote (another host, a
//!   control character), or that cannot be checked (malformed, too deep), is
//!   never forwarded ([`refusal`]): a request gets an error answer, a
//!   response becomes an error answer to the editor's request, a
//!   notification is dropped; each is logged. The language server's stderr is copied to our stderr as it is.
//!   Our own logs go to stderr too; stdout carries LSP messages only.
//! - **authority.** `AUTHORITY` for remote → editor URIs is the one of the
//!   first editor URI with our scheme (usually `initialize`'s `rootUri`);
//!   until one is seen, the `--connection` id, else empty.
//! - **reconnect.** A `connection/state` of `reconnecting` is only logged:
//!   the protocol resumes the session and replays, so the language server
//!   keeps running and no message is lost or duplicated. If the session is
//!   lost for good, the API ends the process (`proc/exit` with an error) and
//!   the proxy exits 1.
//! - **lifecycle.** When stdin closes (the editor exited) or stdout breaks,
//!   the proxy sends the language server `shutdown` (unless the editor
//!   already did; the answer is swallowed) and then `exit` (unless the
//!   editor already did), closes its stdin, waits up to [`EXIT_GRACE`] for
//!   `proc/exit` and then kills it. The proxy exits with the language
//!   server's status (128 + signal when it was killed), also when the
//!   language server exits on its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedRead};

use crate::cli::{self, CliError, Options, Session};
use crate::client::{ClientError, JsonRpcClient};
use crate::framing::{self, Frame, LspCodec};
use crate::uri_rewrite::UriMap;

/// How long the language server gets to exit after `exit` before it is
/// killed.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How long `shutdown` may take before `exit` is sent anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// After a kill, how long to wait for `proc/exit` before giving up.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// `proc/stdin` requests in flight at once.
pub const STDIN_WINDOW: usize = 64;

/// The id of the `shutdown` request the proxy sends on the editor's behalf.
const OUR_SHUTDOWN_ID: &str = "distant-bridge/shutdown";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What `distant-bridge lsp` was asked to run.
#[derive(Clone, Debug)]
pub struct LspArgs {
    /// `--destination DEST`: connect (or reuse a live connection to DEST).
    pub destination: Option<String>,
    /// `--scheme`: the editor-side URI scheme (default `distant`).
    pub scheme: String,
    /// `--cwd DIR`: the language server's working directory (a path, or an
    /// editor-side URI).
    pub cwd: Option<String>,
    /// The language server's argv.
    pub cmd: Vec<String>,
}

/// Which messages the editor has already sent itself.
#[derive(Clone, Copy, Debug, Default)]
struct EditorEnd {
    sent_shutdown: bool,
    sent_exit: bool,
}

/// The proxy's shutdown progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The editor is talking.
    Running,
    /// Our `shutdown` is out; `exit` follows its answer (or a timeout).
    AwaitingShutdown,
    /// `exit` is out (or the editor sent it); waiting for the process.
    Exiting,
    /// Killed; waiting for `proc/exit`.
    Killed,
}

/// Runs the proxy until the language server exits; returns its status.
pub async fn run(options: &Options, args: LspArgs) -> Result<u8, CliError> {
    if args.cmd.is_empty() {
        return Err(CliError::new(
            "lsp: no language server given; usage: distant-bridge lsp [--connection ID | \
             --destination DEST] -- CMD [ARGS...]",
        ));
    }
    if args.destination.is_some() && options.connection.is_some() {
        return Err(CliError::new(
            "lsp: give either --connection or --destination, not both",
        ));
    }
    let mut session = Session::open(options).await?;
    let connection = match &args.destination {
        Some(destination) => connect(&session, destination).await?,
        None => session.connection(options.connection.as_deref()).await?,
    };

    let learned: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let fallback_authority = options.connection.clone().unwrap_or_default();
    let mut params = json!({"connection": connection, "cmd": args.cmd, "framing": "lsp"});
    if let Some(cwd) = &args.cwd {
        let map = UriMap::new(args.scheme.clone(), String::new());
        let dir = map
            .uri_to_remote(cwd)
            .and_then(|u| u.strip_prefix("file://").map(str::to_owned))
            .unwrap_or_else(|| cwd.clone());
        params["cwd"] = Value::String(dir);
    }
    let spawned = session.call("proc/spawn", params).await?;
    let proc_id = spawned
        .get("proc")
        .and_then(id_string)
        .ok_or_else(|| CliError::new("proc/spawn: the bridge answered without a process id"))?;
    let pid = spawned.get("pid").and_then(Value::as_u64).unwrap_or(0);
    tracing::info!(
        pid,
        proc = %proc_id,
        connection = %connection,
        cmd = ?args.cmd,
        "language server started on the remote (pid={pid})"
    );

    let target = Target {
        client: session.client.clone(),
        connection: connection.clone(),
        proc_id: proc_id.clone(),
    };
    let mut editor = tokio::spawn(editor_to_remote(
        target.clone(),
        args.scheme.clone(),
        learned.clone(),
    ));
    let mut editor_running = true;

    let mut map = UriMap::new(args.scheme.clone(), fallback_authority);
    let mut map_learned = false;
    let mut decoder = LspCodec::lenient().with_max_body(usize::MAX);
    let mut pending = BytesMut::new();
    let mut stdout = tokio::io::stdout();
    let mut stdout_ok = true;
    let mut stderr = tokio::io::stderr();

    let mut phase = Phase::Running;
    let mut exit_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut give_up_at: Option<Instant> = None;

    loop {
        let begin_shutdown: Option<EditorEnd>;
        tokio::select! {
            note = session.notes.recv() => {
                let Some(note) = note else {
                    return Err(CliError::new(
                        "lsp: the bridge connection closed while the language server was \
                         running (did the manager exit? run `distant-bridge status`)",
                    ));
                };
                let params = note.params.unwrap_or(Value::Null);
                match note.method.as_str() {
                    "proc/output" if is_ours(&params, "proc", &proc_id) => {
                        let data = cli::decode_data(&params)?;
                        if params.get("stream").and_then(Value::as_str) == Some("stderr") {
                            let _ = stderr.write_all(&data).await;
                            let _ = stderr.flush().await;
                            continue;
                        }
                        if !map_learned {
                            if let Some(a) = learned.get() {
                                map.authority = a.clone();
                                map_learned = true;
                            }
                        }
                        pending.extend_from_slice(&data);
                        let mut shutdown_answered = false;
                        while let Some(frame) = decoder.decode(&mut pending).unwrap_or_else(|e| {
                            tracing::warn!("language server output: {e}");
                            None
                        }) {
                            let body = match frame {
                                Frame::Message(body) => body,
                                Frame::Junk(junk) => {
                                    tracing::warn!(
                                        "skipping {} bytes of non-LSP output from the language \
                                         server: {:?}",
                                        junk.len(),
                                        preview(&junk)
                                    );
                                    continue;
                                }
                                Frame::Invalid(e) => {
                                    tracing::warn!("skipping a message from the language server: {e}");
                                    continue;
                                }
                            };
                            if phase == Phase::AwaitingShutdown && answers_our_shutdown(&body) {
                                shutdown_answered = true;
                                continue;
                            }
                            if !stdout_ok {
                                continue;
                            }
                            let out = match map.to_editor(&body) {
                                Ok(r) => r.into_bytes(body),
                                Err(e) => {
                                    match refusal(&body, &e) {
                                        Refusal::AnswerServer(answer) => {
                                            target.send_stdin(&framing::frame(&answer)).await;
                                        }
                                        Refusal::AnswerEditor(answer) => {
                                            if write_message(&mut stdout, &answer).await.is_err() {
                                                stdout_ok = false;
                                            }
                                        }
                                        Refusal::Drop => {}
                                    }
                                    continue;
                                }
                            };
                            if write_message(&mut stdout, &out).await.is_err() {
                                tracing::info!("the editor's end of stdout closed");
                                stdout_ok = false;
                            }
                        }
                        if shutdown_answered {
                            tracing::debug!("the language server answered shutdown; sending exit");
                            send_exit(&target).await;
                            phase = Phase::Exiting;
                            exit_at = None;
                            kill_at = Some(Instant::now() + EXIT_GRACE);
                        }
                        if stdout_ok || phase != Phase::Running {
                            continue;
                        }
                        // The editor is gone: stop reading it and shut down.
                        editor.abort();
                        editor_running = false;
                        begin_shutdown = Some(EditorEnd::default());
                    }
                    "proc/exit" if is_ours(&params, "proc", &proc_id) => {
                        if let Some(error) = params.get("error").and_then(Value::as_str) {
                            eprintln!("distant-bridge: lsp: the language server ended: {error}");
                        }
                        let status = cli::exit_status(&params);
                        tracing::info!(status, "the language server exited");
                        let _ = stdout.flush().await;
                        return Ok(status);
                    }
                    "connection/state" if is_ours(&params, "connection", &connection) => {
                        let state = params.get("state").and_then(Value::as_str).unwrap_or("?");
                        let detail = params.get("detail").and_then(Value::as_str).unwrap_or("");
                        match state {
                            "reconnecting" => tracing::info!("connection {connection} reconnecting: {detail}"),
                            "connected" => tracing::info!("connection {connection} is back"),
                            other => tracing::warn!("connection {connection} is {other}: {detail}"),
                        }
                        continue;
                    }
                    _ => continue,
                }
            }
            end = &mut editor, if editor_running => {
                editor_running = false;
                let end = end.unwrap_or_default();
                tracing::info!("the editor closed stdin");
                begin_shutdown = Some(end);
            }
            _ = sleep_until(exit_at), if exit_at.is_some() => {
                tracing::warn!("the language server did not answer shutdown in time; sending exit");
                send_exit(&target).await;
                phase = Phase::Exiting;
                exit_at = None;
                kill_at = Some(Instant::now() + EXIT_GRACE);
                continue;
            }
            _ = sleep_until(kill_at), if kill_at.is_some() => {
                tracing::warn!("the language server did not exit in time; killing it");
                target.request_logged("proc/kill", json!({"signal": "KILL"})).await;
                phase = Phase::Killed;
                kill_at = None;
                give_up_at = Some(Instant::now() + KILL_GRACE);
                continue;
            }
            _ = sleep_until(give_up_at), if give_up_at.is_some() => {
                eprintln!("distant-bridge: lsp: the language server did not report its exit after being killed");
                return Ok(1);
            }
        }
        let Some(end) = begin_shutdown else { continue };
        if phase != Phase::Running {
            continue;
        }
        let now = Instant::now();
        if end.sent_exit {
            target.request_logged("proc/closeStdin", json!({})).await;
            phase = Phase::Exiting;
            kill_at = Some(now + EXIT_GRACE);
        } else if end.sent_shutdown {
            send_exit(&target).await;
            phase = Phase::Exiting;
            kill_at = Some(now + EXIT_GRACE);
        } else {
            let body = json!({"jsonrpc": "2.0", "id": OUR_SHUTDOWN_ID, "method": "shutdown"});
            target
                .send_stdin(&framing::frame(body.to_string().as_bytes()))
                .await;
            phase = Phase::AwaitingShutdown;
            exit_at = Some(now + SHUTDOWN_GRACE);
        }
    }
}

/// `connect DEST` (the API reuses a live connection to the same
/// destination). The key comes from `DISTANT_KEY` (read and removed at
/// start); one inside DEST is refused, as argv is readable by every user.
async fn connect(session: &Session, destination: &str) -> Result<String, CliError> {
    crate::secrets::refuse_key_in_argv(destination)
        .map_err(|e| CliError::new(format!("lsp: {e}")))?;
    let mut params = json!({"destination": destination});
    if destination.trim().starts_with("distant://") {
        if let Some(key) = crate::secrets::env_key() {
            params["key"] = Value::String(key);
        }
    }
    let result = session.call("connect", params).await?;
    result
        .get("connection")
        .and_then(id_string)
        .ok_or_else(|| CliError::new("connect: the bridge answered without a connection id"))
}

/// The remote process and how to reach it.
#[derive(Clone)]
struct Target {
    client: JsonRpcClient,
    connection: String,
    proc_id: String,
}

type Answer = Pin<Box<dyn Future<Output = Result<Value, ClientError>> + Send>>;

impl Target {
    fn params(&self, mut extra: Value) -> Value {
        extra["connection"] = Value::String(self.connection.clone());
        extra["proc"] = Value::String(self.proc_id.clone());
        extra
    }

    /// Starts `proc/stdin` with one framed message; returns the answer's
    /// future, or `None` when the bridge is gone.
    async fn start_stdin(&self, framed: &[u8]) -> Option<Answer> {
        let data = match std::str::from_utf8(framed) {
            Ok(s) => json!({"data": s, "encoding": "utf-8"}),
            Err(_) => json!({"data": B64.encode(framed), "encoding": "base64"}),
        };
        match self
            .client
            .start_request("proc/stdin", self.params(data))
            .await
        {
            Ok(answer) => Some(Box::pin(answer)),
            Err(e) => {
                tracing::warn!("cannot write to the language server: {e}");
                None
            }
        }
    }

    /// Writes one framed message; logs (does not wait for) a failure.
    async fn send_stdin(&self, framed: &[u8]) {
        if let Some(answer) = self.start_stdin(framed).await {
            tokio::spawn(async move {
                if let Err(e) = answer.await {
                    tracing::warn!("cannot write to the language server: {e}");
                }
            });
        }
    }

    /// Sends `method` for the process; logs (does not wait for) a failure.
    async fn request_logged(&self, method: &'static str, extra: Value) {
        match self.client.start_request(method, self.params(extra)).await {
            Ok(answer) => {
                tokio::spawn(async move {
                    if let Err(e) = answer.await {
                        tracing::debug!("{method}: {e}");
                    }
                });
            }
            Err(e) => tracing::debug!("{method}: {e}"),
        }
    }
}

/// `exit`, then close the language server's stdin.
async fn send_exit(target: &Target) {
    let body = br#"{"jsonrpc":"2.0","method":"exit"}"#;
    target.send_stdin(&framing::frame(body)).await;
    target.request_logged("proc/closeStdin", json!({})).await;
}

/// Reads the editor's messages until stdin ends; forwards each to the
/// language server. Returns which lifecycle messages the editor sent.
async fn editor_to_remote(
    target: Target,
    scheme: String,
    learned: Arc<OnceLock<String>>,
) -> EditorEnd {
    let map = UriMap::new(scheme.clone(), String::new());
    let needle = format!("{}://", scheme.to_ascii_lowercase()).into_bytes();
    let mut frames = FramedRead::new(tokio::io::stdin(), LspCodec::strict());
    let (answers_tx, mut answers_rx) = mpsc::channel::<Answer>(STDIN_WINDOW);
    tokio::spawn(async move {
        let mut warned = false;
        while let Some(answer) = answers_rx.recv().await {
            if let Err(e) = answer.await {
                if !warned {
                    tracing::warn!("cannot write to the language server: {e}");
                    warned = true;
                }
            }
        }
    });
    let mut end = EditorEnd::default();
    loop {
        let body: Bytes = match frames.next().await {
            None => break,
            Some(Err(e)) => {
                tracing::warn!("reading the editor: {e}");
                break;
            }
            Some(Ok(Frame::Message(body))) => body,
            Some(Ok(Frame::Invalid(e))) => {
                tracing::warn!("skipping a malformed message from the editor: {e}");
                continue;
            }
            Some(Ok(Frame::Junk(junk))) => {
                tracing::warn!("skipping {} stray bytes from the editor", junk.len());
                continue;
            }
        };
        match lifecycle_method(&body) {
            Some(Lifecycle::Shutdown) => end.sent_shutdown = true,
            Some(Lifecycle::Exit) => end.sent_exit = true,
            None => {}
        }
        if learned.get().is_none() && contains_ci(&body, &needle) {
            if let Some(authority) = first_authority(&body, &scheme) {
                tracing::debug!("editor URIs use authority {authority:?}");
                let _ = learned.set(authority);
            }
        }
        let out = match map.to_remote(&body) {
            Ok(r) => r.into_bytes(body),
            Err(e) => {
                tracing::warn!("forwarding an editor message unchanged: {e}");
                body
            }
        };
        let Some(answer) = target.start_stdin(&framing::frame(&out)).await else {
            break;
        };
        if answers_tx.send(answer).await.is_err() {
            break;
        }
    }
    end
}

enum Lifecycle {
    Shutdown,
    Exit,
}

/// What to do instead of forwarding a language server message the URI
/// rewriter refused.
#[derive(Debug, PartialEq)]
enum Refusal {
    /// The message was a request: answer it with this error body.
    AnswerServer(Vec<u8>),
    /// The message answered an editor request: give the editor this error
    /// body instead.
    AnswerEditor(Vec<u8>),
    /// A notification (or unparseable): dropped.
    Drop,
}

/// The reply to a refused language server message `body` (logs it).
fn refusal(body: &[u8], why: &crate::uri_rewrite::RewriteError) -> Refusal {
    let peek: Option<Peek> = serde_json::from_slice(body).ok();
    let (id, method) = match peek {
        Some(p) => (p.id, p.method),
        None => (None, None),
    };
    let message = format!(
        "distant-bridge refused a message from the language server: {why}; \
         no local file may be named from the remote side"
    );
    tracing::warn!(
        method = method.as_deref().unwrap_or(""),
        id = %id.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        "{message}"
    );
    match (id, method) {
        (Some(id), Some(_)) => Refusal::AnswerServer(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": message}})
                .to_string()
                .into_bytes(),
        ),
        // -32803: LSP's RequestFailed.
        (Some(id), None) if !id.is_null() => Refusal::AnswerEditor(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32803, "message": message}})
                .to_string()
                .into_bytes(),
        ),
        _ => Refusal::Drop,
    }
}

#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    id: Option<Value>,
}

/// `shutdown` request or `exit` notification? Parses only bodies that
/// mention one of the words.
fn lifecycle_method(body: &[u8]) -> Option<Lifecycle> {
    if !contains_ci(body, b"\"shutdown\"") && !contains_ci(body, b"\"exit\"") {
        return None;
    }
    let peek: Peek = serde_json::from_slice(body).ok()?;
    match peek.method.as_deref()? {
        "shutdown" => Some(Lifecycle::Shutdown),
        "exit" => Some(Lifecycle::Exit),
        _ => None,
    }
}

/// Is `body` the language server's answer to our own `shutdown`?
fn answers_our_shutdown(body: &[u8]) -> bool {
    if !contains_ci(body, OUR_SHUTDOWN_ID.as_bytes()) {
        return false;
    }
    serde_json::from_slice::<Peek>(body).ok().is_some_and(|p| {
        p.method.is_none() && p.id.as_ref().and_then(Value::as_str) == Some(OUR_SHUTDOWN_ID)
    })
}

/// The authority of the first string in `body` that is a
/// `SCHEME://AUTHORITY/…` URI.
fn first_authority(body: &[u8], scheme: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut stack = vec![&value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                if let Some(a) = authority_of(s, scheme) {
                    return Some(a.to_owned());
                }
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => {
                for (k, v) in map {
                    if let Some(a) = authority_of(k, scheme) {
                        return Some(a.to_owned());
                    }
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    None
}

/// `SCHEME://AUTHORITY/PATH` → `AUTHORITY`.
fn authority_of<'s>(s: &'s str, scheme: &str) -> Option<&'s str> {
    if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let head = s.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = s.get(scheme.len()..)?.strip_prefix("://")?;
    let slash = rest.find('/')?;
    Some(&rest[..slash])
}

/// ASCII-case-insensitive substring test.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Writes one message with a fresh `Content-Length`.
async fn write_message(out: &mut tokio::io::Stdout, body: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(body.len() + 32);
    framed.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    framed.extend_from_slice(body);
    out.write_all(&framed).await?;
    out.flush().await
}

fn is_ours(params: &Value, field: &str, id: &str) -> bool {
    params.get(field).and_then(id_string).as_deref() == Some(id)
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The start of some junk, for a log line.
fn preview(junk: &[u8]) -> String {
    let s = String::from_utf8_lossy(&junk[..junk.len().min(120)]).into_owned();
    if junk.len() > 120 {
        format!("{s}…")
    } else {
        s
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_authority_of_the_first_editor_uri() {
        let body = br#"{"id":1,"method":"initialize","params":{"processId":1,"rootUri":"distant://box/home/me","text":"distant://other/x y"}}"#;
        assert_eq!(first_authority(body, "distant").as_deref(), Some("box"));
        let empty = br#"{"params":{"textDocument":{"uri":"DISTANT:///a/b.py"}}}"#;
        assert_eq!(first_authority(empty, "distant").as_deref(), Some(""));
        assert_eq!(first_authority(br#"{"uri":"file:///a"}"#, "distant"), None);
        assert_eq!(
            first_authority(br#"{"changes":{"distant://k/a":[]}}"#, "distant").as_deref(),
            Some("k")
        );
    }

    #[test]
    fn recognises_lifecycle_messages() {
        assert!(matches!(
            lifecycle_method(br#"{"jsonrpc":"2.0","id":9,"method":"shutdown"}"#),
            Some(Lifecycle::Shutdown)
        ));
        assert!(matches!(
            lifecycle_method(br#"{"jsonrpc":"2.0","method":"exit"}"#),
            Some(Lifecycle::Exit)
        ));
        assert!(lifecycle_method(
            br#"{"method":"textDocument/didChange","params":{"text":"\"exit\""}}"#
        )
        .is_none());
        assert!(answers_our_shutdown(
            br#"{"jsonrpc":"2.0","id":"distant-bridge/shutdown","result":null}"#
        ));
        assert!(!answers_our_shutdown(
            br#"{"jsonrpc":"2.0","id":3,"result":null}"#
        ));
    }

    #[test]
    fn refused_messages_are_answered_by_kind() {
        let why = crate::uri_rewrite::RewriteError {
            offset: 3,
            reason: "a file: URI from the remote side names a host (a network path)",
        };
        let request = br#"{"jsonrpc":"2.0","id":7,"method":"workspace/applyEdit","params":{}}"#;
        let Refusal::AnswerServer(a) = refusal(request, &why) else {
            panic!("a request is answered")
        };
        let a: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(a["id"], 7);
        assert_eq!(a["error"]["code"], -32600);
        assert!(a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("names a host"));
        let response = br#"{"jsonrpc":"2.0","id":"x","result":{"uri":"file://h/a"}}"#;
        let Refusal::AnswerEditor(a) = refusal(response, &why) else {
            panic!("a response becomes an error answer")
        };
        let a: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(a["id"], "x");
        assert!(a.get("result").is_none());
        let note = br#"{"jsonrpc":"2.0","method":"x","params":{"uri":"file://h/a"}}"#;
        assert_eq!(refusal(note, &why), Refusal::Drop);
        assert_eq!(refusal(b"[[[[", &why), Refusal::Drop);
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ci(b"xx Distant://a", b"distant://"));
        assert!(!contains_ci(b"dist", b"distant://"));
    }
}
