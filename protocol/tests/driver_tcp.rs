//! The tokio driver over real TCP sockets on loopback, with a
//! fault-injecting proxy between client and server: cuts, black holes,
//! refused reconnects, a forgotten session, garbage on the port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{self, ClientOptions, DialFuture, ReconnectPolicy};
use distant_protocol::driver::rpc::{RpcClient, RpcError};
use distant_protocol::driver::server::{Server, ServerOptions};
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::driver::ConnectionState;
use distant_protocol::handshake::{ClientConfig, ServerConfig};
use distant_protocol::msg::{FileStamp, Op, Reply, RequestPayload, Response, ResponsePayload};
use distant_testkit::FaultProxy;
use rand::SeedableRng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A tiny application: appends go to in-memory files, `Exists` answers
/// true, `ProcStdin` echoes its data back as a stream of one chunk.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

async fn start_server(
    key: &StaticKey,
    ttl: Duration,
) -> (SocketAddr, Files, Server, JoinHandle<()>) {
    start_server_with(key, ttl, |_| {}).await
}

async fn start_server_with(
    key: &StaticKey,
    ttl: Duration,
    tune: impl FnOnce(&mut ServerOptions),
) -> (SocketAddr, Files, Server, JoinHandle<()>) {
    let config = ServerConfig {
        static_key: Some(key.clone()),
        failure_delay: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let mut options = ServerOptions::new(config);
    options.session_ttl = ttl;
    tune(&mut options);
    let (server, mut sessions) = Server::new(options);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let files: Files = Arc::default();
    let app_files = files.clone();
    let serve = server.clone();
    let handle = tokio::spawn(async move {
        tokio::spawn(async move {
            let _ = serve.serve_tcp(listener).await;
        });
        while let Some(mut session) = sessions.recv().await {
            let files = app_files.clone();
            tokio::spawn(async move {
                let mut next_id = 1;
                while let Some(request) = session.requests.recv().await {
                    let answer = |op: Op| match op {
                        Op::FileAppend { path, data } => {
                            let mut files = files.lock().unwrap();
                            let file = files.entry(path).or_default();
                            file.extend_from_slice(&data);
                            Reply::FileWritten(FileStamp {
                                size: file.len() as u64,
                                mtime: 0,
                                etag: String::new(),
                            })
                        }
                        Op::Exists { .. } => Reply::Exists(true),
                        _ => Reply::Ok,
                    };
                    let payload = match request.payload {
                        RequestPayload::Single(op) => ResponsePayload::Single(answer(op)),
                        RequestPayload::Batch { ops, .. } => {
                            ResponsePayload::Batch(ops.into_iter().map(answer).collect())
                        }
                    };
                    next_id += 1;
                    let response = Response {
                        id: next_id,
                        origin_id: request.id,
                        payload,
                    };
                    if session.responses.send(response).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, files, server, handle)
}

fn client_options(key: &StaticKey) -> ClientOptions {
    let config = ClientConfig {
        static_key: Some(key.clone()),
        ..ClientConfig::default()
    };
    let mut options = ClientOptions::new(config);
    options.reconnect = ReconnectPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        give_up_after: Duration::from_secs(20),
        give_up_when_refused_for: Duration::from_secs(1),
    };
    options.dial_timeout = Duration::from_secs(2);
    options.handshake_timeout = Duration::from_secs(2);
    options
}

async fn connect_via(addr: SocketAddr, key: &StaticKey) -> Result<RpcClient, client::ConnectError> {
    let target = addr.to_string();
    let dialer = Arc::new(move || -> DialFuture {
        let target = target.clone();
        Box::pin(async move { dial_tcp(&target, Duration::from_secs(2)).await })
    });
    let session = client::connect(client_options(key), dialer).await?;
    Ok(RpcClient::new(session))
}

fn key(seed: u64) -> StaticKey {
    StaticKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

async fn wait_for_state(rpc: &RpcClient, want: &str, within: Duration) -> ConnectionState {
    let mut state = rpc.state();
    let result = tokio::time::timeout(within, async {
        loop {
            let current = state.borrow_and_update().clone();
            if current.word() == want {
                return current;
            }
            if state.changed().await.is_err() {
                return state.borrow().clone();
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("state did not become {want} within {within:?}"))
}

#[tokio::test]
async fn requests_are_answered_over_tcp() {
    let k = key(1);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let rpc = connect_via(addr, &k).await.unwrap();
    assert_eq!(
        rpc.call(Op::Exists { path: "/".into() }).await.unwrap(),
        Reply::Exists(true)
    );
    let replies = rpc
        .call_batch(vec![Op::Exists { path: "/a".into() }, Op::Version], false)
        .await
        .unwrap();
    assert_eq!(replies, vec![Reply::Exists(true), Reply::Ok]);
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_a_clear_error() {
    let (addr, _, _, _) = start_server(&key(1), Duration::from_secs(60)).await;
    let err = match connect_via(addr, &key(2)).await {
        Ok(_) => panic!("connected with the wrong key"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.to_lowercase().contains("auth"),
        "unhelpful error: {err}"
    );
}

/// Appends pipelined through repeated cuts land exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_cuts_exactly_once() {
    let k = key(3);
    let (addr, files, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr).await;
    let rpc = connect_via(proxy.addr, &k).await.unwrap();

    let writer = {
        let rpc = rpc.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            for i in 0..2000u32 {
                let rpc = rpc.clone();
                pending.push(tokio::spawn(async move {
                    rpc.call(Op::FileAppend {
                        path: "log".into(),
                        data: Bytes::from(format!("{i:05}\n")),
                    })
                    .await
                }));
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let mut answered = 0;
            for p in pending {
                match p.await.unwrap() {
                    Ok(Reply::FileWritten(_)) => answered += 1,
                    other => panic!("append failed: {other:?}"),
                }
            }
            answered
        })
    };
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        proxy.cut();
    }
    let answered = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("appends did not finish")
        .unwrap();
    assert_eq!(answered, 2000);
    // Spawned calls may be sent in any order; each line must appear once.
    let content = files
        .lock()
        .unwrap()
        .get("log")
        .cloned()
        .unwrap_or_default();
    let mut lines: Vec<&str> = std::str::from_utf8(&content).unwrap().lines().collect();
    assert_eq!(lines.len(), 2000, "an append was lost or duplicated");
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 2000, "an append was duplicated");
}

/// A link that goes silent (not closed) is declared dead within seconds and
/// replaced; the request made meanwhile completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_link_is_replaced() {
    let k = key(4);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr).await;
    let rpc = connect_via(proxy.addr, &k).await.unwrap();
    rpc.call(Op::Version).await.unwrap();

    proxy.set_blackhole(true);
    let started = tokio::time::Instant::now();
    let call = {
        let rpc = rpc.clone();
        tokio::spawn(async move { rpc.call(Op::Exists { path: "/".into() }).await })
    };
    wait_for_state(&rpc, "reconnecting", Duration::from_secs(10)).await;
    let detected = started.elapsed();
    proxy.set_blackhole(false);
    proxy.cut();
    wait_for_state(&rpc, "connected", Duration::from_secs(10)).await;
    assert_eq!(call.await.unwrap().unwrap(), Reply::Exists(true));
    assert!(
        detected < Duration::from_secs(8),
        "took {detected:?} to notice the dead link"
    );
}

/// While reconnects are refused the client keeps trying; when the link
/// comes back the session resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reconnects_are_retried() {
    let k = key(5);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr).await;
    let rpc = connect_via(proxy.addr, &k).await.unwrap();
    proxy.set_refuse(true);
    proxy.cut();
    let call = {
        let rpc = rpc.clone();
        tokio::spawn(async move { rpc.call(Op::Version).await })
    };
    wait_for_state(&rpc, "reconnecting", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_refuse(false);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        Reply::Ok
    );
}

/// A server that forgot the session (restarted) makes the client report
/// "lost" and fail the waiting request — never hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_session_is_lost_not_hung() {
    let k = key(6);
    let (addr1, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let (addr2, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr1).await;
    let rpc = connect_via(proxy.addr, &k).await.unwrap();
    rpc.call(Op::Version).await.unwrap();

    // "Restart" the server: new connections reach a server without the session.
    proxy.retarget(addr2);
    proxy.set_blackhole(true);
    let call = {
        let rpc = rpc.clone();
        tokio::spawn(async move { rpc.call(Op::Version).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.set_blackhole(false);
    proxy.cut();

    let result = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the waiting request hung instead of failing")
        .unwrap();
    match result {
        Err(RpcError::ConnectionLost(reason)) => {
            assert!(reason.contains("no longer has this session"), "{reason}")
        }
        other => panic!("expected connection lost, got {other:?}"),
    }
    assert_eq!(
        wait_for_state(&rpc, "lost", Duration::from_secs(5))
            .await
            .word(),
        "lost"
    );
    // New requests fail at once too.
    assert!(matches!(
        rpc.call(Op::Version).await,
        Err(RpcError::ConnectionLost(_))
    ));
}

/// Garbage on the port, a huge length prefix and a stalled peer do not
/// disturb a working session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_disturb_a_session() {
    let k = key(7);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let rpc = connect_via(addr, &k).await.unwrap();
    let mut hostile = Vec::new();
    for i in 0..50u32 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        match i % 3 {
            0 => {
                let _ = s.write_all(&[0xff; 4096]).await;
            }
            1 => {
                let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
            }
            _ => {} // says nothing at all
        }
        hostile.push(s);
    }
    for _ in 0..20 {
        assert_eq!(
            rpc.call(Op::Exists { path: "/".into() }).await.unwrap(),
            Reply::Exists(true)
        );
    }
}

/// A server whose port stays closed (RST) is gone, and so is the session:
/// the client says so soon instead of redialling for the whole window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_down_is_lost_soon() {
    let k = key(8);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let dialer = {
        let (first, via) = (first.clone(), proxy.addr);
        Arc::new(move || -> DialFuture {
            let target = if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                via
            } else {
                dead
            };
            Box::pin(async move { dial_tcp(&target.to_string(), Duration::from_secs(2)).await })
        })
    };
    let rpc = RpcClient::new(client::connect(client_options(&k), dialer).await.unwrap());
    rpc.call(Op::Version).await.unwrap();
    proxy.cut();
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), rpc.call(Op::Version))
        .await
        .expect("the request hung");
    match result {
        Err(RpcError::ConnectionLost(reason)) => {
            assert!(reason.contains("no longer running"), "{reason}")
        }
        other => panic!("expected connection lost, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// Every failed redial publishes its reason as the `Reconnecting` detail,
/// and a dial failure that waiting cannot fix ([`PermanentDialError`]) ends
/// the retrying at once: `Lost` with that reason, long before the policy's
/// 20 s window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redial_failures_are_reported_and_permanent_ones_end_the_session() {
    use distant_protocol::driver::client::PermanentDialError;
    use std::sync::atomic::{AtomicU8, Ordering};

    let k = key(9);
    let (addr, _, _, _) = start_server(&k, Duration::from_secs(60)).await;
    let proxy = FaultProxy::start(addr).await;
    // 0: dial the proxy; 1: fail like ssh without its key; 2: fail for good.
    let mode = Arc::new(AtomicU8::new(0));
    let target = proxy.addr.to_string();
    let dial_mode = mode.clone();
    let dialer = Arc::new(move || -> DialFuture {
        let target = target.clone();
        let mode = dial_mode.load(Ordering::SeqCst);
        Box::pin(async move {
            match mode {
                0 => dial_tcp(&target, Duration::from_secs(2)).await,
                1 => Err(std::io::Error::other(
                    "ssh authentication failed: Permission denied (publickey).",
                )),
                _ => Err(PermanentDialError(
                    "the server announced another key: the session cannot resume".into(),
                )
                .into_io()),
            }
        })
    });
    let session = client::connect(client_options(&k), dialer).await.unwrap();
    let rpc = RpcClient::new(session);
    rpc.call(Op::Version).await.unwrap();

    mode.store(1, Ordering::SeqCst);
    proxy.cut();
    let mut state = rpc.state();
    let detail = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ConnectionState::Reconnecting { detail, .. } = &*state.borrow_and_update() {
                if detail.contains("Permission denied (publickey)") {
                    return detail.clone();
                }
            }
            state.changed().await.expect("the session task ended");
        }
    })
    .await
    .expect("the redial's reason never showed in the state");
    assert!(detail.contains("could not reach the server"), "{detail}");

    mode.store(2, Ordering::SeqCst);
    let lost = wait_for_state(&rpc, "lost", Duration::from_secs(10)).await;
    assert_eq!(
        lost,
        ConnectionState::Lost {
            reason: "the server announced another key: the session cannot resume".into()
        }
    );
}

