//! Port forwarding through the bridge API (`tunnel/open`, `tunnel/close`,
//! `tunnels`, `tunnel/state`) with real parts: a `python3 -m http.server`
//! fetched with curl, a 200 MiB download byte-exact across link cuts
//! (FaultProxy between bridge and server), 200 concurrent connections,
//! services that refuse, close and go away, a peer that leaves, limits.

mod api_support;

use std::process::Stdio;
use std::time::Duration;

use api_support::*;
use distant_testkit::{wait_until, FaultProxy};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn open(p: &Peer, conn: &str, remote_port: u16, extra: Value) -> (String, u16) {
    let mut params = json!({"connection": conn, "remotePort": remote_port});
    if let (Some(o), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let r = p.call("tunnel/open", params).await;
    let port = r["localPort"].as_u64().expect("localPort") as u16;
    assert_ne!(port, 0);
    (r["tunnel"].as_str().expect("tunnel id").to_string(), port)
}

async fn tunnels(p: &Peer, conn: &str) -> Vec<Value> {
    p.call("tunnels", json!({"connection": conn}))
        .await
        .as_array()
        .expect("a list")
        .clone()
}

/// `python3 -m http.server` on 127.0.0.1 (port chosen by the OS) serving
/// `dir`; killed on drop.
struct HttpServer {
    _child: tokio::process::Child,
    port: u16,
}

impl HttpServer {
    async fn start(dir: &std::path::Path) -> Self {
        let mut child = tokio::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 -m http.server");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("http.server announces its port")
            .unwrap()
            .expect("a line");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            port,
        }
    }
}

async fn curl(url: &str) -> (String, Vec<u8>) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", url])
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let code = String::from_utf8(body.split_off(nl)[1..].to_vec()).unwrap();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_on_the_remote_is_fetched_through_a_forward() {
    let dir = TempDir::new("tunnel-http");
    let page: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(dir.path().join("page.bin"), &page).unwrap();
    let http = HttpServer::start(dir.path()).await;

    let api = new_api();
    let mut p = peer(&api);
    let conn = p.connect_local().await;
    let (tunnel, port) = open(&p, &conn, http.port, json!({})).await;
    let state = p
        .note("tunnel/state", |n| n["tunnel"] == tunnel.as_str())
        .await;
    assert_eq!(state["state"], "open");
    assert_eq!(state["connection"], conn.as_str());

    let (code, body) = curl(&format!("http://127.0.0.1:{port}/page.bin")).await;
    assert_eq!(code, "200");
    assert_eq!(body, page, "the page arrives byte-exact");
    let (code, _) = curl(&format!("http://127.0.0.1:{port}/missing")).await;
    assert_eq!(code, "404");

    let list = tunnels(&p, &conn).await;
    assert_eq!(list.len(), 1);
    let t = &list[0];
    assert_eq!(t["tunnel"], tunnel.as_str());
    assert_eq!(t["localPort"], port);
    assert_eq!(t["remoteHost"], "127.0.0.1");
    assert_eq!(t["remotePort"], http.port);
    assert!(t["bytesIn"].as_u64().unwrap() > page.len() as u64, "{t}");
    assert!(t["bytesOut"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["accepted"], 2);

    // Listening on loopback only: the kernel's table of listening sockets
    // has it bound to 127.0.0.1 and nothing else.
    assert_eq!(
        listen_addresses(port),
        ["0100007F"],
        "listening on 127.0.0.1 only"
    );

    p.call(
        "tunnel/close",
        json!({"connection": conn, "tunnel": tunnel}),
    )
    .await;
    let state = p
        .note("tunnel/state", |n| n["tunnel"] == tunnel.as_str())
        .await;
    assert_eq!(state["state"], "closed");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    assert!(tunnels(&p, &conn).await.is_empty());
    let e = p
        .fail(
            "tunnel/close",
            json!({"connection": conn, "tunnel": tunnel}),
        )
        .await;
    assert_eq!(e.kind, distant_bridge::jsonrpc::ErrorKind::NotFound);
    drop(http);
}

/// Local addresses (hex, as /proc/net/tcp{,6} shows them) of the sockets
/// listening on `port`.
fn listen_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some((addr, p)) = f.get(1).and_then(|a| a.split_once(':')) else {
                continue;
            };
            if f.get(3) == Some(&"0A") && u16::from_str_radix(p, 16) == Ok(port) {
                out.push(addr.to_string());
            }
        }
    }
    out
}

