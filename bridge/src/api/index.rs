//! `fs/index` and `fs/index/cancel`: the remote file index, for Go to File
//! and `:DistantFind`.
//!
//! The server walks the root (`Op::Index`) and streams pages of relative
//! paths, forwarded as `fs/index/results` then one `fs/index/done`. With
//! `follow`, the bridge keeps the editor's copy fresh: it sets up a
//! recursive watch on the root alongside the walk (changes seen during the
//! walk are applied after it) and, for every batch of changes, asks the server to list
//! just the changed subtrees again (`IndexQuery.only`, same ignore rules as
//! the full walk) and sends `fs/index/changed { removed, added }`: the
//! editor drops each removed path and everything under it, then adds the
//! added ones. Too many changes at once (or a watch that lost events)
//! become one full re-listing with `reset: true`.
//!
//! Bounded: pages come as the server sends them (its pages are bounded in
//! bytes) and every notification waits for room in the peer's bounded
//! output queue, which slows the server's walk down in turn. The index and
//! its watch stop when the peer cancels it or leaves.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use distant_protocol::driver::rpc::ReplyStream;
use distant_protocol::msg::{Change, ChangeKind, IndexQuery, Op, Reply};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::convert::{self, parse};
use super::streams;
use super::{Api, Done, Peer, StreamEntry, StreamKind};
use crate::jsonrpc::{self, RpcError};

/// Paths an index lists unless the editor asks for another limit.
const DEFAULT_MAX_PATHS: u64 = 200_000;
/// Changed paths refreshed subtree by subtree at most; more become a full
/// re-listing.
const MAX_REFRESH_PATHS: usize = 256;

fn t() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexP {
    connection: String,
    root: String,
    #[serde(default)]
    hidden: bool,
    #[serde(default = "t")]
    gitignore: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    max_paths: Option<u64>,
    #[serde(default)]
    follow: bool,
}

#[derive(Deserialize)]
struct CancelP {
    connection: String,
    index: String,
}

/// The live indexes' stop signals, by editor-facing id.
#[derive(Default)]
pub(crate) struct Follows(Mutex<HashMap<String, CancellationToken>>);

impl Follows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `fs/index`: starts the walk (and the watch, with `follow`) → `{index}`.
pub(crate) async fn start(
    api: &Arc<Api>,
    peer: &Arc<Peer>,
    params: Option<Value>,
) -> Result<Done, RpcError> {
    let p: IndexP = parse(params, "")?;
    if p.max_paths == Some(0) {
        return Err(RpcError::invalid_params(
            "parameter `maxPaths` must be at least 1",
        ));
    }
    let conn = api.connection(&p.connection)?;
    let root = if p.root.len() > 1 {
        p.root.trim_end_matches('/').to_string()
    } else {
        p.root.clone()
    };
    let query = IndexQuery {
        root: root.clone(),
        hidden: p.hidden,
        gitignore: p.gitignore,
        exclude: p.exclude,
        max_paths: Some(p.max_paths.unwrap_or(DEFAULT_MAX_PATHS)),
        only: vec![],
    };
    let op = Op::Index {
        query: query.clone(),
    };
    let opened = streams::open(api, &conn, StreamKind::Index, op).await?;
    let server_id = match &opened.first {
        Reply::IndexStarted { index } => *index,
        other => return Err(convert::unexpected("fs/index", other)),
    };
    // The watch is set up alongside the walk, not before it: on a big tree
    // setting it up takes a while, and the first page must not wait for it.
    let watch = if p.follow {
        let (api, conn) = (api.clone(), conn.clone());
        let op = Op::Watch {
            path: root.clone(),
            recursive: true,
            exclude: vec![],
        };
        WatchState::Opening(Box::pin(async move {
            streams::open(&api, &conn, StreamKind::Watch, op).await
        }))
    } else {
        WatchState::Off
    };
    let id = api.register_stream(StreamEntry {
        kind: StreamKind::Index,
        connection: conn.id.clone(),
        server_id,
        owner: peer.id,
    });
    let token = CancellationToken::new();
    api.index_follows.lock().insert(id.clone(), token.clone());
    let (go_tx, go_rx) = oneshot::channel();
    let task = Task {
        api: Arc::downgrade(api),
        out: peer.out.clone(),
        id: id.clone(),
        connection: conn.id.clone(),
        server_id,
        query,
        token,
    };
    tokio::spawn(task.run(opened.rest, watch, go_rx));
    Ok(Done {
        value: json!({ "index": id }),
        then: Some(go_tx),
    })
}

