//! Search over real files: every query option, limits, cancel and errors.

use std::path::Path;
use std::time::Duration;

use distant_protocol::msg::{
    ErrorKind, Reply, Response, ResponsePayload, SearchMatch, SearchQuery, SearchTarget, Submatch,
};
use distant_server::limits::Limits;
use distant_server::reply::ReplySink;
use distant_server::search::Searches;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

fn reply(r: Response) -> Reply {
    match r.payload {
        ResponsePayload::Single(r) => r,
        ResponsePayload::Batch(b) => panic!("unexpected batch {b:?}"),
    }
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files: &[(&str, &[u8])] = &[
        ("a.txt", b"hello world\nHello again\nnothing here\n"),
        ("b.rs", b"fn main() { println!(\"hello\"); }\n"),
        ("regex.txt", b"a.c abc\n"),
        ("sub/c.txt", b"deep hello\n"),
        ("sub/deeper/d.txt", b"deepest hello\n"),
        (".hidden/h.txt", b"hello hidden\n"),
        (".hfile", b"hello dotfile\n"),
        ("ignored.log", b"hello ignored\n"),
        (".gitignore", b"*.log\n"),
        ("bin.dat", b"hello\x00binary hello\n"),
    ];
    for (name, data) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    dir
}

fn query(target: SearchTarget, pattern: &str, root: &Path) -> SearchQuery {
    SearchQuery {
        target,
        pattern: pattern.into(),
        regex: true,
        case_sensitive: true,
        paths: vec![root.to_string_lossy().into_owned()],
        include: vec![],
        exclude: vec![],
        hidden: false,
        gitignore: true,
        max_results: None,
        max_depth: None,
    }
}

struct Done {
    matches: Vec<SearchMatch>,
    truncated: bool,
    cancelled: bool,
}

