//! Phase 3 of a connection: the resumable session (PROTOCOL.md §4).
//!
//! This module owns everything above sealed records and below messages:
//! numbering data records per direction for the life of the session,
//! in-order exactly-once delivery, cumulative acks, the bounded replay
//! backup (with backpressure instead of dropping), heartbeats, dead-peer
//! detection, replay after a reconnect, the "session lost" verdict and the
//! Close record.
//!
//! [`Session`] is a sans-IO state machine in the style of quinn-proto:
//! record contents (already opened by [`crate::crypto`]) and
//! [`Instant`]s go in; [`Transmit`]s, delivered payloads, [`SessionEvent`]s
//! and deadlines come out. It never blocks, never reads a clock and never
//! panics on peer input.
//!
//! Driving it:
//!
//! 1. After the handshake, call [`Session::connected`] with the peer's
//!    `received` count from `Resume`/`Resumed` (`None` on a brand-new
//!    session). Take the count you send in `Resume`/`Resumed` from
//!    [`Session::received_count`] only once the old transport is no longer
//!    fed to the session (after [`Session::disconnected`], or at the moment
//!    a new transport replaces it): acks sent after the snapshot would let
//!    the peer trim past it, and the peer would then rightly call the
//!    session lost.
//! 2. Feed every received record content to [`Session::handle_record`].
//! 3. Drain [`Session::poll_transmit`] and write each record; drain
//!    [`Session::poll_received`] and [`Session::poll_event`].
//! 4. Sleep until [`Session::poll_timeout`], then call
//!    [`Session::handle_timeout`] and go to 3.
//! 5. On any `Err` from `connected`, `handle_record` or `handle_timeout`,
//!    drain [`Session::poll_transmit`] once more (after a
//!    [`SessionError::Protocol`] it yields the Close record that tells the
//!    peer why), then drop the transport: the session is already marked
//!    disconnected. [`SessionError::PeerDead`] leaves the session
//!    resumable; [`SessionError::Protocol`], [`SessionError::Lost`] and
//!    [`SessionError::Closed`] are final.
//!
//! Why a malformed record ends the whole session (PROTOCOL.md §4): every
//! record content reaching [`Session::handle_record`] has passed the
//! record layer's authentication, so only the peer itself can have sent
//! it. Someone on the path who flips, drops, replays or reorders bytes
//! only makes a record fail to open, which ends the *connection* and never
//! the session. A peer that seals garbage is broken; resuming would replay
//! into the same fault, so the session ends at once with a Close record
//! naming the fault.
//!
//! Application side: [`Session::send`] queues a payload or refuses it with
//! [`SendError::Backpressure`]; retry after [`SessionEvent::Writable`].
//! Delivered payloads wait in [`Session::poll_received`] until taken; the
//! session does not limit that queue (acks follow delivery, not
//! consumption), so the driver should drain it promptly. Once the session
//! has ended, [`Session::termination`] says how.

mod record;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use record::{
    DecodeError, Record, HEADER_LEN, MAX_DATA_PAYLOAD, TYPE_ACK, TYPE_CLOSE, TYPE_DATA,
    TYPE_HEARTBEAT,
};

/// Tunables of a session. The defaults are the values in PROTOCOL.md §4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Most data records kept for replay (sent or queued, not yet acked).
    /// At least 1 is used.
    pub max_backup_records: usize,
    /// Most payload bytes kept for replay. A single payload larger than
    /// this is refused with [`SendError::TooLarge`].
    pub max_backup_bytes: usize,
    /// Ack at once after this many unacknowledged data records (at least 1).
    pub ack_every_records: u64,
    /// Ack at once after this many unacknowledged payload bytes.
    pub ack_every_bytes: usize,
    /// Ack no later than this after an unacknowledged data record.
    pub ack_delay: Duration,
    /// Send a Heartbeat when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// The peer is dead when nothing was received for this long.
    pub dead_after: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_backup_records: 8192,
            max_backup_bytes: 64 * 1024 * 1024,
            ack_every_records: 32,
            ack_every_bytes: 1024 * 1024,
            ack_delay: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(4),
        }
    }
}

/// Why [`Session::send`] refused a payload. The payload was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The backup is full; wait for [`SessionEvent::Writable`] and retry.
    #[error("the replay backup is full; wait until the peer acknowledges")]
    Backpressure,
    /// The session was closed (by either side) or lost;
    /// [`Session::termination`] says which.
    #[error("the session has ended")]
    Closed,
    /// Larger than [`MAX_DATA_PAYLOAD`] or than the whole backup.
    #[error("payload too large for one data record or for the replay backup")]
    TooLarge,
}

