//! Streams (processes, watches, searches): opening one so that nothing is
//! orphaned on the server when the request is cancelled, and forwarding
//! its replies to the owning peer as notifications, in stream order (so
//! `proc/exit` comes after every `proc/output`), with backpressure.

use std::sync::{Arc, Weak};

use distant_protocol::driver::rpc::{ReplyStream, RpcError as DriverError};
use distant_protocol::msg::{OutputStream, Reply};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::convert::{self, Encoding};
use super::{Api, Connection, StreamKind};
use crate::jsonrpc::{self, RpcError};

/// A stream whose opening reply has arrived.
pub(crate) struct Opened {
    pub first: Reply,
    pub rest: ReplyStream,
}

/// The server id a stream's opening reply carries.
fn server_id(kind: StreamKind, first: &Reply) -> Option<u64> {
    match (kind, first) {
        (StreamKind::Proc, Reply::ProcSpawned { proc, .. }) => Some(*proc),
        (StreamKind::Watch, Reply::Watching { watch }) => Some(*watch),
        (StreamKind::Search, Reply::SearchStarted { search }) => Some(*search),
        (StreamKind::Index, Reply::IndexStarted { index }) => Some(*index),
        _ => None,
    }
}

/// Sends a streaming op and waits for its opening reply. If the caller
/// stops waiting (cancelled request, peer gone), the stream is stopped on
/// the server as soon as its opening reply arrives.
pub(crate) async fn open(
    api: &Arc<Api>,
    conn: &Arc<Connection>,
    kind: StreamKind,
    op: distant_protocol::msg::Op,
) -> Result<Opened, RpcError> {
    let mut stream = conn
        .rpc
        .stream(op)
        .await
        .map_err(|e| convert::driver_error(e, &conn.id))?;
    let (tx, rx) = oneshot::channel::<Result<Opened, DriverError>>();
    let weak = Arc::downgrade(api);
    let conn_id = conn.id.clone();
    tokio::spawn(async move {
        let first = match stream.recv().await {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => {
                let _ = tx.send(Err(e));
                return;
            }
            None => {
                let _ = tx.send(Err(DriverError::ConnectionLost(
                    "the stream ended without an answer".into(),
                )));
                return;
            }
        };
        if let Err(Ok(opened)) = tx.send(Ok(Opened {
            first,
            rest: stream,
        })) {
            if let (Some(api), Some(id)) = (weak.upgrade(), server_id(kind, &opened.first)) {
                api.stop_remote(&conn_id, kind, id).await;
            }
        }
    });
    match rx.await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(e)) => Err(convert::driver_error(e, &conn.id)),
        Err(_) => Err(RpcError::internal("the stream opener went away")),
    }
}

/// Where and how a stream's replies are forwarded.
pub(crate) struct Forward {
    pub api: Weak<Api>,
    pub out: mpsc::Sender<Vec<u8>>,
    pub id: String,
    pub kind: StreamKind,
    pub connection: String,
    pub server_id: u64,
    /// Forced encoding of process output.
    pub encoding: Option<Encoding>,
}

impl Forward {
    /// Starts forwarding once `go` fires (after the response that names the
    /// stream went out); if `go` is dropped, stops the stream instead.
    pub(crate) fn spawn(self, mut rest: ReplyStream, go: oneshot::Receiver<()>) {
        tokio::spawn(async move {
            if go.await.is_err() {
                self.stop().await;
                self.unregister();
                return;
            }
            loop {
                let (note, terminal) = match rest.recv().await {
                    Some(Ok(reply)) => self.translate(reply),
                    Some(Err(e)) => (Some(self.ended(&e.to_string())), true),
                    None => (Some(self.ended("the stream ended")), true),
                };
                if let Some(note) = note {
                    if self.out.send(note).await.is_err() {
                        // The owner is gone.
                        if !terminal {
                            self.stop().await;
                        }
                        break;
                    }
                }
                if terminal {
                    break;
                }
            }
            self.unregister();
        });
    }

    async fn stop(&self) {
        if let Some(api) = self.api.upgrade() {
            api.stop_remote(&self.connection, self.kind, self.server_id)
                .await;
        }
    }

    fn unregister(&self) {
        if let Some(api) = self.api.upgrade() {
            api.remove_stream(&self.id);
        }
    }

    fn note(method: &str, params: Value) -> Vec<u8> {
        jsonrpc::notification(method, Some(&params))
    }

    /// The terminal notification for a stream that ended abnormally.
    fn ended(&self, error: &str) -> Vec<u8> {
        match self.kind {
            StreamKind::Proc => Self::note(
                "proc/exit",
                json!({"proc": self.id, "code": null, "error": error}),
            ),
            StreamKind::Watch => {
                Self::note("fs/watchEnded", json!({"watch": self.id, "error": error}))
            }
            StreamKind::Search => Self::note(
                "search/done",
                json!({"search": self.id, "truncated": false, "error": error}),
            ),
            StreamKind::Index => Self::note(
                "fs/index/done",
                json!({"index": self.id, "count": 0, "truncated": false, "error": error}),
            ),
        }
    }

    /// One reply → (notification, terminal).
    fn translate(&self, reply: Reply) -> (Option<Vec<u8>>, bool) {
        let terminal = reply.is_terminal();
        let note = match reply {
            Reply::ProcOutput { stream, data, .. } => {
                let (data, encoding) = convert::encode_data(&data, self.encoding)
                    .unwrap_or_else(|_| convert::base64(&data));
                let stream = match stream {
                    OutputStream::Stdout => "stdout",
                    OutputStream::Stderr => "stderr",
                };
                Some(Self::note(
                    "proc/output",
                    json!({"proc": self.id, "stream": stream, "data": data, "encoding": encoding.as_str()}),
                ))
            }
            Reply::ProcExit { code, signal, .. } => {
                let mut p = json!({"proc": self.id, "code": code});
                if let Some(signal) = signal {
                    p["signal"] = signal.into();
                }
                Some(Self::note("proc/exit", p))
            }
            Reply::Changes { changes, .. } => Some(Self::note(
                "fs/changed",
                json!({"watch": self.id, "changes": changes.iter().map(convert::change).collect::<Vec<_>>()}),
            )),
            Reply::Unwatched { error, .. } => {
                error.map(|e| Self::note("fs/watchEnded", json!({"watch": self.id, "error": e})))
            }
            Reply::SearchResults { matches, .. } => Some(Self::note(
                "search/results",
                json!({"search": self.id, "matches": matches.iter().map(convert::search_match).collect::<Vec<_>>()}),
            )),
            Reply::SearchDone {
                truncated,
                cancelled,
                error,
                ..
            } => {
                let mut p =
                    json!({"search": self.id, "truncated": truncated, "cancelled": cancelled});
                if let Some(error) = error {
                    p["error"] = error.into();
                }
                Some(Self::note("search/done", p))
            }
            Reply::Error(e) => Some(self.ended(&e.message)),
            other => {
                tracing::debug!(stream = %self.id, "ignoring an unexpected stream reply: {other:?}");
                None
            }
        };
        (note, terminal)
    }
}
