//! TCP connections from the server (port forwarding): data both ways
//! against real sockets, half-close, the byte window, typed connect errors,
//! limits, and cleanup when the session ends.

mod common;

use common::*;
use distant_protocol::msg::{ErrorKind, Op, Reply, RequestId};
use distant_server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn connect_op(port: u16, window: Option<u32>) -> Op {
    Op::TcpConnect {
        host: None,
        port,
        window,
        timeout_ms: None,
    }
}

/// Opens a connection and returns (origin, conn id).
async fn open(c: &mut Client, port: u16, window: Option<u32>) -> (RequestId, u64) {
    let origin = c.send(connect_op(port, window)).await;
    match c.reply_for(origin).await {
        Reply::TcpConnected { conn, peer } => {
            assert_eq!(peer, format!("127.0.0.1:{port}"));
            (origin, conn)
        }
        other => panic!("expected TcpConnected, got {other:?}"),
    }
}

/// Reads `TcpData` until `n` bytes (acking as it goes).
async fn read_n(c: &mut Client, origin: RequestId, conn: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        match c.reply_for(origin).await {
            Reply::TcpData { conn: id, data } => {
                assert_eq!(id, conn);
                out.extend_from_slice(&data);
                let ack = c
                    .send(Op::TcpAck {
                        conn,
                        bytes: data.len() as u64,
                    })
                    .await;
                assert_eq!(c.reply_for(ack).await, Reply::Ok);
            }
            other => panic!("expected TcpData, got {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn bytes_both_ways_then_half_close_each_side() {
    let (l, port) = listener().await;
    let service = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap(); // until the client half-closes
        s.write_all(b"you said: ").await.unwrap();
        s.write_all(&got).await.unwrap();
        // Dropping closes our side: the client sees TcpEof.
    });
    let mut c = Client::start();
    let (origin, conn) = open(&mut c, port, None).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for chunk in payload.chunks(65536) {
        assert_eq!(
            c.call(Op::TcpSend {
                conn,
                data: chunk.to_vec().into()
            })
            .await,
            Reply::Ok
        );
    }
    assert_eq!(c.call(Op::TcpShutdown { conn }).await, Reply::Ok);
    // After the half-close, sending is an error that says so.
    let r = c
        .call(Op::TcpSend {
            conn,
            data: b"late".to_vec().into(),
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams, "{r:?}");
    assert!(err_msg(&r).contains("shut down"), "{}", err_msg(&r));

    let expect = [b"you said: ".as_slice(), &payload].concat();
    let got = read_n(&mut c, origin, conn, expect.len()).await;
    assert_eq!(got, expect);
    assert_eq!(c.reply_for(origin).await, Reply::TcpEof { conn });
    assert_eq!(
        c.reply_for(origin).await,
        Reply::TcpClosed { conn, error: None }
    );
    service.await.unwrap();
    // Gone: acks are harmless, sends name the closed connection.
    assert_eq!(c.call(Op::TcpAck { conn, bytes: 0 }).await, Reply::Ok);
    let r = c
        .call(Op::TcpSend {
            conn,
            data: b"x".to_vec().into(),
        })
        .await;
    assert!(err_msg(&r).contains("already closed"), "{r:?}");
    c.close().await;
}

#[tokio::test]
async fn unacknowledged_bytes_never_exceed_the_window() {
    const WINDOW: u32 = 64 * 1024;
    const TOTAL: usize = 4 * 1024 * 1024;
    let (l, port) = listener().await;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 7 % 256) as u8).collect();
    let sent = data.clone();
    let service = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&sent).await.unwrap();
    });
    let mut c = Client::start();
    let (origin, conn) = open(&mut c, port, Some(WINDOW)).await;
    // Without acks the server stops at the window: read it all, then check
    // that nothing more comes while the service still has bytes to send.
    let mut got = Vec::new();
    while got.len() < WINDOW as usize {
        match c.reply_for(origin).await {
            Reply::TcpData { data, .. } => got.extend_from_slice(&data),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got.len(), WINDOW as usize, "no more than the window");
    // A round trip through the session proves nothing more is queued.
    assert!(matches!(c.call(Op::Version).await, Reply::Version(_)));
    assert!(c.rx.try_recv().is_err(), "data past the window was sent");
    // An ack for more than was sent is refused.
    let r = c
        .call(Op::TcpAck {
            conn,
            bytes: WINDOW as u64 + 1,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    assert_eq!(
        c.call(Op::TcpAck {
            conn,
            bytes: got.len() as u64
        })
        .await,
        Reply::Ok
    );
    got.extend(read_n(&mut c, origin, conn, TOTAL - got.len()).await);
    assert_eq!(got, data);
    assert_eq!(c.reply_for(origin).await, Reply::TcpEof { conn });
    service.await.unwrap();
    c.close().await;
}

#[tokio::test]
async fn refused_is_typed_and_names_the_target() {
    let (l, port) = listener().await;
    drop(l);
    let mut c = Client::start();
    let r = c.call(connect_op(port, None)).await;
    assert_eq!(err_kind(&r), ErrorKind::ConnectionRefused, "{r:?}");
    let m = err_msg(&r);
    assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
    assert!(m.contains("nothing listens"), "{m}");

    let r = c.call(connect_op(0, None)).await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    let r = c
        .call(Op::TcpConnect {
            host: Some("no-such-host.invalid".into()),
            port: 80,
            window: None,
            timeout_ms: None,
        })
        .await;
    assert!(
        matches!(err_kind(&r), ErrorKind::NotFound | ErrorKind::Timeout),
        "{r:?}"
    );
    c.close().await;
}

#[tokio::test]
async fn an_unanswered_connect_times_out() {
    // A listener that never accepts, with its accept queue full: the
    // kernel drops further SYNs, so a connect gets no answer at all.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut c = Client::start();
    // Fill the queue until a connect stalls (Linux lets backlog+1 in).
    let mut r = Reply::Ok;
    for _ in 0..8 {
        r = c
            .call(Op::TcpConnect {
                host: None,
                port: addr.port(),
                window: None,
                timeout_ms: Some(300),
            })
            .await;
        match &r {
            Reply::TcpConnected { conn, .. } => fillers.push(*conn),
            _ => break,
        }
    }
    assert_eq!(err_kind(&r), ErrorKind::Timeout, "{r:?}");
    assert!(err_msg(&r).contains("no answer within 300 ms"), "{r:?}");
    c.close().await;
    drop(sock);
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_with_a_clear_error() {
    let (l, port) = listener().await;
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let limits = Limits {
        max_tcp_connections: 2,
        ..Limits::default()
    };
    let mut c = Client::start_with(64, limits);
    let (o1, a) = open(&mut c, port, None).await;
    let _b = open(&mut c, port, None).await;
    let r = c.call(connect_op(port, None)).await;
    assert_eq!(err_kind(&r), ErrorKind::LimitExceeded);
    assert!(err_msg(&r).contains("2 open TCP connections"), "{r:?}");
    // Closing one makes room.
    assert_eq!(c.call(Op::TcpClose { conn: a }).await, Reply::Ok);
    assert_eq!(
        c.reply_for(o1).await,
        Reply::TcpClosed {
            conn: a,
            error: None
        }
    );
    open(&mut c, port, None).await;
    c.close().await;
    accepting.abort();
}

#[tokio::test]
async fn a_reset_by_the_service_ends_the_stream_with_an_error() {
    let (l, port) = listener().await;
    let service = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut s = s;
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.unwrap();
        // A zero linger makes the close a reset (deprecated only for blocking drops).
        #[allow(deprecated)]
        s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(s); // RST
    });
    let mut c = Client::start();
    let (origin, conn) = open(&mut c, port, None).await;
    assert_eq!(
        c.call(Op::TcpSend {
            conn,
            data: b"hello".to_vec().into()
        })
        .await,
        Reply::Ok
    );
    service.await.unwrap();
    match c.reply_for(origin).await {
        Reply::TcpClosed {
            conn: id,
            error: Some(e),
        } => {
            assert_eq!(id, conn);
            assert!(
                e.message.contains(&format!("TCP connection {conn}")),
                "{e:?}"
            );
        }
        other => panic!("expected TcpClosed with an error, got {other:?}"),
    }
    c.close().await;
}

#[tokio::test]
async fn the_session_ending_closes_its_connections() {
    let (l, port) = listener().await;
    let mut c = Client::start();
    let (_origin, _conn) = open(&mut c, port, None).await;
    let (mut s, _) = l.accept().await.unwrap();
    c.close().await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("the service sees the close")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_opened_by_session_processes_are_detected() {
    let mut c = Client::start();
    let detect = c
        .send(Op::DetectPorts {
            interval_ms: Some(200),
        })
        .await;
    assert_eq!(c.reply_for(detect).await, Reply::DetectingPorts);
    // One stream per session.
    let r = c.call(Op::DetectPorts { interval_ms: None }).await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);

    // A listener that is not the session's is never reported.
    let (_other, other_port) = listener().await;
    // A web server started by a shell: a descendant, not the spawned pid.
    let spawn = c
        .send(Op::ProcSpawn {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "python3 -u -m http.server --bind 127.0.0.1 0; true".into(),
            ],
            cwd: None,
            env: Default::default(),
            pty: None,
            framing: Default::default(),
        })
        .await;
    let (proc, sh_pid) = match c.reply_for(spawn).await {
        Reply::ProcSpawned { proc, pid } => (proc, pid),
        other => panic!("{other:?}"),
    };
    // Its announced port.
    let mut said = String::new();
    let port: u16 = loop {
        match c.reply_for(spawn).await {
            Reply::ProcOutput { data, .. } => {
                said.push_str(&String::from_utf8_lossy(&data));
                if let Some(p) = said
                    .split_whitespace()
                    .skip_while(|w| *w != "port")
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                {
                    break p;
                }
            }
            other => panic!("{other:?} (output so far: {said:?})"),
        }
    };
    let found = loop {
        match c.reply_for(detect).await {
            Reply::PortsListening { ports } => {
                assert!(ports.iter().all(|p| p.port != other_port), "{ports:?}");
                if let Some(p) = ports.into_iter().find(|p| p.port == port) {
                    break p;
                }
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(found.addr, "127.0.0.1");
    assert_ne!(found.pid, sh_pid, "the listener is the shell's child");
    assert!(found.command.contains("http.server"), "{found:?}");
    assert_eq!(
        c.call(Op::ProcKill {
            proc,
            signal: Some("KILL".into())
        })
        .await,
        Reply::Ok
    );
    c.close().await;
}
