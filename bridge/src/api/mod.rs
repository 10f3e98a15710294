//! The bridge API (`docs/BRIDGE-API.md`, contract in
//! `shared/spec/bridge-api.md`) served to JSON-RPC peers: editors over
//! stdio, or the manager's clients over its Unix socket.
//!
//! PLACEHOLDER: answers `initialize`, `shutdown` and `exit` only, so the
//! manager and stdio plumbing can be built and tested; the full API
//! replaces this file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::framing::{Frame, LspCodec};
use crate::jsonrpc::{self, Message, RpcError};

/// Settings of an API server.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// `distant-server` binary for the `local` destination; default: next
    /// to this executable, then `$PATH`.
    pub server_binary: Option<std::path::PathBuf>,
}

/// How serving one peer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// The peer closed its side.
    Eof,
    /// The peer sent `exit` (after `shutdown`, or not).
    Exit,
}

/// The state shared by every peer of one API server: its connections.
pub struct Api {
    #[allow(dead_code)]
    options: ApiOptions,
    peers: AtomicUsize,
}

impl Api {
    pub fn new(options: ApiOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            peers: AtomicUsize::new(0),
        })
    }

    /// Peers being served right now.
    pub fn peer_count(&self) -> usize {
        self.peers.load(Ordering::SeqCst)
    }

    /// Open connections to servers.
    pub fn connection_count(&self) -> usize {
        0
    }

    /// Serves one JSON-RPC peer until it disconnects or sends `exit`.
    pub async fn serve<R, W>(self: &Arc<Self>, reader: R, writer: W) -> ServeEnd
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        self.peers.fetch_add(1, Ordering::SeqCst);
        let mut frames = FramedRead::new(reader, LspCodec::strict());
        let mut sink = FramedWrite::new(writer, LspCodec::strict());
        let mut end = ServeEnd::Eof;
        while let Some(Ok(frame)) = frames.next().await {
            let body = match frame {
                Frame::Message(body) => body,
                Frame::Junk(_) => continue,
                Frame::Invalid(e) => {
                    let error = RpcError::parse_error(e.to_string());
                    let _ = sink.send(jsonrpc::error_response(None, &error)).await;
                    continue;
                }
            };
            let reply = match jsonrpc::parse(&body) {
                Ok(Message::Request(r)) => Some(match r.method.as_str() {
                    "initialize" => jsonrpc::result_response(
                        &r.id,
                        &json!({"version": env!("CARGO_PKG_VERSION"), "protocolVersion": "1.0", "capabilities": []}),
                    ),
                    "shutdown" => jsonrpc::result_response(&r.id, &serde_json::Value::Null),
                    m => jsonrpc::error_response(Some(&r.id), &RpcError::method_not_found(m)),
                }),
                Ok(Message::Notification(n)) if n.method == "exit" => {
                    end = ServeEnd::Exit;
                    break;
                }
                Ok(_) => None,
                Err(invalid) => invalid.response(),
            };
            if let Some(reply) = reply {
                if sink.send(reply).await.is_err() {
                    break;
                }
            }
        }
        self.peers.fetch_sub(1, Ordering::SeqCst);
        end
    }
}
