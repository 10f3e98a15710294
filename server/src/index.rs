//! File indexes of one session: every file under a root (ripgrep's `ignore`
//! crate, its parallel walker: hidden files, gitignore, exclude globs, an
//! optional set of subtrees to refresh), streamed as `IndexPaths` pages and a
//! final `IndexDone`; truncation at `max_paths`, cancellation, and the
//! per-session limit (shared in size with searches: `--max-searches`).
//!
//! Memory: walker threads hand paths to the collector through a channel
//! bounded in paths, and the collector's page is bounded in bytes; both wait
//! for the session's outbox, so a slow client slows the walk instead of
//! growing a buffer. The walk stops as soon as the index is cancelled, the
//! client is gone or the limit is reached.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distant_protocol::msg::{ErrorKind, IndexQuery, Reply};
use globset::GlobSet;
use ignore::{WalkBuilder, WalkState};

use crate::globs::{self, glob_set};
use crate::jobs::{Job, Jobs};
use crate::limits::Limits;
use crate::reply::ReplySink;

/// A page is sent once it holds this many paths...
const PAGE_PATHS: usize = 2048;
/// ...or this many bytes of paths...
const PAGE_BYTES: usize = 128 * 1024;
/// ...or once its oldest path is this old (so the first page shows at once).
const PAGE_AGE: Duration = Duration::from_millis(20);
/// Paths in flight between the walker threads and the collector.
const CHANNEL_PATHS: usize = 4096;
/// Walker threads at most.
const MAX_THREADS: usize = 4;

/// The indexes of one session.
pub struct Indexes {
    limits: Limits,
    jobs: Jobs,
}

impl Indexes {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            jobs: Jobs::new("index", "indexes", "paths"),
        }
    }

    /// Validates `query` and starts the walk on its own thread →
    /// `IndexStarted` (or an error); pages and `IndexDone` then stream
    /// through `sink`.
    pub async fn start(&self, query: IndexQuery, sink: ReplySink) -> Reply {
        if let Err(reply) = self.jobs.check_open() {
            return reply;
        }
        let plan = match Plan::new(query) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let handle = tokio::runtime::Handle::current();
        let max_paths = plan.max_paths;
        let started = self
            .jobs
            .start(self.limits.max_searches, move |id, cancel| IndexJob {
                plan,
                run: Run {
                    id,
                    sink,
                    handle,
                    cancel,
                    page: Vec::new(),
                    page_bytes: 0,
                    page_since: None,
                    count: 0,
                    max_paths,
                    truncated: false,
                    gone: false,
                },
            });
        match started {
            Ok(id) => Reply::IndexStarted { index: id },
            Err(reply) => reply,
        }
    }

    /// Stops a running index; it still ends with `IndexDone`.
    pub async fn cancel(&self, index: u64) -> Reply {
        self.jobs.cancel(index)
    }

    /// The session ended: cancel every index and wait briefly for them.
    pub async fn shutdown(&self) {
        self.jobs.shutdown().await
    }
}

/// An index walk on its thread.
struct IndexJob {
    plan: Plan,
    run: Run,
}

impl Job for IndexJob {
    fn execute(&mut self) {
        self.plan.execute(&mut self.run);
    }

    fn flush(&mut self) {
        self.run.flush();
    }

    fn finish(self, cancelled: bool, error: Option<String>) {
        let run = self.run;
        let done = Reply::IndexDone {
            index: run.id,
            count: run.count,
            truncated: run.truncated,
            cancelled,
            error,
        };
        if !run.gone {
            run.handle.block_on(run.sink.send(done));
        }
    }
}

/// A validated query, ready to run.
struct Plan {
    root: PathBuf,
    hidden: bool,
    gitignore: bool,
    exclude: Option<GlobSet>,
    only: Vec<String>,
    max_paths: Option<u64>,
}

