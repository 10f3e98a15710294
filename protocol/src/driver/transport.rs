//! Byte streams the protocol runs over, and the socket options that make a
//! dead TCP path visible quickly.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Anything the protocol can run over: a TCP or Unix socket, a child's
/// stdio joined into one stream, an in-memory duplex in tests.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// An owned, type-erased transport.
pub type BoxTransport = Box<dyn Transport>;

/// TCP keepalive settings: the kernel probes an idle connection after 10 s
/// and gives up after three unanswered probes 3 s apart. The session's own
/// heartbeats notice a dead peer sooner; keepalive covers the case where the
/// process is blocked and keeps NAT mappings alive.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(3);
const KEEPALIVE_RETRIES: u32 = 3;

/// Sets TCP_NODELAY and keepalive on a connected TCP stream.
pub fn tune_tcp(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    sock.set_tcp_keepalive(&keepalive)
}

/// Connects to `addr` over TCP with a deadline, tuned for the protocol.
pub async fn dial_tcp(addr: &str, timeout: Duration) -> io::Result<BoxTransport> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {addr} took longer than {} s",
                    timeout.as_secs_f32()
                ),
            )
        })??;
    tune_tcp(&stream)?;
    Ok(Box::new(stream))
}
