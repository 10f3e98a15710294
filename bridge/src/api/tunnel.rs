//! Port forwarding (`tunnel/open`, `tunnel/close`, `tunnels`, the
//! `tunnel/state` notification; `docs/BRIDGE-API.md`).
//!
//! Owns [`Tunnels`]: the forwards of one [`Api`]. A tunnel is a listener on
//! `127.0.0.1:localPort` (never another interface); every connection it
//! accepts becomes a `TcpConnect` stream on the tunnel's server connection
//! (`docs/PROTOCOL.md` §5.7), so forwarded bytes ride the session: they are
//! encrypted, replayed across reconnects and flow-controlled like every
//! other stream.
//!
//! Per forwarded connection:
//! - **remote → local**: a drain task moves `TcpData` out of the reply
//!   stream into a [`Pipe`] at once (the server's byte window bounds it, and
//!   the stream router never waits on a slow local reader); a writer empties
//!   the pipe into the local socket and acknowledges what it wrote
//!   (`TcpAck`), which is what lets the server read more.
//! - **local → remote**: a reader sends what the local socket gives as
//!   pipelined `TcpSend`s, at most [`SEND_WINDOW`] bytes unanswered, then
//!   `TcpShutdown` at EOF (half-close).
//!
//! A tunnel opened without `keep` closes when the peer that opened it
//! leaves; every tunnel closes with its connection (`disconnect`, lost).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use distant_protocol::driver::rpc::{PendingCall, ReplyStream};
use distant_protocol::msg::{Op, Reply, TCP_DEFAULT_WINDOW, TCP_MAX_WINDOW};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use super::convert::{self, parse};
use super::{Api, Connection, Done, Peer};
use crate::jsonrpc::{self, ErrorKind, RpcError};
use crate::sync::lock;

/// Tunnels one server connection may have open.
pub(crate) const MAX_TUNNELS_PER_CONNECTION: usize = 64;
/// Forwarded connections one tunnel carries at once; more wait in the
/// listener's backlog.
const MAX_CONNECTIONS_PER_TUNNEL: usize = 512;
/// Largest read from a local socket (one `TcpSend`).
const READ_CHUNK: usize = 64 * 1024;
/// `TcpSend` bytes unanswered at once per connection (below the server's
/// 4 MiB per-connection queue).
pub(crate) const SEND_WINDOW: usize = 2 * 1024 * 1024;
/// Written bytes collected before one `TcpAck` (a quarter of the window,
/// so the server always has room left while the ack travels).
const ACK_EVERY: u64 = TCP_DEFAULT_WINDOW as u64 / 4;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenP {
    connection: String,
    remote_port: u32,
    #[serde(default)]
    remote_host: Option<String>,
    #[serde(default)]
    local_port: u32,
    #[serde(default)]
    keep: bool,
}

#[derive(Deserialize)]
struct CloseP {
    connection: String,
    tunnel: String,
}

#[derive(Deserialize)]
struct ListP {
    connection: String,
}

/// One forward.
struct Tunnel {
    id: String,
    connection: String,
    owner: u64,
    keep: bool,
    remote_host: String,
    remote_port: u16,
    local_port: u16,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Stats {
    /// Forwarded connections open now.
    open: AtomicU64,
    /// Forwarded connections accepted in all.
    accepted: AtomicU64,
    /// Bytes from the remote service to local clients.
    bytes_in: AtomicU64,
    /// Bytes from local clients to the remote service.
    bytes_out: AtomicU64,
    /// Why the last forwarded connection failed, if one did.
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn failed(&self, why: &str) {
        *lock(&self.last_error) = Some(why.to_string());
    }
}

/// The tunnels of one API server.
#[derive(Default)]
pub(crate) struct Tunnels {
    table: Mutex<HashMap<String, Arc<Tunnel>>>,
}

impl Tunnels {
    /// Tunnels to close when `peer` leaves (those it opened without `keep`).
    pub(crate) fn release_peer(&self, peer: u64) -> Vec<(String, String)> {
        self.take(|t| t.owner == peer && !t.keep)
    }

    /// Tunnels of a connection that is going away.
    pub(crate) fn release_connection(&self, connection: &str) -> Vec<(String, String)> {
        self.take(|t| t.connection == connection)
    }

    /// True when some tunnel of `connection` is kept for the manager's
    /// lifetime (the connection then counts as used).
    pub(crate) fn keeps(&self, connection: &str) -> bool {
        lock(&self.table)
            .values()
            .any(|t| t.keep && t.connection == connection)
    }