/// Opens `n` TCP connections to `addr` from `source` and keeps them idle.
async fn idle_sockets(addr: SocketAddr, source: [u8; 4], n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bind a loopback source address");
        held.push(socket.connect(addr).await.unwrap());
    }
    held
}

/// Issue 14, item 6: idle sockets held open (1 000, from another address
/// and from the same one) never lock a legitimate login out: the oldest
/// unauthenticated connection makes room, and the bounds hold. The
/// handshake deadline is long here, so idle sockets are never freed by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_succeeds_while_a_thousand_idle_sockets_are_held() {
    let k = key(11);
    let (addr, _, server, _) = start_server_with(&k, Duration::from_secs(60), |o| {
        o.handshake_timeout = Duration::from_secs(600);
    })
    .await;
    for source in [[127, 0, 0, 2], [127, 0, 0, 1]] {
        let held = idle_sockets(addr, source, 1000).await;
        distant_testkit::wait_until(
            "the server to take every idle socket",
            Duration::from_secs(20),
            || server.unauthenticated_count() >= 16,
        )
        .await;
        assert!(server.unauthenticated_count() <= 64);
        let rpc = connect_via(addr, &k).await.unwrap_or_else(|e| {
            panic!("login from 127.0.0.1 with idle sockets from {source:?}: {e}")
        });
        assert_eq!(
            rpc.call(Op::Exists { path: "/".into() }).await.unwrap(),
            Reply::Exists(true)
        );
        assert!(server.unauthenticated_count() <= 64);
        drop(held);
    }
}
