//! Transparent reconnect as an editor sees it: the real `distant-bridge
//! stdio` talking to a real `distant-server` through a fault-injecting TCP
//! proxy. While the link is cut again and again, a process streams output
//! and appends are in flight: nothing is lost, nothing is duplicated, every
//! request is answered, and the editor is told `reconnecting` then
//! `connected`. A link that goes silent (not closed) is noticed within
//! seconds.

mod api_support;

use std::collections::BTreeSet;
use std::time::Duration;

use api_support::*;
use distant_testkit::FaultProxy;
use serde_json::{json, Value};

async fn connect_through(p: &Peer, proxy: &FaultProxy) -> String {
    p.call("initialize", json!({})).await;
    let url = format!("distant://:{KEY_A}@{}", proxy.addr);
    let r = p.call("connect", json!({"destination": url})).await;
    r["connection"].as_str().expect("connection id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_appends_survive_repeated_cuts() {
    let server = OwnServer::start(KEY_A);
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let dir = TempDir::new("reconnect");
    let mut p = stdio_peer();
    let conn = connect_through(&p, &proxy).await;

    // ~1.2 MB of output, produced over a second or so.
    let spawn = p
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sh", "-c", "for i in $(seq 1 20); do seq 1 10000; sleep 0.05; done"]}),
        )
        .await;
    let proc = spawn["proc"].as_str().unwrap().to_owned();

    // 300 appends in flight at once.
    let log = dir.path().join("log").display().to_string();
    let mut appends = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = p.client.clone();
        let (conn, log) = (conn.clone(), log.clone());
        appends.spawn(async move {
            client
                .request(
                    "fs/append",
                    json!({"connection": conn, "path": log, "data": format!("{i:04}\n"), "encoding": "utf-8"}),
                )
                .await
        });
    }

    // Cut the link a few times while all of that is going on.
    let cutter = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                proxy.cut();
            }
        })
    };

    // Collect the process's notifications, and the connection states seen
    // on the way.
    let mut notes = Vec::new();
    let mut states = Vec::new();
    loop {
        let n = tokio::time::timeout(WAIT, p.notes.recv())
            .await
            .expect("the process did not finish in time")
            .expect("notification stream ended");
        let params = n.params.unwrap_or(Value::Null);
        if n.method == "connection/state" {
            assert_eq!(params["connection"], Value::from(conn.clone()));
            states.push(params["state"].as_str().unwrap_or_default().to_owned());
        } else if n.method.starts_with("proc/") && params["proc"] == proc.as_str() {
            let exit = n.method == "proc/exit";
            notes.push((n.method, params));
            if exit {
                break;
            }
        }
    }
    cutter.await.unwrap();
    let exit = &notes.last().unwrap().1;
    assert_eq!(exit["code"], 0, "{exit}");
    let expected: String = (0..20)
        .flat_map(|_| (1..=10000).map(|n| format!("{n}\n")))
        .collect();
    let got = stdout_of(&notes);
    assert_eq!(got.len(), expected.len(), "output lost or duplicated");
    assert!(got == expected.as_bytes(), "output differs");

    let mut answered = 0;
    while let Some(result) = appends.join_next().await {
        result.unwrap().expect("an append failed");
        answered += 1;
    }
    assert_eq!(answered, 300);
    let content = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 300, "an append was lost or applied twice");
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(distinct.len(), 300, "an append was applied twice");

    // The editor saw the link go and come back.
    let went = states.iter().position(|s| s == "reconnecting");
    let came_back = states.iter().rposition(|s| s == "connected");
    assert!(
        matches!((went, came_back), (Some(a), Some(b)) if a < b),
        "states seen: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_is_replaced_within_seconds() {
    let server = OwnServer::start(KEY_A);
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let mut p = stdio_peer();
    let conn = connect_through(&p, &proxy).await;
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );

    proxy.set_blackhole(true);
    let started = tokio::time::Instant::now();
    let pending = {
        let client = p.client.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            client
                .request("fs/exists", json!({"connection": conn, "path": "/"}))
                .await
        })
    };
    p.note("connection/state", |n| n["state"] == "reconnecting")
        .await;
    let noticed = started.elapsed();
    proxy.set_blackhole(false);
    proxy.cut();
    p.note("connection/state", |n| n["state"] == "connected")
        .await;
    assert_eq!(pending.await.unwrap().unwrap(), Value::Bool(true));
    assert!(
        noticed < Duration::from_secs(8),
        "took {noticed:?} to notice the silent link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forgot_the_session_fails_requests_with_connection_lost() {
    let server = OwnServer::start(KEY_A);
    let other = OwnServer::start(KEY_A);
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let mut p = stdio_peer();
    let conn = connect_through(&p, &proxy).await;

    // New connections now reach a server that never saw this session.
    proxy.retarget(other.addr.parse().unwrap());
    proxy.set_blackhole(true);
    let pending = {
        let client = p.client.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            client
                .request("fs/exists", json!({"connection": conn, "path": "/"}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.set_blackhole(false);
    proxy.cut();

    let err = match tokio::time::timeout(WAIT, pending).await {
        Ok(Ok(Err(distant_bridge::client::ClientError::Rpc(e)))) => e,
        other => panic!("expected a connection_lost error, got {other:?}"),
    };
    assert_eq!(err.kind.as_str(), "connection_lost", "{err:?}");
    p.note("connection/state", |n| n["state"] == "lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_for_good_is_lost_after_the_reconnect_timeout() {
    let server = OwnServer::start(KEY_A);
    let mut p = stdio_peer();
    p.call("initialize", json!({})).await;
    let url = format!("distant://:{KEY_A}@{}", server.addr);
    let r = p
        .call(
            "connect",
            json!({"destination": url, "options": {"reconnectTimeoutSecs": 1.5}}),
        )
        .await;
    let conn = r["connection"].as_str().unwrap().to_owned();

    drop(server); // killed; nothing listens on its port any more
    let started = tokio::time::Instant::now();
    let err = match tokio::time::timeout(
        WAIT,
        p.client
            .request("fs/exists", json!({"connection": conn, "path": "/"})),
    )
    .await
    {
        Ok(Err(distant_bridge::client::ClientError::Rpc(e))) => e,
        other => panic!("expected connection_lost, got {other:?}"),
    };
    assert_eq!(err.kind.as_str(), "connection_lost", "{err:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    p.note("connection/state", |n| n["state"] == "lost").await;

    let bad = p
        .fail(
            "connect",
            json!({"destination": "local", "options": {"reconnectTimeoutSecs": -1}}),
        )
        .await;
    assert_eq!(bad.kind.as_str(), "invalid_params", "{bad:?}");
}
