//! Watches of one session (notify 8): recursive or not, debounced batches
//! of coalesced [`Change`]s with absolute paths, exclude globs, renames
//! paired when notify pairs them, the per-session limit, a fallback to
//! polling when the kernel's inotify limits are reached, and the terminal
//! `Unwatched` (after `unwatch`, or with an error when the watched path
//! vanished or the watch failed). When events were lost (queue overflow or
//! a rescan notice) a `Modified` change of the watched root tells the
//! client to look again. Watches share inotify instances (see [`hub`]).

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

mod hub;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distant_protocol::msg::{Change, ChangeKind, ErrorKind, Reply};
use globset::GlobSet;
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{Event, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::globs::glob_set;
use crate::limits::Limits;
use crate::registry::Registry;
use crate::reply::ReplySink;
use hub::{EventTx, Hub};

/// Events are collected this long after the first one of a batch.
const DEBOUNCE: Duration = Duration::from_millis(75);
/// Raw events buffered per watch before they are dropped (and reported as
/// a rescan hint).
const EVENT_QUEUE: usize = 4096;
/// How often the polling fallback looks at the files.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The watches of one session.
pub struct Watches {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    /// Live watches; sending (or dropping) the sender stops the watch.
    watches: Registry<oneshot::Sender<()>>,
    /// The session's inotify instances.
    hub: Hub,
}

impl Watches {
    pub fn new(limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                watches: Registry::new("watch"),
                hub: Hub::default(),
            }),
        }
    }

    /// Starts watching `path` → `Watching` (or an error); `Changes` and the
    /// final `Unwatched` then stream through `sink`.
    pub async fn watch(
        &self,
        path: String,
        recursive: bool,
        exclude: Vec<String>,
        sink: ReplySink,
    ) -> Reply {
        self.start(path, recursive, exclude, sink, false).await
    }

    async fn start(
        &self,
        path: String,
        recursive: bool,
        exclude: Vec<String>,
        sink: ReplySink,
        force_poll: bool,
    ) -> Reply {
        if let Err(reply) = self.shared.watches.check_open() {
            return reply;
        }
        if path.is_empty() {
            return Reply::error(ErrorKind::InvalidParams, "the path to watch is empty");
        }
        let root = match std::path::absolute(&path) {
            Ok(p) => p,
            Err(e) => {
                return Reply::error(
                    ErrorKind::InvalidParams,
                    format!("cannot watch {path}: {e}"),
                )
            }
        };
        if let Err(e) = std::fs::metadata(&root) {
            return io_reply(&e, &path);
        }
        let exclude = match glob_set(&exclude, "exclude") {
            Ok(g) => g,
            Err(reply) => return reply,
        };

        let (stop_tx, stop_rx) = oneshot::channel();
        let max = self.shared.limits.max_watches;
        let admitted = self.shared.watches.admit(
            max,
            || {
                format!(
                    "this session already has {max} watches, the most allowed; unwatch some, \
                     or start the server with a higher --max-watches"
                )
            },
            stop_tx,
        );
        let id = match admitted {
            Ok(id) => id,
            Err(reply) => return reply,
        };

        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        // A recursive watch walks the whole tree: keep it off the runtime.
        let made = tokio::task::spawn_blocking({
            let (root, tx, overflow) = (root.clone(), tx.clone(), overflow.clone());
            let shared = self.shared.clone();
            move || source(&shared.hub, id, &root, mode, &tx, &overflow, force_poll)
        })
        .await
        .unwrap_or_else(|e| {
            Err(notify::Error::generic(&format!(
                "the watch could not start: {e}"
            )))
        });
        let source = match made {
            Ok(source) => source,
            Err(e) => {
                self.shared.watches.remove(id);
                return notify_reply(&e, &path);
            }
        };
        let task = WatchTask {
            id,
            root,
            mode,
            exclude,
            source,
            tx,
            overflow,
            sink,
            shared: self.shared.clone(),
        };
        tokio::spawn(task.run(rx, stop_rx));
        Reply::Watching { watch: id }
    }

    /// Stops a watch; its stream ends with `Unwatched { error: None }`.
    pub async fn unwatch(&self, watch: u64) -> Reply {
        // A watch that ended already (its path vanished) has nothing to stop.
        match self.shared.watches.take(watch) {
            Ok(stop) => {
                if let Some(stop) = stop {
                    let _ = stop.send(());
                }
                Reply::Ok
            }
            Err(reply) => reply,
        }
    }

    /// The session ended: stop every watch.
    pub async fn shutdown(&self) {
        self.shared.watches.close();
        for stop in self.shared.watches.drain() {
            let _ = stop.send(());
        }
    }
}

/// Whether a notify error means the kernel's inotify limits were reached.
fn is_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => matches!(
            io.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EMFILE) | Some(libc::ENFILE)
        ),
        _ => false,
    }
}

