//! Watches over real directories: create/modify/delete/rename, recursive or
//! not, excludes, unwatch, a vanished root, and the per-session limit.
//! Every wait has a deadline; absence is shown with a later sentinel event.

mod watching;

use std::path::Path;
use std::time::Duration;

use distant_protocol::msg::{ChangeKind, ErrorKind, Reply};
use distant_server::limits::Limits;
use distant_server::reply::ReplySink;
use distant_server::watch::Watches;
use tokio::time::Instant;
use watching::{is, root, watch, WAIT};

#[tokio::test(flavor = "multi_thread")]
async fn create_modify_delete_rename() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir);
    let w = Watches::new(Limits::default());
    let mut s = watch(&w, &root, false, &[]).await;

    let a = root.join("a.txt");
    std::fs::write(&a, b"one").unwrap();
    s.wait_for("create", is(ChangeKind::Created, &a)).await;

    std::fs::write(&a, b"two").unwrap();
    s.seen.clear();
    s.wait_for("modify", is(ChangeKind::Modified, &a)).await;

    let b = root.join("b.txt");
    std::fs::rename(&a, &b).unwrap();
    let c = s
        .wait_for("rename", |c| {
            c.kind == ChangeKind::Renamed && Path::new(&c.path) == a
        })
        .await;
    assert_eq!(c.to.as_deref().map(Path::new), Some(b.as_path()));

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.wait_for("attributes", is(ChangeKind::Attributes, &b))
        .await;

    std::fs::remove_file(&b).unwrap();
    s.wait_for("delete", is(ChangeKind::Deleted, &b)).await;

    assert_eq!(w.unwatch(s.id).await, Reply::Ok);
    assert_eq!(s.ended().await, None);
    // Unwatching again is harmless; an unknown id is not.
    assert_eq!(w.unwatch(s.id).await, Reply::Ok);
    assert!(matches!(w.unwatch(999).await, Reply::Error(e) if e.kind == ErrorKind::InvalidParams));
}

#[tokio::test(flavor = "multi_thread")]
async fn recursive_versus_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir);
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    let w = Watches::new(Limits::default());
    let mut flat = watch(&w, &root, false, &[]).await;
    let mut deep = watch(&w, &root, true, &[]).await;

    let nested = root.join("sub/deeper/n.txt");
    std::fs::write(&nested, b"x").unwrap();
    deep.wait_for("nested create", is(ChangeKind::Created, &nested))
        .await;

    // A directory created after the watch started is watched too.
    let late = root.join("sub/late");
    std::fs::create_dir(&late).unwrap();
    deep.wait_for("late dir", is(ChangeKind::Created, &late))
        .await;
    let late_file = late.join("f.txt");
    // The new directory's watch is added asynchronously: retry the write.
    let deadline = Instant::now() + WAIT;
    loop {
        std::fs::write(&late_file, b"x").unwrap();
        let found = tokio::time::timeout(
            Duration::from_millis(500),
            deep.wait_for("late file", |c| Path::new(&c.path) == late_file),
        )
        .await;
        if found.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no event for a file in a new directory"
        );
    }

    // The flat watch sees the sentinel but never the nested file.
    let sentinel = root.join("top.txt");
    std::fs::write(&sentinel, b"x").unwrap();
    flat.wait_for("sentinel", is(ChangeKind::Created, &sentinel))
        .await;
    assert!(
        !flat.saw_path(&nested),
        "non-recursive watch saw {:?}",
        flat.seen
    );
    assert!(!flat.saw_path(&late_file));
}

#[tokio::test(flavor = "multi_thread")]
async fn excluded_paths_are_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir);
    std::fs::create_dir_all(root.join("target/debug")).unwrap();
    let w = Watches::new(Limits::default());
    let mut s = watch(&w, &root, true, &["*.log", "target"]).await;
    let log = root.join("build.log");
    let artifact = root.join("target/debug/out.bin");
    std::fs::write(&log, b"x").unwrap();
    std::fs::write(&artifact, b"x").unwrap();
    let sentinel = root.join("main.rs");
    std::fs::write(&sentinel, b"x").unwrap();
    s.wait_for("sentinel", is(ChangeKind::Created, &sentinel))
        .await;
    assert!(!s.saw_path(&log), "{:?}", s.seen);
    assert!(!s.saw_path(&artifact), "{:?}", s.seen);

    // Renaming an excluded file into view looks like a creation.
    let shown = root.join("build.txt");
    std::fs::rename(&log, &shown).unwrap();
    s.wait_for("rename into view", is(ChangeKind::Created, &shown))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_root_ends_the_watch_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir).join("watched");
    std::fs::create_dir(&root).unwrap();
    let w = Watches::new(Limits::default());
    let mut s = watch(&w, &root, true, &[]).await;
    std::fs::remove_dir(&root).unwrap();
    let error = s
        .ended()
        .await
        .expect("an error saying why the watch ended");
    assert!(error.contains("deleted"), "{error}");
    // It no longer counts against the limit and unwatching it is harmless.
    assert_eq!(w.unwatch(s.id).await, Reply::Ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_file_reports_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = root(&dir).join("single.txt");
    std::fs::write(&file, b"a").unwrap();
    let w = Watches::new(Limits::default());
    let mut s = watch(&w, &file, false, &[]).await;
    std::fs::write(&file, b"b").unwrap();
    s.wait_for("modify", is(ChangeKind::Modified, &file)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_watches_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir);
    let w = Watches::new(Limits {
        max_watches: 2,
        ..Limits::default()
    });
    let first = watch(&w, &root, false, &[]).await;
    let _second = watch(&w, &root, true, &[]).await;
    let (sink, _rx) = ReplySink::channel(1, 4);
    match w
        .watch(
            root.to_string_lossy().into_owned(),
            false,
            vec![],
            sink.clone(),
        )
        .await
    {
        Reply::Error(e) => {
            assert_eq!(e.kind, ErrorKind::LimitExceeded);
            assert!(e.message.contains("--max-watches"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.unwatch(first.id).await, Reply::Ok);
    let _third = watch(&w, &root, false, &[]).await;

    let missing = root.join("missing").to_string_lossy().into_owned();
    w.unwatch(_third.id).await;
    match w.watch(missing, false, vec![], sink.clone()).await {
        Reply::Error(e) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    match w
        .watch(
            root.to_string_lossy().into_owned(),
            false,
            vec!["a[".into()],
            sink,
        )
        .await
    {
        Reply::Error(e) => assert_eq!(e.kind, ErrorKind::InvalidParams),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_every_watch() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(&dir);
    let w = Watches::new(Limits::default());
    let mut a = watch(&w, &root, false, &[]).await;
    let mut b = watch(&w, &root, true, &[]).await;
    w.shutdown().await;
    assert_eq!(a.ended().await, None);
    assert_eq!(b.ended().await, None);
}
