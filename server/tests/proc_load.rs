//! Output ordering under load: 1,000 short processes, 16 at a time, each
//! printing a known payload; every byte arrives, exactly, before ProcExit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distant_protocol::msg::{OutputFraming, OutputStream, Reply, ResponsePayload};
use distant_server::limits::Limits;
use distant_server::proc::Processes;
use distant_server::reply::ReplySink;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

const PROCESSES: usize = 1000;
const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_processes_exit_after_all_their_output() {
    let dir = tempfile::tempdir().unwrap();
    // Payloads of various sizes, with content that shows misordering.
    let sizes = [0usize, 1, 100, 4096, 65536, 200_000];
    let mut payloads = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*size).map(|n| ((n * 31 + i * 7) % 251) as u8).collect();
        let path = dir.path().join(format!("payload{i}"));
        std::fs::write(&path, &data).unwrap();
        payloads.push((path.to_string_lossy().into_owned(), Arc::new(data)));
    }
    let processes = Arc::new(Processes::new(Limits::default()));
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for n in 0..PROCESSES {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let processes = processes.clone();
        let (path, expect) = payloads[n % payloads.len()].clone();
        let (err_path, err_expect) = payloads[(n / 7) % payloads.len()].clone();
        let with_stderr = n % 5 == 0;
        tasks.spawn(async move {
            let _permit = permit;
            let cmd: Vec<String> = if with_stderr {
                vec![
                    "sh".into(),
                    "-c".into(),
                    "cat \"$1\"; cat \"$2\" >&2".into(),
                    "sh".into(),
                    path,
                    err_path,
                ]
            } else {
                vec!["cat".into(), path]
            };
            let (sink, mut rx) = ReplySink::channel(n as u64, 8);
            let r = processes
                .spawn(cmd, None, BTreeMap::new(), None, OutputFraming::Raw, sink)
                .await;
            let Reply::ProcSpawned { proc, .. } = r else {
                panic!("spawn {n} failed: {r:?}")
            };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            loop {
                let resp = timeout(Duration::from_secs(20), rx.recv())
                    .await
                    .unwrap_or_else(|_| panic!("process {n} did not finish"))
                    .unwrap_or_else(|| panic!("process {n}: stream ended without ProcExit"));
                let ResponsePayload::Single(reply) = resp.payload else {
                    panic!("batch")
                };
                match reply {
                    Reply::ProcOutput {
                        proc: p,
                        stream,
                        data,
                    } => {
                        assert_eq!(p, proc);
                        assert!(data.len() <= distant_protocol::msg::MAX_CHUNK);
                        match stream {
                            OutputStream::Stdout => out.extend_from_slice(&data),
                            OutputStream::Stderr => err.extend_from_slice(&data),
                        }
                    }
                    Reply::ProcExit { code, .. } => {
                        assert_eq!(code, Some(0), "process {n}");
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(
                out == *expect,
                "process {n}: stdout differs ({} vs {} bytes)",
                out.len(),
                expect.len()
            );
            if with_stderr {
                assert!(err == *err_expect, "process {n}: stderr differs");
            } else {
                assert!(err.is_empty());
            }
            assert!(
                rx.recv().await.is_none(),
                "process {n}: reply after ProcExit"
            );
        });
        // Surface failures early.
        while let Some(done) = tasks.try_join_next() {
            done.unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}
