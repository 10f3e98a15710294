//! The dispatcher: batches, bad requests, concurrency, several sessions,
//! stream ordering and shutdown.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use distant_protocol::msg::{ErrorKind, Op, Reply, ResponsePayload, WriteOptions, CAPABILITIES};
use distant_server::reply::{Outbox, ReplySink};
use distant_server::session::SKIPPED;
use distant_server::Limits;
use tokio::sync::mpsc;

#[tokio::test]
async fn version_and_system_info() {
    let mut c = Client::start();
    match c.call(Op::Version).await {
        Reply::Version(v) => {
            assert_eq!(
                v.server,
                format!("distant-server {}", env!("CARGO_PKG_VERSION"))
            );
            assert_eq!(v.protocol, distant_protocol::PROTOCOL_VERSION);
            assert!(v
                .capabilities
                .iter()
                .all(|c| CAPABILITIES.contains(&c.as_str())));
            for cap in [
                "fs",
                "fs-chunked",
                "fs-etag",
                "fs-atomic",
                "find-up",
                "system-info",
            ] {
                assert!(v.capabilities.iter().any(|c| c == cap), "{cap}");
            }
        }
        other => panic!("{other:?}"),
    }
    match c.call(Op::SystemInfo).await {
        Reply::SystemInfo(i) => {
            assert_eq!(i.os, std::env::consts::OS);
            assert_eq!(i.family, "unix");
            assert_eq!(i.separator, "/");
            assert_eq!(i.current_dir, s(&std::env::current_dir().unwrap()));
            assert!(!i.username.is_empty());
            assert!(i.shell.starts_with('/'), "{}", i.shell);
        }
        other => panic!("{other:?}"),
    }
    c.close().await;
}

#[tokio::test]
async fn parallel_batch_answers_in_op_order() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    let mut c = Client::start();
    let replies = c
        .batch(
            vec![
                Op::Exists { path: s(&f) },
                Op::FileWrite {
                    path: s(&dir.path().join("g")),
                    data: "g".into(),
                    options: WriteOptions::default(),
                },
                Op::Exists {
                    path: s(&dir.path().join("missing")),
                },
                Op::Remove {
                    path: s(&dir.path().join("missing")),
                    force: false,
                },
                Op::Version,
                Op::FileRead {
                    path: s(&f),
                    chunk_size: None,
                    offset: 0,
                    length: None,
                },
                Op::CreateDir {
                    path: s(&dir.path().join("d")),
                    all: false,
                },
            ],
            false,
        )
        .await;
    assert_eq!(replies.len(), 7);
    assert_eq!(replies[0], Reply::Exists(true));
    assert!(matches!(replies[1], Reply::FileWritten(_)));
    assert_eq!(replies[2], Reply::Exists(false));
    assert_eq!(err_kind(&replies[3]), ErrorKind::NotFound);
    assert!(matches!(replies[4], Reply::Version(_)));
    assert_eq!(
        err_kind(&replies[5]),
        ErrorKind::InvalidParams,
        "streams refused"
    );
    assert!(err_msg(&replies[5]).contains("batch"));
    assert_eq!(replies[6], Reply::Ok, "ops after a failure still run");
    assert!(dir.path().join("d").is_dir());
    c.close().await;
}

#[tokio::test]
async fn sequential_batch_stops_at_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let mut c = Client::start();
    let replies = c
        .batch(
            vec![
                Op::CreateDir {
                    path: s(&d),
                    all: false,
                },
                // Depends on the previous op having finished.
                Op::FileWrite {
                    path: s(&d.join("a")),
                    data: "a".into(),
                    options: WriteOptions::default(),
                },
                Op::Rename {
                    src: s(&d.join("a")),
                    dst: s(&d.join("b")),
                    overwrite: false,
                },
                Op::Remove {
                    path: s(&d.join("a")),
                    force: false,
                },
                Op::FileWrite {
                    path: s(&d.join("c")),
                    data: "c".into(),
                    options: WriteOptions::default(),
                },
                Op::Version,
            ],
            true,
        )
        .await;
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0], Reply::Ok);
    assert!(matches!(replies[1], Reply::FileWritten(_)));
    assert_eq!(replies[2], Reply::Ok);
    assert_eq!(err_kind(&replies[3]), ErrorKind::NotFound);
    for r in &replies[4..] {
        assert_eq!(err_kind(r), ErrorKind::Other);
        assert_eq!(err_msg(r), SKIPPED);
    }
    assert!(d.join("b").exists());
    assert!(!d.join("c").exists(), "skipped op did not run");
    // Empty batches are answered too.
    assert!(c.batch(vec![], true).await.is_empty());
    assert!(c.batch(vec![], false).await.is_empty());
    c.close().await;
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_session_goes_on() {
    let mut c = Client::start();
    let bad = [
        Op::FileRead {
            path: String::new(),
            chunk_size: None,
            offset: 0,
            length: None,
        },
        Op::FileRead {
            path: "/tmp".into(),
            chunk_size: Some(0),
            offset: 0,
            length: None,
        },
        Op::Exists {
            path: "a\0b".into(),
        },
        Op::FileWriteChunk {
            handle: 999,
            offset: 0,
            data: "x".into(),
        },
        Op::FileWriteFinish { handle: 0 },
        Op::FileWriteAbort { handle: u64::MAX },
        Op::Remove {
            path: String::new(),
            force: true,
        },
        Op::Copy {
            src: "".into(),
            dst: "".into(),
            overwrite: None,
        },
        Op::FindUp {
            path: "/".into(),
            names: vec![],
        },
    ];
    for op in bad {
        let id = c.send(op.clone()).await;
        let r = c.reply_for(id).await;
        assert_eq!(err_kind(&r), ErrorKind::InvalidParams, "{op:?} → {r:?}");
        assert!(!err_msg(&r).is_empty());
    }
    assert!(matches!(c.call(Op::Version).await, Reply::Version(_)));
    c.close().await;
}

