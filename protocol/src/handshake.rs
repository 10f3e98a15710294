//! Codec derivation, then authentication or resumption, as sans-IO client
//! and server state machines (PROTOCOL.md §2–§3).
//!
//! [`ClientHandshake`] and [`ServerHandshake`] take frame bodies and the
//! current [`Instant`] in, and hand complete frames ([`poll_transmit`]),
//! events ([`poll_event`]) and deadlines ([`poll_timeout`]) out. Once a
//! machine [`is_established`], [`into_established`] yields the per-direction
//! [`Sealer`]/[`Opener`] (their counters continue from the handshake), the
//! session id and the one-time password material for the session layer.
//!
//! This module also owns the plaintext handshake frames ([`Offer`],
//! [`Choice`], [`Alert`]) and their encoding, which are public so that
//! tests and tools can play a hand-written peer (e.g. a man in the middle).
//!
//! [`poll_transmit`]: ClientHandshake::poll_transmit
//! [`poll_event`]: ClientHandshake::poll_event
//! [`poll_timeout`]: ClientHandshake::poll_timeout
//! [`is_established`]: ClientHandshake::is_established
//! [`into_established`]: ClientHandshake::into_established

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::auth::{
    proof_eq, static_key_question, AuthMessage, AuthMethod, Otp, SessionId, StaticKey,
};
use crate::compress::{Compression, CompressionAlgorithm};
use crate::crypto::{
    CryptoError, Encryption, KeyExchange, KeySchedule, Opener, Sealer, Side, TranscriptHash,
};
use crate::frame::{self, MAX_FRAME, MAX_FRAME_PREAUTH, MAX_RECORD_CONTENT};
use crate::PROTOCOL_VERSION;

/// The 4 bytes that open every plaintext handshake frame.
pub const MAGIC: [u8; 4] = *b"DSTN";
/// `magic || u16 major || u16 minor || u8 kind`.
pub const PLAIN_HEADER_LEN: usize = 9;
/// Length of each side's random salt.
pub const SALT_LEN: usize = 32;
/// The only key exchange of protocol 1.
pub const KEY_EXCHANGE_P256: &str = "p256";
/// How long a client waits for the whole handshake to complete.
pub const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most one-time passwords a resuming client may present.
pub const MAX_RESUME_CANDIDATES: usize = 2;

// ---------------------------------------------------------------------------
// Plaintext frames (§2.1)
// ---------------------------------------------------------------------------

/// `kind` byte of a plaintext handshake frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PlainKind {
    Offer = 1,
    Choice = 2,
    Alert = 3,
}

/// Server → client: what the server supports, its ephemeral key and salt.
/// The lists are strings so that a newer peer's unknown options decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub encryption: Vec<String>,
    pub compression: Vec<String>,
    pub key_exchange: String,
    pub public_key: ByteBuf,
    pub salt: ByteBuf,
    pub software: String,
}

/// Client → server: the chosen options, its ephemeral key and salt, and
/// whether this is a new session or a resumption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub encryption: Encryption,
    pub compression: Compression,
    pub public_key: ByteBuf,
    pub salt: ByteBuf,
    pub connect: ConnectRequest,
    pub software: String,
}

/// The `connect` field of a [`Choice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectRequest {
    New,
    Resume { session_id: SessionId },
}

/// Either direction: a sentence for a person, then the sender closes.
/// Unauthenticated: shown, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub message: String,
}

/// A decoded plaintext handshake frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainMessage {
    Offer(Offer),
    Choice(Choice),
    Alert(Alert),
}

impl PlainMessage {
    fn kind(&self) -> PlainKind {
        match self {
            Self::Offer(_) => PlainKind::Offer,
            Self::Choice(_) => PlainKind::Choice,
            Self::Alert(_) => PlainKind::Alert,
        }
    }
}

/// Encodes a plaintext frame *body* (no length prefix) with our version.
pub fn encode_plain(msg: &PlainMessage) -> BytesMut {
    encode_plain_versioned(msg, PROTOCOL_VERSION)
}

/// Encodes a plaintext frame body claiming `version` (tests use this to
/// play a peer of another version).
pub fn encode_plain_versioned(msg: &PlainMessage, version: (u16, u16)) -> BytesMut {
    let content = match msg {
        PlainMessage::Offer(m) => rmp_serde::to_vec_named(m),
        PlainMessage::Choice(m) => rmp_serde::to_vec_named(m),
        PlainMessage::Alert(m) => rmp_serde::to_vec_named(m),
    }
    // Serialising these plain structs into a Vec cannot fail.
    .unwrap_or_default();
    let mut body = BytesMut::with_capacity(PLAIN_HEADER_LEN + content.len());
    body.extend_from_slice(&MAGIC);
    body.put_u16(version.0);
    body.put_u16(version.1);
    body.put_u8(msg.kind() as u8);
    body.extend_from_slice(&content);
    body
}

/// Decodes a plaintext frame body.
///
/// Wrong magic is [`HandshakeError::NotDistant`]. An `Alert` decodes
/// whatever its version (so version-mismatch alerts stay readable); any
/// other kind with a different major version is
/// [`HandshakeError::VersionMismatch`].
pub fn decode_plain(body: &[u8]) -> Result<PlainMessage, HandshakeError> {
    if body.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(HandshakeError::NotDistant);
    }
    let (Some(major), Some(minor), Some(&kind)) = (
        body.get(4..6)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_be_bytes),
        body.get(6..8)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_be_bytes),
        body.get(8),
    ) else {
        return Err(HandshakeError::Protocol(format!(
            "handshake frame of {} bytes is shorter than its {PLAIN_HEADER_LEN}-byte header",
            body.len()
        )));
    };
    let content = body.get(PLAIN_HEADER_LEN..).unwrap_or_default();
    let bad = |what: &str, e: rmp_serde::decode::Error| {
        HandshakeError::Protocol(format!("malformed {what}: {e}"))
    };
    if kind == PlainKind::Alert as u8 {
        return rmp_serde::from_slice(content)
            .map(PlainMessage::Alert)
            .map_err(|e| bad("Alert", e));
    }
    if major != PROTOCOL_VERSION.0 {
        return Err(HandshakeError::VersionMismatch {
            peer: (major, minor),
            ours: PROTOCOL_VERSION,
        });
    }
    match kind {
        1 => rmp_serde::from_slice(content)
            .map(PlainMessage::Offer)
            .map_err(|e| bad("Offer", e)),
        2 => rmp_serde::from_slice(content)
            .map(PlainMessage::Choice)
            .map_err(|e| bad("Choice", e)),
        other => Err(HandshakeError::Protocol(format!(
            "unknown handshake frame kind {other}"
        ))),
    }
}