/// `fs/index/cancel`: stops the walk, or the following → `null`.
pub(crate) async fn cancel(
    api: &Arc<Api>,
    peer: &Arc<Peer>,
    params: Option<Value>,
) -> Result<Done, RpcError> {
    let p: CancelP = parse(params, "")?;
    let (conn, server_id) =
        api.owned_stream(peer.id, &p.connection, &p.index, StreamKind::Index)?;
    if let Some(token) = api.index_follows.lock().get(&p.index) {
        token.cancel();
    }
    match conn.rpc.call(Op::CancelIndex { index: server_id }).await {
        Ok(Reply::Ok) => Ok(Value::Null.into()),
        Ok(other) => Err(convert::unexpected("fs/index/cancel", &other)),
        Err(e) => Err(convert::driver_error(e, &conn.id)),
    }
}

type Opening = Pin<Box<dyn Future<Output = Result<streams::Opened, RpcError>> + Send>>;

/// The watch that keeps a followed index fresh.
enum WatchState {
    /// Not following.
    Off,
    /// Being set up (dropping it stops the watch once it is set up).
    Opening(Opening),
    Open(u64, ReplyStream),
    /// It failed or ended: why.
    Ended(String),
}

/// What the watch did next.
enum WatchEvent {
    Opened,
    Changes(Vec<Change>),
    Ended,
}

impl WatchState {
    /// The next event; pending forever when off or ended.
    async fn next(&mut self) -> WatchEvent {
        match self {
            WatchState::Off | WatchState::Ended(_) => std::future::pending().await,
            WatchState::Opening(opening) => {
                *self = match opening.await {
                    Ok(o) => match o.first {
                        Reply::Watching { watch } => WatchState::Open(watch, o.rest),
                        Reply::Error(e) => WatchState::Ended(e.message),
                        other => WatchState::Ended(format!("unexpected answer {other:?}")),
                    },
                    Err(e) => WatchState::Ended(e.message),
                };
                match self {
                    WatchState::Open(..) => WatchEvent::Opened,
                    _ => WatchEvent::Ended,
                }
            }
            WatchState::Open(_, stream) => loop {
                let end = match stream.recv().await {
                    Some(Ok(Reply::Changes { changes, .. })) => {
                        return WatchEvent::Changes(changes)
                    }
                    Some(Ok(Reply::Unwatched { error, .. })) => {
                        error.unwrap_or_else(|| "the watch of the root ended".into())
                    }
                    Some(Ok(Reply::Error(e))) => e.message,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => e.to_string(),
                    None => "the watch of the root ended".into(),
                };
                *self = WatchState::Ended(end);
                return WatchEvent::Ended;
            },
        }
    }
}

/// One index being forwarded (and followed) for its peer.
struct Task {
    api: Weak<Api>,
    out: mpsc::Sender<Vec<u8>>,
    id: String,
    connection: String,
    server_id: u64,
    query: IndexQuery,
    token: CancellationToken,
}

/// Why forwarding stopped early.
enum Stop {
    /// The peer left, or cancelled.
    Gone,
}

impl Task {
    async fn run(self, mut walk: ReplyStream, mut watch: WatchState, go: oneshot::Receiver<()>) {
        if go.await.is_ok() {
            let mut changed = Vec::new();
            let walked = self.walk(&mut walk, &mut watch, &mut changed).await;
            if let (Ok(true), false) = (walked, matches!(watch, WatchState::Off)) {
                let _ = self.follow(&mut watch, changed).await;
            }
        } else {
            self.stop_walk().await;
        }
        let open = match &watch {
            WatchState::Open(w, _) => Some(*w),
            _ => None,
        };
        if let (Some(api), Some(w)) = (self.api.upgrade(), open) {
            api.stop_remote(&self.connection, StreamKind::Watch, w)
                .await;
        }
        if let Some(api) = self.api.upgrade() {
            api.remove_stream(&self.id);
            api.index_follows.lock().remove(&self.id);
        }
    }

    async fn stop_walk(&self) {
        if let Some(api) = self.api.upgrade() {
            api.stop_remote(&self.connection, StreamKind::Index, self.server_id)
                .await;
        }
    }

    fn failed(&self, error: &str) -> Value {
        json!({"index": self.id, "count": 0, "truncated": false, "cancelled": false, "error": error})
    }

