//! A 1 GiB read streams in bounded memory: the server is held back by the
//! bounded response channel instead of buffering the file.
//! (Own test binary so the RSS measurement sees no other test.)

mod common;

use std::time::Duration;

use common::*;
use distant_protocol::msg::{Op, Reply, ResponsePayload, MAX_CHUNK};
use distant_server::Limits;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_sparse_file_streams_with_bounded_memory() {
    const SIZE: u64 = 1 << 30;
    const CAPACITY: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sparse.bin");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(SIZE).unwrap();
    // A few non-zero bytes to check offsets.
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"HEAD", 0).unwrap();
    f.write_all_at(b"TAIL", SIZE - 4).unwrap();
    drop(f);

    let mut c = Client::start_with(CAPACITY, Limits::default());
    let base = rss_bytes();
    let id = c
        .send(Op::FileRead {
            path: s(&p),
            chunk_size: None,
            offset: 0,
            length: None,
        })
        .await;
    // Read slowly at first: the server must stop at the channel bound.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(c.rx.len() <= CAPACITY, "queued {} responses", c.rx.len());
        let r = c.next_for(id).await;
        assert!(matches!(
            r.payload,
            ResponsePayload::Single(Reply::FileChunk { .. })
        ));
        // (The three chunks read here are checked for count below.)
        if let ResponsePayload::Single(Reply::FileChunk { offset, data }) = r.payload {
            if offset == 0 {
                assert_eq!(&data[..4], b"HEAD");
            }
            assert_eq!(data.len(), MAX_CHUNK);
        }
    }
    let mut total = 3 * MAX_CHUNK as u64;
    let mut peak = rss_bytes();
    let mut n = 3u64;
    let stamp = loop {
        let r = c.next_for(id).await;
        match r.payload {
            ResponsePayload::Single(Reply::FileChunk { offset, data }) => {
                assert_eq!(offset, total);
                total += data.len() as u64;
                if total == SIZE {
                    assert_eq!(&data[data.len() - 4..], b"TAIL");
                }
                n += 1;
                if n % 64 == 0 {
                    peak = peak.max(rss_bytes());
                    assert!(c.rx.len() <= CAPACITY);
                }
            }
            ResponsePayload::Single(Reply::FileEnd(st)) => break st,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(total, SIZE);
    assert_eq!(stamp.size, SIZE);
    let growth = peak.saturating_sub(base);
    // Channel (4 × 1 MiB) + chunks in flight + allocator slack; the whole
    // file would be 1024 MiB.
    assert!(
        growth < 64 * 1024 * 1024,
        "RSS grew by {} MiB while streaming 1 GiB",
        growth / (1024 * 1024)
    );
    c.close().await;
}