/// Prefixes a body with its length.
fn framed(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(frame::LENGTH_PREFIX + body.len());
    // Handshake bodies are tiny; encode_frame only fails beyond MAX_FRAME.
    let _ = frame::encode_frame(body, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Errors, events, configuration, results
// ---------------------------------------------------------------------------

/// Why a handshake failed. Never contains secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandshakeError {
    #[error("version mismatch: peer speaks protocol {}.{}, we speak {}.{}", .peer.0, .peer.1, .ours.0, .ours.1)]
    VersionMismatch { peer: (u16, u16), ours: (u16, u16) },
    #[error("the peer is not a distant endpoint")]
    NotDistant,
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("session rejected: {0}")]
    SessionRejected(String),
    #[error("handshake timed out: {0}")]
    Timeout(String),
    #[error("protocol error during the handshake: {0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Crypto {
        context: &'static str,
        #[source]
        source: CryptoError,
    },
    #[error("refused: {0}")]
    Refused(String),
}

impl From<CryptoError> for HandshakeError {
    fn from(source: CryptoError) -> Self {
        Self::Crypto {
            context: "handshake cryptography failed",
            source,
        }
    }
}

/// Coarse classification of a [`HandshakeError`] for callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeErrorKind {
    VersionMismatch,
    NotDistant,
    AuthFailed,
    /// Resume refused: unknown or expired session, or a bad proof.
    SessionRejected,
    Timeout,
    Protocol,
    Crypto,
    /// The peer sent an Alert, or offered/chose nothing we accept.
    Refused,
}

impl HandshakeError {
    pub fn kind(&self) -> HandshakeErrorKind {
        match self {
            Self::VersionMismatch { .. } => HandshakeErrorKind::VersionMismatch,
            Self::NotDistant => HandshakeErrorKind::NotDistant,
            Self::AuthFailed(_) => HandshakeErrorKind::AuthFailed,
            Self::SessionRejected(_) => HandshakeErrorKind::SessionRejected,
            Self::Timeout(_) => HandshakeErrorKind::Timeout,
            Self::Protocol(_) => HandshakeErrorKind::Protocol,
            Self::Crypto { .. } => HandshakeErrorKind::Crypto,
            Self::Refused(_) => HandshakeErrorKind::Refused,
        }
    }
}

/// Something worth logging or acting on during a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeEvent {
    /// Informational text from the server.
    Info(String),
    /// (Server) the client asks to resume this session: look it up and call
    /// [`ServerHandshake::provide_session`].
    ResumeRequested(SessionId),
    /// An authentication method failed; the next one (if any) follows.
    MethodFailed { method: String, reason: String },
    /// (Client) the server asked to confirm something; this implementation
    /// answers `valid: false`.
    VerifyRequested { kind: String, text: String },
}

/// Client settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// The key for `static_key`; `None` = do not offer that method.
    pub static_key: Option<StaticKey>,
    /// Accept the `none` method (only for the manager's Unix socket).
    pub accept_none_auth: bool,
    /// Choose `none` encryption when the server offers it (only for the
    /// manager's Unix socket); otherwise only XChaCha20-Poly1305 is accepted.
    pub allow_unencrypted: bool,
    /// Wanted compression; falls back to none if the server lacks it.
    pub compression: Compression,
    /// Sent to the server, e.g. `distant-bridge 0.1.0`.
    pub software: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            static_key: None,
            accept_none_auth: false,
            allow_unencrypted: false,
            compression: Compression::default(),
            software: format!("distant-bridge {}", crate::SOFTWARE_VERSION),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("static_key", &self.static_key)
            .field("accept_none_auth", &self.accept_none_auth)
            .field("allow_unencrypted", &self.allow_unencrypted)
            .field("compression", &self.compression)
            .field("software", &self.software)
            .finish()
    }
}

/// Server (listener) settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The key for `static_key`; `None` = do not offer that method.
    pub static_key: Option<StaticKey>,
    /// Offer the `none` method (only for the manager's Unix socket).
    pub allow_none_auth: bool,
    /// Offer `none` encryption (only for the manager's Unix socket).
    pub allow_unencrypted: bool,
    /// Compression algorithms offered, in order.
    pub compression_offer: Vec<CompressionAlgorithm>,
    /// Delay before reporting a failed method (default 1 s).
    pub failure_delay: Duration,
    /// Time allowed from accept to authenticated (default 10 s).
    pub preauth_timeout: Duration,
    /// Sent to the client, e.g. `distant-server 0.1.0`.
    pub software: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            static_key: None,
            allow_none_auth: false,
            allow_unencrypted: false,
            compression_offer: CompressionAlgorithm::ALL.to_vec(),
            failure_delay: Duration::from_secs(1),
            preauth_timeout: Duration::from_secs(10),
            software: format!("distant-server {}", crate::SOFTWARE_VERSION),
        }
    }
}

/// What a client connects for.
#[derive(Clone, Debug)]
pub enum Connect {
    New,
    Resume {
        session_id: SessionId,
        /// 1 or 2 candidate OTPs, most recent first.
        otps: Vec<Otp>,
        /// Data records received from the server so far.
        received: u64,
    },
}

/// What the server's keychain holds for a resumable session.
#[derive(Clone, Debug)]
pub struct StoredSession {
    pub otp: Otp,
    /// Data records the server has received from the client.
    pub received: u64,
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    pub sealer: Sealer,
    /// Already set to [`MAX_RECORD_CONTENT`].
    pub opener: Opener,
    pub session_id: SessionId,
    pub kind: EstablishedKind,
    pub peer_software: String,
}

