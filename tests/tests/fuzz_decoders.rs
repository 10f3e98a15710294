//! Proptest-driven fuzzing (cargo-fuzz needs a nightly toolchain, which CI
//! does not have) of every reader that takes bytes from a peer, adding
//! what the crates' own property tests lack:
//!
//! - the message decoder (`msg::Message::decode`, `peek_request_id`):
//!   random bytes and mutations of valid encodings;
//! - the handshake and authentication machines at *every* state: an honest
//!   client/server exchange where the k-th frame is replaced by random
//!   bytes, mutated, duplicated, reflected, or preceded by junk;
//! - the frame decoder with mutated length prefixes around both caps;
//! - the JSON-RPC reader (`jsonrpc::parse`): random bytes and random JSON
//!   shaped like messages;
//! - the LSP readers (`LspCodec::strict` / `lenient`): hostile headers
//!   (huge, negative, duplicated, non-numeric lengths, long header lines)
//!   in random chunkings.
//!
//! Case counts: `FUZZ_CASES` (default 256 per property).
//!
//! Already covered elsewhere (not duplicated): random bytes into fresh
//! handshake machines and sealed random auth messages
//! (`protocol/tests/handshake_unexpected.rs`), frame round trips and
//! garbage (`protocol/tests/frame_codec.rs`), record opening and bit flips
//! (`protocol/tests/attack_records.rs`, `frame_records.rs`), session
//! records (`protocol/tests/session_proptest.rs`), decompression
//! (`protocol/tests/frame_compress.rs`), LSP codec random bytes and
//! recovery (`bridge/src/framing/tests.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distant_bridge::framing::{Frame, LspCodec};
use distant_bridge::jsonrpc;
use distant_protocol::auth::StaticKey;
use distant_protocol::frame::{encode_frame, FrameCodec, MAX_FRAME, MAX_FRAME_PREAUTH};
use distant_protocol::handshake::{
    ClientConfig, ClientHandshake, Connect, HandshakeEvent, ServerConfig, ServerHandshake,
};
use distant_protocol::msg::{
    Message, Op, Reply, Request, RequestPayload, Response, ResponsePayload,
};
use proptest::prelude::*;
use rand::SeedableRng;
use tokio_util::codec::Decoder;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Message decoder
// ---------------------------------------------------------------------------

fn sample_messages() -> Vec<Vec<u8>> {
    let msgs = [
        Message::Request(Request {
            id: 7,
            payload: RequestPayload::Single(Op::Exists {
                path: "/tmp".into(),
            }),
        }),
        Message::Request(Request {
            id: u64::MAX,
            payload: RequestPayload::Batch {
                ops: vec![
                    Op::Version,
                    Op::FileRead {
                        path: "/etc/hosts".into(),
                        chunk_size: Some(4096),
                        offset: 10,
                        length: Some(20),
                    },
                    Op::ProcStdin {
                        proc: 3,
                        data: Bytes::from_static(b"\x00\xffdata"),
                    },
                ],
                sequential: true,
            },
        }),
        Message::Response(Response {
            id: 1,
            origin_id: 7,
            payload: ResponsePayload::Single(Reply::Exists(true)),
        }),
        Message::Response(Response {
            id: 2,
            origin_id: 9,
            payload: ResponsePayload::Batch(vec![Reply::Ok, Reply::Exists(false)]),
        }),
    ];
    msgs.iter().map(|m| m.encode().unwrap()).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Remove(i, n)),
        // msgpack type bytes that announce huge lengths.
        (
            any::<usize>(),
            prop_oneof![
                Just(vec![0xdd, 0xff, 0xff, 0xff, 0xff]),
                Just(vec![0xdf, 0xff, 0xff, 0xff, 0xff]),
                Just(vec![0xc6, 0xff, 0xff, 0xff, 0xff]),
                Just(vec![0xdb, 0x7f, 0xff, 0xff, 0xff]),
                Just(vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
                Just(vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            ]
        )
            .prop_map(|(i, v)| Mutation::Overwrite(i, v)),
    ]
}

