//! The server half: accepts transports, runs handshakes under a cap on
//! unauthenticated connections, and keeps sessions alive across
//! connections.
//!
//! Unauthenticated connections are bounded in all (`max_unauthenticated`)
//! and per source address (`max_unauthenticated_per_source`, TCP only).
//! When a bound is reached the *oldest* pre-authentication connection is
//! closed to admit the new one — from the same source when that source is
//! over its bound, else from the source holding the most slots — so idle
//! sockets held open by someone else never lock a legitimate login out: a
//! fresh handshake finishes in milliseconds, long before it is the oldest.
//! An evicted connection is closed without a word (no verdict is revealed).
//!
//! Each session has a task that owns its [`Session`] and the application's
//! pipes. A connection that breaks leaves the task waiting for a resuming
//! transport for the session's grace period (`session_ttl`); a resuming
//! transport replaces a still-open old one at once. When the grace period
//! runs out, or the session is closed, the task ends and the application's
//! request channel closes, which is its cue to release the session's
//! processes, watches and files.
//!
//! The application sees typed messages: one [`NewSession`] per
//! authenticated session, with a receiver of [`Request`]s and a sender of
//! [`Response`]s. A data record that is not a valid request is answered
//! with an error response here and the session goes on.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::handshake::{drive, FramedIo};
use super::link::{self, AppPipes, LinkEnd, LinkHooks};
use super::transport::{tune_tcp, BoxTransport};
use crate::auth::{Otp, SessionId};
use crate::crypto::{Opener, Sealer};
use crate::handshake::{
    Established, EstablishedKind, HandshakeEvent, ServerConfig, ServerHandshake,
};
use crate::msg::{ErrorKind, Message, Reply, Request, Response, ResponsePayload};
use crate::resume::{is_stale_resume, ResumeGrant, ServerRecord};
use crate::session::{Session, SessionConfig};

/// Server-wide settings.
#[derive(Clone)]
pub struct ServerOptions {
    pub handshake: Arc<ServerConfig>,
    pub session: SessionConfig,
    /// How long a disconnected session is kept for its client to resume.
    pub session_ttl: Duration,
    /// Sessions alive at once (connected or waiting for a resume).
    pub max_sessions: usize,
    /// Connections still in the handshake at once; beyond it the oldest is
    /// closed (see the module docs).
    pub max_unauthenticated: usize,
    /// Of those, from one source address (TCP); beyond it that source's
    /// oldest is closed.
    pub max_unauthenticated_per_source: usize,
    /// Deadline for one handshake, authentication included.
    pub handshake_timeout: Duration,
    /// Capacity of each session's request and response channels.
    pub channel_capacity: usize,
}

impl ServerOptions {
    pub fn new(handshake: ServerConfig) -> Self {
        Self {
            handshake: Arc::new(handshake),
            session: SessionConfig::default(),
            session_ttl: Duration::from_secs(10 * 60),
            max_sessions: 64,
            max_unauthenticated: 64,
            max_unauthenticated_per_source: 16,
            handshake_timeout: Duration::from_secs(10),
            channel_capacity: 256,
        }
    }
}

/// An authenticated session, handed to the application once.
pub struct NewSession {
    pub id: SessionId,
    /// Requests in arrival order; closes when the session ends for good.
    pub requests: mpsc::Receiver<Request>,
    /// Responses and stream elements for the client. Their `id` is
    /// assigned on the way out (1, 2, 3, … in the order they are sent);
    /// leave it 0.
    pub responses: mpsc::Sender<Response>,
}

/// A connection on its way to the session task.
struct Attach {
    io: FramedIo,
    sealer: Sealer,
    opener: Opener,
    peer_received: u64,
    /// The OTP this connection's resume rotated to. It replaces the stored
    /// one only when the client's first record on *this* connection proves
    /// the client saw `Resumed` (PROTOCOL.md §3.2); an abandoned or
    /// preempted attempt never commits its rotation
    /// ([`ServerRecord::commit`]).
    next_otp: Option<(Otp, ResumeGrant)>,
}

/// What the registry knows of one session.
struct Slot {
    /// The stored OTP and resume generations (sans-IO, `crate::resume`).
    record: ServerRecord,
    received: Arc<AtomicU64>,
    attach: mpsc::Sender<Attach>,
}