    /// Stops and forgets the tunnels `pick` selects; returns
    /// `(connection, tunnel)` of each.
    fn take(&self, pick: impl Fn(&Tunnel) -> bool) -> Vec<(String, String)> {
        let mut table = lock(&self.table);
        let ids: Vec<String> = table
            .values()
            .filter(|t| pick(t))
            .map(|t| t.id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| table.remove(id))
            .map(|t| {
                t.stop.send_replace(true);
                (t.connection.clone(), t.id.clone())
            })
            .collect()
    }
}

/// The `tunnel/state` notification.
fn state_note(connection: &str, tunnel: &str, state: &str, reason: Option<&str>) -> Vec<u8> {
    let mut p = json!({"connection": connection, "tunnel": tunnel, "state": state});
    if let Some(reason) = reason {
        p["reason"] = reason.into();
    }
    jsonrpc::notification("tunnel/state", Some(&p))
}

impl Api {
    /// Closes tunnels (already taken out of the table) and tells every peer.
    pub(crate) async fn tunnels_closed(&self, closed: Vec<(String, String)>, reason: &str) {
        for (connection, tunnel) in closed {
            tracing::info!(%connection, %tunnel, "tunnel closed: {reason}");
            self.broadcast(state_note(&connection, &tunnel, "closed", Some(reason)))
                .await;
        }
    }
}

/// Starts port detection on a new connection whose server offers it:
/// every listener a process of the session opens is told to every peer as
/// `tunnel/detected`. Holds no strong reference to the connection, so it
/// ends with the session.
pub(crate) fn start_detection(api: &Arc<Api>, conn: &Arc<Connection>) {
    let offers = conn.server["capabilities"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c == "detect-ports"));
    if !offers {
        return;
    }
    let api = Arc::downgrade(api);
    let weak = Arc::downgrade(conn);
    let id = conn.id.clone();
    tokio::spawn(async move {
        let stream = match weak.upgrade() {
            Some(conn) => conn.rpc.stream(Op::DetectPorts { interval_ms: None }).await,
            None => return,
        };
        let Ok(mut stream) = stream else { return };
        while let Some(Ok(reply)) = stream.recv().await {
            let Reply::PortsListening { ports } = reply else {
                continue;
            };
            let Some(api) = api.upgrade() else { return };
            for p in ports {
                tracing::info!(connection = %id, port = p.port, pid = p.pid, "a remote process listens on a new port");
                let mut params =
                    json!({"connection": id, "port": p.port, "pid": p.pid, "address": p.addr});
                if !p.command.is_empty() {
                    params["command"] = p.command.into();
                }
                api.broadcast(jsonrpc::notification("tunnel/detected", Some(&params)))
                    .await;
            }
        }
    });
}

/// Runs the tunnel methods; `None` when `method` is not one of them.
pub(crate) async fn handle(
    api: &Arc<Api>,
    peer: &Arc<Peer>,
    method: &str,
    params: Option<Value>,
) -> Option<Result<Done, RpcError>> {
    Some(match method {
        "tunnel/open" => open(api, peer, params).await,
        "tunnel/close" => close(api, params).await,
        "tunnels" => list(api, params),
        _ => return None,
    })
}

async fn open(api: &Arc<Api>, peer: &Arc<Peer>, params: Option<Value>) -> Result<Done, RpcError> {
    let p: OpenP = parse(params, "")?;
    let conn = api.connection(&p.connection)?;
    let remote_port = match u16::try_from(p.remote_port) {
        Ok(port) if port > 0 => port,
        _ => {
            return Err(RpcError::invalid_params(
                "`remotePort` must be a port number from 1 to 65535",
            ))
        }
    };
    let Ok(local_port) = u16::try_from(p.local_port) else {
        return Err(RpcError::invalid_params(
            "`localPort` must be a port number from 0 (any free port) to 65535",
        ));
    };
    let remote_host = match p.remote_host {
        Some(h) if h.trim().is_empty() || h.contains('\0') => {
            return Err(RpcError::invalid_params(
                "`remoteHost` must be a host name or address (default 127.0.0.1)",
            ))
        }
        Some(h) => h,
        None => "127.0.0.1".to_string(),
    };
    let count = lock(&api.tunnels.table)
        .values()
        .filter(|t| t.connection == conn.id)
        .count();
    if count >= MAX_TUNNELS_PER_CONNECTION {
        return Err(RpcError::new(
            ErrorKind::Other,
            format!(
                "connection {} already has {MAX_TUNNELS_PER_CONNECTION} tunnels (the limit); close one with tunnel/close first",
                conn.id
            ),
        ));
    }
    let listener = TcpListener::bind(("127.0.0.1", local_port))
        .await
        .map_err(|e| bind_error(local_port, &e))?;
    let local_port = listener
        .local_addr()
        .map_err(|e| RpcError::internal(format!("the local listener has no address: {e}")))?
        .port();
    let (stop, stop_rx) = watch::channel(false);
    let tunnel = Arc::new(Tunnel {
        id: api.next_id(),
        connection: conn.id.clone(),
        owner: peer.id,
        keep: p.keep,
        remote_host,
        remote_port,
        local_port,
        stats: Arc::new(Stats::default()),
        stop,
    });
    lock(&api.tunnels.table).insert(tunnel.id.clone(), tunnel.clone());
    tracing::info!(
        connection = %conn.id,
        tunnel = %tunnel.id,
        "forwarding 127.0.0.1:{local_port} to {}:{remote_port} on the remote",
        tunnel.remote_host
    );
    tokio::spawn(accept_loop(
        Arc::downgrade(api),
        Arc::downgrade(&conn),
        tunnel.clone(),
        listener,
        stop_rx,
    ));
    api.broadcast(state_note(&conn.id, &tunnel.id, "open", None))
        .await;
    Ok(json!({"tunnel": tunnel.id, "localPort": local_port}).into())
}

