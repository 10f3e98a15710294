//! Typed requests over a client session.
//!
//! [`RpcClient`] numbers requests, encodes them as [`Message`]s, and routes
//! every response to whoever waits for its `origin_id`: a single answer, a
//! batch, or a stream that lasts until its terminal reply. When the session
//! ends, every waiter gets [`RpcError::ConnectionLost`] (or `Closed`) with
//! the reason — nobody hangs.
//!
//! Requests sent while the link is down wait in the session and are
//! replayed after the reconnect, so each completes exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::client::ClientSession;
use super::ConnectionState;
use crate::auth::SessionId;
use crate::msg::{Message, Op, Reply, Request, RequestId, RequestPayload, ResponsePayload};

/// Replies buffered per stream before the router waits for the consumer.
const STREAM_CAPACITY: usize = 1024;

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The session was lost (the server forgot it, or it could not be
    /// reached in time). Reconnect to continue.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The session was closed on purpose.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The request could not be encoded (too large, for example).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server answered with a reply of the wrong shape.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
}

enum Waiter {
    Single(oneshot::Sender<Result<ResponsePayload, RpcError>>),
    Stream(mpsc::Sender<Result<Reply, RpcError>>),
}

struct Shared {
    next_id: AtomicU64,
    waiters: Mutex<HashMap<RequestId, Waiter>>,
    /// Set once the session has ended: the error every new request gets.
    ended: Mutex<Option<RpcError>>,
}

impl Shared {
    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Waiter>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn ended(&self) -> Option<RpcError> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A typed client of one session. Cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<Bytes>,
    state: watch::Receiver<ConnectionState>,
    session_id: SessionId,
    peer_software: Arc<str>,
}

/// The replies of a streaming request, ending with its terminal reply.
pub struct ReplyStream {
    /// The request id (`origin_id` of every reply).
    pub id: RequestId,
    rx: mpsc::Receiver<Result<Reply, RpcError>>,
}

impl ReplyStream {
    /// The next reply; `None` after the terminal one.
    pub async fn recv(&mut self) -> Option<Result<Reply, RpcError>> {
        self.rx.recv().await
    }
}

/// The answer of a request sent with [`RpcClient::start_call`].
pub struct PendingCall {
    rx: oneshot::Receiver<Result<ResponsePayload, RpcError>>,
    shared: Arc<Shared>,
}

impl PendingCall {
    /// Waits for the single reply (as [`RpcClient::call`] would).
    pub async fn reply(self) -> Result<Reply, RpcError> {
        match self.rx.await {
            Ok(Ok(ResponsePayload::Single(reply))) => Ok(reply),
            Ok(Ok(ResponsePayload::Batch(_))) => Err(RpcError::Unexpected(
                "a batch answer to a single request".into(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self
                .shared
                .ended()
                .unwrap_or_else(|| RpcError::ConnectionLost("the session ended".into()))),
        }
    }
}

impl RpcClient {
    /// Wraps a client session; spawns the response router.
    pub fn new(session: ClientSession) -> Self {
        let ClientSession {
            outbound,
            inbound,
            state,
            session_id,
            peer_software,
        } = session;
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            waiters: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
        });
        tokio::spawn(route(inbound, shared.clone(), state.clone()));
        Self {
            shared,
            outbound,
            state,
            session_id,
            peer_software: peer_software.into(),
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub fn peer_software(&self) -> &str {
        &self.peer_software
    }

    /// Watches the connection state.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Sends one operation and waits for its single reply. A server-side
    /// failure is `Ok(Reply::Error(..))`; `Err` means no answer came.
    pub async fn call(&self, op: Op) -> Result<Reply, RpcError> {
        match self.call_payload(RequestPayload::Single(op)).await? {
            ResponsePayload::Single(reply) => Ok(reply),
            ResponsePayload::Batch(_) => Err(RpcError::Unexpected(
                "a batch answer to a single request".into(),
            )),
        }
    }

    /// Sends several operations as one batch; replies come in op order.
    pub async fn call_batch(&self, ops: Vec<Op>, sequential: bool) -> Result<Vec<Reply>, RpcError> {
        let n = ops.len();
        match self
            .call_payload(RequestPayload::Batch { ops, sequential })
            .await?
        {
            ResponsePayload::Batch(replies) if replies.len() == n => Ok(replies),
            ResponsePayload::Batch(replies) => Err(RpcError::Unexpected(format!(
                "{} replies to a batch of {n}",
                replies.len()
            ))),
            ResponsePayload::Single(Reply::Error(e)) => Ok(vec![Reply::Error(e); n]),
            ResponsePayload::Single(_) => {
                Err(RpcError::Unexpected("a single answer to a batch".into()))
            }
        }
    }

    /// Sends a streaming operation (spawn, read, watch, search); replies
    /// arrive on the stream until a terminal one.
    pub async fn stream(&self, op: Op) -> Result<ReplyStream, RpcError> {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let id = self.register(Waiter::Stream(tx))?;
        self.send(id, RequestPayload::Single(op)).await?;
        Ok(ReplyStream { id, rx })
    }

    /// Sends one operation now and returns its answer as a [`PendingCall`]:
    /// requests started one after another reach the server in that order,
    /// so a caller can keep several in flight (pipelined writes).
    pub async fn start_call(&self, op: Op) -> Result<PendingCall, RpcError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Waiter::Single(tx))?;
        self.send(id, RequestPayload::Single(op)).await?;
        Ok(PendingCall {
            rx,
            shared: self.shared.clone(),
        })
    }