    async fn send(&self, method: &str, params: Value) -> Result<(), Stop> {
        let note = jsonrpc::notification(method, Some(&params));
        self.out.send(note).await.map_err(|_| Stop::Gone)
    }

    /// Forwards the walk; changes seen meanwhile are kept in `changed`.
    /// `Ok(true)` when the walk completed and following may start.
    async fn walk(
        &self,
        walk: &mut ReplyStream,
        watch: &mut WatchState,
        changed: &mut Vec<Change>,
    ) -> Result<bool, Stop> {
        loop {
            tokio::select! {
                _ = self.out.closed() => {
                    self.stop_walk().await;
                    return Err(Stop::Gone);
                }
                r = walk.recv() => {
                    let (done, complete) = match r {
                        Some(Ok(Reply::IndexPaths { paths, .. })) => {
                            let p = json!({"index": self.id, "paths": paths});
                            self.send("fs/index/results", p).await?;
                            continue;
                        }
                        Some(Ok(Reply::IndexDone { count, truncated, cancelled, error, .. })) => {
                            let mut p = json!({
                                "index": self.id,
                                "count": count,
                                "truncated": truncated,
                                "cancelled": cancelled,
                            });
                            if truncated {
                                p["note"] = format!(
                                    "only the first {count} files are listed: the tree holds more \
                                     (raise maxPaths, or exclude generated directories)"
                                )
                                .into();
                            }
                            let complete = !cancelled && error.is_none();
                            if let Some(e) = error {
                                p["error"] = e.into();
                            }
                            (p, complete)
                        }
                        Some(Ok(Reply::Error(e))) => (self.failed(&e.message), false),
                        Some(Ok(other)) => {
                            tracing::debug!(index = %self.id, "ignoring an unexpected index reply: {other:?}");
                            continue;
                        }
                        Some(Err(e)) => (self.failed(&e.to_string()), false),
                        None => (self.failed("the index ended without an answer"), false),
                    };
                    // `done` means "complete and followed": wait for the
                    // watch to be in place first.
                    if complete && matches!(watch, WatchState::Opening(_)) {
                        tokio::select! {
                            _ = self.out.closed() => return Err(Stop::Gone),
                            _ = self.token.cancelled() => {}
                            _ = watch.next() => {}
                        }
                    }
                    self.send("fs/index/done", done).await?;
                    return Ok(complete && !self.token.is_cancelled());
                }
                event = watch.next() => {
                    if let WatchEvent::Changes(changes) = event {
                        changed.extend(changes);
                        // Too many to refresh one by one: a full listing later.
                        if changed.len() > MAX_REFRESH_PATHS {
                            changed.truncate(MAX_REFRESH_PATHS + 1);
                        }
                    }
                }
            }
        }
    }

    /// After the walk: refresh the changed subtrees until cancelled.
    async fn follow(&self, watch: &mut WatchState, first: Vec<Change>) -> Result<(), Stop> {
        if !first.is_empty() {
            self.refresh(first).await?;
        }
        loop {
            if let WatchState::Ended(why) = watch {
                let why = why.clone();
                return self.follow_ended(&why).await;
            }
            tokio::select! {
                _ = self.out.closed() => return Err(Stop::Gone),
                _ = self.token.cancelled() => return Ok(()),
                event = watch.next() => {
                    if let WatchEvent::Changes(changes) = event {
                        self.refresh(changes).await?;
                    }
                }
            }
        }
    }

    async fn follow_ended(&self, error: &str) -> Result<(), Stop> {
        self.send(
            "fs/index/changed",
            json!({"index": self.id, "removed": [], "added": [], "ended": error}),
        )
        .await
    }

