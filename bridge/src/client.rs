//! A JSON-RPC client over LSP framing: what the human CLI verbs, the LSP
//! proxy and the tests use to talk to a bridge API server (the manager's
//! socket, or `distant-bridge stdio` on a child's pipes).
//!
//! Requests get numeric ids; responses are routed back to the waiting
//! caller; notifications arrive on a bounded channel (the reader waits for
//! the consumer rather than buffering without bound). When the peer goes
//! away, every waiting request fails with [`ClientError::Closed`].

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::framing::{Frame, LspCodec};
use crate::jsonrpc::{self, Id, Message, Notification, RpcError};

/// Notifications buffered before the reader waits for the consumer.
const NOTIFICATION_CAPACITY: usize = 4096;
/// Outgoing messages buffered before callers wait.
const OUTGOING_CAPACITY: usize = 256;

/// Why a request got no result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{}", .0.message)]
    Rpc(RpcError),
    /// The connection to the server is gone.
    #[error("the bridge connection closed")]
    Closed,
}

/// Waiting requests; `None` once the reader has ended (no more answers).
type Pending = Arc<Mutex<Option<HashMap<i64, oneshot::Sender<Result<Value, RpcError>>>>>>;

/// A JSON-RPC client. Cheap to clone.
#[derive(Clone)]
pub struct JsonRpcClient {
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: Arc<AtomicI64>,
}

impl JsonRpcClient {
    /// Starts the reader and writer tasks over `reader`/`writer`. Returns the
    /// client and the stream of notifications the server sends.
    pub fn new<R, W>(reader: R, writer: W) -> (Self, mpsc::Receiver<Notification>)
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(OUTGOING_CAPACITY);
        let (note_tx, note_rx) = mpsc::channel(NOTIFICATION_CAPACITY);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));

        tokio::spawn(async move {
            let mut sink = FramedWrite::new(writer, LspCodec::strict());
            while let Some(body) = out_rx.recv().await {
                if sink.send(body).await.is_err() {
                    break;
                }
            }
        });

        let reader_pending = pending.clone();
        let reply_tx = out_tx.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(reader, LspCodec::strict());
            while let Some(Ok(frame)) = frames.next().await {
                let Frame::Message(body) = frame else {
                    continue;
                };
                match jsonrpc::parse(&body) {
                    Ok(Message::Response(response)) => {
                        let id = match response.id {
                            Some(Id::Number(n)) => n.as_i64(),
                            _ => None,
                        };
                        let waiter = id.and_then(|id| {
                            lock(&reader_pending).as_mut().and_then(|p| p.remove(&id))
                        });
                        match waiter {
                            Some(tx) => {
                                let _ = tx.send(response.outcome);
                            }
                            None => tracing::debug!("response to no waiting request"),
                        }
                    }
                    Ok(Message::Notification(note)) => {
                        if note_tx.send(note).await.is_err() {
                            // Nobody listens; keep routing responses.
                            continue;
                        }
                    }
                    Ok(Message::Request(request)) => {
                        let error = RpcError::method_not_found(&request.method);
                        let _ = reply_tx
                            .send(jsonrpc::error_response(Some(&request.id), &error))
                            .await;
                    }
                    Err(invalid) => tracing::warn!("ignoring a malformed message: {invalid:?}"),
                }
            }
            // The peer is gone: nobody will answer the waiting requests.
            lock(&reader_pending).take();
        });

        (
            Self {
                outgoing: out_tx,
                pending,
                next_id: Arc::new(AtomicI64::new(1)),
            },
            note_rx,
        )
    }

    /// Sends a request and waits for its result.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.start_request(method, params).await?.await
    }

    /// Sends a request now and returns a future of its result, so a caller
    /// can pipeline: requests started one after another go out in that
    /// order without waiting for each other's answers (the LSP proxy streams
    /// `proc/stdin` this way).
    pub async fn start_request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<impl std::future::Future<Output = Result<Value, ClientError>>, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(ClientError::Closed),
        };
        let body = jsonrpc::request(&Id::from(id), method, Some(&params));
        if self.outgoing.send(body).await.is_err() {
            if let Some(pending) = lock(&self.pending).as_mut() {
                pending.remove(&id);
            }
            return Err(ClientError::Closed);
        }
        Ok(async move {
            match rx.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(ClientError::Rpc(error)),
                Err(_) => Err(ClientError::Closed),
            }
        })
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Value) -> Result<(), ClientError> {
        self.outgoing
            .send(jsonrpc::notification(method, Some(&params)))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Sends a raw, already serialised body (tests use it to send malformed
    /// messages).
    pub async fn send_raw(&self, body: Vec<u8>) -> Result<(), ClientError> {
        self.outgoing
            .send(body)
            .await
            .map_err(|_| ClientError::Closed)
    }
}
