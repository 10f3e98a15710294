//! Test harness: drives `run_session` through mpsc channels, no network.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use distant_protocol::msg::{
    ErrorKind, FileStamp, Op, Reply, Request, RequestId, RequestPayload, Response, ResponsePayload,
    WriteOptions,
};
use distant_server::{run_session, Limits};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Client {
    pub tx: Option<mpsc::Sender<Request>>,
    pub rx: mpsc::Receiver<Response>,
    next: RequestId,
    stash: HashMap<RequestId, Vec<Response>>,
    pub server: JoinHandle<()>,
}

impl Client {
    pub fn start() -> Self {
        Self::start_with(64, Limits::default())
    }

    pub fn start_with(capacity: usize, limits: Limits) -> Self {
        let (req_tx, req_rx) = mpsc::channel(64);
        let (resp_tx, resp_rx) = mpsc::channel(capacity);
        let server = tokio::spawn(run_session(req_rx, resp_tx, limits));
        Self {
            tx: Some(req_tx),
            rx: resp_rx,
            next: 1,
            stash: HashMap::new(),
            server,
        }
    }

    pub async fn send_payload(&mut self, payload: RequestPayload) -> RequestId {
        let id = self.next;
        self.next += 1;
        self.tx
            .as_ref()
            .expect("session open")
            .send(Request { id, payload })
            .await
            .expect("session alive");
        id
    }

    pub async fn send(&mut self, op: Op) -> RequestId {
        self.send_payload(RequestPayload::Single(op)).await
    }

    /// Next response for `origin` (others are stashed).
    pub async fn next_for(&mut self, origin: RequestId) -> Response {
        if let Some(v) = self.stash.get_mut(&origin) {
            if !v.is_empty() {
                return v.remove(0);
            }
        }
        loop {
            let r = tokio::time::timeout(TIMEOUT, self.rx.recv())
                .await
                .expect("timed out waiting for a response")
                .expect("session closed its responses");
            if r.origin_id == origin {
                return r;
            }
            self.stash.entry(r.origin_id).or_default().push(r);
        }
    }

    pub async fn reply_for(&mut self, origin: RequestId) -> Reply {
        match self.next_for(origin).await.payload {
            ResponsePayload::Single(r) => r,
            other => panic!("expected a single reply, got {other:?}"),
        }
    }

    pub async fn call(&mut self, op: Op) -> Reply {
        let id = self.send(op).await;
        self.reply_for(id).await
    }

    pub async fn batch(&mut self, ops: Vec<Op>, sequential: bool) -> Vec<Reply> {
        let id = self
            .send_payload(RequestPayload::Batch { ops, sequential })
            .await;
        match self.next_for(id).await.payload {
            ResponsePayload::Batch(v) => v,
            other => panic!("expected a batch reply, got {other:?}"),
        }
    }

    /// Reads a whole file through FileRead; Err on an Error reply.
    pub async fn read(&mut self, path: &str) -> Result<(Vec<u8>, FileStamp), (ErrorKind, String)> {
        let id = self
            .send(Op::FileRead {
                path: path.into(),
                chunk_size: None,
                offset: 0,
                length: None,
            })
            .await;
        let mut out = Vec::new();
        loop {
            match self.reply_for(id).await {
                Reply::FileChunk { offset, data } => {
                    assert_eq!(offset as usize, out.len(), "chunks arrive in order");
                    out.extend_from_slice(&data);
                }
                Reply::FileEnd(stamp) => return Ok((out, stamp)),
                Reply::Error(e) => return Err((e.kind, e.message)),
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }

    pub async fn write(&mut self, path: &str, data: &[u8], options: WriteOptions) -> Reply {
        self.call(Op::FileWrite {
            path: path.into(),
            data: data.to_vec().into(),
            options,
        })
        .await
    }

    /// Ends the session and waits for the server to clean up.
    pub async fn close(mut self) {
        self.tx.take();
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .expect("session shut down in time")
            .expect("session task did not panic");
    }
}

pub fn err_kind(r: &Reply) -> ErrorKind {
    match r {
        Reply::Error(e) => e.kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

pub fn err_msg(r: &Reply) -> String {
    match r {
        Reply::Error(e) => e.message.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

pub fn written(r: &Reply) -> FileStamp {
    match r {
        Reply::FileWritten(s) => s.clone(),
        other => panic!("expected FileWritten, got {other:?}"),
    }
}

pub fn s(p: &std::path::Path) -> String {
    p.to_str().expect("utf-8 temp path").to_string()
}

pub fn opts(create: bool, overwrite: bool, if_etag: Option<&str>, atomic: bool) -> WriteOptions {
    WriteOptions {
        create,
        overwrite,
        if_etag: if_etag.map(str::to_string),
        atomic,
    }
}
