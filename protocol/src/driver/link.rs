//! The connection loop shared by client and server: one established
//! transport carrying one [`Session`].
//!
//! Each turn of the loop moves whatever is ready — sealed records out of
//! the session into the write buffer, delivered payloads to the
//! application — and then waits on exactly the things that can make
//! progress: a frame to read, buffer space to write, room in the
//! application's inbound channel, a payload from the application while the
//! session has backup room, the session's next deadline, or (server) a
//! resuming transport that replaces this one. Every branch is
//! cancellation-safe, so nothing is lost when another branch wins.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::handshake::FramedIo;
use crate::crypto::{CryptoError, Opener, Sealer};
use crate::frame::{FrameError, MAX_FRAME};
use crate::session::{SendError, Session, SessionError};

/// Stop sealing more records once this much is waiting to be written, so a
/// slow link pushes back on the session instead of growing the buffer.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// The application's side of a session: payloads in both directions. These
/// outlive any one connection.
pub struct AppPipes {
    /// Payloads from the application, to send.
    pub outbound: mpsc::Receiver<Bytes>,
    /// Payloads delivered in order, for the application.
    pub inbound: mpsc::Sender<Bytes>,
    /// A payload taken from `outbound` that the session had no room for yet.
    pending_out: Option<Bytes>,
    /// Payloads delivered by the session that the application has not
    /// taken yet. At most one record's worth, because reading stops while
    /// this is not empty.
    pending_in: VecDeque<Bytes>,
    /// Set once `outbound` has closed: the application is finished.
    outbound_closed: bool,
}