/// New session or resumed one, with the OTP material.
#[derive(Debug, Clone)]
pub enum EstablishedKind {
    /// A new session; `otp` is `otp_0` of this connection.
    New { otp: Otp },
    /// A resumed session.
    Resumed {
        /// Data records the peer says it has received from us.
        peer_received: u64,
        /// Index of the client candidate OTP the server accepted.
        matched: usize,
        /// The rotated OTP (`otp'`). Client: adopt now, keep the matched
        /// one as second candidate. Server: adopt once the first phase-3
        /// record of this connection arrives.
        next_otp: Otp,
    },
}

// ---------------------------------------------------------------------------
// Shared machinery
// ---------------------------------------------------------------------------

/// Record layer and buffers common to both machines.
struct Core {
    side: Side,
    kx: KeyExchange,
    salt: [u8; SALT_LEN],
    keys: Option<KeySchedule>,
    sealer: Option<Sealer>,
    opener: Option<Opener>,
    transmit: VecDeque<BytesMut>,
    events: VecDeque<HandshakeEvent>,
    peer_software: String,
    failed: bool,
    /// The error the handshake failed with; every later call returns it
    /// again (as rustls does), so a caller that retries learns the cause.
    failure: Option<HandshakeError>,
}

impl Core {
    fn new(side: Side, rng: &mut (impl CryptoRng + RngCore)) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        Self {
            side,
            kx: KeyExchange::generate(rng),
            salt,
            keys: None,
            sealer: None,
            opener: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            peer_software: String::new(),
            failed: false,
            failure: None,
        }
    }

    fn install_keys(
        &mut self,
        peer_public: &[u8],
        peer_salt: &[u8],
        offer_body: &[u8],
        choice_body: &[u8],
        encryption: Encryption,
        compression: Compression,
    ) -> Result<(), HandshakeError> {
        if peer_salt.len() != SALT_LEN {
            return Err(HandshakeError::Protocol(format!(
                "the peer's salt is {} bytes, expected {SALT_LEN}",
                peer_salt.len()
            )));
        }
        let z = self
            .kx
            .agree(peer_public)
            .map_err(|source| HandshakeError::Crypto {
                context: "key exchange failed",
                source,
            })?;
        let th = TranscriptHash::compute(offer_body, choice_body);
        let (server_salt, client_salt) = match self.side {
            Side::Server => (&self.salt[..], peer_salt),
            Side::Client => (peer_salt, &self.salt[..]),
        };
        let keys = KeySchedule::derive(&z[..], server_salt, client_salt, th);
        self.sealer = Some(keys.sealer(self.side, encryption, compression));
        self.opener = Some(keys.opener(self.side, encryption, compression.algorithm));
        self.keys = Some(keys);
        Ok(())
    }

    fn th(&self) -> TranscriptHash {
        self.keys
            .as_ref()
            .map(|k| *k.transcript_hash())
            .unwrap_or(TranscriptHash([0; 32]))
    }

    fn queue_plain(&mut self, msg: &PlainMessage) {
        let body = encode_plain(msg);
        self.transmit.push_back(framed(&body));
    }

    fn queue_alert(&mut self, message: impl Into<String>) {
        self.queue_plain(&PlainMessage::Alert(Alert {
            message: message.into(),
        }));
    }

    fn queue_sealed(&mut self, msg: &AuthMessage) -> Result<(), HandshakeError> {
        let Some(sealer) = self.sealer.as_mut() else {
            return Err(HandshakeError::Protocol(
                "internal: no keys to seal with".into(),
            ));
        };
        let mut out = BytesMut::new();
        sealer
            .seal_into(&[&msg.to_vec()], &mut out)
            .map_err(|source| HandshakeError::Crypto {
                context: "could not seal a handshake record",
                source,
            })?;
        self.transmit.push_back(out);
        Ok(())
    }

    /// Sealed `Error{fatal}` if we have keys, plaintext Alert otherwise.
    fn queue_fatal(&mut self, text: &str) {
        if self.sealer.is_some() {
            let _ = self.queue_sealed(&AuthMessage::Error {
                fatal: true,
                text: text.to_owned(),
            });
        } else {
            self.queue_alert(text);
        }
    }

    fn open(&mut self, body: BytesMut) -> Result<Bytes, CryptoError> {
        match self.opener.as_mut() {
            Some(opener) => opener.open(body),
            None => Err(CryptoError::Malformed("no keys yet".into())),
        }
    }

    fn decode_auth(content: &[u8]) -> Result<AuthMessage, HandshakeError> {
        AuthMessage::from_slice(content)
            .map_err(|e| HandshakeError::Protocol(format!("malformed authentication message: {e}")))
    }

    fn fail<T>(&mut self, err: HandshakeError) -> Result<T, HandshakeError> {
        self.failed = true;
        self.failure.get_or_insert_with(|| err.clone());
        tracing::debug!(side = ?self.side, error = %err, "handshake failed");
        Err(err)
    }

    fn take_established(
        &mut self,
        session_id: SessionId,
        kind: EstablishedKind,
    ) -> Option<Box<Established>> {
        let mut sealer = self.sealer.take()?;
        let mut opener = self.opener.take()?;
        sealer.set_max_content(MAX_RECORD_CONTENT);
        opener.set_max_content(MAX_RECORD_CONTENT);
        Some(Box::new(Established {
            sealer,
            opener,
            session_id,
            kind,
            peer_software: std::mem::take(&mut self.peer_software),
        }))
    }
}

fn already_failed() -> HandshakeError {
    HandshakeError::Protocol("the handshake already failed or finished".into())
}

impl Core {
    /// What a call after the end returns: the original failure, if any.
    fn after_end(&self) -> HandshakeError {
        self.failure.clone().unwrap_or_else(already_failed)
    }
}

fn unexpected(msg: &AuthMessage, state: &str) -> HandshakeError {
    HandshakeError::Protocol(format!("unexpected {} message while {state}", msg.name()))
}

