//! Client and server handshake machines driven against each other in
//! memory (seeded RNG, fake instants): every success and failure path of
//! PROTOCOL.md §2–§3.

mod handshake_support;

use std::time::Duration;

use bytes::BytesMut;
use distant_protocol::auth::{AuthMessage, Otp, SessionId};
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::handshake::*;
use handshake_support::*;

fn new_session(seed: u64) -> (Established, Established) {
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(1))),
        seed,
    );
    h.run();
    h.established()
}

#[test]
fn static_key_success() {
    let mut h = Harness::new(
        ClientConfig {
            compression: Compression::fast(CompressionAlgorithm::Zlib),
            ..client_cfg(Some(key(1)))
        },
        Connect::New,
        server_cfg(Some(key(1))),
        1,
    );
    h.pump();
    assert!(h.client.is_established() && h.server.is_established());
    assert_eq!(h.client.max_frame_len(), distant_protocol::frame::MAX_FRAME);
    assert_eq!(h.elapsed(), Duration::ZERO, "success needs no waiting");
    let (mut c, mut s) = h.established();
    assert_eq!(c.session_id, s.session_id);
    let (EstablishedKind::New { otp: a }, EstablishedKind::New { otp: b }) = (&c.kind, &s.kind)
    else {
        panic!("not new")
    };
    assert_eq!(a, b);
    assert!(c.peer_software.starts_with("distant-server"));
    assert!(s.peer_software.starts_with("distant-bridge"));
    assert_eq!(
        c.opener.max_content(),
        distant_protocol::frame::MAX_RECORD_CONTENT
    );
    exchange(&mut c, &mut s);
}

#[test]
fn deterministic_under_seed() {
    let (a, _) = new_session(7);
    let (b, _) = new_session(7);
    assert_eq!(a.session_id, b.session_id);
}

#[test]
fn wrong_key_fails_after_failure_delay_on_both_sides() {
    // The client holds the right key, the server another one: neither
    // authenticates the other.
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(2))),
        2,
    );
    h.pump();
    assert!(h.client_err.is_none() && h.server_err.is_none());
    let sent_before = h.s2c_log.len();
    // Just before the delay: nothing new from the server.
    h.advance_to(Duration::from_millis(999));
    assert_eq!(h.s2c_log.len(), sent_before, "no Error before the delay");
    assert!(h.client_err.is_none());
    h.advance_to(Duration::from_secs(1));
    assert_eq!(h.s2c_log.len(), sent_before + 1);
    assert_eq!(h.s2c_log.last().unwrap().0, Duration::from_secs(1));
    let c = h.client_err.as_ref().expect("client fails");
    let s = h.server_err.as_ref().expect("server fails");
    assert_eq!(c.kind(), HandshakeErrorKind::AuthFailed, "{c}");
    assert_eq!(s.kind(), HandshakeErrorKind::AuthFailed, "{s}");
    assert!(c.to_string().contains("no method is left"), "{c}");
    assert!(h
        .server_events
        .iter()
        .any(|e| matches!(e, HandshakeEvent::MethodFailed { .. })));
}

#[test]
fn client_rejects_success_with_bad_proof() {
    let mut r = rng(3);
    let fake = ManualServer::new(&mut r);
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, h_now());
    let now = h_now();
    client.handle_frame(body(fake.offer_frame()), now).unwrap();
    let out = drain_client(&mut client);
    let (_, mut peer) = fake.accept(&out[0]);
    let m = AuthMessage::Methods {
        methods: vec!["static_key".into()],
    };
    client.handle_frame(body(peer.seal(&m)), now).unwrap();
    let sel = drain_client(&mut client);
    assert!(matches!(
        peer.open(frame_of(&sel[0])),
        Ok(AuthMessage::Select { .. })
    ));
    for m in [
        AuthMessage::Start {
            method: "static_key".into(),
        },
        AuthMessage::Challenge {
            method: "static_key".into(),
            questions: vec![distant_protocol::auth::static_key_question()],
        },
    ] {
        client.handle_frame(body(peer.seal(&m)), now).unwrap();
    }
    let ans = drain_client(&mut client);
    let Ok(AuthMessage::Answers { answers }) = peer.open(frame_of(&ans[0])) else {
        panic!("no answers")
    };
    // The client's answer is the proof for this transcript, not the key.
    assert_eq!(
        answers[0].as_ref(),
        key(1).client_proof(&peer.th).as_slice()
    );
    // Forged proofs: random, missing, and the client's own proof reflected.
    for proof in [Some(vec![9u8; 32]), None, Some(answers[0].to_vec())] {
        let e = client_clone_at_success(&fake, proof);
        assert_eq!(e.kind(), HandshakeErrorKind::AuthFailed, "{e}");
        assert!(e.to_string().contains("could not prove"), "{e}");
    }
}

