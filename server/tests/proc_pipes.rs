//! Processes on pipes: output, stdin, exit codes, signals, cwd/env, errors,
//! process-group kill, limits and shutdown — with real processes.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use distant_protocol::msg::{
    ErrorKind, OutputFraming, OutputStream, Reply, Response, ResponsePayload,
};
use distant_server::limits::Limits;
use distant_server::proc::Processes;
use distant_server::reply::ReplySink;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// Test sink: replies for origin 1 arrive on the receiver.
fn sink() -> (ReplySink, mpsc::Receiver<Response>) {
    ReplySink::channel(1, 64)
}

fn reply(r: Response) -> Reply {
    match r.payload {
        ResponsePayload::Single(r) => r,
        ResponsePayload::Batch(b) => panic!("unexpected batch {b:?}"),
    }
}

#[derive(Debug, Default)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: Option<i32>,
    signal: Option<String>,
}

async fn spawn_with(
    p: &Processes,
    cmd: &[&str],
    cwd: Option<String>,
    env: BTreeMap<String, String>,
) -> (u64, mpsc::Receiver<Response>) {
    let (sink, rx) = sink();
    let cmd = cmd.iter().map(|s| s.to_string()).collect();
    match p.spawn(cmd, cwd, env, None, OutputFraming::Raw, sink).await {
        Reply::ProcSpawned { proc, pid } => {
            assert!(pid > 0);
            (proc, rx)
        }
        other => panic!("spawn failed: {other:?}"),
    }
}

async fn spawn(p: &Processes, cmd: &[&str]) -> (u64, mpsc::Receiver<Response>) {
    spawn_with(p, cmd, None, BTreeMap::new()).await
}