fn names<T: fmt::Display>(items: &[T]) -> String {
    let v: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("[{}]", v.join(", "))
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum ClientState {
    AwaitOffer,
    AwaitMethods,
    /// `current` = index into `selected` of the method the server started.
    AwaitAuth {
        current: Option<usize>,
    },
    AwaitResumed,
    Established,
}

/// The client side of a handshake (sans-IO).
pub struct ClientHandshake {
    config: ClientConfig,
    connect: Connect,
    core: Box<Core>,
    state: ClientState,
    deadline: Instant,
    selected: Vec<AuthMethod>,
    /// No sealed record received yet: a plaintext Alert may still arrive.
    awaiting_first_record: bool,
    established: Option<Box<Established>>,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A client waiting for the server's Offer.
    pub fn new(
        config: ClientConfig,
        connect: Connect,
        rng: &mut (impl CryptoRng + RngCore),
        now: Instant,
    ) -> Self {
        Self {
            config,
            connect,
            core: Box::new(Core::new(Side::Client, rng)),
            state: ClientState::AwaitOffer,
            deadline: now + CLIENT_HANDSHAKE_TIMEOUT,
            selected: Vec::new(),
            awaiting_first_record: true,
            established: None,
        }
    }

    /// Feeds one frame body (as yielded by [`frame::FrameCodec`]).
    pub fn handle_frame(&mut self, body: BytesMut, now: Instant) -> Result<(), HandshakeError> {
        if self.core.failed || matches!(self.state, ClientState::Established) {
            return Err(self.core.after_end());
        }
        if now >= self.deadline {
            return self.handle_timeout(now);
        }
        let result = match self.state {
            ClientState::AwaitOffer => self.on_offer(&body),
            _ => self.on_record(body),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.core.fail(e),
        }
    }

    fn on_offer(&mut self, body: &[u8]) -> Result<(), HandshakeError> {
        let offer = match decode_plain(body) {
            Ok(PlainMessage::Offer(offer)) => offer,
            Ok(PlainMessage::Alert(alert)) => return Err(HandshakeError::Refused(alert.message)),
            Ok(PlainMessage::Choice(_)) => {
                return Err(HandshakeError::Protocol(
                    "expected the server's Offer, got a Choice".into(),
                ))
            }
            Err(e @ HandshakeError::VersionMismatch { peer, ours }) => {
                self.core.queue_alert(format!(
                    "version mismatch: the client speaks protocol {}.{}, the server {}.{}",
                    ours.0, ours.1, peer.0, peer.1
                ));
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.core.peer_software = offer.software.clone();

        if offer.key_exchange != KEY_EXCHANGE_P256 {
            let text = format!(
                "the server offers key exchange {:?}; this client supports only p256",
                offer.key_exchange
            );
            self.core.queue_alert(text.clone());
            return Err(HandshakeError::Refused(text));
        }
        let offered_enc: Vec<Encryption> = offer
            .encryption
            .iter()
            .filter_map(|n| Encryption::from_name(n))
            .collect();
        // A client that allows `none` (the manager on its private Unix
        // socket) wants it when offered; otherwise only XChaCha20-Poly1305.
        let encryption = if self.config.allow_unencrypted && offered_enc.contains(&Encryption::None)
        {
            Encryption::None
        } else if offered_enc.contains(&Encryption::XChaCha20Poly1305) {
            Encryption::XChaCha20Poly1305
        } else {
            let accepted = if self.config.allow_unencrypted {
                "xchacha20poly1305 or none"
            } else {
                "xchacha20poly1305"
            };
            let text = format!(
                "the server offers encryption [{}]; this client accepts only {accepted}",
                offer.encryption.join(", ")
            );
            self.core.queue_alert(text.clone());
            return Err(HandshakeError::Refused(text));
        };
        let offered_comp: Vec<CompressionAlgorithm> = offer
            .compression
            .iter()
            .filter_map(|n| {
                CompressionAlgorithm::ALL
                    .into_iter()
                    .find(|a| a.name() == n.as_str())
            })
            .collect();
        let compression = if offered_comp.contains(&self.config.compression.algorithm) {
            Compression {
                algorithm: self.config.compression.algorithm,
                level: self.config.compression.level.min(9),
            }
        } else if offered_comp.contains(&CompressionAlgorithm::None) {
            Compression::default()
        } else if let Some(&first) = offered_comp.first() {
            Compression::fast(first)
        } else {
            let text = format!(
                "the server offers compression [{}]; this client knows none of them",
                offer.compression.join(", ")
            );
            self.core.queue_alert(text.clone());
            return Err(HandshakeError::Refused(text));
        };

        let connect = match &self.connect {
            Connect::New => ConnectRequest::New,
            Connect::Resume {
                session_id, otps, ..
            } => {
                if otps.is_empty() || otps.len() > MAX_RESUME_CANDIDATES {
                    return Err(HandshakeError::SessionRejected(format!(
                        "a resume needs 1 or 2 one-time passwords, got {}",
                        otps.len()
                    )));
                }
                ConnectRequest::Resume {
                    session_id: *session_id,
                }
            }
        };
        let choice = PlainMessage::Choice(Choice {
            encryption,
            compression,
            public_key: ByteBuf::from(self.core.kx.public_key()),
            salt: ByteBuf::from(self.core.salt.to_vec()),
            connect,
            software: self.config.software.clone(),
        });
        let choice_body = encode_plain(&choice);
        self.core.install_keys(
            &offer.public_key,
            &offer.salt,
            body,
            &choice_body,
            encryption,
            compression,
        )?;
        self.core.transmit.push_back(framed(&choice_body));

        match &self.connect {
            Connect::New => self.state = ClientState::AwaitMethods,
            Connect::Resume { otps, received, .. } => {
                let th = self.core.th();
                let proofs = otps
                    .iter()
                    .map(|otp| ByteBuf::from(otp.resume_client_proof(&th).to_vec()))
                    .collect();
                let msg = AuthMessage::Resume {
                    proofs,
                    received: *received,
                };
                self.core.queue_sealed(&msg)?;
                self.state = ClientState::AwaitResumed;
            }
        }
        Ok(())
    }

    fn on_record(&mut self, body: BytesMut) -> Result<(), HandshakeError> {
        let content = if self.awaiting_first_record {
            // The server may still refuse our Choice with a plaintext Alert.
            match self.core.open(body.clone()) {
                Ok(c) => c,
                Err(source) => {
                    if let Ok(PlainMessage::Alert(alert)) = decode_plain(&body) {
                        return Err(HandshakeError::Refused(alert.message));
                    }
                    return Err(HandshakeError::Crypto {
                        context: "the server's first record did not open (different keys: \
                                  the handshake was tampered with)",
                        source,
                    });
                }
            }
        } else {
            self.core
                .open(body)
                .map_err(|source| HandshakeError::Crypto {
                    context: "a handshake record from the server did not open",
                    source,
                })?
        };
        self.awaiting_first_record = false;
        let msg = Core::decode_auth(&content)?;

        // Messages valid in every keyed state.
        match msg {
            AuthMessage::Info { text } => {
                self.core.events.push_back(HandshakeEvent::Info(text));
                return Ok(());
            }
            AuthMessage::Error { fatal: true, text } => {
                return Err(match self.state {
                    ClientState::AwaitResumed => HandshakeError::SessionRejected(text),
                    _ => HandshakeError::AuthFailed(text),
                });
            }
            _ => {}
        }

        match self.state {
            ClientState::AwaitMethods => self.on_methods(msg),
            ClientState::AwaitAuth { current } => self.on_auth(msg, current),
            ClientState::AwaitResumed => self.on_resumed(msg),
            _ => Err(unexpected(&msg, "the handshake is over")),
        }
    }

    fn on_methods(&mut self, msg: AuthMessage) -> Result<(), HandshakeError> {
        let AuthMessage::Methods { methods } = msg else {
            return Err(unexpected(&msg, "waiting for Methods"));
        };
        let offered: Vec<AuthMethod> = methods
            .iter()
            .filter_map(|m| AuthMethod::from_name(m))
            .collect();
        let mut ours = Vec::new();
        if self.config.static_key.is_some() {
            ours.push(AuthMethod::StaticKey);
        }
        if self.config.accept_none_auth {
            ours.push(AuthMethod::None);
        }
        self.selected = ours
            .iter()
            .copied()
            .filter(|m| offered.contains(m))
            .collect();
        if self.selected.is_empty() {
            return Err(HandshakeError::AuthFailed(format!(
                "no common authentication method: the server offers [{}], this client can use {}",
                methods.join(", "),
                names(&ours)
            )));
        }
        let select = AuthMessage::Select {
            methods: self.selected.iter().map(|m| m.name().to_owned()).collect(),
        };
        self.core.queue_sealed(&select)?;
        self.state = ClientState::AwaitAuth { current: None };
        Ok(())
    }

    fn on_auth(&mut self, msg: AuthMessage, current: Option<usize>) -> Result<(), HandshakeError> {
        let current_method = current.and_then(|i| self.selected.get(i).copied());
        match msg {
            AuthMessage::Start { method } => {
                let pos = AuthMethod::from_name(&method)
                    .and_then(|m| self.selected.iter().position(|s| *s == m));
                match pos {
                    Some(p) if current.is_none_or(|c| p > c) => {
                        self.state = ClientState::AwaitAuth { current: Some(p) };
                        Ok(())
                    }
                    _ => Err(HandshakeError::Protocol(format!(
                        "the server started method {method:?}, which is not the next of the selected {}",
                        names(&self.selected)
                    ))),
                }
            }
            AuthMessage::Challenge { method, questions } => {
                match (current_method, self.config.static_key.as_ref()) {
                    (Some(AuthMethod::StaticKey), Some(key))
                        if method == AuthMethod::StaticKey.name() && questions.len() == 1 =>
                    {
                        let proof = key.client_proof(&self.core.th());
                        self.core.queue_sealed(&AuthMessage::Answers {
                            answers: vec![ByteBuf::from(proof.to_vec())],
                        })
                    }
                    _ => Err(HandshakeError::Protocol(format!(
                        "unexpected Challenge for method {method:?} with {} questions",
                        questions.len()
                    ))),
                }
            }
            AuthMessage::Verify { kind, text } if current_method.is_some() => {
                self.core
                    .events
                    .push_back(HandshakeEvent::VerifyRequested { kind, text });
                self.core
                    .queue_sealed(&AuthMessage::Verified { valid: false })
            }
            AuthMessage::Error { fatal: false, text } if current_method.is_some() => {
                self.core.events.push_back(HandshakeEvent::MethodFailed {
                    method: current_method.map(|m| m.name()).unwrap_or("").to_owned(),
                    reason: text,
                });
                Ok(())
            }
            AuthMessage::Success { session_id, proof } => match current_method {
                Some(AuthMethod::StaticKey) => {
                    let expected = self
                        .config
                        .static_key
                        .as_ref()
                        .map(|k| k.server_proof(&self.core.th()));
                    let ok = match (proof, expected) {
                        (Some(p), Some(e)) => proof_eq(&p, &e),
                        _ => false,
                    };
                    if !ok {
                        return Err(HandshakeError::AuthFailed(
                            "the server could not prove it knows the static key \
                             (it has another key, or a man in the middle answered)"
                                .into(),
                        ));
                    }
                    self.finish(session_id, None)
                }
                Some(AuthMethod::None) => self.finish(session_id, None),
                None => Err(HandshakeError::Protocol(
                    "the server sent Success before starting a method".into(),
                )),
            },
            other => Err(unexpected(&other, "authenticating")),
        }
    }

    fn on_resumed(&mut self, msg: AuthMessage) -> Result<(), HandshakeError> {
        let AuthMessage::Resumed {
            proof,
            matched,
            received,
        } = msg
        else {
            return Err(unexpected(&msg, "waiting for Resumed"));
        };
        let Connect::Resume {
            session_id, otps, ..
        } = &self.connect
        else {
            return Err(HandshakeError::Protocol("internal: not resuming".into()));
        };
        let session_id = *session_id;
        let th = self.core.th();
        let Some(otp) = otps.get(usize::from(matched)) else {
            return Err(HandshakeError::Protocol(format!(
                "the server matched candidate {matched}, but we sent {}",
                otps.len()
            )));
        };
        if !proof_eq(&proof, &otp.resume_server_proof(&th)) {
            return Err(HandshakeError::SessionRejected(
                "the server could not prove it holds the session's one-time password".into(),
            ));
        }
        let next_otp = otp.next(&th);
        self.finish(
            session_id,
            Some(EstablishedKind::Resumed {
                peer_received: received,
                matched: usize::from(matched),
                next_otp,
            }),
        )
    }

    fn finish(
        &mut self,
        session_id: SessionId,
        kind: Option<EstablishedKind>,
    ) -> Result<(), HandshakeError> {
        let kind = match kind {
            Some(k) => k,
            None => EstablishedKind::New {
                otp: self
                    .core
                    .keys
                    .as_ref()
                    .map(|k| k.otp_0())
                    .ok_or_else(|| HandshakeError::Protocol("internal: no keys".into()))?,
            },
        };
        self.established = self.core.take_established(session_id, kind);
        self.state = ClientState::Established;
        Ok(())
    }

    /// Complete frames (length prefix included) ready to write, in order.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.core.transmit.pop_front()
    }

    /// Events for logging.
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.core.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.core.failed || matches!(self.state, ClientState::Established) {
            None
        } else {
            Some(self.deadline)
        }
    }

    /// Fails with [`HandshakeError::Timeout`] once the handshake deadline
    /// ([`CLIENT_HANDSHAKE_TIMEOUT`]) has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => self.core.fail(HandshakeError::Timeout(format!(
                "the server did not complete the handshake within {} s",
                CLIENT_HANDSHAKE_TIMEOUT.as_secs()
            ))),
            _ => Ok(()),
        }
    }

    /// The frame cap the reader must use right now.
    pub fn max_frame_len(&self) -> usize {
        if matches!(self.state, ClientState::Established) {
            MAX_FRAME
        } else {
            MAX_FRAME_PREAUTH
        }
    }

    /// True once the handshake succeeded and every frame it produced has
    /// been taken with [`poll_transmit`](Self::poll_transmit).
    pub fn is_established(&self) -> bool {
        matches!(self.state, ClientState::Established) && self.core.transmit.is_empty()
    }

    /// The result, once [`is_established`](Self::is_established).
    // Returning the machine itself on "not yet" is the agreed API; it is
    // called once per connection, so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn into_established(mut self) -> Result<Established, Self> {
        if !self.is_established() {
            return Err(self);
        }
        match self.established.take() {
            Some(e) => Ok(*e),
            None => Err(self),
        }
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum ServerState {
    AwaitChoice,
    AwaitSelect,
    /// The static_key challenge of `selected[idx]` is out.
    AwaitAnswers {
        idx: usize,
    },
    /// `selected[idx]` failed; report it at `until`.
    FailureDelay {
        until: Instant,
        idx: usize,
    },
    AwaitResume {
        session_id: SessionId,
    },
    AwaitSession {
        session_id: SessionId,
        proofs: Vec<ByteBuf>,
        received: u64,
    },
    Established,
    Done,
}