fn apply(mut v: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Flip(i, b) => {
            if !v.is_empty() {
                let i = at(*i, v.len());
                v[i] ^= b;
            }
        }
        Mutation::Truncate(i) => v.truncate(at(*i, v.len() + 1)),
        Mutation::Insert(i, bytes) => {
            let i = at(*i, v.len() + 1);
            v.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove(i, n) => {
            if !v.is_empty() {
                let i = at(*i, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
        }
        Mutation::Overwrite(i, bytes) => {
            let i = at(*i, v.len() + 1);
            let end = (i + bytes.len()).min(v.len());
            v.splice(i..end, bytes.iter().copied());
        }
    }
    v
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn message_decode_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            let again = m.encode().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap(), m);
        }
        let _ = Message::peek_request_id(&bytes);
    }

    #[test]
    fn message_decode_mutated_never_panics(which in 0usize..4, muts in prop::collection::vec(mutation(), 1..4)) {
        let mut bytes = sample_messages()[which].clone();
        for m in &muts {
            bytes = apply(bytes, m);
        }
        if let Ok(m) = Message::decode(&bytes) {
            let again = m.encode().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap(), m);
        }
        let _ = Message::peek_request_id(&bytes);
    }
}

// ---------------------------------------------------------------------------
// Frame decoder: mutated length prefixes around both caps
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frame_decoder_hostile_prefixes(
        prefix in prop_oneof![
            Just(MAX_FRAME_PREAUTH as u32), Just(MAX_FRAME_PREAUTH as u32 + 1),
            Just(MAX_FRAME as u32), Just(MAX_FRAME as u32 + 1), Just(u32::MAX), Just(0u32), any::<u32>()
        ],
        body in prop::collection::vec(any::<u8>(), 0..300),
        cap in prop_oneof![Just(MAX_FRAME_PREAUTH), Just(MAX_FRAME)],
        chunk in 1usize..64,
    ) {
        let mut wire = prefix.to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        let mut codec = FrameCodec::new(cap);
        let mut buf = BytesMut::new();
        let mut failed = false;
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            match codec.decode(&mut buf) {
                Ok(Some(f)) => prop_assert!(f.len() <= cap),
                Ok(None) => {}
                Err(_) => { failed = true; break; }
            }
            // Never reserves more than the cap plus the prefix.
            prop_assert!(buf.capacity() <= (cap + 4).max(64 * 1024) + wire.len());
        }
        if prefix as usize > cap {
            prop_assert!(failed, "an oversize prefix was accepted");
        }
        if !failed {
            let _ = codec.decode_eof(&mut buf);
        }
    }
}

// ---------------------------------------------------------------------------
// Handshake and authentication at every state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Tamper {
    /// Replace the k-th frame by random bytes.
    Replace(Vec<u8>),
    /// Mutate the k-th frame.
    Mutate(Vec<Mutation>),
    /// Deliver the k-th frame twice.
    Duplicate,
    /// Deliver the k-th frame back to its sender too (reflection).
    Reflect,
    /// Junk before the k-th frame.
    Prefix(Vec<u8>),
    /// Drop the k-th frame, then let time pass (timeouts, failure delay).
    DropAndWait,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Tamper::Replace),
        prop::collection::vec(mutation(), 1..3).prop_map(Tamper::Mutate),
        Just(Tamper::Duplicate),
        Just(Tamper::Reflect),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Tamper::Prefix),
        Just(Tamper::DropAndWait),
    ]
}

fn bodies_of(mut frames: BytesMut) -> Vec<BytesMut> {
    let mut codec = FrameCodec::new(usize::MAX);
    let mut out = Vec::new();
    while let Ok(Some(b)) = codec.decode(&mut frames) {
        out.push(b);
    }
    out
}

struct Run {
    client_ok: bool,
    server_ok: bool,
    tampered: bool,
    client_session: Option<[u8; 16]>,
    server_session: Option<[u8; 16]>,
}