impl AppPipes {
    pub fn new(outbound: mpsc::Receiver<Bytes>, inbound: mpsc::Sender<Bytes>) -> Self {
        Self {
            outbound,
            inbound,
            pending_out: None,
            pending_in: VecDeque::new(),
            outbound_closed: false,
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum LinkEnd<P> {
    /// The transport failed or closed, or the peer went silent: the session
    /// survives and waits for the next connection.
    Broken(String),
    /// Something else took over the session (a resuming transport).
    Preempted(P),
    /// The session is over for good.
    SessionOver(SessionOutcome),
}

/// Why a session ended for good.
#[derive(Debug, Clone)]
pub enum SessionOutcome {
    /// The application closed its outbound pipe; a Close record was sent.
    ClosedHere,
    /// The peer sent Close.
    ClosedByPeer(String),
    /// The application stopped reading what the session delivers.
    AppGone,
    /// The session cannot continue.
    Lost(String),
}

/// Hooks the owner of the session uses to react to link events.
pub trait LinkHooks {
    /// Called once, when the first record of this connection arrives.
    fn first_record(&mut self) {}
    /// Called after every record handled, with the session's received
    /// count (before any acknowledgement of it can be sent).
    fn received(&mut self, _count: u64) {}
}

impl LinkHooks for () {}

/// Runs one connection until it breaks, is preempted, or the session ends.
/// The session must already have been told `connected()`.
pub async fn run<P>(
    io: &mut FramedIo,
    sealer: &mut Sealer,
    opener: &mut Opener,
    session: &mut Session,
    pipes: &mut AppPipes,
    preempt: Option<&mut mpsc::Receiver<P>>,
    hooks: &mut (dyn LinkHooks + Send),
) -> LinkEnd<P> {
    io.reader.decoder_mut().set_max_len(MAX_FRAME);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut needs_flush = false;
    let mut first = true;
    let mut preempt = preempt;

    loop {
        let now = Instant::now();

        // Application → session, as far as the backup has room.
        if let Some(payload) = pipes.pending_out.take() {
            match session.send(payload.clone()) {
                Ok(()) => {}
                Err(SendError::Backpressure) => pipes.pending_out = Some(payload),
                Err(e) => return LinkEnd::SessionOver(SessionOutcome::Lost(e.to_string())),
            }
        }

        // Session → wire, up to the high-water mark.
        while out.len() < WRITE_HIGH_WATER {
            let Some(transmit) = session.poll_transmit(now) else {
                break;
            };
            if let Err(e) = sealer.seal_into(&transmit.parts(), &mut out) {
                return fatal_crypto(e);
            }
        }

        // Session → application, without waiting.
        while let Some(payload) = session.poll_received() {
            pipes.pending_in.push_back(payload);
        }
        while let Some(payload) = pipes.pending_in.pop_front() {
            match pipes.inbound.try_send(payload) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(payload)) => {
                    pipes.pending_in.push_front(payload);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    session.close("the application closed the session");
                    flush_close(io, sealer, session, &mut out).await;
                    return LinkEnd::SessionOver(SessionOutcome::AppGone);
                }
            }
        }

        if pipes.outbound_closed && pipes.pending_out.is_none() {
            session.close("closed by the application");
            flush_close(io, sealer, session, &mut out).await;
            return LinkEnd::SessionOver(SessionOutcome::ClosedHere);
        }

        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        let can_take_app = pipes.pending_out.is_none() && !pipes.outbound_closed;
        let can_read = pipes.pending_in.is_empty();
        let must_write = !out.is_empty() || needs_flush;

        tokio::select! {
            frame = io.reader.next(), if can_read => {
                let body = match frame {
                    Some(Ok(body)) => body,
                    Some(Err(FrameError::TooLarge { len, max })) => {
                        return LinkEnd::Broken(format!("peer sent a frame of {len} bytes (limit {max})"));
                    }
                    Some(Err(e)) => return LinkEnd::Broken(format!("connection failed: {e}")),
                    None => return LinkEnd::Broken("the connection was closed".into()),
                };
                let content = match opener.open(body) {
                    Ok(c) => c,
                    Err(e) => return LinkEnd::Broken(format!("dropped the connection: {e}")),
                };
                if first {
                    first = false;
                    hooks.first_record();
                }
                let handled = session.handle_record(content, Instant::now());
                hooks.received(session.received_count());
                if let Err(e) = handled {
                    if matches!(e, SessionError::Protocol(_)) {
                        // Tell the peer why the session ends (its Close).
                        flush_close(io, sealer, session, &mut out).await;
                    }
                    if let Some(end) = session_error_end(e) {
                        return end;
                    }
                }
            }
            res = write_some(&mut io.writer, &mut out, &mut needs_flush), if must_write => {
                if let Err(e) = res {
                    return LinkEnd::Broken(format!("connection failed: {e}"));
                }
            }
            permit = pipes.inbound.reserve(), if !pipes.pending_in.is_empty() => {
                match permit {
                    Ok(permit) => {
                        if let Some(payload) = pipes.pending_in.pop_front() {
                            permit.send(payload);
                        }
                    }
                    Err(_) => {
                        session.close("the application closed the session");
                        flush_close(io, sealer, session, &mut out).await;
                        return LinkEnd::SessionOver(SessionOutcome::AppGone);
                    }
                }
            }
            payload = pipes.outbound.recv(), if can_take_app => {
                match payload {
                    Some(p) => pipes.pending_out = Some(p),
                    None => pipes.outbound_closed = true,
                }
            }
            _ = sleep_until_opt(deadline) => {
                if let Err(e) = session.handle_timeout(Instant::now()) {
                    if let Some(end) = session_error_end(e) {
                        return end;
                    }
                }
            }
            p = recv_opt(&mut preempt) => {
                return LinkEnd::Preempted(p);
            }
        }
        // Close records from the peer and other session events surface here.
        if let Some(outcome) = session_events(session) {
            return LinkEnd::SessionOver(outcome);
        }
    }
}

fn fatal_crypto<P>(e: CryptoError) -> LinkEnd<P> {
    LinkEnd::SessionOver(SessionOutcome::Lost(format!(
        "cannot seal more records on this session: {e}"
    )))
}

fn session_error_end<P>(e: SessionError) -> Option<LinkEnd<P>> {
    Some(match e {
        SessionError::PeerDead => LinkEnd::Broken("the peer stopped answering".into()),
        SessionError::Closed { reason } => {
            LinkEnd::SessionOver(SessionOutcome::ClosedByPeer(reason))
        }
        SessionError::Lost { reason } => LinkEnd::SessionOver(SessionOutcome::Lost(reason)),
        SessionError::Protocol(reason) => LinkEnd::SessionOver(SessionOutcome::Lost(format!(
            "the peer broke the session protocol ({reason}); the session was ended"
        ))),
    })
}

fn session_events(session: &mut Session) -> Option<SessionOutcome> {
    while let Some(event) = session.poll_event() {
        if let crate::session::SessionEvent::PeerClosed(reason) = event {
            return Some(SessionOutcome::ClosedByPeer(reason));
        }
    }
    None
}

async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut BytesMut,
    needs_flush: &mut bool,
) -> std::io::Result<()> {
    if !out.is_empty() {
        let n = writer.write_buf(out).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        *needs_flush = true;
    }
    if out.is_empty() && *needs_flush {
        writer.flush().await?;
        *needs_flush = false;
    }
    Ok(())
}

/// Writes the Close record (and anything before it) with a short deadline.
async fn flush_close(
    io: &mut FramedIo,
    sealer: &mut Sealer,
    session: &mut Session,
    out: &mut BytesMut,
) {
    let now = Instant::now();
    while let Some(transmit) = session.poll_transmit(now) {
        if sealer.seal_into(&transmit.parts(), out).is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        io.writer.write_all(&out[..]).await?;
        io.writer.flush().await
    })
    .await;
    out.clear();
}

/// Ends a connection for good: shuts the write half down (the peer sees
/// FIN at once, not when some timer runs out) with a short deadline, then
/// drops the transport. Every connection that [`run`] returned from ends
/// here (PROTOCOL.md §2.3: a record that fails to open ends the connection
/// at once).
pub async fn close_transport(mut io: FramedIo) {
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), io.writer.shutdown()).await;
    drop(io);
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt<P>(rx: &mut Option<&mut mpsc::Receiver<P>>) -> P {
    match rx {
        Some(rx) => match rx.recv().await {
            Some(p) => p,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