/// Reads until ProcExit, then checks nothing follows it.
async fn finish(proc: u64, rx: &mut mpsc::Receiver<Response>) -> Outcome {
    let mut out = Outcome::default();
    loop {
        let r = timeout(WAIT, rx.recv())
            .await
            .expect("process did not finish in time");
        match reply(r.expect("stream ended without ProcExit")) {
            Reply::ProcOutput {
                proc: p,
                stream,
                data,
            } => {
                assert_eq!(p, proc);
                match stream {
                    OutputStream::Stdout => out.stdout.extend_from_slice(&data),
                    OutputStream::Stderr => out.stderr.extend_from_slice(&data),
                }
            }
            Reply::ProcExit {
                proc: p,
                code,
                signal,
            } => {
                assert_eq!(p, proc);
                out.code = code;
                out.signal = signal;
                break;
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let after = timeout(WAIT, rx.recv())
        .await
        .expect("stream did not close after ProcExit");
    assert!(after.is_none(), "reply after ProcExit: {after:?}");
    out
}

/// Reads stdout until it contains `needle`.
async fn read_until(rx: &mut mpsc::Receiver<Response>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let r = timeout(WAIT, rx.recv())
            .await
            .expect("expected output did not come");
        match reply(r.expect("stream ended")) {
            Reply::ProcOutput { data, .. } => seen.extend_from_slice(&data),
            other => panic!("unexpected reply {other:?} (output so far {seen:?})"),
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(needle) {
            return text;
        }
    }
}

fn error_kind(r: &Reply) -> (ErrorKind, String) {
    match r {
        Reply::Error(e) => (e.kind, e.message.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_output_and_exit_code() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["echo", "hello", "world"]).await;
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout, b"hello world\n");
    assert!(out.stderr.is_empty());
    assert_eq!(out.code, Some(0));
    assert_eq!(out.signal, None);

    let (id, mut rx) = spawn(&p, &["sh", "-c", "exit 7"]).await;
    let out = finish(id, &mut rx).await;
    assert_eq!(out.code, Some(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_is_separate() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["sh", "-c", "echo out; echo err >&2; echo out2"]).await;
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout, b"out\nout2\n");
    assert_eq!(out.stderr, b"err\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_output_is_exact_and_chunked() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["head", "-c", "3000000", "/dev/zero"]).await;
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout.len(), 3_000_000);
    assert!(out.stdout.iter().all(|b| *b == 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_round_trip_and_close() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["cat"]).await;
    assert_eq!(p.stdin(id, Bytes::from_static(b"ping\n")).await, Reply::Ok);
    assert_eq!(read_until(&mut rx, "ping\n").await, "ping\n");
    assert_eq!(p.stdin(id, Bytes::from_static(b"one ")).await, Reply::Ok);
    assert_eq!(p.stdin(id, Bytes::from_static(b"two")).await, Reply::Ok);
    // Queued data is written before the close.
    assert_eq!(p.close_stdin(id).await, Reply::Ok);
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout, b"one two");
    assert_eq!(out.code, Some(0));
    // The process is gone now.
    let (kind, msg) = error_kind(&p.stdin(id, Bytes::from_static(b"x")).await);
    assert_eq!(kind, ErrorKind::InvalidParams);
    assert!(msg.contains("exited"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_after_close_and_buffer_limit() {
    let limits = Limits {
        max_stdin_buffer: 16,
        ..Limits::default()
    };
    let p = Processes::new(limits);
    let (id, mut rx) = spawn(&p, &["cat"]).await;
    let (kind, msg) = error_kind(&p.stdin(id, Bytes::from(vec![b'a'; 17])).await);
    assert_eq!(kind, ErrorKind::LimitExceeded);
    assert!(msg.contains("16"), "{msg}");
    assert_eq!(p.stdin(id, Bytes::from(vec![b'a'; 16])).await, Reply::Ok);
    assert_eq!(p.close_stdin(id).await, Reply::Ok);
    let (kind, _) = error_kind(&p.stdin(id, Bytes::from_static(b"late")).await);
    assert_eq!(kind, ErrorKind::InvalidParams);
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout, vec![b'a'; 16]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_with_term_and_kill() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["sleep", "100"]).await;
    assert_eq!(p.kill(id, None).await, Reply::Ok);
    let out = finish(id, &mut rx).await;
    assert_eq!(out.code, None);
    assert_eq!(out.signal.as_deref(), Some("TERM"));

    // A process that ignores TERM still dies of KILL.
    let (id, mut rx) = spawn(
        &p,
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 1; done",
        ],
    )
    .await;
    read_until(&mut rx, "ready").await;
    assert_eq!(p.kill(id, Some("KILL".into())).await, Reply::Ok);
    let out = finish(id, &mut rx).await;
    assert_eq!(out.signal.as_deref(), Some("KILL"));

    // Killing an exited process is harmless; a bad signal name is explained.
    assert_eq!(p.kill(id, None).await, Reply::Ok);
    let (kind, msg) = error_kind(&p.kill(id, Some("NOPE".into())).await);
    assert_eq!(kind, ErrorKind::InvalidParams);
    assert!(msg.contains("TERM"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cwd_and_env_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let mut env = BTreeMap::new();
    env.insert("DISTANT_TEST_VAR".to_string(), "forty two".to_string());
    let (id, mut rx) = spawn_with(
        &Processes::new(Limits::default()),
        &[
            "sh",
            "-c",
            "pwd -P; echo \"$DISTANT_TEST_VAR\"; test -n \"$PATH\" && echo has-path",
        ],
        Some(cwd.to_string_lossy().into_owned()),
        env,
    )
    .await;
    let out = finish(id, &mut rx).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nforty two\nhas-path\n", cwd.display())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_errors_are_explained() {
    let p = Processes::new(Limits::default());
    let run = |cmd: Vec<String>, cwd: Option<String>| {
        let (sink, _rx) = sink();
        let p = &p;
        async move {
            p.spawn(cmd, cwd, BTreeMap::new(), None, OutputFraming::Raw, sink)
                .await
        }
    };
    let (kind, msg) = error_kind(&run(vec!["definitely-not-a-command-xyz".into()], None).await);
    assert_eq!(kind, ErrorKind::NotFound);
    assert_eq!(
        msg,
        "cannot run definitely-not-a-command-xyz: command not found"
    );

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let (kind, msg) = error_kind(&run(vec![script.to_string_lossy().into()], None).await);
    assert_eq!(kind, ErrorKind::PermissionDenied, "{msg}");

    let (kind, _) = error_kind(&run(vec![], None).await);
    assert_eq!(kind, ErrorKind::InvalidParams);

    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    let (kind, msg) = error_kind(&run(vec!["true".into()], Some(missing)).await);
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(msg.contains("working directory"), "{msg}");

    let (kind, msg) = error_kind(&p.stdin(999, Bytes::from_static(b"x")).await);
    assert_eq!(kind, ErrorKind::InvalidParams);
    assert_eq!(msg, "no process 999 in this session");
    let (kind, _) = error_kind(&p.kill(999, None).await);
    assert_eq!(kind, ErrorKind::InvalidParams);
    let (kind, _) = error_kind(
        &p.resize(999, distant_protocol::msg::PtySize { rows: 5, cols: 5 })
            .await,
    );
    assert_eq!(kind, ErrorKind::InvalidParams);
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_without_pty_is_unsupported() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["cat"]).await;
    let (kind, _) = error_kind(
        &p.resize(id, distant_protocol::msg::PtySize { rows: 5, cols: 5 })
            .await,
    );
    assert_eq!(kind, ErrorKind::Unsupported);
    p.close_stdin(id).await;
    finish(id, &mut rx).await;
}

fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its (new) parent to reap it is dead too.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

async fn wait_dead(pid: i32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !is_dead(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_reaches_the_whole_process_group() {
    let p = Processes::new(Limits::default());
    let (id, mut rx) = spawn(&p, &["sh", "-c", "sleep 100 & echo $!; wait"]).await;
    let line = read_until(&mut rx, "\n").await;
    let grandchild: i32 = line.trim().parse().expect("pid of the background sleep");
    assert!(!is_dead(grandchild));
    assert_eq!(p.kill(id, Some("TERM".into())).await, Reply::Ok);
    let out = finish(id, &mut rx).await;
    assert_eq!(out.signal.as_deref(), Some("TERM"));
    wait_dead(grandchild).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_is_not_held_back_by_a_background_child_holding_stdout() {
    let p = Processes::new(Limits::default());
    // The grandchild keeps stdout open for 100 s; ProcExit must still come.
    let (id, mut rx) = spawn(&p, &["sh", "-c", "echo started; sleep 100 & echo $! >&2"]).await;
    let out = finish(id, &mut rx).await;
    assert_eq!(out.stdout, b"started\n");
    assert_eq!(out.code, Some(0));
    let pid: i32 = String::from_utf8_lossy(&out.stderr).trim().parse().unwrap();
    // SAFETY: signalling a pid we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test(flavor = "multi_thread")]
async fn max_processes_is_enforced() {
    let limits = Limits {
        max_processes: 2,
        ..Limits::default()
    };
    let p = Processes::new(limits);
    let (a, mut rx_a) = spawn(&p, &["sleep", "100"]).await;
    let (b, mut rx_b) = spawn(&p, &["sleep", "100"]).await;
    let (sink3, _rx3) = sink();
    let r = p
        .spawn(
            vec!["true".into()],
            None,
            BTreeMap::new(),
            None,
            OutputFraming::Raw,
            sink3,
        )
        .await;
    let (kind, msg) = error_kind(&r);
    assert_eq!(kind, ErrorKind::LimitExceeded);
    assert!(msg.contains("--max-processes"), "{msg}");

    // Once one exits, there is room again.
    p.kill(a, Some("KILL".into())).await;
    finish(a, &mut rx_a).await;
    let (c, mut rx_c) = spawn(&p, &["true"]).await;
    finish(c, &mut rx_c).await;
    p.kill(b, Some("KILL".into())).await;
    finish(b, &mut rx_b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_kills_everything() {
    let p = Processes::new(Limits::default());
    let mut procs = Vec::new();
    for cmd in [
        &["sleep", "100"][..],
        &["sh", "-c", "sleep 100 & wait"],
        &["cat"],
        // Ignores TERM: needs the SIGKILL after the grace period.
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 1; done",
        ],
    ] {
        procs.push(spawn(&p, cmd).await);
    }
    read_until(&mut procs[3].1, "ready").await;
    let started = std::time::Instant::now();
    timeout(Duration::from_secs(8), p.shutdown())
        .await
        .expect("shutdown took too long");
    assert!(started.elapsed() < Duration::from_secs(6));
    for (id, rx) in &mut procs {
        let out = finish(*id, rx).await;
        assert!(
            out.signal.is_some(),
            "process {id} exited without a signal: {out:?}"
        );
    }
    // No new process after shutdown.
    let (sink, _rx) = sink();
    let r = p
        .spawn(
            vec!["true".into()],
            None,
            BTreeMap::new(),
            None,
            OutputFraming::Raw,
            sink,
        )
        .await;
    assert!(matches!(r, Reply::Error(_)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_sink_holds_the_process_back() {
    let p = Processes::new(Limits::default());
    // Room for one reply only, and nobody reading yet.
    let (sink, mut rx) = ReplySink::channel(1, 1);
    let cmd = ["head", "-c", "20000000", "/dev/zero"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Reply::ProcSpawned { proc, pid } = p
        .spawn(cmd, None, BTreeMap::new(), None, OutputFraming::Raw, sink)
        .await
    else {
        panic!("spawn failed")
    };
    // Without backpressure 20 MB of zeros is written in milliseconds; with
    // it the writer stays blocked on the full pipe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!is_dead(pid as i32), "the process ran ahead of its reader");
    let out = finish(proc, &mut rx).await;
    assert_eq!(out.stdout.len(), 20_000_000);
    assert_eq!(out.code, Some(0));
}
