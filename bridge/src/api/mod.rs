//! The bridge API (`docs/BRIDGE-API.md`, contract in
//! `shared/spec/bridge-api.md`) served to JSON-RPC peers: editors over
//! stdio, or the manager's clients over its Unix socket.
//!
//! One [`Api`] holds the server connections; every peer it serves shares
//! them (`connect` to a destination that already has a live connection
//! returns the same id). Streams (processes, watches, searches) belong to
//! the peer that started them: their notifications go to that peer only,
//! and they are stopped when it leaves. `connection/state` goes to every
//! peer.
//!
//! Per peer: requests run concurrently (bounded), except `proc/stdin`,
//! `proc/closeStdin`, `proc/kill` and `proc/resize`, which run one after
//! another in arrival order; the outgoing queue is bounded, so a peer that
//! does not read slows its own streams down rather than growing buffers.
//!
//! Submodules: [`destination`] (parsing, key redaction), [`local`] (the
//! `local` destination's child server), [`ssh`] (`ssh://` destinations:
//! the system ssh to `distant-server proxy`, probe and upload, redialling
//! by re-running ssh), `convert` (params, encodings, error
//! mapping), `handlers` (the methods), `streams` (stream opening and
//! notification forwarding), `tunnel` (port forwarding: `tunnel/*`, whose
//! `tunnel/state` also goes to every peer).

mod convert;
pub mod destination;
mod handlers;
mod index;
pub mod local;
mod redact;
pub mod servers;
pub mod ssh;
mod ssh_args;
mod streams;
mod tunnel;

use crate::sync::lock;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use distant_protocol::driver::client::{self, ClientOptions, ConnectError, DialFuture, Dialer};
use distant_protocol::driver::handshake::DriveError;
use distant_protocol::driver::rpc::RpcClient;
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::driver::ConnectionState;
use distant_protocol::handshake::{ClientConfig, HandshakeErrorKind};
use distant_protocol::msg::{Op, Reply};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

use self::destination::Destination;
use self::local::LocalServer;
use crate::framing::{Frame, LspCodec};
use crate::jsonrpc::{self, ErrorKind, Id, Message, RpcError};

/// Messages queued for one peer before producers wait.
const OUTGOING_CAPACITY: usize = 256;
/// Requests of one peer running at once before reading pauses.
const MAX_CONCURRENT_REQUESTS: usize = 64;
/// Ordered `proc/*` requests queued per peer before reading pauses.
const LANE_CAPACITY: usize = 64;
/// How long stopping a leaving peer's streams may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the last messages to a leaving peer may take to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `connection/state` notification may wait for a slow peer.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection to a `local` server keeps redialling.
const LOCAL_GIVE_UP: Duration = Duration::from_secs(30);
/// Deadline of one TCP dial.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of an API server.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// `distant-server` binary for the `local` destination; default: next
    /// to this executable, then `$PATH`.
    pub server_binary: Option<std::path::PathBuf>,
}

/// How serving one peer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// The peer closed its side.
    Eof,
    /// The peer sent `exit` (after `shutdown`, or not).
    Exit,
}

/// What a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Proc,
    Watch,
    Search,
    Index,
}

impl StreamKind {
    fn noun(self) -> &'static str {
        match self {
            StreamKind::Proc => "process",
            StreamKind::Watch => "watch",
            StreamKind::Search => "search",
            StreamKind::Index => "index",
        }
    }
}

/// A live stream, by its editor-facing id.
#[derive(Clone, Debug)]
pub(crate) struct StreamEntry {
    kind: StreamKind,
    connection: String,
    server_id: u64,
    owner: u64,
}

/// An open chunked write (`fs/writeStart`), by its editor-facing id.
#[derive(Clone, Debug)]
pub(crate) struct WriteEntry {
    connection: String,
    handle: u64,
    owner: u64,
}

/// One server connection, shared by every peer.
pub(crate) struct Connection {
    id: String,
    target: Destination,
    rpc: RpcClient,
    state: watch::Receiver<ConnectionState>,
    server: Value,
    local: Option<LocalServer>,
}

/// How long a closing connection's local server is kept for the session
/// to close cleanly before it is killed.
const LOCAL_CLOSE_GRACE: Duration = Duration::from_secs(3);