/// The server side of a handshake (sans-IO).
pub struct ServerHandshake {
    config: Arc<ServerConfig>,
    core: Box<Core>,
    state: ServerState,
    deadline: Instant,
    offer_body: BytesMut,
    session_id: SessionId,
    offered_methods: Vec<AuthMethod>,
    selected: Vec<AuthMethod>,
    established: Option<Box<Established>>,
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// A server for a just-accepted connection; queues the Offer at once.
    pub fn new(
        config: Arc<ServerConfig>,
        rng: &mut (impl CryptoRng + RngCore),
        now: Instant,
    ) -> Self {
        let core = Box::new(Core::new(Side::Server, rng));
        let session_id = SessionId::random(rng);
        let mut encryption = vec![Encryption::XChaCha20Poly1305.name().to_owned()];
        if config.allow_unencrypted {
            encryption.push(Encryption::None.name().to_owned());
        }
        let offer = PlainMessage::Offer(Offer {
            encryption,
            compression: config
                .compression_offer
                .iter()
                .map(|a| a.name().to_owned())
                .collect(),
            key_exchange: KEY_EXCHANGE_P256.to_owned(),
            public_key: ByteBuf::from(core.kx.public_key()),
            salt: ByteBuf::from(core.salt.to_vec()),
            software: config.software.clone(),
        });
        let offer_body = encode_plain(&offer);
        let mut offered_methods = Vec::new();
        if config.static_key.is_some() {
            offered_methods.push(AuthMethod::StaticKey);
        }
        if config.allow_none_auth {
            offered_methods.push(AuthMethod::None);
        }
        let mut this = Self {
            deadline: now + config.preauth_timeout,
            config,
            core,
            state: ServerState::AwaitChoice,
            offer_body,
            session_id,
            offered_methods,
            selected: Vec::new(),
            established: None,
        };
        let frame = framed(&this.offer_body);
        this.core.transmit.push_back(frame);
        this
    }