fn h_now() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Runs a fresh client against `fake` up to Success{proof}; returns its error.
fn client_clone_at_success(fake: &ManualServer, proof: Option<Vec<u8>>) -> HandshakeError {
    let mut r = rng(33);
    let now = h_now();
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    client.handle_frame(body(fake.offer_frame()), now).unwrap();
    let out = drain_client(&mut client);
    let (_, mut peer) = fake.accept(&out[0]);
    let msgs = [
        AuthMessage::Methods {
            methods: vec!["static_key".into()],
        },
        AuthMessage::Start {
            method: "static_key".into(),
        },
        AuthMessage::Challenge {
            method: "static_key".into(),
            questions: vec![distant_protocol::auth::static_key_question()],
        },
    ];
    for m in msgs {
        client.handle_frame(body(peer.seal(&m)), now).unwrap();
    }
    let success = AuthMessage::Success {
        session_id: SessionId([1; 16]),
        proof: proof.map(serde_bytes::ByteBuf::from),
    };
    let err = client
        .handle_frame(body(peer.seal(&success)), now)
        .unwrap_err();
    assert!(!client.is_established());
    err
}

#[test]
fn none_auth_only_when_both_allow() {
    // Both allow: success.
    let mut h = Harness::new(
        ClientConfig {
            accept_none_auth: true,
            ..client_cfg(None)
        },
        Connect::New,
        ServerConfig {
            allow_none_auth: true,
            ..server_cfg(None)
        },
        4,
    );
    h.run();
    let (mut c, mut s) = h.established();
    exchange(&mut c, &mut s);

    // Server allows, client does not.
    let mut h = Harness::new(
        client_cfg(None),
        Connect::New,
        ServerConfig {
            allow_none_auth: true,
            ..server_cfg(None)
        },
        4,
    );
    h.run();
    let e = h.client_err.expect("client refuses");
    assert_eq!(e.kind(), HandshakeErrorKind::AuthFailed);
    assert!(
        e.to_string().contains("no common authentication method"),
        "{e}"
    );

    // Client accepts none, server offers only static_key.
    let mut h = Harness::new(
        ClientConfig {
            accept_none_auth: true,
            ..client_cfg(None)
        },
        Connect::New,
        server_cfg(Some(key(1))),
        4,
    );
    h.run();
    assert_eq!(h.client_err.unwrap().kind(), HandshakeErrorKind::AuthFailed);
    assert!(!h.server.is_established());
}

#[test]
fn methods_fall_through_in_order() {
    let mut h = Harness::new(
        ClientConfig {
            accept_none_auth: true,
            ..client_cfg(Some(key(1)))
        },
        Connect::New,
        ServerConfig {
            allow_none_auth: true,
            ..server_cfg(Some(key(2)))
        },
        5,
    );
    h.pump();
    assert!(!h.client.is_established());
    h.run();
    assert_eq!(h.elapsed(), Duration::from_secs(1));
    assert!(h.client_events.iter().any(|e| matches!(
        e,
        HandshakeEvent::MethodFailed { method, .. } if method == "static_key"
    )));
    let (mut c, mut s) = h.established();
    exchange(&mut c, &mut s);
}