impl Drop for Connection {
    /// The session closes when the last `RpcClient` goes (right after this);
    /// the local server, if any, is killed once that close went through, so
    /// the client does not see a broken link and start redialling.
    fn drop(&mut self) {
        let Some(local) = self.local.take() else {
            return;
        };
        let mut state = self.state.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ =
                    tokio::time::timeout(LOCAL_CLOSE_GRACE, state.wait_for(|s| s.is_final())).await;
                drop(local);
            });
        }
    }
}

impl Connection {
    fn is_live(&self) -> bool {
        !self.state.borrow().is_final()
    }
}

/// One JSON-RPC peer being served.
pub(crate) struct Peer {
    id: u64,
    out: mpsc::Sender<Vec<u8>>,
    inflight: Mutex<HashMap<Id, oneshot::Sender<()>>>,
}

/// What a method produced: the result, and a signal to fire once the
/// response is queued (streams start forwarding only after it).
pub(crate) struct Done {
    value: Value,
    then: Option<oneshot::Sender<()>>,
}

impl From<Value> for Done {
    fn from(value: Value) -> Self {
        Done { value, then: None }
    }
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The state shared by every peer of one API server: its connections.
pub struct Api {
    options: ApiOptions,
    me: Weak<Api>,
    next_id: AtomicU64,
    peers: Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    connect_lock: tokio::sync::Mutex<()>,
    streams: Mutex<HashMap<String, StreamEntry>>,
    /// Chunked writes in progress; aborted when their peer leaves.
    writes: Mutex<HashMap<String, WriteEntry>>,
    /// Which live peers use each connection, and since when none has.
    usage: Mutex<HashMap<String, Usage>>,
    /// Stop signals of the live `fs/index` streams.
    index_follows: index::Follows,
    /// Port forwards (`tunnel/open`).
    tunnels: tunnel::Tunnels,
}

/// The peers that named a connection in a request and are still attached;
/// when the last one leaves, the connection starts to count as unused.
#[derive(Debug, Default)]
struct Usage {
    users: std::collections::HashSet<u64>,
    unused_since: Option<std::time::Instant>,
}

impl Api {
    pub fn new(options: ApiOptions) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            options,
            me: me.clone(),
            next_id: AtomicU64::new(1),
            peers: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            connect_lock: tokio::sync::Mutex::new(()),
            streams: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
            index_follows: index::Follows::default(),
            tunnels: tunnel::Tunnels::default(),
        })
    }

    /// Peers being served right now.
    pub fn peer_count(&self) -> usize {
        lock(&self.peers).len()
    }

    /// Open connections to servers.
    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }

    fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Serves one JSON-RPC peer until it disconnects or sends `exit`.
    pub async fn serve<R, W>(self: &Arc<Self>, reader: R, writer: W) -> ServeEnd
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
        let (finish_tx, finish_rx) = oneshot::channel();
        let writer_task = tokio::spawn(write_loop(writer, out_rx, finish_rx));
        let peer = Arc::new(Peer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            out: out_tx.clone(),
            inflight: Mutex::new(HashMap::new()),
        });
        lock(&self.peers).insert(peer.id, out_tx);
        tracing::debug!(peer = peer.id, "peer connected");

        let (lane_tx, mut lane_rx) = mpsc::channel::<Job>(LANE_CAPACITY);
        tokio::spawn(async move {
            while let Some(job) = lane_rx.recv().await {
                job.await;
            }
        });
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));

        let mut frames = FramedRead::new(reader, LspCodec::strict());
        let mut end = ServeEnd::Eof;
        while let Some(Ok(frame)) = frames.next().await {
            let body = match frame {
                Frame::Message(body) => body,
                Frame::Junk(_) => continue,
                Frame::Invalid(e) => {
                    let error = RpcError::parse_error(e.to_string());
                    let _ = peer.out.send(jsonrpc::error_response(None, &error)).await;
                    continue;
                }
            };
            match jsonrpc::parse(&body) {
                Ok(Message::Request(request)) => {
                    let ordered = matches!(
                        request.method.as_str(),
                        "proc/stdin" | "proc/closeStdin" | "proc/kill" | "proc/resize"
                    );
                    let job = self.admit(&peer, request);
                    if ordered {
                        if lane_tx.send(Box::pin(job)).await.is_err() {
                            break;
                        }
                    } else {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        tokio::spawn(async move {
                            job.await;
                            drop(permit);
                        });
                    }
                }
                Ok(Message::Notification(note)) => match note.method.as_str() {
                    "exit" => {
                        end = ServeEnd::Exit;
                        break;
                    }
                    "$/cancelRequest" => {
                        let id = note
                            .params
                            .as_ref()
                            .and_then(|p| p.get("id"))
                            .and_then(|id| serde_json::from_value::<Id>(id.clone()).ok());
                        if let Some(id) = id {
                            if let Some(tx) = lock(&peer.inflight).remove(&id) {
                                let _ = tx.send(());
                            }
                        }
                    }
                    other => tracing::debug!(method = other, "ignoring a notification"),
                },
                Ok(Message::Response(_)) => {
                    tracing::debug!("ignoring a response: the bridge sends no requests")
                }
                Err(invalid) => {
                    if let Some(reply) = invalid.response() {
                        let _ = peer.out.send(reply).await;
                    } else {
                        tracing::warn!("ignoring a malformed message: {}", invalid.error.message);
                    }
                }
            }
        }

        // The peer is gone: stop waiting for its requests, stop its streams,
        // flush what is queued for it and close its output.
        lock(&self.peers).remove(&peer.id);
        let cancels: Vec<_> = lock(&peer.inflight).drain().map(|(_, tx)| tx).collect();
        for tx in cancels {
            let _ = tx.send(());
        }
        drop(lane_tx);
        self.release_peer(peer.id).await;
        let _ = finish_tx.send(());
        drop(peer);
        if tokio::time::timeout(FLUSH_TIMEOUT, writer_task)
            .await
            .is_err()
        {
            tracing::debug!("the last messages to a leaving peer could not be flushed");
        }
        tracing::debug!(?end, "peer left");
        end
    }

    /// Registers a request as in flight (so `$/cancelRequest` finds it) and
    /// returns the work that answers it.
    fn admit(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        request: jsonrpc::Request,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        lock(&peer.inflight).insert(request.id.clone(), cancel_tx);
        let api = self.clone();
        let peer = peer.clone();
        async move {
            let jsonrpc::Request { id, method, params } = request;
            if let Some(connection) = params
                .as_ref()
                .and_then(|p| p.get("connection"))
                .and_then(Value::as_str)
            {
                api.mark_use(connection, peer.id);
            }
            let cancelled = async move {
                if cancel_rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let work = handlers::handle(&api, &peer, &method, params);
            let (body, then) = tokio::select! {
                biased;
                _ = cancelled => (
                    jsonrpc::error_response(Some(&id), &RpcError::request_cancelled()),
                    None,
                ),
                outcome = work => match outcome {
                    Ok(done) => {
                        if method == "connect" {
                            if let Some(c) = done.value.get("connection").and_then(Value::as_str) {
                                api.mark_use(c, peer.id);
                            }
                        }
                        (jsonrpc::result_response(&id, &done.value), done.then)
                    }
                    Err(error) => {
                        tracing::debug!(%method, kind = %error.kind, "request failed");
                        (jsonrpc::error_response(Some(&id), &error), None)
                    }
                },
            };
            lock(&peer.inflight).remove(&id);
            if peer.out.send(body).await.is_ok() {
                if let Some(then) = then {
                    let _ = then.send(());
                }
            }
        }
    }

    /// Sends a notification to every peer (used for `connection/state`).
    async fn broadcast(&self, body: Vec<u8>) {
        let peers: Vec<_> = lock(&self.peers).values().cloned().collect();
        for peer in peers {
            let _ = tokio::time::timeout(BROADCAST_TIMEOUT, peer.send(body.clone())).await;
        }
    }

    pub(crate) fn connection(&self, id: &str) -> Result<Arc<Connection>, RpcError> {
        lock(&self.connections).get(id).cloned().ok_or_else(|| {
            RpcError::new(
                ErrorKind::NotConnected,
                format!("no connection {id}; connect first"),
            )
        })
    }

    /// `connect`: reuses a live connection to the same destination (same
    /// key, or same ssh options), else connects.
    pub(crate) async fn connect(
        &self,
        destination: &str,
        key: Option<&str>,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        let options_param = options;
        let mut target = Destination::parse(destination, key)?;
        if let Destination::Ssh(t) = &mut target {
            t.options = ssh::SshOptions::from_value(options)?;
        }
        let _one_at_a_time = self.connect_lock.lock().await;
        let existing = lock(&self.connections)
            .values()
            .find(|c| c.target == target && c.is_live())
            .cloned();
        if let Some(c) = existing {
            return Ok(json!({"connection": c.id, "server": c.server}));
        }
        let shown = target.display();
        let started = std::time::Instant::now();
        let mut local = None;
        let (options, dialer) = match &target {
            Destination::Ssh(t) => {
                let (dialer, key) = ssh::open(t, self.options.server_binary.as_deref()).await?;
                let mut options = ClientOptions::new(ClientConfig {
                    static_key: Some(key),
                    ..ClientConfig::default()
                });
                options.dial_timeout = ssh::DIAL_TIMEOUT;
                (options, dialer as Arc<dyn Dialer>)
            }
            Destination::Local | Destination::Distant { .. } => {
                let dial_to = match &target {
                    Destination::Local => {
                        let (server, d) =
                            local::start(self.options.server_binary.as_deref()).await?;
                        local = Some(server);
                        d
                    }
                    d => d.clone(),
                };
                let (Destination::Distant { key, .. }, Some(addr)) = (&dial_to, dial_to.address())
                else {
                    return Err(RpcError::internal("no address to dial"));
                };
                let mut options = ClientOptions::new(ClientConfig {
                    static_key: Some(key.clone()),
                    ..ClientConfig::default()
                });
                if local.is_some() {
                    // A local server that went away does not come back.
                    options.reconnect.give_up_after = LOCAL_GIVE_UP;
                }
                let dialer: Arc<dyn Dialer> = Arc::new(move || -> DialFuture {
                    let addr = addr.clone();
                    Box::pin(async move { dial_tcp(&addr, DIAL_TIMEOUT).await })
                });
                (options, dialer)
            }
        };
        let mut options = options;
        if let Some(secs) = reconnect_timeout(options_param)? {
            options.reconnect.give_up_after = secs;
        }
        let session = client::connect(options, dialer)
            .await
            .map_err(|e| connect_error(e, &target))?;
        let rpc = RpcClient::new(session);
        let info = match rpc.call(Op::Version).await {
            Ok(Reply::Version(v)) => v,
            Ok(other) => return Err(convert::unexpected("version", &other)),
            Err(e) => return Err(convert::driver_error(e, &shown)),
        };
        let server = json!({
            "version": info.server,
            "protocolVersion": format!("{}.{}", info.protocol.0, info.protocol.1),
            "capabilities": info.capabilities,
        });
        let id = self.next_id();
        let state = rpc.state();
        let connection = Arc::new(Connection {
            id: id.clone(),
            target,
            rpc,
            state: state.clone(),
            server: server.clone(),
            local,
        });
        // A lost or closed connection to the same destination is replaced.
        lock(&self.connections).retain(|_, c| !(c.target == connection.target));
        if let Some(api) = self.me.upgrade() {
            tunnel::start_detection(&api, &connection);
        }
        lock(&self.connections).insert(id.clone(), connection);
        tracing::info!(
            connection = %id,
            destination = %shown,
            "connected in {} ms",
            started.elapsed().as_millis()
        );
        tokio::spawn(watch_state(self.me.clone(), id.clone(), state));
        Ok(json!({"connection": id, "server": server}))
    }

    /// Records that `peer` uses connection `id` (if it exists).
    fn mark_use(&self, id: &str, peer: u64) {
        if !lock(&self.connections).contains_key(id) {
            return;
        }
        let mut usage = lock(&self.usage);
        let u = usage.entry(id.to_string()).or_default();
        u.users.insert(peer);
        u.unused_since = None;
    }

    /// Closes every connection that no attached peer has used for
    /// `linger` (a `local` server goes with its connection); returns their
    /// ids. The manager calls this so that an editor that quit does not
    /// leave servers running forever, while `connect` in one command and
    /// `fs read` in the next still share a connection.
    pub fn close_unused(&self, linger: Duration) -> Vec<String> {
        let now = std::time::Instant::now();
        let expired: Vec<String> = {
            // A connection no peer ever named counts as unused from now.
            let connections = lock(&self.connections);
            let mut usage = lock(&self.usage);
            connections
                .keys()
                .filter(|id| {
                    let u = usage.entry((*id).clone()).or_default();
                    u.users.is_empty()
                        && u.unused_since.get_or_insert(now).elapsed() >= linger
                        && !self.tunnels.keeps(id)
                })
                .cloned()
                .collect()
        };
        for id in &expired {
            tracing::info!(connection = %id, "closing a connection no client has used for {linger:?}");
            let _ = self.disconnect(id);
        }
        expired
    }

    pub(crate) fn disconnect(&self, id: &str) -> Result<(), RpcError> {
        lock(&self.usage).remove(id);
        let closed = self.tunnels.release_connection(id);
        if let (false, Some(api)) = (closed.is_empty(), self.me.upgrade()) {
            tokio::spawn(async move { api.tunnels_closed(closed, "disconnected").await });
        }
        match lock(&self.connections).remove(id) {
            Some(c) => {
                tracing::info!(connection = %id, destination = %c.target.display(), "disconnecting");
                Ok(())
            }
            None => Err(RpcError::new(
                ErrorKind::NotConnected,
                format!("no connection {id}; connect first"),
            )),
        }
    }

    pub(crate) fn list_connections(&self) -> Value {
        let mut list: Vec<_> = lock(&self.connections)
            .values()
            .map(|c| {
                let n: u64 = c.id.parse().unwrap_or(0);
                (
                    n,
                    json!({
                        "connection": c.id,
                        "destination": c.target.display(),
                        "state": c.state.borrow().word(),
                    }),
                )
            })
            .collect();
        list.sort_by_key(|(n, _)| *n);
        Value::Array(list.into_iter().map(|(_, v)| v).collect())
    }

    pub(crate) fn register_stream(&self, entry: StreamEntry) -> String {
        let id = self.next_id();
        lock(&self.streams).insert(id.clone(), entry);
        id
    }

    pub(crate) fn remove_stream(&self, id: &str) {
        lock(&self.streams).remove(id);
    }

    /// The connection and server id of a stream `peer` owns.
    pub(crate) fn owned_stream(
        &self,
        peer: u64,
        connection: &str,
        id: &str,
        kind: StreamKind,
    ) -> Result<(Arc<Connection>, u64), RpcError> {
        let conn = self.connection(connection)?;
        match lock(&self.streams).get(id) {
            Some(e) if e.kind == kind && e.owner == peer && e.connection == connection => {
                Ok((conn, e.server_id))
            }
            _ => Err(RpcError::new(
                ErrorKind::NotFound,
                format!(
                    "no {} {id:?} on connection {connection} started by this client (it may have ended)",
                    kind.noun()
                ),
            )),
        }
    }

    /// Stops a stream on the server: kill a process, unwatch, cancel a search.
    pub(crate) async fn stop_remote(&self, connection: &str, kind: StreamKind, server_id: u64) {
        let Ok(conn) = self.connection(connection) else {
            return;
        };
        let op = match kind {
            StreamKind::Proc => Op::ProcKill {
                proc: server_id,
                signal: Some("KILL".into()),
            },
            StreamKind::Watch => Op::Unwatch { watch: server_id },
            StreamKind::Search => Op::CancelSearch { search: server_id },
            StreamKind::Index => Op::CancelIndex { index: server_id },
        };
        if let Ok(Reply::Error(e)) = conn.rpc.call(op).await {
            tracing::debug!(kind = kind.noun(), "stopping a stream: {}", e.message);
        }
    }

    pub(crate) fn register_write(&self, connection: &str, handle: u64, owner: u64) -> String {
        let id = self.next_id();
        let entry = WriteEntry {
            connection: connection.to_string(),
            handle,
            owner,
        };
        lock(&self.writes).insert(id.clone(), entry);
        id
    }

    /// The connection and server handle of a write `peer` started.
    pub(crate) fn owned_write(
        &self,
        peer: u64,
        connection: &str,
        id: &str,
    ) -> Result<(Arc<Connection>, u64), RpcError> {
        self.find_write(peer, connection, id, false)
    }

    /// Like [`owned_write`](Self::owned_write), and forgets the write (it is
    /// being finished or aborted).
    pub(crate) fn take_write(
        &self,
        peer: u64,
        connection: &str,
        id: &str,
    ) -> Result<(Arc<Connection>, u64), RpcError> {
        self.find_write(peer, connection, id, true)
    }

    fn find_write(
        &self,
        peer: u64,
        connection: &str,
        id: &str,
        take: bool,
    ) -> Result<(Arc<Connection>, u64), RpcError> {
        let conn = self.connection(connection)?;
        let mut writes = lock(&self.writes);
        match writes.get(id) {
            Some(e) if e.owner == peer && e.connection == connection => {
                let handle = e.handle;
                if take {
                    writes.remove(id);
                }
                Ok((conn, handle))
            }
            _ => Err(RpcError::new(
                ErrorKind::NotFound,
                format!(
                    "no write {id:?} on connection {connection} started by this client \
                     (it was finished or aborted, or failed)"
                ),
            )),
        }
    }

    /// Aborts a chunked write on the server (its temporary file goes).
    pub(crate) async fn abort_write(&self, connection: &str, handle: u64) {
        let Ok(conn) = self.connection(connection) else {
            return;
        };
        if let Ok(Reply::Error(e)) = conn.rpc.call(Op::FileWriteAbort { handle }).await {
            tracing::debug!("aborting a write: {}", e.message);
        }
    }

    /// Stops every stream a leaving peer started and aborts its writes.
    async fn release_peer(&self, peer: u64) {
        let closed = self.tunnels.release_peer(peer);
        self.tunnels_closed(closed, "the client that opened it left")
            .await;
        let now = std::time::Instant::now();
        for u in lock(&self.usage).values_mut() {
            if u.users.remove(&peer) && u.users.is_empty() {
                u.unused_since = Some(now);
            }
        }
        let owned: Vec<StreamEntry> = lock(&self.streams)
            .values()
            .filter(|e| e.owner == peer)
            .cloned()
            .collect();
        let writes: Vec<WriteEntry> = {
            let mut all = lock(&self.writes);
            let mine: Vec<String> = all
                .iter()
                .filter(|(_, e)| e.owner == peer)
                .map(|(id, _)| id.clone())
                .collect();
            mine.iter().filter_map(|id| all.remove(id)).collect()
        };
        let stops = owned
            .iter()
            .map(|e| self.stop_remote(&e.connection, e.kind, e.server_id));
        let aborts = writes
            .iter()
            .map(|e| self.abort_write(&e.connection, e.handle));
        let cleanup = futures::future::join(
            futures::future::join_all(stops),
            futures::future::join_all(aborts),
        );
        if tokio::time::timeout(CLEANUP_TIMEOUT, cleanup)
            .await
            .is_err()
        {
            tracing::warn!("stopping a leaving peer's streams took too long");
        }
    }
}

