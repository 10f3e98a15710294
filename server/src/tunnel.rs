//! TCP connections the server opens on a client's behalf (port forwarding).
//!
//! Owns [`Tunnels`]: one session's outgoing TCP connections (`TcpConnect`,
//! `TcpSend`, `TcpShutdown`, `TcpAck`, `TcpClose`; `docs/PROTOCOL.md` §5.7).
//! Nothing listens on the server: every connection is one the client asked
//! for, to a `host:port` the server can reach.
//!
//! A connection is a stream of the session like a process's output: its
//! `TcpData` travels through the session's [`ReplySink`] (same backpressure,
//! same replay across reconnects), and on top of that each connection has
//! its own byte window: the socket is read only while fewer than `window`
//! bytes of `TcpData` are unacknowledged (`TcpAck`), so a client that does
//! not consume one connection stalls that connection alone. In the other
//! direction, `TcpSend` is answered once the bytes are written; bytes queued
//! for a slow service are bounded by [`Limits::max_tcp_send_buffer`].

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use distant_protocol::msg::{
    ErrorKind, ErrorReply, Reply, MAX_CHUNK, TCP_DEFAULT_WINDOW, TCP_MAX_WINDOW, TCP_MIN_WINDOW,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::registry::Registry;
use crate::reply::ReplySink;
use crate::Limits;

/// Largest read from a socket (one `TcpData`).
const READ_CHUNK: usize = 128 * 1024;
/// Connect timeout when `TcpConnect.timeout_ms` is not given.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Host when `TcpConnect.host` is not given.
const DEFAULT_HOST: &str = "127.0.0.1";

type Done = oneshot::Sender<Result<(), ErrorReply>>;

/// What the writer of one connection is asked to do, in order.
enum WriteCmd {
    Data(Bytes, Done),
    Shutdown(Done),
}

/// The session's handle on one connection.
struct Handle {
    writes: mpsc::UnboundedSender<WriteCmd>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    /// `TcpData` bytes sent so far (acks may not pass it).
    sent: Arc<AtomicU64>,
    /// `TcpData` bytes acknowledged so far.
    acked: watch::Sender<u64>,
    /// Set to close the connection now.
    abort: watch::Sender<bool>,
}

/// One session's TCP connections.
pub struct Tunnels {
    limits: Limits,
    live: Arc<Registry<Arc<Handle>>>,
}

impl Tunnels {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            live: Arc::new(Registry::new("TCP connection")),
        }
    }

    /// Starts connecting to `host:port`; the stream's replies (the opener
    /// included) go to `sink`, which must be released already.
    pub fn connect(
        &self,
        host: Option<String>,
        port: u16,
        window: Option<u32>,
        timeout_ms: Option<u32>,
        sink: ReplySink,
    ) -> Result<(), Reply> {
        let host = host.unwrap_or_else(|| DEFAULT_HOST.to_string());
        if host.is_empty() || host.contains('\0') {
            return Err(Reply::error(
                ErrorKind::InvalidParams,
                "TcpConnect: the host must be a non-empty name or address",
            ));
        }
        if port == 0 {
            return Err(Reply::error(
                ErrorKind::InvalidParams,
                "TcpConnect: port 0 cannot be connected to; give the port the service listens on",
            ));
        }
        let window = window
            .unwrap_or(TCP_DEFAULT_WINDOW)
            .clamp(TCP_MIN_WINDOW, TCP_MAX_WINDOW) as u64;
        let timeout = timeout_ms
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);

        let (writes, write_rx) = mpsc::unbounded_channel();
        let (acked, acked_rx) = watch::channel(0u64);
        let (abort, abort_rx) = watch::channel(false);
        let handle = Arc::new(Handle {
            writes,
            queued: Arc::new(AtomicUsize::new(0)),
            sent: Arc::new(AtomicU64::new(0)),
            acked,
            abort,
        });
        let max = self.limits.max_tcp_connections;
        let id = self.live.admit(
            max,
            || {
                format!(
                    "this session already has {max} open TCP connections (the limit); \
                     close some forwarded connections first"
                )
            },
            handle.clone(),
        )?;
        let conn = Conn {
            id,
            host,
            port,
            window,
            timeout,
            sink,
            sent: handle.sent.clone(),
            queued: handle.queued.clone(),
            acked: acked_rx,
            abort: abort_rx,
        };
        let live = self.live.clone();
        tokio::spawn(async move {
            let sink = conn.sink.clone();
            let last = conn.run(write_rx).await;
            // Forget it before saying so: room for a new connection is there
            // by the time the client reads the end.
            live.remove(id);
            if let Some(last) = last {
                sink.send(last).await;
            }
        });
        Ok(())
    }

    /// Queues `data` for the connection; the returned future is the reply
    /// (`Ok` once written).
    pub fn send(
        &self,
        conn: u64,
        data: Bytes,
    ) -> Result<oneshot::Receiver<Result<(), ErrorReply>>, Reply> {
        let handle = self.lookup(conn)?;
        if data.len() > MAX_CHUNK {
            return Err(Reply::error(
                ErrorKind::InvalidParams,
                format!(
                    "TcpSend of {} bytes is over the {MAX_CHUNK} byte chunk limit; send it in pieces",
                    data.len()
                ),
            ));
        }
        let max = self.limits.max_tcp_send_buffer;
        let len = data.len();
        if handle
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q.saturating_add(len) <= max).then_some(q + len)
            })
            .is_err()
        {
            return Err(Reply::error(
                ErrorKind::LimitExceeded,
                format!(
                    "TCP connection {conn} already holds {} unwritten bytes and the limit is {max}; \
                     wait for earlier TcpSend replies before sending more",
                    handle.queued.load(Ordering::SeqCst)
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        if handle.writes.send(WriteCmd::Data(data, tx)).is_err() {
            handle.queued.fetch_sub(len, Ordering::SeqCst);
            return Err(write_closed(conn));
        }
        Ok(rx)
    }

    /// Queues the half-close after everything sent before.
    pub fn shutdown(&self, conn: u64) -> Result<oneshot::Receiver<Result<(), ErrorReply>>, Reply> {
        let handle = self.lookup(conn)?;
        let (tx, rx) = oneshot::channel();
        if handle.writes.send(WriteCmd::Shutdown(tx)).is_err() {
            return Err(write_closed(conn));
        }
        Ok(rx)
    }

    /// Credits `bytes` consumed `TcpData` bytes back to the window.
    pub fn ack(&self, conn: u64, bytes: u64) -> Reply {
        let handle = match self.live.with_live(conn, |h| h.clone()) {
            Ok(Some(h)) => h,
            // Acks racing the connection's end are harmless.
            Ok(None) => return Reply::Ok,
            Err(reply) => return reply,
        };
        let sent = handle.sent.load(Ordering::SeqCst);
        let mut over = false;
        handle.acked.send_modify(|acked| {
            if acked.saturating_add(bytes) > sent {
                over = true;
            } else {
                *acked += bytes;
            }
        });
        if over {
            return Reply::error(
                ErrorKind::InvalidParams,
                format!(
                    "TcpAck of {bytes} bytes on TCP connection {conn} acknowledges more than was sent ({sent} bytes in all)"
                ),
            );
        }
        Reply::Ok
    }

    /// Closes the connection in both directions now.
    pub fn close(&self, conn: u64) -> Reply {
        match self.live.with_live(conn, |h| h.abort.send_replace(true)) {
            Ok(_) => Reply::Ok,
            Err(reply) => reply,
        }
    }

    /// The session ended: close every connection.
    pub fn shutdown_all(&self) {
        self.live.close();
        for handle in self.live.drain() {
            handle.abort.send_replace(true);
        }
    }

    fn lookup(&self, conn: u64) -> Result<Arc<Handle>, Reply> {
        match self.live.with_live(conn, |h| h.clone())? {
            Some(h) => Ok(h),
            None => Err(Reply::error(
                ErrorKind::InvalidParams,
                format!("TCP connection {conn} is already closed"),
            )),
        }
    }
}

fn write_closed(conn: u64) -> Reply {
    Reply::error(
        ErrorKind::InvalidParams,
        format!("the sending side of TCP connection {conn} is already shut down or closed"),
    )
}

/// One connection's task state.
struct Conn {
    id: u64,
    host: String,
    port: u16,
    window: u64,
    timeout: Duration,
    sink: ReplySink,
    sent: Arc<AtomicU64>,
    queued: Arc<AtomicUsize>,
    acked: watch::Receiver<u64>,
    abort: watch::Receiver<bool>,
}

impl Conn {
    /// Connects and carries the connection; returns the stream's terminal
    /// reply (`None` when the session is gone).
    async fn run(self, writes: mpsc::UnboundedReceiver<WriteCmd>) -> Option<Reply> {
        let mut abort = self.abort.clone();
        let connected = tokio::select! {
            r = connect(&self.host, self.port, self.timeout) => r,
            _ = abort.wait_for(|a| *a) => {
                return Some(Reply::error(
                    ErrorKind::Other,
                    "TcpConnect: closed before the connection was made",
                ));
            }
        };
        let (stream, peer) = match connected {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(conn = self.id, "TCP connect failed: {}", e.message);
                return Some(Reply::Error(e));
            }
        };
        let _ = stream.set_nodelay(true);
        if !self
            .sink
            .send(Reply::TcpConnected {
                conn: self.id,
                peer: peer.to_string(),
            })
            .await
        {
            return None;
        }
        tracing::debug!(conn = self.id, %peer, "TCP connection open");
        let (rd, wr) = stream.into_split();
        let id = self.id;
        let (write_done, write_done_rx) = watch::channel(false);
        let both = async {
            tokio::try_join!(
                self.read_side(rd, write_done_rx),
                write_side(id, wr, writes, &self.queued, write_done)
            )
        };
        let error = tokio::select! {
            r = both => r.err(),
            _ = abort.wait_for(|a| *a) => None,
        };
        tracing::debug!(conn = id, ?error, "TCP connection closed");
        Some(Reply::TcpClosed { conn: id, error })
    }

    /// Reads the socket within the window and sends `TcpData`, then `TcpEof`;
    /// after that, until our side is shut too, watches for a reset (which a
    /// half-open connection only shows as a socket error).
    async fn read_side(
        &self,
        mut rd: OwnedReadHalf,
        mut write_done: watch::Receiver<bool>,
    ) -> Result<(), ErrorReply> {
        let mut acked = self.acked.clone();
        let mut buf = BytesMut::new();
        loop {
            let sent = self.sent.load(Ordering::SeqCst);
            let room = {
                let window = self.window;
                let a = acked
                    .wait_for(|a| sent.saturating_sub(*a) < window)
                    .await
                    .map(|a| *a)
                    .unwrap_or(sent);
                self.window - sent.saturating_sub(a)
            };
            let want = (room as usize).min(READ_CHUNK);
            buf.reserve(want);
            let n = match (&mut rd).take(want as u64).read_buf(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(self.id, "reading from", &e)),
            };
            if n == 0 {
                self.sink.send(Reply::TcpEof { conn: self.id }).await;
                return tokio::select! {
                    _ = write_done.wait_for(|d| *d) => Ok(()),
                    _ = rd.ready(Interest::ERROR) => {
                        let e = rd
                            .as_ref()
                            .take_error()
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| std::io::ErrorKind::ConnectionReset.into());
                        Err(ErrorReply {
                            kind: ErrorKind::Other,
                            message: format!(
                                "TCP connection {} failed after the service's half-close: {e}",
                                self.id
                            ),
                        })
                    }
                };
            }
            self.sent.fetch_add(n as u64, Ordering::SeqCst);
            let data = buf.split().freeze();
            if !self
                .sink
                .send(Reply::TcpData {
                    conn: self.id,
                    data,
                })
                .await
            {
                // The session is gone; the abort follows.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Writes queued data in order until the half-close (or an error).
async fn write_side(
    id: u64,
    mut wr: OwnedWriteHalf,
    mut writes: mpsc::UnboundedReceiver<WriteCmd>,
    queued: &AtomicUsize,
    done: watch::Sender<bool>,
) -> Result<(), ErrorReply> {
    while let Some(cmd) = writes.recv().await {
        match cmd {
            WriteCmd::Data(data, done) => {
                let len = data.len();
                let result = wr.write_all(&data).await;
                queued.fetch_sub(len, Ordering::SeqCst);
                match result {
                    Ok(()) => {
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        let error = io_error(id, "writing to", &e);
                        let _ = done.send(Err(error.clone()));
                        return Err(error);
                    }
                }
            }
            WriteCmd::Shutdown(done_reply) => {
                let result = wr
                    .shutdown()
                    .await
                    .map_err(|e| io_error(id, "shutting down", &e));
                let _ = done_reply.send(result.clone());
                if result.is_ok() {
                    done.send_replace(true);
                }
                return result;
            }
        }
    }
    // Every sender is gone (the session is closing): nothing more to write.
    std::future::pending().await
}

/// Resolves `host` and connects to the first address that answers.
async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ErrorReply> {
    let target = format!("{host}:{port}");
    let attempt = async {
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(ErrorReply {
                    kind: ErrorKind::NotFound,
                    message: format!(
                        "cannot connect to {target} from the remote: the host name does not resolve there ({e}); check the name"
                    ),
                })
            }
        };
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, *addr)),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound));
        Err(connect_error(&target, &e))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ErrorReply {
            kind: ErrorKind::Timeout,
            message: format!(
                "cannot connect to {target} from the remote: no answer within {} ms (a firewall dropping packets?)",
                timeout.as_millis()
            ),
        }),
    }
}

