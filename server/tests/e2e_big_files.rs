//! A big file streamed over the network through the real binary, with the
//! server's memory sampled from /proc: reading and a chunked write must run
//! in bounded memory, 1 GiB each way. Figures (peak RSS, MB/s) are printed; see them with
//! `cargo test --test e2e_big_files -- --nocapture`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distant_protocol::msg::{Op, Reply, WriteOptions, MAX_CHUNK};
use support::*;
use tokio::task::JoinSet;

/// Peak resident memory the server may reach while streaming.
const RSS_LIMIT_KIB: u64 = 200 * 1024;
/// Chunked-write requests in flight at once.
const IN_FLIGHT: usize = 8;

fn size() -> u64 {
    1 << 30
}

/// Samples a process's VmRSS every 20 ms until stopped; returns the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(rss_kib(pid).0, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self, pid: u32) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let (_, hwm) = rss_kib(pid);
        self.peak.load(Ordering::SeqCst).max(hwm)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_big_file_read_streams_in_bounded_server_memory() {
    let size = size();
    let server = ServerProc::start(&[]);
    let rpc = rpc(server.addr, &server.key).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();

    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    let mut stream = rpc
        .stream(Op::FileRead {
            path: path.display().to_string(),
            chunk_size: None,
            offset: 0,
            length: None,
        })
        .await
        .unwrap();
    let mut received = 0u64;
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(30), stream.recv())
            .await
            .expect("the read stalled")
            .expect("stream ended without FileEnd")
            .unwrap();
        match reply {
            Reply::FileChunk { offset, data } => {
                assert_eq!(offset, received);
                received += data.len() as u64;
            }
            Reply::FileEnd(stamp) => {
                assert_eq!(stamp.size, size);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let peak = sampler.finish(server.pid());
    assert_eq!(received, size);
    eprintln!(
        "read {} MiB in {:.2} s: {:.0} MB/s; server peak RSS {} MiB",
        size >> 20,
        elapsed.as_secs_f64(),
        size as f64 / 1e6 / elapsed.as_secs_f64(),
        peak / 1024
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "server peak RSS {peak} KiB over the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_big_file_chunked_write_in_bounded_server_memory() {
    let size = size();
    let server = ServerProc::start(&[]);
    let rpc = rpc(server.addr, &server.key).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-upload.bin");

    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    let handle = match rpc
        .call(Op::FileWriteStart {
            path: path.display().to_string(),
            options: WriteOptions::default(),
        })
        .await
        .unwrap()
    {
        Reply::WriteHandle { handle } => handle,
        other => panic!("{other:?}"),
    };
    // A pattern that is not all zeros, so nothing can be skipped.
    let chunk = Bytes::from((0..MAX_CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut in_flight = JoinSet::new();
    let mut offset = 0u64;
    while offset < size {
        if in_flight.len() >= IN_FLIGHT {
            let r = in_flight.join_next().await.unwrap().unwrap();
            assert_eq!(r, Ok(Reply::Ok));
        }
        let len = (size - offset).min(MAX_CHUNK as u64) as usize;
        let rpc = rpc.clone();
        let data = chunk.slice(..len);
        in_flight.spawn(async move {
            rpc.call(Op::FileWriteChunk {
                handle,
                offset,
                data,
            })
            .await
        });
        offset += len as u64;
    }
    while let Some(r) = in_flight.join_next().await {
        assert_eq!(r.unwrap(), Ok(Reply::Ok));
    }
    match rpc.call(Op::FileWriteFinish { handle }).await.unwrap() {
        Reply::FileWritten(stamp) => assert_eq!(stamp.size, size),
        other => panic!("{other:?}"),
    }
    let elapsed = started.elapsed();
    let peak = sampler.finish(server.pid());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    eprintln!(
        "wrote {} MiB in {:.2} s: {:.0} MB/s; server peak RSS {} MiB",
        size >> 20,
        elapsed.as_secs_f64(),
        size as f64 / 1e6 / elapsed.as_secs_f64(),
        peak / 1024
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "server peak RSS {peak} KiB over the limit"
    );
}
