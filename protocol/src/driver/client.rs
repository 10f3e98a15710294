//! A resumable client session.
//!
//! [`connect`] dials, runs the handshake and authenticates; the first
//! failure is returned to the caller as it is (wrong key, version
//! mismatch, unreachable host). After that a background task owns the
//! [`Session`]: when the link breaks it redials through the caller's
//! [`Dialer`] with exponential backoff and jitter, resumes with the
//! session's one-time password and replays what the peer missed. The
//! application only sees payload pipes and a [`ConnectionState`] watch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use super::handshake::{drive, DriveError, FramedIo};
use super::link::{self, AppPipes, LinkEnd, SessionOutcome};
use super::transport::BoxTransport;
use super::ConnectionState;
use crate::auth::SessionId;
use crate::handshake::{ClientConfig, ClientHandshake, Connect, Established, EstablishedKind};
use crate::resume::ClientTicket;
use crate::session::{Session, SessionConfig};

/// A boxed future that yields a fresh transport.
pub type DialFuture = Pin<Box<dyn Future<Output = std::io::Result<BoxTransport>> + Send>>;

/// Opens a new transport to the same server, each time it is called.
pub trait Dialer: Send + Sync + 'static {
    fn dial(&self) -> DialFuture;
}

impl<F> Dialer for F
where
    F: Fn() -> DialFuture + Send + Sync + 'static,
{
    fn dial(&self) -> DialFuture {
        self()
    }
}

/// A dial failure that waiting cannot fix: a [`Dialer`] returns it (as the
/// inner error of an [`std::io::Error`], see [`PermanentDialError::into_io`])
/// when, for example, the server at the other end announced a different key
/// than the one the session was started with, so no resume can succeed. The
/// session then ends at once as lost with this reason, instead of
/// redialling until [`ReconnectPolicy::give_up_after`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PermanentDialError(pub String);

impl PermanentDialError {
    /// Wraps the reason in an `io::Error` for [`DialFuture`].
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The permanent failure inside `e`, if it is one.
    pub fn find(e: &std::io::Error) -> Option<&Self> {
        e.get_ref()?.downcast_ref::<Self>()
    }
}

/// When and how long to retry after the link breaks.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    /// Wait before the second attempt (the first is immediate).
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up (session lost) when no attempt succeeded for this long.
    pub give_up_after: Duration,
    /// Give up sooner when every dial for this long was actively refused
    /// (RST: the host is up and nothing listens). A TCP server keeps its
    /// sessions in the process that listens, so a port that stays closed
    /// means the process holding this session is gone — unlike a network
    /// outage, which times out or is unreachable and is worth waiting for.
    pub give_up_when_refused_for: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: Duration::from_secs(10 * 60),
            give_up_when_refused_for: Duration::from_secs(10),
        }
    }
}

/// Everything a client session needs besides the dialer.
#[derive(Clone)]
pub struct ClientOptions {
    pub handshake: ClientConfig,
    pub session: SessionConfig,
    pub reconnect: ReconnectPolicy,
    /// Deadline for one dial (the dialer's own connect).
    pub dial_timeout: Duration,
    /// Deadline for one handshake, authentication included.
    pub handshake_timeout: Duration,
    /// Capacity of the payload pipes in each direction.
    pub pipe_capacity: usize,
}

impl ClientOptions {
    pub fn new(handshake: ClientConfig) -> Self {
        Self {
            handshake,
            session: SessionConfig::default(),
            reconnect: ReconnectPolicy::default(),
            dial_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            pipe_capacity: 256,
        }
    }
}

/// Why the first connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not reach the server: {0}")]
    Dial(std::io::Error),
    #[error("could not reach the server within {} s", .0.as_secs())]
    DialTimeout(Duration),
    #[error("{0}")]
    Handshake(#[from] DriveError),
}

/// The application's handle on a live client session.
pub struct ClientSession {
    /// Payloads to send; closing it closes the session.
    pub outbound: mpsc::Sender<Bytes>,
    /// Payloads received, in order, exactly once.
    pub inbound: mpsc::Receiver<Bytes>,
    /// Current state; the final state is `Lost` or `Closed`.
    pub state: watch::Receiver<ConnectionState>,
    pub session_id: SessionId,
    pub peer_software: String,
}