/// Forwards a connection's state changes to every peer as
/// `connection/state`: each change of the state word, and while
/// reconnecting each new reason a redial failed for (so an editor shows
/// ssh's "Permission denied (publickey)" rather than the first cut's
/// reason). Attempt counts alone are not news.
async fn watch_state(api: Weak<Api>, id: String, mut state: watch::Receiver<ConnectionState>) {
    let mut last = state.borrow_and_update().clone();
    while state.changed().await.is_ok() {
        {
            let now = state.borrow_and_update();
            let news = match (&*now, &last) {
                (
                    ConnectionState::Reconnecting { detail: a, .. },
                    ConnectionState::Reconnecting { detail: b, .. },
                ) => a != b,
                (now, last) => now.word() != last.word(),
            };
            if !news {
                continue;
            }
            last = now.clone();
        }
        let (word, detail, is_final) = {
            let s = &last;
            let detail = match s {
                ConnectionState::Connected => None,
                ConnectionState::Reconnecting { detail, .. } => Some(detail.clone()),
                ConnectionState::Lost { reason } | ConnectionState::Closed { reason } => {
                    Some(reason.clone())
                }
            };
            (s.word(), detail, s.is_final())
        };
        let Some(api) = api.upgrade() else {
            return;
        };
        tracing::info!(connection = %id, state = word, "connection state changed");
        let mut params = json!({"connection": id, "state": word});
        if let Some(detail) = detail {
            params["detail"] = detail.into();
        }
        api.broadcast(jsonrpc::notification("connection/state", Some(&params)))
            .await;
        if is_final {
            return;
        }
    }
}

