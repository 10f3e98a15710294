//! End to end over TCP with the real `distant-server listen` binary: real
//! operations over the wire, two clients at once, a malformed request,
//! processes that outlive a disconnect and die after the grace period, and
//! hostile connections next to a working session.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use distant_protocol::driver::client;
use distant_protocol::driver::rpc::RpcError;
use distant_protocol::msg::{
    ErrorKind, Message, Op, OutputFraming, OutputStream, Reply, Request, RequestPayload,
    ResponsePayload, SearchQuery, SearchTarget, WriteOptions,
};
use support::*;
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(20);

fn spawn_op(cmd: &[&str]) -> Op {
    Op::ProcSpawn {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        env: BTreeMap::new(),
        pty: None,
        framing: OutputFraming::Raw,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_real_operations_over_the_wire() {
    let server = ServerProc::start(&[]);
    let rpc = rpc(server.addr, &server.key).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.txt");
    let p = |path: &std::path::Path| path.display().to_string();

    match rpc.call(Op::Version).await.unwrap() {
        Reply::Version(v) => assert!(v.capabilities.iter().any(|c| c == "proc")),
        other => panic!("{other:?}"),
    }
    let written = rpc
        .call(Op::FileWrite {
            path: p(&file),
            data: Bytes::from_static(b"hello needle\n"),
            options: WriteOptions::default(),
        })
        .await
        .unwrap();
    assert!(
        matches!(written, Reply::FileWritten(ref s) if s.size == 13),
        "{written:?}"
    );
    assert_eq!(read_file(&rpc, &file).await, b"hello needle\n");
    match rpc
        .call(Op::ReadDir {
            path: p(dir.path()),
            depth: 1,
            absolute: false,
            include_root: false,
        })
        .await
        .unwrap()
    {
        Reply::DirEntries { entries, errors } => {
            assert!(errors.is_empty());
            assert_eq!(entries.len(), 1);
            assert!(entries[0].path.ends_with("hello.txt"), "{entries:?}");
        }
        other => panic!("{other:?}"),
    }
    match rpc
        .call(Op::Metadata {
            path: p(&file),
            follow_symlinks: true,
            hash: true,
        })
        .await
        .unwrap()
    {
        Reply::Metadata(m) => {
            assert_eq!(m.size, 13);
            assert!(m.sha256.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rpc.call(Op::Exists { path: p(&file) }).await.unwrap(),
        Reply::Exists(true)
    );

    // A search finds the file by its contents.
    let mut search = rpc
        .stream(Op::Search {
            query: SearchQuery {
                target: SearchTarget::Contents,
                pattern: "needle".into(),
                regex: false,
                case_sensitive: true,
                paths: vec![p(dir.path())],
                include: vec![],
                exclude: vec![],
                hidden: false,
                gitignore: false,
                max_results: None,
                max_depth: None,
            },
        })
        .await
        .unwrap();
    let mut hits = 0;
    loop {
        match tokio::time::timeout(T, search.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Reply::SearchStarted { .. } => {}
            Reply::SearchResults { matches, .. } => hits += matches.len(),
            Reply::SearchDone { error, .. } => {
                assert_eq!(error, None);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(hits, 1);

    // A watch reports a new file.
    let mut watch = rpc
        .stream(Op::Watch {
            path: p(dir.path()),
            recursive: true,
            exclude: vec![],
        })
        .await
        .unwrap();
    let watch_id = match tokio::time::timeout(T, watch.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Reply::Watching { watch } => watch,
        other => panic!("{other:?}"),
    };
    std::fs::write(dir.path().join("new.txt"), b"x").unwrap();
    loop {
        match tokio::time::timeout(T, watch.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Reply::Changes { changes, .. } => {
                if changes.iter().any(|c| c.path.ends_with("new.txt")) {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        rpc.call(Op::Unwatch { watch: watch_id }).await.unwrap(),
        Reply::Ok
    );

    // A process: output, then exit.
    let mut proc = rpc
        .stream(spawn_op(&["echo", "over the wire"]))
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(T, proc.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Reply::ProcSpawned { .. } => {}
            Reply::ProcOutput {
                stream: OutputStream::Stdout,
                data,
                ..
            } => out.extend_from_slice(&data),
            Reply::ProcOutput { .. } => {}
            Reply::ProcExit { code, .. } => {
                assert_eq!(code, Some(0));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        out, b"over the wire\n",
        "all output arrives before the exit"
    );

    assert_eq!(
        rpc.call(Op::Remove {
            path: p(&file),
            force: false
        })
        .await
        .unwrap(),
        Reply::Ok
    );
    assert_eq!(
        rpc.call(Op::Exists { path: p(&file) }).await.unwrap(),
        Reply::Exists(false)
    );
    match rpc
        .call(Op::Remove {
            path: p(&file),
            force: false,
        })
        .await
        .unwrap()
    {
        Reply::Error(e) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_two_clients_at_once() {
    let server = ServerProc::start(&[]);
    let a = rpc(server.addr, &server.key).await;
    let b = rpc(server.addr, &server.key).await;
    assert_ne!(a.session_id(), b.session_id());
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for (name, rpc) in [("a", a.clone()), ("b", b.clone())] {
        let path = dir.path().join(name);
        tasks.push(tokio::spawn(async move {
            for i in 0..50u32 {
                let data = format!("{name}{i}");
                let r = rpc
                    .call(Op::FileWrite {
                        path: path.display().to_string(),
                        data: Bytes::from(data.clone()),
                        options: WriteOptions::default(),
                    })
                    .await
                    .unwrap();
                assert!(matches!(r, Reply::FileWritten(_)), "{r:?}");
                assert_eq!(read_file(&rpc, &path).await, data.as_bytes());
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(T, t).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_malformed_request_gets_an_error_and_the_session_goes_on() {
    let server = ServerProc::start(&[]);
    let mut session = session(server.addr, &server.key, Duration::from_secs(30)).await;
    // Not msgpack for a Message at all.
    session
        .outbound
        .send(Bytes::from_static(b"\xc1 this is not a message"))
        .await
        .unwrap();
    let bytes = tokio::time::timeout(T, session.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    match Message::decode(&bytes).unwrap() {
        Message::Response(r) => match r.payload {
            ResponsePayload::Single(Reply::Error(e)) => {
                assert_eq!(e.kind, ErrorKind::InvalidParams, "{e:?}")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // A valid request afterwards is answered.
    let request = Message::Request(Request {
        id: 7,
        payload: RequestPayload::Single(Op::Exists { path: "/".into() }),
    });
    session
        .outbound
        .send(Bytes::from(request.encode().unwrap()))
        .await
        .unwrap();
    let bytes = tokio::time::timeout(T, session.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    match Message::decode(&bytes).unwrap() {
        Message::Response(r) => {
            assert_eq!(r.origin_id, 7);
            assert_eq!(r.payload, ResponsePayload::Single(Reply::Exists(true)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_processes_survive_a_disconnect_and_are_reaped_after_the_grace_period() {
    let server = ServerProc::start(&["--session-ttl", "2"]);
    let relay = FaultProxy::start(server.addr).await;
    let rpc = rpc(relay.addr, &server.key).await;
    let mut proc = rpc.stream(spawn_op(&["sleep", "300"])).await.unwrap();
    let pid = match tokio::time::timeout(T, proc.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Reply::ProcSpawned { pid, .. } => pid,
        other => panic!("{other:?}"),
    };
    assert!(pid_alive(pid));

    // A short outage: the session resumes and the process lives on.
    relay.set_refuse(true);
    relay.cut();
    wait_for_state(&rpc, "reconnecting", T).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    relay.set_refuse(false);
    wait_for_state(&rpc, "connected", T).await;
    assert_eq!(
        rpc.call(Op::Exists { path: "/".into() }).await.unwrap(),
        Reply::Exists(true)
    );
    assert!(pid_alive(pid), "the process died during a short outage");

    // An outage longer than the grace period: the session is lost and the
    // process is reaped.
    relay.set_refuse(true);
    relay.cut();
    wait_for_state(&rpc, "reconnecting", T).await;
    wait_until("the process to be reaped", Duration::from_secs(10), || {
        !pid_alive(pid)
    })
    .await;
    relay.set_refuse(false);
    wait_for_state(&rpc, "lost", T).await;
    assert!(matches!(
        rpc.call(Op::Version).await,
        Err(RpcError::ConnectionLost(_))
    ));
    match tokio::time::timeout(T, proc.recv()).await.unwrap() {
        Some(Err(RpcError::ConnectionLost(_))) | None => {}
        other => panic!("the process stream should fail as lost: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_garbage_on_the_port_does_not_disturb_a_session() {
    let server = ServerProc::start(&[]);
    let rpc = rpc(server.addr, &server.key).await;
    let addr = server.addr;
    let attack = tokio::spawn(async move {
        let mut held = Vec::new();
        for i in 0..300u32 {
            let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                continue;
            };
            match i % 3 {
                0 => {
                    let junk: Vec<u8> = (0..4096u32).map(|j| (j * 7 + i) as u8).collect();
                    let _ = s.write_all(&junk).await;
                }
                1 => {
                    let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
                    let _ = s.write_all(&[0u8; 1024]).await;
                }
                _ => {} // says nothing at all
            }
            held.push(s);
        }
        held
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    for i in 0..100u32 {
        let data = format!("round {i}");
        let r = tokio::time::timeout(
            T,
            rpc.call(Op::FileWrite {
                path: path.display().to_string(),
                data: Bytes::from(data.clone()),
                options: WriteOptions::default(),
            }),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(matches!(r, Reply::FileWritten(_)), "{r:?}");
        assert_eq!(read_file(&rpc, &path).await, data.as_bytes());
    }
    let held = attack.await.unwrap();
    assert!(held.len() > 200);
    assert_eq!(rpc.state().borrow().word(), "connected");
    // The server is still alive and accepting new sessions once the junk
    // connections are gone.
    drop(held);
    let again = client::connect(
        client_options(&server.key, Duration::from_secs(5)),
        tcp_dialer(addr),
    );
    assert!(tokio::time::timeout(T, again).await.unwrap().is_ok());
}

/// Issue 14, item 3: `listen` was given its key in `DISTANT_KEY`; no process
/// it spawns (pipes or PTY) can read the key from its environment, and the
/// request's own variables still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_spawned_processes_never_see_the_key() {
    let server = ServerProc::start(&[]);
    let rpc = rpc(server.addr, &server.key).await;
    let hex = server.key.to_hex().to_string();
    for pty in [false, true] {
        let (pid, _stream) = spawn_pid(&rpc, &["sleep", "300"], pty).await;
        // Until exec, a forked child shows its parent's environment.
        wait_until("the child to exec sleep", T, || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .await;
        let env = environ(pid);
        assert!(
            env.iter().any(|v| v == "FROM_REQUEST=1"),
            "pty={pty}: {env:?}"
        );
        assert!(
            env.iter()
                .all(|v| !v.starts_with("DISTANT_KEY=") && !v.contains(&hex)),
            "pty={pty}: the key reached a spawned process: {env:?}"
        );
        // SAFETY: ends the process this test spawned.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    // Nor the server's own initial environment block.
    let own = environ(server.pid());
    assert!(
        own.iter().all(|v| !v.contains(&hex)),
        "the server's /proc/PID/environ shows the key"
    );
}

/// Issue 14, item 9: `listen --key-file` refuses a key file others can
/// read, with the fix in the message; a private one is used.
#[test]
fn e2e_a_key_file_others_can_read_is_refused() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let key = distant_protocol::auth::StaticKey::generate(&mut rand::rngs::OsRng);
    std::fs::write(&path, key.to_hex().as_bytes()).unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["listen", "--port", "0", "--key-file"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mode {mode:o} accepted");
        assert!(out.stdout.is_empty(), "mode {mode:o}: {out:?}");
        assert!(
            stderr.contains("readable by others") && stderr.contains("chmod 600"),
            "{stderr}"
        );
        assert!(!stderr.contains(&*key.to_hex()), "{stderr}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["listen", "--port", "0", "--key-file"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with(&format!("distant://:{}@", &*key.to_hex())),
        "{line}"
    );
}
