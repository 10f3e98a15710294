//! The tokio driver: runs the sans-IO machines of this crate over real byte
//! streams.
//!
//! - [`transport`]: the byte-stream abstraction (TCP, Unix sockets, a child's
//!   stdio) and TCP tuning (no delay, keepalive).
//! - [`handshake`](self::handshake): drives a client or server handshake
//!   over a transport with a deadline.
//! - [`link`]: the connection loop shared by both sides — frames in, sealed
//!   records out, session timers, application pipes — with no busy polling
//!   and cancellation-safe branches.
//! - [`client`]: a resumable client session that redials through a
//!   caller-supplied [`client::Dialer`] and replays what was lost.
//! - [`server`]: the accept loop, the registry of sessions that outlive
//!   their connections, and resumption.
//! - [`rpc`]: typed requests and responses ([`crate::msg`]) on top of a
//!   client session: request ids, streams, "connection lost" to every waiter.

pub mod client;
pub mod handshake;
pub mod link;
pub mod rpc;
pub mod server;
pub mod transport;

/// What a client session is doing, as shown to users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected and authenticated; requests flow.
    Connected,
    /// The link dropped; redialling. Requests wait and are replayed.
    Reconnecting {
        attempt: u32,
        /// Why the last link or attempt failed.
        detail: String,
    },
    /// The session cannot continue (the server no longer knows it, or it
    /// could not be reached before the reconnect deadline). Waiting
    /// requests have failed with "connection lost".
    Lost { reason: String },
    /// Closed on purpose by this side or the peer.
    Closed { reason: String },
}

impl ConnectionState {
    /// The state word used by the bridge API (`connected`, `reconnecting`,
    /// `lost`, `disconnected`).
    pub fn word(&self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting { .. } => "reconnecting",
            ConnectionState::Lost { .. } => "lost",
            ConnectionState::Closed { .. } => "disconnected",
        }
    }

    /// True once the session will never carry requests again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ConnectionState::Lost { .. } | ConnectionState::Closed { .. }
        )
    }
}