#[tokio::test]
async fn slow_op_does_not_stall_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    fs::File::create(&big).unwrap().set_len(512 << 20).unwrap();
    let mut c = Client::start();
    let slow = c
        .send(Op::Metadata {
            path: s(&big),
            follow_symlinks: false,
            hash: true,
        })
        .await;
    let fast = c.send(Op::Exists { path: s(&big) }).await;
    // The first response to arrive is the quick one.
    let first = tokio::time::timeout(TIMEOUT, c.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.origin_id, fast, "Exists overtook the hashing");
    match c.reply_for(slow).await {
        Reply::Metadata(m) => assert_eq!(m.sha256.unwrap().len(), 64),
        other => panic!("{other:?}"),
    }
    c.close().await;
}

#[tokio::test]
async fn two_sessions_at_once_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Client::start();
    let mut b = Client::start();
    for i in 0..50u32 {
        let pa = s(&dir.path().join(format!("a{i}")));
        let pb = s(&dir.path().join(format!("b{i}")));
        let ra = a
            .send(Op::FileWrite {
                path: pa.clone(),
                data: format!("A{i}").into_bytes().into(),
                options: WriteOptions::default(),
            })
            .await;
        let rb = b
            .send(Op::FileWrite {
                path: pb.clone(),
                data: format!("B{i}").into_bytes().into(),
                options: WriteOptions::default(),
            })
            .await;
        // (Response ids are assigned by the protocol driver on the way
        // out; protocol/tests/driver_tcp.rs checks them.)
        let resp = a.next_for(ra).await;
        assert!(matches!(
            resp.payload,
            ResponsePayload::Single(Reply::FileWritten(_))
        ));
        assert!(matches!(b.reply_for(rb).await, Reply::FileWritten(_)));
    }
    // Write handles are per session.
    let h = match a
        .call(Op::FileWriteStart {
            path: s(&dir.path().join("h")),
            options: WriteOptions::default(),
        })
        .await
    {
        Reply::WriteHandle { handle } => handle,
        other => panic!("{other:?}"),
    };
    let r = b.call(Op::FileWriteAbort { handle: h }).await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    // Ending one session leaves the other serving.
    a.close().await;
    assert_eq!(
        b.call(Op::Exists {
            path: s(&dir.path().join("a49"))
        })
        .await,
        Reply::Exists(true)
    );
    assert_eq!(fs::read(dir.path().join("b7")).unwrap(), b"B7");
    b.close().await;
}

#[tokio::test]
async fn session_ends_cleanly_with_a_read_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    fs::File::create(&big).unwrap().set_len(64 << 20).unwrap();
    // A tiny channel nobody drains: the read is parked on backpressure.
    let mut c = Client::start_with(1, Limits::default());
    c.send(Op::FileRead {
        path: s(&big),
        chunk_size: None,
        offset: 0,
        length: None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.close().await;
}

#[tokio::test]
async fn reply_sink_waits_for_release_and_closes_when_dropped() {
    let (tx, mut rx) = mpsc::channel(8);
    let outbox = Outbox::new(tx);
    let (sink, release) = ReplySink::new(outbox.clone(), 7);
    assert_eq!(sink.origin(), 7);
    let producer = {
        let sink = sink.clone();
        tokio::spawn(async move { sink.send(Reply::Ok).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "held until released");
    // The opener goes first, then the stream.
    outbox.reply(7, Reply::WriteHandle { handle: 1 }).await;
    release.release();
    assert!(producer.await.unwrap());
    assert_eq!(
        rx.recv().await.unwrap().payload,
        ResponsePayload::Single(Reply::WriteHandle { handle: 1 })
    );
    assert_eq!(
        rx.recv().await.unwrap().payload,
        ResponsePayload::Single(Reply::Ok)
    );

    // Never released: sends report the stream as closed.
    let (sink2, release2) = ReplySink::new(outbox.clone(), 8);
    drop(release2);
    assert!(!sink2.send(Reply::Ok).await);
    // Session gone.
    drop(rx);
    assert!(sink.is_closed());
    assert!(!sink.send(Reply::Ok).await);
}
