//! `fs/index` over the real stack (`distant-bridge stdio`, a local
//! `distant-server`): pages then done, truncation with a note, errors,
//! cancel, and an index kept fresh by the watch under churn.

mod api_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use api_support::*;
use distant_bridge::jsonrpc::ErrorKind;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// Reads `fs/index/results` of `index` into `set` until `fs/index/done`.
async fn until_done(p: &mut Peer, index: &str, set: &mut BTreeSet<String>) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, p.notes.recv())
            .await
            .expect("no fs/index/done in time")
            .expect("notifications ended");
        let params = n.params.unwrap_or(Value::Null);
        if params["index"] != index {
            continue;
        }
        match n.method.as_str() {
            "fs/index/results" => {
                for path in params["paths"].as_array().unwrap() {
                    assert!(
                        set.insert(path.as_str().unwrap().to_string()),
                        "{path} twice"
                    );
                }
            }
            "fs/index/done" => return params,
            other => panic!("unexpected {other} before done: {params}"),
        }
    }
}

/// Applies one `fs/index/changed` the way an editor does.
fn apply(set: &mut BTreeSet<String>, p: &Value) {
    if p["reset"] == true {
        set.clear();
    }
    for r in p["removed"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        let under = format!("{r}/");
        set.retain(|x| x != r && !x.starts_with(&under));
    }
    for a in p["added"].as_array().unwrap() {
        set.insert(a.as_str().unwrap().to_string());
    }
}

/// What the index should hold: files under `root`, minus hidden and *.log.
fn on_disk(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".log") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn tree(files: usize) -> TempDir {
    let dir = TempDir::new("index");
    std::fs::write(dir.path().join(".gitignore"), "*.log\n").unwrap();
    for i in 0..files {
        let sub = dir.path().join(format!("pkg{}/src", i % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("m{i}.rs")), "").unwrap();
    }
    std::fs::write(dir.path().join("build.log"), "").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_then_done_with_every_file_once() {
    let dir = tree(5000);
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let started = std::time::Instant::now();
    let r = p
        .call("fs/index", json!({"connection": c, "root": dir.join("")}))
        .await;
    let index = r["index"].as_str().unwrap().to_string();
    let mut set = BTreeSet::new();
    let done = until_done(&mut p, &index, &mut set).await;
    eprintln!("5000 files through the bridge in {:?}", started.elapsed());
    assert_eq!(done["count"], 5000, "{done}");
    assert_eq!(done["truncated"], false);
    assert_eq!(done["cancelled"], false);
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(set, on_disk(dir.path()));
    // Without follow the index is over: cancelling it finds nothing.
    let e = p
        .fail("fs/index/cancel", json!({"connection": c, "index": index}))
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_tree_is_truncated_with_a_note_and_bad_params_are_errors() {
    let dir = tree(300);
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "fs/index",
            json!({"connection": c, "root": dir.join(""), "maxPaths": 100}),
        )
        .await;
    let index = r["index"].as_str().unwrap().to_string();
    let mut set = BTreeSet::new();
    let done = until_done(&mut p, &index, &mut set).await;
    assert_eq!(set.len(), 100);
    assert_eq!(done["truncated"], true);
    let note = done["note"].as_str().unwrap();
    assert!(note.contains("only the first 100 files"), "{note}");

    let e = p
        .fail(
            "fs/index",
            json!({"connection": c, "root": dir.join("missing")}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("does not exist"), "{}", e.message);
    let e = p
        .fail(
            "fs/index",
            json!({"connection": c, "root": dir.join(""), "maxPaths": 0}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    let e = p.fail("fs/index", json!({"connection": c})).await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(e.message.contains("root"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followed_index_stays_true_under_churn_until_cancelled() {
    let dir = tree(200);
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "fs/index",
            json!({"connection": c, "root": dir.join(""), "follow": true}),
        )
        .await;
    let index = r["index"].as_str().unwrap().to_string();
    let mut set = BTreeSet::new();
    let done = until_done(&mut p, &index, &mut set).await;
    assert_eq!(done["count"], 200);

    // Churn: new trees, deletions, renames, ignored files, rewrites.
    for round in 0..20 {
        let d = dir.path().join(format!("new{round}/deep/er"));
        std::fs::create_dir_all(&d).unwrap();
        for f in 0..10 {
            std::fs::write(d.join(format!("n{f}.ts")), "x").unwrap();
        }
        std::fs::write(d.join("noise.log"), "ignored").unwrap();
        std::fs::remove_file(dir.path().join(format!("pkg{round}/src/m{round}.rs"))).unwrap();
        std::fs::write(
            dir.path()
                .join(format!("pkg{}/src/m{}.rs", round + 1, round + 51)),
            "y",
        )
        .unwrap();
        if round % 5 == 0 {
            std::fs::rename(
                dir.path().join(format!("pkg{}", 30 + round)),
                dir.path().join(format!("moved{round}")),
            )
            .unwrap();
        }
        if round == 10 {
            std::fs::remove_dir_all(dir.path().join("new3")).unwrap();
        }
    }
    let want = on_disk(dir.path());
    let deadline = tokio::time::Instant::now() + WAIT;
    while set != want {
        let n = tokio::time::timeout_at(deadline, p.notes.recv())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<_> = want.difference(&set).take(5).collect();
                let extra: Vec<_> = set.difference(&want).take(5).collect();
                panic!("the index did not catch up: missing {missing:?}, extra {extra:?}")
            })
            .expect("notifications ended");
        let params = n.params.unwrap_or(Value::Null);
        if n.method == "fs/index/changed" && params["index"] == index.as_str() {
            assert!(params.get("ended").is_none(), "{params}");
            apply(&mut set, &params);
        }
    }
    assert!(!set.iter().any(|x| x.ends_with(".log")));

    let r = p
        .call("fs/index/cancel", json!({"connection": c, "index": index}))
        .await;
    assert_eq!(r, Value::Null);
    // The follow stops: the index is forgotten.
    let conn = c.clone();
    let client = &p;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = client
            .client
            .request(
                "fs/index/cancel",
                json!({"connection": conn, "index": index}),
            )
            .await;
        if matches!(&r, Err(distant_bridge::client::ClientError::Rpc(e)) if e.kind == ErrorKind::NotFound)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still following: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watched directories of a process: `inotify wd:` lines in its fdinfo.
fn inotify_watches(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    fds.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followed_index_stops_watching_when_its_peer_leaves() {
    let dir = tree(100);
    let api = new_api();
    let a = peer(&api);
    let mut b = peer(&api);
    let c = a.connect_local().await;
    assert_eq!(b.connect_local().await, c, "one shared connection");
    let servers = distant_testkit::children_named(std::process::id(), "distant-server");
    assert_eq!(servers.len(), 1, "{servers:?}");
    let server = servers[0];
    let before = inotify_watches(server);
    let r = b
        .call(
            "fs/index",
            json!({"connection": c, "root": dir.join(""), "follow": true}),
        )
        .await;
    let index = r["index"].as_str().unwrap().to_string();
    until_done(&mut b, &index, &mut BTreeSet::new()).await;
    // The root and its 100 directories are watched.
    let watching = inotify_watches(server);
    assert!(watching > before + 50, "{before} → {watching}");
    assert_eq!(b.hang_up().await, distant_bridge::api::ServeEnd::Eof);
    distant_testkit::wait_until("the index's watch to go", WAIT, || {
        inotify_watches(server) <= before
    })
    .await;
    assert!(
        distant_testkit::pid_alive(server),
        "the shared connection stays"
    );
    drop(a);
}