#[test]
fn server_refuses_selection_it_did_not_offer() {
    let mut r = rng(6);
    let now = h_now();
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let offer = drain_server(&mut server).remove(0);
    let (choice, mut peer) = manual_client(&offer, ConnectRequest::New, &mut r);
    server.handle_frame(body(choice), now).unwrap();
    let methods = drain_server(&mut server);
    assert_eq!(
        peer.open(frame_of(&methods[0])).unwrap(),
        AuthMessage::Methods {
            methods: vec!["static_key".into()]
        }
    );
    let sel = peer.seal(&AuthMessage::Select {
        methods: vec!["none".into(), "kerberos".into()],
    });
    let e = server.handle_frame(body(sel), now).unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::AuthFailed);
    let out = drain_server(&mut server);
    assert!(matches!(
        peer.open(frame_of(&out[0])),
        Ok(AuthMessage::Error { fatal: true, .. })
    ));
}

#[test]
fn version_mismatch_names_both_versions() {
    // A 2.3 server talking to us.
    let mut r = rng(7);
    let now = h_now();
    let fake = ManualServer::new(&mut r);
    let offer2 = encode_plain_versioned(&PlainMessage::Offer(fake.offer.clone()), (2, 3));
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    let e = client.handle_frame(offer2, now).unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::VersionMismatch);
    assert_eq!(
        e.to_string(),
        "version mismatch: peer speaks protocol 2.3, we speak 1.0"
    );
    let alert = drain_client(&mut client);
    let Ok(PlainMessage::Alert(a)) = decode_plain(&alert[0]) else {
        panic!()
    };
    // The exact text of PROTOCOL.md §2.1: the Alert names the roles.
    assert_eq!(
        a.message,
        "version mismatch: the client speaks protocol 1.0, the server 2.3"
    );

    // A 0.9 client talking to our server.
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let offer = drain_server(&mut server).remove(0);
    let (choice, _) = manual_client(&offer, ConnectRequest::New, &mut r);
    let mut choice = body(choice);
    choice[4..6].copy_from_slice(&0u16.to_be_bytes());
    choice[6..8].copy_from_slice(&9u16.to_be_bytes());
    let e = server.handle_frame(choice, now).unwrap_err();
    assert_eq!(
        e.to_string(),
        "version mismatch: peer speaks protocol 0.9, we speak 1.0"
    );
    let alert = drain_server(&mut server);
    let Ok(PlainMessage::Alert(a)) = decode_plain(&alert[0]) else {
        panic!()
    };
    assert_eq!(
        a.message,
        "version mismatch: the server speaks protocol 1.0, the client 0.9"
    );

    // A newer minor version is fine.
    let offer_minor = encode_plain_versioned(&PlainMessage::Offer(fake.offer.clone()), (1, 7));
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    client.handle_frame(offer_minor, now).unwrap();
}

#[test]
fn bad_magic_is_not_distant() {
    let mut r = rng(8);
    let now = h_now();
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    let e = client
        .handle_frame(BytesMut::from(&b"SSH-2.0-OpenSSH_9.6\r\n"[..]), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::NotDistant);
    assert_eq!(e.to_string(), "the peer is not a distant endpoint");
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let e = server
        .handle_frame(BytesMut::from(&b"GET / HTTP/1.1"[..]), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::NotDistant);
    // Also empty and short bodies.
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    assert_eq!(
        server
            .handle_frame(BytesMut::new(), now)
            .unwrap_err()
            .kind(),
        HandshakeErrorKind::NotDistant
    );
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    assert_eq!(
        server
            .handle_frame(BytesMut::from(&b"DSTN\x00"[..]), now)
            .unwrap_err()
            .kind(),
        HandshakeErrorKind::Protocol
    );
}

/// Rewrites the Offer in flight with `f` (an active attacker who cannot
/// forge keys but can edit the plaintext).
fn tamper_offer(f: impl Fn(&mut Offer) + 'static) -> Tamper {
    Box::new(move |dir, b| {
        if dir == Dir::S2C {
            if let Ok(PlainMessage::Offer(mut o)) = decode_plain(&b) {
                f(&mut o);
                return Some(encode_plain(&PlainMessage::Offer(o)));
            }
        }
        Some(b)
    })
}

