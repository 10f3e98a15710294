//! Crashes: `kill -9` of the manager mid-session, `kill -9` of the server
//! (for good, and restarted on the same port), and a link down for longer
//! than the server's grace period. Nothing hangs: every request in flight
//! is answered or fails with a clear error in bounded time.

use std::time::{Duration, Instant};

use distant_bridge::client::ClientError;
use distant_e2e::*;
use serde_json::{json, Value};

async fn spawn_sleep(ed: &Editor, conn: &str) -> (String, u32) {
    let r = ed
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sleep", "300"]}),
        )
        .await;
    (
        r["proc"].as_str().unwrap().to_owned(),
        r["pid"].as_u64().unwrap() as u32,
    )
}

/// Requests that are in flight when something dies: a slow process whose
/// spawn is answered at once, plus reads of a large file.
fn in_flight(
    ed: &Editor,
    conn: &str,
    file: &str,
    n: usize,
) -> tokio::task::JoinSet<Result<Value, ClientError>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = ed.client.clone();
        let params = json!({"connection": conn, "path": file, "encoding": "base64"});
        set.spawn(async move { client.request("fs/read", params).await });
    }
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_killed_mid_session_the_relay_exits_and_a_new_one_starts_fresh() {
    const T: &str = "crash_manager";
    let server = Server::start(&[]);
    let runtime = TempDir::new("xdg");
    let data = TempDir::new("mgrdata");
    let file = data.join("big");
    std::fs::write(&file, det_bytes(1, 32 << 20)).unwrap();

    let mut ed = Editor::with_manager(runtime.path());
    let conn = ed.connect(&server.url).await;
    let pid_file = runtime.path().join("distant/manager.pid");
    let manager: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(manager));
    let (_, sleeper) = spawn_sleep(&ed, &conn).await;
    let mut pending = in_flight(&ed, &conn, &file, 6);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let killed = Instant::now();
    kill9(manager);
    let mut closed = 0;
    let mut answered = 0;
    while let Some(r) = tokio::time::timeout(Duration::from_secs(15), pending.join_next())
        .await
        .expect("a request in flight hung after the manager died")
    {
        match r.unwrap() {
            Err(ClientError::Closed) => closed += 1,
            Ok(_) => answered += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    let failed_within = killed.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(15), ed.child.wait())
        .await
        .expect("the relay exits when its manager dies")
        .unwrap();
    assert_eq!(status.code(), Some(1), "relay exit status");
    let stderr = ed.stderr().await;
    assert!(
        stderr.contains("went away mid-session") && stderr.contains(&manager.to_string()),
        "relay message: {stderr}"
    );
    // A request after the relay ended fails at once (no hang).
    assert!(matches!(
        ed.client
            .request("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Err(ClientError::Closed)
    ));

    // The editor restarts the bridge: a fresh manager starts on demand.
    let ed2 = Editor::with_manager(runtime.path());
    let conn2 = ed2.connect(&server.url).await;
    let manager2: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(manager2, manager, "a new manager");
    assert_eq!(
        ed2.call("fs/exists", json!({"connection": conn2, "path": file}))
            .await,
        Value::Bool(true)
    );
    figure(
        T,
        format!(
            "manager kill -9: {closed} requests in flight failed (closed) and {answered} were answered within {} ms; relay exited 1 with a message; a fresh manager (pid {manager2}) served the next bridge",
            failed_within.as_millis()
        ),
    );
    assert!(ed2.close().await.success());
    kill9(manager2);
    kill9(sleeper);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_server_killed_requests_fail_with_connection_lost_in_bounded_time() {
    const T: &str = "crash_server_local";
    let ed = Editor::no_manager();
    let conn = ed.connect("local").await;
    let server = children_of(ed.pid)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "distant-server")
        })
        .expect("the local distant-server is the bridge's child");
    let (proc, _) = spawn_sleep(&ed, &conn).await;

    let killed = Instant::now();
    kill9(server);
    let pending = {
        let client = ed.client.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            client
                .request("fs/exists", json!({"connection": conn, "path": "/"}))
                .await
        })
    };
    let err = match tokio::time::timeout(Duration::from_secs(60), pending).await {
        Ok(Ok(Err(ClientError::Rpc(e)))) => e,
        other => panic!("expected connection_lost, got {other:?}"),
    };
    let lost_after = killed.elapsed();
    assert_eq!(err.kind.as_str(), "connection_lost", "{err:?}");
    ed.wait_seen("state lost", WAIT, |s| {
        s.states.iter().any(|(_, st, _)| st == "lost")
    })
    .await;
    let exit = ed.wait_exit(&proc, WAIT).await;
    assert_eq!(exit["code"], Value::Null, "{exit}");
    assert!(exit["error"].is_string(), "{exit}");
    // Later requests fail at once.
    let t = Instant::now();
    let e = ed
        .fail("fs/exists", json!({"connection": conn, "path": "/"}))
        .await;
    assert!(
        matches!(e.kind.as_str(), "connection_lost" | "not_connected"),
        "{e:?}"
    );
    let after = t.elapsed();
    figure(
        T,
        format!(
            "local server kill -9: the request in flight failed with connection_lost after {:.1} s (the bridge redials a local server for 30 s), the process stream ended with an error, the next request failed in {} ms",
            lost_after.as_secs_f64(),
            after.as_millis()
        ),
    );
    assert!(lost_after < Duration::from_secs(45));
    assert!(ed.close().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_on_its_port_requests_fail_with_connection_lost() {
    const T: &str = "crash_server_restart";
    let mut server = Server::start(&[]);
    let port = server.addr.port();
    let ed = Editor::no_manager();
    let conn = ed.connect(&server.url).await;
    let (proc, _) = spawn_sleep(&ed, &conn).await;

    let killed = Instant::now();
    server.kill9();
    let pending = {
        let client = ed.client.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            client
                .request("fs/exists", json!({"connection": conn, "path": "/"}))
                .await
        })
    };
    // While the server is down for good the bridge keeps redialling (up to
    // 10 minutes for a TCP remote): the editor sees `reconnecting`, the
    // request waits.
    ed.wait_seen("state reconnecting", WAIT, |s| {
        s.states.iter().any(|(_, st, _)| st == "reconnecting")
    })
    .await;
    let noticed = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pending.is_finished(),
        "the request waits while reconnecting"
    );
    // The server comes back (a supervisor restarted it): it does not know
    // the session, so the session is lost, not hung.
    let restarted = Instant::now();
    let _server2 = Server::start_on(port, &[]);
    let err = match tokio::time::timeout(Duration::from_secs(30), pending).await {
        Ok(Ok(Err(ClientError::Rpc(e)))) => e,
        other => panic!("expected connection_lost, got {other:?}"),
    };
    let lost_after = restarted.elapsed();
    assert_eq!(err.kind.as_str(), "connection_lost", "{err:?}");
    let exit = ed.wait_exit(&proc, WAIT).await;
    assert_eq!(exit["code"], Value::Null, "{exit}");
    // `connect` again replaces the lost connection.
    let conn2 = ed.connect(&server.url).await;
    assert_ne!(conn2, conn);
    assert_eq!(
        ed.call("fs/exists", json!({"connection": conn2, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    figure(
        T,
        format!(
            "TCP server kill -9: reconnecting reported after {} ms; once a fresh server listened on the port the waiting request failed with connection_lost after {} ms; a new connect worked",
            noticed.as_millis(),
            lost_after.as_millis()
        ),
    );
    assert!(ed.close().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_down_past_the_grace_period_is_lost_and_the_server_reaps_its_processes() {
    const T: &str = "crash_grace";
    let server = Server::start(&["--session-ttl", "2"]);
    let proxy = FaultProxy::start(server.addr).await;
    let ed = Editor::no_manager();
    let conn = ed
        .connect(&format!("distant://:{KEY}@{}", proxy.addr))
        .await;
    let (proc, pid) = spawn_sleep(&ed, &conn).await;
    assert!(pid_alive(pid));

    let down = Instant::now();
    proxy.set_refuse(true);
    proxy.cut();
    wait_until(
        "the server to reap the process",
        Duration::from_secs(15),
        || !pid_alive(pid),
    )
    .await;
    let reaped = down.elapsed();
    proxy.set_refuse(false);
    ed.wait_seen("state lost", WAIT, |s| {
        s.states.iter().any(|(_, st, _)| st == "lost")
    })
    .await;
    let lost = down.elapsed();
    let detail = ed
        .seen
        .lock()
        .unwrap()
        .states
        .iter()
        .find(|(_, s, _)| s == "lost")
        .map(|(_, _, d)| d.clone())
        .unwrap();
    let e = ed
        .fail("fs/exists", json!({"connection": conn, "path": "/"}))
        .await;
    assert!(
        matches!(e.kind.as_str(), "connection_lost" | "not_connected"),
        "{e:?}"
    );
    let exit = ed.wait_exit(&proc, WAIT).await;
    assert_eq!(exit["code"], Value::Null, "{exit}");
    figure(
        T,
        format!(
            "link down past a 2 s grace period: process (pid {pid}) reaped after {:.1} s, editor told `lost` after {:.1} s ({detail})",
            reaped.as_secs_f64(),
            lost.as_secs_f64()
        ),
    );
    assert!(ed.close().await.success());
}
