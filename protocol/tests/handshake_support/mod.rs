//! Shared helpers for the handshake and attack tests: an in-memory harness
//! that drives a client and a server machine against each other with a
//! seeded RNG and fake instants, plus hand-written peers built from the
//! public primitives (for tampering, forging and man-in-the-middle tests).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use distant_protocol::auth::{AuthMessage, StaticKey};
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::{
    Encryption, KeyExchange, KeySchedule, Opener, Sealer, Side, TranscriptHash,
};
use distant_protocol::frame::FrameCodec;
use distant_protocol::handshake::*;
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_bytes::ByteBuf;
use tokio_util::codec::Decoder;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn key(seed: u8) -> StaticKey {
    StaticKey::from_bytes([seed; 32])
}

pub fn client_cfg(key: Option<StaticKey>) -> ClientConfig {
    ClientConfig {
        static_key: key,
        ..ClientConfig::default()
    }
}

pub fn server_cfg(key: Option<StaticKey>) -> ServerConfig {
    ServerConfig {
        static_key: key,
        ..ServerConfig::default()
    }
}

/// Splits a transmit (one or more complete frames) into bodies, with the
/// receiver's cap.
pub fn bodies(mut frames: BytesMut, cap: usize) -> Vec<BytesMut> {
    let mut codec = FrameCodec::new(cap);
    let mut out = Vec::new();
    while let Some(b) = codec.decode(&mut frames).expect("well-formed frame") {
        out.push(b);
    }
    assert!(frames.is_empty(), "partial frame in a transmit");
    out
}

pub fn body(frame: BytesMut) -> BytesMut {
    let mut v = bodies(frame, usize::MAX);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

/// What a harness does with frames in flight.
pub type Tamper = Box<dyn FnMut(Dir, BytesMut) -> Option<BytesMut>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    C2S,
    S2C,
}

pub struct Harness {
    pub client: ClientHandshake,
    pub server: ServerHandshake,
    pub base: Instant,
    pub now: Instant,
    pub client_err: Option<HandshakeError>,
    pub server_err: Option<HandshakeError>,
    pub client_events: Vec<HandshakeEvent>,
    pub server_events: Vec<HandshakeEvent>,
    /// Bodies delivered, with the time they were sent.
    pub s2c_log: Vec<(Duration, BytesMut)>,
    pub c2s_log: Vec<(Duration, BytesMut)>,
    pub store: Option<StoredSession>,
    pub tamper: Option<Tamper>,
}

impl Harness {
    pub fn new(cc: ClientConfig, connect: Connect, sc: ServerConfig, seed: u64) -> Self {
        let mut r = rng(seed);
        let base = Instant::now();
        let server = ServerHandshake::new(Arc::new(sc), &mut r, base);
        let client = ClientHandshake::new(cc, connect, &mut r, base);
        Self {
            client,
            server,
            base,
            now: base,
            client_err: None,
            server_err: None,
            client_events: Vec::new(),
            server_events: Vec::new(),
            s2c_log: Vec::new(),
            c2s_log: Vec::new(),
            store: None,
            tamper: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves frames and events until nothing changes.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(frame) = self.client.poll_transmit() {
                progress = true;
                for b in bodies(frame, self.server.max_frame_len()) {
                    let b = match self.tamper.as_mut() {
                        Some(t) => match t(Dir::C2S, b) {
                            Some(b) => b,
                            None => continue,
                        },
                        None => b,
                    };
                    self.c2s_log.push((self.elapsed(), b.clone()));
                    if self.server_err.is_none() && !self.server.is_established() {
                        if let Err(e) = self.server.handle_frame(b, self.now) {
                            self.server_err = Some(e);
                        }
                    }
                }
            }
            while let Some(frame) = self.server.poll_transmit() {
                progress = true;
                for b in bodies(frame, self.client.max_frame_len()) {
                    let b = match self.tamper.as_mut() {
                        Some(t) => match t(Dir::S2C, b) {
                            Some(b) => b,
                            None => continue,
                        },
                        None => b,
                    };
                    self.s2c_log.push((self.elapsed(), b.clone()));
                    if self.client_err.is_none() && !self.client.is_established() {
                        if let Err(e) = self.client.handle_frame(b, self.now) {
                            self.client_err = Some(e);
                        }
                    }
                }
            }
            while let Some(ev) = self.client.poll_event() {
                progress = true;
                self.client_events.push(ev);
            }
            while let Some(ev) = self.server.poll_event() {
                progress = true;
                if matches!(ev, HandshakeEvent::ResumeRequested(_)) {
                    if let Err(e) = self.server.provide_session(self.store.take()) {
                        self.server_err = Some(e);
                    }
                }
                self.server_events.push(ev);
            }
            if !progress {
                break;
            }
        }
    }

    /// Advances the clock to `at` (offset from base), firing timeouts.
    pub fn advance_to(&mut self, at: Duration) {
        self.now = self.base + at;
        if self.server_err.is_none() {
            if let Err(e) = self.server.handle_timeout(self.now) {
                self.server_err = Some(e);
            }
        }
        if self.client_err.is_none() {
            if let Err(e) = self.client.handle_timeout(self.now) {
                self.client_err = Some(e);
            }
        }
        self.pump();
    }

    /// Pumps, then jumps from deadline to deadline until both sides are
    /// done (established or failed) or no deadline is left.
    pub fn run(&mut self) {
        self.pump();
        for _ in 0..100 {
            let c_done = self.client_err.is_some() || self.client.is_established();
            let s_done = self.server_err.is_some() || self.server.is_established();
            if c_done && s_done {
                return;
            }
            let next = [
                if s_done {
                    None
                } else {
                    self.server.poll_timeout()
                },
                if c_done {
                    None
                } else {
                    self.client.poll_timeout()
                },
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) => self.advance_to(t.max(self.now) - self.base),
                None => return,
            }
        }
    }

    pub fn established(self) -> (Established, Established) {
        assert!(self.client_err.is_none(), "client: {:?}", self.client_err);
        assert!(self.server_err.is_none(), "server: {:?}", self.server_err);
        let c = self.client.into_established().expect("client established");
        let s = self.server.into_established().expect("server established");
        (c, s)
    }
}

