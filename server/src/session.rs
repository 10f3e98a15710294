//! Per-session dispatcher (in progress).
use distant_protocol::msg::{Request, Response};
use tokio::sync::mpsc;

use crate::Limits;

/// Serves one session until `requests` closes.
pub async fn run_session(
    mut requests: mpsc::Receiver<Request>,
    responses: mpsc::Sender<Response>,
    limits: Limits,
) {
    let _ = (&responses, &limits);
    while requests.recv().await.is_some() {}
}
