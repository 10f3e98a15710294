//! Cost of a complete in-memory handshake (new session with `static_key`,
//! and a resume), both machines in one thread.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use distant_protocol::auth::{Otp, SessionId, StaticKey};
use distant_protocol::frame::FrameCodec;
use distant_protocol::handshake::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio_util::codec::Decoder;

fn run(client: &mut ClientHandshake, server: &mut ServerHandshake, store: Option<StoredSession>) {
    let now = Instant::now();
    let mut store = store;
    loop {
        let mut progress = false;
        while let Some(mut f) = client.poll_transmit() {
            progress = true;
            let mut codec = FrameCodec::new(server.max_frame_len());
            while let Some(b) = codec.decode(&mut f).unwrap() {
                server.handle_frame(b, now).unwrap();
            }
        }
        while let Some(mut f) = server.poll_transmit() {
            progress = true;
            let mut codec = FrameCodec::new(client.max_frame_len());
            while let Some(b) = codec.decode(&mut f).unwrap() {
                client.handle_frame(b, now).unwrap();
            }
        }
        while let Some(ev) = server.poll_event() {
            progress = true;
            if let HandshakeEvent::ResumeRequested(_) = ev {
                server.provide_session(store.take()).unwrap();
            }
        }
        if !progress {
            break;
        }
    }
    assert!(client.is_established() && server.is_established());
}

fn handshake(c: &mut Criterion) {
    let key = StaticKey::from_bytes([1; 32]);
    let scfg = Arc::new(ServerConfig {
        static_key: Some(key.clone()),
        ..ServerConfig::default()
    });
    let ccfg = ClientConfig {
        static_key: Some(key),
        ..ClientConfig::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    c.bench_function("handshake/new static_key", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut s = ServerHandshake::new(scfg.clone(), &mut rng, now);
            let mut cl = ClientHandshake::new(ccfg.clone(), Connect::New, &mut rng, now);
            run(&mut cl, &mut s, None);
        })
    });
    let otp = Otp::from_bytes([2; 32]);
    c.bench_function("handshake/resume", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut s = ServerHandshake::new(scfg.clone(), &mut rng, now);
            let connect = Connect::Resume {
                session_id: SessionId([3; 16]),
                otps: vec![otp.clone()],
                received: 0,
            };
            let mut cl = ClientHandshake::new(ccfg.clone(), connect, &mut rng, now);
            run(
                &mut cl,
                &mut s,
                Some(StoredSession {
                    otp: otp.clone(),
                    received: 0,
                }),
            );
        })
    });
}

criterion_group!(benches, handshake);
criterion_main!(benches);