    fn is_over(&self) -> bool {
        self.core.failed || matches!(self.state, ServerState::Established | ServerState::Done)
    }

    /// Feeds one frame body (as yielded by [`frame::FrameCodec`]).
    pub fn handle_frame(&mut self, body: BytesMut, now: Instant) -> Result<(), HandshakeError> {
        if self.is_over() {
            return Err(self.core.after_end());
        }
        if now >= self.deadline {
            return self.handle_timeout(now);
        }
        let result = match self.state {
            ServerState::AwaitChoice => self.on_choice(&body),
            _ => self.on_record(body, now),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.core.fail(e),
        }
    }

    /// Refuses with a plaintext Alert (before keys exist).
    fn refuse(&mut self, err: HandshakeError, text: String) -> Result<(), HandshakeError> {
        self.core.queue_alert(text);
        Err(err)
    }

    fn on_choice(&mut self, body: &[u8]) -> Result<(), HandshakeError> {
        let choice = match decode_plain(body) {
            Ok(PlainMessage::Choice(c)) => c,
            Ok(PlainMessage::Alert(alert)) => return Err(HandshakeError::Refused(alert.message)),
            Ok(PlainMessage::Offer(_)) => {
                let e = HandshakeError::Protocol("expected a Choice, got an Offer".into());
                return self.refuse(e, "protocol error: expected a Choice, got an Offer".into());
            }
            Err(e @ HandshakeError::VersionMismatch { peer, ours }) => {
                let text = format!(
                    "version mismatch: the server speaks protocol {}.{}, the client {}.{}",
                    ours.0, ours.1, peer.0, peer.1
                );
                return self.refuse(e, text);
            }
            Err(e @ HandshakeError::Protocol(_)) => {
                let text = e.to_string();
                return self.refuse(e, text);
            }
            Err(e) => return Err(e),
        };
        self.core.peer_software = choice.software.clone();

        let enc_ok = match choice.encryption {
            Encryption::XChaCha20Poly1305 => true,
            Encryption::None => self.config.allow_unencrypted,
        };
        if !enc_ok {
            let text =
                "the client chose encryption none, which this listener does not allow".to_owned();
            return self.refuse(HandshakeError::Refused(text.clone()), text);
        }
        if !self
            .config
            .compression_offer
            .contains(&choice.compression.algorithm)
            || choice.compression.level > 9
        {
            let text = format!(
                "the client chose compression {} level {}, which was not offered",
                choice.compression.algorithm, choice.compression.level
            );
            return self.refuse(HandshakeError::Refused(text.clone()), text);
        }
        let offer_body = std::mem::take(&mut self.offer_body);
        let installed = self.core.install_keys(
            &choice.public_key,
            &choice.salt,
            &offer_body,
            body,
            choice.encryption,
            choice.compression,
        );
        if let Err(e) = installed {
            let text = e.to_string();
            return self.refuse(e, text);
        }
        match choice.connect {
            ConnectRequest::New => {
                let methods = self
                    .offered_methods
                    .iter()
                    .map(|m| m.name().to_owned())
                    .collect();
                self.core.queue_sealed(&AuthMessage::Methods { methods })?;
                self.state = ServerState::AwaitSelect;
            }
            ConnectRequest::Resume { session_id } => {
                self.state = ServerState::AwaitResume { session_id };
            }
        }
        Ok(())
    }