fn handler(
    tx: &EventTx,
    overflow: &Arc<AtomicBool>,
) -> impl FnMut(notify::Result<Event>) + Send + 'static {
    let tx = tx.clone();
    let overflow = overflow.clone();
    move |event| {
        if tx.try_send(event).is_err() {
            overflow.store(true, Ordering::SeqCst);
        }
    }
}

/// Where a watch's raw events come from.
enum Source {
    /// A root registered in one of the session's shared inotify instances.
    Native,
    /// A watcher of its own that polls (inotify limits were reached).
    Polled(Box<dyn Watcher + Send>),
}

fn source(
    hub: &Hub,
    id: u64,
    root: &Path,
    mode: RecursiveMode,
    tx: &EventTx,
    overflow: &Arc<AtomicBool>,
    force_poll: bool,
) -> notify::Result<Source> {
    if !force_poll {
        match hub.subscribe(
            id,
            root,
            matches!(mode, RecursiveMode::Recursive),
            tx,
            overflow,
        ) {
            Ok(()) => return Ok(Source::Native),
            Err(e) if is_limit(&e) => {
                tracing::warn!(
                    "cannot watch {} with inotify ({e}); polling it every {POLL_INTERVAL:?} instead. \
                     Raise fs.inotify.max_user_watches / max_user_instances to avoid this",
                    root.display()
                );
            }
            Err(e) => return Err(e),
        }
    }
    poll_watcher(root, mode, tx, overflow).map(Source::Polled)
}

fn poll_watcher(
    root: &Path,
    mode: RecursiveMode,
    tx: &EventTx,
    overflow: &Arc<AtomicBool>,
) -> notify::Result<Box<dyn Watcher + Send>> {
    let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
    let mut w = PollWatcher::new(handler(tx, overflow), config)?;
    w.watch(root, mode)?;
    Ok(Box::new(w))
}

/// A change before rename halves are paired.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Change(ChangeKind, PathBuf, Option<PathBuf>),
    RenameFrom(PathBuf),
    RenameTo(PathBuf),
}

struct WatchTask {
    id: u64,
    root: PathBuf,
    mode: RecursiveMode,
    exclude: Option<GlobSet>,
    source: Source,
    tx: EventTx,
    overflow: Arc<AtomicBool>,
    sink: ReplySink,
    shared: Arc<Shared>,
}

