//! Where streamed replies go.
// placeholder: replaced by C1's version on merge

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use distant_protocol::msg::{Reply, RequestId, Response, ResponsePayload};
use tokio::sync::mpsc;

/// Sends responses of one session, numbering them.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Response>,
    next_id: Arc<AtomicU64>,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<Response>) -> Self {
        Self {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    pub async fn send(&self, origin: RequestId, payload: ResponsePayload) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Response {
                id,
                origin_id: origin,
                payload,
            })
            .await
            .is_ok()
    }
}

/// Streams replies for one request.
#[derive(Clone)]
pub struct ReplySink {
    outbox: Outbox,
    origin: RequestId,
}

impl ReplySink {
    /// A sink whose responses arrive on the returned receiver (tests).
    pub fn channel(origin: RequestId, capacity: usize) -> (ReplySink, mpsc::Receiver<Response>) {
        let (tx, rx) = mpsc::channel(capacity);
        let sink = ReplySink {
            outbox: Outbox::new(tx),
            origin,
        };
        (sink, rx)
    }

    pub async fn send(&self, reply: Reply) -> bool {
        self.outbox
            .send(self.origin, ResponsePayload::Single(reply))
            .await
    }

    pub fn origin(&self) -> RequestId {
        self.origin
    }

    pub fn is_closed(&self) -> bool {
        self.outbox.tx.is_closed()
    }
}
