//! Deterministic simulation of two [`Session`]s (client and server) over a
//! seeded fake network with virtual time.
//!
//! The network carries encoded record contents with random delays, in order
//! per connection. At random moments it cuts the connection (records in
//! flight are lost, both sides get `disconnected()`), stays down for a
//! random time (sometimes longer than `dead_after`), or black-holes one or
//! both directions (nobody is told; the dead timer must fire). The client
//! reconnects by exchanging received counts, as the handshake's
//! `Resume`/`Resumed` do, and sometimes races two attempts of which only the
//! later survives. Both sides send numbered payloads of random sizes with
//! small backup limits, waiting for `Writable` after backpressure.
//!
//! Checked for every seed: each payload is delivered exactly once and in
//! order on each side, no `Lost` and no protocol error ever happens, the
//! backup never exceeds its bounds, everything is eventually acknowledged,
//! and the run terminates. A second scenario restarts the server with an
//! empty session and checks that `Lost` is reported exactly when the lost
//! state makes replay impossible.
//!
//! `SIM_SEEDS=n` runs n seeds (default 2000); `SIM_SEED=s` runs only seed s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use distant_protocol::session::{
    SendError, Session, SessionConfig, SessionError, SessionEvent, SessionStats, TransmitKind,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MS: u64 = 1_000; // virtual time unit: microseconds
const SEC: u64 = 1_000 * MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client = 0,
    Server = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

#[derive(Debug)]
enum Ev {
    /// A record arrives at `to` over connection `conn`.
    Deliver { to: Side, conn: u64, rec: Bytes },
    /// The client's Resume (with its received count) reaches the server.
    Resume { conn: u64, client_received: u64 },
    /// The server's Resumed (with its received count) reaches the client.
    Resumed { conn: u64, server_received: u64 },
    /// The client gives up on a handshake that did not complete.
    AttemptTimeout { conn: u64 },
    /// The client abandons a slow attempt and dials again at once.
    Race { conn: u64 },
    /// The client dials.
    Dial,
    /// The network misbehaves.
    Fault,
    /// The application of `side` wants to send a few more payloads.
    AppTick(Side),
}

struct Endpoint {
    side: Side,
    session: Session,
    /// Connection the session is attached to.
    conn: Option<u64>,
    /// Payloads the application will send in total.
    total: u64,
    next_send: u64,
    next_expected: u64,
    /// Payloads the application wants to send now.
    credit: u64,
    /// Refused with Backpressure; waiting for Writable.
    blocked: bool,
    writable_events: u64,
    backpressured: u64,
    peer_dead: u64,
}

impl Endpoint {
    fn new(side: Side, config: SessionConfig, total: u64) -> Self {
        Self {
            side,
            session: Session::new(config),
            conn: None,
            total,
            next_send: 0,
            next_expected: 0,
            credit: 0,
            blocked: false,
            writable_events: 0,
            backpressured: 0,
            peer_dead: 0,
        }
    }
}

