//! Searches of one session, with ripgrep's crates: walking the given paths
//! (`ignore`: hidden files, gitignore, depth, include/exclude globs),
//! matching paths or file contents (`grep-regex`, `grep-searcher`; binary
//! files skipped), streaming batched `SearchResults` and a final
//! `SearchDone`; cancellation and the per-session limit on running searches.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distant_protocol::msg::{ErrorKind, Reply, SearchMatch, SearchQuery, SearchTarget, Submatch};
use globset::GlobSet;
use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::WalkBuilder;

use crate::globs::{self, glob_set};
use crate::jobs::{Job, Jobs};
use crate::limits::Limits;
use crate::reply::ReplySink;

/// A batch of results is sent once it holds this many matches...
const BATCH_MATCHES: usize = 100;
/// ...or once its oldest match is this old.
const BATCH_AGE: Duration = Duration::from_millis(50);

/// The searches of one session.
pub struct Searches {
    limits: Limits,
    jobs: Jobs,
}

impl Searches {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            jobs: Jobs::new("search", "searches", "results"),
        }
    }

    /// Validates `query` and starts it on a thread of its own → `SearchStarted`
    /// (or an error); results and `SearchDone` then stream through `sink`.
    pub async fn start(&self, query: SearchQuery, sink: ReplySink) -> Reply {
        if let Err(reply) = self.jobs.check_open() {
            return reply;
        }
        let plan = match Plan::new(query) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let handle = tokio::runtime::Handle::current();
        let max_results = plan.query.max_results;
        let started = self
            .jobs
            .start(self.limits.max_searches, move |id, cancel| SearchJob {
                plan,
                run: Run {
                    id,
                    sink,
                    handle,
                    cancel,
                    pending: Vec::new(),
                    pending_since: None,
                    found: 0,
                    max_results,
                    truncated: false,
                    gone: false,
                },
            });
        match started {
            Ok(id) => Reply::SearchStarted { search: id },
            Err(reply) => reply,
        }
    }

    /// Stops a running search; it still ends with `SearchDone`.
    pub async fn cancel(&self, search: u64) -> Reply {
        self.jobs.cancel(search)
    }

    /// The session ended: cancel every search and wait briefly for them.
    pub async fn shutdown(&self) {
        self.jobs.shutdown().await
    }
}

/// A search on its thread.
struct SearchJob {
    plan: Plan,
    run: Run,
}

impl Job for SearchJob {
    fn execute(&mut self) {
        self.plan.execute(&mut self.run);
    }

    fn flush(&mut self) {
        self.run.flush();
    }

    fn finish(self, cancelled: bool, error: Option<String>) {
        let run = self.run;
        let done = Reply::SearchDone {
            search: run.id,
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
    query: SearchQuery,
    matcher: RegexMatcher,
    include: Option<GlobSet>,
    roots: Vec<PathBuf>,
}

impl Plan {
    fn new(query: SearchQuery) -> Result<Plan, Reply> {
        if query.paths.is_empty() {
            return Err(Reply::error(
                ErrorKind::InvalidParams,
                "the search has no paths: give at least one file or directory to search",
            ));
        }
        let mut roots = Vec::new();
        for p in &query.paths {
            if let Err(e) = std::fs::symlink_metadata(p) {
                let kind = match e.kind() {
                    std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                    std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                    _ => ErrorKind::Other,
                };
                let why = match kind {
                    ErrorKind::NotFound => "it does not exist".to_string(),
                    ErrorKind::PermissionDenied => "permission denied".to_string(),
                    _ => e.to_string(),
                };
                return Err(Reply::error(kind, format!("cannot search {p}: {why}")));
            }
            roots.push(PathBuf::from(p));
        }
        let mut builder = RegexMatcherBuilder::new();
        builder
            .case_insensitive(!query.case_sensitive)
            .fixed_strings(!query.regex);
        if query.target == SearchTarget::Contents {
            builder.line_terminator(Some(b'\n'));
        }
        let matcher = builder.build(&query.pattern).map_err(|e| {
            Reply::error(
                ErrorKind::InvalidParams,
                format!("invalid search pattern {:?}: {e}", query.pattern),
            )
        })?;
        let include = glob_set(&query.include, "include")?;
        // Exclude globs are checked here, used by the walker's filter.
        glob_set(&query.exclude, "exclude")?;
        Ok(Plan {
            query,
            matcher,
            include,
            roots,
        })
    }

    fn execute(&self, run: &mut Run) {
        let q = &self.query;
        let mut walk = WalkBuilder::new(&self.roots[0]);
        for root in &self.roots[1..] {
            walk.add(root);
        }
        walk.hidden(!q.hidden)
            .git_ignore(q.gitignore)
            .git_global(q.gitignore)
            .git_exclude(q.gitignore)
            .ignore(q.gitignore)
            .parents(q.gitignore)
            .require_git(false)
            .follow_links(false)
            .max_depth(
                q.max_depth
                    .map(|d| usize::try_from(d).unwrap_or(usize::MAX)),
            );
        if let Ok(Some(exclude)) = glob_set(&q.exclude, "exclude") {
            let roots = self.roots.clone();
            walk.filter_entry(move |entry| {
                entry.depth() == 0 || !globs::matches(&exclude, &relative(&roots, entry.path()))
            });
        }
        let mut searcher = SearcherBuilder::new()
            .line_number(true)
            .binary_detection(BinaryDetection::quit(b'\x00'))
            .build();

        for entry in walk.build() {
            if run.stopped() {
                return;
            }
            run.maybe_flush();
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(search = run.id, "skipping unreadable path: {e}");
                    continue;
                }
            };
            let path = entry.path();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let rel = if entry.depth() == 0 {
                if is_dir {
                    continue;
                }
                // A file given as a root: match on its name.
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                relative(&self.roots, path)
            };
            if let Some(include) = &self.include {
                // Directories are always walked for contents; files (and,
                // for path searches, directories) must match an include glob.
                let walked_dir = is_dir && q.target == SearchTarget::Contents;
                if !walked_dir && !globs::matches(include, &rel) {
                    continue;
                }
            }
            match q.target {
                SearchTarget::Path => self.match_path(run, path, &rel),
                SearchTarget::Contents => {
                    if entry.file_type().is_some_and(|t| t.is_file()) {
                        self.match_contents(run, &mut searcher, path);
                    }
                }
            }
        }
    }