    fn on_record(&mut self, body: BytesMut, now: Instant) -> Result<(), HandshakeError> {
        let content = self
            .core
            .open(body)
            .map_err(|source| HandshakeError::Crypto {
                context: "a handshake record from the client did not open \
                          (different keys: the handshake was tampered with)",
                source,
            })?;
        let msg = match Core::decode_auth(&content) {
            Ok(m) => m,
            Err(e) => {
                self.core.queue_fatal(&e.to_string());
                return Err(e);
            }
        };
        let result = match &self.state {
            ServerState::AwaitSelect => self.on_select(msg, now),
            ServerState::AwaitAnswers { idx } => {
                let idx = *idx;
                self.on_answers(msg, idx, now)
            }
            ServerState::AwaitResume { session_id } => {
                let session_id = *session_id;
                self.on_resume(msg, session_id)
            }
            ServerState::FailureDelay { .. } => {
                Err(unexpected(&msg, "waiting to report a failed method"))
            }
            ServerState::AwaitSession { .. } => Err(unexpected(&msg, "looking up the session")),
            _ => Err(unexpected(&msg, "the handshake is over")),
        };
        if let Err(HandshakeError::Protocol(text)) = &result {
            let text = format!("protocol error: {text}");
            self.core.queue_fatal(&text);
        }
        result
    }

    fn on_select(&mut self, msg: AuthMessage, now: Instant) -> Result<(), HandshakeError> {
        let AuthMessage::Select { methods } = msg else {
            return Err(unexpected(&msg, "waiting for Select"));
        };
        let mut selected = Vec::new();
        for m in methods.iter().filter_map(|m| AuthMethod::from_name(m)) {
            if self.offered_methods.contains(&m) && !selected.contains(&m) {
                selected.push(m);
            }
        }
        if selected.is_empty() {
            let text = format!(
                "none of the selected authentication methods [{}] is offered; the server offers {}",
                methods.join(", "),
                names(&self.offered_methods)
            );
            self.core.queue_fatal(&text);
            return Err(HandshakeError::AuthFailed(text));
        }
        self.selected = selected;
        self.start_method(0, now)
    }

    fn start_method(&mut self, idx: usize, _now: Instant) -> Result<(), HandshakeError> {
        let Some(method) = self.selected.get(idx).copied() else {
            return Err(HandshakeError::Protocol("internal: no such method".into()));
        };
        self.core.queue_sealed(&AuthMessage::Start {
            method: method.name().to_owned(),
        })?;
        match method {
            AuthMethod::StaticKey => {
                self.core.queue_sealed(&AuthMessage::Challenge {
                    method: method.name().to_owned(),
                    questions: vec![static_key_question()],
                })?;
                self.state = ServerState::AwaitAnswers { idx };
                Ok(())
            }
            AuthMethod::None => {
                self.core.queue_sealed(&AuthMessage::Success {
                    session_id: self.session_id,
                    proof: None,
                })?;
                self.finish_new()
            }
        }
    }

    fn on_answers(
        &mut self,
        msg: AuthMessage,
        idx: usize,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        let AuthMessage::Answers { answers } = msg else {
            return Err(unexpected(&msg, "waiting for Answers"));
        };
        let th = self.core.th();
        let ok = match (answers.first(), self.config.static_key.as_ref()) {
            (Some(answer), Some(key)) if answers.len() == 1 => {
                proof_eq(answer, &key.client_proof(&th))
            }
            _ => false,
        };
        if ok {
            let proof = self
                .config
                .static_key
                .as_ref()
                .map(|k| ByteBuf::from(k.server_proof(&th).to_vec()));
            self.core.queue_sealed(&AuthMessage::Success {
                session_id: self.session_id,
                proof,
            })?;
            return self.finish_new();
        }
        self.core.events.push_back(HandshakeEvent::MethodFailed {
            method: AuthMethod::StaticKey.name().to_owned(),
            reason: "the client's static key proof did not match".into(),
        });
        self.state = ServerState::FailureDelay {
            until: now + self.config.failure_delay,
            idx,
        };
        Ok(())
    }

    fn on_resume(&mut self, msg: AuthMessage, session_id: SessionId) -> Result<(), HandshakeError> {
        let AuthMessage::Resume { proofs, received } = msg else {
            return Err(unexpected(&msg, "waiting for Resume"));
        };
        if proofs.is_empty() || proofs.len() > MAX_RESUME_CANDIDATES {
            return Err(HandshakeError::Protocol(format!(
                "Resume carries {} proofs; 1 or 2 are allowed",
                proofs.len()
            )));
        }
        self.core
            .events
            .push_back(HandshakeEvent::ResumeRequested(session_id));
        self.state = ServerState::AwaitSession {
            session_id,
            proofs,
            received,
        };
        Ok(())
    }

