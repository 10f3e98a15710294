//! # distant-protocol
//!
//! The distant wire protocol, shared by `distant-server` and `distant-bridge`.
//! `docs/PROTOCOL.md` is the byte-level description; this crate is its
//! reference implementation.
//!
//! The protocol logic is sans-IO: every state machine takes bytes and the
//! current time in and hands bytes, events and deadlines out, so each path —
//! faults included — is tested without sockets. Only [`driver`] touches tokio.
//!
//! Layers, bottom to top (each module owns one):
//!
//! - [`frame`]: length-prefixed frames with a hard size cap.
//! - [`compress`]: optional compression of record contents, bounded inflation.
//! - [`crypto`]: the key schedule and the sealed-record codec
//!   (XChaCha20-Poly1305 with implicit counter nonces, per-direction keys).
//! - [`handshake`]: codec derivation (offer, choice, ECDH, transcript),
//!   then authentication or resumption, as client and server state machines.
//! - [`auth`]: authentication messages and the methods (`static_key`, `none`).
//! - [`session`]: numbered data records, cumulative acks, the bounded replay
//!   backup, heartbeats and dead-peer detection.
//! - [`resume`]: what outlives connections for a resume: the client's
//!   ticket (OTP rotation) and the server's record (commit-on-first-record).
//! - [`msg`]: the request and response types the server serves.
//! - [`driver`]: tokio client and server halves over any byte stream,
//!   with reconnect through a caller-supplied dialer.

pub mod auth;
pub mod compress;
pub mod crypto;
pub mod driver;
pub mod frame;
pub mod handshake;
pub mod msg;
pub mod resume;
pub mod session;

/// Protocol version spoken by this crate: (major, minor).
/// Peers with a different major version refuse each other with a clear error.
pub const PROTOCOL_VERSION: (u16, u16) = (1, 0);

/// Software version string sent in the handshake (`distant-<role> <version>`).
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