/// Byte `i` of the download.
fn pattern(i: u64) -> u8 {
    (i ^ (i >> 11) ^ (i >> 23)).wrapping_mul(31) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_download_is_byte_exact_across_link_cuts() {
    const TOTAL: u64 = 200 * 1024 * 1024;
    const UPLOAD: usize = 8 * 1024 * 1024;
    const CUT_EVERY: u64 = 40 * 1024 * 1024;
    // The "remote" service: reads an upload to its end and answers with
    // its SHA-256, then streams TOTAL bytes of a pattern.
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = service.accept().await.unwrap();
        let mut got = vec![0u8; UPLOAD];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(&Sha256::digest(&got)).await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut i = 0u64;
        while i < TOTAL {
            let n = buf.len().min((TOTAL - i) as usize);
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(i + k as u64);
            }
            s.write_all(&buf[..n]).await.unwrap();
            i += n as u64;
        }
    });

    let server = OwnServer::start(KEY_A);
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let api = new_api();
    let p = peer(&api);
    let url = format!("distant://:{KEY_A}@{}", proxy.addr);
    let r = p.call("connect", json!({"destination": url})).await;
    let conn = r["connection"].as_str().unwrap().to_string();
    let (_tunnel, port) = open(&p, &conn, service_port, json!({})).await;

    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let upload: Vec<u8> = (0..UPLOAD).map(|i| (i * 7 % 253) as u8).collect();
    s.write_all(&upload[..UPLOAD / 2]).await.unwrap();
    proxy.cut();
    s.write_all(&upload[UPLOAD / 2..]).await.unwrap();
    let mut digest = [0u8; 32];
    s.read_exact(&mut digest).await.unwrap();
    assert_eq!(
        digest[..],
        Sha256::digest(&upload)[..],
        "the upload arrived byte-exact"
    );

    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    let mut next_cut = CUT_EVERY;
    let mut cuts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("the download finishes")
            .expect("read");
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            let i = at + k as u64;
            if *b != pattern(i) {
                panic!("byte {i} is {b}, expected {}", pattern(i));
            }
        }
        at += n as u64;
        if at >= next_cut {
            proxy.cut();
            cuts += 1;
            next_cut += CUT_EVERY;
        }
    }
    assert_eq!(at, TOTAL, "every byte, nothing more");
    assert!(cuts >= 4, "{cuts} cuts");
    assert!(
        proxy.accepted() >= 6,
        "the link was redialled after each cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections() {
    const N: usize = 200;
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    // Echo, one task per connection.
    tokio::spawn(async move {
        while let Ok((s, _)) = service.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let api = new_api();
    let p = peer(&api);
    let conn = p.connect_local().await;
    let (tunnel, port) = open(&p, &conn, service_port, json!({})).await;

    // Every client connects first, so all 200 are open at once.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N + 1));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..N {
        let barrier = barrier.clone();
        clients.spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let msg: Vec<u8> = (0..20_000).map(|i| ((i + c * 7) % 256) as u8).collect();
            // A first round trip proves the remote connection is up.
            s.write_all(&msg[..10]).await.unwrap();
            let mut head = [0u8; 10];
            s.read_exact(&mut head).await.unwrap();
            barrier.wait().await;
            s.write_all(&msg[10..]).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = head.to_vec();
            s.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, msg, "client {c}");
        });
    }
    barrier.wait().await;
    let list = tunnels(&p, &conn).await;
    assert_eq!(list[0]["connections"], N, "{}", list[0]);
    while let Some(r) = tokio::time::timeout(WAIT, clients.join_next())
        .await
        .expect("clients finish")
    {
        r.expect("client");
    }
    let mut open_now = u64::MAX;
    let deadline = tokio::time::Instant::now() + WAIT;
    while open_now != 0 && tokio::time::Instant::now() < deadline {
        open_now = tunnels(&p, &conn).await[0]["connections"].as_u64().unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(open_now, 0, "forwarded connections are closed when done");
    let t = &tunnels(&p, &conn).await[0];
    assert_eq!(t["accepted"], N);
    assert_eq!(t["bytesIn"], (N * 20_000) as u64);
    assert_eq!(t["bytesOut"], (N * 20_000) as u64);
    assert!(t.get("lastError").is_none(), "{t}");
    let _ = tunnel;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_services_that_refuse_close_and_go_away() {
    let api = new_api();
    let p = peer(&api);
    let conn = p.connect_local().await;

    // Refusing: nothing listens there. The local client is closed, the
    // tunnel stays and says why.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused_port = gone.local_addr().unwrap().port();
    drop(gone);
    let (refusing, port) = open(&p, &conn, refused_port, json!({})).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("the local client is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let t = tunnels(&p, &conn).await;
    let t = t.iter().find(|t| t["tunnel"] == refusing.as_str()).unwrap();
    let why = t["lastError"].as_str().unwrap_or_default();
    assert!(why.contains("connection refused"), "{t}");
    assert!(why.contains(&format!("127.0.0.1:{refused_port}")), "{t}");

    // Closing: the service says goodbye and closes; the client reads it
    // all, then EOF — and can still send (half-close), the service's
    // reading side sees it.
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    let (said_tx, said_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (s, _) = service.accept().await.unwrap();
        let (mut r, mut w) = s.into_split();
        w.write_all(b"bye").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        let _ = said_tx.send(got);
        // Accept one more, then go away with a reset.
        let (s, _) = service.accept().await.unwrap();
        // A zero linger makes the close a reset (deprecated only for blocking drops).
        #[allow(deprecated)]
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let mut s = s;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        drop(s);
        drop(service);
    });
    let (_closing, port) = open(&p, &conn, service_port, json!({})).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("EOF from the service")
        .unwrap();
    assert_eq!(got, b"bye");
    s.write_all(b"thanks").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(said_rx.await.unwrap(), b"thanks");

    // Going away: a reset ends the local connection too.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("the local connection ends when the service resets");
    assert!(buf.is_empty());
    // And the service is gone now: later connections are refused remotely.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_closes_with_the_peer_that_opened_it_unless_kept() {
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = service.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let api = new_api();
    let a = peer(&api);
    let mut b = peer(&api);
    let conn = a.connect_local().await;
    assert_eq!(b.connect_local().await, conn, "one shared connection");
    let (t_a, port_a) = open(&a, &conn, service_port, json!({})).await;
    let (t_kept, port_kept) = open(&a, &conn, service_port, json!({"keep": true})).await;
    // A connection through A's tunnel is open when A leaves.
    let mut through = TcpStream::connect(("127.0.0.1", port_a)).await.unwrap();
    through.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    through.read_exact(&mut one).await.unwrap();

    a.hang_up().await;
    let closed = b
        .note("tunnel/state", |n| {
            n["tunnel"] == t_a.as_str() && n["state"] == "closed"
        })
        .await;
    assert!(
        closed["reason"].as_str().unwrap().contains("left"),
        "{closed}"
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, through.read_to_end(&mut rest))
        .await
        .expect("the open connection through it closes");
    assert!(TcpStream::connect(("127.0.0.1", port_a)).await.is_err());

    // The kept one still works, and B sees it.
    let list = tunnels(&b, &conn).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["tunnel"], t_kept.as_str());
    assert_eq!(list[0]["keep"], true);
    let mut s = TcpStream::connect(("127.0.0.1", port_kept)).await.unwrap();
    s.write_all(b"still here").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"still here");

    // Disconnecting closes it too.
    b.call("disconnect", json!({"connection": conn})).await;
    b.note("tunnel/state", |n| {
        n["tunnel"] == t_kept.as_str() && n["state"] == "closed"
    })
    .await;
    wait_until("the kept port stops accepting", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port_kept)).is_err()
    })
    .await;
}