    /// Answers a [`HandshakeEvent::ResumeRequested`]: the stored session,
    /// or `None` if it is unknown or expired (then a fatal `Error` is
    /// queued and [`HandshakeErrorKind::SessionRejected`] returned).
    pub fn provide_session(&mut self, found: Option<StoredSession>) -> Result<(), HandshakeError> {
        if self.core.failed || !matches!(self.state, ServerState::AwaitSession { .. }) {
            return Err(HandshakeError::Protocol(
                "provide_session called while no resume is pending".into(),
            ));
        }
        let ServerState::AwaitSession {
            session_id,
            proofs,
            received,
        } = std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(already_failed());
        };
        let Some(stored) = found else {
            let text = format!("unknown or expired session {session_id}");
            self.core.queue_fatal(&text);
            return self.core.fail(HandshakeError::SessionRejected(text));
        };
        let th = self.core.th();
        let expected = stored.otp.resume_client_proof(&th);
        // Check every candidate, without early exit.
        let mut matched = None;
        for (i, proof) in proofs.iter().enumerate() {
            if proof_eq(proof, &expected) && matched.is_none() {
                matched = Some(i);
            }
        }
        let Some(matched) = matched else {
            let text = format!("session {session_id}: the one-time password proof did not match");
            self.core.queue_fatal(&text);
            return self.core.fail(HandshakeError::SessionRejected(text));
        };
        let resumed = AuthMessage::Resumed {
            proof: ByteBuf::from(stored.otp.resume_server_proof(&th).to_vec()),
            // matched < MAX_RESUME_CANDIDATES = 2.
            matched: u8::try_from(matched).unwrap_or(u8::MAX),
            received: stored.received,
        };
        if let Err(e) = self.core.queue_sealed(&resumed) {
            return self.core.fail(e);
        }
        let kind = EstablishedKind::Resumed {
            peer_received: received,
            matched,
            next_otp: stored.otp.next(&th),
        };
        self.established = self.core.take_established(session_id, kind);
        self.state = ServerState::Established;
        Ok(())
    }

    fn finish_new(&mut self) -> Result<(), HandshakeError> {
        let otp = self
            .core
            .keys
            .as_ref()
            .map(|k| k.otp_0())
            .ok_or_else(|| HandshakeError::Protocol("internal: no keys".into()))?;
        self.established = self
            .core
            .take_established(self.session_id, EstablishedKind::New { otp });
        self.state = ServerState::Established;
        Ok(())
    }

    /// Complete frames (length prefix included) ready to write, in order.
    /// After an error, the frames still queued here (an Alert or a fatal
    /// Error for the peer) should be written before closing.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.core.transmit.pop_front()
    }

    /// Events: [`HandshakeEvent::ResumeRequested`] needs an answer.
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.core.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next:
    /// the end of a failure delay or the pre-authentication deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() {
            return None;
        }
        match self.state {
            ServerState::FailureDelay { until, .. } => Some(until.min(self.deadline)),
            _ => Some(self.deadline),
        }
    }

    /// Reports a failed method once its failure delay has passed (then
    /// starts the next method, or fails with `AuthFailed`), and enforces
    /// the pre-authentication deadline (`Timeout`).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if self.is_over() {
            return Ok(());
        }
        if now >= self.deadline {
            let text = format!(
                "authentication took too long (the limit is {} s)",
                self.config.preauth_timeout.as_secs_f32()
            );
            self.core.queue_fatal(&text);
            return self.core.fail(HandshakeError::Timeout(text));
        }
        if let ServerState::FailureDelay { until, idx } = self.state {
            if now >= until {
                let method = self.selected.get(idx).map_or("", |m| m.name());
                let next = idx + 1;
                if next < self.selected.len() {
                    let text =
                        format!("authentication with {method} failed; trying the next method");
                    let r = self
                        .core
                        .queue_sealed(&AuthMessage::Error { fatal: false, text })
                        .and_then(|()| self.start_method(next, now));
                    if let Err(e) = r {
                        return self.core.fail(e);
                    }
                } else {
                    let text = format!("authentication with {method} failed and no method is left");
                    self.core.queue_fatal(&text);
                    return self.core.fail(HandshakeError::AuthFailed(text));
                }
            }
        }
        Ok(())
    }

    /// The transport below the machine failed in a way the peer should
    /// hear about (an oversize frame, PROTOCOL.md §1): queues
    /// `Error{fatal: true, text}` (sealed, once keys exist) or an Alert
    /// with `text`, and ends the handshake. Send what
    /// [`poll_transmit`](Self::poll_transmit) yields, then close.
    pub fn abort(&mut self, text: &str) {
        if self.is_over() {
            return;
        }
        self.core.queue_fatal(text);
        let _ = self
            .core
            .fail::<()>(HandshakeError::Protocol(text.to_owned()));
    }

    /// The frame cap the reader must use right now.
    pub fn max_frame_len(&self) -> usize {
        if matches!(self.state, ServerState::Established) {
            MAX_FRAME
        } else {
            MAX_FRAME_PREAUTH
        }
    }

    /// True once the handshake succeeded and every frame it produced has
    /// been taken with [`poll_transmit`](Self::poll_transmit).
    pub fn is_established(&self) -> bool {
        matches!(self.state, ServerState::Established) && self.core.transmit.is_empty()
    }

    /// The result, once [`is_established`](Self::is_established).
    // Returning the machine itself on "not yet" is the agreed API; it is
    // called once per connection, so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn into_established(mut self) -> Result<Established, Self> {
        if !self.is_established() {
            return Err(self);
        }
        match self.established.take() {
            Some(e) => Ok(*e),
            None => Err(self),
        }
    }

    /// The session id a new session will get (resumptions keep theirs).
    pub fn new_session_id(&self) -> SessionId {
        self.session_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte example in PROTOCOL.md §2.1.
    #[test]
    fn offer_header_bytes() {
        let offer = PlainMessage::Offer(Offer {
            encryption: vec!["xchacha20poly1305".into()],
            compression: vec!["none".into()],
            key_exchange: "p256".into(),
            public_key: ByteBuf::from(vec![4; 65]),
            salt: ByteBuf::from(vec![0; 32]),
            software: "s".into(),
        });
        let body = encode_plain(&offer);
        assert_eq!(
            hex::encode(&body[..40]),
            "4453544e0001000001\
             86aa656e6372797074696f6e91b1786368616368613230706f6c7931333035"
        );
        assert_eq!(decode_plain(&body).unwrap(), offer);
    }
}