/// Dials, authenticates and starts the session task.
pub async fn connect(
    options: ClientOptions,
    dialer: Arc<dyn Dialer>,
) -> Result<ClientSession, ConnectError> {
    let transport = dial_once(&*dialer, options.dial_timeout)
        .await
        .map_err(|e| match e {
            DialFailure::Io(e) => ConnectError::Dial(e),
            DialFailure::Timeout(d) => ConnectError::DialTimeout(d),
        })?;
    let (io, established) = handshake(&options, transport, Connect::New).await?;
    let session_id = established.session_id;
    let peer_software = established.peer_software.clone();

    let (out_tx, out_rx) = mpsc::channel(options.pipe_capacity);
    let (in_tx, in_rx) = mpsc::channel(options.pipe_capacity);
    let (state_tx, state_rx) = watch::channel(ConnectionState::Connected);

    let task = ClientTask {
        options,
        dialer,
        session: None,
        pipes: AppPipes::new(out_rx, in_tx),
        state: state_tx,
        ticket: ClientTicket::new(session_id),
    };
    tokio::spawn(task.run(io, established));

    Ok(ClientSession {
        outbound: out_tx,
        inbound: in_rx,
        state: state_rx,
        session_id,
        peer_software,
    })
}

enum DialFailure {
    Io(std::io::Error),
    Timeout(Duration),
}

impl std::fmt::Display for DialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialFailure::Io(e) => write!(f, "could not reach the server: {e}"),
            DialFailure::Timeout(d) => {
                write!(f, "could not reach the server within {} s", d.as_secs())
            }
        }
    }
}

async fn dial_once(dialer: &dyn Dialer, timeout: Duration) -> Result<BoxTransport, DialFailure> {
    match tokio::time::timeout(timeout, dialer.dial()).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(DialFailure::Io(e)),
        Err(_) => Err(DialFailure::Timeout(timeout)),
    }
}

async fn handshake(
    options: &ClientOptions,
    transport: BoxTransport,
    connect: Connect,
) -> Result<(FramedIo, Established), DriveError> {
    let mut io = FramedIo::new(transport);
    let mut machine = ClientHandshake::new(
        options.handshake.clone(),
        connect,
        &mut rand::rngs::OsRng,
        Instant::now(),
    );
    drive(
        &mut machine,
        &mut io,
        options.handshake_timeout,
        |_, event| {
            tracing::debug!(?event, "handshake event");
            Ok(())
        },
    )
    .await?;
    match machine.into_established() {
        Ok(established) => Ok((io, established)),
        // `drive` only returns Ok once the machine is established.
        Err(_) => Err(DriveError::Closed),
    }
}

struct ClientTask {
    options: ClientOptions,
    dialer: Arc<dyn Dialer>,
    session: Option<Session>,
    pipes: AppPipes,
    state: watch::Sender<ConnectionState>,
    ticket: ClientTicket,
}