/// An honest exchange (static_key, or a resume) where frame number `k`
/// (counting both directions) is tampered with.
fn run(seed: u64, k: usize, t: &Tamper, right_key: bool) -> Run {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let key = StaticKey::from_bytes([7; 32]);
    let ckey = if right_key {
        key.clone()
    } else {
        StaticKey::from_bytes([8; 32])
    };
    let now = Instant::now();
    let mut server = ServerHandshake::new(
        Arc::new(ServerConfig {
            static_key: Some(key),
            ..ServerConfig::default()
        }),
        &mut rng,
        now,
    );
    let mut client = ClientHandshake::new(
        ClientConfig {
            static_key: Some(ckey),
            ..ClientConfig::default()
        },
        Connect::New,
        &mut rng,
        now,
    );
    let mut n = 0usize;
    let mut tampered = false;
    let (mut c_err, mut s_err) = (false, false);
    let mut clock = now;
    for _round in 0..64 {
        let mut progress = false;
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        while let Some(f) = client.poll_transmit() {
            to_server.extend(bodies_of(f));
        }
        while let Some(f) = server.poll_transmit() {
            to_client.extend(bodies_of(f));
        }
        for (dir, frames) in [(0, to_server), (1, to_client)] {
            for b in frames {
                progress = true;
                let mut deliveries: Vec<(usize, BytesMut)> = Vec::new();
                if n == k {
                    match t {
                        Tamper::Replace(v) => deliveries.push((dir, BytesMut::from(&v[..]))),
                        Tamper::Mutate(ms) => {
                            let mut v = b.to_vec();
                            for m in ms {
                                v = apply(v, m);
                            }
                            deliveries.push((dir, BytesMut::from(&v[..])));
                        }
                        Tamper::Duplicate => {
                            deliveries.push((dir, b.clone()));
                            deliveries.push((dir, b.clone()));
                        }
                        Tamper::Reflect => {
                            deliveries.push((1 - dir, b.clone()));
                            deliveries.push((dir, b.clone()));
                        }
                        Tamper::Prefix(j) => {
                            deliveries.push((dir, BytesMut::from(&j[..])));
                            deliveries.push((dir, b.clone()));
                        }
                        Tamper::DropAndWait => {
                            clock += Duration::from_secs(40);
                            if !c_err {
                                c_err |= client.handle_timeout(clock).is_err();
                            }
                            if !s_err {
                                s_err |= server.handle_timeout(clock).is_err();
                            }
                        }
                    }
                    tampered = !matches!(deliveries.as_slice(), [(d, x)] if *d == dir && *x == b);
                } else {
                    deliveries.push((dir, b));
                }
                n += 1;
                for (d, body) in deliveries {
                    if d == 0 {
                        if !s_err && !server.is_established() {
                            s_err |= server.handle_frame(body, clock).is_err();
                        }
                    } else if !c_err && !client.is_established() {
                        c_err |= client.handle_frame(body, clock).is_err();
                    }
                }
            }
        }
        while client.poll_event().is_some() {}
        while let Some(ev) = server.poll_event() {
            if matches!(ev, HandshakeEvent::ResumeRequested(_)) && !s_err {
                s_err |= server.provide_session(None).is_err();
            }
        }
        // Let the failure delay and deadlines run.
        if !progress {
            clock += Duration::from_millis(1500);
            if !c_err {
                c_err |= client.handle_timeout(clock).is_err();
            }
            if !s_err {
                s_err |= server.handle_timeout(clock).is_err();
            }
            if client.poll_timeout().is_none() && server.poll_timeout().is_none() {
                let pending = client.poll_transmit().is_some() || server.poll_transmit().is_some();
                if !pending {
                    break;
                }
            }
        }
    }
    let client_ok = !c_err && client.is_established();
    let server_ok = !s_err && server.is_established();
    let client_session = client.into_established().ok().map(|e| e.session_id.0);
    let server_session = server.into_established().ok().map(|e| e.session_id.0);
    Run {
        client_ok,
        server_ok,
        tampered,
        client_session,
        server_session,
    }
}

#[test]
fn honest_handshake_establishes_both_sides() {
    let r = run(1, usize::MAX, &Tamper::Duplicate, true);
    assert!(r.client_ok && r.server_ok);
    assert_eq!(r.client_session, r.server_session);
    let r = run(1, usize::MAX, &Tamper::Duplicate, false);
    assert!(!r.client_ok && !r.server_ok, "a wrong key established");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn handshake_tampered_at_every_state_never_panics_or_authenticates(
        seed in any::<u64>(),
        k in 0usize..10,
        t in tamper(),
        right_key in prop::bool::weighted(0.8),
    ) {
        let r = run(seed, k, &t, right_key);
        if !right_key {
            prop_assert!(!r.client_ok, "the client accepted a server without the key");
            prop_assert!(!r.server_ok, "the server accepted a client without the key");
        }
        if r.client_ok && r.server_ok {
            // Both believe in the session: it must be the same one, and
            // nothing effective was tampered with on the way.
            prop_assert_eq!(r.client_session, r.server_session);
            prop_assert!(!r.tampered || matches!(t, Tamper::Prefix(ref j) if j.is_empty()) || matches!(t, Tamper::Duplicate | Tamper::Reflect),
                "established despite {:?} at frame {}", t, k);
        }
    }
}