/// Deterministic payload length for payload `n` of `side`.
fn payload_len(seed: u64, side: Side, n: u64, max: usize) -> usize {
    let mut x = seed
        ^ (side as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    let x = x as usize;
    // Mostly small, sometimes up to `max`.
    if x % 8 == 0 {
        (x >> 8) % (max + 1)
    } else {
        (x >> 8) % 200
    }
}

fn make_payload(seed: u64, side: Side, n: u64, max: usize) -> Bytes {
    let len = payload_len(seed, side, n, max);
    let mut v = Vec::with_capacity(8 + len);
    v.extend_from_slice(&n.to_be_bytes());
    v.resize(8 + len, n as u8);
    Bytes::from(v)
}

#[derive(Debug, Default)]
struct Outcome {
    /// The scenario ended with a `Lost` (only in the reset scenario).
    lost: bool,
    /// In the reset scenario: whether the restart made the session unrecoverable.
    must_lose: Option<bool>,
    faults: u32,
    peer_dead: u64,
    backpressured: u64,
    writable: u64,
    /// Server resumes that replaced a transport it still had.
    replaced: u64,
    /// Older raced attempts the server refused.
    stale_refused: u64,
    /// Outages longer than dead_after.
    long_outages: u64,
    retransmitted: u64,
    duplicates: u64,
    virtual_time: u64,
}

struct Sim {
    seed: u64,
    rng: ChaCha8Rng,
    now: u64,
    base: Instant,
    order: u64,
    events: BinaryHeap<Reverse<(u64, u64)>>,
    payloads: HashMap<u64, Ev>,
    ep: [Endpoint; 2],
    config: SessionConfig,
    max_payload: usize,

    next_conn: u64,
    /// Connections below this id were cut.
    live_from: u64,
    /// Black-holed directions per connection (once lost, a TCP connection
    /// does not heal: everything after the hole vanishes too).
    blackholed: HashMap<u64, [bool; 2]>,
    /// Dials fail before this time.
    down_until: u64,
    /// Per (conn, direction) time of the last scheduled arrival (FIFO).
    tail: HashMap<(u64, usize), u64>,
    latency: HashMap<u64, (u64, u64)>,
    /// Latest connection the server accepted (older attempts are refused).
    server_latest: u64,
    attempt: Option<u64>,
    /// Highest `received` each side has ever told its peer (acks,
    /// heartbeats, handshakes): a resume snapshot may be anywhere from here
    /// up to the true count.
    reported: [u64; 2],
    dial_pending: bool,

    faults_left: u32,
    reset_at: Option<u64>,
    reset_done: bool,
    outcome: Outcome,
}

type SimResult<T> = Result<T, String>;

impl Sim {
    fn new(seed: u64, reset_scenario: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let max_payload = rng.gen_range(200..3000);
        let config = SessionConfig {
            max_backup_records: rng.gen_range(2..48),
            max_backup_bytes: rng.gen_range(max_payload + 8..max_payload * 6 + 64),
            ack_every_records: rng.gen_range(1..40),
            ack_every_bytes: rng.gen_range(500..20_000),
            ..SessionConfig::default()
        };
        let total_c = rng.gen_range(20..400);
        let total_s = rng.gen_range(20..400);
        let faults_left = if reset_scenario {
            0
        } else {
            rng.gen_range(0..10)
        };
        let reset_at = reset_scenario.then(|| rng.gen_range(50 * MS..1500 * MS));
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            base: Instant::now(),
            order: 0,
            events: BinaryHeap::new(),
            payloads: HashMap::new(),
            ep: [
                Endpoint::new(Side::Client, config.clone(), total_c),
                Endpoint::new(Side::Server, config.clone(), total_s),
            ],
            config,
            max_payload,
            next_conn: 1,
            live_from: 0,
            blackholed: HashMap::new(),
            down_until: 0,
            tail: HashMap::new(),
            latency: HashMap::new(),
            server_latest: 0,
            attempt: None,
            reported: [0; 2],
            dial_pending: false,
            faults_left,
            reset_at,
            reset_done: false,
            outcome: Outcome::default(),
        };
        // The first connection of a brand-new session.
        let t = sim.instant();
        let conn = sim.new_conn();
        for side in [Side::Client, Side::Server] {
            sim.ep[side as usize]
                .session
                .connected(t, None)
                .expect("first connection");
            sim.ep[side as usize].conn = Some(conn);
        }
        sim.server_latest = conn;
        let gap = sim.fault_gap();
        sim.schedule(gap, Ev::Fault);
        for side in [Side::Client, Side::Server] {
            let d = sim.rng.gen_range(0..50 * MS);
            sim.schedule(d, Ev::AppTick(side));
        }
        sim
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn fault_gap(&mut self) -> u64 {
        self.rng.gen_range(100 * MS..3 * SEC)
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.schedule_at(self.now + delay, ev);
    }

    fn schedule_at(&mut self, at: u64, ev: Ev) {
        self.order += 1;
        self.events.push(Reverse((at, self.order)));
        self.payloads.insert(self.order, ev);
    }

    fn new_conn(&mut self) -> u64 {
        let conn = self.next_conn;
        self.next_conn += 1;
        let base = self.rng.gen_range(MS..40 * MS);
        let jitter = self.rng.gen_range(1..20 * MS);
        self.latency.insert(conn, (base, jitter));
        conn
    }

    /// Sends something over `conn` from `from`, in order behind everything
    /// sent before on that connection and direction.
    fn send_over(&mut self, conn: u64, from: Side, ev: Ev) {
        let (base, jitter) = self.latency.get(&conn).copied().unwrap_or((MS, MS));
        let delay = base + self.rng.gen_range(0..jitter);
        let key = (conn, from as usize);
        let at = (self.now + delay).max(self.tail.get(&key).copied().unwrap_or(0));
        self.tail.insert(key, at);
        self.schedule_at(at, ev);
    }

    fn conn_carries(&self, conn: u64, from: Side) -> bool {
        conn >= self.live_from
            && !self
                .blackholed
                .get(&conn)
                .is_some_and(|dirs| dirs[from as usize])
    }

    fn fail(&self, msg: impl std::fmt::Display) -> String {
        format!(
            "seed {}: t={}ms: {msg}\n  client {:?}\n  server {:?}",
            self.seed,
            self.now / MS,
            self.ep[0].session.stats(),
            self.ep[1].session.stats()
        )
    }

    fn run(mut self) -> SimResult<Outcome> {
        let limit = 30 * 60 * SEC;
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > 5_000_000 {
                return Err(self.fail("did not terminate within 5 million steps"));
            }
            if self.done() {
                break;
            }
            if self.outcome.lost {
                return Ok(self.outcome);
            }
            let next_ev = self.events.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .ep
                .iter()
                .filter_map(|e| e.session.poll_timeout())
                .min()
                .map(|i| i.duration_since(self.base).as_micros() as u64);
            let next_reset = self.reset_at.filter(|_| !self.reset_done);
            let Some(next) = [next_ev, next_timer, next_reset]
                .into_iter()
                .flatten()
                .min()
            else {
                return Err(self.fail("deadlock: nothing scheduled and not done"));
            };
            self.now = self.now.max(next);
            if self.now > limit {
                return Err(self.fail("did not terminate within 30 virtual minutes"));
            }
            if next_reset.is_some_and(|t| t <= self.now) {
                self.reset_server()?;
            }
            // Timers.
            for side in [Side::Client, Side::Server] {
                let t = self.instant();
                let e = &mut self.ep[side as usize];
                if e.session.poll_timeout().is_some_and(|d| d <= t) {
                    match e.session.handle_timeout(t) {
                        Ok(()) => {}
                        Err(SessionError::PeerDead) => {
                            e.peer_dead += 1;
                            e.conn = None;
                            if side == Side::Client {
                                self.schedule_dial();
                            }
                        }
                        Err(err) => return Err(self.fail(format!("{side:?} timeout: {err}"))),
                    }
                }
            }
            // Due events.
            while let Some(Reverse((t, id))) = self.events.peek().copied() {
                if t > self.now {
                    break;
                }
                self.events.pop();
                if let Some(ev) = self.payloads.remove(&id) {
                    self.handle(ev)?;
                }
                if self.outcome.lost {
                    return Ok(self.outcome);
                }
            }
            self.pump(Side::Client)?;
            self.pump(Side::Server)?;
            self.check_bounds()?;
        }
        for e in &self.ep {
            let st = e.session.stats();
            self.outcome.retransmitted += st.retransmitted;
            self.outcome.duplicates += st.duplicates;
            self.outcome.peer_dead += e.peer_dead;
            self.outcome.backpressured += e.backpressured;
            self.outcome.writable += e.writable_events;
        }
        self.outcome.virtual_time = self.now;
        Ok(self.outcome)
    }

    fn done(&self) -> bool {
        self.ep.iter().all(|e| {
            let st = e.session.stats();
            e.next_send == e.total
                && self.ep[e.side.other() as usize].next_expected == e.total
                && st.backup_records == 0
        })
    }

    fn check_bounds(&self) -> SimResult<()> {
        for e in &self.ep {
            let st: SessionStats = e.session.stats();
            if st.backup_records > self.config.max_backup_records
                || st.backup_bytes > self.config.max_backup_bytes
            {
                return Err(self.fail(format!("{:?} backup over its bounds", e.side)));
            }
        }
        Ok(())
    }

    fn schedule_dial(&mut self) {
        if !self.dial_pending {
            self.dial_pending = true;
            let backoff = self.rng.gen_range(0..300 * MS);
            self.schedule(backoff, Ev::Dial);
        }
    }

    fn handle(&mut self, ev: Ev) -> SimResult<()> {
        let t = self.instant();
        match ev {
            Ev::Deliver { to, conn, rec } => {
                let e = &mut self.ep[to as usize];
                if e.conn != Some(conn) {
                    return Ok(()); // that transport is gone on this side
                }
                if let Err(err) = e.session.handle_record(rec, t) {
                    return Err(self.fail(format!("{to:?} handle_record: {err}")));
                }
            }
            Ev::Dial => {
                self.dial_pending = false;
                if self.ep[0].conn.is_some() || self.attempt.is_some() {
                    return Ok(());
                }
                if self.now < self.down_until {
                    // Connection refused / unreachable: try again later.
                    self.schedule_dial();
                    return Ok(());
                }
                self.dial()?;
            }
            Ev::Race { conn } => {
                if self.attempt == Some(conn) {
                    self.attempt = None;
                    self.dial()?;
                }
            }
            Ev::AttemptTimeout { conn } => {
                if self.attempt == Some(conn) {
                    self.attempt = None;
                    self.schedule_dial();
                }
            }
            Ev::Resume {
                conn,
                client_received,
            } => {
                if conn < self.live_from {
                    return Ok(()); // cut while in flight
                }
                if conn < self.server_latest {
                    // An older attempt: only the later one survives.
                    self.outcome.stale_refused += 1;
                    return Ok(());
                }
                if self.ep[1].conn.is_some() {
                    self.outcome.replaced += 1;
                }
                self.server_latest = conn;
                let server_received = self.snapshot(Side::Server);
                let must_lose = client_received > self.ep[1].session.stats().sent;
                match self.ep[1].session.connected(t, Some(client_received)) {
                    Ok(()) if must_lose => {
                        return Err(self.fail("server resumed although it cannot replay"))
                    }
                    Ok(()) => {}
                    Err(SessionError::Lost { reason }) if self.reset_done => {
                        self.note_lost(true, &reason)?;
                        return Ok(());
                    }
                    Err(err) => return Err(self.fail(format!("server connected: {err}"))),
                }
                self.ep[1].conn = Some(conn);
                if self.conn_carries(conn, Side::Server) {
                    self.send_over(
                        conn,
                        Side::Server,
                        Ev::Resumed {
                            conn,
                            server_received,
                        },
                    );
                }
            }
            Ev::Resumed {
                conn,
                server_received,
            } => {
                if self.attempt != Some(conn) || conn < self.live_from {
                    return Ok(());
                }
                self.attempt = None;
                let must_lose = server_received < self.ep[0].session.stats().acked;
                match self.ep[0].session.connected(t, Some(server_received)) {
                    Ok(()) if must_lose => {
                        return Err(self.fail("client resumed although it cannot replay"))
                    }
                    Ok(()) => {}
                    Err(SessionError::Lost { reason }) if self.reset_done => {
                        self.note_lost(true, &reason)?;
                        return Ok(());
                    }
                    Err(err) => return Err(self.fail(format!("client connected: {err}"))),
                }
                self.ep[0].conn = Some(conn);
            }
            Ev::Fault => self.fault(),
            Ev::AppTick(side) => {
                let e = &mut self.ep[side as usize];
                if e.next_send + e.credit < e.total {
                    e.credit += self.rng.gen_range(1..10);
                    let gap = self.rng.gen_range(0..80 * MS);
                    self.schedule(gap, Ev::AppTick(side));
                }
            }
        }
        Ok(())
    }

    fn note_lost(&mut self, lost: bool, reason: &str) -> SimResult<()> {
        let Some(must) = self.outcome.must_lose else {
            return Err(self.fail(format!("lost before the reset was resumed: {reason}")));
        };
        if lost != must {
            return Err(self.fail(format!("lost={lost} but must_lose={must}: {reason}")));
        }
        self.outcome.lost = lost;
        Ok(())
    }

    /// The `received` count `side` puts in Resume/Resumed: usually the
    /// true count, sometimes an older value that is still at least what the
    /// peer has heard (legal, and it makes the peer replay duplicates).
    fn snapshot(&mut self, side: Side) -> u64 {
        let i = side as usize;
        let actual = self.ep[i].session.received_count();
        let floor = self.reported[i].min(actual);
        // Not in the reset scenario: there the count must be exact for the
        // Lost verdict to be predictable (a stale count of 0 from a side
        // that never acknowledged is indistinguishable from a new session).
        let snap = if self.reset_at.is_none() && self.rng.gen_bool(0.3) {
            self.rng.gen_range(floor..=actual)
        } else {
            actual
        };
        self.reported[i] = self.reported[i].max(snap);
        snap
    }

    fn dial(&mut self) -> SimResult<()> {
        let conn = self.new_conn();
        self.attempt = Some(conn);
        // The old transport is no longer fed to the session: snapshot now.
        let client_received = self.snapshot(Side::Client);
        if self.reset_done && self.outcome.must_lose.is_none() {
            // First resume after the server restarted with an empty session.
            let must = client_received > 0 || self.ep[0].session.stats().acked > 0;
            self.outcome.must_lose = Some(must);
        }
        if self.conn_carries(conn, Side::Client) {
            self.send_over(
                conn,
                Side::Client,
                Ev::Resume {
                    conn,
                    client_received,
                },
            );
        }
        self.schedule(2 * SEC, Ev::AttemptTimeout { conn });
        if self.rng.gen_bool(0.15) {
            let d = self.rng.gen_range(0..60 * MS);
            self.schedule(d, Ev::Race { conn });
        }
        Ok(())
    }

    fn cut(&mut self) {
        self.live_from = self.next_conn;
        for e in &mut self.ep {
            if e.conn.take().is_some() {
                e.session.disconnected();
            }
        }
        self.attempt = None;
    }

    fn fault(&mut self) {
        if self.faults_left == 0 {
            return;
        }
        self.faults_left -= 1;
        self.outcome.faults += 1;
        match self.rng.gen_range(0..10) {
            0..=5 => {
                // Cut: both sides see the socket fail; down for a while,
                // sometimes longer than dead_after.
                self.cut();
                let down = if self.rng.gen_bool(0.3) {
                    self.outcome.long_outages += 1;
                    self.rng.gen_range(4 * SEC..9 * SEC)
                } else {
                    self.rng.gen_range(0..SEC)
                };
                self.down_until = self.now + down;
                self.schedule_dial();
            }
            _ => {
                // Black hole: records on the current connections silently
                // vanish in one or both directions; nobody is told.
                let dirs = match self.rng.gen_range(0..3) {
                    0 => [true, false],
                    1 => [false, true],
                    _ => [true, true],
                };
                for conn in self.live_from..self.next_conn {
                    let entry = self.blackholed.entry(conn).or_default();
                    entry[0] |= dirs[0];
                    entry[1] |= dirs[1];
                }
            }
        }
        let gap = self.fault_gap();
        self.schedule(gap, Ev::Fault);
    }

    fn reset_server(&mut self) -> SimResult<()> {
        self.reset_done = true;
        self.cut();
        let total = self.ep[1].total;
        self.ep[1] = Endpoint::new(Side::Server, self.config.clone(), total);
        self.server_latest = 0;
        self.down_until = self.now + self.rng.gen_range(0..SEC);
        let d = self.rng.gen_range(0..50 * MS);
        self.schedule(d, Ev::AppTick(Side::Server));
        self.schedule_dial();
        Ok(())
    }

    /// Application and transport work for one side at the current time.
    fn pump(&mut self, side: Side) -> SimResult<()> {
        let t = self.instant();
        let (seed, max) = (self.seed, self.max_payload);
        let i = side as usize;
        // Events.
        while let Some(ev) = self.ep[i].session.poll_event() {
            match ev {
                SessionEvent::Writable => {
                    self.ep[i].blocked = false;
                    self.ep[i].writable_events += 1;
                }
                other => return Err(self.fail(format!("{side:?} unexpected event {other:?}"))),
            }
        }
        // Application sends until its credit runs out or backpressure.
        loop {
            let e = &mut self.ep[i];
            if e.blocked || e.credit == 0 || e.next_send == e.total {
                break;
            }
            let payload = make_payload(seed, side, e.next_send, max);
            match e.session.send(payload) {
                Ok(()) => {
                    e.next_send += 1;
                    e.credit -= 1;
                }
                Err(SendError::Backpressure) => {
                    e.blocked = true;
                    e.backpressured += 1;
                }
                Err(err) => return Err(self.fail(format!("{side:?} send: {err}"))),
            }
        }
        // Deliveries.
        while let Some(payload) = self.ep[i].session.poll_received() {
            let peer = side.other();
            let expected = self.ep[i].next_expected;
            let want = make_payload(seed, peer, expected, max);
            if payload != want {
                let got = payload
                    .get(..8)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()));
                return Err(self.fail(format!(
                    "{side:?} expected payload {expected} ({} bytes), got #{got:?} ({} bytes)",
                    want.len(),
                    payload.len()
                )));
            }
            self.ep[i].next_expected += 1;
            if self.ep[i].next_expected > self.ep[peer as usize].total {
                return Err(self.fail(format!("{side:?} received more than was sent")));
            }
        }
        // Transmits.
        let Some(conn) = self.ep[i].conn else {
            if self.ep[i].session.poll_transmit(t).is_some() {
                return Err(self.fail(format!("{side:?} transmits while disconnected")));
            }
            return Ok(());
        };
        while let Some(tx) = self.ep[i].session.poll_transmit(t) {
            if let TransmitKind::Ack { received } | TransmitKind::Heartbeat { received } = tx.kind()
            {
                self.reported[i] = self.reported[i].max(received);
            }
            if self.conn_carries(conn, side) {
                let rec = tx.to_bytes();
                self.send_over(
                    conn,
                    side,
                    Ev::Deliver {
                        to: side.other(),
                        conn,
                        rec,
                    },
                );
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64, reset: bool) -> SimResult<Outcome> {
    match std::panic::catch_unwind(|| Sim::new(seed, reset).run()) {
        Ok(result) => result,
        Err(_) => Err(format!("seed {seed}: panicked (reset scenario: {reset})")),
    }
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

#[test]
fn sim_exactly_once_in_order_through_faults() {
    let started = Instant::now();
    let mut totals = Outcome::default();
    let mut max_vt = 0;
    let seeds = seeds(2000);
    for &seed in &seeds {
        let out = run_seed(seed, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.lost, "seed {seed}: lost");
        totals.faults += out.faults;
        totals.peer_dead += out.peer_dead;
        totals.backpressured += out.backpressured;
        totals.writable += out.writable;
        totals.replaced += out.replaced;
        totals.stale_refused += out.stale_refused;
        totals.long_outages += out.long_outages;
        totals.retransmitted += out.retransmitted;
        totals.duplicates += out.duplicates;
        max_vt = max_vt.max(out.virtual_time);
    }
    eprintln!(
        "sim: {} seeds in {:?}: {} faults, {} dead-peer timeouts, {} backpressure waits, \
         {} writable events, {} outages > dead_after, {} transports replaced, \
         {} stale attempts refused, {} retransmitted, {} duplicates dropped, \
         longest run {} virtual s",
        seeds.len(),
        started.elapsed(),
        totals.faults,
        totals.peer_dead,
        totals.backpressured,
        totals.writable,
        totals.long_outages,
        totals.replaced,
        totals.stale_refused,
        totals.retransmitted,
        totals.duplicates,
        max_vt / SEC
    );
    if seeds.len() >= 100 {
        // The scenarios must actually exercise the hard paths.
        assert!(totals.peer_dead > 0 && totals.backpressured > 0 && totals.retransmitted > 0);
        assert!(totals.writable > 0 && totals.long_outages > 0 && totals.replaced > 0);
        assert!(totals.duplicates > 0);
    }
}

#[test]
fn sim_server_reset_loses_session_only_when_it_must() {
    let mut lost = 0;
    let mut survived = 0;
    let seeds = seeds(500);
    for &seed in &seeds {
        let out = run_seed(seed, true).unwrap_or_else(|e| panic!("{e}"));
        match out.must_lose {
            Some(true) => {
                assert!(out.lost, "seed {seed}: must lose but did not");
                lost += 1;
            }
            Some(false) => {
                assert!(!out.lost, "seed {seed}: lost without cause");
                survived += 1;
            }
            None => assert!(!out.lost, "seed {seed}: lost before any resume"),
        }
    }
    eprintln!(
        "sim reset: {} seeds: {lost} lost (as they must), {survived} resumed a fresh server",
        seeds.len()
    );
    if seeds.len() >= 100 {
        assert!(lost > seeds.len() / 2);
    }
}