async fn close(api: &Arc<Api>, params: Option<Value>) -> Result<Done, RpcError> {
    let p: CloseP = parse(params, "")?;
    api.connection(&p.connection)?;
    let closed = api
        .tunnels
        .take(|t| t.id == p.tunnel && t.connection == p.connection);
    if closed.is_empty() {
        return Err(RpcError::new(
            ErrorKind::NotFound,
            format!(
                "no tunnel {:?} on connection {} (it may be closed already; `tunnels` lists them)",
                p.tunnel, p.connection
            ),
        ));
    }
    api.tunnels_closed(closed, "closed by a client").await;
    Ok(Value::Null.into())
}

fn list(api: &Arc<Api>, params: Option<Value>) -> Result<Done, RpcError> {
    let p: ListP = parse(params, "")?;
    api.connection(&p.connection)?;
    let mut tunnels: Vec<Arc<Tunnel>> = lock(&api.tunnels.table)
        .values()
        .filter(|t| t.connection == p.connection)
        .cloned()
        .collect();
    tunnels.sort_by_key(|t| t.id.parse::<u64>().unwrap_or(0));
    let list: Vec<Value> = tunnels
        .iter()
        .map(|t| {
            let s = &t.stats;
            let mut v = json!({
                "tunnel": t.id,
                "localPort": t.local_port,
                "remoteHost": t.remote_host,
                "remotePort": t.remote_port,
                "connections": s.open.load(Ordering::Relaxed),
                "accepted": s.accepted.load(Ordering::Relaxed),
                "bytesIn": s.bytes_in.load(Ordering::Relaxed),
                "bytesOut": s.bytes_out.load(Ordering::Relaxed),
                "keep": t.keep,
            });
            if let Some(e) = lock(&s.last_error).clone() {
                v["lastError"] = e.into();
            }
            v
        })
        .collect();
    Ok(Value::Array(list).into())
}

fn bind_error(port: u16, e: &std::io::Error) -> RpcError {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => RpcError::new(
            ErrorKind::AlreadyExists,
            format!(
                "local port {port} is already in use on this machine; pick another localPort, or 0 for any free one"
            ),
        ),
        std::io::ErrorKind::PermissionDenied => RpcError::new(
            ErrorKind::PermissionDenied,
            format!(
                "cannot listen on local port {port}: permission denied (ports below 1024 need privileges); pick a port from 1024 up, or 0"
            ),
        ),
        _ => RpcError::new(
            ErrorKind::Other,
            format!("cannot listen on 127.0.0.1:{port}: {e}"),
        ),
    }
}

/// Accepts local connections until the tunnel is closed or its server
/// connection ends.
async fn accept_loop(
    api: Weak<Api>,
    conn: Weak<Connection>,
    tunnel: Arc<Tunnel>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut state) = conn.upgrade().map(|c| c.state.clone()) else {
        return;
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_TUNNEL));
    let reason = loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break "the tunnel's slots are gone";
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break "",
            _ = state.wait_for(|s| s.is_final()) => break "its connection ended",
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(e) => {
                // Out of file descriptors and the like: keep serving.
                tracing::warn!(tunnel = %tunnel.id, "accepting a local connection failed: {e}");
                tunnel
                    .stats
                    .failed(&format!("accepting a local connection failed: {e}"));
                drop(slot);
                tokio::task::yield_now().await;
                continue;
            }
        };
        let Some(c) = conn.upgrade() else {
            break "its connection ended";
        };
        let tunnel = tunnel.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            carry(c, &tunnel, socket, stop).await;
            drop(slot);
        });
    };
    drop(listener);
    if !reason.is_empty() {
        if let Some(api) = api.upgrade() {
            let closed = api.tunnels.take(|t| t.id == tunnel.id);
            api.tunnels_closed(closed, reason).await;
        }
    }
}