#[test]
fn tampered_offer_fails_downgrade() {
    // Compression list cut down: the client falls back to none, the
    // transcripts differ, the first sealed record fails to open.
    let mut h = Harness::new(
        ClientConfig {
            compression: Compression::fast(CompressionAlgorithm::Deflate),
            ..client_cfg(Some(key(1)))
        },
        Connect::New,
        server_cfg(Some(key(1))),
        9,
    );
    h.tamper = Some(tamper_offer(|o| o.compression = vec!["none".into()]));
    h.run();
    let e = h.client_err.expect("client fails");
    assert_eq!(e.kind(), HandshakeErrorKind::Crypto, "{e}");
    assert!(e.to_string().contains("tampered"), "{e}");
    assert!(!h.server.is_established());

    // Encryption list edited (the "none" option removed): same result.
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        ServerConfig {
            allow_unencrypted: true,
            ..server_cfg(Some(key(1)))
        },
        9,
    );
    h.tamper = Some(tamper_offer(|o| {
        o.encryption = vec!["xchacha20poly1305".into()]
    }));
    h.run();
    assert_eq!(
        h.client_err.expect("client fails").kind(),
        HandshakeErrorKind::Crypto
    );

    // Software string edited: still detected.
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(1))),
        9,
    );
    h.tamper = Some(tamper_offer(|o| o.software = "evil".into()));
    h.run();
    assert!(h.client_err.is_some() && !h.server.is_established());
}

#[test]
fn tampered_choice_fails() {
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(1))),
        10,
    );
    h.tamper = Some(Box::new(|dir, b| {
        if dir == Dir::C2S {
            if let Ok(PlainMessage::Choice(mut c)) = decode_plain(&b) {
                c.compression = Compression::fast(CompressionAlgorithm::Gzip);
                return Some(encode_plain(&PlainMessage::Choice(c)));
            }
        }
        Some(b)
    }));
    h.run();
    assert!(h.client_err.is_some() || h.server_err.is_some());
    assert!(!h.client.is_established() && !h.server.is_established());
}

#[test]
fn unencrypted_only_when_both_allow() {
    // Both allow: records carry no AEAD but the session works.
    let mut h = Harness::new(
        ClientConfig {
            allow_unencrypted: true,
            accept_none_auth: true,
            ..client_cfg(None)
        },
        Connect::New,
        ServerConfig {
            allow_unencrypted: true,
            allow_none_auth: true,
            ..server_cfg(None)
        },
        11,
    );
    h.run();
    let (mut c, mut s) = h.established();
    let mut out = BytesMut::new();
    c.sealer.seal_into(&[b"plain"], &mut out).unwrap();
    assert_eq!(&out[..], b"\x00\x00\x00\x06\x00plain");
    exchange(&mut c, &mut s);

    // The client allows it but a TCP server does not offer it: XChaCha.
    let mut h = Harness::new(
        ClientConfig {
            allow_unencrypted: true,
            ..client_cfg(Some(key(1)))
        },
        Connect::New,
        server_cfg(Some(key(1))),
        11,
    );
    h.run();
    let (mut c, _s) = h.established();
    let mut out = BytesMut::new();
    c.sealer.seal_into(&[b"plain"], &mut out).unwrap();
    assert_eq!(out.len(), 4 + 1 + 5 + 16);

    // An attacker offers only "none" to a default client: refused.
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(1))),
        11,
    );
    h.tamper = Some(tamper_offer(|o| o.encryption = vec!["none".into()]));
    h.run();
    let e = h.client_err.expect("refused");
    assert_eq!(e.kind(), HandshakeErrorKind::Refused);
    assert!(
        e.to_string().contains("accepts only xchacha20poly1305"),
        "{e}"
    );
    // The client told the server why.
    let alert = h.c2s_log.last().unwrap();
    assert!(matches!(decode_plain(&alert.1), Ok(PlainMessage::Alert(_))));
    assert_eq!(
        h.server_err.expect("server sees the alert").kind(),
        HandshakeErrorKind::Refused
    );

    // A client choosing none against a server that does not allow it.
    let mut r = rng(12);
    let now = h_now();
    let mut server =
        ServerHandshake::new(std::sync::Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let offer = drain_server(&mut server).remove(0);
    let (choice, _) = manual_client(&offer, ConnectRequest::New, &mut r);
    let Ok(PlainMessage::Choice(mut c)) = decode_plain(&body(choice)) else {
        panic!()
    };
    c.encryption = distant_protocol::crypto::Encryption::None;
    let e = server
        .handle_frame(encode_plain(&PlainMessage::Choice(c)), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Refused);
    let alert = drain_server(&mut server);
    assert!(matches!(
        decode_plain(&alert[0]),
        Ok(PlainMessage::Alert(_))
    ));
}

