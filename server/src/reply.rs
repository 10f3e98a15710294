//! Outbound side of a session: numbering responses and streaming replies.
//!
//! Owns [`Outbox`] (the per-session bounded response channel; response
//! ids are assigned by the protocol driver as responses go out) and [`ReplySink`] (the handle a streaming operation
//! — process output, watch changes, search results, file chunks — uses to
//! send more replies for its origin request).
//!
//! Ordering: the dispatcher sends a stream's opening reply (`ProcSpawned`,
//! `Watching`, `SearchStarted`) itself and only then releases the sink with
//! [`Release::release`]. Until then every [`ReplySink::send`] waits, so a
//! stream's first element can never overtake its opener. Dropping the
//! [`Release`] without releasing (the operation failed to start) closes
//! the sink: pending and later sends return `false`.
//!
//! Backpressure: the response channel is bounded; `send` awaits room, so a
//! producer that outpaces the client is slowed down rather than buffered.

use distant_protocol::msg::{Reply, RequestId, Response, ResponsePayload};
use tokio::sync::{mpsc, watch};

/// Per-session outbound channel: a bounded `mpsc::Sender<Response>`. The
/// protocol driver numbers responses in the order they are sent
/// (PROTOCOL.md §5.1), so ids are left 0 here.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Response>,
}

impl Outbox {
    /// Wraps the session's response sender.
    pub fn new(tx: mpsc::Sender<Response>) -> Self {
        Self { tx }
    }

    /// Sends one response for `origin`, waiting for room in the channel.
    /// Returns `false` when the session is gone.
    pub async fn send(&self, origin: RequestId, payload: ResponsePayload) -> bool {
        self.tx
            .send(Response {
                id: 0,
                origin_id: origin,
                payload,
            })
            .await
            .is_ok()
    }

    /// Sends one single-reply response for `origin`.
    pub async fn reply(&self, origin: RequestId, reply: Reply) -> bool {
        self.send(origin, ResponsePayload::Single(reply)).await
    }

    /// True when the session's receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Replies streamed for one origin request.
///
/// Cloneable (one clone per producer, e.g. stdout and stderr readers).
/// Streamed sends wait until the dispatcher has sent the opening reply
/// (release), so a stream's first element never overtakes its opener.
#[derive(Clone, Debug)]
pub struct ReplySink {
    outbox: Outbox,
    origin: RequestId,
    released: watch::Receiver<bool>,
}

/// The dispatcher's half of a [`ReplySink`]'s gate. Call
/// [`Release::release`] after sending the opening reply; dropping it
/// unreleased closes the sink.
#[derive(Debug)]
pub struct Release {
    tx: watch::Sender<bool>,
}

impl Release {
    /// Lets the sink's sends through.
    pub fn release(self) {
        // send_replace never fails, even without receivers.
        self.tx.send_replace(true);
    }
}

impl ReplySink {
    /// A sink for `origin` that holds its sends until released.
    pub fn new(outbox: Outbox, origin: RequestId) -> (Self, Release) {
        let (tx, released) = watch::channel(false);
        (
            Self {
                outbox,
                origin,
                released,
            },
            Release { tx },
        )
    }

    /// A sink that is released from the start: for streams whose opener is
    /// their own first element (file chunks).
    pub fn released(outbox: Outbox, origin: RequestId) -> Self {
        let (sink, release) = Self::new(outbox, origin);
        release.release();
        sink
    }

    /// A released sink on a fresh channel of `capacity` responses: for
    /// driving a stream producer directly (tests, tools).
    pub fn channel(origin: RequestId, capacity: usize) -> (Self, mpsc::Receiver<Response>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self::released(Outbox::new(tx), origin), rx)
    }

    /// Sends one streamed reply. Returns `false` when the session is gone
    /// or the stream was never opened: the producer should stop.
    pub async fn send(&self, reply: Reply) -> bool {
        if !*self.released.borrow() {
            let mut rx = self.released.clone();
            if rx.wait_for(|released| *released).await.is_err() {
                return false;
            }
        }
        self.outbox
            .send(self.origin, ResponsePayload::Single(reply))
            .await
    }

    /// The request this sink streams for.
    pub fn origin(&self) -> RequestId {
        self.origin
    }

    /// True when the session is gone (sends would fail).
    pub fn is_closed(&self) -> bool {
        self.outbox.is_closed()
    }
}
