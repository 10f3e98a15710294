//! `distant-bridge stdio`: what an editor spawns.
//!
//! By default a pure byte relay between stdin/stdout and the manager's socket
//! (both sides speak the same framed JSON-RPC, so nothing is parsed on the
//! way), starting the manager if it is not running. It ends when either side
//! closes. If the manager goes away while the editor is still talking — it
//! crashed or was killed — the relay ends with exit status 1 and a message on
//! stderr; the editor restarts the bridge and a fresh manager starts on
//! demand.
//!
//! To tell a manager that died from one that closed the session because the
//! editor sent `exit`, the stdin direction is watched (not altered) for a
//! small `exit` notification, with a framing decoder that does not buffer
//! large bodies.
//!
//! With `--no-manager` the API is served in-process on stdin/stdout
//! ([`serve_in_process`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::codec::Decoder;

use crate::api::{Api, ApiOptions, ServeEnd};
use crate::framing::{Frame, LspCodec};
use crate::jsonrpc::{self, Message};
use crate::manager::ManagerPaths;

/// After the editor closes stdin, how long the relay waits for the manager
/// to finish answering before it exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest body the `exit` watcher looks at; larger bodies are skipped
/// without being buffered.
const SNIFF_MAX_BODY: usize = 4096;

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The editor closed stdin (and the manager finished), or the editor
    /// went away (stdout closed).
    EditorClosed,
    /// The manager closed the session after the editor's `exit`.
    Exit,
    /// The manager closed or broke the connection unexpectedly.
    ManagerGone(String),
}

/// Serves the API in-process on stdin/stdout until EOF or `exit`.
pub async fn serve_in_process(options: ApiOptions) -> ServeEnd {
    let api = Api::new(options);
    api.serve(tokio::io::stdin(), tokio::io::stdout()).await
}

/// Relays stdin/stdout to the manager connection `stream`.
pub async fn relay_stdio(stream: UnixStream) -> RelayEnd {
    relay(tokio::io::stdin(), tokio::io::stdout(), stream).await
}

/// Relays `input`→`stream` and `stream`→`output` until one side closes.
pub async fn relay<I, O>(mut input: I, mut output: O, stream: UnixStream) -> RelayEnd
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let (mut from_manager, mut to_manager) = stream.into_split();
    let exit_seen = Arc::new(AtomicBool::new(false));

    enum Up {
        InputEof,
        ManagerError(std::io::Error),
        InputError,
    }
    enum Down {
        ManagerEof,
        ManagerError(std::io::Error),
        OutputClosed,
    }

    let watcher = exit_seen.clone();
    let up = async move {
        let mut sniffer = ExitSniffer::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut buf).await {
                Ok(0) => {
                    let _ = to_manager.shutdown().await;
                    return Up::InputEof;
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("reading stdin failed: {e}");
                    return Up::InputError;
                }
            };
            if sniffer.feed(&buf[..n]) {
                watcher.store(true, Ordering::SeqCst);
            }
            if let Err(e) = to_manager.write_all(&buf[..n]).await {
                return Up::ManagerError(e);
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_manager.read(&mut buf).await {
                Ok(0) => return Down::ManagerEof,
                Ok(n) => n,
                Err(e) => return Down::ManagerError(e),
            };
            if output.write_all(&buf[..n]).await.is_err() || output.flush().await.is_err() {
                return Down::OutputClosed;
            }
        }
    };
    tokio::pin!(up);
    tokio::pin!(down);

    let unexpected = |what: String| {
        if exit_seen.load(Ordering::SeqCst) {
            RelayEnd::Exit
        } else {
            RelayEnd::ManagerGone(what)
        }
    };
    tokio::select! {
        u = &mut up => match u {
            Up::InputEof | Up::InputError => {
                // The editor is done; let the manager finish its answers.
                match tokio::time::timeout(DRAIN_TIMEOUT, &mut down).await {
                    Ok(Down::ManagerError(e)) => {
                        tracing::debug!("manager connection error after stdin closed: {e}");
                        RelayEnd::EditorClosed
                    }
                    _ => RelayEnd::EditorClosed,
                }
            }
            Up::ManagerError(e) => unexpected(format!("writing to it failed: {e}")),
        },
        d = &mut down => match d {
            Down::ManagerEof => unexpected("it closed the connection".into()),
            Down::ManagerError(e) => unexpected(format!("reading from it failed: {e}")),
            Down::OutputClosed => RelayEnd::EditorClosed,
        },
    }
}

/// The message printed when the manager goes away mid-session.
pub fn manager_gone_message(paths: &ManagerPaths, what: &str) -> String {
    let pid = paths
        .read_pid()
        .map(|p| format!(" (pid {p})"))
        .unwrap_or_default();
    format!(
        "distant-bridge: the manager{pid} went away mid-session ({what}): it crashed or was \
         killed. Restart the bridge (your editor does this when it restarts its client); a \
         fresh manager starts on demand. Manager log: {}",
        paths.log.display()
    )
}

/// Watches a byte stream for an `exit` notification.
struct ExitSniffer {
    codec: LspCodec,
    buf: BytesMut,
}

impl Default for ExitSniffer {
    fn default() -> Self {
        Self {
            codec: LspCodec::strict().with_max_body(SNIFF_MAX_BODY),
            buf: BytesMut::new(),
        }
    }
}

impl ExitSniffer {
    /// Feeds bytes; true if they completed an `exit` notification.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        let mut seen = false;
        while let Ok(Some(frame)) = self.codec.decode(&mut self.buf) {
            if let Frame::Message(body) = frame {
                if let Ok(Message::Notification(n)) = jsonrpc::parse(&body) {
                    seen |= n.method == "exit";
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffer_sees_exit_split_across_reads() {
        let mut s = ExitSniffer::default();
        let mut bytes = crate::framing::frame(br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#);
        bytes.extend(crate::framing::frame(
            br#"{"jsonrpc":"2.0","method":"exit"}"#,
        ));
        let (a, b) = bytes.split_at(bytes.len() - 5);
        assert!(!s.feed(a));
        assert!(s.feed(b));
    }

    #[test]
    fn sniffer_skips_large_bodies_and_ignores_requests_named_exit() {
        let mut s = ExitSniffer::default();
        let big = format!(
            r#"{{"jsonrpc":"2.0","method":"exit","params":"{}"}}"#,
            "x".repeat(10_000)
        );
        assert!(!s.feed(&crate::framing::frame(big.as_bytes())));
        assert!(!s.feed(&crate::framing::frame(
            br#"{"jsonrpc":"2.0","id":3,"method":"exit"}"#
        )));
        assert!(s.feed(&crate::framing::frame(
            br#"{"jsonrpc":"2.0","method":"exit"}"#
        )));
    }
}