#[test]
fn client_sees_server_alert_after_choice() {
    // The server refuses the Choice with a plaintext Alert; the client,
    // already keyed, still reports the server's sentence.
    let mut h = Harness::new(
        ClientConfig {
            compression: Compression {
                algorithm: CompressionAlgorithm::Gzip,
                level: 1,
            },
            ..client_cfg(Some(key(1)))
        },
        Connect::New,
        server_cfg(Some(key(1))),
        13,
    );
    // Offer claims gzip, but the server's config does not include it.
    h.server = ServerHandshake::new(
        std::sync::Arc::new(ServerConfig {
            compression_offer: vec![CompressionAlgorithm::None],
            ..server_cfg(Some(key(1)))
        }),
        &mut rng(13),
        h.now,
    );
    h.tamper = Some(tamper_offer(|o| {
        o.compression = vec!["none".into(), "gzip".into()]
    }));
    h.run();
    let e = h.client_err.expect("client fails");
    assert_eq!(e.kind(), HandshakeErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("not offered"), "{e}");
}

#[test]
fn preauth_timeout_before_and_after_keys() {
    // The client never answers the Offer.
    let mut r = rng(14);
    let now = h_now();
    let cfg = std::sync::Arc::new(server_cfg(Some(key(1))));
    let mut server = ServerHandshake::new(cfg.clone(), &mut r, now);
    let _offer = drain_server(&mut server);
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(10)));
    server.handle_timeout(now + Duration::from_secs(9)).unwrap();
    assert!(server.poll_transmit().is_none());
    let e = server
        .handle_timeout(now + Duration::from_secs(10))
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Timeout);
    assert!(
        e.to_string().contains("authentication took too long"),
        "{e}"
    );
    let alert = drain_server(&mut server);
    let Ok(PlainMessage::Alert(a)) = decode_plain(&alert[0]) else {
        panic!()
    };
    assert!(a.message.contains("authentication took too long"));
    assert!(server.poll_timeout().is_none());

    // The client stalls after the Choice: the server says so, sealed.
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::New,
        server_cfg(Some(key(1))),
        14,
    );
    h.tamper = Some(Box::new(|dir, b| {
        // Drop the client's Select.
        if dir == Dir::C2S && decode_plain(&b).is_err() {
            None
        } else {
            Some(b)
        }
    }));
    h.run();
    assert_eq!(h.elapsed(), Duration::from_secs(10));
    assert_eq!(
        h.server_err.expect("timeout").kind(),
        HandshakeErrorKind::Timeout
    );
    let c = h.client_err.expect("client told");
    assert_eq!(c.kind(), HandshakeErrorKind::AuthFailed);
    assert!(c.to_string().contains("took too long"), "{c}");
}

#[test]
fn client_handshake_timeout() {
    let mut r = rng(15);
    let now = h_now();
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    assert_eq!(client.poll_timeout(), Some(now + CLIENT_HANDSHAKE_TIMEOUT));
    client
        .handle_timeout(now + Duration::from_secs(29))
        .unwrap();
    let e = client
        .handle_timeout(now + CLIENT_HANDSHAKE_TIMEOUT)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Timeout);
}

// ---------------------------------------------------------------------------
// Resumption
// ---------------------------------------------------------------------------

fn resume(
    seed: u64,
    session_id: SessionId,
    otps: Vec<Otp>,
    stored: Option<StoredSession>,
) -> Harness {
    let mut h = Harness::new(
        client_cfg(Some(key(1))),
        Connect::Resume {
            session_id,
            otps,
            received: 5,
        },
        server_cfg(Some(key(1))),
        seed,
    );
    h.store = stored;
    h.run();
    h
}

