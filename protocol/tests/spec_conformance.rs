//! What `docs/PROTOCOL.md` promises, checked against the real code as a
//! second implementation would meet it: a hand-driven client speaking to the
//! real [`Server`] over loopback TCP (or the real machines, sans-IO), one
//! test per point of issue 15.
//!
//! 1. A record that fails to open (flipped bit, replay) closes the
//!    connection at once with FIN; the session survives and resumes (§2.3).
//! 2. An authenticated but malformed record ends the session: the peer is
//!    told with a Close record, then FIN; a resume is refused (§4).
//! 3. Answers to requests the server cannot decode are numbered like every
//!    other response: ids 1, 2, 3, … in wire order (§5.1, §5.2).
//! 4. `WriteOptions` and `FileRead.chunk_size` default on the wire (§5.5).
//! 6. The exact texts and encodings: auth messages are externally tagged
//!    (§3), the last failing method yields only the fatal error (§3.1), the
//!    compression names are RFC 1951/1952/1950 and `level` is zlib's (§2.3),
//!    and an oversize pre-auth frame is answered with an Alert (§1).
//!
//! Point 5 (the schema of §5) is `spec_schema.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distant_protocol::auth::{AuthMessage, Otp, SessionId, StaticKey};
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::{Encryption, KeySchedule, Opener, Sealer, Side, TranscriptHash};
use distant_protocol::driver::handshake::{drive, DriveError, FramedIo};
use distant_protocol::driver::server::{Server, ServerOptions};
use distant_protocol::frame::MAX_FRAME;
use distant_protocol::handshake::{
    decode_plain, ClientConfig, ClientHandshake, Connect, Established, EstablishedKind,
    HandshakeErrorKind, HandshakeEvent, PlainMessage, ServerConfig, ServerHandshake,
};
use distant_protocol::msg::{
    ErrorKind, Message, Op, Reply, Request, RequestPayload, Response, ResponsePayload, WriteOptions,
};
use distant_protocol::session::Record;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Far above every wait in these tests: an outcome that takes this long is
/// a failure (the server's grace period is 10 minutes).
const WAIT: Duration = Duration::from_secs(10);

fn key() -> StaticKey {
    StaticKey::from_bytes([7; 32])
}