struct Inner {
    options: ServerOptions,
    sessions: Mutex<HashMap<SessionId, Slot>>,
    preauth: Mutex<PreAuth>,
    new_sessions: mpsc::Sender<NewSession>,
}

/// Connections still in their handshake, oldest first (ids grow).
#[derive(Default)]
struct PreAuth {
    next: u64,
    /// id → (source address, dropping it closes the connection).
    entries: BTreeMap<u64, (Option<IpAddr>, oneshot::Sender<()>)>,
}

impl PreAuth {
    /// Admits a connection from `source`, evicting as the module docs say;
    /// returns its id and the signal that it was evicted.
    fn admit(
        &mut self,
        source: Option<IpAddr>,
        max: usize,
        per_source: usize,
    ) -> (u64, oneshot::Receiver<()>) {
        if source.is_some() {
            let same: Vec<u64> = self
                .entries
                .iter()
                .filter(|(_, (s, _))| *s == source)
                .map(|(id, _)| *id)
                .collect();
            if same.len() >= per_source.max(1) {
                self.evict(same[0], "its source is over its share");
            }
        }
        if self.entries.len() >= max.max(1) {
            // The oldest connection of the source holding the most slots.
            let mut counts: HashMap<Option<IpAddr>, (usize, u64)> = HashMap::new();
            for (id, (s, _)) in &self.entries {
                let e = counts.entry(*s).or_insert((0, *id));
                e.0 += 1;
            }
            let victim = counts
                .values()
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, oldest)| *oldest);
            if let Some(id) = victim {
                self.evict(id, "all unauthenticated slots are taken");
            }
        }
        let id = self.next;
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.entries.insert(id, (source, tx));
        (id, rx)
    }

    fn evict(&mut self, id: u64, why: &str) {
        if let Some((source, _closed_on_drop)) = self.entries.remove(&id) {
            tracing::debug!(
                ?source,
                "closing the oldest unauthenticated connection: {why}"
            );
        }
    }

    fn release(&mut self, id: u64) {
        self.entries.remove(&id);
    }
}

/// The accepting side of the protocol. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl Server {
    /// Creates a server; authenticated sessions arrive on the receiver.
    pub fn new(options: ServerOptions) -> (Self, mpsc::Receiver<NewSession>) {
        let (tx, rx) = mpsc::channel(16);
        let server = Server {
            inner: Arc::new(Inner {
                options,
                sessions: Mutex::new(HashMap::new()),
                preauth: Mutex::new(PreAuth::default()),
                new_sessions: tx,
            }),
        };
        (server, rx)
    }

    /// Sessions currently alive (connected or awaiting a resume).
    pub fn session_count(&self) -> usize {
        self.inner.sessions().len()
    }

    /// Accepts TCP connections forever.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = tune_tcp(&stream) {
                tracing::debug!(%peer, "could not tune socket: {e}");
            }
            tracing::debug!(%peer, "accepted");
            self.accept_from(Box::new(stream), Some(peer.ip()));
        }
    }

    /// Accepts Unix socket connections forever.
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> std::io::Result<()> {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => self.accept(Box::new(stream)),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Runs the handshake for one transport in the background.
    pub fn accept(&self, transport: BoxTransport) {
        self.accept_from(transport, None);
    }

    /// Runs the handshake for one transport from `source` (its address,
    /// when known) in the background, under the pre-authentication bounds.
    pub fn accept_from(&self, transport: BoxTransport, source: Option<IpAddr>) {
        let (id, evicted) = self.inner.preauth().admit(
            source,
            self.inner.options.max_unauthenticated,
            self.inner.options.max_unauthenticated_per_source,
        );
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                r = inner.handshake(transport) => Some(r),
                _ = evicted => None,
            };
            inner.preauth().release(id);
            match result {
                Some(Ok((io, established, grant))) => inner.establish(io, established, grant).await,
                Some(Err(e)) => tracing::info!("handshake failed: {e}"),
                None => {}
            }
        });
    }

    /// Connections still in their handshake.
    pub fn unauthenticated_count(&self) -> usize {
        self.inner.preauth().entries.len()
    }
}