/// `options.reconnectTimeoutSecs`: how long to keep redialling after the
/// link drops before the connection is reported lost (default: the
/// driver's 10 minutes, matching the server's default grace period).
fn reconnect_timeout(options: Option<&Value>) -> Result<Option<std::time::Duration>, RpcError> {
    let Some(value) = options.and_then(|o| o.get("reconnectTimeoutSecs")) else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Some(std::time::Duration::from_secs_f64(secs)))
        }
        _ => Err(RpcError::invalid_params(
            "`options.reconnectTimeoutSecs` must be a number of seconds between 0 and 86400",
        )),
    }
}

fn connect_error(e: ConnectError, target: &Destination) -> RpcError {
    let shown = &target.display();
    match e {
        ConnectError::Dial(e) => {
            RpcError::new(ErrorKind::Other, format!("could not reach {shown}: {e}"))
        }
        ConnectError::DialTimeout(d) => RpcError::new(
            ErrorKind::Timeout,
            format!("could not reach {shown} within {} s", d.as_secs()),
        ),
        ConnectError::Handshake(DriveError::Handshake(h)) => {
            let kind = match h.kind() {
                HandshakeErrorKind::AuthFailed => ErrorKind::AuthFailed,
                HandshakeErrorKind::Timeout => ErrorKind::Timeout,
                HandshakeErrorKind::VersionMismatch => ErrorKind::Unsupported,
                _ => ErrorKind::Other,
            };
            let hint =
                if kind == ErrorKind::AuthFailed && matches!(target, Destination::Distant { .. }) {
                    "; check the key"
                } else {
                    ""
                };
            RpcError::new(kind, format!("connecting to {shown} failed: {h}{hint}"))
        }
        ConnectError::Handshake(DriveError::Timeout(d)) => RpcError::new(
            ErrorKind::Timeout,
            format!(
                "connecting to {shown} failed: the handshake did not finish within {} s",
                d.as_secs()
            ),
        ),
        ConnectError::Handshake(other) => RpcError::new(
            ErrorKind::Other,
            format!("connecting to {shown} failed: {other}"),
        ),
    }
}