impl Plan {
    fn new(q: IndexQuery) -> Result<Plan, Reply> {
        if q.root.is_empty() {
            return Err(Reply::error(
                ErrorKind::InvalidParams,
                "the index has no root: give the directory to list",
            ));
        }
        match std::fs::metadata(&q.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Reply::error(
                    ErrorKind::NotADirectory,
                    format!("cannot index {}: it is not a directory", q.root),
                ))
            }
            Err(e) => {
                let (kind, why) = match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        (ErrorKind::NotFound, "it does not exist".to_string())
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        (ErrorKind::PermissionDenied, "permission denied".to_string())
                    }
                    _ => (ErrorKind::Other, e.to_string()),
                };
                return Err(Reply::error(
                    kind,
                    format!("cannot index {}: {why}", q.root),
                ));
            }
        }
        let mut only = Vec::new();
        for o in q.only {
            let o = o.trim_matches('/').to_string();
            if o.split('/').any(|c| c == "..") {
                return Err(Reply::error(
                    ErrorKind::InvalidParams,
                    format!("invalid `only` path {o:?}: it must stay under the root"),
                ));
            }
            if o.is_empty() || o == "." {
                // The whole root: no restriction at all.
                only.clear();
                break;
            }
            only.push(o);
        }
        Ok(Plan {
            root: PathBuf::from(&q.root),
            hidden: q.hidden,
            gitignore: q.gitignore,
            exclude: glob_set(&q.exclude, "exclude")?,
            only,
            max_paths: q.max_paths,
        })
    }

    fn execute(&self, run: &mut Run) {
        let mut walk = WalkBuilder::new(&self.root);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS);
        walk.hidden(!self.hidden)
            .git_ignore(self.gitignore)
            .git_global(self.gitignore)
            .git_exclude(self.gitignore)
            .ignore(self.gitignore)
            .parents(self.gitignore)
            .require_git(false)
            .follow_links(false)
            .threads(threads);
        let root = self.root.clone();
        let exclude = self.exclude.clone();
        let only = self.only.clone();
        if exclude.is_some() || !only.is_empty() {
            walk.filter_entry(move |entry| {
                if entry.depth() == 0 {
                    return true;
                }
                let rel = relative(&root, entry.path());
                if let Some(ex) = &exclude {
                    if globs::matches(ex, &rel) {
                        return false;
                    }
                }
                only.is_empty() || only.iter().any(|o| related(o, &rel))
            });
        }
        let (tx, rx) = sync_channel::<String>(CHANNEL_PATHS);
        let stop = Arc::new(AtomicBool::new(false));
        let walker = walk.build_parallel();
        let root = self.root.clone();
        let only = self.only.clone();
        std::thread::scope(|scope| {
            let stop_walk = stop.clone();
            let cancel = run.cancel.clone();
            scope.spawn(move || {
                walker.run(|| {
                    let tx = tx.clone();
                    let (stop, cancel, root, only) = (
                        stop_walk.clone(),
                        cancel.clone(),
                        root.clone(),
                        only.clone(),
                    );
                    Box::new(move |entry| {
                        if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                            return WalkState::Quit;
                        }
                        let entry = match entry {
                            Ok(e) => e,
                            Err(e) => {
                                tracing::debug!("index: skipping unreadable path: {e}");
                                return WalkState::Continue;
                            }
                        };
                        let listed = entry.depth() > 0
                            && entry
                                .file_type()
                                .is_some_and(|t| t.is_file() || t.is_symlink());
                        if !listed {
                            return WalkState::Continue;
                        }
                        let rel = relative(&root, entry.path());
                        // Ancestors of an `only` subtree are walked, not listed.
                        if !only.is_empty() && !only.iter().any(|o| under(o, &rel)) {
                            return WalkState::Continue;
                        }
                        match tx.send(rel) {
                            Ok(()) => WalkState::Continue,
                            Err(_) => WalkState::Quit,
                        }
                    })
                });
            });
            run.collect(rx);
            // Whatever ended the collection, the walkers stop now.
            stop.store(true, Ordering::SeqCst);
        });
    }
}

/// The state of one running index (on its own thread).
struct Run {
    id: u64,
    sink: ReplySink,
    handle: tokio::runtime::Handle,
    cancel: Arc<AtomicBool>,
    page: Vec<String>,
    page_bytes: usize,
    page_since: Option<Instant>,
    count: u64,
    max_paths: Option<u64>,
    truncated: bool,
    gone: bool,
}

impl Run {
    fn stopped(&self) -> bool {
        self.truncated || self.gone || self.cancel.load(Ordering::Relaxed)
    }

    /// Takes paths from the walkers until they finish or the run stops;
    /// dropping `rx` on return makes every walker quit.
    fn collect(&mut self, rx: Receiver<String>) {
        loop {
            if self.stopped() {
                return;
            }
            let received = match self.page_since {
                Some(since) => {
                    let wait = PAGE_AGE.saturating_sub(since.elapsed());
                    rx.recv_timeout(wait)
                }
                // Wake up now and then to notice a cancel.
                None => rx.recv_timeout(Duration::from_millis(100)),
            };
            match received {
                Ok(path) => self.add(path),
                Err(RecvTimeoutError::Timeout) => {
                    if self.page_since.is_some() {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn add(&mut self, path: String) {
        if self.max_paths.is_some_and(|max| self.count >= max) {
            self.truncated = true;
            return;
        }
        self.count += 1;
        self.page_bytes += path.len();
        self.page.push(path);
        self.page_since.get_or_insert_with(Instant::now);
        let old = self.page_since.is_some_and(|t| t.elapsed() >= PAGE_AGE);
        if self.page.len() >= PAGE_PATHS || self.page_bytes >= PAGE_BYTES || old {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.page_since = None;
        self.page_bytes = 0;
        if self.page.is_empty() || self.gone || self.cancel.load(Ordering::Relaxed) {
            self.page.clear();
            return;
        }
        let paths = std::mem::take(&mut self.page);
        let reply = Reply::IndexPaths {
            index: self.id,
            paths,
        };
        if !self.handle.block_on(self.sink.send(reply)) {
            self.gone = true;
        }
    }
}

/// `path` relative to `root`, '/'-separated.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let s = rel.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '/' {
        s.into_owned()
    } else {
        s.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

/// `rel` is `o` or inside it.
fn under(o: &str, rel: &str) -> bool {
    rel == o || (rel.starts_with(o) && rel.as_bytes().get(o.len()) == Some(&b'/'))
}

/// `rel` is `o`, inside it, or one of its ancestors (walked to reach it).
fn related(o: &str, rel: &str) -> bool {
    under(o, rel) || under(rel, o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtrees_and_their_ancestors() {
        assert!(under("a/b", "a/b"));
        assert!(under("a/b", "a/b/c.txt"));
        assert!(!under("a/b", "a/bc"));
        assert!(!under("a/b", "a"));
        assert!(related("a/b", "a"));
        assert!(!related("a/b", "c"));
        assert!(!related("a/b", "a/c"));
    }
}