impl Inner {
    fn preauth(&self) -> std::sync::MutexGuard<'_, PreAuth> {
        // Every update is a single insert/remove: a poisoned lock is whole.
        self.preauth.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Slot>> {
        // A panic while holding this lock cannot leave the map torn (every
        // update is a single insert/remove/field store), so recover it.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handshake(
        &self,
        transport: BoxTransport,
    ) -> Result<(FramedIo, Established, Option<ResumeGrant>), super::handshake::DriveError> {
        let mut io = FramedIo::new(transport);
        let mut grant = None;
        let mut machine = ServerHandshake::new(
            self.options.handshake.clone(),
            &mut rand::rngs::OsRng,
            Instant::now(),
        );
        drive(
            &mut machine,
            &mut io,
            self.options.handshake_timeout,
            |machine, event| match event {
                HandshakeEvent::ResumeRequested(id) => {
                    // Look up, verify and count the resume under one lock,
                    // so no connection commits a rotation in between.
                    let mut sessions = self.sessions();
                    let found = sessions
                        .get(&id)
                        .map(|slot| slot.record.stored(slot.received.load(Ordering::SeqCst)));
                    let verified = machine.provide_session(found);
                    if verified.is_ok() {
                        grant = sessions.get_mut(&id).map(|slot| slot.record.verified());
                    }
                    verified
                }
                other => {
                    tracing::debug!(?other, "handshake event");
                    Ok(())
                }
            },
        )
        .await?;
        match machine.into_established() {
            Ok(e) => Ok((io, e, grant)),
            Err(_) => Err(super::handshake::DriveError::Closed),
        }
    }

    async fn establish(
        self: Arc<Self>,
        io: FramedIo,
        established: Established,
        grant: Option<ResumeGrant>,
    ) {
        let Established {
            sealer,
            opener,
            session_id,
            kind,
            peer_software,
        } = established;
        match kind {
            EstablishedKind::New { otp } => {
                self.start_session(io, sealer, opener, session_id, otp, peer_software)
                    .await
            }
            EstablishedKind::Resumed {
                peer_received,
                next_otp,
                ..
            } => {
                let attach = self
                    .sessions()
                    .get(&session_id)
                    .map(|slot| slot.attach.clone());
                let Some(attach) = attach else {
                    tracing::info!(%session_id, "session ended during its resume");
                    return;
                };
                tracing::info!(%session_id, peer_received, "session resumed");
                let _ = attach
                    .send(Attach {
                        io,
                        sealer,
                        opener,
                        peer_received,
                        next_otp: grant.map(|g| (next_otp, g)),
                    })
                    .await;
            }
        }
    }

    async fn start_session(
        self: Arc<Self>,
        mut io: FramedIo,
        mut sealer: Sealer,
        opener: Opener,
        id: SessionId,
        otp: Otp,
        peer_software: String,
    ) {
        let mut session = Session::new(self.options.session.clone());
        if let Err(e) = session.connected(Instant::now(), None) {
            tracing::warn!(%id, "could not start session: {e}");
            return;
        }
        let full = self.sessions().len() >= self.options.max_sessions;
        if full {
            let reason = format!(
                "the server already has {} sessions (its limit; raise it with --max-sessions)",
                self.options.max_sessions
            );
            tracing::warn!(%id, "{reason}");
            session.close(&reason);
            let mut out = BytesMut::new();
            while let Some(t) = session.poll_transmit(Instant::now()) {
                if sealer.seal_into(&t.parts(), &mut out).is_err() {
                    break;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                io.writer.write_all(&out).await?;
                io.writer.flush().await
            })
            .await;
            return;
        }

        let cap = self.options.channel_capacity;
        let (attach_tx, attach_rx) = mpsc::channel(1);
        let received = Arc::new(AtomicU64::new(0));
        self.sessions().insert(
            id,
            Slot {
                record: ServerRecord::new(otp),
                received: received.clone(),
                attach: attach_tx,
            },
        );

        // Bytes pipes between the session task and the typed adapters.
        let (bytes_out_tx, bytes_out_rx) = mpsc::channel::<Bytes>(cap);
        let (bytes_in_tx, bytes_in_rx) = mpsc::channel::<Bytes>(cap);
        let (req_tx, req_rx) = mpsc::channel::<Request>(cap);
        let (resp_tx, resp_rx) = mpsc::channel::<Response>(cap);
        tokio::spawn(decode_requests(bytes_in_rx, req_tx, resp_tx.clone()));
        tokio::spawn(encode_responses(resp_rx, bytes_out_tx));

        tracing::info!(%id, peer = %peer_software, "session started");
        if self
            .new_sessions
            .send(NewSession {
                id,
                requests: req_rx,
                responses: resp_tx,
            })
            .await
            .is_err()
        {
            tracing::warn!("the application is not accepting sessions");
            self.sessions().remove(&id);
            return;
        }

        let task = SessionTask {
            inner: self.clone(),
            id,
            session,
            pipes: AppPipes::new(bytes_out_rx, bytes_in_tx),
            attach_rx,
            received,
        };
        tokio::spawn(task.run(Attach {
            io,
            sealer,
            opener,
            peer_received: 0,
            next_otp: None,
        }));
    }
}

