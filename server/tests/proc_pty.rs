//! Processes on a PTY: a real terminal, its size, resize, stdin and kill.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use distant_protocol::msg::{OutputFraming, PtySize, Reply, Response, ResponsePayload};
use distant_server::limits::Limits;
use distant_server::proc::Processes;
use distant_server::reply::ReplySink;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn reply(r: Response) -> Reply {
    match r.payload {
        ResponsePayload::Single(r) => r,
        ResponsePayload::Batch(b) => panic!("unexpected batch {b:?}"),
    }
}

async fn spawn_pty(p: &Processes, cmd: &[&str], size: PtySize) -> (u64, mpsc::Receiver<Response>) {
    let (sink, rx) = ReplySink::channel(1, 64);
    let cmd = cmd.iter().map(|s| s.to_string()).collect();
    match p
        .spawn(
            cmd,
            None,
            BTreeMap::new(),
            Some(size),
            OutputFraming::Raw,
            sink,
        )
        .await
    {
        Reply::ProcSpawned { proc, .. } => (proc, rx),
        other => panic!("spawn failed: {other:?}"),
    }
}

/// All output until ProcExit, and the exit's (code, signal).
async fn finish(rx: &mut mpsc::Receiver<Response>) -> (String, Option<i32>, Option<String>) {
    let mut out = Vec::new();
    loop {
        let r = timeout(WAIT, rx.recv())
            .await
            .expect("PTY process did not finish in time");
        match reply(r.expect("stream ended without ProcExit")) {
            Reply::ProcOutput { data, .. } => out.extend_from_slice(&data),
            Reply::ProcExit { code, signal, .. } => {
                return (String::from_utf8_lossy(&out).into_owned(), code, signal)
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

async fn read_until(rx: &mut mpsc::Receiver<Response>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let r = timeout(WAIT, rx.recv())
            .await
            .expect("expected output did not come");
        match reply(r.expect("stream ended")) {
            Reply::ProcOutput { data, .. } => seen.extend_from_slice(&data),
            other => panic!("unexpected reply {other:?}"),
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(needle) {
            return text;
        }
    }
}

const SIZE: PtySize = PtySize {
    rows: 33,
    cols: 101,
};

#[tokio::test(flavor = "multi_thread")]
async fn tty_reports_a_terminal() {
    let p = Processes::new(Limits::default());
    let (_, mut rx) = spawn_pty(&p, &["tty"], SIZE).await;
    let (out, code, _) = finish(&mut rx).await;
    assert!(out.starts_with("/dev/"), "{out:?}");
    assert!(!out.contains("not a tty"), "{out:?}");
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn stty_reports_the_requested_size() {
    let p = Processes::new(Limits::default());
    let (_, mut rx) = spawn_pty(&p, &["stty", "size"], SIZE).await;
    let (out, code, _) = finish(&mut rx).await;
    assert_eq!(out.trim(), "33 101");
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_changes_the_size() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn_pty(&p, &["sh", "-c", "echo ready; read x; stty size"], SIZE).await;
    read_until(&mut rx, "ready").await;
    assert_eq!(
        p.resize(
            id,
            PtySize {
                rows: 50,
                cols: 132
            }
        )
        .await,
        Reply::Ok
    );
    assert_eq!(p.stdin(id, Bytes::from_static(b"go\n")).await, Reply::Ok);
    let (out, code, _) = finish(&mut rx).await;
    assert!(out.contains("50 132"), "{out:?}");
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_and_close_stdin_on_a_pty() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn_pty(&p, &["cat"], SIZE).await;
    assert_eq!(
        p.stdin(id, Bytes::from_static(b"hello pty\n")).await,
        Reply::Ok
    );
    // Echo plus cat's copy.
    let seen = read_until(&mut rx, "hello pty\r\nhello pty").await;
    assert!(seen.contains("hello pty"));
    assert_eq!(p.close_stdin(id).await, Reply::Ok);
    let (_, code, _) = finish(&mut rx).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_on_a_pty_reports_the_signal() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn_pty(&p, &["sh", "-c", "echo ready; sleep 100"], SIZE).await;
    read_until(&mut rx, "ready").await;
    assert_eq!(p.kill(id, Some("KILL".into())).await, Reply::Ok);
    let (_, code, signal) = finish(&mut rx).await;
    // sh itself is killed by SIGKILL.
    assert_eq!(code, None);
    assert_eq!(signal.as_deref(), Some("KILL"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pty_spawn_errors() {
    let p = Processes::new(Limits::default());
    let (sink, _rx) = ReplySink::channel(1, 8);
    let r = p
        .spawn(
            vec!["no-such-program-xyz".into()],
            None,
            BTreeMap::new(),
            Some(SIZE),
            OutputFraming::Raw,
            sink,
        )
        .await;
    match r {
        Reply::Error(e) => {
            assert_eq!(e.kind, distant_protocol::msg::ErrorKind::NotFound);
            assert_eq!(
                e.message,
                "cannot run no-such-program-xyz: command not found"
            );
        }
        other => panic!("{other:?}"),
    }
}