/// Errors from the transport-side calls. After any of them the session is
/// disconnected; drop the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Replay cannot fill the gap between the two sides; the session is over.
    #[error("session lost: {reason}")]
    Lost { reason: String },
    /// Nothing was received for `dead_after`; reconnect (client) or wait for
    /// a resume (server). The session itself is intact.
    #[error("peer is dead: nothing received within the dead-peer timeout")]
    PeerDead,
    /// The peer broke §4 (malformed record, gap, impossible ack). Nothing
    /// of the offending record was applied; the session has ended (a Close
    /// record naming the fault is the next [`Session::poll_transmit`]).
    #[error("session protocol error: {0}")]
    Protocol(String),
    /// The session was closed by a Close record (either side); final.
    #[error("session closed: {reason}")]
    Closed { reason: String },
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Capacity was freed after a [`Session::send`] was refused with
    /// [`SendError::Backpressure`] (or [`Session::has_capacity`] said no).
    Writable,
    /// The peer sent Close with this reason; the session has ended.
    PeerClosed(String),
}

/// Counters for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Data records in the replay backup (sent or queued, not acked).
    pub backup_records: usize,
    /// Payload bytes in the replay backup.
    pub backup_bytes: usize,
    /// Data records accepted by [`Session::send`] (the next seq).
    pub queued: u64,
    /// Distinct data records transmitted at least once.
    pub sent: u64,
    /// Data records acknowledged by the peer (the backup's first seq).
    pub acked: u64,
    /// Data records delivered in order (this side's `received`).
    pub received: u64,
    /// Data records transmitted again by a replay.
    pub retransmitted: u64,
    /// Duplicate data records dropped on receipt.
    pub duplicates: u64,
    /// Ack records transmitted.
    pub acks_sent: u64,
    /// Heartbeat records transmitted.
    pub heartbeats_sent: u64,
}

/// What a [`Transmit`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// A data record; `retransmit` when it was transmitted before.
    Data {
        seq: u64,
        retransmit: bool,
    },
    Ack {
        received: u64,
    },
    Heartbeat {
        received: u64,
    },
    Close,
}

/// One record to seal and send: a small header and a payload that is
/// shared with the backup, not copied. The record content is
/// `parts()[0] || parts()[1]`.
#[derive(Debug, Clone)]
pub struct Transmit {
    header: [u8; HEADER_LEN],
    header_len: usize,
    payload: Bytes,
    kind: TransmitKind,
}

impl Transmit {
    fn data(seq: u64, payload: Bytes, retransmit: bool) -> Self {
        Self::with_header(
            TYPE_DATA,
            seq,
            payload,
            TransmitKind::Data { seq, retransmit },
        )
    }

    fn counter(ty: u8, received: u64, kind: TransmitKind) -> Self {
        Self::with_header(ty, received, Bytes::new(), kind)
    }

    fn with_header(ty: u8, value: u64, payload: Bytes, kind: TransmitKind) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[0] = ty;
        header[1..].copy_from_slice(&value.to_be_bytes());
        Self {
            header,
            header_len: HEADER_LEN,
            payload,
            kind,
        }
    }

    fn close(reason: Bytes) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[0] = TYPE_CLOSE;
        Self {
            header,
            header_len: 1,
            payload: reason,
            kind: TransmitKind::Close,
        }
    }

    /// Header (type byte, plus `u64` for Data/Ack/Heartbeat) and payload
    /// (empty for Ack and Heartbeat, the reason for Close).
    pub fn parts(&self) -> [&[u8]; 2] {
        [
            self.header.get(..self.header_len).unwrap_or_default(),
            &self.payload,
        ]
    }

    /// What this record is.
    pub fn kind(&self) -> TransmitKind {
        self.kind
    }

    /// Total content length.
    pub fn encoded_len(&self) -> usize {
        self.header_len + self.payload.len()
    }

    /// The whole record content in one buffer (copies the payload).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// `close()` was called; the Close record goes out after every queued
    /// data record.
    Closing {
        reason: String,
    },
    Closed {
        reason: String,
    },
    Lost {
        reason: String,
    },
}

const NOT_WAITING: usize = usize::MAX;