impl ClientTask {
    async fn run(mut self, io: FramedIo, established: Established) {
        let mut link = Some((io, established));
        loop {
            let Some((mut io, established)) = link.take() else {
                match self.reconnect().await {
                    Ok(next) => {
                        link = Some(next);
                        continue;
                    }
                    Err(reason) => {
                        self.finish(ConnectionState::Lost { reason });
                        return;
                    }
                }
            };
            let Established {
                mut sealer,
                mut opener,
                kind,
                ..
            } = established;
            let peer_received = match &kind {
                EstablishedKind::New { .. } => None,
                EstablishedKind::Resumed { peer_received, .. } => Some(*peer_received),
            };
            self.ticket.adopt(&kind);
            let session = self
                .session
                .get_or_insert_with(|| Session::new(self.options.session.clone()));
            if let Err(e) = session.connected(Instant::now(), peer_received) {
                self.finish(ConnectionState::Lost {
                    reason: format!("the session could not be resumed: {e}"),
                });
                return;
            }
            self.state.send_replace(ConnectionState::Connected);
            let end = link::run::<()>(
                &mut io,
                &mut sealer,
                &mut opener,
                session,
                &mut self.pipes,
                None,
                &mut (),
            )
            .await;
            session.disconnected();
            link::close_transport(io).await;
            match end {
                LinkEnd::Broken(detail) => {
                    tracing::info!(%detail, "link broken; reconnecting");
                    self.state
                        .send_replace(ConnectionState::Reconnecting { attempt: 0, detail });
                }
                LinkEnd::Preempted(()) => {}
                LinkEnd::SessionOver(outcome) => {
                    let state = match outcome {
                        SessionOutcome::ClosedHere => ConnectionState::Closed {
                            reason: "closed by this client".into(),
                        },
                        SessionOutcome::AppGone => ConnectionState::Closed {
                            reason: "the application stopped reading".into(),
                        },
                        SessionOutcome::ClosedByPeer(reason) => ConnectionState::Closed {
                            reason: format!("closed by the server: {reason}"),
                        },
                        SessionOutcome::Lost(reason) => ConnectionState::Lost { reason },
                    };
                    self.finish(state);
                    return;
                }
            }
        }
    }

    /// Publishes the final state; dropping the pipes then tells the
    /// application that nothing more will come.
    fn finish(&mut self, state: ConnectionState) {
        tracing::info!(?state, "client session ended");
        self.state.send_replace(state);
    }

    /// Redials until a resume succeeds, the server refuses the session, a
    /// failure that waiting cannot fix happens (version mismatch, wrong
    /// key, [`PermanentDialError`]), or the policy's deadline passes. Every
    /// failed attempt publishes its reason as the `Reconnecting` detail.
    async fn reconnect(&mut self) -> Result<(FramedIo, Established), String> {
        let policy = self.options.reconnect.clone();
        let started = tokio::time::Instant::now();
        let give_up_at = started + policy.give_up_after;
        let mut backoff = policy.initial_backoff;
        let mut attempt: u32 = 0;
        let mut refused_since: Option<tokio::time::Instant> = None;
        loop {
            attempt += 1;
            if self.state.is_closed() && self.pipes.inbound.is_closed() {
                return Err("the application went away".into());
            }
            let received = self.session.as_ref().map_or(0, |s| s.received_count());
            let connect = self.ticket.resume(received);
            let detail = match dial_once(&*self.dialer, self.options.dial_timeout).await {
                Ok(transport) => match handshake(&self.options, transport, connect).await {
                    Ok(next) => return Ok(next),
                    Err(e) if e.is_session_rejected() => {
                        return Err(format!("the server no longer has this session: {e}"));
                    }
                    Err(e) if e.is_permanent() => {
                        return Err(format!("reconnecting failed: {e}"));
                    }
                    Err(e) => {
                        refused_since = None;
                        e.to_string()
                    }
                },
                Err(DialFailure::Io(e)) if PermanentDialError::find(&e).is_some() => {
                    return Err(e.to_string());
                }
                Err(e) => {
                    let refused = matches!(
                        &e,
                        DialFailure::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused
                    );
                    if !refused {
                        refused_since = None;
                    } else if refused_since
                        .get_or_insert_with(tokio::time::Instant::now)
                        .elapsed()
                        >= policy.give_up_when_refused_for
                    {
                        return Err(format!(
                            "the server refused every connection for {} s: it is no longer running, so this session is gone ({e})",
                            policy.give_up_when_refused_for.as_secs()
                        ));
                    }
                    e.to_string()
                }
            };
            tracing::debug!(attempt, %detail, "reconnect attempt failed");
            self.state.send_replace(ConnectionState::Reconnecting {
                attempt,
                detail: detail.clone(),
            });
            let now = tokio::time::Instant::now();
            if now >= give_up_at {
                return Err(format!(
                    "could not reconnect within {} s (last error: {detail})",
                    policy.give_up_after.as_secs()
                ));
            }
            let jitter = rand::thread_rng().gen_range(0.8..1.2);
            let wait = backoff.mul_f64(jitter).min(give_up_at - now);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(policy.max_backoff);
        }
    }
}