#[tokio::test]
async fn bad_parameters_and_limits_are_refused_clearly() {
    let api = new_api();
    let p = peer(&api);
    let conn = p.connect_local().await;
    let e = p
        .fail("tunnel/open", json!({"connection": conn, "remotePort": 0}))
        .await;
    assert!(e.message.contains("remotePort"), "{}", e.message);
    let e = p
        .fail(
            "tunnel/open",
            json!({"connection": conn, "remotePort": 70000}),
        )
        .await;
    assert!(e.message.contains("remotePort"), "{}", e.message);
    let e = p
        .fail(
            "tunnel/open",
            json!({"connection": "nope", "remotePort": 80}),
        )
        .await;
    assert_eq!(e.kind, distant_bridge::jsonrpc::ErrorKind::NotConnected);

    // A local port in use.
    let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let e = p
        .fail(
            "tunnel/open",
            json!({"connection": conn, "remotePort": 80, "localPort": busy_port}),
        )
        .await;
    assert_eq!(e.kind, distant_bridge::jsonrpc::ErrorKind::AlreadyExists);
    assert!(e.message.contains("already in use"), "{}", e.message);

    // The per-connection cap on tunnels.
    for _ in 0..64 {
        open(&p, &conn, 9, json!({})).await;
    }
    let e = p
        .fail("tunnel/open", json!({"connection": conn, "remotePort": 9}))
        .await;
    assert!(e.message.contains("64 tunnels"), "{}", e.message);
    assert_eq!(tunnels(&p, &conn).await.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_by_proc_spawn_is_detected_and_forwarded() {
    let dir = TempDir::new("tunnel-detect");
    std::fs::write(dir.path().join("index.html"), "detected!").unwrap();
    let api = new_api();
    let p = peer(&api);
    let mut other = peer(&api);
    let conn = p.connect_local().await;
    let spawned = p
        .call(
            "proc/spawn",
            json!({"connection": conn, "cwd": dir.path(),
                   "cmd": ["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"]}),
        )
        .await;
    let proc = spawned["proc"].as_str().unwrap().to_string();
    let pid = spawned["pid"].as_u64().unwrap();
    // Every peer hears of it, with the process that listens.
    let detected = other.note("tunnel/detected", |n| n["pid"] == pid).await;
    assert_eq!(detected["connection"], conn.as_str());
    assert!(
        detected["command"]
            .as_str()
            .unwrap()
            .contains("http.server"),
        "{detected}"
    );
    let port = detected["port"].as_u64().unwrap() as u16;
    let (_, local) = open(&p, &conn, port, json!({})).await;
    let (code, body) = curl(&format!("http://127.0.0.1:{local}/index.html")).await;
    assert_eq!(code, "200");
    assert_eq!(body, b"detected!");
    p.call("proc/kill", json!({"connection": conn, "proc": proc}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_remote_half_closed_ends_the_local_connection() {
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = service.accept().await.unwrap();
        let (mut r, mut w) = s.into_split();
        w.write_all(b"bye").await.unwrap();
        w.shutdown().await.unwrap();
        let mut b = [0u8; 4];
        r.read_exact(&mut b).await.unwrap();
        let s = r.reunite(w).unwrap();
        // A zero linger makes the close a reset (deprecated only for blocking drops).
        #[allow(deprecated)]
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    });
    let api = new_api();
    let p = peer(&api);
    let conn = p.connect_local().await;
    let (_, port) = open(&p, &conn, service_port, json!({})).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
    // Still sending (half-open) when the service resets.
    s.write_all(b"more").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let t = &tunnels(&p, &conn).await[0];
        if t["connections"] == 0 {
            assert!(t["lastError"].is_string(), "{t}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still open: {t}");
        tokio::task::yield_now().await;
    }
}