/// Sends a few records each way over an established pair.
pub fn exchange(c: &mut Established, s: &mut Established) {
    for i in 0..3u8 {
        let msg = vec![i; 700 * usize::from(i)];
        let mut out = BytesMut::new();
        c.sealer.seal_into(&[&msg], &mut out).unwrap();
        assert_eq!(&s.opener.open(body(out)).unwrap()[..], &msg[..]);
        let mut out = BytesMut::new();
        s.sealer.seal_into(&[b"re: ", &msg], &mut out).unwrap();
        let got = c.opener.open(body(out)).unwrap();
        assert_eq!(&got[..4], b"re: ");
        assert_eq!(&got[4..], &msg[..]);
    }
}

// ---------------------------------------------------------------------------
// Hand-written peers
// ---------------------------------------------------------------------------

/// One side's record layer after a hand-driven key exchange.
pub struct ManualPeer {
    pub sealer: Sealer,
    pub opener: Opener,
    pub th: TranscriptHash,
    pub keys: KeySchedule,
}

impl ManualPeer {
    pub fn seal(&mut self, msg: &AuthMessage) -> BytesMut {
        let mut out = BytesMut::new();
        self.sealer.seal_into(&[&msg.to_vec()], &mut out).unwrap();
        out
    }

    /// Opens a transmit containing exactly one sealed record.
    pub fn open(&mut self, frame: BytesMut) -> Result<AuthMessage, String> {
        let content = self.opener.open(body(frame)).map_err(|e| e.to_string())?;
        AuthMessage::from_slice(&content).map_err(|e| e.to_string())
    }
}

/// A hand-driven server: its Offer is ready; feed it the client's Choice.
pub struct ManualServer {
    pub kx: KeyExchange,
    pub salt: [u8; 32],
    pub offer: Offer,
    pub offer_body: BytesMut,
}

impl ManualServer {
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        let kx = KeyExchange::generate(rng);
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        let offer = Offer {
            encryption: vec!["xchacha20poly1305".into()],
            compression: CompressionAlgorithm::ALL
                .iter()
                .map(|a| a.name().into())
                .collect(),
            key_exchange: "p256".into(),
            public_key: ByteBuf::from(kx.public_key()),
            salt: ByteBuf::from(salt.to_vec()),
            software: "manual-server".into(),
        };
        let offer_body = encode_plain(&PlainMessage::Offer(offer.clone()));
        Self {
            kx,
            salt,
            offer,
            offer_body,
        }
    }

    pub fn offer_frame(&self) -> BytesMut {
        frame_of(&self.offer_body)
    }

    pub fn accept(&self, choice_body: &[u8]) -> (Choice, ManualPeer) {
        let PlainMessage::Choice(choice) = decode_plain(choice_body).unwrap() else {
            panic!("not a choice")
        };
        let z = self.kx.agree(&choice.public_key).unwrap();
        let th = TranscriptHash::compute(&self.offer_body, choice_body);
        let keys = KeySchedule::derive(&z[..], &self.salt, &choice.salt, th);
        let peer = ManualPeer {
            sealer: keys.sealer(Side::Server, choice.encryption, choice.compression),
            opener: keys.opener(
                Side::Server,
                choice.encryption,
                choice.compression.algorithm,
            ),
            th,
            keys,
        };
        (choice, peer)
    }
}

/// A hand-driven client answering `offer_body` with a Choice.
pub fn manual_client(
    offer_body: &[u8],
    connect: ConnectRequest,
    rng: &mut ChaCha20Rng,
) -> (BytesMut, ManualPeer) {
    let PlainMessage::Offer(offer) = decode_plain(offer_body).unwrap() else {
        panic!("not an offer")
    };
    let kx = KeyExchange::generate(rng);
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let choice = Choice {
        encryption: Encryption::XChaCha20Poly1305,
        compression: Compression::default(),
        public_key: ByteBuf::from(kx.public_key()),
        salt: ByteBuf::from(salt.to_vec()),
        connect,
        software: "manual-client".into(),
    };
    let choice_body = encode_plain(&PlainMessage::Choice(choice.clone()));
    let z = kx.agree(&offer.public_key).unwrap();
    let th = TranscriptHash::compute(offer_body, &choice_body);
    let keys = KeySchedule::derive(&z[..], &offer.salt, &salt, th);
    let peer = ManualPeer {
        sealer: keys.sealer(Side::Client, choice.encryption, choice.compression),
        opener: keys.opener(
            Side::Client,
            choice.encryption,
            choice.compression.algorithm,
        ),
        th,
        keys,
    };
    (frame_of(&choice_body), peer)
}

pub fn frame_of(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    distant_protocol::frame::encode_frame(body, &mut out).unwrap();
    out
}

/// Drains a machine's transmits into a list of bodies.
pub fn drain_client(c: &mut ClientHandshake) -> Vec<BytesMut> {
    let mut v = Vec::new();
    while let Some(f) = c.poll_transmit() {
        v.extend(bodies(f, usize::MAX));
    }
    v
}

pub fn drain_server(s: &mut ServerHandshake) -> Vec<BytesMut> {
    let mut v = Vec::new();
    while let Some(f) = s.poll_transmit() {
        v.extend(bodies(f, usize::MAX));
    }
    v
}
