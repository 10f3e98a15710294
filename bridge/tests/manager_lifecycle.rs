//! The manager's life: started on demand and shared, stale sockets replaced,
//! a killed manager noticed by its relays and replaced, idle exit, unused
//! connections (and their local servers) closed.

mod manager_support;

use std::time::Duration;

use manager_support::*;

#[tokio::test]
async fn started_on_demand_and_shared_by_two_bridges() {
    let env = Env::new("share");
    assert!(!env.socket().exists());
    let mut a = env.stdio(&[]);
    let client_a = a.client();
    initialize(&client_a).await;
    let pid = env
        .manager_pid()
        .expect("the first bridge started a manager");
    assert!(alive(pid));

    let mut b = env.stdio(&[]);
    let client_b = b.client();
    initialize(&client_b).await;
    assert_eq!(
        env.manager_pid(),
        Some(pid),
        "the second bridge uses the same manager"
    );

    // Both sessions go on, interleaved.
    initialize(&client_a).await;
    initialize(&client_b).await;
    let log = std::fs::read_to_string(env.dir().join("manager.log")).unwrap_or_default();
    assert!(
        !log.contains("already running"),
        "only one manager was started: {log}"
    );
}

#[tokio::test]
async fn stale_socket_without_listener_is_replaced() {
    let env = Env::new("stale");
    std::fs::create_dir(env.dir()).expect("mkdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    drop(std::os::unix::net::UnixListener::bind(env.socket()).expect("bind"));
    assert!(env.socket().exists(), "a socket file with no listener");

    let mut bridge = env.stdio(&[]);
    initialize(&bridge.client()).await;
    assert!(env.manager_pid().is_some_and(alive));
}

#[tokio::test]
async fn killed_manager_ends_the_relay_clearly_and_is_replaced() {
    let env = Env::new("kill");
    let mut a = env.stdio(&[]);
    let client = a.client();
    initialize(&client).await;
    let old = env.manager_pid().expect("pid");

    // SAFETY: our test's manager.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let (code, err) = a.finish(Duration::from_secs(10)).await;
    assert_eq!(code, 1, "the relay fails so the editor restarts it");
    assert!(err.contains("went away mid-session"), "{err}");
    assert!(err.contains("Restart the bridge"), "{err}");
    assert!(env.socket().exists(), "the stale socket is left behind");

    let mut b = env.stdio(&[]);
    let client = b.client();
    if let Err(e) = client.request("initialize", serde_json::json!({})).await {
        let (code, err) = b.finish(Duration::from_secs(10)).await;
        let log = std::fs::read_to_string(env.dir().join("manager.log")).unwrap_or_default();
        panic!("initialize through a fresh manager failed: {e}; bridge exited {code}: {err}\nlog: {log}");
    }
    let new = env.manager_pid().expect("a fresh manager");
    assert_ne!(new, old);
    assert!(alive(new));
}

#[tokio::test]
async fn idle_manager_exits_but_not_while_a_peer_is_connected() {
    let mut env = Env::new("idle");
    env.idle_exit = 1;
    let mut bridge = env.stdio(&[]);
    let client = bridge.client();
    initialize(&client).await;
    let pid = env.manager_pid().expect("pid");

    // Idle timeout is 1 s; a connected peer keeps it alive.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(alive(pid), "the manager stays while a bridge is connected");
    initialize(&client).await;

    drop(client);
    drop(bridge); // kills the relay: the manager's peer goes away
    wait_until(Duration::from_secs(10), "the idle manager to exit", || {
        !alive(pid)
    })
    .await;
    assert!(!env.socket().exists(), "the socket is removed on idle exit");
    assert!(
        !env.pid_file().exists(),
        "the pid file is removed on idle exit"
    );
}

#[tokio::test]
async fn explicit_manager_detaches_and_honours_idle_exit() {
    let env = Env::new("explicit");
    let (code, out, err) = env.run(&["manager", "--idle-exit", "1"], b"").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("manager started"), "{out}");
    let pid = env.manager_pid().expect("pid");
    assert!(alive(pid));
    let (code, out, _) = env.run(&["manager"], b"").await;
    assert_eq!(code, 0);
    assert!(out.contains("already running"), "{out}");
    wait_until(Duration::from_secs(10), "idle exit", || !alive(pid)).await;
}

#[tokio::test]
async fn second_foreground_manager_defers_to_the_live_one() {
    let env = Env::new("two");
    let mut first = env
        .command(&["manager", "--foreground"])
        .spawn()
        .expect("spawn");
    let socket = env.socket();
    wait_until(Duration::from_secs(10), "the socket", || socket.exists()).await;
    let (code, _, err) = env.run(&["manager", "--foreground"], b"").await;
    assert_eq!(code, 0);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(env.manager_pid(), first.id());
    first.kill().await.expect("kill");
}

#[tokio::test]
async fn concurrent_first_clients_end_up_with_one_manager() {
    let env = Env::new("race");
    let mut bridges: Vec<Bridge> = (0..4).map(|_| env.stdio(&[])).collect();
    let clients: Vec<_> = bridges.iter_mut().map(Bridge::client).collect();
    for client in &clients {
        initialize(client).await;
    }
    let pid = env.manager_pid().expect("pid");
    assert!(alive(pid));
    // Every bridge reaches that one manager: kill it and all relays end.
    // SAFETY: our test's manager.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    drop(clients);
    for bridge in bridges {
        let (code, err) = bridge.finish(Duration::from_secs(10)).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("went away mid-session"), "{err}");
    }
}

#[tokio::test]
async fn unused_connections_are_closed_with_their_local_server() {
    let mut env = Env::new("linger");
    env.idle_exit = 1;
    // A connection an attached editor uses stays, however long it idles.
    let mut editor = env.stdio(&[]);
    let client = editor.client();
    initialize(&client).await;
    let held = client
        .request("connect", serde_json::json!({"destination": "local"}))
        .await
        .expect("connect local");
    let held = held["connection"].as_str().unwrap().to_owned();
    let manager = env.manager_pid().expect("pid");
    let servers = distant_testkit::children_named(manager, "distant-server");
    assert_eq!(servers.len(), 1, "one local server: {servers:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let exists = client
        .request(
            "fs/exists",
            serde_json::json!({"connection": held, "path": "/"}),
        )
        .await
        .expect("the held connection still works");
    assert_eq!(exists, serde_json::Value::Bool(true));

    // The editor quits: its connection lingers for the idle time, then
    // closes, and the local server goes with it (then the manager exits).
    drop(client);
    drop(editor);
    wait_until(
        Duration::from_secs(15),
        "the unused local server to stop",
        || !alive(servers[0]),
    )
    .await;
    wait_until(Duration::from_secs(15), "the idle manager to exit", || {
        !alive(manager)
    })
    .await;
}