struct SessionTask {
    inner: Arc<Inner>,
    id: SessionId,
    session: Session,
    pipes: AppPipes,
    attach_rx: mpsc::Receiver<Attach>,
    received: Arc<AtomicU64>,
}

/// Commits a resumed connection's rotated OTP on its first record, and
/// publishes the received count for resume lookups.
struct ServerHooks<'a> {
    inner: &'a Inner,
    id: SessionId,
    received: &'a AtomicU64,
    next_otp: Option<(Otp, ResumeGrant)>,
}

impl LinkHooks for ServerHooks<'_> {
    fn first_record(&mut self) {
        if let Some((next, grant)) = self.next_otp.take() {
            if let Some(slot) = self.inner.sessions().get_mut(&self.id) {
                slot.record.commit(grant, next);
            }
        }
    }

    fn received(&mut self, count: u64) {
        self.received.store(count, Ordering::SeqCst);
    }
}

impl SessionTask {
    async fn run(mut self, first: Attach) {
        let mut next = Some((first, true));
        while let Some((attach, is_new)) = next.take() {
            let Attach {
                mut io,
                mut sealer,
                mut opener,
                peer_received,
                next_otp,
            } = attach;
            if !is_new {
                // A client's received count only grows, and each resume
                // carries it as it was when the client dialled. A resume
                // below what the client has already confirmed (by a later
                // resume or an ack) is therefore an attempt the client gave
                // up on, delivered late; its OTP can still match when no
                // newer connection has carried a record yet. Resuming it
                // would make the session think the client lost its state,
                // so drop it and wait for the client's real reconnect.
                if is_stale_resume(peer_received, self.session.stats().acked) {
                    tracing::info!(
                        id = %self.id,
                        peer_received,
                        "dropping a stale resume attempt"
                    );
                    link::close_transport(io).await;
                    next = self.await_resume().await;
                    continue;
                }
                if let Err(e) = self.session.connected(Instant::now(), Some(peer_received)) {
                    tracing::warn!(id = %self.id, "resume failed: {e}");
                    link::close_transport(io).await;
                    break;
                }
            }
            let mut hooks = ServerHooks {
                inner: &self.inner,
                id: self.id,
                received: &self.received,
                next_otp,
            };
            let end = link::run(
                &mut io,
                &mut sealer,
                &mut opener,
                &mut self.session,
                &mut self.pipes,
                Some(&mut self.attach_rx),
                &mut hooks,
            )
            .await;
            self.session.disconnected();
            // The connection is over whatever happens next: the peer sees
            // FIN now, not when the grace period runs out.
            link::close_transport(io).await;
            match end {
                LinkEnd::Preempted(attach) => {
                    tracing::info!(id = %self.id, "a resuming connection replaced the old one");
                    next = Some((attach, false));
                }
                LinkEnd::Broken(detail) => {
                    tracing::info!(id = %self.id, %detail, "connection lost; keeping the session");
                    next = self.await_resume().await;
                }
                LinkEnd::SessionOver(outcome) => {
                    tracing::info!(id = %self.id, ?outcome, "session over");
                }
            }
        }
        self.inner.sessions().remove(&self.id);
        // Dropping the pipes closes the application's request channel.
    }