/// What the remote side of one forwarded connection delivered, waiting to
/// be written to the local socket. Bounded by the server's window.
#[derive(Default)]
struct Pipe {
    inner: Mutex<PipeInner>,
    ready: Notify,
}

#[derive(Default)]
struct PipeInner {
    /// Chunks as they came (no copy), and their total size.
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
    eof: bool,
    /// The remote stream ended: `Some(None)` orderly, `Some(Some(e))` not.
    ended: Option<Option<String>>,
}

impl Pipe {
    fn update(&self, f: impl FnOnce(&mut PipeInner)) {
        f(&mut lock(&self.inner));
        self.ready.notify_one();
    }
}

/// Carries one accepted local connection to the remote service.
async fn carry(
    conn: Arc<Connection>,
    tunnel: &Tunnel,
    socket: TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    let stats = &tunnel.stats;
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    let _ = socket.set_nodelay(true);
    let op = Op::TcpConnect {
        host: Some(tunnel.remote_host.clone()),
        port: tunnel.remote_port,
        window: Some(TCP_DEFAULT_WINDOW),
        timeout_ms: None,
    };
    let opened = tokio::select! {
        r = open_remote(&conn, op) => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    let (mut stream, id) = match opened {
        Ok(o) => o,
        Err(why) => {
            tracing::info!(tunnel = %tunnel.id, "a forwarded connection failed: {why}");
            stats.failed(&why);
            return;
        }
    };
    stats.open.fetch_add(1, Ordering::Relaxed);
    let (rd, wr) = socket.into_split();
    let pipe = Arc::new(Pipe::default());
    let drainer = pipe.clone();
    tokio::spawn(async move {
        let ended = loop {
            match stream.recv().await {
                Some(Ok(Reply::TcpData { data, .. })) => {
                    let mut over = false;
                    drainer.update(|p| {
                        p.len += data.len();
                        p.chunks.push_back(data);
                        over = p.len > TCP_MAX_WINDOW as usize;
                    });
                    if over {
                        // The server ignores the window it was given.
                        break Some("the server sent more than its window allows".to_string());
                    }
                }
                Some(Ok(Reply::TcpEof { .. })) => drainer.update(|p| p.eof = true),
                Some(Ok(Reply::TcpClosed { error, .. })) => break error.map(|e| e.message),
                Some(Ok(Reply::Error(e))) => break Some(e.message),
                Some(Ok(other)) => {
                    tracing::debug!(
                        "ignoring an unexpected reply on a forwarded connection: {other:?}"
                    );
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break Some("the remote connection ended".to_string()),
            }
        };
        drainer.update(|p| p.ended = Some(ended));
    });

    let rpc = &conn.rpc;
    let both = async { tokio::try_join!(down(rpc, id, &pipe, wr, stats), up(rpc, id, rd, stats)) };
    let outcome = tokio::select! {
        r = both => r.map(|_| ()),
        _ = stop.wait_for(|s| *s) => Err("the tunnel was closed".to_string()),
    };
    if let Err(why) = outcome {
        tracing::debug!(tunnel = %tunnel.id, conn = id, "forwarded connection ends: {why}");
        if why != "the tunnel was closed" {
            stats.failed(&why);
        }
        let _ = rpc.call(Op::TcpClose { conn: id }).await;
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Opens the remote connection: its stream and server id, or why not.
async fn open_remote(conn: &Connection, op: Op) -> Result<(ReplyStream, u64), String> {
    let mut stream = conn
        .rpc
        .stream(op)
        .await
        .map_err(|e| convert::driver_error(e, &conn.id).message)?;
    match stream.recv().await {
        Some(Ok(Reply::TcpConnected { conn, .. })) => Ok((stream, conn)),
        Some(Ok(Reply::Error(e))) => Err(e.message),
        Some(Ok(other)) => Err(format!("unexpected answer to TcpConnect: {other:?}")),
        Some(Err(e)) => Err(convert::driver_error(e, &conn.id).message),
        None => Err("the remote connection ended before it was made".to_string()),
    }
}

/// remote → local: writes the pipe to the socket and acknowledges it;
/// half-closes the socket at the remote's EOF; ends with the remote stream.
async fn down(
    rpc: &distant_protocol::driver::rpc::RpcClient,
    id: u64,
    pipe: &Pipe,
    mut wr: OwnedWriteHalf,
    stats: &Stats,
) -> Result<(), String> {
    let mut unacked = 0u64;
    let mut shut = false;
    loop {
        let notified = pipe.ready.notified();
        let (chunks, eof, ended) = {
            let mut p = lock(&pipe.inner);
            p.len = 0;
            (std::mem::take(&mut p.chunks), p.eof, p.ended.clone())
        };
        if !chunks.is_empty() {
            let mut n = 0u64;
            for chunk in chunks {
                wr.write_all(&chunk)
                    .await
                    .map_err(|e| format!("writing to the local client failed: {e}"))?;
                n += chunk.len() as u64;
            }
            stats.bytes_in.fetch_add(n, Ordering::Relaxed);
            unacked += n;
            if unacked >= ACK_EVERY {
                ack(rpc, id, unacked);
                unacked = 0;
            }
            continue;
        }
        if eof && !shut {
            let _ = wr.shutdown().await;
            shut = true;
        }
        // After the half-close this keeps waiting for the stream's end, so
        // a connection that fails later (a reset while the local side still
        // sends) ends the local one too.
        match ended {
            // Closed in order after both sides were shut: done.
            Some(None) if shut => return Ok(()),
            Some(None) => return Err("the remote service closed the connection".to_string()),
            Some(Some(e)) => return Err(e),
            None => {}
        }
        notified.await;
    }
}

/// Sends a `TcpAck` without waiting for its answer.
fn ack(rpc: &distant_protocol::driver::rpc::RpcClient, id: u64, bytes: u64) {
    let rpc = rpc.clone();
    tokio::spawn(async move {
        let _ = rpc.call(Op::TcpAck { conn: id, bytes }).await;
    });
}

/// local → remote: pipelined `TcpSend`s, then `TcpShutdown` at EOF.
async fn up(
    rpc: &distant_protocol::driver::rpc::RpcClient,
    id: u64,
    mut rd: OwnedReadHalf,
    stats: &Stats,
) -> Result<(), String> {
    let window = Arc::new(Semaphore::new(SEND_WINDOW));
    let (pending_tx, mut pending_rx) =
        mpsc::unbounded_channel::<(PendingCall, tokio::sync::OwnedSemaphorePermit)>();
    // Answers come in order; the first failure ends the connection.
    let answers = async move {
        while let Some((call, permit)) = pending_rx.recv().await {
            let n = permit.num_permits() as u64;
            match call.reply().await {
                Ok(Reply::Ok) => {
                    stats.bytes_out.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Reply::Error(e)) => return Err(e.message),
                Ok(other) => return Err(format!("unexpected answer to TcpSend: {other:?}")),
                Err(e) => return Err(e.to_string()),
            }
            drop(permit);
        }
        Ok::<(), String>(())
    };
    let reading = async move {
        // Owned here so the answers loop ends once reading does.
        let pending_tx = pending_tx;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            let mut permit = window
                .clone()
                .acquire_many_owned(READ_CHUNK as u32)
                .await
                .map_err(|_| "the send window is gone".to_string())?;
            buf.reserve(READ_CHUNK);
            let n = match (&mut rd).take(READ_CHUNK as u64).read_buf(&mut buf).await {
                Ok(n) => n,
                Err(e) => return Err(format!("reading from the local client failed: {e}")),
            };
            if n == 0 {
                let call = rpc
                    .start_call(Op::TcpShutdown { conn: id })
                    .await
                    .map_err(|e| e.to_string())?;
                match call.reply().await {
                    Ok(Reply::Ok) => return Ok(()),
                    Ok(Reply::Error(e)) => return Err(e.message),
                    Ok(other) => {
                        return Err(format!("unexpected answer to TcpShutdown: {other:?}"))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            let used = permit.split(n).expect("n <= READ_CHUNK permits");
            drop(permit);
            let data: Bytes = buf.split().freeze();
            let call = rpc
                .start_call(Op::TcpSend { conn: id, data })
                .await
                .map_err(|e| e.to_string())?;
            let _ = pending_tx.send((call, used));
        }
    };
    // Reading ends at EOF after the shutdown's answer (which comes after
    // every send's); a failed answer ends both at once.
    tokio::try_join!(reading, answers).map(|_| ())
}
