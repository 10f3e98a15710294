//! Watch harness shared by the watch tests: a watch's stream read with
//! deadlines, and matchers for the changes it reports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use distant_protocol::msg::{Change, ChangeKind, Reply, Response, ResponsePayload};
use distant_server::reply::ReplySink;
use distant_server::watch::Watches;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

pub const WAIT: Duration = Duration::from_secs(10);

pub fn reply(r: Response) -> Reply {
    match r.payload {
        ResponsePayload::Single(r) => r,
        ResponsePayload::Batch(b) => panic!("unexpected batch {b:?}"),
    }
}

pub struct Watched {
    pub id: u64,
    pub rx: mpsc::Receiver<Response>,
    pub seen: Vec<Change>,
}

pub async fn watch(w: &Watches, root: &Path, recursive: bool, exclude: &[&str]) -> Watched {
    let (sink, rx) = ReplySink::channel(1, 64);
    let exclude = exclude.iter().map(|s| s.to_string()).collect();
    match w
        .watch(
            root.to_string_lossy().into_owned(),
            recursive,
            exclude,
            sink,
        )
        .await
    {
        Reply::Watching { watch } => Watched {
            id: watch,
            rx,
            seen: Vec::new(),
        },
        other => panic!("watch failed: {other:?}"),
    }
}

impl Watched {
    /// Waits until a change satisfying `pred` arrives; returns it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Change) -> bool) -> Change {
        if let Some(c) = self.seen.iter().find(|c| pred(c)) {
            return c.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let r = timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; saw {:?}", self.seen))
                .expect("watch stream ended");
            match reply(r) {
                Reply::Changes { watch, changes } => {
                    assert_eq!(watch, self.id);
                    assert!(!changes.is_empty());
                    for c in changes {
                        assert!(Path::new(&c.path).is_absolute(), "{c:?}");
                        let hit = pred(&c);
                        self.seen.push(c.clone());
                        if hit {
                            return c;
                        }
                    }
                }
                other => panic!("unexpected {other:?} while waiting for {what}"),
            }
        }
    }

    pub fn saw_path(&self, path: &Path) -> bool {
        self.seen
            .iter()
            .any(|c| Path::new(&c.path) == path || c.to.as_deref().map(Path::new) == Some(path))
    }

    /// Reads until the terminal Unwatched; returns its error.
    pub async fn ended(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = timeout_at(deadline, self.rx.recv())
                .await
                .expect("watch did not end")
                .expect("stream closed without Unwatched");
            match reply(r) {
                Reply::Changes { changes, .. } => self.seen.extend(changes),
                Reply::Unwatched { watch, error } => {
                    assert_eq!(watch, self.id);
                    return error;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

pub fn is(kind: ChangeKind, path: &Path) -> impl Fn(&Change) -> bool + '_ {
    move |c| c.kind == kind && Path::new(&c.path) == path
}

pub fn root(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().canonicalize().unwrap()
}
