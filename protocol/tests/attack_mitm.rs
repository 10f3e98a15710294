//! An active man in the middle who does not know the static key: it runs a
//! server handshake with the real client and a client handshake with the
//! real server, and relays every authentication message (Methods, Select,
//! Challenge, Answers, Error, Success…) between them, re-sealed under each
//! side's keys. Neither side may authenticate, and the key never appears
//! on the wire or in anything the attacker decrypts.

mod handshake_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use distant_protocol::auth::{AuthMessage, SessionId};
use distant_protocol::handshake::*;
use handshake_support::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Outcome {
    client_err: Option<HandshakeError>,
    server_err: Option<HandshakeError>,
    client_established: bool,
    server_established: bool,
    wire: Vec<BytesMut>,
    seen_by_mitm: Vec<Vec<u8>>,
}

/// Runs the relay. `forge` may replace a message going to the client.
fn run_mitm(seed: u64, forge: impl Fn(AuthMessage) -> AuthMessage) -> Outcome {
    let mut r = rng(seed);
    let base = Instant::now();
    let k = key(7);
    let mut server = ServerHandshake::new(Arc::new(server_cfg(Some(k.clone()))), &mut r, base);
    let mut client = ClientHandshake::new(client_cfg(Some(k)), Connect::New, &mut r, base);
    let mut wire = Vec::new();
    let mut seen = Vec::new();

    // Handshake 1: attacker ↔ real server.
    let s_offer = drain_server(&mut server);
    wire.extend(s_offer.iter().cloned());
    let (m_choice, mut to_s) = manual_client(&s_offer[0], ConnectRequest::New, &mut r);
    server.handle_frame(body(m_choice), base).unwrap();

    // Handshake 2: real client ↔ attacker.
    let fake = ManualServer::new(&mut r);
    client.handle_frame(body(fake.offer_frame()), base).unwrap();
    let c_choice = drain_client(&mut client);
    wire.extend(c_choice.iter().cloned());
    let (_, mut to_c) = fake.accept(&c_choice[0]);

    let mut client_err = None;
    let mut server_err = None;
    let mut now = base;
    for _ in 0..20 {
        let mut progress = false;
        for b in drain_server(&mut server) {
            progress = true;
            wire.push(b.clone());
            let msg = to_s
                .open(frame_of(&b))
                .expect("attacker opens the server's records");
            seen.push(msg.to_vec());
            let msg = forge(msg);
            if client_err.is_none() && !client.is_established() {
                if let Err(e) = client.handle_frame(body(to_c.seal(&msg)), now) {
                    client_err = Some(e);
                }
            }
        }
        for b in drain_client(&mut client) {
            progress = true;
            wire.push(b.clone());
            let msg = to_c
                .open(frame_of(&b))
                .expect("attacker opens the client's records");
            seen.push(msg.to_vec());
            if server_err.is_none() && !server.is_established() {
                if let Err(e) = server.handle_frame(body(to_s.seal(&msg)), now) {
                    server_err = Some(e);
                }
            }
        }
        if !progress {
            if client_err.is_some() && server_err.is_some() {
                break;
            }
            now += Duration::from_millis(500);
            if server_err.is_none() {
                if let Err(e) = server.handle_timeout(now) {
                    server_err = Some(e);
                }
            }
        }
    }
    Outcome {
        client_err,
        server_err,
        client_established: client.is_established(),
        server_established: server.is_established(),
        wire,
        seen_by_mitm: seen,
    }
}

fn assert_no_key_material(o: &Outcome) {
    let k = key(7);
    let hex = k.to_hex();
    for bytes in o
        .wire
        .iter()
        .map(|b| &b[..])
        .chain(o.seen_by_mitm.iter().map(|v| &v[..]))
    {
        assert!(!contains(bytes, k.as_bytes()), "raw key bytes leaked");
        assert!(!contains(bytes, hex.as_bytes()), "hex key leaked");
        assert!(!contains(bytes, &k.as_bytes()[..8]), "key prefix leaked");
    }
    assert!(!o.wire.is_empty() && !o.seen_by_mitm.is_empty());
}

#[test]
fn relaying_mitm_authenticates_neither_side() {
    let o = run_mitm(60, |m| m);
    assert!(!o.client_established && !o.server_established);
    let s = o
        .server_err
        .as_ref()
        .expect("server refuses the relayed answer");
    assert_eq!(s.kind(), HandshakeErrorKind::AuthFailed, "{s}");
    let c = o.client_err.as_ref().expect("client is told");
    assert_eq!(c.kind(), HandshakeErrorKind::AuthFailed, "{c}");
    // The attacker saw the client's answer: a proof bound to the client's
    // transcript, useless on the server's.
    assert!(o
        .seen_by_mitm
        .iter()
        .any(|m| matches!(AuthMessage::from_slice(m), Ok(AuthMessage::Answers { .. }))));
    assert_no_key_material(&o);
}

#[test]
fn mitm_forging_success_is_detected_by_the_client() {
    // Instead of the server's Error, the attacker claims Success, with the
    // only proofs it has: none, or one it made up.
    for proof in [None, Some(vec![0u8; 32])] {
        let o = run_mitm(61, move |m| match m {
            AuthMessage::Error { .. } => AuthMessage::Success {
                session_id: SessionId([9; 16]),
                proof: proof.clone().map(Into::into),
            },
            other => other,
        });
        assert!(!o.client_established && !o.server_established);
        let c = o.client_err.as_ref().expect("client refuses");
        assert_eq!(c.kind(), HandshakeErrorKind::AuthFailed, "{c}");
        assert!(c.to_string().contains("could not prove"), "{c}");
        assert_no_key_material(&o);
    }
}

#[test]
fn honest_run_never_sends_the_key_either() {
    let mut h = Harness::new(
        client_cfg(Some(key(7))),
        Connect::New,
        server_cfg(Some(key(7))),
        62,
    );
    h.run();
    let k = key(7);
    for (_, b) in h.c2s_log.iter().chain(h.s2c_log.iter()) {
        assert!(!contains(b, k.as_bytes()));
        assert!(!contains(b, k.to_hex().as_bytes()));
    }
    let (c, s) = h.established();
    // And nothing secret in Debug output either.
    let dbg = format!("{c:?} {s:?}");
    assert!(dbg.contains("<redacted>"));
    assert!(!dbg.contains(&k.to_hex()[..16]));
}