    /// Lists the changed subtrees again and sends what was removed and added.
    async fn refresh(&self, changes: Vec<Change>) -> Result<(), Stop> {
        let (touched, reset) = touched(&self.query.root, &changes);
        if touched.is_empty() && !reset {
            return Ok(());
        }
        let Some(api) = self.api.upgrade() else {
            return Err(Stop::Gone);
        };
        let Ok(conn) = api.connection(&self.connection) else {
            return self.follow_ended("the connection is closed").await;
        };
        drop(api);
        let mut query = self.query.clone();
        let removed: Vec<String> = if reset {
            vec![]
        } else {
            touched.iter().cloned().collect()
        };
        query.only = if reset { vec![] } else { removed.clone() };
        let mut stream = match conn.rpc.stream(Op::Index { query }).await {
            Ok(s) => s,
            Err(e) => return self.follow_ended(&e.to_string()).await,
        };
        let mut first = Some(removed);
        let mut server_id = None;
        loop {
            let r = tokio::select! {
                _ = self.out.closed() => None,
                _ = self.token.cancelled() => None,
                r = stream.recv() => Some(r),
            };
            let Some(r) = r else {
                // Stop the refresh too: its requester is gone.
                if let Some(index) = server_id {
                    let _ = conn.rpc.call(Op::CancelIndex { index }).await;
                }
                return Err(Stop::Gone);
            };
            let added = match r {
                Some(Ok(Reply::IndexStarted { index })) => {
                    server_id = Some(index);
                    continue;
                }
                Some(Ok(Reply::IndexPaths { paths, .. })) => paths,
                Some(Ok(Reply::IndexDone { .. })) | None => break,
                Some(Ok(Reply::Error(e))) if !reset => {
                    // The root itself went away, most likely.
                    tracing::debug!(index = %self.id, "refresh failed: {}", e.message);
                    break;
                }
                Some(Ok(Reply::Error(e))) => return self.follow_ended(&e.message).await,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return self.follow_ended(&e.to_string()).await,
            };
            let mut p = json!({"index": self.id, "added": added});
            if let Some(removed) = first.take() {
                p["removed"] = removed.into();
                if reset {
                    p["reset"] = true.into();
                }
            }
            self.send("fs/index/changed", p).await?;
        }
        if let Some(removed) = first {
            // Nothing is there any more: only removals (or an empty reset).
            let mut p = json!({"index": self.id, "removed": removed, "added": []});
            if reset {
                p["reset"] = true.into();
            }
            self.send("fs/index/changed", p).await?;
        }
        Ok(())
    }
}

/// The relative paths a batch of changes touched (files or directories
/// that appeared, vanished or moved), and whether everything must be
/// listed again (the watch lost events, or too much changed).
fn touched(root: &str, changes: &[Change]) -> (BTreeSet<String>, bool) {
    let mut out = BTreeSet::new();
    let mut reset = changes.len() > MAX_REFRESH_PATHS;
    for c in changes {
        let paths = std::iter::once(&c.path).chain(c.to.as_ref());
        for path in paths {
            let Some(rel) = relative(root, path) else {
                continue;
            };
            if rel.is_empty() {
                // A change of the root itself: events were lost.
                if c.kind == ChangeKind::Modified {
                    reset = true;
                }
                continue;
            }
            if matches!(c.kind, ChangeKind::Modified | ChangeKind::Attributes) {
                continue;
            }
            out.insert(rel);
        }
    }
    if out.len() > MAX_REFRESH_PATHS {
        reset = true;
    }
    (out, reset)
}

/// `path` relative to `root` ('/'-separated), or `None` outside of it.
fn relative(root: &str, path: &str) -> Option<String> {
    let root = root.trim_end_matches('/');
    if path.trim_end_matches('/') == root {
        return Some(String::new());
    }
    let rest = path.strip_prefix(root)?.strip_prefix('/')?;
    Some(rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, path: &str, to: Option<&str>) -> Change {
        Change {
            kind,
            path: path.into(),
            to: to.map(Into::into),
        }
    }

    #[test]
    fn changes_become_subtrees_to_list_again() {
        let (t, reset) = touched(
            "/r",
            &[
                change(ChangeKind::Created, "/r/a/b.txt", None),
                change(ChangeKind::Modified, "/r/c.txt", None),
                change(ChangeKind::Renamed, "/r/x", Some("/r/y/x")),
                change(ChangeKind::Deleted, "/elsewhere/z", None),
                change(ChangeKind::Deleted, "/rr/z", None),
            ],
        );
        assert!(!reset);
        let want: Vec<&str> = vec!["a/b.txt", "x", "y/x"];
        assert_eq!(t.iter().map(String::as_str).collect::<Vec<_>>(), want);

        let (_, reset) = touched("/r/", &[change(ChangeKind::Modified, "/r", None)]);
        assert!(reset, "a rescan hint lists everything again");
        let many: Vec<Change> = (0..=MAX_REFRESH_PATHS)
            .map(|i| change(ChangeKind::Created, &format!("/r/{i}"), None))
            .collect();
        assert!(touched("/r", &many).1);
        assert_eq!(relative("/", "/a/b").as_deref(), Some("a/b"));
        assert_eq!(relative("/", "/").as_deref(), Some(""));
        assert_eq!(relative("/r", "/r/").as_deref(), Some(""));
    }
}