#[test]
fn resume_with_one_candidate() {
    let (c0, s0) = new_session(20);
    let EstablishedKind::New { otp } = c0.kind else {
        panic!()
    };
    let EstablishedKind::New { otp: server_otp } = s0.kind else {
        panic!()
    };
    let h = resume(
        21,
        c0.session_id,
        vec![otp.clone()],
        Some(StoredSession {
            otp: server_otp,
            received: 7,
        }),
    );
    assert!(h
        .server_events
        .contains(&HandshakeEvent::ResumeRequested(c0.session_id)));
    let (mut c, mut s) = h.established();
    assert_eq!(c.session_id, c0.session_id);
    assert_eq!(s.session_id, c0.session_id);
    let EstablishedKind::Resumed {
        peer_received: cr,
        matched: cm,
        next_otp: cn,
    } = &c.kind
    else {
        panic!()
    };
    let EstablishedKind::Resumed {
        peer_received: sr,
        matched: sm,
        next_otp: sn,
    } = &s.kind
    else {
        panic!()
    };
    assert_eq!((*cr, *sr), (7, 5));
    assert_eq!((*cm, *sm), (0, 0));
    assert_eq!(cn, sn);
    assert_ne!(cn, &otp, "rotated");
    exchange(&mut c, &mut s);
}

#[test]
fn resume_with_two_candidates_matches_the_older() {
    let mut r = rng(22);
    let old = Otp::random(&mut r);
    let newer = Otp::random(&mut r);
    let id = SessionId([3; 16]);
    let h = resume(
        23,
        id,
        vec![newer, old.clone()],
        Some(StoredSession {
            otp: old.clone(),
            received: 0,
        }),
    );
    let (c, s) = h.established();
    let EstablishedKind::Resumed {
        matched: cm,
        next_otp: cn,
        ..
    } = &c.kind
    else {
        panic!()
    };
    let EstablishedKind::Resumed {
        matched: sm,
        next_otp: sn,
        ..
    } = &s.kind
    else {
        panic!()
    };
    assert_eq!((*cm, *sm), (1, 1));
    assert_eq!(cn, sn);

    // And the newer one when the server already rotated.
    let newest = Otp::random(&mut r);
    let h = resume(
        24,
        id,
        vec![newest.clone(), old],
        Some(StoredSession {
            otp: newest,
            received: 0,
        }),
    );
    let (c, _) = h.established();
    assert!(matches!(
        c.kind,
        EstablishedKind::Resumed { matched: 0, .. }
    ));
}

#[test]
fn resume_with_wrong_or_stale_otp_is_rejected() {
    let mut r = rng(25);
    let stored = Otp::random(&mut r);
    let stale = Otp::random(&mut r);
    let h = resume(
        26,
        SessionId([4; 16]),
        vec![stale],
        Some(StoredSession {
            otp: stored,
            received: 0,
        }),
    );
    let s = h.server_err.expect("server refuses");
    let c = h.client_err.expect("client told");
    assert_eq!(s.kind(), HandshakeErrorKind::SessionRejected);
    assert_eq!(c.kind(), HandshakeErrorKind::SessionRejected);
    assert!(c.to_string().contains("did not match"), "{c}");
}

#[test]
fn resume_of_unknown_session_is_rejected() {
    let mut r = rng(27);
    let id = SessionId([5; 16]);
    let h = resume(28, id, vec![Otp::random(&mut r)], None);
    assert_eq!(
        h.server_err.unwrap().kind(),
        HandshakeErrorKind::SessionRejected
    );
    let c = h.client_err.unwrap();
    assert_eq!(c.kind(), HandshakeErrorKind::SessionRejected);
    assert!(c.to_string().contains(&id.to_string()), "{c}");
}