async fn collect(id: u64, rx: &mut mpsc::Receiver<Response>) -> Done {
    let mut matches = Vec::new();
    loop {
        let r = timeout(WAIT, rx.recv())
            .await
            .expect("search did not finish");
        match reply(r.expect("stream ended without SearchDone")) {
            Reply::SearchResults { search, matches: m } => {
                assert_eq!(search, id);
                assert!(!m.is_empty(), "empty batch");
                matches.extend(m);
            }
            Reply::SearchDone {
                search,
                truncated,
                cancelled,
                error,
            } => {
                assert_eq!(search, id);
                assert_eq!(error, None);
                return Done {
                    matches,
                    truncated,
                    cancelled,
                };
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn run(q: SearchQuery) -> Done {
    let s = Searches::new(Limits::default());
    let (sink, mut rx) = ReplySink::channel(1, 16);
    match s.start(q, sink).await {
        Reply::SearchStarted { search } => collect(search, &mut rx).await,
        other => panic!("search did not start: {other:?}"),
    }
}

/// Paths relative to `root`, sorted and deduplicated.
fn files(done: &Done, root: &Path) -> Vec<String> {
    let mut v: Vec<String> = done
        .matches
        .iter()
        .map(|m| {
            Path::new(&m.path)
                .strip_prefix(root)
                .unwrap_or_else(|_| panic!("{} is not under the root", m.path))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn contents_match_with_lines_columns_and_submatches() {
    let dir = tree();
    let done = run(query(SearchTarget::Contents, "hello", dir.path())).await;
    assert!(!done.truncated);
    assert!(
        !done.cancelled,
        "a search that ran to its end is not cancelled"
    );
    // Not hidden, not gitignored, not binary.
    assert_eq!(
        files(&done, dir.path()),
        ["a.txt", "b.rs", "sub/c.txt", "sub/deeper/d.txt"]
    );
    let a = done
        .matches
        .iter()
        .find(|m| m.path.ends_with("a.txt"))
        .unwrap();
    assert_eq!(a.line, Some(1));
    assert_eq!(a.column, Some(1));
    assert_eq!(a.text.as_deref(), Some("hello world"));
    assert_eq!(a.submatches, vec![Submatch { start: 0, end: 5 }]);
    let c = done
        .matches
        .iter()
        .find(|m| m.path.ends_with("c.txt"))
        .unwrap();
    assert_eq!(c.column, Some(6));
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_versus_literal() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "a.c", dir.path());
    let done = run(q.clone()).await;
    let m = done
        .matches
        .iter()
        .find(|m| m.path.ends_with("regex.txt"))
        .unwrap();
    assert_eq!(m.submatches.len(), 2, "a.c as a regex matches a.c and abc");
    q.regex = false;
    let done = run(q).await;
    assert_eq!(done.matches.len(), 1);
    assert_eq!(
        done.matches[0].submatches,
        vec![Submatch { start: 0, end: 3 }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn case_sensitivity() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "HELLO", dir.path());
    assert!(run(q.clone()).await.matches.is_empty());
    q.case_sensitive = false;
    let done = run(q).await;
    // "hello world" and "Hello again" in a.txt, plus the others.
    assert_eq!(
        done.matches
            .iter()
            .filter(|m| m.path.ends_with("a.txt"))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_target_matches_paths() {
    let dir = tree();
    let done = run(query(SearchTarget::Path, r"c\.txt$", dir.path())).await;
    assert_eq!(done.matches.len(), 1);
    let m = &done.matches[0];
    assert_eq!(Path::new(&m.path), dir.path().join("sub/c.txt"));
    assert!(m.line.is_none() && m.text.is_none());
    let s = &m.submatches[0];
    assert_eq!(&m.path[s.start as usize..s.end as usize], "c.txt");

    // The root's own name is not part of what is matched.
    let root_name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let done = run(query(SearchTarget::Path, &root_name, dir.path())).await;
    assert!(done.matches.is_empty(), "{:?}", done.matches);

    // Directories are found too.
    let done = run(query(SearchTarget::Path, "^sub/deeper$", dir.path())).await;
    assert_eq!(files(&done, dir.path()), ["sub/deeper"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn include_and_exclude_globs() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "hello", dir.path());
    q.include = vec!["*.txt".into()];
    assert_eq!(
        files(&run(q.clone()).await, dir.path()),
        ["a.txt", "sub/c.txt", "sub/deeper/d.txt"]
    );
    q.exclude = vec!["sub".into()];
    assert_eq!(files(&run(q.clone()).await, dir.path()), ["a.txt"]);
    q.include = vec![];
    q.exclude = vec!["*.rs".into(), "sub/deeper".into()];
    assert_eq!(files(&run(q).await, dir.path()), ["a.txt", "sub/c.txt"]);

    let mut q = query(SearchTarget::Path, "", dir.path());
    q.include = vec!["*.rs".into()];
    assert_eq!(files(&run(q).await, dir.path()), ["b.rs"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn gitignore_and_hidden_switches() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "hello", dir.path());
    q.gitignore = false;
    assert!(files(&run(q.clone()).await, dir.path()).contains(&"ignored.log".to_string()));
    q.gitignore = true;
    q.hidden = true;
    let found = files(&run(q).await, dir.path());
    assert!(found.contains(&".hidden/h.txt".to_string()), "{found:?}");
    assert!(found.contains(&".hfile".to_string()), "{found:?}");
    assert!(!found.contains(&"ignored.log".to_string()));
    assert!(
        !found.contains(&"bin.dat".to_string()),
        "binary files are skipped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_results_truncates() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "hello", dir.path());
    q.max_results = Some(2);
    let done = run(q.clone()).await;
    assert_eq!(done.matches.len(), 2);
    assert!(done.truncated);
    // Exactly as many as exist: not truncated.
    q.max_results = Some(4);
    let done = run(q.clone()).await;
    assert_eq!(done.matches.len(), 4);
    assert!(!done.truncated);
    q.max_results = Some(100);
    assert!(!run(q).await.truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_depth_limits_the_walk() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "hello", dir.path());
    q.max_depth = Some(1);
    assert_eq!(files(&run(q.clone()).await, dir.path()), ["a.txt", "b.rs"]);
    q.max_depth = Some(2);
    assert_eq!(
        files(&run(q).await, dir.path()),
        ["a.txt", "b.rs", "sub/c.txt"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn multiple_paths_including_a_file() {
    let dir = tree();
    let mut q = query(SearchTarget::Contents, "hello", dir.path());
    q.paths = vec![
        dir.path().join("sub/deeper").to_string_lossy().into_owned(),
        dir.path().join("b.rs").to_string_lossy().into_owned(),
    ];
    assert_eq!(
        files(&run(q).await, dir.path()),
        ["b.rs", "sub/deeper/d.txt"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_queries_are_errors() {
    let dir = tree();
    let s = Searches::new(Limits::default());
    let (sink, _rx) = ReplySink::channel(1, 4);
    let r = s
        .start(
            query(SearchTarget::Contents, "a(b", dir.path()),
            sink.clone(),
        )
        .await;
    match r {
        Reply::Error(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidParams);
            assert!(e.message.contains("a(b"), "{}", e.message);
            assert!(
                e.message.to_lowercase().contains("unclosed"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    let r = s
        .start(
            query(SearchTarget::Contents, "x", &dir.path().join("nope")),
            sink.clone(),
        )
        .await;
    assert!(
        matches!(r, Reply::Error(ref e) if e.kind == ErrorKind::NotFound),
        "{r:?}"
    );
    let mut q = query(SearchTarget::Contents, "x", dir.path());
    q.include = vec!["a[".into()];
    let r = s.start(q, sink.clone()).await;
    assert!(
        matches!(r, Reply::Error(ref e) if e.kind == ErrorKind::InvalidParams),
        "{r:?}"
    );
    let mut q = query(SearchTarget::Contents, "x", dir.path());
    q.paths.clear();
    let r = s.start(q, sink).await;
    assert!(
        matches!(r, Reply::Error(ref e) if e.kind == ErrorKind::InvalidParams),
        "{r:?}"
    );
    let r = s.cancel(42).await;
    assert!(
        matches!(r, Reply::Error(ref e) if e.kind == ErrorKind::InvalidParams),
        "{r:?}"
    );
}

fn big_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let content = "needle in a haystack\n".repeat(100);
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f{i}.txt")), &content).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_large_search() {
    let dir = big_tree();
    let s = Searches::new(Limits::default());
    // A tiny channel: the search is held back until we read.
    let (sink, mut rx) = ReplySink::channel(1, 1);
    let Reply::SearchStarted { search } = s
        .start(query(SearchTarget::Contents, "needle", dir.path()), sink)
        .await
    else {
        panic!("search did not start")
    };
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert!(matches!(reply(first), Reply::SearchResults { .. }));
    assert_eq!(s.cancel(search).await, Reply::Ok);
    let done = timeout(Duration::from_secs(5), collect(search, &mut rx))
        .await
        .expect("cancelled search did not end promptly");
    assert!(
        done.matches.len() < 19_000,
        "{} matches after cancel",
        done.matches.len()
    );
    assert!(done.cancelled, "SearchDone says the results are partial");
    // Cancelling a finished search is harmless.
    assert_eq!(s.cancel(search).await, Reply::Ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_searches_is_enforced_and_shutdown_ends_searches() {
    let dir = big_tree();
    let s = Searches::new(Limits {
        max_searches: 1,
        ..Limits::default()
    });
    let (sink, mut rx) = ReplySink::channel(1, 1);
    let Reply::SearchStarted { search } = s
        .start(query(SearchTarget::Contents, "needle", dir.path()), sink)
        .await
    else {
        panic!("search did not start")
    };
    let (sink2, _rx2) = ReplySink::channel(2, 1);
    match s
        .start(query(SearchTarget::Contents, "needle", dir.path()), sink2)
        .await
    {
        Reply::Error(e) => {
            assert_eq!(e.kind, ErrorKind::LimitExceeded);
            assert!(e.message.contains("--max-searches"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    let drain = tokio::spawn(async move { collect(search, &mut rx).await });
    timeout(Duration::from_secs(5), s.shutdown()).await.unwrap();
    timeout(Duration::from_secs(5), drain)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn results_are_batched() {
    let dir = big_tree();
    let s = Searches::new(Limits::default());
    let (sink, mut rx) = ReplySink::channel(1, 1024);
    let Reply::SearchStarted { search } = s
        .start(query(SearchTarget::Contents, "needle", dir.path()), sink)
        .await
    else {
        panic!()
    };
    let mut batches = 0;
    let mut total = 0;
    loop {
        match reply(timeout(WAIT, rx.recv()).await.unwrap().unwrap()) {
            Reply::SearchResults { matches, .. } => {
                assert!(matches.len() <= 100);
                batches += 1;
                total += matches.len();
            }
            Reply::SearchDone {
                search: id,
                truncated,
                ..
            } => {
                assert_eq!(id, search);
                assert!(!truncated);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 20_000);
    assert!(batches >= 200);
}