    fn match_path(&self, run: &mut Run, path: &Path, rel: &str) {
        let shown = path.to_string_lossy().into_owned();
        let offset = shown.len().saturating_sub(rel.len()) as u64;
        let mut submatches = Vec::new();
        let _ = self.matcher.find_iter(rel.as_bytes(), |m| {
            submatches.push(Submatch {
                start: offset + m.start() as u64,
                end: offset + m.end() as u64,
            });
            true
        });
        if submatches.is_empty() {
            return;
        }
        run.add(SearchMatch {
            path: shown,
            line: None,
            column: None,
            text: None,
            submatches,
        });
    }

    fn match_contents(&self, run: &mut Run, searcher: &mut Searcher, path: &Path) {
        let mut sink = FileSink {
            matcher: &self.matcher,
            path: path.to_string_lossy().into_owned(),
            run,
            matches: Vec::new(),
            binary: false,
        };
        if let Err(e) = searcher.search_path(&self.matcher, path, &mut sink) {
            tracing::debug!(search = sink.run.id, "skipping {}: {e}", path.display());
        }
        if sink.binary {
            return;
        }
        let matches = std::mem::take(&mut sink.matches);
        for m in matches {
            run.add(m);
        }
    }
}

/// Collects the matches of one file (dropped if it turns out binary).
struct FileSink<'a> {
    matcher: &'a RegexMatcher,
    path: String,
    run: &'a mut Run,
    matches: Vec<SearchMatch>,
    binary: bool,
}

impl Sink for FileSink<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        if self.run.stopped() {
            return Ok(false);
        }
        if !self.run.has_room(self.matches.len()) {
            self.run.truncated = true;
            return Ok(false);
        }
        let mut line = mat.bytes();
        while let Some((&last, rest)) = line.split_last() {
            if last == b'\n' || last == b'\r' {
                line = rest;
            } else {
                break;
            }
        }
        let mut submatches = Vec::new();
        let _ = self.matcher.find_iter(line, |m| {
            submatches.push(Submatch {
                start: m.start() as u64,
                end: m.end() as u64,
            });
            true
        });
        self.matches.push(SearchMatch {
            path: self.path.clone(),
            line: mat.line_number(),
            column: submatches.first().map(|s| s.start + 1),
            text: Some(String::from_utf8_lossy(line).into_owned()),
            submatches,
        });
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, std::io::Error> {
        self.binary = true;
        Ok(false)
    }
}

/// The state of one running search (on its own thread).
struct Run {
    id: u64,
    sink: ReplySink,
    handle: tokio::runtime::Handle,
    cancel: Arc<AtomicBool>,
    pending: Vec<SearchMatch>,
    pending_since: Option<Instant>,
    found: u64,
    max_results: Option<u64>,
    truncated: bool,
    gone: bool,
}

impl Run {
    fn stopped(&self) -> bool {
        self.truncated || self.gone || self.cancel.load(Ordering::Relaxed)
    }

    /// Whether `extra` more matches (not yet added) still leave room for one.
    fn has_room(&self, extra: usize) -> bool {
        let found = self.found.saturating_add(extra as u64);
        self.max_results.is_none_or(|max| found < max)
    }

    fn add(&mut self, m: SearchMatch) {
        if self.gone || self.cancel.load(Ordering::Relaxed) {
            return;
        }
        if !self.has_room(0) {
            self.truncated = true;
            return;
        }
        self.found += 1;
        self.pending.push(m);
        self.pending_since.get_or_insert_with(Instant::now);
        self.maybe_flush();
    }

    fn maybe_flush(&mut self) {
        let old = self.pending_since.is_some_and(|t| t.elapsed() >= BATCH_AGE);
        if self.pending.len() >= BATCH_MATCHES || old {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.pending_since = None;
        if self.pending.is_empty() || self.gone || self.cancel.load(Ordering::Relaxed) {
            self.pending.clear();
            return;
        }
        let matches = std::mem::take(&mut self.pending);
        let reply = Reply::SearchResults {
            search: self.id,
            matches,
        };
        if !self.handle.block_on(self.sink.send(reply)) {
            self.gone = true;
        }
    }
}

/// `path` relative to the root it was found under ('/'-separated).
fn relative(roots: &[PathBuf], path: &Path) -> String {
    let rel = roots
        .iter()
        .filter_map(|r| path.strip_prefix(r).ok())
        .min_by_key(|rel| rel.as_os_str().len())
        .unwrap_or(path);
    rel.to_string_lossy().into_owned()
}