/// The resumable session state machine. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    connected: bool,

    // Send side. The backup holds seq `backup_start ..` in order.
    backup: VecDeque<Bytes>,
    backup_start: u64,
    backup_bytes: usize,
    /// Seq of the next payload `send` accepts. While the session is not
    /// ended, `backup_start + backup.len() == next_seq`; an ended session
    /// frees its backup but keeps the counters.
    next_seq: u64,
    /// Next seq to transmit on the current connection
    /// (`backup_start <= send_cursor <= next_seq`).
    send_cursor: u64,
    /// Distinct data records ever transmitted (`sent_high <= next_seq`).
    sent_high: u64,
    /// Smallest payload length a refused caller waits for, or NOT_WAITING.
    /// Atomic only so that [`Session::has_capacity`] can take `&self`.
    waiting_for: AtomicUsize,

    // Receive side.
    received: u64,
    delivered: VecDeque<Bytes>,
    /// The `received` value the peer last heard from us.
    reported: u64,
    unacked_bytes: usize,
    ack_deadline: Option<Instant>,

    // Timers (meaningful while connected).
    /// Set by [`Session::connected`]; `None` before the first connection
    /// (so that [`Session::new`] reads no clock).
    last_send: Option<Instant>,
    last_recv: Option<Instant>,

    events: VecDeque<SessionEvent>,
    stats: SessionStats,
    /// The Close record (reason already cut to fit) owed to the peer after
    /// a protocol error; sent by the next `poll_transmit`.
    close_owed: Option<Bytes>,
}

fn deadline(from: Instant, after: Duration) -> Option<Instant> {
    from.checked_add(after)
}

/// A Close reason cut at a character boundary to fit one record.
fn cut_reason(reason: &str) -> &str {
    let mut cut = reason.len().min(MAX_DATA_PAYLOAD);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.get(..cut).unwrap_or_default()
}

fn due(from: Instant, after: Duration, now: Instant) -> bool {
    deadline(from, after).is_some_and(|d| now >= d)
}

impl Session {
    /// A fresh session: nothing sent, nothing received, not connected.
    /// Reads no clock: time enters only through the `now` arguments.
    pub fn new(config: SessionConfig) -> Self {
        let mut config = config;
        config.max_backup_records = config.max_backup_records.max(1);
        config.ack_every_records = config.ack_every_records.max(1);
        Self {
            config,
            state: State::Open,
            connected: false,
            backup: VecDeque::new(),
            backup_start: 0,
            backup_bytes: 0,
            next_seq: 0,
            send_cursor: 0,
            sent_high: 0,
            waiting_for: AtomicUsize::new(NOT_WAITING),
            received: 0,
            delivered: VecDeque::new(),
            reported: 0,
            unacked_bytes: 0,
            ack_deadline: None,
            last_send: None,
            last_recv: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            close_owed: None,
        }
    }

    /// The configuration in force (with minimums applied).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The final error if the session has ended (closed or lost).
    pub fn termination(&self) -> Option<SessionError> {
        match &self.state {
            State::Open | State::Closing { .. } => None,
            State::Closed { reason } => Some(SessionError::Closed {
                reason: reason.clone(),
            }),
            State::Lost { reason } => Some(SessionError::Lost {
                reason: reason.clone(),
            }),
        }
    }