#[test]
fn resume_proof_replayed_into_another_connection_is_refused() {
    let mut r = rng(29);
    let otp = Otp::random(&mut r);
    let id = SessionId([6; 16]);
    let now = h_now();
    let cfg = std::sync::Arc::new(server_cfg(Some(key(1))));

    // Connection 1: an honest resume, observed by an attacker who learns
    // the proof (as if it could read it).
    let mut s1 = ServerHandshake::new(cfg.clone(), &mut r, now);
    let offer1 = drain_server(&mut s1).remove(0);
    let (choice1, mut peer1) =
        manual_client(&offer1, ConnectRequest::Resume { session_id: id }, &mut r);
    let proof1 = otp.resume_client_proof(&peer1.th);
    s1.handle_frame(body(choice1), now).unwrap();
    let resume1 = peer1.seal(&AuthMessage::Resume {
        proofs: vec![proof1.to_vec().into()],
        received: 0,
    });
    s1.handle_frame(body(resume1.clone()), now).unwrap();
    s1.provide_session(Some(StoredSession {
        otp: otp.clone(),
        received: 0,
    }))
    .unwrap();
    assert!(s1.poll_transmit().is_some());
    assert!(s1.is_established());

    // Connection 2: the attacker replays the proof under its own keys.
    let mut s2 = ServerHandshake::new(cfg.clone(), &mut r, now);
    let offer2 = drain_server(&mut s2).remove(0);
    let (choice2, mut peer2) =
        manual_client(&offer2, ConnectRequest::Resume { session_id: id }, &mut r);
    s2.handle_frame(body(choice2), now).unwrap();
    let replay = peer2.seal(&AuthMessage::Resume {
        proofs: vec![proof1.to_vec().into()],
        received: 0,
    });
    s2.handle_frame(body(replay), now).unwrap();
    assert_eq!(s2.poll_event(), Some(HandshakeEvent::ResumeRequested(id)));
    let e = s2
        .provide_session(Some(StoredSession {
            otp: otp.clone(),
            received: 0,
        }))
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::SessionRejected);
    let out = drain_server(&mut s2);
    assert!(matches!(
        peer2.open(frame_of(&out[0])),
        Ok(AuthMessage::Error { fatal: true, .. })
    ));

    // Connection 3: the sealed record itself replayed does not even open.
    let mut s3 = ServerHandshake::new(cfg, &mut r, now);
    let offer3 = drain_server(&mut s3).remove(0);
    let (choice3, _) = manual_client(&offer3, ConnectRequest::Resume { session_id: id }, &mut r);
    s3.handle_frame(body(choice3), now).unwrap();
    let e = s3.handle_frame(body(resume1), now).unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Crypto);
}

#[test]
fn resume_needs_one_or_two_candidates() {
    let mut h = Harness::new(
        client_cfg(None),
        Connect::Resume {
            session_id: SessionId([1; 16]),
            otps: vec![],
            received: 0,
        },
        server_cfg(Some(key(1))),
        30,
    );
    h.run();
    assert_eq!(
        h.client_err.unwrap().kind(),
        HandshakeErrorKind::SessionRejected
    );
}

#[test]
fn client_rejects_resumed_with_bad_proof() {
    let mut r = rng(31);
    let now = h_now();
    let fake = ManualServer::new(&mut r);
    let otp = Otp::random(&mut r);
    let mut client = ClientHandshake::new(
        client_cfg(None),
        Connect::Resume {
            session_id: SessionId([1; 16]),
            otps: vec![otp.clone()],
            received: 0,
        },
        &mut r,
        now,
    );
    client.handle_frame(body(fake.offer_frame()), now).unwrap();
    let out = drain_client(&mut client);
    let (_, mut peer) = fake.accept(&out[0]);
    assert!(matches!(
        peer.open(frame_of(&out[1])),
        Ok(AuthMessage::Resume { .. })
    ));
    let forged = AuthMessage::Resumed {
        proof: vec![0; 32].into(),
        matched: 0,
        received: 0,
    };
    let e = client
        .handle_frame(body(peer.seal(&forged)), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::SessionRejected);
    // matched out of range is a protocol error.
    let mut client = ClientHandshake::new(
        client_cfg(None),
        Connect::Resume {
            session_id: SessionId([1; 16]),
            otps: vec![otp.clone()],
            received: 0,
        },
        &mut r,
        now,
    );
    client.handle_frame(body(fake.offer_frame()), now).unwrap();
    let out = drain_client(&mut client);
    let (_, mut peer) = fake.accept(&out[0]);
    let proof = otp.resume_server_proof(&peer.th);
    let bad = AuthMessage::Resumed {
        proof: proof.to_vec().into(),
        matched: 1,
        received: 0,
    };
    let e = client.handle_frame(body(peer.seal(&bad)), now).unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Protocol);
}