impl WatchTask {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<notify::Result<Event>>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut pending: Vec<Pending> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut rearm = false;
        let end: Option<String> = loop {
            let flush_at = deadline;
            tokio::select! {
                _ = &mut stop => {
                    // Report what was already seen, then end.
                    self.flush(&mut pending).await;
                    break None;
                }
                event = rx.recv() => match event {
                    Some(Ok(event)) => {
                        if event.need_rescan() {
                            self.overflow.store(true, Ordering::SeqCst);
                        }
                        if event.paths.iter().any(|p| p == &self.root)
                            && matches!(event.kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)))
                        {
                            rearm = true;
                        }
                        map_event(event, &mut pending);
                        deadline.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                    Some(Err(e)) if is_limit(&e) => {
                        tracing::warn!(
                            watch = self.id,
                            "inotify limit reached while watching {} ({e}); polling it every {POLL_INTERVAL:?} instead",
                            self.root.display()
                        );
                        if matches!(self.source, Source::Native) {
                            self.release_native().await;
                        }
                        match poll_watcher(&self.root, self.mode, &self.tx, &self.overflow) {
                            Ok(w) => self.source = Source::Polled(w),
                            Err(e) => break Some(format!("cannot keep watching {}: {e}", self.root.display())),
                        }
                        self.overflow.store(true, Ordering::SeqCst);
                        deadline.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                    Some(Err(e)) => match e.kind {
                        // A subdirectory vanished while being added: harmless.
                        notify::ErrorKind::PathNotFound | notify::ErrorKind::WatchNotFound => {
                            tracing::debug!(watch = self.id, "watch: {e}");
                        }
                        notify::ErrorKind::Io(_) => {
                            break Some(format!("watching {} failed: {e}", self.root.display()));
                        }
                        _ => tracing::warn!(watch = self.id, "watching {}: {e}", self.root.display()),
                    },
                    // Cannot happen: this task holds a sender.
                    None => break Some("the watch stopped unexpectedly".to_string()),
                },
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    deadline = None;
                    if !self.flush(&mut pending).await {
                        break None;
                    }
                    if std::fs::symlink_metadata(&self.root).is_err() {
                        break Some(format!(
                            "{} was deleted or moved away; watch it again once it exists",
                            self.root.display()
                        ));
                    }
                    if std::mem::take(&mut rearm) {
                        // The watched file was replaced (e.g. an atomic save):
                        // watch the new one.
                        if let Err(e) = self.rearm().await {
                            break Some(format!("cannot keep watching {}: {e}", self.root.display()));
                        }
                    }
                }
            }
        };
        match std::mem::replace(&mut self.source, Source::Native) {
            Source::Native => self.release_native().await,
            Source::Polled(watcher) => drop(watcher),
        }
        self.shared.watches.remove(self.id);
        if let Some(error) = &end {
            tracing::info!(watch = self.id, "watch ended: {error}");
        }
        self.sink
            .send(Reply::Unwatched {
                watch: self.id,
                error: end,
            })
            .await;
    }

    /// Leaves the shared inotify instance. Off the runtime: the hub may be
    /// busy walking another watch's tree.
    fn release_native(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (shared, id) = (self.shared.clone(), self.id);
        async move {
            let _ = tokio::task::spawn_blocking(move || shared.hub.unsubscribe(id)).await;
        }
    }

    /// Watches the root again after it was replaced.
    async fn rearm(&mut self) -> notify::Result<()> {
        if let Source::Polled(watcher) = &mut self.source {
            let _ = watcher.unwatch(&self.root);
            return watcher.watch(&self.root, self.mode);
        }
        let (shared, id) = (self.shared.clone(), self.id);
        tokio::task::spawn_blocking(move || shared.hub.rearm(id))
            .await
            .unwrap_or_else(|e| Err(notify::Error::generic(&e.to_string())))
    }

    /// Sends the pending changes; `false` when the session is gone.
    async fn flush(&mut self, pending: &mut Vec<Pending>) -> bool {
        let mut changes = resolve(std::mem::take(pending), &self.root, self.exclude.as_ref());
        if self.overflow.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                watch = self.id,
                "events were lost while watching {}; asking the client to look again",
                self.root.display()
            );
            changes.push(Change {
                kind: ChangeKind::Modified,
                path: self.root.to_string_lossy().into_owned(),
                to: None,
            });
        }
        if changes.is_empty() {
            return true;
        }
        self.sink
            .send(Reply::Changes {
                watch: self.id,
                changes,
            })
            .await
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn map_event(event: Event, out: &mut Vec<Pending>) {
    let simple = |kind: ChangeKind, out: &mut Vec<Pending>, paths: Vec<PathBuf>| {
        out.extend(paths.into_iter().map(|p| Pending::Change(kind, p, None)));
    };
    match event.kind {
        EventKind::Access(_) => {}
        EventKind::Create(_) => simple(ChangeKind::Created, out, event.paths),
        EventKind::Remove(_) => simple(ChangeKind::Deleted, out, event.paths),
        EventKind::Modify(ModifyKind::Metadata(_)) => {
            simple(ChangeKind::Attributes, out, event.paths)
        }
        EventKind::Modify(ModifyKind::Name(mode)) => {
            let mut paths = event.paths;
            match mode {
                RenameMode::Both if paths.len() >= 2 => {
                    let to = paths.swap_remove(1);
                    let from = paths.swap_remove(0);
                    out.push(Pending::Change(ChangeKind::Renamed, from, Some(to)));
                }
                RenameMode::From => out.extend(paths.into_iter().map(Pending::RenameFrom)),
                RenameMode::To => out.extend(paths.into_iter().map(Pending::RenameTo)),
                _ => simple(ChangeKind::Renamed, out, paths),
            }
        }
        EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            simple(ChangeKind::Modified, out, event.paths)
        }
    }
}

/// Pairs rename halves, applies excludes, drops duplicates (keeping order).
fn resolve(pending: Vec<Pending>, root: &Path, exclude: Option<&GlobSet>) -> Vec<Change> {
    let mut froms = HashSet::new();
    let mut tos = HashSet::new();
    for p in &pending {
        if let Pending::Change(ChangeKind::Renamed, from, Some(to)) = p {
            froms.insert(from.clone());
            tos.insert(to.clone());
        }
    }
    let excluded = |p: &Path| exclude.is_some_and(|set| is_excluded(set, root, p));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in pending {
        let change = match p {
            Pending::RenameFrom(path) if froms.contains(&path) => continue,
            Pending::RenameTo(path) if tos.contains(&path) => continue,
            // Moved out of sight (or the other half is still to come).
            Pending::RenameFrom(path) => (ChangeKind::Renamed, path, None),
            // Moved in from outside the watch: it appeared.
            Pending::RenameTo(path) => (ChangeKind::Created, path, None),
            Pending::Change(kind, path, to) => (kind, path, to),
        };
        let change = match change {
            (ChangeKind::Renamed, from, Some(to)) => match (excluded(&from), excluded(&to)) {
                (true, true) => continue,
                (true, false) => (ChangeKind::Created, to, None),
                (false, true) => (ChangeKind::Deleted, from, None),
                (false, false) => (ChangeKind::Renamed, from, Some(to)),
            },
            (kind, path, to) => {
                if excluded(&path) {
                    continue;
                }
                (kind, path, to)
            }
        };
        let (kind, path, to) = change;
        if seen.insert((kind_key(kind), path.clone(), to.clone())) {
            out.push(Change {
                kind,
                path: path.to_string_lossy().into_owned(),
                to: to.map(|t| t.to_string_lossy().into_owned()),
            });
        }
    }
    out
}

