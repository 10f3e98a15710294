//! `msg::Message` encode/decode (MessagePack with named fields) for the
//! messages that dominate real traffic: a small request (`Exists`,
//! `Metadata`), its reply, and a file chunk.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use distant_protocol::msg::{
    FileType, Message, Metadata, Op, Reply, Request, RequestPayload, Response, ResponsePayload,
};

fn messages() -> Vec<(&'static str, Message)> {
    let path = "/home/me/project/src/some/module/file.rs".to_string();
    let chunk = |n: usize| {
        Message::Response(Response {
            id: 77,
            origin_id: 42,
            payload: ResponsePayload::Single(Reply::FileChunk {
                offset: 1 << 20,
                data: Bytes::from(vec![0x5a; n]),
            }),
        })
    };
    vec![
        (
            "request Exists",
            Message::Request(Request {
                id: 42,
                payload: RequestPayload::Single(Op::Exists { path: path.clone() }),
            }),
        ),
        (
            "request Metadata",
            Message::Request(Request {
                id: 42,
                payload: RequestPayload::Single(Op::Metadata {
                    path,
                    follow_symlinks: false,
                    hash: false,
                }),
            }),
        ),
        (
            "response Exists",
            Message::Response(Response {
                id: 77,
                origin_id: 42,
                payload: ResponsePayload::Single(Reply::Exists(true)),
            }),
        ),
        (
            "response Metadata",
            Message::Response(Response {
                id: 77,
                origin_id: 42,
                payload: ResponsePayload::Single(Reply::Metadata(Metadata {
                    file_type: FileType::File,
                    size: 123_456,
                    mtime: 1_700_000_000_000,
                    atime: Some(1_700_000_000_000),
                    ctime: Some(1_700_000_000_000),
                    readonly: false,
                    mode: Some(0o644),
                    symlink_target: None,
                    sha256: None,
                    etag: Some("1f3a9c0e5b7d2a46".into()),
                })),
            }),
        ),
        ("response FileChunk 64KiB", chunk(64 << 10)),
        ("response FileChunk 1MiB", chunk(1 << 20)),
    ]
}

fn message(c: &mut Criterion) {
    for (name, msg) in messages() {
        let bytes = msg.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
        let mut g = c.benchmark_group(format!("message/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("encode", |b| b.iter(|| black_box(&msg).encode().unwrap()));
        g.bench_function("decode", |b| {
            b.iter(|| Message::decode(black_box(&bytes)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, message);
criterion_main!(benches);