/// The typed error for a failed connect.
fn connect_error(target: &str, e: &std::io::Error) -> ErrorReply {
    let os = e.raw_os_error();
    let (kind, why) = if e.kind() == std::io::ErrorKind::ConnectionRefused {
        (
            ErrorKind::ConnectionRefused,
            "connection refused: nothing listens on that port there (start the service, or check the port)".to_string(),
        )
    } else if matches!(
        os,
        Some(libc::ENETUNREACH)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::ENETDOWN)
            | Some(libc::EHOSTDOWN)
    ) {
        (
            ErrorKind::Unreachable,
            format!("the network or host is unreachable from the remote ({e}); check the address"),
        )
    } else if e.kind() == std::io::ErrorKind::TimedOut {
        (ErrorKind::Timeout, format!("it timed out ({e})"))
    } else if e.kind() == std::io::ErrorKind::PermissionDenied {
        (
            ErrorKind::PermissionDenied,
            format!("permission denied ({e})"),
        )
    } else {
        (ErrorKind::Other, e.to_string())
    };
    ErrorReply {
        kind,
        message: format!("cannot connect to {target} from the remote: {why}"),
    }
}

fn io_error(id: u64, what: &str, e: &std::io::Error) -> ErrorReply {
    let kind = match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => ErrorKind::Other,
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    };
    ErrorReply {
        kind,
        message: format!("{what} TCP connection {id} failed: {e}"),
    }
}