    async fn call_payload(&self, payload: RequestPayload) -> Result<ResponsePayload, RpcError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Waiter::Single(tx))?;
        self.send(id, payload).await?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self
                .shared
                .ended()
                .unwrap_or_else(|| RpcError::ConnectionLost("the session ended".into()))),
        }
    }

    fn register(&self, waiter: Waiter) -> Result<RequestId, RpcError> {
        if let Some(e) = self.shared.ended() {
            return Err(e);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.waiters().insert(id, waiter);
        // The router may have ended between the check and the insert.
        if let Some(e) = self.shared.ended() {
            self.shared.waiters().remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    async fn send(&self, id: RequestId, payload: RequestPayload) -> Result<(), RpcError> {
        let encoded = Message::Request(Request { id, payload })
            .encode()
            .map_err(|e| RpcError::Invalid(e.to_string()));
        let result = match encoded {
            Ok(bytes) if bytes.len() > crate::session::MAX_DATA_PAYLOAD => {
                Err(RpcError::Invalid(format!(
                    "request of {} bytes is over the {} byte limit; send data in chunks",
                    bytes.len(),
                    crate::session::MAX_DATA_PAYLOAD
                )))
            }
            Ok(bytes) => self.outbound.send(Bytes::from(bytes)).await.map_err(|_| {
                self.shared
                    .ended()
                    .unwrap_or_else(|| RpcError::ConnectionLost("the session ended".into()))
            }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.shared.waiters().remove(&id);
        }
        result
    }
}

/// Routes responses to waiters until the session ends, then fails them all.
async fn route(
    mut inbound: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    state: watch::Receiver<ConnectionState>,
) {
    while let Some(bytes) = inbound.recv().await {
        let response = match Message::decode(&bytes) {
            Ok(Message::Response(r)) => r,
            Ok(Message::Request(r)) => {
                tracing::warn!(id = r.id, "ignoring a request sent by the server");
                continue;
            }
            Err(e) => {
                tracing::warn!("ignoring an undecodable message from the server: {e}");
                continue;
            }
        };
        let terminal = response.payload.is_terminal();
        let origin = response.origin_id;
        let waiter = {
            let mut waiters = shared.waiters();
            match waiters.get(&origin) {
                Some(Waiter::Single(_)) => waiters.remove(&origin),
                Some(Waiter::Stream(tx)) => {
                    if terminal {
                        waiters.remove(&origin)
                    } else {
                        Some(Waiter::Stream(tx.clone()))
                    }
                }
                None => None,
            }
        };
        match waiter {
            Some(Waiter::Single(tx)) => {
                let _ = tx.send(Ok(response.payload));
            }
            Some(Waiter::Stream(tx)) => {
                let replies = match response.payload {
                    ResponsePayload::Single(r) => vec![r],
                    ResponsePayload::Batch(rs) => rs,
                };
                for reply in replies {
                    // A consumer that dropped its stream just stops listening.
                    let _ = tx.send(Ok(reply)).await;
                }
            }
            None => tracing::debug!(origin, "response for no waiting request"),
        }
    }

    let error = match &*state.borrow() {
        ConnectionState::Closed { reason } => RpcError::Closed(reason.clone()),
        ConnectionState::Lost { reason } => RpcError::ConnectionLost(reason.clone()),
        _ => RpcError::ConnectionLost("the session ended".into()),
    };
    *shared.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
    let waiters: Vec<Waiter> = shared.waiters().drain().map(|(_, w)| w).collect();
    for waiter in waiters {
        match waiter {
            Waiter::Single(tx) => {
                let _ = tx.send(Err(error.clone()));
            }
            Waiter::Stream(tx) => {
                let error = error.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Err(error)).await;
                });
            }
        }
    }
}