    /// Whether the session has ended (closed by either side, or lost).
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Closed { .. } | State::Lost { .. })
    }

    fn terminal_error(&self) -> Result<(), SessionError> {
        match self.termination() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    // ----- application side ------------------------------------------------

    /// Queues `payload` as the next data record. It stays in the backup until
    /// the peer acknowledges it, and is resent after a reconnect if needed.
    pub fn send(&mut self, payload: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let len = payload.len();
        if len > MAX_DATA_PAYLOAD || len > self.config.max_backup_bytes {
            return Err(SendError::TooLarge);
        }
        if !self.has_capacity(len) {
            return Err(SendError::Backpressure);
        }
        self.backup_bytes += len;
        self.backup.push_back(payload);
        self.next_seq += 1;
        Ok(())
    }

    fn fits(&self, len: usize) -> bool {
        self.backup.len() < self.config.max_backup_records
            && self
                .backup_bytes
                .checked_add(len)
                .is_some_and(|total| total <= self.config.max_backup_bytes)
    }

    /// Whether [`Session::send`] would accept a payload of `len` bytes now.
    /// When it would not (only for lack of room), a
    /// [`SessionEvent::Writable`] follows once there is room.
    pub fn has_capacity(&self, len: usize) -> bool {
        if self.state != State::Open {
            return false;
        }
        if self.fits(len) {
            return true;
        }
        if len <= MAX_DATA_PAYLOAD && len <= self.config.max_backup_bytes {
            self.waiting_for.fetch_min(len, Ordering::Relaxed);
        }
        false
    }

    /// The next delivered payload: in order, each exactly once.
    pub fn poll_received(&mut self) -> Option<Bytes> {
        self.delivered.pop_front()
    }

    /// Ends the session: a Close record is sent after every data record
    /// already queued, and `send` refuses from now on. No-op once ended.
    pub fn close(&mut self, reason: &str) {
        if self.state == State::Open {
            self.state = State::Closing {
                reason: reason.to_owned(),
            };
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    // ----- transport side --------------------------------------------------

    /// A (new or replacement) transport is up. `peer_received` is the
    /// peer's count of our data records from `Resume`/`Resumed`; `None`
    /// for a brand-new session's first connection (same as `Some(0)`).
    ///
    /// Every backup record with `seq >= peer_received` is sent again,
    /// first, in order. If `peer_received` is below the backup (already
    /// discarded) or above what was ever sent, the session is lost.
    pub fn connected(
        &mut self,
        now: Instant,
        peer_received: Option<u64>,
    ) -> Result<(), SessionError> {
        self.terminal_error()?;
        let peer = peer_received.unwrap_or(0);
        if peer < self.backup_start {
            return Err(self.lose(format!(
                "peer has received {peer} of our data records, but records before {} were \
                 acknowledged and discarded (peer lost its state?)",
                self.backup_start
            )));
        }
        if peer > self.sent_high {
            return Err(self.lose(format!(
                "peer claims to have received {peer} of our data records, but only {} were sent \
                 (we lost our state?)",
                self.sent_high
            )));
        }
        self.trim_to(peer);
        self.send_cursor = peer;
        self.connected = true;
        self.last_send = Some(now);
        self.last_recv = Some(now);
        // The handshake told the peer our received count.
        self.reported = self.received;
        self.unacked_bytes = 0;
        self.ack_deadline = None;
        tracing::debug!(
            peer_received = peer,
            replay = self.sent_high - peer,
            queued = self.next_seq - self.sent_high,
            "session connected"
        );
        Ok(())
    }

    /// The transport is gone. Everything unacknowledged is resent on the
    /// next [`Session::connected`].
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.ack_deadline = None;
        // A Close owed to the peer cannot be sent without a transport.
        self.close_owed = None;
    }

    /// Whether a transport is attached.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Data records delivered so far; what `Resume`/`Resumed` carries.
    pub fn received_count(&self) -> u64 {
        self.received
    }

    fn lose(&mut self, reason: String) -> SessionError {
        tracing::warn!(%reason, "session lost");
        self.state = State::Lost {
            reason: reason.clone(),
        };
        self.connected = false;
        self.ack_deadline = None;
        self.free_backup();
        SessionError::Lost { reason }
    }

    /// Drops the backup of an ended session.
    fn free_backup(&mut self) {
        self.backup = VecDeque::new();
        self.backup_bytes = 0;
    }

    /// The peer sealed a record that breaks §4: the session ends, and the
    /// peer is told why with a Close record (if a transport is attached).
    fn protocol_error(&mut self, msg: String) -> SessionError {
        tracing::warn!(error = %msg, "session protocol error: ending the session");
        let err = SessionError::Protocol(msg);
        let reason = err.to_string();
        if self.connected {
            self.close_owed = Some(Bytes::copy_from_slice(cut_reason(&reason).as_bytes()));
        }
        self.state = State::Lost { reason };
        self.ack_deadline = None;
        self.free_backup();
        err
    }

    /// Discards backup records below `acked` (which must be `<= sent_high`).
    fn trim_to(&mut self, acked: u64) {
        while self.backup_start < acked {
            match self.backup.pop_front() {
                Some(payload) => {
                    self.backup_bytes -= payload.len();
                    self.backup_start += 1;
                }
                None => break,
            }
        }
        self.send_cursor = self.send_cursor.max(self.backup_start);
        let wanted = self.waiting_for.load(Ordering::Relaxed);
        if wanted != NOT_WAITING && self.fits(wanted) {
            self.waiting_for.store(NOT_WAITING, Ordering::Relaxed);
            self.events.push_back(SessionEvent::Writable);
        }
    }

    fn on_ack(&mut self, acked: u64) -> Result<(), SessionError> {
        if acked > self.sent_high {
            return Err(self.protocol_error(format!(
                "peer acknowledged {acked} data records but only {} were sent",
                self.sent_high
            )));
        }
        // A value at or below the backup start is stale news; ignore it.
        if acked > self.backup_start {
            self.trim_to(acked);
        }
        Ok(())
    }

    fn schedule_ack(&mut self, now: Instant, at_once: bool) {
        let at = if at_once {
            Some(now)
        } else {
            deadline(now, self.config.ack_delay)
        };
        self.ack_deadline = match (self.ack_deadline, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Processes one received record content.
    pub fn handle_record(&mut self, content: Bytes, now: Instant) -> Result<(), SessionError> {
        self.terminal_error()?;
        if self.connected {
            self.last_recv = Some(now);
        }
        let record = match Record::decode(content) {
            Ok(record) => record,
            Err(err) => return Err(self.protocol_error(err.to_string())),
        };
        match record {
            Record::Data { seq, payload } => {
                if seq < self.received {
                    // A replayed record we already have: the peer's view of
                    // us is stale, so tell it soon.
                    self.stats.duplicates += 1;
                    self.schedule_ack(now, false);
                    return Ok(());
                }
                if seq > self.received {
                    return Err(self.protocol_error(format!(
                        "gap in data records: got seq {seq}, expected {}",
                        self.received
                    )));
                }
                self.received += 1;
                self.unacked_bytes = self.unacked_bytes.saturating_add(payload.len());
                self.delivered.push_back(payload);
                let at_once = self.received - self.reported >= self.config.ack_every_records
                    || self.unacked_bytes >= self.config.ack_every_bytes;
                self.schedule_ack(now, at_once);
                Ok(())
            }
            Record::Ack { received } | Record::Heartbeat { received } => self.on_ack(received),
            Record::Close { reason } => {
                tracing::debug!(%reason, "peer closed the session");
                self.state = State::Closed {
                    reason: reason.clone(),
                };
                self.connected = false;
                self.ack_deadline = None;
                self.free_backup();
                self.events
                    .push_back(SessionEvent::PeerClosed(reason.clone()));
                Err(SessionError::Closed { reason })
            }
        }
    }

    fn report(&mut self) -> u64 {
        self.reported = self.received;
        self.unacked_bytes = 0;
        self.ack_deadline = None;
        self.received
    }

    /// The next record to send, or `None` (always `None` while disconnected).
    /// Order: a due Ack, then data (replay first, then never-sent), then a
    /// pending Close, then a due Heartbeat.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(wire) = self.close_owed.take() {
            self.connected = false;
            return Some(Transmit::close(wire));
        }
        if !self.connected || self.is_ended() {
            return None;
        }
        if self.ack_deadline.is_some_and(|d| now >= d) {
            let received = self.report();
            self.stats.acks_sent += 1;
            self.last_send = Some(now);
            return Some(Transmit::counter(
                TYPE_ACK,
                received,
                TransmitKind::Ack { received },
            ));
        }
        if self.send_cursor < self.next_seq {
            let seq = self.send_cursor;
            let index = usize::try_from(seq.checked_sub(self.backup_start)?).ok()?;
            let payload = self.backup.get(index)?.clone();
            let retransmit = seq < self.sent_high;
            if retransmit {
                self.stats.retransmitted += 1;
            } else {
                self.sent_high = seq + 1;
            }
            self.send_cursor += 1;
            self.last_send = Some(now);
            return Some(Transmit::data(seq, payload, retransmit));
        }
        if let State::Closing { reason } = &self.state {
            let reason = reason.clone();
            let wire = Bytes::copy_from_slice(cut_reason(&reason).as_bytes());
            self.state = State::Closed { reason };
            self.connected = false;
            self.free_backup();
            return Some(Transmit::close(wire));
        }
        if self
            .last_send
            .is_some_and(|t| due(t, self.config.heartbeat_interval, now))
        {
            let received = self.report();
            self.stats.heartbeats_sent += 1;
            self.last_send = Some(now);
            return Some(Transmit::counter(
                TYPE_HEARTBEAT,
                received,
                TransmitKind::Heartbeat { received },
            ));
        }
        None
    }

    /// The earliest instant at which [`Session::handle_timeout`] or
    /// [`Session::poll_transmit`] has something to do: an ack deadline,
    /// the heartbeat deadline or the dead-peer deadline. `None` while
    /// disconnected or ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.connected || self.is_ended() {
            return None;
        }
        [
            self.ack_deadline,
            self.last_send
                .and_then(|t| deadline(t, self.config.heartbeat_interval)),
            self.last_recv
                .and_then(|t| deadline(t, self.config.dead_after)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers. Returns [`SessionError::PeerDead`] (and disconnects)
    /// when nothing was received for `dead_after`. Due acks and heartbeats
    /// come out of the next [`Session::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if !self.connected || self.is_ended() {
            return Ok(());
        }
        if self
            .last_recv
            .is_some_and(|t| due(t, self.config.dead_after, now))
        {
            tracing::debug!("peer silent for {:?}: dead", self.config.dead_after);
            self.disconnected();
            return Err(SessionError::PeerDead);
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            backup_records: self.backup.len(),
            backup_bytes: self.backup_bytes,
            queued: self.next_seq,
            sent: self.sent_high,
            acked: self.backup_start,
            received: self.received,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests;
