//! The file index over real trees: 100 000 files, ignore rules, subtrees,
//! truncation, cancel, backpressure and errors.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{err_kind, s, Client};
use distant_protocol::msg::{ErrorKind, IndexQuery, Op, Reply, RequestId};

fn query(root: &Path) -> IndexQuery {
    IndexQuery {
        root: s(root),
        hidden: false,
        gitignore: true,
        exclude: vec![],
        max_paths: None,
        only: vec![],
    }
}

struct Done {
    paths: Vec<String>,
    pages: usize,
    count: u64,
    truncated: bool,
    cancelled: bool,
}

async fn start(c: &mut Client, q: IndexQuery) -> (RequestId, u64) {
    let origin = c.send(Op::Index { query: q }).await;
    match c.reply_for(origin).await {
        Reply::IndexStarted { index } => (origin, index),
        other => panic!("expected IndexStarted, got {other:?}"),
    }
}

async fn collect(c: &mut Client, origin: RequestId, id: u64) -> Done {
    let mut paths = Vec::new();
    let mut pages = 0;
    loop {
        match c.reply_for(origin).await {
            Reply::IndexPaths { index, paths: p } => {
                assert_eq!(index, id);
                assert!(!p.is_empty(), "empty page");
                assert!(p.len() <= 2048, "page of {} paths", p.len());
                let bytes: usize = p.iter().map(|x| x.len()).sum();
                assert!(bytes <= 128 * 1024 + 4096, "page of {bytes} bytes");
                pages += 1;
                paths.extend(p);
            }
            Reply::IndexDone {
                index,
                count,
                truncated,
                cancelled,
                error,
            } => {
                assert_eq!(index, id);
                assert_eq!(error, None);
                return Done {
                    paths,
                    pages,
                    count,
                    truncated,
                    cancelled,
                };
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn index(q: IndexQuery) -> Done {
    let mut c = Client::start();
    let (origin, id) = start(&mut c, q).await;
    collect(&mut c, origin, id).await
}

fn set(paths: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = paths.iter().cloned().collect();
    assert_eq!(set.len(), paths.len(), "a path was listed twice");
    set
}

fn write(root: &Path, files: &[&str]) {
    for f in files {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f.as_bytes()).unwrap();
    }
}

fn ignore_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            "a.txt",
            "src/main.rs",
            "src/deep/er/x.rs",
            ".hidden/h.txt",
            ".hfile",
            "build.log",
            "target/out.bin",
            "src/gen.log",
            "node_modules/m/index.js",
        ],
    );
    std::fs::write(dir.path().join(".gitignore"), "*.log\ntarget/\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_files_are_listed_once_each_in_bounded_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = BTreeSet::new();
    for d in 0..100 {
        let sub = dir.path().join(format!("d{d:03}/inner"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            std::fs::File::create(sub.join(format!("file_{f:04}.txt"))).unwrap();
            want.insert(format!("d{d:03}/inner/file_{f:04}.txt"));
        }
    }
    let started = std::time::Instant::now();
    let done = index(query(dir.path())).await;
    // A figure for the log, not asserted (tests never assert speed).
    eprintln!("indexed 100 000 files in {:?}", started.elapsed());
    assert_eq!(done.count, 100_000);
    assert!(!done.truncated && !done.cancelled);
    assert!(done.pages >= 100_000 / 2048, "{} pages", done.pages);
    assert_eq!(set(&done.paths), want);
}

#[tokio::test]
async fn ignore_rules_hidden_files_and_excludes_are_respected() {
    let dir = ignore_tree();
    let done = index(query(dir.path())).await;
    let want: BTreeSet<String> = [
        "a.txt",
        "src/main.rs",
        "src/deep/er/x.rs",
        "node_modules/m/index.js",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    assert_eq!(set(&done.paths), want);

    let mut q = query(dir.path());
    q.hidden = true;
    q.gitignore = false;
    q.exclude = vec!["node_modules".into(), "src/deep/**".into()];
    let done = index(q).await;
    let want: BTreeSet<String> = [
        "a.txt",
        "src/main.rs",
        ".hidden/h.txt",
        ".hfile",
        ".gitignore",
        "build.log",
        "target/out.bin",
        "src/gen.log",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    assert_eq!(set(&done.paths), want);
}

#[tokio::test]
async fn only_lists_the_given_subtrees_with_the_roots_ignore_rules() {
    let dir = ignore_tree();
    let mut q = query(dir.path());
    q.only = vec!["src".into(), "target/out.bin".into(), "a.txt".into()];
    let done = index(q).await;
    let want: BTreeSet<String> = ["src/main.rs", "src/deep/er/x.rs", "a.txt"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    // src/gen.log and target/ stay out: the root's .gitignore applies.
    assert_eq!(set(&done.paths), want);

    let mut q = query(dir.path());
    q.only = vec!["src/deep/".into(), "missing/dir".into()];
    let done = index(q).await;
    assert_eq!(done.paths, vec!["src/deep/er/x.rs".to_string()]);
}

#[tokio::test]
async fn max_paths_truncates_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    let refs: Vec<&str> = names.iter().map(|x| x.as_str()).collect();
    write(dir.path(), &refs);

    let mut q = query(dir.path());
    q.max_paths = Some(10);
    let done = index(q).await;
    assert_eq!(done.count, 10);
    assert_eq!(set(&done.paths).len(), 10);
    assert!(done.truncated);

    let mut q = query(dir.path());
    q.max_paths = Some(100);
    let done = index(q).await;
    assert_eq!(done.count, 100);
    assert!(!done.truncated, "exactly max_paths files is not truncated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_walk_and_a_slow_reader_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..20 {
        let sub = dir.path().join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            std::fs::File::create(sub.join(format!("{f}"))).unwrap();
        }
    }
    // A response channel of 2: the walk must wait for the reader.
    let mut c = Client::start_with(2, Default::default());
    let (origin, id) = start(&mut c, query(dir.path())).await;
    let first = c.reply_for(origin).await;
    assert!(matches!(first, Reply::IndexPaths { .. }), "{first:?}");
    let cancel = c.send(Op::CancelIndex { index: id }).await;
    let mut seen = match first {
        Reply::IndexPaths { paths, .. } => paths.len() as u64,
        _ => unreachable!(),
    };
    // Responses to the cancel are stashed while the stream is read.
    let done = loop {
        match c.reply_for(origin).await {
            Reply::IndexPaths { paths, .. } => seen += paths.len() as u64,
            Reply::IndexDone {
                count, cancelled, ..
            } => break (count, cancelled),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(c.reply_for(cancel).await, Reply::Ok);
    assert!(done.1, "not marked cancelled");
    assert!(done.0 < 20_000, "the walk did not stop: {} paths", done.0);
    assert!(seen <= done.0);
    // A finished index has nothing to stop: Ok, as for searches.
    assert_eq!(c.call(Op::CancelIndex { index: id }).await, Reply::Ok);

    // Without a cancel, a reader that is slow still gets every path once.
    let (origin, id) = start(&mut c, query(dir.path())).await;
    let done = collect(&mut c, origin, id).await;
    assert_eq!(done.count, 20_000);
    assert_eq!(set(&done.paths).len(), 20_000);
}

#[tokio::test]
async fn bad_roots_and_params_get_clear_errors() {
    let dir = ignore_tree();
    let mut c = Client::start();
    let missing = query(&dir.path().join("nope"));
    let r = c.call(Op::Index { query: missing }).await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(common::err_msg(&r).contains("does not exist"));

    let file = query(&dir.path().join("a.txt"));
    let r = c.call(Op::Index { query: file }).await;
    assert_eq!(err_kind(&r), ErrorKind::NotADirectory);

    let mut q = query(dir.path());
    q.only = vec!["../etc".into()];
    let r = c.call(Op::Index { query: q }).await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);

    let mut q = query(dir.path());
    q.exclude = vec!["a[".into()];
    let r = c.call(Op::Index { query: q }).await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    assert!(common::err_msg(&r).contains("exclude glob"));

    let r = c.call(Op::CancelIndex { index: 999 }).await;
    assert!(matches!(r, Reply::Error(_)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_running_at_once_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..10 {
        let sub = dir.path().join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            std::fs::File::create(sub.join(format!("{f}"))).unwrap();
        }
    }
    let limits = distant_server::Limits {
        max_searches: 1,
        ..Default::default()
    };
    // A response channel of 1 that nobody reads yet: the first index stays running.
    let mut c = Client::start_with(1, limits);
    let (origin, id) = start(&mut c, query(dir.path())).await;
    let second = c
        .send(Op::Index {
            query: query(dir.path()),
        })
        .await;
    let r = c.reply_for(second).await;
    assert_eq!(err_kind(&r), ErrorKind::LimitExceeded, "{r:?}");
    assert!(common::err_msg(&r).contains("--max-searches"));
    // The first one still delivers every path.
    let done = collect(&mut c, origin, id).await;
    assert_eq!(done.count, 10_000);
}