/// `ChangeKind` is not `Hash`; this stands in for it when deduplicating.
fn kind_key(kind: ChangeKind) -> u8 {
    match kind {
        ChangeKind::Created => 0,
        ChangeKind::Modified => 1,
        ChangeKind::Deleted => 2,
        ChangeKind::Renamed => 3,
        ChangeKind::Attributes => 4,
    }
}

/// Whether `path` (under `root`) or one of its parents below `root`
/// matches an exclude glob (whole relative path, or the last component).
fn is_excluded(set: &GlobSet, root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut prefix = PathBuf::new();
    for part in rel.components() {
        prefix.push(part);
        if set.is_match(&prefix) || set.is_match(Path::new(part.as_os_str())) {
            return true;
        }
    }
    false
}

fn io_reply(e: &std::io::Error, path: &str) -> Reply {
    match e.kind() {
        std::io::ErrorKind::NotFound => Reply::error(
            ErrorKind::NotFound,
            format!("cannot watch {path}: it does not exist"),
        ),
        std::io::ErrorKind::PermissionDenied => Reply::error(
            ErrorKind::PermissionDenied,
            format!("cannot watch {path}: permission denied"),
        ),
        _ => Reply::error(ErrorKind::Other, format!("cannot watch {path}: {e}")),
    }
}

fn notify_reply(e: &notify::Error, path: &str) -> Reply {
    match &e.kind {
        notify::ErrorKind::PathNotFound => Reply::error(
            ErrorKind::NotFound,
            format!("cannot watch {path}: it does not exist"),
        ),
        notify::ErrorKind::Io(io) => io_reply(io, path),
        _ => Reply::error(ErrorKind::Other, format!("cannot watch {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distant_protocol::msg::{Response, ResponsePayload};

    #[tokio::test(flavor = "multi_thread")]
    async fn polling_fallback_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watches::new(Limits::default());
        let (sink, mut rx) = ReplySink::channel(1, 16);
        let root = dir.path().to_string_lossy().into_owned();
        let r = w.start(root, true, vec![], sink, true).await;
        let Reply::Watching { watch } = r else {
            panic!("{r:?}")
        };
        let file = dir.path().join("polled.txt");
        std::fs::write(&file, b"x").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        'outer: loop {
            let resp: Response = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("no change seen by the poller")
                .unwrap();
            if let ResponsePayload::Single(Reply::Changes { changes, .. }) = resp.payload {
                for c in changes {
                    if c.kind == ChangeKind::Created && Path::new(&c.path) == file {
                        break 'outer;
                    }
                }
            }
        }
        assert_eq!(w.unwatch(watch).await, Reply::Ok);
    }

    #[test]
    fn renames_pair_and_excludes_apply() {
        let root = Path::new("/r");
        let set = glob_set(&["*.log".into(), "target".into()], "exclude").unwrap();
        let pending = vec![
            Pending::RenameFrom("/r/a".into()),
            Pending::RenameTo("/r/b".into()),
            Pending::Change(ChangeKind::Renamed, "/r/a".into(), Some("/r/b".into())),
            Pending::RenameFrom("/r/gone".into()),
            Pending::RenameTo("/r/came".into()),
            Pending::Change(ChangeKind::Modified, "/r/x.log".into(), None),
            Pending::Change(ChangeKind::Modified, "/r/target/debug/x".into(), None),
            Pending::Change(
                ChangeKind::Renamed,
                "/r/y.log".into(),
                Some("/r/y.txt".into()),
            ),
            Pending::Change(ChangeKind::Modified, "/r/k".into(), None),
            Pending::Change(ChangeKind::Modified, "/r/k".into(), None),
        ];
        let out = resolve(pending, root, set.as_ref());
        let got: Vec<(ChangeKind, &str, Option<&str>)> = out
            .iter()
            .map(|c| (c.kind, c.path.as_str(), c.to.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ChangeKind::Renamed, "/r/a", Some("/r/b")),
                (ChangeKind::Renamed, "/r/gone", None),
                (ChangeKind::Created, "/r/came", None),
                (ChangeKind::Created, "/r/y.txt", None),
                (ChangeKind::Modified, "/r/k", None),
            ]
        );
    }
}