// ---------------------------------------------------------------------------
// JSON-RPC reader
// ---------------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<u64>().prop_map(Value::from),
        "[a-z/$]{0,12}".prop_map(Value::String),
        Just(Value::String("2.0".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("jsonrpc".to_string()),
                    Just("id".to_string()),
                    Just("method".to_string()),
                    Just("params".to_string()),
                    Just("result".to_string()),
                    Just("error".to_string()),
                    Just("code".to_string()),
                    Just("message".to_string()),
                    Just("data".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn jsonrpc_parse_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(invalid) = jsonrpc::parse(&bytes) {
            if let Some(resp) = invalid.response() {
                // The error response itself is valid JSON-RPC.
                prop_assert!(jsonrpc::parse(&resp).is_ok());
            }
        }
    }

    #[test]
    fn jsonrpc_parse_message_shaped_json_never_panics(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        match jsonrpc::parse(&bytes) {
            Ok(_) => {}
            Err(invalid) => {
                if let Some(resp) = invalid.response() {
                    prop_assert!(jsonrpc::parse(&resp).is_ok());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// LSP readers: hostile headers
// ---------------------------------------------------------------------------

fn header_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| format!("Content-Length: {n}\r\n").into_bytes()),
        (0u32..2000).prop_map(|n| format!("Content-Length: {n}\r\n").into_bytes()),
        Just(b"Content-Length: -1\r\n".to_vec()),
        Just(b"Content-Length: 99999999999999999999999\r\n".to_vec()),
        Just(b"content-length:12\r\n".to_vec()),
        Just(b"Content-Length: 0x10\r\n".to_vec()),
        Just(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        (1usize..20_000).prop_map(|n| {
            let mut v = b"X-Long: ".to_vec();
            v.extend(std::iter::repeat_n(b'a', n));
            v.extend_from_slice(b"\r\n");
            v
        }),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lsp_codecs_hostile_headers_never_panic_and_stay_bounded(
        parts in prop::collection::vec(
            (prop::collection::vec(header_line(), 0..4), prop::collection::vec(any::<u8>(), 0..200)),
            1..6
        ),
        chunk in 1usize..128,
        max_body in prop_oneof![Just(1024usize), Just(64 * 1024)],
    ) {
        let mut input = Vec::new();
        for (headers, body) in &parts {
            for h in headers {
                input.extend_from_slice(h);
            }
            input.extend_from_slice(body);
        }
        for mut codec in [LspCodec::strict().with_max_body(max_body), LspCodec::lenient().with_max_body(max_body)] {
            let mut buf = BytesMut::new();
            let mut dead = false;
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(Frame::Message(b))) => prop_assert!(b.len() <= max_body),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => { dead = true; break; }
                    }
                }
                if dead {
                    break;
                }
                // Buffered bytes stay bounded by the body cap plus a header
                // allowance, whatever the input claims.
                prop_assert!(buf.len() <= max_body + 64 * 1024 + chunk, "buffered {}", buf.len());
            }
            if !dead {
                while let Ok(Some(_)) = codec.decode_eof(&mut buf) {}
            }
        }
    }

    #[test]
    fn lsp_well_framed_messages_survive_random_chunking_strict(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
        chunk in 1usize..64,
    ) {
        let mut input = Vec::new();
        for b in &bodies {
            input.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            input.extend_from_slice(b);
        }
        let mut codec = LspCodec::strict();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                if let Frame::Message(b) = f {
                    got.push(b.to_vec());
                }
            }
        }
        prop_assert_eq!(got, bodies);
    }
}

#[test]
fn encode_frame_refuses_nothing_it_should_accept() {
    // A sanity anchor for the frame properties above.
    let mut out = BytesMut::new();
    encode_frame(b"abc", &mut out).unwrap();
    assert_eq!(&out[..], b"\x00\x00\x00\x03abc");
}