/// Writes queued messages to the peer; on `finish`, stops accepting new
/// ones, writes what is queued and ends.
async fn write_loop<W>(
    writer: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut finish: oneshot::Receiver<()>,
) where
    W: AsyncWrite + Send + Unpin + 'static,
{
    let mut sink = FramedWrite::new(writer, LspCodec::strict());
    loop {
        let body = tokio::select! {
            body = rx.recv() => match body {
                Some(body) => body,
                None => break,
            },
            _ = &mut finish => {
                rx.close();
                while let Some(body) = rx.recv().await {
                    if sink.feed(body).await.is_err() {
                        return;
                    }
                }
                break;
            }
        };
        if sink.feed(body).await.is_err() {
            return;
        }
        // Write whatever else is already queued, then flush once.
        while let Ok(body) = rx.try_recv() {
            if sink.feed(body).await.is_err() {
                return;
            }
        }
        if SinkExt::<Vec<u8>>::flush(&mut sink).await.is_err() {
            return;
        }
    }
    let _ = SinkExt::<Vec<u8>>::flush(&mut sink).await;
}

/// Makes a child the bridge starts (a local server, an ssh client) receive
/// SIGTERM when the bridge dies, however it dies, so none is left behind.
/// (`kill_on_drop` covers orderly exits; this covers `kill -9`.)
pub(crate) fn die_with_bridge(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