/// The real server with a tiny application: every request is answered
/// `Ok`, with a deliberately wrong `Response.id` (the driver numbers them).
async fn start_server() -> SocketAddr {
    let config = ServerConfig {
        static_key: Some(key()),
        failure_delay: Duration::from_millis(10),
        ..ServerConfig::default()
    };
    let (server, mut sessions) = Server::new(ServerOptions::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = server.clone();
        tokio::spawn(async move {
            let _ = server.serve_tcp(listener).await;
        });
        while let Some(mut session) = sessions.recv().await {
            tokio::spawn(async move {
                while let Some(request) = session.requests.recv().await {
                    let response = Response {
                        id: 999,
                        origin_id: request.id,
                        payload: ResponsePayload::Single(Reply::Ok),
                    };
                    if session.responses.send(response).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A client connection after the handshake, driven by hand.
struct Raw {
    io: FramedIo,
    sealer: Sealer,
    opener: Opener,
    session_id: SessionId,
    kind: EstablishedKind,
}

async fn handshake(addr: SocketAddr, connect: Connect) -> Result<Raw, DriveError> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut io = FramedIo::new(Box::new(stream));
    let config = ClientConfig {
        static_key: Some(key()),
        ..ClientConfig::default()
    };
    let mut machine = ClientHandshake::new(config, connect, &mut rand::rngs::OsRng, Instant::now());
    drive(&mut machine, &mut io, WAIT, |_, _| Ok(())).await?;
    let Established {
        sealer,
        opener,
        session_id,
        kind,
        ..
    } = machine.into_established().expect("established");
    io.reader.decoder_mut().set_max_len(MAX_FRAME);
    Ok(Raw {
        io,
        sealer,
        opener,
        session_id,
        kind,
    })
}

impl Raw {
    fn otp(&self) -> Otp {
        match &self.kind {
            EstablishedKind::New { otp } => otp.clone(),
            EstablishedKind::Resumed { next_otp, .. } => next_otp.clone(),
        }
    }

    fn seal(&mut self, content: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        self.sealer.seal_into(&[content], &mut out).unwrap();
        out
    }

    async fn send(&mut self, content: &[u8]) {
        let frame = self.seal(content);
        self.io.writer.write_all(&frame).await.unwrap();
        self.io.writer.flush().await.unwrap();
    }

    async fn send_data(&mut self, seq: u64, payload: &[u8]) {
        let mut content = vec![0x01];
        content.extend_from_slice(&seq.to_be_bytes());
        content.extend_from_slice(payload);
        self.send(&content).await;
    }

    /// The next record from the server, or `None` at EOF.
    async fn next_record(&mut self) -> Option<Record> {
        let frame = tokio::time::timeout(WAIT, self.io.reader.next())
            .await
            .expect("the server neither answered nor closed the connection")?;
        let body = frame.expect("a well-formed frame");
        let content = self.opener.open(body).expect("the server's record opens");
        Some(Record::decode(content).expect("a well-formed session record"))
    }

    /// Reads until EOF, which must come without waiting for any timer of
    /// the server (its grace period is 10 minutes, its dead-peer timer 4 s
    /// and it heartbeats every second, so 3 s without EOF is a failure).
    async fn expect_fin(&mut self) -> Vec<Record> {
        let mut seen = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            match tokio::time::timeout_at(until, self.io.reader.next()).await {
                Ok(None) => return seen,
                Ok(Some(Ok(body))) => {
                    if let Ok(content) = self.opener.open(body) {
                        if let Ok(r) = Record::decode(content) {
                            seen.push(r);
                        }
                    }
                }
                Ok(Some(Err(e))) => panic!("expected FIN, the connection failed: {e}"),
                Err(_) => panic!("no FIN within 3 s; records seen: {seen:?}"),
            }
        }
    }
}

fn resume(raw: &Raw, received: u64) -> Connect {
    Connect::Resume {
        session_id: raw.session_id,
        otps: vec![raw.otp()],
        received,
    }
}

fn request(id: u64, op: Op) -> Vec<u8> {
    Message::Request(Request {
        id,
        payload: RequestPayload::Single(op),
    })
    .encode()
    .unwrap()
}

// ---- 1 ------------------------------------------------------------------

#[tokio::test]
async fn a_record_that_fails_to_open_closes_the_connection_with_fin_and_the_session_resumes() {
    let addr = start_server().await;
    let mut raw = handshake(addr, Connect::New).await.unwrap();

    // A flipped bit: the server sends FIN at once, not after its timers.
    let mut frame = raw.seal(&[0x02, 0, 0, 0, 0, 0, 0, 0, 0]);
    let last = frame.len() - 1;
    frame[last] ^= 0x01;
    raw.io.writer.write_all(&frame).await.unwrap();
    raw.io.writer.flush().await.unwrap();
    raw.expect_fin().await;

    // The session is intact: resume it and use it.
    let mut raw = handshake(addr, resume(&raw, 0)).await.unwrap();
    assert!(matches!(raw.kind, EstablishedKind::Resumed { .. }));
    raw.send_data(0, &request(1, Op::Version)).await;
    let Some(Record::Data { payload, .. }) = next_data(&mut raw).await else {
        panic!("no answer after the resume")
    };
    assert!(matches!(
        Message::decode(&payload),
        Ok(Message::Response(_))
    ));

    // A replayed record (the same sealed bytes again): also FIN at once.
    let frame = raw.seal(&[0x02, 0, 0, 0, 0, 0, 0, 0, 1]);
    raw.io.writer.write_all(&frame).await.unwrap();
    raw.io.writer.write_all(&frame).await.unwrap();
    raw.io.writer.flush().await.unwrap();
    raw.expect_fin().await;
    let raw = handshake(addr, resume(&raw, 1)).await.unwrap();
    assert!(matches!(raw.kind, EstablishedKind::Resumed { .. }));
}

async fn next_data(raw: &mut Raw) -> Option<Record> {
    loop {
        match raw.next_record().await? {
            r @ Record::Data { .. } => return Some(r),
            Record::Close { reason } => panic!("the server closed the session: {reason}"),
            _ => continue,
        }
    }
}

// ---- 2 ------------------------------------------------------------------

#[tokio::test]
async fn an_authenticated_malformed_record_ends_the_session_with_a_close() {
    let addr = start_server().await;
    let cases: [(&[u8], &str); 3] = [
        (&[0x09, 1, 2], "unknown session record type 0x09"),
        (&[0x02, 0, 0], "ack record too short: 3 bytes, need 9"),
        (
            &[0x01, 0, 0, 0, 0, 0, 0, 0, 5, b'x'],
            "gap in data records: got seq 5, expected 0",
        ),
    ];
    for (content, fault) in cases {
        let mut raw = handshake(addr, Connect::New).await.unwrap();
        raw.send(content).await;
        let seen = raw.expect_fin().await;
        let want = Record::Close {
            reason: format!("session protocol error: {fault}"),
        };
        assert_eq!(seen.last(), Some(&want), "{fault}: records seen {seen:?}");

        // The session is over: a resume is refused.
        let refused = handshake(addr, resume(&raw, 0))
            .await
            .err()
            .expect("refused");
        assert!(refused.is_session_rejected(), "{fault}: {refused}");
        assert!(
            refused
                .to_string()
                .contains(&format!("unknown or expired session {}", raw.session_id)),
            "{refused}"
        );
    }
}

// ---- 3 ------------------------------------------------------------------

#[tokio::test]
async fn answers_to_undecodable_requests_are_numbered_like_the_rest() {
    let addr = start_server().await;
    let mut raw = handshake(addr, Connect::New).await.unwrap();
    // An op from a newer protocol: decodes as nothing this server knows,
    // but its request id can be recovered.
    let future = rmp_serde::to_vec_named(&future::future_request(2)).unwrap();
    raw.send_data(0, &request(1, Op::Version)).await;
    raw.send_data(1, &future).await;
    raw.send_data(2, &request(3, Op::SystemInfo)).await;
    raw.send_data(3, b"\xc1 not msgpack at all").await;
    raw.send_data(4, &request(5, Op::Version)).await;

    let mut answers = Vec::new();
    while answers.len() < 5 {
        let Some(Record::Data { payload, .. }) = next_data(&mut raw).await else {
            panic!("the connection ended")
        };
        match Message::decode(&payload).unwrap() {
            Message::Response(r) => answers.push(r),
            other => panic!("{other:?}"),
        }
    }
    // Every response is numbered 1, 2, 3, … in the order it was sent, the
    // error answers included (the application's own `id` is ignored).
    let ids: Vec<u64> = answers.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    let mut origins: Vec<u64> = answers.iter().map(|r| r.origin_id).collect();
    origins.sort_unstable();
    // The record that is not msgpack at all has no recoverable id: 0.
    assert_eq!(origins, vec![0, 1, 2, 3, 5]);
    let error = answers.iter().find(|r| r.origin_id == 2).unwrap();
    let ResponsePayload::Single(Reply::Error(e)) = &error.payload else {
        panic!("{error:?}")
    };
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(
        e.message
            .starts_with("the server could not understand request 2: malformed message: "),
        "{}",
        e.message
    );
}

/// A request of a future protocol version (built with serde, not by hand).
mod future {
    use serde::Serialize;

    #[derive(Serialize)]
    pub enum FutureOp {
        Teleport { to: String },
    }
    #[derive(Serialize)]
    pub enum FuturePayload {
        Single(FutureOp),
    }
    #[derive(Serialize)]
    pub struct FutureRequest {
        id: u64,
        payload: FuturePayload,
    }
    #[derive(Serialize)]
    pub enum Envelope {
        Request(FutureRequest),
    }

    pub fn future_request(id: u64) -> Envelope {
        Envelope::Request(FutureRequest {
            id,
            payload: FuturePayload::Single(FutureOp::Teleport { to: "mars".into() }),
        })
    }
}

// ---- 4 ------------------------------------------------------------------

/// Builds msgpack maps by hand (string keys), as another implementation
/// would write them.
fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, entries.len() as u32).unwrap();
    for (k, v) in entries {
        rmp::encode::write_str(&mut out, k).unwrap();
        out.extend_from_slice(v);
    }
    out
}

fn str_(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_str(&mut out, s).unwrap();
    out
}

fn bin(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_bin(&mut out, b).unwrap();
    out
}

fn op(bytes: &[u8]) -> Op {
    rmp_serde::from_slice(bytes).unwrap_or_else(|e| panic!("does not decode: {e}"))
}

#[test]
fn write_options_and_chunk_size_default_on_the_wire() {
    let path = str_("/tmp/x");
    let data = bin(b"hi");
    let expected = Op::FileWrite {
        path: "/tmp/x".into(),
        data: Bytes::from_static(b"hi"),
        options: WriteOptions {
            create: true,
            overwrite: true,
            if_etag: None,
            atomic: true,
        },
    };
    // `options` omitted, empty, or partly given.
    let no_options = map(&[("FileWrite", &map(&[("path", &path), ("data", &data)]))]);
    assert_eq!(op(&no_options), expected);
    let empty = map(&[(
        "FileWrite",
        &map(&[("path", &path), ("data", &data), ("options", &map(&[]))]),
    )]);
    assert_eq!(op(&empty), expected);
    let partial = map(&[(
        "FileWriteStart",
        &map(&[("path", &path), ("options", &map(&[("atomic", &[0xc2])]))]),
    )]);
    assert_eq!(
        op(&partial),
        Op::FileWriteStart {
            path: "/tmp/x".into(),
            options: WriteOptions {
                atomic: false,
                ..WriteOptions::default()
            }
        }
    );
    // `FileRead` needs only `path`.
    let read = map(&[("FileRead", &map(&[("path", &path)]))]);
    assert_eq!(
        op(&read),
        Op::FileRead {
            path: "/tmp/x".into(),
            chunk_size: None,
            offset: 0,
            length: None
        }
    );
}

// ---- 6 ------------------------------------------------------------------

#[test]
fn auth_messages_are_externally_tagged_as_documented() {
    // PROTOCOL.md §3: `{"Methods": {"methods": ["static_key"]}}`.
    let bytes = AuthMessage::Methods {
        methods: vec!["static_key".into()],
    }
    .to_vec();
    let doc = "81 a7 4d6574686f6473 81 a7 6d6574686f6473 91 aa 7374617469635f6b6579";
    assert_eq!(hex::encode(&bytes), doc.replace(' ', ""));
    let resume = AuthMessage::Resume {
        proofs: vec![serde_bytes::ByteBuf::from(vec![0xab; 2])],
        received: 3,
    }
    .to_vec();
    let doc = "81 a6 526573756d65 82 a6 70726f6f6673 91 c4 02 abab a8 7265636569766564 03";
    assert_eq!(hex::encode(&resume), doc.replace(' ', ""));
}

/// Pumps two handshake machines against each other in fake time.
fn pump(
    client: &mut ClientHandshake,
    server: &mut ServerHandshake,
    mut now: Instant,
) -> Result<(), distant_protocol::handshake::HandshakeError> {
    use distant_protocol::frame::FrameCodec;
    use tokio_util::codec::Decoder;
    let mut to_client = FrameCodec::new(usize::MAX);
    let mut to_server = FrameCodec::new(usize::MAX);
    for _ in 0..100 {
        let mut moved = false;
        while let Some(mut frames) = server.poll_transmit() {
            while let Some(body) = to_client.decode(&mut frames).unwrap() {
                client.handle_frame(body, now)?;
                moved = true;
            }
        }
        while let Some(mut frames) = client.poll_transmit() {
            while let Some(body) = to_server.decode(&mut frames).unwrap() {
                server.handle_frame(body, now)?;
                moved = true;
            }
        }
        if client.is_established() {
            return Ok(());
        }
        if !moved {
            now = server.poll_timeout().expect("a timer while waiting");
            server.handle_timeout(now).ok();
        }
    }
    panic!("the handshake did not finish")
}

#[test]
fn the_last_failing_method_yields_only_the_fatal_error() {
    let now = Instant::now();
    let server_config = ServerConfig {
        static_key: Some(key()),
        ..ServerConfig::default()
    };
    let mut server = ServerHandshake::new(Arc::new(server_config), &mut rand::rngs::OsRng, now);
    let client_config = ClientConfig {
        static_key: Some(StaticKey::from_bytes([8; 32])),
        ..ClientConfig::default()
    };
    let mut client = ClientHandshake::new(client_config, Connect::New, &mut rand::rngs::OsRng, now);
    let err = pump(&mut client, &mut server, now).unwrap_err();
    assert_eq!(err.kind(), HandshakeErrorKind::AuthFailed);
    assert_eq!(
        err.to_string(),
        "authentication failed: authentication with static_key failed and no method is left"
    );
    // No `Error{fatal: false}` came before it.
    while let Some(event) = client.poll_event() {
        assert!(
            !matches!(event, HandshakeEvent::MethodFailed { .. }),
            "{event:?}"
        );
    }
    // Every later call repeats the original error (rustls style).
    let again = client
        .handle_frame(BytesMut::from(&b"anything"[..]), now)
        .unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
}

/// With `none` encryption the sealed body is `flags || content`, so the
/// compressed stream can be read as it travels.
fn sealed_content(algorithm: CompressionAlgorithm, level: u8, content: &[u8]) -> BytesMut {
    let ks = KeySchedule::derive(
        &[1; 32],
        &[2; 32],
        &[3; 32],
        TranscriptHash::compute(b"o", b"c"),
    );
    let mut sealer = ks.sealer(
        Side::Client,
        Encryption::None,
        Compression { algorithm, level },
    );
    let mut out = BytesMut::new();
    sealer.seal_into(&[content], &mut out).unwrap();
    out.split_off(4)
}

#[test]
fn compression_names_are_the_rfcs_and_level_is_zlib_s() {
    use std::io::Read;
    let content: Vec<u8> = (0..4096u32).map(|i| b"distant "[i as usize % 8]).collect();
    let inflate = |algorithm, body: &[u8]| {
        let mut out = Vec::new();
        match algorithm {
            CompressionAlgorithm::Deflate => {
                flate2::read::DeflateDecoder::new(body).read_to_end(&mut out)
            }
            CompressionAlgorithm::Gzip => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
            CompressionAlgorithm::Zlib => {
                flate2::read::ZlibDecoder::new(body).read_to_end(&mut out)
            }
            CompressionAlgorithm::None => unreachable!(),
        }
        .unwrap();
        out
    };
    for algorithm in [
        CompressionAlgorithm::Deflate,
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Zlib,
    ] {
        let body = sealed_content(algorithm, 6, &content);
        assert_eq!(body[0], 0x01, "{algorithm}: flags = compressed");
        assert_eq!(inflate(algorithm, &body[1..]), content, "{algorithm}");
    }
    // RFC 1952: gzip's magic. RFC 1950: the zlib header's FLEVEL bits say
    // which zlib level was used: 1 → fastest (0x01), 6 → default (0x9c),
    // 9 → best (0xda).
    assert_eq!(
        sealed_content(CompressionAlgorithm::Gzip, 6, &content)[1..3],
        [0x1f, 0x8b]
    );
    for (level, header) in [(1, [0x78, 0x01]), (6, [0x78, 0x9c]), (9, [0x78, 0xda])] {
        let body = sealed_content(CompressionAlgorithm::Zlib, level, &content);
        assert_eq!(body[1..3], header, "level {level}");
    }
    // Level 0 stores: never smaller, so the record goes uncompressed.
    assert_eq!(
        sealed_content(CompressionAlgorithm::Zlib, 0, &content)[0],
        0x00
    );
}

#[tokio::test]
async fn an_oversize_pre_auth_frame_is_answered_with_an_alert() {
    let addr = start_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut offer = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut offer).await.unwrap();
    assert!(matches!(decode_plain(&offer), Ok(PlainMessage::Offer(_))));

    stream.write_all(&65_537u32.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the server closes")
        .unwrap();
    let frame_len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    assert_eq!(rest.len(), 4 + frame_len, "one frame, then FIN");
    let Ok(PlainMessage::Alert(alert)) = decode_plain(&rest[4..]) else {
        panic!("not an Alert: {rest:02x?}")
    };
    assert_eq!(
        alert.message,
        "frame too large: 65537 bytes announced, at most 65536 allowed"
    );
}
