//! The bridge API's streams over the real stack: processes (pipes and
//! PTYs, output order, stdin order, kill, resize), watches, searches,
//! `$/cancelRequest`, and the sharing rules between two peers of one
//! [`Api`](distant_bridge::api::Api).

mod api_support;

use std::time::Duration;

use api_support::*;
use distant_bridge::jsonrpc::{codes, ErrorKind};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn process_output_in_order_and_exit_last() {
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sh", "-c", "i=1; while [ $i -le 300 ]; do echo line$i; i=$((i+1)); done; echo oops >&2; exit 3"]}),
        )
        .await;
    let proc = r["proc"].as_str().expect("string proc id").to_string();
    assert!(r["pid"].as_u64().unwrap() > 0);
    let notes = p.proc_until_exit(&proc).await;
    let (last_method, last) = notes.last().unwrap();
    assert_eq!(last_method, "proc/exit");
    assert_eq!(last["code"], 3);
    let expected: String = (1..=300).map(|i| format!("line{i}\n")).collect();
    assert_eq!(String::from_utf8(stdout_of(&notes)).unwrap(), expected);
    assert!(notes
        .iter()
        .any(|(m, p)| m == "proc/output" && p["stream"] == "stderr" && p["data"] == "oops\n"));
    assert!(notes
        .iter()
        .all(|(m, p)| m != "proc/output" || p["encoding"] == "utf-8"));

    // The process is gone: its id is no longer known.
    let e = p
        .fail(
            "proc/stdin",
            json!({"connection": c, "proc": proc, "data": "x"}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = p
        .fail("proc/spawn", json!({"connection": c, "cmd": []}))
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    let e = p
        .fail(
            "proc/spawn",
            json!({"connection": c, "cmd": ["/no/such/program-xyz"]}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_in_order_close_and_kill() {
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call("proc/spawn", json!({"connection": c, "cmd": ["cat"]}))
        .await;
    let proc = r["proc"].as_str().unwrap().to_string();
    // Many stdin requests in flight at once still arrive in order.
    let mut sends = Vec::new();
    for i in 0..50 {
        let client = p.client.clone();
        let params = if i % 2 == 0 {
            json!({"connection": c, "proc": proc, "data": format!("{i},")})
        } else {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{i},"));
            json!({"connection": c, "proc": proc, "data": b, "encoding": "base64"})
        };
        sends.push(tokio::spawn(async move {
            client.request("proc/stdin", params).await
        }));
        tokio::task::yield_now().await;
    }
    // Requests are written in spawn order only if each task ran; await all.
    for s in sends {
        assert_eq!(s.await.unwrap().unwrap(), Value::Null);
    }
    p.call("proc/closeStdin", json!({"connection": c, "proc": proc}))
        .await;
    let notes = p.proc_until_exit(&proc).await;
    let out = String::from_utf8(stdout_of(&notes)).unwrap();
    let mut got: Vec<u32> = out
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got.len(), 50);
    got.sort();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert_eq!(notes.last().unwrap().1["code"], 0);

    // Sequential stdin is exactly ordered; kill ends the process.
    let r = p
        .call("proc/spawn", json!({"connection": c, "cmd": ["cat"]}))
        .await;
    let proc = r["proc"].as_str().unwrap().to_string();
    for i in 0..20 {
        p.call(
            "proc/stdin",
            json!({"connection": c, "proc": proc, "data": format!("{i}\n")}),
        )
        .await;
    }
    let mut seen = String::new();
    while seen.lines().count() < 20 {
        let n = p.note("proc/output", |v| v["proc"] == proc.as_str()).await;
        seen.push_str(n["data"].as_str().unwrap());
    }
    let expected: String = (0..20).map(|i| format!("{i}\n")).collect();
    assert_eq!(seen, expected);
    p.call("proc/kill", json!({"connection": c, "proc": proc}))
        .await;
    let exit = p.note("proc/exit", |v| v["proc"] == proc.as_str()).await;
    assert_eq!(exit["signal"], "TERM", "{exit}");
    // resize of a process without a PTY: unsupported
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sleep", "5"]}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_string();
    let e = p
        .fail(
            "proc/resize",
            json!({"connection": c, "proc": proc, "rows": 10, "cols": 10}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::Unsupported);
    p.call(
        "proc/kill",
        json!({"connection": c, "proc": proc, "signal": "KILL"}),
    )
    .await;
    let exit = p.note("proc/exit", |v| v["proc"] == proc.as_str()).await;
    assert_eq!(exit["signal"], "KILL", "{exit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pty_spawn_and_resize() {
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sh", "-c", "stty size; read x; stty size"], "pty": {"rows": 24, "cols": 80}}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_string();
    let mut out = String::new();
    while !out.contains("24 80") {
        let n = p.note("proc/output", |v| v["proc"] == proc.as_str()).await;
        out.push_str(n["data"].as_str().unwrap_or(""));
    }
    p.call(
        "proc/resize",
        json!({"connection": c, "proc": proc, "rows": 40, "cols": 100}),
    )
    .await;
    p.call(
        "proc/stdin",
        json!({"connection": c, "proc": proc, "data": "go\n"}),
    )
    .await;
    let notes = p.proc_until_exit(&proc).await;
    let rest = String::from_utf8_lossy(&stdout_of(&notes)).into_owned();
    assert!(rest.contains("40 100"), "{rest:?}");
    assert_eq!(notes.last().unwrap().1["code"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_reports_changes_until_unwatched() {
    let dir = TempDir::new("watch");
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "fs/watch",
            json!({"connection": c, "path": dir.join(""), "recursive": true}),
        )
        .await;
    let watch = r["watch"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let file = dir.join("new.txt");
    std::fs::write(&file, "x").unwrap();
    let n = p
        .note("fs/changed", |v| {
            v["changes"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["path"] == file.as_str()))
        })
        .await;
    assert_eq!(n["watch"], watch.as_str());
    let kinds: Vec<&str> = n["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().any(|k| *k == "created" || *k == "modified"),
        "{kinds:?}"
    );
    assert_eq!(
        p.call("fs/unwatch", json!({"connection": c, "watch": watch}))
            .await,
        Value::Null
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = p
        .fail("fs/unwatch", json!({"connection": c, "watch": watch}))
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = p
        .fail(
            "fs/watch",
            json!({"connection": c, "path": dir.join("missing")}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_results_done_and_cancel() {
    let dir = TempDir::new("search");
    for i in 0..5 {
        std::fs::write(
            dir.path().join(format!("f{i}.txt")),
            format!("alpha\nneedle {i}\nomega\n"),
        )
        .unwrap();
    }
    let mut p = stdio_peer();
    let c = p.connect_local().await;
    let r = p
        .call(
            "search/start",
            json!({"connection": c, "query": {"target": "contents", "pattern": "needle \\d", "paths": [dir.join("")]}}),
        )
        .await;
    let search = r["search"].as_str().unwrap().to_string();
    let mut matches = Vec::new();
    loop {
        let n = p.notes.recv().await.unwrap();
        let params = n.params.unwrap();
        match n.method.as_str() {
            "search/results" if params["search"] == search.as_str() => {
                matches.extend(params["matches"].as_array().unwrap().clone())
            }
            "search/done" if params["search"] == search.as_str() => {
                assert_eq!(params["truncated"], false);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(matches.len(), 5, "{matches:?}");
    for m in &matches {
        assert_eq!(m["line"], 2);
        assert_eq!(m["column"], 1);
        assert!(m["text"].as_str().unwrap().starts_with("needle"));
        assert_eq!(m["submatches"][0], json!({"start": 0, "end": 8}));
    }

    // path search with maxResults: truncated
    let r = p
        .call(
            "search/start",
            json!({"connection": c, "query": {"target": "path", "pattern": "f", "regex": false, "paths": [dir.join("")], "maxResults": 2}}),
        )
        .await;
    let search = r["search"].as_str().unwrap().to_string();
    let done = p
        .note("search/done", |v| v["search"] == search.as_str())
        .await;
    assert_eq!(done["truncated"], true);

    // cancel: the search ends with search/done (or had already ended)
    for i in 0..300 {
        std::fs::write(
            dir.path().join(format!("g{i}.txt")),
            "needle 1\n".repeat(50),
        )
        .unwrap();
    }
    let r = p
        .call(
            "search/start",
            json!({"connection": c, "query": {"target": "contents", "pattern": "needle", "paths": [dir.join("")]}}),
        )
        .await;
    let search = r["search"].as_str().unwrap().to_string();
    let cancelled = match p
        .client
        .request("search/cancel", json!({"connection": c, "search": search}))
        .await
    {
        Ok(v) => {
            assert_eq!(v, Value::Null);
            true
        }
        Err(distant_bridge::client::ClientError::Rpc(e)) => {
            assert_eq!(e.kind, ErrorKind::NotFound);
            false
        }
        Err(e) => panic!("{e:?}"),
    };
    let done = p
        .note("search/done", |v| v["search"] == search.as_str())
        .await;
    assert_eq!(done["cancelled"], cancelled, "{done}");
    assert_eq!(done["truncated"], false, "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_request_answers_cancelled_and_the_session_goes_on() {
    // A "server" that accepts TCP but never speaks: connect hangs in the
    // handshake until cancelled.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let p = stdio_peer();
    // A fresh client numbers its requests 1, 2, …: this is request 1.
    let client = p.client.clone();
    let pending = tokio::spawn(async move {
        client
            .request(
                "connect",
                json!({"destination": format!("distant://{addr}"), "key": KEY_A}),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.client
        .notify("$/cancelRequest", json!({"id": 1}))
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("the cancelled request was answered")
        .unwrap();
    match result {
        Err(distant_bridge::client::ClientError::Rpc(e)) => {
            assert_eq!(e.code, codes::REQUEST_CANCELLED)
        }
        other => panic!("{other:?}"),
    }
    // Cancelling something unknown is harmless.
    p.client
        .notify("$/cancelRequest", json!({"id": 12345}))
        .await
        .unwrap();
    assert!(p.call("initialize", json!({})).await["version"].is_string());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_peers_share_a_connection_and_own_their_streams() {
    let api = new_api();
    let mut a = peer(&api);
    let mut b = peer(&api);
    let ca = a.connect_local().await;
    let cb = b.connect_local().await;
    assert_eq!(ca, cb, "one shared connection");
    assert_eq!(api.connection_count(), 1);
    assert_eq!(api.peer_count(), 2);

    // A's process: notifications to A only; B cannot drive it.
    let r = a
        .call(
            "proc/spawn",
            json!({"connection": ca, "cmd": ["sh", "-c", "echo from-a"]}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_string();
    let notes = a.proc_until_exit(&proc).await;
    assert_eq!(stdout_of(&notes), b"from-a\n");
    let e = b
        .fail("proc/kill", json!({"connection": cb, "proc": proc}))
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);

    // B's long process dies when B leaves.
    let r = b
        .call(
            "proc/spawn",
            json!({"connection": cb, "cmd": ["sh", "-c", "echo from-b; exec sleep 60"]}),
        )
        .await;
    let pid = r["pid"].as_u64().unwrap() as u32;
    let bproc = r["proc"].as_str().unwrap().to_string();
    let out = b.note("proc/output", |v| v["proc"] == bproc.as_str()).await;
    assert_eq!(out["data"], "from-b\n");
    assert!(alive(pid));
    assert_eq!(b.hang_up().await, distant_bridge::api::ServeEnd::Eof);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} survived its peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.peer_count(), 1);

    // connection/state goes to every peer: a third peer sees the disconnect.
    let mut c = peer(&api);
    c.call("initialize", json!({})).await;
    a.call("disconnect", json!({"connection": ca})).await;
    for p in [&mut a, &mut c] {
        let n = p
            .note("connection/state", |v| v["connection"] == ca.as_str())
            .await;
        assert_eq!(n["state"], "disconnected");
    }
    // B never saw A's output (checked by construction: it only had its own
    // process); A never receives B's notifications either.
    while let Ok(n) = a.notes.try_recv() {
        assert!(!n.method.starts_with("proc/"), "{n:?}");
    }
}