    /// Waits up to the session's grace period for a resuming connection.
    async fn await_resume(&mut self) -> Option<(Attach, bool)> {
        let ttl = self.inner.options.session_ttl;
        match tokio::time::timeout(ttl, self.attach_rx.recv()).await {
            Ok(Some(attach)) => Some((attach, false)),
            Ok(None) => None,
            Err(_) => {
                tracing::info!(
                    id = %self.id,
                    "no resume within {} s; ending the session",
                    ttl.as_secs()
                );
                None
            }
        }
    }
}

/// Data records → typed requests. A record that is not a request gets an
/// error response (numbered like every other response), and the session
/// goes on.
async fn decode_requests(
    mut bytes_in: mpsc::Receiver<Bytes>,
    requests: mpsc::Sender<Request>,
    responses: mpsc::Sender<Response>,
) {
    while let Some(bytes) = bytes_in.recv().await {
        let error = match Message::decode(&bytes) {
            Ok(Message::Request(request)) => {
                if requests.send(request).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Message::Response(_)) => "clients send requests, not responses".to_string(),
            Err(e) => e.to_string(),
        };
        let origin_id = Message::peek_request_id(&bytes).unwrap_or(0);
        tracing::warn!(origin_id, "rejecting a request: {error}");
        let response = Response {
            id: 0, // numbered by `encode_responses`
            origin_id,
            payload: ResponsePayload::Single(Reply::error(
                ErrorKind::InvalidParams,
                format!("the server could not understand request {origin_id}: {error}"),
            )),
        };
        if responses.send(response).await.is_err() {
            return;
        }
    }
}

/// Typed responses → data records. This is the one place every response
/// of the session passes in wire order, so it assigns `Response.id`
/// (PROTOCOL.md §5.1: 1, 2, 3, … per session, whatever the application
/// put there).
async fn encode_responses(mut responses: mpsc::Receiver<Response>, bytes_out: mpsc::Sender<Bytes>) {
    let mut next_id: u64 = 1;
    while let Some(mut response) = responses.recv().await {
        response.id = next_id;
        next_id = next_id.saturating_add(1);
        match Message::Response(response).encode() {
            Ok(encoded) => {
                if bytes_out.send(Bytes::from(encoded)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("could not encode a response: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    /// The pre-authentication pool: bounded, a source over its share loses
    /// its own oldest, a full pool loses the oldest of the busiest source —
    /// never a lone newcomer's slot.
    #[test]
    fn the_oldest_of_the_busiest_source_makes_room() {
        let mut pool = PreAuth::default();
        let mut evicted = Vec::new();
        // One source fills its share of 3; the 4th evicts its own oldest.
        for _ in 0..4 {
            evicted.push(pool.admit(ip(1), 8, 3));
        }
        assert_eq!(pool.entries.len(), 3);
        assert!(evicted[0].1.try_recv().is_err(), "the oldest was closed");
        assert!(matches!(
            evicted[1].1.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        // A legitimate client from another address, then the pool fills.
        let (legit, mut legit_rx) = pool.admit(ip(9), 8, 3);
        for last in 2..=3 {
            for _ in 0..2 {
                evicted.push(pool.admit(ip(last), 8, 3));
            }
        }
        assert_eq!(pool.entries.len(), 8);
        // Full: the busiest source (10.0.0.1, 3 slots) loses its oldest.
        let (_, _rx) = pool.admit(ip(4), 8, 3);
        assert_eq!(pool.entries.len(), 8);
        assert!(evicted[1].1.try_recv().is_err());
        assert!(pool.entries.contains_key(&legit));
        assert!(matches!(
            legit_rx.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        // Released slots are free again.
        pool.release(legit);
        assert_eq!(pool.entries.len(), 7);
        // Unknown sources (Unix sockets) share one group and the global bound.
        let mut pool = PreAuth::default();
        let rxs: Vec<_> = (0..5).map(|_| pool.admit(None, 4, 1)).collect();
        assert_eq!(pool.entries.len(), 4);
        assert!(!pool.entries.contains_key(&rxs[0].0));
    }
}
